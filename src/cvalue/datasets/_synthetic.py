"""A synthetic CRM with planted truth, for examples, tests and benchmarks.

:func:`make_crm` simulates a customer base the way the models in :mod:`cvalue.models` assume it
behaves, so that every later step can be checked against the truth that generated the data:

- **Purchases** follow the BG/NBD story (Fader, Hardie & Lee 2005, "Counting your customers the
  easy way", section 2): while alive, a customer buys at Poisson rate ``lambda ~ Gamma(r, alpha)``
  per week; after every repeat purchase the customer drops out with probability
  ``p ~ Beta(a, b)``. The first purchase is made on the acquisition date.
- **Spend** follows the Gamma-Gamma model (Fader, Hardie & Lee 2005, "RFM and CLV", appendix;
  Colombo & Jiang 1999): ``nu ~ Gamma(q, gamma)`` per customer and ``z ~ Gamma(p, nu)`` per
  purchase.
- Parameters differ by segment and by acquisition cohort: each later cohort's ``a`` is scaled by
  ``(1 + cohort_dropout_trend) ** years``, so later cohorts drop out sooner.
- A planted group of **unprofitable cross-buyers** (``unprofitable_share`` of the customers
  who bought in two or more categories) returns most of what it buys, contacts service four
  times as often as others and buys almost only on promotion, so that its net margin is
  negative. With the default costs about 90 % of the planted customers lose money, few other
  cross-buyers do (about 2 %), and the planted group carries about 70 % of all customer losses
  (:attr:`CRMTruth.loss_share`); most of the rest comes from one-time buyers who returned their
  only purchase. So the loss-making cross-buyers are about 20 % of the cross-buyers and carry
  about 70 % of the losses, as found in large firms' customer data.

Everything is drawn in vectorised numpy from ``np.random.default_rng(seed)``: a seed gives the
same data on every run, and 100,000 customers take a few seconds. Customers and purchases
(times, amounts, categories, sales channels) are drawn first; the planted group, promotions,
returns, service contacts and surveys come from a child generator (``rng.spawn``), so changing
how customers behave after buying leaves the purchases of a seed unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from pandas.api.extensions import ExtensionArray
from scipy import special

from cvalue.datasets._crm import (
    _SECONDS_PER_DAY,
    ACQUISITION_CHANNELS,
    CATEGORIES,
    CONTACT_KINDS,
    SALES_CHANNELS,
    CostAssumptions,
    CRMTruth,
    SegmentProfile,
    SyntheticCRM,
    _check_arguments,
    _Window,
)
from cvalue.units import TimeUnit

__all__ = ["make_crm"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

_NANOSECONDS_PER_SECOND = 1_000_000_000
_SECONDS_PER_WEEK = TimeUnit.WEEK.days * _SECONDS_PER_DAY
_SALES_CHANNEL_WEIGHTS = (0.45, 0.25, 0.25, 0.05)
_PREFERRED_CHANNEL_SHARE = 0.75  # share of a customer's orders placed in their preferred channel
_OFF_CATEGORY_BETA = (1.0, 2.5)  # Beta prior of the share of orders outside the main category
_RETURN_DELAY_DAYS = (1.0, 9.0)  # minimum and mean extra delay between purchase and return
_CONTACT_DELAY_DAYS = 3.0  # mean delay between an order and the service contact it causes
_SURVEY_DELAY_DAYS = 2.0  # mean delay between an order and the survey answer about it
_SURVEY_PROBABILITY = 0.10  # chance that an order is followed by a survey answer
_COST_NOISE_SHAPE = 8.0  # Gamma(shape, 1/shape) noise around mean acquisition and contact costs


@dataclass(frozen=True, slots=True)
class _Behaviour:
    """How a group of customers promotes, returns, contacts service and rates its experience."""

    promotion_probability: float
    return_probability: float
    contacts_per_order: float
    contact_rate_shape: float  # Gamma shape of the customer's contact rate around its mean
    contact_kind_weights: tuple[float, float, float]
    satisfaction_shift: float


# Calibrated so that, with the default costs, about 20 % of the cross-buyers (the planted group)
# lose money and carry about 70 % of all customer losses; ordinary cross-buyers seldom lose money.
_ORDINARY = _Behaviour(0.10, 0.05, 0.05, 2.0, (0.3, 0.4, 0.3), 0.0)
_PLANTED = _Behaviour(0.95, 0.70, 0.20, 8.0, (0.4, 0.3, 0.3), -1.2)
# Chance that a one-time buyer returned their only purchase: an order that went back is the
# commonest reason not to come back. These returns are most of the losses outside the planted group.
_ONE_TIME_RETURN_PROBABILITY = 0.75


@dataclass(frozen=True, slots=True)
class _Cohorts:
    """Cohort labels over the window and each one's distance from the first, in years."""

    labels: tuple[str, ...]
    years_from_first: FloatArray
    unit: Literal["year", "quarter"]


