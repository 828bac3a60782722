"""The HTML report and its plots."""

from optiscope.report.html import EXTRA_SECTIONS, Section, build_report

__all__ = ["EXTRA_SECTIONS", "Section", "build_report"]
