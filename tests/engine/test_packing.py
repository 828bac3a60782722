"""Packing cells into one ensemble: which cells pack, and packing is invisible to the store."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from optiscope.config import parse_config
from optiscope.engine import work
from optiscope.engine.packing import (
    MemberCost,
    concat_results,
    per_member_hyperparameters,
    split_result,
)
from optiscope.engine.runner import train_cells
from optiscope.engine.work import PackFallbackWarning, UnitContext, WorkUnit, plan_units, train_unit
from optiscope.store import RunStore


def grid_config(optimizers, *, seeds=3, steps=12, tasks=None, probes=None, **experiment):
    raw = {
        "experiment": {"name": "grid", "seeds": seeds, "steps": steps, "eval_every": 4,
                       "log_every": 1, **experiment},
        "tasks": tasks or [{"name": "mnist1d-mlp", "hidden": 16}],
        "optimizers": optimizers,
    }
    if probes:
        raw["probes"] = probes
    return parse_config(raw)


def runs_of(store: RunStore) -> list[tuple]:
    """Every run row but the times and the creation stamp, in a fixed order."""
    cols = ("run_id, cell_id, label, optimizer, hyperparameters, seed, member, status, "
            "diverged_step, steps, grad_evals, func_evals, mode, role, chunk_size")
    return store.query(f"SELECT {cols} FROM runs ORDER BY run_id")[1]


def metrics_of(store: RunStore) -> dict[str, np.ndarray]:
    # time_s is wall-clock time: shared among a pack's cells, never equal to a lone run's.
    return store.fetch("SELECT run_id, step, name, value FROM metrics WHERE name <> 'time_s' ORDER BY ALL")


def train_both(tmp_path, cfg, ctx=None, **kw):
    """The config's cells trained packed and unpacked; the packed run must not fall back."""
    ctx = ctx or UnitContext("cpu")
    packed, alone = RunStore.create(tmp_path / "packed"), RunStore.create(tmp_path / "alone")
    with warnings.catch_warnings():
        warnings.simplefilter("error", PackFallbackWarning)
        train_cells(cfg.cells(), packed, ctx, pack=True, **kw)
    train_cells(cfg.cells(), alone, ctx, pack=False, **kw)
    return packed, alone


def assert_same_store(packed: RunStore, alone: RunStore, rtol: float = 1e-5) -> None:
    """The same rows, counters exactly, values to float32 rounding. A packed member's vmapped
    kernels see a batch of 12 members rather than 3 (and evaluation chunks of 8), which rounds
    differently: over these 12 steps the largest relative gap measured was 2.1e-7 (losses; Adam,
    SGD with momentum, AdamW over weight decay; 1 and 2 threads); rtol 1e-5 leaves a margin of
    about 45x.
    Accuracies agree exactly there; atol 5e-3 allows a few test samples to flip class."""
    assert runs_of(packed) == runs_of(alone)
    a, b = metrics_of(packed), metrics_of(alone)
    assert len(a["value"]) > 0
    for col in ("run_id", "step", "name"):
        assert (a[col] == b[col]).all(), col
    names = a["name"].astype(str)
    counters = np.isin(names, ["grad_evals", "func_evals"])
    accuracies = np.char.endswith(names, "_acc")
    va, vb = a["value"].astype(float), b["value"].astype(float)
    assert np.array_equal(va[counters], vb[counters])
    np.testing.assert_allclose(va[accuracies], vb[accuracies], rtol=0, atol=5e-3)
    rest = ~counters & ~accuracies
    np.testing.assert_allclose(va[rest], vb[rest], rtol=rtol, atol=1e-7, equal_nan=True)


