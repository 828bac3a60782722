"""The `Task` interface: what the engine needs from a problem to train an ensemble on it.

A task is pure: parameters are a dict of named tensors (one member, no leading axis), the loss is
a function of (params, batch), and all randomness (initialisation, data order, instance shifts)
is a function of the member's seed. The engine stacks members along a leading axis and `vmap`s
the task's functions over it; the loop trainer calls the same functions one member at a time.
That shared definition is what makes "member i of an ensemble equals the loop run with seed i"
true by construction rather than by luck.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor

from optiscope.core.device import to_device
from optiscope.core.roles import ROLES  # re-exported: the role vocabulary is core's
from optiscope.errors import OptiscopeError

Params = dict[str, Tensor]
Batch = dict[str, Tensor]


@dataclass
class MemberBatch:
    """Data for every member at one step.

    `per_member` tensors have a leading axis of size S (member i's slice is what member i sees);
    `shared` tensors are the same for all members (a full evaluation set, say) and are not copied
    S times. A task's `loss`/`evaluate` receive one merged dict: ``{**per_member[i], **shared}``.
    """

    per_member: Batch = field(default_factory=dict)
    shared: Batch = field(default_factory=dict)

    def member(self, i: int) -> Batch:
        """Member i's view, as the loop trainer and tests use it."""
        return {**{k: v[i] for k, v in self.per_member.items()}, **self.shared}

    def to(self, device: torch.device | str) -> MemberBatch:
        """On `device`; host tensors bound for CUDA go through pinned memory without blocking
        (optiscope.core.device.to_device)."""
        return MemberBatch(
            {k: to_device(v, device) for k, v in self.per_member.items()},
            {k: to_device(v, device) for k, v in self.shared.items()},
        )


@dataclass(frozen=True)
class MetricInfo:
    """A metric a task reports, declared once so the store (and the report) never guess.

    `goal`: "min" (lower is better), "max", or None for a categorical label (`basin`) that has
    no better or worse. `unit`: "" for a plain number, else "nats", "bits", "fraction", ...
    """

    name: str
    goal: Literal["min", "max"] | None
    description: str = ""
    unit: str = ""


class Task(abc.ABC):
    """A trainable problem, defined for one member and vmapped by the engine.

    Subclasses set the class attributes and take their settings as keyword-only arguments with
    defaults in ``__init__``; those arguments are what a config's ``[[tasks]]`` table may set.
    """

    #: Name used in configs and `optiscope list tasks`.
    name: ClassVar[str]
    #: Family: synthetic, convex, linear_nets, vision, language, continual.
    family: ClassVar[str] = "other"
    #: One line saying what the task is.
    description: ClassVar[str] = ""
    #: Every metric `evaluate` returns, with its goal and unit. The first is the headline metric.
    metrics: ClassVar[tuple[MetricInfo, ...]] = ()
    #: Members evaluated at once by the ensemble engine (None: all): a bound so that full-data
    #: evaluation fits in memory. A task whose evaluation is tiny per member raises it.
    eval_chunk: ClassVar[int | None] = 8

    # -- parameters -----------------------------------------------------------------------
    @abc.abstractmethod
    def roles(self) -> dict[str, str]:
        """Role of each parameter tensor, one of ROLES."""

    @abc.abstractmethod
    def init_params(self, seed: int) -> Params:
        """Member `seed`'s initial parameters (float32 on the CPU), a pure function of the seed."""

    # -- the objective --------------------------------------------------------------------
    @abc.abstractmethod
    def loss(self, params: Params, batch: Batch) -> Tensor:
        """Scalar training loss of one member on its batch; pure and vmappable."""

    @abc.abstractmethod
    def train_batch(self, seeds: Tensor, step: int) -> MemberBatch:
        """The minibatch each member sees at `step`; depends only on (seed, step)."""

    @abc.abstractmethod
    def eval_batch(self, seeds: Tensor, step: int) -> MemberBatch:
        """Data for `evaluate` at `step` (full train / held-out sets, per-member instances, the
        continual tasks' current stage); depends only on (seed, step)."""

    @abc.abstractmethod
    def evaluate(self, params: Params, batch: Batch) -> dict[str, Tensor]:
        """Named scalar metrics of one member; pure and vmappable. Keys match `metrics`."""

    # -- conveniences ---------------------------------------------------------------------
    def to(self, device: torch.device | str) -> Task:
        """Move any data the task holds to `device` (default: nothing to move)."""
        return self

    def metadata(self) -> dict[str, Any]:
        """Facts about the task's data that runs should record beside the settings.

        Settings say what the user asked for; metadata says what the machine actually had (the
        language task's corpus file list and content hash, say), so runs on different machines
        can be told apart. JSON-serialisable; empty for tasks whose data is fully determined by
        their settings.
        """
        return {}

    def batches_per_epoch(self) -> int | None:
        """Minibatches in one pass over the training data (data size // batch size), or None
        where there is no finite data set (synthetic functions). Line searches that schedule
        their step size per epoch (sgd_armijo's `n_batches_per_epoch`) take their default here."""
        return None

    def num_params(self) -> int:
        return sum(t.numel() for t in self.init_params(0).values())



class TaskSettingError(OptiscopeError, ValueError):
    """A task setting out of range; the message names the task, the setting and what is allowed."""


def require(ok: bool, task: str, setting: str, expected: str, got: Any) -> None:
    """Raise TaskSettingError unless `ok`: "task 'NAME': setting 'FIELD' must be EXPECTED (got X)"."""
    if not ok:
        raise TaskSettingError(f"task '{task}': setting '{setting}' must be {expected} (got {got!r})")


def check_roles(task: Task, params: Mapping[str, Tensor]) -> None:
    """Fail loudly if a task forgot a role or used an unknown one."""
    roles = task.roles()
    missing = set(params) - set(roles)
    if missing:
        raise OptiscopeError(f"task '{task.name}' gives no role for {sorted(missing)}")
    bad = {k: r for k, r in roles.items() if r not in ROLES}
    if bad:
        raise OptiscopeError(f"task '{task.name}' uses unknown roles {bad}; allowed: {ROLES}")
