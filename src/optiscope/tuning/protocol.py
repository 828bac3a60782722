"""The tuning protocol: an equal budget of Optuna trials per optimizer, then finals on fresh seeds.

For every task setting, study and tuned optimizer there is one Optuna study (in
STORE/tuning/optuna.journal). Trials go in rounds of `batch`: every study asks its next trials,
all of them are trained in one call (so they pack into ensembles or run in parallel), each
trial's value is read from the store (outcome.py) and told back. Then each optimizer's best
trial per study (ties: the lowest trial number) is re-run on the evaluation seeds with the
user's split, and, with `default = true` (and always for optimizers with no search space), each
optimizer at its [[optimizers]] settings.

Resuming: cells already in the store are never retrained, and a round is rebuilt from the
journal. A trial is identified by its slot (its number in the protocol, kept with its cell id
in the user attribute "slot", set right after it is asked); trials left RUNNING by a killed run are finished with the
values they were asked with, and the round's missing trials are asked as the uninterrupted run
would have asked them (every earlier round complete, this round's trials pending). A trial
interrupted inside `ask` (no slot yet) is marked FAIL and asked again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from optiscope.config import Cell, ExperimentConfig
from optiscope.engine.runner import RunSummary
from optiscope.errors import OptiscopeError
from optiscope.store import RunStore
from optiscope.tuning.cells import Template, default_cell, templates, trial_label, tuned_cell, tuned_label
from optiscope.tuning.outcome import TrialOutcome, trial_outcome
from optiscope.tuning.records import params_json, tuning_dir, write_final, write_protocol, write_trials
from optiscope.tuning.sampling import load_study, make_sampler, open_journal
from optiscope.tuning.spec import TuningSpec, parse_tuning

Train = Callable[[Sequence[Cell]], RunSummary]


@dataclass
class Search:
    """One Optuna study: a task setting, a study index and a tuned optimizer."""

    template: Template
    index: int  # the study index (0 .. studies-1)
    study: optuna.Study
    distributions: dict[str, BaseDistribution]

    @property
    def name(self) -> str:
        return study_name(self.template, self.index)

    def slots(self) -> dict[int, FrozenTrial]:
        """This study's trials by slot (abandoned and failed-in-ask trials left out)."""
        out = {}
        for t in self.study.get_trials(deepcopy=False):
            if "slot" in t.user_attrs and t.state in (TrialState.COMPLETE, TrialState.RUNNING):
                out[int(t.user_attrs["slot"]["slot"])] = t
        return out


@dataclass
class Pending:
    """A trial to train and tell: its search, slot, Optuna number, values and cell."""

    search: Search
    slot: int
    number: int
    values: dict[str, Any]
    cell: Cell


def study_name(template: Template, index: int) -> str:
    return f"{template.task.key} | s{index} | {template.key}"


def rounds(trials: int, batch: int) -> Iterator[range]:
    """Slots in rounds of `batch`: range(0, b), range(b, 2b), ... up to `trials`."""
    for start in range(0, trials, batch):
        yield range(start, min(start + batch, trials))


def run_tuning(cfg: ExperimentConfig, store: RunStore, train: Train) -> RunSummary:
    """Run (or resume) the tuning protocol of `cfg` into `store`; `train` trains and lands cells."""
    spec = parse_tuning(cfg)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    write_protocol(store, spec)
    storage = open_journal(tuning_dir(store) / "optuna.journal")
    temps = templates(cfg, spec)
    searches = [
        Search(t, index, load_study(storage, study_name(t, index), spec.goal),
               {n: d.distribution() for n, d in spec.space[t.key].items()})
        for t in temps if t.key in spec.space for index in range(spec.studies)
    ]
    summary = RunSummary()
    outcomes: dict[str, TrialOutcome] = {}
    for slots in rounds(spec.trials, spec.batch):
        pending = [p for s in searches for p in _open_round(s, slots, spec)]
        _merge(summary, train(_unique(p.cell for p in pending)))
        for p in pending:
            outcome = outcomes[p.cell.cell_id] = trial_outcome(
                store, p.cell.cell_id, spec.metric, spec.goal, p.cell.batch_id, spec.statistic)
            p.search.study.tell(p.number, outcome.value)
        trials = trial_rows(store, spec, searches, outcomes)
        write_trials(store, trials)
    finals, final_rows = final_cells(spec, searches, temps)
    _merge(summary, train(finals))
    write_final(store, final_rows)
    trained = set(summary.trained)
    known = _unique_ids(summary.skipped + [r["cell_id"] for r in trials])
    summary.skipped = [c for c in known if c not in trained and c not in summary.failed]
    return summary


def _open_round(search: Search, slots: range, spec: TuningSpec) -> list[Pending]:
    """The trials of this round still to train and tell: left RUNNING by a killed run, or asked now."""
    for t in search.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if "slot" not in t.user_attrs:  # interrupted inside ask: its slot is asked again
            search.study.tell(t.number, state=TrialState.FAIL)
    existing = search.slots()
    out = []
    for slot in slots:
        old = existing.get(slot)
        if old is not None and old.state == TrialState.COMPLETE:
            continue
        if old is None:
            search.study.sampler = make_sampler(spec.sampler, spec.seed, search.index, slot, search.name)
            trial = search.study.ask(search.distributions)
            number, values = trial.number, dict(trial.params)
            cell = _trial_cell(search, slot, values, spec)
            trial.set_user_attr("slot", {"slot": slot, "cell_id": cell.cell_id})
        else:
            number, values = old.number, dict(old.params)
            cell = _trial_cell(search, slot, values, spec)
        out.append(Pending(search, slot, number, values, cell))
    return out


