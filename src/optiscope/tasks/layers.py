"""Functional building blocks for tasks: parameters as dicts, forward passes as pure functions.

Written as plain functions of a params dict (not nn.Modules) so that one definition serves the
vmapped ensemble, the loop trainer and the probes alike.
"""

from __future__ import annotations

import math

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


def init_mlp(gen: torch.Generator, sizes: list[int], prefix: str = "layer") -> Params:
    """Weights `{prefix}{k}.weight/bias` for hidden layers and `head.weight/bias` for the last."""
    params: Params = {}
    n = len(sizes) - 1
    for k in range(n):
        name = "head" if k == n - 1 else f"{prefix}{k + 1}"
        w, b = init_linear(gen, sizes[k], sizes[k + 1])
        params[f"{name}.weight"] = w
        params[f"{name}.bias"] = b  # type: ignore[assignment]
    return params


def mlp_roles(params: Params) -> dict[str, str]:
    """Roles for an `init_mlp` dict: biases `bias`, the last layer `head`, the rest `hidden`."""
    return {
        k: "bias" if k.endswith(".bias") else "head" if k.startswith("head.") else "hidden"
        for k in params
    }


def mlp_forward(params: Params, x: Tensor, depth: int, prefix: str = "layer") -> Tensor:
    """ReLU MLP: `depth` hidden layers then the head; returns logits."""
    h = x
    for k in range(depth):
        h = F.relu(F.linear(h, params[f"{prefix}{k + 1}.weight"], params[f"{prefix}{k + 1}.bias"]))
    return F.linear(h, params["head.weight"], params["head.bias"])


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
    """A ReLU MLP from `n_inputs` features through `depth` hidden layers of `hidden` units to 10
    classes: the parameters, roles and logits every MLP classification task shares."""

    n_inputs: int
    hidden: int
    depth: int

    def check_mlp_size(self, name: str, hidden: int, depth: int) -> None:
        require(hidden >= 1, name, "hidden", ">= 1", hidden)
        require(depth >= 0, name, "depth", ">= 0", depth)

    def init_params(self, seed: int) -> Params:
        return init_mlp(member_generator(seed, "init"), [self.n_inputs] + [self.hidden] * self.depth + [10])

    def roles(self) -> dict[str, str]:
        return mlp_roles(self.init_params(0))

    def logits(self, params: Params, x: Tensor) -> Tensor:
        return mlp_forward(params, x, self.depth)
