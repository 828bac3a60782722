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
    from optiscope.hypotheses.evaluate import evaluate, hypotheses_from_text, scoped

    claims = {n: t for n, t in view.store.experiment_configs().items() if _has_hypotheses(t)}
    if not claims:
        return None
    verdicts = []
    try:
        for name, text in claims.items():  # each experiment's claims on its own cells
            verdicts += evaluate(scoped(view, name), hypotheses_from_text(text, f"the saved config of {name}"), name)
    except OptiscopeError as exc:
        return Section(TITLE, "verdicts", note(f"The hypotheses could not be evaluated: {exc}"))
    # Every verdict string is counted and shown as it comes (holds, fails, inconclusive, and any
    # other the hypotheses module returns, such as invalid), so a new verdict needs no change here.
    view.extras["verdicts"] = verdicts  # restated, one line each, in the report's summary
    counts: dict[str, int] = {}
    for v in verdicts:
        counts[v.verdict] = counts.get(v.verdict, 0) + 1
    known = {"fails": "fail", "inconclusive": "inconclusive", "invalid": "invalid"}
    others = [Markup("{} {}").format(counts.get(k, 0), word) for k, word in known.items()]
    others += [Markup("{} {}").format(n, k) for k, n in counts.items() if k != "holds" and k not in known]
    summary = Markup("<p><b>{}</b> of {} hypotheses hold; {}.</p>").format(
        counts.get("holds", 0), len(verdicts), Markup("; ").join(others))
    tasks = {v.task for v in verdicts}
    if len(tasks) == 1:
        summary += Markup("<p>Task: {}.</p>").format(next(iter(tasks)))
    if len(claims) > 1:
        summary += Markup("<p>Experiments judged (each on its own cells, Holm within each): {}.</p>").format(
            ", ".join(claims))
    table = ENV.get_template("verdicts.html").module.verdicts(verdicts, len(verdicts), len(tasks) > 1,
                                                             {v.name: _rows(getattr(v, "looks", None)) for v in verdicts})
    paths = Markup("").join(sequential_paths(view, text) for text in claims.values())
    return Section(TITLE, "verdicts", summary + Markup(table) + paths)


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


def _rows(looks: object) -> list[dict]:
    """A hypothesis's sequential looks (if it has any) as table rows, whatever they are stored as
    (dicts, dataclasses or named tuples): one row per look, one column per field."""
    import dataclasses

    out = []
    for look in looks or []:
        if dataclasses.is_dataclass(look) and not isinstance(look, type):
            out.append(dataclasses.asdict(look))
        elif hasattr(look, "_asdict"):
            out.append(look._asdict())
        elif isinstance(look, dict):
            out.append(dict(look))
    return out


LEADING_SECTIONS.append(verdicts_section)
