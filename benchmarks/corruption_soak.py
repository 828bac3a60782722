"""Corruption soak of the run store: damage a random file of a store, then `optiscope run`.

    .venv/bin/python benchmarks/corruption_soak.py [--trials 24] [--seed 0] [--workdir DIR]

A reference store of a small experiment (a pack of two SGD cells and an Adam cell, with crash
checkpoints) is trained once. Each trial copies it, damages one random file in one random way,
then runs, in this process through the command line, the readers (`query`, `report`, `verify`,
`check`) and then `run` on it:

- targets: a runs file, a metrics file, a parameters file, or a checkpoint (for this target the
  copy is of a store whose last cell had not landed yet, as after a crash, so a checkpoint exists);
- damage: truncation to a random length, random bytes (same size, in place: only the checksum
  can tell), a foreign file (another cell's or another table's file copied over it), a
  wrong-schema Parquet file, or deletion.

After `run` every configured cell must be present and verify, with metrics (all but wall-clock
`time_s`) and parameters equal, bit for bit, to the reference; and no command may print a
traceback or crash. The script prints the counts and exits 1 if any trial failed.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import sys
import tempfile
import traceback
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import torch
from typer.testing import CliRunner

from optiscope.cli import app
from optiscope.config import load_config
from optiscope.engine import runner as runner_module
from optiscope.engine.runner import run_experiment
from optiscope.store import RunStore

EXPERIMENT = """
[experiment]
name = "soak"
seeds = 3
steps = 200
eval_every = 50
checkpoint_every = 50
device = "cpu"

[[tasks]]
name = "quadratic"
dim = 8

[[optimizers]]
name = "sgd"
lr = [0.02, 0.05]

[[optimizers]]
name = "adam"
lr = 0.05
label = "adam"

[[hypotheses]]
name = "adam-lower"
metric = "f_gap"
a = "adam"
b = "sgd(lr=0.02)"
direction = "less"
"""
TARGETS = ("runs", "metrics", "params", "checkpoints")
DAMAGE = ("truncate", "random-bytes", "foreign", "wrong-schema", "delete")
CLI = CliRunner()


def invoke(*args: str) -> tuple[int, str, bool]:
    """(exit code, output, crashed): a crash is an exception other than the exit itself."""
    result = CLI.invoke(app, list(args))
    crashed = result.exception is not None and not isinstance(result.exception, SystemExit)
    if crashed:
        traceback.print_exception(result.exception)
    return result.exit_code, result.output, crashed


def metrics_of(store: RunStore) -> list[tuple]:
    return store.query("SELECT run_id, step, name, value FROM metrics WHERE name <> 'time_s' ORDER BY ALL")[1]


def params_of(store: RunStore) -> dict[str, dict[str, torch.Tensor]]:
    """Every run's final and initial parameters, keyed by (cell, seed), whichever batch holds it."""
    out = {}
    for cell in sorted(store.completed_cells()):
        for seed, member in store.final_params(cell).items():
            out[f"{cell}-s{seed}"] = {**member["final"], **{f"init.{k}": v for k, v in member["init"].items()}}
    return out


def crashed_store(exp: Path, root: Path) -> None:
    """A store whose last cell trained but had not landed: its checkpoint is still there."""
    real = runner_module.land_payload
    landed: list[str] = []

    def land_two(store: RunStore, payload) -> None:
        if len(landed) == 2:
            raise KeyboardInterrupt
        real(store, payload)
        landed.append(payload.cell_id)

    runner_module.land_payload = land_two
    try:
        run_experiment(load_config(exp), RunStore.create(root), config_text=exp.read_text())
    except KeyboardInterrupt:
        pass
    finally:
        runner_module.land_payload = real


