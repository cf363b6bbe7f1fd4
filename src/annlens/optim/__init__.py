"""Optimizers, learning-rate schedules, regularisers and constraints.

One training step uses them in this order: the loss plus each penalty's
``value(model)``; backward; each penalty's ``add_gradients(model)``; gradient
clipping; ``optimizer.step()``; each constraint's ``apply(model)``. A schedule
sets ``optimizer.lr_scale`` each time its ``step()`` is called, once per
``schedule.unit`` (epoch or batch).
"""

from annlens.optim.adam import Adam, Adamax, AdamW, NAdam
from annlens.optim.adaptive import Adadelta, Adagrad, RMSProp
from annlens.optim.base import Optimizer
from annlens.optim.clipping import clip_grad_norm, clip_grad_value, grad_norm
from annlens.optim.constraints import Constraint, MaxNorm, NonNegative
from annlens.optim.one_cycle import OneCycle
from annlens.optim.plateau import ReduceOnPlateau
from annlens.optim.registry import (
    get_optimizer,
    get_schedule,
    optimizer_class,
    optimizer_names,
    register_optimizer,
    register_schedule,
    schedule_class,
    schedule_names,
)
from annlens.optim.regularizers import (
    CustomPenalty,
    L1Penalty,
    L2Penalty,
    Penalty,
    finite_difference,
)
from annlens.optim.schedules import (
    Constant,
    CosineAnnealing,
    CosineWarmRestarts,
    ExponentialDecay,
    MultiStepDecay,
    Schedule,
    StepDecay,
)
from annlens.optim.sgd import SGD
from annlens.optim.warmup import LinearWarmup

__all__ = [
    "SGD",
    "Adadelta",
    "Adagrad",
    "Adam",
    "AdamW",
    "Adamax",
    "Constant",
    "Constraint",
    "CosineAnnealing",
    "CosineWarmRestarts",
    "CustomPenalty",
    "ExponentialDecay",
    "L1Penalty",
    "L2Penalty",
    "LinearWarmup",
    "MaxNorm",
    "MultiStepDecay",
    "NAdam",
    "NonNegative",
    "OneCycle",
    "Optimizer",
    "Penalty",
    "RMSProp",
    "ReduceOnPlateau",
    "Schedule",
    "StepDecay",
    "clip_grad_norm",
    "clip_grad_value",
    "finite_difference",
    "get_optimizer",
    "get_schedule",
    "grad_norm",
    "optimizer_class",
    "optimizer_names",
    "register_optimizer",
    "register_schedule",
    "schedule_class",
    "schedule_names",
]
