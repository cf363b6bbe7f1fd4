"""Rules on the course of training: step size, loss curve, non-finite values.

- :class:`UpdateRatio`: ``||update|| / ||W||`` far from the 1e-3 rule of thumb.
- :class:`DivergingLoss`, :class:`FlatLoss`, :class:`Plateau`: the shape of
  the smoothed training loss (``loss`` rows, layer and stage ``model``).
- :class:`NonFinite`: NaN or Inf in the recorded statistics, with the first
  layer, stage and step where it appeared.

References
----------
Karpathy, A. (2016). CS231n: Convolutional neural networks for visual
recognition, lecture notes "Neural networks part 3: learning and evaluation"
(the ratio of updates to weights, about 1e-3; babysitting the loss curve).

Bengio, Y. (2012). Practical recommendations for gradient-based training of
deep architectures. In Neural Networks: Tricks of the Trade, 2nd ed.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd

from annlens.analysis.collectors.base import STAGE_ORDER
from annlens.analysis.diagnostics.base import Rule
from annlens.analysis.diagnostics.findings import Finding
from annlens.analysis.diagnostics.settings import DiagnosticSettings
from annlens.analysis.diagnostics.view import (
    StatsView,
    finite_median,
    smooth,
    smoothing_window,
)

_CS231N = "Karpathy, CS231n notes (2016): update/weight ratio about 1e-3"


class UpdateRatio(Rule):
    """The median update/parameter ratio is far below or above ~1e-3."""

    name = "update_ratio"
    source = _CS231N

    def check(self, view: StatsView, settings: DiagnosticSettings) -> list[Finding]:
        medians: dict[str, float] = {}
        steps: list[int] = []
        for stage in view.stages("update"):
            if stage.split(":", 1)[1] not in settings.update_ratio_params:
                continue
            table = view.table(stage, "update_ratio")
            for layer in table.columns:
                medians[f"{layer}.{stage.split(':', 1)[1]}"] = finite_median(
                    table[layer]
                )
            if len(table):
                steps += [int(table.index[0]), int(table.index[-1])]
        if not medians:
            return []
        span = (min(steps), max(steps))
        findings = []
        low = {k: v for k, v in medians.items() if v < settings.update_ratio_low}
        high = {k: v for k, v in medians.items() if v > settings.update_ratio_high}
        definition = (
            "median over recorded steps of ||update|| / ||param|| (param before "
            "the update), per weight matrix"
        )
        if low:
            measured = min(low.values())
            findings.append(
                self.finding(
                    view,
                    severity="warning",
                    layers=_layers(low),
                    step_range=span,
                    measured=measured,
                    threshold=settings.update_ratio_low,
                    definition=definition + "; too small",
                    message=(
                        f"Each step changes the weights by a tiny fraction "
                        f"({_listing(low)}), below {settings.update_ratio_low:g}: "
                        "learning is slow."
                    ),
                    suggestion=(
                        "Raise the learning rate (a ratio near 1e-3 is typical), or "
                        "check for vanishing gradients and dead units."
                    ),
                    evidence={"median_update_ratio": low},
                )
            )
        if high:
            measured = max(high.values())
            findings.append(
                self.finding(
                    view,
                    severity="warning",
                    layers=_layers(high),
                    step_range=span,
                    measured=measured,
                    threshold=settings.update_ratio_high,
                    definition=definition + "; too large",
                    message=(
                        f"Each step changes the weights by a large fraction "
                        f"({_listing(high)}), above {settings.update_ratio_high:g}: "
                        "training may oscillate or diverge."
                    ),
                    suggestion=(
                        "Lower the learning rate, add warm-up, or clip gradients; a "
                        "ratio near 1e-3 is typical."
                    ),
                    evidence={"median_update_ratio": high},
                )
            )
        return findings


def _loss(view: StatsView, settings: DiagnosticSettings) -> pd.Series | None:
    """The finite training loss by step, or None when too short."""
    loss = view.model_series("loss")
    loss = loss[np.isfinite(loss)]
    return loss if len(loss) >= settings.min_steps else None


def _ends(
    loss: pd.Series, settings: DiagnosticSettings
) -> tuple[pd.Series, float, float, float]:
    """Smoothed loss, its value at the start (first window), end and best.

    The best is the lowest mean over a full window: the first points of the
    trailing mean average fewer steps (the very first is a single batch), and
    a lucky early batch is not progress.
    """
    smoothed = smooth(loss, settings.smoothing)
    window = smoothing_window(len(loss), settings.smoothing)
    return (
        smoothed,
        float(smoothed.iloc[window - 1]),
        float(smoothed.iloc[-1]),
        float(smoothed.iloc[window - 1 :].min()),
    )


def _averaged(loss: pd.Series, settings: DiagnosticSettings) -> str:
    """How the loss levels in a message were read: means of a trailing window."""
    window = smoothing_window(len(loss), settings.smoothing)
    if window == 1:
        return "single recorded values"
    return f"means over {window} recorded steps"


def _noise(loss: pd.Series, settings: DiagnosticSettings) -> float:
    """Three standard errors of the smoothed loss: a rise smaller than this
    can be batch-to-batch noise rather than divergence."""
    window = smoothing_window(len(loss), settings.smoothing)
    residual = loss - smooth(loss, settings.smoothing)
    return 3.0 * float(residual.std(ddof=0)) / math.sqrt(window)


def _how_far_above(ratio: float) -> str:
    """``"35% above"`` for a modest rise, ``"3.4e+30 times as high as"`` beyond 10x."""
    if ratio > 10:
        return f"{ratio:.2g} times as high as"
    return f"{ratio - 1:.0%} above"


def _is_flat(
    loss: pd.Series, settings: DiagnosticSettings
) -> tuple[bool, float, float]:
    """Whether the loss ends where it started, within its tolerance or its noise.

    Flat: the smoothed loss at the end differs from its value at the start
    (means over a full window each) by less than ``flat_tolerance`` of the
    start and never fell below the start by more than twice that. When the
    record starts at the first step, the bound is :func:`_noise` (three
    standard errors of those means) where that is larger: batch-to-batch
    noise moves window means by more than 1%, and a run that never descends
    from its initial loss would otherwise be read as a plateau, while a run
    that learns falls far beyond its noise. A record that starts later keeps
    the plain tolerance, since a slow fall under noise is how a trained run
    converges.

    Returns
    -------
    (flat, change, bound)
        The change from start to end and the bound it is held to, both
        relative to the start.
    """
    _, first, last, best = _ends(loss, settings)
    if not first:
        return False, math.inf, settings.flat_tolerance
    bound = settings.flat_tolerance * abs(first)
    if int(loss.index[0]) == 0:
        bound = max(bound, _noise(loss, settings))
    change = abs(last - first)
    flat = change < bound and first - best < 2 * bound
    return flat, change / abs(first), bound / abs(first)


class DivergingLoss(Rule):
    """The smoothed loss ends above its start, or gives back most of its progress."""

    name = "diverging_loss"
    source = "Bengio (2012), Practical recommendations; Karpathy, CS231n notes (2016)"
    suggestion = (
        "Lower the learning rate (often by 3-10x), add warm-up or gradient "
        "clipping, and check the data and the loss for errors."
    )

    def check(self, view: StatsView, settings: DiagnosticSettings) -> list[Finding]:
        loss = _loss(view, settings)
        if loss is None:
            return []
        smoothed, first, last, best = _ends(loss, settings)
        window = smoothing_window(len(loss), settings.smoothing)
        span = (int(smoothed.iloc[window - 1 :].idxmin()), int(loss.index[-1]))
        if last > first + settings.diverging_rise * abs(first):
            rise = (last - first) / abs(first) + 1 if first else math.inf
            return [
                self.finding(
                    view,
                    severity="critical",
                    layers=("model",),
                    step_range=(int(loss.index[0]), int(loss.index[-1])),
                    measured=rise - 1,
                    threshold=settings.diverging_rise,
                    definition=(
                        "smoothed training loss at the end over its value at the "
                        "start, minus one"
                    ),
                    message=(
                        f"The loss ended {_how_far_above(rise)} where it started "
                        f"({first:.4g} to {last:.4g}, {_averaged(loss, settings)})."
                    ),
                    evidence={"start": first, "end": last, "best": best},
                )
            ]
        progress = first - best
        if progress > settings.diverging_min_progress * abs(first):
            given_back = (last - best) / progress
            if given_back > settings.diverging_giveback and last - best > _noise(
                loss, settings
            ):
                return [
                    self.finding(
                        view,
                        severity="critical",
                        layers=("model",),
                        step_range=span,
                        measured=given_back,
                        threshold=settings.diverging_giveback,
                        definition=(
                            "share of the smoothed loss's progress from its start "
                            "to its best that was lost again by the end"
                        ),
                        message=(
                            f"The loss fell from {first:.4g} to {best:.4g}, then "
                            f"rose again to {last:.4g} ({given_back:.0%} of its "
                            f"progress lost; {_averaged(loss, settings)})."
                        ),
                        evidence={"start": first, "end": last, "best": best},
                    )
                ]
        return []


class FlatLoss(Rule):
    """The smoothed loss ends where it started, within its tolerance or its noise.

    The change from the first window mean to the last is held to
    ``flat_tolerance`` of the start or, for a record from the first step, to
    three standard errors of the smoothed loss where that is larger, so that
    batch-to-batch noise does not hide a run that never descends (see
    :func:`_is_flat`).
    """

    name = "flat_loss"
    source = "Bengio (2012), Practical recommendations; Karpathy, CS231n notes (2016)"
    suggestion = (
        "Check that gradients reach the weights (vanishing gradients, dead "
        "units), raise the learning rate, and check that inputs and targets "
        "match."
    )

    def check(self, view: StatsView, settings: DiagnosticSettings) -> list[Finding]:
        loss = _loss(view, settings)
        if loss is None:
            return []
        flat, relative, bound = _is_flat(loss, settings)
        if not flat:
            return []
        _, first, last, _ = _ends(loss, settings)
        return [
            self.finding(
                view,
                severity="warning",
                layers=("model",),
                step_range=(int(loss.index[0]), int(loss.index[-1])),
                measured=relative,
                threshold=bound,
                definition=(
                    "change of the smoothed training loss from its start to its "
                    "end, relative to its start; threshold: flat_tolerance or, "
                    "for a record from the first step, three standard errors of "
                    "the smoothed loss, whichever is larger"
                ),
                message=(
                    f"The loss did not descend: it went from {first:.4g} to "
                    f"{last:.4g} ({_averaged(loss, settings)}), a change of "
                    f"{relative:.2%}, within {bound:.2%} (its tolerance or its "
                    "batch-to-batch noise)."
                ),
                evidence={
                    "start": first,
                    "end": last,
                    "noise": _noise(loss, settings),
                },
            )
        ]


class Plateau(Rule):
    """The loss stops falling for a long stretch while still high.

    "Still high" is judged in one of two ways. When the record starts at the
    first step, a stall above ``plateau_level`` of the initial loss counts.
    When it starts later (a recorder attached to a model that was already
    trained), the initial level says nothing about convergence, so a stall
    counts only when the loss later falls again by more than
    ``plateau_tolerance`` of the stalled level and more than its noise: a
    plateau that ended.
    """

    name = "plateau"
    source = (
        "Glorot & Bengio (2010): plateaus of sigmoid networks; Bengio (2012), "
        "Practical recommendations"
    )
    suggestion = (
        "Look at saturated units and vanishing gradients in that stretch; a "
        "different initialisation, a larger learning rate or an adaptive "
        "optimizer (Adam) usually shortens plateaus."
    )

    def check(self, view: StatsView, settings: DiagnosticSettings) -> list[Finding]:
        loss = _loss(view, settings)
        if loss is None or _is_flat(loss, settings)[0]:
            return []
        smoothed, first, _, _ = _ends(loss, settings)
        values = smoothed.to_numpy()
        # A stretch spans at least two smoothing windows, so that a stall is
        # told from noise by averaged values rather than single batches.
        window = smoothing_window(len(values), settings.smoothing)
        length = max(2 * window, int(round(len(values) * settings.plateau_window)))
        if length > len(values):
            return []
        from_start = int(loss.index[0]) == 0
        noise = _noise(loss, settings)
        starts = []
        for i in range(len(values) - length + 1):
            begin, end = values[i], values[i + length - 1]
            # stalled: neither falling nor rising (a rise is divergence)
            stalled = abs(begin - end) < settings.plateau_tolerance * abs(begin)
            if from_start:
                high = end > settings.plateau_level * first
            else:
                later = values[i + length - 1 :].min()
                fall = max(settings.plateau_tolerance * abs(end), noise)
                high = end - later > fall
            if stalled and high:
                starts.append(i)
        if not starts:
            return []
        i0, i1 = starts[0], starts[-1] + length - 1
        begin = values[starts[0]]
        drop = (begin - values[starts[0] + length - 1]) / abs(begin) if begin else 0.0
        steps = smoothed.index
        return [
            self.finding(
                view,
                severity="warning",
                layers=("model",),
                step_range=(int(steps[i0]), int(steps[i1])),
                measured=float(drop),
                threshold=settings.plateau_tolerance,
                definition=(
                    f"relative fall of the smoothed loss over a stretch of "
                    f"{settings.plateau_window:.0%} of the run while above "
                    f"{settings.plateau_level:.0%} of its start; first such stretch"
                ),
                message=(
                    f"The loss stalled near {float(values[i0]):.4g} from step "
                    f"{int(steps[i0])} to {int(steps[i1])}, well above where it "
                    "would be after a normal descent."
                ),
                evidence={"stretches": len(starts), "start_loss": first},
            )
        ]


#: Quantities that are NaN or Inf only when the data are.
DATA_QUANTITIES = (
    "mean",
    "std",
    "var",
    "min",
    "max",
    "l2",
    "rms",
    "mean_abs",
    "loss",
    "grad_norm",
)


class NonFinite(Rule):
    """NaN or Inf in a recorded statistic: where and when it first appeared."""

    name = "non_finite"
    source = "practice: numerical failure stops learning; report where it starts"
    suggestion = (
        "Lower the learning rate, clip gradients, and check the inputs for NaN; "
        "use the stable fused losses (softmax cross-entropy on logits)."
    )

    def check(self, view: StatsView, settings: DiagnosticSettings) -> list[Finding]:
        frame = view.frame
        rows = frame[frame["quantity"].isin(DATA_QUANTITIES)]
        bad = rows[~np.isfinite(rows["value"].to_numpy(dtype=np.float64))]
        if not len(bad):
            return []
        first_step = int(bad["step"].min())
        at_first = bad[bad["step"] == first_step]
        key = flow_order(view.order)
        layer, stage = min(
            zip(at_first["layer"], at_first["stage"], strict=True), key=key
        )
        where = f"{layer}.{stage}"
        if stage == "model":
            chosen = at_first[
                (at_first["layer"] == layer) & (at_first["stage"] == stage)
            ]
            quantities = ", ".join(dict.fromkeys(chosen["quantity"].astype(str)))
            where = f"the model's {quantities}"
        return [
            self.finding(
                view,
                severity="critical",
                layers=(str(layer),),
                step_range=(first_step, int(bad["step"].max())),
                measured=float(len(bad)),
                threshold=0.0,
                definition=(
                    "count of NaN or Inf among the recorded statistics of the data "
                    f"({', '.join(DATA_QUANTITIES)})"
                ),
                message=(
                    f"NaN or Inf first appeared at {where} at step "
                    f"{first_step}, the first point in forward-then-backward order "
                    f"({len(bad)} non-finite values in all)."
                ),
                evidence={"first_layer": str(layer), "first_stage": str(stage)},
            )
        ]


def flow_order(order: list[str]) -> Callable[[tuple[str, str]], tuple[int, int, int]]:
    """A sort key putting (layer, stage) pairs in the order a step reaches them.

    Forward stages input side first, then the loss, then backward stages
    output side first, then the final parameter gradients (also output side
    first, as ``finish_gradients`` fires them), then the updates.
    """
    rank = {name: i for i, name in enumerate(order)}

    def key(pair: tuple[str, str]) -> tuple[int, int, int]:
        layer, stage = pair
        family = stage.split(":", 1)[0]
        position = rank.get(layer, len(rank))
        within = STAGE_ORDER.get(family, len(STAGE_ORDER))
        if family in ("input", "pre_activation", "post_activation", "output"):
            return 0, position, within
        if family == "model":
            return 1, 0, 0
        if family == "update":
            return 4, position, within
        if family in ("param", "gradient"):
            return 3, -position, within
        return 2, -position, within

    return key


def _layers(values: dict[str, float]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(key.rsplit(".", 1)[0] for key in values))


def _listing(values: dict[str, float]) -> str:
    return ", ".join(f"{key}: {value:.1e}" for key, value in values.items())
