"""Purchases as integers: day numbers, customer codes and calendar grains.

The first step that the customer summary, the lifecycle, profitability and the report's
tracking plot share: a transaction log's purchases (returns left out) as each customer's dense
code and each purchase's calendar day (days since 1970-01-01, in the timestamp's own wall-clock
time), checked as :func:`cvalue.validate_transactions` would check them, and the calendar
grain (day, Monday-based week, month, quarter, year) of a day.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import numpy.typing as npt
import pandas as pd

from cvalue.errors import DataQualityError, SchemaError
from cvalue.io.schema import Columns
from cvalue.units import EPOCH_WEEKDAY_SHIFT, DateLike, TimeUnit, as_timestamp

__all__ = [
    "check_clean",
    "check_not_late",
    "customer_codes",
    "day_numbers",
    "grain_first_day",
    "grain_index",
    "observation_day",
    "purchase_days",
    "purchase_rows",
    "resolve_columns",
]

_DENSE_ID_FACTOR = 4  # integer ids this dense are coded by direct addressing
_MONTHS_PER_GRAIN = {TimeUnit.MONTH: 1, TimeUnit.QUARTER: 3, TimeUnit.YEAR: 12}


def day_numbers(timestamps: pd.Series) -> npt.NDArray[np.int64]:
    """Calendar day of each timestamp in its own wall-clock time, as days since 1970-01-01."""
    values = timestamps
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        values = values.dt.tz_localize(None)
    array = values.to_numpy()
    if array.dtype.kind != "M":
        array = array.astype("datetime64[ns]")
    resolution = np.datetime_data(array.dtype)[0]
    per_day = int(np.timedelta64(1, "D") // np.timedelta64(1, resolution))  # type: ignore[call-overload]
    days: npt.NDArray[np.int64] = np.floor_divide(array.view(np.int64), per_day)
    return days


def customer_codes(ids: pd.Series) -> tuple[npt.NDArray[np.int64], pd.Index]:
    """Dense codes 0..n-1 of the customers in sorted id order, and the sorted ids.

    Integer ids spread over a range not much wider than the log (the usual CRM key) are coded
    by direct addressing, which needs neither a hash table nor a sort.
    """
    values = ids.to_numpy()
    if values.dtype.kind in "iu" and len(values):
        low = values.min()
        width = int(values.max()) - int(low) + 1
        if width <= _DENSE_ID_FACTOR * len(values):
            offsets = (values - low).astype(np.int64, copy=False)
            present = np.zeros(width, dtype=bool)
            present[offsets] = True
            rank = np.cumsum(present, dtype=np.int64) - 1
            uniques = (np.flatnonzero(present) + low).astype(values.dtype)
            return rank[offsets], pd.Index(uniques)
    codes, uniques = pd.factorize(ids, sort=True)
    return codes.astype(np.int64, copy=False), pd.Index(uniques)


def grain_index(days: npt.NDArray[np.int64], grain: TimeUnit) -> npt.NDArray[np.int64]:
    """The grain (calendar period) of each day number, counted from the epoch's grain."""
    if grain is TimeUnit.DAY:
        return days
    if grain is TimeUnit.WEEK:
        return np.floor_divide(days + EPOCH_WEEKDAY_SHIFT, 7)
    months = days.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
    return np.floor_divide(months, _MONTHS_PER_GRAIN[grain])


def grain_first_day(index: npt.NDArray[np.int64], grain: TimeUnit) -> npt.NDArray[np.int64]:
    """The day number of the first day of each grain."""
    if grain is TimeUnit.DAY:
        return index
    if grain is TimeUnit.WEEK:
        return index * 7 - EPOCH_WEEKDAY_SHIFT
    months = (index * _MONTHS_PER_GRAIN[grain]).astype("datetime64[M]")
    return months.astype("datetime64[D]").astype(np.int64)


