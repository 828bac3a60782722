"""Record runs from any training loop into an optiscope store, in the spirit of `SummaryWriter`.

Most researchers already have a training script. `optiscope.record` lets it write the store's
own tables (runs, metrics, metric declarations, parameters), so `optiscope report`, `compare`,
`verify` and `query` work on its runs exactly as on runs optiscope trained::

    with optiscope.record("runs/mine", task="resnet-cifar", optimizer="adamw",
                          hyperparameters={"lr": 3e-4}, seed=seed, steps=1000) as run:
        for step, (x, y) in enumerate(loader):
            ...
            run.log(step, batch_loss=loss.item())
        run.log(1000, test_acc=acc)
        run.save_params(model)          # optional: final parameters (`RunStore.final_params`)

Identity. A recorded run is a (setting, seed), exactly as a trained one: runs of the same task
and settings, optimizer and hyperparameters, budget (`steps`), logging cadence (`eval_every`,
`log_every`, the experiment defaults 100 and 10 unless given) and precision share one
`runs.cell_id`, whatever their seeds: the `Cell.cell_id` a config's cell of that setting has, so
they join its seeds in every analysis (seeds on demand). Each run lands as a batch of one seed
(`Cell.batch_id`), its id `<cell id>-s<seed>`. A registered optimizer or task name gets its
defaults filled in, as a config's would, so `optimizer="adam", hyperparameters={"lr": 0.01}`
names the setting an experiment's `adam` with `lr = 0.01` trains. Recording a (setting, seed)
again replaces the earlier recording; a seed the setting already has from training is refused
(when the run opens if `steps` is given, else when it lands).

Landing is the cells' (optiscope.store): nothing is written until the run closes; then its
metrics, declarations and parameters land first and its runs file last, each renamed into
place, so a process killed before or during the landing leaves no run behind. A run whose body
raises an exception is recorded `failed` with the error (its metrics kept) and the exception
goes on; a `KeyboardInterrupt` or `SystemExit` is treated as a kill (nothing committed). A
logged value that is not finite (nan or inf) marks the run `diverged` at that step, and, as
for trained runs, its values from that step on are not stored.

Metric declarations: `metrics={"test_acc": "max", "test_loss": "min"}` gives each metric's goal
(the first one is the headline the report leads with). Names left out are declared as the
report infers them for old stores: accuracies maximised, everything else minimised; the engine's
names (`batch_loss`, `grad_evals`, `func_evals`, `time_s`) as the engine declares them, so a loop
that logs `time_s` (training seconds so far) gets the report's runtime plots. A (step, name)
logged twice keeps the last value.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from optiscope.errors import OptiscopeError

#: `runs.mode` of a recorded run.
MODE = "recorded"


class RecordedRun:
    """One run of a user's loop being recorded; see the module docstring. Use `record(...)`."""

    def __init__(
        self,
        store: str | Path | Any,
        *,
        task: str,
        optimizer: str,
        seed: int,
        hyperparameters: Mapping[str, Any] | None = None,
        task_settings: Mapping[str, Any] | None = None,
        steps: int | None = None,
        label: str | None = None,
        experiment: str | None = None,
        metrics: Mapping[str, str | None] | None = None,
        precision: str = "fp32",
        grad_evals_per_step: int = 1,
        device: str = "",
        eval_every: int | None = None,
        log_every: int | None = None,
    ):
        from optiscope.store import RunStore

        if isinstance(store, RunStore):
            store = store.root

        _require(isinstance(task, str) and task, "task", "a non-empty name", task)
        _require(isinstance(optimizer, str) and optimizer, "optimizer", "a non-empty name", optimizer)
        _require(_is_int(seed) and seed >= 0, "seed", "an integer >= 0", seed)
        _require(steps is None or (_is_int(steps) and steps >= 1), "steps", "an integer >= 1 or None", steps)
        _require(precision in ("fp32", "tf32", "bf16"), "precision", "one of fp32, tf32, bf16", precision)
        _require(_is_int(grad_evals_per_step) and grad_evals_per_step >= 0, "grad_evals_per_step",
                 "an integer >= 0", grad_evals_per_step)
        for field, every in (("eval_every", eval_every), ("log_every", log_every)):
            _require(every is None or (_is_int(every) and every >= 1), field, "an integer >= 1 or None", every)
        for name, goal in (metrics or {}).items():
            _require(goal in ("min", "max", None), f"metrics[{name!r}]", "'min', 'max' or None", goal)
        self.store = RunStore.create(store)  # fails now if the store cannot be written
        self.task, self.optimizer, self.seed = task, optimizer, int(seed)
        self.given_hyperparameters = dict(hyperparameters or {})
        self.hyperparameters = _effective_hyperparameters(optimizer, self.given_hyperparameters)
        self.task_settings = _effective_task_settings(task, dict(task_settings or {}))
        self.planned_steps, self.label, self.precision = steps, label, precision
        self.experiment = experiment or self.store.root.resolve().name
        self.declared = dict(metrics or {})
        self.grad_evals_per_step, self.device = int(grad_evals_per_step), device
        self.eval_every = _default("eval_every") if eval_every is None else int(eval_every)
        self.log_every = _default("log_every") if log_every is None else int(log_every)
        self._values: dict[tuple[int, str], float] = {}
        self._params: dict[str, torch.Tensor] | None = None
        self._init: dict[str, torch.Tensor] | None = None
        self._started = time.perf_counter()
        self.closed = False
        if steps is not None:  # the setting is known now: refuse a seed it already has, before training
            self._check_new_seed()

    # -- what the loop calls ----------------------------------------------------------------
    def log(self, step: int, **values: Any) -> None:
        """Record scalar metrics at `step` (numbers, or one-element tensors / arrays)."""
        self._check_open("log")
        _require(_is_int(step) and step >= 0, "step", "an integer >= 0", step)
        for name, value in values.items():
            self._values[int(step), name] = _scalar(name, value)  # logged again: the last value

    def save_params(self, model: torch.nn.Module | Mapping[str, torch.Tensor],
                    init: torch.nn.Module | Mapping[str, torch.Tensor] | None = None) -> None:
        """Keep the final parameters (a module's `named_parameters()` or a name -> tensor map)
        and optionally the initial ones, for `RunStore.final_params` and `optiscope probe` (which
        rebuilds the task by its name: a registered task or an import path)."""
        self._check_open("save_params")
        self._params = _tensors(model)
        self._init = None if init is None else _tensors(init)

    def close(self) -> None:
        """Land the run: metrics, declarations and parameters, then its runs file (the commit)."""
        self._land(None)

    def fail(self, exc: BaseException) -> None:
        """Land the run as `failed` with `exc` as its error (what leaving `with` on an exception does)."""
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        self._land(f"{type(exc).__name__}: {exc}\n{tb}")

    def __enter__(self) -> RecordedRun:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        if self.closed:
            return False
        if exc is None:
            self.close()
        elif isinstance(exc, Exception):
            self.fail(exc)
        # KeyboardInterrupt / SystemExit: a kill; nothing is committed
        return False

    # -- identity -----------------------------------------------------------------------------
    @property
    def steps(self) -> int:
        """The budget: `steps` as given, else the largest step logged (a loop of N steps that
        logs its final evaluation at step N has N)."""
        if self.planned_steps is not None:
            return self.planned_steps
        return max((s for s, _ in self._values), default=0)

    def cell(self) -> Any:
        """The run as an experiment's cell of one seed (optiscope.config.Cell): its `cell_id`
        is the setting's, its `batch_id` names this run's files, its `display_name` the label."""
        from optiscope.config import Cell

        return Cell(
            experiment=self.experiment, task=self.task, task_settings=self.task_settings,
            optimizer=self.optimizer, label=self.label, hyperparameters=self.hyperparameters,
            seeds=(self.seed,), steps=self.steps, eval_every=self.eval_every, log_every=self.log_every,
            given_hyperparameters=self.given_hyperparameters, precision=self.precision,
        )

    @property
    def cell_id(self) -> str:
        """The setting's id: the same as a trained cell's of the same setting."""
        return self.cell().cell_id

    @property
    def run_id(self) -> str:
        return f"{self.cell_id}-s{self.seed}"

    # -- landing ------------------------------------------------------------------------------
    def _check_open(self, what: str) -> None:
        if self.closed:
            raise OptiscopeError(f"run.{what}: the run {self.run_id} is closed (already landed)")

    def _check_new_seed(self) -> None:
        """A seed the setting already holds from a trained batch would count twice: refused."""
        cell = self.cell()
        for b in self.store.batches():
            if b.cell_id == cell.cell_id and b.batch_id != cell.batch_id and not b.failed and self.seed in b.seeds:
                raise OptiscopeError(
                    f"record: seed {self.seed} of this setting ({cell.display_name} on {self.task}) is "
                    f"already in {self.store.root} (batch {b.batch_id}); record another seed, or "
                    "into another store"
                )

    def _land(self, error: str | None) -> None:
        self._check_open("close")
        self._check_new_seed()
        self.closed = True
        keys = sorted(self._values, key=lambda k: k[0])  # by step, names in logging order
        steps = np.array([s for s, _ in keys], dtype=np.int64)
        names = np.array([n for _, n in keys], dtype=object)
        values = np.array([self._values[k] for k in keys], dtype=np.float64)
        diverged_step = None
        bad = ~np.isfinite(values) if len(values) else np.zeros(0, dtype=bool)
        if bad.any():
            diverged_step = int(steps[bad].min())
            keep = steps < diverged_step
            steps, names, values = steps[keep], names[keep], values[keep]
        status = "failed" if error is not None else ("diverged" if diverged_step is not None else "ok")
        cell = self.cell()
        run_id, cell_id, batch_id = f"{cell.cell_id}-s{self.seed}", cell.cell_id, cell.batch_id
        metrics = {"run_id": np.array([run_id] * len(steps), dtype=object), "step": steps,
                   "name": names, "value": values}
        params = None
        if self._params is not None:
            params = {k: v.unsqueeze(0) for k, v in self._params.items()}  # one member
            if self._init is not None:
                params.update({f"init.{k}": v.unsqueeze(0) for k, v in self._init.items()})
        self.store.write_cell(
            batch_id, [self._run_row(cell, run_id, status, diverged_step, error)], metrics, params,
            metric_info=self._metric_info(cell_id, [str(n) for n in dict.fromkeys(names.tolist())]),
        )

    def _run_row(self, cell: Any, run_id: str, status: str, diverged_step: int | None,
                 error: str | None) -> dict[str, Any]:
        from optiscope.engine.landing import versions

        return {
            "run_id": run_id, "cell_id": cell.cell_id, "batch_id": cell.batch_id,
            "experiment": self.experiment, "task": self.task,
            "task_settings": json.dumps(self.task_settings, sort_keys=True, default=str),
            "task_metadata": "{}", "optimizer": self.optimizer, "label": cell.display_name,
            "hyperparameters": json.dumps(self.hyperparameters, sort_keys=True, default=str),
            "seed": self.seed, "member": 0, "status": status, "diverged_step": diverged_step,
            "steps": self.steps, "grad_evals": self.steps * self.grad_evals_per_step, "func_evals": 0,
            "wall_time_s": time.perf_counter() - self._started, "mode": MODE, "device": self.device,
            "versions": json.dumps(versions(), sort_keys=True), "error": error,
            "created_at": dt.datetime.now(dt.timezone.utc), "role": "cell",
            "precision": self.precision, "chunk_size": None,
        }

    def _metric_info(self, cell_id: str, logged: list[str]) -> list[dict[str, Any]]:
        from optiscope.engine.result import ENGINE_METRICS
        from optiscope.report.metrics import legacy_declaration

        engine = {m.name: m for m in ENGINE_METRICS}
        order = list(self.declared) + [n for n in logged if n not in self.declared]
        headline = next((n for n in order if n not in engine), None)
        rows = []
        for name in order:
            if name in engine and name not in self.declared:
                info = engine[name]
                rows.append(_info_row(cell_id, name, info.goal, info.unit, info.description, False, "engine"))
                continue
            goal = self.declared[name] if name in self.declared else legacy_declaration(name).goal
            rows.append(_info_row(cell_id, name, goal, "", "recorded by the user's loop",
                                  name == headline, "task"))
        return rows


