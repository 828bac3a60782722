"""Integrity of landed files: what each cell wrote (checksum, size, rows), checked when read.

Landing records, in the cell's `runs` rows (column `files`, JSON), one entry per file the cell
wrote: its path inside the store, SHA-256, size in bytes and (Parquet) row count. Reading then
never takes a file on trust:

- **on open** (every reader): the runs file's footer and schema (a Parquet file of another table,
  or one naming another cell, is foreign), and for each recorded file its size, its footer (Parquet)
  or header (safetensors), and the SHA-256 of the Parquet tables (small, and read anyway);
- **in full** (`optiscope check`, `optiscope run`, loading parameters): also the SHA-256 of the
  parameter files.

A cell with any bad file counts as missing: it is reported in one line naming the file and the
cell, never read as data. Stores written before integrity was recorded (no `files` column) get
the structural checks only. The unit is the landed file, so the check does not depend on how a
cell's runs are grouped (a cell today; a setting and a batch of seeds later).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from optiscope.store.schema import METRIC_INFO, METRICS, SURFACE

#: Columns a runs file must have (stores of every release do); the rest may be missing (legacy).
RUNS_REQUIRED = ("run_id", "cell_id", "experiment", "task", "optimizer", "label", "seed", "member", "status")
#: Schema of each per-cell Parquet folder.
TABLES: dict[str, pa.Schema] = {"metrics": METRICS, "metric_info": METRIC_INFO, "surface": SURFACE}
#: Folders a cell writes into (besides runs/), with their file suffix.
CELL_FOLDERS: dict[str, str] = {"metrics": ".parquet", "metric_info": ".parquet", "surface": ".parquet",
                                "params": ".safetensors"}
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Problem:
    """One bad or stray file: `path` relative to the store, the batch of files it belongs to
    (if any; its file name) and, where its runs file says, the cell (setting) of that batch."""

    path: str
    batch_id: str | None
    kind: str  # damaged | foreign | missing | orphan | leftover
    detail: str
    cell_id: str | None = None

    def line(self) -> str:
        if self.cell_id and self.batch_id and self.cell_id != self.batch_id:
            whose = f" (cell {self.cell_id}, batch {self.batch_id})"
        else:
            whose = f" (cell {self.cell_id or self.batch_id})" if (self.cell_id or self.batch_id) else ""
        return f"{self.path}{whose}: {self.detail}"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            h.update(block)
    return h.hexdigest()


def fingerprint(path: Path, root: Path) -> dict[str, Any]:
    """The manifest entry of a landed file: SHA-256, bytes, and rows for a Parquet table."""
    entry: dict[str, Any] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
    if path.suffix == ".parquet":
        entry["rows"] = pq.read_metadata(path).num_rows
    return {"path": path.relative_to(root).as_posix(), **entry}


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:160]


def _parquet_problem(path: Path, schema: pa.Schema | None, entry: dict[str, Any] | None) -> str | None:
    """Why the Parquet file at `path` is not the table it should be (None: it is)."""
    try:
        meta = pq.read_metadata(path)
        got = meta.schema.to_arrow_schema()
    except Exception as exc:  # pyarrow raises several types for a torn or foreign file
        return f"unreadable Parquet ({_short(exc)})"
    if schema is not None:
        missing = [n for n in schema.names if n not in got.names]
        if missing:
            return f"wrong schema: not a {'/'.join(schema.names[:4])}... table (lacks {', '.join(missing[:4])})"
    if entry is not None and "rows" in entry and meta.num_rows != entry["rows"]:
        return f"{meta.num_rows} rows, landed with {entry['rows']}"
    return None


def _safetensors_problem(path: Path) -> str | None:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            list(f.keys())
    except Exception as exc:
        return f"unreadable safetensors ({_short(exc)})"
    return None


def file_problem(path: Path, entry: dict[str, Any] | None, *, schema: pa.Schema | None, hash_it: bool) -> str | None:
    """Why a landed file is bad (None when it is good): missing, resized, torn, foreign, altered."""
    if not path.exists():
        return "missing"
    if entry is not None and path.stat().st_size != entry.get("bytes"):
        return f"size {path.stat().st_size} bytes, landed with {entry.get('bytes')}"
    why = _parquet_problem(path, schema, entry) if path.suffix == ".parquet" else _safetensors_problem(path)
    if why is None and entry is not None and hash_it and sha256_file(path) != entry.get("sha256"):
        why = "checksum differs from the one recorded at landing"
    return why


def read_runs_file(path: Path) -> tuple[pa.Table | None, str | None]:
    """A runs file's table, or why it is not one of this cell (torn, foreign, another cell's)."""
    why = _parquet_problem(path, None, None)
    if why is not None:
        return None, why
    try:
        table = pq.read_table(path)
    except Exception as exc:
        return None, f"unreadable Parquet ({_short(exc)})"
    missing = [c for c in RUNS_REQUIRED if c not in table.column_names]
    if missing:
        return None, f"foreign file: not a runs table (lacks {', '.join(missing[:4])})"
    cells = table.column("cell_id").to_pylist()
    batches = table.column("batch_id").to_pylist() if "batch_id" in table.column_names else [None] * len(cells)
    ids = {b if b is not None else c for b, c in zip(batches, cells, strict=True)}  # legacy: batch = cell
    if table.num_rows == 0 or ids != {path.stem}:
        return None, f"foreign file: its rows are of batch(es) {', '.join(sorted(map(str, ids))) or 'none'}"
    return table, None


def manifest_of(table: pa.Table) -> list[dict[str, Any]] | None:
    """The files a runs table says its cell landed (None: written before integrity existed)."""
    if "files" not in table.column_names:
        return None
    texts = [t for t in table.column("files").to_pylist() if t]
    if not texts:
        return None
    try:
        entries = json.loads(texts[0])
    except ValueError:
        return []  # unreadable manifest: every file is unverifiable, see batch_problems
    return entries if isinstance(entries, list) else []


def batch_problems(root: Path, batch_id: str, *, full: bool) -> list[Problem]:
    """Every reason batch `batch_id` (its runs file present) cannot be read as data."""
    runs_path = root / "runs" / f"{batch_id}.parquet"
    rel = f"runs/{batch_id}.parquet"
    table, why = read_runs_file(runs_path)
    if why is not None:
        kind = "foreign" if why.startswith(("foreign", "wrong schema")) else "damaged"
        return [Problem(rel, batch_id, kind, why)]
    assert table is not None
    cell_id = str(table.column("cell_id")[0].as_py())
    manifest = manifest_of(table)
    problems: list[Problem] = []
    if manifest is None:  # legacy: structure only
        for folder, suffix in CELL_FOLDERS.items():
            path = root / folder / f"{batch_id}{suffix}"
            if path.exists():
                why = file_problem(path, None, schema=TABLES.get(folder), hash_it=False)
                if why:
                    problems.append(Problem(path.relative_to(root).as_posix(), batch_id, "damaged", why, cell_id))
        return problems
    if not manifest and table.num_rows:
        return [Problem(rel, batch_id, "damaged", "its record of landed files is unreadable", cell_id)]
    for entry in manifest:
        rel_path = str(entry.get("path", ""))
        path = root / rel_path
        if not rel_path or ".." in Path(rel_path).parts or path.parent.parent != root:
            problems.append(Problem(rel, batch_id, "damaged", f"records an impossible file '{rel_path}'", cell_id))
            continue
        folder = Path(rel_path).parts[0]
        hash_it = full or path.suffix == ".parquet"
        why = file_problem(path, entry, schema=TABLES.get(folder), hash_it=hash_it)
        if why is not None:
            kind = "missing" if why == "missing" else ("foreign" if why.startswith("wrong schema") else "damaged")
            problems.append(Problem(rel_path, batch_id, kind, why, cell_id))
    return problems


def leftover_is_stale(path: Path) -> bool:
    """A temporary `.NAME.PID.HEX.tmp` whose writer (on this host) is no longer alive."""
    parts = path.name.split(".")
    try:
        pid = int(parts[-3])
    except (IndexError, ValueError):
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False

