"""Run an experiment: every cell not yet in the store, trained and landed one by one.

Cells already complete in the store are skipped, so rerunning after a crash (or after adding an
optimizer to the config) trains only what is missing. A cell whose training raises is recorded
as `failed` with the error, and the experiment goes on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
import logging
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from optiscope.config import Cell, ExperimentConfig
from optiscope.engine.ensemble import EnsembleTrainer
from optiscope.engine.executors import Executor, LocalExecutor
from optiscope.engine.landing import land_cell, land_payload, outcome_payload
from optiscope.engine.loop import LoopTrainer
from optiscope.engine.result import CellResult
from optiscope.engine.work import CellOutcome, UnitContext, plan_units, run_trainer
from optiscope.engine.trainer import Trainer
from optiscope.errors import OptiscopeError
from optiscope.optim.registry import check_hyperparameters, is_ensemble_aware, resolve_optimizer
from optiscope.probes.iterates import IterateRecorder, records_iterates
from optiscope.store import Batch, RunStore
from optiscope.store.locks import CellLock
from optiscope.tasks.base import Task
from optiscope.tasks.registry import make_task


log = logging.getLogger("optiscope.engine")


def resolve_device(name: str) -> str:
    """'auto' -> 'cuda' when a GPU is visible, else 'cpu'; an unavailable device is an error."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise OptiscopeError(f"device '{name}' was asked for but no CUDA GPU is visible")
    if name == "mps" and not torch.backends.mps.is_available():
        raise OptiscopeError("device 'mps' was asked for but is not available")
    return name


def set_threads(threads: int | None) -> int:
    """Set torch's intra-op threads to `threads` (None: leave torch's choice); return the count
    in use. On a shared machine torch's default (one per core) oversubscribes the cores when
    other jobs run, which the project measured at 10-185x slower; `threads = 1` avoids it."""
    if threads is not None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise OptiscopeError(f"threads must be an integer >= 1, got {threads!r}")
        torch.set_num_threads(threads)
    return torch.get_num_threads()


@dataclass
class RunSummary:
    """What `run_experiment` did, for the CLI to print."""

    trained: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


class Progress:
    """Callbacks the runner reports to (the CLI draws a rich progress bar with them)."""

    def start(self, total_steps: int) -> None: ...
    def cell(self, cell: Cell, index: int, n: int) -> None: ...
    def advance(self, steps: int) -> None: ...


def probe_hooks(task: Task, probe_runner: Any = None) -> list[Any]:
    """The probe hooks a cell runs: the configured probes, and the iterate recorder for a task
    whose parameters are one 2-D point (the report draws those trajectories from the store)."""
    hooks = [] if probe_runner is None else [probe_runner]
    if records_iterates(task):
        hooks.append(IterateRecorder())
    return hooks


def make_trainer(
    cell: Cell,
    device: str,
    probe_runner: Any = None,
    *,
    task: Task | None = None,
    seeds: Sequence[int] | None = None,
    per_member: dict[str, Any] | None = None,
    hooks: list[Any] | None = None,
) -> Trainer:
    """The cell's trainer: the ensemble step for ensemble-aware optimizers, else member by member.

    A packed unit (engine.work) passes its `seeds`, the `per_member` hyperparameter tensors that
    replace the cell's values, its built `task` and its per-cell probe `hooks`.
    """
    task = make_task(cell.task, **cell.task_settings) if task is None else task
    cls = resolve_optimizer(cell.optimizer)
    hp = {**check_hyperparameters(cell.optimizer, cell.hyperparameters), **(per_member or {})}
    trainer_cls = EnsembleTrainer if is_ensemble_aware(cls) else LoopTrainer
    return trainer_cls(
        task, cls, hp, list(cell.seeds if seeds is None else seeds), device=device,
        probe_runner=probe_hooks(task, probe_runner) if hooks is None else hooks,
        precision=cell.precision, compile=cell.compile,
    )


