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


def test_the_resume_section_says_a_missing_report_is_written():
    text = " ".join(DOC.read_text().split())
    resuming = text.split("## Resuming", 1)[1].split("##", 1)[0]
    assert "writes nothing, unless" in resuming
    assert "`report.html` were written; those are then written" in resuming


def test_the_doc_says_where_kept_tensors_go(tmp_path):
    from annlens.experiment import run_experiment
    from experiment_support import tiny

    text = " ".join(DOC.read_text().split())
    assert (
        "not written to the run directory: `run.variants[name].recorder.tensors()`"
        in text
    )
    config = tiny(collect={"tensor_steps": [0]}, training={"epochs": 1})
    run = run_experiment(config, out=tmp_path)
    kept = run.variants["base"].recorder.tensors()
    assert kept and all(step == 0 for step, _, _ in kept)
