"""`optiscope check STORE`: read every file of a store and say what is damaged, orphaned or left
over; `--repair` moves the damaged and orphaned files to the quarantine and removes the litter.

What is checked, per landed batch (the files one cell's seeds landed in): the runs file (footer,
schema, that its rows are this batch's), every file its runs record lists (size, footer or
header, SHA-256), and that the metrics and parameters correspond to the runs (run ids of the
batch's runs, one parameter row per member). Beside the batches: files with no runs file
(orphans: a crash before the commit, or a runs file deleted), temporary `.tmp` files whose
writer is gone, stray files in `runs/`, and checkpoints of batches already landed. Files are
set aside under the batch's lock (store.locks), so two repairs never race.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq

from optiscope.store import integrity
from optiscope.store.integrity import CELL_FOLDERS, Problem
from optiscope.store.locks import CellLock
from optiscope.store.run_store import RunStore


@dataclass
class CheckResult:
    """What `check_store` found, and (with repair) what it did."""

    cells: int = 0  # landed batches that verify
    problems: list[Problem] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)  # one line per action
    busy: list[str] = field(default_factory=list)  # batches left alone: another repair holds them

    @property
    def clean(self) -> bool:
        return not self.problems


def _correspondence(store: RunStore, batch_id: str) -> list[Problem]:
    """The cell's metrics are of its own runs, its parameters have a row per member."""
    runs = pq.read_table(store.root / "runs" / f"{batch_id}.parquet", columns=["run_id", "member"])
    run_ids = set(runs.column("run_id").to_pylist())
    problems = []
    metrics = store.metrics_path(batch_id)
    if metrics.exists():
        stray = set(pq.read_table(metrics, columns=["run_id"]).column("run_id").unique().to_pylist()) - run_ids
        if stray:
            problems.append(Problem(f"metrics/{batch_id}.parquet", batch_id, "foreign",
                                    f"holds metrics of runs not in the cell ({sorted(stray)[0]}, ...)"))
    params = store.params_path(batch_id)
    if params.exists() and runs.num_rows:
        from safetensors import safe_open

        members = max(runs.column("member").to_pylist()) + 1
        with safe_open(str(params), framework="pt") as f:
            for name in f.keys():
                shape = f.get_slice(name).get_shape()
                if not shape or shape[0] < members:
                    problems.append(Problem(f"params/{batch_id}.safetensors", batch_id, "foreign",
                                            f"tensor '{name}' has shape {shape}, not a row per member ({members})"))
                    break
    return problems


def find_problems(store: RunStore) -> tuple[int, list[Problem]]:
    """(cells that verify, every problem found), reading every file in full."""
    root = store.root
    problems: list[Problem] = []
    landed = store.landed_batches()
    good = 0
    for batch_id in sorted(landed):
        found = store.batch_problems(batch_id, full=True)
        if not found:
            found = _correspondence(store, batch_id)
        problems += found
        good += not found
    for folder, suffix in CELL_FOLDERS.items():
        for path in sorted((root / folder).glob(f"*{suffix}")) if (root / folder).is_dir() else []:
            if path.stem not in landed:
                problems.append(Problem(path.relative_to(root).as_posix(), path.stem, "orphan",
                                        "no runs file: the cell did not land (or its runs file was removed)"))
    for path in sorted((root / "runs").iterdir()):
        if path.is_file() and path.suffix != ".parquet" and not path.name.endswith(".tmp"):
            problems.append(Problem(path.relative_to(root).as_posix(), None, "leftover", "not a runs file"))
    for path in sorted(root.rglob("*.tmp")):
        rel = path.relative_to(root)
        if rel.parts[0] != "quarantine" and path.is_file() and integrity.leftover_is_stale(path):
            problems.append(Problem(rel.as_posix(), None, "leftover", "temporary file of a write that never finished"))
    ckpt = root / "checkpoints"
    for path in sorted(ckpt.glob("*.pt")) if ckpt.is_dir() else []:
        unit = path.name.removesuffix(".prev.pt").removesuffix(".pt")
        if unit in landed and not store.batch_problems(unit):
            problems.append(Problem(path.relative_to(root).as_posix(), unit, "leftover",
                                    "checkpoint of a cell that has landed"))
    return good, problems


def check_store(root: str | Path, *, repair: bool = False) -> CheckResult:
    """Check every file of the store at `root`; with `repair`, quarantine and clean up."""
    store = RunStore.open(root)
    good, problems = find_problems(store)
    result = CheckResult(cells=good, problems=problems)
    if not repair:
        return result
    by_cell: dict[str, list[Problem]] = {}
    for p in problems:
        if p.kind == "leftover":
            path = store.root / p.path
            path.unlink(missing_ok=True)
            result.repaired.append(f"removed {p.path}")
        else:
            by_cell.setdefault(p.batch_id or "", []).append(p)
    for batch_id, found in by_cell.items():
        lock = CellLock(store.root, f"batch-{batch_id}")
        if not lock.acquire(wait=False):
            result.busy.append(f"{batch_id} ({lock.holder()})")
            continue
        try:
            if any(p.kind == "orphan" for p in found):
                dest = store._quarantine(sorted(p.path for p in found))
            else:
                dest = store.quarantine(batch_id)
            if dest is not None:
                result.repaired.append(
                    f"moved {', '.join(sorted(p.path for p in found))} to {dest.relative_to(store.root)}"
                    + ("" if any(p.kind == "orphan" for p in found) else "; the next run trains the cell again")
                )
        finally:
            lock.release()
    _, result.problems = find_problems(store)
    return result
