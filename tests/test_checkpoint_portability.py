"""A checkpoint loads in PyTorch (via safetensors) and in a fresh Python process."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from annlens.io import load_checkpoint, save_checkpoint
from annlens.layers import BatchNorm, Dense
from annlens.model import Sequential


@pytest.fixture
def model(rng):
    net = Sequential(
        [Dense(4, 8, "tanh"), BatchNorm(), Dense(8, 3, "relu"), Dense(3, 2)],
        seed=3,
        dtype="float64",
    )
    # Move BatchNorm's running statistics away from their initial values.
    for _ in range(3):
        net.forward(rng.normal(2.0, 3.0, size=(32, 4)))
    return net


@pytest.mark.torch
def test_tensors_load_into_a_pytorch_twin_with_safetensors(tmp_path, model, rng):
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file

    path = save_checkpoint(tmp_path / "ckpt", model)
    tensors = load_file(str(path / "tensors.safetensors"))
    twin = torch.nn.Sequential(
        torch.nn.Linear(4, 8),
        torch.nn.Tanh(),
        torch.nn.BatchNorm1d(8),
        torch.nn.Linear(8, 3),
        torch.nn.ReLU(),
        torch.nn.Linear(3, 2),
    ).double()

    # annlens keeps W as (in, out); torch.nn.Linear keeps weight as (out, in).
    state = {
        "0.weight": tensors["model.dense_0.W"].T,
        "0.bias": tensors["model.dense_0.b"],
        "2.weight": tensors["model.batchnorm_0.gamma"],
        "2.bias": tensors["model.batchnorm_0.beta"],
        "2.running_mean": tensors["model.batchnorm_0.running_mean"],
        "2.running_var": tensors["model.batchnorm_0.running_var"],
        "3.weight": tensors["model.dense_1.W"].T,
        "3.bias": tensors["model.dense_1.b"],
        "5.weight": tensors["model.dense_2.W"].T,
        "5.bias": tensors["model.dense_2.b"],
    }
    twin.load_state_dict(state, strict=False)
    twin.eval()

    x = rng.normal(size=(10, 4))
    with torch.no_grad():
        expected = twin(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model.predict(x), expected, rtol=1e-12, atol=1e-12)


def test_checkpoint_predicts_identically_in_a_fresh_process(tmp_path, model, rng):
    path = save_checkpoint(tmp_path / "ckpt", model)
    x = rng.normal(size=(7, 4))
    np.save(tmp_path / "x.npy", x)
    script = textwrap.dedent(
        f"""
        import numpy as np
        from annlens.io import load_checkpoint

        model = load_checkpoint({str(path)!r}).build_model()
        x = np.load({str(tmp_path / "x.npy")!r})
        np.save({str(tmp_path / "y.npy")!r}, model.predict(x))
        """
    )

    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)

    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), model.predict(x))
    assert load_checkpoint(path).step == model.state.step
