"""The run store: one directory per experiment, Parquet files queried with DuckDB.

Layout::

    STORE/
      config.toml               the experiment file as last run
      metrics/<cell_id>.parquet  long metrics of the cell's runs
      params/<cell_id>.safetensors  final (and initial) ensemble parameters
      runs/<cell_id>.parquet     the cell's run rows: written last, so its presence marks the
                                 cell complete
      checkpoints/<cell_id>.pt   in-flight state of a cell being trained (removed when done)

Every file is written to a temporary name and renamed into place, so a crash leaves either the
old state or the new one, never a torn file, and the store always reads back whole. A cell is
complete exactly when its `runs` file exists; a rerun skips those. Parquet files (rather than one
DuckDB database) let readers query while a run is writing and let remote executors land cells
by copying files, with no lock to hold.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from optiscope.errors import OptiscopeError
from optiscope.store.schema import METRICS, RUNS


class RunStore:
    """A directory of runs and metrics; see the module docstring for the layout."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    # -- creation and checks ----------------------------------------------------------------
    @classmethod
    def create(cls, root: str | Path) -> RunStore:
        """Open `root` for writing, creating it; fail now if it cannot be written."""
        store = cls(root)
        try:
            for sub in ("runs", "metrics", "params", "checkpoints"):
                (store.root / sub).mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=store.root, prefix=".write-check-"):
                pass
        except OSError as exc:
            raise OptiscopeError(
                f"store directory '{store.root}' cannot be written ({exc.strerror or exc}). "
                "Choose another with --store."
            ) from None
        return store

    @classmethod
    def open(cls, root: str | Path) -> RunStore:
        """Open an existing store for reading."""
        store = cls(root)
        if not (store.root / "runs").is_dir():
            raise OptiscopeError(
                f"'{store.root}' is not an optiscope store (no runs/ folder). "
                "Create one with `optiscope run EXPERIMENT.toml --store DIR`."
            )
        return store

    # -- writing ----------------------------------------------------------------------------
    def is_complete(self, cell_id: str) -> bool:
        return (self.root / "runs" / f"{cell_id}.parquet").exists()

    def completed_cells(self) -> set[str]:
        return {p.stem for p in (self.root / "runs").glob("*.parquet")}

    def failed_cells(self) -> set[str]:
        """Cells recorded as failed (an exception in training); a rerun tries them again."""
        if not self.completed_cells():
            return set()
        rows = self.connect().execute(
            "SELECT DISTINCT cell_id FROM runs WHERE status = 'failed'"
        ).fetchall()
        return {r[0] for r in rows}

    def save_config(self, text: str) -> None:
        _atomic_write_bytes(self.root / "config.toml", text.encode())

    def write_cell(
        self,
        cell_id: str,
        runs: list[dict[str, Any]],
        metrics: Mapping[str, Any],
        params: Mapping[str, torch.Tensor] | None = None,
    ) -> None:
        """Land one cell: metrics and parameters first, the runs file last (the commit)."""
        metrics_table = pa.table(dict(metrics), schema=METRICS)
        _atomic_write_parquet(self.root / "metrics" / f"{cell_id}.parquet", metrics_table)
        if params:
            self.save_params(cell_id, params)
        runs_table = pa.Table.from_pylist(runs, schema=RUNS)
        _atomic_write_parquet(self.root / "runs" / f"{cell_id}.parquet", runs_table)
        self.checkpoint_path(cell_id).unlink(missing_ok=True)

    def save_params(self, cell_id: str, params: Mapping[str, torch.Tensor]) -> None:
        from safetensors.torch import save_file

        path = self.params_path(cell_id)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        save_file({k: v.detach().cpu().contiguous() for k, v in params.items()}, str(tmp))
        os.replace(tmp, path)

    def params_path(self, cell_id: str) -> Path:
        return self.root / "params" / f"{cell_id}.safetensors"

    def load_params(self, cell_id: str) -> dict[str, torch.Tensor]:
        """Saved ensemble tensors of a cell (safetensors: no pickle is ever loaded)."""
        from safetensors.torch import load_file

        path = self.params_path(cell_id)
        if not path.exists():
            raise OptiscopeError(f"no saved parameters for cell {cell_id} in {self.root}")
        return load_file(str(path))

    def checkpoint_path(self, cell_id: str) -> Path:
        return self.root / "checkpoints" / f"{cell_id}.pt"

    def save_checkpoint(self, cell_id: str, payload: dict[str, Any]) -> None:
        """In-flight state of a cell (tensors, numbers, strings only: loads with weights_only)."""
        path = self.checkpoint_path(cell_id)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        torch.save(payload, tmp)
        os.replace(tmp, path)

    def load_checkpoint(self, cell_id: str) -> dict[str, Any] | None:
        path = self.checkpoint_path(cell_id)
        if not path.exists():
            return None
        try:
            return torch.load(path, weights_only=True, map_location="cpu")
        except Exception:  # a checkpoint from another version: start the cell again
            return None

    # -- reading ----------------------------------------------------------------------------
    def connect(self) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB connection with views `runs` and `metrics` over the store."""
        con = duckdb.connect()
        runs_glob = str(self.root / "runs" / "*.parquet")
        if any((self.root / "runs").glob("*.parquet")):
            con.execute(f"CREATE VIEW runs AS SELECT * FROM read_parquet('{_q(runs_glob)}')")
            metric_files = [
                str(self.root / "metrics" / f"{c}.parquet") for c in sorted(self.completed_cells())
            ]
            files = ", ".join(f"'{_q(f)}'" for f in metric_files if Path(f).exists())
            if files:
                con.execute(f"CREATE VIEW metrics AS SELECT * FROM read_parquet([{files}])")
            else:
                _empty_view(con, "metrics", METRICS)
        else:
            _empty_view(con, "runs", RUNS)
            _empty_view(con, "metrics", METRICS)
        return con

    def query(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run SQL against the store; returns (column names, rows)."""
        con = self.connect()
        try:
            cur = con.execute(sql)
        except duckdb.Error as exc:
            raise OptiscopeError(f"query failed: {exc}") from None
        if cur.description is None:
            return [], []
        return [d[0] for d in cur.description], cur.fetchall()

    def fetch(self, sql: str, params: list[Any] | None = None) -> dict[str, Any]:
        """Run SQL; return columns as numpy arrays (for analysis code)."""
        return self.connect().execute(sql, params or []).fetchnumpy()

    def config_text(self) -> str | None:
        path = self.root / "config.toml"
        return path.read_text() if path.exists() else None


def _q(s: str) -> str:
    return s.replace("'", "''")


def _empty_view(con: duckdb.DuckDBPyConnection, name: str, schema: pa.Schema) -> None:
    empty = pa.Table.from_pylist([], schema=schema)  # noqa: F841  (referenced by DuckDB below)
    con.register(f"_{name}_empty", empty)
    con.execute(f"CREATE VIEW {name} AS SELECT * FROM _{name}_empty")


def _atomic_write_parquet(path: Path, table: pa.Table) -> None:
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def to_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)
