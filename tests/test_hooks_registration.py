"""Registering hooks: by name, glob, layer type or predicate; handles, scopes,
listing and clearing."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import numpy as np
import pytest

from annlens import Activation, Dense
from annlens.errors import HookError, StateError
from annlens.hooks import HookHandle
from annlens.losses import MSE
from hooks_support import make_batch, make_model


def points_of(handle: HookHandle) -> list[str]:
    return list(handle.points)


def noop(*arguments: Any) -> None:
    return None


def observer(*arguments: Any) -> None:
    return None


# -- selecting hook points -------------------------------------------------------------


def test_a_stage_name_reaches_every_layer_that_has_it() -> None:
    model = make_model()
    handle = model.register_hook("forward", noop)

    assert points_of(handle) == [
        "dense_0.forward",
        "dense_1.forward",
        "activation_0.forward",
        "dense_2.forward",
    ]


def test_an_exact_hook_point_reaches_only_that_point() -> None:
    model = make_model()

    assert points_of(model.register_hook("dense_1.pre_activation", noop)) == [
        "dense_1.pre_activation"
    ]


def test_a_glob_over_hook_points_reaches_every_match_in_model_order() -> None:
    model = make_model()

    handle = model.register_hook("dense_*.backward*", noop)

    assert points_of(handle) == [
        f"dense_{i}.{stage}" for i in range(3) for stage in ("backward_pre", "backward")
    ]


def test_a_glob_over_stages_alone_reaches_those_stages_everywhere() -> None:
    model = make_model()

    handle = model.register_hook("*_activation", noop)

    assert points_of(handle)[:2] == [
        "dense_0.pre_activation",
        "dense_0.post_activation",
    ]
    assert len(points_of(handle)) == 8


def test_a_layer_type_filter_reaches_only_layers_of_that_type() -> None:
    model = make_model()

    handle = model.register_hook("pre_activation", noop, layers=Activation)

    assert points_of(handle) == ["activation_0.pre_activation"]


def test_a_predicate_filter_is_asked_only_about_layers_with_the_point() -> None:
    model = make_model()
    asked = []

    def wide(layer: Any) -> bool:
        asked.append(layer.name)
        return layer.params["W"].shape[1] >= 4

    handle = model.register_hook("gradient", noop, layers=wide)

    assert points_of(handle) == ["dense_0.gradient", "dense_1.gradient"]
    assert asked == ["dense_0", "dense_1", "dense_2"]


def test_a_layer_name_glob_and_a_list_of_filters_narrow_the_selection() -> None:
    model = make_model()

    by_glob = model.register_hook("forward", noop, layers="dense_[01]")
    by_list = model.register_hook("forward", noop, layers=["dense_2", Activation])

    assert points_of(by_glob) == ["dense_0.forward", "dense_1.forward"]
    assert points_of(by_list) == ["activation_0.forward", "dense_2.forward"]


def test_layers_without_parameters_have_no_gradient_or_update_point() -> None:
    model = make_model()

    assert "activation_0.gradient" not in points_of(model.register_hook("*.*", noop))
    with pytest.raises(HookError, match="no hook point matches"):
        model.register_hook("activation_0.update", noop)


def test_the_loss_stage_lives_at_the_models_loss_point() -> None:
    model = make_model()

    assert points_of(model.register_hook("loss", noop)) == ["loss.loss"]


def test_an_unknown_stage_is_refused_with_a_suggestion() -> None:
    model = make_model()

    with pytest.raises(HookError, match="did you mean 'forward'"):
        model.register_hook("froward", noop)


def test_a_point_matching_nothing_is_refused_listing_the_hook_points() -> None:
    model = make_model()

    with pytest.raises(HookError, match=r"no hook point matches 'dense_9\.forward'.*"):
        model.register_hook("dense_9.forward", noop)
    with pytest.raises(HookError, match="but layers=<class"):
        model.register_hook("forward", noop, layers=np.ndarray)


def test_a_hook_that_is_not_callable_is_refused() -> None:
    model = make_model()

    with pytest.raises(HookError, match="must be callable"):
        model.register_hook("forward", 42)  # type: ignore[arg-type]


def test_prepend_that_is_not_true_or_false_is_refused() -> None:
    model = make_model()

    with pytest.raises(HookError, match="prepend must be True or False, got 'yes'"):
        model.register_hook("forward", noop, prepend="yes")  # type: ignore[arg-type]
    assert model.list_hooks() == []


def test_a_misspelt_name_in_a_layers_list_is_refused_not_dropped() -> None:
    model = make_model()
    x, y = make_batch()

    with pytest.raises(HookError) as caught:
        model.register_hook("forward", noop, layers=["dense_0", "dense_9"])
    message = str(caught.value)
    assert "layers= names 'dense_9', which is no layer of the model" in message
    assert message.endswith("layers: dense_0, dense_1, activation_0, dense_2")
    assert model.list_hooks() == []
    with pytest.raises(HookError, match="names 'dense_00'.*did you mean"):
        model.capture(x, y, loss=MSE(), layers=["dense_00", Activation])
    globbed = model.register_hook("forward", noop, layers=["dense_0", "enc_*"])
    assert points_of(globbed) == ["dense_0.forward"]


def test_a_layer_filter_that_excludes_every_layer_says_so_not_did_you_mean() -> None:
    model = make_model()

    with pytest.raises(HookError) as caught:
        model.register_hook("forward", noop, layers="encoder_*")
    message = str(caught.value)
    assert (
        "hook point 'forward' is at dense_0, dense_1, activation_0, dense_2" in message
    )
    assert "layers='encoder_*' selects none of them" in message
    assert message.endswith("layers: dense_0, dense_1, activation_0, dense_2")
    assert "did you mean" not in message


def test_a_parameter_stage_at_a_layer_without_parameters_names_the_reason() -> None:
    model = make_model()

    with pytest.raises(HookError) as caught:
        model.register_hook("activation_0.gradient", noop)
    message = str(caught.value)
    assert "exists only at layers with parameters, and activation_0 has none" in message
    assert "layers with parameters: dense_0, dense_1, dense_2" in message


def test_a_hook_that_cannot_take_the_stage_arguments_is_refused_at_registration() -> (
    None
):
    model = make_model()

    def two(layer: Any, z: Any) -> None:
        return None

    with pytest.raises(HookError) as caught:
        model.register_hook("dense_0.forward", two)
    message = str(caught.value)
    assert "cannot be called at dense_0.forward" in message
    assert "fn(layer, input, output)" in message
    assert "too many positional arguments" in message
    assert model.list_hooks() == []


def test_a_hook_refused_at_one_point_is_registered_at_none() -> None:
    model = make_model()

    def one_value(layer: Any, value: Any) -> None:
        return None

    # forward_pre takes (layer, input), but forward takes (layer, input, output)
    with pytest.raises(HookError, match="cannot be called at dense_0.forward "):
        model.register_hook("dense_0.forward*", one_value)
    assert model.list_hooks() == []


def test_hooks_taking_ctx_or_any_arguments_pass_the_registration_check() -> None:
    model = make_model()

    def with_ctx(layer: Any, input: Any, output: Any, ctx: Any) -> None:
        return None

    model.register_hook("forward", with_ctx)
    model.register_hook("*.*", noop)
    model.register_hook("gradient", lambda layer, *rest, **options: None)
    model.forward(make_batch()[0])


# -- handles ---------------------------------------------------------------------------


def test_handle_remove_unregisters_every_point_and_is_idempotent() -> None:
    model = make_model()
    keep = model.register_hook("dense_0.forward", noop)
    handle = model.register_hook("forward", noop)

    handle.remove()
    handle.remove()

    assert not handle.active and keep.active
    assert model.list_hooks() == [("dense_0.forward", "noop")]


def test_a_handle_is_a_context_manager_that_removes_on_exit_and_on_error() -> None:
    model = make_model()
    seen = []

    with model.register_hook("dense_0.forward", lambda *a: seen.append(1)):
        model.forward(np.ones((1, 3)))
    with pytest.raises(KeyError):
        with model.register_hook("dense_0.forward", noop):
            raise KeyError("inside")
    model.forward(np.ones((1, 3)))

    assert seen == [1]
    assert model.list_hooks() == []


def test_registering_and_removing_a_thousand_times_leaves_no_hooks() -> None:
    model = make_model()

    for _ in range(1000):
        model.register_hook("*.*", noop).remove()

    assert model.list_hooks() == []
    assert not any(owner.hooked for owner in model.hook_owners())


# -- scopes ----------------------------------------------------------------------------


def test_a_scope_removes_exactly_what_it_added_and_leaves_other_hooks() -> None:
    model = make_model()
    other = model.register_hook("dense_0.forward", noop)
    before = model.list_hooks()

    with model.hooks(("forward", noop), {"dense_1.backward": noop}) as scope:
        scope.register("loss", noop)
        assert len(model.list_hooks()) == len(before) + 6

    assert model.list_hooks() == before
    assert other.active


def test_a_scope_that_has_ended_refuses_new_hooks_instead_of_leaking_them() -> None:
    model = make_model()
    with model.hooks(("forward", noop)) as scope:
        pass
    with pytest.raises(StateError, match="this hook scope has ended"):
        scope.register("forward", noop)
    handle = model.register_hook("dense_0.forward", noop)
    with pytest.raises(StateError, match="this hook scope has ended"):
        scope.add(handle)
    assert model.list_hooks() == [("dense_0.forward", "noop")]


def test_a_scope_removes_its_hooks_when_the_block_raises() -> None:
    model = make_model()

    with pytest.raises(ZeroDivisionError):
        with model.hooks(("forward", noop)):
            raise ZeroDivisionError

    assert model.list_hooks() == []


def test_a_scope_whose_registration_fails_leaves_nothing_behind() -> None:
    model = make_model()

    with pytest.raises(HookError):
        model.hooks(("forward", noop), ("no_such_stage", noop))

    assert model.list_hooks() == []


def test_nested_scopes_each_remove_only_their_own() -> None:
    model = make_model()

    with model.hooks(("dense_0.forward", noop)):
        with model.hooks(("dense_1.forward", noop)):
            assert [p for p, _ in model.list_hooks()] == [
                "dense_0.forward",
                "dense_1.forward",
            ]
        assert [p for p, _ in model.list_hooks()] == ["dense_0.forward"]
    assert model.list_hooks() == []


def test_a_scope_takes_options_and_adopts_existing_handles() -> None:
    model = make_model()
    order = []

    with model.hooks() as scope:
        scope.register("dense_0.forward", lambda *a: order.append("late"))
        model.hooks(
            ("dense_0.forward", lambda *a: order.append("early"), {"prepend": True})
        )
        adopted = scope.add(model.register_hook("forward", noop, layers=Dense))
        model.forward(np.ones((1, 3)))

    assert order == ["early", "late"]
    assert not adopted.active
    assert [p for p, _ in model.list_hooks()] == ["dense_0.forward"]


def test_a_malformed_scope_entry_is_refused() -> None:
    model = make_model()

    with pytest.raises(HookError, match=r"\(point, fn\)"):
        model.hooks(("forward",))  # type: ignore[arg-type]


def test_a_misspelt_scope_option_is_refused_and_nothing_stays_registered() -> None:
    model = make_model()

    with pytest.raises(HookError, match="no option 'prepnd' \\(did you mean 'prepend'"):
        model.hooks(("dense_0.forward", noop), ("forward", noop, {"prepnd": True}))
    with pytest.raises(HookError, match="options as a dict of layers and prepend"):
        model.hooks(("forward", noop, True))  # type: ignore[arg-type]
    assert model.list_hooks() == []


# -- listing and clearing --------------------------------------------------------------


def test_list_hooks_names_point_and_hook_in_model_then_pass_order() -> None:
    model = make_model()

    model.register_hook("loss", observer)
    model.register_hook("dense_1.backward", noop)
    model.register_hook("dense_1.forward_pre", observer)
    model.register_hook("dense_0.gradient", noop)

    assert model.list_hooks() == [
        ("dense_0.gradient", "noop"),
        ("dense_1.forward_pre", "observer"),
        ("dense_1.backward", "noop"),
        ("loss.loss", "observer"),
    ]


def test_clear_hooks_removes_every_hook_and_handles_then_remove_nothing() -> None:
    model = make_model()
    handle = model.register_hook("*.*", noop)
    model.register_hook("loss", noop)

    model.clear_hooks()
    handle.remove()

    assert model.list_hooks() == []
    assert not any(owner.hooked for owner in model.hook_owners())
    x, y = make_batch()
    model.capture(x, y, loss=MSE())
    assert model.list_hooks() == []


def test_handle_and_scope_reprs_say_what_they_hold() -> None:
    model = make_model()
    handle = model.register_hook("dense_0.forward", noop)

    assert repr(handle) == "HookHandle(dense_0.forward; active)"
    handle.remove()
    assert repr(handle) == "HookHandle(dense_0.forward; removed)"
    assert "1 active" in repr(model.hooks(("forward", noop)))


# -- pausing ---------------------------------------------------------------------------


def test_a_paused_hook_is_not_called_until_resumed() -> None:
    model = make_model()
    x, _ = make_batch()
    calls: list[str] = []
    handle = model.register_hook("dense_1.forward", lambda *a: calls.append("hook"))

    handle.pause()
    model.forward(x)
    assert calls == [] and handle.paused and handle.active

    handle.resume()
    model.forward(x)
    assert calls == ["hook"] and not handle.paused


def test_a_layer_whose_hooks_are_all_paused_is_not_hooked() -> None:
    model = make_model()
    layer = model.layers[1]
    handle = model.register_hook("dense_1.*", noop)
    assert layer.hooked

    handle.pause()
    assert not layer.hooked
    assert not layer.hook_table.firing("forward")
    assert all(hook.paused for hook in layer.hook_table.hooks())

    handle.resume()
    assert layer.hooked and layer.hook_table.firing("forward")


def test_a_resumed_hook_keeps_its_place_in_the_firing_order() -> None:
    model = make_model()
    x, _ = make_batch()
    order: list[str] = []
    first = model.register_hook("dense_0.forward", lambda *a: order.append("first"))
    model.register_hook("dense_0.forward", lambda *a: order.append("second"))

    first.pause()
    first.resume()
    model.forward(x)

    assert order == ["first", "second"]


def test_pausing_a_removed_handle_does_nothing() -> None:
    model = make_model()
    handle = model.register_hook("forward", noop)
    handle.remove()

    handle.pause()
    handle.resume()

    assert not handle.paused and not handle.active
    assert not any(layer.hooked for layer in model.layers)
    assert "removed" in repr(handle)


def test_a_paused_backward_hook_lets_the_first_layer_skip_its_input_gradient() -> None:
    model = make_model()
    x, y = make_batch()
    seen: list[Any] = []
    handle = model.register_hook(
        "dense_0.backward", lambda layer, g, go: seen.append(g)
    )
    handle.pause()

    _, grad = model.loss(MSE(), model.forward(x), y)
    model.backward_parameters(grad)
    assert seen == []

    handle.resume()
    _, grad = model.loss(MSE(), model.forward(x), y)
    model.backward_parameters(grad)
    assert len(seen) == 1 and seen[0].shape == x.shape


def test_the_run_state_calls_its_watchers_when_the_step_or_epoch_changes() -> None:
    model = make_model()
    seen: list[tuple[int, int]] = []
    unwatch = model.state.watch(lambda state: seen.append((state.step, state.epoch)))

    model.state.step += 1
    model.state.epoch = 0  # unchanged: no call
    model.state.epoch = 3
    unwatch()
    model.state.step += 1
    unwatch()  # harmless

    assert seen == [(1, 0), (1, 3)]
    assert repr(model.state) == "RunState(step=2, epoch=3, training)"


def test_a_deep_copy_of_a_model_starts_without_hooks_and_keeps_the_originals() -> None:
    model = make_model()
    x, _ = make_batch()
    seen: list[str] = []
    model.register_hook("forward", lambda layer, i, o: seen.append(layer.name))

    copied = copy.deepcopy(model)
    copied.forward(x)

    assert seen == [] and copied.list_hooks() == []
    assert not any(layer.hooked for layer in copied.layers)
    np.testing.assert_array_equal(copied.forward(x), model.forward(x))
    assert seen == ["dense_0", "dense_1", "activation_0", "dense_2"]


def test_a_pickled_model_or_a_copied_layer_carries_no_hooks() -> None:
    model = make_model()
    x, _ = make_batch()
    model.register_hook("forward", lambda layer, i, o: None)  # a lambda cannot pickle
    model.register_hook("loss", lambda point, value, grad: None)

    restored = pickle.loads(pickle.dumps(model))
    layer = copy.deepcopy(model.layers[0])

    assert restored.list_hooks() == [] and not restored.loss_point.hooked
    np.testing.assert_array_equal(restored.forward(x), model.forward(x))
    assert layer.hook_table.hooks() == [] and not layer.hooked
    assert len(model.list_hooks()) == 5
