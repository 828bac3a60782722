"""Noise-injecting SGD: gradient noise, Langevin dynamics, noise in the gradient or the model.

All noise is `seeded_normal(seed, stream, step)` per member (optiscope.tasks.data), so a run is
reproducible from its seed and member i of an ensemble gets exactly the noise of a loop run with
seed i. Variants (Inan, Liu & Shehu 2024 compare them by their distributions over runs):
- NoisySGD: g + N(0, eta / (1 + t)^gamma), annealed (Neelakantan et al. 2015).
- SGLD: w <- w - lr g + sqrt(2 lr T) xi (Welling & Teh 2011; T = temperature).
- NiGSGD: g + N(0, sigma^2), constant (noise in the gradient).
- NiMSGD: the gradient taken at w + N(0, sigma^2), the step applied at w (noise in the model).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch

from optiscope.errors import OptiscopeError
from optiscope.optim.base import EnsembleOptimizer, check_hyperparameter
from optiscope.optim.transforms import AddDecayedWeights, AddGaussianNoise, Momentum


class _NoisySGDBase(EnsembleOptimizer):
    """SGD (momentum, L2 decay) with a noise term; subclasses say how much."""

    def _setup(self, params, lr, momentum, weight_decay, ensemble_dims, **extra) -> None:
        check_hyperparameter("lr", lr, 0.0)
        check_hyperparameter("momentum", momentum, 0.0, 1.0, high_open=True)
        check_hyperparameter("weight_decay", weight_decay, 0.0)
        for k, v in extra.items():
            check_hyperparameter(k, v, 0.0)
        defaults = dict(
            lr=lr, momentum=momentum, dampening=0.0, nesterov=False, weight_decay=weight_decay,
            **extra,
        )
        super().__init__(params, defaults, ensemble_dims=ensemble_dims)


def _annealed(group: dict[str, Any], step: int) -> float:
    return math.sqrt(group["noise_eta"] / (1 + (step - 1)) ** group["noise_gamma"])


def _constant(group: dict[str, Any], step: int) -> float:
    return group["noise_std"]


def _langevin(group: dict[str, Any], step: int) -> float:
    lr = group["lr"]
    return math.sqrt(2 * group["temperature"] / lr) if lr > 0 else 0.0


class NoisySGD(_NoisySGDBase):
    """SGD with annealed Gaussian gradient noise, variance noise_eta / (1 + t)^noise_gamma
    (Neelakantan et al. 2015, "Adding gradient noise improves learning")."""

    norm = "euclidean (l2) + annealed gradient noise"
    reference = "closed form: same seed, same noise; noise-free limit = torch.optim.SGD"

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.01,
        momentum: float = 0.0,
        noise_eta: float = 0.01,
        noise_gamma: float = 0.55,
        weight_decay: float = 0.0,
        *,
        ensemble_dims: int = 0,
    ):
        self._setup(
            params, lr, momentum, weight_decay, ensemble_dims,
            noise_eta=noise_eta, noise_gamma=noise_gamma,
        )

    def chain(self, group: dict[str, Any]):
        return (AddDecayedWeights(), AddGaussianNoise(_annealed, "gradient-noise"), Momentum())


class NiGSGD(_NoisySGDBase):
    """Noise in the gradient (Inan, Liu & Shehu 2024): g + N(0, noise_std^2), constant."""

    norm = "euclidean (l2) + constant gradient noise"
    reference = "closed form: same seed, same noise; noise_std = 0 is torch.optim.SGD"

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.01,
        noise_std: float = 0.01,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        *,
        ensemble_dims: int = 0,
    ):
        self._setup(params, lr, momentum, weight_decay, ensemble_dims, noise_std=noise_std)

    def chain(self, group: dict[str, Any]):
        return (AddDecayedWeights(), AddGaussianNoise(_constant, "nig-noise"), Momentum())


class SGLD(_NoisySGDBase):
    """Stochastic gradient Langevin dynamics (Welling & Teh 2011):
    w <- w - lr g + sqrt(2 lr temperature) xi."""

    norm = "euclidean (l2) + Langevin noise"
    reference = "closed form: same seed, same noise; temperature = 0 is torch.optim.SGD"

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.01,
        temperature: float = 1e-5,
        weight_decay: float = 0.0,
        *,
        ensemble_dims: int = 0,
    ):
        check_hyperparameter("lr", lr, 0.0, low_open=True)
        self._setup(params, lr, 0.0, weight_decay, ensemble_dims, temperature=temperature)

    def chain(self, group: dict[str, Any]):
        return (AddDecayedWeights(), AddGaussianNoise(_langevin, "langevin-noise"))


class NiMSGD(_NoisySGDBase):
    """Noise in the model (Inan, Liu & Shehu 2024): the gradient at w + N(0, noise_std^2),
    the step at w. Needs a closure (it moves the weights before the gradient is taken)."""

    norm = "euclidean (l2), gradient at Gaussian-perturbed weights"
    reference = "closed form: same seed, same noise; noise_std = 0 is torch.optim.SGD"
    needs_closure = True

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.01,
        noise_std: float = 0.01,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        *,
        ensemble_dims: int = 0,
    ):
        self._setup(params, lr, momentum, weight_decay, ensemble_dims, noise_std=noise_std)

    def chain(self, group: dict[str, Any]):
        return (AddDecayedWeights(), Momentum())

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        if closure is None:
            raise OptiscopeError("NiMSGD.step needs a closure (the gradient at perturbed weights)")
        loss = perturbed_closure(self, closure, "nim-noise", lambda g: g["noise_std"])
        for group in self.param_groups:
            self._step_group(group)
        return loss


def perturbed_closure(
    opt: EnsembleOptimizer,
    closure: Callable[[], Any],
    stream: str,
    sigma: Callable[[dict[str, Any]], float],
    counter: int | None = None,
) -> Any:
    """Evaluate `closure` at w + sigma xi (xi seeded per member) and restore w exactly."""
    saved = []
    for group in opt.param_groups:
        s = sigma(group)
        for p in group["params"]:
            c = counter if counter is not None else int(opt.state[p].get("step", 0))
            saved.append((p, p.detach().clone()))
            if s != 0:
                p.add_(opt.normal_like(p, f"{stream}/{opt.param_index(p)}", c), alpha=s)
    with torch.enable_grad():
        loss = closure()
    for p, w in saved:
        p.copy_(w)
    return loss
