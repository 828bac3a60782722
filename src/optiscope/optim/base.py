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
    #: Divisor of the learning rate (Adam's bias correction lr / (1 - beta1^t), kept as a
    #: division so the step rounds exactly as torch.optim's does).
    lr_divisor: float = 1.0
    #: When set, the chain's final direction is ``u / denominator``, applied with `addcdiv_`
    #: as torch.optim does (Adam's last piece sets it; it must then be the chain's last piece).
    denominator: Tensor | None = None
    #: Learning rate of this tensor's final update; None means the group's `lr` (Muon's AdamW
    #: part sets its own).
    lr: float | None = None
    #: Position of the tensor in the optimizer's flat parameter order (names noise streams).
    index: int = 0
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

    def normal_like(self, t: Tensor, stream: str, counter: int) -> Tensor:
        """Seeded standard normals shaped like `t`, member i's keyed on seed i (see
        `EnsembleOptimizer.normal_like`)."""
        return self.optimizer.normal_like(t, f"{stream}/{self.index}", counter)


class Transform:
    """One piece of an update rule, applied per tensor and in place on its state.

    `update` maps the incoming direction `u` (at first the gradient) to the next one. `before`
    may act on the parameter itself before the update (decoupled weight decay). The chain's
    final direction is applied by the optimizer as ``p -= lr * ctx.lr_scale / ctx.lr_divisor * u``
    (``u / ctx.denominator`` when a piece sets a denominator, as Adam's does), with `lr` the
    group's unless a piece sets ``ctx.lr``.
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
    #: Gradient evaluations per `step` (SAM: 2); engines count the real number and store it for
    #: equal-budget comparisons. A string where it varies (line search, basin hopping).
    grad_evals_per_step: ClassVar[int | str] = 1
    #: True when `step` must be given a closure that re-evaluates the loss and gradients.
    needs_closure: ClassVar[bool] = False
    #: True when the optimizer reads each tensor's role (`hidden`, `head`, ... from the task) from
    #: a `role` key of its param group; the engines then pass one group per tensor
    #: (see optiscope.optim.roles.parameters_for).
    wants_roles: ClassVar[bool] = False

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

    def chain_for(self, group: dict[str, Any], p: Tensor) -> Sequence[Transform]:
        """The transforms for tensor `p` of `group` (default: the group's chain). Optimizers
        that treat tensors of one group differently (Muon: matrices vs the rest) override it."""
        return self.chain(group)

    # -- helpers for optimizers that act on all tensors at once --------------------------------
    def params_with_grad(self) -> list[Tensor]:
        """Every parameter that has a gradient, in param-group order."""
        return [p for g in self.param_groups for p in g["params"] if p.grad is not None]

    def param_index(self, p: Tensor) -> int:
        """Position of `p` in the flat parameter order (stable: names noise streams)."""
        flat = getattr(self, "_flat_index", None)
        if flat is None or len(flat) != sum(len(g["params"]) for g in self.param_groups):
            flat = {id(q): i for i, q in enumerate(q for g in self.param_groups for q in g["params"])}
            self._flat_index = flat
        return flat[id(p)]

    def per_member(self, values: Tensor, like: Tensor) -> Tensor:
        """Reshape per-member values (shape (S,) or ()) to broadcast against tensor `like`."""
        if self.ensemble_dims == 0:
            return values.reshape(())
        return values.reshape(values.shape[:1] + (1,) * (like.dim() - 1))

    def member_sq_norm(self, tensors: Sequence[Tensor]) -> Tensor:
        """Sum of squares over all `tensors`, per member: shape (S,) or () (float32 or wider)."""
        total = None
        for t in tensors:
            dims = tuple(range(self.ensemble_dims, t.dim()))
            sq = t.square().sum(dim=dims) if dims else t.square()
            total = sq if total is None else total + sq
        if total is None:
            raise OptiscopeError(f"{type(self).__name__}: no parameter has a gradient")
        return total

    def normal_like(self, t: Tensor, stream: str, counter: int) -> Tensor:
        """Standard normals shaped like `t`, reproducible from the member seeds.

        Row i is `seeded_normal(seeds[i], stream, counter)`: the same in an ensemble and in a
        loop run with seed i, whatever the other members are.
        """
        from optiscope.tasks.data import seeded_normal

        seeds = self._seeds_for(t.shape[0] if self.ensemble_dims else 1)
        member_shape = tuple(t.shape[self.ensemble_dims :])
        z = seeded_normal(seeds, stream, counter, member_shape)
        if self.ensemble_dims == 0:
            z = z[0]
        return z.to(device=t.device, dtype=t.dtype)

    def member_uniform(self, stream: str, counter: int) -> Tensor:
        """One uniform in (0, 1) per member (shape (S,) or ()), keyed on the member seeds."""
        from optiscope.tasks.data import seeded_uniform

        n = len(self.seeds()) if self.member_seeds is not None else self._n_members()
        u = seeded_uniform(self._seeds_for(n), stream, counter, 1)[:, 0].float()
        return u[0] if self.ensemble_dims == 0 else u

    def _n_members(self) -> int:
        if self.ensemble_dims == 0:
            return 1
        return int(self.param_groups[0]["params"][0].shape[0])

    def _seeds_for(self, n: int) -> Tensor:
        """`seeds()`, or, for an ensemble built by hand without `member_seeds`, seed + arange(n)."""
        seeds = self.seeds()
        if self.member_seeds is None and n != len(seeds):
            seeds = seeds[0] + torch.arange(n)
        return seeds

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
        for p in group["params"]:
            if p.grad is None:
                continue
            if p.grad.is_sparse:
                raise OptiscopeError(f"{type(self).__name__} does not support sparse gradients")
            chain = self.chain_for(group, p)
            state = self.state[p]
            if not state:
                self._init_state(p, group, chain)
            state["step"] += 1
            ctx = StepContext(group["ensemble_dims"], self, index=self.param_index(p))
            u = -p.grad if group.get("maximize", False) else p.grad
            for t in chain:
                t.before(p, state, group, ctx)
            for t in chain:
                u = t.update(u, p, state, group, ctx)
            lr = group["lr"] if ctx.lr is None else ctx.lr
            alpha = -(lr * ctx.lr_scale / ctx.lr_divisor)
            if ctx.denominator is not None:
                p.addcdiv_(u, ctx.denominator, value=alpha)
            else:
                p.add_(u, alpha=alpha)
