"""The run loop, written once: evaluation cadence, logging, divergence, finishing, checkpoints,
probes and progress, for any way of taking a training step.

How a step is taken is a strategy: all members in one vmap with an ensemble-aware optimizer
(`optiscope.engine.ensemble.EnsembleStep`), or member by member with any `torch.optim.Optimizer`
(`optiscope.engine.loop.MemberLoopStep`). Everything around the step lives here, so a third-party
optimizer gets the same metrics, probes and checkpoints as a built-in one.

The step loop never waits for the device. Divergence is detected on the device: a member whose
loss is not finite is frozen by masking (`torch.where`), its step recorded in a device tensor,
and nothing is read back per step. (On the CPU, where reading a value waits for nothing, the loop
asks the host whether any member diverged before masking: the same result, without masking every
tensor every step; `Trainer.masked` says which.) The host reads the divergence record, and the time, only
where it needs the device anyway: at an evaluation, a probe, a checkpoint and the end of the cell
(the *sync points*). The loop's "every member diverged" exit is checked there too; when it finds
that the last member diverged a few steps earlier, the cell is rewound to that step (counters and
step number), so the store is what a per-step check would have written, and the few steps run
past it cost only time. Times are read after synchronising the device (core.device), so they
measure work, not kernel launches.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import torch
from torch import Tensor

from optiscope.core.device import DeviceClock
from optiscope.engine.precision import matmul_precision
from optiscope.engine.result import CellResult, MetricLog
from optiscope.tasks.base import Params, Task

ProgressFn = Callable[[int], None]


class ProbeHook(Protocol):
    """Computes per-member metrics along a trajectory (optiscope.probes, probes/iterates.py)."""

    def due(self, step: int, total_steps: int) -> bool: ...

    def __call__(
        self, task: Task, params: Params, init_params: Params, seeds: Tensor, step: int
    ) -> dict[str, Tensor]: ...


#: The old name of a probe hook (the engine took a single one).
ProbeRunner = ProbeHook


class StepStrategy(Protocol):
    """How one training step of every member is taken; the `Trainer` does the rest.

    Parameters are presented stacked on a leading member axis whatever the strategy holds.
    The closures a strategy hands its optimizer count evaluations (contract: forward and
    backward when `torch.is_grad_enabled()`, a gradient evaluation; forward only otherwise, a
    function evaluation, gradients untouched).
    """

    mode: str  # "ensemble" | "loop": stored with each run
    precision: str  # "fp32" | "tf32" | "bf16" (optiscope.engine.precision)
    task: Task
    device: torch.device
    init_params: Params

    def values(self) -> Params:
        """Every member's current parameters, stacked and detached."""
        ...

    def train_step(self, step: int, frozen: Tensor, check: Callable[[Tensor], None]) -> Tensor:
        """Update every member not `frozen`; return the per-member loss at the pre-update point.
        `check(loss)` is called as soon as the losses are known (before any update they would
        spoil, where the strategy can). An ensemble strategy reads nothing back to the host."""
        ...

    def freeze(self, newly: Tensor) -> None:
        """Members in `newly` (a device mask) diverged: keep them where they are from now on.
        Masking only, no host read: on an asynchronous device it is called every step, with a
        mask that is usually all False (`Trainer.masked`)."""
        ...

    def restore_frozen(self, frozen: Tensor) -> None:
        """Undo whatever a step did to frozen members (masking only, no host read)."""
        ...

    def finish(self, frozen: Tensor) -> None:
        """Call the optimizers' `finish()` (where they have one) after the last step."""
        ...

    def evaluate(self, step: int, frozen: Tensor) -> dict[str, Tensor]:
        """The task's metrics for every member (NaN where a strategy skips frozen members)."""
        ...

    def counters(self) -> dict[str, Any]:
        """grad_evals, func_evals and time_s so far: a number for all members, or one each."""
        ...

    def state(self) -> dict[str, Any]: ...

    def load_state(self, state: dict[str, Any]) -> None: ...


