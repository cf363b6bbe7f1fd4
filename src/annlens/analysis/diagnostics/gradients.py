"""Rules on gradient flow: vanishing and exploding gradients.

Both judge the *back-propagated* gradient, delta = dL/dz (or grad_output =
dL/da where a layer has no delta), compared across depth, never the weight
gradients: ``grads["W"] = x^T delta`` multiplies the shrinking delta by
activations that grow in the opposite direction, so weight-gradient norms
stay level across layers even when the signal vanishes (Glorot & Bengio,
2010, section 4.2.2). The forward activation variance is read alongside, to
tell a too-small initialisation (both shrink) from saturated derivatives (only
the backward signal shrinks).

Across depth the rules compare *squared L2 norms* (all samples and units of a
batch): with equal widths this is the ratio of variances, and with a fan-in
initialisation it stays level through layers of different widths, where
per-unit variances would change with the width alone.

References
----------
Glorot, X. & Bengio, Y. (2010). Understanding the difficulty of training deep
feedforward neural networks. AISTATS.

Hochreiter, S. (1991). Untersuchungen zu dynamischen neuronalen Netzen.
Diploma thesis, TU Munich.

Pascanu, R., Mikolov, T. & Bengio, Y. (2013). On the difficulty of training
recurrent neural networks. ICML. (Exploding gradients and norm clipping.)
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from annlens.analysis.diagnostics.base import Rule
from annlens.analysis.diagnostics.findings import Finding
from annlens.analysis.diagnostics.settings import DiagnosticSettings
from annlens.analysis.diagnostics.view import StatsView, finite_median, persistent

_DEPTH = (
    "the ratio of the squared L2 norm of the back-propagated gradient {what} at "
    "the first layer ({first}) to that at the last layer ({last}), per recorded "
    "step, over all samples and units of the batch"
)


def depth_ratio(view: StatsView) -> tuple[pd.Series, str, str, str] | None:
    """Squared-norm ratio first/last layer of delta (else grad_output) by step.

    Returns
    -------
    (ratio, stage, first, last) or None
        None when fewer than two layers have the quantity.
    """
    for stage in ("delta", "grad_output"):
        norms = view.table(stage, "l2")
        if norms.shape[1] >= 2:
            first, last = norms.columns[0], norms.columns[-1]
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = (norms[first] / norms[last]) ** 2
            ratio = ratio[np.isfinite(ratio)]
            return ratio, stage, str(first), str(last)
    return None


def forward_ratio(view: StatsView) -> float:
    """Median activation variance, last hidden layer over first (NaN if unknown).

    The output layer is left out when there are three layers or more: its
    variance follows the targets, not the signal.
    """
    variances = view.table("post_activation", "var")
    columns = list(variances.columns)
    if len(columns) >= 3:
        columns = columns[:-1]
    if len(columns) < 2:
        return math.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = variances[columns[-1]] / variances[columns[0]]
    return finite_median(ratio)


def _weight_gradient_ratio(view: StatsView) -> float:
    norms = view.table("gradient:W", "l2")
    if norms.shape[1] < 2:
        return math.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        return finite_median((norms.iloc[:, 0] / norms.iloc[:, -1]) ** 2)


def _what(stage: str) -> str:
    return "delta = dL/dz" if stage == "delta" else "grad_output = dL/da"


#: From this median dead_fraction on, a layer's dead units explain a vanishing
#: gradient (and the shrinking forward variance) before anything else does.
MOSTLY_DEAD = 0.9

#: Below this median pre-activation standard deviation, sigmoid-like units sit
#: in their linear region, where the slope is largest (tanh' > 0.99 for |z| < 0.1).
SMALL_PRE_ACTIVATION = 0.1


#: At or below this median ratio of a layer's pre-activation mean to its std,
#: its pre-activations are mostly negative (-1: about 84% of a normal
#: distribution lies below zero).
MOSTLY_NEGATIVE = -1.0


def _mostly_negative(view: StatsView) -> dict[str, float]:
    """Hidden layers whose pre-activations sit mostly below zero: mean / std.

    The last layer is left out when there are two or more (its pre-activations
    are the outputs), and so is a layer with ``saturated_fraction`` rows: a
    sigmoid-like layer, whose negative side is saturation, judged by that.
    """
    mean = view.table("pre_activation", "mean")
    spread = view.table("pre_activation", "std")
    saturable = set(view.table("pre_activation", "saturated_fraction").columns)
    layers = [c for c in mean.columns if c in spread.columns]
    if len(layers) >= 2:
        layers = layers[:-1]
    found = {}
    for layer in layers:
        if layer in saturable:
            continue
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = finite_median(mean[layer] / spread[layer])
        if ratio <= MOSTLY_NEGATIVE:
            found[str(layer)] = ratio
    return found


def _layer_medians(view: StatsView, stage: str, quantity: str) -> pd.Series:
    """The median over steps of ``quantity`` per layer (empty when not recorded)."""
    table = view.table(stage, quantity)
    return table.median() if len(table) else pd.Series(dtype=float)


def vanishing_cause(
    view: StatsView, forward: float, threshold: float
) -> tuple[str, str]:
    """Why the gradient vanishes, from what else was recorded, and what to do.

    The evidence is read in this order: a layer whose units are all or almost
    all dead (median dead_fraction >= :data:`MOSTLY_DEAD`: little gradient
    passes); a hidden layer whose pre-activations are mostly negative (median
    mean / std <= :data:`MOSTLY_NEGATIVE`: units sit where a ReLU-family
    activation has a small or zero slope, which shrinks both the forward and
    the backward signal); forward activations that shrink with depth
    (weights too small); saturated units (the activation's slope is near 0);
    pre-activations so small that every unit sits where its slope is largest
    (so the shrinking comes from the weights); no forward variance at all.
    Without any of these the finding blames the activation's derivative.
    """
    dead = _layer_medians(view, "post_activation", "dead_fraction")
    whole = [str(name) for name, value in dead.items() if value >= 0.999]
    mostly = [str(name) for name, value in dead.items() if value >= MOSTLY_DEAD]
    if whole:
        return (
            f"Every unit of {', '.join(whole)} is dead (median dead_fraction "
            f"{dead[whole[0]]:.0%}): its output and its gradient are zero, so "
            "nothing reaches the layers before it.",
            "Lower the learning rate, start biases at zero or slightly positive, "
            "use He initialisation or a Leaky ReLU; see the dead_units finding.",
        )
    if mostly:
        return (
            f"Almost every unit of {', '.join(mostly)} is dead (median "
            f"dead_fraction up to {max(dead[name] for name in mostly):.0%}): "
            "their output and gradient are zero, so little reaches the layers "
            "before them.",
            "Lower the learning rate, start biases at zero or slightly positive, "
            "use He initialisation or a Leaky ReLU; see the dead_units finding.",
        )
    negative = _mostly_negative(view)
    if negative:
        listing = ", ".join(f"{name}: {value:.1f}" for name, value in negative.items())
        return (
            f"The pre-activations of {', '.join(negative)} are mostly negative "
            f"(median mean / std {listing}): the units sit below zero, where a "
            "ReLU-family activation has a small slope (Leaky ReLU) or none, so "
            "little of the signal passes either way.",
            "Start biases at zero or slightly positive, normalise the inputs, "
            "and use He initialisation; batch normalisation centres the "
            "pre-activations.",
        )
    if math.isfinite(forward) and forward < threshold:
        return (
            f"The forward activations shrink too (variance ratio {forward:.1e} "
            "from the first to the last hidden layer): the initial weights are "
            "too small.",
            "Initialise with variance 2/(fan_in + fan_out) (Glorot) for tanh "
            "and sigmoid, or 2/fan_in (He) for ReLU; batch normalisation also "
            "keeps each layer's scale.",
        )
    saturated = _layer_medians(view, "pre_activation", "saturated_fraction")
    heavy = [str(name) for name, value in saturated.items() if value >= 0.5]
    if heavy:
        return (
            f"Most units of {', '.join(heavy)} are saturated (median "
            f"saturated_fraction up to {saturated.max():.0%}): the activation's "
            "slope is near zero where they sit, and the gradient dies there.",
            "Scale the initial weights down (Glorot for tanh and sigmoid), "
            "normalise the inputs, or use a ReLU-family activation with He "
            "initialisation; batch normalisation keeps pre-activations small.",
        )
    spread = _layer_medians(view, "pre_activation", "std")
    hidden = spread.iloc[:-1] if len(spread) >= 3 else spread
    if len(hidden) and finite_median(hidden.to_numpy()) < SMALL_PRE_ACTIVATION:
        return (
            f"The pre-activations are small (median std "
            f"{finite_median(hidden.to_numpy()):.1e} in the hidden layers), so "
            "the units are not saturated: they sit where the activation's slope "
            "is largest, and the gradient shrinks with the weights at each "
            "layer: the initial weights are too small.",
            "Initialise with variance 2/(fan_in + fan_out) (Glorot) for tanh "
            "and sigmoid, or 2/fan_in (He) for ReLU.",
        )
    if view.table("post_activation", "var").shape[1] < 2:
        return (
            "The forward activations were not recorded (no post_activation var "
            "at two layers or more), so what shrinks the gradient cannot be "
            "told from this table.",
            "Record activation statistics (Recorder stats 'summary' on the "
            "post_activation stage) to find the cause; meanwhile try a "
            "ReLU-family activation with He initialisation, or batch "
            "normalisation.",
        )
    if not math.isfinite(forward):
        return (
            "The forward activations carry no measurable variance: units are "
            "dead or constant, so no gradient passes through them.",
            "Look at the dead_units finding: lower the learning rate, start "
            "biases at zero, use He initialisation or Leaky ReLU.",
        )
    return (
        "The forward activations keep their size and no layer is measured as "
        "saturated or dead, so the signal is lost in the activation's derivative "
        "(sigmoid's is at most 0.25 per layer).",
        "Use a ReLU-family activation with He initialisation, or Glorot "
        "initialisation for tanh; batch normalisation or residual "
        "connections keep gradients flowing.",
    )


class VanishingGradients(Rule):
    """The back-propagated gradient shrinks by orders of magnitude towards the input.

    Fires when the squared-norm ratio of delta, first layer over last, is
    below ``vanishing_ratio`` at ``persistence`` of the recorded steps; the
    finding is critical when the median ratio is below ``vanishing_ratio``
    squared (1e-4 by default), a warning otherwise.
    """

    name = "vanishing_gradients"
    source = (
        "Glorot & Bengio (2010), Understanding the difficulty of training deep "
        "feedforward neural networks; Hochreiter (1991)"
    )

    def check(self, view: StatsView, settings: DiagnosticSettings) -> list[Finding]:
        found = depth_ratio(view)
        if found is None:
            return []
        ratio, stage, first, last = found
        threshold = settings.vanishing_ratio
        held, start, end, fraction = persistent(ratio < threshold, settings.persistence)
        if not held:
            return []

        measured = finite_median(ratio)
        forward = forward_ratio(view)
        cause, suggestion = vanishing_cause(view, forward, threshold)
        severity = "critical" if measured < threshold**2 else "warning"
        return [
            self.finding(
                view,
                severity=severity,
                layers=tuple(view.table(stage, "l2").columns.astype(str)),
                step_range=(start, end),
                measured=measured,
                threshold=threshold,
                definition=_DEPTH.format(what=_what(stage), first=first, last=last)
                + "; median over recorded steps",
                message=(
                    f"The gradient reaching {first} has {measured:.1e} times the "
                    f"squared norm it has at {last} (median; below {threshold:g} at "
                    f"{fraction:.0%} of recorded steps). {cause}"
                ),
                suggestion=suggestion,
                evidence={
                    "fraction_of_steps": fraction,
                    "forward_variance_ratio": forward,
                    "weight_gradient_ratio": _weight_gradient_ratio(view),
                    "stage": stage,
                },
            )
        ]


class ExplodingGradients(Rule):
    """Gradients that grow across depth, grow over time, or pass a bound.

    Growth over time and norms over the bound are critical. Growth across
    depth is critical when the median squared-norm ratio exceeds
    ``exploding_ratio`` squared (1e8 by default), a warning otherwise, as
    :class:`VanishingGradients` grades the opposite ratio.
    """

    name = "exploding_gradients"
    source = (
        "Pascanu, Mikolov & Bengio (2013), On the difficulty of training "
        "recurrent neural networks; Glorot & Bengio (2010)"
    )
    suggestion = (
        "Lower the learning rate, clip the gradient norm, and check the "
        "initialisation scale (weights too large make each layer amplify)."
    )

    def check(self, view: StatsView, settings: DiagnosticSettings) -> list[Finding]:
        findings = []
        found = depth_ratio(view)
        if found is not None:
            ratio, stage, first, last = found
            threshold = settings.exploding_ratio
            held, start, end, fraction = persistent(
                ratio > threshold, settings.persistence
            )
            if held:
                measured = finite_median(ratio)
                findings.append(
                    self.finding(
                        view,
                        severity=("critical" if measured > threshold**2 else "warning"),
                        layers=tuple(view.table(stage, "l2").columns.astype(str)),
                        step_range=(start, end),
                        measured=measured,
                        threshold=threshold,
                        definition="across depth: "
                        + _DEPTH.format(what=_what(stage), first=first, last=last)
                        + "; median over recorded steps",
                        message=(
                            f"The gradient grows on its way to the input: at {first} "
                            f"its squared norm is {measured:.1e} times that at {last} "
                            f"(median; above {threshold:g} at {fraction:.0%} of steps)."
                        ),
                        evidence={"fraction_of_steps": fraction, "stage": stage},
                    )
                )
        norm = global_norm(view)
        if len(norm) >= settings.min_steps:
            tenth = max(1, len(norm) // 10)
            early, late = (
                finite_median(norm.iloc[:tenth]),
                finite_median(norm.iloc[-tenth:]),
            )
            growth = late / early if early > 0 else math.nan
            if math.isfinite(growth) and growth > settings.exploding_growth:
                findings.append(
                    self.finding(
                        view,
                        severity="critical",
                        layers=("model",),
                        step_range=(int(norm.index[0]), int(norm.index[-1])),
                        measured=growth,
                        threshold=settings.exploding_growth,
                        definition=(
                            "over time: median global gradient norm over the last "
                            "tenth of recorded steps / over the first tenth"
                        ),
                        message=(
                            f"The global gradient norm grew {growth:.1e}-fold during "
                            f"the run, from {early:.3g} to {late:.3g}."
                        ),
                        evidence={"early": early, "late": late},
                    )
                )
        above = norm[norm > settings.max_grad_norm]
        if len(above):
            findings.append(
                self.finding(
                    view,
                    severity="critical",
                    layers=("model",),
                    step_range=(int(above.index[0]), int(above.index[-1])),
                    measured=float(above.max()),
                    threshold=settings.max_grad_norm,
                    definition=(
                        "by size: largest global gradient norm at a recorded step"
                    ),
                    message=(
                        f"The global gradient norm reached {float(above.max()):.3g} "
                        f"(above {settings.max_grad_norm:g} at {len(above)} recorded "
                        f"step{'' if len(above) == 1 else 's'})."
                    ),
                    evidence={"steps_above": len(above)},
                )
            )
        return findings


def global_norm(view: StatsView) -> pd.Series:
    """The global gradient norm by step: ``grad_norm``, else from per-parameter l2."""
    norm = view.model_series("grad_norm")
    if len(norm):
        return norm[np.isfinite(norm)]
    parts = [view.table(stage, "l2") ** 2 for stage in view.stages("gradient")]
    if not parts:
        return pd.Series(dtype=np.float64)
    total = pd.concat(parts, axis=1).sum(axis=1, min_count=1)
    total = np.sqrt(total)
    return total[np.isfinite(total)]
