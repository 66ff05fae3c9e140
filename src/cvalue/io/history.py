"""The run history: each scoring run's indicators, kept in a table beside the scores.

A scheduled job scores the base again every week or month; the indicators of one run mean
little without the runs before it (is retention rising? is NPS stalled?). :func:`append_history`
adds a run's indicators to the history table **in the transaction that writes the scores**, so
a run is in the history exactly when its scores were written. :func:`read_history` reads the
table back, for ``cvalue history``, the report's trends and a BI tool.

The table is long: one row per run, grouping, group and indicator::

    run_id, scored_at         the run (as in the scores table)
    observation_end, quarter  the date the run measured up to, and its calendar quarter
    grouping, group_name      "all" (the whole base), "segment", "cohort" or "value tier",
                              and the group ("all" for the whole base)
    indicator                 "customers", "retention_rate", "equity_5y", "psi_clv_5y", ...
    bin                       for the score distribution's rows (indicator "bins:<score>"),
                              the bin's number; NULL otherwise
    value, ci_lower, ci_upper the figure and its interval (NULL where it has none)
    customers                 how many customers the figure rests on
    is_small_sample           fewer than 100 customers (seed 003's rule): the figure is marked

Like the scores table, the history table is cvalue's own: it is recorded in ``cvalue_tables``,
and an existing table of that name that cvalue did not write is refused. Names are quoted by
SQLAlchemy, never formatted into SQL.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from cvalue.errors import SchemaError
from cvalue.io import _ownership
from cvalue.io._database import engine_for

__all__ = ["HISTORY_COLUMNS", "SMALL_GROUP", "append_history", "history_table", "read_history"]

SMALL_GROUP = 100
"""Figures resting on fewer customers than this are marked ``is_small_sample`` (seed 003)."""

_TYPES: dict[str, sa.types.TypeEngine[Any]] = {
    "run_id": sa.Text(),
    "scored_at": sa.DateTime(),
    "observation_end": sa.Date(),
    "quarter": sa.Text(),
    "grouping": sa.Text(),
    "group_name": sa.Text(),
    "indicator": sa.Text(),
    "bin": sa.BigInteger(),
    "value": sa.Double(),
    "ci_lower": sa.Double(),
    "ci_upper": sa.Double(),
    "customers": sa.BigInteger(),
    "is_small_sample": sa.Boolean(),
}
HISTORY_COLUMNS = tuple(_TYPES)
"""The history table's columns, in order."""
_GIVEN = ("grouping", "group_name", "indicator", "bin", "value", "ci_lower", "ci_upper",
          "customers")  # fmt: skip
_FLOATS = ("value", "ci_lower", "ci_upper")


def history_table(name: str = "cvalue_history", schema: str | None = None) -> sa.Table:
    """The history table's definition (its name and schema as given)."""
    columns = (sa.Column(column, kind) for column, kind in _TYPES.items())
    return sa.Table(name, sa.MetaData(), *columns, schema=schema)


def _check_rows(rows: pd.DataFrame) -> None:
    missing = [column for column in _GIVEN if column not in rows.columns]
    if missing:
        raise SchemaError(f"the history rows lack the columns {missing}; they need {list(_GIVEN)}")
    for column in ("grouping", "group_name", "indicator"):
        if rows[column].isna().any():
            raise SchemaError(
                f"{int(rows[column].isna().sum())} history row(s) have no {column}: every row "
                "names its grouping, group and indicator"
            )


def _stored(rows: pd.DataFrame, run_id: str, scored_at: dt.datetime,
            observation_end: pd.Timestamp) -> list[dict[str, object]]:  # fmt: skip
    """The rows as the table stores them, with the run's columns and the small-sample mark."""
    customers = pd.to_numeric(rows["customers"]).astype("Float64")
    quarter = str(pd.Timestamp(observation_end).to_period("Q"))
    frame = pd.DataFrame(
        {
            "run_id": run_id, "scored_at": scored_at,
            "observation_end": pd.Timestamp(observation_end).date(), "quarter": quarter,
            "grouping": rows["grouping"].astype(str).to_numpy(),
            "group_name": rows["group_name"].astype(str).to_numpy(),
            "indicator": rows["indicator"].astype(str).to_numpy(),
            "bin": pd.to_numeric(rows["bin"]).astype("Int64").to_numpy(),
            **{column: pd.to_numeric(rows[column]).astype(float).to_numpy() for column in _FLOATS},
            "customers": customers.astype("Int64").to_numpy(),
            "is_small_sample": (customers < SMALL_GROUP).fillna(False).astype(bool).to_numpy(),
        },
        index=pd.RangeIndex(len(rows)),
    )  # fmt: skip
    records = frame.astype(object).where(frame.notna(), None).to_dict("records")
    for record in records:  # numpy scalars as Python's, which every driver takes
        for key, item in record.items():
            if isinstance(item, np.generic):
                record[key] = item.item()
            if isinstance(item, float) and not np.isfinite(item):
                record[key] = None
    return records  # type: ignore[return-value]


