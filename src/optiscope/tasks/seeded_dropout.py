"""Dropout in a vmapped ensemble: each member's masks from its own seeded, counter-based generator.

`torch.func.vmap` refuses random operations by default; with `randomness="different"` it draws
every member's mask from the one global generator, so member i's masks would depend on the other
members and on the ensemble's size, and an ensemble member would not equal a run of its seed
alone. Here a mask is instead a pure function of (member key, call, element): the key is
`dropout_keys(seeds, step)` (the project's counter-based generator, optiscope.core.rng, keyed on
the member's seed and the step), and each element's keep bit comes from SplitMix64 of (key, the
dropout call's index in the forward pass, the element's index / 4), 16 bits per element, computed
with integer tensor ops that vmap batches like any other op. Member i's masks are therefore the
same in an ensemble of any size, alone, in loop mode and after a resume; they differ from a plain
loop's `nn.Dropout` masks for the same seed (which come from torch's global generator, in an
order the ensemble cannot reproduce). `p` is used in steps of 2^-16.

`install(module)` swaps every `nn.Dropout`, `Dropout1d`, `Dropout2d` and `Dropout3d` of a
module for a `SeededDropout` reading the key from a shared `DropoutContext`: with no key (the
evaluation and the probes' forward passes) it is the identity, as `model.eval()` would be.
The hashing is the project's own code because torch's generators cannot be keyed per member
inside vmap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from optiscope.core.rng import random_bits


def _signed(v: int) -> int:
    """A uint64 constant as the int64 with the same bits."""
    return v - (1 << 64) if v >= 1 << 63 else v


_GOLDEN = _signed(0x9E3779B97F4A7C15)
_M1 = _signed(0xBF58476D1CE4E5B9)
_M2 = _signed(0x94D049BB133111EB)

#: The dropout layers `install` replaces, with how many trailing axes share one mask entry
#: (0: element-wise; k: whole channels of a k-dimensional signal).
REPLACED: dict[type[nn.Module], int] = {nn.Dropout: 0, nn.Dropout1d: 1, nn.Dropout2d: 2, nn.Dropout3d: 3}


def _shr(z: Tensor, k: int) -> Tensor:
    """Logical right shift of int64 bits (torch's >> on int64 is arithmetic)."""
    return (z >> k) & ((1 << (64 - k)) - 1)


def splitmix64(z: Tensor) -> Tensor:
    """SplitMix64's finaliser on int64 tensors (wrapping arithmetic; the same bits as
    optiscope.core.rng.splitmix64 on uint64 arrays)."""
    z = z + _GOLDEN
    z = (z ^ _shr(z, 30)) * _M1
    z = (z ^ _shr(z, 27)) * _M2
    return z ^ _shr(z, 31)


def _splitmix64_int(x: int) -> int:
    """SplitMix64's finaliser on a Python int, returned as the int64 with those bits."""
    mask = (1 << 64) - 1
    z = (x + 0x9E3779B97F4A7C15) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return _signed(z ^ (z >> 31))


def dropout_keys(seeds: Tensor, step: int) -> Tensor:
    """(S,) int64: member i's dropout key at `step`, a function of (seeds[i], step) only."""
    bits = random_bits(seeds, "dropout", step, 1)[:, 0]
    return torch.from_numpy(bits.view(np.int64).copy())


def keep_mask(key: Tensor, call: int, shape: tuple[int, ...], p: float) -> Tensor:
    """Boolean mask of `shape`, True with probability 1 - p (p in steps of 2^-16), from (key,
    call, element index). `key` may be a vmapped scalar.

    Word j is splitmix64(splitmix64(key ^ splitmix64(call)) + j * golden); its four 16-bit lanes
    (in memory order) are elements 4j .. 4j + 3, and an element is kept when its lane, read as
    an unsigned 16-bit number, is at least round(p * 2^16). One hash per four elements keeps the
    mask's cost near that of the layer's other elementwise work.
    """
    n = 1
    for d in shape:
        n *= d
    words = (n + 3) // 4
    base = splitmix64(key ^ _splitmix64_int(call))  # a Python constant: no tensor made on the host
    index = torch.arange(words, dtype=torch.int64, device=key.device)
    lanes = splitmix64(base + index * _GOLDEN).view(torch.int16)[..., :n]
    threshold = int(round(p * float(1 << 16)))
    # lane u (unsigned) >= t  <=>  u - 2^15 >= t - 2^15, and u - 2^15 is the signed int16 whose
    # bits are u's with the top bit flipped (there is no uint16 comparison to use instead)
    return ((lanes ^ -(1 << 15)) >= threshold - (1 << 15)).reshape(shape)


@dataclass
class DropoutContext:
    """The key of the forward pass in progress (None: dropout off) and the calls made so far."""

    key: Tensor | None = None
    calls: int = 0


class SeededDropout(nn.Module):
    """`nn.Dropout` (or its channel-wise forms) with masks from `keep_mask`: reproducible per member."""

    def __init__(self, p: float, channel_dims: int, context: DropoutContext, replaced: str):
        super().__init__()
        self.p, self.channel_dims, self.context, self.replaced = p, channel_dims, context, replaced

    def forward(self, x: Tensor) -> Tensor:
        ctx = self.context
        if ctx.key is None or self.p == 0.0:
            return x
        call = ctx.calls
        ctx.calls += 1
        if self.p == 1.0:
            return x * 0.0
        k = self.channel_dims
        shape = tuple(x.shape) if k == 0 else tuple(x.shape[:-k]) + (1,) * k
        mask = keep_mask(ctx.key, call, shape, self.p)
        return x * mask.to(x.dtype) * (1.0 / (1.0 - self.p))

    def extra_repr(self) -> str:
        return f"p={self.p}, replaces {self.replaced}"


def install(module: nn.Module, context: DropoutContext) -> list[str]:
    """Replace `module`'s dropout layers (see `REPLACED`) by `SeededDropout`s sharing `context`;
    return the names replaced. Other dropout kinds (AlphaDropout, ...) are left for the vmap
    pre-flight to refuse."""
    replaced = []
    for name, m in list(module.named_modules()):
        dims = REPLACED.get(type(m))
        if dims is None:
            continue
        parent_name, _, attr = name.rpartition(".")
        parent = module.get_submodule(parent_name) if parent_name else module
        setattr(parent, attr, SeededDropout(float(m.p), dims, context, type(m).__name__))
        replaced.append(name)
    return replaced
