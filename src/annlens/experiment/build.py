"""From a validated experiment to objects: data, model, loss, optimizer, schedule.

Everything an experiment needs is built here (the network in
:mod:`annlens.experiment.network`), before any training starts, so that a bad
name or hyperparameter anywhere in any variant is refused before the first
step of the first variant.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from annlens.errors import AnnlensError, ConfigError, did_you_mean
from annlens.experiment.config import resolve_variants
from annlens.experiment.network import build_model, check_model_names, config_key
from annlens.experiment.schema import Experiment, Named
from annlens.experiment.targets import check_loss_targets, metric_names
from annlens.model import Sequential


@dataclass
class Parts:
    """Everything one variant trains with."""

    name: str
    experiment: Experiment
    data: Any
    model: Sequential
    loss: Any
    optimizer: Any
    schedule: Any
    penalties: list[Any]
    constraints: list[Any]
    recorder: Any = None


def _task_of_loss(experiment: Experiment) -> str | None:
    """``"classification"`` when the configured loss takes class labels only.

    Softmax cross-entropy and NLL score class indices, so a file's target is
    read as class labels under them, and a label such as 2.5 is refused
    rather than turning the task into regression. Binary cross-entropy also
    takes probabilities in [0, 1], so it implies nothing.
    """
    from annlens.losses import NLLLoss, SoftmaxCrossEntropy, get_loss

    if experiment.loss.name == "auto":
        return None
    try:
        loss = get_loss(experiment.loss.name, **experiment.loss.settings())
    except AnnlensError:
        return None  # refused with its own message by build_loss
    if isinstance(loss, (SoftmaxCrossEntropy, NLLLoss)):
        return "classification"
    return None


def build_data(experiment: Experiment) -> Any:
    """The data set of the ``[data]`` section, split with the experiment's seed.

    A data file's task is ``data.task`` when given, else classification
    under a loss that takes class labels only (see :func:`_task_of_loss`),
    else inferred from the targets.
    """
    from annlens.data.registry import FILE_KINDS

    section = experiment.data
    task: str | None = section.task
    implied = None
    if task is None and section.name in FILE_KINDS:
        task = implied = _task_of_loss(experiment)
    try:
        return _load(experiment, task)
    except AnnlensError as error:
        if implied and error.args:
            error.args = (
                f"{error.args[0]} (the target is read as class labels because "
                f"loss.name = {experiment.loss.name!r} takes class labels)",
                *error.args[1:],
            )
        raise


def _load(experiment: Experiment, task: str | None) -> Any:
    from annlens.data import load_dataset

    section = experiment.data
    return load_dataset(
        section.name,
        seed=experiment.seed,
        val_fraction=section.val_fraction,
        test_fraction=section.test_fraction,
        standardize=section.standardize,
        n_samples=section.n_samples,
        noise=section.noise,
        path=section.path,
        target=section.target,
        task=task,
        drop_nan=section.drop_nan,
        standardize_target=section.standardize_target,
        target_path=section.target_path,
    )


def build_loss(experiment: Experiment, task: str) -> Any:
    """The loss; ``"auto"`` is softmax cross-entropy for classes, MSE otherwise."""
    from annlens.losses import get_loss

    name = experiment.loss.name
    if name == "auto":
        name = "softmax_cross_entropy" if task == "classification" else "mse"
    return get_loss(name, **experiment.loss.settings())


def build_regularization(experiment: Experiment) -> tuple[list[Any], list[Any]]:
    """The penalties (added to the loss) and constraints (after each update)."""
    from annlens.optim import L1Penalty, L2Penalty, MaxNorm

    section = experiment.regularization
    penalties: list[Any] = []
    if section.l1:
        penalties.append(L1Penalty(section.l1))
    if section.l2:
        penalties.append(L2Penalty(section.l2))
    constraints = [MaxNorm(section.max_norm)] if section.max_norm else []
    return penalties, constraints


def _refuse_double_softmax(model: Sequential, loss: Any) -> None:
    """A softmax (sigmoid) output under a loss that applies it itself is a mistake."""
    from annlens.losses import BinaryCrossEntropy, SoftmaxCrossEntropy

    last = getattr(getattr(model.layers[-1], "activation", None), "name", "")
    name = getattr(loss, "name", "the loss")
    fused = {SoftmaxCrossEntropy: "softmax", BinaryCrossEntropy: "sigmoid"}
    for kind, squash in fused.items():
        if isinstance(loss, kind) and last == squash:
            raise ConfigError(
                f"model.output_activation = {squash!r} under {name} "
                f"applies {squash} twice: the loss applies it to the model's "
                "output itself; help: keep output_activation = 'identity', "
                "the loss takes logits"
            )


def output_width(loss: Any, data: Any) -> int:
    """The model's output width: one per class or target column.

    Binary cross-entropy on two classes has one output, the logit of class
    1 (the second class name); the sigmoid is part of the loss.
    """
    from annlens.losses import BinaryCrossEntropy

    if not isinstance(loss, BinaryCrossEntropy) or data.task != "classification":
        return int(data.n_outputs)
    if data.n_classes == 2:
        return 1
    raise ConfigError(
        f"loss {loss.name!r} scores one yes/no output (the probability of "
        f"the second class), but data {data.name!r} has {data.n_classes} "
        "classes; help: use loss.name = 'softmax_cross_entropy' (or 'auto') "
        "for more than two classes"
    )


def check_numbers(section: str, settings: dict[str, Any]) -> None:
    """Refuse NaN and infinite settings, and a negative ``lr``, naming the key.

    The objects check their own ranges; these mistakes (``lr = inf`` or
    ``nan`` in TOML, a sign typed wrong) get a message in the config's terms.
    """
    import math

    for key, value in settings.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if not math.isfinite(value):
            raise ConfigError(
                f"{section}.{key} = {value!r}: must be a finite number"
                f"{', >= 0' if key == 'lr' else ''}, got {value!r}"
                f"{_LR_HELP if key == 'lr' else ''}"
            )
        if key == "lr" and value < 0:
            raise ConfigError(
                f"{section}.lr = {value!r}: the learning rate must be >= 0 (a "
                f"negative one climbs the loss), got {value!r}{_LR_HELP}"
            )


_LR_HELP = "; help: learning rates are usually between 1e-4 and 1"


def check_warmup(section: Named) -> None:
    """Refuse warm-up settings the config cannot mean, saying what is allowed.

    ``warmup_steps`` (on any schedule, or on ``name = "warmup"``, which
    needs it) is the whole number of steps, counted in the schedule's unit,
    over which the rate rises from ``start_factor`` times ``lr`` to ``lr``.
    """
    settings = section.settings()
    steps = settings.get("warmup_steps")
    what = (
        "an integer >= 1, the number of steps (in the schedule's unit: "
        "epochs, or batches with unit = 'batch') over which lr rises to its value"
    )
    if section.name == "warmup" and steps is None:
        raise ConfigError(
            f"schedule 'warmup' needs schedule.warmup_steps = {what}; got none"
        )
    if steps is not None and (
        isinstance(steps, bool) or not isinstance(steps, int) or steps < 1
    ):
        floor = " (0 means no warm-up: leave the key out)" if steps == 0 else ""
        raise ConfigError(f"schedule.warmup_steps = {steps!r}: must be {what}{floor}")
    if "after" in settings:
        raise ConfigError(
            f"schedule.after = {settings['after']!r} cannot be set in a config; "
            "help: name the schedule to follow (name = 'cosine', ...) and add "
            "warmup_steps = N to warm up before it"
        )


def build_parts(name: str, experiment: Experiment) -> Parts:
    """Build everything one variant needs; any bad setting raises here."""
    from annlens.data import check_batch_size
    from annlens.optim import get_optimizer, get_schedule

    data = build_data(experiment)
    check_batch_size(
        len(data.y_train), experiment.training.batch_size, "training.batch_size"
    )
    loss = build_loss(experiment, data.task)
    model = build_model(
        experiment.model, data.n_features, output_width(loss, data), experiment.seed
    )
    _refuse_double_softmax(model, loss)
    check_numbers("optimizer", experiment.optimizer.settings())
    with config_key("optimizer"):
        optimizer = get_optimizer(
            experiment.optimizer.name, model, **experiment.optimizer.settings()
        )
    schedule = None
    if experiment.schedule.name != "constant" or experiment.schedule.settings():
        check_numbers("schedule", experiment.schedule.settings())
        check_warmup(experiment.schedule)
        with config_key("schedule"):
            schedule = get_schedule(
                experiment.schedule.name, optimizer, **experiment.schedule.settings()
            )
    penalties, constraints = build_regularization(experiment)
    recorder = build_recorder(name, experiment, model)
    return Parts(
        name,
        experiment,
        data,
        model,
        loss,
        optimizer,
        schedule,
        penalties,
        constraints,
        recorder,
    )


def build_recorder(name: str, experiment: Experiment, model: Sequential) -> Any:
    """The statistics recorder of the ``[collect]`` section (not attached yet).

    ``collect.spectra_every`` > 0 takes the singular values at the recorded
    parameter steps that are multiples of it, instead of once per epoch. A
    ``collect.layers`` pattern that matches no layer is refused, naming the
    layers there are.
    """
    import fnmatch

    from annlens.analysis.collectors import Recorder, Spectra, resolve_stats

    collect = experiment.collect
    with config_key("collect.stats"):
        collectors = resolve_stats(collect.stats)
    if collect.spectra_every:
        collectors = [c for c in collectors if not isinstance(c, Spectra)]
        collectors.append(Spectra(every=collect.spectra_every))
    names = [layer.name for layer in model.layers]
    if collect.layers != "*" and not fnmatch.filter(names, collect.layers):
        raise ConfigError(
            f"collect.layers {collect.layers!r} matches no layer; the layers are "
            f"{', '.join(names)}"
        )
    return Recorder(
        model,
        every=collect.every,
        stats=collectors,
        variant=name,
        layers=None if collect.layers == "*" else collect.layers,
        keep_steps=collect.tensor_steps,
        keep_bytes=int(collect.tensor_budget_mb * 2**20),
    )


def build_all(experiment: Experiment) -> list[Parts]:
    """Build every variant before anything trains.

    An error names the variant it comes from (when there are variants): an
    unknown name or setting in the last variant is refused before the first
    one trains.
    """
    built = []
    if experiment.variants and not experiment.model.layers:
        check_model_names(experiment.model)  # even where every variant overrides
    for name, resolved in resolve_variants(experiment):
        try:
            parts = build_parts(name, resolved)
            check_parts(parts)
            built.append(parts)
        except AnnlensError as error:
            if experiment.variants and error.args:
                error.args = (f"variant {name!r}: {error.args[0]}", *error.args[1:])
            raise
    return built


def validating(parts: Parts) -> bool:
    """Whether the variant has a validation part."""
    return len(parts.data.y_val) > 0


def schedule_monitor(parts: Parts) -> str:
    """What a metric-driven schedule follows: ``val_loss``, else ``loss``.

    The training ``loss`` is followed by a schedule stepped every batch, and
    by every schedule when there is no validation part.
    """
    schedule = parts.schedule
    by_epoch = schedule is None or schedule.unit == "epoch"
    return "val_loss" if validating(parts) and by_epoch else "loss"


def history_columns(parts: Parts) -> list[str]:
    """The loss and metrics a step logs.

    ``penalty`` with regularisation; ``accuracy`` for classes, ``mae`` and
    ``rmse`` (in the target's units) for regression.
    """
    columns = ["loss"]
    if parts.penalties:
        columns.append("penalty")
    return columns + metric_names(parts.data.task)


def check_parts(parts: Parts) -> None:
    """Refuse now what training would refuse only when it comes to it.

    The early-stopping monitor must be a column of the history, a
    metric-driven schedule must have its value, and the loss must take every
    target of every split (tried against an output of the model's shape,
    without running the model; see :func:`check_loss_targets`).
    """
    from annlens.training.checks import (
        check_batches,
        check_schedule,
        check_schedule_length,
    )

    training = parts.experiment.training
    check_batches(parts.model, len(parts.data.y_train), training.batch_size)
    per_epoch = -(-len(parts.data.y_train) // training.batch_size)
    epochs = training.epochs
    if training.steps is not None:
        epochs = -(-training.steps // per_epoch)
    check_schedule_length(parts.schedule, epochs, per_epoch, training.steps)
    columns = history_columns(parts)
    check_schedule(parts.schedule, schedule_monitor(parts), columns, validating(parts))
    stopping = parts.experiment.training.early_stopping
    if stopping is not None:
        known = list(columns)
        if validating(parts):
            known += [f"val_{column}" for column in columns if column != "penalty"]
        if stopping.monitor not in known:
            hint = (
                "; help: hold out validation data (data.val_fraction > 0)"
                if stopping.monitor.startswith("val_") and not validating(parts)
                else ""
            )
            raise ConfigError(
                f"training.early_stopping.monitor {stopping.monitor!r} is not a "
                f"column of the history{did_you_mean(stopping.monitor, known)}; "
                f"it has {', '.join(known)}{hint}"
            )
    width = output_width(parts.loss, parts.data)
    check_loss_targets(parts.loss, parts.data, parts.model.dtype, width)