def append_history(
    connection: sa.Connection,
    rows: pd.DataFrame,
    *,
    run_id: str,
    observation_end: pd.Timestamp,
    table: str = "cvalue_history",
    schema: str | None = None,
    protected: Collection[str] = (),
    scored_at: dt.datetime | None = None,
) -> int:
    """Add one run's indicator rows to the history table, in the caller's open transaction.

    Parameters
    ----------
    connection
        A connection inside the transaction that writes the scores (such as the one
        :func:`~cvalue.io.writeback.write_scores` passes to ``before_swap``): the rows commit
        or roll back with the scores.
    rows
        One row per grouping, group and indicator, with the columns ``grouping``,
        ``group_name``, ``indicator``, ``bin``, ``value``, ``ci_lower``, ``ci_upper`` and
        ``customers`` (missing values allowed where a figure has no interval or bin).
    run_id, observation_end
        The run, as its scores name it, and the date it measured up to.
    table, schema
        The history table (created when absent).
    protected
        Tables never to write (the tables the run reads).
    scored_at
        When the run wrote (naive UTC); now by default.

    Returns
    -------
    int
        The number of rows added.

    Raises
    ------
    ForeignTableError
        The table is protected, or exists and cvalue did not write it.
    SchemaError
        The rows lack a column, or the existing table's columns are not the history's.
    """
    _check_rows(rows)
    _ownership.check_reserved(table, connection.dialect)
    target = history_table(table, schema)
    claimed = _ownership.claim(connection, target, "append", _ownership.guard(protected, False))
    if claimed.columns is None:
        target.create(connection)
    elif sorted(claimed.columns) != sorted(HISTORY_COLUMNS):
        raise SchemaError(
            f"table {table!r} is not a run history: its columns are {sorted(claimed.columns)}, "
            f"a history's are {list(HISTORY_COLUMNS)}. Name another [outputs] history_table"
        )
    when = scored_at or dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    records = _stored(rows, run_id, when, observation_end)
    if records:
        connection.execute(sa.insert(target), records)
    _ownership.mark(connection, claimed, table, run_id=run_id, written_at=when, mode="append",
                    rows=len(records))  # fmt: skip
    return len(records)


def read_history(
    source: str | sa.Engine | sa.Connection,
    table: str = "cvalue_history",
    *,
    schema: str | None = None,
) -> pd.DataFrame:
    """The history table's rows (every run), oldest run first; empty when there is none yet.

    Parameters
    ----------
    source
        A SQLAlchemy URL, an engine, or an open connection (read inside its transaction).
    table, schema
        The history table.

    Returns
    -------
    pandas.DataFrame
        The columns of :data:`HISTORY_COLUMNS`, ordered by ``scored_at``, then grouping, group,
        indicator and bin; ``observation_end`` and ``scored_at`` as timestamps.

    Examples
    --------
    >>> read_history("sqlite://").empty
    True
    """
    if isinstance(source, sa.Connection):
        return _read(source, table, schema)
    with engine_for(source, read_only=True) as engine, engine.connect() as connection:
        return _read(connection, table, schema)


def _read(connection: sa.Connection, table: str, schema: str | None) -> pd.DataFrame:
    empty = pd.DataFrame({column: pd.Series(dtype=object) for column in HISTORY_COLUMNS})
    if not sa.inspect(connection).has_table(table, schema=schema):
        return empty
    target = history_table(table, schema)
    order = [target.c.scored_at, target.c.grouping, target.c.group_name, target.c.indicator,
             target.c.bin]  # fmt: skip
    result = connection.execute(sa.select(*target.c).order_by(*order))
    frame = pd.DataFrame(result.fetchall(), columns=list(HISTORY_COLUMNS))
    if frame.empty:
        return empty
    frame["scored_at"] = pd.to_datetime(frame["scored_at"])
    frame["observation_end"] = pd.to_datetime(frame["observation_end"])
    for column in _FLOATS:
        frame[column] = pd.to_numeric(frame[column]).astype(float)
    for column in ("bin", "customers"):
        frame[column] = pd.to_numeric(frame[column]).astype("Int64")
    frame["is_small_sample"] = frame["is_small_sample"].astype(bool)
    return frame
