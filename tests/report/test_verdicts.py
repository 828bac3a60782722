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
    return re.findall(r"<h2>([^<]*)</h2>", page.split("\n<script>")[0])  # not the inlined library


def test_the_first_section_is_the_verdicts(handmade, tmp_path):
    two_cells(handmade)
    handmade.save_config("[experiment]\nname = 'x'\n" + CLAIMS)
    page = build_report(handmade, tmp_path / "r.html").read_text()
    assert titles(page)[:2] == ["Summary", "Hypotheses: verdicts"]  # the answer first, then the claims
    assert titles(page)[-1] == "Setup"
    summary = page.split("<h2>Summary</h2>")[1].split("<h2>")[0]
    assert "<b class='verdict verdict-holds'>holds</b>: fast-lower" in summary
    section = page.split("<h2>Hypotheses: verdicts</h2>")[1].split("<h2>")[0]
    assert "fast-lower" in section and "<b>holds</b>" in section
    assert "<b>1</b> of 1 hypotheses hold" in section
    # the exact one-sided p of complete separation, 1 / C(16, 8)
    assert "7.77e-05" in section


def test_no_verdicts_without_hypotheses(handmade, tmp_path):
    two_cells(handmade)
    handmade.save_config("[experiment]\nname = 'x'\n")
    page = build_report(handmade, tmp_path / "r.html").read_text()
    assert "Hypotheses: verdicts" not in page and titles(page)[0] == "Summary"
    assert "href='#verdicts'" not in page


def test_a_hypothesis_that_cannot_be_evaluated_is_shown_with_the_reason(handmade, tmp_path):
    two_cells(handmade)
    handmade.save_config(CLAIMS.replace('metric = "f_gap"', 'metric = "f_gp"'))
    page = build_report(handmade, tmp_path / "r.html").read_text()
    assert titles(page)[:2] == ["Summary", "Hypotheses: verdicts"]
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
def test_any_verdict_string_and_sequential_looks_are_shown(handmade, tmp_path, monkeypatch):
    """A verdict the hypotheses module adds later (say "invalid") and a hypothesis's stored looks
    render without a change here: counted, coloured and tabled generically."""
    from dataclasses import dataclass

    import optiscope.hypotheses.evaluate as evaluate_module

    @dataclass
    class Look:
        n: int
        statistic: float
        boundary: float
        decision: str

    class Later:
        """A verdict as a later hypotheses module may return it: a new string, looks attached."""

        def __init__(self, v):
            self._v, self.verdict = v, "invalid"
            self.looks = [Look(8, 1.23456, 2.5, "continue"), Look(16, 3.1, 2.2, "holds")]

        def __getattr__(self, name):
            return getattr(self._v, name)

    real = evaluate_module.evaluate

    def with_invalid(view, hypotheses, *experiment):
        out = real(view, hypotheses, *experiment)
        return [Later(out[0]), *out[1:]]

    monkeypatch.setattr(evaluate_module, "evaluate", with_invalid)
    two_cells(handmade)
    handmade.save_config("[experiment]\nname = 'x'\n" + CLAIMS)
    page = build_report(handmade, tmp_path / "r.html").read_text()
    section = page.split("<h2>Hypotheses: verdicts</h2>")[1].split("<h2>")[0]
    assert "<b>0</b> of 1 hypotheses hold; 0 fail; 0 inconclusive; 1 invalid." in section
    assert "<b>invalid</b>" in section and "2 sequential looks" in section
    assert "<th>boundary</th>" in section and "<td class=num>1.235</td>" in section
    assert "verdict-invalid'>invalid</b>" in page.split("<h2>Summary</h2>")[1]
