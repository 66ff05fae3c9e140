"""What the rules read: each customer's activity days, or its contract spells.

``_transaction_events`` reads the distinct purchase days of a transaction log and each
customer's lifecycle start; ``_contract_spans`` merges a contracts table into spells, as
:func:`merge_contracts` does for users. Both check what they read, and refuse with the row count
and an example what no lifecycle can be built from.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from cvalue.errors import DataQualityError, SchemaError
from cvalue.io.schema import Columns
from cvalue.lifecycle.periods import BoolArray, IntArray
from cvalue.lifecycle.rules import ContractRule
from cvalue.purchases import (
    check_not_late,
    customer_codes,
    day_numbers,
    observation_day,
    purchase_days,
)
from cvalue.units import DateLike

__all__ = ["merge_contracts"]


@dataclass(frozen=True, slots=True)
class _Events:
    """Distinct (customer, day) activity, sorted, and each customer's lifecycle start."""

    customers: pd.Index
    codes: IntArray
    days: IntArray
    start_days: IntArray
    end_day: int


def _distinct(codes: IntArray, days: IntArray) -> tuple[IntArray, IntArray]:
    """The distinct (code, day) pairs, sorted by code then day."""
    low = int(days.min())
    span = int(days.max()) - low + 1
    key = codes * span
    key += days - low
    key.sort()  # in place: numpy's hash-based unique is several times slower on millions of keys
    key = key[_first_of_groups(key)]
    return key // span, key % span + low


def _first_of_groups(codes: IntArray) -> IntArray:
    """The index of the first element of each run of equal values of a sorted array."""
    is_first = np.empty(len(codes), dtype=bool)
    is_first[:1] = True
    np.not_equal(codes[1:], codes[:-1], out=is_first[1:])
    return np.flatnonzero(is_first)


def _shown(value: object) -> object:
    """A value as a message shows it: numpy scalars as plain Python values."""
    return value.item() if isinstance(value, np.generic) else value


def _acquisitions(customers: pd.DataFrame, column: str) -> tuple[pd.Index, IntArray]:
    """The customers table's ids (sorted) and acquisition days, checked."""
    if not isinstance(customers, pd.DataFrame) or column not in customers:
        found = list(customers.columns) if isinstance(customers, pd.DataFrame) else None
        raise SchemaError(
            f"customers must be a DataFrame indexed by customer id with a {column!r} column "
            f"(it has {found}); pass acquisition_column= to name another column"
        )
    if len(customers) == 0:
        raise DataQualityError("the customers table has no rows; pass customers=None instead")
    dates = customers[column]
    if not pd.api.types.is_datetime64_any_dtype(dates):
        raise SchemaError(
            f"column {column!r} of customers has dtype {dates.dtype}, not datetime; "
            "convert it with pandas.to_datetime"
        )
    problems = {
        "missing acquisition dates": dates.isna().to_numpy(),
        "duplicated customer ids": customers.index.duplicated(keep="first"),
    }
    for what, is_bad in problems.items():
        if is_bad.any():
            raise DataQualityError(
                f"customers: {what} in {int(is_bad.sum()):,} of {len(customers):,} rows (e.g. "
                f"customer {_shown(customers.index[int(np.argmax(is_bad))])!r}); fix or drop "
                "those rows"
            )
    order = np.argsort(customers.index.to_numpy(), kind="stable")
    return pd.Index(customers.index[order]), day_numbers(dates).take(order)


def _check_acquired_first(
    ids: pd.Index, acquired: IntArray, codes: IntArray, days: IntArray, column: str
) -> None:
    """Refuse activity before the customer's recorded acquisition date."""
    is_early = days < acquired[codes]
    n_early = int(is_early.sum())
    if n_early:
        row = int(np.argmax(is_early))
        example = pd.Timestamp(np.datetime64(int(days[row]), "D")).date()
        recorded = pd.Timestamp(np.datetime64(int(acquired[codes[row]]), "D")).date()
        n_customers = len(np.unique(codes[is_early]))
        raise DataQualityError(
            f"{column} has {n_early:,} of {len(days):,} rows before the customer's "
            f"acquisition_date, in {n_customers:,} customers (e.g. customer "
            f"{_shown(ids[codes[row]])!r}: "
            f"activity on {example}, acquired on {recorded}); correct the acquisition dates or "
            "the customer ids, or leave customers= out to start each lifecycle at the first "
            "activity"
        )


