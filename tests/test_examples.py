"""The ready-made experiments in ``examples/``: each file validates and runs.

Every example is loaded and validated as it stands, then run end to end with
its length cut to three optimizer steps (figures and report off), so that a
broken example, a renamed setting or a variant that no longer builds is
caught in seconds. The MNIST-1D baseline runs at full length in a slow test
that checks the accuracy band of the published MLP.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import pytest

from annlens.experiment import load_config, run_experiment, validate
from annlens.experiment.config import read_toml

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
FILES = sorted(EXAMPLES.glob("*.toml"))
NAMES = [path.stem for path in FILES]
TINY_STEPS = 3
TINY_SAMPLES = 500  # of a generated data set (MNIST-1D), to generate it quickly


@pytest.fixture(scope="module", autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Generated data sets (MNIST-1D) are cached in a folder of this module."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ANNLENS_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        yield


def shortened(raw: dict[str, Any], steps: int = TINY_STEPS) -> dict[str, Any]:
    """A copy of an example cut to ``steps`` optimizer steps, without figures.

    The step limit is set on the base and on every variant that has its own
    ``training`` section, so no variant keeps its full length; a generated
    data set is made smaller.
    """
    short = copy.deepcopy(raw)
    if short.get("data", {}).get("name") == "mnist1d":
        short["data"]["n_samples"] = TINY_SAMPLES
    short.setdefault("training", {}).update(epochs=1, steps=steps)
    short.setdefault("collect", {})["every"] = 1
    short.setdefault("output", {}).update(figures=False, report=False)
    for variant in short.get("variants", []):
        if "training" in variant:
            variant["training"].update(epochs=1, steps=steps)
    return short


def test_the_examples_folder_holds_the_expected_examples():
    expected = {
        "batchnorm",
        "dead_relus",
        "dropout",
        "exploding_gradients",
        "initialization",
        "learning_rate_sensitivity",
        "mnist1d_mlp",
        "vanishing_gradients",
        "weight_decay",
    }
    assert expected <= set(NAMES)


@pytest.mark.parametrize("path", FILES, ids=NAMES)
def test_example_validates_against_the_schema(path: Path):
    experiment = load_config(path)
    assert experiment.name
    assert experiment.description


@pytest.mark.parametrize("path", FILES, ids=NAMES)
def test_example_header_states_its_question_and_expectation(path: Path):
    header = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        header.append(line.removeprefix("#").strip())
    question = " ".join(header[: header.index("")])
    assert question.startswith("Question: "), path.name
    assert question.endswith("?"), path.name
    assert any(line.startswith("Expect") for line in header), path.name


@pytest.mark.parametrize("path", FILES, ids=NAMES)
def test_readme_lists_every_example(path: Path):
    readme = (EXAMPLES / "README.md").read_text()
    assert f"{path.name}" in readme


@pytest.mark.parametrize("path", FILES, ids=NAMES)
def test_example_runs_end_to_end_when_shortened(path: Path, tmp_path: Path):
    raw = read_toml(path)
    run = run_experiment(validate(shortened(raw)), out=tmp_path)

    expected = [v["name"] for v in raw.get("variants", [])] or ["base"]
    assert list(run.variants) == expected
    for name, result in run.variants.items():
        assert result.parts.optimizer.t <= TINY_STEPS, name
        if result.stopped is None:
            assert math.isfinite(result.test["loss"]), name
        else:  # the NaN guard stopped it: that is a finding, not a crash
            assert result.stopped["rule"] == "non_finite", name
    assert (run.directory / "findings.json").is_file()


def test_shortening_reaches_variants_with_their_own_training_section():
    raw = {"training": {"epochs": 30}, "variants": [{"name": "a", "training": {}}]}
    short = shortened(raw, steps=2)
    assert short["training"]["steps"] == 2
    assert short["variants"][0]["training"] == {"epochs": 1, "steps": 2}


@pytest.mark.slow
def test_mnist1d_mlp_reaches_the_published_accuracy_band(tmp_path: Path):
    # The paper reports 68% for this MLP and the authors' notebook 65-66%;
    # seeds 0-2 give 66.5-67.6% here (with one BLAS thread).
    experiment = load_config(
        EXAMPLES / "mnist1d_mlp.toml",
        ["output.figures=false", "output.report=false"],
    )
    run = run_experiment(experiment, out=tmp_path)

    result = run.variants["base"]
    assert result.parts.optimizer.t == 6000
    assert len(result.parts.data.y_train) == 4000
    assert len(result.parts.data.y_test) == 1000
    assert 0.64 <= result.test["accuracy"] <= 0.71