def record(store: str | Path, *, task: str, optimizer: str, seed: int, **options: Any) -> RecordedRun:
    """Record one run of your own training loop into `store` (see the module docstring).

    Options: `hyperparameters`, `task_settings` (dicts), `steps` (the budget; default the
    largest step logged), `label`, `experiment` (default: the store folder's name), `metrics`
    (name -> "min" | "max" | None; the first is the headline), `precision`,
    `grad_evals_per_step` (default 1), `device`, `eval_every` and `log_every` (the cadence a
    trained cell of the same setting has; default the experiment defaults). `store` is a folder (created if missing) or a
    `RunStore`. Registered task and optimizer names (and importable "module:name" paths) get their
    defaults filled in; any other name is recorded as given.
    """
    return RecordedRun(store, task=task, optimizer=optimizer, seed=seed, **options)


# -- helpers ----------------------------------------------------------------------------------

def _info_row(cell_id: str, name: str, goal: str | None, unit: str, description: str,
              headline: bool, source: str) -> dict[str, Any]:
    return {"cell_id": cell_id, "name": name, "goal": goal, "unit": unit,
            "description": description, "headline": headline, "source": source}


def _default(field: str) -> int:
    """An `[experiment]` setting's default (the logging cadence a config gets when it says nothing)."""
    from optiscope.config import ExperimentSection

    return int(ExperimentSection.model_fields[field].default)


