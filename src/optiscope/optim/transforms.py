"""Elementwise pieces shared by the named optimizers (optax's `trace`, `scale_by_adam`, ...).

Each follows torch.optim's single-tensor code operation by operation, so the named optimizers
built from them match torch.optim to float rounding. Every hyperparameter is read through
`StepContext.hyper`, so a per-member tensor gives each member its own value.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from optiscope.optim.base import (
    Direction,
    Scaled,
    ScaleByLearningRate,
    StepContext,
    Transform,
    add_scaled,
    chain,
)
from optiscope.optim.hyperparameters import is_zero, member_value, none_zero


def _zeros(p: Tensor) -> Tensor:
    return torch.zeros_like(p, memory_format=torch.preserve_format)


def _add_square_(acc: Tensor, u: Tensor, weight: Any) -> Tensor:
    """acc += weight * u * u in place (torch's `addcmul_`, which rounds (weight u) u)."""
    return acc.addcmul_(u * weight, u) if isinstance(weight, Tensor) else acc.addcmul_(u, u, value=weight)


def _sqrt(x: Any) -> Any:
    return x.sqrt() if isinstance(x, Tensor) else math.sqrt(x)


class AddDecayedWeights(Transform):
    """L2 penalty folded into the gradient: u <- u + weight_decay * p (coupled decay)."""

    def update(self, u: Tensor, p: Tensor, state: dict, group: dict, ctx: StepContext) -> Tensor:
        if is_zero(group["weight_decay"]):
            return u
        return add_scaled(u, p, ctx.hyper(group, "weight_decay", p), out=ctx.scratch(p, "decayed"))


def decayed_chain(scale: Transform, decoupled: bool) -> tuple[Transform, ...]:
    """`scale` then the step, with weight decay coupled (L2 folded into the gradient first) or
    decoupled (torch's AdamW: p <- p (1 - lr wd) at the step)."""
    if decoupled:
        return chain(scale, ScaleByLearningRate(decoupled_weight_decay="weight_decay"))
    return chain(AddDecayedWeights(), scale, ScaleByLearningRate())


class Momentum(Transform):
    """Heavy-ball / Nesterov momentum as torch.optim.SGD: buf <- mu buf + (1 - dampening) u.

    The buffer starts as a copy of the first direction (torch's convention).
    """

    def update(self, u: Tensor, p: Tensor, state: dict, group: dict, ctx: StepContext) -> Tensor:
        if is_zero(group["momentum"]):
            return u
        mu = ctx.hyper(group, "momentum", p)
        buf = state.get("momentum_buffer")
        if buf is None:
            buf = state["momentum_buffer"] = u.detach().clone()
        else:
            damp = ctx.member(1 - ctx.raw(group, "dampening", p), p)
            add_scaled(buf.mul_(mu), u, damp, inplace=True)
        if group["nesterov"]:
            return add_scaled(u, buf, mu, out=ctx.scratch(p, "nesterov"))
        if not none_zero(group["momentum"]):
            return torch.where(mu == 0, u, buf)  # torch.optim.SGD: no momentum, no dampening
        return buf


class ScaleByAdam(Transform):
    """Adam's preconditioning with bias correction: (m / bc1) / (sqrt(v / bc2) + eps).

    With `amsgrad`, the running maximum of v is used (Reddi et al. 2018). The group keys are
    arguments so that Muon's AdamW part reads its own (`adamw_betas`, `adamw_eps`).
    """

    def __init__(self, betas_key: str = "betas", eps_key: str = "eps"):
        self.betas_key, self.eps_key = betas_key, eps_key

    def init(self, p: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        state["exp_avg"], state["exp_avg_sq"] = _zeros(p), _zeros(p)
        if group.get("amsgrad", False):
            state["max_exp_avg_sq"] = _zeros(p)

    def moments(self, u: Tensor, p: Tensor, state: dict, group: dict, ctx: StepContext):
        """Update the first and second moments in place; return (beta1, beta2, step)."""
        beta1, beta2 = (ctx.member(b, p) for b in group[self.betas_key])  # as torch casts them
        wide1, wide2 = (member_value(b, p, ctx.ensemble_dims, cast=False) for b in group[self.betas_key])
        state["exp_avg"].lerp_(u, ctx.member(1 - wide1, p))
        _add_square_(state["exp_avg_sq"].mul_(beta2), u, ctx.member(1 - wide2, p))
        return wide1, wide2, float(state["step"])

    def update(self, u: Tensor, p: Tensor, state: dict, group: dict, ctx: StepContext) -> Direction:
        beta1, beta2, step = self.moments(u, p, state, group, ctx)
        second = state["exp_avg_sq"]
        if group.get("amsgrad", False):
            torch.maximum(state["max_exp_avg_sq"], second, out=state["max_exp_avg_sq"])
            second = state["max_exp_avg_sq"]
        bc2_sqrt = ctx.member((1 - beta2**step) ** 0.5, p)
        denom = torch.sqrt(second, out=ctx.scratch(p, "denom"))
        denom.div_(bc2_sqrt).add_(ctx.hyper(group, self.eps_key, p))
        return Scaled(state["exp_avg"], denom, divisor=1 - beta1**step)


class ScaleByNAdam(ScaleByAdam):
    """NAdam's Nesterov-accelerated Adam step (Dozat 2016), as torch.optim.NAdam: Adam's moments,
    mu_t = beta1 (1 - 0.5 * 0.96^(t psi)), and the step
    (1 - mu_t) / (1 - prod mu) g / denom + mu_{t+1} / (1 - prod mu * mu_{t+1}) m / denom."""

    def init(self, p: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        super().init(p, state, group)
        state["mu_product"] = torch.tensor(1.0, dtype=torch.float32)

    def update(self, u: Tensor, p: Tensor, state: dict, group: dict, ctx: StepContext) -> Tensor:
        beta1, beta2, step = self.moments(u, p, state, group, ctx)
        psi = ctx.raw(group, "momentum_decay", p)
        mu = beta1 * (1.0 - 0.5 * (0.96 ** (step * psi)))
        mu_next = beta1 * (1.0 - 0.5 * (0.96 ** ((step + 1) * psi)))
        if isinstance(mu, Tensor):  # per member: one running product each, float32 as torch's
            state["mu_product"] = state["mu_product"] * mu.to(state["mu_product"].dtype)
            mu_product = state["mu_product"].to(mu.dtype)
        else:
            state["mu_product"] *= mu
            mu_product = float(state["mu_product"])
        bc2 = ctx.member(1 - beta2**step, p)
        denom = torch.div(state["exp_avg_sq"], bc2, out=ctx.scratch(p, "denom"))
        denom.sqrt_().add_(ctx.hyper(group, "eps", p))
        # torch's two addcdiv steps as one direction, in reused buffers (EnsembleOptimizer.scratch)
        step = torch.div(u, denom, out=ctx.scratch(p, "nadam"))
        step.mul_(ctx.member((1.0 - mu) / (1.0 - mu_product), p))
        momentum = torch.div(state["exp_avg"], denom, out=denom)
        return step.add_(momentum.mul_(ctx.member(mu_next / (1.0 - mu_product * mu_next), p)))


class ScaleByAdagrad(Transform):
    """Adagrad (Duchi et al. 2011), as torch.optim.Adagrad: g / (sqrt(sum g^2) + eps), with the
    learning rate divided by 1 + (t - 1) lr_decay."""

    def init(self, p: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        init = group["initial_accumulator_value"]
        if isinstance(init, Tensor):  # per member
            init = member_value(init, p, group["ensemble_dims"])
            state["sum"] = _zeros(p).add_(init)
        else:
            state["sum"] = torch.full_like(p, init, memory_format=torch.preserve_format)

    def update(self, u: Tensor, p: Tensor, state: dict, group: dict, ctx: StepContext) -> Direction:
        decay = 1.0 / (1 + (float(state["step"]) - 1) * ctx.raw(group, "lr_decay", p))
        state["sum"].addcmul_(u, u, value=1)
        return Scaled(u / state["sum"].sqrt().add_(ctx.hyper(group, "eps", p)), factor=decay)


class ScaleByRMSprop(Transform):
    """RMSprop (Tieleman & Hinton 2012), as torch.optim.RMSprop, with centering and momentum."""

    def init(self, p: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        state["square_avg"] = _zeros(p)
        if not is_zero(group["momentum"]):
            state["momentum_buffer"] = _zeros(p)
        if group["centered"]:
            state["grad_avg"] = _zeros(p)

    def update(self, u: Tensor, p: Tensor, state: dict, group: dict, ctx: StepContext) -> Tensor:
        alpha = ctx.hyper(group, "alpha", p)
        one_minus = ctx.member(1 - ctx.raw(group, "alpha", p), p)
        square_avg = _add_square_(state["square_avg"].mul_(alpha), u, one_minus)
        if group["centered"]:
            grad_avg = state["grad_avg"].lerp_(u, one_minus)
            avg = square_avg.addcmul(grad_avg, grad_avg, value=-1).sqrt_()
        else:
            avg = square_avg.sqrt()
        avg = avg.add_(ctx.hyper(group, "eps", p))
        if "momentum_buffer" in state:
            return state["momentum_buffer"].mul_(ctx.hyper(group, "momentum", p)).addcdiv_(u, avg)
        return u / avg


class Lion(Transform):
    """Lion's update (Chen et al. 2023, "Symbolic discovery of optimization algorithms"):
    sign(beta1 m + (1 - beta1) g), then m <- beta2 m + (1 - beta2) g."""

    def init(self, p: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        state["exp_avg"] = _zeros(p)

    def update(self, u: Tensor, p: Tensor, state: dict, group: dict, ctx: StepContext) -> Tensor:
        beta1, beta2 = (member_value(b, p, ctx.ensemble_dims, cast=False) for b in group["betas"])
        direction = torch.lerp(
            state["exp_avg"], u, ctx.member(1.0 - beta1, p), out=ctx.scratch(p, "lion")
        ).sign_()
        state["exp_avg"].lerp_(u, ctx.member(1.0 - beta2, p))
        return direction


class EMAMomentum(Transform):
    """Muon's momentum: B <- lerp(B, u, 1 - beta); returns lerp(u, B, beta) if Nesterov else B.

    (The buffer starts at zero, as in KellerJordan/Muon and torch.optim.Muon.)
    """

    def init(self, p: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        state["momentum_buffer"] = _zeros(p)

    def update(self, u: Tensor, p: Tensor, state: dict, group: dict, ctx: StepContext) -> Tensor:
        beta = ctx.hyper(group, "momentum", p)
        buf = state["momentum_buffer"].lerp_(u, ctx.member(1 - ctx.raw(group, "momentum", p), p))
        return u.lerp(buf, beta) if group["nesterov"] else buf


class Dualize(Transform):
    """The duality map of a norm: u <- dualize(u) (unit steepest direction), times the dual norm
    ||u||_* when `scale_by_dual_norm` (Bernstein & Newhouse's exact steepest descent)."""

    def __init__(self, norm: Any):
        self.norm = norm

    def update(self, u: Tensor, p: Tensor, state: dict, group: dict, ctx: StepContext) -> Tensor:
        if group.get("scale_by_dual_norm", False):
            return self.norm.duality_map(u, ctx.ensemble_dims)
        return self.norm.dualize(u, ctx.ensemble_dims)


#: sigma(hyper, step) of a noise piece; `hyper(key)` reads the group's value for this tensor.
NoiseScale = Callable[[Callable[[str], Any], int], Any]


class AddGaussianNoise(Transform):
    """u <- u + sigma_t xi with xi standard normal keyed on the member seeds.

    `sigma` gives the scale: NiG-SGD a constant, NoisySGD the annealed schedule of
    Neelakantan et al. 2015, SGLD sqrt(2 T / lr). `counter` (default: the tensor's step) keys
    the draw; basin hopping passes its own.
    """

    def __init__(self, sigma: NoiseScale, stream: str, counter: Callable[[dict], int] | None = None):
        self.sigma, self.stream, self.counter = sigma, stream, counter

    def update(self, u: Tensor, p: Tensor, state: dict, group: dict, ctx: StepContext) -> Tensor:
        step = int(state["step"]) if self.counter is None else self.counter(group)
        sigma = self.sigma(lambda key: ctx.raw(group, key, p), int(state["step"]))
        if is_zero(sigma):
            return u
        return u + ctx.member(sigma, p) * ctx.normal_like(u, self.stream, step)


def constant_noise(hyper: Callable[[str], Any], step: int) -> Any:
    """sigma = noise_std (noise in the gradient)."""
    return hyper("noise_std")


def annealed_noise(hyper: Callable[[str], Any], step: int) -> Any:
    """sigma_t = sqrt(noise_eta / t^noise_gamma) (Neelakantan et al. 2015)."""
    return _sqrt(hyper("noise_eta") / (1 + (step - 1)) ** hyper("noise_gamma"))


def langevin_noise(hyper: Callable[[str], Any], step: int) -> Any:
    """sigma = sqrt(2 T / lr): the gradient-scale noise of Langevin dynamics."""
    lr, temperature = hyper("lr"), hyper("temperature")
    if isinstance(lr, Tensor):
        return torch.where(lr > 0, (2 * temperature / lr.clamp(min=1e-300)).sqrt(), 0.0)
    return _sqrt(2 * temperature / lr) if lr > 0 else 0.0
