"""The Trainer: mini-batch training with events, metrics, a history and a NaN guard.

Holds the Trainer's settings: its constructor checks and keeps them. The
Trainer's work is spread over its bases, one concern each:

- :mod:`annlens.training.step`: the single training step on one batch;
- :mod:`annlens.training.loop`: ``fit`` over epochs and batches, ``evaluate``;
- :mod:`annlens.training.resume`: ``state_dict`` and ``load_state_dict``.

What a step does inside each layer is reached through hooks; what happens
between steps and epochs is reached through callbacks (see
:mod:`annlens.training.callbacks`). Data loading beyond in-memory arrays is not
here: ``fit`` takes arrays.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from annlens.errors import ConfigError
from annlens.losses import (
    BinaryCrossEntropy,
    NLLLoss,
    SoftmaxCrossEntropy,
    get_loss,
)
from annlens.model import Sequential, seeded_generator
from annlens.optim import Optimizer
from annlens.training.callbacks import Callback, CallbackList
from annlens.training.checks import check_settings
from annlens.training.guard import NonFiniteGuard
from annlens.training.history import History
from annlens.training.loop import TrainingLoop
from annlens.training.metrics import Metric, get_metric
from annlens.training.resume import TrainerState

#: Losses whose targets are classes, for which accuracy is recorded by default.
CLASSIFICATION_LOSSES = (SoftmaxCrossEntropy, BinaryCrossEntropy, NLLLoss)

MetricSpec = str | tuple[str, Metric]

#: Columns of a step's logs or a history row that the trainer writes itself.
RESERVED_COLUMNS = (
    "loss",
    "penalty",
    "epoch",
    "batch",
    "step",
    "size",
    "lr",
    "grad_norm",
)


class Trainer(TrainingLoop, TrainerState):
    """Trains a model on in-memory arrays with mini-batch gradient descent.

    Parameters
    ----------
    model : Sequential
        The model to train.
    loss : Loss or str
        Anything with ``value_and_grad(output, target) -> (float, grad)``, or
        a registered loss name (``"mse"``, ``"softmax_cross_entropy"``).
    optimizer : Optimizer
        Built on ``model``.
    batch_size : int
        Samples per step, > 0. The last batch of an epoch keeps the remainder.
    epochs : int
        Passes over the data, >= 0.
    schedule : Schedule, optional
        A schedule of :mod:`annlens.optim` made on ``optimizer``: stepped after
        every optimizer step when its ``unit`` is ``"batch"``, else once after
        each epoch (after validation). One that ``needs_metric`` (such as
        ReduceOnPlateau) is given the value of ``schedule_monitor``. One with
        a ``total_steps`` (OneCycle) that a fit would step past is refused
        by ``fit`` before the first step.
    schedule_monitor : str
        The column a metric-driven schedule follows: a history column for an
        epoch schedule (default ``"val_loss"``), a step's ``"loss"`` or
        metric for a batch schedule.
    penalties : sequence of Penalty
        Regularisers of :mod:`annlens.optim.regularizers` (anything with
        ``value(model) -> float`` and ``add_gradients(model)``): their values
        join the loss, their gradients the parameter gradients.
    clip_norm, clip_value : float, optional
        Clip the gradients elementwise and/or by global norm (value first),
        with :func:`annlens.optim.clip_grad_value` and
        :func:`annlens.optim.clip_grad_norm`; a step's logs then hold
        ``grad_norm``, the global norm before clipping.
    constraints : sequence of Constraint
        Projections of :mod:`annlens.optim.constraints` (``apply(model)``),
        applied after every optimizer step.
    metrics : sequence of names or (name, fn) pairs, optional
        Recorded for training and validation besides the loss, which is always
        recorded. A function is ``fn(output, target) -> float``. By default
        ``accuracy`` for the classification losses (softmax cross-entropy,
        binary cross-entropy, NLL) and none for the others, whose targets
        have no class to be right about. A metric may not take a name of the
        trainer's own columns (``RESERVED_COLUMNS``: loss, penalty, epoch,
        batch, step, size, lr, grad_norm) nor one starting with ``val_``, and
        must return one number.
    callbacks : sequence of Callback
        Called at the training events, in this order.
    seed : int, optional
        Fixes the order of the data; by default derived from ``model.seed``.
    nan_guard : bool
        Stop at the first NaN or Inf that reaches the loss or an update, with
        :class:`~annlens.errors.NonFiniteError`, naming the step, layer and
        stage where it appeared, and leave the model and optimizer as they
        were before the failing step. A non-finite value that a unit hides
        (an Inf pre-activation that ReLU, tanh or a sigmoid maps to a finite
        value) is caught only with ``trainer.guard.install()``. Each step
        checks the loss and the proposed updates; only a step that fails is
        replayed
        with a checking hook at every stage to find the place (see
        :mod:`annlens.training.guard`, also for its cost). Inside a step and
        ``evaluate`` it stands in for NumPy's overflow and invalid-value
        warnings, which are silenced there.
    validation_split : float
        The fraction of ``fit``'s data, taken from its end before shuffling,
        held out for validation, in [0, 1).
    shuffle : bool
        Reshuffle the data every epoch.
    record_steps : bool
        Keep every step's loss and learning rate in ``history.steps``.

    Notes
    -----
    One step (:meth:`step`), for a batch ``(x, y)``::

        output = model.forward(x)                forward hooks
        L      = loss(output, y) + penalties     loss hook (data loss only)
        model.backward(dL/d output)              backward hooks
        grads += penalty gradients
        model.finish_gradients()                 gradient hooks
        on_after_backward                        callbacks
        clip                                     by value, then by norm
        optimizer.step()                         update hooks, NaN guard
        constraint.apply(model)                  max-norm, non-negativity
        schedule.step()                          batch-unit schedules
        on_after_update, on_batch_end            callbacks

    Training metrics in a history row are averages over the epoch's batches,
    weighted by batch size, of values computed on training-mode outputs
    (dropout on, batch statistics), as the parameters changed during the
    epoch; ``rmse`` averages the batches' squares and takes the root, so
    that it is the RMSE over the epoch's samples. Validation values are
    computed once on the whole validation set in evaluation mode. For a
    custom metric that is not a per-sample mean the training value is
    therefore an approximation.
    """

    def __init__(
        self,
        model: Sequential,
        loss: Any,
        optimizer: Optimizer,
        *,
        batch_size: int = 32,
        epochs: int = 1,
        schedule: Any = None,
        schedule_monitor: str = "val_loss",
        penalties: Sequence[Any] = (),
        clip_norm: float | None = None,
        clip_value: float | None = None,
        constraints: Sequence[Any] = (),
        metrics: Iterable[MetricSpec] | Mapping[str, Metric] | None = None,
        callbacks: Iterable[Callback] = (),
        seed: int | None = None,
        nan_guard: bool = True,
        validation_split: float = 0.0,
        shuffle: bool = True,
        record_steps: bool = True,
    ) -> None:
        if isinstance(loss, str):
            loss = get_loss(loss)
        check_settings(
            model,
            loss,
            optimizer,
            batch_size=batch_size,
            epochs=epochs,
            schedule=schedule,
            penalties=penalties,
            constraints=constraints,
            clip_norm=clip_norm,
            clip_value=clip_value,
            validation_split=validation_split,
            seed=seed,
        )

        self.model = model
        self.loss = loss
        self.optimizer = optimizer
        self.batch_size = int(batch_size)
        self.epochs = int(epochs)
        self.schedule = schedule
        self.schedule_monitor = schedule_monitor
        self.penalties = tuple(penalties)
        self.clip_norm = clip_norm
        self.clip_value = clip_value
        self.constraints = tuple(constraints)
        self.metrics: dict[str, Metric] = {}
        if metrics is None:
            classifies = isinstance(loss, CLASSIFICATION_LOSSES)
            metrics = ("loss", "accuracy") if classifies else ("loss",)
        if isinstance(metrics, str):
            raise ConfigError(
                f"Trainer metrics must be a list of names or (name, fn) pairs, "
                f"got the string {metrics!r}; help: pass metrics=[{metrics!r}]"
            )
        entries = metrics.items() if isinstance(metrics, Mapping) else metrics
        for entry in entries:
            if isinstance(entry, str):
                if entry != "loss":
                    self.add_metric(entry, get_metric(entry))
            else:
                self.add_metric(*entry)
        for flag, value in (
            ("nan_guard", nan_guard),
            ("shuffle", shuffle),
            ("record_steps", record_steps),
        ):
            if not isinstance(value, bool):
                raise ConfigError(
                    f"Trainer {flag} must be True or False, got {value!r}"
                )
        if not isinstance(schedule_monitor, str):
            raise ConfigError(
                "Trainer schedule_monitor must be a column name such as 'val_loss', "
                f"got {schedule_monitor!r}"
            )
        self.callbacks = CallbackList(callbacks)
        self.seed = model.seed if seed is None else int(seed)
        self.rng = seeded_generator(self.seed, 2)
        self.guard = NonFiniteGuard(model) if nan_guard else None
        self.validation_split = float(validation_split)
        self.shuffle = bool(shuffle)
        self.record_steps = record_steps

        self.history = History()
        self.stop_training = False
        self.epoch = 0
        self.epochs_done = 0
        self.batch = 0

    def add_metric(self, name: str, fn: Metric) -> None:
        """Record ``fn(output, target) -> float`` as ``name`` (and ``val_<name>``)."""
        if not isinstance(name, str) or not name or name in RESERVED_COLUMNS:
            raise ConfigError(
                f"a metric needs a new name, got {name!r}; the trainer's own "
                f"columns are {', '.join(RESERVED_COLUMNS)}"
            )
        if name.startswith("val_"):
            raise ConfigError(
                f"a metric name cannot start with 'val_', got {name!r}; help: name "
                f"it {name[4:]!r}, and its validation value is recorded as {name!r}"
            )
        if not callable(fn):
            raise ConfigError(f"metric {name!r} must be callable, got {fn!r}")
        self.metrics[name] = fn

    def __repr__(self) -> str:
        parts = [
            f"loss={self.loss!r}",
            f"optimizer={self.optimizer!r}",
            f"batch_size={self.batch_size}",
            f"epochs={self.epochs}",
            f"metrics={list(self.metrics)}",
            f"seed={self.seed}",
        ]
        if self.callbacks:
            parts.append(f"callbacks={self.callbacks.callbacks!r}")
        return f"Trainer({', '.join(parts)})"
