"""docs/experiments.md names every key of the experiment schema, and its
examples are valid experiment snippets."""

import re
from pathlib import Path

import tomllib

from annlens.experiment import schema, validate

DOC = Path(__file__).resolve().parent.parent / "docs" / "experiments.md"

SECTIONS = [
    schema.Experiment,
    schema.DataSection,
    schema.ModelSection,
    schema.LayerSpec,
    schema.RegularizationSection,
    schema.TrainingSection,
    schema.EarlyStoppingSection,
    schema.CollectSection,
    schema.OutputSection,
    schema.Variant,
]


def test_every_schema_key_is_documented():
    text = DOC.read_text()
    for section in SECTIONS:
        for key in section.model_fields:
            assert f"`{key}`" in text, f"{section.__name__}.{key} is not documented"


def test_every_toml_example_validates():
    blocks = re.findall(r"```toml\n(.*?)```", DOC.read_text(), re.S)
    assert blocks
    for block in blocks:
        validate(tomllib.loads(block))
