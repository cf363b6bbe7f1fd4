"""Two-dimensional toy data for decision-boundary pictures: moons, circles, spirals.

Moons and circles come from scikit-learn's generators; spirals from
:func:`make_spirals` here. All three are seeded from the data set's seed, so the
same seed gives the same points, and all have two features, ``x1`` and ``x2``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from annlens.data.dataset import RawData
from annlens.errors import ConfigError

FEATURES = ("x1", "x2")
DESCRIPTIONS = {
    "moons": "Two interleaving half circles in 2-D (scikit-learn make_moons).",
    "circles": "A circle inside a circle of half its radius, in 2-D "
    "(scikit-learn make_circles).",
    "spirals": "Two spiral arms winding 1.5 times around each other, in 2-D.",
}


def make_spirals(
    n_samples: int,
    rng: np.random.Generator,
    n_classes: int = 2,
    turns: float = 1.5,
    noise: float = 0.05,
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Interleaved spiral arms, one per class.

    Parameters
    ----------
    n_samples : int
        Total points, shared as evenly as possible between the arms.
    rng : numpy.random.Generator
        The source of the radii's jitter and of the noise.
    n_classes : int
        The number of arms.
    turns : float
        How many times each arm winds around the centre.
    noise : float
        Standard deviation of the Gaussian noise added to each coordinate.

    Returns
    -------
    x : ndarray, (n_samples, 2)
    y : ndarray of int64, (n_samples,)

    Notes
    -----
    Point ``i`` of arm ``k`` sits at radius ``r`` in (0, 1] and angle
    ``theta = 2 pi (turns r + k / n_classes)``::

        x = r (cos theta, sin theta) + noise * N(0, I)

    so the arms are rotated copies of one another, a classic task that no
    linear model and no shallow net with few units separates.

    References
    ----------
    Lang, K. J. & Witbrock, M. J. (1988). Learning to tell two spirals apart.
    Proceedings of the Connectionist Models Summer School.
    """
    if n_classes < 2 or n_samples < n_classes:
        raise ConfigError(
            f"spirals need n_classes >= 2 and at least one point per arm, got "
            f"n_classes={n_classes}, n_samples={n_samples}"
        )
    y = np.arange(n_samples, dtype=np.int64) % n_classes
    r = np.sort(rng.uniform(0.05, 1.0, size=n_samples))
    theta = 2 * np.pi * (turns * r + y / n_classes)
    x = np.column_stack([r * np.cos(theta), r * np.sin(theta)])
    x += noise * rng.standard_normal(x.shape)
    order = rng.permutation(n_samples)
    return x[order], y[order]


def _random_state(rng: np.random.Generator) -> int:
    """An int seed for scikit-learn, drawn from ``rng``."""
    return int(rng.integers(2**31 - 1))


def moons(rng: np.random.Generator, n_samples: int, noise: float | None) -> RawData:
    """Two interleaving half circles (scikit-learn's ``make_moons``)."""
    from sklearn.datasets import make_moons

    x, y = make_moons(
        n_samples=n_samples,
        noise=0.2 if noise is None else noise,
        random_state=_random_state(rng),
    )
    return RawData(
        name="moons",
        x=x,
        y=y,
        feature_names=FEATURES,
        task="classification",
        class_names=("upper", "lower"),
        description=DESCRIPTIONS["moons"],
    )


def circles(rng: np.random.Generator, n_samples: int, noise: float | None) -> RawData:
    """A small circle inside a large one (scikit-learn's ``make_circles``)."""
    from sklearn.datasets import make_circles

    x, y = make_circles(
        n_samples=n_samples,
        noise=0.1 if noise is None else noise,
        factor=0.5,
        random_state=_random_state(rng),
    )
    return RawData(
        name="circles",
        x=x,
        y=y,
        feature_names=FEATURES,
        task="classification",
        class_names=("outer", "inner"),
        description=DESCRIPTIONS["circles"],
    )


def spirals(rng: np.random.Generator, n_samples: int, noise: float | None) -> RawData:
    """Two interleaved spiral arms (:func:`make_spirals`)."""
    x, y = make_spirals(n_samples, rng, noise=0.05 if noise is None else noise)
    return RawData(
        name="spirals",
        x=x,
        y=y,
        feature_names=FEATURES,
        task="classification",
        class_names=("arm 0", "arm 1"),
        description=DESCRIPTIONS["spirals"],
    )
