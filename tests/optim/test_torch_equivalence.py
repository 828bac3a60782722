"""SGD, Adam, AdamW, NAdam, Adagrad, RMSprop against torch.optim, step for step.

Each case runs >= 50 steps on a small MLP twice: with ensemble_dims=0 (one member, compared with
torch.optim on the same seed) and with ensemble_dims=1 (three members in one ensemble, member i
compared with its own torch.optim instance trained alone on seed i).
"""

from __future__ import annotations

import pytest
import torch

from optiscope.optim import SGD, Adagrad, Adam, AdamW, NAdam, RMSprop

CASES = [
    (SGD, torch.optim.SGD, {"lr": 0.05}),
    (SGD, torch.optim.SGD, {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-3}),
    (SGD, torch.optim.SGD, {"lr": 0.05, "momentum": 0.8, "dampening": 0.1}),
    (Adam, torch.optim.Adam, {"lr": 3e-3, "weight_decay": 1e-3}),
    (Adam, torch.optim.Adam, {"lr": 3e-3, "betas": (0.8, 0.99), "amsgrad": True}),
    (AdamW, torch.optim.AdamW, {"lr": 3e-3, "weight_decay": 0.05}),
    (NAdam, torch.optim.NAdam, {"lr": 3e-3}),
    (NAdam, torch.optim.NAdam, {"lr": 3e-3, "weight_decay": 0.01, "decoupled_weight_decay": True}),
    (Adagrad, torch.optim.Adagrad, {"lr": 0.05, "lr_decay": 0.01, "weight_decay": 1e-3}),
    (Adagrad, torch.optim.Adagrad, {"lr": 0.05, "initial_accumulator_value": 0.1}),
    (RMSprop, torch.optim.RMSprop, {"lr": 1e-3}),
    (RMSprop, torch.optim.RMSprop, {"lr": 1e-3, "momentum": 0.9, "centered": True, "weight_decay": 1e-3}),
]
IDS = [
    "sgd", "sgd-nesterov-wd", "sgd-dampening", "adam-wd", "adam-amsgrad", "adamw", "nadam",
    "nadam-decoupled", "adagrad-decay", "adagrad-init", "rmsprop", "rmsprop-centered-momentum",
]


@pytest.mark.parametrize(("cls", "reference", "hp"), CASES, ids=IDS)
def test_single_tensor_mode_matches_torch_step_for_step(eq, cls, reference, hp):
    """ensemble_dims=0: the same trajectory as torch.optim over 50 steps (fp32 rounding)."""
    ours = eq.run_single(eq.ours(cls, hp), seed=1, steps=eq.steps)
    ref = eq.run_single(lambda p: [reference(list(p.values()), **hp)], seed=1, steps=eq.steps)
    eq.assert_params_match(ours, ref, tol=1e-5)


@pytest.mark.parametrize(("cls", "reference", "hp"), CASES, ids=IDS)
def test_each_ensemble_member_matches_its_own_torch_optimizer(eq, cls, reference, hp):
    """ensemble_dims=1: member i equals torch.optim trained alone on seed i."""
    ensemble, _ = eq.run_ensemble(cls, hp, eq.seeds, eq.steps)
    eq.assert_ensemble_matches(
        ensemble, eq.seeds, lambda p: [reference(list(p.values()), **hp)], eq.steps, tol=1e-5
    )
