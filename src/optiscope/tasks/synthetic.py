"""Synthetic test functions with known minima, as COCO-style instances.

Each seed is an *instance* (Hansen et al., COCO/bbob): the function is evaluated at
z = R (x - x_shift) with a seeded rotation R (Haar) and shift, so every listed minimiser moves to
x* = x_shift + R^T z* and f* is unchanged; rotation is an isometry, so distances to minimisers and
the basin a point lies in are read off in z coordinates. The start point is drawn uniformly from
the function's usual box (around the shift), also from the seed. An optional `noise` adds
<xi, x> to the loss with xi ~ N(0, noise^2 I) fresh each step: an unbiased stochastic gradient
with known variance (the NiG setting of Inan, Liu & Shehu 2024, arXiv 2403.00574).

Metrics: `f_gap` = f(x) - f*, `dist_to_min` = distance to the nearest *global* minimiser, and
`basin` = index of the nearest *listed* minimiser, globals first, then local minima where a
function has few (six-hump camel, three-hump camel, Goldstein-Price, Styblinski-Tang), so the
stationary distribution over basins can be read off an ensemble. "Nearest listed minimiser" is
a proxy for the basin of attraction, exact once an iterate has converged to a minimum.

Minimiser coordinates are listed in float64 to full precision (refined by Newton's method from
the literature's rounded values, see tests/tasks/test_synthetic.py which checks f(x*) = f* and a
zero gradient at each one with torch.autograd).
"""

from __future__ import annotations

import abc
import math
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from optiscope.tasks.base import Batch, MemberBatch, MetricInfo, Params, Task, require
from optiscope.tasks.data import member_generator, seeded_normal
from optiscope.tasks.registry import register_task

SYNTHETIC_METRICS = (
    MetricInfo("f_gap", "min", "suboptimality f(x) - f*"),
    MetricInfo("dist_to_min", "min", "distance from x to the nearest global minimiser"),
    MetricInfo("basin", "min", "index of the nearest listed minimiser (globals first, then local)"),
)


def random_rotation(gen: torch.Generator, dim: int) -> Tensor:
    """A Haar-distributed orthogonal matrix (QR of a Gaussian with the sign fix)."""
    q, r = torch.linalg.qr(torch.randn(dim, dim, generator=gen, dtype=torch.float64))
    return (q * torch.sign(torch.diagonal(r))).float()


class SyntheticFunction(Task):
    """Base for f(z) with listed minimisers z*_k, evaluated at z = R (x - shift)."""

    family = "synthetic"
    metrics = SYNTHETIC_METRICS
    #: Box the start point is drawn from (per coordinate).
    domain: ClassVar[tuple[float, float]] = (-5.0, 5.0)
    #: Optimal value f* (an instance attribute where it depends on the dimension).
    f_star: float = 0.0

    dim: int
    rotate: bool
    shift: float
    noise: float

    @abc.abstractmethod
    def f(self, z: Tensor) -> Tensor:
        """The untransformed function at one point z of shape (dim,); any float dtype."""

    @abc.abstractmethod
    def minimizers(self) -> Tensor:
        """(K, dim) listed global minimisers in z coordinates (float64)."""

    def local_minimizers(self) -> Tensor:
        """(L, dim) listed non-global local minima (float64), for basin indices; none by default."""
        return torch.zeros(0, self.dim, dtype=torch.float64)

    def basin_points(self) -> Tensor:
        """Global then local minimisers: `basin` indexes this list (built once per task)."""
        cached = getattr(self, "_basin_points", None)
        if cached is None:
            cached = torch.cat([self.minimizers().double(), self.local_minimizers()])
            self._basin_points = cached
        return cached

    def _check_common(self, *, dim_min: int = 1) -> None:
        require(self.dim >= dim_min, self.name, "dim", f"an integer >= {dim_min}", self.dim)
        require(self.shift >= 0, self.name, "shift", ">= 0", self.shift)
        require(self.noise >= 0, self.name, "noise", ">= 0", self.noise)

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

    def eval_batch(self, seeds: Tensor) -> MemberBatch:
        return MemberBatch(per_member=self._cached_instances(seeds))

    def evaluate(self, params: Params, batch: Batch) -> dict[str, Tensor]:
        z = batch["rotation"] @ (params["x"] - batch["shift"])
        n_global = self.minimizers().shape[0]
        d = torch.linalg.vector_norm(z[None, :] - self.basin_points().to(z), dim=-1)
        return {
            "f_gap": self.f(z) - self.f_star,
            "dist_to_min": d[:n_global].min(),  # rotation preserves distances
            "basin": d.argmin().float(),
        }

    def _cached_instances(self, seeds: Tensor) -> dict[str, Tensor]:
        key = tuple(seeds.tolist())
        cache = getattr(self, "_inst_cache", None)
        if cache is None or cache[0] != key:
            self._inst_cache = (key, self._instances(seeds))
        return self._inst_cache[1]


