"""What more retention is worth (cvalue.value.retention_uplift) and the curves behind it.

- With 0 points nothing changes (exactly), and today's equity is always customer_equity's, its
  intervals included, whatever the method.
- The scaled curves (``Curves.with_dropout_scaled``) match formulas computed here independently
  (quadrature over the posterior, beta functions), for every model family.
- The retention reached is today's plus the points, to 1e-8, recomputed here per family.
- Raised purchases and retention agree with customers simulated with the factor found.
- The change grows with the points (property over families and parameters), and its interval
  is the paired one.
- Refusals name the problem.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, stats
from scipy.special import betaln

import cvalue as cv
from cvalue.datasets import load_cdnow, load_donations
from cvalue.errors import SchemaError
from cvalue.value import RetentionUplift, clv, customer_equity, retention_uplift

HORIZONS = ("1y", "3y")
YEAR_IN_WEEKS = 365.2425 / 7.0
PARETO = (0.55, 10.58, 0.61, 11.67)  # CDNOW's Pareto/NBD, rounded
BETA_GEO = (0.243, 4.414, 0.793, 2.426)  # CDNOW's BG/NBD (FHL 2005)
DONATIONS = (1.204, 0.750, 0.657, 2.783)  # FHS 2010's BG/BB
HISTORIES = pd.DataFrame(
    {
        "frequency": [0, 0, 1, 2, 4, 7, 12, 3],
        "recency": [0.0, 0.0, 5.0, 30.0, 20.0, 37.0, 38.5, 10.0],
        "T": [39.0, 10.0, 39.0, 39.0, 35.0, 39.0, 39.0, 20.0],
    },
    index=pd.Index([f"c{i}" for i in range(8)], name="customer_id"),
)
CONTRACTS = pd.DataFrame(
    {"duration": [0, 1, 2, 3, 5, 8, 4], "is_censored": [1, 1, 1, 1, 1, 1, 0]},
    index=pd.Index([f"k{i}" for i in range(7)], name="customer_id"),
)


# --- data and models ----------------------------------------------------------------------------


@cache
def _cdnow() -> pd.DataFrame:
    return load_cdnow().summary


@cache
def _segment() -> pd.Series:
    frequency = _cdnow()["frequency"].to_numpy()
    labels = np.where(frequency == 0, "one-off", np.where(frequency > 3, "loyal", "repeat"))
    return pd.Series(labels, index=_cdnow().index, name="segment")


@cache
def _fitted(name: str) -> cv.BetaGeo:
    return getattr(cv, name)().fit(_cdnow(), unit="week")  # type: ignore[no-any-return]


@cache
def _spend() -> cv.GammaGamma:
    return cv.GammaGamma().fit(_cdnow())


@cache
def _cdnow_values(name: str = "BetaGeo", rows: int | None = None) -> cv.CustomerValue:
    data = _cdnow() if rows is None else _cdnow().iloc[:rows]
    return clv(
        data, purchases=_fitted(name), spend=_spend(), margin=0.3, horizon="3y", rates=0.10,
        cost_to_serve=0.05, marketing_cost=0.0, segment=_segment().reindex(data.index),
    )  # fmt: skip


def _donations() -> pd.DataFrame:
    data = load_donations()[["frequency", "recency", "n_periods"]]
    return data.set_index(pd.Index([f"d{i}" for i in range(len(data))], name="customer_id"))


def _purchases_only(data: pd.DataFrame, model: cv.BetaGeo, horizon: str) -> cv.CustomerValue:
    """Values that are expected purchases (or payments): spend 1, margin 1, no rate, no cost."""
    return clv(data, purchases=model, spend=1.0, margin=1.0, horizon=horizon, rates=0.0,
               costs=cv.NO_COSTS)  # fmt: skip


FAMILIES = {
    "BetaGeo": (lambda: cv.BetaGeo.from_params(*BETA_GEO, unit="week"), HISTORIES),
    "ModifiedBetaGeo": (
        lambda: cv.ModifiedBetaGeo.from_params(*BETA_GEO, unit="week"),
        HISTORIES,
    ),
    "ParetoNBD": (lambda: cv.ParetoNBD.from_params(*PARETO, unit="week"), HISTORIES),
    "BetaGeoBetaBinom": (
        lambda: cv.BetaGeoBetaBinom.from_params(*DONATIONS, unit="year"),
        _donations(),
    ),
    "ShiftedBetaGeo": (lambda: cv.ShiftedBetaGeo.from_params(0.704, 1.182, unit="year"), CONTRACTS),
    "BetaDiscreteWeibull": (
        lambda: cv.BetaDiscreteWeibull.from_params(0.7, 1.2, 0.8, unit="year"),
        CONTRACTS,
    ),
}


# --- independent formulas: P(alive now) and P(alive after t) with the dropout times k ------------


def _beta_geo_survival(model: cv.BetaGeo, data: pd.DataFrame, t: float, k: float) -> np.ndarray:
    """``E[(1 + k p t / (alpha + T))^-(r + x)]`` over ``p ~ Beta(a, b + x + s)``, by quadrature."""
    r, alpha, a, b = (float(model.params_[n]) for n in ("r", "alpha", "a", "b"))
    s = 1.0 if isinstance(model, cv.ModifiedBetaGeo) else 0.0
    found = []
    for x, age in zip(data["frequency"], data["T"], strict=True):
        tau = t / (alpha + age)
        density = stats.beta(a, b + x + s).pdf

        def integrand(p: float, x: float = x, tau: float = tau, density=density) -> float:
            return float((1 + k * p * tau) ** -(r + x) * density(p))

        found.append(integrate.quad(integrand, 0, 1, epsabs=0, epsrel=1e-12, limit=200)[0])
    return np.asarray(found)


def _beta_geo_purchases(model: cv.BetaGeo, data: pd.DataFrame, t: float, k: float) -> np.ndarray:
    """``E[(1 - (1 + k p tau)^-(r + x)) / (k p)]`` over the posterior ``p``, times P(alive)."""
    r, alpha, a, b = (float(model.params_[n]) for n in ("r", "alpha", "a", "b"))
    s = 1.0 if isinstance(model, cv.ModifiedBetaGeo) else 0.0
    found = []
    for x, age in zip(data["frequency"], data["T"], strict=True):
        tau = t / (alpha + age)
        density = stats.beta(a, b + x + s).pdf

        def integrand(p: float, x: float = x, tau: float = tau, density=density) -> float:
            return float((1 - (1 + k * p * tau) ** -(r + x)) / (k * p) * density(p))

        found.append(integrate.quad(integrand, 0, 1, epsabs=0, epsrel=1e-12, limit=200)[0])
    return np.asarray(found) * model.p_alive(data).to_numpy()


def _alive_now_and_later(
    name: str, model: cv.BetaGeo, data: pd.DataFrame, span: float, k: float
) -> tuple[np.ndarray, np.ndarray]:
    """Each customer's P(alive now) and P(alive ``span`` later) with the dropout hazard times k.

    ``span`` in the model's unit. Written from the papers' posteriors, not from the curves.
    """
    params = model.params_
    if name in ("BetaGeo", "ModifiedBetaGeo"):
        now = model.p_alive(data).to_numpy()
        return now, now * _beta_geo_survival(model, data, span, k)
    if name == "ParetoNBD":
        now = model.p_alive(data).to_numpy()
        base = params["beta"] + data["T"].to_numpy()
        return now, now * (base / (base + k * span)) ** params["s"]
    if name == "BetaGeoBetaBinom":
        n = data["n_periods"].to_numpy(dtype=float)
        gamma, delta = params["gamma"], params["delta"]
        # p_alive is P(alive at n + 1); alive at n is that over E[1 - theta | alive at n]
        now = model.p_alive(data).to_numpy() * (gamma + delta + n) / (delta + n)
        return now, now * np.exp(betaln(gamma, delta + n + k * span) - betaln(gamma, delta + n))
    alpha, beta, c = params["alpha"], params["beta"], params.get("c", 1.0)
    n = data["duration"].to_numpy(dtype=float)
    now = data["is_censored"].to_numpy(dtype=float)
    clock = beta + n**c
    later = np.exp(betaln(alpha, clock + k * ((n + span) ** c - n**c)) - betaln(alpha, clock))
    return now, now * later


def _retention(name: str, model: cv.BetaGeo, data: pd.DataFrame, span: float, k: float) -> float:
    now, later = _alive_now_and_later(name, model, data, span, k)
    return float(later.sum() / now.sum())


# --- the scaled curves --------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(FAMILIES))
@pytest.mark.parametrize("k", [0.4, 2.5])
def test_scaled_survival_matches_the_posterior_formulas(name, k):
    make, data = FAMILIES[name]
    model = make()
    span = YEAR_IN_WEEKS if model.unit_ == cv.TimeUnit.WEEK else 2.0
    curves = model.curves(data).with_dropout_scaled(k)
    zero, ahead = (curves.survival(np.array([t]))[curves.group, 0] for t in (0.0, span))
    now, later = _alive_now_and_later(name, model, data, span, k)
    np.testing.assert_allclose(curves.alive_scale * zero, now, rtol=1e-12)
    np.testing.assert_allclose(curves.alive_scale * ahead, later, rtol=1e-9, atol=1e-300)


@pytest.mark.parametrize("name", ["BetaGeo", "ModifiedBetaGeo"])
@pytest.mark.parametrize("k", [0.3, 1.7])
def test_beta_geo_scaled_purchases_match_quadrature(name, k):
    model = FAMILIES[name][0]()
    curves = model.curves(HISTORIES).with_dropout_scaled(k)
    found = curves.purchase_scale * curves.cumulative(np.array([52.0]))[curves.group, 0]
    np.testing.assert_allclose(found, _beta_geo_purchases(model, HISTORIES, 52.0, k), rtol=1e-9)


def test_pareto_scaled_purchases_are_eq_41_with_beta_plus_t_over_k():
    """FHL (2005b) eq. (41) with ``beta + T`` replaced by ``(beta + T) / k``."""
    r, alpha, s, beta = PARETO
    model, k, t = cv.ParetoNBD.from_params(*PARETO, unit="week"), 0.6, 78.0
    curves = model.curves(HISTORIES).with_dropout_scaled(k)
    found = curves.purchase_scale * curves.cumulative(np.array([t]))[curves.group, 0]
    x, age = HISTORIES["frequency"].to_numpy(), HISTORIES["T"].to_numpy()
    base = (beta + age) / k
    expected = (model.p_alive(HISTORIES).to_numpy() * (r + x) / (alpha + age) * base / (s - 1)
                * (1 - (base / (base + t)) ** (s - 1)))  # fmt: skip
    np.testing.assert_allclose(found, expected, rtol=1e-12)


def test_a_factor_of_one_is_the_curves_themselves_and_factors_compose():
    curves = cv.ParetoNBD.from_params(*PARETO, unit="week").curves(HISTORIES)
    assert curves.with_dropout_scaled(1.0) is curves
    times = np.array([4.0, 30.0, 100.0])
    twice = curves.with_dropout_scaled(0.5).with_dropout_scaled(0.3)
    np.testing.assert_allclose(
        twice.survival(times), curves.with_dropout_scaled(0.15).survival(times), rtol=1e-14
    )
    np.testing.assert_array_equal(twice.alive_scale, curves.alive_scale)


@pytest.mark.parametrize("factor", [0.0, -1.0, math.nan, math.inf, True])
def test_a_factor_that_is_not_positive_is_refused(factor):
    curves = cv.BetaGeo.from_params(*BETA_GEO, unit="week").curves(HISTORIES)
    with pytest.raises(SchemaError, match="finite number > 0"):
        curves.with_dropout_scaled(factor)


def test_cnbd_curves_have_no_scaled_dropout():
    model = cv.BetaGeoCNBD.from_params(*BETA_GEO, k=2, unit="week")
    with pytest.raises(SchemaError, match="CNBDCurves has no scaled dropout"):
        model.curves(HISTORIES).with_dropout_scaled(0.5)


# --- baseline and zero points -------------------------------------------------------------------


@pytest.mark.parametrize("by", [None, "segment"])
def test_zero_points_change_nothing_and_the_baseline_is_customer_equitys(by):
    values = _cdnow_values()
    uplift = retention_uplift(values, points=0, horizons=HORIZONS, by=by)
    equity = customer_equity(values, horizons=HORIZONS, by=by)
    for mine, theirs in ((uplift.by_group, equity.by_group), (uplift.total, equity.total)):
        for column in ("equity", "ci_lower", "ci_upper"):
            name = column if column == "equity" else f"equity_{column}"
            np.testing.assert_array_equal(mine[name].to_numpy(), theirs[column].to_numpy())
        assert (mine["change"] == 0.0).all()
        assert (mine["change_ci_lower"] == 0.0).all()
        assert (mine["change_ci_upper"] == 0.0).all()
        np.testing.assert_array_equal(mine["raised_equity"], mine["equity"])
        np.testing.assert_array_equal(mine["raised_retention"], mine["retention"])
    assert (uplift.by_group["dropout_factor"] == 1.0).all()
    np.testing.assert_array_equal(uplift.by_group["customers"], equity.by_group["customers"])


@pytest.mark.parametrize("method", ["draws", "bootstrap"])
def test_the_baseline_keeps_customer_equitys_draws_and_replicates(method):
    values = _cdnow_values(rows=400)
    n_draws = 12 if method == "draws" else 3
    uplift = retention_uplift(values, 3, HORIZONS, "segment", method=method, n_draws=n_draws,
                              rng=np.random.default_rng(7))  # fmt: skip
    equity = customer_equity(values, HORIZONS, "segment", method=method, n_draws=n_draws,
                             rng=np.random.default_rng(7))  # fmt: skip
    for column in ("equity", "ci_lower", "ci_upper"):
        name = column if column == "equity" else f"equity_{column}"
        np.testing.assert_array_equal(uplift.by_group[name], equity.by_group[column])
        np.testing.assert_array_equal(uplift.total[name], equity.total[column])
    assert (uplift.total["change_ci_lower"] > 0.0).all()


def test_the_baseline_is_customer_equitys_with_points_too():
    values = _cdnow_values("ParetoNBD")
    uplift = retention_uplift(values, points=5, horizons=HORIZONS, by="segment")
    equity = customer_equity(values, horizons=HORIZONS, by="segment")
    np.testing.assert_array_equal(uplift.by_group["equity"], equity.by_group["equity"])
    np.testing.assert_array_equal(uplift.by_group["equity_ci_upper"], equity.by_group["ci_upper"])
    np.testing.assert_array_equal(uplift.total["equity"], equity.total["equity"])


# --- the retention reached ----------------------------------------------------------------------


@pytest.mark.parametrize("name", list(FAMILIES))
@pytest.mark.parametrize("points", [4.0, -7.5])
def test_retention_rises_by_the_points_in_every_family(name, points):
    make, data = FAMILIES[name]
    model = make()
    horizon = "3y" if model.unit_ == cv.TimeUnit.YEAR else "1y"
    uplift = retention_uplift(_purchases_only(data, model, horizon), points, [horizon], level=None)
    row = uplift.by_group.iloc[0]
    span = YEAR_IN_WEEKS if model.unit_ == cv.TimeUnit.WEEK else 1.0
    today = _retention(name, model, data, span, 1.0)
    assert row["retention"] == pytest.approx(today, abs=1e-10)
    assert _retention(name, model, data, span, row["dropout_factor"]) == pytest.approx(
        today + points / 100.0, abs=1e-8
    )
    assert row["raised_retention"] == pytest.approx(today + points / 100.0, abs=1e-10)
    assert (row["dropout_factor"] < 1.0) == (points > 0)
    assert np.sign(uplift.total["change"].iloc[0]) == np.sign(points)


def test_each_group_rises_by_the_points_and_so_does_the_base():
    values = _cdnow_values("ParetoNBD")
    uplift = retention_uplift(values, points=3, horizons=["1y"], by="segment")
    table = uplift.by_group.xs("1y", level="horizon")
    model, summary, segment = _fitted("ParetoNBD"), _cdnow(), _segment()
    for label, row in table.iterrows():
        members = summary[segment == label]
        reached = _retention("ParetoNBD", model, members, YEAR_IN_WEEKS, row["dropout_factor"])
        assert reached == pytest.approx(row["retention"] + 0.03, abs=1e-8)
    total = uplift.total.loc["1y"]
    assert total["raised_retention"] - total["retention"] == pytest.approx(0.03, abs=1e-12)
    assert table["dropout_factor"].nunique() == 3


def test_one_factor_for_the_base_raises_the_base_by_the_points():
    values = _cdnow_values("ParetoNBD")
    uplift = retention_uplift(values, points=3, horizons=["1y"], by="segment", scope="base")
    table = uplift.by_group.xs("1y", level="horizon")
    assert (table["dropout_factor"] == table["dropout_factor"].iloc[0]).all()
    factor = float(table["dropout_factor"].iloc[0])
    reached = _retention("ParetoNBD", _fitted("ParetoNBD"), _cdnow(), YEAR_IN_WEEKS, factor)
    total = uplift.total.loc["1y"]
    assert reached == pytest.approx(total["retention"] + 0.03, abs=1e-8)
    rises = table["raised_retention"] - table["retention"]
    assert rises.max() > 0.03 > rises.min()  # the groups rise by more or less
    by_segment = retention_uplift(values, points=3, horizons=["1y"], by="segment")
    assert by_segment.total["change"].iloc[0] != pytest.approx(uplift.total["change"].iloc[0])


def test_retention_over_another_span():
    values = _cdnow_values("ParetoNBD")
    uplift = retention_uplift(values, 2, ["1y"], retention_over="26w", level=None)
    row = uplift.by_group.iloc[0]
    reached = _retention("ParetoNBD", _fitted("ParetoNBD"), _cdnow(), 26.0, row["dropout_factor"])
    assert reached == pytest.approx(row["retention"] + 0.02, abs=1e-8)
    yearly = retention_uplift(values, 2, ["1y"], level=None).by_group.iloc[0]
    assert yearly["retention"] < row["retention"]  # fewer are still alive after a year


def test_models_per_segment_and_covariates():
    summary = _cdnow()
    segment = _segment()
    models = {
        "loyal": _fitted("BetaGeo"),
        "repeat": _fitted("ModifiedBetaGeo"),
        "one-off": cv.ParetoNBD.from_params(*PARETO, unit="week"),
    }
    values = clv(summary, purchases=models, spend=1.0, margin=1.0, horizon="1y", rates=0.1,
                 costs=cv.NO_COSTS, segment=segment)  # fmt: skip
    uplift = retention_uplift(values, points=2, horizons=["1y"], by="segment", level=None)
    rises = uplift.by_group["raised_retention"] - uplift.by_group["retention"]
    np.testing.assert_allclose(rises, 0.02, atol=1e-10)
    channel = np.random.default_rng(2).choice(["web", "shop"], len(summary))
    with_covariate = summary.assign(channel=channel)
    model = cv.BetaGeo().fit(with_covariate, unit="week", covariates=["channel"])
    values = clv(with_covariate, purchases=model, spend=1.0, margin=1.0, horizon="1y", rates=0.1,
                 costs=cv.NO_COSTS)  # fmt: skip
    row = retention_uplift(values, points=2, horizons=["1y"], level=None).total.iloc[0]
    assert row["raised_retention"] - row["retention"] == pytest.approx(0.02, abs=1e-10)
    assert row["change"] > 0.0


def test_a_group_with_nobody_on_the_books_keeps_its_value():
    model = cv.ShiftedBetaGeo.from_params(0.704, 1.182, unit="year")
    data = pd.concat([CONTRACTS, pd.DataFrame({"duration": [2, 6], "is_censored": [0, 0]},
                                              index=["lost1", "lost2"])])  # fmt: skip
    by = pd.Series(np.where(data["is_censored"] == 1, "active", "lost"), index=data.index)
    by.loc["k6"] = "lost"  # churned too
    uplift = retention_uplift(_purchases_only(data, model, "3y"), 5, ["3y"], by, level=None)
    lost, active = uplift.by_group.loc[("lost", "3y")], uplift.by_group.loc[("active", "3y")]
    assert math.isnan(lost["retention"])
    assert lost["dropout_factor"] == 1.0
    assert lost["change"] == 0.0
    assert active["raised_retention"] - active["retention"] == pytest.approx(0.05, abs=1e-10)


# --- against simulation -------------------------------------------------------------------------


def _assert_mean(simulated: np.ndarray, expected: float) -> None:
    """The simulated mean is within 4 standard errors of the expectation."""
    error = simulated.std(ddof=1) / math.sqrt(len(simulated))
    assert abs(simulated.mean() - expected) < 4.0 * error, (simulated.mean(), expected, error)


def _per_history(data: pd.DataFrame, model: cv.BetaGeo, points: float) -> RetentionUplift:
    """One group per customer and one factor for them all: each group is one history."""
    by = pd.Series(data.index, index=data.index)
    return retention_uplift(_purchases_only(data, model, "1y"), points, ["1y"], by,
                            scope="base", level=None)  # fmt: skip


def test_pareto_raised_purchases_and_retention_match_simulation():
    r, alpha, s, beta = PARETO
    model = cv.ParetoNBD.from_params(*PARETO, unit="week")
    table = _per_history(HISTORIES, model, 6.0).by_group.xs("1y", level="horizon")
    rng, n = np.random.default_rng(3), 40_000
    alive = model.p_alive(HISTORIES)
    for customer, history in HISTORIES.iterrows():
        row = table.loc[customer]
        x, age = history["frequency"], history["T"]
        is_alive = rng.random(n) < alive[customer]
        rate = rng.gamma(r + x, 1.0 / (alpha + age), n)
        dropout_rate = row["dropout_factor"] * rng.gamma(s, 1.0 / (beta + age), n)
        lifetime = rng.exponential(1.0, n) / dropout_rate
        bought = np.where(is_alive, rng.poisson(rate * np.minimum(lifetime, YEAR_IN_WEEKS)), 0)
        _assert_mean(bought, row["raised_equity"])
        _assert_mean((lifetime[is_alive] > YEAR_IN_WEEKS).astype(float), row["raised_retention"])


def test_beta_geo_raised_purchases_and_retention_match_simulation():
    r, alpha, a, b = BETA_GEO
    model = cv.BetaGeo.from_params(*BETA_GEO, unit="week")
    table = _per_history(HISTORIES, model, 5.0).by_group.xs("1y", level="horizon")
    rng, n = np.random.default_rng(4), 40_000
    alive = model.p_alive(HISTORIES)
    for customer, history in HISTORIES.iterrows():
        row = table.loc[customer]
        x, age = history["frequency"], history["T"]
        is_alive = rng.random(n) < alive[customer]
        rate = rng.gamma(r + x, 1.0 / (alpha + age), n)
        dropout = row["dropout_factor"] * rng.beta(a, b + x, n)
        # the customer drops out right after the purchase number `last`: a purchase up to it
        last = rng.geometric(dropout)
        offered = rng.poisson(rate * YEAR_IN_WEEKS)
        bought = np.where(is_alive, np.minimum(offered, last), 0)
        _assert_mean(bought, row["raised_equity"])
        _assert_mean((offered < last)[is_alive].astype(float), row["raised_retention"])


def test_contract_raised_payments_and_retention_match_simulation():
    alpha, beta = 0.704, 1.182
    model = cv.ShiftedBetaGeo.from_params(alpha, beta, unit="year")
    active = CONTRACTS[CONTRACTS["is_censored"] == 1]
    by = pd.Series(active.index, index=active.index)
    values = _purchases_only(active, model, "3y")
    uplift = retention_uplift(values, 8, ["3y"], by, scope="base", level=None)
    table = uplift.by_group.xs("3y", level="horizon")
    rng, n = np.random.default_rng(5), 40_000
    for customer, contract in active.iterrows():
        row = table.loc[customer]
        churn = rng.beta(alpha, beta + contract["duration"], n)
        # each renewal with probability (1 - churn)^k: periods paid until the first loss
        paid = rng.geometric(1.0 - (1.0 - churn) ** row["dropout_factor"])
        _assert_mean(np.minimum(paid, 3).astype(float), row["raised_equity"])
        _assert_mean((paid >= 2).astype(float), row["raised_retention"])


# --- the change: sign, growth, intervals --------------------------------------------------------


def _family_model(name: str, values: tuple[float, ...]) -> cv.BetaGeo:
    unit = "week" if name in ("BetaGeo", "ModifiedBetaGeo", "ParetoNBD") else "year"
    return getattr(cv, name).from_params(*values, unit=unit)  # type: ignore[no-any-return]


_POSITIVE = st.floats(0.3, 5.0)


@st.composite
def _families(draw: st.DrawFn) -> tuple[str, cv.BetaGeo]:
    name = draw(st.sampled_from(list(FAMILIES)))
    n_params = {"ShiftedBetaGeo": 2, "BetaDiscreteWeibull": 3}.get(name, 4)
    values = tuple(draw(_POSITIVE) for _ in range(n_params))
    if name in ("BetaGeo", "ModifiedBetaGeo", "ParetoNBD"):
        values = (values[0], 4.0 * values[1], values[2], 4.0 * values[3])
    return name, _family_model(name, values)


@settings(max_examples=30)
@given(
    family=_families(),
    steps=st.lists(st.integers(-19, 19), min_size=2, max_size=2, unique=True),
)
def test_the_change_grows_with_the_points(family, steps):
    """Points drawn as twentieths of the room between today's retention and 0 % or 100 %."""
    name, model = family
    data = FAMILIES[name][1]
    horizon = "3y" if model.unit_ == cv.TimeUnit.YEAR else "1y"
    values = _purchases_only(data, model, horizon)
    today = retention_uplift(values, 0, [horizon], level=None).total["retention"].iloc[0]
    low, high = (step / 20.0 for step in sorted(steps))
    points = [100.0 * (s * (1.0 - today) if s > 0 else s * today) for s in (low, high)]
    changes = [
        retention_uplift(values, p, [horizon], level=None).total["change"].iloc[0] for p in points
    ]
    assert changes[0] < changes[1]
    assert [np.sign(c) for c in changes] == [np.sign(p) for p in points]


