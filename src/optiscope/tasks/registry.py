"""Task names -> classes, user tasks by import path, and construction with validated settings.

A name is a registered task ("himmelblau") or an import path "package.module:factory" to a
callable that takes keyword settings and returns a `Task` (see tasks/module_task.py for the
protocol); either way the keyword arguments of its signature are the settings a config may set.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from optiscope.errors import OptiscopeError, unknown_name
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


def is_import_path(name: str) -> bool:
    return ":" in name


def task_class(name: str) -> type[Task]:
    """The registered class of task `name` (import-path tasks have none: see `task_factory`)."""
    _load_builtin_tasks()
    if name not in TASKS:
        raise unknown_name("task", name, TASKS)
    return TASKS[name]


def task_factory(name: str) -> Callable[..., Task]:
    """What builds task `name` from keyword settings: its class, or the imported callable."""
    if not is_import_path(name):
        return task_class(name)
    module_name, _, attr = name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = ""
        missing = getattr(exc, "name", None)
        if isinstance(exc, ModuleNotFoundError) and missing and module_name.startswith(missing):
            hint = (
                f": '{missing}' is not on Python's path (the working directory "
                f"{Path.cwd()} is not on it when optiscope runs as a command). Put the package in "
                "the experiment file's folder (that folder is added to the path), install it with "
                "`pip install -e .`, or set PYTHONPATH=."
            )
        raise OptiscopeError(f"task '{name}': cannot import module '{module_name}' ({exc}){hint}") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise OptiscopeError(f"task '{name}': module '{module_name}' has no callable '{attr}'")
    return factory


def settings_function(name: str) -> Callable[..., Any]:
    """The callable whose keyword arguments are task `name`'s settings."""
    factory = task_factory(name)
    return factory.__init__ if isinstance(factory, type) else factory


def make_task(name: str, **settings: Any) -> Task:
    """Build task `name` with `settings`, checked against its signature (errors name the field)."""
    factory = task_factory(name)
    checked = validate_settings("task", name, settings_function(name), settings)
    try:
        task = factory(**checked)
    except OptiscopeError as exc:  # a user's factory: say which config name built it
        if not is_import_path(name) or str(exc).startswith(f"task '{name}'"):
            raise
        raise OptiscopeError(f"task '{name}': {exc}") from None
    if not isinstance(task, Task):
        raise OptiscopeError(f"task '{name}' returned {type(task).__name__}, not an optiscope Task")
    if is_import_path(name) and not getattr(task, "named", False):
        task.name = name  # type: ignore[misc]  (tables and errors show the path the config wrote)
    return task


def _load_builtin_tasks() -> None:
    # Importing the package registers every built-in task module.
    import optiscope.tasks  # noqa: F401
