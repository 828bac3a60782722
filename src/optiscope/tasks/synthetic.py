"""Synthetic test functions with known minima, as COCO-style instances.

Each seed is an *instance* (Hansen et al., COCO/bbob): the function is evaluated at
z = R (x - x_shift) with a seeded rotation R (Haar) and shift, so every listed minimiser moves to
x* = x_shift + R^T z* and f* is unchanged; rotation is an isometry, so distances to minimisers and
the basin a point lies in are read off in z coordinates. The start point is drawn uniformly from
the function's usual box (around the shift), also from the seed. An optional `noise` adds
<xi, x> to the loss with xi ~ N(0, noise^2 I) fresh each step: an unbiased stochastic gradient
with known variance (the NiG setting of Inan, Liu & Shehu 2024, arXiv 2403.00574).

The functions themselves are rows of one table (benchmark_functions.py); this module turns each
row into a registered task class whose settings are the row's (dim where the function has any
dimension, its extra settings, rotate, shift, noise).

Metrics: `f_gap` = f(x) - f*; `dist_to_min` = distance to the nearest *global* minimiser;
`basin` (categorical) = which listed minimiser (globals first, then local minima where a function
has few) a deterministic descent from x ends at, -1 if it ends at none of them; `converged` = 1
if x itself is within the tolerance of that end point (a stationary point), else 0.

Why a descent and not the nearest minimiser: an unconverged point on the far side of a ridge is
nearer to one minimum but flows into another. The descent is fixed-step gradient descent (each
step's length capped at 2% of the box width, so a point far outside the box cannot overshoot)
with a per-function step size and iteration count listed in the table, run inside `evaluate`
with torch.func so it vmaps over members; tests/tasks/test_basins.py checks it against gradient
flow integrated by scipy from random points in and around the box. Functions whose listed
global minimiser is their only minimum skip the descent (every descent ends there). The
tolerance for `basin` and `converged` is 1% of the box width.
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

import torch
from torch import Tensor
from torch.func import grad

from optiscope.tasks.base import Batch, MemberBatch, MetricInfo, Params, Task, require
from optiscope.tasks.benchmark_functions import FUNCTIONS, BenchmarkFunction
from optiscope.core.rng import member_generator, seeded_normal
from optiscope.tasks.registry import register_task

SYNTHETIC_METRICS = (
    MetricInfo("f_gap", "min", "suboptimality f(x) - f*"),
    MetricInfo("dist_to_min", "min", "distance from x to the nearest global minimiser"),
    MetricInfo("basin", None, "listed minimiser a gradient descent from x ends at (globals first; -1: none)",
               "index"),
    MetricInfo("converged", "max", "1 if x is within 1% of the box width of where its descent ends",
               "fraction"),
)

#: Largest move of one labelling-descent step, as a fraction of the box width.
STEP_CAP = 0.02
#: `basin` and `converged` tolerance, as a fraction of the box width.
TOLERANCE = 0.01


def random_rotation(gen: torch.Generator, dim: int) -> Tensor:
    """A Haar-distributed orthogonal matrix (QR of a Gaussian with the sign fix)."""
    q, r = torch.linalg.qr(torch.randn(dim, dim, generator=gen, dtype=torch.float64))
    return (q * torch.sign(torch.diagonal(r))).float()


class SyntheticFunction(Task):
    """f(z) from a table row, with listed minimisers z*_k, evaluated at z = R (x - shift)."""

    family = "synthetic"
    metrics = SYNTHETIC_METRICS
    #: A member is a point in R^dim, but its evaluation runs the labelling descent (hundreds of
    #: small steps), which in chunks of 8 dominated a study's time; 256 points at once are a
    #: few kilobytes. Labels and metrics do not depend on the chunking (tests/tasks/test_basins.py).
    eval_chunk = 256
    function: ClassVar[BenchmarkFunction]
    dim: int
    rotate: bool
    shift: float
    noise: float

    def _configure(self, settings: dict[str, Any]) -> None:
        fn = self.function
        self.dim = fn.fixed_dim or settings.pop("dim")
        for key, value in settings.items():
            setattr(self, key, value)
        dim_min = 2 if fn.fixed_dim or fn.name == "rosenbrock" else 1
        require(self.dim >= dim_min, self.name, "dim", f"an integer >= {dim_min}", self.dim)
        require(self.shift >= 0, self.name, "shift", ">= 0", self.shift)
        require(self.noise >= 0, self.name, "noise", ">= 0", self.noise)
        if "condition" in fn.extra:
            require(self.condition >= 1, self.name, "condition", ">= 1", self.condition)
        self.domain = fn.domain
        self.f_star = fn.f_star(self.dim)
        self.constants = fn.constants(self.dim, settings)

    def f(self, z: Tensor) -> Tensor:
        """The untransformed function at one point z of shape (dim,); any float dtype."""
        return self.function.formula(z, self.constants)

    def minimizers(self) -> Tensor:
        """(K, dim) listed global minimisers in z coordinates (float64)."""
        return torch.tensor(self.function.minimizers(self.dim), dtype=torch.float64).reshape(-1, self.dim)

    def local_minimizers(self) -> Tensor:
        """(L, dim) listed non-global local minima (float64), for basin indices."""
        return torch.tensor(self.function.local_minimizers(self.dim), dtype=torch.float64).reshape(-1, self.dim)

    def basin_points(self) -> Tensor:
        """Global then local minimisers: `basin` indexes this list (built once per task)."""
        cached = getattr(self, "_basin_points", None)
        if cached is None:
            cached = torch.cat([self.minimizers(), self.local_minimizers()])
            self._basin_points = cached
        return cached

    # -- instance ---------------------------------------------------------------------
    def instance(self, seed: int) -> tuple[Tensor, Tensor]:
        """(rotation, shift) of instance `seed`."""
        gen = member_generator(seed, "instance")
        rot = random_rotation(gen, self.dim) if self.rotate else torch.eye(self.dim)
        shift = (torch.rand(self.dim, generator=gen) * 2 - 1) * self.shift
        return rot, shift

    def minimizers_x(self, seed: int) -> Tensor:
        """Instance `seed`'s listed global minimisers in x coordinates: shift + R^T z*."""
        rot, shift = self.instance(seed)
        return shift.double() + self.minimizers().double() @ rot.double()

    def _instances(self, seeds: Tensor) -> dict[str, Tensor]:
        parts = [self.instance(int(s)) for s in seeds.tolist()]
        return {
            "rotation": torch.stack([p[0] for p in parts]),
            "shift": torch.stack([p[1] for p in parts]),
        }

    def _cached_instances(self, seeds: Tensor) -> dict[str, Tensor]:
        key = tuple(seeds.tolist())
        cache = getattr(self, "_inst_cache", None)
        if cache is None or cache[0] != key:
            self._inst_cache = (key, self._instances(seeds))
        return self._inst_cache[1]

    def init_params(self, seed: int) -> Params:
        lo, hi = self.domain
        gen = member_generator(seed, "init")
        _, shift = self.instance(seed)
        return {"x": shift + lo + (hi - lo) * torch.rand(self.dim, generator=gen)}

    def roles(self) -> dict[str, str]:
        return {"x": "vector"}

    def value(self, params: Params, batch: Batch) -> Tensor:
        z = batch["rotation"] @ (params["x"] - batch["shift"])
        return self.f(z)

    # -- labels ---------------------------------------------------------------------------
    def descend(self, z: Tensor) -> Tensor:
        """Where the labelling descent from z (z coordinates) ends; pure and vmappable.

        Without a listed descent the function has one minimum, the first listed point."""
        if self.function.descent is None:
            return self.basin_points()[0].to(z)
        step, iterations = self.function.descent
        objective = (lambda u: torch.log(self.f(u))) if self.function.descend_log else self.f
        gradient = grad(objective)
        cap = STEP_CAP * (self.domain[1] - self.domain[0])
        for _ in range(iterations):
            move = step * gradient(z)
            length = torch.linalg.vector_norm(move)
            z = z - move * torch.clamp(cap / length.clamp_min(1e-30), max=1.0)
        return z

    def labels(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """(basin, converged) of the point z in z coordinates."""
        tol = TOLERANCE * (self.domain[1] - self.domain[0])
        end = self.descend(z)
        d_end = torch.linalg.vector_norm(end[None, :] - self.basin_points().to(z), dim=-1)
        basin = torch.where(d_end.min() <= tol, d_end.argmin().to(z.dtype), -1.0)
        converged = (torch.linalg.vector_norm(z - end) <= tol).to(z.dtype)
        return basin, converged

    # -- Task interface -----------------------------------------------------------------
    def loss(self, params: Params, batch: Batch) -> Tensor:
        out = self.value(params, batch)
        if "noise" in batch:
            out = out + (batch["noise"] * params["x"]).sum()
        return out

    def train_batch(self, seeds: Tensor, step: int) -> MemberBatch:
        per = self._cached_instances(seeds)
        if self.noise > 0:
            per = {**per, "noise": self.noise * seeded_normal(seeds, "task-noise", step, (self.dim,))}
        return MemberBatch(per_member=per)

    def eval_batch(self, seeds: Tensor, step: int) -> MemberBatch:
        return MemberBatch(per_member=self._cached_instances(seeds))

    def evaluate(self, params: Params, batch: Batch) -> dict[str, Tensor]:
        z = batch["rotation"] @ (params["x"] - batch["shift"])
        n_global = self.minimizers().shape[0]
        d = torch.linalg.vector_norm(z[None, :] - self.basin_points()[:n_global].to(z), dim=-1)
        basin, converged = self.labels(z)
        return {
            "f_gap": self.f(z) - self.f_star,
            "dist_to_min": d.min(),  # rotation preserves distances
            "basin": basin,
            "converged": converged,
        }


def _settings_of(fn: BenchmarkFunction) -> list[inspect.Parameter]:
    """The row's settings as keyword-only parameters: dim, extras, rotate, shift, noise."""
    kw = inspect.Parameter.KEYWORD_ONLY
    out = [] if fn.fixed_dim else [inspect.Parameter("dim", kw, default=fn.dim, annotation=int)]
    out += [inspect.Parameter(k, kw, default=d, annotation=t) for k, (t, d) in fn.extra.items()]
    return out + [
        inspect.Parameter("rotate", kw, default=fn.rotate, annotation=bool),
        inspect.Parameter("shift", kw, default=fn.shift, annotation=float),
        inspect.Parameter("noise", kw, default=0.0, annotation=float),
    ]


def _task_class(fn: BenchmarkFunction) -> type[SyntheticFunction]:
    """A registered task class for one row; its ``__init__`` signature lists the row's settings
    (what configs may set and `optiscope list tasks` shows)."""
    params = _settings_of(fn)

    def __init__(self: SyntheticFunction, **settings: Any) -> None:
        self._configure({p.name: settings.get(p.name, p.default) for p in params})

    self_param = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    __init__.__signature__ = inspect.Signature([self_param, *params])  # type: ignore[attr-defined]
    __init__.__annotations__ = {p.name: p.annotation for p in params} | {"return": None}
    class_name = "".join(part.capitalize() for part in fn.name.split("-"))
    cls = type(class_name, (SyntheticFunction,), {
        "__init__": __init__, "__doc__": fn.description, "__module__": __name__,
        "name": fn.name, "description": fn.description, "function": fn,
    })
    return register_task(cls)


TASK_CLASSES: dict[str, type[SyntheticFunction]] = {fn.name: _task_class(fn) for fn in FUNCTIONS}

__all__ = ["SYNTHETIC_METRICS", "TASK_CLASSES", "SyntheticFunction", "random_rotation"]
