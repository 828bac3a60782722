"""Muon (Jordan et al. 2024, KellerJordan/Muon): orthogonalised momentum for hidden matrices.

For each hidden matrix: B <- lerp(B, G, 1 - beta); U = lerp(G, B, beta) (Nesterov) or B;
O = NS5(U) * sqrt(max(1, rows / cols)); W <- W (1 - lr wd) - lr O. NS5 is five Newton-Schulz
steps (optiscope.optim.norms.newton_schulz) in bfloat16: an approximate U V^T, i.e. spectral
descent on the momentum. Every other tensor (embeddings, head, biases, gains; by role from the
task, or by shape without roles) is trained by AdamW with its own lr, betas and eps, exactly as
the reference's `MuonWithAuxAdam`. Conv filters are flattened to (out, in * kh * kw) and scaled
by that matrix's shape (the reference uses the last two axes of the 4-D tensor there).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from torch import Tensor

from optiscope.optim.base import (
    EnsembleOptimizer,
    HyperparameterError,
    StepContext,
    Transform,
    check_betas,
    check_hyperparameter,
)
from optiscope.optim.norms import MUON_COEFFICIENTS, as_matrix, dtype_named, newton_schulz
from optiscope.optim.roles import role_of
from optiscope.optim.transforms import DecoupledWeightDecay, EMAMomentum, ScaleByAdam


class Orthogonalize(Transform):
    """u <- NS(u) * sqrt(max(1, rows / cols)), per member (Muon's update)."""

    reads = ("ns_steps", "ns_coefficients", "ns_dtype", "eps")

    def update(self, u: Tensor, p: Tensor, state: dict, group: dict, ctx: StepContext) -> Tensor:
        m = as_matrix(u, ctx.ensemble_dims)
        o = newton_schulz(
            m, group["ns_steps"], tuple(group["ns_coefficients"]), eps=group["eps"],
            dtype=dtype_named(group["ns_dtype"]),
        )
        rows, cols = m.shape[-2:]
        ctx.lr_scale *= math.sqrt(max(1.0, rows / cols))
        return o.reshape(u.shape)


class _AdamWLR(Transform):
    """Sets the step's learning rate to Muon's `adamw_lr` for the AdamW-trained tensors."""

    def update(self, u: Tensor, p: Tensor, state: dict, group: dict, ctx: StepContext) -> Tensor:
        ctx.lr = group["adamw_lr"]
        return u


class Muon(EnsembleOptimizer):
    """Muon for hidden matrices, AdamW for the rest (KellerJordan/Muon's MuonWithAuxAdam).

    Defaults are the reference's (lr 0.02, momentum 0.95, Nesterov, 5 steps of
    (3.4445, -4.7750, 2.0315) in bfloat16, weight decay 0; AdamW lr 3e-4, betas (0.9, 0.95),
    eps 1e-10). `ns_dtype='float32'` runs the iteration in single precision.
    """

    norm = "spectral (hidden matrices, Newton-Schulz U V^T); AdamW for the rest"
    reference = "torch.optim.Muon + torch.optim.AdamW; KellerJordan/Muon formulas"
    wants_roles = True

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.02,
        momentum: float = 0.95,
        nesterov: bool = True,
        weight_decay: float = 0.0,
        ns_steps: int = 5,
        ns_coefficients: tuple[float, float, float] = MUON_COEFFICIENTS,
        ns_dtype: str = "bfloat16",
        eps: float = 1e-7,
        adamw_lr: float = 3e-4,
        adamw_betas: tuple[float, float] = (0.9, 0.95),
        adamw_eps: float = 1e-10,
        adamw_weight_decay: float = 0.0,
        *,
        ensemble_dims: int = 0,
    ):
        check_hyperparameter("lr", lr, 0.0)
        check_hyperparameter("momentum", momentum, 0.0, 1.0, high_open=True)
        check_hyperparameter("weight_decay", weight_decay, 0.0)
        check_hyperparameter("ns_steps", ns_steps, 0, 100)
        if len(ns_coefficients) != 3:
            raise HyperparameterError(f"ns_coefficients must be (a, b, c), got {ns_coefficients!r}")
        dtype_named(ns_dtype)  # raises for an unknown name
        check_hyperparameter("eps", eps, 0.0)
        check_hyperparameter("adamw_lr", adamw_lr, 0.0)
        check_betas("adamw_betas", adamw_betas)
        check_hyperparameter("adamw_eps", adamw_eps, 0.0)
        check_hyperparameter("adamw_weight_decay", adamw_weight_decay, 0.0)
        defaults = dict(
            lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay,
            ns_steps=int(ns_steps), ns_coefficients=tuple(ns_coefficients), ns_dtype=ns_dtype,
            eps=eps, adamw_lr=adamw_lr, adamw_betas=tuple(adamw_betas), adamw_eps=adamw_eps,
            adamw_weight_decay=adamw_weight_decay,
        )
        super().__init__(params, defaults, ensemble_dims=ensemble_dims)

    def uses_muon(self, group: dict[str, Any], p: Tensor) -> bool:
        """Hidden matrices (by role, or by shape without roles) get Muon; the rest AdamW."""
        ed = group["ensemble_dims"]
        return role_of(group, p, ed) == "hidden" and p.dim() - ed >= 2

    def chain_for(self, group: dict[str, Any], p: Tensor):
        if self.uses_muon(group, p):
            return (DecoupledWeightDecay(), EMAMomentum(), Orthogonalize())
        return (
            _AdamWLR(),
            DecoupledWeightDecay("adamw_lr", "adamw_weight_decay"),
            ScaleByAdam("adamw_betas", "adamw_eps"),
        )
