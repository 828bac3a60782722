"""Lanczos eigenvalues and stochastic Lanczos quadrature against eigvalsh of the dense Hessian."""

from __future__ import annotations

import numpy as np
import torch

from optiscope.probes import hessian_spectral_density, top_hessian_eigenvalues
from optiscope.probes.hessian_operator import rademacher


def gen(seed):
    return torch.Generator().manual_seed(seed)


def test_top_eigenvalues_match_eigvalsh(net, ref):
    loss, params, batch = net()
    evals = torch.linalg.eigvalsh(ref.dense_hessian(loss, params, batch)).flip(0)
    res = top_hessian_eigenvalues(loss, params, k=3, batch=batch, generator=gen(0))
    assert res.hvps == min(64, evals.numel())
    torch.testing.assert_close(res.values, evals[:3], rtol=1e-3, atol=0)


def test_lanczos_survives_an_exhausted_krylov_space():
    """A rank-2 quadratic: the Krylov space ends after 2 steps; the restart keeps T exact."""
    g = gen(3)
    u = torch.linalg.qr(torch.randn(10, 2, generator=g, dtype=torch.float64))[0]
    a = u @ torch.diag(torch.tensor([5.0, 2.0], dtype=torch.float64)) @ u.T
    res = top_hessian_eigenvalues(lambda p: 0.5 * p["x"] @ a @ p["x"], {"x": torch.ones(10, dtype=torch.float64)}, k=3, iterations=10)
    torch.testing.assert_close(res.values, torch.tensor([5.0, 2.0, 0.0], dtype=torch.float64), atol=1e-10, rtol=0)


def test_slq_density_integrates_to_one_and_is_gauss_quadrature(ref):
    loss, params, batch = ref.mlp()
    h = ref.dense_hessian(loss, params, batch)
    sd = hessian_spectral_density(loss, params, vectors=6, steps=10, batch=batch, generator=gen(2))
    assert sd.nodes.shape == (6, 10) and sd.hvps == 60
    torch.testing.assert_close(sd.weights.sum(), torch.tensor(1.0, dtype=torch.float64))
    # Each start vector's quadrature reproduces v^T H^p v / |v|^2 exactly for p < 2 * steps.
    z = rademacher(params, 6, gen(2), 0)
    v = torch.cat([t.reshape(6, -1) for t in z.values()], 1)
    v = v / v.norm(dim=1, keepdim=True)
    for p in range(4):
        exact = ((v @ torch.linalg.matrix_power(h, p)) * v).sum(1)
        quad = (sd.weights * 6 * sd.nodes**p).sum(1)
        torch.testing.assert_close(quad, exact, rtol=1e-8, atol=1e-12)
    grid = torch.linspace(-1, 2, 3001, dtype=torch.float64)
    mass = torch.trapezoid(sd.density(grid, 0.02), grid)
    assert abs(float(mass) - 1) < 1e-3


def test_slq_moments_match_the_dense_spectrum(ref):
    loss, params, batch = ref.attention()
    evals = torch.linalg.eigvalsh(ref.dense_hessian(loss, params, batch))
    n = 64
    sd = hessian_spectral_density(loss, params, vectors=n, steps=12, batch=batch, generator=gen(4))
    for p in (1, 2, 3):
        per_vector = (sd.weights * n * sd.nodes**p).sum(1)
        se = per_vector.std() / np.sqrt(n)
        assert abs(float(sd.moment(p) - (evals**p).mean())) < 4 * float(se)


def test_ensemble_spectral_density_is_per_member(ref):
    loss, params, batch = ref.ensemble(ref.linear_net, 2)
    sd = hessian_spectral_density(loss, params, vectors=3, steps=18, batch=batch, ensemble_dims=1, generator=gen(0))
    assert sd.nodes.shape == (2, 3, 18)
    torch.testing.assert_close(sd.weights.sum((-2, -1)), torch.ones(2, dtype=torch.float64))
    for i in range(2):
        h = ref.dense_hessian(loss, ref.member(params, i), ref.member(batch, i))
        # 18 steps on an 18-dimensional space: the nodes are the exact spectrum.
        torch.testing.assert_close(sd.nodes[i, 0], torch.linalg.eigvalsh(h), atol=1e-8, rtol=1e-6)
