"""Pausing the recorder's hooks at the steps where no collector reads them.

A recorder that writes rows one step in ten would otherwise pay for each of
its hooks at every step, only for the hook to return at once. Instead it
watches the model's run state (:meth:`annlens.hooks.RunState.watch`): when the
step or the epoch changes, it opens the gates the new step needs and pauses
the other hooks. A paused hook keeps its place but is not called, and a layer
whose hooks are all paused runs as if it had none (see
:meth:`annlens.hooks.HookHandle.pause`), so a step that writes nothing costs
one call of the watcher.

Each :class:`Gate` groups the hooks that open and close together:

- ``"record"``: activations, deltas and the loss, open at recorded steps
  (``step % every == 0``);
- ``"parameters"``: parameters, their gradients and updates, open at the
  steps that write parameter-level rows;

and either kind also opens at any step where one of its collectors asks to
listen (:meth:`~annlens.analysis.collectors.base.Collector.listens_at`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from annlens.analysis.collectors.base import Collector
from annlens.analysis.collectors.wiring import any_listening

if TYPE_CHECKING:
    from annlens.analysis.collectors.recorder import Recorder

#: The gate kind of the per-parameter hook stages; every other stage is "record".
GATE_KIND = {"gradient": "parameters", "update": "parameters"}


class Gate:
    """Hooks that open and close together, and the collectors that may ask for
    a step off the grid (those that define ``listens_at`` or set ``every_step``).
    """

    def __init__(self, kind: str, collectors: list[Collector]) -> None:
        self.kind = kind
        self.listeners = [
            c
            for c in collectors
            if c.every_step or type(c).listens_at is not Collector.listens_at
        ]
        self.handles: list[Any] = []
        self.open = True

    def set(self, wanted: bool) -> None:
        """Resume or pause every hook of the gate, when that changes anything."""
        if wanted == self.open:
            return
        for handle in self.handles:
            if wanted:
                handle.resume()
            else:
                handle.pause()
        self.open = wanted

    def __repr__(self) -> str:
        state = "open" if self.open else "closed"
        return f"Gate({self.kind}, {len(self.handles)} hooks, {state})"


class Gates:
    """The recorder's gates, keyed by kind and the collectors they serve."""

    def __init__(self) -> None:
        self._gates: dict[tuple[str, tuple[int, ...]], Gate] = {}

    def add(self, handle: Any, hook_stage: str, collectors: list[Collector]) -> None:
        """Put the hook behind ``handle`` (registered at ``hook_stage``) in a gate."""
        kind = GATE_KIND.get(hook_stage, "record")
        unique = list({id(c): c for c in collectors}.values())
        key = (kind, tuple(sorted(id(c) for c in unique)))
        gate = self._gates.get(key)
        if gate is None:
            gate = self._gates[key] = Gate(kind, unique)
        gate.handles.append(handle)

    def update(self, step: int, recorder: Recorder) -> None:
        """Open the gates ``step`` needs and close the others."""
        due = {"record": recorder._record, "parameters": recorder._record_parameters}
        for gate in self._gates.values():
            wanted = due[gate.kind] or (
                bool(gate.listeners) and any_listening(gate.listeners, step, recorder)
            )
            gate.set(wanted)

    def clear(self) -> None:
        self._gates.clear()

    def __repr__(self) -> str:
        return f"Gates({list(self._gates.values())})"
