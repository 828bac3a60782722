"""The counter-based generator: a published SplitMix64 value, and every row keyed by its own seed.

The distribution tests are in tests/tasks/test_seeded_randomness.py (through the old import path,
which re-exports these functions).
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from optiscope.core import rng


def test_splitmix64_matches_the_reference_sequence():
    # The first outputs of Vigna's splitmix64.c seeded with 0 and 1 (state += golden; mix).
    assert int(rng.splitmix64(np.array([0], dtype=np.uint64))[0]) == 0xE220A8397B1DCDAF
    golden = 0x9E3779B97F4A7C15
    assert int(rng.splitmix64(np.array([golden], dtype=np.uint64))[0]) == 0x6E789E6AA1B965F4


def test_stream_ids_are_stable():
    expected = int.from_bytes(hashlib.sha256(b"data-order").digest()[:8], "little") >> 1
    assert rng.stream_id("data-order") == expected < 2**63


def test_each_row_depends_on_its_own_seed_only():
    seeds = torch.tensor([4, 9, 2])
    z = rng.seeded_normal(seeds, "noise", 3, (2, 5))
    u = rng.seeded_uniform(seeds, "noise", 3, 7)
    assert z.shape == (3, 2, 5) and z.dtype == torch.float32 and u.dtype == torch.float64
    for i, s in enumerate(seeds.tolist()):
        assert torch.equal(z[i], rng.seeded_normal(torch.tensor([s]), "noise", 3, (2, 5))[0])
        assert torch.equal(u[i], rng.seeded_uniform(torch.tensor([s]), "noise", 3, 7)[0])
    assert not torch.equal(z, rng.seeded_normal(seeds, "noise", 4, (2, 5)))
    assert not torch.equal(z, rng.seeded_normal(seeds, "other", 3, (2, 5)))


def test_normal_like_keys_member_i_on_seed_i():
    seeds = torch.tensor([7, 1])
    like = torch.zeros(2, 3, 4, dtype=torch.float64)
    z = rng.seeded_normal_like(like, seeds, "s", 5, ensemble_dims=1)
    assert z.shape == like.shape and z.dtype == torch.float64
    assert torch.equal(z, rng.seeded_normal(seeds, "s", 5, (3, 4)).double())
    alone = rng.seeded_normal_like(like[1], seeds[1:], "s", 5, ensemble_dims=0)
    assert torch.equal(alone, z[1])


def test_member_generators_are_reproducible_and_distinct_per_purpose():
    a = torch.randn(4, generator=rng.member_generator(3, "init"))
    assert torch.equal(a, torch.randn(4, generator=rng.member_generator(3, "init")))
    assert not torch.equal(a, torch.randn(4, generator=rng.member_generator(3, "instance")))
    assert not torch.equal(a, torch.randn(4, generator=rng.member_generator(4, "init")))
