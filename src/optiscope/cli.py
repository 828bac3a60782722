"""The `optiscope` command line: run, report, list, query (and compare, probe).

Errors a user can fix are printed in one line without a traceback and exit with status 2.
"""

from __future__ import annotations

import time
import tomllib
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from optiscope.errors import OptiscopeError
from optiscope.terminal_tables import compare_pairwise_table, compare_summary_table, probe_table

app = typer.Typer(
    help="optiscope: train many seeds under many optimizers, store every run, compare "
    "distributions.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


def _show_version(value: bool) -> None:
    if value:
        import optiscope

        print(f"optiscope {optiscope.__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_show_version, is_eager=True, help="print the version and exit"),
    ] = False,
) -> None:
    """optiscope: train many seeds under many optimizers, store every run, compare distributions."""


FORMAT_HELP = (
    "table, csv or json. Default: table when standard output is a terminal, csv when it is piped "
    "or redirected (so `| grep` and `> file` get whole rows, one line each, at any terminal width)"
)


def fail(message: str) -> None:
    # escaped: messages quote config text such as [[hypotheses]], which is not rich markup
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def warn(message: str) -> None:
    err_console.print(f"[bold yellow]warning:[/] {escape(message)}", highlight=False, soft_wrap=True)


def open_store(path: Path) -> Any:
    """Open a store for reading, saying in one line per file what is left out as damaged."""
    from optiscope.store import RunStore

    store = RunStore.open(path)
    for p in store.problems():
        warn(f"{p.line()}: left out (the cell counts as missing; `optiscope check {path}` lists all, "
             "`optiscope run` trains it again)")
    return store


def warn_missing(store: Any, task: str | None = None) -> None:
    """Say which configured cells (of `task`, if given) the store does not have."""
    missing = [m for m in store.missing_cells() if task is None or m.get("task") == task.split("(")[0]]
    if missing:
        names = ", ".join(f"{m.get('label')} ({m.get('experiment')})" for m in missing[:8])
        more = f" and {len(missing) - 8} more" if len(missing) > 8 else ""
        warn(f"{len(missing)} configured cell(s) are not in the store and are left out: {names}{more}")


class _RichProgress:
    """Feeds the runner's progress callbacks into a rich progress bar with steps/s."""

    def __init__(self, progress: Progress):
        self.p = progress
        self.task_id: Any = None
        self._rate_at = 0.0

    def start(self, total_steps: int) -> None:
        self.task_id = self.p.add_task("training", total=max(total_steps, 1), rate="")

    def cell(self, cell: Any, index: int, n: int) -> None:
        name = f"{cell.task} · {cell.display_name}"
        name = name if len(name) <= 36 else name[:35] + "…"
        self.p.update(self.task_id, description=f"[{index + 1}/{n}] {name}")

    def advance(self, steps: int) -> None:
        self.p.advance(self.task_id, steps)
        now = time.monotonic()
        if now - self._rate_at < 0.25:  # the rate text at most 4 times a second: cheap on a GPU step
            return
        self._rate_at = now
        speed = self.p.tasks[self.task_id].speed
        if speed:
            self.p.update(self.task_id, rate=f"{speed:,.1f} steps/s")


