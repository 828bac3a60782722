"""Diagonal adaptive methods beyond Adam: NAdam, Adagrad, RMSprop (torch.optim's arguments)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from optiscope.optim.base import EnsembleOptimizer, check_betas, check_hyperparameter
from optiscope.optim.transforms import (
    AddDecayedWeights,
    DecoupledWeightDecay,
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
        lr: float = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum_decay: float = 4e-3,
        decoupled_weight_decay: bool = False,
        *,
        maximize: bool = False,
        ensemble_dims: int = 0,
    ):
        check_hyperparameter("lr", lr, 0.0)
        check_betas("betas", betas)
        check_hyperparameter("eps", eps, 0.0)
        check_hyperparameter("weight_decay", weight_decay, 0.0)
        check_hyperparameter("momentum_decay", momentum_decay, 0.0)
        defaults = dict(
            lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
            momentum_decay=momentum_decay, decoupled_weight_decay=decoupled_weight_decay,
            maximize=maximize,
        )
        super().__init__(params, defaults, ensemble_dims=ensemble_dims)

    def chain(self, group: dict[str, Any]):
        decay = DecoupledWeightDecay() if group["decoupled_weight_decay"] else AddDecayedWeights()
        return (decay, ScaleByNAdam())


class Adagrad(EnsembleOptimizer):
    """Adagrad (Duchi, Hazan & Singer 2011), as `torch.optim.Adagrad` (dense gradients)."""

    norm = "diagonal adaptive (accumulated l2 per coordinate)"
    reference = "torch.optim.Adagrad"

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
        *,
        maximize: bool = False,
        ensemble_dims: int = 0,
    ):
        check_hyperparameter("lr", lr, 0.0)
        check_hyperparameter("lr_decay", lr_decay, 0.0)
        check_hyperparameter("weight_decay", weight_decay, 0.0)
        check_hyperparameter("initial_accumulator_value", initial_accumulator_value, 0.0)
        check_hyperparameter("eps", eps, 0.0)
        defaults = dict(
            lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
            initial_accumulator_value=initial_accumulator_value, eps=eps, maximize=maximize,
        )
        super().__init__(params, defaults, ensemble_dims=ensemble_dims)

    def chain(self, group: dict[str, Any]):
        return (AddDecayedWeights(), ScaleByAdagrad())


class RMSprop(EnsembleOptimizer):
    """RMSprop (Tieleman & Hinton 2012), as `torch.optim.RMSprop` (centered, momentum)."""

    norm = "diagonal adaptive (EMA of squared gradients)"
    reference = "torch.optim.RMSprop"

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
        *,
        maximize: bool = False,
        ensemble_dims: int = 0,
    ):
        check_hyperparameter("lr", lr, 0.0)
        check_hyperparameter("alpha", alpha, 0.0, 1.0)
        check_hyperparameter("eps", eps, 0.0)
        check_hyperparameter("weight_decay", weight_decay, 0.0)
        check_hyperparameter("momentum", momentum, 0.0)
        defaults = dict(
            lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
            centered=centered, maximize=maximize,
        )
        super().__init__(params, defaults, ensemble_dims=ensemble_dims)

    def chain(self, group: dict[str, Any]):
        return (AddDecayedWeights(), ScaleByRMSprop())
