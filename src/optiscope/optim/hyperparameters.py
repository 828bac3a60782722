"""Hyperparameters: each declared once, with its range and default, and the one accessor pieces
read them through.

A `Hyperparameter` names a setting, its range (a pydantic annotation) and its default; the ones
several optimizers share (lr, betas, eps, weight_decay, momentum, ...) are declared here once, and
an optimizer lists the ones it takes with `declare` (overriding defaults where it differs, as
NAdam's lr = 2e-3). `EnsembleOptimizer` turns that list into the class's ``__init__`` signature,
so one declaration checks a config (optiscope.settings.validate_settings makes it a pydantic
model), a direct construction (`checked`), and shows in `help()` and `optiscope list
optimizers`; the error names the argument and the allowed range.

A hyperparameter declared `per_member` (by default: real numbers and tuples of them, such as
betas; never ints, bools, strings or choices) may also be a per-member tensor of shape (S,), or
for a tuple a tuple of such tensors and numbers (issues 8 and 10: one ensemble, one setting per
member, so a grid of values trains as one ensemble): `checked` validates its smallest and largest
entries (every range is an interval), `check_member_values` its shape, and `member_value`
reshapes it to broadcast against a member-stacked tensor. `per_member_names` lists them.
"""

from __future__ import annotations

import inspect
import types
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Annotated, Any, Union, get_args, get_origin

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
    """One setting of an optimizer: its name, its range (a pydantic annotation) and default.

    `per_member`: whether one ensemble may give each member its own value (a tensor of shape
    (S,)); None (the default) infers it from the annotation: True for real numbers and tuples of
    them, False for ints, bools, strings, choices and tables.

    `added_later`: declared after stores existed, with a default that reproduces the optimizer's
    earlier behaviour; at that default it is left out of a cell's id (`added_later_defaults`), so
    the cells stored before keep their ids (as optiscope.config.SETTINGS_ADDED_LATER for tasks).
    """

    name: str
    annotation: Any
    default: Any
    per_member: bool = None  # type: ignore[assignment]  # resolved in __post_init__
    added_later: bool = False

    def __post_init__(self) -> None:
        if self.per_member is None:
            object.__setattr__(self, "per_member", is_real_annotation(self.annotation))

    def parameter(self, kind: inspect._ParameterKind) -> inspect.Parameter:
        return inspect.Parameter(self.name, kind, default=self.default, annotation=self.annotation)


