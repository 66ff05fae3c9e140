"""Reading transaction extracts from DataFrames, files and any database SQLAlchemy reaches.

Whatever the source, only the mapped columns are read (the projection runs in the database for
SQL sources) and they come back under their canonical role names, with every row as it was in the
source: nothing is dropped here. Validation is the next step (:func:`validate_transactions`).

Table and column names go through SQLAlchemy's identifier quoting; no SQL is built from strings.
"""

from __future__ import annotations

import codecs
import csv
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.dataset as ds
import sqlalchemy as sa
from rich.progress import Progress

from cvalue.errors import CValueWarning, MissingColumnsError, SchemaError
from cvalue.io._database import describe, engine_for
from cvalue.io.parsing import Formats
from cvalue.io.presets import Preset, PresetMatch, get_preset
from cvalue.io.schema import CRM_ATTRS, Columns

__all__ = [
    "CsvLayout",
    "PresetSource",
    "read_table",
    "read_transactions",
    "resolve_preset",
    "sniff_csv",
]

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


_TRANSACTION_TEXT = frozenset(
    {"customer_id", "order_id", "timestamp", "amount", "status", "currency"}
)


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
    columns: Columns | Preset | str | None = None,
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
        Which source columns play which role; only these (and ``extra_columns``) are read. A
        CRM preset's name (``"salesforce"``, ``"bitrix24:invoices"``; see
        :data:`cvalue.io.presets.PRESETS`) or a :class:`~cvalue.io.presets.Preset` reads a CRM
        export: the header variant the source has (API field names, or the export of the
        interface in its language) gives the columns, the won statuses, the date format and
        decimal mark; a CSV file's encoding and separator are found among the given ones and
        the preset's. Formats given here win over the preset's, and
        ``get_preset(name).overriding(customer_id=...)`` names a column yourself.
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
        or parsed, if an option is invalid, or if the source is not an export the preset knows
        (naming what each of its variants lacks).

    Warns
    -----
    CValueWarning
        When a preset finds no status column: every row then counts as a purchase.

    Examples
    --------
    >>> deals = pd.DataFrame({"ID": [1, 2], "COMPANY_ID": [7, 7], "OPPORTUNITY": [100.0, 50.0],
    ...                       "CURRENCY_ID": ["RUB", "RUB"], "STAGE_ID": ["WON", "LOSE"],
    ...                       "CLOSEDATE": ["2024-03-01T00:00:00+03:00"] * 2})
    >>> raw = read_transactions(deals, columns="bitrix24")
    >>> list(raw.columns)
    ['customer_id', 'timestamp', 'amount', 'order_id', 'status', 'currency']
    """
    formats = Formats(date_format=date_format, dayfirst=dayfirst, decimal=decimal,
                      thousands=thousands)  # fmt: skip
    preset = _as_preset(columns)
    if preset is not None:
        found = resolve_preset(
            source, preset.overriding(**_explicit(formats)), table=table, query=query,
            schema=schema, sep=sep, encoding=encoding,
        )  # fmt: skip
        columns, formats, sep, encoding = found.match.columns, found.match.formats, *found.csv
        _warn_without_status(found.match)
    columns = columns if isinstance(columns, Columns) else Columns()
    wanted = _wanted(columns, extra_columns)
    frame = _read_source(
        source, wanted, table=table, query=query, schema=schema, chunksize=chunksize,
        progress=progress, csv=(sep, encoding),
    )  # fmt: skip
    frame.attrs = {**frame.attrs, "cvalue_formats": formats.as_dict()}
    if columns.status or columns.currency or columns.missing_ids:
        frame.attrs[CRM_ATTRS] = columns.crm_values()
    return frame


def _as_preset(columns: Columns | Preset | str | None) -> Preset | None:
    if isinstance(columns, str):
        return get_preset(columns)
    return columns if isinstance(columns, Preset) else None


def _explicit(formats: Formats) -> dict[str, object]:
    """The format options given other than as their defaults: they win over a preset's."""
    default = Formats().as_dict()
    return {name: value for name, value in formats.as_dict().items() if value != default[name]}


def _warn_without_status(match: PresetMatch) -> None:
    if match.columns.status is None:
        warnings.warn(
            f"preset {match.preset.name!r}: the extract has no status column "
            f"({[rule.column for rule in match.variant.status]}), so every row counts as a "
            "purchase, open and lost deals too; export the status column, or only won deals",
            CValueWarning,
            stacklevel=3,
        )


# --- CRM presets: the header a source has -----------------------------------------------------

_SNIFF_BYTES = 1 << 16
_SEPARATORS = (",", ";", "\t", "|")


@dataclass(frozen=True, slots=True)
class PresetSource:
    """A preset resolved against a source, and the CSV separator and encoding found for it."""

    match: PresetMatch
    csv: tuple[str | None, str]


def resolve_preset(
    source: Source,
    preset: Preset | str,
    *,
    table: str | None = None,
    query: sa.Select[tuple[object, ...]] | None = None,
    schema: str | None = None,
    sep: str | None = ",",
    encoding: str = "utf-8",
) -> PresetSource:
    """The preset's variant that ``source`` has, read from its header only.

    For a CSV file, the given separator and encoding are tried first, then the preset's (a byte
    order mark settles the encoding): the first separator that splits the header into a
    variant's columns is the file's.

    Raises
    ------
    SchemaError
        If the source does not exist, cannot be decoded in any of the encodings, or has the
        columns of none of the preset's variants.
    """
    preset = get_preset(preset) if isinstance(preset, str) else preset
    if isinstance(source, pd.DataFrame):
        return PresetSource(preset.resolve(list(source.columns), where="the DataFrame"),
                            (sep, encoding))  # fmt: skip
    if isinstance(source, sa.Engine) or (isinstance(source, str) and "://" in source):
        header, where = _database_header(source, table, query, schema)
        return PresetSource(preset.resolve(header, where=where), (sep, encoding))
    path = Path(source)
    _check_exists(path)
    if path.is_dir() or path.suffix.lower() in _PARQUET_SUFFIXES:
        names = ds.dataset(path, format="parquet", partitioning="hive").schema.names
        return PresetSource(preset.resolve(names, where=f"file {path.name!r}"), (sep, encoding))
    _check_csv_suffix(path)
    return _csv_preset(path, preset, sep, encoding)


