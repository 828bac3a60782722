"""SGD with a stochastic Armijo line search (Vaswani et al. 2019, "Painless stochastic gradient",
arXiv 1905.09997; the authors' `sls` package): the comparator in Orabona's argument that Adam's
defaults lose to a line-searched SGD on simple problems.

Per step: eta <- eta_prev * gamma^(1 / n_batches_per_epoch); then eta <- beta eta until
f_i(w - eta g) <= f_i(w) - c eta ||g||^2 (at most `max_tries` tries; if none passes, the step
is taken with 1e-6, as sls does). Each member of an ensemble has its own eta and its own
acceptance: the tries are vectorised over members (the closure evaluates all of them at once),
and a member that has passed keeps its step while the others shrink theirs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from optiscope.errors import OptiscopeError
from optiscope.optim.base import EnsembleOptimizer, check_hyperparameter


class SGDArmijo(EnsembleOptimizer):
    """SGD whose step size comes from a backtracking Armijo line search on the minibatch."""

    norm = "euclidean (l2), step size by Armijo line search"
    reference = "closed form on quadratics (accepted eta = largest eta0 beta^j <= 2 (1 - c) / a)"
    grad_evals_per_step = "1 + line-search tries (>= 2; counted)"
    needs_closure = True

    def __init__(
        self,
        params: Iterable[Any],
        init_step_size: float = 1.0,
        c: float = 0.1,
        beta: float = 0.9,
        gamma: float = 2.0,
        n_batches_per_epoch: int = 500,
        max_tries: int = 100,
        *,
        ensemble_dims: int = 0,
    ):
        check_hyperparameter("init_step_size", init_step_size, 0.0, low_open=True)
        check_hyperparameter("c", c, 0.0, 1.0, low_open=True, high_open=True)
        check_hyperparameter("beta", beta, 0.0, 1.0, low_open=True, high_open=True)
        check_hyperparameter("gamma", gamma, 1.0)
        check_hyperparameter("n_batches_per_epoch", n_batches_per_epoch, 1)
        check_hyperparameter("max_tries", max_tries, 1)
        defaults = dict(
            lr=init_step_size, init_step_size=init_step_size, c=c, beta=beta, gamma=gamma,
            n_batches_per_epoch=int(n_batches_per_epoch), max_tries=int(max_tries),
        )
        super().__init__(params, defaults, ensemble_dims=ensemble_dims)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        if closure is None:
            raise OptiscopeError("SGDArmijo.step needs a closure that re-evaluates the loss")
        with torch.enable_grad():
            loss = closure()
        group = self.param_groups[0]
        params = self.params_with_grad()
        grads = [p.grad.detach().clone() for p in params]
        start = [p.detach().clone() for p in params]
        loss0 = torch.as_tensor(loss).detach()
        if "step_size" not in group:
            group["step_size"] = torch.full_like(loss0, group["init_step_size"])
        eta = group["step_size"] * group["gamma"] ** (1.0 / group["n_batches_per_epoch"])
        grad_sq = self.member_sq_norm(grads).to(loss0.dtype)
        searching = grad_sq >= 1e-16  # sls skips the search when ||g|| < 1e-8
        found = ~searching
        for _ in range(group["max_tries"]):
            self._move(params, start, grads, eta)
            with torch.enable_grad():
                trial = torch.as_tensor(closure()).detach()
            ok = trial <= loss0 - group["c"] * eta * grad_sq
            newly = ok & ~found
            found = found | newly
            if bool(found.all()):
                break
            eta = torch.where(found, eta, eta * group["beta"])
        step = torch.where(found, eta, torch.full_like(eta, 1e-6))
        self._move(params, start, grads, step)
        group["step_size"] = eta
        group["lr"] = float(eta.mean())  # for display / schedulers reading `lr`
        return loss

    def _move(self, params, start, grads, eta: torch.Tensor) -> None:
        """w <- w0 - eta g, eta per member."""
        for p, w, g in zip(params, start, grads, strict=True):
            p.copy_(w - self.per_member(eta.to(p.dtype), p) * g)
