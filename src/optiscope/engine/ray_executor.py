"""Run a run's units on Ray: one Ray task per unit, on this machine or on a cluster.

Each unit is a Ray task (`train_unit_task`) asking for `cpus_per_cell` CPUs (1) and, on CUDA,
`gpus_per_cell` of a GPU (fractions let several small ensembles share a card). Ray starts the
worker with OMP_NUM_THREADS set to the task's CPUs, and the task pins torch's pool (which sets
MKL's and OpenMP's) to the same, so N workers on N cores do not oversubscribe. (A `runtime_env`
with the variables would do the same but costs seconds of worker start-up per run.)

The worker builds the cells' payloads (`landing.outcome_payload`: tables, arrays, CPU tensors)
and returns them through Ray's object store; the driver lands them, so a cell is committed by
one process only and its runs file is still the commit mark. Where the store is on a filesystem
the workers share (`shared_store`, the default for a local Ray), workers also write and resume
unit checkpoints there, so a killed driver or worker resumes a unit where it left off.

Faults: a worker that dies mid-unit (kill -9, OOM, a lost node) is retried by Ray up to
`max_retries` times; after that every cell of the unit is recorded failed with the error. A
unit whose training raises comes back as failed outcomes (`train_unit` never raises) and is not
retried: training is deterministic, so it would raise again.

Progress: workers cannot call the driver's `on_step`. Each worker reports its unit's steps to a
`ProgressBoard` actor (at most twice a second); the driver polls the board while it waits and
advances the bar by each unit's high-water mark, so the bar never runs backwards when a retried
unit starts again. If the board is lost the bar moves per finished unit instead.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import time
from collections import deque
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from optiscope.engine.executors import UnitPayloads, unit_payloads
from optiscope.engine.landing import CellPayload, failed_payload
from optiscope.engine.work import ProgressFn, UnitContext, WorkUnit
from optiscope.errors import OptiscopeError

#: Thread-count variables a worker sets to its CPU count (for libraries loaded after the task starts).
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")

ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
LOG = logging.getLogger(__name__)

#: How often a worker reports its unit's steps to the progress board (seconds).
REPORT_EVERY_S = 0.5


class ProgressBoard:
    """Steps done per unit of each run, as the workers report them, and how many times each
    unit was started (a second start is Ray retrying it after its worker died). A Ray actor; no CPU."""

    def __init__(self) -> None:
        self.done: dict[int, dict[str, int]] = {}
        self.attempts: dict[int, dict[str, int]] = {}

    def start(self, run: int, unit_id: str) -> None:
        units = self.attempts.setdefault(run, {})
        units[unit_id] = units.get(unit_id, 0) + 1

    def started(self, run: int) -> dict[str, int]:
        return dict(self.attempts.get(run, {}))

    def report(self, run: int, unit_id: str, steps: int) -> None:
        units = self.done.setdefault(run, {})
        units[unit_id] = max(units.get(unit_id, 0), steps)

    def snapshot(self, run: int) -> dict[str, int]:
        return dict(self.done.get(run, {}))

    def forget(self, run: int) -> None:
        self.done.pop(run, None)
        self.attempts.pop(run, None)


class _Reporter:
    """A worker's `on_step`: counts steps and sends the running total to the board now and then."""

    def __init__(self, board: Any, run: int, unit_id: str):
        self.board, self.run, self.unit_id, self.done, self.sent = board, run, unit_id, 0, 0.0

    def __call__(self, steps: int) -> None:
        self.done += steps
        now = time.monotonic()
        if now - self.sent >= REPORT_EVERY_S:
            self.sent = now
            try:
                self.board.report.remote(self.run, self.unit_id, self.done)
            except Exception:  # progress is cosmetic: never let it fail a unit
                self.board = _NoBoard()


class _NoBoard:
    class report:  # noqa: N801  (mimics an actor method)
        @staticmethod
        def remote(*_: Any) -> None: ...


def pin_threads(threads: int) -> None:
    """Limit this process's torch pool (and with it MKL's and OpenMP's) to `threads`."""
    import torch

    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)
    torch.set_num_threads(threads)


