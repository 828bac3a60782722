"""Properties of a solution's weights, per tensor (Pascanu et al. 2025, arXiv 2507.12224).

The optimizer changes *which* solution is found: how sparse, how low-rank, how large in which
norm, how far from where it started. Each function takes a tensor whose first `ensemble_dims`
axes index members (0 or 1) and returns one value per member, batched (no member loop; SVDs
are batched by torch.linalg). A weight matrix is (d_out, d_in) as in `torch.nn.Linear`; a
tensor with more trailing axes is flattened to (d_out, -1) (conv filters, as Muon does).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping

import torch
from torch import Tensor

from optiscope.core.members import check_ensemble_dims, flat_member
from optiscope.errors import OptiscopeError

#: Roles whose tensors are treated as matrices (ranks and operator norms are computed).
MATRIX_ROLES = ("hidden", "head", "embedding")
#: Default thresholds for "near zero" in `sparsity` (absolute values).
DEFAULT_THRESHOLDS = (1e-3, 1e-2)


def _flat(w: Tensor, ensemble_dims: int) -> Tensor:
    check_ensemble_dims(ensemble_dims)
    return flat_member(w, ensemble_dims)


def _matrix(w: Tensor, ensemble_dims: int) -> Tensor:
    check_ensemble_dims(ensemble_dims)
    if w.dim() - ensemble_dims < 2:
        raise OptiscopeError(
            f"a matrix property needs a tensor with at least 2 axes per member, got shape {tuple(w.shape)}"
            f" with ensemble_dims={ensemble_dims}"
        )
    return w.reshape(*w.shape[: ensemble_dims + 1], -1)


# -- sparsity ---------------------------------------------------------------------------------
def sparsity(w: Tensor, threshold: float, ensemble_dims: int = 0) -> Tensor:
    """Fraction of entries with |w| <= threshold (a near-zero count; prunable weights)."""
    if threshold < 0:
        raise OptiscopeError(f"threshold must be >= 0, not {threshold}")
    return (_flat(w, ensemble_dims).abs() <= threshold).to(w.dtype).mean(-1)


def hoyer_sparsity(w: Tensor, ensemble_dims: int = 0) -> Tensor:
    """(sqrt(n) - ||w||_1 / ||w||_2) / (sqrt(n) - 1) (Hoyer 2004): 0 dense-uniform, 1 one-hot.

    A scale-free measure, unlike a threshold count; 0 for an all-zero tensor by convention.
    """
    x = _flat(w, ensemble_dims)
    n = x.shape[-1]
    if n < 2:
        return torch.zeros(x.shape[:-1], dtype=w.dtype, device=w.device)
    l1 = x.abs().sum(-1)
    l2 = torch.linalg.vector_norm(x, dim=-1)
    ratio = torch.where(l2 > 0, l1 / torch.where(l2 > 0, l2, torch.ones_like(l2)), torch.full_like(l2, math.sqrt(n)))
    return (math.sqrt(n) - ratio) / (math.sqrt(n) - 1)


# -- spectra ----------------------------------------------------------------------------------
def singular_values(w: Tensor, ensemble_dims: int = 0) -> Tensor:
    """Singular values, descending, per member."""
    return torch.linalg.svdvals(_matrix(w, ensemble_dims))


def effective_rank(w: Tensor, ensemble_dims: int = 0) -> Tensor:
    """exp(H(p)) with p = sigma / sum(sigma) (Roy & Vetterli 2007); between 1 and min(d_out, d_in)."""
    s = singular_values(w, ensemble_dims)
    p = s / s.sum(-1, keepdim=True).clamp_min(torch.finfo(s.dtype).tiny)
    entropy = -torch.special.xlogy(p, p).sum(-1)
    return torch.exp(entropy)


def stable_rank(w: Tensor, ensemble_dims: int = 0) -> Tensor:
    """||W||_F^2 / ||W||_2^2 (Rudelson & Vershynin 2007): a rank that ignores tiny directions."""
    s = singular_values(w, ensemble_dims)
    return (s**2).sum(-1) / (s[..., 0] ** 2).clamp_min(torch.finfo(s.dtype).tiny)


def spectral_norm(w: Tensor, ensemble_dims: int = 0) -> Tensor:
    """||W||_2, the largest singular value."""
    return singular_values(w, ensemble_dims)[..., 0]


def frobenius_norm(w: Tensor, ensemble_dims: int = 0) -> Tensor:
    """||W||_F (the l2 norm of all entries; defined for any tensor)."""
    return torch.linalg.vector_norm(_flat(w, ensemble_dims), dim=-1)


def rms_rms_norm(w: Tensor, ensemble_dims: int = 0) -> Tensor:
    """RMS -> RMS operator norm sqrt(d_in / d_out) ||W||_2 (Bernstein & Newhouse 2024)."""
    m = _matrix(w, ensemble_dims)
    d_out, d_in = m.shape[-2], m.shape[-1]
    return math.sqrt(d_in / d_out) * torch.linalg.matrix_norm(m, ord=2)


def relative_distance(w: Tensor, w0: Tensor, ensemble_dims: int = 0) -> Tensor:
    """||W - W0||_F / ||W0||_F: how far training moved a tensor from its initialisation."""
    if w.shape != w0.shape:
        raise OptiscopeError(f"w and w0 must have the same shape, got {tuple(w.shape)} and {tuple(w0.shape)}")
    num = frobenius_norm(w - w0, ensemble_dims)
    den = frobenius_norm(w0, ensemble_dims)
    return num / den


def _singular_values_by_gram(m: Tensor) -> Tensor:
    """Singular values (descending) as sqrt(eig(M M^T)) of the smaller Gram matrix, in float64.

    About twice as fast as `svdvals` on CPU for the trajectory probes; squaring the condition
    number in float64 only blurs singular values below ~1e-8 of the largest, which do not move
    effective rank, stable rank or norms.
    """
    m64 = m.double()
    gram = m64 @ m64.mT if m.shape[-2] <= m.shape[-1] else m64.mT @ m64
    eig = torch.linalg.eigvalsh(gram).clamp_min(0).flip(-1)
    return eig.sqrt().to(torch.float32 if m.dtype in (torch.float16, torch.bfloat16) else m.dtype)


# -- all of them, per tensor ------------------------------------------------------------------
def threshold_label(t: float) -> str:
    """1e-3 for 0.001: the form used in metric names (`sparsity@1e-3/layer1.weight`)."""
    mantissa, exponent = f"{t:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}" if t else "0"


def tensor_properties(
    params: Mapping[str, Tensor],
    init_params: Mapping[str, Tensor] | None = None,
    roles: Mapping[str, str] | None = None,
    thresholds: Iterable[float] = DEFAULT_THRESHOLDS,
    ensemble_dims: int = 0,
) -> dict[str, Tensor]:
    """Every per-tensor property as `{property}/{tensor}` -> value per member.

    All tensors: sparsity at each threshold, Hoyer, Frobenius norm and (with `init_params`)
    relative distance from init. Tensors whose role is a matrix role (`MATRIX_ROLES`; every
    tensor with >= 2 axes when `roles` is None): effective and stable rank, spectral and
    RMS -> RMS norms, from one batched SVD.
    """
    out: dict[str, Tensor] = {}
    thresholds = tuple(thresholds)
    for name, w in params.items():
        for t in thresholds:
            out[f"sparsity@{threshold_label(t)}/{name}"] = sparsity(w, t, ensemble_dims)
        out[f"hoyer/{name}"] = hoyer_sparsity(w, ensemble_dims)
        out[f"frobenius_norm/{name}"] = frobenius_norm(w, ensemble_dims)
        if init_params is not None and name in init_params and bool(init_params[name].ne(0).any()):
            # Left out for tensors initialised at zero (biases, gains' offsets): undefined there.
            out[f"dist_from_init/{name}"] = relative_distance(w, init_params[name].to(w), ensemble_dims)
        is_matrix = (roles or {}).get(name) in MATRIX_ROLES if roles is not None else w.dim() - ensemble_dims >= 2
        if is_matrix and w.dim() - ensemble_dims >= 2:
            m = _matrix(w, ensemble_dims)
            s = _singular_values_by_gram(m)
            p = s / s.sum(-1, keepdim=True).clamp_min(torch.finfo(s.dtype).tiny)
            top = s[..., 0].clamp_min(torch.finfo(s.dtype).tiny)
            out[f"eff_rank/{name}"] = torch.exp(-torch.special.xlogy(p, p).sum(-1))
            out[f"stable_rank/{name}"] = (s**2).sum(-1) / top**2
            out[f"spectral_norm/{name}"] = s[..., 0]
            out[f"rms_rms_norm/{name}"] = math.sqrt(m.shape[-1] / m.shape[-2]) * s[..., 0]
    return out


_NAME = re.compile(r"^(?P<prop>[^/]+)/(?P<tensor>.+)$")


def split_metric_name(name: str) -> tuple[str, str | None]:
    """('eff_rank', 'layer1.weight') for 'eff_rank/layer1.weight'; (name, None) for a global."""
    m = _NAME.match(name)
    return (m["prop"], m["tensor"]) if m else (name, None)
