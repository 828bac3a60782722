"""Search spaces: what `[tuning.space.KEY]` says each tuned setting may take, as Optuna distributions.

One entry per tuned setting, written as a one-key table::

    lr = { log_uniform = [1e-4, 1e-1] }     # FloatDistribution(1e-4, 1e-1, log=True)
    weight_decay = { uniform = [0.0, 0.1] } # FloatDistribution(0.0, 0.1)
    warmup = { int_uniform = [0, 100] }     # IntDistribution(0, 100)
    momentum = { choice = [0.0, 0.9] }      # CategoricalDistribution((0.0, 0.9))
    "task.width" = { choice = [64, 128] }   # a task setting (joint search), prefixed "task."
    "betas[1]" = { choice = [0.99, 0.999] } # one entry of a tuple hyperparameter (Adam's beta2);
                                            # the other entries keep the [[optimizers]] value or default

Bounds are inclusive. Names without the prefix are the optimizer's hyperparameters.
"""

from __future__ import annotations

import re

from typing import Any

import pydantic
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from pydantic import BaseModel, ConfigDict, StrictBool, StrictFloat, StrictInt, StrictStr, model_validator

from optiscope.errors import OptiscopeError

#: The ways a dimension can be written (one per entry).
KINDS = ("log_uniform", "uniform", "int_uniform", "choice")
#: Prefix of a tuned task setting (the rest is tuned on the optimizer).
TASK_PREFIX = "task."

Number = StrictInt | StrictFloat
Choice = StrictBool | StrictInt | StrictFloat | StrictStr


class Dimension(BaseModel):
    """One tuned setting: exactly one of the `KINDS`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    log_uniform: tuple[Number, Number] | None = None
    uniform: tuple[Number, Number] | None = None
    int_uniform: tuple[StrictInt, StrictInt] | None = None
    choice: tuple[Choice, ...] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Dimension:
        given = [k for k in KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of {', '.join(KINDS)} (got {given or 'none'})")
        kind = given[0]
        if kind == "choice":
            if not self.choice:
                raise ValueError("choice needs at least one value")
            if len(set(map(repr, self.choice))) != len(self.choice):
                raise ValueError(f"choice values must be distinct (got {list(self.choice)})")
            return self
        lo, hi = getattr(self, kind)
        if not lo < hi:
            raise ValueError(f"{kind} = [lo, hi] needs lo < hi (got [{lo}, {hi}])")
        if kind == "log_uniform" and lo <= 0:
            raise ValueError(f"log_uniform needs lo > 0 (got [{lo}, {hi}])")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in KINDS if getattr(self, k) is not None)

    @property
    def values(self) -> tuple[Any, ...]:
        """The bounds (lo, hi) or the choices: the values a range check builds the setting with."""
        return tuple(getattr(self, self.kind))

    def distribution(self) -> BaseDistribution:
        """The Optuna distribution this dimension samples from."""
        kind, v = self.kind, self.values
        if kind == "choice":
            return CategoricalDistribution(v)
        if kind == "int_uniform":
            return IntDistribution(int(v[0]), int(v[1]))
        return FloatDistribution(float(v[0]), float(v[1]), log=kind == "log_uniform")

    def as_json(self) -> dict[str, list[Any]]:
        """As the config wrote it: {kind: [values]} (for protocol.json)."""
        return {self.kind: list(self.values)}


def parse_dimension(where: str, raw: Any) -> Dimension:
    """`raw` (one entry of a space table) as a Dimension; errors name `where` and the kinds."""
    if not isinstance(raw, dict):
        raise OptiscopeError(
            f"{where}: write a table with one of {', '.join(KINDS)}, e.g. {{ log_uniform = [1e-4, 1e-1] }} "
            f"(got {raw!r})"
        )
    try:
        return Dimension.model_validate(raw)
    except pydantic.ValidationError as exc:
        problems = []
        for e in exc.errors():
            loc = ".".join(str(x) for x in e["loc"])
            msg = e["msg"].removeprefix("Value error, ")
            if e["type"] == "extra_forbidden":
                msg = f"unknown kind; allowed: {', '.join(KINDS)}"
            problems.append(f"{loc}: {msg}" if loc else msg)
        raise OptiscopeError(f"{where}: {'; '.join(problems)}") from None


#: "NAME[i]": entry i of tuple hyperparameter NAME.
ENTRY = re.compile(r"^(?P<name>\w+)\[(?P<index>\d+)\]$")


def with_sampled(given: dict[str, Any], sampled: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """`given` hyperparameters with the `sampled` ones set; a "NAME[i]" replaces entry i of the
    tuple NAME (its given value, else `defaults[NAME]`). An index past the tuple is a ValueError."""
    out = dict(given)
    for key, value in sampled.items():
        entry = ENTRY.match(key)
        if entry is None:
            out[key] = value
            continue
        name, index = entry["name"], int(entry["index"])
        base = list(out.get(name, defaults.get(name)) or ())
        if index >= len(base):
            raise ValueError(f"{key}: {name} has {len(base)} entries")
        base[index] = value
        out[name] = tuple(base)
    return out


def split_settings(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Sampled values as (hyperparameters, task settings without the "task." prefix)."""
    hp = {k: v for k, v in values.items() if not k.startswith(TASK_PREFIX)}
    task = {k.removeprefix(TASK_PREFIX): v for k, v in values.items() if k.startswith(TASK_PREFIX)}
    return hp, task
