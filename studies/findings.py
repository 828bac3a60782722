"""The findings table: studies/FINDINGS.md and the README's "Findings" section, from each study's
runs/finding.json (written by run_all.py). A study not yet run shows as "not run".
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from catalog import STUDIES

START, END = "<!-- findings:start -->", "<!-- findings:end -->"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def load_findings(studies_dir: Path) -> list[dict]:
    out = []
    for study in STUDIES:
        path = studies_dir / study.folder / "runs" / "finding.json"
        if path.exists():
            out.append(json.loads(path.read_text()))
        else:
            out.append({"folder": study.folder, "claim": study.claim, "source": study.source,
                        "verdict": "not run", "key_figure": "-"})
    return out


def table(findings: list[dict], link_prefix: str) -> str:
    rows = ["| Claim | Source | Verdict here | Key figure | Study |", "|---|---|---|---|---|"]
    for f in findings:
        link = f"[{f['folder']}]({link_prefix}{f['folder']}/README.md)"
        rows.append(f"| {_cell(f['claim'])} | {_cell(f['source'])} | **{_cell(f['verdict'])}** | "
                    f"{_cell(f['key_figure'])} | {link} |")
    return "\n".join(rows)


def details(findings: list[dict]) -> str:
    parts = []
    for f in findings:
        parts.append(f"### {f['folder']}\n")
        parts.append(f"{f['claim']} ({f['source']}). Verdict: **{f['verdict']}**. "
                     f"Wall time of `optiscope run`: {f.get('train_wall_s', '-')} s"
                     + (f", analysis {f['analysis_wall_s']} s" if "analysis_wall_s" in f else "")
                     + (f"; report: `studies/{f['folder']}/runs/report.html`" if f.get("report") else "")
                     + ".\n")
        for h in f.get("hypotheses", []):
            parts.append(f"- {h['hypothesis']}: **{h['verdict']}**; {h['test']} p = "
                         f"{float(h['p']):.3g}, Holm p = {float(h['p_holm']):.3g}; "
                         f"{h['effect_measure']} {float(h['effect']):.3g} "
                         f"[{float(h['effect_low']):.3g}, {float(h['effect_high']):.3g}]; "
                         f"power {float(h['power']):.2f}; n = {h['n_a']}/{h['n_b']}; {h['reason']}")
        if "analysis" in f:
            parts.append(f"- analysis: {f['analysis']['key_figure']}")
        parts.append("")
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
