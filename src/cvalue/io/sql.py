"""SQL pushdown: customer summaries, calibration/holdout splits and pattern tables in the database.

The functions here give the same results as :func:`cvalue.rfm_summary`,
:func:`cvalue.calibration_holdout` and :func:`cvalue.compress` on a pandas frame of the same rows,
but the aggregation runs inside the database (SQLite, DuckDB or PostgreSQL) and only one row per
customer, or per pattern, comes back.

Every statement is built from SQLAlchemy Core expressions; table and column names go through
SQLAlchemy's quoting and values through bound parameters. Time is handled as in
:mod:`cvalue.summary`:

- a timestamp becomes its calendar day (wall-clock time) as a day number since 1970-01-01;
- a grain is an index: the day number, a Monday-based week, or a calendar month, quarter or year
  counted from January 1970;
- rows flagged ``is_return`` are not purchases and are left out, as in the pandas path;
- purchases merge per customer and grain (``GROUP BY customer, grain``), then per customer;
- the database returns whole numbers of grains (when the grain is the unit) or of days between the
  grains' first days, and numpy divides by the unit's length in days, as the pandas path does, so
  ``recency`` and ``T`` are bit-identical to it.

The dialect-specific pieces (the day number of a timestamp, the month number of a day, floor
division and the first day of a month) are SQLAlchemy constructs compiled per dialect.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import SelectBase
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import NullType, TypeEngine

from cvalue.errors import DataQualityError, SchemaError
from cvalue.io._database import connection_to
from cvalue.io.schema import Columns
from cvalue.units import (
    DAYS_PER_WEEK,
    EPOCH_WEEKDAY_SHIFT,
    DateLike,
    Grain,
    TimeUnit,
    as_time_unit,
    as_timestamp,
)

__all__ = ["Grain", "sql_calibration_holdout", "sql_pattern_table", "sql_rfm_summary"]


# column expressions of any SQL type; SQLAlchemy's ColumnElement is invariant in it
_Expression: TypeAlias = sa.ColumnElement[Any]

_EPOCH = dt.date(1970, 1, 1)
_EPOCH_JULIAN_DAY = 2440587.5  # julianday('1970-01-01') in SQLite
_EPOCH_MONTH = 1970 * 12 + 1  # year * 12 + month of January 1970
_DAYS_PER_WEEK = round(DAYS_PER_WEEK)
_SUMMARY_NAMES = {"recency": "recency", "age": "T"}
_NO_PURCHASES = "the transaction log has no purchases: there is nothing to summarise"


# --- dialect-specific constructs ------------------------------------------------------------------


class _DayNumber(FunctionElement[int]):
    """The calendar day of a date or timestamp, as days since 1970-01-01."""

    type = sa.Integer()
    name = "cvalue_day_number"
    inherit_cache = True


class _MonthNumber(FunctionElement[int]):
    """The calendar month of a date or timestamp, as months since January 1970."""

    type = sa.Integer()
    name = "cvalue_month_number"
    inherit_cache = True


class _FloorDivide(FunctionElement[int]):
    """``floor(numerator / denominator)`` of integers, for a positive denominator."""

    type = sa.Integer()
    name = "cvalue_floor_divide"
    inherit_cache = True


class _MonthStart(FunctionElement[int]):
    """The day number of the first day of a month given as months since January 1970."""

    type = sa.Integer()
    name = "cvalue_month_start"
    inherit_cache = True


def _arguments(element: FunctionElement[int]) -> list[_Expression]:
    return list(element.clauses)


def _process(compiler: SQLCompiler, expression: _Expression, **kw: object) -> str:
    # parenthesised: the caller places a function element's SQL as if it were one atom
    return compiler.process(sa.sql.expression.Grouping(expression), **kw)


def _epoch() -> _Expression:
    # an explicit CAST: DuckDB cannot choose between DATE - DATE and DATE - INTEGER otherwise
    return sa.cast(sa.literal(_EPOCH, sa.Date), sa.Date)


@compiles(_DayNumber, "sqlite")
def _day_number_sqlite(element: _DayNumber, compiler: SQLCompiler, **kw: object) -> str:
    (value,) = _arguments(element)
    julian_day = sa.func.julianday(sa.func.date(value), type_=sa.Float)
    return _process(compiler, sa.cast(julian_day - _EPOCH_JULIAN_DAY, sa.Integer), **kw)


@compiles(_DayNumber, "postgresql")
@compiles(_DayNumber, "duckdb")
def _day_number_date(element: _DayNumber, compiler: SQLCompiler, **kw: object) -> str:
    (value,) = _arguments(element)
    return _process(compiler, sa.cast(value, sa.Date) - _epoch(), **kw)


@compiles(_MonthNumber, "sqlite")
def _month_number_sqlite(element: _MonthNumber, compiler: SQLCompiler, **kw: object) -> str:
    (value,) = _arguments(element)
    year = sa.cast(sa.func.strftime("%Y", value), sa.Integer)
    month = sa.cast(sa.func.strftime("%m", value), sa.Integer)
    return _process(compiler, year * 12 + month - _EPOCH_MONTH, **kw)


def _month_number_of(value: _Expression, compiler: SQLCompiler, **kw: object) -> str:
    year = sa.cast(sa.extract("year", value), sa.Integer)
    month = sa.cast(sa.extract("month", value), sa.Integer)
    return _process(compiler, year * 12 + month - _EPOCH_MONTH, **kw)


@compiles(_MonthNumber, "postgresql")
def _month_number_extract(element: _MonthNumber, compiler: SQLCompiler, **kw: object) -> str:
    (value,) = _arguments(element)
    return _month_number_of(value, compiler, **kw)


@compiles(_MonthNumber, "duckdb")
def _month_number_duckdb(element: _MonthNumber, compiler: SQLCompiler, **kw: object) -> str:
    # DuckDB (2.0.1 at least) derives the range of EXTRACT on TIMESTAMP_S, _MS and _NS columns as if
    # they held microseconds; its optimiser then trusts that range, so filters and GROUP BY read
    # years near 56635 or fail. The calendar date carries no such range: extract from it.
    (value,) = _arguments(element)
    return _month_number_of(sa.cast(value, sa.Date), compiler, **kw)


def _compile_floor_divide(
    element: _FloorDivide, compiler: SQLCompiler, operator: str, **kw: object
) -> str:
    # the remainder of SQL's % takes the numerator's sign; make it non-negative so that the
    # integer division below is exact and rounds towards minus infinity for negative days too
    numerator, denominator = _arguments(element)
    remainder = (numerator % denominator + denominator) % denominator
    multiple = sa.sql.expression.Grouping(numerator - remainder)
    return _process(compiler, multiple.op(operator)(denominator), **kw)


@compiles(_FloorDivide, "sqlite")
@compiles(_FloorDivide, "postgresql")
def _floor_divide_slash(element: _FloorDivide, compiler: SQLCompiler, **kw: object) -> str:
    return _compile_floor_divide(element, compiler, "/", **kw)  # integer / integer is integral


@compiles(_FloorDivide, "duckdb")
def _floor_divide_duckdb(element: _FloorDivide, compiler: SQLCompiler, **kw: object) -> str:
    return _compile_floor_divide(element, compiler, "//", **kw)  # DuckDB's / is a DOUBLE


@compiles(_MonthStart, "sqlite")
def _month_start_sqlite(element: _MonthStart, compiler: SQLCompiler, **kw: object) -> str:
    (months,) = _arguments(element)
    modifier = sa.cast(months, sa.String) + sa.literal(" months")
    start = sa.func.date(sa.literal(_EPOCH.isoformat()), modifier)
    return _process(compiler, _DayNumber(start), **kw)


@compiles(_MonthStart, "postgresql")
def _month_start_postgresql(element: _MonthStart, compiler: SQLCompiler, **kw: object) -> str:
    (months,) = _arguments(element)
    interval = sa.func.make_interval(0, sa.cast(months, sa.Integer), type_=sa.Interval)
    return _process(compiler, _DayNumber(_epoch() + interval), **kw)


@compiles(_MonthStart, "duckdb")
def _month_start_duckdb(element: _MonthStart, compiler: SQLCompiler, **kw: object) -> str:
    (months,) = _arguments(element)
    interval = sa.func.to_months(sa.cast(months, sa.Integer), type_=sa.Interval)
    return _process(compiler, _DayNumber(_epoch() + interval), **kw)


@compiles(_DayNumber)
@compiles(_MonthNumber)
@compiles(_FloorDivide)
@compiles(_MonthStart)
def _unsupported(element: FunctionElement[int], compiler: SQLCompiler, **kw: object) -> str:
    raise sa.exc.CompileError(
        f"cvalue.io.sql supports SQLite, DuckDB and PostgreSQL, not {compiler.dialect.name!r}; "
        "read the transactions with cvalue.read_transactions and use cvalue.rfm_summary"
    )


# --- grains and elapsed time ----------------------------------------------------------------------


def _months_per_grain(grain: TimeUnit) -> int:
    return round(grain.per(TimeUnit.MONTH))


def _grain_index(timestamp: _Expression, grain: TimeUnit) -> _Expression:
    """The grain of a timestamp: its day, Monday-based week or calendar month/quarter/year."""
    if grain is TimeUnit.DAY:
        return _DayNumber(timestamp)
    if grain is TimeUnit.WEEK:
        return _FloorDivide(_DayNumber(timestamp) + EPOCH_WEEKDAY_SHIFT, _DAYS_PER_WEEK)
    if grain is TimeUnit.MONTH:
        return _MonthNumber(timestamp)
    return _FloorDivide(_MonthNumber(timestamp), _months_per_grain(grain))


def _grain_start(index: _Expression, grain: TimeUnit) -> _Expression:
    """The day number of the first day of a grain."""
    if grain is TimeUnit.DAY:
        return index
    if grain is TimeUnit.WEEK:
        return index * _DAYS_PER_WEEK - EPOCH_WEEKDAY_SHIFT
    return _MonthStart(index * _months_per_grain(grain))


def _elapsed(start: _Expression, end: _Expression, grain: TimeUnit, unit: TimeUnit) -> _Expression:
    """Whole grains from ``start`` to ``end`` when the grain is the unit, else whole days."""
    if grain is unit:
        return end - start
    return _grain_start(end, grain) - _grain_start(start, grain)


def _in_unit(elapsed: pd.Series, grain: TimeUnit, unit: TimeUnit) -> npt.NDArray[np.float64]:
    """What :func:`_elapsed` counted, in ``unit``: the same arithmetic as the pandas path."""
    whole = elapsed.to_numpy(dtype=np.int64)
    if grain is unit:
        return whole.astype(np.float64)
    return whole / unit.days


# --- the source relation --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Relation:
    """The purchases to summarise (returns left out) and which columns play which role.

    ``source`` is every row, returns included; ``rows`` are the purchases.
    """

    source: sa.FromClause
    rows: sa.FromClause
    customer_id: str
    timestamp: str
    amount: str | None
    is_return: str | None

    def column(self, name: str) -> _Expression:
        return self.rows.c[name]


def _table_columns(
    connection: sa.Connection, table: str, schema: str | None
) -> dict[str, TypeEngine[object]]:
    """The columns of ``table`` and their types, or a SchemaError listing the tables."""
    inspector = sa.inspect(connection)
    where = f"schema {schema!r}" if schema is not None else "the database"
    if schema is None and connection.dialect.name == "duckdb":
        # duckdb-engine's inspector searches every schema when none is given, but an unqualified
        # name in a query means the default schema only
        schema = inspector.default_schema_name
    try:
        described = inspector.get_columns(table, schema=schema)
    except sa.exc.NoSuchTableError:
        described = []
    if not described:
        tables = sorted(inspector.get_table_names(schema=schema))
        raise SchemaError(
            f"table {table!r} not found in {where}; it has tables {tables}. "
            "Pass table= one of these (and schema= for another schema), or query=sa.select(...)"
        )
    return {column["name"]: column["type"] for column in described}


def _source_rows(
    connection: sa.Connection, table: str | None, query: SelectBase | None, schema: str | None
) -> tuple[sa.FromClause, dict[str, TypeEngine[object]], str]:
    """The FROM clause of ``table`` or ``query``, its column types, and how to name it."""
    if table is not None and query is None:
        types = _table_columns(connection, table, schema)
        columns = (sa.column(name, kind) for name, kind in types.items())
        return sa.table(table, *columns, schema=schema), types, f"table {table!r}"
    if query is not None and table is None:
        if schema is not None:
            raise SchemaError("schema= applies to table=; name the schema inside query instead")
        types = {name: column.type for name, column in query.selected_columns.items()}
        return query.subquery("source"), types, "the query"
    raise SchemaError("pass exactly one of table='name' or query=sa.select(...)")


def _check_types(columns: Columns, types: dict[str, TypeEngine[object]], dialect: str) -> None:
    """Refuse timestamps that are not dates and return flags that are not booleans."""
    kind = types[columns.timestamp]
    # SQLite keeps dates as text: unparsable ones are counted and refused in _check_rows
    is_text_date = dialect == "sqlite" and isinstance(kind, sa.String)
    if not (isinstance(kind, sa.Date | sa.DateTime | NullType) or is_text_date):
        raise SchemaError(
            f"column {columns.timestamp!r} has SQL type {kind}, not a date or timestamp; store it "
            "as DATE or TIMESTAMP, or cast it in query=sa.select(..., sa.cast(column, sa.DateTime))"
        )
    flag = types[columns.is_return] if columns.is_return is not None else NullType()
    if not isinstance(flag, sa.Boolean | NullType):
        raise SchemaError(
            f"column {columns.is_return!r} has SQL type {flag}, not BOOLEAN; store the returns "
            "flag as true/false (cvalue.validate_transactions reads yes/no, 1/0 and true/false)"
        )


def _relation(
    connection: sa.Connection,
    *,
    table: str | None,
    query: SelectBase | None,
    schema: str | None,
    columns: Columns | None,
) -> _Relation:
    """Resolve the source and check that the roles' columns exist, as the pandas path does."""
    source, types, described = _source_rows(connection, table, query, schema)
    columns = columns or Columns.detect(types)
    required = (columns.customer_id, columns.timestamp, columns.is_return)
    missing = [name for name in required if name is not None and name not in types]
    if missing:
        raise SchemaError(
            f"column(s) {missing} not found in {described}; it has {list(types)}. "
            "Pass columns=cvalue.Columns(customer_id=..., timestamp=..., amount=...)"
        )
    _check_types(columns, types, connection.dialect.name)
    rows = source
    if columns.is_return is not None:
        rows = (
            sa.select(source)
            .where(sa.not_(source.c[columns.is_return]))
            .subquery("without_returns")
        )
    # like cvalue.rfm_summary: a log without the amount column is summarised without values
    amount = columns.amount if columns.amount in types else None
    return _Relation(
        source, rows, columns.customer_id, columns.timestamp, amount, columns.is_return
    )


