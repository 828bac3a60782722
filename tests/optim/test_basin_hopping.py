"""Basin hopping: the acceptance rules, exact restoration on rejection, counted evaluations."""

from __future__ import annotations

import math

import pytest
import scipy.stats
import torch

from optiscope.optim import BasinHopping, MetropolisBasinHopping, MonotonicBasinHopping
from optiscope.optim.base import HyperparameterError


def quadratic_members(curvatures: torch.Tensor):
    """Members x_i in R^2 with f_i = a_i ||x_i||^2 / 2; closure counts its calls."""
    x = torch.ones(len(curvatures), 2, dtype=torch.float64, requires_grad=True)
    calls = []

    def closure():
        calls.append(1)
        x.grad = curvatures[:, None] * x.detach()
        return 0.5 * curvatures * (x.detach() ** 2).sum(dim=1)

    return x, closure, calls


def test_a_rejecting_decision_restores_the_accepted_point_exactly():
    """lr 0.5: a = 1 descends (accepted), a = 10 blows up (|1 - 5| > 1, rejected)."""
    curv = torch.tensor([1.0, 10.0, 1.0, 10.0], dtype=torch.float64)
    x, closure, calls = quadratic_members(curv)
    opt = MonotonicBasinHopping([x], lr=0.5, hop_interval=3, perturbation=0.0, local="sgd",
                                ensemble_dims=1)
    for _ in range(4):  # 3 local steps, then the first decision (accepts)
        opt.step(closure)
    accepted = x.detach().clone()
    for _ in range(3):  # the next local phase
        opt.step(closure)
    candidate = x.detach().clone()
    opt.step(closure)  # the second decision
    after = x.detach()
    rejected = curv == 10.0
    assert torch.equal(after[rejected], accepted[rejected])  # bit for bit
    assert torch.equal(after[~rejected], candidate[~rejected])
    assert opt.param_groups[0]["accepts"].tolist() == [2.0, 1.0, 2.0, 1.0]
    # evaluations: 3 local + 1 (first decision) + 3 local + 2 (decision: new and accepted point)
    assert len(calls) == 9


def test_always_accepts_but_never_a_diverged_point():
    opt = BasinHopping([torch.zeros(3, 1, requires_grad=True)], ensemble_dims=1)
    new, old = torch.tensor([5.0, float("nan"), 0.0]), torch.tensor([1.0, 1.0, 1.0])
    assert opt.accept(new, old, 0).tolist() == [True, False, True]


def test_metropolis_acceptance_rate_is_exp_minus_delta_over_temperature():
    """4000 members whose loss rises by delta: the accepted fraction is exp(-delta / T)
    (binomial test); members that improve always pass."""
    n, t, delta = 4000, 0.05, 0.04
    opt = MetropolisBasinHopping([torch.zeros(n, 1, requires_grad=True)], temperature=t,
                                 ensemble_dims=1)
    opt.member_seeds = torch.arange(n)
    old = torch.zeros(n)
    accepted = opt.accept(old + delta, old, counter := 7)
    test = scipy.stats.binomtest(int(accepted.sum()), n, math.exp(-delta / t))
    assert test.pvalue > 1e-3, (accepted.float().mean().item(), math.exp(-delta / t))
    assert opt.accept(old - 0.1, old, counter).all()
    assert torch.equal(accepted, opt.accept(old + delta, old, counter))  # seeded: reproducible


def test_hop_perturbs_the_accepted_point_with_the_stated_scale():
    """The first local step of a hop starts from x_acc + perturbation * xi: with lr 0 the
    parameters move by exactly that, normally distributed (Kolmogorov-Smirnov)."""
    n = 3000
    x = torch.zeros(n, 1, dtype=torch.float64, requires_grad=True)

    def closure():
        x.grad = torch.zeros_like(x)
        return torch.zeros(n, dtype=torch.float64)

    opt = BasinHopping([x], lr=0.0, hop_interval=1, perturbation=0.2, local="sgd", ensemble_dims=1)
    opt.member_seeds = torch.arange(n)
    opt.step(closure)  # local
    opt.step(closure)  # decision (accepts 0)
    opt.step(closure)  # hop + local
    assert scipy.stats.kstest(x.detach()[:, 0].numpy(), scipy.stats.norm(0, 0.2).cdf).pvalue > 1e-3


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"acceptance": "greedy"}, "acceptance"), ({"local": "adam"}, "local"),
    ({"hop_interval": 0}, "hop_interval"), ({"temperature": 0.0}, "temperature"),
    ({"lr": -0.1}, "lr"), ({"decision_batches": 0}, "decision_batches"),
])
def test_bad_basin_hopping_settings_name_the_argument(kwargs, name):
    with pytest.raises(HyperparameterError, match=name):
        BasinHopping([torch.zeros(2, requires_grad=True)], **kwargs)


