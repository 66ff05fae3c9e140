"""The shared engine and estimator base, on the NBD (a Gamma-Poisson count model).

The NBD is small enough to state here and has a closed-form likelihood and gradient, so every
piece of the machinery (log-scale optimisation, Hessian standard errors, delta method, several
starts, penalty, persistence) can be checked against known answers.
"""

import re
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import digamma, gammaln

import cvalue
from cvalue.errors import ConvergenceError, DataQualityError, NotFittedError, SchemaError
from cvalue.models._base import (
    Model,
    Patterns,
    SmallBaseWarning,
    distinct_values,
    frame_per_row,
    patterns_of,
    per_pattern,
)
from cvalue.models._mle import (
    EDGE_FACTOR,
    SEARCH_FACTOR,
    ConvergenceWarning,
    Edge,
    _Box,
    _edges,
    maximise,
)
from cvalue.units import Duration, TimeUnit


class NBD(Model):
    _param_names: ClassVar[tuple[str, ...]] = ("r", "alpha")

    def _prepare(self, data):
        return patterns_of(data, ("frequency", "T"), model="NBD")

    def _objective(self, patterns: Patterns):
        x, T, w = patterns["frequency"], patterns["T"], patterns.weights

        def objective(params):
            r, alpha = params
            ll = (gammaln(r + x) - gammaln(r) - gammaln(x + 1) + r * np.log(alpha / (alpha + T))
                  + x * np.log(T / (alpha + T)))  # fmt: skip
            d_r = digamma(r + x) - digamma(r) + np.log(alpha / (alpha + T))
            d_alpha = r / alpha - (r + x) / (alpha + T)
            gradient = np.array([np.sum(w * d_r), np.sum(w * d_alpha)])
            return float(np.sum(w * ll)), gradient if self._has_gradient else None

        return objective

    def _starting_points(self, patterns):
        return [np.array([1.0, 1.0]), np.array([0.5, 5.0]), np.array([2.0, 0.5])]


class NBDWithoutGradient(NBD):
    _has_gradient = False


def simulate(n, r, alpha, seed=0):
    rng = np.random.default_rng(seed)
    rate = rng.gamma(r, 1.0 / alpha, n)
    T = rng.choice([26.0, 39.0, 52.0], n)
    data = pd.DataFrame({"frequency": rng.poisson(rate * T), "T": T})
    data.attrs["unit"] = "week"
    return data


@pytest.fixture(scope="module")
def data():
    return simulate(20_000, 0.8, 4.0)


@pytest.fixture(scope="module")
def fitted(data):
    return NBD().fit(data)


def test_fit_recovers_the_simulated_parameters(fitted):
    truth = pd.Series({"r": 0.8, "alpha": 4.0})
    assert fitted.converged_
    assert ((fitted.params_ - truth).abs() < 3 * fitted.std_errors_).all()
    assert fitted.n_customers_ == 20_000
    assert fitted.unit_ is TimeUnit.WEEK


def test_standard_errors_match_the_analytic_information(fitted, data):
    """The NBD's expected information has no closed form, but the observed one does."""
    r, alpha = fitted.params_
    x, T = data["frequency"].to_numpy(), data["T"].to_numpy()
    from scipy.special import polygamma

    d_rr = np.sum(polygamma(1, r + x) - polygamma(1, r))
    d_ra = np.sum(1 / alpha - 1 / (alpha + T))
    d_aa = np.sum(-r / alpha**2 + (r + x) / (alpha + T) ** 2)
    covariance = np.linalg.inv(-np.array([[d_rr, d_ra], [d_ra, d_aa]]))
    np.testing.assert_allclose(fitted.covariance_.to_numpy(), covariance, rtol=1e-4)


def test_fits_without_a_gradient_agree(fitted, data):
    plain = NBDWithoutGradient().fit(data)
    np.testing.assert_allclose(plain.params_, fitted.params_, rtol=1e-4)
    np.testing.assert_allclose(plain.std_errors_, fitted.std_errors_, rtol=1e-3)
    assert plain.log_likelihood_ == pytest.approx(fitted.log_likelihood_, abs=1e-6)


def test_compressed_input_gives_the_same_fit(fitted, data):
    counts = data.groupby(["frequency", "T"]).size().rename("weight").reset_index()
    again = NBD().fit(counts, unit="week")
    np.testing.assert_allclose(again.params_, fitted.params_, rtol=1e-9)
    assert again.log_likelihood_ == pytest.approx(fitted.log_likelihood_, rel=1e-12)


