"""Customer value (cvalue.value): net-margin CLV, discount rates, equity, CLV / CAC, heuristics.

Closed forms first (zero rate, zero costs and margin 1 give the models' own expected purchases;
the BG/BB and Pareto/NBD values meet their published DERT; the sBG new-customer value is the
published DEL), then the alive probabilities behind the cost to serve, checked by simulation,
then the rates, the guards against the classic CLV mistakes, customer equity against planted
truth, CLV / CAC and the back-of-envelope LTV.
"""

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cvalue as cv
from cvalue.datasets import load_cdnow, make_crm
from cvalue.errors import DataQualityError, NotFittedError, SchemaError
from cvalue.units import Rate
from cvalue.value import (
    DiscountRates,
    FutureCohorts,
    alive_probability,
    churn_hazard,
    clv,
    clv_to_cac,
    compare_ltv,
    customer_equity,
    margin_by_category,
    margin_variation,
    new_customer_value,
    simple_ltv,
    simple_ltv_table,
)

NO_COSTS = {"cost_to_serve": 0.0, "marketing_cost": 0.0}
TEN_PERCENT = DiscountRates.single(0.10, per="year")
ZERO = DiscountRates.single(0.0)
# Fader, Hardie & Shang (2010), donations (n = 6): the published parameters and DERT at d = 0.10
DONATIONS = {"alpha": 1.204, "beta": 0.750, "gamma": 0.657, "delta": 2.783}
PUBLISHED_DERT = {(6, 6, 6): 5.9087, (3, 6, 6): 3.4481, (0, 0, 6): 0.1146}
REGULAR = [1000, 631, 468, 382, 326, 289, 262, 241]  # Fader & Hardie (2007), "Regular"


def given_params(model_class, params, *, unit):
    """A model with fixed parameters and no standard errors, through its JSON form."""
    names = list(params)
    return model_class.from_dict(
        {
            "model": model_class.__name__,
            "params": params,
            "covariance": np.full((len(names), len(names)), np.nan).tolist(),
            "log_likelihood": math.nan,
            "n_customers": 0.0,
            "unit": unit,
            "options": {},
        }
    )


@pytest.fixture(scope="module")
def cdnow():
    return load_cdnow().summary


@pytest.fixture(scope="module")
def models(cdnow):
    return {
        "BetaGeo": cv.BetaGeo().fit(cdnow, unit="week"),
        "ModifiedBetaGeo": cv.ModifiedBetaGeo().fit(cdnow, unit="week"),
        "ParetoNBD": cv.ParetoNBD().fit(cdnow, unit="week"),
    }


@pytest.fixture(scope="module")
def spend(cdnow):
    return cv.GammaGamma().fit(cdnow)


@pytest.fixture(scope="module")
def donations_model():
    return given_params(cv.BetaGeoBetaBinom, DONATIONS, unit="year")


@pytest.fixture(scope="module")
def regular():
    return cv.ShiftedBetaGeo().fit_survivors(REGULAR, unit="year")


@pytest.fixture(scope="module")
def small(cdnow):
    return cdnow.iloc[::12]


def histories(rows):
    return pd.DataFrame(rows, columns=["frequency", "recency", "n_periods"])


# --- closed forms ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["BetaGeo", "ModifiedBetaGeo", "ParetoNBD"])
def test_zero_rate_and_costs_give_expected_spend_times_expected_purchases(
    name, models, spend, cdnow
):
    model = models[name]
    value = clv(
        cdnow, purchases=model, spend=spend, margin=1.0, horizon="3y", rates=ZERO, **NO_COSTS
    ).customers
    expected = spend.conditional_expected_spend(cdnow) * model.expected_purchases(
        cdnow, horizon="3y"
    )
    np.testing.assert_allclose(value["clv"], expected, rtol=1e-10)
    np.testing.assert_allclose(value["revenue"], expected, rtol=1e-10)


def test_bgbb_zero_rate_gives_the_models_expected_purchases(donations_model):
    data = histories([(6, 6, 6), (3, 6, 6), (0, 0, 6), (2, 4, 6)])
    value = clv(
        data,
        purchases=donations_model,
        spend=1.0,
        margin=1.0,
        horizon="11y",
        rates=ZERO,
        **NO_COSTS,
    ).customers
    np.testing.assert_allclose(
        value["clv"], donations_model.expected_purchases(data, horizon=11), rtol=1e-12
    )


def test_bgbb_value_meets_the_published_dert(donations_model):
    """FHS (2010), section 4: DERT at d = 0.10 with the published (rounded) parameters."""
    data = histories(list(PUBLISHED_DERT))
    value = clv(
        data,
        purchases=donations_model,
        spend=1.0,
        margin=1.0,
        horizon="400y",
        rates=TEN_PERCENT,
        **NO_COSTS,
    ).customers["clv"]
    assert value.round(4).tolist() == list(PUBLISHED_DERT.values())
    # the 400-year sum leaves out 1.1 ** -400 of the tail: the series is the DERT
    np.testing.assert_allclose(value, donations_model.dert(data, discount=0.10), rtol=1e-10)


@pytest.mark.parametrize(("period", "unit"), [("1M", "month"), ("1w", "week")])
def test_pareto_value_brackets_its_dert(period, unit, models, cdnow):
    """Purchases in a period are discounted at its end: DERT / (1 + d) <= value <= DERT.

    DERT (Fader, Hardie & Lee 2005a, eq. 2) discounts each purchase continuously at its own
    time, which lies within its period, so the bracket is exact (up to the horizon's tail).
    """
    model = models["ParetoNBD"]
    value = clv(
        cdnow,
        purchases=model,
        spend=1.0,
        margin=1.0,
        horizon="300y",
        period=period,
        rates=TEN_PERCENT,
        **NO_COSTS,
    ).customers["clv"]
    dert = model.dert(cdnow, discount=Rate(0.10))
    per_period = Rate(0.10).per(unit)
    assert (value <= dert).all()
    assert (value >= dert / (1.0 + per_period)).all()


