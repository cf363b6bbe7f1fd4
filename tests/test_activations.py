"""Activations: values, first and second derivatives, stability, conventions at
kinks, the registry, softmax's Jacobian products, user-defined activations and
check_activation; every derivative proven by finite differences and PyTorch.

Errors against finite differences are max-norm relative errors,
``max|a - n| / max(max|a|, max|n|)`` over the points checked (see
:func:`annlens.activations.check.max_relative_error`), at most 1e-6; against
PyTorch (float64) values agree to ``rtol=1e-10, atol=1e-12``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from annlens.activations import (
    GELU,
    SELU,
    Activation,
    FunctionActivation,
    HardTanh,
    SiLU,
    Softmax,
    Softplus,
    activation_names,
    check_activation,
    get_activation,
    log_softmax,
    softmax,
)
from annlens.errors import ConfigError, UnknownNameError

SPECS: list[tuple[str, dict]] = [
    ("identity", {}),
    ("relu", {}),
    ("sigmoid", {}),
    ("tanh", {}),
    ("leaky_relu", {}),
    ("leaky_relu", {"alpha": 0.2}),
    ("elu", {}),
    ("elu", {"alpha": 0.5}),
    ("selu", {}),
    ("gelu", {}),
    ("gelu", {"approximate": "tanh"}),
    ("softplus", {}),
    ("softplus", {"beta": 2.0, "threshold": 5.0}),
    ("silu", {}),
    ("swish", {}),
    ("softsign", {}),
    ("hard_tanh", {}),
    ("hard_tanh", {"min_val": -2.0, "max_val": 0.5}),
]
IDS = [name + "".join(f"-{k}={v}" for k, v in s.items()) for name, s in SPECS]
EPS = 1e-6


def make(name: str, settings: dict) -> Activation:
    return get_activation(name, **settings)


def error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    """Max-norm relative error, written out here independently of annlens."""
    scale = max(np.abs(analytic).max(), np.abs(numeric).max(), 1e-12)
    return float(np.abs(analytic - numeric).max() / scale)


def smooth_points(act: Activation, rng: np.random.Generator) -> np.ndarray:
    """Random points in [-6, 6], none within 1e-3 of a kink, as (batch, units)."""
    z = rng.uniform(-6, 6, size=(40, 10))
    for kink in getattr(act, "kinks", ()):
        z = np.where(np.abs(z - kink) < 1e-3, z + 2e-3, z)
    return z


def slope(fn, z: np.ndarray) -> np.ndarray:
    up, down = z + EPS, z - EPS
    return (fn(up) - fn(down)) / (up - down)


# -- registry ------------------------------------------------------------------


def test_every_builtin_activation_is_registered_by_name() -> None:
    expected = {name for name, _ in SPECS} | {"softmax"}
    assert expected <= set(activation_names())


def test_swish_is_an_alias_of_silu() -> None:
    assert isinstance(get_activation("swish"), SiLU)


def test_unknown_activation_name_lists_the_known_ones() -> None:
    with pytest.raises(UnknownNameError) as caught:
        get_activation("rleu")
    message = str(caught.value)
    assert "'rleu'" in message and "did you mean 'relu'" in message
    for name in ("gelu", "softmax", "swish", "hard_tanh"):
        assert name in message


@pytest.mark.parametrize(("name", "settings"), SPECS, ids=IDS)
def test_config_rebuilds_the_same_activation(name, settings) -> None:
    act = make(name, settings)
    rebuilt = get_activation(act.config())
    assert type(rebuilt) is type(act) and rebuilt.settings() == act.settings()
    z = np.linspace(-3, 3, 13)
    assert np.array_equal(rebuilt.forward(z), act.forward(z))


@pytest.mark.parametrize(
    "build",
    [
        lambda: GELU(approximate="fast"),
        lambda: Softplus(beta=0.0),
        lambda: HardTanh(min_val=1.0, max_val=-1.0),
        lambda: get_activation("leaky_relu", slope=0.1),
    ],
    ids=["gelu-approximate", "softplus-beta", "hard_tanh-bounds", "unknown-setting"],
)
def test_bad_activation_settings_are_refused(build) -> None:
    with pytest.raises(ConfigError):
        build()


@pytest.mark.parametrize(
    ("name", "settings", "message"),
    [
        ("elu", {"alpha": "x"}, "elu alpha must be a finite number, got 'x'"),
        ("leaky_relu", {"alpha": math.nan}, "leaky_relu alpha must be a finite"),
        ("softplus", {"beta": "2"}, "softplus beta must be a finite number"),
        ("softplus", {"threshold": None}, "softplus threshold must be a number"),
        ("hard_tanh", {"min_val": "low"}, "hard_tanh min_val must be a finite"),
    ],
)
def test_an_activation_setting_that_is_not_a_number_is_refused_naming_it(
    name, settings, message
) -> None:
    with pytest.raises(ConfigError, match=message):
        get_activation(name, **settings)


def test_a_dict_without_a_name_is_refused_saying_what_a_dict_needs() -> None:
    with pytest.raises(ConfigError, match="a dict with a 'name' key"):
        get_activation({"alpha": 0.1})


# -- finite differences ----------------------------------------------------------


@pytest.mark.parametrize(("name", "settings"), SPECS, ids=IDS)
def test_first_derivative_matches_finite_differences(name, settings, rng) -> None:
    act = make(name, settings)
    z = smooth_points(act, rng)
    assert error(act.derivative(z, act.forward(z)), slope(act.forward, z)) <= 1e-6


@pytest.mark.parametrize(("name", "settings"), SPECS, ids=IDS)
def test_second_derivative_matches_finite_differences(name, settings, rng) -> None:
    act = make(name, settings)
    z = smooth_points(act, rng)

    def first(values: np.ndarray) -> np.ndarray:
        return act.derivative(values, act.forward(values))

    assert error(act.second_derivative(z, act.forward(z)), slope(first, z)) <= 1e-6


@pytest.mark.parametrize(("name", "settings"), SPECS, ids=IDS)
def test_backward_and_jvp_are_products_with_the_derivative(name, settings, rng) -> None:
    act = make(name, settings)
    z = smooth_points(act, rng)
    a, v = act.forward(z), rng.normal(size=z.shape)
    numeric = slope(act.forward, z) * v
    assert error(act.backward(z, a, v), numeric) <= 1e-6
    assert error(act.jvp(z, a, v), numeric) <= 1e-6


@pytest.mark.parametrize(("name", "settings"), SPECS, ids=IDS)
def test_check_activation_passes_every_builtin(name, settings) -> None:
    report = check_activation(make(name, settings))
    assert report.passed, str(report)
    assert report.first.error <= 1e-6
    assert report.second is not None and report.second.error <= 1e-6


# -- stability and dtype -----------------------------------------------------------


@pytest.mark.parametrize(("name", "settings"), SPECS, ids=IDS)
def test_values_and_derivatives_are_finite_at_1e4(name, settings) -> None:
    act = make(name, settings)
    z = np.array([[-1e4, -700.0, -50.0, 0.0, 50.0, 700.0, 1e4]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        a = act.forward(z)
        results = [a, act.derivative(z, a), act.second_derivative(z, a)]
    for result in results:
        assert np.all(np.isfinite(result))


@pytest.mark.parametrize(("name", "settings"), SPECS, ids=IDS)
def test_float32_in_gives_float32_out(name, settings, rng) -> None:
    act = make(name, settings)
    z = rng.normal(size=(3, 4)).astype(np.float32)
    a = act.forward(z)
    assert a.dtype == np.float32
    assert act.derivative(z, a).dtype == np.float32
    assert act.second_derivative(z, a).dtype == np.float32
    assert act.backward(z, a, np.ones_like(z)).dtype == np.float32


def test_sigmoid_and_softplus_keep_their_tails() -> None:
    z = np.array([-1e4, -50.0, 50.0, 1e4])
    sigmoid, softplus = get_activation("sigmoid"), Softplus(threshold=np.inf)
    np.testing.assert_allclose(sigmoid(z), [0.0, math.exp(-50), 1.0, 1.0], rtol=1e-15)
    np.testing.assert_allclose(
        softplus(z), [0.0, math.log1p(math.exp(-50)), 50.0, 1e4], rtol=1e-15
    )


def test_gelu_is_accurate_deep_in_the_negative_tail() -> None:
    z = np.array([-10.0, -20.0])
    expected = (
        z * 0.5 * np.array([math.erfc(10 / math.sqrt(2)), math.erfc(20 / 2**0.5)])
    )
    np.testing.assert_allclose(GELU()(z), expected, rtol=1e-14)
    assert GELU()(z)[0] == pytest.approx(-7.619853024160527e-23, rel=1e-12)


def test_softplus_is_linear_above_its_threshold() -> None:
    act = Softplus(beta=2.0, threshold=5.0)
    z = np.array([2.6, 10.0])
    assert np.array_equal(act(z), z)
    assert np.array_equal(act.derivative(z, act(z)), [1.0, 1.0])
    assert np.array_equal(act.second_derivative(z, act(z)), [0.0, 0.0])


# -- conventions at kinks, as PyTorch autograd ------------------------------------


@pytest.mark.parametrize(
    ("act", "z", "first", "second"),
    [
        (get_activation("relu"), 0.0, 0.0, 0.0),
        (get_activation("leaky_relu", alpha=0.2), 0.0, 0.2, 0.0),
        (get_activation("elu", alpha=0.5), 0.0, 0.5, 0.0),
        (SELU(), 0.0, SELU.scale * SELU.alpha_selu, 0.0),
        (HardTanh(), -1.0, 0.0, 0.0),
        (HardTanh(), 1.0, 0.0, 0.0),
        (get_activation("softsign"), 0.0, 1.0, 0.0),
    ],
    ids=["relu", "leaky_relu", "elu", "selu", "hard_tanh-min", "hard_tanh-max", "ss"],
)
def test_derivatives_at_kinks_follow_pytorch(act, z, first, second) -> None:
    values = np.array([z])
    a = act.forward(values)
    assert act.derivative(values, a)[0] == pytest.approx(first, rel=1e-15)
    assert act.second_derivative(values, a)[0] == pytest.approx(second, rel=1e-15)


# -- softmax -------------------------------------------------------------------------


def test_softmax_rows_sum_to_one_even_at_logits_1e4(rng) -> None:
    z = np.vstack([rng.normal(size=5), [1e4, -1e4, 0.0, 1e4 - 1, 3.0]])
    a = softmax(z)
    assert np.all(np.isfinite(a)) and np.all(np.isfinite(log_softmax(z)))
    np.testing.assert_allclose(a.sum(axis=1), 1.0, rtol=1e-15)
    np.testing.assert_allclose(np.exp(log_softmax(z)), a, rtol=1e-14, atol=1e-300)


def test_softmax_backward_and_jvp_are_products_with_its_jacobian(rng) -> None:
    act, z = Softmax(), rng.normal(size=(4, 5))
    a, v = act.forward(z), rng.normal(size=(4, 5))
    for row in range(4):
        jacobian = np.diag(a[row]) - np.outer(a[row], a[row])
        np.testing.assert_allclose(act.backward(z, a, v)[row], jacobian.T @ v[row])
        np.testing.assert_allclose(act.jvp(z, a, v)[row], jacobian @ v[row])


def test_softmax_backward_matches_finite_differences(rng) -> None:
    act, z, u = Softmax(), rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    numeric = np.zeros_like(z)
    for index in np.ndindex(z.shape):
        up, down = z.copy(), z.copy()
        up[index] += EPS
        down[index] -= EPS
        difference = np.sum(u * (act.forward(up) - act.forward(down)))
        numeric[index] = difference / (up[index] - down[index])
    assert error(act.backward(z, act.forward(z), u), numeric) <= 1e-6


def test_softmax_refuses_elementwise_derivatives_with_a_reason() -> None:
    act, z = Softmax(), np.zeros((1, 3))
    with pytest.raises(NotImplementedError, match="not elementwise"):
        act.derivative(z, act.forward(z))
    with pytest.raises(NotImplementedError, match="second derivative"):
        act.second_derivative(z, act.forward(z))


def test_check_activation_checks_softmax_through_its_products() -> None:
    report = check_activation("softmax")
    assert report.passed and report.second is None
    assert {check.label for check in [report.first, *report.products]} == {
        "backward",
        "jvp",
    }
    assert any("not elementwise" in note for note in report.notes)


# -- user-defined activations and check_activation ------------------------------------


class Cube(Activation):
    """f = z³, with a switch to get f' wrong on purpose."""

    name = "cube"

    def __init__(self, wrong: bool = False) -> None:
        self.wrong = wrong

    def forward(self, z):
        return z**3

    def derivative(self, z, a):
        return 3 * z**2 + (0.5 * (z > 1) if self.wrong else 0)

    def second_derivative(self, z, a):
        return 6 * z


