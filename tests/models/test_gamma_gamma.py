"""GammaGamma: Fader & Hardie (2013) "The Gamma-Gamma model of monetary value" on CDNOW, recovery,
properties, stress, persistence and errors."""

import functools
import json
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cvalue.datasets import load_cdnow
from cvalue.errors import CValueWarning, DataQualityError, NotFittedError, SchemaError
from cvalue.models._base import SmallBaseWarning
from cvalue.models._mle import ConvergenceWarning
from cvalue.models.gamma_gamma import (
    _BLOCK_ROWS,
    FrequencySpendCorrelationWarning,
    GammaGamma,
    UndefinedExpectationError,
    _conditional_expected_spend,
    _log_likelihood_terms,
)
from cvalue.summary import compress


@pytest.fixture(scope="module")
def cdnow():
    return load_cdnow().summary


@pytest.fixture(scope="module")
def fitted(cdnow):
    return GammaGamma().fit(cdnow)


def _lifetimes_fitter(repeat):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from lifetimes import GammaGammaFitter

        return GammaGammaFitter().fit(repeat["frequency"], repeat["monetary_value"])


def _model_at(p, q, gamma):
    return GammaGamma.from_dict({
        "model": "GammaGamma", "params": {"p": p, "q": q, "gamma": gamma},
        "covariance": np.zeros((3, 3)).tolist(), "log_likelihood": 0.0, "n_customers": 1.0,
    })  # fmt: skip


# --- published values -------------------------------------------------------------------------


def test_cdnow_published_estimates(fitted):
    """Fader & Hardie (2013), section 4: p = 6.25, q = 3.74, gamma = 15.44 on 946 repeat buyers.

    p and q agree to the printed digits. The maximum of the likelihood is at gamma = 15.4477
    (lifetimes finds the same to 1e-8), which rounds to 15.45: the note's 15.44 is its solver's
    stopping point or a truncation, so gamma is held to one unit of the last printed digit.
    """
    p, q, gamma = fitted.params_
    assert round(p, 2) == 6.25
    assert round(q, 2) == 3.74
    assert abs(gamma - 15.44) < 0.01
    assert fitted.converged_
    assert fitted.n_customers_ == 946
    assert fitted.log_likelihood_ == pytest.approx(-4055.92, abs=0.005)


def test_cdnow_matches_lifetimes(fitted, cdnow):
    repeat = cdnow[cdnow["frequency"] > 0]
    theirs = _lifetimes_fitter(repeat)
    their_log_likelihood = -theirs._negative_log_likelihood_ * len(repeat)
    assert fitted.log_likelihood_ == pytest.approx(their_log_likelihood, rel=1e-10)
    np.testing.assert_allclose(fitted.params_.to_numpy(), theirs.params_.to_numpy(), rtol=1e-6)


