"""The teacher-forced comparison itself (conftest.lockstep) can fail: a deliberately wrong
optimizer is caught, alone and per member, and only rounding of the parameter write is forgiven."""

from __future__ import annotations

import pytest
import torch

from optiscope.optim import Adam


def torch_adam(p):
    return [torch.optim.Adam(list(p.values()), lr=3e-3)]


def test_a_wrong_beta2_fails_alone_and_per_member(eq):
    """beta2 0.998 instead of torch's 0.999 moves the update by ~5e-3 within 50 steps (measured),
    500x the tolerance the equivalence tests use."""
    wrong = {"lr": 3e-3, "betas": (0.9, 0.998)}
    with pytest.raises(AssertionError, match="update differs from the reference"):
        eq.assert_single_matches(eq.ours(Adam, wrong), torch_adam, seed=1, steps=eq.steps, tol=1e-5)
    with pytest.raises(AssertionError, match=r"member \d \(seed \d\)"):
        eq.assert_ensemble_matches(Adam, wrong, eq.seeds, torch_adam, eq.steps, tol=1e-5)


def test_a_wrong_learning_rate_fails_at_the_first_step(eq):
    with pytest.raises(AssertionError, match="step 0, "):
        eq.assert_single_matches(
            eq.ours(Adam, {"lr": 3.03e-3}), torch_adam, seed=1, steps=1, tol=1e-5
        )


def test_only_one_ulp_of_the_written_parameter_is_forgiven(eq):
    start = torch.tensor([1.0, 2.0, -3.0, 4.0])
    ref = start + torch.tensor([1e-3, -1e-3, 1e-3, 1e-3])
    inf = torch.full_like(ref, float("inf"))
    one_ulp = torch.nextafter(ref, inf)
    two_ulps = torch.nextafter(one_ulp, inf)
    assert eq.update_err(start, ref, ref) == 0.0
    assert eq.update_err(start, one_ulp, ref) == 0.0
    assert eq.update_err(start, two_ulps, ref) > 0.0
    flipped = ref.clone()
    flipped[2] = start[2] - 1e-3  # one component stepped the other way
    assert eq.update_err(start, flipped, ref) > 0.5
    assert eq.update_err(start, flipped, ref, flips=1) == 0.0
