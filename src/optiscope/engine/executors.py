"""Executors: who trains the units of a run. In-process by default (Ray: `ray_executor`).

An executor takes units and yields, as each unit finishes, the unit and one `CellPayload` per
cell (built where the unit trained, by `landing.outcome_payload`); the driver (the runner)
lands every payload in the store, so the landing rule lives in one place whichever executor ran
the unit, and only the driver ever commits a cell.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from optiscope.engine.landing import CellPayload, outcome_payload
from optiscope.engine.work import ProgressFn, UnitContext, WorkUnit, train_unit

#: What an executor yields per finished unit.
UnitPayloads = tuple[WorkUnit, list[CellPayload]]

EXECUTORS = ("local", "ray")


class Executor(Protocol):
    def run(
        self, units: Sequence[WorkUnit], ctx: UnitContext, *, store: Any, on_step: ProgressFn | None
    ) -> Iterator[UnitPayloads]: ...

    def close(self) -> None: ...


def unit_payloads(
    unit: WorkUnit, ctx: UnitContext, *, checkpoints: Any = None, on_step: ProgressFn | None = None
) -> list[CellPayload]:
    """Train one unit and turn its outcomes into payloads (what any executor runs per unit)."""
    outcomes = train_unit(unit, ctx, checkpoints=checkpoints, on_step=on_step)
    return [outcome_payload(o, save_params=ctx.save_params) for o in outcomes]


class LocalExecutor:
    """Trains units one after another in this process (checkpoints go straight to the store).

    Takes its units lazily (`claims_lazily`): the runner locks a unit's cells as it starts, so
    two runs into one store split the cells between them.
    """

    claims_lazily = True

    def run(
        self, units: Sequence[WorkUnit], ctx: UnitContext, *, store: Any, on_step: ProgressFn | None
    ) -> Iterator[UnitPayloads]:
        for unit in units:
            yield unit, unit_payloads(unit, ctx, checkpoints=store, on_step=on_step)

    def close(self) -> None:
        """Nothing to release (executors that start workers release them here)."""


def make_executor(
    name: str,
    *,
    address: str | None = None,
    workers: int | None = None,
    gpus_per_cell: float = 0.0,
    max_retries: int = 2,
    shared_store: bool | None = None,
) -> Executor:
    """The executor called `name` ("local" or "ray"); Ray is imported only when asked for."""
    if name == "local":
        return LocalExecutor()
    if name == "ray":
        from optiscope.engine.ray_executor import RayExecutor

        return RayExecutor(
            address=address, workers=workers, gpus_per_cell=gpus_per_cell,
            max_retries=max_retries, shared_store=shared_store,
        )
    from optiscope.errors import OptiscopeError

    raise OptiscopeError(f"executor '{name}' is unknown: choose one of {', '.join(EXECUTORS)}")
