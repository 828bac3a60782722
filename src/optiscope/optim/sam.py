"""Sharpness-aware minimisation, wrapping any base optimizer (Foret et al. 2021; ASAM: Kwon et
al. 2021).

One step: g = grad L(w); e = rho T^2 g / (||T g||_2 + 1e-12) (T = 1 for SAM, |w| + eta for
ASAM), with the norm taken over all tensors of a member; g' = grad L(w + e); restore w; the base
optimizer steps with g'. Two gradient evaluations per step, both counted by the engines.

In a config the base is a name and its hyperparameters a table (TOML-expressible and checked
against the base's signature):

    [[optimizers]]
    name = "sam"
    base = "sgd"                                   # any built-in or "module:Class"
    rho = 0.05
    lr = [0.03, 0.1]                               # shorthand for the base's lr (grids work)
    base_hyperparameters = { momentum = 0.9 }
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, ClassVar

import torch
from torch import Tensor
from torch.optim import Optimizer

from optiscope.errors import OptiscopeError
from optiscope.optim.base import EnsembleOptimizer
from optiscope.optim.hyperparameters import (
    Hyperparameter,
    HyperparameterError,
    NonNegative,
    check_per_member_names,
    checked,
    has_tensor,
    per_member_names,
    declare,
    member_value,
)


BASE = Hyperparameter("base", str, "sgd")
RHO = Hyperparameter("rho", NonNegative, 0.05)
#: Shorthand for the base optimizer's lr (None: the base's default or base_hyperparameters').
BASE_LR = Hyperparameter("lr", NonNegative | None, None)
BASE_HYPERPARAMETERS = Hyperparameter("base_hyperparameters", dict[str, Any] | None, None)


def build_base(
    base: str | type[Optimizer],
    params: Any,
    lr: float | None,
    base_hyperparameters: dict[str, Any] | None,
    ensemble_dims: int,
) -> Optimizer:
    """The wrapped optimizer, its hyperparameters validated against its signature."""
    from optiscope.optim.registry import is_ensemble_aware, resolve_optimizer
    from optiscope.settings import validate_settings

    if isinstance(base, str):
        try:
            cls = resolve_optimizer(base)
        except OptiscopeError as exc:
            raise HyperparameterError(f"base: {exc}") from None
    elif isinstance(base, type) and issubclass(base, Optimizer):
        cls = base
    else:
        raise HyperparameterError(f"base must be an optimizer name or class, got {base!r}")
    name = base if isinstance(base, str) else cls.__name__
    if getattr(cls, "needs_closure", False):
        raise HyperparameterError(
            f"base: '{name}' needs its own closure; SAM wraps first-order optimizers "
            "(sgd, adam, ...)"
        )
    if base_hyperparameters is not None and not isinstance(base_hyperparameters, dict):
        raise HyperparameterError(
            f"base_hyperparameters must be a table of the base's settings, got "
            f"{base_hyperparameters!r}"
        )
    hp = dict(base_hyperparameters or {})
    if lr is not None:
        hp["lr"] = lr
    # per-member tensors are checked by an ensemble-aware base's own constructor
    members = {k: v for k, v in hp.items() if has_tensor(v)}
    if members and not is_ensemble_aware(cls):
        raise HyperparameterError(
            f"base_hyperparameters: '{name}' takes no per-member values ({sorted(members)})"
        )
    try:
        hp = validate_settings(
            "optimizer", name, cls.__init__, {k: v for k, v in hp.items() if k not in members}
        )
    except OptiscopeError as exc:
        raise HyperparameterError(f"base_hyperparameters: {exc}") from None
    hp.update(members)
    if is_ensemble_aware(cls):
        return cls(params, **hp, ensemble_dims=ensemble_dims)
    if ensemble_dims != 0:
        raise HyperparameterError(
            f"base: '{name}' is not ensemble-aware, so it cannot train an ensemble "
            "(ensemble_dims=1); use a built-in optimizer as the base"
        )
    return cls(params, **hp)


class SAM(EnsembleOptimizer):
    """SAM around a base optimizer (default SGD); `rho` is the neighbourhood radius.

    `base`: optimizer name ("sgd", "adam", "module:Class") or class; `base_hyperparameters`:
    its settings; `lr`: shorthand for the base's lr. The base shares this optimizer's param
    groups and state, so schedulers and state_dict work as usual.
    """

    norm = "base's norm, at the worst-case point of an l2 ball"
    reference = "pytorch_optimizer.SAM (davda54/sam's algorithm)"
    grad_evals_per_step = 2
    needs_closure = True
    wants_roles = True  # passed through to a base that reads roles (steepest, muon)
    adaptive: ClassVar[bool] = False

    hyperparameters = declare(BASE, RHO, BASE_LR, BASE_HYPERPARAMETERS)

    def configure(self, params: Iterable[Any], given: dict[str, Any], ensemble_dims: int) -> None:
        check_per_member_names(type(self).__name__, given, per_member_names(type(self)))
        checked(type(self)._settings_init, given)
        defaults = {"rho": given["rho"], "eta": given.get("eta", 0.0)}  # SAM: no eta, plain ball
        EnsembleOptimizer.__init__(self, params, defaults, ensemble_dims=ensemble_dims)
        self.base = build_base(
            given["base"], self.param_groups, given["lr"], given["base_hyperparameters"],
            ensemble_dims,
        )
        self.param_groups = self.base.param_groups
        self.state = self.base.state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load, then share the new groups and state with the base again (torch replaces them)."""
        super().load_state_dict(state_dict)
        self.base.param_groups = self.param_groups
        self.base.state = self.state

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        if closure is None:
            raise OptiscopeError(f"{type(self).__name__}.step needs a closure (two gradients)")
        with torch.enable_grad():
            loss = closure()
        params = self.params_with_grad()
        group = self.param_groups[0]
        ed = self.ensemble_dims
        if self.adaptive:
            scales = [p.abs().add(member_value(group["eta"], p, ed)) for p in params]
            norm = self.member_sq_norm([t * p.grad for t, p in zip(scales, params)]).sqrt()
        else:
            scales = [None] * len(params)
            norm = self.member_sq_norm([p.grad for p in params]).sqrt()
        factor = member_value(group["rho"], norm, ed) / (norm + 1e-12)
        saved: list[Tensor] = []
        for t, p in zip(scales, params, strict=True):
            saved.append(p.detach().clone())
            e = p.grad * self.per_member(factor, p)
            p.add_(e * t.square() if t is not None else e)
        with torch.enable_grad():
            closure()
        for p, w in zip(params, saved, strict=True):
            p.copy_(w)
        if isinstance(self.base, EnsembleOptimizer):
            self.base.member_seeds = self.member_seeds
        self.base.step()
        return loss


class ASAM(SAM):
    """Adaptive SAM (Kwon et al. 2021): the ball is scaled elementwise by T_w = |w| + eta."""

    norm = "base's norm, at the worst-case point of a |w|-scaled l2 ball"
    reference = "pytorch_optimizer.SAM(adaptive=True) (eta = 0)"
    adaptive = True

    hyperparameters = declare(
        BASE, RHO, Hyperparameter("eta", NonNegative, 0.01), BASE_LR, BASE_HYPERPARAMETERS, rho=0.5
    )
