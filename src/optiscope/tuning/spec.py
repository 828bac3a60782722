"""The `[tuning]` table: its schema, and every check that can fail before a trial is trained.

```toml
[tuning]
metric = "val_loss"          # selection metric: one the (validation-split) task logs
final_metric = "test_loss"   # optional; default: metric with val_ -> test_ where the task logs it
statistic = "final"          # final | mean: a seed's value is the metric's final value, or its mean
                             # over the evaluations after step 0 (a continual task evaluated at its
                             # stage ends: mean of `val_plasticity` = accuracy on each task at its end)
sampler = "tpe"              # random | qmc | tpe (Optuna)
trials = 16                  # per optimizer, per study, per task setting (an equal budget)
seeds_per_trial = 4          # each trial is one ensemble of this many tuning seeds
batch = 4                    # trials asked at once and trained together
studies = 1                  # repeats of the whole protocol on other tuning seeds (AlgoPerf)
seed = 0                     # base of the samplers' seeds
default = true               # also re-run each optimizer at its [[optimizers]] settings
[tuning.space.adam]          # key: an [[optimizers]] label, else its name
lr = { log_uniform = [1e-4, 1e-1] }
"task.width" = { choice = [64, 128] }
```

Tuning seeds are `TUNING_SEED_BASE + 1000 * study + range(seeds_per_trial)`; the final
comparison uses `[experiment].seeds`, and the two must not overlap (checked here), so no final
number is ever measured on a seed a configuration was selected on.
"""

from __future__ import annotations

import typing
from typing import Any, Literal

import pydantic
import torch
from pydantic import BaseModel, ConfigDict, Field

from optiscope.config import ExperimentConfig, expand_grid, format_validation_error
from optiscope.engine.result import ENGINE_METRICS
from optiscope.errors import OptiscopeError
from optiscope.optim.registry import check_hyperparameters, resolve_optimizer
from optiscope.settings import signature_settings, validate_settings
from optiscope.tasks.base import MetricInfo
from optiscope.tasks.registry import make_task, settings_function
from optiscope.tuning.space import ENTRY, TASK_PREFIX, Dimension, parse_dimension, with_sampled

#: First tuning seed of study 0; study s uses TUNING_SEED_BASE + 1000 s + range(seeds_per_trial).
TUNING_SEED_BASE = 1_000_000
SEEDS_PER_STUDY = 1000
SAMPLERS = ("random", "qmc", "tpe")


class TuningSection(BaseModel):
    """`[tuning]` as written (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    metric: str
    final_metric: str | None = None
    statistic: Literal["final", "mean"] = "final"
    sampler: Literal["random", "qmc", "tpe"] = "tpe"
    trials: int = Field(16, ge=1)
    seeds_per_trial: int = Field(4, ge=1, le=SEEDS_PER_STUDY)
    batch: int = Field(4, ge=1)
    studies: int = Field(1, ge=1)
    seed: int = Field(0, ge=0)
    default: bool = True
    space: dict[str, dict[str, Any]] = Field(min_length=1)


class TuningTask(BaseModel):
    """One task setting of the experiment, tuned on its own (several when [[tasks]] has more)."""

    model_config = ConfigDict(frozen=True)

    key: str  # the task's name, with its settings when the experiment has several of that name
    name: str
    given: dict[str, Any]  # the settings the config wrote for this point
    split: Literal["validation", "none"]  # trials evaluate on a validation split, or on what it logs

    def trial_settings(self, tuned: dict[str, Any]) -> dict[str, Any]:
        """What a trial builds the task with: the user's settings, the tuned ones, and the
        validation split where the task has one."""
        return {**self.given, **tuned, **({"eval_split": "validation"} if self.split == "validation" else {})}

    def final_settings(self, tuned: dict[str, Any]) -> dict[str, Any]:
        """What a final re-run builds the task with: the user's settings plus the tuned ones."""
        return {**self.given, **tuned}


class TuningSpec(BaseModel):
    """A checked `[tuning]` table, with what it resolves to in this experiment."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    metric: str
    final_metric: str
    goal: Literal["min", "max"]
    sampler: Literal["random", "qmc", "tpe"]
    trials: int
    seeds_per_trial: int
    batch: int
    studies: int
    seed: int
    default: bool
    space: dict[str, dict[str, Dimension]]  # optimizer key -> setting -> dimension
    tasks: list[TuningTask]
    statistic: Literal["final", "mean"] = "final"  # a seed's value of the metric (see outcome)
    optimizers: dict[str, str]  # every optimizer key -> its optimizer name
    evaluation_seeds: list[int]

    def tuning_seeds(self, study: int) -> list[int]:
        """The seeds of every trial of `study` (never an evaluation seed)."""
        start = TUNING_SEED_BASE + SEEDS_PER_STUDY * study
        return list(range(start, start + self.seeds_per_trial))

    @property
    def split(self) -> str:
        """The tasks' common split ("validation" or "none"); "mixed" when they differ (see `tasks`)."""
        splits = {t.split for t in self.tasks}
        return splits.pop() if len(splits) == 1 else "mixed"


