"""Optimizers: every rule against PyTorch step by step, per-parameter groups, the
update hook stage, transactional steps, hyperparameter checks, state round
trips and the registry."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from annlens.errors import ConfigError, HookError, UnknownNameError
from annlens.layers import Dense
from annlens.model import Sequential
from annlens.optim import (
    SGD,
    Adadelta,
    Adagrad,
    Adam,
    Adamax,
    AdamW,
    CosineAnnealing,
    NAdam,
    Optimizer,
    RMSProp,
    get_optimizer,
    optimizer_names,
)

STEPS = 60


def make_model(seed: int = 0) -> Sequential:
    return Sequential([Dense(3, 4, "tanh"), Dense(4, 2)], seed=seed, dtype="float64")


def random_gradients(model: Sequential, rng: np.random.Generator) -> list[np.ndarray]:
    """Fresh gradients for every parameter, with a size that changes per step."""
    scale = float(np.exp(rng.normal()))
    return [
        rng.normal(size=layer.params[key].shape) * scale
        for layer in model.layers
        for key in layer.params
    ]


def set_gradients(model: Sequential, grads: list[np.ndarray]) -> None:
    slots = [(layer, key) for layer in model.layers for key in layer.params]
    for (layer, key), grad in zip(slots, grads, strict=True):
        layer.grads[key] = grad.copy()


def parameters(model: Sequential) -> list[np.ndarray]:
    return [layer.params[key].copy() for layer in model.layers for key in layer.params]


def to_json(value: Any) -> Any:
    """A state dictionary through a JSON round trip (arrays as nested lists)."""

    def default(item: Any) -> Any:
        if isinstance(item, np.ndarray):
            return item.tolist()
        raise TypeError(type(item))

    return json.loads(json.dumps(value, default=default))


@pytest.fixture
def torch64() -> Iterator[Any]:
    """PyTorch with float64 as its default dtype (its step counters and NAdam's
    running product follow the default dtype), restored afterwards."""
    torch = pytest.importorskip("torch")
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield torch
    torch.set_default_dtype(previous)


TORCH_CASES = [
    ("sgd", SGD, "SGD", {"lr": 0.1}),
    ("sgd-momentum", SGD, "SGD", {"lr": 0.05, "momentum": 0.9, "dampening": 0.2}),
    (
        "sgd-nesterov-decay",
        SGD,
        "SGD",
        {"lr": 0.05, "momentum": 0.8, "nesterov": True, "weight_decay": 0.01},
    ),
    ("adagrad", Adagrad, "Adagrad", {"lr": 0.1}),
    (
        "adagrad-decay",
        Adagrad,
        "Adagrad",
        {
            "lr": 0.1,
            "lr_decay": 0.01,
            "initial_accumulator_value": 0.1,
            "weight_decay": 0.02,
        },
    ),
    ("rmsprop", RMSProp, "RMSprop", {"lr": 0.01}),
    ("rmsprop-momentum", RMSProp, "RMSprop", {"lr": 0.01, "momentum": 0.9}),
    (
        "rmsprop-centered-momentum-decay",
        RMSProp,
        "RMSprop",
        {
            "lr": 0.01,
            "alpha": 0.9,
            "centered": True,
            "momentum": 0.9,
            "weight_decay": 0.01,
        },
    ),
    ("adadelta", Adadelta, "Adadelta", {"lr": 1.0, "rho": 0.95, "weight_decay": 0.01}),
    ("adam", Adam, "Adam", {"lr": 0.01}),
    ("adam-decay", Adam, "Adam", {"lr": 0.01, "weight_decay": 0.05}),
    ("adam-amsgrad", Adam, "Adam", {"lr": 0.01, "amsgrad": True}),
    (
        "adam-amsgrad-decay",
        Adam,
        "Adam",
        {"lr": 0.01, "betas": (0.8, 0.99), "amsgrad": True, "weight_decay": 0.05},
    ),
    ("adamw", AdamW, "AdamW", {"lr": 0.01, "weight_decay": 0.1}),
    ("adamw-amsgrad", AdamW, "AdamW", {"lr": 0.01, "amsgrad": True}),
    ("nadam", NAdam, "NAdam", {"lr": 0.01}),
    ("nadam-decay", NAdam, "NAdam", {"lr": 0.01, "weight_decay": 0.05}),
    (
        "nadam-decoupled",
        NAdam,
        "NAdam",
        {"lr": 0.01, "weight_decay": 0.05, "decoupled_weight_decay": True},
    ),
    ("adamax", Adamax, "Adamax", {"lr": 0.01}),
    ("adamax-decay", Adamax, "Adamax", {"lr": 0.01, "weight_decay": 0.05}),
]


def run_against_torch(
    torch: Any,
    optimizer: Optimizer,
    torch_optimizer: Any,
    tensors: list[Any],
    steps: int = STEPS,
    schedules: tuple[Any, Any] | None = None,
) -> float:
    """Feed both the same gradients; return the largest parameter gap seen."""
    model = optimizer.model
    rng = np.random.default_rng(7)
    worst = 0.0
    for _ in range(steps):
        grads = random_gradients(model, rng)
        set_gradients(model, grads)
        for tensor, grad in zip(tensors, grads, strict=True):
            tensor.grad = torch.tensor(grad)

        optimizer.step()
        torch_optimizer.step()
        if schedules is not None:
            schedules[0].step()
            schedules[1].step()

        for mine, theirs in zip(parameters(model), tensors, strict=True):
            worst = max(worst, float(np.max(np.abs(mine - theirs.detach().numpy()))))
    return worst


def torch_tensors(torch: Any, model: Sequential) -> list[Any]:
    return [torch.tensor(p.copy(), requires_grad=True) for p in parameters(model)]


@pytest.mark.torch
@pytest.mark.parametrize(
    ("cls", "torch_name", "settings"),
    [case[1:] for case in TORCH_CASES],
    ids=[case[0] for case in TORCH_CASES],
)
def test_optimizer_matches_torch_at_every_step(
    torch64: Any, cls: type[Optimizer], torch_name: str, settings: dict[str, Any]
) -> None:
    model = make_model()
    tensors = torch_tensors(torch64, model)
    optimizer = cls(model, **settings)
    reference = getattr(torch64.optim, torch_name)(tensors, foreach=False, **settings)

    worst = run_against_torch(torch64, optimizer, reference, tensors)

    assert worst <= 1e-10
    assert optimizer.t == STEPS and model.state.step == STEPS


@pytest.mark.torch
def test_groups_give_one_layer_its_own_rate_as_torch_param_groups_do(
    torch64: Any,
) -> None:
    model = make_model()
    tensors = torch_tensors(torch64, model)
    optimizer = Adam(model, lr=0.01, groups={"dense_0.*": {"lr": 0.001}})
    reference = torch64.optim.Adam(
        [{"params": tensors[:2], "lr": 0.001}, {"params": tensors[2:]}],
        lr=0.01,
        foreach=False,
    )

    assert run_against_torch(torch64, optimizer, reference, tensors) <= 1e-10


@pytest.mark.torch
def test_schedule_scales_every_step_as_a_torch_scheduler_does(torch64: Any) -> None:
    model = make_model()
    tensors = torch_tensors(torch64, model)
    optimizer = Adam(model, lr=0.02)
    schedule = CosineAnnealing(optimizer, T_max=25, eta_min=0.001, unit="batch")
    reference = torch64.optim.Adam(tensors, lr=0.02, foreach=False)
    torch_schedule = torch64.optim.lr_scheduler.CosineAnnealingLR(
        reference, T_max=25, eta_min=0.001
    )

    worst = run_against_torch(
        torch64, optimizer, reference, tensors, schedules=(schedule, torch_schedule)
    )

    assert worst <= 1e-10


def test_group_rate_applies_only_to_the_layer_it_names(
    rng: np.random.Generator,
) -> None:
    model = make_model()
    optimizer = SGD(model, lr=0.1, groups={"dense_0.*": {"lr": 0.001}})
    before = parameters(model)
    grads = random_gradients(model, rng)
    set_gradients(model, grads)

    optimizer.step()

    rates = [0.001, 0.001, 0.1, 0.1]
    for old, new, grad, lr in zip(before, parameters(model), grads, rates, strict=True):
        np.testing.assert_allclose(new - old, -lr * grad, rtol=1e-12, atol=1e-15)


def test_hyperparameters_show_group_settings_and_the_schedule_scale() -> None:
    optimizer = SGD(make_model(), lr=0.1, groups={"*.b": {"momentum": 0.5}})
    optimizer.lr_scale = 0.5

    assert optimizer.hyperparameters("dense_1.b") == {
        "lr": 0.05,
        "momentum": 0.5,
        "dampening": 0.0,
        "nesterov": False,
        "weight_decay": 0.0,
    }
    assert optimizer.hyperparameters("dense_1.W")["momentum"] == 0.0
    assert optimizer.lr == 0.05


def test_update_hook_that_halves_updates_halves_the_change(
    rng: np.random.Generator,
) -> None:
    grads = random_gradients(make_model(), rng)
    changes = []
    for halve in (False, True):
        model = make_model()
        optimizer = Adam(model, lr=0.01)
        if halve:
            model.register_hook("update", lambda layer, name, update: update * 0.5)
        before = parameters(model)
        set_gradients(model, grads)
        optimizer.step()
        changes.append([a - b for a, b in zip(parameters(model), before, strict=True)])

    for full, half in zip(*changes, strict=True):
        np.testing.assert_allclose(half, 0.5 * full, rtol=1e-12, atol=1e-18)


def test_update_hook_reads_the_proposed_update(rng: np.random.Generator) -> None:
    model = make_model()
    optimizer = SGD(model, lr=0.1)
    seen: dict[str, np.ndarray] = {}
    model.register_hook(
        "update", lambda layer, name, update: seen.update({name: update.copy()})
    )
    grads = random_gradients(model, rng)
    set_gradients(model, grads)

    optimizer.step()

    np.testing.assert_array_equal(seen["W"], -0.1 * grads[2])  # dense_1 fires last


def test_raising_hook_leaves_parameters_and_state_bit_identical(
    rng: np.random.Generator,
) -> None:
    model = make_model()
    optimizer = Adam(model, lr=0.01, amsgrad=True)
    for _ in range(3):
        set_gradients(model, random_gradients(model, rng))
        optimizer.step()
    before_params = parameters(model)
    before_state = optimizer.state_dict()

    def refuse(layer: Any, name: str, update: np.ndarray) -> None:
        raise RuntimeError("no update today")

    model.register_hook("dense_1.update", refuse)
    set_gradients(model, random_gradients(model, rng))
    with pytest.raises(HookError, match="dense_1.update"):
        optimizer.step()

    for old, new in zip(before_params, parameters(model), strict=True):
        assert old.tobytes() == new.tobytes()
    after_state = optimizer.state_dict()
    assert after_state["t"] == before_state["t"] == 3
    assert model.state.step == 3
    for qualified, entries in before_state["state"].items():
        for key, value in entries.items():
            assert value.tobytes() == after_state["state"][qualified][key].tobytes()


def test_rule_does_not_modify_its_inputs(rng: np.random.Generator) -> None:
    model = make_model()
    for cls in (SGD, Adagrad, RMSProp, Adadelta, Adam, AdamW, NAdam, Adamax):
        optimizer = cls(model, lr=0.01)
        param, grad = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
        hyper = optimizer.hyperparameters("dense_0.W")
        hyper.update(
            {k: v for k, v in {"momentum": 0.9, "centered": True}.items() if k in hyper}
        )
        _, state = optimizer.rule(param, grad, {}, hyper, 1)
        copies = (param.copy(), grad.copy(), {k: v.copy() for k, v in state.items()})

        optimizer.rule(param, grad, state, hyper, 2)

        np.testing.assert_array_equal(param, copies[0])
        np.testing.assert_array_equal(grad, copies[1])
        for key, value in state.items():
            np.testing.assert_array_equal(value, copies[2][key])


def test_float32_model_gets_float32_updates(rng: np.random.Generator) -> None:
    model = Sequential([Dense(3, 2)], dtype="float32")
    for cls in (SGD, Adagrad, RMSProp, Adadelta, Adam, AdamW, NAdam, Adamax):
        optimizer = cls(model, lr=np.float64(0.01))
        set_gradients(
            model, [g.astype(np.float32) for g in random_gradients(model, rng)]
        )
        param, grad = model.layers[0].params["W"], model.layers[0].grads["W"]
        update, _ = optimizer.rule(param, grad, {}, optimizer.hyperparameters("x"), 1)
        assert update.dtype == np.float32, cls.__name__


BAD_SETTINGS = [
    (SGD, {"lr": -0.1}, "lr"),
    (SGD, {"momentum": 1.0}, "momentum"),
    (SGD, {"momentum": -0.1}, "momentum"),
    (SGD, {"dampening": 1.5}, "dampening"),
    (SGD, {"weight_decay": -1e-4}, "weight_decay"),
    (SGD, {"nesterov": True}, "nesterov"),
    (SGD, {"nesterov": "yes", "momentum": 0.9}, "nesterov"),
    (Adagrad, {"lr_decay": -0.1}, "lr_decay"),
    (Adagrad, {"initial_accumulator_value": -1.0}, "initial_accumulator_value"),
    (Adagrad, {"eps": -1e-10}, "eps"),
    (RMSProp, {"alpha": 1.5}, "alpha"),
    (RMSProp, {"momentum": 1.0}, "momentum"),
    (RMSProp, {"centered": 1}, "centered"),
    (Adadelta, {"rho": -0.1}, "rho"),
    (Adam, {"betas": (0.9, 1.0)}, "betas[1]"),
    (Adam, {"betas": (-0.1, 0.999)}, "betas[0]"),
    (Adam, {"betas": (0.9,)}, "betas"),
    (Adam, {"eps": -1e-8}, "eps"),
    (Adam, {"lr": float("nan")}, "lr"),
    (Adam, {"lr": "fast"}, "lr"),
    (AdamW, {"weight_decay": -0.01}, "weight_decay"),
    (NAdam, {"momentum_decay": -4e-3}, "momentum_decay"),
    (Adamax, {"betas": (1.0, 0.999)}, "betas[0]"),
]


@pytest.mark.parametrize(
    ("cls", "settings", "key"),
    BAD_SETTINGS,
    ids=[f"{c.__name__}-{k}-{i}" for i, (c, _, k) in enumerate(BAD_SETTINGS)],
)
def test_bad_hyperparameter_is_refused_naming_optimizer_and_key(
    cls: type[Optimizer], settings: dict[str, Any], key: str
) -> None:
    with pytest.raises(ConfigError) as error:
        cls(make_model(), **settings)

    message = str(error.value)
    assert cls.__name__ in message
    assert key in message


def test_out_of_range_message_gives_value_and_allowed_range() -> None:
    with pytest.raises(ConfigError, match=r"momentum must be in \[0.0, 1.0\), got 1.5"):
        SGD(make_model(), momentum=1.5)


def test_unknown_hyperparameter_suggests_the_closest_name() -> None:
    with pytest.raises(ConfigError, match="did you mean 'momentum'") as error:
        SGD(make_model(), momentun=0.9)
    assert "SGD" in str(error.value) and "momentun" in str(error.value)


def test_bad_group_value_is_refused_naming_the_group() -> None:
    with pytest.raises(ConfigError, match=r"lr must be.*group 'dense_0\.\*'"):
        Adam(make_model(), groups={"dense_0.*": {"lr": -1.0}})


@pytest.mark.parametrize(
    ("given", "kind"),
    [(None, "NoneType"), ([1, 2], "list"), ({"dense_0.W": np.zeros(2)}, "dict")],
    ids=["none", "list", "parameters"],
)
def test_an_optimizer_built_on_something_other_than_a_model_is_refused(
    given: Any, kind: str
) -> None:
    with pytest.raises(
        ConfigError, match=rf"Adam needs a Sequential model, got {kind}"
    ):
        Adam(given)


def test_group_pattern_that_matches_nothing_is_refused() -> None:
    with pytest.raises(ConfigError, match="matches no parameter"):
        Adam(make_model(), groups={"dense_7.*": {"lr": 0.1}})


def test_groups_that_are_not_a_mapping_of_mappings_are_refused_with_an_example() -> (
    None
):
    with pytest.raises(ConfigError, match=r"Adam groups must map .* got list"):
        Adam(make_model(), groups=[("dense_0.*", {"lr": 0.1})])  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"Adam group 'dense_0\.\*' must be .* 0\.1"):
        Adam(make_model(), groups={"dense_0.*": 0.1})  # type: ignore[dict-item]


def test_set_with_a_bad_value_changes_nothing() -> None:
    optimizer = Adam(make_model(), lr=0.01)
    with pytest.raises(ConfigError, match="eps"):
        optimizer.set("eps", -1.0)
    assert optimizer.base["eps"] == 1e-8


def test_set_changes_a_hyperparameter_for_one_group() -> None:
    optimizer = Adam(make_model(), lr=0.01)
    optimizer.set("betas", [0.5, 0.9], pattern="dense_1.*")
    assert optimizer.hyperparameters("dense_1.W")["betas"] == (0.5, 0.9)
    assert optimizer.hyperparameters("dense_0.W")["betas"] == (0.9, 0.999)


def test_assigning_lr_sets_the_base_rate_that_a_schedule_scales() -> None:
    optimizer = SGD(make_model(), lr=0.1, groups={"dense_1.*": {"lr": 0.3}})

    optimizer.lr = 0.02
    assert optimizer.lr == 0.02
    assert optimizer.hyperparameters("dense_0.W")["lr"] == 0.02
    assert optimizer.hyperparameters("dense_1.W")["lr"] == 0.3
    optimizer.lr_scale = 0.5
    assert optimizer.lr == 0.01
    with pytest.raises(ConfigError, match="lr must be"):
        optimizer.lr = -1.0
    assert optimizer.base["lr"] == 0.02


@pytest.mark.parametrize("lr", [math.inf, math.nan, -1.0])
def test_a_learning_rate_out_of_range_is_refused_with_a_range_without_inf(lr) -> None:
    with pytest.raises(ConfigError, match=r"lr must be in \[0\.0, inf\), got"):
        SGD(make_model(), lr=lr)


@pytest.mark.parametrize("cls", [SGD, Adam, NAdam, RMSProp, Adagrad])
def test_state_dict_survives_json_and_continues_identically(
    cls: type[Optimizer], rng: np.random.Generator
) -> None:
    settings: dict[str, Any] = {"lr": 0.01, "groups": {"dense_1.*": {"lr": 0.02}}}
    if cls in (SGD, RMSProp):
        settings["momentum"] = 0.9
    model = make_model()
    optimizer = cls(model, **settings)
    for _ in range(4):
        set_gradients(model, random_gradients(model, rng))
        optimizer.step()
    optimizer.lr_scale = 0.5
    saved = optimizer.state_dict()

    twin_model = make_model()
    twin_model.load_state_dict(model.state_dict())
    twin = cls(twin_model, lr=0.5)
    twin.load_state_dict(to_json(saved))

    assert to_json(twin.state_dict()) == to_json(saved)
    for _ in range(4):
        grads = random_gradients(model, rng)
        set_gradients(model, grads)
        set_gradients(twin_model, grads)
        optimizer.step()
        twin.step()
    for mine, theirs in zip(parameters(model), parameters(twin_model), strict=True):
        assert mine.tobytes() == theirs.tobytes()


def test_state_dict_is_json_friendly_apart_from_arrays(
    rng: np.random.Generator,
) -> None:
    model = make_model()
    optimizer = NAdam(model, betas=np.array([0.9, 0.99]), eps=np.float64(1e-8))
    set_gradients(model, random_gradients(model, rng))
    optimizer.step()
    saved = optimizer.state_dict()
    arrays = saved.pop("state")

    restored = json.loads(json.dumps(saved))
    assert restored["base"]["betas"] == [0.9, 0.99]
    assert saved["base"]["betas"] == (0.9, 0.99)
    assert type(saved["base"]["eps"]) is float
    assert all(
        isinstance(value, np.ndarray)
        for entries in arrays.values()
        for value in entries.values()
    )
    assert arrays["dense_0.W"]["mu_product"].shape == ()


def test_load_refuses_state_of_another_optimizer_or_shape() -> None:
    model = make_model()
    adam = Adam(model)
    with pytest.raises(ConfigError, match="'SGD'"):
        adam.load_state_dict(SGD(model).state_dict())

    saved = adam.state_dict()
    saved["state"] = {"dense_0.W": {"m": np.zeros((2, 2)), "v": np.zeros((3, 4))}}
    with pytest.raises(ConfigError, match=r"dense_0.W.m has shape \(2, 2\)"):
        adam.load_state_dict(saved)
    assert adam.state == {}


def test_get_optimizer_builds_by_name_with_settings() -> None:
    model = make_model()
    optimizer = get_optimizer("adamw", model, lr=0.003, weight_decay=0.1)
    assert isinstance(optimizer, AdamW)
    assert optimizer.lr == 0.003 and optimizer.base["weight_decay"] == 0.1
    assert get_optimizer(optimizer, model) is optimizer
    assert set(optimizer_names()) == {
        "sgd",
        "adagrad",
        "rmsprop",
        "adadelta",
        "adam",
        "adamw",
        "nadam",
        "adamax",
    }


def test_unknown_optimizer_name_lists_known_names_and_suggests_one() -> None:
    with pytest.raises(UnknownNameError) as error:
        get_optimizer("adamm", make_model())
    message = str(error.value)
    assert "did you mean 'adam'" in message
    assert "adadelta, adagrad, adam, adamax, adamw, nadam, rmsprop, sgd" in message


def test_adamw_has_no_switch_for_coupled_decay() -> None:
    with pytest.raises(ConfigError, match="decoupled_weight_decay"):
        AdamW(make_model(), decoupled_weight_decay=False)


def test_repr_shows_class_and_settings() -> None:
    text = repr(Adam(make_model(), lr=0.01, amsgrad=True))
    assert text.startswith("Adam(lr=0.01, betas=(0.9, 0.999)")
    assert "amsgrad=True" in text


def test_a_damaged_optimizer_state_is_refused_and_changes_nothing() -> None:
    model = make_model()
    optimizer = Adam(model, lr=0.01)
    good = Adam(model, lr=0.5).state_dict()

    for damaged, message in [
        ([1], "must be a mapping from Adam.state_dict()"),
        ({**good, "t": "x"}, "t must be an integer >= 0, got 'x'"),
        ({**good, "lr_scale": float("nan")}, "lr_scale must be a finite number"),
        ({k: v for k, v in good.items() if k != "base"}, r"lacks \['base'\]"),
    ]:
        with pytest.raises(ConfigError, match=message):
            optimizer.load_state_dict(damaged)  # type: ignore[arg-type]
        assert optimizer.base["lr"] == 0.01 and optimizer.t == 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"base": "junk"}, "base must be a mapping"),
        ({"groups": "junk"}, "groups must be a mapping"),
        ({"state": "junk"}, "state must be a mapping"),
        ({"state": {"dense_0.W": "junk"}}, r"state\['dense_0.W'\] must map"),
        ({"groups": {"conv*": {"lr": 0.1}}}, "'conv\\*' matches no parameter"),
    ],
)
def test_load_state_dict_refuses_malformed_parts_and_changes_nothing(
    change, message
) -> None:
    model = make_model()
    source = Adam(model, lr=0.01)
    model.zero_grad()
    source.step()
    target = Adam(model, lr=0.01)
    with pytest.raises(ConfigError, match=message):
        target.load_state_dict({**source.state_dict(), **change})
    assert target.t == 0 and target.state == {} and target.groups == {}
