"""The one run loop under both step strategies: evaluation cadence and step, evaluation counting,
the finish hook, probes and checkpoints (ensemble mode with optiscope's optimizers, loop mode with
torch.optim)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from optiscope.engine import ENGINE_METRICS, EnsembleTrainer, LoopTrainer
from optiscope.optim import SGD, Adam
from optiscope.tasks import MemberBatch, MetricInfo, Task, make_task


class _Quadratic(Task):
    """f(x) = |x - c|^2 / 2; training sees c wobble with (seed, step), evaluation sees c = 0."""

    name = "test-quadratic"
    metrics = (MetricInfo("f", "min"),)

    def __init__(self):
        self.eval_steps: list[int] = []

    def roles(self):
        return {"x": "vector"}

    def init_params(self, seed):
        return {"x": torch.full((3,), float(seed + 1))}

    def loss(self, params, batch):
        return 0.5 * ((params["x"] - batch["c"]) ** 2).sum()

    def train_batch(self, seeds, step):
        return MemberBatch(per_member={"c": 0.1 * torch.sin(seeds[:, None] + step + torch.arange(3.0))})

    def eval_batch(self, seeds, step):
        self.eval_steps.append(step)
        return MemberBatch(shared={"c": torch.zeros(3)})

    def evaluate(self, params, batch):
        return {"f": self.loss(params, batch)}


def trainer(mode: str, task: Task, hp: dict, seeds=(0, 1, 2), *, loop_cls=torch.optim.SGD,
            ensemble_cls=SGD, **kwargs):
    if mode == "loop":
        return LoopTrainer(task, loop_cls, hp, list(seeds), **kwargs)
    return EnsembleTrainer(task, ensemble_cls, hp, list(seeds), **kwargs)


def metric(result_or_trainer, name: str) -> dict[int, np.ndarray]:
    """{step: per-member values} of one logged metric."""
    t = result_or_trainer
    cols = t.metrics.columns(t.diverged_step)
    out: dict[int, list] = {}
    for m, s, n, v in zip(cols["member"], cols["step"], cols["name"], cols["value"], strict=True):
        if n == name:
            out.setdefault(int(s), []).append((m, v))
    return {s: np.array([v for _, v in sorted(mv)]) for s, mv in out.items()}


# -- evaluation counting (contract: forward-only closure calls are function evaluations) ----------
TRIALS = 3


def _trials(opt, closure, params):
    """A line search's bookkeeping: one gradient, then TRIALS forward-only trial evaluations that
    must leave the gradients alone and give the same loss."""
    with torch.enable_grad():
        loss = closure()
    grads = [p.grad.clone() for p in params]
    for _ in range(TRIALS):
        with torch.no_grad():
            trial = closure()
        opt.forward_only_ok &= bool(torch.equal(torch.as_tensor(trial), torch.as_tensor(loss).detach()))
        opt.forward_only_ok &= all(torch.equal(p.grad, g) for p, g in zip(params, grads, strict=True))
    return loss


class _LoopTrials(torch.optim.SGD):
    forward_only_ok = True

    def step(self, closure=None):
        loss = _trials(self, closure, [p for g in self.param_groups for p in g["params"]])
        super().step()
        return loss


class _EnsembleTrials(SGD):
    needs_closure = True
    forward_only_ok = True

    def step(self, closure=None):
        loss = _trials(self, closure, [p for g in self.param_groups for p in g["params"]])
        return super().step(lambda: loss)


@pytest.mark.parametrize("mode", ["ensemble", "loop"])
def test_forward_only_closure_calls_are_counted_as_function_evaluations(mode):
    t = trainer(mode, _Quadratic(), {"lr": 0.1}, loop_cls=_LoopTrials, ensemble_cls=_EnsembleTrials)
    result = t.run(steps=8, eval_every=4, log_every=1)
    assert (result.grad_evals, result.func_evals) == (8, TRIALS * 8)
    assert {s: v.tolist() for s, v in metric(result, "grad_evals").items()} == {
        0: [0.0] * 3, 4: [4.0] * 3, 8: [8.0] * 3}
    assert {s: v.tolist() for s, v in metric(result, "func_evals").items()} == {
        0: [0.0] * 3, 4: [4.0 * TRIALS] * 3, 8: [8.0 * TRIALS] * 3}
    optimizers = t.strategy.optimizers if mode == "loop" else [t.optimizer]
    assert all(o.forward_only_ok for o in optimizers)


# -- contract 2: evaluation is told its step -------------------------------------------------------
@pytest.mark.parametrize("mode", ["ensemble", "loop"])
def test_evaluation_batches_are_asked_for_with_their_step(mode):
    task = _Quadratic()
    trainer(mode, task, {"lr": 0.1}, seeds=(0,)).run(steps=25, eval_every=10, log_every=1)
    assert task.eval_steps == [0, 10, 20, 25]


# -- contract 5: finish() after the last step, before the final evaluation -----------------------
def _finish_to_origin(opt):
    """The finish hook of the test optimizers: every member jumps to x = 0 (where f = 0)."""
    opt.finish_calls += 1
    for g in opt.param_groups:
        for p in g["params"]:
            p.zero_()


class _LoopFinishing(torch.optim.SGD):
    finish_calls = 0
    finish = _finish_to_origin


class _EnsembleFinishing(SGD):
    finish_calls = 0
    finish = _finish_to_origin


@pytest.mark.parametrize("mode", ["ensemble", "loop"])
def test_finish_is_called_once_after_the_last_step_and_before_the_final_evaluation(mode):
    t = trainer(mode, _Quadratic(), {"lr": 0.1}, loop_cls=_LoopFinishing, ensemble_cls=_EnsembleFinishing)
    result = t.run(steps=6, eval_every=3, log_every=1)
    optimizers = t.strategy.optimizers if mode == "loop" else [t.optimizer]
    assert [o.finish_calls for o in optimizers] == [1] * len(optimizers)
    f = metric(result, "f")
    assert (f[3] > 0.1).all()  # still far from the origin mid-run...
    assert (f[6] == 0).all()  # ...but the final evaluation sees the finished point
    assert (result.final_params["x"] == 0).all()
    # Resuming a run that already reached its horizon does not finish twice.
    again = t.run(steps=6, eval_every=3, log_every=1)
    assert [o.finish_calls for o in optimizers] == [1] * len(optimizers)
    assert (again.final_params["x"] == 0).all()


# -- probes and checkpoints, the same in both modes ----------------------------------------------
class _DistanceProbe:
    """A probe hook: each member's distance from its initial point, every `every` steps."""

    def __init__(self, every: int):
        self.every = every

    def due(self, step, total_steps):
        return step % self.every == 0 or step == total_steps

    def __call__(self, task, params, init_params, seeds, step):
        sq = sum(((params[k] - init_params[k]) ** 2).flatten(1).sum(1) for k in params)
        return {"probe.distance": sq.sqrt()}


