"""Validation in the database equals cvalue.validate_transactions on SQLite, DuckDB and PostgreSQL.

The pandas function runs on the same rows read back in :attr:`SqlValidated.ordered`'s order, so
that its examples (row positions) can be compared too: the reasons, counts, examples and the first
rule of every row, the clean rows and the rejected rows (streamed to a table and to files).
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

import cvalue as cv
from cvalue.errors import DataQualityError, EmptyExtractError, SchemaError
from cvalue.io import Columns, sql_validate_transactions, validate_transactions, write_rejected
from cvalue.io.sql import sql_rfm_summary
from cvalue.io.validate import RULES

MAX_DATE = "2024-06-30"
TYPES = {
    "customer_id": sa.Integer(), "timestamp": sa.DateTime(), "amount": sa.Float(),
    "is_return": sa.Boolean(), "order_id": sa.Integer(), "channel": sa.String(),
}  # fmt: skip


# --- helpers --------------------------------------------------------------------------------------


def store(engine: sa.Engine, frame: pd.DataFrame, **types: sa.types.TypeEngine[object]) -> str:
    name = f"v_{uuid.uuid4().hex[:12]}"
    dtype = {column: types.get(column, TYPES.get(column, sa.String())) for column in frame}
    frame.to_sql(name, engine, index=False, dtype=dtype)
    return name


def drop(engine: sa.Engine, name: str) -> None:
    sa.Table(name, sa.MetaData()).drop(engine)


def in_order(engine: sa.Engine, name: str) -> pd.DataFrame:
    """The table's rows in the documented order of the examples: every column, in table order."""
    with engine.connect() as connection:
        described = sa.inspect(connection).get_columns(name)
    table = sa.table(name, *(sa.column(column["name"], column["type"]) for column in described))
    return pd.read_sql(sa.select(table).order_by(*table.c), engine)


def outcome(function, *args, **kwargs):
    """``(report, clean, rejected)``; ``clean`` is None when nothing passes."""
    try:
        result = function(*args, **kwargs)
    except EmptyExtractError as exc:
        return exc.report, None, exc.rejected
    return result.report, result.clean, result.rejected


def canonical(frame: pd.DataFrame) -> pd.DataFrame:
    """Values comparable whatever the reader's dtypes (a column of None alone is one of objects):
    numbers as floats, flags as booleans, timestamps as datetimes, text as objects; sorted."""
    values = {}
    for name, column in frame.items():
        if pd.api.types.is_bool_dtype(column) or name == "is_return":
            values[name] = column.astype("boolean")
        elif name == "timestamp":
            values[name] = pd.to_datetime(column).dt.as_unit("us")  # all None: read as seconds
        elif name in {"channel", "rejection_reason", "rejection_column"}:
            values[name] = column.astype("object").where(column.notna(), None)
        else:
            values[name] = as_numbers(column)
    table = pd.DataFrame(values, columns=frame.columns)
    order = [name for name in table if name != "rejection_column"]
    return table.sort_values(order, na_position="last", kind="stable", ignore_index=True)


def as_numbers(column: pd.Series) -> pd.Series:
    """Numbers as floats (a reader gives None among integers as objects); text as it is."""
    try:
        return pd.to_numeric(column).astype("float64")
    except (ValueError, TypeError):
        return column.astype("object").where(column.notna(), None)


def read(engine: sa.Engine, select: sa.Select | None) -> pd.DataFrame | None:
    return None if select is None else pd.read_sql(select, engine)


def assert_same(engine: sa.Engine, name: str, columns: Columns, **options) -> None:
    """The SQL validation of table ``name`` equals the pandas one of its rows."""
    report, clean, rejected = outcome(
        sql_validate_transactions, engine, table=name, columns=columns, **options
    )
    frame = in_order(engine, name)
    expected = outcome(validate_transactions, frame, columns, **options)
    assert (report.n_rows, report.n_clean, report.n_rejected) == (
        expected[0].n_rows, expected[0].n_clean, expected[0].n_rejected,
    )  # fmt: skip
    pd.testing.assert_frame_equal(report.reasons, expected[0].reasons, check_dtype=False)
    if expected[1] is None:
        assert clean is None
    else:
        actual_clean = read(engine, clean)
        assert list(actual_clean.columns) == list(expected[1].columns)
        pd.testing.assert_frame_equal(canonical(actual_clean), canonical(expected[1]))
    actual_rejected = read(engine, rejected)
    assert list(actual_rejected.columns) == list(expected[2].columns)
    if len(expected[2]) == 0:  # no rows: nothing to compare but the columns (dtypes unknown)
        assert len(actual_rejected) == 0
    else:
        pd.testing.assert_frame_equal(canonical(actual_rejected), canonical(expected[2]))


