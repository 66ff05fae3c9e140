"""Reading transaction extracts from DataFrames, files and any database SQLAlchemy reaches.

Whatever the source, only the mapped columns are read (the projection runs in the database for
SQL sources) and they come back under their canonical role names, with every row as it was in the
source: nothing is dropped here. Validation is the next step (:func:`validate_transactions`).

Table and column names go through SQLAlchemy's identifier quoting; no SQL is built from strings.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.dataset as ds
import sqlalchemy as sa
from rich.progress import Progress

from cvalue.errors import MissingColumnsError, SchemaError
from cvalue.io._database import describe, engine_for
from cvalue.io.parsing import Formats
from cvalue.io.schema import Columns

__all__ = ["read_table", "read_transactions"]

_CSV_SUFFIXES = frozenset({".csv", ".txt", ".tsv", ".gz", ".zip", ".bz2"})
_PARQUET_SUFFIXES = frozenset({".parquet", ".pq"})
_DUCKDB_VECTORS = 100  # per fetched chunk; a vector is 2,048 rows

Source = pd.DataFrame | str | Path | sa.Engine


def _wanted(columns: Columns, extra_columns: Sequence[str]) -> dict[str, str]:
    """``{source column: output name}`` for the mapped roles and the extra columns."""
    wanted = {name: role for role, name in columns.mapping().items()}
    wanted.update({name: name for name in extra_columns if name not in wanted})
    return wanted


def _check_names(wanted: dict[str, str], available: Sequence[str], where: str) -> None:
    missing = {name: role for name, role in wanted.items() if name not in available}
    if missing:
        raise MissingColumnsError(
            missing, where, list(available),
            "Name the right ones with cvalue.Columns(customer_id=..., timestamp=..., amount=...)",
        )  # fmt: skip


def _table_select(
    engine: sa.Engine, table: str, schema: str | None, wanted: dict[str, str]
) -> sa.Select[tuple[object, ...]]:
    """``SELECT <mapped columns> FROM <table>``, after checking that table and columns exist."""
    inspector = sa.inspect(engine)
    if not inspector.has_table(table, schema=schema):
        raise SchemaError(
            f"table {table!r} not found in {describe(engine)}"
            f"{f' (schema {schema!r})' if schema else ''}; it has tables "
            f"{inspector.get_table_names(schema=schema)}"
        )
    available = [column["name"] for column in inspector.get_columns(table, schema=schema)]
    _check_names(wanted, available, f"table {table!r}")
    source = sa.table(table, *(sa.column(name) for name in wanted), schema=schema)
    return sa.select(*(source.c[name].label(out) for name, out in wanted.items()))


def _query_select(
    query: sa.Select[tuple[object, ...]], wanted: dict[str, str]
) -> sa.Select[tuple[object, ...]]:
    """The mapped columns of a user's ``select()``, wrapped as a subquery."""
    subquery = query.subquery("extract")
    _check_names(wanted, list(subquery.c.keys()), "the query")
    return sa.select(*(subquery.c[name].label(out) for name, out in wanted.items()))


def _chunks(
    engine: sa.Engine, statement: sa.Select[tuple[object, ...]], chunksize: int, progress: bool
) -> Iterator[pd.DataFrame]:
    with engine.connect() as connection:
        total = None
        if progress:
            counted = sa.select(sa.func.count()).select_from(statement.subquery())
            total = connection.execute(counted).scalar_one()
        with Progress(disable=not progress, transient=True) as bar:
            task = bar.add_task("reading transactions", total=total)
            for chunk in pd.read_sql(statement, connection, chunksize=chunksize):
                bar.advance(task, len(chunk))
                yield chunk


def _read_sql(
    engine: sa.Engine,
    statement: sa.Select[tuple[object, ...]],
    chunksize: int | None,
    progress: bool,
) -> pd.DataFrame:
    if chunksize is None and not progress:
        with engine.connect() as connection:
            if engine.dialect.name == "duckdb":
                return _fetch_columns(connection, statement)
            return pd.read_sql(statement, connection)
    frames = list(_chunks(engine, statement, chunksize or 1_000_000, progress))
    if not frames:
        return pd.DataFrame(columns=list(statement.selected_columns.keys()))
    return pd.concat(frames, ignore_index=True)


def _fetch_columns(
    connection: sa.Connection, statement: sa.Select[tuple[object, ...]]
) -> pd.DataFrame:
    """DuckDB's rows fetched as whole columns, in chunks of ``_DUCKDB_VECTORS`` vectors.

    ``read_sql`` makes a Python object of every value first, which costs over a minute and
    gigabytes for millions of rows; one ``fetchdf`` of the whole result peaks at about four
    times the frame's size, chunks at about twice.
    """
    result = connection.execute(statement)
    names = list(result.keys())
    chunks: list[pd.DataFrame] = []
    while len(chunk := result.cursor.fetch_df_chunk(_DUCKDB_VECTORS)) or not chunks:
        chunks.append(chunk)
    result.close()
    frame = chunks[0] if len(chunks) == 1 else pd.concat(chunks, ignore_index=True)
    named: pd.DataFrame = frame.set_axis(names, axis=1)
    return named


