"""The sequential path plot draws the stored looks against their boundaries."""

from __future__ import annotations

import numpy as np

from optiscope.hypotheses.sequential import Claim, SequentialPlan, look_path, sequential_look
from optiscope.report.sequential_plot import sequential_path, sequential_path_figure


def test_the_plot_draws_every_look_and_the_planned_boundaries():
    plan = SequentialPlan(max_seeds=32, batch=8)
    claim = Claim("h", "less")
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 32), rng.normal(0.4, 1, 32)
    looks = []
    for n in plan.schedule()[:2]:
        looks += sequential_look({"h": (a[:n], b[:n])}, [claim], plan, looks).looks
    path = look_path(looks, "h", claim=claim, plan=plan)
    assert len(path["planned_fraction"]) == 4
    np.testing.assert_allclose(path["planned_efficacy"][:2], path["efficacy"], atol=1e-9)
    fig = sequential_path_figure(path, "h")
    lines = {ln.get_label(): ln for ln in fig.axes[0].get_lines()}
    z = lines["z (claimed direction)"]
    np.testing.assert_allclose(z.get_xdata(), [0.25, 0.5])
    np.testing.assert_allclose(z.get_ydata(), path["statistic"])
    svg = sequential_path(path, "h")
    assert svg.startswith("<svg") and "information fraction" in svg