@dataclass(frozen=True, slots=True)
class _Base:
    """Who the customers are: drawn before anything about their behaviour."""

    segment: IntArray
    cohort: IntArray
    channel: IntArray
    acquisition_day: IntArray
    first_second: IntArray
    acquisition_cost: FloatArray


@dataclass(frozen=True, slots=True)
class _Latent:
    """Per-customer latent BG/NBD and Gamma-Gamma draws."""

    rate: FloatArray
    dropout: FloatArray
    spend_rate: FloatArray
    spend_shape: FloatArray


@dataclass(frozen=True, slots=True)
class _Purchases:
    """Purchases grouped by customer in time order, with the dropout outcome per customer."""

    owner: IntArray
    second: IntArray
    amount: FloatArray
    category: IntArray
    channel: IntArray
    n_repeat: IntArray
    is_alive: BoolArray
    dropout_second: IntArray  # -1 while alive


@dataclass(frozen=True, slots=True)
class _Events:
    """Rows of an event table (returns, contacts, surveys) as parallel arrays."""

    owner: IntArray
    second: IntArray
    columns: Mapping[str, npt.NDArray[np.generic]]


@dataclass(frozen=True, slots=True)
class _Aftermath:
    """What follows the purchases: promotions, returns, service contacts, survey answers."""

    is_promotion: BoolArray
    returns: _Events
    contacts: _Events
    surveys: _Events


