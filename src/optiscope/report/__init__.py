"""The HTML report and its plots."""

from optiscope.report.html import EXTRA_SECTIONS, Section, build_report
from optiscope.report import probes_section  # noqa: F401,E402  (registers the probe panels)
from optiscope.report import tuning_section  # noqa: F401,E402  (registers the tuning section)
from optiscope.report import verdicts  # noqa: F401,E402  (registers the hypotheses' verdicts, first)
from optiscope.report import continual  # noqa: F401,E402  (registers the continual-learning section)

__all__ = ["EXTRA_SECTIONS", "Section", "build_report"]
