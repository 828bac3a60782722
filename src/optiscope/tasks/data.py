"""Minibatch order for ensembles: each member's data order a pure function of its seed.

Member i must see exactly the data order a loop run with seed i sees, whatever the ensemble
size; the permutations come from the counter-based generator in optiscope.core.rng, so no loop
over members is needed.
"""

from __future__ import annotations

import torch
from torch import Tensor

from optiscope.core.rng import seeded_permutations


class EpochSampler:
    """Minibatch indices per member: each epoch is a fresh seeded permutation of the data.

    Permutations are computed once per epoch for all members at once and cached for the
    epoch in flight, so a step costs one gather.
    """

    def __init__(self, n: int, batch_size: int):
        if batch_size > n:
            raise ValueError(f"batch_size={batch_size} exceeds the {n} training examples")
        self.n, self.batch_size = n, batch_size
        self.batches_per_epoch = n // batch_size
        self._cache: tuple[tuple[int, ...], int, Tensor] | None = None

    def indices(self, seeds: Tensor, step: int) -> Tensor:
        """(S, batch_size) indices member i uses at `step` (0-based)."""
        epoch, pos = divmod(step, self.batches_per_epoch)
        key = tuple(int(s) for s in torch.as_tensor(seeds).reshape(-1).tolist())
        if self._cache is None or self._cache[0] != key or self._cache[1] != epoch:
            self._cache = (key, epoch, seeded_permutations(seeds, epoch, self.n))
        perm = self._cache[2]
        return perm[:, pos * self.batch_size : (pos + 1) * self.batch_size]
