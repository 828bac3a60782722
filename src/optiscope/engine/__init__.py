"""Training engines: the vmapped ensemble trainer, the per-member loop trainer, the runner."""

from optiscope.engine.ensemble import EnsembleTrainer, stack_init
from optiscope.engine.loop import LoopTrainer, train_member
from optiscope.engine.result import CellResult, MetricLog
from optiscope.engine.runner import RunSummary, resolve_device, run_cell, run_experiment

__all__ = [
    "CellResult",
    "EnsembleTrainer",
    "LoopTrainer",
    "MetricLog",
    "RunSummary",
    "resolve_device",
    "run_cell",
    "run_experiment",
    "stack_init",
    "train_member",
]