class TwoDimensionalFunction(SyntheticFunction):
    """A function defined in two dimensions only: settings rotate, shift, noise."""

    def __init__(self, *, rotate: bool = True, shift: float = 1.0, noise: float = 0.0):
        self.dim, self.rotate, self.shift, self.noise = 2, rotate, shift, noise
        self._check_common(dim_min=2)

    def _points(self, pts: list[tuple[float, float]]) -> Tensor:
        return torch.tensor(pts, dtype=torch.float64).reshape(-1, 2)


# ---------------------------------------------------------------------------------------------
# Any dimension
# ---------------------------------------------------------------------------------------------


@register_task
class Sphere(SyntheticFunction):
    """f(z) = sum_i z_i^2; minimum 0 at z = 0."""

    name = "sphere"
    description = "sphere sum z_i^2, any dimension"

    def __init__(self, *, dim: int = 10, rotate: bool = True, shift: float = 2.0, noise: float = 0.0):
        self.dim, self.rotate, self.shift, self.noise = dim, rotate, shift, noise
        self._check_common()

    def f(self, z: Tensor) -> Tensor:
        return (z * z).sum()

    def minimizers(self) -> Tensor:
        return torch.zeros(1, self.dim, dtype=torch.float64)


@register_task
class Quadratic(SyntheticFunction):
    """f(z) = 1/2 sum_i lambda_i z_i^2, eigenvalues log-spaced from 1 to `condition`."""

    name = "quadratic"
    description = "ill-conditioned quadratic, condition number a parameter"

    def __init__(
        self,
        *,
        dim: int = 10,
        condition: float = 100.0,
        rotate: bool = True,
        shift: float = 2.0,
        noise: float = 0.0,
    ):
        self.dim, self.condition, self.rotate, self.shift, self.noise = (
            dim, condition, rotate, shift, noise,
        )
        self._check_common()
        require(condition >= 1, self.name, "condition", ">= 1", condition)
        self.eigenvalues = torch.logspace(0, torch.log10(torch.tensor(condition)).item(), dim)

    def f(self, z: Tensor) -> Tensor:
        return 0.5 * (self.eigenvalues.to(z) * z * z).sum()

    def minimizers(self) -> Tensor:
        return torch.zeros(1, self.dim, dtype=torch.float64)


@register_task
class Rosenbrock(SyntheticFunction):
    """f(z) = sum_i 100 (z_{i+1} - z_i^2)^2 + (1 - z_i)^2; minimum 0 at z = (1, ..., 1)."""

    name = "rosenbrock"
    description = "Rosenbrock's banana valley, any dimension >= 2"
    domain = (-2.0, 2.0)

    def __init__(
        self, *, dim: int = 2, rotate: bool = False, shift: float = 1.0, noise: float = 0.0
    ):
        self.dim, self.rotate, self.shift, self.noise = dim, rotate, shift, noise
        self._check_common(dim_min=2)

    def f(self, z: Tensor) -> Tensor:
        return (100 * (z[1:] - z[:-1] ** 2) ** 2 + (1 - z[:-1]) ** 2).sum()

    def minimizers(self) -> Tensor:
        return torch.ones(1, self.dim, dtype=torch.float64)


