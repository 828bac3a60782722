"""Helpers for the optimizer tests: run our optimizers and their references in lockstep.

Every equivalence test trains the same small MLP (mnist1d-mlp, hidden 32) from the same seeds on
the same minibatches, once with an optiscope optimizer and once with the reference
implementation, and compares the two *updates* at every step, teacher-forced: before each step
the reference's parameters are overwritten with ours, so both start the step from the same point
(each optimizer keeps its own state, driven by the same parameters and gradients). Rounding
differences therefore cannot compound along a chaotic trajectory, and the comparison holds on any
CPU, thread count and SIMD width; a wrong formula still shows at the first step it matters.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from optiscope.engine import EnsembleTrainer
from optiscope.optim.roles import parameters_for
from optiscope.tasks import make_task

Params = dict[str, torch.Tensor]
MakeOptimizers = Callable[[Params], list[torch.optim.Optimizer]]


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread (unless OPTISCOPE_TEST_THREADS says otherwise): the CI machine's 2
    cores are shared, and small eigh/SVD calls get far slower (not faster) with threads
    competing for them."""
    n = torch.get_num_threads()
    torch.set_num_threads(int(os.environ.get("OPTISCOPE_TEST_THREADS") or 1))
    yield
    torch.set_num_threads(n)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return (torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b).clamp(min=1e-30)).item()


def update_err(
    start: torch.Tensor, ours_after: torch.Tensor, ref_after: torch.Tensor, flips: int = 0
) -> float:
    """How far our update `ours_after - start` is from the reference's, relative to the
    reference's update, not counting one unit in the last place of the written parameter.

    Writing p + u rounds to the parameter's float spacing whatever u was: two updates that
    agree to 1e-7 can land one ulp apart, which is large next to an update of a few ulps (Prodigy
    while d is still 1e-6). Only the difference beyond that one ulp is the optimizer's.
    `flips` entries may differ freely: a sign-based update (Lion, sign descent) of a component
    that is zero up to rounding may go either way, on any CPU.
    """
    ulp = (torch.nextafter(ref_after, torch.full_like(ref_after, float("inf"))) - ref_after).abs()
    excess = ((ours_after - ref_after).abs() - ulp).clamp(min=0).flatten()
    if flips:
        excess = excess.sort().values[: max(excess.numel() - flips, 0)]
    update = torch.linalg.vector_norm(ref_after - start).clamp(min=1e-30)
    return (torch.linalg.vector_norm(excess) / update).item()


_TASKS: dict[int, Any] = {}


def small_task(hidden: int = 32):
    if hidden not in _TASKS:
        _TASKS[hidden] = make_task("mnist1d-mlp", hidden=hidden)
    return _TASKS[hidden]


class SingleRun:
    """One member trained alone, one minibatch per `step()`, with the optimizers
    `make_optimizers(params)` returns (all stepped on every batch, as a torch user steps Muon
    and AdamW side by side)."""

    def __init__(self, make_optimizers: MakeOptimizers, seed: int, task: Any = None):
        self.task = task or small_task()
        self.params = {
            k: v.clone().requires_grad_(True) for k, v in self.task.init_params(seed).items()
        }
        self.optimizers = make_optimizers(self.params)
        self.seed = torch.tensor([seed])
        for opt in self.optimizers:
            if hasattr(opt, "member_seeds"):
                opt.member_seeds = self.seed
        self.t = 0

    def step(self) -> None:
        batch = self.task.train_batch(self.seed, self.t).member(0)
        opts, params = self.optimizers, self.params

        def closure() -> torch.Tensor:
            loss = self.task.loss(params, batch)
            if torch.is_grad_enabled():  # forward-only trial points (line search) keep the grads
                for o in opts:
                    o.zero_grad()
                loss.backward()
            return loss

        if len(opts) == 1:
            opts[0].step(closure)
        else:
            closure()
            for o in opts:
                o.step()
        self.t += 1

    def values(self) -> Params:
        return {k: v.detach().clone() for k, v in self.params.items()}

    def member(self, i: int) -> Params:
        assert i == 0
        return self.values()

    def load(self, values: Params) -> None:
        with torch.no_grad():
            for k, p in self.params.items():
                p.copy_(values[k])


class EnsembleRun:
    """Our optimizer with ensemble_dims=1 through the engine: member i is slice i."""

    def __init__(self, cls: type, hp: dict[str, Any], seeds: list[int], task: Any = None):
        self.trainer = EnsembleTrainer(task or small_task(), cls, hp, seeds)

    def step(self) -> None:
        self.trainer.train_step()

    def member(self, i: int) -> Params:
        return {k: v.detach()[i].clone() for k, v in self.trainer.params.items()}


