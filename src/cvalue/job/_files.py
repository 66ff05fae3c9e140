"""CSV and Parquet sources of a chunked run: DuckDB views over the files, in a scratch database.

A chunked run validates, summarises and scores in the database. Files named by ``file`` get a
database of their own: a DuckDB file in a temporary folder, holding one view per Parquet file
(or folder) over DuckDB's ``read_parquet``, read where it is, and one table per CSV file, its
typed rows copied once by ``read_csv`` (text is parsed once, not on every scan). The run then
reads them as tables.

Parquet columns keep their types. CSV columns are read as text and typed as the in-memory job
types them (:func:`cvalue.read_transactions`): ids stay text ('007' is not 7), amounts and costs
are numbers written with ``[source] decimal`` and ``thousands``, timestamps are ISO dates or
date-times, flags are true/false, 1/0 or yes/no (anything else is missing, as
:func:`cvalue.io.parsing.parse_flags` reads them).
"""

from __future__ import annotations

import contextlib
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler

from cvalue.config import JobConfig
from cvalue.errors import SchemaError
from cvalue.io import engine_for
from cvalue.io.sqlkit import copy_rows

__all__ = ["FileViews", "bound_duckdb", "duckdb_resting", "file_views", "reads_files"]

_PARQUET_SUFFIXES = frozenset({".parquet", ".pq", ".parq"})
_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")  # as cvalue.io.parsing reads flags
# the sections a chunked run reads in the database, and the view each file becomes
_VIEWS = {
    "source.transactions": "cvalue_transactions", "source.customers": "cvalue_customers",
    "value.cost_to_serve": "cvalue_cost_to_serve", "value.marketing_cost": "cvalue_marketing_cost",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class FileViews:
    """The scratch database's URL, and the configuration reading its views as tables."""

    url: str
    config: JobConfig


def bound_duckdb(connection: sa.Connection, config: JobConfig) -> None:
    """DuckDB's memory capped at ``[run] duckdb_memory``, for every connection of its file."""
    connection.exec_driver_sql("SET memory_limit = ?", (config.run.duckdb_memory,))
    # no result here depends on the order of rows, and keeping it holds them in memory in
    # large CREATE TABLE ... AS (DuckDB's advice for bounded memory)
    connection.exec_driver_sql("SET preserve_insertion_order = false")


_UNITS = {"KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
          "KiB": 2.0**10, "MiB": 2.0**20, "GiB": 2.0**30, "TiB": 2.0**40}  # fmt: skip
_RESTING = 256 * 2**20  # DuckDB's cap while Python does the heavy work, in bytes


def _bytes(setting: str) -> float:
    """``[run] duckdb_memory`` (checked by the configuration: a number and a unit) in bytes."""
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B)\s*", setting)
    assert found is not None  # the configuration's pattern
    return float(found.group(1)) * _UNITS[found.group(2)]


@contextlib.contextmanager
def duckdb_resting(connection: sa.Connection, config: JobConfig) -> Iterator[None]:
    """DuckDB's buffers given back while Python does the heavy work (the fits, the scoring).

    Once a stage has filled them, DuckDB keeps its buffers up to ``[run] duckdb_memory``, so the
    process held DuckDB's cap and Python's peak at once. A lowered cap evicts them at once (a
    temporary table's to DuckDB's spill files) and their memory goes back to the system; the
    cap is 256MiB (or ``duckdb_memory`` if lower) inside, and ``duckdb_memory`` again after. A
    failure inside leaves the cap low: the run's connection goes with it.
    """
    if connection.dialect.name != "duckdb":
        yield
        return
    resting = min(_RESTING, _bytes(config.run.duckdb_memory))
    connection.exec_driver_sql("SET memory_limit = ?", (f"{int(resting) // 1024}KiB",))
    yield
    connection.exec_driver_sql("SET memory_limit = ?", (config.run.duckdb_memory,))


def _sections(config: JobConfig) -> dict[str, Any]:
    return {"source.transactions": config.source.transactions,
            "source.customers": config.source.customers,
            "value.cost_to_serve": config.value.cost_to_serve,
            "value.marketing_cost": config.value.marketing_cost}  # fmt: skip


def reads_files(config: JobConfig) -> list[str]:
    """The keys of the sections read in the database that name a ``file``."""
    return [key for key, section in _sections(config).items()
            if getattr(section, "file", None) is not None]  # fmt: skip


class _CreateView(sa.sql.expression.Executable, sa.sql.expression.ClauseElement):
    """``CREATE VIEW <name> AS <select>``, which SQLAlchemy 2.0 lacks.

    A view cannot hold bound parameters, so the select's values (the file's path, the CSV
    options) are rendered as literals by the dialect's own quoting.
    """

    inherit_cache = False

    def __init__(self, name: str, select: sa.Select[Any]) -> None:
        self.name = name
        self.select = select


@compiles(_CreateView)
def _create_view(element: _CreateView, compiler: SQLCompiler, **kw: Any) -> str:
    name = compiler.preparer.quote(element.name)
    return f"CREATE VIEW {name} AS {compiler.process(element.select, literal_binds=True, **kw)}"


def _option(name: str, value: object) -> sa.ColumnElement[bool]:
    """A named argument of a DuckDB table function: ``name = value``."""
    return sa.literal_column(name) == sa.literal(value)


