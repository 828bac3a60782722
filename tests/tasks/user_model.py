"""A user's own model and data, outside the package: what `name = "user_model:make_task"` in a
config builds (tests put this folder on sys.path)."""

from __future__ import annotations

import torch
from torch import nn

from optiscope.tasks import ModuleTask


class SmallNet(nn.Module):
    """An ordinary nn.Module: Linear -> LayerNorm -> tanh -> Linear."""

    def __init__(self, hidden: int):
        super().__init__()
        self.inp = nn.Linear(8, hidden)
        self.norm = nn.LayerNorm(hidden)
        self.out = nn.Linear(hidden, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.tanh(self.norm(self.inp(x))))


class ConvNet(nn.Module):
    """Conv1d -> GroupNorm -> ReLU -> Linear -> ReLU -> Linear, on the 8 inputs as a 1-channel signal."""

    def __init__(self, channels: int = 4, hidden: int = 10):
        super().__init__()
        self.conv = nn.Conv1d(1, channels, kernel_size=3, padding=1)
        self.norm = nn.GroupNorm(2, channels)
        self.act1 = nn.ReLU()
        self.fc = nn.Linear(channels * 8, hidden)
        self.act2 = nn.ReLU()
        self.out = nn.Linear(hidden, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act1(self.norm(self.conv(x.unsqueeze(-2))))
        return self.out(self.act2(self.fc(h.flatten(-2))))


def data() -> tuple[torch.Tensor, ...]:
    """Three Gaussian classes in 8 dimensions, 96 train / 48 test points (fixed generator)."""
    gen = torch.Generator().manual_seed(123)
    centres = 2.0 * torch.randn(3, 8, generator=gen)
    y = torch.arange(144) % 3
    x = centres[y] + torch.randn(144, 8, generator=gen)
    return x[:96], y[:96], x[96:], y[96:]


def make_task(*, hidden: int = 16, batch_size: int = 16) -> ModuleTask:
    return ModuleTask(lambda: SmallNet(hidden), *data(), batch_size=batch_size)


def make_conv_task(*, channels: int = 4, hidden: int = 10, batch_size: int = 16) -> ModuleTask:
    return ModuleTask(lambda: ConvNet(channels, hidden), *data(), batch_size=batch_size)


class DropoutNet(nn.Module):
    """Linear -> ReLU -> Dropout -> Linear -> tanh -> Dropout -> Linear."""

    def __init__(self, hidden: int = 16, p: float = 0.3):
        super().__init__()
        self.inp = nn.Linear(8, hidden)
        self.act = nn.ReLU()
        self.drop1 = nn.Dropout(p)
        self.mid = nn.Linear(hidden, hidden)
        self.drop2 = nn.Dropout(p)
        self.out = nn.Linear(hidden, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.drop2(torch.tanh(self.mid(self.drop1(self.act(self.inp(x)))))))


class BatchNormNet(nn.Module):
    def __init__(self, track_running_stats: bool = True):
        super().__init__()
        self.inp = nn.Linear(8, 12)
        self.bn = nn.BatchNorm1d(12, track_running_stats=track_running_stats)
        self.out = nn.Linear(12, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.bn(self.inp(x))))


class RandomBlock(nn.Module):
    """Calls F.dropout itself: a random op vmap refuses."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.dropout(x, 0.2, training=True)


class ItemBlock(nn.Module):
    """Branches on a tensor's value in Python: vmap cannot batch `.item()`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if x.sum().item() > 0 else -x


def make_dropout_task(*, hidden: int = 16, p: float = 0.3, batch_size: int = 16) -> ModuleTask:
    return ModuleTask(lambda: DropoutNet(hidden, p), *data(), batch_size=batch_size)


def make_bn_task(*, track_running_stats: bool = True, batch_size: int = 16) -> ModuleTask:
    return ModuleTask(lambda: BatchNormNet(track_running_stats), *data(), batch_size=batch_size)


def make_block_task(*, block: str = "random") -> ModuleTask:
    blocks = {"random": RandomBlock, "item": ItemBlock, "wrong-shape": lambda: nn.Linear(5, 3)}
    return ModuleTask(lambda: nn.Sequential(nn.Linear(8, 8), blocks[block](), nn.Linear(8, 3)), *data())


def make_named_task(*, hidden: int = 8) -> ModuleTask:
    return ModuleTask(lambda: SmallNet(hidden), *data(), batch_size=16, name="mynet")
