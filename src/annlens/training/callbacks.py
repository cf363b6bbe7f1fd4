"""Training events and the Callback base class.

A callback is an object whose methods the trainer calls at fixed events of a
run, each as ``method(trainer, logs)``. Through ``trainer`` a callback reaches
everything it may change: ``trainer.stop_training = True`` ends the run after
the current batch (set in ``on_epoch_start``, before the epoch's first batch,
so that epoch is neither run nor recorded),
``trainer.optimizer.set("lr", 0.01)`` changes a hyperparameter (any
hyperparameter, optionally for a name pattern), and
``trainer.model.layer("dense_0").params["W"]`` can be edited in place.

Callbacks and hooks are one mechanism seen at two scales. The events
``on_after_backward`` and ``on_after_update`` are the model-wide moments of a
step; what happens inside a layer at those moments (each gradient, each
proposed update) is reached through the ``gradient`` and ``update`` hook
stages, which a callback registers with ``trainer.model.register_hook`` (in
``on_fit_start``, say) rather than through a second set of events.

Events of one :meth:`Trainer.fit`, in order::

    on_fit_start
      on_epoch_start
        on_batch_start -> on_after_backward -> on_after_update -> on_batch_end
        ...                                                  (every batch)
        on_validation                               (when there is validation)
      on_epoch_end
      ...                                                    (every epoch)
    on_fit_end

``on_after_backward`` comes once every gradient is final (the ``gradient``
hook stage has fired), before clipping and the update, so a callback may still
change ``layer.grads`` there.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from annlens.errors import ConfigError, did_you_mean

Logs = dict[str, Any]

EVENTS: tuple[str, ...] = (
    "on_fit_start",
    "on_epoch_start",
    "on_batch_start",
    "on_after_backward",
    "on_after_update",
    "on_batch_end",
    "on_validation",
    "on_epoch_end",
    "on_fit_end",
)


class Callback:
    """Base class: every event method does nothing until a subclass overrides it.

    Each method receives the trainer and a small dict of logs:

    - ``on_fit_start``: epochs, initial_epoch, resumed, samples,
      steps_per_epoch, validation_samples
    - ``on_epoch_start``: epoch
    - ``on_batch_start``: epoch, batch, step, size (``step`` counts finished
      optimizer steps, so it is this step's index from 0)
    - ``on_after_backward``: the same, plus loss (and penalty)
    - ``on_after_update``, ``on_batch_end``: the same, plus lr and the batch's
      metrics (the place for a progress bar)
    - ``on_validation``: epoch and the ``val_*`` values
    - ``on_epoch_end``: the epoch's history row
    - ``on_fit_end``: epochs_run, stopped
    """

    def on_fit_start(self, trainer: Any, logs: Logs) -> None:
        """Before the first epoch."""

    def on_epoch_start(self, trainer: Any, logs: Logs) -> None:
        """Before the first batch of an epoch."""

    def on_batch_start(self, trainer: Any, logs: Logs) -> None:
        """Before the forward pass of a step."""

    def on_after_backward(self, trainer: Any, logs: Logs) -> None:
        """After every gradient is final, before clipping and the update."""

    def on_after_update(self, trainer: Any, logs: Logs) -> None:
        """After the optimizer has changed the parameters."""

    def on_batch_end(self, trainer: Any, logs: Logs) -> None:
        """At the end of a step, with its loss and metrics."""

    def on_validation(self, trainer: Any, logs: Logs) -> None:
        """After the validation data has been evaluated."""

    def on_epoch_end(self, trainer: Any, logs: Logs) -> None:
        """After an epoch (and its validation); ``logs`` is its history row."""

    def on_fit_end(self, trainer: Any, logs: Logs) -> None:
        """After the last epoch, or after training was stopped."""

    def __repr__(self) -> str:
        settings = {k: v for k, v in vars(self).items() if not k.startswith("_")}
        inner = ", ".join(f"{k}={v!r}" for k, v in settings.items())
        return f"{type(self).__name__}({inner})"


class LambdaCallback(Callback):
    """A callback made of plain functions, one per event, by keyword.

    Examples
    --------
    >>> def halve(trainer, logs):
    ...     trainer.optimizer.set("lr", trainer.optimizer.lr / 2)
    >>> LambdaCallback(on_epoch_end=halve)
    LambdaCallback(on_epoch_end=halve)
    """

    def __init__(self, **functions: Callable[[Any, Logs], None]) -> None:
        for event, fn in functions.items():
            if event not in EVENTS:
                raise ConfigError(
                    f"LambdaCallback got unknown event {event!r}"
                    f"{did_you_mean(event, list(EVENTS))}; "
                    f"events: {', '.join(EVENTS)}"
                )
            if not callable(fn):
                raise ConfigError(
                    f"LambdaCallback {event} must be callable, got {fn!r}"
                )
            setattr(self, event, fn)
        self._events = dict(functions)

    def __repr__(self) -> str:
        inner = ", ".join(
            f"{event}={getattr(fn, '__name__', repr(fn))}"
            for event, fn in self._events.items()
        )
        return f"LambdaCallback({inner})"


def check_events(callback: Callback, where: str) -> None:
    """Refuse event methods that cannot take ``(trainer, logs)``; warn of typos.

    Checked when the trainer is built, so that a wrong signature fails before
    the first epoch rather than at the end of it; a method whose name is close
    to an event but is none (``on_epoch_ned``) is never called, which a
    warning says.
    """
    kind = type(callback).__name__
    for event in EVENTS:
        method = getattr(callback, event)
        try:
            signature = inspect.signature(method)
        except (TypeError, ValueError):
            continue
        try:
            signature.bind(None, None)
        except TypeError as error:
            raise ConfigError(
                f"{where} ({kind}): {event}{signature} cannot be called as "
                f"{event}(trainer, logs): {error}; help: define it as "
                f"def {event}(self, trainer, logs)"
            ) from None
    for name in dir(type(callback)):
        if name.startswith("on_") and name not in EVENTS:
            close = did_you_mean(name, list(EVENTS))
            if close:
                warnings.warn(
                    f"{where} ({kind}) defines {name}, which is no training event "
                    f"and is never called{close}",
                    stacklevel=4,
                )


class CallbackList:
    """The callbacks of a trainer, dispatched in the order given."""

    def __init__(self, callbacks: Iterable[Callback]) -> None:
        if isinstance(callbacks, Callback) or not isinstance(callbacks, Iterable):
            raise ConfigError(
                f"callbacks must be a list of Callback, got {callbacks!r}; "
                f"help: pass callbacks=[{type(callbacks).__name__}(...)]"
            )
        self.callbacks = list(callbacks)
        for position, callback in enumerate(self.callbacks):
            if not isinstance(callback, Callback):
                raise ConfigError(
                    f"callback {position} must be a Callback, got {callback!r}; "
                    "help: subclass annlens.training.Callback or use LambdaCallback"
                )
            check_events(callback, f"callback {position}")

    def append(self, callback: Callback) -> None:
        """Add a callback at the end of the dispatch order."""
        if not isinstance(callback, Callback):
            raise ConfigError(f"a callback must be a Callback, got {callback!r}")
        check_events(callback, f"callback {len(self.callbacks)}")
        self.callbacks.append(callback)

    def fire(self, event: str, trainer: Any, logs: Logs) -> None:
        """Call ``event`` on every callback, in order."""
        for callback in self.callbacks:
            getattr(callback, event)(trainer, logs)

    def __iter__(self) -> Iterator[Callback]:
        return iter(self.callbacks)

    def __len__(self) -> int:
        return len(self.callbacks)

    def __repr__(self) -> str:
        return f"CallbackList({self.callbacks!r})"
