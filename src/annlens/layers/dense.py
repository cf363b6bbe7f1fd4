"""Dense: the fully connected layer ``a = f(x W + b)``.

Holds the affine part and an optional activation, keeping both the
pre-activation ``z`` and the post-activation ``a`` reachable by hooks.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from annlens.activations import Activation, get_activation
from annlens.errors import ConfigError
from annlens.layers.base import Array, Layer
from annlens.layers.init import Initializer, get_initializer, initializer_names


def _default_init(activation: Activation) -> str:
    """He for the ReLU family, Glorot otherwise."""
    return (
        "he_normal"
        if activation.name in ("relu", "leaky_relu", "elu")
        else ("glorot_uniform")
    )


class Dense(Layer):
    """A fully connected layer with an optional activation.

    Parameters
    ----------
    in_features : int
        Input width.
    out_features : int
        Output width, the number of units.
    activation : str, Activation or None
        The nonlinearity ``f``; None is the identity.
    init : str, dict, or Initializer, optional
        The weight initialiser (default: He normal for ReLU-like, Glorot
        uniform otherwise): a name, a dict of a name and settings
        (``{"name": "normal", "std": 0.01}``, as :meth:`config` stores it),
        or an object. Biases start at zero unless ``bias_init`` says.
    bias : bool
        Whether to add ``b``.
    bias_init : str or Initializer
        The bias initialiser.
    name : str, optional
        The layer name; the model assigns ``dense_<index>`` when omitted.
    seed : int
        Seed for a standalone layer's weights; a model redraws them from its own.
    dtype : numpy dtype
        float64 or float32, for a standalone layer; a model sets its own.

    Notes
    -----
    Forward, for x of shape (batch, in_features)::

        z = x W + b          W: (in_features, out_features), b: (out_features,)
        a = f(z)

    Backward, from grad_output = dL/da::

        delta      = dL/dz = grad_output * f'(z)
        grads["W"] = x^T delta
        grads["b"] = sum over the batch of delta
        grad_input = delta W^T
    """

    kind: ClassVar[str] = "dense"
    stages: ClassVar[tuple[str, ...]] = (
        "forward_pre",
        "pre_activation",
        "post_activation",
        "forward",
        "backward_pre",
        "pre_activation_grad",
        "backward",
        "gradient",
        "update",
    )

    def __init__(
        self,
        in_features: int,
        out_features: int,
        activation: str | dict[str, Any] | Activation | None = None,
        init: str | dict[str, Any] | Initializer | None = None,
        bias: bool = True,
        bias_init: str | Initializer = "zeros",
        name: str | None = None,
        seed: int = 0,
        dtype: Any = np.float64,
    ) -> None:
        super().__init__(name)
        for label, value in (
            ("in_features", in_features),
            ("out_features", out_features),
        ):
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, np.integer))
                or value < 1
            ):
                raise ConfigError(
                    f"Dense {label} must be a positive integer, got {value!r}"
                )
        self.n_in, self.n_out = int(in_features), int(out_features)
        self.activation = get_activation(activation)
        if isinstance(init, dict):  # {"name": ..., **settings}, as config() gives
            settings = dict(init)
            init = get_initializer(settings.pop("name", None), **settings)
        self.init_spec = init if init is not None else _default_init(self.activation)
        self.weight_init = get_initializer(self.init_spec)
        if not isinstance(bias, (bool, np.bool_)):
            raise ConfigError(f"Dense bias must be True or False, got {bias!r}")
        self.bias = bool(bias)
        self.bias_init = get_initializer(bias_init)
        self.initialize(np.random.default_rng(seed), np.dtype(dtype))

    @property
    def in_features(self) -> int:
        return self.n_in

    def out_features(self, in_features: int) -> int:
        return self.n_out

    def initialize(self, rng: np.random.Generator, dtype: np.dtype) -> None:
        """Draw ``W`` (and ``b``) from ``rng`` in ``dtype``."""
        self.dtype = np.dtype(dtype)
        self.params = {"W": self.weight_init((self.n_in, self.n_out), rng, dtype)}
        if self.bias:
            self.params["b"] = self.bias_init((self.n_out,), rng, dtype)
        self.zero_grad()
        self.cache = None

    def compute(self, x: Array) -> Array:
        z = x @ self.params["W"]
        if self.bias:
            z += self.params["b"]
        if self.hooked:
            z = self.hook_table.fire("pre_activation", z)

        a = self.activation.forward(z)
        if not self.activation.vouched and (
            type(a) is not np.ndarray or a.shape != z.shape or a.dtype != z.dtype
        ):
            self.refuse_activation_result(a, z, "f(z)")
        # Backward takes f'(z) from f's own output: a hook's replacement of a
        # is passed on but not differentiated, as BatchNorm's normalized is.
        own = a
        if self.hooked:
            a = self.hook_table.fire("post_activation", a)

        self.keep(x, z, own)
        return a

    def compute_backward(self, grad_output: Array) -> Array:
        delta = self.parameter_gradients(grad_output)
        return delta @ self.params["W"].T

    def parameter_gradients(self, grad_output: Array) -> Array:
        """Set ``grads["W"]`` and ``grads["b"]`` from dL/da; return delta."""
        x, z, a = self.cache  # type: ignore[misc]
        delta = self.activation.backward(z, a, grad_output)
        if not self.activation.vouched and (
            type(delta) is not np.ndarray
            or delta.shape != z.shape
            or delta.dtype != z.dtype
        ):
            self.refuse_activation_result(delta, z, "delta = grad_output * f'(z)")
        if self.hooked:
            delta = self.hook_table.fire("pre_activation_grad", delta)

        self.grads = {"W": x.T @ delta}
        if self.bias:
            self.grads["b"] = delta.sum(axis=0)
        return delta

    def backward_parameters(self, grad_output: Array) -> None:
        """Set ``grads`` without the product ``delta Wᵀ`` that nothing would read.

        Hooks fire as in :meth:`backward` at every stage but ``backward``, the
        one that shows dL/d input; with a hook there (or nothing kept from
        forward), this is the full :meth:`backward`.
        """
        if self.cache is None or self.hook_table.firing("backward"):
            self.backward(grad_output)
            return
        if self.hooked:
            grad_output = self.hook_table.fire("backward_pre", grad_output)
        self.parameter_gradients(grad_output)

    def describe(self) -> dict[str, str]:
        spec = self.init_spec
        init = spec if isinstance(spec, str) else spec.describe()
        return {"activation": self.activation.name, "init": init}

    def _init_config(self) -> str | dict[str, Any] | None:
        """The initialiser as a name, or a name with settings.

        None for an initialiser annlens has no name for (a user's own
        class): a rebuilt layer then draws the default one, and the stored
        weights are what count.
        """
        if isinstance(self.init_spec, str):
            return self.init_spec
        config = self.init_spec.config()
        return config if config["name"] in initializer_names() else None

    def config(self) -> dict[str, Any]:
        return {
            "in_features": self.n_in,
            "out_features": self.n_out,
            "activation": self.activation.config(),
            "init": self._init_config(),
            "bias": self.bias,
            "name": self.name,
        }
