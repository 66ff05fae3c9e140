"""Surveys by value tier from tiers ranked in a table equal cvalue.metrics.by_value's."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from cvalue.errors import DataQualityError
from cvalue.job import _surveys
from cvalue.job._surveys import answering_customers, surveys_by_tier
from cvalue.metrics import SmallSampleWarning, by_value
from cvalue.segments import value_tiers
from cvalue.segments.in_table import tiers_in_table

N_CUSTOMERS = 2_000


@pytest.fixture
def values() -> pd.Series:
    rng = np.random.default_rng(3)
    ids = pd.Index(np.arange(1, N_CUSTOMERS + 1) * 7, name="customer_id")
    return pd.Series(rng.lognormal(3.0, 1.2, N_CUSTOMERS), index=ids, name="clv")


@pytest.fixture
def answers(values: pd.Series) -> pd.DataFrame:
    rng = np.random.default_rng(4)
    n_answers = 900
    return pd.DataFrame({
        "customer_id": rng.choice(values.index.to_numpy(), n_answers),
        "timestamp": pd.Timestamp("2024-01-01") + pd.to_timedelta(
            rng.permutation(n_answers), unit="D"),
        "nps": rng.integers(0, 11, n_answers), "csat": rng.integers(1, 6, n_answers),
        "ces": rng.integers(1, 8, n_answers),
    })  # fmt: skip


def _scored(url: str, values: pd.Series) -> sa.Table:
    engine = sa.create_engine(url)
    scores = values.rename("clv_5y").reset_index().assign(value_tier=None, run_id="run")
    scores.to_sql("scores", engine, index=False)
    engine.dispose()
    return sa.Table("scores", sa.MetaData(), sa.Column("customer_id", sa.BigInteger),
                    sa.Column("clv_5y", sa.Float), sa.Column("value_tier", sa.Text),
                    sa.Column("run_id", sa.Text))  # fmt: skip


@pytest.mark.parametrize("backend", ["sqlite", "duckdb"])
def test_tiers_from_the_table_give_by_values_tables(
    crm_url, values: pd.Series, answers: pd.DataFrame, backend: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setattr(_surveys, "_BATCH", 97)  # several batches of ids
    url = crm_url(backend)
    table = _scored(url, values)
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        tiers = tiers_in_table(connection, table, value="clv_5y", tier="value_tier",
                               where=table.c.run_id == "run")  # fmt: skip
        customers = answering_customers(connection, table, answers["customer_id"],
                                        value="clv_5y", where=table.c.run_id == "run")  # fmt: skip
    engine.dispose()
    assert len(customers) == answers["customer_id"].nunique()
    with pytest.warns(SmallSampleWarning) as caught:
        found = surveys_by_tier(answers, customers, tiers)
    assert [str(w.message).split(":")[0] for w in caught] == [
        "NPS by value tier", "CSAT by value tier", "CES by value tier"]  # fmt: skip
    memory_tiers = value_tiers(values)
    kept = ["customers", "value"]
    pd.testing.assert_frame_equal(tiers.summary_[kept], memory_tiers.summary_[kept], rtol=1e-12)
    for metric in ("nps", "csat", "ces"):
        with pytest.warns(SmallSampleWarning):
            expected = by_value(metric, answers, values)
        pd.testing.assert_frame_equal(found[metric], expected, rtol=1e-12)
    assert found["nps"].loc["all", "detractors"] > 0


def test_answers_of_customers_without_a_value_are_named(
    values: pd.Series, answers: pd.DataFrame
) -> None:
    tiers = value_tiers(values)
    customers = pd.DataFrame({"tier": tiers.labels_.astype(str), "value": values})
    strangers = pd.concat([answers, answers.head(2).assign(customer_id=[3, 5])], ignore_index=True)
    with pytest.raises(DataQualityError, match=r"2 of 902 answers come from customers without a "
                       r"value \(e\.g\. customer 3\)"):  # fmt: skip
        surveys_by_tier(strangers, customers, tiers)
    repeated = answers.drop(columns="timestamp")
    with pytest.raises(DataQualityError, match=r"no timestamp column .* map \[source.surveys\]"):
        surveys_by_tier(repeated, customers, tiers)
