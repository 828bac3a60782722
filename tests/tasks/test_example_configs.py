"""The example experiment per task family loads, validates every task's settings and names only
this family's tasks."""

from __future__ import annotations

from pathlib import Path

import pytest

from optiscope.config import load_config
from optiscope.tasks import TASKS

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
FAMILIES = ["synthetic", "convex", "linear_nets", "vision", "language", "continual"]


@pytest.mark.parametrize("family", FAMILIES)
def test_family_example_config_loads_and_uses_its_family(family):
    config = load_config(EXPERIMENTS / f"{family}.toml")
    names = {t.name for t in config.tasks}
    assert names and all(TASKS[n].family == family for n in names)
