"""Noise-injecting optimizers: the noise law (scipy.stats), its reproducibility from the seed,
and the noise-free limit (torch.optim.SGD)."""

from __future__ import annotations

import math

import pytest
import scipy.stats
import torch

from optiscope.optim import SGD, SGLD, BasinHopping, NiGSGD, NiMSGD, NoisySGD

NOISY = [
    (NoisySGD, {"lr": 0.05, "noise_eta": 0.3}),
    (SGLD, {"lr": 0.05, "temperature": 1e-4}),
    (NiGSGD, {"lr": 0.05, "noise_std": 0.1}),
    (NiMSGD, {"lr": 0.05, "noise_std": 0.05}),
    (BasinHopping, {"lr": 0.05, "hop_interval": 4, "perturbation": 0.05, "local": "nim"}),
]
IDS = ["noisy_sgd", "sgld", "nig_sgd", "nim_sgd", "bh-nim"]


@pytest.mark.parametrize(("cls", "hp"), NOISY, ids=IDS)
def test_noise_is_reproducible_from_the_seed_and_member_i_is_the_loop_run_with_seed_i(eq, cls, hp):
    """Member order does not matter (12 steps, compared to 1e-6: the noise is O(1e-2) per
    step, so drawing member i's noise from another seed would be far out; rounding of the
    batched gradient over 12 non-chaotic SGD steps is measured 0 here), and member i takes the
    steps of the optimizer alone on seed i (12 teacher-forced steps, measured error 0, tolerance
    1e-5)."""
    steps = 12
    a, _ = eq.run_ensemble(cls, hp, eq.seeds, steps)
    b, _ = eq.run_ensemble(cls, hp, list(reversed(eq.seeds)), steps)
    for name in a:
        assert eq.rel_err(b[name].flip(0), a[name]) < 1e-6, name  # same seed, same noise
    eq.assert_ensemble_matches(cls, hp, eq.seeds, eq.ours(cls, hp), steps, tol=1e-5)
    sgd, _ = eq.run_ensemble(SGD, {"lr": hp["lr"]}, eq.seeds, steps)
    assert not torch.allclose(a["layer1.weight"], sgd["layer1.weight"])  # the noise acts


@pytest.mark.parametrize(("cls", "hp"), [
    (NiGSGD, {"noise_std": 0.0}), (NiMSGD, {"noise_std": 0.0}), (SGLD, {"temperature": 0.0}),
    (NoisySGD, {"noise_eta": 0.0}),
], ids=["nig", "nim", "sgld", "noisy_sgd"])
def test_without_noise_each_is_torch_sgd(eq, cls, hp):
    """30 teacher-forced steps; measured update error 0, tolerance 1e-6."""
    eq.assert_single_matches(
        eq.ours(cls, {"lr": 0.05, **hp}), lambda p: [torch.optim.SGD(list(p.values()), lr=0.05)],
        seed=0, steps=30, tol=1e-6,
    )


def _one_step_increments(cls, hp, steps=1, members=4000, curvature=0.0):
    """Run `steps` steps on f(x) = curvature * x^2 / 2 for many one-parameter members from x = 1;
    return the last step's increments (one per member)."""
    x = torch.ones(members, 1, dtype=torch.float64, requires_grad=True)

    def closure():
        x.grad = curvature * x.detach()
        return 0.5 * curvature * x.detach()[:, 0] ** 2

    opt = cls([x], **hp, ensemble_dims=1)
    opt.member_seeds = torch.arange(members)
    for _ in range(steps):
        before = x.detach().clone()
        opt.step(closure)
    return (x.detach() - before)[:, 0]


@pytest.mark.parametrize(("cls", "hp", "scale"), [
    (NiGSGD, {"lr": 0.1, "noise_std": 0.5}, 0.1 * 0.5),
    (SGLD, {"lr": 0.1, "temperature": 0.02}, math.sqrt(2 * 0.1 * 0.02)),
    (NoisySGD, {"lr": 0.1, "noise_eta": 0.3, "noise_gamma": 0.55}, 0.1 * math.sqrt(0.3 / 5**0.55)),
], ids=["nig", "sgld", "noisy_sgd-step5"])
def test_noise_has_the_documented_gaussian_law(cls, hp, scale):
    """Kolmogorov-Smirnov against N(0, scale^2) on a flat loss (so the step is all noise)."""
    steps = 5 if cls is NoisySGD else 1
    inc = _one_step_increments(cls, hp, steps=steps)
    result = scipy.stats.kstest(inc.numpy(), scipy.stats.norm(0.0, scale).cdf)
    assert result.pvalue > 1e-3, (result.statistic, result.pvalue)


def test_noise_in_the_model_takes_the_gradient_at_perturbed_weights():
    """On f = a x^2 / 2: x <- x - lr a (x + sigma xi), so increments ~ N(-lr a, (lr a sigma)^2)."""
    inc = _one_step_increments(NiMSGD, {"lr": 0.1, "noise_std": 0.3}, curvature=2.0)
    law = scipy.stats.norm(-0.1 * 2.0, 0.1 * 2.0 * 0.3)
    assert scipy.stats.kstest(inc.numpy(), law.cdf).pvalue > 1e-3
