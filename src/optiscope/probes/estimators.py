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


def diagonal_entries(op: HessianOperator, name: str, idx: Tensor, chunk_size: int = 256) -> Tensor:
    """Exact entries (H_WW)_ii of tensor `name`'s Hessian block at flat indices `idx`.

    `idx` is (m,) (the same entries for every member) or (m, *members) (each member its own);
    returns (m, *members). One block product (`HessianOperator.block`) per entry, batched in
    chunks whose vectors hold at most ~16M numbers.
    """
    e = op.ensemble_dims
    t = op.params[name]
    members, shape = t.shape[:e], t.shape[e:]
    n = shape.numel()
    chunk = max(1, min(chunk_size, (1 << 24) // max(t.numel(), 1)))
    idx = idx.to(t.device)
    pieces = []
    for start in range(0, idx.shape[0], chunk):
        j = idx[start : start + chunk]
        m = j.shape[0]
        if j.dim() == 1:
            basis = torch.nn.functional.one_hot(j, n).to(t.dtype).reshape(m, *(1,) * e, *shape).expand(m, *t.shape)
            j = j.reshape(m, *(1,) * e).expand(m, *members)
        else:
            basis = torch.nn.functional.one_hot(j, n).to(t.dtype).reshape(m, *t.shape)
        cols = op.block(name, basis).reshape(m, *members, n)
        pieces.append(cols.gather(-1, j[..., None])[..., 0])
    return torch.cat(pieces)


def exact_diagonal(op: HessianOperator, chunk_size: int = 256, names: list[str] | None = None) -> Params:
    """diag H one coordinate at a time: (H e_i)_i for every basis vector, batched in chunks.

    P products for P parameters (all members at once), each a product with one tensor's
    diagonal block only; `names` restricts it to some tensors (then only their entries count).
    """
    out = {}
    for name in names if names is not None else op.names:
        t = op.params[name]
        n = t.shape[op.ensemble_dims :].numel()
        diag = diagonal_entries(op, name, torch.arange(n), chunk_size)  # (n, *members)
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
#: What one Hessian-vector product costs in training steps (one gradient of a minibatch of the
#: same size), as the R_med cost rule counts it. Forward-over-reverse costs a small multiple of a
#: gradient (Pearlmutter 1994; Griewank & Walther 2008 bound it by a constant), and a product
#: with one tensor's block (`HessianOperator.block`) less: `benchmarks/r_med_cost.py` measures
#: 0.2-0.4 steps per product on the shipped linear net and 0.2-3 on the transformer (first-layer
#: and embedding blocks dearest). A fixed constant, not a timing, so that which estimator a
#: tensor gets depends on the model alone, never on the machine or its load (cells compared
#: must use the same estimator).
HVP_COST_IN_STEPS = 1.0
#: Default budget of the R_med probe, in training steps per tensor and probe step: 512 products,
#: so every tensor of up to 512 entries (the linear net's 20x20 and 10x20 matrices, every bias
#: and gain) gets its exact diagonal.
DIAGONAL_BUDGET_STEPS = 512.0
#: Hutchinson probes drawn and multiplied at once (bounds the memory of the batched products).
PROBE_CHUNK = 32


def max_hvps(budget_steps: float) -> int:
    """Products one tensor's diagonal may cost at one probe step under `budget_steps`."""
    return max(1, int(budget_steps // HVP_COST_IN_STEPS))


class RMed(dict):
    """name -> R_med of that tensor (per member; NaN where undefined).

    Attributes: `estimator` ("exact", "sampled", "hutchinson", or "mixed" when tensors differ),
    `estimators` (name -> that tensor's), `undefined` (name -> bool per member: median |diag|
    is 0), `samples` (Hutchinson probes per tensor, 0 if none), `hvps` (products per member)
    and `diagonal` (name -> the exact diagonal, or a Hutchinson one).
    """

    estimator: str
    estimators: dict[str, str]
    undefined: dict[str, Tensor]
    samples: int
    hvps: int
    diagonal: dict[str, Tensor]


def _median(a: Tensor, dim: int) -> Tensor:
    return torch.quantile(a, 0.5, dim=dim)  # interpolates for an even count (numpy's convention)


def _ratio(top: Tensor, median: Tensor) -> tuple[Tensor, Tensor]:
    undefined = median == 0
    return torch.where(undefined, torch.full_like(top, float("nan")), top / median), undefined


def r_med_from_diagonal(diagonal: Tensor, ensemble_dims: int = 0) -> Tensor:
    """max_i |d_i| / median_i |d_i| over one tensor's Hessian diagonal (per member).

    The median interpolates between the two middle values for an even count (numpy's
    convention). Where the median is 0 (more than half the entries flat: the rows of an
    embedding no token in the probe batch uses, dead ReLU units) the ratio is undefined and
    the result is NaN, never inf: a reduction over tensors (`reduce = "median"`, a NaN-ignoring
    median) then leaves that tensor out instead of counting it as the largest.
    """
    a = flat_member(diagonal.abs(), ensemble_dims)
    return _ratio(a.amax(-1), _median(a, -1))[0]


def block_hutchinson(
    op: HessianOperator, name: str, samples: int, generator: torch.Generator | None,
    chunk: int = PROBE_CHUNK,
) -> Tensor:
    """Hutchinson diagonal of tensor `name`'s block from `samples` Rademacher probes supported
    on that tensor only (`HessianOperator.block`), drawn `chunk` at a time.

    An entry's noise is the off-diagonal mass of its row within the block, not within the
    whole Hessian as with probes over every tensor (smaller: on the shipped transformer's MLP
    projection at init, 512 block probes put R_med 8-16% off, 512 whole-model probes 23%).
    """
    t = op.params[name]
    acc = torch.zeros_like(t)
    for start in range(0, samples, chunk):
        k = min(chunk, samples - start)
        z = torch.randint(0, 2, (k, *t.shape), generator=generator, device="cpu")
        z = (z * 2 - 1).to(device=t.device, dtype=t.dtype)
        acc += (z * op.block(name, z)).sum(0)
    return acc / samples


def sampled_r_med(
    op: HessianOperator, name: str, hvps: int, generator: torch.Generator | None,
) -> tuple[Tensor, Tensor, Tensor]:
    """R_med of a tensor too large for its exact diagonal, from `hvps` block products.

    A Hutchinson diagonal of the block alone (`block_hutchinson`, half the products) is only a
    screen: on the shipped transformer its own max/median is off by up to +35% (noise inflates
    the max) and by 98% on the fused q/k/v matrix at init (noise swamps the median of the q and
    k entries). So every number in the ratio is an exact entry (`diagonal_entries`): the median
    of a uniform random sample of coordinates (7/16 of the products, the same for every
    member), and the max over that sample and over the screen's largest entries (1/16). Its
    errors are the sample median's spread and a max below the true one when the screen misses
    the argmax; `tests/probes/test_r_med_default.py` measures them against the dense Hessian.
    Returns (R_med, undefined, Hutchinson diagonal) per member.
    """
    e = op.ensemble_dims
    n = op.params[name].shape[e:].numel()
    screen_probes = max(1, hvps // 2)
    c = min(n, max(1, hvps // 16))
    m = min(n, max(1, hvps - screen_probes - c))
    screen = block_hutchinson(op, name, screen_probes, generator)
    sample = torch.randperm(n, generator=generator)[:m]
    d_sample = diagonal_entries(op, name, sample).abs()  # (m, *members)
    cand = flat_member(screen.abs(), e).topk(c, dim=-1).indices.movedim(-1, 0)  # (c, *members)
    top = torch.maximum(d_sample.amax(0), diagonal_entries(op, name, cand).abs().amax(0))
    value, undefined = _ratio(top, _median(d_sample, 0))
    return value, undefined, screen


def plan_diagonals(numels: dict[str, int], budget_steps: float) -> dict[str, str]:
    """The cost rule, per tensor: "exact" where its p entries' p block products cost at most
    `budget_steps` training steps (`HVP_COST_IN_STEPS` each), else "sampled" (as many block
    products as that buys: `sampled_r_med`)."""
    limit = max_hvps(budget_steps)
    return {k: "exact" if n <= limit else "sampled" for k, n in numels.items()}


def r_med_per_tensor(
    op: HessianOperator, names: list[str], budget_steps: float, generator: torch.Generator | None,
) -> RMed:
    """R_med of each tensor in `names` under the cost rule (`plan_diagonals`).

    A tensor within the budget gets its exact diagonal, a larger one `sampled_r_med` with as
    many block products as the budget buys (`max_hvps`). Every entry records its estimator;
    `diagonal` holds the exact diagonal, or the screen's Hutchinson diagonal of a sampled tensor.
    """
    e = op.ensemble_dims
    plan = plan_diagonals({k: op.params[k].shape[e:].numel() for k in names}, budget_steps)
    before = op.products
    limit = max_hvps(budget_steps)
    result = RMed()
    result.estimators, result.undefined, result.diagonal = dict(plan), {}, {}
    exact = [k for k in names if plan[k] == "exact"]
    diag = exact_diagonal(op, names=exact) if exact else {}
    for k in names:
        if plan[k] == "exact":
            a = flat_member(diag[k].abs(), e)
            result[k], result.undefined[k] = _ratio(a.amax(-1), _median(a, -1))
            result.diagonal[k] = diag[k]
        else:
            result[k], result.undefined[k], result.diagonal[k] = sampled_r_med(op, k, limit, generator)
    kinds = set(plan.values())
    result.estimator = kinds.pop() if len(kinds) == 1 else "mixed"
    result.samples = max(1, limit // 2) if "sampled" in plan.values() else 0
    result.hvps = op.products - before
    return result


def r_med(
    loss_fn: LossFn,
    params: Params,
    method: DiagonalMethod | Literal["auto"] = "auto",
    samples: int = 32,
    *,
    batch: BatchLike = None,
    ensemble_dims: int = 0,
    generator: torch.Generator | None = None,
    budget_steps: float = DIAGONAL_BUDGET_STEPS,
    exact_max_params: int | None = None,
    names: list[str] | None = None,
) -> RMed:
    """R^OPT_med per tensor (Jiang, Malik & Li 2023, "How does adaptive optimization impact local
    neural network geometry?", arXiv 2211.02254).

    For tensor W with Hessian block H_W at `params`: R_med = max_i |(H_W)_ii| / median_i
    |(H_W)_ii| (NaN where the median is 0: undefined). `method="auto"` decides per tensor
    (`plan_diagonals`): the exact diagonal where its products cost at most `budget_steps`
    training steps, else `sampled_r_med` (exact entries at a random sample and at the largest
    entries of a block Hutchinson screen) with as many products as that budget buys.
    `method="exact"` / `"hutchinson"` force one estimator for every tensor (Hutchinson: the
    max/median of a `samples`-probe diagonal, biased by the probes' noise).
    `exact_max_params` is the former whole-model rule (exact for every tensor when one member
    has at most that many parameters, else Hutchinson with `samples` probes), kept for
    reproducing older numbers. `names` restricts the output (and the work) to some tensors.
    """
    check_ensemble_dims(ensemble_dims)
    unknown = set(names or ()) - set(params)
    if unknown:
        raise OptiscopeError(f"names {sorted(unknown)} are not parameters; available: {sorted(params)}")
    if method not in ("auto", "exact", "hutchinson"):
        raise OptiscopeError(f"method must be 'auto', 'exact' or 'hutchinson', not {method!r}")
    wanted = [k for k in params if names is None or k in names]
    if method == "auto" and exact_max_params is not None:
        method = "exact" if member_numel(params, ensemble_dims) <= exact_max_params else "hutchinson"
    if method in ("exact", "hutchinson"):
        diag = hessian_diagonal(
            loss_fn, params, method, samples, batch=batch, ensemble_dims=ensemble_dims, generator=generator,
        )
        result = RMed({k: r_med_from_diagonal(diag[k], ensemble_dims) for k in wanted})
        result.estimator, result.samples, result.hvps = diag.method, diag.samples, diag.hvps
        result.estimators = {k: diag.method for k in wanted}
        result.undefined = {k: torch.isnan(v) for k, v in result.items()}
        result.diagonal = {k: diag[k] for k in wanted}
        return result
    if not budget_steps > 0:
        raise OptiscopeError(f"budget_steps must be > 0 (training steps per tensor), not {budget_steps!r}")
    op = HessianOperator(loss_fn, params, batch=batch, ensemble_dims=ensemble_dims)
    return r_med_per_tensor(op, wanted, budget_steps, generator)


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
