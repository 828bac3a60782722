"""Packing: cells that differ only in per-member hyperparameters, trained as one ensemble.

A learning-rate grid of K points x S seeds is K cells; when the task, the optimizer and the
budget are the same and only hyperparameters that an ensemble may hold per member differ (lr,
weight decay, momentum, betas, eps: `per_member_names`), the K cells train as one vmapped
ensemble of K*S members, each member carrying its cell's values as 1-D float64 tensors
(`per_member_hyperparameters`). `split_result` then cuts the ensemble's result back into one
`CellResult` per cell, so each cell lands in the store alone, as if it had been trained alone:
the statistics and the report never see the packing.

The same two operations serve memory chunking (engine.chunking): members trained in chunks one
after another are joined with `concat_results`. What an ensemble spends (gradient evaluations,
wall time) is shared by its members, so `MemberCost` keeps, per member, what its own cell would
have spent: the counters when its cell's last member diverged (alone, the cell would have stopped
there) and its share of the ensemble's wall time.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from optiscope.config import Cell, canonical_numbers
from optiscope.engine.result import CellResult, MetricLog
from optiscope.optim.hyperparameters import per_member_names

__all__ = [
    "DEFAULT_MAX_PACK_MEMBERS", "MemberCost", "StopTracker", "concat_results", "pack_cells",
    "pack_key", "packable", "per_member_hyperparameters", "slice_hyperparameters",
    "split_result",
]

#: Members of one packed unit at most: beyond this a grid is cut into several packs.
DEFAULT_MAX_PACK_MEMBERS = 1024
_TIME = "time_s"


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _member_shape(v: Any) -> int | None:
    """0 for a number, n for a tuple of n numbers (betas), None for anything else."""
    if _is_number(v):
        return 0
    if isinstance(v, (tuple, list)) and v and all(_is_number(x) for x in v):
        return len(v)
    return None


def pack_key(cell: Cell, names: frozenset[str]) -> str:
    """What cells must share to be packed: everything but the values of `names` (their shapes
    only: a number, or a tuple of that length). Cells with equal keys may form one ensemble."""
    hp = {}
    for k, v in sorted(cell.hyperparameters.items()):
        shape = _member_shape(v) if k in names else None
        hp[k] = ["per-member", shape] if shape is not None else canonical_numbers(v)
    return json.dumps(
        [cell.task, canonical_numbers(cell.task_settings), cell.optimizer, cell.steps,
         cell.eval_every, cell.log_every, cell.precision, cell.role, hp,
         getattr(cell, "compile", False), getattr(cell, "max_memory_gb", None)],
        sort_keys=True, default=str,
    )


def packable(optimizer_cls: type) -> bool:
    """Ensemble-aware optimizers with per-member hyperparameters, unless the number of
    evaluations a step takes depends on the members (`variable_evaluations`: a line search runs
    until every member has its step), since the ensemble's counters would then charge a cell
    for its neighbours' trials."""
    return bool(per_member_names(optimizer_cls)) and not getattr(optimizer_cls, "variable_evaluations", False)


def pack_cells(cells: Sequence[Cell], max_members: int = DEFAULT_MAX_PACK_MEMBERS) -> list[list[Cell]]:
    """Cells grouped into packs (in order of each pack's first cell), at most `max_members`
    members each; a cell that cannot be packed, or is larger than that, is a group of one."""
    from optiscope.optim.registry import resolve_optimizer

    if max_members < 1:
        raise ValueError(f"max_pack_members must be >= 1 (got {max_members})")
    groups: list[list[Cell]] = []
    open_pack: dict[str, int] = {}  # key -> index of the pack still taking cells
    for cell in cells:
        cls = resolve_optimizer(cell.optimizer)
        key = pack_key(cell, per_member_names(cls)) if packable(cls) else None
        i = open_pack.get(key) if key is not None else None
        if i is not None and sum(len(c.seeds) for c in groups[i]) + len(cell.seeds) <= max_members:
            groups[i].append(cell)
            continue
        groups.append([cell])
        if key is not None:
            open_pack[key] = len(groups) - 1
    return groups


