"""Fixtures shared by the activation, loss, layer and network tests.

- ``rng``: a seeded NumPy generator, passed in rather than set globally.
- ``torch_activation``: the PyTorch function that matches an annlens
  activation, settings included (the test is skipped without PyTorch).
- every test: the layer, activation and loss classes it registers are
  unregistered after it, so that no test sees another's.

The whole session runs NumPy's BLAS and PyTorch on one thread: the tests use
small matrices, for which a second BLAS thread costs more than it gives (on a
busy two-core machine, a digits training test took 160 s with two threads and
14 s with one), and one thread makes float results independent of the
machine's core count.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from annlens.activations import Activation

os.environ.setdefault("OMP_NUM_THREADS", "1")  # read by PyTorch when imported


@pytest.fixture(scope="session", autouse=True)
def one_blas_thread() -> Any:
    with threadpool_limits(limits=1):
        yield


@pytest.fixture(autouse=True)
def registries_restored() -> Any:
    """A layer, activation or loss class a test registers stays in that test."""
    from annlens.activations import registry as activations
    from annlens.io import architecture
    from annlens.losses import registry as losses

    saved = [
        (registry, dict(registry))
        for registry in (
            activations._REGISTRY,
            losses._REGISTRY,
            architecture._REGISTERED,
        )
    ]
    yield
    for registry, before in saved:
        registry.clear()
        registry.update(before)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20240601)


@pytest.fixture
def torch_activation() -> Callable[[Activation], Callable[[Any], Any]]:
    torch = pytest.importorskip("torch")
    F = torch.nn.functional

    def match(act: Activation) -> Callable[[Any], Any]:
        s = vars(act)
        table: dict[str, Callable[[Any], Any]] = {
            "identity": lambda z: z,
            "relu": F.relu,
            "sigmoid": torch.sigmoid,
            "tanh": torch.tanh,
            "leaky_relu": lambda z: F.leaky_relu(z, s.get("alpha", 0.0)),
            "elu": lambda z: F.elu(z, s.get("alpha", 0.0)),
            "selu": F.selu,
            "gelu": lambda z: F.gelu(z, approximate=s.get("approximate", "")),
            "softplus": lambda z: F.softplus(
                z, s.get("beta", 0.0), s.get("threshold", 0.0)
            ),
            "silu": F.silu,
            "softsign": F.softsign,
            "hard_tanh": lambda z: F.hardtanh(
                z, s.get("min_val", 0.0), s.get("max_val", 0.0)
            ),
            "softmax": lambda z: F.softmax(z, dim=-1),
        }
        return table[act.name]

    return match
