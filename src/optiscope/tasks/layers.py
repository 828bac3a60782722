"""Functional building blocks for tasks: parameters as dicts, forward passes as pure functions.

Written as plain functions of a params dict (not nn.Modules) so that one definition serves the
vmapped ensemble, the loop trainer and the probes alike.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from optiscope.tasks.base import Params, require
from optiscope.core.rng import member_generator


def init_linear(
    gen: torch.Generator, fan_in: int, fan_out: int, *, bias: bool = True
) -> tuple[Tensor, Tensor | None]:
    """torch.nn.Linear's default init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), weight (out, in)."""
    bound = 1.0 / math.sqrt(fan_in)
    w = (torch.rand(fan_out, fan_in, generator=gen) * 2 - 1) * bound
    b = (torch.rand(fan_out, generator=gen) * 2 - 1) * bound if bias else None
    return w, b


#: The MLP's normalisation after each hidden linear layer, and its activations.
MLP_NORMS: tuple[str, ...] = ("none", "layer")
MLP_ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {"relu": F.relu, "gelu": F.gelu, "tanh": torch.tanh}


def init_mlp(gen: torch.Generator, sizes: list[int], prefix: str = "layer", norm: str = "none") -> Params:
    """Weights `{prefix}{k}.weight/bias` for hidden layers and `head.weight/bias` for the last.

    With `norm="layer"` each hidden layer k also gets a LayerNorm's `norm{k}.weight` (ones) and
    `norm{k}.bias` (zeros), as torch.nn.LayerNorm initialises them; they draw nothing from `gen`,
    so the linear layers' weights are the same with or without them.
    """
    params: Params = {}
    n = len(sizes) - 1
    for k in range(n):
        name = "head" if k == n - 1 else f"{prefix}{k + 1}"
        w, b = init_linear(gen, sizes[k], sizes[k + 1])
        params[f"{name}.weight"] = w
        params[f"{name}.bias"] = b  # type: ignore[assignment]
        if norm == "layer" and k < n - 1:
            params[f"norm{k + 1}.weight"] = torch.ones(sizes[k + 1])
            params[f"norm{k + 1}.bias"] = torch.zeros(sizes[k + 1])
    return params


def mlp_roles(params: Params) -> dict[str, str]:
    """Roles for an `init_mlp` dict: biases `bias`, LayerNorm scales `gain`, the last layer
    `head`, the rest `hidden` (so Muon and Steepest treat the norm's vectors as vectors)."""
    return {
        k: "bias" if k.endswith(".bias") else "head" if k.startswith("head.")
        else "gain" if k.startswith("norm") else "hidden"
        for k in params
    }


def mlp_hidden(
    params: Params, x: Tensor, depth: int, prefix: str = "layer", norm: str = "none", activation: str = "relu"
) -> list[Tensor]:
    """The `depth` hidden layers' outputs: linear, then LayerNorm (`norm="layer"`), then the
    activation."""
    act = MLP_ACTIVATIONS[activation]
    h, out = x, []
    for k in range(1, depth + 1):
        h = F.linear(h, params[f"{prefix}{k}.weight"], params[f"{prefix}{k}.bias"])
        if norm == "layer":
            h = F.layer_norm(h, (h.shape[-1],), params[f"norm{k}.weight"], params[f"norm{k}.bias"])
        h = act(h)
        out.append(h)
    return out


def mlp_forward(
    params: Params, x: Tensor, depth: int, prefix: str = "layer", norm: str = "none", activation: str = "relu"
) -> Tensor:
    """MLP (ReLU and no normalisation by default): `depth` hidden layers then the head; logits."""
    hidden = mlp_hidden(params, x, depth, prefix, norm, activation)
    return F.linear(hidden[-1] if hidden else x, params["head.weight"], params["head.bias"])


def classification_metrics(logits: Tensor, y: Tensor, prefix: str) -> dict[str, Tensor]:
    """Mean cross-entropy and accuracy, named `{prefix}_loss` and `{prefix}_acc`."""
    return {
        f"{prefix}_loss": F.cross_entropy(logits, y),
        f"{prefix}_acc": (logits.argmax(-1) == y).float().mean(),
    }


def init_conv(
    gen: torch.Generator, in_channels: int, out_channels: int, kernel: tuple[int, ...]
) -> tuple[Tensor, Tensor]:
    """torch.nn.ConvNd's default init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = C_in * prod(k)."""
    fan_in = in_channels * math.prod(kernel)
    bound = 1.0 / math.sqrt(fan_in)
    w = (torch.rand(out_channels, in_channels, *kernel, generator=gen) * 2 - 1) * bound
    b = (torch.rand(out_channels, generator=gen) * 2 - 1) * bound
    return w, b


def layer_roles(params: Params) -> dict[str, str]:
    """Roles by name: `*.bias` bias, `head.*` head, everything else (linear, conv) hidden."""
    return mlp_roles(params)


class MlpClassifier:
    """An MLP from `n_inputs` features through `depth` hidden layers of `hidden` units to 10
    classes: the parameters, roles and logits every MLP classification task shares. `norm`
    and `activation` are class defaults ("none", "relu") for tasks that do not offer them."""

    n_inputs: int
    hidden: int
    depth: int
    norm: str = "none"
    activation: str = "relu"

    def check_mlp_size(self, name: str, hidden: int, depth: int, norm: str = "none", activation: str = "relu") -> None:
        require(hidden >= 1, name, "hidden", ">= 1", hidden)
        require(depth >= 0, name, "depth", ">= 0", depth)
        require(norm in MLP_NORMS, name, "norm", f"one of {list(MLP_NORMS)}", norm)
        require(activation in MLP_ACTIVATIONS, name, "activation", f"one of {list(MLP_ACTIVATIONS)}", activation)

    def init_params(self, seed: int) -> Params:
        sizes = [self.n_inputs] + [self.hidden] * self.depth + [10]
        return init_mlp(member_generator(seed, "init"), sizes, norm=self.norm)

    def roles(self) -> dict[str, str]:
        return mlp_roles(self.init_params(0))

    def logits(self, params: Params, x: Tensor) -> Tensor:
        return mlp_forward(params, x, self.depth, norm=self.norm, activation=self.activation)

    def representations(self, params: Params, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """The hidden layers' outputs after the activation, for the dead-unit and CKA probes."""
        hidden = mlp_hidden(params, batch["x"], self.depth, norm=self.norm, activation=self.activation)
        return {f"layer{k}": h for k, h in enumerate(hidden, start=1)}
