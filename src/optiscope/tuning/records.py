"""The files a tuning run leaves under STORE/tuning/, which the report reads without importing
the tuning code: protocol.json (what was asked), trials.parquet (every trial), final.parquet
(the re-runs on evaluation seeds). Parquet files are written atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa

from optiscope.errors import OptiscopeError
from optiscope.store import RunStore
from optiscope.store.run_store import atomic_write_parquet
from optiscope.tasks.dataset import VALIDATION_FRACTION
from optiscope.tuning.spec import TuningSpec

#: One row per trial (per task setting, study, optimizer key and trial number).
TRIALS = pa.schema([
    ("study", pa.int64()),
    ("optimizer_key", pa.string()),
    ("optimizer", pa.string()),
    ("trial", pa.int64()),
    ("params", pa.string()),  # JSON of the sampled values, task ones prefixed "task."
    ("cell_id", pa.string()),
    ("value", pa.float64()),  # median over seeds of the metric's final value; +-inf: worst
    ("state", pa.string()),  # complete | diverged | failed
    ("task", pa.string()),  # the task key (see protocol.json "tasks")
])

#: One row per final re-run on the evaluation seeds.
FINAL = pa.schema([
    ("study", pa.int64()),  # -1 for a default re-run
    ("optimizer_key", pa.string()),
    ("kind", pa.string()),  # tuned | default
    ("cell_id", pa.string()),
    ("params", pa.string()),  # JSON: the tuned values ({} for default)
    ("trial", pa.int64()),  # the best trial's number (-1 for default)
    ("task", pa.string()),
])


def tuning_dir(store: RunStore) -> Path:
    path = store.root / "tuning"
    path.mkdir(parents=True, exist_ok=True)
    return path


def params_json(values: dict[str, Any]) -> str:
    return json.dumps(values, sort_keys=True)


def protocol(spec: TuningSpec) -> dict[str, Any]:
    """protocol.json's content: the [tuning] table as resolved, seeds and the split."""
    return {
        "metric": spec.metric,
        "final_metric": spec.final_metric,
        "statistic": spec.statistic,
        "goal": spec.goal,
        "sampler": spec.sampler,
        "trials": spec.trials,
        "seeds_per_trial": spec.seeds_per_trial,
        "batch": spec.batch,
        "studies": spec.studies,
        "seed": spec.seed,
        "default": spec.default,
        "tuning_seeds": {str(s): spec.tuning_seeds(s) for s in range(spec.studies)},
        "evaluation_seeds": list(spec.evaluation_seeds),
        "seeds_disjoint": not (
            set(spec.evaluation_seeds) & {x for s in range(spec.studies) for x in spec.tuning_seeds(s)}
        ),
        "space": {k: {n: d.as_json() for n, d in dims.items()} for k, dims in spec.space.items()},
        "split": spec.split,
        "validation_fraction": VALIDATION_FRACTION if spec.split != "none" else None,
        "tasks": [{"key": t.key, "task": t.name, "settings": t.given, "split": t.split} for t in spec.tasks],
        "optimizers": dict(spec.optimizers),
        "untuned": [k for k in spec.optimizers if k not in spec.space],
    }


#: protocol.json fields a rerun into the same store may not change: they decide which trials
#: are asked, so changing them would mix two different studies in one. (`trials` and `studies`
#: may grow, tasks and optimizers may be added, `default`, `final_metric` and the evaluation
#: seeds change only the finals; the space of an optimizer already tuned is fixed.)
FIXED_FIELDS = ("metric", "sampler", "seed", "seeds_per_trial", "batch")


def write_protocol(store: RunStore, spec: TuningSpec) -> None:
    """Write protocol.json; refuse a store whose earlier tuning run asked trials differently."""
    path = tuning_dir(store) / "protocol.json"
    new = json.loads(json.dumps(protocol(spec), default=str))
    if path.exists():
        old = json.loads(path.read_text())
        changed = {k: old[k] for k in FIXED_FIELDS if k in old and old[k] != new[k]}
        changed |= {
            f"space.{key}": dims for key, dims in old.get("space", {}).items()
            if key in new["space"] and new["space"][key] != dims
        }
        if changed:
            raise OptiscopeError(
                f"store '{store.root}' holds a tuning run with another [tuning] "
                f"{', '.join(f'{k} (was {v!r})' for k, v in changed.items())}; rerun with the same table to "
                "resume it, or choose another --store"
            )
    text = json.dumps(protocol(spec), indent=2, sort_keys=True, default=str) + "\n"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_trials(store: RunStore, rows: list[dict[str, Any]]) -> None:
    rows = sorted(rows, key=lambda r: (r["task"], r["study"], r["optimizer_key"], r["trial"]))
    atomic_write_parquet(tuning_dir(store) / "trials.parquet", pa.Table.from_pylist(rows, schema=TRIALS))


def write_final(store: RunStore, rows: list[dict[str, Any]]) -> None:
    atomic_write_parquet(tuning_dir(store) / "final.parquet", pa.Table.from_pylist(rows, schema=FINAL))
