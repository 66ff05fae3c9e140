"""sBG: Fader & Hardie (2007) survivor data, cohorts, values, simulation, properties, stress."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cvalue.errors import DataQualityError, NotFittedError, SchemaError
from cvalue.models.shifted_beta_geo import ContractualModel, ShiftedBetaGeo, lr_test
from cvalue.units import Rate

REGULAR = [1000, 631, 468, 382, 326, 289, 262, 241]
HIGH_END = [1000, 869, 743, 653, 593, 551, 517, 491]
TABLE = pd.DataFrame([REGULAR, HIGH_END], index=["Regular", "High End"])


def fitted(params: list[float], unit: str | None = None) -> ShiftedBetaGeo:
    return ShiftedBetaGeo.from_dict({
        "model": "ShiftedBetaGeo", "params": dict(zip(("alpha", "beta"), params, strict=True)),
        "covariance": np.eye(2).tolist(), "log_likelihood": 0.0, "n_customers": 1.0,
        "unit": unit,
    })  # fmt: skip


def customers_of(survivors: list[int]) -> pd.DataFrame:
    """One row per customer: the survivor table expanded."""
    lost = -np.diff(survivors)
    duration = np.concatenate([np.repeat(np.arange(1, len(lost) + 1), lost),
                               np.full(survivors[-1], len(lost))])  # fmt: skip
    is_censored = np.concatenate([np.zeros(lost.sum()), np.ones(survivors[-1])])
    return pd.DataFrame({"duration": duration, "is_censored": is_censored.astype(int)})


@pytest.fixture(scope="module")
def regular() -> ShiftedBetaGeo:
    return ShiftedBetaGeo().fit_survivors(REGULAR, unit="year")


# --- published values: Fader & Hardie (2007), years 1-7 of survivors per 1,000 ----------------


def test_regular_parameters_log_likelihood_std_errors(regular: ShiftedBetaGeo):
    # 0.704 is the MLE; a peer test suite's 0.688 is a typo
    assert regular.params_.round(3).tolist() == [0.704, 1.182]
    assert round(regular.log_likelihood_, 2) == -1680.27
    assert regular.std_errors_.round(4).tolist() == [0.0656, 0.1525]


def test_regular_projection_years_8_to_12(regular: ShiftedBetaGeo):
    projected = 1000 * regular.survival(np.arange(8, 13))
    assert projected.round(1).tolist() == [220.1, 204.4, 191.2, 179.9, 170.0]


def test_high_end_parameters_and_log_likelihood():
    model = ShiftedBetaGeo().fit_survivors(HIGH_END)
    assert model.params_.round(3).tolist() == [0.668, 3.806]
    assert round(model.log_likelihood_, 2) == -1611.16


def test_per_cohort_fit_matches_separate_fits_and_the_lr_test(regular: ShiftedBetaGeo):
    separate = ShiftedBetaGeo().fit_survivors(TABLE, shared=False)
    assert list(separate.cohorts_) == ["Regular", "High End"]
    assert separate.cohorts_["Regular"].params_.round(3).tolist() == [0.704, 1.182]
    assert separate.n_params_ == 4
    assert separate.log_likelihood_ == pytest.approx(-1680.27 - 1611.16, abs=0.01)
    assert separate.summary().index.tolist()[:2] == ["alpha[Regular]", "beta[Regular]"]
    shared = ShiftedBetaGeo().fit_survivors(TABLE)
    test = lr_test(shared, separate)
    assert test.df == 2
    assert test.statistic == pytest.approx(
        2 * (separate.log_likelihood_ - shared.log_likelihood_))  # fmt: skip
    assert test.p_value < 1e-10
    with pytest.raises(NotFittedError, match="one parameter set per cohort"):
        separate.survival(3)
    with pytest.raises(SchemaError, match="fewer parameters first"):
        lr_test(separate, shared)
    with pytest.raises(SchemaError, match="different data"):
        lr_test(regular, separate)


def test_younger_cohorts_with_missing_later_periods():
    table = pd.DataFrame([REGULAR, [1000, 640, 470, np.nan, np.nan, np.nan, np.nan, np.nan]])
    model = ShiftedBetaGeo().fit_survivors(table)
    assert model.n_customers_ == 2000
    assert np.isfinite(model.log_likelihood_)


def test_individual_durations_fit_equals_the_survivor_fit(regular: ShiftedBetaGeo):
    model = ShiftedBetaGeo().fit(customers_of(REGULAR))
    np.testing.assert_allclose(model.params_, regular.params_, rtol=1e-6)
    assert model.log_likelihood_ == pytest.approx(regular.log_likelihood_, rel=1e-10)
    assert model.n_customers_ == 1000


# --- gradient, retention, values ----------------------------------------------------------------


@pytest.mark.parametrize("params", [[0.7, 1.2], [1e-3, 50.0], [40.0, 0.02]])
def test_gradient_matches_finite_differences(params: list[float]):
    model = ShiftedBetaGeo()
    patterns = model._prepare(customers_of(REGULAR))
    objective = model._objective(patterns)
    theta, step = np.log(params), 1e-6
    analytic = objective(np.array(params))[1] * params
    numeric = [(objective(np.exp(theta + step * e))[0] - objective(np.exp(theta - step * e))[0])
               / (2 * step) for e in np.eye(2)]  # fmt: skip
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6)


def test_retention_rate_and_churn(regular: ShiftedBetaGeo):
    t = np.arange(1, 30)
    survival = regular.survival(np.arange(0, 30))
    np.testing.assert_allclose(regular.retention_rate(t), survival[1:] / survival[:-1], rtol=1e-12)
    np.testing.assert_allclose(ContractualModel.retention_rate(regular, t),
                               regular.retention_rate(t), rtol=1e-12)  # fmt: skip
    np.testing.assert_allclose(regular.churn_probability(t), survival[:-1] - survival[1:],
                               rtol=1e-10)  # fmt: skip
    assert regular.retention_rate(1) == pytest.approx(0.6267, abs=1e-4)


@pytest.mark.parametrize("params", [[0.704, 1.182], [3.0, 5.0], [1.5, 0.5]])
@pytest.mark.parametrize("rate", [0.1, 0.01])
def test_closed_forms_equal_direct_sums(params: list[float], rate: float):
    model = fitted(params)
    assert model.del_(rate) == pytest.approx(ContractualModel.del_(model, rate), rel=1e-12)
    renewals = np.array([0, 1, 5, 40])
    direct = ContractualModel.derl(model, rate, renewals)
    np.testing.assert_allclose(model.derl(rate, renewals), direct, rtol=1e-12)
    # DEL pays at acquisition, then DERL(0) one period later
    assert model.del_(rate) == pytest.approx(1 + model.derl(rate, 0) / (1 + rate), rel=1e-12)


def test_expected_lifetime():
    assert fitted([0.704, 1.182]).expected_lifetime() == np.inf
    model = fitted([3.0, 5.0])
    assert model.expected_lifetime() == pytest.approx(7.0 / 2.0)
    assert model.del_(0.0) == pytest.approx(3.5)
    assert ContractualModel.expected_lifetime(model) == pytest.approx(3.5, rel=1e-6)
    assert fitted([1.5, 2.0]).derl(0.0, 3) == pytest.approx((2.0 + 3) / 0.5)


def test_rates_with_units(regular: ShiftedBetaGeo):
    assert regular.del_(Rate(0.1)) == pytest.approx(regular.del_(0.1), rel=1e-12)
    monthly = fitted([0.704, 1.182], unit="month")
    assert monthly.del_(Rate(0.1)) == pytest.approx(monthly.del_(Rate(0.1).per("month")))
    with pytest.raises(SchemaError, match="needs the model's unit"):
        fitted([1.0, 1.0]).del_(Rate(0.1))
    assert regular.survival("3y") == regular.survival(3)


# --- simulation recovery ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "n_periods"), [([0.704, 1.182], 7), ([3.0, 10.0], 12), ([0.2, 5.0], 24),
                              ([8.0, 1.0], 5)],
)  # fmt: skip
def test_simulation_recovers_parameters(params: list[float], n_periods: int):
    simulated = fitted(params).simulate(30_000, n_periods, rng=np.random.default_rng(5))
    model = ShiftedBetaGeo().fit(simulated)
    distance = np.abs(model.params_.to_numpy() - params) / model.std_errors_.to_numpy()
    assert np.all(distance < 3.0), (model.summary(), distance)


def test_simulated_survival_matches_the_model():
    model = fitted([0.704, 1.182])
    simulated = model.simulate(200_000, 10, rng=np.random.default_rng(2))
    share = [(simulated["duration"] >= t).mean() - ((simulated["duration"] == t)
             & (simulated["is_censored"] == 0)).mean() for t in (1, 5, 10)]  # fmt: skip
    np.testing.assert_allclose(share, model.survival([1, 5, 10]), atol=0.004)


# --- properties ---------------------------------------------------------------------------------


@settings(max_examples=80, deadline=None)
@given(st.floats(1e-3, 1e3), st.floats(1e-3, 1e3), st.floats(0.0, 1e4))
def test_properties(alpha: float, beta: float, start: float):
    model = fitted([alpha, beta])
    t = start + np.arange(0, 20)
    survival = model.survival(t)
    assert np.all(np.isfinite(survival))
    assert np.all((survival >= 0) & (survival <= 1))
    assert np.all(np.diff(survival) <= 1e-15)
    retention = model.retention_rate(t + 1)
    assert np.all((retention >= 0) & (retention <= 1))
    assert np.isfinite(model.del_(0.05))
    assert model.del_(0.05) >= 1.0


@settings(max_examples=6, deadline=None)
@given(st.integers(0, 2**31))
def test_compressed_and_uncompressed_fits_agree(seed: int):
    simulated = fitted([1.0, 2.0]).simulate(400, 6, rng=np.random.default_rng(seed))
    counts = simulated.value_counts().rename("weight").reset_index()
    one, two = ShiftedBetaGeo().fit(simulated), ShiftedBetaGeo().fit(counts)
    assert one.log_likelihood_ == pytest.approx(two.log_likelihood_, rel=1e-10)
    np.testing.assert_allclose(one.params_, two.params_, rtol=1e-5)


# --- stress grid --------------------------------------------------------------------------------

STRESS = list(itertools.product([1e-6, 1e-2, 1.0, 1e2, 1e6], [1e-6, 1e-2, 1.0, 1e2, 1e6, 1e9]))


@pytest.mark.parametrize("params", STRESS)
def test_stress_grid(params: tuple[float, float]):
    model = fitted(list(params))
    t = np.array([0, 1, 2, 10, 365, 3650, 1e6])
    patterns = model._prepare(customers_of(REGULAR))
    value, gradient = model._objective(patterns)(np.array(params))
    outputs = [model.survival(t), model.retention_rate(t[1:]), model.churn_probability(t[1:]),
               [model.del_(0.01), value], model.derl(0.01, [0, 10, 1000]), gradient]  # fmt: skip
    for output in outputs:
        assert np.all(np.isfinite(np.asarray(output, dtype=float)))


def test_stress_fits():
    for params in ([0.01, 0.01], [50.0, 500.0], [0.05, 50.0]):
        simulated = fitted(params).simulate(20_000, 36, rng=np.random.default_rng(1))
        model = ShiftedBetaGeo().fit(simulated)
        assert np.all(np.isfinite(model.params_))
        assert np.isfinite(model.log_likelihood_)


# --- persistence and errors ---------------------------------------------------------------------


def test_json_round_trip(regular: ShiftedBetaGeo, tmp_path: Path):
    regular.save(tmp_path / "sbg.json")
    loaded = ShiftedBetaGeo.load(tmp_path / "sbg.json")
    pd.testing.assert_series_equal(loaded.params_, regular.params_)
    assert loaded.unit_ == regular.unit_
    assert loaded.del_(0.1) == regular.del_(0.1)
    separate = ShiftedBetaGeo().fit_survivors(TABLE, shared=False)
    separate.save(tmp_path / "cohorts.json")
    back = ShiftedBetaGeo.load(tmp_path / "cohorts.json")
    pd.testing.assert_series_equal(back.params_, separate.params_)
    pd.testing.assert_frame_equal(back.covariance_, separate.covariance_)
    assert back.cohorts_ is not None
    assert back.cohorts_["High End"].survival(3) == pytest.approx(
        separate.cohorts_["High End"].survival(3)
    )


@pytest.mark.parametrize(
    ("survivors", "phrase"),
    [([1000, 631, 700, 382], "increases at period 2"),
     ([1000, 631, -1, -2], "negative"),
     ([0, 0, 0], "starts with 0"),
     ([1000], "two periods"),
     ([1000, np.nan, 500], "missing period")],
)  # fmt: skip
def test_bad_survivors_raise(survivors: list[float], phrase: str):
    with pytest.raises((DataQualityError, SchemaError), match=phrase):
        ShiftedBetaGeo().fit_survivors(survivors)


def test_every_bad_cohort_is_named():
    table = pd.DataFrame([[1000, 900, 950], [1000, -5, -6]], index=["a", "b"])
    with pytest.raises(DataQualityError, match=r"2 of 2 cohort\(s\).*'a'.*'b'"):
        ShiftedBetaGeo().fit_survivors(table)


@pytest.mark.parametrize(
    ("rows", "phrase"),
    [({"duration": [0, 2], "is_censored": [0, 1]}, "0 for a churned customer"),
     ({"duration": [1, 2], "is_censored": [2, 1]}, "'is_censored' is not 0 or 1"),
     ({"duration": [-1, 2], "is_censored": [1, 1]}, "negative"),
     ({"duration": [1.5, 2], "is_censored": [1, 1]}, "whole number")],
)  # fmt: skip
def test_bad_durations_raise(rows: dict[str, list[float]], phrase: str):
    with pytest.raises(DataQualityError, match=phrase):
        ShiftedBetaGeo().fit(pd.DataFrame(rows))


def test_prediction_errors(regular: ShiftedBetaGeo):
    with pytest.raises(NotFittedError):
        ShiftedBetaGeo().survival(1)
    with pytest.raises(SchemaError, match="start at period 1"):
        regular.retention_rate(0)
    with pytest.raises(SchemaError, match=">= 0"):
        regular.survival(-1)
    with pytest.raises(SchemaError, match="whole numbers"):
        regular.derl(0.1, 1.5)
    with pytest.raises(SchemaError, match=">= 0"):
        regular.del_(-0.1)


# --- per-customer predictions -------------------------------------------------------------------

# Fader & Hardie (2010), Table 3: DERL at d = 0.10 for a customer who has made 0..4 renewals, in
# two populations with mean churn 0.2. Case 1 is printed as alpha = 3.80, beta = 15.20; case 2
# as alpha = 0.067, beta = 0.267, which rounds alpha + beta = 1/3 (alpha = 1/15, beta = 4/15):
# the table's two decimals come from the unrounded pair (the rounded one gives 7.67 at n = 1).
FH2010_TABLE_3 = {
    (3.80, 15.20): [3.31, 3.45, 3.59, 3.72, 3.84],
    (1 / 15, 4 / 15): [7.68, 9.46, 9.86, 10.06, 10.19],
}


def active(durations: list[int]) -> pd.DataFrame:
    return pd.DataFrame({"duration": durations, "is_censored": [1] * len(durations)})


@pytest.mark.parametrize(("params", "published"), list(FH2010_TABLE_3.items()))
def test_predict_derl_matches_fader_hardie_2010_table_3(
    params: tuple[float, float], published: list[float]
):
    predicted = fitted(list(params)).predict(active([0, 1, 2, 3, 4]), horizon=1, discount=0.10)
    assert predicted["derl"].round(2).tolist() == published


def test_predict_derl_equals_a_direct_discounted_sum(regular: ShiftedBetaGeo):
    """DERL(d, n renewals) = sum_{t > n} S(t) / S(n) / 1.1^(t - n - 1), summed to t = n + 3000."""
    tenures = [0, 1, 3, 7, 20]
    predicted = regular.predict(active(tenures), horizon=1, discount=Rate(0.10))["derl"]
    for n, derl in zip(tenures, predicted, strict=True):
        t = np.arange(n + 1, n + 3001)
        direct = np.sum(regular.survival(t) / regular.survival(n) / 1.1 ** (t - n - 1))
        assert derl == pytest.approx(direct, rel=1e-10)


@pytest.mark.parametrize("params", [[0.704, 1.182], [3.0, 5.0], [1.0, 2.0], [0.05, 40.0]])
def test_predict_hand_formulas(params: list[float]):
    alpha, beta = params
    tenures, horizon = [0, 1, 5, 40], 6
    predicted = fitted(params).predict(active(tenures), horizon=horizon)
    for n, row in zip(tenures, predicted.itertuples(), strict=True):
        # r(t) = (beta + t - 1) / (alpha + beta + t - 1), FH 2007 eq. (8), for t = n + 1 ..
        renewals = [(beta + n + k) / (alpha + beta + n + k) for k in range(horizon)]
        still = np.cumprod(renewals)
        assert row.p_renew_next == pytest.approx(renewals[0], rel=1e-13)
        assert row.p_active_at_horizon == pytest.approx(still[-1], rel=1e-12)
        assert row.expected_renewals == pytest.approx(still.sum(), rel=1e-12)


def test_predict_columns_churned_customers_and_index():
    model = fitted([0.704, 1.182])
    data = pd.DataFrame(
        {"duration": [3, 3, 1, 0, 5], "is_censored": [1, 0, 0, 1, 1]}, index=list("abcde")
    )
    plain = model.predict(data, horizon=4)
    assert list(plain.columns) == ["p_renew_next", "p_active_at_horizon", "expected_renewals"]
    valued = model.predict(data, horizon=4, discount=0.1)
    assert list(valued.columns) == [*plain.columns, "derl"]
    assert valued.index.tolist() == list("abcde")
    # churn is final: a churned customer has nothing left, whatever the tenure
    assert (valued.loc[["b", "c"]] == 0.0).all().all()
    # the same tenure gives the same prediction; the churned row does not leak into it
    assert (
        valued.loc["a"].tolist()
        == model.predict(active([3]), horizon=4, discount=0.1).iloc[0].tolist()
    )
    assert valued.loc["a", "derl"] == pytest.approx(model.derl(0.1, 3))
    assert plain["expected_renewals"].loc[["a", "d", "e"]].tolist() == pytest.approx(
        [model.predict(active([n]), horizon=4)["expected_renewals"].iloc[0] for n in (3, 0, 5)]
    )  # fmt: skip
    nothing = model.predict(active([2]), horizon=0)
    assert nothing["p_active_at_horizon"].iloc[0] == 1.0
    assert nothing["expected_renewals"].iloc[0] == 0.0


def test_predict_horizon_in_the_model_unit():
    model = fitted([0.704, 1.182], unit="year")
    data = active([0, 2, 9])
    pd.testing.assert_frame_equal(
        model.predict(data, horizon="24M"), model.predict(data, horizon=2)
    )
    with pytest.raises(SchemaError, match="whole number of periods"):
        model.predict(data, horizon="18M")
    with pytest.raises(SchemaError, match="does not know its data's unit"):
        fitted([0.704, 1.182]).predict(data, horizon="2y")
    monthly = model.predict(data, horizon=1, discount=Rate(0.1))
    assert monthly["derl"].tolist() == model.predict(data, horizon=1, discount=0.1)["derl"].tolist()


def test_general_sums_equal_the_closed_forms():
    """The ContractualModel direct sums (used by the BdW) against the sBG's closed forms."""
    model = fitted([0.704, 1.182])
    params, tenure = model.params_.to_numpy(), np.array([0.0, 1, 7, 100, 10_000])
    for periods in (0, 1, 12, 64, 65, 300):
        closed = model._conditional(params, tenure, periods)
        direct = ContractualModel._conditional(model, params, tenure, periods)
        for one, two in zip(closed, direct, strict=True):
            np.testing.assert_allclose(one, two, rtol=1e-9)


