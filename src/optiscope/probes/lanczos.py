"""Lanczos on the Hessian: its top eigenvalues and its spectral density (PyHessian, Yao et al.
2020; Ghorbani et al. 2019), from Hessian-vector products only.

All functions take ``ensemble_dims`` (see `optiscope.core.members`); the members' Lanczos runs
are batched. Random start vectors are Rademacher, drawn from `generator`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from optiscope.core.members import check_ensemble_dims, flatten_params, member_numel, unflatten_params
from optiscope.errors import OptiscopeError
from optiscope.probes.hessian_operator import HessianOperator, check_positive, rademacher
from optiscope.probes.members import BatchLike, LossFn, Params


# -- Lanczos ----------------------------------------------------------------------------------
def _restart_vector(n: int, j: int, like: Tensor) -> Tensor:
    """A fixed, deterministic vector used if the Krylov space is exhausted (beta ~ 0)."""
    i = torch.arange(n, dtype=like.dtype, device=like.device)
    return torch.cos(i * (0.7548776662 * (j + 1)) + 0.1 * j).expand_as(like)


def _project_out(w: Tensor, basis: Tensor) -> Tensor:
    """w minus its projection on the rows of `basis` (..., j, n), twice ("twice is enough")."""
    for _ in range(2):
        w = w - ((basis @ w[..., None]).transpose(-1, -2) @ basis)[..., 0, :]
    return w


def lanczos_tridiagonal(
    matvec: Callable[[Tensor], Tensor], v0: Tensor, steps: int
) -> tuple[Tensor, Tensor]:
    """(alpha, beta): the Lanczos tridiagonal T of `matvec` from start vectors `v0` (..., n).

    Leading axes of `v0` are independent runs (members, start vectors), batched. Full
    re-orthogonalisation against every previous Lanczos vector keeps the Ritz values faithful
    in floating point. If the Krylov space is exhausted (beta ~ 0, common for low-rank
    Hessians), the next vector is a fixed restart direction orthogonalised against the basis
    and beta is set to 0: T decouples, and the new block's Ritz values are still eigenvalue
    estimates of the operator on the complementary invariant subspace. `steps` is capped at n.
    """
    n = v0.shape[-1]
    steps = min(steps, n)
    q = v0 / torch.linalg.vector_norm(v0, dim=-1, keepdim=True)
    basis = [q]
    alphas, betas = [], []
    q_prev = torch.zeros_like(q)
    beta_prev = torch.zeros_like(q[..., 0])
    scale = torch.zeros_like(q[..., 0])
    for j in range(steps):
        w = matvec(q)
        alpha = (q * w).sum(-1)
        alphas.append(alpha)
        if j == steps - 1:
            break
        w = w - alpha[..., None] * q - beta_prev[..., None] * q_prev
        stacked = torch.stack(basis, dim=-2)
        w = _project_out(w, stacked)
        beta = torch.linalg.vector_norm(w, dim=-1)
        scale = torch.maximum(scale, alpha.abs() + beta)
        exhausted = beta <= 1e-10 * scale + torch.finfo(q.dtype).tiny
        r = _project_out(_restart_vector(n, j, q), stacked)
        r = r / torch.linalg.vector_norm(r, dim=-1, keepdim=True)
        safe = torch.where(exhausted, torch.ones_like(beta), beta)
        q_next = torch.where(exhausted[..., None], r, w / safe[..., None])
        beta = torch.where(exhausted, torch.zeros_like(beta), beta)
        betas.append(beta)
        q_prev, q, beta_prev = q, q_next, beta
        basis.append(q)
    alpha_t = torch.stack(alphas, dim=-1)
    beta_t = torch.stack(betas, dim=-1) if betas else alpha_t[..., :0]
    return alpha_t, beta_t


def tridiagonal_eigh(alpha: Tensor, beta: Tensor) -> tuple[Tensor, Tensor]:
    """Eigenvalues (ascending) and eigenvectors of the symmetric tridiagonal (alpha, beta).

    A run with non-finite entries (a diverged member) gets NaN rather than stopping the batch.
    """
    ok = torch.isfinite(alpha).all(-1) & torch.isfinite(beta).all(-1)
    alpha = torch.where(ok[..., None], alpha, torch.zeros_like(alpha))
    beta = torch.where(ok[..., None], beta, torch.zeros_like(beta))
    t = torch.diag_embed(alpha)
    if beta.shape[-1]:
        t = t + torch.diag_embed(beta, 1) + torch.diag_embed(beta, -1)
    theta, u = torch.linalg.eigh(t)
    nan = torch.full_like(theta, float("nan"))
    return torch.where(ok[..., None], theta, nan), torch.where(ok[..., None, None], u, nan[..., None])


def _flat_matvec(op: HessianOperator, batched: bool) -> Callable[[Tensor], Tensor]:
    """H on flat vectors (*lead, n); with `batched` the first axis holds independent vectors."""
    lead = op.ensemble_dims + int(batched)

    def matvec(x: Tensor) -> Tensor:
        return flatten_params(op(unflatten_params(x, op.params, op.ensemble_dims), batched=batched), lead)

    return matvec


@dataclass(frozen=True)
class Eigenvalues:
    """Largest eigenvalues of the Hessian, largest first, and the HVPs spent (per member)."""

    values: Tensor
    hvps: int
    iterations: int


def top_eigenvalues(
    op: HessianOperator, k: int, iterations: int, generator: torch.Generator | None
) -> Eigenvalues:
    """`top_hessian_eigenvalues` on a prebuilt operator (shared by the trajectory probes)."""
    if k > op.dim:
        raise OptiscopeError(f"k must be at most the number of parameters ({op.dim}), not {k}")
    steps = min(max(iterations, k), op.dim)
    v0 = flatten_params(rademacher(op.params, 1, generator, op.ensemble_dims), 1 + op.ensemble_dims)[0]
    alpha, beta = lanczos_tridiagonal(_flat_matvec(op, False), v0, steps)
    theta, _ = tridiagonal_eigh(alpha, beta)
    return Eigenvalues(theta.flip(-1)[..., :k], steps, steps)


def top_hessian_eigenvalues(
    loss_fn: LossFn,
    params: Params,
    k: int = 1,
    iterations: int = 64,
    *,
    batch: BatchLike = None,
    ensemble_dims: int = 0,
    generator: torch.Generator | None = None,
) -> Eigenvalues:
    """The k largest (algebraic) Hessian eigenvalues by Lanczos with full re-orthogonalisation.

    Lanczos rather than PyHessian's power iteration: for the same number of HVPs its extreme
    Ritz values converge much faster (Golub & Van Loan, ch. 10), and it yields k at once.
    `iterations` (HVPs per member) is capped at the number of parameters, where it is exact.
    Values have shape (k,), or (S, k) for an ensemble.
    """
    check_ensemble_dims(ensemble_dims)
    check_positive("k", k)
    check_positive("iterations", iterations)
    dim = member_numel(params, ensemble_dims)
    if k > dim:
        raise OptiscopeError(f"k must be at most the number of parameters ({dim}), not {k}")
    op = HessianOperator(loss_fn, params, batch=batch, ensemble_dims=ensemble_dims)
    return top_eigenvalues(op, k, iterations, generator)


# -- spectral density (stochastic Lanczos quadrature) -----------------------------------------
@dataclass(frozen=True)
class SpectralDensity:
    """Gauss quadrature of the Hessian's spectral measure (Ghorbani et al. 2019; PyHessian).

    `nodes` and `weights` have shape (..., vectors, steps); the weights over all nodes sum to
    one, so sum(weights * nodes**p) estimates (1/P) tr(H^p) (unbiased, exact in each vector's
    quadrature for p < 2 * steps).
    """

    nodes: Tensor
    weights: Tensor
    hvps: int

    def moment(self, p: int) -> Tensor:
        return (self.weights * self.nodes**p).sum((-2, -1))

    def density(self, grid: Tensor, sigma: float) -> Tensor:
        """Gaussian-smoothed density on `grid` (PyHessian's plot); integrates to ~1."""
        g = grid.to(self.nodes.dtype)
        d = self.nodes[..., None] - g
        kernel = torch.exp(-0.5 * (d / sigma) ** 2) / (sigma * (2 * torch.pi) ** 0.5)
        return (self.weights[..., None] * kernel).sum((-3, -2))


def spectral_density(
    op: HessianOperator, vectors: int, steps: int, generator: torch.Generator | None
) -> SpectralDensity:
    """`hessian_spectral_density` on a prebuilt operator (shared by the trajectory probes)."""
    m = min(steps, op.dim)
    starts = flatten_params(rademacher(op.params, vectors, generator, op.ensemble_dims), 1 + op.ensemble_dims)
    alpha, beta = lanczos_tridiagonal(_flat_matvec(op, True), starts, m)  # (V, *members, m)
    theta, u = tridiagonal_eigh(alpha, beta)
    nodes, weights = theta.movedim(0, -2), (u[..., 0, :] ** 2).movedim(0, -2)
    return SpectralDensity(nodes, weights / vectors, vectors * m)


def hessian_spectral_density(
    loss_fn: LossFn,
    params: Params,
    vectors: int = 4,
    steps: int = 32,
    *,
    batch: BatchLike = None,
    ensemble_dims: int = 0,
    generator: torch.Generator | None = None,
) -> SpectralDensity:
    """Stochastic Lanczos quadrature with `vectors` Rademacher starts of `steps` Lanczos steps.

    For each start v (normalised), the eigen-decomposition T = U diag(theta) U^T of the Lanczos
    tridiagonal gives nodes theta_j and weights U_0j^2: the Gauss quadrature of the measure
    sum_i (v . u_i)^2 delta(lambda_i), whose expectation is the spectral density.
    """
    check_ensemble_dims(ensemble_dims)
    check_positive("vectors", vectors)
    check_positive("steps", steps)
    op = HessianOperator(loss_fn, params, batch=batch, ensemble_dims=ensemble_dims)
    return spectral_density(op, vectors, steps, generator)
