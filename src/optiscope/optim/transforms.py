"""Elementwise transforms shared by the named optimizers (optax's `trace`, `scale_by_adam`, ...).

Each follows torch.optim's single-tensor code operation by operation, so the named optimizers
built from them match torch.optim to float rounding.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from optiscope.optim.base import StepContext, Transform


class AddDecayedWeights(Transform):
    """L2 penalty folded into the gradient: u <- u + weight_decay * p (coupled decay)."""

    reads = ("weight_decay",)

    def update(self, u: Tensor, p: Tensor, state: dict, group: dict, ctx: StepContext) -> Tensor:
        wd = group["weight_decay"]
        return u.add(p, alpha=wd) if wd != 0 else u


class DecoupledWeightDecay(Transform):
    """AdamW-style decay on the parameter itself: p <- p (1 - lr * weight_decay)."""

    reads = ("lr", "weight_decay")

    def before(self, p: Tensor, state: dict, group: dict, ctx: StepContext) -> None:
        if group["weight_decay"] != 0:
            p.mul_(1 - group["lr"] * group["weight_decay"])


class Momentum(Transform):
    """Heavy-ball / Nesterov momentum as torch.optim.SGD: buf <- mu buf + (1 - dampening) u.

    The buffer starts as a copy of the first direction (torch's convention).
    """

    reads = ("momentum", "dampening", "nesterov")

    def update(self, u: Tensor, p: Tensor, state: dict, group: dict, ctx: StepContext) -> Tensor:
        mu = group["momentum"]
        if mu == 0:
            return u
        buf = state.get("momentum_buffer")
        if buf is None:
            buf = state["momentum_buffer"] = u.detach().clone()
        else:
            buf.mul_(mu).add_(u, alpha=1 - group["dampening"])
        return u.add(buf, alpha=mu) if group["nesterov"] else buf


class ScaleByAdam(Transform):
    """Adam's preconditioning with bias correction: m / (sqrt(v / bc2) + eps) and lr / bc1.

    With `amsgrad`, the running maximum of v is used (Reddi et al. 2018).
    """

    reads = ("betas", "eps", "amsgrad")

    def init(self, p: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        if group.get("amsgrad", False):
            state["max_exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)

    def update(self, u: Tensor, p: Tensor, state: dict, group: dict, ctx: StepContext) -> Tensor:
        beta1, beta2 = group["betas"]
        step = float(state["step"])
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg.lerp_(u, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(u, u, value=1 - beta2)
        bias_correction1 = 1 - beta1**step
        bias_correction2_sqrt = (1 - beta2**step) ** 0.5
        second = exp_avg_sq
        if group.get("amsgrad", False):
            torch.maximum(state["max_exp_avg_sq"], exp_avg_sq, out=state["max_exp_avg_sq"])
            second = state["max_exp_avg_sq"]
        denom = (second.sqrt() / bias_correction2_sqrt).add_(group["eps"])
        ctx.lr_scale /= bias_correction1
        return exp_avg / denom