def _trial_cell(search: Search, slot: int, values: dict[str, Any], spec: TuningSpec) -> Cell:
    return tuned_cell(
        search.template, values, seeds=spec.tuning_seeds(search.index), trial=True,
        label=trial_label(search.template.key, search.index, slot),
    )


def trial_rows(
    store: RunStore, spec: TuningSpec, searches: list[Search], outcomes: dict[str, TrialOutcome]
) -> list[dict[str, Any]]:
    """trials.parquet's rows: every completed trial of every study (`outcomes`: read so far, by cell)."""
    rows = []
    for search in searches:
        for slot, t in sorted(search.slots().items()):
            if t.state != TrialState.COMPLETE:
                continue
            cell_id = t.user_attrs["slot"]["cell_id"]
            outcome = outcomes.get(cell_id) or trial_outcome(store, cell_id, spec.metric, spec.goal, statistic=spec.statistic)
            outcomes[cell_id] = outcome
            rows.append({
                "study": search.index, "optimizer_key": search.template.key,
                "optimizer": search.template.cell.optimizer, "trial": slot, "params": params_json(t.params),
                "cell_id": cell_id, "value": outcome.value, "state": outcome.state,
                "task": search.template.task.key,
            })
    return rows


def best_trial(search: Search, goal: str) -> tuple[int, FrozenTrial]:
    """(slot, trial) of the best completed trial; ties go to the lowest slot."""
    done = [(slot, t) for slot, t in search.slots().items() if t.state == TrialState.COMPLETE]
    sign = 1.0 if goal == "min" else -1.0
    return min(done, key=lambda st: (sign * float(st[1].value), st[0]))


def final_cells(
    spec: TuningSpec, searches: list[Search], temps: list[Template]
) -> tuple[list[Cell], list[dict[str, Any]]]:
    """The re-runs on the evaluation seeds (tuned, then default) and final.parquet's rows."""
    cells, rows = [], []
    for search in searches:
        slot, best = best_trial(search, spec.goal)
        label = tuned_label(search.template.key, search.index, spec.studies)
        cell = tuned_cell(search.template, dict(best.params), seeds=spec.evaluation_seeds, trial=False, label=label)
        cells.append(cell)
        rows.append(_final_row(search.template, search.index, "tuned", cell, best.params, slot))
    for t in temps:
        if spec.default or t.key not in spec.space:
            cell = default_cell(t)
            cells.append(cell)
            rows.append(_final_row(t, -1, "default", cell, {}, -1))
    return _unique(cells), rows


def finals_of(cfg: ExperimentConfig, store: RunStore) -> list[Cell]:
    """The final cells of `cfg`'s completed tuning protocol in `store`, on `cfg`'s evaluation seeds.

    Used to add evaluation seeds to the finals (`verify --until-decided`): the best trial of each
    study is read back from the journal, so the finals are the cells `run_tuning` trained, with
    the seeds `cfg` asks for now. Refuses a protocol whose trials are not all complete.
    """
    spec = parse_tuning(cfg)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_journal(tuning_dir(store) / "optuna.journal")
    temps = templates(cfg, spec)
    searches = []
    for t in temps:
        if t.key not in spec.space:
            continue
        for index in range(spec.studies):
            search = Search(t, index, load_study(storage, study_name(t, index), spec.goal),
                            {n: d.distribution() for n, d in spec.space[t.key].items()})
            done = sum(1 for tr in search.slots().values() if tr.state == TrialState.COMPLETE)
            if done < spec.trials:
                raise OptiscopeError(
                    f"tuning of '{t.key}' (study {index}) has {done} of {spec.trials} trials complete in "
                    f"{store.root}: run the experiment (optiscope run) to finish its protocol first")
            searches.append(search)
    return final_cells(spec, searches, temps)[0]


def _final_row(t: Template, study: int, kind: str, cell: Cell, params: dict[str, Any], trial: int) -> dict[str, Any]:
    return {
        "study": study, "optimizer_key": t.key, "kind": kind, "cell_id": cell.cell_id,
        "params": params_json(params), "trial": trial, "task": t.task.key,
    }


def _unique(cells: Any) -> list[Cell]:
    """Cells without repeats (two trials may sample the same configuration): first one kept."""
    seen: dict[str, Cell] = {}
    for c in cells:
        seen.setdefault(c.cell_id, c)
    return list(seen.values())


def _unique_ids(ids: list[str]) -> list[str]:
    return list(dict.fromkeys(ids))


def _merge(total: RunSummary, part: RunSummary) -> None:
    total.trained += [c for c in part.trained if c not in total.trained]
    total.skipped += part.skipped
    total.failed.update(part.failed)
    for c in part.trained:
        total.failed.pop(c, None)
