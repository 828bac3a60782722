"""Seeds on demand: a cell is a setting and a run a (setting, seed), so raising `seeds` trains
only the seeds the store lacks and every analysis sees the cell's runs together.

The reference for "the same runs" is training every seed in one batch: a seed's result must not
depend on which batch, pack or chunk it was trained in. Equal to the measured float tolerance of
the ensemble-vs-loop tests (vmapped batches of different sizes may round differently).
"""

from __future__ import annotations

import numpy as np
import pytest

from optiscope.config import parse_config
from optiscope.engine.runner import plan_missing, run_experiment
from optiscope.report.data import StoreView
from optiscope.store import RunStore


def config(seeds, **experiment):
    return parse_config({
        "experiment": {"name": "more-seeds", "seeds": seeds, "steps": 20, "eval_every": 10, **experiment},
        "tasks": [{"name": "mnist1d-mlp", "hidden": 16}],
        # an lr grid packs into one ensemble; adam runs alone
        "optimizers": [{"name": "sgd", "lr": [0.05, 0.1], "momentum": 0.9}, {"name": "adam", "lr": 1e-3}],
    })


def runs_by_seed(store: RunStore) -> dict[tuple[str, int, int, str], float]:
    """(label, seed, step, name) -> value over the whole store (wall time left out)."""
    _, rows = store.query(
        "SELECT r.label, r.seed, m.step, m.name, m.value FROM metrics m JOIN runs r USING (run_id) "
        "WHERE m.name <> 'time_s'"
    )
    return {(label, int(seed), int(step), name): value for label, seed, step, name, value in rows}


def assert_same_runs(a: RunStore, b: RunStore) -> None:
    ra, rb = runs_by_seed(a), runs_by_seed(b)
    assert ra.keys() == rb.keys() and ra
    keys = sorted(ra)
    np.testing.assert_allclose([ra[k] for k in keys], [rb[k] for k in keys], rtol=2e-5, atol=1e-6)


def test_seeds_added_in_two_batches_equal_one_batch(tmp_path):
    two = RunStore.create(tmp_path / "two")
    first = run_experiment(config(3), two)
    assert len(first.trained) == 3
    second = run_experiment(config(6), two)  # 3 new seeds per cell, as one batch per cell
    assert sorted(second.trained) == sorted(first.trained)  # the same cells, grown
    assert two.query("SELECT count(*) FROM runs")[1][0][0] == 18
    assert len(two.completed_batches()) == 6 and len(two.completed_cells()) == 3
    one = RunStore.create(tmp_path / "one")
    run_experiment(config(6), one)
    assert_same_runs(two, one)
    # every analysis sees a cell's runs together
    view = StoreView.load(two)
    assert len(view.cells) == 3 and all(sorted(c.seeds) == list(range(6)) for c in view.cells)
    # a third run has nothing to do
    third = run_experiment(config(6), two)
    assert not third.trained and len(third.skipped) == 3


def test_an_explicit_seed_list_and_chunking_give_the_same_runs(tmp_path):
    """`seeds = [3, 4, 5]` after `seeds = 3`, trained one member at a time (memory chunks)."""
    parts = RunStore.create(tmp_path / "parts")
    run_experiment(config(3), parts)
    run_experiment(config([3, 4, 5], max_memory_gb=1e-7), parts)
    one = RunStore.create(tmp_path / "one")
    run_experiment(config(6), one)
    assert_same_runs(parts, one)
    assert parts.query("SELECT count(DISTINCT chunk_size) FROM runs WHERE seed >= 3")[1][0][0] == 1
    assert parts.query("SELECT max(chunk_size) FROM runs WHERE seed >= 3")[1][0][0] == 1


def test_lowering_seeds_analyses_the_subset_and_deletes_nothing(tmp_path):
    store = RunStore.create(tmp_path / "s")
    run_experiment(config(4), store)
    summary = run_experiment(config(2), store)
    assert not summary.trained and len(summary.skipped) == 3
    assert store.query("SELECT count(*) FROM runs")[1][0][0] == 12
    view = StoreView.load(store, seeds=[0, 1])
    assert all(c.seeds == [0, 1] for c in view.cells)
    steps, values = view.curves(view.cells[0], "test_acc")
    assert values.shape[0] == 2 and len(steps)


def test_plan_missing_names_only_the_seeds_the_store_lacks(tmp_path):
    store = RunStore.create(tmp_path / "s")
    run_experiment(config(2), store)
    plan = plan_missing(config([0, 1, 2, 7]).cells(), store)
    assert not plan.complete and [c.seeds for c in plan.todo] == [(2, 7)] * 3
    assert [c.cell_id for c in plan.todo] == [c.cell_id for c in config(2).cells()]


def test_a_failed_batch_is_trained_again_and_leaves_one_run_per_seed(tmp_path, monkeypatch):
    from optiscope.engine import work

    store = RunStore.create(tmp_path / "s")
    cfg = config(2)
    real = work._train

    def broken(unit, *a, **kw):
        if unit.cells[0].optimizer == "adam":
            raise RuntimeError("planted failure")
        return real(unit, *a, **kw)

    monkeypatch.setattr(work, "_train", broken)
    first = run_experiment(cfg, store)
    assert len(first.failed) == 1
    monkeypatch.setattr(work, "_train", real)
    second = run_experiment(config(3), store)  # the failed seeds 0, 1 and the new seed 2
    assert len(second.trained) == 3 and not second.failed
    counts = store.query("SELECT cell_id, seed, count(*) FROM runs GROUP BY ALL HAVING count(*) > 1")[1]
    assert counts == []
    assert store.query("SELECT count(*) FROM runs WHERE status = 'failed'")[1][0][0] == 0
    assert store.query("SELECT count(*) FROM runs")[1][0][0] == 9


@pytest.mark.parametrize("seeds", [2])
def test_final_params_of_a_grown_cell_cover_every_seed(tmp_path, seeds):
    store = RunStore.create(tmp_path / "s")
    run_experiment(config(seeds), store)
    run_experiment(config(seeds + 2), store)
    one = RunStore.create(tmp_path / "one")
    run_experiment(config(seeds + 2), one)
    for cell in config(seeds + 2).cells():
        grown, whole = store.final_params(cell.cell_id), one.final_params(cell.cell_id)
        assert sorted(grown) == list(range(seeds + 2))
        for seed in grown:
            for name, tensor in grown[seed]["final"].items():
                np.testing.assert_allclose(tensor.numpy(), whole[seed]["final"][name].numpy(), rtol=2e-5, atol=1e-6)