def test_bootstrap_replicates_spread_as_the_standard_errors_say(fitted, data):
    """A replicate refits on the customers drawn with replacement: the spread of many
    replicates' estimates is the sampling spread the Hessian's standard errors describe."""
    rng = np.random.default_rng(7)
    replicates = np.array([fitted.resampled(rng).params_.to_numpy() for _ in range(60)])
    assert fitted.params_.to_numpy() == pytest.approx(replicates.mean(axis=0), rel=0.02)
    np.testing.assert_allclose(replicates.std(axis=0, ddof=1), fitted.std_errors_, rtol=0.3)
    again = fitted.resampled(np.random.default_rng(7))
    assert again.params_.to_numpy() == pytest.approx(replicates[0], rel=1e-12)
    assert again.n_customers_ == fitted.n_customers_


def test_only_a_model_fitted_on_data_is_resampled(fitted):
    given = NBD.from_params(0.8, 4.0)
    with pytest.raises(SchemaError, match="no customers to resample"):
        given.resampled(np.random.default_rng(0))
    loaded = NBD.from_dict(fitted.to_dict())
    with pytest.raises(SchemaError, match="from_params, loaded"):
        loaded.resampled(np.random.default_rng(0))


def test_a_model_without_its_data_keeps_its_fit_and_cannot_be_resampled(fitted, data):
    kept = NBD().fit(data)
    kept.resampled(np.random.default_rng(0))  # resampled while it holds its patterns
    assert kept.drop_data() is kept
    pd.testing.assert_frame_equal(kept.summary(), fitted.summary())
    assert kept.log_likelihood_ == fitted.log_likelihood_
    with pytest.raises(SchemaError, match=r"drop_data\(\)"):
        kept.resampled(np.random.default_rng(0))


def test_summary_table(fitted):
    table = fitted.summary(level=0.9)
    assert list(table.columns) == ["estimate", "std_err", "ci_lower", "ci_upper"]
    assert (table["ci_lower"] > 0).all()
    assert (table["ci_lower"] < table["estimate"]).all()
    assert (table["estimate"] < table["ci_upper"]).all()
    wider = fitted.summary(level=0.99)
    assert (wider["ci_upper"] > table["ci_upper"]).all()


def test_an_estimate_with_a_huge_standard_error_has_an_interval_from_0_to_infinity(fitted):
    """An estimate running off (se/estimate in the thousands) overflowed the interval's exp."""
    saved = fitted.to_dict()
    saved["covariance"] = [[1e12, 0.0], [0.0, 1.0]]
    table = NBD.from_dict(saved).summary()  # warnings are errors: no overflow warning
    assert table.loc["r", "ci_lower"] == 0.0
    assert table.loc["r", "ci_upper"] == np.inf
    assert np.isfinite(table.loc["alpha"]).all()


def test_information_criteria(fitted):
    assert fitted.aic_ == pytest.approx(4 - 2 * fitted.log_likelihood_)
    assert fitted.bic_ == pytest.approx(2 * np.log(20_000) - 2 * fitted.log_likelihood_)


def test_nothing_before_fit():
    model = NBD()
    with pytest.raises(NotFittedError, match=r"not fitted yet; call \.fit"):
        model.summary()
    with pytest.raises(AttributeError):
        model.std_errors_  # noqa: B018
    assert "not fitted" in repr(model)


def test_save_and_load_round_trip(fitted, tmp_path):
    path = tmp_path / "nbd.json"
    fitted.save(path)
    loaded = NBD.load(path)
    pd.testing.assert_series_equal(loaded.params_, fitted.params_)
    pd.testing.assert_frame_equal(loaded.covariance_, fitted.covariance_)
    assert loaded.unit_ is TimeUnit.WEEK
    assert loaded.log_likelihood_ == fitted.log_likelihood_
    assert '"model": "NBD"' in path.read_text()
    with pytest.raises(SchemaError, match="is a 'NBD', not a NBDWithoutGradient"):
        NBDWithoutGradient.load(path)


def test_penalizer_shrinks_the_estimates(data):
    plain = NBD().fit(data)
    shrunk = NBD(penalizer=0.1).fit(data)
    assert np.sum(shrunk.params_**2) < np.sum(plain.params_**2)


