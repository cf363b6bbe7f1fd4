"""BatchNorm: batch normalisation over the feature axis of (batch, features) inputs.

Holds the layer, its two hook stages of its own (``normalized``, the
normalised input ``x_hat``, and ``normalized_grad``, dL/d x_hat) and the exact
backward pass in training and in evaluation mode. It normalises dense inputs
only; per-channel normalisation of images is not part of annlens.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from annlens.errors import ConfigError, InputError, StateError
from annlens.hooks.stages import Stage, register_stage
from annlens.layers.base import Array, Layer

register_stage(
    Stage(
        "normalized",
        ("x_hat",),
        0,
        doc="x_hat, the input normalised per feature, before scale and shift",
    )
)
register_stage(
    Stage(
        "normalized_grad",
        ("grad_x_hat",),
        0,
        backward=True,
        doc="dL/d x_hat, before it is sent back through the normalisation",
    )
)


class BatchNorm(Layer):
    """Batch normalisation, ``output = gamma * x_hat + beta``.

    Parameters
    ----------
    num_features : int, optional
        The number of features; inferred from the layer before when omitted.
    momentum : float
        Weight of the newest batch in the running statistics, in [0, 1]
        (PyTorch's convention; Keras's ``momentum`` is ``1 - momentum``).
    eps : float
        Added to the variance before the square root, > 0.
    affine : bool
        Whether to learn the scale ``params["gamma"]`` and the shift
        ``params["beta"]``, both of shape (features,). Without them the output
        is ``x_hat`` and the layer has no parameters.
    name : str, optional
        The layer name; the model assigns ``batchnorm_<index>`` when omitted.
    dtype : numpy dtype
        float64 or float32, for a standalone layer; a model sets its own.

    Attributes
    ----------
    buffers : dict
        ``running_mean`` and ``running_var``, shape (features,), used in
        evaluation mode and saved in checkpoints.

    Notes
    -----
    Hook stages, in order: ``forward_pre``, ``normalized`` (``x_hat``,
    replaceable), ``forward`` (the scaled and shifted output); backward:
    ``backward_pre``, ``normalized_grad`` (dL/d x_hat, replaceable),
    ``backward``, then ``gradient`` and ``update`` for gamma and beta.

    Forward in training mode, for x of shape (N, features), per feature::

        mu     = mean(x)                       over the batch
        var    = mean((x - mu)^2)              biased, used to normalise
        x_hat  = (x - mu) / sqrt(var + eps)
        output = gamma * x_hat + beta

        running_mean = (1 - momentum) running_mean + momentum mu
        running_var  = (1 - momentum) running_var  + momentum var N / (N - 1)

    The running variance takes the unbiased estimate, as PyTorch does. In
    evaluation mode ``mu`` and ``var`` are the running statistics, which are
    constants, and nothing is updated.

    Backward, with ``g = grad_output``, ``s = 1 / sqrt(var + eps)``::

        grads["gamma"] = sum over the batch of g * x_hat
        grads["beta"]  = sum over the batch of g
        grad_x_hat     = g * gamma

    In evaluation mode ``x_hat = (x - mu) s`` is affine in ``x``, so
    ``grad_input = grad_x_hat * s``. In training mode ``mu`` and ``var`` depend
    on every row too. With ``d = grad_x_hat``, the chain rule through
    ``x_hat_i = (x_i - mu) s`` gives three terms::

        dL/dx_i = d_i s + (dL/dmu) / N + (dL/dvar) 2 (x_i - mu) / N
        dL/dvar = sum_j d_j (x_j - mu) (-1/2) s^3
        dL/dmu  = -s sum_j d_j    (the var term vanishes: sum_j (x_j - mu) = 0)

    Writing ``x_j - mu = x_hat_j / s`` collapses them into the compact form::

        grad_input = s / N * (N d - sum_j d_j - x_hat * sum_j d_j x_hat_j)

    When a hook replaces ``x_hat`` at ``normalized``, the replacement is what
    the output and ``grads["gamma"]`` use; ``grad_input`` still differentiates
    the normalisation itself, through the ``x_hat`` it computed.

    References
    ----------
    Ioffe, S. & Szegedy, C. (2015). Batch normalization: accelerating deep
    network training by reducing internal covariate shift. ICML.
    """

    kind: ClassVar[str] = "batchnorm"
    stages: ClassVar[tuple[str, ...]] = (
        "forward_pre",
        "normalized",
        "forward",
        "backward_pre",
        "normalized_grad",
        "backward",
        "gradient",
        "update",
    )

    def __init__(
        self,
        num_features: int | None = None,
        momentum: float = 0.1,
        eps: float = 1e-5,
        affine: bool = True,
        name: str | None = None,
        dtype: Any = np.float64,
    ) -> None:
        super().__init__(name)
        if num_features is not None and (
            isinstance(num_features, bool)
            or not isinstance(num_features, (int, np.integer))
            or num_features < 1
        ):
            raise ConfigError(
                f"BatchNorm num_features must be a positive integer or None, "
                f"got {num_features!r}"
            )
        if not _is_number(momentum) or not 0.0 <= momentum <= 1.0:
            raise ConfigError(f"BatchNorm momentum must be in [0, 1], got {momentum!r}")
        if not _is_number(eps) or not eps > 0.0:
            raise ConfigError(f"BatchNorm eps must be a number > 0, got {eps!r}")
        self.num_features = None if num_features is None else int(num_features)
        self.momentum = float(momentum)
        self.eps = float(eps)
        self.affine = bool(affine)
        if self.num_features is not None:
            self.initialize(np.random.default_rng(0), np.dtype(dtype))

    # -- shape and initialisation -------------------------------------------

    @property
    def in_features(self) -> int | None:
        return self.num_features

    def build(self, in_features: int) -> None:
        """Take the feature count from the layer before."""
        if self.num_features is None:
            self.num_features = int(in_features)
        elif self.num_features != in_features:
            raise ConfigError(
                f"BatchNorm {self.name!r} has num_features={self.num_features}, "
                f"but its input has {in_features} features"
            )

    def initialize(self, rng: np.random.Generator, dtype: np.dtype) -> None:
        """gamma = 1, beta = 0, running mean 0 and variance 1; draws nothing."""
        self.dtype = np.dtype(dtype)
        if self.num_features is None:
            return
        width = self.num_features
        self.params = {}
        if self.affine:
            self.params["gamma"] = np.ones(width, dtype=self.dtype)
            self.params["beta"] = np.zeros(width, dtype=self.dtype)
        self.buffers = {
            "running_mean": np.zeros(width, dtype=self.dtype),
            "running_var": np.ones(width, dtype=self.dtype),
        }
        self.zero_grad()
        self.cache = None

    # -- forward and backward ------------------------------------------------

    def compute(self, x: Array) -> Array:
        if self.num_features is None:
            raise StateError(
                f"BatchNorm {self.name!r} does not know its width yet; "
                "help: pass num_features, or use it inside a Sequential"
            )
        training = self.state.training
        if training:
            mu, var = self._batch_statistics(x)
        else:
            mu, var = self.buffers["running_mean"], self.buffers["running_var"]
        inv_std = 1.0 / np.sqrt(var + self.eps)

        x_hat = (x - mu) * inv_std
        x_hat_used = x_hat
        if self.hooked:
            x_hat_used = self.hook_table.fire("normalized", x_hat)

        if self.affine:
            output = self.params["gamma"] * x_hat_used + self.params["beta"]
        else:
            output = x_hat_used.copy()

        self.keep(x_hat, x_hat_used, inv_std, training)
        return output

    def _batch_statistics(self, x: Array) -> tuple[Array, Array]:
        """Batch mean and biased variance; updates the running statistics."""
        n = x.shape[0]
        if n < 2:
            raise InputError(
                f"BatchNorm {self.name!r} needs at least 2 samples per batch in "
                f"training mode, got {n}; help: use a batch size that does not "
                "leave a last batch of one, or call model.eval() for inference"
            )
        # sums over the batch accumulate in float64 (as PyTorch does on the
        # CPU), so a float32 layer's statistics carry one rounding, not n
        mu = _batch_mean(x)
        var = _batch_mean(np.square(x - mu))

        m = self.momentum
        self.buffers["running_mean"] = (1 - m) * self.buffers["running_mean"] + m * mu
        self.buffers["running_var"] = (1 - m) * self.buffers[
            "running_var"
        ] + m * var * (n / (n - 1))
        return mu, var

    def compute_backward(self, grad_output: Array) -> Array:
        x_hat, x_hat_used, inv_std, training = self.cache  # type: ignore[misc]
        grad_x_hat: Array = grad_output
        if self.affine:
            self.grads = {
                "gamma": (grad_output * x_hat_used).sum(axis=0),
                "beta": grad_output.sum(axis=0),
            }
            grad_x_hat = grad_output * self.params["gamma"]
        if self.hooked:
            grad_x_hat = self.hook_table.fire("normalized_grad", grad_x_hat)

        if not training:
            return grad_x_hat * inv_std
        n = grad_x_hat.shape[0]
        total = _batch_sum(grad_x_hat)
        projection = _batch_sum(grad_x_hat * x_hat)
        return (inv_std / n) * (n * grad_x_hat - total - x_hat * projection)

    # -- description ------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        return {
            "num_features": self.num_features,
            "momentum": self.momentum,
            "eps": self.eps,
            "affine": self.affine,
            "name": self.name,
        }


def _batch_sum(values: Array) -> Array:
    """The sum over the batch (axis 0), accumulated in float64 and returned
    in the values' own dtype."""
    return values.sum(axis=0, dtype=np.float64).astype(values.dtype, copy=False)


def _batch_mean(values: Array) -> Array:
    """The mean over the batch, accumulated as :func:`_batch_sum` is."""
    return values.mean(axis=0, dtype=np.float64).astype(values.dtype, copy=False)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(
        value, bool
    )