def make_crm(
    n_customers: int = 10_000,
    *,
    seed: int = 0,
    start: str | pd.Timestamp = "2022-01-01",
    observation_end: str | pd.Timestamp = "2024-12-31",
    segments: Mapping[str, SegmentProfile] | None = None,
    cohort_unit: Literal["year", "quarter"] = "year",
    cohort_dropout_trend: float = 0.5,
    unprofitable_share: float = 0.2,
    costs: CostAssumptions | None = None,
) -> SyntheticCRM:
    """Simulate a CRM: customers, transactions, service contacts, surveys, and the truth.

    Parameters
    ----------
    n_customers
        Number of customers to acquire (>= 1).
    seed
        Seed of ``np.random.default_rng``; the same seed gives the same data.
    start, observation_end
        The simulated window (timezone-naive; at least one day apart). Customers are acquired
        on days spread evenly over it; every event happens at or before ``observation_end``
        (a date means its midnight).
    segments
        Segment names and their generating parameters; :data:`DEFAULT_SEGMENTS` by default.
        Pass one segment with ``cohort_dropout_trend=0`` for a homogeneous BG/NBD population.
    cohort_unit
        Whether cohorts are acquisition years (``"2022"``) or quarters (``"2022Q1"``).
    cohort_dropout_trend
        Growth per year of the Beta ``a`` of the dropout probability: a cohort starting ``y``
        years after the first one has ``a * (1 + cohort_dropout_trend) ** y``, so later cohorts
        retain worse when the trend is positive. Must be > -1.
    unprofitable_share
        Share of the cross-buyers (customers with purchases in two or more categories) planted
        as unprofitable: most purchases returned, four times the service contacts of other
        customers, almost only promotions. At the default 0.2 and default costs, about 20 % of the
        cross-buyers lose money and they carry about 70 % of all customer losses.
    costs
        Margin and cost assumptions; ``CostAssumptions()`` by default.

    Returns
    -------
    SyntheticCRM
        The tables and the :class:`CRMTruth` that generated them.

    Raises
    ------
    SchemaError
        If an argument is out of range or the dates cannot be read.

    Examples
    --------
    >>> crm = make_crm(1_000, seed=1)
    >>> crm.customers.shape[0], bool(crm.transactions["order_id"].is_unique)
    (1000, True)
    >>> bool(crm.truth.customers.loc[crm.truth.unprofitable_ids, "net_margin"].mean() < 0)
    True
    """
    window, profiles = _check_arguments(
        n_customers,
        start,
        observation_end,
        segments,
        cohort_unit,
        cohort_dropout_trend,
        unprofitable_share,
    )
    costs = CostAssumptions() if costs is None else costs
    rng = np.random.default_rng(seed)
    cohorts = _cohorts(window, cohort_unit)
    params = _parameter_grid(profiles, cohorts, cohort_dropout_trend)
    base = _draw_base(rng, n_customers, window, profiles, cohorts, costs)
    latent = _draw_latent(rng, base, params)
    purchases = _draw_purchases(rng, base, latent, window)
    is_cross_buyer = _is_cross_buyer(purchases, n_customers)
    # Behaviour and costs come from a child stream: recalibrating them leaves the purchases be.
    behaviour_rng = rng.spawn(1)[0]
    is_planted = _plant(behaviour_rng, is_cross_buyer, unprofitable_share)
    after = _draw_aftermath(behaviour_rng, purchases, latent, is_planted, window, costs)
    net_margin = _net_margin(purchases, after, costs)
    truth = CRMTruth(
        purchase_params=_params_frame(params[..., :4], profiles, cohorts, ("r", "alpha", "a", "b")),
        spend_params=_params_frame(params[..., 4:], profiles, cohorts, ("p", "q", "gamma")),
        customers=_truth_customers(
            latent, purchases, is_cross_buyer, is_planted, net_margin, window
        ),
        unprofitable_ids=_read_only(np.flatnonzero(is_planted) + 1),
        costs=costs,
        start=window.start,
        observation_end=window.end,
        cohort_dropout_trend=float(cohort_dropout_trend),
    )
    return SyntheticCRM(
        customers=_customers_frame(base, profiles, cohorts, window),
        transactions=_transactions_frame(purchases, after, window),
        service_contacts=_events_frame(after.contacts, window, {"kind": CONTACT_KINDS}),
        surveys=_events_frame(after.surveys, window),
        truth=truth,
    )


def _period_index(nanoseconds: IntArray, unit: Literal["year", "quarter"]) -> IntArray:
    """Years or quarters since 1970 of epoch nanoseconds."""
    months = nanoseconds.view("datetime64[ns]").astype("datetime64[M]").astype(np.int64)
    return months // (12 if unit == "year" else 3)


def _cohorts(window: _Window, unit: Literal["year", "quarter"]) -> _Cohorts:
    """The cohorts a customer acquired in the window can belong to."""
    last_day = (window.n_days - 1) * _SECONDS_PER_DAY * _NANOSECONDS_PER_SECOND
    bounds = np.array([window.start.value, window.start.value + last_day], dtype=np.int64)
    first, last = (int(period) for period in _period_index(bounds, unit))
    periods = range(first, last + 1)
    if unit == "year":
        labels = tuple(str(1970 + period) for period in periods)
    else:
        labels = tuple(f"{1970 + period // 4}Q{period % 4 + 1}" for period in periods)
    per_year = TimeUnit.YEAR.per(TimeUnit.YEAR if unit == "year" else TimeUnit.QUARTER)
    return _Cohorts(labels, np.arange(len(labels), dtype=np.float64) / per_year, unit)


def _parameter_grid(
    profiles: Mapping[str, SegmentProfile], cohorts: _Cohorts, cohort_dropout_trend: float
) -> FloatArray:
    """Parameters ``r, alpha, a, b, p, q, gamma`` by segment and cohort, shape (S, C, 7)."""
    by_segment = np.array(
        [[pr.r, pr.alpha, pr.a, pr.b, pr.p, pr.q, pr.gamma] for pr in profiles.values()],
        dtype=np.float64,
    )
    grid = np.repeat(by_segment[:, np.newaxis, :], len(cohorts.labels), axis=1)
    grid[:, :, 2] *= (1.0 + cohort_dropout_trend) ** cohorts.years_from_first
    return grid


