"""`optiscope probe`: probes on a store's saved final parameters, printed and written back."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from optiscope.cli import app
from optiscope.errors import OptiscopeError
from optiscope.probes.posthoc import probe_cell, resolve_cells, stored_cells, write_probe_metrics
from optiscope.probes.schedule import ProbeConfig
from optiscope.probes.solution import effective_rank
from optiscope.tasks import make_task


def test_probes_of_saved_parameters_match_the_last_trajectory_probes(probed_store):
    """Same parameters, same probe batch: the weight properties at the last step agree."""
    cell = stored_cells(probed_store)[0]
    result = probe_cell(probed_store, cell, ProbeConfig(probes=["weights", "trace"]))
    assert result.step == 12
    stored = probed_store.fetch(
        "SELECT m.value FROM metrics m JOIN runs r USING (run_id) WHERE r.cell_id = ? "
        "AND m.name = 'eff_rank/layer1.weight' AND m.step = 12 ORDER BY r.member", [cell],
    )["value"]
    np.testing.assert_allclose(result.values["eff_rank/layer1.weight"], stored, rtol=1e-5)
    saved = probed_store.load_params(probed_store.batch_ids(cell)[0])
    np.testing.assert_allclose(
        result.values["eff_rank/layer1.weight"], effective_rank(saved["layer1.weight"], ensemble_dims=1).numpy(), rtol=1e-6
    )
    assert np.isfinite(result.values["hessian_trace"]).all()


def test_writing_probe_metrics_is_idempotent(probed_store):
    cell = stored_cells(probed_store)[1]
    result = probe_cell(probed_store, cell, ProbeConfig(probes=["gradient"]))
    count = "SELECT count(*) AS n FROM metrics m JOIN runs r USING (run_id) WHERE r.cell_id = ? AND m.name = 'grad_norm'"
    before = int(probed_store.fetch(count, [cell])["n"][0])
    assert write_probe_metrics(probed_store, result) == 3
    assert write_probe_metrics(probed_store, result) == 3
    assert int(probed_store.fetch(count, [cell])["n"][0]) == before  # the step-12 rows were replaced


def test_cli_probe_prints_a_table(probed_store):
    cell = stored_cells(probed_store)[0]
    res = CliRunner().invoke(app, ["probe", str(probed_store.root), "--cell", cell[:6], "--probes", "weights,top_eig"])
    assert res.exit_code == 0, res.output
    assert "top_eig" in res.output and "eff_rank/layer1.weight" in res.output


def test_cli_probe_names_bad_input(probed_store):
    runner = CliRunner()
    res = runner.invoke(app, ["probe", str(probed_store.root), "--tier", "luxury"])
    assert res.exit_code == 2 and "probes.tier" in res.output
    res = runner.invoke(app, ["probe", str(probed_store.root), "--cell", "zzzz"])
    assert res.exit_code == 2 and "matches no cell" in res.output


def test_resolve_cells_requires_unique_prefixes(probed_store):
    cells = stored_cells(probed_store)
    assert resolve_cells(probed_store, None) == cells
    with pytest.raises(OptiscopeError, match="matches 2 cells"):
        resolve_cells(probed_store, [""])


def test_saved_tensors_must_match_the_task(probed_store, tmp_path):
    from optiscope.store import RunStore

    cell = stored_cells(probed_store)[0]
    saved = probed_store.load_params(probed_store.batch_ids(cell)[0])
    saved["extra"] = torch.zeros(3, 2)
    probed_store.save_params(probed_store.batch_ids(cell)[0], saved)
    try:
        with pytest.raises(OptiscopeError, match="do not match task"):
            probe_cell(probed_store, cell, ProbeConfig(probes=["weights"]))
    finally:
        del saved["extra"]
        probed_store.save_params(probed_store.batch_ids(cell)[0], saved)
    assert isinstance(RunStore.open(probed_store.root), RunStore) and make_task("mnist1d-mlp", hidden=8, depth=1)


def test_written_probe_metrics_go_through_the_store_and_are_declared(probed_store):
    """Post-hoc values land in the cell's metrics via RunStore, and a name the cell's
    metric_info lacked is declared with the probe registry's goal and unit."""
    from optiscope.probes.registry import metric_info

    cell = stored_cells(probed_store)[1]
    batch = probed_store.batch_ids(cell)[0]  # the cell's one batch: the file its metrics live in
    info = probed_store.read_metric_info(batch).to_pylist()
    probed_store.write_metric_info(batch, [r for r in info if r["name"] != "grad_norm"])
    result = probe_cell(probed_store, cell, ProbeConfig(probes=["gradient"]))
    write_probe_metrics(probed_store, result)
    rows = {r["name"]: r for r in probed_store.read_metric_info(batch).to_pylist()}
    expected = metric_info("grad_norm")
    assert rows["grad_norm"]["source"] == "probe"
    assert (rows["grad_norm"]["goal"], rows["grad_norm"]["unit"]) == (expected.goal, expected.unit)
    assert len(rows) == len(info)  # nothing else added or lost
    leftovers = list((probed_store.root / "metrics").glob("*.tmp"))
    assert leftovers == []
