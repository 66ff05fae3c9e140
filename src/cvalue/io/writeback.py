"""Writing scores back to the database, atomically: a failure never leaves a broken table.

:func:`write_scores` writes a DataFrame of scores (one row per customer, indexed by customer id)
to a table that CRM and BI tools read, on SQLite, DuckDB and PostgreSQL.

- ``mode="replace"``: the rows go into a new staging table (``cvalue_staging_<random hex>``),
  and the old table is dropped and the staging table renamed to its name, all in **one**
  transaction. The three databases roll back DDL with the rest of a transaction, so until the
  commit every reader sees the previous table, and a failure at any point (an exception, a lost
  connection, the process killed) leaves it as it was. The staging table only ever exists
  inside the open transaction: a killed writer cannot leave one behind.
- ``mode="append"``: the rows are added to the table (created when absent) in one transaction,
  and ``run_id`` and ``scored_at`` tell the runs apart, so the table keeps the history.

Both modes add the ``run_id`` and ``scored_at`` (UTC, without time zone) columns, so a replaced
table says which run it holds, and a table first written by ``replace`` accepts appends.

Table, schema and column names go through SQLAlchemy's identifier quoting, never into SQL text;
names that no database can hold (empty, with a NUL character, longer than the database allows,
which PostgreSQL would silently cut) are rejected. Errors and log lines name the database with
its password hidden.

On PostgreSQL, the swap waits for queries already reading the old table to finish and then
holds an exclusive lock on it until the commit, an instant later; readers that arrive meanwhile
wait and then read the new table. Views built on the table make the swap fail there and on
SQLite (the whole write is rolled back and reported; DuckDB binds views by name, and they keep
working), and privileges granted on the old table do not carry over to the new one: grant them
with ``ALTER DEFAULT PRIVILEGES`` instead.

**Whose table it is.** write_scores replaces or appends only to its own tables. Each write
records the table in ``cvalue_tables`` (schema, table, run id, time, mode, rows), in the target's
schema and in the same transaction as the rows, so the record and the data cannot disagree. An
existing table that is not recorded there is refused with
:class:`~cvalue.errors.ForeignTableError` before anything is written, unless
``overwrite_foreign=True``; a table with the ``run_id`` and ``scored_at`` columns that every
write adds is taken for one written by a cvalue version before the record existed, and is
recorded from then on. A recorded table that lacks those columns was recreated by something
else and is refused too. Tables listed in ``protected`` (the tables a job reads) are refused
whatever ``overwrite_foreign`` says, and so are ``cvalue_tables`` and staging names. The check
runs inside the write transaction: on PostgreSQL, after a lock on the existing table that keeps
other writers (not readers) out until the commit; SQLite's transaction takes the write lock at
its start; DuckDB refuses to commit over a concurrent change. :func:`check_scores_table` makes
the same checks and writes nothing, for a job to fail early rather than after it has computed.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import sqlalchemy as sa
from rich.progress import Progress
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.schema import DropTable, ExecutableDDLElement
from sqlalchemy.sql.compiler import DDLCompiler

from cvalue.errors import SchemaError
from cvalue.io import _ownership
from cvalue.io._database import WRITE_HINT, describe, engine_for
from cvalue.io._ownership import ADDED_COLUMNS, MARKS_TABLE, STAGING_PREFIX

__all__ = [
    "MARKS_TABLE",
    "STAGING_PREFIX",
    "WriteMode",
    "WriteResult",
    "check_scores_table",
    "write_scores",
]

logger = logging.getLogger(__name__)

WriteMode = Literal["replace", "append"]
"""``replace`` swaps in a new table; ``append`` adds the rows to the table's history."""

