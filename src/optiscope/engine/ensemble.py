"""The ensemble trainer: all members' forward and backward in one `vmap`, no member loop.

Member i's parameters are slice i of every tensor; the task's pure loss is vmapped with
`torch.func.grad_and_value`, the gradients are handed to an ensemble-aware optimizer
(`ensemble_dims=1`) as ordinary `.grad`s, and metrics stay on the device until the cell lands.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any, Protocol

import torch
from torch import Tensor
from torch.func import grad_and_value, vmap

from optiscope.engine.result import CellResult, MetricLog
from optiscope.optim.base import EnsembleOptimizer
from optiscope.optim.roles import parameters_for
from optiscope.tasks.base import MemberBatch, Params, Task

ProgressFn = Callable[[int], None]


class ProbeRunner(Protocol):
    """Computes probe metrics along a trajectory (see optiscope.probes)."""

    def due(self, step: int, total_steps: int) -> bool: ...

    def __call__(
        self, task: Task, params: Params, init_params: Params, seeds: Tensor, step: int
    ) -> dict[str, Tensor]: ...


def stack_init(task: Task, seeds: list[int]) -> Params:
    """Members' initial parameters stacked on a leading axis.

    Initialisation is defined per seed (`task.init_params(seed)`) so that the loop trainer and
    the ensemble agree exactly; it runs once per cell, so its loop is not on the hot path.
    """
    per_seed = [task.init_params(s) for s in seeds]
    return {k: torch.stack([p[k] for p in per_seed]) for k in per_seed[0]}


def vmapped(fn: Callable[[Params, dict[str, Tensor]], Any], chunk_size: int | None = None):
    """vmap a per-member function of (params, batch) over members, sharing `shared` data."""

    def merged(params: Params, per_member: dict[str, Tensor], shared: dict[str, Tensor]) -> Any:
        return fn(params, {**per_member, **shared})

    return vmap(merged, in_dims=(0, 0, None), chunk_size=chunk_size)


def eval_chunk_size(task: Task, n_members: int) -> int | None:
    """Members evaluated at once: bounded so full-data evaluation fits in memory."""
    return None if n_members <= 8 else 8


class EnsembleTrainer:
    """Trains one cell as one ensemble on one device."""

    def __init__(
        self,
        task: Task,
        optimizer_cls: type[EnsembleOptimizer],
        hyperparameters: dict[str, Any],
        seeds: list[int],
        *,
        device: str = "cpu",
        probe_runner: ProbeRunner | None = None,
    ):
        self.task = task.to(device)
        self.device = torch.device(device)
        self.seeds = list(seeds)
        self.seed_tensor = torch.tensor(self.seeds)
        self.init_params = {k: v.to(self.device) for k, v in stack_init(task, self.seeds).items()}
        self.params = {
            k: v.clone().requires_grad_(True) for k, v in self.init_params.items()
        }
        self.optimizer = optimizer_cls(
            parameters_for(optimizer_cls, self.params, task.roles()),
            **hyperparameters, ensemble_dims=1,
        )
        self.optimizer.member_seeds = self.seed_tensor
        self._grad_fn = vmapped(grad_and_value(task.loss))
        self._eval_fn = vmapped(task.evaluate, eval_chunk_size(task, len(self.seeds)))
        self.probe_runner = probe_runner
        n = len(self.seeds)
        self.frozen = torch.zeros(n, dtype=torch.bool, device=self.device)
        self._frozen_values: Params = {}
        self.diverged_step: list[int | None] = [None] * n
        self.grad_evals = 0
        self.metrics = MetricLog(n)
        self.step = 0
        self.elapsed = 0.0

    # -- one step -----------------------------------------------------------------------------
    def _values(self) -> Params:
        return {k: p.detach() for k, p in self.params.items()}

    def _grads(self, batch: MemberBatch) -> Tensor:
        grads, loss = self._grad_fn(self._values(), batch.per_member, batch.shared)
        for k, p in self.params.items():
            p.grad = grads[k]
        self.grad_evals += 1
        return loss

    def train_step(self) -> Tensor:
        batch = self.task.train_batch(self.seed_tensor, self.step).to(self.device)
        if self.optimizer.needs_closure:
            loss = self.optimizer.step(lambda: self._grads(batch))
            self._check_divergence(loss)
        else:
            loss = self._grads(batch)
            self._check_divergence(loss)
            self.optimizer.step()
        self._restore_frozen()
        self.step += 1
        return loss

    def _check_divergence(self, loss: Tensor) -> None:
        """Freeze members whose loss is not finite; record the step (pre-update numbering)."""
        newly = ~torch.isfinite(loss.detach()) & ~self.frozen
        if not bool(newly.any()):
            return
        for i in torch.nonzero(newly).flatten().tolist():
            self.diverged_step[i] = self.step
        for k, p in self.params.items():
            snap = self._frozen_values.setdefault(k, torch.zeros_like(p.detach()))
            snap[newly] = p.detach()[newly]
        self.frozen |= newly

    def _restore_frozen(self) -> None:
        if not self._frozen_values:
            return
        with torch.no_grad():
            for k, p in self.params.items():
                p[self.frozen] = self._frozen_values[k][self.frozen]

    # -- evaluation -----------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self) -> dict[str, Tensor]:
        batch = self.task.eval_batch(self.seed_tensor).to(self.device)
        out = self._eval_fn(self._values(), batch.per_member, batch.shared)
        return {k: v.detach() for k, v in out.items()}

    def log_eval(self) -> None:
        for name, values in self.evaluate().items():
            self.metrics.add(self.step, name, values)
        self.metrics.add(self.step, "grad_evals", float(self.grad_evals))
        self.metrics.add(self.step, "time_s", self.elapsed)

    def log_probes(self, total_steps: int) -> None:
        if self.probe_runner is not None and self.probe_runner.due(self.step, total_steps):
            out = self.probe_runner(
                self.task, self._values(), self.init_params, self.seed_tensor, self.step
            )
            for name, values in out.items():
                self.metrics.add(self.step, name, values)

    # -- the whole cell -------------------------------------------------------------------------
    def run(
        self,
        steps: int,
        eval_every: int,
        log_every: int,
        *,
        on_step: ProgressFn | None = None,
        checkpoint: Callable[[EnsembleTrainer], None] | None = None,
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
        return CellResult(
            seeds=self.seeds,
            diverged_step=list(self.diverged_step),
            metrics=self.metrics,
            grad_evals=self.grad_evals,
            wall_time_s=self.elapsed,
            mode="ensemble",
            device=str(self.device),
            final_params={k: v.detach().cpu() for k, v in self.params.items()},
            init_params={k: v.cpu() for k, v in self.init_params.items()},
        )

    # -- checkpoints ----------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Everything needed to resume: tensors and plain values only (weights_only-loadable).

        A snapshot: nothing in it aliases the live tensors, which keep training.
        """
        return {
            "step": self.step,
            "params": {k: v.detach().cpu().clone() for k, v in self.params.items()},
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
            "frozen": self.frozen.cpu().clone(),
            "frozen_values": {k: v.cpu().clone() for k, v in self._frozen_values.items()},
            "diverged_step": [-1 if d is None else d for d in self.diverged_step],
            "grad_evals": self.grad_evals,
            "elapsed": self.elapsed,
            "metrics": self.metrics.state(),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            for k, p in self.params.items():
                p.copy_(state["params"][k].to(self.device))
        self.optimizer.load_state_dict(state["optimizer"])
        self.frozen = state["frozen"].to(self.device)
        self._frozen_values = {k: v.to(self.device) for k, v in state["frozen_values"].items()}
        self.diverged_step = [None if d < 0 else int(d) for d in state["diverged_step"]]
        self.grad_evals = int(state["grad_evals"])
        self.elapsed = float(state["elapsed"])
        self.metrics = MetricLog.from_state(len(self.seeds), state["metrics"])
        self.step = int(state["step"])
