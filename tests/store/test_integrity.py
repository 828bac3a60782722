"""Integrity recorded at landing (issue 22): a damaged, foreign or wrong-schema file is never read
as data, the cell counts as missing, and the message names the file and its cell."""

from __future__ import annotations

import json
import logging
import os

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from optiscope.errors import OptiscopeError
from optiscope.store import RunStore
from optiscope.store.check import check_store

from .test_run_store import metrics, run_row


@pytest.fixture
def two(tmp_store):
    """Two landed cells, c1 and c2, with parameters."""
    for cell in ("c1", "c2"):
        tmp_store.write_cell(cell, [run_row(cell, 0), run_row(cell, 1)], metrics(cell, [0, 1]),
                             params={"w": torch.arange(6.0).reshape(2, 3)})
    return tmp_store


def fresh(store: RunStore) -> RunStore:
    return RunStore.open(store.root)


def test_landing_records_checksum_size_and_rows_of_every_file(two):
    table = pq.read_table(two.root / "runs" / "c1.parquet")
    entries = {e["path"]: e for e in json.loads(table.column("files")[0].as_py())}
    assert set(entries) == {"metrics/c1.parquet", "params/c1.safetensors"}
    m = entries["metrics/c1.parquet"]
    assert m["rows"] == 6 and m["bytes"] == (two.root / "metrics" / "c1.parquet").stat().st_size
    import hashlib

    assert m["sha256"] == hashlib.sha256((two.root / "metrics" / "c1.parquet").read_bytes()).hexdigest()
    assert not fresh(two).problems(full=True)


def test_params_overwritten_with_random_bytes_make_the_cell_missing(two):
    path = two.params_path("c1")
    path.write_bytes(np.random.default_rng(0).bytes(path.stat().st_size))  # same size: only bytes differ
    store = fresh(two)
    assert store.completed_cells() == {"c2"} and not store.is_complete("c1")
    (p,) = store.problems()
    assert p.path == "params/c1.safetensors" and p.cell_id == "c1"
    assert store.query("SELECT DISTINCT cell_id FROM runs")[1] == [("c2",)]
    with pytest.raises(OptiscopeError, match=r"params/c1.safetensors \(cell c1\).*cannot be read") as exc:
        store.load_params("c1")
    assert "\n" not in str(exc.value)
    with pytest.raises(OptiscopeError, match=r"leaves out damaged files \(params/c1.safetensors \(cell c1\)"):
        store.final_params("c1")


def test_params_altered_in_place_fail_the_checksum(two):
    """A flip inside the data (header intact, same size) is found by the checksum."""
    path = two.params_path("c1")
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    (p,) = fresh(two).problems(full=True)
    assert "checksum" in p.detail
    with pytest.raises(OptiscopeError, match="checksum"):
        fresh(two).final_params("c1")


def test_a_foreign_parquet_file_in_runs_is_not_read(two):
    """A metrics table copied into runs/ must not count 2736 rows as runs."""
    (two.root / "runs" / "zz.parquet").write_bytes((two.root / "metrics" / "c1.parquet").read_bytes())
    store = fresh(two)
    assert store.query("SELECT count(*) FROM runs")[1] == [(4,)]
    (p,) = store.problems()
    assert p.path == "runs/zz.parquet" and p.kind == "foreign"


def test_another_cells_runs_file_under_a_wrong_name_is_foreign(two):
    (two.root / "runs" / "c3.parquet").write_bytes((two.root / "runs" / "c1.parquet").read_bytes())
    (p,) = fresh(two).problems()
    assert p.kind == "foreign" and "c1" in p.detail


@pytest.mark.parametrize("folder", ["runs", "metrics"])
def test_half_a_parquet_file_is_damage_not_a_traceback(two, folder):
    path = two.root / folder / "c1.parquet"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    store = fresh(two)
    assert store.completed_cells() == {"c2"}
    assert store.query("SELECT count(DISTINCT run_id) FROM metrics")[1] == [(2,)]
    (p,) = store.problems()
    assert p.path == f"{folder}/c1.parquet" and p.batch_id == "c1" and "(cell c1)" in p.line()


