"""Shampoo (Gupta, Koren & Singer 2018): Kronecker-factored preconditioning per tensor.

For each tensor (as a matrix G, see optiscope.optim.norms.as_matrix):
L <- L + G G^T, R <- R + G^T G, step L^(-1/4) G R^(-1/4). With `accumulate=False` the
factors are the current G G^T and G^T G only, and the step is exactly U V^T: spectral descent
(Bernstein & Newhouse 2024). Inverse roots come from an eigendecomposition, batched over
ensemble members.

Preconditioner decay `beta2` < 1 makes the factors exponential moving averages,
L <- beta2 L + (1 - beta2) G G^T (and R alike), as Distributed Shampoo's `betas[1]` (Shi et al.
2023, facebookresearch/optimizers) and pytorch-optimizer's ScalableShampoo; the roots are taken of
the bias-corrected factors L / (1 - beta2^t), as Distributed Shampoo's default
`use_bias_correction=True` (pytorch-optimizer's has no correction: its factors differ by that
scalar). beta2 = 1 (the default) is the accumulation above, bit for bit: the statistics of a
non-stationary problem (a continual task) then never forget, and the steps shrink as they grow.
"""

from __future__ import annotations

from typing import Annotated, Any, Iterable

import torch
from pydantic import Field
from torch import Tensor

from optiscope.optim.base import (
    EnsembleOptimizer,
    HyperparameterError,
    ScaleByLearningRate,
    StepContext,
    Transform,
    chain,
)
from optiscope.optim.hyperparameters import (
    EPS,
    LR,
    MOMENTUM,
    WEIGHT_DECAY,
    Count,
    Hyperparameter,
    declare,
)
from optiscope.optim.norms import as_matrix
from optiscope.optim.transforms import AddDecayedWeights, Momentum

#: Decay of the Kronecker statistics, in [0, 1]: 1 accumulates (Shampoo as published, and as
#: optiscope's Shampoo was before it had this setting: `added_later`, so a cell at 1 keeps its id).
BETA2 = Hyperparameter("beta2", Annotated[float, Field(ge=0.0, le=1.0)], 1.0, added_later=True)


def inverse_root(m: Tensor, p: int, eps: float | Tensor) -> Tensor:
    """(M + eps I)^(-1/p) of symmetric PSD matrices (..., n, n) by eigendecomposition.

    Eigenvalues are clamped at 0 (rounding makes them slightly negative) and those that are
    numerically zero (below n * machine-eps * largest) get 0, so eps = 0 gives the
    pseudo-inverse root: that is what makes Shampoo without accumulation equal U V^T exactly
    for rank-deficient (rectangular) gradients. A tensor `eps` holds one value per leading
    (member) index of `m`.
    """
    lam, q = _eigh(m)
    if isinstance(eps, Tensor):
        eps = eps.to(device=lam.device, dtype=lam.dtype).reshape(*m.shape[:-2], 1)
    lam = lam.clamp(min=0) + eps
    tol = lam.amax(dim=-1, keepdim=True) * m.shape[-1] * torch.finfo(m.dtype).eps
    inv = torch.where(lam > tol, lam.clamp(min=torch.finfo(lam.dtype).tiny) ** (-1.0 / p), 0.0)
    return ((q * inv.unsqueeze(-2)) @ q.mT).to(m.dtype)


def _eigh(m: Tensor) -> tuple[Tensor, Tensor]:
    """eigh in float64 (returned in float64; float32's fails to converge on the many repeated zero eigenvalues of
    Gram matrices of sparse gradients, such as an embedding's); if even that fails, retry with a
    jitter of 1e-12 of the mean diagonal (below float32 resolution of the result)."""
    wide = m.double() if m.device.type != "mps" else m
    try:
        lam, q = torch.linalg.eigh(wide)
    except torch.linalg.LinAlgError:
        scale = torch.diagonal(wide, dim1=-2, dim2=-1).mean(dim=-1).clamp(min=1e-30)
        eye = torch.eye(m.shape[-1], dtype=wide.dtype, device=m.device)
        lam, q = torch.linalg.eigh(wide + 1e-12 * scale[..., None, None] * eye)
    return lam, q


