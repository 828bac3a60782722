"""Per-member hyperparameters (issue 10): one ensemble whose members differ in a hyperparameter
trains each member exactly as a separate ensemble run at that member's value.

For every built-in optimizer and every name in its `per_member_names`, three grid points
(lead, x) = (a, x1), (a, x2), (b, x1) (lead: `lr`, or the optimizer's step size) times two seeds
train as ONE ensemble of six members with per-member tensors, and as three separate ensembles
with plain numbers; every member's update from its initial point must agree (conftest
`update_err`, relative to the update, one ulp forgiven). Each case also checks that its values
matter: the separate runs at x1 and x2 differ by far more than the tolerance, so a per-member
value that was ignored (or taken from another member) fails the test.

Margin (measured on x86-64 AMD EPYC, one thread; 4 steps, 10 for basin hopping so that three
decisions happen and for Prodigy so that d grows): the worst error over all cases is 4e-7 (most
are exactly 0: per-member values round as torch rounds a Python float), tolerance 1e-5; the
smallest effect of a hyperparameter (x1 vs x2) is 4e-3, 400x the tolerance.
"""

from __future__ import annotations

import math

import pytest
import torch

from optiscope.optim import OPTIMIZERS, SAM, Adam, HyperparameterError, per_member_names

TOL = 1e-5
SEEDS = [0, 5]
STEPS = 4

#: name -> (settings every run shares, {per-member name: (value 1, value 2)}).
CASES: dict[str, tuple[dict, dict]] = {
    "sgd": ({"momentum": 0.9}, {
        "lr": (0.05, 0.1), "momentum": (0.9, 0.5), "dampening": (0.0, 0.5),
        "weight_decay": (0.0, 0.1),
    }),
    "adam": ({}, {
        "lr": (3e-3, 1e-2), "betas": ((0.9, 0.999), (0.5, 0.9)), "eps": (1e-8, 1e-2),
        "weight_decay": (0.0, 0.5),
    }),
    "adamw": ({}, {
        "lr": (3e-3, 1e-2), "betas": ((0.9, 0.999), (0.5, 0.9)), "eps": (1e-8, 1e-2),
        "weight_decay": (0.0, 5.0),
    }),
    "nadam": ({}, {
        "lr": (3e-3, 1e-2), "betas": ((0.9, 0.999), (0.5, 0.9)), "eps": (1e-8, 1e-2),
        "weight_decay": (0.0, 0.5), "momentum_decay": (4e-3, 0.5),
    }),
    "adagrad": ({}, {
        "lr": (0.05, 0.1), "lr_decay": (0.0, 0.5), "weight_decay": (0.0, 0.5),
        "initial_accumulator_value": (0.0, 0.1), "eps": (1e-10, 1e-2),
    }),
    "rmsprop": ({"centered": True}, {
        "lr": (1e-3, 3e-3), "alpha": (0.99, 0.5), "eps": (1e-8, 1e-2),
        "weight_decay": (0.0, 0.5), "momentum": (0.0, 0.9),
    }),
    "lion": ({}, {
        "lr": (1e-4, 3e-4), "betas": ((0.9, 0.99), (0.2, 0.5)), "weight_decay": (0.0, 5.0),
    }),
    "sign_descent": ({}, {"lr": (0.01, 0.02), "momentum": (0.9, 0.5), "weight_decay": (0.0, 0.5)}),
    "spectral_descent": ({}, {
        "lr": (0.02, 0.05), "momentum": (0.9, 0.5), "weight_decay": (0.0, 0.5),
    }),
    "steepest": ({}, {"lr": (0.02, 0.05), "momentum": (0.9, 0.5), "weight_decay": (0.0, 0.5)}),
    "shampoo": ({}, {
        "lr": (1e-2, 3e-2), "momentum": (0.9, 0.5), "eps": (1e-6, 1e-1), "weight_decay": (0.0, 0.5),
        "beta2": (1.0, 0.5),
    }),
    "muon": ({}, {
        "lr": (0.02, 0.05), "momentum": (0.95, 0.5), "weight_decay": (0.0, 0.5), "eps": (1e-7, 10.0),
        "adamw_lr": (3e-4, 1e-3), "adamw_betas": ((0.9, 0.95), (0.5, 0.9)),
        "adamw_eps": (1e-10, 1e-2), "adamw_weight_decay": (0.0, 5.0),
    }),
    "prodigy": ({"beta3": 0.9}, {
        "lr": (1.0, 0.5), "betas": ((0.9, 0.999), (0.5, 0.9)), "beta3": (0.9, 0.5),
        "eps": (1e-8, 1e-2), "weight_decay": (0.0, 0.5), "d0": (1e-6, 1e-4),
        "d_coef": (1.0, 2.0), "growth_rate": (math.inf, 1.0),
    }),
    "sgd_armijo": ({"n_batches_per_epoch": 1}, {
        "init_step_size": (1.0, 0.3), "c": (0.1, 0.5), "beta": (0.9, 0.5), "gamma": (2.0, 1.0),
    }),
    "sam": ({"base_hyperparameters": {"momentum": 0.9}}, {"lr": (0.05, 0.1), "rho": (0.05, 0.3)}),
    "asam": ({}, {"lr": (0.05, 0.1), "rho": (0.5, 2.0), "eta": (0.01, 0.5)}),
    "powerprop": ({"base_hyperparameters": {"momentum": 0.9}}, {"lr": (0.05, 0.1), "alpha": (2.0, 3.0)}),
    "noisy_sgd": ({}, {
        "lr": (0.01, 0.03), "momentum": (0.0, 0.9), "noise_eta": (0.01, 0.1),
        "noise_gamma": (0.55, 0.0), "weight_decay": (0.0, 0.5),
    }),
    "nig_sgd": ({}, {
        "lr": (0.01, 0.03), "noise_std": (0.01, 0.1), "momentum": (0.0, 0.9),
        "weight_decay": (0.0, 0.5),
    }),
    "nim_sgd": ({}, {
        "lr": (0.01, 0.03), "noise_std": (0.01, 0.1), "momentum": (0.0, 0.9),
        "weight_decay": (0.0, 0.5),
    }),
    "sgld": ({}, {"lr": (0.01, 0.03), "temperature": (1e-5, 1e-3), "weight_decay": (0.0, 0.5)}),
    "bh": ({"hop_interval": 2, "acceptance": "metropolis", "perturbation": 0.3}, {
        "lr": (0.01, 0.03), "noise_std": (0.01, 0.1), "perturbation": (0.01, 0.1),
        "temperature": (0.01, 1.0),
    }),
    "monotonic_bh": ({"hop_interval": 2, "local": "nim", "perturbation": 0.3}, {
        "lr": (0.01, 0.03), "noise_std": (0.01, 0.1), "perturbation": (0.01, 0.1),
    }),
    "metropolis_bh": ({"hop_interval": 2, "perturbation": 0.3}, {
        "lr": (0.01, 0.03), "noise_std": (0.01, 0.1), "perturbation": (0.01, 0.1),
        "temperature": (0.01, 1.0),
    }),
}
#: Powerprop writes w = sign(v) |v|^alpha: torch's pow rounds a per-member (tensor) exponent apart
#: from a number (2.0 is an exact square), so its updates agree to 1e-5 (measured), not 1e-7.
TOLERANCE = {"powerprop": 1e-4}
#: Sign-based updates: a component that is zero up to rounding may step either way.
FLIPS = {"lion": 2, "sign_descent": 2}
#: Optimizers whose per-member values act through a decision every few steps.
LONGER = {"bh": 10, "monotonic_bh": 10, "metropolis_bh": 10, "prodigy": 10}