# --- the property: messy extracts -----------------------------------------------------------------

GOOD_MOMENTS = [dt.datetime(2024, 1, 15, 9), dt.datetime(2024, 2, 10), dt.datetime(1970, 1, 1),
                dt.datetime(2024, 2, 29, 12), dt.datetime(2024, 3, 31, 23, 30)]  # fmt: skip
BAD_MOMENTS = [dt.datetime(1960, 5, 1), dt.datetime(1969, 12, 31, 23, 59), dt.datetime(2024, 4, 1),
               dt.datetime(2024, 6, 30, 23, 59, 59), dt.datetime(2024, 7, 1), None]  # fmt: skip


def pick(draw: st.DrawFn, good: list[object], bad: list[object]) -> object:
    """A bad value one time in four, so that most extracts keep some rows."""
    return draw(st.sampled_from(bad if draw(st.integers(0, 3)) == 3 else good))


@st.composite
def extracts(
    draw: st.DrawFn,
) -> tuple[pd.DataFrame, Columns, dict[str, sa.types.TypeEngine[object]]]:
    """Missing values, duplicates, negative amounts with and without the flag, dates off bounds."""
    is_text = draw(st.booleans())
    good_ids, bad_ids = (
        (["a", "B", "c", "d"], [" ", "", None]) if is_text else ([1, 2, 3, 4], [None])
    )
    has_flag, has_orders = draw(st.booleans()), draw(st.booleans())
    rows = []
    for _ in range(draw(st.integers(1, 12))):
        row = {
            "customer_id": pick(draw, good_ids, bad_ids),
            "timestamp": pick(draw, GOOD_MOMENTS, BAD_MOMENTS),
            "amount": pick(draw, [10.0, 2.5, 7.25, 0.0], [-4.0, None, math.inf, -math.inf]),
            "channel": draw(st.sampled_from(["web", "shop", None])),
        }
        if has_flag:
            row["is_return"] = pick(draw, [False, True], [None])
        if has_orders:
            row["order_id"] = pick(draw, list(range(1, 9)), [None])
        rows.append(row)
    for _ in range(draw(st.integers(0, 4))):  # exact repeats of earlier rows
        rows.append(dict(rows[draw(st.integers(0, len(rows) - 1))]))
    frame = pd.DataFrame(draw(st.permutations(rows)))
    for name in ("customer_id", "order_id"):
        if name in frame and (name == "order_id" or not is_text):
            frame[name] = frame[name].astype("Int64")
    columns = Columns(order_id="order_id" if has_orders else None,
                      is_return="is_return" if has_flag else None)  # fmt: skip
    types = {"customer_id": sa.String() if is_text else sa.Integer()}
    return frame, columns, types


@settings(max_examples=30, deadline=None, derandomize=True, database=None)
@given(
    extract=extracts(),
    min_date=st.sampled_from(["1970-01-01", None]),
    observation_end=st.sampled_from([None, "2024-03-31"]),
    duplicates=st.sampled_from(["reject", "keep"]),
)
def test_messy_extracts_equal_pandas(engine, extract, min_date, observation_end, duplicates):
    frame, columns, types = extract
    name = store(engine, frame, **types)
    try:
        assert_same(engine, name, columns, min_date=min_date, max_date=MAX_DATE,
                    observation_end=observation_end, duplicates=duplicates)  # fmt: skip
    finally:
        drop(engine, name)


# --- the property: duplicates among rows that share their order id, customer or time --------------

MOMENTS = [dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 1, 12), None]
REPEATING = {"customer_id": sa.Integer, "timestamp": sa.DateTime, "amount": sa.Float,
             "score": sa.Float, "channel": sa.String, "order_id": sa.Integer}  # fmt: skip


def missing_again(draw: st.DrawFn, value: float | None) -> float | None:
    """NaN for NULL or NULL for NaN, sometimes: the same missing value to pandas."""
    if (value is not None and not math.isnan(value)) or not draw(st.booleans()):
        return value
    return math.nan if value is None else None


