"""Seed-steps per second of the vmapped ensemble engine, against the per-seed loop and against
the machine's own roofline for the step, plus the runner's overheads.

- Ratio: the baseline is what people write without optiscope, one `nn.Module` and one
  `torch.optim.Adam` per seed, stepped one after another on the same minibatches.
- Roofline: the step's essential kernels timed alone in this process, on the step's own shapes:
  every batched matmul of the MLP's forward and backward (x grad evaluations per step), the
  optimizer's own kernels (Muon's Newton-Schulz, Shampoo's Gram matrices, eigendecompositions
  and preconditioning), and the optimizer's elementwise traffic (bytes per parameter, counted
  below) at the measured copy bandwidth. roofline = their summed time; fraction = roofline time /
  step time (1.0: the engine adds nothing around the kernels the step cannot avoid).
- Overhead (--overhead): a whole run at the default eval/log cadence (`Trainer.run`, and the
  `optiscope run` command end to end) against bare steps.

Every figure is the fastest single step (or kernel call) over interleaved rounds in one process:
machines here are shared and noisy, noise only adds time, and only ratios taken in one process
are compared.

    python benchmarks/ensemble_throughput.py [--sizes 1 8 64] [--optimizers adam muon shampoo sam]
        [--loop-sizes 512] [--loop-steps 5] [--compile] [--overhead] [--device cpu]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from optiscope.engine import EnsembleTrainer
from optiscope.optim.norms import as_matrix, newton_schulz
from optiscope.optim.registry import resolve_optimizer
from optiscope.optim.shampoo import inverse_root
from optiscope.tasks import make_task

#: Elementwise float32 reads + writes per parameter of each optimizer's update (lower bounds).
#: Adam/AdamW: read p, g, m, v; write p, m, v. Muon: its matrices read g, B, p and write B, p
#: (Newton-Schulz is timed as kernels), the rest is AdamW. SAM (base SGD): the gradient norm, the
#: ascent p += e, the return p -= e and the SGD step. Shampoo: momentum and the update.
UPDATE_FLOATS = {"adam": 7, "muon": 7, "sam": 11, "shampoo": 6}
HYPERPARAMETERS = {"adam": {"lr": 1e-3}, "muon": {}, "sam": {}, "shampoo": {}}


def best_seconds(fn: Callable[[], object], device: str, reps: int = 3) -> float:
    """Fastest of `reps` timed calls (after one warm-up): noise only ever adds time."""
    fn()
    _sync(device)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return best


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def layer_dims(task) -> list[tuple[int, int]]:
    """(fan_in, fan_out) of each linear layer of the MLP task, head last."""
    return [tuple(task.init_params(0)[f"{name}.weight"].shape[::-1])
            for name in [f"layer{k + 1}" for k in range(task.depth)] + ["head"]]


def matmul_kernels(s: int, batch: int, dims: list[tuple[int, int]], device: str) -> tuple[float, float]:
    """(FLOPs, best seconds) of the forward and backward batched matmuls of one step at `s`
    members, each shape timed on its own with the engine's layouts (y = x W^T; dW = dy^T x;
    dx = dy W; no dx for the first layer)."""
    flops, seconds = 0.0, 0.0
    for k, (fan_in, fan_out) in enumerate(dims):
        x = torch.randn(s, batch, fan_in, device=device)
        w = torch.randn(s, fan_out, fan_in, device=device)
        dy = torch.randn(s, batch, fan_out, device=device)
        shapes = [lambda: torch.bmm(x, w.mT), lambda: torch.bmm(dy.mT, x)]
        if k > 0:
            shapes.append(lambda: torch.bmm(dy, w))
        flops += len(shapes) * 2.0 * s * batch * fan_in * fan_out
        seconds += sum(best_seconds(f, device) for f in shapes)
    return flops, seconds


def copy_bandwidth(device: str, n: int = 1 << 24) -> float:
    """Bytes/s of c = a + b on large float32 arrays (two reads, one write)."""
    a, b, c = (torch.randn(n, device=device) for _ in range(3))
    return 3 * 4 * n / best_seconds(lambda: torch.add(a, b, out=c), device, reps=5)


def optimizer_kernels(name: str, task, s: int, device: str) -> float:
    """Best seconds of the optimizer's own non-elementwise kernels for one step at `s` members."""
    params = {k: torch.randn(s, *v.shape, device=device) for k, v in task.init_params(0).items()}
    roles = task.roles()
    total = 0.0
    if name == "muon":
        for k, p in params.items():
            if roles[k] == "hidden" and p.dim() >= 3:
                m = as_matrix(p, 1)
                total += best_seconds(lambda m=m: newton_schulz(m, 5), device)
    if name == "shampoo":
        for p in params.values():
            g = as_matrix(p, 1)

            def precondition(g=g):
                left, right = g @ g.mT, g.mT @ g
                return inverse_root(left, 4, 1e-6) @ g @ inverse_root(right, 4, 1e-6)

            total += best_seconds(precondition, device, reps=2)
    return total


