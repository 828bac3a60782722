"""Executors: who trains the units of a run. In-process by default (Ray: `ray_executor`).

An executor takes units and yields their outcomes as they finish; the driver (the runner) lands
every outcome in the store, so landing rules live in one place whichever executor ran the unit.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from optiscope.engine.work import CellOutcome, ProgressFn, UnitContext, WorkUnit, train_unit


class Executor(Protocol):
    def run(
        self, units: Sequence[WorkUnit], ctx: UnitContext, *, store: Any, on_step: ProgressFn | None
    ) -> Iterator[list[CellOutcome]]: ...


class LocalExecutor:
    """Trains units one after another in this process (checkpoints go straight to the store)."""

    def run(
        self, units: Sequence[WorkUnit], ctx: UnitContext, *, store: Any, on_step: ProgressFn | None
    ) -> Iterator[list[CellOutcome]]:
        for unit in units:
            yield train_unit(unit, ctx, checkpoints=store, on_step=on_step)
