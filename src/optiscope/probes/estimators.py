"""Estimators of the Hessian's diagonal, R_med and trace from Hessian-vector products.

Each says how many products it spent per member (as PyHessian and Cockpit do), so that cost is
visible next to the number. All take ``ensemble_dims`` (see `optiscope.core.members`); random
probe vectors are Rademacher, drawn from `generator`, probe axis first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from optiscope.core.members import check_ensemble_dims, flat_member, member_numel
from optiscope.errors import OptiscopeError
from optiscope.probes.hessian_operator import HessianOperator, check_positive, rademacher
from optiscope.probes.members import BatchLike, LossFn, Params

DiagonalMethod = Literal["exact", "hutchinson"]


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
        check_positive("chunk_size", chunk_size)
    else:
        check_positive("samples", samples)
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
    a = flat_member(diagonal.abs(), ensemble_dims)
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
    """R^OPT_med per tensor (Jiang, Malik & Li 2023, "How does adaptive optimization impact local
    neural network geometry?", arXiv 2211.02254).

    For tensor W with Hessian block H_W at `params`: R_med = max_i |(H_W)_ii| / median_i
    |(H_W)_ii|. `method="auto"` takes the exact diagonal when one member has at most
    `exact_max_params` parameters and Hutchinson with `samples` probes otherwise; the estimator
    is recorded on the result. `names` restricts the output to some tensors (the diagonal is
    still computed for all).
    """
    n = member_numel(params, ensemble_dims)
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
    check_positive("samples", samples)
    op = HessianOperator(loss_fn, params, batch=batch, ensemble_dims=ensemble_dims)
    per_probe = hutchinson_products(op, rademacher(params, samples, generator, ensemble_dims))
    return trace_from_quadratic_forms(quadratic_forms(per_probe, ensemble_dims))
