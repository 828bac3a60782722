"""Helpers for the optimizer tests: run our optimizers and their references side by side.

Every equivalence test trains the same small MLP (mnist1d-mlp, hidden 32) from the same seeds on
the same minibatches, once with an optiscope optimizer and once with the reference
implementation, and compares the parameters after the run.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from optiscope.engine import EnsembleTrainer
from optiscope.optim.roles import parameters_for
from optiscope.tasks import make_task


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: the CI machine's 2 cores are shared, and small eigh/SVD calls get
    far slower (not faster) with threads competing for them."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return (torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b).clamp(min=1e-30)).item()


_TASKS: dict[int, Any] = {}


def small_task(hidden: int = 32):
    if hidden not in _TASKS:
        _TASKS[hidden] = make_task("mnist1d-mlp", hidden=hidden)
    return _TASKS[hidden]


def run_single(
    make_optimizers: Callable[[dict[str, torch.Tensor]], list[torch.optim.Optimizer]],
    seed: int,
    steps: int,
    task: Any = None,
) -> dict[str, torch.Tensor]:
    """Train one member with the optimizers `make_optimizers(params)` returns (all stepped on
    every batch, as a torch user would step Muon and AdamW side by side)."""
    task = task or small_task()
    params = {k: v.clone().requires_grad_(True) for k, v in task.init_params(seed).items()}
    opts = make_optimizers(params)
    seed_t = torch.tensor([seed])
    for opt in opts:
        if hasattr(opt, "member_seeds"):
            opt.member_seeds = seed_t
    for step in range(steps):
        batch = task.train_batch(seed_t, step).member(0)

        def closure() -> torch.Tensor:
            for o in opts:
                o.zero_grad()
            loss = task.loss(params, batch)
            loss.backward()
            return loss

        if len(opts) == 1:
            opts[0].step(closure)
        else:
            closure()
            for o in opts:
                o.step()
    return {k: v.detach() for k, v in params.items()}


def ours(cls: type, hp: dict[str, Any], task: Any = None):
    """`make_optimizers` for an optiscope class with ensemble_dims=0, roles as the engine passes."""
    task = task or small_task()
    return lambda params: [cls(parameters_for(cls, params, task.roles()), **hp)]


def run_ensemble(cls: type, hp: dict[str, Any], seeds: list[int], steps: int, task: Any = None):
    task = task or small_task()
    trainer = EnsembleTrainer(task, cls, hp, seeds)
    for _ in range(steps):
        trainer.train_step()
    return {k: v.detach() for k, v in trainer.params.items()}, trainer


def assert_ensemble_matches(
    ensemble: dict[str, torch.Tensor],
    seeds: list[int],
    make_reference: Callable[[dict[str, torch.Tensor]], list[torch.optim.Optimizer]],
    steps: int,
    tol: float,
    task: Any = None,
) -> None:
    """Member i of `ensemble` equals the reference trained alone on seed i."""
    for i, seed in enumerate(seeds):
        ref = run_single(make_reference, seed, steps, task)
        for name, p in ref.items():
            err = rel_err(ensemble[name][i], p)
            assert err < tol, f"member {i} (seed {seed}) {name}: relative error {err:.2e}"


def assert_params_match(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], tol: float) -> None:
    for name in b:
        err = rel_err(a[name], b[name])
        assert err < tol, f"{name}: relative error {err:.2e}"


@pytest.fixture
def eq():
    """The helpers above, as one namespace (tests import nothing from conftest)."""
    return SimpleNamespace(
        rel_err=rel_err, small_task=small_task, run_single=run_single, ours=ours,
        run_ensemble=run_ensemble, assert_ensemble_matches=assert_ensemble_matches,
        assert_params_match=assert_params_match, steps=50, seeds=[0, 3, 7],
    )
