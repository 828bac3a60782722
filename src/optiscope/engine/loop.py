"""The loop trainer: one member at a time with any `torch.optim.Optimizer`.

It runs third-party optimizers (named "module:Class" in a config) that know nothing of
ensembles, and it is the reference the ensemble trainer is tested against: same task functions,
same seeds, same data order, one member per Python iteration, `optimizer.step(closure)` as in any
PyTorch training loop.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import torch
from torch.optim import Optimizer

from optiscope.engine.result import CellResult, MetricLog
from optiscope.optim.roles import parameters_for
from optiscope.tasks.base import Params, Task

ProgressFn = Callable[[int], None]


def train_member(
    task: Task,
    optimizer_cls: type[Optimizer],
    hyperparameters: dict[str, Any],
    seed: int,
    steps: int,
    *,
    device: str = "cpu",
) -> tuple[Params, Optimizer]:
    """Train one member for `steps` steps; returns its parameters and optimizer (for tests)."""
    params = {k: v.to(device).requires_grad_(True) for k, v in task.init_params(seed).items()}
    opt = optimizer_cls(parameters_for(optimizer_cls, params, task.roles()), **hyperparameters)
    seed_t = torch.tensor([seed])
    if hasattr(opt, "member_seeds"):
        opt.member_seeds = seed_t
    for step in range(steps):
        batch = task.train_batch(seed_t, step).to(device).member(0)

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = task.loss(params, batch)
            loss.backward()
            return loss

        opt.step(closure)
    return params, opt


class LoopTrainer:
    """Trains a cell member by member; writes the same metrics as the ensemble trainer."""

    def __init__(
        self,
        task: Task,
        optimizer_cls: type[Optimizer],
        hyperparameters: dict[str, Any],
        seeds: list[int],
        *,
        device: str = "cpu",
    ):
        self.task = task.to(device)
        self.optimizer_cls = optimizer_cls
        self.hyperparameters = hyperparameters
        self.seeds = list(seeds)
        self.device = device

    def run(
        self, steps: int, eval_every: int, log_every: int, *, on_step: ProgressFn | None = None
    ) -> CellResult:
        n = len(self.seeds)
        log = MetricLog(n)
        columns: list[dict[tuple[int, str], float]] = []
        diverged: list[int | None] = []
        finals: list[Params] = []
        inits: list[Params] = []
        grad_evals_total = 0
        t_start = time.perf_counter()
        for seed in self.seeds:
            rows, div, final, init, evals = self._run_member(seed, steps, eval_every, log_every, on_step)
            columns.append(rows)
            diverged.append(div)
            finals.append(final)
            inits.append(init)
            grad_evals_total = max(grad_evals_total, evals)
        # Re-shape per-member dicts into the per-step, per-member log the store expects.
        keys = sorted({k for rows in columns for k in rows})
        for step, name in keys:
            log.add(step, name, torch.tensor([rows.get((step, name), math.nan) for rows in columns]))
        return CellResult(
            seeds=self.seeds,
            diverged_step=diverged,
            metrics=log,
            grad_evals=grad_evals_total,
            wall_time_s=time.perf_counter() - t_start,
            mode="loop",
            device=str(self.device),
            final_params={k: torch.stack([f[k] for f in finals]) for k in finals[0]},
            init_params={k: torch.stack([f[k] for f in inits]) for k in inits[0]},
        )

    def _run_member(self, seed, steps, eval_every, log_every, on_step):
        task = self.task
        init = task.init_params(seed)
        params = {k: v.to(self.device).clone().requires_grad_(True) for k, v in init.items()}
        opt = self.optimizer_cls(
            parameters_for(self.optimizer_cls, params, task.roles()), **self.hyperparameters
        )
        seed_t = torch.tensor([seed])
        if hasattr(opt, "member_seeds"):  # optiscope optimizers key their noise on it
            opt.member_seeds = seed_t
        eval_batch = task.eval_batch(seed_t).to(self.device).member(0)
        rows: dict[tuple[int, str], float] = {}
        evals = 0
        elapsed = 0.0

        def log_eval(step: int) -> None:
            with torch.no_grad():
                for name, v in task.evaluate(params, eval_batch).items():
                    rows[(step, name)] = float(v)
            rows[(step, "grad_evals")] = float(evals)
            rows[(step, "time_s")] = elapsed

        log_eval(0)
        diverged_at: int | None = None
        for step in range(steps):
            t0 = time.perf_counter()
            batch = task.train_batch(seed_t, step).to(self.device).member(0)
            first_loss: list[float] = []

            def closure() -> torch.Tensor:
                nonlocal evals
                opt.zero_grad()
                loss = task.loss(params, batch)
                loss.backward()
                evals += 1
                if not first_loss:
                    first_loss.append(float(loss.detach()))
                return loss

            opt.step(closure)
            elapsed += time.perf_counter() - t0
            loss_value = first_loss[0] if first_loss else math.nan
            if not math.isfinite(loss_value):
                diverged_at = step
                break
            if step % log_every == 0:
                rows[(step, "batch_loss")] = loss_value
            if (step + 1) % eval_every == 0 or step + 1 == steps:
                log_eval(step + 1)
            if on_step is not None:
                on_step(1 / len(self.seeds))  # progress counts cell steps, as the ensemble's
        if diverged_at is not None and on_step is not None:
            on_step((steps - diverged_at) / len(self.seeds))
        final = {k: v.detach().cpu() for k, v in params.items()}
        return rows, diverged_at, final, init, evals
