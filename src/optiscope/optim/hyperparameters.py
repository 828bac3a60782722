"""Hyperparameters: each declared once, with its range and default, and the one accessor pieces
read them through.

A `Hyperparameter` names a setting, its range (a pydantic annotation) and its default; the ones
several optimizers share (lr, betas, eps, weight_decay, momentum, ...) are declared here once, and
an optimizer lists the ones it takes with `declare` (overriding defaults where it differs, as
NAdam's lr = 2e-3). `EnsembleOptimizer` turns that list into the class's ``__init__`` signature,
so one declaration checks a config (optiscope.settings.validate_settings makes it a pydantic
model), a direct construction (`checked`), and shows in `help()` and `optiscope list
optimizers`; the error names the argument and the allowed range.

Any scalar hyperparameter may also be a per-member tensor of shape (S,) (issue 8: one ensemble,
one setting per member): `checked` validates its smallest and largest entries (every range is an
interval) and `member_value` reshapes it to broadcast against a member-stacked tensor.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
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


@dataclass(frozen=True)
class Hyperparameter:
    """One setting of an optimizer: its name, its range (a pydantic annotation) and default."""

    name: str
    annotation: Any
    default: Any

    def parameter(self, kind: inspect._ParameterKind) -> inspect.Parameter:
        return inspect.Parameter(self.name, kind, default=self.default, annotation=self.annotation)


#: In a declaration, marks the hyperparameters after it keyword-only (``*`` in a signature).
KEYWORD_ONLY = "*"
#: A declaration: hyperparameters in signature order, possibly with one `KEYWORD_ONLY` mark.
Declaration = tuple[Hyperparameter | str, ...]

# The hyperparameters several optimizers share, each declared once (torch.optim's names).
LR = Hyperparameter("lr", NonNegative, 1e-3)
BETAS = Hyperparameter("betas", Betas, (0.9, 0.999))
EPS = Hyperparameter("eps", NonNegative, 1e-8)
WEIGHT_DECAY = Hyperparameter("weight_decay", NonNegative, 0.0)
DECOUPLED_WEIGHT_DECAY = Hyperparameter("decoupled_weight_decay", bool, False)
AMSGRAD = Hyperparameter("amsgrad", bool, False)
#: Momentum of the heavy ball / EMA kind, in [0, 1) (torch.optim.SGD's own allows any >= 0).
MOMENTUM = Hyperparameter("momentum", Fraction, 0.0)
#: torch.optim.SGD's and RMSprop's momentum: any value >= 0.
TORCH_MOMENTUM = Hyperparameter("momentum", NonNegative, 0.0)
NESTEROV = Hyperparameter("nesterov", bool, False)
MAXIMIZE = Hyperparameter("maximize", bool, False)
NOISE_STD = Hyperparameter("noise_std", NonNegative, 0.01)
TEMPERATURE = Hyperparameter("temperature", NonNegative, 1e-5)
SCALE_BY_DUAL_NORM = Hyperparameter("scale_by_dual_norm", bool, False)


def declare(*items: Hyperparameter | str | Declaration, **defaults: Any) -> Declaration:
    """The hyperparameters `items` (declarations are spliced in) in order, with `defaults`
    replacing the declared ones by name; an unknown name in `defaults` is an error."""
    flat: list[Hyperparameter | str] = []
    for item in items:
        flat.extend(item if isinstance(item, tuple) else (item,))
    names = {h.name for h in flat if isinstance(h, Hyperparameter)}
    unknown = sorted(set(defaults) - names)
    if unknown:
        raise TypeError(f"declare: no hyperparameter {unknown} to give a default")
    return tuple(
        replace(h, default=defaults[h.name]) if isinstance(h, Hyperparameter) and h.name in defaults
        else h
        for h in flat
    )


#: How torch.optim's Adam variants (Adam, AdamW, NAdam, ...) all begin.
ADAM_FAMILY: Declaration = declare(LR, BETAS, EPS, WEIGHT_DECAY)


def without(declaration: Declaration, *names: str) -> Declaration:
    """`declaration` less the hyperparameters `names` (a subclass that fixes them)."""
    return tuple(h for h in declaration if not (isinstance(h, Hyperparameter) and h.name in names))


def signature_of(declaration: Declaration) -> inspect.Signature:
    """``(self, params, <declared>, *, ..., ensemble_dims: int = 0)``: the ``__init__`` signature
    of an optimizer with this declaration."""
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    parameters = [inspect.Parameter("self", kind), inspect.Parameter("params", kind)]
    for h in declaration:
        if h == KEYWORD_ONLY:
            kind = inspect.Parameter.KEYWORD_ONLY
        else:
            parameters.append(h.parameter(kind))
    ensemble_dims = Hyperparameter("ensemble_dims", int, 0)
    return inspect.Signature([*parameters, ensemble_dims.parameter(inspect.Parameter.KEYWORD_ONLY)])


def checked(init: Callable[..., Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """The settings of `init`'s signature taken from `values`, validated and coerced.

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
