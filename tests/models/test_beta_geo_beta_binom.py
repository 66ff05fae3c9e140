"""BG/BB: Fader, Hardie & Shang (2010) donations, gradients, simulation, properties, stress."""

from __future__ import annotations

import itertools
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cvalue.datasets import load_donations
from cvalue.errors import DataQualityError, NotFittedError, SchemaError
from cvalue.models import beta_geo_beta_binom
from cvalue.models._mle import ConvergenceWarning
from cvalue.models.beta_geo_beta_binom import (
    BetaGeoBetaBinom,
    _alive_sum,
    _hyp2f1_one,
    _log_likelihood,
)
from cvalue.units import Rate

DONATIONS_PARAMS = [1.204, 0.750, 0.657, 2.783]
DONATIONS_STD_ERRORS = [0.0694, 0.0294, 0.0510, 0.3208]
NEW_CUSTOMER_PURCHASES = [
    0.4985, 0.9233, 1.2969, 1.6323, 1.9381, 2.2202, 2.4826, 2.7285, 2.9603, 3.1798, 3.3887,
]  # fmt: skip


def fitted(params: list[float], unit: str | None = None) -> BetaGeoBetaBinom:
    return BetaGeoBetaBinom.from_dict({
        "model": "BetaGeoBetaBinom", "params": dict(zip(BetaGeoBetaBinom._param_names, params,
                                                         strict=True)),
        "covariance": np.eye(4).tolist(), "log_likelihood": 0.0, "n_customers": 1.0,
        "unit": unit,
    })  # fmt: skip


def histories(n_periods: int, size: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = rng.integers(1, n_periods + 1, size)
    recency = np.floor(rng.uniform(0, 1, size) * (n + 1)).astype(np.int64)
    frequency = np.where(recency > 0, 1 + np.floor(rng.uniform(0, 1, size) * recency), 0)
    return pd.DataFrame({"frequency": frequency.astype(np.int64), "recency": recency,
                         "n_periods": n})  # fmt: skip


@pytest.fixture(scope="module")
def donations_model() -> BetaGeoBetaBinom:
    return BetaGeoBetaBinom().fit(load_donations(), unit="year")


# --- published values: Fader, Hardie & Shang (2010), donations (11,104 donors, n = 6) --------


def test_donations_parameters_log_likelihood_and_std_errors(donations_model: BetaGeoBetaBinom):
    assert donations_model.params_.round(3).tolist() == DONATIONS_PARAMS
    assert round(donations_model.log_likelihood_, 1) == -33225.6
    assert donations_model.std_errors_.round(4).tolist() == DONATIONS_STD_ERRORS
    assert donations_model.n_customers_ == 11104


def test_donations_new_customer_expected_purchases(donations_model: BetaGeoBetaBinom):
    expected = [round(donations_model.expected_purchases_new(horizon=n), 4) for n in range(1, 12)]
    assert expected == NEW_CUSTOMER_PURCHASES


def test_compressed_and_uncompressed_fits_agree(donations_model: BetaGeoBetaBinom):
    donations = load_donations()
    expanded = donations.loc[donations.index.repeat(donations["weight"])].drop(columns="weight")
    model = BetaGeoBetaBinom().fit(expanded.reset_index(drop=True))
    np.testing.assert_allclose(model.params_, donations_model.params_, rtol=1e-6)
    assert model.log_likelihood_ == pytest.approx(donations_model.log_likelihood_, rel=1e-12)


# --- gradients ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params", [[1.2, 0.75, 0.66, 2.8], [0.05, 8.0, 1.0, 0.02], [30.0, 0.2, 0.999999, 50.0]]
)
def test_gradient_matches_finite_differences(params: list[float]):
    data = histories(40, 300, seed=1)
    x, t_x, n = (data[c].to_numpy(dtype=float) for c in ("frequency", "recency", "n_periods"))
    theta = np.log(params)

    def total(log_params: np.ndarray) -> float:
        return float(np.sum(_log_likelihood(np.exp(log_params), x, t_x, n)[0]))

    analytic = np.sum(_log_likelihood(np.array(params), x, t_x, n)[1], axis=0) * params
    step = 1e-6
    numeric = [(total(theta + step * e) - total(theta - step * e)) / (2 * step) for e in np.eye(4)]
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-6)


