"""Run an experiment: every cell not yet in the store, trained and landed one by one.

Cells already complete in the store are skipped, so rerunning after a crash (or after adding an
optimizer to the config) trains only what is missing. A cell whose training raises is recorded
as `failed` with the error, and the experiment goes on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
from optiscope.store import RunStore
from optiscope.tasks.base import Task
from optiscope.tasks.registry import make_task


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
    seeds (under the id the store knows it by); `complete` the ids of cells with every seed."""

    todo: list[Cell]
    complete: list[str]


def plan_missing(cells: Sequence[Cell], store: RunStore) -> MissingSeeds:
    """Seeds on demand: for each cell, the seeds the store does not hold yet.

    A cell's runs may sit in several batches (seeds added over time); a failed batch's seeds
    count as missing, so they are trained again. A store written before seeds on demand named
    each cell by its batch id (the setting and its seed list): such a batch is recognised by
    recomputing that id, and new seeds join the cell under its old id (`Cell.stored_id`).
    """
    batches = store.batches()
    held: dict[str, set[int]] = {}
    for b in batches:
        held.setdefault(b.cell_id, set())
        if not b.failed:
            held[b.cell_id].update(b.seeds)
    legacy = [b for b in batches if b.batch_id == b.cell_id]  # one batch per cell, cell id = batch id
    out = MissingSeeds([], [])
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


def train_cells(
    cells: Sequence[Cell],
    store: RunStore,
    ctx: UnitContext,
    *,
    executor: Executor | None = None,
    progress: Progress | None = None,
    pack: bool = True,
) -> RunSummary:
    """Train and land every cell of `cells` missing from `store` (failed cells are tried again).

    The one path every run takes: an experiment's cells, a tuning study's trials and its final
    re-runs all come through here, whichever executor trains them.
    """
    progress = progress or Progress()
    executor = executor or LocalExecutor()
    plan = plan_missing(cells, store)
    todo = plan.todo
    summary = RunSummary(skipped=plan.complete)
    units = plan_units(todo, pack=pack)
    progress.start(sum(u.total_steps for u in units))
    finished = 0
    for unit, payloads in executor.run(units, ctx, store=store, on_step=progress.advance):
        for payload in payloads:
            progress.cell(payload.cell, finished, len(todo))
            finished += 1
            land_payload(store, payload)
            if payload.error is None:
                summary.trained.append(payload.cell_id)
            else:
                summary.failed[payload.cell_id] = payload.error.splitlines()[0]
        store.checkpoint_path(unit.unit_id).unlink(missing_ok=True)  # a pack's (a cell's: gone)
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
) -> RunSummary:
    """Train every cell of `cfg` missing from `store` (with `[tuning]`: run the tuning protocol).

    Probes run when `probe_runner_factory` is given and the config has `[probes]`.
    """
    wanted = device or cfg.experiment.device
    # A cluster's workers may have GPUs this driver lacks: they check the device themselves.
    remote = getattr(executor, "remote_device", False) and wanted.startswith("cuda")
    device = wanted if remote else resolve_device(wanted)
    set_threads(cfg.experiment.threads)
    if config_text is not None:
        store.save_config(config_text)
    ctx = UnitContext(
        device=device,
        checkpoint_every=cfg.experiment.checkpoint_every,
        save_params=cfg.experiment.save_params,
        probe_config=dict(cfg.probes) if probe_runner_factory and cfg.probes else {},
    )
    if getattr(cfg, "tuning", None):
        from optiscope.tuning.protocol import run_tuning

        def train(cells: Sequence[Cell]) -> RunSummary:
            return train_cells(cells, store, ctx, executor=executor, progress=progress)

        return run_tuning(cfg, store, train)
    return train_cells(cfg.cells(), store, ctx, executor=executor, progress=progress)
