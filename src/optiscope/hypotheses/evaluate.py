"""Verdicts: every hypothesis of an experiment tested on the stored runs, Holm-corrected together.

A hypothesis

- **holds** when its Holm-adjusted p-value is below `alpha` (TOST's for `equivalent`) and,
  for less / greater / two-sided, its effect in the stated direction is at least `min_effect`;
- **fails** when it does not hold and either the effect is significant the other way (the
  opposite one-sided p-value, Bonferroni-corrected over the family, is below alpha; for
  `equivalent`, the shift significantly beyond the margin, see `inference`) or the
  test had the power asked (`power`, default 0.8) to detect `min_effect` (or, for equivalence,
  to show it at a true difference of 0) with the runs it has (see `optiscope.hypotheses.power`);
- is **inconclusive** otherwise: not enough seeds to tell; the verdict says how much power there
  was. A test that could not run (say, a permutation test over diverged runs) is inconclusive
  too, with its reason;
- is **invalid**, whatever the test says, when one of its guards is not met (`requires`, and
  the plasticity guard of forgetting hypotheses: see `guards`); the reason names each unmet
  condition with the values measured, and then what the test alone would have said. Its test
  still runs and stays in the Holm family (the conservative choice: a claim that turns out
  invalid does not lend its alpha to the others).

`optiscope verify` exits 0 only when every hypothesis holds; inconclusive and invalid count as
not holding.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from optiscope.errors import OptiscopeError
from optiscope.hypotheses.guards import GuardCheck, check_guards, unmet
from optiscope.hypotheses.inference import TestOutcome, run_test
from optiscope.hypotheses.power import equivalence_power, fisher_power, margin_as_delta, mann_whitney_power
from optiscope.hypotheses.samples import Samples, hypothesis_samples
from optiscope.hypotheses.spec import RATE_STATISTICS, Hypothesis, parse_hypothesis_list
from optiscope.report.data import StoreView, configured_seeds, verified_seeds
from optiscope.stats import Interval, holm
from optiscope.store import RunStore

VERDICTS = ("holds", "fails", "inconclusive", "invalid")
NAN = float("nan")


@dataclass(frozen=True)
class Verdict:
    """One hypothesis' outcome, with the numbers behind it (scipy-style result object)."""

    hypothesis: Hypothesis
    verdict: str  # holds | fails | inconclusive | invalid
    reason: str
    test: str
    statistic: float
    pvalue: float
    pvalue_adjusted: float
    pvalue_method: str
    effect: Interval
    effect_measure: str  # cliffs_delta | shift | rate_difference
    power: float
    a: str  # the resolved cells' labels
    b: str
    task: str
    n_a: int
    n_b: int
    worst_a: int  # runs counted as the worst outcome (diverged, never reaching a target, ...)
    worst_b: int
    median_a: float
    median_b: float
    note: str = ""
    guards: tuple[GuardCheck, ...] = ()  # every guard checked, met or not
    unlogged: tuple[int, int] = (0, 0)  # runs of a and b (not failed or diverged) with no value logged
    experiment: str = ""  # whose [[hypotheses]] it is (its cells are resolved among that one's)

    @property
    def name(self) -> str:
        return self.hypothesis.name

    @property
    def unmet_guards(self) -> tuple[GuardCheck, ...]:
        return unmet(self.guards)

    def guards_failed(self) -> str:
        """The unmet guards' names, each once ("plasticity; b: at most 2 diverged seeds"), or "";
        "metric logged" when a run of either side never logged the compared metric."""
        names = [c.name for c in self.unmet_guards] + (["metric logged"] if any(self.unlogged) else [])
        return "; ".join(dict.fromkeys(names))

    def guards_text(self) -> str:
        """Every guard with its measured values, one clause per condition and side."""
        return "; ".join(f"{c.name} ({'met' if c.met else 'NOT MET'}): {c.describe()}" for c in self.guards)

    @property
    def holds(self) -> bool:
        return self.verdict == "holds"

    def confidence_interval(self) -> Interval:
        return self.effect


def _median(x: np.ndarray) -> float:
    return float(np.median(x)) if x.size else NAN


def _oriented(h: Hypothesis, effect: float) -> float:
    """The effect in the stated direction (positive: the way the hypothesis says)."""
    if h.direction == "less":
        return -effect
    return abs(effect) if h.direction == "two-sided" else effect