def test_cdnow_expected_spend_matches_lifetimes_at_the_fitted_parameters(fitted, cdnow):
    repeat = cdnow[cdnow["frequency"] > 0]
    theirs = _lifetimes_fitter(repeat)
    theirs.params_ = pd.Series(fitted.params_.to_numpy(), index=["p", "q", "v"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = theirs.conditional_expected_average_profit(
            cdnow["frequency"], cdnow["monetary_value"]
        )
    ours = fitted.conditional_expected_spend(cdnow)
    np.testing.assert_allclose(ours.to_numpy(), expected.to_numpy(), rtol=1e-6)
    assert ours.index.equals(cdnow.index)
    # The means over repeat buyers and over everybody (one-time buyers get the population mean)
    assert ours[cdnow["frequency"] > 0].mean() == pytest.approx(
        expected[cdnow["frequency"] > 0].mean(), rel=1e-6
    )
    assert ours.mean() == pytest.approx(expected.mean(), rel=1e-6)
    assert fitted.expected_spend_new() == pytest.approx(
        fitted.params_["p"] * fitted.params_["gamma"] / (fitted.params_["q"] - 1.0)
    )
    assert (ours[cdnow["frequency"] == 0] == fitted.expected_spend_new()).all()


def test_cdnow_exclusions_are_named_and_counted(fitted, cdnow):
    one_time = cdnow.index[cdnow["frequency"] == 0]
    assert fitted.n_excluded_ == len(one_time) == 1411
    assert fitted.excluded_.index.equals(one_time)
    assert set(fitted.excluded_["reason"]) == {"no repeat purchase (frequency < 1)"}


def test_cdnow_correlation_is_reported_without_warning(fitted):
    """Fader & Hardie (2013) report a correlation of 0.11 between frequency and spend."""
    assert round(fitted.frequency_spend_correlation_, 2) == 0.11


def test_log_likelihood_per_customer_sums_to_the_fit(fitted, cdnow):
    repeat = cdnow[cdnow["frequency"] > 0]
    assert fitted.log_likelihood(repeat).sum() == pytest.approx(fitted.log_likelihood_, rel=1e-12)


# --- the likelihood and its gradient ----------------------------------------------------------


@pytest.mark.parametrize("params", [(6.0, 3.5, 15.0), (0.7, 1.2, 3.0), (80.0, 20.0, 1e4)])
def test_analytic_gradient_matches_finite_differences(cdnow, params):
    model = GammaGamma()
    repeat = cdnow[cdnow["frequency"] > 0]
    objective = model._objective(model._prepare(repeat))
    point = np.array(params)
    value, gradient = objective(point)
    direct = _log_likelihood_terms(
        repeat["frequency"].to_numpy(float), repeat["monetary_value"].to_numpy(), *params
    ).sum()
    assert value == pytest.approx(direct, rel=1e-12)
    for i in range(3):
        step = np.zeros(3)
        step[i] = 1e-6 * point[i]
        numeric = (objective(point + step)[0] - objective(point - step)[0]) / (2 * step[i])
        assert gradient[i] == pytest.approx(numeric, rel=1e-5, abs=1e-6)


# --- simulation recovery ----------------------------------------------------------------------

RECOVERY = [
    (6.25, 3.74, 15.44),  # CDNOW
    (1.5, 1.05, 4.0),  # q close to 1: the population mean spend is barely finite
    (60.0, 5.0, 200.0),  # large p: customers' transactions hardly vary around their mean
    (0.8, 12.0, 2.0),  # small p, many similar customers
]


@pytest.mark.parametrize("truth", RECOVERY)
def test_simulation_recovery_within_three_standard_errors(truth):
    rng = np.random.default_rng(2024)
    n_customers = 25_000
    frequency = 1 + rng.negative_binomial(1.0, 0.3, n_customers)
    data = GammaGamma().simulate(
        n_customers, frequency, p=truth[0], q=truth[1], gamma=truth[2], rng=rng
    )
    model = GammaGamma().fit(data)
    error = (model.params_ - pd.Series(truth, index=["p", "q", "gamma"])).abs()
    assert (error < 3 * model.std_errors_).all(), (model.params_, model.std_errors_)
    assert model.n_excluded_ == 0


def test_large_data_warm_start_gives_the_spread_start_fit():
    """Beyond 20k patterns the spread starts run on a subsample; the optimum is the same."""
    import cvalue.models.gamma_gamma as module

    rng = np.random.default_rng(7)
    data = GammaGamma().simulate(
        30_000, 1 + rng.poisson(2.0, 30_000), p=3.0, q=2.5, gamma=20.0, rng=rng
    )
    warm = GammaGamma().fit(data)
    saved = module._WARM_START_PATTERNS
    module._WARM_START_PATTERNS = 10**9
    try:
        spread = GammaGamma().fit(data)
    finally:
        module._WARM_START_PATTERNS = saved
    np.testing.assert_allclose(warm.params_, spread.params_, rtol=1e-6)
    np.testing.assert_allclose(warm.std_errors_, spread.std_errors_, rtol=1e-4)


# --- compression ------------------------------------------------------------------------------


def test_compressed_and_uncompressed_fits_are_equal(cdnow):
    repeat = cdnow[cdnow["frequency"] > 0]
    patterns, weights, _ = compress(repeat, ("frequency", "monetary_value"))
    compressed = patterns.assign(weight=weights)
    assert len(compressed) < len(repeat)
    plain, weighted = GammaGamma().fit(repeat), GammaGamma().fit(compressed)
    np.testing.assert_allclose(weighted.params_, plain.params_, rtol=1e-7)
    assert weighted.log_likelihood_ == pytest.approx(plain.log_likelihood_, rel=1e-12)
    assert weighted.n_customers_ == plain.n_customers_ == 946
    np.testing.assert_allclose(weighted.std_errors_, plain.std_errors_, rtol=1e-5)
    assert weighted.frequency_spend_correlation_ == pytest.approx(
        plain.frequency_spend_correlation_, rel=1e-12
    )


def test_compressed_data_counts_excluded_customers_by_weight():
    data = pd.DataFrame(
        {"frequency": [0, 2, 3, 0], "monetary_value": [0.0, 10.0, 12.0, -1.0],
         "weight": [40, 30, 20, 5]},
        index=pd.Index(["a", "b", "c", "d"], name="pattern"),
    )  # fmt: skip
    rng = np.random.default_rng(0)
    simulated = GammaGamma().simulate(500, 2, p=4.0, q=3.0, gamma=10.0, rng=rng)
    simulated["weight"] = 2
    model = GammaGamma().fit(pd.concat([data, simulated.set_index(simulated.index.astype(str))]))
    assert model.n_excluded_ == 45
    assert model.n_customers_ == 30 + 20 + 1000
    assert list(model.excluded_.index) == ["a", "d"]


# --- properties -------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    p=st.floats(0.05, 200.0), q=st.floats(1.01, 100.0), gamma=st.floats(1e-3, 1e6),
    x=st.integers(0, 1000), zbar=st.floats(1e-2, 1e7),
)  # fmt: skip
def test_expected_spend_lies_between_customer_and_population_means(p, q, gamma, x, zbar):
    model = _model_at(p, q, gamma)
    data = pd.DataFrame({"frequency": [x], "monetary_value": [zbar if x else 0.0]})
    spend = float(model.conditional_expected_spend(data).iloc[0])
    population = model.expected_spend_new()
    low, high = (min(zbar, population), max(zbar, population)) if x else (population,) * 2
    assert np.isfinite(spend)
    assert low * (1 - 1e-12) <= spend <= high * (1 + 1e-12)


@settings(max_examples=100, deadline=None)
@given(
    p=st.floats(0.05, 200.0), q=st.floats(0.05, 100.0), gamma=st.floats(1e-3, 1e6),
    x=st.integers(1, 1000), zbar=st.floats(1e-3, 1e8),
)  # fmt: skip
def test_likelihood_and_expectation_are_finite(p, q, gamma, x, zbar):
    frequency, spend = np.array([float(x)]), np.array([zbar])
    assert np.isfinite(_log_likelihood_terms(frequency, spend, p, q, gamma)).all()
    if p * x + q > 1:
        assert np.isfinite(_conditional_expected_spend(frequency, spend, p, q, gamma)).all()


# --- stress grid ------------------------------------------------------------------------------

STRESS = [
    (truth, scale, frequencies)
    for truth in [(6.25, 3.74, 15.44), (0.6, 1.3, 2.0), (40.0, 30.0, 500.0)]
    for scale in [1.0, 100.0, 1e6]  # dollars, cents, millions
    for frequencies in [(1, 4), (100, 500)]
]


@functools.cache
def _stress_data(truth, frequencies):
    rng = np.random.default_rng(11)
    frequency = rng.integers(frequencies[0], frequencies[1], 2_000, endpoint=True)
    data = GammaGamma().simulate(2_000, frequency, p=truth[0], q=truth[1], gamma=truth[2], rng=rng)
    return data, GammaGamma().fit(data)


@pytest.mark.parametrize(("truth", "scale", "frequencies"), STRESS)
def test_stress_grid_is_finite_and_scale_equivariant(truth, scale, frequencies):
    """No NaN, inf or warning (warnings are errors), and spend in cents or millions only
    rescales gamma."""
    data, base = _stress_data(truth, frequencies)
    scaled = data.assign(monetary_value=data["monetary_value"] * scale)
    model = GammaGamma().fit(scaled) if scale != 1.0 else base
    assert np.isfinite(model.params_).all()
    assert np.isfinite(model.std_errors_).all()
    assert np.isfinite(model.log_likelihood_)
    # zbar's density scales by 1/scale per customer
    assert model.log_likelihood_ == pytest.approx(
        base.log_likelihood_ - len(data) * np.log(scale), rel=1e-9, abs=1e-6
    )
    if (base.std_errors_ < 0.2 * base.params_).all():  # identified: the estimates scale too
        expected = base.params_ * np.array([1.0, 1.0, scale])
        np.testing.assert_allclose(model.params_, expected, rtol=1e-4)
    spend = model.conditional_expected_spend(scaled)
    assert np.isfinite(spend).all()
    assert (spend > 0).all()
    if model.params_["q"] > 1:
        assert np.isfinite(model.expected_spend_new())


# --- warnings, errors, persistence ------------------------------------------------------------


def test_correlated_frequency_and_spend_warns_and_reports_the_correlation():
    rng = np.random.default_rng(3)
    data = GammaGamma().simulate(
        4_000, 1 + rng.poisson(3.0, 4_000), p=5.0, q=4.0, gamma=10.0, rng=rng
    )
    data["monetary_value"] *= data["frequency"]  # big spenders buy more often
    with pytest.warns(FrequencySpendCorrelationWarning, match=r"Pearson r = 0\.\d{3}") as caught:
        model = GammaGamma().fit(data)
    assert issubclass(FrequencySpendCorrelationWarning, CValueWarning)
    assert model.frequency_spend_correlation_ > 0.3
    assert f"{model.frequency_spend_correlation_:.3f}" in str(caught[0].message)
    assert caught[0].filename == __file__


def test_the_correlation_threshold_is_an_option(fitted, cdnow):
    with pytest.warns(FrequencySpendCorrelationWarning, match="max_correlation=0.05"):
        GammaGamma(max_correlation=0.05).fit(cdnow)


def test_customers_without_a_repeat_purchase_are_left_out_and_named():
    rng = np.random.default_rng(5)
    good = GammaGamma().simulate(300, 3, p=4.0, q=3.0, gamma=10.0, rng=rng)
    one_time = pd.DataFrame(
        {"frequency": [0.0, 0.0, 0.0], "monetary_value": [0.0, np.nan, -5.0]},
        index=pd.Index([1000, 1001, 1002], name="customer_id"),
    )  # fmt: skip
    model = GammaGamma().fit(pd.concat([good, one_time]))
    assert model.n_excluded_ == 3
    assert model.n_customers_ == 300
    assert model.excluded_["reason"].to_dict() == dict.fromkeys(
        [1000, 1001, 1002], "no repeat purchase (frequency < 1)"
    )


def test_zero_and_negative_spend_of_repeat_buyers_is_a_data_error():
    """Issue 13, item 10: the rows with spend -10 and 0 were left out without a word."""
    rng = np.random.default_rng(5)
    good = GammaGamma().simulate(149, 2, p=4.0, q=3.0, gamma=10.0, rng=rng)
    bad = pd.DataFrame({"frequency": [1.0, 3.0], "monetary_value": [-10.0, 0.0]},
                       index=pd.Index([149, 150], name="customer_id"))  # fmt: skip
    with pytest.raises(DataQualityError) as raised:
        GammaGamma().fit(pd.concat([good, bad]))
    message = str(raised.value)
    assert "'monetary_value' is zero or negative for repeat buyers" in message
    assert "in 2 of 151 rows (e.g. customer 149)" in message
    assert "net returns against their purchases, or drop those customers" in message


def test_every_unusable_row_is_named_with_its_count():
    rng = np.random.default_rng(5)
    good = GammaGamma().simulate(300, 3, p=4.0, q=3.0, gamma=10.0, rng=rng)
    bad = pd.DataFrame(
        {"frequency": [2.0, 4.0, 1.0, np.nan, -1.0, 1.5, 2.0],
         "monetary_value": [np.nan, -5.0, 0.0, 10.0, 10.0, 10.0, 1e120]},
        index=pd.Index([1001, 1002, 1003, 1004, 1005, 1006, 1007], name="customer_id"),
    )  # fmt: skip
    with pytest.raises(DataQualityError) as raised:
        GammaGamma().fit(pd.concat([good, bad]))
    message = str(raised.value)
    for expected in (
        "'frequency' is missing, infinite or negative in 2 of 307 rows (e.g. customer 1004)",
        "'frequency' is not a whole number in 1 of 307 rows (e.g. customer 1006)",
        "'monetary_value' is missing or infinite for repeat buyers (frequency >= 1) in 1 of 307 "
        "rows (e.g. customer 1001)",
        "'monetary_value' is zero or negative for repeat buyers (frequency >= 1) in 2 of 307 "
        "rows (e.g. customer 1002)",
        "'monetary_value' is above 1e+100 in 1 of 307 rows (e.g. customer 1007)",
    ):
        assert expected in message
    weighted = pd.DataFrame({"frequency": [2, 3], "monetary_value": [5.0, 6.0],
                             "weight": [-1.0, np.inf]})  # fmt: skip
    with pytest.raises(DataQualityError, match="'weight' is negative, missing or infinite in 2"):
        GammaGamma().fit(weighted)


def test_a_tiny_base_ends_in_warnings_not_in_a_division_by_zero():
    """Two repeat buyers sent gamma to exp(-inf) = 0 and the gradient divided by it."""
    data = pd.DataFrame({"frequency": [5, 5], "monetary_value": [5.0, 1.0]})
    with pytest.warns(CValueWarning) as caught:
        model = GammaGamma().fit(data)
    assert {type(w.message) for w in caught} == {SmallBaseWarning, ConvergenceWarning}
    assert np.all(np.isfinite(model.params_))
    assert np.all(model.params_ > 0)


def test_no_repeat_buyers_is_a_clear_error():
    data = pd.DataFrame({"frequency": [0, 0, 0], "monetary_value": [0.0, 0.0, 12.0]})
    with pytest.raises(DataQualityError, match="none of the 3 customers has a repeat purchase"):
        GammaGamma().fit(data)


def test_identical_repeat_buyers_cannot_be_fitted():
    data = pd.DataFrame({"frequency": [2] * 150, "monetary_value": [10.0] * 150})
    with pytest.raises(DataQualityError, match="every customer has the same history"):
        GammaGamma().fit(data)


def test_missing_columns_and_wrong_types(cdnow):
    with pytest.raises(SchemaError, match="monetary_value"):
        GammaGamma().fit(cdnow[["frequency", "recency", "T"]])
    with pytest.raises(SchemaError, match="DataFrame"):
        GammaGamma().fit(cdnow.to_numpy())


def test_reading_before_fit_raises():
    with pytest.raises(NotFittedError):
        GammaGamma().expected_spend_new()
    with pytest.raises(NotFittedError):
        GammaGamma().conditional_expected_spend(
            pd.DataFrame({"frequency": [1], "monetary_value": [1.0]})
        )


def test_infinite_population_mean_is_a_clear_error():
    model = _model_at(2.0, 0.8, 5.0)
    with pytest.raises(UndefinedExpectationError, match=r"q = 0.8 <= 1"):
        model.expected_spend_new()
    with pytest.raises(UndefinedExpectationError, match="frequency"):
        model.conditional_expected_spend(
            pd.DataFrame({"frequency": [0, 2], "monetary_value": [0.0, 3.0]})
        )
    repeat = pd.DataFrame({"frequency": [1, 2], "monetary_value": [1.0, 3.0]})
    assert np.isfinite(model.conditional_expected_spend(repeat)).all()


def test_scoring_rejects_repeat_buyers_without_spend(fitted):
    data = pd.DataFrame({"frequency": [2, 3], "monetary_value": [np.nan, 10.0]},
                        index=pd.Index(["x", "y"]))  # fmt: skip
    with pytest.raises(DataQualityError, match=r"1 repeat buyers .* e\.g\. customer 'x'"):
        fitted.conditional_expected_spend(data)


@pytest.mark.parametrize(
    ("frequency", "spend", "counts"),
    [
        (-1.0, 5.0, "1 rows have a missing or negative 'frequency' and 0 repeat buyers"),
        (np.nan, 5.0, "1 rows have a missing or negative 'frequency' and 0 repeat buyers"),
        (np.inf, 5.0, "1 rows have a missing or negative 'frequency' and 0 repeat buyers"),
        (2.0, np.inf, "0 rows have a missing or negative 'frequency' and 1 repeat buyers"),
        (2.0, -np.inf, "0 rows have a missing or negative 'frequency' and 1 repeat buyers"),
        (2.0, 0.0, "0 rows have a missing or negative 'frequency' and 1 repeat buyers"),
    ],
)
def test_scoring_names_each_kind_of_bad_row(fitted, frequency, spend, counts):
    data = pd.DataFrame({"frequency": [1.0, frequency, 0.0], "monetary_value": [3.0, spend, 0.0]},
                        index=pd.Index(["a", "b", "c"]))  # fmt: skip
    with pytest.raises(DataQualityError, match=rf"{counts} .* e\.g\. customer 'b'"):
        fitted.conditional_expected_spend(data)


def test_spend_of_customers_without_repeat_purchases_is_not_read(fitted):
    data = pd.DataFrame({"frequency": [0, 0, 0, 2], "monetary_value": [np.nan, np.inf, -1.0, 4.0]})
    spend = fitted.conditional_expected_spend(data)
    assert spend.iloc[:3].tolist() == [fitted.expected_spend_new()] * 3
    assert fitted.conditional_expected_spend(data.iloc[:0]).empty


def test_scoring_many_rows_block_by_block(fitted):
    rng = np.random.default_rng(11)
    n_rows = 3 * _BLOCK_ROWS + 17
    frequency = rng.integers(0, 5, n_rows)
    data = pd.DataFrame({"frequency": frequency,
                         "monetary_value": np.where(frequency > 0, rng.gamma(2.0, 10.0, n_rows),
                                                    np.nan)})  # fmt: skip
    p, q, gamma = fitted.params_.to_numpy()
    expected = (
        p * (gamma + frequency * data["monetary_value"].fillna(0.0)) / (p * frequency + q - 1)
    )
    np.testing.assert_allclose(fitted.conditional_expected_spend(data), expected, rtol=1e-15)
    late = n_rows - 5  # a bad row in the last block only
    data.loc[late, ["frequency", "monetary_value"]] = [3, -1.0]
    with pytest.raises(DataQualityError, match=rf"1 repeat buyers .* e\.g\. customer {late}\)"):
        fitted.conditional_expected_spend(data)


def test_predict_is_one_frame_by_customer(fitted, cdnow):
    predicted = fitted.predict(cdnow)
    assert list(predicted.columns) == ["expected_spend"]
    assert predicted.index.equals(cdnow.index)
    pd.testing.assert_series_equal(
        predicted["expected_spend"], fitted.conditional_expected_spend(cdnow)
    )


def test_json_round_trip(fitted, cdnow, tmp_path):
    path = tmp_path / "gamma_gamma.json"
    fitted.save(path)
    saved = json.loads(path.read_text())
    assert saved["model"] == "GammaGamma"
    assert saved["n_excluded"] == 1411
    loaded = GammaGamma.load(path)
    pd.testing.assert_series_equal(loaded.params_, fitted.params_)
    pd.testing.assert_frame_equal(loaded.covariance_, fitted.covariance_)
    assert loaded.n_excluded_ == fitted.n_excluded_
    assert loaded.frequency_spend_correlation_ == fitted.frequency_spend_correlation_
    assert loaded.max_correlation == fitted.max_correlation
    pd.testing.assert_series_equal(
        loaded.conditional_expected_spend(cdnow), fitted.conditional_expected_spend(cdnow)
    )


def test_simulate_shape_and_errors():
    rng = np.random.default_rng(0)
    data = GammaGamma().simulate(100, np.arange(1, 101), p=2.0, q=3.0, gamma=4.0, rng=rng)
    assert list(data.columns) == ["frequency", "monetary_value"]
    assert (data["monetary_value"] > 0).all()
    assert data.index.name == "customer_id"
    with pytest.raises(SchemaError, match="frequency >= 1"):
        GammaGamma().simulate(3, 0, p=2.0, q=3.0, gamma=4.0, rng=rng)
    with pytest.raises(NotFittedError):
        GammaGamma().simulate(3, 1, rng=rng)
