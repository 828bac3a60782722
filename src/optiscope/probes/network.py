"""Properties of a whole network: dead units, margins, representations, similarity and
connectivity of members.

Dead units, margins and the representation measures (cross-class cosine, effective rank) are
per member; CKA and the loss barrier compare members with each other
(Pascanu et al. 2025 list both as ways optimizers shape solutions). Activations and logits are
tensors with leading member axes where given; nothing loops over members.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import Tensor
from torch.func import vmap

from optiscope.core.members import check_ensemble_dims
from optiscope.errors import OptiscopeError
from optiscope.probes.members import BatchLike, LossFn, Params, split_batch
from optiscope.probes.solution import effective_rank


def dead_unit_fraction(activations: Tensor) -> Tensor:
    """Fraction of units that are <= 0 on every example: (..., n_examples, units) -> (...).

    For ReLU activations a unit that never fires on the probe batch gets no gradient there
    (Lu et al. 2019 "Dying ReLU"); it is a simple, batch-dependent proxy for lost capacity.
    """
    if activations.dim() < 2:
        raise OptiscopeError(f"activations must be (..., examples, units), got shape {tuple(activations.shape)}")
    return (activations <= 0).all(-2).to(activations.dtype).mean(-1)


def classification_margin(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean over examples of z_y - max_{c != y} z_c: (..., n, C), (..., n) -> (...).

    Negative on misclassified examples; the mean is the unnormalised output margin. A binary
    classifier with one logit per example (logits shaped like labels in {0, 1}) has margin
    (2y - 1) z, the same quantity for the two-logit model (0, z).
    """
    if logits.shape == labels.shape:
        return ((2 * labels.to(logits.dtype) - 1) * logits).mean(-1)
    if logits.shape[:-1] != labels.shape:
        raise OptiscopeError(f"logits (..., n, C) and labels (..., n) disagree: {tuple(logits.shape)} vs {tuple(labels.shape)}")
    true = logits.gather(-1, labels[..., None]).squeeze(-1)
    others = logits.scatter(-1, labels[..., None], float("-inf"))
    return (true - others.amax(-1)).mean(-1)


def class_mean_cosine(activations: Tensor, labels: Tensor, n_classes: int | None = None) -> Tensor:
    """Mean over pairs of distinct classes of cos(mu_c, mu_c'), mu_c the class-mean activation:
    (..., n, units), (..., n) -> (...).

    Pascanu et al. 2025 (arXiv 2507.12224) read localized representations off the cross-class
    cosine similarity C_ab = cos(mu_a, mu_b) of mean hidden activations per class: lower means
    the classes use more separate units. Classes absent from the examples are skipped, and so is
    a class whose mean is the zero vector (its cosine is undefined); NaN where fewer than two
    classes remain (all-zero activations, a one-class batch), never inf.
    """
    if activations.dim() < 2 or activations.shape[:-1] != labels.shape:
        raise OptiscopeError(
            f"activations (..., n, units) and labels (..., n) disagree: {tuple(activations.shape)} vs {tuple(labels.shape)}"
        )
    c = int(labels.max()) + 1 if n_classes is None else n_classes
    onehot = torch.nn.functional.one_hot(labels.long(), c).to(activations.dtype)  # (..., n, C)
    counts = onehot.sum(-2)  # (..., C)
    means = (onehot.mT @ activations) / counts.clamp_min(1)[..., None]  # (..., C, units)
    norms = torch.linalg.vector_norm(means, dim=-1)
    ok = (counts > 0) & (norms > 0)
    unit = means / torch.where(ok, norms, torch.ones_like(norms))[..., None]
    cos = unit @ unit.mT
    pairs = ok[..., :, None] & ok[..., None, :] & ~torch.eye(c, dtype=torch.bool, device=cos.device)
    n_pairs = pairs.sum((-2, -1))
    total = torch.where(pairs, cos, torch.zeros_like(cos)).sum((-2, -1))
    return torch.where(n_pairs > 0, total / n_pairs.clamp_min(1), torch.full_like(total, float("nan")))


def representation_effective_rank(activations: Tensor) -> Tensor:
    """exp(entropy of sigma / sum(sigma)) of the (examples x units) matrix: (..., n, units) -> (...).

    The effective rank of Roy & Vetterli (2007), as the weights' `eff_rank`, of the uncentred
    representation matrix: how many directions the examples' activations spread over (between 1
    and min(n, units)). NaN for all-zero activations (no spectrum to normalise), never inf.
    """
    if activations.dim() < 2:
        raise OptiscopeError(f"activations must be (..., examples, units), got shape {tuple(activations.shape)}")
    lead, matrix = activations.shape[:-2], activations.shape[-2:]
    rank = effective_rank(activations.reshape(-1, *matrix), ensemble_dims=1).reshape(lead)
    live = activations.abs().amax((-2, -1)) > 0
    return torch.where(live, rank, torch.full_like(rank, float("nan")))


