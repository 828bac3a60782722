"""Norms on parameter tensors and their duality maps: the geometry of steepest descent.

Bernstein & Newhouse (2024, "Old optimizer, new norm", arXiv 2409.20325): steepest descent under
a norm ||.|| with sharpness lambda steps

    dw = argmin_dw [ <g, dw> + (lambda / 2) ||dw||^2 ] = -(||g||_* / lambda) * dualize(g),

where ||.||_* is the dual norm and `dualize(g) = argmax_{||t|| = 1} <g, t>` is the unit-norm
direction attaining it (<g, dualize(g)> = ||g||_*). Each `Norm` here computes the norm, the dual
norm and `dualize`, per ensemble member when `ensemble_dims=1` (axis 0 indexes members), as
modula's modules do. Under l2 this is (normalised) gradient descent, under l_inf sign descent
(Adam with its averages off), under the spectral norm U V^T (Shampoo with its accumulators off).

Matrix norms act on each member's tensor viewed as a matrix (out, in): a 2-D tensor is itself, a
vector of length n is an (n, 1) matrix (the map R -> R^n), a scalar is (1, 1), and a tensor with
more axes (a conv filter) is flattened to (shape[0], rest), as Muon does.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable
from typing import ClassVar

import torch
from torch import Tensor

from optiscope.optim.hyperparameters import HyperparameterError

#: Muon's quintic Newton-Schulz coefficients (Jordan et al. 2024, KellerJordan/Muon): chosen to
#: maximise the slope at zero, so 5 steps push every singular value into about (0.5, 1.5).
MUON_COEFFICIENTS: tuple[float, float, float] = (3.4445, -4.7750, 2.0315)
#: Singular-value band of the Muon iteration's output (Bernstein & Newhouse 2024, section on Muon;
#: torch.optim.Muon's documentation). Inputs are normalised by their Frobenius norm, so tiny singular values
#: (below about 1e-3 of the largest) may stay below the band: the iteration is built for speed.
NS_BAND: tuple[float, float] = (0.5, 1.5)

_DTYPES = {"bfloat16": torch.bfloat16, "float32": torch.float32, "float64": torch.float64}


def dtype_named(name: str) -> torch.dtype:
    """The dtype called `name` ('bfloat16', 'float32', 'float64'), for Muon's `ns_dtype`."""
    if name not in _DTYPES:
        raise HyperparameterError(f"ns_dtype must be one of {sorted(_DTYPES)}, got {name!r}")
    return _DTYPES[name]


def newton_schulz(
    g: Tensor,
    steps: int = 5,
    coefficients: tuple[float, float, float] = MUON_COEFFICIENTS,
    *,
    eps: float | Tensor = 1e-7,
    dtype: torch.dtype = torch.bfloat16,
) -> Tensor:
    """Approximate U V^T of each matrix in `g` (shape (..., m, n)) by the quintic iteration.

    X0 = G / ||G||_F;  X <- a X + (b A + c A^2) X  with A = X X^T  (Bernstein & Newhouse 2024;
    Jordan et al. 2024). Follows torch.optim.Muon operation by operation (transpose when tall,
    Frobenius norm clamped at eps, `addmm`), batched over leading axes with `baddbmm`, so one
    call orthogonalises every member at once. Returns `dtype` (bfloat16 by default, as Muon).
    A tensor `eps` holds one value per leading index of `g` (per member).
    """
    if g.dim() < 2:
        raise ValueError(f"newton_schulz needs matrices (..., m, n), got shape {tuple(g.shape)}")
    a, b, c = coefficients
    x = g.to(dtype)
    tall = g.size(-2) > g.size(-1)
    if tall:
        x = x.mT
    batch = x.shape[:-2]
    x = x.reshape(-1, *x.shape[-2:]) if batch else x
    if isinstance(eps, Tensor):
        eps = eps.to(device=x.device, dtype=x.dtype).reshape(-1, 1, 1) if batch else float(eps)
    if x.dim() == 2:
        x = x.div(x.norm().clamp(min=eps))
        for _ in range(steps):
            gram = x @ x.T
            update = torch.addmm(gram, gram, gram, beta=b, alpha=c)
            x = torch.addmm(x, update, x, beta=a)
    else:
        norms = torch.linalg.vector_norm(x, dim=(-2, -1), keepdim=True)
        x = x.div(norms.clamp(min=eps))
        for _ in range(steps):
            gram = torch.bmm(x, x.mT)
            update = torch.baddbmm(gram, gram, gram, beta=b, alpha=c)
            x = torch.baddbmm(x, update, x, beta=a)
        x = x.reshape(*batch, *x.shape[-2:])
    return x.mT if tall else x