def per_seed_loop(task, seeds: list[int], steps: int, device: str) -> float:
    """Seconds for `steps` steps of S independent nn.Module + torch.optim.Adam pairs."""
    models, opts = [], []
    for s in seeds:
        p = task.init_params(s)
        layers: list[nn.Module] = []
        for k in range(task.depth):
            lin = nn.Linear(*p[f"layer{k + 1}.weight"].shape[::-1])
            lin.weight.data, lin.bias.data = p[f"layer{k + 1}.weight"], p[f"layer{k + 1}.bias"]
            layers += [lin, nn.ReLU()]
        head = nn.Linear(*p["head.weight"].shape[::-1])
        head.weight.data, head.bias.data = p["head.weight"], p["head.bias"]
        model = nn.Sequential(*layers, head).to(device)
        models.append(model)
        opts.append(torch.optim.Adam(model.parameters(), lr=1e-3))
    seed_t = torch.tensor(seeds)
    batches = [task.train_batch(seed_t, step).to(device) for step in range(steps + 2)]
    loss_fn = nn.CrossEntropyLoss()

    def step(t: int) -> None:
        b = batches[t]
        for i, (m, o) in enumerate(zip(models, opts, strict=True)):
            o.zero_grad(set_to_none=True)
            loss_fn(m(b.per_member["x"][i]), b.per_member["y"][i]).backward()
            o.step()

    step(0), step(1)  # warm-up
    return best_step(lambda t: step(t + 2), steps, device)


def best_step(step: Callable[[int], object], steps: int, device: str) -> float:
    """Seconds of the fastest of `steps` steps, each timed alone (as the kernels are: noise on a
    shared machine only ever adds time, so the fastest is the closest to the machine's speed)."""
    best = float("inf")
    for t in range(steps):
        _sync(device)
        t0 = time.perf_counter()
        step(t)
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return best


def engine_trainer(task, name: str, seeds: list[int], device: str, compile: bool = False):
    cls = resolve_optimizer(name)
    trainer = EnsembleTrainer(task, cls, HYPERPARAMETERS[name], seeds, device=device, compile=compile)
    trainer.train_step(), trainer.train_step()  # warm-up (and the compile, if any)
    return trainer


def engine_seconds(trainer, steps: int, device: str) -> float:
    return best_step(lambda t: trainer.train_step(), steps, device)


