"""The ensemble-aware optimizer base and the composable pieces named optimizers are made of.

An optimizer here is a `torch.optim.Optimizer` (drop-in for any training loop, with
`state_dict`, param groups and LR schedulers working as usual) whose update is a *chain* of
small `Transform`s, in the spirit of optax's gradient transformations: momentum, second-moment
preconditioning, a norm's duality map, weight decay. Each transform reads its hyperparameters
from the param group at step time (so schedulers can change them) and keeps its buffers in the
per-tensor state under torch.optim's names (`momentum_buffer`, `exp_avg`, ...).

`ensemble_dims` says how many leading axes index ensemble members (0: ordinary tensors; 1: axis 0
is the member). Elementwise pieces ignore it; any piece that takes a norm, a matrix function or a
global statistic computes it per member through the helpers on `StepContext`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor
from torch.optim import Optimizer

from optiscope.errors import OptiscopeError


class HyperparameterError(OptiscopeError, ValueError):
    """A hyperparameter outside its allowed range; the message names the argument."""


def check_hyperparameter(
    name: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    """Raise HyperparameterError unless low <= value <= high (open ends where asked)."""
    if isinstance(value, Tensor):
        value = value.item() if value.numel() == 1 else value
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise HyperparameterError(f"{name} must be a number, got {value!r}")
    if math.isnan(value):
        raise HyperparameterError(f"{name} must not be NaN")
    ok_low = low is None or (value > low if low_open else value >= low)
    ok_high = high is None or (value < high if high_open else value <= high)
    if not (ok_low and ok_high):
        lo = "-inf" if low is None else f"{low}"
        hi = "inf" if high is None else f"{high}"
        interval = f"{'(' if low_open or low is None else '['}{lo}, {hi}{')' if high_open or high is None else ']'}"
        raise HyperparameterError(f"{name} must be in {interval}, got {value}")


def check_betas(name: str, betas: Sequence[float], n: int = 2) -> None:
    if len(betas) != n:
        raise HyperparameterError(f"{name} must have {n} entries, got {betas!r}")
    for i, b in enumerate(betas):
        check_hyperparameter(f"{name}[{i}]", b, 0.0, 1.0, high_open=True)


@dataclass
class StepContext:
    """What a transform may need beyond its own tensor: member axes and per-step extras."""

    ensemble_dims: int
    optimizer: EnsembleOptimizer
    #: Multiplier on the learning rate for this tensor's final update (bias corrections etc.).
    lr_scale: float = 1.0
    extras: dict[str, Any] = field(default_factory=dict)

    # -- per-member reductions --------------------------------------------------------
    def member_dims(self, t: Tensor) -> tuple[int, ...]:
        """The axes of `t` that belong to one member (everything after the ensemble axes)."""
        return tuple(range(self.ensemble_dims, t.dim()))

    def member_shape(self, t: Tensor) -> torch.Size:
        return t.shape[self.ensemble_dims :]

    def broadcastable(self, per_member: Tensor, like: Tensor) -> Tensor:
        """Reshape a (members...) tensor so it broadcasts against `like`."""
        return per_member.reshape(per_member.shape + (1,) * (like.dim() - self.ensemble_dims))

    def member_norm(self, t: Tensor, ord: float = 2.0) -> Tensor:
        """Vector p-norm of each member's slice of `t`, shaped to broadcast against `t`."""
        dims = self.member_dims(t)
        n = torch.linalg.vector_norm(t, ord=ord, dim=dims, keepdim=True) if dims else t.abs()
        return n

    def member_sum(self, t: Tensor) -> Tensor:
        dims = self.member_dims(t)
        return t.sum(dim=dims, keepdim=True) if dims else t


