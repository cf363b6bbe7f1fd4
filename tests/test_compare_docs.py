"""docs/compare.md runs, and names every option of ``annlens compare``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from annlens.cli.main import app

DOC = Path(__file__).resolve().parents[1] / "docs" / "compare.md"
README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def compare_options() -> list[str]:
    """Every ``--option`` of the compare command."""
    import typer.main

    command = typer.main.get_command(app).commands["compare"]  # type: ignore[attr-defined]
    return [
        name
        for parameter in command.params
        for name in parameter.opts
        if name.startswith("--") and name != "--help"
    ]


def test_the_guide_names_every_option_of_the_command() -> None:
    text = DOC.read_text(encoding="utf-8")
    options = compare_options()
    assert "--steps" in options and "--rounding" in options
    for option in options:
        assert f"`{option}" in text or f" {option} " in text, option


def test_the_readme_points_to_the_guide() -> None:
    text = README.read_text(encoding="utf-8")
    assert "docs/compare.md" in text and "annlens compare" in text


@pytest.mark.torch
def test_every_python_block_of_the_guide_runs_in_order() -> None:
    pytest.importorskip("torch")
    blocks = BLOCK.findall(DOC.read_text(encoding="utf-8"))
    assert blocks
    namespace: dict[str, Any] = {"__name__": "compare_guide"}
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), namespace)
    assert namespace["judged"].passed
