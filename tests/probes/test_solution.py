"""Per-tensor solution properties on matrices whose values are known in closed form."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from optiscope.errors import OptiscopeError
from optiscope.probes import (
    effective_rank,
    frobenius_norm,
    hoyer_sparsity,
    relative_distance,
    rms_rms_norm,
    sparsity,
    spectral_norm,
    stable_rank,
    tensor_properties,
)
from optiscope.probes.solution import threshold_label

SIGMA = torch.tensor([3.0, 2.0, 1.0], dtype=torch.float64)


def rank3(d_out=6, d_in=5, seed=0):
    """U diag(3, 2, 1) V^T with orthonormal U (6x3), V (5x3): singular values 3, 2, 1, 0, 0."""
    g = torch.Generator().manual_seed(seed)
    u = torch.linalg.qr(torch.randn(d_out, 3, generator=g, dtype=torch.float64))[0]
    v = torch.linalg.qr(torch.randn(d_in, 3, generator=g, dtype=torch.float64))[0]
    return u @ torch.diag(SIGMA) @ v.T


def test_rank3_matrix_ranks_follow_from_its_singular_values():
    w = rank3()
    p = (SIGMA / SIGMA.sum()).numpy()
    assert float(effective_rank(w)) == pytest.approx(math.exp(-(p * np.log(p)).sum()), rel=1e-10)
    assert float(stable_rank(w)) == pytest.approx(14 / 9, rel=1e-10)
    assert 1 < float(effective_rank(w)) < 3


def test_rank3_matrix_norms():
    w = rank3(d_out=6, d_in=5)
    assert float(spectral_norm(w)) == pytest.approx(3.0, rel=1e-10)
    assert float(frobenius_norm(w)) == pytest.approx(math.sqrt(14), rel=1e-10)
    assert float(rms_rms_norm(w)) == pytest.approx(math.sqrt(5 / 6) * 3.0, rel=1e-10)
    assert float(spectral_norm(w)) == pytest.approx(float(torch.linalg.matrix_norm(w, ord=2)), rel=1e-12)


def test_effective_rank_extremes():
    assert float(effective_rank(torch.eye(4))) == pytest.approx(4.0)
    assert float(effective_rank(torch.outer(torch.arange(1.0, 4), torch.ones(5)))) == pytest.approx(1.0, abs=1e-5)


def test_sparsity_counts_near_zero_entries():
    w = torch.tensor([[0.0, 1e-4, -5e-3], [0.2, -0.02, 1.0]])
    assert float(sparsity(w, 1e-3)) == pytest.approx(2 / 6)
    assert float(sparsity(w, 1e-2)) == pytest.approx(3 / 6)
    assert float(sparsity(w, 0.0)) == pytest.approx(1 / 6)


def test_hoyer_is_one_for_one_hot_zero_for_constant_and_matches_its_formula():
    assert float(hoyer_sparsity(torch.tensor([0.0, 0.0, 3.0, 0.0]))) == pytest.approx(1.0)
    assert float(hoyer_sparsity(torch.full((7,), -2.0))) == pytest.approx(0.0, abs=1e-6)
    x = np.array([1.0, -2.0, 0.5, 0.0, 3.0])
    n = x.size
    expected = (np.sqrt(n) - np.abs(x).sum() / np.linalg.norm(x)) / (np.sqrt(n) - 1)
    assert float(hoyer_sparsity(torch.tensor(x))) == pytest.approx(expected)


def test_relative_distance_from_init():
    w0 = torch.tensor([[3.0, 4.0]])
    assert float(relative_distance(w0 + torch.tensor([[0.0, 1.0]]), w0)) == pytest.approx(0.2)
    assert float(relative_distance(w0, w0)) == 0.0


def test_ensemble_values_equal_member_by_member():
    ws = torch.stack([rank3(seed=s) * (s + 1) + 0.01 * s for s in range(4)])
    w0 = torch.stack([rank3(seed=10 + s) for s in range(4)])
    for fn in (effective_rank, stable_rank, spectral_norm, frobenius_norm, rms_rms_norm, hoyer_sparsity):
        batched = fn(ws, ensemble_dims=1)
        torch.testing.assert_close(batched, torch.stack([fn(w) for w in ws]))
    torch.testing.assert_close(
        relative_distance(ws, w0, ensemble_dims=1), torch.stack([relative_distance(a, b) for a, b in zip(ws, w0)])
    )
    torch.testing.assert_close(sparsity(ws, 0.05, ensemble_dims=1), torch.stack([sparsity(w, 0.05) for w in ws]))


def test_tensor_properties_names_and_roles():
    params = {"layer1.weight": torch.stack([rank3(), rank3(seed=1)]), "layer1.bias": torch.zeros(2, 6, dtype=torch.float64)}
    init = {k: v + 1 for k, v in params.items()}
    out = tensor_properties(params, init, {"layer1.weight": "hidden", "layer1.bias": "bias"}, [1e-3], ensemble_dims=1)
    assert {"eff_rank/layer1.weight", "stable_rank/layer1.weight", "rms_rms_norm/layer1.weight",
            "sparsity@1e-3/layer1.bias", "hoyer/layer1.bias", "dist_from_init/layer1.bias"} <= set(out)
    assert "eff_rank/layer1.bias" not in out
    torch.testing.assert_close(out["stable_rank/layer1.weight"], torch.full((2,), 14 / 9, dtype=torch.float64))
    torch.testing.assert_close(out["sparsity@1e-3/layer1.bias"], torch.ones(2, dtype=torch.float64))
    assert all(v.shape == (2,) for v in out.values())


def test_threshold_labels():
    assert threshold_label(1e-3) == "1e-3"
    assert threshold_label(0.05) == "5e-2"
    assert threshold_label(0.0) == "0"


def test_matrix_property_of_a_vector_is_an_error():
    with pytest.raises(OptiscopeError, match="at least 2 axes"):
        effective_rank(torch.ones(3))
    with pytest.raises(OptiscopeError, match="threshold must be >= 0"):
        sparsity(torch.ones(3), -1.0)


def test_tensor_properties_agree_with_the_svd_functions():
    """The trajectory path (Gram eigenvalues) against torch.linalg.svdvals-based functions."""
    g = torch.Generator().manual_seed(3)
    w = torch.randn(4, 7, 5, generator=g)
    out = tensor_properties({"w": w}, None, {"w": "hidden"}, [], ensemble_dims=1)
    for prop, fn in [("eff_rank", effective_rank), ("stable_rank", stable_rank),
                     ("spectral_norm", spectral_norm), ("rms_rms_norm", rms_rms_norm)]:
        torch.testing.assert_close(out[f"{prop}/w"], fn(w, ensemble_dims=1), rtol=1e-5, atol=1e-6)