def test_sbg_new_regular_customer_is_worth_the_published_del(regular):
    """Fader & Hardie (2010): DEL of a new "Regular" customer at d = 0.10 is 3.6949."""
    new = new_customer_value(
        purchases=regular,
        spend=1.0,
        margin=1.0,
        horizon="300y",
        rates=TEN_PERCENT,
        acquisition_cost=0.0,
        **NO_COSTS,
    )
    assert round(float(new["clv"].iloc[0]), 4) == 3.6949
    assert float(new["clv"].iloc[0]) == pytest.approx(regular.del_(0.10), rel=1e-10)


def test_active_contract_customers_are_worth_their_derl(regular):
    """Tenure n (n renewals made): this period's payment now, then DERL / (1 + d)."""
    data = pd.DataFrame({"duration": [0, 1, 4, 3], "is_censored": [1, 1, 1, 0]})
    value = clv(
        data,
        purchases=regular,
        spend=1.0,
        margin=1.0,
        horizon="300y",
        rates=TEN_PERCENT,
        **NO_COSTS,
    ).customers["clv"]
    derl = regular.derl(0.10, [0, 1, 4])
    np.testing.assert_allclose(value.iloc[:3], 1.0 + derl / 1.1, rtol=1e-10)
    assert value.iloc[3] == 0.0  # churned
    assert value.iloc[0] == pytest.approx(regular.del_(0.10), rel=1e-10)


@pytest.mark.parametrize("name", ["BetaGeo", "ModifiedBetaGeo", "ParetoNBD"])
def test_new_customers_make_the_models_expected_purchases(name, models):
    model = models[name]
    new = new_customer_value(
        purchases=model,
        spend=1.0,
        margin=1.0,
        horizon="2y",
        rates=ZERO,
        acquisition_cost=0.0,
        **NO_COSTS,
    )
    # the first purchase (at acquisition) and then the repeat purchases
    assert new["expected_purchases"].iloc[0] == pytest.approx(
        1.0 + model.expected_purchases_new(horizon="2y"), rel=1e-10
    )


def test_new_bgbb_customers_make_the_models_expected_purchases(donations_model):
    new = new_customer_value(
        purchases=donations_model,
        spend=1.0,
        margin=1.0,
        horizon="11y",
        rates=ZERO,
        acquisition_cost=0.0,
        **NO_COSTS,
    )
    assert new["expected_purchases"].iloc[0] == pytest.approx(
        1.0 + donations_model.expected_purchases_new(horizon=11), rel=1e-12
    )


def test_a_new_customers_value_is_net_of_acquisition_cost(models):
    new = new_customer_value(
        purchases=models["BetaGeo"],
        spend=20.0,
        margin=0.3,
        horizon="1y",
        rates=TEN_PERCENT,
        acquisition_cost=25.0,
        cost_to_serve=0.2,
        marketing_cost=0.1,
    )
    row = new.iloc[0]
    assert row["value_net_of_acquisition"] == pytest.approx(row["clv"] - 25.0)
    assert row["clv"] == pytest.approx(
        row["discounted_gross_margin"] - row["discounted_cost_to_serve"]
        - row["discounted_marketing_cost"]
    )  # fmt: skip
    # one name per concept: a new customer's table has clv's columns, then the acquisition
    valued = clv(
        pd.DataFrame({"frequency": [0], "recency": [0.0], "T": [1.0]}), purchases=models["BetaGeo"],
        spend=20.0, margin=0.3, horizon="1y", rates=TEN_PERCENT, cost_to_serve=0.2,
        marketing_cost=0.1,
    )  # fmt: skip
    clv_columns = list(valued.customers.columns)
    assert list(new.columns[: len(clv_columns)]) == clv_columns
    assert row["cost_to_serve"] / row["marketing_cost"] == pytest.approx(2.0)
    assert row["discount_rate_per_period"] == pytest.approx(
        valued.customers["discount_rate_per_period"].iloc[0]
    )
    assert row["costs"] == pytest.approx(row["cost_to_serve"] + row["marketing_cost"])
    with pytest.raises(TypeError):
        new_customer_value(
            purchases=models["BetaGeo"],
            spend=20.0,
            margin=0.3,
            horizon="1y",
            rates=TEN_PERCENT,
            **NO_COSTS,
        )


# --- P(alive) ahead, checked by simulation -----------------------------------------------------


def simulate_beta_geo(params, dropout_at_start, ages, ahead, rng):
    """BG/NBD (MBG/NBD) customers: histories at their ages and whether alive ``ahead`` later.

    Purchases are a Poisson process of rate lambda up to age + ahead; the customer drops out
    after the K-th repeat purchase, K ~ Geometric(p) - s, so they are alive at any time before
    it: alive later iff fewer than K purchases by then.
    """
    r, alpha, a, b = params
    n = len(ages)
    rate = rng.gamma(r, 1.0 / alpha, n)
    dropout_after = rng.geometric(np.clip(rng.beta(a, b, n), 1e-12, 1.0)) - dropout_at_start
    end = ages + ahead
    count = rng.poisson(rate * end)
    owner = np.repeat(np.arange(n), count)
    times = rng.random(count.sum()) * end[owner]
    times = times[np.lexsort((times, owner))]
    seen = np.bincount(owner[times <= ages[owner]], minlength=n)
    x = np.minimum(seen, dropout_after)
    first = np.cumsum(count) - count
    last = np.where(x > 0, times[np.minimum(first + x - 1, max(len(times) - 1, 0))], 0.0)
    history = pd.DataFrame({"frequency": x, "recency": last, "T": ages})
    return history, count < dropout_after


