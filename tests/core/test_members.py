"""Per-member axis helpers against per-member loops (the definition) on random tensors."""

from __future__ import annotations

import pytest
import torch

from optiscope.core.members import (
    check_ensemble_dims,
    flat_member,
    flatten_params,
    member_dims,
    member_norm,
    member_numel,
    member_shape,
    member_sq_norm,
    member_sum,
    n_members,
    per_member,
    unflatten_params,
)
from optiscope.errors import OptiscopeError


def _params(g: torch.Generator) -> dict[str, torch.Tensor]:
    return {"w": torch.randn(3, 4, 5, generator=g), "b": torch.randn(3, 4, generator=g), "s": torch.randn(3, generator=g)}


def test_axes_shapes_and_counts():
    t = torch.zeros(3, 4, 5)
    assert member_dims(t, 1) == (1, 2) and member_dims(t, 0) == (0, 1, 2)
    assert member_shape(t, 1) == (4, 5) and member_shape(t, 0) == (3, 4, 5)
    p = _params(torch.Generator().manual_seed(0))
    assert n_members(p) == 3
    assert member_numel(p, 1) == 20 + 4 + 1 and member_numel(p, 0) == 60 + 12 + 3


@pytest.mark.parametrize("ord_", [1.0, 2.0, float("inf")])
def test_reductions_equal_a_loop_over_members(ord_):
    g = torch.Generator().manual_seed(1)
    for t in _params(g).values():
        norms = member_norm(t, 1, ord_)
        sums = member_sum(t, 1)
        for i in range(3):
            ref = torch.linalg.vector_norm(t[i].reshape(-1), ord=ord_)
            torch.testing.assert_close(norms[i].reshape(()), ref)
            torch.testing.assert_close(sums[i].reshape(()), t[i].sum())
        assert norms.dim() == t.dim() and member_norm(t, 1, ord_, keepdim=False).shape == (3,)
    w = torch.randn(4, 5, generator=g)
    torch.testing.assert_close(member_norm(w, 0).reshape(()), torch.linalg.vector_norm(w))


def test_squared_norm_over_several_tensors():
    p = _params(torch.Generator().manual_seed(2))
    total = member_sq_norm(p.values(), 1)
    for i in range(3):
        ref = sum(float(t[i].pow(2).sum()) for t in p.values())
        assert float(total[i]) == pytest.approx(ref, rel=1e-6)
    with pytest.raises(OptiscopeError, match="at least one tensor"):
        member_sq_norm([], 1)


def test_per_member_values_broadcast_over_each_member():
    like = torch.ones(3, 4, 5)
    scaled = per_member(torch.tensor([1.0, 2.0, 3.0]), like, 1) * like
    for i in range(3):
        assert torch.equal(scaled[i], torch.full((4, 5), float(i + 1)))
    one = torch.ones(4, 5)
    assert (per_member(torch.tensor([2.0]), one, 0) * one).shape == (4, 5)  # (1,) seeds of one member


def test_flatten_and_unflatten_round_trip_per_member():
    p = _params(torch.Generator().manual_seed(3))
    flat = flatten_params(p, 1)
    assert flat.shape == (3, 25)
    for i in range(3):
        ref = torch.cat([p["w"][i].reshape(-1), p["b"][i], p["s"][i].reshape(1)])
        assert torch.equal(flat[i], ref)
        assert torch.equal(flat_member(p["w"], 1)[i], p["w"][i].reshape(-1))
    back = unflatten_params(flat, p, 1)
    assert all(torch.equal(back[k], p[k]) for k in p)
    one = {k: v[0] for k, v in p.items()}
    assert torch.equal(flatten_params(one), flat[0])
    assert all(torch.equal(unflatten_params(flat[0], one)[k], one[k]) for k in one)


def test_bad_ensemble_dims_are_named():
    check_ensemble_dims(0)
    with pytest.raises(OptiscopeError, match=r"ensemble_dims must be 0 .* or 1 .*not 2"):
        check_ensemble_dims(2)
    with pytest.raises(ValueError, match="ensemble_dims"):
        check_ensemble_dims(-1, error=ValueError)
