"""What a probe is (Cockpit's quantity pattern, Schneider et al. 2021): a named computation with a
cost tier, the metrics it writes, and the shared state its computation may reuse.

A `Probe` declares its metric names (exact, or a family such as ``r_med/{tensor}``) with their
goal, unit and description, its tier and its cost; `optiscope.probes.catalog` holds the built-in
probes and `optiscope.probes.registry` derives the tiers and metric lists from them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

import torch
from torch import Tensor

from optiscope.core.members import member_numel, n_members
from optiscope.probes.estimators import hutchinson_products
from optiscope.probes.hessian_operator import HessianOperator, rademacher
from optiscope.tasks.base import MemberBatch, MetricInfo, Params, Task

Tier = Literal["cheap", "geometry", "full"]
#: Tiers from cheapest to dearest; a tier runs its own probes and those of the tiers before it.
TIER_ORDER: tuple[Tier, ...] = ("cheap", "geometry", "full")

# Placeholders in metric patterns and what they stand for in a stored name.
_PLACEHOLDERS = {"tensor": r".+", "layer": r".+", "k": r"\d+", "threshold": r"[^/]+"}


@dataclass(frozen=True)
class ProbeMetric:
    """A metric a probe writes: an exact name, or a family with placeholders
    (``{tensor}``/``{layer}``: a parameter tensor or a hidden layer, ``{k}``: an index,
    ``{threshold}``: a threshold label). `goal` is None where neither direction is better
    (most probes describe the geometry rather than score it)."""

    pattern: str
    goal: Literal["min", "max"] | None = None
    unit: str = ""
    description: str = ""

    @cached_property
    def regex(self) -> re.Pattern[str]:
        parts = re.split(r"\{(\w+)\}", self.pattern)
        return re.compile(
            "".join(re.escape(p) if i % 2 == 0 else _PLACEHOLDERS[p] for i, p in enumerate(parts))
        )

    def matches(self, name: str) -> bool:
        return self.regex.fullmatch(name) is not None

    @property
    def family(self) -> str:
        """The name before ``/`` (``r_med`` for ``r_med/{tensor}``); the name itself for a global."""
        return self.pattern.partition("/")[0]

    @property
    def per_tensor(self) -> bool:
        """True for a per-tensor or per-layer family with a fixed property name."""
        prop, sep, rest = self.pattern.partition("/")
        return bool(sep) and "{" not in prop and rest in ("{tensor}", "{layer}")

    def info(self, name: str) -> MetricInfo:
        """The declaration of stored metric `name` (one that this pattern matches)."""
        return MetricInfo(name=name, goal=self.goal, description=self.description, unit=self.unit)


@dataclass
class ProbeContext:
    """Everything a probe's computation reads at one probe step, and state probes share: one
    `HessianOperator` and one set of Hutchinson products (the trace and R_med reuse them).

    Random vectors come from `generator`, consumed in the registry's order, so a probe's values
    depend only on the probes before it."""

    task: Task
    params: Params
    init_params: Params | None
    previous: Params | None
    seeds: Tensor
    config: Any  # ProbeConfig (optiscope.probes.schedule)
    batch: MemberBatch
    generator: torch.Generator
    valid: Tensor | None = None
    ensemble_dims: int = 1
    _operator: HessianOperator | None = field(default=None, repr=False)
    _hutchinson: Params | None = field(default=None, repr=False)

    @property
    def n_params(self) -> int:
        """Parameters of one member."""
        return member_numel(self.params, self.ensemble_dims)

    @property
    def n_members(self) -> int:
        return n_members(self.params)

    def operator(self) -> HessianOperator:
        """The loss Hessian at `params` on the probe batch (built once per probe step)."""
        if self._operator is None:
            self._operator = HessianOperator(
                self.task.loss, self.params, batch=self.batch, ensemble_dims=self.ensemble_dims
            )
        return self._operator

    def hutchinson(self) -> Params:
        """z_k * (H z_k) for `config.samples` Rademacher probes z_k (drawn once per probe step)."""
        if self._hutchinson is None:
            z = rademacher(self.params, self.config.samples, self.generator, self.ensemble_dims)
            self._hutchinson = hutchinson_products(self.operator(), z)
        return self._hutchinson


@dataclass(frozen=True)
class Probe:
    """A probe: its name (what `probes = [...]` in a config names), the cheapest tier that runs
    it, its cost per member at one probe step, the metrics it may write, and its computation
    (``compute(context) -> {metric name: per-member values}``; it may write none of them where
    it does not apply, e.g. margins for a regression task)."""

    name: str
    tier: Tier
    cost: str
    metrics: tuple[ProbeMetric, ...]
    compute: Callable[[ProbeContext], dict[str, Tensor]]