@register_task
class Rastrigin(SyntheticFunction):
    """f(z) = 10 d + sum_i (z_i^2 - 10 cos(2 pi z_i)); minimum 0 at 0, a lattice of local minima."""

    name = "rastrigin"
    description = "Rastrigin: highly multimodal, regular lattice of local minima"
    domain = (-5.12, 5.12)

    def __init__(self, *, dim: int = 10, rotate: bool = True, shift: float = 1.0, noise: float = 0.0):
        self.dim, self.rotate, self.shift, self.noise = dim, rotate, shift, noise
        self._check_common()

    def f(self, z: Tensor) -> Tensor:
        return 10.0 * self.dim + (z * z - 10.0 * torch.cos(2 * math.pi * z)).sum()

    def minimizers(self) -> Tensor:
        return torch.zeros(1, self.dim, dtype=torch.float64)


@register_task
class Ackley(SyntheticFunction):
    """Ackley: -20 exp(-0.2 rms(z)) - exp(mean cos(2 pi z)) + 20 + e; minimum 0 at 0.

    The function has a cone-shaped kink at its minimum (not differentiable there); the rms is
    computed with a guarded square root whose gradient at exactly 0 is 0, a valid subgradient,
    so an iterate landing on the minimum does not produce NaN.
    """

    name = "ackley"
    description = "Ackley: nearly flat outer region, many shallow local minima, cone at 0"

    def __init__(self, *, dim: int = 10, rotate: bool = True, shift: float = 1.0, noise: float = 0.0):
        self.dim, self.rotate, self.shift, self.noise = dim, rotate, shift, noise
        self._check_common()

    def f(self, z: Tensor) -> Tensor:
        ms = (z * z).mean()
        positive = ms > 0
        rms = torch.where(positive, torch.sqrt(torch.where(positive, ms, torch.ones_like(ms))), 0.0)
        return (
            -20.0 * torch.exp(-0.2 * rms)
            - torch.exp(torch.cos(2 * math.pi * z).mean())
            + 20.0
            + math.e
        )

    def minimizers(self) -> Tensor:
        return torch.zeros(1, self.dim, dtype=torch.float64)


@register_task
class Griewank(SyntheticFunction):
    """f(z) = 1 + sum z_i^2 / 4000 - prod cos(z_i / sqrt(i)); minimum 0 at 0."""

    name = "griewank"
    description = "Griewank: product of cosines over a wide bowl"
    domain = (-10.0, 10.0)

    def __init__(self, *, dim: int = 10, rotate: bool = True, shift: float = 1.0, noise: float = 0.0):
        self.dim, self.rotate, self.shift, self.noise = dim, rotate, shift, noise
        self._check_common()

    def f(self, z: Tensor) -> Tensor:
        i = torch.arange(1, self.dim + 1, dtype=z.dtype, device=z.device)
        return 1.0 + (z * z).sum() / 4000.0 - torch.prod(torch.cos(z / torch.sqrt(i)))

    def minimizers(self) -> Tensor:
        return torch.zeros(1, self.dim, dtype=torch.float64)


@register_task
class Levy(SyntheticFunction):
    """Levy (Surjanovic & Bingham's form) with w = 1 + (z - 1)/4; minimum 0 at z = (1, ..., 1)."""

    name = "levy"
    description = "Levy: multimodal, minimum at (1, ..., 1)"
    domain = (-10.0, 10.0)

    def __init__(self, *, dim: int = 10, rotate: bool = True, shift: float = 1.0, noise: float = 0.0):
        self.dim, self.rotate, self.shift, self.noise = dim, rotate, shift, noise
        self._check_common()

    def f(self, z: Tensor) -> Tensor:
        w = 1.0 + (z - 1.0) / 4.0
        pi = math.pi
        head = torch.sin(pi * w[0]) ** 2
        mid = ((w[:-1] - 1) ** 2 * (1 + 10 * torch.sin(pi * w[:-1] + 1) ** 2)).sum()
        tail = (w[-1] - 1) ** 2 * (1 + torch.sin(2 * pi * w[-1]) ** 2)
        return head + mid + tail

    def minimizers(self) -> Tensor:
        return torch.ones(1, self.dim, dtype=torch.float64)


