"""The run store: atomic landing, completion marks, reading back with DuckDB (read-only),
final parameters by seed, categorical metrics."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import torch

from optiscope.errors import OptiscopeError
from optiscope.store import RunStore


def run_row(cell: str, seed: int, status: str = "ok") -> dict:
    return {
        "run_id": f"{cell}-s{seed}", "cell_id": cell, "experiment": "e", "task": "t",
        "task_settings": "{}", "optimizer": "sgd", "label": "sgd", "hyperparameters": "{}",
        "seed": seed, "member": seed, "status": status, "diverged_step": None, "steps": 3,
        "grad_evals": 3, "wall_time_s": 0.1, "mode": "ensemble", "device": "cpu",
        "versions": "{}", "error": None, "created_at": dt.datetime.now(dt.timezone.utc),
    }


def metrics(cell: str, seeds: list[int]) -> dict:
    run_id = np.array([f"{cell}-s{s}" for s in seeds for _ in range(3)], dtype=object)
    return {
        "run_id": run_id,
        "step": np.tile(np.arange(3), len(seeds)),
        "name": np.array(["loss"] * len(run_id), dtype=object),
        "value": np.arange(len(run_id), dtype=float),
    }


def test_written_cells_read_back_and_mark_completion(tmp_store):
    assert tmp_store.query("SELECT count(*) FROM runs")[1] == [(0,)]
    tmp_store.write_cell("c1", [run_row("c1", 0), run_row("c1", 1)], metrics("c1", [0, 1]))
    assert tmp_store.is_complete("c1") and not tmp_store.is_complete("c2")
    assert tmp_store.completed_cells() == {"c1"}
    cols, rows = tmp_store.query("SELECT run_id, sum(value) AS total FROM metrics GROUP BY 1 ORDER BY 1")
    assert cols == ["run_id", "total"]
    assert rows == [("c1-s0", 3.0), ("c1-s1", 12.0)]


def test_metrics_of_a_cell_without_its_runs_file_are_invisible(tmp_store):
    """A crash between the metrics file and the runs file (the commit) leaves no half cell."""
    tmp_store.write_cell("c1", [run_row("c1", 0)], metrics("c1", [0]))
    (tmp_store.root / "runs" / "c1.parquet").rename(tmp_store.root / "c1.bak")
    tmp_store.write_cell("c2", [run_row("c2", 0)], metrics("c2", [0]))
    (tmp_store.root / "c1.bak").rename(tmp_store.root / "runs" / "c1.parquet.tmp")  # torn write
    assert tmp_store.query("SELECT DISTINCT run_id FROM metrics")[1] == [("c2-s0",)]
    assert tmp_store.completed_cells() == {"c2"}


def test_params_round_trip_through_safetensors(tmp_store):
    params = {"w": torch.randn(4, 3, 2), "init.w": torch.zeros(4, 3, 2)}
    tmp_store.save_params("c", params)
    back = tmp_store.load_params("c")
    assert set(back) == {"w", "init.w"} and torch.equal(back["w"], params["w"])


def test_failed_cells_are_listed_for_retry(tmp_store):
    tmp_store.write_cell("c1", [run_row("c1", 0, "failed")], metrics("c1", []))
    tmp_store.write_cell("c2", [run_row("c2", 0, "diverged")], metrics("c2", [0]))
    assert tmp_store.failed_cells() == {"c1"}


def test_opening_something_that_is_not_a_store_says_so(tmp_path):
    with pytest.raises(OptiscopeError, match="not an optiscope store"):
        RunStore.open(tmp_path)


# -- read-only queries (issue 9.7) ---------------------------------------------------------------
@pytest.fixture
def landed(tmp_store):
    tmp_store.write_cell("c1", [run_row("c1", 0), run_row("c1", 1)], metrics("c1", [0, 1]))
    return tmp_store


@pytest.mark.parametrize(
    "sql",
    [
        "COPY (SELECT 1 AS a) TO '{out}'",
        "COPY (SELECT 1 AS a) TO '{inside}' (USE_TMP_FILE false)",
        "EXPLAIN ANALYZE COPY (SELECT 1 AS a) TO '{inside}'",
        "EXPORT DATABASE '{outdir}'",
        "ATTACH '{out}.duckdb' AS other",
        "CREATE TABLE t AS SELECT 1",
        "SELECT 1; COPY (SELECT 1) TO '{out}'",
    ],
)
def test_a_query_cannot_write_files(landed, tmp_path, sql):
    out, outdir = tmp_path / "written.csv", tmp_path / "exported"
    inside = landed.root / "runs" / "evil.parquet"
    with pytest.raises(OptiscopeError, match="read-only, so only SELECT statements run"):
        landed.query(sql.format(out=out, inside=inside, outdir=outdir))
    assert not out.exists() and not outdir.exists() and not inside.exists()
    assert not list(tmp_path.glob("written*"))
    assert landed.completed_cells() == {"c1"}


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM read_csv('/etc/hostname')",
        "SELECT * FROM read_text('/etc/passwd')",
        "SELECT * FROM read_csv('{root}/runs/../../../../../../etc/hostname')",
        "SELECT * FROM read_parquet('{elsewhere}')",
        "SELECT * FROM glob('/etc/*')",
    ],
)
def test_a_query_cannot_read_outside_the_store(landed, tmp_path, sql):
    elsewhere = tmp_path / "elsewhere.parquet"
    landed.write_metrics("tmp", metrics("x", [0]))  # a real Parquet file, then moved out
    (landed.root / "metrics" / "tmp.parquet").rename(elsewhere)
    with pytest.raises(OptiscopeError, match="may read only the store's own files"):
        landed.query(sql.format(root=landed.root.resolve(), elsewhere=elsewhere))


def test_the_lock_cannot_be_lifted_and_reads_of_the_store_still_work(landed):
    for sql in ("SET enable_external_access = true", "RESET enable_external_access",
                "SET allowed_directories = ['/']", "INSTALL httpfs", "LOAD httpfs"):
        with pytest.raises(OptiscopeError, match="read-only"):
            landed.query(sql)
    con = landed.connect()
    with pytest.raises(Exception, match="locked"):
        con.execute("SET enable_external_access = true")
    root = landed.root.resolve()
    assert landed.query(f"SELECT count(*) FROM read_parquet('{root}/runs/*.parquet')")[1] == [(2,)]
    assert landed.query("DESCRIBE runs")[1]
    assert landed.query("WITH n AS (SELECT count(*) AS k FROM metrics) FROM n")[1] == [(6,)]
    with pytest.raises(OptiscopeError, match="empty"):
        landed.query("  ")


# -- final parameters by seed (issue 9.8) --------------------------------------------------------
def test_final_params_are_keyed_by_seed_through_runs_member(tmp_store):
    seeds = [7, 3, 11]  # members 0, 1, 2: the seeds are deliberately not in member order
    rows = [run_row("c1", s) | {"member": m} for m, s in enumerate(seeds)]
    w = torch.arange(3 * 2 * 2, dtype=torch.float32).reshape(3, 2, 2)
    b = torch.tensor([[0.5], [1.5], [2.5]])
    params = {"w": w, "b": b, "init.w": -w, "init.b": -b}
    tmp_store.write_cell("c1", rows, metrics("c1", seeds), params)
    got = tmp_store.final_params("c1")
    assert sorted(got) == [3, 7, 11]
    for member, seed in enumerate(seeds):
        assert set(got[seed]) == {"final", "init"}
        assert torch.equal(got[seed]["final"]["w"], w[member])
        assert torch.equal(got[seed]["final"]["b"], b[member])
        assert torch.equal(got[seed]["init"]["w"], -w[member])
        assert set(got[seed]["init"]) == {"w", "b"}


def test_final_params_say_clearly_what_is_missing(tmp_store):
    tmp_store.write_cell("c1", [run_row("c1", 0)], metrics("c1", [0]))
    with pytest.raises(OptiscopeError, match="cell 'nope' is not in the store.*cells: c1"):
        tmp_store.final_params("nope")
    with pytest.raises(OptiscopeError, match="no saved parameters.*save_params = true"):
        tmp_store.final_params("c1")
    tmp_store.write_cell("c2", [run_row("c2", 0)], metrics("c2", [0]), {"w": torch.ones(1, 2)})
    assert tmp_store.final_params("c2")[0]["init"] == {}


# -- the one atomic Parquet writer (issue 14.6) --------------------------------------------------
def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_store, monkeypatch):
    import pyarrow.parquet as pq

    from optiscope.store import run_store

    tmp_store.write_metrics("c1", metrics("c1", [0]))
    before = tmp_store.read_metrics("c1")

    def torn(table, where, **kw):
        with open(where, "wb") as f:
            f.write(b"PAR1 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(run_store.pq, "write_table", torn)
    with pytest.raises(OSError, match="disk full"):
        tmp_store.write_metrics("c1", metrics("c1", [0, 1]))
    monkeypatch.undo()
    assert tmp_store.read_metrics("c1").equals(before)
    assert [p.name for p in (tmp_store.root / "metrics").iterdir()] == ["c1.parquet"]
    assert pq.read_table(tmp_store.metrics_path("c1")).num_rows == 3


def test_temporaries_are_invisible_to_readers_while_written(tmp_store, monkeypatch):
    """The temporary name is hidden and not *.parquet, so globs of the store never see it."""
    from optiscope.store import run_store

    seen = []
    real = run_store.pq.write_table

    def spy(table, where, **kw):
        seen.append(where)
        assert list((tmp_store.root / "runs").glob("*.parquet")) == []
        real(table, where, **kw)

    monkeypatch.setattr(run_store.pq, "write_table", spy)
    tmp_store.write_cell("c1", [run_row("c1", 0)], metrics("c1", [0]))
    assert seen and all(p.name.startswith(".") and p.suffix == ".tmp" for p in seen)
    assert tmp_store.completed_cells() == {"c1"}


def test_metrics_can_be_rewritten_whole(tmp_store):
    tmp_store.write_metrics("c1", metrics("c1", [0]))
    table = tmp_store.read_metrics("c1")
    tmp_store.write_metrics("c1", table.slice(0, 1))
    assert tmp_store.read_metrics("c1").num_rows == 1
    assert tmp_store.read_metrics("absent").num_rows == 0


# -- categorical metrics (issue 9.4) -------------------------------------------------------------
def test_categorical_metrics_come_from_metric_info_or_the_legacy_set(tmp_path):
    old = RunStore.create(tmp_path / "old")
    old.write_cell("c1", [run_row("c1", 0)], metrics("c1", [0]))
    assert old.categorical_metrics() == {"basin"}  # no declarations: a store from before
    info = [
        {"cell_id": "c2", "name": "loss", "goal": "min", "unit": "", "description": "",
         "headline": True, "source": "task"},
        {"cell_id": "c2", "name": "region", "goal": None, "unit": "", "description": "a label",
         "headline": False, "source": "task"},
        {"cell_id": "c2", "name": "probe/x", "goal": None, "unit": "", "description": "",
         "headline": False, "source": "probe"},
    ]
    new = RunStore.create(tmp_path / "new")
    new.write_cell("c2", [run_row("c2", 0)], metrics("c2", [0]), metric_info=info)
    assert new.categorical_metrics() == {"region"}  # declared: goal NULL, from the task
    old.write_cell("c2", [run_row("c2", 0)], metrics("c2", [0]), metric_info=info)
    assert old.categorical_metrics() == {"region", "basin"}  # c1 still undeclared


def test_final_params_of_a_trained_cell_match_each_seeds_own_initialisation(tmp_path):
    """End to end: a real run with seeds out of order; each seed's `init` is what the task
    draws for that seed on its own, and `final` moved away from it."""
    from optiscope.config import parse_config
    from optiscope.engine.runner import run_experiment
    from optiscope.tasks import make_task

    cfg = parse_config({
        "experiment": {"name": "fp", "seeds": [4, 1, 9], "steps": 5, "eval_every": 5},
        "tasks": [{"name": "quadratic", "dim": 3}],
        "optimizers": [{"name": "sgd", "lr": 0.1}],
    })
    store = RunStore.create(tmp_path / "s")
    run_experiment(cfg, store, device="cpu")
    (cell_id,) = store.completed_cells()
    got = store.final_params(cell_id)
    task = make_task("quadratic", dim=3)
    assert sorted(got) == [1, 4, 9]
    for seed, p in got.items():
        own = task.init_params(seed)
        assert set(p["init"]) == set(own) == set(p["final"])
        for name in own:
            assert torch.equal(p["init"][name], own[name])
            assert not torch.equal(p["final"][name], own[name])