def test_the_change_is_paired_and_its_percent_is_of_todays_equity():
    uplift = retention_uplift(_cdnow_values(), points=5, horizons=HORIZONS, by="segment")
    total = uplift.total
    # today's and the raised equity's intervals overlap; their paired difference excludes 0
    assert (total["raised_equity_ci_lower"] < total["equity_ci_upper"]).all()
    assert (total["change_ci_lower"] > 0.0).all()
    assert (total["change_std_error"] < 0.25 * (total["equity_ci_upper"] - total["equity"])).all()
    np.testing.assert_allclose(total["change"], total["raised_equity"] - total["equity"])
    np.testing.assert_allclose(total["change_percent"], 100 * total["change"] / total["equity"])
    summed = uplift.by_group["change"].groupby(level="horizon").sum()
    np.testing.assert_allclose(summed.loc[list(HORIZONS)], total["change"], rtol=1e-12)
    for table in (uplift.by_group, total):
        assert (table["change_percent_ci_lower"] < table["change_percent"]).all()
        assert (table["change_percent"] < table["change_percent_ci_upper"]).all()


def test_the_delta_methods_error_of_the_change_agrees_with_draws():
    values = _cdnow_values(rows=150)
    delta = retention_uplift(values, 5, ["1y"])
    draws = retention_uplift(values, 5, ["1y"], method="draws", n_draws=100,
                             rng=np.random.default_rng(11))  # fmt: skip
    ratio = draws.total["change_std_error"].iloc[0] / delta.total["change_std_error"].iloc[0]
    assert 0.8 < ratio < 1.25  # 100 draws estimate a standard deviation to about 7 %


