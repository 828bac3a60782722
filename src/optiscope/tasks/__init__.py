"""Tasks: problems an ensemble trains on. Importing this package registers the built-ins."""

from optiscope.tasks import (  # noqa: F401  (registration)
    continual,
    convex,
    language,
    linear_nets,
    synthetic,
    vision,
)
from optiscope.tasks.base import ROLES, Batch, MemberBatch, MetricInfo, Params, Task
from optiscope.tasks.registry import TASKS, make_task, register_task, task_class

__all__ = [
    "ROLES",
    "TASKS",
    "Batch",
    "MemberBatch",
    "MetricInfo",
    "Params",
    "Task",
    "make_task",
    "register_task",
    "task_class",
]
