"""Where value sits: value tiers, the value x risk grid, the whale curve and the most valuable.

Each takes any per-customer value (CLV from :mod:`cvalue.value`, or net profit): a Series, or
one column of a table. The checks of such values (one per customer, finite) are here too, and
segment discovery (:mod:`cvalue.segments.discovery`) judges a given value with them.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd

from cvalue.errors import DataQualityError, SchemaError, plain
from cvalue.segments.profit import _check_present

__all__ = [
    "ValueTiers",
    "WhaleCurve",
    "most_valuable",
    "value_risk_grid",
    "value_tiers",
    "whale_curve",
]

FloatArray: TypeAlias = npt.NDArray[np.float64]
IntArray: TypeAlias = npt.NDArray[np.int64]
Values: TypeAlias = pd.Series | pd.DataFrame

_CUTS = (0.01, 0.05, 0.20)
_RISK_EDGES = (0.0, 0.25, 0.5, 0.75, 1.0)


def _number(value: float) -> str:
    return np.format_float_positional(value, trim="-")


def _numeric(values: pd.Series, name: str) -> pd.Series:
    """``values`` as float64, refusing repeated ids and missing or non-finite values."""
    if not values.index.is_unique:
        n_repeated = int(values.index.duplicated().sum())
        raise DataQualityError(
            f"{name!r} has {n_repeated:,} repeated customer ids; give one value per customer"
        )
    numbers = pd.to_numeric(values, errors="coerce").astype(np.float64)
    is_bad = ~np.isfinite(numbers.to_numpy(dtype=np.float64, na_value=np.nan))
    if is_bad.any():
        raise DataQualityError(
            f"{name!r} has missing, non-numeric or infinite values for {int(is_bad.sum()):,} of "
            f"{len(values):,} customers (e.g. customer {plain(values.index[is_bad][0])!r}); "
            "drop or fill them first"
        )
    return numbers


def value_series(values: Values, column: str | None) -> pd.Series:
    """The per-customer value: a Series, or one column of a value table, checked."""
    if isinstance(values, pd.DataFrame):
        if column is None and len(values.columns) != 1:
            raise SchemaError(
                f"the value table has columns {list(values.columns)}; pass column= the one to use"
            )
        name = column if column is not None else values.columns[0]
        _check_present([name], list(values.columns), "the value table", "Pass column= one of them")
        values = values[name]
    elif not isinstance(values, pd.Series):
        raise SchemaError(
            "values must be a Series or DataFrame indexed by customer id, got "
            f"{type(values).__name__}"
        )
    if len(values) == 0:
        raise DataQualityError("the values are empty: there are no customers to rank")
    name = str(values.name) if values.name is not None else "value"
    return _numeric(values, name).rename(name)


def _ranked(values: pd.Series) -> pd.Series:
    """Most valuable first; equal values keep their order."""
    order = np.argsort(-values.to_numpy(dtype=np.float64), kind="stable")
    return values.iloc[order]


def _percent(share: float) -> str:
    return f"{100 * share:g}"


def _tier_labels(cuts: Sequence[float]) -> list[str]:
    labels = [f"top {_percent(cuts[0])}%"]
    labels += [f"top {_percent(low)}-{_percent(high)}%" for low, high in itertools.pairwise(cuts)]
    return [*labels, f"bottom {_percent(1 - cuts[-1])}%"]


def _check_cuts(cuts: Sequence[float]) -> list[float]:
    shares = list(cuts)
    is_valid = (
        len(shares) > 0
        and all(isinstance(share, (int, float)) and 0 < share < 1 for share in shares)
        and all(low < high for low, high in itertools.pairwise(shares))
    )
    if not is_valid:
        raise SchemaError(
            f"cuts must be increasing shares in (0, 1) such as (0.01, 0.05, 0.2), got {cuts!r}"
        )
    return shares


@dataclass(frozen=True, slots=True)
class ValueTiers:
    """Customers grouped by value rank.

    Attributes
    ----------
    labels_
        Each customer's tier (an ordered categorical, most valuable tier first), indexed by
        customer id in the input's order.
    summary_
        One row per tier: ``customers``, ``share_of_customers``, ``value``, ``share_of_value``
        (of the total value; NaN when it is zero), ``mean_value``, ``min_value``, ``max_value``.
    """

    labels_: pd.Series
    summary_: pd.DataFrame


def _summary_by(codes: IntArray, values: FloatArray, index: pd.Index) -> pd.DataFrame:
    """Count, value, shares and mean of ``values`` per code (one row per entry of ``index``)."""
    size = len(index)
    customers = np.bincount(codes, minlength=size).astype(np.int64)
    value = np.bincount(codes, weights=values, minlength=size)
    total = float(values.sum())
    with np.errstate(invalid="ignore", divide="ignore"):  # empty cells and a zero total: NaN
        return pd.DataFrame(
            {
                "customers": customers,
                "share_of_customers": customers / len(values),
                "value": value,
                "share_of_value": value / total if total != 0 else np.full(size, np.nan),
                "mean_value": value / customers,
            },
            index=index,
        )


def value_tiers(
    values: Values, *, cuts: Sequence[float] = _CUTS, column: str | None = None
) -> ValueTiers:
    """Tiers by value rank: the top 1 %, the next 4 %, the next 15 %, the rest (by default).

    A tier ``top a-b%`` holds the customers ranked after the first ``ceil(a * n)`` and up to the
    first ``ceil(b * n)``; equal values keep the input's order.

    Parameters
    ----------
    values
        A value per customer (CLV, net profit ...): a Series, or a DataFrame and ``column``.
    cuts
        Increasing shares of the customers that end each top tier.
    column
        The column of a value table to rank by.

    Returns
    -------
    ValueTiers
        Each customer's tier and a summary per tier.

    Examples
    --------
    >>> clv = pd.Series(np.arange(1.0, 101.0), index=pd.RangeIndex(100, name="customer_id"))
    >>> tiers = value_tiers(clv, cuts=(0.1, 0.5))
    >>> tiers.summary_[["customers", "value", "share_of_value"]]
                customers   value  share_of_value
    tier
    top 10%            10   955.0        0.189109
    top 10-50%         40  2820.0        0.558416
    bottom 50%         50  1275.0        0.252475
    """
    shares = _check_cuts(cuts)
    series = value_series(values, column)
    n_customers = len(series)
    ranked = _ranked(series)
    ends = np.ceil(np.asarray(shares) * n_customers).astype(np.int64)
    codes_ranked = np.searchsorted(ends, np.arange(n_customers), side="right").astype(np.int64)
    codes = (
        pd.Series(codes_ranked, index=ranked.index).reindex(series.index).to_numpy(dtype=np.int64)
    )
    labels = _tier_labels(shares)
    tiers = pd.Categorical.from_codes(codes, categories=pd.Index(labels), ordered=True)
    summary = _summary_by(
        codes, series.to_numpy(dtype=np.float64), pd.Index(labels, name="tier", dtype="str")
    )
    by_tier = pd.DataFrame({"value": series.to_numpy(), "code": codes})
    grouped = by_tier.groupby("code")["value"]
    summary["min_value"] = grouped.min().reindex(range(len(labels))).to_numpy()
    summary["max_value"] = grouped.max().reindex(range(len(labels))).to_numpy()
    return ValueTiers(pd.Series(tiers, index=series.index, name="tier"), summary)


def _aligned(values: pd.Series, risk: pd.Series) -> pd.Series:
    """``risk`` in the order of ``values``; both must cover the same customers."""
    only_values = values.index.difference(risk.index)
    only_risk = risk.index.difference(values.index)
    if len(only_values) or len(only_risk):
        raise DataQualityError(
            f"values and risk cover different customers: {len(only_values):,} customers have a "
            f"value but no risk, {len(only_risk):,} a risk but no value; align them first (e.g. "
            "risk.reindex(values.index) after scoring every customer)"
        )
    return risk.reindex(values.index)


def value_risk_grid(
    values: Values,
    risk: pd.Series,
    *,
    risk_kind: Literal["p_alive", "churn"] = "p_alive",
    value_bands: int = 4,
    risk_edges: Sequence[float] = _RISK_EDGES,
    column: str | None = None,
) -> pd.DataFrame:
    """Customers and value in each cell of value band x churn risk.

    Value bands split the customers ranked by value into ``value_bands`` groups of equal size
    (``top 0-25%`` is the most valuable quarter). Risk bands cut the churn risk (``1 - P(alive)``
    when ``risk_kind="p_alive"``) at ``risk_edges``: ``0-0.25`` holds risks in ``[0, 0.25]``, the
    next ones ``(0.25, 0.5]`` and so on.

    Parameters
    ----------
    values
        A value per customer (CLV, net profit ...): a Series, or a DataFrame and ``column``.
    risk
        P(alive) (``risk_kind="p_alive"``) or churn risk (``"churn"``) per customer, in [0, 1].
    risk_kind, value_bands, risk_edges, column
        What ``risk`` holds, the number of value bands, the risk edges (from 0 to 1) and the
        column of a value table.

    Returns
    -------
    pandas.DataFrame
        Indexed by (``value_band``, ``churn_risk``), every cell even when empty:
        ``customers``, ``share_of_customers``, ``value``, ``share_of_value``, ``mean_value``.
        ``.unstack()`` lays it out as a grid.
    """
    series = value_series(values, column)
    edges = _check_grid_options(value_bands, risk_edges, risk_kind)
    risk_codes = _risk_codes(series, risk, risk_kind, edges)
    positions = pd.Series(np.arange(len(series)), index=_ranked(series).index)
    value_codes = (positions.reindex(series.index).to_numpy(np.int64) * value_bands) // len(series)
    value_labels = [
        f"top {_percent(band / value_bands)}-{_percent((band + 1) / value_bands)}%"
        for band in range(value_bands)
    ]
    risk_labels = [f"{_number(low)}-{_number(high)}" for low, high in itertools.pairwise(edges)]
    index = pd.MultiIndex.from_product(
        [value_labels, risk_labels], names=["value_band", "churn_risk"]
    )
    cells = value_codes * len(risk_labels) + risk_codes
    return _summary_by(cells, series.to_numpy(dtype=np.float64), index)


def _risk_codes(
    values: pd.Series, risk: pd.Series, risk_kind: str, edges: Sequence[float]
) -> IntArray:
    """The churn-risk band of each customer of ``values``: (edge, next edge], 0 in the first."""
    if not isinstance(risk, pd.Series):
        raise SchemaError(
            f"risk must be a Series indexed by customer id, got {type(risk).__name__}"
        )
    name = str(risk.name) if risk.name is not None else "risk"
    probability = _aligned(values, _numeric(risk, name)).to_numpy(dtype=np.float64)
    n_outside = int(((probability < 0) | (probability > 1)).sum())
    if n_outside:
        raise DataQualityError(
            f"{name!r} has {n_outside:,} of {len(probability):,} values outside [0, 1]; pass "
            "probabilities"
        )
    churn = 1.0 - probability if risk_kind == "p_alive" else probability
    return np.searchsorted(np.asarray(edges[1:-1]), churn, side="left").astype(np.int64)


def _check_grid_options(
    value_bands: int, risk_edges: Sequence[float], risk_kind: str
) -> list[float]:
    problems = []
    if (
        isinstance(value_bands, bool)
        or not isinstance(value_bands, (int, np.integer))
        or value_bands < 1
    ):
        problems.append(f"value_bands must be an integer >= 1, got {value_bands!r}")
    edges = [float(edge) for edge in risk_edges]
    if (
        len(edges) < 2
        or edges[0] != 0
        or edges[-1] != 1
        or any(b <= a for a, b in itertools.pairwise(edges))
    ):
        problems.append(f"risk_edges must increase from 0 to 1, got {risk_edges!r}")
    if risk_kind not in ("p_alive", "churn"):
        problems.append(f"risk_kind must be 'p_alive' or 'churn', got {risk_kind!r}")
    if problems:
        raise SchemaError("; ".join(problems))
    return edges


@dataclass(frozen=True, slots=True)
class WhaleCurve:
    """Cumulative profit against customers ranked from the most to the least profitable.

    Attributes
    ----------
    curve_
        Indexed by customer id, most profitable first: ``profit``, ``cumulative_profit``,
        ``share_of_customers`` (the share ranked up to this customer) and ``cumulative_share``
        (cumulative profit over total profit; NaN when the total is not positive).
    total_profit_
        The profit of all customers together.
    peak_profit_
        The highest cumulative profit: what the profitable customers earn together.
    peak_share_
        ``peak_profit_ / total_profit_`` (1.6 reads as "the profitable customers earn 160 % of the
        total"); NaN when the total is not positive.
    peak_customers_share_
        The share of customers up to the peak.
    value_destroying_share_
        The share of customers whose profit is below zero.
    total_loss_
        The summed losses of the customers whose profit is below zero.
    """

    curve_: pd.DataFrame
    total_profit_: float
    peak_profit_: float
    peak_share_: float
    peak_customers_share_: float
    value_destroying_share_: float
    total_loss_: float


def whale_curve(profit: Values, *, column: str | None = None) -> WhaleCurve:
    """The whale curve of customer profitability (Kaplan & Cooper 1998, *Cost & Effect*, ch. 10).

    Parameters
    ----------
    profit
        A profit (or value) per customer: a Series, or a DataFrame and ``column``.
    column
        The column of a table to use.

    Returns
    -------
    WhaleCurve
        The curve and its summary figures.

    Examples
    --------
    >>> curve = whale_curve(pd.Series([50.0, 30.0, -10.0, 20.0, -40.0]))
    >>> curve.total_profit_, curve.peak_profit_, curve.peak_share_, curve.value_destroying_share_
    (50.0, 100.0, 2.0, 0.4)
    """
    series = _ranked(value_series(profit, column))
    values = series.to_numpy(dtype=np.float64)
    cumulative = np.cumsum(values)
    total = float(cumulative[-1])
    peak_at = int(np.argmax(cumulative))
    with np.errstate(invalid="ignore", divide="ignore"):  # a total at or below zero: NaN shares
        shares = cumulative / total if total > 0 else np.full(len(values), np.nan)
    curve = pd.DataFrame(
        {
            "profit": values,
            "cumulative_profit": cumulative,
            "share_of_customers": np.arange(1, len(values) + 1) / len(values),
            "cumulative_share": shares,
        },
        index=series.index,
    )
    peak = float(cumulative[peak_at])
    return WhaleCurve(
        curve_=curve,
        total_profit_=total,
        peak_profit_=peak,
        peak_share_=peak / total if total > 0 else math.nan,
        peak_customers_share_=(peak_at + 1) / len(values),
        value_destroying_share_=float((values < 0).mean()),
        total_loss_=float(-values[values < 0].sum()),
    )


def most_valuable(values: Values, n: int, *, column: str | None = None) -> pd.DataFrame:
    """The ``n`` most valuable customers, most valuable first.

    Parameters
    ----------
    values
        A value per customer: a Series, or a value table and ``column`` (all of its columns come
        back).
    n
        How many customers (all of them when there are fewer).
    column
        The column of a table to rank by.

    Returns
    -------
    pandas.DataFrame
        The customers' rows (the value column for a Series) with ``rank`` (1 = most valuable),
        ``share_of_value`` and ``cumulative_share`` (of the total value; NaN when it is zero).

    Examples
    --------
    >>> clv = pd.Series({"a": 10.0, "b": 40.0, "c": 30.0, "d": 20.0}, name="clv")
    >>> most_valuable(clv, 2)
        clv  rank  share_of_value  cumulative_share
    b  40.0     1             0.4               0.4
    c  30.0     2             0.3               0.7
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise SchemaError(f"n must be an integer >= 1, got {n!r}")
    series = value_series(values, column)
    top = _ranked(series).iloc[:n]
    total = float(series.sum())
    rows = values.loc[top.index] if isinstance(values, pd.DataFrame) else top.to_frame()
    with np.errstate(invalid="ignore", divide="ignore"):  # a zero total: NaN shares
        share = top.to_numpy() / total if total != 0 else np.full(len(top), np.nan)
    return rows.assign(
        rank=np.arange(1, len(top) + 1), share_of_value=share, cumulative_share=np.cumsum(share)
    )
