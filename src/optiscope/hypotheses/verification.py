"""Run until decided: `optiscope verify STORE --until-decided`.

After each batch of seeds the hypotheses are looked at with the group-sequential design of
`optiscope.hypotheses.sequential`; while some are undecided, their cells get the next batch of
seeds (seeds on demand: only the seeds the store lacks are trained, see
`optiscope.engine.runner.plan_missing`), up to `max_seeds` per cell. Every look is stored in
`STORE/verification/<experiment>.json` with the plan it was made under, so an interrupted
verification resumes where it stopped and the report can draw each hypothesis' path against its
boundaries.

Guards (`requires`, plasticity) are judged at every look by the fixed-n evaluation: a hypothesis
whose guard is not met is reported **invalid**, whatever its boundary says, but it keeps its
share of alpha in the Holm family (dropping it would raise the others' levels after the fact).
Hypotheses the design cannot run (equivalence, Fisher's rates) are judged fixed-n at the end.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optiscope.errors import OptiscopeError
from optiscope.hypotheses.evaluate import Verdict, evaluate, scoped
from optiscope.hypotheses.samples import hypothesis_samples
from optiscope.hypotheses.sequential import Claim, Look, SequentialPlan, sequential_look
from optiscope.hypotheses.spec import Hypothesis, parse_hypothesis_list
from optiscope.report.data import StoreView
from optiscope.store import RunStore
from optiscope.store.run_store import _atomic_write_bytes


@dataclass
class Decided:
    """One hypothesis after verification: the verdict and, where it ran sequentially, its looks."""

    name: str
    verdict: str  # holds | fails | inconclusive | invalid
    reason: str
    n_a: int
    n_b: int
    looks: list[Look] = field(default_factory=list)
    fixed: Verdict | None = None  # the fixed-n evaluation at the last look (guards, effect, p)
    effect: float = float("nan")  # Cliff's delta of a against b at the deciding look


@dataclass
class VerificationResult:
    plan: SequentialPlan
    decided: list[Decided]
    seeds_trained: int  # runs added by this verification

    @property
    def all_hold(self) -> bool:
        return all(d.verdict == "holds" for d in self.decided)


def looks_path(store: RunStore, experiment: str) -> Path:
    return store.root / "verification" / f"{experiment}.json"


def load_looks(store: RunStore, experiment: str) -> tuple[dict[str, Any] | None, list[Look]]:
    """The stored plan and looks of an experiment's verification (None, [] if none yet)."""
    path = looks_path(store, experiment)
    if not path.exists():
        return None, []
    data = json.loads(path.read_text())
    return data.get("plan"), [Look.from_dict(d) for d in data.get("looks", [])]


def _save_looks(store: RunStore, experiment: str, plan: SequentialPlan, looks: list[Look], seeds: list[int]) -> None:
    """The plan, every look, and the seeds analysed so far (the report and `verify` analyse
    these beside the experiment's own, see `optiscope.report.data.configured_seeds`)."""
    path = looks_path(store, experiment)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"plan": plan.to_dict(), "seeds": seeds, "looks": [lk.to_dict() for lk in looks]}
    _atomic_write_bytes(path, json.dumps(body, indent=1).encode())


def plan_of(cfg: Any, **overrides: Any) -> SequentialPlan:
    """The plan from the config's `[verification]` table, command-line values overriding it."""
    table = dict(cfg.verification or {})
    table.update({k: v for k, v in overrides.items() if v is not None})
    if "max_seeds" not in table:
        raise OptiscopeError("--until-decided needs a plan: give --max-seeds (and --batch), or a "
                             "[verification] table with max_seeds and batch in the experiment file")
    table.setdefault("batch", max(1, len(cfg.experiment.seed_list())))
    hyps = parse_hypothesis_list(cfg.hypotheses)
    alphas = {h.alpha for h in hyps}
    if "alpha" not in table and len(alphas) == 1:
        table["alpha"] = alphas.pop()
    return SequentialPlan.from_dict(table)