def _draw_categorical(rng: np.random.Generator, probabilities: FloatArray) -> IntArray:
    """One draw per row of a (rows, k) matrix of probabilities that sum to one."""
    cumulative = np.cumsum(probabilities, axis=1)[:, :-1]
    uniform = rng.random(size=(int(probabilities.shape[0]), 1))
    return np.asarray((cumulative <= uniform).sum(axis=1), dtype=np.int64)


def _noisy(rng: np.random.Generator, mean: FloatArray) -> FloatArray:
    """Positive amounts in cents, varying around ``mean``."""
    noise = rng.gamma(_COST_NOISE_SHAPE, 1.0 / _COST_NOISE_SHAPE, size=mean.size)
    return np.maximum(np.round(mean * noise, 2), 0.01)


def _draw_base(
    rng: np.random.Generator,
    n_customers: int,
    window: _Window,
    profiles: Mapping[str, SegmentProfile],
    cohorts: _Cohorts,
    costs: CostAssumptions,
) -> _Base:
    """Segment, acquisition day and time, cohort, channel and acquisition cost per customer."""
    shares = np.array([profile.share for profile in profiles.values()], dtype=np.float64)
    segment = rng.choice(shares.size, size=n_customers, p=shares / shares.sum()).astype(np.int64)
    acquisition_day = rng.integers(0, window.n_days, size=n_customers, dtype=np.int64)
    first_second = acquisition_day * _SECONDS_PER_DAY + rng.integers(
        0, _SECONDS_PER_DAY, size=n_customers, dtype=np.int64
    )
    weights = np.array([profile.channel_weights for profile in profiles.values()])
    channel = _draw_categorical(rng, (weights / weights.sum(axis=1, keepdims=True))[segment])
    acquired_ns = window.start.value + acquisition_day * _SECONDS_PER_DAY * _NANOSECONDS_PER_SECOND
    bounds = np.array([window.start.value], dtype=np.int64)
    cohort = _period_index(acquired_ns, cohorts.unit) - _period_index(bounds, cohorts.unit)[0]
    mean_cost = np.asarray(costs.acquisition_costs, dtype=np.float64)[channel]
    return _Base(segment, cohort, channel, acquisition_day, first_second, _noisy(rng, mean_cost))


def _draw_latent(rng: np.random.Generator, base: _Base, grid: FloatArray) -> _Latent:
    """Draw ``lambda``, ``p`` (BG/NBD) and ``nu`` (Gamma-Gamma) from each customer's cell."""
    cell = grid[base.segment, base.cohort]
    rate = rng.gamma(cell[:, 0], 1.0 / cell[:, 1])
    # p = 0 would make the geometric draw below undefined; 1e-12 means "never drops out".
    dropout = np.clip(rng.beta(cell[:, 2], cell[:, 3]), 1e-12, 1.0)
    spend_rate = rng.gamma(cell[:, 5], 1.0 / cell[:, 6])
    return _Latent(rate, dropout, spend_rate, cell[:, 4].copy())


def _group_starts(counts: IntArray) -> IntArray:
    """Index of the first element of each group in a flat array grouped by ``counts``."""
    return np.cumsum(counts) - counts


def _group_cumsum(values: FloatArray, counts: IntArray) -> FloatArray:
    """Cumulative sums of ``values`` restarted at each group of a flat grouped array."""
    running = np.concatenate([[0.0], np.cumsum(values)])
    return np.asarray(running[1:] - np.repeat(running[_group_starts(counts)], counts))