# --- checks and observation ends ------------------------------------------------------------------


def _day_of(value: DateLike, name: str) -> int:
    """The calendar day (wall-clock time) of a date-like value, as days since 1970-01-01."""
    stamp = as_timestamp(value, name)
    wall_clock = stamp.tz_localize(None) if stamp.tz is not None else stamp
    return int(wall_clock.to_datetime64().astype("datetime64[D]").astype(np.int64))


def _optional_day(value: DateLike | None, name: str) -> int | None:
    """:func:`_day_of`, or None: the last purchase's day, known once the data are checked."""
    return None if value is None else _day_of(value, name)


def _date_of(day: int) -> dt.date:
    return _EPOCH + dt.timedelta(days=day)


def _profile(relation: _Relation, end_day: int | None) -> sa.Select[Any]:
    """One row of counts: what :func:`_check_rows` needs to refuse unclean data."""
    timestamp = relation.column(relation.timestamp)
    day = _DayNumber(timestamp)
    late = sa.case((day > end_day, 1)) if end_day is not None else sa.null()
    amount = relation.column(relation.amount) if relation.amount is not None else sa.null()
    return sa.select(
        sa.func.count().label("rows"),
        sa.func.count(relation.column(relation.customer_id)).label("customer_ids"),
        sa.func.count(timestamp).label("timestamps"),
        sa.func.count(day).label("days"),
        sa.func.count(amount).label("amounts"),
        sa.func.count(late).label("late"),
        sa.func.max(day).label("last_day"),
    )


