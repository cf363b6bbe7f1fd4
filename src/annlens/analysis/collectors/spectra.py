"""Singular values of weight matrices and their effective rank.

:class:`Spectra` computes the singular values of each weight matrix at chosen
steps, keeps the whole spectrum in the spectra table and writes ``sv_max``,
``sv_min`` and ``effective_rank`` to the statistics table. A singular value
decomposition costs far more than a training step, so by default it runs on
the initial weights (the first recorded step) and at the end of each epoch.

References
----------
Roy, O. & Vetterli, M. (2007). The effective rank: a measure of effective
dimensionality. EUSIPCO.

Gao, P. et al. (2017). A theory of multineuronal dimensionality, dynamics and
measurement. bioRxiv 214262. (The participation ratio.)
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from annlens.analysis.collectors.base import Collector, Observation, wanted
from annlens.errors import ConfigError

if TYPE_CHECKING:
    from annlens.analysis.collectors.recorder import Recorder


def effective_rank(singular_values: NDArray[Any], kind: str = "entropy") -> float:
    """The effective rank of a matrix from its singular values.

    Parameters
    ----------
    singular_values : ndarray, shape (k,)
        Non-negative singular values.
    kind : {"entropy", "participation"}
        Which definition.

    Returns
    -------
    float
        Between 1 and ``k`` (NaN when every singular value is zero).

    Notes
    -----
    Entropy (Roy & Vetterli, 2007), with ``p_k = s_k / Σ s``::

        erank = exp(-Σ p_k log p_k)

    Participation ratio, on the squared singular values ``λ_k = s_k²`` (the
    eigenvalues of ``W^T W``)::

        PR = (Σ λ_k)² / Σ λ_k²

    Both equal ``k`` when all singular values are equal and 1 when one
    dominates; the participation ratio weighs the large values more.
    """
    s = np.asarray(singular_values, dtype=np.float64)
    total = s.sum()
    if not total > 0:
        return math.nan
    if kind == "entropy":
        p = s[s > 0] / total
        return float(np.exp(-np.sum(p * np.log(p))))
    if kind == "participation":
        lam = s * s
        return float(lam.sum() ** 2 / np.sum(lam * lam))
    raise ConfigError(
        f"effective_rank kind must be 'entropy' or 'participation', got {kind!r}"
    )


class Spectra(Collector):
    """Singular values of every 2-D parameter, with sv_max, sv_min, effective_rank.

    Parameters
    ----------
    every : "epoch" or int
        ``"epoch"``: at the first recorded step (the initial weights) and at
        each ``end_epoch``; an integer ``k``: at recorded steps that are
        multiples of ``k``.
    rank : {"entropy", "participation"}
        The definition of ``effective_rank`` (see :func:`effective_rank`).

    Notes
    -----
    Rows carry stage ``param:<p>`` and, like every ``param`` row, the step
    whose forward uses those weights: at the end of an epoch that is
    ``model.state.step``, the first step of the next epoch.
    """

    name = "spectra"
    quantities = ("sv_max", "sv_min", "effective_rank")

    def __init__(self, every: str | int = "epoch", rank: str = "entropy") -> None:
        if every != "epoch" and (
            isinstance(every, bool) or not isinstance(every, int) or every < 1
        ):
            raise ConfigError(
                f"Spectra every must be 'epoch' or a positive integer, got {every!r}"
            )
        if rank not in ("entropy", "participation"):
            raise ConfigError(
                f"Spectra rank must be 'entropy' or 'participation', got {rank!r}"
            )
        self.every = every
        self.rank = rank
        self._layers: dict[str, Any] = {}
        self._started = False

    def stages(self, layer: Any) -> list[str]:
        chosen = [
            stage
            for stage in wanted(("param",), layer)
            if np.ndim(layer.params[stage.split(":", 1)[1]]) == 2
        ]
        if chosen:
            self._layers[layer.name] = layer
        return chosen

    def observe(self, obs: Observation, recorder: Recorder) -> None:
        if self.every == "epoch":
            due = not self._started or obs.step == self._first_step
        else:
            due = obs.step % int(self.every) == 0
        if not self._started:
            self._started, self._first_step = True, obs.step
        if due:
            assert obs.param is not None, "param stages are per parameter"
            self.write(recorder, obs.step, obs.epoch, obs.name, obs.param, obs.value)

    _first_step = -1

    def write(
        self,
        recorder: Recorder,
        step: int,
        epoch: int,
        layer: str,
        param: str,
        matrix: NDArray[Any],
    ) -> None:
        """Decompose ``matrix`` and write its spectrum and summary rows."""
        if not np.all(np.isfinite(matrix)):
            values = (math.nan, math.nan, math.nan)
        else:
            s = np.linalg.svd(matrix, compute_uv=False).astype(np.float64)
            recorder.spectrum_table.add(step, epoch, layer, param, s)
            values = (float(s[0]), float(s[-1]), effective_rank(s, self.rank))
        recorder.stats.add(
            step, epoch, layer, f"param:{param}", self.quantities, values
        )

    def end_epoch(self, recorder: Recorder, epoch: int, step: int) -> None:
        if self.every != "epoch":
            return
        step = int(recorder.model.state.step)
        for name, layer in self._layers.items():
            for param, value in layer.params.items():
                if np.ndim(value) == 2:
                    self.write(recorder, step, epoch, name, param, value)

    def state_dict(self) -> dict[str, Any]:
        return {"started": self._started, "first_step": self._first_step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._started = bool(state.get("started", False))
        self._first_step = int(state.get("first_step", -1))

    def settings(self) -> dict[str, Any]:
        return {"every": self.every, "rank": self.rank}
