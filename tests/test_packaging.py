"""pyproject.toml: metadata that current setuptools reads without a deprecation."""

from __future__ import annotations

import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def test_the_license_is_an_spdx_expression_with_a_setuptools_that_reads_it():
    config = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))

    # a table ({ text = "MIT" }) is deprecated since setuptools 77, which
    # reads the string form
    assert config["project"]["license"] == "MIT"
    assert "setuptools>=77" in config["build-system"]["requires"]
    classifiers = config["project"].get("classifiers", [])
    assert not [c for c in classifiers if c.startswith("License ::")]
