"""Landing a trained cell in the store: its run rows, metrics, parameters and metric declarations.

Everything the report needs later is written here, at training time, so that reading a store
never imports a task, an optimizer or the engine: beside the metrics goes a `metric_info` table
saying, for every metric name the cell logged, its goal (min, max or none for categorical), unit,
description, which producer declared it (task, engine, probe, iterate) and which one is the
headline. A 2-D task also gets the contour `surface` its recorded iterates are drawn on.

Landing is two steps: `cell_payload` (pure: builds every table where the cell trained, which may
be a Ray worker on another machine) and `land_payload` (the driver writes it, runs file last).
"""

from __future__ import annotations

import datetime as dt
import json
import platform
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import torch

import optiscope
from optiscope.config import Cell
from optiscope.engine.result import ENGINE_METRICS, CellResult
from optiscope.engine.work import CellOutcome
from optiscope.probes import registry as probe_registry
from optiscope.probes.iterates import ITERATE_METRICS, ITERATE_NAMES, contour_surface
from optiscope.store import Batch, RunStore
from optiscope.store.schema import SURFACE
from optiscope.tasks.base import MetricInfo


def versions() -> dict[str, str]:
    return {
        "optiscope": optiscope.__version__,
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }


def run_rows(
    cell: Cell,
    result: CellResult | None,
    error: str | None = None,
    task_metadata: dict[str, Any] | None = None,
    task_name: str | None = None,
) -> list[dict[str, Any]]:
    """One `runs` row per member of `cell` (all `failed` when `result` is None); `task_name` is
    the built task's own name where the user chose it (`ModuleTask(name=...)`)."""
    now = dt.datetime.now(dt.timezone.utc)
    task_label = cell.task_display_name(task_name)
    rows = []
    for member, seed in enumerate(cell.seeds):
        status = "failed" if result is None else result.status[member]
        rows.append(
            {
                "run_id": f"{cell.cell_id}-s{seed}",
                "cell_id": cell.cell_id,
                "experiment": cell.experiment,
                "task": cell.task,
                "task_settings": json.dumps(cell.task_settings, sort_keys=True, default=str),
                "task_metadata": json.dumps(task_metadata or {}, sort_keys=True, default=str),
                "optimizer": cell.optimizer,
                "label": cell.display_name,
                "hyperparameters": json.dumps(cell.hyperparameters, sort_keys=True, default=str),
                "seed": seed,
                "member": member,
                "status": status,
                "diverged_step": None if result is None else result.diverged_step[member],
                "steps": cell.steps,
                "grad_evals": 0 if result is None else result.grad_evals,
                "func_evals": 0 if result is None else int(getattr(result, "func_evals", 0) or 0),
                "wall_time_s": 0.0 if result is None else result.wall_time_s,
                "mode": "" if result is None else result.mode,
                "device": "" if result is None else result.device,
                "versions": json.dumps(versions(), sort_keys=True),
                "error": error,
                "created_at": now,
                "role": cell.role,
                "precision": cell.precision,
                "chunk_size": None if result is None else result.chunk_size,
                "batch_id": cell.batch_id,
                "task_label": task_label,
            }
        )
    return rows


# -- metric declarations --------------------------------------------------------------------

def _row(cell_id: str, info: MetricInfo, source: str, *, headline: bool = False, name: str | None = None) -> dict[str, Any]:
    return {
        "cell_id": cell_id,
        "name": name or info.name,
        "goal": info.goal,
        "unit": info.unit,
        "description": info.description,
        "headline": headline,
        "source": source,
    }


def metric_info_rows(cell_id: str, task: Any, logged_names: Iterable[str]) -> list[dict[str, Any]]:
    """Declarations of the task's metrics, the engine's, and every other metric the cell logged.

    The task's first metric is the headline. Other logged names are declared by the 2-D iterate
    recorder or the probe registry; a name nobody declares is still listed (no goal, source
    `probe`), so the report knows it exists.
    """
    logged = set(logged_names)
    rows = [_row(cell_id, info, "task", headline=i == 0) for i, info in enumerate(task.metrics)]
    declared = {r["name"] for r in rows}
    for source, infos in (("engine", ENGINE_METRICS), ("iterate", ITERATE_METRICS)):
        for info in infos:
            if info.name not in declared and (source == "engine" or info.name in logged):
                rows.append(_row(cell_id, info, source))
                declared.add(info.name)
    for name in sorted(logged - declared):
        info = probe_registry.metric_info(name) or MetricInfo(name, None)
        rows.append(_row(cell_id, info, "probe", name=name))
    return rows