def resolve_columns(transactions: object, columns: Columns | None) -> Columns:
    """The columns of each role in a transaction log, detected unless given, checked present."""
    if not isinstance(transactions, pd.DataFrame):
        raise SchemaError(
            f"transactions must be a pandas DataFrame, got {type(transactions).__name__}; "
            "read files and databases with cvalue.read_transactions"
        )
    columns = columns or Columns.detect(transactions.columns)
    required = (columns.customer_id, columns.timestamp, columns.is_return)
    missing = [c for c in required if c is not None and c not in transactions]
    if missing:
        raise SchemaError(
            f"column(s) {missing} not found; the transactions have {list(transactions.columns)}. "
            "Pass columns=cvalue.Columns(customer_id=..., timestamp=..., amount=...)"
        )
    if columns.amount is not None and columns.amount not in transactions:
        columns = Columns(
            customer_id=columns.customer_id,
            timestamp=columns.timestamp,
            amount=None,
            is_return=columns.is_return,
        )
    return columns


def purchase_rows(transactions: pd.DataFrame, columns: Columns) -> pd.DataFrame:
    """The rows that are purchases, in the columns of ``columns`` only.

    Returns are not purchase occasions and do not count. Selecting the columns first keeps the
    filter from copying the log's other columns (categories, channels: strings, mostly).
    """
    roles = (columns.customer_id, columns.timestamp, columns.amount, columns.is_return)
    wanted = list(dict.fromkeys(name for name in roles if name is not None))
    if len(wanted) < transactions.shape[1]:
        transactions = transactions[wanted]
    if columns.is_return is None:
        return transactions
    flags = transactions[columns.is_return]
    if not pd.api.types.is_bool_dtype(flags.dtype) or flags.isna().any():
        raise SchemaError(
            f"column {columns.is_return!r} must be true/false without gaps; "
            "run cvalue.validate_transactions first (it reads yes/no, 1/0 and true/false)"
        )
    return transactions[~flags.to_numpy(dtype=bool)] if flags.any() else transactions


def purchase_days(
    transactions: pd.DataFrame, columns: Columns | None
) -> tuple[Columns, pd.Series, npt.NDArray[np.int64]]:
    """The resolved columns, and each purchase's customer id and day number, checked.

    What the lifecycle and the tracking plot read: amounts are neither copied nor checked.
    """
    resolved = resolve_columns(transactions, columns)
    dated = dataclasses.replace(resolved, amount=None)
    purchases = purchase_rows(transactions, dated)
    days, _ = check_clean(purchases, dated)
    return resolved, purchases[resolved.customer_id], days


def check_clean(
    transactions: pd.DataFrame, columns: Columns
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64] | None]:
    """Refuse data that ``validate_transactions`` would reject; return day numbers and amounts."""
    timestamps = transactions[columns.timestamp]
    if not pd.api.types.is_datetime64_any_dtype(timestamps):
        raise SchemaError(
            f"column {columns.timestamp!r} has dtype {timestamps.dtype}, not datetime; "
            "run cvalue.validate_transactions first (it parses and checks timestamps)"
        )
    problems = {
        columns.customer_id: ("missing customer ids", transactions[columns.customer_id].isna()),
        columns.timestamp: ("missing timestamps", timestamps.isna()),
    }
    amounts = None
    if columns.amount is not None:
        numbers = pd.to_numeric(transactions[columns.amount], errors="coerce")
        problems[columns.amount] = ("missing or non-numeric amounts", numbers.isna())
        amounts = numbers.to_numpy(dtype=np.float64)
    for column, (what, is_bad) in problems.items():
        n_bad = int(is_bad.sum())
        if n_bad:
            raise DataQualityError(
                f"column {column!r} has {what} in {n_bad:,} of {len(transactions):,} rows "
                f"(e.g. row {is_bad.idxmax()!r}); run cvalue.validate_transactions to reject "
                "them with reasons before summarising"
            )
    return day_numbers(timestamps), amounts


def check_not_late(days: npt.NDArray[np.int64], end_day: int, column: str) -> None:
    """Refuse purchases after the observation end, counting them."""
    n_late = int(np.count_nonzero(days > end_day))
    if n_late:
        raise DataQualityError(
            f"column {column!r} has {n_late:,} of {len(days):,} rows after "
            "observation_end; pass a later observation_end, or split the log with "
            "cvalue.calibration_holdout"
        )


def observation_day(observation_end: DateLike, name: str = "observation_end") -> int:
    """The day number of an observation end (or any date), in its own wall-clock time."""
    end = as_timestamp(observation_end, name)
    return int(day_numbers(pd.Series([end.tz_localize(None) if end.tz else end])).item())
