"""The Hessian diagonal, R_med and the Hutchinson trace against the dense Hessian."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from optiscope.core.members import flatten_params
from optiscope.probes import (
    hessian_diagonal,
    hessian_trace,
    r_med,
)
from optiscope.probes.hessian_operator import rademacher


def gen(seed):
    return torch.Generator().manual_seed(seed)


def test_exact_diagonal_equals_dense_hessian_diagonal(net, ref):
    loss, params, batch = net()
    h = ref.dense_hessian(loss, params, batch)
    diag = hessian_diagonal(loss, params, "exact", batch=batch, chunk_size=7)
    assert diag.method == "exact" and diag.hvps == h.shape[0]
    torch.testing.assert_close(flatten_params(diag), h.diagonal(), rtol=1e-5, atol=1e-12)


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
    z = (flatten_params(est) - true) / flatten_params(est.stderr)
    assert abs(float(z.mean())) < 4 / np.sqrt(z.numel())
    assert 0.6 < float(z.pow(2).mean().sqrt()) < 1.4
    assert float((z.abs() < 3).double().mean()) >= 0.9


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