#: Roots of d/dt (t^4 - 16 t^2 + 5 t) = 4 t^3 - 32 t + 5: the per-coordinate global and local minima.
_ST_ROOTS = np.sort(np.roots([4.0, 0.0, -32.0, 5.0]).real)
_ST_GLOBAL, _ST_LOCAL = float(_ST_ROOTS[0]), float(_ST_ROOTS[2])


@register_task
class StyblinskiTang(SyntheticFunction):
    """f(z) = 1/2 sum (z_i^4 - 16 z_i^2 + 5 z_i); minimum -39.166166 d at z_i = -2.903534.

    Separable with two minima per coordinate, so 2^d local minima; for dim <= 8 all of them are
    listed (the global one first) and `basin` tells which corner an iterate settled in.
    """

    name = "styblinski-tang"
    description = "Styblinski-Tang: 2^d minima, one global"

    def __init__(self, *, dim: int = 2, rotate: bool = True, shift: float = 1.0, noise: float = 0.0):
        self.dim, self.rotate, self.shift, self.noise = dim, rotate, shift, noise
        self._check_common()
        t = _ST_GLOBAL
        self.f_star = self.dim * 0.5 * (t**4 - 16 * t**2 + 5 * t)

    def f(self, z: Tensor) -> Tensor:
        return 0.5 * (z**4 - 16 * z**2 + 5 * z).sum()

    def minimizers(self) -> Tensor:
        return torch.full((1, self.dim), _ST_GLOBAL, dtype=torch.float64)

    def local_minimizers(self) -> Tensor:
        if self.dim > 8:
            return torch.zeros(0, self.dim, dtype=torch.float64)
        # Corners ordered by the number of coordinates at the local root (fewest first).
        bits = torch.tensor(
            [[(k >> i) & 1 for i in range(self.dim)] for k in range(1, 2**self.dim)],
            dtype=torch.float64,
        )
        bits = bits[torch.argsort(bits.sum(1), stable=True)]
        return torch.where(bits > 0, _ST_LOCAL, _ST_GLOBAL)


# ---------------------------------------------------------------------------------------------
# Two dimensions
# ---------------------------------------------------------------------------------------------


@register_task
class Himmelblau(TwoDimensionalFunction):
    """(x^2 + y - 11)^2 + (x + y^2 - 7)^2: four global minima with f = 0."""

    name = "himmelblau"
    description = "Himmelblau: four global minima (f = 0)"

    def f(self, z: Tensor) -> Tensor:
        x, y = z[0], z[1]
        return (x * x + y - 11) ** 2 + (x + y * y - 7) ** 2

    def minimizers(self) -> Tensor:
        return self._points(
            [
                (3.0, 2.0),
                (-2.805118086952745, 3.131312518250573),
                (-3.779310253377747, -3.2831859912861696),
                (3.5844283403304917, -1.8481265269644034),
            ]
        )


@register_task
class Beale(TwoDimensionalFunction):
    """(1.5 - x + xy)^2 + (2.25 - x + xy^2)^2 + (2.625 - x + xy^3)^2; minimum 0 at (3, 0.5)."""

    name = "beale"
    description = "Beale: flat plateaus and sharp ridges, minimum at (3, 0.5)"
    domain = (-4.5, 4.5)

    def f(self, z: Tensor) -> Tensor:
        x, y = z[0], z[1]
        return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2

    def minimizers(self) -> Tensor:
        return self._points([(3.0, 0.5)])