def assert_matches_simulation(predicted, is_alive, subsets):
    """Tower property: the sum of P(alive later | history) is the expected count alive later.

    Given the histories the outcomes are independent Bernoulli(p_i) if the formula is right,
    so the difference over any subset chosen by history is within 4 standard errors.
    """
    for subset in subsets:
        p, alive = predicted[subset], is_alive[subset]
        z = (p.sum() - alive.sum()) / math.sqrt(np.sum(p * (1.0 - p)))
        assert abs(z) < 4.0, (int(subset.sum()), p.sum(), alive.sum(), z)


@pytest.mark.parametrize(
    ("model_class", "dropout_at_start"), [(cv.BetaGeo, 0), (cv.ModifiedBetaGeo, 1)]
)
def test_beta_geo_alive_probability_matches_simulation(model_class, dropout_at_start):
    params = (0.6, 6.0, 0.9, 2.2)
    rng = np.random.default_rng(11)
    ages = rng.uniform(5.0, 60.0, 30_000)
    history, is_alive = simulate_beta_geo(params, dropout_at_start, ages, 26.0, rng)
    model = model_class.from_params(*params, unit="week")
    predicted = alive_probability(history, purchases=model, after="26w").to_numpy()
    x = history["frequency"].to_numpy()
    assert_matches_simulation(predicted, is_alive, [x >= 0, x == 0, x >= 3])


def test_pareto_alive_probability_matches_simulation():
    r, alpha, s, beta = 0.55, 10.6, 0.61, 11.7
    rng = np.random.default_rng(12)
    n, ahead = 30_000, 52.0
    ages = rng.uniform(5.0, 80.0, n)
    rate = rng.gamma(r, 1.0 / alpha, n)
    lifetime = rng.exponential(1.0, n) / rng.gamma(s, 1.0 / beta, n)
    active = np.minimum(lifetime, ages)
    x = rng.poisson(rate * active)
    last = np.where(x > 0, active * rng.beta(np.maximum(x, 1), 1.0), 0.0)
    history = pd.DataFrame({"frequency": x, "recency": last, "T": ages})
    model = cv.ParetoNBD.from_params(r, alpha, s, beta, unit="week")
    predicted = alive_probability(history, purchases=model, after="52w").to_numpy()
    assert_matches_simulation(predicted, lifetime > ages + ahead, [x >= 0, x == 0, x >= 2])


def test_bgbb_alive_probability_matches_simulation(donations_model):
    alpha, beta, gamma, delta = DONATIONS.values()
    rng = np.random.default_rng(13)
    n, n_periods, ahead = 30_000, 6, 3
    p = rng.beta(alpha, beta, n)
    alive_for = rng.geometric(np.clip(rng.beta(gamma, delta, n), 1e-12, 1.0)) - 1
    opportunity = np.arange(1, n_periods + 1)
    bought = (rng.random((n, n_periods)) < p[:, None]) & (opportunity <= alive_for[:, None])
    recency = np.where(bought.any(axis=1), n_periods - np.argmax(bought[:, ::-1], axis=1), 0)
    history = histories(np.column_stack([bought.sum(axis=1), recency, np.full(n, n_periods)]))
    predicted = alive_probability(history, purchases=donations_model, after="3y").to_numpy()
    x = history["frequency"].to_numpy()
    assert_matches_simulation(predicted, alive_for >= n_periods + ahead, [x >= 0, x == 0, x == 6])


def test_contract_alive_probability_matches_simulation(regular):
    simulated = regular.simulate(40_000, 12, rng=np.random.default_rng(14))
    # customers active after 3 periods, seen as they were then
    tenure = np.minimum(simulated["duration"].to_numpy(), 3)
    is_active_then = (simulated["duration"].to_numpy() > 3) | (simulated["is_censored"] == 1)
    now = pd.DataFrame({"duration": tenure[is_active_then], "is_censored": 1})
    predicted = alive_probability(now, purchases=regular, after="4y").to_numpy()
    later = simulated.loc[is_active_then]
    is_alive = (later["duration"].to_numpy() > 7) | (later["is_censored"].to_numpy() == 1)
    assert_matches_simulation(predicted, is_alive, [np.ones(len(now), dtype=bool)])


@pytest.mark.parametrize("name", ["BetaGeo", "ModifiedBetaGeo", "ParetoNBD"])
def test_cost_to_serve_is_charged_on_the_probability_of_being_alive(name, models, small):
    """With margin 0 and rate 0, the value is minus the cost times the periods on the books."""
    model = models[name]
    value = clv(
        small,
        purchases=model,
        spend=1.0,
        margin=0.0,
        horizon="6M",
        rates=ZERO,
        cost_to_serve=2.0,
        marketing_cost=0.5,
    ).customers
    on_books = sum(alive_probability(small, purchases=model, after=f"{k}M") for k in range(6))
    np.testing.assert_allclose(value["alive_periods"], on_books, rtol=1e-12)
    np.testing.assert_allclose(value["clv"], -2.5 * on_books, rtol=1e-12)


def test_a_partial_last_period_is_charged_its_share(models, small):
    model = models["ParetoNBD"]
    value = clv(
        small,
        purchases=model,
        spend=1.0,
        margin=0.0,
        horizon="10w",
        period="4w",
        rates=ZERO,
        cost_to_serve=1.0,
        marketing_cost=0.0,
    ).customers
    starts = [alive_probability(small, purchases=model, after=f"{w}w") for w in (0, 4, 8)]
    np.testing.assert_allclose(
        value["alive_periods"], starts[0] + starts[1] + 0.5 * starts[2], rtol=1e-12
    )


# --- discount rates ----------------------------------------------------------------------------


