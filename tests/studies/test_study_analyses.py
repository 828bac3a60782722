"""The studies' own analyses: bernstein_lr_transfer v2 (best lr per width, signed slope, grid
extension rule, deterministic given the store) and orabona_architecture_flips (winners table,
Mann-Whitney + Holm verdict), against closed forms and scipy."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

STUDIES_DIR = Path(__file__).resolve().parents[2] / "studies"


def _analysis(folder: str):
    spec = importlib.util.spec_from_file_location(f"analysis_{folder}", STUDIES_DIR / folder / "analyse.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


LR = _analysis("bernstein_lr_transfer")
FLIPS = _analysis("orabona_architecture_flips")


def test_lattice_round_trips_and_refuses_off_lattice_lrs():
    assert [LR.lattice_lr("adam", k) for k in range(-1, 3)] == [0.000316, 0.001, 0.00316, 0.01]
    assert [LR.lattice_lr("modular", k) for k in range(0, 4)] == [0.02, 0.0632, 0.2, 0.632]
    assert all(LR.lattice_k("modular", LR.lattice_lr("modular", k)) == k for k in range(-6, 8))
    with pytest.raises(SystemExit, match="not on its half-decade lattice"):
        LR.lattice_k("adam", 0.002)


def test_best_log_lr_is_the_vertex_of_the_parabola_through_the_best_point():
    x = np.log10([1e-3, 3.16e-3, 1e-2, 3.16e-2])
    vertex = -2.3
    medians = 0.7 * (x - vertex) ** 2 + 1.0  # exact parabola: the refinement recovers its vertex
    assert LR.best_log_lr(x, medians) == pytest.approx(vertex, abs=1e-9)
    # best point on the edge: kept there (no extrapolation)
    assert LR.best_log_lr(x, np.array([1.0, 2.0, 3.0, 4.0])) == pytest.approx(x[0])
    # a diverged neighbour (+inf): no parabola, the grid point itself
    assert LR.best_log_lr(x, np.array([2.0, 1.0, math.inf, 3.0])) == pytest.approx(x[1])


def _synthetic(best_log: dict[str, dict[int, float]], ks: range, seeds: int = 3) -> dict:
    """Losses that are exact parabolas in log10 lr around the given best lr per row, plus a
    per-seed offset (the median's seed then carries the curve)."""
    data = {}
    for name, by_width in best_log.items():
        for width, b in by_width.items():
            data.setdefault(name, {})[width] = {
                k: np.array([(math.log10(LR.lattice_lr(name, k)) - b) ** 2 + 0.01 * s for s in range(seeds)])
                for k in ks
            }
    return data


def test_slope_is_the_least_squares_slope_of_log_best_lr_on_log_width():
    widths = [16, 32, 64, 128, 256]
    best = {"adam": {w: -1.5 - 0.4 * math.log10(w / 16) + 0.03 * (i % 2) for i, w in enumerate(widths)},
            "modular": {w: -0.7 + 0.05 * i for i, w in enumerate(widths)}}
    slope, refined = LR.slopes(_synthetic(best, range(-2, 8)))
    for name in best:
        for w in widths:  # the lattice point nearest the optimum lies inside: the parabola is exact
            assert refined[name][w] == pytest.approx(best[name][w], abs=1e-6)
        reference = stats.linregress(np.log10(widths), [best[name][w] for w in widths]).slope
        assert slope[name] == pytest.approx(reference, abs=1e-6)


def test_edges_name_the_next_lattice_point_beyond_a_best_point_on_the_edge():
    best = {"adam": {16: math.log10(1e-3) - 0.2, 32: math.log10(1e-2)}, "modular": {16: math.log10(0.2), 32: 0.5}}
    data = _synthetic(best, range(0, 5))
    assert LR.edges(data) == [("adam", 16, -1), ("modular", 32, 5)]


def _tiny_store(tmp_path: Path) -> Path:
    from optiscope.config import load_config
    from optiscope.engine.runner import run_experiment
    from optiscope.store import RunStore

    text = (STUDIES_DIR / "bernstein_lr_transfer" / "study.toml").read_text()
    for old, new in (("seeds = 8", "seeds = 2"), ("steps = 100", "steps = 2"), ("eval_every = 100", "eval_every = 2"),
                     ("log_every = 50", "log_every = 2"), ("hidden = [16, 32, 64, 128, 256]", "hidden = [4, 8]")):
        assert old in text, old
        text = text.replace(old, new)
    config = tmp_path / "tiny.toml"
    config.write_text(text)
    store = tmp_path / "runs"
    run_experiment(load_config(config), RunStore.create(store), config_text=text)
    return store


def test_lr_transfer_analysis_extends_edges_and_is_deterministic_given_the_store(tmp_path):
    store = _tiny_store(tmp_path)
    first = LR.analyse(store, resamples=200)
    # 2 steps: the largest lr is best, so the rule must have trained lattice points beyond the grid
    assert first["extension_cells_trained_now"]
    assert first["verdict"] in ("holds", "fails", "inconclusive", "invalid")
    data, seeds = LR.load(store)
    assert seeds == [0, 1]
    on_edge = {(n, w) for n, w, _ in LR.edges(data)}
    for name, by_width in data.items():  # every row off its edge, or at the cap
        for width, by_k in by_width.items():
            initial = LR._initial_ks({"optimizers": [{"name": "adam", "lr": [1e-3, 0.00316, 0.01, 0.0316, 0.1]},
                                                     {"name": "steepest", "label": "modular", "lr": [0.02, 0.0632, 0.2, 0.632, 2.0]}]}, name)
            capped = min(by_k) == min(initial) - LR.MAX_EXTENSIONS or max(by_k) == max(initial) + LR.MAX_EXTENSIONS
            assert (name, width) not in on_edge or capped
    again, third = LR.analyse(store, resamples=200), LR.analyse(store, resamples=200)
    assert again["extension_cells_trained_now"] == []  # nothing left to train
    assert json.dumps(again, sort_keys=True, default=str) == json.dumps(third, sort_keys=True, default=str)
    first.pop("extension_cells_trained_now"), again.pop("extension_cells_trained_now")
    assert json.dumps(first, sort_keys=True, default=str) == json.dumps(again, sort_keys=True, default=str)


def test_winners_table_tests_winner_against_runner_up_with_holm(monkeypatch):
    rng = np.random.default_rng(1)
    acc = {"CNN": {"adam": 0.80 + 0.01 * rng.standard_normal(12), "sgd_momentum": 0.85 + 0.01 * rng.standard_normal(12)},
           "MLP": {"adam": 0.70 + 0.01 * rng.standard_normal(12), "sgd_momentum": 0.65 + 0.01 * rng.standard_normal(12)}}
    lrs = {"CNN": {"adam": 0.003, "sgd_momentum": 0.1}, "MLP": {"adam": 0.01, "sgd_momentum": 0.2}}
    monkeypatch.setattr(FLIPS, "load", lambda store: (acc, lrs))
    out = FLIPS.analyse(Path("unused"))
    assert out["winners"] == {"CNN": "sgd_momentum", "MLP": "adam"} and out["verdict"] == "holds"
    p = [stats.mannwhitneyu(acc[a][w], acc[a][r], alternative="two-sided").pvalue
         for a, w, r in (("CNN", "sgd_momentum", "adam"), ("MLP", "adam", "sgd_momentum"))]
    lo, hi = sorted(p)
    expected = {"CNN": None, "MLP": None}
    for arch, pv in zip(("CNN", "MLP"), p, strict=True):  # Holm by hand for two p-values
        expected[arch] = min(1.0, 2 * lo) if pv == lo else max(min(1.0, 2 * lo), hi)
    for arch in ("CNN", "MLP"):
        assert out["table"][arch]["p_holm"] == pytest.approx(expected[arch], abs=1e-5)
    # the same winner on both, significantly: no flip
    acc["MLP"] = {"adam": acc["MLP"]["sgd_momentum"], "sgd_momentum": acc["MLP"]["adam"]}
    assert FLIPS.analyse(Path("unused"))["verdict"] == "fails"
    # a flip whose one side is noise: not decided
    acc["MLP"] = {"adam": 0.70 + 0.01 * rng.standard_normal(12), "sgd_momentum": 0.70 + 0.01 * rng.standard_normal(12)}
    assert FLIPS.analyse(Path("unused"))["verdict"] == "inconclusive"