def _read_parquet(path: Path, wanted: dict[str, str]) -> pd.DataFrame:
    """A Parquet file, or a folder of them (a pyarrow dataset, hive partitions included)."""
    try:
        available = ds.dataset(path, format="parquet", partitioning="hive").schema.names
    except (OSError, ValueError) as exc:  # pyarrow's errors for unreadable files
        raise SchemaError(f"cannot read {str(path)!r} as Parquet: {exc}") from exc
    _check_names(wanted, available, f"{'folder' if path.is_dir() else 'file'} {path.name!r}")
    frame: pd.DataFrame = pd.read_parquet(path, columns=list(wanted))
    return frame.rename(columns=wanted)


_TRANSACTION_TEXT = frozenset({"customer_id", "order_id", "timestamp", "amount"})


def _csv_options(
    path: Path,
    wanted: dict[str, str],
    sep: str | None,
    encoding: str,
    as_text: frozenset[str] = _TRANSACTION_TEXT,
) -> dict[str, Any]:
    """``read_csv`` options: the ``as_text`` roles as text, the encoding with any BOM handled.

    Ids stay text so that '007' and '7' remain two customers; a transaction's timestamp and
    amount stay text for validation to read with its options, so that pandas cannot take '1.234'
    written with a decimal comma for one point two.
    """
    options: dict[str, Any] = {
        "sep": sep,
        "engine": "python" if sep is None else "c",
        "encoding": encoding,
        "dtype": {name: "str" for name, role in wanted.items() if role in as_text},
    }
    marked = _marked_encoding(path)
    if marked is not None:
        options["encoding"] = marked
    with _csv_errors(path, options):
        header = pd.read_csv(path, **options, nrows=0)
    _check_names(wanted, [str(name) for name in header.columns], f"file {path.name!r}")
    return options | {"usecols": list(wanted)}


_BYTE_ORDER_MARKS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
                     (codecs.BOM_UTF16_BE, "utf-16"))  # fmt: skip


def _marked_encoding(path: Path) -> str | None:
    """The encoding a byte order mark at the start of a plain file states, or ``None``.

    A mark is unambiguous whatever encoding was configured: Windows tools write UTF-8 with a
    mark even when the other files of an export are cp1251.
    """
    if path.suffix.lower() in (".gz", ".zip", ".bz2"):
        return None
    with path.open("rb") as file:
        start = file.read(3)
    return next((name for mark, name in _BYTE_ORDER_MARKS if start.startswith(mark)), None)


@contextmanager
def _csv_errors(path: Path, options: dict[str, Any]) -> Iterator[None]:
    """``pandas.read_csv``'s decoding and parsing errors as :class:`SchemaError`."""
    try:
        yield
    except UnicodeDecodeError as exc:
        raise SchemaError(
            f"file {path.name!r} is not {options['encoding']} text ({exc.reason} at byte "
            f"{exc.start:,}); pass the file's encoding, e.g. encoding='cp1251' (Windows "
            "Cyrillic) or encoding='latin-1'"
        ) from exc
    except LookupError as exc:
        raise SchemaError(f"unknown encoding={options['encoding']!r}: {exc}") from exc
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise SchemaError(
            f"cannot read {path.name!r} as CSV with sep={options['sep']!r}: {exc}"
        ) from exc


def _read_csv(
    path: Path, options: dict[str, Any], chunksize: int | None, progress: bool
) -> pd.DataFrame:
    if chunksize is None and not progress:
        with _csv_errors(path, options):
            whole: pd.DataFrame = pd.read_csv(path, **options)
        return whole
    frames = []
    with Progress(disable=not progress, transient=True) as bar, _csv_errors(path, options):
        task = bar.add_task(f"reading {path.name}", total=None)
        for chunk in pd.read_csv(path, **options, chunksize=chunksize or 1_000_000):
            frames.append(chunk)
            bar.advance(task, len(chunk))
    combined: pd.DataFrame = pd.concat(frames, ignore_index=True)
    return combined


def read_table(
    path: str | Path,
    columns: Mapping[str, str],
    *,
    sep: str = ",",
    encoding: str = "utf-8",
    decimal: str = ".",
    thousands: str | None = None,
    text_columns: Sequence[str] = ("customer_id",),
) -> pd.DataFrame:
    """Some columns of a CSV file, a Parquet file or a folder of Parquet files.

    Parameters
    ----------
    path
        The file or folder.
    columns
        ``{column in the file: name to give it}``; only these are read.
    sep, encoding
        The CSV field separator and text encoding (a UTF-8 byte order mark is skipped).
    decimal, thousands
        The decimal mark and thousands separator of numbers in a CSV file.
    text_columns
        Output names of columns read as text (identifiers: '007' stays '007').

    Returns
    -------
    pandas.DataFrame
        Every row of the file, with the columns renamed.

    Raises
    ------
    SchemaError
        For a missing file, an unknown format, a file that is not text of ``encoding``, or
        columns it does not have (a :class:`MissingColumnsError`, naming them).
    """
    wanted = dict(columns)
    path = Path(path)
    _check_exists(path)
    if path.is_dir() or path.suffix.lower() in _PARQUET_SUFFIXES:
        return _read_parquet(path, wanted)
    _check_csv_suffix(path)
    options = _csv_options(path, wanted, sep, encoding, frozenset(text_columns))
    options |= {"decimal": decimal, "thousands": thousands}
    return _read_csv(path, options, None, False).rename(columns=wanted)