class Transform:
    """One piece of an update rule, applied per tensor and in place on its state.

    `update` maps the incoming direction `u` (at first the gradient) to the next one. `before`
    may act on the parameter itself before the update (decoupled weight decay). The chain's
    final direction is applied by the optimizer as ``p -= lr * ctx.lr_scale * u``.
    """

    #: Hyperparameter names this piece reads from the param group (for docs and checks).
    reads: ClassVar[tuple[str, ...]] = ()

    def init(self, p: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        """Create this piece's buffers for tensor `p`."""

    def before(
        self, p: Tensor, state: dict[str, Any], group: dict[str, Any], ctx: StepContext
    ) -> None:
        """Act on the parameter before the update (default: nothing)."""

    def update(
        self, u: Tensor, p: Tensor, state: dict[str, Any], group: dict[str, Any], ctx: StepContext
    ) -> Tensor:
        return u


class EnsembleOptimizer(Optimizer):
    """Base class: an Optimizer whose per-tensor update is `self.chain(group)`.

    Subclasses call ``super().__init__(params, defaults, ensemble_dims=...)`` after validating
    their hyperparameters, and implement `chain`. Class attributes describe the optimizer for
    `optiscope list optimizers` and the store.
    """

    #: Norm whose steepest descent this optimizer is (with averaging off), for listings.
    norm: ClassVar[str] = "-"
    #: Independent implementation this optimizer is tested against.
    reference: ClassVar[str] = "-"
    #: Gradient evaluations per `step` (SAM: 2); engines record it for equal-budget comparisons.
    grad_evals_per_step: ClassVar[int] = 1
    #: True when `step` must be given a closure that re-evaluates the loss and gradients.
    needs_closure: ClassVar[bool] = False

    def __init__(
        self, params: Iterable[Any], defaults: dict[str, Any], *, ensemble_dims: int = 0
    ) -> None:
        if ensemble_dims not in (0, 1):
            raise HyperparameterError(f"ensemble_dims must be 0 or 1, got {ensemble_dims!r}")
        defaults = {**defaults, "ensemble_dims": ensemble_dims}
        super().__init__(params, defaults)
        #: Seeds of the members (shape (S,) with ensemble_dims=1, (1,) otherwise). Optimizers
        #: that draw noise key it on these (optiscope.tasks.data.seeded_normal) so member i's
        #: noise is the same in an ensemble and in a loop run with seed i. The engines set it;
        #: in a user's own loop it defaults to seed 0, or to a `seed` hyperparameter if present.
        self.member_seeds: torch.Tensor | None = None

    @property
    def ensemble_dims(self) -> int:
        return int(self.defaults["ensemble_dims"])

    def seeds(self) -> torch.Tensor:
        """The member seeds noise is keyed on (see `member_seeds`)."""
        if self.member_seeds is not None:
            return self.member_seeds
        return torch.tensor([int(self.defaults.get("seed", 0))])

    def chain(self, group: dict[str, Any]) -> Sequence[Transform]:
        """The transforms making up the update for tensors in `group`."""
        raise NotImplementedError

    def _init_state(self, p: Tensor, group: dict[str, Any], chain: Sequence[Transform]) -> None:
        state = self.state[p]
        state["step"] = torch.tensor(0.0, dtype=torch.float32)
        for t in chain:
            t.init(p, state, group)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One update of every parameter with a gradient. Returns the closure's loss, if any."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        elif self.needs_closure:
            raise OptiscopeError(
                f"{type(self).__name__}.step needs a closure that re-evaluates the loss "
                "and its gradients (as torch.optim.LBFGS does)"
            )
        for group in self.param_groups:
            self._step_group(group)
        return loss

    def _step_group(self, group: dict[str, Any]) -> None:
        chain = self.chain(group)
        for p in group["params"]:
            if p.grad is None:
                continue
            if p.grad.is_sparse:
                raise OptiscopeError(f"{type(self).__name__} does not support sparse gradients")
            state = self.state[p]
            if not state:
                self._init_state(p, group, chain)
            state["step"] += 1
            ctx = StepContext(group["ensemble_dims"], self)
            u = -p.grad if group.get("maximize", False) else p.grad
            for t in chain:
                t.before(p, state, group, ctx)
            for t in chain:
                u = t.update(u, p, state, group, ctx)
            p.add_(u, alpha=-group["lr"] * ctx.lr_scale)
