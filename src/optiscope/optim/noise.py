"""Noise-injecting SGD: gradient noise, Langevin dynamics, noise in the gradient or the model.

All noise is `seeded_normal(seed, stream, step)` per member (optiscope.core.rng), so a run is
reproducible from its seed and member i of an ensemble gets exactly the noise of a loop run with
seed i. Variants (Inan, Liu & Shehu 2024 compare them by their distributions over runs):
- NoisySGD: g + N(0, eta / (1 + t)^gamma), annealed (Neelakantan et al. 2015).
- SGLD: w <- w - lr g + sqrt(2 lr T) xi (Welling & Teh 2011; T = temperature).
- NiGSGD: g + N(0, sigma^2), constant (noise in the gradient).
- NiMSGD: the gradient taken at w + N(0, sigma^2), the step applied at w (noise in the model).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from optiscope.errors import OptiscopeError
from optiscope.optim.base import EnsembleOptimizer, ScaleByLearningRate, chain
from optiscope.optim.hyperparameters import (
    LR,
    MOMENTUM,
    NOISE_STD,
    TEMPERATURE,
    WEIGHT_DECAY,
    Hyperparameter,
    NonNegative,
    Positive,
    declare,
    is_zero,
    member_value,
)
from optiscope.optim.transforms import (
    AddDecayedWeights,
    AddGaussianNoise,
    Momentum,
    annealed_noise,
    constant_noise,
    langevin_noise,
)


class _NoisySGDBase(EnsembleOptimizer):
    """SGD (momentum, L2 decay) with a noise term; subclasses say how much."""

    #: torch.optim.SGD's heavy ball (Momentum reads these; momentum 0 where not declared).
    fixed = {"dampening": 0.0, "nesterov": False}

    def group_defaults(self, hp: dict[str, Any]) -> dict[str, Any]:
        return {"momentum": 0.0, **super().group_defaults(hp)}


class NoisySGD(_NoisySGDBase):
    """SGD with annealed Gaussian gradient noise, variance noise_eta / (1 + t)^noise_gamma
    (Neelakantan et al. 2015, "Adding gradient noise improves learning")."""

    norm = "euclidean (l2) + annealed gradient noise"
    reference = "closed form: same seed, same noise; noise-free limit = torch.optim.SGD"

    hyperparameters = declare(
        LR, MOMENTUM,
        Hyperparameter("noise_eta", NonNegative, 0.01),
        Hyperparameter("noise_gamma", NonNegative, 0.55),
        WEIGHT_DECAY, lr=0.01,
    )

    def chain(self, group: dict[str, Any]):
        noise = AddGaussianNoise(annealed_noise, "gradient-noise")
        return chain(AddDecayedWeights(), noise, Momentum(), ScaleByLearningRate())


class NiGSGD(_NoisySGDBase):
    """Noise in the gradient (Inan, Liu & Shehu 2024): g + N(0, noise_std^2), constant."""

    norm = "euclidean (l2) + constant gradient noise"
    reference = "closed form: same seed, same noise; noise_std = 0 is torch.optim.SGD"

    hyperparameters = declare(LR, NOISE_STD, MOMENTUM, WEIGHT_DECAY, lr=0.01)

    def chain(self, group: dict[str, Any]):
        noise = AddGaussianNoise(constant_noise, "nig-noise")
        return chain(AddDecayedWeights(), noise, Momentum(), ScaleByLearningRate())


class SGLD(_NoisySGDBase):
    """Stochastic gradient Langevin dynamics (Welling & Teh 2011):
    w <- w - lr g + sqrt(2 lr temperature) xi."""

    norm = "euclidean (l2) + Langevin noise"
    reference = "closed form: same seed, same noise; temperature = 0 is torch.optim.SGD"

    hyperparameters = declare(Hyperparameter("lr", Positive, 0.01), TEMPERATURE, WEIGHT_DECAY)

    def chain(self, group: dict[str, Any]):
        noise = AddGaussianNoise(langevin_noise, "langevin-noise")
        return chain(AddDecayedWeights(), noise, ScaleByLearningRate())


class NiMSGD(NiGSGD):
    """Noise in the model (Inan, Liu & Shehu 2024): the gradient at w + N(0, noise_std^2),
    the step at w. Needs a closure (it moves the weights before the gradient is taken).
    Arguments as NiGSGD's."""

    norm = "euclidean (l2), gradient at Gaussian-perturbed weights"
    reference = "closed form: same seed, same noise; noise_std = 0 is torch.optim.SGD"
    needs_closure = True

    def chain(self, group: dict[str, Any]):
        return chain(AddDecayedWeights(), Momentum(), ScaleByLearningRate())

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
    sigma: Callable[[dict[str, Any]], Any],
    counter: int | None = None,
) -> Any:
    """Evaluate `closure` at w + sigma xi (xi seeded per member; sigma a number or per-member
    values) and restore w exactly."""
    saved = []
    for group in opt.param_groups:
        s = sigma(group)
        for p in group["params"]:
            c = counter if counter is not None else int(opt.state[p].get("step", 0))
            saved.append((p, p.detach().clone()))
            if is_zero(s):
                continue
            xi = opt.normal_like(p, f"{stream}/{opt.param_index(p)}", c)
            if isinstance(s, torch.Tensor):
                p.add_(xi * member_value(s, p, opt.ensemble_dims))
            else:
                p.add_(xi, alpha=s)
    with torch.enable_grad():
        loss = closure()
    for p, w in saved:
        p.copy_(w)
    return loss