def test_time_spans_in_the_model_unit(fitted):
    assert fitted._in_units("52w") == 52.0
    assert fitted._in_units("1y") == pytest.approx(365.2425 / 7)
    assert fitted._in_units(Duration(14, TimeUnit.DAY)) == 2.0
    assert fitted._in_units(3.5) == 3.5
    without_unit = simulate(2_000, 1.0, 2.0)
    without_unit.attrs.clear()
    unknown = NBD().fit(without_unit)
    assert unknown.unit_ is None
    with pytest.raises(SchemaError, match="does not know its data's unit"):
        unknown._in_units("52w")


def test_missing_columns_and_bad_input():
    with pytest.raises(SchemaError, match=r"needs column\(s\) \['T'\]"):
        NBD().fit(pd.DataFrame({"frequency": [1, 2]}))
    with pytest.raises(SchemaError, match="needs a pandas DataFrame"):
        NBD().fit([1, 2])


def test_a_fit_that_cannot_converge_says_what_the_optimiser_said():
    def broken(params):
        return np.nan, np.full(2, np.nan)

    with pytest.raises(ConvergenceError, match=r"did not converge from 2 start\(s\).*penalizer"):
        maximise(broken, [np.ones(2), np.full(2, 2.0)], n_obs=10.0, has_gradient=True, model="X")


# --- the search box, edges and bases that cannot identify a model ------------------------------


class WatchedNBD(NBD):
    """The NBD, recording every parameter vector the engine evaluates."""

    evaluated: ClassVar[list[np.ndarray]] = []

    def _objective(self, patterns: Patterns):
        objective = super()._objective(patterns)

        def watched(params):
            self.evaluated.append(np.array(params))
            return objective(params)

        return watched


def test_a_parameter_running_off_stops_on_the_box_and_is_named():
    """One purchase rate for everybody: the NBD's r and alpha grow together without end."""
    rng = np.random.default_rng(3)
    T = rng.choice([26.0, 39.0, 52.0], 5_000)
    data = pd.DataFrame({"frequency": rng.poisson(0.2 * T), "T": T})
    WatchedNBD.evaluated.clear()
    with pytest.warns(ConvergenceWarning) as caught:
        model = WatchedNBD().fit(data)
    message = str(caught[0].message)
    assert caught[0].filename == __file__  # the warning points at the caller of fit
    assert "WatchedNBD converged to the edge of its parameter space" in message
    # the search stops where the likelihood no longer rises measurably, r ~ 7,500 here
    for name in ("r", "alpha"):
        assert re.search(rf"\b{name} = \S+ (runs off towards infinity|is not determined)", message)
    assert model.params_["r"] / model.params_["alpha"] == pytest.approx(0.2, rel=0.02)
    evaluated = np.array(WatchedNBD.evaluated)
    # the Hessian's central differences step 1e-5 beyond the box in log-parameters
    assert evaluated.max() <= SEARCH_FACTOR * np.exp(2e-5)
    assert evaluated.min() >= np.exp(-2e-5) / SEARCH_FACTOR


def test_edges_are_beyond_the_edge_factor_or_flat():
    box = _Box.around(np.array([1.0, 50.0, 1.0, 1.0]))
    edge = np.log(EDGE_FACTOR)
    theta = np.array([edge + 0.1, np.log(50.0) - edge - 0.1, 0.0, 0.0])
    covariance = np.diag([1.0, 1.0, 36.0, -1.0])  # a standard error of 6; no curvature
    assert _edges(theta, box, covariance) == (
        Edge(0, "upper"), Edge(1, "lower"), Edge(2, "flat"), Edge(3, "flat"))  # fmt: skip
    assert _edges(np.array([edge - 0.1, np.log(50.0)]), _Box.around(np.array([1.0, 50.0])),
                  np.eye(2)) == ()  # fmt: skip


def test_starts_outside_the_box_are_moved_into_it():
    def objective(params):
        r, alpha = params
        return -float((r - 2.0) ** 2 + (alpha - 3.0) ** 2), -2.0 * np.array([r - 2.0, alpha - 3.0])

    found = maximise(objective, [np.array([1e300, 0.0])], n_obs=1.0, has_gradient=True)
    np.testing.assert_allclose(found.params, [2.0, 3.0], rtol=1e-6)
    assert found.edges == ()


def test_a_small_base_warns(data):
    with pytest.warns(SmallBaseWarning, match="NBD is fitted on 50 customers, fewer than 100"):
        NBD().fit(data.iloc[:50])


