"""The rules every hook follows: observe or replace, read-only views, context,
ordering, changes during dispatch, and what an exception leaves behind."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from annlens import Activation, Dense, Sequential
from annlens.errors import HookError
from annlens.hooks import HookContext, StopForward
from annlens.layers.batchnorm import BatchNorm
from annlens.layers.dropout import Dropout
from annlens.losses import MSE
from annlens.optim import SGD
from hooks_support import make_batch, make_model, reference_pass


def train_step(model: Sequential, optimizer: SGD, x: np.ndarray, y: np.ndarray) -> None:
    output = model.forward(x)
    _, grad = model.loss(MSE(), output, y)
    model.backward(grad)
    optimizer.step()


# -- observe or replace ----------------------------------------------------------------


def test_a_hook_returning_none_changes_nothing() -> None:
    model = make_model()
    x, _ = make_batch()
    clean = model.forward(x)
    model.register_hook("*.*", lambda layer, *arguments: None)

    np.testing.assert_array_equal(model.forward(x), clean)


def test_a_returned_array_replaces_the_value_and_the_layer_uses_it() -> None:
    model = make_model()
    x, _ = make_batch()
    replacement = np.full((len(x), 5), 0.5)
    model.register_hook("dense_0.post_activation", lambda layer, a: replacement)

    output = model.forward(x)

    layers = model.layers
    z1 = replacement @ layers[1].params["W"] + layers[1].params["b"]
    s = 1 / (1 + np.exp(-np.maximum(z1, 0)))
    np.testing.assert_allclose(
        output, s @ layers[3].params["W"] + layers[3].params["b"]
    )


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu"])
@pytest.mark.parametrize("standalone", [False, True])
def test_backward_takes_f_prime_of_z_not_of_a_post_activation_replacement(
    activation: str, standalone: bool
) -> None:
    # Zeroing unit 1 after f: the delta there is grad_output * f'(z), the same
    # whichever of z or a the activation writes f' from (tanh' = 1 - a**2 was
    # 1 at the zeroed unit).
    layers: list[Any] = (
        [Dense(3, 4), Activation(activation), Dense(4, 2)]
        if standalone
        else [Dense(3, 4, activation), Dense(4, 2)]
    )
    model = Sequential(layers, seed=0, dtype="float64")
    x, y = make_batch()
    target = model[1] if standalone else model[0]
    clean = model.capture(x, y, loss=MSE())

    def ablate(layer: Any, a: np.ndarray) -> np.ndarray:
        a = a.copy()
        a[:, 1] = 0
        return a

    with model.register_hook(f"{target.name}.post_activation", ablate):
        cache = model.capture(x, y, loss=MSE())

    z = clean[f"{target.name}.pre_activation"]
    f = {"tanh": np.tanh, "sigmoid": lambda v: 1 / (1 + np.exp(-v))}
    slope = {
        "tanh": 1 - np.tanh(z) ** 2,
        "sigmoid": f["sigmoid"](z) * (1 - f["sigmoid"](z)),
        "relu": (z > 0).astype(float),
    }[activation]
    np.testing.assert_allclose(
        cache[f"{target.name}.pre_activation_grad"],
        cache[f"{target.name}.backward_pre"] * slope,
    )
    assert not np.any(cache[f"{target.name}.post_activation"][:, 1])


def test_later_hooks_see_the_replacement_of_earlier_ones() -> None:
    model = make_model()
    seen = []
    model.register_hook("dense_0.pre_activation", lambda layer, z: z + 1)
    model.register_hook(
        "dense_0.pre_activation", lambda layer, z: seen.append(z.copy())
    )
    x, _ = make_batch()
    z = reference_pass(model, x)["dense_0.pre_activation"]

    model.forward(x)

    np.testing.assert_allclose(seen[0], z + 1)


def test_a_replacement_of_the_wrong_shape_is_refused_naming_hook_point_shapes() -> None:
    model = make_model()

    def widen(layer: Any, z: np.ndarray) -> np.ndarray:
        return np.zeros((z.shape[0], 7))

    model.register_hook("dense_1.pre_activation", widen)

    with pytest.raises(HookError) as error:
        model.forward(np.ones((2, 3)))
    message = str(error.value)
    assert "widen" in message and "dense_1.pre_activation" in message
    assert "(2, 7)" in message and "expected (2, 4)" in message


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")
@pytest.mark.parametrize(
    "subclass", [np.asmatrix, np.ma.masked_array], ids=["matrix", "masked"]
)
def test_a_replacement_of_an_ndarray_subclass_is_refused(subclass: Any) -> None:
    model = make_model()
    x, _ = make_batch()
    model.register_hook("dense_0.pre_activation", lambda layer, z: subclass(z))

    with pytest.raises(HookError, match="a subclass of ndarray") as caught:
        model.forward(x)
    assert "help: return numpy.asarray(value)" in str(caught.value)


def test_a_replacement_of_the_wrong_dtype_is_refused_naming_both_dtypes() -> None:
    model = make_model()
    model.register_hook(
        "dense_0.forward", lambda layer, i, o: o.astype(np.float32), prepend=True
    )

    with pytest.raises(HookError, match=r"dense_0\.forward.*float32.*expected float64"):
        model.forward(np.ones((2, 3)))


def test_a_replacement_that_is_not_an_array_is_refused() -> None:
    model = make_model()
    model.register_hook("dense_0.forward_pre", lambda layer, x: x.tolist())

    with pytest.raises(HookError, match="returned list; expected None or an ndarray"):
        model.forward(np.ones((2, 3)))


# -- read-only views ------------------------------------------------------------------


def test_arrays_handed_to_hooks_are_read_only_and_the_cache_survives_a_write() -> None:
    model = make_model()
    x, y = make_batch()
    clean = model.capture(x, y, loss=MSE())

    def vandal(layer: Any, z: np.ndarray) -> None:
        z[...] = 0

    with model.register_hook("dense_0.pre_activation", vandal):
        with pytest.raises(HookError, match="read-only"):
            model.forward(x)
    again = model.capture(x, y, loss=MSE())

    for point in clean:
        np.testing.assert_equal(again[point], clean[point])


def test_every_argument_of_every_stage_is_read_only() -> None:
    model = make_model()
    writable = []

    def check(layer: Any, *arguments: Any, ctx: HookContext) -> None:
        for value in arguments:
            if isinstance(value, np.ndarray) and value.flags.writeable:
                writable.append(ctx.point)

    model.register_hook("*.*", check)
    x, y = make_batch()
    train_step(model, SGD(model, lr=0.1), x, y)

    assert writable == []


def test_values_handed_to_hooks_never_change_over_later_steps() -> None:
    model = Sequential(
        [
            Dense(3, 6, "tanh"),
            BatchNorm(),
            Dropout(0.3),
            Activation("relu"),
            Dense(6, 4),
            Dense(4, 2, "sigmoid"),
        ],
        seed=3,
        dtype="float64",
    )
    kept: list[tuple[str, np.ndarray, np.ndarray]] = []

    def keep_views(layer: Any, *arguments: Any, ctx: HookContext) -> None:
        for value in arguments:
            if isinstance(value, np.ndarray):
                kept.append((ctx.point, value, value.copy()))

    model.register_hook("*.*", keep_views)
    optimizer = SGD(model, lr=0.1, momentum=0.9)
    rng = np.random.default_rng(0)
    for _ in range(4):
        x, y = rng.normal(size=(8, 3)), rng.normal(size=(8, 2))
        train_step(model, optimizer, x, y)
        model.predict(x)

    assert len(kept) > 100
    changed = [p for p, view, copy in kept if not np.array_equal(view, copy)]
    assert changed == []


# -- context ---------------------------------------------------------------------------


def test_a_hook_taking_ctx_gets_point_stage_layer_step_and_mode() -> None:
    model = make_model()
    seen: list[HookContext] = []
    model.register_hook("dense_1.forward", lambda layer, i, o, ctx: seen.append(ctx))
    model.register_hook("dense_1.update", lambda layer, n, u, *, ctx: seen.append(ctx))
    x, y = make_batch()
    optimizer = SGD(model, lr=0.1)

    train_step(model, optimizer, x, y)
    train_step(model, optimizer, x, y)
    model.predict(x)

    forward = [c for c in seen if c.stage == "forward"]
    assert forward[0].point == "dense_1.forward" and forward[0].layer == "dense_1"
    assert [c.layer_index for c in forward] == [1, 1, 1]
    assert [c.step for c in forward] == [0, 1, 2]
    assert [c.training for c in forward] == [True, True, False]
    update = [c for c in seen if c.stage == "update"]
    assert [c.step for c in update] == [0, 0, 1, 1]
    assert update[0].point == "dense_1.update"


def test_a_hook_taking_kwargs_also_gets_the_context() -> None:
    model = make_model()
    seen = []
    model.register_hook("dense_0.forward_pre", lambda layer, x, **kw: seen.append(kw))

    model.forward(np.ones((1, 3)))

    assert isinstance(seen[0]["ctx"], HookContext)


def test_the_loss_point_context_has_no_layer_index() -> None:
    model = make_model()
    seen = []
    model.register_hook("loss", lambda point, value, grad, ctx: seen.append(ctx))
    x, y = make_batch()

    model.loss(MSE(), model.forward(x), y)

    assert seen[0].point == "loss.loss" and seen[0].layer_index is None


# -- ordering --------------------------------------------------------------------------


def test_hooks_at_one_point_fire_in_registration_order_prepend_first() -> None:
    model = make_model()
    order = []
    model.register_hook("dense_0.forward", lambda *a: order.append("first"))
    model.register_hook("dense_0.forward", lambda *a: order.append("second"))
    model.register_hook(
        "dense_0.forward", lambda *a: order.append("front"), prepend=True
    )
    model.register_hook("dense_0.forward", lambda *a: order.append("third"))

    model.forward(np.ones((1, 3)))

    assert order == ["front", "first", "second", "third"]


def test_backward_hooks_fire_in_exactly_the_reverse_layer_order_of_forward() -> None:
    model = make_model()
    forward, backward, gradient = [], [], []
    model.register_hook("forward", lambda layer, i, o: forward.append(layer.name))
    model.register_hook("backward", lambda layer, gi, go: backward.append(layer.name))
    model.register_hook("gradient", lambda layer, n, g: gradient.append(layer.name))
    x, y = make_batch()

    model.capture(x, y, loss=MSE())

    assert forward == ["dense_0", "dense_1", "activation_0", "dense_2"]
    assert backward == forward[::-1]
    assert gradient == [
        "dense_2",
        "dense_2",
        "dense_1",
        "dense_1",
        "dense_0",
        "dense_0",
    ]


def test_stages_within_a_layer_fire_in_pass_order() -> None:
    model = make_model()
    stages = []
    model.register_hook("dense_1.*", lambda *a, ctx: stages.append(ctx.stage))
    x, y = make_batch()

    model.capture(x, y, loss=MSE())

    assert stages == [
        "forward_pre",
        "pre_activation",
        "post_activation",
        "forward",
        "backward_pre",
        "pre_activation_grad",
        "backward",
        "gradient",
        "gradient",
    ]


# -- changes during dispatch -----------------------------------------------------------


def test_a_hook_removed_during_dispatch_still_fires_in_it_and_not_after() -> None:
    model = make_model()
    fired = []
    handles = {}

    def remover(layer: Any, i: Any, o: Any) -> None:
        fired.append("remover")
        handles["victim"].remove()

    model.register_hook("dense_0.forward", remover)
    handles["victim"] = model.register_hook(
        "dense_0.forward", lambda *a: fired.append("victim")
    )

    model.forward(np.ones((1, 3)))
    model.forward(np.ones((1, 3)))

    assert fired == ["remover", "victim", "remover"]


def test_a_hook_added_during_dispatch_fires_from_the_next_dispatch() -> None:
    model = make_model()
    fired = []

    def adder(layer: Any, i: Any, o: Any) -> None:
        fired.append("adder")
        if fired.count("adder") == 1:
            model.register_hook("dense_0.forward", lambda *a: fired.append("added"))

    model.register_hook("dense_0.forward", adder)

    model.forward(np.ones((1, 3)))
    model.forward(np.ones((1, 3)))

    assert fired == ["adder", "adder", "added"]


def test_a_hook_may_remove_itself_and_clear_every_hook_while_running() -> None:
    model = make_model()
    fired = []

    def once(layer: Any, i: Any, o: Any) -> None:
        fired.append(layer.name)
        model.clear_hooks()

    model.register_hook("forward", once)
    model.forward(np.ones((1, 3)))
    model.forward(np.ones((1, 3)))

    assert fired == ["dense_0"]
    assert model.list_hooks() == []


def test_a_hook_that_runs_the_model_again_is_told_to_pause_itself() -> None:
    model = make_model()
    x, _ = make_batch()
    model.register_hook("dense_1.forward", lambda layer, i, o: model.predict(x) * 0)

    with pytest.raises(HookError) as caught:
        model.forward(x)
    assert "raised RecursionError" in str(caught.value)
    assert "pause its handle around the inner call" in str(caught.value)


def test_a_hook_that_pauses_itself_may_run_the_model() -> None:
    model = make_model()
    x, _ = make_batch()
    inner = []

    def rerun(layer: Any, input: Any, output: Any) -> None:
        handle.pause()
        inner.append(model.predict(x))
        handle.resume()

    handle = model.register_hook("dense_1.forward", rerun)
    output = model.forward(x)

    assert len(inner) == 1
    np.testing.assert_array_equal(inner[0], output)


# -- exceptions ------------------------------------------------------------------------


def test_an_exception_in_a_hook_names_the_hook_and_the_hook_point() -> None:
    model = make_model()

    def broken(layer: Any, grad_output: np.ndarray) -> None:
        raise ZeroDivisionError("no luck")

    model.register_hook("dense_1.backward_pre", broken)
    x, y = make_batch()

    with pytest.raises(HookError) as error:
        model.capture(x, y, loss=MSE())
    message = str(error.value)
    assert "broken" in message and "dense_1.backward_pre" in message
    assert "ZeroDivisionError: no luck" in message
    assert isinstance(error.value.__cause__, ZeroDivisionError)


@pytest.mark.parametrize(
    "point",
    ["dense_1.forward", "dense_0.pre_activation_grad", "dense_2.gradient", "loss"],
)
def test_a_failing_hook_in_the_pass_leaves_parameters_and_optimizer_state(
    point: str,
) -> None:
    model = make_model()
    optimizer = SGD(model, lr=0.1, momentum=0.9)
    x, y = make_batch()
    train_step(model, optimizer, x, y)
    params, state = model.state_dict(), optimizer.state_dict()

    def fail(*arguments: Any) -> None:
        raise RuntimeError("stop")

    model.register_hook(point, fail)
    with pytest.raises(HookError):
        train_step(model, optimizer, x, y)

    assert_state_equal(model.state_dict(), params)
    assert_state_equal(optimizer.state_dict(), state)


def test_a_failing_update_hook_leaves_every_parameter_and_the_optimizer_state() -> None:
    model = make_model()
    optimizer = SGD(model, lr=0.1, momentum=0.9)
    x, y = make_batch()
    train_step(model, optimizer, x, y)
    params, state = model.state_dict(), optimizer.state_dict()
    step = model.state.step

    def fail_on_b(layer: Any, name: str, update: np.ndarray) -> None:
        if name == "b":
            raise RuntimeError("refused")

    # dense_0.W, dense_0.b, dense_1.W ... : the earlier proposals are never applied
    model.register_hook("dense_1.update", fail_on_b)
    with pytest.raises(HookError, match=r"fail_on_b at dense_1\.update"):
        train_step(model, optimizer, x, y)

    assert_state_equal(model.state_dict(), params)
    assert_state_equal(optimizer.state_dict(), state)
    assert model.state.step == step


def assert_state_equal(actual: dict[str, Any], expected: dict[str, Any]) -> None:
    assert actual.keys() == expected.keys()
    for key, value in expected.items():
        if isinstance(value, dict):
            assert_state_equal(actual[key], value)
        elif isinstance(value, np.ndarray):
            np.testing.assert_array_equal(actual[key], value, err_msg=key)
        else:
            assert actual[key] == value, key


def test_after_a_failed_forward_backward_is_refused_rather_than_mixing_passes() -> None:
    model = make_model()
    x, y = make_batch()
    output = model.forward(x)
    model.register_hook("dense_1.forward", lambda *a: 1 / 0)

    with pytest.raises(HookError):
        model.forward(x)
    with pytest.raises(Exception, match="kept nothing"):
        model.backward(MSE().gradient(output, y))


def test_stop_forward_passes_through_unwrapped_with_point_and_value() -> None:
    model = make_model()
    x, _ = make_batch()
    expected = reference_pass(model, x)["dense_1.forward"]

    def stop(layer: Any, i: Any, o: Any) -> None:
        raise StopForward

    model.register_hook("dense_1.forward", stop)
    with pytest.raises(StopForward) as signal:
        model.forward(x)

    assert signal.value.point == "dense_1.forward"
    np.testing.assert_allclose(signal.value.value, expected)


def test_stop_forward_at_a_backward_stage_is_refused() -> None:
    model = make_model()

    def stop(layer: Any, grad_output: Any) -> None:
        raise StopForward

    model.register_hook("dense_1.backward_pre", stop)
    x, y = make_batch()

    with pytest.raises(HookError, match="only stops a forward pass"):
        model.capture(x, y, loss=MSE())
