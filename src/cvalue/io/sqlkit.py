"""The SQL toolkit: the building blocks of every SQL twin (SQLite, DuckDB and PostgreSQL).

A *SQL twin* is a function that computes inside the database what a pandas function of cvalue
computes on a frame, and gives the same result: :func:`cvalue.io.sql.sql_rfm_summary` for
:func:`cvalue.rfm_summary`, :func:`cvalue.lifecycle.sql.sql_lifecycle_states` for
:func:`cvalue.lifecycle.lifecycle_states`, :func:`cvalue.segments.sql.sql_customer_profitability`
for :func:`cvalue.segments.customer_profitability`. Each domain's twin lives beside the domain
and is written with this module; io knows databases, not domains.

Statements are SQLAlchemy Core expressions, never string-formatted SQL: table and column names go
through SQLAlchemy's quoting and values through bound parameters. The dialect-specific pieces are
SQLAlchemy constructs compiled per dialect (SQLite, DuckDB and PostgreSQL; any other dialect
refuses to compile them with a :class:`sqlalchemy.exc.CompileError` that says so). Time is
handled as in :mod:`cvalue.summary`:

- :class:`DayNumber`: a timestamp's calendar day (wall-clock time) as days since 1970-01-01;
- :func:`grain_index`: a grain as an index: the day number, a Monday-based week, or a calendar
  month, quarter or year counted from January 1970; :func:`grain_start` is its first day;
- :func:`elapsed` counts whole grains (when the grain is the unit) or days between the grains'
  first days in the database, and :func:`in_unit` divides by the unit's length in numpy, as the
  pandas path does, so that the results are bit-identical to it.

A new twin takes the steps the existing ones take:

1. open the source with :func:`cvalue.io.connection_to` (a URL or an engine);
2. resolve the rows: :func:`resolve_relation` for a transaction log (its columns checked as the
   pandas path checks them, returns left out), or :func:`source_rows` for any other table or query;
3. refuse what the pandas path refuses: :func:`check_rows` counts the problems in the database;
4. build the statement from :class:`DayNumber`, :func:`grain_index` and plain SQLAlchemy, with
   ``GROUP BY`` in the database so that only one row per customer or period comes back. Label
   the grain in a subquery and group by that column, not by the expression: its bound values
   make each copy a different expression to DuckDB;
5. :func:`fetch` the rows (sorted by ``customer`` as pandas sorts) and finish in numpy.

Examples
--------
Purchases per customer and calendar month, counted in the database:

>>> import pandas as pd
>>> engine = sa.create_engine("sqlite://")
>>> log = pd.DataFrame({"customer_id": [1, 1, 2],
...                     "timestamp": pd.to_datetime(["2024-01-03", "2024-02-10", "2024-01-20"]),
...                     "amount": [10.0, 5.0, 7.0]})
>>> _ = log.to_sql("transactions", engine, index=False)
>>> with engine.connect() as connection:
...     purchases = resolve_relation(connection, table="transactions", query=None,
...                                  schema=None, columns=None)
...     timestamp = purchases.column(purchases.timestamp)
...     months = sa.select(purchases.column(purchases.customer_id).label("customer"),
...                        grain_index(timestamp, TimeUnit.MONTH).label("month")).subquery()
...     keys = (months.c.customer, months.c.month)
...     counts = sa.select(*keys, sa.func.count().label("n")).group_by(*keys).order_by(*keys)
...     fetch(connection, counts)
   customer  month    n
0         1    648    1
1         1    649    1
2         2    648    1
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
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
from cvalue.io.schema import Columns
from cvalue.units import DAYS_PER_WEEK, EPOCH_WEEKDAY_SHIFT, DateLike, TimeUnit, as_timestamp

__all__ = [
    "DayNumber",
    "Expression",
    "FloorDivide",
    "MonthNumber",
    "MonthStart",
    "Relation",
    "check_rows",
    "copy_rows",
    "day_of",
    "elapsed",
    "fetch",
    "fetch_chunks",
    "grain_index",
    "grain_start",
    "in_unit",
    "optional_day",
    "resolve_relation",
    "source_rows",
    "table_columns",
]


Expression: TypeAlias = sa.ColumnElement[Any]
"""A column expression of any SQL type (SQLAlchemy's ``ColumnElement`` is invariant in it)."""

_EPOCH = dt.date(1970, 1, 1)
_EPOCH_JULIAN_DAY = 2440587.5  # julianday('1970-01-01') in SQLite
_EPOCH_MONTH = 1970 * 12 + 1  # year * 12 + month of January 1970
_DAYS_PER_WEEK = round(DAYS_PER_WEEK)
_DUCKDB_VECTOR = 2048  # rows in one of DuckDB's vectors
_NO_PURCHASES = "the transaction log has no purchases: there is nothing to summarise"


# --- dialect-specific constructs ------------------------------------------------------------------


class DayNumber(FunctionElement[int]):
    """The calendar day of a date or timestamp, as days since 1970-01-01.

    The wall-clock day: a timestamp's time of day (and time zone) is ignored. NULL and, in SQLite,
    text that is no date give NULL.
    """

    type = sa.Integer()
    name = "cvalue_day_number"
    inherit_cache = True


class MonthNumber(FunctionElement[int]):
    """The calendar month of a date or timestamp, as months since January 1970."""

    type = sa.Integer()
    name = "cvalue_month_number"
    inherit_cache = True


class FloorDivide(FunctionElement[int]):
    """``floor(numerator / denominator)`` of integers, for a positive denominator.

    Exact for negative numerators too (days before 1970), where SQL's integer division truncates.
    """

    type = sa.Integer()
    name = "cvalue_floor_divide"
    inherit_cache = True


class MonthStart(FunctionElement[int]):
    """The day number of the first day of a month given as months since January 1970."""

    type = sa.Integer()
    name = "cvalue_month_start"
    inherit_cache = True


def _arguments(element: FunctionElement[int]) -> list[Expression]:
    return list(element.clauses)


def _process(compiler: SQLCompiler, expression: Expression, **kw: object) -> str:
    # parenthesised: the caller places a function element's SQL as if it were one atom
    return compiler.process(sa.sql.expression.Grouping(expression), **kw)


def _epoch() -> Expression:
    # an explicit CAST: DuckDB cannot choose between DATE - DATE and DATE - INTEGER otherwise
    return sa.cast(sa.literal(_EPOCH, sa.Date), sa.Date)


@compiles(DayNumber, "sqlite")
def _day_number_sqlite(element: DayNumber, compiler: SQLCompiler, **kw: object) -> str:
    (value,) = _arguments(element)
    julian_day = sa.func.julianday(sa.func.date(value), type_=sa.Float)
    return _process(compiler, sa.cast(julian_day - _EPOCH_JULIAN_DAY, sa.Integer), **kw)


@compiles(DayNumber, "postgresql")
@compiles(DayNumber, "duckdb")
def _day_number_date(element: DayNumber, compiler: SQLCompiler, **kw: object) -> str:
    (value,) = _arguments(element)
    return _process(compiler, sa.cast(value, sa.Date) - _epoch(), **kw)


@compiles(MonthNumber, "sqlite")
def _month_number_sqlite(element: MonthNumber, compiler: SQLCompiler, **kw: object) -> str:
    (value,) = _arguments(element)
    year = sa.cast(sa.func.strftime("%Y", value), sa.Integer)
    month = sa.cast(sa.func.strftime("%m", value), sa.Integer)
    return _process(compiler, year * 12 + month - _EPOCH_MONTH, **kw)


def _month_number_of(value: Expression, compiler: SQLCompiler, **kw: object) -> str:
    year = sa.cast(sa.extract("year", value), sa.Integer)
    month = sa.cast(sa.extract("month", value), sa.Integer)
    return _process(compiler, year * 12 + month - _EPOCH_MONTH, **kw)


@compiles(MonthNumber, "postgresql")
def _month_number_extract(element: MonthNumber, compiler: SQLCompiler, **kw: object) -> str:
    (value,) = _arguments(element)
    return _month_number_of(value, compiler, **kw)


@compiles(MonthNumber, "duckdb")
def _month_number_duckdb(element: MonthNumber, compiler: SQLCompiler, **kw: object) -> str:
    # DuckDB (2.0.1 at least) derives the range of EXTRACT on TIMESTAMP_S, _MS and _NS columns as if
    # they held microseconds; its optimiser then trusts that range, so filters and GROUP BY read
    # years near 56635 or fail. The calendar date carries no such range: extract from it.
    (value,) = _arguments(element)
    return _month_number_of(sa.cast(value, sa.Date), compiler, **kw)


def _compile_floor_divide(
    element: FloorDivide, compiler: SQLCompiler, operator: str, **kw: object
) -> str:
    # the remainder of SQL's % takes the numerator's sign; make it non-negative so that the
    # integer division below is exact and rounds towards minus infinity for negative days too
    numerator, denominator = _arguments(element)
    remainder = (numerator % denominator + denominator) % denominator
    multiple = sa.sql.expression.Grouping(numerator - remainder)
    return _process(compiler, multiple.op(operator)(denominator), **kw)


@compiles(FloorDivide, "sqlite")
@compiles(FloorDivide, "postgresql")
def _floor_divide_slash(element: FloorDivide, compiler: SQLCompiler, **kw: object) -> str:
    return _compile_floor_divide(element, compiler, "/", **kw)  # integer / integer is integral


@compiles(FloorDivide, "duckdb")
def _floor_divide_duckdb(element: FloorDivide, compiler: SQLCompiler, **kw: object) -> str:
    return _compile_floor_divide(element, compiler, "//", **kw)  # DuckDB's / is a DOUBLE


@compiles(MonthStart, "sqlite")
def _month_start_sqlite(element: MonthStart, compiler: SQLCompiler, **kw: object) -> str:
    (months,) = _arguments(element)
    modifier = sa.cast(months, sa.String) + sa.literal(" months")
    start = sa.func.date(sa.literal(_EPOCH.isoformat()), modifier)
    return _process(compiler, DayNumber(start), **kw)


@compiles(MonthStart, "postgresql")
def _month_start_postgresql(element: MonthStart, compiler: SQLCompiler, **kw: object) -> str:
    (months,) = _arguments(element)
    interval = sa.func.make_interval(0, sa.cast(months, sa.Integer), type_=sa.Interval)
    return _process(compiler, DayNumber(_epoch() + interval), **kw)


@compiles(MonthStart, "duckdb")
def _month_start_duckdb(element: MonthStart, compiler: SQLCompiler, **kw: object) -> str:
    (months,) = _arguments(element)
    interval = sa.func.to_months(sa.cast(months, sa.Integer), type_=sa.Interval)
    return _process(compiler, DayNumber(_epoch() + interval), **kw)


@compiles(DayNumber)
@compiles(MonthNumber)
@compiles(FloorDivide)
@compiles(MonthStart)
def _unsupported(element: FunctionElement[int], compiler: SQLCompiler, **kw: object) -> str:
    raise sa.exc.CompileError(
        "cvalue's SQL twins (built on cvalue.io.sqlkit) support SQLite, DuckDB and PostgreSQL, "
        f"not {compiler.dialect.name!r}; read the rows with cvalue.read_transactions and use the "
        "pandas function (cvalue.rfm_summary, lifecycle_states, customer_profitability)"
    )


# --- grains and elapsed time ----------------------------------------------------------------------


def _months_per_grain(grain: TimeUnit) -> int:
    return round(grain.per(TimeUnit.MONTH))


def grain_index(timestamp: Expression, grain: TimeUnit) -> Expression:
    """The grain of a timestamp: its day, Monday-based week or calendar month/quarter/year.

    Days count from 1970-01-01, weeks from the Monday before it (1969-12-29), months, quarters and
    years from January 1970: the indexes of :mod:`cvalue.summary`.
    """
    if grain is TimeUnit.DAY:
        return DayNumber(timestamp)
    if grain is TimeUnit.WEEK:
        return FloorDivide(DayNumber(timestamp) + EPOCH_WEEKDAY_SHIFT, _DAYS_PER_WEEK)
    if grain is TimeUnit.MONTH:
        return MonthNumber(timestamp)
    return FloorDivide(MonthNumber(timestamp), _months_per_grain(grain))


def grain_start(index: Expression, grain: TimeUnit) -> Expression:
    """The day number of the first day of a grain (an index of :func:`grain_index`)."""
    if grain is TimeUnit.DAY:
        return index
    if grain is TimeUnit.WEEK:
        return index * _DAYS_PER_WEEK - EPOCH_WEEKDAY_SHIFT
    return MonthStart(index * _months_per_grain(grain))


def elapsed(start: Expression, end: Expression, grain: TimeUnit, unit: TimeUnit) -> Expression:
    """Whole grains from ``start`` to ``end`` when the grain is the unit, else whole days.

    ``start`` and ``end`` are grain indexes; :func:`in_unit` turns the count into ``unit``.
    """
    if grain is unit:
        return end - start
    return grain_start(end, grain) - grain_start(start, grain)


def in_unit(counts: pd.Series, grain: TimeUnit, unit: TimeUnit) -> npt.NDArray[np.float64]:
    """What :func:`elapsed` counted, in ``unit``: the same arithmetic as the pandas path."""
    whole = counts.to_numpy(dtype=np.int64)
    if grain is unit:
        return whole.astype(np.float64)
    return whole / unit.days


def day_of(value: DateLike, name: str) -> int:
    """The calendar day (wall-clock time) of a date-like value, as days since 1970-01-01.

    ``name`` names the argument in the error message of a value that is no date.
    """
    stamp = as_timestamp(value, name)
    wall_clock = stamp.tz_localize(None) if stamp.tz is not None else stamp
    return int(wall_clock.to_datetime64().astype("datetime64[D]").astype(np.int64))


def optional_day(value: DateLike | None, name: str) -> int | None:
    """:func:`day_of`, or None: the last purchase's day, known once the data are checked."""
    return None if value is None else day_of(value, name)


# --- the source relation --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Relation:
    """The purchases to summarise (returns left out) and which columns play which role.

    ``source`` is every row, returns included; ``rows`` are the purchases. ``amount`` is None
    when the source has no amount column, ``is_return`` when it has no returns flag.
    """

    source: sa.FromClause
    rows: sa.FromClause
    customer_id: str
    timestamp: str
    amount: str | None
    is_return: str | None

    def column(self, name: str) -> Expression:
        """The column ``name`` of the purchases (``rows``)."""
        return self.rows.c[name]


def table_columns(
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


def source_rows(
    connection: sa.Connection, table: str | None, query: SelectBase | None, schema: str | None
) -> tuple[sa.FromClause, dict[str, TypeEngine[object]], str]:
    """The FROM clause of ``table`` or ``query``, its column types, and how to name it.

    Exactly one of ``table`` and ``query`` is given; ``schema`` applies to ``table`` only. The
    third item names the source in error messages (``"table 'orders'"`` or ``"the query"``).
    """
    if table is not None and query is None:
        types = table_columns(connection, table, schema)
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
    # SQLite keeps dates as text: unparsable ones are counted and refused in check_rows
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


def resolve_relation(
    connection: sa.Connection,
    *,
    table: str | None,
    query: SelectBase | None,
    schema: str | None,
    columns: Columns | None,
) -> Relation:
    """Resolve a transaction log and check that the roles' columns exist, as the pandas path does.

    ``columns`` defaults to the canonical names (:meth:`cvalue.Columns.detect`); rows flagged
    ``is_return`` are left out of :attr:`Relation.rows`, and a log without the amount column has
    ``amount=None``.
    """
    source, types, described = source_rows(connection, table, query, schema)
    columns = columns or Columns.detect(types)
    _check_no_row_filters(columns)
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
    return Relation(source, rows, columns.customer_id, columns.timestamp, amount, columns.is_return)


# --- checks ---------------------------------------------------------------------------------------


def _check_no_row_filters(columns: Columns) -> None:
    """SchemaError for a CRM export's row filters, which the SQL twins do not apply (yet).

    ``status``/``won``, ``currency`` and ``missing_ids`` reject rows in the pandas validation
    (:data:`cvalue.io.CRM_RULES`); summing in the database without them would count lost deals
    and mixed currencies as purchases, silently.
    """
    given = [name for name in ("status", "currency", "missing_ids") if getattr(columns, name)]
    if given:
        raise SchemaError(
            f"Columns({', '.join(f'{name}=...' for name in given)}) filters the rows of a CRM "
            "export, which the SQL path does not do: it would count lost deals or other "
            "currencies as purchases. Filter them in the query (such as select(...).where("
            "stage == 'Closed Won')) and pass the columns without them, or read the rows into "
            "pandas (cvalue.read_transactions) and validate them there"
        )


def _profile(relation: Relation, end_day: int | None) -> sa.Select[Any]:
    """One row of counts: what :func:`check_rows` needs to refuse unclean data."""
    timestamp = relation.column(relation.timestamp)
    day = DayNumber(timestamp)
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


def _problems(counts: sa.RowMapping, relation: Relation) -> list[str]:
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


def _check_flags(connection: sa.Connection, relation: Relation) -> None:
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


def check_rows(connection: sa.Connection, relation: Relation, end_day: int | None) -> int:
    """Refuse what ``cvalue.rfm_summary`` refuses; return the day of the last purchase.

    Missing ids, timestamps or amounts, unparsable timestamps, gaps in the returns flag and (with
    ``end_day``, a day number) purchases after the end are counted in the database and raised
    once, as a :class:`~cvalue.errors.DataQualityError` (a :class:`~cvalue.errors.SchemaError`
    for the flag); a log without purchases raises too.
    """
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


# --- frames ---------------------------------------------------------------------------------------


def fetch(connection: sa.Connection, statement: sa.Select[Any]) -> pd.DataFrame:
    """The statement's rows; rows with a ``customer`` column come sorted by it, as in pandas.

    Columns are named as the statement labels them. The rows come through the driver's plain
    tuples (DuckDB's columns whole), fast for millions of rows of numbers and ids.
    """
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


def fetch_chunks(
    connection: sa.Connection, statement: sa.Select[Any], size: int
) -> Iterator[pd.DataFrame]:
    """The statement's rows as frames of ``size`` rows (the last one shorter), streamed.

    Memory holds about one chunk whatever the number of rows: PostgreSQL reads through a
    server-side cursor, SQLite and DuckDB hand their results over as they are produced (DuckDB
    in vectors of 2,048 rows, cut to ``size``). Columns are named
    as the statement labels them; the rows come in the database's order (sort by ORDER BY when
    it matters). A statement without rows gives no frame.
    """
    if not isinstance(size, int) or size < 1:
        raise SchemaError(f"the chunk size must be a positive integer, got {size!r}")
    if connection.dialect.name == "duckdb":  # the driver's cursor streams whole vectors
        result = connection.execute(statement)
    else:  # through SQLAlchemy's buffer: it reads ahead of the cursor
        # options of this statement only: Connection.execution_options would set them for
        # every later statement of the caller's connection (a DDL statement cannot stream)
        streamed = {"stream_results": True, "yield_per": size}
        result = connection.execute(statement, execution_options=streamed)
    names = list(result.keys())
    try:
        if connection.dialect.name == "duckdb":
            yield from _exact_chunks(result.cursor, names, size)
            return
        for rows in result.partitions():
            # plain tuples: pandas probes SQLAlchemy's Row objects attribute by attribute
            yield pd.DataFrame.from_records([tuple(row) for row in rows], columns=names)
    finally:
        result.close()


def _exact_chunks(cursor: Any, names: list[str], size: int) -> Iterator[pd.DataFrame]:
    """DuckDB's result, fetched a few vectors at a time, as frames of exactly ``size`` rows."""
    vectors = max(1, -(-size // _DUCKDB_VECTOR))
    pending: list[pd.DataFrame] = []
    n_pending = 0
    while len(frame := cursor.fetch_df_chunk(vectors)):
        pending.append(frame.set_axis(names, axis=1))
        n_pending += len(frame)
        if n_pending < size:
            continue
        rows = pd.concat(pending, ignore_index=True) if len(pending) > 1 else pending[0]
        starts = range(0, n_pending - size + 1, size)
        for start in starts:
            yield rows.iloc[start : start + size].reset_index(drop=True)
        rest = rows.iloc[starts[-1] + size :].reset_index(drop=True)
        pending, n_pending = ([rest], len(rest)) if len(rest) else ([], 0)
    if n_pending:
        yield pd.concat(pending, ignore_index=True) if len(pending) > 1 else pending[0]


# --- tables made from selects ---------------------------------------------------------------------


class _CreateTableAs(sa.sql.expression.Executable, sa.sql.expression.ClauseElement):
    """``CREATE [TEMPORARY] TABLE <table> AS <select>``, which SQLAlchemy 2.0 lacks.

    The name goes through the dialect's quoting and the select's values stay bound parameters;
    SQLite, DuckDB and PostgreSQL all run it.
    """

    inherit_cache = False

    def __init__(self, table: sa.TableClause, select: sa.Select[Any], temporary: bool) -> None:
        self.table = table
        self.select = select
        self.temporary = temporary


@compiles(_CreateTableAs)
def _create_table_as(element: _CreateTableAs, compiler: SQLCompiler, **kw: object) -> str:
    name = compiler.preparer.format_table(element.table)
    kind = "TEMPORARY TABLE" if element.temporary else "TABLE"
    return f"CREATE {kind} {name} AS {compiler.process(element.select, **kw)}"


def copy_rows(
    connection: sa.Connection,
    target: sa.TableClause,
    rows: sa.Select[Any],
    *,
    temporary: bool = False,
) -> None:
    """A new table ``target`` holding ``rows``, its columns typed as the database types them.

    No row passes through Python. ``CREATE TABLE ... AS`` keeps the types in DuckDB and
    PostgreSQL, where reflected ones may not round-trip (duckdb-engine reflects DOUBLE as FLOAT,
    a 4-byte REAL to DuckDB). SQLite derives only an affinity that way (a DATETIME column would
    become NUM), so there, when dates are among the columns, the select's types are declared
    and the rows inserted. ``temporary``
    makes a table that only this connection sees and that goes with it (no schema).
    """
    types = [column.type for column in rows.selected_columns]
    has_dates = any(isinstance(kind, sa.Date | sa.DateTime | sa.Time) for kind in types)
    if connection.dialect.name != "sqlite" or not has_dates:
        connection.execute(_CreateTableAs(target, rows, temporary))
        return
    # an expression's column (no type) is declared BLOB: SQLite then stores values as they come
    declared = [
        sa.Column(name, sa.BLOB() if isinstance(column.type, NullType) else column.type)
        for name, column in rows.selected_columns.items()
    ]
    table = sa.Table(target.name, sa.MetaData(), *declared, schema=target.schema,
                     prefixes=["TEMPORARY"] if temporary else [])  # fmt: skip
    table.create(connection)
    connection.execute(sa.insert(table).from_select(list(rows.selected_columns.keys()), rows))


def copy_to_temporary(connection: sa.Connection, rows: sa.Select[Any], name: str) -> sa.TableClause:
    """``rows`` computed into a new temporary table ``name`` of ``connection`` (:func:`copy_rows`).

    A statement that aggregates and also joins what it aggregated holds every hash table to its
    end; computed into a table, the database spills what exceeds its memory limit.
    """
    table = sa.table(name, *(sa.column(column) for column in rows.selected_columns.keys()))  # noqa: SIM118
    copy_rows(connection, table, rows, temporary=True)
    return table


def drop_table(connection: sa.Connection, name: str, schema: str | None = None) -> None:
    """``DROP TABLE`` of the table ``name`` (quoted by the dialect)."""
    connection.execute(sa.schema.DropTable(sa.Table(name, sa.MetaData(), schema=schema)))
