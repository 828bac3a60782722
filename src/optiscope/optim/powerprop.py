"""Powerpropagation as an optimizer (Schwarz et al. 2021, "Powerpropagation: A sparsity inducing
weight reparameterisation"): train w = v |v|^(alpha - 1) by stepping a base optimizer in v.

The paper rewrites each weight as w = v |v|^(alpha - 1) and trains v. The gradient in v is
alpha |v|^(alpha - 1) dL/dw, so to first order gradient descent in v is gradient descent in w
preconditioned by alpha^2 |w|^(2 (alpha - 1) / alpha): small weights barely move and a weight at
zero stays there ("rich get richer"), which is what makes the solutions prunable (Pascanu et al.
2025 use it as their example of an optimizer chosen for a property of the solution).

This optimizer is that reparametrised training, exactly, without changing the model: it keeps the
latent v of every tensor in its state, maps the gradient to v, lets the base optimizer take its
step in v (momentum, Adam's moments and weight decay all act on v, as they would on the
reparametrised model's parameters) and writes w = sign(v) |v|^alpha back. Training the explicitly
reparametrised model with torch.optim therefore gives the same w trajectory
(tests/optim/test_powerprop.py checks it in float64 for SGD with momentum and for Adam).

Two choices of this implementation, both documented in the study that uses it:
- The model keeps its own initialisation of w (v0 = sign(w0) |w0|^(1/alpha)), so a comparison
  with the base optimizer starts from the same weights. (The paper initialises v as the baseline
  initialises w, so its w0 is more peaked at zero.)
- Only matrices and filters (two or more axes per member) are reparametrised; biases and gains
  are stepped by the base as they are (the paper reparametrises weights only, and a bias
  initialised at zero would never move).

    [[optimizers]]
    name = "powerprop"
    base = "sgd"                       # any first-order built-in or "module:Class"
    alpha = 2.0
    lr = 0.05                          # shorthand for the base's lr
    base_hyperparameters = { momentum = 0.9 }
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

from optiscope.errors import OptiscopeError
from optiscope.optim.base import EnsembleOptimizer
from optiscope.optim.hyperparameters import (
    AtLeastOne,
    Hyperparameter,
    HyperparameterError,
    checked,
    declare,
    member_value,
)
from optiscope.optim.sam import BASE, BASE_HYPERPARAMETERS, BASE_LR, build_base

#: The exponent: 1 is the base optimizer itself; Schwarz et al. use 2 to 5.
ALPHA = Hyperparameter("alpha", AtLeastOne, 2.0)


def to_weight(v: Tensor, alpha: Any) -> Tensor:
    """w = v |v|^(alpha - 1) = sign(v) |v|^alpha."""
    return torch.sign(v) * v.abs().pow(alpha)


def to_latent(w: Tensor, alpha: Any) -> Tensor:
    """v = sign(w) |w|^(1 / alpha), the inverse of `to_weight`."""
    return torch.sign(w) * w.abs().pow(1.0 / alpha)


class Powerprop(EnsembleOptimizer):
    """A base optimizer stepping the latent v of w = v |v|^(alpha - 1) (see the module docstring).

    `base`: optimizer name or class (first-order: no closure); `base_hyperparameters`: its
    settings; `lr`: shorthand for the base's lr (a scheduler on this optimizer's groups reaches
    the base); `alpha` >= 1, a number or a per-member tensor.
    """

    norm = "base's norm in v, w = v|v|^(alpha-1): l2 preconditioned by alpha^2 |w|^(2(alpha-1)/alpha) to first order"
    reference = "the explicitly reparametrised model trained with torch.optim (same w, float64)"
    wants_roles = True  # passed through to a base that reads roles (steepest, muon)

    hyperparameters = declare(BASE, ALPHA, BASE_LR, BASE_HYPERPARAMETERS)

    def configure(self, params: Iterable[Any], given: dict[str, Any], ensemble_dims: int) -> None:
        checked(type(self)._settings_init, given)
        _check_first_order(given["base"])
        EnsembleOptimizer.__init__(
            self, params, {"alpha": given["alpha"], "lr": given["lr"]}, ensemble_dims=ensemble_dims
        )
        latent_groups = []
        for group in self.param_groups:
            latents = []
            for p in group["params"]:
                a = self._exponent(group, p)
                v = p.detach().clone() if a is None else to_latent(p.detach(), a)
                self.state[p]["latent"] = v
                latents.append(v)
            passed = {k: val for k, val in group.items() if k not in ("params", "alpha", "lr", "ensemble_dims")}
            latent_groups.append({**passed, "params": latents})
        #: The latent of each parameter, in parameter order (the base may regroup them: Muon
        #: splits a group into its Muon and AdamW parts).
        self._latents = [v for g in latent_groups for v in g["params"]]
        self.base = build_base(
            given["base"], latent_groups, given["lr"], given["base_hyperparameters"], ensemble_dims
        )

    def _exponent(self, group: dict[str, Any], p: Tensor) -> Any:
        """alpha for matrices and filters (broadcast per member); None for vectors and scalars,
        which are not reparametrised."""
        if p.dim() - self.ensemble_dims < 2:
            return None
        alpha = group["alpha"]
        if not isinstance(alpha, Tensor):  # the same pow kernel as a per-member alpha: the same
            alpha = torch.tensor(float(alpha), dtype=torch.float64)  # rounding (no x*x shortcut)
        return member_value(alpha, p, self.ensemble_dims)

    def _latent_pairs(self) -> Iterable[tuple[dict[str, Any], dict[str, Any], Tensor, Tensor]]:
        owner = {id(v): g for g in self.base.param_groups for v in g["params"]}
        params = ((group, p) for group in self.param_groups for p in group["params"])
        for (group, p), v in zip(params, self._latents, strict=True):
            yield group, owner[id(v)], p, v

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = self.evaluate(closure)
        for group, base_group, p, v in self._latent_pairs():
            if group["lr"] is not None and base_group.get("part") != "adamw":  # Muon's AdamW part keeps adamw_lr
                base_group["lr"] = group["lr"]
            if p.grad is None:
                v.grad = None
                continue
            if p.grad.is_sparse:
                raise OptiscopeError("Powerprop does not support sparse gradients")
            a = self._exponent(group, p)
            # dL/dv = alpha |v|^(alpha - 1) dL/dw (pow(0, 0) = 1: alpha = 1 is the base itself)
            v.grad = p.grad.clone() if a is None else p.grad * (a * v.abs().pow(a - 1))
        if isinstance(self.base, EnsembleOptimizer):
            self.base.member_seeds = self.member_seeds
        self.base.step()
        self._write_weights()
        return loss

    def _write_weights(self) -> None:
        for group, _, p, v in self._latent_pairs():
            a = self._exponent(group, p)
            p.copy_(v if a is None else to_weight(v, a))

    def finish(self) -> None:
        finish = getattr(self.base, "finish", None)
        if callable(finish):
            finish()
            with torch.no_grad():
                self._write_weights()

    def state_dict(self) -> dict[str, Any]:
        """This optimizer's state (the latents) with the base's under "base"."""
        return {**super().state_dict(), "base": self.base.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load both; the base keeps stepping the same latent tensors, now holding the loaded v."""
        state_dict = dict(state_dict)
        base_state = state_dict.pop("base", None)
        if base_state is None:
            raise OptiscopeError("Powerprop.load_state_dict: the state has no 'base' entry "
                                 "(it was not saved by Powerprop.state_dict)")
        super().load_state_dict(state_dict)
        with torch.no_grad():
            for _, _, p, v in self._latent_pairs():
                v.copy_(self.state[p]["latent"])
                self.state[p]["latent"] = v
        self.base.load_state_dict(base_state)


def _check_first_order(base: Any) -> None:
    """A base that needs a closure (SAM, line searches, basin hopping) re-evaluates the loss at
    its own trial points, which are in w, not v: not supported."""
    from optiscope.optim.registry import resolve_optimizer

    if isinstance(base, str):
        try:
            cls = resolve_optimizer(base)
        except OptiscopeError as exc:
            raise HyperparameterError(f"base: {exc}") from None
    else:
        cls = base
    if getattr(cls, "needs_closure", False):
        raise HyperparameterError(
            f"base: '{base if isinstance(base, str) else cls.__name__}' needs a closure; Powerprop "
            "wraps first-order optimizers (sgd, adam, adamw, sign_descent, muon, ...)"
        )
