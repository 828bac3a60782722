"""The HTML report and its plots."""

from optiscope.report.html import EXTRA_SECTIONS, Section, build_report
from optiscope.report import probes_section  # noqa: F401,E402  (registers the probe panels)

__all__ = ["EXTRA_SECTIONS", "Section", "build_report"]
