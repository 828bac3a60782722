"""Validate keyword settings (task arguments, optimizer hyperparameters) against a signature.

Tasks and optimizers declare their settings once, as typed keyword arguments with defaults; this
module turns that signature into a pydantic model, so a config gets the same checks (unknown
names, wrong types) with errors that name the field, and `optiscope list` can show defaults.
"""

from __future__ import annotations

import inspect
import math
import typing
from collections.abc import Callable, Mapping
from typing import Any

import pydantic

from optiscope.errors import OptiscopeError

_SKIP = {"self", "params", "ensemble_dims"}


def signature_settings(fn: Callable[..., Any]) -> dict[str, tuple[Any, Any]]:
    """{name: (annotation, default)} for a callable's keyword settings."""
    try:
        hints = typing.get_type_hints(fn, include_extras=True)  # keep Field ranges
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
        problems = "; ".join(_describe(e, fields) for e in exc.errors())
        raise OptiscopeError(f"{kind} '{name}': {problems}") from None
    for k, v in values.items():  # a range [a, inf) excludes inf as it excludes nan (pydantic's ge lets it by)
        interval = _interval(fields[k][0], []) if k in fields else None
        default = fields[k][1] if k in fields else None
        means_no_limit = isinstance(default, float) and math.isinf(default)  # prodigy's growth_rate
        if isinstance(v, float) and math.isinf(v) and interval is not None and not means_no_limit:
            raise OptiscopeError(f"{kind} '{name}': {k} must be in {interval}, got {v!r}")
    return {k: getattr(checked, k) for k in values}


def effective_settings(
    kind: str, name: str, fn: Callable[..., Any], values: Mapping[str, Any]
) -> dict[str, Any]:
    """Every keyword setting `fn` would run with: `values` checked and coerced, the rest filled in
    from the signature's defaults (required settings left out stay out), numbers normalised.

    This is what a run stores, so the store says everything a run used; and because a default
    written out and a default left implicit give the same dict, they give the same cell id.
    Coercion to the declared type makes `lr = 1` and `lr = 1.0` the same value; for undeclared
    (unannotated) settings an integer is made a float where the default is a float.
    """
    fields = signature_settings(fn)
    defaults = {k: d for k, (_, d) in fields.items() if d is not ... and k not in values}
    try:  # defaults through the same coercion, so `momentum=0` under `float` reads 0.0
        checked = validate_settings(kind, name, fn, {**defaults, **values})
    except OptiscopeError:  # a third-party default that does not match its own annotation
        checked = {**defaults, **validate_settings(kind, name, fn, values)}
    order = [k for k in fields if k in checked] + [k for k in checked if k not in fields]
    return {k: normalise_number(checked[k], fields[k][1] if k in fields else None) for k in order}


def normalise_number(value: Any, like: Any) -> Any:
    """`value` with integers made floats where `like` (the default) is a float, recursively."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int) and isinstance(like, float):
        return float(value)
    if isinstance(value, (list, tuple)) and isinstance(like, (list, tuple)) and len(value) == len(like):
        return type(value)(normalise_number(v, d) for v, d in zip(value, like, strict=True))
    return value


def _describe(error: Mapping[str, Any], fields: Mapping[str, tuple[Any, Any]]) -> str:
    """One validation error as "name must be in [low, high), got x" where the field declares a
    range (Annotated[float, Field(ge=..., lt=...)]), else "name: pydantic's message (got x)"."""
    name, *path = error["loc"]
    label = str(name) + "".join(f"[{k}]" for k in path)
    interval = _interval(fields[name][0], path) if name in fields else None
    if interval is not None and error["type"] in _RANGE_ERRORS:
        return f"{label} must be in {interval}, got {error.get('input')!r}"
    return f"{'.'.join(str(x) for x in error['loc'])}: {error['msg']} (got {error.get('input')!r})"


_RANGE_ERRORS = {"greater_than", "greater_than_equal", "less_than", "less_than_equal", "finite_number"}


def _interval(annotation: Any, path: list[Any]) -> str | None:
    """The range declared on `annotation` (descending into tuples / Optional along `path`) as
    '[0.0, 1.0)', or None where no bound is declared."""
    for key in [*path, None]:
        args = [a for a in typing.get_args(annotation) if a not in (type(None), Ellipsis)]
        if typing.get_origin(annotation) is typing.Annotated or not args:
            break
        annotation = args[key] if isinstance(key, int) and key < len(args) else args[0]
    bounds: dict[str, Any] = {}
    for meta in getattr(annotation, "__metadata__", ()):
        for c in getattr(meta, "metadata", [meta]):
            bounds.update({k: getattr(c, k) for k in ("ge", "gt", "le", "lt") if getattr(c, k, None) is not None})
    if not bounds:
        return None
    low = f"[{bounds['ge']}" if "ge" in bounds else f"({bounds.get('gt', '-inf')}"
    high = f"{bounds['le']}]" if "le" in bounds else f"{bounds.get('lt', 'inf')})"
    return f"{low}, {high}"


def defaults_of(fn: Callable[..., Any]) -> dict[str, Any]:
    """{name: default} for display; required settings show as '<required>'."""
    return {k: (d if d is not ... else "<required>") for k, (_, d) in signature_settings(fn).items()}


def _show(default: Any) -> str:
    return "<required>" if default is ... else repr(default)