def _problems(counts: sa.RowMapping, relation: _Relation) -> list[str]:
    n_rows = int(counts["rows"])
    found = [
        (relation.customer_id, "missing customer ids", n_rows - counts["customer_ids"]),
        (relation.timestamp, "missing timestamps", n_rows - counts["timestamps"]),
        (relation.timestamp, "unparsable timestamps", counts["timestamps"] - counts["days"]),
    ]
    if relation.amount is not None:
        found.append((relation.amount, "missing amounts", n_rows - counts["amounts"]))
    problems = [
        f"column {column!r} has {what} in {n_bad:,} of {n_rows:,} rows"
        for column, what, n_bad in found
        if n_bad
    ]
    if counts["late"]:
        problems.append(
            f"column {relation.timestamp!r} has {counts['late']:,} of {n_rows:,} rows after "
            "observation_end (pass a later observation_end, or split the log with "
            "cvalue.io.sql.sql_calibration_holdout)"
        )
    return problems


def _check_flags(connection: sa.Connection, relation: _Relation) -> None:
    """Refuse a returns flag with gaps, as :func:`cvalue.rfm_summary` does."""
    if relation.is_return is None:
        return
    flag = relation.source.c[relation.is_return]
    n_missing = connection.execute(sa.select(sa.func.count() - sa.func.count(flag))).scalar_one()
    if n_missing:
        raise SchemaError(
            f"column {relation.is_return!r} must be true/false without gaps, but {n_missing:,} "
            "rows have none; run cvalue.validate_transactions first"
        )


