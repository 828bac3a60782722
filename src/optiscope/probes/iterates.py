"""Iterates of 2-D tasks, recorded during training so the report can draw them from the store.

A task whose parameters are one point in the plane (the 2-D synthetic functions, or a user's
2-parameter task) gets an `IterateRecorder` among the engine's probe hooks. It logs the point as
two metrics, `iterate.x` and `iterate.y`, on a dense cadence (at most `max_points` steps of a
run, always the first and the last). The report then never re-runs training.

Coordinates: a task that is a seeded instance of one base function, ``f(R (x - shift))``
(`instance(seed) -> (R, shift)`, as optiscope.tasks.synthetic), is recorded in the instance's
own coordinates z = R (x - shift), where every seed sees the same function and minimisers;
any other task in its raw parameter coordinates. For the former, `contour_surface` evaluates the
base function on a grid around the recorded iterates at landing time, so the report can draw
contours without the task.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from optiscope.tasks.base import MetricInfo

#: The metrics the recorder logs (declared here, stored with every cell that has them).
ITERATE_METRICS: tuple[MetricInfo, ...] = (
    MetricInfo("iterate.x", None, "first coordinate of the 2-D iterate (instance coordinates "
               "z = R (x - shift) for a seeded instance of a base function, else the raw parameter)"),
    MetricInfo("iterate.y", None, "second coordinate of the 2-D iterate (same frame as iterate.x)"),
)
ITERATE_NAMES: tuple[str, str] = ("iterate.x", "iterate.y")


def records_iterates(task: Any) -> bool:
    """Whether the task's parameters are a single 2-D point (one tensor of shape (2,))."""
    try:
        shapes = [tuple(v.shape) for v in task.init_params(0).values()]
    except Exception:  # a task that cannot build member 0's parameters records nothing
        return False
    return shapes == [(2,)]


def in_instance_frame(task: Any) -> bool:
    """Whether iterates are recorded in instance coordinates (see the module docstring)."""
    return callable(getattr(task, "instance", None))


class IterateRecorder:
    """The engine probe hook recording each member's 2-D iterate (`iterate.x`, `iterate.y`)."""

    def __init__(self, max_points: int = 500):
        if max_points < 2:
            raise ValueError(f"max_points must be at least 2 (got {max_points})")
        self.max_points = max_points
        self._frames: tuple[tuple[int, ...], Tensor, Tensor] | None = None

    def every(self, total_steps: int) -> int:
        """Steps between records: every step for runs of up to `max_points - 1` steps."""
        return max(1, math.ceil(total_steps / (self.max_points - 1)))

    def due(self, step: int, total_steps: int) -> bool:
        return step % self.every(total_steps) == 0 or step == total_steps

    def _frame(self, task: Any, seeds: Tensor) -> tuple[Tensor, Tensor]:
        key = tuple(int(s) for s in seeds.tolist())
        if self._frames is None or self._frames[0] != key:
            parts = [task.instance(s) for s in key]
            rot = torch.stack([torch.as_tensor(p[0]) for p in parts]).double()
            shift = torch.stack([torch.as_tensor(p[1]) for p in parts]).double()
            self._frames = (key, rot, shift)
        return self._frames[1], self._frames[2]

    def __call__(
        self, task: Any, params: dict[str, Tensor], init_params: Any, seeds: Tensor, step: int
    ) -> dict[str, Tensor]:
        (x,) = params.values()
        point = x.detach().double()  # (members, 2)
        if in_instance_frame(task):
            rot, shift = self._frame(task, seeds)
            rot, shift = rot.to(point.device), shift.to(point.device)
            point = torch.einsum("mij,mj->mi", rot, point - shift)
        return {ITERATE_NAMES[0]: point[:, 0], ITERATE_NAMES[1]: point[:, 1]}


def contour_surface(task: Any, xs: np.ndarray, ys: np.ndarray, n: int = 100) -> dict[str, np.ndarray] | None:
    """The base function on an n x n grid around recorded iterates, and its listed minimisers.

    `xs`, `ys`: (members, points) recorded coordinates (NaN where none). The box holds the
    starts, the minimisers and the end points that stayed near them, so a diverging iterate
    runs off the plot rather than shrinking the rest to a dot. Returns the columns of a
    `store.schema.SURFACE` table, or None for a task without a base function (`f`,
    `minimizers`) or without finite iterates.
    """
    if not (in_instance_frame(task) and callable(getattr(task, "f", None))
            and callable(getattr(task, "minimizers", None))):
        return None
    mins = task.minimizers().double().cpu().numpy().reshape(-1, 2)
    points = np.stack([xs, ys], axis=-1)  # (members, points, 2)
    starts = np.array([_first_finite(p) for p in points]).reshape(-1, 2)
    ends = np.array([_last_finite(p) for p in points]).reshape(-1, 2)
    core = np.concatenate([starts, mins])
    core = core[np.isfinite(core).all(axis=1)]
    if not len(core):
        return None
    span = np.ptp(core, axis=0).max() if len(core) > 1 else 1.0
    near = np.isfinite(ends).all(axis=1) & (np.abs(ends - core.mean(axis=0)).max(axis=1) < 3 * span + 1)
    pts = np.concatenate([core, ends[near]])
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    pad = 0.15 * np.maximum(hi - lo, 1e-3)
    lo, hi = lo - pad, hi + pad
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], n), np.linspace(lo[1], hi[1], n))
    flat = torch.tensor(np.stack([gx.ravel(), gy.ravel()], axis=1), dtype=torch.float64)
    with torch.no_grad():
        f = torch.vmap(task.f)(flat).cpu().numpy()
    kind = np.array(["grid"] * f.size + ["minimizer"] * len(mins), dtype=object)
    return {
        "kind": kind,
        "x": np.concatenate([gx.ravel(), mins[:, 0]]),
        "y": np.concatenate([gy.ravel(), mins[:, 1]]),
        "f": np.concatenate([f, np.full(len(mins), np.nan)]),
    }


def _first_finite(p: np.ndarray) -> np.ndarray:
    ok = np.isfinite(p).all(axis=1)
    return p[ok][0] if ok.any() else np.full(2, np.nan)


def _last_finite(p: np.ndarray) -> np.ndarray:
    ok = np.isfinite(p).all(axis=1)
    return p[ok][-1] if ok.any() else np.full(2, np.nan)
