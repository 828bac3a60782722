"""Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms", arXiv 2302.06675).

A sign method: the step is sign(beta1 m + (1 - beta1) g), so with beta1 = 0 it is sign descent
(steepest descent under l_inf) on the gradient, and in general on an interpolated momentum.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from optiscope.optim.base import EnsembleOptimizer, ScaleByLearningRate, chain
from optiscope.optim.hyperparameters import Betas, NonNegative, checked
from optiscope.optim.transforms import Lion as LionUpdate


class Lion(EnsembleOptimizer):
    """Lion with decoupled weight decay; arguments and defaults as pytorch_optimizer.Lion."""

    norm = "infinity: sign of interpolated momentum"
    reference = "pytorch_optimizer.Lion"

    def __init__(
        self,
        params: Iterable[Any],
        lr: NonNegative = 1e-4,
        betas: Betas = (0.9, 0.99),
        weight_decay: NonNegative = 0.0,
        *,
        maximize: bool = False,
        ensemble_dims: int = 0,
    ):
        super().__init__(params, checked(Lion.__init__, locals()), ensemble_dims=ensemble_dims)

    def chain(self, group: dict[str, Any]):
        return chain(LionUpdate(), ScaleByLearningRate(decoupled_weight_decay="weight_decay"))
