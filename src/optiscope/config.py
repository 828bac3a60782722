"""The experiment schema: the only place a TOML file becomes objects.

A config names tasks and optimizers with their settings; a list where a scalar is expected means
a grid, and the experiment is the product of every task setting with every optimizer setting.
Each point of that product is a *cell*, trained as one ensemble of `seeds` members.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import tomllib
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydantic
import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator

from optiscope.core.roles import ROLES
from optiscope.errors import OptiscopeError
from optiscope.formatting import format_number
from optiscope.optim.hyperparameters import added_later_defaults
from optiscope.optim.registry import check_hyperparameters, resolve_optimizer
from optiscope.settings import effective_settings, signature_settings
from optiscope.tasks.base import Task
from optiscope.tasks.registry import make_task, settings_function


#: Most seeds one cell may ask for: far above any study's (hundreds), far below a count whose
#: seed tuple and run rows alone would exhaust memory before training starts.
MAX_SEEDS = 100_000
DEVICES = "auto, cpu, cuda, cuda:N, mps"


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
    #: Training precision (optiscope.engine.precision): fp32, TF32 matmuls (CUDA), bf16 autocast.
    precision: typing.Literal["fp32", "tf32", "bf16"] = "fp32"
    #: torch.compile the ensemble's forward and backward (falls back to eager where it fails).
    compile: bool = False
    #: Memory (GiB) the ensemble may use, instead of what the device reports free
    #: (optiscope.engine.chunking): a larger ensemble trains in chunks of members.
    max_memory_gb: float | None = Field(None, gt=0)
    #: torch's intra-op threads for this run (torch.set_num_threads); None: what torch chooses.
    #: Not part of any cell id: it changes speed (and a sum's last bit), not what is computed.
    threads: int | None = Field(None, ge=1)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if v in (".", ".."):
            raise ValueError("name must be one path component other than '.' or '..' (letters, digits, _ . -)")
        return v

    @field_validator("seeds", mode="before")
    @classmethod
    def _not_bool(cls, v: Any) -> Any:
        if isinstance(v, bool) or (isinstance(v, list) and any(isinstance(x, bool) for x in v)):
            raise ValueError("seeds must be a count (an integer >= 1) or a list of seeds, not true/false")
        return v

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: int | list[int]) -> int | list[int]:
        if isinstance(v, int) and v < 1:
            raise ValueError("seeds must be >= 1 (a count) or a list of seeds")
        if isinstance(v, int) and v > MAX_SEEDS:
            raise ValueError(f"seeds = {v} is above the limit of {MAX_SEEDS} seeds per cell")
        if isinstance(v, list) and len(v) > MAX_SEEDS:
            raise ValueError(f"a list of {len(v)} seeds is above the limit of {MAX_SEEDS} seeds per cell")
        if isinstance(v, list) and (not v or len(set(v)) != len(v) or min(v) < 0):
            raise ValueError("a list of seeds must be non-empty, distinct and >= 0")
        return v

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if not cls.device_ok(v):
            raise ValueError(f"device must be one of {DEVICES}")
        return v

    @staticmethod
    def device_ok(v: str) -> bool:
        return v in ("auto", "cpu", "cuda", "mps") or (v.startswith("cuda:") and v[5:].isdigit())

    @classmethod
    def check_device(cls, v: str, field: str = "device") -> None:
        """Raise an OptiscopeError naming `field` when `v` is not a device name."""
        if not cls.device_ok(v):
            raise OptiscopeError(f"{field}: '{v}' is not a device; choose one of {DEVICES}")

    def seed_list(self) -> list[int]:
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)


class _Named(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str

    def settings(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class TaskEntry(_Named):
    """`[[tasks]]`: a task name, its settings (lists are grids) and an optional `label`.

    `label` names the task in the report and `compare` (not part of the cell id); a grid adds
    the values that vary to it, "label(hidden=64)".
    """

    label: str | None = None


class OptimizerEntry(_Named):
    """`[[optimizers]]`: an optimizer name (or "module:Class") and its hyperparameters.

    `steps` or `grad_evals` (not both) give this optimizer its own budget instead of
    `[experiment].steps`, so that a method taking two gradient evaluations per step (SAM) can be
    compared at equal cost: `grad_evals = N` trains N // grad_evals_per_step steps.
    """

    label: str | None = None
    steps: int | None = Field(None, ge=1, description="this optimizer's steps")
    grad_evals: int | None = Field(None, ge=1, description="this optimizer's gradient evaluations")

    @pydantic.model_validator(mode="after")
    def _one_budget(self) -> OptimizerEntry:
        if self.steps is not None and self.grad_evals is not None:
            raise ValueError(
                f"optimizer '{self.name}' sets both steps and grad_evals: set one budget, "
                "steps (training steps) or grad_evals (gradient evaluations)"
            )
        if self.grad_evals is not None:
            try:
                cls = resolve_optimizer(self.name)
            except OptiscopeError:
                return self  # the unknown name is reported with the other optimizer checks
            self.budget_steps(cls, 0)
        return self

    def budget_steps(self, cls: type, default: int) -> int:
        """Steps this optimizer trains for: `steps`, grad_evals // grad_evals_per_step, or
        `default` (the experiment's)."""
        if self.steps is not None:
            return self.steps
        if self.grad_evals is None:
            return default
        per_step = getattr(cls, "grad_evals_per_step", 1)
        if not isinstance(per_step, int) or isinstance(per_step, bool) or per_step < 1:
            raise ValueError(
                f"optimizer '{self.name}': grad_evals needs a fixed number of gradient evaluations "
                f"per step, and it has {per_step!r}; set steps instead"
            )
        steps = self.grad_evals // per_step
        if steps < 1:
            raise ValueError(
                f"optimizer '{self.name}': grad_evals = {self.grad_evals} is less than one step "
                f"({per_step} gradient evaluations per step)"
            )
        return steps


class ExperimentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    experiment: ExperimentSection
    tasks: list[TaskEntry] = Field(min_length=1)
    optimizers: list[OptimizerEntry] = Field(min_length=1)
    probes: dict[str, Any] = Field(default_factory=dict)
    # Validated by their own modules (optiscope.tuning.spec, optiscope.hypotheses.spec), which
    # parse_config calls, so that each concept's schema lives beside the code that uses it.
    tuning: dict[str, Any] | None = None
    hypotheses: list[dict[str, Any]] = Field(default_factory=list)
    #: `[verification]`: how `optiscope verify --until-decided` adds seeds (optiscope.hypotheses.
    #: sequential.SequentialPlan: max_seeds, batch, first, alpha, spending, futility_floor).
    verification: dict[str, Any] | None = None

    @pydantic.model_validator(mode="after")
    def _distinct_optimizers(self) -> ExperimentConfig:
        labels: dict[str, int] = {}
        entries: dict[str, int] = {}
        for i, o in enumerate(self.optimizers):
            if o.label is not None:
                if o.label in labels:
                    raise ValueError(
                        f"optimizers[{labels[o.label]}] and optimizers[{i}] share the label '{o.label}': "
                        "labels name cells in reports, compare and hypotheses, so each must be unique")
                labels[o.label] = i
            key = json.dumps(o.model_dump(), sort_keys=True, default=str)
            if key in entries:
                raise ValueError(
                    f"optimizers[{i}] repeats optimizers[{entries[key]}] ('{o.name}' with the same "
                    "settings): it would train the same cell; remove one, or give it other settings")
            entries[key] = i
        return self

    def cells(self) -> list[Cell]:
        """Every (task setting x optimizer setting) of the experiment, in config order.

        A cell carries the *effective* settings (every default filled in, numbers normalised:
        see `effective_task_settings` / `effective_hyperparameters`) and, for its name, the
        settings the user wrote.
        """
        tasks = []
        for t in self.tasks:
            grid = expand_grid(t.settings(), _task_types(t.name))
            varying = [k for k in t.settings() if len({json.dumps(g[k], default=str) for g in grid}) > 1]
            for given in grid:
                label = t.label and (t.label + _settings_suffix({k: given[k] for k in varying}))
                tasks.append((t.name, given, effective_task_settings(t.name, given), label))
        opts = [
            (o.name, o.label, given, o.budget_steps(resolve_optimizer(o.name), self.experiment.steps))
            for o in self.optimizers
            for given in expand_grid(o.settings(), _optimizer_types(o.name))
        ]
        cells = []
        for tn, task_given, ts, task_label in tasks:
            task = functools.cache(functools.partial(make_task, tn, **ts))  # built only if needed
            for on, label, hp_given, steps in opts:
                cells.append(
                    Cell(
                        experiment=self.experiment.name,
                        task=tn,
                        task_settings=ts,
                        optimizer=on,
                        label=label,
                        hyperparameters=effective_hyperparameters(on, hp_given, task),
                        seeds=tuple(self.experiment.seed_list()),
                        steps=steps,
                        eval_every=self.experiment.eval_every,
                        log_every=self.experiment.log_every,
                        precision=self.experiment.precision, compile=self.experiment.compile,
                        max_memory_gb=self.experiment.max_memory_gb,
                        given_task_settings=task_given,
                        given_hyperparameters=hp_given,
                        task_label=task_label,
                    )
                )
        seen: dict[str, Cell] = {}
        for c in cells:  # two grid points with equal effective settings are one cell, said once
            if c.cell_id in seen:
                first = seen[c.cell_id]
                raise OptiscopeError(
                    f"optimizer '{c.optimizer}': {first.display_name} and {c.display_name} on task "
                    f"'{c.task}' are the same cell (equal settings once defaults are filled in); "
                    "list each setting once")
            seen[c.cell_id] = c
        return cells


def effective_task_settings(name: str, given: dict[str, Any]) -> dict[str, Any]:
    """Every keyword setting task `name` is built with: `given` plus the signature's defaults."""
    return effective_settings("task", name, settings_function(name), given)


def effective_hyperparameters(
    name: str, given: dict[str, Any], task: Callable[[], Task] | None = None
) -> dict[str, Any]:
    """Every hyperparameter optimizer `name` runs with: `given` plus the signature's defaults.

    An optimizer with an `n_batches_per_epoch` setting the user left out gets the task's
    `batches_per_epoch()` (data size / batch size) where the task has a finite data set, else
    its own default. `task` builds the cell's task (called only when that value is needed).
    A third-party class whose signature cannot be inspected keeps what the user wrote.
    """
    cls = resolve_optimizer(name)
    try:
        fields = signature_settings(cls.__init__)
    except (TypeError, ValueError):  # uninspectable (a C extension, say)
        return dict(given)
    given = dict(given)
    if "n_batches_per_epoch" in fields and "n_batches_per_epoch" not in given and task is not None:
        per_epoch = task().batches_per_epoch()
        if per_epoch is not None:
            given["n_batches_per_epoch"] = per_epoch
    return effective_settings("optimizer", name, cls.__init__, given)


@dataclass(frozen=True)
class Cell:
    """One ensemble to train: a task setting, an optimizer setting, the seeds and the budget.

    `task_settings` and `hyperparameters` are the effective settings (defaults included), which
    is what the cell id hashes and the store records; `given_*` are what the config wrote for
    this cell (its grid values), which is what its display name shows.
    """

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
    given_task_settings: dict[str, Any] | None = None
    given_hyperparameters: dict[str, Any] | None = None
    #: "cell" (an experiment's cell), "trial" (a tuning trial), "final" (a tuned/default re-run);
    #: part of the cell id (not of the batch id) when not "cell", so a final never joins a trial.
    role: str = "cell"
    #: matmul precision, "fp32" | "tf32" | "bf16"; part of the id only when not fp32, so the ids
    #: of stores written before precision existed stay valid.
    precision: str = "fp32"
    #: How the cell runs, not what it computes (not part of the id): torch.compile of the step,
    #: and the memory override for chunking (results equal either way, to float tolerance).
    compile: bool = False
    max_memory_gb: float | None = None
    #: The config's `[[tasks]] label` (with a grid's varying values); not part of the id.
    task_label: str | None = None

    def task_display_name(self, task_name: str | None = None) -> str:
        """How the task is named in the report: its `label`, else its name (a `ModuleTask`'s
        own `name=` when `task_name` gives one, else the registry name, or the function of an
        import path) with only the settings the config wrote that differ from the defaults."""
        if self.task_label:
            return self.task_label
        name = task_name or (self.task.rpartition(":")[2] if ":" in self.task else self.task)
        given = self.task_settings if self.given_task_settings is None else self.given_task_settings
        try:
            defaults = effective_task_settings(self.task, {})
        except Exception:  # noqa: BLE001 (a factory with required settings: keep every given one)
            defaults = {}
        shown = {k: v for k, v in given.items() if k not in defaults or canonical_numbers(defaults[k]) != canonical_numbers(v)}
        return name + _settings_suffix(shown)

    #: The id this setting already has in the store it lands in, where that differs from
    #: `setting_hash`: a store written before seeds-on-demand named each cell by a hash that
    #: included its seed list (`batch_id`), and seeds added to it later keep that name.
    stored_id: str | None = None

    @property
    def cell_id(self) -> str:
        """The setting's id: everything that changes a run's result except the seed.

        A cell is a *setting* and a run is a (setting, seed), so seeds added later join the same
        cell; the store's `runs.cell_id` is this id. See `setting_hash` and `stored_id`.
        """
        return self.stored_id or self.setting_hash

    @property
    def setting_hash(self) -> str:
        """Stable hash of the setting (not the experiment's name, not the seeds).

        Numbers are hashed by value (an integral float as its integer), so `lr = 1` and
        `lr = 1.0` name the same cell even for a setting no signature declares.
        """
        # A tuning trial and a final re-run of the same settings are different cells (tuning
        # seeds vs evaluation seeds, and what each is for); an experiment's cell adds nothing.
        return _hash(["setting", *self._identity()] + ([] if self.role == "cell" else [self.role]))

    @property
    def batch_id(self) -> str:
        """Id of this cell's seeds trained together: the key of the files they land in.

        The same formula as a cell id had before seeds-on-demand (the setting and its seed
        list), so the files of stores written then are the batches of their settings.
        """
        ident = self._identity()
        return _hash(ident[:4] + [list(self.seeds)] + ident[4:])

    def _identity(self) -> list[Any]:
        return ([self.task, _hashed_task_settings(self.task_settings), self.optimizer,
                 _hashed_hyperparameters(self.optimizer, self.hyperparameters),
                 self.steps, self.eval_every, self.log_every]
                + ([] if self.precision == "fp32" else [self.precision]))

    @property
    def display_name(self) -> str:
        """How the cell is named in tables and plots: label, or optimizer with the values the
        config wrote (not every default)."""
        if self.label:
            return self.label
        given = self.hyperparameters if self.given_hyperparameters is None else self.given_hyperparameters
        hp = ", ".join(f"{k}={_short(v)}" for k, v in given.items())
        return f"{self.optimizer}({hp})" if hp else self.optimizer


#: Task settings added after stores existed, with the default that reproduces the old behaviour:
#: left out of the cell id at that value, so earlier stores' cells keep their ids (any task's
#: setting of that name counts). eval_split: data tasks; norm, activation: MLP tasks.
SETTINGS_ADDED_LATER: dict[str, str] = {"eval_split": "test", "norm": "none", "activation": "relu"}


def _hashed_task_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """Task settings as the cell id hashes them: `SETTINGS_ADDED_LATER` at default left out."""
    return {k: v for k, v in settings.items() if k not in SETTINGS_ADDED_LATER or v != SETTINGS_ADDED_LATER[k]}


def _hashed_hyperparameters(optimizer: str, hyperparameters: dict[str, Any]) -> dict[str, Any]:
    """Hyperparameters as the cell id hashes them: those the optimizer declares `added_later`
    (optiscope.optim.hyperparameters.Hyperparameter) left out at their default, so cells stored
    before such a setting existed keep their ids. An optimizer that cannot be imported keeps all."""
    try:
        later = added_later_defaults(resolve_optimizer(optimizer))
    except Exception:  # noqa: BLE001 (a store read where the optimizer's package is missing)
        return hyperparameters
    return {
        k: v for k, v in hyperparameters.items()
        if k not in later or canonical_numbers(v) != canonical_numbers(later[k])
    }


def _hash(key: list[Any]) -> str:
    text = json.dumps(canonical_numbers(key), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def canonical_numbers(value: Any) -> Any:
    """`value` with every integral float replaced by its int, recursively (for hashing)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: canonical_numbers(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [canonical_numbers(v) for v in value]
    return value


def _settings_suffix(settings: dict[str, Any]) -> str:
    """"(k=v, ...)" with numbers to six significant digits; "" for no settings."""
    return "(" + ", ".join(f"{k}={_short(v)}" for k, v in settings.items()) + ")" if settings else ""


def _short(v: Any) -> str:
    """A grid value in a cell's name: six significant digits (as `{:g}`, so names stay stable)."""
    return format_number(v, digits=6) if isinstance(v, float) else str(v)


def _is_sequence_type(annotation: Any) -> bool:
    origin = typing.get_origin(annotation) or annotation
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return any(_is_sequence_type(a) for a in typing.get_args(annotation))
    return isinstance(origin, type) and issubclass(origin, (tuple, list, Sequence)) and origin is not str


def _task_types(name: str) -> dict[str, Any]:
    return {k: a for k, (a, _) in signature_settings(settings_function(name)).items()}


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
    add_to_path(path.resolve().parent)
    return parse_config(raw, source=str(path))


def add_to_path(folder: Path) -> None:
    """Put the experiment file's folder on `sys.path` (last, so it shadows nothing), so that a
    task or optimizer named by import path ("mypkg.models:make_task") may live beside the file."""
    import sys

    if str(folder) not in sys.path:
        sys.path.append(str(folder))


def parse_config(raw: dict[str, Any], source: str = "<config>") -> ExperimentConfig:
    try:
        cfg = ExperimentConfig.model_validate(raw)
    except pydantic.ValidationError as exc:
        raise OptiscopeError(f"{source}: {format_validation_error(exc)}") from None
    # Names and settings of tasks and optimizers are checked now, before any training starts,
    # so a typo fails in a second rather than after an hour.
    logged: dict[str, set[str]] = {}  # task name -> metric names its tasks declare
    try:
        for t in cfg.tasks:
            for s in expand_grid(t.settings(), _task_types(t.name)):
                built = _check_task(t.name, s)
                logged.setdefault(t.name, set()).update(m.name for m in getattr(built, "metrics", ()))
        for o in cfg.optimizers:
            for h in expand_grid(o.settings(), _optimizer_types(o.name)):
                _check_optimizer(o.name, h)
        if cfg.probes:
            from optiscope.probes.schedule import validate_probe_config

            validate_probe_config(cfg.probes)
        if cfg.tuning is not None:
            from optiscope.tuning.spec import parse_tuning

            parse_tuning(cfg)
        if cfg.hypotheses:
            from optiscope.hypotheses.spec import parse_hypotheses

            _check_hypothesis_metrics(parse_hypotheses(cfg), logged, probes=bool(cfg.probes))
        if cfg.verification is not None:
            from optiscope.hypotheses.sequential import SequentialPlan

            SequentialPlan.from_dict(cfg.verification)
    except OptiscopeError as exc:
        raise OptiscopeError(f"{source}: {exc}") from None
    return cfg


def _check_task(name: str, settings: dict[str, Any]) -> Task:
    try:
        return make_task(name, **settings)
    except (ValueError, TypeError) as exc:
        if isinstance(exc, OptiscopeError):
            raise
        raise OptiscopeError(f"task '{name}': {exc}") from None
    except Exception as exc:  # a task factory's own bug or a missing file: one line, not a traceback
        first = (str(exc).strip().splitlines() or [""])[0]
        raise OptiscopeError(f"task '{name}': its factory raised {type(exc).__name__}: {first}") from None


def _check_hypothesis_metrics(hypotheses: Sequence[Any], logged: dict[str, set[str]], *, probes: bool) -> None:
    """A hypothesis on a metric no task of its scope logs is refused now, not after training.

    Families (`acc_task*`) and, where `[probes]` adds metrics, unknown names are left to verify.
    """
    from optiscope.engine.result import ENGINE_METRICS
    from optiscope.probes.iterates import ITERATE_NAMES

    always = {m.name for m in ENGINE_METRICS} | set(ITERATE_NAMES)
    for h in hypotheses:
        name = h.metric_name
        if name.endswith("*") or probes:
            continue
        tasks = [h.task] if h.task in logged else list(logged)
        known = set().union(*(logged[t] for t in tasks)) if tasks else set()
        if known and name not in known | always:
            raise OptiscopeError(
                f"hypothesis '{h.name}': metric = '{name}' is not a metric of task "
                f"{', '.join(tasks)}; its metrics: {', '.join(sorted(known))} (and {', '.join(sorted(always))})")


def _check_optimizer(name: str, hyperparameters: dict[str, Any]) -> None:
    """Types from the signature, then ranges by building it on a dummy tensor."""
    checked = check_hyperparameters(name, hyperparameters)
    cls = resolve_optimizer(name)
    # One dummy tensor per role for a class that reads roles (the task's come at training time).
    params: list[Any] = (
        [{"params": [torch.zeros(2, 2, requires_grad=True)], "role": r} for r in ROLES]
        if getattr(cls, "wants_roles", False) else [torch.zeros(2, 2, requires_grad=True)]
    )
    try:
        cls(params, **checked)
    except (ValueError, TypeError) as exc:
        if isinstance(exc, OptiscopeError):
            raise OptiscopeError(f"optimizer '{name}': {exc}") from None
        raise OptiscopeError(f"optimizer '{name}': {exc}") from None


def format_validation_error(exc: pydantic.ValidationError) -> str:
    parts = []
    for e in exc.errors():
        loc = ".".join(str(x) for x in e["loc"])
        got = f" (got {e['input']!r})" if "input" in e and not isinstance(e["input"], dict) else ""
        parts.append(f"{loc}: {e['msg'].removeprefix('Value error, ')}{got}")
    return "; ".join(parts)


