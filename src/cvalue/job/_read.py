"""The job's first stage: read the configured tables or files and validate the transactions.

Tables come from the source database (through SQLAlchemy, projected to the mapped columns in the
database) or from CSV and Parquet files named by ``file``; either way a missing table, file or
column is a configuration problem named with its config key. A configured ``query`` is asked
for its columns first (``LIMIT 0``), so that a wrong column name is reported as such, not as a
database failure.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.types import TypeEngine

from cvalue.config import CostConfig, JobConfig, SourceConfig
from cvalue.errors import ConfigError, MissingColumnsError, SchemaError
from cvalue.io import connection_to, engine_for
from cvalue.io.parsing import parse_flags
from cvalue.io.schema import Columns
from cvalue.io.sources import read_table, read_transactions
from cvalue.io.sqlkit import table_columns
from cvalue.io.validate import validate_transactions
from cvalue.results import Loaded
from cvalue.units import as_timestamp

__all__ = ["load", "observation_end_of", "source_engine"]


# --- one table, from the database or a file ---------------------------------------------------


def mapped_columns(
    connection: sa.Connection, table: str, names: Iterable[str], schema: str | None, *, key: str
) -> dict[str, TypeEngine[object]]:
    """The columns of ``table`` and their types, each mapped one (``names``) checked there.

    A missing one raises SchemaError naming the configuration's section ``key``.
    """
    available = table_columns(connection, table, schema)
    missing = sorted(set(names) - set(available))
    if missing:
        raise SchemaError(
            f"[{key}]: column(s) {missing} not found in table {table!r}; it has "
            f"{sorted(available)}. Map the right names in [{key}]"
        )
    return available


def _read_database_table(
    engine: sa.Engine, table: str, columns: Mapping[str, str], schema: str | None, *, key: str
) -> pd.DataFrame:
    """Columns of a table, renamed from the database's names to the job's (``{ours: theirs}``)."""
    with connection_to(engine) as connection:
        mapped_columns(connection, table, columns.values(), schema, key=key)
        source = sa.table(table, *(sa.column(name) for name in columns.values()), schema=schema)
        query = sa.select(*(source.c[theirs].label(ours) for ours, theirs in columns.items()))
        return pd.read_sql(query, connection)


def _read_file_table(
    path: Path, columns: Mapping[str, str], source: SourceConfig, *, key: str
) -> pd.DataFrame:
    """Columns of a CSV or Parquet file, renamed to the job's names (``{ours: theirs}``)."""
    try:
        return read_table(
            path, {theirs: ours for ours, theirs in columns.items()}, sep=source.delimiter,
            encoding=source.encoding, decimal=source.decimal, thousands=source.thousands,
        )  # fmt: skip
    except MissingColumnsError as exc:
        raise SchemaError(
            f"[{key}]: column(s) {list(exc.missing)} not found in {exc.where}; it has "
            f"{exc.available}. Map the right names in [{key}]"
        ) from None


def _read_section(
    config: JobConfig,
    engine: sa.Engine | None,
    section: object,
    columns: Mapping[str, str],
    *,
    key: str,
) -> pd.DataFrame:
    """A configured table (``table``) or file (``file``) of ``section``."""
    file = getattr(section, "file", None)
    if file is not None:
        return _read_file_table(file, columns, config.source, key=key)
    if engine is None:  # pragma: no cover - the config's check asks for url_env first
        raise ConfigError(f"[{key}] reads a table, but [source] has no url_env")
    table = str(getattr(section, "table", ""))
    return _read_database_table(engine, table, columns, config.source.schema_name, key=key)


def _present(mapping: Mapping[str, str | None]) -> dict[str, str]:
    return {ours: theirs for ours, theirs in mapping.items() if theirs is not None}


def _customers(config: JobConfig, engine: sa.Engine | None) -> pd.DataFrame | None:
    section = config.source.customers
    if section is None:
        return None
    wanted = _present({
        "customer_id": section.customer_id, "segment": section.segment,
        "channel": section.channel, "acquisition_cost": section.acquisition_cost,
    })  # fmt: skip
    risk_column = config.value.discount.column
    if config.value.discount.measure == "column" and risk_column is not None:
        wanted.setdefault(risk_column, risk_column)
    for covariate in config.models.covariates:  # a mapped name reads its mapped column
        wanted.setdefault(covariate, covariate)
    table = _read_section(config, engine, section, wanted, key="source.customers")
    return table.set_index("customer_id")


def _surveys(config: JobConfig, engine: sa.Engine | None) -> pd.DataFrame | None:
    section = config.source.surveys
    if section is None:
        return None
    wanted = _present({
        "customer_id": section.customer_id, "timestamp": section.timestamp, "nps": section.nps,
        "csat": section.csat, "ces": section.ces,
    })  # fmt: skip
    return _read_section(config, engine, section, wanted, key="source.surveys")