def polar_factor(g: Tensor) -> Tensor:
    """Exact U V^T of each matrix in `g` (..., m, n) from the thin SVD (batched).

    Directions of (numerically) zero singular values are dropped, so a rank-r gradient gives
    U_r V_r^T (and a zero gradient 0): still unit spectral norm and attaining the nuclear norm,
    and equal to Shampoo's pseudo-inverse-root update.
    """
    u, s, vh = torch.linalg.svd(g, full_matrices=False)
    tol = s.amax(dim=-1, keepdim=True) * max(g.shape[-2:]) * torch.finfo(s.dtype).eps
    keep = (s > tol).to(g.dtype)
    return (u * keep.unsqueeze(-2)) @ vh


# -- views --------------------------------------------------------------------------------
def member_dims(t: Tensor, ensemble_dims: int) -> tuple[int, ...]:
    return tuple(range(ensemble_dims, t.dim()))


def as_matrix(t: Tensor, ensemble_dims: int) -> Tensor:
    """Each member's tensor as a matrix (out, in); see the module docstring."""
    lead = t.shape[:ensemble_dims]
    m = t.shape[ensemble_dims:]
    if len(m) == 0:
        shape = (1, 1)
    elif len(m) == 1:
        shape = (m[0], 1)
    else:
        shape = (m[0], math.prod(m[1:]))
    return t.reshape(*lead, *shape)


def _broadcast(values: Tensor, like: Tensor) -> Tensor:
    return values.reshape(values.shape + (1,) * (like.dim() - values.dim()))


def _safe_div(num: Tensor, den: Tensor) -> Tensor:
    """num / den, and 0 where den is 0 (the duality map of a zero gradient is 0)."""
    return torch.where(den > 0, num / torch.where(den > 0, den, torch.ones_like(den)), 0.0)


class Norm(abc.ABC):
    """A norm on (each member's) parameter tensor, with its dual norm and duality map.

    All methods take `ensemble_dims` (0 or 1); norms come back with shape (S,) or ().
    """

    #: Name used in `norm_map` and listings.
    name: ClassVar[str]
    #: One line saying what it is and which optimizer it gives.
    description: ClassVar[str]

    @abc.abstractmethod
    def norm(self, t: Tensor, ensemble_dims: int = 0) -> Tensor:
        """||t||, per member."""

    @abc.abstractmethod
    def dual_norm(self, g: Tensor, ensemble_dims: int = 0) -> Tensor:
        """||g||_* = max_{||t|| <= 1} <g, t>, per member."""

    @abc.abstractmethod
    def dualize(self, g: Tensor, ensemble_dims: int = 0) -> Tensor:
        """The unit-norm direction d with <g, d> = ||g||_* (0 for g = 0); shape of `g`."""

    def duality_map(self, g: Tensor, ensemble_dims: int = 0) -> Tensor:
        """||g||_* dualize(g): the steepest-descent step for sharpness lambda = 1."""
        d = self.dualize(g, ensemble_dims)
        return d * _broadcast(self.dual_norm(g, ensemble_dims), d)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Euclidean(Norm):
    """l2 (Frobenius) norm: self-dual; dualize(g) = g / ||g||_2, normalised gradient descent."""

    name = "euclidean"
    description = "l2 / Frobenius; self-dual; gives (normalised) gradient descent"

    def norm(self, t: Tensor, ensemble_dims: int = 0) -> Tensor:
        return torch.linalg.vector_norm(t, dim=member_dims(t, ensemble_dims))

    def dual_norm(self, g: Tensor, ensemble_dims: int = 0) -> Tensor:
        return self.norm(g, ensemble_dims)

    def dualize(self, g: Tensor, ensemble_dims: int = 0) -> Tensor:
        return _safe_div(g, _broadcast(self.norm(g, ensemble_dims), g))


