"""SGD-Armijo's line search as the paper counts it (issue 9.5): trial points are forward-only, and
the backtracking equals an independent float64 implementation of sls's Armijo search
(Vaswani et al. 2019; IssamLaradji/sls: c = 0.1, beta_b = 0.9, gamma = 2, reset option 1:
eta <- eta * gamma^(1 / n_batches_per_epoch), at most 100 tries, else a step of 1e-6)."""

from __future__ import annotations

import math

import torch

from optiscope.optim import SGDArmijo

A = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=torch.float64)


def loss_of(x: torch.Tensor, k: float) -> torch.Tensor:
    """A non-quadratic loss per member: x^T A x / 2 + k * sum(cos x) (k differs per member)."""
    return 0.5 * torch.einsum("...i,ij,...j->...", x, A, x) + k * torch.cos(x).sum(-1)


def sls_reference(x0: list[float], k: float, steps: int, n: int, c=0.1, beta=0.9, gamma=2.0):
    """One member, plain Python floats and loops: sls's Armijo step, step after step."""
    x, eta_prev, etas = list(x0), 1.0, []
    for _ in range(steps):
        t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
        f = loss_of(t, k)
        (g,) = torch.autograd.grad(f, t)
        f, g = f.item(), g.tolist()
        grad_sq = sum(v * v for v in g)
        eta = eta_prev * gamma ** (1.0 / n)
        found = False
        for _ in range(100):
            trial = [xi - eta * gi for xi, gi in zip(x, g)]
            if loss_of(torch.tensor(trial, dtype=torch.float64), k).item() <= f - c * eta * grad_sq:
                found = True
                break
            eta *= beta
        x = [xi - (eta if found else 1e-6) * gi for xi, gi in zip(x, g)]
        eta_prev = eta
        etas.append(eta)
    return x, etas


def test_trials_are_forward_only_and_the_search_matches_an_independent_sls():
    ks = [0.0, 3.0, 8.0]
    x0 = [[1.5, -2.0], [0.7, 2.5], [-3.0, 1.0]]
    x = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
    k = torch.tensor(ks, dtype=torch.float64)
    grad_modes: list[bool] = []

    def closure():
        grad_modes.append(torch.is_grad_enabled())
        x.grad = None
        loss = loss_of(x, 0.0) + k * torch.cos(x).sum(-1)
        if torch.is_grad_enabled():
            loss.sum().backward()
        return loss.detach()

    opt = SGDArmijo([x], n_batches_per_epoch=7, ensemble_dims=1)
    etas = []
    for _ in range(6):
        modes_before = len(grad_modes)
        opt.step(closure)
        modes = grad_modes[modes_before:]
        assert modes[0] is True and not any(modes[1:]), modes  # one gradient, then trials
        assert len(modes) >= 2
        etas.append(opt.param_groups[0]["step_size"].clone())
    for i, kk in enumerate(ks):
        ref_x, ref_etas = sls_reference(x0[i], kk, 6, n=7)
        torch.testing.assert_close([float(e[i]) for e in etas], ref_etas, rtol=1e-12, atol=0)
        torch.testing.assert_close(x.detach()[i].tolist(), ref_x, rtol=1e-10, atol=1e-12)
    # the search did backtrack (not just accept eta0 every time)
    assert any(e < 1.0 * 2 ** (1 / 7) * 0.95 for e in torch.stack(etas).flatten().tolist())
    assert math.isfinite(float(x.detach().abs().max()))
