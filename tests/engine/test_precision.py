"""Training precision: fp32 untouched, bf16 close to fp32, flags restored, stored with each run."""

from __future__ import annotations

import pytest
import torch

from optiscope.config import parse_config
from optiscope.engine.ensemble import EnsembleTrainer
from optiscope.engine.loop import LoopTrainer
from optiscope.engine.precision import autocast, check_precision, matmul_precision
from optiscope.engine.runner import run_experiment
from optiscope.errors import OptiscopeError
from optiscope.optim import SGD, Adam
from optiscope.store import RunStore
from optiscope.tasks import make_task

SEEDS = [0, 1, 2]


def _trainer(precision: str | None, steps: int = 0, **kw) -> EnsembleTrainer:
    task = make_task("mnist1d-mlp", hidden=32)
    extra = {} if precision is None else {"precision": precision}
    trainer = EnsembleTrainer(task, Adam, {"lr": 1e-3}, SEEDS, **extra, **kw)
    for _ in range(steps):
        trainer.train_step()
    return trainer


def test_fp32_and_cpu_tf32_are_bitwise_the_default_path():
    default = _trainer(None, steps=4).params
    for precision in ("fp32", "tf32"):  # tf32 is a no-op on a CPU (no TF32 units)
        other = _trainer(precision, steps=4).params
        assert all(torch.equal(default[k], other[k]) for k in default), precision


def test_bf16_gradients_differ_from_fp32_within_a_bf16_bound():
    """Teacher-forced: both precisions take their gradient at the same parameters."""
    fp32, bf16 = _trainer("fp32"), _trainer("bf16")
    batch = fp32.task.train_batch(fp32.seed_tensor, 0)
    loss32, loss16 = fp32.strategy.grads(batch), bf16.strategy.grads(batch)
    assert loss16.dtype == torch.float32 and not torch.equal(loss32, loss16)
    # bf16 keeps 8 mantissa bits (relative rounding 2**-8 ~ 0.4%); the loss stays within 2%,
    # and each member's gradient within 15% of its norm (measured: at most 5.3%).
    torch.testing.assert_close(loss16, loss32, rtol=2e-2, atol=0)
    for k, p in fp32.params.items():
        g32, g16 = p.grad, bf16.params[k].grad
        assert g16.dtype == torch.float32
        rel = ((g16 - g32).norm(dim=tuple(range(1, g32.dim()))) /
               g32.norm(dim=tuple(range(1, g32.dim()))))
        assert (rel < 0.15).all(), (k, rel)  # measured at most 5.3% (biases)
        assert (rel > 0).any(), k  # it did run in bf16


def test_bf16_training_stays_close_to_fp32_over_a_short_horizon():
    """5 SGD steps: the bf16 run's displacement from the start differs from fp32's by a few
    percent (measured at most 7% per member and tensor; bound 15%), and it does differ."""
    task = make_task("mnist1d-mlp", hidden=32)
    runs = {p: EnsembleTrainer(task, SGD, {"lr": 0.1}, SEEDS, precision=p) for p in ("fp32", "bf16")}
    for _ in range(5):
        for trainer in runs.values():
            trainer.train_step()
    a, b, init = runs["fp32"].params, runs["bf16"].params, runs["fp32"].init_params
    for k in a:
        moved = (a[k] - init[k]).flatten(1).norm(dim=1)
        apart = (a[k] - b[k]).flatten(1).norm(dim=1)
        assert (apart < 0.15 * moved).all(), (k, apart / moved)
        assert (apart > 0).all(), k


def test_the_loop_trainer_autocasts_the_same_way():
    task = make_task("mnist1d-mlp", hidden=32)
    batch = task.train_batch(torch.tensor(SEEDS), 0)
    loop32 = LoopTrainer(task, torch.optim.SGD, {"lr": 0.1}, SEEDS)
    loop16 = LoopTrainer(task, torch.optim.SGD, {"lr": 0.1}, SEEDS, precision="bf16")
    l32, l16 = loop32.train_step(), loop16.train_step()
    torch.testing.assert_close(l16, l32, rtol=2e-2, atol=0)
    assert not torch.equal(l16, l32)
    ens16 = _trainer("bf16").strategy.losses(batch)
    torch.testing.assert_close(ens16, l16, rtol=1e-2, atol=0)


def test_tf32_sets_and_restores_the_cuda_flags():
    """The flags are process-wide settings, so this runs without a GPU."""
    before = (torch.backends.cuda.matmul.allow_tf32, torch.get_float32_matmul_precision())
    with matmul_precision("tf32", "cuda"):
        assert torch.backends.cuda.matmul.allow_tf32
        assert torch.get_float32_matmul_precision() == "high"
    assert (torch.backends.cuda.matmul.allow_tf32, torch.get_float32_matmul_precision()) == before
    with matmul_precision("tf32", "cpu"):  # no-op on a CPU
        assert torch.get_float32_matmul_precision() == before[1]


def test_flags_are_restored_when_the_step_raises():
    before = torch.get_float32_matmul_precision()
    with pytest.raises(RuntimeError), matmul_precision("tf32", "cuda"):
        raise RuntimeError("boom")
    assert torch.get_float32_matmul_precision() == before


def test_autocast_only_for_bf16():
    with autocast("bf16", "cpu"):
        assert torch.is_autocast_enabled("cpu")
    with autocast("fp32", "cpu"):
        assert not torch.is_autocast_enabled("cpu")
    assert not torch.is_autocast_enabled("cpu")


def test_unknown_precision_is_an_error_naming_the_values():
    with pytest.raises(OptiscopeError, match="fp32, tf32, bf16"):
        check_precision("fp16")
    with pytest.raises(OptiscopeError, match="precision"):
        parse_config({"experiment": {"name": "x", "precision": "fp16"},
                      "tasks": [{"name": "mnist1d-mlp"}], "optimizers": [{"name": "sgd"}]})


def _config(**experiment):
    return parse_config({
        "experiment": {"name": "p", "seeds": 2, "steps": 4, "eval_every": 2, **experiment},
        "tasks": [{"name": "mnist1d-mlp", "hidden": 16}],
        "optimizers": [{"name": "adam", "lr": 1e-3}],
    })


def test_precision_reaches_the_cells_and_round_trips_to_the_store(tmp_path):
    fp32, bf16 = _config(), _config(precision="bf16")
    (c32,), (c16,) = fp32.cells(), bf16.cells()
    assert (c32.precision, c16.precision) == ("fp32", "bf16")
    assert c32.cell_id != c16.cell_id
    assert _config(precision="fp32").cells()[0].cell_id == c32.cell_id  # old ids kept
    store = RunStore.create(tmp_path / "s")
    run_experiment(bf16, store)
    run_experiment(fp32, store)
    rows = store.query("SELECT cell_id, precision FROM runs ORDER BY ALL")[1]
    assert sorted(set(rows)) == sorted({(c16.cell_id, "bf16"), (c32.cell_id, "fp32")})
    a = store.load_params(c32.batch_id)
    b = store.load_params(c16.batch_id)
    finals = [k for k in a if not k.startswith("init.") and k.endswith("weight")]
    assert finals and all(not torch.equal(a[k], b[k]) for k in finals), list(a)
