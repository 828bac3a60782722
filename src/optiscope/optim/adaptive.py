"""Diagonal adaptive methods beyond Adam: NAdam, Adagrad, RMSprop (torch.optim's arguments)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any

from pydantic import Field

from optiscope.optim.base import EnsembleOptimizer, ScaleByLearningRate, chain
from optiscope.optim.hyperparameters import Betas, NonNegative, checked
from optiscope.optim.transforms import (
    AddDecayedWeights,
    ScaleByAdagrad,
    ScaleByNAdam,
    ScaleByRMSprop,
)


class NAdam(EnsembleOptimizer):
    """Adam with Nesterov momentum (Dozat 2016), as `torch.optim.NAdam`."""

    norm = "infinity (max-of-max) with averaging, like Adam"
    reference = "torch.optim.NAdam"

    def __init__(
        self,
        params: Iterable[Any],
        lr: NonNegative = 2e-3,
        betas: Betas = (0.9, 0.999),
        eps: NonNegative = 1e-8,
        weight_decay: NonNegative = 0.0,
        momentum_decay: NonNegative = 4e-3,
        decoupled_weight_decay: bool = False,
        *,
        maximize: bool = False,
        ensemble_dims: int = 0,
    ):
        super().__init__(params, checked(NAdam.__init__, locals()), ensemble_dims=ensemble_dims)

    def chain(self, group: dict[str, Any]):
        if group["decoupled_weight_decay"]:
            return chain(ScaleByNAdam(), ScaleByLearningRate(decoupled_weight_decay="weight_decay"))
        return chain(AddDecayedWeights(), ScaleByNAdam(), ScaleByLearningRate())


class Adagrad(EnsembleOptimizer):
    """Adagrad (Duchi, Hazan & Singer 2011), as `torch.optim.Adagrad` (dense gradients)."""

    norm = "diagonal adaptive (accumulated l2 per coordinate)"
    reference = "torch.optim.Adagrad"

    def __init__(
        self,
        params: Iterable[Any],
        lr: NonNegative = 1e-2,
        lr_decay: NonNegative = 0.0,
        weight_decay: NonNegative = 0.0,
        initial_accumulator_value: NonNegative = 0.0,
        eps: NonNegative = 1e-10,
        *,
        maximize: bool = False,
        ensemble_dims: int = 0,
    ):
        super().__init__(params, checked(Adagrad.__init__, locals()), ensemble_dims=ensemble_dims)

    def chain(self, group: dict[str, Any]):
        return chain(AddDecayedWeights(), ScaleByAdagrad(), ScaleByLearningRate())


class RMSprop(EnsembleOptimizer):
    """RMSprop (Tieleman & Hinton 2012), as `torch.optim.RMSprop` (centered, momentum)."""

    norm = "diagonal adaptive (EMA of squared gradients)"
    reference = "torch.optim.RMSprop"

    def __init__(
        self,
        params: Iterable[Any],
        lr: NonNegative = 1e-2,
        alpha: Annotated[float, Field(ge=0.0, le=1.0)] = 0.99,
        eps: NonNegative = 1e-8,
        weight_decay: NonNegative = 0.0,
        momentum: NonNegative = 0.0,
        centered: bool = False,
        *,
        maximize: bool = False,
        ensemble_dims: int = 0,
    ):
        super().__init__(params, checked(RMSprop.__init__, locals()), ensemble_dims=ensemble_dims)

    def chain(self, group: dict[str, Any]):
        return chain(AddDecayedWeights(), ScaleByRMSprop(), ScaleByLearningRate())
