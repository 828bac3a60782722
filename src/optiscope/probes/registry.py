"""The probe registry: tiers, groups and metric declarations, all derived from the catalogue.

Nothing here is kept by hand: a tier is every probe whose own tier is at most as dear, and a
metric name is a probe metric when a probe's declaration matches it. The store's landing code
asks `metric_info` / `probe_metric_info` for the goal, unit and description of the probe
metrics a cell logged, so the report never has to import the probes.
"""

from __future__ import annotations

from collections.abc import Iterable

from optiscope.errors import unknown_name
from optiscope.probes.catalog import PROBES
from optiscope.probes.quantity import TIER_ORDER, Probe, ProbeMetric, Tier
from optiscope.tasks.base import MetricInfo

_BY_NAME: dict[str, Probe] = {p.name: p for p in PROBES}
if len(_BY_NAME) != len(PROBES):
    raise RuntimeError("two probes in optiscope.probes.catalog share a name")


def probe(name: str) -> Probe:
    """The probe called `name`; an error lists the choices."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise unknown_name("probe", name, _BY_NAME) from None


def tier_groups(tier: Tier) -> tuple[str, ...]:
    """The probes a tier runs: its own and those of every cheaper tier, in catalogue order."""
    if tier not in TIER_ORDER:
        raise unknown_name("probe tier", str(tier), TIER_ORDER)
    rank = TIER_ORDER.index(tier)
    return tuple(p.name for p in PROBES if TIER_ORDER.index(p.tier) <= rank)


#: Probes each tier runs.
TIERS: dict[str, tuple[str, ...]] = {t: tier_groups(t) for t in TIER_ORDER}
#: Every probe group a config may name in `probes = [...]`.
PROBE_GROUPS: tuple[str, ...] = tuple(p.name for p in PROBES)

_METRICS: tuple[ProbeMetric, ...] = tuple(m for p in PROBES for m in p.metrics)
#: Probe metrics with one value per member and network (exact names).
GLOBAL_METRICS: tuple[str, ...] = tuple(m.pattern for m in _METRICS if "{" not in m.pattern)
#: Properties stored per tensor or layer, named `{property}/{tensor}`.
TENSOR_PROPERTIES: tuple[str, ...] = tuple(m.family for m in _METRICS if m.per_tensor)


def declaration(name: str) -> ProbeMetric | None:
    """The declaration matching stored metric `name`, or None if no probe writes it."""
    return next((m for m in _METRICS if m.matches(name)), None)


def is_probe_metric(name: str) -> bool:
    """Whether a stored metric name is one the probes write."""
    return declaration(name) is not None


def metric_info(name: str) -> MetricInfo | None:
    """Goal, unit and description of probe metric `name` (None if no probe writes it)."""
    m = declaration(name)
    return None if m is None else m.info(name)


def probe_metric_info(names: Iterable[str]) -> list[MetricInfo]:
    """The declarations of those `names` that are probe metrics, in the given order."""
    return [info for n in names if (info := metric_info(n)) is not None]