@st.composite
def repeating_logs(draw: st.DrawFn) -> tuple[list[dict[str, object]], bool]:
    """Few values, so that different rows share order ids, customers and times (the buckets in
    which duplicates are looked for); repeats exact or with NaN for NULL."""
    has_orders = draw(st.booleans())
    rows = []
    for _ in range(draw(st.integers(1, 10))):
        row = {
            "customer_id": draw(st.sampled_from([1, 2, 2, None])),
            "timestamp": draw(st.sampled_from(MOMENTS)),
            "amount": draw(st.sampled_from([1.0, 2.0, 2.0, math.nan, None])),
            "score": draw(st.sampled_from([0.5, math.nan, None])),
            "channel": draw(st.sampled_from(["web", None])),
            "order_id": draw(st.sampled_from([1, 2, 3, None])) if has_orders else None,
        }
        rows.append(row)
    for _ in range(draw(st.integers(0, 5))):
        row = dict(rows[draw(st.integers(0, len(rows) - 1))])
        rows.append({**row, "amount": missing_again(draw, row["amount"]),
                     "score": missing_again(draw, row["score"])})  # fmt: skip
    return draw(st.permutations(rows)), has_orders


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(log=repeating_logs(), duplicates=st.sampled_from(["reject", "keep"]))
def test_duplicates_within_shared_buckets_equal_pandas(engine, log, duplicates):
    rows, has_orders = log
    name = f"v_{uuid.uuid4().hex[:12]}"
    kept = [sa.Column(column, kind) for column, kind in REPEATING.items()
            if has_orders or column != "order_id"]  # fmt: skip
    table = sa.Table(name, sa.MetaData(), *kept)
    table.create(engine)
    try:
        with engine.begin() as connection:
            names = set(table.c.keys())
            connection.execute(table.insert(), [{key: row[key] for key in names} for row in rows])
        columns = Columns(order_id="order_id" if has_orders else None)
        assert_same(engine, name, columns, max_date=MAX_DATE, duplicates=duplicates)
    finally:
        table.drop(engine)


# --- fixed extracts -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def messy() -> pd.DataFrame:
    """Every typed rule broken at least once, the first rule decided between several."""
    moments = pd.to_datetime([
        "2024-01-02", "2024-01-03", "2024-01-04", "2024-01-04", "1960-01-01", "2024-02-01",
        "2024-03-01", "2030-01-01", "2024-05-01 10:00:00", "2024-05-02", "2024-05-03", None,
        "2024-05-04", "2024-05-05", "2024-05-06", "2024-05-06", "2024-05-07",
    ], format="ISO8601")  # fmt: skip
    return pd.DataFrame({
        "customer_id": pd.array([1, None, 2, 2, 3, 3, 4, 5, 6, 6, 7, 8, 9, 9, 10, 10, 11],
                                dtype="Int64"),
        "timestamp": moments,
        "amount": [10.0, 5.0, -3.0, -3.0, 1.0, np.inf, None, 4.0, -2.0, 8.0, 1.0, 1.0, 3.0, 3.0,
                   2.0, 2.0, 1.0],
        "is_return": [False, False, False, False, False, False, False, False, True, None,
                      False, False, False, False, False, False, False],
        "order_id": pd.array([1, 2, 3, 3, 4, 5, 6, 7, 8, 9, 9, 12, 10, 10, 11, 11, None],
                             dtype="Int64"),
        "channel": ["web"] * 17,
    })  # fmt: skip


COLUMNS = Columns(order_id="order_id", is_return="is_return")


def test_messy_extract_breaks_every_typed_rule(engine, messy):
    name = store(engine, messy)
    try:
        assert_same(engine, name, COLUMNS, max_date=MAX_DATE)
        result = sql_validate_transactions(engine, table=name, columns=COLUMNS, max_date=MAX_DATE)
        assert set(result.report.reasons["reason"]) == {
            "missing_customer_id", "missing_timestamp", "before_min_date", "after_max_date",
            "missing_amount", "non_numeric_amount", "negative_amount", "invalid_return_flag",
            "missing_order_id", "duplicate_row", "duplicate_order_id",
        }  # fmt: skip
        pd.testing.assert_frame_equal(read(engine, result.ordered), in_order(engine, name))
    finally:
        drop(engine, name)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_rejected_rows_stream_to_a_file(engine, messy, tmp_path, suffix):
    name = store(engine, messy)
    try:
        result = sql_validate_transactions(engine, table=name, columns=COLUMNS, max_date=MAX_DATE)
        path = tmp_path / f"rejected{suffix}"
        written = write_rejected(engine, result.rejected, path=path, chunk_rows=3)
        expected = validate_transactions(in_order(engine, name), COLUMNS, max_date=MAX_DATE)
        assert written == len(expected.rejected) == result.report.n_rejected
        if suffix == ".csv":
            actual = pd.read_csv(path, parse_dates=["timestamp"])
            expected_rows = pd.read_csv(
                _as_csv(expected.rejected, tmp_path), parse_dates=["timestamp"]
            )
        else:
            actual, expected_rows = pd.read_parquet(path), expected.rejected
        pd.testing.assert_frame_equal(canonical(actual), canonical(expected_rows))
        with pytest.raises(SchemaError, match="exists; pass replace=True"):
            write_rejected(engine, result.rejected, path=path)
    finally:
        drop(engine, name)


