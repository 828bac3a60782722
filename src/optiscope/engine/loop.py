"""The per-member step: one member at a time with any `torch.optim.Optimizer`.

It runs third-party optimizers (named "module:Class" in a config) that know nothing of
ensembles, and it is the reference the ensemble step is tested against: same task functions,
same seeds, same data order, one member per Python iteration, `optimizer.step(closure)` as in any
PyTorch training loop. Each member has its own parameter dict and optimizer; the run loop around
the step (`optiscope.engine.trainer.Trainer`) sees them stacked, so loop mode gets the same
evaluation, probes, divergence handling and checkpoints as ensemble mode.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from optiscope.core.device import DeviceClock
from optiscope.engine.precision import autocast, check_precision
from optiscope.engine.trainer import StrategyTrainer
from optiscope.optim.roles import parameters_for
from optiscope.tasks.base import Batch, Params, Task


class MemberLoopStep:
    """Steps S members in turn, each with its own parameters and optimizer."""

    mode = "loop"

    def __init__(
        self,
        task: Task,
        optimizer_cls: type[Optimizer],
        hyperparameters: dict[str, Any],
        seeds: Sequence[int],
        *,
        device: str | torch.device = "cpu",
        precision: str = "fp32",
        compile: bool = False,
    ):
        # `compile` is accepted for a uniform constructor and ignored: the per-member loop is the
        # uncompiled reference the ensemble step is tested against.
        self.task = task.to(device)
        self.device = torch.device(device)
        self.precision = check_precision(precision)
        self.seeds = list(seeds)
        self.members: list[Params] = []
        self.optimizers: list[Optimizer] = []
        inits = []
        for seed in self.seeds:
            init = task.init_params(seed)
            inits.append(init)
            params = {k: v.to(self.device).clone().requires_grad_(True) for k, v in init.items()}
            opt = optimizer_cls(parameters_for(optimizer_cls, params, task.roles()), **hyperparameters)
            if hasattr(opt, "member_seeds"):  # optiscope optimizers key their noise on it
                opt.member_seeds = torch.tensor([seed])
            self.members.append(params)
            self.optimizers.append(opt)
        self.init_params = {k: torch.stack([p[k] for p in inits]).to(self.device) for k in inits[0]}
        n = len(self.seeds)
        self.grad_evals = [0] * n
        self.func_evals = [0] * n
        self.time_s = [0.0] * n  # each member's own training time, as a lone run would take
        #: Member times are read after a device synchronisation (the loop is the reference and
        #: syncs per member anyway: its loss is read back as a number).
        self.clock = DeviceClock(self.device)

    def values(self) -> Params:
        return {k: torch.stack([p[k].detach() for p in self.members]) for k in self.members[0]}

    # -- the closure ----------------------------------------------------------------------------
    def closure(self, i: int, batch: Batch, first_loss: list[float]) -> Callable[[], Tensor]:
        """Member i's closure, torch's convention; forward only under `torch.no_grad()`.
        Records the loss of its first call (the pre-update point) in `first_loss`."""
        params, opt = self.members[i], self.optimizers[i]

        def closure() -> Tensor:
            if torch.is_grad_enabled():
                opt.zero_grad()
                with autocast(self.precision, self.device):
                    loss = self.task.loss(params, batch)
                loss.backward()
                self.grad_evals[i] += 1
            else:
                with autocast(self.precision, self.device):
                    loss = self.task.loss(params, batch)
                self.func_evals[i] += 1
            if not first_loss:
                first_loss.append(float(loss.detach()))
            return loss

        return closure

    def _seed(self, i: int) -> Tensor:
        """Member i's seed as the one-member seed tensor tasks take."""
        return torch.tensor([self.seeds[i]])

    # -- the step -------------------------------------------------------------------------------
    def train_step(self, step: int, frozen: Tensor, check: Callable[[Tensor], None]) -> Tensor:
        losses = []
        for i, is_frozen in enumerate(frozen.tolist()):
            if is_frozen:
                losses.append(math.nan)
                continue
            t0 = self.clock.now()
            first_loss: list[float] = []
            batch = self.task.train_batch(self._seed(i), step).to(self.device).member(0)
            self.optimizers[i].step(self.closure(i, batch, first_loss))
            self.time_s[i] += self.clock.now() - t0
            # An optimizer that never called the closure gave no loss: treated as diverged.
            losses.append(first_loss[0] if first_loss else math.nan)
        loss = torch.tensor(losses, device=self.device)
        check(loss)
        return loss

    def freeze(self, newly: Tensor) -> None:
        """Nothing to snapshot: a frozen member is simply not stepped again."""

    def restore_frozen(self, frozen: Tensor) -> None:
        """Frozen members are never stepped, so there is nothing to undo."""

    def finish(self, frozen: Tensor) -> None:
        for opt, is_frozen in zip(self.optimizers, frozen.tolist(), strict=True):
            finish = getattr(opt, "finish", None)
            if callable(finish) and not is_frozen:
                with torch.no_grad():
                    finish()

    @torch.no_grad()
    def evaluate(self, step: int, frozen: Tensor) -> dict[str, Tensor]:
        rows: list[dict[str, Tensor] | None] = []
        for i, is_frozen in enumerate(frozen.tolist()):
            if is_frozen:  # its rows are dropped at landing: do not spend an evaluation on it
                rows.append(None)
                continue
            batch = self.task.eval_batch(self._seed(i), step).to(self.device).member(0)
            out = self.task.evaluate(self.members[i], batch)
            rows.append({k: v.detach() for k, v in out.items()})
        names = next((r for r in rows if r is not None), {})
        return {
            name: torch.stack([torch.full((), math.nan) if r is None else r[name].float().cpu()
                               for r in rows])
            for name in names
        }

    def counters(self) -> dict[str, Any]:
        return {"grad_evals": self.grad_evals, "func_evals": self.func_evals, "time_s": self.time_s}

    # -- checkpoints ----------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "params": {k: v.cpu().clone() for k, v in self.values().items()},
            "optimizer": [copy.deepcopy(opt.state_dict()) for opt in self.optimizers],
            "grad_evals": list(self.grad_evals),
            "func_evals": list(self.func_evals),
            "time_s": list(self.time_s),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            for i, params in enumerate(self.members):
                for k, p in params.items():
                    p.copy_(state["params"][k][i].to(self.device))
        for opt, saved in zip(self.optimizers, state["optimizer"], strict=True):
            opt.load_state_dict(saved)
        self.grad_evals = [int(v) for v in state["grad_evals"]]
        self.func_evals = [int(v) for v in state["func_evals"]]
        self.time_s = [float(v) for v in state["time_s"]]


class LoopTrainer(StrategyTrainer):
    """Trains a cell member by member (the `Trainer` with a `MemberLoopStep`)."""

    strategy: MemberLoopStep
    step_cls = MemberLoopStep

    @property
    def params(self) -> Params:
        """Every member's parameters, stacked (a copy: the members' own dicts keep training)."""
        return self.strategy.values()


def train_member(
    task: Task,
    optimizer_cls: type[Optimizer],
    hyperparameters: dict[str, Any],
    seed: int,
    steps: int,
    *,
    device: str = "cpu",
) -> tuple[Params, Optimizer]:
    """Train one member for `steps` steps (no evaluation, no `finish`); returns its parameters
    and optimizer (for tests). A member whose loss stops being finite is not stepped further."""
    trainer = LoopTrainer(task, optimizer_cls, hyperparameters, [seed], device=device)
    for _ in range(steps):
        trainer.train_step()
    return trainer.strategy.members[0], trainer.strategy.optimizers[0]
