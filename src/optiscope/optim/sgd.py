"""Stochastic gradient descent: the Euclidean steepest descent, with momentum and Nesterov."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from optiscope.optim.base import EnsembleOptimizer, ScaleByLearningRate, chain
from optiscope.optim.hyperparameters import HyperparameterError, NonNegative, checked
from optiscope.optim.transforms import AddDecayedWeights, Momentum


class SGD(EnsembleOptimizer):
    """SGD with momentum, dampening, Nesterov and L2 weight decay, as `torch.optim.SGD`.

    Arguments and defaults are torch.optim.SGD's. `ensemble_dims`: leading member axes (0 or 1).
    """

    norm = "euclidean (l2); with momentum, averaged"
    reference = "torch.optim.SGD"

    def __init__(
        self,
        params: Iterable[Any],
        lr: NonNegative = 1e-3,
        momentum: NonNegative = 0.0,
        dampening: float = 0.0,
        weight_decay: NonNegative = 0.0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        ensemble_dims: int = 0,
    ):
        if nesterov and (not isinstance(momentum, (int, float)) or momentum <= 0 or dampening != 0):
            raise HyperparameterError("nesterov requires momentum > 0 and dampening = 0")
        super().__init__(params, checked(SGD.__init__, locals()), ensemble_dims=ensemble_dims)

    def chain(self, group: dict[str, Any]):
        return chain(AddDecayedWeights(), Momentum(), ScaleByLearningRate())
