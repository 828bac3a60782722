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
    sys.path.insert(0, str(STUDIES_DIR))
    try:
        findings = _module("findings")
        run_all = _module("run_all")
    finally:
        sys.path.remove(str(STUDIES_DIR))
    first = CATALOG.STUDIES[0]
    (tmp_path / first.folder / "runs").mkdir(parents=True)
    (tmp_path / first.folder / "runs" / "finding.json").write_text(json.dumps(
        {"folder": first.folder, "claim": "c | d", "source": "s", "verdict": "holds", "key_figure": "k"}))
    readme = tmp_path / "README.md"
    readme.write_text(f"x\n{findings.START}\nSTALE_ROW\n{findings.END}\ny\n")
    findings.write_tables(tmp_path, readme)
    text = readme.read_text()
    assert "STALE_ROW" not in text and text.startswith("x\n") and text.endswith("y\n") and "c \\| d" in text and text.count("| **not run** |") == len(CATALOG.STUDIES) - 1
    assert (tmp_path / "FINDINGS.md").exists()
    hold, fail = {"verdict": "holds"}, {"verdict": "fails"}
    assert run_all.overall([hold, hold], None) == "holds"
    assert run_all.overall([hold, fail], None) == "mixed (1/2 hold)"
    assert run_all.overall([fail, {"verdict": "inconclusive"}], None) == "fails"
    assert run_all.overall([hold], {"verdict": "fails"}) == "fails"
    assert run_all.overall([fail], {"verdict": None}) == "fails"
