"""Vision tasks: classifiers on small image-like data sets generated or shipped offline."""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from optiscope.tasks.base import Batch, MemberBatch, MetricInfo, Params, Task
from optiscope.tasks.data import EpochSampler, member_generator
from optiscope.tasks.layers import classification_metrics, init_mlp, mlp_forward, mlp_roles
from optiscope.tasks.registry import register_task

CLASSIFICATION_METRICS = (
    MetricInfo("test_acc", "max", "accuracy on the held-out split"),
    MetricInfo("test_loss", "min", "cross-entropy on the held-out split"),
    MetricInfo("train_loss", "min", "cross-entropy on the whole training split"),
    MetricInfo("train_acc", "max", "accuracy on the whole training split"),
)


def cache_dir() -> Path:
    """Where generated data sets are kept between runs (OPTISCOPE_CACHE overrides)."""
    root = os.environ.get("OPTISCOPE_CACHE") or Path.home() / ".cache" / "optiscope"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


@lru_cache(maxsize=4)
def mnist1d_arrays(num_samples: int = 5000, data_seed: int = 42) -> dict[str, np.ndarray]:
    """The MNIST-1D data set, generated offline by `mnist1d.data.make_dataset` and cached.

    Generation takes seconds; the cache file is keyed by the generator's arguments.
    """
    key = hashlib.sha256(f"mnist1d-{num_samples}-{data_seed}".encode()).hexdigest()[:12]
    path = cache_dir() / f"mnist1d-{key}.npz"
    if path.exists():
        with np.load(path) as f:
            return {k: f[k] for k in f.files}
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples, args.seed = num_samples, data_seed
    d = make_dataset(args)
    arrays = {
        "x": np.asarray(d["x"], np.float32),
        "y": np.asarray(d["y"], np.int64),
        "x_test": np.asarray(d["x_test"], np.float32),
        "y_test": np.asarray(d["y_test"], np.int64),
    }
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
    return arrays


class ClassificationTask(Task):
    """Shared machinery: a training set sampled per member, full-set evaluation, CE loss."""

    family = "vision"
    metrics = CLASSIFICATION_METRICS
    batch_size: int

    def _set_data(self, x: Tensor, y: Tensor, x_test: Tensor, y_test: Tensor) -> None:
        self.x, self.y, self.x_test, self.y_test = x, y, x_test, y_test
        self.sampler = EpochSampler(len(x), self.batch_size)

    def logits(self, params: Params, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def loss(self, params: Params, batch: Batch) -> Tensor:
        return F.cross_entropy(self.logits(params, batch["x"]), batch["y"])

    def train_batch(self, seeds: Tensor, step: int) -> MemberBatch:
        idx = self.sampler.indices(seeds, step).to(self.x.device)
        return MemberBatch(per_member={"x": self.x[idx], "y": self.y[idx]})

    def eval_batch(self, seeds: Tensor) -> MemberBatch:
        return MemberBatch(
            shared={"x": self.x, "y": self.y, "x_test": self.x_test, "y_test": self.y_test}
        )

    def evaluate(self, params: Params, batch: Batch) -> dict[str, Tensor]:
        return {
            **classification_metrics(self.logits(params, batch["x_test"]), batch["y_test"], "test"),
            **classification_metrics(self.logits(params, batch["x"]), batch["y"], "train"),
        }

    def to(self, device: torch.device | str) -> ClassificationTask:
        self._set_data(*(t.to(device) for t in (self.x, self.y, self.x_test, self.y_test)))
        return self


@register_task
class Mnist1dMLP(ClassificationTask):
    """ReLU MLP on MNIST-1D (Greydanus 2020): 40 inputs, 10 classes, 4000 train / 1000 test."""

    name = "mnist1d-mlp"
    description = "ReLU MLP on MNIST-1D (generated offline by mnist1d), 4000 train / 1000 test"

    def __init__(self, *, hidden: int = 256, depth: int = 2, batch_size: int = 100):
        if hidden < 1 or depth < 0 or batch_size < 1:
            raise ValueError("hidden and batch_size must be >= 1, depth >= 0")
        self.hidden, self.depth, self.batch_size = hidden, depth, batch_size
        d = mnist1d_arrays()
        self._set_data(*(torch.from_numpy(d[k]) for k in ("x", "y", "x_test", "y_test")))

    def init_params(self, seed: int) -> Params:
        sizes = [40] + [self.hidden] * self.depth + [10]
        return init_mlp(member_generator(seed, "init"), sizes)

    def roles(self) -> dict[str, str]:
        return mlp_roles(self.init_params(0))

    def logits(self, params: Params, x: Tensor) -> Tensor:
        return mlp_forward(params, x, self.depth)
