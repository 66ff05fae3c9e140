"""Per-customer tables of a base too large for memory: built in the database, read in chunks.

:func:`cvalue.sql_rfm_summary` brings one row per customer back whole; at tens of millions of
customers that is gigabytes. Here the same summary stays a query (:class:`SummaryQuery`), so
that the database's aggregates (the distinct patterns the models fit on, the calibration and
holdout patterns of a model check) come back instead of customers, and the customers themselves
are read in chunks of a bounded size (:func:`sql_summary_chunks`), each chunk laid out exactly as
:func:`cvalue.rfm_summary` lays out its rows.

The statements are those of :mod:`cvalue.io.sql`: the rows of a chunk equal the same customers'
rows of :func:`cvalue.sql_rfm_summary`, bit for bit.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.sql.expression import SelectBase

from cvalue.errors import SchemaError
from cvalue.io._database import connection_to
from cvalue.io.schema import Columns
from cvalue.io.sql import (
    _SUMMARY_NAMES,
    _customer_index,
    _customers,
    _holdout,
    _holdout_duration,
    _purchases,
    _summary_frame,
    _summary_parts,
)
from cvalue.io.sqlkit import (
    Relation,
    copy_to_temporary,
    day_of,
    drop_table,
    fetch,
    fetch_chunks,
    in_unit,
)
from cvalue.units import DateLike, Grain, TimeUnit

__all__ = ["SummaryQuery", "sql_summary_chunks", "summary_query"]
_FETCHED_ROWS = 1 << 18  # rows of a pattern table read at a time (_columns)


@dataclass(frozen=True, slots=True)
class SummaryQuery:
    """The customer summary as a query in the database, and how to lay its rows out.

    Attributes
    ----------
    customers
        One row per customer: ``customer``, ``frequency``, ``recency`` and ``age`` (whole grains
        or days, as the database counts them) and, with amounts, ``repeat_total``.
    relation
        The transactions the summary reads.
    grain, unit
        The calendar grain purchases merge in, and the unit of ``recency`` and ``T``.
    end_day
        The observation end, as a day number since 1970-01-01.
    """

    customers: sa.Subquery
    relation: Relation
    grain: TimeUnit
    unit: TimeUnit
    end_day: int

    def frame(self, rows: pd.DataFrame, extra: Sequence[str] = ()) -> pd.DataFrame:
        """Fetched rows of :attr:`customers` as :func:`cvalue.rfm_summary` lays them out.

        ``extra`` names further columns of ``rows`` (joined to the summary) to keep as they are.
        """
        summary = _summary_frame(rows, self.relation, self.grain, self.unit)
        for name in extra:
            summary[name] = rows[name].to_numpy()
        return summary

    def patterns(self, connection: sa.Connection) -> pd.DataFrame:
        """The distinct ``(frequency, recency, T)`` of the customers older than 0, with weights.

        Customers first seen on the observation end (``T = 0``) are left out: the models cannot
        score them. ``GROUP BY`` runs in the database; the table is sorted by the three columns.
        """
        customers = self.customers
        keys = (customers.c.frequency, customers.c.recency, customers.c.age)
        statement = (
            sa.select(*keys, sa.func.count().label("weight"))
            .where(customers.c.age > 0)
            .group_by(*keys)
            .order_by(*keys)
        )
        return self._pattern_frame(_columns(connection, statement), {"weight": np.int64})

    def _pattern_frame(
        self, rows: dict[str, npt.NDArray[Any]], kept: dict[str, type[np.generic]]
    ) -> pd.DataFrame:
        """The columns of ``rows`` (:func:`_columns`) in the summary's units."""
        values: dict[str, npt.NDArray[Any]] = {
            "frequency": rows["frequency"].astype(np.int64, copy=False)
        }
        for column, name in _SUMMARY_NAMES.items():
            values[name] = in_unit(pd.Series(rows.pop(column), copy=False), self.grain, self.unit)
        for name, dtype in kept.items():
            values[name] = rows[name].astype(dtype, copy=False)
        frame = pd.DataFrame(values, copy=False)
        frame.attrs["unit"] = self.unit.value
        return frame

    def too_new(self, connection: sa.Connection) -> pd.Index:
        """The customers first seen on the observation end (``T = 0``), sorted.

        They are the customers of one day, few whatever the size of the base.
        """
        customers = self.customers
        statement = sa.select(customers.c.customer).where(customers.c.age <= 0)
        rows = fetch(connection, statement)
        return _customer_index(rows["customer"], self.relation.customer_id)

    def holdout_patterns(
        self, connection: sa.Connection, calibration_end: DateLike
    ) -> tuple[pd.DataFrame, int]:
        """The calibration/holdout split of the same transactions, as weighted patterns.

        Returns
        -------
        tuple
            A table of the distinct ``(frequency, recency, T, frequency_holdout)`` of the
            customers first seen in the calibration period before its last day, with
            ``duration_holdout`` and ``weight``: :func:`cvalue.calibration_holdout`'s rows
            (those with ``T > 0``) grouped, and the number of customers first seen in the
            holdout.

        The calibration customers, then their split, are computed into temporary tables of
        ``connection`` (dropped after), one at a time: computed in one statement, the hash
        tables of both periods' aggregates and of their join were held at once (DuckDB ran out
        of 512MB at 10M customers).
        """
        calibration_day = day_of(calibration_end, "calibration_end")
        if calibration_day >= self.end_day:
            raise SchemaError(
                f"calibration_end ({calibration_end}) must be before the observation end"
            )
        tag = uuid.uuid4().hex[:16]
        purchases = _purchases(self.relation, self.grain, until=calibration_day)
        calibration_rows = sa.select(_customers(
            purchases, self.grain, self.unit, calibration_day, dialect=connection.dialect.name,
        ))  # fmt: skip
        with _temporary(connection, calibration_rows, f"cvalue_calibration_{tag}") as calibration:
            split_rows = sa.select(
                _holdout(self.relation, calibration, self.grain, calibration_day),
                _holdout_duration(self.grain, self.unit, calibration_day, self.end_day),
            )
            with _temporary(connection, split_rows, f"cvalue_split_{tag}") as split:
                frame = self._split_patterns(connection, split)
                returning = sa.select(sa.func.count()).where(split.c.frequency_holdout > 0)
                n_returning = int(connection.execute(returning).scalar_one())
        # the holdout's buyers are the calibration's customers who came back, and the new ones
        holdout = _purchases(self.relation, self.grain, after=calibration_day)
        buyers = sa.select(sa.func.count(sa.distinct(holdout.c.customer)))
        return frame, int(connection.execute(buyers).scalar_one()) - n_returning

    def _split_patterns(self, connection: sa.Connection, split: sa.Subquery) -> pd.DataFrame:
        """The per-customer split grouped into weighted patterns (customers with ``T > 0``)."""
        keys = (
            split.c.frequency, split.c.recency, split.c.age, split.c.frequency_holdout,
            split.c.duration,
        )  # fmt: skip
        grouped = (
            sa.select(*keys, sa.func.count().label("weight"))
            .where(split.c.age > 0)
            .group_by(*keys)
            .order_by(*keys)
        )
        rows = _columns(connection, grouped)
        duration = in_unit(pd.Series(rows.pop("duration"), copy=False), self.grain, self.unit)
        frame = self._pattern_frame(rows, {"frequency_holdout": np.int64, "weight": np.int64})
        frame["duration_holdout"] = duration
        return frame