# -- which cells pack -------------------------------------------------------------------------
def test_an_lr_grid_packs_into_one_unit_and_other_differences_do_not():
    cfg = grid_config(
        [{"name": "adam", "lr": [1e-3, 3e-3, 1e-2, 3e-2]},        # one pack of 4
         {"name": "adam", "lr": 1e-3, "amsgrad": True},            # a bool differs: alone
         {"name": "sgd", "lr": [0.1, 0.2], "nesterov": True, "momentum": 0.9},   # another pack
         {"name": "sgd", "lr": 0.1, "steps": 6},                   # another budget: alone
         {"name": "sgd_armijo", "init_step_size": [1.0, 2.0]},     # line search: alone
         {"name": "torch.optim:Adam"}],                            # loop mode: alone
        tasks=[{"name": "mnist1d-mlp", "hidden": [8, 16]}],        # two task settings: apart
    )
    units = plan_units(cfg.cells())
    assert [len(u.cells) for u in units] == [4, 1, 2, 1, 1, 1, 1] * 2
    for u in units:
        assert len({(c.task_settings["hidden"], c.optimizer, c.steps) for c in u.cells}) == 1
    assert units[0].n_members == 12 and units[0].unit_id.startswith("pack-")
    assert units[1].unit_id == units[1].cells[0].batch_id  # a lone cell: its batch id
    assert all(len(u.cells) == 1 for u in plan_units(cfg.cells(), pack=False))


def test_packs_are_capped_and_roles_kept_apart():
    from dataclasses import replace

    cells = grid_config([{"name": "adam", "lr": [1e-3, 2e-3, 3e-3, 4e-3, 5e-3]}]).cells()
    assert [len(u.cells) for u in plan_units(cells, max_pack_members=6)] == [2, 2, 1]
    trials = [replace(c, role="trial") for c in cells[:2]]
    assert [len(u.cells) for u in plan_units(cells[:2] + trials)] == [2, 2]


def test_per_member_values_follow_the_cells_seed_by_seed():
    cells = grid_config([{"name": "adam", "lr": [0.1, 0.2], "betas": [[0.9, 0.99], [0.8, 0.99]]}],
                        seeds=2).cells()
    hp = per_member_hyperparameters(cells)
    assert set(hp) == {"lr", "betas"}  # eps, weight_decay, ... are shared
    assert hp["lr"].dtype == torch.float64
    assert hp["lr"].tolist() == [0.1, 0.1, 0.1, 0.1, 0.2, 0.2, 0.2, 0.2]
    assert hp["betas"][0].tolist() == [0.9, 0.9, 0.8, 0.8] * 2
    assert hp["betas"][1].tolist() == [0.99] * 8


# -- packing is invisible to the store ----------------------------------------------------------
@pytest.mark.parametrize(
    "optimizer",
    [{"name": "adam", "lr": [1e-3, 3e-3, 1e-2, 3e-2]},
     {"name": "sgd", "lr": [0.01, 0.03, 0.1, 0.3], "momentum": 0.9},
     {"name": "adamw", "lr": 1e-2, "weight_decay": [0.0, 0.01, 0.1, 1.0]}],
    ids=["adam", "sgd-momentum", "adamw-weight-decay"],
)
def test_a_packed_grid_lands_what_separate_cells_land(tmp_path, optimizer):
    # (Muon is left to the optimizers' own per-member tests: its Newton-Schulz iteration
    # amplifies the first rounding difference, measured 1.8e-5 relative by step 12 here.)
    cfg = grid_config([optimizer])
    assert [len(u.cells) for u in plan_units(cfg.cells())] == [4]
    assert_same_store(*train_both(tmp_path, cfg))


def test_a_diverging_cell_of_a_pack_stops_alone_and_the_others_go_on(tmp_path):
    cfg = grid_config([{"name": "sgd", "lr": [0.05, 1e12, 0.1], "momentum": 0.9}])
    packed, alone = train_both(tmp_path, cfg)
    assert_same_store(packed, alone)
    low, high, mid = (c.display_name for c in cfg.cells())
    status = dict(packed.query("SELECT label, string_agg(DISTINCT status) FROM runs GROUP BY 1")[1])
    assert status == {low: "ok", high: "diverged", mid: "ok"}
    # Alone, the diverged cell stops when its last member diverges: fewer gradient evaluations
    # than the cells that ran on (runs_of compared them equal between packed and alone).
    evals = dict(packed.query("SELECT label, max(grad_evals) FROM runs GROUP BY 1")[1])
    assert evals[high] < evals[low] == evals[mid] == 12


