"""Bad input is refused with the right error, a message that names the problem
and where it is, and the model's weights untouched."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from annlens import Activation, BatchNorm, Dense, FunctionActivation, Sequential
from annlens.activations import activation_names
from annlens.errors import (
    ConfigError,
    InputError,
    LabelError,
    ShapeError,
    StateError,
    UnknownNameError,
)
from annlens.layers import initializer_names
from annlens.losses import MSE, NLLLoss, SoftmaxCrossEntropy


def make_model() -> Sequential:
    layers = [Dense(4, 6, "relu", name="hidden"), Dense(6, 3, name="logits")]
    return Sequential(layers, seed=0, dtype="float64")


def weights(model: Sequential) -> dict[str, np.ndarray]:
    return {name: value.copy() for name, value in model.parameters().items()}


def assert_untouched(model: Sequential, before: dict[str, np.ndarray]) -> None:
    after = model.parameters()
    assert after.keys() == before.keys()
    for name, value in before.items():
        assert np.array_equal(after[name], value), name


@pytest.fixture
def model() -> Sequential:
    return make_model()


# -- the input batch ----------------------------------------------------------------


def test_input_of_the_wrong_width_names_the_layer_and_both_shapes(model, rng) -> None:
    before = weights(model)
    with pytest.raises(ShapeError) as caught:
        model.forward(rng.normal(size=(5, 3)))
    message = str(caught.value)
    assert "'hidden'" in message and "(batch, 4)" in message and "(5, 3)" in message
    assert_untouched(model, before)


def test_a_standalone_layer_names_itself_on_the_wrong_width(rng) -> None:
    layer = Dense(4, 2, name="probe")
    with pytest.raises(
        ShapeError, match=r"'probe' expects input of shape \(batch, 4\)"
    ):
        layer.forward(rng.normal(size=(2, 5)))


def test_a_single_sample_as_a_vector_gets_a_hint(model) -> None:
    with pytest.raises(ShapeError, match=r"reshape\(1, -1\)"):
        model.forward(np.zeros(4))


def test_an_empty_batch_is_refused(model) -> None:
    before = weights(model)
    with pytest.raises(InputError, match="empty batch"):
        model.forward(np.zeros((0, 4)))
    assert_untouched(model, before)


@pytest.mark.parametrize(
    "x",
    [np.array([["a", "b", "c", "d"]]), np.array([[object(), 1, 2, 3]], dtype=object)],
    ids=["strings", "objects"],
)
def test_non_numeric_input_is_refused_naming_its_dtype(model, x) -> None:
    before = weights(model)
    with pytest.raises(InputError) as caught:
        model.forward(x)
    assert "numeric" in str(caught.value) and str(x.dtype) in str(caught.value)
    assert_untouched(model, before)


@pytest.mark.parametrize(
    ("bad", "counts"),
    [
        (np.nan, "1 NaN and 0 Inf"),
        (np.inf, "0 NaN and 1 Inf"),
        (-np.inf, "0 NaN and 1 Inf"),
    ],
    ids=["nan", "inf", "-inf"],
)
def test_nan_or_inf_in_the_input_is_refused_with_where_it_is(
    model, bad, counts
) -> None:
    before = weights(model)
    x = np.ones((3, 4))
    x[2, 1] = bad
    with pytest.raises(InputError) as caught:
        model.forward(x)
    message = str(caught.value)
    assert counts in message and "row 2, column 1" in message
    assert_untouched(model, before)


def test_finite_input_too_large_for_the_model_dtype_is_refused_as_such() -> None:
    model = Sequential([Dense(4, 2)], seed=0, dtype="float32")
    before = weights(model)
    x = np.ones((3, 4))
    x[1, 2] = -1e300
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(InputError) as caught:
            model.forward(x)
    message = str(caught.value)
    assert "1 values too large for float32" in message
    assert "row 1, column 2: -1e+300" in message and "NaN" not in message
    assert_untouched(model, before)


def test_finite_targets_too_large_for_the_output_dtype_are_refused() -> None:
    output = np.zeros((3, 2), dtype=np.float32)
    y = np.zeros((3, 2))
    y[2, 0] = 1e300
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(LabelError, match=r"1 values too large .* float32"):
            MSE().value_and_grad(output, y)


# -- construction ---------------------------------------------------------------------


def test_layers_that_do_not_chain_are_refused_at_construction() -> None:
    with pytest.raises(ConfigError) as caught:
        Sequential([Dense(4, 6, name="first"), Dense(5, 2, name="second")])
    message = str(caught.value)
    assert "'second' expects 5 input features" in message
    assert "'first' gives 6" in message


def test_one_layer_object_at_two_positions_is_refused_naming_both() -> None:
    shared = Dense(4, 4, "tanh")

    with pytest.raises(ConfigError) as caught:
        Sequential([shared, Dense(4, 4), shared])
    message = str(caught.value)
    assert "the same Dense object is Sequential layer 0 and layer 2" in message
    assert "help: build a second Dense" in message


def test_a_layer_of_another_model_is_refused_and_that_model_keeps_its_weights() -> None:
    model = make_model()
    trained = weights(model)

    with pytest.raises(ConfigError) as caught:
        Sequential(model.layers[:1], seed=5, dtype="float32")
    assert "layer 0 ('hidden') already belongs to a model" in str(caught.value)
    assert "load_state_dict" in str(caught.value)
    for name, value in model.parameters().items():
        assert value.dtype == np.float64
        np.testing.assert_array_equal(value, trained[name])


def test_one_list_of_layers_builds_one_model_only() -> None:
    layers = [Dense(4, 3)]
    first = Sequential(layers, seed=0)

    with pytest.raises(ConfigError, match="already belongs to a model"):
        Sequential(layers, seed=1)
    assert first.layers[0].state is first.state


def test_an_unknown_activation_lists_the_known_ones() -> None:
    with pytest.raises(UnknownNameError) as caught:
        Dense(4, 2, activation="sigmod")
    message = str(caught.value)
    assert "'sigmod'" in message and "did you mean 'sigmoid'" in message
    assert all(name in message for name in activation_names())


def test_an_unknown_initialiser_lists_the_known_ones() -> None:
    with pytest.raises(UnknownNameError) as caught:
        Dense(4, 2, init="glorot")
    message = str(caught.value)
    assert "'glorot'" in message
    assert all(name in message for name in initializer_names())


# -- targets ---------------------------------------------------------------------------


@pytest.mark.parametrize("loss", [SoftmaxCrossEntropy(), NLLLoss()])
def test_labels_out_of_range_are_refused_with_the_range(model, loss, rng) -> None:
    before = weights(model)
    output = model.forward(rng.normal(size=(4, 4)))
    with pytest.raises(LabelError) as caught:
        model.loss(loss, output, np.array([0, 1, 3, 2]))
    message = str(caught.value)
    assert "[0, 3)" in message and "got 3 at position 2" in message
    assert_untouched(model, before)


def test_labels_of_the_wrong_kind_are_refused(model, rng) -> None:
    before = weights(model)
    output = model.forward(rng.normal(size=(3, 4)))
    with pytest.raises(LabelError, match="integers; got 0.5 at position 1"):
        model.loss(SoftmaxCrossEntropy(), output, np.array([1.0, 0.5, 2.0]))
    with pytest.raises(LabelError, match="numeric"):
        model.loss(SoftmaxCrossEntropy(), output, np.array(["cat", "dog", "cat"]))
    assert_untouched(model, before)


def test_labels_for_another_batch_size_are_refused(model, rng) -> None:
    output = model.forward(rng.normal(size=(3, 4)))
    with pytest.raises(LabelError, match="3 samples but the targets hold 4"):
        model.loss(SoftmaxCrossEntropy(), output, np.array([0, 1, 2, 0]))


# -- call order ----------------------------------------------------------------


def test_backward_before_any_forward_is_refused(model) -> None:
    before = weights(model)
    with pytest.raises(StateError, match="forward"):
        model.backward(np.ones((2, 3)))
    assert_untouched(model, before)


def test_backward_after_a_forward_under_no_grad_is_refused(model, rng) -> None:
    x = rng.normal(size=(2, 4))
    model.forward(x)  # a pass that kept its values, then one that did not
    with model.no_grad():
        model.forward(x)
    before = weights(model)
    with pytest.raises(StateError, match="no_grad"):
        model.backward(np.ones((2, 3)))
    assert_untouched(model, before)


def test_a_standalone_layer_refuses_backward_before_forward() -> None:
    with pytest.raises(StateError, match="'probe'"):
        Dense(4, 2, name="probe").backward(np.ones((1, 2)))


def test_backward_with_a_gradient_of_the_wrong_shape_names_the_expected_shape():
    model = Sequential([Dense(4, 3)], seed=0, dtype="float64")
    model.forward(np.ones((6, 4)))
    before = model.layers[0].params["W"].copy()
    with pytest.raises(ShapeError, match=r"\(6, 3\).*dense_0.*\(6, 4\)"):
        model.backward(np.ones((6, 4)))
    np.testing.assert_array_equal(model.layers[0].params["W"], before)


# -- user-defined activations and layers called directly ------------------------------


def test_an_activation_that_changes_the_shape_is_refused_naming_it_and_the_layer(
    rng,
) -> None:
    rows = FunctionActivation(lambda z: z.sum(axis=1), lambda z: z, name="rows")
    model = Sequential([Dense(4, 3, rows), Dense(3, 2)], seed=0, dtype="float64")

    with pytest.raises(ShapeError) as caught:
        model.forward(rng.normal(size=(5, 4)))
    message = str(caught.value)
    assert (
        "activation 'rows' of layer 'dense_0' returned, for f(z), shape (5,)" in message
    )
    assert "expected (5, 3)" in message


def test_an_activation_that_returns_a_list_or_another_dtype_is_refused(rng) -> None:
    as_list = FunctionActivation(lambda z: z.tolist(), np.ones_like, name="as_list")
    wider = FunctionActivation(
        lambda z: z.astype(np.float64), np.ones_like, name="wider"
    )
    x = rng.normal(size=(5, 4))

    with pytest.raises(ConfigError, match="'as_list' of layer 'dense_0'.*a list"):
        Sequential([Dense(4, 3, as_list)], seed=0).forward(x)
    with pytest.raises(ConfigError, match="dtype float64; expected .* float32"):
        Sequential([Dense(4, 3, wider)], seed=0, dtype="float32").forward(x)


def test_a_subclass_of_a_built_in_activation_is_checked_as_any_other(rng) -> None:
    from annlens.activations.library import ReLU

    class Halving(ReLU):
        name = "halving"

        def forward(self, z):
            return super().forward(z)[: len(z) // 2]

    model = Sequential([Dense(4, 3, Halving()), Dense(3, 2)], seed=0)

    assert ReLU.vouched and not Halving.vouched
    with pytest.raises(ShapeError, match="'halving' of layer 'dense_0'"):
        model.forward(rng.normal(size=(6, 4)))


def test_every_built_in_activation_is_vouched_for_and_a_function_is_not() -> None:
    from annlens.activations import get_activation
    from annlens.activations.registry import activation_names

    assert all(get_activation(name).vouched for name in activation_names())
    assert not FunctionActivation(np.tanh, np.ones_like, name="mine").vouched


def test_a_derivative_of_the_wrong_shape_is_refused_at_the_layer_that_owns_it(
    rng,
) -> None:
    stacked = FunctionActivation(
        np.tanh, lambda z: np.ones((2, *z.shape)), name="stacked"
    )
    model = Sequential([Activation(stacked)], seed=0, dtype="float64", in_features=3)
    model.forward(rng.normal(size=(5, 3)))

    with pytest.raises(ShapeError) as caught:
        model.backward(np.ones((5, 3)))
    message = str(caught.value)
    assert "'stacked' of layer 'activation_0' returned, for delta" in message
    assert "shape (2, 5, 3); expected (5, 3)" in message


def test_a_layer_called_directly_takes_lists_and_computes_in_its_own_dtype() -> None:
    layer = Sequential([Dense(3, 2, "tanh")], seed=0, dtype="float32").layers[0]

    output = layer.forward([[1.0, 2.0, 3.0]])
    grad_input = layer.backward(np.ones((1, 2)))

    assert output.dtype == np.float32 and grad_input.dtype == np.float32
    assert layer.grads["W"].dtype == np.float32
    with pytest.raises(InputError, match="layer 'dense_0' takes a numeric input"):
        layer.forward(np.array([["a", "b", "c"]]))


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Dense(3, 2, bias="no"), "Dense bias must be True or False, got 'no'"),
        (lambda: Dense(True, 2), "Dense in_features must be a positive integer"),
        (lambda: BatchNorm(True), "BatchNorm num_features must be a positive integer"),
        (lambda: Dense(3, 2, name=5), "name must be a non-empty string or None"),
        (lambda: Dense(3, 2, name=""), "name must be a non-empty string or None"),
        (lambda: Dense(3, 2, name="loss"), "name 'loss' is taken: the model's loss"),
        (lambda: Activation("relu", name="model"), "name 'model' is taken"),
    ],
)
def test_a_layer_setting_of_the_wrong_kind_is_refused_at_construction(
    build, message
) -> None:
    with pytest.raises(ConfigError, match=message):
        build()


def test_a_layer_name_with_glob_characters_is_reachable_by_its_exact_point() -> None:
    model = Sequential([Dense(3, 2, name="fc[1]")], seed=0)

    handle = model.register_hook("fc[1].forward", lambda layer, i, o: None)

    assert list(handle.points) == ["fc[1].forward"]


def test_a_model_is_a_sequence_of_its_layers_by_position_and_by_name() -> None:
    model = make_model()

    assert len(model) == 2 and [layer.name for layer in model] == ["hidden", "logits"]
    assert model[0] is model["hidden"] is model.layers[0] and model[-1].name == "logits"
    with pytest.raises(UnknownNameError, match="'hiden' \\(did you mean 'hidden'"):
        model["hiden"]
    with pytest.raises(ConfigError, match="index 2 is out of range for a model of 2"):
        model[2]
    with pytest.raises(ConfigError, match="indexed by layer position or name"):
        model[0:1]  # type: ignore[index]


def test_a_state_entry_of_text_or_complex_numbers_is_refused_and_changes_nothing() -> (
    None
):
    model = Sequential([Dense(2, 2), Dense(2, 2)], seed=0, dtype="float64")
    before = model.state_dict()
    state = {name: np.zeros_like(value) for name, value in before.items()}
    for bad in (np.full((2, 2), "a"), np.ones((2, 2), dtype=complex)):
        with pytest.raises(ConfigError, match="'dense_1.W' must hold real numbers"):
            model.load_state_dict({**state, "dense_1.W": bad})
        after = model.state_dict()
        assert all(np.array_equal(after[name], before[name]) for name in before)