def test_bases_that_cannot_identify_the_model_are_refused(data):
    same = pd.DataFrame({"frequency": [2] * 150, "T": 39.0})
    with pytest.raises(DataQualityError, match="every customer has the same history"):
        NBD().fit(same)
    nobody = pd.DataFrame({"frequency": 0, "T": data["T"]})
    with pytest.raises(DataQualityError, match="no customer has a repeat purchase"):
        NBD().fit(nobody)
    empty = pd.DataFrame({"frequency": [1, 2], "T": [10.0, 20.0], "weight": [0.0, 0.0]})
    with pytest.raises(DataQualityError, match="no customer to fit"):
        NBD().fit(empty)


def test_values_per_pattern_are_gathered_for_every_row():
    rng = np.random.default_rng(5)
    data = pd.DataFrame(
        {"frequency": rng.integers(0, 4, 200), "T": rng.integers(1, 30, 200) / 7.0},
        index=pd.Index(rng.permutation(200) + 1000, name="customer_id"),
    )
    values, inverse = per_pattern(data, ("frequency", "T"), model="NBD")
    scores = {"twice_T": 2.0 * values["T"], "frequency": values["frequency"]}
    frame = frame_per_row(scores, inverse, data.index)
    expected = pd.DataFrame({"twice_T": 2.0 * data["T"], "frequency": data["frequency"] * 1.0})
    pd.testing.assert_frame_equal(frame, expected, check_exact=True)
    with pytest.raises(SchemaError, match=r"needs column\(s\) \['x'\]"):
        per_pattern(data, ("x",), model="NBD")


@settings(max_examples=80, deadline=None)
@given(
    values=st.lists(
        st.sampled_from([0.0, -0.0, 1.5, 2.0 / 7.0, -3.0, np.inf, -np.inf, np.nan, 1e300]),
        max_size=60,
    )
)
def test_distinct_values_are_those_of_numpy_unique(values):
    array = np.array(values, dtype=np.float64)
    distinct, inverse = distinct_values(array)
    expected_distinct, expected_inverse = np.unique(array, return_inverse=True)
    np.testing.assert_array_equal(distinct, expected_distinct)
    np.testing.assert_array_equal(inverse, expected_inverse)
    assert inverse.dtype == np.intp


# --- the contract's constructors: from_params and with_params, on every model -------------------

GIVEN = {
    cvalue.BetaGeo: (0.243, 4.414, 0.793, 2.426),
    cvalue.ModifiedBetaGeo: (0.525, 6.183, 0.891, 1.614),
    cvalue.ParetoNBD: (0.553, 10.578, 0.606, 11.669),
    cvalue.BetaGeoBetaBinom: (1.204, 0.750, 0.657, 2.783),
    cvalue.ShiftedBetaGeo: (0.704, 1.182),
    cvalue.BetaDiscreteWeibull: (0.704, 1.182, 1.0),
    cvalue.GammaGamma: (6.25, 3.74, 15.44),
}


@pytest.mark.parametrize("model_class", list(GIVEN), ids=lambda c: c.__name__)
def test_every_model_is_built_from_parameters_by_position_or_by_name(model_class):
    values = GIVEN[model_class]
    by_position = model_class.from_params(*values, unit="week")
    names = list(by_position.params_.index)
    by_name = model_class.from_params(**dict(zip(names, values, strict=True)), unit="week")
    assert by_position.params_.tolist() == by_name.params_.tolist() == list(values)
    assert by_name.unit_ == cvalue.TimeUnit.WEEK
    with pytest.raises(SchemaError, match="parameters must be positive"):
        model_class.from_params(*values[:-1], -1.0)
    with pytest.raises(SchemaError, match=r"has \d parameters"):
        model_class.from_params(*values, 1.0)
    with pytest.raises(SchemaError, match="unknown \\['nu'\\]"):
        model_class.from_params(**dict(zip(names, values, strict=True)), nu=1.0)


@pytest.mark.parametrize("model_class", list(GIVEN), ids=lambda c: c.__name__)
def test_with_params_moves_the_parameters_and_keeps_the_rest(model_class):
    model = model_class.from_params(*GIVEN[model_class], unit="week")
    moved_values = [value * 1.1 for value in GIVEN[model_class]]
    moved = model.with_params(moved_values)
    assert type(moved) is model_class
    assert moved.params_.tolist() == pytest.approx(moved_values, rel=1e-15)
    assert model.params_.tolist() == list(GIVEN[model_class])  # the original is untouched
    assert moved.unit_ == model.unit_
    by_name = model.with_params(dict(zip(model.params_.index, moved_values, strict=True)))
    assert by_name.params_.tolist() == moved.params_.tolist()
    with pytest.raises(SchemaError, match="parameters"):
        model.with_params(moved_values[:-1])