PAIRS = [(opt, name) for opt, (_, values) in CASES.items() for name in values]


def lead_name(values: dict) -> str:
    return "lr" if "lr" in values else next(iter(values))


def member_tensor(column: list) -> object:
    """Per-member values (float64, shape (S,)); a tuple of them for a tuple hyperparameter."""
    if isinstance(column[0], tuple):
        return tuple(member_tensor([v[i] for v in column]) for i in range(len(column[0])))
    return torch.tensor(column, dtype=torch.float64)


def grid_points(values: dict, name: str) -> list[dict]:
    lead = lead_name(values)
    (a, b), (x1, x2) = values[lead], values[name]
    if name == lead:
        return [{lead: a}, {lead: b}]
    return [{lead: a, name: x1}, {lead: a, name: x2}, {lead: b, name: x1}]


def per_member_hp(points: list[dict], n_seeds: int) -> dict:
    """The points' values stacked member by member (point by point, seeds within)."""
    return {k: member_tensor([p[k] for p in points for _ in range(n_seeds)]) for k in points[0]}


def worst_update_err(eq, start, ours, ref, flips=0) -> float:
    return max(eq.update_err(start[k], ours[k], ref[k], flips) for k in ref)


def test_every_optimizer_with_per_member_names_has_a_case():
    declared = {n for n, cls in OPTIMIZERS.items() if per_member_names(cls)}
    assert declared <= set(CASES), f"add per-member cases for {sorted(declared - set(CASES))}"
    for opt, (_, values) in CASES.items():
        assert set(values) == per_member_names(OPTIMIZERS[opt]), opt