def _check_rows(connection: sa.Connection, relation: _Relation, end_day: int | None) -> int:
    """Refuse what ``cvalue.rfm_summary`` refuses; return the day of the last purchase."""
    _check_flags(connection, relation)
    counts = connection.execute(_profile(relation, end_day)).one()._mapping
    if counts["rows"] == 0:
        raise DataQualityError(_NO_PURCHASES)
    problems = _problems(counts, relation)
    if problems:
        raise DataQualityError(
            "; ".join(problems) + ". Run cvalue.validate_transactions to reject bad rows with "
            "reasons before summarising"
        )
    return int(counts["last_day"])


# --- the statements -------------------------------------------------------------------------------


def _grains(
    relation: _Relation, grain: TimeUnit, *, after: int | None = None, until: int | None = None
) -> sa.Subquery:
    """Purchases merged per customer and grain: ``customer, grain[, total]``.

    Only rows whose day is in ``(after, until]`` take part (all rows by default).
    """
    timestamp = relation.column(relation.timestamp)
    selected: list[_Expression] = [
        relation.column(relation.customer_id).label("customer"),
        _grain_index(timestamp, grain).label("grain"),
    ]
    if relation.amount is not None:
        # float64, as pandas.to_numeric makes of the amounts before it sums them
        selected.append(sa.cast(relation.column(relation.amount), sa.Double).label("amount"))
    purchases = sa.select(*selected)
    if after is not None:
        purchases = purchases.where(_DayNumber(timestamp) > after)
    if until is not None:
        purchases = purchases.where(_DayNumber(timestamp) <= until)
    rows = purchases.subquery("purchases")
    totals = [sa.func.sum(rows.c.amount).label("total")] if relation.amount is not None else []
    return (
        sa.select(rows.c.customer, rows.c.grain, *totals)
        .group_by(rows.c.customer, rows.c.grain)
        .subquery("grains")
    )