def _most(value: Any) -> int:
    return int(max(value)) if isinstance(value, list) else int(value)


class Trainer:
    """Trains one cell: the step `strategy` takes the steps, this loop does everything else.

    `clock`: how times are read (default: a `DeviceClock` on the strategy's device, which
    synchronises it first).
    """

    def __init__(
        self,
        strategy: StepStrategy,
        seeds: Sequence[int],
        *,
        probes: ProbeHook | Sequence[ProbeHook] | None = None,
        clock: DeviceClock | None = None,
    ):
        self.strategy = strategy
        self.task = strategy.task
        self.device = strategy.device
        self.seeds = list(seeds)
        self.seed_tensor = torch.tensor(self.seeds)
        if probes is None:
            probes = []
        elif not isinstance(probes, Sequence):
            probes = [probes]
        self.probes: list[ProbeHook] = list(probes)
        n = len(self.seeds)
        self.frozen = torch.zeros(n, dtype=torch.bool, device=self.device)
        #: Each member's first non-finite step (-1: none), kept on the device.
        self.diverged_at = torch.full((n,), -1, dtype=torch.long, device=self.device)
        self._known_diverged: list[int | None] = [None] * n  # as of the last read-back
        self.metrics = MetricLog(n)
        self.step = 0
        self.elapsed = 0.0
        self.clock = clock or DeviceClock(self.device)
        self._mark: float | None = None  # clock reading where training time last resumed
        #: Counters after each step since the previous sync point (a rewind target).
        self._trail: dict[int, dict[str, Any]] = {}
        self._synced_at = 0  # step of the last sync point
        self._rewound: dict[str, Any] | None = None  # counters fixed by a rewind
        #: Mask every step (an asynchronous device: a host read would wait for its queue), or
        #: first ask the host whether any member diverged (the CPU: reading costs nothing).
        self.masked = self.device.type != "cpu"

    @property
    def init_params(self) -> Params:
        return self.strategy.init_params

    @property
    def precision(self) -> str:
        return getattr(self.strategy, "precision", "fp32")

    def counters(self) -> dict[str, Any]:
        """The strategy's counters, or those of the step a rewind went back to."""
        return self._rewound if self._rewound is not None else self.strategy.counters()

    @property
    def grad_evals(self) -> int:
        return _most(self.counters()["grad_evals"])

    @property
    def func_evals(self) -> int:
        return _most(self.counters()["func_evals"])

    # -- divergence, read back from the device ----------------------------------------------------
    @property
    def diverged_step(self) -> list[int | None]:
        """Each member's first non-finite step (None: never). Reading it synchronises the
        device; the step loop reads it only at its sync points (`known_diverged_step`)."""
        self._read_divergence()
        return list(self._known_diverged)

    @diverged_step.setter
    def diverged_step(self, steps: Sequence[int | None]) -> None:
        values = [-1 if d is None else int(d) for d in steps]
        self.diverged_at = torch.tensor(values, dtype=torch.long, device=self.device)
        self.frozen = self.diverged_at >= 0
        self._known_diverged = [None if d < 0 else d for d in values]

    @property
    def known_diverged_step(self) -> list[int | None]:
        """`diverged_step` as of the last sync point (no synchronisation)."""
        return list(self._known_diverged)

    def _read_divergence(self) -> None:
        """The one read-back of the divergence record (a host-device synchronisation)."""
        at = self.diverged_at.tolist()
        self._known_diverged = [None if d < 0 else int(d) for d in at]

    def all_diverged(self) -> bool:
        """Whether every member has diverged, as of the last sync point."""
        return all(d is not None for d in self._known_diverged)

    def spent_at(self, step: int) -> tuple[int, int, float]:
        """(grad_evals, func_evals, elapsed) when the loop had taken `step` steps, for a step
        since the previous sync point (the elapsed time is the last one read: the time a run
        alone would also have spent before it noticed)."""
        counters = self._trail.get(step) or self.counters()
        return _most(counters["grad_evals"]), _most(counters["func_evals"]), self.elapsed

    # -- one step -----------------------------------------------------------------------------
    def train_step(self) -> Tensor:
        with matmul_precision(self.precision, self.device):
            loss = self.strategy.train_step(self.step, self.frozen, self._check_divergence)
        self.strategy.restore_frozen(self.frozen)
        self.step += 1
        return loss

    def _check_divergence(self, loss: Tensor) -> None:
        """Freeze members whose loss is not finite; record the step (pre-update numbering).
        All on the device: nothing is read back here."""
        newly = ~torch.isfinite(loss.detach()).to(self.device) & ~self.frozen
        if not self.masked and not bool(newly.any()):
            return
        self.diverged_at.masked_fill_(newly, self.step)
        self.strategy.freeze(newly)
        self.frozen |= newly

    def finish(self) -> None:
        """The optimizers' end-of-run hook (basin hopping returns to its accepted point)."""
        self.strategy.finish(self.frozen)
        self.strategy.restore_frozen(self.frozen)

    # -- evaluation -----------------------------------------------------------------------------
    def evaluate(self) -> dict[str, Tensor]:
        return self.strategy.evaluate(self.step, self.frozen)

    def log_eval(self) -> None:
        for name, values in self.evaluate().items():
            self.metrics.add(self.step, name, values)
        counters = self.counters()
        for name in ("grad_evals", "func_evals"):
            self.metrics.add(self.step, name, _as_values(counters[name]))
        time_s = counters.get("time_s")
        self.metrics.add(self.step, "time_s", self.elapsed if time_s is None else _as_values(time_s))

    def probes_due(self, total_steps: int) -> list[ProbeHook]:
        return [p for p in self.probes if p.due(self.step, total_steps)]

    def log_probes(self, total_steps: int, due: list[ProbeHook] | None = None) -> None:
        due = self.probes_due(total_steps) if due is None else due
        if not due:
            return
        values = self.strategy.values()
        for probe in due:
            out = probe(self.task, values, self.init_params, self.seed_tensor, self.step)
            for name, v in out.items():
                self.metrics.add(self.step, name, v)

    # -- time -------------------------------------------------------------------------------------
    def _resume_clock(self) -> None:
        """Training time starts (again) now: after the device finished what came before."""
        self._mark = self.clock.now()

    def _pause_clock(self) -> None:
        """Add the training time since `_resume_clock` (the device synchronised first)."""
        if self._mark is not None:
            self.elapsed += self.clock.now() - self._mark
            self._mark = None

    # -- the whole cell -------------------------------------------------------------------------
    def advance(self, log_every: int) -> None:
        """One step of the loop between sync points: the step, its logged batch loss and the
        counters it leaves (a rewind target). Reads nothing back from the device."""
        iterate = self.step
        loss = self.train_step()
        if iterate % log_every == 0:
            self.metrics.add(iterate, "batch_loss", loss.detach())
        counters = self.strategy.counters()
        # Shared counters (one number for all members) go on counting for frozen members: keep
        # them to rewind to. Per-member ones (loop mode) stop when a member freezes: no need.
        if not any(isinstance(v, list) for v in counters.values()):
            self._trail[self.step] = dict(counters)

    def sync(self) -> bool:
        """A sync point: read the divergence record back; True when every member has diverged,
        in which case the cell is rewound to the step where its last member did."""
        self._read_divergence()
        for s in [s for s in self._trail if s <= self._synced_at]:
            del self._trail[s]  # keep (previous sync point, now]: spent_at looks there
        self._synced_at = self.step
        if not self.all_diverged():
            return False
        stop = max(d for d in self._known_diverged if d is not None) + 1
        if stop < self.step and stop in self._trail:
            self._rewound = self._trail[stop]
            self.step = stop
        return True

    def run(
        self,
        steps: int,
        eval_every: int,
        log_every: int,
        *,
        on_step: ProgressFn | None = None,
        checkpoint: Callable[[Trainer], None] | None = None,
        checkpoint_every: int = 0,
    ) -> CellResult:
        if self.step == 0:
            self.log_eval()
            self.log_probes(steps)
        stopped = self.all_diverged()
        reported = self.step
        if self.step < steps and not stopped:
            self._resume_clock()
        while self.step < steps and not stopped:
            self.advance(log_every)
            if self.step == steps:
                self.finish()
            due = self.probes_due(steps)
            eval_due = self.step % eval_every == 0 or self.step == steps
            ckpt_due = checkpoint is not None and checkpoint_every and self.step % checkpoint_every == 0
            if eval_due or due or ckpt_due or self.step == steps:
                self._pause_clock()
                stopped = self.sync()
                if not stopped:
                    if eval_due:
                        self.log_eval()
                    self.log_probes(steps, due)
            if on_step is not None:
                on_step(1)
                reported += 1
            if ckpt_due and not stopped:
                checkpoint(self)
            if self._mark is None and self.step < steps and not stopped:
                self._resume_clock()
        self._pause_clock()
        if on_step is not None and reported < steps:
            on_step(steps - reported)  # every member diverged: the rest of the bar is skipped
        return self.result()

    def result(self) -> CellResult:
        values = self.strategy.values()
        return CellResult(
            seeds=self.seeds,
            diverged_step=self.diverged_step,
            metrics=self.metrics,
            grad_evals=self.grad_evals,
            func_evals=self.func_evals,
            wall_time_s=self.elapsed,
            mode=self.strategy.mode,
            device=str(self.device),
            final_params={k: v.cpu() for k, v in values.items()},
            init_params={k: v.cpu() for k, v in self.init_params.items()},
        )

    # -- checkpoints ----------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Everything needed to resume: tensors and plain values only (weights_only-loadable).

        A snapshot: nothing in it aliases the live tensors, which keep training.
        """
        return {
            **self.strategy.state(),
            "mode": self.strategy.mode,
            "step": self.step,
            "frozen": self.frozen.cpu().clone(),
            "diverged_step": [-1 if d is None else d for d in self.diverged_step],
            "elapsed": self.elapsed,
            "metrics": self.metrics.state(),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        mode = state.get("mode", "ensemble")
        if mode != self.strategy.mode:
            raise ValueError(f"checkpoint is of a {mode}-mode run, this trainer runs in "
                             f"{self.strategy.mode} mode")
        self.strategy.load_state(state)
        self.diverged_step = [None if d < 0 else int(d) for d in state["diverged_step"]]
        self.frozen = state["frozen"].to(self.device)
        self.elapsed = float(state["elapsed"])
        self.metrics = MetricLog.from_state(len(self.seeds), state["metrics"])
        self.step = int(state["step"])
        self._synced_at, self._trail, self._rewound = self.step, {}, None


class StrategyTrainer(Trainer):
    """A `Trainer` built from a cell's parts: its `step_cls` makes the strategy (one constructor for all)."""

    step_cls: Callable[..., StepStrategy]

    def __init__(
        self,
        task: Task,
        optimizer_cls: type,
        hyperparameters: dict[str, Any],
        seeds: list[int],
        *,
        device: str = "cpu",
        probe_runner: ProbeHook | Sequence[ProbeHook] | None = None,
        precision: str = "fp32",
        compile: bool = False,
    ):
        step = self.step_cls(task, optimizer_cls, hyperparameters, seeds, device=device,
                             precision=precision, compile=compile)
        super().__init__(step, seeds, probes=probe_runner)


def _as_values(value: Any) -> Tensor | float:
    """A counter as MetricLog takes it: one number for all members, or a tensor of one each."""
    return torch.tensor(value) if isinstance(value, list) else float(value)
