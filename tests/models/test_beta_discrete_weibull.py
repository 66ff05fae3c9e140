"""BdW: the sBG at c = 1, the Fader-Hardie survivor data, gradients, simulation, stress."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cvalue.errors import DataQualityError, SchemaError
from cvalue.models.beta_discrete_weibull import BetaDiscreteWeibull
from cvalue.models.shifted_beta_geo import ShiftedBetaGeo, lr_test

REGULAR = [1000, 631, 468, 382, 326, 289, 262, 241]
HIGH_END = [1000, 869, 743, 653, 593, 551, 517, 491]


def fitted(params: list[float], unit: str | None = None) -> BetaDiscreteWeibull:
    return BetaDiscreteWeibull.from_dict({
        "model": "BetaDiscreteWeibull",
        "params": dict(zip(("alpha", "beta", "c"), params, strict=True)),
        "covariance": np.eye(3).tolist(), "log_likelihood": 0.0, "n_customers": 1.0,
        "unit": unit,
    })  # fmt: skip


# --- c = 1 is the sBG ---------------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(st.floats(1e-3, 1e3), st.floats(1e-3, 1e3))
def test_c_equal_one_is_the_sbg(alpha: float, beta: float):
    t = np.arange(0.0, 40.0)
    sbg = ShiftedBetaGeo._log_survival(np.array([alpha, beta]), t)[0]
    bdw = BetaDiscreteWeibull._log_survival(np.array([alpha, beta, 1.0]), t)[0]
    np.testing.assert_allclose(bdw, sbg, rtol=1e-12, atol=1e-12)
    churn_sbg = ShiftedBetaGeo._log_churn(np.array([alpha, beta]), t[1:])[0]
    churn_bdw = BetaDiscreteWeibull._log_churn(np.array([alpha, beta, 1.0]), t[1:])[0]
    # the BdW takes P(T = t) as S(t - 1) - S(t): with hazards ~1e-5 that costs a few digits
    np.testing.assert_allclose(churn_bdw, churn_sbg, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("survivors", [REGULAR, HIGH_END])
def test_sbg_fit_is_the_bdw_likelihood_at_c_one(survivors: list[int]):
    """At c = 1 the BdW likelihood is the sBG's, and the sBG MLE is stationary in (alpha, beta)."""
    sbg = ShiftedBetaGeo().fit_survivors(survivors)
    bdw = BetaDiscreteWeibull().fit_survivors(survivors)
    model = BetaDiscreteWeibull()
    objective = model._objective(model._prepare(
        pd.DataFrame({"duration": [1, 2, 3, 4, 5, 6, 7, 7], "is_censored": [0] * 7 + [1],
                      "weight": np.append(-np.diff(survivors), survivors[-1])})))  # fmt: skip
    value, gradient = objective(np.append(sbg.params_.to_numpy(), 1.0))
    assert value == pytest.approx(sbg.log_likelihood_, rel=1e-12)
    assert np.abs(gradient[:2] * sbg.params_.to_numpy()).max() < 1e-4
    assert bdw.log_likelihood_ >= sbg.log_likelihood_
    test = lr_test(sbg, bdw)
    assert test.df == 1


def test_bdw_fit_on_the_fader_hardie_data():
    """Our fit (no published BdW estimates for these data were found to compare with)."""
    regular = BetaDiscreteWeibull().fit_survivors(REGULAR)
    high_end = BetaDiscreteWeibull().fit_survivors(HIGH_END)
    np.testing.assert_allclose(regular.params_, [0.4556, 0.7793, 1.2835], rtol=2e-3)
    np.testing.assert_allclose(high_end.params_, [0.2143, 1.4266, 1.7236], rtol=2e-3)
    assert round(regular.log_likelihood_, 2) == -1679.60
    assert round(high_end.log_likelihood_, 2) == -1605.31


# --- gradient, values ---------------------------------------------------------------------------


@pytest.mark.parametrize("params", [[0.5, 0.8, 1.3], [2.0, 5.0, 0.4], [0.01, 40.0, 3.0]])
def test_gradient_matches_finite_differences(params: list[float]):
    model = BetaDiscreteWeibull()
    simulated = fitted(params).simulate(2_000, 15, rng=np.random.default_rng(0))
    objective = model._objective(model._prepare(simulated))
    # alpha << beta makes the log-likelihood carry ~1e-9 of rounding: a step of 1e-4 keeps the
    # finite differences above that noise
    theta, step = np.log(params), 1e-4
    analytic = objective(np.array(params))[1] * params
    numeric = [(objective(np.exp(theta + step * e))[0] - objective(np.exp(theta - step * e))[0])
               / (2 * step) for e in np.eye(3)]  # fmt: skip
    np.testing.assert_allclose(analytic, numeric, rtol=1e-4, atol=1e-6)