def test_check_activation_passes_a_correct_subclass() -> None:
    report = check_activation(Cube())
    assert report.passed
    assert report.first.error <= 1e-6 and report.second.error <= 1e-6


def test_check_activation_finds_where_a_subclass_derivative_is_wrong() -> None:
    report = check_activation(Cube(wrong=True))
    assert not report.passed
    assert report.first.error > 1e-4
    assert report.first.label == "f'" and not report.first.passed
    worst = float(report.first.where.split("=")[1].split()[0])
    assert worst > 1
    assert "MISMATCH" in str(report) and "f'" in str(report)


def test_check_activation_passes_a_correct_function_activation() -> None:
    act = FunctionActivation(np.sin, np.cos, lambda z: -np.sin(z), name="sine")
    report = check_activation(act)
    assert report.passed, str(report)


def test_check_activation_catches_a_wrong_second_derivative() -> None:
    act = FunctionActivation(np.sin, np.cos, np.sin, name="sine")
    report = check_activation(act)
    assert report.first.passed and not report.second.passed
    assert not report.passed
    assert report.second.error > 0.5


def test_check_activation_reports_a_derivative_that_raises_instead_of_raising() -> None:
    def broken(z):
        raise ValueError("no derivative here")

    report = check_activation(FunctionActivation(np.sin, broken, name="broken"))
    assert not report.passed
    assert "ValueError" in report.first.note and "no derivative here" in str(report)


