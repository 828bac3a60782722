"""`[[hypotheses]]`: a claim about two cells of an experiment, validated before anything runs.

The schema is a pydantic model, so a wrong field or value fails with its name and the values
allowed. The two cells `a` and `b` are resolved against the config's cells (a cell's label, else
its optimizer name; see `CellRef.matches`), so a typo fails now with the list of cells that
exist, instead of comparing nothing after an hour of training. Metric names are checked later,
against the store (`optiscope.hypotheses.evaluate`), where the metrics the runs logged are known.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field, model_validator

from optiscope.errors import OptiscopeError

if TYPE_CHECKING:
    from optiscope.config import ExperimentConfig

Statistic = Literal["final", "at_step", "min", "max", "auc", "steps_to_target", "forgetting", "rate"]
Direction = Literal["less", "greater", "two-sided", "equivalent"]
TestName = Literal["mann-whitney", "permutation", "fisher"]
Reduce = Literal["median", "mean", "max", "min"]

#: The metric a `forgetting` hypothesis reads when `metric` is omitted: the continual tasks'
#: per-task accuracies acc_task0, acc_task1, ... (optiscope.tasks.continual).
FORGETTING_FAMILY = "acc_task*"
#: Default smallest effect that matters: Cliff's delta 0.33 ("medium", Romano et al. 2006) for
#: rank tests; a difference of 0.2 in the fraction of runs reaching the target for rates.
DEFAULT_MIN_EFFECT = {"cliffs_delta": 0.33, "rate_difference": 0.2}


_USED_BY = {
    "step": "it is read by statistic = 'at_step' only",
    "target": "it is read by statistic = 'steps_to_target' or 'rate' only",
    "margin": "it is read by direction = 'equivalent' only",
    "min_effect": "equivalence is judged by `margin`",
    "reduce": "it reduces a metric family ('name/*') outside forgetting only",
}


class Hypothesis(BaseModel):
    """One `[[hypotheses]]` table. See the package docstring for what each field means."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    metric: str | None = None
    statistic: Statistic = "final"
    step: int | None = Field(None, ge=0)
    target: float | None = None
    reduce: Reduce = "median"
    task: str | None = None
    task_settings: dict[str, Any] | None = None
    a: str = Field(min_length=1)
    b: str = Field(min_length=1)
    direction: Direction = "two-sided"
    margin: float | None = Field(None, gt=0)
    test: TestName | None = None
    alpha: float = Field(0.05, gt=0, lt=1)
    min_effect: float | None = Field(None, ge=0)
    power: float = Field(0.8, gt=0, lt=1)
    permutations: int = Field(9999, ge=99)
    seed: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> Hypothesis:
        need = {"at_step": "step", "steps_to_target": "target", "rate": "target"}
        if self.statistic in need and getattr(self, need[self.statistic]) is None:
            raise ValueError(f"statistic '{self.statistic}' needs `{need[self.statistic]}`")
        if self.metric is None and self.statistic != "forgetting":
            raise ValueError(f"`metric` is required for statistic '{self.statistic}' "
                             "(only 'forgetting' defaults it, to the continual tasks' acc_task*)")
        if self.direction == "equivalent" and self.margin is None:
            raise ValueError("direction 'equivalent' needs `margin` (> 0, in the statistic's units)")
        if self.test == "fisher" and self.statistic != "rate":
            raise ValueError("test 'fisher' compares rates: it needs statistic = 'rate'")
        if self.statistic == "rate" and self.test not in (None, "fisher"):
            raise ValueError("statistic 'rate' is tested with test = 'fisher' (Fisher's exact test)")
        if self.statistic == "rate" and self.direction == "equivalent":
            raise ValueError("direction 'equivalent' is tested on a location shift; it cannot "
                             "be used with statistic 'rate' (choose less, greater or two-sided)")
        if self.min_effect is not None and self.min_effect > 1:
            raise ValueError(f"min_effect is a Cliff's delta or a difference of rates, so in [0, 1], "
                             f"got {self.min_effect}")
        # A field that does nothing for this claim is refused: `step = 500` beside
        # statistic = "final" would otherwise silently test something else than meant.
        useless = {
            "step": self.statistic != "at_step",
            "target": self.statistic not in ("steps_to_target", "rate"),
            "margin": self.direction != "equivalent",
            "min_effect": self.direction == "equivalent",
            "reduce": not self.metric_name.endswith("*") or self.statistic == "forgetting",
        }
        for field, unused in useless.items():
            if unused and field in self.model_fields_set:
                raise ValueError(f"`{field}` has no effect here ({_USED_BY[field]})")
        if self.a == self.b:
            raise ValueError(f"a and b name the same cell ('{self.a}')")
        return self

    # -- what the fields imply ------------------------------------------------------------
    @property
    def test_name(self) -> str:
        """The test that runs: as given, else Fisher for rates and Mann-Whitney otherwise."""
        return self.test or ("fisher" if self.statistic == "rate" else "mann-whitney")

    @property
    def effect_measure(self) -> str:
        """What `min_effect`, `margin` and the reported effect are measured in."""
        if self.statistic == "rate":
            return "rate_difference"
        return "shift" if self.direction == "equivalent" else "cliffs_delta"

    @property
    def smallest_effect(self) -> float:
        return self.min_effect if self.min_effect is not None else DEFAULT_MIN_EFFECT.get(self.effect_measure, 0.0)

    @property
    def metric_name(self) -> str:
        return self.metric or FORGETTING_FAMILY

    def describe(self) -> str:
        """One line: "a < b on final f_gap", as the tables print it."""
        sign = {"less": "<", "greater": ">", "two-sided": "≠", "equivalent": "≈"}[self.direction]
        m = self.metric_name
        what = {
            "final": f"final {m}", "at_step": f"{m} at step {self.step}", "min": f"min {m}",
            "max": f"max {m}", "auc": f"AUC of {m}", "forgetting": f"forgetting of {m}",
            "steps_to_target": f"steps until {m} reaches {self.target:g}" if self.target is not None else "",
            "rate": f"rate of runs whose {m} reaches {self.target:g}" if self.target is not None else "",
        }[self.statistic]
        return f"{self.a} {sign} {self.b} on {what}"