@app.command()
def run(
    experiment: Annotated[Path, typer.Argument(help="experiment TOML file")],
    store: Annotated[Path | None, typer.Option(help="store directory (default runs/<name>)")] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, cuda:N or auto (overrides the file)")] = None,
    report: Annotated[bool, typer.Option(help="write STORE/report.html when done")] = False,
    executor: Annotated[str, typer.Option(help="local (in this process) or ray (one Ray task per ensemble)")] = "local",
    address: Annotated[str | None, typer.Option(help="ray: a running cluster, 'auto' or ray://host:port (default: start Ray here)")] = None,
    workers: Annotated[int | None, typer.Option(help="ray: worker processes (default: one per core; on a cluster: cells in flight)")] = None,
    gpus_per_cell: Annotated[float | None, typer.Option(help="ray on cuda: GPUs per ensemble, a fraction shares a card (default 1)")] = None,
    max_retries: Annotated[int, typer.Option(help="ray: retries of an ensemble whose worker died")] = 2,
    shared_store: Annotated[bool | None, typer.Option("--shared-store/--no-shared-store", help="ray: workers can reach the store (keep checkpoints there); default: yes without --address")] = None,
    threads: Annotated[int | None, typer.Option(min=1, help="torch intra-op threads (overrides [experiment] threads; 1 on a shared machine)")] = None,
) -> None:
    """Train every cell of EXPERIMENT not already in the store (a rerun resumes)."""
    from optiscope.config import load_config
    from optiscope.engine.executors import make_executor
    from optiscope.engine.runner import plan_missing, resolve_device, run_experiment, set_threads
    from optiscope.store import RunStore

    try:
        cfg = load_config(experiment)
        if threads is not None:
            cfg.experiment.threads = threads
        n_threads = set_threads(cfg.experiment.threads)
        cells = cfg.cells()  # a repeated cell is refused here, before anything is made
        root = store or Path("runs") / cfg.experiment.name
        wanted = device or cfg.experiment.device
        if device is not None:
            from optiscope.config import ExperimentSection

            ExperimentSection.check_device(device, "--device")
        # On a cluster the GPUs are the workers', not necessarily this machine's.
        remote_gpu = executor == "ray" and address is not None and (gpus_per_cell or 0) > 0
        dev = ("cuda" if wanted == "auto" else wanted) if remote_gpu else resolve_device(wanted)
        if executor != "ray" and (address, workers, gpus_per_cell, shared_store) != (None,) * 4:
            raise OptiscopeError("--address, --workers, --gpus-per-cell and --shared-store need --executor ray")
        if gpus_per_cell and not dev.startswith("cuda"):
            raise OptiscopeError(f"--gpus-per-cell {gpus_per_cell} needs --device cuda (device is {dev})")
        run_store = RunStore.create(root)  # config and device checked: now the store may be made
        gpus = gpus_per_cell if gpus_per_cell is not None else float(dev.startswith("cuda"))
        runner = make_executor(
            executor, address=address, workers=workers, gpus_per_cell=gpus,
            max_retries=max_retries, shared_store=shared_store,
        )
        probe_factory = _probe_factory()
    except OptiscopeError as exc:
        fail(str(exc))
        return
    if cfg.tuning:  # the trials are asked as the study goes: say the protocol, not a cell count
        from optiscope.tuning.spec import parse_tuning

        t = parse_tuning(cfg)
        what = (f"tuning {len(cells)} optimizer settings × {t.trials} trials of "
                f"{t.seeds_per_trial} seeds × {t.studies} studies, then finals on "
                f"{len(cfg.experiment.seed_list())} fresh seeds")
    else:
        plan = plan_missing(cells, run_store)
        adding = sum(len(c.seeds) for c in plan.todo)
        what = (f"{len(cells)} cells × {len(cfg.experiment.seed_list())} seeds; "
                f"{len(plan.complete)} already in {root}"
                + (f"; training {adding} missing runs" if plan.todo else ""))
    console.print(
        f"[bold]{cfg.experiment.name}[/]: {what} on {dev}"
        + ("" if executor == "local" else f"; executor {executor} {address or 'local'}")
    )
    chosen = "set by --threads" if threads is not None else (
        "[experiment] threads" if cfg.experiment.threads is not None else "torch's default; set threads = 1 on a shared machine")
    console.print(f"torch threads: {n_threads} ({chosen})", highlight=False, markup=False)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(bar_width=24),
        MofNCompleteColumn(),
        TextColumn("steps"),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as bar:
        try:
            summary = run_experiment(
                cfg, run_store, device=dev, progress=_RichProgress(bar),
                config_text=experiment.read_text(), probe_runner_factory=probe_factory,
                executor=runner, say=lambda m: bar.console.print(
                    f"[bold yellow]warning:[/] {escape(m)}", highlight=False, soft_wrap=True),
            )
        except OptiscopeError as exc:
            fail(str(exc))
            return
        finally:
            runner.close()
    console.print(
        f"trained {len(summary.trained)} cells, skipped {len(summary.skipped)} already complete, "
        f"{len(summary.failed)} failed. Store: {root}"
    )
    for cid, msg in summary.failed.items():
        err_console.print(f"[red]cell {cid} failed:[/] {msg}")
    if report:
        _write_report(root, root / "report.html")
    if summary.failed:
        raise typer.Exit(1)


def _probe_factory():
    try:
        from optiscope.probes.schedule import probe_runner_from_config
    except ImportError:
        return None
    return probe_runner_from_config


