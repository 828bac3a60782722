"""Validate keyword settings (task arguments, optimizer hyperparameters) against a signature.

Tasks and optimizers declare their settings once, as typed keyword arguments with defaults; this
module turns that signature into a pydantic model, so a config gets the same checks (unknown
names, wrong types) with errors that name the field, and `optiscope list` can show defaults.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping
from typing import Any

import pydantic

from optiscope.errors import OptiscopeError

_SKIP = {"self", "params", "ensemble_dims"}


def signature_settings(fn: Callable[..., Any]) -> dict[str, tuple[Any, Any]]:
    """{name: (annotation, default)} for a callable's keyword settings."""
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # third-party code with unresolvable annotations
        hints = {}
    out: dict[str, tuple[Any, Any]] = {}
    for name, p in inspect.signature(fn).parameters.items():
        if name in _SKIP or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        default = p.default if p.default is not inspect.Parameter.empty else ...
        out[name] = (hints.get(name, Any), default)
    return out


def accepts_var_kwargs(fn: Callable[..., Any]) -> bool:
    return any(p.kind == p.VAR_KEYWORD for p in inspect.signature(fn).parameters.values())


def validate_settings(
    kind: str, name: str, fn: Callable[..., Any], values: Mapping[str, Any]
) -> dict[str, Any]:
    """Check `values` against `fn`'s keyword settings; return them coerced to the declared types.

    Raises OptiscopeError naming the offending field and the allowed names or type.
    """
    fields = signature_settings(fn)
    unknown = sorted(set(values) - set(fields))
    if unknown and not accepts_var_kwargs(fn):
        allowed = ", ".join(f"{k}={_show(d)}" for k, (_, d) in fields.items()) or "none"
        raise OptiscopeError(
            f"{kind} '{name}' has no setting {', '.join(repr(u) for u in unknown)}. "
            f"Allowed (with defaults): {allowed}."
        )
    model = pydantic.create_model(  # type: ignore[call-overload]
        f"{name}_settings",
        __config__=pydantic.ConfigDict(extra="allow", arbitrary_types_allowed=True),
        **fields,
    )
    try:
        checked = model(**values)
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']} (got {e.get('input')!r})"
            for e in exc.errors()
        )
        raise OptiscopeError(f"{kind} '{name}': {problems}") from None
    return {k: getattr(checked, k) for k in values}


def defaults_of(fn: Callable[..., Any]) -> dict[str, Any]:
    """{name: default} for display; required settings show as '<required>'."""
    return {k: (d if d is not ... else "<required>") for k, (_, d) in signature_settings(fn).items()}


def _show(default: Any) -> str:
    return "<required>" if default is ... else repr(default)
