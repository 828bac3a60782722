"""Stores written directly, with known per-run values, for hypothesis tests."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence

import numpy as np
import pytest

from optiscope.store import RunStore


def land(
    store: RunStore,
    cell_id: str,
    label: str,
    metrics: dict[str, np.ndarray],
    steps: Sequence[int],
    *,
    optimizer: str = "sgd",
    task: str = "quadratic",
    task_settings: dict | None = None,
    status: Sequence[str] | None = None,
    diverged_step: Sequence[int | None] | None = None,
    goals: dict[str, str | None] | None = None,
    role: str = "cell",
) -> None:
    """One cell in the shape landing writes: `metrics[name]` is values[run, step] (NaN: no row).
    Every metric is declared a task metric, minimised unless `goals` says otherwise."""
    n = next(iter(metrics.values())).shape[0]
    status = list(status or ["ok"] * n)
    div = list(diverged_step or [None] * n)
    now = dt.datetime.now(dt.timezone.utc)
    runs = [{
        "run_id": f"{cell_id}-s{i}", "cell_id": cell_id, "experiment": "planted", "task": task,
        "task_settings": json.dumps(task_settings or {}, sort_keys=True), "optimizer": optimizer,
        "label": label, "hyperparameters": "{}", "seed": i, "member": i, "status": status[i],
        "diverged_step": div[i], "steps": int(steps[-1]), "grad_evals": int(steps[-1]),
        "wall_time_s": 1.0, "mode": "ensemble", "device": "cpu", "versions": "{}", "error": None,
        "created_at": now, "role": role, "precision": "fp32", "chunk_size": None,
    } for i in range(n)]
    rid, st, nm, val = [], [], [], []
    for name, values in metrics.items():
        for i in range(n):
            for j, s in enumerate(steps):
                if not np.isnan(values[i, j]):
                    rid.append(f"{cell_id}-s{i}"), st.append(int(s)), nm.append(name), val.append(float(values[i, j]))
    info = [{"cell_id": cell_id, "name": k, "goal": (goals or {}).get(k, "min"), "unit": "", "description": "",
             "headline": j == 0, "source": "task"} for j, k in enumerate(metrics)]
    store.write_cell(cell_id, runs, {
        "run_id": np.array(rid, dtype=object), "step": np.array(st, dtype=np.int64),
        "name": np.array(nm, dtype=object), "value": np.array(val, dtype=float)}, metric_info=info)


def land_finals(store: RunStore, cell_id: str, label: str, finals: np.ndarray, **kw) -> None:
    """A cell whose runs log `loss` at steps 0 and 10, ending at `finals`."""
    finals = np.asarray(finals, dtype=float)
    values = np.stack([np.full_like(finals, 10.0), finals], axis=1)
    land(store, cell_id, label, {"loss": values}, [0, 10], **kw)


@pytest.fixture
def store(tmp_path) -> RunStore:
    return RunStore.create(tmp_path / "store")