def segments_of(data):
    labels = np.where(data["frequency"].to_numpy() > 1, "loyal", "occasional")
    return pd.Series(labels, index=data.index)


def test_equal_segment_rates_give_exactly_the_single_rate_result(models, spend, cdnow):
    segment = segments_of(cdnow)
    common = {
        "purchases": models["BetaGeo"],
        "spend": spend,
        "margin": 0.3,
        "horizon": "3y",
        "cost_to_serve": 0.4,
        "marketing_cost": 0.1,
        "segment": segment,
    }
    single = clv(cdnow, rates=TEN_PERCENT, **common).customers
    split = clv(
        cdnow, rates=DiscountRates.by_segment({"loyal": 0.10, "occasional": 0.10}), **common
    ).customers
    pd.testing.assert_frame_equal(single, split, check_exact=True)


def test_segment_rates_apply_to_their_segments(models, spend, cdnow):
    segment = segments_of(cdnow)
    common = {
        "purchases": models["BetaGeo"],
        "spend": spend,
        "margin": 0.3,
        "horizon": "3y",
        "segment": segment,
        **NO_COSTS,
    }
    rates = DiscountRates.by_segment({"loyal": 0.08}, default=0.15)
    split = clv(cdnow, rates=rates, **common).customers
    for label, rate in (("loyal", 0.08), ("occasional", 0.15)):
        alone = clv(cdnow, rates=DiscountRates.single(rate), **common).customers
        is_in = (segment == label).to_numpy()
        np.testing.assert_allclose(split["clv"][is_in], alone["clv"][is_in], rtol=1e-13)
        np.testing.assert_allclose(split["discount_rate"][is_in], rate, rtol=1e-15)


@settings(max_examples=25)
@given(low=st.floats(0.0, 0.5), step=st.floats(1e-6, 0.5))
def test_a_higher_rate_never_raises_clv(low, step, models, spend, small):
    common = {
        "purchases": models["ParetoNBD"],
        "spend": spend,
        "margin": 0.25,
        "horizon": "2y",
        **NO_COSTS,
    }
    lower = clv(small, rates=DiscountRates.single(low), **common).customers["clv"]
    higher = clv(small, rates=DiscountRates.single(low + step), **common).customers["clv"]
    assert (higher <= lower).all()


def test_a_rate_per_year_and_the_same_rate_per_month_give_the_same_clv(models, spend, cdnow):
    common = {
        "purchases": models["BetaGeo"],
        "spend": spend,
        "margin": 0.3,
        "horizon": "60M",
        "cost_to_serve": 0.3,
        "marketing_cost": 0.0,
    }
    yearly = clv(cdnow, rates=DiscountRates.single(0.12, per="year"), **common).customers
    monthly = clv(
        cdnow, rates=DiscountRates.single(Rate(0.12).per("month"), per="month"), **common
    ).customers
    continuous = clv(
        cdnow, rates=DiscountRates.single(math.log1p(0.12), compounding="continuous"), **common
    ).customers
    np.testing.assert_allclose(monthly["clv"], yearly["clv"], rtol=1e-12)
    np.testing.assert_allclose(continuous["clv"], yearly["clv"], rtol=1e-12)
    assert monthly["discount_rate_per_period"].iloc[0] == pytest.approx(Rate(0.12).per("month"))


def test_rates_per_customer(models, spend, small):
    rates = pd.Series(np.linspace(0.0, 0.3, len(small)), index=small.index)
    value = clv(
        small,
        purchases=models["BetaGeo"],
        spend=spend,
        margin=0.3,
        horizon="1y",
        rates=DiscountRates.by_customer(rates),
        **NO_COSTS,
    ).customers
    np.testing.assert_allclose(value["discount_rate"], rates, rtol=1e-14)
    with pytest.raises(DataQualityError, match="no value for 1 of"):
        clv(
            small,
            purchases=models["BetaGeo"],
            spend=spend,
            margin=0.3,
            horizon="1y",
            rates=DiscountRates.by_customer(rates.iloc[1:]),
            **NO_COSTS,
        )


def test_risk_adjusted_rates_report_their_derivation(models, cdnow):
    segment = segments_of(cdnow)
    hazard = churn_hazard(cdnow, purchases=models["BetaGeo"], segment=segment, period="1y")
    assert ((hazard > 0) & (hazard < 1)).all()
    rates = DiscountRates.risk_adjusted(base=0.08, premium=0.2, risk=hazard)
    derived = rates.table()
    np.testing.assert_allclose(derived["rate"], 0.08 + 0.2 * hazard.to_numpy(), rtol=1e-15)
    assert derived.attrs["measure"] == "churn_hazard"
    assert rates.annual_rate("loyal") == pytest.approx(derived.loc["loyal", "annual_rate"])


def test_churn_hazard_is_the_share_of_the_alive_lost(models, cdnow):
    segment = segments_of(cdnow)
    model = models["ParetoNBD"]
    hazard = churn_hazard(cdnow, purchases=model, segment=segment, period="1y")
    now = model.p_alive(cdnow)
    later = alive_probability(cdnow, purchases=model, after="1y")
    for label in ("loyal", "occasional"):
        is_in = segment == label
        assert hazard[label] == pytest.approx(1.0 - later[is_in].sum() / now[is_in].sum())
    longer = churn_hazard(cdnow, purchases=model, segment=segment, period="2y")
    assert (longer > hazard).all()


def test_margin_variation_and_user_risk_columns():
    margins = pd.Series([10.0, 30.0, 5.0, 5.0], index=[1, 2, 3, 4])
    segment = pd.Series(["a", "a", "b", "b"], index=[1, 2, 3, 4])
    variation = margin_variation(margins, segment)
    assert variation.to_dict() == {"a": pytest.approx(0.5), "b": 0.0}
    by_column = DiscountRates.risk_adjusted(base=0.1, premium=0.1, risk=margins, segment=segment)
    assert by_column.table()["risk"].to_dict() == {"a": 20.0, "b": 5.0}
    with pytest.raises(SchemaError, match="not positive"):
        margin_variation(-margins, segment)


