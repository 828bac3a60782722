"""The representation probe: cross-class cosine of class-mean activations and the effective rank
of the activations, against scikit-learn's cosine_similarity and numpy's SVD."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics.pairwise import cosine_similarity

from optiscope.engine.ensemble import stack_init
from optiscope.errors import OptiscopeError
from optiscope.probes.network import class_mean_cosine, representation_effective_rank
from optiscope.probes.registry import TIERS, metric_info
from optiscope.probes.schedule import ProbeConfig
from optiscope.probes.trajectory import compute_probes, probe_batch
from optiscope.tasks import make_task


def reference_class_cosine(a: np.ndarray, y: np.ndarray) -> float:
    """Class means with numpy, their pairwise cosines with scikit-learn, mean off the diagonal
    over the classes present."""
    classes = np.unique(y)
    means = np.stack([a[y == c].mean(0) for c in classes])
    cos = cosine_similarity(means)
    return float(cos[~np.eye(len(classes), dtype=bool)].mean())


def reference_eff_rank(a: np.ndarray) -> float:
    s = np.linalg.svd(a, compute_uv=False)
    p = s / s.sum()
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


def test_class_cosine_and_eff_rank_match_sklearn_and_numpy_on_random_data():
    rng = np.random.default_rng(0)
    a = np.maximum(rng.normal(size=(3, 60, 16)), 0)  # 3 members, ReLU-like activations
    y = rng.integers(0, 5, size=(3, 60))
    got_cos = class_mean_cosine(torch.from_numpy(a), torch.from_numpy(y)).numpy()
    got_rank = representation_effective_rank(torch.from_numpy(a)).numpy()
    for i in range(3):
        assert got_cos[i] == pytest.approx(reference_class_cosine(a[i], y[i]), abs=1e-12)
        assert got_rank[i] == pytest.approx(reference_eff_rank(a[i]), abs=1e-10)
    # signed activations (GELU, tanh) give negative cosines too
    b = rng.normal(size=(40, 6))
    yb = np.repeat(np.arange(4), 10)
    assert float(class_mean_cosine(torch.from_numpy(b), torch.from_numpy(yb))) == pytest.approx(
        reference_class_cosine(b, yb), abs=1e-12)


def test_closed_forms_orthogonal_classes_and_a_rank_one_matrix():
    # each class fires its own unit: class means orthogonal, cosine 0; one-hot rows: rank = classes
    y = torch.arange(4).repeat(5)
    a = torch.nn.functional.one_hot(y, 4).double() * 2.0
    assert float(class_mean_cosine(a, y)) == 0.0
    assert float(representation_effective_rank(a)) == pytest.approx(4.0, abs=1e-12)
    # every example the same direction: cosine 1, effective rank 1
    a1 = torch.rand(20, 1, dtype=torch.float64) + 0.5
    same = a1 * torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float64)
    assert float(class_mean_cosine(same, y)) == pytest.approx(1.0, abs=1e-12)
    assert float(representation_effective_rank(same)) == pytest.approx(1.0, abs=1e-6)


def test_a_class_absent_from_the_batch_is_skipped():
    rng = np.random.default_rng(1)
    a = np.abs(rng.normal(size=(30, 8)))
    y = rng.choice([0, 1, 3, 4], size=30)  # class 2 absent; n_classes 5 given
    y[:4] = [0, 1, 3, 4]
    got = float(class_mean_cosine(torch.from_numpy(a), torch.from_numpy(y), n_classes=5))
    assert got == pytest.approx(reference_class_cosine(a, y), abs=1e-12)  # pairs of the 4 present classes


def test_all_zero_activations_give_nan_not_inf():
    a = torch.zeros(2, 12, 5)
    y = torch.arange(3).repeat(4).expand(2, 12)
    assert torch.isnan(class_mean_cosine(a, y)).all()
    assert torch.isnan(representation_effective_rank(a)).all()
    # one class all zero (dead for it): left out, the others' pair remains
    b = torch.rand(12, 5) + 0.1
    b[y[0] == 2] = 0
    y0 = y[0]
    ref = reference_class_cosine(b[y0 != 2].numpy().astype(np.float64), y0[y0 != 2].numpy())
    assert float(class_mean_cosine(b, y0)) == pytest.approx(ref, abs=1e-6)
    # one class only: no pair, NaN
    assert torch.isnan(class_mean_cosine(torch.rand(6, 3), torch.zeros(6, dtype=torch.long)))


def test_shapes_are_checked():
    with pytest.raises(OptiscopeError, match="disagree"):
        class_mean_cosine(torch.rand(5, 3), torch.zeros(4, dtype=torch.long))
    with pytest.raises(OptiscopeError, match="examples, units"):
        representation_effective_rank(torch.rand(5))


def _trained_digits(steps: int = 150) -> tuple:
    """Two digits-mlp members trained with torch.optim.Adam, one by one (not the engine)."""
    task = make_task("digits-mlp", hidden=32, depth=2, batch_size=64)
    seeds = [0, 1]
    stacked = stack_init(task, seeds)
    trained = {k: v.clone() for k, v in stacked.items()}
    for i, seed in enumerate(seeds):
        p = {k: v[i].clone().requires_grad_(True) for k, v in stacked.items()}
        opt = torch.optim.Adam(p.values(), lr=3e-3)
        for step in range(steps):
            b = task.train_batch(torch.tensor([seed]), step).member(0)
            opt.zero_grad()
            task.loss(p, b).backward()
            opt.step()
        for k in p:
            trained[k][i] = p[k].detach()
    return task, torch.tensor(seeds), trained


def test_the_probe_on_trained_members_matches_a_numpy_forward_pass():
    task, seeds, params = _trained_digits()
    out = compute_probes(task, params, None, seeds, ProbeConfig(probes=["representation"]))
    assert set(out) == {f"{m}/layer{k}" for m in ("class_cosine", "rep_eff_rank") for k in (1, 2)}
    batch = probe_batch(task, seeds, "cpu")
    for i in range(2):
        x = batch.per_member["x"][i].double().numpy()
        y = batch.per_member["y"][i].numpy()
        h = x
        for k in (1, 2):
            w = params[f"layer{k}.weight"][i].double().numpy()
            bias = params[f"layer{k}.bias"][i].double().numpy()
            h = np.maximum(h @ w.T + bias, 0)
            assert float(out[f"class_cosine/layer{k}"][i]) == pytest.approx(reference_class_cosine(h, y), abs=1e-5)
            assert float(out[f"rep_eff_rank/layer{k}"][i]) == pytest.approx(reference_eff_rank(h), rel=1e-4)
    # training separates the classes: the trained net's cosine is below its initialisation's
    init = compute_probes(task, stack_init(task, [0, 1]), None, seeds, ProbeConfig(probes=["representation"]))
    assert (out["class_cosine/layer2"] < init["class_cosine/layer2"]).all()


def test_the_probe_is_cheap_declared_and_skips_non_classifiers():
    assert "representation" in TIERS["cheap"]
    assert metric_info("class_cosine/layer1").description.startswith("mean over pairs")
    assert metric_info("rep_eff_rank/layer1") is not None
    task = make_task("least-squares")
    seeds = torch.arange(2)
    assert compute_probes(task, stack_init(task, [0, 1]), None, seeds, ProbeConfig(probes=["representation"])) == {}
