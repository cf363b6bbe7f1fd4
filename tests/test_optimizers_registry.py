"""Looking up the registered optimizer, schedule and loss classes by name."""

from __future__ import annotations

from annlens.losses import SoftmaxCrossEntropy, loss_class, loss_names
from annlens.optim import (
    SGD,
    Adam,
    CosineAnnealing,
    optimizer_class,
    optimizer_names,
    schedule_class,
    schedule_names,
)


def test_an_optimizer_is_found_by_its_name_in_any_case():
    assert optimizer_class("adam") is Adam
    assert optimizer_class("SGD") is SGD


def test_every_registered_name_finds_a_class():
    assert all(optimizer_class(name) is not None for name in optimizer_names())
    assert all(schedule_class(name) is not None for name in schedule_names())
    assert all(loss_class(name) is not None for name in loss_names())


def test_a_schedule_and_a_loss_are_found_by_name():
    assert schedule_class("cosine") is CosineAnnealing
    assert loss_class("softmax_cross_entropy") is SoftmaxCrossEntropy


def test_an_unknown_name_finds_nothing():
    assert optimizer_class("adamm") is None
    assert schedule_class("cosin") is None
    assert loss_class("l3") is None


def test_a_loss_is_found_by_its_name_in_any_case_as_an_optimizer_is():
    from annlens.losses import MSE, get_loss

    assert loss_class("BCE") is loss_class("bce") is not None
    assert isinstance(get_loss("MSE"), MSE)