@pytest.mark.parametrize(("opt", "name"), PAIRS, ids=[f"{o}-{n}" for o, n in PAIRS])
def test_per_member_values_equal_separate_ensembles(eq, opt, name):
    cls = OPTIMIZERS[opt]
    shared, values = CASES[opt]
    points = grid_points(values, name)
    steps, tol = LONGER.get(opt, STEPS), TOLERANCE.get(opt, TOL)
    hp = {**shared, **per_member_hp(points, len(SEEDS))}
    ours, trainer = eq.run_ensemble(cls, hp, SEEDS * len(points), steps)
    start = trainer.strategy.init_params
    separate = [eq.run_ensemble(cls, {**shared, **p}, SEEDS, steps)[0] for p in points]
    for j, ref in enumerate(separate):
        for i in range(len(SEEDS)):
            m = j * len(SEEDS) + i
            err = worst_update_err(
                eq, {k: v[i] for k, v in start.items()}, {k: v[m] for k, v in ours.items()},
                {k: v[i] for k, v in ref.items()}, FLIPS.get(opt, 0),
            )
            assert err < tol, f"grid point {points[j]}, seed {SEEDS[i]}: update differs by {err:.1e}"
    # the values matter: a per-member value ignored or mixed up would fail above
    start0 = {k: v[:len(SEEDS)] for k, v in start.items()}
    effect = worst_update_err(eq, start0, separate[1], separate[0])
    assert effect > 100 * tol, f"{name}: {points[0]} and {points[1]} train alike ({effect:.1e})"


def test_per_member_base_hyperparameters_inside_sam(eq):
    """SAM passes per-member values of its base's settings to the base (here Adam's betas)."""
    betas = [(0.9, 0.999), (0.5, 0.9)]
    common = {"base": "adam", "rho": 0.1, "lr": 3e-3}
    hp = {**common, "base_hyperparameters": {"betas": member_tensor([b for b in betas for _ in SEEDS])}}
    ours, trainer = eq.run_ensemble(SAM, hp, SEEDS * 2, STEPS)
    start = trainer.strategy.init_params
    for j, b in enumerate(betas):
        ref, _ = eq.run_ensemble(SAM, {**common, "base_hyperparameters": {"betas": b}}, SEEDS, STEPS)
        sl = slice(j * len(SEEDS), (j + 1) * len(SEEDS))
        for k in ref:
            assert eq.update_err(start[k][: len(SEEDS)], ours[k][sl], ref[k]) < TOL, k


def test_per_member_names_are_the_real_valued_settings():
    names = per_member_names(Adam)
    assert names == {"lr", "betas", "eps", "weight_decay"}
    assert not names & {"amsgrad", "maximize", "fused", "decoupled_weight_decay"}  # bools
    bh = per_member_names(OPTIMIZERS["bh"])
    assert "hop_interval" not in bh and "local" not in bh  # a count and a choice
    assert "base" not in per_member_names(SAM) and "base_hyperparameters" not in per_member_names(SAM)
    assert "ns_steps" not in per_member_names(OPTIMIZERS["muon"])  # int
    assert "ns_coefficients" not in per_member_names(OPTIMIZERS["muon"])  # declared scalar-only
    assert per_member_names(torch.optim.Adam) == frozenset()  # not ensemble-aware
    assert per_member_names(int) == frozenset()


def _stacked(n: int) -> list[torch.nn.Parameter]:
    return [torch.nn.Parameter(torch.randn(n, 4, 3)), torch.nn.Parameter(torch.randn(n, 3))]


def test_a_per_member_tensor_of_the_wrong_length_names_the_hyperparameter():
    with pytest.raises(HyperparameterError, match=r"weight_decay.*shape \(3,\).*got shape \(2,\)"):
        Adam(_stacked(3), weight_decay=torch.tensor([0.0, 0.1], dtype=torch.float64), ensemble_dims=1)
    with pytest.raises(HyperparameterError, match=r"betas.*shape \(3,\)"):
        Adam(_stacked(3), betas=(torch.full((4,), 0.9, dtype=torch.float64), 0.999), ensemble_dims=1)
    with pytest.raises(HyperparameterError, match=r"lr.*shape \(3,\)"):
        Adam(_stacked(3), lr=torch.full((3, 1), 1e-3, dtype=torch.float64), ensemble_dims=1)


def test_a_tensor_for_a_setting_that_is_not_per_member_is_refused():
    bh = OPTIMIZERS["bh"]
    with pytest.raises(HyperparameterError, match=r"hop_interval cannot differ between members"):
        bh(_stacked(2), hop_interval=torch.tensor([2.0, 3.0], dtype=torch.float64), ensemble_dims=1)


def test_per_member_values_are_moved_once_and_kept_float64():
    lr = torch.tensor([1e-3, 2e-3], dtype=torch.float32)
    opt = Adam(_stacked(2), lr=lr, ensemble_dims=1)
    stored = opt.param_groups[0]["lr"]
    assert stored.dtype == torch.float64 and stored.device == opt.param_groups[0]["params"][0].device
    assert torch.equal(stored, lr.double())
