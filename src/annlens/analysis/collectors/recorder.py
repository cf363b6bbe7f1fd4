"""The Recorder: attaches collectors to a model through hooks and owns the tables.

A recorder registers one hook per layer and hook stage that some collector
wants, learns the step and the epoch from ``model.state`` when a hook fires,
and hands each firing to the collectors listening there. It knows nothing of
any training loop: a loop only has to advance ``model.state.step`` (the
optimizer does) and, for epoch-level quantities, call :meth:`Recorder.end_epoch`.

Steps. Rows carry ``model.state.step`` as it is while the batch runs: the
number of optimizer steps taken before it, so the first batch is step 0 and
its forward, backward and update rows share that step. A recorder writes rows
at steps where ``step % every == 0``; when a layer runs twice at one step (a
capture or a check before the training pass), the last pass is what stays.
Passes in evaluation mode or under ``model.no_grad()`` are not recorded.

Steps that write no rows cost (almost) nothing: the recorder pauses its hooks
there, unless a collector asks for that step (see
:mod:`~annlens.analysis.collectors.gating`).

Hook wiring lives in :mod:`~annlens.analysis.collectors.wiring`, the
checkpoint state in :mod:`~annlens.analysis.collectors.recorder_state`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from annlens.analysis.collectors.base import (
    STAGE_ORDER,
    Collector,
    Observation,
    stage_family,
)
from annlens.analysis.collectors.catalog import resolve_stats
from annlens.analysis.collectors.gating import Gates
from annlens.analysis.collectors.recorder_state import (
    FORMAT,
    VERSION,
    load_recorder_state,
    recorder_state,
)
from annlens.analysis.collectors.reductions import Array, Reductions
from annlens.analysis.collectors.snapshots import KeepTensors
from annlens.analysis.collectors.tables import HistogramTable, SpectrumTable, StatTable
from annlens.analysis.collectors.wiring import (
    any_listening,
    listeners_by_hook,
    make_hook,
    matches,
)
from annlens.errors import ConfigError, StateError, check_count, did_you_mean
from annlens.hooks.select import unknown_name

__all__ = ["FORMAT", "VERSION", "Recorder"]

logger = logging.getLogger("annlens")


class Recorder:
    """Streams statistics of every layer of a model into bounded tables.

    Parameters
    ----------
    model : Sequential
        The model to observe. Nothing is registered until :meth:`attach`.
    every : int
        Write rows at steps where ``step % every == 0``.
    stats : "default", "all" or list
        The collectors: a preset, or a list of names (see
        :data:`~annlens.analysis.collectors.catalog.COLLECTORS`) and
        :class:`~annlens.analysis.collectors.base.Collector` instances.
    variant : str
        The ``variant`` column of every table ("" for a single run).
    layers : str, type, callable or list, optional
        Observe only these layers (a name or glob, a layer type, a predicate);
        whole-model quantities (the loss, the global gradient norm) still see
        every layer.
    keep_steps : sequence of int
        Steps at which full copies of the values are kept, within
        ``keep_bytes``; see :meth:`tensors`.
    keep_stages : sequence of str, optional
        The table stages kept at those steps (default: every stage).
    keep_bytes : int
        The budget for kept copies; past it a copy is refused with a warning
        and recording goes on.
    parameter_every : int
        Parameter-level rows (everything read from a parameter, its gradient
        or its update: their norms, the update ratio, the gradient cosine,
        the noise scale, the global gradient norm, spectra) are written at
        every ``parameter_every``-th recorded step, and at the first recorded
        step of each epoch. These are the largest arrays of a step, so the
        default of 10 keeps the default set within about a tenth of a step's
        time; 1 writes them at every recorded step.

    Notes
    -----
    Steps written: statistics of activations and back-propagated gradients
    at steps where ``step % every == 0``; parameter-level statistics where
    ``step % (every * parameter_every) == 0`` and at each epoch's first
    recorded step.

    Cost: between recorded steps the recorder's hooks are paused and only its
    clock runs, so ``every=10`` costs a tenth to a sixth of what ``every=1``
    costs (the sixth on the narrowest layers, where the clock and the gradient
    kept before each recorded step for the cosine weigh most).
    At a recorded step most of the cost is a few passes over each activation
    and delta, and Python work per hook; ``make bench`` measures both
    (benchmarks/RESULTS.md).

    Examples
    --------
    >>> recorder = Recorder(model, every=10)  # doctest: +SKIP
    >>> with recorder:  # doctest: +SKIP
    ...     train(model)
    >>> recorder.to_dataframe().query("quantity == 'rms' and stage == 'delta'")
    """

    def __init__(
        self,
        model: Any,
        every: int = 1,
        stats: str | Sequence[str | Collector] = "default",
        variant: str = "",
        *,
        layers: Any = None,
        keep_steps: Sequence[int] = (),
        keep_stages: Sequence[str] | None = None,
        keep_bytes: int = 256 * 2**20,
        parameter_every: int = 10,
    ) -> None:
        self.every = check_count("Recorder every", every)
        self.parameter_every = check_count("Recorder parameter_every", parameter_every)
        if not isinstance(variant, str):
            raise ConfigError(f"Recorder variant must be a string, got {variant!r}")
        _check_model(model)
        _check_layer_filter(model, layers)
        _check_keep(keep_stages, keep_bytes)
        self.model = model
        self.variant = variant
        self.layer_filter = layers
        self.collectors: list[Collector] = resolve_stats(stats)
        if keep_steps:
            self.collectors.append(KeepTensors(keep_steps, keep_stages, keep_bytes))

        names = [collector.name for collector in self.collectors]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ConfigError(
                f"Recorder stats name {repeated} more than once; help: give one "
                "collector per name, with the settings you want"
            )

        self._layer_rank = {layer.name: i for i, layer in enumerate(model.layers)}
        self._layer_rank["model"] = len(model.layers)
        self.stats = StatTable(self._order)
        self.hists = HistogramTable(self._order)
        self.spectrum_table = SpectrumTable()

        self._handles: list[Any] = []
        self._gates = Gates()
        self._unwatch: Any = None
        self._step: int | None = None
        self._record = False
        self._record_parameters = False
        self._epoch_start = False
        self._last_recorded_epoch: int | None = None
        self._param_stats: dict[tuple[str, str], Reductions] = {}

    # -- ordering ------------------------------------------------------------------

    def _order(self, layer: str, stage: str) -> tuple[int, int, str]:
        rank = self._layer_rank.get(layer, len(self._layer_rank))
        return rank, STAGE_ORDER.get(stage_family(stage), len(STAGE_ORDER)), stage

    @property
    def layer_order(self) -> list[str]:
        """Layer names input side first, then ``"model"``."""
        return sorted(self._layer_rank, key=self._layer_rank.__getitem__)

    # -- attaching -----------------------------------------------------------------

    @property
    def attached(self) -> bool:
        """Whether the recorder's hooks are registered."""
        return bool(self._handles)

    def _selected(self, layer: Any) -> bool:
        return matches(layer, self.layer_filter)

    def attach(self) -> Recorder:
        """Register the hooks; returns the recorder (attaching twice is refused)."""
        if self._handles:
            raise StateError(
                "Recorder is already attached; help: call detach() first, or use "
                "one recorder per model"
            )
        try:
            self._register()
        except BaseException:
            self.detach()  # a refused collector leaves no hook behind
            raise

        # each new step (or epoch) opens the gates it needs; this one is now
        state = self.model.state
        self._unwatch = state.watch(self._on_state)
        self._begin_step(state.step, state.epoch)
        logger.debug("recorder attached: %s", self)
        return self

    def _register(self) -> None:
        """Register one hook per layer and hook stage that some collector wants."""
        for layer in self.model.layers:
            by_hook = listeners_by_hook(layer, self.collectors, self._selected)
            for hook_stage, table in by_hook.items():
                fn = make_hook(self, hook_stage, table)
                point = f"{layer.name}.{hook_stage}"
                handle = self.model.register_hook(point, fn)
                self._handles.append(handle)
                listening = [c for group in table.values() for c in group]
                self._gates.add(handle, hook_stage, listening)

        loss_listeners = [
            c for c in self.collectors if "model" in c.stages(self.model.loss_point)
        ]
        if loss_listeners:
            fn = make_hook(self, "loss", {"model": loss_listeners})
            handle = self.model.register_hook("loss", fn)
            self._handles.append(handle)
            self._gates.add(handle, "loss", loss_listeners)

    def detach(self) -> None:
        """Remove every hook of this recorder; the tables stay."""
        while self._handles:
            self._handles.pop().remove()
        if self._unwatch is not None:
            self._unwatch()
            self._unwatch = None
        self._gates.clear()
        self._step = None

    def __enter__(self) -> Recorder:
        return self.attach()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.detach()

    # -- dispatch --------------------------------------------------------------------

    def _dispatch(
        self,
        layer: Any,
        stage: str,
        value: Array,
        collectors: list[Collector],
        param: str | None = None,
        is_param: bool = False,
    ) -> None:
        state = self.model.state
        if not (state.training and state.grad_enabled):
            return
        step = state.step
        if step != self._step:
            self._begin_step(step, state.epoch)
        record = self._record if param is None else self._record_parameters
        if not record and not any_listening(collectors, step, self):
            return
        if is_param:
            assert param is not None, "param stages name their parameter"
            stats = self.param_stats(layer, param)
        else:
            stats = Reductions(value)
        obs = Observation(
            layer=layer,
            name="model" if stage == "model" else layer.name,
            stage=stage,
            value=value,
            stats=stats,
            step=step,
            epoch=state.epoch,
            record=record,
            epoch_start=self._epoch_start,
            parameters=self._record_parameters,
            param=param,
        )
        for collector in collectors:
            if record or collector.listens_at(step, self):
                collector.observe(obs, self)

    def _on_state(self, state: Any) -> None:
        """The model's step or epoch changed: begin that step (again)."""
        self._begin_step(state.step, state.epoch)

    def _begin_step(self, step: int, epoch: int) -> None:
        self._step = step
        self._record = step % self.every == 0
        self._param_stats.clear()
        self._epoch_start = self._record and epoch != self._last_recorded_epoch
        if self._record:
            self._last_recorded_epoch = epoch
        self._record_parameters = self._record and (
            self.is_parameter_step(step) or self._epoch_start
        )
        self._gates.update(step, self)

    def param_stats(self, layer: Any, name: str) -> Reductions:
        """Reductions of ``layer.params[name]``, shared within one step.

        Valid until the optimizer changes the parameter; the ``gradient`` and
        ``update`` hooks both fire before it does.
        """
        key = (layer.name, name)
        stats = self._param_stats.get(key)
        param = layer.params[name]
        if stats is None or stats.x is not param:
            stats = self._param_stats[key] = Reductions(param)
        return stats

    def is_recorded(self, step: int) -> bool:
        """Whether rows of activations and gradients are written at ``step``."""
        return step % self.every == 0

    def is_parameter_step(self, step: int) -> bool:
        """Whether ``step`` is on the grid of parameter-level rows.

        The first recorded step of an epoch is one too, which cannot be known
        before the epoch starts.
        """
        return step % (self.every * self.parameter_every) == 0

    # -- epoch and external values ---------------------------------------------

    def end_epoch(self, epoch: int | None = None) -> None:
        """Write epoch-level rows (units dead all epoch, drift, spectra).

        Parameters
        ----------
        epoch : int, optional
            The epoch that ended (default: ``model.state.epoch``). The rows
            carry the step of the epoch's last batch, ``model.state.step - 1``.
        """
        epoch = self.model.state.epoch if epoch is None else int(epoch)
        step = max(int(self.model.state.step) - 1, 0)
        for collector in self.collectors:
            collector.end_epoch(self, epoch, step)

    def log(
        self,
        quantity: str,
        value: float,
        *,
        step: int | None = None,
        epoch: int | None = None,
        layer: str = "model",
        stage: str = "model",
    ) -> None:
        """Add one row from outside the hooks, such as ``accuracy`` per step."""
        if not isinstance(quantity, str) or not quantity:
            raise ConfigError(
                f"Recorder.log quantity must be a non-empty string, got {quantity!r}"
            )
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise ConfigError(
                f"Recorder.log({quantity!r}, ...) takes one number, got {value!r}"
            ) from None
        state = self.model.state
        self.stats.add(
            state.step if step is None else int(step),
            state.epoch if epoch is None else int(epoch),
            layer,
            stage,
            (quantity,),
            (value,),
        )

    # -- tables ----------------------------------------------------------------------

    def to_dataframe(self) -> Any:
        """The statistics table (columns: see the package docstring).

        Rows are sorted by step, then layer (input side first, ``"model"``
        last), then stage. ``frame.attrs["layer_order"]`` lists the layers.
        """
        frame = self.stats.frame(self.variant)
        frame.attrs["layer_order"] = self.layer_order
        return frame

    def histograms(self) -> Any:
        """The histogram table: one row per bin (columns: see the package)."""
        return self.hists.frame(self.variant)

    def spectra(self) -> Any:
        """The spectra table: ``step, epoch, variant, layer, param, index, value``."""
        return self.spectrum_table.frame(self.variant)

    def tensors(self) -> dict[tuple[int, str, str], Array]:
        """Full copies kept at ``keep_steps``: ``(step, layer, stage) -> array``."""
        for collector in self.collectors:
            if isinstance(collector, KeepTensors):
                return dict(collector.kept)
        return {}

    def nbytes(self) -> int:
        """Bytes held by the tables and kept tensors."""
        kept = sum(a.nbytes for a in self.tensors().values())
        return self.stats.nbytes() + self.hists.nbytes() + kept

    # -- state -------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything recorded so far, for checkpoints: JSON-friendly values,
        and arrays where a collector must keep one (the latest gradient of
        each parameter, for the gradient cosine). Kept full tensors are not
        included.
        """
        return recorder_state(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned; checks before changing anything."""
        load_recorder_state(self, state)

    def __repr__(self) -> str:
        names = ", ".join(c.name for c in self.collectors)
        status = "attached" if self.attached else "detached"
        return (
            f"Recorder(every={self.every}, parameter_every={self.parameter_every}, "
            f"variant={self.variant!r}, "
            f"stats=[{names}]; {status}, {len(self.stats)} rows)"
        )


