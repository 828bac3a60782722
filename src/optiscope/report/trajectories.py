"""Iterates of 2-D synthetic tasks, for drawing trajectories on the function's contours.

The engine stores metrics at evaluation steps, not iterates. Rather than widen the store for
every task, the report re-runs a few seeds of a 2-D synthetic cell from the stored
configuration (task, settings, optimizer, hyperparameters, seed, steps): training is a pure
function of those (optiscope.engine seeds everything from the member's seed), and a 2-D run of
a few thousand steps costs well under a second. The re-run is checked against the stored final
parameters (`params/<cell>.safetensors`) and the report prints the largest difference.

Each seed is a different instance of the function (a seeded shift and rotation; see
optiscope.tasks.synthetic), so iterates are drawn in the instance's own coordinates
z = R (x - shift), where every seed sees the same function and the same minimisers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from optiscope.report.data import CellRuns
from optiscope.store import RunStore

#: Cells longer than this are not re-run (the report says so).
MAX_STEPS = 20_000


@dataclass
class Trajectories:
    """Iterates z[seed, step, 2] in instance coordinates, with the check against the store."""

    seeds: list[int]
    z: np.ndarray
    max_abs_diff_to_stored: float | None  # None when the store holds no final parameters


def is_2d_synthetic(cell: CellRuns) -> bool:
    from optiscope.tasks.registry import make_task

    try:
        task = make_task(cell.task, **cell.task_settings)
    except Exception:
        return False
    if task.family != "synthetic" or not hasattr(task, "f"):
        return False
    shapes = {k: tuple(v.shape) for k, v in task.init_params(0).items()}
    return shapes == {"x": (2,)}


def _iterates_ensemble(task, cls, hp, seeds: list[int], steps: int) -> np.ndarray:
    from optiscope.engine.ensemble import EnsembleTrainer

    trainer = EnsembleTrainer(task, cls, hp, seeds, device="cpu")
    xs = [trainer.params["x"].detach().clone()]
    for _ in range(steps):
        if bool(trainer.frozen.all()):
            break
        trainer.train_step()
        xs.append(trainer.params["x"].detach().clone())
    return torch.stack(xs, dim=1).double().numpy()


def _iterates_loop(task, cls, hp, seeds: list[int], steps: int) -> np.ndarray:
    """One member at a time with any torch.optim.Optimizer, as the loop trainer runs it."""
    out = []
    for seed in seeds:
        params = {k: v.clone().requires_grad_(True) for k, v in task.init_params(seed).items()}
        opt = cls(list(params.values()), **hp)
        seed_t = torch.tensor([seed])
        if hasattr(opt, "member_seeds"):
            opt.member_seeds = seed_t
        xs = [params["x"].detach().clone()]
        for step in range(steps):
            batch = task.train_batch(seed_t, step).member(0)

            def closure(batch=batch):
                opt.zero_grad()
                loss = task.loss(params, batch)
                loss.backward()
                return loss

            loss = opt.step(closure)
            xs.append(params["x"].detach().clone())
            if loss is not None and not torch.isfinite(torch.as_tensor(loss)).all():
                break
        xs += [xs[-1]] * (steps + 1 - len(xs))
        out.append(torch.stack(xs))
    return torch.stack(out).double().numpy()


def rerun(cell: CellRuns, store: RunStore, n_seeds: int = 4) -> Trajectories:
    """Re-run the first `n_seeds` seeds of `cell` and return their iterates in z coordinates."""
    from optiscope.optim.registry import check_hyperparameters, is_ensemble_aware, resolve_optimizer
    from optiscope.tasks.registry import make_task

    if cell.steps > MAX_STEPS:
        raise ValueError(f"{cell.steps} steps is more than the report re-runs ({MAX_STEPS})")
    task = make_task(cell.task, **cell.task_settings)
    cls = resolve_optimizer(cell.optimizer)
    hp = check_hyperparameters(cell.optimizer, cell.hyperparameters)
    seeds = cell.seeds[:n_seeds]
    if is_ensemble_aware(cls):
        x = _iterates_ensemble(task, cls, hp, seeds, cell.steps)
    else:
        x = _iterates_loop(task, cls, hp, seeds, cell.steps)
    diff = None
    if store.params_path(cell.cell_id).exists():
        stored = store.load_params(cell.cell_id)["x"][: len(seeds)].double().numpy()
        last = x[:, -1, :]
        ok = np.isfinite(stored).all(axis=1) & np.isfinite(last).all(axis=1)
        diff = float(np.abs(stored[ok] - last[ok]).max()) if ok.any() else None
    z = np.empty_like(x)
    for i, seed in enumerate(seeds):
        rot, shift = task.instance(seed)
        z[i] = (x[i] - shift.double().numpy()) @ rot.double().numpy().T
    return Trajectories(list(seeds), z, diff)


def contour_grid(task_name: str, settings: dict, z: np.ndarray, n: int = 120):
    """(gx, gy, f) on a box around the iterates and minimisers, and the minimisers."""
    from optiscope.tasks.registry import make_task

    task = make_task(task_name, **settings)
    mins = task.minimizers().double().numpy()
    # The box holds the starts, the minimisers and the end points that stayed near them; a
    # diverging iterate runs off the plot rather than shrinking everything else to a dot.
    starts = z[:, 0, :]
    ends = z[:, -1, :]
    core = np.concatenate([starts, mins])
    core = core[np.isfinite(core).all(axis=1)]
    span = np.ptp(core, axis=0).max() if len(core) > 1 else 1.0
    near = np.isfinite(ends).all(axis=1) & (np.abs(ends - core.mean(axis=0)).max(axis=1) < 3 * span + 1)
    pts = np.concatenate([core, ends[near]])
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    pad = 0.15 * np.maximum(hi - lo, 1e-3)
    lo, hi = lo - pad, hi + pad
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], n), np.linspace(lo[1], hi[1], n))
    flat = torch.tensor(np.stack([gx.ravel(), gy.ravel()], axis=1), dtype=torch.float64)
    with torch.no_grad():
        f = torch.vmap(task.f)(flat).numpy().reshape(gx.shape)
    return (gx, gy, f), mins