def test_power(h: Hypothesis, s: Samples, family_size: int) -> float:
    """Power of `h`'s test at its smallest effect that matters, at level alpha / family size."""
    level = h.alpha / max(family_size, 1)
    if h.test_name == "fisher":
        baseline = float(np.concatenate([s.a, s.b]).mean())
        return fisher_power(s.a.size, s.b.size, h.smallest_effect, level, h.direction, baseline)
    if h.direction == "equivalent":
        assert h.margin is not None
        return equivalence_power(s.a.size, s.b.size, margin_as_delta(s.a, s.b, h.margin), level)
    return mann_whitney_power(s.a.size, s.b.size, h.smallest_effect, level, h.direction == "two-sided")


def decide(h: Hypothesis, outcome: TestOutcome, p_adjusted: float, power: float, family_size: int) -> tuple[str, str]:
    """(verdict, reason) from the adjusted p-value, the effect and the power (module docstring)."""
    if not np.isfinite(p_adjusted):
        return "inconclusive", f"the test could not run: {outcome.note or 'no p-value'}"
    significant = p_adjusted < h.alpha
    effect = outcome.effect.estimate
    if h.direction == "equivalent":
        if significant:
            return "holds", f"TOST p (Holm) {p_adjusted:.3g} < {h.alpha:g}: |shift| < {h.margin:g}"
        beyond = outcome.pvalue_opposite * family_size
        if np.isfinite(beyond) and beyond < h.alpha:
            return "fails", (f"the shift {effect:.3g} is significantly beyond the margin "
                             f"{h.margin:g} (p x {family_size} = {beyond:.3g})")
        big = f"TOST p (Holm) {p_adjusted:.3g} >= {h.alpha:g}"
    else:
        oriented = _oriented(h, effect)
        large = bool(np.isfinite(oriented) and oriented >= h.smallest_effect)
        if significant and large:
            return "holds", (f"p (Holm) {p_adjusted:.3g} < {h.alpha:g} and {outcome_name(h)} "
                             f"{effect:.3g} reaches min_effect {h.smallest_effect:g}")
        other = outcome.pvalue_opposite * family_size
        if np.isfinite(other) and other < h.alpha:
            return "fails", f"significant the other way (opposite p x {family_size} = {other:.3g})"
        big = (f"p (Holm) {p_adjusted:.3g} >= {h.alpha:g}" if not significant else
               f"{outcome_name(h)} {effect:.3g} is below min_effect {h.smallest_effect:g}")
    if power >= h.power:
        return "fails", f"{big}, with power {power:.2f} >= {h.power:g}"
    return "inconclusive", f"{big}, but power {power:.2f} < {h.power:g}: too few seeds to tell"


def outcome_name(h: Hypothesis) -> str:
    return {"cliffs_delta": "Cliff's delta", "shift": "shift", "rate_difference": "rate difference"}[h.effect_measure]


def evaluate(view: StoreView, hypotheses: list[Hypothesis], experiment: str = "") -> list[Verdict]:
    """Every hypothesis tested on `view`'s store, p-values Holm-adjusted together.

    Raises OptiscopeError for bad input (a cell or metric the store does not have).
    """
    samples = [hypothesis_samples(view, h) for h in hypotheses]
    guards = [check_guards(view, h, s.cell_a, s.cell_b) for h, s in zip(hypotheses, samples, strict=True)]
    outcomes: list[TestOutcome | None] = []
    for h, s in zip(hypotheses, samples, strict=True):
        outcomes.append(run_test(h, s.a, s.b) if s.a.size and s.b.size else None)
    raw = np.array([o.pvalue if o is not None else NAN for o in outcomes], dtype=float)
    adjusted = holm(raw) if raw.size else raw
    m = int(np.isfinite(raw).sum())
    verdicts = []
    for h, s, o, p_adj, g in zip(hypotheses, samples, outcomes, adjusted, guards, strict=True):
        verdicts.append(replace(logged(guarded(_verdict(h, s, o, float(p_adj), m), g), s), experiment=experiment))
    return verdicts


def logged(v: Verdict, s: Samples) -> Verdict:
    """"invalid" when a run that neither failed nor diverged logged no value of the compared
    metric: its missing value would otherwise count as the worst outcome, like a divergence."""
    if not (s.unlogged_a or s.unlogged_b):
        return v
    sides = [f"{k} of {side.size} runs of {name} '{cell.label}'" for k, side, name, cell in
             ((s.unlogged_a, s.a, "a", s.cell_a), (s.unlogged_b, s.b, "b", s.cell_b)) if k]
    reason = (f"invalid: {' and '.join(sides)} logged no value of {', '.join(s.metrics)} without failing or "
              f"diverging (never measured: e.g. a probe not run on them); a missing value is not an outcome. "
              f"Without them: {v.verdict} ({v.reason})")
    return replace(v, verdict="invalid", reason=reason, unlogged=(s.unlogged_a, s.unlogged_b))


