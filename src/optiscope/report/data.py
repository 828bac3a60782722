"""Read what a report needs from a store: cells, their runs, metric declarations, curves and
final values. Only the store is read: no task, optimizer or engine is imported.

Every stored value of a cell is fetched once (one query per cell) and cached, so the sections can
ask for curves and final values freely. Outcomes for statistics come from `outcomes`, which
encodes a diverged seed as the worst value of its metric (never as missing).

Tuning trials (runs.role = "trial") are kept apart in `trial_cells`: the task sections, setup,
status and profile compare the experiment's cells and the tuned/default finals (role "final",
shown as ordinary cells under their labels), never the trials; the tuning section reads them.
A store written before the role column existed holds only ordinary cells.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from optiscope.report.metrics import MetricDecl, legacy_declaration, load_declarations
from optiscope.store import RunStore

@dataclass
class CellRuns:
    """One cell of the store: its description and its members' statuses."""

    cell_id: str
    task_key: str  # task name with its settings
    task: str
    optimizer: str
    label: str
    hyperparameters: dict[str, Any]
    seeds: list[int]
    run_ids: list[str]
    status: list[str]
    diverged_step: list[int | None]
    error: str | None
    wall_time_s: float
    grad_evals: int
    mode: str
    task_settings: dict[str, Any] = field(default_factory=dict)
    steps: int = 0
    func_evals: int = 0
    role: str = "cell"  # cell | trial (a tuning trial) | final (a tuned or default re-run)
    task_label: str | None = None  # the name the store recorded for the task (None: older store)
    experiment: str = ""

    @property
    def n_ok(self) -> int:
        return self.status.count("ok")

    @property
    def n_diverged(self) -> int:
        return self.status.count("diverged")

    @property
    def n_failed(self) -> int:
        return self.status.count("failed")