def _centred_gram(x: Tensor) -> Tensor:
    x = x - x.mean(-2, keepdim=True)
    return x @ x.transpose(-1, -2)


def linear_cka(x: Tensor, y: Tensor) -> Tensor:
    """Linear CKA (Kornblith et al. 2019) of representations (..., n, d1) and (..., n, d2).

    CKA = <K_x, K_y>_F / (||K_x||_F ||K_y||_F) with K the centred Gram matrices of the same n
    inputs; invariant to orthogonal transforms and isotropic scaling of either representation.
    """
    if x.shape[-2] != y.shape[-2]:
        raise OptiscopeError(f"x and y must describe the same examples (axis -2): {tuple(x.shape)} vs {tuple(y.shape)}")
    kx, ky = _centred_gram(x), _centred_gram(y)
    num = (kx * ky).sum((-2, -1))
    return num / (torch.linalg.matrix_norm(kx) * torch.linalg.matrix_norm(ky))


def linear_cka_matrix(representations: Tensor) -> Tensor:
    """(S, S) linear CKA between every pair of members' representations (S, n, d)."""
    k = _centred_gram(representations).flatten(1)
    k = k / torch.linalg.vector_norm(k, dim=1, keepdim=True)
    return k @ k.T


def mean_cka_to_others(representations: Tensor, valid: Tensor | None = None) -> Tensor:
    """For each member, its mean CKA to the other members (S,): how alike the solutions are.

    `valid` (S,) bool leaves members out as partners (diverged ones); they get NaN themselves.
    """
    s = representations.shape[0]
    valid = torch.ones(s, dtype=torch.bool, device=representations.device) if valid is None else valid
    m = linear_cka_matrix(representations)
    partners = valid[None, :] & ~torch.eye(s, dtype=torch.bool, device=m.device)
    count = partners.sum(1)
    mean = torch.where(partners, m, torch.zeros_like(m)).sum(1) / count.clamp_min(1)
    return torch.where(valid & (count > 0), mean, torch.full_like(mean, float("nan")))


# -- linear mode connectivity ----------------------------------------------------------------
def loss_along_line(
    loss_fn: LossFn,
    params_a: Params,
    params_b: Params,
    alphas: Tensor,
    *,
    batch: BatchLike = None,
    ensemble_dims: int = 0,
) -> Tensor:
    """L((1 - alpha) theta_a + alpha theta_b) for each alpha: (..., len(alphas))."""
    check_ensemble_dims(ensemble_dims)
    per_member, shared = split_batch(batch)

    def at(pa: Params, pb: Params, pm: Mapping[str, Tensor], alpha: Tensor) -> Tensor:
        p = {k: torch.lerp(pa[k], pb[k], alpha) for k in pa}
        return loss_fn(p) if batch is None else loss_fn(p, {**pm, **shared})

    line = vmap(at, in_dims=(None, None, None, 0))
    if ensemble_dims:
        line = vmap(line, in_dims=(0, 0, 0, None))
    return line(params_a, params_b, per_member, alphas.to(next(iter(params_a.values())).dtype))


def loss_barrier(
    loss_fn: LossFn,
    params_a: Params,
    params_b: Params,
    points: int = 11,
    *,
    batch: BatchLike = None,
    ensemble_dims: int = 0,
) -> Tensor:
    """max_alpha [L(theta_alpha) - ((1 - alpha) L(theta_a) + alpha L(theta_b))] on a grid.

    Frankle et al. 2020 (linear mode connectivity): 0 when the straight path between the two
    solutions is no worse than the chord, positive when a barrier separates them. The grid of
    `points` includes both ends, so the result is >= 0.
    """
    if points < 2:
        raise OptiscopeError(f"points must be >= 2 (the two ends at least), not {points}")
    alphas = torch.linspace(0.0, 1.0, points, dtype=next(iter(params_a.values())).dtype)
    losses = loss_along_line(loss_fn, params_a, params_b, alphas, batch=batch, ensemble_dims=ensemble_dims)
    a = alphas.to(losses)
    chord = (1 - a) * losses[..., :1] + a * losses[..., -1:]
    return (losses - chord).amax(-1)


def rolled(params: Params, shift: int = 1) -> Params:
    """Member i gets member (i + shift) mod S's parameters: the partner in pairwise probes."""
    return {k: torch.roll(v, -shift, dims=0) for k, v in params.items()}


RepresentationFn = Callable[[Params, Mapping[str, Tensor]], dict[str, Tensor]]
