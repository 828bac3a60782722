"""Running experiments into a store: determinism, resumption, failures recorded."""

from __future__ import annotations

import numpy as np
import pytest
import torch

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
    (batch,) = store.batch_ids(first.trained[0])
    mtime = (store.root / "runs" / f"{batch}.parquet").stat().st_mtime_ns
    second = run_experiment(
        tiny_config(optimizers=[{"name": "sgd", "lr": 0.1}, {"name": "adam"}]), store
    )
    assert second.skipped == first.trained and len(second.trained) == 1
    assert (store.root / "runs" / f"{batch}.parquet").stat().st_mtime_ns == mtime
    n = store.query("SELECT count(*) FROM runs")[1][0][0]
    assert n == 6


def test_a_cell_that_raises_is_recorded_failed_and_the_rest_go_on(tmp_path, monkeypatch):
    import optiscope.engine.runner as runner

    real = runner.make_trainer

    def broken(cell, device, probe_runner=None, **kwargs):
        if cell.optimizer == "adam":
            raise RuntimeError("boom")
        return real(cell, device, probe_runner, **kwargs)

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
    # Same algorithm, same seeds and data order: the two modes agree closely. 20 free-running
    # steps, measured relative gap of train_loss at most 2.1e-7 at steps 0, 10, 20 (ATEN_CPU_CAPABILITY
    # default / avx2 / avx512 x 1 and 2 threads): rtol 1e-4 leaves a margin of about 500x.
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


@pytest.mark.parametrize(
    ("ours", "theirs", "hp"),
    [("sgd", "torch.optim:SGD", {"lr": 0.05, "momentum": 0.9}), ("adam", "torch.optim:Adam", {"lr": 1e-2})],
    ids=["sgd", "adam"],
)
def test_loop_mode_stores_what_ensemble_mode_stores(tmp_path, ours, theirs, hp):
    """The same cell through both step strategies: the same rows, the same counters, and values
    that agree to float32 rounding (vmapped and per-member kernels round differently). Measured
    on this 20-step horizon: losses at most 2.2e-7 relative apart, accuracies equal; the
    tolerances leave a margin of 45x, and of a few test samples flipping class."""
    store = RunStore.create(tmp_path / "s")
    run_experiment(tiny_config(optimizers=[{"name": ours, **hp}, {"name": theirs, **hp}],
                               eval_every=5, log_every=1), store)
    d = store.fetch(
        "SELECT r.mode, r.seed, m.step, m.name, m.value FROM metrics m JOIN runs r USING (run_id) "
        "WHERE m.name <> 'time_s' ORDER BY r.mode, r.seed, m.step, m.name"
    )
    ens, loop = d["mode"] == "ensemble", d["mode"] == "loop"
    assert ens.sum() == loop.sum() > 0
    for col in ("seed", "step", "name"):
        assert (d[col][ens] == d[col][loop]).all(), col
    names = d["name"][ens]
    assert {"batch_loss", "train_loss", "grad_evals", "func_evals"} <= set(names)
    a, b = d["value"][ens].astype(float), d["value"][loop].astype(float)
    counters = np.isin(names, ["grad_evals", "func_evals"])
    accuracies = np.char.endswith(names.astype(str), "_acc")
    assert (a[counters] == b[counters]).all()
    np.testing.assert_allclose(b[accuracies], a[accuracies], rtol=0, atol=5e-3)
    losses = ~counters & ~accuracies
    np.testing.assert_allclose(b[losses], a[losses], rtol=1e-5, atol=0)


def test_a_killed_loop_mode_run_resumes_from_its_checkpoint_on_the_same_trajectory(tmp_path, killed_after):
    cfg = tiny_config(optimizers=[{"name": "torch.optim:Adam", "lr": 1e-2}], checkpoint_every=5)
    killed = RunStore.create(tmp_path / "killed")
    with pytest.raises(KeyboardInterrupt):
        run_experiment(cfg, killed, progress=killed_after(kill_at=12))
    (cell,) = cfg.cells()
    assert killed.load_checkpoint(cell.batch_id)["step"] == 10
    resumed = killed_after()
    run_experiment(cfg, killed, progress=resumed)
    assert resumed.advances[0] == 10  # it started from the checkpoint, not from step 0
    straight = RunStore.create(tmp_path / "straight")
    run_experiment(cfg, straight)
    assert all_metrics(killed) == all_metrics(straight)
    a, b = killed.load_params(cell.batch_id), straight.load_params(cell.batch_id)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
