"""The fast per-member Adam path (optiscope.optim.kernels): torch's fused kernel called once per
run of members that share their settings, checked against torch.optim.Adam/AdamW per member
(teacher-forced, conftest.lockstep), against the unfused transform chain it replaces, and for
its bookkeeping (runs, cached views, settings changed in place, checkpoints)."""

from __future__ import annotations

import pytest
import torch

from optiscope.engine import EnsembleTrainer
from optiscope.optim import Adam, AdamW
from optiscope.optim.kernels import member_columns, member_runs, scalar_settings

F64 = torch.float64


def test_member_runs_are_the_maximal_stretches_of_equal_settings():
    columns = {
        "lr": torch.tensor([1.0, 1.0, 2.0, 2.0, 2.0, 1.0], dtype=F64),
        "betas.0": torch.tensor([0.9, 0.9, 0.9, 0.9, 0.5, 0.5], dtype=F64),
    }
    runs = member_runs(columns)
    assert [(a, b) for a, b, _ in runs] == [(0, 2), (2, 4), (4, 5), (5, 6)]
    assert runs[2][2] == {"lr": 2.0, "betas.0": 0.5}
    assert [(a, b) for a, b, _ in member_runs({"lr": torch.ones(4, dtype=F64)})] == [(0, 4)]


def test_settings_of_a_run_fill_in_tuples_and_numbers():
    group = {"lr": torch.ones(2, dtype=F64), "betas": (torch.ones(2, dtype=F64), 0.999), "eps": 1e-8}
    columns = member_columns(group, ("lr", "betas", "eps"))
    assert set(columns) == {"lr", "betas.0"}
    settings = scalar_settings(group, ("lr", "betas", "eps"), {"lr": 0.1, "betas.0": 0.8})
    assert settings == {"lr": 0.1, "betas": (0.8, 0.999), "eps": 1e-8}


#: A 2 x 2 grid (lr x beta1) packed cell by cell, two seeds per cell; then all members distinct.
SEEDS = [0, 5]
GRID = [(3e-3, 0.9), (3e-3, 0.5), (1e-2, 0.9), (1e-2, 0.5)]


def grid_hp(points, wd: float) -> dict:
    lr = torch.tensor([p[0] for p in points for _ in SEEDS], dtype=F64)
    beta1 = torch.tensor([p[1] for p in points for _ in SEEDS], dtype=F64)
    return {"lr": lr, "betas": (beta1, 0.999), "weight_decay": wd}


@pytest.mark.parametrize(("cls", "reference", "wd"), [
    (Adam, torch.optim.Adam, 1e-3), (AdamW, torch.optim.AdamW, 0.05),
], ids=["adam", "adamw"])
def test_per_member_fused_runs_match_torch_optim_per_member(eq, cls, reference, wd):
    """Each member takes torch.optim's steps at its own lr and betas, 50 teacher-forced steps.
    Margin (measured, x86-64, one thread): worst update error 1.3e-7, tolerance 1e-5."""
    run = eq.EnsembleRun(cls, grid_hp(GRID, wd), SEEDS * len(GRID))
    assert run.trainer.optimizer.use_fused()
    refs = [
        eq.SingleRun(
            lambda p, lr=lr, b1=b1: [reference(list(p.values()), lr=lr, betas=(b1, 0.999), weight_decay=wd)],
            seed,
        )
        for lr, b1 in GRID for seed in SEEDS
    ]
    eq.lockstep(run, refs, eq.steps, tol=1e-5)


def test_fused_runs_equal_the_unfused_chain(eq):
    """The new path against the old one (the transform chain, `fused=False`), every member
    distinct: 5 free-running steps agree to rounding (measured worst 2e-7, tolerance 1e-5)."""
    points = [(lr, b1) for lr in (1e-3, 3e-3, 1e-2) for b1 in (0.9, 0.5)]
    hp = grid_hp(points, 1e-3)
    fast, trainer = eq.run_ensemble(Adam, hp, SEEDS * len(points), 5)
    slow, _ = eq.run_ensemble(Adam, {**hp, "fused": False}, SEEDS * len(points), 5)
    start = trainer.strategy.init_params
    for k in fast:
        assert eq.update_err(start[k], fast[k], slow[k]) < 1e-5, k


def test_a_per_member_lr_changed_in_place_is_used_at_the_next_step(eq):
    """A scheduler may scale the lr tensor in place: the cached runs must notice."""
    hp = grid_hp(GRID, 0.0)
    a = eq.EnsembleRun(Adam, hp, SEEDS * len(GRID))
    b = eq.EnsembleRun(Adam, {**hp, "fused": False}, SEEDS * len(GRID))
    for run in (a, b):
        run.step()
        group = run.trainer.optimizer.param_groups[0]
        group["lr"].mul_(torch.tensor([1.0, 1.0, 0.1, 0.1, 1.0, 1.0, 3.0, 3.0], dtype=F64))
        run.step()
    for k, v in a.trainer.params.items():
        assert eq.rel_err(v.detach(), b.trainer.params[k].detach()) < 1e-6, k


def test_checkpoint_round_trip_with_per_member_values(eq):
    hp = grid_hp(GRID, 1e-3)
    seeds = SEEDS * len(GRID)
    straight = EnsembleTrainer(eq.small_task(), Adam, hp, seeds)
    for _ in range(3):
        straight.train_step()
    saved = straight.state()
    for _ in range(3):
        straight.train_step()
    resumed = EnsembleTrainer(eq.small_task(), Adam, grid_hp(GRID, 1e-3), seeds)
    resumed.load_state(saved)
    group = resumed.optimizer.param_groups[0]
    assert group["lr"].dtype == F64 and group["betas"][0].dtype == F64
    for _ in range(3):
        resumed.train_step()
    for k, v in resumed.params.items():
        assert torch.equal(v.detach(), straight.params[k].detach()), k
