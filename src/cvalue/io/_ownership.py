"""Whose table it is: the record of the tables write_scores wrote, and the checks it makes.

Every write records its table in ``cvalue_tables`` (in the table's schema), in the transaction
that writes the rows, so the record and the data cannot disagree. Before anything is written,
and inside the same transaction, :func:`claim` refuses a protected table, and an existing table
that cvalue did not write unless the caller takes it over. A table with the ``run_id`` and
``scored_at`` columns that every write adds counts as cvalue's (written by a version that kept
no record) and is recorded from then on; a recorded table without them was recreated by
something else.

The check cannot race with another writer: on PostgreSQL, write_scores calls that write the same
table take turns (a transaction-level advisory lock on its name), and an existing table is
locked against other tools' writers (not readers) until the commit; SQLite's write transaction
takes the write lock at its start; DuckDB refuses to commit over a concurrent change.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.schema import ExecutableDDLElement
from sqlalchemy.sql.compiler import DDLCompiler

from cvalue.errors import ForeignTableError, SchemaError

__all__ = [
    "ADDED_COLUMNS",
    "MARKS_TABLE",
    "STAGING_PREFIX",
    "Claim",
    "Guard",
    "check_reserved",
    "claim",
    "guard",
    "mark",
]

logger = logging.getLogger(__name__)

STAGING_PREFIX = "cvalue_staging_"
"""Staging tables are named this prefix and random hex digits."""
MARKS_TABLE = "cvalue_tables"
"""The table, in each schema write_scores writes to, that records the tables it wrote."""
ADDED_COLUMNS = ("run_id", "scored_at")
"""The columns every write adds to the scores."""

_Mode = Literal["replace", "append"]


class _LockTable(ExecutableDDLElement):
    """PostgreSQL's ``LOCK TABLE <table> IN SHARE UPDATE EXCLUSIVE MODE``.

    The mode lets readers and their queries in but keeps out other writers' locks of the same
    mode, and DROP, ALTER and TRUNCATE, until the transaction ends.
    """

    def __init__(self, table: sa.Table) -> None:
        self.table = table


@compiles(_LockTable)
def _compile_lock(element: _LockTable, compiler: DDLCompiler, **kw: object) -> str:
    # SQLAlchemy has no LOCK construct; the name is quoted by the dialect's preparer
    table = compiler.preparer.format_table(element.table)
    return f"LOCK TABLE {table} IN SHARE UPDATE EXCLUSIVE MODE"


@dataclass(frozen=True, slots=True)
class Guard:
    """What the caller allows: tables never to write, and whether foreign tables may be taken."""

    protected: tuple[str, ...]
    overwrite_foreign: bool


@dataclass(frozen=True, slots=True)
class Claim:
    """The target as the write transaction found it, once the checks passed."""

    marks: sa.Table  # cvalue_tables in the target's schema
    schema_name: str  # the target's schema, the database's default one resolved
    columns: dict[str, sa.types.TypeEngine[Any]] | None  # None: there is no such table
    has_marks: bool  # cvalue_tables exists
    is_marked: bool  # and records the target


def guard(protected: Collection[str], overwrite_foreign: bool) -> Guard:
    """The caller's options, checked; SchemaError for a bare string or a non-string name."""
    if isinstance(protected, str) or not all(isinstance(name, str) for name in protected):
        raise SchemaError(
            f"protected must be a collection of table names, got {protected!r}; write "
            "protected=['transactions'] (or 'schema.table')"
        )
    if not isinstance(overwrite_foreign, bool):
        raise SchemaError(f"overwrite_foreign must be True or False, got {overwrite_foreign!r}")
    return Guard(tuple(protected), overwrite_foreign)


def _marks_table(schema: str | None) -> sa.Table:
    return sa.Table(
        MARKS_TABLE, sa.MetaData(),
        sa.Column("schema_name", sa.Text, primary_key=True),
        sa.Column("table_name", sa.Text, primary_key=True),
        sa.Column("run_id", sa.Text, nullable=False),
        sa.Column("written_at", sa.DateTime, nullable=False),
        sa.Column("mode", sa.Text, nullable=False),
        sa.Column("rows_written", sa.BigInteger, nullable=False),
        schema=schema,
    )  # fmt: skip


def _folded(name: str, dialect: sa.Dialect) -> str:
    """``name`` as the database compares table names.

    PostgreSQL tells names apart by case (SQLAlchemy quotes those that are not lower case);
    SQLite and DuckDB do not, and neither, to be safe, does any other database here.
    """
    return name if dialect.name == "postgresql" else name.casefold()


def check_reserved(name: str, dialect: sa.Dialect) -> None:
    """SchemaError for the record's own name and staging names: never a target."""
    folded = _folded(name, dialect)
    if folded == MARKS_TABLE or folded.startswith(STAGING_PREFIX):
        raise SchemaError(
            f"the table name {name!r} is reserved: {MARKS_TABLE!r} records the tables "
            f"write_scores wrote, and {STAGING_PREFIX}<hex> are its staging tables. Write the "
            "scores to another table"
        )


