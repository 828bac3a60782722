"""Parameter roles for optimizers: which tensor is a hidden matrix, an embedding, a bias...

The task names each tensor's role (`Task.roles()`, one of optiscope.core.roles.ROLES). An
optimizer that assigns a norm per role (Steepest) or splits matrices from the rest (Muon) sets
the class attribute `wants_roles = True`; the engines then build one param group per tensor with
a `role` key through `parameters_for`. Without roles (a user's own list of tensors), `infer_role`
guesses from the shape.

In a plain PyTorch loop, `param_groups(model)` gives the optimizer the same roles a task would,
read from the module types (`module_roles`), so `Muon(param_groups(model))` leaves the
embeddings and the head to AdamW as the reference recipe does, and a `Steepest` `norm_map` entry
for biases or gains reaches them. `model.parameters()` has no roles: only shapes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from optiscope.core.roles import ROLES

#: Normalisation layers: their weights are gains.
NORM_LAYERS = (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._NormBase, nn.RMSNorm)


def head_name(module: nn.Module) -> str | None:
    """Name of the last `Linear` submodule (in registration order): the head."""
    linears = [name for name, m in module.named_modules() if isinstance(m, nn.Linear)]
    return linears[-1] if linears else None


def module_roles(module: nn.Module) -> dict[str, str]:
    """Role of each named parameter of `module`, from the module types.

    An `Embedding`'s weight is "embedding"; the weight of the *last* `Linear` is "head"; other
    `Linear` and `Conv` weights are "hidden"; normalisation weights (LayerNorm, GroupNorm,
    BatchNorm, RMSNorm) are "gain"; every parameter called `bias` is "bias"; anything else is
    "hidden" if it is a matrix or more, else "vector". A parameter shared by two modules gets
    the role of its first owner.
    """
    head = head_name(module)
    roles: dict[str, str] = {}
    seen: set[int] = set()
    for mod_name, m in module.named_modules():
        for p_name, p in m.named_parameters(recurse=False):
            if id(p) in seen:
                continue
            seen.add(id(p))
            full = f"{mod_name}.{p_name}" if mod_name else p_name
            if p_name == "bias":
                roles[full] = "bias"
            elif isinstance(m, nn.Embedding):
                roles[full] = "embedding"
            elif isinstance(m, nn.Linear) and mod_name == head:
                roles[full] = "head"
            elif isinstance(m, NORM_LAYERS):
                roles[full] = "gain"
            else:
                roles[full] = "hidden" if p.ndim >= 2 else "vector"
    return roles


def param_groups(model: nn.Module, **options: Any) -> list[dict[str, Any]]:
    """`model`'s trainable parameters as one param group per tensor with its `role` and `name`:
    what to pass an optimizer that reads roles (Muon, Steepest) in a plain PyTorch loop.

    `options` (say `weight_decay=0.0`) are added to every group. Any torch.optim optimizer
    accepts the result (it ignores `role` and `name`), and LR schedulers treat the groups as usual.
    """
    roles = module_roles(model)
    named = dict(model.named_parameters())
    return [
        {"params": [p], "role": roles[k], "name": k, **options}
        for k, p in named.items() if p.requires_grad
    ]


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
