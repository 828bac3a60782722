"""Memory-aware chunking: the footprint estimate, the chunk it gives, and equal results."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from optiscope.config import parse_config
from optiscope.engine.chunking import (
    SAFETY,
    available_bytes,
    member_chunk_size,
    member_footprint,
)
from optiscope.engine.work import UnitContext, WorkUnit, train_unit
from optiscope.optim import SGD, Adam, Shampoo
from optiscope.tasks import make_task

HIDDEN, BATCH = 32, 50


@pytest.fixture(scope="module")
def task():
    return make_task("mnist1d-mlp", hidden=HIDDEN, batch_size=BATCH)


def _n_params() -> int:
    return (40 * HIDDEN + HIDDEN) + (HIDDEN * HIDDEN + HIDDEN) + (HIDDEN * 10 + 10)


def test_parameters_gradients_and_adam_state_match_the_closed_form(task):
    f = member_footprint(task, Adam, {"lr": 1e-3})
    assert f.params == f.grads == 4 * _n_params()
    # exp_avg and exp_avg_sq per parameter, plus one step counter (a scalar) per tensor
    assert 2 * f.params <= f.optimizer_state <= 2 * f.params + 6 * 8
    assert member_footprint(task, SGD, {"lr": 0.1}).optimizer_state <= 6 * 8  # no momentum buffer
    assert member_footprint(task, SGD, {"lr": 0.1, "momentum": 0.9}).optimizer_state >= f.params


def test_shampoo_state_is_measured_not_guessed(task):
    """Shampoo keeps (rows^2 + cols^2)-sized statistics and roots per matrix: more than Adam."""
    shampoo = member_footprint(task, Shampoo, {})
    matrices = [(HIDDEN, 40), (HIDDEN, HIDDEN), (10, HIDDEN)]
    assert shampoo.optimizer_state >= 4 * sum(r * r + c * c for r, c in matrices)


def test_activations_cover_what_the_backward_keeps(task):
    """The MLP keeps at least its input and two hidden activations for the backward."""
    f = member_footprint(task, Adam, {})
    assert f.batch == BATCH * 40 * 4 + BATCH * 8  # float32 inputs, int64 labels
    lower = 4 * BATCH * (40 + 2 * HIDDEN)
    assert lower <= f.activations <= 8 * lower


def test_the_chunk_is_the_largest_that_fits_the_budget(task):
    total = member_footprint(task, Adam, {}).total
    gb_for = lambda members: members * total / SAFETY / 2**30  # noqa: E731
    assert member_chunk_size(task, Adam, {}, 64, "cpu", max_memory_gb=gb_for(64)) is None
    assert member_chunk_size(task, Adam, {}, 64, "cpu", max_memory_gb=gb_for(10.5)) == 10
    assert member_chunk_size(task, Adam, {}, 64, "cpu", max_memory_gb=gb_for(0.1)) == 1
    # per-member hyperparameters (a pack) are cut to one member for the dry step
    lrs = {"lr": torch.linspace(1e-3, 1e-2, 64, dtype=torch.float64)}
    assert member_chunk_size(task, Adam, lrs, 64, "cpu", max_memory_gb=gb_for(10.5)) == 10


def test_available_memory_is_read_from_the_host_or_the_override():
    assert available_bytes("cpu") > 0
    assert available_bytes("cpu", max_memory_gb=1.5) == int(1.5 * 2**30)
    with pytest.raises(ValueError, match="max_memory_gb"):
        available_bytes("cpu", max_memory_gb=0)


def _cell(max_memory_gb=None):
    cfg = parse_config({
        "experiment": {"name": "chunks", "seeds": 7, "steps": 6, "eval_every": 3, "log_every": 2,
                       **({} if max_memory_gb is None else {"max_memory_gb": max_memory_gb})},
        "tasks": [{"name": "mnist1d-mlp", "hidden": HIDDEN, "batch_size": BATCH}],
        "optimizers": [{"name": "adam", "lr": 1e-2}],
    })
    (cell,) = cfg.cells()
    return cell


def test_forced_small_memory_trains_in_chunks_equal_to_one_ensemble(task):
    total = member_footprint(task, Adam, {"lr": 1e-2}).total
    chunked_cell = _cell(max_memory_gb=3.5 * total / SAFETY / 2**30)
    whole_cell = _cell()
    assert chunked_cell.cell_id == whole_cell.cell_id  # memory changes how, not what
    (chunked,) = train_unit(WorkUnit((chunked_cell,)), UnitContext(device="cpu"))
    (whole,) = train_unit(WorkUnit((whole_cell,)), UnitContext(device="cpu"))
    assert chunked.error is None and whole.error is None, chunked.error or whole.error
    assert chunked.result.chunk_size == 3 and whole.result.chunk_size is None
    a, b = chunked.result, whole.result
    assert a.seeds == b.seeds and a.diverged_step == b.diverged_step
    for k in b.final_params:  # vmap over 3 or 7 members: same arithmetic up to float rounding
        torch.testing.assert_close(a.final_params[k], b.final_params[k], rtol=1e-5, atol=1e-6)
    ca, cb = a.metrics.columns(a.diverged_step), b.metrics.columns(b.diverged_step)
    order_a = np.lexsort((ca["member"], ca["step"], ca["name"].astype(str)))
    order_b = np.lexsort((cb["member"], cb["step"], cb["name"].astype(str)))
    assert (ca["name"][order_a] == cb["name"][order_b]).all()
    names = cb["name"][order_b].astype(str)
    va, vb = ca["value"][order_a], cb["value"][order_b]
    accuracies = np.char.endswith(names, "_acc")  # a rounding-level tie may flip one example
    losses = ~accuracies & (names != "time_s")
    np.testing.assert_allclose(va[losses], vb[losses], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(va[accuracies], vb[accuracies], rtol=0, atol=5e-3)


def test_on_cuda_the_free_device_memory_is_the_budget(monkeypatch, task):
    """The CUDA path, checked without a GPU: mem_get_info's free bytes set the chunk, and each
    member also needs the parameter snapshot divergence masking keeps there (engine.trainer)."""
    cpu, masked = member_footprint(task, Adam, {}), member_footprint(task, Adam, {}, masked=True)
    assert cpu.frozen_snapshot == 0 and masked.frozen_snapshot == masked.params
    assert masked.total == cpu.total + cpu.params
    total = masked.total
    free = int(10.5 * total / SAFETY)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free, 4 * free))
    assert available_bytes("cuda") == free
    assert member_chunk_size(task, Adam, {}, 64, "cuda") == 10
    assert member_chunk_size(task, Adam, {}, 64, "cuda", max_memory_gb=1e3) is None
