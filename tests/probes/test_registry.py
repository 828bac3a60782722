"""The probe registry: tiers and metric declarations are derived from each probe's own."""

from __future__ import annotations

import pytest
import torch

from optiscope.engine.ensemble import stack_init
from optiscope.errors import OptiscopeError
from optiscope.probes.catalog import PROBES
from optiscope.probes.quantity import ProbeMetric
from optiscope.probes.registry import (
    GLOBAL_METRICS,
    PROBE_GROUPS,
    TENSOR_PROPERTIES,
    TIERS,
    is_probe_metric,
    metric_info,
    probe,
    probe_metric_info,
    tier_groups,
)
from optiscope.probes.schedule import ProbeConfig
from optiscope.probes.trajectory import compute_probes
from optiscope.tasks import make_task


def test_tiers_nest_and_match_the_documented_lists():
    """The tier lists the `[probes]` documentation promises, now derived from each probe's tier."""
    assert set(TIERS["cheap"]) == {"weights", "gradient", "update", "network", "representation"}
    assert set(TIERS["geometry"]) == set(TIERS["cheap"]) | {"trace", "r_med", "top_eig"}
    assert set(TIERS["full"]) == set(TIERS["geometry"]) | {"noise_scale", "density", "cka", "barrier"}
    assert PROBE_GROUPS == TIERS["full"] == tier_groups("full")
    assert ProbeConfig(tier="geometry").groups() == TIERS["geometry"]


def test_unknown_probe_and_tier_are_named_with_the_choices():
    with pytest.raises(OptiscopeError, match="unknown probe 'trac'.*Did you mean 'trace'"):
        probe("trac")
    with pytest.raises(OptiscopeError, match="unknown probe tier 'fast'.*cheap, full, geometry"):
        tier_groups("fast")  # type: ignore[arg-type]
    assert probe("r_med").tier == "geometry" and "HVP" in probe("r_med").cost


@pytest.mark.parametrize(
    ("pattern", "name", "matches"),
    [
        ("r_med/{tensor}", "r_med/layer1.weight", True),
        ("r_med/{tensor}", "r_med_samples", False),
        ("r_med/{tensor}", "r_med/", False),
        ("top_eig_{k}", "top_eig_12", True),
        ("top_eig_{k}", "top_eig_x", False),
        ("sparsity@{threshold}/{tensor}", "sparsity@1e-3/head.weight", True),
        ("sparsity@{threshold}/{tensor}", "sparsity/head.weight", False),
        ("grad_norm", "grad_norm", True),
        ("grad_norm", "grad_norm2", False),
    ],
)
def test_metric_patterns_match_whole_names_only(pattern, name, matches):
    assert ProbeMetric(pattern).matches(name) is matches


def test_declarations_carry_goal_unit_and_description():
    info = metric_info("dead_units/layer1")
    assert (info.name, info.goal, info.unit) == ("dead_units/layer1", "min", "fraction")
    assert metric_info("margin").goal == "max"
    assert metric_info("eff_rank/layer1.weight").goal is None  # descriptive: no better direction
    assert metric_info("sparsity@1e-2/layer1.weight").unit == "fraction"
    assert all(metric_info(n).description for n in ("grad_norm", "top_eig_3", "r_med/x", "barrier_to_next"))
    assert metric_info("test_acc") is None and not is_probe_metric("batch_loss")
    names = ["test_loss", "hessian_trace", "cka/layer2", "time_s"]
    assert [i.name for i in probe_metric_info(names)] == ["hessian_trace", "cka/layer2"]


def test_the_derived_metric_lists():
    assert {"grad_norm", "hessian_trace", "top_eig", "margin", "barrier_to_next", "r_med_samples"} <= set(GLOBAL_METRICS)
    assert {"r_med", "update_ratio", "eff_rank", "dead_units", "cka", "hoyer"} <= set(TENSOR_PROPERTIES)
    assert not set(GLOBAL_METRICS) & set(TENSOR_PROPERTIES)


@pytest.mark.parametrize(
    ("task_name", "settings", "silent"),
    [
        ("mnist1d-mlp", {"hidden": 4, "depth": 2}, set()),
        ("quadratic", {}, {"network", "representation", "noise_scale", "cka"}),  # no classifier, examples or layers
        ("byte-transformer", {}, {"network", "representation", "cka"}),
    ],
)
def test_every_probe_writes_only_the_metrics_it_declares(task_name, settings, silent):
    """Each probe run alone: every name it returns matches one of its own declarations, and
    the probes that apply to the task write something."""
    task = make_task(task_name, **settings)
    seeds = torch.arange(2)
    params = stack_init(task, [0, 1])
    previous = {k: v * 0.99 for k, v in params.items()}
    cfg = ProbeConfig(samples=2, lanczos_steps=3, slq_steps=3, top_k=2)
    quiet = set()
    for p in PROBES:
        out = compute_probes(task, params, params, seeds, cfg, groups=(p.name,), previous=previous)
        for name in out:
            assert any(m.matches(name) for m in p.metrics), (p.name, name)
            assert metric_info(name) is not None, name
        if not out:
            quiet.add(p.name)
    assert quiet == silent