def iterate_surface(task: Any, cols: dict[str, np.ndarray], n_members: int) -> pa.Table | None:
    """The contour surface of a 2-D task around the iterates it recorded (None otherwise)."""
    names = cols["name"]
    if not len(names) or not (names == ITERATE_NAMES[0]).any():
        return None
    coords = []
    for name in ITERATE_NAMES:
        sel = names == name
        steps = np.unique(cols["step"][sel])
        grid = np.full((n_members, len(steps)), np.nan)
        grid[cols["member"][sel].astype(np.int64), np.searchsorted(steps, cols["step"][sel])] = cols["value"][sel]
        coords.append(grid)
    surface = contour_surface(task, coords[0], coords[1])
    return None if surface is None else pa.table(surface, schema=SURFACE)


@dataclass
class CellPayload:
    """Everything landing writes for one cell, built where the cell trained (no store access).

    Plain tables, arrays and CPU tensors only, so it pickles: a Ray worker returns it to the
    driver through the object store and the driver lands it (`land_payload`). The local
    executor goes through the same two steps, so there is one landing rule.
    """

    cell: Cell
    runs: list[dict[str, Any]]
    metrics: dict[str, np.ndarray]
    params: dict[str, torch.Tensor] | None = None
    metric_info: list[dict[str, Any]] | None = None
    tables: dict[str, pa.Table] = field(default_factory=dict)
    error: str | None = None  # set for a failed cell: its runs rows say `failed`

    @property
    def cell_id(self) -> str:
        return self.cell.cell_id

    @property
    def batch_id(self) -> str:
        """The key of the files this payload lands in (see optiscope.store.run_store)."""
        return self.cell.batch_id


def cell_payload(cell: Cell, result: CellResult, task: Any, *, save_params: bool = True) -> CellPayload:
    """A trained cell's run rows, metrics, parameters, metric declarations and extra tables."""
    cols = result.metrics.columns(result.diverged_step)
    run_ids = np.array([f"{cell.cell_id}-s{s}" for s in cell.seeds], dtype=object)
    metrics = {
        "run_id": run_ids[cols["member"].astype(np.int64)] if len(cols["member"]) else np.array([], dtype=object),
        "step": cols["step"].astype(np.int64),
        "name": cols["name"],
        "value": cols["value"].astype(np.float64),
    }
    params = None
    if save_params and result.final_params:
        both = {**result.final_params, **{f"init.{k}": v for k, v in result.init_params.items()}}
        params = {k: v.detach().cpu().contiguous() for k, v in both.items()}
    info = metric_info_rows(cell.cell_id, task, [str(n) for n in np.unique(cols["name"])])
    surface = iterate_surface(task, cols, len(cell.seeds))
    return CellPayload(
        cell, run_rows(cell, result, task_metadata=task.metadata(), task_name=_own_name(cell, task)), metrics, params,
        metric_info=info, tables={} if surface is None else {"surface": surface},
    )


def _own_name(cell: Cell, task: Any) -> str | None:
    """A user's task's own name (`ModuleTask(name="mlp")`, which the registry keeps), else None."""
    name = getattr(task, "name", None)
    named = getattr(task, "named", False)
    return name if named and isinstance(name, str) and name not in ("", cell.task) else None


def failed_payload(cell: Cell, error: str) -> CellPayload:
    """A cell whose training raised (or whose worker died): its run rows, `failed`, no metrics."""
    empty = {"run_id": np.array([], dtype=object), "step": np.array([], dtype=np.int64),
             "name": np.array([], dtype=object), "value": np.array([])}
    return CellPayload(cell, run_rows(cell, None, error), empty, error=error)


def outcome_payload(outcome: CellOutcome, *, save_params: bool = True) -> CellPayload:
    """The payload of one unit outcome: trained or failed."""
    if outcome.error is not None:
        return failed_payload(outcome.cell, outcome.error)
    return cell_payload(outcome.cell, outcome.result, outcome.task, save_params=save_params)


def land_payload(store: RunStore, payload: CellPayload, replaces: Sequence[Batch] = ()) -> None:
    """Write one batch's payload: tables and parameters first, its runs file last (the commit).

    `replaces`: the cell's failed batches as planned (`runner.plan_missing`); those whose seeds
    this one trained again are then discarded, so every (cell, seed) has one run in the store.
    Passed in rather than read back here, so landing never rescans the store.
    """
    store.write_cell(
        payload.batch_id, payload.runs, payload.metrics, payload.params,
        metric_info=payload.metric_info, tables=payload.tables or None,
    )
    seeds = set(payload.cell.seeds)
    for old in replaces:
        if old.failed and old.cell_id == payload.cell_id and old.batch_id != payload.batch_id and seeds & set(old.seeds):
            store.discard_batch(old.batch_id)


def land_cell(
    store: RunStore,
    cell: Cell,
    result: CellResult,
    task: Any,
    *,
    save_params: bool = True,
) -> None:
    """Write one trained cell: metrics, parameters, metric declarations, then its run rows."""
    land_payload(store, cell_payload(cell, result, task, save_params=save_params))
