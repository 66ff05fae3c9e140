"""On PostgreSQL the summary's plan does not depend on ``work_mem``: one sort, no hash table.

Grouping the purchases by customer and grain, then by customer, let PostgreSQL's planner hash
the customer-days (about one group per purchase) whenever ``work_mem`` was large enough, and then
sort them by customer for the first grain's window: at 20M transactions, 65.8 s with
``work_mem = 1GB`` against 25.6 s at the default 4MB (docs/scale_benchmarks.md). The statement
now finds the first grain by a window over the purchases and counts each customer's distinct
grains, which PostgreSQL can only run by sorting the purchases by customer, once. The plan is read
with ``work_mem = 1GB``, and the results must still equal the pandas path's.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ClauseElement, Executable

import cvalue as cv
from cvalue.io import sql as summary_sql
from cvalue.io.sql import sql_calibration_holdout, sql_rfm_summary
from cvalue.io.sqlkit import resolve_relation
from cvalue.units import TimeUnit

OBSERVATION_END = "2024-12-31"
N_CUSTOMERS = 5_000


def many_days_log(seed: int) -> pd.DataFrame:
    """Enough customer-days for the planner to weigh a hash table: most purchases on their own day.

    Amounts in cents, so that sums in another order may differ in the last bits; returns and
    same-day repeats included.
    """
    rng = np.random.default_rng(seed)
    n_rows = 12 * N_CUSTOMERS
    days = rng.integers(0, 3 * 365, n_rows)
    days[: n_rows // 5] = days[n_rows // 5 : 2 * n_rows // 5]  # same-day repeats
    return pd.DataFrame({
        "customer_id": rng.integers(0, N_CUSTOMERS, n_rows),
        "timestamp": pd.Timestamp("2022-01-01 10:00") + pd.to_timedelta(days, unit="D"),
        "amount": rng.integers(1, 100_000, n_rows) / 100,
        "is_return": rng.random(n_rows) < 0.1,
    })  # fmt: skip


class Explain(Executable, ClauseElement):
    """``EXPLAIN`` of a statement, its values bound as the statement's own."""

    inherit_cache = False

    def __init__(self, statement: sa.Select) -> None:
        self.statement = statement


@compiles(Explain, "postgresql")
def _explain(element: Explain, compiler, **options) -> str:
    return "EXPLAIN " + compiler.process(element.statement, **options)


@pytest.fixture(scope="module")
def postgres_engine(postgres_url: str):
    created = sa.create_engine(postgres_url)
    yield created
    created.dispose()


@pytest.fixture(scope="module")
def many_days(postgres_engine, load_table) -> tuple[str, pd.DataFrame]:
    log = many_days_log(20261206)
    return load_table(postgres_engine, log), log


def summary_plan(engine: sa.Engine, table: str, *, grain: TimeUnit, work_mem: str) -> str:
    """PostgreSQL's plan of the summary statement that ``sql_rfm_summary`` sends."""
    with engine.connect() as connection:
        relation = resolve_relation(connection, table=table, query=None, schema=None, columns=None)
        purchases = summary_sql._purchases(relation, grain)
        customers = summary_sql._customers(
            purchases, grain, TimeUnit.WEEK, 20088, dialect=engine.dialect.name
        )
        setting = sa.func.set_config("work_mem", work_mem, True)  # this transaction only
        connection.execute(sa.select(setting))
        plan = connection.execute(Explain(sa.select(customers)))
        return "\n".join(row[0] for row in plan)


@pytest.mark.parametrize("grain", [TimeUnit.DAY, TimeUnit.WEEK])
@pytest.mark.parametrize("work_mem", ["4MB", "1GB"])
def test_one_sort_and_no_hash_table_whatever_work_mem(postgres_engine, many_days, grain, work_mem):
    table, _ = many_days
    plan = summary_plan(postgres_engine, table, grain=grain, work_mem=work_mem)
    assert "HashAggregate" not in plan, plan
    sorts = [line for line in plan.splitlines() if line.strip().startswith("->  Sort ")]
    assert len(sorts) == 1, plan
    assert "WindowAgg" in plan, plan


@pytest.mark.parametrize("grain", ["day", "week", "month"])
def test_the_summary_equals_pandas(postgres_engine, many_days, grain):
    table, log = many_days
    options = {"observation_end": OBSERVATION_END, "unit": "week", "grain": grain}
    summary = sql_rfm_summary(postgres_engine, table=table, **options)
    expected = cv.rfm_summary(log, **options)
    pd.testing.assert_frame_equal(
        summary.drop(columns="monetary_value"), expected.drop(columns="monetary_value"),
        check_exact=True,
    )  # fmt: skip
    np.testing.assert_allclose(summary["monetary_value"], expected["monetary_value"], rtol=1e-12)
    assert (summary["frequency"] > 5).any()


def test_the_calibration_holdout_equals_pandas(postgres_engine, many_days):
    table, log = many_days
    ends = {"calibration_end": "2023-06-30", "observation_end": OBSERVATION_END}
    split = sql_calibration_holdout(postgres_engine, table=table, unit="day", **ends)
    expected = cv.calibration_holdout(log, unit="day", **ends)
    values = ["monetary_value", "monetary_value_holdout"]
    pd.testing.assert_frame_equal(split.drop(columns=values), expected.drop(columns=values),
                                  check_exact=True)  # fmt: skip
    for name in values:
        np.testing.assert_allclose(split[name], expected[name], rtol=1e-12)
    assert split.attrs == expected.attrs


def test_without_amounts_the_frequency_counts_grains(postgres_engine, many_days, load_table):
    _, log = many_days
    counts = log.drop(columns="amount")
    table = load_table(postgres_engine, counts)
    summary = sql_rfm_summary(postgres_engine, table=table, observation_end=OBSERVATION_END)
    expected = cv.rfm_summary(counts, observation_end=OBSERVATION_END)
    pd.testing.assert_frame_equal(summary, expected, check_exact=True)
    assert "monetary_value" not in summary
