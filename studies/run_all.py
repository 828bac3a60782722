"""Run every study (or some): train, write the report, verify the hypotheses, run the study's
own analysis, and record the finding; then rewrite studies/FINDINGS.md and the README table.
The study's verdict states every part (findings.study_verdict): "2 hold, 1 invalid (plasticity)".

    python studies/run_all.py                      # all studies, fresh stores
    python studies/run_all.py --only jiang_rmed_linear_net --keep   # one study, resume its store
    python studies/run_all.py --scale paper --only bernstein_muon_steps  # the study's paper.toml
    python studies/run_all.py --seeds 32 --steps 2000               # bigger: overrides every study
    python studies/run_all.py --scale paper --device cuda --jobs 1  # on a GPU machine

Each step is an `optiscope` command (run, report, verify --format json), so this is what a user
would type. A failing verdict does not stop the others; a study whose training fails is recorded
as "error". A study whose experiment file has a `[verification]` table is verified with
`optiscope verify --until-decided` (seeds added in batches until every hypothesis is decided).
Stores go to studies/<name>/runs/ (git-ignored); the finding of each study, the verdict record,
is studies/<name>/finding.json (kept in the repository), from which the tables are written, so a
partial rerun (`--only`) updates its own rows and keeps the others'.

Two sizes: `study.toml` is the default (what `make studies` runs, minutes on 2 CPU cores);
`paper.toml`, where a study has one, is the same experiment and protocol closer to the source's
scale (`--scale paper`: store studies/<name>/runs-paper/, record finding.paper.json).

Every study runs single-threaded (`--threads 1`, OMP_NUM_THREADS=1), `--jobs` of them at a time
(default 2, longest first by their last recorded wall time): the studies' models are small, so
two single-threaded studies use two cores better than one study with two threads, and a pinned
thread count keeps the floating-point reduction order, hence the figures, the same on every
machine with the same CPU kernels (see studies/README.md, "Reproducibility").
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from catalog import STUDIES, Study  # noqa: E402
from findings import summarise, write_tables  # noqa: E402

OPTISCOPE = [sys.executable, "-m", "optiscope.cli"]
#: The torch threads every study runs with (see the module docstring).
THREADS = 1
#: scale -> (experiment file, store folder, verdict record), inside the study's folder.
SCALES = {
    "default": ("study.toml", "runs", "finding.json"),
    "paper": ("paper.toml", "runs-paper", "finding.paper.json"),
}


def single_threaded_env() -> dict[str, str]:
    """The environment of every optiscope command: one thread for torch, BLAS and OpenMP."""
    return os.environ | {"OMP_NUM_THREADS": str(THREADS), "MKL_NUM_THREADS": str(THREADS),
                         "OPENBLAS_NUM_THREADS": str(THREADS)}


def overridden_config(study_dir: Path, out_dir: Path, seeds: int | None, steps: int | None,
                      scale: str = "default") -> Path:
    """The scale's experiment file, or a copy in the store folder with [experiment] seeds /
    steps replaced."""
    path = study_dir / SCALES[scale][0]
    if seeds is None and steps is None:
        return path
    text = path.read_text()
    for key, value in (("seeds", seeds), ("steps", steps)):
        if value is not None:
            text, n = re.subn(rf"(?m)^{key} = \d+", f"{key} = {value}", text, count=1)
            if n != 1:
                raise SystemExit(f"{path}: no '{key} = N' line to override")
    out_dir.mkdir(parents=True, exist_ok=True)
    copy = out_dir.parent / f"{out_dir.name}.override.toml"  # git-ignored
    copy.write_text(text)
    return copy


def has_hypotheses(config: Path) -> bool:
    return re.search(r"(?m)^\[\[hypotheses\]\]", config.read_text()) is not None


def has_verification(config: Path) -> bool:
    return re.search(r"(?m)^\[verification\]", config.read_text()) is not None


def command(args: list[str]) -> tuple[int, str, float]:
    """Run an optiscope command from the repository root; (exit code, output, seconds)."""
    start = time.perf_counter()
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, env=single_threaded_env())
    return proc.returncode, proc.stdout + proc.stderr, time.perf_counter() - start


def load_analysis(study_dir: Path) -> Any | None:
    """The study's analyse.py module (its `analyse(store, ...)` gives a verdict), if it has one."""
    path = study_dir / "analyse.py"
    if not path.exists():
        return None
    spec = importlib.util.spec_from_file_location(f"study_{study_dir.name}", path)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def configured_seeds(config: Path) -> int | None:
    """[experiment] seeds of an experiment file (a count, or the length of a list)."""
    seeds = tomllib.loads(config.read_text()).get("experiment", {}).get("seeds")
    return len(seeds) if isinstance(seeds, list) else seeds


