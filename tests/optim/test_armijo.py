"""SGD with Armijo line search against its closed form on quadratics (Vaswani et al. 2019).

On f(x) = a ||x||^2 / 2 the Armijo test f(x - eta g) <= f(x) - c eta ||g||^2 holds iff
eta <= 2 (1 - c) / a, so the accepted step is the largest eta0 beta^j below that bound, with
eta0 = previous step * gamma^(1 / n_batches_per_epoch).
"""

from __future__ import annotations

import math

import pytest
import torch

from optiscope.optim import SGDArmijo
from optiscope.optim.base import HyperparameterError


def expected_step(prev: float, a: float, c=0.1, beta=0.9, gamma=2.0, n=500) -> float:
    eta = prev * gamma ** (1 / n)
    bound = 2 * (1 - c) / a
    j = max(0, math.ceil(math.log(bound / eta) / math.log(beta) - 1e-12))
    return eta * beta**j


def test_each_member_gets_its_own_armijo_step_size_in_closed_form():
    curvatures = torch.tensor([0.5, 3.0, 40.0, 900.0], dtype=torch.float64)
    x = torch.ones(4, 3, dtype=torch.float64, requires_grad=True)
    calls = []

    def closure():
        calls.append(1)
        loss = 0.5 * curvatures * (x.detach() ** 2).sum(dim=1)
        x.grad = curvatures[:, None] * x.detach()
        return loss

    opt = SGDArmijo([x], ensemble_dims=1)
    prev = torch.ones(4, dtype=torch.float64)
    for _ in range(3):
        start = x.detach().clone()
        opt.step(closure)
        eta = torch.tensor([expected_step(float(p), float(a)) for p, a in zip(prev, curvatures)],
                           dtype=torch.float64)
        torch.testing.assert_close(opt.param_groups[0]["step_size"], eta)
        torch.testing.assert_close(x.detach(), start * (1 - eta * curvatures)[:, None])
        prev = eta
    # Tries are vectorised: one closure call per try for all members, as many tries as the
    # member that needs the most (here the stiffest, a = 900).
    tries_first = 1 + math.ceil(math.log(1.8 / 900 / 2 ** (1 / 500)) / math.log(0.9))
    assert len(calls) >= 3 + tries_first


def test_ensemble_member_equals_single_run(eq):
    """Member i of the ensemble takes the steps of SGDArmijo alone on seed i (20 teacher-forced
    steps; measured update error 0, tolerance 1e-5), and the line search costs evaluations."""
    hp = {"n_batches_per_epoch": 40}
    trainer = eq.assert_ensemble_matches(
        SGDArmijo, hp, eq.seeds, eq.ours(SGDArmijo, hp), 20, tol=1e-5
    )
    # at least one trial point per step beyond the gradient (counted as gradient evaluations
    # or, once trials are forward-only, as function evaluations)
    assert trainer.grad_evals + getattr(trainer, "func_evals", 0) > 2 * 20


def test_bad_armijo_settings_name_the_argument():
    p = [torch.zeros(2, requires_grad=True)]
    for kwargs, name in [({"c": 1.5}, "c"), ({"beta": 0.0}, "beta"), ({"init_step_size": -1.0}, "init_step_size")]:
        with pytest.raises(HyperparameterError, match=name):
            SGDArmijo(p, **kwargs)
