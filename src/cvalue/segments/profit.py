"""The profit domain: the cost inputs, the per-customer table, net profit and the drivers.

:class:`Costs` holds the margin, the unit costs and the cost tables, :class:`ProfitTable` the
per-customer table and what was left out of it. :func:`cvalue.segments.customer_profitability`
aggregates a pandas transaction log and :func:`cvalue.segments.sql.sql_customer_profitability`
runs the same aggregation inside SQLite, DuckDB or PostgreSQL. Each path computes the
per-customer *sums* its own way (``bincount`` in numpy, ``GROUP BY`` in the database);
everything derived from them (cost of goods, promotion, return and service costs, net profit,
the driver ratios) comes from one function here, :func:`_customer_table`, so the two paths share
their arithmetic as well as their column layout. The window, the transaction roles, the checks
and their messages are shared here too.

A customer's net profit over the window is (rates from :class:`Costs`)::

    net revenue      = purchases - returned value
    cost of goods    = (1 - margin_rate) * net revenue
    promotion cost   = promotion_discount_rate * (promoted purchases - promoted returns)
    return cost      = return_handling_cost * number of returns
    service cost     = sum of the customer's service contact costs
    net profit       = net revenue - cost of goods - promotion cost - return cost
                       - service cost - marketing cost

which is how :func:`cvalue.datasets.make_crm` defines a synthetic customer's net margin.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd
from sqlalchemy.sql.expression import SelectBase

from cvalue.errors import CValueWarning, DataQualityError, SchemaError
from cvalue.io.schema import Columns
from cvalue.io.sqlkit import day_of
from cvalue.units import DateLike

__all__ = [
    "DRIVERS",
    "CostSource",
    "Costs",
    "ProfitTable",
    "UnmatchedCostsWarning",
]

CostSource: TypeAlias = pd.DataFrame | str | SelectBase
"""A cost table: a DataFrame (pandas path), or a table name or ``sa.select`` (SQL path)."""
OnUnmatched: TypeAlias = Literal["warn", "raise"]
FloatArray: TypeAlias = npt.NDArray[np.float64]

DRIVERS: tuple[str, ...] = (
    "return_rate",
    "service_intensity",
    "promotion_share",
    "spend_per_category",
)
"""Per-customer behaviours that can make a cross-buyer lose money (see :func:`_customer_table`)."""

_TRANSACTION_SUMS = (
    "n_purchases",
    "n_returns",
    "n_promoted",
    "n_categories",
    "revenue",
    "returned",
    "promoted_revenue",
    "promoted_returned",
)
_COST_SUMS = ("n_contacts", "service_cost", "marketing_cost")
_COUNTS = frozenset({"n_purchases", "n_returns", "n_promoted", "n_categories", "n_contacts"})
_MISSING_ID = "missing customer ids"
_BAD_AMOUNT = "missing or non-numeric amounts"
_BAD_FLAG = "values that are not true/false"
_NEGATIVE_PURCHASE = "negative amounts on purchases"
_POSITIVE_RETURN = "positive amounts on returns"
_MISSING_CATEGORY = "missing categories on purchases"
_BAD_COST = "missing, non-numeric or negative costs"
_UNKNOWN_KIND = "contact kinds without a unit cost in contact_cost"
_BAD_TIMESTAMP = "missing or unreadable timestamps"


class UnmatchedCostsWarning(CValueWarning):
    """Cost rows name customers who have no transactions in the window; they are left out."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Costs:
    """The margin, the unit costs and the cost tables behind a customer's net profit.

    Parameters
    ----------
    margin_rate
        Gross margin as a share of the amount paid at full price (0.30: goods cost 70 %).
    service_contacts
        One row per service contact: the customer id column (named as in the transactions),
        ``cost`` (or ``kind``, priced by ``contact_cost``) and, when a window is used, the
        timestamp column. Required: pass an empty table if no customer contacted service, so
        that a forgotten table cannot make every customer look profitable.
    promotion_discount_rate
        Margin given away on a promoted purchase, as a share of the amount paid.
    return_handling_cost
        Cost of handling one return, in currency units.
    contact_cost
        The unit cost of a contact when the contacts table has no cost column: one number for
        every contact, or a cost per ``kind``. ``None`` reads the table's cost column.
    marketing
        Optional marketing cost rows: customer id and ``cost`` (and the timestamp column when a
        window is used).
    currency
        The currency every table is in. Tables with a ``currency`` column are checked against it
        (and against each other even when it is ``None``).
    cost_column, kind_column, currency_column
        Column names in the cost tables.
    """

    margin_rate: float
    service_contacts: CostSource
    promotion_discount_rate: float = 0.0
    return_handling_cost: float = 0.0
    contact_cost: float | Mapping[str, float] | None = None
    marketing: CostSource | None = None
    currency: str | None = None
    cost_column: str = "cost"
    kind_column: str = "kind"
    currency_column: str = "currency"

    def __post_init__(self) -> None:
        """Check every rate and the presence of the contacts table; raise once."""
        problems = [
            f"{name}={value!r} must be a finite number in [0, {bound}]"
            for name, value, bound in (
                ("margin_rate", self.margin_rate, 1),
                ("promotion_discount_rate", self.promotion_discount_rate, 1),
                ("return_handling_cost", self.return_handling_cost, math.inf),
            )
            if not (_is_number(value) and 0 <= value <= bound and math.isfinite(value))
        ]
        unit_costs = (
            list(self.contact_cost.values())
            if isinstance(self.contact_cost, Mapping)
            else []
            if self.contact_cost is None
            else [self.contact_cost]
        )
        if not all(_is_number(cost) and 0 <= cost < math.inf for cost in unit_costs):
            problems.append(
                f"contact_cost={self.contact_cost!r} must be a finite number >= 0 or a mapping "
                "of contact kinds to such numbers"
            )
        if self.service_contacts is None:
            problems.append(
                "the service contacts cost table is missing: pass service_contacts= the table of "
                "contacts (customer id, cost), or an empty table if no customer contacted service"
            )
        if problems:
            raise SchemaError("Costs: " + "; ".join(problems))

    def tables(self) -> dict[str, CostSource]:
        """The cost tables given, by name (``service_contacts``, ``marketing``)."""
        found = {"service_contacts": self.service_contacts, "marketing": self.marketing}
        return {name: table for name, table in found.items() if table is not None}


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


