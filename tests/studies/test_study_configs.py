"""The shipped studies stay runnable: every catalogued folder has a study.toml that parses (its
hypotheses resolve to cells: optiscope.hypotheses.spec), a README with the measured result, and
the findings table lists every study in the catalogue's order."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from optiscope.config import load_config

STUDIES_DIR = Path(__file__).resolve().parents[2] / "studies"


def _module(name: str):
    spec = importlib.util.spec_from_file_location(f"studies_{name}", STUDIES_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    sys.path.insert(0, str(STUDIES_DIR))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(STUDIES_DIR))
    return module


CATALOG = _module("catalog")


def test_catalogue_matches_the_folders():
    folders = {p.parent.name for p in STUDIES_DIR.glob("*/study.toml")}
    assert folders == {s.folder for s in CATALOG.STUDIES}


@pytest.mark.parametrize("folder", [s.folder for s in CATALOG.STUDIES])
def test_study_parses_and_has_a_readme_with_results(folder):
    cfg = load_config(STUDIES_DIR / folder / "study.toml")
    assert cfg.cells()
    readme = (STUDIES_DIR / folder / "README.md").read_text()
    assert "RESULT_PENDING" not in readme
    for heading in ("**Claim.**", "**What is run", "**Result here", "**What would change the verdict.**"):
        assert heading in readme, f"{folder}/README.md lacks {heading}"


def test_findings_table_rows_and_verdict_rule(tmp_path):
    findings = _findings()
    first = CATALOG.STUDIES[0]
    (tmp_path / first.folder).mkdir(parents=True)
    (tmp_path / first.folder / "finding.json").write_text(json.dumps(
        {"folder": first.folder, "claim": "c | d", "source": "s", "verdict": "holds", "key_figure": "k"}))
    readme = tmp_path / "README.md"
    readme.write_text(f"x\n{findings.START}\nSTALE_ROW\n{findings.END}\ny\n")
    findings.write_tables(tmp_path, readme)
    text = readme.read_text()
    assert "STALE_ROW" not in text and text.startswith("x\n") and text.endswith("y\n") and "c \\| d" in text and text.count("| **not run** |") == len(CATALOG.STUDIES) - 1
    assert (tmp_path / "FINDINGS.md").exists()


def _findings():
    sys.path.insert(0, str(STUDIES_DIR))
    try:
        return _module("findings")
    finally:
        sys.path.remove(str(STUDIES_DIR))


HOLD, FAIL = {"verdict": "holds"}, {"verdict": "fails"}
INCONCLUSIVE = {"verdict": "inconclusive", "n_a": 8, "n_b": 8, "power": 0.6}
PLASTICITY = {"verdict": "invalid", "guards_failed": "plasticity"}


@pytest.mark.parametrize(("hypotheses", "analysis", "line", "holds"), [
    ([HOLD], None, "1 holds", True),
    ([HOLD, HOLD], None, "2 hold", True),
    ([HOLD, HOLD, PLASTICITY, INCONCLUSIVE], None,
     "2 hold, 1 invalid (plasticity), 1 inconclusive at 8 seeds, power 0.6", False),
    ([HOLD, FAIL], None, "1 holds, 1 fails", False),
    ([INCONCLUSIVE, FAIL], None, "1 fails, 1 inconclusive at 8 seeds, power 0.6", False),  # never "fails"
    ([INCONCLUSIVE, INCONCLUSIVE | {"n_b": 6, "power": 0.13}], None,
     "2 inconclusive (at 8 seeds, power 0.6; at 8 and 6 seeds, power 0.13)", False),
    ([PLASTICITY, PLASTICITY | {"guards_failed": "plasticity; b-trained"}], None,
     "2 invalid (plasticity; b-trained)", False),
    ([HOLD], {"verdict": None}, "1 holds; analysis gave no verdict", False),  # never "holds"
    ([FAIL], {"verdict": None}, "1 fails; analysis gave no verdict", False),
    ([HOLD], {"verdict": "fails"}, "1 holds; analysis: fails", False),  # the analysis hides nothing
    ([], {"verdict": "holds"}, "analysis: holds", True),
    ([], {"verdict": None}, "analysis gave no verdict", False),
    ([], None, "error: no verdict", False),
])
def test_a_study_line_states_every_part(hypotheses, analysis, line, holds):
    findings = _findings()
    assert findings.study_verdict(hypotheses, analysis) == line
    assert findings.study_holds(hypotheses, analysis) is holds


def test_verify_failing_is_a_part_and_the_tables_restate_old_findings(tmp_path):
    """A finding.json written with the old one-word verdict is restated part by part."""
    findings = _findings()
    assert findings.study_verdict([], None, "bad input") == "verify failed"
    assert not findings.study_holds([HOLD], None, "bad input")
    study = CATALOG.STUDIES[0]
    row = {"hypothesis": "forgets-less", "verdict": "invalid", "guards_failed": "plasticity",
           "guards": "plasticity (NOT MET): a 'shampoo': median 0.01, 8 of 8 seeds failing, 0 diverged",
           "test": "mann-whitney", "p": 4.5e-4, "p_holm": 4.5e-4, "effect_measure": "cliffs_delta",
           "effect": -1.0, "effect_low": -1.0, "effect_high": -1.0, "power": 0.4, "n_a": 8, "n_b": 8,
           "reason": "invalid: ..."}
    (tmp_path / study.folder).mkdir(parents=True)
    (tmp_path / study.folder / "finding.json").write_text(json.dumps(
        {"folder": study.folder, "claim": "c", "source": "s", "verdict": "holds", "key_figure": "old",
         "hypotheses": [row], "analysis": {"verdict": None, "key_figure": "best acc per task"}}))
    readme = tmp_path / "README.md"
    readme.write_text(f"{findings.START}\n{findings.END}\n")
    findings.write_tables(tmp_path, readme)
    text = readme.read_text()
    assert "| **1 invalid (plasticity); analysis gave no verdict** |" in text
    assert ("forgets-less: invalid, plasticity (NOT MET): a 'shampoo': median 0.01, 8 of 8 seeds failing"
            in text and "analysis: best acc per task" in text)
    assert "guards: plasticity (NOT MET)" in (tmp_path / "FINDINGS.md").read_text()
