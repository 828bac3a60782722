"""Diagonal adaptive methods beyond Adam: NAdam, Adagrad, RMSprop (torch.optim's arguments)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from optiscope.optim.base import EnsembleOptimizer, ScaleByLearningRate, chain
from optiscope.optim.hyperparameters import (
    ADAM_FAMILY,
    DECOUPLED_WEIGHT_DECAY,
    EPS,
    KEYWORD_ONLY,
    LR,
    MAXIMIZE,
    TORCH_MOMENTUM,
    WEIGHT_DECAY,
    Hyperparameter,
    NonNegative,
    declare,
)
from optiscope.optim.transforms import (
    AddDecayedWeights,
    ScaleByAdagrad,
    ScaleByNAdam,
    ScaleByRMSprop,
    decayed_chain,
)


class NAdam(EnsembleOptimizer):
    """Adam with Nesterov momentum (Dozat 2016), as `torch.optim.NAdam`."""

    norm = "infinity (max-of-max) with averaging, like Adam"
    reference = "torch.optim.NAdam"

    hyperparameters = declare(
        ADAM_FAMILY, Hyperparameter("momentum_decay", NonNegative, 4e-3),
        DECOUPLED_WEIGHT_DECAY, KEYWORD_ONLY, MAXIMIZE, lr=2e-3,
    )

    def chain(self, group: dict[str, Any]):
        return decayed_chain(ScaleByNAdam(), group["decoupled_weight_decay"])


class Adagrad(EnsembleOptimizer):
    """Adagrad (Duchi, Hazan & Singer 2011), as `torch.optim.Adagrad` (dense gradients)."""

    norm = "diagonal adaptive (accumulated l2 per coordinate)"
    reference = "torch.optim.Adagrad"

    hyperparameters = declare(
        LR, Hyperparameter("lr_decay", NonNegative, 0.0), WEIGHT_DECAY,
        Hyperparameter("initial_accumulator_value", NonNegative, 0.0), EPS,
        KEYWORD_ONLY, MAXIMIZE, lr=1e-2, eps=1e-10,
    )

    def chain(self, group: dict[str, Any]):
        return chain(AddDecayedWeights(), ScaleByAdagrad(), ScaleByLearningRate())


class RMSprop(EnsembleOptimizer):
    """RMSprop (Tieleman & Hinton 2012), as `torch.optim.RMSprop` (centered, momentum)."""

    norm = "diagonal adaptive (EMA of squared gradients)"
    reference = "torch.optim.RMSprop"

    hyperparameters = declare(
        LR, Hyperparameter("alpha", Annotated[float, Field(ge=0.0, le=1.0)], 0.99), EPS,
        WEIGHT_DECAY, TORCH_MOMENTUM, Hyperparameter("centered", bool, False),
        KEYWORD_ONLY, MAXIMIZE, lr=1e-2,
    )

    def chain(self, group: dict[str, Any]):
        return chain(AddDecayedWeights(), ScaleByRMSprop(), ScaleByLearningRate())
