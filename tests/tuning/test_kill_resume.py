"""Kill -9 during a tuning study, rerun: completed trials are not recomputed and the result equals
an uninterrupted study with the same seeds (the issue's Must-hold), through the real CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from optiscope.store import RunStore

EXPERIMENT = """
[experiment]
name = "kill-resume"
seeds = 2
steps = 150
eval_every = 50
log_every = 50
device = "cpu"

[[tasks]]
name = "rosenbrock"

[[optimizers]]
name = "adam"

[[optimizers]]
name = "sgd"
lr = 1e-4

[tuning]
metric = "f_gap"
sampler = "tpe"
trials = 12
batch = 2
seeds_per_trial = 2
[tuning.space.adam]
lr = { log_uniform = [1e-3, 1e-1] }
[tuning.space.sgd]
lr = { log_uniform = [1e-5, 1e-2] }
"""


def optiscope_run(config: Path, store: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", "from optiscope.cli import app; app()", "run", str(config), "--store", str(store)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def created_at(store: Path) -> dict[str, object]:
    cols = RunStore(store).fetch("SELECT cell_id, min(created_at) AS t FROM runs GROUP BY cell_id")
    return dict(zip(cols["cell_id"].tolist(), cols["t"].tolist(), strict=True))


@pytest.mark.slow
def test_kill_9_then_rerun_equals_an_uninterrupted_study(tmp_path):
    config = tmp_path / "exp.toml"
    config.write_text(EXPERIMENT)
    killed, reference = tmp_path / "killed", tmp_path / "reference"

    proc = optiscope_run(config, killed)
    deadline = time.monotonic() + 300
    while len(list((killed / "runs").glob("*.parquet"))) < 6:  # past the first round, mid-study
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    before = created_at(killed)
    assert 6 <= len(before) < 24  # the study was interrupted, not finished

    assert optiscope_run(config, killed).wait() == 0
    assert optiscope_run(config, reference).wait() == 0
    after = created_at(killed)
    assert all(after[c] == t for c, t in before.items())  # no completed trial was recomputed
    for name in ("trials.parquet", "final.parquet"):
        assert pq.read_table(killed / "tuning" / name).equals(pq.read_table(reference / "tuning" / name))