@settings(max_examples=80, deadline=None)
@given(st.floats(1e-3, 1e3), st.floats(1e-3, 1e3), st.lists(st.integers(0, 10_000), min_size=1,
       max_size=6), st.integers(0, 60))  # fmt: skip
def test_predict_properties(alpha: float, beta: float, tenures: list[int], horizon: int):
    model = fitted([alpha, beta])
    data = active(tenures)
    near, later = model.predict(data, horizon=horizon), model.predict(data, horizon=horizon + 5)
    for column in ("p_renew_next", "p_active_at_horizon"):
        assert np.all((near[column] >= 0) & (near[column] <= 1))
    assert np.all(later["expected_renewals"] >= near["expected_renewals"])
    assert np.all(near["expected_renewals"] <= horizon + 1e-9)
    assert np.all(later["p_active_at_horizon"] <= near["p_active_at_horizon"])
    # S(n + h) / S(n) is the product of the retention rates r(n + 1) .. r(n + h)
    for n, still in zip(tenures, near["p_active_at_horizon"], strict=True):
        product = np.prod(model.retention_rate(np.arange(n + 1, n + horizon + 1)))
        assert still == pytest.approx(product, rel=1e-10)
    closed = model._conditional(np.array([alpha, beta]), np.array(tenures, float), horizon)
    direct = ContractualModel._conditional(model, np.array([alpha, beta]),
                                           np.array(tenures, float), horizon)  # fmt: skip
    for one, two in zip(closed, direct, strict=True):
        np.testing.assert_allclose(one, two, rtol=1e-9)


