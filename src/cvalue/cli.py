"""The ``cvalue`` command line: the demo and the scoring job's commands.

Only this module prints. Every job command takes ``--config cvalue.toml`` and ``--json`` (one JSON
object on standard output instead of tables). Exit codes: 0 ok, 2 bad input or configuration
(a query the database refuses as written included), 3 database error (worth a retry), 4 a model
did not converge, 5 the scores were written but the report could not be put in place.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cvalue._version import __version__
from cvalue.errors import ConvergenceError, CValueError, DatabaseError, QueryError, ReportError

if TYPE_CHECKING:  # the library is imported by the commands that run it: --help needs none of it
    import pandas as pd

    from cvalue.config import JobConfig
    from cvalue.job import JobResult, Loaded

__all__ = [
    "DEMO_CONFIG",
    "EXIT_BAD_INPUT",
    "EXIT_CONVERGENCE",
    "EXIT_DATABASE",
    "EXIT_REPORT_AFTER_WRITE",
    "app",
    "main",
]

app = typer.Typer(
    name="cvalue",
    help="Customer value analytics on top of CRM data.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()
errors = Console(stderr=True)

EXIT_BAD_INPUT = 2
EXIT_DATABASE = 3
EXIT_CONVERGENCE = 4
EXIT_REPORT_AFTER_WRITE = 5
DEMO_URL_VARIABLE = "CVALUE_DEMO_DATABASE_URL"
DEMO_CONFIG = """\
# The demo's scoring job. Run it again with:
#   CVALUE_DEMO_DATABASE_URL=duckdb:///{database} cvalue score --config {config}

[source]
url_env = "CVALUE_DEMO_DATABASE_URL"

[source.transactions]
table = "transactions"
order_id = "order_id"
is_return = "is_return"
category = "category"
channel = "channel"

[source.customers]
table = "customers"
segment = "segment"
channel = "channel"
acquisition_cost = "acquisition_cost"

[source.surveys]
table = "surveys"

[summary]
observation_end = {observation_end}
unit = "week"

[models]
purchase = "auto"
holdout = "26w"

[value]
margin = 0.30
horizons = ["3y", "5y"]

[value.cost_to_serve]
table = "service_contacts"

[value.marketing_cost]
amount = 0.0  # none recorded: said, not left out

[value.discount]
kind = "by_segment"
rate = 0.10
by_segment = {{ retail = 0.12, online = 0.11, corporate = 0.08 }}

[segments]
promotion = "is_promotion"
promotion_discount_rate = 0.20
return_handling_cost = 8.0

[outputs]
scores_table = "customer_value"
write_mode = "replace"
report = "report.html"
"""

ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="The job's TOML file.", exists=False)
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object, no tables.")]


def _show_version(value: bool) -> None:
    if value:
        console.print(f"cvalue {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_show_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """Customer value analytics on top of CRM data."""


# --- running a command: errors to exit codes, progress ------------------------------------------


@contextmanager
def _exit_codes(as_json: bool) -> Iterator[None]:
    """Map the library's errors to exit codes, with the message on standard error."""
    try:
        yield
    except ReportError as exc:
        code = EXIT_REPORT_AFTER_WRITE if exc.scores_written else EXIT_BAD_INPUT
        _fail("report not written", exc, code, as_json)
    except QueryError as exc:  # the statement's fault, not the database's: retrying cannot help
        _fail("bad query", exc, EXIT_BAD_INPUT, as_json)
    except DatabaseError as exc:
        _fail("database error", exc, EXIT_DATABASE, as_json)
    except ConvergenceError as exc:
        _fail("model did not converge", exc, EXIT_CONVERGENCE, as_json)
    except CValueError as exc:
        _fail("bad input", exc, EXIT_BAD_INPUT, as_json)


