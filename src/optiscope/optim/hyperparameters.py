"""Hyperparameter ranges, declared once in each optimizer's signature, and the one accessor pieces
read hyperparameters through.

A range is a pydantic annotation on the argument (``lr: NonNegative = 1e-3``); the same
signature checks a config (optiscope.settings.validate_settings turns it into a pydantic model)
and a direct construction (`checked`), and the error names the argument and the allowed range.

Any scalar hyperparameter may also be a per-member tensor of shape (S,) (issue 8: one ensemble,
one setting per member): `checked` validates its smallest and largest entries (every range is an
interval) and `member_value` reshapes it to broadcast against a member-stacked tensor.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any

import torch
from pydantic import Field
from torch import Tensor

from optiscope.core import per_member
from optiscope.errors import OptiscopeError

#: [0, inf): learning rates, weight decay, noise scales.
NonNegative = Annotated[float, Field(ge=0.0)]
#: (0, inf): step sizes and scales that must move.
Positive = Annotated[float, Field(gt=0.0)]
#: [0, 1): momenta and moment decay rates.
Fraction = Annotated[float, Field(ge=0.0, lt=1.0)]
#: (0, 1): line-search constants.
OpenFraction = Annotated[float, Field(gt=0.0, lt=1.0)]
#: [1, inf): growth factors.
AtLeastOne = Annotated[float, Field(ge=1.0)]
#: 1, 2, ...: counts and intervals.
Count = Annotated[int, Field(ge=1)]
#: (beta1, beta2) of Adam-like moments.
Betas = tuple[Fraction, Fraction]


class HyperparameterError(OptiscopeError, ValueError):
    """A hyperparameter outside its allowed range; the message names the argument."""


def checked(init: Callable[..., Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """The settings of `init`'s signature taken from `values` (its locals), validated and coerced.

    Raises HyperparameterError naming the argument and the allowed range. Per-member tensors
    are checked entry-wise (by their extremes) and returned unchanged.
    """
    from optiscope.settings import signature_settings, validate_settings

    given = {k: values[k] for k in signature_settings(init) if k in values}
    with_tensors = {k for k, v in given.items() if _has_tensor(v)}
    name = init.__qualname__.split(".")[0]
    try:
        for extreme in (torch.amin, torch.amax):  # intervals: both ends inside, all inside
            ends = {k: _replace_tensors(v, extreme) for k, v in given.items()}
            out = validate_settings("optimizer", name, init, ends)
    except OptiscopeError as exc:
        raise HyperparameterError(str(exc)) from None
    return {**out, **{k: given[k] for k in with_tensors}}


def _has_tensor(value: Any) -> bool:
    if isinstance(value, (tuple, list)):
        return any(_has_tensor(v) for v in value)
    return isinstance(value, Tensor)


def _replace_tensors(value: Any, extreme: Callable[[Tensor], Tensor]) -> Any:
    """`value` with every tensor (also inside tuples: betas) replaced by one extreme entry."""
    if isinstance(value, (tuple, list)):
        return type(value)(_replace_tensors(v, extreme) for v in value)
    if isinstance(value, Tensor):
        return float(extreme(value.detach().double()))
    return value


def member_value(value: Any, like: Tensor, ensemble_dims: int) -> Any:
    """A hyperparameter as used on tensor `like`: a number as it is, a per-member tensor (S,)
    on `like`'s device and dtype, shaped to broadcast against it."""
    if isinstance(value, Tensor):
        return per_member(value.to(device=like.device, dtype=like.dtype), like, ensemble_dims)
    return value


def is_zero(value: Any) -> bool:
    """True when a hyperparameter (number or per-member tensor) is zero for every member."""
    return bool((value == 0).all()) if isinstance(value, Tensor) else value == 0


def is_per_member(group: Mapping[str, Any]) -> bool:
    """True when some hyperparameter of the param group is a per-member tensor."""
    return any(isinstance(v, Tensor) for k, v in group.items() if k != "params")
