"""Prodigy (Mishchenko & Defazio 2024, arXiv 2306.06101): Adam with a learned step size d.

d estimates the distance to the solution from the running ratio
sum_t d_t lr_t <g_t, w_0 - w_t> / ||s_t||_1 (s an EMA of d-weighted gradients) and only grows.
With betas 0 the step is sign-like and d_{t+1} = max(d_t, g^T (w_0 - w_t) / ||g||_1)
(Bernstein & Newhouse 2024). The estimate is a *global* statistic over all tensors, so in an
ensemble every scalar of the reference (d, d_max, the numerator and denominator) is a vector
over members, accumulated in float64 as the reference's Python floats are.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch

from optiscope.optim.base import (
    EnsembleOptimizer,
    HyperparameterError,
    check_betas,
    check_hyperparameter,
)


class Prodigy(EnsembleOptimizer):
    """Prodigy with the arguments and defaults of `prodigyopt.Prodigy` (slice_p = 1, one lr)."""

    norm = "infinity with averaging (Adam), learned step size d"
    reference = "prodigyopt.Prodigy"

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1.0,
        betas: tuple[float, float] = (0.9, 0.999),
        beta3: float | None = None,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        decouple: bool = True,
        use_bias_correction: bool = False,
        safeguard_warmup: bool = False,
        d0: float = 1e-6,
        d_coef: float = 1.0,
        growth_rate: float = math.inf,
        *,
        ensemble_dims: int = 0,
    ):
        check_hyperparameter("lr", lr, 0.0, low_open=True)
        check_betas("betas", betas)
        if beta3 is not None:
            check_hyperparameter("beta3", beta3, 0.0, 1.0, high_open=True)
        check_hyperparameter("eps", eps, 0.0, low_open=True)
        check_hyperparameter("weight_decay", weight_decay, 0.0)
        check_hyperparameter("d0", d0, 0.0, low_open=True)
        check_hyperparameter("d_coef", d_coef, 0.0, low_open=True)
        check_hyperparameter("growth_rate", growth_rate, 1.0)
        defaults = dict(
            lr=lr, betas=tuple(betas), beta3=beta3, eps=eps, weight_decay=weight_decay,
            decouple=decouple, use_bias_correction=use_bias_correction,
            safeguard_warmup=safeguard_warmup, d0=d0, d_coef=d_coef, growth_rate=growth_rate,
        )
        super().__init__(params, defaults, ensemble_dims=ensemble_dims)
        if len({g["lr"] for g in self.param_groups}) > 1:
            raise HyperparameterError("lr: Prodigy needs one lr for all param groups")

    # The global estimate (d, d_max, d_numerator, k) is kept on the first param group, as the
    # reference keeps it on every group, so that state_dict / load_state_dict carry it.
    def _members(self) -> tuple[int, ...]:
        p = self.param_groups[0]["params"][0]
        return tuple(p.shape[: self.ensemble_dims])

    def _dims(self, t: torch.Tensor) -> tuple[int, ...]:
        return tuple(range(self.ensemble_dims, t.dim()))

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        first = self.param_groups[0]
        shape = self._members()
        device = first["params"][0].device
        wide = torch.float32 if device.type == "mps" else torch.float64  # mps has no float64
        if "d" not in first:
            for key, value in (("d", first["d0"]), ("d_max", first["d0"]), ("d_numerator", 0.0)):
                first[key] = torch.full(shape, float(value), dtype=wide, device=device)
            first["k"] = 0
        beta1, beta2 = first["betas"]
        beta3 = first["beta3"] if first["beta3"] is not None else math.sqrt(beta2)
        k, d, d_max = first["k"], first["d"], first["d_max"]
        lr = first["lr"]
        d0 = first["d0"]
        bias_correction = (
            ((1 - beta2 ** (k + 1)) ** 0.5) / (1 - beta1 ** (k + 1))
            if first["use_bias_correction"] else 1.0
        )
        dlr = d * lr * bias_correction  # float64, per member
        d_numerator = first["d_numerator"] * beta3
        delta_numerator = torch.zeros(shape, dtype=wide, device=device)
        d_denom = torch.zeros(shape, dtype=wide, device=device)
        params = []
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                params.append((group, p))
                grad = p.grad
                if group["weight_decay"] != 0 and not group["decouple"]:
                    grad.add_(p, alpha=group["weight_decay"])
                state = self.state[p]
                if "step" not in state:
                    state["step"] = 0
                    state["s"] = torch.zeros_like(p)
                    state["p0"] = p.detach().clone()
                    if beta1 > 0:
                        state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                dims = self._dims(p)
                # float32 per-member reductions, then float64 accumulation (as .item() does)
                dot = (grad * (state["p0"] - p)).sum(dim=dims).to(wide)
                delta_numerator += (d / d0) * dlr * dot
                if beta1 > 0:
                    state["exp_avg"].mul_(beta1).add_(grad * self._bcast(d * (1 - beta1), p))
                state["exp_avg_sq"].mul_(beta2).add_(
                    grad * grad * self._bcast(d * d * (1 - beta2), p)
                )
                alpha = (d / d0) * d if group["safeguard_warmup"] else (d / d0) * dlr
                state["s"].mul_(beta3).add_(grad * self._bcast(alpha, p))
                d_denom += state["s"].abs().sum(dim=dims).to(wide)
        active = d_denom != 0  # the reference returns early when the denominator is 0
        if not bool(active.any()):
            return loss
        global_numerator = d_numerator + delta_numerator
        d_hat = first["d_coef"] * global_numerator / torch.where(active, d_denom, 1.0)
        d_new = torch.where(d == d0, torch.maximum(d, d_hat), d)
        d_max_new = torch.maximum(d_max, d_hat)
        d_new = torch.minimum(d_max_new, d_new * first["growth_rate"])
        first["d_numerator"] = torch.where(active, global_numerator, first["d_numerator"])
        first["d"] = torch.where(active, d_new, d)
        first["d_max"] = torch.where(active, d_max_new, d_max)
        d = first["d"]
        for group, p in params:
            state = self.state[p]
            grad = p.grad
            state["step"] += 1
            mask = self._bcast(active.to(wide), p)
            denom = state["exp_avg_sq"].sqrt().add_(self._bcast(d * group["eps"], p))
            step_size = self._bcast(dlr, p) * mask
            if group["weight_decay"] != 0 and group["decouple"]:
                p.add_(p * (-group["weight_decay"] * step_size))
            if beta1 > 0:
                p.add_(state["exp_avg"] / denom * -step_size)
            else:
                p.add_(grad / denom * (self._bcast(-dlr * d, p) * mask))
        first["k"] = k + 1
        return loss

    def _bcast(self, values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """Per-member (float64) values cast to `like`'s dtype, shaped to broadcast against it."""
        return self.per_member(values.to(device=like.device, dtype=like.dtype), like)
