"""Where value sits and where money is lost: tiers, value x risk, whales, unprofitable segments.

Cross-selling raises average profit, yet in the customer data of large firms about one
cross-buyer in five loses money, and that group carries most of the customer-related losses
(Shah, Kumar, Qu & Chen 2012, "Unprofitable cross-buying: evidence from consumer and business
markets", *Journal of Marketing*, 76(3)). The mechanisms are returns, heavy use of service,
buying on promotion only, and the same spend spread over more categories.

- :func:`customer_profitability` aggregates transactions and cost tables into one row per
  customer (revenue, cost of goods, promotion, return, service and marketing costs, net profit,
  and the drivers); :func:`cvalue.io.sql_customer_profitability` does the same in a database.
- :func:`cross_sell_profitability` adds the shares of unprofitable cross-buyers and of the losses
  they carry, the drivers' effect sizes, and the unprofitable segments a shallow decision tree
  finds.
- :func:`unprofitable_segments` judges segments, named by the user or discovered from the drivers:
  a segment is flagged when its mean net profit (or CLV) is below zero with a confidence interval
  entirely below zero, and it has at least ``min_size`` customers.
- :func:`value_tiers`, :func:`value_risk_grid`, :func:`whale_curve` and :func:`most_valuable`
  take any per-customer value (CLV from :mod:`cvalue.value`, or net profit).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats

from cvalue.errors import DataQualityError, SchemaError
from cvalue.io._segments_sql import (
    _BAD_AMOUNT,
    _BAD_COST,
    _BAD_FLAG,
    _BAD_TIMESTAMP,
    _CHECK_FIX,
    _MISSING_CATEGORY,
    _MISSING_ID,
    _NEGATIVE_PURCHASE,
    _POSITIVE_RETURN,
    _UNKNOWN_KIND,
    DRIVERS,
    Costs,
    OnUnmatched,
    ProfitTable,
    UnmatchedCostsWarning,
    _bad_rows,
    _check_currencies,
    _check_min_categories,
    _check_present,
    _cost_columns_fix,
    _customer_table,
    _needed_cost_columns,
    _outside_frame,
    _raise_problems,
    _report_unmatched,
    _Roles,
    _roles,
    _unmatched_frame,
    _Window,
)
from cvalue.io.schema import Columns
from cvalue.summary import _customer_codes, _day_numbers
from cvalue.units import DateLike

__all__ = [
    "DRIVERS",
    "Costs",
    "CrossSellProfitability",
    "ProfitTable",
    "UnmatchedCostsWarning",
    "UnprofitableSegments",
    "ValueTiers",
    "WhaleCurve",
    "cross_sell_profitability",
    "customer_profitability",
    "most_valuable",
    "unprofitable_segments",
    "value_risk_grid",
    "value_tiers",
    "whale_curve",
]

FloatArray: TypeAlias = npt.NDArray[np.float64]
IntArray: TypeAlias = npt.NDArray[np.int64]
BoolArray: TypeAlias = npt.NDArray[np.bool_]
Values: TypeAlias = pd.Series | pd.DataFrame
Population = Literal["cross_buyers", "all"]
SegmentKey: TypeAlias = str | pd.Series

_CUTS = (0.01, 0.05, 0.20)
_RISK_EDGES = (0.0, 0.25, 0.5, 0.75, 1.0)


# --- per-customer profitability (pandas path) ---------------------------------------------------


def _plain(value: object) -> object:
    """A numpy scalar as the Python value it holds: messages read ``5``, not ``np.int64(5)``."""
    return value.item() if isinstance(value, np.generic) else value


def _flag_problems(frame: pd.DataFrame, name: str, where: str) -> list[str]:
    """A true/false column: bool dtype, or pandas' nullable boolean without gaps."""
    flags = frame[name]
    # a column of another dtype is not a true/false column at all: every row is bad
    n_bad = int(flags.isna().sum()) if pd.api.types.is_bool_dtype(flags.dtype) else len(flags)
    return _bad_rows(name, _BAD_FLAG, n_bad, len(frame), where)


def _flag(frame: pd.DataFrame, name: str | None) -> BoolArray:
    if name is None:
        return np.zeros(len(frame), dtype=np.bool_)
    return np.asarray(frame[name].to_numpy(dtype=np.bool_), dtype=np.bool_)


def _numbers(frame: pd.DataFrame, name: str) -> FloatArray:
    """A column as float64; missing and non-numeric entries become NaN."""
    numbers = pd.to_numeric(frame[name], errors="coerce").to_numpy(
        dtype=np.float64, na_value=np.nan
    )
    return np.asarray(numbers, dtype=np.float64)


