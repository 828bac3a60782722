"""What `optiscope list` shows: the tasks and optimizers available, as rows for any format."""

from __future__ import annotations

from typing import Any, NamedTuple


def cell_text(value: Any) -> str:
    """A table or CSV cell: settings as "k=v, ...", metrics as "name (goal)", counts with commas."""
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(cell_text(v) for v in value)
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


class MetricGoal(NamedTuple):
    """A task's metric as `list tasks` shows it: "f_gap (min)", "basin (categorical)"."""

    name: str
    goal: str | None

    def __str__(self) -> str:
        return f"{self.name} ({self.goal or 'categorical'})"


def task_rows() -> tuple[list[str], list[list[Any]], str]:
    from optiscope.settings import defaults_of
    from optiscope.tasks import TASKS, make_task

    rows = []
    for name in sorted(TASKS, key=lambda n: (TASKS[n].family, n)):
        cls = TASKS[name]
        n_params: Any
        try:
            n_params = make_task(name).num_params()
        except Exception as exc:  # a task whose data is not present (say, needs data_root)
            n_params = f"({type(exc).__name__})"
        metrics = [MetricGoal(m.name, m.goal) for m in cls.metrics]
        rows.append([name, cls.family, defaults_of(cls.__init__), metrics, n_params, cls.description])
    columns = ["name", "family", "settings (defaults)", "metrics", "params", "description"]
    return columns, rows, "tasks"


def optimizer_rows() -> tuple[list[str], list[list[Any]], str]:
    from optiscope.optim import OPTIMIZERS
    from optiscope.optim.registry import optimizer_info

    rows = []
    for name in sorted(OPTIMIZERS):
        info = optimizer_info(name)
        rows.append([name, info.cls.__name__, info.norm, dict(info.hyperparameters),
                     info.grad_evals_per_step, info.reference])
    columns = ["name", "class", "norm", "hyperparameters (defaults)", "grad evals / step", "tested against"]
    return columns, rows, 'optimizers (any torch.optim.Optimizer also runs as "module:Class")'
