"""SGD with a stochastic Armijo line search (Vaswani et al. 2019, "Painless stochastic gradient",
arXiv 1905.09997; the authors' `sls` package): the comparator in Orabona's argument that Adam's
defaults lose to a line-searched SGD on simple problems.

Per step: eta <- eta_prev * gamma^(1 / n_batches_per_epoch); then eta <- beta eta until
f_i(w - eta g) <= f_i(w) - c eta ||g||^2 (at most `max_tries` tries; if none passes, the step
is taken with 1e-6, as sls does). Trial points are forward-only: the closure is called under
`torch.no_grad()` (torch convention: it then computes the loss only, and the engines count it as
a function evaluation, not a gradient evaluation). Each member of an ensemble has its own eta and its own
acceptance: the tries are vectorised over members (the closure evaluates all of them at once),
and a member that has passed keeps its step while the others shrink theirs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from optiscope.errors import OptiscopeError
from optiscope.optim.base import EnsembleOptimizer
from optiscope.optim.hyperparameters import (
    AtLeastOne,
    Count,
    Hyperparameter,
    OpenFraction,
    Positive,
    declare,
    member_value,
)


class SGDArmijo(EnsembleOptimizer):
    """SGD whose step size comes from a backtracking Armijo line search on the minibatch."""

    norm = "euclidean (l2), step size by Armijo line search"
    reference = "sls's Armijo search re-implemented in float64; closed form on quadratics"
    #: One gradient; the line-search trials are forward-only function evaluations (counted apart).
    grad_evals_per_step = 1
    needs_closure = True
    #: The search runs until every member has its step: the ensemble's evaluation count is the
    #: most any member needed, so cells are not packed into one ensemble (engine.packing).
    variable_evaluations = True

    hyperparameters = declare(
        Hyperparameter("init_step_size", Positive, 1.0),
        Hyperparameter("c", OpenFraction, 0.1),
        Hyperparameter("beta", OpenFraction, 0.9),
        Hyperparameter("gamma", AtLeastOne, 2.0),
        Hyperparameter("n_batches_per_epoch", Count, 500),
        Hyperparameter("max_tries", Count, 100),
    )

    def group_defaults(self, hp: dict[str, Any]) -> dict[str, Any]:
        return {"lr": hp["init_step_size"], **super().group_defaults(hp)}

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        if closure is None:
            raise OptiscopeError("SGDArmijo.step needs a closure that re-evaluates the loss")
        loss = self.evaluate(closure)
        group = self.param_groups[0]
        params = self.params_with_grad()
        grads = [p.grad.detach().clone() for p in params]
        start = [p.detach().clone() for p in params]
        loss0 = torch.as_tensor(loss).detach()

        def hyper(key: str) -> Any:  # a number, or per member in the losses' dtype
            return member_value(group[key], loss0, self.ensemble_dims)

        if "step_size" not in group:
            group["step_size"] = torch.zeros_like(loss0).add_(hyper("init_step_size"))
        growth = member_value(group["gamma"], loss0, self.ensemble_dims, cast=False) ** (
            1.0 / group["n_batches_per_epoch"]
        )
        eta = group["step_size"] * (growth.to(loss0.dtype) if torch.is_tensor(growth) else growth)
        grad_sq = self.member_sq_norm(grads).to(loss0.dtype)
        searching = grad_sq >= 1e-16  # sls skips the search when ||g|| < 1e-8
        found = ~searching
        c, beta = hyper("c"), hyper("beta")
        for _ in range(group["max_tries"]):
            self._move(params, start, grads, eta)
            with torch.no_grad():  # forward only (a function evaluation, contract of `step`)
                trial = torch.as_tensor(closure()).detach()
            ok = trial <= loss0 - c * eta * grad_sq
            newly = ok & ~found
            found = found | newly
            if bool(found.all()):
                break
            eta = torch.where(found, eta, eta * beta)
        step = torch.where(found, eta, torch.full_like(eta, 1e-6))
        self._move(params, start, grads, step)
        group["step_size"] = eta
        group["lr"] = float(eta.mean())  # for display / schedulers reading `lr`
        return loss

    def _move(self, params, start, grads, eta: torch.Tensor) -> None:
        """w <- w0 - eta g, eta per member."""
        for p, w, g in zip(params, start, grads, strict=True):
            p.copy_(w - self.per_member(eta.to(p.dtype), p) * g)
