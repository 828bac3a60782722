"""A store written by optiscope 0.1.0, before seeds on demand (fixtures/legacy_store, from
fixtures/legacy_store.toml): its cell ids hashed the seed list and its files carry no batch id.

It must open and report the numbers that release reported (recorded below from its own `verify`
and `query`), and seeds added to its experiment must join its cells under their old ids.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from optiscope.config import load_config
from optiscope.engine.runner import run_experiment
from optiscope.hypotheses.evaluate import verify_store
from optiscope.report.html import build_report
from optiscope.store import RunStore

FIXTURE = Path(__file__).parent / "fixtures"
#: What optiscope 0.1.0 printed for this store: `optiscope query ... f_gap at step 30`.
FINAL_F_GAP = {
    ("adam(lr=0.05)", 0): 238.72479248046875,
    ("adam(lr=0.05)", 1): 145.92315673828125,
    ("adam(lr=0.05)", 2): 423.8085021972656,
    ("sgd(lr=0.05)", 0): 5.536780909146849e37,
    ("sgd(lr=0.05)", 1): 7.81926491625523e37,
    ("sgd(lr=0.05)", 2): float("inf"),
}
OLD_CELL_IDS = {"9631e57abac3067b", "be4800030018ee98"}


@pytest.fixture
def legacy(tmp_path) -> RunStore:
    shutil.copytree(FIXTURE / "legacy_store", tmp_path / "legacy")
    return RunStore.open(tmp_path / "legacy")


def test_a_legacy_store_reports_the_same_numbers(legacy, tmp_path):
    _, rows = legacy.query(
        "SELECT r.label, r.seed, m.value FROM metrics m JOIN runs r USING (run_id) "
        "WHERE m.name = 'f_gap' AND m.step = 30"
    )
    assert {(label, seed): value for label, seed, value in rows} == FINAL_F_GAP
    assert legacy.completed_cells() == OLD_CELL_IDS == legacy.completed_batches()
    (verdict,) = verify_store(legacy.root)
    # 0.1.0: inconclusive, p = p_holm = 0.05, Cliff's delta -1, 3 runs a side
    assert verdict.verdict == "inconclusive"
    assert verdict.pvalue == pytest.approx(0.05) and verdict.pvalue_adjusted == pytest.approx(0.05)
    assert verdict.effect.estimate == pytest.approx(-1.0)
    assert (verdict.n_a, verdict.n_b) == (3, 3)
    assert build_report(legacy, tmp_path / "report.html").stat().st_size > 0


def test_seeds_added_to_a_legacy_store_join_its_cells(legacy):
    cfg = load_config(FIXTURE / "legacy_store.toml")
    cfg.experiment.seeds = 5
    summary = run_experiment(cfg, legacy)
    assert sorted(summary.trained) == sorted(OLD_CELL_IDS)  # grown under their old ids
    assert legacy.completed_cells() == OLD_CELL_IDS and len(legacy.completed_batches()) == 4
    _, rows = legacy.query("SELECT cell_id, count(*), count(DISTINCT seed) FROM runs GROUP BY ALL")
    assert sorted(n for _, n, _ in rows) == [5, 5] and all(n == d for _, n, d in rows)
    # the old runs are untouched
    _, rows = legacy.query(
        "SELECT r.label, r.seed, m.value FROM metrics m JOIN runs r USING (run_id) "
        "WHERE m.name = 'f_gap' AND m.step = 30 AND r.seed < 3"
    )
    assert {(label, seed): value for label, seed, value in rows} == FINAL_F_GAP
    (verdict,) = verify_store(legacy.root, config=cfg)
    assert (verdict.n_a, verdict.n_b) == (5, 5)
