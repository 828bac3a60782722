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

from optiscope.core import member_dims
from optiscope.optim.base import EnsembleOptimizer, Scaled, ScaleByLearningRate, StepContext
from optiscope.optim.hyperparameters import (
    BETAS,
    WEIGHT_DECAY,
    AtLeastOne,
    Fraction,
    Hyperparameter,
    HyperparameterError,
    Positive,
    declare,
    is_zero,
)
from optiscope.optim.transforms import AddDecayedWeights


#: The pieces Prodigy shares with the other optimizers: L2 decay folded into the gradient
#: (decouple=False) and the final step, here with a per-member learning rate (d * lr).
_COUPLED, _APPLY = AddDecayedWeights(), ScaleByLearningRate()


class Prodigy(EnsembleOptimizer):
    """Prodigy with the arguments and defaults of `prodigyopt.Prodigy` (slice_p = 1, one lr)."""

    norm = "infinity with averaging (Adam), learned step size d"
    reference = "prodigyopt.Prodigy"

    hyperparameters = declare(
        Hyperparameter("lr", Positive, 1.0), BETAS,
        Hyperparameter("beta3", Fraction | None, None),
        Hyperparameter("eps", Positive, 1e-8), WEIGHT_DECAY,
        Hyperparameter("decouple", bool, True),
        Hyperparameter("use_bias_correction", bool, False),
        Hyperparameter("safeguard_warmup", bool, False),
        Hyperparameter("d0", Positive, 1e-6),
        Hyperparameter("d_coef", Positive, 1.0),
        Hyperparameter("growth_rate", AtLeastOne, math.inf),
    )

    def configure(self, params: Iterable[Any], given: dict[str, Any], ensemble_dims: int) -> None:
        super().configure(params, given, ensemble_dims)
        if len({id(g["lr"]) if torch.is_tensor(g["lr"]) else g["lr"] for g in self.param_groups}) > 1:
            raise HyperparameterError("lr: Prodigy needs one lr for all param groups")

    def _members(self) -> tuple[int, ...]:
        p = self.param_groups[0]["params"][0]
        return tuple(p.shape[: self.ensemble_dims])

    def _dims(self, t: torch.Tensor) -> tuple[int, ...]:
        return member_dims(t, self.ensemble_dims)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = self.evaluate(closure)
        first = self.param_groups[0]
        shape = self._members()
        device = first["params"][0].device
        wide = torch.float32 if device.type == "mps" else torch.float64  # mps has no float64
        if "d" not in first:
            for key, value in (("d", first["d0"]), ("d_max", first["d0"]), ("d_numerator", 0.0)):
                value = value.reshape(shape) if torch.is_tensor(value) else value
                first[key] = torch.zeros(shape, dtype=wide, device=device).add_(value)
            first["k"] = 0
        # the reference's Python floats: numbers, or per-member (S,) float64 vectors
        beta1, beta2 = first["betas"]
        beta3 = first["beta3"]
        if beta3 is None:
            beta3 = beta2.sqrt() if torch.is_tensor(beta2) else math.sqrt(beta2)
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
                state = self.state[p]
                ctx = StepContext(self.ensemble_dims, self, self.param_index(p))
                grad = p.grad if group["decouple"] else _COUPLED.update(p.grad, p, state, group, ctx)
                params.append((group, p, grad, ctx))
                if "step" not in state:
                    state["step"] = 0
                    state["s"] = torch.zeros_like(p)
                    state["p0"] = p.detach().clone()
                    if not is_zero(beta1):
                        state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                dims = self._dims(p)
                # float32 per-member reductions, then float64 accumulation (as .item() does)
                dot = (grad * (state["p0"] - p)).sum(dim=dims).to(wide)
                delta_numerator += (d / d0) * dlr * dot
                if "exp_avg" in state:
                    state["exp_avg"].mul_(self._bcast(beta1, p)).add_(
                        grad * self._bcast(d * (1 - beta1), p)
                    )
                state["exp_avg_sq"].mul_(self._bcast(beta2, p)).add_(
                    grad * grad * self._bcast(d * d * (1 - beta2), p)
                )
                alpha = (d / d0) * d if group["safeguard_warmup"] else (d / d0) * dlr
                state["s"].mul_(self._bcast(beta3, p)).add_(grad * self._bcast(alpha, p))
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
        step_size = dlr * active.to(wide)  # per member; 0 where the estimate did not move
        for group, p, grad, ctx in params:
            state = self.state[p]
            state["step"] += 1
            denom = state["exp_avg_sq"].sqrt().add_(self._bcast(d * group["eps"], p))
            if not is_zero(group["weight_decay"]) and group["decouple"]:  # prodigyopt's decay
                p.add_(p * self._bcast(-group["weight_decay"] * step_size, p))
            if "exp_avg" in state:
                _APPLY.apply(Scaled(state["exp_avg"], denom), p, state, {"lr": step_size}, ctx)
            else:  # sign-like: the gradient itself, with step size d * dlr
                _APPLY.apply(Scaled(grad, denom), p, state, {"lr": step_size * d}, ctx)
        first["k"] = k + 1
        return loss

    def _bcast(self, values: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor | float:
        """Per-member (float64) values cast to `like`'s dtype, shaped to broadcast against it
        (a number as it is)."""
        if not isinstance(values, torch.Tensor):
            return values
        return self.per_member(values.to(device=like.device, dtype=like.dtype), like)
