"""The tuning section, from a hand-made store in the tuning protocol's layout (no tuning code runs):
its numbers against numpy/scipy computed here, trial cells kept out of the task sections, and the
HTML rendered."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest
from scipy import stats

from optiscope.report import build_report
from optiscope.report.data import StoreView
from optiscope.report.tuning_analysis import analyse_tuning
from optiscope.store import RunStore, atomic_write_parquet
from optiscope.store.schema import RUNS

from .conftest import declarations

TUNING_SEEDS = {0: [1_000_000, 1_000_001, 1_000_002], 1: [1_001_000, 1_001_001, 1_001_002]}
EVAL_SEEDS = list(range(6))
LRS = {"adam": [1e-4, 1e-3, 1e-2, 1e-1], "sgd": [1e-3, 1e-2, 1e-1, 1.0]}
HIDDEN = [16, 32, 16, 32]
#: Trial centres of val_loss: adam is best at hidden 16 and sgd at hidden 32 (the winner changes).
BASE = {("adam", 0): [0.9, 0.3, 0.5, None], ("adam", 1): [0.8, 0.35, 0.45, 0.7],
        ("sgd", 0): [0.6, 0.2, 0.9, 0.25], ("sgd", 1): [0.65, 0.22, 0.95, 0.3]}
FINAL_BASE = {("adam", "default", -1): 0.8, ("adam", "tuned", 0): 0.32, ("adam", "tuned", 1): 0.36,
              ("sgd", "default", -1): 1.5, ("sgd", "tuned", 0): 0.21, ("sgd", "tuned", 1): 0.40}


def land(store: RunStore, cell_id: str, label: str, role: str | None, seeds: list[int],
         metrics: dict[str, np.ndarray], *, settings: dict, optimizer: str, hp: dict,
         status: list[str] | None = None, goals: dict | None = None, task: str = "mnist1d-mlp") -> None:
    """One cell as landing writes it: `metrics[name]` is values[member, step] at steps 0 and 10."""
    status = status or ["ok"] * len(seeds)
    now = dt.datetime.now(dt.timezone.utc)
    runs = [{"run_id": f"{cell_id}-s{s}", "cell_id": cell_id, "experiment": "tuned", "task": task,
             "task_settings": json.dumps(settings, sort_keys=True), "optimizer": optimizer, "label": label,
             "hyperparameters": json.dumps(hp), "seed": s, "member": i, "status": status[i],
             "diverged_step": 5 if status[i] == "diverged" else None, "steps": 10, "grad_evals": 10,
             "wall_time_s": 1.0, "mode": "ensemble", "device": "cpu", "versions": "{}", "error": None,
             "created_at": now, **({} if role is None else {"role": role})} for i, s in enumerate(seeds)]
    rid, st, nm, val = [], [], [], []
    for name, values in metrics.items():
        for i, s in enumerate(seeds):
            for j, step in enumerate((0, 10)):
                if np.isfinite(values[i, j]):
                    rid.append(f"{cell_id}-s{s}"), st.append(step), nm.append(name), val.append(float(values[i, j]))
    store.write_cell(cell_id, runs, {"run_id": np.array(rid, dtype=object), "step": np.array(st, dtype=np.int64),
                                     "name": np.array(nm, dtype=object), "value": np.array(val)},
                     metric_info=declarations(cell_id, list(metrics), goals))


def two_steps(final: np.ndarray) -> np.ndarray:
    return np.stack([final + 1.0, final], axis=1)


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """Two optimizers, two studies of four trials (lr log-uniform, task.hidden a choice), one
    diverged trial, and the tuned/default finals on evaluation seeds (one default seed diverged)."""
    store = RunStore.create(tmp_path_factory.mktemp("tuning") / "store")
    rng = np.random.default_rng(7)
    trials, finals, truth = [], [], {}
    for (key, study), centres in BASE.items():
        for n, centre in enumerate(centres):
            seeds = TUNING_SEEDS[study]
            vals = (0.5 if centre is None else centre) + rng.normal(0, 0.02, 3)
            status = ["ok"] * 3
            if centre is None:
                vals[1], status[1] = np.nan, "diverged"
            params = {"lr": LRS[key][n], "task.hidden": HIDDEN[n]}
            cid = f"trial-{key}-{study}-{n}"
            label = f"{key} · trial {n}" if study == 0 else f"{key} · s{study} trial {n}"
            land(store, cid, label, "trial", seeds, {"val_loss": two_steps(vals), "val_acc": two_steps(1 - vals)},
                 settings={"hidden": HIDDEN[n], "eval_split": "validation"}, optimizer=key,
                 hp={"lr": LRS[key][n]}, status=status, goals={"val_acc": "max"})
            value = float(np.median(vals)) if centre is not None else float("inf")
            truth[(key, study, n)] = vals
            trials.append({"study": study, "optimizer_key": key, "optimizer": key, "trial": n,
                           "params": json.dumps(params), "cell_id": cid, "value": value,
                           "state": "complete" if centre is not None else "diverged", "task": "mnist1d-mlp"})
    for (key, kind, study), centre in FINAL_BASE.items():
        vals = centre + rng.normal(0, 0.03, len(EVAL_SEEDS))
        status = ["ok"] * len(EVAL_SEEDS)
        if (key, kind) == ("sgd", "default"):
            vals[2], status[2] = np.nan, "diverged"
        label = f"{key} default" if kind == "default" else f"{key} tuned s{study}"
        params = {} if kind == "default" else {"lr": LRS[key][1], "task.hidden": 32}
        cid = f"final-{key}-{kind}-{study}"
        land(store, cid, label, "final", EVAL_SEEDS, {"test_loss": two_steps(vals), "test_acc": two_steps(1 - vals)},
             settings={} if kind == "default" else {"hidden": 32}, optimizer=key,
             hp={"lr": 0.001} if kind == "default" else {"lr": LRS[key][1]}, status=status,
             goals={"test_acc": "max"})
        truth[(key, kind, study)] = np.where(np.isfinite(vals), vals, np.inf)
        finals.append({"study": study, "optimizer_key": key, "kind": kind, "cell_id": cid,
                       "params": json.dumps(params), "trial": -1 if kind == "default" else 1,
                       "task": "mnist1d-mlp"})
    # an ordinary experiment cell beside the protocol, written before the role column existed
    land(store, "plain", "plain sgd", None, [0, 1, 2], {"test_loss": two_steps(np.array([0.5, 0.6, 0.7]))},
         settings={}, optimizer="sgd", hp={"lr": 0.1})
    root = store.root / "tuning"
    root.mkdir()
    space = {k: {"lr": {"log_uniform": [LRS[k][0], LRS[k][-1]]}, "task.hidden": {"choice": [16, 32]}} for k in LRS}
    (root / "protocol.json").write_text(json.dumps({
        "metric": "val_loss", "final_metric": "test_loss", "goal": "min", "sampler": "tpe", "trials": 4,
        "seeds_per_trial": 3, "batch": 2, "studies": 2, "tuning_seeds": {str(k): v for k, v in TUNING_SEEDS.items()},
        "evaluation_seeds": EVAL_SEEDS, "space": space, "split": "validation", "default": True,
        "tasks": [{"key": "mnist1d-mlp", "task": "mnist1d-mlp", "settings": {}, "split": "validation"}]}))
    atomic_write_parquet(root / "trials.parquet", pa.Table.from_pylist(trials))
    atomic_write_parquet(root / "final.parquet", pa.Table.from_pylist(finals))
    return store, truth


@pytest.fixture(scope="module")
def analysis(tuned):
    store, _ = tuned
    a = analyse_tuning(StoreView.load(store))
    assert [t.task for t in a.tasks] == ["mnist1d-mlp"]
    return a.tasks[0]


def test_trial_cells_are_kept_out_of_the_task_sections(tuned):
    store, _ = tuned
    view = StoreView.load(store)
    assert len(view.trial_cells) == 16 and all(c.role == "trial" for c in view.trial_cells)
    assert {c.role for c in view.cells} == {"final", "cell"}  # a null role (older writer) is "cell"
    assert not any("eval_split" in t for t in view.tasks())
    assert "adam tuned s0" in [c.label for c in view.cells_of("mnist1d-mlp(hidden=32)")]


def test_a_store_without_the_role_column_has_only_ordinary_cells(tmp_path):
    store = RunStore.create(tmp_path / "old")
    land(store, "x", "X", None, [0, 1], {"f_gap": two_steps(np.array([1.0, 2.0]))}, settings={},
         optimizer="sgd", hp={})
    path = store.root / "runs" / "x.parquet"
    old = RUNS.remove(RUNS.get_field_index("role"))
    atomic_write_parquet(path, pa.Table.from_pylist(pa.parquet.read_table(path).drop(["role"]).to_pylist(), schema=old))
    view = StoreView.load(store)
    assert [c.role for c in view.cells] == ["cell"] and view.trial_cells == []


def test_sensitivity_is_each_trials_median_and_iqr_over_its_seeds(analysis, tuned):
    _, truth = tuned
    s = next(s for s in analysis.sensitivity if (s.key, s.dim) == ("adam", "lr"))
    assert s.scale == "log" and s.n_trials == 8 and s.n_worst == 1
    study, curve, numbers = s.by_study[0]
    assert study == 0 and numbers == [0, 1, 2, 3] and np.allclose(curve.x, LRS["adam"])
    for j, n in enumerate(numbers[:3]):
        v = truth[("adam", 0, n)]
        assert curve.median[j] == pytest.approx(np.median(v))
        assert (curve.low[j], curve.high[j]) == pytest.approx(tuple(np.quantile(v, [0.25, 0.75])))
    assert curve.n_finite[3] == 0 and curve.n[3] == 3  # the diverged trial: drawn at the worst edge
    assert s.best[0] == (0, 1e-3, pytest.approx(np.median(truth[("adam", 0, 1)])))  # final.parquet's trial
    cat = next(s for s in analysis.sensitivity if (s.key, s.dim) == ("sgd", "task.hidden"))
    assert cat.scale == "categorical" and cat.categories == [16, 32]
    assert sorted(cat.by_study[1][1].x.tolist()) == [0, 0, 1, 1]


def test_default_vs_tuned_gap_against_scipy_bootstrap(analysis, tuned):
    _, truth = tuned
    g = next(g for g in analysis.gaps if (g.key, g.study) == ("adam", 0))
    d, t = truth[("adam", "default", -1)], truth[("adam", "tuned", 0)]
    assert g.gain.estimate == pytest.approx(np.median(d) - np.median(t))
    ref = stats.bootstrap((d, t), lambda x, y, axis: np.median(x, axis=axis) - np.median(y, axis=axis),
                          n_resamples=2000, method="percentile", rng=np.random.default_rng(0), vectorized=True)
    assert (g.gain.low, g.gain.high) == pytest.approx((ref.confidence_interval.low, ref.confidence_interval.high))
    assert g.tuned.estimate == pytest.approx(np.median(t)) and g.gain.low > 0
    sgd = next(g for g in analysis.gaps if (g.key, g.study) == ("sgd", 0))
    assert sgd.n_default == (5, 6) and "diverged" in sgd.note  # counted as worst, never dropped
    assert sgd.gain.estimate == pytest.approx(np.median(truth[("sgd", "default", -1)]) - np.median(truth[("sgd", "tuned", 0)]))


def test_finals_are_compared_with_the_best_by_mann_whitney_and_holm(analysis, tuned):
    _, truth = tuned
    c = analysis.comparison
    labels = {("adam", "default", -1): "adam default", ("sgd", "default", -1): "sgd default"}
    labels.update({(k, "tuned", s): f"{k} tuned s{s}" for k in LRS for s in (0, 1)})
    medians = {labels[k]: np.median(v) for k, v in truth.items() if k in labels}
    best = min(medians, key=medians.get)
    assert c.best == best == "sgd tuned s0"
    raw = {labels[k]: stats.mannwhitneyu(v, truth[("sgd", "tuned", 0)], alternative="two-sided").pvalue
           for k, v in truth.items() if k in labels and labels[k] != best}
    order = sorted(raw, key=raw.get)
    holm = dict(zip(order, np.maximum.accumulate([min(1, (len(order) - i) * raw[k]) for i, k in enumerate(order)]),
                    strict=True))
    for r in c.rows:
        if r.label == best:
            assert r.vs_best is None
            continue
        x, y = truth[next(k for k, v in labels.items() if v == r.label)], truth[("sgd", "tuned", 0)]
        assert r.vs_best["pvalue"] == pytest.approx(raw[r.label])
        assert r.vs_best["pvalue_holm"] == pytest.approx(holm[r.label])
        a12 = np.mean((x[:, None] > y[None, :]) + 0.5 * (x[:, None] == y[None, :]))
        assert r.vs_best["a12"] == pytest.approx(a12) and r.vs_best["p_a_better"] == pytest.approx(1 - a12)
    assert c.methods == ["exact"]


def test_winner_of_each_study_and_the_best_architecture(analysis, tuned):
    _, truth = tuned
    sp = analysis.spread
    for study, winner, med in sp.rows:
        m = {k: np.median(truth[(k, "tuned", study)]) for k in LRS}
        assert winner == min(m, key=m.get) and med == pytest.approx(m)
    assert [w for _, w, _ in sp.rows] == ["sgd", "adam"] and sp.wins == {"adam": 1, "sgd": 1}
    j = analysis.joint
    assert j.dims == ["task.hidden"] and j.winner_changes
    for arch, row, winner in j.table:
        for key in LRS:
            vals = [np.inf if c is None else np.median(truth[(key, s, n)])
                    for (k, s), cs in BASE.items() if k == key for n, c in enumerate(cs) if HIDDEN[n] == arch["task.hidden"]]
            assert row[key] == pytest.approx(min(vals))
        assert winner == {16: "adam", 32: "sgd"}[arch["task.hidden"]]
    assert {(k, s): a["task.hidden"] for k, s, a, _ in j.best} == {(k, s): 32 for k in LRS for s in (0, 1)}
    a = analyse_tuning(StoreView.load(tuned[0]))
    assert a.stored_overlap == set() and a.protocol.disjoint


def test_html_has_the_tuning_section_and_no_trial_cells_elsewhere(tuned, tmp_path):
    store, _ = tuned
    page = build_report(store, tmp_path / "r.html").read_text()
    assert "could not be computed" not in page
    assert "<h2>Tuning protocol</h2>" in page and page.index("Tuning protocol") < page.index("Success and divergence")
    assert "Tuning seeds and evaluation seeds are disjoint" in page
    assert "1000000–1000002" in page and "1001000–1001002" in page and "evaluation seeds 0–5" in page
    assert "from the validation split" in page
    assert "Tuned comparison on fresh seeds" in page and "p-values: exact" in page
    assert "The winner changes with the architecture" in page and "sgd won 1 of 2" in page
    assert "· trial" not in page and "eval_split" not in page  # trial cells only in the tuning section
    tuning = page[page.index("<h2>Tuning protocol</h2>"):]
    tuning = tuning[:tuning.index("</section>")]
    # 2 dimensions x 2 optimizers, interactive (hover: a trial's parameters); the finals, the studies
    assert tuning.count("data-kind='sensitivity'") == 2 * 2 and tuning.count("<svg") == 2
    assert '"worst":[' in tuning and "true" in tuning.split('"worst":[')[1].split("]")[0]
    static = build_report(store, tmp_path / "s.html", static=True).read_text()
    assert "diverged or failed: worst (1)" in static  # the diverged trial drawn at the worst edge


def test_no_tuning_section_without_a_protocol(tmp_path):
    store = RunStore.create(tmp_path / "plain")
    land(store, "x", "X", "cell", [0, 1], {"f_gap": two_steps(np.array([1.0, 2.0]))}, settings={},
         optimizer="sgd", hp={})
    assert "Tuning protocol" not in build_report(store, tmp_path / "r.html").read_text()


def test_the_section_imports_no_tuning_task_optimizer_or_engine_code():
    code = ("import sys, optiscope.report.tuning_section; "
            "print([m for m in sys.modules if m.startswith(('optiscope.tasks', 'optiscope.optim', "
            "'optiscope.engine', 'optiscope.tuning'))])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_each_task_of_a_protocol_is_analysed_on_its_own(tmp_path):
    """Two task settings tuned in one protocol: trials and finals are never pooled across them."""
    store = RunStore.create(tmp_path / "two")
    trials, finals = [], []
    for task, centre in (("least-squares", 1.0), ("kernel-logistic", 5.0)):
        for n, lr in enumerate((0.01, 0.1)):
            cid = f"{task}-t{n}"
            land(store, cid, f"adam · trial {n}", "trial", [1_000_000, 1_000_001],
                 {"loss": two_steps(np.array([centre + n, centre + n + 0.1]))}, settings={}, optimizer="adam",
                 hp={"lr": lr}, task=task)
            trials.append({"study": 0, "optimizer_key": "adam", "optimizer": "adam", "trial": n, "task": task,
                           "params": json.dumps({"lr": lr}), "cell_id": cid, "value": centre + n + 0.05,
                           "state": "complete"})
        for kind in ("tuned", "default"):
            cid = f"{task}-{kind}"
            land(store, cid, f"adam {kind}", "final", [0, 1, 2], {"loss": two_steps(np.array([centre] * 3))},
                 settings={}, optimizer="adam", hp={}, task=task)
            finals.append({"study": 0 if kind == "tuned" else -1, "optimizer_key": "adam", "kind": kind,
                           "cell_id": cid, "params": "{}", "trial": 0 if kind == "tuned" else -1, "task": task})
    root = store.root / "tuning"
    root.mkdir()
    (root / "protocol.json").write_text(json.dumps({
        "metric": "loss", "final_metric": "loss", "goal": "min", "sampler": "random", "trials": 2,
        "seeds_per_trial": 2, "studies": 1, "tuning_seeds": {"0": [1_000_000, 1_000_001]},
        "evaluation_seeds": [0, 1, 2], "space": {"adam": {"lr": {"log_uniform": [0.01, 0.1]}}}, "split": "none",
        "tasks": [{"key": "least-squares"}, {"key": "kernel-logistic"}]}))
    atomic_write_parquet(root / "trials.parquet", pa.Table.from_pylist(trials))
    atomic_write_parquet(root / "final.parquet", pa.Table.from_pylist(finals))
    a = analyse_tuning(StoreView.load(store))
    assert [t.task for t in a.tasks] == ["least-squares", "kernel-logistic"]
    for t, centre in zip(a.tasks, (1.0, 5.0), strict=True):
        curve = t.sensitivity[0].by_study[0][1]
        assert curve.median.tolist() == pytest.approx([centre + 0.05, centre + 1.05])
        assert {f.cell.task for f in t.finals} == {t.task} and t.gaps[0].gain.estimate == 0
    page = build_report(store, tmp_path / "r.html").read_text()
    assert "Tuned on least-squares" in page and "Tuned on kernel-logistic" in page
    assert "with no validation split" in page and "could not be computed" not in page
