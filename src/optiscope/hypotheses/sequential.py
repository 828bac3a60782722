"""Sequential verification: add seeds in batches and re-test until every hypothesis is decided.

Looking again after each batch with a fixed-alpha test inflates false positives; this module
runs a group-sequential design instead (boundaries in `optiscope.stats.group_sequential`).

The design, per hypothesis (a `Claim`: direction less / greater / two-sided, `min_effect` as a
Cliff's delta, the power asked):

- **Statistic**: the standardized Mann-Whitney z of a against b (`optiscope.stats.rank_z`; ties
  and the continuity correction as scipy's asymptotic method, so the last look's z gives the
  fixed-n p-value; diverged runs as the worst value +-inf, tied among themselves), oriented so
  that positive is the claimed direction ("less": a smaller; two-sided: |z|).
- **Information fraction**: t = n_eff / max_seeds, n_eff = 2 n_a n_b / (n_a + n_b) (the seeds per
  side; Var(U) grows as n_a n_b / (n_a + n_b)), capped at 1. The look that reaches max_seeds is
  the last and spends all that is left of the alpha.
- **Holds**: z crosses the Lan-DeMets efficacy boundary (O'Brien-Fleming-type spending by
  default, Pocock-type as an option) at the hypothesis' Holm level. The null is "no difference"
  (P(A > B) = P(A < B)); `min_effect` is the alternative the design is powered for, so unlike the
  fixed-n verdict the effect estimate is reported but not also required to reach min_effect.
- **Fails** (futility, both ways out): at an interim look, when the conditional power at
  min_effect falls below `futility_floor` (default 0.1): the probability of crossing a later
  boundary, given the z observed now and a true effect of exactly min_effect (drift from
  Noether's approximation, the one `optiscope.hypotheses.power` uses), computed with the
  remaining planned looks and their boundaries. That is, even if the smallest effect that
  matters were true, it is now out of reach. At the last look (n = max_seeds) a hypothesis not
  crossing fails when the design had the power asked at min_effect (as the fixed-n verdict), and
  is **inconclusive** otherwise, with the power it had. Either way "fails" is wrong at most
  1 - power of the time when the true effect is min_effect, because the stated power counts the
  futility stops. Futility is non-binding: boundaries are computed ignoring it, so stopping for
  futility only lowers the false-positive rate.
- **Holm across hypotheses and looks** (the graphical / sequential Holm procedure for
  group-sequential trials, Maurer & Bretz 2013, Stat. Biopharm. Res. 5(4)): each of m
  hypotheses starts at level alpha / m; when one is rejected at any look its alpha is shared
  among those not rejected, so each is at alpha / (m - r) after r rejections, and is re-tested
  at all its looks so far with the boundaries of its new level (repeatedly, until no further
  rejection). This is a shortcut of a closed test whose intersection tests are weighted
  Bonferroni combinations of group-sequential tests, so the family-wise error over all
  hypotheses and all looks is at most alpha. A hypothesis stopped for futility keeps its share
  (nothing is recycled from it), which is conservative.
- **Tests**: a hypothesis with test = "permutation" runs on the same rank statistic (the
  permutation test of medians has no independent-increment form); Fisher's rates stay fixed-n.
- **Equivalence** stays fixed-n (`optiscope.hypotheses.evaluate`): its two one-sided tests on a
  shifted sample do not fit this one-statistic design; `Claim.from_hypothesis` says so.

Entry points: `sequential_look(outcomes, claims, plan, earlier)` after each batch (returns the
decision per hypothesis and the new `Look`s, to be stored); `planned_design(claim, plan, m)` for
the boundaries, futility bounds and power of the planned schedule; `look_path(looks, name)` for
the report's plot of a hypothesis' path against its boundaries. `simulate` (in
`optiscope.hypotheses.sequential_simulation`) runs thousands of designs at once for validation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from optiscope.errors import OptiscopeError
from optiscope.stats.group_sequential import (
    SPENDING,
    Spending,
    efficacy_bounds,
    exit_probabilities,
    futility_bound,
)
from optiscope.stats.rank_z import mann_whitney_z

Direction = Literal["less", "greater", "two-sided"]
DIRECTIONS: tuple[str, ...] = ("less", "greater", "two-sided")
#: What a hypothesis is after a look: still running, or one of the three verdicts.
DECISIONS: tuple[str, ...] = ("continue", "holds", "fails", "inconclusive")
FINAL = ("holds", "fails", "inconclusive")
_EPS = 1e-9


@dataclass(frozen=True)
class Claim:
    """What a sequential design needs of a hypothesis."""

    name: str
    direction: Direction
    min_effect: float = 0.33
    power: float = 0.8

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise OptiscopeError(f"hypothesis '{self.name}': direction = '{self.direction}' cannot run "
                                 f"sequentially; allowed: {', '.join(DIRECTIONS)} (equivalence stays fixed-n)")
        if not 0 < self.min_effect <= 1:
            raise OptiscopeError(f"hypothesis '{self.name}': min_effect must lie in (0, 1] (a Cliff's delta), "
                                 f"got {self.min_effect}")
        if not 0 < self.power < 1:
            raise OptiscopeError(f"hypothesis '{self.name}': power must lie in (0, 1), got {self.power}")

    @classmethod
    def from_hypothesis(cls, h: Any) -> Claim:
        """The claim of an `optiscope.hypotheses.Hypothesis` (rank tests, not equivalence)."""
        if getattr(h, "test_name", "mann-whitney") not in ("mann-whitney", "permutation"):
            raise OptiscopeError(f"hypothesis '{h.name}': test = '{h.test_name}' cannot run sequentially "
                                 "(only the rank tests: mann-whitney, permutation)")
        if h.direction == "equivalent":
            raise OptiscopeError(f"hypothesis '{h.name}': direction = 'equivalent' cannot run sequentially; "
                                 f"allowed: {', '.join(DIRECTIONS)} (equivalence stays fixed-n)")
        return cls(h.name, h.direction, float(h.smallest_effect), float(h.power))

    @property
    def two_sided(self) -> bool:
        return self.direction == "two-sided"


@dataclass(frozen=True)
class SequentialPlan:
    """How seeds are added: the first look at `first` seeds per side (default: `batch`), then
    every `batch` more, up to `max_seeds`; the family-wise `alpha`, the spending function and
    the conditional-power floor below which a hypothesis fails for futility."""

    max_seeds: int
    batch: int
    first: int | None = None
    alpha: float = 0.05
    spending: Spending = "obrien-fleming"
    futility_floor: float = 0.1

    def __post_init__(self) -> None:
        if self.max_seeds < 2:
            raise OptiscopeError(f"verification: max_seeds must be at least 2, got {self.max_seeds}")
        if self.batch < 1:
            raise OptiscopeError(f"verification: batch must be at least 1, got {self.batch}")
        if self.first is not None and not 1 <= self.first <= self.max_seeds:
            raise OptiscopeError(f"verification: first must lie in 1..max_seeds ({self.max_seeds}), got {self.first}")
        if not 0 < self.alpha < 1:
            raise OptiscopeError(f"verification: alpha must lie in (0, 1), got {self.alpha}")
        if self.spending not in SPENDING:
            raise OptiscopeError(f"verification: spending = '{self.spending}' is not one of {', '.join(SPENDING)}")
        if not 0 <= self.futility_floor < 1:
            raise OptiscopeError(f"verification: futility_floor must lie in [0, 1), got {self.futility_floor}")

    def schedule(self) -> list[int]:
        """Seeds per side at each planned look."""
        first = self.first if self.first is not None else min(self.batch, self.max_seeds)
        return [*range(first, self.max_seeds, self.batch), self.max_seeds]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SequentialPlan:
        """A plan from a `[verification]` table (or `to_dict`); unknown keys are refused."""
        fields = list(cls.__dataclass_fields__)
        unknown = [k for k in d if k not in fields]
        if unknown:
            raise OptiscopeError(f"verification: unknown field '{unknown[0]}'; fields: {', '.join(fields)}")
        for key in ("max_seeds", "batch"):
            if key not in d:
                raise OptiscopeError(f"verification: `{key}` is required (seeds per cell)")
        return cls(**dict(d))


@dataclass(frozen=True)
class Look:
    """One look at one hypothesis, as stored: seeds per side, information fraction, the oriented
    z, the efficacy and futility boundaries in force (Z scale; -inf: no futility stop), the Holm
    level, Cliff's delta of a against b, the decision, and the design's power at min_effect at
    that level (looks so far plus the planned rest)."""

    hypothesis: str
    index: int
    n_a: int
    n_b: int
    fraction: float
    statistic: float
    boundary: float
    futility: float
    level: float
    effect: float
    decision: str
    power: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Look:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Decision:
    """A hypothesis' state after a call: `verdict` in DECISIONS, why, its latest look, and the
    seeds per side its next look wants (None once decided)."""

    hypothesis: str
    verdict: str
    reason: str
    look: Look | None
    next_seeds: int | None


@dataclass(frozen=True)
class SequentialResult:
    decisions: dict[str, Decision]
    looks: list[Look] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return all(d.verdict in FINAL for d in self.decisions.values())

    @property
    def next_seeds(self) -> int | None:
        """Seeds per side to train up to before the next call (None when all are decided)."""
        wanted = [d.next_seeds for d in self.decisions.values() if d.next_seeds is not None]
        return max(wanted) if wanted else None


# -- the design ---------------------------------------------------------------------------------

def drift(min_effect: float, max_seeds: int) -> float:
    """Mean of the Mann-Whitney z at max_seeds per side for Cliff's delta `min_effect`
    (Noether 1987: (delta / 2) sqrt(12 n m / (n + m + 1)), as `power.mann_whitney_power`)."""
    n = float(max_seeds)
    return min_effect / 2 * np.sqrt(12 * n * n / (2 * n + 1))


def fraction(n_a: int, n_b: int, max_seeds: int) -> float:
    """Information fraction of a look with n_a and n_b runs, capped at 1."""
    if n_a < 1 or n_b < 1:
        return 0.0
    return min(2 * n_a * n_b / (n_a + n_b) / max_seeds, 1.0)


def _futility_bounds(fractions: np.ndarray, efficacy: np.ndarray, theta: float, floor: float,
                     two_sided: bool, upto: int | None = None) -> np.ndarray:
    """Futility bound at each look but the last (where the experiment ends anyway)."""
    k_max = len(fractions) if upto is None else upto
    out = np.full(len(fractions), -np.inf)
    for k in range(min(k_max, len(fractions) - 1)):
        out[k] = futility_bound(fractions[k], fractions[k + 1:], efficacy[k + 1:], theta, floor, two_sided=two_sided)
    return out


@dataclass(frozen=True)
class Design:
    """A planned schedule at one level: per look the seeds, fraction and boundaries; `power` at
    min_effect and the expected seeds per side under min_effect and under no difference."""

    seeds: np.ndarray
    fractions: np.ndarray
    efficacy: np.ndarray
    futility: np.ndarray
    level: float
    power: float
    expected_seeds_h1: float
    expected_seeds_h0: float


def _expected_seeds(p_eff: np.ndarray, p_fut: np.ndarray, seeds: np.ndarray) -> float:
    stop = p_eff + p_fut
    stop[-1] = max(1.0 - stop[:-1].sum(), 0.0)
    return float(np.dot(stop, seeds))


def planned_design(claim: Claim, plan: SequentialPlan, family_size: int = 1, level: float | None = None) -> Design:
    """Boundaries and operating characteristics of `plan`'s schedule for `claim` at level
    alpha / family_size (Holm's first level; `level` overrides)."""
    lvl = plan.alpha / max(family_size, 1) if level is None else level
    seeds = np.array(plan.schedule())
    t = seeds / plan.max_seeds
    c = efficacy_bounds(t, lvl, plan.spending, two_sided=claim.two_sided)
    theta = drift(claim.min_effect, plan.max_seeds)
    f = _futility_bounds(t, c, theta, plan.futility_floor, claim.two_sided)
    h1 = exit_probabilities(t, c, f, drift=theta, two_sided=claim.two_sided)
    h0 = exit_probabilities(t, c, f, drift=0.0, two_sided=claim.two_sided)
    return Design(seeds, t, c, f, lvl, h1.power, _expected_seeds(h1.efficacy, h1.futility, seeds),
                  _expected_seeds(h0.efficacy, h0.futility, seeds))


# -- one call after each batch -------------------------------------------------------------------

def oriented_z(a: np.ndarray, b: np.ndarray, direction: str) -> np.ndarray:
    """The Mann-Whitney z of a against b, positive in the claimed direction (|z| two-sided),
    with scipy's continuity and tie corrections (`optiscope.stats.rank_z`)."""
    return mann_whitney_z(a, b, direction)


def _cliffs_delta(a: np.ndarray, b: np.ndarray) -> float:
    return float((a[:, None] > b[None, :]).mean() - (a[:, None] < b[None, :]).mean())


def _planned_after(n_eff: float, plan: SequentialPlan) -> list[float]:
    """Fractions of the planned looks after one at n_eff seeds per side."""
    return [n / plan.max_seeds for n in plan.schedule() if n > n_eff + _EPS]


def _next_seeds(n_a: int, n_b: int, plan: SequentialPlan) -> int:
    later = [n for n in plan.schedule() if n > min(n_a, n_b)]
    return later[0] if later else plan.max_seeds


def sequential_look(
    outcomes: Mapping[str, tuple[np.ndarray, np.ndarray]],
    claims: Sequence[Claim],
    plan: SequentialPlan,
    earlier: Sequence[Look | Mapping[str, Any]] = (),
) -> SequentialResult:
    """Decide every hypothesis after a batch.

    `outcomes[name] = (a, b)`: one value per run so far of each cell (diverged runs as the
    worst value, +-inf), in the order the seeds were added; `earlier`: the looks returned (and
    stored) by previous calls, as `Look`s or their dicts. Returns each hypothesis' `Decision`
    and the new looks to store. A hypothesis decided earlier keeps its verdict; one with no new
    runs since its last look gets no new look.
    """
    names = [c.name for c in claims]
    if len(set(names)) != len(names):
        raise OptiscopeError("sequential verification: hypothesis names must be unique")
    missing = [n for n in names if n not in outcomes]
    if missing:
        raise OptiscopeError(f"sequential verification: no outcomes for hypotheses {', '.join(missing)}")
    past: dict[str, list[Look]] = {n: [] for n in names}
    for raw in earlier:
        look = raw if isinstance(raw, Look) else Look.from_dict(raw)
        if look.hypothesis not in past:
            raise OptiscopeError(f"sequential verification: a stored look names hypothesis '{look.hypothesis}', "
                                 f"which is not among {', '.join(names)}")
        if abs(look.fraction - fraction(look.n_a, look.n_b, plan.max_seeds)) > 1e-9:
            raise OptiscopeError(f"sequential verification: the stored looks of '{look.hypothesis}' were made with "
                                 f"another max_seeds than {plan.max_seeds}; a plan cannot change mid-verification")
        past[look.hypothesis].append(look)
    for looks in past.values():
        looks.sort(key=lambda x: x.index)

    m = len(claims)
    status = {n: (past[n][-1].decision if past[n] else "continue") for n in names}
    rejected = sum(s == "holds" for s in status.values())

    # New looks: z and fraction now, for hypotheses still running that have new runs.
    fresh: dict[str, tuple[float, float, int, int, float]] = {}
    for c in claims:
        if status[c.name] in FINAL:
            continue
        a, b = (np.asarray(x, dtype=float) for x in outcomes[c.name])
        if a.size == 0 or b.size == 0:
            continue
        t = fraction(a.size, b.size, plan.max_seeds)
        last = past[c.name][-1].fraction if past[c.name] else 0.0
        if t <= last + _EPS:
            continue
        fresh[c.name] = (float(oriented_z(a, b, c.direction)), t, int(a.size), int(b.size), _cliffs_delta(a, b))

    def path(name: str) -> tuple[np.ndarray, np.ndarray]:
        t = [lk.fraction for lk in past[name]] + [fresh[name][1]]
        z = [lk.statistic for lk in past[name]] + [fresh[name][0]]
        return np.array(t), np.array(z)

    by_name = {c.name: c for c in claims}
    crossed_at: dict[str, tuple[int, float]] = {}  # look index, level it crossed at
    changed = True
    while changed and rejected < m:  # Holm: a rejection raises the others' level; re-test until nothing changes
        changed = False
        level = plan.alpha / (m - rejected)
        for name in fresh:
            if name in crossed_at:
                continue
            t, z = path(name)
            bounds = efficacy_bounds(t, level, plan.spending, two_sided=by_name[name].two_sided)
            hit = np.flatnonzero(z >= bounds)
            if hit.size:
                crossed_at[name] = (int(hit[0]), level)
                rejected += 1
                changed = True
                break
    level = plan.alpha / (m - rejected) if rejected < m else plan.alpha

    decisions: dict[str, Decision] = {}
    new_looks: list[Look] = []
    for c in claims:
        name = c.name
        if name not in fresh:
            prior = past[name][-1] if past[name] else None
            verdict = status[name]
            reason = (f"decided at look {prior.index}" if verdict in FINAL and prior else "no new runs since the last look")
            nxt = None if verdict in FINAL else (_next_seeds(prior.n_a, prior.n_b, plan) if prior else plan.schedule()[0])
            decisions[name] = Decision(name, verdict, reason, prior, nxt)
            continue
        z, t, n_a, n_b, effect = fresh[name]
        t_all, z_all = path(name)
        h_level = crossed_at[name][1] if name in crossed_at else level
        n_eff = t * plan.max_seeds
        future = _planned_after(n_eff, plan) if t < 1 - _EPS else []
        fr = np.concatenate([t_all, future])
        bounds = efficacy_bounds(fr, h_level, plan.spending, two_sided=c.two_sided)
        theta = drift(c.min_effect, plan.max_seeds)
        k = len(t_all) - 1
        fut_now = futility_bound(t, fr[k + 1:], bounds[k + 1:], theta, plan.futility_floor,
                                 two_sided=c.two_sided) if future else -np.inf
        # Power of this schedule at the level in force (futility bounds of that level at every look).
        fut = _futility_bounds(fr, bounds, theta, plan.futility_floor, c.two_sided)
        fut[k] = fut_now
        power = exit_probabilities(fr, bounds, fut, drift=theta, two_sided=c.two_sided).power
        name_c = "|z|" if c.two_sided else "z"
        if name in crossed_at:
            j = crossed_at[name][0]
            verdict = "holds"
            reason = (f"{name_c} {z_all[j]:.3g} >= boundary {bounds[j]:.3g} at look {j + 1} "
                      f"(level {h_level:.3g}, fraction {t_all[j]:.2f})")
        elif not future:
            verdict = "fails" if power >= c.power else "inconclusive"
            reason = (f"{name_c} {z:.3g} < boundary {bounds[k]:.3g} at max_seeds; the design's power at "
                      f"min_effect {c.min_effect:g} was {power:.2f} "
                      + (f">= {c.power:g}" if verdict == "fails" else f"< {c.power:g}: too few seeds to tell"))
        elif z < fut_now:
            verdict = "fails"
            reason = (f"futility: {name_c} {z:.3g} < {fut_now:.3g}, conditional power at min_effect "
                      f"{c.min_effect:g} below {plan.futility_floor:g}")
        else:
            verdict = "continue"
            reason = f"{name_c} {z:.3g} between futility {fut_now:.3g} and efficacy {bounds[k]:.3g}"
        look = Look(name, len(t_all), n_a, n_b, t, z, float(bounds[k]), float(fut_now), h_level, effect,
                    verdict, power)
        new_looks.append(look)
        decisions[name] = Decision(name, verdict, reason, look,
                                   None if verdict in FINAL else _next_seeds(n_a, n_b, plan))
    return SequentialResult(decisions, new_looks)


# -- the report's plot ---------------------------------------------------------------------------

def look_path(
    looks: Sequence[Look | Mapping[str, Any]],
    name: str,
    *,
    claim: Claim | None = None,
    plan: SequentialPlan | None = None,
) -> dict[str, list[Any]]:
    """A hypothesis' path for a plot: per look the information fraction, seeds per side, the
    oriented z, the efficacy and futility boundaries in force, the level and the decision.

    With `claim` and `plan`, also the planned schedule's boundaries at the last look's level
    ("planned_fraction", "planned_efficacy", "planned_futility"), to draw the looks not taken.
    """
    rows = sorted((lk if isinstance(lk, Look) else Look.from_dict(lk) for lk in looks), key=lambda x: x.index)
    rows = [lk for lk in rows if lk.hypothesis == name]
    out: dict[str, list[Any]] = {
        "fraction": [lk.fraction for lk in rows], "seeds": [min(lk.n_a, lk.n_b) for lk in rows],
        "statistic": [lk.statistic for lk in rows], "efficacy": [lk.boundary for lk in rows],
        "futility": [lk.futility for lk in rows], "level": [lk.level for lk in rows],
        "decision": [lk.decision for lk in rows],
    }
    if claim is not None and plan is not None:
        level = rows[-1].level if rows else None
        d = planned_design(claim, plan, level=level)
        out["planned_fraction"] = d.fractions.tolist()
        out["planned_efficacy"] = d.efficacy.tolist()
        out["planned_futility"] = d.futility.tolist()
    return out