def _coded_with_table(
    ids_column: pd.Series, days: IntArray, customers: pd.DataFrame, column: str, what: str
) -> tuple[pd.Index, IntArray, IntArray]:
    """Codes into the customers table's ids, checked; ids, codes and acquisition days."""
    ids, acquired = _acquisitions(customers, column)
    codes = ids.get_indexer(pd.Index(ids_column)).astype(np.int64)
    is_unknown = codes < 0
    if is_unknown.any():
        raise DataQualityError(
            f"column {ids_column.name!r} has {int(is_unknown.sum()):,} of {len(codes):,} rows "
            f"whose customer is not in the customers table (e.g. customer "
            f"{_shown(ids_column.iloc[int(np.argmax(is_unknown))])!r}); add those customers with "
            "their acquisition dates, or leave customers= out"
        )
    _check_acquired_first(ids, acquired, codes, days, what)
    return ids, codes, acquired


def _check_end(days: IntArray, end_day: int, what: str) -> None:
    n_late = int(np.count_nonzero(days > end_day))
    if n_late:
        raise DataQualityError(
            f"{what} is after observation_end in {n_late:,} of {len(days):,} rows; pass a later "
            "observation_end or leave those rows out"
        )


def _transaction_events(
    transactions: pd.DataFrame,
    columns: Columns | None,
    customers: pd.DataFrame | None,
    acquisition_column: str,
    observation_end: DateLike | None,
) -> _Events:
    """Distinct purchase days (and acquisition days) per customer, checked."""
    resolved, buyers, days = purchase_days(transactions, columns)
    if len(days) == 0 and customers is None:
        raise DataQualityError("the transaction log has no purchases: there is no lifecycle")
    if customers is None:
        codes, ids = customer_codes(buyers)
        acquired = np.zeros(0, dtype=np.int64)
    else:
        ids, codes, acquired = _coded_with_table(
            buyers, days, customers, acquisition_column,
            f"column {resolved.timestamp!r}",
        )  # fmt: skip
        codes = np.concatenate([codes, np.arange(len(ids), dtype=np.int64)])
        days = np.concatenate([days, acquired])
    end_day = int(days.max()) if observation_end is None else observation_day(observation_end)
    check_not_late(days[: len(buyers)], end_day, resolved.timestamp)
    _check_end(acquired, end_day, f"the customers' {acquisition_column!r}")
    codes, days = _distinct(codes, days)
    return _Events(ids, codes, days, days[_first_of_groups(codes)], end_day)


@dataclass(frozen=True, slots=True)
class _Spans:
    """Merged contract spells: customer code, first and last day (last clipped to the end)."""

    customers: pd.Index
    codes: IntArray
    first_days: IntArray
    last_days: IntArray
    end_day: int


def _contract_days(
    contracts: pd.DataFrame, rule: ContractRule
) -> tuple[IntArray, IntArray, BoolArray]:
    """Start and end days of each contract and whether it has no end; checked."""
    if not isinstance(contracts, pd.DataFrame):
        raise SchemaError(f"contracts must be a pandas DataFrame, got {type(contracts).__name__}")
    names = (rule.customer_id, rule.start, rule.end)
    missing = [name for name in names if name not in contracts]
    if missing:
        raise SchemaError(
            f"column(s) {missing} not found; the contracts have {list(contracts.columns)}. "
            "Pass rule=ContractRule(customer_id=..., start=..., end=...)"
        )
    for name in names[1:]:
        if not pd.api.types.is_datetime64_any_dtype(contracts[name]):
            raise SchemaError(
                f"column {name!r} has dtype {contracts[name].dtype}, not datetime; convert it "
                "with pandas.to_datetime (a missing end means the contract is still running)"
            )
    is_missing = (contracts[rule.customer_id].isna() | contracts[rule.start].isna()).to_numpy()
    if is_missing.any():
        raise DataQualityError(
            f"columns {[rule.customer_id, rule.start]!r} have missing values in "
            f"{int(is_missing.sum()):,} of {len(contracts):,} contracts; every contract needs a "
            "customer and a start date"
        )
    is_open = contracts[rule.end].isna().to_numpy()
    starts, ends = day_numbers(contracts[rule.start]), day_numbers(contracts[rule.end])
    _check_contract_order(contracts, rule, starts, np.where(is_open, starts, ends))
    return starts, np.where(is_open, starts, ends), is_open


def _check_contract_order(contracts: pd.DataFrame, rule: ContractRule, starts: IntArray,
                          ends: IntArray) -> None:  # fmt: skip
    is_reversed = ends < starts
    n_reversed = int(is_reversed.sum())
    if n_reversed:
        row = int(np.argmax(is_reversed))
        raise DataQualityError(
            f"column {rule.end!r} is before {rule.start!r} in {n_reversed:,} of "
            f"{len(contracts):,} contracts (e.g. customer "
            f"{_shown(contracts[rule.customer_id].iloc[row])!r}: "
            f"{contracts[rule.start].iloc[row].date()} to {contracts[rule.end].iloc[row].date()}); "
            "swap or correct those dates"
        )


@dataclass(frozen=True, slots=True)
class _Merged:
    """Merged spells: customer code, first and last day, and whether a contract has no end."""

    codes: IntArray
    first_days: IntArray
    last_days: IntArray
    is_open: BoolArray