def brute_force(
    params: list[float], x: np.ndarray, t_x: np.ndarray, n: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """FHS (2010) eq. (5) term by term with betaln, and its gradient as the terms' weighted mean.

    Each term is ``B(a1, b1) / B(alpha, beta) * B(a2, b2) / B(gamma, delta)``: alive through n
    ``(alpha + x, beta + n - x, gamma, delta + n)``, or dead after opportunity ``t_x + i``
    ``(alpha + x, beta + t_x + i - x, gamma + 1, delta + t_x + i)``.
    """
    from scipy.special import betaln, digamma, logsumexp

    alpha, beta, gamma, delta = params
    values, gradients = [], []
    for xi, ti, ni in zip(x, t_x, n, strict=True):
        args = np.array([(alpha + xi, beta + ni - xi, gamma, delta + ni)] + [
            (alpha + xi, beta + ti + i - xi, gamma + 1.0, delta + ti + i)
            for i in range(int(ni - ti))])  # fmt: skip
        a1, b1, a2, b2 = args.T
        logs = betaln(a1, b1) - betaln(alpha, beta) + betaln(a2, b2) - betaln(gamma, delta)
        total = logsumexp(logs)
        shares = np.exp(logs - total)
        buy, life = digamma(a1 + b1), digamma(a2 + b2)
        derivatives = np.column_stack([
            digamma(a1) - buy - digamma(alpha) + digamma(alpha + beta),
            digamma(b1) - buy - digamma(beta) + digamma(alpha + beta),
            digamma(a2) - life - digamma(gamma) + digamma(gamma + delta),
            digamma(b2) - life - digamma(delta) + digamma(gamma + delta),
        ])  # fmt: skip
        values.append(total)
        gradients.append(shares @ derivatives)
    return np.array(values), np.array(gradients)


def columns_of(data: pd.DataFrame) -> list[np.ndarray]:
    return [data[c].to_numpy(dtype=float) for c in ("frequency", "recency", "n_periods")]


moderate = st.floats(1e-2, 1e2)


@settings(max_examples=40, deadline=None)
@given(moderate, moderate, moderate, moderate, st.integers(0, 2**31), st.integers(1, 60))
def test_log_likelihood_equals_the_term_by_term_sum(
    alpha: float, beta: float, gamma: float, delta: float, seed: int, longest: int
):
    """Grouping by (x, n) and accumulating the death terms changes no digit that matters."""
    columns = columns_of(histories(longest, 60, seed))
    params = [alpha, beta, gamma, delta]
    values, gradient = _log_likelihood(np.array(params), *columns)
    expected_values, expected_gradient = brute_force(params, *columns)
    np.testing.assert_allclose(values, expected_values, rtol=1e-10)
    scale = np.abs(expected_gradient).max()
    np.testing.assert_allclose(gradient, expected_gradient, rtol=1e-9, atol=1e-11 * scale)


def test_small_blocks_give_the_same_likelihood(monkeypatch: pytest.MonkeyPatch):
    columns = columns_of(pd.concat([histories(52, 400, seed=4), histories(7, 50, seed=5)]))
    params = np.array([0.8, 1.7, 0.4, 3.0])
    whole = _log_likelihood(params, *columns)
    monkeypatch.setattr(beta_geo_beta_binom, "_CHUNK_CELLS", 5)
    assert len(beta_geo_beta_binom._layout(*columns).blocks) > 20
    pieces = _log_likelihood(params, *columns)
    for one, two in zip(whole, pieces, strict=True):
        np.testing.assert_allclose(one, two, rtol=1e-14)


def test_many_periods_fit_matches_the_brute_force_likelihood():
    truth = fitted([1.2, 0.75, 0.66, 2.8])
    simulated = truth.simulate(20_000, 52, rng=np.random.default_rng(12))
    model = BetaGeoBetaBinom().fit(simulated)
    counts = simulated.value_counts().rename("weight").reset_index()
    values = brute_force(model.params_.tolist(), *columns_of(counts))[0]
    assert model.log_likelihood_ == pytest.approx(counts["weight"] @ values, rel=1e-10)
    distance = np.abs(model.params_.to_numpy() - [1.2, 0.75, 0.66, 2.8]) / model.std_errors_
    assert np.all(distance < 3.0)


# --- predictions against lifetimes and against direct sums ------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_lifetimes(seed: int):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from lifetimes import BetaGeoBetaBinomFitter

        rng = np.random.default_rng(seed)
        params = rng.uniform(0.3, 5.0, 4)
        params[2] = rng.uniform(0.3, 0.9) if seed != 2 else rng.uniform(1.1, 3.0)
        data = histories(12, 500, seed)
        reference = BetaGeoBetaBinomFitter()
        reference.params_ = pd.Series(params, index=["alpha", "beta", "gamma", "delta"])
        x, t_x, n = data["frequency"], data["recency"], data["n_periods"]
        alive = reference.conditional_probability_alive(1, x, t_x, n)
        purchases = reference.conditional_expected_number_of_purchases_up_to_time(7, x, t_x, n)
    model = fitted(list(params))
    np.testing.assert_allclose(model.p_alive(data), alive, rtol=1e-6)
    np.testing.assert_allclose(model.expected_purchases(data, horizon=7), purchases, rtol=1e-6)


@pytest.mark.parametrize("gamma", [0.5, 1.0 - 1e-7, 1.0, 1.0 + 3e-5, 1.0 + 2e-4, 2.5])
@pytest.mark.parametrize("stop", [[11.0, 30.0], [11.0, 300.0]])  # spans of <= 64, and longer
def test_alive_sum_is_exact_near_gamma_one(gamma: float, stop: list[float]):
    from scipy.special import betaln

    delta, start = 2.5, np.array([0.0, 7.0])
    direct = [
        np.sum(np.exp(betaln(gamma, delta + np.arange(s + 1, e + 1)) - betaln(gamma, delta + s)))
        for s, e in zip(start, stop, strict=True)
    ]
    np.testing.assert_allclose(_alive_sum(gamma, delta, start, np.array(stop)), direct,
                               rtol=1e-10)  # fmt: skip


@pytest.mark.parametrize(
    "gamma", [1e-3, 0.5, 0.999, 1 - 1e-5, 1.0, 1 + 1e-5, 1.0002, 1.01, 3.0, 1e3]
)
@pytest.mark.parametrize("delta", [0.01, 2.5, 100.0])
def test_alive_sum_against_40_digit_arithmetic(gamma: float, delta: float):
    """Every branch (short spans, series near gamma = 1 or long histories, betaln) to 1e-10.

    The old betaln-only form lost 7 % at gamma = 1.0002, delta = 100, s = 1e6, span 100.
    """
    import mpmath

    grid = np.array(list(itertools.product([0, 7, 50, 1e4, 1e6], [1, 10, 64, 65, 100, 300, 5000])))
    start, span = grid[:, 0], grid[:, 1]
    with mpmath.workdps(40):
        g = mpmath.mpf(gamma)
        reference = []
        for s, h in zip(start, span, strict=True):
            low = mpmath.mpf(delta) + mpmath.mpf(s)
            if gamma == 1.0:
                reference.append(float(low * (mpmath.digamma(low + 1 + h)
                                              - mpmath.digamma(low + 1))))  # fmt: skip
                continue
            log_ratio = (mpmath.loggamma(low + 1 + h) - mpmath.loggamma(low + 1)
                         - mpmath.loggamma(low + g + h) + mpmath.loggamma(low + g))  # fmt: skip
            reference.append(float(low * -mpmath.expm1(log_ratio) / (g - 1)))
    for short in (span <= 64, span > 64):
        found = _alive_sum(gamma, delta, start[short], start[short] + span[short])
        np.testing.assert_allclose(found, np.array(reference)[short], rtol=1e-10)


@pytest.mark.parametrize("gamma", [1e-3, 1.0 - 1e-9, 1.0, 3.0, 1e3])
def test_alive_sum_keeps_its_digits_after_a_long_tenure(gamma: float):
    """A short span after a long history: R is within 1e-7 of 1, the sum is ~1 per step."""
    delta, start = 0.5, np.array([1e4, 1e6])
    ratios = np.cumprod((delta + start[:, None] + np.arange(5)) /
                        (gamma + delta + start[:, None] + np.arange(5)), axis=1)  # fmt: skip
    direct = ratios.sum(axis=1)  # B(gamma, delta + s + k) / B(gamma, delta + s), k = 1..5
    np.testing.assert_allclose(_alive_sum(gamma, delta, start, start + 5), direct, rtol=1e-13)


def test_dert_equals_discounted_sum_of_expected_purchases(donations_model: BetaGeoBetaBinom):
    data = load_donations().drop(columns="weight")
    horizon = 180
    cumulative = np.column_stack(
        [donations_model.expected_purchases(data, horizon=k).to_numpy() for k in range(horizon + 1)]
    )  # fmt: skip
    per_period = np.diff(cumulative, axis=1)
    discount = 1.25 ** -np.arange(1, horizon + 1)
    np.testing.assert_allclose(
        donations_model.dert(data, discount=0.25), per_period @ discount, rtol=1e-9
    )
    np.testing.assert_allclose(donations_model.dert(data, discount=Rate(0.1)),
                               donations_model.dert(data, discount=0.1), rtol=1e-12)  # fmt: skip


@pytest.mark.parametrize(("b", "gap", "z"), [(3.0, 0.7, 0.9), (50.0, 2.0, 0.5), (7.0, 1.0, 0.99)])
def test_hypergeometric_series_matches_scipy_where_scipy_is_accurate(
    b: float, gap: float, z: float
):
    from scipy.special import hyp2f1

    found = _hyp2f1_one(np.array([b]), gap, z)[0]
    assert found == pytest.approx(hyp2f1(1.0, b, b + gap, z), rel=1e-12)


def test_purchase_pmf_is_a_distribution_with_the_right_mean(donations_model: BetaGeoBetaBinom):
    counts = np.arange(0, 12)
    pmf = donations_model.purchase_pmf(counts, horizon=11)
    assert pmf.sum() == pytest.approx(1.0, abs=1e-12)
    assert counts @ pmf == pytest.approx(
        donations_model.expected_purchases_new(horizon=11), rel=1e-12
    )
    assert donations_model.purchase_pmf(12, horizon=11) == 0.0


def test_predict_and_durations(donations_model: BetaGeoBetaBinom):
    data = load_donations().drop(columns="weight")
    predicted = donations_model.predict(data, horizon="5y")
    assert list(predicted.columns) == ["p_alive", "expected_purchases"]
    pd.testing.assert_series_equal(
        predicted["expected_purchases"], donations_model.expected_purchases(data, horizon=5)
    )  # fmt: skip
    # a customer who gave in every period is almost surely alive
    assert predicted["p_alive"].iloc[-1] > 0.9


# --- simulation recovery ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "n_periods"),
    [([1.2, 0.75, 0.66, 2.8], 6), ([0.5, 2.0, 2.0, 5.0], 12), ([3.0, 1.0, 0.3, 0.5], 8),
     ([0.2, 0.1, 1.5, 20.0], 10)],
)  # fmt: skip
def test_simulation_recovers_parameters(params: list[float], n_periods: int):
    simulated = fitted(params).simulate(40_000, n_periods, rng=np.random.default_rng(7))
    model = BetaGeoBetaBinom().fit(simulated)
    distance = np.abs(model.params_.to_numpy() - params) / model.std_errors_.to_numpy()
    assert np.all(distance < 3.0), (model.summary(), distance)


