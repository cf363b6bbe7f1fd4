"""The PyTorch half of a side-by-side training step, written with torch's own parts.

:class:`TorchSteps` trains a twin the way the annlens Trainer trains its
model (see the Notes of :class:`~annlens.training.Trainer`): forward, the data
loss plus the penalties, backward, clipping by value and then by norm, the
``torch.optim`` update, the constraints. The optimizer is the ``torch.optim``
class of the same rule, with one parameter group per distinct set of
hyperparameters, so that annlens's optimizer groups (``{"*.b":
{"weight_decay": 0}}``) hold in torch too.

What has no torch twin (an optimizer, a penalty or a constraint of a kind
not listed here) raises NotImplementedError naming it and the kinds that do.
"""

from __future__ import annotations

import fnmatch
import inspect
from collections.abc import Callable, Sequence
from typing import Any

from annlens.analysis.compare.twin import Twin, require_torch

# annlens optimizer class name -> torch.optim class name (same rule, same keys).
TORCH_OPTIMIZERS: dict[str, str] = {
    "SGD": "SGD",
    "Adam": "Adam",
    "AdamW": "AdamW",
    "NAdam": "NAdam",
    "Adamax": "Adamax",
    "Adagrad": "Adagrad",
    "RMSProp": "RMSprop",
    "Adadelta": "Adadelta",
}
PENALTIES = ("L1Penalty", "L2Penalty")
CONSTRAINTS = ("MaxNorm", "NonNegative")


def group_hyperparameters(optimizer: Any, qualified: str) -> dict[str, Any]:
    """The hyperparameters of one parameter, groups applied, before any schedule."""
    hyper = dict(optimizer.base)
    for pattern, values in optimizer.groups.items():
        if fnmatch.fnmatchcase(qualified, pattern):
            hyper.update(values)
    return hyper


def torch_optimizer(optimizer: Any, twin: Twin) -> Any:
    """The ``torch.optim`` optimizer with the same rule and hyperparameters.

    Parameters sharing the same hyperparameters form one torch parameter
    group, in the order of ``twin.pairs``.
    """
    torch = require_torch()
    name = type(optimizer).__name__
    if name not in TORCH_OPTIMIZERS:
        raise NotImplementedError(
            f"optimizer {name} has no torch.optim twin; twins exist for "
            f"{', '.join(TORCH_OPTIMIZERS)}"
        )
    torch_cls = getattr(torch.optim, TORCH_OPTIMIZERS[name])
    accepted = inspect.signature(torch_cls).parameters
    groups: dict[tuple[tuple[str, Any], ...], list[Any]] = {}
    for pair in twin.pairs:
        if pair.buffer:
            continue
        hyper = group_hyperparameters(optimizer, pair.name)
        missing = [key for key in hyper if key not in accepted]
        if missing:
            raise NotImplementedError(
                f"torch.optim.{torch_cls.__name__} has no hyperparameter "
                f"{missing}, which annlens {name} uses for {pair.name}"
            )
        groups.setdefault(tuple(sorted(hyper.items())), []).append(pair.tensor)
    # the base values go to the constructor too: some torch optimizers read
    # their initial state from it rather than from the groups (Adagrad's
    # initial_accumulator_value)
    return torch_cls(
        [{"params": params, **dict(key)} for key, params in groups.items()],
        **optimizer.base,
    )


def _unsupported(kind: str, thing: Any, known: Sequence[str]) -> NotImplementedError:
    return NotImplementedError(
        f"{kind} {type(thing).__name__} has no PyTorch twin in annlens.compare; "
        f"twins exist for {', '.join(known)}"
    )


