"""The tuning protocol end to end on a tiny problem: the files it writes, trial values read back
independently (DuckDB over the store), diverged trials counted as worst, finals on the
evaluation seeds, and an interrupted study resuming to exactly the uninterrupted result without
retraining what was complete."""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow.parquet as pq
import pytest

from optiscope.config import parse_config
from optiscope.engine.runner import run_experiment, train_cells
from optiscope.engine.work import UnitContext
from optiscope.errors import OptiscopeError
from optiscope.store import RunStore
from optiscope.tuning.protocol import run_tuning
from optiscope.tuning.records import FINAL, TRIALS
from optiscope.tuning.spec import TUNING_SEED_BASE

RAW = {
    "experiment": {"name": "tiny-tuning", "seeds": 2, "steps": 12, "eval_every": 4, "log_every": 4, "device": "cpu"},
    "tasks": [{"name": "rosenbrock"}],
    "optimizers": [{"name": "adam"}, {"name": "sgd", "lr": 1e-4}],
    "tuning": {
        "metric": "f_gap", "trials": 4, "batch": 2, "seeds_per_trial": 2, "sampler": "random", "seed": 3,
        # adam's range is stable; sgd's reaches step sizes that blow up on Rosenbrock's valley.
        "space": {"adam": {"lr": {"log_uniform": [1e-3, 1e-1]}}, "sgd": {"lr": {"log_uniform": [1e-4, 1.0]}}},
    },
}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    store = RunStore.create(tmp_path_factory.mktemp("tuning") / "a")
    summary = run_experiment(parse_config(RAW), store)
    return store, summary


def table(store: RunStore, name: str):
    return pq.read_table(store.root / "tuning" / name)


def test_files_follow_the_contract_schemas(uninterrupted):
    store, summary = uninterrupted
    trials, final = table(store, "trials.parquet"), table(store, "final.parquet")
    assert trials.schema.equals(TRIALS) and final.schema.equals(FINAL)
    assert trials.num_rows == 8  # 2 optimizers x 4 trials
    rows = trials.to_pylist()
    assert sorted((r["optimizer_key"], r["trial"]) for r in rows) == [(k, n) for k in ("adam", "sgd") for n in range(4)]
    protocol = json.loads((store.root / "tuning" / "protocol.json").read_text())
    assert protocol["tuning_seeds"] == {"0": [TUNING_SEED_BASE, TUNING_SEED_BASE + 1]}
    assert protocol["evaluation_seeds"] == [0, 1] and protocol["seeds_disjoint"] is True
    assert protocol["split"] == "none" and protocol["goal"] == "min"
    assert (store.root / "tuning" / "optuna.journal").stat().st_size > 0
    assert not summary.failed and len(summary.trained) == len(set(summary.trained))


def test_trial_values_are_the_median_final_metric_and_divergence_is_worst(uninterrupted):
    store, _ = uninterrupted
    con = store.connect()
    states = set()
    for row in table(store, "trials.parquet").to_pylist():
        runs = con.execute(
            "SELECT run_id, status, seed, role, label FROM runs WHERE cell_id = ? ORDER BY seed", [row["cell_id"]]
        ).fetchall()
        assert [r[2] for r in runs] == [TUNING_SEED_BASE, TUNING_SEED_BASE + 1]
        assert {r[3] for r in runs} == {"trial"} and runs[0][4] == f"{row['optimizer_key']} · trial {row['trial']}"
        states.add(row["state"])
        if any(r[1] == "diverged" for r in runs):
            assert row["state"] == "diverged" and row["value"] == math.inf
            continue
        finals = con.execute(
            "SELECT arg_max(value, step) FROM metrics WHERE name = 'f_gap' AND run_id IN "
            "(SELECT run_id FROM runs WHERE cell_id = ?) GROUP BY run_id", [row["cell_id"]]
        ).fetchall()
        assert row["state"] == "complete"
        assert row["value"] == pytest.approx(float(np.median([f[0] for f in finals])), rel=1e-12)
    assert states == {"complete", "diverged"}  # the sgd range reaches divergence


def test_finals_rerun_each_best_trial_and_each_default_on_the_evaluation_seeds(uninterrupted):
    store, _ = uninterrupted
    trials = table(store, "trials.parquet").to_pylist()
    final = table(store, "final.parquet").to_pylist()
    con = store.connect()
    tuned = {r["optimizer_key"]: r for r in final if r["kind"] == "tuned"}
    for key, row in tuned.items():
        mine = [t for t in trials if t["optimizer_key"] == key]
        best = min(mine, key=lambda t: (t["value"], t["trial"]))
        assert (row["trial"], row["params"], row["study"]) == (best["trial"], best["params"], 0)
        hp = json.loads(con.execute("SELECT hyperparameters FROM runs WHERE cell_id = ?", [row["cell_id"]]).fetchone()[0])
        assert hp["lr"] == json.loads(best["params"])["lr"]
    assert sorted(tuned) == ["adam", "sgd"]
    defaults = [r for r in final if r["kind"] == "default"]
    assert sorted(r["optimizer_key"] for r in defaults) == ["adam", "sgd"] and {r["study"] for r in defaults} == {-1}
    for row in final:
        runs = con.execute("SELECT seed, role, label FROM runs WHERE cell_id = ? ORDER BY seed", [row["cell_id"]]).fetchall()
        assert [r[0] for r in runs] == [0, 1] and {r[1] for r in runs} == {"final"}
        assert runs[0][2] == f"{row['optimizer_key']} {row['kind']}"