def _repeat_purchase_weeks(
    rng: np.random.Generator, rate: FloatArray, dropout: FloatArray, weeks_observed: FloatArray
) -> tuple[IntArray, FloatArray, BoolArray]:
    """Repeat purchase times of the BG/NBD story (Fader, Hardie & Lee 2005, section 2).

    The customer leaves after the ``J``-th repeat purchase, ``J ~ Geometric(p)``; a Poisson
    process of rate ``lambda`` puts ``N ~ Poisson(lambda T)`` events in ``(0, T]``; the observed
    purchases are the first ``min(N, J)`` of them. The ``k``-th of ``N`` sorted uniform times is
    ``T * S_k / S_(N+1)`` with ``S`` the running sum of unit exponentials, and
    ``S_(N+1) - S_k ~ Gamma(N + 1 - k)``, so only the kept times are drawn.

    Returns
    -------
    tuple
        Repeat purchases per customer, their times in weeks after the first purchase (flat,
        grouped by customer, ascending) and whether each customer is alive at the end.
    """
    n_dropout = rng.geometric(dropout).astype(np.int64)
    n_events = rng.poisson(rate * weeks_observed).astype(np.int64)
    n_repeat = np.minimum(n_events, n_dropout)
    partial = _group_cumsum(rng.standard_exponential(int(n_repeat.sum())), n_repeat)
    last = np.zeros(rate.size)
    has_repeat = n_repeat > 0
    last[has_repeat] = partial[(np.cumsum(n_repeat) - 1)[has_repeat]]
    total = last + rng.standard_gamma((n_events - n_repeat + 1).astype(np.float64))
    owner = np.repeat(np.arange(rate.size), n_repeat)
    return n_repeat, weeks_observed[owner] * partial / total[owner], n_dropout > n_events


def _draw_purchases(
    rng: np.random.Generator, base: _Base, latent: _Latent, window: _Window
) -> _Purchases:
    """All purchases: the first on the acquisition date, then the BG/NBD repeat purchases."""
    n_customers = base.segment.size
    weeks_observed = (window.span_seconds - base.first_second) / _SECONDS_PER_WEEK
    n_repeat, repeat_weeks, is_alive = _repeat_purchase_weeks(
        rng, latent.rate, latent.dropout, weeks_observed
    )
    per_customer = n_repeat + 1
    owner = np.repeat(np.arange(n_customers, dtype=np.int64), per_customer)
    offset = np.zeros(owner.size, dtype=np.int64)
    is_repeat = np.ones(owner.size, dtype=np.bool_)
    is_repeat[_group_starts(per_customer)] = False
    offset[is_repeat] = np.floor(repeat_weeks * _SECONDS_PER_WEEK).astype(np.int64)
    second = np.minimum(base.first_second[owner] + offset, window.span_seconds)
    last_second = second[np.cumsum(per_customer) - 1]
    amount = rng.gamma(latent.spend_shape[owner], 1.0 / latent.spend_rate[owner])
    return _Purchases(
        owner=owner,
        second=second,
        amount=np.maximum(np.round(amount, 2), 0.01),
        category=_draw_categories(rng, owner, n_customers),
        channel=_draw_sales_channels(rng, owner, n_customers),
        n_repeat=n_repeat,
        is_alive=is_alive,
        dropout_second=np.where(is_alive, -1, last_second),
    )


def _draw_categories(rng: np.random.Generator, owner: IntArray, n_customers: int) -> IntArray:
    """A main category per customer; each order leaves it with a customer-specific chance."""
    main = rng.integers(0, len(CATEGORIES), size=n_customers, dtype=np.int64)
    breadth = rng.beta(*_OFF_CATEGORY_BETA, size=n_customers)
    is_off = rng.random(owner.size) < breadth[owner]
    shift = rng.integers(1, len(CATEGORIES), size=owner.size, dtype=np.int64)
    return np.where(is_off, (main[owner] + shift) % len(CATEGORIES), main[owner])


def _draw_sales_channels(rng: np.random.Generator, owner: IntArray, n_customers: int) -> IntArray:
    """A preferred sales channel per customer, used for most of their orders."""
    weights = np.asarray(_SALES_CHANNEL_WEIGHTS)
    preferred = rng.choice(weights.size, size=n_customers, p=weights).astype(np.int64)
    other = rng.choice(weights.size, size=owner.size, p=weights).astype(np.int64)
    is_preferred = rng.random(owner.size) < _PREFERRED_CHANNEL_SHARE
    return np.where(is_preferred, preferred[owner], other)


def _is_cross_buyer(purchases: _Purchases, n_customers: int) -> BoolArray:
    """Whether each customer bought from two or more categories."""
    seen = np.zeros((n_customers, len(CATEGORIES)), dtype=np.bool_)
    seen[purchases.owner, purchases.category] = True
    return np.asarray(seen.sum(axis=1) >= 2)


