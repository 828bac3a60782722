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
from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

from optiscope.errors import OptiscopeError

if TYPE_CHECKING:
    from optiscope.config import ExperimentConfig

Statistic = Literal["final", "at_step", "min", "max", "auc", "steps_to_target", "forgetting", "rate",
                    "final_rate"]
#: The statistics that are rates (0/1 per run), compared by Fisher's exact test: `rate` counts a
#: run that reached `target` at any logged step (its best logged value), `final_rate` one whose
#: last logged value reaches it (where it ended).
RATE_STATISTICS = ("rate", "final_rate")
Direction = Literal["less", "greater", "two-sided", "equivalent"]
TestName = Literal["mann-whitney", "permutation", "fisher"]
Reduce = Literal["median", "mean", "max", "min"]
Side = Literal["a", "b", "both"]
Op = Literal["<", "<=", ">", ">="]
#: The statistics a guard condition may read: one number per run, as hypotheses compute them.
GuardStatistic = Literal["final", "at_step", "min", "max", "auc", "steps_to_target"]

#: The metric a `forgetting` hypothesis reads when `metric` is omitted: the continual tasks'
#: per-task accuracies acc_task0, acc_task1, ... (optiscope.tasks.continual).
FORGETTING_FAMILY = "acc_task*"
#: Default smallest effect that matters: Cliff's delta 0.33 ("medium", Romano et al. 2006) for
#: rank tests; a difference of 0.2 in the fraction of runs reaching the target for rates.
DEFAULT_MIN_EFFECT = {"cliffs_delta": 0.33, "rate_difference": 0.2}
#: Default plasticity floor of a `forgetting` hypothesis: on each side, the median over seeds of
#: the worst task's best accuracy must be at least this. Forgetting without learning is the
#: known degenerate case (a network that never learns task k cannot forget it), so "forgets
#: less" only counts when both sides learned every task. 0.5 is a floor, not a target: it is
#: five times the chance level of a 10-way head (0.1) and what learning just one class of a
#: class-incremental pair gives, so a side below it has not learned that task in any sense.
#: Raise it (say 0.9) to ask for tasks learned well; `plasticity = false` switches it off.
DEFAULT_PLASTICITY = 0.5


_USED_BY = {
    "step": "it is read by statistic = 'at_step' only",
    "target": "it is read by statistic = 'steps_to_target', 'rate' or 'final_rate' only",
    "margin": "it is read by direction = 'equivalent' only",
    "min_effect": "equivalence is judged by `margin`",
    "reduce": "it reduces a metric family ('name/*') outside forgetting only",
}


