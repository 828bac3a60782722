"""Samplers are seeded per trial, so every sampler (random, Sobol QMC, TPE past its random start)
resumes to exactly the uninterrupted study, wherever the run died. Training is replaced by a
closed-form objective landed straight into the store, so the test exercises Optuna and the
protocol's bookkeeping only."""

from __future__ import annotations

import json
import math

import pyarrow.parquet as pq
import pytest

from optiscope.config import parse_config
from optiscope.engine.landing import run_rows
from optiscope.engine.runner import RunSummary
from optiscope.store import RunStore
from optiscope.tuning.protocol import run_tuning
from optiscope.tuning.sampling import make_sampler, trial_seed


def config(sampler: str, trials: int, batch: int, studies: int):
    return parse_config({
        "experiment": {"name": "s", "seeds": 1, "steps": 1},
        "tasks": [{"name": "rosenbrock"}],
        "optimizers": [{"name": "sgd"}],
        "tuning": {
            "metric": "f_gap", "sampler": sampler, "trials": trials, "batch": batch, "seeds_per_trial": 1,
            "studies": studies, "default": False,
            "space": {"sgd": {"lr": {"log_uniform": [1e-4, 1.0]}, "momentum": {"choice": [0.0, 0.5, 0.9]}}},
        },
    })


def objective(cell) -> float:
    """A smooth bowl in (log lr, momentum): what the fake training 'measures'."""
    return (math.log10(cell.hyperparameters["lr"]) + 2) ** 2 + cell.hyperparameters["momentum"]


def fake_train(store: RunStore, die_on_call: int | None = None):
    calls = []

    def train(cells):
        calls.append(1)
        summary = RunSummary()
        for cell in cells:
            if store.is_complete(cell.cell_id):
                summary.skipped.append(cell.cell_id)
                continue
            rows = [dict(r, status="ok", error=None) for r in run_rows(cell, None)]
            metrics = {"run_id": [r["run_id"] for r in rows], "step": [1] * len(rows),
                       "name": ["f_gap"] * len(rows), "value": [objective(cell)] * len(rows)}
            store.write_cell(cell.cell_id, rows, metrics)
            summary.trained.append(cell.cell_id)
        if len(calls) == die_on_call:
            raise KeyboardInterrupt  # landed, never told: what a kill -9 leaves
        return summary

    return train


def trials(store: RunStore):
    return pq.read_table(store.root / "tuning" / "trials.parquet")


@pytest.mark.parametrize(
    ("sampler", "trials_per_study", "studies", "die_on_calls"),
    # TPE draws at random for its first 10 trials: 12 trials reach its model, and dying on the
    # third round interrupts it there.
    [("random", 6, 2, (1,)), ("qmc", 6, 2, (2,)), ("tpe", 12, 1, (3,))],
)
def test_a_study_killed_at_any_round_resumes_to_the_uninterrupted_one(
    sampler, trials_per_study, studies, die_on_calls, tmp_path
):
    cfg = config(sampler, trials=trials_per_study, batch=4 if sampler == "tpe" else 2, studies=studies)
    reference = RunStore.create(tmp_path / "ref")
    run_tuning(cfg, reference, fake_train(reference))
    expected = trials(reference)
    assert expected.num_rows == trials_per_study * studies
    params = [json.loads(p)["lr"] for p in expected.column("params").to_pylist()]
    assert len(set(params)) == len(params)  # fresh draws per trial, not one seed's first draw again
    for die_on_call in die_on_calls:
        store = RunStore.create(tmp_path / f"{sampler}-{die_on_call}")
        with pytest.raises(KeyboardInterrupt):
            run_tuning(cfg, store, fake_train(store, die_on_call))
        run_tuning(cfg, store, fake_train(store))
        assert trials(store).equals(expected)


def test_per_trial_seeds_depend_on_seed_study_and_trial_only():
    assert trial_seed(0, 0, 5) == trial_seed(0, 0, 5)
    assert len({trial_seed(0, 0, 5), trial_seed(1, 0, 5), trial_seed(0, 1, 5), trial_seed(0, 0, 6)}) == 4
    with pytest.raises(ValueError, match="random, qmc, tpe"):
        make_sampler("grid", 0, 0, 0)
