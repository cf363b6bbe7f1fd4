"""The collectors by name, and the presets ``stats="default"`` and ``"all"``.

``Recorder(model, stats=...)`` takes a preset name, or a list mixing names
from :data:`COLLECTORS` (each built with its default settings) and collector
instances (built with the settings you want).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from annlens.analysis.collectors.base import Collector
from annlens.analysis.collectors.signals import GradCosine, GradNoise, UpdateRatio
from annlens.analysis.collectors.spectra import Spectra
from annlens.analysis.collectors.summary import (
    ALL_STAGES,
    SUMMARY_QUANTITIES,
    Histograms,
    Summary,
)
from annlens.analysis.collectors.totals import GradNorm, LossValue
from annlens.analysis.collectors.units import DeadUnits, Drift, Saturation
from annlens.errors import ConfigError, UnknownNameError, unknown_name

#: Every collector by the name ``stats=`` accepts.
COLLECTORS: dict[str, type[Collector]] = {
    cls.name: cls
    for cls in (
        DeadUnits,
        Drift,
        Saturation,
        Summary,
        Histograms,
        UpdateRatio,
        GradCosine,
        GradNoise,
        Spectra,
        LossValue,
        GradNorm,
    )
}


def _default() -> list[Collector]:
    return [cls() for cls in COLLECTORS.values()]


def _all() -> list[Collector]:
    replace: dict[str, Collector] = {
        "summary": Summary(
            stages=ALL_STAGES, quantities=SUMMARY_QUANTITIES, parameter_quantities=None
        ),
        "histograms": Histograms(stages=(*ALL_STAGES, "update")),
    }
    return [replace.get(name, cls()) for name, cls in COLLECTORS.items()]


#: ``"default"``: every collector with its default settings: the full summary
#: of activations and back-propagated gradients and the norms of parameters,
#: gradients and updates at every recorded step; histograms and spectra once
#: per epoch. ``"all"``: the same, with the full summary of parameters,
#: gradients and updates too, each layer's input and grad_input, and updates
#: in the histograms. Collectors that reduce per unit come first, so that the
#: summary reuses their passes.
PRESETS: dict[str, Callable[[], list[Collector]]] = {"default": _default, "all": _all}


def resolve_stats(spec: str | Sequence[str | Collector]) -> list[Collector]:
    """The collectors ``spec`` names: a preset, or a list of names and instances."""
    if isinstance(spec, str):
        if spec in PRESETS:
            return PRESETS[spec]()
        spec = [spec]
    if not isinstance(spec, Sequence):
        raise ConfigError(
            f"Recorder stats must be 'default', 'all' or a list of names and "
            f"collectors, got {spec!r}"
        )
    chosen: list[Collector] = []
    for entry in spec:
        if isinstance(entry, Collector):
            chosen.append(entry)
        elif isinstance(entry, str) and entry in COLLECTORS:
            chosen.append(COLLECTORS[entry]())
        elif isinstance(entry, str):
            known = [*COLLECTORS, *PRESETS]
            raise UnknownNameError(unknown_name("collector", entry, known))
        else:
            raise ConfigError(
                "Recorder stats entries are names or Collector instances, "
                f"got {entry!r}"
            )
    return chosen