def guarded(v: Verdict, checks: tuple[GuardCheck, ...]) -> Verdict:
    """`v` with its guards attached; "invalid" when one is not met (module docstring)."""
    failed = unmet(checks)
    if not failed:
        return replace(v, guards=checks)
    by_req: dict[str, list[GuardCheck]] = {}
    for c in failed:
        by_req.setdefault(c.name, []).append(c)
    parts = [f"{name} not met ({cs[0].requirement.describe()}): " + "; ".join(c.describe() for c in cs)
             for name, cs in by_req.items()]
    reason = f"invalid: {' | '.join(parts)}. Without the guards: {v.verdict} ({v.reason})"
    return replace(v, verdict="invalid", reason=reason, guards=checks)


def _verdict(h: Hypothesis, s: Samples, o: TestOutcome | None, p_adj: float, m: int) -> Verdict:
    worst = -np.inf if s.goal == "max" else np.inf
    if h.statistic in RATE_STATISTICS:
        worst_a, worst_b = int((s.a == 0).sum()), int((s.b == 0).sum())
    else:
        worst_a, worst_b = int((s.a == worst).sum()), int((s.b == worst).sum())
    common = {
        "hypothesis": h, "test": h.test_name, "effect_measure": h.effect_measure,
        "a": s.cell_a.label, "b": s.cell_b.label, "task": s.cell_a.task_key,
        "n_a": int(s.a.size), "n_b": int(s.b.size), "worst_a": worst_a, "worst_b": worst_b,
        "median_a": _median(s.a), "median_b": _median(s.b),
    }
    if o is None:
        empty = s.cell_a.label if not s.a.size else s.cell_b.label
        return Verdict(verdict="inconclusive", reason=f"cell '{empty}' has no runs that did not fail",
                       statistic=NAN, pvalue=NAN, pvalue_adjusted=NAN, pvalue_method="",
                       effect=Interval(NAN, NAN, NAN, 0.95, ""), power=0.0, note=s.note, **common)
    power = test_power(h, s, m)
    verdict, reason = decide(h, o, p_adj, power, m)
    note = "; ".join(n for n in (s.note, o.note, o.effect.note) if n)
    return Verdict(verdict=verdict, reason=reason, statistic=o.statistic, pvalue=o.pvalue,
                   pvalue_adjusted=p_adj, pvalue_method=o.pvalue_method, effect=o.effect,
                   power=power, note=note, **common)


#: The columns `optiscope verify` prints, one row per hypothesis (`verdict_rows`).
VERDICT_COLUMNS = [
    "hypothesis", "verdict", "claim", "test", "statistic", "p", "p_holm", "effect_measure",
    "effect", "effect_low", "effect_high", "power", "n_a", "n_b", "reason", "task", "note",
    "guards_failed", "guards", "experiment",
]


def verdict_rows(verdicts: list[Verdict]) -> list[list[Any]]:
    """One row of `VERDICT_COLUMNS` per verdict, numbers at full precision."""
    return [
        [v.name, v.verdict, v.hypothesis.describe(), v.test, v.statistic, v.pvalue, v.pvalue_adjusted,
         v.effect_measure, v.effect.estimate, v.effect.low, v.effect.high, v.power, v.n_a, v.n_b,
         v.reason, v.task, v.note, v.guards_failed(), v.guards_text(), v.experiment]
        for v in verdicts
    ]


