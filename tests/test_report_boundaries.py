"""The decision boundaries in a run's report read classes as the accuracy does."""

from __future__ import annotations

import numpy as np

import annlens as al
from annlens.experiment.reporting import _boundaries, _classes_of
from annlens.training import accuracy


class _Data:
    task = "classification"
    n_features = 2

    def __init__(self) -> None:
        rng = np.random.default_rng(0)
        self.x_train = rng.normal(size=(40, 2))
        self.y_train = (self.x_train[:, 0] > 0).astype(np.int64)


def _one_logit(bias: float) -> al.Sequential:
    """One output, the logit ``bias`` everywhere (weights zero)."""
    model = al.Sequential([al.Dense(2, 1)], seed=0, dtype="float64")
    model.layers[0].params["W"][...] = 0.0
    model.layers[0].params["b"][...] = bias
    return model


def test_a_single_logit_inside_zero_one_is_class_one_as_accuracy_says():
    model = _one_logit(0.3)
    points = np.zeros((5, 2))

    classes = _classes_of(model)(points)

    assert classes.tolist() == [1] * 5
    assert accuracy(model.predict(points), np.ones(5, dtype=np.int64)) == 1.0


def test_a_negative_single_logit_is_class_zero():
    assert _classes_of(_one_logit(-0.3))(np.zeros((3, 2))).tolist() == [0, 0, 0]


def test_several_outputs_take_the_arg_max():
    model = al.Sequential([al.Dense(2, 3)], seed=0, dtype="float64")
    points = np.random.default_rng(1).normal(size=(7, 2))

    classes = _classes_of(model)(points)

    np.testing.assert_array_equal(classes, model.predict(points).argmax(axis=1))


def test_the_boundary_figure_of_a_one_logit_model_shades_class_one():
    ((_, name, figure),) = _boundaries([("v", _one_logit(0.3), _Data())])

    shaded = figure.axes[0].collections[0].get_array()

    assert name == "boundary-v"
    assert np.all(np.asarray(shaded) == 1)
