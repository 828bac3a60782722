"""Seeded, vectorised randomness for ensembles: data order and noise as pure functions of seeds.

Member i must see exactly the data order (and noise) a loop run with seed i sees, whatever the
ensemble size, and generating it must not loop over members. `torch.Generator` streams cannot be
vectorised across seeds, so this module uses a counter-based generator instead: every random
number is a hash (SplitMix64) of (seed, stream, counter). That is the project's own code because
no library offers counter-based randomness keyed per row on both CPU and GPU.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch
from torch import Tensor

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser on uint64 arrays (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = x.astype(np.uint64) + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        return z ^ (z >> np.uint64(31))


def stream_id(name: str) -> int:
    """A stable 63-bit id for a named random stream ("data-order", "gradient-noise", ...)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little") >> 1


def _row_keys(seeds: Tensor | np.ndarray, stream: str, counter: int) -> np.ndarray:
    s = np.asarray(torch.as_tensor(seeds).cpu().numpy(), dtype=np.int64).astype(np.uint64)
    with np.errstate(over="ignore"):
        base = splitmix64(s ^ splitmix64(np.uint64(stream_id(stream)) + np.uint64(counter)))
    return base


def random_bits(seeds: Tensor | np.ndarray, stream: str, counter: int, n: int) -> np.ndarray:
    """uint64 array (S, n): row i depends only on (seeds[i], stream, counter)."""
    base = _row_keys(seeds, stream, counter)
    with np.errstate(over="ignore"):
        return splitmix64(base[:, None] + np.arange(n, dtype=np.uint64)[None, :] * _GOLDEN)


def seeded_permutations(seeds: Tensor | np.ndarray, epoch: int, n: int) -> Tensor:
    """(S, n) int64: row i is a permutation of range(n) keyed by (seeds[i], epoch)."""
    keys = random_bits(seeds, "data-order", epoch, n)
    return torch.from_numpy(np.argsort(keys, axis=1, kind="stable").astype(np.int64))


def seeded_uniform(seeds: Tensor | np.ndarray, stream: str, counter: int, n: int) -> Tensor:
    """(S, n) float64 uniforms in (0, 1), from the top 53 bits of the hash."""
    bits = random_bits(seeds, stream, counter, n) >> np.uint64(11)
    return torch.from_numpy((bits.astype(np.float64) + 0.5) / float(1 << 53))


def seeded_normal(
    seeds: Tensor | np.ndarray, stream: str, counter: int, shape: tuple[int, ...]
) -> Tensor:
    """(S, *shape) float32 standard normals (Box-Muller) keyed by (seed, stream, counter)."""
    n = int(np.prod(shape)) if shape else 1
    m = (n + 1) // 2
    u = seeded_uniform(seeds, stream, counter, 2 * m)
    u1, u2 = u[:, :m], u[:, m:]
    r = torch.sqrt(-2.0 * torch.log(u1))
    z = torch.cat([r * torch.cos(2 * torch.pi * u2), r * torch.sin(2 * torch.pi * u2)], dim=1)
    return z[:, :n].reshape(-1, *shape).float()


def seeded_normal_like(
    like: Tensor, seeds: Tensor | np.ndarray, stream: str, counter: int, ensemble_dims: int
) -> Tensor:
    """Standard normals shaped like `like` (dtype and device too), member i's keyed on seeds[i].

    With ``ensemble_dims=1`` row i is ``seeded_normal(seeds[i], ...)``; with 0, `seeds` holds the
    one member's seed. Either way member i draws the same numbers in an ensemble as alone.
    """
    z = seeded_normal(seeds, stream, counter, tuple(like.shape[ensemble_dims:]))
    if ensemble_dims == 0:
        z = z[0]
    return z.to(device=like.device, dtype=like.dtype)


def member_generator(seed: int, purpose: str) -> torch.Generator:
    """A CPU torch.Generator for one member and one purpose (initialisation, instance, ...)."""
    g = torch.Generator()
    g.manual_seed((seed * 1_000_003 + stream_id(purpose)) % (2**63 - 1))
    return g