def optimizer_key(entry: Any) -> str:
    """How `[tuning.space.KEY]` and the tuning files name an [[optimizers]] entry."""
    return entry.label or entry.name


def parse_tuning(cfg: ExperimentConfig) -> TuningSpec:
    """Check `cfg.tuning` against the experiment; raise OptiscopeError naming the field."""
    try:
        section = TuningSection.model_validate(cfg.tuning)
    except pydantic.ValidationError as exc:
        raise OptiscopeError(f"tuning.{format_validation_error(exc)}") from None
    optimizers = _optimizer_keys(cfg)
    space = {key: _parse_space(key, entries, optimizers) for key, entries in section.space.items()}
    tasks = _tuning_tasks(cfg)
    for key in space:
        for name in (n for n in space[key] if n.startswith(TASK_PREFIX)):
            _check_task_setting(f"tuning.space.{key}.{name}", name.removeprefix(TASK_PREFIX), space[key][name], tasks)
    metric, goal, final_metric = _check_metrics(section, tasks)
    evaluation = cfg.experiment.seed_list()
    spec = TuningSpec(
        metric=metric, final_metric=final_metric, goal=goal, sampler=section.sampler, trials=section.trials,
        seeds_per_trial=section.seeds_per_trial, batch=section.batch, studies=section.studies,
        seed=section.seed, default=section.default, space=space, tasks=tasks,
        optimizers={k: e.name for k, e in optimizers.items()}, evaluation_seeds=evaluation,
        statistic=section.statistic,
    )
    overlap = sorted(set(evaluation) & {s for st in range(spec.studies) for s in spec.tuning_seeds(st)})
    if overlap:
        raise OptiscopeError(
            f"[experiment].seeds {overlap} are also tuning seeds (tuning uses {TUNING_SEED_BASE} + "
            f"{SEEDS_PER_STUDY} * study + 0..seeds_per_trial-1): evaluation seeds must differ from them"
        )
    return spec


def _optimizer_keys(cfg: ExperimentConfig) -> dict[str, Any]:
    keys: dict[str, Any] = {}
    for entry in cfg.optimizers:
        key = optimizer_key(entry)
        if key in keys:
            raise OptiscopeError(
                f"tuning: two [[optimizers]] entries are both named '{key}'; give each a distinct `label` "
                "so [tuning.space.LABEL] and the tuning results can tell them apart"
            )
        keys[key] = entry
    return keys


def _parse_space(key: str, entries: dict[str, Any], optimizers: dict[str, Any]) -> dict[str, Dimension]:
    where = f"tuning.space.{key}"
    if key not in optimizers:
        raise OptiscopeError(
            f"{where}: no [[optimizers]] entry is called '{key}' (a label, else a name); "
            f"optimizers: {', '.join(optimizers)}"
        )
    if not entries:
        raise OptiscopeError(f"{where}: empty; name a setting to tune, or leave '{key}' out to run it untuned")
    entry = optimizers[key]
    if len(expand_grid(entry.settings(), _types(entry.name))) > 1:
        raise OptiscopeError(
            f"{where}: optimizer '{key}' is tuned, so its [[optimizers]] settings cannot be a grid "
            f"(got {entry.settings()}); write one value each (they are its defaults)"
        )
    dims = {name: parse_dimension(f"{where}.{name}", raw) for name, raw in entries.items()}
    hp = {n: d for n, d in dims.items() if not n.startswith(TASK_PREFIX)}
    if hp:
        _check_hyperparameters(where, entry.name, entry.settings(), hp)
    return dims


def _types(name: str) -> dict[str, Any]:
    return {k: a for k, (a, _) in signature_settings(resolve_optimizer(name).__init__).items()}


