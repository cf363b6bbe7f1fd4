"""The hook system: stages, registration, handles, scopes and dispatch.

See :mod:`annlens.hooks.stages` for where each stage sits inside a layer,
:mod:`annlens.hooks.recipes` for ready-made hooks and docs/hooks.md for
examples.
"""

from annlens.hooks.context import HookContext, RunState
from annlens.hooks.control import StopForward
from annlens.hooks.handles import HookHandle, HookScope
from annlens.hooks.select import resolve_points
from annlens.hooks.stages import STAGES, Stage, get_stage, register_stage
from annlens.hooks.table import Hook, HookTable

__all__ = [
    "STAGES",
    "Hook",
    "HookContext",
    "HookHandle",
    "HookScope",
    "HookTable",
    "RunState",
    "Stage",
    "StopForward",
    "get_stage",
    "register_stage",
    "resolve_points",
]
