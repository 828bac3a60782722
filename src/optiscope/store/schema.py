"""The run store's tables. Every executor (ensemble, loop, a Ray worker) writes this schema."""

from __future__ import annotations

import pyarrow as pa

#: One row per run (one member of one cell).
RUNS = pa.schema(
    [
        ("run_id", pa.string()),  # f"{cell_id}-s{seed}"
        ("cell_id", pa.string()),  # hash of everything that changes the result
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
        ("wall_time_s", pa.float64()),  # the cell's wall time (members share it)
        ("mode", pa.string()),  # ensemble | loop
        ("device", pa.string()),
        ("versions", pa.string()),  # JSON: optiscope, torch, python, platform
        ("error", pa.string()),  # message when status = failed
        ("created_at", pa.timestamp("us", tz="UTC")),
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

STATUSES = ("ok", "diverged", "failed")