def _reader(path: Path, config: JobConfig) -> sa.FromClause:
    """``read_parquet`` of a file or folder, or ``read_csv`` of a file with every column as text."""
    if path.is_dir():
        files = sa.literal(str(path / "**" / "*.parquet"))
        return sa.func.read_parquet(files, _option("hive_partitioning", True)).alias("file_rows")
    if path.suffix.lower() in _PARQUET_SUFFIXES:
        return sa.func.read_parquet(sa.literal(str(path))).alias("file_rows")
    source = config.source
    return sa.func.read_csv(
        sa.literal(str(path)), _option("all_varchar", True), _option("header", True),
        _option("delim", source.delimiter), _option("auto_detect", True),
    ).alias("file_rows")  # fmt: skip


def _number(text: sa.ColumnElement[Any], config: JobConfig) -> sa.ColumnElement[Any]:
    """A number written as text with the configured decimal mark and thousands separator."""
    if config.source.thousands is not None:
        text = sa.func.replace(text, config.source.thousands, "")
    if config.source.decimal != ".":
        text = sa.func.replace(text, config.source.decimal, ".")
    return sa.try_cast(sa.func.trim(text), sa.Double)


def _flag(text: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    cleaned = sa.func.lower(sa.func.trim(text))
    return sa.case((cleaned.in_(_TRUE), sa.true()), (cleaned.in_(_FALSE), sa.false()),
                   else_=sa.null())  # fmt: skip


def _typed(key: str, section: Any, config: JobConfig) -> dict[str, str]:
    """``{column: kind}`` of the columns a CSV file's section is read for (text by default)."""
    if key == "source.transactions":
        kinds = {section.customer_id: "text", section.timestamp: "timestamp",
                 section.amount: "number"}  # fmt: skip
        kinds |= {name: "text" for name in (section.order_id, section.category, section.channel,
                                             section.segment) if name is not None}  # fmt: skip
        kinds |= {name: "flag" for name in (section.is_return, config.segments.promotion)
                  if name is not None}  # fmt: skip
        return kinds
    if key == "source.customers":
        kinds = {section.customer_id: "text"}
        kinds |= {name: "text" for name in (section.segment, section.channel) if name is not None}
        if section.acquisition_cost is not None:
            kinds[section.acquisition_cost] = "number"
        return kinds
    return {section.customer_id: "text", section.cost: "number"}


def _view_select(
    connection: sa.Connection, key: str, section: Any, config: JobConfig
) -> sa.Select[Any]:
    """The file's rows; a CSV file's wanted columns typed, its missing ones named."""
    path = Path(section.file)
    if not path.exists():
        raise SchemaError(f"[{key}] file {str(path)!r} does not exist")
    rows = _reader(path, config)
    everything: sa.Select[Any] = sa.select(sa.literal_column("*")).select_from(rows)
    if path.is_dir() or path.suffix.lower() in _PARQUET_SUFFIXES:
        return everything
    available = list(connection.execute(everything.limit(0)).keys())
    kinds = _typed(key, section, config)
    missing = [name for name in kinds if name not in available]
    if missing:
        raise SchemaError(f"[{key}]: column(s) {missing} not found in file {path.name!r}; it has "
                          f"{available}. Map the right names in [{key}]")  # fmt: skip
    typed = (_typed_column(name, kind, config).label(name) for name, kind in kinds.items())
    return sa.select(*typed).select_from(rows)


def _typed_column(name: str, kind: str, config: JobConfig) -> sa.ColumnElement[Any]:
    text: sa.ColumnElement[Any] = sa.column(name)
    if kind == "number":
        return _number(text, config)
    if kind == "timestamp":
        return sa.try_cast(sa.func.trim(text), sa.DateTime)
    if kind == "flag":
        return _flag(text)
    return text


def _create(connection: sa.Connection, name: str, statement: sa.Select[Any]) -> None:
    """A view over a Parquet source; a CSV file's typed rows copied once into a table.

    Validation scans its source several times, and a view would parse the CSV text each time
    (at 1M customers, 52 s of validation against 6 s on a table).
    """
    names = list(statement.selected_columns.keys())
    if names == ["*"]:
        connection.execute(_CreateView(name, statement))
        return
    copy_rows(connection, sa.table(name, *(sa.column(column) for column in names)), statement)


def _viewed(config: JobConfig) -> JobConfig:
    """The configuration with each file section reading its view (``table``), no schema."""
    source, value = config.source, config.value
    sections = _sections(config)
    renamed = {key: sections[key].model_copy(update={"file": None, "table": _VIEWS[key]})
               for key in reads_files(config)}  # fmt: skip
    source = source.model_copy(update={
        "schema_name": None,
        "transactions": renamed.get("source.transactions", source.transactions),
        "customers": renamed.get("source.customers", source.customers)})  # fmt: skip
    value = value.model_copy(update={
        "cost_to_serve": renamed.get("value.cost_to_serve", value.cost_to_serve),
        "marketing_cost": renamed.get("value.marketing_cost", value.marketing_cost)})  # fmt: skip
    return config.model_copy(update={"source": source, "value": value})


@contextlib.contextmanager
def file_views(config: JobConfig) -> Iterator[FileViews | None]:
    """A scratch DuckDB with a view per file the run reads in the database (None: no file).

    The folder and its database go when the run ends.
    """
    keys = reads_files(config)
    if not keys:
        yield None
        return
    sections = _sections(config)
    with tempfile.TemporaryDirectory(prefix="cvalue-files-") as folder:
        url = f"duckdb:///{Path(folder) / 'files.duckdb'}"
        with engine_for(url) as engine, engine.begin() as connection:
            bound_duckdb(connection, config)
            for key in keys:
                _create(connection, _VIEWS[key], _view_select(connection, key, sections[key],
                                                              config))  # fmt: skip
        yield FileViews(url, _viewed(config))