def test_simulate_takes_a_duration_in_the_model_unit():
    model = fitted([1.0, 1.0, 0.5, 2.0], unit="year")
    by_count = model.simulate(500, 6, rng=np.random.default_rng(1))
    by_duration = model.simulate(500, "72M", rng=np.random.default_rng(1))
    pd.testing.assert_frame_equal(by_count, by_duration)
    assert by_duration.attrs["unit"] == "year"
    assert BetaGeoBetaBinom().fit(by_duration).unit_ == model.unit_
    with pytest.raises(SchemaError, match="whole number of transaction opportunities"):
        model.simulate(10, "18M", rng=np.random.default_rng(1))
    with pytest.raises(SchemaError, match="at least 1"):
        model.simulate(10, 0, rng=np.random.default_rng(1))
    with pytest.raises(SchemaError, match="does not know its data's unit"):
        fitted([1.0, 1.0, 0.5, 2.0]).simulate(10, "6y", rng=np.random.default_rng(1))


def test_simulated_histories_are_consistent():
    simulated = fitted([1.0, 1.0, 0.5, 2.0]).simulate(5_000, 9, rng=np.random.default_rng(3))
    x, t_x = simulated["frequency"], simulated["recency"]
    assert ((x <= t_x) & (t_x <= 9) & ((x == 0) == (t_x == 0))).all()


