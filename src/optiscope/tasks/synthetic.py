"""Synthetic test functions with known minima, as COCO-style instances.

Each seed is an *instance*: the function is evaluated at z = R (x - x_shift) (a seeded rotation R
and shift), so the minimiser moves to x* = x_shift + R^T z* and f* is unchanged. The start point
is drawn uniformly from the function's usual domain, also from the seed. An optional
`noise` adds <xi, x> to the loss with xi ~ N(0, noise^2 I) fresh each step: an unbiased
stochastic gradient with known variance.
"""

from __future__ import annotations

import abc
from typing import ClassVar

import torch
from torch import Tensor

from optiscope.tasks.base import Batch, MemberBatch, MetricInfo, Params, Task
from optiscope.tasks.data import member_generator, seeded_normal
from optiscope.tasks.registry import register_task

SYNTHETIC_METRICS = (
    MetricInfo("f_gap", "min", "suboptimality f(x) - f*"),
    MetricInfo("dist_to_min", "min", "distance from x to the nearest global minimiser"),
    MetricInfo("basin", "min", "index of the nearest listed minimiser"),
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
    #: Optimal value f*.
    f_star: ClassVar[float] = 0.0

    dim: int
    rotate: bool
    shift: float
    noise: float

    @abc.abstractmethod
    def f(self, z: Tensor) -> Tensor:
        """The untransformed function at one point z of shape (dim,)."""

    @abc.abstractmethod
    def minimizers(self) -> Tensor:
        """(K, dim) listed global minimisers in z coordinates."""

    # -- instance ---------------------------------------------------------------------
    def instance(self, seed: int) -> tuple[Tensor, Tensor]:
        """(rotation, shift) of instance `seed`."""
        gen = member_generator(seed, "instance")
        rot = random_rotation(gen, self.dim) if self.rotate else torch.eye(self.dim)
        shift = (torch.rand(self.dim, generator=gen) * 2 - 1) * self.shift
        return rot, shift

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
        d = torch.linalg.vector_norm(z[None, :] - self.minimizers().to(z), dim=-1)
        return {
            "f_gap": self.f(z) - self.f_star,
            "dist_to_min": d.min(),  # rotation preserves distances
            "basin": d.argmin().float(),
        }

    def _cached_instances(self, seeds: Tensor) -> dict[str, Tensor]:
        key = tuple(seeds.tolist())
        cache = getattr(self, "_inst_cache", None)
        if cache is None or cache[0] != key:
            self._inst_cache = (key, self._instances(seeds))
        return self._inst_cache[1]


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
        if dim < 1 or condition < 1:
            raise ValueError("dim must be >= 1 and condition >= 1")
        self.dim, self.condition, self.rotate, self.shift, self.noise = (
            dim, condition, rotate, shift, noise,
        )
        self.eigenvalues = torch.logspace(0, torch.log10(torch.tensor(condition)).item(), dim)

    def f(self, z: Tensor) -> Tensor:
        return 0.5 * (self.eigenvalues.to(z) * z * z).sum()

    def minimizers(self) -> Tensor:
        return torch.zeros(1, self.dim)


@register_task
class Rosenbrock(SyntheticFunction):
    """f(z) = sum_i 100 (z_{i+1} - z_i^2)^2 + (1 - z_i)^2; minimum 0 at z = (1, ..., 1)."""

    name = "rosenbrock"
    description = "Rosenbrock's banana valley, any dimension >= 2"
    domain = (-2.0, 2.0)

    def __init__(
        self, *, dim: int = 2, rotate: bool = False, shift: float = 1.0, noise: float = 0.0
    ):
        if dim < 2:
            raise ValueError("rosenbrock needs dim >= 2")
        self.dim, self.rotate, self.shift, self.noise = dim, rotate, shift, noise

    def f(self, z: Tensor) -> Tensor:
        return (100 * (z[1:] - z[:-1] ** 2) ** 2 + (1 - z[:-1]) ** 2).sum()

    def minimizers(self) -> Tensor:
        return torch.ones(1, self.dim)
