"""Recorder state for checkpoints: what it has recorded, as plain values.

:func:`recorder_state` and :func:`load_recorder_state` back
:meth:`Recorder.state_dict <annlens.analysis.collectors.recorder.Recorder>` and
``Recorder.load_state_dict``: the tables, each collector's settings and state,
and the last recorded epoch, under a format name and version.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from annlens.errors import ConfigError

if TYPE_CHECKING:
    from annlens.analysis.collectors.recorder import Recorder

FORMAT = "annlens.recorder"
VERSION = 1


def recorder_state(recorder: Recorder) -> dict[str, Any]:
    """What :meth:`Recorder.state_dict` returns (see there)."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "variant": recorder.variant,
        "every": recorder.every,
        "parameter_every": recorder.parameter_every,
        "collectors": {
            c.name: {"settings": _jsonable(c.settings()), "state": c.state_dict()}
            for c in recorder.collectors
        },
        "last_recorded_epoch": recorder._last_recorded_epoch,
        "stats": recorder.stats.state(),
        "histograms": recorder.hists.state(),
        "spectra": recorder.spectrum_table.state(),
    }


def load_recorder_state(recorder: Recorder, state: dict[str, Any]) -> None:
    """Restore ``state`` into ``recorder``; checks before changing anything."""
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
    mine = {c.name for c in recorder.collectors}
    unknown = sorted(set(state["collectors"]) - mine)
    if unknown:
        raise ConfigError(
            f"recorder state holds collectors {unknown} that this recorder "
            f"does not have; it has {sorted(mine)}"
        )
    recorder.stats.load(state["stats"])
    recorder.hists.load(state["histograms"])
    recorder.spectrum_table.load(state["spectra"])
    for collector in recorder.collectors:
        if collector.name in state["collectors"]:
            collector.load_state_dict(state["collectors"][collector.name]["state"])
    recorder._last_recorded_epoch = state.get("last_recorded_epoch")
    recorder._step = None


def _describe(state: Any) -> str:
    if isinstance(state, dict):
        return f"format {state.get('format')!r}"
    return type(state).__name__


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