def _fail(kind: str, exc: Exception, code: int, as_json: bool) -> None:
    if as_json:
        console.print_json(json.dumps({"ok": False, "error": kind, "message": str(exc)}))
    else:
        # escaped: messages name config sections such as [source.transactions]
        errors.print(f"[red]{kind}:[/red] {escape(str(exc))}", markup=True, highlight=False)
    raise typer.Exit(code) from exc


@contextmanager
def _progress(as_json: bool) -> Iterator[Callable[[str], None]]:
    """A status line naming the stage that runs (silent with ``--json``)."""
    if as_json:
        yield lambda stage: None
        return
    with console.status("starting") as status:
        yield lambda stage: status.update(f"{stage} ...")


def _json_safe(value: object) -> object:
    """``value`` with every NaN or infinite number as None: standard JSON has no NaN."""
    if isinstance(value, Mapping):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _print(payload: Mapping[str, Any], tables: list[Table], as_json: bool) -> None:
    if as_json:
        safe = _json_safe({"ok": True, **payload})
        console.print_json(json.dumps(safe, default=str, allow_nan=False))
        return
    for table in tables:
        console.print(table)


def _key_values(title: str, rows: Mapping[str, object]) -> Table:
    """A two-column table of ``rows``; snake_case keys read as words."""
    table = Table(title=title, show_header=False)
    for key, value in rows.items():
        if isinstance(value, int):
            shown = f"{value:,}"
        elif isinstance(value, float):
            shown = f"{value:,.1f}" if key == "seconds" else f"{value:,.0f}"
        else:
            shown = str(value)
        table.add_row(key.replace("_", " "), shown)
    return table


def _frame_table(title: str, frame: pd.DataFrame) -> Table:
    table = Table(title=title)
    table.add_column(str(frame.index.name or ""))
    for column in frame.columns:
        table.add_column(str(column), justify="right")
    for name, row in frame.iterrows():
        table.add_row(str(name), *(f"{v:,.4g}" if isinstance(v, float) else str(v) for v in row))
    return table


def _config(path: Path, environ: Mapping[str, str] | None = None) -> JobConfig:
    from cvalue.config import load_config

    return load_config(path, environ=environ)


# --- the commands -----------------------------------------------------------------------------


def _loaded(job: JobConfig) -> Loaded:
    """The transactions validated where ``score`` validates them.

    In the database for a chunked run, on the Dask workers for a Dask run, else in memory.
    """
    from cvalue.job import load, validated_in_database, validated_on_dask

    if job.run.chunk_customers is not None:
        return validated_in_database(job)
    if job.run.engine == "dask":
        return validated_on_dask(job)
    return load(job)


@app.command()
def validate(config: ConfigOption = Path("cvalue.toml"), as_json: JsonOption = False) -> None:
    """Validate the transactions, and check the configuration and outputs as `score` would.

    Shows what was rejected and why. Every output location and every requirement one section
    of the configuration puts on another are checked, so that `score` fails on none of them.
    """
    from cvalue.job import check_outputs

    with _exit_codes(as_json):
        job = _config(config)
        check_outputs(job, write=True, report_path=job.outputs.report)
        with _progress(as_json) as progress:
            progress("read and validate")
            loaded = _loaded(job)
    counts = {"transactions_kept": loaded.report.n_clean,
              "rows_rejected": loaded.report.n_rejected,
              "observation_end": str(loaded.observation_end.date())}  # fmt: skip
    reasons = loaded.report.reasons
    tables = [_key_values("Validation", counts)]
    if len(reasons):
        tables.append(_frame_table("Rejected rows by reason", reasons.set_index("reason")))
    if loaded.notes:
        tables.append(
            _key_values("Notes", {f"{n}": note for n, note in enumerate(loaded.notes, 1)})
        )
    payload = {**counts, "reasons": reasons.to_dict(orient="records"), "notes": list(loaded.notes)}
    _print(payload, tables, as_json)