def train_unit_task(
    unit: WorkUnit, ctx: UnitContext, store_root: str | None, board: Any, run: int, threads: int
) -> list[CellPayload]:
    """The Ray task: train one unit in a worker and return its cells' payloads."""
    pin_threads(threads)
    checkpoints = None
    if store_root is not None:
        from optiscope.store import RunStore

        checkpoints = RunStore(store_root)  # checkpoints only: the driver lands the cells
    on_step = None
    if board is not None:
        import ray

        try:  # waited for, so the driver sees this attempt before it sees the unit's result
            ray.get(board.start.remote(run, unit.unit_id), timeout=10)
        except Exception:  # bookkeeping only: never let it fail a unit
            board = None
        else:
            on_step = _Reporter(board, run, unit.unit_id)
    return unit_payloads(unit, ctx, checkpoints=checkpoints, on_step=on_step)


def error_text(exc: BaseException, retries: int) -> str:
    """A failed unit's error as the store records it: "Type: message" first, details after."""
    cause = getattr(exc, "cause", None)  # RayTaskError: the exception the task raised
    details = ANSI_ESCAPE.sub("", str(exc))  # Ray colours the task's name in its messages
    if isinstance(cause, BaseException):
        return f"{type(cause).__name__}: {cause}\n{details}"
    lines = details.strip().splitlines() or [""]
    return f"{type(exc).__name__}: {lines[0]} (after {retries} retries)\n" + "\n".join(lines[1:])


def check_gpus_per_cell(value: float) -> float:
    """Ray takes a fraction of one GPU, or a whole number of GPUs."""
    if value < 0 or (value > 1 and not float(value).is_integer()):
        raise OptiscopeError(
            f"--gpus-per-cell {value}: give 0 (CPU), a fraction of one GPU in (0, 1], or a whole "
            "number of GPUs"
        )
    return value


