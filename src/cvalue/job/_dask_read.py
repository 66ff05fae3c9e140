"""The job on Dask, its first stage: the tables read on the workers and the transactions validated.

A table comes from Parquet files (``file``), read by ``dask.dataframe.read_parquet``, or from the
source database (``table``, or the transactions' ``query``), read by ranges of its customer id
column: the client asks the database for the range edges (the ids' tiles, ``ntile``) and each
worker reads its ranges through SQLAlchemy Core, as the in-memory job reads the whole table. A
range holds its customers whole, so the transactions read by ranges need no shuffle by customer;
the rows without a customer id are a range of their own.

The transactions are validated partition by partition, each customer's rows in one partition.
The one rule that spans customers, an order id on several rows, is then completed across the
partitions: the order ids each partition holds are counted over the cluster, and the clean rows
of an order id that two partitions hold are rejected, as the in-memory job rejects them.
"""

from __future__ import annotations

import functools
import importlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pandas as pd
import sqlalchemy as sa

from cvalue.config import JobConfig
from cvalue.errors import (
    ConfigError,
    DataQualityError,
    EmptyExtractError,
    MissingColumnsError,
    SchemaError,
)
from cvalue.io import connection_to, engine_for
from cvalue.io.schema import Columns
from cvalue.io.sources import read_transactions
from cvalue.io.sqlkit import table_columns
from cvalue.io.validate import RULES, ValidationReport, validate_transactions
from cvalue.job._read import (
    _extra_columns,
    _in_config_terms,
    _transactions_query,
    _with_flags,
    mapped_columns,
)

if TYPE_CHECKING:
    from dask.dataframe import DataFrame as DaskFrame

__all__ = ["read_section", "validated"]

_ROWS_PER_PARTITION = 2_000_000  # transactions per partition at the most
_SAMPLE_ROWS = 1_000  # rows read in the client for the partitions' columns and types
_ORDER_RULE = next(rule for rule in RULES if rule.reason == "duplicate_order_id")

Reader = Callable[[sa.Engine, sa.Select[Any]], pd.DataFrame]


def _module(name: str) -> Any:  # dask's API is not typed for mypy --strict: it stays behind this
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise ConfigError(
            '[run] engine = "dask" needs Dask and its distributed scheduler: '
            'pip install "cvalue[dask]"'
        ) from exc


def _parts(frame: DaskFrame) -> list[Any]:
    """The frame's partitions as delayed pandas frames (Dask's API is untyped here)."""
    parts: list[Any] = frame.to_delayed()  # type: ignore[no-untyped-call]
    return parts


def _computed(frame: DaskFrame) -> pd.DataFrame:
    """A (small) Dask frame gathered into pandas on the client."""
    rows: pd.DataFrame = frame.compute()  # type: ignore[no-untyped-call]
    return rows


# --- Parquet files ----------------------------------------------------------------------------


def _parquet(path: Path, columns: Mapping[str, str], *, key: str) -> DaskFrame:
    """The mapped columns of Parquet files, renamed to the job's names (``{ours: theirs}``)."""
    dd = _module("dask.dataframe")
    try:
        found = dd.read_parquet(str(path))
    except (OSError, ValueError) as exc:
        raise SchemaError(
            f"[{key}]: {str(path)!r} could not be read as Parquet ({exc}); name a Parquet "
            "file, a folder of them or a glob"
        ) from None
    missing = sorted(set(columns.values()) - set(found.columns))
    if missing:
        raise SchemaError(
            f"[{key}]: column(s) {missing} not found in {str(path)!r}; it has "
            f"{list(found.columns)}. Map the right names in [{key}]"
        )
    selected: DaskFrame = found[list(dict.fromkeys(columns.values()))]
    renamed: DaskFrame = selected.rename(columns={theirs: ours for ours, theirs in columns.items()})
    return renamed


# --- database tables, by ranges of customer ids ---------------------------------------------------


