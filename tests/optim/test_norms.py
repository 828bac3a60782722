"""Norms and duality maps: closed forms, the duality identities, and Newton-Schulz vs the SVD."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from optiscope.optim.base import HyperparameterError
from optiscope.optim.norms import (
    NORMS,
    NS_BAND,
    L1ToRMS,
    RMSToRMS,
    as_matrix,
    make_norm,
    newton_schulz,
    polar_factor,
)

SHAPES = [(6, 4), (3, 7), (5,), (2, 3, 2)]


def _inner(a: torch.Tensor, b: torch.Tensor, ensemble_dims: int) -> torch.Tensor:
    return (a * b).sum(dim=tuple(range(ensemble_dims, a.dim())))


@pytest.mark.parametrize("name", sorted(NORMS))
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("ensemble_dims", [0, 1])
def test_duality_map_attains_the_dual_norm_with_unit_norm(name, shape, ensemble_dims):
    """<g, dualize(g)> = ||g||_* and ||dualize(g)|| = 1, per member, in float64."""
    norm = make_norm(name)
    g = torch.randn(*((4,) if ensemble_dims else ()), *shape, dtype=torch.float64)
    d = norm.dualize(g, ensemble_dims)
    assert d.shape == g.shape
    torch.testing.assert_close(_inner(g, d, ensemble_dims), norm.dual_norm(g, ensemble_dims))
    torch.testing.assert_close(norm.norm(d, ensemble_dims), torch.ones_like(norm.norm(g, ensemble_dims)))


@pytest.mark.parametrize("name", sorted(NORMS))
def test_dual_norm_bounds_every_unit_direction(name):
    """||g||_* = max over the unit ball: no random unit direction does better (Hoelder)."""
    norm = make_norm(name)
    g = torch.randn(5, 3, dtype=torch.float64)
    t = torch.randn(2000, 5, 3, dtype=torch.float64)
    t = t / norm.norm(t, 1).reshape(-1, 1, 1)
    assert _inner(g.expand_as(t), t, 1).max() <= norm.dual_norm(g) + 1e-12


@pytest.mark.parametrize("name", sorted(NORMS))
def test_batched_over_members_equals_member_by_member(name):
    norm = make_norm(name)
    g = torch.randn(3, 6, 4, dtype=torch.float64)
    batched = norm.dualize(g, 1)
    for i in range(3):
        torch.testing.assert_close(batched[i], norm.dualize(g[i], 0))
        torch.testing.assert_close(norm.dual_norm(g, 1)[i], norm.dual_norm(g[i], 0))


def test_closed_forms_against_numpy():
    g = torch.randn(6, 4, dtype=torch.float64)
    a = g.numpy()
    u, s, vt = np.linalg.svd(a, full_matrices=False)
    np.testing.assert_allclose(make_norm("spectral").norm(g).item(), s[0])
    np.testing.assert_allclose(make_norm("spectral").dual_norm(g).item(), s.sum())
    np.testing.assert_allclose(make_norm("spectral").dualize(g).numpy(), u @ vt, atol=1e-12)
    np.testing.assert_allclose(make_norm("rms_rms").norm(g).item(), np.sqrt(4 / 6) * s[0])
    np.testing.assert_allclose(make_norm("infinity").dual_norm(g).item(), np.abs(a).sum())
    np.testing.assert_allclose(make_norm("infinity").dualize(g).numpy(), np.sign(a))
    np.testing.assert_allclose(
        make_norm("l1_rms").norm(g).item(), (np.linalg.norm(a, axis=1) / 2).max()
    )
    np.testing.assert_allclose(make_norm("rms").norm(g).item(), np.sqrt((a**2).mean()))


def test_euclidean_duality_map_is_normalised_gradient():
    """dualize_l2(g) = g / ||g||_2 (normalised SGD); the full map ||g|| dualize(g) = g (SGD)."""
    g = torch.randn(2, 5, 3, dtype=torch.float64)
    norm = make_norm("euclidean")
    torch.testing.assert_close(norm.dualize(g, 1), g / g.flatten(1).norm(dim=1).reshape(2, 1, 1))
    torch.testing.assert_close(norm.duality_map(g, 1), g)


def test_zero_gradient_gives_zero_direction():
    for name in NORMS:
        d = make_norm(name).dualize(torch.zeros(3, 4))
        assert torch.equal(d, torch.zeros(3, 4)), name


def test_vectors_and_conv_filters_are_viewed_as_matrices():
    assert as_matrix(torch.zeros(5), 0).shape == (5, 1)
    assert as_matrix(torch.zeros(2, 8, 3, 3, 3), 1).shape == (2, 8, 27)
    v = torch.randn(5, dtype=torch.float64)
    torch.testing.assert_close(make_norm("spectral").dualize(v), v / v.norm())
    torch.testing.assert_close(RMSToRMS().norm(v), v.norm() / 5**0.5)  # RMS of a vector
    torch.testing.assert_close(L1ToRMS().norm(v), v.norm() / 5**0.5)


def test_unknown_norm_name_is_an_error_naming_it():
    with pytest.raises(HyperparameterError, match=r"unknown norm 'nuclear'.*allowed: euclidean"):
        make_norm("nuclear")


# -- Newton-Schulz ---------------------------------------------------------------------------
def well_conditioned(batch: tuple[int, ...], m: int, n: int, cond: float = 4.0) -> torch.Tensor:
    """Random matrices with singular values spread evenly in [1, cond]."""
    k = min(m, n)
    q1 = torch.linalg.qr(torch.randn(*batch, m, m, dtype=torch.float64))[0][..., :k]
    q2 = torch.linalg.qr(torch.randn(*batch, n, n, dtype=torch.float64))[0][..., :k]
    s = torch.linspace(1.0, cond, k, dtype=torch.float64)
    return (q1 * s) @ q2.mT


@pytest.mark.parametrize(("m", "n"), [(32, 32), (24, 64), (64, 16)])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_newton_schulz_singular_values_lie_in_the_reference_band(m, n, dtype):
    g = well_conditioned((), m, n, cond=100.0).float()
    s = torch.linalg.svdvals(newton_schulz(g, dtype=dtype).double())
    lo, hi = NS_BAND
    assert s.min() > lo - 0.05 and s.max() < hi + 0.05, (s.min().item(), s.max().item())


@pytest.mark.parametrize(("m", "n"), [(32, 32), (24, 64), (64, 16)])
def test_newton_schulz_matches_svd_polar_factor_in_direction(m, n):
    """NS5(G) = U S' V^T with G's own singular vectors: U^T NS5(G) V is diagonal (off-diagonal
    mass < 1e-4 of the diagonal's, float32) with S' in the band; cosine with U V^T > 0.98."""
    g = well_conditioned((), m, n).float()
    o = newton_schulz(g, dtype=torch.float32).double()
    u, _, vh = torch.linalg.svd(g.double(), full_matrices=False)
    core = u.mT @ o @ vh.mT
    diag = torch.diagonal(core)
    off = core - torch.diag_embed(diag)
    assert off.norm() / diag.norm() < 1e-4
    assert diag.min() > NS_BAND[0] and diag.max() < NS_BAND[1]
    uv = polar_factor(g.double())
    assert (o * uv).sum() / (o.norm() * uv.norm()) > 0.98


def test_more_newton_schulz_steps_converge_towards_uvt_with_classic_coefficients():
    """With the convergent cubic iteration (1.5, -0.5, 0) the result tends to U V^T exactly."""
    g = well_conditioned((), 16, 24).float()
    o = newton_schulz(g, steps=30, coefficients=(1.5, -0.5, 0.0), dtype=torch.float64)
    torch.testing.assert_close(o, polar_factor(g.double()), atol=1e-8, rtol=0)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_newton_schulz_batched_equals_member_by_member(dtype):
    """Up to the iteration dtype's rounding: PyTorch does not promise that a batched matmul
    rounds as the per-matrix one does (they agree bit for bit on x86-64, measured; two correct
    bfloat16 operation orders differ by up to 5e-2 after five iterations). Mixing members up
    would be an O(1) error."""
    g = torch.randn(5, 20, 12)
    batched = newton_schulz(g, dtype=dtype)
    tol = 0.1 if dtype == torch.bfloat16 else 1e-4
    for i in range(5):
        single = newton_schulz(g[i], dtype=dtype)
        assert (batched[i] - single).norm() <= tol * single.norm(), i


def test_newton_schulz_equals_torch_muon_iteration():
    """Operation for operation the same as torch.optim.Muon's private iteration (bfloat16)."""
    from torch.optim._muon import _zeropower_via_newtonschulz

    for shape in [(32, 40), (40, 32)]:
        g = torch.randn(*shape)
        ref = _zeropower_via_newtonschulz(g, (3.4445, -4.7750, 2.0315), 5, 1e-7)
        assert torch.equal(newton_schulz(g), ref)