def run_single(make_optimizers: MakeOptimizers, seed: int, steps: int, task: Any = None) -> Params:
    """Free-running: `steps` steps of one member (for checks that are not against a reference)."""
    run = SingleRun(make_optimizers, seed, task)
    for _ in range(steps):
        run.step()
    return run.values()


def ours(cls: type, hp: dict[str, Any], task: Any = None) -> MakeOptimizers:
    """`make_optimizers` for an optiscope class with ensemble_dims=0, roles as the engine passes."""
    task = task or small_task()
    return lambda params: [cls(parameters_for(cls, params, task.roles()), **hp)]


def run_ensemble(cls: type, hp: dict[str, Any], seeds: list[int], steps: int, task: Any = None):
    run = EnsembleRun(cls, hp, seeds, task)
    for _ in range(steps):
        run.step()
    return {k: v.detach() for k, v in run.trainer.params.items()}, run.trainer


StateCheck = Callable[[int, Any, list[SingleRun]], None]


def lockstep(
    ours_run: SingleRun | EnsembleRun,
    references: list[SingleRun],
    steps: int,
    tol: float,
    check_state: StateCheck | None = None,
    flips: int = 0,
) -> float:
    """Teacher-forced comparison: at every step, member i of `ours_run` and `references[i]` start
    from the same parameters (ours, copied into the reference) and their updates must agree to
    `tol` (relative error per tensor). `check_state(t, ours_run, references)` may compare
    optimizer statistics after step t; `flips` entries per tensor and step may differ (see
    `update_err`). Returns the worst relative error seen (for measuring margins)."""
    for i, ref in enumerate(references):
        ref.load(ours_run.member(i))
    worst = 0.0
    for t in range(steps):
        before = [ours_run.member(i) for i in range(len(references))]
        ours_run.step()
        for i, ref in enumerate(references):
            ref.step()
            after, ref_after = ours_run.member(i), ref.values()
            for name, start in before[i].items():
                err = update_err(start, after[name], ref_after[name], flips)
                worst = max(worst, err)
                assert err < tol, (
                    f"step {t}, member {i} (seed {ref.seed.item()}), {name}: "
                    f"update differs from the reference by {err:.2e} (tolerance {tol:.0e})"
                )
            ref.load(after)
        if check_state is not None:
            check_state(t, ours_run, references)
    return worst


def assert_single_matches(
    make_ours: MakeOptimizers, make_reference: MakeOptimizers, seed: int, steps: int, tol: float,
    task: Any = None, **lockstep_options: Any,
) -> SingleRun:
    """ensemble_dims=0: our optimizer alone on `seed` takes the reference's steps."""
    run = SingleRun(make_ours, seed, task)
    lockstep(run, [SingleRun(make_reference, seed, task)], steps, tol, **lockstep_options)
    return run


def assert_ensemble_matches(
    cls: type, hp: dict[str, Any], seeds: list[int], make_reference: MakeOptimizers, steps: int,
    tol: float, task: Any = None, **lockstep_options: Any,
) -> EnsembleTrainer:
    """ensemble_dims=1: member i takes the steps of the reference trained alone on seed i."""
    run = EnsembleRun(cls, hp, seeds, task)
    references = [SingleRun(make_reference, s, task) for s in seeds]
    lockstep(run, references, steps, tol, **lockstep_options)
    return run.trainer


def member_grads(task: Any, seeds: list[int], step: int = 0) -> Params:
    """Each member's minibatch gradient at its initial point, computed member by member with
    autograd (no engine), stacked on a leading member axis."""
    batch = task.train_batch(torch.tensor(seeds), step)
    per_member = []
    for i, seed in enumerate(seeds):
        params = {k: v.requires_grad_(True) for k, v in task.init_params(seed).items()}
        task.loss(params, batch.member(i)).backward()
        per_member.append({k: v.grad for k, v in params.items()})
    return {k: torch.stack([g[k] for g in per_member]) for k in per_member[0]}


@pytest.fixture
def eq():
    """The helpers above, as one namespace (tests import nothing from conftest)."""
    return SimpleNamespace(
        rel_err=rel_err, update_err=update_err, small_task=small_task, SingleRun=SingleRun,
        EnsembleRun=EnsembleRun, run_single=run_single, ours=ours, run_ensemble=run_ensemble,
        lockstep=lockstep, assert_single_matches=assert_single_matches,
        assert_ensemble_matches=assert_ensemble_matches, member_grads=member_grads, steps=50,
        seeds=[0, 3, 7],
    )
