"""What training a cell produces, whichever trainer ran it."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from optiscope.tasks.base import MetricInfo

#: Metrics the engine itself logs beside the task's. Counters and times have no goal: they are
#: the budget an outcome was bought with, not an outcome (and not categorical either).
ENGINE_METRICS: tuple[MetricInfo, ...] = (
    MetricInfo("batch_loss", "min", "training loss on the step's minibatch, before the update"),
    MetricInfo("grad_evals", None, "loss-and-gradient evaluations spent so far", "evaluations"),
    MetricInfo("func_evals", None, "forward-only loss evaluations spent so far (line-search trials)",
               "evaluations"),
    MetricInfo("time_s", None, "training wall time so far, evaluations and probes excluded", "s"),
)


class MetricLog:
    """Per-member scalar metrics along a run, kept as columns until the cell lands.

    `add(step, name, values)` takes one value per member (a CPU or device tensor); nothing is
    copied to the host until `columns`, so logging does not synchronise a GPU every step.
    """

    def __init__(self, n_members: int):
        self.n_members = n_members
        self._entries: list[tuple[int, str, Tensor]] = []

    def add(self, step: int, name: str, values: Tensor | float) -> None:
        v = torch.as_tensor(values).detach().reshape(-1)
        if v.numel() == 1 and self.n_members > 1:
            v = v.expand(self.n_members)
        self._entries.append((step, name, v))

    def columns(self, diverged_step: list[int | None]) -> dict[str, np.ndarray]:
        """(member, step, name, value) columns; a diverged member's rows stop before its step."""
        if not self._entries:
            return {k: np.array([]) for k in ("member", "step", "name", "value")}
        values = torch.stack([v.float().cpu() for _, _, v in self._entries]).double().numpy()
        steps = np.array([s for s, _, _ in self._entries], dtype=np.int64)
        names = np.array([n for _, n, _ in self._entries], dtype=object)
        n_e, n_m = values.shape
        member = np.tile(np.arange(n_m), n_e)
        step = np.repeat(steps, n_m)
        name = np.repeat(names, n_m)
        value = values.reshape(-1)
        limit = np.array([np.iinfo(np.int64).max if d is None else d for d in diverged_step])
        keep = step < limit[member]
        return {"member": member[keep], "step": step[keep], "name": name[keep], "value": value[keep]}

    def state(self) -> dict[str, object]:
        """For checkpoints: tensors and plain values only."""
        return {
            "steps": [s for s, _, _ in self._entries],
            "names": [n for _, n, _ in self._entries],
            "values": [v.cpu() for _, _, v in self._entries],
        }

    @classmethod
    def from_state(cls, n_members: int, state: dict) -> MetricLog:
        log = cls(n_members)
        log._entries = list(zip(state["steps"], state["names"], state["values"], strict=True))
        return log


@dataclass
class CellResult:
    """The outcome of training one cell: per-member status, metrics and parameters."""

    seeds: list[int]
    diverged_step: list[int | None]
    metrics: MetricLog
    grad_evals: int  # the most any member spent (members spend the same in ensemble mode)
    wall_time_s: float
    mode: str  # "ensemble" | "loop"
    device: str
    final_params: dict[str, Tensor] = field(default_factory=dict)
    init_params: dict[str, Tensor] = field(default_factory=dict)
    func_evals: int = 0  # forward-only evaluations, the most any member spent
    chunk_size: int | None = None  # members per chunk when memory split the ensemble; None: all

    @property
    def status(self) -> list[str]:
        return ["ok" if d is None else "diverged" for d in self.diverged_step]
