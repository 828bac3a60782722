"""Learning-rate transfer across width (version 2): the signed slope of each optimizer's best lr
against width, on grids extended until no best lr sits on an edge.

Protocol (README, "Version 2", fixed before the run):

1. Grids live on a half-decade lattice per optimizer (lr_k = BASE * 10 ** (k / 2); the lattice
   points are written with 3 significant digits). For every (optimizer, width) row the best grid
   point is the lr with the smallest median final train loss over the seeds (a diverged run, or
   one that logged nothing, counts as +inf).
2. Extension rule: while a row's best point is its first or last grid point, train the next
   lattice point beyond it (all seeds; one experiment per row and point, named
   `<experiment>-ext-<optimizer>-w<width>-lr<lr>`, into the same store) and look again; at most
   MAX_EXTENSIONS points per side of a row. A row still on an edge at that cap makes the verdict
   "invalid (edge)". Rows are visited in a fixed order (optimizer, width), so the cells trained
   depend only on the store.
3. Best lr of a row: the best grid point refined by a parabola in log10(lr) through it and its
   two neighbours (kept at the point where the parabola opens downwards; clipped to the
   neighbours).
4. Slope: the least-squares slope of log10(best lr) on log10(width) (signed: negative = the best
   lr falls as the model widens). Statistic: |slope(adam)| - |slope(modular)|.
5. Interval: a paired seed bootstrap (the same resampled seed indices for every cell, since a
   seed fixes the initialisation and data order across cells), RESAMPLES resamples from
   numpy.random.default_rng(BOOTSTRAP_SEED), 95% percentile interval. Verdict: holds if the
   interval lies above 0 (the modular optimizer's best lr moves less with width), fails if below
   0, else inconclusive.

Deterministic given the store: the data are read in a fixed order (optimizer, width, lr, seed)
and the only random draw is the seeded bootstrap, so two analyses of one store print the same.

    python studies/bernstein_lr_transfer/analyse.py [STORE] [--no-extend]
"""

from __future__ import annotations

import json
import math
import sys
import tomllib
from pathlib import Path

import numpy as np

from optiscope.store import RunStore

HERE = Path(__file__).resolve().parent
EXPERIMENT = "bernstein_lr_transfer"
WIDTH_KEY = "hidden"
METRIC = "train_loss"
#: The lattice of each optimizer's grid: lr_k = BASE * 10 ** (k / 2).
BASE = {"adam": 1e-3, "modular": 0.02}
MAX_EXTENSIONS = 4
RESAMPLES = 2000
BOOTSTRAP_SEED = 20240930  # fixed before the run (the source's arXiv date); any fixed seed would do

Data = dict[str, dict[int, dict[int, np.ndarray]]]  # optimizer -> width -> lattice k -> losses by seed


def lattice_lr(name: str, k: int) -> float:
    return float(f"{BASE[name] * 10 ** (k / 2):.3g}")


def lattice_k(name: str, lr: float) -> int:
    k = round(2 * math.log10(lr / BASE[name]))
    if not math.isclose(lattice_lr(name, k), lr, rel_tol=1e-9):
        raise SystemExit(f"lr {lr} of {name} is not on its half-decade lattice from {BASE[name]}")
    return k


def load(store: Path) -> tuple[Data, list[int]]:
    """Final train loss of every run, by optimizer, width, lattice point and seed; the seeds."""
    _, rows = RunStore.open(store).query(
        f"""
        WITH last AS (
            SELECT r.optimizer, r.label, r.task_settings, r.hyperparameters, r.seed, r.status,
                   m.value, row_number() OVER (PARTITION BY r.run_id ORDER BY m.step DESC) AS k
            FROM runs r LEFT JOIN metrics m ON m.run_id = r.run_id AND m.name = '{METRIC}'
        )
        SELECT optimizer, label, task_settings, hyperparameters, seed, status, value
        FROM last WHERE k = 1
        """
    )
    cells: dict[tuple[str, int, int], dict[int, float]] = {}
    for optimizer, label, ts, hp, seed, status, value in rows:
        name = label if label and not label.startswith(optimizer + "(") else optimizer
        width = int(json.loads(ts)[WIDTH_KEY])
        k = lattice_k(name, float(json.loads(hp)["lr"]))
        v = math.inf if status == "diverged" or value is None or not math.isfinite(value) else float(value)
        by_seed = cells.setdefault((name, width, k), {})
        if int(seed) in by_seed:
            raise SystemExit(f"two runs of {name} width {width} lr {lattice_lr(name, k)} seed {seed}")
        by_seed[int(seed)] = v
    seeds = sorted({s for by_seed in cells.values() for s in by_seed})
    data: Data = {}
    for (name, width, k) in sorted(cells):
        by_seed = cells[(name, width, k)]
        if sorted(by_seed) != seeds:
            raise SystemExit(f"{name} width {width} lr {lattice_lr(name, k)} has seeds {sorted(by_seed)}, not {seeds}")
        data.setdefault(name, {}).setdefault(width, {})[k] = np.array([by_seed[s] for s in seeds])
    for name, by_width in data.items():
        for width, by_k in by_width.items():
            ks = sorted(by_k)
            if ks != list(range(ks[0], ks[-1] + 1)):
                raise SystemExit(f"{name} width {width}: grid has a gap ({[lattice_lr(name, k) for k in ks]})")
    return data, seeds


