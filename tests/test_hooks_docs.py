"""docs/hooks.md runs: every ```python block, in order, in one namespace."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from annlens.hooks import STAGES

DOC = Path(__file__).resolve().parents[1] / "docs" / "hooks.md"
BLOCK = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)
CORE_STAGES = (
    "forward_pre",
    "pre_activation",
    "post_activation",
    "forward",
    "backward_pre",
    "pre_activation_grad",
    "backward",
    "gradient",
    "update",
    "loss",
)


def python_blocks(text: str) -> list[tuple[int, str]]:
    """``(first line number, code)`` of every ```python block."""
    return [
        (text.count("\n", 0, match.start(1)) + 1, match.group(1))
        for match in BLOCK.finditer(text)
    ]


def test_every_python_block_of_the_hooks_guide_runs_in_order() -> None:
    blocks = python_blocks(DOC.read_text(encoding="utf-8"))
    assert len(blocks) >= 20
    namespace: dict[str, Any] = {"__name__": "hooks_guide"}

    for line, code in blocks:
        padded = "\n" * (line - 1) + code  # tracebacks point at the doc's lines
        try:
            exec(compile(padded, str(DOC), "exec"), namespace)
        except Exception as error:  # pragma: no cover - the message is the point
            pytest.fail(f"docs/hooks.md block at line {line} failed: {error!r}")


@pytest.mark.parametrize("stage", CORE_STAGES)
def test_the_hooks_guide_documents_every_stage_with_its_signature(stage: str) -> None:
    text = DOC.read_text(encoding="utf-8")
    signature = STAGES[stage].signature.split(" ->")[0]
    arguments = signature.replace("fn(layer, ", "").rstrip(")")

    assert f"| `{stage}` |" in text
    assert arguments in text, f"{stage}: {arguments}"