_Kind = Literal["boolean", "integer", "float", "string", "date", "datetime", "datetime_utc"]
_TYPES: dict[_Kind, sa.types.TypeEngine[Any]] = {
    "boolean": sa.Boolean(),
    "integer": sa.BigInteger(),
    "float": sa.Double(),
    "string": sa.Text(),
    "date": sa.Date(),
    "datetime": sa.DateTime(),
    "datetime_utc": sa.DateTime(timezone=True),
}
# what pandas.api.types.infer_dtype says of an object column, as a kind
_INFERRED: dict[str, _Kind] = {
    "string": "string",
    "empty": "string",
    "boolean": "boolean",
    "integer": "integer",
    "floating": "float",
    "mixed-integer-float": "float",
    "date": "date",
}
# which existing column kinds accept which frame kinds when appending (no silent rounding)
_ACCEPTS: dict[_Kind, frozenset[_Kind]] = {
    "boolean": frozenset({"boolean"}),
    "integer": frozenset({"integer", "float"}),
    "float": frozenset({"float"}),
    "string": frozenset({"string"}),
    "date": frozenset({"date"}),
    "datetime": frozenset({"datetime"}),
    "datetime_utc": frozenset({"datetime"}),
}
# the dtypes object columns of these kinds are converted to
_OBJECT_DTYPES: dict[_Kind, pd.api.extensions.ExtensionDtype | np.dtype[np.float64]] = {
    "boolean": pd.BooleanDtype(),
    "integer": pd.Int64Dtype(),
    "float": np.dtype(np.float64),
}
_EXACT_TYPES = "cvalue_exact_types"  # Table.info key: its columns have exactly the types given


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What :func:`write_scores` wrote.

    Attributes
    ----------
    table, schema
        The table written and its schema (``None``: the database's default).
    rows_written
        Number of rows written.
    run_id
        The run's identifier, stored in the ``run_id`` column.
    scored_at
        When the scores were written (UTC, time-zone aware; stored without the time zone).
    mode
        ``"replace"`` or ``"append"``.
    """

    table: str
    schema: str | None
    rows_written: int
    run_id: str
    scored_at: dt.datetime
    mode: WriteMode


_Hook = Callable[[sa.Connection, sa.Table], None]


@dataclass(frozen=True, slots=True)
class _Plan:
    """How the frame becomes rows: the index's column name, the added values, column kinds."""

    index_label: str
    run_id: str
    scored_at: dt.datetime  # naive UTC, as stored
    kinds: dict[str, _Kind]


# --- renaming a table: SQLAlchemy has no construct for it ----------------------------------------


class _RenameTable(ExecutableDDLElement):
    """``ALTER TABLE <table> RENAME TO <new name>``, with both names quoted by SQLAlchemy."""

    def __init__(self, table: sa.Table, new_name: str) -> None:
        self.table = table
        self.new_name = new_name


@compiles(_RenameTable)
def _compile_rename(element: _RenameTable, compiler: DDLCompiler, **kw: object) -> str:
    # the identifiers are quoted by the dialect's preparer, as SQLAlchemy's own DDL does
    preparer = compiler.preparer
    return (
        f"ALTER TABLE {preparer.format_table(element.table)} "
        f"RENAME TO {preparer.quote(element.new_name)}"
    )


# --- checking names and columns -------------------------------------------------------------------


def _check_name(name: object, role: str, engine: sa.Engine) -> str:
    """``name`` if a database can hold it as an identifier, else a SchemaError naming the role."""
    if not isinstance(name, str) or not name.strip():
        raise SchemaError(f"the {role} must be a non-empty string, got {name!r}")
    if "\x00" in name:
        raise SchemaError(f"the {role} {name!r} contains a NUL character; no database accepts it")
    limit = engine.dialect.max_identifier_length
    if len(name.encode()) > limit:
        raise SchemaError(
            f"the {role} {name!r} is {len(name.encode())} bytes long; {engine.dialect.name} "
            f"keeps at most {limit} (PostgreSQL cuts longer names silently). Shorten it"
        )
    return name


def _index_label(scores: pd.DataFrame, index_label: str | None) -> str:
    if isinstance(scores.index, pd.MultiIndex):
        raise SchemaError(
            f"the scores have a {scores.index.nlevels}-level index; write_scores expects one "
            "row per customer, indexed by customer id. Reset the other levels into columns"
        )
    label = index_label or scores.index.name or "customer_id"
    if not isinstance(label, str):
        raise SchemaError(f"the index name must be a string, got {label!r}; pass index_label=")
    return label


def _column_names(scores: pd.DataFrame, index_label: str, engine: sa.Engine) -> list[str]:
    names = [index_label, *scores.columns, *ADDED_COLUMNS]
    for name in names:
        _check_name(name, "column name", engine)
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise SchemaError(
            f"column name(s) {repeated} appear twice among the index ({index_label!r}), the "
            f"scores' columns and the added {list(ADDED_COLUMNS)}; rename the columns, or name "
            "the index column with index_label="
        )
    return names


def _as_datetimes(series: pd.Series, name: str) -> pd.Series:
    """An object column of timestamps as a datetime64 column (one time zone, or none)."""
    try:
        converted: pd.Series = pd.to_datetime(series)
    except (TypeError, ValueError) as exc:
        raise SchemaError(
            f"column {name!r} holds timestamps that pandas cannot put in one column ({exc}); "
            "convert them to one time zone (or none) first"
        ) from exc
    return converted


def _kind(series: pd.Series, name: str) -> _Kind:
    """The kind of column a series is written as; SchemaError for what no kind holds."""
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return _kind(series.astype(dtype.categories.dtype), name)
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_integer_dtype(dtype):
        return "integer"
    if pd.api.types.is_float_dtype(dtype):
        return "float"
    if isinstance(dtype, pd.DatetimeTZDtype):
        return "datetime_utc"
    if pd.api.types.is_datetime64_dtype(dtype):
        return "datetime"
    inferred = pd.api.types.infer_dtype(series, skipna=True)
    if inferred in ("datetime", "datetime64"):
        return _kind(_as_datetimes(series, name), name)
    if (pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype)) and (
        inferred in _INFERRED
    ):
        return _INFERRED[inferred]
    raise SchemaError(
        f"column {name!r} holds {inferred} values (dtype {dtype}), which write_scores cannot "
        "store; convert it to numbers, strings, booleans, dates or timestamps (durations to a "
        "number of a stated unit)"
    )


