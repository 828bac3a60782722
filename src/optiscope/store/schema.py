"""The run store's tables. Every executor (ensemble, loop, a Ray worker) writes this schema."""

from __future__ import annotations

import pyarrow as pa

#: One row per run (one member of one cell).
RUNS = pa.schema(
    [
        ("run_id", pa.string()),  # f"{cell_id}-s{seed}"
        ("cell_id", pa.string()),  # the setting: hash of everything but the seed that changes the result
        ("experiment", pa.string()),
        ("task", pa.string()),
        ("task_settings", pa.string()),  # JSON
        ("task_metadata", pa.string()),  # JSON: what the machine had (a corpus's files and hash)
        ("optimizer", pa.string()),  # config name or "module:Class"
        ("label", pa.string()),  # how tables and plots name the cell
        ("hyperparameters", pa.string()),  # JSON, as given in the config
        ("seed", pa.int64()),
        ("member", pa.int64()),  # index in the ensemble
        ("status", pa.string()),  # ok | diverged | failed
        ("diverged_step", pa.int64()),  # first step whose loss was not finite (null if none)
        ("steps", pa.int64()),  # steps planned
        ("grad_evals", pa.int64()),  # gradient evaluations spent
        ("func_evals", pa.int64()),  # forward-only function evaluations (line-search trials)
        ("wall_time_s", pa.float64()),  # the cell's wall time (members share it)
        ("mode", pa.string()),  # ensemble | loop
        ("device", pa.string()),
        ("versions", pa.string()),  # JSON: optiscope, torch, python, platform
        ("error", pa.string()),  # message when status = failed
        ("created_at", pa.timestamp("us", tz="UTC")),
        ("role", pa.string()),  # cell | trial (a tuning trial) | final (a tuned or default re-run)
        ("precision", pa.string()),  # fp32 | tf32 | bf16: the matmul precision it trained with
        ("chunk_size", pa.int64()),  # members trained at once when memory split the ensemble
        # The seeds of a cell trained together, and the key of the files they landed in
        # (runs/<batch_id>.parquet, ...). Null in stores written before seeds on demand, where
        # each cell was one batch named by its cell_id: the `runs` view fills it in.
        ("batch_id", pa.string()),
        ("task_label", pa.string()),  # how the report names the task (label, or non-default settings)
        # JSON list: every file the batch landed (path, sha256, bytes, rows); see store.integrity
        ("files", pa.string()),
    ]
)

#: Long-format metrics: one row per (run, step, name).
METRICS = pa.schema(
    [
        ("run_id", pa.string()),
        ("step", pa.int64()),
        ("name", pa.string()),
        ("value", pa.float64()),
    ]
)

#: What each metric of a cell is, declared by its producer (task, engine, probe) at landing time,
#: so that reading a store never needs the task registry. One row per (cell, metric name).
METRIC_INFO = pa.schema(
    [
        ("cell_id", pa.string()),
        ("name", pa.string()),
        ("goal", pa.string()),  # "min" | "max" | null (a task's categorical label, or no direction)
        ("unit", pa.string()),
        ("description", pa.string()),
        ("headline", pa.bool_()),  # the task's first metric
        ("source", pa.string()),  # one of SOURCES
    ]
)
#: Who declared a metric: the task, the engine (counters, time, batch loss), a probe, or the
#: 2-D iterate recorder (optiscope.probes.iterates).
SOURCES = ("task", "engine", "probe", "iterate")

#: A 2-D task's base function on a grid around its recorded iterates (`surface/<cell_id>.parquet`),
#: for drawing trajectories on contours without the task: rows of kind "grid" (x, y, f) and
#: "minimizer" (x, y; f null), in the frame of the `iterate.x` / `iterate.y` metrics.
SURFACE = pa.schema(
    [
        ("kind", pa.string()),
        ("x", pa.float64()),
        ("y", pa.float64()),
        ("f", pa.float64()),
    ]
)

GOALS = ("min", "max")
STATUSES = ("ok", "diverged", "failed")
