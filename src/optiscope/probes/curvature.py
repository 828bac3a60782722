"""Curvature of the loss from Hessian-vector products only (PyHessian, Yao et al. 2020).

Every estimate says how many Hessian-vector products (HVPs) it spent per member, as PyHessian
and Cockpit do, so that cost is visible next to the number. HVPs are exact products by
automatic differentiation (Pearlmutter 1994), which works for any task written with torch ops,
attention and LayerNorm included (BackPACK and Cockpit support only some layer types).

All functions take ``ensemble_dims`` (see `optiscope.probes.members`): 0 for one member, 1 for
an ensemble, whose members' losses are vmapped and whose products are computed for all members
at once. Random probe vectors are Rademacher, drawn from `generator`, probe axis first.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor
from torch.func import grad, jvp, vmap

from optiscope.errors import OptiscopeError
from optiscope.probes.members import (
    BatchLike,
    LossFn,
    Params,
    bind,
    check_ensemble_dims,
    over_members,
    split_batch,
)

DiagonalMethod = Literal["exact", "hutchinson"]


# -- Hessian-vector products ------------------------------------------------------------------
def hvp(loss_fn: LossFn, params: Params, vectors: Params) -> Params:
    """H v for one member: the directional derivative of the gradient along `vectors`.

    Forward-over-reverse (`jvp` of `grad`), functional like `torch.func`: `loss_fn(params) ->
    scalar`, `vectors` shaped like `params`; compose with `vmap` for many vectors or members.
    """
    _, out = jvp(grad(loss_fn), (params,), (vectors,))
    return out


def _member_dims(params: Mapping[str, Tensor], ensemble_dims: int) -> int:
    """Parameters of one member."""
    return sum(t[(0,) * ensemble_dims].numel() for t in params.values())


class HessianOperator:
    """H v at fixed parameters, for one member or every member of an ensemble at once.

    Estimators need many products at the same point, and the fastest way to get them depends
    on the model, so both exact routes are kept (Pearlmutter 1994):

    - many vectors at once (``batched=True``: exact diagonal, Hutchinson, SLQ) use `hvp`
      (forward-over-reverse) vmapped over the vectors and the members: one vectorised pass;
    - one vector at a time (Lanczos) can reuse the gradient's graph, built once with the
      members' losses vmapped and summed (the ensemble Hessian is block-diagonal over members,
      so one backward pass serves them all): reverse-over-reverse. That is several times
      faster for MLPs but slower where double-backward formulas are long (LayerNorm, softmax),
      so the first single product times both routes and keeps the faster one.

    Vectors are dicts shaped like `params`; with ``batched=True`` they carry one more leading
    axis of independent vectors. `products` counts HVPs per member.
    """

    def __init__(
        self, loss_fn: LossFn, params: Params, *, batch: BatchLike = None, ensemble_dims: int = 0,
        chunk_size: int | None = None,
    ):
        check_ensemble_dims(ensemble_dims)
        self.loss_fn, self.batch, self.ensemble_dims = loss_fn, batch, ensemble_dims
        self.params = {k: v.detach() for k, v in params.items()}
        self.names = list(params)
        self.dim = _member_dims(params, ensemble_dims)
        self.chunk_size = chunk_size
        self.products = 0
        self._single: str | None = None  # route for single products: "reverse" or "forward" once timed
        self._batched = "forward"  # route for batched products; "reverse" if forward mode fails
        self._graph: tuple[list[Tensor], list[int], list[Tensor]] | None = None

    def _total_loss(self, p: Params) -> Tensor:
        per_member, shared = split_batch(self.batch)
        if self.ensemble_dims == 0:
            merged = None if self.batch is None else {**per_member, **shared}
            return bind(self.loss_fn, merged)(p)

        def one(q: Params, pm: dict[str, Tensor]) -> Tensor:
            return bind(self.loss_fn, None if self.batch is None else {**pm, **shared})(q)

        return vmap(one)(p, per_member).sum()

    def __call__(self, vectors: Params, *, batched: bool = False) -> Params:
        self.products += next(iter(vectors.values())).shape[0] if batched else 1
        if batched:
            if self._batched != "reverse":
                try:
                    return vmap(self._forward_hvp, chunk_size=self.chunk_size)(vectors)
                except RuntimeError:  # forward-mode AD missing or broken for an op of the task
                    self._batched = "reverse"
            return self._reverse_batched(vectors)
        if self._single is None:
            return self._choose_single(vectors)
        if self._single == "reverse":
            return self._reverse_hvp(vectors)
        return self._forward_hvp(vectors)

    def _choose_single(self, vectors: Params) -> Params:
        import time

        results: dict[str, Params] = {}
        times: dict[str, float] = {}
        for route, fn in (("forward", self._forward_hvp), ("reverse", self._reverse_hvp)):
            try:
                if route == "reverse":
                    fn(vectors)  # builds the graph (not timed: paid once)
                t0 = time.perf_counter()
                results[route] = fn(vectors)
                times[route] = time.perf_counter() - t0
            except RuntimeError:  # an op without forward-mode AD or double-backward
                pass
        if not results:
            raise OptiscopeError(
                "Hessian-vector products fail for this loss both forward-over-reverse and "
                "reverse-over-reverse (an op without second derivatives?)"
            )
        self._single = min(times, key=times.__getitem__)
        if self._single == "forward":
            self._graph = None  # free the graph
        return results[self._single]

    def _reverse_batched(self, vectors: Params) -> Params:
        try:
            return self._reverse_hvp(vectors, batched=True)
        except RuntimeError:  # no batching rule for an op of the backward: one at a time
            n = next(iter(vectors.values())).shape[0]
            outs = [self._reverse_hvp({k: v[j] for k, v in vectors.items()}) for j in range(n)]
            return {k: torch.stack([o[k] for o in outs]) for k in self.names}

    def _forward_hvp(self, vectors: Params) -> Params:
        return over_members(
            lambda f, p, vv: hvp(f, p, vv), self.loss_fn, self.params, self.batch, (vectors,),
            ensemble_dims=self.ensemble_dims,
        )

    def _reverse_hvp(self, vectors: Params, batched: bool = False) -> Params:
        if self._graph is None:
            leaves = [self.params[k].clone().requires_grad_(True) for k in self.names]
            with torch.enable_grad():
                total = self._total_loss(dict(zip(self.names, leaves, strict=True)))
                grads = torch.autograd.grad(total, leaves, create_graph=True, allow_unused=True)
            # Gradients that do not depend on the parameters (a linear term) contribute nothing.
            live = [i for i, g in enumerate(grads) if g is not None and g.requires_grad]
            self._graph = (leaves, live, [grads[i] for i in live])
        leaves, live, grads = self._graph
        out = {k: torch.zeros_like(vectors[k]) for k in self.names}
        if not grads:
            return out
        outs = torch.autograd.grad(
            grads, leaves, grad_outputs=[vectors[self.names[i]] for i in live],
            retain_graph=True, allow_unused=True, is_grads_batched=batched,
        )
        for k, g in zip(self.names, outs, strict=True):
            if g is not None:
                out[k] = g
        return out


def rademacher(
    params: Mapping[str, Tensor], samples: int, generator: torch.Generator | None, ensemble_dims: int = 0
) -> Params:
    """`samples` Rademacher (+-1) vectors per member: each tensor (samples, *params[k].shape).

    The probe axis comes first, then the member axis of an ensemble.
    """
    out = {}
    for k, t in params.items():
        z = torch.randint(0, 2, (samples, *t.shape), generator=generator, device="cpu")
        out[k] = (z * 2 - 1).to(device=t.device, dtype=t.dtype)
    return out


def _check_positive(name: str, value: int) -> None:
    if not isinstance(value, int) or value < 1:
        raise OptiscopeError(f"{name} must be a positive integer, not {value!r}")


def _flat(d: Mapping[str, Tensor], lead: int) -> Tensor:
    """One vector per leading index: tensors (*lead, *shape) -> (*lead, n)."""
    return torch.cat([t.reshape(*t.shape[:lead], -1) for t in d.values()], dim=-1)


def _unflat(x: Tensor, params: Mapping[str, Tensor], ensemble_dims: int) -> Params:
    """Inverse of `_flat` for vectors (*lead, n) of one member's size."""
    out, offset = {}, 0
    lead = x.shape[:-1]
    for k, t in params.items():
        shape = t.shape[ensemble_dims:]
        n = shape.numel()
        out[k] = x[..., offset : offset + n].reshape(*lead, *shape)
        offset += n
    return out


