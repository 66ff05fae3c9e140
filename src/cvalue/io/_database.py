"""Opening databases: engines from URLs, driver errors as DatabaseError, passwords hidden.

Functions that accept a URL open an engine for the call and dispose of it afterwards (an
embedded DuckDB file stays open in the process as long as an engine holds it); an engine the
caller passes is used as it is and left open.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from cvalue.errors import DatabaseError, SchemaError

__all__ = ["connect", "connection_to", "database_error", "describe", "engine_for"]


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


def database_error(
    engine: sa.Engine, exc: sa.exc.SQLAlchemyError, hint: str = READ_HINT
) -> DatabaseError:
    """A DatabaseError naming the database (password hidden), the driver's first line, a hint."""
    original = getattr(exc, "orig", None) or exc
    lines = str(original).strip().splitlines()
    detail = _hide_password(f"{type(original).__name__}: {lines[0] if lines else ''}", engine.url)
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