def _write_report(store: Path, out: Path, static: bool = False) -> None:
    from optiscope.report import build_report
    from optiscope.report.data import StoreView
    from optiscope.report.summary import every_cell_failed, troubles

    try:
        run_store = open_store(store)
        warn_missing(run_store)
        path = build_report(run_store, out, static=static)
        view = StoreView.load(run_store)
    except OptiscopeError as exc:
        fail(str(exc))
        return
    except OSError as exc:
        fail(f"--out: cannot write the report to '{out}' ({exc.strerror or exc}); choose a writable path")
        return
    if every_cell_failed(view):
        err_console.print(f"[bold red]error:[/] every cell in {escape(str(store))} failed: the report at "
                          f"{escape(str(path))} lists their errors (nothing was trained)", highlight=False)
        raise typer.Exit(1)
    bad = [t for t in troubles(view) if t.n_failed]
    if bad:
        err_console.print(f"[bold yellow]warning:[/] {len(bad)} of {len(view.cells)} cells failed; the report "
                          "says which, with their errors, at the top", highlight=False)
    console.print(f"report written to [bold]{path}[/]")


@app.command()
def report(
    store: Annotated[Path, typer.Argument(help="store directory")],
    out: Annotated[Path | None, typer.Option(help="HTML file (default STORE/report.html)")] = None,
    static: Annotated[bool, typer.Option(
        "--static", help="matplotlib figures only (vector SVG, no JavaScript): for papers and archives; "
        "by default figures are interactive, and each can be saved as SVG or PNG from its menu")] = False,
) -> None:
    """Write the HTML report of a store: one self-contained file that works offline.

    Exits with status 1 when every cell of the store failed (the report still lists the errors).
    """
    _write_report(store, out or store / "report.html", static)


@app.command("list")
def list_(
    what: Annotated[str, typer.Argument(help="tasks or optimizers")],
    output: Annotated[str | None, typer.Option("--format", help=FORMAT_HELP)] = None,
) -> None:
    """List the tasks or optimizers available, with their settings and defaults."""
    from optiscope.listing import cell_text, optimizer_rows, task_rows
    from optiscope.tabular import check_format, write_rows

    try:
        fmt = check_format(output)
    except OptiscopeError as exc:
        fail(str(exc))
        return
    if what == "tasks":
        columns, rows, title = task_rows()
    elif what == "optimizers":
        columns, rows, title = optimizer_rows()
    else:
        fail(f"cannot list '{what}': choose 'tasks' or 'optimizers'")
        return
    write_rows(columns, rows, fmt, title=title, text=cell_text, show_lines=True)


@app.command()
def query(
    store: Annotated[Path, typer.Argument(help="store directory")],
    sql: Annotated[str, typer.Argument(help="one SELECT over the views `runs`, `metrics` and `metric_info`")],
    output: Annotated[str | None, typer.Option("--format", help=FORMAT_HELP)] = None,
) -> None:
    """Run a read-only SQL query against a store and print the result.

    Only SELECT statements run (also WITH, FROM, DESCRIBE, SHOW, SUMMARIZE).

    DuckDB may read the store's own files and nothing else: no writes, no reads elsewhere.
    """
    from optiscope.tabular import check_format, write_rows

    try:
        fmt = check_format(output)
        columns, rows = open_store(store).query(sql)
    except OptiscopeError as exc:
        fail(str(exc))
        return
    write_rows(columns, rows, fmt)


