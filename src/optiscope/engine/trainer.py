"""The run loop, written once: evaluation cadence, logging, divergence, finishing, checkpoints,
probes and progress, for any way of taking a training step.

How a step is taken is a strategy: all members in one vmap with an ensemble-aware optimizer
(`optiscope.engine.ensemble.EnsembleStep`), or member by member with any `torch.optim.Optimizer`
(`optiscope.engine.loop.MemberLoopStep`). Everything around the step lives here, so a third-party
optimizer gets the same metrics, probes and checkpoints as a built-in one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import torch
from torch import Tensor

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
        spoil, where the strategy can)."""
        ...

    def freeze(self, newly: Tensor) -> None:
        """Members in `newly` diverged: keep them where they are from now on."""
        ...

    def restore_frozen(self, frozen: Tensor) -> None:
        """Undo whatever a step did to frozen members."""
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
    """Trains one cell: the step `strategy` takes the steps, this loop does everything else."""

    def __init__(
        self,
        strategy: StepStrategy,
        seeds: Sequence[int],
        *,
        probes: ProbeHook | Sequence[ProbeHook] | None = None,
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
        self.diverged_step: list[int | None] = [None] * n
        self.metrics = MetricLog(n)
        self.step = 0
        self.elapsed = 0.0

    @property
    def init_params(self) -> Params:
        return self.strategy.init_params

    @property
    def precision(self) -> str:
        return getattr(self.strategy, "precision", "fp32")

    @property
    def grad_evals(self) -> int:
        return _most(self.strategy.counters()["grad_evals"])

    @property
    def func_evals(self) -> int:
        return _most(self.strategy.counters()["func_evals"])

    # -- one step -----------------------------------------------------------------------------
    def train_step(self) -> Tensor:
        with matmul_precision(self.precision, self.device):
            loss = self.strategy.train_step(self.step, self.frozen, self._check_divergence)
        self.strategy.restore_frozen(self.frozen)
        self.step += 1
        return loss

    def _check_divergence(self, loss: Tensor) -> None:
        """Freeze members whose loss is not finite; record the step (pre-update numbering)."""
        newly = ~torch.isfinite(loss.detach()) & ~self.frozen
        if not bool(newly.any()):
            return
        for i in torch.nonzero(newly).flatten().tolist():
            self.diverged_step[i] = self.step
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
        counters = self.strategy.counters()
        for name in ("grad_evals", "func_evals"):
            self.metrics.add(self.step, name, _as_values(counters[name]))
        time_s = counters.get("time_s")
        self.metrics.add(self.step, "time_s", self.elapsed if time_s is None else _as_values(time_s))

    def log_probes(self, total_steps: int) -> None:
        due = [p for p in self.probes if p.due(self.step, total_steps)]
        if not due:
            return
        values = self.strategy.values()
        for probe in due:
            out = probe(self.task, values, self.init_params, self.seed_tensor, self.step)
            for name, v in out.items():
                self.metrics.add(self.step, name, v)

    # -- the whole cell -------------------------------------------------------------------------
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
        while self.step < steps and not bool(self.frozen.all()):
            t0 = time.perf_counter()
            iterate = self.step
            loss = self.train_step()
            if iterate % log_every == 0:
                self.metrics.add(iterate, "batch_loss", loss.detach())
            if self.step == steps:
                self.finish()
            self.elapsed += time.perf_counter() - t0
            if self.step % eval_every == 0 or self.step == steps:
                self.log_eval()
            self.log_probes(steps)
            if on_step is not None:
                on_step(1)
            if checkpoint is not None and checkpoint_every and self.step % checkpoint_every == 0:
                checkpoint(self)
        if on_step is not None and self.step < steps:
            on_step(steps - self.step)  # every member diverged: the rest of the bar is skipped
        return self.result()

    def result(self) -> CellResult:
        values = self.strategy.values()
        return CellResult(
            seeds=self.seeds,
            diverged_step=list(self.diverged_step),
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
        self.frozen = state["frozen"].to(self.device)
        self.diverged_step = [None if d < 0 else int(d) for d in state["diverged_step"]]
        self.elapsed = float(state["elapsed"])
        self.metrics = MetricLog.from_state(len(self.seeds), state["metrics"])
        self.step = int(state["step"])


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