@dataclass(frozen=True)
class CellRef:
    """A cell as a hypothesis can name it: its task, task settings, label and optimizer."""

    task: str
    task_settings: dict[str, Any]
    label: str
    optimizer: str

    def in_task(self, task: str | None, settings: dict[str, Any] | None, task_key: str = "") -> bool:
        if task is not None and task not in (self.task, task_key):
            return False
        return all(_same(self.task_settings.get(k), v) for k, v in (settings or {}).items())


def _same(x: Any, y: Any) -> bool:
    if isinstance(x, (int, float)) and isinstance(y, (int, float)) and not isinstance(x, bool):
        return float(x) == float(y)
    return x == y


def resolve_cell(
    field: str, ref: str, cells: Sequence[CellRef], hypothesis: Hypothesis, keys: Sequence[str] | None = None
) -> int:
    """Index of the one cell `ref` names among `cells` (a label, else an optimizer name).

    `keys[i]` is cell i's task key (task name with settings) where the caller has one. Raises
    OptiscopeError listing the cells that exist when `ref` names none, or the ones it names when
    it names several (say, a grid over a learning rate, or the same optimizer on two tasks).
    """
    keys = keys or [""] * len(cells)
    scope = [i for i, c in enumerate(cells)
             if c.in_task(hypothesis.task, hypothesis.task_settings, keys[i])]
    where = f"hypothesis '{hypothesis.name}': {field} = '{ref}'"
    if not scope:
        tasks = sorted({c.task for c in cells})
        raise OptiscopeError(
            f"hypothesis '{hypothesis.name}': task = '{hypothesis.task}'"
            f"{f' with task_settings {hypothesis.task_settings}' if hypothesis.task_settings else ''} "
            f"matches no cell; tasks: {', '.join(tasks) or 'none'}"
        )
    by_label = [i for i in scope if cells[i].label == ref]
    found = by_label or [i for i in scope if cells[i].optimizer == ref]
    if len(found) == 1:
        return found[0]
    if not found:
        raise OptiscopeError(
            f"{where} names no cell. Cells (label, optimizer): "
            + "; ".join(f"'{cells[i].label}' ({cells[i].optimizer}, task {cells[i].task})" for i in scope)
        )
    many = "; ".join(f"'{cells[i].label}' (task {keys[i] or cells[i].task})" for i in found)
    raise OptiscopeError(
        f"{where} is ambiguous: it names {len(found)} cells: {many}. Use a cell's exact label, "
        "give the [[optimizers]] entry a `label`, or narrow with `task` / `task_settings`."
    )