def _columns(connection: sa.Connection, statement: sa.Select[Any]) -> dict[str, npt.NDArray[Any]]:
    """The statement's rows as one array per column, read :data:`_FETCHED_ROWS` at a time.

    Each chunk's columns are copied out of the driver's frame, whose block holds them all: the
    memory is the arrays and one chunk, where a frame of the whole result and the arrays taken
    from it held the rows twice (a view would keep the driver's whole block instead). At 10M
    customers the rows are 3.5M patterns or 3.6M calibration/holdout patterns.
    """
    parts: dict[str, list[npt.NDArray[Any]]] = {
        str(column.key): [np.empty(0, dtype=np.int64)] for column in statement.selected_columns
    }
    for chunk in fetch_chunks(connection, statement, _FETCHED_ROWS):
        for name, found in parts.items():
            found.append(chunk[name].to_numpy(copy=True))
    return {name: np.concatenate(parts.pop(name)) for name in list(parts)}


@contextlib.contextmanager
def _temporary(connection: sa.Connection, rows: sa.Select[Any], name: str) -> Iterator[sa.Subquery]:
    """``rows`` computed into a temporary table, read while inside, dropped after.

    A statement that aggregates the transactions and also joins or groups what it aggregated
    holds every hash table to its end; computed one per table, the database (DuckDB within its
    memory limit) holds one at a time. After a failure the table is left for the connection to
    drop: the failed transaction refuses further statements.
    """
    table = copy_to_temporary(connection, rows, name)
    yield sa.select(table).subquery(name)
    drop_table(connection, name)