@app.command()
def fit(config: ConfigOption = Path("cvalue.toml"), as_json: JsonOption = False) -> None:
    """Fit the purchase and spend models; show the parameters with standard errors."""
    from cvalue.job import fit_models, fitted_in_database, fitted_on_dask, load

    with _exit_codes(as_json):
        job = _config(config)
        with _progress(as_json) as progress:
            if job.run.chunk_customers is not None:
                progress("validate, summarise and fit in the database")
                models = fitted_in_database(job)
            elif job.run.engine == "dask":
                progress("validate, summarise and fit on the Dask workers")
                models = fitted_on_dask(job)
            else:
                progress("read and validate")
                loaded = load(job)
                progress("summarise and fit")
                models = fit_models(job, loaded)
    purchase = models.purchase
    payload = {
        "purchase_model": type(purchase).__name__,
        "purchase_params": purchase.summary().to_dict(orient="index"),
        "spend_params": models.spend.summary().to_dict(orient="index"),
        "log_likelihood": purchase.log_likelihood_,
        "customers": _fitted_customers(models.summary),
        "summary_source": models.summary_source,
    }
    tables = [_frame_table(f"{type(purchase).__name__} parameters", purchase.summary()),
              _frame_table("Gamma-Gamma parameters", models.spend.summary())]  # fmt: skip
    test = getattr(purchase, "covariate_test_", None)
    if test is not None:  # [models] covariates: their joint test against the model without
        payload["covariate_test"] = {"statistic": test.statistic, "df": test.df,
                                     "p_value": test.p_value}  # fmt: skip
    if models.candidates is not None:
        title = f"Candidates by holdout score (ranked by {job.models.rank_by})"
        tables.insert(0, _frame_table(title, models.candidates))
        payload["candidates"] = models.candidates.to_dict(orient="index")
    _print(payload, tables, as_json)


def _fitted_customers(summary: pd.DataFrame) -> int:
    """Customers the models were fitted on: a chunked or Dask fit's patterns carry a weight."""
    return int(summary["weight"].sum()) if "weight" in summary else len(summary)


def _scored(result: JobResult) -> int:
    """Customers scored: the scores' rows, or those a chunked run streamed."""
    if result.in_database is not None:
        return result.in_database.n_customers
    return len(result.scores) if result.scores is not None else 0


def _closing(result: JobResult) -> dict[str, object]:
    """What was read, rejected, fitted and written, for the closing table."""
    from cvalue.job import horizon_label
    from cvalue.units import Duration

    assert result.models is not None  # run() always fits
    rows: dict[str, object] = {
        "transactions_read": result.loaded.report.n_rows,
        "rows_rejected": result.loaded.report.n_rejected,
        "customers_scored": _scored(result),
        "customers_too_new": len(result.models.too_new),
        "purchase_model": type(result.models.purchase).__name__,
    }
    if result.equity is not None:
        for horizon, row in result.equity.total.iterrows():
            label = horizon_label(Duration.parse(str(horizon)))
            rows[f"customer_equity_{label}"] = float(row["equity"])
    if result.written is not None:
        rows["scores_table"] = result.written.table
        rows["rows_written"] = result.written.rows_written
    if result.report_path is not None:
        rows["report"] = str(result.report_path)
    rows["seconds"] = round(sum(result.timings.values()), 2)
    return rows


def _run_job(job: JobConfig, *, write: bool, report: Path | None, as_json: bool,
             environ: Mapping[str, str] | None = None) -> JobResult:  # fmt: skip
    from cvalue.job import run

    with _exit_codes(as_json), _progress(as_json) as progress:
        return run(job, environ=environ, write=write, report_path=report, progress=progress)


@app.command()
def score(
    config: ConfigOption = Path("cvalue.toml"),
    as_json: JsonOption = False,
    report: Annotated[
        Path | None, typer.Option(help="Where to write the report (default: the config's).")
    ] = None,
) -> None:
    """Run the whole job: fit, value and segment every customer, write the scores and the report."""
    with _exit_codes(as_json):
        job = _config(config)
    result = _run_job(job, write=True, report=report, as_json=as_json)
    closing = _closing(result)
    _print(closing, [_key_values("What the job did", closing)], as_json)


