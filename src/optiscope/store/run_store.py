"""The run store: one directory per experiment, Parquet files queried with DuckDB.

Layout::

    STORE/
      config.toml                 the experiment file as last run (any experiment)
      configs/<name>.toml         each experiment's file as last run (verify judges every one)
      configs/history/<name>-<utc time>.toml  every run's file, for the record
      metrics/<batch_id>.parquet  long metrics of the batch's runs
      metric_info/<batch_id>.parquet  goal, unit, description and headline of each metric
      params/<batch_id>.safetensors  final (and initial) ensemble parameters
      runs/<batch_id>.parquet     the batch's run rows: written last, so its presence marks the
                                  batch complete; its `files` column records every file the
                                  batch landed (checksum, size, rows: store.integrity)
      checkpoints/<unit_id>.pt    in-flight state of a unit being trained (and the one before,
                                  `.prev.pt`); removed when all its cells have landed
      locks/<cell_id>.lock        the OS lock a run holds on a cell while it trains it (store.locks)
      quarantine/<utc time>/      damaged or foreign files moved aside by `run` or `check --repair`

A cell is a *setting* (task, optimizer, hyperparameters, budget, precision) and a run is a
(setting, seed): `runs.cell_id` names the setting. A *batch* is the seeds of one cell trained
together; raising an experiment's `seeds` later trains only the missing seeds, as a new batch
of the same cell, and every query sees the cell's runs together. A store written before seeds
on demand has one batch per cell, named by its cell id (the `runs` view fills in `batch_id`).

Every file is written to a temporary name and renamed into place, so a crash leaves either the
old state or the new one, never a torn file, and the store always reads back whole. A cell is
complete exactly when its `runs` file exists and every file it records verifies (checksums,
sizes, footers: store.integrity); a rerun skips those. Parquet files (rather than one
DuckDB database) let readers query while a run is writing and let remote executors land cells
by copying files (a lock per cell keeps two runs from training one cell twice). Reading is read-only: DuckDB is given the store's own
files and nothing else, and `query` runs SELECT statements only.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import tempfile
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from optiscope.errors import OptiscopeError
from optiscope.store import integrity
from optiscope.store.integrity import Problem
from optiscope.store.schema import METRIC_INFO, METRICS, RUNS

log = logging.getLogger("optiscope.store")


#: Categorical metrics of stores written before `metric_info` declared goals.
LEGACY_CATEGORICAL = frozenset({"basin"})


@dataclass(frozen=True)
class Batch:
    """Seeds of one cell trained together, landed as one set of files named by `batch_id`."""

    batch_id: str
    cell_id: str
    seeds: tuple[int, ...]
    failed: bool


class RunStore:
    """A directory of runs and metrics; see the module docstring for the layout."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        #: (batch_id, full) -> (stat signature of the batch's files, problems): checks run once
        self._verified: dict[tuple[str, bool], tuple[tuple[Any, ...], list[Problem]]] = {}

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
    def is_complete(self, batch_id: str) -> bool:
        """The batch has landed and every file it recorded verifies."""
        return (self.root / "runs" / f"{batch_id}.parquet").exists() and not self.batch_problems(batch_id)

    def landed_batches(self) -> set[str]:
        """The batches with a runs file, whether or not their files verify."""
        return {p.stem for p in (self.root / "runs").glob("*.parquet")}

    def completed_batches(self) -> set[str]:
        """The batches landed whose files all verify (the ones readers see): their `batch_id`s."""
        return {b for b in self.landed_batches() if not self.batch_problems(b)}

    def batch_problems(self, batch_id: str, *, full: bool = False) -> list[Problem]:
        """Why the landed batch cannot be read (empty: it can). `full` also checksums the
        parameter files (store.integrity). Cached until one of the batch's files changes."""
        sig = self._signature(batch_id)
        key = (batch_id, full)
        cached = self._verified.get(key)
        if cached is None or cached[0] != sig:
            cached = (sig, integrity.batch_problems(self.root, batch_id, full=full))
            self._verified[key] = cached
        return cached[1]

    def _signature(self, batch_id: str) -> tuple[Any, ...]:
        paths = [self.root / "runs" / f"{batch_id}.parquet"] + [
            self.root / folder / f"{batch_id}{suffix}" for folder, suffix in integrity.CELL_FOLDERS.items()
        ]
        out = []
        for p in paths:
            try:
                st = p.stat()
                out.append((st.st_size, st.st_mtime_ns, st.st_ino))
            except OSError:
                out.append(None)
        return tuple(out)

    def problems(self, *, full: bool = False) -> list[Problem]:
        """Every landed batch's problems (a damaged, foreign or missing file), one per file."""
        return [p for c in sorted(self.landed_batches()) for p in self.batch_problems(c, full=full)]

    def quarantine(self, batch_id: str) -> Path | None:
        """Move every file of a bad batch (its runs file first) to `quarantine/<utc time>/`, so
        the batch counts as missing and a run trains it again; the damaged files are kept there
        for inspection. Returns the folder (None: nothing moved)."""
        paths = [f"runs/{batch_id}.parquet"] + [
            f"{folder}/{batch_id}{suffix}" for folder, suffix in integrity.CELL_FOLDERS.items()
        ]
        self.discard_checkpoint(batch_id)
        return self._quarantine(paths)

    def _quarantine(self, rel_paths: list[str]) -> Path | None:
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
        dest = self.root / "quarantine" / f"{stamp}-{os.getpid()}"
        moved = False
        for rel in rel_paths:
            src = self.root / rel
            if not src.exists():
                continue
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.replace(src, target)
            except FileNotFoundError:  # another run set it aside first
                continue
            moved = True
        return dest if moved else None


    def completed_cells(self) -> set[str]:
        """The cells with at least one landed batch: their `cell_id`s."""
        return {b.cell_id for b in self.batches()}

    def failed_cells(self) -> set[str]:
        """Cells with a batch recorded as failed (an exception in training); a rerun trains
        that batch's seeds again."""
        return {b.cell_id for b in self.batches() if b.failed}

    def batches(self) -> list[Batch]:
        """Every landed batch: its cell (setting), seeds and whether training raised."""
        if not self.completed_batches():
            return []
        rows = self.connect().execute(
            "SELECT batch_id, any_value(cell_id), list(seed ORDER BY member), bool_or(status = 'failed') "
            "FROM runs GROUP BY batch_id ORDER BY batch_id"
        ).fetchall()
        return [Batch(b, c, tuple(int(s) for s in seeds), bool(f)) for b, c, seeds, f in rows]

    def batch_ids(self, cell_id: str) -> list[str]:
        """The batches of one cell (setting), oldest first."""
        if not self.completed_batches():
            return []
        rows = self.connect().execute(
            "SELECT batch_id FROM runs WHERE cell_id = ? GROUP BY batch_id ORDER BY min(created_at), batch_id",
            [cell_id],
        ).fetchall()
        return [r[0] for r in rows]

    def discard_batch(self, batch_id: str) -> None:
        """Remove a failed batch whose seeds were trained again in another batch of its cell:
        its runs file first (the batch stops counting), then whatever else it left."""
        (self.root / "runs" / f"{batch_id}.parquet").unlink(missing_ok=True)
        for folder, suffix in (("metrics", ".parquet"), ("metric_info", ".parquet"), ("params", ".safetensors")):
            (self.root / folder / f"{batch_id}{suffix}").unlink(missing_ok=True)

    def save_config(self, text: str, experiment: str | None = None) -> None:
        """Keep the experiment file: as `config.toml` (the last run's), and, given the
        experiment's name, as `configs/<name>.toml` and in `configs/history/` (every run's)."""
        _atomic_write_bytes(self.root / "config.toml", text.encode())
        if experiment is None:
            return
        (self.root / "configs" / "history").mkdir(parents=True, exist_ok=True)
        _atomic_write_bytes(self.root / "configs" / f"{experiment}.toml", text.encode())
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S.%f")
        _atomic_write_bytes(self.root / "configs" / "history" / f"{experiment}-{stamp}.toml", text.encode())

    def save_expected_cells(self, experiment: str, cells: list[dict[str, str]]) -> None:
        """The cells an experiment's config asks for (cell_id, label, task), so that readers can
        say which are missing without parsing the config (no task or optimizer imported)."""
        (self.root / "configs").mkdir(exist_ok=True)
        _atomic_write_bytes(self.root / "configs" / f"{experiment}.cells.json", json.dumps(cells).encode())

    def missing_cells(self) -> list[dict[str, str]]:
        """Configured cells (of every experiment run into the store) that are not in it, or
        whose files do not verify: each with its `experiment`, `cell_id`, `label`, `task`."""
        folder = self.root / "configs"
        if not folder.is_dir():
            return []
        have = self.completed_cells()
        out = []
        for path in sorted(folder.glob("*.cells.json")):
            try:
                cells = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            name = path.name.removesuffix(".cells.json")
            out += [{**c, "experiment": name} for c in cells if isinstance(c, dict) and c.get("cell_id") not in have]
        return out

    def experiment_configs(self) -> dict[str, str]:
        """Each experiment's saved file, by name (a store from before: its one `config.toml`,
        under the name it declares)."""
        folder = self.root / "configs"
        found = {p.stem: p.read_text() for p in sorted(folder.glob("*.toml"))} if folder.is_dir() else {}
        if not found and (text := self.config_text()) is not None:
            found[_declared_name(text) or "config"] = text
        return found

    def write_cell(
        self,
        cell_id: str,
        runs: list[dict[str, Any]],
        metrics: Mapping[str, Any],
        params: Mapping[str, torch.Tensor] | None = None,
        metric_info: list[dict[str, Any]] | None = None,
        tables: Mapping[str, pa.Table] | None = None,
    ) -> None:
        """Land one cell: metrics, metric declarations, other per-cell tables (`tables`: folder
        name -> table, e.g. a 2-D task's contour `surface`) and parameters first, the runs file
        last (the commit)."""
        written = [self._write_metrics(cell_id, metrics)]
        if metric_info is not None:
            written.append(self._write_cell_table("metric_info", cell_id, _as_table(metric_info, METRIC_INFO)))
        for folder, table in (tables or {}).items():
            written.append(self._write_cell_table(folder, cell_id, table))
        if params:
            written.append(self._save_params(cell_id, params))
        else:  # a rerun without parameters must not leave the old cell's beside the new runs
            self.params_path(cell_id).unlink(missing_ok=True)
        manifest = json.dumps([integrity.fingerprint(p, self.root) for p in written])
        runs_table = pa.Table.from_pylist([{**r, "files": manifest} for r in runs], schema=RUNS)
        atomic_write_parquet(self.root / "runs" / f"{cell_id}.parquet", runs_table)
        self.discard_checkpoint(cell_id)

    def _record(self, cell_id: str, path: Path) -> None:
        """A landed cell's file was rewritten (probe results written back): record its new
        fingerprint in the cell's runs file, so it still verifies."""
        runs_path = self.root / "runs" / f"{cell_id}.parquet"
        if not runs_path.exists():
            return
        table = pq.read_table(runs_path)
        manifest = integrity.manifest_of(table)
        if manifest is None:  # a legacy cell: nothing recorded, nothing to update
            return
        entry = integrity.fingerprint(path, self.root)
        manifest = [e for e in manifest if e.get("path") != entry["path"]] + [entry]
        text = pa.array([json.dumps(manifest)] * table.num_rows, type=pa.string())
        table = table.set_column(table.column_names.index("files"), "files", text)
        atomic_write_parquet(runs_path, table)

    def metrics_path(self, cell_id: str) -> Path:
        return self.root / "metrics" / f"{cell_id}.parquet"

    def write_metrics(self, cell_id: str, metrics: Mapping[str, Any] | pa.Table) -> None:
        """Write (or rewrite) a cell's long metrics, atomically, in the `METRICS` schema."""
        self._record(cell_id, self._write_metrics(cell_id, metrics))

    def _write_metrics(self, cell_id: str, metrics: Mapping[str, Any] | pa.Table) -> Path:
        table = metrics.cast(METRICS) if isinstance(metrics, pa.Table) else pa.table(dict(metrics), schema=METRICS)
        atomic_write_parquet(self.metrics_path(cell_id), table)
        return self.metrics_path(cell_id)

    def read_metrics(self, cell_id: str) -> pa.Table:
        """A cell's long metrics as written (empty if the cell has none yet)."""
        path = self.metrics_path(cell_id)
        return pq.read_table(path) if path.exists() else METRICS.empty_table()

    def write_metric_info(self, cell_id: str, rows: list[dict[str, Any]] | pa.Table) -> None:
        """Write (or rewrite) a cell's metric declarations in the `METRIC_INFO` schema."""
        self.write_cell_table("metric_info", cell_id, _as_table(rows, METRIC_INFO))

    def read_metric_info(self, cell_id: str) -> pa.Table:
        """A cell's metric declarations (empty for a cell landed before they were stored)."""
        table = self.read_cell_table("metric_info", cell_id)
        return METRIC_INFO.empty_table() if table is None else table

    def write_cell_table(self, folder: str, cell_id: str, table: pa.Table) -> None:
        """Write a per-cell table to `folder/<cell_id>.parquet`, atomically."""
        self._record(cell_id, self._write_cell_table(folder, cell_id, table))

    def _write_cell_table(self, folder: str, cell_id: str, table: pa.Table) -> Path:
        (self.root / folder).mkdir(exist_ok=True)
        path = self.root / folder / f"{cell_id}.parquet"
        atomic_write_parquet(path, table)
        return path

    def read_cell_table(self, folder: str, cell_id: str) -> pa.Table | None:
        """The per-cell table `folder/<cell_id>.parquet`, or None if the cell has none."""
        path = self.root / folder / f"{cell_id}.parquet"
        return pq.read_table(path) if path.exists() else None

    def save_params(self, cell_id: str, params: Mapping[str, torch.Tensor]) -> None:
        self._record(cell_id, self._save_params(cell_id, params))

    def _save_params(self, cell_id: str, params: Mapping[str, torch.Tensor]) -> Path:
        from safetensors.torch import save_file

        tensors = {k: v.detach().cpu().contiguous() for k, v in params.items()}
        (self.root / "params").mkdir(exist_ok=True)
        _atomic_write(self.params_path(cell_id), lambda tmp: save_file(tensors, str(tmp)))
        return self.params_path(cell_id)

    def params_path(self, cell_id: str) -> Path:
        return self.root / "params" / f"{cell_id}.safetensors"

    def load_params(self, cell_id: str) -> dict[str, torch.Tensor]:
        """Saved ensemble tensors of a cell (safetensors: no pickle is ever loaded), verified
        against the checksum recorded at landing."""
        from safetensors.torch import load_file

        path = self.params_path(cell_id)
        if not path.exists():
            raise OptiscopeError(f"no saved parameters for cell {cell_id} in {self.root}")
        rel = path.relative_to(self.root).as_posix()
        landed = (self.root / "runs" / f"{cell_id}.parquet").exists()
        bad = [p for p in self.batch_problems(cell_id, full=True) if p.path in (rel, f"runs/{cell_id}.parquet")] if landed else []
        if not bad and path.suffix == ".safetensors":
            why = integrity.file_problem(path, None, schema=None, hash_it=False)
            bad = [Problem(rel, cell_id, "damaged", why)] if why else []
        if bad:
            raise OptiscopeError(
                f"{bad[0].line()}; the cell's parameters cannot be read: run its experiment again "
                f"to retrain the cell, or see `optiscope check {self.root}`"
            )
        return load_file(str(path))

    def checkpoint_path(self, cell_id: str) -> Path:
        return self.root / "checkpoints" / f"{cell_id}.pt"

    def previous_checkpoint_path(self, cell_id: str) -> Path:
        return self.root / "checkpoints" / f"{cell_id}.prev.pt"

    def save_checkpoint(self, cell_id: str, payload: dict[str, Any]) -> None:
        """In-flight state of a unit (tensors, numbers, strings only: loads with weights_only).
        The checkpoint it replaces is kept as `.prev.pt`, to resume from if the new one is bad."""
        path = self.checkpoint_path(cell_id)
        path.parent.mkdir(exist_ok=True)

        def write(tmp: Path) -> None:
            torch.save(payload, tmp)
            if path.exists():
                os.replace(path, self.previous_checkpoint_path(cell_id))

        _atomic_write(path, write)

    def load_checkpoint(self, cell_id: str) -> dict[str, Any] | None:
        """The latest readable checkpoint of a unit: the last one, else the one before (with a
        message), else None (with a message: the unit starts from step 0)."""
        bad = []
        for path in (self.checkpoint_path(cell_id), self.previous_checkpoint_path(cell_id)):
            if not path.exists():
                continue
            try:
                payload = torch.load(path, weights_only=True, map_location="cpu")
                if not isinstance(payload, dict):
                    raise ValueError("not a checkpoint")
            except Exception as exc:  # torn, overwritten, or from another version
                bad.append(f"{path.relative_to(self.root)} ({integrity._short(exc)})")
                continue
            if bad:
                log.warning("checkpoint %s is unreadable; resuming from the one before, %s",
                            bad[0], path.relative_to(self.root))
            return payload
        if bad:
            log.warning("checkpoint %s is unreadable and there is no earlier one: %s starts from step 0",
                        " and ".join(bad), cell_id)
        return None

    def discard_checkpoint(self, cell_id: str) -> None:
        """Remove a unit's checkpoints, its chunks' included (all its cells have landed)."""
        self.checkpoint_path(cell_id).unlink(missing_ok=True)
        self.previous_checkpoint_path(cell_id).unlink(missing_ok=True)
        for path in (self.root / "checkpoints").glob(f"{cell_id}.m*.pt"):
            path.unlink(missing_ok=True)

    def has_checkpoint(self, unit_id: str) -> bool:
        """Some checkpoint of the unit (or of one of its chunks) exists."""
        folder = self.root / "checkpoints"
        return self.checkpoint_path(unit_id).exists() or self.previous_checkpoint_path(unit_id).exists() \
            or any(folder.glob(f"{unit_id}.m*.pt"))

    # -- reading ----------------------------------------------------------------------------
    def connect(self) -> duckdb.DuckDBPyConnection:
        """A read-only, in-memory DuckDB connection with views `runs`, `metrics`, `metric_info`.

        Once the views exist the connection is locked down (`_read_only`): DuckDB may read the
        store's own files and nothing else, and its settings cannot be changed back.
        """
        con = duckdb.connect()
        root = self.root.resolve()
        good = sorted(self.completed_batches())  # a damaged or foreign file is never read as data
        if good:
            runs_files = ", ".join(f"'{_q(str(root / 'runs' / f'{c}.parquet'))}'" for c in good)
            source = f"read_parquet([{runs_files}], union_by_name = true)"
            columns = {d[0] for d in con.execute(f"SELECT * FROM {source} LIMIT 0").description}
            batch = ("* REPLACE (coalesce(batch_id, cell_id) AS batch_id)" if "batch_id" in columns
                     else "*, cell_id AS batch_id")  # written before seeds on demand: a batch per cell
            con.execute(f"CREATE VIEW runs AS SELECT {batch} FROM {source}")
            metric_files = [str(root / "metrics" / f"{c}.parquet") for c in good]
            files = ", ".join(f"'{_q(f)}'" for f in metric_files if Path(f).exists())
            if files:
                con.execute(f"CREATE VIEW metrics AS SELECT * FROM read_parquet([{files}])")
            else:
                _empty_view(con, "metrics", METRICS)
        else:
            _empty_view(con, "runs", RUNS)
            _empty_view(con, "metrics", METRICS)
        info_files = [
            f for c in good
            if (f := root / "metric_info" / f"{c}.parquet").exists()
        ]
        if info_files:  # stores written before metric_info existed have none
            listed = ", ".join(f"'{_q(str(f))}'" for f in info_files)
            con.execute(f"CREATE VIEW metric_info AS SELECT * FROM read_parquet([{listed}])")
        else:
            _empty_view(con, "metric_info", METRIC_INFO)
        _read_only(con, root)
        return con

    def query(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run a read-only query (SELECT statements only) against the store.

        Returns (column names, rows). Anything else (COPY, EXPORT, ATTACH, CREATE, SET, INSTALL,
        EXPLAIN ANALYZE of a write, ...) is refused before it runs, and DuckDB itself refuses
        to touch a file outside the store (see `connect`).
        """
        con = self.connect()
        try:
            statements = con.extract_statements(sql)
        except duckdb.Error as exc:
            raise OptiscopeError(f"query failed: {exc}") from None
        if not statements:
            raise OptiscopeError("query is empty: give a SELECT statement")
        refused = [s.type.name for s in statements if s.type != duckdb.StatementType.SELECT]
        if refused:
            raise OptiscopeError(
                f"query refused: queries are read-only, so only SELECT statements run (also WITH, "
                f"FROM, DESCRIBE, SHOW, SUMMARIZE); got {', '.join(refused)}"
            )
        try:
            cur = con.execute(sql)
        except duckdb.PermissionException as exc:
            raise OptiscopeError(
                f"query refused: a query may read only the store's own files ({self.root}), "
                f"never write or read elsewhere ({exc})"
            ) from None
        except duckdb.Error as exc:
            raise OptiscopeError(f"query failed: {exc}") from None
        if cur.description is None:
            return [], []
        return [d[0] for d in cur.description], cur.fetchall()

    def fetch(self, sql: str, params: list[Any] | None = None) -> dict[str, Any]:
        """Run SQL; return columns as numpy arrays (for analysis code)."""
        return self.connect().execute(sql, params or []).fetchnumpy()

    def final_params(self, cell_id: str) -> dict[int, dict[str, dict[str, torch.Tensor]]]:
        """Each member's saved parameters, keyed by seed: {seed: {"final": {name: tensor},
        "init": {name: tensor}}}.

        The safetensors file holds the ensemble (member axis first, `init.`-prefixed initial
        values beside the final ones); the `runs` table's `member` column says which row is which
        seed. Diverged members are included as stored (check `runs.status`). "init" is empty for
        a file saved without initial values.
        """
        rows = self.fetch(
            "SELECT batch_id, seed, member FROM runs WHERE cell_id = ? AND status != 'failed' "
            "ORDER BY created_at, batch_id, member", [cell_id])
        if not len(rows["seed"]) and (bad := self.problems()):
            raise OptiscopeError(
                f"cell '{cell_id}' is not in the store {self.root}, which leaves out damaged files "
                f"({bad[0].line()}{'; ...' if len(bad) > 1 else ''}): run its experiment again to retrain "
                f"them, or see `optiscope check {self.root}`")
        if not len(rows["seed"]):
            known = sorted({b.cell_id for b in self.batches()})
            raise OptiscopeError(
                f"cell '{cell_id}' is not in the store {self.root}; cells: {', '.join(known) or 'none'}"
            )
        out: dict[int, dict[str, dict[str, torch.Tensor]]] = {}
        batch_ids = [str(b) for b in rows["batch_id"].tolist()]
        for batch_id in dict.fromkeys(batch_ids):  # each batch's file holds its own members
            if not self.params_path(batch_id).exists():
                raise OptiscopeError(
                    f"cell '{cell_id}' has no saved parameters in {self.root}: run its experiment with "
                    "save_params = true in [experiment] (the default) to keep them"
                )
            saved = self.load_params(batch_id)
            mine = [i for i, b in enumerate(batch_ids) if b == batch_id]
            n_members = int(max(rows["member"][mine])) + 1
            for name, t in saved.items():
                if t.ndim == 0 or t.shape[0] < n_members:
                    raise OptiscopeError(
                        f"cell '{cell_id}': saved tensor '{name}' has shape {tuple(t.shape)}, not one row "
                        f"per member ({n_members} members)"
                    )
            for i in mine:
                member = int(rows["member"][i])
                final = {k: v[member] for k, v in saved.items() if not k.startswith("init.")}
                init = {k.removeprefix("init."): v[member] for k, v in saved.items() if k.startswith("init.")}
                out[int(rows["seed"][i])] = {"final": final, "init": init}
        return out

    def categorical_metrics(self) -> set[str]:
        """Names of the metrics that are labels, not quantities (say `basin`): no min or max.

        Read from `metric_info` (goal NULL for a metric a task declares). Cells landed before
        `metric_info` existed have no declarations: for those, the one categorical metric the
        tasks had at the time, `basin`, is assumed.
        """
        con = self.connect()
        rows = con.execute(
            "SELECT DISTINCT name FROM metric_info WHERE goal IS NULL AND source = 'task'"
        ).fetchall()
        declared = {r[0] for r in con.execute("SELECT DISTINCT cell_id FROM metric_info").fetchall()}
        legacy = LEGACY_CATEGORICAL if self.completed_cells() - declared else frozenset()
        return {r[0] for r in rows} | legacy

    def config_text(self) -> str | None:
        path = self.root / "config.toml"
        return path.read_text() if path.exists() else None


def _declared_name(text: str) -> str | None:
    import tomllib

    try:
        name = tomllib.loads(text).get("experiment", {}).get("name")
    except (tomllib.TOMLDecodeError, AttributeError):
        return None
    return name if isinstance(name, str) else None


def _as_table(rows: list[dict[str, Any]] | pa.Table, schema: pa.Schema) -> pa.Table:
    return rows.cast(schema) if isinstance(rows, pa.Table) else pa.Table.from_pylist(rows, schema=schema)


def _q(s: str) -> str:
    return s.replace("'", "''")


def _read_only(con: duckdb.DuckDBPyConnection, root: Path) -> None:
    """Let `con` read files under `root` only, write none, and keep it so.

    DuckDB checks every file access against `allowed_directories` once
    `enable_external_access` is off (no COPY TO elsewhere, no read_csv('/etc/...'), no ATTACH,
    no extension installs), and `lock_configuration` stops a query from switching it back.
    Writes inside the store are stopped by `RunStore.query`, which runs SELECT statements only.
    """
    con.execute(f"SET allowed_directories = ['{_q(str(root))}/']")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def _empty_view(con: duckdb.DuckDBPyConnection, name: str, schema: pa.Schema) -> None:
    empty = pa.Table.from_pylist([], schema=schema)  # noqa: F841  (referenced by DuckDB below)
    con.register(f"_{name}_empty", empty)
    con.execute(f"CREATE VIEW {name} AS SELECT * FROM _{name}_empty")


def atomic_write_parquet(path: Path, table: pa.Table) -> None:
    """Write `table` to `path` so that a reader finds the old file or the new one, never a part.

    The one Parquet writer of the store: every table file (runs, metrics, metric_info, probe
    results written back) goes through here.
    """
    _atomic_write(path, lambda tmp: pq.write_table(table, tmp))


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    _atomic_write(path, lambda tmp: tmp.write_bytes(data))


def _atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """`write` a temporary file beside `path`, flush it to disk, then rename it into place.

    The temporary name is unique per process and call, starts with a dot and ends in `.tmp`, so
    no reader's glob (`*.parquet`) ever sees it; a failed write leaves no temporary behind.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
