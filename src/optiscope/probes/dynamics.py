"""Quantities of the training dynamics: gradient norms, update sizes, gradient noise.

Cockpit's cheapest instruments (Schneider et al. 2021), computed per member and vmapped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.func import grad, vmap

from optiscope.core.members import check_ensemble_dims, flat_member
from optiscope.errors import OptiscopeError
from optiscope.probes.members import BatchLike, LossFn, Params, over_members, split_batch


def gradients(
    loss_fn: LossFn, params: Params, *, batch: BatchLike = None, ensemble_dims: int = 0
) -> Params:
    """The loss gradient, per member."""
    return over_members(lambda f, p: grad(f)(p), loss_fn, params, batch, ensemble_dims=ensemble_dims)


def global_norm(tensors: Mapping[str, Tensor], ensemble_dims: int = 0) -> Tensor:
    """sqrt(sum over tensors of ||t||^2), per member."""
    check_ensemble_dims(ensemble_dims)
    sq = [flat_member(t, ensemble_dims).pow(2).sum(-1) for t in tensors.values()]
    return torch.stack(sq).sum(0).sqrt()


def gradient_norm(
    loss_fn: LossFn, params: Params, *, batch: BatchLike = None, ensemble_dims: int = 0
) -> Tensor:
    """||grad L||_2 over all parameters, per member."""
    return global_norm(gradients(loss_fn, params, batch=batch, ensemble_dims=ensemble_dims), ensemble_dims)


def update_to_weight_ratio(
    before: Mapping[str, Tensor], after: Mapping[str, Tensor], ensemble_dims: int = 0
) -> dict[str, Tensor]:
    """||W_after - W_before||_F / ||W_before||_F per tensor (the "update/weight" ratio Karpathy
    and Cockpit track: ~1e-3 is the folk target for a healthy learning rate)."""
    check_ensemble_dims(ensemble_dims)
    missing = set(after) - set(before)
    if missing:
        raise OptiscopeError(f"before lacks tensors {sorted(missing)}")
    out = {}
    for k, w in after.items():
        d = flat_member(w - before[k], ensemble_dims)
        b = flat_member(before[k], ensemble_dims)
        out[k] = torch.linalg.vector_norm(d, dim=-1) / torch.linalg.vector_norm(b, dim=-1)
    return out


@dataclass(frozen=True)
class NoiseScale:
    """The simple gradient noise scale B_simple = tr(Sigma) / |G|^2 (McCandlish et al. 2018).

    From B per-example gradients g_n with mean G_B: tr(Sigma) = sum_n ||g_n - G_B||^2 / (B - 1)
    (unbiased), |G|^2 = ||G_B||^2 - tr(Sigma) / B (unbiased for the true squared gradient norm,
    their appendix A.1); `b_simple` is their ratio and may be negative or huge when the true
    gradient is small relative to the noise, as the unbiased |G|^2 can go below zero.
    """

    b_simple: Tensor
    trace_cov: Tensor
    grad_sq: Tensor
    batch_size: int


def _example_count(batch: Mapping[str, Tensor], axis: int) -> int:
    sizes = {t.shape[axis] for t in batch.values()}
    if len(sizes) != 1:
        raise OptiscopeError(
            "per-example gradients need every batch tensor to share its example axis; "
            f"got sizes {sorted(sizes)}"
        )
    return sizes.pop()


def gradient_noise_scale(
    loss_fn: LossFn,
    params: Params,
    batch: BatchLike,
    *,
    ensemble_dims: int = 0,
    chunk_size: int | None = 32,
) -> NoiseScale:
    """B_simple from per-example gradients (vmapped over examples, in chunks for memory).

    `loss_fn(params, batch)` must be a mean over examples along axis 0 of every batch tensor
    (per member), as classification losses are; each example is passed as a batch of one.
    Only the per-example squared norms are kept, so memory is one chunk of gradients.
    """
    check_ensemble_dims(ensemble_dims)
    if batch is None:
        raise OptiscopeError("gradient_noise_scale needs a batch of examples")

    def core(_bound: LossFn, p: Params, data: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        def example_sq_norm(ex: dict[str, Tensor]) -> Tensor:
            g = grad(loss_fn)(p, {k: v.unsqueeze(0) for k, v in ex.items()})
            return sum(t.pow(2).sum() for t in g.values())

        sq = vmap(example_sq_norm, chunk_size=chunk_size)(data)
        g_mean = grad(loss_fn)(p, data)
        return sq.sum(), sum(t.pow(2).sum() for t in g_mean.values())

    per_member, shared = split_batch(batch)
    if shared:
        raise OptiscopeError("gradient_noise_scale takes per-example data only (no shared part)")
    n = _example_count(per_member, ensemble_dims)
    if n < 2:
        raise OptiscopeError(f"gradient_noise_scale needs at least 2 examples, got {n}")
    sum_sq, mean_sq = over_members(
        core, loss_fn, params, None, (per_member,), ensemble_dims=ensemble_dims
    )
    trace_cov = (sum_sq - n * mean_sq) / (n - 1)
    grad_sq = mean_sq - trace_cov / n
    return NoiseScale(trace_cov / grad_sq, trace_cov, grad_sq, n)
