"""The report's probe panels (optiscope.report.probes_section)."""

from __future__ import annotations

import re

from optiscope.report import build_report
from optiscope.report.data import StoreView
from optiscope.report.probes_section import probes_section


def test_report_has_probe_panels_of_trajectories_and_final_distributions(probed_store, tmp_path):
    out = build_report(probed_store, tmp_path / "report.html")
    page = out.read_text()
    assert "Probes: geometry and solutions" in page and "id=\"probes\"" in page
    section = page[page.index('id="probes"'):]
    for name in ("r_med/layer1.weight", "top_eig", "eff_rank/layer1.weight", "barrier_to_next",
                 "class_cosine/layer1", "rep_eff_rank/layer1"):
        assert name in section
    task_part = page[: page.index('id="probes"')]
    assert "r_med/layer1.weight" not in task_part  # owned by the probe section
    along, final = section[: section.index("</section>")].split("<h4>Final solutions</h4>")
    assert "Along the trajectory" in along and along.count("<svg") >= 5
    assert final.count("<svg") >= 10
    # One row per (global probe or R_med tensor) x cell in the final table.
    assert len(re.findall(r"<tr><td>top_eig</td>", final)) == 2


def test_no_probe_section_without_probe_metrics(tmp_store):
    assert probes_section(StoreView.load(tmp_store)) is None
