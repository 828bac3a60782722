"""What each stored metric is, read from the store's `metric_info` table (never from a task).

Landing (optiscope.engine.landing) stores, per cell, every metric's goal, unit, description, who
declared it (task, engine, probe, iterate) and the task's headline. A store written before that
table existed has no declarations: `legacy_declaration` then infers them from the metric's name
(the conventions of the tasks at the time), and the report says so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from optiscope.store import RunStore

#: Engine bookkeeping (the budget an outcome was bought with), for stores without declarations.
LEGACY_ENGINE = ("batch_loss", "grad_evals", "func_evals", "time_s")
#: The categorical label the tasks had before declarations were stored.
LEGACY_CATEGORICAL = ("basin",)
#: Probe metrics with one value per member, as `optiscope.probes` named them before declarations.
LEGACY_PROBE_GLOBALS = (
    "grad_norm", "hessian_trace", "top_eig", "noise_scale", "grad_noise_trace", "margin",
    "spectrum_negative_mass", "spectrum_second_moment", "barrier_to_next", "r_med_samples",
)
LEGACY_NOTE = (
    "This store was written before metric declarations were stored with each cell (no "
    "metric_info table). Goals are inferred from the names (accuracies are maximised, everything "
    "else minimised; basin is a label), the first stored metric is taken as the headline, and "
    "names with a '/' are treated as probes. Re-run the experiment to record the declarations."
)


@dataclass(frozen=True)
class MetricDecl:
    """One metric as its producer declared it."""

    name: str
    goal: str | None  # "min" | "max" | None
    unit: str = ""
    description: str = ""
    headline: bool = False
    source: str = "task"  # task | engine | probe | iterate

    @property
    def categorical(self) -> bool:
        """A task's label with no better or worse (say `basin`): counted, never ranked."""
        return self.source == "task" and self.goal is None

    @property
    def outcome(self) -> bool:
        """A task metric with a direction: summarised, compared and plotted as a curve."""
        return self.source == "task" and self.goal is not None


def load_declarations(store: RunStore) -> dict[str, dict[str, MetricDecl]]:
    """cell_id -> metric name -> declaration, in the order landing wrote them."""
    rows = store.connect().execute(
        "SELECT cell_id, name, goal, unit, description, headline, source FROM metric_info"
    ).fetchall()
    out: dict[str, dict[str, MetricDecl]] = {}
    for cell_id, name, goal, unit, description, headline, source in rows:
        decl = MetricDecl(name, goal, unit or "", description or "", bool(headline), source or "task")
        out.setdefault(cell_id, {})[name] = decl
    return out


def legacy_declaration(name: str) -> MetricDecl:
    """A declaration inferred from the name, for stores written before `metric_info`."""
    if name in LEGACY_ENGINE:
        return MetricDecl(name, "min" if name == "batch_loss" else None, source="engine")
    if name in LEGACY_CATEGORICAL:
        return MetricDecl(name, None)
    if name in LEGACY_PROBE_GLOBALS or re.fullmatch(r"top_eig_\d+", name) or "/" in name:
        return MetricDecl(name, None, source="probe")
    goal = "max" if name.endswith(("acc", "accuracy")) or "_acc" in name else "min"
    return MetricDecl(name, goal)
