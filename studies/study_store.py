"""Read a study's store: the final value of a metric per member of each cell, as plain arrays.

The study analyses use this instead of the report so that the numbers they compare are the
stored ones, read by SQL (no imports of tasks, optimizers or the engine).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from optiscope.store import RunStore


def final_values(store: str | Path, metric: str, *, task_like: str = "%") -> dict[str, np.ndarray]:
    """{cell label: values of `metric` at each member's last logged step, ordered by seed}."""
    cols, rows = RunStore.open(store).query(
        f"""
        WITH last AS (
            SELECT r.label, r.seed, m.value, m.step,
                   row_number() OVER (PARTITION BY r.run_id ORDER BY m.step DESC) AS k
            FROM runs r JOIN metrics m USING (run_id)
            WHERE m.name = '{metric}' AND r.task LIKE '{task_like}' AND r.role != 'trial'
        )
        SELECT label, seed, value FROM last WHERE k = 1 ORDER BY label, seed
        """
    )
    out: dict[str, list[float]] = {}
    for label, _seed, value in rows:
        out.setdefault(label, []).append(float(value) if value is not None else np.nan)
    return {k: np.asarray(v) for k, v in out.items()}


def curves(store: str | Path, metric: str, *, task_like: str = "%") -> dict[str, dict[int, np.ndarray]]:
    """{cell label: {seed: (n, 2) array of (step, value) rows of `metric`, in step order}}."""
    cols, rows = RunStore.open(store).query(
        f"""
        SELECT r.label, r.seed, m.step, m.value FROM runs r JOIN metrics m USING (run_id)
        WHERE m.name = '{metric}' AND r.task LIKE '{task_like}' AND r.role != 'trial'
        ORDER BY r.label, r.seed, m.step
        """
    )
    out: dict[str, dict[int, list[tuple[int, float]]]] = {}
    for label, seed, step, value in rows:
        out.setdefault(label, {}).setdefault(int(seed), []).append((int(step), float(value)))
    return {
        label: {seed: np.asarray(points) for seed, points in by_seed.items()}
        for label, by_seed in out.items()
    }