def run_cell(
    cell: Cell,
    store: RunStore,
    device: str,
    *,
    checkpoint_every: int = 0,
    save_params: bool = True,
    on_step: Callable[[int], None] | None = None,
    probe_runner: Any = None,
) -> CellResult:
    """Train one cell (resuming from its checkpoint if one exists) and land it in the store:
    the work-unit path (engine.work.run_trainer) for one cell and a probe runner object."""
    trainer = make_trainer(cell, device, probe_runner)
    ctx = UnitContext(device=device, checkpoint_every=checkpoint_every, save_params=save_params)
    result = run_trainer(trainer, cell, ctx, store, cell.batch_id, on_step, None, final_save=False)
    land_cell(store, cell, result, trainer.task, save_params=save_params)
    return result


def land_outcome(store: RunStore, outcome: CellOutcome, *, save_params: bool) -> None:
    """Write one cell's outcome: trained (metrics, parameters, runs) or failed (runs only)."""
    land_payload(store, outcome_payload(outcome, save_params=save_params))


@dataclass
class MissingSeeds:
    """What a store lacks of some cells: `todo` holds each incomplete cell with only its missing
    seeds (under the id the store knows it by); `complete` the ids of cells with every seed;
    `failed` the failed batches of each cell, which its new batch replaces when it lands."""

    todo: list[Cell]
    complete: list[str]
    failed: dict[str, list[Batch]] = field(default_factory=dict)


def plan_missing(cells: Sequence[Cell], store: RunStore, batches: list[Batch] | None = None) -> MissingSeeds:
    """Seeds on demand: for each cell, the seeds the store does not hold yet.

    A cell's runs may sit in several batches (seeds added over time); a failed batch's seeds
    count as missing, so they are trained again. A store written before seeds on demand named
    each cell by its batch id (the setting and its seed list): such a batch is recognised by
    recomputing that id, and new seeds join the cell under its old id (`Cell.stored_id`).
    """
    batches = store.batches() if batches is None else batches
    held: dict[str, set[int]] = {}
    failed: dict[str, list[Batch]] = {}
    for b in batches:
        held.setdefault(b.cell_id, set())
        if b.failed:
            failed.setdefault(b.cell_id, []).append(b)
        else:
            held[b.cell_id].update(b.seeds)
    legacy = [b for b in batches if b.batch_id == b.cell_id]  # one batch per cell, cell id = batch id
    out = MissingSeeds([], [], failed)
    for cell in cells:
        if cell.cell_id not in held:
            old = next((b for b in legacy if replace(cell, seeds=b.seeds).batch_id == b.batch_id), None)
            if old is not None:
                cell = replace(cell, stored_id=old.cell_id)
        have = held.get(cell.cell_id, set())
        missing = tuple(s for s in cell.seeds if s not in have)
        if not missing:
            out.complete.append(cell.cell_id)
        else:
            out.todo.append(cell if len(missing) == len(cell.seeds) else replace(cell, seeds=missing))
    return out


def quarantine_damaged(store: RunStore, say: Callable[[str], None]) -> list[str]:
    """Move every landed batch whose files do not verify (store.integrity, checksums included)
    to the store's quarantine, saying so in one line per file; its seeds then count as missing
    and are trained again."""
    moved = []
    for batch_id in sorted(store.landed_batches()):
        problems = store.batch_problems(batch_id, full=True)
        if not problems:
            continue
        lock = CellLock(store.root, f"batch-{batch_id}")
        if not lock.acquire():
            continue  # another run is setting it aside
        try:
            dest = store.quarantine(batch_id)
        finally:
            lock.release()
        where = f"; its files are in {dest.relative_to(store.root)}" if dest is not None else ""
        for p in problems:
            say(f"{p.line()}: its runs are trained again{where}")
        moved.append(batch_id)
    return moved


def stored_id(cell: Cell, store: RunStore, batches: list[Batch]) -> str:
    """The id `cell` has (or will have) in `store`: a legacy store's old id where it has one."""
    found = plan_missing([cell], store, batches)
    return found.complete[0] if found.complete else found.todo[0].cell_id