@dataclass(frozen=True)
class _Ranges:
    """A database table or query, read by ranges of its customer id column (``key``).

    It travels to the workers, which open the database themselves: the URL goes with it.
    """

    url: str
    table: str | None
    query: str | None
    schema: str | None
    columns: tuple[tuple[str, str], ...]  # (ours, theirs): the names read and given
    key: str

    def source(self) -> sa.FromClause:
        """The table, or the configured query as a subquery, with the columns read."""
        names: list[sa.ColumnClause[Any]] = [
            sa.column(name) for name in dict.fromkeys([*self.theirs(), self.key])
        ]
        if self.query is not None:  # the text is the user's own query, run as written
            return sa.text(self.query).columns(*names).subquery("configured_query")
        return sa.table(str(self.table), *names, schema=self.schema)

    def theirs(self) -> list[str]:
        return [theirs for _, theirs in self.columns]

    def select(self, source: sa.FromClause | None = None) -> sa.Select[Any]:
        """The columns read, under the names given, from ``source`` (default: a new one)."""
        source = self.source() if source is None else source
        return sa.select(*(source.c[theirs].label(ours) for ours, theirs in self.columns))

    def within(self, lower: object, upper: object, *, is_missing: bool) -> sa.Select[Any]:
        """The rows whose id is in ``(lower, upper]`` (``None``: open), or is missing."""
        source = self.source()
        key = source.c[self.key]
        statement = self.select(source)
        if is_missing:
            return statement.where(key.is_(None))
        statement = statement.where(key.is_not(None))
        if lower is not None:
            statement = statement.where(key > lower)
        if upper is not None:
            statement = statement.where(key <= upper)
        return statement

    def edges(self, connection: sa.Connection, n_ranges: int) -> list[object]:
        """The largest id of each of ``n_ranges`` tiles of the distinct ids, the last left out."""
        key = self.source().c[self.key]
        ids = sa.select(key.label("id")).where(key.is_not(None)).distinct().subquery("ids")
        tile = sa.func.ntile(n_ranges).over(order_by=ids.c.id).label("tile")
        tiles = sa.select(ids.c.id, tile).subquery("tiles")
        largest = sa.select(sa.func.max(tiles.c.id)).group_by(tiles.c.tile).order_by(tiles.c.tile)
        return list(connection.execute(largest).scalars())[:-1]


def _read_range(ranges: _Ranges, reader: Reader, meta: pd.DataFrame,
                bounds: tuple[object, object, bool]) -> pd.DataFrame:  # fmt: skip
    """One range of rows, read on a worker, with the sample's column types where it lacks them."""
    lower, upper, is_missing = bounds
    with engine_for(ranges.url, read_only=True) as engine:
        rows = reader(engine, ranges.within(lower, upper, is_missing=is_missing))
    if len(rows) == 0:  # no row to infer a type from: the sample's types
        return meta
    return rows


def _labelled(engine: sa.Engine, statement: sa.Select[Any]) -> pd.DataFrame:
    """A customers or cost table's rows, read as the in-memory job reads them."""
    with connection_to(engine) as connection:
        return pd.read_sql(statement, connection)


def _transactions(columns: Columns, extra: tuple[str, ...], engine: sa.Engine,
                  statement: sa.Select[Any]) -> pd.DataFrame:  # fmt: skip
    """Transactions under their role names, read as the in-memory job reads them."""
    return read_transactions(engine, query=statement, columns=columns, extra_columns=extra)


@dataclass(frozen=True)
class _DatabaseRead:
    """The ranges' tasks, the sample of their rows, and how many rows they must give."""

    parts: list[Any]
    sample: pd.DataFrame
    n_rows: int


def _n_ranges(config: JobConfig, client: Any, n_rows: int) -> int:
    workers = len(client.nthreads())
    return max(config.run.dask_workers, workers, math.ceil(n_rows / _ROWS_PER_PARTITION))


