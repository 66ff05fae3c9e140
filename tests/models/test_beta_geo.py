"""BG/NBD (Fader, Hardie & Lee 2005), and the properties it shares with the MBG/NBD.

Family-wide tests (gradients, properties, stress grid, persistence, errors) run on both
``BetaGeo`` and ``ModifiedBetaGeo``; the MBG/NBD's own numbers are in test_modified_beta_geo.py.
"""

import contextlib
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cvalue.datasets import load_cdnow
from cvalue.errors import DataQualityError, NotFittedError, SchemaError
from cvalue.models._checks import checked_summary
from cvalue.models._mle import ConvergenceWarning
from cvalue.models.beta_geo import BetaGeo
from cvalue.models.modified_beta_geo import ModifiedBetaGeo

FAMILY = [BetaGeo, ModifiedBetaGeo]


@pytest.fixture(scope="module")
def cdnow():
    return load_cdnow().summary


@pytest.fixture(scope="module")
def fitted(cdnow):
    return BetaGeo().fit(cdnow, unit="week")


# --- published values ---------------------------------------------------------------------------


def test_cdnow_estimates_fader_hardie_lee_2005(fitted):
    """Fader, Hardie & Lee (2005), section 5 (CDNOW, 39-week calibration): r=0.243,
    alpha=4.414, a=0.793, b=2.426, LL=-9582.4."""
    assert fitted.params_.round(3).tolist() == [0.243, 4.414, 0.793, 2.426]
    assert round(fitted.log_likelihood_, 1) == -9582.4
    assert fitted.converged_
    assert fitted.n_customers_ == 2357


def test_cdnow_conditional_expectation_fader_hardie_lee_2005(fitted):
    """FHL (2005) section 5: x=2, t_x=30.43, T=38.86 expects 1.226 purchases in 39 weeks."""
    customer = pd.DataFrame({"frequency": [2], "recency": [30.43], "T": [38.86]})
    assert round(float(fitted.expected_purchases(customer, horizon=39).iloc[0]), 3) == 1.226
    assert round(float(fitted.expected_purchases(customer, horizon="39w").iloc[0]), 3) == 1.226
    at_published = BetaGeo.from_params(0.243, 4.414, 0.793, 2.426)
    assert round(float(at_published.expected_purchases(customer, horizon=39).iloc[0]), 3) == 1.226


def test_cdnow_standard_errors_match_lifetimes(fitted):
    """lifetimes 0.11.3 reports SEs 0.0125, 0.3785, 0.1857, 0.7053 on CDNOW."""
    np.testing.assert_allclose(fitted.std_errors_, [0.0125, 0.3785, 0.1857, 0.7053], atol=2e-3)


# --- gradients -----------------------------------------------------------------------------------


@pytest.mark.parametrize("model_class", FAMILY)
@pytest.mark.parametrize(
    "params", [(0.243, 4.414, 0.793, 2.426), (0.05, 0.3, 0.2, 0.4), (3.0, 40.0, 5.0, 1.1)]
)
def test_analytic_gradient_matches_finite_differences(model_class, params, cdnow):
    model = model_class()
    objective = model._objective(model._prepare(cdnow))
    params = np.array(params)
    _, gradient = objective(params)
    numeric = np.empty(4)
    for i in range(4):
        step = np.zeros(4)
        step[i] = 1e-6 * params[i]
        numeric[i] = (objective(params + step)[0] - objective(params - step)[0]) / (2 * step[i])
    np.testing.assert_allclose(gradient, numeric, rtol=1e-5, atol=1e-4)


# --- simulation recovery -------------------------------------------------------------------------

RECOVERY = [
    (0.243, 4.414, 0.793, 2.426),  # CDNOW
    (0.1, 2.0, 0.4, 0.5),  # small r, a + b < 1
    (2.0, 10.0, 3.0, 6.0),
    (0.8, 1.5, 0.6, 0.35),  # a + b < 1
]


@pytest.mark.parametrize("model_class", FAMILY)
@pytest.mark.parametrize("truth", RECOVERY)
def test_simulated_customers_fit_back_within_three_standard_errors(model_class, truth):
    rng = np.random.default_rng(20240611)
    ages = rng.uniform(20.0, 80.0, 25_000)
    simulated = model_class.from_params(*truth, unit="week").simulate(25_000, ages, rng=rng)
    fitted = model_class().fit(simulated)
    errors = (fitted.params_.to_numpy() - np.array(truth)) / fitted.std_errors_.to_numpy()
    assert np.all(np.abs(errors) < 3), (truth, fitted.params_.tolist(), errors)


