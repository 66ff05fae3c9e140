"""MBG/NBD (Batislam, Denizel & Filiztekin 2007): published CDNOW values, lifetimes, dropout at 0.

The properties, stress grid, gradients, recovery and persistence it shares with the BG/NBD are
run on both models in test_beta_geo.py.
"""

import warnings

import numpy as np
import pandas as pd
import pytest

from cvalue.datasets import load_cdnow
from cvalue.models.beta_geo import BetaGeo
from cvalue.models.modified_beta_geo import ModifiedBetaGeo


@pytest.fixture(scope="module")
def cdnow():
    return load_cdnow().summary


@pytest.fixture(scope="module")
def fitted(cdnow):
    return ModifiedBetaGeo().fit(cdnow, unit="week")


def test_cdnow_estimates(fitted):
    """MBG/NBD on the CDNOW 39-week calibration summary: r=0.525, alpha=6.183, a=0.891,
    b=1.614 (Batislam et al.'s model, as published for CDNOW by lifetimes' reference tests)."""
    assert fitted.params_.round(3).tolist() == [0.525, 6.183, 0.891, 1.614]
    assert fitted.converged_


def test_one_time_buyers_are_not_all_alive(fitted, cdnow):
    """The point of the MBG/NBD: dropout at time 0 makes P(alive | x = 0) < 1, falling with T."""
    one_timers = pd.DataFrame({"frequency": [0, 0], "recency": [0.0, 0.0], "T": [5.0, 38.0]})
    alive = fitted.p_alive(one_timers)
    assert (alive < 1).all()
    assert alive.iloc[1] < alive.iloc[0]
    a, b = fitted.params_["a"], fitted.params_["b"]
    at_zero = pd.DataFrame({"frequency": [0], "recency": [0.0], "T": [1e-12]})
    assert float(fitted.p_alive(at_zero).iloc[0]) == pytest.approx(b / (a + b), rel=1e-9)


def test_log_likelihood_matches_lifetimes(fitted, cdnow):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from lifetimes import ModifiedBetaGeoFitter

        theirs = ModifiedBetaGeoFitter()
        theirs.params_ = fitted.params_.copy()
        x, t_x, T = cdnow["frequency"], cdnow["recency"], cdnow["T"]
        mean_negative = theirs._negative_log_likelihood(
            np.log(fitted.params_.to_numpy()),
            x.to_numpy(),
            t_x.to_numpy(),
            T.to_numpy(),
            np.ones(len(cdnow)),
            0.0,
        )
    assert fitted.log_likelihood_ == pytest.approx(-mean_negative * len(cdnow), rel=1e-9)


def test_predictions_agree_with_lifetimes():
    rng = np.random.default_rng(9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from lifetimes import ModifiedBetaGeoFitter
    for _ in range(10):
        params = np.exp(rng.uniform(np.log([0.1, 1.0, 0.3, 0.3]), np.log([3.0, 30.0, 5.0, 5.0])))
        T = rng.uniform(1.0, 60.0, 3000)
        x = rng.integers(0, 40, 3000).astype(float)
        data = pd.DataFrame(
            {"frequency": x, "recency": np.where(x > 0, rng.uniform(0, 1, 3000) * T, 0.0), "T": T}
        )
        ours = ModifiedBetaGeo.from_params(*params)
        theirs = ModifiedBetaGeoFitter()
        theirs.params_ = pd.Series(dict(zip(["r", "alpha", "a", "b"], params, strict=True)))
        t = float(rng.uniform(1, 60))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            alive = theirs.conditional_probability_alive(x, data["recency"], T)
            expected = theirs.conditional_expected_number_of_purchases_up_to_time(
                t, x, data["recency"], T
            )
            new = theirs.expected_number_of_purchases_up_to_time(t)
            pmf = [theirs.probability_of_n_purchases_up_to_time(t, n) for n in range(6)]
        np.testing.assert_allclose(ours.p_alive(data), alive, rtol=1e-6)
        np.testing.assert_allclose(ours.expected_purchases(data, horizon=t), expected, rtol=1e-6)
        assert ours.expected_purchases_new(horizon=t) == pytest.approx(float(new), rel=1e-6)
        np.testing.assert_allclose(ours.purchase_pmf(np.arange(6), horizon=t), pmf, rtol=1e-6)


def test_fits_better_or_as_well_as_bg_nbd_on_cdnow(fitted, cdnow):
    """Same number of parameters; on CDNOW the two likelihoods are within a point."""
    bg = BetaGeo().fit(cdnow, unit="week")
    assert abs(fitted.log_likelihood_ - bg.log_likelihood_) < 1.0
