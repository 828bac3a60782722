"""Stores for report tests: hand-made ones with known answers, and small real ones."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence

import numpy as np
import pytest

from optiscope.store import RunStore


def write_cell(
    store: RunStore,
    cell_id: str,
    label: str,
    metrics: dict[str, np.ndarray],
    steps: Sequence[int],
    *,
    task: str = "quadratic",
    task_settings: dict | None = None,
    status: Sequence[str] | None = None,
    optimizer: str = "sgd",
    hyperparameters: dict | None = None,
    declare: bool = True,
    goals: dict[str, str | None] | None = None,
    error: str | None = None,
) -> None:
    """Land one made-up cell: `metrics[name]` is values[member, step] (NaN: no row), in the row
    shape optiscope.engine.landing.run_rows / land_cell produce.

    With `declare`, a `metric_info` table is written as landing does: the first metric is the
    task's headline, `goals` (default: f_gap and others min, basin categorical) gives the goals,
    and grad_evals / time_s are the engine's. `declare=False` makes a store as written before
    declarations existed."""
    n = next(iter(metrics.values())).shape[0]
    status = list(status or ["ok"] * n)
    now = dt.datetime.now(dt.timezone.utc)
    runs = [
        {
            "run_id": f"{cell_id}-s{i}", "cell_id": cell_id, "experiment": "handmade", "task": task,
            "task_settings": json.dumps(task_settings or {}, sort_keys=True), "optimizer": optimizer,
            "label": label, "hyperparameters": json.dumps(hyperparameters or {"lr": 0.1}),
            "seed": i, "member": i, "status": status[i],
            "diverged_step": 5 if status[i] == "diverged" else None, "steps": int(steps[-1]),
            "grad_evals": int(steps[-1]), "wall_time_s": 1.0, "mode": "ensemble", "device": "cpu",
            "versions": json.dumps({"optiscope": "test"}), "error": error, "created_at": now,
        }
        for i in range(n)
    ]
    rid, st, nm, val = [], [], [], []
    for name, values in metrics.items():
        for i in range(n):
            for j, s in enumerate(steps):
                if np.isfinite(values[i, j]):
                    rid.append(f"{cell_id}-s{i}")
                    st.append(int(s))
                    nm.append(name)
                    val.append(float(values[i, j]))
    store.write_cell(
        cell_id, runs,
        {"run_id": np.array(rid, dtype=object), "step": np.array(st, dtype=np.int64),
         "name": np.array(nm, dtype=object), "value": np.array(val, dtype=float)},
        metric_info=declarations(cell_id, list(metrics), goals) if declare else None,
    )


ENGINE = ("grad_evals", "func_evals", "time_s")


def declarations(cell_id: str, names: list[str], goals: dict[str, str | None] | None = None) -> list[dict]:
    goals = {"basin": None, **(goals or {})}
    task_names = [n for n in names if n not in ENGINE]
    rows = [
        {"cell_id": cell_id, "name": n, "goal": goals.get(n, "min"), "unit": "", "description": "",
         "headline": i == 0, "source": "task"}
        for i, n in enumerate(task_names)
    ]
    rows += [
        {"cell_id": cell_id, "name": n, "goal": None, "unit": "", "description": "", "headline": False,
         "source": "engine"}
        for n in names if n in ENGINE
    ]
    return rows


def with_budget(values: np.ndarray, steps: Sequence[int]) -> dict[str, np.ndarray]:
    """f_gap plus the grad_evals (= step) and time_s bookkeeping the engine logs."""
    b = np.broadcast_to(np.asarray(steps, dtype=float), values.shape).copy()
    b[np.isnan(values)] = np.nan
    return {"f_gap": values, "grad_evals": b, "time_s": b / 100}


@pytest.fixture
def handmade(tmp_path):
    return RunStore.create(tmp_path / "handmade")
