"""The run store: atomic landing, completion marks, reading back with DuckDB."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import torch

from optiscope.errors import OptiscopeError
from optiscope.store import RunStore


def run_row(cell: str, seed: int, status: str = "ok") -> dict:
    return {
        "run_id": f"{cell}-s{seed}", "cell_id": cell, "experiment": "e", "task": "t",
        "task_settings": "{}", "optimizer": "sgd", "label": "sgd", "hyperparameters": "{}",
        "seed": seed, "member": seed, "status": status, "diverged_step": None, "steps": 3,
        "grad_evals": 3, "wall_time_s": 0.1, "mode": "ensemble", "device": "cpu",
        "versions": "{}", "error": None, "created_at": dt.datetime.now(dt.timezone.utc),
    }


def metrics(cell: str, seeds: list[int]) -> dict:
    run_id = np.array([f"{cell}-s{s}" for s in seeds for _ in range(3)], dtype=object)
    return {
        "run_id": run_id,
        "step": np.tile(np.arange(3), len(seeds)),
        "name": np.array(["loss"] * len(run_id), dtype=object),
        "value": np.arange(len(run_id), dtype=float),
    }


def test_written_cells_read_back_and_mark_completion(tmp_store):
    assert tmp_store.query("SELECT count(*) FROM runs")[1] == [(0,)]
    tmp_store.write_cell("c1", [run_row("c1", 0), run_row("c1", 1)], metrics("c1", [0, 1]))
    assert tmp_store.is_complete("c1") and not tmp_store.is_complete("c2")
    assert tmp_store.completed_cells() == {"c1"}
    cols, rows = tmp_store.query("SELECT run_id, sum(value) AS total FROM metrics GROUP BY 1 ORDER BY 1")
    assert cols == ["run_id", "total"]
    assert rows == [("c1-s0", 3.0), ("c1-s1", 12.0)]


def test_metrics_of_a_cell_without_its_runs_file_are_invisible(tmp_store):
    """A crash between the metrics file and the runs file (the commit) leaves no half cell."""
    tmp_store.write_cell("c1", [run_row("c1", 0)], metrics("c1", [0]))
    (tmp_store.root / "runs" / "c1.parquet").rename(tmp_store.root / "c1.bak")
    tmp_store.write_cell("c2", [run_row("c2", 0)], metrics("c2", [0]))
    (tmp_store.root / "c1.bak").rename(tmp_store.root / "runs" / "c1.parquet.tmp")  # torn write
    assert tmp_store.query("SELECT DISTINCT run_id FROM metrics")[1] == [("c2-s0",)]
    assert tmp_store.completed_cells() == {"c2"}


def test_params_round_trip_through_safetensors(tmp_store):
    params = {"w": torch.randn(4, 3, 2), "init.w": torch.zeros(4, 3, 2)}
    tmp_store.save_params("c", params)
    back = tmp_store.load_params("c")
    assert set(back) == {"w", "init.w"} and torch.equal(back["w"], params["w"])


def test_failed_cells_are_listed_for_retry(tmp_store):
    tmp_store.write_cell("c1", [run_row("c1", 0, "failed")], metrics("c1", []))
    tmp_store.write_cell("c2", [run_row("c2", 0, "diverged")], metrics("c2", [0]))
    assert tmp_store.failed_cells() == {"c1"}


def test_opening_something_that_is_not_a_store_says_so(tmp_path):
    with pytest.raises(OptiscopeError, match="not an optiscope store"):
        RunStore.open(tmp_path)
