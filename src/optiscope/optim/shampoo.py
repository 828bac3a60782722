"""Shampoo (Gupta, Koren & Singer 2018): Kronecker-factored preconditioning per tensor.

For each tensor (as a matrix G, see optiscope.optim.norms.as_matrix):
L <- L + G G^T, R <- R + G^T G, step L^(-1/4) G R^(-1/4). With `accumulate=False` the
factors are the current G G^T and G^T G only, and the step is exactly U V^T: spectral descent
(Bernstein & Newhouse 2024). Inverse roots come from an eigendecomposition, batched over
ensemble members.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from optiscope.optim.base import (
    EnsembleOptimizer,
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
    """u <- L^(-1/4) u R^(-1/4) with L, R the (accumulated) Gram matrices of u."""

    def init(self, p: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        m = as_matrix(p, group["ensemble_dims"])
        lead, (rows, cols) = m.shape[:-2], m.shape[-2:]
        state["left"] = torch.zeros(*lead, rows, rows, dtype=p.dtype, device=p.device)
        state["right"] = torch.zeros(*lead, cols, cols, dtype=p.dtype, device=p.device)

    def update(self, u: Tensor, p: Tensor, state: dict, group: dict, ctx: StepContext) -> Tensor:
        g = as_matrix(u, ctx.ensemble_dims)
        gg_t, gt_g = g @ g.mT, g.mT @ g
        if group["accumulate"]:
            state["left"].add_(gg_t)
            state["right"].add_(gt_g)
        else:
            state["left"].copy_(gg_t)
            state["right"].copy_(gt_g)
        step = int(state["step"])
        if "left_root" not in state or (step - 1) % group["update_freq"] == 0:
            state["left_root"] = inverse_root(state["left"], 4, group["eps"])
            state["right_root"] = inverse_root(state["right"], 4, group["eps"])
        return (state["left_root"] @ g @ state["right_root"]).reshape(u.shape)


class Shampoo(EnsembleOptimizer):
    """Shampoo with optional accumulation, epsilon and preconditioner update frequency.

    `accumulate`: sum the Gram matrices over steps (True, Shampoo) or use the current ones only
    (False: spectral descent). `eps`: added to the factors' eigenvalues (0: pseudo-inverse).
    `update_freq`: recompute the inverse roots every k steps. Heavy-ball `momentum` is applied
    to the gradient before preconditioning.
    """

    norm = "spectral (accumulate=False gives U V^T exactly)"
    reference = "dense closed form L^(-1/4) G R^(-1/4); SpectralDescent"

    hyperparameters = declare(
        LR, MOMENTUM, Hyperparameter("accumulate", bool, True), EPS,
        Hyperparameter("update_freq", Count, 1), WEIGHT_DECAY, lr=1e-2, eps=1e-6,
    )
    fixed = {"dampening": 0.0, "nesterov": False}  # the heavy ball of torch.optim.SGD

    def chain(self, group: dict[str, Any]):
        return chain(AddDecayedWeights(), Momentum(), ScaleByShampoo(), ScaleByLearningRate())