def verify_until_decided(
    store: RunStore,
    cfg: Any,
    plan: SequentialPlan,
    train: Callable[[Any, int, set[str]], int],
    *,
    on_look: Callable[[int, list[Decided]], None] | None = None,
) -> VerificationResult:
    """Look, add seeds to the undecided hypotheses' cells, look again, until all are decided.

    `train(cfg, n_seeds, cell_ids)` trains cells `cell_ids` of `cfg` up to `n_seeds` seeds each
    (only what the store lacks) and returns the runs it added.
    """
    hypotheses = parse_hypothesis_list(cfg.hypotheses)
    if not hypotheses:
        raise OptiscopeError("the config has no [[hypotheses]] tables: nothing to verify")
    sequential = [h for h in hypotheses if _sequential(h)]
    claims = [Claim.from_hypothesis(h) for h in sequential]
    experiment = cfg.experiment.name
    stored_plan, looks = load_looks(store, experiment)
    if stored_plan is not None and stored_plan != plan.to_dict():
        raise OptiscopeError(
            f"this store's verification of '{experiment}' ran under another plan ({stored_plan}); a plan cannot "
            f"change mid-verification. Keep it, or verify into a copy of the store (and keep both results)")
    added = 0
    n = _current_seeds(store, cfg, hypotheses)
    # A fixed-n hypothesis (equivalence, Fisher) is judged at the seeds its experiment planned,
    # never at seeds added to its cells for another, sequential hypothesis: n is its protocol.
    planned = scoped(StoreView.load(store, seeds=cfg.experiment.seed_list()), experiment)
    at_plan = {v.name: v for v in evaluate(planned, hypotheses, experiment)}
    while True:
        seeds = list(range(n))
        view = scoped(StoreView.load(store, seeds=seeds), experiment)  # its own cells only
        fixed = {v.name: v for v in evaluate(view, hypotheses, experiment)}
        samples = {h.name: hypothesis_samples(view, h) for h in sequential}
        outcomes = {name: (s.a, s.b) for name, s in samples.items()}
        result = sequential_look(outcomes, claims, plan, looks)
        looks = looks + result.looks
        _save_looks(store, experiment, plan, looks, seeds)
        decided = _decisions(hypotheses, result, fixed, looks, at_plan)
        if on_look is not None:
            on_look(n, decided)
        if result.done or n >= plan.max_seeds:
            return VerificationResult(plan, decided, added)
        n = min([k for k in plan.schedule() if k > n] or [plan.max_seeds])
        cells = {c.cell_id for name, s in samples.items() if result.decisions[name].verdict == "continue"
                 for c in (s.cell_a, s.cell_b)}
        added += train(cfg, n, cells)


def _sequential(h: Hypothesis) -> bool:
    return h.direction != "equivalent" and h.test_name in ("mann-whitney", "permutation")


def _current_seeds(store: RunStore, cfg: Any, hypotheses: Sequence[Hypothesis]) -> int:
    """Seeds per cell the looks start from: what the config asks for (a verification resumed
    after a stop starts from what its cells hold)."""
    asked = len(cfg.experiment.seed_list())
    view = scoped(StoreView.load(store), cfg.experiment.name)
    held = []
    for h in hypotheses:
        s = hypothesis_samples(view, h)
        held.append(min(len(s.cell_a.seeds), len(s.cell_b.seeds)))
    return max(asked, min(held)) if held else asked


def _decisions(hypotheses: Sequence[Hypothesis], result: Any, fixed: dict[str, Verdict], looks: list[Look],
               at_plan: dict[str, Verdict]) -> list[Decided]:
    out = []
    for h in hypotheses:
        v = fixed[h.name]
        mine = [lk for lk in looks if lk.hypothesis == h.name]
        if h.name not in result.decisions:  # equivalence, Fisher: fixed-n at the planned seeds
            p = at_plan[h.name]
            out.append(Decided(h.name, p.verdict, f"fixed-n at the planned seeds: {p.reason}", p.n_a, p.n_b, [], p,
                               p.effect.estimate))
            continue
        d = result.decisions[h.name]
        verdict, reason = d.verdict, d.reason
        if v.verdict == "invalid":
            verdict, reason = "invalid", v.reason
        last = mine[-1] if mine else None  # the look that decided: its seeds, not those added since
        out.append(Decided(h.name, verdict, reason, last.n_a if last else v.n_a, last.n_b if last else v.n_b,
                           mine, v, last.effect if last else v.effect.estimate))
    return out


def train_more_seeds(store: RunStore, device: str, *, progress: Any = None) -> Callable[[Any, int, set[str]], int]:
    """The `train` callback for `verify_until_decided`: the runner's one path (`train_cells`)."""
    from optiscope.engine.runner import plan_missing, train_cells
    from optiscope.engine.work import UnitContext
    from optiscope.tuning.protocol import finals_of

    def train(cfg: Any, n_seeds: int, cell_ids: set[str]) -> int:
        grown = cfg.model_copy(deep=True)
        grown.experiment.seeds = _grown_seeds(cfg.experiment.seed_list(), n_seeds)
        # A [tuning] experiment's compared cells are its finals (best trial per study, defaults):
        # they get the added evaluation seeds; the trials keep their tuning seeds.
        wanted = finals_of(grown, store) if grown.tuning else grown.cells()
        cells = [c for c in plan_missing(wanted, store).todo if c.cell_id in cell_ids]
        # The added seeds are probed as `optiscope run` probes the first ones: a hypothesis on a
        # probe metric (R_med, class_cosine) otherwise reads seeds that never logged it.
        ctx = UnitContext(device=device, checkpoint_every=cfg.experiment.checkpoint_every,
                          save_params=cfg.experiment.save_params,
                          probe_config=dict(cfg.probes) if cfg.probes else {})
        train_cells(cells, store, ctx, progress=progress)
        return sum(len(c.seeds) for c in cells)

    return train


def _grown_seeds(seeds: list[int], n: int) -> int | list[int]:
    """The first `n` seeds of the experiment's list, extended past its largest where needed."""
    if seeds == list(range(len(seeds))):
        return n
    extra = [max(seeds) + 1 + i for i in range(max(0, n - len(seeds)))]
    return (seeds + extra)[:n]

