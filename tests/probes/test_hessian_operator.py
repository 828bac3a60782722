"""Hessian-vector products against the dense Hessian from torch.autograd.functional.hessian."""

from __future__ import annotations

import torch

from optiscope.core.members import flatten_params, unflatten_params
from optiscope.probes import hvp
from optiscope.probes.hessian_operator import HessianOperator, rademacher


def gen(seed):
    return torch.Generator().manual_seed(seed)


def test_hvp_equals_dense_hessian_times_vector(net, ref):
    loss, params, batch = net()
    h = ref.dense_hessian(loss, params, batch)
    v = unflatten_params(torch.randn(h.shape[0], dtype=torch.float64), params)
    out = hvp(lambda p: loss(p, batch), params, v)
    torch.testing.assert_close(flatten_params(out), h @ flatten_params(v), rtol=1e-10, atol=1e-12)


def test_both_product_routes_agree(ref):
    """Reverse-over-reverse on a kept graph and vmapped forward-over-reverse give one H v."""
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
