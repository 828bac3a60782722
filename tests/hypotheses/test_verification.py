"""`optiscope verify --until-decided`: seeds added in batches until every hypothesis is decided.

Trained for real on a small convex task: a planted effect (Adam against SGD at a step far too
small) is decided early, with fewer seeds than the cap; no effect (two SGDs whose step differs in
the seventh digit) stops as fails (futility or the last look) or inconclusive, never holds.
The error rates of the design itself are validated by simulation in test_sequential_simulation.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from optiscope.cli import app
from optiscope.store import RunStore

RUNNER = CliRunner()
CONFIG = """
[experiment]
name = "sequential"
seeds = 4
steps = 30
eval_every = 10
device = "cpu"

[[tasks]]
name = "quadratic"
condition = 10.0

[[optimizers]]
name = "adam"
lr = 0.1

[[optimizers]]
name = "sgd"
label = "sgd-tiny"
lr = 0.0001

[[optimizers]]
name = "sgd"
label = "sgd-twin"
lr = 0.0001000001

[verification]
max_seeds = 16
batch = 4

[[hypotheses]]
name = "adam-lower"
metric = "f_gap"
a = "adam"
b = "sgd-tiny"
direction = "less"

[[hypotheses]]
name = "twins-differ"
metric = "f_gap"
a = "sgd-twin"
b = "sgd-tiny"
direction = "less"
"""


@pytest.fixture
def trained(tmp_path):
    config = tmp_path / "sequential.toml"
    config.write_text(CONFIG)
    store = tmp_path / "store"
    r = RUNNER.invoke(app, ["run", str(config), "--store", str(store)])
    assert r.exit_code == 0, r.output
    return store, config


def test_a_planted_effect_holds_early_and_no_effect_never_holds(trained):
    store, _ = trained
    r = RUNNER.invoke(app, ["verify", str(store), "--until-decided", "--format", "json"])
    assert r.exit_code == 1, r.output  # the twins do not hold
    rows = {row["hypothesis"]: row for row in json.loads(r.stdout)}
    assert rows["adam-lower"]["verdict"] == "holds"
    assert rows["adam-lower"]["n_a"] < 16  # decided before the cap: the point of looking often
    assert rows["twins-differ"]["verdict"] in ("fails", "inconclusive")
    saved = json.loads((store / "verification" / "sequential.json").read_text())
    assert saved["plan"]["max_seeds"] == 16
    looks = [lk for lk in saved["looks"] if lk["hypothesis"] == "twins-differ"]
    assert looks and all(lk["decision"] != "holds" for lk in looks)
    assert [lk["index"] for lk in looks] == list(range(1, len(looks) + 1))
    # the seeds trained are those the looks asked for, no more: the twins' cells grew, Adam's
    # stopped growing once its hypothesis was decided
    s = RunStore.open(store)
    _, counts = s.query("SELECT label, count(*) FROM runs GROUP BY ALL ORDER BY 1")
    counts = dict(counts)
    assert counts["sgd-twin"] == looks[-1]["n_a"] and counts["sgd-twin"] <= 16
    assert counts["adam(lr=0.1)"] == rows["adam-lower"]["n_a"]


def test_a_resumed_verification_trains_nothing_and_repeats_its_verdicts(trained):
    store, _ = trained
    first = RUNNER.invoke(app, ["verify", str(store), "--until-decided", "--format", "json"])
    runs = RunStore.open(store).query("SELECT count(*) FROM runs")[1][0][0]
    again = RUNNER.invoke(app, ["verify", str(store), "--until-decided", "--format", "json"])
    assert RunStore.open(store).query("SELECT count(*) FROM runs")[1][0][0] == runs
    verdicts = lambda r: {row["hypothesis"]: row["verdict"] for row in json.loads(r.stdout)}  # noqa: E731
    assert verdicts(first) == verdicts(again)


def test_a_changed_plan_is_refused_and_a_missing_plan_is_named(trained, tmp_path):
    store, config = trained
    assert RUNNER.invoke(app, ["verify", str(store), "--until-decided"]).exit_code in (0, 1)
    r = RUNNER.invoke(app, ["verify", str(store), "--until-decided", "--max-seeds", "32"])
    assert r.exit_code == 2 and "another plan" in r.output
    bare = tmp_path / "bare.toml"
    bare.write_text(CONFIG.replace("[verification]\nmax_seeds = 16\nbatch = 4\n", ""))
    r = RUNNER.invoke(app, ["verify", str(store), "--until-decided", "--config", str(bare)])
    assert r.exit_code == 2 and "max_seeds" in r.output


def test_a_bad_verification_table_is_refused_before_training(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text(CONFIG.replace("batch = 4", "batch = 4\nspending = \"haybittle\""))
    r = RUNNER.invoke(app, ["run", str(config), "--store", str(tmp_path / "s")])
    assert r.exit_code == 2 and "spending" in r.output and "obrien-fleming" in r.output


def test_the_report_draws_each_hypothesis_path_against_its_boundaries(trained, tmp_path):
    store, _ = trained
    RUNNER.invoke(app, ["verify", str(store), "--until-decided"])
    out = tmp_path / "report.html"
    r = RUNNER.invoke(app, ["report", str(store), "--out", str(out)])
    assert r.exit_code == 0, r.output
    html = out.read_text()
    section = html[html.index("Sequential verification"):]
    assert section.count("<svg") >= 2  # one path per hypothesis


def test_after_verification_report_and_verify_see_the_seeds_it_added(trained):
    store, _ = trained
    decided = json.loads(RUNNER.invoke(app, ["verify", str(store), "--until-decided", "--format", "json"]).stdout)
    plain = json.loads(RUNNER.invoke(app, ["verify", str(store), "--format", "json"]).stdout)
    n = {row["hypothesis"]: (row["n_a"], row["n_b"]) for row in plain}
    # the fixed-n table judges every seed trained (the config itself still says 4)
    assert n["twins-differ"] == (decided[1]["n_a"], decided[1]["n_b"]) and n["twins-differ"][0] > 4



def test_added_seeds_are_probed_as_the_experiment_says(tmp_path):
    """Seeds that verification adds run the experiment's [probes] (here R_med, exact on the
    quadratic), so a hypothesis on a probe metric judges every seed it counts; each run's
    R_med at step 0 matches the same seed's from a plain `optiscope run` with that many seeds."""
    probed = CONFIG.replace("[verification]", "[probes]\nprobes = [\"r_med\"]\ncadence = \"every\"\nevery = 30\n\n[verification]")
    config = tmp_path / "probed.toml"
    config.write_text(probed)
    store = tmp_path / "store"
    assert RUNNER.invoke(app, ["run", str(config), "--store", str(store)]).exit_code == 0
    RUNNER.invoke(app, ["verify", str(store), "--until-decided", "--format", "json"])
    s = RunStore.open(store)
    _, rows = s.query("SELECT r.label, r.seed, count(m.name) FROM runs r LEFT JOIN metrics m "
                      "ON m.run_id = r.run_id AND m.name LIKE 'r_med/%' GROUP BY ALL ORDER BY 1, 2")
    assert max(seed for _, seed, _ in rows) >= 4  # verification did add seeds
    assert all(n > 0 for _, _, n in rows), rows  # and every seed has its probe
    grown = RunStore.open(store).query("SELECT max(seed) FROM runs")[1][0][0] + 1
    reference = tmp_path / "reference.toml"
    reference.write_text(probed.replace("seeds = 4", f"seeds = {grown}"))
    ref_store = tmp_path / "ref"
    assert RUNNER.invoke(app, ["run", str(reference), "--store", str(ref_store)]).exit_code == 0
    q = ("SELECT r.label, r.seed, m.step, m.name, m.value FROM runs r JOIN metrics m ON m.run_id = r.run_id "
         "WHERE m.name LIKE 'r_med/%' ORDER BY 1, 2, 3, 4")
    ref = {row[:4]: row[4] for row in RunStore.open(ref_store).query(q)[1]}
    got = {row[:4]: row[4] for row in s.query(q)[1]}
    assert got and all(k in ref and got[k] == pytest.approx(ref[k], rel=1e-5) for k in got)