def _customers(grains: sa.Subquery, grain: TimeUnit, unit: TimeUnit, end_day: int) -> sa.Subquery:
    """Per customer: frequency, recency and age (whole grains or days) and repeat total."""
    first_grain = sa.func.min(grains.c.grain).over(partition_by=grains.c.customer)
    ranked = sa.select(*grains.c, first_grain.label("first_grain")).subquery("ranked")
    first, last = sa.func.min(ranked.c.grain), sa.func.max(ranked.c.grain)
    end = _grain_index(sa.literal(_date_of(end_day), sa.Date), grain)
    selected: list[_Expression] = [
        ranked.c.customer,
        (sa.func.count() - 1).label("frequency"),
        _elapsed(first, last, grain, unit).label("recency"),
        _elapsed(first, end, grain, unit).label("age"),
    ]
    if "total" in ranked.c:
        repeat_total = sa.func.sum(
            sa.case((ranked.c.grain != ranked.c.first_grain, ranked.c.total))
        )
        selected.append(sa.func.coalesce(repeat_total, 0.0).label("repeat_total"))
    return sa.select(*selected).group_by(ranked.c.customer).subquery("customers")


def _holdout(
    relation: _Relation, calibration: sa.Subquery, grain: TimeUnit, calibration_day: int
) -> sa.Subquery:
    """Per calibration customer: holdout grains and total (0 without holdout purchases)."""
    grains = _grains(relation, grain, after=calibration_day)
    per_customer = [sa.func.count().label("n_grains")]
    if "total" in grains.c:
        per_customer.append(sa.func.sum(grains.c.total).label("total"))
    holdout = (
        sa.select(grains.c.customer, *per_customer).group_by(grains.c.customer).subquery("holdout")
    )
    joined = calibration.outerjoin(holdout, calibration.c.customer == holdout.c.customer)
    selected = [
        *calibration.c,
        sa.func.coalesce(holdout.c.n_grains, 0).label("frequency_holdout"),
    ]
    if "total" in holdout.c:
        selected.append(sa.func.coalesce(holdout.c.total, 0.0).label("total_holdout"))
    return sa.select(*selected).select_from(joined).subquery("calibration_holdout")