def throughput(args, task, device: str) -> None:
    dims = layer_dims(task)
    n_params = sum(v.numel() for v in task.init_params(0).values())
    print(f"{'optimizer':>9} {'seeds':>6} {'seed-steps/s':>13} {'vs loop':>8} {'vs adam':>8} "
          f"{'roofline':>9} {'fraction':>9} {'matmul GF/s':>12} {'peak GF/s':>10}")
    for s in args.sizes:
        seeds = list(range(s))
        names = list(args.optimizers) + (["adam+compile"] if args.compile else [])
        trainers = {n: engine_trainer(task, n.split("+")[0], seeds, device, n.endswith("compile"))
                    for n in names}
        best = {n: float("inf") for n in names}
        t_loop = t_mm = t_bw = float("inf")
        t_opt = {n: float("inf") for n in names}
        for _ in range(args.rounds):  # interleaved: every figure sees the same machine
            if "adam" in names and (args.loop_sizes is None or s in args.loop_sizes):
                t_loop = min(t_loop, per_seed_loop(task, seeds, args.loop_steps or args.steps, device))
            for n, trainer in trainers.items():
                best[n] = min(best[n], engine_seconds(trainer, args.steps, device))
            flops, mm = matmul_kernels(s, task.batch_size, dims, device)
            t_mm, bw = min(t_mm, mm), copy_bandwidth(device)
            t_bw = min(t_bw, 1 / bw)
            for n in names:
                t_opt[n] = min(t_opt[n], optimizer_kernels(n.split("+")[0], task, s, device))
        for n in names:
            base = n.split("+")[0]
            evals = trainers[n].optimizer.grad_evals_per_step
            roof = evals * t_mm + t_opt[n] + UPDATE_FLOATS[base] * 4 * n_params * s * t_bw
            rate = s / best[n]
            loop = f"{t_loop / best[n]:.2f}x" if base == "adam" and t_loop < float("inf") else "-"
            vs_adam = f"{best['adam'] / best[n]:.2f}x" if "adam" in best else "-"
            print(f"{n:>9} {s:>6} {rate:>13.1f} {loop:>8} {vs_adam:>8} {s / roof:>9.1f} "
                  f"{roof / best[n]:>9.2f} {evals * flops / best[n] / 1e9:>12.1f} "
                  f"{flops / t_mm / 1e9:>10.1f}")
    print("roofline: seed-steps/s if the step took only its kernels' time (see the docstring); "
          "fraction = roofline time / step time; matmul GF/s: the step's forward/backward matmul "
          "FLOPs per step time; peak: the same matmuls timed alone")


def bookkeeping_seconds(trainer, steps: int, on_step: Callable[[int], None]) -> float:
    """Seconds per step of `Trainer.run` around a step that costs nothing: the divergence check,
    logging, probes' schedule, progress (evaluation stubbed out: it is timed on its own)."""
    loss = torch.rand(len(trainer.seeds), device=trainer.device)

    def free_step(step, frozen, check):
        check(loss)
        return loss

    real_step, real_eval = trainer.strategy.train_step, trainer.log_eval
    trainer.strategy.train_step, trainer.log_eval = free_step, lambda: None
    try:
        trainer.step = 0
        t0 = time.perf_counter()
        trainer.run(steps, steps + 1, 10, on_step=on_step)
        return (time.perf_counter() - t0) / steps
    finally:
        trainer.strategy.train_step, trainer.log_eval = real_step, real_eval