@dataclass
class StoreView:
    """Cells grouped by task, with helpers to fetch curves and final values."""

    store: RunStore
    cells: list[CellRuns] = field(default_factory=list)  # every cell but the tuning trials
    trial_cells: list[CellRuns] = field(default_factory=list)  # role "trial": the tuning section's
    #: cell_id -> metric name -> declaration, from the store's `metric_info` (empty: legacy store)
    declarations: dict[str, dict[str, MetricDecl]] = field(default_factory=dict)
    _cache: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = field(default_factory=dict, repr=False)
    #: compare_task's results, so the summary and the task section share one computation
    comparisons: dict[tuple, Any] = field(default_factory=dict, repr=False)
    #: what a section computed for the summary to restate (the hypotheses' verdicts)
    extras: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def legacy(self) -> bool:
        """A store written before metric declarations were stored (goals inferred from names)."""
        trained = [c for c in self.cells if c.n_failed < len(c.status)]  # failed cells declare nothing
        return bool(trained) and not any(c.cell_id in self.declarations for c in trained)

    @classmethod
    def load(cls, store: RunStore, seeds: Collection[int] | None = None) -> StoreView:
        """Every cell of the store with all its runs, or with the runs of `seeds` only (an
        experiment whose `seeds` was lowered analyses the subset it asks for; tuning trials,
        which run on their own seeds, are never filtered)."""
        data = store.fetch(
            "SELECT * FROM runs ORDER BY created_at, cell_id, member"
        )  # every column: stores written before `func_evals` existed lack it
        view = cls(store, declarations=load_declarations(store))
        by_cell: dict[str, CellRuns] = {}
        wanted = None if seeds is None else {int(s) for s in seeds}
        for i in range(len(data["cell_id"])):
            if wanted is not None and int(data["seed"][i]) not in wanted and _role(data, i) != "trial":
                continue
            cid = str(data["cell_id"][i])
            if cid not in by_cell:
                settings = json.loads(str(data["task_settings"][i]))
                task_key = _task_label(data, i) + (
                    "(" + ", ".join(f"{k}={v}" for k, v in sorted(settings.items())) + ")"
                    if settings else ""
                )
                by_cell[cid] = CellRuns(
                    cid, task_key, str(data["task"][i]), str(data["optimizer"][i]),
                    str(data["label"][i]), json.loads(str(data["hyperparameters"][i])),
                    [], [], [], [], _none(data["error"][i]), float(data["wall_time_s"][i]),
                    int(data["grad_evals"][i]), str(data["mode"][i]), settings,
                    int(data["steps"][i]), role=_role(data, i), experiment=str(data["experiment"][i]),
                    task_label=_none(data["task_label"][i]) if "task_label" in data else None,
                )
            c = by_cell[cid]
            if "func_evals" in data and not _is_null(data["func_evals"][i]):
                c.func_evals = int(data["func_evals"][i])
            c.seeds.append(int(data["seed"][i]))
            c.run_ids.append(str(data["run_id"][i]))
            c.status.append(str(data["status"][i]))
            d = data["diverged_step"][i]
            c.diverged_step.append(None if _is_null(d) else int(d))
        for c in by_cell.values():
            _order_by_seed(c)
        view.cells = [c for c in by_cell.values() if c.role != "trial"]
        view.trial_cells = [c for c in by_cell.values() if c.role == "trial"]
        _unique_labels(view.cells)
        _unique_labels(view.trial_cells)
        return view

    def tasks(self) -> list[str]:
        return list(dict.fromkeys(c.task_key for c in self.cells))

    def task_name(self, task_key: str) -> str:
        """How people read the task: the name the store recorded (the config's `label`, or the
        task with its non-default settings); for an older store, the task with only the settings
        that differ between the store's tasks of that name."""
        cells = [c for c in self.cells + self.trial_cells if c.task_key == task_key]
        if not cells:
            return task_key
        if cells[0].task_label:
            return cells[0].task_label
        base = cells[0].task.rpartition(":")[2] if ":" in cells[0].task else cells[0].task
        same = {c.task_key: c.task_settings for c in self.cells if c.task == cells[0].task}
        varying = sorted(k for k in cells[0].task_settings
                         if len({json.dumps(s.get(k), sort_keys=True, default=str) for s in same.values()}) > 1)
        shown = ", ".join(f"{k}={_short(cells[0].task_settings[k])}" for k in varying)
        return f"{base}({shown})" if shown else base

    def find_task(self, name: str) -> str | None:
        """The task key `name` stands for: a key, a shown name, or a bare task name that is unique."""
        tasks = self.tasks()
        for pick in (lambda t: t == name, lambda t: self.task_name(t) == name,
                     lambda t: t.split("(")[0] == name or t.split("(")[0].rpartition(":")[2] == name):
            found = [t for t in tasks if pick(t)]
            if len(found) == 1:
                return found[0]
        return None

    def experiments(self) -> list[str]:
        """The experiments whose cells the store holds, in landing order."""
        return list(dict.fromkeys(c.experiment for c in self.cells + self.trial_cells))

    def for_experiment(self, name: str) -> StoreView:
        """The same store seen through one experiment's cells (sharing the value cache), so
        that a label names a cell of that experiment even where another experiment reuses it."""
        return StoreView(
            self.store, [c for c in self.cells if c.experiment == name],
            [c for c in self.trial_cells if c.experiment == name], self.declarations, self._cache,
        )

    def cells_of(self, task_key: str) -> list[CellRuns]:
        return [c for c in self.cells if c.task_key == task_key]

    def cell(self, cell_id: str) -> CellRuns | None:
        """The cell (trial or not) with this id, None if it is not in the store (yet)."""
        return next((c for c in self.cells + self.trial_cells if c.cell_id == cell_id), None)

    def metric_names(self, task_key: str) -> list[str]:
        """Every metric stored for the task's cells, sorted."""
        names: dict[str, None] = {}
        for c in self.cells_of(task_key):
            names.update(dict.fromkeys(self._metrics(c)))
        return sorted(names)

    def decl(self, task_key: str, name: str) -> MetricDecl:
        """How `name` was declared for the task's cells (inferred from the name in a legacy store)."""
        for c in self.cells_of(task_key):
            found = self.declarations.get(c.cell_id, {}).get(name)
            if found is not None:
                return found
        return legacy_declaration(name)

    def goal(self, task_key: str, name: str) -> str:
        """'min' or 'max' of an outcome metric (a metric with no direction is treated as 'min')."""
        return self.decl(task_key, name).goal or "min"

    def _declared_order(self, task_key: str) -> list[str]:
        """Metric names in the order their producers declared them (legacy: as first logged)."""
        order: dict[str, None] = {}
        for c in self.cells_of(task_key):
            if c.cell_id in self.declarations:
                order.update(dict.fromkeys(self.declarations[c.cell_id]))
            else:
                names = [n for b in self.store.batch_ids(c.cell_id)
                         for n in self.store.read_metrics(b).column("name").to_pylist()]
                order.update(dict.fromkeys(names))
        return list(order)

    def outcome_metrics(self, task_key: str) -> list[str]:
        """The task's stored metrics with a goal, headline first (not engine bookkeeping, probes,
        iterates or categorical labels: those are other sections' business)."""
        stored = set(self.metric_names(task_key))
        names = [n for n in self._declared_order(task_key) if n in stored and self.decl(task_key, n).outcome]
        head = [n for n in names if self.decl(task_key, n).headline]
        return head + [n for n in names if n not in head]

    def headline_metric(self, task_key: str) -> str | None:
        """The task's declared headline if stored, else its first outcome metric."""
        names = self.outcome_metrics(task_key)
        return names[0] if names else None

    def categorical_metrics(self, task_key: str) -> list[str]:
        return [n for n in self.metric_names(task_key) if self.decl(task_key, n).categorical]

    def probe_metrics(self, task_key: str) -> list[str]:
        return [n for n in self.metric_names(task_key) if self.decl(task_key, n).source == "probe"]

    def _metrics(self, cell: CellRuns) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        if cell.cell_id not in self._cache:
            d = self.store.fetch(
                "SELECT m.run_id, m.step, m.name, m.value FROM metrics m JOIN runs r USING (run_id) "
                "WHERE r.cell_id = ? ORDER BY m.name, m.step", [cell.cell_id]
            )
            row = {r: i for i, r in enumerate(cell.run_ids)}
            mine = np.array([str(r) in row for r in d["run_id"]], dtype=bool)  # seeds asked for
            d = {k: np.asarray(v)[mine] for k, v in d.items()}
            out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
            names = np.asarray(d["name"], dtype=object)
            for name in dict.fromkeys(names.tolist()):
                sel = names == name
                steps_all = np.asarray(d["step"])[sel]
                steps = np.unique(steps_all)
                col = np.searchsorted(steps, steps_all)
                rows = np.array([row[str(r)] for r in np.asarray(d["run_id"], dtype=object)[sel]])
                values = np.full((len(cell.run_ids), len(steps)), np.nan)
                values[rows, col] = np.asarray(d["value"])[sel]
                out[str(name)] = (steps, values)
            self._cache[cell.cell_id] = out
        return self._cache[cell.cell_id]

    def curves(self, cell: CellRuns, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(steps, values[member, step]) of metric `name`; NaN where a member has no value."""
        m = self._metrics(cell)
        if name not in m:
            return np.array([], dtype=np.int64), np.full((len(cell.run_ids), 0), np.nan)
        return m[name]

    def final_values(self, cell: CellRuns, name: str) -> np.ndarray:
        """Each member's value of `name` at the cell's last evaluated step.

        Diverged and failed members get NaN: callers show them as counts, never drop them
        silently (see `outcomes` for the worst-value encoding statistics use).
        """
        steps, values = self.curves(cell, name)
        out = np.full(len(cell.run_ids), np.nan)
        if len(steps):
            last = values[:, -1]
            ok = np.array([s == "ok" for s in cell.status])
            out[ok] = last[ok]
        return out

    def outcomes(self, cell: CellRuns, name: str, goal: str) -> np.ndarray:
        """Final values of the cell's non-failed members with diverged ones as the worst value.

        A diverged member (or one whose final value is not finite) gets +inf for a metric to
        minimise and -inf for one to maximise, so rank statistics count it as a loss. Failed
        members (the cell raised: a bug, not an outcome) are left out and shown as counts.
        """
        worst = np.inf if goal == "min" else -np.inf
        vals = self.final_values(cell, name)
        keep = np.array([s != "failed" for s in cell.status], dtype=bool)
        vals = np.where(np.isfinite(vals), vals, worst)
        return vals[keep]


def configured_seeds(config_text: str | None, store: RunStore | None = None) -> list[int] | None:
    """The seeds an experiment file asks for (`[experiment] seeds`: a count or a list), or None
    when there is no file or it does not say (then every stored run is analysed).

    With `store`, the seeds `verify --until-decided` added to the experiment are included too
    (it records how far it went in `verification/<experiment>.json`).
    """
    if not config_text:
        return None
    try:
        experiment = tomllib.loads(config_text).get("experiment", {})
    except tomllib.TOMLDecodeError:
        return None
    seeds = experiment.get("seeds")
    if isinstance(seeds, bool):
        return None
    if isinstance(seeds, int):
        out = list(range(seeds))
    elif isinstance(seeds, list) and all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        out = list(seeds)
    else:
        return None
    name = experiment.get("name")
    if store is not None and isinstance(name, str):
        out += [s for s in verified_seeds(store, name) if s not in out]
    return out


def verified_seeds(store: RunStore, experiment: str) -> list[int]:
    """The seeds `verify --until-decided` analysed for `experiment` (none if it never ran)."""
    path = store.root / "verification" / f"{experiment}.json"
    if not path.exists():
        return []
    try:
        return [int(s) for s in json.loads(path.read_text()).get("seeds", [])]
    except (ValueError, TypeError, AttributeError):
        return []


def _order_by_seed(cell: CellRuns) -> None:
    """A cell's runs in seed order (stable), whatever order their batches landed in.

    The runs of one cell can land in several batches (seeds added by `verify --until-decided`,
    a failed batch trained again after a crash, Ray workers finishing in any order), so landing
    order is not a property of the experiment. The values a hypothesis compares are taken in
    this order, and a seeded bootstrap resamples by position: in landing order the same store
    contents could give a different interval after a resume.
    """
    order = sorted(range(len(cell.seeds)), key=cell.seeds.__getitem__)
    for name in ("seeds", "run_ids", "status", "diverged_step"):
        values = getattr(cell, name)
        setattr(cell, name, [values[i] for i in order])


def _unique_labels(cells: list[CellRuns]) -> None:
    """Make labels unique within a task (two cells may share a user-given label)."""
    seen: dict[tuple[str, str], int] = {}
    for c in cells:
        key = (c.task_key, c.label)
        seen[key] = seen.get(key, 0) + 1
        if seen[key] > 1:
            c.label = f"{c.label} #{seen[key]}"


def _short(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _role(data: dict[str, Any], i: int) -> str:
    """The run's role; "cell" where the store predates the column (or the row left it null)."""
    if "role" not in data or _is_null(data["role"][i]):
        return "cell"
    return str(data["role"][i])


def _is_null(v: Any) -> bool:
    return v is None or v is np.ma.masked or (isinstance(v, float) and np.isnan(v))


def _task_label(data: dict[str, Any], i: int) -> str:
    """How tables name a run's task: the `name=` a user's ModuleTask was given (kept in
    `task_metadata`), else the task's config name."""
    meta = data.get("task_metadata")
    if meta is not None and not _is_null(meta[i]):
        try:
            shown = json.loads(str(meta[i])).get("display_name")
        except (ValueError, AttributeError):
            shown = None
        if isinstance(shown, str) and shown:
            return shown
    return str(data["task"][i])


def _none(v: Any) -> str | None:
    return None if _is_null(v) else str(v)