# --- properties ---------------------------------------------------------------------------------

positive = st.floats(1e-3, 1e3)


@settings(max_examples=60, deadline=None)
@given(positive, positive, positive, positive, st.integers(0, 200), st.integers(0, 200))
def test_properties(alpha: float, beta: float, gamma: float, delta: float, seed: int, far: int):
    model = fitted([alpha, beta, gamma, delta])
    data = histories(60, 40, seed)
    alive = model.p_alive(data)
    assert np.all((alive >= 0) & (alive <= 1))
    near, later = (
        model.expected_purchases(data, horizon=far),
        model.expected_purchases(data, horizon=far + 5),
    )
    assert np.all(np.isfinite(later))
    assert np.all(later >= near * (1 - 1e-12))
    assert 0 <= model.expected_purchases_new(horizon=far) <= far + 1e-9
    values, gradient = _log_likelihood(
        np.array([alpha, beta, gamma, delta]), *(data[c].to_numpy(dtype=float)
                                                 for c in ("frequency", "recency", "n_periods"))
    )  # fmt: skip
    assert np.all(np.isfinite(values))
    assert np.all(values <= 1e-12)
    assert np.all(np.isfinite(gradient))


# --- stress grid: no NaN, no inf, no RuntimeWarning (warnings are errors) ----------------------