def _new_in_holdout(
    relation: _Relation, calibration: sa.Subquery, grain: TimeUnit, calibration_day: int
) -> sa.Select[tuple[int]]:
    """The number of customers whose first purchase is in the holdout."""
    grains = _grains(relation, grain, after=calibration_day)
    known = sa.select(calibration.c.customer)
    return sa.select(sa.func.count(sa.distinct(grains.c.customer))).where(
        grains.c.customer.not_in(known)
    )


def _calibration_holdout(
    relation: _Relation, grain: TimeUnit, unit: TimeUnit, calibration_day: int, end_day: int
) -> tuple[sa.Select[Any], sa.Select[tuple[int]]]:
    """The calibration/holdout rows (with the holdout's duration) and the new customers' count."""
    calibration = _customers(
        _grains(relation, grain, until=calibration_day), grain, unit, calibration_day
    )
    duration = _elapsed(
        _grain_index(sa.literal(_date_of(calibration_day), sa.Date), grain),
        _grain_index(sa.literal(_date_of(end_day), sa.Date), grain),
        grain,
        unit,
    )
    holdout = _holdout(relation, calibration, grain, calibration_day)
    statement = sa.select(holdout, duration.label("duration"))
    return statement, _new_in_holdout(relation, calibration, grain, calibration_day)


# --- frames ---------------------------------------------------------------------------------------


def _fetch(connection: sa.Connection, statement: sa.Select[Any]) -> pd.DataFrame:
    """The statement's rows; rows with a ``customer`` column come sorted by it, as in pandas."""
    result = connection.execute(statement)
    names = list(result.keys())
    # the driver's plain tuples: pandas probes SQLAlchemy Row objects attribute by attribute,
    # which costs seconds per million rows. The columns are numbers and ids, which need none of
    # SQLAlchemy's result processing.
    fetch_frame = getattr(result.cursor, "fetchdf", None)  # DuckDB hands over columns whole
    rows: pd.DataFrame
    if fetch_frame is not None:
        rows = fetch_frame().set_axis(names, axis=1)
    else:
        rows = pd.DataFrame.from_records(result.cursor.fetchall(), columns=names)
    result.close()
    if "customer" in rows:
        # sorted here, not by ORDER BY: a database's collation may order text ids differently
        rows = rows.sort_values("customer", kind="stable", ignore_index=True)
    return rows


