"""Opening databases: engines from URLs, driver errors as DatabaseError, passwords hidden.

Driver errors are told apart by cause. A statement the database refuses as written (an unknown
table or column, a syntax error, a missing privilege, a value of the wrong type) is a
:class:`~cvalue.errors.QueryError`: the configuration needs a fix and a retry cannot help. Anything
else (a refused connection, a lock, a full disk, a server shutting down) is a plain
:class:`~cvalue.errors.DatabaseError`, which a scheduler may retry. The cause is read from the
SQLSTATE code where the driver gives one (PostgreSQL), from the exception class (DuckDB) and from
the message (SQLite, whose driver raises one class for every error).

Functions that accept a URL open an engine for the call and dispose of it afterwards (an
embedded DuckDB file stays open in the process as long as an engine holds it); an engine the
caller passes is used as it is and left open.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from cvalue.errors import DatabaseError, QueryError, SchemaError

__all__ = [
    "connect",
    "connection_to",
    "database_error",
    "describe",
    "engine_for",
    "is_statement_error",
]


def describe(engine: sa.Engine) -> str:
    """The engine's URL with its password replaced by ``***``."""
    return engine.url.render_as_string(hide_password=True)


def connect(source: str | sa.Engine, *, read_only: bool = False) -> sa.Engine:
    """An engine for a SQLAlchemy URL, or ``source`` itself when it is an engine.

    ``read_only`` opens a DuckDB file for reading only: any number of processes (a BI tool, a
    second job) can then read it at once, where a writable open needs the file to itself. Other
    databases manage concurrent readers themselves and open as usual.
    """
    if isinstance(source, sa.Engine):
        return source
    if not isinstance(source, str):
        raise SchemaError(
            f"source must be a database URL or a SQLAlchemy Engine, got {type(source).__name__}"
        )
    try:
        url = sa.make_url(source)
    except sa.exc.ArgumentError:
        # not chained: the parser's message quotes the whole string, password included
        raise DatabaseError(
            "source is not a database URL; write dialect+driver://user:password@host/database, "
            "such as duckdb:///crm.duckdb or postgresql+psycopg://user@host/crm"
        ) from None
    try:
        return sa.create_engine(url, **_read_only_options(url) if read_only else {})
    except (sa.exc.SQLAlchemyError, ImportError) as exc:
        raise DatabaseError(
            f"cannot open {url.render_as_string(hide_password=True)}: "
            f"{_hide_password(str(exc), url)}; "
            "is the driver installed (cvalue[duckdb], cvalue[postgres])?"
        ) from exc


def _read_only_options(url: sa.URL) -> dict[str, object]:
    """``create_engine`` options that open ``url`` for reading only, where that is needed."""
    is_file = url.database not in (None, "", ":memory:")
    if url.get_backend_name() == "duckdb" and is_file:
        return {"connect_args": {"read_only": True}}
    return {}


def _hide_password(text: str, url: sa.URL) -> str:
    """``text`` with the URL's password, should a driver quote it, replaced by ``***``."""
    return text.replace(str(url.password), "***") if url.password else text


READ_HINT = "Check that it is running and reachable, and that the table or query is valid there"
WRITE_HINT = (
    "Check that it is running and reachable, that this user may create, fill and rename tables "
    "there, and that no other process holds the table (for DuckDB: the file) locked; the "
    "previous scores are unchanged"
)
QUERY_HINT = (
    "The database refused the statement as written: correct the table, column or query in the "
    "configuration (running it again will not help)"
)
WRITE_QUERY_HINT = (
    "The database refused to write the table as asked (a privilege, a view or another object "
    "that depends on it, a name it cannot take); running it again will not help until that "
    "is changed. The previous scores are unchanged"
)
_STATEMENT_HINTS = {READ_HINT: QUERY_HINT, WRITE_HINT: WRITE_QUERY_HINT}

# SQLSTATE classes of a statement's own fault: 0A feature not supported, 21 cardinality,
# 22 data exception, 23 integrity constraint, 2B dependent objects (a view on a table to
# replace), 42 syntax error or access rule violation
_STATEMENT_SQLSTATES = frozenset({"0A", "21", "22", "23", "2B", "42"})
_DUCKDB_STATEMENT_ERRORS = frozenset({
    "BinderException", "CatalogException", "ParserException", "SyntaxException",
    "ConversionException", "InvalidInputException", "NotImplementedException",
    "TypeMismatchException", "ConstraintException", "PermissionException",
    "OutOfRangeException",
})  # fmt: skip
_SQLITE_STATEMENT_MESSAGES = (
    "no such table", "no such column", "no such function", "syntax error",
    "ambiguous column name", "has no column named", "already exists", "no tables specified",
    "not authorized", "incomplete input", "unrecognized token", "wrong number of arguments",
)  # fmt: skip


def is_statement_error(exc: BaseException) -> bool:
    """Whether a driver error is the statement's own fault rather than the database's state."""
    if isinstance(exc, sa.exc.StatementError) and not isinstance(exc, sa.exc.DBAPIError):
        return True  # SQLAlchemy refused the statement before sending it
    if isinstance(exc, sa.exc.ArgumentError | sa.exc.CompileError | sa.exc.NoSuchTableError):
        return True
    original = getattr(exc, "orig", None) or exc
    sqlstate = getattr(original, "sqlstate", None)
    if isinstance(sqlstate, str) and len(sqlstate) == 5:
        return sqlstate[:2] in _STATEMENT_SQLSTATES
    module = type(original).__module__
    if module.lstrip("_") == "duckdb":
        return type(original).__name__ in _DUCKDB_STATEMENT_ERRORS
    if module == "sqlite3":
        message = str(original).lower()
        return any(marker in message for marker in _SQLITE_STATEMENT_MESSAGES)
    return isinstance(exc, sa.exc.ProgrammingError)


def database_error(
    engine: sa.Engine, exc: sa.exc.SQLAlchemyError, hint: str = READ_HINT
) -> DatabaseError:
    """A DatabaseError naming the database (password hidden), the driver's first line, a hint.

    A statement the database refused as written comes out as a :class:`QueryError`, with
    :data:`QUERY_HINT` for reads and :data:`WRITE_QUERY_HINT` for writes instead of ``hint``.
    """
    original = getattr(exc, "orig", None) or exc
    lines = str(original).strip().splitlines()
    detail = _hide_password(f"{type(original).__name__}: {lines[0] if lines else ''}", engine.url)
    if is_statement_error(exc):
        statement_hint = _STATEMENT_HINTS.get(hint, QUERY_HINT)
        return QueryError(f"the database {describe(engine)} refused a statement: {detail}. "
                          f"{statement_hint}")  # fmt: skip
    return DatabaseError(f"the database {describe(engine)} failed: {detail}. {hint}")


@contextmanager
def engine_for(
    source: str | sa.Engine, *, read_only: bool = False, hint: str = READ_HINT
) -> Iterator[sa.Engine]:
    """An engine for ``source``; driver errors come out as :class:`DatabaseError` with ``hint``."""
    engine = connect(source, read_only=read_only)
    try:
        yield engine
    except sa.exc.SQLAlchemyError as exc:
        raise database_error(engine, exc, hint) from exc
    finally:
        if engine is not source:
            engine.dispose()


@contextmanager
def connection_to(source: str | sa.Engine) -> Iterator[sa.Connection]:
    """A connection to ``source``; driver errors come out as :class:`DatabaseError`."""
    with engine_for(source) as engine, engine.connect() as connection:
        yield connection