TUNED = """
[experiment]
name = "sequential_tuned"
seeds = 4
steps = 30
eval_every = 10
device = "cpu"

[[tasks]]
name = "quadratic"
condition = 10.0

[[optimizers]]
name = "adam"
lr = 0.1

[[optimizers]]
name = "sgd"
lr = 0.0001

[tuning]
metric = "f_gap"
trials = 3
seeds_per_trial = 2
batch = 3
sampler = "random"
default = false

[tuning.space.adam]
lr = { log_uniform = [0.01, 0.3] }

[tuning.space.sgd]
lr = { log_uniform = [1e-6, 1e-5] }

[verification]
max_seeds = 12
batch = 4

[[hypotheses]]
name = "tuned adam lower"
metric = "f_gap"
a = "adam tuned"
b = "sgd tuned"
direction = "less"
"""


def test_a_tuned_experiment_adds_evaluation_seeds_to_its_finals_only(tmp_path):
    """With [tuning], the compared cells are the finals: verification grows them on evaluation
    seeds 4.. and leaves the trials (tuning seeds) alone; a rerun trains nothing."""
    config = tmp_path / "tuned.toml"
    config.write_text(TUNED)
    store = tmp_path / "store"
    r = RUNNER.invoke(app, ["run", str(config), "--store", str(store)])
    assert r.exit_code == 0, r.output
    rs = RunStore.open(store)
    was = dict(rs.query("SELECT role, count(*) FROM runs GROUP BY role")[1])
    r = RUNNER.invoke(app, ["verify", str(store), "--until-decided", "--format", "json"])
    assert r.exit_code == 0, r.output
    row = json.loads(r.stdout)[0]
    assert row["verdict"] == "holds" and row["n_a"] > 4  # 4 seeds cannot cross O'Brien-Fleming's first look
    after = dict(rs.query("SELECT role, count(*) FROM runs GROUP BY role")[1])
    assert after["trial"] == was["trial"]  # no trial retrained
    assert after["final"] == 2 * row["n_a"]
    seeds = {row[0] for row in rs.query("SELECT seed FROM runs WHERE role = 'final'")[1]}
    assert seeds == set(range(row["n_a"]))
    r = RUNNER.invoke(app, ["verify", str(store), "--until-decided", "--format", "json"])
    assert r.exit_code == 0 and "0 runs trained" in r.output


