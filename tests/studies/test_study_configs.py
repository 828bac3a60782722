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
        {"folder": first.folder, "claim": "c | d", "source": "s", "verdict": "holds", "key_figure": "k",
         "version": first.version}))
    readme = tmp_path / "README.md"
    readme.write_text(f"x\n{findings.START}\nSTALE_ROW\n{findings.END}\ny\n")
    findings.write_tables(tmp_path, readme)
    text = readme.read_text()
    assert "STALE_ROW" not in text and text.startswith("x\n") and text.endswith("y\n") and first.claim in text and text.count("| **not run** |") == len(CATALOG.STUDIES) - 1
    assert f"| v{first.version}, {first.protocol} | **holds** |" in text
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
         "version": study.version,
         "hypotheses": [row], "analysis": {"verdict": None, "key_figure": "best acc per task"}}))
    readme = tmp_path / "README.md"
    readme.write_text(f"{findings.START}\n{findings.END}\n")
    findings.write_tables(tmp_path, readme)
    text = readme.read_text()
    assert "| **1 invalid (plasticity); analysis gave no verdict** |" in text
    assert ("forgets-less: invalid, plasticity (NOT MET): a 'shampoo': median 0.01, 8 of 8 seeds failing"
            in text and "analysis: best acc per task" in text)
    assert "guards: plasticity (NOT MET)" in (tmp_path / "FINDINGS.md").read_text()


def _row(name: str, verdict: str, n: int, **more) -> dict:
    return {"hypothesis": name, "verdict": verdict, "test": "mann-whitney", "p": 0.01, "p_holm": 0.02,
            "effect_measure": "cliffs_delta", "effect": -0.5, "effect_low": -0.8, "effect_high": -0.1,
            "power": 0.5, "n_a": n, "n_b": n, "reason": "fixed-n"} | more


def test_a_sequential_decision_is_the_verdict_and_its_seeds_are_the_looks():
    """After `verify --until-decided`, the design's decision (and the seeds of the look that
    decided) is the verdict, not a fixed-n test over every seed; Fisher/equivalence rows stay."""
    findings = _findings()
    finding = {"hypotheses": [_row("h1", "holds", 32), _row("h2", "inconclusive", 32), _row("eq", "holds", 32)],
               "sequential": [{"hypothesis": "h1", "verdict": "holds", "n_a": 16, "n_b": 16, "looks": 2,
                               "power": 0.9, "reason": "z 4.2 >= boundary 3.9"},
                              {"hypothesis": "h2", "verdict": "fails", "n_a": 32, "n_b": 32, "looks": 4,
                               "power": 0.2, "reason": "futility"},
                              {"hypothesis": "eq", "verdict": "fails", "n_a": 16, "n_b": 16, "looks": 0,
                               "p_holm": 0.06, "reason": "fixed-n at the planned seeds: TOST"}]}
    out = findings.summarise(finding)
    assert out["verdict"] == "1 holds, 2 fail"
    assert findings.seeds_used(out) == "16-32"
    assert "sequential, look 2" in out["hypotheses"][0]["reason"]
    eq = out["hypotheses"][2]  # judged at its planned 16 seeds, not the 32 the store holds
    assert (eq["verdict"], eq["n_a"], eq["p_holm"]) == ("fails", 16, 0.06)


def test_paper_scale_and_an_old_versions_record_in_the_table(tmp_path):
    """The paper-scale record has its own column; a record of an older protocol version never
    stands for the current one (the row says "not run" until the new version runs)."""
    findings = _findings()
    first, second = CATALOG.STUDIES[0], CATALOG.STUDIES[1]
    for study, version in ((first, first.version), (second, second.version + 1)):
        (tmp_path / study.folder).mkdir(parents=True)
        (tmp_path / study.folder / "finding.json").write_text(json.dumps(
            {"folder": study.folder, "version": version, "hypotheses": [_row("h", "holds", 8)]}))
    (tmp_path / first.folder / "finding.paper.json").write_text(json.dumps(
        {"version": first.version, "wall_s": 600, "hypotheses": [_row("h", "fails", 64)]}))
    rows = {f["folder"]: f for f in findings.load_findings(tmp_path)}
    assert findings.paper_cell(rows[first.folder]) == "1 fails (64 seeds, 10 min)"
    assert rows[second.folder]["verdict"] == "not run"
    assert findings.seeds_used(rows[first.folder]) == "8"


def test_run_all_picks_the_scales_file_and_runs_the_longest_first(tmp_path, monkeypatch):
    """`--scale paper` reads paper.toml (overrides go to a git-ignored copy beside the store), and
    studies are dealt out longest first by their last recorded wall time."""
    sys.path.insert(0, str(STUDIES_DIR))
    try:
        run_all = _module("run_all")
    finally:
        sys.path.remove(str(STUDIES_DIR))
    study = tmp_path / "s"
    study.mkdir()
    (study / "paper.toml").write_text("[experiment]\nname = \"s\"\nseeds = 64\nsteps = 2000\n")
    path = run_all.overridden_config(study, study / "runs-paper", None, None, "paper")
    assert path == study / "paper.toml" and run_all.configured_seeds(path) == 64
    copy = run_all.overridden_config(study, study / "runs-paper", 8, None, "paper")
    assert copy == study / "runs-paper.override.toml" and run_all.configured_seeds(copy) == 8
    monkeypatch.setattr(run_all, "HERE", tmp_path)
    a, b = CATALOG.Study("a", "c", "s"), CATALOG.Study("b", "c", "s")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "finding.json").write_text(json.dumps({"wall_s": 300}))
    (tmp_path / "a" / "finding.json").write_text(json.dumps({"train_wall_s": 10}))
    order = []
    monkeypatch.setattr(run_all, "run_study", lambda s, **kw: order.append(s.folder) or {"verdict": "x"})
    run_all.run_studies([a, b], jobs=1, scale="default", keep=False, seeds=None, steps=None, device=None)
    assert order == ["b", "a"]
    with pytest.raises(ValueError, match="protocol 'fair'"):
        CATALOG.Study("a", "c", "s", protocol="fair")


@pytest.mark.parametrize("study", CATALOG.STUDIES, ids=lambda s: s.folder)
def test_each_study_has_a_paper_size_of_the_same_experiment_and_keeps_its_old_versions(study):
    """paper.toml is the same experiment (name, hypotheses) at a larger size; every earlier
    version's experiment file and verdict record is kept in vN/; the README states the protocol
    and the paper-scale result."""
    import tomllib

    folder = STUDIES_DIR / study.folder
    default = tomllib.loads((folder / "study.toml").read_text())
    paper = tomllib.loads((folder / "paper.toml").read_text())
    assert paper["experiment"]["name"] == default["experiment"]["name"]
    assert [h["name"] for h in paper.get("hypotheses", [])] == [h["name"] for h in default.get("hypotheses", [])]
    assert load_config(folder / "paper.toml").cells()
    archived = sorted(p.name for p in folder.glob("v[0-9]*") if p.is_dir())
    assert archived == [f"v{v}" for v in range(1, study.version)] or (
        study.folder == "vaswani_armijo_convex" and archived == ["v2"])  # v1 and v2 shared settings (v2 added [verification])
    for old in archived:
        assert (folder / old / "study.toml").exists() and (folder / old / "finding.json").exists()
    readme = (folder / "README.md").read_text().lower()
    assert "protocol" in readme and "paper" in readme
