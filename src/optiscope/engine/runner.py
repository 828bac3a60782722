"""Run an experiment: every cell not yet in the store, trained and landed one by one.

Cells already complete in the store are skipped, so rerunning after a crash (or after adding an
optimizer to the config) trains only what is missing. A cell whose training raises is recorded
as `failed` with the error, and the experiment goes on.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from optiscope.config import Cell, ExperimentConfig
from optiscope.engine.ensemble import EnsembleTrainer
from optiscope.engine.landing import land_cell, run_rows
from optiscope.engine.loop import LoopTrainer
from optiscope.engine.result import CellResult
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


def make_trainer(cell: Cell, device: str, probe_runner: Any = None) -> Trainer:
    """The cell's trainer: the ensemble step for ensemble-aware optimizers, else member by member."""
    task = make_task(cell.task, **cell.task_settings)
    cls = resolve_optimizer(cell.optimizer)
    hp = check_hyperparameters(cell.optimizer, cell.hyperparameters)
    trainer_cls = EnsembleTrainer if is_ensemble_aware(cls) else LoopTrainer
    return trainer_cls(
        task, cls, hp, list(cell.seeds), device=device, probe_runner=probe_hooks(task, probe_runner)
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
    """Train one cell (resuming from its checkpoint if one exists) and land it in the store."""
    trainer = make_trainer(cell, device, probe_runner)
    saved = store.load_checkpoint(cell.cell_id) if checkpoint_every else None
    if saved is not None:
        trainer.load_state(saved)
        if on_step is not None:
            on_step(trainer.step)
    result = trainer.run(
        cell.steps, cell.eval_every, cell.log_every, on_step=on_step,
        checkpoint=lambda t: store.save_checkpoint(cell.cell_id, t.state()),
        checkpoint_every=checkpoint_every,
    )
    land_cell(store, cell, result, trainer.task, save_params=save_params)
    return result


def run_experiment(
    cfg: ExperimentConfig,
    store: RunStore,
    *,
    device: str | None = None,
    progress: Progress | None = None,
    config_text: str | None = None,
    probe_runner_factory: Callable[[ExperimentConfig], Any] | None = None,
) -> RunSummary:
    """Train every cell of `cfg` missing from `store`."""
    device = resolve_device(device or cfg.experiment.device)
    progress = progress or Progress()
    if config_text is not None:
        store.save_config(config_text)
    cells = cfg.cells()
    done = store.completed_cells() - store.failed_cells()  # failed cells are tried again
    todo = [c for c in cells if c.cell_id not in done]
    summary = RunSummary(skipped=[c.cell_id for c in cells if c.cell_id in done])
    progress.start(sum(c.steps for c in todo))
    probe_runner = probe_runner_factory(cfg) if probe_runner_factory and cfg.probes else None
    for i, cell in enumerate(todo):
        progress.cell(cell, i, len(todo))
        try:
            run_cell(
                cell, store, device,
                checkpoint_every=cfg.experiment.checkpoint_every,
                save_params=cfg.experiment.save_params,
                on_step=progress.advance,
                probe_runner=probe_runner,
            )
            summary.trained.append(cell.cell_id)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # recorded, not lost: the other cells go on
            message = f"{type(exc).__name__}: {exc}"
            store.write_cell(
                cell.cell_id, run_rows(cell, None, message + "\n" + traceback.format_exc()),
                {"run_id": np.array([], dtype=object), "step": np.array([], dtype=np.int64),
                 "name": np.array([], dtype=object), "value": np.array([])},
            )
            summary.failed[cell.cell_id] = message
    return summary
