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
    """AdamW-style decay on the parameter itself: p <- p (1 - lr * weight_decay).

    The group keys are arguments so that a second optimizer inside one class (Muon's AdamW
    part) can read its own (`adamw_lr`, `adamw_weight_decay`).
    """

    reads = ("lr", "weight_decay")

    def __init__(self, lr_key: str = "lr", weight_decay_key: str = "weight_decay"):
        self.lr_key, self.weight_decay_key = lr_key, weight_decay_key

    def before(self, p: Tensor, state: dict, group: dict, ctx: StepContext) -> None:
        wd = group[self.weight_decay_key]
        if wd != 0:
            p.mul_(1 - group[self.lr_key] * wd)


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

    def __init__(self, betas_key: str = "betas", eps_key: str = "eps"):
        self.betas_key, self.eps_key = betas_key, eps_key

    def init(self, p: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        if group.get("amsgrad", False):
            state["max_exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)

    def update(self, u: Tensor, p: Tensor, state: dict, group: dict, ctx: StepContext) -> Tensor:
        beta1, beta2 = group[self.betas_key]
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
        denom = (second.sqrt() / bias_correction2_sqrt).add_(group[self.eps_key])
        ctx.lr_divisor *= bias_correction1
        ctx.denominator = denom
        return exp_avg


class ScaleByNAdam(Transform):
    """NAdam's Nesterov-accelerated Adam step (Dozat 2016), as torch.optim.NAdam.

    mu_t = beta1 (1 - 0.5 * 0.96^(t psi)); the step is
    lr (1 - mu_t) / (1 - prod mu) g / denom + lr mu_{t+1} / (1 - prod mu * mu_{t+1}) m / denom.
    """

    reads = ("betas", "eps", "momentum_decay")

    def init(self, p: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        state["mu_product"] = torch.tensor(1.0, dtype=torch.float32)
        state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)

    def update(self, u: Tensor, p: Tensor, state: dict, group: dict, ctx: StepContext) -> Tensor:
        beta1, beta2 = group["betas"]
        step = float(state["step"])
        psi = group["momentum_decay"]
        bias_correction2 = 1 - beta2**step
        mu = beta1 * (1.0 - 0.5 * (0.96 ** (step * psi)))
        mu_next = beta1 * (1.0 - 0.5 * (0.96 ** ((step + 1) * psi)))
        state["mu_product"] *= mu
        mu_product = float(state["mu_product"])
        mu_product_next = mu_product * mu_next
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg.lerp_(u, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(u, u, value=1 - beta2)
        denom = exp_avg_sq.div(bias_correction2).sqrt().add_(group["eps"])
        # Two terms with their own scalar factors; the chain's lr multiplies both.
        return u / denom * ((1.0 - mu) / (1.0 - mu_product)) + exp_avg / denom * (
            mu_next / (1.0 - mu_product_next)
        )


class ScaleByAdagrad(Transform):
    """Adagrad (Duchi et al. 2011), as torch.optim.Adagrad: g / (sqrt(sum g^2) + eps),
    with lr / (1 + (t - 1) lr_decay)."""

    reads = ("eps", "lr_decay", "initial_accumulator_value")

    def init(self, p: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        state["sum"] = torch.full_like(
            p, group["initial_accumulator_value"], memory_format=torch.preserve_format
        )

    def update(self, u: Tensor, p: Tensor, state: dict, group: dict, ctx: StepContext) -> Tensor:
        step = float(state["step"])
        ctx.lr_scale /= 1 + (step - 1) * group["lr_decay"]
        state["sum"].addcmul_(u, u, value=1)
        return u / state["sum"].sqrt().add_(group["eps"])


class ScaleByRMSprop(Transform):
    """RMSprop (Tieleman & Hinton 2012), as torch.optim.RMSprop, with centering and momentum."""

    reads = ("alpha", "eps", "centered", "momentum")

    def init(self, p: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        state["square_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        if group["momentum"] > 0:
            state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        if group["centered"]:
            state["grad_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)

    def update(self, u: Tensor, p: Tensor, state: dict, group: dict, ctx: StepContext) -> Tensor:
        alpha = group["alpha"]
        square_avg = state["square_avg"]
        square_avg.mul_(alpha).addcmul_(u, u, value=1 - alpha)
        if group["centered"]:
            grad_avg = state["grad_avg"]
            grad_avg.lerp_(u, 1 - alpha)
            avg = square_avg.addcmul(grad_avg, grad_avg, value=-1).sqrt_()
        else:
            avg = square_avg.sqrt()
        avg = avg.add_(group["eps"])
        if group["momentum"] > 0:
            buf = state["momentum_buffer"]
            buf.mul_(group["momentum"]).addcdiv_(u, avg)
            return buf
        return u / avg


class Lion(Transform):
    """Lion's update (Chen et al. 2023, "Symbolic discovery of optimization algorithms"):
    sign(beta1 m + (1 - beta1) g), then m <- beta2 m + (1 - beta2) g."""

    reads = ("betas",)

    def init(self, p: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)

    def update(self, u: Tensor, p: Tensor, state: dict, group: dict, ctx: StepContext) -> Tensor:
        beta1, beta2 = group["betas"]
        exp_avg = state["exp_avg"]
        direction = exp_avg.lerp(u, 1.0 - beta1).sign_()
        exp_avg.lerp_(u, 1.0 - beta2)
        return direction


class EMAMomentum(Transform):
    """Muon's momentum: B <- lerp(B, u, 1 - beta); returns lerp(u, B, beta) if Nesterov else B.

    (The buffer starts at zero, as in KellerJordan/Muon and torch.optim.Muon.)
    """

    reads = ("momentum", "nesterov")

    def init(self, p: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)

    def update(self, u: Tensor, p: Tensor, state: dict, group: dict, ctx: StepContext) -> Tensor:
        beta = group["momentum"]
        buf = state["momentum_buffer"]
        buf.lerp_(u, 1 - beta)
        return u.lerp(buf, beta) if group["nesterov"] else buf


class Dualize(Transform):
    """The duality map of a norm: u <- dualize(u) (unit steepest direction), times the dual norm
    ||u||_* when `scale_by_dual_norm` (Bernstein & Newhouse's exact steepest descent)."""

    reads = ("scale_by_dual_norm",)

    def __init__(self, norm: Any):
        self.norm = norm

    def update(self, u: Tensor, p: Tensor, state: dict, group: dict, ctx: StepContext) -> Tensor:
        if group.get("scale_by_dual_norm", False):
            return self.norm.duality_map(u, ctx.ensemble_dims)
        return self.norm.dualize(u, ctx.ensemble_dims)


class AddGaussianNoise(Transform):
    """u <- u + sigma_t xi with xi standard normal keyed on the member seeds.

    `sigma(group, step)` gives the scale; NiG-SGD uses a constant, NoisySGD the annealed
    schedule of Neelakantan et al. 2015, SGLD sqrt(2 T / lr).
    """

    def __init__(self, sigma: Any, stream: str):
        self.sigma, self.stream = sigma, stream

    def update(self, u: Tensor, p: Tensor, state: dict, group: dict, ctx: StepContext) -> Tensor:
        step = int(state["step"])
        sigma = self.sigma(group, step)
        if sigma == 0:
            return u
        return u + sigma * ctx.normal_like(u, self.stream, step)