def _check_model(model: Any) -> None:
    """A recorder observes a model with layers, a run state and hook points."""
    if not all(hasattr(model, a) for a in ("layers", "state", "register_hook")):
        raise ConfigError(
            f"Recorder observes a model (annlens.Sequential), got "
            f"{type(model).__name__} {model!r:.60}; help: Recorder(model, ...)"
        )


def _check_layer_filter(model: Any, layers: Any) -> None:
    """A ``layers=`` filter that selects no layer is refused, with a suggestion,
    and so is a plain name in a list that is no layer's name (which the list
    would otherwise drop without a word)."""
    names = [layer.name for layer in model.layers]
    entry = unknown_name(layers, names)
    if entry is not None:
        raise ConfigError(
            f"Recorder layers= names {entry!r}, which is no layer of the model"
            f"{did_you_mean(entry, names)}; layers: {names}"
        )
    if layers is None or any(matches(layer, layers) for layer in model.layers):
        return
    hint = did_you_mean(layers, names) if isinstance(layers, str) else ""
    raise ConfigError(
        f"Recorder layers={layers!r} selects none of the model's layers "
        f"{names}{hint}; help: give a layer name, a glob such as 'dense_*', "
        "a layer type or a predicate"
    )


def _check_keep(stages: Sequence[str] | None, max_bytes: Any) -> None:
    """``keep_stages`` names known stages; ``keep_bytes`` is an integer >= 0."""
    check_count("Recorder keep_bytes", max_bytes, low=0)
    if stages is None:
        return
    if isinstance(stages, str):
        raise ConfigError(
            f"Recorder keep_stages takes a list of stages, got the string "
            f"{stages!r}; help: keep_stages=[{stages!r}]"
        )
    known = list(STAGE_ORDER)
    for stage in stages:
        if not isinstance(stage, str) or stage_family(stage) not in STAGE_ORDER:
            raise ConfigError(
                f"Recorder keep_stages: unknown stage {stage!r}"
                f"{did_you_mean(str(stage), known)}; known: {', '.join(known)} "
                "(a parameter's stage may name it, as in 'gradient:W')"
            )
