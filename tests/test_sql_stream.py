"""The summary kept as a query: chunks, patterns and holdout patterns equal the whole-base paths."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from cvalue import calibration_holdout, compress, rfm_summary, sql_rfm_summary, sql_summary_chunks
from cvalue.io import connection_to
from cvalue.io.sql_stream import summary_query

END = pd.Timestamp("2024-06-30")


def random_log(seed: int, n_rows: int = 3_000, n_customers: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    start, end = pd.Timestamp("2022-01-01").value, (END + pd.Timedelta(hours=23)).value
    log = pd.DataFrame(
        {
            "customer_id": rng.integers(1, n_customers, n_rows),
            "timestamp": pd.to_datetime(rng.integers(start, end, n_rows)).as_unit("us"),
            "amount": rng.integers(1, 300, n_rows).astype(np.float64),
            "is_return": rng.random(n_rows) < 0.05,
        }
    )
    # a few customers first seen on the observation end: T = 0
    newest = pd.DataFrame(
        {
            "customer_id": [n_customers + 1, n_customers + 2],
            "timestamp": [END, END + pd.Timedelta(hours=5)],
            "amount": [10.0, 20.0],
            "is_return": [False, False],
        }
    )
    return pd.concat([log, newest], ignore_index=True)


@pytest.fixture(scope="module")
def log() -> pd.DataFrame:
    return random_log(11)


@pytest.mark.parametrize("chunk_size", [1, 97, 100_000])
def test_chunks_hold_every_customer_once_as_the_whole_summary(
    engine: sa.Engine,
    load_table: Callable[[sa.Engine, pd.DataFrame], str],
    log: pd.DataFrame,
    chunk_size: int,
) -> None:
    name = load_table(engine, log)
    whole = sql_rfm_summary(engine, table=name, observation_end=END, unit="week")
    chunks = list(
        sql_summary_chunks(
            engine, table=name, observation_end=END, unit="week", chunk_size=chunk_size
        )
    )
    assert all(chunk.attrs["unit"] == "week" for chunk in chunks)
    together = pd.concat(chunks).sort_index()
    pd.testing.assert_frame_equal(together, whole, check_exact=True)
    pandas = rfm_summary(log, observation_end=END, unit="week")
    pd.testing.assert_frame_equal(together, pandas, check_exact=True, check_index_type=False)


@pytest.mark.parametrize(("unit", "grain"), [("week", "day"), ("month", "month"), ("day", "week")])
def test_patterns_are_the_compressed_summary_without_the_newest_customers(
    engine: sa.Engine,
    load_table: Callable[[sa.Engine, pd.DataFrame], str],
    log: pd.DataFrame,
    unit: str,
    grain: str,
) -> None:
    name = load_table(engine, log)
    pandas = rfm_summary(log, observation_end=END, unit=unit, grain=grain)
    scorable = pandas[pandas["T"] > 0]
    compressed = compress(scorable)
    expected = compressed.patterns.assign(weight=compressed.weights)
    expected = expected.sort_values(["frequency", "recency", "T"], ignore_index=True)
    with connection_to(engine) as connection:
        query = summary_query(connection, table=name, observation_end=END, unit=unit, grain=grain)
        patterns = query.patterns(connection)
        too_new = query.too_new(connection)
    assert patterns.attrs["unit"] == unit
    assert_own_arrays(patterns)
    pd.testing.assert_frame_equal(
        patterns[["frequency", "recency", "T", "weight"]],
        expected[["frequency", "recency", "T", "weight"]],
        check_exact=True,
    )
    newest = pandas.index[pandas["T"] <= 0]
    assert len(newest) >= 2  # the two added on the last day, and more by month
    assert too_new.equals(newest)


def test_holdout_patterns_are_the_grouped_split(
    engine: sa.Engine, load_table: Callable[[sa.Engine, pd.DataFrame], str], log: pd.DataFrame
) -> None:
    name = load_table(engine, log)
    calibration_end = pd.Timestamp("2023-12-31")
    split = calibration_holdout(
        log, calibration_end=calibration_end, observation_end=END, unit="week"
    )
    split = split[split["T"] > 0]
    keys = ["frequency", "recency", "T", "frequency_holdout", "duration_holdout"]
    expected = split.groupby(keys).size().rename("weight").reset_index()
    with connection_to(engine) as connection:
        query = summary_query(connection, table=name, observation_end=END, unit="week")
        patterns, n_new = query.holdout_patterns(connection, calibration_end)
    pd.testing.assert_frame_equal(
        patterns[[*keys, "weight"]].sort_values(keys, ignore_index=True),
        expected.sort_values(keys, ignore_index=True),
        check_exact=True,
        check_dtype=False,
    )
    assert n_new == split.attrs["n_new_in_holdout"]
    assert_own_arrays(patterns)


def assert_own_arrays(frame: pd.DataFrame) -> None:
    """Each column holds its own memory: a view of the driver's block of whole numbers would
    keep the whole block alive with the table (all its columns, for as long as the fit)."""
    for column in frame:
        values = frame[column].to_numpy()
        root = values
        while isinstance(root.base, np.ndarray):
            root = root.base
        assert root.nbytes == values.nbytes, column


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), chunk_size=st.integers(1, 300))
def test_chunking_never_changes_a_customers_row(seed: int, chunk_size: int) -> None:
    log = random_log(seed, n_rows=500, n_customers=120)
    engine = sa.create_engine("duckdb:///:memory:")
    log.to_sql("transactions", engine, index=False)
    chunks = list(
        sql_summary_chunks(
            engine, table="transactions", observation_end=END, unit="day", chunk_size=chunk_size
        )
    )
    together = pd.concat(chunks).sort_index()
    assert together.index.is_unique
    pandas = rfm_summary(log, observation_end=END, unit="day")
    pd.testing.assert_frame_equal(together, pandas, check_exact=True, check_index_type=False)
