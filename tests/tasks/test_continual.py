"""Continual learning: the stage schedule switches data by step, evaluate's avg_acc / plasticity
agree with the per-task accuracies and the current stage (also in loop mode), and the forgetting
helpers give the values worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from optiscope.engine.ensemble import EnsembleTrainer
from optiscope.engine.loop import LoopTrainer
from optiscope.optim import SGD
from optiscope.tasks import make_task
from optiscope.tasks.continual import (
    average_accuracy,
    final_forgetting,
    forgetting_curves,
    stage_accuracy_matrix,
)

SPLIT = {"n_tasks": 3, "steps_per_stage": 2, "hidden": 16, "batch_size": 8}

# Three tasks, evaluated at steps 0, 10, 20, 30 with 10 steps per stage.
CURVES = np.array(
    [
        [0.10, 0.10, 0.10],
        [0.90, 0.20, 0.10],  # end of stage 0
        [0.60, 0.95, 0.30],  # end of stage 1
        [0.40, 0.70, 0.92],  # end of stage 2
    ]
)


def test_forgetting_curves_are_running_best_minus_current():
    expected = np.array([[0, 0, 0], [0, 0, 0], [0.30, 0, 0], [0.50, 0.25, 0]])
    assert np.allclose(forgetting_curves(CURVES), expected)
    with_gap = CURVES.copy()
    with_gap[1, 0] = np.nan
    assert np.allclose(forgetting_curves(with_gap)[2:, 0], [0.0, 0.2])  # best 0.6 once 0.9 is missing


def test_stage_matrix_final_forgetting_and_average_accuracy():
    m = stage_accuracy_matrix(CURVES, np.array([0, 10, 20, 30]), steps_per_stage=10)
    assert np.allclose(m, CURVES[1:])
    assert np.allclose(final_forgetting(m), [0.90 - 0.40, 0.95 - 0.70])
    assert average_accuracy(m) == pytest.approx((0.40 + 0.70 + 0.92) / 3)
    with pytest.raises(ValueError, match="no evaluation at step 20"):
        stage_accuracy_matrix(CURVES, np.array([0, 10, 15, 30]), steps_per_stage=10)


def test_split_digits_trains_class_pairs_in_order():
    task = make_task("continual-split-digits", **SPLIT)
    assert [task.stage(s) for s in range(8)] == [0, 0, 1, 1, 2, 2, 2, 2]  # stays on the last task
    for step, pair in [(0, {0, 1}), (3, {2, 3}), (5, {4, 5}), (9, {4, 5})]:
        y = task.train_batch(torch.tensor([0, 1]), step).per_member["y"]
        assert set(y.unique().tolist()) <= pair


def test_permuted_mnist1d_stage_k_sees_the_kth_permutation():
    task = make_task("continual-permuted-mnist1d", n_tasks=3, steps_per_stage=4, hidden=8, batch_size=8)
    assert torch.equal(task.permutations[0], torch.arange(40))
    assert sorted(task.permutations[2].tolist()) == list(range(40))
    batch = task.train_batch(torch.tensor([5]), 9).per_member["x"][0]  # stage 2
    idx = task.samplers[2].indices(torch.tensor([5]), 9)[0]
    assert torch.equal(batch, task.train_sets[0][0][idx][:, task.permutations[2]])
    assert torch.equal(task.test_x[1], task.test_x[0][:, task.permutations[1]])


def _check_summary(metrics: dict, stage: int, n_tasks: int, member: int) -> None:
    acc = [float(metrics[f"acc_task{k}"][member]) for k in range(n_tasks)]
    assert float(metrics["avg_acc"][member]) == pytest.approx(np.mean(acc[: stage + 1]), abs=1e-6)
    assert float(metrics["plasticity"][member]) == pytest.approx(acc[stage], abs=1e-6)


def test_evaluate_tracks_the_stage_in_ensemble_and_loop_mode():
    task = make_task("continual-split-digits", **SPLIT)
    trainer = EnsembleTrainer(task, SGD, {"lr": 0.1}, [0, 1])
    _check_summary(trainer.evaluate(), 0, 3, 0)
    for _ in range(3):  # steps 0, 1 (stage 0) and 2 (stage 1)
        trainer.train_step()
    ens = trainer.evaluate()
    _check_summary(ens, 1, 3, 1)
    # the loop trainer builds its evaluation batch once per member and must still see stage 1
    loop = LoopTrainer(make_task("continual-split-digits", **SPLIT), torch.optim.SGD, {"lr": 0.1}, [0, 1])
    cols = loop.run(3, eval_every=3, log_every=1).metrics.columns([None, None])
    for name in ("avg_acc", "plasticity", "acc_task0", "acc_task1", "acc_task2"):
        for step, want in ((0, None), (3, ens[name])):
            sel = (cols["name"] == name) & (cols["step"] == step)
            got = cols["value"][sel][np.argsort(cols["member"][sel])]
            assert len(got) == 2
            if want is not None:
                # Accuracies after 3 steps flip only if a test example's top-2 logit gap is
                # crossed: the smallest gap is 4.3e-3 while the two modes' parameters and logits
                # measured bitwise equal (ATEN_CPU_CAPABILITY default / avx2 / avx512 x 1 and 2
                # threads); the logits are at most 0.38, so float32 rounding moves them by ~1e-7,
                # a margin of over 10000x.
                assert np.allclose(got, want.numpy(), atol=1e-5), name
    at0 = {n: cols["value"][(cols["name"] == n) & (cols["step"] == 0)] for n in ("avg_acc", "acc_task0", "plasticity")}
    assert np.allclose(at0["avg_acc"], at0["acc_task0"]) and np.allclose(at0["plasticity"], at0["acc_task0"])


def test_eval_batch_stage_is_the_stage_of_the_last_trained_step_whatever_was_called_before():
    task = make_task("continual-split-digits", **SPLIT)  # 2 steps per stage, 3 stages
    seeds = torch.tensor([0, 1])
    task.train_batch(seeds, 5)  # no hidden state: a later batch does not change an earlier stage
    stages = [int(task.eval_batch(seeds, step).shared["stage"]) for step in range(8)]
    assert stages == [0, 0, 0, 1, 1, 2, 2, 2]  # step 2 = end of stage 0 still reports stage 0


def test_split_digits_validation_split_is_held_out_of_training_and_named_val():
    """eval_split = "validation": each task is evaluated on its class pair's part of a fixed 20%
    of the training images (never on the test split), metrics named val_*; the default unchanged."""
    from optiscope.tasks.dataset import VALIDATION_FRACTION

    test, val = make_task("continual-split-digits"), make_task("continual-split-digits", eval_split="validation")
    assert [m.name for m in val.metrics] == ["val_" + m.name for m in test.metrics]
    n_train = sum(len(y) for _, y in test.train_sets)
    n_fit = sum(len(y) for _, y in val.train_sets)
    n_val = int(val.test_mask[0].numel())
    assert n_val == round(VALIDATION_FRACTION * n_train) and n_fit + n_val == n_train
    rows = lambda x: {r.numpy().tobytes() for r in x.reshape(len(x), -1)}  # noqa: E731
    fit = set().union(*(rows(x) for x, _ in val.train_sets))
    train = set().union(*(rows(x) for x, _ in test.train_sets))
    held = rows(val.test_x[0])
    assert held <= train and not held & fit and not held & rows(test.test_x[0])
    for k in range(5):  # task k's validation examples are exactly its class pair's
        assert set(val.test_y[k][val.test_mask[k]].tolist()) == {2 * k, 2 * k + 1}
    params = val.init_params(1)
    out = val.evaluate(params, val.eval_batch(torch.tensor([0]), 250).member(0))
    assert sorted(out) == sorted(m.name for m in val.metrics)
    logits = val.logits(params, val.test_x[2])
    expect = (logits.argmax(-1) == val.test_y[2])[val.test_mask[2]].float().mean()
    torch.testing.assert_close(out["val_acc_task2"], expect)
    torch.testing.assert_close(out["val_plasticity"], expect)  # step 250 reports stage 2
