"""Scalar summaries and histograms of every quantity flowing through a layer.

:class:`Summary` writes ``mean, std, var, min, max, l2, rms, mean_abs`` of the
values at each chosen stage; :class:`Histograms` writes fixed-size histograms
(to the histogram table) and the quantiles ``q01 ... q99`` read from them.

Both read the shared :class:`~annlens.analysis.collectors.reductions.Reductions`
of a firing, so a quantity two collectors need is computed once. Histograms
cost several passes over an array, so by default they are taken at the first
recorded step of each epoch only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from annlens.analysis.collectors.base import Collector, Observation, wanted
from annlens.analysis.collectors.reductions import (
    QUANTILES,
    Reductions,
    histogram_quantiles,
)
from annlens.errors import ConfigError

if TYPE_CHECKING:
    from annlens.analysis.collectors.recorder import Recorder

#: Stages summarised by default: activations, the back-propagated delta, and
#: every parameter, its gradient and its update. ``grad_output`` is added at
#: layers without a delta stage (BatchNorm, Dropout); where a layer has
#: both, delta = grad_output * f'(z) carries the signal the rules read, and
#: leaving grad_output out saves a pass over one of the largest arrays.
DEFAULT_STAGES = (
    "pre_activation",
    "post_activation",
    "output",
    "delta",
    "param",
    "gradient",
    "update",
)

#: Every stage a layer can feed (adds grad_output where delta exists, the
#: layer input and grad_input, which repeat the neighbouring layers' values).
ALL_STAGES = ("input", *DEFAULT_STAGES, "grad_output", "grad_input")


def _sqrt(value: float) -> float:
    return math.sqrt(value) if value >= 0 else math.nan


#: How each summary quantity follows from the shared reductions.
FORMULAS: dict[str, Callable[[Reductions], float]] = {
    "mean": lambda r: r.mean(),
    "std": lambda r: _sqrt(r.var()),
    "var": lambda r: r.var(),
    "min": lambda r: r.min(),
    "max": lambda r: r.max(),
    "l2": lambda r: _sqrt(r.sumsq()),
    "rms": lambda r: _sqrt(r.sumsq() / r.size) if r.size else math.nan,
    "mean_abs": lambda r: r.abs_sum() / r.size if r.size else math.nan,
}

SUMMARY_QUANTITIES = tuple(FORMULAS)

#: The default for activations and back-propagated gradients: every quantity.
ACTIVATION_QUANTITIES = SUMMARY_QUANTITIES

#: The lean default for parameters, their gradients and updates, the largest
#: arrays of a step: the norms, one pass each (a pass that the update ratio,
#: the gradient norm and the gradient cosine share).
PARAMETER_QUANTITIES = ("l2", "rms")


def _activation_summary(r: Reductions) -> list[float]:
    """:data:`ACTIVATION_QUANTITIES` with as few calls as possible."""
    n = r.size
    if not n:
        return [math.nan] * 8
    var = r.var()
    sumsq = r.sumsq()
    return [
        r.sum() / n,
        _sqrt(var),
        var,
        r.min(),
        r.max(),
        _sqrt(sumsq),
        _sqrt(sumsq / n),
        r.abs_sum() / n,
    ]


def _norms(r: Reductions) -> list[float]:
    """:data:`PARAMETER_QUANTITIES`."""
    sumsq = r.sumsq()
    return [_sqrt(sumsq), _sqrt(sumsq / r.size) if r.size else math.nan]


def _planner(chosen: tuple[str, ...]) -> Callable[[Reductions], list[float]]:
    """The function that computes ``chosen`` from the reductions."""
    if chosen == ACTIVATION_QUANTITIES:
        return _activation_summary
    if chosen == PARAMETER_QUANTITIES:
        return _norms
    formulas = [FORMULAS[q] for q in chosen]
    return lambda r: [formula(r) for formula in formulas]


def _check_quantities(quantities: Sequence[str]) -> tuple[str, ...]:
    unknown = [q for q in quantities if q not in FORMULAS]
    if unknown or not quantities:
        raise ConfigError(
            f"Summary quantities {unknown or list(quantities)} are not known; "
            f"choose from {', '.join(FORMULAS)}"
        )
    return tuple(quantities)


def _check_stages(stages: Sequence[str], owner: str) -> tuple[str, ...]:
    known = set(ALL_STAGES)
    for stage in stages:
        family = stage.split(":", 1)[0]
        if family not in known:
            raise ConfigError(
                f"{owner} stage {stage!r} is not a table stage; known: "
                f"{', '.join(ALL_STAGES)} (per parameter as 'gradient:W')"
            )
    return tuple(stages)


def with_fallback(stages: Sequence[str], layer: Any) -> list[str]:
    """The stages of ``layer`` that ``stages`` selects, with ``grad_output``
    standing in for ``delta`` at a layer that has no delta stage."""
    chosen = wanted(stages, layer)
    if "delta" in stages and "delta" not in chosen:
        chosen += [s for s in wanted(("grad_output",), layer) if s not in chosen]
    return chosen


class Summary(Collector):
    """Mean, spread, extremes and norms of the values at each stage.

    Parameters
    ----------
    stages : sequence of str
        Table stages to summarise (default :data:`DEFAULT_STAGES`); a family
        such as ``"gradient"`` stands for every ``gradient:<p>``. When the
        list has ``delta``, a layer without a delta stage gives its
        ``grad_output`` instead.
    quantities : sequence of str
        For activations and gradients flowing through layers: any of
        ``mean, std, var, min, max, l2, rms, mean_abs`` (default: all).
    parameter_quantities : sequence of str or None
        For the ``param``, ``gradient`` and ``update`` stages (default
        ``l2, rms``, see :data:`PARAMETER_QUANTITIES`); None: the same as
        ``quantities``.

    Notes
    -----
    For the ``n`` entries ``x_i`` of the value (all samples and units)::

        mean = Σ x_i / n            var  = Σ (x_i - mean)² / n   std = √var
        l2   = √(Σ x_i²)            rms  = √(Σ x_i² / n)         mean_abs = Σ|x_i| / n

    The variance is the population variance (divided by ``n``), as
    ``numpy.var`` computes it.
    """

    name = "summary"
    quantities = SUMMARY_QUANTITIES

    def __init__(
        self,
        stages: Sequence[str] = DEFAULT_STAGES,
        quantities: Sequence[str] = ACTIVATION_QUANTITIES,
        parameter_quantities: Sequence[str] | None = PARAMETER_QUANTITIES,
    ) -> None:
        self.stage_list = _check_stages(stages, "Summary")
        self.chosen = _check_quantities(quantities)
        self.parameter_chosen = (
            self.chosen
            if parameter_quantities is None
            else _check_quantities(parameter_quantities)
        )
        self._summary = _planner(self.chosen)
        self._parameter_summary = _planner(self.parameter_chosen)

    def stages(self, layer: Any) -> list[str]:
        return with_fallback(self.stage_list, layer)

    def observe(self, obs: Observation, recorder: Recorder) -> None:
        if obs.param is None:
            chosen, values = self.chosen, self._summary(obs.stats)
        else:
            chosen, values = self.parameter_chosen, self._parameter_summary(obs.stats)
        recorder.stats.add(obs.step, obs.epoch, obs.name, obs.stage, chosen, values)

    def settings(self) -> dict[str, Any]:
        return {
            "stages": self.stage_list,
            "quantities": self.chosen,
            "parameter_quantities": self.parameter_chosen,
        }


class Histograms(Collector):
    """Fixed-size histograms and the quantiles read from them.

    Parameters
    ----------
    stages : sequence of str
        Table stages to histogram (default: activations, deltas, parameters
        and their gradients; ``grad_output`` at layers without a delta).
    bins : int
        Equal-width bins per histogram, spanning the values' own
        ``[min, max]`` at that step.
    every : "epoch" or int
        When: at the first recorded step of each epoch, or at recorded steps
        that are multiples of ``every``.

    Notes
    -----
    Memory per histogram is ``bins + 2`` numbers whatever the array's size.
    Quantiles ``q01, q05, q25, q50, q75, q95, q99`` are interpolated inside
    the bin that holds them, so each is within one bin width
    ``(max - min) / bins`` of the exact sample quantile. A histogram whose
    values are not all finite is skipped.
    """

    name = "histograms"
    quantities = tuple(QUANTILES)

    def __init__(
        self,
        stages: Sequence[str] = (
            "pre_activation",
            "post_activation",
            "output",
            "delta",
            "param",
            "gradient",
        ),
        bins: int = 64,
        every: str | int = "epoch",
    ) -> None:
        self.stage_list = _check_stages(stages, "Histograms")
        if isinstance(bins, bool) or not isinstance(bins, int) or bins < 2:
            raise ConfigError(f"Histograms bins must be an integer >= 2, got {bins!r}")
        if every != "epoch" and (
            isinstance(every, bool) or not isinstance(every, int) or every < 1
        ):
            raise ConfigError(
                f"Histograms every must be 'epoch' or a positive integer, got {every!r}"
            )
        self.bins = bins
        self.every = every
        self._levels = list(QUANTILES.values())
        self._names = tuple(QUANTILES)

    def stages(self, layer: Any) -> list[str]:
        return with_fallback(self.stage_list, layer)

    def due(self, obs: Observation) -> bool:
        """Whether this recorded step takes histograms."""
        if self.every == "epoch":
            return obs.epoch_start
        return obs.step % int(self.every) == 0

    def observe(self, obs: Observation, recorder: Recorder) -> None:
        if not self.due(obs):
            return
        lo, hi, counts = obs.stats.histogram(self.bins)
        if not (math.isfinite(lo) and math.isfinite(hi)):
            return
        recorder.hists.add(obs.step, obs.epoch, obs.name, obs.stage, lo, hi, counts)
        values = histogram_quantiles(lo, hi, counts, self._levels)
        recorder.stats.add(
            obs.step, obs.epoch, obs.name, obs.stage, self._names, values
        )

    def settings(self) -> dict[str, Any]:
        return {"stages": self.stage_list, "bins": self.bins, "every": self.every}