def _as_csv(frame: pd.DataFrame, folder: Path) -> Path:
    path = folder / "expected.csv"
    frame.to_csv(path, index=False)
    return path


def test_rejected_rows_copy_to_a_table(engine, messy):
    name = store(engine, messy)
    target = f"{name}_rejected"
    try:
        result = sql_validate_transactions(engine, table=name, columns=COLUMNS, max_date=MAX_DATE)
        assert write_rejected(engine, result.rejected, table=target) == result.report.n_rejected
        expected = validate_transactions(in_order(engine, name), COLUMNS, max_date=MAX_DATE)
        copied = in_order(engine, target)
        pd.testing.assert_frame_equal(canonical(copied), canonical(expected.rejected))
        with pytest.raises(SchemaError, match="exists; pass replace=True"):
            write_rejected(engine, result.rejected, table=target)
        assert write_rejected(engine, result.rejected, table=target, replace=True) == len(copied)
    finally:
        drop(engine, target)
        drop(engine, name)


def test_the_summary_reads_the_clean_rows(engine, messy):
    name = store(engine, messy)
    try:
        result = sql_validate_transactions(engine, table=name, columns=COLUMNS, max_date=MAX_DATE)
        expected = validate_transactions(in_order(engine, name), COLUMNS, max_date=MAX_DATE)
        options = {"observation_end": "2024-06-30", "unit": "week"}
        summary = sql_rfm_summary(engine, query=result.clean, **options)
        # the ids were read as floats (the log has a missing one): whole numbers again, exactly
        clean = expected.clean.astype({"customer_id": "int64"})
        pd.testing.assert_frame_equal(summary, cv.rfm_summary(clean, **options))
    finally:
        drop(engine, name)


@pytest.mark.parametrize("engine", ["duckdb", "postgresql"], indirect=True)  # SQLite has no NaN
def test_nan_amounts_are_missing(engine):
    name = f"v_{uuid.uuid4().hex[:12]}"
    table = sa.Table(
        name, sa.MetaData(), sa.Column("customer_id", sa.Integer),
        sa.Column("timestamp", sa.DateTime), sa.Column("amount", sa.Float),
    )  # fmt: skip
    rows = [(1, dt.datetime(2024, 1, 1), math.nan), (1, dt.datetime(2024, 1, 1), None),
            (2, dt.datetime(2024, 1, 2), 1.0), (3, dt.datetime(2024, 1, 2), math.inf)]  # fmt: skip
    table.create(engine)
    try:
        with engine.begin() as connection:
            connection.execute(
                table.insert(), [dict(zip(table.c.keys(), row, strict=True)) for row in rows]
            )
        assert_same(engine, name, Columns(), max_date=MAX_DATE)
        result = sql_validate_transactions(engine, table=name, max_date=MAX_DATE)
        counts = dict(
            zip(result.report.reasons["reason"], result.report.reasons["rows"], strict=True)
        )
        assert counts == {"missing_amount": 2, "non_numeric_amount": 1}
    finally:
        table.drop(engine)


def test_a_date_column_as_customer_id_is_mixed(engine):
    frame = pd.DataFrame({"customer_id": [dt.date(2024, 1, 1), None],
                          "timestamp": pd.to_datetime(["2024-01-01", "2024-01-02"]),
                          "amount": [1.0, 2.0]})  # fmt: skip
    name = store(engine, frame, customer_id=sa.Date())
    try:
        with pytest.raises(EmptyExtractError) as caught:
            sql_validate_transactions(engine, table=name, max_date=MAX_DATE)
        reasons = caught.value.report.reasons
        assert reasons["reason"].tolist() == ["missing_customer_id", "mixed_customer_id"]
    finally:
        drop(engine, name)