def _plan(cells: Sequence[Cell], missing: MissingSeeds, store: RunStore, pack: bool) -> tuple[list[WorkUnit], set[str]]:
    """Units for the missing seeds, and the settings (`setting_hash`) already complete.

    A pack some of whose cells landed before a crash is planned whole again when its checkpoint
    survives (it resumes where it stopped; only the missing cells land); otherwise the missing
    cells are planned afresh."""
    todo = {c.setting_hash: c for c in missing.todo}
    done = {c.setting_hash for c in cells if c.setting_hash not in todo}
    if not pack:
        return plan_units(missing.todo, pack=False), done
    units, loose = [], []
    for unit in plan_units([todo.get(c.setting_hash, c) for c in cells], pack=True):
        rest = [c for c in unit.cells if c.setting_hash not in done]
        if not rest:
            continue
        if len(rest) < len(unit.cells) and store.has_checkpoint(unit.unit_id):
            units.append(unit)
        else:
            loose.extend(rest)
    return units + plan_units(loose, pack=True), done


class _Claims:
    """The cell locks of one run (store.locks): a unit trains only the cells this run holds;
    cells another run holds are deferred, to be waited for at the end."""

    def __init__(self, store: RunStore, summary: RunSummary, say: Callable[[str], None], pack: bool):
        self.store, self.summary, self.say, self.pack = store, summary, say, pack
        self.locks: dict[str, CellLock] = {}
        self.deferred: list[Cell] = []

    def claim(self, unit: WorkUnit, done: set[str]) -> list[WorkUnit]:
        """The units to train for `unit`: its cells locked now, with the seeds still missing
        once locked (another run may have landed some since the plan); `done`: settings
        complete before (a resumed pack's landed cells)."""
        mine, same = [], True
        for c in unit.cells:
            if c.setting_hash in done:
                continue
            if c.cell_id in self.locks:  # waited for (wait_for_deferred): held already
                mine.append(c)
                continue
            lock = CellLock(self.store.root, c.cell_id)
            if not lock.acquire():
                self.deferred.append(c)
                same = False
                continue
            still = self._still_missing(c, lock)
            same &= still is c
            if still is not None:
                mine.append(still)
        if same:
            return [unit] if mine else []
        return plan_units(mine, pack=self.pack)

    def _still_missing(self, c: Cell, lock: CellLock) -> Cell | None:
        """`c` with the seeds the store still lacks, now that its lock is held (None: none)."""
        fresh = plan_missing([c], self.store).todo
        if not fresh:
            lock.release()
            self.summary.skipped.append(c.cell_id)
            return None
        self.locks[c.cell_id] = lock
        return c if fresh[0].seeds == c.seeds else fresh[0]

    def wait_for_deferred(self) -> list[Cell]:
        """Wait for each deferred cell's holder; the cells still missing after it let go."""
        todo, self.deferred = self.deferred, []
        out = []
        for c in todo:
            lock = CellLock(self.store.root, c.cell_id)
            lock.acquire(wait=True, on_wait=lambda who, c=c: self.say(
                f"cell {c.display_name} ({c.cell_id}) is being trained by another run ({who}): waiting for it"))
            still = self._still_missing(c, lock)
            if still is not None:
                out.append(still)
        return out

    def release(self, cell_id: str) -> None:
        lock = self.locks.pop(cell_id, None)
        if lock is not None:
            lock.release()

    def release_all(self) -> None:
        for cell_id in list(self.locks):
            self.release(cell_id)


