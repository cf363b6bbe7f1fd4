"""Learning signals: update-to-parameter ratio, gradient cosine, gradient noise.

- :class:`UpdateRatio`: ``||update|| / ||param||`` per parameter and step, the
  relative size of each step (near 1e-3 in healthy training, as a rule of
  thumb).
- :class:`GradCosine`: the cosine between a parameter's gradient at a step
  and at the step before: near 1 when successive batches agree, near 0 or
  negative when noise or oscillation dominates.
- :class:`GradNoise`: the gradient noise scale of a Dense layer's weights
  from per-sample gradient norms, without any per-sample backward pass.

References
----------
McCandlish, S., Kaplan, J., Amodei, D. & the OpenAI Dota team (2018). An
empirical model of large-batch training. arXiv:1812.06162.

Goodfellow, I. (2015). Efficient per-example gradient computations.
arXiv:1510.01799. (Per-sample gradient norms of a dense layer.)
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from annlens.analysis.collectors.base import Collector, Observation, wanted
from annlens.layers.dense import Dense

if TYPE_CHECKING:
    from annlens.analysis.collectors.recorder import Recorder


class UpdateRatio(Collector):
    """``||update|| / ||param||`` for each parameter at each recorded step.

    Notes
    -----
    ``param`` is the parameter before the update is applied (what the step's
    forward used) and ``update`` the change the optimizer proposes, after
    every ``update`` hook registered before the recorder's. Written as
    ``update_ratio`` with stage ``update:<p>``; 0 when the update is zero,
    infinite when only the parameter is (a bias at its zero start).
    """

    name = "update_ratio"
    quantities = ("update_ratio",)

    def stages(self, layer: Any) -> list[str]:
        return wanted(("update",), layer)

    def observe(self, obs: Observation, recorder: Recorder) -> None:
        assert obs.param is not None, "update stages are per parameter"
        update_sq = obs.stats.sumsq()
        param_sq = recorder.param_stats(obs.layer, obs.param).sumsq()
        if update_sq == 0:
            ratio = 0.0
        elif param_sq == 0:
            ratio = math.inf
        else:
            ratio = math.sqrt(update_sq / param_sq)
        recorder.stats.add(
            obs.step, obs.epoch, obs.name, obs.stage, ("update_ratio",), (ratio,)
        )


class _Kept:
    """Two gradient copies of one parameter: the previous step's and this one's."""

    __slots__ = (
        "previous",
        "previous_step",
        "previous_norm",
        "current",
        "current_step",
        "current_norm",
    )

    def __init__(self) -> None:
        self.previous: np.ndarray | None = None
        self.previous_step = -1
        self.previous_norm = math.nan
        self.current: np.ndarray | None = None
        self.current_step = -1
        self.current_norm = math.nan

    def rotate(self, step: int) -> None:
        """Make the copy of an earlier step the previous one."""
        if self.current_step >= 0 and self.current_step != step:
            self.previous, self.current = self.current, self.previous
            self.previous_step, self.previous_norm = (
                self.current_step,
                self.current_norm,
            )
            self.current_step, self.current_norm = -1, math.nan

    def keep(self, step: int, grad: np.ndarray, norm: float, copy: bool) -> None:
        if not copy:
            self.current = grad
        elif self.current is None or self.current.shape != grad.shape:
            self.current = np.array(grad, copy=True)
        else:
            np.copyto(self.current, grad)
        self.current_step, self.current_norm = step, norm


class GradCosine(Collector):
    """The cosine between a parameter's gradients at successive steps.

    Notes
    -----
    For the gradients ``g_t`` and ``g_(t-1)`` of one parameter::

        grad_cosine = <g_t, g_(t-1)> / (||g_t|| ||g_(t-1)||)

    written with stage ``gradient:<p>`` at each step ``t`` that writes
    parameter-level rows and whose step ``t - 1`` was seen (NaN when either
    norm is zero). The collector reads the gradient at the step before each
    recorded step (every step when ``every=1``) and keeps it until the next
    step.

    By default it is kept by reference, not copied: annlens never writes into
    a gradient array once hooks have seen it (layers make new arrays at each
    backward; penalties and clipping replace them), and a copy of the largest
    arrays of the step costs two passes over memory. A loop that does change
    gradients in place should pass ``copy=True``, which keeps copies in
    buffers reused from step to step, and only before steps on the grid of
    parameter-level rows (so none at an epoch's first step off that grid).

    Parameters
    ----------
    copy : bool
        Keep copies instead of references.
    """

    name = "grad_cosine"
    quantities = ("grad_cosine",)

    def __init__(self, copy: bool = False) -> None:
        self.copy = bool(copy)
        self._kept: dict[tuple[str, str], _Kept] = {}

    def settings(self) -> dict[str, Any]:
        return {"copy": self.copy}

    def state_dict(self) -> dict[str, Any]:
        """The latest gradient of each parameter and its step (arrays included),
        so that a resumed run has the cosine at its first recorded step."""
        latest = {}
        for (layer, param), kept in self._kept.items():
            if kept.current is not None and kept.current_step >= 0:
                step, grad, norm = kept.current_step, kept.current, kept.current_norm
            elif kept.previous is not None and kept.previous_step >= 0:
                step, grad, norm = kept.previous_step, kept.previous, kept.previous_norm
            else:
                continue
            latest[f"{layer}/{param}"] = {
                "step": int(step),
                "grad": np.array(grad, copy=True),
                "norm": None if math.isnan(norm) else float(norm),
            }
        return {"latest": latest}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._kept = {}
        for key, entry in (state.get("latest") or {}).items():
            layer, param = key.split("/", 1)
            kept = self._kept[(layer, param)] = _Kept()
            norm = math.nan if entry.get("norm") is None else float(entry["norm"])
            grad = np.asarray(entry["grad"])
            kept.keep(int(entry["step"]), grad, norm, copy=True)

    def stages(self, layer: Any) -> list[str]:
        return wanted(("gradient",), layer)

    def listens_at(self, step: int, recorder: Recorder) -> bool:
        """The step before each recorded step."""
        return recorder.is_recorded(step + 1)

    def observe(self, obs: Observation, recorder: Recorder) -> None:
        assert obs.param is not None, "gradient stages are per parameter"
        kept = self._kept.get((obs.name, obs.param))
        if kept is None:
            kept = self._kept[(obs.name, obs.param)] = _Kept()
        step = obs.step
        kept.rotate(step)

        previous = kept.previous
        if obs.record and kept.previous_step == step - 1 and previous is not None:
            flat = previous.reshape(-1)
            if math.isnan(kept.previous_norm):
                kept.previous_norm = math.sqrt(float(np.dot(flat, flat)))
            denominator = math.sqrt(obs.stats.sumsq()) * kept.previous_norm
            dot = float(np.dot(obs.value.reshape(-1), flat))
            cosine = dot / denominator if denominator > 0 else math.nan
            recorder.stats.add(
                step, obs.epoch, obs.name, obs.stage, ("grad_cosine",), (cosine,)
            )

        if not self.copy:
            kept.keep(step, obs.value, math.nan, copy=False)
        elif recorder.is_parameter_step(step + 1):
            kept.keep(step, obs.value, math.sqrt(obs.stats.sumsq()), copy=True)


class GradNoise(Collector):
    """The gradient noise scale of each Dense layer, from per-sample norms.

    Notes
    -----
    For a Dense layer ``z = x W + b`` and a batch of ``B`` samples, the
    per-sample gradient of ``W`` is an outer product, so its norm needs no
    per-sample backward pass::

        g_i = c x_i^T delta_i,     ||g_i|| = c ||x_i|| ||delta_i||

    where ``delta_i`` is row ``i`` of the delta and ``c`` undoes the loss
    reduction (``c = B`` for a mean-reduced loss, whose deltas carry ``1/B``;
    ``c = 1`` for a sum). The batch gradient is
    ``G = grads["W"] = Σ_i x_i^T delta_i = (B / c) mean g``. The collector
    writes the *simple noise scale* of McCandlish et al. (2018)::

        grad_noise = tr(Σ) / ||mean g||² = mean ||g_i||² / ||mean g||² - 1
                   = B Σ_i ||x_i||² ||delta_i||² / ||grads["W"]||² - 1

    with ``Σ`` the per-sample covariance (divided by ``B``). The constant
    ``c`` cancels, so the value does not depend on the reduction. It is 0
    when all samples agree and grows with their disagreement; it estimates
    the batch size beyond which larger batches stop helping. For the bias,
    ``g_i = c delta_i``. Written with stage ``gradient:W`` (``gradient:b``).
    A regulariser added to ``grads`` before the ``gradient`` stage is counted
    in ``G``.
    """

    name = "grad_noise"
    quantities = ("grad_noise",)

    def __init__(self) -> None:
        self._inputs: dict[str, tuple[int, np.ndarray]] = {}
        self._sums: dict[str, tuple[int, float, float, int]] = {}

    def stages(self, layer: Any) -> list[str]:
        if not isinstance(layer, Dense):
            return []
        return wanted(("input", "delta", "gradient:W", "gradient:b"), layer)

    def observe(self, obs: Observation, recorder: Recorder) -> None:
        name, step = obs.name, obs.step
        if not obs.parameters:
            return
        if obs.stage == "input":
            self._inputs[name] = (step, obs.stats.row_sumsq())
        elif obs.stage == "delta":
            kept = self._inputs.get(name)
            if kept is None or kept[0] != step:
                return
            x_sq, d_sq = kept[1], obs.stats.row_sumsq()
            weight = float(np.dot(x_sq.astype(np.float64), d_sq))
            bias = float(d_sq.sum(dtype=np.float64))
            self._sums[name] = (step, weight, bias, len(d_sq))
        else:
            sums = self._sums.get(name)
            if sums is None or sums[0] != step:
                return
            per_sample = sums[1] if obs.param == "W" else sums[2]
            batch_sq = obs.stats.sumsq()
            noise = sums[3] * per_sample / batch_sq - 1.0 if batch_sq > 0 else math.nan
            recorder.stats.add(
                step, obs.epoch, name, obs.stage, ("grad_noise",), (noise,)
            )