@dataclass(frozen=True, slots=True)
class ProfitTable:
    """The per-customer profitability table and what was left out of it.

    Attributes
    ----------
    customers
        Indexed by customer id (sorted): counts, amounts, costs, ``net_profit`` and the
        drivers; see :func:`cvalue.segments.customer_profitability`.
    unmatched_costs
        Cost rows whose customer has no transactions in the window: one row per cost table
        with ``rows``, ``customers`` (distinct ids) and ``cost`` (their total cost). These rows
        are not in ``customers``.
    outside_window
        Rows of each table before ``start`` or after ``end``: ``table``, ``reason``, ``rows``.
    """

    customers: pd.DataFrame
    unmatched_costs: pd.DataFrame
    outside_window: pd.DataFrame


# --- shared between the pandas and the SQL path ------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Window:
    """Inclusive calendar days (days since 1970-01-01) of the analysis window, either open."""

    start_day: int | None
    end_day: int | None

    @classmethod
    def of(cls, start: DateLike | None, end: DateLike | None) -> _Window:
        window = cls(
            None if start is None else day_of(start, "start"),
            None if end is None else day_of(end, "end"),
        )
        start_day, end_day = window.start_day, window.end_day
        if start_day is not None and end_day is not None and start_day > end_day:
            raise SchemaError(f"start ({start}) must not be after end ({end})")
        return window

    @property
    def is_open(self) -> bool:
        return self.start_day is None and self.end_day is None