# -- compare (statistics of one task's cells; the report's comparison, in the terminal) ----------
@app.command()
def compare(
    store: Annotated[Path, typer.Argument(help="store directory")],
    task: Annotated[str | None, typer.Option(
        help="task as the report names it (its label, e.g. rosenbrock or quadratic(dim=2)); "
        "may be left out when the store holds one task")] = None,
    metric: Annotated[str | None, typer.Option(help="final metric to compare (default: the task's headline)")] = None,
    test: Annotated[str, typer.Option(help="mannwhitney, ks, welch or permutation")] = "mannwhitney",
    alternative: Annotated[str, typer.Option(
        help="two-sided, less or greater. Each pair is a row (a, b), with a the cell listed first "
        "in the summary (the store's order); 'less' tests whether a's final values tend to be "
        "smaller than b's (for a metric to minimise: a better), 'greater' whether larger")] = "two-sided",
    output: Annotated[str | None, typer.Option("--format", help=FORMAT_HELP + "; json holds both tables")] = None,
    pairs: Annotated[bool, typer.Option("--pairs", help="csv: print the pairwise tests instead of the per-cell summaries")] = False,
    csv: Annotated[Path | None, typer.Option(help="write the per-cell summaries here (and FILE.pairwise.csv)")] = None,
    parquet: Annotated[Path | None, typer.Option(help="write the summaries as Parquet (and FILE.pairwise.parquet)")] = None,
) -> None:
    """Compare every cell of TASK on a final metric: summaries, pairwise tests (Holm), effect sizes.

    Effects are in the direction "better" for the metric's goal (P(a better), Cohen's d with
    + favouring a). Mann-Whitney p-values are exact for small samples without ties, else
    asymptotic ("p from"). CSV and JSON keep full precision.
    """
    from optiscope.report.analysis import compare_task
    from optiscope.report.data import StoreView, configured_seeds
    from optiscope.stats import ALTERNATIVES
    from optiscope.tabular import check_format, write_rows

    if alternative not in ALTERNATIVES:
        fail(f"--alternative must be one of {', '.join(ALTERNATIVES)}, not '{alternative}'")
        return
    try:
        fmt = check_format(output)
        run_store = open_store(store)
        warn_missing(run_store, task)
        if metric is not None and metric in run_store.categorical_metrics():
            fail(_categorical_message(store, task or "TASK", metric))
            return
        view = StoreView.load(run_store, seeds=configured_seeds(run_store.config_text(), run_store))
        result = compare_task(view, task, metric, test, alternative=alternative)
        written = result.export(csv, parquet)
    except OptiscopeError as exc:
        fail(str(exc))
        return
    if fmt == "table":
        console.print(compare_summary_table(result))
        console.print(compare_pairwise_table(result))
        for path in written:
            console.print(f"wrote [bold]{path}[/]")
        return
    summary, pairwise = result.summary_rows(), result.pairwise_rows()
    if fmt == "json":
        import json
        import sys

        from optiscope.tabular import _jsonable

        doc = {"task": result.task_key, "task_name": result.task_name, "metric": result.metric,
               "goal": result.goal, "test": result.test, "alternative": alternative,
               "summary": summary, "pairwise": pairwise}
        sys.stdout.write(json.dumps(_jsonable(doc), indent=1, allow_nan=False) + "\n")
        return
    rows = pairwise if pairs else summary
    columns = list(rows[0]) if rows else ["a", "b"]
    write_rows(columns, [[r.get(c) for c in columns] for r in rows], "csv")


def _categorical_message(store: Path, task: str, metric: str) -> str:
    """Where to look instead: a categorical metric has labels to count, not values to rank."""
    sql = (
        "SELECT label, value AS {m}, count(*) AS seeds FROM (SELECT r.label, m.value, m.step, "
        "max(m.step) OVER (PARTITION BY m.run_id) AS last FROM metrics m JOIN runs r USING (run_id) "
        "WHERE m.name = '{m}' AND r.task = '{t}') WHERE step = last GROUP BY ALL ORDER BY ALL"
    ).format(m=metric.replace("'", "''"), t=task.split("(")[0].replace("'", "''"))
    return (
        f"metric '{metric}' is categorical (a label per seed, with no better or worse), so it has "
        "no medians or rank tests to compare. See the 'Terminal basins' table in the task's "
        f"section of the report (optiscope report {store}), or count the seeds per label:\n"
        f'  optiscope query {store} "{sql}"'
    )


# -- probe (probes on saved final parameters, after training) ------------------------------------
@app.command()
def probe(
    store: Annotated[Path, typer.Argument(help="store directory")],
    cell: Annotated[list[str] | None, typer.Option(help="cell id or unique prefix (repeatable; default: every cell with saved parameters)")] = None,
    tier: Annotated[str, typer.Option(help="cheap, geometry or full")] = "geometry",
    probes: Annotated[str | None, typer.Option(help="comma-separated probe groups (overrides --tier)")] = None,
    samples: Annotated[int, typer.Option(help="Hutchinson probes for trace and R_med")] = 8,
    top_k: Annotated[int, typer.Option(help="how many top Hessian eigenvalues")] = 1,
    write: Annotated[bool, typer.Option(help="also store the values as metrics at each cell's last step")] = False,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:N or auto")] = "cpu",
) -> None:
    """Compute probes on the saved final parameters of a store's cells (safetensors; no pickle)."""
    from optiscope.engine.runner import resolve_device
    from optiscope.probes.posthoc import probe_cell, resolve_cells, write_probe_metrics
    from optiscope.probes.schedule import parse_probe_config

    try:
        raw: dict[str, Any] = {"tier": tier, "samples": samples, "top_k": top_k}
        if probes:
            raw["probes"] = [p.strip() for p in probes.split(",") if p.strip()]
        config = parse_probe_config(raw)
        run_store = open_store(store)
        dev = resolve_device(device)
        cell_ids = resolve_cells(run_store, cell)
        if not cell_ids:
            fail(f"no cell in {store} has saved parameters (run with save_params = true)")
            return
        for cid in cell_ids:
            result = probe_cell(run_store, cid, config, device=dev)
            console.print(probe_table(result))
            if write:
                n = write_probe_metrics(run_store, result)
                console.print(f"wrote {n} metric rows for cell {cid} at step {result.step}")
    except OptiscopeError as exc:
        fail(str(exc))
        return


