"""The synthetic test functions as one table: formula, box, listed minima, f*, labelling descent.

Each row is a `BenchmarkFunction`: the formula f(z) for one point z of shape (dim,), the box the
start point is drawn from, the listed global minimisers (and, where a function has few, its
local minima, so `basin` can tell them apart), f* and the default instance settings. Minimiser
coordinates are float64 to full precision (refined by Newton's method from the literature's
rounded values; tests/tasks/test_synthetic.py checks f(x*) = f*, a zero gradient and a PSD
Hessian at each one with torch.autograd). Values: Surjanovic & Bingham's virtual library.

`descent` = (step size, iterations) of the fixed-step gradient descent that labels an end point
with the basin it lies in (see synthetic.py); None where the listed global minimiser is the only
minimum, so every descent ends there. `descend_log` descends on log f instead (f > 0): the same
trajectories as gradient flow on f, at a speed that does not blow up where f is huge.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

Formula = Callable[[Tensor, dict[str, Tensor]], Tensor]


@dataclass(frozen=True)
class BenchmarkFunction:
    """One row of the table (any dimension unless `fixed_dim` is set)."""

    name: str
    description: str
    formula: Formula
    minimizers: Callable[[int], list[list[float]]]
    domain: tuple[float, float] = (-5.0, 5.0)
    f_star: Callable[[int], float] = lambda dim: 0.0
    local_minimizers: Callable[[int], list[list[float]]] = lambda dim: []
    fixed_dim: int | None = 2
    dim: int = 2
    rotate: bool = True
    shift: float = 1.0
    descent: tuple[float, int] | None = None
    descend_log: bool = False
    #: Extra settings of this function only: name -> (type, default).
    extra: dict[str, tuple[type, object]] = field(default_factory=dict)
    #: Constants the formula reads, built once per task from (dim, settings).
    constants: Callable[[int, dict[str, float]], dict[str, Tensor]] = lambda dim, settings: {}


def _zeros(dim: int) -> list[list[float]]:
    return [[0.0] * dim]


def _ones(dim: int) -> list[list[float]]:
    return [[1.0] * dim]


def _quadratic(z: Tensor, s: dict[str, Tensor]) -> Tensor:
    return 0.5 * (s["eigenvalues"].to(z) * z * z).sum()


def _quadratic_constants(dim: int, settings: dict[str, float]) -> dict[str, Tensor]:
    """Eigenvalues log-spaced from 1 to `condition` (float32, computed once per task)."""
    top = torch.log10(torch.tensor(settings["condition"])).item()
    return {"eigenvalues": torch.logspace(0, top, dim)}


def _ackley(z: Tensor, s: dict[str, Tensor]) -> Tensor:
    # A cone at 0: the rms uses a guarded square root whose gradient at exactly 0 is 0 (a valid
    # subgradient), so an iterate landing on the minimum does not produce NaN.
    ms = (z * z).mean()
    positive = ms > 0
    rms = torch.where(positive, torch.sqrt(torch.where(positive, ms, torch.ones_like(ms))), 0.0)
    return -20.0 * torch.exp(-0.2 * rms) - torch.exp(torch.cos(2 * math.pi * z).mean()) + 20.0 + math.e


def _griewank(z: Tensor, s: dict[str, Tensor]) -> Tensor:
    i = torch.arange(1, z.shape[-1] + 1, dtype=z.dtype, device=z.device)
    return 1.0 + (z * z).sum() / 4000.0 - torch.prod(torch.cos(z / torch.sqrt(i)))


def _levy(z: Tensor, s: dict[str, Tensor]) -> Tensor:
    w, pi = 1.0 + (z - 1.0) / 4.0, math.pi
    head = torch.sin(pi * w[0]) ** 2
    mid = ((w[:-1] - 1) ** 2 * (1 + 10 * torch.sin(pi * w[:-1] + 1) ** 2)).sum()
    return head + mid + (w[-1] - 1) ** 2 * (1 + torch.sin(2 * pi * w[-1]) ** 2)


#: Roots of d/dt (t^4 - 16 t^2 + 5 t) = 4 t^3 - 32 t + 5: the per-coordinate global and local minima.
_ST_ROOTS = np.sort(np.roots([4.0, 0.0, -32.0, 5.0]).real)
_ST_GLOBAL, _ST_LOCAL = float(_ST_ROOTS[0]), float(_ST_ROOTS[2])


def _styblinski_local(dim: int) -> list[list[float]]:
    """All 2^d - 1 non-global corners for dim <= 8 (fewest local coordinates first), else none."""
    if dim > 8:
        return []
    corners = sorted(range(1, 2**dim), key=lambda k: bin(k).count("1"))
    return [[_ST_LOCAL if (k >> i) & 1 else _ST_GLOBAL for i in range(dim)] for k in corners]


def _goldstein_price(z: Tensor, s: dict[str, Tensor]) -> Tensor:
    x, y = z[0], z[1]
    a = 1 + (x + y + 1) ** 2 * (19 - 14 * x + 3 * x**2 - 14 * y + 6 * x * y + 3 * y**2)
    b = 30 + (2 * x - 3 * y) ** 2 * (18 - 32 * x + 12 * x**2 + 48 * y - 36 * x * y + 27 * y**2)
    return a * b


_A, _B = 0.08984201310031806, -0.7126564030207396  # six-hump camel's global minima (f = -1.0316)
_C, _D = 1.7036067149699807, -0.7960835686726252  # f = -0.2155
_E, _G = 1.6071047529201974, 0.5686514548841314  # f = 2.1043
_T, _U = 1.7475523458302888, -0.8737761729151444  # three-hump camel's local minima (f = 0.2986)

FUNCTIONS: tuple[BenchmarkFunction, ...] = (
    BenchmarkFunction(
        "sphere", "sphere sum z_i^2, any dimension",
        lambda z, s: (z * z).sum(), _zeros, fixed_dim=None, dim=10, shift=2.0,
    ),
    BenchmarkFunction(
        "quadratic", "ill-conditioned quadratic, condition number a parameter",
        _quadratic, _zeros, fixed_dim=None, dim=10, shift=2.0, extra={"condition": (float, 100.0)},
        constants=_quadratic_constants,
    ),
    BenchmarkFunction(
        "rosenbrock", "Rosenbrock's banana valley, any dimension >= 2",
        lambda z, s: (100 * (z[1:] - z[:-1] ** 2) ** 2 + (1 - z[:-1]) ** 2).sum(), _ones,
        domain=(-2.0, 2.0), fixed_dim=None, rotate=False,
    ),
    BenchmarkFunction(
        "rastrigin", "Rastrigin: highly multimodal, regular lattice of local minima",
        lambda z, s: 10.0 * z.shape[-1] + (z * z - 10.0 * torch.cos(2 * math.pi * z)).sum(), _zeros,
        domain=(-5.12, 5.12), fixed_dim=None, dim=10, descent=(0.002, 400),
    ),
    BenchmarkFunction(
        "ackley", "Ackley: nearly flat outer region, many shallow local minima, cone at 0",
        _ackley, _zeros, fixed_dim=None, dim=10, descent=(0.002, 400),
    ),
    BenchmarkFunction(
        "griewank", "Griewank: product of cosines over a wide bowl",
        _griewank, _zeros, domain=(-10.0, 10.0), fixed_dim=None, dim=10, descent=(0.5, 400),
    ),
    BenchmarkFunction(
        "levy", "Levy: multimodal, minimum at (1, ..., 1)",
        _levy, _ones, domain=(-10.0, 10.0), fixed_dim=None, dim=10, descent=(0.01, 400),
    ),
    BenchmarkFunction(
        "styblinski-tang", "Styblinski-Tang: 2^d minima, one global",
        lambda z, s: 0.5 * (z**4 - 16 * z**2 + 5 * z).sum(), lambda dim: [[_ST_GLOBAL] * dim],
        f_star=lambda dim: dim * 0.5 * (_ST_GLOBAL**4 - 16 * _ST_GLOBAL**2 + 5 * _ST_GLOBAL),
        local_minimizers=_styblinski_local, fixed_dim=None, descent=(0.005, 300),
    ),
    BenchmarkFunction(
        "himmelblau", "Himmelblau: four global minima (f = 0)",
        lambda z, s: (z[0] * z[0] + z[1] - 11) ** 2 + (z[0] + z[1] * z[1] - 7) ** 2,
        lambda dim: [[3.0, 2.0], [-2.805118086952745, 3.131312518250573],
                     [-3.779310253377747, -3.2831859912861696], [3.5844283403304917, -1.8481265269644034]],
        descent=(0.002, 500),
    ),
    BenchmarkFunction(
        "beale", "Beale: flat plateaus and sharp ridges, minimum at (3, 0.5)",
        lambda z, s: (1.5 - z[0] + z[0] * z[1]) ** 2 + (2.25 - z[0] + z[0] * z[1] ** 2) ** 2
        + (2.625 - z[0] + z[0] * z[1] ** 3) ** 2,
        lambda dim: [[3.0, 0.5]], domain=(-4.5, 4.5),
    ),
    BenchmarkFunction(
        "goldstein-price", "Goldstein-Price: f* = 3 at (0, -1), three local minima",
        _goldstein_price, lambda dim: [[0.0, -1.0]], domain=(-2.0, 2.0), f_star=lambda dim: 3.0,
        local_minimizers=lambda dim: [[-0.6, -0.4], [1.8, 0.2], [1.2, 0.8]],
        descent=(0.002, 500), descend_log=True,
    ),
    BenchmarkFunction(
        "six-hump-camel", "six-hump camel: two global minima (-1.0316), four local minima",
        lambda z, s: (4 - 2.1 * z[0] ** 2 + z[0] ** 4 / 3) * z[0] ** 2 + z[0] * z[1]
        + (-4 + 4 * z[1] ** 2) * z[1] ** 2,
        lambda dim: [[_A, _B], [-_A, -_B]], domain=(-2.0, 2.0),
        f_star=lambda dim: -1.0316284534898774,
        local_minimizers=lambda dim: [[_C, _D], [-_C, -_D], [_E, _G], [-_E, -_G]],
        descent=(0.004, 500),
    ),
    BenchmarkFunction(
        "three-hump-camel", "three-hump camel: global 0 at (0, 0), two local minima",
        lambda z, s: 2 * z[0] ** 2 - 1.05 * z[0] ** 4 + z[0] ** 6 / 6 + z[0] * z[1] + z[1] ** 2,
        lambda dim: [[0.0, 0.0]], domain=(-2.0, 2.0), local_minimizers=lambda dim: [[_T, _U], [-_T, -_U]],
        descent=(0.01, 500),
    ),
    BenchmarkFunction(
        "booth", "Booth: a convex quadratic, minimum at (1, 3)",
        lambda z, s: (z[0] + 2 * z[1] - 7) ** 2 + (2 * z[0] + z[1] - 5) ** 2,
        lambda dim: [[1.0, 3.0]], domain=(-10.0, 10.0),
    ),
    BenchmarkFunction(
        "matyas", "Matyas: flat ill-conditioned bowl (condition 25), minimum at 0",
        lambda z, s: 0.26 * (z[0] * z[0] + z[1] * z[1]) - 0.48 * z[0] * z[1],
        lambda dim: [[0.0, 0.0]], domain=(-10.0, 10.0),
    ),
)