def per_member_hyperparameters(cells: Sequence[Cell]) -> dict[str, Any]:
    """The hyperparameters whose values differ between `cells`, one value per member (members
    cell by cell, each cell's value repeated over its seeds): a float64 CPU tensor (S,) for a
    number, a tuple of such tensors for a tuple (betas). Empty for one cell."""
    if len(cells) < 2:
        return {}
    counts = torch.tensor([len(c.seeds) for c in cells])
    first = cells[0].hyperparameters
    out: dict[str, Any] = {}
    for name, value in first.items():
        values = [c.hyperparameters[name] for c in cells]
        if all(canonical_numbers(v) == canonical_numbers(value) for v in values):
            continue

        def column(vs: list[Any]) -> Tensor:
            return torch.repeat_interleave(torch.tensor([float(v) for v in vs], dtype=torch.float64), counts)

        if _member_shape(value):
            out[name] = tuple(column([v[i] for v in values]) for i in range(len(value)))
        else:
            out[name] = column(values)
    return out


def slice_hyperparameters(per_member: dict[str, Any], start: int, stop: int) -> dict[str, Any]:
    """The per-member values of members [start, stop) (one chunk)."""
    return {
        k: tuple(t[start:stop] for t in v) if isinstance(v, tuple) else v[start:stop]
        for k, v in per_member.items()
    }


# -- what each member spent ---------------------------------------------------------------------
@dataclass
class MemberCost:
    """Per member: the counters its cell would have ended with alone, the ensemble's elapsed
    time at that point, and how many members shared that time (its ensemble's size)."""

    grad_evals: list[int]
    func_evals: list[int]
    elapsed: list[float]
    shared_by: list[int]

    @classmethod
    def uniform(cls, result: CellResult) -> MemberCost:
        """Every member spent what the ensemble spent (nobody stopped early)."""
        n = len(result.seeds)
        return cls([result.grad_evals] * n, [result.func_evals] * n, [result.wall_time_s] * n, [n] * n)

    @classmethod
    def concat(cls, costs: Sequence[MemberCost]) -> MemberCost:
        return cls(*(sum((getattr(c, f) for c in costs), []) for f in
                     ("grad_evals", "func_evals", "elapsed", "shared_by")))

    def share(self, start: int, stop: int, values: Tensor | None = None) -> Tensor | float:
        """Wall time of members [start, stop): each member's time over its ensemble's size,
        summed (`values`: per-member times from the metric log; default: `elapsed`)."""
        per = torch.as_tensor(self.elapsed[start:stop] if values is None else values).double()
        shared = torch.tensor(self.shared_by[start:stop], dtype=torch.float64, device=per.device)
        if bool((shared == stop - start).all()) and bool((per == per[0]).all()):
            return per[0] if values is not None else float(per[0])  # trained alone: exact
        total = (per / shared).sum()
        return total if values is not None else float(total)


class StopTracker:
    """Watches the cells of one ensemble (`parts`: member ranges) and records the counters and
    time when each cell's last member diverges: alone, that cell would have stopped there.

    It reads the trainer's divergence record as of its last sync point (no synchronisation per
    step) and takes the counters of the step the cell's last member diverged at from the
    trainer's trail, as a lone run rewinds to them (engine.trainer)."""

    def __init__(self, trainer: Any, parts: Sequence[tuple[int, int]]):
        self.trainer, self.parts = trainer, list(parts)
        self.stops: dict[int, tuple[int, int, float]] = {}
        self._alive = -1

    def update(self) -> None:
        known = self.trainer.known_diverged_step
        alive = known.count(None)
        if alive == self._alive:
            return
        self._alive = alive
        for i, (a, b) in enumerate(self.parts):
            if i not in self.stops and all(d is not None for d in known[a:b]):
                stop = max(d for d in known[a:b] if d is not None) + 1
                self.stops[i] = self.trainer.spent_at(stop)

    def state(self) -> list[list[float]]:
        return [[i, *v] for i, v in sorted(self.stops.items())]

    def load(self, state: list[list[float]] | None) -> None:
        self.stops = {int(i): (int(g), int(f), float(e)) for i, g, f, e in state or []}

    def cost(self, result: CellResult) -> MemberCost:
        cost = MemberCost.uniform(result)
        for i, (a, b) in enumerate(self.parts):
            if i in self.stops:
                g, f, e = self.stops[i]
                cost.grad_evals[a:b] = [g] * (b - a)
                cost.func_evals[a:b] = [f] * (b - a)
                cost.elapsed[a:b] = [e] * (b - a)
        return cost


