"""The cells a tuning protocol trains: trials (tuning seeds, validation split) and finals.

Every cell starts from the experiment's own cell for its (task setting, optimizer), as
`ExperimentConfig.cells()` builds it (budget, precision and all), and changes only what tuning
changes: the sampled settings, the seeds, the split and the role. Settings go through
`effective_task_settings` / `effective_hyperparameters`, so a tuned cell's id is the id the same
configuration would have anywhere else.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from typing import Any

from optiscope.config import Cell, ExperimentConfig, effective_hyperparameters, effective_task_settings
from optiscope.tasks.registry import make_task
from optiscope.tuning.spec import TuningSpec, TuningTask
from optiscope.tuning.space import split_settings, with_sampled


@dataclass(frozen=True)
class Template:
    """The experiment's cell for one (task setting, optimizer setting), and the keys tuning uses."""

    task: TuningTask
    key: str  # optimizer key: its label, else its name
    cell: Cell
    grid_point: bool  # one of several settings of a grid in [[optimizers]]


def templates(cfg: ExperimentConfig, spec: TuningSpec) -> list[Template]:
    """Every experiment cell with its task and optimizer keys, in config order."""
    by_given = {(t.name, _frozen(t.given)): t for t in spec.tasks}
    cells = cfg.cells()
    keys = [optimizer_key_of(c) for c in cells]
    out = []
    for cell, key in zip(cells, keys, strict=True):
        task = by_given[(cell.task, _frozen(cell.given_task_settings or {}))]
        same = sum(1 for c, k in zip(cells, keys, strict=True) if k == key and c.task == cell.task
                   and _frozen(c.given_task_settings or {}) == _frozen(task.given))
        out.append(Template(task=task, key=key, cell=cell, grid_point=same > 1))
    return out


def optimizer_key_of(cell: Cell) -> str:
    return cell.label or cell.optimizer


def _frozen(settings: dict[str, Any]) -> str:
    return repr(sorted(settings.items()))


def tuned_cell(template: Template, values: dict[str, Any], *, seeds: list[int], trial: bool, label: str) -> Cell:
    """The template with the sampled `values` ("task."-prefixed ones on the task): a trial
    (validation split, role "trial") or a final re-run (the user's split, role "final")."""
    hp_values, task_values = split_settings(values)
    task = template.task
    given_task = task.trial_settings(task_values) if trial else task.final_settings(task_values)
    task_settings = effective_task_settings(task.name, given_task)
    build = functools.cache(functools.partial(make_task, task.name, **task_settings))
    given = template.cell.given_hyperparameters or {}
    given_hp = with_sampled(given, hp_values, template.cell.hyperparameters)
    return replace(
        template.cell,
        task_settings=task_settings,
        given_task_settings=given_task,
        hyperparameters=effective_hyperparameters(template.cell.optimizer, given_hp, build),
        given_hyperparameters=given_hp,
        seeds=tuple(seeds),
        role="trial" if trial else "final",
        label=label,
    )


def trial_label(key: str, study: int, trial: int) -> str:
    return f"{key} · trial {trial}" if study == 0 else f"{key} · s{study} trial {trial}"


def tuned_label(key: str, study: int, studies: int) -> str:
    return f"{key} tuned" if studies == 1 else f"{key} tuned s{study}"


def default_cell(template: Template) -> Cell:
    """The experiment's own cell on the evaluation seeds, as a final re-run ("KEY default")."""
    cell = template.cell
    name = template.key
    if template.grid_point:
        name += "(" + ", ".join(f"{k}={v}" for k, v in (cell.given_hyperparameters or {}).items()) + ")"
    return replace(cell, role="final", label=f"{name} default")

