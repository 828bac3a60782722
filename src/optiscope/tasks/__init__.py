"""Tasks: problems an ensemble trains on. Importing this package registers the built-ins.

One module per family: synthetic (test functions with listed minima, COCO-style instances),
convex (problems with an independently computed f*), linear_nets, vision (MNIST-1D, digits, and
torchvision-format MNIST / CIFAR-10 from a local `data_root`), language (byte-level transformer),
continual (task sequences trained within one run). `optiscope list tasks` shows them all.
A user's own model is a `ModuleTask` (module_task.py), named in a config by import path.
"""

from optiscope.tasks import (  # noqa: F401  (registration)
    continual,
    convex,
    language,
    linear_nets,
    synthetic,
    vision,
)
from optiscope.tasks.base import ROLES, Batch, MemberBatch, MetricInfo, Params, Task
from optiscope.tasks.dataset import DatasetTask
from optiscope.tasks.module_task import ModuleTask, module_roles
from optiscope.tasks.registry import TASKS, make_task, register_task, task_class, task_factory

__all__ = [
    "ROLES",
    "TASKS",
    "Batch",
    "DatasetTask",
    "MemberBatch",
    "MetricInfo",
    "ModuleTask",
    "Params",
    "Task",
    "make_task",
    "register_task",
    "module_roles",
    "task_class",
    "task_factory",
]