def _require(ok: bool, field: str, allowed: str, got: Any) -> None:
    if not ok:
        raise OptiscopeError(f"record: {field} must be {allowed}, got {got!r}")


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _scalar(name: str, value: Any) -> float:
    """A logged value as a float; one-element tensors and arrays are accepted."""
    if isinstance(value, torch.Tensor | np.ndarray):
        n = value.numel() if isinstance(value, torch.Tensor) else value.size
        if n != 1:
            raise OptiscopeError(f"run.log: metric '{name}' must be one number, got shape {tuple(value.shape)}")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise OptiscopeError(f"run.log: metric '{name}' must be a number, got {type(value).__name__}")
    return float(value)


def _tensors(source: torch.nn.Module | Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    items = source.named_parameters() if isinstance(source, torch.nn.Module) else source.items()
    out = {}
    for k, v in items:
        if not isinstance(v, torch.Tensor):
            raise OptiscopeError(f"run.save_params: '{k}' is a {type(v).__name__}, not a tensor")
        out[k] = v.detach().float().cpu().clone()
    return out


def _effective_hyperparameters(optimizer: str, given: dict[str, Any]) -> dict[str, Any]:
    """`given` with the defaults of a registered (or importable) optimizer filled in, as a
    config's; an unknown name keeps what was given."""
    from optiscope.config import effective_hyperparameters
    from optiscope.optim.registry import OPTIMIZERS

    if optimizer not in OPTIMIZERS and ":" not in optimizer:
        return given
    try:
        return effective_hyperparameters(optimizer, given)
    except OptiscopeError:  # a name with a colon that imports nothing ("resnet:cifar"): as given
        if optimizer in OPTIMIZERS:
            raise
        return given


def _effective_task_settings(task: str, given: dict[str, Any]) -> dict[str, Any]:
    """`given` with a registered (or importable) task's defaults filled in; else as given."""
    from optiscope.config import effective_task_settings
    from optiscope.tasks.registry import TASKS

    if task not in TASKS and ":" not in task:
        return given
    try:
        return effective_task_settings(task, given)
    except OptiscopeError:
        if task in TASKS:  # a registered task's settings are checked, as a config's
            raise
        return given
