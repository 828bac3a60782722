"""A third-party optimizer by import path runs through the loop mode into the same store."""

from __future__ import annotations

from optiscope.config import parse_config
from optiscope.engine.runner import run_experiment
from optiscope.store import RunStore


def test_pytorch_optimizer_ranger_runs_by_import_path_beside_a_builtin(tmp_path):
    cfg = parse_config({
        "experiment": {"name": "third-party", "seeds": 2, "steps": 6, "eval_every": 3},
        "tasks": [{"name": "mnist1d-mlp", "hidden": 8}],
        "optimizers": [
            {"name": "pytorch_optimizer:Ranger", "lr": 1e-2},
            {"name": "sam", "lr": 0.1},
        ],
    })
    store = RunStore.create(tmp_path / "store")
    summary = run_experiment(cfg, store, device="cpu")
    assert not summary.failed and len(summary.trained) == 2
    runs = store.fetch(
        "SELECT optimizer, mode, status, grad_evals FROM runs ORDER BY optimizer, seed"
    )
    assert list(runs["optimizer"]) == ["pytorch_optimizer:Ranger"] * 2 + ["sam"] * 2
    assert list(runs["mode"]) == ["loop", "loop", "ensemble", "ensemble"]
    assert set(runs["status"]) == {"ok"}
    assert list(runs["grad_evals"]) == [6, 6, 12, 12]  # SAM's two gradients per step, counted
    curves = store.fetch(
        "SELECT r.optimizer, count(*) AS n FROM metrics m JOIN runs r USING (run_id) "
        "WHERE m.name = 'train_loss' GROUP BY ALL ORDER BY 1"
    )
    assert list(curves["n"]) == [6, 6]  # steps 0, 3, 6 for both seeds of both optimizers
