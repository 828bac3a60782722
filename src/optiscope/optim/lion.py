"""Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms", arXiv 2302.06675).

A sign method: the step is sign(beta1 m + (1 - beta1) g), so with beta1 = 0 it is sign descent
(steepest descent under l_inf) on the gradient, and in general on an interpolated momentum.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from optiscope.optim.base import EnsembleOptimizer, check_betas, check_hyperparameter
from optiscope.optim.transforms import DecoupledWeightDecay, Lion as LionUpdate


class Lion(EnsembleOptimizer):
    """Lion with decoupled weight decay; arguments and defaults as pytorch_optimizer.Lion."""

    norm = "infinity: sign of interpolated momentum"
    reference = "pytorch_optimizer.Lion"

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-4,
        betas: tuple[float, float] = (0.9, 0.99),
        weight_decay: float = 0.0,
        *,
        maximize: bool = False,
        ensemble_dims: int = 0,
    ):
        check_hyperparameter("lr", lr, 0.0)
        check_betas("betas", betas)
        check_hyperparameter("weight_decay", weight_decay, 0.0)
        defaults = dict(lr=lr, betas=tuple(betas), weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults, ensemble_dims=ensemble_dims)

    def chain(self, group: dict[str, Any]):
        return (DecoupledWeightDecay(), LionUpdate())