CASES = {"ensemble": (Adam, {"lr": 1e-2}), "loop": (torch.optim.Adam, {"lr": 1e-2})}


def _make(mode, task):
    cls, hp = CASES[mode]
    return trainer(mode, task, hp, seeds=(0, 1), loop_cls=cls, ensemble_cls=cls,
                   probe_runner=[_DistanceProbe(5)])


def _roundtrip(payload):
    buf = io.BytesIO()
    torch.save(payload, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


@pytest.mark.parametrize("mode", ["ensemble", "loop"])
def test_probes_run_on_their_cadence_and_resuming_equals_the_straight_run(mode):
    task = make_task("mnist1d-mlp", hidden=16)
    straight = _make(mode, task)
    straight.run(steps=30, eval_every=10, log_every=5)
    dist = metric(straight, "probe.distance")
    assert sorted(dist) == [0, 5, 10, 15, 20, 25, 30]
    assert (dist[0] == 0).all() and (dist[30] > 0).all()
    expected = torch.stack([torch.cat([(straight.params[k][i] - straight.init_params[k][i]).flatten()
                                       for k in straight.params]).norm() for i in range(2)])
    np.testing.assert_allclose(dist[30], expected.detach().numpy(), rtol=1e-6)

    saved: dict = {}
    first = _make(mode, task)
    first.run(steps=30, eval_every=10, log_every=5,
              checkpoint=lambda t: saved.update(t.state()) if t.step == 20 else None,
              checkpoint_every=10)
    resumed = _make(mode, task)  # a new process, started from the checkpoint of step 20
    resumed.load_state(_roundtrip(saved))
    assert resumed.step == 20
    resumed.run(steps=30, eval_every=10, log_every=5)
    for k in straight.params:
        assert torch.equal(straight.params[k], resumed.params[k]), k
    a = straight.metrics.columns(straight.diverged_step)
    b = resumed.metrics.columns(resumed.diverged_step)
    keep_a, keep_b = a["name"] != "time_s", b["name"] != "time_s"
    assert set(a["name"]) == set(b["name"]) >= {"probe.distance", "batch_loss", "train_loss"}
    for col in ("member", "step", "name", "value"):
        assert (a[col][keep_a] == b[col][keep_b]).all(), col


def test_a_checkpoint_of_the_other_mode_is_refused():
    task = _Quadratic()
    state = trainer("ensemble", task, {"lr": 0.1}).state()
    with pytest.raises(ValueError, match="ensemble-mode run"):
        trainer("loop", task, {"lr": 0.1}).load_state(state)


# -- the engine declares every metric it logs ------------------------------------------------------
@pytest.mark.parametrize("mode", ["ensemble", "loop"])
def test_every_metric_the_engine_logs_is_declared(mode):
    result = trainer(mode, _Quadratic(), {"lr": 0.1}).run(steps=4, eval_every=2, log_every=1)
    logged = set(result.metrics.columns(result.diverged_step)["name"])
    assert logged - {"f"} == {m.name for m in ENGINE_METRICS}
    goals = {m.name: m.goal for m in ENGINE_METRICS}
    assert goals["batch_loss"] == "min"
    assert goals["grad_evals"] is None and goals["func_evals"] is None and goals["time_s"] is None


# -- divergence: the member is frozen and recorded, the others go on (both modes alike) ---------
class _SeedScaledParabola(_Quadratic):
    """f(x) = a x^2 / 2, a = 1 for seed 0 and 10 otherwise: with lr 0.5 the a = 10 members
    diverge (|1 - lr a| = 4 > 1) while seed 0 converges."""

    def init_params(self, seed):
        return {"x": torch.ones(1)}

    def loss(self, params, batch):
        return 0.5 * (batch["a"] * params["x"] ** 2).sum()

    def train_batch(self, seeds, step):
        return MemberBatch(per_member={"a": torch.where(seeds == 0, 1.0, 10.0)[:, None]})

    def eval_batch(self, seeds, step):
        return self.train_batch(seeds, step)


def test_a_diverging_member_is_frozen_in_loop_mode_exactly_as_in_ensemble_mode():
    results = {mode: trainer(mode, _SeedScaledParabola(), {"lr": 0.5}).run(200, 50, 1)
               for mode in ("ensemble", "loop")}
    # x_t = (-4)^t, so the loss 5 * 16^t first exceeds float32's maximum at this t:
    expected = next(t for t in range(100) if 5.0 * 16.0**t > torch.finfo(torch.float32).max)
    for result in results.values():
        assert result.status == ["ok", "diverged", "diverged"]
        assert result.diverged_step == [None, expected, expected]
        assert abs(result.final_params["x"][0].item()) < 1e-6  # seed 0 went on to converge
    rows = {}
    for mode, r in results.items():  # the same rows survive: none at or after a member's divergence
        cols = r.metrics.columns(r.diverged_step)
        rows[mode] = sorted(zip(cols["member"].tolist(), cols["step"].tolist(), cols["name"].tolist()))
    assert rows["ensemble"] == rows["loop"]
    assert max(s for m, s, _ in rows["loop"] if m == 1) < expected


# -- honest timing ---------------------------------------------------------------------------------
class _AsyncDevice:
    """A fake asynchronous device: work is queued by the step and shows on the clock only once
    `sync` has waited for it (as a CUDA synchronize does); evaluation queues slow work that
    must not count as training time."""

    def __init__(self):
        self.now, self.queued = 0.0, 0.0
        self.events: list[str] = []

    def clock(self) -> float:
        self.events.append("clock")
        return self.now

    def sync(self, device) -> None:
        self.events.append("sync")
        self.now += self.queued
        self.queued = 0.0


def _timed(mode: str, device: _AsyncDevice, task: Task):
    from optiscope.core.device import DeviceClock

    t = trainer(mode, task, {"lr": 0.1})
    fake = DeviceClock("cpu", clock=device.clock, sync=device.sync)
    t.clock = fake
    if mode == "loop":
        t.strategy.clock = fake
    # One second of device work per step (per member's step in loop mode), launched
    # asynchronously; evaluation queues 100 s.
    if mode == "loop":
        for opt in t.strategy.optimizers:
            opt.step = _queueing(opt.step, device, 1.0)
    else:
        t.strategy.train_step = _queueing(t.strategy.train_step, device, 1.0)
    t.strategy.evaluate = _queueing(t.strategy.evaluate, device, 100.0)
    return t


def _queueing(fn, device: _AsyncDevice, seconds: float):
    def queued(*args, **kwargs):
        device.queued += seconds
        return fn(*args, **kwargs)

    return queued


@pytest.mark.parametrize("mode", ["ensemble", "loop"])
def test_times_are_read_after_a_device_synchronisation(mode):
    device = _AsyncDevice()
    t = _timed(mode, device, _Quadratic())
    result = t.run(steps=10, eval_every=5, log_every=1)
    # Every clock reading comes right after a synchronisation...
    assert device.events and all(
        device.events[i - 1] == "sync" for i, e in enumerate(device.events) if e == "clock")
    # ...so the 10 seconds of queued step work are all counted, and none of evaluation's.
    if mode == "ensemble":
        assert result.wall_time_s == pytest.approx(10.0)
        assert metric(result, "time_s") == {0: pytest.approx([0.0] * 3), 5: pytest.approx([5.0] * 3),
                                            10: pytest.approx([10.0] * 3)}
    else:  # each member's own time
        times = metric(result, "time_s")
        assert times[5] == pytest.approx([5.0] * 3) and times[10] == pytest.approx([10.0] * 3)


def test_the_step_loop_synchronises_only_at_its_sync_points():
    device = _AsyncDevice()
    t = _timed("ensemble", device, _Quadratic())
    t.run(steps=20, eval_every=5, log_every=1)
    # Two synchronisations (end of training time, start again) per evaluation, none per step.
    assert device.events.count("sync") == 2 * 4
