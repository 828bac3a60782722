"""The engine on a CUDA GPU: no synchronisation per step, honest times, pinned batches, TF32,
results equal to the CPU's where the comparison is teacher-forced or short. Every test here is marked `gpu` and skipped
where torch sees no CUDA device (tests/conftest.py); `make gpu-check` runs them on a GPU."""

from __future__ import annotations

import time

import pytest
import torch

from optiscope.core.device import DeviceClock, to_device
from optiscope.engine import EnsembleTrainer
from optiscope.optim.registry import resolve_optimizer
from optiscope.tasks import make_task

pytestmark = pytest.mark.gpu

SEEDS = list(range(16))
CASES = {
    "adam": ("adam", {"lr": 1e-3}),
    "muon": ("muon", {}),
    "sam": ("sam", {"lr": 0.05}),
    "sgd-packed": ("sgd", {"lr": torch.linspace(0.01, 0.2, 16, dtype=torch.float64),
                           "momentum": torch.tensor([0.0, 0.9] * 8, dtype=torch.float64)}),
}


def _trainer(name: str, device: str, **kw) -> EnsembleTrainer:
    optimizer, hp = CASES[name]
    task = make_task("mnist1d-mlp", hidden=64)
    return EnsembleTrainer(task, resolve_optimizer(optimizer), dict(hp), SEEDS, device=device, **kw)


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_step_loop_never_synchronises_between_evaluations(name):
    """torch's own detector: with sync debug mode "error" any synchronising CUDA call raises."""
    trainer = _trainer(name, "cuda")
    assert trainer.masked
    for _ in range(2):  # warm-up: the first steps allocate state and caches
        trainer.advance(log_every=1)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(10):
            trainer.advance(log_every=1)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert trainer.step == 12


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """Relative Frobenius distance of a (on any device) from b (on the CPU)."""
    return float((a.detach().cpu() - b.detach()).norm() / b.detach().norm().clamp(min=1e-30))


def test_cuda_gradients_equal_the_cpus_at_the_same_parameters():
    """Teacher-forced: the vmapped loss and gradients at the same parameters and batch, in fp32
    (TF32 off, torch's default for matmuls): float32 rounding of other kernels only."""
    assert not torch.backends.cuda.matmul.allow_tf32
    cpu, gpu = _trainer("adam", "cpu"), _trainer("adam", "cuda")
    batch = cpu.task.train_batch(cpu.seed_tensor, 0)
    loss_c, loss_g = cpu.strategy.grads(batch), gpu.strategy.grads(batch.to("cuda"))
    torch.testing.assert_close(loss_g.cpu(), loss_c, rtol=1e-5, atol=1e-6)
    for k, p in cpu.params.items():
        assert _rel(gpu.params[k].grad, p.grad) < 1e-4, k


@pytest.mark.parametrize("name,tol", [("adam", 1e-5), ("sgd-packed", 1e-6), ("muon", 0.1)])
def test_one_cuda_step_equals_the_cpus_from_the_same_gradients(name, tol):
    """Teacher-forced: the CPU's gradients handed to both optimizers; the update (new minus old
    parameters) agrees to rounding (Muon: bfloat16 Newton-Schulz, two orders of the same bf16
    operations differ by up to 5.5e-2 per step; held to 0.1 as in tests/optim/test_muon.py)."""
    cpu, gpu = _trainer(name, "cpu"), _trainer(name, "cuda")
    cpu.strategy.grads(cpu.task.train_batch(cpu.seed_tensor, 0))
    before = {k: p.detach().clone() for k, p in cpu.params.items()}
    for k, p in gpu.params.items():
        p.grad = cpu.params[k].grad.to("cuda")
    cpu.optimizer.step(), gpu.optimizer.step()
    for k, p in cpu.params.items():
        assert _rel(gpu.params[k].detach().cpu() - before[k], p.detach() - before[k]) < tol, k


def test_a_diverging_member_is_frozen_and_recorded_on_the_gpu_as_on_the_cpu():
    hp = {"lr": torch.tensor([0.1] * 8 + [1e12] * 8, dtype=torch.float64), "momentum": 0.9}
    results = {}
    for device in ("cpu", "cuda"):
        t = EnsembleTrainer(make_task("mnist1d-mlp", hidden=64), resolve_optimizer("sgd"), dict(hp),
                            SEEDS, device=device)
        results[device] = t.run(steps=12, eval_every=5, log_every=1)
    assert results["cuda"].diverged_step == results["cpu"].diverged_step
    assert results["cuda"].diverged_step[8:] != [None] * 8 and results["cuda"].diverged_step[:8] == [None] * 8
    # SGD (no normalisation amplifying rounding), 12 steps; frozen members keep the parameters
    # of their diverged step.
    for k, v in results["cpu"].final_params.items():
        torch.testing.assert_close(results["cuda"].final_params[k], v, rtol=1e-3, atol=1e-5)