def best_index(medians: np.ndarray) -> int:
    return int(np.argmin(medians))  # ties: the smaller lr


def best_log_lr(log_lrs: np.ndarray, medians: np.ndarray) -> float:
    i = best_index(medians)
    if 0 < i < len(log_lrs) - 1 and np.all(np.isfinite(medians[i - 1:i + 2])):
        a, b, _ = np.polyfit(log_lrs[i - 1:i + 2], medians[i - 1:i + 2], 2)
        if a > 0:
            return float(np.clip(-b / (2 * a), log_lrs[i - 1], log_lrs[i + 1]))
    return float(log_lrs[i])


def edges(data: Data) -> list[tuple[str, int, int]]:
    """(optimizer, width, lattice point to train next) for every row whose best point is an edge."""
    out = []
    for name in sorted(data):
        for width in sorted(data[name]):
            ks = sorted(data[name][width])
            medians = np.array([np.median(data[name][width][k]) for k in ks])
            i = best_index(medians)
            if i == 0:
                out.append((name, width, ks[0] - 1))
            elif i == len(ks) - 1:
                out.append((name, width, ks[-1] + 1))
    return out


def slopes(data: Data, index: np.ndarray | None = None) -> tuple[dict[str, float], dict[str, dict[int, float]]]:
    """Per optimizer: the slope of log10 best lr on log10 width, and each width's log10 best lr."""
    slope, best = {}, {}
    for name in sorted(data):
        best[name] = {}
        for width in sorted(data[name]):
            ks = sorted(data[name][width])
            log_lrs = np.log10([lattice_lr(name, k) for k in ks])
            medians = np.array([np.median(data[name][width][k] if index is None else data[name][width][k][index])
                                for k in ks])
            best[name][width] = best_log_lr(log_lrs, medians)
        widths = sorted(best[name])
        slope[name] = float(np.polyfit(np.log10(widths), [best[name][w] for w in widths], 1)[0])
    return slope, best


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {value!r} as TOML")


def extension_config(base: dict, name: str, width: int, k: int) -> str:
    """The experiment that trains one more lattice point of one row (every seed of the base)."""
    exp = {**base["experiment"], "name": f"{base['experiment']['name']}-ext-{name}-w{width}-lr{lattice_lr(name, k):g}"}
    task = {**base["tasks"][0], WIDTH_KEY: width}
    (opt,) = [o for o in base["optimizers"] if (o.get("label") or o["name"]) == name]
    opt = {**opt, "lr": [lattice_lr(name, k)]}
    lines = ["# written by studies/bernstein_lr_transfer/analyse.py (extension rule)", "[experiment]"]
    lines += [f"{key} = {_toml(v)}" for key, v in exp.items()]
    lines += ["", "[[tasks]]", *(f"{key} = {_toml(v)}" for key, v in task.items())]
    lines += ["", "[[optimizers]]", *(f"{key} = {_toml(v)}" for key, v in opt.items())]
    return "\n".join(lines) + "\n"