# -- verify (the experiment's [[hypotheses]] on the stored runs) ---------------------------------
@app.command()
def verify(
    store: Annotated[Path, typer.Argument(help="store directory")],
    config: Annotated[Path | None, typer.Option(help="TOML file with hypotheses tables (default: every experiment's saved config)")] = None,
    experiment: Annotated[str | None, typer.Option(help="judge only this experiment's hypotheses (default: every experiment in the store)")] = None,
    output: Annotated[str | None, typer.Option("--format", help=FORMAT_HELP)] = None,
    until_decided: Annotated[bool, typer.Option("--until-decided", help="add seeds in batches and look again (a group-sequential design) until every hypothesis is decided or max_seeds is reached")] = False,
    max_seeds: Annotated[int | None, typer.Option(help="--until-decided: seeds per cell at most (default: [verification] max_seeds)")] = None,
    batch: Annotated[int | None, typer.Option(help="--until-decided: seeds added per look (default: [verification] batch)")] = None,
    spending: Annotated[str | None, typer.Option(help="--until-decided: alpha spending, obrien-fleming (default) or pocock")] = None,
    device: Annotated[str | None, typer.Option(help="--until-decided: device to train on (default: the experiment's)")] = None,
) -> None:
    """Test every claim of the hypotheses tables of every experiment in the store (each on its
    own experiment's cells, or only --experiment's): holds, fails, inconclusive or invalid.

    With --until-decided, seeds are added in batches (only those the store lacks are trained)
    and the hypotheses looked at again after each batch, with group-sequential boundaries that
    keep the family-wise error at alpha over all looks, until each holds, fails (futility) or
    max_seeds is reached (inconclusive, with the power reached). Every look is stored.

    One line per hypothesis: verdict, test statistic, p-value Holm-adjusted across all the
    hypotheses, effect size with its bootstrap interval, the test's power at min_effect, and its
    guards (requires, plasticity) with the values measured. Exit status: 0 every hypothesis
    holds; 1 some fail, are inconclusive (too few seeds to tell) or invalid (a guard not met);
    2 bad input (no hypotheses, an unknown cell or metric).
    """
    from rich.text import Text

    from optiscope.formatting import format_number
    from optiscope.hypotheses.evaluate import VERDICT_COLUMNS, verdict_rows, verify_store
    from optiscope.listing import cell_text
    from optiscope.tabular import check_format, write_rows

    try:
        fmt = check_format(output)
        if config is not None and not config.is_file():
            raise OptiscopeError(f"--config: '{config}' is not a file")
        warn_missing(open_store(store))
        if until_decided:
            _verify_until_decided(store, config, fmt, max_seeds=max_seeds, batch=batch,
                                  spending=spending, device=device, experiment=experiment)
            return
        verdicts = verify_store(store, config=config, experiment=experiment)
    except OptiscopeError as exc:
        fail(str(exc))
        return
    rows = verdict_rows(verdicts)
    if fmt == "table":  # plain text cells (names may hold brackets), numbers formatted, verdicts coloured
        colour = {"holds": "bold green", "fails": "bold red", "inconclusive": "bold yellow",
                  "invalid": "bold magenta"}
        rows = [[r[0], Text(r[1], style=colour[r[1]]), *r[2:]] for r in rows]
        write_rows(VERDICT_COLUMNS, rows, fmt, title="hypotheses", text=lambda v: v if isinstance(v, Text)
                   else Text(format_number(v) if isinstance(v, float) else cell_text(v)))
    else:
        write_rows(VERDICT_COLUMNS, rows, fmt)
    raise typer.Exit(0 if all(v.holds for v in verdicts) else 1)


LOOK_COLUMNS = ["hypothesis", "verdict", "n_a", "n_b", "looks", "z", "boundary", "futility", "level",
                "effect", "power", "reason", "p_holm", "effect_low", "effect_high"]