# --- guards against the classic mistakes -------------------------------------------------------


def test_a_cost_item_netted_in_the_margin_cannot_be_subtracted_again(models, spend, small):
    with pytest.raises(SchemaError, match="subtracted twice"):
        clv(
            small,
            purchases=models["BetaGeo"],
            spend=spend,
            margin=0.2,
            horizon="1y",
            rates=TEN_PERCENT,
            cost_to_serve=1.0,
            marketing_cost=0.0,
            margin_net_of=("cost_to_serve",),
        )
    netted = clv(
        small,
        purchases=models["BetaGeo"],
        spend=spend,
        margin=0.2,
        horizon="1y",
        rates=TEN_PERCENT,
        marketing_cost=0.0,
        margin_net_of=("cost_to_serve",),
    )
    assert (netted.customers["cost_to_serve"] == 0.0).all()
    assert netted.margin_net_of == frozenset({"cost_to_serve"})
    with pytest.raises(SchemaError, match="twice"):
        clv_to_cac(
            clv(
                small,
                purchases=models["BetaGeo"],
                spend=spend,
                margin=0.2,
                horizon="1y",
                rates=TEN_PERCENT,
                margin_net_of=("acquisition_cost",),
                **NO_COSTS,
            ),
            pd.DataFrame({"channel": "x", "acquisition_cost": 1.0}, index=small.index),
        )


def test_every_cost_item_must_be_accounted_for(models, spend, small):
    with pytest.raises(SchemaError, match="marketing_cost is missing"):
        clv(
            small,
            purchases=models["BetaGeo"],
            spend=spend,
            margin=0.2,
            horizon="1y",
            rates=TEN_PERCENT,
            cost_to_serve=1.0,
        )
    with pytest.raises(SchemaError, match="unknown cost items"):
        clv(
            small,
            purchases=models["BetaGeo"],
            spend=spend,
            margin=0.2,
            horizon="1y",
            rates=TEN_PERCENT,
            margin_net_of=("shipping",),
            **NO_COSTS,
        )


def test_unknown_segments_are_listed(models, spend, small):
    segment = segments_of(small)
    with pytest.raises(SchemaError, match=r"1 segment\(s\): \{'occasional': \d+\}"):
        clv(
            small,
            purchases=models["BetaGeo"],
            spend=spend,
            margin=0.2,
            horizon="1y",
            rates=DiscountRates.by_segment({"loyal": 0.1}),
            segment=segment,
            **NO_COSTS,
        )
    with pytest.raises(SchemaError, match="no model for segment"):
        clv(
            small,
            purchases={"loyal": models["BetaGeo"]},
            spend=spend,
            margin=0.2,
            horizon="1y",
            rates=TEN_PERCENT,
            segment=segment,
            **NO_COSTS,
        )
    with pytest.raises(SchemaError, match="cost_to_serve have no value"):
        clv(
            small,
            purchases=models["BetaGeo"],
            spend=spend,
            margin=0.2,
            horizon="1y",
            rates=TEN_PERCENT,
            segment=segment,
            cost_to_serve={"loyal": 1.0},
            marketing_cost=0.0,
        )


@pytest.mark.parametrize("margin", [-0.1, 1.3, 30])
def test_margins_outside_zero_and_one_are_refused(margin, models, spend, small):
    with pytest.raises(SchemaError, match="between 0 and 1"):
        clv(
            small,
            purchases=models["BetaGeo"],
            spend=spend,
            margin=margin,
            horizon="1y",
            rates=TEN_PERCENT,
            **NO_COSTS,
        )
    per_customer = pd.Series(0.3, index=small.index)
    per_customer.iloc[[2, 5]] = margin
    with pytest.raises(DataQualityError, match=r"2 of \d+ customers are not"):
        clv(
            small,
            purchases=models["BetaGeo"],
            spend=spend,
            margin=per_customer,
            horizon="1y",
            rates=TEN_PERCENT,
            **NO_COSTS,
        )


@pytest.mark.parametrize("horizon", [3, 36.0])
def test_horizons_without_units_are_refused(horizon, models, spend, small):
    with pytest.raises(SchemaError, match="has no unit"):
        clv(
            small,
            purchases=models["BetaGeo"],
            spend=spend,
            margin=0.2,
            horizon=horizon,
            rates=TEN_PERCENT,
            **NO_COSTS,
        )
    # a bare rate has its unit now: the effective annual rate (tests/test_value_plain.py)


def test_other_input_errors(models, spend, small, donations_model):
    with pytest.raises(DataQualityError, match=r"e.g. customer 13; customers without repeat"):
        clv(
            small,
            purchases=models["BetaGeo"],
            spend="observed",
            margin=0.2,
            horizon="1y",
            rates=TEN_PERCENT,
            **NO_COSTS,
        )
    with pytest.raises(NotFittedError):
        clv(
            small,
            purchases=cv.BetaGeo(),
            spend=spend,
            margin=0.2,
            horizon="1y",
            rates=TEN_PERCENT,
            **NO_COSTS,
        )
    with pytest.raises(SchemaError, match="whole number"):
        clv(
            histories([(1, 2, 6)]),
            purchases=donations_model,
            spend=1.0,
            margin=0.2,
            horizon="18M",
            rates=TEN_PERCENT,
            **NO_COSTS,
        )
    unitless = cv.BetaGeo.from_params(*models["BetaGeo"].params_)
    with pytest.raises(SchemaError, match="time unit"):
        clv(
            small,
            purchases=unitless,
            spend=spend,
            margin=0.2,
            horizon="1y",
            rates=TEN_PERCENT,
            **NO_COSTS,
        )


