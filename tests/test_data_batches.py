"""iterate_batches covers each sample once per epoch, in a seeded order."""

from __future__ import annotations

import numpy as np
import pytest

from annlens.data import batch_count, iterate_batches
from annlens.errors import DataError


@pytest.fixture
def xy():
    x = np.arange(20.0).reshape(10, 2)
    return x, np.arange(10)


def test_unshuffled_batches_keep_the_stored_order(xy):
    x, y = xy

    batches = list(iterate_batches(x, y, 4, shuffle=False))

    assert [b[1].tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_shuffled_epoch_visits_every_sample_once_with_matching_targets(xy):
    x, y = xy

    batches = list(iterate_batches(x, y, 3, rng=np.random.default_rng(0)))

    seen = np.concatenate([yb for _, yb in batches])
    assert sorted(seen.tolist()) == list(range(10))
    for xb, yb in batches:
        np.testing.assert_array_equal(xb[:, 0], 2 * yb)


def test_same_seed_gives_the_same_order(xy):
    x, y = xy

    first = [yb.tolist() for _, yb in iterate_batches(x, y, 3, rng=5)]
    second = [yb.tolist() for _, yb in iterate_batches(x, y, 3, rng=5)]
    other = [yb.tolist() for _, yb in iterate_batches(x, y, 3, rng=6)]

    assert first == second and first != other


def test_a_generator_advances_so_successive_epochs_differ(xy):
    x, y = xy
    rng = np.random.default_rng(0)

    first = np.concatenate([yb for _, yb in iterate_batches(x, y, 5, rng=rng)])
    second = np.concatenate([yb for _, yb in iterate_batches(x, y, 5, rng=rng)])

    assert not np.array_equal(first, second)


def test_no_rng_means_seed_zero(xy):
    x, y = xy

    default = [yb.tolist() for _, yb in iterate_batches(x, y, 4)]
    seeded = [yb.tolist() for _, yb in iterate_batches(x, y, 4, rng=0)]

    assert default == seeded


def test_drop_last_leaves_out_the_short_batch(xy):
    x, y = xy

    batches = list(iterate_batches(x, y, 4, rng=0, drop_last=True))

    assert [len(yb) for _, yb in batches] == [4, 4]
    assert batch_count(10, 4, drop_last=True) == 2 and batch_count(10, 4) == 3


def test_mismatched_lengths_are_refused(xy):
    x, y = xy

    with pytest.raises(DataError, match="10 rows of x and 9 of y"):
        list(iterate_batches(x, y[:9], 4))