@app.command(name="report")
def report_command(
    config: ConfigOption = Path("cvalue.toml"),
    as_json: JsonOption = False,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="The HTML file (default: the config's).")
    ] = None,
) -> None:
    """Run the job without writing scores, and write the HTML report."""
    with _exit_codes(as_json):
        job = _config(config)
        if output is None and job.outputs.report is None:
            raise CValueError("no report path: pass --output or set [outputs] report")
    result = _run_job(job, write=False, report=output, as_json=as_json)
    closing = _closing(result)
    _print(closing, [_key_values("Report", closing)], as_json)


@app.command(name="history")
def history_command(
    config: ConfigOption = Path("cvalue.toml"),
    as_json: JsonOption = False,
    quarters: Annotated[int, typer.Option(min=2, help="Quarters the trend test looks at.")] = 8,
    grouping: Annotated[
        str | None,
        typer.Option(help='Only this grouping: "all", "segment", "cohort" or "value tier".'),
    ] = "all",
) -> None:
    """Each indicator's latest quarter and its trend across the runs: rising, falling or flat."""
    with _exit_codes(as_json):
        job = _config(config)
        table = job.outputs.history_table
        if table is False:
            raise CValueError("[outputs] history_table = false: this job keeps no run history")
        from cvalue.io.history import read_history
        from cvalue.trends import history_trends

        history = read_history(job.scores_url(), str(table), schema=job.outputs.schema_name)
        trends = history_trends(history, quarters=quarters)
        if grouping is not None:
            trends = trends[trends["grouping"] == grouping]
    runs = int(history["run_id"].nunique()) if len(history) else 0
    shown = trends.set_index(["group_name", "indicator"]).drop(columns="grouping")
    payload = {"runs": runs, "quarters": int(history["quarter"].nunique()) if runs else 0,
               "trends": trends.to_dict("records")}  # fmt: skip
    title = f"Run history: {runs} run(s); * marks figures from fewer than 100 customers"
    _print(payload, [_trend_table(title, shown)], as_json)


def _number(value: object) -> str:
    if not isinstance(value, float | int) or math.isnan(value):
        return ""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def _trend_table(title: str, frame: pd.DataFrame) -> Table:
    table = Table(title=title)
    for column in ("group", "indicator", "quarter", "value", "95% interval", "previous", "trend",
                   "p", "drift"):  # fmt: skip
        wide = column in ("group", "indicator")
        table.add_column(column, justify="left" if wide else "right", no_wrap=wide)
    for key, row in frame.iterrows():
        group, indicator = cast("tuple[str, str]", key)
        interval = ("" if math.isnan(row["ci_lower"])
                    else f"{_number(row['ci_lower'])} to {_number(row['ci_upper'])}")  # fmt: skip
        mark = "*" if row["is_small_sample"] else ""
        trend = f"{row['direction']} ({row['quarters']} q)"
        table.add_row(str(group), str(indicator), str(row["quarter"]),
                      f"{_number(row['value'])}{mark}", interval, _number(row["previous"]),
                      trend, _number(row["p_value"]), str(row["drift"]))  # fmt: skip
    return table


# --- a starter configuration ------------------------------------------------------------------


