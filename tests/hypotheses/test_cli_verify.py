"""`optiscope verify`: exit 0 when every hypothesis holds, 1 when one does not, 2 for bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from optiscope.cli import app
from optiscope.hypotheses.evaluate import VERDICT_COLUMNS

from .conftest import land_finals

RUNNER = CliRunner()
HOLDS = """
[[hypotheses]]
name = "treated-lower"
metric = "loss"
a = "treated"
b = "control"
direction = "less"
"""
NOT_HOLDING = HOLDS + """
[[hypotheses]]
name = "treated-higher"
metric = "loss"
a = "treated"
b = "control"
direction = "greater"
"""


@pytest.fixture
def planted(store):
    land_finals(store, "ca", "treated", np.arange(10) * 0.1, optimizer="adam")
    land_finals(store, "cb", "control", 5 + np.arange(10) * 0.1, optimizer="sgd")
    return store


def verify(*args: str):
    return RUNNER.invoke(app, ["verify", *args])


def test_exit_0_when_every_hypothesis_holds_with_the_saved_config(planted):
    planted.save_config(HOLDS)
    r = verify(str(planted.root), "--format", "csv")
    assert r.exit_code == 0, r.output
    lines = r.output.strip().splitlines()
    assert lines[0] == ",".join(VERDICT_COLUMNS)
    assert lines[1].startswith("treated-lower,holds,")


def test_exit_1_when_one_fails_and_json_has_every_field(planted, tmp_path):
    config = tmp_path / "claims.toml"
    config.write_text(NOT_HOLDING)
    r = verify(str(planted.root), "--config", str(config), "--format", "json")
    assert r.exit_code == 1, r.output
    rows = json.loads(r.output)
    assert [(x["hypothesis"], x["verdict"]) for x in rows] == [("treated-lower", "holds"), ("treated-higher", "fails")]
    assert rows[0]["p_holm"] == pytest.approx(2 / 184756)  # 1/C(20,10), doubled by Holm over 2
    assert rows[0]["effect"] == -1.0 and rows[0]["effect_measure"] == "cliffs_delta"


def test_the_table_names_each_verdict(planted):
    planted.save_config(NOT_HOLDING)
    r = verify(str(planted.root), "--format", "table")
    assert r.exit_code == 1
    assert "holds" in r.output and "fails" in r.output and "treated-higher" in r.output


@pytest.mark.parametrize(("config", "message"), [
    ("", "no [[hypotheses]] tables"),
    (HOLDS.replace('a = "treated"', 'a = "treatd"'), "a = 'treatd' names no cell"),
    (HOLDS.replace('metric = "loss"', 'metric = "accuracy"'), "unknown metric 'accuracy'"),
    (HOLDS.replace('direction = "less"', 'direction = "smaller"'), "direction: Input should be"),
])
def test_exit_2_for_bad_input(planted, tmp_path, config, message):
    path = tmp_path / "claims.toml"
    path.write_text(config)
    r = verify(str(planted.root), "--config", str(path))
    assert r.exit_code == 2
    assert message in " ".join(r.output.split())


def test_exit_2_without_a_store_or_a_saved_config(planted, tmp_path):
    assert verify(str(tmp_path / "nowhere")).exit_code == 2
    r = verify(str(planted.root))
    assert r.exit_code == 2 and "no saved config" in r.output
    assert verify(str(planted.root), "--config", str(tmp_path / "missing.toml")).exit_code == 2


GUARDED = HOLDS + """requires = [
  { side = "b", metric = "loss", op = "<", value = 1, name = "control-trained" },
  { side = "both", max_diverged = 0 },
]
"""


def test_exit_1_when_a_guard_is_not_met_and_every_format_says_why(planted):
    """The claim holds by the test, but control's loss ends near 5: the comparison is invalid."""
    planted.save_config(GUARDED)
    r = verify(str(planted.root), "--format", "json")
    assert r.exit_code == 1, r.output
    (row,) = json.loads(r.output)
    assert row["verdict"] == "invalid" and row["guards_failed"] == "control-trained"
    assert "control-trained not met (b: final loss < 1 (median over seeds))" in row["reason"]
    assert "b 'control': median 5.45 (range 5 to 5.9), 10 of 10 seeds failing" in row["reason"] and "Without the guards: holds" in row["reason"]
    assert "control-trained (NOT MET): b 'control'" in row["guards"]
    assert "both: at most 0 diverged seeds (met): a 'treated': 0 of 10 seeds diverged" in row["guards"]
    table = " ".join(verify(str(planted.root), "--format", "table").output.split())
    assert "invalid" in table and "control-trained" in table
    planted.save_config(GUARDED.replace("value = 1,", "value = 6,"))
    assert verify(str(planted.root)).exit_code == 0


def test_exit_2_for_a_bad_condition(planted, tmp_path):
    path = tmp_path / "claims.toml"
    path.write_text(GUARDED.replace('op = "<"', 'op = "=<"'))
    r = verify(str(planted.root), "--config", str(path))
    assert r.exit_code == 2
    assert "requires.0.op: Input should be '<', '<=', '>' or '>='" in " ".join(r.output.split())