def _database_read(
    config: JobConfig, client: Any, ranges: _Ranges, reader: Reader, *, key: str
) -> _DatabaseRead:
    """Delayed reads of the ranges; the sample and the row count come from the client's query."""
    with engine_for(ranges.url, read_only=True) as engine:
        with engine.connect() as connection:
            statement = ranges.select()
            counted = sa.select(sa.func.count()).select_from(statement.subquery("counted"))
            n_rows = int(connection.execute(counted).scalar_one())
            edges = ranges.edges(connection, _n_ranges(config, client, n_rows))
        sample = reader(engine, statement.limit(_SAMPLE_ROWS))
    meta = sample.iloc[:0]
    bounds = [(lower, upper, False) for lower, upper in zip([None, *edges], [*edges, None],
                                                            strict=True)]  # fmt: skip
    delayed = _module("dask").delayed
    parts = [delayed(_read_range)(ranges, reader, meta, bound)
             for bound in [(None, None, True), *bounds]]  # fmt: skip
    return _DatabaseRead(parts, sample, n_rows)


def _check_columns(ranges: _Ranges, schema: str | None, *, key: str) -> None:
    """The mapped columns are in the table, as the in-memory job checks them."""
    with connection_to(ranges.url) as connection:
        mapped_columns(connection, str(ranges.table), ranges.theirs(), schema, key=key)


def _check_transactions(config: JobConfig, url: str, columns: Columns) -> None:
    """The mapped columns are in the table or query, named as the in-memory job names them."""
    section = config.source.transactions
    names = [*columns.mapping().values(), *_extra_columns(config)]
    try:
        if section.query is not None:
            with engine_for(url, read_only=True) as engine:
                _transactions_query(config, engine, columns)
            return
        with connection_to(url) as connection:
            available = table_columns(connection, str(section.table), config.source.schema_name)
    except MissingColumnsError as exc:
        raise _in_config_terms(exc) from None
    roles = {name: role for role, name in columns.mapping().items()}
    missing = {name: roles.get(name, name) for name in names if name not in available}
    if missing:
        where = f"table {section.table!r}"
        raise _in_config_terms(MissingColumnsError(missing, where, list(available), ""))


def read_section(
    config: JobConfig,
    client: Any,
    environ: Mapping[str, str] | None,
    section: object,
    columns: Mapping[str, str],
    *,
    key: str,
) -> DaskFrame:
    """A customers or cost section's table or Parquet file as a Dask frame (``{ours: theirs}``)."""
    file = getattr(section, "file", None)
    if file is not None:
        return _parquet(file, columns, key=key)
    ranges = _Ranges(config.source_url(environ), str(getattr(section, "table", "")), None,
                     config.source.schema_name, tuple(columns.items()),
                     columns["customer_id"])  # fmt: skip
    _check_columns(ranges, config.source.schema_name, key=key)
    read = _database_read(config, client, ranges, _labelled, key=key)
    frame: DaskFrame = _module("dask.dataframe").from_delayed(read.parts, meta=read.sample.iloc[:0])
    return frame


# --- the transactions ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Raw:
    """The transactions' partitions (each customer whole in one), as validation takes them."""

    parts: list[Any]
    sample: pd.DataFrame
    columns: Columns
    n_rows: int | None  # from the database: the rows the partitions must add up to


def _raw_parquet(config: JobConfig) -> _Raw:
    section = config.source.transactions
    columns = section.columns()
    assert section.file is not None  # the caller's choice
    names = [*columns.mapping().values(), *_extra_columns(config)]
    log = _parquet(section.file, {name: name for name in names}, key="source.transactions")
    wanted = max(config.run.dask_workers, math.ceil(len(log) / _ROWS_PER_PARTITION))
    if log.npartitions < wanted:  # a large file read as a few partitions: each worker gets some
        log = log.repartition(npartitions=wanted)
    sample = _first_rows(log)
    shuffled = log.shuffle(on=columns.customer_id, shuffle_method="tasks")
    return _Raw(_parts(shuffled), sample, columns, None)