def train_cells(
    cells: Sequence[Cell],
    store: RunStore,
    ctx: UnitContext,
    *,
    executor: Executor | None = None,
    progress: Progress | None = None,
    pack: bool = True,
    say: Callable[[str], None] | None = None,
) -> RunSummary:
    """Train and land every cell of `cells` missing from `store` (failed cells are tried again).

    The one path every run takes: an experiment's cells, a tuning study's trials and its final
    re-runs all come through here, whichever executor trains them. Damaged cells are moved to
    the quarantine first (and so trained again); each cell is trained under its lock
    (store.locks), so a second run into the same store trains the others, then waits for these.
    `say` gets one-line messages for the user (default: the `optiscope.engine` log).
    """
    progress = progress or Progress()
    executor = executor or LocalExecutor()
    say = say or log.warning
    quarantine_damaged(store, say)
    plan = plan_missing(cells, store)
    todo = plan.todo
    summary = RunSummary(skipped=list(plan.complete))
    units, done = _plan(cells, plan, store, pack)
    progress.start(sum(u.total_steps for u in units))
    claims = _Claims(store, summary, say, pack)
    finished = 0

    def claimed(planned: Sequence[WorkUnit]):
        for unit in planned:
            yield from claims.claim(unit, done)

    try:
        while units:
            # In-process units are claimed one at a time, as they start, so that two runs split
            # the cells; an executor that schedules everything at once claims everything now.
            mine = claimed(units) if getattr(executor, "claims_lazily", False) else list(claimed(units))
            for unit, payloads in executor.run(mine, ctx, store=store, on_step=progress.advance):
                for payload in payloads:
                    if payload.cell_id not in claims.locks:  # a landed pack-mate, trained again
                        continue
                    progress.cell(payload.cell, finished, len(todo))
                    finished += 1
                    with CellLock(store.root, f"batch-{payload.batch_id}"):  # `check --repair` waits
                        land_payload(store, payload, replaces=plan.failed.get(payload.cell_id, ()))
                    claims.release(payload.cell_id)
                    if payload.error is None:
                        summary.trained.append(payload.cell_id)
                    else:
                        summary.failed[payload.cell_id] = payload.error.splitlines()[0]
                store.discard_checkpoint(unit.unit_id)  # every cell of the unit has landed
            units = plan_units(claims.wait_for_deferred(), pack=pack)  # their locks held
            done = set()
    finally:
        claims.release_all()
    return summary


def run_experiment(
    cfg: ExperimentConfig,
    store: RunStore,
    *,
    device: str | None = None,
    progress: Progress | None = None,
    config_text: str | None = None,
    probe_runner_factory: Callable[[ExperimentConfig], Any] | None = None,
    executor: Executor | None = None,
    say: Callable[[str], None] | None = None,
) -> RunSummary:
    """Train every cell of `cfg` missing from `store` (with `[tuning]`: run the tuning protocol).

    Probes run when `probe_runner_factory` is given and the config has `[probes]`. `say` gets
    one-line messages (a damaged cell quarantined, a cell another run is training).
    """
    wanted = device or cfg.experiment.device
    # A cluster's workers may have GPUs this driver lacks: they check the device themselves.
    remote = getattr(executor, "remote_device", False) and wanted.startswith("cuda")
    device = wanted if remote else resolve_device(wanted)
    set_threads(cfg.experiment.threads)
    if config_text is not None:
        store.save_config(config_text, cfg.experiment.name)
    if not getattr(cfg, "tuning", None):  # a tuning study's cells are chosen as it goes
        batches = store.batches()  # each cell under the id the store knows it by (a legacy store's)
        store.save_expected_cells(cfg.experiment.name, [
            {"cell_id": stored_id(c, store, batches), "label": c.display_name, "task": c.task} for c in cfg.cells()])
    ctx = UnitContext(
        device=device,
        checkpoint_every=cfg.experiment.checkpoint_every,
        save_params=cfg.experiment.save_params,
        probe_config=dict(cfg.probes) if probe_runner_factory and cfg.probes else {},
    )
    if getattr(cfg, "tuning", None):
        from optiscope.tuning.protocol import run_tuning

        def train(cells: Sequence[Cell]) -> RunSummary:
            return train_cells(cells, store, ctx, executor=executor, progress=progress, say=say)

        return run_tuning(cfg, store, train)
    return train_cells(cfg.cells(), store, ctx, executor=executor, progress=progress, say=say)