class RayExecutor:
    """Trains units as Ray tasks (see the module docstring).

    `address`: None starts a private local Ray with `workers` CPUs (default: all cores);
    "auto" or "ray://host:port" joins a running cluster, where `workers`, if given, caps the
    units in flight. `shared_store` (default: True locally, False on a cluster) lets workers
    keep unit checkpoints in the store. Ray is started (or joined) by the first `run` and
    kept for the next ones; `close` shuts it down. If Ray is already initialised (a test, a
    notebook) it is used as it is and left running.
    """

    def __init__(
        self,
        *,
        address: str | None = None,
        workers: int | None = None,
        gpus_per_cell: float = 0.0,
        max_retries: int = 2,
        shared_store: bool | None = None,
        cpus_per_cell: int = 1,
    ):
        if workers is not None and workers < 1:
            raise OptiscopeError(f"--workers {workers}: give at least 1")
        if max_retries < 0:
            raise OptiscopeError(f"--max-retries {max_retries}: give 0 or more")
        self.address = address
        self.workers = workers
        self.gpus_per_cell = check_gpus_per_cell(gpus_per_cell)
        self.max_retries = max_retries
        self.shared_store = address is None if shared_store is None else shared_store
        self.cpus_per_cell = cpus_per_cell
        #: the workers, not this driver, hold the GPUs (run_experiment skips its CUDA check)
        self.remote_device = address is not None
        self._started = False
        self._board: Any = None
        self._runs = 0

    def _connect(self) -> None:
        """Start or join Ray, once: a tuning study calls `run` batch after batch."""
        import ray

        if ray.is_initialized():
            return
        self._board = None  # an actor of an earlier Ray session is gone with it
        quiet: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                 "logging_level": "ERROR"}
        try:
            if self.address is None:
                ray.init(address="local", num_cpus=self.workers or os.cpu_count(), **quiet)
            else:
                ray.init(address=self.address, **quiet)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise OptiscopeError(f"--address {self.address}: cannot start or join Ray ({exc})") from None
        self._started = True

    def close(self) -> None:
        """Shut Ray down if this executor started it (a Ray it found running is left alone)."""
        if self._started:
            import ray

            ray.shutdown()
            self._started = False
        self._board = None

    def run(
        self, units: Sequence[WorkUnit], ctx: UnitContext, *, store: Any, on_step: ProgressFn | None
    ) -> Iterator[UnitPayloads]:
        import ray

        if not units:
            return
        self._connect()
        on_gpu = ctx.device.startswith("cuda")
        if on_gpu and not self.gpus_per_cell:
            raise OptiscopeError("device 'cuda' on Ray needs --gpus-per-cell > 0 (say 0.25 or 1)")
        if on_gpu:  # Ray narrows CUDA_VISIBLE_DEVICES to the task's GPU: it is "cuda" there
            ctx = dataclasses.replace(ctx, device="cuda")
        task = ray.remote(train_unit_task).options(
            num_cpus=self.cpus_per_cell,
            num_gpus=self.gpus_per_cell if on_gpu else 0,
            max_retries=self.max_retries,
            retry_exceptions=False,
        )
        self._runs += 1
        run = self._runs
        if self._board is None:  # one board for all of this executor's runs (progress, retries)
            self._board = ray.remote(num_cpus=0)(ProgressBoard).remote()
        board = self._board
        root = str(Path(store.root).resolve()) if self.shared_store else None
        cap = self.workers if (self.address is not None and self.workers) else len(units)
        queue, pending, shown, said = deque(units), {}, {}, {}
        try:
            while queue or pending:
                while queue and len(pending) < cap:
                    unit = queue.popleft()
                    pending[task.remote(unit, ctx, root, board, run, self.cpus_per_cell)] = unit
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=REPORT_EVERY_S)
                if board is not None and on_step is not None:
                    board = self._board = _advance(board, run, shown, on_step)
                if board is not None:
                    board = self._board = _say_retries(board, run, list(pending.values()), said, self.max_retries)
                for ref in ready:
                    unit = pending.pop(ref)
                    try:
                        payloads = ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        text = error_text(exc, self.max_retries)
                        first, _, rest = text.partition("\n")  # Ray's text names no cell: say which
                        text = (f"{first} [unit {unit.unit_id}: cells "
                                f"{', '.join(f'{c.display_name} ({c.cell_id})' for c in unit.cells)}]\n{rest}")
                        payloads = [failed_payload(c, text) for c in unit.cells]
                    if on_step is not None:
                        on_step(max(unit.total_steps - shown.get(unit.unit_id, 0), 0))
                        shown[unit.unit_id] = unit.total_steps
                    yield unit, payloads
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)
            if board is not None:
                try:
                    board.forget.remote(run)
                except Exception:  # Ray already down (an interrupted run): nothing to forget
                    pass


def _say_retries(board: Any, run: int, units: Sequence[WorkUnit], said: dict[str, int], max_retries: int) -> Any:
    """Name the cells of a unit Ray is running again (its worker died): Ray's own message names
    no cell and reads like an out-of-memory kill whatever the cause."""
    import ray

    try:
        attempts = ray.get(board.started.remote(run), timeout=10)
    except ray.exceptions.RayError:  # the board is gone: the final error still names the cells
        return None
    for unit in units:
        n = attempts.get(unit.unit_id, 0)
        if n > max(1, said.get(unit.unit_id, 1)):
            said[unit.unit_id] = n
            LOG.warning(
                "Ray is running unit %s again (attempt %d of %d): the worker that held it died. Its cells: %s",
                unit.unit_id, n, max_retries + 1, ", ".join(f"{c.display_name} ({c.cell_id})" for c in unit.cells))
    return board


def _advance(board: Any, run: int, shown: dict[str, int], on_step: ProgressFn) -> Any:
    """Move the bar by what the board reports beyond each unit's high-water mark."""
    import ray

    try:
        done = ray.get(board.snapshot.remote(run), timeout=10)
    except ray.exceptions.RayError:  # the board is gone: progress per finished unit from now
        return None
    for unit_id, steps in done.items():
        if steps > shown.get(unit_id, 0):
            on_step(steps - shown.get(unit_id, 0))
            shown[unit_id] = steps
    return board