class Infinity(Norm):
    """l_inf (max-of-max) norm; dual l1; dualize(g) = sign(g): sign descent."""

    name = "infinity"
    description = "l_inf (max-of-max); dual l1; gives sign descent (Adam with betas = 0)"

    def norm(self, t: Tensor, ensemble_dims: int = 0) -> Tensor:
        return torch.linalg.vector_norm(t, ord=math.inf, dim=member_dims(t, ensemble_dims))

    def dual_norm(self, g: Tensor, ensemble_dims: int = 0) -> Tensor:
        return torch.linalg.vector_norm(g, ord=1, dim=member_dims(g, ensemble_dims))

    def dualize(self, g: Tensor, ensemble_dims: int = 0) -> Tensor:
        return torch.sign(g)


class RMS(Norm):
    """RMS norm ||v||_2 / sqrt(n) (vectors: biases, gains); dual sqrt(n) ||g||_2."""

    name = "rms"
    description = "RMS ||v||_2 / sqrt(n), for vectors; dualize = sqrt(n) g / ||g||_2"

    def _n(self, t: Tensor, ensemble_dims: int) -> int:
        return max(1, math.prod(t.shape[ensemble_dims:]))

    def norm(self, t: Tensor, ensemble_dims: int = 0) -> Tensor:
        return Euclidean().norm(t, ensemble_dims) / math.sqrt(self._n(t, ensemble_dims))

    def dual_norm(self, g: Tensor, ensemble_dims: int = 0) -> Tensor:
        return Euclidean().norm(g, ensemble_dims) * math.sqrt(self._n(g, ensemble_dims))

    def dualize(self, g: Tensor, ensemble_dims: int = 0) -> Tensor:
        return Euclidean().dualize(g, ensemble_dims) * math.sqrt(self._n(g, ensemble_dims))


class Spectral(Norm):
    """Spectral norm (largest singular value); dual nuclear (tr Sigma); dualize = U V^T.

    `method`: 'svd' (exact) or 'newton_schulz' (Muon's iteration, approximate by design).
    """

    name = "spectral"
    description = "spectral (l2 -> l2 operator); dual nuclear; dualize U V^T: spectral descent"

    def __init__(
        self, method: str = "svd", *, ns_steps: int = 5, dtype: torch.dtype = torch.float32
    ):
        if method not in ("svd", "newton_schulz"):
            raise HyperparameterError(
                f"spectral_method must be 'svd' or 'newton_schulz', got {method!r}"
            )
        self.method, self.ns_steps, self.dtype = method, ns_steps, dtype

    def __repr__(self) -> str:
        return f"{type(self).__name__}(method={self.method!r})"

    def _scale(self, m: Tensor) -> float:
        """Multiplier on the unit-spectral-norm direction (1 here; RMS->RMS overrides)."""
        return 1.0

    def norm(self, t: Tensor, ensemble_dims: int = 0) -> Tensor:
        m = as_matrix(t, ensemble_dims)
        return torch.linalg.matrix_norm(m, ord=2) / self._scale(m)

    def dual_norm(self, g: Tensor, ensemble_dims: int = 0) -> Tensor:
        m = as_matrix(g, ensemble_dims)
        return torch.linalg.matrix_norm(m, ord="nuc") * self._scale(m)

    def dualize(self, g: Tensor, ensemble_dims: int = 0) -> Tensor:
        m = as_matrix(g, ensemble_dims)
        if self.method == "svd":
            d = polar_factor(m)
        else:
            d = newton_schulz(m, self.ns_steps, dtype=self.dtype).to(g.dtype)
        return (d * self._scale(m)).reshape(g.shape)