# -- the Hessian's diagonal -------------------------------------------------------------------
class HessianDiagonal(dict):
    """name -> diagonal of that tensor's Hessian block, shaped like the parameter.

    Attributes: `method` ("exact" or "hutchinson"), `samples` (Rademacher probes; 0 if exact),
    `hvps` (per member) and `stderr` (standard error per entry for Hutchinson, else None).
    """

    method: str
    samples: int
    hvps: int
    stderr: dict[str, Tensor] | None


def exact_diagonal(op: HessianOperator, chunk_size: int = 256) -> Params:
    """diag H one coordinate at a time: (H e_i)_i for every basis vector, batched in chunks.

    P products for P parameters (all members at once): exact, and meant for small models.
    """
    e = op.ensemble_dims
    out = {}
    for name, t in op.params.items():
        shape = t.shape[e:]
        n = shape.numel()
        # Bound the memory of one chunk of full-size vectors (zeros elsewhere) to ~16M numbers.
        total = sum(p.numel() for p in op.params.values())
        chunk = max(1, min(chunk_size, (1 << 24) // max(total, 1)))
        pieces = []
        for start in range(0, n, chunk):
            idx = torch.arange(start, min(start + chunk, n), device=t.device)
            basis = torch.nn.functional.one_hot(idx, n).to(t.dtype).reshape(len(idx), *(1,) * e, *shape)
            v = {
                k: (basis.expand(len(idx), *t.shape) if k == name else p.new_zeros(()).expand(len(idx), *p.shape))
                for k, p in op.params.items()
            }
            cols = op(v, batched=True)[name].reshape(len(idx), *t.shape[:e], n)
            pieces.append(cols.gather(-1, idx.reshape(-1, *(1,) * e, 1).expand(len(idx), *t.shape[:e], 1))[..., 0])
        diag = torch.cat(pieces)  # (n, *members)
        out[name] = diag.movedim(0, -1).reshape(t.shape)
    return out


def hutchinson_products(op: HessianOperator, z: Params) -> Params:
    """z_k * (H z_k) for probes z (K, *params shape): unbiased for diag H (Bekas et al. 2007)."""
    hz = op(z, batched=True)
    return {k: z[k] * hz[k] for k in op.names}


def hessian_diagonal(
    loss_fn: LossFn,
    params: Params,
    method: DiagonalMethod = "exact",
    samples: int = 32,
    *,
    batch: BatchLike = None,
    ensemble_dims: int = 0,
    generator: torch.Generator | None = None,
    chunk_size: int = 256,
) -> HessianDiagonal:
    """Diagonal of the loss Hessian, per parameter tensor.

    `exact`: one HVP per coordinate (H e_i)_i, for small models. `hutchinson`:
    (1/K) sum_k z_k * (H z_k) with K = `samples` Rademacher probes (Bekas et al. 2007; the
    estimator AdaHessian uses), unbiased, with the per-entry standard error in `.stderr`.
    """
    check_ensemble_dims(ensemble_dims)
    if method not in ("exact", "hutchinson"):
        raise OptiscopeError(f"method must be 'exact' or 'hutchinson', not {method!r}")
    if method == "exact":
        _check_positive("chunk_size", chunk_size)
    else:
        _check_positive("samples", samples)
    op = HessianOperator(loss_fn, params, batch=batch, ensemble_dims=ensemble_dims)
    if method == "exact":
        result = HessianDiagonal(exact_diagonal(op, chunk_size))
        result.method, result.samples, result.stderr, result.hvps = "exact", 0, None, op.products
        return result
    per_probe = hutchinson_products(op, rademacher(params, samples, generator, ensemble_dims))
    result = HessianDiagonal({k: v.mean(0) for k, v in per_probe.items()})
    result.stderr = (
        {k: v.std(0, correction=1) / samples**0.5 for k, v in per_probe.items()} if samples > 1 else None
    )
    result.method, result.samples, result.hvps = "hutchinson", samples, samples
    return result


# -- R_med (Jiang, Malik, Li 2023) ------------------------------------------------------------
class RMed(dict):
    """name -> R_med of that tensor; `estimator`, `samples`, `hvps` and the `diagonal` used."""

    estimator: str
    samples: int
    hvps: int
    diagonal: HessianDiagonal


def r_med_from_diagonal(diagonal: Tensor, ensemble_dims: int = 0) -> Tensor:
    """max_i |d_i| / median_i |d_i| over one tensor's Hessian diagonal (per member).

    The median interpolates between the two middle values for an even count (numpy's
    convention). A median of zero (more than half the entries flat, e.g. dead ReLU units)
    gives inf, which is the statistic's honest value there.
    """
    a = diagonal.abs().reshape(*diagonal.shape[:ensemble_dims], -1)
    return a.amax(-1) / torch.quantile(a, 0.5, dim=-1)


def r_med(
    loss_fn: LossFn,
    params: Params,
    method: DiagonalMethod | Literal["auto"] = "auto",
    samples: int = 32,
    *,
    batch: BatchLike = None,
    ensemble_dims: int = 0,
    generator: torch.Generator | None = None,
    exact_max_params: int = 4096,
    names: list[str] | None = None,
) -> RMed:
    """R^OPT_med per tensor (Jiang, Malik & Li 2023, arXiv 2211.02254; SCIENCE.md section 4).

    For tensor W with Hessian block H_W at `params`: R_med = max_i |(H_W)_ii| / median_i
    |(H_W)_ii|. `method="auto"` takes the exact diagonal when one member has at most
    `exact_max_params` parameters and Hutchinson with `samples` probes otherwise; the estimator
    is recorded on the result. `names` restricts the output to some tensors (the diagonal is
    still computed for all).
    """
    n = _member_dims(params, ensemble_dims)
    chosen = method if method != "auto" else ("exact" if n <= exact_max_params else "hutchinson")
    diag = hessian_diagonal(
        loss_fn, params, chosen, samples, batch=batch, ensemble_dims=ensemble_dims,
        generator=generator,
    )
    unknown = set(names or ()) - set(params)
    if unknown:
        raise OptiscopeError(f"names {sorted(unknown)} are not parameters; available: {sorted(params)}")
    result = RMed(
        {k: r_med_from_diagonal(d, ensemble_dims) for k, d in diag.items() if names is None or k in names}
    )
    result.estimator, result.samples, result.hvps, result.diagonal = (
        diag.method, diag.samples, diag.hvps, diag,
    )
    return result


# -- Hutchinson trace -------------------------------------------------------------------------
@dataclass(frozen=True)
class TraceEstimate:
    """tr H ~ mean_k z_k^T H z_k (Hutchinson 1990); `stderr` is the sample std / sqrt(K)."""

    value: Tensor
    stderr: Tensor
    samples: int
    hvps: int


def quadratic_forms(per_probe: Params, ensemble_dims: int) -> Tensor:
    """z_k^T H z_k from `hutchinson_products`: (K, *members) -> (*members, K)."""
    lead = 1 + ensemble_dims
    quad = sum(v.reshape(*v.shape[:lead], -1).sum(-1) for v in per_probe.values())
    return quad.movedim(0, -1)


def trace_from_quadratic_forms(quad: Tensor) -> TraceEstimate:
    k = quad.shape[-1]
    stderr = quad.std(-1, correction=1) / k**0.5 if k > 1 else torch.full_like(quad[..., 0], float("nan"))
    return TraceEstimate(quad.mean(-1), stderr, k, k)


def hessian_trace(
    loss_fn: LossFn,
    params: Params,
    samples: int = 32,
    *,
    batch: BatchLike = None,
    ensemble_dims: int = 0,
    generator: torch.Generator | None = None,
) -> TraceEstimate:
    """Hutchinson estimate of the Hessian's trace with Rademacher probes (as PyHessian)."""
    check_ensemble_dims(ensemble_dims)
    _check_positive("samples", samples)
    op = HessianOperator(loss_fn, params, batch=batch, ensemble_dims=ensemble_dims)
    per_probe = hutchinson_products(op, rademacher(params, samples, generator, ensemble_dims))
    return trace_from_quadratic_forms(quadratic_forms(per_probe, ensemble_dims))


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
        return _flat(op(_unflat(x, op.params, op.ensemble_dims), batched=batched), lead)

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
    v0 = _flat(rademacher(op.params, 1, generator, op.ensemble_dims), 1 + op.ensemble_dims)[0]
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
    _check_positive("k", k)
    _check_positive("iterations", iterations)
    dim = _member_dims(params, ensemble_dims)
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
    starts = _flat(rademacher(op.params, vectors, generator, op.ensemble_dims), 1 + op.ensemble_dims)
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
    _check_positive("vectors", vectors)
    _check_positive("steps", steps)
    op = HessianOperator(loss_fn, params, batch=batch, ensemble_dims=ensemble_dims)
    return spectral_density(op, vectors, steps, generator)