def test_values_at_c_one_equal_the_sbg_closed_forms():
    bdw, sbg = fitted([3.0, 5.0, 1.0]), ShiftedBetaGeo.from_dict({
        "model": "ShiftedBetaGeo", "params": {"alpha": 3.0, "beta": 5.0},
        "covariance": np.eye(2).tolist(), "log_likelihood": 0.0, "n_customers": 1.0,
    })  # fmt: skip
    assert bdw.del_(0.1) == pytest.approx(sbg.del_(0.1), rel=1e-12)
    np.testing.assert_allclose(bdw.derl(0.1, [0, 4, 30]), sbg.derl(0.1, [0, 4, 30]), rtol=1e-12)
    np.testing.assert_allclose(bdw.retention_rate([1, 2, 9]), sbg.retention_rate([1, 2, 9]),
                               rtol=1e-12)  # fmt: skip
    assert bdw.expected_lifetime() == pytest.approx(sbg.expected_lifetime(), rel=1e-9)
    # a heavy tail (alpha * c <= 1) has no finite expected lifetime
    assert fitted([0.5, 1.0, 1.5]).expected_lifetime() == np.inf
    assert np.isfinite(fitted([0.8, 1.0, 2.0]).expected_lifetime())


def test_duration_dependence_shapes_the_retention_curve():
    # c > 1: individual churn rises with tenure, so the cohort's retention can dip first
    rising = fitted([2.0, 1.0, 3.0]).retention_rate(np.arange(1, 10))
    assert rising[1] < rising[0]
    falling = fitted([2.0, 1.0, 0.5]).retention_rate(np.arange(1, 10))
    assert np.all(np.diff(falling) > 0)


# --- per-customer predictions -------------------------------------------------------------------


def active(durations: list[int], is_censored: list[int] | None = None) -> pd.DataFrame:
    flags = [1] * len(durations) if is_censored is None else is_censored
    return pd.DataFrame({"duration": durations, "is_censored": flags})


def test_predict_at_c_one_is_the_sbg_prediction():
    bdw, sbg = fitted([0.704, 1.182, 1.0]), ShiftedBetaGeo.from_dict({
        "model": "ShiftedBetaGeo", "params": {"alpha": 0.704, "beta": 1.182},
        "covariance": np.eye(2).tolist(), "log_likelihood": 0.0, "n_customers": 1.0,
    })  # fmt: skip
    data = active([0, 1, 4, 4, 30, 200], [1, 1, 1, 0, 1, 1])
    for horizon in (1, 12, 100):
        expected = sbg.predict(data, horizon=horizon, discount=0.1)
        pd.testing.assert_frame_equal(
            bdw.predict(data, horizon=horizon, discount=0.1), expected, rtol=1e-9
        )


@pytest.mark.parametrize("params", [[0.4556, 0.7793, 1.2835], [2.0, 1.0, 3.0], [1.0, 2.0, 0.5]])
def test_predict_is_the_conditional_survival(params: list[float]):
    """S(n + h) / S(n), its partial sums and r(n + 1), straight from ``survival``."""
    model = fitted(params)
    tenures, horizon = [0, 2, 7, 25], 9
    predicted = model.predict(active(tenures), horizon=horizon, discount=0.05)
    for n, row in zip(tenures, predicted.itertuples(), strict=True):
        still = model.survival(n + np.arange(1, horizon + 1)) / model.survival(n)
        assert row.p_renew_next == pytest.approx(model.retention_rate(n + 1), rel=1e-12)
        assert row.p_active_at_horizon == pytest.approx(still[-1], rel=1e-12)
        assert row.expected_renewals == pytest.approx(still.sum(), rel=1e-12)
        assert row.derl == pytest.approx(model.derl(0.05, n), rel=1e-12)


@settings(max_examples=40, deadline=None)
@given(st.floats(1e-2, 1e2), st.floats(1e-2, 1e2), st.floats(0.1, 4.0),
       st.lists(st.integers(0, 500), min_size=1, max_size=5), st.integers(0, 40))  # fmt: skip
def test_predict_properties(alpha: float, beta: float, c: float, tenures: list[int],
                            horizon: int):  # fmt: skip
    model = fitted([alpha, beta, c])
    near = model.predict(active(tenures), horizon=horizon)
    later = model.predict(active(tenures), horizon=horizon + 3)
    for column in ("p_renew_next", "p_active_at_horizon"):
        assert np.all((near[column] >= 0) & (near[column] <= 1))
    assert np.all(later["expected_renewals"] >= near["expected_renewals"])
    assert np.all(near["expected_renewals"] <= horizon + 1e-9)
    for n, still in zip(tenures, near["p_active_at_horizon"], strict=True):
        product = np.prod(model.retention_rate(np.arange(n + 1, n + horizon + 1)))
        assert still == pytest.approx(product, rel=1e-9, abs=1e-300)


