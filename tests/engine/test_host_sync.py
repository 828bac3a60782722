"""The step loop without a host synchronisation per step.

Divergence is detected on the device and read back only at evaluation, probe, checkpoint and end
points (engine.trainer). Two checks: (1) stores trained with the deferred read-back equal the
stores the per-step host check wrote before it (a reference recorded with that code, checked in
as `data/host_sync_reference.json`: diverged members, their steps and the counters included);
(2) a counting test that fails if anything on the per-step path reads a device value on the host.

Regenerate the reference only on purpose: ``PYTHONPATH=src python tests/engine/test_host_sync.py``.
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from optiscope.config import parse_config
from optiscope.engine.runner import train_cells
from optiscope.engine.work import UnitContext
from optiscope.store import RunStore

REFERENCE = Path(__file__).parent / "data" / "host_sync_reference.json"

#: Seeds of a cell diverge at different steps (Rosenbrock from seeded starting points, gradient
#: descent with a step near the stability limit); one cell diverges entirely between two
#: evaluations (eval_every 10), which is where a deferred read-back must rewind its counters.
_ROSENBROCK = {"name": "rosenbrock"}
_EXPERIMENT = {"name": "sync", "seeds": 8, "steps": 20, "eval_every": 10, "log_every": 1}

SCENARIOS: dict[str, dict] = {
    "sgd-grid-packed": {"pack": True, "raw": {
        "experiment": _EXPERIMENT, "tasks": [_ROSENBROCK],
        "optimizers": [{"name": "sgd", "lr": [1e-3, 3e-3, 1e-2]}]}},
    "sgd-grid-alone": {"pack": False, "raw": {
        "experiment": _EXPERIMENT, "tasks": [_ROSENBROCK],
        "optimizers": [{"name": "sgd", "lr": [1e-3, 3e-3, 1e-2]}]}},
    "torch-sgd-loop": {"pack": False, "raw": {
        "experiment": _EXPERIMENT, "tasks": [_ROSENBROCK],
        "optimizers": [{"name": "torch.optim:SGD", "lr": [3e-3, 1e-2]}]}},
    "sam-closure": {"pack": False, "raw": {
        "experiment": _EXPERIMENT, "tasks": [_ROSENBROCK],
        "optimizers": [{"name": "sam", "rho": 0.01, "lr": [3e-3, 1e-2]}]}},
    "mlp-momentum-packed": {"pack": True, "raw": {
        "experiment": {"name": "sync", "seeds": 3, "steps": 12, "eval_every": 5, "log_every": 1},
        "tasks": [{"name": "mnist1d-mlp", "hidden": 16}],
        "optimizers": [{"name": "sgd", "lr": [0.05, 1e12], "momentum": 0.9}]}},
}

_RUN_COLUMNS = ("label", "seed", "member", "status", "diverged_step", "steps", "grad_evals",
                "func_evals", "mode")


def store_rows(store: RunStore) -> dict[str, list]:
    """Runs and metrics keyed by (label, seed), not cell ids (those may change for other
    reasons); wall-clock times left out."""
    runs = store.query(f"SELECT {', '.join(_RUN_COLUMNS)} FROM runs ORDER BY label, seed")[1]
    metrics = store.query(
        "SELECT r.label, r.seed, m.step, m.name, m.value FROM metrics m JOIN runs r USING (run_id) "
        "WHERE m.name <> 'time_s' ORDER BY ALL")[1]
    clean = [[*row[:4], None if row[4] is None or not math.isfinite(row[4]) else row[4]]
             for row in metrics]
    return {"runs": [list(r) for r in runs], "metrics": clean}


def train_scenario(name: str, root: Path) -> dict[str, list]:
    spec = SCENARIOS[name]
    store = RunStore.create(root / name)
    train_cells(parse_config(spec["raw"]).cells(), store, UnitContext("cpu"), pack=spec["pack"])
    return store_rows(store)


def _values(rows: list) -> np.ndarray:
    return np.array([np.nan if m[4] is None else m[4] for m in rows], dtype=float)


def _forcing_masked(monkeypatch, masked: bool) -> None:
    """Every Trainer masks (the GPU's way, nothing read back per step) or asks the host first
    (the CPU's own way, engine.trainer: a host read costs nothing there)."""
    from optiscope.engine.trainer import Trainer

    real_init = Trainer.__init__

    def init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        self.masked = masked

    monkeypatch.setattr(Trainer, "__init__", init)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_stores_equal_those_written_with_a_host_check_every_step(name, tmp_path, monkeypatch):
    ref = json.loads(REFERENCE.read_text())[name]
    stores = {}
    for masked in (True, False):
        _forcing_masked(monkeypatch, masked)
        stores[masked] = train_scenario(name, tmp_path / str(masked))
    # The two ways give the same store, bit for bit, in one process.
    assert stores[True]["runs"] == stores[False]["runs"]
    assert stores[True]["metrics"] == stores[False]["metrics"]
    got = stores[True]
    # Against the reference recorded with the per-step host check: status, diverged_step,
    # counters and which rows exist, exactly.
    assert got["runs"] == ref["runs"]
    assert any(r[3] == "diverged" for r in got["runs"])
    assert [m[:4] for m in got["metrics"]] == [m[:4] for m in ref["metrics"]]
    # Values to float32 rounding of another CPU: these runs sit at the edge of divergence, where
    # Rosenbrock amplifies a last-bit difference to 1.1e-3 relative by the last recorded step
    # (measured: reference from AVX-512, run with ATEN_CPU_CAPABILITY=default); 1e-2 leaves ~10x.
    np.testing.assert_allclose(_values(got["metrics"]), _values(ref["metrics"]), rtol=1e-2, atol=1e-6,
                               equal_nan=True)


def write_reference() -> None:
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as d:
        out = {name: train_scenario(name, Path(d)) for name in sorted(SCENARIOS)}
    REFERENCE.parent.mkdir(exist_ok=True)
    REFERENCE.write_text(json.dumps(out, separators=(",", ":")) + "\n")
    print(f"wrote {REFERENCE}", file=sys.stderr)


if __name__ == "__main__":
    write_reference()


# -- no host read on the per-step path ------------------------------------------------------------
#: The ways a tensor's value reaches the host: each is a synchronisation on a GPU.
_HOST_READS = ("__bool__", "item", "tolist", "__float__", "__int__", "__index__", "cpu", "numpy")

#: The trainer methods that are sync points (or run at one): host reads are allowed inside.
_SYNC_POINTS = ("sync", "log_eval", "log_probes", "result", "state")


def _per_member(values):
    return torch.tensor(values, dtype=torch.float64)


#: Adam (fused), Muon (Newton-Schulz + its AdamW part), SAM (a closure, two gradients), and an lr
#: grid packed as one ensemble (per-member lr and momentum: SGD with momentum, AdamW's decay).
OPTIMIZERS = {
    "adam": ("adam", {"lr": 1e-3}),
    "muon": ("muon", {}),
    "sam": ("sam", {"lr": 0.05}),
    "sgd-packed": ("sgd", {"lr": _per_member([0.05, 0.1, 0.2]), "momentum": _per_member([0.0, 0.9, 0.9])}),
    "adamw-packed": ("adamw", {"lr": _per_member([1e-3, 3e-3, 1e-2]),
                               "weight_decay": _per_member([0.0, 0.1, 0.1])}),
}


class HostReads:
    """Counts host reads of tensors on the meta device while a trainer runs there.

    A meta tensor has shapes but no values: it stands for a device the host cannot read without
    waiting. Outside the trainer's sync points every read is recorded (with the step); inside
    them reads are allowed and answered with a harmless value (no divergence, zeros).
    """

    def __init__(self, monkeypatch, trainer_cls):
        self.inside = 0
        self.outside: list[tuple[str, int, str]] = []
        self.allowed = 0
        self.trainer = None
        for name in _HOST_READS:
            monkeypatch.setattr(torch.Tensor, name, self._counting(name, getattr(torch.Tensor, name)))
        for name in _SYNC_POINTS:
            monkeypatch.setattr(trainer_cls, name, self._sync_point(getattr(trainer_cls, name)))

    def _counting(self, name, real):
        reads = self

        def read(t, *args, **kwargs):
            if t.device.type != "meta":
                return real(t, *args, **kwargs)
            if reads.inside:
                reads.allowed += 1
                return _harmless(name, t)
            import traceback
            where = "".join(traceback.format_stack(limit=4)[:-1])
            reads.outside.append((name, -1 if reads.trainer is None else reads.trainer.step, where))
            return _harmless(name, t)

        return read

    def _sync_point(self, real):
        reads = self

        def at_sync_point(trainer, *args, **kwargs):
            reads.inside += 1
            try:
                return real(trainer, *args, **kwargs)
            finally:
                reads.inside -= 1

        return at_sync_point


def _harmless(name: str, t: torch.Tensor):
    if name == "tolist":
        return [-1] * t.numel() if t.dtype == torch.long else [0.0] * t.numel()
    if name == "cpu":
        return torch.zeros(t.shape, dtype=t.dtype)
    if name == "numpy":
        return np.zeros(t.shape)
    return False if name == "__bool__" else 0


def _meta_trainer(optimizer: str, hp: dict):
    from optiscope.engine import EnsembleTrainer
    from optiscope.optim.registry import resolve_optimizer
    from optiscope.tasks import make_task

    task = make_task("mnist1d-mlp", hidden=16)
    return EnsembleTrainer(task, resolve_optimizer(optimizer), dict(hp), [0, 1, 2], device="meta")


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_no_host_read_between_two_evaluations(name, monkeypatch):
    from optiscope.engine.trainer import Trainer

    optimizer, hp = OPTIMIZERS[name]
    trainer = _meta_trainer(optimizer, hp)
    reads = HostReads(monkeypatch, Trainer)
    reads.trainer = trainer
    trainer.run(steps=12, eval_every=4, log_every=1)
    assert trainer.step == 12
    assert reads.outside == [], "host reads on the per-step path:\n" + "\n".join(
        f"{n} at step {s}:\n{w}" for n, s, w in reads.outside[:3])
    # The sync points did read (4 evaluations and the end): the count is not vacuous.
    assert reads.allowed >= 4


def test_a_host_read_added_to_the_step_is_caught(monkeypatch):
    """The counting test can fail: a per-step `bool(...)` on the divergence mask is found."""
    from optiscope.engine.trainer import Trainer

    real = Trainer._check_divergence

    def with_a_read(self, loss):
        real(self, loss)
        bool(self.frozen.any())  # what the loop did before: a synchronisation per step

    monkeypatch.setattr(Trainer, "_check_divergence", with_a_read)
    trainer = _meta_trainer("adam", {"lr": 1e-3})
    reads = HostReads(monkeypatch, Trainer)
    reads.trainer = trainer
    trainer.run(steps=8, eval_every=4, log_every=1)
    assert len(reads.outside) == 8 and {n for n, _, _ in reads.outside} == {"__bool__"}
