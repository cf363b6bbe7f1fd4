"""Unit health: dead ReLU units, saturated sigmoid and tanh units, and drift.

All three read the pre-activation ``z`` of a layer, shape (batch, units):

- :class:`DeadUnits`: units whose ``z <= 0`` for every sample, so that their
  output and their gradient are zero; per batch and over a whole epoch.
- :class:`Saturation`: entries of ``z`` where the activation's slope has
  fallen below a small fraction of its peak.
- :class:`Drift`: how far the per-unit mean of ``z`` moves from one epoch to
  the next.

References
----------
Glorot, X. & Bengio, Y. (2010). Understanding the difficulty of training deep
feedforward neural networks. AISTATS. (Saturation of sigmoid layers.)

Lu, L. et al. (2020). Dying ReLU and initialization: theory and numerical
examples. Communications in Computational Physics 28(5).

Ioffe, S. & Szegedy, C. (2015). Batch normalization: accelerating deep network
training by reducing internal covariate shift. ICML. (Shifting distributions
of layer inputs during training.)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from annlens.analysis.collectors.base import (
    Collector,
    Observation,
    activation_name,
    available_stages,
)
from annlens.analysis.collectors.tables import decode_floats, encode_floats
from annlens.errors import ConfigError

if TYPE_CHECKING:
    from annlens.analysis.collectors.recorder import Recorder

#: Activations whose output and slope are exactly zero for ``z <= 0``.
DEAD_ACTIVATIONS = ("relu", "relu6")

#: Default slope fraction below which a unit counts as saturated.
SATURATION_SLOPE = 0.02


def saturation_bounds(activation: Any, slope: float) -> tuple[float, float] | None:
    """The interval of ``z`` outside which ``f'(z) <= slope · max f'``.

    Parameters
    ----------
    activation : Activation
        The nonlinearity (sigmoid, tanh, softsign or hard_tanh).
    slope : float
        The fraction of the peak slope, in (0, 1).

    Returns
    -------
    (low, high) or None
        None for an activation without a saturation rule here.

    Notes
    -----
    ``tanh' = 1 - tanh²`` falls to ``slope`` (its peak is 1) at
    ``|z| = atanh(√(1 - slope))``: 2.64 for the default 0.02, where
    ``|a| = 0.99``. ``sigmoid(z) = (1 + tanh(z/2)) / 2``, so its bound is twice
    that, 5.29. ``softsign' = 1 / (1 + |z|)²`` reaches it at
    ``|z| = 1/√slope - 1``. ``hard_tanh`` has slope 0 at and beyond its
    bounds, whatever ``slope``.
    """
    name = getattr(activation, "name", None)
    if name == "tanh":
        bound = math.atanh(math.sqrt(1.0 - slope))
    elif name == "sigmoid":
        bound = 2.0 * math.atanh(math.sqrt(1.0 - slope))
    elif name == "softsign":
        bound = 1.0 / math.sqrt(slope) - 1.0
    elif name == "hard_tanh":
        return float(activation.min_val), float(activation.max_val)
    else:
        return None
    return -bound, bound


def _pre_activation(layer: Any) -> bool:
    return "pre_activation" in available_stages(layer)


class DeadUnits(Collector):
    """The fraction of units that output zero, for a batch and for an epoch.

    Parameters
    ----------
    activations : sequence of str
        Activation names whose units can die (default ``relu``, ``relu6``).
    all_steps : bool
        Count a unit dead for the epoch only when it is dead at every training
        step, recorded or not; this reads ``z`` at every step, which costs a
        pass over it where the recorder would otherwise pause.

    Notes
    -----
    A unit ``j`` is *dead for the batch* when ``z_ij <= 0`` for every sample
    ``i``: its output is zero and so is every gradient through it.
    ``dead_fraction`` is the share of such units at a recorded step.
    A unit is *dead for the epoch* when that holds at every recorded step of
    the epoch (with ``every=1``, every training step; with ``all_steps``,
    every training step whatever ``every`` is);
    ``dead_epoch_fraction`` is written by ``end_epoch``. Both rows have stage
    ``post_activation``, the output that is zero.

    Leaky ReLU, ELU, SELU, GELU and SiLU are not counted by default: for
    ``z < 0`` their slope is small but not zero, so a unit can recover.
    Add their names to ``activations`` to count such units as inactive.
    """

    name = "dead_units"
    quantities = ("dead_fraction", "dead_epoch_fraction")

    def __init__(
        self, activations: Sequence[str] = DEAD_ACTIVATIONS, all_steps: bool = False
    ) -> None:
        self.activations = tuple(activations)
        self.all_steps = bool(all_steps)
        self._alive: dict[str, np.ndarray] = {}

    def listens_at(self, step: int, recorder: Recorder) -> bool:
        return self.all_steps

    def stages(self, layer: Any) -> list[str]:
        if activation_name(layer) in self.activations and _pre_activation(layer):
            return ["pre_activation"]
        return []

    def observe(self, obs: Observation, recorder: Recorder) -> None:
        alive = obs.stats.column_max() > 0
        seen = self._alive.get(obs.name)
        if seen is None or seen.shape != alive.shape:
            self._alive[obs.name] = alive
        else:
            np.logical_or(seen, alive, out=seen)
        if obs.record:
            dead = (alive.size - np.count_nonzero(alive)) / alive.size
            recorder.stats.add(
                obs.step,
                obs.epoch,
                obs.name,
                "post_activation",
                ("dead_fraction",),
                (dead,),
            )

    def end_epoch(self, recorder: Recorder, epoch: int, step: int) -> None:
        for name, alive in self._alive.items():
            dead = (alive.size - np.count_nonzero(alive)) / alive.size
            recorder.stats.add(
                step, epoch, name, "post_activation", ("dead_epoch_fraction",), (dead,)
            )
        self._alive = {}

    def state_dict(self) -> dict[str, Any]:
        return {"alive": {k: v.astype(int).tolist() for k, v in self._alive.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._alive = {
            k: np.asarray(v, dtype=bool) for k, v in state.get("alive", {}).items()
        }

    def settings(self) -> dict[str, Any]:
        return {"activations": self.activations, "all_steps": self.all_steps}


class Saturation(Collector):
    """The fraction of entries where a sigmoid-like activation is flat.

    Parameters
    ----------
    slope : float
        An entry counts as saturated when ``f'(z) <= slope · max f'``
        (default 0.02: ``|z| >= 2.64`` for tanh, ``|a| >= 0.99``; ``|z| >=
        5.29`` for sigmoid); see :func:`saturation_bounds`.
    bounds : mapping of str to (low, high), optional
        Explicit bounds on ``z`` by activation name, for other activations or
        to override the slope rule.

    Notes
    -----
    ``saturated_fraction`` is the share of the ``batch × units`` entries of
    ``z`` at or outside ``[low, high]``, written with stage
    ``pre_activation``.
    """

    name = "saturation"
    quantities = ("saturated_fraction",)

    def __init__(
        self,
        slope: float = SATURATION_SLOPE,
        bounds: Mapping[str, tuple[float, float]] | None = None,
    ) -> None:
        if not (isinstance(slope, (int, float)) and 0.0 < slope < 1.0):
            raise ConfigError(f"Saturation slope must be in (0, 1), got {slope!r}")
        self.slope = float(slope)
        self.bounds = {k: (float(v[0]), float(v[1])) for k, v in (bounds or {}).items()}
        self._limits: dict[str, tuple[float, float]] = {}

    def limits(self, layer: Any) -> tuple[float, float] | None:
        """The bounds on ``z`` for ``layer``'s activation, or None."""
        name = activation_name(layer)
        if name is None:
            return None
        if name in self.bounds:
            return self.bounds[name]
        return saturation_bounds(layer.activation, self.slope)

    def stages(self, layer: Any) -> list[str]:
        limits = self.limits(layer)
        if limits is None or not _pre_activation(layer):
            return []
        self._limits[layer.name] = limits
        return ["pre_activation"]

    def observe(self, obs: Observation, recorder: Recorder) -> None:
        low, high = self._limits[obs.name]
        z = obs.value
        count = np.count_nonzero(z <= low) + np.count_nonzero(z >= high)
        fraction = count / z.size if z.size else math.nan
        recorder.stats.add(
            obs.step,
            obs.epoch,
            obs.name,
            obs.stage,
            ("saturated_fraction",),
            (fraction,),
        )

    def settings(self) -> dict[str, Any]:
        return {"slope": self.slope, "bounds": self.bounds}