class TorchSteps:
    """Trains a twin step by step as the annlens Trainer trains its model.

    Parameters
    ----------
    twin : Twin
        The twin, built from the annlens model being trained.
    loss : callable
        ``(output tensor, target array) -> loss tensor``
        (:func:`~annlens.analysis.compare.twin.loss_twin`).
    optimizer : Optimizer
        The annlens optimizer; torch gets the same rule and hyperparameters.
    penalties : sequence of L1Penalty or L2Penalty
        Added to the loss on the parameters their patterns choose.
    clip_value, clip_norm : float, optional
        Gradient clipping, by value first, then by the global norm.
    constraints : sequence of MaxNorm or NonNegative
        Applied after each update.

    Notes
    -----
    Penalties are torch expressions that autograd differentiates (the
    L2 penalty ``lambda / 2 * sum(W**2)``, the L1 penalty ``lambda *
    sum(|W|)``), and clipping by value is
    ``torch.nn.utils.clip_grad_value_``. Clipping by norm and the max-norm
    constraint are written out here with torch tensors instead of calling
    ``clip_grad_norm_`` and ``torch.renorm``, because those add a small
    constant (1e-6, 1e-7) to the norm they divide by and annlens does not:
    in float64 that constant alone would be a difference of 1e-6 relative.
    The learning rate of each step is set from the annlens optimizer's
    ``lr_scale`` at that step, so that a schedule acts on both the same way;
    the schedule's own arithmetic is therefore not compared.
    """

    def __init__(
        self,
        twin: Twin,
        loss: Callable[[Any, Any], Any],
        optimizer: Any,
        penalties: Sequence[Any] = (),
        clip_value: float | None = None,
        clip_norm: float | None = None,
        constraints: Sequence[Any] = (),
    ) -> None:
        self.twin = twin
        self.loss = loss
        self.optimizer = torch_optimizer(optimizer, twin)
        self.base_lr = [group["lr"] for group in self.optimizer.param_groups]
        tensors = {pair.name: pair for pair in twin.pairs}
        model = twin.model
        self.penalties = []
        for penalty in penalties:
            if type(penalty).__name__ not in PENALTIES:
                raise _unsupported("penalty", penalty, PENALTIES)
            chosen = [tensors[q] for q, _, _ in penalty.chosen(model)]
            self.penalties.append((penalty, chosen))
        self.constraints = []
        for constraint in constraints:
            if type(constraint).__name__ not in CONSTRAINTS:
                raise _unsupported("constraint", constraint, CONSTRAINTS)
            chosen = [tensors[q] for q, _, _ in constraint.chosen(model)]
            self.constraints.append((constraint, chosen))
        self.clip_value = clip_value
        self.clip_norm = clip_norm

    def step(self, x: Any, y: Any, lr_scale: float) -> float:
        """One training step on ``(x, y)``; returns the data loss before it."""
        twin = self.twin
        with twin.default_dtype():
            self.optimizer.zero_grad()
            value = self.loss(twin.module(twin.tensor(x)), y)
            total = value
            for penalty, chosen in self.penalties:
                total = total + self._penalty(penalty, chosen)
            total.backward()
            self._clip()
            for group, lr in zip(
                self.optimizer.param_groups, self.base_lr, strict=True
            ):
                group["lr"] = lr * lr_scale
            self.optimizer.step()
            self._constrain()
        return float(value.item())

    @staticmethod
    def _penalty(penalty: Any, chosen: list[Any]) -> Any:
        if type(penalty).__name__ == "L2Penalty":
            terms = [pair.tensor.square().sum() for pair in chosen]
            return 0.5 * penalty.strength * sum(terms)
        return penalty.strength * sum(pair.tensor.abs().sum() for pair in chosen)

    def _clip(self) -> None:
        torch = require_torch()
        grads = [p.grad for p in self.twin.parameters() if p.grad is not None]
        if self.clip_value is not None:
            torch.nn.utils.clip_grad_value_(self.twin.parameters(), self.clip_value)
        if self.clip_norm is not None:
            squares = [g.to(torch.float64).square().sum() for g in grads]
            norm = float(torch.stack(squares).sum().sqrt())
            if norm > self.clip_norm:
                for grad in grads:
                    grad.mul_(self.clip_norm / norm)

    def _constrain(self) -> None:
        torch = require_torch()
        with torch.no_grad():
            for constraint, chosen in self.constraints:
                for pair in chosen:
                    tensor = pair.tensor
                    if type(constraint).__name__ == "NonNegative":
                        tensor.clamp_(min=0)
                        continue
                    axis = constraint.axis % tensor.ndim
                    if pair.transpose:
                        axis = tensor.ndim - 1 - axis
                    norms = tensor.square().sum(dim=axis, keepdim=True).sqrt()
                    over = norms > constraint.max_value
                    safe = torch.where(over, norms, torch.ones_like(norms))
                    factor = torch.where(
                        over, constraint.max_value / safe, torch.ones_like(norms)
                    )
                    tensor.mul_(factor)

    def __repr__(self) -> str:
        return (
            f"TorchSteps({type(self.optimizer).__name__}, "
            f"{len(self.penalties)} penalties, clip_value={self.clip_value}, "
            f"clip_norm={self.clip_norm}, {len(self.constraints)} constraints)"
        )