def _merged(codes: IntArray, starts: IntArray, ends: IntArray, is_open: BoolArray) -> _Merged:
    """Merge overlapping and back-to-back spells (a start the day after an end continues it).

    Ends are inclusive days. Spells come sorted by customer and start.
    """
    order = np.lexsort((starts, codes))
    codes, starts = codes[order], starts[order]
    if len(codes) == 0:
        return _Merged(codes, starts, starts, np.zeros(0, dtype=bool))
    low = int(min(starts.min(), ends.min()))
    open_end = int(max(starts.max(), ends.max())) + 1  # later than every start: never a gap
    ends = np.where(is_open, open_end, ends)[order] - low
    # a running maximum of the end within each customer: customers are sorted, so adding
    # code * width keeps each customer's ends above every earlier customer's
    width = open_end - low + 1
    running = np.maximum.accumulate(codes * width + ends) - codes * width
    is_new = np.ones(len(codes), dtype=bool)
    is_new[1:] = (codes[1:] != codes[:-1]) | (starts[1:] - low > running[:-1] + 1)
    last_of_spell = np.append(np.flatnonzero(is_new)[1:] - 1, len(codes) - 1)
    lasts = running[last_of_spell] + low
    firsts = np.flatnonzero(is_new)
    return _Merged(codes[firsts], starts[firsts], lasts, lasts >= open_end)


def _contract_spans(
    contracts: pd.DataFrame,
    rule: ContractRule,
    customers: pd.DataFrame | None,
    acquisition_column: str,
    observation_end: DateLike | None,
) -> tuple[_Spans, IntArray]:
    """Merged contract spells, checked, and each customer's lifecycle start day."""
    starts, ends, is_open = _contract_days(contracts, rule)
    ids_column = contracts[rule.customer_id]
    if customers is None:
        if len(starts) == 0:
            raise DataQualityError("the contracts table has no rows: there is no lifecycle")
        codes, ids = customer_codes(ids_column)
        start_days = np.full(len(ids), np.iinfo(np.int64).max)
        np.minimum.at(start_days, codes, starts)
    else:
        ids, codes, start_days = _coded_with_table(
            ids_column, starts, customers, acquisition_column, f"column {rule.start!r}"
        )
    latest = int(max(starts.max(initial=start_days.max()), start_days.max()))
    end_day = latest if observation_end is None else observation_day(observation_end)
    _check_end(starts, end_day, f"column {rule.start!r}")
    _check_end(start_days, end_day, f"the customers' {acquisition_column!r}")
    merged = _merged(codes, starts, ends, is_open)
    last_days = np.where(merged.is_open, end_day, np.minimum(merged.last_days, end_day))
    return _Spans(ids, merged.codes, merged.first_days, last_days, end_day), start_days


def merge_contracts(contracts: pd.DataFrame, rule: ContractRule | None = None) -> pd.DataFrame:
    """Merge each customer's overlapping and back-to-back contracts into spells.

    Two contracts belong to one spell when the second starts on or before the day after the
    first one's end (the latest end so far, so a long contract swallows shorter ones inside it).

    Parameters
    ----------
    contracts
        One row per contract: customer, start date and end date (the last day covered; missing
        while the contract runs).
    rule
        The column names; ``ContractRule()`` (``customer_id``, ``start``, ``end``) by default.

    Returns
    -------
    pandas.DataFrame
        One row per spell, sorted by customer and start: the customer, ``start`` and ``end``
        (missing when a contract of the spell has no end), under the table's column names.

    Raises
    ------
    DataQualityError
        Missing customers or starts, or contracts ending before they start (with their count).

    Examples
    --------
    >>> contracts = pd.DataFrame({
    ...     "customer_id": [1, 1, 1, 2],
    ...     "start": pd.to_datetime(["2024-01-01", "2024-02-01", "2024-06-01", "2024-03-01"]),
    ...     "end": pd.to_datetime(["2024-01-31", "2024-04-30", "2024-06-30", None])})
    >>> merge_contracts(contracts)
       customer_id      start        end
    0            1 2024-01-01 2024-04-30
    1            1 2024-06-01 2024-06-30
    2            2 2024-03-01        NaT
    """
    rule = rule or ContractRule()
    starts, ends, is_open = _contract_days(contracts, rule)
    codes, ids = customer_codes(contracts[rule.customer_id])
    merged = _merged(codes, starts, ends, is_open)
    end_dates = pd.Series(np.where(merged.is_open, 0, merged.last_days).astype("datetime64[D]"))
    return pd.DataFrame({
        rule.customer_id: ids.take(merged.codes),
        rule.start: pd.Series(merged.first_days.astype("datetime64[D]")).astype("datetime64[ns]"),
        rule.end: end_dates.astype("datetime64[ns]").where(~merged.is_open),
    })  # fmt: skip
