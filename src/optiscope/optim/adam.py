"""Adam and AdamW (Kingma & Ba 2015; Loshchilov & Hutter 2019).

With beta1 = beta2 = 0 and eps -> 0, Adam's step is sign descent: steepest descent under the
max-of-max (infinity) norm (Bernstein & Newhouse 2024).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from optiscope.optim.base import EnsembleOptimizer, check_betas, check_hyperparameter
from optiscope.optim.transforms import AddDecayedWeights, DecoupledWeightDecay, ScaleByAdam


class Adam(EnsembleOptimizer):
    """Adam with optional AMSGrad and L2 (coupled) weight decay, as `torch.optim.Adam`.

    Set `decoupled_weight_decay=True` for AdamW. `ensemble_dims`: leading member axes (0 or 1).
    """

    norm = "infinity (max-of-max): sign descent when betas = 0"
    reference = "torch.optim.Adam"

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        decoupled_weight_decay: bool = False,
        ensemble_dims: int = 0,
    ):
        check_hyperparameter("lr", lr, 0.0)
        check_betas("betas", betas)
        check_hyperparameter("eps", eps, 0.0)
        check_hyperparameter("weight_decay", weight_decay, 0.0)
        defaults = dict(
            lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
            maximize=maximize, decoupled_weight_decay=decoupled_weight_decay,
        )
        super().__init__(params, defaults, ensemble_dims=ensemble_dims)

    def chain(self, group: dict[str, Any]):
        decay = DecoupledWeightDecay() if group["decoupled_weight_decay"] else AddDecayedWeights()
        return (decay, ScaleByAdam())


class AdamW(Adam):
    """Adam with decoupled weight decay (default 1e-2), as `torch.optim.AdamW`."""

    reference = "torch.optim.AdamW"

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        ensemble_dims: int = 0,
    ):
        super().__init__(
            params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize,
            decoupled_weight_decay=True, ensemble_dims=ensemble_dims,
        )
