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

Roles (what optimizers such as Muon read) are inferred from module types: an `Embedding`'s
weight is "embedding"; the weight of the *last* `Linear` is "head"; other `Linear` and `Conv`
weights are "hidden"; normalisation weights (LayerNorm, GroupNorm, BatchNorm, RMSNorm) are
"gain"; every parameter called `bias` is "bias"; anything else is "hidden" if it is a matrix or
more, else "vector".

A user's task by import path. A config may name a task `"mypkg.models:make_task"`: a callable
that takes the `[[tasks]]` table's other keys as keyword arguments (with defaults, which are
what gets stored as the task's effective settings) and returns a `Task`, typically:

    def make_task(*, hidden: int = 32, batch_size: int = 64) -> ModuleTask:
        x, y, x_test, y_test = load_my_data()
        return ModuleTask(lambda: MyNet(hidden), x, y, x_test, y_test, batch_size=batch_size)

Limits: the forward must be a pure function of (params, buffers, x): modules that update buffers
in the forward pass (BatchNorm in training mode) are not supported; use LayerNorm / GroupNorm or
put the module in eval mode in the builder.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state

from optiscope.tasks.base import Batch, MetricInfo, Params, require
from optiscope.tasks.dataset import DatasetTask

NORMS = (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._NormBase, nn.RMSNorm)
ACTIVATIONS = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU,
    nn.Mish, nn.Tanh, nn.Sigmoid, nn.Softplus, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid,
)
LOSSES = ("cross_entropy", "mse")


def head_name(module: nn.Module) -> str | None:
    """Name of the last `Linear` submodule: the head."""
    linears = [name for name, m in module.named_modules() if isinstance(m, nn.Linear)]
    return linears[-1] if linears else None


def module_roles(module: nn.Module) -> dict[str, str]:
    """Role of each named parameter of `module`, inferred from the module types (see above)."""
    head = head_name(module)
    roles: dict[str, str] = {}
    for mod_name, m in module.named_modules():
        for p_name, p in m.named_parameters(recurse=False):
            full = f"{mod_name}.{p_name}" if mod_name else p_name
            if p_name == "bias":
                roles[full] = "bias"
            elif isinstance(m, nn.Embedding):
                roles[full] = "embedding"
            elif isinstance(m, nn.Linear) and mod_name == head:
                roles[full] = "head"
            elif isinstance(m, NORMS):
                roles[full] = "gain"
            else:
                roles[full] = "hidden" if p.ndim >= 2 else "vector"
    return roles


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
        require(loss in LOSSES, name, "loss", f"one of {LOSSES}", loss)
        require((x_test is None) == (y_test is None), name, "x_test", "given with y_test", "only one")
        self.build, self.loss_name, self.batch_size = build, loss, batch_size
        self.template = build()
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

    def forward(self, params: Params, x: Tensor) -> Tensor:
        return functional_call(self.template, (params, self.buffers), (x,))

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
        return self._loss(self.forward(params, batch["x"]), batch["y"])

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
