"""Lion against pytorch_optimizer.Lion (an independent implementation), 50 teacher-forced steps.

Margin (measured): our updates equal the reference's exactly on x86-64 (AVX-512, avx2, default
capability, 1 and 2 threads); tolerance 1e-5. One entry per tensor and step may differ: Lion
steps by sign(beta1 m + (1 - beta1) g), and a component that is zero up to rounding may take
either sign on another CPU. A wrong beta2 (0.985 for 0.99) gives an update error of 0.9.
"""

from __future__ import annotations

import pytest
import pytorch_optimizer

from optiscope.optim import Lion

CASES = [{"lr": 1e-3}, {"lr": 1e-3, "betas": (0.95, 0.98), "weight_decay": 0.1}]


@pytest.mark.parametrize("hp", CASES, ids=["default-betas", "betas-wd"])
def test_lion_matches_pytorch_optimizer_single_and_per_member(eq, hp):
    def reference(p):
        return [pytorch_optimizer.Lion(list(p.values()), foreach=False, **hp)]

    eq.assert_single_matches(
        eq.ours(Lion, hp), reference, seed=2, steps=eq.steps, tol=1e-5, flips=1
    )
    eq.assert_ensemble_matches(Lion, hp, eq.seeds, reference, eq.steps, tol=1e-5, flips=1)