def extend(store: Path, say=lambda m: print(m, file=sys.stderr, flush=True)) -> list[str]:
    """Apply the extension rule until no row's best point is an edge (or a row hits the cap)."""
    from optiscope.config import parse_config
    from optiscope.engine.runner import run_experiment

    base = tomllib.loads((store / "configs" / f"{EXPERIMENT}.toml").read_text())
    trained: list[str] = []
    while True:
        data, _ = load(store)
        todo = []
        for name, width, k in edges(data):
            ks = sorted(data[name][width])
            initial = _initial_ks(base, name)
            if k < min(initial) - MAX_EXTENSIONS or k > max(initial) + MAX_EXTENSIONS:
                continue  # at the cap: reported by analyse as an edge row
            todo.append((name, width, k))
        if not todo:
            return trained
        for name, width, k in todo:
            text = extension_config(base, name, width, k)
            cfg = parse_config(tomllib.loads(text), "extension")
            say(f"extension: {name} width {width} lr {lattice_lr(name, k):g}")
            summary = run_experiment(cfg, RunStore.create(store), config_text=text)
            if summary.failed:
                raise SystemExit(f"extension {cfg.experiment.name} failed: {summary.failed}")
            trained.append(cfg.experiment.name)


def _initial_ks(base: dict, name: str) -> list[int]:
    (opt,) = [o for o in base["optimizers"] if (o.get("label") or o["name"]) == name]
    lrs = opt["lr"] if isinstance(opt["lr"], list) else [opt["lr"]]
    return [lattice_k(name, float(lr)) for lr in lrs]


def analyse(store: Path, *, extend_grids: bool = True, resamples: int = RESAMPLES) -> dict:
    store = Path(store)
    extended = extend(store) if extend_grids else []
    data, seeds = load(store)
    names = sorted(data)
    if names != ["adam", "modular"]:
        raise SystemExit(f"expected cells labelled adam and modular, found {names}")
    slope, best = slopes(data)
    on_edge = [f"{n} width {w}" for n, w, _ in edges(data)]
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    boot = {n: [] for n in names}
    for _ in range(resamples):
        s, _ = slopes(data, rng.integers(0, len(seeds), len(seeds)))
        for n in names:
            boot[n].append(s[n])
    b = {n: np.asarray(v) for n, v in boot.items()}
    diff = np.abs(b["adam"]) - np.abs(b["modular"])
    lo, hi = (float(x) for x in np.percentile(diff, [2.5, 97.5]))
    ci = {n: [round(float(x), 3) for x in np.percentile(b[n], [2.5, 97.5])] for n in names}
    verdict = "invalid" if on_edge else "holds" if lo > 0 else "fails" if hi < 0 else "inconclusive"
    widths = sorted(data[names[0]])
    best_lr = {n: {w: float(f"{10 ** v:.3g}") for w, v in best[n].items()} for n in names}
    return {
        "verdict": verdict,
        **({"guards_failed": "best lr on a grid edge at the extension cap: " + ", ".join(on_edge)} if on_edge else {}),
        "seeds": len(seeds),
        "widths": widths,
        "best_lr": best_lr,
        "slope": {n: round(slope[n], 3) for n in names},
        "slope_ci95": ci,
        "drift_decades": {n: round(slope[n] * math.log10(widths[-1] / widths[0]), 3) for n in names},
        "abs_slope_difference": round(abs(slope["adam"]) - abs(slope["modular"]), 3),
        "abs_slope_difference_ci95": [round(lo, 3), round(hi, 3)],
        "grids": {n: {w: [lattice_lr(n, k) for k in sorted(data[n][w])] for w in widths} for n in names},
        "extension_cells_trained_now": extended,
        "median_final_train_loss": {
            n: {w: {lattice_lr(n, k): round(float(np.median(v)), 4) for k, v in sorted(data[n][w].items())}
                for w in widths}
            for n in names
        },
        "key_figure": (
            f"slope of log best lr on log width ({widths[0]}->{widths[-1]}, {len(seeds)} seeds): "
            f"Adam {slope['adam']:+.2f} {ci['adam']}, modular {slope['modular']:+.2f} {ci['modular']}; "
            f"|Adam|-|modular| {abs(slope['adam']) - abs(slope['modular']):+.2f}, 95% CI [{lo:.2f}, {hi:.2f}]"
        ),
    }


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    store = Path(args[0]) if args else HERE / "runs"
    print(json.dumps(analyse(store, extend_grids="--no-extend" not in sys.argv), indent=1, default=str))


if __name__ == "__main__":
    main()