def _plan(scores: pd.DataFrame, index_label: str | None, run_id: str, engine: sa.Engine) -> _Plan:
    label = _index_label(scores, index_label)
    names = _column_names(scores, label, engine)
    kinds = {label: _kind(scores.index.to_series(), label)}
    kinds.update({str(name): _kind(scores[name], str(name)) for name in scores.columns})
    kinds.update({"run_id": "string", "scored_at": "datetime"})
    scored_at = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    return _Plan(label, run_id, scored_at, {name: kinds[name] for name in names})


# --- turning chunks of the frame into rows --------------------------------------------------------


def _normalised(series: pd.Series, kind: _Kind) -> pd.Series:
    """The series in the canonical dtype of its kind (object columns converted, times in UTC)."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        series = series.astype(series.dtype.categories.dtype)
    is_object = pd.api.types.is_object_dtype(series.dtype)
    if kind in ("datetime", "datetime_utc") and is_object:
        series = _as_datetimes(series, str(series.name))
    if kind == "datetime_utc":
        in_utc: pd.Series = series.dt.tz_convert("UTC")
        return in_utc
    if not (is_object and kind in _OBJECT_DTYPES):
        return series
    try:
        return series.astype(_OBJECT_DTYPES[kind])
    except (OverflowError, TypeError, ValueError) as exc:
        raise SchemaError(
            f"column {series.name!r} holds {kind} values that do not fit a {kind} column ({exc}); "
            f"convert the column to one dtype first"
        ) from exc


def _chunk(rows: pd.DataFrame, start: int, stop: int, plan: _Plan) -> pd.DataFrame:
    """Rows ``start:stop`` (``rows``) as stored: index as a column, run_id and scored_at added."""
    columns = {plan.index_label: rows.index.to_series(index=pd.RangeIndex(len(rows)))}
    columns.update({str(name): rows[name].reset_index(drop=True) for name in rows.columns})
    frame = pd.DataFrame(columns).assign(run_id=plan.run_id, scored_at=plan.scored_at)
    try:
        return pd.DataFrame(
            {name: _normalised(frame[name], kind) for name, kind in plan.kinds.items()}
        )
    except SchemaError as exc:
        raise SchemaError(f"rows {start:,} to {stop - 1:,}: {exc}") from exc


def _columns(frame: pd.DataFrame) -> list[list[object]]:
    """Each column as a list of Python scalars, ``None`` for missing values."""
    columns = []
    for name in frame.columns:
        series = frame[name]
        if pd.api.types.is_datetime64_dtype(series.dtype):
            # numpy makes datetime objects in C, pandas a Timestamp at a time; NaT becomes None
            values = series.to_numpy(dtype="datetime64[us]").astype(object)
        else:
            values = series.to_numpy(dtype=object, copy=True)
        values[series.isna().to_numpy()] = None
        columns.append(values.tolist())
    return columns


def _rows(frame: pd.DataFrame) -> list[tuple[object, ...]]:
    # a DB-API executemany or COPY takes one row at a time: there is no way around the row loop
    return list(zip(*_columns(frame), strict=True))


@contextmanager
def _driver_errors(connection: sa.Connection, statement: str) -> Iterator[None]:
    """Errors of calls made on the driver's own connection, as SQLAlchemy's would be."""
    try:
        yield
    except connection.dialect.loaded_dbapi.Error as exc:
        raise sa.exc.DBAPIError.instance(
            statement, None, exc, connection.dialect.loaded_dbapi.Error
        ) from exc


def _insert_arrow(connection: sa.Connection, table: sa.Table, frame: pd.DataFrame) -> None:
    """DuckDB: the chunk as an Arrow table, inserted through a relation (no view).

    Its executemany goes row by row. A view registered per chunk would not do either: a
    dropped catalog entry lives until the transaction ends, and with it the chunk's Arrow
    table, so every chunk of a write stayed in memory until the swap.
    """
    qualified = connection.dialect.identifier_preparer.format_table(table)
    driver = connection.connection.driver_connection
    with _driver_errors(connection, "insert"):
        order = driver.table(qualified).columns  # type: ignore[union-attr]
        rows = pa.Table.from_pandas(frame[order], preserve_index=False)
        driver.from_arrow(rows).insert_into(qualified)  # type: ignore[union-attr]


def _insert_copy(connection: sa.Connection, table: sa.Table, frame: pd.DataFrame) -> None:
    """PostgreSQL through psycopg: ``COPY ... FROM STDIN``, many times faster than INSERTs.

    Into a table whose column types are known exactly (created by write_scores), the rows go
    in binary; into another, as text that the server reads by the columns' own types.
    """
    # psycopg composes the statement and quotes the identifiers itself (psycopg.sql)
    from psycopg import sql

    target = sql.Identifier(*([table.schema] if table.schema else []), table.name)
    names = sql.SQL(", ").join(sql.Identifier(str(name)) for name in frame.columns)
    is_binary = bool(table.info.get(_EXACT_TYPES))
    template = "COPY {} ({}) FROM STDIN (FORMAT BINARY)" if is_binary else "COPY {} ({}) FROM STDIN"
    statement = sql.SQL(template).format(target, names)
    types = [table.c[str(name)].type.compile(dialect=connection.dialect) for name in frame.columns]
    with _driver_errors(connection, "COPY"):
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        with cursor, cursor.copy(statement) as copy:
            if is_binary:
                copy.set_types([name.lower() for name in types])
            for row in _rows(frame):
                copy.write_row(row)


def _sqlite_time_format(column_type: sa.types.TypeEngine[Any]) -> str | None:
    """How SQLAlchemy stores a time type in SQLite (as text), which its results read back."""
    if isinstance(column_type, sa.DateTime):
        return "%Y-%m-%d %H:%M:%S.%f"
    return "%Y-%m-%d" if isinstance(column_type, sa.Date) else None


def _insert_sqlite(connection: sa.Connection, table: sa.Table, frame: pd.DataFrame) -> None:
    """SQLite: the driver's executemany, with times as text in SQLAlchemy's storage format."""
    # SQLAlchemy's per-row parameter handling costs several times what SQLite itself does
    formats = {str(name): _sqlite_time_format(table.c[str(name)].type) for name in frame.columns}
    as_text = {
        name: pd.to_datetime(frame[name]).dt.strftime(text_format)
        for name, text_format in formats.items()
        if text_format is not None
    }
    untyped = sa.table(table.name, *(sa.column(str(name)) for name in frame.columns),
                       schema=table.schema)  # fmt: skip
    compiled = sa.insert(untyped).compile(dialect=connection.dialect)
    ordered = frame.assign(**as_text)[list(compiled.positiontup or ())]
    connection.exec_driver_sql(compiled.string, _rows(ordered))


def _insert_core(connection: sa.Connection, table: sa.Table, frame: pd.DataFrame) -> None:
    """Any other database: SQLAlchemy's executemany."""
    names = [str(name) for name in frame.columns]
    rows = [dict(zip(names, row, strict=True)) for row in _rows(frame)]
    connection.execute(sa.insert(table), rows)