def is_real_annotation(annotation: Any) -> bool:
    """True for float, a constrained float, an optional float, or a tuple of floats."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return is_real_annotation(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        return bool(args) and all(is_real_annotation(a) for a in args)
    if origin is tuple:
        args = get_args(annotation)
        return bool(args) and Ellipsis not in args and all(is_real_annotation(a) for a in args)
    return annotation is float


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


def scalar_only(declaration: Declaration, *names: str) -> Declaration:
    """`declaration` with the hyperparameters `names` marked not per-member (one value for the
    whole ensemble: a numerical safeguard or a method's constants, say)."""
    missing = sorted(set(names) - {h.name for h in declaration if isinstance(h, Hyperparameter)})
    if missing:
        raise TypeError(f"scalar_only: no hyperparameter {missing}")
    return tuple(
        replace(h, per_member=False) if isinstance(h, Hyperparameter) and h.name in names else h
        for h in declaration
    )


def per_member_names(optimizer_cls: type) -> frozenset[str]:
    """The hyperparameters of `optimizer_cls` that may differ between the members of one
    ensemble (given as tensors of shape (S,)); empty for optimizers that are not
    optiscope's ensemble-aware ones (torch.optim, third-party classes)."""
    from optiscope.optim.base import EnsembleOptimizer

    if not (isinstance(optimizer_cls, type) and issubclass(optimizer_cls, EnsembleOptimizer)):
        return frozenset()
    accepted = inspect.signature(optimizer_cls.__init__).parameters
    return frozenset(
        h.name for h in optimizer_cls.hyperparameters
        if isinstance(h, Hyperparameter) and h.per_member and h.name in accepted
    )


def added_later_defaults(optimizer_cls: type) -> dict[str, Any]:
    """name -> default of the hyperparameters of `optimizer_cls` declared `added_later` (left
    out of a cell's id at that default); empty for classes without a declaration."""
    return {
        h.name: h.default for h in getattr(optimizer_cls, "hyperparameters", ())
        if isinstance(h, Hyperparameter) and h.added_later
    }


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


def declared_init(cls: type) -> Callable[..., None]:
    """An ``__init__`` for optimizer class `cls` whose signature is its `hyperparameters`
    declaration; it binds the arguments and passes them to `cls.configure`."""
    signature = signature_of(cls.hyperparameters)

    def __init__(self: Any, params: Iterable[Any], *args: Any, **kwargs: Any) -> None:
        bound = signature.bind(self, params, *args, **kwargs)
        bound.apply_defaults()
        given = dict(bound.arguments)
        del given["self"], given["params"]
        self.configure(params, given, given.pop("ensemble_dims"))

    __init__.__signature__ = signature  # type: ignore[attr-defined]
    __init__.__annotations__ = {
        p.name: p.annotation for p in signature.parameters.values() if p.annotation is not p.empty
    }
    __init__.__qualname__ = f"{cls.__qualname__}.__init__"
    __init__.__module__ = cls.__module__
    return __init__


def checked(init: Callable[..., Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """The settings of `init`'s signature taken from `values`, validated and coerced.

    Raises HyperparameterError naming the argument and the allowed range. Per-member tensors
    are checked entry-wise (by their extremes) and returned unchanged.
    """
    from optiscope.settings import signature_settings, validate_settings

    given = {k: values[k] for k in signature_settings(init) if k in values}
    with_tensors = {k for k, v in given.items() if has_tensor(v)}
    name = init.__qualname__.split(".")[0]
    try:
        for extreme in (torch.amin, torch.amax):  # intervals: both ends inside, all inside
            ends = {k: _replace_tensors(v, extreme) for k, v in given.items()}
            out = validate_settings("optimizer", name, init, ends)
    except OptiscopeError as exc:
        raise HyperparameterError(str(exc)) from None
    return {**out, **{k: given[k] for k in with_tensors}}


def has_tensor(value: Any) -> bool:
    """True when `value` is a tensor or a tuple/list holding one (a per-member value)."""
    if isinstance(value, (tuple, list)):
        return any(has_tensor(v) for v in value)
    return isinstance(value, Tensor)


def _replace_tensors(value: Any, extreme: Callable[[Tensor], Tensor]) -> Any:
    """`value` with every tensor (also inside tuples: betas) replaced by one extreme entry."""
    if isinstance(value, (tuple, list)):
        return type(value)(_replace_tensors(v, extreme) for v in value)
    if isinstance(value, Tensor):
        return float(extreme(value.detach().double()))
    return value


def check_per_member_names(owner: str, values: Mapping[str, Any], allowed: Iterable[str]) -> None:
    """Raise HyperparameterError if a name outside `allowed` is given a tensor."""
    allowed = frozenset(allowed)
    for name, value in values.items():
        if _tensors_in(value) and name not in allowed:
            raise HyperparameterError(
                f"{owner}: {name} cannot differ between members (given a tensor); "
                f"per-member hyperparameters: {', '.join(sorted(allowed)) or 'none'}"
            )


def check_member_shapes(owner: str, values: Mapping[str, Any], n_members: int | None) -> None:
    """Raise HyperparameterError unless every tensor in `values` (also inside tuples) has one
    real entry per member: shape (n_members,), or one entry when `n_members` is None (a single
    model, ensemble_dims=0)."""
    for name, value in values.items():
        for t in _tensors_in(value):
            ok = t.shape == (n_members,) if n_members is not None else t.numel() == 1
            if not ok or t.is_complex() or t.dtype == torch.bool:
                want = f"({n_members},), one per member" if n_members is not None else "() or (1,)"
                raise HyperparameterError(
                    f"{owner}: per-member {name} must be a real tensor of shape {want}; "
                    f"got shape {tuple(t.shape)}, dtype {t.dtype}"
                )


def _tensors_in(value: Any) -> list[Tensor]:
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _tensors_in(v)]
    return [value] if isinstance(value, Tensor) else []


def on_device(value: Any, device: torch.device, *, wide: bool = True) -> Any:
    """A hyperparameter with its per-member tensors (also inside tuples) copied to `device`
    (the group's own: a scheduler's in-place change stays in its group), as float64 if `wide`
    (float32 on mps, which has no float64); numbers unchanged."""
    if isinstance(value, (tuple, list)) and has_tensor(value):
        return tuple(on_device(v, device, wide=wide) for v in value)
    if isinstance(value, Tensor):
        dtype = (torch.float32 if device.type == "mps" else torch.float64) if wide else None
        placed = value.detach().to(device=device, dtype=dtype or value.dtype, copy=True)
        if value.device.type == "cpu":
            for name in _FACT_TESTS:  # known from the host copy: no device read at step time
                _fact(placed, name, source=value.detach().to(dtype or value.dtype))
        return placed
    return value


def member_value(value: Any, like: Tensor, ensemble_dims: int, *, cast: bool = True) -> Any:
    """A hyperparameter as used on tensor `like`: a number as it is, a per-member tensor (S,)
    on `like`'s device, shaped to broadcast against it, in `like`'s dtype if `cast` (else kept
    wide, float64, for arithmetic on the values themselves: 1 - beta2^t loses digits in float32
    that Python's float keeps)."""
    if isinstance(value, Tensor):
        value = value.to(device=like.device, dtype=like.dtype if cast else None)
        return per_member(value, like, ensemble_dims)
    return value


def all_positive(value: Any) -> bool:
    """True when a hyperparameter (number or per-member tensor) is > 0 for every member."""
    return bool((value > 0).all()) if isinstance(value, Tensor) else value > 0


#: Yes/no facts about the per-member hyperparameter tensors of param groups (all zero, none
#: zero), by identity and in-place version: a step asks them every time, and on a GPU each answer
#: would be a host synchronisation. They are learnt from the host copy when a value is placed on
#: its device (`on_device`); a value changed in place (a scheduler) is asked again once. Weak
#: references: an entry never keeps a tensor alive, and a reused id is not mistaken for it.
_FACTS: OrderedDict[tuple[int, str], tuple[weakref.ref, int, bool]] = OrderedDict()
_FACTS_KEPT = 4096
_FACT_TESTS: dict[str, Callable[[Tensor], Tensor]] = {
    "zero": lambda v: (v == 0).all(),
    "nonzero": lambda v: (v != 0).all(),
}


def _fact(value: Tensor, name: str, source: Tensor | None = None) -> bool:
    """Fact `name` of `value`: from the cache when it holds this value at this version, else
    computed (from `source`, a host copy with the same values, when given) and, for a value the
    cache knows (or `source` introduces), remembered. Other tensors (a reshaped copy made per
    step) are not remembered: the cache stays the size of the groups' values."""
    key = (id(value), name)
    hit = _FACTS.get(key)
    if hit is not None and hit[0]() is value and hit[1] == value._version:
        return hit[2]
    answer = bool(_FACT_TESTS[name](value if source is None else source))
    if source is not None or (hit is not None and hit[0]() is value):
        _FACTS[key] = (weakref.ref(value), value._version, answer)
        if len(_FACTS) > _FACTS_KEPT:
            _FACTS.popitem(last=False)
    return answer


def is_zero(value: Any) -> bool:
    """True when a hyperparameter (number or per-member tensor) is zero for every member.
    Pass the group's own value (not a reshaped copy): its answer is cached."""
    return _fact(value, "zero") if isinstance(value, Tensor) else value == 0


def none_zero(value: Any) -> bool:
    """True when a hyperparameter (number or per-member tensor) is nonzero for every member."""
    return _fact(value, "nonzero") if isinstance(value, Tensor) else value != 0


def is_per_member(group: Mapping[str, Any]) -> bool:
    """True when some hyperparameter of the param group is a per-member tensor."""
    return any(has_tensor(v) for k, v in group.items() if k != "params")
