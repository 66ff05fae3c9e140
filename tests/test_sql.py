"""SQL pushdown equals the pandas path on real SQLite, DuckDB and PostgreSQL.

Counts, recency, T and durations must be bit-identical. Monetary values are sums of floats, which
a database adds in its own order: they are exact when the amounts sum exactly (the hypothesis logs
use quarters) and within ``rtol=1e-12`` otherwise (CDNOW's cents).
"""

from __future__ import annotations

import datetime as dt
import socket
import uuid

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

import cvalue as cv
from cvalue.datasets import load_cdnow
from cvalue.errors import DatabaseError, DataQualityError, QueryError, SchemaError
from cvalue.io.sql import sql_calibration_holdout, sql_pattern_table, sql_rfm_summary

PERIODS = ("day", "week", "month", "quarter", "year")
COLUMNS = ("customer_id", "timestamp", "amount")


# --- helpers --------------------------------------------------------------------------------------


def assert_same(actual: pd.DataFrame, expected: pd.DataFrame, *, exact_values: bool) -> None:
    """Everything bit-identical except monetary values, which may be within rtol=1e-12."""
    values = [name for name in expected if name.startswith("monetary_value")]
    pd.testing.assert_frame_equal(
        actual.drop(columns=values), expected.drop(columns=values), check_exact=True
    )
    assert list(actual.columns) == list(expected.columns)
    for name in values:
        assert actual[name].dtype == np.float64
        if exact_values:
            np.testing.assert_array_equal(actual[name], expected[name])
        else:
            np.testing.assert_allclose(actual[name], expected[name], rtol=1e-12, atol=0)
    assert actual.attrs == expected.attrs


def patterns_of(summary: pd.DataFrame) -> pd.DataFrame:
    compressed = cv.compress(summary)
    return compressed.patterns.assign(weight=compressed.weights)


def query_of(
    name: str, timestamp_type: type[sa.types.TypeEngine[object]] = sa.DateTime, *extra: str
):
    table = sa.table(
        name, sa.column("customer_id"), sa.column("timestamp", timestamp_type()),
        sa.column("amount"), *(sa.column(column) for column in extra),
    )  # fmt: skip
    return table, sa.select(table)


def drop(engine: sa.Engine, name: str) -> None:
    sa.Table(name, sa.MetaData()).drop(engine)


def count_rows(engine: sa.Engine, name: str) -> int:
    with engine.connect() as connection:
        return connection.execute(
            sa.select(sa.func.count()).select_from(sa.table(name))
        ).scalar_one()


