"""The ``cvalue`` command line: ``cvalue demo`` today, the scoring job's commands later.

Only this module prints. Exit codes: 0 ok, 2 bad input or configuration, 3 database error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pandas as pd
import sqlalchemy as sa
import typer
from rich.console import Console
from rich.table import Table

from cvalue._version import __version__
from cvalue.datasets import make_crm
from cvalue.errors import CValueError, DatabaseError
from cvalue.io.schema import Columns
from cvalue.io.sources import read_transactions
from cvalue.io.sql import sql_rfm_summary
from cvalue.io.validate import validate_transactions
from cvalue.summary import rfm_summary

__all__ = ["app", "main"]

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
DEMO_COLUMNS = Columns(
    customer_id="customer_id",
    timestamp="timestamp",
    amount="amount",
    order_id="order_id",
    is_return="is_return",
    category="category",
    channel="channel",
)


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


def _write_demo_database(path: Path, n_customers: int, seed: int) -> tuple[str, pd.Timestamp]:
    """Build a synthetic CRM and store its tables in a DuckDB file; return its URL and end."""
    crm = make_crm(n_customers, seed=seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    # the demo's own database is rebuilt from scratch on every run
    for stale in (path, path.with_name(path.name + ".wal")):
        stale.unlink(missing_ok=True)
    url = f"duckdb:///{path}"
    engine = sa.create_engine(url)
    try:
        tables = {
            "customers": crm.customers.reset_index(drop="customer_id" in crm.customers),
            "transactions": crm.transactions,
            "service_contacts": crm.service_contacts,
            "surveys": crm.surveys,
        }
        for name, frame in tables.items():
            frame.to_sql(name, engine, index=False, if_exists="replace", chunksize=100_000)
    finally:
        engine.dispose()
    return url, crm.truth.observation_end


def _counts_table(n_read: int, n_rejected: int, n_customers: int, seconds: str) -> Table:
    table = Table(title="What the demo did", show_header=False)
    table.add_row("transactions read through SQL", f"{n_read:,}")
    table.add_row("rejected by validation", f"{n_rejected:,}")
    table.add_row("customers summarised (pandas and SQL pushdown agree)", f"{n_customers:,}")
    table.add_row("time", seconds)
    return table


def _summary_table(summary: pd.DataFrame) -> Table:
    table = Table(title="Customer summary (unit: week, grain: day)")
    described = summary.describe().loc[["mean", "50%", "max"]]
    table.add_column("statistic")
    for column in summary.columns:
        table.add_column(column, justify="right")
    for name, row in described.iterrows():
        table.add_row(str(name), *(f"{value:,.2f}" for value in row))
    table.add_row("zero repeaters", f"{int((summary['frequency'] == 0).sum()):,}", "", "", "")
    return table


@app.command()
def demo(
    customers: Annotated[
        int, typer.Option("--customers", min=1, help="Customers to make.")
    ] = 5_000,
    folder: Annotated[Path, typer.Option("--dir", help="Where to put the database.")] = Path(
        "cvalue-demo"
    ),
    seed: Annotated[int, typer.Option(help="Seed of the synthetic CRM.")] = 0,
) -> None:
    """Build a synthetic CRM in a DuckDB file, read it back through SQL, validate, summarise."""
    started = pd.Timestamp.now()
    database = folder.resolve() / "crm.duckdb"
    try:
        with console.status("building the synthetic CRM"):
            url, observation_end = _write_demo_database(database, customers, seed)
        with console.status("reading, validating and summarising"):
            raw = read_transactions(url, table="transactions", columns=DEMO_COLUMNS)
            checked = validate_transactions(raw, observation_end=observation_end)
            summary = rfm_summary(checked.clean, observation_end=observation_end, unit="week")
            pushed = sql_rfm_summary(
                url, table="transactions", columns=DEMO_COLUMNS, observation_end=observation_end
            )
        pd.testing.assert_frame_equal(summary, pushed, check_exact=False, rtol=1e-12)
    except DatabaseError as exc:
        errors.print(f"[red]database error:[/red] {exc}")
        raise typer.Exit(EXIT_DATABASE) from exc
    except CValueError as exc:
        errors.print(f"[red]bad input:[/red] {exc}")
        raise typer.Exit(EXIT_BAD_INPUT) from exc
    elapsed = f"{(pd.Timestamp.now() - started).total_seconds():.1f} s"
    console.print(_counts_table(len(raw), checked.report.n_rejected, len(summary), elapsed))
    console.print(_summary_table(summary))
    console.print(
        f"database: {database} (tables customers, transactions, service_contacts, surveys)"
    )


def main() -> None:
    """Run the command line."""
    app()