def _summary_frame(
    rows: pd.DataFrame, relation: _Relation, grain: TimeUnit, unit: TimeUnit
) -> pd.DataFrame:
    """The (sorted) customer rows as :func:`cvalue.rfm_summary` lays them out."""
    frequency = rows["frequency"].to_numpy(dtype=np.int64)
    values: dict[str, npt.NDArray[np.generic]] = {"frequency": frequency}
    for column, name in _SUMMARY_NAMES.items():
        values[name] = _in_unit(rows[column], grain, unit)
    if relation.amount is not None:
        repeat_totals = rows["repeat_total"].to_numpy(dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):  # 0 / 0 for one-time buyers
            values["monetary_value"] = np.where(frequency > 0, repeat_totals / frequency, 0.0)
    index = pd.Index(rows["customer"].to_list(), name=relation.customer_id)
    summary = pd.DataFrame(values, index=index)
    summary.attrs["unit"] = unit.value  # as cvalue.rfm_summary: models read the unit here
    return summary


def _holdout_columns(rows: pd.DataFrame, has_amount: bool) -> dict[str, npt.NDArray[np.generic]]:
    n_grains = rows["frequency_holdout"].to_numpy(dtype=np.int64)
    columns: dict[str, npt.NDArray[np.generic]] = {"frequency_holdout": n_grains}
    if has_amount:
        totals = rows["total_holdout"].to_numpy(dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):  # 0 / 0 without holdout purchases
            columns["monetary_value_holdout"] = np.where(n_grains > 0, totals / n_grains, 0.0)
    return columns


# --- public functions -----------------------------------------------------------------------------


def _units(unit: TimeUnit | str, grain: Grain | TimeUnit) -> tuple[TimeUnit, TimeUnit]:
    return as_time_unit(unit), as_time_unit(grain)


def sql_rfm_summary(
    source: str | sa.Engine,
    *,
    table: str | None = None,
    query: SelectBase | None = None,
    columns: Columns | None = None,
    observation_end: DateLike | None = None,
    unit: TimeUnit | str = TimeUnit.WEEK,
    grain: Grain | TimeUnit = "day",
    schema: str | None = None,
) -> pd.DataFrame:
    """:func:`cvalue.rfm_summary` computed inside the database.

    Parameters
    ----------
    source
        A database URL (``"duckdb:///crm.duckdb"``) or a SQLAlchemy engine.
    table, query
        Exactly one: the name of a table, or a ``sa.select(...)`` of the rows.
    columns
        Which columns hold the customer id, timestamp, amount and returns flag. By default the
        canonical names, with ``is_return`` used when the source has it (returns are left out).
    observation_end
        The end of the observation period (date-like); defaults to the last purchase's day.
    unit
        The unit of ``recency`` and ``T``.
    grain
        The calendar period within which a customer's purchases merge into one.
    schema
        The schema of ``table``.

    Returns
    -------
    pandas.DataFrame
        Indexed by customer id (sorted), with ``frequency``, ``recency``, ``T`` and, when the
        source has the amount column, ``monetary_value``: the same as :func:`cvalue.rfm_summary`.

    Raises
    ------
    SchemaError
        A table or column does not exist (the message lists what does), or an option is invalid.
    DataQualityError
        Missing ids, timestamps or amounts, or purchases after ``observation_end``.
    DatabaseError
        The database failed; the driver's error is chained.

    Examples
    --------
    >>> engine = sa.create_engine("sqlite://")
    >>> log = pd.DataFrame({"customer_id": [1, 1, 1, 2],
    ...                     "timestamp": pd.to_datetime(["2024-01-01", "2024-01-01",
    ...                                                  "2024-01-15", "2024-01-08"]),
    ...                     "amount": [10.0, 5.0, 20.0, 7.0]})
    >>> _ = log.to_sql("transactions", engine, index=False)
    >>> sql_rfm_summary(engine, table="transactions", observation_end="2024-01-29")
                 frequency  recency    T  monetary_value
    customer_id
    1                    1      2.0  4.0            20.0
    2                    0      0.0  3.0             0.0
    """
    unit, grain_unit = _units(unit, grain)
    end_day = _optional_day(observation_end, "observation_end")
    with connection_to(source) as connection:
        relation = _relation(connection, table=table, query=query, schema=schema, columns=columns)
        last_day = _check_rows(connection, relation, end_day)
        end_day = last_day if end_day is None else end_day
        customers = _customers(_grains(relation, grain_unit), grain_unit, unit, end_day)
        rows = _fetch(connection, sa.select(customers))
    return _summary_frame(rows, relation, grain_unit, unit)


