"""Task names -> classes, and construction from config settings with validation."""

from __future__ import annotations

from typing import Any, TypeVar

from optiscope.errors import unknown_name
from optiscope.settings import validate_settings
from optiscope.tasks.base import Task

TASKS: dict[str, type[Task]] = {}
T = TypeVar("T", bound=type[Task])


def register_task(cls: T) -> T:
    """Class decorator: make a task available under its `name` in configs and the CLI."""
    if cls.name in TASKS:
        raise ValueError(f"task name '{cls.name}' registered twice")
    TASKS[cls.name] = cls
    return cls


def task_class(name: str) -> type[Task]:
    _load_builtin_tasks()
    if name not in TASKS:
        raise unknown_name("task", name, TASKS)
    return TASKS[name]


def make_task(name: str, **settings: Any) -> Task:
    """Build task `name` with `settings`, checked against its signature (errors name the field)."""
    cls = task_class(name)
    checked = validate_settings("task", name, cls.__init__, settings)
    return cls(**checked)


def _load_builtin_tasks() -> None:
    # Importing the package registers every built-in task module.
    import optiscope.tasks  # noqa: F401
