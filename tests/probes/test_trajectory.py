"""Probes in experiments: a [probes] section runs through the engine into the store."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from optiscope.engine.ensemble import stack_init
from optiscope.probes import r_med, top_hessian_eigenvalues
from optiscope.probes.schedule import ProbeConfig
from optiscope.probes.trajectory import compute_probes, is_probe_metric, probe_batch, representation_fn
from optiscope.tasks import make_task


def test_probe_metrics_land_in_the_store_at_the_cadence(probed_store):
    d = probed_store.fetch("SELECT name, step, count(*) AS n FROM metrics GROUP BY name, step")
    by_name: dict[str, dict[int, int]] = {}
    for name, step, n in zip(d["name"], d["step"], d["n"], strict=True):
        by_name.setdefault(str(name), {})[int(step)] = int(n)
    expected = [
        "r_med/layer1.weight", "r_med/head.bias", "hessian_trace", "top_eig", "noise_scale",
        "grad_norm", "eff_rank/layer1.weight", "sparsity@1e-3/head.weight", "dist_from_init/layer1.weight",
        "margin", "dead_units/layer1", "cka/layer1", "barrier_to_next", "spectrum_negative_mass",
        "class_cosine/layer1", "rep_eff_rank/layer1",
    ]
    for name in expected:
        assert by_name.get(name) == {0: 6, 6: 6, 12: 6}, name  # 2 cells x 3 members per step
    assert by_name["update_ratio/layer1.weight"] == {6: 6, 12: 6}  # needs the step before
    samples = probed_store.fetch("SELECT DISTINCT value FROM metrics WHERE name = 'r_med_samples'")
    assert samples["value"].tolist() == [float(ProbeConfig().samples)]  # the estimator used, recorded
    assert all(is_probe_metric(n) for n in expected) and not is_probe_metric("test_acc")


def test_probe_values_are_finite_and_plausible(probed_store):
    d = probed_store.fetch("SELECT name, value FROM metrics WHERE step = 12")
    values: dict[str, list[float]] = {}
    for n, v in zip(d["name"], d["value"], strict=True):
        values.setdefault(str(n), []).append(float(v))
    for name in ("hessian_trace", "top_eig", "grad_norm", "eff_rank/layer1.weight"):
        assert np.all(np.isfinite(values[name])), name
    assert np.all(np.array(values["top_eig"]) > 0)
    assert np.all(np.array(values["dist_from_init/layer1.weight"]) > 0)
    assert np.all((np.array(values["cka/layer1"]) > 0) & (np.array(values["cka/layer1"]) <= 1 + 1e-6))
    assert np.all(np.array(values["barrier_to_next"]) >= 0)


def test_compute_probes_agrees_with_the_public_functions_per_member():
    """The runner's shared-operator path gives what the public API gives member by member."""
    task = make_task("mnist1d-mlp", hidden=2, depth=1)  # 112 parameters: Lanczos runs to the end
    seeds = torch.arange(2)
    params = stack_init(task, [0, 1])
    batch = probe_batch(task, seeds, "cpu")
    cfg = ProbeConfig(probes=["r_med", "top_eig"], lanczos_steps=112, top_k=2)
    out = compute_probes(task, params, None, seeds, cfg)
    for i in range(2):
        p_i = {k: v[i] for k, v in params.items()}
        b_i = batch.member(i)
        rm = r_med(task.loss, p_i, batch=b_i)
        assert rm.estimator == "exact"
        for k in params:
            assert float(out[f"r_med/{k}"][i]) == pytest.approx(float(rm[k]), rel=1e-4)
        eig = top_hessian_eigenvalues(task.loss, p_i, k=2, iterations=112, batch=b_i)
        assert float(out["top_eig"][i]) == pytest.approx(float(eig.values[0]), rel=1e-4)
        assert float(out["top_eig_2"][i]) == pytest.approx(float(eig.values[1]), rel=1e-4)


def test_synthetic_tasks_get_the_probes_that_apply():
    task = make_task("quadratic")
    seeds = torch.arange(3)
    params = stack_init(task, [0, 1, 2])
    out = compute_probes(task, params, params, seeds, ProbeConfig(tier="full"))
    assert "hessian_trace" in out and "r_med/x" in out and "top_eig" in out
    assert "margin" not in out and "noise_scale" not in out  # not a classifier; no examples
    assert all(v.shape == (3,) for v in out.values())


def test_representations_follow_the_mlp_layout():
    task = make_task("mnist1d-mlp", hidden=5, depth=2)
    reps = representation_fn(task)
    params = task.init_params(0)
    x = torch.randn(7, 40)
    out = reps(params, {"x": x})
    h1 = torch.relu(x @ params["layer1.weight"].T + params["layer1.bias"])
    torch.testing.assert_close(out["layer1"], h1)
    assert out["layer2"].shape == (7, 5)


def test_a_diverged_member_gets_nan_and_the_others_their_values():
    task = make_task("mnist1d-mlp", hidden=4, depth=1)
    seeds = torch.arange(3)
    params = stack_init(task, [0, 1, 2])
    broken = {k: v.clone() for k, v in params.items()}
    broken["layer1.weight"][1] = float("nan")
    cfg = ProbeConfig(tier="full", exact_diagonal_max=0)
    out = compute_probes(task, broken, params, seeds, cfg, step=3)
    clean = compute_probes(task, params, params, seeds, cfg, step=3)
    for name, v in out.items():
        assert torch.isnan(v[1]), name
        if name == "barrier_to_next":  # member 0's partner is the diverged member 1
            assert torch.isnan(v[0]) and float(v[2]) == pytest.approx(float(clean[name][2]))
        elif name.startswith("cka/"):  # the others' mean CKA leaves member 1 out
            assert torch.isfinite(v[[0, 2]]).all()
        else:
            torch.testing.assert_close(v[[0, 2]], clean[name][[0, 2]], equal_nan=True)


def test_full_tier_runs_on_matrix_factorization(tmp_path):
    """Regression: the loss barrier's nested vmap once broke F.mse_loss-based tasks."""
    from optiscope.config import parse_config
    from optiscope.engine.runner import run_experiment
    from optiscope.store import RunStore

    cfg = parse_config({
        "experiment": {"name": "mf", "seeds": 2, "steps": 2, "eval_every": 2},
        "tasks": [{"name": "matrix-factorization"}],
        "optimizers": [{"name": "sgd", "lr": 0.01}],
        "probes": {"tier": "full", "cadence": "every", "every": 2},
    })
    store = RunStore.create(tmp_path / "s")
    from optiscope.probes.schedule import probe_runner_from_config

    summary = run_experiment(cfg, store, probe_runner_factory=probe_runner_from_config)
    assert not summary.failed
    n = store.query("SELECT count(*) FROM metrics WHERE name = 'barrier_to_next'")[1][0][0]
    assert n == 4  # 2 members x steps 0 and 2