def test_wall_time_counts_the_work_not_the_launches():
    """A cell's `wall_time_s` against CUDA events around the same steps: equal to within the
    host's own overhead, where timing launches alone would read a small fraction of it."""
    trainer = _trainer("adam", "cuda")
    trainer.run(steps=2, eval_every=100, log_every=100)  # warm-up
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    before = trainer.elapsed
    torch.cuda.synchronize()
    start.record()
    trainer.run(steps=202, eval_every=1000, log_every=1000)
    end.record()
    torch.cuda.synchronize()
    measured = trainer.elapsed - before
    event_s = start.elapsed_time(end) / 1e3
    assert 0.5 * event_s <= measured <= 1.05 * event_s


def test_the_device_clock_waits_for_queued_work():
    """Twenty large matmuls: the clock's reading covers the work CUDA events time on the device
    (a bare perf_counter around the launches would read far less)."""
    a = torch.randn(4096, 4096, device="cuda")
    clock = DeviceClock("cuda")
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    t0 = clock.now()
    start.record()
    for _ in range(20):
        a = a @ a / 4096
    end.record()
    measured = clock.now() - t0
    assert measured >= 0.95 * start.elapsed_time(end) / 1e3


def test_host_batches_reach_the_gpu_through_pinned_memory(monkeypatch):
    pinned = []
    real = torch.Tensor.pin_memory

    def spy(self, *args, **kwargs):
        out = real(self, *args, **kwargs)
        pinned.append(out)
        return out

    monkeypatch.setattr(torch.Tensor, "pin_memory", spy)
    x = torch.arange(12.0).reshape(3, 4)
    y = to_device(x, "cuda")
    assert y.device.type == "cuda" and torch.equal(y.cpu(), x) and pinned and pinned[0].is_pinned()
    task = make_task("mnist1d-mlp", hidden=16).to("cuda")
    pinned.clear()
    batch = task.train_batch(torch.tensor(SEEDS), 0)  # sampler indices are made on the host
    assert batch.per_member["x"].device.type == "cuda" and pinned


def test_tf32_is_on_inside_a_tf32_step_and_restored_after():
    seen = []
    task = make_task("mnist1d-mlp", hidden=16)
    real_loss = task.loss

    def loss(params, batch):
        seen.append(torch.backends.cuda.matmul.allow_tf32)
        return real_loss(params, batch)

    task.loss = loss
    trainer = EnsembleTrainer(task, resolve_optimizer("adam"), {"lr": 1e-3}, SEEDS, device="cuda",
                              precision="tf32")
    trainer.train_step()
    assert seen and all(seen)
    assert not torch.backends.cuda.matmul.allow_tf32


def test_compiled_step_equals_eager_on_the_gpu():
    """torch.compile stays off by default (`compile = true` opts in). On the GPU its gradients at
    the same parameters agree with eager to float32 rounding, and three SGD steps (no
    normalisation that would amplify the rounding of tiny gradients, as Adam's would) stay
    within float32 tolerance (as tests/engine/test_compile.py on the CPU)."""
    task = make_task("mnist1d-mlp", hidden=64)
    sgd = resolve_optimizer("sgd")
    eager = EnsembleTrainer(task, sgd, {"lr": 0.1, "momentum": 0.9}, SEEDS, device="cuda")
    compiled = EnsembleTrainer(task, sgd, {"lr": 0.1, "momentum": 0.9}, SEEDS, device="cuda",
                               compile=True)
    batch = task.train_batch(eager.seed_tensor, 0).to("cuda")
    loss_e, loss_c = eager.strategy.grads(batch), compiled.strategy.grads(batch)
    assert compiled.strategy._grad_fn.active, compiled.strategy._grad_fn.fallback_reason
    torch.testing.assert_close(loss_c, loss_e, rtol=1e-5, atol=1e-6)
    for k, p in eager.params.items():
        torch.testing.assert_close(compiled.params[k].grad, p.grad, rtol=1e-4, atol=1e-6)
    for _ in range(3):
        eager.train_step(), compiled.train_step()
    for k in eager.params:
        torch.testing.assert_close(compiled.params[k], eager.params[k], rtol=1e-5, atol=1e-5)