def test_more_retention_can_lower_equity_when_a_period_costs_more_than_it_brings():
    summary = _cdnow()
    values = clv(summary, purchases=_fitted("BetaGeo"), spend=1.0, margin=0.3, horizon="3y",
                 rates=0.1, cost_to_serve=5.0, marketing_cost=0.0)  # fmt: skip
    total = retention_uplift(values, 5, ["3y"], level=None).total.iloc[0]
    assert total["equity"] < 0.0
    assert total["change"] < 0.0
    assert total["change_percent"] == pytest.approx(100.0 * total["change"] / -total["equity"])


# --- refusals -----------------------------------------------------------------------------------


def test_points_that_take_retention_to_100_percent_are_refused():
    values = _cdnow_values()
    with pytest.raises(SchemaError, match=r"group 'one-off'.*below 100 %.*give points between"):
        retention_uplift(values, points=10, horizons=HORIZONS, by="segment", level=None)
    with pytest.raises(SchemaError, match=r"the base.*above 0 %"):
        retention_uplift(values, points=-95, horizons=HORIZONS, level=None)


@pytest.mark.parametrize("points", [100, -100.0, math.nan, math.inf, True, "5"])
def test_points_that_are_not_percentage_points_are_refused(points):
    with pytest.raises(SchemaError, match="percentage points between -100 and 100"):
        retention_uplift(_cdnow_values(rows=50), points=points, level=None)