def _transaction_problems(frame: pd.DataFrame, roles: _Roles) -> list[str]:
    """What the SQL path counts, counted in pandas (rows in the window only)."""
    where = "the transactions"
    flag_problems = [line for flag in roles.flags for line in _flag_problems(frame, flag, where)]
    amount = _numbers(frame, roles.amount)
    n_rows = len(frame)
    problems = _bad_rows(
        roles.customer_id, _MISSING_ID, int(frame[roles.customer_id].isna().sum()), n_rows, where
    )
    problems += _bad_rows(
        roles.amount, _BAD_AMOUNT, int((~np.isfinite(amount)).sum()), n_rows, where
    )
    problems += flag_problems
    if flag_problems:
        return problems  # the flags decide what a purchase is: nothing more can be counted
    is_return = _flag(frame, roles.is_return)
    is_missing = frame[roles.category].isna().to_numpy()
    checks = (
        (roles.amount, _NEGATIVE_PURCHASE, ~is_return & (amount < 0)),
        (roles.amount, _POSITIVE_RETURN, is_return & (amount > 0)),
        (roles.category, _MISSING_CATEGORY, ~is_return & is_missing),
    )
    for column, what, is_bad in checks:
        problems += _bad_rows(column, what, int(is_bad.sum()), n_rows, where)
    return problems


def _cost_problems(frame: pd.DataFrame, name: str, roles: _Roles, costs: Costs) -> list[str]:
    """Missing ids, missing or negative costs and unpriced kinds of one cost table."""
    n_rows = len(frame)
    problems = _bad_rows(
        roles.customer_id, _MISSING_ID, int(frame[roles.customer_id].isna().sum()), n_rows, name
    )
    if name == "marketing" or costs.contact_cost is None:
        cost = _numbers(frame, costs.cost_column)
        n_bad = int((~(np.isfinite(cost) & (cost >= 0))).sum())
        problems += _bad_rows(costs.cost_column, _BAD_COST, n_bad, n_rows, name)
    elif isinstance(costs.contact_cost, Mapping):
        is_known = frame[costs.kind_column].isin(list(costs.contact_cost)).to_numpy()
        problems += _bad_rows(
            costs.kind_column, _UNKNOWN_KIND, int((~is_known).sum()), n_rows, name
        )
    return problems


def _cost_frames(costs: Costs, roles: _Roles, window: _Window) -> dict[str, pd.DataFrame]:
    """The cost tables as DataFrames with the columns they need."""
    frames = {}
    for name, table in costs.tables().items():
        if not isinstance(table, pd.DataFrame):
            raise SchemaError(
                f"the {name} cost table is {type(table).__name__}, not a pandas DataFrame; table "
                "names and sa.select(...) are for cvalue.io.sql_customer_profitability"
            )
        needed = _needed_cost_columns(roles, window, costs, name)
        _check_present(needed, list(table.columns), f"the {name} table", _cost_columns_fix(name))
        frames[name] = table
    return frames


def _currencies(frames: Mapping[str, pd.DataFrame], column: str) -> dict[str, dict[str, int]]:
    """Rows per currency of each table that has the currency column."""
    found = {}
    for name, frame in frames.items():
        if column in frame:
            counts = frame[column].astype("str").value_counts(sort=False, dropna=False)
            found[name] = {str(currency): int(rows) for currency, rows in counts.items()}
    return found


@dataclass(frozen=True, slots=True)
class _Windowed:
    """Each table's rows inside the window, and how many fell before or after it."""

    inside: dict[str, pd.DataFrame]
    outside: dict[str, tuple[int, int]]
    problems: list[str]


def _apply_window(frames: Mapping[str, pd.DataFrame], timestamp: str, window: _Window) -> _Windowed:
    """Cut every table to the window (calendar days of the wall-clock time, inclusive)."""
    if window.is_open:
        return _Windowed(dict(frames), {name: (0, 0) for name in frames}, [])
    inside, outside, problems = {}, {}, []
    for name, frame in frames.items():
        stamps = frame[timestamp]
        if len(frame) and not pd.api.types.is_datetime64_any_dtype(stamps):
            raise SchemaError(
                f"column {timestamp!r} of the {name} table has dtype {stamps.dtype}, not datetime; "
                "parse it with pd.to_datetime (cvalue.validate_transactions does for transactions)"
            )
        is_missing = stamps.isna().to_numpy()
        problems += _bad_rows(timestamp, _BAD_TIMESTAMP, int(is_missing.sum()), len(frame), name)
        day = _day_numbers(stamps)  # NaT gives a meaningless day: is_missing masks it
        before = _beyond(day, window.start_day, is_missing, is_after=False)
        after = _beyond(day, window.end_day, is_missing, is_after=True)
        outside[name] = (int(before.sum()), int(after.sum()))
        inside[name] = frame[~(before | after | is_missing)]
    return _Windowed(inside, outside, problems)


def _beyond(
    days: IntArray, bound: int | None, is_missing: BoolArray, *, is_after: bool
) -> BoolArray:
    """Rows with a day after (or before) a window bound; none for an open bound."""
    if bound is None:
        return np.zeros(len(days), dtype=np.bool_)
    is_beyond = days > bound if is_after else days < bound
    return np.asarray(~is_missing & is_beyond, dtype=np.bool_)


