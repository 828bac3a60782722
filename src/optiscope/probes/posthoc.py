"""Probes on a store's saved final parameters, after training (`optiscope probe`).

Parameters are read from the cell's safetensors files (never a pickle), one per batch of seeds
trained together; the task is rebuilt from the `runs` table's task name and settings. Results can be written back, through `RunStore`, as
metrics at the cell's last step with their declarations, so the report shows them beside probes
taken during training.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import torch

from optiscope.errors import OptiscopeError
from optiscope.probes.registry import metric_info
from optiscope.probes.schedule import ProbeConfig
from optiscope.probes.trajectory import compute_probes
from optiscope.store import RunStore
from optiscope.store.schema import METRICS
from optiscope.tasks.base import MetricInfo
from optiscope.tasks.registry import make_task


@dataclass
class CellProbes:
    """Probe values of one stored cell: name -> one value per member (NaN if not ok)."""

    cell_id: str
    label: str
    task: str
    step: int
    run_ids: list[str]
    status: list[str]
    values: dict[str, np.ndarray]
    #: The batch each run landed in (its metrics file): probe values are written back there.
    batch_ids: list[str] | None = None


def stored_cells(store: RunStore) -> list[str]:
    rows = store.fetch("SELECT DISTINCT cell_id FROM runs ORDER BY cell_id")
    return [str(c) for c in rows["cell_id"]]


def resolve_cells(store: RunStore, requested: list[str] | None) -> list[str]:
    """Cell ids from full ids or unique prefixes; all cells with saved params when None."""
    cells = stored_cells(store)
    if not requested:
        with_params = {b.cell_id for b in store.batches() if store.params_path(b.batch_id).exists()}
        return [c for c in cells if c in with_params]
    out = []
    for r in requested:
        matches = [c for c in cells if c.startswith(r)]
        if len(matches) != 1:
            what = "no cell" if not matches else f"{len(matches)} cells"
            raise OptiscopeError(f"--cell '{r}' matches {what}; cells in the store: {', '.join(cells) or '(none)'}")
        out.append(matches[0])
    return out


def probe_cell(
    store: RunStore, cell_id: str, config: ProbeConfig, groups: tuple[str, ...] | None = None,
    device: str = "cpu",
) -> CellProbes:
    """Probes of one cell's saved final parameters, batch by batch (each batch's file holds its
    own members)."""
    runs = store.fetch(
        "SELECT run_id, batch_id, task, task_settings, label, seed, status, steps FROM runs "
        "WHERE cell_id = ? AND status != 'failed' ORDER BY created_at, batch_id, member", [cell_id],
    )
    if not len(runs["run_id"]):
        raise OptiscopeError(f"cell {cell_id} is not in {store.root}")
    task_name = str(runs["task"][0])
    task = make_task(task_name, **json.loads(str(runs["task_settings"][0]))).to(device)
    order = list(task.init_params(0))  # the task's own order (safetensors sorts by name)
    batch_ids = [str(b) for b in runs["batch_id"]]
    step = int(runs["steps"][0])
    parts: list[dict[str, np.ndarray]] = []
    for batch_id in dict.fromkeys(batch_ids):
        saved = store.load_params(batch_id)
        params = {k: v.to(device) for k, v in saved.items() if not k.startswith("init.")}
        init = {k[5:]: v.to(device) for k, v in saved.items() if k.startswith("init.")} or None
        if set(params) != set(order):
            raise OptiscopeError(
                f"cell {cell_id}: saved tensors {sorted(params)} do not match task '{task_name}' ({sorted(order)})"
            )
        params = {k: params[k] for k in order}
        seeds = torch.tensor([int(s) for s, b in zip(runs["seed"], batch_ids, strict=True) if b == batch_id])
        out = compute_probes(task, params, init, seeds, config, groups=groups, step=step)
        parts.append({k: v.double().cpu().numpy() for k, v in out.items()})
    status = [str(s) for s in runs["status"]]
    ok = np.array([s == "ok" for s in status])
    values = {k: np.where(ok, np.concatenate([p[k] for p in parts]), np.nan) for k in parts[0]}
    return CellProbes(cell_id, str(runs["label"][0]), task_name, step, [str(r) for r in runs["run_id"]],
                      status, values, batch_ids)


def write_probe_metrics(store: RunStore, result: CellProbes) -> int:
    """Add the cell's probe values to its metrics at its last step; returns rows written.

    Rows with the same (run, step, name) are replaced, so probing again is idempotent. The
    metrics are rewritten through `RunStore.write_metrics` (atomically), and the new names are
    declared in the cell's `metric_info` (from the probe registry), so the report shows them
    as probes without importing anything.
    """
    batch_of = dict(zip(result.run_ids, result.batch_ids or [result.cell_id] * len(result.run_ids), strict=True))
    written = 0
    for batch_id in dict.fromkeys(batch_of.values()):
        written += _write_batch(store, result, batch_id, {r for r, b in batch_of.items() if b == batch_id})
    return written


def _write_batch(store: RunStore, result: CellProbes, batch_id: str, batch_runs: set[str]) -> int:
    """Write one batch's share of `result` into that batch's metrics file."""
    old = store.read_metrics(batch_id)
    run_ids, names, values = [], [], []
    for name, arr in result.values.items():
        for r, v in zip(result.run_ids, arr, strict=True):
            if r in batch_runs and not np.isnan(v):  # finite, or an infinity (a diverged probe) kept
                run_ids.append(r)
                names.append(name)
                values.append(float(v))
    new = pa.table(
        {"run_id": run_ids, "step": np.full(len(values), result.step, dtype=np.int64), "name": names, "value": values},
        schema=METRICS,
    )
    replaced = {(r, n) for r, n in zip(run_ids, names, strict=True)}
    keep = [
        not (int(s) == result.step and (r, n) in replaced)
        for r, s, n in zip(old["run_id"].to_pylist(), old["step"].to_pylist(), old["name"].to_pylist(), strict=True)
    ]
    store.write_metrics(batch_id, pa.concat_tables([old.cast(METRICS).filter(pa.array(keep, type=pa.bool_())), new]))
    _declare(store, batch_id, result.cell_id, sorted(set(names)))
    return len(values)


def _declare(store: RunStore, batch_id: str, cell_id: str, names: list[str]) -> None:
    """Add declarations of probe metrics `names` the batch's `metric_info` does not have yet.

    A cell landed before declarations were stored is left as it is (the report infers)."""
    info = store.read_metric_info(batch_id)
    if not info.num_rows:
        return
    known = set(info.column("name").to_pylist())
    rows = []
    for name in names:
        if name in known:
            continue
        m = metric_info(name) or MetricInfo(name, None)
        rows.append({"cell_id": cell_id, "name": name, "goal": m.goal, "unit": m.unit,
                     "description": m.description, "headline": False, "source": "probe"})
    if rows:
        store.write_metric_info(batch_id, info.to_pylist() + rows)
