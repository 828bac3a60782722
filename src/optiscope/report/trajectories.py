"""Trajectories of 2-D tasks, read from the store: the iterates recorded during training.

The engine's iterate recorder (optiscope.probes.iterates) stores each member's point as the
metrics `iterate.x` and `iterate.y`, in the instance's own coordinates for seeded instances of a
base function; landing stores the base function on a grid around them (`surface/<cell>.parquet`).
Nothing is re-run and no task is imported.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from optiscope.report.data import CellRuns, StoreView

ITERATE_X, ITERATE_Y = "iterate.x", "iterate.y"


@dataclass
class Surface:
    """f on a grid (gx, gy, f: (n, n) each) and the listed minimisers (k, 2)."""

    grid: tuple[np.ndarray, np.ndarray, np.ndarray]
    minimizers: np.ndarray


@dataclass
class Trajectories:
    """Iterates points[seed, step, 2] of a cell's first seeds (NaN after a member diverged)."""

    cell: str
    seeds: list[int]
    steps: np.ndarray
    points: np.ndarray
    surface: Surface | None


def has_iterates(view: StoreView, task_key: str) -> bool:
    return ITERATE_X in view.metric_names(task_key)


def stored_trajectories(view: StoreView, cell: CellRuns, n_seeds: int = 4) -> Trajectories | None:
    """The first `n_seeds` seeds' recorded iterates, or None if the cell recorded none."""
    steps, xs = view.curves(cell, ITERATE_X)
    steps_y, ys = view.curves(cell, ITERATE_Y)
    if not len(steps) or not np.array_equal(steps, steps_y):
        return None
    points = np.stack([xs[:n_seeds], ys[:n_seeds]], axis=-1)
    return Trajectories(cell.label, cell.seeds[:n_seeds], steps, points, stored_surface(view, cell))


def stored_surface(view: StoreView, cell: CellRuns) -> Surface | None:
    # The first batch's surface: the trajectories drawn are its first seeds' (runs view order).
    table = next((t for b in view.store.batch_ids(cell.cell_id)
                  if (t := view.store.read_cell_table("surface", b)) is not None), None)
    if table is None:
        return None
    d = table.to_pydict()
    kind = np.array(d["kind"], dtype=object)
    x, y, f = (np.array(d[k], dtype=float) for k in ("x", "y", "f"))
    grid = kind == "grid"
    n = int(round(np.sqrt(grid.sum())))
    if n * n != grid.sum() or n < 2:
        return None
    gx, gy, gf = (v[grid].reshape(n, n) for v in (x, y, f))
    mins = np.stack([x[kind == "minimizer"], y[kind == "minimizer"]], axis=1)
    return Surface((gx, gy, gf), mins)
