"""Training: the Trainer, its events and callbacks, metrics, history and NaN guard."""

from annlens.training.callbacks import EVENTS, Callback, CallbackList, LambdaCallback
from annlens.training.early_stopping import EarlyStopping
from annlens.training.guard import NonFiniteGuard
from annlens.training.history import History
from annlens.training.metrics import (
    accuracy,
    get_metric,
    metric_names,
    register_metric,
)
from annlens.training.trainer import Trainer

__all__ = [
    "EVENTS",
    "Callback",
    "CallbackList",
    "EarlyStopping",
    "History",
    "LambdaCallback",
    "NonFiniteGuard",
    "Trainer",
    "accuracy",
    "get_metric",
    "metric_names",
    "register_metric",
]
