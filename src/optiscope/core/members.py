"""Per-member axis helpers: the leading `ensemble_dims` axes of a tensor index members.

Every ensemble-aware piece (optimizers, probes, tasks) holds a member's tensor behind
``ensemble_dims`` leading axes (0: one member, 1: axis 0 indexes members). These helpers say which
axes belong to one member, reduce over them, reshape per-member values to broadcast, and flatten
a params dict to one vector per member and back. They live in one place so that optimizers and
probes agree on the convention (and `optim` does not import `tasks` or `probes` for it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import Tensor

from optiscope.errors import OptiscopeError

Params = dict[str, Tensor]


def check_ensemble_dims(ensemble_dims: int, error: type[Exception] = OptiscopeError) -> None:
    """Raise `error` unless `ensemble_dims` is 0 or 1 (the two conventions supported)."""
    if ensemble_dims not in (0, 1):
        raise error(
            f"ensemble_dims must be 0 (one member) or 1 (axis 0 indexes members), not {ensemble_dims!r}"
        )


def member_dims(t: Tensor, ensemble_dims: int) -> tuple[int, ...]:
    """The axes of `t` that belong to one member (everything after the ensemble axes)."""
    return tuple(range(ensemble_dims, t.dim()))


def member_shape(t: Tensor, ensemble_dims: int) -> torch.Size:
    """The shape of one member's slice of `t`."""
    return t.shape[ensemble_dims:]


def n_members(params: Mapping[str, Tensor]) -> int:
    """Size of axis 0 of the first tensor (the ensemble size when ``ensemble_dims=1``)."""
    return next(iter(params.values())).shape[0]


def member_numel(params: Mapping[str, Tensor], ensemble_dims: int) -> int:
    """Number of parameters of one member."""
    return sum(t[(0,) * ensemble_dims].numel() for t in params.values())


def per_member(values: Tensor, like: Tensor, ensemble_dims: int) -> Tensor:
    """Reshape per-member values (shape (S,), or () or (1,) for one member) to broadcast
    against `like`."""
    if ensemble_dims == 0:
        return values.reshape(())
    return values.reshape(values.shape[:ensemble_dims] + (1,) * (like.dim() - ensemble_dims))


def member_norm(t: Tensor, ensemble_dims: int, ord: float = 2.0, *, keepdim: bool = True) -> Tensor:
    """Vector p-norm of each member's slice of `t` (by default shaped to broadcast against `t`)."""
    dims = member_dims(t, ensemble_dims)
    if not dims:  # vector_norm reads dim=() as "all axes"
        return t.abs()
    return torch.linalg.vector_norm(t, ord=ord, dim=dims, keepdim=keepdim)


def member_sum(t: Tensor, ensemble_dims: int, *, keepdim: bool = True) -> Tensor:
    """Sum of each member's slice of `t` (by default shaped to broadcast against `t`)."""
    dims = member_dims(t, ensemble_dims)
    return t.sum(dim=dims, keepdim=keepdim) if dims else t


def member_sq_norm(tensors: Iterable[Tensor], ensemble_dims: int) -> Tensor:
    """Sum of squares over all `tensors`, per member: shape (S,) or ()."""
    total = None
    for t in tensors:
        dims = member_dims(t, ensemble_dims)
        sq = t.square().sum(dim=dims) if dims else t.square()
        total = sq if total is None else total + sq
    if total is None:
        raise OptiscopeError("member_sq_norm needs at least one tensor")
    return total


def flat_member(t: Tensor, ensemble_dims: int) -> Tensor:
    """One tensor as one vector per member: (*lead, *shape) -> (*lead, n)."""
    return t.reshape(*t.shape[:ensemble_dims], -1)


def flatten_params(params: Mapping[str, Tensor], lead: int = 0) -> Tensor:
    """A params dict as one vector per leading index: tensors (*lead, *shape) -> (*lead, n).

    `lead` is the number of leading axes kept (``ensemble_dims``, plus one for a batch of
    vectors); the tensors are concatenated in dict order.
    """
    return torch.cat([t.reshape(*t.shape[:lead], -1) for t in params.values()], dim=-1)


def unflatten_params(x: Tensor, like: Mapping[str, Tensor], ensemble_dims: int = 0) -> Params:
    """Inverse of `flatten_params` for vectors (*lead, n) of one member's size; `like` gives the
    names and (after its `ensemble_dims` leading axes) the shapes."""
    out: Params = {}
    offset = 0
    lead = x.shape[:-1]
    for k, t in like.items():
        shape = t.shape[ensemble_dims:]
        n = shape.numel()
        out[k] = x[..., offset : offset + n].reshape((*lead, *shape))
        offset += n
    return out