def _inserter(dialect: sa.Dialect) -> Callable[[sa.Connection, sa.Table, pd.DataFrame], None]:
    """The fastest way to insert rows that the database and driver offer."""
    if dialect.name == "duckdb":
        return _insert_arrow
    if dialect.name == "postgresql" and dialect.driver == "psycopg":
        return _insert_copy
    return _insert_sqlite if dialect.name == "sqlite" else _insert_core


def _insert(connection: sa.Connection, table: sa.Table, frame: pd.DataFrame) -> None:
    if len(frame):
        _inserter(connection.dialect)(connection, table, frame)


class _Frames:
    """The scores as frames of at most ``chunk_size`` rows.

    Slices of one frame, or the frames of an iterable (each sliced in turn), the first one read
    ahead to plan the table.
    """

    def __init__(self, scores: pd.DataFrame | Iterable[pd.DataFrame], chunk_size: int) -> None:
        self.chunk_size = chunk_size
        self._rest: Iterator[pd.DataFrame] = iter(())
        if isinstance(scores, pd.DataFrame):
            self.total: int | None = len(scores)
            self.first = scores
            return
        if isinstance(scores, str | bytes | pd.Series) or not isinstance(scores, Iterable):
            raise SchemaError(
                f"scores must be a pandas DataFrame or an iterable of DataFrames (chunks of "
                f"customers), got {type(scores).__name__}"
            )
        self.total = None
        self._rest = iter(scores)
        self.first = self._next(0)

    def _next(self, number: int) -> pd.DataFrame:
        found = next(self._rest, None)
        if found is None and number == 0:
            raise SchemaError("the iterable of scores gave no chunk: there is nothing to write")
        if found is not None and not isinstance(found, pd.DataFrame):
            raise SchemaError(
                f"chunk {number + 1} of the scores is a {type(found).__name__}, not a DataFrame"
            )
        return found  # type: ignore[return-value]

    def slices(self, plan: _Plan) -> Iterator[tuple[int, int, pd.DataFrame]]:
        """``(start, stop, rows)`` of every slice, each chunk checked against ``plan``."""
        start, number, frame = 0, 0, self.first
        while frame is not None:
            if number:
                _check_chunk(frame, number, plan)
            for offset in range(0, len(frame), self.chunk_size):
                rows = frame.iloc[offset : offset + self.chunk_size]
                yield start, start + len(rows), rows
                start += len(rows)
            number += 1
            frame = self._next(number)