def overhead(args, task, device: str) -> None:
    """The runner's costs per training step at the default cadence, each part timed alone, and
    a whole `optiscope run` against bare steps (noisier: long intervals on a shared machine)."""
    from rich.progress import Progress
    from typer.testing import CliRunner

    from optiscope.cli import _RichProgress, app
    from optiscope.config import ExperimentSection

    d = ExperimentSection(name="x")
    s, steps = args.overhead_seeds, args.overhead_steps
    trainer = engine_trainer(task, "adam", list(range(s)), device, compile=args.compile)
    t_step = t_eval = t_book = t_bar = t_bare = t_cli = float("inf")
    for _ in range(args.rounds):
        t_step = min(t_step, engine_seconds(trainer, args.steps, device))
        t_eval = min(t_eval, best_seconds(trainer.log_eval, device, reps=1))
        t_book = min(t_book, bookkeeping_seconds(trainer, 2000, lambda k: None))
        with Progress(disable=True) as bar:
            rich = _RichProgress(bar)
            rich.start(2000)
            t_bar = min(t_bar, bookkeeping_seconds(trainer, 2000, rich.advance))
        if args.overhead_steps:
            t0 = time.perf_counter()
            for _ in range(steps):
                trainer.train_step()
            _sync(device)
            t_bare = min(t_bare, time.perf_counter() - t0)
            with tempfile.TemporaryDirectory() as tmp:
                cfg = Path(tmp) / "x.toml"
                cfg.write_text(
                    f'[experiment]\nname = "overhead"\nseeds = {s}\nsteps = {steps}\n'
                    f'device = "{device}"\n[[tasks]]\nname = "mnist1d-mlp"\nhidden = {task.hidden}\n'
                    '[[optimizers]]\nname = "adam"\nlr = 1e-3\n')
                t0 = time.perf_counter()
                result = CliRunner().invoke(app, ["run", str(cfg), "--store", str(Path(tmp) / "s")])
                t_cli = min(t_cli, time.perf_counter() - t0)
                if result.exit_code != 0:
                    raise RuntimeError(f"optiscope run failed: {result.output}")
    evals = (d.steps // d.eval_every + 1) / d.steps  # evaluations per step of a default run
    print(f"\nrunner overhead per step at the default cadence (steps={d.steps}, eval_every="
          f"{d.eval_every}, log_every={d.log_every}): adam, {s} seeds, compile={args.compile}; "
          f"step {1e3 * t_step:.1f} ms")
    print(f"  evaluation      {1e3 * t_eval:9.1f} ms each, {100 * evals * t_eval / t_step:6.2f}% of step time")
    print(f"  bookkeeping     {1e6 * t_book:9.1f} us/step,  {100 * t_book / t_step:6.2f}%  "
          "(divergence check, logging, probe schedule)")
    print(f"  + rich progress {1e6 * (t_bar - t_book):9.1f} us/step,  {100 * (t_bar - t_book) / t_step:6.2f}%")
    if args.overhead_steps:
        print(f"  optiscope run, {steps} steps end to end (setup, evaluations, landing): "
              f"{100 * (t_cli / t_bare - 1):+.1f}% over {steps} bare steps")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--sizes", type=int, nargs="+", default=None)
    ap.add_argument("--optimizers", nargs="+", default=["adam", "muon", "shampoo", "sam"],
                    choices=sorted(UPDATE_FLOATS))
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--loop-sizes", type=int, nargs="+", default=None,
                    help="sizes at which to time the per-seed loop (default: every size); "
                         "it takes S times a step, so a GPU check times it at 512 only")
    ap.add_argument("--loop-steps", type=int, default=None,
                    help="timed steps of the per-seed loop (default: --steps)")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--compile", action="store_true",
                    help="also time Adam with compile = true (and time the overhead compiled)")
    ap.add_argument("--overhead", action="store_true", help="also time a whole run (default cadence)")
    ap.add_argument("--overhead-seeds", type=int, default=64)
    ap.add_argument("--overhead-steps", type=int, default=100,
                    help="steps of the end-to-end optiscope run (0: skip it)")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads (1 on an oversubscribed machine: idle OpenMP threads "
                         "waiting on descheduled ones cost more than the second core gives)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device
    args.sizes = args.sizes or ([1, 8, 64, 512] if device.startswith("cuda") else [1, 8, 64])
    task = make_task("mnist1d-mlp", hidden=args.hidden).to(device)
    name = torch.cuda.get_device_name() if device.startswith("cuda") else f"cpu x{torch.get_num_threads()} threads"
    print(f"mnist1d-mlp hidden={args.hidden} batch={task.batch_size}, {args.steps} timed steps, "
          f"best of {args.rounds} interleaved rounds, on {name}")
    if not args.skip_throughput:
        throughput(args, task, device)
    if args.overhead:
        overhead(args, task, device)


if __name__ == "__main__":
    main()
