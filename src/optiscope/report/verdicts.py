"""The report's opening section: the verdicts of the experiment's `[[hypotheses]]`.

Shown first, when the store's saved config has hypotheses; the numbers are those of
`optiscope verify` (optiscope.hypotheses.evaluate), computed from the store alone. A hypothesis
that cannot be evaluated (a cell or metric the store lacks) is reported here with the reason,
never silently left out.
"""

from __future__ import annotations

from markupsafe import Markup

from optiscope.errors import OptiscopeError
from optiscope.report.data import StoreView
from optiscope.report.html import ENV, LEADING_SECTIONS, Section, note

TITLE = "Hypotheses: verdicts"


def _has_hypotheses(text: str) -> bool:
    import tomllib

    try:
        return bool(tomllib.loads(text).get("hypotheses"))
    except tomllib.TOMLDecodeError:
        return False


def verdicts_section(view: StoreView) -> Section | None:
    """The verdicts table; None when the saved config states no hypotheses."""
    # Imported here: optiscope.hypotheses reads stores through optiscope.report.data, so a
    # module-level import would be circular when the hypotheses are imported first.
    from optiscope.hypotheses.evaluate import evaluate, hypotheses_from_text

    text = view.store.config_text()
    if text is None or not _has_hypotheses(text):
        return None
    try:
        verdicts = evaluate(view, hypotheses_from_text(text, "the saved config"))
    except OptiscopeError as exc:
        return Section(TITLE, "verdicts", note(f"The hypotheses could not be evaluated: {exc}"))
    counts = {k: sum(v.verdict == k for v in verdicts) for k in ("holds", "fails", "inconclusive", "invalid")}
    summary = Markup("<p><b>{}</b> of {} hypotheses hold; {} fail; {} inconclusive; {} invalid.</p>").format(
        counts["holds"], len(verdicts), counts["fails"], counts["inconclusive"], counts["invalid"])
    tasks = {v.task for v in verdicts}
    if len(tasks) == 1:
        summary += Markup("<p>Task: {}.</p>").format(next(iter(tasks)))
    table = ENV.get_template("verdicts.html").module.verdicts(verdicts, len(verdicts), len(tasks) > 1)
    return Section(TITLE, "verdicts", summary + Markup(table))


LEADING_SECTIONS.append(verdicts_section)
