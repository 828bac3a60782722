"""Stochastic gradient descent: the Euclidean steepest descent, with momentum and Nesterov."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from optiscope.optim.base import EnsembleOptimizer, HyperparameterError, check_hyperparameter
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
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        ensemble_dims: int = 0,
    ):
        check_hyperparameter("lr", lr, 0.0)
        check_hyperparameter("momentum", momentum, 0.0)
        check_hyperparameter("dampening", dampening)
        check_hyperparameter("weight_decay", weight_decay, 0.0)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise HyperparameterError("nesterov requires momentum > 0 and dampening = 0")
        defaults = dict(
            lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
            nesterov=nesterov, maximize=maximize,
        )
        super().__init__(params, defaults, ensemble_dims=ensemble_dims)

    def chain(self, group: dict[str, Any]):
        return (AddDecayedWeights(), Momentum())
