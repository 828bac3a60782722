"""Optuna's samplers and study storage, set up so that a resumed study equals an uninterrupted one.

A sampler's draws must not depend on how many processes the study took. So each trial is asked
with a fresh sampler seeded from (seed, study, trial number): RandomSampler and TPESampler then
draw from that seed and the study's completed trials, nothing else. QMCSampler walks one
scrambled Sobol sequence per study (seeded from (seed, study)); Optuna keeps its position in
the study's storage, and its first point (drawn independently) comes from the per-trial seed.

Storage is Optuna's JournalStorage on a file (`STORE/tuning/optuna.journal`): an append-only log
of operations, fsynced per write, from which a killed study is rebuilt.
"""

from __future__ import annotations

import os
import warnings
import zlib
from pathlib import Path

import numpy as np
import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.samplers import BaseSampler, QMCSampler, RandomSampler, TPESampler
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock

#: Seconds after which a lock left behind by a killed run is taken over (one driver per store).
LOCK_GRACE_S = 5


def _stream_key(stream: str) -> list[int]:
    """A search's name as seed words, so each (task, optimizer) search draws its own points:
    without it, trial n of every optimizer would sit at the same quantile of its range."""
    return [zlib.crc32(stream.encode())] if stream else []


def trial_seed(seed: int, study: int, trial: int, stream: str = "") -> int:
    """The seed of one trial's sampler: a function of (seed, study, search, trial number) only."""
    return int(np.random.SeedSequence([seed, study, trial, *_stream_key(stream)]).generate_state(1)[0])


def study_seed(seed: int, study: int, stream: str = "") -> int:
    """The seed of a search's QMC sequence (the same for every trial of the search)."""
    return int(np.random.SeedSequence([seed, study, *_stream_key(stream)]).generate_state(1)[0])


def make_sampler(kind: str, seed: int, study: int, trial: int, stream: str = "") -> BaseSampler:
    """The Optuna sampler that asks trial `trial` of study `study` for the search named `stream`
    (kind: random | qmc | tpe)."""
    per_trial = trial_seed(seed, study, trial, stream)
    if kind == "random":
        return RandomSampler(seed=per_trial)
    if kind == "tpe":
        return TPESampler(seed=per_trial)
    if kind == "qmc":
        with warnings.catch_warnings():  # "experimental since v3.0": the interface we use is stable
            warnings.simplefilter("ignore", ExperimentalWarning)
            return QMCSampler(
                scramble=True, seed=study_seed(seed, study, stream), independent_sampler=RandomSampler(seed=per_trial),
                warn_independent_sampling=False,
            )
    raise ValueError(f"unknown sampler '{kind}'; allowed: random, qmc, tpe")


def open_journal(path: Path) -> JournalStorage:
    """Optuna's journal storage at `path` (created if missing).

    A run killed in the middle of an append can leave a last line without its newline; Optuna
    skips such a line when reading but would break on the next append, so it is cut off first.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    _drop_torn_tail(path)
    lock = JournalFileSymlinkLock(str(path), grace_period=LOCK_GRACE_S)
    return JournalStorage(JournalFileBackend(str(path), lock_obj=lock))


def _drop_torn_tail(path: Path) -> None:
    if not path.exists() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if data.endswith(b"\n"):
        return
    keep = data.rfind(b"\n") + 1
    with open(path, "r+b") as f:
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())


def load_study(storage: JournalStorage, name: str, goal: str) -> optuna.Study:
    """The study `name` in `storage`, created on first use (direction from the metric's goal)."""
    direction = "minimize" if goal == "min" else "maximize"
    return optuna.create_study(storage=storage, study_name=name, direction=direction, load_if_exists=True)
