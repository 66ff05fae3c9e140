"""Cross-sell profitability: how many cross-buyers lose money, their share of the losses, and why.

:func:`cross_sell_profitability` aggregates the transactions (or takes a :class:`ProfitTable`
already aggregated), measures the unprofitable share of the cross-buyers and the share of all
customer losses they carry, ranks the drivers by effect size (Hedges' g) and discovers the
unprofitable segments among the cross-buyers (:mod:`cvalue.segments.discovery`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats

from cvalue.errors import SchemaError
from cvalue.io.schema import Columns
from cvalue.segments.discovery import (
    _TABLE_FIX,
    UnprofitableSegments,
    _check_options,
    unprofitable_segments,
)
from cvalue.segments.profit import DRIVERS, Costs, OnUnmatched, ProfitTable, _check_present
from cvalue.segments.profitability import customer_profitability
from cvalue.units import DateLike

__all__ = ["CrossSellProfitability", "cross_sell_profitability"]

FloatArray: TypeAlias = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class CrossSellProfitability:
    """Who among the cross-buyers loses money, how much of the losses they carry, and why.

    Attributes
    ----------
    customers_
        The per-customer table (see :func:`customer_profitability`).
    unprofitable_share_
        The share of cross-buyers whose net profit is below zero (NaN without cross-buyers).
    loss_share_
        The share of all customers' losses (the summed negative net profits) carried by the
        unprofitable cross-buyers (NaN when no customer loses money).
    drivers_
        One row per driver, strongest first: ``mean_unprofitable`` and ``mean_profitable``
        (cross-buyers with net profit below / at or above zero), ``difference``,
        ``effect_size`` (Hedges' g), its interval ``ci_lower``, ``ci_upper`` and ``rank``
        (by the absolute effect size).
    segments_
        The unprofitable segments discovered among the cross-buyers
        (:func:`unprofitable_segments` with its defaults).
    unmatched_costs_, outside_window_
        What the aggregation left out (see :class:`ProfitTable`).
    n_cross_buyers_
        The number of cross-buyers.
    has_all_customers_
        Whether ``customers_`` holds every customer. The chunked analysis
        (:class:`cvalue.segments.CrossSellStream`) holds a uniform random sample of the
        cross-buyers there instead; its shares, drivers and segment statistics are still those
        of every customer.
    """

    customers_: pd.DataFrame
    unprofitable_share_: float
    loss_share_: float
    drivers_: pd.DataFrame
    segments_: UnprofitableSegments
    unmatched_costs_: pd.DataFrame
    outside_window_: pd.DataFrame
    n_cross_buyers_: int
    has_all_customers_: bool = True


class _Moments(NamedTuple):
    """The size, mean and variance (``ddof=1``) of one group of values."""

    size: int
    mean: float
    variance: float


def _hedges_g(first: FloatArray, second: FloatArray, level: float) -> tuple[float, float, float]:
    """Hedges' g of ``first`` against ``second`` and its normal interval.

    The standardised mean difference with the small-sample correction and the large-sample
    standard error of Hedges & Olkin (1985), *Statistical Methods for Meta-Analysis*, ch. 5,
    eq. (8) and (14).
    """
    if len(first) < 2 or len(second) < 2:
        return math.nan, math.nan, math.nan
    return _hedges_g_of(
        _Moments(len(first), first.mean(), first.var(ddof=1)),
        _Moments(len(second), second.mean(), second.var(ddof=1)),
        level,
    )


def _hedges_g_of(first: _Moments, second: _Moments, level: float) -> tuple[float, float, float]:
    """Hedges' g and its interval from the two groups' sizes, means and variances."""
    n_first, n_second = first.size, second.size
    if n_first < 2 or n_second < 2:
        return math.nan, math.nan, math.nan
    pooled = ((n_first - 1) * first.variance + (n_second - 1) * second.variance) / (
        n_first + n_second - 2
    )
    if not pooled > 0:
        return math.nan, math.nan, math.nan
    correction = 1.0 - 3.0 / (4.0 * (n_first + n_second) - 9.0)
    effect = correction * (first.mean - second.mean) / math.sqrt(pooled)
    std_error = math.sqrt(
        (n_first + n_second) / (n_first * n_second) + effect**2 / (2.0 * (n_first + n_second))
    )
    half_width = float(stats.norm.ppf(0.5 + level / 2)) * std_error
    return effect, effect - half_width, effect + half_width


def _drivers_table(
    cross_buyers: pd.DataFrame, drivers: Sequence[str], level: float
) -> pd.DataFrame:
    """Unprofitable against profitable cross-buyers, driver by driver, strongest first."""
    is_unprofitable = cross_buyers["is_unprofitable"].to_numpy(dtype=np.bool_)
    rows = []
    for driver in drivers:
        values = cross_buyers[driver].to_numpy(dtype=np.float64)
        loss, gain = values[is_unprofitable], values[~is_unprofitable]
        effect, lower, upper = _hedges_g(loss, gain, level)
        mean_loss = float(loss.mean()) if len(loss) else math.nan
        mean_gain = float(gain.mean()) if len(gain) else math.nan
        rows.append((mean_loss, mean_gain, mean_loss - mean_gain, effect, lower, upper))
    return _drivers_frame(rows, drivers)


def _drivers_frame(
    rows: Sequence[tuple[float, float, float, float, float, float]], drivers: Sequence[str]
) -> pd.DataFrame:
    """The drivers' table from one row of means, difference, effect and interval per driver."""
    table = pd.DataFrame(
        rows,
        index=pd.Index(list(drivers), name="driver", dtype="str"),
        columns=[
            "mean_unprofitable",
            "mean_profitable",
            "difference",
            "effect_size",
            "ci_lower",
            "ci_upper",
        ],
    )
    strength = table["effect_size"].abs().rank(ascending=False, method="first", na_option="bottom")
    table["rank"] = strength.astype(np.int64)
    return table.sort_values("rank", kind="stable")


def _shares(customers: pd.DataFrame) -> tuple[float, float]:
    """The unprofitable share of cross-buyers and the share of losses they carry."""
    profit = customers["net_profit"].to_numpy(dtype=np.float64)
    is_cross_buyer = customers["is_cross_buyer"].to_numpy(dtype=np.bool_)
    losses = np.clip(-profit, 0.0, None)
    is_unprofitable_cross_buyer = is_cross_buyer & (profit < 0)
    n_cross_buyers = int(is_cross_buyer.sum())
    share = is_unprofitable_cross_buyer.sum() / n_cross_buyers if n_cross_buyers else math.nan
    total_loss = float(losses.sum())
    loss_share = (
        float(losses[is_unprofitable_cross_buyer].sum()) / total_loss
        if total_loss > 0
        else math.nan
    )
    return float(share), loss_share


def cross_sell_profitability(
    transactions: pd.DataFrame | ProfitTable,
    costs: Costs | None = None,
    *,
    columns: Columns | None = None,
    category: str = "category",
    promotion: str | None = "is_promotion",
    min_categories: int = 2,
    start: DateLike | None = None,
    end: DateLike | None = None,
    on_unmatched: OnUnmatched = "warn",
    level: float = 0.95,
    max_depth: int = 2,
    min_size: int = 30,
) -> CrossSellProfitability:
    """The profitability of cross-buyers: how many lose money, their share of the losses, why.

    Parameters
    ----------
    transactions
        A transaction log (aggregated with ``costs`` by :func:`customer_profitability`, whose
        options ``columns`` to ``on_unmatched`` are), or a :class:`ProfitTable` already
        aggregated, such as :func:`cvalue.sql_customer_profitability` returns (then ``costs``
        must be ``None``: the table has them).
    costs
        The margin, unit costs and cost tables; required with a transaction log.
    level
        The confidence level of the drivers' and segments' intervals.
    max_depth, min_size
        Settings of the segment discovery (see :func:`unprofitable_segments`).

    Returns
    -------
    CrossSellProfitability
        The per-customer table, the shares, the drivers and the unprofitable segments.

    Examples
    --------
    >>> from cvalue.datasets import make_crm
    >>> crm = make_crm(3_000, seed=4)
    >>> assumed = crm.truth.costs
    >>> costs = Costs(margin_rate=assumed.margin_rate,
    ...               promotion_discount_rate=assumed.promotion_discount_rate,
    ...               return_handling_cost=assumed.return_handling_cost,
    ...               service_contacts=crm.service_contacts)
    >>> result = cross_sell_profitability(crm.transactions, costs)
    >>> 0.1 < result.unprofitable_share_ < 0.4
    True
    >>> result.drivers_.index[0] in ("return_rate", "promotion_share", "service_intensity")
    True
    """
    _check_options(max_depth, min_size, level)
    if isinstance(transactions, ProfitTable):
        if costs is not None:
            raise SchemaError("the ProfitTable already holds the costs: pass costs=None with it")
        table = transactions
    else:
        table = customer_profitability(
            transactions, costs, columns=columns, category=category, promotion=promotion,
            min_categories=min_categories, start=start, end=end, on_unmatched=on_unmatched,
        )  # fmt: skip
    customers = table.customers
    _check_present(
        [*_ANALYSED, *DRIVERS], list(customers.columns), "the customer table", _TABLE_FIX
    )
    cross_buyers = customers[customers["is_cross_buyer"].to_numpy(dtype=np.bool_)]
    unprofitable_share, loss_share = _shares(customers)
    segments = unprofitable_segments(table, max_depth=max_depth, min_size=min_size, level=level)
    return CrossSellProfitability(
        customers_=customers,
        unprofitable_share_=unprofitable_share,
        loss_share_=loss_share,
        drivers_=_drivers_table(cross_buyers, DRIVERS, level),
        segments_=segments,
        unmatched_costs_=table.unmatched_costs,
        outside_window_=table.outside_window,
        n_cross_buyers_=len(cross_buyers),
    )


_ANALYSED = ("net_profit", "is_cross_buyer", "is_unprofitable")
