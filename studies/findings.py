"""The findings table: studies/FINDINGS.md and the README's "Findings" section, from each study's
finding.json (written by run_all.py, kept in the repository). A study not yet run shows as "not run".

A study's verdict is stated part by part, never as one word that hides a part (`study_verdict`):
"2 hold, 1 invalid (plasticity), 1 inconclusive at 8 seeds, power 0.6"; an analysis that gives
no verdict of its own says so ("analysis gave no verdict"), so such a study is never counted as
holding (`study_holds`). The line is recomputed from the stored parts whenever the tables are
written, so `run_all.py --tables-only` applies the current rule to stores already run.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

from catalog import STUDIES

START, END = "<!-- findings:start -->", "<!-- findings:end -->"
#: The order the parts of a study's line are stated in.
PART_ORDER = ("holds", "fails", "invalid", "inconclusive")
_PLURAL = {"holds": "hold", "fails": "fail"}


def _num(x: Any) -> str:
    try:
        return f"{float(x):.3g}"
    except (TypeError, ValueError):
        return str(x)


def _seeds(h: dict) -> str:
    n_a, n_b = h.get("n_a"), h.get("n_b")
    return f"{n_a} seeds" if n_a == n_b else f"{n_a} and {n_b} seeds"


def _group(verdict: str, parts: list[dict]) -> str:
    k = len(parts)
    word = _PLURAL.get(verdict, verdict) if k > 1 else verdict
    if verdict == "invalid":
        guards = dict.fromkeys(g for h in parts for g in str(h.get("guards_failed") or "guard").split("; "))
        return f"{k} invalid ({'; '.join(guards)})"
    if verdict == "inconclusive":
        details = list(dict.fromkeys(f"at {_seeds(h)}, power {float(h.get('power', 0.0)):.2g}" for h in parts))
        return f"{k} inconclusive " + (details[0] if len(details) == 1 else f"({'; '.join(details)})")
    return f"{k} {word}"


def study_verdict(hypotheses: list[dict], analysis: dict | None = None, verify_error: str | None = None) -> str:
    """The study's line, every part stated: the hypotheses' verdicts counted in PART_ORDER (any
    other verdict after them), then the analysis' verdict, or that it gave none."""
    by_verdict: dict[str, list[dict]] = {}
    for h in hypotheses:
        by_verdict.setdefault(str(h.get("verdict")), []).append(h)
    order = [v for v in PART_ORDER if v in by_verdict] + [v for v in by_verdict if v not in PART_ORDER]
    parts = [", ".join(_group(v, by_verdict[v]) for v in order)] if order else []
    if verify_error:
        parts.append("verify failed")
    if analysis is not None:
        parts.append(f"analysis: {analysis['verdict']}" if analysis.get("verdict") else "analysis gave no verdict")
    return "; ".join(parts) or "error: no verdict"


def study_holds(hypotheses: list[dict], analysis: dict | None = None, verify_error: str | None = None) -> bool:
    """True only when there is a verdict, every part holds, and an analysis (if any) gave one."""
    if verify_error or (analysis is not None and analysis.get("verdict") != "holds"):
        return False
    verdicts = [h.get("verdict") for h in hypotheses] + ([analysis["verdict"]] if analysis is not None else [])
    return bool(verdicts) and all(v == "holds" for v in verdicts)


def hypothesis_figure(h: dict) -> str:
    """One hypothesis in a few numbers; an invalid one with its unmet guards' measured values."""
    if h.get("verdict") == "invalid":
        unmet = [g for g in str(h.get("guards") or "").split("; ") if "(NOT MET)" in g]
        return f"{h['hypothesis']}: invalid, " + ("; ".join(unmet) or str(h.get("reason", "")))
    return (f"{h['hypothesis']}: {h['verdict']}, {h['effect_measure']} {_num(h['effect'])} "
            f"[{_num(h['effect_low'])}, {_num(h['effect_high'])}], p_holm {_num(h['p_holm'])}")