# --- properties ----------------------------------------------------------------------------------

positive = st.floats(1e-3, 1e3)
scales = st.floats(1e-2, 1e3)


@st.composite
def histories(draw):
    T = draw(st.floats(1e-2, 5e3))
    x = draw(st.integers(0, 500))
    t_x = draw(st.floats(0.0, 1.0)) * T if x > 0 else 0.0
    return pd.DataFrame({"frequency": [x], "recency": [t_x], "T": [T]})


def model_of(model_class, r, alpha, a, b):
    return model_class.from_params(r, alpha, a, b, unit="week")


@pytest.mark.parametrize("model_class", FAMILY)
@settings(max_examples=60, deadline=None)
@given(
    r=positive,
    alpha=scales,
    a=positive,
    b=positive,
    data=histories(),
    t=st.floats(0.0, 500.0),
    more=st.floats(0.0, 500.0),
)
def test_p_alive_and_expectations_are_finite_bounded_and_monotone(
    model_class, r, alpha, a, b, data, t, more
):
    model = model_of(model_class, r, alpha, a, b)
    alive = float(model.p_alive(data).iloc[0])
    assert 0.0 <= alive <= 1.0
    sooner = float(model.expected_purchases(data, horizon=t).iloc[0])
    later = float(model.expected_purchases(data, horizon=t + more).iloc[0])
    assert np.isfinite(sooner)
    assert np.isfinite(later)
    assert 0.0 <= sooner <= later * (1 + 1e-9) + 1e-300
    new = model.expected_purchases_new(horizon=t)
    assert np.isfinite(new)
    assert new >= 0


@pytest.mark.parametrize("model_class", FAMILY)
@settings(max_examples=40, deadline=None)
@given(
    r=positive,
    alpha=st.floats(1e-1, 1e2),
    a=st.floats(1e-2, 1e2),
    b=st.floats(1e-2, 1e2),
    data=histories(),
    t=st.floats(0.1, 100.0),
    factor=st.sampled_from([7.0, 1 / 7, 365.2425]),
)
def test_rescaling_the_time_unit_changes_nothing(model_class, r, alpha, a, b, data, t, factor):
    """Weeks -> days: recency, T, alpha and the horizon times 7; same calendar span."""
    weeks = model_of(model_class, r, alpha, a, b)
    days = model_of(model_class, r, alpha * factor, a, b)
    rescaled = data.assign(recency=data["recency"] * factor, T=data["T"] * factor)
    np.testing.assert_allclose(days.p_alive(rescaled), weeks.p_alive(data), rtol=1e-9)
    np.testing.assert_allclose(
        days.expected_purchases(rescaled, horizon=t * factor),
        weeks.expected_purchases(data, horizon=t),
        rtol=1e-7,
        atol=1e-300,
    )
    assert days.expected_purchases_new(horizon=t * factor) == pytest.approx(
        weeks.expected_purchases_new(horizon=t), rel=1e-7
    )


@pytest.mark.parametrize("model_class", FAMILY)
def test_fits_in_days_and_weeks_agree(model_class, cdnow):
    weeks = model_class().fit(cdnow, unit="week")
    in_days = cdnow.assign(recency=cdnow["recency"] * 7, T=cdnow["T"] * 7)
    days = model_class().fit(in_days, unit="day")
    np.testing.assert_allclose(days.params_ / [1, 7, 1, 1], weeks.params_, rtol=1e-5)
    np.testing.assert_allclose(
        days.predict(in_days, horizon="39w"), weeks.predict(cdnow, horizon="39w"), rtol=1e-5
    )


@pytest.mark.parametrize("model_class", FAMILY)
@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_compressed_and_uncompressed_fits_are_identical(model_class, seed):
    rng = np.random.default_rng(seed)
    model = model_of(model_class, 0.5, 5.0, 0.8, 2.0)
    ages = rng.integers(1, 53, 3000).astype(float)
    simulated = model.simulate(3000, ages, rng=rng)
    simulated["recency"] = np.floor(simulated["recency"])  # whole weeks: patterns repeat
    plain = model_class().fit(simulated, unit="week")
    counts = simulated.groupby(["frequency", "recency", "T"]).size().rename("weight")
    compressed = model_class().fit(counts.reset_index(), unit="week")
    np.testing.assert_allclose(compressed.params_, plain.params_, rtol=1e-10)
    assert compressed.log_likelihood_ == pytest.approx(plain.log_likelihood_, rel=1e-12)


# --- stress grid ---------------------------------------------------------------------------------