def _check_chunk(frame: pd.DataFrame, number: int, plan: _Plan) -> None:
    """SchemaError unless a later chunk has the first chunk's columns, of kinds it accepts."""
    columns = [plan.index_label, *map(str, frame.columns), *ADDED_COLUMNS]
    if columns != list(plan.kinds) or (frame.index.name or plan.index_label) != plan.index_label:
        raise SchemaError(
            f"chunk {number + 1} of the scores has columns {[frame.index.name, *frame.columns]}; "
            f"the first chunk had {list(plan.kinds)[: -len(ADDED_COLUMNS)]}. Every chunk needs "
            "the same columns, in the same order, and the same index"
        )
    found = {plan.index_label: _kind(frame.index.to_series(), plan.index_label)}
    found.update({str(name): _kind(frame[name], str(name)) for name in frame.columns})
    widened = {(kind, kind) for kind in plan.kinds.values()} | {("float", "integer")}
    clashing = [
        f"{name} ({kind}, the first chunk's {plan.kinds[name]})"
        for name, kind in found.items()
        if (plan.kinds[name], kind) not in widened
    ]
    if clashing:
        raise SchemaError(
            f"chunk {number + 1} of the scores has columns of other kinds than the first chunk: "
            f"{clashing}; give every chunk the same dtypes"
        )