def _optional_tables(config: JobConfig, engine: sa.Engine | None) -> dict[str, pd.DataFrame | None]:
    recorded: dict[str, pd.DataFrame | None] = {}
    for name in ("cost_to_serve", "marketing_cost"):
        costs: CostConfig | None = getattr(config.value, name)
        recorded[name] = None
        if costs is not None and (costs.table is not None or costs.file is not None):
            wanted = {"customer_id": costs.customer_id, "cost": costs.cost}
            recorded[name] = _read_section(config, engine, costs, wanted, key=f"value.{name}")
    return {"customers": _customers(config, engine), "surveys": _surveys(config, engine),
            "service_costs": recorded["cost_to_serve"],
            "marketing_costs": recorded["marketing_cost"]}  # fmt: skip


# --- one kind of customer id in every table ------------------------------------------------------

_TABLE_KEYS = {
    "customers": "source.customers",
    "surveys": "source.surveys",
    "service_costs": "value.cost_to_serve",
    "marketing_costs": "value.marketing_cost",
}


def _is_text(values: pd.Series) -> bool:
    return values.dtype == object or pd.api.types.is_string_dtype(values.dtype)


def _as_kind_of(ids: pd.Series, like: pd.Series) -> pd.Series | None:
    """``ids`` as values of ``like``'s kind (text or whole numbers) when nothing is lost.

    ``None`` when they cannot be: text ids such as '007' never become the number 7.
    """
    if _is_text(ids) == _is_text(like):
        return ids
    if _is_text(like):  # numbers as their digits: 7 -> '7'
        numbers = pd.to_numeric(ids, errors="coerce")
        whole = numbers.dropna()
        if not (whole == whole.round()).all():
            return None
        return numbers.astype("Int64").astype("string").astype(like.dtype)
    numbers = pd.to_numeric(ids, errors="coerce")
    is_given = ids.notna()
    if numbers[is_given].isna().any() or not (numbers == numbers.round())[is_given].all():
        return None
    digits = numbers[is_given].astype("Int64").astype("string")
    if not (digits == ids[is_given].astype("string").str.strip()).all():
        return None  # leading zeros, signs or spaces: not the same ids as numbers
    return numbers.astype(like.dtype) if is_given.all() else numbers


def _aligned(
    tables: dict[str, pd.DataFrame | None], customer_ids: pd.Series
) -> tuple[dict[str, pd.DataFrame | None], list[str]]:
    """The optional tables with ids of the transactions' kind, and notes on what did not match.

    A CSV export gives text ids and a Parquet or database table numbers: left apart, not one
    cost or survey answer would match a customer, and nothing would say so.
    """
    known = pd.Index(customer_ids.unique())
    aligned, notes = dict(tables), []
    for name, table in tables.items():
        if table is None:
            continue
        in_index = table.index.name == "customer_id"
        ids = table.index.to_series() if in_index else table["customer_id"]
        converted = _as_kind_of(ids, customer_ids)
        if converted is not None and converted is not ids:
            values = converted.to_numpy()
            table = table.set_axis(pd.Index(values, name="customer_id")) if in_index else (
                table.assign(customer_id=values))  # fmt: skip
            ids = converted
            notes.append(f"[{_TABLE_KEYS[name]}]: customer ids read as the transactions' "
                         f"({customer_ids.dtype}) to match them")  # fmt: skip
        unmatched = ~ids.isin(known)
        if unmatched.any():
            example = ids[unmatched].iloc[0]
            notes.append(
                f"[{_TABLE_KEYS[name]}]: {int(unmatched.sum()):,} of {len(ids):,} rows name "
                f"customers without a kept transaction (e.g. {example!r}); they are not used"
            )
        aligned[name] = table
    return aligned, notes


# --- the transactions ---------------------------------------------------------------------------


def _extra_columns(config: JobConfig) -> list[str]:
    promotion = config.segments.promotion
    return [] if promotion is None else [promotion]


def _query_columns(engine: sa.Engine, query: str) -> list[str]:
    """The columns the configured query returns, from running it with ``LIMIT 0``."""
    probe: sa.Select[Any] = sa.select(sa.literal_column("*")).select_from(
        sa.text(query).columns().subquery("configured_query")
    )
    with connection_to(engine) as connection:
        return list(connection.execute(probe.limit(0)).keys())


def _transactions_query(
    config: JobConfig, engine: sa.Engine, columns: Columns
) -> sa.Select[tuple[object, ...]]:
    """The configured query as a subquery with the mapped columns (the text is the user's own).

    The query's own columns are read first, so that a mapped column it does not return is
    named as a mapping problem (before the database is asked for it).
    """
    query = str(config.source.transactions.query)
    names = list(dict.fromkeys([*columns.mapping().values(), *_extra_columns(config)]))
    available = _query_columns(engine, query)
    missing = {name: role for role, name in columns.mapping().items() if name not in available}
    missing |= {name: name for name in _extra_columns(config) if name not in available}
    if missing:
        raise MissingColumnsError(missing, "the query", available, "")
    textual = sa.text(query).columns(*(sa.column(name) for name in names))
    return sa.select(textual.subquery("configured_query"))