# -- joining and cutting results ----------------------------------------------------------------
def _entries(log: MetricLog) -> list[tuple[int, str, Tensor]]:
    s = log.state()
    return list(zip(s["steps"], s["names"], s["values"], strict=True))


def concat_results(results: Sequence[CellResult]) -> CellResult:
    """Ensembles trained one after another (memory chunks) as one result, members in order.

    Metric entries are matched by (step, name, occurrence); an ensemble that stopped early
    (every member diverged) lacks the later ones, filled with NaN, which `MetricLog.columns`
    drops anyway (they lie past those members' divergence).
    """
    if len(results) == 1:
        return results[0]
    keyed: list[dict[tuple[int, str, int], Tensor]] = []
    order: dict[tuple[int, str, int], None] = {}
    for r in results:
        seen: dict[tuple[int, str], int] = {}
        entries = {}
        for step, name, v in _entries(r.metrics):
            k = (step, name, seen.get((step, name), 0))
            seen[(step, name)] = k[2] + 1
            entries[k] = v.reshape(-1)
            order.setdefault(k, None)
        keyed.append(entries)
    sizes = [len(r.seeds) for r in results]
    log = MetricLog(sum(sizes))
    for k in order:
        present = [e[k] for e in keyed if k in e]
        dtype = present[0].dtype
        for v in present[1:]:
            dtype = torch.promote_types(dtype, v.dtype)
        if not dtype.is_floating_point:
            dtype = torch.float64 if any(e.get(k) is None for e in keyed) else dtype
        parts = [e[k].to(dtype).expand(n) if k in e else torch.full((n,), float("nan"), dtype=dtype)
                 for e, n in zip(keyed, sizes, strict=True)]
        log.add(k[0], k[1], torch.cat([p.cpu() for p in parts]))
    first = results[0]
    return CellResult(
        seeds=[s for r in results for s in r.seeds],
        diverged_step=[d for r in results for d in r.diverged_step],
        metrics=log,
        grad_evals=max(r.grad_evals for r in results),
        func_evals=max(r.func_evals for r in results),
        wall_time_s=sum(r.wall_time_s for r in results),
        mode=first.mode,
        device=first.device,
        final_params={k: torch.cat([r.final_params[k] for r in results]) for k in first.final_params},
        init_params={k: torch.cat([r.init_params[k] for r in results]) for k in first.init_params},
        chunk_size=first.chunk_size,
    )


def split_result(
    result: CellResult, sizes: Sequence[int], *, cost: MemberCost | None = None
) -> list[CellResult]:
    """`result` of an ensemble whose members are cells of `sizes` members, in order, cut into
    one result per cell: its members' metrics, divergence, parameters, and (from `cost`) the
    counters and wall time it would have had alone (default: what the ensemble spent, the wall
    time shared in proportion to members)."""
    if sum(sizes) != len(result.seeds):
        raise ValueError(f"cell sizes {list(sizes)} do not add up to {len(result.seeds)} members")
    cost = cost or MemberCost.uniform(result)
    entries = _entries(result.metrics)
    out, start = [], 0
    for n in sizes:
        stop = start + n
        log = MetricLog(n)
        for step, name, v in entries:
            v = v.reshape(-1).expand(len(result.seeds))[start:stop]
            if name == _TIME:
                v = torch.as_tensor(cost.share(start, stop, v)).expand(n)
            log.add(step, name, v)
        out.append(CellResult(
            seeds=result.seeds[start:stop],
            diverged_step=result.diverged_step[start:stop],
            metrics=log,
            grad_evals=max(cost.grad_evals[start:stop]),
            func_evals=max(cost.func_evals[start:stop]),
            wall_time_s=float(cost.share(start, stop)),
            mode=result.mode,
            device=result.device,
            final_params={k: v[start:stop] for k, v in result.final_params.items()},
            init_params={k: v[start:stop] for k, v in result.init_params.items()},
            chunk_size=result.chunk_size,
        ))
        start = stop
    return out
