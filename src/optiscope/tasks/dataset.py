"""Tasks on a fixed data set: seeded per-member minibatches, the whole set for evaluation.

The convex problems, the classifiers and a user's module task all train on one in-memory data set
`(x, y)` shared by every member: member i's minibatch at step t is slice t of an epoch-wise
seeded permutation (`EpochSampler`), and evaluation sees the full training split plus whatever
held-out tensors the task names. This base holds that code once: the tensors, the sampler,
`train_batch`, `eval_batch`, `batches_per_epoch` and `to(device)`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from optiscope.tasks.base import MemberBatch, Task, require
from optiscope.tasks.data import EpochSampler


class DatasetTask(Task):
    """A task whose data is `x`, `y` (sampled per member) plus named evaluation tensors.

    Subclasses set `batch_size` and call `set_data(x, y, x_test=..., ...)` in `__init__`; every
    tensor passed becomes an attribute, is moved by `to()` and is shared in `eval_batch`.
    """

    batch_size: int
    x: Tensor
    y: Tensor

    def set_data(self, x: Tensor, y: Tensor, **eval_tensors: Tensor | None) -> None:
        """Hold the training split `(x, y)` and the evaluation tensors (None ones are skipped)."""
        require(
            self.batch_size <= len(x), self.name, "batch_size",
            f"<= the {len(x)} training examples", self.batch_size,
        )
        require(self.batch_size >= 1, self.name, "batch_size", ">= 1", self.batch_size)
        self._data_names = ["x", "y", *(k for k, v in eval_tensors.items() if v is not None)]
        for name, tensor in {"x": x, "y": y, **eval_tensors}.items():
            setattr(self, name, tensor)
        self.sampler = EpochSampler(len(x), self.batch_size)

    def train_batch(self, seeds: Tensor, step: int) -> MemberBatch:
        idx = self.sampler.indices(seeds, step).to(self.x.device)
        return MemberBatch(per_member={"x": self.x[idx], "y": self.y[idx]})

    def eval_batch(self, seeds: Tensor, step: int) -> MemberBatch:
        return MemberBatch(shared={k: getattr(self, k) for k in self._data_names})

    def batches_per_epoch(self) -> int | None:
        return self.sampler.batches_per_epoch

    def to(self, device: torch.device | str) -> DatasetTask:
        for name in self._data_names:
            setattr(self, name, getattr(self, name).to(device))
        return self
