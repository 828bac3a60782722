"""Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms", arXiv 2302.06675).

A sign method: the step is sign(beta1 m + (1 - beta1) g), so with beta1 = 0 it is sign descent
(steepest descent under l_inf) on the gradient, and in general on an interpolated momentum.
"""

from __future__ import annotations

from typing import Any

from optiscope.optim.base import EnsembleOptimizer, ScaleByLearningRate, chain
from optiscope.optim.hyperparameters import BETAS, KEYWORD_ONLY, LR, MAXIMIZE, WEIGHT_DECAY, declare
from optiscope.optim.transforms import Lion as LionUpdate


class Lion(EnsembleOptimizer):
    """Lion with decoupled weight decay; arguments and defaults as pytorch_optimizer.Lion."""

    norm = "infinity: sign of interpolated momentum"
    reference = "pytorch_optimizer.Lion"

    hyperparameters = declare(
        LR, BETAS, WEIGHT_DECAY, KEYWORD_ONLY, MAXIMIZE, lr=1e-4, betas=(0.9, 0.99)
    )

    def chain(self, group: dict[str, Any]):
        return chain(LionUpdate(), ScaleByLearningRate(decoupled_weight_decay="weight_decay"))
