"""The experiment schema: the only place a TOML file becomes objects.

A config names tasks and optimizers with their settings; a list where a scalar is expected means
a grid, and the experiment is the product of every task setting with every optimizer setting.
Each point of that product is a *cell*, trained as one ensemble of `seeds` members.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import tomllib
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydantic
import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator

from optiscope.errors import OptiscopeError
from optiscope.optim.registry import check_hyperparameters, resolve_optimizer
from optiscope.settings import signature_settings
from optiscope.tasks.registry import make_task, task_class


class ExperimentSection(BaseModel):
    """`[experiment]`: what every cell shares."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    seeds: int | list[int] = 8
    steps: int = Field(1000, ge=1)
    eval_every: int = Field(100, ge=1)
    log_every: int = Field(10, ge=1)
    device: str = "auto"
    checkpoint_every: int = Field(0, ge=0, description="steps between crash checkpoints; 0: off")
    save_params: bool = True

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: int | list[int]) -> int | list[int]:
        if isinstance(v, int) and v < 1:
            raise ValueError("seeds must be >= 1 (a count) or a list of seeds")
        if isinstance(v, list) and (not v or len(set(v)) != len(v) or min(v) < 0):
            raise ValueError("a list of seeds must be non-empty, distinct and >= 0")
        return v

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if v not in ("auto", "cpu", "cuda", "mps") and not v.startswith("cuda:"):
            raise ValueError("device must be one of auto, cpu, cuda, cuda:N, mps")
        return v

    def seed_list(self) -> list[int]:
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)