def damage(path: Path, how: str, rng: random.Random, store: Path) -> None:
    size = path.stat().st_size
    if how == "truncate":
        path.write_bytes(path.read_bytes()[: rng.randrange(0, max(size, 1))])
    elif how == "random-bytes":
        data = bytearray(path.read_bytes())
        start = rng.randrange(0, max(size - 1, 1))
        for i in range(start, min(size, start + rng.randint(1, 64))):
            data[i] = rng.randrange(256)
        path.write_bytes(bytes(data))
    elif how == "foreign":
        others = [p for p in store.rglob("*") if p.is_file() and p != path and p.suffix in (".parquet", ".safetensors", ".pt")
                  and "configs" not in p.parts]
        shutil.copyfile(rng.choice(others), path)
    elif how == "wrong-schema":
        pq.write_table(pa.table({"x": [1, 2, 3], "y": ["a", "b", "c"]}), path)
    elif how == "delete":
        path.unlink()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=24)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    rng = random.Random(args.seed)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="optiscope-corruption-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    exp = work / "soak.toml"
    exp.write_text(EXPERIMENT)
    reference = work / "reference"
    code, out, _ = invoke("run", str(exp), "--store", str(reference))
    assert code == 0, out
    ref = RunStore.open(reference)
    ref_metrics, ref_params = metrics_of(ref), params_of(ref)
    n_cells = len(ref.completed_cells())
    crashed = work / "crashed"
    crashed_store(exp, crashed)
    assert list((crashed / "checkpoints").glob("*.pt")), "the crashed store should hold a checkpoint"

    counts: Counter[str] = Counter()
    failures: list[str] = []
    for trial in range(args.trials):
        target, how = TARGETS[trial % len(TARGETS)], rng.choice(DAMAGE)
        store = work / f"trial-{trial:03d}"
        shutil.copytree(crashed if target == "checkpoints" else reference, store)
        suffix = {"runs": ".parquet", "metrics": ".parquet", "params": ".safetensors", "checkpoints": ".pt"}[target]
        victim = rng.choice(sorted((store / target).glob(f"*{suffix}")))
        damage(victim, how, rng, store)
        counts[f"{target}/{how}"] += 1
        tracebacks = 0
        warned = False
        for cmd in (["query", str(store), "SELECT count(*) FROM runs"], ["report", str(store)],
                    ["verify", str(store)], ["check", str(store)]):
            code, out, crash = invoke(*cmd)
            tracebacks += crash or "Traceback" in out
            warned |= "warning:" in out or "damaged" in out or "orphan" in out or "missing" in out
        code, out, crash = invoke("run", str(exp), "--store", str(store))
        tracebacks += crash or "Traceback" in out
        counts["run exit 0"] += code == 0
        counts["damage reported before run"] += warned
        done = re.search(r"trained (\d+) cells, skipped", out)
        counts["cells retrained"] += int(done.group(1)) if done else 0
        after = RunStore.open(store)
        problems = after.problems(full=True)
        equal = (len(after.completed_cells()) == n_cells and not problems
                 and metrics_of(after) == ref_metrics and _same_params(params_of(after), ref_params))
        counts["stores equal to the reference"] += equal
        counts["tracebacks"] += tracebacks
        if not equal or tracebacks or code != 0:
            failures.append(f"trial {trial} ({target}/{how} on {victim.name}): equal={equal} "
                            f"tracebacks={tracebacks} exit={code} problems={[p.line() for p in problems]}")
        shutil.rmtree(store)

    print(f"corruption soak: {args.trials} trials on a store of {n_cells} cells (seed {args.seed})")
    for key in sorted(k for k in counts if "/" in k):
        print(f"  {key:28s} {counts[key]}")
    for key in ("damage reported before run", "run exit 0", "cells retrained", "stores equal to the reference",
                "tracebacks"):
        print(f"  {key:28s} {counts[key]}")
    for line in failures:
        print("FAILED", line)
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failures else 0


def _same_params(a: dict[str, dict[str, torch.Tensor]], b: dict[str, dict[str, torch.Tensor]]) -> bool:
    return a.keys() == b.keys() and all(
        a[c].keys() == b[c].keys() and all(torch.equal(a[c][k], b[c][k]) for k in a[c]) for c in a)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
