"""The package layout is the README's picture of it: each folder of
src/annlens imports only the folders listed above it in the README's Layout
table, lazy imports inside functions included."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "annlens"


def _layout_order() -> list[str]:
    """The folders of the README's Layout table, top to bottom."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = text.split("## Layout", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"`(\w+)/`", table)


def _imported_folders(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "annlens" and len(parts) > 1:
                found.append((node.lineno, parts[1]))
    return found


def test_the_readme_lists_every_folder_of_the_package():
    folders = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}

    assert set(_layout_order()) == folders


def test_each_folder_imports_only_the_folders_above_it():
    order = _layout_order()
    rank = {folder: position for position, folder in enumerate(order)}
    upward = []
    for path in PACKAGE.rglob("*.py"):
        folder = path.relative_to(PACKAGE).parts[0]
        if folder not in rank:
            continue
        for line, other in _imported_folders(path):
            if other in rank and rank[other] > rank[folder]:
                upward.append(f"{path.relative_to(ROOT)}:{line} imports {other}")

    assert upward == []
