"""Gradient norm, update ratio and gradient noise scale against per-example autograd loops."""

from __future__ import annotations

import pytest
import torch

from optiscope.errors import OptiscopeError
from optiscope.probes import gradient_noise_scale, gradient_norm, update_to_weight_ratio


def loss(p, b):
    h = torch.tanh(b["x"] @ p["w1"].T + p["b1"])
    return torch.nn.functional.cross_entropy(h @ p["w2"].T, b["y"])


def net(seed):
    g = torch.Generator().manual_seed(seed)
    p = {"w1": torch.randn(5, 3, generator=g, dtype=torch.float64), "b1": torch.randn(5, generator=g, dtype=torch.float64),
         "w2": torch.randn(4, 5, generator=g, dtype=torch.float64)}
    b = {"x": torch.randn(10, 3, generator=g, dtype=torch.float64), "y": torch.randint(0, 4, (10,), generator=g)}
    return p, b


def autograd_grad(p, b):
    leaves = {k: v.clone().requires_grad_(True) for k, v in p.items()}
    gs = torch.autograd.grad(loss(leaves, b), list(leaves.values()))
    return torch.cat([g.reshape(-1) for g in gs])


def test_gradient_norm_equals_autograd():
    p, b = net(0)
    assert float(gradient_norm(loss, p, batch=b)) == pytest.approx(float(autograd_grad(p, b).norm()), rel=1e-12)


def test_noise_scale_from_a_per_example_loop():
    p, b = net(1)
    per = torch.stack([autograd_grad(p, {k: v[n : n + 1] for k, v in b.items()}) for n in range(10)])
    mean = per.mean(0)
    trace_cov = ((per - mean) ** 2).sum() / 9
    grad_sq = mean.pow(2).sum() - trace_cov / 10
    res = gradient_noise_scale(loss, p, b, chunk_size=3)
    assert res.batch_size == 10
    assert float(res.trace_cov) == pytest.approx(float(trace_cov), rel=1e-10)
    assert float(res.grad_sq) == pytest.approx(float(grad_sq), rel=1e-10)
    assert float(res.b_simple) == pytest.approx(float(trace_cov / grad_sq), rel=1e-10)


def test_ensemble_values_equal_member_by_member():
    nets = [net(s) for s in range(3)]
    params = {k: torch.stack([n[0][k] for n in nets]) for k in nets[0][0]}
    batch = {k: torch.stack([n[1][k] for n in nets]) for k in nets[0][1]}
    gn = gradient_norm(loss, params, batch=batch, ensemble_dims=1)
    ns = gradient_noise_scale(loss, params, batch, ensemble_dims=1)
    for i, (p, b) in enumerate(nets):
        assert float(gn[i]) == pytest.approx(float(gradient_norm(loss, p, batch=b)), rel=1e-12)
        assert float(ns.b_simple[i]) == pytest.approx(float(gradient_noise_scale(loss, p, b).b_simple), rel=1e-10)


def test_update_to_weight_ratio():
    before = {"w": torch.tensor([[3.0, 4.0], [0.0, 5.0]]), "b": torch.ones(2, 2)}
    after = {"w": before["w"] + torch.tensor([[0.0, 0.5], [0.0, 0.0]]), "b": before["b"] * 1.1}
    out = update_to_weight_ratio(before, after, ensemble_dims=1)
    torch.testing.assert_close(out["w"], torch.tensor([0.1, 0.0]))
    torch.testing.assert_close(out["b"], torch.tensor([0.1, 0.1]))
    with pytest.raises(OptiscopeError, match="lacks"):
        update_to_weight_ratio({}, after)


def test_noise_scale_needs_examples():
    p, b = net(0)
    with pytest.raises(OptiscopeError, match="at least 2 examples"):
        gradient_noise_scale(loss, p, {k: v[:1] for k, v in b.items()})