STRESS_PARAMS = {
    "cdnow": (0.243, 4.414, 0.793, 2.426),
    "a+b<1": (0.3, 2.0, 0.2, 0.3),
    "alpha far above T": (50.0, 1e4, 2.0, 3.0),
    "near zero": (1e-3, 1e-3, 1e-3, 1e-3),
    "huge": (1e3, 1e3, 1e3, 1e3),
    "a = 1": (0.5, 3.0, 1.0, 2.0),
    "a = 1 + 1e-10": (0.5, 3.0, 1.0 + 1e-10, 2.0),
    "small r and alpha": (0.01, 0.01, 0.5, 0.5),
    "huge b": (0.5, 5.0, 0.5, 1e5),
    "cdnow in days": (0.243, 4.414 * 7, 0.793, 2.426),
}


def stress_data(kind):
    rng = np.random.default_rng(5)
    n = 400
    if kind == "weeks":
        T = rng.uniform(1.0, 39.0, n)
        x = np.concatenate([np.zeros(100), rng.integers(1, 10, 200), rng.integers(100, 700, 100)])
    elif kind == "ten years of days":
        T = rng.integers(1, 3653, n).astype(float)
        x = np.concatenate([np.zeros(100), rng.integers(1, 50, 200), rng.integers(100, 3000, 100)])
    else:  # "brand new": ages of minutes to a day, in days
        T = rng.uniform(1e-3, 1.0, n)
        x = np.concatenate([np.zeros(200), rng.integers(1, 5, 200)])
    t_x = np.where(x > 0, rng.uniform(0, 1, n) * T, 0.0)
    return pd.DataFrame({"frequency": x, "recency": t_x, "T": T})


@pytest.mark.parametrize("model_class", FAMILY)
@pytest.mark.parametrize("kind", ["weeks", "ten years of days", "brand new"])
@pytest.mark.parametrize("case", list(STRESS_PARAMS))
def test_stress_grid_predictions_are_finite(model_class, kind, case):
    """10 parameter sets x 3 data sets, per model: no NaN, no inf, no RuntimeWarning."""
    data = stress_data(kind)
    model = model_of(model_class, *STRESS_PARAMS[case])
    value, gradient = model._objective(model._prepare(data))(np.array(STRESS_PARAMS[case]))
    assert np.isfinite(value)
    assert np.all(np.isfinite(gradient))
    prediction = model.predict(data, horizon=365.0)
    assert np.all(np.isfinite(prediction.to_numpy()))
    assert prediction["p_alive"].between(0, 1).all()
    assert (prediction["expected_purchases"] >= 0).all()
    for t in (0.0, 1.0, 52.0):
        assert np.all(np.isfinite(model.expected_purchases(data, horizon=t)))
        assert np.isfinite(model.expected_purchases_new(horizon=t))
    pmf = model.purchase_pmf(np.arange(0, 200), horizon=52.0)
    assert np.all(np.isfinite(pmf))
    assert np.all(pmf >= 0)


@pytest.mark.parametrize("model_class", FAMILY)
@pytest.mark.parametrize(
    "truth",
    [
        (0.3, 20.0, 0.2, 0.3),
        (5.0, 3e4, 2.0, 3.0),
        (0.05, 2.0, 0.8, 2.0),
        (0.243, 30.9, 0.793, 2.426),
    ],
)
def test_stress_fits_on_ten_years_of_days(model_class, truth):
    rng = np.random.default_rng(11)
    ages = rng.integers(1, 3653, 5000).astype(float)
    simulated = model_of(model_class, *truth).simulate(5000, ages, rng=rng)
    # on this draw the MBG/NBD's likelihood keeps rising as r and alpha grow together (no
    # heterogeneity in the purchase rate to estimate): the fit says so
    runs_off = model_class is ModifiedBetaGeo and truth[0] == 5.0
    with (
        pytest.warns(ConvergenceWarning, match=r"r = \S+ runs off towards infinity")
        if runs_off else contextlib.nullcontext()
    ):  # fmt: skip
        fitted = model_class().fit(simulated, unit="day")
    assert np.all(np.isfinite(fitted.params_))
    assert np.isfinite(fitted.log_likelihood_)
    assert np.all(np.isfinite(fitted.predict(simulated, horizon="1y").to_numpy()))


# --- consistency of the new-customer formulas ----------------------------------------------------


