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
    return Section(TITLE, "verdicts", summary + Markup(table) + sequential_paths(view, text))


def sequential_paths(view: StoreView, config_text: str) -> Markup:
    """Each hypothesis' looks of `verify --until-decided` against its boundaries (nothing when
    the store holds no verification of this experiment)."""
    import tomllib

    from optiscope.hypotheses.sequential import Claim, SequentialPlan, look_path
    from optiscope.hypotheses.spec import parse_hypothesis_list
    from optiscope.hypotheses.verification import load_looks
    from optiscope.report.sequential_plot import sequential_path

    experiment = tomllib.loads(config_text).get("experiment", {}).get("name")
    if not experiment:
        return Markup()
    plan, looks = load_looks(view.store, str(experiment))
    if plan is None or not looks:
        return Markup()
    seq_plan = SequentialPlan.from_dict(plan)
    hypotheses = {h.name: h for h in parse_hypothesis_list(tomllib.loads(config_text).get("hypotheses", []))}
    out = Markup("<h3>Sequential verification</h3><p>Each look of <code>verify --until-decided</code> "
                 "(up to {} seeds per cell, {} spending): the hypothesis holds where its z crosses the "
                 "efficacy boundary and fails below the futility boundary.</p>").format(
        seq_plan.max_seeds, seq_plan.spending)
    for name in dict.fromkeys(lk.hypothesis for lk in looks):
        h = hypotheses.get(name)
        claim = Claim.from_hypothesis(h) if h is not None else None
        path = look_path(looks, name, claim=claim, plan=seq_plan if claim else None)
        out += Markup('<div class="figure">{}</div>').format(Markup(sequential_path(path, name)))
    return out


LEADING_SECTIONS.append(verdicts_section)
