"""Continual learning: K tasks trained one after another within one run (Pascanu et al. 2025).

Pascanu et al. (arXiv 2507.12224) find that the optimizer changes how much a network forgets:
trained on a sequence of tasks, non-diagonal preconditioners interfere less than Adam or SGD.
Two sequences, each a single network with a shared 10-way head:

- `continual-permuted-mnist1d`: MNIST-1D under K fixed input permutations (task 0 unpermuted;
  the permutations come from `data_seed`, the same for every member): domain-incremental.
- `continual-split-digits`: scikit-learn's digits in class pairs (0,1) -> (2,3) -> ... -> (8,9),
  evaluated with the full 10-way argmax: class-incremental, as in Pascanu et al.

`eval_split = "validation"` (for tuning, optiscope.tuning) evaluates every task on its part of a
fixed validation split held out of the training examples (optiscope.tasks.dataset.hold_out_validation)
instead of the test split, which is then never looked at; the metrics are then named `val_*`
(`val_avg_acc`, `val_plasticity`, `val_acc_task0`, ...).

The task knows its schedule: step t trains on stage min(t // steps_per_stage, K - 1).
`evaluate` reports accuracy on every task's test split (`acc_task0`, ...), the average over the
tasks seen so far (`avg_acc`) and the accuracy on the newest task (`plasticity`). Forgetting
needs the history of those curves, so it is computed afterwards from the stored per-task
accuracy curves with `forgetting_curves` / `stage_accuracy_matrix` / `final_forgetting` below.

The stage is a function of the step alone: `eval_batch(seeds, step)`, called after `step` training
steps, hands `evaluate` the stage the last of them trained on, stage(max(step - 1, 0)), as a 0-d
tensor; so the evaluation at the end of stage l, step (l+1) * steps_per_stage, still reports
stage l, and every trainer (ensemble, per member, resumed from a checkpoint) sees the same.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from optiscope.core.device import to_device
from optiscope.tasks.base import Batch, MemberBatch, MetricInfo, Params, Task, require
from optiscope.tasks.data import EpochSampler
from optiscope.tasks.dataset import EVAL_SPLITS, hold_out_validation
from optiscope.tasks.layers import MlpClassifier
from optiscope.tasks.registry import register_task
from optiscope.tasks.sklearn_data import digits_images
from optiscope.tasks.vision import mnist1d_arrays


def continual_metrics(n_tasks: int, eval_split: str = "test") -> tuple[MetricInfo, ...]:
    """The metrics of a K-task sequence; at eval_split = "validation" named `val_*`, measured on
    the validation split."""
    p, split = ("val_", "validation") if eval_split == "validation" else ("", "test")
    return (
        MetricInfo(f"{p}avg_acc", "max", f"mean {split} accuracy over the tasks seen so far", "fraction"),
        MetricInfo(f"{p}plasticity", "max", f"{split} accuracy on the task being trained now", "fraction"),
        *(MetricInfo(f"{p}acc_task{k}", "max", f"{split} accuracy on task {k}", "fraction") for k in range(n_tasks)),
    )


# ---------------------------------------------------------------------------------------------
# Forgetting from stored curves (numpy)
# ---------------------------------------------------------------------------------------------


def forgetting_curves(acc: np.ndarray) -> np.ndarray:
    """Running forgetting: (n_evals, K) accuracy curves -> max_{s <= t} acc[s, k] - acc[t, k].

    The drop of each task's accuracy from its best so far (>= 0; 0 while a task improves).
    NaN entries (evaluations a member never reached) are ignored in the running best.
    """
    acc = np.asarray(acc, dtype=np.float64)
    best = np.fmax.accumulate(acc, axis=0)
    return best - acc


def stage_accuracy_matrix(
    acc: np.ndarray, eval_steps: np.ndarray, steps_per_stage: int, n_tasks: int | None = None
) -> np.ndarray:
    """a[l, k] = accuracy on task k at the end of stage l (the evaluation at step (l+1) * steps_per_stage).

    `acc` is (n_evals, K) with rows at `eval_steps`; every stage end must have been evaluated.
    """
    acc = np.asarray(acc, dtype=np.float64)
    steps = np.asarray(eval_steps)
    k_tasks = acc.shape[1] if n_tasks is None else n_tasks
    rows = []
    for stage in range(k_tasks):
        end = (stage + 1) * steps_per_stage
        hit = np.nonzero(steps == end)[0]
        if len(hit) == 0:
            raise ValueError(f"no evaluation at step {end}, the end of stage {stage}; evaluate every "
                             f"steps_per_stage steps (or a divisor of it)")
        rows.append(acc[hit[0]])
    return np.stack(rows)


def final_forgetting(matrix: np.ndarray) -> np.ndarray:
    """Forgetting of tasks 0..K-2 after the last stage (Chaudhry et al. 2018):
    f_k = max_{l < K-1} a[l, k] - a[K-1, k]."""
    m = np.asarray(matrix, dtype=np.float64)
    return m[:-1, :-1].max(axis=0) - m[-1, :-1]


def average_accuracy(matrix: np.ndarray) -> float:
    """Mean accuracy over all tasks after the last stage."""
    return float(np.asarray(matrix, dtype=np.float64)[-1].mean())


# ---------------------------------------------------------------------------------------------
# Tasks
# ---------------------------------------------------------------------------------------------


class ContinualTask(MlpClassifier, Task):
    """A sequence of classification tasks sharing one MLP and one 10-way head."""

    family = "continual"
    n_tasks: int
    steps_per_stage: int
    batch_size: int
    hidden: int
    depth: int
    n_inputs: int

    def _set_settings(
        self, n_tasks: int, steps_per_stage: int, hidden: int, depth: int, batch_size: int, data_seed: int,
        eval_split: str = "test",
    ) -> None:
        """Check (after the subclass checked `n_tasks`) and keep the settings every sequence has."""
        require(steps_per_stage >= 1, self.name, "steps_per_stage", ">= 1", steps_per_stage)
        require(eval_split in EVAL_SPLITS, self.name, "eval_split", f"one of {EVAL_SPLITS}", eval_split)
        self.eval_split = eval_split
        self.prefix = "val_" if eval_split == "validation" else ""
        self.check_mlp_size(self.name, hidden, depth)
        self.n_tasks, self.steps_per_stage, self.hidden, self.depth = n_tasks, steps_per_stage, hidden, depth
        self.batch_size, self.data_seed = batch_size, data_seed

    def _set_stages(self, train: list[tuple[Tensor, Tensor]], test_x: Tensor, test_y: Tensor, test_mask: Tensor) -> None:
        """train[k] = (x, y) of stage k; test_* are (K, N, ...) stacked per task, mask (K, N)."""
        self.train_sets = train
        self.test_x, self.test_y, self.test_mask = test_x, test_y, test_mask
        for x, _ in train:
            require(self.batch_size <= len(x), self.name, "batch_size", f"<= {len(x)} (smallest stage)", self.batch_size)
        self.samplers = [EpochSampler(len(x), self.batch_size) for x, _ in train]
        self.metrics = continual_metrics(self.n_tasks, self.eval_split)

    def stage(self, step: int) -> int:
        return min(step // self.steps_per_stage, self.n_tasks - 1)

    def batches_per_epoch(self) -> int | None:
        """Batches per pass over one stage's data (stages differ in size: the first stage's)."""
        return self.samplers[0].batches_per_epoch

    def loss(self, params: Params, batch: Batch) -> Tensor:
        return F.cross_entropy(self.logits(params, batch["x"]), batch["y"])

    def train_batch(self, seeds: Tensor, step: int) -> MemberBatch:
        k = self.stage(step)
        x, y = self.train_sets[k]
        idx = to_device(self.samplers[k].indices(seeds, step), x.device)
        return MemberBatch(per_member={"x": x[idx], "y": y[idx]})

    def eval_batch(self, seeds: Tensor, step: int) -> MemberBatch:
        last_trained = self.stage(max(step - 1, 0))
        stage = torch.tensor(last_trained, dtype=torch.int64, device=self.test_x.device)
        return MemberBatch(
            shared={"test_x": self.test_x, "test_y": self.test_y, "test_mask": self.test_mask,
                    "stage": stage}
        )

    def evaluate(self, params: Params, batch: Batch) -> dict[str, Tensor]:
        correct = (self.logits(params, batch["test_x"]).argmax(-1) == batch["test_y"]).float()
        mask = batch["test_mask"].float()
        acc = (correct * mask).sum(-1) / mask.sum(-1)  # (K,)
        stage = batch["stage"]
        index = torch.arange(self.n_tasks, device=acc.device)
        seen = (index <= stage).float()
        p = self.prefix
        out = {
            f"{p}avg_acc": (acc * seen).sum() / seen.sum(),
            f"{p}plasticity": (acc * (index == stage).float()).sum(),
        }
        return out | {f"{p}acc_task{k}": acc[k] for k in range(self.n_tasks)}

    def to(self, device: torch.device | str) -> ContinualTask:
        self.train_sets = [(x.to(device), y.to(device)) for x, y in self.train_sets]
        self.test_x, self.test_y, self.test_mask = (t.to(device) for t in (self.test_x, self.test_y, self.test_mask))
        return self


def input_permutations(n_tasks: int, n_inputs: int, data_seed: int) -> np.ndarray:
    """(K, n_inputs) permutations: identity for task 0, then seeded random ones."""
    rng = np.random.default_rng([data_seed, 7])
    perms = [np.arange(n_inputs)] + [rng.permutation(n_inputs) for _ in range(n_tasks - 1)]
    return np.stack(perms)


@register_task
class ContinualPermutedMnist1d(ContinualTask):
    """MNIST-1D under K input permutations, trained in sequence (domain-incremental)."""

    name = "continual-permuted-mnist1d"
    description = "K permuted MNIST-1D tasks in sequence, one MLP; per-task accuracy, plasticity"
    n_inputs = 40
    metrics = continual_metrics(5)

    def __init__(
        self,
        *,
        n_tasks: int = 5,
        steps_per_stage: int = 200,
        hidden: int = 256,
        depth: int = 2,
        batch_size: int = 100,
        data_seed: int = 0,
        eval_split: str = "test",
    ):
        require(n_tasks >= 1, self.name, "n_tasks", ">= 1", n_tasks)
        self._set_settings(n_tasks, steps_per_stage, hidden, depth, batch_size, data_seed, eval_split)
        d = mnist1d_arrays()
        self.permutations = torch.from_numpy(input_permutations(n_tasks, self.n_inputs, data_seed))
        x, y = torch.from_numpy(d["x"]), torch.from_numpy(d["y"])
        xt, yt = torch.from_numpy(d["x_test"]), torch.from_numpy(d["y_test"])
        if eval_split == "validation":
            x, y, xt, yt = hold_out_validation(x, y)
        train = [(x[:, p], y) for p in self.permutations]
        test_x = torch.stack([xt[:, p] for p in self.permutations])
        self._set_stages(train, test_x, yt.expand(n_tasks, -1).clone(), torch.ones(n_tasks, len(yt), dtype=torch.bool))


@register_task
class ContinualSplitDigits(ContinualTask):
    """scikit-learn digits in class pairs (0,1) -> (2,3) -> ... (class-incremental, shared head)."""

    name = "continual-split-digits"
    description = "digits class pairs (0,1)->(2,3)->...->(8,9) in sequence, shared 10-way head"
    n_inputs = 64
    metrics = continual_metrics(5)

    def __init__(
        self,
        *,
        n_tasks: int = 5,
        steps_per_stage: int = 100,
        hidden: int = 128,
        depth: int = 2,
        batch_size: int = 32,
        data_seed: int = 0,
        eval_split: str = "test",
    ):
        require(1 <= n_tasks <= 5, self.name, "n_tasks", "in [1, 5] (five class pairs)", n_tasks)
        self._set_settings(n_tasks, steps_per_stage, hidden, depth, batch_size, data_seed, eval_split)
        d = digits_images(data_seed)
        x, y = torch.from_numpy(d["x"]).float(), torch.from_numpy(d["y"])
        xt, yt = torch.from_numpy(d["x_test"]).float(), torch.from_numpy(d["y_test"])
        if eval_split == "validation":
            x, y, xt, yt = hold_out_validation(x, y)
        train = [(x[(y // 2) == k], y[(y // 2) == k]) for k in range(n_tasks)]
        mask = torch.stack([(yt // 2) == k for k in range(n_tasks)])
        self._set_stages(train, xt.expand(n_tasks, -1, -1).clone(), yt.expand(n_tasks, -1).clone(), mask)
