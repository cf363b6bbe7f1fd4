"""Learning-rate schedules: every one against PyTorch's scheduler of the same
kind, warm-up composition, one-cycle momentum, plateaus, checks of settings,
state round trips and the registry."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from annlens.errors import ConfigError, StateError, UnknownNameError
from annlens.layers import Dense
from annlens.model import Sequential
from annlens.optim import (
    SGD,
    Adam,
    Constant,
    CosineAnnealing,
    CosineWarmRestarts,
    ExponentialDecay,
    LinearWarmup,
    MultiStepDecay,
    OneCycle,
    Optimizer,
    ReduceOnPlateau,
    Schedule,
    StepDecay,
    get_schedule,
    schedule_names,
)

STEPS = 60
LR = 0.1


def make_optimizer(lr: float = LR, cls: type[Optimizer] = SGD, **settings: Any):
    model = Sequential([Dense(2, 2)], dtype="float64")
    return cls(model, lr=lr, **settings)


def plateau_metrics() -> np.ndarray:
    """A loss that falls for 10 steps, then wobbles on a plateau."""
    rng = np.random.default_rng(3)
    return np.concatenate([np.linspace(1.0, 0.5, 10), 0.5 + 1e-3 * rng.normal(size=50)])


def torch_rates(
    torch: Any,
    make: Callable[[Any], Any],
    metrics: np.ndarray | None = None,
    optimizer: str = "SGD",
    **settings: Any,
) -> list[float]:
    """The rate PyTorch's scheduler gives at construction and after each step."""
    param = torch.zeros(2, requires_grad=True)
    optimizer_ = getattr(torch.optim, optimizer)([param], lr=LR, **settings)
    scheduler = make(optimizer_)
    rates = [optimizer_.param_groups[0]["lr"]]
    for index in range(STEPS):
        optimizer_.step()
        if metrics is None:
            scheduler.step()
        else:
            scheduler.step(float(metrics[index]))
        rates.append(optimizer_.param_groups[0]["lr"])
    return rates


def annlens_rates(
    make: Callable[[Optimizer], Schedule], metrics: np.ndarray | None = None
) -> list[float]:
    optimizer = make_optimizer()
    schedule = make(optimizer)
    rates = [optimizer.lr]
    for index in range(STEPS):
        schedule.step(None if metrics is None else float(metrics[index]))
        rates.append(optimizer.lr)
    return rates


CASES: list[tuple[str, Callable[[Any], Schedule], Callable[[Any, Any], Any]]] = [
    (
        "step",
        lambda o: StepDecay(o, step_size=7, gamma=0.5),
        lambda t, o: t.StepLR(o, step_size=7, gamma=0.5),
    ),
    (
        "multistep",
        lambda o: MultiStepDecay(o, milestones=[5, 12, 30], gamma=0.3),
        lambda t, o: t.MultiStepLR(o, milestones=[5, 12, 30], gamma=0.3),
    ),
    (
        "exponential",
        lambda o: ExponentialDecay(o, gamma=0.93),
        lambda t, o: t.ExponentialLR(o, gamma=0.93),
    ),
    (
        "cosine",
        lambda o: CosineAnnealing(o, T_max=60),
        lambda t, o: t.CosineAnnealingLR(o, T_max=60),
    ),
    (
        "cosine-eta_min-past-T_max",
        lambda o: CosineAnnealing(o, T_max=17, eta_min=0.003),
        lambda t, o: t.CosineAnnealingLR(o, T_max=17, eta_min=0.003),
    ),
    (
        "restarts",
        lambda o: CosineWarmRestarts(o, T_0=7, eta_min=0.001),
        lambda t, o: t.CosineAnnealingWarmRestarts(o, T_0=7, eta_min=0.001),
    ),
    (
        "restarts-T_mult",
        lambda o: CosineWarmRestarts(o, T_0=5, T_mult=2, eta_min=0.002),
        lambda t, o: t.CosineAnnealingWarmRestarts(o, T_0=5, T_mult=2, eta_min=0.002),
    ),
    (
        "warmup-alone",
        lambda o: LinearWarmup(o, warmup_steps=8, start_factor=0.2),
        lambda t, o: t.LinearLR(o, start_factor=0.2, total_iters=8),
    ),
    (
        "warmup-then-cosine",
        lambda o: LinearWarmup(
            o, 5, start_factor=0.1, after=CosineAnnealing(o, T_max=40, eta_min=0.001)
        ),
        lambda t, o: t.SequentialLR(
            o,
            [
                t.LinearLR(o, start_factor=0.1, total_iters=5),
                t.CosineAnnealingLR(o, T_max=40, eta_min=0.001),
            ],
            milestones=[5],
        ),
    ),
    (
        "warmup-then-step",
        lambda o: LinearWarmup(o, 4, start_factor=0.5, after=StepDecay(o, 10, 0.5)),
        lambda t, o: t.SequentialLR(
            o,
            [t.LinearLR(o, start_factor=0.5, total_iters=4), t.StepLR(o, 10, 0.5)],
            milestones=[4],
        ),
    ),
    (
        "one-cycle-cos",
        lambda o: OneCycle(o, total_steps=STEPS, max_lr=0.5),
        lambda t, o: t.OneCycleLR(
            o, max_lr=0.5, total_steps=STEPS, cycle_momentum=False
        ),
    ),
    (
        "one-cycle-linear",
        lambda o: OneCycle(
            o, STEPS, max_lr=0.4, pct_start=0.25, anneal="linear", div_factor=10.0
        ),
        lambda t, o: t.OneCycleLR(
            o,
            max_lr=0.4,
            total_steps=STEPS,
            pct_start=0.25,
            anneal_strategy="linear",
            div_factor=10.0,
            cycle_momentum=False,
        ),
    ),
    (
        "one-cycle-three-phase",
        lambda o: OneCycle(
            o, STEPS, max_lr=0.5, three_phase=True, final_div_factor=100.0
        ),
        lambda t, o: t.OneCycleLR(
            o,
            max_lr=0.5,
            total_steps=STEPS,
            three_phase=True,
            final_div_factor=100.0,
            cycle_momentum=False,
        ),
    ),
]


