"""What a synthetic CRM is: its segments, cost assumptions, planted truth and tables.

:func:`cvalue.datasets.make_crm` draws the data (:mod:`cvalue.datasets._synthetic`); the types
here describe what it is asked for and what it returns.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from types import MappingProxyType

import numpy as np
import numpy.typing as npt
import pandas as pd

from cvalue.errors import SchemaError

__all__ = [
    "ACQUISITION_CHANNELS",
    "CATEGORIES",
    "CONTACT_KINDS",
    "DEFAULT_SEGMENTS",
    "SALES_CHANNELS",
    "CRMTruth",
    "CostAssumptions",
    "SegmentProfile",
    "SyntheticCRM",
]

IntArray = npt.NDArray[np.int64]
_SECONDS_PER_DAY = 86_400

CATEGORIES: tuple[str, ...] = ("books", "electronics", "home", "fashion")
"""Product categories of the transactions."""
ACQUISITION_CHANNELS: tuple[str, ...] = ("search", "social", "referral", "retail")
"""Channels through which customers are acquired (``customers["channel"]``)."""
SALES_CHANNELS: tuple[str, ...] = ("web", "app", "store", "phone")
"""Channels through which orders are placed (``transactions["channel"]``)."""
CONTACT_KINDS: tuple[str, ...] = ("call", "email", "chat")
"""Kinds of service contact."""


@dataclass(frozen=True, slots=True)
class SegmentProfile:
    """The generating parameters of one customer segment.

    Parameters
    ----------
    share
        Relative weight of the segment among new customers (normalised over all segments).
    r, alpha
        Gamma heterogeneity of the purchase rate ``lambda`` (purchases per week): shape ``r``,
        rate ``alpha`` (mean ``r / alpha``). BG/NBD, Fader, Hardie & Lee (2005), eq. (1)-(2).
    a, b
        Beta heterogeneity of the dropout probability ``p`` of the first cohort (mean
        ``a / (a + b)``); later cohorts scale ``a`` up. BG/NBD, eq. (3).
    p, q, gamma
        Gamma-Gamma spend: per purchase ``z ~ Gamma(p, nu)``, per customer
        ``nu ~ Gamma(q, gamma)``; the mean spend is ``p * gamma / (q - 1)``.
    channel_weights
        Relative weights of the acquisition channels, in the order of
        :data:`ACQUISITION_CHANNELS`.
    """

    share: float
    r: float
    alpha: float
    a: float
    b: float
    p: float
    q: float
    gamma: float
    channel_weights: tuple[float, float, float, float] = (0.25, 0.25, 0.25, 0.25)

    def __post_init__(self) -> None:
        """Check that every parameter is finite and positive."""
        values = {field.name: getattr(self, field.name) for field in fields(self)}
        weights = values.pop("channel_weights")
        bad = {name: value for name, value in values.items() if not _is_positive(value)}
        if not (
            len(weights) == len(ACQUISITION_CHANNELS)
            and all(_is_positive(weight) or weight == 0 for weight in weights)
            and _is_positive(sum(weights))
        ):
            bad["channel_weights"] = weights
        if bad:
            raise SchemaError(
                f"segment profile has invalid parameters {bad}; every parameter must be a finite "
                f"number > 0 and channel_weights {len(ACQUISITION_CHANNELS)} weights >= 0 with a "
                "positive sum"
            )


def _is_positive(value: float) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


DEFAULT_SEGMENTS: Mapping[str, SegmentProfile] = MappingProxyType(
    {
        "retail": SegmentProfile(
            share=0.6, r=0.8, alpha=8.0, a=0.6, b=3.0, p=6.0, q=4.0, gamma=20.0,
            channel_weights=(0.2, 0.2, 0.2, 0.4),
        ),
        "online": SegmentProfile(
            share=0.3, r=0.5, alpha=4.0, a=0.8, b=2.6, p=5.0, q=3.5, gamma=15.0,
            channel_weights=(0.45, 0.4, 0.15, 0.0),
        ),
        "corporate": SegmentProfile(
            share=0.1, r=2.0, alpha=12.0, a=0.3, b=4.0, p=8.0, q=5.0, gamma=60.0,
            channel_weights=(0.3, 0.05, 0.6, 0.05),
        ),
    }
)  # fmt: skip
"""The segments :func:`make_crm` uses by default: mostly retail, some online, a few corporate."""


@dataclass(frozen=True, slots=True)
class CostAssumptions:
    """Margins and costs behind the net margin of a synthetic customer.

    A customer's net margin over the observation window is

    ``sum(amount * (margin_rate - promotion_discount_rate * is_promotion))``
    ``- return_handling_cost * n_returns - sum(service contact cost)``

    where the sum runs over purchases and returns (returns carry a negative amount, so they take
    back the margin and the discount of the purchase they undo). Acquisition cost is not part of
    it: it is sunk before the first purchase and belongs in CLV / CAC comparisons.

    Parameters
    ----------
    margin_rate
        Gross margin as a share of the amount paid on a full-price purchase.
    promotion_discount_rate
        Margin given away on a promoted purchase, as a share of the amount paid.
    return_handling_cost
        Cost of handling one return (shipping, restocking), in currency units.
    contact_costs
        Mean cost of one service contact by kind, in the order of :data:`CONTACT_KINDS`
        (call, email, chat). Each contact's cost varies around its mean.
    acquisition_costs
        Mean acquisition cost by channel, in the order of :data:`ACQUISITION_CHANNELS`
        (search, social, referral, retail). Each customer's cost varies around its mean.
    """

    margin_rate: float = 0.30
    promotion_discount_rate: float = 0.20
    return_handling_cost: float = 8.0
    contact_costs: tuple[float, float, float] = (9.0, 3.0, 5.0)
    acquisition_costs: tuple[float, float, float, float] = (45.0, 35.0, 20.0, 30.0)

    def __post_init__(self) -> None:
        """Check that rates and costs are finite, costs positive and tuples the right length."""
        problems = [
            f"{name}={value!r} must be a finite number >= 0"
            for name, value in (
                ("margin_rate", self.margin_rate),
                ("promotion_discount_rate", self.promotion_discount_rate),
                ("return_handling_cost", self.return_handling_cost),
            )
            if not (math.isfinite(value) and value >= 0)
        ]
        for name, values, size in (
            ("contact_costs", self.contact_costs, len(CONTACT_KINDS)),
            ("acquisition_costs", self.acquisition_costs, len(ACQUISITION_CHANNELS)),
        ):
            if len(values) != size or not all(_is_positive(value) for value in values):
                problems.append(f"{name}={values!r} must be {size} finite numbers > 0")
        if problems:
            raise SchemaError("CostAssumptions: " + "; ".join(problems))


@dataclass(frozen=True, slots=True)
class CRMTruth:
    """What generated a :class:`SyntheticCRM`, for checking estimates against.

    Attributes
    ----------
    purchase_params
        BG/NBD parameters ``r, alpha, a, b`` (``lambda`` in purchases per week), indexed by
        (``segment``, ``cohort``).
    spend_params
        Gamma-Gamma parameters ``p, q, gamma``, indexed by (``segment``, ``cohort``).
    customers
        Per-customer latent values, indexed by ``customer_id``: ``lambda`` (purchase rate per
        week), ``p`` (dropout probability after each repeat purchase), ``nu`` (Gamma-Gamma spend
        rate; mean spend ``p / nu`` of the segment's ``p``), ``is_alive`` (still active at
        ``observation_end``), ``dropout_time`` (time of the repeat purchase after which the
        customer dropped out, ``NaT`` when alive), ``n_repeat_purchases``, ``is_cross_buyer``
        (bought from two or more categories), ``is_unprofitable`` (in the planted group) and
        ``net_margin`` (see :class:`CostAssumptions`).
    unprofitable_ids
        Sorted customer ids of the planted unprofitable cross-buyers.
    costs
        The margin and cost assumptions used.
    start, observation_end
        The simulated window.
    cohort_dropout_trend
        Yearly growth of the Beta ``a`` parameter across cohorts.
    """

    purchase_params: pd.DataFrame
    spend_params: pd.DataFrame
    customers: pd.DataFrame
    unprofitable_ids: IntArray
    costs: CostAssumptions
    start: pd.Timestamp
    observation_end: pd.Timestamp
    cohort_dropout_trend: float

    @property
    def loss_share(self) -> float:
        """Share of the summed losses of loss-making customers carried by the planted group.

        About 0.7 with the default behaviour and costs (0.65 to 0.75 over seeds and sizes).
        """
        margin = self.customers["net_margin"].to_numpy(dtype=np.float64)
        is_planted = self.customers["is_unprofitable"].to_numpy(dtype=np.bool_)
        losses = np.clip(-margin, 0.0, None)
        total = float(losses.sum())
        return float(losses[is_planted].sum()) / total if total > 0 else math.nan


@dataclass(frozen=True, slots=True)
class SyntheticCRM:
    """A synthetic CRM extract and the truth that generated it.

    Attributes
    ----------
    customers
        Indexed by ``customer_id``: ``acquisition_date``, ``cohort`` (acquisition year such as
        ``"2022"`` or quarter such as ``"2022Q3"``), ``segment``, ``channel`` (acquisition
        channel) and ``acquisition_cost`` (> 0).
    transactions
        One row per purchase or return, sorted by customer and time: ``customer_id``,
        ``order_id`` (unique, in time order), ``timestamp``, ``amount`` (> 0 for purchases,
        < 0 for returns), ``category``, ``channel`` (sales channel), ``is_promotion``,
        ``is_return``.
    service_contacts
        ``customer_id``, ``timestamp``, ``kind`` (call, email, chat) and ``cost`` (> 0).
    surveys
        ``customer_id``, ``timestamp``, ``nps`` (0-10), ``csat`` (1-5) and ``ces`` (1-7, higher
        means less effort), answered after some orders; satisfaction rises with the customer's
        latent value and is lower in the planted unprofitable group.
    truth
        The generating parameters and latent values.
    """

    customers: pd.DataFrame
    transactions: pd.DataFrame
    service_contacts: pd.DataFrame
    surveys: pd.DataFrame
    truth: CRMTruth


# --- the arguments of make_crm ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Window:
    """The simulated period: ``start`` + ``span_seconds`` = ``end``."""

    start: pd.Timestamp
    end: pd.Timestamp
    span_seconds: int
    n_days: int  # whole days in which a customer can be acquired


def _read_window(
    start: str | pd.Timestamp, observation_end: str | pd.Timestamp
) -> tuple[_Window | None, list[str]]:
    """The simulated window, or the reason it cannot be read."""
    try:
        first = pd.Timestamp(start).as_unit("ns")
        last = pd.Timestamp(observation_end).as_unit("ns")
    except (TypeError, ValueError, OverflowError) as exc:
        return None, [
            f"cannot read start={start!r} and observation_end={observation_end!r} as dates "
            f"between 1677 and 2262 ({exc}); write them as 'YYYY-MM-DD'"
        ]
    if pd.isna(first) or pd.isna(last) or first.tz is not None or last.tz is not None:
        return None, [
            f"start={start!r} and observation_end={observation_end!r} must both be "
            "timezone-naive dates; write them as 'YYYY-MM-DD'"
        ]
    span_seconds = int((last - first) // pd.Timedelta(seconds=1))
    if span_seconds < _SECONDS_PER_DAY:
        return None, [
            f"start ({first}) must be before observation_end ({last}) by at least one day; "
            "swap them or widen the window"
        ]
    return _Window(first, last, span_seconds, span_seconds // _SECONDS_PER_DAY), []


def _is_real(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _check_arguments(
    n_customers: int,
    start: str | pd.Timestamp,
    observation_end: str | pd.Timestamp,
    segments: Mapping[str, SegmentProfile] | None,
    cohort_unit: str,
    cohort_dropout_trend: float,
    unprofitable_share: float,
) -> tuple[_Window, Mapping[str, SegmentProfile]]:
    """Check every argument of :func:`make_crm`, collecting all problems before raising."""
    window, problems = _read_window(start, observation_end)
    if isinstance(n_customers, bool) or not isinstance(n_customers, (int, np.integer)):
        problems.append(f"n_customers must be an integer, got {n_customers!r}")
    elif n_customers < 1:
        problems.append(f"n_customers must be >= 1, got {n_customers}")
    if cohort_unit not in ("year", "quarter"):
        problems.append(f"cohort_unit must be 'year' or 'quarter', got {cohort_unit!r}")
    if not (_is_real(cohort_dropout_trend) and -1 < cohort_dropout_trend < math.inf):
        problems.append(f"cohort_dropout_trend must be > -1, got {cohort_dropout_trend!r}")
    if not (_is_real(unprofitable_share) and 0 <= unprofitable_share <= 1):
        problems.append(f"unprofitable_share must be in [0, 1], got {unprofitable_share!r}")
    profiles = DEFAULT_SEGMENTS if segments is None else segments
    if not profiles or not all(
        isinstance(name, str) and isinstance(profile, SegmentProfile)
        for name, profile in profiles.items()
    ):
        problems.append("segments must map at least one segment name to a SegmentProfile")
    if problems or window is None:
        raise SchemaError("make_crm: " + "; ".join(problems))
    return window, profiles
