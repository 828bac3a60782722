"""The ensemble step: all members' forward and backward in one `vmap`, no member loop.

Member i's parameters are slice i of every tensor; the task's pure loss is vmapped with
`torch.func.grad_and_value`, the gradients are handed to an ensemble-aware optimizer
(`ensemble_dims=1`) as ordinary `.grad`s, and metrics stay on the device until the cell lands.
The run loop around the step is `optiscope.engine.trainer.Trainer`. With `compile=True` the
vmapped gradient function goes through `torch.compile`, and so does the evaluation (engine.compile, eager where that fails);
`precision` autocasts it to bf16 (engine.precision).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.func import grad_and_value, vmap

from optiscope.engine.compile import maybe_compiled
from optiscope.engine.precision import autocast, check_precision
from optiscope.engine.trainer import ProbeRunner, StrategyTrainer
from optiscope.optim.base import EnsembleOptimizer
from optiscope.optim.roles import parameters_for
from optiscope.tasks.base import MemberBatch, Params, Task

__all__ = ["EnsembleStep", "EnsembleTrainer", "ProbeRunner", "stack_init", "vmapped"]


def stack_init(task: Task, seeds: list[int]) -> Params:
    """Members' initial parameters stacked on a leading axis.

    Initialisation is defined per seed (`task.init_params(seed)`) so that the loop trainer and
    the ensemble agree exactly; it runs once per cell, so its loop is not on the hot path.
    A task built from an `nn.Module` stacks its members itself (`torch.func.stack_module_state`,
    PyTorch's model-ensembling recipe), bitwise equal to stacking `init_params` per seed.
    """
    stacked = getattr(task, "stacked_init_params", None)
    if stacked is not None:
        return stacked(list(seeds))
    per_seed = [task.init_params(s) for s in seeds]
    return {k: torch.stack([p[k] for p in per_seed]) for k in per_seed[0]}


def vmapped(fn: Callable[[Params, dict[str, Tensor]], Any], chunk_size: int | None = None):
    """vmap a per-member function of (params, batch) over members, sharing `shared` data."""

    def merged(params: Params, per_member: dict[str, Tensor], shared: dict[str, Tensor]) -> Any:
        return fn(params, {**per_member, **shared})

    return vmap(merged, in_dims=(0, 0, None), chunk_size=chunk_size)


def _over_members(mask: Tensor, like: Tensor) -> Tensor:
    """A per-member mask (S,) shaped to broadcast against stacked tensor `like` (S, ...)."""
    return mask.reshape(mask.shape + (1,) * (like.dim() - 1))


def eval_chunk_size(task: Task, n_members: int) -> int | None:
    """Members evaluated at once: the task's `eval_chunk` (8 by default, so full-data evaluation
    fits in memory), None (all at once) when the ensemble is no larger."""
    chunk = getattr(task, "eval_chunk", 8)
    return None if chunk is None or n_members <= chunk else chunk


class EnsembleStep:
    """Steps every member at once: stacked parameters, one ensemble-aware optimizer."""

    mode = "ensemble"

    def __init__(
        self,
        task: Task,
        optimizer_cls: type[EnsembleOptimizer],
        hyperparameters: dict[str, Any],
        seeds: Sequence[int],
        *,
        device: str | torch.device = "cpu",
        precision: str = "fp32",
        compile: bool = False,
    ):
        self.task = task.to(device)
        self.device = torch.device(device)
        self.precision = check_precision(precision)
        self.seed_tensor = torch.tensor(list(seeds))
        self.init_params = {k: v.to(self.device) for k, v in stack_init(task, list(seeds)).items()}
        self.params = {k: v.clone().requires_grad_(True) for k, v in self.init_params.items()}
        self.optimizer = optimizer_cls(
            parameters_for(optimizer_cls, self.params, task.roles()),
            **hyperparameters, ensemble_dims=1,
        )
        self.optimizer.member_seeds = self.seed_tensor
        name = getattr(task, "name", type(task).__name__)
        self._grad_fn = maybe_compiled(
            self._in_precision(vmapped(grad_and_value(task.loss))),
            enabled=compile, name=f"the {name} ensemble step",
        )
        self._loss_fn = self._in_precision(vmapped(task.loss))
        self._eval_fn = maybe_compiled(  # always fp32: metrics compare across precisions
            vmapped(task.evaluate, eval_chunk_size(task, len(self.seed_tensor))),
            enabled=compile, name=f"the {name} evaluation",
        )
        self._frozen_values: Params = {}
        self.grad_evals = 0
        self.func_evals = 0

    def values(self) -> Params:
        return {k: p.detach() for k, p in self.params.items()}

    def _in_precision(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """`fn` under the cell's autocast (bf16), inside what is compiled; `fn` itself in fp32."""
        if self.precision != "bf16":
            return fn
        precision, device = self.precision, self.device

        def under_autocast(*args: Any) -> Any:
            with autocast(precision, device):
                return fn(*args)

        return under_autocast

    # -- the closures -------------------------------------------------------------------------
    def grads(self, batch: MemberBatch) -> Tensor:
        """Every member's loss and gradient (into `.grad`): one gradient evaluation."""
        grads, loss = self._grad_fn(self.values(), batch.per_member, batch.shared)
        for k, p in self.params.items():
            p.grad = grads[k]
        self.grad_evals += 1
        return loss

    def losses(self, batch: MemberBatch) -> Tensor:
        """Every member's loss alone, gradients untouched: one function evaluation."""
        with torch.no_grad():
            loss = self._loss_fn(self.values(), batch.per_member, batch.shared)
        self.func_evals += 1
        return loss

    def closure(self, batch: MemberBatch) -> Callable[[], Tensor]:
        """torch's closure convention; forward only when called under `torch.no_grad()`."""
        return lambda: self.grads(batch) if torch.is_grad_enabled() else self.losses(batch)

    # -- the step -------------------------------------------------------------------------------
    def train_step(self, step: int, frozen: Tensor, check: Callable[[Tensor], None]) -> Tensor:
        batch = self.task.train_batch(self.seed_tensor, step).to(self.device)
        if self.optimizer.needs_closure:
            loss = self.optimizer.step(self.closure(batch))
            check(loss)
        else:
            loss = self.grads(batch)
            check(loss)
            self.optimizer.step()
        return loss

    def freeze(self, newly: Tensor) -> None:
        """Snapshot members in `newly` by masking: no boolean indexing (it would read the
        mask's count back to the host), so it runs every step without a synchronisation."""
        with torch.no_grad():
            for k, p in self.params.items():
                v = p.detach()
                snap = self._frozen_values.get(k)
                if snap is None:
                    snap = self._frozen_values[k] = torch.zeros_like(v)
                torch.where(_over_members(newly, v), v, snap, out=snap)

    def restore_frozen(self, frozen: Tensor) -> None:
        if not self._frozen_values:
            return
        with torch.no_grad():
            for k, p in self.params.items():
                v = p.detach()
                torch.where(_over_members(frozen, v), self._frozen_values[k], v, out=v)

    def finish(self, frozen: Tensor) -> None:
        finish = getattr(self.optimizer, "finish", None)
        if callable(finish):
            with torch.no_grad():
                finish()

    @torch.no_grad()
    def evaluate(self, step: int, frozen: Tensor) -> dict[str, Tensor]:
        batch = self.task.eval_batch(self.seed_tensor, step).to(self.device)
        out = self._eval_fn(self.values(), batch.per_member, batch.shared)
        return {k: v.detach() for k, v in out.items()}

    def counters(self) -> dict[str, Any]:
        return {"grad_evals": self.grad_evals, "func_evals": self.func_evals}

    # -- checkpoints ----------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "params": {k: v.detach().cpu().clone() for k, v in self.params.items()},
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
            "frozen_values": {k: v.cpu().clone() for k, v in self._frozen_values.items()},
            "grad_evals": self.grad_evals,
            "func_evals": self.func_evals,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            for k, p in self.params.items():
                p.copy_(state["params"][k].to(self.device))
        self.optimizer.load_state_dict(state["optimizer"])
        self._frozen_values = {k: v.to(self.device) for k, v in state["frozen_values"].items()}
        self.grad_evals = int(state["grad_evals"])
        self.func_evals = int(state.get("func_evals", 0))


class EnsembleTrainer(StrategyTrainer):
    """Trains one cell as one ensemble on one device (the `Trainer` with an `EnsembleStep`)."""

    strategy: EnsembleStep
    step_cls = EnsembleStep

    @property
    def params(self) -> Params:
        """The live stacked parameters (leaves with `.grad`)."""
        return self.strategy.params

    @property
    def optimizer(self) -> EnsembleOptimizer:
        return self.strategy.optimizer

    def _grads(self, batch: MemberBatch) -> Tensor:
        return self.strategy.grads(batch)