def test_check_activation_notes_a_missing_second_derivative() -> None:
    report = check_activation(FunctionActivation(np.sin, np.cos, name="sine"))
    assert report.passed and report.second is None
    assert any(note.startswith("f'' not checked") for note in report.notes)


def test_check_activation_skips_points_at_kinks() -> None:
    report = check_activation("relu", points=[-1.0, 0.0, 1.0])
    assert report.points == 2 and report.passed
    assert "skipped 1 of 3" in str(report)


def test_check_activation_report_reads_well() -> None:
    report = check_activation("tanh")
    assert repr(report).startswith("ActivationCheck(name='tanh', passed=True")
    text = str(report)
    assert text.startswith("check_activation(tanh): passed")
    assert "f''" in text and "worst at z =" in text


# -- PyTorch parity ------------------------------------------------------------


def torch_points() -> np.ndarray:
    grid = np.linspace(-8, 8, 161)
    special = [0.0, -1.0, 1.0, -2.0, 0.5, 2.5, -30.0, 30.0, 1e-8, -1e-8]
    return np.concatenate([grid, special]).reshape(-1, 1)


@pytest.mark.torch
@pytest.mark.parametrize(("name", "settings"), SPECS, ids=IDS)
def test_value_and_derivatives_match_pytorch(name, settings, torch_activation) -> None:
    torch = pytest.importorskip("torch")
    act = make(name, settings)
    z = torch_points()
    t = torch.tensor(z, dtype=torch.float64, requires_grad=True)
    value = torch_activation(act)(t)
    (first,) = torch.autograd.grad(value.sum(), t, create_graph=True)
    if first.requires_grad:
        (second,) = torch.autograd.grad(first.sum(), t)
    else:  # a constant derivative has no graph: its derivative is 0
        second = torch.zeros_like(t)

    a = act.forward(z)
    close = {"rtol": 1e-10, "atol": 1e-12}
    np.testing.assert_allclose(a, value.detach().numpy(), **close)
    np.testing.assert_allclose(act.derivative(z, a), first.detach().numpy(), **close)
    np.testing.assert_allclose(act.second_derivative(z, a), second.numpy(), **close)


@pytest.mark.torch
def test_softmax_value_and_products_match_pytorch(rng, torch_activation) -> None:
    torch = pytest.importorskip("torch")
    act = Softmax()
    z = np.vstack([rng.normal(size=(4, 6)) * 3, [1e4, -1e4, 0, 5, 1e4, 2]])
    u, v = rng.normal(size=z.shape), rng.normal(size=z.shape)
    t = torch.tensor(z, requires_grad=True)
    value = torch_activation(act)(t)
    (vjp,) = torch.autograd.grad(value, t, grad_outputs=torch.tensor(u))
    _, jvp = torch.autograd.functional.jvp(torch_activation(act), t, torch.tensor(v))

    a = act.forward(z)
    close = {"rtol": 1e-10, "atol": 1e-12}
    np.testing.assert_allclose(a, value.detach().numpy(), **close)
    np.testing.assert_allclose(act.backward(z, a, u), vjp.numpy(), **close)
    np.testing.assert_allclose(act.jvp(z, a, v), jvp.numpy(), **close)
