"""The thresholds of the diagnostic rules, each with its default and its reason.

Every threshold is a field of :class:`DiagnosticSettings`; change one with
``DiagnosticSettings(dead_batch=0.3)`` or ``diagnose(frame, dead_batch=0.3)``.
The defaults were checked on small networks trained on scikit-learn's digits
(healthy ReLU/He networks with SGD-momentum or Adam fire nothing; the broken
ones of the Glorot & Bengio experiments fire), and each field says why it sits
where it does.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from annlens.errors import ConfigError, did_you_mean


@dataclass(frozen=True)
class DiagnosticSettings:
    """Thresholds of every rule.

    Attributes
    ----------
    persistence : float
        A per-step condition counts when it holds at this fraction of the
        recorded steps or more (default 0.5: most of the run), so that one
        noisy batch does not make a finding.
    min_steps : int
        Rules that look at a run's course need this many recorded steps
        (default 5).
    vanishing_ratio : float
        Vanishing gradients: the squared norm of the back-propagated gradient
        (delta, else grad_output) at the first layer over that at the last
        layer falls below this (default 1e-2: the gradient's norm shrinks
        more than tenfold on its way down). Glorot & Bengio's setting, a
        10-layer tanh network, gives about 3e-5 with the old
        uniform(±1/√n) initialisation and 0.1 to 1 with theirs. Below this
        squared (1e-4) the finding is critical.
    exploding_ratio : float
        Exploding gradients across depth: that ratio rises above this
        (default 1e4: the norm grows a hundredfold towards the input; trained
        healthy networks sit near 1 to 30). Above this squared (1e8) the
        finding is critical.
    exploding_growth : float
        Exploding gradients over time: the global gradient norm late in the
        run over its level in the first recorded steps (medians of the first
        and last tenth) exceeds this (default 1e3).
    max_grad_norm : float
        Exploding gradients by size: the global gradient norm exceeds this at
        any recorded step (default 1e3, for a loss averaged over the batch,
        where healthy norms are of order 0.1 to 10).
    dead_batch : float
        Dead units: the fraction of a layer's ReLU units that output zero for
        a whole batch exceeds this (default 0.5).
    dead_epoch : float
        Dead units: the fraction that output zero for every sample of an
        epoch exceeds this (default 0.25; healthy ReLU networks stay under
        0.1).
    saturated : float
        Saturated units: the fraction of a layer's sigmoid or tanh entries
        with slope under 2% of its peak exceeds this (default 0.4).
    update_ratio_low, update_ratio_high : float
        Update/parameter ratio: the median over the run of ``||update|| /
        ||W||`` lies below ``low`` (default 1e-5) or above ``high`` (default
        1e-1), two orders of magnitude either side of the 1e-3 rule of thumb.
    update_ratio_params : tuple of str
        Which parameters the ratio rule judges (default ``("W",)``: weight
        matrices; biases start at zero and are often relatively fast).
    smoothing : float
        Loss rules smooth the loss with a moving mean over this fraction of
        the recorded steps (default 0.1).
    diverging_rise : float
        Diverging loss: the smoothed loss ends more than this fraction above
        where it started (default 0.1) ...
    diverging_giveback : float
        ... or gives back more than this fraction of the progress it made
        from its start to its best (default 0.5) ...
    diverging_min_progress : float
        ... where that progress was at least this fraction of the start
        (default 0.05): giving back a 1% fall is noise, not divergence.
    flat_tolerance : float
        Flat loss: the smoothed loss ends within this fraction of its start
        (default 0.01), or, for a record from the first step, within three
        standard errors of the smoothed loss where its batch-to-batch noise
        is larger (a run that learns falls far beyond its noise), and never
        fell below the start by more than twice that.
    plateau_window : float
        Plateau: over the last this-fraction of the run (default 0.25) ...
    plateau_tolerance : float
        ... the smoothed loss falls by less than this fraction (default 0.01)
        ...
    plateau_level : float
        ... while still above this fraction of its start (default 0.5), so a
        converged run is not a plateau.
    """

    persistence: float = 0.5
    min_steps: int = 5
    vanishing_ratio: float = 1e-2
    exploding_ratio: float = 1e4
    exploding_growth: float = 1e3
    max_grad_norm: float = 1e3
    dead_batch: float = 0.5
    dead_epoch: float = 0.25
    saturated: float = 0.4
    update_ratio_low: float = 1e-5
    update_ratio_high: float = 1e-1
    update_ratio_params: tuple[str, ...] = ("W",)
    smoothing: float = 0.1
    diverging_rise: float = 0.1
    diverging_giveback: float = 0.5
    diverging_min_progress: float = 0.05
    flat_tolerance: float = 0.01
    plateau_window: float = 0.25
    plateau_tolerance: float = 0.01
    plateau_level: float = 0.5

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name == "update_ratio_params":
                if not all(isinstance(v, str) for v in value):
                    raise ConfigError(
                        f"update_ratio_params must be parameter names, got {value!r}"
                    )
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(
                    f"diagnostic setting {item.name} must be a number, got {value!r}"
                )
            if not value > 0:
                raise ConfigError(
                    f"diagnostic setting {item.name} must be positive, got {value!r}"
                )
        for name in ("persistence", "smoothing", "plateau_window", "plateau_level"):
            if getattr(self, name) > 1:
                raise ConfigError(
                    f"diagnostic setting {name} is a fraction in (0, 1], "
                    f"got {getattr(self, name)!r}"
                )

    def updated(self, **changes: Any) -> DiagnosticSettings:
        """A copy with ``changes``; unknown names are refused."""
        known = [item.name for item in fields(self)]
        for name in changes:
            if name not in known:
                raise ConfigError(
                    f"unknown diagnostic setting {name!r}{did_you_mean(name, known)}; "
                    f"known: {', '.join(known)}"
                )
        if "update_ratio_params" in changes:
            changes["update_ratio_params"] = tuple(changes["update_ratio_params"])
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The settings as a JSON-friendly dict."""
        out = asdict(self)
        out["update_ratio_params"] = list(self.update_ratio_params)
        return out