def test_sqlite_text_dates_that_are_no_dates_are_unparsable():
    engine = sa.create_engine("sqlite://")
    frame = pd.DataFrame({"customer_id": [1, 2], "timestamp": ["2024-01-05", "31/02/2024"],
                          "amount": [1.0, 2.0]})  # fmt: skip
    frame.to_sql("log", engine, index=False)
    result = sql_validate_transactions(engine, table="log", max_date=MAX_DATE)
    assert result.report.reasons[["reason", "rows", "example"]].to_numpy().tolist() == [
        ["unparsable_timestamp", 1, 1]
    ]
    assert pd.read_sql(result.clean, engine)["customer_id"].tolist() == [1]


# --- refusals -------------------------------------------------------------------------------------


# SQLite keeps dates as text: its text dates are validated (tested above), not refused
@pytest.mark.parametrize("engine", ["duckdb", "postgresql"], indirect=True)
def test_text_amounts_and_timestamps_are_refused_naming_the_column(engine):
    frame = pd.DataFrame({"customer_id": [1], "timestamp": ["2024-01-01"], "amount": ["1,50"]})
    name = store(engine, frame, timestamp=sa.String(), amount=sa.String())
    try:
        with pytest.raises(SchemaError) as caught:
            sql_validate_transactions(engine, table=name)
        message = str(caught.value)
        for phrase in ("'timestamp'", "'amount'", "cvalue.validate_transactions", "sa.cast"):
            assert phrase in message
    finally:
        drop(engine, name)


def test_missing_columns_empty_tables_and_strict(engine, messy):
    name = store(engine, messy)
    empty = store(engine, messy.iloc[:0])
    try:
        with pytest.raises(SchemaError, match=r"'paid_at' \(as timestamp\) not found"):
            sql_validate_transactions(engine, table=name, columns=Columns(timestamp="paid_at"))
        with pytest.raises(SchemaError, match="order_by names"):
            sql_validate_transactions(engine, table=name, order_by=["nope"])
        with pytest.raises(DataQualityError, match="has no rows"):
            sql_validate_transactions(engine, table=empty, columns=COLUMNS)
        with pytest.raises(DataQualityError, match="rows rejected by") as caught:
            sql_validate_transactions(engine, table=name, columns=COLUMNS, max_date=MAX_DATE,
                                      strict=True)  # fmt: skip
        assert not isinstance(caught.value, EmptyExtractError)
        with pytest.raises(SchemaError, match="exactly one"):
            write_rejected(engine, sa.select(sa.literal(1)))
    finally:
        drop(engine, name)
        drop(engine, empty)


def test_order_by_moves_the_examples(engine, messy):
    name = store(engine, messy.assign(line=np.arange(len(messy))[::-1]))
    try:
        options = {"columns": COLUMNS, "max_date": MAX_DATE}
        result = sql_validate_transactions(engine, table=name, order_by=["line"], **options)
        rows = pd.read_sql(result.ordered, engine)
        assert rows["line"].tolist() == sorted(rows["line"])
        expected = validate_transactions(rows, COLUMNS, max_date=MAX_DATE)
        pd.testing.assert_frame_equal(
            result.report.reasons, expected.report.reasons, check_dtype=False
        )
    finally:
        drop(engine, name)


@pytest.mark.parametrize("attack", ['x"; DROP TABLE t; --', "x'); DROP TABLE t; --"])
def test_hostile_names_are_quoted(engine, messy, attack):
    frame = messy.rename(columns={"amount": attack})
    name = store(engine, frame, **{attack: sa.Float()})
    try:
        columns = Columns(amount=attack, order_id="order_id", is_return="is_return")
        assert_same(engine, name, columns, max_date=MAX_DATE)
    finally:
        drop(engine, name)


def test_every_reason_is_a_rule():
    assert {rule.reason for rule in RULES} >= {
        "missing_customer_id", "duplicate_row", "duplicate_order_id", "unparsable_timestamp",
    }  # fmt: skip


def test_keeping_duplicates_without_order_ids_is_a_plain_where(engine, messy):
    name = store(engine, messy.drop(columns="order_id"))
    try:
        columns = Columns(is_return="is_return")
        options = {"max_date": MAX_DATE, "duplicates": "keep"}
        result = sql_validate_transactions(engine, table=name, columns=columns, **options)
        assert "OVER" not in str(result.clean.compile(engine)).upper()
        assert_same(engine, name, columns, **options)
        rejected = sql_validate_transactions(engine, table=name, columns=columns, max_date=MAX_DATE)
        assert "OVER" in str(rejected.clean.compile(engine)).upper()
    finally:
        drop(engine, name)


