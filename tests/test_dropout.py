"""Dropout: masks from the model's generator, the mask hook stage, evaluation
mode, and forward and backward against PyTorch and finite differences."""

from __future__ import annotations

import numpy as np
import pytest

from annlens.errors import ConfigError
from annlens.layers import Dense, Dropout
from annlens.model import Sequential, seeded_generator


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    scale = max(np.linalg.norm(a) + np.linalg.norm(b), 1e-30)
    return float(np.linalg.norm(a - b) / scale)


def capture_masks(model: Sequential) -> list[np.ndarray]:
    masks: list[np.ndarray] = []
    model.register_hook("mask", lambda layer, mask: masks.append(mask.copy()))
    return masks


def test_mask_is_zero_or_one_over_keep_probability() -> None:
    model = Sequential([Dropout(0.25)], in_features=200, dtype="float64")
    masks = capture_masks(model)
    x = np.ones((50, 200))

    output = model.forward(x)

    assert set(np.unique(masks[0])) == {0.0, 1 / 0.75}
    np.testing.assert_array_equal(output, masks[0])
    assert abs((masks[0] == 0).mean() - 0.25) < 0.02


def test_masks_come_from_the_model_noise_generator() -> None:
    model = Sequential([Dropout(0.5)], in_features=6, seed=11, dtype="float64")
    masks = capture_masks(model)
    model.forward(np.ones((4, 6)))

    expected_keep = seeded_generator(11, 1).random((4, 6)) >= 0.5
    np.testing.assert_array_equal(masks[0], expected_keep * 2.0)


def test_same_seed_gives_same_masks_and_successive_masks_differ() -> None:
    runs = []
    for _ in range(2):
        model = Sequential([Dropout(0.5)], in_features=30, seed=3)
        masks = capture_masks(model)
        model.forward(np.ones((10, 30)))
        model.forward(np.ones((10, 30)))
        runs.append(masks)
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    assert not np.array_equal(runs[0][0], runs[0][1])


def test_float32_and_float64_models_draw_the_same_masks() -> None:
    masks = {}
    for dtype in ("float32", "float64"):
        model = Sequential([Dropout(0.3)], in_features=8, seed=5, dtype=dtype)
        seen = capture_masks(model)
        model.forward(np.ones((6, 8)))
        masks[dtype] = seen[0]
    assert masks["float32"].dtype == np.float32
    np.testing.assert_allclose(masks["float32"], masks["float64"], rtol=1e-7)


def test_evaluation_mode_is_the_identity_and_draws_nothing() -> None:
    model = Sequential([Dropout(0.5)], in_features=4, dtype="float64")
    masks = capture_masks(model)
    before = model.state.rng.bit_generator.state
    x = np.arange(12.0).reshape(3, 4)

    model.eval()
    output = model.forward(x)
    grad_input = model.backward(np.full((3, 4), 2.0))

    np.testing.assert_array_equal(output, x)
    np.testing.assert_array_equal(grad_input, 2.0)
    assert masks == []
    assert model.state.rng.bit_generator.state == before


def test_p_zero_keeps_everything() -> None:
    model = Sequential([Dropout(0.0)], in_features=4, dtype="float64")
    x = np.arange(8.0).reshape(2, 4)
    np.testing.assert_array_equal(model.forward(x), x)


def test_backward_uses_the_same_mask_as_forward() -> None:
    model = Sequential([Dropout(0.5)], in_features=5, dtype="float64")
    masks = capture_masks(model)
    model.forward(np.ones((4, 5)))
    grad_input = model.backward(np.full((4, 5), 3.0))
    np.testing.assert_array_equal(grad_input, 3.0 * masks[0])


def test_a_replaced_mask_is_used_forward_and_backward() -> None:
    model = Sequential([Dropout(0.5)], in_features=3, dtype="float64")
    mask = np.array([[0.0, 2.0, 5.0], [1.0, 0.0, 2.0]])
    model.register_hook("dropout_0.mask", lambda layer, m: mask)
    x = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])

    output = model.forward(x)
    grad_input = model.backward(np.ones((2, 3)))

    np.testing.assert_array_equal(output, x * mask)
    np.testing.assert_array_equal(grad_input, mask)


def test_backward_matches_finite_differences_with_a_fixed_mask() -> None:
    rng = np.random.default_rng(0)
    model = Sequential(
        [Dense(4, 6, "tanh"), Dropout(0.4), Dense(6, 2)], seed=1, dtype="float64"
    )
    fixed = (rng.random((5, 6)) >= 0.4) / 0.6
    model.register_hook("mask", lambda layer, mask: fixed)
    x, weights = rng.normal(size=(5, 4)), rng.normal(size=(5, 2))

    def loss() -> float:
        return float((model.forward(x) * weights).sum())

    loss()
    grad_input = model.backward(weights)
    numeric = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        saved = x[index]
        x[index] = saved + 1e-6
        up = loss()
        x[index] = saved - 1e-6
        down = loss()
        x[index] = saved
        numeric[index] = (up - down) / 2e-6
    assert relative_error(grad_input, numeric) <= 1e-6


@pytest.mark.torch
@pytest.mark.parametrize("training", [True, False])
def test_forward_and_backward_match_pytorch_with_the_same_mask(training: bool) -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    model = Sequential([Dropout(0.3)], in_features=7, seed=2, dtype="float64")
    masks = capture_masks(model)
    model.train(training)
    x, grad_output = rng.normal(size=(6, 7)), rng.normal(size=(6, 7))

    output = model.forward(x)
    grad_input = model.backward(grad_output)

    # PyTorch draws its own masks, so its training-mode dropout is written as
    # the product with annlens's mask; evaluation mode uses nn.Dropout itself.
    x_torch = torch.tensor(x, requires_grad=True)
    if training:
        output_torch = x_torch * torch.from_numpy(masks[0])
    else:
        output_torch = torch.nn.Dropout(0.3).eval()(x_torch)
    output_torch.backward(torch.from_numpy(grad_output))
    np.testing.assert_allclose(output, output_torch.detach().numpy(), atol=1e-10)
    np.testing.assert_allclose(grad_input, x_torch.grad.numpy(), atol=1e-10)


@pytest.mark.torch
def test_mask_scale_matches_pytorch_dropout() -> None:
    torch = pytest.importorskip("torch")
    output = torch.nn.functional.dropout(
        torch.ones(100, 100, dtype=torch.float64), p=0.3, training=True
    )
    model = Sequential([Dropout(0.3)], in_features=100, dtype="float64")
    ours = model.forward(np.ones((100, 100)))
    np.testing.assert_allclose(np.unique(ours), np.unique(output.numpy()), atol=1e-12)


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5, "0.5", True])
def test_p_outside_zero_one_is_refused(p) -> None:
    with pytest.raises(ConfigError, match="Dropout p"):
        Dropout(p)


def test_stages_and_repr() -> None:
    layer = Dropout(0.2)
    assert "mask" in layer.stages and "gradient" not in layer.stages
    assert repr(layer) == "Dropout(p=0.2, name='dropout')"
