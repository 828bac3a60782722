"""A user's task by import path that names itself (`ModuleTask(name=...)`), for test_task_names."""

from __future__ import annotations

from user_model import SmallNet, data

from optiscope.tasks import ModuleTask


def make_named_task(*, hidden: int = 16) -> ModuleTask:
    return ModuleTask(lambda: SmallNet(hidden), *data(), batch_size=16, name="tiny-net")