def _check_hyperparameters(where: str, name: str, given: dict[str, Any], dims: dict[str, Dimension]) -> None:
    """Each tuned name is a hyperparameter of the optimizer, and each bound or choice builds it."""
    cls = resolve_optimizer(name)
    try:
        known = signature_settings(cls.__init__)
    except (TypeError, ValueError):  # uninspectable third-party class: its constructor checks
        known = None
    for hp, dim in dims.items():
        entry = ENTRY.match(hp)
        base = entry["name"] if entry else hp
        if known is not None and base not in known:
            raise OptiscopeError(
                f"{where}.{hp}: optimizer '{name}' has no hyperparameter '{hp}'; it has: {', '.join(known)} "
                f"(task settings are written \"{TASK_PREFIX}NAME\")"
            )
        for value in dim.values:
            try:
                defaults = {k: d for k, (_, d) in (known or {}).items()}
                checked = check_hyperparameters(name, with_sampled(given, {hp: value}, defaults))
                cls([torch.zeros(2, 2, requires_grad=True)], **checked)
            except (OptiscopeError, ValueError, TypeError) as exc:
                raise OptiscopeError(f"{where}.{hp}: the value {value!r} is not allowed: {exc}") from None


def _tuning_tasks(cfg: ExperimentConfig) -> list[TuningTask]:
    points = [
        (t.name, given)
        for t in cfg.tasks
        for given in expand_grid(t.settings(), {k: a for k, (a, _) in signature_settings(settings_function(t.name)).items()})
    ]
    names = [n for n, _ in points]
    tasks = []
    for name, given in points:
        key = name if names.count(name) == 1 else f"{name}({', '.join(f'{k}={v}' for k, v in given.items())})"
        split = "validation" if "eval_split" in signature_settings(settings_function(name)) else "none"
        if split == "validation" and "eval_split" in given:
            raise OptiscopeError(
                f"task '{name}': leave `eval_split` out of [[tasks]] when tuning: trials use the validation "
                "split and the final re-runs the test split"
            )
        tasks.append(TuningTask(key=key, name=name, given=given, split=split))
    return tasks


def _check_task_setting(where: str, setting: str, dim: Dimension, tasks: list[TuningTask]) -> None:
    if setting == "eval_split":
        raise OptiscopeError(f"{where}: eval_split is set by the protocol (validation for trials), not tuned")
    for task in tasks:
        fn = settings_function(task.name)
        known = signature_settings(fn)
        if setting not in known:
            raise OptiscopeError(f"{where}: task '{task.name}' has no setting '{setting}'; it has: {', '.join(known)}")
        for value in dim.values:
            try:
                validate_settings("task", task.name, fn, {setting: value})
            except OptiscopeError as exc:
                raise OptiscopeError(f"{where}: the value {value!r} is not allowed: {exc}") from None


def _check_metrics(section: TuningSection, tasks: list[TuningTask]) -> tuple[str, str, str]:
    """(metric, goal, final metric), each logged by every task (trials: on the validation split)."""
    goal = final = None
    for task in tasks:
        trial_metrics = _metrics(make_task(task.name, **task.trial_settings({})))
        if section.metric not in trial_metrics:
            raise OptiscopeError(
                f"tuning.metric: task '{task.key}'{' (validation split)' if task.split == 'validation' else ''} "
                f"does not log '{section.metric}'; it logs: {', '.join(trial_metrics)}"
            )
        info = trial_metrics[section.metric]
        if info.goal is None:
            raise OptiscopeError(f"tuning.metric: '{section.metric}' has no better or worse (it is a label)")
        if goal is not None and info.goal != goal:
            raise OptiscopeError(f"tuning.metric: '{section.metric}' is minimised by one task, maximised by another")
        goal = info.goal
        final_metrics = _metrics(make_task(task.name, **task.final_settings({})))
        final = final or section.final_metric or _default_final_metric(section.metric, final_metrics)
        if final not in final_metrics:
            field = "tuning.final_metric" if section.final_metric else "tuning.metric (its test counterpart)"
            raise OptiscopeError(
                f"{field}: task '{task.key}' does not log '{final}' on its test split; it logs: "
                f"{', '.join(final_metrics)} (set tuning.final_metric)"
            )
    assert goal is not None and final is not None
    return section.metric, typing.cast(str, goal), final


def _default_final_metric(metric: str, logged: dict[str, MetricInfo]) -> str:
    """The selection metric's test counterpart (val_x -> test_x) where the task logs it."""
    if metric.startswith("val_") and "test_" + metric.removeprefix("val_") in logged:
        return "test_" + metric.removeprefix("val_")
    return metric


def _metrics(task: Any) -> dict[str, MetricInfo]:
    """Every metric a cell of `task` logs that has a goal or is the task's own: name -> info."""
    out = {m.name: m for m in task.metrics}
    out.update({m.name: m for m in ENGINE_METRICS if m.goal is not None and m.name not in out})
    return out
