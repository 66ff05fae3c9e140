"""The tracking table of a CNBD model: every day's expectation in one call (the report's speed).

Regression: the new customer's expectation was asked once per day of the cohort (about 2,200
calls on a six-year base), and every call of a CNBD model rebuilds its phase tables: about 4 s
of each report, the longest step of the job's eighth-model test. The curves give every age at
once; the table must equal the one built a day at a time.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import cvalue as cv
from cvalue.datasets import make_crm
from cvalue.plot import tracking_table

CALIBRATION_END = "2023-06-30"
OBSERVATION_END = "2024-12-31"


@pytest.fixture(scope="module")
def transactions() -> pd.DataFrame:
    log = make_crm(n_customers=200, seed=3).transactions
    return log[~log["is_return"]].reset_index(drop=True)


@pytest.mark.parametrize("model_class", [cv.BetaGeoCNBD, cv.ModifiedBetaGeoCNBD])
def test_a_cnbd_tracking_table_asks_for_all_ages_at_once_and_equals_one_call_per_day(
    model_class: type[cv.BetaGeoCNBD], transactions: pd.DataFrame,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    model = model_class.from_params(0.55, 6.0, 0.8, 2.5, k=2, unit="week")
    options = {"calibration_end": CALIBRATION_END, "observation_end": OBSERVATION_END}
    calls = []
    one_age = model_class.expected_purchases_new

    def counted(self: cv.BetaGeoCNBD, *, horizon: float) -> float:
        calls.append(horizon)
        return one_age(self, horizon=horizon)

    monkeypatch.setattr(model_class, "expected_purchases_new", counted)
    table = tracking_table(model, transactions, **options)
    assert calls == []
    born = transactions.groupby("customer_id")["timestamp"].min()
    cohort = born[born <= pd.Timestamp(CALIBRATION_END)]
    first_day = cohort.min().normalize()
    # the same expectation, a day at a time: sum over the cohort of E[X(age)] at each period's end
    for end in table.index[[len(table) // 2, -1]]:
        ages = (pd.Timestamp(end) - cohort.dt.normalize()).dt.days.to_numpy() / 7.0
        expected = sum(one_age(model, horizon=float(age)) for age in ages[ages >= 0])
        assert table.loc[end, "expected_cumulative"] == pytest.approx(expected, rel=1e-9)
    assert pd.Timestamp(table.index[0]) >= first_day
    assert np.all(np.diff(table["expected_cumulative"].to_numpy()) >= 0)