def _raw_database(config: JobConfig, client: Any, environ: Mapping[str, str] | None) -> _Raw:
    """The transactions by ranges of customer ids: each range holds its customers whole."""
    section = config.source.transactions
    columns = section.columns()
    names = list(dict.fromkeys([*columns.mapping().values(), *_extra_columns(config)]))
    url = config.source_url(environ)
    _check_transactions(config, url, columns)
    ranges = _Ranges(url, section.table, section.query, config.source.schema_name,
                     tuple((name, name) for name in names), columns.customer_id)  # fmt: skip
    reader = functools.partial(_transactions, columns, tuple(_extra_columns(config)))
    read = _database_read(config, client, ranges, reader, key="source.transactions")
    if len(read.sample) == 0:
        raise DataQualityError(
            "[source.transactions]: the table or query has no rows; name the table (or write "
            "the query) that holds the transactions"
        )
    return _Raw(read.parts, read.sample, columns.canonical(), read.n_rows)


def _first_rows(log: DaskFrame) -> pd.DataFrame:
    """The first rows of the first non-empty partition: the clean rows' columns and types."""
    for part in _parts(log):
        rows: pd.DataFrame = part.compute()
        if len(rows):
            return rows.iloc[:_SAMPLE_ROWS]
    raise DataQualityError("the transactions' Parquet files have no rows")


def _order_ids(rows: pd.DataFrame, columns: Columns) -> pd.DataFrame:
    """The distinct order ids of a partition's rows, as given (missing ones left out)."""
    name = cast("str", columns.order_id)
    return pd.DataFrame({"order_id": rows[name].dropna().drop_duplicates().to_numpy()})


def _validate_part(
    rows: pd.DataFrame, columns: Columns, options: dict[str, Any], empty: pd.DataFrame
) -> tuple[pd.DataFrame, ValidationReport | None, pd.DataFrame | None]:
    """One partition validated: its clean rows, its report (none for an empty partition).

    With order ids, the partition's distinct order ids too.
    """
    orders = None if columns.order_id is None else _order_ids(rows, columns)
    if len(rows) == 0:
        return empty, None, orders
    try:
        checked = validate_transactions(rows, columns, **options)
    except EmptyExtractError as exc:  # every row of this partition rejected: counted, not fatal
        return empty, cast("ValidationReport", exc.report), orders
    return checked.clean, checked.report, orders


def _summed(reports: list[ValidationReport]) -> ValidationReport:
    """The partitions' reports as one: rows summed by reason, in the rules' order."""
    tables = [report.reasons for report in reports if len(report.reasons)]
    reasons = reports[0].reasons
    if tables:
        reasons = _in_rule_order(
            pd.concat(tables).groupby("reason", sort=False)
            .agg(column=("column", "first"), problem=("problem", "first"), rows=("rows", "sum"),
                 example=("example", "first"), fix=("fix", "first"))
            .reset_index()
        )  # fmt: skip
    return ValidationReport(
        n_rows=sum(report.n_rows for report in reports),
        n_clean=sum(report.n_clean for report in reports),
        n_rejected=sum(report.n_rejected for report in reports), reasons=reasons,
    )  # fmt: skip


def _in_rule_order(reasons: pd.DataFrame) -> pd.DataFrame:
    order = {rule.reason: number for number, rule in enumerate(RULES)}
    ordered = reasons.sort_values("reason", key=lambda names: names.map(order))
    return ordered.reset_index(drop=True)


def _repeated_orders(client: Any, orders: list[Any], meta: pd.DataFrame) -> list[object]:
    """The order ids that more than one partition holds (each partition counts an id once)."""
    frame = _module("dask.dataframe").from_delayed(orders, meta=meta)
    counts = frame["order_id"].value_counts(split_out=frame.npartitions)
    repeated: pd.Series = client.compute(counts[counts > 1]).result()
    return list(repeated.index)