@pytest.mark.parametrize("model_class", FAMILY)
@pytest.mark.parametrize("params", [(0.243, 4.414, 0.793, 2.426), (1.5, 3.0, 0.3, 0.4)])
def test_pmf_sums_to_one_and_its_mean_is_the_expectation(model_class, params):
    model = model_of(model_class, *params)
    pmf = model.purchase_pmf(np.arange(0, 4000), horizon=39.0)
    assert pmf.sum() == pytest.approx(1.0, rel=1e-9)
    mean = float(np.sum(np.arange(0, 4000) * pmf))
    assert mean == pytest.approx(model.expected_purchases_new(horizon=39.0), rel=1e-8)
    assert model.purchase_pmf(3, horizon=39.0) == pytest.approx(pmf[3], rel=1e-14)


@pytest.mark.parametrize("model_class", FAMILY)
def test_new_customer_expectation_matches_simulation(model_class):
    model = model_of(model_class, 0.6, 3.0, 0.7, 1.5)
    simulated = model.simulate(400_000, 30.0, rng=np.random.default_rng(3))
    mean, std_err = simulated["frequency"].mean(), simulated["frequency"].std() / np.sqrt(4e5)
    assert abs(mean - model.expected_purchases_new(horizon=30.0)) < 4 * std_err


# --- lifetimes -----------------------------------------------------------------------------------


def random_histories(rng, n=3000):
    T = rng.uniform(1.0, 60.0, n)
    x = rng.integers(0, 40, n).astype(float)
    return pd.DataFrame(
        {"frequency": x, "recency": np.where(x > 0, rng.uniform(0, 1, n) * T, 0), "T": T}
    )


