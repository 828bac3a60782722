"""Basin hopping over a noisy SGD local search (Wales & Doye 1997; scipy.optimize.basinhopping;
the variants compared by Inan, Liu & Shehu 2024).

The schedule, in steps (k = `hop_interval`):
- k local steps of SGD (`local`: plain 'sgd', 'nig' noise in the gradient, or 'nim' noise in
  the model) from the starting point;
- a *decision*: the current point x' is compared with the last accepted point x and accepted
  by the rule below. It is judged on `decision_batches` = K minibatches: the decision takes K
  steps, each evaluating f(x') and f(x) on that step's minibatch (two loss evaluations, both
  counted; the parameters stay at x' in between), and compares the means over the K batches.
  K = 1 (the default, and scipy's scheme on a deterministic f) judges on one minibatch, whose
  noise on a network can exceed the difference being judged; a larger K averages it out.
  The rules:
  'always' (bh), 'monotonic' (monotonic_bh: iff f(x') < f(x)) or 'metropolis' (metropolis_bh:
  with probability min(1, exp(-(f(x') - f(x)) / temperature))). The first decision accepts.
  After it the parameters are the accepted point: a rejecting decision puts them back exactly.
- the next local phase starts from the accepted point moved by N(0, perturbation^2) (the hop).
So a cycle is k + K steps and k + 2K gradient evaluations (the first decision, which accepts,
evaluates only x': K). In an ensemble every member decides
for itself (vectorised); all noise, and the Metropolis draws, are keyed on the member seeds.
A run ends on the accepted point whatever its length: `finish()` (called by the engines after
the last step) puts every member back on its last accepted point, so a run that stops mid-search
reports the point basin hopping would return, not the unfinished local search. With
`returns = "best"` it puts every member on the best point instead: the candidate (end of a local
search) with the lowest loss at its decision (the mean over its `decision_batches`), accepted or not, which is what
scipy.optimize.basinhopping returns (its `lowest_optimization_result`). The trajectory is the
same either way (the choice acts only in `finish()`), so two cells differing only in `returns`
compare the final and the best point of the same runs, seed by seed. Under monotonic acceptance
the two coincide on a deterministic loss (a candidate is accepted iff it beats the accepted
point, so the accepted point is always the lowest so far); with noise in the loss, or under
Metropolis or "always" acceptance, they differ.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import torch

from optiscope.errors import OptiscopeError
from optiscope.optim.base import EnsembleOptimizer, ScaleByLearningRate, chain
from optiscope.optim.hyperparameters import (
    LR,
    NOISE_STD,
    Count,
    Hyperparameter,
    NonNegative,
    Positive,
    declare,
    is_zero,
    member_value,
    without,
)
from optiscope.optim.noise import perturbed_closure
from optiscope.optim.transforms import AddGaussianNoise, constant_noise

Acceptance = Literal["always", "monotonic", "metropolis"]
Local = Literal["sgd", "nig", "nim"]
Returns = Literal["accepted", "best"]


class BasinHopping(EnsembleOptimizer):
    """Basin hopping with a choice of acceptance rule (see the module docstring)."""

    norm = "euclidean (l2) local search + hops"
    reference = "closed forms: rejection restores the accepted point; same seed, same noise"
    #: One per local step; a decision step takes two, so a cycle of hop_interval + K steps takes
    #: hop_interval + 2K (the engines count and store the real number).
    grad_evals_per_step = 1
    needs_closure = True

    hyperparameters = declare(
        LR,
        Hyperparameter("hop_interval", Count, 20),
        Hyperparameter("perturbation", NonNegative, 0.01),
        Hyperparameter("local", Local, "nig"),
        NOISE_STD,
        Hyperparameter("acceptance", Acceptance, "always"),
        Hyperparameter("temperature", Positive, 0.01),
        Hyperparameter("decision_batches", Count, 1),
        Hyperparameter("returns", Returns, "accepted"),
        lr=0.01,
    )

    def chain(self, group: dict[str, Any]):
        """The local search: SGD, with gradient noise keyed on the hop counter for 'nig'."""
        if group["local"] == "nig":
            noise = AddGaussianNoise(constant_noise, "bh-nig", counter=lambda g: self._counter())
            return chain(noise, ScaleByLearningRate())
        return chain(ScaleByLearningRate())

    def finish(self) -> None:
        """Put every member on its last accepted point, or its best candidate with `returns =
        "best"` (a no-op before the first decision, which accepts whatever the first local search
        reached; with "accepted", also right after a decision)."""
        key = "best" if self.param_groups[0]["returns"] == "best" else "accepted"
        for p in self._all():
            point = self.state[p].get(key)
            if point is not None:
                p.data.copy_(point)

    # -- bookkeeping on the first group (carried by state_dict) ---------------------------
    def _counter(self) -> int:
        return int(self.param_groups[0].setdefault("bh_step", 0))

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        if closure is None:
            raise OptiscopeError(f"{type(self).__name__}.step needs a closure")
        group = self.param_groups[0]
        c = self._counter()
        k, m = group["hop_interval"], group["decision_batches"]
        phase = c % (k + m)
        if phase >= k:
            loss = self._decide(closure, c, phase - k, m)
        else:
            if phase == 0 and c > 0:
                self._hop(c)
            loss = self._local_step(closure, c)
        group["bh_step"] = c + 1
        return loss

    def _all(self) -> list[torch.Tensor]:
        return [p for g in self.param_groups for p in g["params"]]

    def _hop(self, c: int) -> None:
        s = self.param_groups[0]["perturbation"]
        if is_zero(s):
            return
        for p in self._all():
            xi = self.normal_like(p, f"bh-hop/{self.param_index(p)}", c)
            if isinstance(s, torch.Tensor):  # per member
                p.add_(xi * member_value(s, p, self.ensemble_dims))
            else:
                p.add_(xi, alpha=s)

    def _local_step(self, closure: Callable[[], Any], c: int) -> Any:
        first = self.param_groups[0]
        if first["local"] == "nim":
            sigma = first["noise_std"]
            loss = perturbed_closure(self, closure, "bh-nim", lambda g: sigma, counter=c)
        else:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            self._step_group(group)
        return loss

    def _decide(self, closure: Callable[[], Any], c: int, j: int, m: int) -> Any:
        """Decision step j of m: add f(x') and f(x) on this step's minibatch to the running sums;
        at the last one, judge the means and leave the parameters on the accepted point."""
        group = self.param_groups[0]
        with torch.enable_grad():
            loss_new = torch.as_tensor(closure()).detach()
        params = self._all()
        first = "accepted" not in self.state[params[0]]
        new_sum = loss_new if j == 0 else group["decision_new"] + loss_new
        group["decision_new"] = new_sum
        if j == m - 1:  # the candidate x' is judged: keep it if it is the lowest so far
            self._track_best(params, new_sum / m)
        if first:  # the first decision accepts (after its m steps)
            if j == m - 1:
                for p in params:
                    self.state[p]["accepted"] = p.detach().clone()
                group["accepts"] = torch.ones_like(loss_new)
            return loss_new
        current = [p.detach().clone() for p in params]
        for p in params:
            p.copy_(self.state[p]["accepted"])
        with torch.enable_grad():
            loss_old = torch.as_tensor(closure()).detach()
        old_sum = loss_old if j == 0 else group["decision_old"] + loss_old
        group["decision_old"] = old_sum
        if j < m - 1:  # not the last batch: back to x' (bit for bit) for the next one
            for p, x_new in zip(params, current, strict=True):
                p.copy_(x_new)
            return loss_new
        accept = self.accept(new_sum / m, old_sum / m, c)
        for p, x_new in zip(params, current, strict=True):
            chosen = torch.where(self.per_member(accept, p), x_new, p)
            p.copy_(chosen)
            self.state[p]["accepted"] = chosen.clone()
        group["accepts"] = group.get("accepts", torch.zeros_like(loss_new)) + accept.to(loss_new)
        return loss_new

    def _track_best(self, params: list[torch.Tensor], loss_new: torch.Tensor) -> None:
        """Keep each member's lowest-loss candidate so far (a non-finite loss never counts)."""
        group = self.param_groups[0]
        best_loss = group.get("best_loss")
        finite = torch.isfinite(loss_new)
        if best_loss is None:
            better = finite
            best_loss = torch.full_like(loss_new, float("inf"))
        else:
            better = finite & (loss_new < best_loss)
        group["best_loss"] = torch.where(better, loss_new, best_loss)
        for p in params:
            if "best" not in self.state[p]:
                self.state[p]["best"] = p.detach().clone()
            else:
                self.state[p]["best"] = torch.where(self.per_member(better, p), p.detach(), self.state[p]["best"])

    def accept(self, loss_new: torch.Tensor, loss_old: torch.Tensor, c: int) -> torch.Tensor:
        """Per-member acceptance (bool, shape of the losses); a non-finite new loss rejects."""
        rule = self.param_groups[0]["acceptance"]
        finite = torch.isfinite(loss_new)
        if rule == "always":
            return finite
        better = loss_new < loss_old
        if rule == "monotonic":
            return better & finite
        u = self.member_uniform("bh-metropolis", c).to(loss_new.device)
        t = member_value(self.param_groups[0]["temperature"], loss_new, self.ensemble_dims, cast=False)
        prob = torch.exp(-(loss_new - loss_old).double() / t).clamp(max=1.0)
        return (better | (u.double() < prob)) & finite


class MonotonicBasinHopping(BasinHopping):
    """Monotonic basin hopping (Leary 2000): a hop is kept only if it lowers the loss."""

    hyperparameters = without(BasinHopping.hyperparameters, "acceptance", "temperature")
    fixed = {"acceptance": "monotonic"}


class MetropolisBasinHopping(BasinHopping):
    """Metropolis basin hopping (Wales & Doye 1997; scipy's default acceptance)."""

    hyperparameters = without(BasinHopping.hyperparameters, "acceptance")
    fixed = {"acceptance": "metropolis"}