def _plant(rng: np.random.Generator, is_cross_buyer: BoolArray, share: float) -> BoolArray:
    """Pick ``share`` of the cross-buyers (rounded) as the planted unprofitable group."""
    candidates = np.flatnonzero(is_cross_buyer)
    chosen = rng.choice(candidates, size=round(share * candidates.size), replace=False)
    is_planted = np.zeros(is_cross_buyer.size, dtype=np.bool_)
    is_planted[chosen] = True
    return is_planted


def _per_customer(is_planted: BoolArray, attribute: str) -> FloatArray:
    """A behaviour attribute per customer: the planted group's or the ordinary one's."""
    planted, ordinary = getattr(_PLANTED, attribute), getattr(_ORDINARY, attribute)
    return np.asarray(np.where(is_planted, planted, ordinary), dtype=np.float64)


def _delayed(
    rng: np.random.Generator,
    purchases: _Purchases,
    source: IntArray,
    mean_days: float,
    window: _Window,
    minimum_days: float = 0.0,
) -> tuple[IntArray, IntArray]:
    """Events following the purchases ``source`` after a random delay; those in the window."""
    delay_days = minimum_days + rng.exponential(mean_days, size=source.size)
    second = purchases.second[source] + np.floor(delay_days * _SECONDS_PER_DAY).astype(np.int64)
    is_seen = second <= window.span_seconds
    return source[is_seen], second[is_seen]


def _draw_returns(
    rng: np.random.Generator,
    purchases: _Purchases,
    is_promotion: BoolArray,
    is_planted: BoolArray,
    window: _Window,
) -> _Events:
    """Full returns of some purchases, with a negative amount.

    One-time buyers return their only purchase with probability
    ``_ONE_TIME_RETURN_PROBABILITY``; other customers return each purchase with their group's
    ``return_probability``.
    """
    probability = _per_customer(is_planted, "return_probability")[purchases.owner]
    is_one_time = (purchases.n_repeat == 0)[purchases.owner]
    probability = np.where(is_one_time, _ONE_TIME_RETURN_PROBABILITY, probability)
    minimum_days, mean_days = _RETURN_DELAY_DAYS
    source, second = _delayed(
        rng,
        purchases,
        np.flatnonzero(rng.random(purchases.owner.size) < probability),
        mean_days,
        window,
        minimum_days,
    )
    return _Events(
        owner=purchases.owner[source],
        second=second,
        columns={
            "amount": -purchases.amount[source],
            "category": purchases.category[source],
            "channel": purchases.channel[source],
            "is_promotion": is_promotion[source],
        },
    )


def _draw_contacts(
    rng: np.random.Generator,
    purchases: _Purchases,
    is_planted: BoolArray,
    window: _Window,
    costs: CostAssumptions,
) -> _Events:
    """Service contacts caused by orders, at a customer-specific rate per order."""
    shape = _per_customer(is_planted, "contact_rate_shape")
    rate = rng.gamma(shape, _per_customer(is_planted, "contacts_per_order") / shape)
    per_order = rng.poisson(rate[purchases.owner])
    source, second = _delayed(
        rng, purchases, np.repeat(np.arange(per_order.size), per_order), _CONTACT_DELAY_DAYS, window
    )
    owner = purchases.owner[source]
    weights = np.where(
        is_planted[owner][:, np.newaxis],
        np.asarray(_PLANTED.contact_kind_weights),
        np.asarray(_ORDINARY.contact_kind_weights),
    )
    kind = _draw_categorical(rng, weights)
    cost = _noisy(rng, np.asarray(costs.contact_costs, dtype=np.float64)[kind])
    return _Events(owner=owner, second=second, columns={"kind": kind, "cost": cost})


def _normal_scores(values: FloatArray) -> FloatArray:
    """Rank-based normal scores: robust to the heavy tails of latent value."""
    ranks = np.argsort(np.argsort(values, kind="stable"), kind="stable")
    return np.asarray(special.ndtri((ranks + 0.5) / values.size), dtype=np.float64)


