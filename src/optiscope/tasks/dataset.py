"""Tasks on a fixed data set: seeded per-member minibatches, the whole set for evaluation.

The convex problems, the classifiers and a user's module task all train on one in-memory data set
`(x, y)` shared by every member: member i's minibatch at step t is slice t of an epoch-wise
seeded permutation (`EpochSampler`), and evaluation sees the full training split plus whatever
held-out tensors the task names. This base holds that code once: the tensors, the sampler,
`train_batch`, `eval_batch`, `batches_per_epoch` and `to(device)`.

Held-out split (`eval_split`): at "test" (the default) the held-out metrics (`test_*`) are computed
on the data set's test split. At "validation" a fixed `VALIDATION_FRACTION` of the *training*
examples is held out (chosen by a permutation from the fixed `VALIDATION_SEED`, the same for every
member, setting and run), the task trains on the rest, and the held-out metrics are named `val_*`:
the test split is never looked at, which is what a tuning protocol selects on (optiscope.tuning).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TypeVar

import numpy as np
import torch
from torch import Tensor

from optiscope.core.device import to_device
from optiscope.tasks.base import MemberBatch, MetricInfo, Task, require
from optiscope.tasks.data import EpochSampler

#: Values of a data task's `eval_split` setting.
EVAL_SPLITS = ("test", "validation")
#: Part of the training examples held out as the validation split when eval_split = "validation".
VALIDATION_FRACTION = 0.2
#: Seed of the one permutation that picks the validation examples (never a member's seed).
VALIDATION_SEED = 20_240_601

Data = TypeVar("Data", np.ndarray, Tensor)


def hold_out_validation(x: Data, y: Data) -> tuple[Data, Data, Data, Data]:
    """(x_fit, y_fit, x_val, y_val): `VALIDATION_FRACTION` of the rows held out, both parts in
    their original order. Depends only on the number of rows, so it is the same on every run."""
    n = len(x)
    n_val = int(round(VALIDATION_FRACTION * n))
    if not 1 <= n_val < n:
        raise ValueError(f"{n} training examples are too few to hold out a validation split")
    perm = np.random.default_rng(VALIDATION_SEED).permutation(n)
    val, fit = np.sort(perm[:n_val]), np.sort(perm[n_val:])
    if isinstance(x, Tensor):
        val_t, fit_t = torch.from_numpy(val), torch.from_numpy(fit)
        return x[fit_t], y[fit_t], x[val_t], y[val_t]
    return x[fit], y[fit], x[val], y[val]


def validation_metrics(metrics: tuple[MetricInfo, ...]) -> tuple[MetricInfo, ...]:
    """The declarations of a task at eval_split = "validation": `test_*` renamed `val_*`."""
    out = []
    for m in metrics:
        if m.name.startswith("test_"):
            description = m.description.replace("the held-out split", "the validation split")
            m = replace(m, name="val_" + m.name.removeprefix("test_"),
                        description=description + " (held out from the training data)")
        out.append(m)
    return tuple(out)


class DatasetTask(Task):
    """A task whose data is `x`, `y` (sampled per member) plus named evaluation tensors.

    Subclasses set `batch_size` and call `set_data(x, y, x_test=..., ...)` in `__init__`; every
    tensor passed becomes an attribute, is moved by `to()` and is shared in `eval_batch`.
    """

    batch_size: int
    x: Tensor
    y: Tensor
    #: "test" | "validation": which split the held-out metrics use (see the module docstring).
    eval_split: str = "test"

    def set_eval_split(self, eval_split: str) -> None:
        """Check and keep the `eval_split` setting; at "validation" rename the metrics `val_*`."""
        require(eval_split in EVAL_SPLITS, self.name, "eval_split", f"one of {EVAL_SPLITS}", eval_split)
        self.eval_split = eval_split
        if eval_split == "validation":
            self.metrics = validation_metrics(type(self).metrics)

    @property
    def held_out(self) -> str:
        """Prefix of the held-out metrics and tensors: "test" or "val"."""
        return "val" if self.eval_split == "validation" else "test"

    def split_for_eval(self, x: Data, y: Data, x_test: Data, y_test: Data) -> tuple[Data, Data, dict[str, Data]]:
        """(x, y, held-out tensors) for `set_data`: the test split, or a validation split held
        out of (x, y) when eval_split = "validation" (then the test split is dropped)."""
        if self.eval_split == "validation":
            x, y, x_val, y_val = hold_out_validation(x, y)
            return x, y, {"x_val": x_val, "y_val": y_val}
        return x, y, {"x_test": x_test, "y_test": y_test}

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
        idx = to_device(self.sampler.indices(seeds, step), self.x.device)
        return MemberBatch(per_member={"x": self.x[idx], "y": self.y[idx]})

    def eval_batch(self, seeds: Tensor, step: int) -> MemberBatch:
        return MemberBatch(shared={k: getattr(self, k) for k in self._data_names})

    def batches_per_epoch(self) -> int | None:
        return self.sampler.batches_per_epoch

    def to(self, device: torch.device | str) -> DatasetTask:
        for name in self._data_names:
            setattr(self, name, getattr(self, name).to(device))
        return self
