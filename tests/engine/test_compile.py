"""torch.compile of the ensemble step: equal to eager, and never the reason a run fails."""

from __future__ import annotations

import logging

import pytest
import torch

import optiscope.engine.compile as compile_mod
import optiscope.engine.notes as notes
from optiscope.config import parse_config
from optiscope.engine.compile import CompiledOrEager, compile_unavailable, maybe_compiled
from optiscope.engine.ensemble import EnsembleTrainer
from optiscope.optim import SGD, Adam
from optiscope.tasks import make_task

SEEDS = [0, 1, 2, 3]


@pytest.fixture(autouse=True)
def _fresh_notes(monkeypatch):
    monkeypatch.setattr(notes, "_noted", set())


def _double(x):
    return 2 * x


def test_a_compiler_that_raises_falls_back_to_eager_and_says_so_once(caplog):
    def broken(fn):
        raise RuntimeError("no C++ compiler")

    with caplog.at_level(logging.WARNING, logger="optiscope.engine.compile"):
        f = CompiledOrEager(_double, name="the test step", compiler=broken)
        CompiledOrEager(_double, name="the test step", compiler=broken)
    assert not f.active and "no C++ compiler" in f.fallback_reason
    assert torch.equal(f(torch.ones(2)), 2 * torch.ones(2))
    assert [r.message for r in caplog.records].count(
        "torch.compile of the test step is not used, running eagerly: RuntimeError: no C++ compiler"
    ) == 1


def test_a_compiled_function_that_fails_when_called_falls_back_for_good(caplog):
    calls = []

    def fails_at_call(fn):
        def compiled(*args):
            calls.append(args)
            raise RuntimeError("BackendCompilerFailed: inductor")
        return compiled

    f = CompiledOrEager(_double, name="the test step", compiler=fails_at_call)
    assert f.active
    with caplog.at_level(logging.WARNING, logger="optiscope.engine.compile"):
        assert torch.equal(f(torch.ones(2)), 2 * torch.ones(2))
        assert torch.equal(f(torch.ones(3)), 2 * torch.ones(3))
    assert len(calls) == 1 and not f.active  # the compiled path was tried once only
    assert len(caplog.records) == 1


def test_a_genuine_error_still_raises_after_the_fallback():
    def bad(x):
        raise ValueError("shape mismatch in the task")

    f = CompiledOrEager(bad, name="the test step", compiler=lambda fn: fn)
    with pytest.raises(ValueError, match="shape mismatch"):
        f(torch.ones(1))


def test_disabled_is_the_function_itself():
    assert maybe_compiled(_double, enabled=False, name="x") is _double


def test_an_ensemble_without_compile_support_trains_eagerly_and_identically(monkeypatch):
    monkeypatch.setattr(compile_mod, "compile_unavailable", lambda: "dynamo is not supported here")
    task = make_task("mnist1d-mlp", hidden=16)
    eager = EnsembleTrainer(task, Adam, {"lr": 1e-3}, SEEDS)
    wanted = EnsembleTrainer(task, Adam, {"lr": 1e-3}, SEEDS, compile=True)
    assert isinstance(wanted.strategy._grad_fn, CompiledOrEager)
    assert not wanted.strategy._grad_fn.active
    for _ in range(3):
        eager.train_step(), wanted.train_step()
    assert all(torch.equal(eager.params[k], wanted.params[k]) for k in eager.params)


def test_compile_is_an_experiment_setting_that_does_not_change_the_cell_id():
    def cfg(**kw):
        return parse_config({"experiment": {"name": "c", **kw}, "tasks": [{"name": "mnist1d-mlp"}],
                             "optimizers": [{"name": "sgd"}]})

    (off,), (on,) = cfg().cells(), cfg(compile=True).cells()
    assert (off.compile, on.compile) == (False, True)
    assert off.cell_id == on.cell_id


@pytest.mark.slow
@pytest.mark.skipif(compile_unavailable() is not None, reason="torch.compile unavailable here")
def test_the_compiled_step_equals_the_eager_step_to_float_tolerance():
    """A real torch.compile (tens of seconds on a CPU): gradients at the same parameters agree
    to float32 rounding, and three SGD steps (no normalisation that could amplify rounding of
    tiny gradients, as Adam's would) stay within float32 tolerance of the eager run."""
    task = make_task("mnist1d-mlp", hidden=16)
    eager = EnsembleTrainer(task, SGD, {"lr": 0.1, "momentum": 0.9}, SEEDS)
    compiled = EnsembleTrainer(task, SGD, {"lr": 0.1, "momentum": 0.9}, SEEDS, compile=True)
    batch = task.train_batch(eager.seed_tensor, 0)
    loss_e, loss_c = eager.strategy.grads(batch), compiled.strategy.grads(batch)
    assert compiled.strategy._grad_fn.active, compiled.strategy._grad_fn.fallback_reason
    torch.testing.assert_close(loss_c, loss_e, rtol=1e-5, atol=1e-6)
    for k, p in eager.params.items():
        torch.testing.assert_close(compiled.params[k].grad, p.grad, rtol=1e-4, atol=1e-6)
    for _ in range(3):
        eager.train_step(), compiled.train_step()
    for k in eager.params:
        torch.testing.assert_close(compiled.params[k], eager.params[k], rtol=1e-5, atol=1e-5)
    # the evaluation is compiled too; it is teacher-forced onto the eager run's parameters
    with torch.no_grad():
        for k, p in compiled.params.items():
            p.copy_(eager.params[k])
    metrics_e, metrics_c = eager.evaluate(), compiled.evaluate()
    assert compiled.strategy._eval_fn.active, compiled.strategy._eval_fn.fallback_reason
    for name, value in metrics_e.items():
        if name.endswith("_acc"):  # a rounding-level tie may flip one example of 1000
            torch.testing.assert_close(metrics_c[name], value, rtol=0, atol=2e-3)
        else:
            torch.testing.assert_close(metrics_c[name], value, rtol=1e-5, atol=1e-6)