def config_cells(cfg: ExperimentConfig) -> list[CellRef]:
    """The cells an experiment file makes, as hypotheses name them, without building any task.

    Labels are the cells' display names (the `label`, else "optimizer(settings given)"). With
    `[tuning]`, the cells compared are the finals: "KEY tuned" (with " sN" per study when
    `studies` > 1) and "KEY default" where `default` is on (KEY: the entry's label, else name).
    """
    from optiscope.config import Cell, expand_grid
    from optiscope.optim.registry import resolve_optimizer
    from optiscope.settings import signature_settings

    tasks: list[tuple[str, dict[str, Any]]] = []
    for t in cfg.tasks:
        tasks.extend((t.name, s) for s in expand_grid(t.settings(), {}))
    names: list[tuple[str, str]] = []  # (label, optimizer)
    for o in cfg.optimizers:
        if cfg.tuning is not None:
            key = o.label or o.name
            studies = int(cfg.tuning.get("studies", 1) or 1)
            names.extend((f"{key} tuned" + (f" s{s}" if studies > 1 else ""), o.name) for s in range(studies))
            if cfg.tuning.get("default", True):
                names.append((f"{key} default", o.name))
            continue
        try:
            types = {k: a for k, (a, _) in signature_settings(resolve_optimizer(o.name).__init__).items()}
        except (TypeError, ValueError, OptiscopeError):
            types = {}
        for given in expand_grid(o.settings(), types):
            cell = Cell(experiment="", task="", task_settings={}, optimizer=o.name, label=o.label,
                        hyperparameters=given, seeds=(), steps=1, eval_every=1, log_every=1,
                        given_hyperparameters=given)
            names.append((cell.display_name, o.name))
    return [CellRef(t, s, label, opt) for t, s in tasks for label, opt in names]


def parse_hypothesis_list(raw: Iterable[dict[str, Any]]) -> list[Hypothesis]:
    """Validate each `[[hypotheses]]` table; errors name the hypothesis, the field and the choices."""
    out: list[Hypothesis] = []
    for i, entry in enumerate(raw):
        label = f"hypotheses[{i}]" + (f" ('{entry['name']}')" if isinstance(entry, dict) and "name" in entry else "")
        try:
            out.append(Hypothesis.model_validate(entry))
        except pydantic.ValidationError as exc:
            raise OptiscopeError(f"{label}: {_explain(exc)}") from None
    seen: set[str] = set()
    for h in out:
        if h.name in seen:
            raise OptiscopeError(f"hypotheses: the name '{h.name}' is used twice (names must be unique)")
        seen.add(h.name)
    return out


def parse_hypotheses(cfg: ExperimentConfig) -> list[Hypothesis]:
    """The config's hypotheses, validated, with `a` and `b` resolved against its cells."""
    hypotheses = parse_hypothesis_list(cfg.hypotheses)
    cells = config_cells(cfg) if hypotheses else []
    for h in hypotheses:
        check_distinct(h, resolve_cell("a", h.a, cells, h), resolve_cell("b", h.b, cells, h))
    return hypotheses


def check_distinct(h: Hypothesis, a: int, b: int) -> None:
    if a == b:
        raise OptiscopeError(f"hypothesis '{h.name}': a = '{h.a}' and b = '{h.b}' name the same cell")


def _explain(exc: pydantic.ValidationError) -> str:
    parts = []
    for e in exc.errors():
        loc = ".".join(str(x) for x in e["loc"]) or "hypothesis"
        if e["type"] == "extra_forbidden":
            parts.append(f"unknown field '{loc}'; fields: {', '.join(Hypothesis.model_fields)}")
            continue
        msg = e["msg"].removeprefix("Value error, ")
        got = f" (got {e['input']!r})" if e["loc"] and not isinstance(e.get("input"), dict) else ""
        parts.append(f"{loc}: {msg}{got}")
    return "; ".join(parts)