class RMSToRMS(Spectral):
    """RMS -> RMS operator norm sqrt(d_in / d_out) ||W||_2 of a linear map (d_out, d_in).

    The anthology's norm for hidden linear layers: dualize = sqrt(d_out / d_in) U V^T.
    """

    name = "rms_rms"
    description = "RMS -> RMS operator, sqrt(d_in/d_out) ||W||_2; dualize sqrt(d_out/d_in) U V^T"

    def _scale(self, m: Tensor) -> float:
        return math.sqrt(m.shape[-2] / m.shape[-1])


class L1ToRMS(Norm):
    """l1 -> RMS operator norm of an embedding table E (num_embeddings, dim): max_i RMS(E_i).

    The map one-hot -> vector sends input i to row E_i, so the operator norm is the largest row
    RMS; dual sqrt(dim) sum_i ||G_i||_2; dualize sets each row to sqrt(dim) G_i / ||G_i||_2.
    (Tensors are viewed as (rows, rest); a vector is one row.)
    """

    name = "l1_rms"
    description = "l1 -> RMS operator (embeddings): max row RMS; dualize normalises each row"

    @staticmethod
    def _rows(t: Tensor, ensemble_dims: int) -> Tensor:
        lead, m = t.shape[:ensemble_dims], t.shape[ensemble_dims:]
        if len(m) <= 1:
            return t.reshape(*lead, 1, max(1, math.prod(m)))
        return t.reshape(*lead, m[0], math.prod(m[1:]))

    def norm(self, t: Tensor, ensemble_dims: int = 0) -> Tensor:
        r = self._rows(t, ensemble_dims)
        return (torch.linalg.vector_norm(r, dim=-1) / math.sqrt(r.shape[-1])).amax(dim=-1)

    def dual_norm(self, g: Tensor, ensemble_dims: int = 0) -> Tensor:
        r = self._rows(g, ensemble_dims)
        return torch.linalg.vector_norm(r, dim=-1).sum(dim=-1) * math.sqrt(r.shape[-1])

    def dualize(self, g: Tensor, ensemble_dims: int = 0) -> Tensor:
        r = self._rows(g, ensemble_dims)
        row_norms = torch.linalg.vector_norm(r, dim=-1, keepdim=True)
        return (_safe_div(r, row_norms) * math.sqrt(r.shape[-1])).reshape(g.shape)


#: Norms by the names used in `norm_map`. Factories take `spectral_method` (only the spectral
#: family reads it).
NORMS: dict[str, Callable[..., Norm]] = {
    "euclidean": lambda spectral_method="svd": Euclidean(),
    "infinity": lambda spectral_method="svd": Infinity(),
    "rms": lambda spectral_method="svd": RMS(),
    "spectral": lambda spectral_method="svd": Spectral(spectral_method),
    "rms_rms": lambda spectral_method="svd": RMSToRMS(spectral_method),
    "l1_rms": lambda spectral_method="svd": L1ToRMS(),
}


def make_norm(name: str, *, spectral_method: str = "svd", argument: str = "norm") -> Norm:
    """The norm called `name`; an unknown name is a HyperparameterError naming `argument`."""
    if name not in NORMS:
        raise HyperparameterError(
            f"{argument}: unknown norm {name!r}; allowed: {', '.join(sorted(NORMS))}"
        )
    if spectral_method not in ("svd", "newton_schulz"):
        raise HyperparameterError(
            f"spectral_method must be 'svd' or 'newton_schulz', got {spectral_method!r}"
        )
    return NORMS[name](spectral_method)
