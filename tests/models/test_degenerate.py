"""Degenerate and tiny bases, for every model of the shared engine (issue 13, item 10).

Regressions (each failed before the engine's search box, edge flags and base checks) and the
properties that keep the class of bug away: on any valid summary, including tiny bases, one
customer and bases without a repeat purchase, a fit gives finite estimates or raises a cvalue
error, and warns with nothing but cvalue warnings (never a numpy RuntimeWarning).
"""

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from cvalue.errors import CValueError, CValueWarning, DataQualityError
from cvalue.models import (
    BetaDiscreteWeibull,
    BetaGeo,
    BetaGeoBetaBinom,
    GammaGamma,
    ModifiedBetaGeo,
    ParetoNBD,
    ShiftedBetaGeo,
)
from cvalue.models._base import SmallBaseWarning
from cvalue.models._mle import SEARCH_FACTOR, ConvergenceWarning

CONTINUOUS = [BetaGeo, ModifiedBetaGeo, ParetoNBD]
TWO_CUSTOMERS = pd.DataFrame({"frequency": [1, 3], "recency": [10.0, 30.0], "T": [40.0, 40.0]})


def rare_buyers() -> pd.DataFrame:
    """Pareto/NBD customers who rarely buy: r = 0.08, alpha = 40, s = 1.5, beta = 2 (weeks).

    5,000 customers of ages up to 10 years; 31 of them make a repeat purchase.
    """
    rng = np.random.default_rng(0)
    ages = rng.uniform(0.1, 520.0, 5_000)
    return ParetoNBD.from_params(0.08, 40.0, 1.5, 2.0, unit="week").simulate(5_000, ages, rng=rng)