def _insert_chunks(
    connection: sa.Connection,
    table: sa.Table,
    frames: _Frames,
    plan: _Plan,
    progress: bool,
) -> int:
    total = 0
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task(f"writing {table.name}", total=frames.total)
        for start, stop, rows in frames.slices(plan):
            _insert(connection, table, _chunk(rows, start, stop, plan))
            bar.advance(task, stop - start)
            total = stop
            logger.debug("wrote rows %d to %d into %s", start, stop, table.name)
    return total


# --- the two modes --------------------------------------------------------------------------------


def _begin(connection: sa.Connection) -> None:
    """Make SQLite's DDL part of the transaction, and take its write lock at once.

    Python's sqlite3 module opens a transaction only before INSERT, UPDATE or DELETE, so a
    CREATE or DROP before them would commit on its own: an explicit BEGIN puts them inside.
    IMMEDIATE takes the write lock now, so that no other writer changes the database between
    the check of the target table and the swap (readers go on reading).
    """
    if connection.dialect.name != "sqlite":
        return
    driver = connection.connection.driver_connection
    if not getattr(driver, "in_transaction", True):
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _new_table(name: str, schema: str | None, plan: _Plan) -> sa.Table:
    columns = (sa.Column(column, _TYPES[kind]) for column, kind in plan.kinds.items())
    return sa.Table(name, sa.MetaData(), *columns, schema=schema)


def _drop(connection: sa.Connection, table: sa.Table) -> None:
    connection.execute(DropTable(table))


def _rename(connection: sa.Connection, table: sa.Table, new_name: str) -> None:
    connection.execute(_RenameTable(table, new_name))


def _replace(
    engine: sa.Engine, frames: _Frames, target: sa.Table, plan: _Plan, progress: bool,
    guard: _ownership.Guard, before_swap: _Hook | None,
) -> int:  # fmt: skip
    staging = _new_table(f"{STAGING_PREFIX}{uuid.uuid4().hex[:16]}", target.schema, plan)
    with engine.connect() as connection, connection.begin():
        _begin(connection)
        claim = _ownership.claim(connection, target, "replace", guard)
        staging.create(connection)
        staging.info[_EXACT_TYPES] = True
        rows = _insert_chunks(connection, staging, frames, plan, progress)
        if before_swap is not None:
            before_swap(connection, staging)
        logger.debug("swapping %s in for %s", staging.name, target.name)
        if claim.columns is not None:
            # only the table checked: one made since (PostgreSQL) makes the rename fail instead
            _drop(connection, target)
        _rename(connection, staging, target.name)
        _ownership.mark(connection, claim, target.name, run_id=plan.run_id,
                        written_at=plan.scored_at, mode="replace", rows=rows)  # fmt: skip
    return rows


def _reflected_kind(column_type: sa.types.TypeEngine[object]) -> _Kind | None:
    for generic, kind in (
        (sa.Boolean, "boolean"), (sa.Integer, "integer"), (sa.Numeric, "float"),
        (sa.String, "string"), (sa.DateTime, "datetime"), (sa.Date, "date"),
    ):  # fmt: skip
        if isinstance(column_type, generic):
            return kind  # type: ignore[return-value]
    return None


def _check_columns(
    types: dict[str, sa.types.TypeEngine[Any]], target: sa.Table, plan: _Plan
) -> None:
    """SchemaError unless the existing table's column ``types`` match the frame's columns."""
    existing = {name: _reflected_kind(column_type) for name, column_type in types.items()}
    missing = [name for name in plan.kinds if name not in existing]
    unknown = [name for name in existing if name not in plan.kinds]
    clashing = [
        f"{name} ({kind} into {existing[name]})"
        for name, kind in plan.kinds.items()
        if existing.get(name) is not None and existing[name] not in _ACCEPTS[kind]
    ]
    if missing or unknown or clashing:
        raise SchemaError(
            f"cannot append to table {target.name!r}: its columns do not match the scores "
            f"(not in the table: {missing}; not in the scores: {unknown}; incompatible types: "
            f"{clashing}). Write the same columns as earlier runs, or replace the table with "
            "mode='replace'"
        )


