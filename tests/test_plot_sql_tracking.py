"""The tracking table counted in the database equals the one counted in pandas."""

from __future__ import annotations

import pandas as pd
import pytest
import sqlalchemy as sa

import cvalue as cv
from cvalue.datasets import load_cdnow
from cvalue.errors import DataQualityError, SchemaError
from cvalue.io.sqlkit import resolve_relation
from cvalue.plot import tracking_table
from cvalue.plot.sql_tracking import (
    TrackingCounts,
    sql_tracking_counts,
    tracking_table_from_counts,
)
from cvalue.units import TimeUnit

CALIBRATION_END, OBSERVATION_END = "1997-09-30", "1998-06-30"  # 1998-06-30 is a Tuesday


@pytest.fixture(scope="module")
def cdnow() -> pd.DataFrame:
    log = load_cdnow().transactions
    # a return, which is no purchase: left out in pandas and in the database alike
    returned = log.iloc[[0]].assign(is_return=True)
    return pd.concat([log.assign(is_return=False), returned], ignore_index=True)


@pytest.fixture(scope="module")
def model(cdnow: pd.DataFrame) -> cv.BetaGeo:
    purchases = cdnow[~cdnow["is_return"]]
    split = cv.calibration_holdout(
        purchases, calibration_end=CALIBRATION_END, observation_end=OBSERVATION_END
    )
    return cv.BetaGeo().fit(split)


@pytest.fixture(scope="module")
def weekly_bgbb(cdnow: pd.DataFrame) -> cv.BetaGeoBetaBinom:
    purchases = cdnow[~cdnow["is_return"]]
    summary = cv.rfm_summary(purchases, observation_end=OBSERVATION_END, unit="week",
                             grain="week")  # fmt: skip
    summary = summary[summary["T"] > 0].rename(columns={"T": "n_periods"})
    return cv.BetaGeoBetaBinom().fit(summary)


def _counts(url: str, log: pd.DataFrame, grain: TimeUnit, calibration_end: str) -> TrackingCounts:
    engine = sa.create_engine(url)
    try:
        log.to_sql("transactions", engine, index=False)
        with engine.connect() as connection:
            relation = resolve_relation(connection, table="transactions", query=None, schema=None,
                                        columns=cv.Columns(is_return="is_return"))  # fmt: skip
            return sql_tracking_counts(connection, relation, calibration_end=calibration_end,
                                       observation_end=OBSERVATION_END, grain=grain)  # fmt: skip
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", ["duckdb", "sqlite", "postgresql"])
@pytest.mark.parametrize("period", ["week", "day", "month"])
def test_the_database_counts_give_the_pandas_table(
    crm_url, cdnow: pd.DataFrame, model: cv.BetaGeo, backend: str, period: str
) -> None:
    counts = _counts(crm_url(backend), cdnow, TimeUnit.DAY, CALIBRATION_END)
    expected = tracking_table(model, cdnow, calibration_end=CALIBRATION_END,
                              observation_end=OBSERVATION_END, period=period,
                              columns=cv.Columns(is_return="is_return"))  # fmt: skip
    table = tracking_table_from_counts(model, counts, calibration_end=CALIBRATION_END,
                                       observation_end=OBSERVATION_END, period=period)  # fmt: skip
    pd.testing.assert_frame_equal(table, expected, rtol=1e-12)
    # a day per first purchase and per repeat purchase, not a row per customer
    n_customers = cdnow["customer_id"].nunique()
    assert len(counts.births) < n_customers / 20
    assert int(counts.births.sum()) == int(
        (cdnow[~cdnow["is_return"]].groupby("customer_id")["timestamp"].min()
         <= pd.Timestamp(CALIBRATION_END)).sum()
    )  # fmt: skip


def test_a_discrete_time_model_counts_whole_opportunities(
    crm_url, cdnow: pd.DataFrame, weekly_bgbb: cv.BetaGeoBetaBinom
) -> None:
    counts = _counts(crm_url("duckdb"), cdnow, TimeUnit.WEEK, CALIBRATION_END)
    expected = tracking_table(weekly_bgbb, cdnow, calibration_end=CALIBRATION_END,
                              observation_end=OBSERVATION_END,
                              columns=cv.Columns(is_return="is_return"))  # fmt: skip
    table = tracking_table_from_counts(weekly_bgbb, counts, calibration_end=CALIBRATION_END,
                                       observation_end=OBSERVATION_END)  # fmt: skip
    pd.testing.assert_frame_equal(table, expected, rtol=1e-12)


def test_an_empty_cohort_and_a_wrong_end_are_named(
    crm_url, cdnow: pd.DataFrame, model: cv.BetaGeo
) -> None:
    counts = _counts(crm_url("sqlite"), cdnow, TimeUnit.DAY, "1996-01-01")
    assert counts.births.empty
    with pytest.raises(DataQualityError, match="the cohort to track is empty"):
        tracking_table_from_counts(model, counts, calibration_end="1996-01-01",
                                   observation_end=OBSERVATION_END)  # fmt: skip
    with pytest.raises(SchemaError, match="must come after calibration_end"):
        tracking_table_from_counts(model, counts, calibration_end=OBSERVATION_END,
                                   observation_end=CALIBRATION_END)  # fmt: skip