@pytest.mark.torch
@pytest.mark.parametrize(
    ("make", "make_torch"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_schedule_matches_torch_at_every_step(
    make: Callable[[Any], Schedule], make_torch: Callable[[Any, Any], Any]
) -> None:
    torch = pytest.importorskip("torch")
    schedulers = torch.optim.lr_scheduler

    expected = torch_rates(torch, lambda o: make_torch(schedulers, o))
    rates = annlens_rates(make)

    np.testing.assert_allclose(rates, expected, rtol=0, atol=1e-12)
    assert len(set(np.round(rates, 12))) > 2  # the rate really moved


PLATEAUS = [
    ("min-rel", {"patience": 3, "cooldown": 2, "min_lr": 1e-4}, 1),
    ("min-abs", {"threshold_mode": "abs", "threshold": 1e-3, "patience": 2}, 1),
    (
        "max-rel",
        {"mode": "max", "factor": 0.5, "patience": 4, "threshold": 1e-3},
        -1,
    ),
    (
        "max-abs-floor",
        {"mode": "max", "threshold_mode": "abs", "patience": 1, "min_lr": 0.005},
        -1,
    ),
]


@pytest.mark.torch
@pytest.mark.parametrize(
    ("settings", "sign"),
    [case[1:] for case in PLATEAUS],
    ids=[case[0] for case in PLATEAUS],
)
def test_reduce_on_plateau_matches_torch_at_every_step(
    settings: dict[str, Any], sign: int
) -> None:
    torch = pytest.importorskip("torch")
    metrics = sign * plateau_metrics()

    expected = torch_rates(
        torch,
        lambda o: torch.optim.lr_scheduler.ReduceLROnPlateau(o, **settings),
        metrics,
    )
    rates = annlens_rates(lambda o: ReduceOnPlateau(o, **settings), metrics)

    np.testing.assert_allclose(rates, expected, rtol=0, atol=1e-12)
    assert min(rates) < LR  # at least one reduction happened


@pytest.mark.torch
@pytest.mark.parametrize(
    ("cls", "torch_name", "settings", "read"),
    [
        (SGD, "SGD", {"momentum": 0.9}, lambda group: group["momentum"]),
        (Adam, "Adam", {}, lambda group: group["betas"][0]),
    ],
    ids=["sgd-momentum", "adam-beta1"],
)
def test_one_cycle_cycles_momentum_as_torch_does(
    cls: type[Optimizer],
    torch_name: str,
    settings: dict[str, Any],
    read: Callable[[dict[str, Any]], float],
) -> None:
    torch = pytest.importorskip("torch")
    param = torch.zeros(2, requires_grad=True)
    reference = getattr(torch.optim, torch_name)([param], lr=LR, **settings)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        reference, max_lr=0.5, total_steps=STEPS, cycle_momentum=True
    )
    optimizer = make_optimizer(cls=cls, **settings)
    schedule = OneCycle(optimizer, STEPS, max_lr=0.5, cycle_momentum=True)

    key = "betas" if cls is Adam else "momentum"
    mine = [optimizer.base[key]]
    theirs = [read(reference.param_groups[0])]
    for _ in range(STEPS):
        reference.step()
        scheduler.step()
        schedule.step()
        mine.append(optimizer.base[key])
        theirs.append(read(reference.param_groups[0]))
    if key == "betas":
        assert all(beta[1] == 0.999 for beta in mine)
        mine = [beta[0] for beta in mine]

    np.testing.assert_allclose(mine, theirs, rtol=0, atol=1e-12)


def test_constant_keeps_its_factor() -> None:
    optimizer = make_optimizer()
    schedule = Constant(optimizer, factor=0.5)
    rates = [optimizer.lr] + [schedule.step() for _ in range(5)]
    assert rates == [0.05] * 6


def test_step_returns_the_new_rate_and_sets_lr_scale() -> None:
    optimizer = make_optimizer()
    schedule = StepDecay(optimizer, step_size=1, gamma=0.5)
    assert schedule.step() == 0.05
    assert optimizer.lr_scale == 0.5 and schedule.count == 1


def test_scale_applies_to_every_group_in_proportion() -> None:
    model = Sequential([Dense(2, 2), Dense(2, 2)], dtype="float64")
    optimizer = SGD(model, lr=0.1, groups={"dense_0.*": {"lr": 0.01}})
    schedule = CosineAnnealing(optimizer, T_max=10, eta_min=0.02)
    for _ in range(10):
        schedule.step()

    assert optimizer.hyperparameters("dense_1.W")["lr"] == pytest.approx(0.02)
    assert optimizer.hyperparameters("dense_0.W")["lr"] == pytest.approx(0.002)


def test_units_are_explicit() -> None:
    optimizer = make_optimizer()
    assert CosineAnnealing(optimizer, T_max=5).unit == "epoch"
    assert OneCycle(optimizer, total_steps=100).unit == "batch"
    assert CosineAnnealing(optimizer, T_max=5, unit="batch").unit == "batch"
    after = StepDecay(optimizer, 3, unit="batch")
    assert LinearWarmup(optimizer, 2, after=after).unit == "batch"


def test_only_plateau_schedules_need_a_metric() -> None:
    optimizer = make_optimizer()
    assert not CosineAnnealing(optimizer, T_max=5).needs_metric
    plateau = ReduceOnPlateau(optimizer)
    assert plateau.needs_metric
    assert LinearWarmup(optimizer, 3, after=ReduceOnPlateau(optimizer)).needs_metric
    with pytest.raises(ConfigError, match=r"step\(val_loss\)"):
        plateau.step()


def test_warmup_before_plateau_passes_metrics_on_after_warmup() -> None:
    optimizer = make_optimizer()
    plateau = ReduceOnPlateau(optimizer, patience=0, factor=0.5)
    schedule = LinearWarmup(optimizer, 2, start_factor=0.5, after=plateau)
    rates = [optimizer.lr]
    for metric in [1.0, 1.0, 1.0, 1.0, 1.0]:
        rates.append(schedule.step(metric))

    # warm-up: 0.05, 0.075; then the plateau at its step 0 (0.1), then it sees
    # 1.0 (best), 1.0 (bad: halve), 1.0 (bad: halve)
    np.testing.assert_allclose(rates, [0.05, 0.075, 0.1, 0.1, 0.05, 0.025])


def test_one_cycle_refuses_to_step_past_total_steps() -> None:
    optimizer = make_optimizer()
    schedule = OneCycle(optimizer, total_steps=10)
    for _ in range(10):
        schedule.step()
    scale = optimizer.lr_scale
    with pytest.raises(StateError, match="total_steps is 10"):
        schedule.step()
    assert schedule.count == 10 and optimizer.lr_scale == scale


def test_one_cycle_max_lr_defaults_to_the_optimizer_rate() -> None:
    optimizer = make_optimizer(lr=0.3)
    schedule = OneCycle(optimizer, total_steps=20, div_factor=10.0)
    assert optimizer.lr == pytest.approx(0.03)
    assert max(schedule.step() for _ in range(20)) == pytest.approx(0.3)


ROUND_TRIPS: list[tuple[str, Callable[[Any], Schedule]]] = [
    ("step", lambda o: StepDecay(o, 4, 0.5)),
    ("restarts", lambda o: CosineWarmRestarts(o, 3, 2, 0.001)),
    ("one-cycle", lambda o: OneCycle(o, 40, cycle_momentum=True)),
    ("plateau", lambda o: ReduceOnPlateau(o, patience=2, cooldown=1)),
    (
        "warmup-plateau",
        lambda o: LinearWarmup(o, 3, after=ReduceOnPlateau(o, patience=1)),
    ),
]


@pytest.mark.parametrize(
    "make", [case[1] for case in ROUND_TRIPS], ids=[case[0] for case in ROUND_TRIPS]
)
def test_state_dict_survives_json_and_continues_identically(
    make: Callable[[Any], Schedule],
) -> None:
    metrics = plateau_metrics()
    optimizer = make_optimizer(momentum=0.9)
    schedule = make(optimizer)
    for index in range(12):
        schedule.step(float(metrics[index]))
    saved = json.loads(json.dumps(schedule.state_dict()))

    twin_optimizer = make_optimizer(momentum=0.9)
    twin = make(twin_optimizer)
    twin.load_state_dict(saved)

    assert twin.state_dict() == schedule.state_dict()
    assert twin_optimizer.lr == optimizer.lr
    assert twin_optimizer.base == optimizer.base
    for index in range(12, 36):
        assert twin.step(float(metrics[index])) == schedule.step(float(metrics[index]))


def test_load_refuses_state_saved_with_other_settings() -> None:
    saved = CosineAnnealing(make_optimizer(), T_max=10).state_dict()
    with pytest.raises(ConfigError, match="T_max"):
        CosineAnnealing(make_optimizer(), T_max=20).load_state_dict(saved)
    with pytest.raises(ConfigError, match="'CosineAnnealing'"):
        StepDecay(make_optimizer(), 3).load_state_dict(saved)


BAD_SETTINGS: list[tuple[Callable[[Any], Schedule], str]] = [
    (lambda o: StepDecay(o, step_size=0), "step_size"),
    (lambda o: StepDecay(o, step_size=2, gamma=-0.5), "gamma"),
    (lambda o: MultiStepDecay(o, milestones=[5, 3]), "milestones"),
    (lambda o: MultiStepDecay(o, milestones=[0, 3]), "milestones"),
    (lambda o: ExponentialDecay(o, gamma=0.0), "gamma"),
    (lambda o: CosineAnnealing(o, T_max=0), "T_max"),
    (lambda o: CosineAnnealing(o, T_max=5, eta_min=-1.0), "eta_min"),
    (lambda o: CosineAnnealing(o, T_max=5, unit="week"), "unit"),
    (lambda o: CosineWarmRestarts(o, T_0=5, T_mult=0), "T_mult"),
    (lambda o: LinearWarmup(o, warmup_steps=5, start_factor=0.0), "start_factor"),
    (lambda o: LinearWarmup(o, warmup_steps=0), "warmup_steps"),
    (lambda o: OneCycle(o, total_steps=100, pct_start=1.5), "pct_start"),
    (lambda o: OneCycle(o, total_steps=100, anneal="cosine"), "anneal"),
    (lambda o: OneCycle(o, total_steps=2), "pct_start * total_steps"),
    (lambda o: ReduceOnPlateau(o, mode="avg"), "mode"),
    (lambda o: ReduceOnPlateau(o, factor=1.0), "factor"),
    (lambda o: ReduceOnPlateau(o, patience=-1), "patience"),
    (lambda o: ReduceOnPlateau(o, threshold_mode="pct"), "threshold_mode"),
]


@pytest.mark.parametrize(
    ("make", "key"),
    BAD_SETTINGS,
    ids=[f"{k}-{i}" for i, (_, k) in enumerate(BAD_SETTINGS)],
)
def test_bad_setting_is_refused_naming_the_key(
    make: Callable[[Any], Schedule], key: str
) -> None:
    with pytest.raises(ConfigError, match=key.replace("*", r"\*")):
        make(make_optimizer())


def test_absolute_rates_need_a_positive_base_rate() -> None:
    with pytest.raises(ConfigError, match="lr > 0"):
        CosineAnnealing(make_optimizer(lr=0.0), T_max=5, eta_min=0.01)


def test_get_schedule_builds_by_name_and_adds_a_warmup() -> None:
    optimizer = make_optimizer()
    schedule = get_schedule("cosine", optimizer, T_max=10, warmup_steps=3)
    assert isinstance(schedule, LinearWarmup)
    assert isinstance(schedule.after, CosineAnnealing)
    assert optimizer.lr == pytest.approx(0.01)

    warmup = get_schedule("warmup", make_optimizer(), warmup_steps=4)
    assert isinstance(warmup, LinearWarmup) and warmup.after is None
    assert isinstance(get_schedule("constant", make_optimizer()), Constant)
    assert "plateau" in schedule_names() and "one_cycle" in schedule_names()


def test_get_schedule_refuses_unknown_names_and_settings() -> None:
    optimizer = make_optimizer()
    with pytest.raises(UnknownNameError, match="did you mean 'cosine'"):
        get_schedule("cosin", optimizer)
    with pytest.raises(ConfigError, match="did you mean 'T_max'.*allowed: T_max"):
        get_schedule("cosine", optimizer, T_mx=10)
    with pytest.raises(ConfigError, match="needs the setting"):
        get_schedule("cosine", optimizer)


def test_a_schedule_made_on_something_other_than_an_optimizer_is_refused() -> None:
    model = make_optimizer().model
    with pytest.raises(ConfigError, match="CosineAnnealing needs an Optimizer"):
        get_schedule("cosine", model, T_max=3)
    with pytest.raises(ConfigError, match="StepDecay needs an Optimizer, got NoneType"):
        StepDecay(None, 5, 0.5)


def test_repr_shows_the_settings() -> None:
    optimizer = make_optimizer()
    assert repr(StepDecay(optimizer, 5, 0.5)) == (
        "StepDecay(step_size=5, gamma=0.5, unit='epoch')"
    )
    warmup = LinearWarmup(optimizer, 2, after=CosineAnnealing(optimizer, T_max=9))
    assert "after=CosineAnnealing(T_max=9" in repr(warmup)
    assert repr(ReduceOnPlateau(optimizer)).startswith("ReduceOnPlateau(mode='min'")


def test_a_damaged_schedule_state_is_refused_and_changes_nothing() -> None:
    optimizer = make_optimizer()
    schedule = StepDecay(optimizer, step_size=2, gamma=0.5)
    good = schedule.state_dict()

    for damaged, message in [
        (3, "must be a mapping from StepDecay.state_dict()"),
        ({**good, "count": "x"}, "count must be an integer >= 0, got 'x'"),
        ({**good, "scale": None}, "scale must be a finite number"),
        ({k: v for k, v in good.items() if k != "base_lr"}, r"lacks \['base_lr'\]"),
    ]:
        with pytest.raises(ConfigError, match=message):
            schedule.load_state_dict(damaged)  # type: ignore[arg-type]
        assert schedule.state_dict() == good


@pytest.mark.parametrize("metric", ["abc", [1.0, 2.0], True, None])
def test_plateau_refuses_a_metric_that_is_not_one_number(metric) -> None:
    schedule = ReduceOnPlateau(make_optimizer())
    with pytest.raises(ConfigError, match="monitored value"):
        schedule.step(metric)
    assert schedule.count == 0


def test_plateau_takes_numpy_scalars() -> None:
    schedule = ReduceOnPlateau(make_optimizer())
    schedule.step(np.array(0.5))
    schedule.step(np.float32(0.25))
    assert schedule.count == 2 and schedule.best == 0.25


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"bad_steps": None}, "bad_steps must be an integer"),
        ({"current_lr": "x"}, "current_lr must be a number"),
        ({"count": -5}, "count must be an integer >= 0"),
    ],
)
def test_plateau_load_refuses_a_bad_entry_and_changes_nothing(change, message):
    source = ReduceOnPlateau(make_optimizer(), patience=0)
    source.step(1.0)
    source.step(2.0)
    target = ReduceOnPlateau(make_optimizer(), patience=0)
    with pytest.raises(ConfigError, match=message):
        target.load_state_dict({**source.state_dict(), **change})
    assert target.best == np.inf and target.count == 0 and target.bad_steps == 0


def test_plateau_load_names_a_missing_entry() -> None:
    source = ReduceOnPlateau(make_optimizer())
    saved = source.state_dict()
    del saved["cooldown_left"]
    with pytest.raises(ConfigError, match=r"lacks \['cooldown_left'\]"):
        ReduceOnPlateau(make_optimizer()).load_state_dict(saved)


def test_one_cycle_load_refuses_a_count_past_total_steps() -> None:
    saved = OneCycle(make_optimizer(), total_steps=10).state_dict()
    target = OneCycle(make_optimizer(), total_steps=10)
    with pytest.raises(ConfigError, match="past total_steps 10"):
        target.load_state_dict({**saved, "count": 50})
    assert target.count == 0
