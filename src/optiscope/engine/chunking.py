"""Memory-aware chunking: how many members of an ensemble fit on the device at once.

An ensemble holds, per member, its parameters, their gradients, the optimizer's state, its
minibatch and the activations the backward pass keeps. All of these are measured on one member
before training (a dry optimizer step on zero gradients gives the real state, whatever the
optimizer; saved-tensor hooks on one forward give what autograd keeps), so the estimate needs no
per-task or per-optimizer table. The chunk is the largest number of members whose total stays
under `SAFETY` of the memory available (free device memory on CUDA, MemAvailable on a CPU, or
`[experiment] max_memory_gb`); the rest of the memory is left for the allocator's slack, the
evaluation pass and transients of the step. Chunks train one after another (engine.work) and
their results are concatenated, so chunking changes the wall time and the results only by float
rounding: member i keeps its seed, data order and noise, but another ensemble size can select
other batched kernels (studies/README.md, "Reproducibility": one-member chunks against one
ensemble of 8 moved the digits MLP's final training loss by up to 1e-4 after 500 steps).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from optiscope.tasks.base import Task

log = logging.getLogger(__name__)

#: Fraction of the available memory the members may take.
SAFETY = 0.5
#: Optimizer state per parameter byte assumed when the dry step cannot run (Adam's is 2).
FALLBACK_STATE_FACTOR = 4.0


@dataclass(frozen=True)
class MemberFootprint:
    """Bytes one member needs while training (each part measured on a one-member dry run)."""

    params: int
    grads: int
    optimizer_state: int
    batch: int
    activations: int
    #: The copy of the parameters divergence masking keeps (engine.trainer: on an asynchronous
    #: device the snapshot exists from the first step; on the CPU only once a member diverges).
    frozen_snapshot: int = 0

    @property
    def total(self) -> int:
        return (self.params + self.grads + self.optimizer_state + self.batch + self.activations
                + self.frozen_snapshot)


def available_bytes(device: torch.device | str, max_memory_gb: float | None = None) -> int:
    """Memory the ensemble may use: the override, else what `device` reports free."""
    if max_memory_gb is not None:
        if max_memory_gb <= 0:
            raise ValueError(f"max_memory_gb must be > 0 (got {max_memory_gb})")
        return int(max_memory_gb * 2**30)
    device = torch.device(device)
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    return _host_available_bytes()


def _host_available_bytes() -> int:
    """MemAvailable from /proc/meminfo (Linux), else the free physical pages (other POSIX)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _first_member(value: Any, n_members: int) -> Any:
    """A hyperparameter as one member sees it: per-member tensors of shape (n,) cut to (1,)."""
    if isinstance(value, Tensor) and value.dim() == 1 and value.shape[0] == n_members:
        return value[:1].clone()
    if isinstance(value, tuple):
        return tuple(_first_member(v, n_members) for v in value)
    return value


def _nbytes(tensors: Any) -> int:
    """Bytes of the distinct storages among `tensors` (a dict/list nest of tensors)."""
    seen: dict[int, int] = {}

    def visit(x: Any) -> None:
        if isinstance(x, Tensor):
            if x.numel():
                seen[x.untyped_storage().data_ptr()] = x.untyped_storage().nbytes()
        elif isinstance(x, dict):
            for v in x.values():
                visit(v)
        elif isinstance(x, (list, tuple)):
            for v in x:
                visit(v)

    visit(tensors)
    return sum(seen.values())


def _optimizer_state_bytes(
    task: Task, optimizer_cls: type, hyperparameters: dict[str, Any], params: dict[str, Tensor],
    n_members: int,
) -> int:
    """The state of `optimizer_cls` after one step on zero gradients, for one member."""
    from optiscope.optim.roles import parameters_for

    stacked = {k: v.detach().unsqueeze(0).clone().requires_grad_(True) for k, v in params.items()}
    hp = {k: _first_member(v, n_members) for k, v in hyperparameters.items()}
    opt = optimizer_cls(parameters_for(optimizer_cls, stacked, task.roles()), **hp, ensemble_dims=1)
    opt.member_seeds = torch.tensor([0])

    def closure() -> Tensor:
        for p in stacked.values():
            p.grad = torch.zeros_like(p)
        return torch.zeros(1)

    closure()
    opt.step(closure if getattr(opt, "needs_closure", False) else None)
    return _nbytes([list(s.values()) for s in opt.state.values()])


def _activation_bytes(task: Task, params: dict[str, Tensor]) -> tuple[int, int]:
    """(batch bytes, bytes autograd saves for the backward) of one member's training step."""
    member_batch = task.train_batch(torch.tensor([0]), 0)
    batch = member_batch.member(0)
    batch_bytes = sum(v[0].numel() * v.element_size() for v in member_batch.per_member.values())
    leaves = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
    param_ptrs = {v.untyped_storage().data_ptr() for v in leaves.values()}
    saved: dict[int, int] = {}

    def pack(t: Tensor) -> Tensor:
        ptr = t.untyped_storage().data_ptr()
        if ptr not in param_ptrs:
            saved[ptr] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        task.loss(leaves, batch)
    # The backward holds about one more activation-sized gradient at a time: count the largest.
    transient = max(saved.values(), default=0)
    return batch_bytes, sum(saved.values()) + transient


def member_footprint(
    task: Task, optimizer_cls: type, hyperparameters: dict[str, Any], n_members: int = 1,
    *, masked: bool = False,
) -> MemberFootprint:
    """What one member of an ensemble of `optimizer_cls` on `task` occupies while training.

    `n_members` says which per-member hyperparameter tensors to cut to one member; `masked`:
    the trainer masks divergence every step (a non-CPU device), keeping a parameter snapshot.
    """
    params = task.init_params(0)
    param_bytes = _nbytes(list(params.values()))
    try:
        state = _optimizer_state_bytes(task, optimizer_cls, hyperparameters, params, n_members)
    except Exception as exc:  # an estimate: a conservative factor is better than no run
        log.warning("could not measure %s's state on one member (%s: %s); assuming %.0fx the "
                    "parameters", optimizer_cls.__name__, type(exc).__name__, exc,
                    FALLBACK_STATE_FACTOR)
        state = int(FALLBACK_STATE_FACTOR * param_bytes)
    batch, activations = _activation_bytes(task, params)
    return MemberFootprint(param_bytes, param_bytes, state, batch, activations,
                           frozen_snapshot=param_bytes if masked else 0)


def member_chunk_size(
    task: Task,
    optimizer_cls: type,
    hyperparameters: dict[str, Any],
    n_members: int,
    device: torch.device | str,
    *,
    max_memory_gb: float | None = None,
) -> int | None:
    """Members to train at once: None when all `n_members` fit, else the largest chunk that does.

    Never less than 1: a single member that does not fit is tried anyway (and warned about),
    since nothing smaller exists.
    """
    footprint = member_footprint(task, optimizer_cls, hyperparameters, n_members,
                                 masked=torch.device(device).type != "cpu")
    budget = SAFETY * available_bytes(device, max_memory_gb)
    fits = int(budget // max(footprint.total, 1))
    if fits >= n_members:
        return None
    if fits < 1:
        log.warning("one member needs about %.3g GiB but %.3g GiB is available (x%.2g safety): "
                    "training one member at a time", footprint.total / 2**30, budget / 2**30 / SAFETY,
                    SAFETY)
        return 1
    log.info("%d members need about %.3g GiB, %.3g GiB usable: chunks of %d", n_members,
             n_members * footprint.total / 2**30, budget / 2**30, fits)
    return fits