# --- audit trail -------------------------------------------------------------------------------


def test_every_component_adds_up(models, spend, cdnow):
    acquisition = pd.Series(np.linspace(5.0, 50.0, len(cdnow)), index=cdnow.index)
    value = clv(
        cdnow,
        purchases=models["ModifiedBetaGeo"],
        spend=spend,
        margin=0.35,
        horizon="2y",
        rates=TEN_PERCENT,
        cost_to_serve=0.8,
        marketing_cost=0.2,
        acquisition_cost=acquisition,
    ).customers
    close = {"rtol": 1e-12, "atol": 1e-12}
    np.testing.assert_allclose(
        value["revenue"], value["expected_purchases"] * value["expected_spend"], **close
    )
    np.testing.assert_allclose(value["gross_margin"], 0.35 * value["revenue"], **close)
    np.testing.assert_allclose(value["cost_to_serve"], 0.8 * value["alive_periods"], **close)
    np.testing.assert_allclose(
        value["net_margin"],
        value["gross_margin"] - value["cost_to_serve"] - value["marketing_cost"],
        **close,
    )
    np.testing.assert_allclose(
        value["clv"],
        value["discounted_gross_margin"]
        - value["discounted_cost_to_serve"]
        - value["discounted_marketing_cost"],
        **close,
    )
    np.testing.assert_allclose(value["clv_net_of_acquisition"], value["clv"] - acquisition, **close)
    assert (value["discounted_revenue"] < value["revenue"]).all()


def test_period_totals_add_up_to_the_customer_totals(models, spend, cdnow):
    segment = segments_of(cdnow)
    value = clv(
        cdnow,
        purchases=models["BetaGeo"],
        spend=spend,
        margin=0.3,
        horizon="13M",
        rates=DiscountRates.by_segment({"loyal": 0.08, "occasional": 0.2}),
        cost_to_serve={"loyal": 0.5, "occasional": 0.2},
        marketing_cost=0.1,
        segment=segment,
    )
    periods = value.periods(by="segment")
    totals = periods.groupby(level="group").sum()
    by_segment = value.customers.groupby("segment").sum(numeric_only=True)
    for column in (
        "expected_purchases",
        "revenue",
        "gross_margin",
        "cost_to_serve",
        "marketing_cost",
    ):
        np.testing.assert_allclose(totals[column], by_segment[column], rtol=1e-10)
    np.testing.assert_allclose(totals["discounted_net_cash_flow"], by_segment["clv"], rtol=1e-10)
    assert periods.loc["loyal", "end_years"].iloc[-1] == pytest.approx(13 / 12)


def test_models_per_segment_are_each_segments_own(models, spend, cdnow):
    segment = segments_of(cdnow)
    chosen = {"loyal": models["ParetoNBD"], "occasional": models["BetaGeo"]}
    common = {
        "spend": spend,
        "margin": 0.3,
        "horizon": "1y",
        "rates": TEN_PERCENT,
        "cost_to_serve": 0.2,
        "marketing_cost": 0.0,
    }
    mixed = clv(cdnow, purchases=chosen, segment=segment, **common).customers
    for label, model in chosen.items():
        alone = clv(cdnow, purchases=model, **common).customers
        is_in = (segment == label).to_numpy()
        np.testing.assert_allclose(mixed["clv"][is_in], alone["clv"][is_in], rtol=1e-12)


def test_contract_models_per_cohort():
    table = pd.DataFrame(
        [REGULAR, [1000, 869, 743, 653, 593, 551, 517, 491]], index=["Regular", "High End"]
    )
    per_cohort = cv.ShiftedBetaGeo().fit_survivors(table, shared=False, unit="year")
    data = pd.DataFrame({"duration": [2, 2, 5], "is_censored": [1, 1, 1]}, index=[7, 8, 9])
    cohort = pd.Series(["Regular", "High End", "Regular"], index=data.index)
    value = clv(
        data,
        purchases=per_cohort,
        spend=100.0,
        margin=0.6,
        horizon="5y",
        rates=TEN_PERCENT,
        model_by=cohort,
        **NO_COSTS,
    ).customers
    for label, model in per_cohort.cohorts_.items():
        alone = clv(
            data,
            purchases=model,
            spend=100.0,
            margin=0.6,
            horizon="5y",
            rates=TEN_PERCENT,
            **NO_COSTS,
        ).customers
        is_in = (cohort == label).to_numpy()
        np.testing.assert_allclose(value["clv"][is_in], alone["clv"][is_in], rtol=1e-14)
    assert value.loc[8, "clv"] > value.loc[7, "clv"]  # High End retains better


def test_margin_by_category_is_revenue_weighted():
    log = pd.DataFrame(
        {
            "customer_id": [1, 1, 2, 2, 2],
            "amount": [100.0, 300.0, 50.0, 50.0, -50.0],
            "category": ["books", "home", "home", "home", "home"],
            "is_return": [False, False, False, False, True],
        }
    )
    found = margin_by_category(log, {"books": 0.4, "home": 0.2})
    assert found.to_dict() == {1: pytest.approx(0.25), 2: pytest.approx(0.2)}
    with pytest.raises(SchemaError, match=r"no margin for categories \{'home': 3\}"):
        margin_by_category(log, {"books": 0.4})