def test_a_pack_that_raises_trains_its_cells_one_by_one(tmp_path, monkeypatch):
    import optiscope.engine.runner as runner

    real = runner.make_trainer

    def broken(cell, device, probe_runner=None, **kw):
        lrs = kw["per_member"]["lr"].tolist() if kw.get("per_member") else [cell.hyperparameters["lr"]]
        if 0.3 in lrs:
            raise RuntimeError("boom")
        return real(cell, device, probe_runner, **kw)

    monkeypatch.setattr(runner, "make_trainer", broken)
    store = RunStore.create(tmp_path / "s")
    cfg = grid_config([{"name": "sgd", "lr": [0.1, 0.3, 0.2]}], steps=4)
    with pytest.warns(PackFallbackWarning, match="boom"):
        summary = train_cells(cfg.cells(), store, UnitContext("cpu"))
    assert len(summary.trained) == 2 and len(summary.failed) == 1
    status = dict(store.query("SELECT label, any_value(status) FROM runs GROUP BY 1")[1])
    assert status == {"sgd(lr=0.1)": "ok", "sgd(lr=0.3)": "failed", "sgd(lr=0.2)": "ok"}


def test_probes_that_compare_members_see_only_their_own_cell(tmp_path):
    # CKA and the loss barrier pair each member with another one: in a pack, with one of its
    # own cell's members, exactly as alone (the update ratio keeps state between probe steps).
    cfg = grid_config([{"name": "adam", "lr": [1e-3, 1e-2]}], steps=8, seeds=3,
                      probes={"probes": ["cka", "barrier", "update"], "cadence": "every", "every": 4})
    ctx = UnitContext("cpu", probe_config=dict(cfg.probes))
    packed, alone = train_both(tmp_path, cfg, ctx)
    names = set(metrics_of(packed)["name"].astype(str))
    assert "barrier_to_next" in names and any(n.startswith("cka/") for n in names)
    # Probes of near-zero values (barrier, update ratios of biases) have larger relative gaps:
    # measured at most 5.4e-6 (2.4e-7 absolute); rtol 1e-4 leaves a margin of about 17x.
    assert_same_store(packed, alone, rtol=1e-4)


def test_a_killed_pack_resumes_from_its_checkpoint_on_the_same_trajectory(tmp_path, killed_after):
    # lr = 1e12 diverges before the checkpoint: its early stop must survive the restart too.
    cfg = grid_config([{"name": "sgd", "lr": [0.05, 1e12, 0.1], "momentum": 0.9}])
    ctx = UnitContext("cpu", checkpoint_every=5)
    (unit,) = plan_units(cfg.cells())
    killed = RunStore.create(tmp_path / "killed")
    with pytest.raises(KeyboardInterrupt):
        train_cells(cfg.cells(), killed, ctx, progress=killed_after(kill_at=7))
    saved = killed.load_checkpoint(unit.unit_id)
    assert saved["step"] == 5 and len(saved["pack_stops"]) == 1
    resumed = killed_after()
    train_cells(cfg.cells(), killed, ctx, progress=resumed)
    assert resumed.advances[0] == 5  # from the checkpoint, not from step 0
    assert killed.load_checkpoint(unit.unit_id) is None  # the pack's checkpoint is gone
    straight = RunStore.create(tmp_path / "straight")
    train_cells(cfg.cells(), straight, ctx)
    assert runs_of(killed) == runs_of(straight)
    a, b = metrics_of(killed), metrics_of(straight)
    assert all((a[k] == b[k]).all() for k in ("run_id", "step", "name"))
    np.testing.assert_array_equal(a["value"], b["value"])  # same process, same kernels: exact
    for cell in cfg.cells():
        pa, pb = killed.load_params(cell.batch_id), straight.load_params(cell.batch_id)
        assert pa.keys() == pb.keys() and all(torch.equal(pa[k], pb[k]) for k in pa)