class Interrupted(Exception):
    pass


def test_an_interrupted_study_resumes_to_the_uninterrupted_result_without_retraining(uninterrupted, tmp_path):
    """The second round's cells land, then the run dies before telling Optuna (as a kill -9
    would leave it: trials RUNNING, their cells complete). The rerun must not retrain them and
    must end with the same trials and finals as the uninterrupted run (also: determinism)."""
    reference, _ = uninterrupted
    cfg = parse_config(RAW)
    store = RunStore.create(tmp_path / "b")
    calls = []

    def dying_train(cells):
        calls.append(len(cells))
        summary = train_cells(cells, store, UnitContext("cpu"))
        if len(calls) == 2:
            raise Interrupted
        return summary

    with pytest.raises(Interrupted):
        run_tuning(cfg, store, dying_train)
    before = dict(store.fetch("SELECT cell_id, min(created_at) AS t FROM runs GROUP BY cell_id").items())
    created = dict(zip(before["cell_id"].tolist(), before["t"].tolist(), strict=True))
    assert len(created) == 8  # two rounds x two optimizers x batch 2

    resumed = run_tuning(cfg, store, lambda cells: train_cells(cells, store, UnitContext("cpu")))
    after = store.fetch("SELECT cell_id, min(created_at) AS t FROM runs GROUP BY cell_id")
    again = dict(zip(after["cell_id"].tolist(), after["t"].tolist(), strict=True))
    assert all(again[c] == t for c, t in created.items())  # nothing complete was retrained
    assert not set(created) & set(resumed.trained)
    assert table(store, "trials.parquet").equals(table(reference, "trials.parquet"))
    assert table(store, "final.parquet").equals(table(reference, "final.parquet"))


def test_a_store_refuses_a_changed_search(uninterrupted):
    store, _ = uninterrupted
    changed = {**RAW, "tuning": {**RAW["tuning"], "space": {**RAW["tuning"]["space"], "adam": {"lr": {"uniform": [0.001, 0.1]}}}}}
    with pytest.raises(OptiscopeError, match=r"space\.adam"):
        run_tuning(parse_config(changed), store, lambda cells: pytest.fail("nothing may train"))
    with pytest.raises(OptiscopeError, match="sampler"):
        run_tuning(parse_config({**RAW, "tuning": {**RAW["tuning"], "sampler": "tpe"}}), store, lambda c: None)


def test_statistic_mean_scores_a_seed_by_its_mean_after_step_zero(tmp_path):
    """`statistic = "mean"`: a trial's value is the median over its seeds of the metric's mean over
    the evaluations after step 0 (read back here with DuckDB, independently of the protocol)."""
    raw = {**RAW, "optimizers": [{"name": "adam"}],
           "tuning": {**RAW["tuning"], "trials": 2, "statistic": "mean",
                      "space": {"adam": {"lr": {"log_uniform": [1e-3, 1e-1]}}}}}
    store = RunStore.create(tmp_path / "mean")
    run_experiment(parse_config(raw), store)
    assert json.loads((store.root / "tuning" / "protocol.json").read_text())["statistic"] == "mean"
    con = store.connect()
    rows = table(store, "trials.parquet").to_pylist()
    assert len(rows) == 2 and all(r["state"] == "complete" for r in rows)
    for row in rows:
        means = con.execute(
            "SELECT avg(value), min(step) FROM metrics WHERE name = 'f_gap' AND step > 0 AND run_id IN "
            "(SELECT run_id FROM runs WHERE cell_id = ?) GROUP BY run_id", [row["cell_id"]]
        ).fetchall()
        assert len(means) == 2 and all(m[1] == 4 for m in means)
        finals = con.execute(
            "SELECT arg_max(value, step) FROM metrics WHERE name = 'f_gap' AND run_id IN "
            "(SELECT run_id FROM runs WHERE cell_id = ?) GROUP BY run_id", [row["cell_id"]]
        ).fetchall()
        assert row["value"] == pytest.approx(float(np.median([m[0] for m in means])), rel=1e-12)
        assert row["value"] != pytest.approx(float(np.median([f[0] for f in finals])), rel=1e-6)
