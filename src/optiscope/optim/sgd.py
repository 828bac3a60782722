"""Stochastic gradient descent: the Euclidean steepest descent, with momentum and Nesterov."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from optiscope.optim.base import EnsembleOptimizer, ScaleByLearningRate, chain
from optiscope.optim.hyperparameters import (
    KEYWORD_ONLY,
    LR,
    MAXIMIZE,
    NESTEROV,
    TORCH_MOMENTUM,
    WEIGHT_DECAY,
    Hyperparameter,
    HyperparameterError,
    all_positive,
    declare,
    is_zero,
)
from optiscope.optim.transforms import AddDecayedWeights, Momentum


class SGD(EnsembleOptimizer):
    """SGD with momentum, dampening, Nesterov and L2 weight decay, as `torch.optim.SGD`.

    Arguments and defaults are torch.optim.SGD's. `ensemble_dims`: leading member axes (0 or 1).
    """

    norm = "euclidean (l2); with momentum, averaged"
    reference = "torch.optim.SGD"

    hyperparameters = declare(
        LR, TORCH_MOMENTUM, Hyperparameter("dampening", float, 0.0), WEIGHT_DECAY, NESTEROV,
        KEYWORD_ONLY, MAXIMIZE,
    )

    def configure(self, params: Iterable[Any], given: dict[str, Any], ensemble_dims: int) -> None:
        momentum, dampening = given["momentum"], given["dampening"]
        if given["nesterov"] and (not all_positive(momentum) or not is_zero(dampening)):
            raise HyperparameterError("nesterov requires momentum > 0 and dampening = 0")
        super().configure(params, given, ensemble_dims)

    def chain(self, group: dict[str, Any]):
        return chain(AddDecayedWeights(), Momentum(), ScaleByLearningRate())