def test_random_bytes_named_like_a_runs_file_are_left_out(two):
    (two.root / "runs" / "junk.parquet").write_bytes(os.urandom(500))
    store = fresh(two)
    assert store.completed_cells() == {"c1", "c2"}
    assert [p.path for p in store.problems()] == ["runs/junk.parquet"]


def test_probe_results_written_back_keep_the_cell_verified(two):
    table = two.read_metrics("c1")
    two.write_metrics("c1", table.slice(0, 3))
    two.write_metric_info("c1", [{"cell_id": "c1", "name": "loss", "goal": "min", "unit": None,
                                  "description": "", "headline": True, "source": "task"}])
    assert not fresh(two).problems(full=True)


def test_a_garbage_checkpoint_resumes_from_the_one_before_with_a_message(tmp_store, caplog):
    tmp_store.save_checkpoint("u", {"step": 10})
    tmp_store.save_checkpoint("u", {"step": 20})
    tmp_store.checkpoint_path("u").write_bytes(b"garbage")
    with caplog.at_level(logging.WARNING, logger="optiscope.store"):
        assert tmp_store.load_checkpoint("u") == {"step": 10}
    assert "unreadable" in caplog.text and "resuming from the one before" in caplog.text
    tmp_store.previous_checkpoint_path("u").write_bytes(b"garbage too")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="optiscope.store"):
        assert tmp_store.load_checkpoint("u") is None
    assert "starts from step 0" in caplog.text


def test_check_lists_damage_orphans_and_leftovers_and_repair_sets_them_aside(two):
    params = two.params_path("c1")
    params.write_bytes(b"not safetensors")
    (two.root / "runs" / "c2.parquet").unlink()  # c2's metrics and params are now orphans
    (two.root / "metrics" / ".c9.parquet.999999999.abc.tmp").write_bytes(b"torn")
    result = check_store(two.root)
    kinds = sorted((p.kind, p.path) for p in result.problems)
    assert kinds == [
        ("damaged", "params/c1.safetensors"),
        ("leftover", "metrics/.c9.parquet.999999999.abc.tmp"),
        ("orphan", "metrics/c2.parquet"),
        ("orphan", "params/c2.safetensors"),
    ]
    repaired = check_store(two.root, repair=True)
    assert repaired.clean, repaired.problems
    moved = sorted(p.relative_to(two.root / "quarantine").as_posix().split("/", 1)[1]
                   for p in (two.root / "quarantine").rglob("*") if p.is_file())
    assert moved == ["metrics/c1.parquet", "metrics/c2.parquet", "params/c1.safetensors",
                     "params/c2.safetensors", "runs/c1.parquet"]
    assert check_store(two.root).clean and not fresh(two).landed_batches()


def test_check_finds_metrics_of_another_cell_in_a_legacy_cell(tmp_store):
    """A cell landed before integrity was recorded (no `files`): structure and correspondence."""
    tmp_store.write_cell("c1", [run_row("c1", 0)], metrics("c1", [0]))
    tmp_store.write_cell("c2", [run_row("c2", 0)], metrics("c2", [0]))
    for cell in ("c1", "c2"):  # drop the record, as an old release wrote it
        path = tmp_store.root / "runs" / f"{cell}.parquet"
        pq.write_table(pq.read_table(path).drop(["files"]), path)
    (tmp_store.metrics_path("c1")).write_bytes(tmp_store.metrics_path("c2").read_bytes())
    assert fresh(tmp_store).completed_cells() == {"c1", "c2"}  # legacy: footers only on open
    (p,) = check_store(tmp_store.root).problems
    assert p.path == "metrics/c1.parquet" and "not in the cell" in p.detail
