"""Training engines: one run loop (`Trainer`) with a vmapped ensemble step or a per-member step,
and the runner that trains an experiment's cells into a store."""

from optiscope.engine.ensemble import EnsembleStep, EnsembleTrainer, stack_init
from optiscope.engine.loop import LoopTrainer, MemberLoopStep, train_member
from optiscope.engine.result import ENGINE_METRICS, CellResult, MetricLog
from optiscope.engine.runner import RunSummary, resolve_device, run_cell, run_experiment
from optiscope.engine.trainer import ProbeHook, StepStrategy, Trainer

__all__ = [
    "ENGINE_METRICS",
    "CellResult",
    "EnsembleStep",
    "EnsembleTrainer",
    "LoopTrainer",
    "MemberLoopStep",
    "MetricLog",
    "ProbeHook",
    "RunSummary",
    "resolve_device",
    "run_cell",
    "run_experiment",
    "StepStrategy",
    "Trainer",
    "stack_init",
    "train_member",
]