class Requirement(BaseModel):
    """One `requires` condition: what must be true of a side's runs for the verdict to count.

    Two forms. A metric condition, judged on the median over the side's seeds (`all_seeds =
    true`: on every seed), a diverged seed counting as failing it::

        { side = "both", metric = "acc_task*", statistic = "max", reduce = "min", op = ">=", value = 0.9 }

    For a family ("acc_task*", "r_med/*") the statistic is taken on each member's curve and
    then reduced across the members (above: the worst task's best accuracy). And a count::

        { side = "both", max_diverged = 2 }    # at most 2 diverged seeds on each side
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(None, min_length=1)
    side: Side = "both"
    metric: str | None = Field(None, min_length=1)
    statistic: GuardStatistic = "final"
    step: int | None = Field(None, ge=0)
    target: float | None = None
    reduce: Reduce | None = None
    op: Op | None = None
    value: float | None = None
    all_seeds: bool = False
    max_diverged: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> Requirement:
        if self.max_diverged is not None:
            extra = sorted(self.model_fields_set - {"name", "side", "max_diverged"})
            if extra:
                raise ValueError(f"`max_diverged` is a condition of its own (with `side`, `name`); "
                                 f"remove {', '.join(f'`{f}`' for f in extra)}")
            return self
        missing = [f for f in ("metric", "op", "value") if getattr(self, f) is None]
        if missing:
            raise ValueError(f"a condition needs {', '.join(f'`{f}`' for f in missing)} "
                             "(metric, op in <, <=, >, >=, and value), or is `max_diverged = k`")
        need = {"at_step": "step", "steps_to_target": "target"}
        if self.statistic in need and getattr(self, need[self.statistic]) is None:
            raise ValueError(f"statistic '{self.statistic}' needs `{need[self.statistic]}`")
        for field, used, why in (("step", self.statistic == "at_step", "statistic = 'at_step'"),
                                 ("target", self.statistic == "steps_to_target", "statistic = 'steps_to_target'")):
            if not used and field in self.model_fields_set:
                raise ValueError(f"`{field}` has no effect here (it is read by {why} only)")
        family = self.metric is not None and self.metric.endswith("*")
        if family and self.reduce is None:
            raise ValueError(f"metric '{self.metric}' is a family: `reduce` (median | mean | max | min) "
                             "says how its members' values combine")
        if not family and self.reduce is not None:
            raise ValueError("`reduce` has no effect here (it combines a metric family, 'name*', only)")
        return self

    @property
    def sides(self) -> tuple[str, ...]:
        return ("a", "b") if self.side == "both" else (self.side,)

    def describe(self) -> str:
        """One line, as verdicts print it: "both: max acc_task* (min over members) >= 0.9"."""
        if self.max_diverged is not None:
            return f"{self.side}: at most {self.max_diverged} diverged seeds"
        what = {"at_step": f"{self.metric} at step {self.step}",
                "steps_to_target": f"steps until {self.metric} reaches {self.target:g}"
                if self.target is not None else ""}.get(self.statistic, f"{self.statistic} {self.metric}")
        if self.reduce is not None:
            what += f" ({self.reduce} over members)"
        seeds = "every seed" if self.all_seeds else "median over seeds"
        return f"{self.side}: {what} {self.op} {self.value:g} ({seeds})"

    @property
    def label(self) -> str:
        return self.name or self.describe()


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
    requires: list[Requirement] = Field(default_factory=list)
    plasticity: StrictBool | float | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Hypothesis:
        need = {"at_step": "step", "steps_to_target": "target", "rate": "target", "final_rate": "target"}
        if self.statistic in need and getattr(self, need[self.statistic]) is None:
            raise ValueError(f"statistic '{self.statistic}' needs `{need[self.statistic]}`")
        if self.metric is None and self.statistic != "forgetting":
            raise ValueError(f"`metric` is required for statistic '{self.statistic}' "
                             "(only 'forgetting' defaults it, to the continual tasks' acc_task*)")
        if self.direction == "equivalent" and self.margin is None:
            raise ValueError("direction 'equivalent' needs `margin` (> 0, in the statistic's units)")
        if self.test == "fisher" and self.statistic not in RATE_STATISTICS:
            raise ValueError("test 'fisher' compares rates: it needs statistic = 'rate' or 'final_rate'")
        if self.statistic in RATE_STATISTICS and self.test not in (None, "fisher"):
            raise ValueError(f"statistic '{self.statistic}' is tested with test = 'fisher' (Fisher's exact test)")
        if self.statistic in RATE_STATISTICS and self.direction == "equivalent":
            raise ValueError("direction 'equivalent' is tested on a location shift; it cannot "
                             f"be used with statistic '{self.statistic}' (choose less, greater or two-sided)")
        if self.min_effect is not None and self.min_effect > 1:
            raise ValueError(f"min_effect is a Cliff's delta or a difference of rates, so in [0, 1], "
                             f"got {self.min_effect}")
        # A field that does nothing for this claim is refused: `step = 500` beside
        # statistic = "final" would otherwise silently test something else than meant.
        useless = {
            "step": self.statistic != "at_step",
            "target": self.statistic not in ("steps_to_target", *RATE_STATISTICS),
            "margin": self.direction != "equivalent",
            "min_effect": self.direction == "equivalent",
            "reduce": not self.metric_name.endswith("*") or self.statistic == "forgetting",
        }
        for field, unused in useless.items():
            if unused and field in self.model_fields_set:
                raise ValueError(f"`{field}` has no effect here ({_USED_BY[field]})")
        if self.a == self.b:
            raise ValueError(f"a and b name the same cell ('{self.a}')")
        if self.plasticity is not None and self.statistic != "forgetting":
            raise ValueError("`plasticity` guards statistic = 'forgetting' only; state other "
                             "conditions in `requires`")
        if isinstance(self.plasticity, float) and not 0 < self.plasticity <= 1:
            raise ValueError(f"plasticity is an accuracy floor in (0, 1], or true / false, got {self.plasticity}")
        names = [r.name for r in self.guards if r.name]
        if len(names) != len(set(names)):
            raise ValueError(f"requires: condition names must be unique (got {names})")
        return self

    # -- what the fields imply ------------------------------------------------------------
    @property
    def plasticity_floor(self) -> float | None:
        """The plasticity guard's floor: forgetting hypotheses get DEFAULT_PLASTICITY unless
        `plasticity` changes it or switches it off (false); None where there is no guard."""
        if self.statistic != "forgetting" or self.plasticity is False:
            return None
        if self.plasticity is None or self.plasticity is True:
            return DEFAULT_PLASTICITY
        return float(self.plasticity)

    @property
    def guards(self) -> tuple[Requirement, ...]:
        """Every condition the verdict needs: the plasticity guard (forgetting), then `requires`.

        The plasticity guard reads the hypothesis' own accuracies: on each side, the median over
        seeds of the worst task's best accuracy (statistic max per task, min over tasks)."""
        floor = self.plasticity_floor
        if floor is None:
            return tuple(self.requires)
        family = self.metric_name.endswith("*")
        plastic = Requirement(name="plasticity", side="both", metric=self.metric_name, statistic="max",
                              reduce="min" if family else None, op=">=", value=floor)
        return (plastic, *self.requires)

    @property
    def test_name(self) -> str:
        """The test that runs: as given, else Fisher for rates and Mann-Whitney otherwise."""
        return self.test or ("fisher" if self.statistic in RATE_STATISTICS else "mann-whitney")

    @property
    def effect_measure(self) -> str:
        """What `min_effect`, `margin` and the reported effect are measured in."""
        if self.statistic in RATE_STATISTICS:
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
            "final_rate": f"rate of runs whose final {m} reaches {self.target:g}" if self.target is not None else "",
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
        # the config's name, the task as tables name it, or that name without its settings
        # (a user's ModuleTask shown by its `name=`)
        if task is not None and task not in (self.task, task_key, task_key.partition("(")[0]):
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
            model = Requirement if e["loc"][0] == "requires" else Hypothesis
            parts.append(f"unknown field '{loc}'; fields: {', '.join(model.model_fields)}")
            continue
        if e["loc"][:1] == ("plasticity",):  # one line for the union's two errors
            line = f"plasticity: an accuracy floor in (0, 1], or true / false (got {e['input']!r})"
            if line not in parts:
                parts.append(line)
            continue
        msg = e["msg"].removeprefix("Value error, ")
        got = f" (got {e['input']!r})" if e["loc"] and not isinstance(e.get("input"), dict) else ""
        parts.append(f"{loc}: {msg}{got}")
    return "; ".join(parts)