def hypotheses_from_text(text: str, source: str) -> list[Hypothesis]:
    """The `[[hypotheses]]` of a TOML text (an experiment file, or a file of hypotheses only)."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise OptiscopeError(f"{source}: malformed TOML: {exc}") from None
    entries = raw.get("hypotheses", [])
    if not isinstance(entries, list) or not entries:
        raise OptiscopeError(f"{source} has no [[hypotheses]] tables: nothing to verify")
    try:
        return parse_hypothesis_list(entries)
    except OptiscopeError as exc:
        raise OptiscopeError(f"{source}: {exc}") from None


def store_hypotheses(store: RunStore, config_text: str | None = None, config: Any = None) -> list[Hypothesis]:
    """The hypotheses to verify: from `config` (an ExperimentConfig, a path or TOML text),
    `config_text`, else the config saved in the store. A non-string `config_text` (a path or a
    config, passed positionally) is taken as `config`."""
    if config is None and config_text is not None and not isinstance(config_text, str):
        config, config_text = config_text, None
    if config is not None and not isinstance(config, (str, Path)):
        if not getattr(config, "hypotheses", None):
            raise OptiscopeError("the config has no [[hypotheses]] tables: nothing to verify")
        return parse_hypothesis_list(config.hypotheses)
    if isinstance(config, Path) or (isinstance(config, str) and "\n" not in config and Path(config).is_file()):
        path = Path(config)
        if not path.exists():
            raise OptiscopeError(f"config file '{path}' does not exist")
        return hypotheses_from_text(path.read_text(), str(path))
    text = config if isinstance(config, str) else config_text
    if text is not None:
        return hypotheses_from_text(text, "<config>")
    saved = store.config_text()
    if saved is None:
        raise OptiscopeError(f"the store {store.root} has no saved config (config.toml): give --config FILE")
    return hypotheses_from_text(saved, f"{store.root / 'config.toml'}")


def config_seeds(store: RunStore, config_text: str | None = None, config: Any = None) -> list[int] | None:
    """The seeds the hypotheses are judged on: those of the config they come from (see
    `store_hypotheses`), so a lowered `seeds` judges the subset it asks for."""
    if config is None and config_text is not None and not isinstance(config_text, str):
        config, config_text = config_text, None
    if config is not None and hasattr(config, "experiment"):
        seeds = config.experiment.seed_list()
        return seeds + [s for s in verified_seeds(store, config.experiment.name) if s not in seeds]
    if isinstance(config, Path) or (isinstance(config, str) and "\n" not in config and Path(config).is_file()):
        return configured_seeds(Path(config).read_text(), store) if Path(config).exists() else None
    text = config if isinstance(config, str) else config_text
    return configured_seeds(text if text is not None else store.config_text(), store)


def declared_experiment(config: Any) -> str | None:
    """The `[experiment].name` a config (object, path or TOML text) declares, if any."""
    if config is None:
        return None
    if not isinstance(config, (str, Path)):
        return getattr(getattr(config, "experiment", None), "name", None)
    try:
        text = Path(config).read_text() if isinstance(config, Path) or (
            "\n" not in config and Path(config).is_file()) else config
        name = tomllib.loads(text).get("experiment", {}).get("name")
    except (OSError, tomllib.TOMLDecodeError, AttributeError):
        return None
    return name if isinstance(name, str) else None


def scoped(view: StoreView, name: str | None) -> StoreView:
    """`view` restricted to experiment `name` when the store holds it (else the whole store:
    a claims file that names no stored experiment is read against every cell)."""
    return view.for_experiment(name) if name is not None and name in view.experiments() else view


def verify_store(
    store_path: str | Path, config_text: str | None = None, *, config: Any = None, experiment: str | None = None,
) -> list[Verdict]:
    """Evaluate the hypotheses of a store: those of `config_text` / `config` when given (resolved
    within the experiment it names), else every saved experiment's own hypotheses, each within
    its own experiment's cells and Holm-corrected as its own family (`experiment`: only that one).

    Raises OptiscopeError for bad input: no hypotheses, an unknown cell, metric or experiment.
    """
    store = RunStore.open(store_path)
    view = StoreView.load(store, seeds=config_seeds(store, config_text, config))
    if not view.cells:
        raise OptiscopeError(f"the store {store.root} has no completed cells: nothing to verify")
    if config_text is not None or config is not None:
        hypotheses = store_hypotheses(store, config_text, config)
        if config is None and not isinstance(config_text, str):
            config = config_text
        name = experiment or declared_experiment(config if config is not None else config_text)
        return evaluate(scoped(view, name), hypotheses, name or "")
    saved = store.experiment_configs()
    if experiment is not None:
        if experiment not in saved:
            raise OptiscopeError(
                f"--experiment '{experiment}': the store {store.root} has no saved config of that "
                f"name; experiments: {', '.join(saved) or 'none'}")
        saved = {experiment: saved[experiment]}
    if not saved:
        raise OptiscopeError(f"the store {store.root} has no saved config (config.toml): give --config FILE")
    claims = {n: t for n, t in saved.items() if _has_hypotheses(t)}
    if not claims:
        name, text = next(iter(saved.items()))
        hypotheses_from_text(text, f"{store.root / 'configs' / name}.toml")  # raises: no hypotheses
    verdicts: list[Verdict] = []
    for name, text in claims.items():  # each on the seeds its own config asks for
        hypotheses = hypotheses_from_text(text, f"{store.root / 'configs' / name}.toml")
        own = view if len(saved) == 1 else StoreView.load(store, seeds=config_seeds(store, text))
        verdicts += evaluate(scoped(own, name), hypotheses, name)
    return verdicts


def _has_hypotheses(text: str) -> bool:
    try:
        return bool(tomllib.loads(text).get("hypotheses"))
    except tomllib.TOMLDecodeError:
        return True  # let hypotheses_from_text say what is wrong with it