def _verify_until_decided(store: Path, config: Path | None, fmt: str, **plan: Any) -> None:
    """`verify --until-decided`: the loop of optiscope.hypotheses.verification, printed."""
    from optiscope.config import load_config, parse_config
    from optiscope.engine.runner import resolve_device
    from optiscope.hypotheses.verification import plan_of, train_more_seeds, verify_until_decided
    from optiscope.store import RunStore
    from optiscope.tabular import write_rows

    run_store = RunStore.open(store)
    experiment = plan.pop("experiment")
    if config is not None:
        cfg = load_config(config)
    else:
        saved = run_store.experiment_configs()
        if experiment is not None and experiment not in saved:
            raise OptiscopeError(f"--experiment '{experiment}': the store {run_store.root} has no saved config "
                                 f"of that name; experiments: {', '.join(saved) or 'none'}")
        text = saved[experiment] if experiment is not None else run_store.config_text()
        if text is None:
            raise OptiscopeError(f"the store {run_store.root} has no saved config (config.toml): give --config FILE")
        cfg = parse_config(tomllib.loads(text), str(run_store.root / "config.toml"))
    device = resolve_device(plan.pop("device") or cfg.experiment.device)
    seq_plan = plan_of(cfg, **plan)
    err = err_console
    err.print(f"[bold]{cfg.experiment.name}[/]: verifying until decided, up to {seq_plan.max_seeds} seeds per "
              f"cell in batches of {seq_plan.batch} ({seq_plan.spending} spending, alpha {seq_plan.alpha:g})")

    def on_look(n: int, decided: list[Any]) -> None:
        open_ = [d.name for d in decided if d.verdict == "continue"]
        err.print(f"look at {n} seeds: " + ", ".join(f"{d.name} {d.verdict}" for d in decided)
                  + (f"; adding seeds for {len(open_)}" if open_ and n < seq_plan.max_seeds else ""))

    result = verify_until_decided(run_store, cfg, seq_plan, train_more_seeds(run_store, device), on_look=on_look)
    rows, nan = [], float("nan")
    for d in result.decided:
        last = d.looks[-1] if d.looks else None
        bounds = (nan,) * 4 if last is None else (last.statistic, last.boundary, last.futility, last.level)
        # p and interval: the fixed-n test at the seeds of the deciding look (a fixed-n
        # hypothesis: at its planned seeds), as descriptions next to the design's decision
        f = d.fixed
        rows.append([d.name, d.verdict, d.n_a, d.n_b, len(d.looks), *bounds,
                     d.effect,
                     last.power if last else (f.power if f is not None else nan), d.reason,
                     f.pvalue_adjusted if f is not None else nan,
                     f.effect.low if f is not None else nan, f.effect.high if f is not None else nan])
    write_rows(LOOK_COLUMNS, rows, fmt, title="hypotheses (sequential)")
    err.print(f"{result.seeds_trained} runs trained by this verification; looks stored in "
              f"{run_store.root / 'verification'}")
    raise typer.Exit(0 if result.all_hold else 1)


# -- check (every file of a store read and verified; --repair sets the bad ones aside) -----------
@app.command()
def check(
    store: Annotated[Path, typer.Argument(help="store directory")],
    repair: Annotated[bool, typer.Option(help="move damaged and orphaned files to STORE/quarantine, remove leftovers")] = False,
) -> None:
    """Read every file of a store: checksums, footers, schemas, and that runs, metrics and
    parameters correspond. Lists what is damaged, orphaned or left over (.tmp files).

    Exit status: 0 the store is sound (after --repair: made sound); 1 problems remain; 2 bad input.
    """
    from optiscope.store.check import check_store

    try:
        result = check_store(store, repair=repair)
    except OptiscopeError as exc:
        fail(str(exc))
        return
    for line in result.repaired:
        console.print(f"repaired: {escape(line)}", highlight=False, soft_wrap=True)
    for p in result.problems:
        console.print(f"[bold red]{p.kind}:[/] {escape(p.line())}", highlight=False, soft_wrap=True)
    for busy in result.busy:
        warn(f"cell {busy} is being trained by another run: left alone")
    verdict = "sound" if result.clean else f"{len(result.problems)} problem(s)"
    hint = "" if result.clean or repair else f"; `optiscope check {store} --repair` sets them aside"
    console.print(f"{store}: {result.cells} cells verified, {verdict}{hint}")
    raise typer.Exit(0 if result.clean else 1)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
