"""Units of work: what one worker trains in one go, and what comes back from it.

A `WorkUnit` is one ensemble: usually one cell, or several cells that differ only in
per-member hyperparameters packed into one vmapped ensemble (`plan_units`). Training a unit
gives one `CellOutcome` per cell, so each cell still lands in the store on its own: the
statistics and the report never see the packing. Executors (in-process, Ray) run units and hand
the outcomes back to the driver, which lands them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from optiscope.config import Cell
from optiscope.engine.result import CellResult


@dataclass(frozen=True)
class WorkUnit:
    """One ensemble to train: `cells` share task, optimizer and budget (one cell, or a pack)."""

    cells: tuple[Cell, ...]

    @property
    def unit_id(self) -> str:
        """Stable id of the unit (its checkpoints are stored under it)."""
        if len(self.cells) == 1:
            return self.cells[0].cell_id
        key = "+".join(c.cell_id for c in self.cells)
        return "pack-" + hashlib.sha256(key.encode()).hexdigest()[:16]

    @property
    def total_steps(self) -> int:
        return max(c.steps for c in self.cells)

    @property
    def n_members(self) -> int:
        return sum(len(c.seeds) for c in self.cells)


@dataclass
class CellOutcome:
    """One cell's result from a unit: trained (`result`, `task`) or failed (`error`)."""

    cell: Cell
    result: CellResult | None = None
    task: Any = None
    error: str | None = None  # "Type: message\n" + traceback, when training raised


@dataclass
class UnitContext:
    """What every unit of a run shares (picklable, so it travels to Ray workers)."""

    device: str
    checkpoint_every: int = 0
    save_params: bool = True
    probe_config: dict[str, Any] = field(default_factory=dict)


def plan_units(cells: Sequence[Cell], *, pack: bool = True) -> list[WorkUnit]:
    """Group cells into units. Without packing (or until packing applies) one cell each."""
    return [WorkUnit((c,)) for c in cells]


ProgressFn = Callable[[int], None]


def unit_probe_runner(ctx: UnitContext) -> Any:
    """The configured trajectory probes, built where the unit runs (None without `[probes]`)."""
    if not ctx.probe_config:
        return None
    from optiscope.probes.schedule import parse_probe_config
    from optiscope.probes.trajectory import TrajectoryProbes

    return TrajectoryProbes(parse_probe_config(ctx.probe_config))


def train_unit(
    unit: WorkUnit,
    ctx: UnitContext,
    *,
    checkpoints: Any = None,
    on_step: ProgressFn | None = None,
) -> list[CellOutcome]:
    """Train one unit and return one outcome per cell; never raises for a training error.

    `checkpoints` is anything with `save_checkpoint(id, payload)` / `load_checkpoint(id)` (the
    store, where the worker can reach it); checkpoints are kept under the unit's id.
    """
    import traceback

    from optiscope.engine.runner import make_trainer

    if len(unit.cells) != 1:
        raise NotImplementedError("packed units are trained by engine.packing (issue 10)")
    (cell,) = unit.cells
    try:
        trainer = make_trainer(cell, ctx.device, unit_probe_runner(ctx))
        saved = None
        if checkpoints is not None and ctx.checkpoint_every:
            saved = checkpoints.load_checkpoint(unit.unit_id)
        if saved is not None:
            trainer.load_state(saved)
            if on_step is not None:
                on_step(trainer.step)
        result = trainer.run(
            cell.steps, cell.eval_every, cell.log_every, on_step=on_step,
            checkpoint=None if checkpoints is None else
            (lambda t: checkpoints.save_checkpoint(unit.unit_id, t.state())),
            checkpoint_every=ctx.checkpoint_every,
        )
        return [CellOutcome(cell, result, trainer.task)]
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # recorded, not lost: the driver lands it as failed
        return [CellOutcome(cell, error=f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")]