def _transaction_sums(
    frame: pd.DataFrame, roles: _Roles
) -> tuple[pd.Index, dict[str, npt.NDArray[np.generic]]]:
    """Per-customer counts and amounts of purchases, returns and promotions (sorted ids)."""
    codes, customers = _customer_codes(frame[roles.customer_id])
    n_customers = len(customers)
    amount = _numbers(frame, roles.amount)
    is_return = _flag(frame, roles.is_return)
    is_purchase = ~is_return
    is_promoted = _flag(frame, roles.promotion)

    def count(mask: BoolArray) -> IntArray:
        return np.bincount(codes[mask], minlength=n_customers).astype(np.int64)

    def total(mask: BoolArray, values: FloatArray) -> FloatArray:
        return np.asarray(
            np.bincount(codes[mask], weights=values[mask], minlength=n_customers), dtype=np.float64
        )

    sums: dict[str, npt.NDArray[np.generic]] = {
        "n_purchases": count(is_purchase),
        "n_returns": count(is_return),
        "n_promoted": count(is_purchase & is_promoted),
        "n_categories": _distinct_categories(
            codes[is_purchase], frame[roles.category][is_purchase], n_customers
        ),
        "revenue": total(is_purchase, amount),
        "returned": total(is_return, -amount),
        "promoted_revenue": total(is_purchase & is_promoted, amount),
        "promoted_returned": total(is_return & is_promoted, -amount),
    }
    return customers.rename(roles.customer_id), sums


