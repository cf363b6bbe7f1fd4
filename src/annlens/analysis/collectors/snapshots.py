"""Full copies of the values at a few named steps, within a byte budget.

Everything else a recorder keeps is a scalar or a fixed-size histogram; this
collector is the one place where whole arrays are kept, and only at the steps
a user names. It refuses a copy that would take it past its budget, warns
once, and lets recording go on.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from annlens.analysis.collectors.base import Collector, Observation, wanted
from annlens.errors import ConfigError, check_count

if TYPE_CHECKING:
    from annlens.analysis.collectors.recorder import Recorder

logger = logging.getLogger("annlens")

#: Every stage a layer can feed, for the default of ``stages``.
_EVERY_STAGE = (
    "input",
    "pre_activation",
    "post_activation",
    "output",
    "grad_output",
    "delta",
    "grad_input",
    "param",
    "gradient",
    "update",
)


class KeepTensors(Collector):
    """Copies of the values at chosen steps, ``(step, layer, stage) -> array``.

    Parameters
    ----------
    steps : sequence of int
        The steps to keep, whether or not the recorder writes rows there.
    stages : sequence of str, optional
        Table stages to keep (default: every stage of every layer).
    max_bytes : int
        The budget. A copy that would exceed it is refused with a
        ``RuntimeWarning`` (once) and counted in ``refused``.

    Notes
    -----
    A second pass at the same step replaces the copy of the first. Kept
    copies are not part of the recorder's ``state_dict``.
    """

    name = "keep_tensors"

    def __init__(
        self,
        steps: Sequence[int],
        stages: Sequence[str] | None = None,
        max_bytes: int = 256 * 2**20,
    ) -> None:
        check_count("keep_bytes", max_bytes, low=0)
        if isinstance(steps, (str, bytes)) or not isinstance(steps, Iterable):
            raise ConfigError(
                f"keep_steps takes a list of steps, got {steps!r}; help: "
                "keep_steps=[0, 100]"
            )
        steps = list(steps)
        for step in steps:
            if (
                isinstance(step, bool)
                or not isinstance(step, (int, np.integer))
                or step < 0
            ):
                raise ConfigError(
                    f"keep_steps entries must be integers >= 0 (optimizer steps), "
                    f"got {step!r} in {steps!r}"
                )
        self.steps = frozenset(int(s) for s in steps)
        self.stage_list = tuple(stages) if stages is not None else _EVERY_STAGE
        self.max_bytes = max_bytes
        self.kept: dict[tuple[int, str, str], np.ndarray] = {}
        self.used = 0
        self.refused = 0

    def stages(self, layer: Any) -> list[str]:
        return wanted(self.stage_list, layer)

    def listens_at(self, step: int, recorder: Recorder) -> bool:
        return step in self.steps

    def observe(self, obs: Observation, recorder: Recorder) -> None:
        if obs.step not in self.steps:
            return
        key = (obs.step, obs.name, obs.stage)
        previous = self.kept.pop(key, None)
        if previous is not None:
            self.used -= previous.nbytes
        size = obs.value.nbytes
        if self.used + size > self.max_bytes:
            if not self.refused:
                message = (
                    f"kept tensors would exceed {self.max_bytes} bytes at "
                    f"{obs.name}.{obs.stage}, step {obs.step}; this and later copies "
                    "are refused, statistics go on; help: raise keep_bytes or name "
                    "fewer steps or stages"
                )
                warnings.warn(message, RuntimeWarning, stacklevel=2)
                logger.warning(message)
            self.refused += 1
            return
        self.kept[key] = np.array(obs.value, copy=True)
        self.used += size

    def settings(self) -> dict[str, Any]:
        return {
            "steps": sorted(self.steps),
            "stages": self.stage_list,
            "max_bytes": self.max_bytes,
        }