# --- customer equity ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def crm_values():
    """make_crm with segment-specific truth (no cohort trend); BG/NBD and Gamma-Gamma by segment."""
    crm = make_crm(15_000, seed=7, cohort_dropout_trend=0.0)
    summary = cv.rfm_summary(
        crm.transactions, observation_end=crm.truth.observation_end, unit="week"
    )
    summary = summary[summary["T"] > 0]
    segment = crm.customers["segment"].reindex(summary.index)
    fitted, spend, true, true_spend = {}, {}, {}, {}
    for label in segment.unique():
        part = summary[segment == label]
        fitted[label] = cv.BetaGeo().fit(part, unit="week")
        spend[label] = cv.GammaGamma().fit(part)
        true[label] = cv.BetaGeo.from_params(
            *crm.truth.purchase_params.loc[label].iloc[0], unit="week"
        )
        truth = crm.truth.spend_params.loc[label].iloc[0]
        true_spend[label] = given_params(cv.GammaGamma, truth.to_dict(), unit=None)
    common = {
        "margin": 0.3,
        "horizon": "5y",
        "segment": segment,
        "marketing_cost": 0.2,
        "rates": DiscountRates.by_segment({"retail": 0.12, "online": 0.15, "corporate": 0.08}),
        "cost_to_serve": {"retail": 1.0, "online": 0.5, "corporate": 3.0},
    }
    return SimpleNamespace(
        crm=crm,
        summary=summary,
        fitted=fitted,
        spend=spend,
        common=common,
        estimated=clv(summary, purchases=fitted, spend=spend, **common),
        from_truth=clv(summary, purchases=true, spend=true_spend, **common),
    )


def test_equity_by_segment_covers_the_value_from_the_true_parameters(crm_values):
    """Six intervals (3 segments x 2 horizons) at a Bonferroni-adjusted joint 95 % level."""
    estimated, from_truth = crm_values.estimated, crm_values.from_truth
    equity = customer_equity(estimated, ("3y", "5y"), by="segment", level=1.0 - 0.05 / 6)
    truth = customer_equity(from_truth, ("3y", "5y"), by="segment", level=None).by_group
    table = equity.by_group.join(truth["equity"].rename("truth"))
    assert len(table) == 6
    assert ((table["ci_lower"] <= table["truth"]) & (table["truth"] <= table["ci_upper"])).all()
    assert (table["std_error"] > 0).all()
    assert set(table["customers"]) == set(estimated.customers["segment"].value_counts())


def test_equity_is_the_sum_of_the_customers_values(crm_values):
    estimated = crm_values.estimated
    equity = customer_equity(estimated, ("5y",), by="segment", level=None)
    sums = estimated.customers.groupby("segment")["clv"].sum()
    np.testing.assert_allclose(
        equity.by_group.xs("5y", level="horizon")["equity"], sums, rtol=1e-10
    )
    assert equity.total.loc["5y", "equity"] == pytest.approx(sums.sum(), rel=1e-10)


def test_equity_at_a_shorter_horizon_is_that_horizons_clv(models, spend, cdnow):
    common = {
        "purchases": models["ParetoNBD"],
        "spend": spend,
        "margin": 0.3,
        "rates": TEN_PERCENT,
        "cost_to_serve": 0.25,
        "marketing_cost": 0.05,
    }
    five = clv(cdnow, horizon="5y", **common)
    two = clv(cdnow, horizon="26M", **common)
    equity = customer_equity(five, ("26M", "5y"), level=None)
    assert equity.total.loc["26M", "equity"] == pytest.approx(two.customers["clv"].sum(), rel=1e-10)


def test_parameter_draws_agree_with_the_delta_method(models, spend, cdnow):
    value = clv(
        cdnow,
        purchases=models["ParetoNBD"],
        spend=spend,
        margin=0.3,
        horizon="2y",
        rates=TEN_PERCENT,
        **NO_COSTS,
    )
    delta = customer_equity(value, ("2y",), level=0.9).total.iloc[0]
    draws = customer_equity(
        value, ("2y",), level=0.9, method="draws", n_draws=200, rng=np.random.default_rng(5)
    ).total.iloc[0]
    # 200 draws estimate a standard deviation to about 5 % (1 / sqrt(2 * 199)): 0.2 is 4 of them
    assert draws["std_error"] == pytest.approx(delta["std_error"], rel=0.2)
    assert draws["ci_lower"] < delta["equity"] < draws["ci_upper"]
    assert delta["ci_lower"] < delta["equity"] < delta["ci_upper"]


def test_equity_without_covariance_needs_level_none(crm_values):
    from_truth = crm_values.from_truth
    with pytest.raises(SchemaError, match="level=None"):
        customer_equity(from_truth, ("1y",))


def test_future_cohorts_add_new_customers_net_of_acquisition_cost(donations_model):
    """Each period's new customers are valued over the rest of the horizon, net of their CAC."""
    data = histories([(3, 5, 6), (0, 0, 6)])
    value = clv(
        data,
        purchases=donations_model,
        spend=10.0,
        margin=0.5,
        horizon="4y",
        rates=TEN_PERCENT,
        cost_to_serve=1.0,
        marketing_cost=0.5,
    )
    future = FutureCohorts(customers_per_period=100.0, acquisition_cost=12.0)
    equity = customer_equity(value, ("4y",), level=None, future=future)
    expected = 0.0
    for j in range(1, 5):  # acquired at the start of year j, valued over the remaining years
        new = new_customer_value(
            purchases=donations_model,
            spend=10.0,
            margin=0.5,
            horizon=f"{5 - j}y",
            rates=TEN_PERCENT,
            acquisition_cost=12.0,
            cost_to_serve=1.0,
            marketing_cost=0.5,
        )
        expected += 100.0 * new["value_net_of_acquisition"].iloc[0] / 1.1 ** (j - 1)
    assert equity.future.iloc[0]["equity"] == pytest.approx(expected, rel=1e-12)
    assert equity.future.iloc[0]["new_customers"] == 400.0
    total = equity.total.loc["4y"]
    assert total["equity"] == pytest.approx(total["existing"] + total["future"])
    per_customer = clv(
        data,
        purchases=donations_model,
        spend=10.0,
        margin=pd.Series([0.5, 0.4], index=data.index),
        horizon="4y",
        rates=TEN_PERCENT,
        **NO_COSTS,
    )
    with pytest.raises(SchemaError, match="FutureCohorts"):
        customer_equity(per_customer, ("4y",), level=None, future=future)


