"""Running a single-member probe on every member of an ensemble at once.

Every probe in `optiscope.probes` is written for one member, as a pure function of a params dict
(so it composes with `torch.func`), and takes `ensemble_dims`: with ``ensemble_dims=1`` axis 0
of every parameter tensor indexes members and the probe is `vmap`ped over it, with no Python
loop over members. A loss is then ``loss_fn(params, batch)`` (a task's `loss`), and `batch` holds
each member's data with a leading member axis (a `MemberBatch`, whose `shared` part is not
copied per member); with ``ensemble_dims=0`` a loss is ``loss_fn(params)``, or
``loss_fn(params, batch)`` when a batch is given.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from torch import Tensor
from torch.func import vmap

from optiscope.core.members import check_ensemble_dims
from optiscope.tasks.base import MemberBatch

Params = dict[str, Tensor]
LossFn = Callable[..., Tensor]
BatchLike = MemberBatch | Mapping[str, Tensor] | None


def split_batch(batch: BatchLike) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """(per-member part, shared part) of a batch; a plain dict is all per-member."""
    if batch is None:
        return {}, {}
    if isinstance(batch, MemberBatch):
        return dict(batch.per_member), dict(batch.shared)
    return dict(batch), {}


def bind(loss_fn: LossFn, batch: Mapping[str, Tensor] | None) -> Callable[[Params], Tensor]:
    """The loss as a function of params alone (closing over one member's batch)."""
    if batch is None:
        return loss_fn
    data = dict(batch)
    return lambda p: loss_fn(p, data)


def over_members(
    core: Callable[..., Any],
    loss_fn: LossFn,
    params: Params,
    batch: BatchLike,
    member_args: tuple[Any, ...] = (),
    *,
    ensemble_dims: int = 0,
    chunk_size: int | None = None,
) -> Any:
    """``core(bound_loss, params, *member_args)`` for one member, or vmapped over members.

    `member_args` are pytrees with a leading member axis when ``ensemble_dims=1`` (random probe
    vectors drawn outside the vmap, so that results do not depend on vmap's randomness rules).
    """
    check_ensemble_dims(ensemble_dims)
    per_member, shared = split_batch(batch)
    if ensemble_dims == 0:
        merged = None if batch is None else {**per_member, **shared}
        return core(bind(loss_fn, merged), params, *member_args)

    def one(p: Params, pm: dict[str, Tensor], *args: Any) -> Any:
        merged = None if batch is None else {**pm, **shared}
        return core(bind(loss_fn, merged), p, *args)

    in_dims = (0, 0, *([0] * len(member_args)))
    return vmap(one, in_dims=in_dims, chunk_size=chunk_size)(params, per_member, *member_args)


__all__ = ["BatchLike", "LossFn", "Params", "bind", "over_members", "split_batch"]