def random_log(seed: int, n_rows: int = 160, n_customers: int = 25) -> pd.DataFrame:
    """Dates from 1969 (negative day numbers) over the 1972 leap day; amounts in quarters."""
    rng = np.random.default_rng(seed)
    seconds = rng.integers(0, 4 * 365 * 86400, n_rows)
    seconds[: n_rows // 4] = seconds[n_rows // 4 : n_rows // 2] + 60  # same-day repeats
    return pd.DataFrame({
        "customer_id": rng.integers(0, n_customers, n_rows),
        "timestamp": pd.Timestamp("1968-09-14 07:30") + pd.to_timedelta(seconds, unit="s"),
        "amount": rng.integers(-400, 4000, n_rows) / 4,
    })  # fmt: skip


# --- CDNOW (Fader, Hardie & Lee 2005: 2,357 customers, 39-week calibration) -----------------------


@pytest.fixture(scope="session")
def cdnow() -> pd.DataFrame:
    return load_cdnow().transactions.loc[:, list(COLUMNS)]


@pytest.fixture(scope="session")
def cdnow_tables(engine, load_table, cdnow) -> dict[str, str]:
    """CDNOW stored with TIMESTAMP and with DATE timestamps (text in SQLite)."""
    as_dates = cdnow.assign(timestamp=cdnow["timestamp"].dt.date)
    return {"timestamp": load_table(engine, cdnow), "date": load_table(engine, as_dates)}


def cdnow_calibration_query(name: str, storage: str) -> sa.Select:
    if storage == "timestamp":
        table, query = query_of(name, sa.DateTime)
        return query.where(table.c.timestamp < dt.datetime(1997, 10, 1))
    table, query = query_of(name, sa.Date)
    return query.where(table.c.timestamp <= dt.date(1997, 9, 30))


@pytest.mark.parametrize("storage", ["timestamp", "date"])
def test_cdnow_calibration_summary_from_a_filtered_select(engine, cdnow_tables, cdnow, storage):
    query = cdnow_calibration_query(cdnow_tables[storage], storage)
    summary = sql_rfm_summary(engine, query=query, observation_end="1997-09-30", unit="week")
    assert len(summary) == 2357
    assert summary["frequency"].sum() == 2457
    assert (summary["frequency"] == 0).sum() == 1411
    calibration = cdnow[cdnow["timestamp"] <= "1997-09-30"]
    expected = cv.rfm_summary(calibration, observation_end="1997-09-30", unit="week", grain="day")
    assert_same(summary, expected, exact_values=False)


@pytest.mark.parametrize("storage", ["timestamp", "date"])
def test_cdnow_calibration_holdout(engine, cdnow_tables, cdnow, storage):
    ends = {"calibration_end": "1997-09-30", "observation_end": "1998-06-30"}
    split = sql_calibration_holdout(engine, table=cdnow_tables[storage], **ends)
    expected = cv.calibration_holdout(cdnow, **ends)
    assert_same(split, expected, exact_values=False)
    assert split["duration_holdout"].iloc[0] == 39.0


@pytest.mark.parametrize("storage", ["timestamp", "date"])
def test_cdnow_pattern_table(engine, cdnow_tables, cdnow, storage):
    query = cdnow_calibration_query(cdnow_tables[storage], storage)
    patterns = sql_pattern_table(engine, query=query, observation_end="1997-09-30")
    calibration = cdnow[cdnow["timestamp"] <= "1997-09-30"]
    expected = patterns_of(cv.rfm_summary(calibration, observation_end="1997-09-30"))
    pd.testing.assert_frame_equal(patterns, expected, check_exact=True)
    assert patterns["weight"].sum() == 2357


# --- every grain and unit on a fixed log, then random logs ----------------------------------------


@pytest.fixture(scope="session")
def grid_log() -> pd.DataFrame:
    return random_log(seed=20261127)


@pytest.fixture(scope="session")
def grid_table(engine, load_table, grid_log) -> str:
    return load_table(engine, grid_log)


@pytest.mark.parametrize("unit", PERIODS)
@pytest.mark.parametrize("grain", PERIODS)
def test_every_grain_and_unit(engine, grid_table, grid_log, grain, unit):
    _, query = query_of(grid_table)
    options = {"unit": unit, "grain": grain}
    summary = sql_rfm_summary(engine, query=query, observation_end="1972-12-31", **options)
    expected = cv.rfm_summary(grid_log, observation_end="1972-12-31", **options)
    assert_same(summary, expected, exact_values=True)
    patterns = sql_pattern_table(engine, query=query, **options)
    pd.testing.assert_frame_equal(
        patterns, patterns_of(cv.rfm_summary(grid_log, **options)), check_exact=True
    )
    ends = {"calibration_end": "1970-02-27 18:00", "observation_end": "1972-09-01"}
    split = sql_calibration_holdout(engine, query=query, **ends, **options)
    assert_same(split, cv.calibration_holdout(grid_log, **ends, **options), exact_values=True)


@st.composite
def transaction_logs(draw: st.DrawFn) -> pd.DataFrame:
    """A few customers over ~2 years: same-day repeats, negative amounts, maybe returns."""
    start = draw(st.sampled_from([dt.datetime(1969, 3, 1), dt.datetime(1999, 12, 27, 6)]))
    ids = draw(st.sampled_from([[7, -2, 30, 4, 11], ["b", "A", "a10", "a9", "Z"]]))
    rows = []
    for customer in ids[: draw(st.integers(1, len(ids)))]:
        days = draw(st.lists(st.integers(0, 730), min_size=1, max_size=4))
        for _ in range(draw(st.integers(1, 6))):
            moment = dt.timedelta(
                days=draw(st.sampled_from(days)), seconds=draw(st.integers(0, 86399))
            )
            amount = draw(st.integers(-400, 4000)) / 4
            rows.append((customer, start + moment, amount, draw(st.integers(0, 5)) == 0))
    log = pd.DataFrame(rows, columns=[*COLUMNS, "is_return"])
    return log if draw(st.booleans()) else log.drop(columns="is_return")


def outcome(function, *args, **kwargs):
    """The result, or the class of the cvalue error raised (no purchases, empty calibration)."""
    try:
        return function(*args, **kwargs)
    except (SchemaError, DataQualityError) as exc:
        return type(exc)


def assert_same_outcome(actual, expected) -> None:
    if isinstance(expected, type):
        assert actual is expected
    elif "weight" in expected:
        pd.testing.assert_frame_equal(actual, expected, check_exact=True)
    else:
        assert_same(actual, expected, exact_values=True)


@settings(max_examples=25, deadline=None, derandomize=True, database=None)
@given(
    log=transaction_logs(),
    grain=st.sampled_from(PERIODS),
    unit=st.sampled_from(PERIODS),
    as_dates=st.booleans(),
    extra_days=st.none() | st.integers(0, 90),
    calibration_offset=st.integers(-3, 800),
)
def test_random_logs_equal_pandas(
    engine, load_table, log, grain, unit, as_dates, extra_days, calibration_offset
):
    if as_dates:
        log = log.assign(timestamp=log["timestamp"].dt.normalize())
    stored = log.assign(timestamp=log["timestamp"].dt.date) if as_dates else log
    name = load_table(engine, stored)
    try:
        flags = ["is_return"] if "is_return" in log else []
        _, query = query_of(name, sa.Date if as_dates else sa.DateTime, *flags)
        last = log["timestamp"].max().normalize()
        end = None if extra_days is None else last + pd.Timedelta(days=extra_days, hours=13)
        options = {"unit": unit, "grain": grain, "observation_end": end}
        expected = outcome(cv.rfm_summary, log, **options)
        assert_same_outcome(outcome(sql_rfm_summary, engine, query=query, **options), expected)
        patterns = outcome(sql_pattern_table, engine, query=query, **options)
        assert_same_outcome(
            patterns, expected if isinstance(expected, type) else patterns_of(expected)
        )
        ends = {
            "calibration_end": log["timestamp"].min() + pd.Timedelta(days=calibration_offset),
            "observation_end": last + pd.Timedelta(days=45),
        }
        split = outcome(
            sql_calibration_holdout, engine, query=query, unit=unit, grain=grain, **ends
        )
        expected = outcome(cv.calibration_holdout, log, unit=unit, grain=grain, **ends)
        assert_same_outcome(split, expected)
    finally:
        drop(engine, name)


# --- sources: tables, mapped columns, schemas, frequency-only logs --------------------------------


def test_table_with_mapped_columns_and_a_url_source(engine, load_table, grid_log):
    mapped = grid_log.rename(columns={"customer_id": "Client", "timestamp": "paid at"})
    name = load_table(engine, mapped)
    columns = cv.Columns(customer_id="Client", timestamp="paid at", amount="amount")
    url = engine.url.render_as_string(hide_password=False)
    summary = sql_rfm_summary(url, table=name, columns=columns, grain="week", unit="month")
    expected = cv.rfm_summary(mapped, columns=columns, grain="week", unit="month")
    assert_same(summary, expected, exact_values=True)
    assert summary.index.name == "Client"


def test_log_without_amounts_has_no_monetary_value(engine, load_table, grid_log):
    log = grid_log.drop(columns="amount")
    name = load_table(engine, log)
    summary = sql_rfm_summary(engine, table=name, grain="month", unit="month")
    assert_same(summary, cv.rfm_summary(log, grain="month", unit="month"), exact_values=True)
    assert "monetary_value" not in summary
    ends = {"calibration_end": "1970-06-30", "observation_end": "1972-12-31"}
    split = sql_calibration_holdout(engine, table=name, **ends)
    assert_same(split, cv.calibration_holdout(log, **ends), exact_values=True)


def test_returns_are_left_out(engine, load_table, grid_log):
    log = grid_log.assign(is_return=np.arange(len(grid_log)) % 5 == 0)
    name = load_table(engine, log)
    summary = sql_rfm_summary(engine, table=name, grain="week", unit="week")
    assert_same(summary, cv.rfm_summary(log, grain="week", unit="week"), exact_values=True)
    ends = {"calibration_end": "1970-06-30", "observation_end": "1972-12-31"}
    split = sql_calibration_holdout(engine, table=name, **ends)
    assert_same(split, cv.calibration_holdout(log, **ends), exact_values=True)
    as_plain_column = cv.Columns(is_return=None)
    summary = sql_rfm_summary(engine, table=name, columns=as_plain_column)
    assert_same(summary, cv.rfm_summary(log, columns=as_plain_column), exact_values=True)
    with_gaps = log.assign(is_return=log["is_return"].astype(object).where(log.index > 0))
    gaps = load_table(engine, with_gaps)
    with pytest.raises(SchemaError, match="'is_return' must be true/false without gaps"):
        sql_rfm_summary(engine, table=gaps)
    words = load_table(engine, log.assign(is_return=np.where(log["is_return"], "yes", "no")))
    with pytest.raises(SchemaError, match=r"'is_return' has SQL type .*not BOOLEAN"):
        sql_rfm_summary(engine, table=words)


def test_schema_argument(engine, grid_log):
    # SQLite's schemas are attached databases: use the main one; the others get a new schema
    schema = "main" if engine.dialect.name == "sqlite" else f"s_{uuid.uuid4().hex[:8]}"
    if schema != "main":
        with engine.begin() as connection:
            connection.execute(sa.schema.CreateSchema(schema))
    name = f"t_{uuid.uuid4().hex[:12]}"
    grid_log.to_sql(name, engine, schema=schema, index=False)
    summary = sql_rfm_summary(engine, table=name, schema=schema, grain="quarter")
    assert_same(summary, cv.rfm_summary(grid_log, grain="quarter"), exact_values=True)
    if schema != "main":
        with pytest.raises(SchemaError, match=rf"table '{name}' not found in the database"):
            sql_rfm_summary(engine, table=name)


def test_hostile_table_name_is_quoted(engine, grid_log):
    name = f'odd "name"; DROP TABLE x; -- {uuid.uuid4().hex[:6]}'
    grid_log.to_sql(name, engine, index=False)
    summary = sql_pattern_table(engine, table=name, grain="year", unit="day")
    expected = patterns_of(cv.rfm_summary(grid_log, grain="year", unit="day"))
    pd.testing.assert_frame_equal(summary, expected, check_exact=True)


# --- errors ---------------------------------------------------------------------------------------


def test_unknown_table_lists_the_tables(engine, load_table, grid_log):
    existing = load_table(engine, grid_log)
    with pytest.raises(SchemaError, match=rf"table 'no_such_table' not found.*'{existing}'"):
        sql_rfm_summary(engine, table="no_such_table")


def test_unknown_columns_list_the_columns(engine, grid_table):
    columns = cv.Columns(customer_id="client", timestamp="paid_at")
    message = (
        r"\['client', 'paid_at'\] not found in table .*\['customer_id', 'timestamp', 'amount'\]"
    )
    with pytest.raises(SchemaError, match=message):
        sql_rfm_summary(engine, table=grid_table, columns=columns)
    _, query = query_of(grid_table)
    with pytest.raises(SchemaError, match=r"\['client'\] not found in the query"):
        sql_pattern_table(engine, query=query, columns=cv.Columns(customer_id="client"))


@pytest.mark.parametrize(
    "attack",
    ["{victim}; DROP TABLE {victim}", '{victim}"; DROP TABLE {victim}; --',
     "{victim}'; DROP TABLE {victim}; --", "{victim}`; DROP TABLE {victim}"],
)  # fmt: skip
def test_injection_through_names_is_harmless(engine, load_table, grid_log, attack):
    victim = load_table(engine, grid_log)
    hostile = attack.format(victim=victim)
    with pytest.raises(SchemaError, match="not found"):
        sql_rfm_summary(engine, table=hostile)
    with pytest.raises(SchemaError, match="not found"):
        sql_rfm_summary(engine, table=victim, columns=cv.Columns(customer_id=hostile))
    with pytest.raises((SchemaError, DatabaseError)):
        sql_rfm_summary(engine, table=victim, schema=hostile)
    assert count_rows(engine, victim) == len(grid_log)


def test_a_query_of_a_missing_table_is_a_query_error(engine):
    # the statement's own fault: a QueryError (a DatabaseError not worth a retry)
    _, query = query_of(f"missing_{uuid.uuid4().hex[:8]}")
    with pytest.raises(
        QueryError, match=r"refused a statement: .*running it again will not"
    ) as caught:
        sql_rfm_summary(engine, query=query)
    assert isinstance(caught.value, DatabaseError)
    assert isinstance(caught.value.__cause__, sa.exc.SQLAlchemyError)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_unreachable_database_hides_the_password(engine, tmp_path):
    url = engine.url.set(password="s3cret-pw")
    if engine.dialect.name == "postgresql":
        url = url.set(host="127.0.0.1", port=closed_port())
    else:
        url = url.set(database=str(tmp_path / "no" / "such" / "folder" / "db"))
    with pytest.raises(DatabaseError, match="failed: ") as error:
        sql_rfm_summary(url.render_as_string(hide_password=False), table="transactions")
    assert "s3cret-pw" not in str(error.value)
    if engine.dialect.name == "postgresql":  # file URLs do not show a password at all
        assert f"{url.username}:***@127.0.0.1" in str(error.value)
    with pytest.raises(DatabaseError, match="not a database URL") as error:
        sql_rfm_summary("not a url: s3cret-pw", table="transactions")
    assert "s3cret-pw" not in str(error.value)
    assert error.value.__cause__ is None


def test_purchases_after_observation_end(engine, grid_table):
    with pytest.raises(DataQualityError, match=r"rows after observation_end"):
        sql_rfm_summary(engine, table=grid_table, observation_end="1970-01-01")


def test_missing_ids_empty_logs_and_bad_options(engine, load_table, grid_log):
    with_gaps = grid_log.astype({"customer_id": "float64"})
    with_gaps.loc[3, "customer_id"] = np.nan
    name = load_table(engine, with_gaps)
    with pytest.raises(DataQualityError, match=r"'customer_id' has missing customer ids in 1 of"):
        sql_rfm_summary(engine, table=name)
    every_problem = r"missing customer ids in 1 of 160 rows; .* has 15\d of 160 rows after"
    with pytest.raises(DataQualityError, match=every_problem):
        sql_rfm_summary(engine, table=name, observation_end="1969-01-01")
    empty = load_table(engine, grid_log.iloc[:0])
    with pytest.raises(DataQualityError, match="no purchases"):
        sql_pattern_table(engine, table=empty)
    with pytest.raises(SchemaError, match="must be before observation_end"):
        sql_calibration_holdout(
            engine, table=name, calibration_end="1972-01-01", observation_end="1971-01-01"
        )
    with pytest.raises(SchemaError, match="exactly one of table"):
        sql_rfm_summary(engine, table=name, query=query_of(name)[1])
    with pytest.raises(SchemaError, match="unknown time unit"):
        sql_rfm_summary(engine, table=name, unit="fortnight")
    with pytest.raises(SchemaError, match="observation_end 'soon' is not a date"):
        sql_rfm_summary(engine, table=name, observation_end="soon")


def test_timestamps_that_are_not_dates(engine, load_table):
    numbers = load_table(engine, pd.DataFrame({"customer_id": [1], "timestamp": [20240101]}))
    with pytest.raises(SchemaError, match=r"'timestamp' has SQL type .*not a date or timestamp"):
        sql_rfm_summary(engine, table=numbers)
    words = load_table(engine, pd.DataFrame({"customer_id": [1, 2], "timestamp": ["x", "y"]}))
    if engine.dialect.name == "sqlite":  # SQLite keeps dates as text: counted, then refused
        with pytest.raises(DataQualityError, match="unparsable timestamps in 2 of 2 rows"):
            sql_rfm_summary(engine, table=words)
    else:
        with pytest.raises(SchemaError, match="not a date or timestamp"):
            sql_rfm_summary(engine, table=words)
