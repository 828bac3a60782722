"""Muon (Jordan et al. 2024, KellerJordan/Muon): orthogonalised momentum for hidden matrices.

For each hidden matrix: B <- lerp(B, G, 1 - beta); U = lerp(G, B, beta) (Nesterov) or B;
O = NS5(U) * sqrt(max(1, rows / cols)); W <- W (1 - lr wd) - lr O. NS5 is five Newton-Schulz
steps (optiscope.optim.norms.newton_schulz) in bfloat16: an approximate U V^T, i.e. spectral
descent on the momentum. Every other tensor (embeddings, head, biases, gains; by role from the
task or `optiscope.optim.param_groups(model)`, or by shape without roles) is trained by AdamW
with its own lr, betas and eps, exactly as the reference's `MuonWithAuxAdam`. The two parts live
in separate param groups (`group["part"]`: "muon" or "adamw"), each with its own `lr` (the AdamW
part's starts at `adamw_lr`), so a `torch.optim.lr_scheduler` anneals both, as it does the
reference's two groups. Conv filters are flattened to (out, in * kh * kw) and scaled
by that matrix's shape (the reference uses the last two axes of the 4-D tensor there).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Annotated, Any, Literal

from pydantic import Field
from torch import Tensor

from optiscope.optim.base import (
    Direction,
    EnsembleOptimizer,
    Scaled,
    ScaleByLearningRate,
    StepContext,
    Transform,
    chain,
)
from optiscope.optim.hyperparameters import (
    BETAS,
    EPS,
    LR,
    MOMENTUM,
    NESTEROV,
    WEIGHT_DECAY,
    Hyperparameter,
    declare,
    scalar_only,
)
from optiscope.optim.norms import MUON_COEFFICIENTS, as_matrix, dtype_named, newton_schulz
from optiscope.optim.roles import role_of
from optiscope.optim.transforms import EMAMomentum, ScaleByAdam


class Orthogonalize(Transform):
    """u <- NS(u), with the learning rate scaled by sqrt(max(1, rows / cols)), per member
    (Muon's update)."""

    def update(self, u: Tensor, p: Tensor, state: dict, group: dict, ctx: StepContext) -> Direction:
        m = as_matrix(u, ctx.ensemble_dims)
        o = newton_schulz(
            m, group["ns_steps"], tuple(group["ns_coefficients"]), eps=ctx.raw(group, "eps", m),
            dtype=dtype_named(group["ns_dtype"]),
        )
        rows, cols = m.shape[-2:]
        return Scaled(o.reshape(u.shape), factor=math.sqrt(max(1.0, rows / cols)))


class Muon(EnsembleOptimizer):
    """Muon for hidden matrices, AdamW for the rest (KellerJordan/Muon's MuonWithAuxAdam).

    Defaults are the reference's (lr 0.02, momentum 0.95, Nesterov, 5 steps of
    (3.4445, -4.7750, 2.0315) in bfloat16, weight decay 0; AdamW lr 3e-4, betas (0.9, 0.95),
    eps 1e-10). `ns_dtype='float32'` runs the iteration in single precision.
    """

    norm = "spectral (hidden matrices, Newton-Schulz U V^T); AdamW for the rest"
    reference = "torch.optim.Muon + torch.optim.AdamW; KellerJordan/Muon formulas"
    wants_roles = True

    #: The Newton-Schulz coefficients define the iteration (one for the whole ensemble).
    hyperparameters = scalar_only(declare(
        LR, MOMENTUM, NESTEROV, WEIGHT_DECAY,
        Hyperparameter("ns_steps", Annotated[int, Field(ge=0, le=100)], 5),
        Hyperparameter("ns_coefficients", tuple[float, float, float], MUON_COEFFICIENTS),
        Hyperparameter("ns_dtype", Literal["bfloat16", "float32", "float64"], "bfloat16"),
        EPS,
        *(replace(h, name=f"adamw_{h.name}") for h in (LR, BETAS, EPS, WEIGHT_DECAY)),
        lr=0.02, momentum=0.95, nesterov=True, eps=1e-7,
        adamw_lr=3e-4, adamw_betas=(0.9, 0.95), adamw_eps=1e-10,
    ), "ns_coefficients")

    def uses_muon(self, group: dict[str, Any], p: Tensor) -> bool:
        """Hidden matrices (by role, or by shape without roles) get Muon; the rest AdamW."""
        if "part" in group:
            return group["part"] == "muon"
        ed = group.get("ensemble_dims", self.defaults["ensemble_dims"])
        return role_of(group, p, ed) == "hidden" and p.dim() - ed >= 2

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group as up to two: its Muon tensors (`part` "muon", the group's `lr`) and the
        rest (`part` "adamw", `lr` = `adamw_lr`), so schedulers see the AdamW lr as a group lr."""
        if "part" in param_group:  # already one part (a state_dict's group, a copy)
            super().add_param_group(param_group)
            return
        params = param_group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        muon = [p for p in params if self.uses_muon(param_group, p)]
        rest = [p for p in params if not self.uses_muon(param_group, p)]
        if muon or not rest:
            super().add_param_group({**param_group, "params": muon, "part": "muon"})
        if rest:
            adamw_lr = param_group.get("adamw_lr", self.defaults["adamw_lr"])
            super().add_param_group({**param_group, "params": rest, "part": "adamw", "lr": adamw_lr})

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """torch's; a state saved before the parts existed gets them back (the AdamW tensors'
        `lr` from `adamw_lr`), so its checkpoints resume."""
        super().load_state_dict(state_dict)
        for group in self.param_groups:
            if "part" not in group and group["params"]:
                muon = self.uses_muon(group, group["params"][0])
                group["part"] = "muon" if muon else "adamw"
                if not muon:
                    group["lr"] = group["adamw_lr"]

    def chain_for(self, group: dict[str, Any], p: Tensor):
        """A partition: orthogonalised momentum for hidden matrices, AdamW for the rest (which
        reads its own group's `lr`)."""
        if self.uses_muon(group, p):
            return chain(
                EMAMomentum(), Orthogonalize(),
                ScaleByLearningRate(decoupled_weight_decay="weight_decay"),
            )
        return chain(
            ScaleByAdam("adamw_betas", "adamw_eps"),
            ScaleByLearningRate("lr", decoupled_weight_decay="adamw_weight_decay"),
        )