@dataclass(frozen=True, slots=True)
class _Roles:
    """The transaction columns profitability reads."""

    customer_id: str
    timestamp: str
    amount: str
    is_return: str
    category: str
    promotion: str | None

    @property
    def flags(self) -> list[str]:
        """The true/false columns: the returns flag and the promotion flag, if any."""
        return [self.is_return] if self.promotion is None else [self.is_return, self.promotion]

    def needed(self, window: _Window) -> list[str]:
        """The columns the transactions must have (the timestamp only for a window)."""
        needed = [self.customer_id, self.amount, *self.flags, self.category]
        return needed if window.is_open else [*needed, self.timestamp]


def _roles(
    available: list[str], columns: Columns | None, category: str, promotion: str | None
) -> _Roles:
    """The transaction roles used: a returns flag and amounts are required."""
    columns = columns or Columns.detect(available)
    if columns.is_return is None:
        raise SchemaError(
            "returns must be flagged for profitability: map the returns flag with "
            "cvalue.Columns(is_return=...) (validated data carries it as 'is_return')"
        )
    if columns.amount is None:
        raise SchemaError("profitability needs amounts: map them with Columns(amount=...)")
    return _Roles(
        columns.customer_id, columns.timestamp, columns.amount, columns.is_return, category,
        promotion,
    )  # fmt: skip


def _check_present(needed: list[str], available: list[str], where: str, fix: str) -> None:
    missing = [name for name in needed if name not in available]
    if missing:
        raise SchemaError(f"column(s) {missing} not found in {where}; it has {available}. {fix}")


def _raise_problems(problems: list[str], fix: str) -> None:
    if problems:
        raise DataQualityError("; ".join(problems) + f". {fix}")


def _bad_rows(column: str, what: str, n_bad: int, n_rows: int, where: str) -> list[str]:
    """A problem line when ``n_bad`` rows are bad, else nothing."""
    if not n_bad:
        return []
    return [f"column {column!r} of {where} has {what} in {n_bad:,} of {n_rows:,} rows"]


def _check_currencies(found: Mapping[str, Mapping[str, int]], expected: str | None) -> None:
    """Refuse tables in different currencies: ``found`` maps table -> {currency: rows}."""
    currencies = {currency for counts in found.values() for currency in counts}
    if expected is not None:
        currencies.add(expected)
    if len(currencies) <= 1:
        return
    described = "; ".join(
        f"{table}: "
        + ", ".join(f"{rows:,} rows in {currency!r}" for currency, rows in counts.items())
        for table, counts in found.items()
    )
    wanted = f" (Costs(currency={expected!r}))" if expected is not None else ""
    raise SchemaError(
        f"the tables are in different currencies{wanted}: {described}. Convert every amount and "
        "cost to one currency before computing profitability"
    )


def _unmatched_frame(counts: Mapping[str, tuple[int, int, float]]) -> pd.DataFrame:
    """``table, rows, customers, cost`` of cost rows without transactions, one row per table."""
    return pd.DataFrame(
        {
            "table": pd.array(list(counts), dtype="str"),
            "rows": np.array([value[0] for value in counts.values()], dtype=np.int64),
            "customers": np.array([value[1] for value in counts.values()], dtype=np.int64),
            "cost": np.array([value[2] for value in counts.values()], dtype=np.float64),
        }
    )


def _report_unmatched(unmatched: pd.DataFrame, on_unmatched: OnUnmatched) -> None:
    """Warn about (or refuse) cost rows whose customer has no transactions in the window."""
    found = unmatched[unmatched["rows"] > 0]
    if found.empty:
        return
    described = "; ".join(
        f"{row.table}: {row.rows:,} rows of {row.customers:,} customers costing {row.cost:,.2f}"
        for row in found.itertuples()
    )
    message = (
        f"cost rows name customers with no transactions in the window ({described}); they are "
        "left out of the customer table and counted in unmatched_costs. Check the customer ids, "
        "or widen the window"
    )
    if on_unmatched == "raise":
        raise DataQualityError(message)
    warnings.warn(message, UnmatchedCostsWarning, stacklevel=3)


