"""Lion against pytorch_optimizer.Lion (an independent implementation), 50 steps."""

from __future__ import annotations

import pytest
import pytorch_optimizer

from optiscope.optim import Lion

CASES = [{"lr": 1e-3}, {"lr": 1e-3, "betas": (0.95, 0.98), "weight_decay": 0.1}]


@pytest.mark.parametrize("hp", CASES, ids=["default-betas", "betas-wd"])
def test_lion_matches_pytorch_optimizer_single_and_per_member(eq, hp):
    def reference(p):
        return [pytorch_optimizer.Lion(list(p.values()), foreach=False, **hp)]

    single = eq.run_single(eq.ours(Lion, hp), seed=2, steps=eq.steps)
    eq.assert_params_match(single, eq.run_single(reference, seed=2, steps=eq.steps), tol=1e-5)
    ensemble, _ = eq.run_ensemble(Lion, hp, eq.seeds, eq.steps)
    eq.assert_ensemble_matches(ensemble, eq.seeds, reference, eq.steps, tol=1e-5)
