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
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

import numpy as np

from annlens.analysis.collectors.base import (
    HOOK_STAGE,
    STAGE_ORDER,
    Collector,
    Observation,
    stage_family,
)
from annlens.analysis.collectors.catalog import resolve_stats
from annlens.analysis.collectors.reductions import Array, Reductions
from annlens.analysis.collectors.snapshots import KeepTensors
from annlens.analysis.collectors.tables import HistogramTable, SpectrumTable, StatTable
from annlens.errors import ConfigError, StateError

logger = logging.getLogger("annlens")

FORMAT = "annlens.recorder"
VERSION = 1


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

    Cost: on a 784-512-512-10 float32 network at batch 128 (single-threaded
    BLAS, a busy two-core machine, CPU time of paired runs), the default set
    with ``every=1`` adds about 15% to a training step, ``parameter_every=1``
    about 26%, and ``every=10`` about 5%. Most of it is one pass over each
    activation and delta to bring it into cache and Python work per hook.

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
        for label, value in (("every", every), ("parameter_every", parameter_every)):
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, np.integer))
                or value < 1
            ):
                raise ConfigError(
                    f"Recorder {label} must be a positive integer, got {value!r}"
                )
        self.parameter_every = int(parameter_every)
        if not isinstance(variant, str):
            raise ConfigError(f"Recorder variant must be a string, got {variant!r}")
        self.model = model
        self.every = int(every)
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
        return _matches(layer, self.layer_filter)

    def attach(self) -> Recorder:
        """Register the hooks; returns the recorder (attaching twice is refused)."""
        if self._handles:
            raise StateError(
                "Recorder is already attached; help: call detach() first, or use "
                "one recorder per model"
            )
        for layer in self.model.layers:
            listeners: dict[str, list[Collector]] = {}
            for collector in self.collectors:
                if not (collector.model_wide or self._selected(layer)):
                    continue
                for stage in collector.stages(layer):
                    listeners.setdefault(stage, []).append(collector)
            by_hook: dict[str, dict[str, list[Collector]]] = {}
            for stage, collectors in listeners.items():
                hook = HOOK_STAGE[stage_family(stage)]
                by_hook.setdefault(hook, {})[stage] = collectors
            for hook_stage, table in by_hook.items():
                fn = self._make_hook(hook_stage, table)
                point = f"{layer.name}.{hook_stage}"
                self._handles.append(self.model.register_hook(point, fn))

        loss_listeners = [
            c for c in self.collectors if "model" in c.stages(self.model.loss_point)
        ]
        if loss_listeners:
            fn = self._make_hook("loss", {"model": loss_listeners})
            self._handles.append(self.model.register_hook("loss", fn))
        logger.debug("recorder attached: %s", self)
        return self

    def detach(self) -> None:
        """Remove every hook of this recorder; the tables stay."""
        while self._handles:
            self._handles.pop().remove()

    def __enter__(self) -> Recorder:
        return self.attach()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.detach()

    def _make_hook(
        self, hook_stage: str, table: dict[str, list[Collector]]
    ) -> Callable[..., None]:
        """The hook function for one layer and hook stage."""
        dispatch = self._dispatch
        if hook_stage in ("gradient", "update"):
            family = "gradient" if hook_stage == "gradient" else "update"
            per_name = {
                stage.split(":", 1)[1]: stage
                for stage in table
                if stage_family(stage) == family
            }
            param_stages = {
                stage.split(":", 1)[1]: stage
                for stage in table
                if stage_family(stage) == "param"
            }

            every_step = any(
                _any_every_step(collectors) for collectors in table.values()
            )
            state = self.model.state

            def per_parameter(layer: Any, name: str, value: Array) -> None:
                # off the parameter grid, nothing listens unless a collector
                # watches every step (the step began at this step's forward)
                if (
                    not every_step
                    and not self._record_parameters
                    and state.step == self._step
                ):
                    return
                if name in param_stages:
                    stage = param_stages[name]
                    param = layer.params[name]
                    dispatch(layer, stage, param, table[stage], name, True)
                if name in per_name:
                    stage = per_name[name]
                    dispatch(layer, stage, value, table[stage], name)

            per_parameter.__qualname__ = f"Recorder.{hook_stage}"
            return per_parameter

        ((stage, collectors),) = table.items()
        if hook_stage in ("forward", "backward"):

            def two_arguments(layer: Any, first: Array, second: Array) -> None:
                dispatch(
                    layer, stage, second if stage == "output" else first, collectors
                )

            two_arguments.__qualname__ = f"Recorder.{hook_stage}"
            return two_arguments
        if hook_stage == "loss":

            def loss(point: Any, value: float, grad: Array) -> None:
                dispatch(point, stage, np.asarray(value, dtype=np.float64), collectors)

            loss.__qualname__ = "Recorder.loss"
            return loss

        def one_argument(layer: Any, value: Array) -> None:
            dispatch(layer, stage, value, collectors)

        one_argument.__qualname__ = f"Recorder.{hook_stage}"
        return one_argument

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
        if not record and not _any_every_step(collectors):
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
            if record or collector.every_step:
                collector.observe(obs, self)

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
        state = self.model.state
        self.stats.add(
            state.step if step is None else int(step),
            state.epoch if epoch is None else int(epoch),
            layer,
            stage,
            (quantity,),
            (float(value),),
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
        return {
            "format": FORMAT,
            "version": VERSION,
            "variant": self.variant,
            "every": self.every,
            "parameter_every": self.parameter_every,
            "collectors": {
                c.name: {"settings": _jsonable(c.settings()), "state": c.state_dict()}
                for c in self.collectors
            },
            "last_recorded_epoch": self._last_recorded_epoch,
            "stats": self.stats.state(),
            "histograms": self.hists.state(),
            "spectra": self.spectrum_table.state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned; checks before changing anything."""
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise ConfigError(
                "recorder state must be a dict from Recorder.state_dict() with "
                f"format {FORMAT!r}, got {_describe(state)}"
            )
        if state.get("version") != VERSION:
            raise ConfigError(
                f"recorder state version {state.get('version')!r} is not supported; "
                f"expected {VERSION}"
            )
        mine = {c.name for c in self.collectors}
        unknown = sorted(set(state["collectors"]) - mine)
        if unknown:
            raise ConfigError(
                f"recorder state holds collectors {unknown} that this recorder "
                f"does not have; it has {sorted(mine)}"
            )
        self.stats.load(state["stats"])
        self.hists.load(state["histograms"])
        self.spectrum_table.load(state["spectra"])
        for collector in self.collectors:
            if collector.name in state["collectors"]:
                collector.load_state_dict(state["collectors"][collector.name]["state"])
        self._last_recorded_epoch = state.get("last_recorded_epoch")
        self._step = None

    def __repr__(self) -> str:
        names = ", ".join(c.name for c in self.collectors)
        status = "attached" if self.attached else "detached"
        return (
            f"Recorder(every={self.every}, parameter_every={self.parameter_every}, "
            f"variant={self.variant!r}, "
            f"stats=[{names}]; {status}, {len(self.stats)} rows)"
        )


def _describe(state: Any) -> str:
    if isinstance(state, dict):
        return f"format {state.get('format')!r}"
    return type(state).__name__


def _any_every_step(collectors: list[Collector]) -> bool:
    for collector in collectors:
        if collector.every_step:
            return True
    return False


def _matches(layer: Any, selection: Any) -> bool:
    """Whether ``layer`` passes a layer filter: name glob, type, predicate, list."""
    if selection is None:
        return True
    if isinstance(selection, str):
        return fnmatch.fnmatchcase(layer.name, selection)
    if isinstance(selection, type):
        return isinstance(layer, selection)
    if isinstance(selection, (list, tuple)):
        return any(_matches(layer, one) for one in selection)
    if callable(selection):
        return bool(selection(layer))
    raise ConfigError(
        "Recorder layers= takes a name or glob, a layer type, a predicate or a "
        f"list of these, got {selection!r}"
    )


def _jsonable(settings: dict[str, Any]) -> dict[str, Any]:
    """Settings with tuples and sets as lists, other objects as their repr."""
    out: dict[str, Any] = {}
    for key, value in settings.items():
        if isinstance(value, (tuple, list, set, frozenset)):
            value = (
                sorted(value) if isinstance(value, (set, frozenset)) else list(value)
            )
        elif isinstance(value, dict):
            value = _jsonable(value)
        elif not isinstance(value, (str, int, float, bool, type(None))):
            value = repr(value)
        out[key] = value
    return out
