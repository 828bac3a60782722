"""Running experiments into a store: determinism, resumption, failures recorded."""

from __future__ import annotations

import numpy as np
import pytest

from optiscope.config import parse_config
from optiscope.engine.runner import run_experiment
from optiscope.store import RunStore


def tiny_config(name="tiny", optimizers=None, **experiment):
    return parse_config(
        {
            "experiment": {"name": name, "seeds": 3, "steps": 20, "eval_every": 10, **experiment},
            "tasks": [{"name": "mnist1d-mlp", "hidden": 16}],
            "optimizers": optimizers
            or [{"name": "sgd", "lr": 0.1, "momentum": 0.9}, {"name": "adam", "lr": 1e-3}],
        }
    )


def all_metrics(store: RunStore):
    # time_s is wall-clock time, the one stored metric that is not a function of the config.
    return store.query(
        "SELECT run_id, step, name, value FROM metrics WHERE name <> 'time_s' ORDER BY ALL"
    )[1]


def test_same_config_twice_gives_identical_metrics(tmp_path):
    a, b = RunStore.create(tmp_path / "a"), RunStore.create(tmp_path / "b")
    run_experiment(tiny_config(), a)
    run_experiment(tiny_config(), b)
    rows = all_metrics(a)
    assert len(rows) > 0
    assert rows == all_metrics(b)


def test_rerun_skips_complete_cells_and_trains_new_ones(tmp_path):
    store = RunStore.create(tmp_path / "s")
    first = run_experiment(tiny_config(optimizers=[{"name": "sgd", "lr": 0.1}]), store)
    assert len(first.trained) == 1
    mtime = (store.root / "runs" / f"{first.trained[0]}.parquet").stat().st_mtime_ns
    second = run_experiment(
        tiny_config(optimizers=[{"name": "sgd", "lr": 0.1}, {"name": "adam"}]), store
    )
    assert second.skipped == first.trained and len(second.trained) == 1
    assert (store.root / "runs" / f"{first.trained[0]}.parquet").stat().st_mtime_ns == mtime
    n = store.query("SELECT count(*) FROM runs")[1][0][0]
    assert n == 6


def test_a_cell_that_raises_is_recorded_failed_and_the_rest_go_on(tmp_path, monkeypatch):
    import optiscope.engine.runner as runner

    real = runner.make_trainer

    def broken(cell, device, probe_runner=None):
        if cell.optimizer == "adam":
            raise RuntimeError("boom")
        return real(cell, device, probe_runner)

    monkeypatch.setattr(runner, "make_trainer", broken)
    store = RunStore.create(tmp_path / "s")
    summary = run_experiment(tiny_config(), store)
    assert len(summary.trained) == 1 and len(summary.failed) == 1
    statuses = dict(store.query("SELECT optimizer, any_value(status) FROM runs GROUP BY 1")[1])
    assert statuses == {"sgd": "ok", "adam": "failed"}
    error = store.query("SELECT any_value(error) FROM runs WHERE status = 'failed'")[1][0][0]
    assert "boom" in error
    # The failed cell is tried again by a rerun; the good one is not.
    monkeypatch.setattr(runner, "make_trainer", real)
    again = run_experiment(tiny_config(), store)
    assert len(again.trained) == 1 and len(again.skipped) == 1
    assert store.query("SELECT DISTINCT status FROM runs")[1] == [("ok",)]


def test_third_party_optimizer_runs_in_loop_mode_beside_builtins(tmp_path):
    store = RunStore.create(tmp_path / "s")
    cfg = tiny_config(optimizers=[{"name": "adam"}, {"name": "torch.optim:Adam"}])
    run_experiment(cfg, store)
    modes = dict(store.query("SELECT optimizer, any_value(mode) FROM runs GROUP BY 1")[1])
    assert modes == {"adam": "ensemble", "torch.optim:Adam": "loop"}
    # Same algorithm, same seeds and data order: the two modes agree closely.
    d = store.fetch(
        "SELECT r.optimizer, r.seed, m.value FROM metrics m JOIN runs r USING (run_id) "
        "WHERE m.name = 'train_loss' AND m.step = 20 ORDER BY r.optimizer, r.seed"
    )
    ours, theirs = d["value"][:3], d["value"][3:]
    np.testing.assert_allclose(ours, theirs, rtol=1e-4)


def test_unavailable_cuda_is_a_clear_error(tmp_path):
    import torch

    from optiscope.engine.runner import resolve_device
    from optiscope.errors import OptiscopeError

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(OptiscopeError, match="no CUDA GPU"):
        resolve_device("cuda")


def test_task_metadata_such_as_the_corpus_hash_is_stored_with_each_run(tmp_path):
    import json

    from optiscope.tasks import make_task

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("def f(x):\n    return x + 1\n" * 200)
    store = RunStore.create(tmp_path / "s")
    cfg = parse_config(
        {
            "experiment": {"name": "lm", "seeds": 2, "steps": 2, "eval_every": 2},
            "tasks": [{"name": "byte-transformer", "corpus": str(corpus), "d_model": 8,
                       "n_layers": 1, "n_heads": 2, "context": 8, "eval_windows": 4}],
            "optimizers": [{"name": "adam"}],
        }
    )
    run_experiment(cfg, store)
    stored = {json.loads(r[0])["corpus_sha256"] for r in store.query("SELECT task_metadata FROM runs")[1]}
    expected = make_task("byte-transformer", corpus=str(corpus)).metadata()["corpus_sha256"]
    assert stored == {expected}