def run_study(study: Study, *, keep: bool, seeds: int | None, steps: int | None, scale: str = "default",
              device: str | None = None) -> dict:
    study_dir = HERE / study.folder
    _, store_name, _ = SCALES[scale]
    store = study_dir / store_name
    if store.exists() and not keep:
        shutil.rmtree(store)
    config = overridden_config(study_dir, store, seeds, steps, scale)
    finding: dict[str, Any] = {"folder": study.folder, "claim": study.claim, "source": study.source,
                               "config": str(config.relative_to(ROOT)), "scale": scale,
                               "version": study.version, "protocol": study.protocol,
                               "seeds_configured": configured_seeds(config), "threads": THREADS,
                               "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                               "device": device or "the experiment's"}
    on_device = ["--device", device] if device else []
    started = time.perf_counter()
    rel = str(store.relative_to(ROOT))
    code, out, wall = command([*OPTISCOPE, "run", str(config.relative_to(ROOT)), "--store", rel,
                               "--threads", str(THREADS), *on_device])
    finding["train_wall_s"] = round(wall, 1)
    print(f"[{study.folder}] run: exit {code} in {wall:.0f} s", flush=True)
    if code != 0:
        finding.update(verdict="error", key_figure=f"optiscope run failed: {out.strip()[-300:]}")
        return _save(store, finding, scale)
    code, out, wall = command([*OPTISCOPE, "report", rel, "--out", f"{rel}/report.html"])
    finding["report"] = f"{rel}/report.html" if code == 0 else f"report failed: {out.strip()[-200:]}"
    print(f"[{study.folder}] report: exit {code} in {wall:.0f} s", flush=True)
    hypotheses: list[dict] = []
    if has_hypotheses(config):
        sequential = ["--until-decided", *on_device] if has_verification(config) else []
        code, out, wall = command([*OPTISCOPE, "verify", rel, "--format", "json", *sequential])
        if sequential:  # the decided verdicts; then the full fixed-n table at the seeds they reached
            finding["sequential"] = _json_list(out)
            finding["verify_until_decided_wall_s"] = round(wall, 1)
            print(f"[{study.folder}] verify --until-decided: exit {code} in {wall:.0f} s", flush=True)
            code, out, wall = command([*OPTISCOPE, "verify", rel, "--format", "json"])
        finding["verify_exit"] = code
        print(f"[{study.folder}] verify: exit {code} in {wall:.0f} s", flush=True)
        try:
            hypotheses = json.loads(out[out.index("["):])
        except ValueError:
            finding["verify_error"] = out.strip()[-400:]
    finding["hypotheses"] = hypotheses
    analysis = None
    module = load_analysis(study_dir)
    if module is not None:
        start = time.perf_counter()
        analysis = module.analyse(store) or {"verdict": None}  # None: no verdict, never "holds"
        finding["analysis_wall_s"] = round(time.perf_counter() - start, 1)
        finding["analysis"] = analysis
    finding["wall_s"] = round(time.perf_counter() - started, 1)
    finding.update(summarise(finding))  # the verdict stated part by part (findings.study_verdict)
    print(f"[{study.folder}] verdict: {finding['verdict']} ({finding['wall_s']:.0f} s in all)", flush=True)
    return _save(store, finding, scale)


def _json_list(out: str) -> list[dict]:
    try:
        return json.loads(out[out.index("["):out.rindex("]") + 1])
    except ValueError:
        return []


def _save(store: Path, finding: dict, scale: str = "default") -> dict:
    """Write the verdict record beside the study (tracked), not in its git-ignored store."""
    (store.parent / SCALES[scale][2]).write_text(json.dumps(finding, indent=1, default=str) + "\n")
    return finding


def last_wall_time(study: Study, scale: str) -> float:
    """The study's last recorded wall time at this scale (0 if never run): the longest go first."""
    path = HERE / study.folder / SCALES[scale][2]
    try:
        f = json.loads(path.read_text())
    except (OSError, ValueError):
        return 0.0
    return float(f.get("wall_s") or (f.get("train_wall_s", 0) + f.get("verify_until_decided_wall_s", 0)))


def _run_one(args: tuple[Study, dict]) -> str:
    study, options = args
    try:
        return run_study(study, **options)["verdict"]
    except Exception as exc:  # one study's crash is its own row, never the others'
        print(f"[{study.folder}] crashed: {exc!r}", flush=True)
        return "error"


def run_studies(studies: list[Study], *, jobs: int, **options: Any) -> None:
    """Run `studies`, `jobs` at a time (each single-threaded), the longest first."""
    order = sorted(studies, key=lambda s: -last_wall_time(s, options["scale"]))
    if jobs <= 1 or len(order) <= 1:
        for study in order:
            _run_one((study, options))
        return
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        list(pool.map(_run_one, [(s, options) for s in order]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=None, help="study folders to run")
    parser.add_argument("--keep", action="store_true", help="resume existing stores")
    parser.add_argument("--seeds", type=int, default=None, help="override every study's seeds")
    parser.add_argument("--steps", type=int, default=None, help="override every study's steps")
    parser.add_argument("--scale", choices=sorted(SCALES), default="default",
                        help="default: study.toml; paper: paper.toml (closer to the source's scale)")
    parser.add_argument("--jobs", type=int, default=2, help="studies at a time, each single-threaded (default 2)")
    parser.add_argument("--device", default=None, help="train on this device (cuda on a GPU machine); default: each study's")
    parser.add_argument("--tables-only", action="store_true", help="only rewrite the tables")
    args = parser.parse_args()
    known = {s.folder for s in STUDIES}
    unknown = set(args.only or ()) - known
    if unknown:
        raise SystemExit(f"unknown studies {sorted(unknown)}; known: {sorted(known)}")
    if args.jobs < 1:
        raise SystemExit(f"--jobs {args.jobs}: give at least 1")
    if not args.tables_only:
        chosen = [s for s in STUDIES if args.only is None or s.folder in args.only]
        config_name = SCALES[args.scale][0]
        missing = [s.folder for s in chosen if not (HERE / s.folder / config_name).exists()]
        if missing and args.only is not None:
            raise SystemExit(f"--scale {args.scale}: no {config_name} in {', '.join(missing)}")
        for folder in missing:
            print(f"[{folder}] no {config_name}: skipped", flush=True)
        start = time.perf_counter()
        run_studies([s for s in chosen if s.folder not in missing], jobs=args.jobs, keep=args.keep,
                    seeds=args.seeds, steps=args.steps, scale=args.scale, device=args.device)
        print(f"{len(chosen) - len(missing)} studies in {time.perf_counter() - start:.0f} s "
              f"({args.jobs} at a time, {THREADS} thread each)", flush=True)
    write_tables(HERE, ROOT / "README.md")


if __name__ == "__main__":
    main()
