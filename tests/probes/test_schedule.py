"""The [probes] section: validation with named errors, cadences, and the runner's due steps."""

from __future__ import annotations

import pytest
import torch

from optiscope.config import parse_config
from optiscope.errors import OptiscopeError
from optiscope.probes.schedule import ProbeConfig, parse_probe_config, probe_runner_from_config
from optiscope.probes.trajectory import TrajectoryProbes


@pytest.mark.parametrize(
    ("raw", "needles"),
    [
        ({"tier": "fast"}, ["probes.tier", "'cheap', 'geometry' or 'full'"]),
        ({"cadence": "sometimes"}, ["probes.cadence", "'log' or 'every'"]),
        ({"every": 0}, ["probes.every", "greater than or equal to 1"]),
        ({"probes": ["trace", "hessian"]}, ["probes.probes", "hessian", "weights, gradient"]),
        ({"sampels": 3}, ["unknown field", "sampels", "samples"]),
        ({"sparsity_thresholds": [-1.0]}, ["sparsity_thresholds", ">= 0"]),
    ],
)
def test_bad_probe_config_names_field_and_allowed_values(raw, needles):
    with pytest.raises(OptiscopeError) as exc:
        parse_probe_config(raw)
    for n in needles:
        assert n in str(exc.value)


def test_experiment_config_validates_its_probes_table():
    base = {
        "experiment": {"name": "x", "seeds": 2, "steps": 10},
        "tasks": [{"name": "quadratic"}],
        "optimizers": [{"name": "sgd", "lr": 0.1}],
    }
    cfg = parse_config({**base, "probes": {"tier": "geometry", "every": 5, "cadence": "every"}})
    runner = probe_runner_from_config(cfg)
    assert isinstance(runner, TrajectoryProbes) and runner.config.tier == "geometry"
    assert probe_runner_from_config(parse_config(base)) is None
    with pytest.raises(OptiscopeError, match="probes.tier"):
        parse_config({**base, "probes": {"tier": "nope"}})


def test_every_cadence_includes_both_ends():
    assert ProbeConfig(cadence="every", every=4).steps(10) == [0, 4, 8, 10]


def test_log_cadence_is_log_spaced_with_both_ends():
    steps = ProbeConfig(cadence="log", points=12).steps(2000)
    assert steps[0] == 0 and steps[-1] == 2000 and len(steps) == 12
    gaps = [b / a for a, b in zip(steps[1:-1], steps[2:])]
    assert max(gaps) / min(gaps) < 1.5  # roughly constant ratio between probe steps


def test_tiers_nest():
    cheap, geometry, full = (set(ProbeConfig(tier=t).groups()) for t in ("cheap", "geometry", "full"))
    assert cheap < geometry < full
    assert ProbeConfig(tier="full", probes=["trace"]).groups() == ("trace",)


def test_runner_snapshots_the_step_before_each_probe_step():
    """The update ratio needs the parameters one step earlier: the runner is due there too."""
    runner = TrajectoryProbes(ProbeConfig(cadence="every", every=5, probes=["update"]))
    due = [s for s in range(11) if runner.due(s, 10)]
    assert due == [0, 4, 5, 9, 10]
    only_ratio = TrajectoryProbes(ProbeConfig(cadence="every", every=5, probes=["gradient"]))
    assert [s for s in range(11) if only_ratio.due(s, 10)] == [0, 5, 10]

    class Task:
        def roles(self):
            return {"w": "hidden"}

        def train_batch(self, seeds, step):
            from optiscope.tasks.base import MemberBatch

            return MemberBatch()

    w0 = {"w": torch.ones(2, 3, 3)}
    assert runner(Task(), w0, w0, torch.arange(2), 4) == {}  # the snapshot only
    out = runner(Task(), {"w": w0["w"] * 1.5}, w0, torch.arange(2), 5)
    torch.testing.assert_close(out["update_ratio/w"], torch.full((2,), 0.5))