EXTREMES = [1e-4, 1.0, 1e4]
STRESS = [
    *list(itertools.product(EXTREMES, EXTREMES, [1e-4, 1.0, 1e4], [1e-4, 1e4]))[::2],
    (1.0, 1.0, 1.0, 1.0), (0.5, 0.5, 1.0 + 1e-12, 3.0), (1e6, 1e6, 1e6, 1e6),
]  # fmt: skip


@pytest.mark.parametrize("params", STRESS)
def test_stress_grid(params: list[float]):
    model = fitted(list(params))
    data = pd.concat([
        histories(1000, 50, seed=0),
        pd.DataFrame({"frequency": [0, 500, 1000, 0], "recency": [0, 1000, 1000, 0],
                      "n_periods": [1000, 1000, 1000, 1]}),
    ], ignore_index=True)  # fmt: skip
    columns = [data[c].to_numpy(dtype=float) for c in ("frequency", "recency", "n_periods")]
    values, gradient = _log_likelihood(np.array(params, dtype=float), *columns)
    outputs = [values, gradient, model.p_alive(data), model.expected_purchases(data, horizon=365),
               model.dert(data, discount=0.01), model.purchase_pmf(np.arange(10), horizon=30),
               [model.expected_purchases_new(horizon=3650)]]  # fmt: skip
    for output in outputs:
        assert np.all(np.isfinite(np.asarray(output, dtype=float)))
    assert np.all((model.p_alive(data) >= 0) & (model.p_alive(data) <= 1))