def _same_types(
    existing: dict[str, sa.types.TypeEngine[Any]], target: sa.Table, dialect: sa.Dialect
) -> bool:
    """Whether the existing columns have exactly the types write_scores would create."""
    try:
        return all(
            existing[column.name].compile(dialect=dialect) == column.type.compile(dialect=dialect)
            for column in target.columns
        )
    except sa.exc.CompileError:
        return False  # a type this dialect cannot spell is not one write_scores creates


def _append(
    engine: sa.Engine, frames: _Frames, target: sa.Table, plan: _Plan, progress: bool,
    guard: _ownership.Guard, before_swap: _Hook | None,
) -> int:  # fmt: skip
    with engine.connect() as connection, connection.begin():
        _begin(connection)
        claim = _ownership.claim(connection, target, "append", guard)
        if claim.columns is not None:
            _check_columns(claim.columns, target, plan)
            target.info[_EXACT_TYPES] = _same_types(claim.columns, target, connection.dialect)
        else:
            target.create(connection)
            target.info[_EXACT_TYPES] = True
        rows = _insert_chunks(connection, target, frames, plan, progress)
        if before_swap is not None:
            before_swap(connection, target)
        _ownership.mark(connection, claim, target.name, run_id=plan.run_id,
                        written_at=plan.scored_at, mode="append", rows=rows)  # fmt: skip
    return rows


def _check_mode(mode: object) -> None:
    if mode not in ("replace", "append"):
        raise SchemaError(f"mode must be 'replace' or 'append', got {mode!r}")


def _target_names(table: object, schema: object, engine: sa.Engine) -> tuple[str, str | None]:
    """The table's and the schema's names, checked; SchemaError for a reserved table name."""
    name = _check_name(table, "table name", engine)
    _ownership.check_reserved(name, engine.dialect)
    return name, None if schema is None else _check_name(schema, "schema name", engine)


def check_scores_table(
    destination: str | sa.Engine,
    table: str,
    *,
    mode: WriteMode = "replace",
    schema: str | None = None,
    overwrite_foreign: bool = False,
    protected: Collection[str] = (),
) -> None:
    """Refuse now a table that :func:`write_scores` would refuse, before a long run computes.

    The same checks as :func:`write_scores` makes before it writes (a reserved, protected or
    foreign table), in a transaction that writes nothing. A job calls it before it reads its
    data, so that a wrong scores table fails in seconds; :func:`write_scores` checks again.

    Parameters
    ----------
    destination, table, mode, schema, overwrite_foreign, protected
        As for :func:`write_scores`.

    Raises
    ------
    ForeignTableError
        The table is protected, or exists and cvalue did not write it (and
        ``overwrite_foreign`` is false).
    SchemaError
        For a bad or reserved name, or a bad mode.
    DatabaseError
        When the database fails.

    Examples
    --------
    >>> check_scores_table("sqlite://", "customer_value", protected=["transactions"])
    """
    _check_mode(mode)
    guard = _ownership.guard(protected, overwrite_foreign)
    with engine_for(destination, hint=WRITE_HINT) as engine:
        name, schema = _target_names(table, schema, engine)
        with engine.connect() as connection, connection.begin() as transaction:
            _begin(connection)
            _ownership.claim(connection, sa.Table(name, sa.MetaData(), schema=schema), mode, guard)
            transaction.rollback()  # the checks took locks and wrote nothing: let go at once


