"""MNIST-1D, generated offline by the ``mnist1d`` package, with a small cache.

The ``mnist1d`` package can download a pickled copy of the data set; annlens
never does. It calls the package's own generator, ``make_dataset``, with the
package's default arguments and templates (which ship inside the package):
5000 signals of length 40, ten classes, generator seed 42. The data set seed
of annlens chooses the split, not the signals.

Generating takes about two seconds (and importing the package another one or
two, as it imports matplotlib), so the arrays are cached as a plain ``.npz``
file, read back with ``allow_pickle=False``. The cache lives in
``$ANNLENS_CACHE_DIR``, else ``$XDG_CACHE_HOME/annlens``, else
``~/.cache/annlens``; ``ANNLENS_CACHE_DIR=off`` turns it off. A cache that
cannot be written or read is skipped (and regenerated), never an error.

References
----------
Greydanus, S. & Kobak, D. (2024). Scaling down deep learning with MNIST-1D.
ICML.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from annlens.data.dataset import RawData
from annlens.errors import ConfigError

logger = logging.getLogger("annlens")

DEFAULT_SAMPLES = 5000
LENGTH = 40
DESCRIPTION = (
    "MNIST-1D: ten 1-D templates of digits, shifted, scaled, sheared and "
    "noised into signals of length 40 (generated offline by the mnist1d package)."
)


def cache_dir() -> Path | None:
    """Where generated data is cached, or None when caching is off."""
    chosen = os.environ.get("ANNLENS_CACHE_DIR")
    if chosen is not None:
        return None if chosen.strip().lower() in ("", "off", "none") else Path(chosen)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "annlens"


def generate_mnist1d(
    n_samples: int = DEFAULT_SAMPLES,
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Run the package's generator; leaves the global random state unchanged.

    ``make_dataset`` seeds Python's and NumPy's global generators; their
    previous states are put back afterwards so a caller's own use of them is
    not disturbed.
    """
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = int(n_samples)
    numpy_state, python_state = np.random.get_state(), random.getstate()
    try:
        generated = make_dataset(args)
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)
    x = np.concatenate([generated["x"], generated["x_test"]]).astype(np.float64)
    y = np.concatenate([generated["y"], generated["y_test"]]).astype(np.int64)
    return x, y


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mnist1d")
    except PackageNotFoundError:
        return "unknown"


def _read_cache(path: Path, n: int) -> tuple[NDArray, NDArray] | None:
    try:
        with np.load(path, allow_pickle=False) as stored:
            x, y = stored["x"], stored["y"]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError) as error:
        logger.warning("ignoring unreadable MNIST-1D cache %s: %s", path, error)
        return None
    if x.shape != (n, LENGTH) or y.shape != (n,):
        logger.warning("ignoring MNIST-1D cache %s of the wrong shape", path)
        return None
    return x, y


def _write_cache(path: Path, x: NDArray, y: NDArray) -> None:
    """Write the cache atomically: a temporary file, then one rename."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(temporary, "wb") as handle:
            np.savez(handle, x=x, y=y)
        os.replace(temporary, path)
    except OSError as error:
        logger.info("not caching MNIST-1D at %s: %s", path, error)
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)


def load_mnist1d(n_samples: int | None = None) -> RawData:
    """MNIST-1D as :class:`RawData`, from the cache or freshly generated.

    Parameters
    ----------
    n_samples : int, optional
        The number of signals (default 5000); the generator makes
        ``n_samples // 10`` per class.
    """
    wanted = DEFAULT_SAMPLES if n_samples is None else int(n_samples)
    if wanted < 10:
        raise ConfigError(f"mnist1d needs n_samples >= 10, got {n_samples!r}")
    n = wanted - wanted % 10

    folder = cache_dir()
    path = folder / f"mnist1d-{_version()}-{n}.npz" if folder else None
    cached = _read_cache(path, n) if path else None
    if cached is not None:
        x, y = cached
    else:
        x, y = generate_mnist1d(n)
        if path:
            _write_cache(path, x, y)

    return RawData(
        name="mnist1d",
        x=x,
        y=y,
        feature_names=tuple(f"t{i}" for i in range(LENGTH)),
        target_name="digit",
        task="classification",
        class_names=tuple(str(d) for d in range(10)),
        description=DESCRIPTION,
    )
