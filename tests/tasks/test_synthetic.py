"""Synthetic functions: listed minimisers are minimisers (f(x*) = f*, zero gradient, PSD Hessian,
checked with torch.autograd in float64), instances move the minimiser where we say, basins are
read off correctly, and the gradient noise has the stated mean and variance."""

from __future__ import annotations

import math

import pytest
import torch
from torch.func import grad, hessian

from optiscope.config import effective_task_settings
from optiscope.tasks import TASKS, make_task
from optiscope.tasks.synthetic import SyntheticFunction

NAMES = sorted(n for n, c in TASKS.items() if c.family == "synthetic")
ANY_DIM = {"sphere", "quadratic", "rosenbrock", "rastrigin", "ackley", "griewank", "levy", "styblinski-tang"}


def instances():
    for name in NAMES:
        dims = (2, 5) if name in ANY_DIM else (None,)
        for dim in dims:
            yield pytest.param(name, {} if dim is None else {"dim": dim}, id=f"{name}-{dim or 2}")


def test_at_least_twelve_functions_with_the_issue_names():
    required = {"sphere", "quadratic", "rosenbrock", "rastrigin", "ackley", "griewank", "levy",
                "styblinski-tang", "himmelblau", "beale", "goldstein-price", "six-hump-camel", "booth"}
    assert required <= set(NAMES)


@pytest.mark.parametrize(("name", "settings"), list(instances()))
def test_every_listed_global_minimiser_has_f_star_and_zero_gradient(name, settings):
    task: SyntheticFunction = make_task(name, **settings)
    scale = max(1.0, abs(task.f_star))
    for z in task.minimizers().double():
        assert float(task.f(z)) == pytest.approx(task.f_star, abs=1e-12 * scale)
        g = grad(task.f)(z)
        assert float(torch.linalg.vector_norm(g)) <= 1e-9 * scale, (z, g)
        if name != "ackley":  # Ackley has a cone at 0: no Hessian there
            assert float(torch.linalg.eigvalsh(hessian(task.f)(z)).min()) >= -1e-9 * scale


@pytest.mark.parametrize("name", [n for n in NAMES if make_task(n).local_minimizers().shape[0] > 0])
def test_listed_local_minima_are_strict_local_minima_above_f_star(name):
    task = make_task(name)
    for z in task.local_minimizers():
        g = grad(task.f)(z)
        h = hessian(task.f)(z)
        assert float(torch.linalg.vector_norm(g)) <= 1e-8 * max(1.0, float(abs(task.f(z))))
        assert float(torch.linalg.eigvalsh(h).min()) > 0
        assert float(task.f(z)) > task.f_star + 1e-6


def test_optimal_values_match_the_literature():
    # Surjanovic & Bingham's virtual library of simulation experiments (rounded values)
    assert make_task("six-hump-camel").f_star == pytest.approx(-1.0316, abs=1e-4)
    assert make_task("styblinski-tang", dim=3).f_star == pytest.approx(-39.16599 * 3, abs=1e-3 * 3)
    assert make_task("goldstein-price").f_star == 3.0
    assert make_task("himmelblau").minimizers().shape == (4, 2)
    assert make_task("six-hump-camel").minimizers().shape == (2, 2)
    assert make_task("six-hump-camel").local_minimizers().shape == (4, 2)
    assert make_task("three-hump-camel").local_minimizers().shape == (2, 2)


@pytest.mark.parametrize("name", ["himmelblau", "six-hump-camel", "rosenbrock", "quadratic"])
def test_instance_moves_each_minimiser_to_shift_plus_rotated_point(name):
    task = make_task(name, rotate=True, shift=2.0)
    seeds = torch.tensor([0, 7])
    batch = task.eval_batch(seeds, 0)
    for i, seed in enumerate(seeds.tolist()):
        for k, x_star in enumerate(task.minimizers_x(seed)):
            params = {"x": x_star.float()}
            member = batch.member(i)
            out = task.evaluate(params, member)
            assert float(out["f_gap"]) == pytest.approx(0.0, abs=1e-4)
            assert float(out["dist_to_min"]) <= 1e-5
            assert int(out["basin"]) == k


def test_rotation_is_orthogonal_and_instances_differ_by_seed():
    task = make_task("sphere", dim=6)
    r0, s0 = task.instance(0)
    r1, s1 = task.instance(1)
    assert torch.allclose(r0 @ r0.T, torch.eye(6), atol=1e-6)
    assert not torch.allclose(r0, r1) and not torch.allclose(s0, s1)


def test_basin_index_reads_a_local_minimum_of_six_hump_camel():
    task = make_task("six-hump-camel", rotate=True, shift=1.0)
    rot, shift = task.instance(3)
    batch = task.eval_batch(torch.tensor([3]), 0).member(0)
    for j, z in enumerate(task.local_minimizers()):
        x = shift + (z.float() @ rot)  # x = shift + R^T z
        out = task.evaluate({"x": x + 1e-3}, batch)
        assert int(out["basin"]) == 2 + j  # two globals come first
        assert float(out["dist_to_min"]) > 0.5


def test_gradient_noise_is_unbiased_with_the_set_standard_deviation():
    task = make_task("quadratic", dim=3, noise=0.5)
    x = task.init_params(0)
    clean = grad(lambda p: task.value(p, task.eval_batch(torch.tensor([0]), 0).member(0)))(x)["x"]
    batch = task.train_batch(torch.tensor([0]), 5).member(0)
    assert torch.allclose(grad(task.loss)(x, batch)["x"] - clean, batch["noise"], atol=1e-5)
    noise = torch.stack([task.train_batch(torch.tensor([0]), step).member(0)["noise"] for step in range(2000)])
    assert torch.allclose(noise.mean(0), torch.zeros(3), atol=4 * 0.5 / math.sqrt(2000))
    assert torch.allclose(noise.std(0), torch.full((3,), 0.5), rtol=0.06)


def test_ackley_gradient_at_its_minimum_is_zero_not_nan():
    task = make_task("ackley", dim=4)
    g = grad(task.f)(torch.zeros(4))
    assert torch.equal(g, torch.zeros(4))


def test_quadratic_and_rosenbrock_keep_their_settings():
    assert effective_task_settings("quadratic", {}) == {
        "dim": 10, "condition": 100.0, "rotate": True, "shift": 2.0, "noise": 0.0}
    assert effective_task_settings("rosenbrock", {}) == {"dim": 2, "rotate": False, "shift": 1.0, "noise": 0.0}
    q = make_task("quadratic", condition=10.0, dim=3)
    assert (q.dim, q.condition, q.rotate, q.shift, q.noise) == (3, 10.0, True, 2.0, 0.0)
