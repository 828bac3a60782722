"""A task from an ordinary `torch.nn.Module` and an in-memory data set: bring your own model.

This is PyTorch's model-ensembling recipe (torch.func): the module is built once as a template,
each member's parameters are a dict of tensors, and the forward pass is
`torch.func.functional_call(template, (params, buffers), (x,))`, which the engine `vmap`s over
the members. `stacked_init_params(seeds)` stacks the members' modules with
`torch.func.stack_module_state`.

Initialisation: member `seed` starts from the parameters the module's own constructor draws
after `torch.manual_seed(seed)` (inside `torch.random.fork_rng`, so the global RNG is left as it
was). A plain loop `torch.manual_seed(seed); model = build()` therefore starts where member
`seed` starts.

Activations for the probes (dead units, CKA) come from forward hooks on the template during the
functional call: the output of every activation module (`nn.ReLU`, `nn.GELU`, `nn.Tanh`, ...),
named by the module, and the input of the head (last `Linear`), named `<head>.input`, unless
that is the same tensor as an activation module's output. Each is flattened to (examples, units).

Roles (what optimizers such as Muon read) are inferred from module types by
`optiscope.optim.roles.module_roles`, the same rule `optiscope.optim.param_groups(model)` gives a
plain PyTorch loop.

A user's task by import path. A config may name a task `"mypkg.models:make_task"`: a callable
that takes the `[[tasks]]` table's other keys as keyword arguments (with defaults, which are
what gets stored as the task's effective settings) and returns a `Task`, typically:

    def make_task(*, hidden: int = 32, batch_size: int = 64) -> ModuleTask:
        x, y, x_test, y_test = load_my_data()
        return ModuleTask(lambda: MyNet(hidden), x, y, x_test, y_test, batch_size=batch_size)

Dropout: `nn.Dropout` (and `Dropout1d/2d/3d`) layers are swapped for `SeededDropout`
(optiscope.tasks.seeded_dropout): each member's masks come from a generator keyed on its seed
and the step, so a member trains the same in an ensemble of any size, alone, in loop mode and
after a resume (its masks differ from those of a plain loop's `nn.Dropout`, which draws from
torch's global generator). Dropout is on in training steps and off in evaluation and probes.

Pre-flight: before any training (when the task is built, so when a config is checked), a layer
that cannot run in a vmapped ensemble is refused with a sentence naming it and what to use
instead: BatchNorm (or InstanceNorm) that tracks running statistics in training mode (use
LayerNorm / GroupNorm, or `track_running_stats=False` for batch statistics), and anything a
dry vmapped forward and backward on two members fails on (random ops called directly, `.item()`
in the forward, in-place buffer updates, ...).

`loss`: "cross_entropy" (integer class labels; metrics `*_loss` and `*_acc`) or "mse" (float
targets shaped like the model's output; metrics `*_loss`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state

from optiscope.errors import OptiscopeError
from optiscope.optim.roles import head_name, module_roles
from optiscope.tasks import seeded_dropout
from optiscope.tasks.base import Batch, MemberBatch, MetricInfo, Params, require
from optiscope.tasks.dataset import DatasetTask

ACTIVATIONS = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU,
    nn.Mish, nn.Tanh, nn.Sigmoid, nn.Softplus, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid,
)
LOSSES = ("cross_entropy", "mse")


def refuse_running_statistics(module: nn.Module, who: str) -> None:
    """BatchNorm / InstanceNorm updating running statistics in training mode cannot be vmapped
    (each member would write one shared buffer): refuse it, naming the layer and the fix."""
    for layer, m in module.named_modules():
        if isinstance(m, nn.modules.batchnorm._NormBase) and m.training and m.track_running_stats:
            raise OptiscopeError(
                f"{who}: layer '{layer}' ({type(m).__name__}) updates running statistics "
                "in its forward pass, which a vmapped ensemble cannot do; use nn.LayerNorm or "
                "nn.GroupNorm instead (GroupNorm(1, C) for conv channels), or build it with "
                "track_running_stats=False to normalise with batch statistics"
            )


class ModuleTask(DatasetTask):
    """Train `build()` on (x, y) with `loss`; evaluate on the full training and test splits."""

    name = "module"
    family = "module"
    description = "a user's torch.nn.Module on a user's data set"

    def __init__(
        self,
        build: Callable[[], nn.Module],
        x: Tensor,
        y: Tensor,
        x_test: Tensor | None = None,
        y_test: Tensor | None = None,
        *,
        batch_size: int = 64,
        loss: str = "cross_entropy",
        name: str = "module",
    ):
        self.name = name
        #: True when `name=` was given: it then labels the task in tables and the report.
        self.named = name != type(self).name
        require(loss in LOSSES, name, "loss", f"one of {LOSSES}", loss)
        require((x_test is None) == (y_test is None), name, "x_test", "given with y_test", "only one")
        self.build, self.loss_name, self.batch_size = build, loss, batch_size
        self.template = build()
        refuse_running_statistics(self.template, self._who())
        self.dropout = seeded_dropout.DropoutContext()
        self.dropout_layers = seeded_dropout.install(self.template, self.dropout)
        self.buffers = dict(self.template.named_buffers())
        self._roles = module_roles(self.template)
        self.set_data(x, y, x_test=x_test, y_test=y_test)
        splits = ("train", "test") if x_test is not None else ("train",)
        kind = "cross-entropy" if loss == "cross_entropy" else "mean squared error"
        unit = "nats" if loss == "cross_entropy" else ""
        metrics = []
        for split in reversed(splits):  # the test split's metric first: the headline
            metrics.append(MetricInfo(f"{split}_loss", "min", f"{kind} on the whole {split} split", unit))
            if loss == "cross_entropy":
                metrics.append(MetricInfo(f"{split}_acc", "max", f"accuracy on the {split} split", "fraction"))
        self.metrics = tuple(metrics)
        self.preflight()

    def preflight(self) -> None:
        """A vmapped forward and backward of two members on two examples, before any training:
        a layer that cannot be vmapped is refused naming it (see the module docstring)."""
        from torch.func import grad, vmap

        seeds = torch.tensor([0, 1])
        batch = self.train_batch(seeds, 0)
        small = {k: v[:, : min(2, v.shape[1])] if v.ndim > 1 else v for k, v in batch.per_member.items()}
        params = self.stacked_init_params([0, 1])
        active: list[str] = []

        def enter(layer: str):
            return lambda *_: active.append(layer)

        def leave(layer: str):
            def hook(*_):
                if active and active[-1] == layer:
                    active.pop()
            return hook

        handles = []
        for layer, m in self.template.named_modules():
            if layer:
                handles += [m.register_forward_pre_hook(enter(layer)), m.register_forward_hook(leave(layer))]
        try:
            vmap(grad(self.loss), in_dims=(0, 0))(params, small)
        except Exception as exc:  # any failure is the model's: say which layer and what to do
            vmapped_at = list(active)
            active.clear()
            try:  # the same step for one member, no vmap: a model that fails here has a bug
                grad(self.loss)({k: v[0] for k, v in params.items()}, {k: v[0] for k, v in small.items()})
            except Exception as alone:
                raise OptiscopeError(self._preflight_message(active, alone, vmapped=False)) from None
            raise OptiscopeError(self._preflight_message(vmapped_at, exc)) from None
        finally:
            for h in handles:
                h.remove()

    def _preflight_message(self, active: list[str], exc: Exception, *, vmapped: bool = True) -> str:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        where = (f"layer '{active[-1]}' ({type(self.template.get_submodule(active[-1])).__name__})"
                 if active else "the model's forward or loss")
        if not vmapped:
            return (f"{self._who()}: {where} fails on one member's batch of the task's data, "
                    f"without any ensemble ({first}); check the model against the data's shapes "
                    "and types (and `loss`)")
        if "random operation" in first or "randomness" in first:
            advice = ("it draws random numbers itself (F.dropout, torch.rand*, AlphaDropout): use "
                      "nn.Dropout / Dropout1d/2d/3d modules, which ModuleTask seeds per member")
        else:
            advice = ("replace it with layers torch.func.vmap can batch: no .item() or "
                      "data-dependent Python branches in the forward, no in-place updates of buffers")
        return (f"{self._who()}: {where} cannot run in a vmapped ensemble ({first}); {advice}")

    def _who(self) -> str:
        """How errors name this task: its `name=`, else ModuleTask (a config prefixes its path)."""
        return f"task '{self.name}'" if self.named else "ModuleTask"

    def train_batch(self, seeds: Tensor, step: int) -> MemberBatch:
        """The data minibatch, plus each member's dropout key when the model has dropout."""
        batch = super().train_batch(seeds, step)
        if self.dropout_layers:
            batch.per_member["dropout_key"] = seeded_dropout.dropout_keys(seeds, step).to(self.x.device)
        return batch

    def metadata(self) -> dict[str, Any]:
        """The name given with `name=` (tables and the report show it), beside what the data
        task records."""
        meta = dict(super().metadata())
        if self.named:
            meta["display_name"] = self.name
        return meta

    def member_module(self, seed: int) -> nn.Module:
        """The module a plain loop gets from `torch.manual_seed(seed); build()`, global RNG untouched."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.build()

    def init_params(self, seed: int) -> Params:
        module = self.member_module(seed)
        return {k: v.detach().clone().float().cpu() for k, v in module.named_parameters()}

    def stacked_init_params(self, seeds: list[int]) -> Params:
        """Members' initial parameters on a leading axis (`torch.func.stack_module_state`)."""
        params, _ = stack_module_state([self.member_module(s) for s in seeds])
        return {k: v.detach().float().cpu() for k, v in params.items()}

    def roles(self) -> dict[str, str]:
        return dict(self._roles)

    def forward(self, params: Params, x: Tensor, dropout_key: Tensor | None = None) -> Tensor:
        """The template's forward on `params`; dropout on when a key is given (training)."""
        self.dropout.key, self.dropout.calls = dropout_key, 0
        try:
            return functional_call(self.template, (params, self.buffers), (x,))
        finally:
            self.dropout.key = None

    def logits(self, params: Params, x: Tensor) -> Tensor:
        return self.forward(params, x)

    def representations(self, params: Params, batch: Batch) -> dict[str, Tensor]:
        """Hidden activations on `batch["x"]`, captured by forward hooks: {name: (n, units)}."""
        captured: dict[str, Tensor] = {}
        activation_outputs: list[Tensor] = []
        head = head_name(self.template)

        def keep(name: str, t: Tensor) -> None:
            calls = sum(1 for k in captured if k == name or k.startswith(f"{name}#"))
            captured[name if calls == 0 else f"{name}#{calls + 1}"] = t.flatten(1)

        def on_activation(name: str):
            def hook(_m: nn.Module, _inputs: tuple, output: Tensor) -> None:
                activation_outputs.append(output)
                keep(name, output)
            return hook

        def on_head(_m: nn.Module, inputs: tuple) -> None:
            if not any(inputs[0] is a for a in activation_outputs):
                keep(f"{head}.input", inputs[0])

        handles = [
            m.register_forward_hook(on_activation(name))
            for name, m in self.template.named_modules() if isinstance(m, ACTIVATIONS)
        ]
        if head is not None:
            handles.append(self.template.get_submodule(head).register_forward_pre_hook(on_head))
        try:
            self.forward(params, batch["x"])
        finally:
            for h in handles:
                h.remove()
        return captured

    def _loss(self, out: Tensor, y: Tensor) -> Tensor:
        return F.cross_entropy(out, y) if self.loss_name == "cross_entropy" else F.mse_loss(out, y)

    def loss(self, params: Params, batch: Batch) -> Tensor:
        return self._loss(self.forward(params, batch["x"], batch.get("dropout_key")), batch["y"])

    def evaluate(self, params: Params, batch: Batch) -> dict[str, Tensor]:
        out: dict[str, Tensor] = {}
        for split, (xk, yk) in {"train": ("x", "y"), "test": ("x_test", "y_test")}.items():
            if xk not in batch:
                continue
            pred = self.forward(params, batch[xk])
            out[f"{split}_loss"] = self._loss(pred, batch[yk])
            if self.loss_name == "cross_entropy":
                out[f"{split}_acc"] = (pred.argmax(-1) == batch[yk]).float().mean()
        return {m.name: out[m.name] for m in self.metrics}

    def to(self, device: torch.device | str) -> ModuleTask:
        super().to(device)
        self.template = self.template.to(device)
        self.buffers = {k: v.to(device) for k, v in self.buffers.items()}
        return self
