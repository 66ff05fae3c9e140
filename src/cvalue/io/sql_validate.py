"""Validation inside the database: :func:`cvalue.validate_transactions`'s rules as SQL.

:func:`sql_validate_transactions` applies the rules of :data:`cvalue.io.validate.RULES` to a table
or query without loading it: the rules become one ``CASE`` expression (each row gets the first rule
it breaks, in ``RULES`` order), the report counts the rows of each reason in the database, and
the clean and rejected rows come back as SQLAlchemy selects that a summary or
:func:`write_rejected` reads in the database. Nothing is string-formatted: the statements are
SQLAlchemy Core built on :mod:`cvalue.io.sqlkit`.

The database's column types are trusted. The rules for typed columns run in SQL; the parsing rules
(text timestamps and amounts, mixed time zones) belong to :func:`cvalue.validate_transactions`:
a text timestamp or amount column is refused with a :class:`~cvalue.errors.SchemaError`, except
SQLite's text dates, whose unreadable values are rejected as ``unparsable_timestamp``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa
from sqlalchemy.sql.expression import SelectBase
from sqlalchemy.types import NullType, TypeEngine

from cvalue.errors import DataQualityError, EmptyExtractError, SchemaError
from cvalue.io._database import connection_to, engine_for
from cvalue.io.schema import Columns
from cvalue.io.sqlkit import DayNumber, Expression, copy_rows, day_of, drop_table, source_rows
from cvalue.io.validate import RULES, ValidationReport
from cvalue.units import DateLike, as_timestamp

__all__ = ["SqlValidated", "sql_validate_transactions", "write_rejected"]

# what str.strip() strips: a text id made of these alone is blank, as in the pandas path
_WHITESPACE = "".join(character for character in map(chr, range(0x110000)) if character.isspace())
_DUPLICATE = "cvalue_is_duplicate"
_ORDERS = "cvalue_order_rows"
_ROWS = "cvalue_reason_rows"
_RANK = "cvalue_reason_rank"
_TIES = "cvalue_reason_ties"
_REASON = "rejection_reason"
_COLUMN = "rejection_column"
# the clean columns in the pandas path's order
_CLEAN_ORDER = ("customer_id", "timestamp", "amount", "is_return", "order_id", "category",
                "channel", "segment")  # fmt: skip
_NOT_AN_ID_TYPE = (sa.Boolean, sa.Date, sa.DateTime, sa.Time, sa.Interval)


@dataclass(frozen=True, slots=True)
class SqlValidated:
    """The outcome of :func:`sql_validate_transactions`: selects to run, and the report.

    Attributes
    ----------
    clean
        The rows that pass, as :func:`cvalue.validate_transactions` returns them: canonical role
        names (``customer_id``, ``timestamp``, ``amount``, ``is_return``, ``order_id``, ...) then
        the other columns; returns carry a negative amount. Pass it as ``query=`` to a SQL twin
        (:func:`cvalue.io.sql_rfm_summary`).
    rejected
        The rejected rows as they are in the source, plus ``rejection_reason`` and
        ``rejection_column``; stream it with :func:`write_rejected`.
    ordered
        Every row of the source in the order that the report's examples count (from 0).
    report
        Rows per reason, an example (the row's position in ``ordered``) and the fix.
    """

    clean: sa.Select[Any]
    rejected: sa.Select[Any]
    ordered: sa.Select[Any]
    report: ValidationReport


@dataclass(frozen=True, slots=True)
class _Log:
    """The source rows, their column types, the roles and the dialect."""

    source: sa.FromClause
    types: dict[str, TypeEngine[object]]
    columns: Columns
    dialect: str

    def column(self, name: str) -> Expression:
        return self.source.c[name]

    def is_number(self, name: str) -> bool:
        return isinstance(self.types[name], sa.Numeric)


# --- checking the source ----------------------------------------------------------------------


def _check_columns(columns: Columns, types: dict[str, TypeEngine[object]], described: str) -> None:
    missing = {role: name for role, name in columns.mapping().items() if name not in types}
    if missing:
        named = ", ".join(f"{name!r} (as {role})" for role, name in missing.items())
        raise SchemaError(
            f"column(s) {named} not found in {described}; it has columns {list(types)}. "
            "Name the right ones with cvalue.Columns(customer_id=..., timestamp=..., amount=...)"
        )


def _check_types(log: _Log) -> None:
    """Refuse the columns whose rules need parsing: those run in the pandas path only."""
    columns, types = log.columns, log.types
    found = []
    kind = types[columns.timestamp]
    is_sqlite_text = log.dialect == "sqlite" and isinstance(kind, sa.String)
    if not (isinstance(kind, sa.Date | sa.DateTime | NullType) or is_sqlite_text):
        found.append(f"timestamp column {columns.timestamp!r} has SQL type {kind}, not a date")
    if columns.amount is not None:
        kind = types[columns.amount]
        if not isinstance(kind, sa.Numeric | sa.Integer | NullType):
            found.append(f"amount column {columns.amount!r} has SQL type {kind}, not a number")
    if columns.is_return is not None:
        kind = types[columns.is_return]
        if not isinstance(kind, sa.Boolean | NullType):
            found.append(f"returns flag {columns.is_return!r} has SQL type {kind}, not BOOLEAN")
    if found:
        raise SchemaError(
            "; ".join(found) + ". Validation in the database checks typed columns; cast the "
            "column in the database (query=sa.select(..., sa.cast(column, sa.DateTime))) or read "
            "the rows and validate them with cvalue.validate_transactions, which parses text"
        )


# --- the rules ----------------------------------------------------------------------------------


def _is_nan(value: Expression) -> Expression:
    # NaN equals NaN in PostgreSQL and DuckDB; SQLite stores no NaN (the bound NaN is NULL there)
    return value == sa.literal(float("nan"), sa.Float)


def _is_missing(log: _Log, name: str, *, is_blank_missing: bool = False) -> Expression:
    """NULL, NaN in a number column, or (as ``str.strip`` sees it, if asked) blank text."""
    value = log.column(name)
    missing: list[Expression] = [value.is_(None)]
    if log.is_number(name):
        missing.append(_is_nan(value))
    if is_blank_missing and isinstance(log.types[name], sa.String):
        missing.append(sa.func.trim(value, sa.literal(_WHITESPACE, sa.String)) == "")
    return sa.or_(*missing)


def _day(log: _Log) -> Expression:
    """The calendar day of each timestamp; PostgreSQL's time zone-aware ones as UTC days."""
    timestamp = log.column(log.columns.timestamp)
    kind = log.types[log.columns.timestamp]
    if log.dialect == "postgresql" and getattr(kind, "timezone", False):
        timestamp = sa.func.timezone("UTC", timestamp, type_=sa.DateTime)
    return DayNumber(timestamp)


def _bound_day(value: DateLike, name: str, log: _Log) -> int:
    """A bound's day as the pandas path takes it: an aware bound in UTC for UTC timestamps."""
    stamp = as_timestamp(value, name)
    kind = log.types[log.columns.timestamp]
    if stamp.tz is not None and log.dialect == "postgresql" and getattr(kind, "timezone", False):
        stamp = stamp.tz_convert("UTC")
    return day_of(stamp, name)


@dataclass(frozen=True, slots=True)
class _Bounds:
    min_date: DateLike | None
    max_date: DateLike | None
    observation_end: DateLike | None

    def conditions(self, log: _Log) -> dict[str, Expression]:
        day = _day(log)
        latest = pd.Timestamp.now().normalize() if self.max_date is None else self.max_date
        found = {"after_max_date": day > _bound_day(latest, "max_date", log)}
        if self.min_date is not None:
            found["before_min_date"] = day < _bound_day(self.min_date, "min_date", log)
        if self.observation_end is not None:
            end = _bound_day(self.observation_end, "observation_end", log)
            found["after_observation_end"] = day > end
        return found


def _amount_conditions(log: _Log) -> dict[str, Expression]:
    columns = log.columns
    if columns.amount is None:
        return {}
    amount = log.column(columns.amount)
    found = {"missing_amount": _is_missing(log, columns.amount)}
    if log.is_number(columns.amount):
        infinity = sa.literal(float("inf"), sa.Float)
        found["non_numeric_amount"] = sa.or_(amount == infinity, amount == -infinity)
    is_negative = amount < 0
    if columns.is_return is not None:
        flag = log.column(columns.is_return)
        is_negative = sa.and_(is_negative, sa.not_(sa.func.coalesce(flag, sa.false())))
    found["negative_amount"] = is_negative
    return found


def _conditions(log: _Log, bounds: _Bounds, rows: sa.FromClause, *, keep: bool) -> list[Any]:
    """``(condition, reason)`` pairs in :data:`RULES` order, over ``rows`` (the flagged source)."""
    columns = log.columns
    found: dict[str, Expression] = {
        "missing_customer_id": _is_missing(log, columns.customer_id, is_blank_missing=True),
        "missing_timestamp": log.column(columns.timestamp).is_(None),
        **bounds.conditions(log),
        **_amount_conditions(log),
    }
    if isinstance(log.types[columns.customer_id], _NOT_AN_ID_TYPE):
        found["mixed_customer_id"] = sa.true()
    if log.dialect == "sqlite":  # text dates: what SQLite's date() cannot read
        found["unparsable_timestamp"] = _day(log).is_(None)
    if columns.is_return is not None:
        found["invalid_return_flag"] = log.column(columns.is_return).is_(None)
    if not keep:
        found["duplicate_row"] = rows.c[_DUPLICATE] == 1
    if columns.order_id is not None:
        found["missing_order_id"] = _is_missing(log, columns.order_id)
        found["duplicate_order_id"] = sa.and_(rows.c[_DUPLICATE] == 0, rows.c[_ORDERS] > 1)
    adapt = sa.sql.util.ClauseAdapter(rows)
    return [
        (adapt.traverse(found[rule.reason]), rule.reason) for rule in RULES if rule.reason in found
    ]


# --- the statements ------------------------------------------------------------------------------


def _comparable(log: _Log, name: str) -> Expression:
    """The column as rows compare: NaN taken as NULL (both are missing to pandas)."""
    value = log.column(name)
    return sa.case((_is_nan(value), sa.null()), else_=value) if log.is_number(name) else value


def _order_names(log: _Log, order_by: Sequence[str]) -> list[str]:
    return [*order_by, *(name for name in log.types if name not in order_by)]


def _flagged(log: _Log, names: list[str], *, keep: bool) -> sa.FromClause:
    """The source with a duplicate flag, and the rows of each order id that are not duplicates.

    Identical rows share their order id, or else their customer and timestamp: this bucket. The
    rows alone in their bucket (most of a log) can neither repeat nor share an order id, and get
    their flags without a window; the windows run on the other rows only (:func:`_windowed`),
    which hold every bucket whole. Finding them is one ``GROUP BY`` of the bucket, far cheaper
    than a window partitioned by every column over the whole log. Keeping duplicates without
    order ids needs no flag: the rules are a plain ``WHERE`` then.
    """
    if keep and log.columns.order_id is None:
        return log.source
    keyed, joined, is_alone = _bucketed(log)
    source = [keyed.c[name] for name in log.types]
    flags = [sa.literal(0).label(_DUPLICATE)]
    if log.columns.order_id is not None:
        flags.append(sa.literal(1).label(_ORDERS))
    alone = sa.select(*source, *flags).select_from(joined).where(is_alone)
    shared = sa.select(*source).select_from(joined).where(sa.not_(is_alone))
    windowed = _windowed(dataclasses.replace(log, source=shared.subquery("cvalue_shared")), names)
    return sa.union_all(alone, windowed).subquery("flagged")


def _bucketed(log: _Log) -> tuple[sa.Subquery, sa.Join, Expression]:
    """The source with its bucket, joined to the buckets of several rows; whether a row is alone.

    The buckets of several rows are a CTE: the database finds them once for both branches of
    :func:`_flagged`. A NULL (or NaN) in the bucket makes no bucket: such rows are not alone.
    """
    roles = [log.columns.customer_id, log.columns.timestamp]
    bucket = [log.columns.order_id] if log.columns.order_id is not None else roles
    labels = [f"cvalue_key_{index}" for index in range(len(bucket))]
    keys = [_comparable(log, name).label(label) for name, label in zip(bucket, labels, strict=True)]
    keyed = sa.select(log.source, *keys).subquery("cvalue_keyed")
    repeated = (
        sa.select(*(keyed.c[label] for label in labels))
        .where(*(keyed.c[label].is_not(None) for label in labels))
        .group_by(*(keyed.c[label] for label in labels))
        .having(sa.func.count() > 1)
        .cte()  # anonymous: two validations may share a statement
    )
    same = sa.and_(*(keyed.c[label] == repeated.c[label] for label in labels))
    is_alone = sa.and_(
        repeated.c[labels[0]].is_(None), *(keyed.c[label].is_not(None) for label in labels)
    )
    return keyed, keyed.outerjoin(repeated, same), is_alone


def _windowed(log: _Log, names: list[str]) -> sa.Select[Any]:
    """The flags by window functions, over the rows that share their bucket.

    Identical rows are one partition and the first of them in ``ORDER BY names`` is kept, as the
    pandas path keeps the first: they differ only where one has NaN and another NULL, which sort
    apart. ``_ORDERS`` counts the kept rows of each order id, as the pandas path counts order ids
    among the rows that are not duplicates.
    """
    numbers = [log.column(name) for name in names if log.is_number(name)]
    every = [_comparable(log, name) for name in log.types]
    rank = sa.func.row_number().over(partition_by=every, order_by=numbers or None)
    is_duplicate = sa.case((rank > 1, 1), else_=0).label(_DUPLICATE)
    flagged = sa.select(log.source, is_duplicate).subquery("cvalue_windowed")
    if log.columns.order_id is None:
        return sa.select(flagged)
    kept = sa.func.sum(1 - flagged.c[_DUPLICATE]).over(partition_by=flagged.c[log.columns.order_id])
    return sa.select(flagged, kept.label(_ORDERS))


def _reasoned(log: _Log, bounds: _Bounds, names: list[str], *, keep: bool) -> sa.Subquery:
    """Every row with ``rejection_reason``: its first rule broken, NULL for a clean row."""
    rows = _flagged(log, names, keep=keep)
    reason = sa.case(*_conditions(log, bounds, rows, keep=keep), else_=sa.null())
    selected = [rows.c[name] for name in log.types]
    return sa.select(*selected, reason.label(_REASON)).subquery("reasoned")


def _clean(log: _Log, reasoned: sa.Subquery) -> sa.Select[Any]:
    """The kept rows as the pandas path gives them: canonical names, returns negative."""
    roles = log.columns.mapping()
    selected: list[Expression] = []
    for role in _CLEAN_ORDER:
        if role not in roles:
            continue
        value: Expression = reasoned.c[roles[role]]
        if role == "amount" and "is_return" in roles:
            flag = reasoned.c[roles["is_return"]]
            value = sa.case((flag, -sa.func.abs(value)), else_=value)
        selected.append(value.label(role))
    used = set(roles.values()) | set(roles)
    selected += [reasoned.c[name] for name in log.types if name not in used]
    return sa.select(*selected).where(reasoned.c[_REASON].is_(None))


def _rejected(log: _Log, reasoned: sa.Subquery) -> sa.Select[Any]:
    """The rejected rows as they are, with the reason and the user's column it concerns."""
    roles = log.columns.mapping()
    reason = reasoned.c[_REASON]
    where = {rule.reason: roles.get(rule.role, rule.role) for rule in RULES}
    column = sa.case(where, value=reason, else_=sa.null())
    selected = [reasoned.c[name] for name in log.types]
    return sa.select(*selected, reason, column.label(_COLUMN)).where(reason.is_not(None))


def _sorts_before(
    row: sa.FromClause, first: sa.FromClause, names: list[str], dialect: str, *, or_tied: Expression
) -> Expression:
    """Whether ``row`` comes before ``first`` in ``ORDER BY names`` (the dialect's NULL order).

    Where ``or_tied`` holds, a row the same as ``first`` in every column counts as before it.
    """
    nulls_first = dialect == "sqlite"  # ASC puts NULL first in SQLite, last in the others
    terms: list[Expression] = []
    equal: list[Expression] = []
    for name in names:
        value, bound = row.c[name], first.c[name]
        null_side, other_side = (value, bound) if nulls_first else (bound, value)
        is_less = sa.or_(sa.and_(null_side.is_(None), other_side.is_not(None)), value < bound)
        terms.append(sa.and_(*equal, is_less))
        equal.append(value.is_not_distinct_from(bound))
    return sa.or_(*terms, sa.and_(or_tied, *equal))


def _another(source: sa.FromClause) -> sa.FromClause:
    """The source under another name, so that a subquery counts its rows independently."""
    if isinstance(source, sa.Subquery):
        return source.element.subquery("later")
    return source.alias("later")


def _counts(log: _Log, reasoned: sa.Subquery, names: list[str]) -> sa.Select[Any]:
    """Per reason: its rows, the rows of the source before its first row, and its rows the same.

    The first row of each reason is found among the rejected rows only, and the rows before it
    are counted by one correlated count each: no sort of the whole log. For ``duplicate_row``
    the rows the same as the first row in every column count as before it, and its rows the same
    are those of the reason equal to its first row.
    """
    reason = reasoned.c[_REASON]
    order = [reasoned.c[name] for name in names]
    ranked = (
        sa.select(
            *(reasoned.c[name] for name in log.types),
            reason,
            sa.func.count().over(partition_by=reason).label(_ROWS),
            sa.func.row_number().over(partition_by=reason, order_by=order).label(_RANK),
            sa.func.count().over(partition_by=[reason, *order]).label(_TIES),
        )
        .where(reason.is_not(None))
        .subquery("ranked")
    )
    firsts = sa.select(ranked).where(ranked.c[_RANK] == 1).subquery("firsts")
    later = _another(log.source)
    is_duplicate = firsts.c[_REASON] == "duplicate_row"
    before = (
        sa.select(sa.func.count())
        .select_from(later)
        .where(_sorts_before(later, firsts, names, log.dialect, or_tied=is_duplicate))
        .correlate(firsts)
        .scalar_subquery()
    )
    return sa.select(firsts.c[_REASON], firsts.c[_ROWS], before.label("before"), firsts.c[_TIES])


def _report(
    connection: sa.Connection, log: _Log, reasoned: sa.Subquery, names: list[str]
) -> ValidationReport:
    """Rows per reason and the first row's position as example, counted in the database.

    The first row of a reason is at the number of rows before it. For ``duplicate_row`` that
    number counts the rows the same as the first in every column too, less the reason's own: what
    is left of them is the kept row of those identical rows, or none if the kept row has NaN where
    the rejected ones have NULL (it sorts before them then, and is counted already).
    """
    found = {}
    for reason, rows, before, same in connection.execute(_counts(log, reasoned, names)):
        rejected_same = int(same) if reason == "duplicate_row" else 0
        found[reason] = (int(rows), int(before) - rejected_same)
    total = sa.select(sa.func.count()).select_from(log.source)
    n_rows = int(connection.execute(total).scalar_one())
    roles = log.columns.mapping()
    rows = [
        {
            "reason": rule.reason, "column": roles.get(rule.role, rule.role),
            "problem": rule.problem, "rows": found[rule.reason][0],
            "example": found[rule.reason][1], "fix": rule.fix,
        }
        for rule in RULES
        if rule.reason in found
    ]  # fmt: skip
    table = pd.DataFrame(rows, columns=["reason", "column", "problem", "rows", "example", "fix"])
    n_rejected = sum(count for count, _ in found.values())
    return ValidationReport(n_rows, n_rows - n_rejected, n_rejected, table)


def sql_validate_transactions(
    source: str | sa.Engine,
    *,
    table: str | None = None,
    query: SelectBase | None = None,
    columns: Columns | None = None,
    schema: str | None = None,
    observation_end: DateLike | None = None,
    min_date: DateLike | None = "1970-01-01",
    max_date: DateLike | None = None,
    duplicates: Literal["reject", "keep"] = "reject",
    order_by: Sequence[str] = (),
    strict: bool = False,
) -> SqlValidated:
    """:func:`cvalue.validate_transactions` inside the database: the same reasons and counts.

    Parameters
    ----------
    source
        A database URL (``"duckdb:///crm.duckdb"``) or a SQLAlchemy engine.
    table, query
        Exactly one: the name of a table (in ``schema``), or a ``sa.select(...)`` of the rows.
    columns
        Which columns play which role; by default the canonical names, with each optional role
        whose canonical column is present.
    observation_end, min_date, max_date, duplicates, strict
        As in :func:`cvalue.validate_transactions`: calendar-day bounds (``max_date=None`` is
        today), ``"keep"`` to keep identical rows, ``strict`` to raise on any rejected row.
    order_by
        The columns that order the rows for the report's examples, before every other column
        in the source's order (the default orders by all of them). The example of a reason is
        the position (from 0) of its first row in :attr:`SqlValidated.ordered`: what
        :func:`cvalue.validate_transactions` reports for the rows read in that order.

    Returns
    -------
    SqlValidated
        The clean and rejected rows as selects, and the report (counted by one query).

    Raises
    ------
    SchemaError
        If a mapped column is missing, or the timestamp, amount or returns flag is not typed as a
        date, a number and a boolean (SQLite's text dates aside).
    DataQualityError
        If the source has no rows, or with ``strict=True`` if any row is rejected.
    EmptyExtractError
        If no row passes; it carries the ``rejected`` select and the report.

    Notes
    -----
    Of identical rows (every column equal, NULL and NaN counting as equal), the first in ``ordered``
    is kept and the others are rejected as ``duplicate_row``; in ``clean`` and ``rejected``
    any one of them is kept, as they are the same. An order id on several rows that are not
    duplicates rejects all of them. A customer id column of booleans, dates or times breaks
    ``mixed_customer_id``; text ids of blanks only are missing. Numbers' NaN is missing and
    infinity ``non_numeric_amount``. A blank text order id is not missing, as in pandas. Days are
    wall-clock days: PostgreSQL's ``timestamptz`` in UTC, as pandas reads it; DuckDB's
    ``TIMESTAMPTZ``, which its SQLAlchemy driver describes without a zone, in the session's zone.
    """
    with connection_to(source) as connection:
        origin, types, described = source_rows(connection, table, query, schema)
        columns = columns or Columns.detect(types)
        _check_columns(columns, types, described)
        log = _Log(origin, types, columns, connection.dialect.name)
        _check_types(log)
        unknown = [name for name in order_by if name not in types]
        if unknown:
            raise SchemaError(
                f"order_by names {unknown}, not columns of {described} ({list(types)})"
            )
        bounds = _Bounds(min_date, max_date, observation_end)
        keep = duplicates == "keep"
        names = _order_names(log, order_by)
        reasoned = _reasoned(log, bounds, names, keep=keep)
        report = _report(connection, log, reasoned, names)
    ordered = sa.select(origin).order_by(*(origin.c[name] for name in names))
    validated = SqlValidated(_clean(log, reasoned), _rejected(log, reasoned), ordered, report)
    if report.n_rows == 0:
        raise DataQualityError(
            f"{described} has no rows; check the table name and the query's filters"
        )
    if report.n_clean == 0:
        raise EmptyExtractError(
            f"validation kept none of the {report.n_rows:,} rows.\n{report.message()}",
            validated.rejected,
            report,
        )
    if strict and report.n_rejected:
        raise DataQualityError(report.message())
    return validated


# --- streaming the rejected rows -----------------------------------------------------------------


def write_rejected(
    source: str | sa.Engine,
    rejected: sa.Select[Any],
    *,
    table: str | None = None,
    path: str | Path | None = None,
    schema: str | None = None,
    replace: bool = False,
    chunk_rows: int = 100_000,
) -> int:
    """Write the rejected rows to a table of the same database or to a file, chunk by chunk.

    Parameters
    ----------
    source
        The database the select reads (URL or engine).
    rejected
        :attr:`SqlValidated.rejected` (or any select of it).
    table, path
        Exactly one: a new table of the database (``CREATE TABLE ... AS`` then ``INSERT ...
        SELECT``, inside the database), or a ``.csv`` or ``.parquet`` file.
    schema
        The table's schema.
    replace
        Replace an existing table or file; otherwise an existing one is refused.
    chunk_rows
        Rows per chunk written to a file: memory holds one chunk.

    Returns
    -------
    int
        The number of rows written.
    """
    if (table is None) == (path is None):
        raise SchemaError("pass exactly one of table='name' or path='rejected.parquet'")
    if table is not None:
        return _write_table(source, rejected, table, schema, replace=replace)
    assert path is not None
    return _write_file(source, rejected, Path(path), replace=replace, chunk_rows=chunk_rows)


def _write_table(
    source: str | sa.Engine,
    rejected: sa.Select[Any],
    name: str,
    schema: str | None,
    *,
    replace: bool,
) -> int:
    """The rows copied in one transaction: no row passes through Python."""
    names = list(rejected.selected_columns.keys())
    target = sa.table(name, *(sa.column(column) for column in names), schema=schema)
    with engine_for(source) as engine, engine.begin() as connection:
        if sa.inspect(connection).has_table(name, schema=schema):
            if not replace:
                raise SchemaError(
                    f"table {name!r} exists; pass replace=True to replace it, or another name"
                )
            drop_table(connection, name, schema)
        copy_rows(connection, target, rejected)
        # counted, not the driver's rowcount: psycopg reports none for INSERT ... SELECT
        return int(connection.execute(sa.select(sa.func.count()).select_from(target)).scalar_one())


def _write_file(
    source: str | sa.Engine, rejected: sa.Select[Any], path: Path, *, replace: bool, chunk_rows: int
) -> int:
    """The rows streamed from the database, one chunk of ``chunk_rows`` in memory at a time."""
    kind = path.suffix.lower()
    if kind not in {".csv", ".parquet"}:
        raise SchemaError(f"file {str(path)!r}: write rejected rows to a .csv or .parquet file")
    if path.exists() and not replace:
        raise SchemaError(f"file {str(path)!r} exists; pass replace=True to replace it")
    names = list(rejected.selected_columns.keys())
    written = 0
    with connection_to(source) as connection, _FileWriter(path, rejected) as writer:
        streamed = connection.execution_options(stream_results=True, yield_per=chunk_rows)
        result = streamed.execute(rejected)
        for rows in result.partitions():
            chunk = pd.DataFrame.from_records([tuple(row) for row in rows], columns=names)
            writer.write(chunk)
            written += len(chunk)
    return written


class _FileWriter:
    """Appends frames to a CSV file (header once) or a Parquet file (one schema from SQL types)."""

    def __init__(self, path: Path, rejected: sa.Select[Any]) -> None:
        self._path = path
        self._types = {name: column.type for name, column in rejected.selected_columns.items()}
        self._handle: Any = None
        self._schema = pa.schema(
            [pa.field(name, _arrow_type(kind)) for name, kind in self._types.items()]
        )

    def __enter__(self) -> _FileWriter:
        if self._path.suffix.lower() == ".csv":
            self._handle = self._path.open("w", encoding="utf-8", newline="")
            pd.DataFrame(columns=list(self._types)).to_csv(self._handle, index=False)
        else:
            self._handle = pq.ParquetWriter(self._path, self._schema)
        return self

    def write(self, chunk: pd.DataFrame) -> None:
        """Append one chunk."""
        if self._path.suffix.lower() == ".csv":
            chunk.to_csv(self._handle, index=False, header=False)
            return
        for name, kind in self._types.items():
            if isinstance(kind, sa.Numeric) and not isinstance(kind, sa.Integer):
                chunk[name] = pd.to_numeric(chunk[name]).astype("float64")
            elif isinstance(kind, sa.DateTime):
                chunk[name] = pd.to_datetime(chunk[name], utc=bool(kind.timezone))
        self._handle.write_table(
            pa.Table.from_pandas(chunk, schema=self._schema, preserve_index=False)
        )

    def __exit__(self, *exc: object) -> None:
        self._handle.close()


def _arrow_type(kind: TypeEngine[object]) -> pa.DataType:
    """The Parquet column type of a SQL type: its values as pandas reads them."""
    if isinstance(kind, sa.Boolean):
        return pa.bool_()
    if isinstance(kind, sa.Integer):
        return pa.int64()
    if isinstance(kind, sa.Numeric):
        return pa.float64()
    if isinstance(kind, sa.DateTime):
        return pa.timestamp("us", tz="UTC" if kind.timezone else None)
    if isinstance(kind, sa.Date):
        return pa.date32()
    return pa.string()