class ScaleByShampoo(Transform):
    """u <- L^(-1/4) u R^(-1/4) with L, R the accumulated (or, beta2 < 1, exponentially averaged
    and bias-corrected) Gram matrices of u."""

    def init(self, p: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        m = as_matrix(p, group["ensemble_dims"])
        lead, (rows, cols) = m.shape[:-2], m.shape[-2:]
        state["left"] = torch.zeros(*lead, rows, rows, dtype=p.dtype, device=p.device)
        state["right"] = torch.zeros(*lead, cols, cols, dtype=p.dtype, device=p.device)

    def update(self, u: Tensor, p: Tensor, state: dict, group: dict, ctx: StepContext) -> Tensor:
        g = as_matrix(u, ctx.ensemble_dims)
        gg_t, gt_g = g @ g.mT, g.mT @ g
        step = int(state["step"])
        beta2 = group["beta2"]
        accumulating = not isinstance(beta2, Tensor) and beta2 == 1.0
        if not group["accumulate"]:
            state["left"].copy_(gg_t)
            state["right"].copy_(gt_g)
        elif accumulating:
            state["left"].add_(gg_t)
            state["right"].add_(gt_g)
        else:
            decay = ctx.hyper(group, "beta2", gg_t)
            wide = ctx.raw(group, "beta2", gg_t)  # float64: 1 - beta2^t keeps its digits
            # A member at beta2 = 1 accumulates (weight 1, no correction), as Distributed Shampoo.
            weight = ctx.member(_where_one(wide, 1.0, 1.0 - wide), gg_t)
            state["left"].mul_(decay).add_(gg_t * weight)
            state["right"].mul_(decay).add_(gt_g * weight)
        if "left_root" not in state or (step - 1) % group["update_freq"] == 0:
            left, right = state["left"], state["right"]
            if group["accumulate"] and not accumulating:
                correction = ctx.member(_where_one(wide, 1.0, 1.0 - wide**step), gg_t)
                left, right = left / correction, right / correction
            state["left_root"] = inverse_root(left, 4, group["eps"])
            state["right_root"] = inverse_root(right, 4, group["eps"])
        return (state["left_root"] @ g @ state["right_root"]).reshape(u.shape)


def _where_one(beta2: Any, at_one: float, other: Any) -> Any:
    """`at_one` where beta2 == 1 (accumulation), else `other` (a number or per-member tensor)."""
    if isinstance(beta2, Tensor):
        return torch.where(beta2 == 1.0, torch.full_like(beta2, at_one), other)
    return at_one if beta2 == 1.0 else other


class Shampoo(EnsembleOptimizer):
    """Shampoo with optional accumulation, preconditioner decay, epsilon and update frequency.

    `accumulate`: sum the Gram matrices over steps (True, Shampoo) or use the current ones only
    (False: spectral descent). `beta2`: decay of the statistics (with accumulate=True): 1 sums
    them (the default), below 1 averages them exponentially, bias-corrected (Distributed
    Shampoo's betas[1]). `eps`: added to the factors' eigenvalues (0: pseudo-inverse).
    `update_freq`: recompute the inverse roots every k steps. Heavy-ball `momentum` is applied
    to the gradient before preconditioning.
    """

    norm = "spectral (accumulate=False gives U V^T exactly)"
    reference = "dense closed form L^(-1/4) G R^(-1/4); SpectralDescent"

    hyperparameters = declare(
        LR, MOMENTUM, Hyperparameter("accumulate", bool, True), EPS,
        Hyperparameter("update_freq", Count, 1), WEIGHT_DECAY, BETA2, lr=1e-2, eps=1e-6,
    )
    fixed = {"dampening": 0.0, "nesterov": False}  # the heavy ball of torch.optim.SGD

    def configure(self, params: Iterable[Any], given: dict[str, Any], ensemble_dims: int) -> None:
        beta2 = given.get("beta2", 1.0)
        decays = bool((beta2 != 1.0).any()) if isinstance(beta2, Tensor) else beta2 != 1.0
        if decays and not given.get("accumulate", True):
            raise HyperparameterError(
                "beta2: a preconditioner decay below 1 needs accumulate=True "
                "(accumulate=False uses the current statistics only)"
            )
        super().configure(params, given, ensemble_dims)

    def chain(self, group: dict[str, Any]):
        return chain(AddDecayedWeights(), Momentum(), ScaleByShampoo(), ScaleByLearningRate())