def _in_config_terms(exc: MissingColumnsError) -> SchemaError:
    """The missing columns as the configuration file names them: keys of [source.transactions]."""
    keys = ", ".join(f"{role} = {name!r}" for name, role in exc.missing.items())
    return SchemaError(
        f"[source.transactions] maps {keys}, but {exc.where} has no such column(s); it has "
        f"{exc.available}. Correct the mapping under [source.transactions]"
    )


def _raw_transactions(config: JobConfig, engine: sa.Engine | None) -> pd.DataFrame:
    section, source = config.source.transactions, config.source
    columns = section.columns()
    extra = _extra_columns(config)
    try:
        if section.file is not None:
            return read_transactions(
                section.file, columns=columns, extra_columns=extra, sep=source.delimiter,
                encoding=source.encoding,
            )  # fmt: skip
        assert engine is not None  # the config's check asks for url_env when a table is read
        query = None if section.table else _transactions_query(config, engine, columns)
        return read_transactions(
            engine, table=section.table, query=query, schema=source.schema_name, columns=columns,
            extra_columns=extra,
        )  # fmt: skip
    except MissingColumnsError as exc:
        raise _in_config_terms(exc) from None


_LABEL_COLUMNS = ("category", "channel", "segment")


def _with_categories(transactions: pd.DataFrame) -> pd.DataFrame:
    """The label columns (category, channel, segment) as pandas categoricals.

    A few distinct labels repeat over millions of rows: one byte of code per row instead of a
    string each, which is most of the transaction log's memory.
    """
    is_text = pd.api.types.is_string_dtype
    labels = [name for name in _LABEL_COLUMNS if name in transactions]
    labels = [name for name in labels if is_text(transactions[name])]
    if not labels:
        return transactions
    return transactions.astype(dict.fromkeys(labels, "category"))


def _day(value: dt.date) -> dt.date:
    return value.date() if isinstance(value, dt.datetime) else value


def _with_flags(transactions: pd.DataFrame, config: JobConfig) -> pd.DataFrame:
    """The promotion column as booleans: databases without a boolean type (SQLite) hold 0/1.

    Values that are not true/false become missing, which profitability counts and names.
    """
    promotion = config.segments.promotion
    if promotion is None or promotion not in transactions:
        return transactions
    return transactions.assign(**{promotion: parse_flags(transactions[promotion])})


def observation_end_of(config: JobConfig, today: dt.date | None = None) -> pd.Timestamp | None:
    """The configured observation end (``None``: the last transaction's day).

    Raises ConfigError when it, or ``[source.transactions] max_date``, lies after ``today``:
    a customer's age T would count time not yet observed.
    """
    today = today or dt.date.today()
    end, latest = config.summary.observation_end, config.source.transactions.max_date
    for key, value in (("[summary] observation_end", end),
                       ("[source.transactions] max_date", latest)):  # fmt: skip
        if value is not None and _day(value) > today:
            raise ConfigError(
                f"{key} = {value} is in the future (today is {today}): the customers' ages "
                "would count time not yet observed. Set a past date, or leave it out (the "
                "default is the last transaction's day, and today for max_date)"
            )
    return None if end is None else as_timestamp(end)


@contextlib.contextmanager
def source_engine(
    config: JobConfig, environ: Mapping[str, str] | None
) -> Iterator[sa.Engine | None]:
    """The source database opened for reading, or ``None`` when every table is a file."""
    if not config.reads_database():
        yield None
        return
    with engine_for(config.source_url(environ), read_only=True) as engine:
        yield engine


def load(config: JobConfig, *, environ: Mapping[str, str] | None = None) -> Loaded:
    """Read the configured tables and validate the transactions."""
    end = observation_end_of(config)
    with source_engine(config, environ) as engine:
        raw = _raw_transactions(config, engine)
        tables = _optional_tables(config, engine)
    checked = validate_transactions(
        raw, observation_end=end, **config.source.number_options(),  # type: ignore[arg-type]
        **config.source.transactions.date_options(),  # type: ignore[arg-type]
    )  # fmt: skip
    del raw  # the validated rows replace it
    clean = _with_flags(_with_categories(checked.clean), config)
    observation_end = end if end is not None else clean["timestamp"].max().normalize()
    tables, notes = _aligned(tables, clean["customer_id"])
    return Loaded(
        transactions=clean, rejected=checked.rejected, report=checked.report,
        observation_end=observation_end, customers=tables["customers"],
        service_costs=tables["service_costs"], marketing_costs=tables["marketing_costs"],
        surveys=tables["surveys"],
        columns=Columns.detect(clean.columns), notes=tuple(notes),
    )  # fmt: skip