def _database_header(
    source: sa.Engine | str,
    table: str | None,
    query: sa.Select[tuple[object, ...]] | None,
    schema: str | None,
) -> tuple[list[str], str]:
    if (table is None) == (query is None):
        raise SchemaError("pass exactly one of table= or query= to read from a database")
    if query is not None:
        return list(query.subquery("extract").c.keys()), "the query"
    with engine_for(source) as engine:
        inspector = sa.inspect(engine)
        if not inspector.has_table(str(table), schema=schema):
            raise SchemaError(f"table {table!r} not found in {describe(engine)}")
        columns = inspector.get_columns(str(table), schema=schema)
    return [column["name"] for column in columns], f"table {table!r}"


def _csv_preset(path: Path, preset: Preset, sep: str | None, encoding: str) -> PresetSource:
    """The separator and encoding with which the file's header is one of the preset's."""
    if path.suffix.lower() in (".gz", ".zip", ".bz2"):
        options: dict[str, Any] = {"sep": sep, "encoding": encoding,
                                   "engine": "python" if sep is None else "c"}  # fmt: skip
        with _csv_errors(path, options):
            header = list(pd.read_csv(path, nrows=0, **options).columns)
        return PresetSource(preset.resolve(header, where=f"file {path.name!r}"), (sep, encoding))
    variants = preset.variants
    marked = _marked_encoding(path)
    encodings = [marked] if marked else _unique([encoding, *(e for v in variants
                                                              for e in v.encodings)])  # fmt: skip
    line, found_encoding = _first_line(path, encodings)
    separators = _unique([*([sep] if sep else []), *(s for v in variants for s in v.separators),
                          *_SEPARATORS])  # fmt: skip
    failures: list[tuple[int, SchemaError]] = []
    for candidate in separators:
        header = next(csv.reader([line], delimiter=candidate))
        try:
            match = preset.resolve(header, where=f"file {path.name!r}")
        except SchemaError as exc:
            failures.append((len(header), exc))
            continue
        return PresetSource(match, (candidate, found_encoding))
    raise max(failures, key=lambda failure: failure[0])[1]  # the split with the most columns


def _unique(items: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _first_line(path: Path, encodings: Sequence[str]) -> tuple[str, str]:
    """The header line, and the first encoding in which the file's start decodes."""
    lines, name = _first_lines(path, encodings)
    return (lines[0] if lines else ""), name


def _first_lines(path: Path, encodings: Sequence[str]) -> tuple[list[str], str]:
    """The lines of the file's start, and the first encoding in which it decodes."""
    with path.open("rb") as file:
        start = file.read(_SNIFF_BYTES)
    if len(start) == _SNIFF_BYTES:  # cut at a line end: not inside a character
        start = start[: start.rfind(b"\n") + 1] or start
    for name in encodings:
        try:
            text = codecs.decode(start, name)
        except UnicodeDecodeError:
            continue
        except LookupError as exc:
            raise SchemaError(f"unknown encoding={name!r}: {exc}") from exc
        return text.lstrip("\ufeff").splitlines(), name
    raise SchemaError(
        f"file {path.name!r} is text in none of the encodings {list(encodings)}; pass the "
        "file's encoding, e.g. encoding='cp1251' (Windows Cyrillic) or encoding='latin-1'"
    )


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


@dataclass(frozen=True, slots=True)
class CsvLayout:
    """How a CSV file is written: its encoding, its separator and its header."""

    encoding: str
    sep: str
    header: tuple[str, ...]


def sniff_csv(
    path: str | Path,
    *,
    encodings: Sequence[str] = ("utf-8", "cp1251"),
    separators: Sequence[str] = _SEPARATORS,
) -> CsvLayout:
    """The encoding, separator and header of a CSV file, from its first lines.

    The encoding is the one a byte order mark states, else the first of ``encodings`` in which
    the file's start decodes; the separator is the one of ``separators`` that splits the header
    into the most columns while every following line has as many (the first of equals).

    Raises
    ------
    SchemaError
        If the file does not exist, is compressed, or decodes in none of ``encodings``.
    """
    path = Path(path)
    _check_exists(path)
    _check_csv_suffix(path)
    if path.suffix.lower() in (".gz", ".zip", ".bz2"):
        raise SchemaError(f"cannot look into the compressed file {path.name!r}; decompress it")
    marked = _marked_encoding(path)
    lines, encoding = _first_lines(path, [marked] if marked else encodings)
    lines = [line for line in lines[:21] if line.strip()] or [""]
    best: tuple[bool, int, int] | None = None
    for rank, candidate in enumerate(separators):
        widths = [len(row) for row in csv.reader(lines, delimiter=candidate)]
        score = (len(set(widths)) == 1 and widths[0] > 1, widths[0], -rank)
        if best is None or score > best:
            best, chosen = score, candidate
    header = next(csv.reader(lines[:1], delimiter=chosen))
    return CsvLayout(encoding, chosen, tuple(header))