class Drift(Collector):
    """How far each unit's mean pre-activation moves between epochs.

    Notes
    -----
    Over the recorded steps of epoch ``e`` the collector averages ``z`` per
    unit, ``μ_e[j]``, and over all entries, with standard deviation ``σ_e``.
    At the end of each epoch after the first it writes, with stage
    ``pre_activation``::

        drift          = mean over units j of |μ_e[j] - μ_(e-1)[j]|
        drift_relative = drift / σ_(e-1)

    ``drift_relative`` measures the move in units of the previous epoch's
    spread of ``z``. Only recorded steps are averaged (a sample of the epoch
    when ``every > 1``).
    """

    name = "drift"
    quantities = ("drift", "drift_relative")

    def __init__(self) -> None:
        self._sum: dict[str, np.ndarray] = {}
        self._rows: dict[str, int] = {}
        self._sumsq: dict[str, float] = {}
        self._previous: dict[str, tuple[np.ndarray, float]] = {}

    def stages(self, layer: Any) -> list[str]:
        return ["pre_activation"] if _pre_activation(layer) else []

    def observe(self, obs: Observation, recorder: Recorder) -> None:
        column_sum = obs.stats.column_sum().astype(np.float64)
        name = obs.name
        if name in self._sum and self._sum[name].shape == column_sum.shape:
            self._sum[name] += column_sum
            self._rows[name] += obs.value.shape[0]
            self._sumsq[name] += obs.stats.sumsq()
        else:
            self._sum[name] = column_sum
            self._rows[name] = obs.value.shape[0]
            self._sumsq[name] = obs.stats.sumsq()

    def end_epoch(self, recorder: Recorder, epoch: int, step: int) -> None:
        for name, total in self._sum.items():
            rows = self._rows[name]
            means = total / rows
            overall = float(means.mean())
            var = self._sumsq[name] / (rows * means.size) - overall * overall
            sigma = math.sqrt(max(var, 0.0))
            previous = self._previous.get(name)
            if previous is not None and previous[0].shape == means.shape:
                drift = float(np.abs(means - previous[0]).mean())
                relative = drift / previous[1] if previous[1] > 0 else math.nan
                recorder.stats.add(
                    step,
                    epoch,
                    name,
                    "pre_activation",
                    ("drift", "drift_relative"),
                    (drift, relative),
                )
            self._previous[name] = (means, sigma)
        self._sum, self._rows, self._sumsq = {}, {}, {}

    def state_dict(self) -> dict[str, Any]:
        return {
            "sum": {k: encode_floats(v) for k, v in self._sum.items()},
            "rows": dict(self._rows),
            "sumsq": {k: encode_floats([v])[0] for k, v in self._sumsq.items()},
            "previous": {
                k: [encode_floats(v[0]), encode_floats([v[1]])[0]]
                for k, v in self._previous.items()
            },
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._sum = {k: decode_floats(v) for k, v in state["sum"].items()}
        self._rows = {k: int(v) for k, v in state["rows"].items()}
        self._sumsq = {
            k: float(decode_floats([v])[0]) for k, v in state["sumsq"].items()
        }
        self._previous = {
            k: (decode_floats(v[0]), float(decode_floats([v[1]])[0]))
            for k, v in state["previous"].items()
        }