@register_task
class GoldsteinPrice(TwoDimensionalFunction):
    """Goldstein-Price: minimum 3 at (0, -1); local minima 30, 84 and 840 listed for basins."""

    name = "goldstein-price"
    description = "Goldstein-Price: f* = 3 at (0, -1), three local minima"
    domain = (-2.0, 2.0)
    f_star = 3.0

    def f(self, z: Tensor) -> Tensor:
        x, y = z[0], z[1]
        a = 1 + (x + y + 1) ** 2 * (19 - 14 * x + 3 * x**2 - 14 * y + 6 * x * y + 3 * y**2)
        b = 30 + (2 * x - 3 * y) ** 2 * (18 - 32 * x + 12 * x**2 + 48 * y - 36 * x * y + 27 * y**2)
        return a * b

    def minimizers(self) -> Tensor:
        return self._points([(0.0, -1.0)])

    def local_minimizers(self) -> Tensor:
        return self._points([(-0.6, -0.4), (1.8, 0.2), (1.2, 0.8)])


@register_task
class SixHumpCamel(TwoDimensionalFunction):
    """(4 - 2.1x^2 + x^4/3) x^2 + xy + (-4 + 4y^2) y^2: two global minima -1.0316, four local."""

    name = "six-hump-camel"
    description = "six-hump camel: two global minima (-1.0316), four local minima"
    domain = (-2.0, 2.0)
    f_star = -1.0316284534898774

    def f(self, z: Tensor) -> Tensor:
        x, y = z[0], z[1]
        return (4 - 2.1 * x**2 + x**4 / 3) * x**2 + x * y + (-4 + 4 * y**2) * y**2

    def minimizers(self) -> Tensor:
        a, b = 0.08984201310031806, -0.7126564030207396
        return self._points([(a, b), (-a, -b)])

    def local_minimizers(self) -> Tensor:
        c, d = 1.7036067149699807, -0.7960835686726252  # f = -0.2155
        e, g = 1.6071047529201974, 0.5686514548841314  # f = 2.1043
        return self._points([(c, d), (-c, -d), (e, g), (-e, -g)])


@register_task
class ThreeHumpCamel(TwoDimensionalFunction):
    """2x^2 - 1.05x^4 + x^6/6 + xy + y^2: global minimum 0 at (0, 0), two local minima (0.2986)."""

    name = "three-hump-camel"
    description = "three-hump camel: global 0 at (0, 0), two local minima"
    domain = (-2.0, 2.0)

    def f(self, z: Tensor) -> Tensor:
        x, y = z[0], z[1]
        return 2 * x**2 - 1.05 * x**4 + x**6 / 6 + x * y + y**2

    def minimizers(self) -> Tensor:
        return self._points([(0.0, 0.0)])

    def local_minimizers(self) -> Tensor:
        a, b = 1.7475523458302888, -0.8737761729151444
        return self._points([(a, b), (-a, -b)])


@register_task
class Booth(TwoDimensionalFunction):
    """(x + 2y - 7)^2 + (2x + y - 5)^2: a quadratic with minimum 0 at (1, 3)."""

    name = "booth"
    description = "Booth: a convex quadratic, minimum at (1, 3)"
    domain = (-10.0, 10.0)

    def f(self, z: Tensor) -> Tensor:
        x, y = z[0], z[1]
        return (x + 2 * y - 7) ** 2 + (2 * x + y - 5) ** 2

    def minimizers(self) -> Tensor:
        return self._points([(1.0, 3.0)])


@register_task
class Matyas(TwoDimensionalFunction):
    """0.26 (x^2 + y^2) - 0.48 xy: a flat, poorly conditioned bowl, minimum 0 at (0, 0)."""

    name = "matyas"
    description = "Matyas: flat ill-conditioned bowl (condition 25), minimum at 0"
    domain = (-10.0, 10.0)

    def f(self, z: Tensor) -> Tensor:
        x, y = z[0], z[1]
        return 0.26 * (x * x + y * y) - 0.48 * x * y

    def minimizers(self) -> Tensor:
        return self._points([(0.0, 0.0)])


__all__ = ["SYNTHETIC_METRICS", "SyntheticFunction", "TwoDimensionalFunction", "random_rotation"]