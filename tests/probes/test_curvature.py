"""Curvature probes against the dense Hessian from torch.autograd.functional.hessian."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from optiscope.errors import OptiscopeError
from optiscope.probes import (
    hessian_diagonal,
    hessian_spectral_density,
    hessian_trace,
    hvp,
    r_med,
    top_hessian_eigenvalues,
)
from optiscope.probes.curvature import rademacher
from optiscope.probes.members import flatten, unflatten


def gen(seed):
    return torch.Generator().manual_seed(seed)


def test_hvp_equals_dense_hessian_times_vector(net, ref):
    loss, params, batch = net()
    h = ref.dense_hessian(loss, params, batch)
    v = unflatten(torch.randn(h.shape[0], dtype=torch.float64), params)
    out = hvp(lambda p: loss(p, batch), params, v)
    torch.testing.assert_close(flatten(out), h @ flatten(v), rtol=1e-10, atol=1e-12)


def test_exact_diagonal_equals_dense_hessian_diagonal(net, ref):
    loss, params, batch = net()
    h = ref.dense_hessian(loss, params, batch)
    diag = hessian_diagonal(loss, params, "exact", batch=batch, chunk_size=7)
    assert diag.method == "exact" and diag.hvps == h.shape[0]
    torch.testing.assert_close(flatten(diag), h.diagonal(), rtol=1e-5, atol=1e-12)


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


def test_hutchinson_trace_is_the_mean_of_its_quadratic_forms(net, ref):
    """Deterministic: with the same Rademacher draws, value = mean_k z_k^T H z_k."""
    loss, params, batch = net()
    h = ref.dense_hessian(loss, params, batch)
    res = hessian_trace(loss, params, samples=16, batch=batch, generator=gen(5))
    z = rademacher(params, 16, gen(5), 0)
    zf = torch.cat([t.reshape(16, -1) for t in z.values()], 1)
    quad = ((zf @ h) * zf).sum(1)
    torch.testing.assert_close(res.value, quad.mean())
    torch.testing.assert_close(res.stderr, quad.std() / 4)
    assert res.hvps == 16


def test_hutchinson_trace_is_within_its_stated_error_on_average(ref):
    loss, params, batch = ref.mlp()
    true = ref.dense_hessian(loss, params, batch).trace()
    est = [hessian_trace(loss, params, samples=32, batch=batch, generator=gen(s)) for s in range(30)]
    zscores = np.array([float((e.value - true) / e.stderr) for e in est])
    assert abs(zscores.mean()) < 3 / np.sqrt(len(est))  # unbiased: mean z-score ~ N(0, 1/30)
    assert 0.5 < np.sqrt((zscores**2).mean()) < 1.6  # the stated error is the actual error
    assert (np.abs(zscores) < 3).mean() >= 0.9


def test_hutchinson_diagonal_is_within_its_stated_error(ref):
    loss, params, batch = ref.attention()
    true = ref.dense_hessian(loss, params, batch).diagonal()
    est = hessian_diagonal(loss, params, "hutchinson", samples=400, batch=batch, generator=gen(1))
    assert est.method == "hutchinson" and est.samples == 400 and est.hvps == 400
    z = (flatten(est) - true) / flatten(est.stderr)
    assert abs(float(z.mean())) < 4 / np.sqrt(z.numel())
    assert 0.6 < float(z.pow(2).mean().sqrt()) < 1.4
    assert float((z.abs() < 3).double().mean()) >= 0.9


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


def test_r_med_equals_the_statistic_of_the_dense_hessian(net, ref):
    loss, params, batch = net()
    diag = ref.dense_hessian(loss, params, batch).diagonal()
    res = r_med(loss, params, batch=batch)
    assert res.estimator == "exact"
    offset = 0
    for k, t in params.items():
        d = np.abs(diag[offset : offset + t.numel()].numpy())
        offset += t.numel()
        assert float(res[k]) == pytest.approx(d.max() / np.median(d), rel=1e-6)


def test_r_med_records_the_hutchinson_estimator(ref):
    loss, params, batch = ref.mlp()
    res = r_med(loss, params, batch=batch, exact_max_params=10, samples=4, generator=gen(0))
    assert (res.estimator, res.samples, res.hvps) == ("hutchinson", 4, 4)
    assert set(res) == set(params)


def test_ensemble_results_equal_member_by_member(net, ref):
    loss, params, batch = ref.ensemble(net, 3)
    diag = hessian_diagonal(loss, params, "exact", batch=batch, ensemble_dims=1)
    eig = top_hessian_eigenvalues(loss, params, k=2, iterations=40, batch=batch, ensemble_dims=1, generator=gen(0))
    rm = r_med(loss, params, batch=batch, ensemble_dims=1)
    tr = hessian_trace(loss, params, samples=8, batch=batch, ensemble_dims=1, generator=gen(7))
    z = rademacher(params, 8, gen(7), 1)
    for i in range(3):
        p_i, b_i = ref.member(params, i), ref.member(batch, i)
        h = ref.dense_hessian(loss, p_i, b_i)
        one = hessian_diagonal(loss, p_i, "exact", batch=b_i)
        for k in params:
            torch.testing.assert_close(diag[k][i], one[k], rtol=1e-12, atol=1e-14)
        rm_i = r_med(loss, p_i, batch=b_i)
        for k in params:
            torch.testing.assert_close(rm[k][i], rm_i[k])
        torch.testing.assert_close(eig.values[i], torch.linalg.eigvalsh(h).flip(0)[:2], rtol=1e-3, atol=0)
        zf = torch.cat([t[:, i].reshape(8, -1) for t in z.values()], 1)
        torch.testing.assert_close(tr.value[i], ((zf @ h) * zf).sum(1).mean())


def test_ensemble_spectral_density_is_per_member(ref):
    loss, params, batch = ref.ensemble(ref.linear_net, 2)
    sd = hessian_spectral_density(loss, params, vectors=3, steps=18, batch=batch, ensemble_dims=1, generator=gen(0))
    assert sd.nodes.shape == (2, 3, 18)
    torch.testing.assert_close(sd.weights.sum((-2, -1)), torch.ones(2, dtype=torch.float64))
    for i in range(2):
        h = ref.dense_hessian(loss, ref.member(params, i), ref.member(batch, i))
        # 18 steps on an 18-dimensional space: the nodes are the exact spectrum.
        torch.testing.assert_close(sd.nodes[i, 0], torch.linalg.eigvalsh(h), atol=1e-8, rtol=1e-6)


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (lambda l, p, b: hessian_diagonal(l, p, "dense", batch=b), "method must be 'exact' or 'hutchinson'"),
        (lambda l, p, b: hessian_trace(l, p, samples=0, batch=b), "samples must be a positive integer"),
        (lambda l, p, b: hessian_trace(l, p, batch=b, ensemble_dims=2), "ensemble_dims must be 0"),
        (lambda l, p, b: top_hessian_eigenvalues(l, p, k=1000, batch=b), "k must be at most"),
        (lambda l, p, b: r_med(l, p, batch=b, names=["nope"]), "not parameters"),
    ],
)
def test_bad_arguments_are_named(call, needle, ref):
    loss, params, batch = ref.linear_net()
    with pytest.raises(OptiscopeError, match=needle):
        call(loss, params, batch)


def test_both_product_routes_agree(ref):
    """Reverse-over-reverse on a kept graph and vmapped forward-over-reverse give one H v."""
    from optiscope.probes.curvature import HessianOperator

    loss, params, batch = ref.ensemble(ref.attention, 2)
    op = HessianOperator(loss, params, batch=batch, ensemble_dims=1)
    v = rademacher(params, 3, gen(0), 1)
    batched = op(v, batched=True)
    for j in range(3):
        vj = {k: t[j] for k, t in v.items()}
        rev, fwd = op._reverse_hvp(vj), op._forward_hvp(vj)
        for k in params:
            torch.testing.assert_close(rev[k], fwd[k], rtol=1e-9, atol=1e-12)
            torch.testing.assert_close(batched[k][j], fwd[k], rtol=1e-9, atol=1e-12)
    op(vj)
    assert op._single in ("reverse", "forward") and op.products == 4