class _Named(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str

    def settings(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class TaskEntry(_Named):
    """`[[tasks]]`: a task name and its settings (lists are grids)."""


class OptimizerEntry(_Named):
    """`[[optimizers]]`: an optimizer name (or "module:Class") and its hyperparameters."""

    label: str | None = None


class ExperimentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    experiment: ExperimentSection
    tasks: list[TaskEntry] = Field(min_length=1)
    optimizers: list[OptimizerEntry] = Field(min_length=1)
    probes: dict[str, Any] = Field(default_factory=dict)

    def cells(self) -> list[Cell]:
        """Every (task setting x optimizer setting) of the experiment, in config order."""
        tasks = [
            (t.name, s) for t in self.tasks for s in expand_grid(t.settings(), _task_types(t.name))
        ]
        opts = [
            (o.name, o.label, h)
            for o in self.optimizers
            for h in expand_grid(o.settings(), _optimizer_types(o.name))
        ]
        return [
            Cell(
                experiment=self.experiment.name,
                task=tn,
                task_settings=ts,
                optimizer=on,
                label=label,
                hyperparameters=hp,
                seeds=tuple(self.experiment.seed_list()),
                steps=self.experiment.steps,
                eval_every=self.experiment.eval_every,
                log_every=self.experiment.log_every,
            )
            for tn, ts in tasks
            for on, label, hp in opts
        ]


@dataclass(frozen=True)
class Cell:
    """One ensemble to train: a task setting, an optimizer setting, the seeds and the budget."""

    experiment: str
    task: str
    task_settings: dict[str, Any]
    optimizer: str
    label: str | None
    hyperparameters: dict[str, Any]
    seeds: tuple[int, ...]
    steps: int
    eval_every: int
    log_every: int

    @property
    def cell_id(self) -> str:
        """Stable id from everything that changes the result (not the experiment's name)."""
        key = json.dumps(
            [self.task, self.task_settings, self.optimizer, self.hyperparameters,
             list(self.seeds), self.steps, self.eval_every, self.log_every],
            sort_keys=True, default=str,
        )
        return hashlib.sha256(key.encode()).hexdigest()[:16]

    @property
    def display_name(self) -> str:
        """How the cell is named in tables and plots: label, or optimizer with its grid values."""
        if self.label:
            return self.label
        hp = ", ".join(f"{k}={_short(v)}" for k, v in self.hyperparameters.items())
        return f"{self.optimizer}({hp})" if hp else self.optimizer


def _short(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _is_sequence_type(annotation: Any) -> bool:
    origin = typing.get_origin(annotation) or annotation
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return any(_is_sequence_type(a) for a in typing.get_args(annotation))
    return isinstance(origin, type) and issubclass(origin, (tuple, list, Sequence)) and origin is not str


def _task_types(name: str) -> dict[str, Any]:
    return {k: a for k, (a, _) in signature_settings(task_class(name).__init__).items()}


def _optimizer_types(name: str) -> dict[str, Any]:
    return {k: a for k, (a, _) in signature_settings(resolve_optimizer(name).__init__).items()}


def expand_grid(settings: dict[str, Any], types: dict[str, Any]) -> list[dict[str, Any]]:
    """Product over list-valued settings. For a setting whose declared type is itself a
    sequence (such as `betas`), a flat list is one value and a list of lists is a grid."""
    axes: list[list[Any]] = []
    for key, value in settings.items():
        if isinstance(value, list):
            if _is_sequence_type(types.get(key)) and not any(isinstance(v, list) for v in value):
                axes.append([value])
            else:
                if not value:
                    raise OptiscopeError(f"setting '{key}' is an empty list (a grid needs values)")
                axes.append(value)
        else:
            axes.append([value])
    return [dict(zip(settings, combo, strict=True)) for combo in itertools.product(*axes)]


def load_config(path: str | Path) -> ExperimentConfig:
    """Read, validate and check an experiment file. Errors name the file and the field."""
    path = Path(path)
    if not path.exists():
        raise OptiscopeError(f"config file '{path}' does not exist")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise OptiscopeError(f"{path}: malformed TOML: {exc}") from None
    return parse_config(raw, source=str(path))


def parse_config(raw: dict[str, Any], source: str = "<config>") -> ExperimentConfig:
    try:
        cfg = ExperimentConfig.model_validate(raw)
    except pydantic.ValidationError as exc:
        raise OptiscopeError(f"{source}: {format_validation_error(exc)}") from None
    # Names and settings of tasks and optimizers are checked now, before any training starts,
    # so a typo fails in a second rather than after an hour.
    try:
        for t in cfg.tasks:
            for s in expand_grid(t.settings(), _task_types(t.name)):
                _check_task(t.name, s)
        for o in cfg.optimizers:
            for h in expand_grid(o.settings(), _optimizer_types(o.name)):
                _check_optimizer(o.name, h)
        if cfg.probes:
            from optiscope.probes.schedule import validate_probe_config

            validate_probe_config(cfg.probes)
    except OptiscopeError as exc:
        raise OptiscopeError(f"{source}: {exc}") from None
    return cfg


def _check_task(name: str, settings: dict[str, Any]) -> None:
    try:
        make_task(name, **settings)
    except (ValueError, TypeError) as exc:
        if isinstance(exc, OptiscopeError):
            raise
        raise OptiscopeError(f"task '{name}': {exc}") from None


def _check_optimizer(name: str, hyperparameters: dict[str, Any]) -> None:
    """Types from the signature, then ranges by building it on a dummy tensor."""
    checked = check_hyperparameters(name, hyperparameters)
    cls = resolve_optimizer(name)
    try:
        cls([torch.zeros(2, 2, requires_grad=True)], **checked)
    except (ValueError, TypeError) as exc:
        if isinstance(exc, OptiscopeError):
            raise OptiscopeError(f"optimizer '{name}': {exc}") from None
        raise OptiscopeError(f"optimizer '{name}': {exc}") from None


def format_validation_error(exc: pydantic.ValidationError) -> str:
    parts = []
    for e in exc.errors():
        loc = ".".join(str(x) for x in e["loc"])
        got = f" (got {e['input']!r})" if "input" in e and not isinstance(e["input"], dict) else ""
        parts.append(f"{loc}: {e['msg']}{got}")
    return "; ".join(parts)