# --- CLV against CAC ---------------------------------------------------------------------------


def test_clv_to_cac_by_channel(crm_values):
    crm, summary, estimated = crm_values.crm, crm_values.summary, crm_values.estimated
    table = clv_to_cac(estimated, crm.customers, by="channel")
    customers = crm.customers.reindex(summary.index)
    for channel, row in table.iterrows():
        is_in = (customers["channel"] == channel).to_numpy()
        values = estimated.customers["clv"][is_in]
        costs = customers["acquisition_cost"][is_in]
        assert row["customers"] == is_in.sum()
        assert row["clv_to_cac"] == pytest.approx(values.sum() / costs.sum())
        assert row["value_net_of_cac"] == pytest.approx(values.mean() - costs.mean())
    periods = estimated.periods(by=customers["channel"])
    for channel, row in table.iterrows():
        cumulative = (
            periods.loc[channel, "discounted_net_cash_flow"] / periods.loc[channel, "customers"]
        ).cumsum()
        ends = periods.loc[channel, "end_years"]
        if np.isnan(row["payback_years"]):
            assert cumulative.iloc[-1] < row["cac"]
        else:  # reached within the period ending just after the payback time
            k = int(np.searchsorted(ends.to_numpy(), row["payback_years"]))
            assert cumulative.iloc[k] >= row["cac"] - 1e-9
            assert k == 0 or cumulative.iloc[k - 1] < row["cac"]


def test_clv_to_cac_payback_is_nan_beyond_the_horizon(crm_values):
    crm, estimated = crm_values.crm, crm_values.estimated
    costly = crm.customers.assign(acquisition_cost=1e9)
    assert clv_to_cac(estimated, costly, by="cohort")["payback_years"].isna().all()


# --- the back-of-envelope LTV ------------------------------------------------------------------


def test_simple_ltv():
    assert simple_ltv(5, 500, 20) == 50_000.0
    assert simple_ltv(5, 500, 20, margin=0.3) == pytest.approx(15_000.0)
    with pytest.raises(SchemaError, match="finite numbers >= 0"):
        simple_ltv(-5, 500, 20)
    with pytest.raises(SchemaError, match="between 0 and 1"):
        simple_ltv(5, 500, 20, margin=30)


def test_simple_ltv_table_from_transactions():
    log = pd.DataFrame(
        {
            "customer_id": [1, 1, 1, 2, 3],
            "timestamp": pd.to_datetime(
                ["2023-01-01", "2023-07-01", "2024-01-01", "2023-01-01", "2023-07-02"]
            ),
            "amount": [100.0, 50.0, 150.0, 20.0, 40.0],
        }
    )
    customers = pd.DataFrame(
        {"segment": ["a", "a", "b"], "cohort": ["2023", "2023", "2023"]}, index=[1, 2, 3]
    )
    table = simple_ltv_table(log, customers, years=10, observation_end="2024-01-01")
    a = table.loc[("a", "2023")]
    year = cv.TimeUnit.YEAR.days
    assert a["customers"] == 2
    assert a["purchases"] == 4
    assert a["customer_years"] == pytest.approx(2 * 365 / year)
    assert a["average_check"] == pytest.approx(80.0)
    assert a["simple_ltv"] == pytest.approx(4 / (2 * 365 / year) * 80.0 * 10)


def test_compare_ltv_splits_the_gap_by_cause(crm_values):
    crm, estimated = crm_values.crm, crm_values.estimated
    heuristic = simple_ltv_table(
        crm.transactions, crm.customers, years=5, observation_end=crm.truth.observation_end
    )
    table = compare_ltv(estimated, heuristic, by=crm.customers)
    gaps = table[["gap_churn", "gap_margin", "gap_costs", "gap_discounting"]].sum(axis=1)
    np.testing.assert_allclose(gaps, table["simple_revenue"] - table["model_clv"], rtol=1e-10)
    assert (table["heuristic_over_model"] > 1).all()  # no churn, no costs: the heuristic is high
    assert (table["gap_churn"] > 0).all()
    with pytest.raises(SchemaError, match="horizon='5y'"):
        compare_ltv(over_three_years(crm_values), heuristic, by=crm.customers)


def over_three_years(crm_values):
    """The same valuation over 3 years (the heuristic covers 5)."""
    common = {**crm_values.common, "horizon": "3y"}
    return clv(crm_values.summary, purchases=crm_values.fitted, spend=crm_values.spend, **common)


def test_customers_without_a_group_are_an_error_not_dropped(crm_values):
    crm, summary, estimated = crm_values.crm, crm_values.summary, crm_values.estimated
    gaps = crm.customers.copy()
    gaps.loc[summary.index[:3], "channel"] = None
    with pytest.raises(DataQualityError, match="no channel for 3 of"):
        clv_to_cac(estimated, gaps, by="channel")
    heuristic = simple_ltv_table(
        crm.transactions, crm.customers, years=5, observation_end=crm.truth.observation_end
    )
    with pytest.raises(DataQualityError, match="no segment/cohort for 2 of"):
        compare_ltv(estimated, heuristic, by=crm.customers.drop(index=summary.index[:2]))


def test_rates_hand_out_exact_unit_rates():
    rates = DiscountRates.by_segment({"retail": 0.12}, default=0.10)
    assert rates.as_rate("retail").per("month") == pytest.approx(1.12 ** (1 / 12) - 1, rel=1e-14)
    assert rates.as_rate("unknown") == Rate(0.10)
    assert rates.as_rate("retail").continuous("year") == pytest.approx(math.log(1.12))
