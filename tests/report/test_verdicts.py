"""The report opens with the hypotheses' verdicts when the saved config states hypotheses."""

from __future__ import annotations

import re

import numpy as np

from optiscope.report import build_report

from .conftest import write_cell

CLAIMS = """
[[hypotheses]]
name = "fast-lower"
metric = "f_gap"
a = "fast"
b = "slow"
direction = "less"
"""


def two_cells(store) -> None:
    steps = [0, 10]
    write_cell(store, "c1", "fast", {"f_gap": np.column_stack([np.ones(8), np.arange(8) * 0.01])}, steps)
    write_cell(store, "c2", "slow", {"f_gap": np.column_stack([np.ones(8), 1 + np.arange(8) * 0.01])}, steps,
               optimizer="adam")


def titles(page: str) -> list[str]:
    return re.findall(r"<h2>([^<]*)</h2>", page)


def test_the_first_section_is_the_verdicts(handmade, tmp_path):
    two_cells(handmade)
    handmade.save_config("[experiment]\nname = 'x'\n" + CLAIMS)
    page = build_report(handmade, tmp_path / "r.html").read_text()
    assert titles(page)[0] == "Hypotheses: verdicts"
    assert titles(page)[1] == "Setup"
    section = page.split("<h2>Hypotheses: verdicts</h2>")[1].split("<h2>")[0]
    assert "fast-lower" in section and "<b>holds</b>" in section
    assert "<b>1</b> of 1 hypotheses hold" in section
    # the exact one-sided p of complete separation, 1 / C(16, 8)
    assert "7.77e-05" in section


def test_no_verdicts_without_hypotheses(handmade, tmp_path):
    two_cells(handmade)
    handmade.save_config("[experiment]\nname = 'x'\n")
    page = build_report(handmade, tmp_path / "r.html").read_text()
    assert "Hypotheses: verdicts" not in page and titles(page)[0] == "Setup"


def test_a_hypothesis_that_cannot_be_evaluated_is_shown_with_the_reason(handmade, tmp_path):
    two_cells(handmade)
    handmade.save_config(CLAIMS.replace('metric = "f_gap"', 'metric = "f_gp"'))
    page = build_report(handmade, tmp_path / "r.html").read_text()
    assert titles(page)[0] == "Hypotheses: verdicts"
    assert "could not be evaluated" in page and "unknown metric &#39;f_gp&#39;" in page


def test_an_invalid_verdict_shows_the_unmet_guard_and_its_values(handmade, tmp_path):
    two_cells(handmade)
    handmade.save_config("[experiment]\nname = 'x'\n" + CLAIMS
                         + 'requires = [{ side = "b", metric = "f_gap", op = "<", value = 0.5, name = "slow-trained" }]\n')
    page = build_report(handmade, tmp_path / "r.html").read_text()
    section = page.split("<h2>Hypotheses: verdicts</h2>")[1].split("<h2>")[0]
    assert "<b>0</b> of 1 hypotheses hold; 0 fail; 0 inconclusive; 1 invalid." in section
    assert "<b>invalid</b>" in section and "<th>guards</th>" in section
    assert "<b>slow-trained (NOT MET): b &#39;slow&#39;: median 1.04 (range 1 to 1.07), 8 of 8 seeds failing" in section