def fit_recording(fit):
    """The fit's result (or the cvalue error it raised) and every warning it emitted."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = fit()
        except CValueError as error:
            result = error
    return result, [w for w in caught]


def assert_only_cvalue_warnings(caught):
    foreign = [f"{w.category.__name__}: {w.message}" for w in caught
               if not issubclass(w.category, CValueWarning)]  # fmt: skip
    assert not foreign, foreign


def assert_finite_or_explained(result):
    if isinstance(result, CValueError):
        assert str(result)
        return
    params = result.params_.to_numpy()
    assert np.all(np.isfinite(params)), params
    assert np.all(params > 0), params
    assert np.isfinite(result.log_likelihood_)


# --- regressions ----------------------------------------------------------------------------------


@pytest.mark.parametrize("model_class", CONTINUOUS)
def test_two_customers_warn_of_a_small_base_and_of_estimates_running_off(model_class):
    """BetaGeo returned r = 9.4e6, alpha = 5.2e8 without a word; ParetoNBD divided by zero."""
    with pytest.warns(CValueWarning) as caught:
        model = model_class().fit(TWO_CUSTOMERS)
    by_class = {type(w.message): str(w.message) for w in caught}
    assert set(by_class) == {SmallBaseWarning, ConvergenceWarning}
    assert "fitted on 2 customers, fewer than 100" in by_class[SmallBaseWarning]
    edge = by_class[ConvergenceWarning]
    assert f"{model_class.__name__} converged to the edge of its parameter space" in edge
    assert "r = " in edge
    assert "runs off towards infinity" in edge
    assert "mean nothing" in edge
    scales = np.array([1.0, 40.0, 1.0, 40.0 if model_class is ParetoNBD else 1.0])
    ratio = model.params_.to_numpy() / scales
    assert np.all(ratio <= SEARCH_FACTOR * (1 + 1e-9))
    assert np.all(ratio >= 1 / SEARCH_FACTOR / 2)


@pytest.mark.parametrize("model_class", CONTINUOUS)
def test_recency_without_a_repeat_purchase_is_refused(model_class):
    data = pd.DataFrame(
        {"frequency": [0, 1, 2, 0] * 50, "recency": [5.0, 10.0, 20.0, 0.0] * 50, "T": 40.0},
        index=pd.Index([f"c{i}" for i in range(200)], name="customer_id"),
    )
    with pytest.raises(DataQualityError) as raised:
        model_class().fit(data)
    message = str(raised.value)
    assert "'recency' > 0 with 'frequency' 0 in 50 of 200 rows (e.g. customer 'c0')" in message
    assert "not the time since the last purchase" in message
    compressed = data.value_counts().rename("weight").reset_index()
    with pytest.raises(DataQualityError, match="'recency' > 0 with 'frequency' 0 in 1 of 4 rows"):
        model_class().fit(compressed)


@pytest.mark.parametrize("model_class", CONTINUOUS)
def test_rare_buyers_fit_without_an_overflow(model_class):
    """BetaGeo raised 'RuntimeWarning: overflow encountered in exp' on these data.

    Only cvalue warnings may come out: the BG/NBD's a and b run off to infinity (31 repeat
    buyers cannot tell a heterogeneous dropout from a fixed one), and the fit says so.
    """
    result, caught = fit_recording(lambda: model_class().fit(rare_buyers()))
    assert_only_cvalue_warnings(caught)
    assert_finite_or_explained(result)
    if model_class is BetaGeo:
        assert [w.category for w in caught] == [ConvergenceWarning]
        assert "a = " in str(caught[0].message)
        assert "b = " in str(caught[0].message)


@pytest.mark.parametrize("model_class", [*CONTINUOUS, BetaGeoBetaBinom])
def test_a_base_without_repeat_purchases_is_refused(model_class):
    if model_class is BetaGeoBetaBinom:
        data = pd.DataFrame({"frequency": 0, "recency": 0, "n_periods": [3, 5, 6] * 50})
    else:
        data = pd.DataFrame({"frequency": 0, "recency": 0.0, "T": [3.0, 5.0, 6.0] * 50})
    with pytest.raises(DataQualityError, match="no customer has a repeat purchase"):
        model_class().fit(data)


@pytest.mark.parametrize("model_class", [*CONTINUOUS, GammaGamma])
def test_identical_customers_are_refused(model_class):
    data = pd.DataFrame({"frequency": [2] * 150, "recency": 20.0, "T": 30.0,
                         "monetary_value": 12.5})  # fmt: skip
    with pytest.raises(DataQualityError, match="every customer has the same history"):
        model_class().fit(data)


@pytest.mark.parametrize("model_class", [ShiftedBetaGeo, BetaDiscreteWeibull])
def test_a_cohort_without_churn_is_refused(model_class):
    with pytest.raises(DataQualityError, match="no customer churned"):
        model_class().fit_survivors([1000, 1000, 1000])


# --- properties -----------------------------------------------------------------------------------


@st.composite
def continuous_summaries(draw):
    """Valid (frequency, recency, T) summaries of 1 to 40 rows, in whole days / 7.

    A quarter have no repeat purchase at all; a third carry weights (up to 2,000 customers).
    """
    n = draw(st.integers(1, 40))
    no_repeat = draw(st.booleans()) and draw(st.booleans())
    rows = []
    for _ in range(n):
        T = draw(st.integers(1, 3652)) / 7.0
        x = 0 if no_repeat else draw(st.sampled_from([0, 0, 1, 2, 3, 7, 40, 300]))
        recency = draw(st.integers(0, round(T * 7))) / 7.0 if x > 0 else 0.0
        rows.append((x, recency, T))
    data = pd.DataFrame(rows, columns=["frequency", "recency", "T"])
    if draw(st.integers(0, 2)) == 0:
        data["weight"] = draw(st.lists(st.integers(1, 50), min_size=n, max_size=n))
    return data


@st.composite
def discrete_summaries(draw):
    """Valid (frequency, recency, n_periods) histories of 1 to 40 customers."""
    rows = []
    for _ in range(draw(st.integers(1, 40))):
        n = draw(st.integers(1, 25))
        t_x = draw(st.integers(0, n))
        x = draw(st.integers(1, t_x)) if t_x > 0 else 0
        rows.append((x, t_x, n))
    return pd.DataFrame(rows, columns=["frequency", "recency", "n_periods"])


@st.composite
def durations(draw):
    """Contract durations of 1 to 60 customers, churned or still active."""
    rows = []
    for _ in range(draw(st.integers(1, 60))):
        is_censored = draw(st.booleans())
        rows.append((draw(st.integers(0 if is_censored else 1, 30)), float(is_censored)))
    return pd.DataFrame(rows, columns=["duration", "is_censored"])


def check_fit(fit):
    result, caught = fit_recording(fit)
    event(type(result).__name__ + " " + " ".join(sorted({w.category.__name__ for w in caught})))
    assert_only_cvalue_warnings(caught)
    assert_finite_or_explained(result)


@pytest.mark.parametrize("model_class", CONTINUOUS)
@settings(max_examples=50, deadline=None)
@given(data=continuous_summaries())
def test_any_small_summary_fits_or_is_explained(model_class, data):
    check_fit(lambda: model_class().fit(data, unit="week"))


@settings(max_examples=50, deadline=None)
@given(data=discrete_summaries())
def test_any_small_history_table_fits_or_is_explained(data):
    check_fit(lambda: BetaGeoBetaBinom().fit(data))


@pytest.mark.parametrize("model_class", [ShiftedBetaGeo, BetaDiscreteWeibull])
@settings(max_examples=30, deadline=None)
@given(data=durations())
def test_any_small_duration_table_fits_or_is_explained(model_class, data):
    check_fit(lambda: model_class().fit(data))


SPENDS = [1e-6, 0.01, 1.0, 12.5, 37.5, 1e4, 1e9, 1e120, 0.0, -10.0, np.nan, np.inf, -np.inf]
FREQUENCIES = [0, 0, 1, 1, 2, 3, 10, 250, -1, 1.5, np.nan, np.inf]


@st.composite
def spend_summaries(draw):
    """Any (frequency, monetary_value[, weight]) frame: half of them with good values only."""
    n = draw(st.integers(1, 30))
    is_clean = draw(st.booleans())
    frequencies, spends = (FREQUENCIES[:8], SPENDS[:7]) if is_clean else (FREQUENCIES, SPENDS)
    weights = [0.0, 1.0, 3.0, 40.0] if is_clean else [0.0, 1.0, 3.0, 40.0, -1.0, np.nan]
    data = pd.DataFrame({
        "frequency": draw(st.lists(st.sampled_from(frequencies), min_size=n, max_size=n)),
        "monetary_value": draw(st.lists(st.sampled_from(spends), min_size=n, max_size=n)),
    })  # fmt: skip
    if draw(st.booleans()):
        data["weight"] = draw(st.lists(st.sampled_from(weights), min_size=n, max_size=n))
    return data


@settings(max_examples=50, deadline=None)
@given(data=spend_summaries())
def test_gamma_gamma_uses_every_repeat_buyer_or_says_why_not(data):
    result, caught = fit_recording(lambda: GammaGamma().fit(data))
    event(type(result).__name__ + " " + " ".join(sorted({w.category.__name__ for w in caught})))
    assert_only_cvalue_warnings(caught)
    assert_finite_or_explained(result)
    if isinstance(result, CValueError):
        return
    weights = data["weight"] if "weight" in data else pd.Series(1.0, index=data.index)
    is_repeat = data["frequency"] > 0
    assert result.n_customers_ == weights[is_repeat].sum()
    assert result.n_excluded_ == weights[~is_repeat].sum()
    assert (data.loc[~is_repeat, "frequency"] == 0).all()
