"""Parameter roles for optimizers: which tensor is a hidden matrix, an embedding, a bias...

The task names each tensor's role (`Task.roles()`, one of optiscope.core.roles.ROLES). An
optimizer that assigns a norm per role (Steepest) or splits matrices from the rest (Muon) sets
the class attribute `wants_roles = True`; the engines then build one param group per tensor with
a `role` key through `parameters_for`. Without roles (a user's own list of tensors), `infer_role`
guesses from the shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor

from optiscope.core.roles import ROLES


def parameters_for(
    optimizer_cls: type, params: Mapping[str, Tensor], roles: Mapping[str, str]
) -> list[Any]:
    """What to pass an optimizer class as `params`: a flat list, or, for classes that want
    roles, one group per tensor ``{"params": [p], "role": role, "name": name}``."""
    if not getattr(optimizer_cls, "wants_roles", False):
        return list(params.values())
    return [{"params": [p], "role": roles.get(k, ""), "name": k} for k, p in params.items()]


def infer_role(p: Tensor, ensemble_dims: int) -> str:
    """A tensor's role from its shape alone: matrices are `hidden`, the rest `vector`."""
    return "hidden" if p.dim() - ensemble_dims >= 2 else "vector"


def role_of(group: Mapping[str, Any], p: Tensor, ensemble_dims: int) -> str:
    """The group's `role` if it names one, else the role inferred from the shape."""
    role = group.get("role") or ""
    return role if role in ROLES else infer_role(p, ensemble_dims)