def summary_query(
    connection: sa.Connection,
    *,
    table: str | None = None,
    query: SelectBase | None = None,
    columns: Columns | None = None,
    observation_end: DateLike | None = None,
    unit: TimeUnit | str = TimeUnit.WEEK,
    grain: Grain | TimeUnit = "day",
    schema: str | None = None,
) -> SummaryQuery:
    """The summary of :func:`cvalue.sql_rfm_summary` as a query, its rows checked once.

    Parameters are those of :func:`cvalue.sql_rfm_summary`, on an open connection. The rows are
    checked (missing ids, timestamps, amounts; purchases after ``observation_end``) with one
    aggregate query, which also finds the default observation end (the last purchase's day).
    """
    relation, customers, grain_unit, unit_, end_day = _summary_parts(
        connection, table=table, query=query, columns=columns, observation_end=observation_end,
        unit=unit, grain=grain, schema=schema,
    )  # fmt: skip
    return SummaryQuery(customers, relation, grain_unit, unit_, end_day)


def sql_summary_chunks(
    source: str | sa.Engine,
    *,
    chunk_size: int = 500_000,
    table: str | None = None,
    query: SelectBase | None = None,
    columns: Columns | None = None,
    observation_end: DateLike | None = None,
    unit: TimeUnit | str = TimeUnit.WEEK,
    grain: Grain | TimeUnit = "day",
    schema: str | None = None,
) -> Iterator[pd.DataFrame]:
    """:func:`cvalue.sql_rfm_summary` in chunks of about ``chunk_size`` customers.

    The database computes the summary once and hands it over as it goes: memory holds one chunk,
    whatever the number of customers. Each chunk is laid out as :func:`cvalue.rfm_summary` lays
    out its rows (indexed by customer id, ``attrs["unit"]`` set); together the chunks hold every
    customer once, in the database's order. Parameters are those of
    :func:`cvalue.sql_rfm_summary`.

    Examples
    --------
    >>> engine = sa.create_engine("sqlite://")
    >>> log = pd.DataFrame({"customer_id": [1, 1, 2, 3],
    ...                     "timestamp": pd.to_datetime(["2024-01-01", "2024-01-15",
    ...                                                  "2024-01-08", "2024-01-09"]),
    ...                     "amount": [10.0, 20.0, 7.0, 3.0]})
    >>> _ = log.to_sql("transactions", engine, index=False)
    >>> chunks = list(sql_summary_chunks(engine, table="transactions", chunk_size=2,
    ...                                  observation_end="2024-01-29"))
    >>> [len(chunk) for chunk in chunks]
    [2, 1]
    """
    with connection_to(source) as connection:
        summary = summary_query(
            connection, table=table, query=query, columns=columns,
            observation_end=observation_end, unit=unit, grain=grain, schema=schema,
        )  # fmt: skip
        statement: sa.Select[Any] = sa.select(summary.customers)
        for rows in fetch_chunks(connection, statement, chunk_size):
            yield summary.frame(rows)
