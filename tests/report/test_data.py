"""StoreView: a cell's runs come in seed order whatever order their batches landed in."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np

from optiscope.hypotheses.evaluate import verify_store
from optiscope.report.data import StoreView
from optiscope.store import RunStore

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def land_batch(store: RunStore, cell_id: str, label: str, seeds: list[int], finals: dict[int, float],
               minute: int, optimizer: str) -> None:
    """One batch of `cell_id` holding `seeds` (final `acc` from `finals`), landed at T0 + minute."""
    batch = f"{cell_id}-{'-'.join(map(str, seeds))}"
    runs = [{
        "run_id": f"{cell_id}-s{s}", "cell_id": cell_id, "experiment": "planted", "task": "quadratic",
        "task_settings": "{}", "optimizer": optimizer, "label": label, "hyperparameters": "{}",
        "seed": s, "member": m, "status": "ok", "diverged_step": None, "steps": 10, "grad_evals": 10,
        "wall_time_s": 1.0, "mode": "ensemble", "device": "cpu", "versions": "{}", "error": None,
        "created_at": T0 + dt.timedelta(minutes=minute), "role": "cell", "precision": "fp32",
        "chunk_size": None, "batch_id": batch,
    } for m, s in enumerate(seeds)]
    metrics = {"run_id": np.array([f"{cell_id}-s{s}" for s in seeds], dtype=object),
               "step": np.full(len(seeds), 10, dtype=np.int64),
               "name": np.array(["acc"] * len(seeds), dtype=object),
               "value": np.array([finals[s] for s in seeds], dtype=float)}
    info = [{"cell_id": cell_id, "name": "acc", "goal": "max", "unit": "", "description": "",
             "headline": True, "source": "task"}]
    store.write_cell(batch, runs, metrics, metric_info=info)


HYPOTHESIS = """
[[hypotheses]]
name = "a on par with b"
metric = "acc"
a = "a"
b = "b"
direction = "equivalent"
margin = 0.05
"""


def test_runs_are_in_seed_order_and_the_verdict_does_not_depend_on_landing_order(tmp_path):
    rng = np.random.default_rng(3)
    finals = {"a": dict(enumerate(rng.normal(0.90, 0.02, 8))), "b": dict(enumerate(rng.normal(0.91, 0.02, 8)))}
    verdicts = []
    for name, first, second in (("in-order", [0, 1, 2, 3], [4, 5, 6, 7]),
                                ("resumed", [4, 5, 6, 7], [0, 1, 2, 3])):  # e.g. a batch retried
        store = RunStore.create(tmp_path / name)
        for cell, optimizer in (("a", "adam"), ("b", "sgd")):
            land_batch(store, cell, cell, first, finals[cell], minute=0, optimizer=optimizer)
            # a's late batch lands before b's first: cells interleave in landing order too
            land_batch(store, cell, cell, second, finals[cell], minute=1 if cell == "a" else 2,
                       optimizer=optimizer)
        view = StoreView.load(store)
        for c in view.cells:
            assert c.seeds == list(range(8))
            np.testing.assert_array_equal(view.final_values(c, "acc"), [finals[c.label][s] for s in range(8)])
        store.save_config(HYPOTHESIS)
        (v,) = verify_store(store.root)
        verdicts.append(v)
    same, resumed = verdicts
    assert resumed.verdict == same.verdict
    # the bootstrap interval resamples by position: the same multiset in another order would move it
    assert (resumed.effect.low, resumed.effect.high) == (same.effect.low, same.effect.high)
    assert json.dumps(resumed.effect.estimate) == json.dumps(same.effect.estimate)
