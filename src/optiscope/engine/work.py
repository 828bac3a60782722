"""Units of work: what one worker trains in one go, and what comes back from it.

A `WorkUnit` is one ensemble: usually one cell, or several cells that differ only in
per-member hyperparameters packed into one vmapped ensemble (`plan_units`). Training a unit
gives one `CellOutcome` per cell, so each cell still lands in the store on its own: the
statistics and the report never see the packing. Executors (in-process, Ray) run units and hand
the outcomes back to the driver, which lands them.
"""

from __future__ import annotations

import hashlib
import traceback
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from optiscope.config import Cell
from optiscope.engine.packing import (
    DEFAULT_MAX_PACK_MEMBERS,
    MemberCost,
    StopTracker,
    concat_results,
    pack_cells,
    per_member_hyperparameters,
    slice_hyperparameters,
    split_result,
)
from optiscope.engine.result import CellResult


@dataclass(frozen=True)
class WorkUnit:
    """One ensemble to train: `cells` share task, optimizer and budget (one cell, or a pack)."""

    cells: tuple[Cell, ...]

    @property
    def unit_id(self) -> str:
        """Stable id of the unit (its checkpoints are stored under it): a lone cell's batch id."""
        if len(self.cells) == 1:
            return self.cells[0].batch_id
        key = "+".join(c.batch_id for c in self.cells)
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


def plan_units(
    cells: Sequence[Cell], *, pack: bool = True, max_pack_members: int = DEFAULT_MAX_PACK_MEMBERS
) -> list[WorkUnit]:
    """Group cells into units: with `pack`, cells differing only in per-member hyperparameters
    share one ensemble (engine.packing, at most `max_pack_members` members); else one cell each."""
    if not pack:
        return [WorkUnit((c,)) for c in cells]
    return [WorkUnit(tuple(group)) for group in pack_cells(cells, max_pack_members)]


ProgressFn = Callable[[int], None]


def unit_probe_runner(ctx: UnitContext) -> Any:
    """The configured trajectory probes, built where the unit runs (None without `[probes]`)."""
    if not ctx.probe_config:
        return None
    from optiscope.probes.schedule import parse_probe_config
    from optiscope.probes.trajectory import TrajectoryProbes

    return TrajectoryProbes(parse_probe_config(ctx.probe_config))


class PerCellProbe:
    """One probe hook of a packed ensemble, run cell by cell (one instance per cell).

    Probes may compare members (CKA, the loss barrier to the next member) or keep state between
    calls, so each cell's members are probed by the cell's own hook, exactly as if alone.
    """

    def __init__(self, parts: Sequence[tuple[int, int, Any]]):
        self.parts = list(parts)

    def due(self, step: int, total_steps: int) -> bool:
        return any([bool(hook.due(step, total_steps)) for _, _, hook in self.parts])  # each one told

    def __call__(self, task: Any, params: Any, init_params: Any, seeds: Any, step: int) -> dict[str, Any]:
        import torch

        outs = []
        for a, b, hook in self.parts:
            cut = {k: v[a:b] for k, v in params.items()}
            init = None if init_params is None else {k: v[a:b] for k, v in init_params.items()}
            outs.append((b - a, hook(task, cut, init, seeds[a:b], step)))
        names = dict.fromkeys(k for _, out in outs for k in out)
        merged = {}
        for name in names:
            pieces = []
            for n, out in outs:
                v = out.get(name)
                v = torch.full((n,), float("nan")) if v is None else torch.as_tensor(v).reshape(-1).expand(n)
                pieces.append(v)
            device = next((p.device for p in pieces if p.device.type != "cpu"), pieces[0].device)
            merged[name] = torch.cat([p.to(device) for p in pieces])
        return merged


def unit_hooks(task: Any, ctx: UnitContext, parts: Sequence[tuple[int, int]]) -> list[Any]:
    """The probe hooks of an ensemble whose members are the cells (or cell pieces) `parts`."""
    from optiscope.engine.runner import probe_hooks

    per_part = [probe_hooks(task, unit_probe_runner(ctx)) for _ in parts]
    if len(parts) == 1:
        return per_part[0]
    return [PerCellProbe([(a, b, hooks[j]) for (a, b), hooks in zip(parts, per_part, strict=True)])
            for j in range(len(per_part[0]))]


class PackFallbackWarning(UserWarning):
    """A packed unit raised; its cells were trained one by one instead."""


def member_chunk(task: Any, optimizer_cls: type, hyperparameters: dict[str, Any], n: int, device: str,
                 max_memory_gb: float | None = None) -> int | None:
    """Members trained at once (engine.chunking); None: all of them."""
    from optiscope.engine.chunking import member_chunk_size
    from optiscope.optim.registry import is_ensemble_aware

    if not is_ensemble_aware(optimizer_cls):
        return None
    size = member_chunk_size(task, optimizer_cls, hyperparameters, n, device, max_memory_gb=max_memory_gb)
    return None if size is None or size >= n else max(1, int(size))


class _ChunkProgress:
    """Progress of `n` chunks of `steps` steps each, reported as `steps` in all."""

    def __init__(self, on_step: ProgressFn | None, n: int):
        self.on_step, self.n, self.done, self.reported = on_step, n, 0, 0

    def __call__(self, k: int) -> None:
        self.done += k
        now = self.done // self.n
        if self.on_step is not None and now > self.reported:
            self.on_step(now - self.reported)
            self.reported = now


