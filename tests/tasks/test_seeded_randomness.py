"""Counter-based randomness: member i's data order and noise depend on its seed alone."""

from __future__ import annotations

import numpy as np
import torch
from scipy import stats

from optiscope.core.rng import seeded_normal, seeded_permutations, seeded_uniform
from optiscope.tasks.data import EpochSampler


def test_rows_are_permutations_and_independent_of_the_other_members():
    a = seeded_permutations(torch.tensor([0, 7, 3]), epoch=2, n=1000)
    b = seeded_permutations(torch.tensor([3]), epoch=2, n=1000)
    assert torch.equal(a.sort(dim=1).values, torch.arange(1000).expand(3, -1))
    assert torch.equal(a[2], b[0])
    assert not torch.equal(a[0], a[1])
    assert not torch.equal(a[2], seeded_permutations(torch.tensor([3]), epoch=3, n=1000)[0])


def test_uniforms_and_normals_have_the_right_distribution():
    u = seeded_uniform(torch.tensor([5]), "t", 0, 20000)[0].numpy()
    assert stats.kstest(u, "uniform").pvalue > 0.01
    z = seeded_normal(torch.tensor([5]), "t", 0, (20000,))[0].numpy()
    assert stats.kstest(z, "norm").pvalue > 0.01
    # Different streams and counters are uncorrelated.
    z2 = seeded_normal(torch.tensor([5]), "t", 1, (20000,))[0].numpy()
    assert abs(np.corrcoef(z, z2)[0, 1]) < 0.03


def test_epoch_sampler_covers_each_epoch_once_per_member():
    sampler = EpochSampler(n=100, batch_size=10)
    seen = torch.cat([sampler.indices(torch.tensor([0, 1]), step) for step in range(10)], dim=1)
    assert torch.equal(seen.sort(dim=1).values, torch.arange(100).expand(2, -1))
    assert not torch.equal(seen[0], seen[1])