def _draw_surveys(
    rng: np.random.Generator,
    purchases: _Purchases,
    latent: _Latent,
    is_planted: BoolArray,
    window: _Window,
) -> _Events:
    """NPS, CSAT and CES answers after some orders, driven by a latent satisfaction.

    Satisfaction rises with the customer's expected spend per week (``lambda * p / nu``) and is
    lower in the planted unprofitable group.
    """
    with np.errstate(divide="ignore"):  # a zero rate is a valid draw; its log is -inf
        value = np.log(latent.rate) + np.log(latent.spend_shape / latent.spend_rate)
    satisfaction = (
        0.6 * _normal_scores(value)
        + _per_customer(is_planted, "satisfaction_shift")
        + rng.normal(0.0, 0.6, size=value.size)
    )
    asked = np.flatnonzero(rng.random(purchases.owner.size) < _SURVEY_PROBABILITY)
    source, second = _delayed(rng, purchases, asked, _SURVEY_DELAY_DAYS, window)
    owner = purchases.owner[source]
    answer = satisfaction[owner] + rng.normal(0.0, 0.5, size=owner.size)
    return _Events(
        owner=owner,
        second=second,
        columns={
            "nps": _scale(7.5 + 2.0 * answer, 0, 10),
            "csat": _scale(3.9 + 0.8 * answer, 1, 5),
            "ces": _scale(5.2 + 1.0 * answer, 1, 7),
        },
    )


def _scale(score: FloatArray, lowest: int, highest: int) -> IntArray:
    """Round a continuous score to the integer answers of a rating scale."""
    return np.clip(np.rint(score), lowest, highest).astype(np.int64)


def _draw_aftermath(
    rng: np.random.Generator,
    purchases: _Purchases,
    latent: _Latent,
    is_planted: BoolArray,
    window: _Window,
    costs: CostAssumptions,
) -> _Aftermath:
    """Promotions, returns, service contacts and surveys; the planted group behaves worse."""
    promotion_probability = _per_customer(is_planted, "promotion_probability")
    is_promotion = rng.random(purchases.owner.size) < promotion_probability[purchases.owner]
    return _Aftermath(
        is_promotion=is_promotion,
        returns=_draw_returns(rng, purchases, is_promotion, is_planted, window),
        contacts=_draw_contacts(rng, purchases, is_planted, window, costs),
        surveys=_draw_surveys(rng, purchases, latent, is_planted, window),
    )


def _net_margin(purchases: _Purchases, after: _Aftermath, costs: CostAssumptions) -> FloatArray:
    """Net margin per customer as :class:`CostAssumptions` defines it."""
    n_customers = purchases.n_repeat.size
    returns, contacts = after.returns, after.contacts
    is_promotion = after.is_promotion
    amount = np.concatenate([purchases.amount, returns.columns["amount"]])
    promoted = np.concatenate([is_promotion, returns.columns["is_promotion"]])
    owner = np.concatenate([purchases.owner, returns.owner])
    rate = costs.margin_rate - costs.promotion_discount_rate * promoted
    margin = np.bincount(owner, weights=amount * rate, minlength=n_customers)
    handling = costs.return_handling_cost * np.bincount(returns.owner, minlength=n_customers)
    service = np.bincount(contacts.owner, weights=contacts.columns["cost"], minlength=n_customers)
    return np.asarray(margin - handling - service, dtype=np.float64)


def _read_only(ids: npt.NDArray[np.intp]) -> IntArray:
    """Customer ids as an int64 array that cannot be changed in place."""
    frozen = ids.astype(np.int64)
    frozen.flags.writeable = False
    return frozen


def _timestamps(second: IntArray, window: _Window) -> npt.NDArray[np.datetime64]:
    """Seconds after the start of the window as ``datetime64[ns]``."""
    return (window.start.value + second * _NANOSECONDS_PER_SECOND).view("datetime64[ns]")


def _labels(codes: npt.NDArray[np.generic], names: Sequence[str]) -> ExtensionArray:
    """String labels of integer codes, built without a Python loop over the rows."""
    return pd.array(list(names), dtype="str").take(np.asarray(codes, dtype=np.int64))


