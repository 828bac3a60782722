"""The tuning protocol's files as the report reads them: STORE/tuning/protocol.json (what was
asked: metric, goal, seeds, search space, split, tasks), trials.parquet (one row per trial) and
final.parquet (one row per re-run on the evaluation seeds), joined to their cells in the store.

Read with pyarrow and json only (the contract between optiscope.tuning, which writes them, and the
report): no tuning code is imported, so a report builds wherever the store is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from optiscope.report.data import CellRuns, StoreView


# -- the protocol's files ----------------------------------------------------------------------
@dataclass
class Protocol:
    """protocol.json: what was tuned, on which seeds, selected on which metric and split."""

    metric: str
    final_metric: str
    goal: str
    sampler: str
    trials: int
    seeds_per_trial: int
    studies: int
    tuning_seeds: dict[int, list[int]]
    evaluation_seeds: list[int]
    space: dict[str, dict[str, Any]]
    split: str
    tasks: list[str]  # task keys, in protocol order (empty: a protocol file that names none)
    task_splits: dict[str, str]  # task key -> "validation" | "none"
    raw: dict[str, Any] = field(default_factory=dict)
    #: A seed's value of the metric: "final" or "mean" (over the evaluations after step 0).
    statistic: str = "final"

    @classmethod
    def read(cls, path: Path) -> Protocol:
        d = json.loads(path.read_text())
        return cls(
            d["metric"], d.get("final_metric") or d["metric"], d.get("goal", "min"), d.get("sampler", ""),
            int(d.get("trials", 0)), int(d.get("seeds_per_trial", 0)), int(d.get("studies", 1)),
            {int(k): [int(s) for s in v] for k, v in d.get("tuning_seeds", {}).items()},
            [int(s) for s in d.get("evaluation_seeds", [])], d.get("space", {}), d.get("split", "none"),
            [str(t["key"]) for t in d.get("tasks", [])],
            {str(t["key"]): str(t.get("split", d.get("split", "none"))) for t in d.get("tasks", [])}, d,
            str(d.get("statistic", "final")),
        )

    @property
    def selected_on(self) -> str:
        """The selection metric as a seed's value: "final val_loss", "mean of val_plasticity"."""
        return f"final {self.metric}" if self.statistic == "final" else f"mean of {self.metric}"

    @property
    def selection(self) -> str:
        """The selection metric in a sentence: its name, or "the mean over evaluations after step 0
        of NAME"."""
        return self.metric if self.statistic == "final" else f"the mean over evaluations after step 0 of {self.metric}"

    @property
    def all_tuning_seeds(self) -> set[int]:
        return {s for seeds in self.tuning_seeds.values() for s in seeds}

    @property
    def disjoint(self) -> bool:
        return not (self.all_tuning_seeds & set(self.evaluation_seeds))

    @property
    def worst(self) -> float:
        return np.inf if self.goal == "min" else -np.inf


@dataclass
class Trial:
    """One row of trials.parquet with its cell's final selection-metric values (NaN: not finite)."""

    study: int
    key: str
    optimizer: str
    number: int
    params: dict[str, Any]
    cell_id: str
    value: float
    state: str
    finals: np.ndarray  # per tuning seed; empty when the cell is not in the store
    task: str = ""

    @property
    def counts_worst(self) -> bool:
        """Diverged or failed: the protocol scored it as the worst value."""
        return self.state != "complete" or not np.isfinite(self.value)


@dataclass
class Final:
    """One row of final.parquet with its cell (None until it lands)."""

    study: int
    key: str
    kind: str  # tuned | default
    cell_id: str
    params: dict[str, Any]
    trial: int
    cell: CellRuns | None
    task: str = ""


def read_trials(view: StoreView, protocol: Protocol, path: Path) -> list[Trial]:
    if not path.exists():
        return []
    t = pq.read_table(path).to_pylist()
    by_id = {c.cell_id: c for c in view.trial_cells + view.cells}
    out = []
    for r in t:
        cell = by_id.get(str(r["cell_id"]))
        finals = seed_values(view, cell, protocol) if cell is not None else np.array([])
        value = float("nan") if r["value"] is None else float(r["value"])
        out.append(Trial(int(r["study"]), str(r["optimizer_key"]), str(r["optimizer"]), int(r["trial"]),
                         json.loads(r["params"] or "{}"), str(r["cell_id"]), value, str(r["state"]), finals,
                         str(r.get("task") or "")))
    return out


def seed_values(view: StoreView, cell: CellRuns, protocol: Protocol) -> np.ndarray:
    """Each member's value of the selection metric as the protocol scored it (NaN: diverged or
    failed): the final value, or the mean over the evaluations after step 0."""
    if protocol.statistic == "final":
        return view.final_values(cell, protocol.metric)
    steps, values = view.curves(cell, protocol.metric)
    out = np.full(len(cell.run_ids), np.nan)
    if len(steps):
        later = np.asarray(steps) > 0
        means = np.asarray(values)[:, later if later.any() else slice(None)].mean(axis=1)
        ok = np.array([s == "ok" for s in cell.status])
        out[ok] = means[ok]
    return out


def read_finals(view: StoreView, path: Path) -> list[Final]:
    if not path.exists():
        return []
    by_id = {c.cell_id: c for c in view.cells}
    return [Final(int(r["study"]), str(r["optimizer_key"]), str(r["kind"]), str(r["cell_id"]),
                  json.loads(r["params"] or "{}"), int(r["trial"]), by_id.get(str(r["cell_id"])),
                  str(r.get("task") or ""))
            for r in pq.read_table(path).to_pylist()]