def _outside_frame(counts: Mapping[str, tuple[int, int]]) -> pd.DataFrame:
    """``table, reason, rows`` of the rows before the start or after the end of the window."""
    tables = [table for table in counts for _ in range(2)]
    reasons = ["before start", "after end"] * len(counts)
    rows = [value for pair in counts.values() for value in pair]
    return pd.DataFrame(
        {
            "table": pd.array(tables, dtype="str"),
            "reason": pd.array(reasons, dtype="str"),
            "rows": np.array(rows, dtype=np.int64),
        }
    )


def _ratio(numerator: FloatArray, denominator: FloatArray) -> FloatArray:
    with np.errstate(invalid="ignore", divide="ignore"):  # customers without purchases: NaN
        return np.where(denominator > 0, numerator / np.maximum(denominator, 1), np.nan)


def _customer_table(
    index: pd.Index, sums: Mapping[str, npt.NDArray[np.generic]], costs: Costs, min_categories: int
) -> pd.DataFrame:
    """The per-customer table from the per-customer sums; the same arithmetic for both paths."""
    value = {name: np.asarray(sums[name], dtype=np.float64) for name in sums}
    net_revenue = value["revenue"] - value["returned"]
    cost_of_goods = (1.0 - costs.margin_rate) * net_revenue
    promotion_cost = costs.promotion_discount_rate * (
        value["promoted_revenue"] - value["promoted_returned"]
    )
    return_cost = costs.return_handling_cost * value["n_returns"]
    net_profit = (
        net_revenue
        - cost_of_goods
        - promotion_cost
        - return_cost
        - value["service_cost"]
        - value["marketing_cost"]
    )
    counts = {name: np.asarray(sums[name], dtype=np.int64) for name in _COUNTS}
    table = {
        **{name: counts[name] for name in ("n_purchases", "n_returns", "n_promoted")},
        "n_categories": counts["n_categories"],
        "is_cross_buyer": counts["n_categories"] >= min_categories,
        "revenue": value["revenue"],
        "returned": value["returned"],
        "net_revenue": net_revenue,
        "cost_of_goods": cost_of_goods,
        "promotion_cost": promotion_cost,
        "return_cost": return_cost,
        "n_contacts": counts["n_contacts"],
        "service_cost": value["service_cost"],
        "marketing_cost": value["marketing_cost"],
        "net_profit": net_profit,
        "is_unprofitable": net_profit < 0,
        "return_rate": _ratio(value["n_returns"], value["n_purchases"]),
        "service_intensity": _ratio(value["n_contacts"], value["n_purchases"]),
        "promotion_share": _ratio(value["n_promoted"], value["n_purchases"]),
        "spend_per_category": _ratio(value["revenue"], value["n_categories"]),
    }
    return pd.DataFrame(table, index=index)


def _check_min_categories(min_categories: int) -> None:
    if isinstance(min_categories, bool) or not isinstance(min_categories, (int, np.integer)):
        raise SchemaError(f"min_categories must be an integer >= 1, got {min_categories!r}")
    if min_categories < 1:
        raise SchemaError(f"min_categories must be >= 1, got {min_categories}")


def _needed_cost_columns(roles: _Roles, window: _Window, costs: Costs, name: str) -> list[str]:
    """The columns a cost table must have for the options chosen."""
    needed = [roles.customer_id]
    if not window.is_open:
        needed.append(roles.timestamp)
    if name == "marketing" or costs.contact_cost is None:
        needed.append(costs.cost_column)
    elif isinstance(costs.contact_cost, Mapping):
        needed.append(costs.kind_column)
    return needed


def _cost_columns_fix(name: str) -> str:
    return (
        f"Name the {name} table's columns with Costs(cost_column=..., kind_column=...), or price "
        "contacts with Costs(contact_cost=...)"
    )


_CHECK_FIX = (
    "Run cvalue.validate_transactions on the transactions and fix or filter the cost rows "
    "before computing profitability"
)