def train_unit(
    unit: WorkUnit,
    ctx: UnitContext,
    *,
    checkpoints: Any = None,
    on_step: ProgressFn | None = None,
) -> list[CellOutcome]:
    """Train one unit and return one outcome per cell; never raises for a training error.

    `checkpoints` is anything with `save_checkpoint(id, payload)` / `load_checkpoint(id)` (the
    store, where the worker can reach it); checkpoints are kept under the unit's id. A pack that
    raises is trained again cell by cell (with a `PackFallbackWarning`), so one cell's failure
    never costs the others.
    """
    try:
        return _train(unit, ctx, checkpoints, on_step)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # recorded, not lost: the driver lands it as failed
        if len(unit.cells) == 1:
            (cell,) = unit.cells
            return [CellOutcome(cell, error=f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")]
        warnings.warn(PackFallbackWarning(
            f"a pack of {len(unit.cells)} cells raised {type(exc).__name__}: {exc}; "
            "training its cells one by one"), stacklevel=2)
        return [o for c in unit.cells
                for o in train_unit(WorkUnit((c,)), ctx, checkpoints=checkpoints, on_step=on_step)]


def _train(unit: WorkUnit, ctx: UnitContext, checkpoints: Any, on_step: ProgressFn | None) -> list[CellOutcome]:
    from optiscope.engine import runner
    from optiscope.optim.registry import resolve_optimizer
    from optiscope.tasks.registry import make_task

    cells = unit.cells
    first = cells[0]
    cls = resolve_optimizer(first.optimizer)
    task = make_task(first.task, **first.task_settings)
    per_member = per_member_hyperparameters(cells)
    seeds = [s for c in cells for s in c.seeds]
    n = len(seeds)
    chunk = member_chunk(task, cls, {**first.hyperparameters, **per_member}, n, ctx.device,
                         first.max_memory_gb)
    if len(cells) == 1 and chunk is None:
        return [_train_one(first, task, ctx, checkpoints, on_step)]
    ranges = [(a, min(a + chunk, n)) for a in range(0, n, chunk)] if chunk else [(0, n)]
    bounds = _cell_bounds(cells)
    progress = _ChunkProgress(on_step, len(ranges)) if len(ranges) > 1 else on_step
    results: list[tuple[CellResult, MemberCost]] = []
    trained_task = task
    for a, b in ranges:
        parts = [(max(lo, a) - a, min(hi, b) - a) for lo, hi in bounds if lo < b and hi > a]
        trainer = runner.make_trainer(
            first, ctx.device, task=task, seeds=seeds[a:b],
            per_member=slice_hyperparameters(per_member, a, b), hooks=unit_hooks(task, ctx, parts),
        )
        tracker = StopTracker(trainer, parts)
        ckpt_id = unit.unit_id if len(ranges) == 1 else f"{unit.unit_id}.m{a}-{b}"
        # A finished pack or chunk is checkpointed at its end and kept until every cell of the
        # unit has landed (the driver removes it), so a crash between landings costs no training.
        result = run_trainer(trainer, first, ctx, checkpoints, ckpt_id, progress, tracker, final_save=True)
        results.append((result, tracker.cost(result)))
        trained_task = trainer.task
    combined = concat_results([r for r, _ in results])
    if chunk:
        combined.chunk_size = chunk
    cost = MemberCost.concat([c for _, c in results])
    pieces = split_result(combined, [len(c.seeds) for c in cells], cost=cost)
    return [CellOutcome(c, r, trained_task) for c, r in zip(cells, pieces, strict=True)]


def _train_one(cell: Cell, task: Any, ctx: UnitContext, checkpoints: Any, on_step: ProgressFn | None) -> CellOutcome:
    """A lone cell, exactly as before packing existed (its trainer built by runner.make_trainer
    on the task already built for the chunk estimate, not a second copy)."""
    from optiscope.engine import runner

    trainer = runner.make_trainer(cell, ctx.device, unit_probe_runner(ctx), task=task)
    result = run_trainer(trainer, cell, ctx, checkpoints, cell.batch_id, on_step, None, final_save=False)
    return CellOutcome(cell, result, trainer.task)


def run_trainer(trainer: Any, cell: Cell, ctx: UnitContext, checkpoints: Any, ckpt_id: str,
         on_step: ProgressFn | None, tracker: StopTracker | None, *, final_save: bool) -> CellResult:
    """Resume `trainer` from checkpoint `ckpt_id` if there is one, and run it to the end."""
    saving = checkpoints is not None and ctx.checkpoint_every > 0

    def payload(t: Any) -> dict[str, Any]:
        return t.state() if tracker is None else {**t.state(), "pack_stops": tracker.state()}

    if saving:
        saved = checkpoints.load_checkpoint(ckpt_id)
        if saved is not None:
            trainer.load_state(saved)
            if tracker is not None:
                tracker.load(saved.get("pack_stops"))
            if on_step is not None:
                on_step(trainer.step)

    def step(k: int) -> None:
        if tracker is not None:
            tracker.update()
        if on_step is not None:
            on_step(k)

    result = trainer.run(
        cell.steps, cell.eval_every, cell.log_every, on_step=step,
        checkpoint=(lambda t: checkpoints.save_checkpoint(ckpt_id, payload(t))) if saving else None,
        checkpoint_every=ctx.checkpoint_every,
    )
    if saving and final_save:  # a finished chunk resumes as finished
        checkpoints.save_checkpoint(ckpt_id, payload(trainer))
    return result


def _cell_bounds(cells: Sequence[Cell]) -> list[tuple[int, int]]:
    bounds, start = [], 0
    for c in cells:
        bounds.append((start, start + len(c.seeds)))
        start += len(c.seeds)
    return bounds