def batch_members(batch_losses):
    """One member x in R^1 with f_t(x) = c_t x^2 / 2 on step t's minibatch: the closure reads
    the step's curvature c_t (a different minibatch each step) and counts its calls; c_t = -1
    on local steps makes each one multiply x by 1 + lr (an ascent, so a hop's x' is worse)."""
    x = torch.ones(1, 1, dtype=torch.float64, requires_grad=True)
    step, calls = [0], []

    def closure():
        calls.append(step[0])
        c = batch_losses[step[0]]
        x.grad = c * x.detach()
        return 0.5 * c * (x.detach() ** 2).sum(dim=1)

    return x, closure, calls, step


def test_decision_on_k_minibatches_judges_the_mean_over_them():
    """K = 3 decision batches: f on each batch is c_t x^2 / 2, so mean f(x') < mean f(x) iff
    x'^2 < x^2 whatever the batches' scales; a batch where c_t < 0 flips a one-batch decision
    but not the three-batch mean. Replays by hand against the rule's closed form."""
    # steps: 0-1 local, 2-4 first decision (accepts), 5-6 local, 7-9 decision
    curv = [-1.0, -1.0, 1.0, 1.0, 1.0, -1.0, -1.0, -0.5, 2.0, 2.0]
    x, closure, calls, step = batch_members(curv)
    opt = MonotonicBasinHopping([x], lr=0.1, hop_interval=2, perturbation=0.0, local="sgd",
                                decision_batches=3, ensemble_dims=1)
    trace = []
    for t in range(10):
        step[0] = t
        opt.step(closure)
        trace.append(x.detach().clone())
    # local steps see c = -1, so each multiplies x by 1.1: x' = 1.1^2 x_acc is worse
    x_acc = torch.tensor([[1.1 ** 2]], dtype=torch.float64)
    assert torch.allclose(trace[4], x_acc)  # the first decision accepted the first search
    x_new = trace[6]  # the local search's end, x'
    assert torch.allclose(x_new, x_acc * 1.1 ** 2)
    assert torch.equal(trace[7], x_new) and torch.equal(trace[8], x_new)  # stays at x' while judging
    # mean over batches 7-9 of c_t (x'^2 - x^2) / 2 = (x'^2 - x^2) * 3.5 / 6 > 0: rejected,
    # though batch 7 alone (c = -0.5) would have accepted
    assert torch.equal(trace[9], trace[4])
    assert opt.param_groups[0]["accepts"].tolist() == [1.0]
    # evaluations: 2 local + 3 (first decision: x' only) + 2 local + 3 * 2
    assert len(calls) == 13


def test_one_decision_batch_is_the_former_single_minibatch_rule():
    """decision_batches = 1 reproduces the one-batch decision: batch 7 alone (c < 0) accepts."""
    curv = [-1.0, -1.0, 1.0, -1.0, -1.0, -0.5]
    x, closure, calls, step = batch_members(curv)
    opt = MonotonicBasinHopping([x], lr=0.1, hop_interval=2, perturbation=0.0, local="sgd",
                                ensemble_dims=1)
    for t in range(6):  # 0-1 local, 2 first decision, 3-4 local, 5 decision
        step[0] = t
        opt.step(closure)
    assert torch.allclose(x.detach(), torch.tensor([[1.1 ** 4]], dtype=torch.float64))
    assert opt.param_groups[0]["accepts"].tolist() == [2.0]
    assert len(calls) == 7


def test_a_run_ending_mid_decision_finishes_on_the_accepted_point():
    curv = [-1.0, -1.0, 1.0, 1.0, 1.0, -1.0, -1.0, 1.0, 1.0]
    x, closure, calls, step = batch_members(curv)
    opt = MonotonicBasinHopping([x], lr=0.1, hop_interval=2, perturbation=0.0, local="sgd",
                                decision_batches=3, ensemble_dims=1)
    for t in range(9):  # ends after the 2nd of 3 decision steps of the second decision
        step[0] = t
        opt.step(closure)
    opt.finish()
    assert torch.allclose(x.detach(), torch.tensor([[1.1 ** 2]], dtype=torch.float64))