@pytest.mark.parametrize(
    ("params", "edge"),
    [([0.05, 5.0, 0.05, 20.0],  # rare buyers, a base split into "gone at once" and "immortal":
      r"delta = \S+ is not determined by the data"),  # its standard error spans 0 to 2e5
     ([20.0, 0.5, 5.0, 0.2],  # almost every customer dies at once: p is not identified
      r"alpha = \S+ runs off towards infinity.*beta = \S+ runs off towards infinity")],
)  # fmt: skip
def test_stress_fits_on_extreme_bases(params: list[float], edge: str):
    simulated = fitted(params).simulate(3_000, 20, rng=np.random.default_rng(11))
    with pytest.warns(ConvergenceWarning, match=edge):
        model = BetaGeoBetaBinom(n_starts=2).fit(simulated)
    assert np.all(np.isfinite(model.params_))
    assert np.isfinite(model.log_likelihood_)
    assert np.all(np.isfinite(model.predict(simulated, horizon=10).to_numpy()))


def test_huge_parameters_keep_the_likelihood_exact():
    # B(a + x, b + y) / B(a, b) -> p^x (1 - p)^y as a, b -> infinity with p = a / (a + b)
    x, t_x, n = np.array([2.0]), np.array([5.0]), np.array([6.0])
    params = np.array([1e28, 3e28, 1e-300, 1.0])
    values = _log_likelihood(params, x, t_x, n)[0]
    assert values[0] == pytest.approx(2 * np.log(0.25) + 4 * np.log(0.75), rel=1e-12)


# --- persistence and errors ---------------------------------------------------------------------


def test_json_round_trip(donations_model: BetaGeoBetaBinom, tmp_path: Path):
    path = tmp_path / "bgbb.json"
    donations_model.save(path)
    loaded = BetaGeoBetaBinom.load(path)
    pd.testing.assert_series_equal(loaded.params_, donations_model.params_)
    data = load_donations().drop(columns="weight")
    pd.testing.assert_frame_equal(
        loaded.predict(data, horizon=3), donations_model.predict(data, horizon=3)
    )
    assert loaded.unit_ == donations_model.unit_


@pytest.mark.parametrize(
    ("row", "phrase"),
    [({"frequency": 2, "recency": 7, "n_periods": 6}, "'recency' > 'n_periods'"),
     ({"frequency": 3, "recency": 2, "n_periods": 6}, "'frequency' > 'recency'"),
     ({"frequency": -1, "recency": 2, "n_periods": 6}, "negative"),
     ({"frequency": 0, "recency": 2, "n_periods": 6}, "'recency' > 0 with 'frequency' 0"),
     ({"frequency": 1.5, "recency": 2, "n_periods": 6}, "whole numbers")],
)  # fmt: skip
def test_bad_histories_raise(row: dict[str, float], phrase: str):
    data = pd.DataFrame([row, {"frequency": 1, "recency": 1, "n_periods": 6}])
    with pytest.raises(DataQualityError, match=phrase):
        BetaGeoBetaBinom().fit(data)


def test_errors_name_the_problem(donations_model: BetaGeoBetaBinom):
    data = load_donations().drop(columns="weight")
    with pytest.raises(NotFittedError, match="not fitted"):
        BetaGeoBetaBinom().p_alive(data)
    with pytest.raises(SchemaError, match="needs column"):
        donations_model.p_alive(data.drop(columns="n_periods"))
    with pytest.raises(SchemaError, match="whole number"):
        donations_model.expected_purchases(data, horizon=2.5)
    with pytest.raises(SchemaError, match="needs the model's unit"):
        fitted(DONATIONS_PARAMS).dert(data, discount=Rate(0.1))
    with pytest.raises(SchemaError, match="> 0"):
        donations_model.dert(data, discount=0.0)
    with pytest.raises(DataQualityError, match="'weight'"):
        BetaGeoBetaBinom().fit(load_donations().assign(weight=-1))
