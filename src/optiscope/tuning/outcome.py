"""A trial's value, read back from the store: what the sampler is told and the report shows.

The value is the median over the trial's seeds of the selection metric's final value (with
`[tuning] statistic = "mean"`: of its mean over the evaluations after step 0, the initial point
left out; a continual task evaluated at its stage ends so averages each task's accuracy at the end
of its own stage, the plasticity its tuning is for). A trial
that diverged on any seed is the worst possible (+inf for a metric to minimise, -inf to
maximise), never dropped: an optimizer that diverges over much of its search space pays for it
in its tuning, as it would in practice. A cell whose training raised is worst as well.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from optiscope.store import RunStore

#: Trial states in trials.parquet.
STATES = ("complete", "diverged", "failed")


@dataclass(frozen=True)
class TrialOutcome:
    value: float
    state: str  # one of STATES


def worst(goal: str) -> float:
    return math.inf if goal == "min" else -math.inf


def trial_outcome(
    store: RunStore, cell_id: str, metric: str, goal: str, batch_id: str | None = None, statistic: str = "final"
) -> TrialOutcome:
    """The trial value of landed cell `cell_id` (see the module docstring).

    A trial trains its seeds once, as one batch: given its `batch_id` the files are read
    directly (a store-wide query per trial costs about 20 times the read); else, or when that
    batch is not there, the cell's batches are looked up.
    """
    batches = [batch_id] if batch_id is not None and store.is_complete(batch_id) else store.batch_ids(cell_id)
    tables = [t for b in batches if (t := store.read_cell_table("runs", b)) is not None]
    if not tables or not sum(t.num_rows for t in tables):
        return TrialOutcome(worst(goal), "failed")
    runs = pa.concat_tables(tables, promote_options="default")
    status = runs.column("status").to_pylist()
    if "failed" in status:
        return TrialOutcome(worst(goal), "failed")
    if "diverged" in status:
        return TrialOutcome(worst(goal), "diverged")
    table = pa.concat_tables([store.read_metrics(b) for b in batches], promote_options="default")
    table = table.filter(pc.equal(table.column("name"), metric))
    run_ids = table.column("run_id").to_numpy(zero_copy_only=False)
    steps = table.column("step").to_numpy()
    values = table.column("value").to_numpy()
    finals = []
    for run_id in runs.column("run_id").to_pylist():
        mine = run_ids == run_id
        if not mine.any():
            return TrialOutcome(worst(goal), "diverged")
        finals.append(seed_value(steps[mine], values[mine], statistic))
    if not np.all(np.isfinite(finals)):
        return TrialOutcome(worst(goal), "diverged")
    return TrialOutcome(float(np.median(finals)), "complete")


def seed_value(steps: np.ndarray, values: np.ndarray, statistic: str) -> float:
    """One seed's value of the selection metric from its curve: the value at the last step
    ("final"), or the mean over the steps after 0 ("mean"; the value at 0 where that is all)."""
    if statistic == "final":
        return float(values[np.argmax(steps)])
    if statistic == "mean":
        later = steps > 0
        return float(np.mean(values[later] if later.any() else values))
    raise ValueError(f"statistic must be 'final' or 'mean', got {statistic!r}")