def _check_exists(path: Path) -> None:
    if not path.exists():
        raise SchemaError(f"file {str(path)!r} does not exist")


def _check_csv_suffix(path: Path) -> None:
    if path.suffix.lower() not in _CSV_SUFFIXES:
        raise SchemaError(
            f"cannot tell the format of {path.name!r}; use a .csv or .parquet file (or a folder "
            "of Parquet files), or read it with pandas and pass the DataFrame"
        )


def _read_file(
    path: Path,
    wanted: dict[str, str],
    chunksize: int | None,
    progress: bool,
    csv: tuple[str | None, str],
) -> pd.DataFrame:
    _check_exists(path)
    if path.is_dir() or path.suffix.lower() in _PARQUET_SUFFIXES:
        return _read_parquet(path, wanted)
    _check_csv_suffix(path)
    options = _csv_options(path, wanted, *csv)
    return _read_csv(path, options, chunksize, progress).rename(columns=wanted)


def read_transactions(
    source: Source,
    *,
    table: str | None = None,
    query: sa.Select[tuple[object, ...]] | None = None,
    columns: Columns | None = None,
    extra_columns: Sequence[str] = (),
    schema: str | None = None,
    chunksize: int | None = None,
    progress: bool = False,
    sep: str | None = ",",
    encoding: str = "utf-8",
    date_format: str | None = None,
    dayfirst: bool | None = None,
    decimal: str = ".",
    thousands: str | None = None,
) -> pd.DataFrame:
    """Read a transaction extract and name its columns by role.

    Parameters
    ----------
    source
        A DataFrame, a CSV or Parquet path, a folder of Parquet files, a SQLAlchemy URL
        (``"duckdb:///crm.duckdb"``) or an ``sa.Engine``.
    table, query
        For database sources, a table name or a ``sqlalchemy.select()`` (exactly one).
    columns
        Which source columns play which role; only these (and ``extra_columns``) are read.
    extra_columns
        Other columns to carry along under their own names.
    schema
        The database schema of ``table``.
    chunksize, progress
        Read in chunks of this many rows, showing a progress bar when ``progress`` is true.
    sep
        The CSV field separator; ``None`` sniffs it (whitespace-separated files included).
    encoding
        The CSV file's encoding (``"cp1251"``, ``"utf-8-sig"``, ...); a UTF-8 byte order mark is
        skipped with the default too.
    date_format, dayfirst, decimal, thousands
        How the extract writes dates and amounts, as in :func:`validate_transactions`. Nothing
        is converted here: the options are recorded in ``attrs["cvalue_formats"]`` of the result,
        and validation uses them.

    Returns
    -------
    pandas.DataFrame
        The rows as stored, under canonical role names; pass it to
        :func:`validate_transactions`. From CSV, the mapped columns are text (ids keep their
        leading zeros; validation reads the dates and amounts).

    Raises
    ------
    SchemaError
        If the source, a table, a file or a column does not exist, if a file cannot be decoded
        or parsed, or if an option is invalid.
    """
    formats = Formats(date_format=date_format, dayfirst=dayfirst, decimal=decimal,
                      thousands=thousands)  # fmt: skip
    columns = columns or Columns()
    wanted = _wanted(columns, extra_columns)
    frame = _read_source(
        source, wanted, table=table, query=query, schema=schema, chunksize=chunksize,
        progress=progress, csv=(sep, encoding),
    )  # fmt: skip
    frame.attrs = {**frame.attrs, "cvalue_formats": formats.as_dict()}
    return frame


def _read_source(
    source: Source,
    wanted: dict[str, str],
    *,
    table: str | None,
    query: sa.Select[tuple[object, ...]] | None,
    schema: str | None,
    chunksize: int | None,
    progress: bool,
    csv: tuple[str | None, str],
) -> pd.DataFrame:
    if isinstance(source, pd.DataFrame):
        _check_names(wanted, list(source.columns), "the DataFrame")
        return source.loc[:, list(wanted)].rename(columns=wanted)
    is_url = isinstance(source, str) and "://" in source
    if isinstance(source, sa.Engine) or is_url:
        if (table is None) == (query is None):
            raise SchemaError("pass exactly one of table= or query= to read from a database")
        with engine_for(source) as engine:  # type: ignore[arg-type]
            statement = (
                _table_select(engine, table, schema, wanted)
                if table is not None
                else _query_select(query, wanted)  # type: ignore[arg-type]
            )
            return _read_sql(engine, statement, chunksize, progress)
    if isinstance(source, str | Path):
        return _read_file(Path(source), wanted, chunksize, progress, csv)
    raise SchemaError(
        f"cannot read transactions from a {type(source).__name__}; pass a DataFrame, a CSV or "
        "Parquet path, a SQLAlchemy URL or an engine"
    )
