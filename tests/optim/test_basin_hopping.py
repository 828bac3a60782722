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
    ({"lr": -0.1}, "lr"),
])
def test_bad_basin_hopping_settings_name_the_argument(kwargs, name):
    with pytest.raises(HyperparameterError, match=name):
        BasinHopping([torch.zeros(2, requires_grad=True)], **kwargs)