def _with_repeated_orders(
    report: ValidationReport, rejected: pd.DataFrame, column: str
) -> ValidationReport:
    """The report with the clean rows rejected for an order id of another partition."""
    reasons = report.reasons
    if (reasons["reason"] == _ORDER_RULE.reason).any():
        added = reasons["rows"].where(reasons["reason"] != _ORDER_RULE.reason,
                                      reasons["rows"] + len(rejected))  # fmt: skip
        reasons = reasons.assign(rows=added)
    else:
        row = pd.DataFrame([{"reason": _ORDER_RULE.reason, "column": column,
                             "problem": _ORDER_RULE.problem, "rows": len(rejected),
                             "example": rejected.index[0], "fix": _ORDER_RULE.fix}])  # fmt: skip
        reasons = _in_rule_order(pd.concat([reasons, row], ignore_index=True))
    return ValidationReport(report.n_rows, report.n_clean - len(rejected),
                            report.n_rejected + len(rejected), reasons)  # fmt: skip


def _orders_across(
    client: Any, clean: DaskFrame, report: ValidationReport, orders: list[Any], raw: _Raw
) -> tuple[DaskFrame, ValidationReport]:
    """The order-id rule across partitions: an id that two partitions hold rejects its rows."""
    if raw.columns.order_id is None:
        return clean, report
    meta = pd.DataFrame({"order_id": raw.sample[raw.columns.order_id].iloc[:0]})
    repeated = _repeated_orders(client, orders, meta)
    if not repeated:
        return clean, report
    is_repeated = clean["order_id"].isin(repeated)
    rejected = _computed(clean[is_repeated])
    kept: DaskFrame = clean[~is_repeated]
    return kept, _with_repeated_orders(report, rejected, raw.columns.order_id)


def validated(
    config: JobConfig, client: Any, environ: Mapping[str, str] | None, end: pd.Timestamp | None
) -> tuple[DaskFrame, ValidationReport]:
    """The clean rows (persisted on the workers, each customer whole in one partition)."""
    raw = (_raw_parquet(config) if config.source.transactions.file is not None
           else _raw_database(config, client, environ))  # fmt: skip
    options: dict[str, Any] = {
        "observation_end": end, **config.source.number_options(),
        **config.source.transactions.date_options(),
    }  # fmt: skip
    empty = validate_transactions(raw.sample, raw.columns, **options).clean.iloc[:0]
    delayed = _module("dask").delayed
    # held on the workers until the order ids are counted: each partition read and checked once
    checked = client.persist([delayed(_validate_part, nout=3)(part, raw.columns, options, empty)
                              for part in raw.parts])  # fmt: skip
    clean = _module("dask.dataframe").from_delayed([part[0] for part in checked], meta=empty)
    clean, reports = client.persist(clean), client.compute([part[1] for part in checked])
    report = _summed([found for found in client.gather(reports) if found is not None])
    _check_read(raw, report, config.source.transactions.customer_id)
    clean, report = _orders_across(client, clean, report, [part[2] for part in checked], raw)
    if report.n_clean == 0:
        raise EmptyExtractError(
            f"no transaction passed validation: {report.message()}", pd.DataFrame(), report
        )
    flagged = clean.map_partitions(  # type: ignore[no-untyped-call]
        _with_flags, config, meta=_with_flags(empty, config)
    )
    return client.persist(flagged), report


def _check_read(raw: _Raw, report: ValidationReport, customer_id: str) -> None:
    """The ranges' rows add up to the table's: none missed or read twice by the ranges' edges."""
    if raw.n_rows is not None and report.n_rows != raw.n_rows:
        raise DataQualityError(
            f"[source.transactions]: the ranges of customer ids read {report.n_rows:,} rows of "
            f"{raw.n_rows:,}; the database orders the ids of {customer_id!r} "
            "inconsistently (mixed kinds of ids?). Store the ids as one type"
        )