def sql_calibration_holdout(
    source: str | sa.Engine,
    *,
    calibration_end: DateLike,
    observation_end: DateLike,
    table: str | None = None,
    query: SelectBase | None = None,
    columns: Columns | None = None,
    unit: TimeUnit | str = TimeUnit.WEEK,
    grain: Grain | TimeUnit = "day",
    schema: str | None = None,
) -> pd.DataFrame:
    """:func:`cvalue.calibration_holdout` computed inside the database.

    Parameters are those of :func:`sql_rfm_summary`, with ``calibration_end`` (the last day of
    the calibration period) before ``observation_end`` (the last day of the holdout).

    Returns
    -------
    pandas.DataFrame
        The calibration summary of the customers whose first purchase is in the calibration
        period, plus ``frequency_holdout``, ``monetary_value_holdout`` (when the source has
        amounts) and ``duration_holdout``; ``attrs["n_new_in_holdout"]`` counts the customers
        whose first purchase is in the holdout.
    """
    unit, grain_unit = _units(unit, grain)
    calibration_day = _day_of(calibration_end, "calibration_end")
    end_day = _day_of(observation_end, "observation_end")
    if calibration_day >= end_day:
        raise SchemaError(
            f"calibration_end ({calibration_end}) must be before observation_end "
            f"({observation_end})"
        )
    with connection_to(source) as connection:
        relation = _relation(connection, table=table, query=query, schema=schema, columns=columns)
        _check_rows(connection, relation, end_day)
        statement, new_customers = _calibration_holdout(
            relation, grain_unit, unit, calibration_day, end_day
        )
        rows = _fetch(connection, statement)
        n_new = connection.execute(new_customers).scalar_one()
    if len(rows) == 0:
        raise DataQualityError(_NO_PURCHASES)
    result = _summary_frame(rows, relation, grain_unit, unit)
    result = result.assign(**_holdout_columns(rows, relation.amount is not None))
    result["duration_holdout"] = float(_in_unit(rows["duration"].iloc[:1], grain_unit, unit)[0])
    result.attrs["n_new_in_holdout"] = int(n_new)
    return result


def sql_pattern_table(
    source: str | sa.Engine,
    *,
    table: str | None = None,
    query: SelectBase | None = None,
    columns: Columns | None = None,
    observation_end: DateLike | None = None,
    unit: TimeUnit | str = TimeUnit.WEEK,
    grain: Grain | TimeUnit = "day",
    schema: str | None = None,
) -> pd.DataFrame:
    """The distinct ``(frequency, recency, T)`` of the customers and how many share each.

    ``GROUP BY frequency, recency, T`` runs in the database, so only the patterns come back.
    Parameters are those of :func:`sql_rfm_summary`.

    Returns
    -------
    pandas.DataFrame
        ``frequency``, ``recency``, ``T`` and ``weight`` (the number of customers), sorted by
        frequency, recency and T: ``compress(rfm_summary(...))``'s patterns with its weights.
    """
    unit, grain_unit = _units(unit, grain)
    end_day = _optional_day(observation_end, "observation_end")
    with connection_to(source) as connection:
        relation = _relation(connection, table=table, query=query, schema=schema, columns=columns)
        last_day = _check_rows(connection, relation, end_day)
        end_day = last_day if end_day is None else end_day
        customers = _customers(_grains(relation, grain_unit), grain_unit, unit, end_day)
        keys = (customers.c.frequency, customers.c.recency, customers.c.age)
        patterns = sa.select(*keys, sa.func.count().label("weight")).group_by(*keys)
        rows = _fetch(connection, patterns.order_by(*keys))
    values: dict[str, npt.NDArray[np.generic]] = {
        "frequency": rows["frequency"].to_numpy(dtype=np.int64)
    }
    for column, name in _SUMMARY_NAMES.items():
        values[name] = _in_unit(rows[column], grain_unit, unit)
    values["weight"] = rows["weight"].to_numpy(dtype=np.int64)
    return pd.DataFrame(values)
