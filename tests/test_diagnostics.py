"""Diagnoses on real training runs: healthy networks fire nothing, broken ones fire.

Each scenario trains a small network on scikit-learn's digits with a plain
loop (forward, loss, backward, optimizer step) and the default Recorder, then
runs :func:`diagnose` on the statistics table. The broken networks are those
of Glorot & Bengio (2010): deep tanh networks with the old uniform(±1/√n)
initialisation, and deep sigmoid networks with naive N(0, 1) weights.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from annlens import Dense, Sequential
from annlens.analysis.collectors import Recorder
from annlens.analysis.diagnostics import diagnose
from annlens.layers.init import Constant, Normal, Uniform
from annlens.optim import SGD, Adam

try:
    from annlens.losses import SoftmaxCrossEntropy as _Loss
except ImportError:  # pragma: no cover - until the losses exist
    from test_collectors import _Loss  # type: ignore[no-redef]

sklearn_datasets = pytest.importorskip("sklearn.datasets")


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    x, y = sklearn_datasets.load_digits(return_X_y=True)
    return (x / 16.0).astype(np.float32), y


def fit(model, optimizer, data, epochs: int, batch: int = 64, seed: int = 0):
    """Train with the default recorder attached; return its statistics table."""
    x, y = data
    order_rng = np.random.default_rng(seed)
    loss = _Loss()
    with Recorder(model) as recorder:
        for epoch in range(epochs):
            model.state.epoch = epoch
            order = order_rng.permutation(len(x))
            for start in range(0, len(x), batch):
                rows = order[start : start + batch]
                output = model.forward(x[rows])
                _, grad = model.loss(loss, output, y[rows])
                model.backward(grad)
                optimizer.step()
            recorder.end_epoch(epoch)
    return recorder.to_dataframe()


def deep(activation, init, width, depth=10, seed=0) -> Sequential:
    """``depth`` Dense layers on 64 inputs: depth - 1 hidden of ``width``, 10 out."""
    sizes = [64] + [width] * (depth - 1)
    layers = [
        Dense(n_in, n_out, activation, init=init(n_in))
        for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True)
    ]
    layers.append(Dense(width, 10, None, init=init(width)))
    return Sequential(layers, seed=seed, dtype="float32")


def old_uniform(fan_in: int) -> Uniform:
    """The common heuristic before Glorot & Bengio: U(-1/√n, 1/√n)."""
    return Uniform(1 / math.sqrt(fan_in))


def rules(findings) -> set[str]:
    return {finding.rule for finding in findings}


@pytest.mark.parametrize("optimizer", ["sgd_momentum", "adam"])
def test_a_healthy_relu_network_fires_nothing(digits, optimizer):
    model = deep("relu", lambda n: "he_normal", width=64, depth=4)
    if optimizer == "adam":
        chosen = Adam(model, lr=1e-3)
    else:
        chosen = SGD(model, lr=0.05, momentum=0.9)
    findings = diagnose(fit(model, chosen, digits, epochs=3))
    assert findings == [], [str(f) for f in findings]


@pytest.fixture(scope="module")
def sigmoid_naive(digits):
    # N(0, 1) weights saturate every sigmoid layer: f'(z) is tiny where |z| is
    # large, and at width 16 the large weights do not make up for it, so the
    # gradient loses about a factor 2.5 in squared norm per layer. (At width 64
    # they do, and such a network mainly shows saturation.)
    model = deep("sigmoid", lambda n: Normal(1.0), width=16)
    return diagnose(fit(model, SGD(model, lr=0.05, momentum=0.9), digits, epochs=1))


def test_a_deep_sigmoid_network_with_unit_normal_weights_has_vanishing_gradients(
    sigmoid_naive,
):
    assert "vanishing_gradients" in rules(sigmoid_naive)


def test_its_finding_names_the_layers_steps_and_definition(sigmoid_naive):
    (finding,) = [f for f in sigmoid_naive if f.rule == "vanishing_gradients"]
    assert finding.layers[0] == "dense_0" and finding.layers[-1] == "dense_9"
    assert finding.measured < finding.threshold == 1e-2
    assert "delta" in finding.definition and "squared L2 norm" in finding.definition
    assert finding.step_range[0] == 0 and finding.step_range[1] > 0
    assert "Glorot" in finding.source
    assert finding.suggestion


@pytest.fixture(scope="module")
def tanh_runs(digits):
    runs = {}
    for name, init in (("old", old_uniform), ("glorot", lambda n: "glorot_uniform")):
        model = deep("tanh", init, width=64)
        frame = fit(model, SGD(model, lr=0.05, momentum=0.9), digits, epochs=1)
        runs[name] = (frame, diagnose(frame))
    return runs


def test_a_deep_tanh_network_with_the_old_initialisation_has_vanishing_gradients(
    tanh_runs,
):
    findings = tanh_runs["old"][1]
    (finding,) = [f for f in findings if f.rule == "vanishing_gradients"]
    assert finding.measured < 1e-3
    assert "forward activations shrink too" in finding.message


def test_the_same_network_with_glorot_initialisation_does_not(tanh_runs):
    assert "vanishing_gradients" not in rules(tanh_runs["glorot"][1])


def test_weight_gradients_stay_level_while_deltas_vanish(tanh_runs):
    frame = tanh_runs["old"][0]

    def ratio(stage):
        rows = frame[(frame.stage == stage) & (frame.quantity == "l2")]
        wide = rows.pivot_table(index="step", columns="layer", values="value")
        return float(np.median((wide["dense_0"] / wide["dense_9"]) ** 2))

    assert ratio("delta") < 1e-3
    assert ratio("gradient:W") > 1e-2


def test_a_relu_network_with_a_large_negative_bias_has_dead_units(digits):
    model = Sequential(
        [
            Dense(64, 64, "relu", bias_init=Constant(-10.0)),
            Dense(64, 64, "relu", bias_init=Constant(-10.0)),
            Dense(64, 10),
        ],
        seed=0,
        dtype="float32",
    )
    findings = diagnose(fit(model, SGD(model, lr=0.05, momentum=0.9), digits, epochs=2))
    dead = [f for f in findings if f.rule == "dead_units"]
    definitions = {f.definition.split(":")[0] for f in dead}
    assert definitions == {"dead for the batch", "dead for the epoch"}
    for finding in dead:
        assert finding.layers == ("dense_0", "dense_1")
        assert finding.measured == 1.0
        assert finding.severity == "critical"