def key_figure(hypotheses: list[dict], analysis: dict | None) -> str:
    """Every hypothesis' figure, then the analysis' (nothing is left out for the analysis)."""
    figures = [hypothesis_figure(h) for h in hypotheses]
    if analysis is not None and analysis.get("key_figure"):
        figures.append(f"analysis: {analysis['key_figure']}")
    return "; ".join(figures)


def decided(finding: dict) -> list[dict]:
    """The hypotheses as judged: where `verify --until-decided` ran, each sequential hypothesis'
    verdict, seeds and reason are the design's (the look that decided it), and its p value,
    effect and interval stay the fixed-n ones over every seed trained, as descriptions; the
    others (equivalence, Fisher) are judged fixed-n at the experiment's planned seeds, never at
    seeds added to their cells for another hypothesis."""
    by_name = {row.get("hypothesis"): row for row in finding.get("sequential") or []}
    out = []
    for h in finding.get("hypotheses", []):
        seq = by_name.get(h.get("hypothesis"))
        if seq is None:
            out.append(h)
            continue
        if str(seq.get("reason", "")).startswith("fixed-n"):  # judged at its planned seeds
            planned = {k: seq[k] for k in ("verdict", "n_a", "n_b", "p_holm", "effect", "effect_low", "effect_high",
                                           "power") if seq.get(k) is not None}
            out.append(h | planned | {"reason": seq["reason"]})
            continue
        out.append(h | {"verdict": seq["verdict"], "n_a": seq["n_a"], "n_b": seq["n_b"],
                        "power": seq.get("power", h.get("power")),
                        "reason": f"sequential, look {seq.get('looks')}: {seq.get('reason')} "
                                  f"(p and interval: fixed-n over all {h.get('n_a')}/{h.get('n_b')} seeds)"})
    return out


def summarise(finding: dict) -> dict:
    """`finding` with its verdict line, holds flag and key figure (re)computed from its parts;
    a study that did not get as far as verifying (training failed) is left as it is."""
    if "hypotheses" not in finding:
        return finding
    finding = finding | {"hypotheses": decided(finding)}
    parts = (finding["hypotheses"], finding.get("analysis"), finding.get("verify_error"))
    return finding | {"verdict": study_verdict(*parts), "holds": study_holds(*parts),
                      "key_figure": key_figure(finding["hypotheses"], finding.get("analysis"))}


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def seeds_used(finding: dict) -> str:
    """Seeds per compared cell behind the verdict: the hypotheses' n (a range where they differ,
    e.g. after a sequential verification stopped some early), else the configured seeds."""
    ns = sorted({int(h[k]) for h in finding.get("hypotheses", []) for k in ("n_a", "n_b")
                 if isinstance(h.get(k), (int, float))})
    if ns:
        return str(ns[0]) if ns[0] == ns[-1] else f"{ns[0]}-{ns[-1]}"
    return str(finding.get("seeds_configured") or "-")


def _minutes(finding: dict) -> str:
    wall = finding.get("wall_s")
    return "" if wall is None else (f"{wall / 60:.0f} min" if wall >= 90 else f"{wall:.0f} s")


def _record(studies_dir: Path, study: Any, name: str) -> dict | None:
    path = studies_dir / study.folder / name
    if not path.exists():
        return None
    finding = summarise(json.loads(path.read_text()))
    if "seeds_configured" not in finding:  # a record written before run_all stored it
        config = studies_dir / study.folder / ("paper.toml" if "paper" in name else "study.toml")
        seeds = tomllib.loads(config.read_text()).get("experiment", {}).get("seeds") if config.exists() else None
        finding["seeds_configured"] = len(seeds) if isinstance(seeds, list) else seeds
    version = int(finding.get("version", 1))
    if version != study.version:  # a record of an older protocol never speaks for the current one
        return None
    return finding


def load_findings(studies_dir: Path) -> list[dict]:
    """Each catalogued study's default-scale record (its catalogue texts and protocol are the
    current ones), with its paper-scale record under "paper" (None: not run)."""
    out = []
    for study in STUDIES:
        current = {"folder": study.folder, "claim": study.claim, "source": study.source,
                   "version": study.version, "protocol": study.protocol}
        finding = _record(studies_dir, study, "finding.json")
        if finding is None:
            finding = {"verdict": "not run", "key_figure": "-"}
        finding = finding | current
        finding["paper"] = _record(studies_dir, study, "finding.paper.json")
        finding["has_paper_config"] = (studies_dir / study.folder / "paper.toml").exists()
        out.append(finding)
    return out