def _distinct_categories(codes: IntArray, categories: pd.Series, n_customers: int) -> IntArray:
    """How many distinct categories each customer bought from.

    A customer x category bitmap when it is small (the usual few categories), else one sort of
    the (customer, category) keys; neither needs a hash table.
    """
    category_codes, uniques = pd.factorize(categories)
    n_categories = max(len(uniques), 1)
    key: IntArray = codes * n_categories + category_codes.astype(np.int64)
    if n_customers * n_categories <= max(_BITMAP_FACTOR * len(key), 1):
        seen = np.zeros((n_customers, n_categories), dtype=np.bool_)
        seen.reshape(-1)[key] = True
        return np.asarray(np.count_nonzero(seen, axis=1), dtype=np.int64)
    key.sort()
    is_new = np.ones(len(key), dtype=np.bool_)
    np.not_equal(key[1:], key[:-1], out=is_new[1:])
    return np.bincount(key[is_new] // n_categories, minlength=n_customers).astype(np.int64)


_BITMAP_FACTOR = 8  # a customer x category bitmap up to 8 cells per purchase


def _cost_codes(frame: pd.DataFrame, customers: pd.Index, roles: _Roles) -> npt.NDArray[np.intp]:
    """The customer code of each cost row, -1 for customers without transactions."""
    return np.asarray(customers.get_indexer(pd.Index(frame[roles.customer_id])), dtype=np.intp)


def _row_costs(frame: pd.DataFrame, name: str, costs: Costs) -> FloatArray:
    """The cost of each row: its cost column, or the unit cost of a contact (of its kind)."""
    if name == "marketing" or costs.contact_cost is None:
        return _numbers(frame, costs.cost_column)
    if isinstance(costs.contact_cost, Mapping):
        unit = pd.Series(costs.contact_cost, dtype=np.float64)
        return np.asarray(
            frame[costs.kind_column].map(unit).to_numpy(dtype=np.float64), dtype=np.float64
        )
    return np.full(len(frame), float(costs.contact_cost))


@dataclass(frozen=True, slots=True)
class _CostSums:
    sums: dict[str, FloatArray | IntArray]
    unmatched: dict[str, tuple[int, int, float]]


def _cost_sums(
    frames: Mapping[str, pd.DataFrame], customers: pd.Index, roles: _Roles, costs: Costs
) -> _CostSums:
    """Per-customer contact counts, service and marketing costs; unmatched rows counted."""
    n_customers = len(customers)
    sums: dict[str, FloatArray | IntArray] = {
        "n_contacts": np.zeros(n_customers, dtype=np.int64),
        "service_cost": np.zeros(n_customers),
        "marketing_cost": np.zeros(n_customers),
    }
    unmatched = {}
    for name, frame in frames.items():
        codes = _cost_codes(frame, customers, roles)
        row_costs = _row_costs(frame, name, costs)
        is_known = codes >= 0
        target = "service_cost" if name == "service_contacts" else "marketing_cost"
        sums[target] = np.bincount(
            codes[is_known], weights=row_costs[is_known], minlength=n_customers
        )
        if name == "service_contacts":
            sums["n_contacts"] = np.bincount(codes[is_known], minlength=n_customers).astype(
                np.int64
            )
        orphans = frame[roles.customer_id][~is_known]
        unmatched[name] = (len(orphans), int(orphans.nunique()), float(row_costs[~is_known].sum()))
    return _CostSums(sums, unmatched)


def customer_profitability(
    transactions: pd.DataFrame,
    costs: Costs | None,
    *,
    columns: Columns | None = None,
    category: str = "category",
    promotion: str | None = "is_promotion",
    min_categories: int = 2,
    start: DateLike | None = None,
    end: DateLike | None = None,
    on_unmatched: OnUnmatched = "warn",
) -> ProfitTable:
    """One row per customer: revenue, costs, net profit and the drivers of unprofitability.

    Parameters
    ----------
    transactions
        Purchases and returns, typically ``validate_transactions(...).clean``: customer id,
        amount (returns negative), returns flag, category and, unless ``promotion=None``, a
        promotion flag; the timestamp when a window is used.
    costs
        The margin, unit costs and cost tables (:class:`Costs`). Required.
    columns
        Which columns hold the customer id, timestamp, amount and returns flag; by default the
        canonical names.
    category, promotion
        The category column, and the promotion flag column (``None``: no promotions).
    min_categories
        A cross-buyer bought in at least this many categories (k).
    start, end
        Inclusive calendar days of the window; either may be open. Rows outside are counted
        in ``outside_window``.
    on_unmatched
        Cost rows whose customer has no transactions in the window are left out and counted in
        ``unmatched_costs``; ``"warn"`` also emits an :class:`UnmatchedCostsWarning`, ``"raise"``
        raises a :class:`~cvalue.errors.DataQualityError` instead.

    Returns
    -------
    ProfitTable
        ``customers`` is indexed by customer id (sorted) with ``n_purchases``, ``n_returns``,
        ``n_promoted``, ``n_categories``, ``is_cross_buyer``, ``revenue``, ``returned``,
        ``net_revenue``, ``cost_of_goods``, ``promotion_cost``, ``return_cost``, ``n_contacts``,
        ``service_cost``, ``marketing_cost``, ``net_profit``, ``is_unprofitable`` (net profit
        below zero) and the drivers: ``return_rate`` (returns per purchase),
        ``service_intensity`` (contacts per purchase), ``promotion_share`` (share of purchases
        on promotion) and ``spend_per_category`` (purchases' value per category bought).
        Net profit is defined in :class:`Costs`.

    Raises
    ------
    SchemaError
        The cost tables are missing, a column is missing, or the tables mix currencies.
    DataQualityError
        Missing ids, amounts, flags, categories or costs, or amounts of the wrong sign; every
        problem is listed with its row count.

    Examples
    --------
    >>> log = pd.DataFrame({"customer_id": [1, 1, 2, 2],
    ...                     "amount": [100.0, 50.0, 80.0, -80.0],
    ...                     "category": ["books", "home", "books", "books"],
    ...                     "is_return": [False, False, False, True],
    ...                     "is_promotion": [False, True, False, False]})
    >>> contacts = pd.DataFrame({"customer_id": [2, 2], "cost": [9.0, 5.0]})
    >>> costs = Costs(margin_rate=0.3, promotion_discount_rate=0.2, return_handling_cost=8.0,
    ...               service_contacts=contacts)
    >>> table = customer_profitability(log, costs).customers
    >>> table[["is_cross_buyer", "net_revenue", "net_profit", "return_rate"]]
                 is_cross_buyer  net_revenue  net_profit  return_rate
    customer_id
    1                      True        150.0        35.0          0.0
    2                     False          0.0       -22.0          1.0
    """
    _check_min_categories(min_categories)
    if costs is None:
        raise SchemaError(_MISSING_COSTS)
    if not isinstance(transactions, pd.DataFrame):
        raise SchemaError(
            f"transactions must be a pandas DataFrame, got {type(transactions).__name__}; for a "
            "database use cvalue.io.sql_customer_profitability"
        )
    window = _Window.of(start, end)
    roles = _roles(list(transactions.columns), columns, category, promotion)
    fix = "Pass columns=cvalue.Columns(...), category= and promotion= with the right names"
    _check_present(roles.needed(window), list(transactions.columns), "the transactions", fix)
    cost_frames = _cost_frames(costs, roles, window)
    tables = {"transactions": transactions, **cost_frames}
    _check_currencies(_currencies(tables, costs.currency_column), costs.currency)
    windowed = _apply_window(tables, roles.timestamp, window)
    inside = windowed.inside
    problems = windowed.problems + _transaction_problems(inside["transactions"], roles)
    for name in cost_frames:
        problems += _cost_problems(inside[name], name, roles, costs)
    _raise_problems(problems, _CHECK_FIX)
    index, sums = _transaction_sums(inside["transactions"], roles)
    cost_sums = _cost_sums({name: inside[name] for name in cost_frames}, index, roles, costs)
    unmatched = _unmatched_frame(cost_sums.unmatched)
    _report_unmatched(unmatched, on_unmatched)
    table = _customer_table(index, {**sums, **cost_sums.sums}, costs, min_categories)
    return ProfitTable(table, unmatched, _outside_frame(windowed.outside))


_MISSING_COSTS = (
    "the cost tables are missing: pass costs=cvalue.Costs(margin_rate=..., service_contacts=...) "
    "with the service contacts table (an empty one if no customer contacted service)"
)


# --- judging segments -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UnprofitableSegments:
    """Segments judged by their mean net profit (or CLV), with the flagged ones marked.

    Attributes
    ----------
    segments_
        One row per segment, worst mean first, indexed by ``segment`` (the value of a named
        segment, or ``leaf 1``, ``leaf 2``, ... of the tree): ``rule`` (the condition that
        defines it), ``customers``, ``share_of_population``, ``mean_value``, ``ci_lower``,
        ``ci_upper`` (t interval of the mean), ``total_value``, ``total_loss`` (the summed
        losses of its loss-making customers), ``loss_share`` (of all customers' losses),
        ``is_flagged`` and ``reason`` (``flagged``, ``smaller than min_size``, ``mean not below
        zero`` or ``interval reaches zero``).
    members_
        The segment of every customer of the population, indexed by customer id.
    value_name_
        What was judged: ``net_profit`` or the name of the value series.
    total_loss_
        The summed losses of all loss-making customers of the table (the population or not).
    """

    segments_: pd.DataFrame
    members_: pd.Series
    value_name_: str
    total_loss_: float

    @property
    def flagged_(self) -> pd.DataFrame:
        """The flagged segments."""
        return self.segments_[self.segments_["is_flagged"].to_numpy(dtype=np.bool_)]

    @property
    def flagged_ids_(self) -> pd.Index:
        """The customer ids in flagged segments (sorted)."""
        is_flagged = self.members_.isin(self.flagged_.index).to_numpy(dtype=np.bool_)
        return self.members_.index[is_flagged].sort_values()

    @property
    def flagged_share_(self) -> float:
        """The share of the population in flagged segments."""
        return len(self.flagged_ids_) / len(self.members_) if len(self.members_) else math.nan

    @property
    def flagged_loss_share_(self) -> float:
        """The share of all customers' losses carried by the flagged segments."""
        loss = float(self.flagged_["total_loss"].sum())
        return loss / self.total_loss_ if self.total_loss_ > 0 else math.nan


@dataclass(frozen=True, slots=True)
class _Judging:
    """What segments are judged by: options and every customer's value."""

    judged: pd.Series  # the value judged, for every customer of the table
    population: pd.Index  # the customers that are segmented
    everyone: str  # how a rule names the whole population
    min_size: int
    level: float

    @property
    def total_loss(self) -> float:
        return float(np.clip(-self.judged.to_numpy(dtype=np.float64), 0.0, None).sum())


def _judge(judging: _Judging, members: pd.Series, rules: Mapping[str, str]) -> UnprofitableSegments:
    """Statistics and flags of the segments ``members`` assigns the population to."""
    labels = list(rules)
    codes = pd.Categorical(members, categories=labels).codes.astype(np.int64)
    values = judging.judged.reindex(members.index).to_numpy(dtype=np.float64)
    table = _segment_statistics(codes, values, len(labels), judging.level)
    table["total_loss"] = np.bincount(
        codes, weights=np.clip(-values, 0.0, None), minlength=len(labels)
    )
    total_loss = judging.total_loss
    with np.errstate(invalid="ignore", divide="ignore"):  # no losses at all: shares are NaN
        table["loss_share"] = table["total_loss"] / total_loss if total_loss > 0 else np.nan
    table["share_of_population"] = table["customers"] / max(len(members), 1)
    reason = np.select(
        [
            table["customers"].to_numpy() < judging.min_size,
            ~(table["mean_value"].to_numpy() < 0),
            ~(table["ci_upper"].to_numpy() < 0),
        ],
        ["smaller than min_size", "mean not below zero", "interval reaches zero"],
        default="flagged",
    )
    table["is_flagged"] = reason == "flagged"
    table["reason"] = pd.array(reason, dtype="str")
    table.insert(0, "rule", [rules[label] for label in labels])
    table.index = pd.Index(labels, name="segment", dtype="str")
    columns = ["rule", "customers", "share_of_population", "mean_value", "ci_lower", "ci_upper",
               "total_value", "total_loss", "loss_share", "is_flagged", "reason"]  # fmt: skip
    ordered = table.loc[:, columns].sort_values("mean_value", kind="stable")
    return UnprofitableSegments(ordered, members, str(judging.judged.name), total_loss)


def _segment_statistics(
    codes: IntArray, values: FloatArray, n_segments: int, level: float
) -> pd.DataFrame:
    """Size, mean, t interval and total of ``values`` per segment code."""
    size = np.bincount(codes, minlength=n_segments).astype(np.int64)
    total = np.bincount(codes, weights=values, minlength=n_segments)
    with np.errstate(invalid="ignore", divide="ignore"):  # empty or one-customer segments: NaN
        mean = total / size
        squares = np.bincount(codes, weights=(values - mean[codes]) ** 2, minlength=n_segments)
        std_error = np.sqrt(squares / (size - 1) / size)
        half_width = stats.t.ppf(0.5 + level / 2, np.maximum(size - 1, 1)) * std_error
    half_width = np.where(size > 1, half_width, np.nan)
    return pd.DataFrame(
        {
            "customers": size,
            "mean_value": mean,
            "ci_lower": mean - half_width,
            "ci_upper": mean + half_width,
            "total_value": total,
        }
    )


def _check_options(max_depth: int, min_size: int, level: float) -> None:
    """Refuse a tree depth, minimum size or confidence level out of range; raise once."""
    problems = []
    if (
        isinstance(max_depth, bool)
        or not isinstance(max_depth, (int, np.integer))
        or not 0 <= max_depth <= _MAX_DEPTH
    ):
        problems.append(f"max_depth must be an integer in [0, {_MAX_DEPTH}], got {max_depth!r}")
    if isinstance(min_size, bool) or not isinstance(min_size, (int, np.integer)) or min_size < 2:
        problems.append(f"min_size must be an integer >= 2, got {min_size!r}")
    if not (isinstance(level, (float, int)) and 0 < level < 1):
        problems.append(f"level must be a number in (0, 1), got {level!r}")
    if problems:
        raise SchemaError("; ".join(problems))


_MAX_DEPTH = 6  # deeper trees no longer read as rules
_MIN_GAIN = 1e-9  # error reduction per row below which a split only fits rounding noise


def _customer_frame(customers: pd.DataFrame | ProfitTable) -> pd.DataFrame:
    if isinstance(customers, ProfitTable):
        return customers.customers
    if isinstance(customers, pd.DataFrame):
        return customers
    raise SchemaError(
        f"customers must be the per-customer table (a DataFrame or a ProfitTable), got "
        f"{type(customers).__name__}; build it with cvalue.customer_profitability"
    )


def _judged_values(customers: pd.DataFrame, value: pd.Series | None) -> pd.Series:
    """Net profit, or the given value of every customer of the table."""
    if value is None:
        _check_present(["net_profit"], list(customers.columns), "the customer table", _TABLE_FIX)
        return customers["net_profit"].astype(np.float64)
    if not isinstance(value, pd.Series):
        raise SchemaError(
            f"value must be a pandas Series indexed by customer id, got {type(value).__name__}; "
            "pick the column of a value table, e.g. value=clv['clv']"
        )
    name = str(value.name) if value.name is not None else "value"
    aligned = _numeric(value, name).reindex(customers.index)
    n_missing = int(aligned.isna().sum())
    if n_missing:
        example = customers.index[aligned.isna().to_numpy()][0]
        raise DataQualityError(
            f"value {name!r} is missing for {n_missing:,} of {len(customers):,} customers of the "
            f"table (e.g. customer {_plain(example)!r}); give a value to every customer, or "
            "filter the table"
        )
    return aligned.rename(name)


_TABLE_FIX = (
    "Build the table with cvalue.customer_profitability or cvalue.io.sql_customer_profitability"
)


def _judging(
    customers: pd.DataFrame,
    value: pd.Series | None,
    population: Population,
    min_size: int,
    level: float,
) -> _Judging:
    values = _judged_values(customers, value)
    if population == "all":
        return _Judging(values, customers.index, "all customers", min_size, float(level))
    if population != "cross_buyers":
        raise SchemaError(f"population must be 'cross_buyers' or 'all', got {population!r}")
    _check_present(["is_cross_buyer"], list(customers.columns), "the customer table", _TABLE_FIX)
    members = customers.index[customers["is_cross_buyer"].to_numpy(dtype=np.bool_)]
    return _Judging(values, members, "all cross-buyers", min_size, float(level))


@dataclass(frozen=True, slots=True)
class _Condition:
    """One test on a path of the tree: ``feature > threshold`` or ``feature <= threshold``."""

    feature: str
    is_above: bool
    threshold: float


@dataclass(frozen=True, slots=True)
class _Tree:
    """The data and settings a tree grows on."""

    features: FloatArray  # rows x drivers
    target: FloatArray  # 1.0 for a loss-making customer, else 0.0
    names: tuple[str, ...]
    max_depth: int
    min_leaf: int


def _readable_threshold(low: float, high: float) -> float:
    """The shortest decimal ``t`` with ``low <= t < high``: rules read ``> 0.25``, not ``> 0.2513``.

    Every ``t`` in ``[low, high)`` splits the rows the same way, as no value lies between.
    """
    for digits in range(-6, 18):
        candidate = round(low, digits)  # correctly rounded: round(0.25, 2) is 0.25 itself
        if candidate < low:
            candidate = round(candidate + 10.0**-digits, digits)
        if low <= candidate < high:
            return candidate
    return low


def _best_split(
    features: FloatArray, target: FloatArray, min_leaf: int
) -> tuple[int, float] | None:
    """The split that most reduces the squared error of ``target``, as CART grows a tree.

    Breiman, Friedman, Olshen & Stone (1984), *Classification and Regression Trees*, ch. 8; for a
    0/1 target this is the Gini criterion.

    All features at once: one sort per column, and cumulative sums give every candidate split's
    error reduction ``S_l^2 / n_l + S_r^2 / n_r - S^2 / n``. A split falls between two distinct
    values and leaves at least ``min_leaf`` rows on each side.
    """
    n_rows = len(target)
    if n_rows < 2 * min_leaf:
        return None
    order = np.argsort(features, axis=0, kind="stable")
    ordered = np.take_along_axis(features, order, axis=0)
    left_sum = np.cumsum(target[order], axis=0)[:-1]
    left_size = np.arange(1, n_rows, dtype=np.float64)[:, np.newaxis]
    right_size = n_rows - left_size
    total = float(target.sum())
    gain = left_sum**2 / left_size + (total - left_sum) ** 2 / right_size - total**2 / n_rows
    is_valid = (ordered[1:] > ordered[:-1]) & (left_size >= min_leaf) & (right_size >= min_leaf)
    gain = np.where(is_valid, gain, -np.inf)
    row, column = np.unravel_index(int(np.argmax(gain)), gain.shape)
    if not gain[row, column] > _MIN_GAIN * n_rows:
        return None
    threshold = _readable_threshold(float(ordered[row, column]), float(ordered[row + 1, column]))
    return int(column), threshold


def _grow(
    tree: _Tree, rows: IntArray, path: tuple[_Condition, ...]
) -> list[tuple[tuple[_Condition, ...], IntArray]]:
    """The leaves under a node, left (``<=``) before right (``>``): (path, rows) each."""
    split = None
    if len(path) < tree.max_depth:
        split = _best_split(tree.features[rows], tree.target[rows], tree.min_leaf)
    if split is None:
        return [(path, rows)]
    column, threshold = split
    is_above = tree.features[rows, column] > threshold
    name = tree.names[column]
    left = _grow(tree, rows[~is_above], (*path, _Condition(name, False, threshold)))
    right = _grow(tree, rows[is_above], (*path, _Condition(name, True, threshold)))
    return left + right


def _number(value: float) -> str:
    return np.format_float_positional(value, trim="-")


def _rule_text(path: tuple[_Condition, ...], everyone: str) -> str:
    """A path as a readable rule: ``return_rate > 0.25 and 0.1 < promotion_share <= 0.6``."""
    bounds: dict[str, tuple[float, float]] = {}
    for condition in path:
        lower, upper = bounds.get(condition.feature, (-math.inf, math.inf))
        if condition.is_above:
            lower = max(lower, condition.threshold)
        else:
            upper = min(upper, condition.threshold)
        bounds[condition.feature] = (lower, upper)
    parts = []
    for feature, (lower, upper) in bounds.items():
        if math.isfinite(lower) and math.isfinite(upper):
            parts.append(f"{_number(lower)} < {feature} <= {_number(upper)}")
        elif math.isfinite(lower):
            parts.append(f"{feature} > {_number(lower)}")
        else:
            parts.append(f"{feature} <= {_number(upper)}")
    return " and ".join(parts) if parts else everyone


def _discover(
    customers: pd.DataFrame, judging: _Judging, drivers: Sequence[str], max_depth: int
) -> UnprofitableSegments:
    """Segments as the leaves of a shallow tree on the drivers, grown to predict a loss."""
    names = tuple(drivers)
    _check_present(list(names), list(customers.columns), "the customer table", _TABLE_FIX)
    features = customers.loc[judging.population, list(names)].to_numpy(dtype=np.float64)
    is_undefined = ~np.isfinite(features).all(axis=1)
    if is_undefined.any():
        raise DataQualityError(
            f"{int(is_undefined.sum()):,} of {len(features):,} customers of the population have no "
            f"finite value of the drivers {list(names)} (e.g. customer "
            f"{_plain(judging.population[is_undefined][0])!r}: no purchases in the window); "
            "segment the cross-buyers (population='cross_buyers') or name segments with by="
        )
    target = (judging.judged.reindex(judging.population).to_numpy(dtype=np.float64) < 0).astype(
        np.float64
    )
    tree = _Tree(features, target, names, max_depth, judging.min_size)
    leaves = _grow(tree, np.arange(len(target), dtype=np.int64), ())
    leaf_of = np.empty(len(target), dtype=np.int64)
    for number, (_, rows) in enumerate(leaves):
        leaf_of[rows] = number
    labels = np.array([f"leaf {number + 1}" for number in range(len(leaves))], dtype=object)
    rules = {
        str(labels[number]): _rule_text(path, judging.everyone)
        for number, (path, _) in enumerate(leaves)
    }
    members = pd.Series(labels[leaf_of], index=judging.population, name="segment", dtype="str")
    return _judge(judging, members, rules)


def _segment_column(
    customers: pd.DataFrame, key: SegmentKey, population: pd.Index
) -> tuple[str, pd.Series]:
    """A named segmentation's name and its value for every customer of the population."""
    if isinstance(key, str):
        _check_present(
            [key],
            list(customers.columns),
            "the customer table",
            "Pass by= a column name or a Series indexed by customer id",
        )
        return key, customers.loc[population, key]
    if not isinstance(key, pd.Series):
        raise SchemaError(
            f"by= takes column names or Series indexed by customer id, got {type(key).__name__}"
        )
    name = str(key.name) if key.name is not None else "segment"
    if not key.index.is_unique:
        raise DataQualityError(
            f"segment {name!r} has {int(key.index.duplicated().sum()):,} repeated customer ids; "
            "give one segment per customer"
        )
    is_known = population.isin(key.index)
    if not is_known.all():
        raise DataQualityError(
            f"segment {name!r} has no value for {int((~is_known).sum()):,} of {len(population):,} "
            f"customers (e.g. customer {_plain(population[~is_known][0])!r}); give every "
            "customer a segment"
        )
    return name, key.reindex(population)


def _named(
    customers: pd.DataFrame, judging: _Judging, by: SegmentKey | Sequence[SegmentKey]
) -> UnprofitableSegments:
    """Segments as the combinations of the named columns' values."""
    keys = [by] if isinstance(by, (str, pd.Series)) else list(by)
    if not keys:
        raise SchemaError(
            "by= names no segmentation; pass a column name, a Series, or a list of them"
        )
    named = dict(_segment_column(customers, key, judging.population) for key in keys)
    frame = pd.DataFrame(
        {name: column.to_numpy() for name, column in named.items()}, index=judging.population
    )
    grouped = frame.groupby(list(named), sort=True, dropna=False, observed=True)
    codes = grouped.ngroup().to_numpy(dtype=np.int64)
    combinations = [key if isinstance(key, tuple) else (key,) for key in grouped.size().index]
    labels = np.array([" / ".join(str(part) for part in key) for key in combinations], dtype=object)
    rules = {
        str(label): " and ".join(f"{name} = {part}" for name, part in zip(named, key, strict=True))
        for label, key in zip(labels, combinations, strict=True)
    }
    members = pd.Series(labels[codes], index=judging.population, name="segment", dtype="str")
    return _judge(judging, members, rules)


def unprofitable_segments(
    customers: pd.DataFrame | ProfitTable,
    *,
    by: SegmentKey | Sequence[SegmentKey] | None = None,
    value: pd.Series | None = None,
    drivers: Sequence[str] = DRIVERS,
    population: Population = "cross_buyers",
    max_depth: int = 2,
    min_size: int = 30,
    level: float = 0.95,
) -> UnprofitableSegments:
    """Flag the segments whose mean net profit (or CLV) is reliably below zero.

    A segment is flagged when it has at least ``min_size`` customers, its mean is below zero
    and the ``level`` t interval of its mean lies entirely below zero. With ``by``, the segments
    are those the user names (channel, region, category pair, value tier ...: columns of the
    table or Series indexed by customer id; several are crossed). Without it they are discovered:
    a CART tree (Breiman et al. 1984) of depth ``max_depth`` is grown on the ``drivers`` to
    predict which customers lose money (Gini criterion, at least ``min_size`` customers per
    leaf), and each leaf is a segment whose rule reads as
    ``return_rate > 0.25 and promotion_share > 0.4``.

    Parameters
    ----------
    customers
        The per-customer table of :func:`customer_profitability` (or its :class:`ProfitTable`).
    by
        Named segmentations; ``None`` discovers segments with the tree.
    value
        A value per customer (such as CLV) to judge instead of ``net_profit``; every customer of
        the table needs one.
    drivers
        The table's columns the tree may split on.
    population
        Segment the cross-buyers (default) or all customers. Loss shares are always shares of
        the losses of every customer in the table.
    max_depth, min_size, level
        Depth of the tree (0 to 6), the smallest segment that can be flagged (and the smallest
        leaf), and the confidence level of the interval.

    Returns
    -------
    UnprofitableSegments
        Every segment with its statistics, and which customer is in which.

    Examples
    --------
    >>> table = pd.DataFrame({"net_profit": [-5.0, -7.0, -6.0, 40.0, 35.0, 50.0],
    ...                       "is_cross_buyer": [True] * 6,
    ...                       "channel": ["app", "app", "app", "web", "web", "web"]},
    ...                      index=pd.Index([1, 2, 3, 4, 5, 6], name="customer_id"))
    >>> found = unprofitable_segments(table, by="channel", min_size=3)
    >>> found.segments_[["customers", "mean_value", "total_loss", "loss_share", "is_flagged"]]
             customers  mean_value  total_loss  loss_share  is_flagged
    segment
    app              3   -6.000000        18.0         1.0        True
    web              3   41.666667         0.0         0.0       False
    """
    _check_options(max_depth, min_size, level)
    frame = _customer_frame(customers)
    judging = _judging(frame, value, population, min_size, level)
    if by is not None:
        return _named(frame, judging, by)
    return _discover(frame, judging, drivers, max_depth)


# --- cross-sell profitability -------------------------------------------------------------------


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
    """

    customers_: pd.DataFrame
    unprofitable_share_: float
    loss_share_: float
    drivers_: pd.DataFrame
    segments_: UnprofitableSegments
    unmatched_costs_: pd.DataFrame
    outside_window_: pd.DataFrame
    n_cross_buyers_: int


def _hedges_g(first: FloatArray, second: FloatArray, level: float) -> tuple[float, float, float]:
    """Hedges' g of ``first`` against ``second`` and its normal interval.

    The standardised mean difference with the small-sample correction and the large-sample
    standard error of Hedges & Olkin (1985), *Statistical Methods for Meta-Analysis*, ch. 5,
    eq. (8) and (14).
    """
    n_first, n_second = len(first), len(second)
    if n_first < 2 or n_second < 2:
        return math.nan, math.nan, math.nan
    pooled = ((n_first - 1) * first.var(ddof=1) + (n_second - 1) * second.var(ddof=1)) / (
        n_first + n_second - 2
    )
    if not pooled > 0:
        return math.nan, math.nan, math.nan
    correction = 1.0 - 3.0 / (4.0 * (n_first + n_second) - 9.0)
    effect = correction * (first.mean() - second.mean()) / math.sqrt(pooled)
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
        aggregated, such as :func:`cvalue.io.sql_customer_profitability` returns (then ``costs``
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


# --- value segmentation -------------------------------------------------------------------------


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
            f"{len(values):,} customers (e.g. customer {_plain(values.index[is_bad][0])!r}); "
            "drop or fill them first"
        )
    return numbers


def _value_series(values: Values, column: str | None) -> pd.Series:
    """The per-customer value: a Series, or one column of a value table."""
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
    series = _value_series(values, column)
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
    series = _value_series(values, column)
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
    series = _ranked(_value_series(profit, column))
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
    series = _value_series(values, column)
    top = _ranked(series).iloc[:n]
    total = float(series.sum())
    rows = values.loc[top.index] if isinstance(values, pd.DataFrame) else top.to_frame()
    with np.errstate(invalid="ignore", divide="ignore"):  # a zero total: NaN shares
        share = top.to_numpy() / total if total != 0 else np.full(len(top), np.nan)
    return rows.assign(
        rank=np.arange(1, len(top) + 1), share_of_value=share, cumulative_share=np.cumsum(share)
    )
