"""The curvature probes on ensembles (member by member against the dense Hessian), their argument
checks, and the `optiscope.probes.curvature` import location."""

from __future__ import annotations

import pytest
import torch

from optiscope.errors import OptiscopeError
from optiscope.probes import (
    hessian_diagonal,
    hessian_trace,
    r_med,
    top_hessian_eigenvalues,
)
from optiscope.probes.hessian_operator import rademacher


def gen(seed):
    return torch.Generator().manual_seed(seed)


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


def test_the_curvature_module_still_offers_every_name():
    from optiscope.probes import curvature

    homes = {"optiscope.probes.estimators", "optiscope.probes.hessian_operator", "optiscope.probes.lanczos"}
    for name in curvature.__all__:
        obj = getattr(curvature, name)
        if isinstance(obj, type) or callable(obj) and hasattr(obj, "__code__"):
            assert obj.__module__ in homes, name
    assert len(curvature.__all__) == 23