def paper_cell(finding: dict) -> str:
    paper = finding.get("paper")
    if paper is None:
        return "not run" if finding.get("has_paper_config") else "no paper size"
    wall = _minutes(paper)
    return f"{paper['verdict']} ({seeds_used(paper)} seeds{', ' + wall if wall else ''})"


def table(findings: list[dict], link_prefix: str) -> str:
    rows = ["| Claim | Source | Protocol | Verdict (default size) | Seeds | Paper scale | Key figure | Study |",
            "|---|---|---|---|---|---|---|---|"]
    for f in findings:
        link = f"[{f['folder']}]({link_prefix}{f['folder']}/README.md)"
        rows.append(f"| {_cell(f['claim'])} | {_cell(f['source'])} | v{f['version']}, {f['protocol']} | "
                    f"**{_cell(f['verdict'])}** | {seeds_used(f)} | {_cell(paper_cell(f))} | "
                    f"{_cell(f['key_figure'])} | {link} |")
    return "\n".join(rows)


def _scale_details(f: dict, scale: str) -> list[str]:
    parts = [f"**{scale.capitalize()} size** (`{f.get('config', '-')}`, {f.get('threads', '?')} thread, "
             f"started {f.get('started', '-')}): **{f['verdict']}**. Wall time: `optiscope run` "
             f"{f.get('train_wall_s', '-')} s"
             + (f", verification {f['verify_until_decided_wall_s']} s" if "verify_until_decided_wall_s" in f else "")
             + (f", analysis {f['analysis_wall_s']} s" if "analysis_wall_s" in f else "")
             + (f", {f['wall_s']} s in all" if "wall_s" in f else "")
             + (f"; report: `{f['report']}`" if f.get("report") and not str(f["report"]).startswith("report failed") else "")
             + ".\n"]
    for h in f.get("hypotheses", []):
        parts.append(f"- {h['hypothesis']}: **{h['verdict']}**; {h['test']} p = "
                     f"{float(h['p']):.3g}, Holm p = {float(h['p_holm']):.3g}; "
                     f"{h['effect_measure']} {float(h['effect']):.3g} "
                     f"[{float(h['effect_low']):.3g}, {float(h['effect_high']):.3g}]; "
                     f"power {float(h['power']):.2f}; n = {h['n_a']}/{h['n_b']}; {h['reason']}"
                     + (f"; guards: {h['guards']}" if h.get("guards") else ""))
    if "analysis" in f:
        parts.append(f"- analysis: {f['analysis'].get('key_figure', 'no figure')}")
    parts.append("")
    return parts


def details(findings: list[dict]) -> str:
    parts = []
    for f in findings:
        parts.append(f"### {f['folder']}\n")
        parts.append(f"{f['claim']} ({f['source']}). Protocol: version {f['version']}, {f['protocol']} "
                     f"(the study's README states it).\n")
        parts.extend(_scale_details(f, "default"))
        if f.get("paper") is not None:
            parts.extend(_scale_details(f["paper"], "paper"))
        else:
            parts.append(f"**Paper size:** {paper_cell(f)}.\n")
    return "\n".join(parts)


def write_tables(studies_dir: Path, readme: Path) -> None:
    findings = load_findings(studies_dir)
    (studies_dir / "FINDINGS.md").write_text(
        "# Findings\n\nWritten by `make studies` (studies/run_all.py) from each study's stored runs; "
        "do not edit by hand. Each study's README says what is run and what would change the "
        "verdict. Wall times are as measured on the machine that ran them (see each study's README "
        "for the conditions).\n\n" + table(findings, "") + "\n\n## Per study\n\n" + details(findings)
    )
    text = readme.read_text()
    block = f"{START}\n{table(findings, 'studies/')}\n{END}"
    if START in text and END in text:
        text = re.sub(re.escape(START) + r".*?" + re.escape(END), lambda _m: block, text, flags=re.S)
        readme.write_text(text)