@app.command()
def init(
    source: Annotated[
        str,
        typer.Option(
            "--from",
            help="A CSV or Parquet file, a folder of Parquet files, or a SQLAlchemy URL.",
        ),
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="The configuration file to write.")
    ] = Path("cvalue.toml"),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Inspect a source and write a starter configuration, every guess commented.

    A CRM export's preset is detected where the header has its columns; otherwise each role's
    column is guessed by its name, and the encoding, separator, date format and decimal mark
    from the file. A database's URL is not written: the file names an environment variable.
    """
    from cvalue.config.starter import write_starter

    with _exit_codes(as_json):
        written = write_starter(source, output, force=force)
    inspection = written.inspection
    guesses = [*inspection.source, *inspection.transactions]
    payload = {
        "config": str(written.path),
        "source": inspection.described,
        "preset": inspection.preset.preset.name if inspection.preset else None,
        "variant": inspection.preset.variant.name if inspection.preset else None,
        "guesses": [{"key": g.key, "value": g.value, "why": g.why} for g in guesses],
        "notes": list(inspection.notes),
    }
    rows = {guess.key: f"{guess.value}  ({guess.why})" for guess in guesses}
    title = f"Starter configuration {written.path} (from {inspection.described})"
    _print(payload, [_key_values(title, rows)], as_json)
    if not as_json:
        console.print(
            f"Read the comments of {written.path}, set the margin and costs, then run: "
            f"cvalue validate --config {written.path}",
            highlight=False, soft_wrap=True,
        )  # fmt: skip


# --- the demo ---------------------------------------------------------------------------------


def _write_demo_database(path: Path, n_customers: int, seed: int) -> pd.Timestamp:
    """Build a synthetic CRM and store its tables in a new DuckDB file; return its end."""
    import duckdb  # the demo's embedded database (cvalue[duckdb])

    from cvalue.datasets import make_crm

    crm = make_crm(n_customers, seed=seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    # the demo's own database is rebuilt from scratch on every run
    for stale in (path, path.with_name(path.name + ".wal")):
        stale.unlink(missing_ok=True)
    tables = {
        "customers": crm.customers.reset_index(drop="customer_id" in crm.customers),
        "transactions": crm.transactions,
        "service_contacts": crm.service_contacts,
        "surveys": crm.surveys,
    }
    # DuckDB's bulk load of data frames: to_sql's batched INSERTs take minutes per million rows
    with duckdb.connect(str(path)) as connection:
        for name, frame in tables.items():
            connection.from_df(frame).create(name)
    return crm.truth.observation_end


@app.command()
def demo(
    customers: Annotated[
        int, typer.Option("--customers", min=1, help="Customers to make.")
    ] = 5_000,
    folder: Annotated[Path, typer.Option("--dir", help="Where to put the database.")] = Path(
        "cvalue-demo"
    ),
    seed: Annotated[int, typer.Option(help="Seed of the synthetic CRM.")] = 0,
    as_json: JsonOption = False,
) -> None:
    """Build a synthetic CRM in a DuckDB file and run the whole scoring job on it."""
    folder = folder.resolve()
    database, config_path = folder / "crm.duckdb", folder / "cvalue.toml"
    with _exit_codes(as_json):
        with console.status("building the synthetic CRM") if not as_json else _quiet():
            observation_end = _write_demo_database(database, customers, seed)
        text = DEMO_CONFIG.format(
            database=database, config=config_path, observation_end=observation_end.date()
        )
        config_path.write_text(text)
        environ = {**os.environ, DEMO_URL_VARIABLE: f"duckdb:///{database}"}
        job = _config(config_path, environ)
    result = _run_job(job, write=True, report=None, as_json=as_json, environ=environ)
    closing = {"database": str(database), "config": str(config_path), **_closing(result)}
    _print(closing, [_key_values("What the demo did", closing)], as_json)
    if not as_json:
        console.print(
            f"Scores: table {job.outputs.scores_table!r} in {database}\n"
            f"Report: {result.report_path}\n"
            f"Run it again: {DEMO_URL_VARIABLE}=duckdb:///{database} "
            f"cvalue score --config {config_path}",
            highlight=False, soft_wrap=True,
        )  # fmt: skip


@contextmanager
def _quiet() -> Iterator[None]:
    yield


def main() -> None:
    """Run the command line."""
    app()
