"""Reports of the shipped experiments (experiments/*.toml), trained small, and their screenshots.

Used by the browser test and by `make report-shots`, which writes each report and a screenshot
of its first two screens and of the whole page under runs/report-shots/ for a reviewer:

    python -m tests.report.shipped [OUT] [NAME ...]

Every experiment keeps its tasks, optimizers, probes and tuning protocol; only the budget is cut
(seeds, steps, trials), so the pages show what a user's report shows, in seconds of CPU.
"""

from __future__ import annotations

import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENTS = ROOT / "experiments"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
VIEWPORT = {"width": 1400, "height": 900}
#: The section each kind of experiment exists for (its anchor in the report).
OWN_SECTION = {"tuning": "tuning", "probes": "probes", "continual": "continual"}


def shipped() -> list[str]:
    return sorted(p.stem for p in EXPERIMENTS.glob("*.toml"))


def shrink(raw: dict[str, Any], *, seeds: int = 3, steps: int = 40) -> dict[str, Any]:
    """The experiment with a screenshot's budget: few seeds, steps and trials; stages scaled."""
    exp = raw["experiment"]
    old_steps = int(exp.get("steps", 1000))
    exp.update(seeds=seeds, steps=steps, eval_every=max(1, steps // 8), log_every=max(1, steps // 8),
               checkpoint_every=0, device="cpu")
    for t in raw.get("tasks", []):
        if "steps_per_stage" in t:
            t["steps_per_stage"] = max(2, int(t["steps_per_stage"]) * steps // old_steps)
    for o in raw.get("optimizers", []):
        for key in ("steps", "grad_evals"):
            if key in o:
                o[key] = max(2, int(o[key]) * steps // old_steps)
    if raw.get("tuning"):
        raw["tuning"].update(trials=min(3, int(raw["tuning"].get("trials", 3))), seeds_per_trial=2)
        if "studies" in raw["tuning"]:
            raw["tuning"]["studies"] = min(2, int(raw["tuning"]["studies"]))
    return raw


def kind(raw: dict[str, Any]) -> str | None:
    """Which section the experiment exists for: tuning, probes, continual, or None."""
    if raw.get("tuning"):
        return "tuning"
    if raw.get("probes"):
        return "probes"
    if any(str(t.get("name", "")).startswith("continual") for t in raw.get("tasks", [])):
        return "continual"
    return None


def build(name: str, root: Path) -> Path:
    """Train the shrunk experiment `name` into root/name/store and write its report."""
    from optiscope.cli import _probe_factory
    from optiscope.config import parse_config
    from optiscope.engine.runner import run_experiment
    from optiscope.report import build_report
    from optiscope.store import RunStore

    path = EXPERIMENTS / f"{name}.toml"
    raw = shrink(tomllib.loads(path.read_text()))
    cfg = parse_config(raw, source=str(path))
    where = root / name / "store"
    store = RunStore.open(where) if where.exists() else RunStore.create(where)
    e = raw["experiment"]
    note = (f"# Trained small for the report screenshots: seeds = {e['seeds']}, steps = {e['steps']}"
            f"{', 3 trials' if raw.get('tuning') else ''} (the file below asks for more).\n")
    run_experiment(cfg, store, config_text=note + path.read_text(), probe_runner_factory=_probe_factory())
    return build_report(store, root / name / "report.html", title=name)


@dataclass
class PageCheck:
    """What a browser saw of one report."""

    load_s: float
    console_errors: list[str]
    requests: list[str]
    sections: list[tuple[str, float]]  # (anchor, top in px)
    height: float
    size_bytes: int


def open_report(browser: Any, report: Path, shots: Path | None = None) -> tuple[Any, PageCheck]:
    """Load `report` in a fresh page; every figure drawn; screenshots to `shots` when given."""
    page = browser.new_page(viewport=VIEWPORT)
    errors: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: None if r.url.startswith(("file:", "data:", "blob:", "about:")) else requests.append(r.url))
    start = time.perf_counter()
    page.goto(report.as_uri(), wait_until="load")
    load_s = time.perf_counter() - start
    n = page.evaluate("document.querySelectorAll('script.vega-spec').length")
    if n:
        page.wait_for_function("window.optiscopeDrawn !== undefined")
        page.evaluate("window.optiscopeDrawAll()")
        page.wait_for_function(f"window.optiscopeDrawn >= {n}", timeout=60_000)
    sections = page.evaluate(
        "[...document.querySelectorAll('body > section')].map(s => [s.id, s.getBoundingClientRect().top + window.scrollY])")
    height = page.evaluate("document.body.scrollHeight")
    if shots is not None:
        shots.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shots / f"{report.parent.name}-screens-1-2.png"),
                        clip={"x": 0, "y": 0, "width": VIEWPORT["width"], "height": 2 * VIEWPORT["height"]},
                        full_page=True)
        page.screenshot(path=str(shots / f"{report.parent.name}-full.png"), full_page=True)
    return page, PageCheck(load_s, errors, requests, [(a, float(t)) for a, t in sections], float(height),
                           report.stat().st_size)


def main(argv: list[str]) -> int:
    from playwright.sync_api import sync_playwright

    out = Path(argv[0]) if argv else ROOT / "runs" / "report-shots"
    names = argv[1:] or shipped()
    reports = {}
    for name in names:
        t = time.perf_counter()
        reports[name] = build(name, out)
        print(f"{name}: trained and reported in {time.perf_counter() - t:.1f} s", flush=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for name, report in reports.items():
                page, check = open_report(browser, report, out / "shots")
                page.close()
                own = OWN_SECTION.get(kind(tomllib.loads((EXPERIMENTS / f"{name}.toml").read_text())) or "")
                top = dict(check.sections).get(own) if own else None
                print(f"{name}: {check.size_bytes / 1e6:.2f} MB, load {check.load_s:.2f} s, "
                      f"{len(check.console_errors)} console errors, {len(check.requests)} requests, "
                      f"page {check.height:.0f} px" + (f", {own} section at {top:.0f} px" if top is not None else ""))
        finally:
            browser.close()
    print(f"screenshots in {out / 'shots'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