# -- chunks, and cutting and joining results ---------------------------------------------------
def test_a_chunked_pack_lands_what_one_ensemble_lands(tmp_path, monkeypatch):
    cfg = grid_config([{"name": "adam", "lr": [1e-3, 1e-2]}], steps=8)
    whole = RunStore.create(tmp_path / "whole")
    train_cells(cfg.cells(), whole, UnitContext("cpu"))
    monkeypatch.setattr(work, "member_chunk", lambda *args, **kw: 4)
    chunked = RunStore.create(tmp_path / "chunked")
    train_cells(cfg.cells(), chunked, UnitContext("cpu"))  # members 0-3 | 4-5: a cell split
    assert {r[-1] for r in runs_of(chunked)} == {4}
    strip = [r[:-1] for r in runs_of(chunked)]
    assert strip == [r[:-1] for r in runs_of(whole)]
    a, b = metrics_of(chunked), metrics_of(whole)
    assert all((a[k] == b[k]).all() for k in ("run_id", "step", "name"))
    np.testing.assert_allclose(a["value"], b["value"], rtol=1e-5, atol=1e-7)  # as above


def _ensemble_result(seeds, steps=6, lr=0.1):
    cfg = grid_config([{"name": "sgd", "lr": lr}], seeds=list(seeds), steps=steps)
    (outcome,) = train_unit(WorkUnit(tuple(cfg.cells())), UnitContext("cpu"))
    assert outcome.error is None, outcome.error
    return outcome.result


def _columns(result):
    cols = result.metrics.columns(result.diverged_step)
    keep = cols["name"] != "time_s"
    return {k: v[keep] for k, v in cols.items()}


def test_split_then_concat_gives_back_the_ensemble():
    result = _ensemble_result([0, 1, 2, 3, 4])
    parts = split_result(result, [2, 3])
    assert [p.seeds for p in parts] == [[0, 1], [2, 3, 4]]
    assert all(p.grad_evals == result.grad_evals for p in parts)
    joined = concat_results(parts)
    for k, v in _columns(result).items():
        np.testing.assert_array_equal(_columns(joined)[k], v)
    assert all(torch.equal(joined.final_params[k], result.final_params[k]) for k in result.final_params)
    assert all(torch.equal(joined.init_params[k], result.init_params[k]) for k in result.init_params)
    # Wall time is shared in proportion to members, and adds up to the ensemble's.
    assert sum(p.wall_time_s for p in parts) == pytest.approx(result.wall_time_s)
    assert parts[0].wall_time_s == pytest.approx(result.wall_time_s * 2 / 5)


def test_ensembles_trained_one_after_another_concat_to_one_trained_at_once():
    a, b = _ensemble_result([0, 1]), _ensemble_result([2, 3, 4])
    joined, whole = concat_results([a, b]), _ensemble_result([0, 1, 2, 3, 4])
    assert joined.seeds == whole.seeds and joined.wall_time_s == a.wall_time_s + b.wall_time_s
    cj, cw = _columns(joined), _columns(whole)
    assert all((cj[k] == cw[k]).all() for k in ("member", "step", "name"))
    np.testing.assert_allclose(cj["value"], cw["value"], rtol=1e-5, atol=1e-7)  # as above


def test_concat_fills_an_early_stopped_ensemble_and_drops_the_fill():
    stopped, ran = _ensemble_result([0, 1], lr=1e12), _ensemble_result([2])
    assert all(d is not None for d in stopped.diverged_step)
    joined = concat_results([stopped, ran])
    cols = joined.metrics.columns(joined.diverged_step)
    assert not np.isnan(cols["value"]).any()  # the filled entries lie past the divergence
    assert (cols["member"] == 2).sum() == len(ran.metrics.columns(ran.diverged_step)["member"])
    # Cut back with what each member spent, the stopped one keeps its own counters.
    cost = MemberCost.concat([MemberCost.uniform(stopped), MemberCost.uniform(ran)])
    back = split_result(joined, [2, 1], cost=cost)
    assert (back[0].grad_evals, back[1].grad_evals) == (stopped.grad_evals, ran.grad_evals)
    assert back[0].wall_time_s == pytest.approx(stopped.wall_time_s)


def test_split_rejects_sizes_that_do_not_add_up():
    with pytest.raises(ValueError, match="do not add up"):
        split_result(_ensemble_result([0, 1]), [1, 2])