def test_the_finals_of_an_unfinished_tuning_protocol_are_refused(tmp_path):
    """Seeds cannot be added to finals that do not exist yet: the error names the optimizer and
    the trials still missing."""
    import tomllib

    from optiscope.config import parse_config
    from optiscope.errors import OptiscopeError
    from optiscope.tuning.protocol import finals_of

    cfg = parse_config(tomllib.loads(TUNED), "tuned.toml")
    store = RunStore.create(tmp_path / "store")
    with pytest.raises(OptiscopeError, match=r"tuning of 'adam' \(study 0\) has 0 of 3 trials complete"):
        finals_of(cfg, store)


def test_the_seeds_verification_adds_are_probed_like_the_first_ones(tmp_path):
    """A hypothesis may read a probe metric (R_med, class_cosine): the added seeds must log it
    too, else they enter the test as runs without a value (the worst value, ties)."""
    config = tmp_path / "tuned.toml"
    config.write_text(TUNED.replace("[verification]", '[probes]\nprobes = ["gradient"]\ncadence = "every"\nevery = 30\n\n[verification]'))
    store = tmp_path / "store"
    r = RUNNER.invoke(app, ["run", str(config), "--store", str(store)])
    assert r.exit_code == 0, r.output
    r = RUNNER.invoke(app, ["verify", str(store), "--until-decided", "--format", "json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)[0]["n_a"] > 4  # seeds were added
    rs = RunStore.open(store)
    finals = {row[0] for row in rs.query("SELECT run_id FROM runs WHERE role = 'final'")[1]}
    probed = {row[0] for row in rs.query("SELECT DISTINCT run_id FROM metrics WHERE name = 'grad_norm' AND step = 30")[1]}
    assert finals and finals <= probed


def test_a_fixed_n_hypothesis_is_judged_at_its_planned_seeds(tmp_path):
    """An equivalence test shares its cells with a sequential hypothesis that adds seeds to them:
    it is still judged at the experiment's 4 planned seeds (its protocol), not at the 16 stored."""
    config = tmp_path / "sequential.toml"
    config.write_text(CONFIG + '''
[[hypotheses]]
name = "twins-equal"
metric = "f_gap"
a = "sgd-twin"
b = "sgd-tiny"
direction = "equivalent"
margin = 1.0
''')
    store = tmp_path / "store"
    assert RUNNER.invoke(app, ["run", str(config), "--store", str(store)]).exit_code == 0
    r = RUNNER.invoke(app, ["verify", str(store), "--until-decided", "--format", "json"])
    rows = {row["hypothesis"]: row for row in json.loads(r.stdout)}
    assert rows["twins-differ"]["n_a"] > 4  # seeds were added to the twins' cells
    eq = rows["twins-equal"]
    assert (eq["n_a"], eq["n_b"]) == (4, 4) and eq["reason"].startswith("fixed-n at the planned seeds")
    assert eq["p_holm"] == eq["p_holm"] and eq["effect_low"] <= eq["effect"] <= eq["effect_high"]
