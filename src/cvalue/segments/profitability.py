"""Per-customer profitability from pandas frames: :func:`customer_profitability`.

The per-customer counts and amounts come from ``bincount`` over integer customer codes; the
checks count what the SQL path (:mod:`cvalue.segments.sql`) counts, and the table is built by the
arithmetic both paths share (:mod:`cvalue.segments.profit`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd

from cvalue.dask import add_tables, customer_results_with_tables, is_dask_frame
from cvalue.errors import SchemaError
from cvalue.io.schema import Columns
from cvalue.purchases import customer_codes, day_numbers
from cvalue.segments.profit import (
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
from cvalue.units import DateLike

__all__ = ["customer_profitability"]

FloatArray: TypeAlias = npt.NDArray[np.float64]
IntArray: TypeAlias = npt.NDArray[np.int64]
BoolArray: TypeAlias = npt.NDArray[np.bool_]


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
                "names and sa.select(...) are for cvalue.sql_customer_profitability"
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
        day = day_numbers(stamps)  # NaT gives a meaningless day: is_missing masks it
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
    codes, customers = customer_codes(frame[roles.customer_id])
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
    if is_dask_frame(transactions):  # cvalue.dask: each customer's rows and cost rows together
        roles = _roles(list(transactions.columns), columns, category, promotion)
        parts = customer_results_with_tables(
            customer_profitability, transactions, costs, dict(costs.tables()),
            customer_id=roles.customer_id,
            quiet=UnmatchedCostsWarning, columns=columns, category=category, promotion=promotion,
            min_categories=min_categories, start=start, end=end,
        )  # fmt: skip
        unmatched = add_tables([part.unmatched_costs for part in parts], keys=["table"])
        _report_unmatched(unmatched, on_unmatched)
        outside = add_tables([part.outside_window for part in parts], keys=["table", "reason"])
        customers = pd.concat([part.customers for part in parts]).sort_index()
        return ProfitTable(customers, unmatched, outside)
    if not isinstance(transactions, pd.DataFrame):
        raise SchemaError(
            f"transactions must be a pandas DataFrame, got {type(transactions).__name__}; for a "
            "database use cvalue.sql_customer_profitability"
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
