"""docs/extending.md runs: every ```python block, in order, in one namespace."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "extending.md"
BLOCK = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def python_blocks(text: str) -> list[tuple[int, str]]:
    """``(first line number, code)`` of every ```python block."""
    return [
        (text.count("\n", 0, match.start(1)) + 1, match.group(1))
        for match in BLOCK.finditer(text)
    ]


def test_every_python_block_of_the_extending_guide_runs_in_order() -> None:
    blocks = python_blocks(DOC.read_text(encoding="utf-8"))
    assert len(blocks) >= 9
    namespace: dict[str, Any] = {"__name__": "extending_guide"}

    for line, code in blocks:
        padded = "\n" * (line - 1) + code  # tracebacks point at the doc's lines
        try:
            exec(compile(padded, str(DOC), "exec"), namespace)
        except Exception as error:  # pragma: no cover - the message is the point
            pytest.fail(f"docs/extending.md block at line {line} failed: {error!r}")