def _transactions_frame(purchases: _Purchases, after: _Aftermath, window: _Window) -> pd.DataFrame:
    """Purchases and returns by customer and time; order ids follow the clock."""
    returns, is_promotion = after.returns, after.is_promotion
    owner = np.concatenate([purchases.owner, returns.owner])
    second = np.concatenate([purchases.second, returns.second])
    order_id = np.empty(owner.size, dtype=np.int64)
    order_id[np.lexsort((owner, second))] = np.arange(1, owner.size + 1, dtype=np.int64)
    layout = np.lexsort((second, owner))
    is_return = np.concatenate(
        [np.zeros(purchases.owner.size, dtype=np.bool_), np.ones(returns.owner.size, np.bool_)]
    )

    def column(purchase_values: npt.NDArray[np.generic], key: str) -> npt.NDArray[np.generic]:
        return np.concatenate([purchase_values, returns.columns[key]])[layout]

    return pd.DataFrame(
        {
            "customer_id": owner[layout] + 1,
            "order_id": order_id[layout],
            "timestamp": _timestamps(second[layout], window),
            "amount": column(purchases.amount, "amount"),
            "category": _labels(column(purchases.category, "category"), CATEGORIES),
            "channel": _labels(column(purchases.channel, "channel"), SALES_CHANNELS),
            "is_promotion": column(is_promotion, "is_promotion"),
            "is_return": is_return[layout],
        }
    )


def _events_frame(
    events: _Events, window: _Window, labels: Mapping[str, Sequence[str]] | None = None
) -> pd.DataFrame:
    """An event table by customer and time; coded columns named in ``labels`` become strings."""
    labels = {} if labels is None else labels
    layout = np.lexsort((events.second, events.owner))
    table: dict[str, object] = {
        "customer_id": events.owner[layout] + 1,
        "timestamp": _timestamps(events.second[layout], window),
    }
    for name, values in events.columns.items():
        ordered = values[layout]
        table[name] = _labels(ordered, labels[name]) if name in labels else ordered
    return pd.DataFrame(table)


def _customer_index(n_customers: int) -> pd.Index:
    """Customer ids 1..n as the ``customer_id`` index."""
    return pd.Index(np.arange(1, n_customers + 1, dtype=np.int64), name="customer_id")


def _customers_frame(
    base: _Base, profiles: Mapping[str, SegmentProfile], cohorts: _Cohorts, window: _Window
) -> pd.DataFrame:
    """The customers table."""
    return pd.DataFrame(
        {
            "acquisition_date": _timestamps(base.acquisition_day * _SECONDS_PER_DAY, window),
            "cohort": _labels(base.cohort, cohorts.labels),
            "segment": _labels(base.segment, tuple(profiles)),
            "channel": _labels(base.channel, ACQUISITION_CHANNELS),
            "acquisition_cost": base.acquisition_cost,
        },
        index=_customer_index(base.segment.size),
    )


def _truth_customers(
    latent: _Latent,
    purchases: _Purchases,
    is_cross_buyer: BoolArray,
    is_planted: BoolArray,
    net_margin: FloatArray,
    window: _Window,
) -> pd.DataFrame:
    """Per-customer latent values and outcomes."""
    dropout_time = _timestamps(np.maximum(purchases.dropout_second, 0), window)
    dropout_time[purchases.is_alive] = np.datetime64("NaT")
    return pd.DataFrame(
        {
            "lambda": latent.rate,
            "p": latent.dropout,
            "nu": latent.spend_rate,
            "is_alive": purchases.is_alive,
            "dropout_time": dropout_time,
            "n_repeat_purchases": purchases.n_repeat,
            "is_cross_buyer": is_cross_buyer,
            "is_unprofitable": is_planted,
            "net_margin": net_margin,
        },
        index=_customer_index(latent.rate.size),
    )


def _params_frame(
    values: FloatArray,
    profiles: Mapping[str, SegmentProfile],
    cohorts: _Cohorts,
    names: tuple[str, ...],
) -> pd.DataFrame:
    """A (segment, cohort) x parameter table from a (S, C, k) grid."""
    index = pd.MultiIndex.from_product(
        [list(profiles), list(cohorts.labels)], names=["segment", "cohort"]
    )
    return pd.DataFrame(values.reshape(-1, len(names)), index=index, columns=list(names))