def lifetimes_fitter(name, params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import lifetimes

        fitter = getattr(lifetimes, name)()
    fitter.params_ = pd.Series(dict(zip(["r", "alpha", "a", "b"], params, strict=True)))
    return fitter


def assert_agrees_with_lifetimes(model_class, fitter_name, seed):
    rng = np.random.default_rng(seed)
    for _ in range(10):
        params = np.exp(rng.uniform(np.log([0.1, 1.0, 0.3, 0.3]), np.log([3.0, 30.0, 5.0, 5.0])))
        data = random_histories(rng)
        ours = model_of(model_class, *params)
        theirs = lifetimes_fitter(fitter_name, params)
        x, t_x, T = data["frequency"], data["recency"], data["T"]
        t = float(rng.uniform(1, 60))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            alive = theirs.conditional_probability_alive(x, t_x, T)
            expected = theirs.conditional_expected_number_of_purchases_up_to_time(t, x, t_x, T)
            new = theirs.expected_number_of_purchases_up_to_time(t)
            pmf = [theirs.probability_of_n_purchases_up_to_time(t, n) for n in range(6)]
        np.testing.assert_allclose(ours.p_alive(data), alive, rtol=1e-6)
        np.testing.assert_allclose(ours.expected_purchases(data, horizon=t), expected, rtol=1e-6)
        assert ours.expected_purchases_new(horizon=t) == pytest.approx(float(new), rel=1e-6)
        np.testing.assert_allclose(ours.purchase_pmf(np.arange(6), horizon=t), pmf, rtol=1e-6)


def test_predictions_agree_with_lifetimes():
    assert_agrees_with_lifetimes(BetaGeo, "BetaGeoFitter", seed=8)


# --- persistence, state, errors ------------------------------------------------------------------


@pytest.mark.parametrize("model_class", FAMILY)
def test_save_and_load_keep_predictions_identical(model_class, cdnow, tmp_path):
    model = model_class().fit(cdnow, unit="week")
    path = tmp_path / "model.json"
    model.save(path)
    loaded = model_class.load(path)
    pd.testing.assert_frame_equal(
        loaded.predict(cdnow, horizon="52w"), model.predict(cdnow, horizon="52w")
    )
    assert loaded.expected_purchases_new(horizon="1y") == model.expected_purchases_new(horizon="1y")
    pd.testing.assert_series_equal(loaded.std_errors_, model.std_errors_)


def test_predict_table(fitted, cdnow):
    table = fitted.predict(cdnow, horizon="52w")
    assert list(table.columns) == ["p_alive", "expected_purchases"]
    assert table.index.equals(cdnow.index)
    pd.testing.assert_series_equal(table["p_alive"], fitted.p_alive(cdnow))
    np.testing.assert_allclose(
        table["expected_purchases"], fitted.expected_purchases(cdnow, horizon=52)
    )
    # a BG/NBD customer without repeat purchases is certainly alive
    assert (table.loc[cdnow["frequency"] == 0, "p_alive"] == 1.0).all()


def test_nothing_before_fit(cdnow):
    with pytest.raises(NotFittedError, match="not fitted yet"):
        BetaGeo().p_alive(cdnow)


def test_missing_columns_are_named(cdnow):
    with pytest.raises(SchemaError, match=r"needs column\(s\) \['recency'\].*2,357 rows"):
        BetaGeo().fit(cdnow.drop(columns="recency"))


def test_recency_beyond_age_is_counted():
    data = pd.DataFrame(
        {
            "frequency": [1, 2, 0, 3, 1],
            "recency": [5.0, 9.0, 0.0, 12.0, 1.0],
            "T": [10.0, 8.0, 4.0, 11.0, 3.0],
        },
        index=list("abcde"),
    )
    with pytest.raises(
        DataQualityError,
        match=r"'recency' > 'T' in 2 of 5 rows \(e\.g\. "
        r"customer 'b'\)",
    ):
        BetaGeo().fit(data)


def test_every_problem_is_reported_at_once():
    data = pd.DataFrame(
        {"frequency": [-1, 2, np.nan], "recency": [0.0, 9.0, 1.0], "T": [10.0, 8.0, 4.0]}
    )
    with pytest.raises(DataQualityError) as raised:
        BetaGeo().fit(data)
    message = str(raised.value)
    assert "'frequency' is negative in 1 of 3 rows" in message
    assert "'recency' > 'T' in 1 of 3 rows" in message
    assert "missing or infinite in 1 of 3 rows" in message


def test_scoring_checks_its_input_too(fitted):
    with pytest.raises(DataQualityError, match="'frequency' is negative in 1 of 1 rows"):
        fitted.p_alive(pd.DataFrame({"frequency": [-2], "recency": [0.0], "T": [3.0]}))
    with pytest.raises(SchemaError, match="numeric"):
        fitted.p_alive(pd.DataFrame({"frequency": ["x"], "recency": [0.0], "T": [3.0]}))
    with pytest.raises(SchemaError, match="horizon"):
        fitted.expected_purchases(
            pd.DataFrame({"frequency": [1], "recency": [1.0], "T": [3.0]}), horizon=-1.0
        )


@pytest.mark.parametrize("model_class", FAMILY)
def test_scores_computed_per_pattern_equal_scores_row_by_row(model_class):
    rng = np.random.default_rng(7)
    model = model_of(model_class, 0.6, 8.0, 0.9, 1.7)
    days = rng.integers(1, 120, 400)
    base = model.simulate(400, days / 7.0, rng=rng)
    base["recency"] = np.minimum(np.floor(base["recency"] * 7.0), days) / 7.0  # whole days
    base.index = pd.Index([f"c{i}" for i in range(400)], name="customer_id")
    assert len(base.drop_duplicates()) < len(base)  # patterns repeat
    table = model.predict(base, horizon=30.0)
    one_by_one = pd.concat([model.predict(base.iloc[[i]], horizon=30.0) for i in range(400)])
    pd.testing.assert_frame_equal(table, one_by_one, check_exact=True)
    pd.testing.assert_series_equal(model.p_alive(base), table["p_alive"], check_names=False)


@st.composite
def flawed_summaries(draw):
    """Small summaries whose rows may break any of the rules, with repeated rows."""
    n_rows = draw(st.integers(1, 12))
    frequency = st.sampled_from([0, 1, 3, -1, 2.5, np.inf])
    time = st.sampled_from([0.0, 1.0, 2.5, 4.0, -1.0, np.inf, np.nan])
    rows = draw(st.lists(st.tuples(frequency, time, time), min_size=n_rows, max_size=n_rows))
    data = pd.DataFrame(rows, columns=["frequency", "recency", "T"])
    data.index = pd.Index([f"c{i}" for i in range(n_rows)])
    return data


@pytest.mark.parametrize("model_class", FAMILY)
@settings(max_examples=80, deadline=None)
@given(data=flawed_summaries())
def test_checks_on_patterns_report_what_row_checks_report(model_class, data):
    """Fitting and scoring check the distinct rows; the message counts and names rows."""
    model = model_of(model_class, 0.6, 8.0, 0.9, 1.7)
    name = model_class.__name__
    for is_fit, check in ((False, lambda: model.p_alive(data)),
                          (True, lambda: model_class().fit(data))):  # fmt: skip
        try:
            checked_summary(data, name, is_fit=is_fit)
        except DataQualityError as row_error:
            expected = str(row_error)
        else:
            if not is_fit:
                assert model.p_alive(data).between(0.0, 1.0).all()
            continue
        with pytest.raises(DataQualityError) as pattern_error:
            check()
        assert str(pattern_error.value) == expected