def test_predict_errors(regular: ShiftedBetaGeo):
    with pytest.raises(NotFittedError):
        ShiftedBetaGeo().predict(active([1]), horizon=2)
    with pytest.raises(SchemaError, match=r"needs column\(s\) \['is_censored'\]"):
        regular.predict(pd.DataFrame({"duration": [1]}), horizon=2)
    with pytest.raises(SchemaError, match="DataFrame"):
        regular.predict([1, 2], horizon=2)  # type: ignore[arg-type]
    with pytest.raises(DataQualityError, match=r"'duration' is negative in 2 row\(s\)"):
        regular.predict(
            pd.DataFrame({"duration": [-1, -2, 3], "is_censored": [1, 1, 1]}), horizon=2
        )
    with pytest.raises(DataQualityError, match="not a finite whole number"):
        regular.predict(pd.DataFrame({"duration": [np.nan], "is_censored": [1]}), horizon=2)
    with pytest.raises(SchemaError, match="whole number"):
        regular.predict(active([1]), horizon=2.5)
    with pytest.raises(SchemaError, match=">= 0"):
        regular.predict(active([1]), horizon=2, discount=-0.1)
    separate = ShiftedBetaGeo().fit_survivors(TABLE, shared=False)
    with pytest.raises(NotFittedError, match="one parameter set per cohort"):
        separate.predict(active([1]), horizon=2)


def test_simulate_takes_a_duration_in_the_model_unit():
    model = fitted([0.704, 1.182], unit="year")
    by_count = model.simulate(1_000, 7, rng=np.random.default_rng(3))
    by_duration = model.simulate(1_000, "84M", rng=np.random.default_rng(3))
    pd.testing.assert_frame_equal(by_count, by_duration)
    assert by_duration.attrs["unit"] == "year"
    assert ShiftedBetaGeo().fit(by_duration).unit_ == model.unit_
    with pytest.raises(SchemaError, match="whole number of periods"):
        model.simulate(10, "18M", rng=np.random.default_rng(3))
    with pytest.raises(SchemaError, match="at least 1"):
        model.simulate(10, 0, rng=np.random.default_rng(3))
