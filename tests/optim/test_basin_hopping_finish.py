"""Basin hopping ends on its accepted point whatever the number of steps (issue 9.4)."""

from __future__ import annotations

import pytest
import torch

from optiscope.optim import BasinHopping, MonotonicBasinHopping


def _quadratic(curvatures: torch.Tensor):
    x = torch.ones(len(curvatures), 2, dtype=torch.float64, requires_grad=True)

    def closure():
        x.grad = curvatures[:, None] * x.detach()
        return 0.5 * curvatures * (x.detach() ** 2).sum(dim=1)

    return x, closure


@pytest.mark.parametrize("steps", [9, 10, 11, 13])
def test_finish_puts_every_member_on_its_accepted_point(steps):
    """hop_interval 3: decisions at steps 4 and 8; after 9..11 steps (mid local search) and 13
    the members are on the accepted point of the last decision, bit for bit."""
    curv = torch.tensor([1.0, 10.0, 0.3], dtype=torch.float64)
    x, closure = _quadratic(curv)
    opt = MonotonicBasinHopping([x], lr=0.5, hop_interval=3, perturbation=0.05, local="sgd",
                                ensemble_dims=1)
    opt.member_seeds = torch.arange(3)
    accepted = None
    for t in range(steps):
        opt.step(closure)
        if t % 4 == 3:  # a decision step: parameters are the accepted point
            accepted = x.detach().clone()
    assert not torch.equal(x.detach(), accepted) or steps % 4 == 0  # mid-search moved away
    opt.finish()
    assert torch.equal(x.detach(), accepted)
    opt.finish()  # idempotent
    assert torch.equal(x.detach(), accepted)


def test_finish_right_after_a_decision_or_before_any_changes_nothing():
    curv = torch.tensor([1.0, 2.0], dtype=torch.float64)
    x, closure = _quadratic(curv)
    opt = BasinHopping([x], lr=0.1, hop_interval=2, perturbation=0.1, local="sgd", ensemble_dims=1)
    opt.step(closure)  # first local step: no decision yet, nothing accepted
    before = x.detach().clone()
    opt.finish()
    assert torch.equal(x.detach(), before)
    opt.step(closure)
    opt.step(closure)  # the first decision
    before = x.detach().clone()
    opt.finish()
    assert torch.equal(x.detach(), before)


def test_other_optimizers_finish_as_a_no_op():
    from optiscope.optim import SGD

    p = torch.ones(3, requires_grad=True)
    opt = SGD([p], lr=0.1)
    p.grad = torch.ones(3)
    opt.step()
    before = p.detach().clone()
    opt.finish()
    assert torch.equal(p.detach(), before)


def _wells(n: int):
    """Members x_i in R^2 on f(x) = sum(x^2 / 10 + sin(3 x)): many wells, so hops change basins."""
    x = torch.linspace(-2.0, 2.0, 2 * n, dtype=torch.float64).reshape(n, 2).clone().requires_grad_(True)

    def closure():
        with torch.enable_grad():
            z = x.detach().requires_grad_(True)
            f = (z ** 2 / 10 + torch.sin(3 * z)).sum(dim=1)
            (g,) = torch.autograd.grad(f.sum(), z)
        x.grad = g
        return f.detach()

    return x, closure


def _run(cls, returns: str, steps: int, m: int = 1, **kw):
    x, closure = _wells(6)
    opt = cls([x], lr=0.05, hop_interval=4, perturbation=1.5, local="sgd", returns=returns,
              decision_batches=m, ensemble_dims=1, **kw)
    opt.member_seeds = torch.arange(6)
    candidates, losses, trajectory = [], [], []
    for t in range(steps):
        if t % (4 + m) == 4:  # a decision's first step: the parameters before it are the candidate
            candidates.append(x.detach().clone())
        loss = opt.step(closure)
        if t % (4 + m) == 3 + m:  # its last step (a deterministic f: every batch gives f(x'))
            losses.append(loss.clone())
        trajectory.append(x.detach().clone())
    opt.finish()
    return x.detach(), torch.stack(candidates), torch.stack(losses), torch.stack(trajectory), opt


@pytest.mark.parametrize(("steps", "m"), [(30, 1), (33, 1), (36, 2)])
def test_returns_best_ends_on_the_lowest_candidate_of_the_same_trajectory(steps, m):
    """Metropolis at a high temperature accepts uphill moves, so the accepted point is often not
    the best; `returns = "best"` ends on the candidate with the lowest loss at its decision,
    found here by hand from the recorded candidates (scipy.optimize.basinhopping's answer),
    and the trajectories of the two settings are the same bit for bit."""
    from optiscope.optim import MetropolisBasinHopping

    end_acc, cand, losses, traj_acc, _ = _run(MetropolisBasinHopping, "accepted", steps, m, temperature=5.0)
    end_best, cand_b, losses_b, traj_best, opt = _run(MetropolisBasinHopping, "best", steps, m, temperature=5.0)
    cand = cand[:len(losses)]  # a decision cut off by the end of the run is not judged
    assert torch.equal(traj_acc, traj_best) and torch.equal(losses, losses_b)
    members = torch.arange(cand.shape[1])
    lowest = cand[losses.argmin(dim=0), members]
    assert torch.equal(end_best, lowest)
    assert torch.equal(opt.param_groups[0]["best_loss"], losses.min(dim=0).values)
    assert not torch.equal(end_acc, end_best)  # the test can tell them apart
    f = lambda z: (z ** 2 / 10 + torch.sin(3 * z)).sum(dim=1)  # noqa: E731
    assert torch.all(f(end_best) <= f(end_acc))


def test_monotonic_best_is_its_accepted_point_on_a_deterministic_loss():
    end_acc, *_ = _run(MonotonicBasinHopping, "accepted", 30)
    end_best, *_ = _run(MonotonicBasinHopping, "best", 30)
    assert torch.equal(end_acc, end_best)


def test_returns_names_its_allowed_values():
    from optiscope.optim.base import HyperparameterError

    with pytest.raises(HyperparameterError, match="returns"):
        BasinHopping([torch.zeros(2, requires_grad=True)], returns="last")