def _check_protected(name: str, schema_name: str, options: Guard, dialect: sa.Dialect) -> None:
    """ForeignTableError if ``protected`` names the table, alone or as ``schema.table``."""
    target = {_folded(name, dialect), _folded(f"{schema_name}.{name}", dialect)}
    named = [entry for entry in options.protected if _folded(entry, dialect) in target]
    if named:
        raise ForeignTableError(
            f"table {schema_name}.{name} is protected ({named[0]!r} is among the tables this "
            f"run reads, {list(options.protected)}): writing the scores there would destroy the "
            "data they come from, and overwrite_foreign does not allow it. Write the scores to "
            "another table"
        )


def _check_ours(
    name: str, schema_name: str, columns: Collection[str], is_marked: bool, mode: _Mode
) -> None:
    """ForeignTableError unless the existing table is one write_scores wrote."""
    if all(column in columns for column in ADDED_COLUMNS):
        if not is_marked:
            logger.info("%s.%s has run_id and scored_at: taken as written by an earlier "
                        "cvalue, and recorded in %s", schema_name, name, MARKS_TABLE)  # fmt: skip
        return
    why = (
        f"{MARKS_TABLE} records it, but it lacks the run_id and scored_at columns that every "
        "write adds, so something else has recreated it"
        if is_marked
        else f"{MARKS_TABLE} does not record it, and it lacks the run_id and scored_at columns "
        "that every write adds"
    )
    names = list(columns)
    shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
    effect = "drops its rows" if mode == "replace" else "adds the scores to its rows"
    raise ForeignTableError(
        f"table {schema_name}.{name} exists and was not written by cvalue ({why}; its "
        f"columns: {shown}); write_scores writes only to its own tables, so as not to destroy "
        "data it did not write. Write the scores to another table, or take this one over (a "
        f"{mode} {effect}) with overwrite_foreign=True ([outputs] overwrite_foreign = true "
        "in the job's TOML)"
    )


def _existing_columns(
    connection: sa.Connection, target: sa.Table
) -> dict[str, sa.types.TypeEngine[Any]] | None:
    """The target's columns, ``None`` when absent; on PostgreSQL, locked against other writers."""
    if not sa.inspect(connection).has_table(target.name, schema=target.schema):
        return None
    if connection.dialect.name == "postgresql":
        # the lock comes first, so that the columns read next stay true until the commit
        connection.execute(_LockTable(target))
    columns = sa.inspect(connection).get_columns(target.name, schema=target.schema)
    return {column["name"]: column["type"] for column in columns}


def _is_marked(connection: sa.Connection, marks: sa.Table, schema_name: str, name: str) -> bool:
    key = (marks.c.schema_name == schema_name, marks.c.table_name == name)
    count = sa.select(sa.func.count()).select_from(marks).where(*key)
    return int(connection.execute(count).scalar_one()) > 0


def _take_turns(connection: sa.Connection, schema_name: str, name: str) -> None:
    """PostgreSQL: wait until no other write_scores transaction writes this table.

    Without it, two runs that create the same new table would both find it absent, and the
    second would fail at the rename instead of replacing the first's table.
    """
    if connection.dialect.name != "postgresql":
        return
    # a stable 64-bit key for the name (Python's hash() differs from process to process)
    digest = hashlib.blake2b(f"cvalue:{schema_name}.{name}".encode(), digest_size=8).digest()
    key = int.from_bytes(digest, "big", signed=True)
    connection.execute(sa.select(sa.func.pg_advisory_xact_lock(key)))


def claim(connection: sa.Connection, target: sa.Table, mode: _Mode, options: Guard) -> Claim:
    """Check, in the write transaction and before it writes, that the target may be written.

    Raises
    ------
    ForeignTableError
        The target is protected, or exists, was not written by cvalue, and
        ``options.overwrite_foreign`` is false.
    """
    schema_name = target.schema or sa.inspect(connection).default_schema_name or ""
    _check_protected(target.name, schema_name, options, connection.dialect)
    _take_turns(connection, schema_name, target.name)
    columns = _existing_columns(connection, target)
    marks = _marks_table(target.schema)
    has_marks = sa.inspect(connection).has_table(MARKS_TABLE, schema=target.schema)
    is_marked = has_marks and _is_marked(connection, marks, schema_name, target.name)
    if columns is not None and not options.overwrite_foreign:
        _check_ours(target.name, schema_name, columns, is_marked, mode)
    return Claim(marks, schema_name, columns, has_marks, is_marked)


def mark(
    connection: sa.Connection, claimed: Claim, name: str, *, run_id: str,
    written_at: dt.datetime, mode: _Mode, rows: int,
) -> None:  # fmt: skip
    """Record the table as cvalue's, in the transaction that writes it."""
    marks = claimed.marks
    if not claimed.has_marks:
        marks.create(connection, checkfirst=True)
    values = {"run_id": run_id, "written_at": written_at, "mode": mode, "rows_written": rows}
    if claimed.is_marked:
        key = (marks.c.schema_name == claimed.schema_name, marks.c.table_name == name)
        connection.execute(sa.update(marks).where(*key).values(values))
    else:
        row = {"schema_name": claimed.schema_name, "table_name": name, **values}
        connection.execute(sa.insert(marks).values(row))
