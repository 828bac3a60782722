"""Read what a report needs from a store: cells, their runs, curves and final values."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from optiscope.store import RunStore

#: Metrics that are bookkeeping rather than outcomes; not plotted as learning curves.
BOOKKEEPING = ("grad_evals", "time_s")


@dataclass
class CellRuns:
    """One cell of the store: its description and its members' statuses."""

    cell_id: str
    task_key: str  # task name with its settings
    task: str
    optimizer: str
    label: str
    hyperparameters: dict[str, Any]
    seeds: list[int]
    run_ids: list[str]
    status: list[str]
    diverged_step: list[int | None]
    error: str | None
    wall_time_s: float
    grad_evals: int
    mode: str

    @property
    def n_ok(self) -> int:
        return self.status.count("ok")

    @property
    def n_diverged(self) -> int:
        return self.status.count("diverged")

    @property
    def n_failed(self) -> int:
        return self.status.count("failed")


@dataclass
class StoreView:
    """Cells grouped by task, with helpers to fetch curves and final values."""

    store: RunStore
    cells: list[CellRuns] = field(default_factory=list)

    @classmethod
    def load(cls, store: RunStore) -> StoreView:
        data = store.fetch(
            "SELECT cell_id, task, task_settings, optimizer, label, hyperparameters, seed, "
            "run_id, status, diverged_step, error, wall_time_s, grad_evals, mode "
            "FROM runs ORDER BY created_at, cell_id, member"
        )
        view = cls(store)
        by_cell: dict[str, CellRuns] = {}
        for i in range(len(data["cell_id"])):
            cid = str(data["cell_id"][i])
            if cid not in by_cell:
                settings = json.loads(str(data["task_settings"][i]))
                task_key = str(data["task"][i]) + (
                    "(" + ", ".join(f"{k}={v}" for k, v in sorted(settings.items())) + ")"
                    if settings else ""
                )
                by_cell[cid] = CellRuns(
                    cid, task_key, str(data["task"][i]), str(data["optimizer"][i]),
                    str(data["label"][i]), json.loads(str(data["hyperparameters"][i])),
                    [], [], [], [], _none(data["error"][i]), float(data["wall_time_s"][i]),
                    int(data["grad_evals"][i]), str(data["mode"][i]),
                )
            c = by_cell[cid]
            c.seeds.append(int(data["seed"][i]))
            c.run_ids.append(str(data["run_id"][i]))
            c.status.append(str(data["status"][i]))
            d = data["diverged_step"][i]
            c.diverged_step.append(None if _is_null(d) else int(d))
        view.cells = list(by_cell.values())
        return view

    def tasks(self) -> list[str]:
        return list(dict.fromkeys(c.task_key for c in self.cells))

    def cells_of(self, task_key: str) -> list[CellRuns]:
        return [c for c in self.cells if c.task_key == task_key]

    def metric_names(self, task_key: str) -> list[str]:
        ids = [c.cell_id for c in self.cells_of(task_key)]
        if not ids:
            return []
        rows = self.store.connect().execute(
            "SELECT DISTINCT m.name FROM metrics m JOIN runs r USING (run_id) "
            "WHERE list_contains(?, r.cell_id) ORDER BY m.name", [ids]
        ).fetchall()
        return [r[0] for r in rows]

    def curves(self, cell: CellRuns, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(steps, values[member, step]) of metric `name`; NaN where a member has no value."""
        d = self.store.fetch(
            "SELECT m.run_id, m.step, m.value FROM metrics m JOIN runs r USING (run_id) "
            "WHERE r.cell_id = ? AND m.name = ? ORDER BY m.step", [cell.cell_id, name]
        )
        steps = np.unique(d["step"]) if len(d["step"]) else np.array([], dtype=np.int64)
        values = np.full((len(cell.run_ids), len(steps)), np.nan)
        if len(steps):
            row = {r: i for i, r in enumerate(cell.run_ids)}
            col = {int(s): j for j, s in enumerate(steps)}
            for r, s, v in zip(d["run_id"], d["step"], d["value"], strict=True):
                values[row[str(r)], col[int(s)]] = v
        return steps, values

    def final_values(self, cell: CellRuns, name: str) -> np.ndarray:
        """Each member's value of `name` at the cell's last evaluated step.

        Diverged and failed members get NaN: callers show them as counts, never drop them
        silently.
        """
        steps, values = self.curves(cell, name)
        out = np.full(len(cell.run_ids), np.nan)
        if len(steps):
            last = values[:, -1]
            ok = np.array([s == "ok" for s in cell.status])
            out[ok] = last[ok]
        return out


def _is_null(v: Any) -> bool:
    return v is None or v is np.ma.masked or (isinstance(v, float) and np.isnan(v))


def _none(v: Any) -> str | None:
    return None if _is_null(v) else str(v)