def test_simulate_takes_a_duration_in_the_model_unit():
    model = fitted([1.0, 2.0, 0.7], unit="month")
    by_count = model.simulate(1_000, 24, rng=np.random.default_rng(6))
    by_duration = model.simulate(1_000, "2y", rng=np.random.default_rng(6))
    pd.testing.assert_frame_equal(by_count, by_duration)
    assert by_duration.attrs["unit"] == "month"
    with pytest.raises(SchemaError, match="whole number of periods"):
        model.simulate(10, "10d", rng=np.random.default_rng(6))


# --- simulation recovery ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "n_periods"),
    [([0.456, 0.779, 1.283], 12), ([2.0, 5.0, 0.6], 24), ([1.0, 3.0, 1.5], 12),
     ([5.0, 20.0, 0.35], 36)],
)  # fmt: skip
def test_simulation_recovers_parameters(params: list[float], n_periods: int):
    simulated = fitted(params).simulate(40_000, n_periods, rng=np.random.default_rng(9))
    model = BetaDiscreteWeibull().fit(simulated)
    distance = np.abs(model.params_.to_numpy() - params) / model.std_errors_.to_numpy()
    assert np.all(distance < 3.0), (model.summary(), distance)


def test_simulated_survival_matches_the_model():
    model = fitted([1.0, 2.0, 0.7])
    durations = model.simulate(200_000, 12, rng=np.random.default_rng(4))
    alive = [((durations["duration"] > t) | (durations["is_censored"] == 1)).mean()
             for t in (1, 4, 12)]  # fmt: skip
    np.testing.assert_allclose(alive, model.survival([1, 4, 12]), atol=0.004)


# --- properties and stress ----------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.floats(1e-3, 1e3), st.floats(1e-3, 1e3), st.floats(0.05, 5.0))
def test_properties(alpha: float, beta: float, c: float):
    model = fitted([alpha, beta, c])
    survival = model.survival(np.arange(0, 50))
    assert np.all(np.isfinite(survival))
    assert np.all((survival >= 0) & (survival <= 1))
    assert np.all(np.diff(survival) <= 1e-15)
    assert np.all(np.isfinite(model.churn_probability(np.arange(1, 50))))


STRESS = [
    *itertools.product([1e-4, 1.0, 1e4], [1e-4, 1.0, 1e6], [0.05, 1.0, 8.0]),
    (1.0, 1.0, 30.0), (1.0, 1.0, 0.01), (1e-6, 1e9, 2.0),
]  # fmt: skip


@pytest.mark.parametrize("params", STRESS)
def test_stress_grid(params: tuple[float, float, float]):
    model = fitted(list(params))
    t = np.array([0.0, 1, 2, 10, 365, 3650])
    patterns = model._prepare(pd.DataFrame({"duration": [1, 3, 10, 10],
                                            "is_censored": [0, 0, 0, 1]}))  # fmt: skip
    value, gradient = model._objective(patterns)(np.array(params))
    outputs = [model.survival(t), model.retention_rate(t[1:]), model.churn_probability(t[1:]),
               [model.del_(0.05), value], model.derl(0.05, [0, 10]), gradient]  # fmt: skip
    for output in outputs:
        assert np.all(np.isfinite(np.asarray(output, dtype=float)))


def test_compressed_and_uncompressed_fits_agree():
    simulated = fitted([1.0, 2.0, 0.8]).simulate(3_000, 10, rng=np.random.default_rng(8))
    counts = simulated.value_counts().rename("weight").reset_index()
    one, two = BetaDiscreteWeibull().fit(simulated), BetaDiscreteWeibull().fit(counts)
    assert one.log_likelihood_ == pytest.approx(two.log_likelihood_, rel=1e-10)
    np.testing.assert_allclose(one.params_, two.params_, rtol=1e-5)


# --- persistence and errors ---------------------------------------------------------------------


def test_json_round_trip_and_per_cohort_fits(tmp_path: Path):
    table = pd.DataFrame([REGULAR, HIGH_END], index=["Regular", "High End"])
    separate = BetaDiscreteWeibull().fit_survivors(table, shared=False, unit="year")
    separate.save(tmp_path / "bdw.json")
    loaded = BetaDiscreteWeibull.load(tmp_path / "bdw.json")
    pd.testing.assert_series_equal(loaded.params_, separate.params_)
    assert loaded.n_params_ == 6
    shared = BetaDiscreteWeibull().fit_survivors(table)
    assert lr_test(shared, separate).df == 3


def test_bad_survivors_raise():
    with pytest.raises(DataQualityError, match="increases"):
        BetaDiscreteWeibull().fit_survivors([100, 90, 95])
