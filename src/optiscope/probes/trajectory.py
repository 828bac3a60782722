"""Probes of a task's ensemble at one step, and the runner the engine calls along a trajectory.

`compute_probes` runs the registry's probes (`optiscope.probes.catalog`) on a task and its
ensemble parameters and returns named per-member values (the metric names the store and the
report use); `TrajectoryProbes` implements the engine's `ProbeRunner` protocol on the cadence
of a `ProbeConfig`. Both are also what `optiscope probe` uses on saved parameters.

The probe batch is fixed: each member's first training minibatch, `task.train_batch(seeds, 0)`,
so that values along a trajectory differ because the parameters moved, not the data. Probes that
compare members (CKA) feed every member member 0's inputs.
"""

from __future__ import annotations

import torch
from torch import Tensor

from optiscope.core.members import per_member
from optiscope.probes.catalog import PROBES, representation_fn
from optiscope.probes.quantity import ProbeContext
from optiscope.probes.registry import GLOBAL_METRICS, TENSOR_PROPERTIES, is_probe_metric
from optiscope.probes.schedule import ProbeConfig
from optiscope.tasks.base import MemberBatch, Params, Task

__all__ = [
    "GLOBAL_METRICS", "TENSOR_PROPERTIES", "TrajectoryProbes", "compute_probes", "is_probe_metric",
    "probe_batch", "representation_fn",
]


def probe_batch(task: Task, seeds: Tensor, device: torch.device | str) -> MemberBatch:
    """Each member's fixed probe batch (its step-0 training minibatch)."""
    return task.train_batch(seeds, 0).to(device)


def compute_probes(
    task: Task,
    params: Params,
    init_params: Params | None,
    seeds: Tensor,
    config: ProbeConfig,
    *,
    groups: tuple[str, ...] | None = None,
    previous: Params | None = None,
    step: int = 0,
    valid: Tensor | None = None,
) -> dict[str, Tensor]:
    """Every probe in `groups` (default: the config's) for an ensemble: name -> (S,) values.

    Members whose parameters are not finite (diverged) get NaN; the others are unaffected.
    """
    groups = groups or config.groups()
    bad = ~torch.stack([torch.isfinite(t.reshape(t.shape[0], -1)).all(1) for t in params.values()]).all(0)
    if bool(bad.any()):
        params = _substitute(params, bad, init_params)
        previous = _substitute(previous, bad, init_params) if previous is not None else None
        out = compute_probes(
            task, params, init_params, seeds, config, groups=groups, previous=previous, step=step,
            valid=~bad,
        )
        nan = torch.tensor(float("nan"))
        # A pair with a diverged member has no barrier.
        masks = {"barrier_to_next": bad | torch.roll(bad, -1)}
        return {k: torch.where(masks.get(k, bad).to(v.device), nan.to(v), v) for k, v in out.items()}
    device = next(iter(params.values())).device
    context = ProbeContext(
        task=task, params=params, init_params=init_params, previous=previous, seeds=seeds,
        config=config, batch=probe_batch(task, seeds, device),
        generator=torch.Generator().manual_seed(1_000_003 * step + 12345), valid=valid,
    )
    out: dict[str, Tensor] = {}
    for probe in PROBES:
        if probe.name in groups:
            out.update(probe.compute(context))
    return {k: v.detach() for k, v in out.items()}


def _substitute(params: Params, bad: Tensor, fallback: Params | None) -> Params:
    """`params` with the `bad` members' tensors replaced by finite ones (their init, or zeros)."""
    out = {}
    for k, v in params.items():
        repl = fallback[k].to(v) if fallback is not None and torch.isfinite(fallback[k]).all() else torch.zeros_like(v)
        mask = per_member(bad.to(v.device), v, 1)
        out[k] = torch.where(mask, repl, v)
    return out


class TrajectoryProbes:
    """The engine's `ProbeRunner`: probes on the config's cadence, one value per member.

    When update ratios are wanted, the runner is also due one step before each probe step,
    where it keeps a copy of the parameters and returns nothing.
    """

    def __init__(self, config: ProbeConfig):
        self.config = config
        self._steps: dict[int, frozenset[int]] = {}
        self._previous: tuple[int, Params] | None = None
        self._total = 0

    def probe_steps(self, total_steps: int) -> frozenset[int]:
        if total_steps not in self._steps:
            self._steps[total_steps] = frozenset(self.config.steps(total_steps))
        return self._steps[total_steps]

    def _wants_update(self) -> bool:
        return "update" in self.config.groups()

    def due(self, step: int, total_steps: int) -> bool:
        self._total = total_steps
        steps = self.probe_steps(total_steps)
        return step in steps or (self._wants_update() and step + 1 in steps)

    def __call__(
        self, task: Task, params: Params, init_params: Params, seeds: Tensor, step: int
    ) -> dict[str, Tensor]:
        previous = self._previous[1] if self._previous and self._previous[0] == step - 1 else None
        self._previous = None
        if self._wants_update():
            self._previous = (step, {k: v.detach().clone() for k, v in params.items()})
        if step not in self.probe_steps(self._total):
            return {}  # only the snapshot before a probe step
        return compute_probes(task, params, init_params, seeds, self.config, previous=previous, step=step)