def write_scores(
    scores: pd.DataFrame | Iterable[pd.DataFrame],
    destination: str | sa.Engine,
    table: str,
    *,
    mode: WriteMode = "replace",
    schema: str | None = None,
    run_id: str | None = None,
    index_label: str | None = None,
    chunk_size: int = 50_000,
    progress: bool = False,
    overwrite_foreign: bool = False,
    protected: Collection[str] = (),
    before_swap: _Hook | None = None,
) -> WriteResult:
    """Write scores to a database table, atomically, and only to a table of cvalue's.

    Parameters
    ----------
    scores
        One row per customer, indexed by customer id. The index becomes a column (named after
        the index, ``index_label``, or ``customer_id``). Columns hold numbers, booleans,
        strings, dates or timestamps (time-zone-aware ones are stored in UTC). Or an iterable
        of such frames (a generator of chunks of customers, all with the first chunk's columns
        and kinds): each is written as it comes, inside the one transaction, so that memory
        holds one chunk whatever the number of customers, and the table is swapped in (or the
        rows appended) only after the last one. An exception raised by the iterable rolls the
        whole write back.
    destination
        A SQLAlchemy URL (``"duckdb:///crm.duckdb"``) or an engine (left open).
    table, schema
        The table to write and its schema (``None``: the database's default).
    mode
        ``"replace"``: swap in a new table in one transaction. ``"append"``: add the rows to
        the table, creating it when absent.
    run_id
        Identifies this run in the ``run_id`` column; a random one when ``None``.
    index_label
        The name of the index's column, when not the index's own name.
    chunk_size
        Rows converted and sent per batch (bounds the memory the conversion needs).
    progress
        Show a progress bar.
    overwrite_foreign
        Take over an existing table that cvalue did not write (``replace`` drops its rows).
        By default such a table is refused: see Notes.
    protected
        Tables never to write, whatever ``overwrite_foreign`` says, such as the tables the
        scores were computed from: ``"table"`` (in any schema) or ``"schema.table"``.
    before_swap
        Called as ``before_swap(connection, table)`` in the write's transaction once every row
        is in, before the swap (or the commit when appending; ``table`` then holds earlier runs
        too): to fill columns that need every row, such as tiers by rank, or to read
        aggregates. What it raises rolls the whole write back.

    Returns
    -------
    WriteResult
        The table, the number of rows written, the run id and time, and the mode.

    Raises
    ------
    ForeignTableError
        Before anything is written, when the table is protected, or exists and cvalue did not
        write it (and ``overwrite_foreign`` is false).
    SchemaError
        For a bad or reserved name or mode, a column no database type holds, or, when
        appending, columns that do not match the existing table's.
    DatabaseError
        When the database fails; the message names it with the password hidden. Either way
        the table is as it was before the call.

    Notes
    -----
    Every write records the table in ``cvalue_tables`` (in the table's schema: its schema,
    name, ``run_id``, ``written_at``, ``mode`` and ``rows_written``, those of the latest run
    when appending), in the transaction that writes the rows. An existing table that is not
    recorded there is refused, except one with ``run_id`` and ``scored_at`` columns, which
    every write adds: it is taken for a table written by a cvalue version that kept no record,
    and recorded from this write on. A recorded table without those columns was recreated by
    something else, and is refused too.

    Examples
    --------
    >>> scores = pd.DataFrame({"clv": [120.5, 80.0]}, index=pd.Index([7, 9], name="client_id"))
    >>> written = write_scores(scores, "sqlite://", "customer_value")
    >>> written.rows_written, written.mode
    (2, 'replace')
    """
    _check_mode(mode)
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise SchemaError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    frames = _Frames(scores, chunk_size)
    run_id = uuid.uuid4().hex if run_id is None else run_id
    if not isinstance(run_id, str) or not run_id.strip():
        raise SchemaError(f"run_id must be a non-empty string, got {run_id!r}")
    guard = _ownership.guard(protected, overwrite_foreign)
    with engine_for(destination, hint=WRITE_HINT) as engine:
        name, schema = _target_names(table, schema, engine)
        plan = _plan(frames.first, index_label, run_id, engine)
        write = _replace if mode == "replace" else _append
        target = _new_table(name, schema, plan)
        rows = write(engine, frames, target, plan, progress, guard, before_swap)
        logger.info("%s: %d rows written to %s in %s", mode, rows, table, describe(engine))
    scored_at = plan.scored_at.replace(tzinfo=dt.timezone.utc)
    return WriteResult(table, schema, rows, run_id, scored_at, mode)
