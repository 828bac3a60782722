"""The ensemble-aware optimizer base and the composable pieces named optimizers are made of.

An optimizer here is a `torch.optim.Optimizer` (drop-in for any training loop, with
`state_dict`, param groups and LR schedulers working as usual) whose update is a *chain* of
small `Transform`s, in the spirit of optax's gradient transformations: momentum, second-moment
preconditioning, a norm's duality map, weight decay. Each transform reads its hyperparameters
from the param group at step time through `StepContext.hyper` (so schedulers can change them,
and a per-member tensor gives each member its own value) and keeps its buffers in the
per-tensor state under torch.optim's names (`momentum_buffer`, `exp_avg`, ...). Pieces return
directions; the last piece, `ScaleByLearningRate`, applies the step.

`ensemble_dims` says how many leading axes index ensemble members (0: ordinary tensors; 1: axis 0
is the member). Elementwise pieces ignore it; any piece that takes a norm, a matrix function or a
global statistic computes it per member through the helpers on `StepContext`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor
from torch.optim import Optimizer

from optiscope.core import check_ensemble_dims, member_sq_norm, per_member, seeded_normal_like, seeded_uniform
from optiscope.errors import OptiscopeError
from optiscope.optim.hyperparameters import (
    Declaration,
    HyperparameterError,
    check_member_shapes,
    check_per_member_names,
    checked,
    declared_init,
    is_zero,
    member_value,
    on_device,
    per_member_names,
)


@dataclass(frozen=True)
class Scaled:
    """A direction whose scalar factors are kept apart until the learning rate applies it.

    The step is ``lr * factor / divisor * value / denominator``; keeping it factored lets the
    apply round exactly as torch.optim does (Adam: ``addcdiv`` with step size lr / bias
    correction). A piece that needs the plain tensor calls `tensor()`.
    """

    value: Tensor
    denominator: Tensor | None = None
    factor: float = 1.0
    divisor: float = 1.0

    def tensor(self) -> Tensor:
        u = self.value if self.denominator is None else self.value / self.denominator
        scale = self.factor / self.divisor
        if isinstance(scale, Tensor):  # per member, kept wide until here
            return u * scale.to(u.dtype)
        return u * scale if scale != 1.0 else u


#: What a piece passes on: a plain direction, or one with its scalar factors kept apart.
Direction = Tensor | Scaled


@dataclass(frozen=True)
class StepContext:
    """Read-only facts about the tensor being updated: its member axes and flat position."""

    ensemble_dims: int
    optimizer: EnsembleOptimizer
    #: Position of the tensor in the optimizer's flat parameter order (names noise streams).
    index: int = 0

    def hyper(self, group: dict[str, Any], key: str, like: Tensor) -> Any:
        """Hyperparameter `key` of the group as used on `like` (per-member tensors broadcast,
        in `like`'s dtype)."""
        return member_value(group[key], like, self.ensemble_dims)

    def raw(self, group: dict[str, Any], key: str, like: Tensor) -> Any:
        """Hyperparameter `key` shaped for `like` but kept wide (float64), for arithmetic on
        hyperparameters (1 - beta2^t); `member` casts the result, as torch casts a Python
        float."""
        return member_value(group[key], like, self.ensemble_dims, cast=False)

    def member(self, value: Any, like: Tensor) -> Any:
        """A hyperparameter value (an entry of `betas`, a coefficient made from them) as used
        on `like`."""
        return member_value(value, like, self.ensemble_dims)

    def scratch(self, like: Tensor, slot: str) -> Tensor:
        """A buffer shaped like parameter `like` for piece `slot`, reused every step (see
        `EnsembleOptimizer.scratch`)."""
        return self.optimizer.scratch(like, slot)

    def normal_like(self, t: Tensor, stream: str, counter: int) -> Tensor:
        """Seeded standard normals shaped like `t`, member i's keyed on seed i (see
        `EnsembleOptimizer.normal_like`)."""
        return self.optimizer.normal_like(t, f"{stream}/{self.index}", counter)


class Transform:
    """One piece of an update rule, applied per tensor (optax's GradientTransformation).

    `init` creates the piece's buffers in the tensor's state; `update` maps the incoming
    direction (at first the gradient) to the next one. A chain ends with an `Apply` piece, which
    writes the step into the parameter.
    """

    def init(self, p: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        """Create this piece's buffers for tensor `p`."""

    def update(
        self, u: Tensor, p: Tensor, state: dict[str, Any], group: dict[str, Any], ctx: StepContext
    ) -> Direction:
        return u


class Apply(Transform):
    """The last piece of a chain: applies the final direction to the parameter."""

    def apply(
        self, u: Direction, p: Tensor, state: dict[str, Any], group: dict[str, Any], ctx: StepContext
    ) -> None:
        raise NotImplementedError


def add_scaled(
    x: Tensor, y: Tensor, alpha: Any, *, inplace: bool = False, out: Tensor | None = None
) -> Tensor:
    """x + alpha * y, with torch's fused `alpha=` for a number (as torch.optim rounds) and
    `addcmul` for a per-member tensor (which rounds as `alpha=` does); in place on `x` if
    asked, else into `out` if given."""
    if inplace:
        out = x
    if isinstance(alpha, Tensor):
        return torch.addcmul(x, y, alpha, out=out) if out is not None else x.addcmul(y, alpha)
    return torch.add(x, y, alpha=alpha, out=out) if out is not None else x.add(y, alpha=alpha)


class ScaleByLearningRate(Apply):
    """p <- p (1 - lr wd) - lr u: the learning rate, with torch's decoupled weight decay.

    `lr` and `decoupled_weight_decay` name the group keys (Muon's AdamW part reads its own).
    A `Scaled` direction is applied as torch.optim does: ``addcdiv`` with lr * factor / divisor.
    """

    def __init__(self, lr: str = "lr", decoupled_weight_decay: str | None = None):
        self.lr, self.decay = lr, decoupled_weight_decay

    def apply(self, u: Direction, p: Tensor, state: dict, group: dict, ctx: StepContext) -> None:
        lr = ctx.raw(group, self.lr, p)
        if self.decay is not None:
            if not is_zero(group[self.decay]):
                wd = ctx.raw(group, self.decay, p)
                p.mul_(ctx.member(1 - lr * wd, p))
        d = u if isinstance(u, Scaled) else Scaled(u)
        alpha = -(lr * d.factor / d.divisor)
        if isinstance(alpha, Tensor):  # per member; rounds as the scalar forms below do
            alpha = ctx.member(alpha, p)
            if d.denominator is None:
                p.addcmul_(d.value, alpha)
            else:
                p.addcdiv_(torch.mul(d.value, alpha, out=ctx.scratch(p, "apply")), d.denominator)
        elif d.denominator is not None:
            p.addcdiv_(d.value, d.denominator, value=alpha)
        else:
            p.add_(d.value, alpha=alpha)


def chain(*pieces: Transform) -> tuple[Transform, ...]:
    """The pieces applied in order (optax's `chain`); the last must be an `Apply`."""
    if not pieces or not isinstance(pieces[-1], Apply):
        raise TypeError("a chain ends with an Apply piece (ScaleByLearningRate)")
    return pieces


class EnsembleOptimizer(Optimizer):
    """Base class: an Optimizer whose per-tensor update is `self.chain(group)`.

    Subclasses list their hyperparameters in `hyperparameters` (see
    optiscope.optim.hyperparameters.declare) and implement `chain` (or `chain_for`, a partition
    by tensor); the class then gets an ``__init__`` whose signature is that declaration, which
    validates the values and passes them to `configure`. (A subclass may instead write its own
    ``__init__`` and call ``super().__init__(params, defaults, ensemble_dims=...)``.) Class
    attributes describe the optimizer for `optiscope list optimizers` and the store.
    """

    #: The hyperparameters a user sets, in signature order (becomes ``__init__``'s signature).
    hyperparameters: ClassVar[Declaration] = ()
    #: Group settings the class fixes rather than declares (AdamW: decoupled_weight_decay=True).
    fixed: ClassVar[Mapping[str, Any]] = {}

    #: Norm whose steepest descent this optimizer is (with averaging off), for listings.
    norm: ClassVar[str] = "-"
    #: Independent implementation this optimizer is tested against.
    reference: ClassVar[str] = "-"
    #: Gradient evaluations per `step` (SAM: 2), for equal-budget comparisons (a `grad_evals`
    #: budget runs grad_evals // grad_evals_per_step steps). Forward-only evaluations (line-search
    #: trials) are not gradients; where the number varies (basin hopping's decision steps) this is
    #: the typical step's, and the engines count and store the real number.
    grad_evals_per_step: ClassVar[int] = 1
    #: True when `step` must be given a closure that re-evaluates the loss and gradients.
    needs_closure: ClassVar[bool] = False
    #: True when a step's evaluations depend on the members (a line search runs until every
    #: member has its step): such optimizers are not packed into shared ensembles.
    variable_evaluations: ClassVar[bool] = False
    #: True when the optimizer reads each tensor's role (`hidden`, `head`, ... from the task) from
    #: a `role` key of its param group; the engines then pass one group per tensor
    #: (see optiscope.optim.roles.parameters_for).
    wants_roles: ClassVar[bool] = False

    def __init__(
        self, params: Iterable[Any], defaults: dict[str, Any], *, ensemble_dims: int = 0
    ) -> None:
        check_ensemble_dims(ensemble_dims, HyperparameterError)
        defaults = {**defaults, "ensemble_dims": ensemble_dims}
        super().__init__(params, defaults)
        self._place_member_values()
        #: Seeds of the members (shape (S,) with ensemble_dims=1, (1,) otherwise). Optimizers
        #: that draw noise key it on these (optiscope.core.seeded_normal) so member i's
        #: noise is the same in an ensemble and in a loop run with seed i. The engines set it;
        #: in a user's own loop it defaults to seed 0, or to a `seed` hyperparameter if present.
        self.member_seeds: torch.Tensor | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.hyperparameters and "__init__" not in cls.__dict__:
            init = declared_init(cls)
            cls.__init__ = init  # type: ignore[method-assign]
            cls._settings_init = staticmethod(init)  # what `configure` checks against

    def configure(self, params: Iterable[Any], given: dict[str, Any], ensemble_dims: int) -> None:
        """Build the optimizer from the user's hyperparameters `given` (every declared one, as
        passed or defaulted); subclasses check combinations here before calling super."""
        check_per_member_names(type(self).__name__, given, per_member_names(type(self)))
        hp = checked(type(self)._settings_init, given)
        defaults = self.group_defaults(hp)
        EnsembleOptimizer.__init__(self, params, defaults, ensemble_dims=ensemble_dims)

    def group_defaults(self, hp: dict[str, Any]) -> dict[str, Any]:
        """The param-group defaults made from the checked hyperparameters (default: those and
        the class's `fixed` settings)."""
        return {**hp, **self.fixed}

    def _place_member_values(self, *, wide: bool = True) -> None:
        """Check every per-member tensor in the groups (one entry per member) and move it to
        its group's device (as float64 if `wide`), once, so steps never copy it from the host."""
        n = self._n_members() if self.defaults["ensemble_dims"] else None
        for group in self.param_groups:
            values = {k: v for k, v in group.items() if k != "params"}
            check_member_shapes(type(self).__name__, values, n)
            device = group["params"][0].device if group["params"] else torch.device("cpu")
            for k, v in values.items():
                group[k] = on_device(v, device, wide=wide)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """torch's, then per-member values back on the parameters' device (dtypes kept); caches
        of the old groups and state (optiscope.optim.kernels) are dropped."""
        super().load_state_dict(state_dict)
        self._place_member_values(wide=False)
        self.__dict__.pop("_kernel_caches", None)

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

    def scratch(self, like: Tensor, slot: str) -> Tensor:
        """A buffer shaped like parameter `like`, kept between steps but not in the state_dict,
        for piece `slot`'s temporary. Large temporaries made afresh every step cost page faults
        (on the benchmark CPU an out-of-place op on a 4 MB tensor took ~20x its in-place form),
        so the unfused chains write into these instead. Elsewhere (CUDA's caching allocator has
        no such cost) a fresh buffer, so no memory is held between steps."""
        if like.device.type != "cpu":
            return torch.empty_like(like, memory_format=torch.contiguous_format)
        buffers = self.__dict__.setdefault("_scratch", {})
        key = (id(like), slot)
        buf = buffers.get(key)
        if buf is None or (buf.shape, buf.dtype, buf.device) != (like.shape, like.dtype, like.device):
            buf = buffers[key] = torch.empty_like(like, memory_format=torch.contiguous_format)
        return buf

    def per_member(self, values: Tensor, like: Tensor) -> Tensor:
        """Reshape per-member values (shape (S,) or ()) to broadcast against tensor `like`."""
        return per_member(values, like, self.ensemble_dims)

    def member_sq_norm(self, tensors: Sequence[Tensor]) -> Tensor:
        """Sum of squares over all `tensors`, per member: shape (S,) or ()."""
        if not tensors:
            raise OptiscopeError(f"{type(self).__name__}: no parameter has a gradient")
        return member_sq_norm(tensors, self.ensemble_dims)

    def normal_like(self, t: Tensor, stream: str, counter: int) -> Tensor:
        """Standard normals shaped like `t`, reproducible from the member seeds.

        Row i is `seeded_normal(seeds[i], stream, counter)`: the same in an ensemble and in a
        loop run with seed i, whatever the other members are.
        """
        seeds = self._seeds_for(t.shape[0] if self.ensemble_dims else 1)
        return seeded_normal_like(t, seeds, stream, counter, self.ensemble_dims)

    def member_uniform(self, stream: str, counter: int) -> Tensor:
        """One uniform in (0, 1) per member (shape (S,) or ()), keyed on the member seeds."""
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

    def finish(self) -> None:
        """Called once after the last training step, before the final evaluation (default:
        nothing). Optimizers whose iterate is not their answer (basin hopping) put it here."""

    @staticmethod
    def evaluate(closure: Callable[[], Any] | None) -> Any:
        """The closure's loss with gradients (torch convention), or None without a closure."""
        if closure is None:
            return None
        with torch.enable_grad():
            return closure()

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One update of every parameter with a gradient. Returns the closure's loss, if any."""
        loss = self.evaluate(closure)
        if closure is None and self.needs_closure:
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
            *pieces, last = self.chain_for(group, p)
            state = self.state[p]
            if not state:
                self._init_state(p, group, (*pieces, last))
            state["step"] += 1
            ctx = StepContext(group["ensemble_dims"], self, index=self.param_index(p))
            u: Direction = -p.grad if group.get("maximize", False) else p.grad
            for t in pieces:
                u = t.update(u.tensor() if isinstance(u, Scaled) else u, p, state, group, ctx)
            last.apply(u, p, state, group, ctx)