def test_a_query_source_equals_pandas_on_its_rows(engine, messy):
    name = store(engine, messy)
    try:
        table = sa.table(name, *(sa.column(column, TYPES[column]) for column in messy))
        kept = sa.or_(table.c.amount.is_(None), table.c.amount != 8.0)
        query = sa.select(table).where(table.c.channel == "web", kept)
        result = sql_validate_transactions(engine, query=query, columns=COLUMNS, max_date=MAX_DATE)
        rows = pd.read_sql(result.ordered, engine)
        assert len(rows) == len(messy) - 1
        expected = validate_transactions(rows, COLUMNS, max_date=MAX_DATE)
        pd.testing.assert_frame_equal(
            result.report.reasons, expected.report.reasons, check_dtype=False
        )
        pd.testing.assert_frame_equal(
            canonical(pd.read_sql(result.clean, engine)), canonical(expected.clean)
        )
    finally:
        drop(engine, name)


@pytest.mark.parametrize("engine", ["postgresql"], indirect=True)
def test_postgresql_timestamptz_days_are_utc_days(engine):
    name = f"v_{uuid.uuid4().hex[:12]}"
    table = sa.Table(
        name, sa.MetaData(), sa.Column("customer_id", sa.Integer),
        sa.Column("timestamp", sa.DateTime(timezone=True)), sa.Column("amount", sa.Float),
    )  # fmt: skip
    berlin = dt.timezone(dt.timedelta(hours=2))
    moments = [
        dt.datetime(2024, 6, 30, 23, 30, tzinfo=dt.UTC),  # the last day
        dt.datetime(2024, 7, 1, 0, 30, tzinfo=berlin),  # 22:30 UTC on the last day
        dt.datetime(2024, 7, 1, 0, 30, tzinfo=dt.UTC),  # after it
    ]
    table.create(engine)
    # a session in another zone: its calendar days are not UTC's
    tokyo = sa.create_engine(engine.url, connect_args={"options": "-c timezone=Asia/Tokyo"})
    try:
        with engine.begin() as connection:
            connection.execute(table.insert(), [
                {"customer_id": number, "timestamp": moment, "amount": 1.0}
                for number, moment in enumerate(moments)
            ])  # fmt: skip
        result = sql_validate_transactions(tokyo, table=name, max_date=MAX_DATE)
        assert result.report.reasons[["reason", "rows"]].to_numpy().tolist() == [
            ["after_max_date", 1]
        ]
        assert_same(tokyo, name, Columns(), max_date=MAX_DATE)
    finally:
        tokyo.dispose()
        table.drop(engine)


def test_blank_text_ids_are_missing_customers_but_not_missing_orders(engine):
    frame = pd.DataFrame({
        "customer_id": ["a", " \t", "", "b", "c"],
        "timestamp": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04",
                                     "2024-01-05"]),
        "amount": [1.0, 2.0, 3.0, 4.0, 5.0],
        "order_id": ["o1", "o2", "o3", " ", None],
    })  # fmt: skip
    name = store(engine, frame, customer_id=sa.String(), order_id=sa.String())
    try:
        columns = Columns(order_id="order_id")
        assert_same(engine, name, columns, max_date=MAX_DATE)
        result = sql_validate_transactions(engine, table=name, columns=columns, max_date=MAX_DATE)
        counts = result.report.reasons[["reason", "rows"]].to_numpy().tolist()
        assert counts == [["missing_customer_id", 2], ["missing_order_id", 1]]
    finally:
        drop(engine, name)


def test_the_clean_rows_of_two_validations_share_a_statement(engine, messy):
    first, second = store(engine, messy), store(engine, messy)
    try:
        results = [
            sql_validate_transactions(engine, table=name, columns=COLUMNS, max_date=MAX_DATE)
            for name in (first, second)
        ]
        both = sa.union_all(*(result.clean for result in results)).subquery()
        with engine.connect() as connection:
            counted = connection.execute(sa.select(sa.func.count()).select_from(both))
            assert counted.scalar_one() == 2 * results[0].report.n_clean
    finally:
        drop(engine, first)
        drop(engine, second)