def test_a_model_without_a_dropout_to_scale_is_refused():
    model = cv.BetaGeoCNBD.from_params(*BETA_GEO, k=2, unit="week")
    with pytest.raises(SchemaError, match=r"no scaled dropout.*\(M\)BG/CNBD-k"):
        retention_uplift(_purchases_only(HISTORIES, model, "1y"), 5, ["1y"], level=None)


def test_other_refusals_name_the_problem():
    values = _cdnow_values(rows=50)
    with pytest.raises(SchemaError, match="scope must be 'group' or 'base'"):
        retention_uplift(values, 5, scope="segment", level=None)  # type: ignore[arg-type]
    with pytest.raises(SchemaError, match=r"needs the result of cvalue\.clv"):
        retention_uplift(_cdnow(), 5)  # type: ignore[arg-type]
    with pytest.raises(SchemaError, match="retention_over 52 has no unit"):
        retention_uplift(values, 5, retention_over=52, level=None)  # type: ignore[arg-type]
    bgbb = cv.BetaGeoBetaBinom.from_params(*DONATIONS, unit="year")
    with pytest.raises(SchemaError, match="counts whole periods"):
        retention_uplift(_purchases_only(_donations(), bgbb, "3y"), 5, ["3y"],
                         retention_over="26w", level=None)  # fmt: skip
    with pytest.raises(SchemaError, match="no covariance of its estimates"):
        retention_uplift(_purchases_only(HISTORIES, _family_model("ParetoNBD", PARETO), "1y"), 5)
    with pytest.raises(SchemaError, match="needs rng"):
        retention_uplift(values, 5, method="draws", n_draws=10)
