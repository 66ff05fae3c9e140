"""Per-customer sufficient statistics: the RFM summary, calibration/holdout splits, compression.

Two notions of time are kept apart:

- the **grain** is where purchases merge: all purchases of a customer in one grain (a calendar
  day by default) count as one transaction, with their amounts summed;
- the **unit** is what ``recency`` and ``T`` are measured in.

When grain and unit are the same calendar period (``grain="month", unit="month"``), recency and T
are whole numbers of periods, as discrete-time models need. Otherwise they are the exact number of
days between the grains' first days divided by the unit's length in days (a week is 7 days, a
month 365.2425 / 12). CDNOW's published summary is grain day, unit week, the same as lifetimes'
``summary_data_from_transaction_data(..., freq="D", freq_multiplier=7)``.

Columns of a summary, as in lifetimes and the papers (Fader, Hardie & Lee 2005):

- ``frequency`` (x): number of grains with a purchase after the first one (repeat purchases);
- ``recency`` (t_x): time from the first to the last purchase;
- ``T``: time from the first purchase to the observation end;
- ``monetary_value``: mean value of the repeat purchases (0 for customers with none).

Returns (rows flagged ``is_return``) are not purchase occasions: they do not count in frequency,
recency or monetary value. What they cost is a matter for value and segment analyses.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
import pandas as pd

from cvalue.errors import DataQualityError, SchemaError
from cvalue.io.schema import Columns
from cvalue.units import EPOCH_WEEKDAY_SHIFT, DateLike, Grain, TimeUnit, as_time_unit, as_timestamp

__all__ = [
    "SUMMARY_COLUMNS",
    "Compressed",
    "calibration_holdout",
    "compress",
    "rfm_summary",
]

SUMMARY_COLUMNS = ("frequency", "recency", "T")
_DENSE_ID_FACTOR = 4  # integer ids this dense are coded by direct addressing
# compress: direct-address tables up to this many entries, or a few per row, stand in for hashing
_TABLE_ENTRIES = 1 << 23
_TABLE_ENTRIES_PER_ROW = 32
_GRID_PROBE = 64  # compress: rows (spread over the column) tried on a grid before a full pass
# compress: floats that are whole units, or whole days of a unit (recency and T of rfm_summary)
_GRID_SCALES = (1.0, *(unit.days for unit in TimeUnit if unit.days != 1.0))
_MONTHS_PER_GRAIN = {TimeUnit.MONTH: 1, TimeUnit.QUARTER: 3, TimeUnit.YEAR: 12}


@dataclass(frozen=True, slots=True)
class _Periods:
    """Grain indices of timestamps and the first day of each grain (days since 1970-01-01)."""

    index: npt.NDArray[np.int64]
    first_day: npt.NDArray[np.int64]


def _day_numbers(timestamps: pd.Series) -> npt.NDArray[np.int64]:
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


def _customer_codes(ids: pd.Series) -> tuple[npt.NDArray[np.int64], pd.Index]:
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


def _grain_index(days: npt.NDArray[np.int64], grain: TimeUnit) -> npt.NDArray[np.int64]:
    """The grain (calendar period) of each day number, counted from the epoch's grain."""
    if grain is TimeUnit.DAY:
        return days
    if grain is TimeUnit.WEEK:
        return np.floor_divide(days + EPOCH_WEEKDAY_SHIFT, 7)
    months = days.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
    return np.floor_divide(months, _MONTHS_PER_GRAIN[grain])


def _grain_first_day(index: npt.NDArray[np.int64], grain: TimeUnit) -> npt.NDArray[np.int64]:
    """The day number of the first day of each grain."""
    if grain is TimeUnit.DAY:
        return index
    if grain is TimeUnit.WEEK:
        return index * 7 - EPOCH_WEEKDAY_SHIFT
    months = (index * _MONTHS_PER_GRAIN[grain]).astype("datetime64[M]")
    return months.astype("datetime64[D]").astype(np.int64)


def _periods(days: npt.NDArray[np.int64], grain: TimeUnit) -> _Periods:
    """Map day numbers to grain indices and each grain's first day."""
    index = _grain_index(days, grain)
    return _Periods(index, _grain_first_day(index, grain))


def _elapsed(
    start: _Periods, end: _Periods, grain: TimeUnit, unit: TimeUnit
) -> npt.NDArray[np.float64]:
    """Time from ``start`` to ``end`` grains in ``unit``: whole periods when grain is the unit."""
    if grain is unit:
        return (end.index - start.index).astype(np.float64)
    return (end.first_day - start.first_day) / unit.days


def _resolve_columns(transactions: object, columns: Columns | None) -> Columns:
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


def _purchases(transactions: pd.DataFrame, columns: Columns) -> pd.DataFrame:
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


def _purchase_days(
    transactions: pd.DataFrame, columns: Columns | None
) -> tuple[Columns, pd.Series, npt.NDArray[np.int64]]:
    """The resolved columns, and each purchase's customer id and day number, checked.

    What the lifecycle and the tracking plot read: amounts are neither copied nor checked.
    """
    resolved = _resolve_columns(transactions, columns)
    dated = dataclasses.replace(resolved, amount=None)
    purchases = _purchases(transactions, dated)
    days, _ = _check_clean(purchases, dated)
    return resolved, purchases[resolved.customer_id], days


def _check_clean(
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
    return _day_numbers(timestamps), amounts


def _check_not_late(days: npt.NDArray[np.int64], end_day: int, column: str) -> None:
    n_late = int(np.count_nonzero(days > end_day))
    if n_late:
        raise DataQualityError(
            f"column {column!r} has {n_late:,} of {len(days):,} rows after "
            "observation_end; pass a later observation_end, or split the log with "
            "cvalue.calibration_holdout"
        )


def _end_day(observation_end: DateLike, name: str = "observation_end") -> int:
    end = as_timestamp(observation_end, name)
    return int(_day_numbers(pd.Series([end.tz_localize(None) if end.tz else end])).item())


def _summarise(
    codes: npt.NDArray[np.int64],
    n_customers: int,
    days: npt.NDArray[np.int64],
    amounts: npt.NDArray[np.float64] | None,
    end_day: int,
    grain: TimeUnit,
    unit: TimeUnit,
) -> dict[str, npt.NDArray[np.generic]]:
    """The summary columns of customers ``0 .. n_customers - 1`` from per-row codes and days.

    First and last grains come from ``minimum.at``/``maximum.at``, distinct grains from one
    in-place sort of a (customer, grain) key, sums from ``bincount``: a few arrays of the log's
    length at most, and no hash table.
    """
    index = _grain_index(days, grain)
    first_index = np.full(n_customers, np.iinfo(np.int64).max)
    np.minimum.at(first_index, codes, index)
    last_index = np.full(n_customers, np.iinfo(np.int64).min)
    np.maximum.at(last_index, codes, index)
    lowest = int(first_index.min())
    span = int(last_index.max()) - lowest + 1
    key = codes * span
    key += index
    key -= lowest
    key.sort()
    is_new = np.empty(len(key), dtype=bool)
    is_new[0] = True
    np.not_equal(key[1:], key[:-1], out=is_new[1:])
    frequency = np.bincount(key[is_new] // span, minlength=n_customers).astype(np.int64) - 1
    del key, is_new
    first = _Periods(first_index, _grain_first_day(first_index, grain))
    last = _Periods(last_index, _grain_first_day(last_index, grain))
    end = _periods(np.full(n_customers, end_day, dtype=np.int64), grain)
    result: dict[str, npt.NDArray[np.generic]] = {
        "frequency": frequency,
        "recency": _elapsed(first, last, grain, unit),
        "T": _elapsed(first, end, grain, unit),
    }
    if amounts is not None:
        is_repeat = index != first_index[codes]
        repeat_totals = np.bincount(
            codes, weights=np.where(is_repeat, amounts, 0.0), minlength=n_customers
        )
        with np.errstate(invalid="ignore", divide="ignore"):  # 0 / 0 for one-time buyers
            result["monetary_value"] = np.where(frequency > 0, repeat_totals / frequency, 0.0)
    return result


def rfm_summary(
    transactions: pd.DataFrame,
    *,
    observation_end: DateLike | None = None,
    unit: TimeUnit | str = TimeUnit.WEEK,
    grain: Grain | TimeUnit = "day",
    columns: Columns | None = None,
) -> pd.DataFrame:
    """Summarise a transaction log into frequency, recency, T and monetary value per customer.

    Parameters
    ----------
    transactions
        A transaction log, typically ``validate_transactions(...).clean``.
    observation_end
        The end of the observation period (date-like). Defaults to the last purchase's day.
        Purchases after it are an error: split the log with :func:`calibration_holdout`.
    unit
        The unit of ``recency`` and ``T`` (``"day"``, ``"week"``, ``"month"``, ...).
    grain
        The calendar period within which a customer's purchases merge into one.
    columns
        Which columns hold the customer id, timestamp, amount and returns flag. By default the
        canonical names, with ``is_return`` used when the frame has it.

    Returns
    -------
    pandas.DataFrame
        Indexed by customer id (sorted), with ``frequency``, ``recency``, ``T`` and, when the
        log has amounts, ``monetary_value``.

    Examples
    --------
    >>> log = pd.DataFrame({"customer_id": [1, 1, 1, 2],
    ...                     "timestamp": pd.to_datetime(["2024-01-01", "2024-01-01",
    ...                                                  "2024-01-15", "2024-01-08"]),
    ...                     "amount": [10.0, 5.0, 20.0, 7.0]})
    >>> rfm_summary(log, observation_end="2024-01-29")
                 frequency  recency    T  monetary_value
    customer_id
    1                    1      2.0  4.0            20.0
    2                    0      0.0  3.0             0.0
    """
    columns = _resolve_columns(transactions, columns)
    unit, grain_unit = as_time_unit(unit), as_time_unit(grain)
    transactions = _purchases(transactions, columns)
    if len(transactions) == 0:
        raise DataQualityError(
            "the transaction log has no purchases: there is nothing to summarise"
        )
    end_day = None if observation_end is None else _end_day(observation_end)
    days, amounts = _check_clean(transactions, columns)
    if end_day is None:
        end_day = int(days.max())
    _check_not_late(days, end_day, columns.timestamp)
    codes, customers = _customer_codes(transactions[columns.customer_id])
    values = _summarise(codes, len(customers), days, amounts, end_day, grain_unit, unit)
    summary = pd.DataFrame(values, index=customers.rename(columns.customer_id))
    summary.attrs["unit"] = unit.value  # models read the time unit of recency and T from here
    return summary


def calibration_holdout(
    transactions: pd.DataFrame,
    *,
    calibration_end: DateLike,
    observation_end: DateLike,
    unit: TimeUnit | str = TimeUnit.WEEK,
    grain: Grain | TimeUnit = "day",
    columns: Columns | None = None,
) -> pd.DataFrame:
    """Split a log into a calibration summary and what each customer did in the holdout.

    The calibration part is :func:`rfm_summary` of the purchases up to ``calibration_end``, for
    the customers whose first purchase falls in it (the cohort a model is fitted on). Customers
    whose first purchase is in the holdout are not part of that cohort; their number is in
    ``result.attrs["n_new_in_holdout"]``.

    Returns
    -------
    pandas.DataFrame
        The calibration columns plus ``frequency_holdout`` (grains with a purchase in
        ``(calibration_end, observation_end]``), ``monetary_value_holdout`` (their mean value,
        when the log has amounts) and ``duration_holdout`` (the holdout's length in ``unit``).
    """
    columns = _resolve_columns(transactions, columns)
    unit, grain_unit = as_time_unit(unit), as_time_unit(grain)
    calibration_day = _end_day(calibration_end, "calibration_end")
    end_day = _end_day(observation_end)
    if calibration_day >= end_day:
        raise SchemaError(
            f"calibration_end ({calibration_end}) must be before observation_end "
            f"({observation_end})"
        )
    transactions = _purchases(transactions, columns)
    days, _ = _check_clean(transactions, columns)
    _check_not_late(days, end_day, columns.timestamp)
    is_calibration = days <= calibration_day
    calibration = rfm_summary(
        transactions[is_calibration],
        observation_end=calibration_end,
        unit=unit,
        grain=grain_unit,
        columns=columns,
    )
    holdout_rows = transactions[~is_calibration]
    codes = calibration.index.get_indexer(pd.Index(holdout_rows[columns.customer_id]))
    is_known = codes >= 0
    holdout = _holdout_counts(
        codes[is_known], days[~is_calibration][is_known], holdout_rows, is_known, columns,
        len(calibration), grain_unit,
    )  # fmt: skip
    result = calibration.assign(**holdout)
    end = _periods(np.array([end_day]), grain_unit)
    start = _periods(np.array([calibration_day]), grain_unit)
    result["duration_holdout"] = float(_elapsed(start, end, grain_unit, unit)[0])
    new_customers = pd.unique(holdout_rows[columns.customer_id][~is_known])
    result.attrs["n_new_in_holdout"] = len(new_customers)
    return result


def _holdout_counts(
    codes: npt.NDArray[np.intp],
    days: npt.NDArray[np.int64],
    holdout_rows: pd.DataFrame,
    is_known: npt.NDArray[np.bool_],
    columns: Columns,
    n_customers: int,
    grain: TimeUnit,
) -> dict[str, npt.NDArray[np.generic]]:
    """Distinct holdout grains per calibration customer, and their mean value."""
    counts: dict[str, npt.NDArray[np.generic]] = {}
    if len(codes) == 0:
        counts["frequency_holdout"] = np.zeros(n_customers, dtype=np.int64)
        if columns.amount is not None:
            counts["monetary_value_holdout"] = np.zeros(n_customers)
        return counts
    index = _periods(days, grain).index
    key = codes.astype(np.int64) * (int(index.max() - index.min()) + 1) + (index - index.min())
    first_row = np.unique(key, return_index=True)[1]
    n_grains = np.bincount(codes[first_row], minlength=n_customers)
    counts["frequency_holdout"] = n_grains.astype(np.int64)
    if columns.amount is not None:
        amounts = pd.to_numeric(holdout_rows[columns.amount]).to_numpy(np.float64)[is_known]
        totals = np.bincount(codes, weights=amounts, minlength=n_customers)
        with np.errstate(invalid="ignore", divide="ignore"):  # 0 / 0 without holdout purchases
            counts["monetary_value_holdout"] = np.where(n_grains > 0, totals / n_grains, 0.0)
    return counts


class Compressed(NamedTuple):
    """Distinct patterns of a summary, how many customers share each, and the map back.

    ``patterns.iloc[inverse]`` restores the summary's rows (in its order) and
    ``weights.sum()`` is the number of customers.
    """

    patterns: pd.DataFrame
    weights: npt.NDArray[np.int64]
    inverse: npt.NDArray[np.intp]

    def expand(self, index: pd.Index | None = None) -> pd.DataFrame:
        """The uncompressed rows, optionally re-indexed by ``index``."""
        rows = self.patterns.iloc[self.inverse].reset_index(drop=True)
        if index is not None:
            rows.index = index
        return rows


def compress(summary: pd.DataFrame, columns: tuple[str, ...] = SUMMARY_COLUMNS) -> Compressed:
    """Collapse customers with identical ``columns`` into weighted patterns.

    Models fit on the patterns with their weights, so a million customers cost what their
    distinct patterns cost. Patterns come sorted by ``columns``.

    Each column is coded by its distinct values (by arithmetic when they lie on a grid, such as
    whole days in weeks, by hashing otherwise), and the codes are merged one column at a time,
    by direct addressing while the combined codes are few: no multi-column sort or hash.

    Examples
    --------
    >>> cbs = pd.DataFrame({"frequency": [0, 1, 0], "recency": [0.0, 2.0, 0.0],
    ...                     "T": [5.0, 5.0, 5.0]})
    >>> patterns, weights, inverse = compress(cbs)
    >>> weights.tolist(), inverse.tolist()
    ([2, 1], [0, 1, 0])
    """
    patterns, inverse = _distinct_rows(summary, columns)
    weights = np.bincount(inverse, minlength=len(patterns[columns[0]])).astype(np.int64)
    return Compressed(pd.DataFrame(patterns), weights, inverse)


def _distinct_rows(
    summary: pd.DataFrame, columns: tuple[str, ...]
) -> tuple[dict[str, pd.Index], npt.NDArray[np.intp]]:
    """:func:`compress` without the weights: each column of the sorted patterns, each row's."""
    missing = [c for c in columns if c not in summary]
    if missing:
        raise SchemaError(
            f"column(s) {missing} not found; the summary has {list(summary.columns)}. "
            "Build it with cvalue.rfm_summary"
        )
    if len(summary) == 0:
        raise DataQualityError("the summary has no rows: there is nothing to compress")
    coded = [_column_codes(summary[c]) for c in columns]
    is_missing = np.zeros(len(summary), dtype=bool)
    for column in coded:
        if column.has_missing:
            is_missing |= column.codes < 0
    n_missing = int(np.count_nonzero(is_missing))
    if n_missing:
        raise DataQualityError(
            f"{n_missing:,} of {len(summary):,} summary rows have missing values in {list(columns)}"
        )
    inverse, pattern_codes = _merged_codes(coded)
    per_column = zip(columns, coded, pattern_codes, strict=True)
    return {c: column.levels.take(codes) for c, column, codes in per_column}, inverse


class _Coded(NamedTuple):
    """A column as codes into sorted ``levels`` (``levels[codes]`` is the column; -1: missing).

    ``levels`` may hold values that no row has (a grid's gaps); merging drops them.
    """

    codes: npt.NDArray[np.intp]
    levels: pd.Index
    has_missing: bool


def _column_codes(column: pd.Series) -> _Coded:
    """Codes of a column's values, in their sorted order.

    Integers in a range that :func:`_fits_table` are coded by their offset from the minimum
    (or are their own codes when they start at 0 or above); floats that are whole
    multiples of ``1 / scale`` for a scale in ``_GRID_SCALES`` (whole units, or whole days in a
    week, month, quarter or year, as :func:`rfm_summary` makes them) are coded the same way
    from ``rint(value * scale)``; anything else, extension dtypes included (which keep their
    dtype), is hashed by ``pandas.factorize``.
    """
    if isinstance(column.dtype, np.dtype) and len(column):
        values = column.to_numpy()
        coded = None
        if values.dtype.kind in "iu":
            coded = _integer_codes(values)
        elif values.dtype == np.float64:
            coded = _grid_codes(values)
        if coded is not None:
            return coded
    codes, uniques = pd.factorize(column, sort=True)
    return _Coded(codes.astype(np.intp, copy=False), pd.Index(uniques), bool((codes < 0).any()))


def _fits_table(n_entries: float, n_rows: int) -> bool:
    """Whether a direct-address table of ``n_entries`` costs less than hashing ``n_rows`` rows.

    Scanning a table costs about a hundredth of hashing a row, and its memory is bounded.
    """
    return n_entries <= min(_TABLE_ENTRIES, max(_TABLE_ENTRIES_PER_ROW * n_rows, 1 << 16))


def _integer_codes(values: npt.NDArray[np.integer]) -> _Coded | None:
    """Codes of integers by their offset, or None when their range is too wide for a table."""
    low, high = int(values.min()), int(values.max())
    if not _fits_table(high - low + 1, len(values)):
        return None
    origin = _origin(low, high, len(values))
    codes = values - origin if origin else values
    levels = np.arange(origin, high + 1).astype(values.dtype)
    return _Coded(codes.astype(np.intp, copy=False), pd.Index(levels), has_missing=False)


def _origin(low: float, high: float, n_rows: int) -> float:
    """The value that gets code 0: 0 when codes can be the values themselves, else the minimum."""
    return 0 if low >= 0 and _fits_table(high + 1, n_rows) else low


def _probed_scales(
    values: npt.NDArray[np.float64], scales: Sequence[float] = _GRID_SCALES
) -> Iterator[float]:
    """The ``scales``, in order, on whose grid (multiples of ``1 / scale``) a probe lies.

    The probe is about ``_GRID_PROBE`` rows spread over ``values``: it rules out most scales
    before any full pass, which must still check every row.
    """
    probe = values[:: max(1, len(values) // _GRID_PROBE)]
    return (scale for scale in scales if np.array_equal(np.rint(probe * scale) / scale, probe))


def _grid_codes(values: npt.NDArray[np.float64]) -> _Coded | None:
    """Codes of floats on a grid of step ``1 / scale``, or None when they are on none.

    ``k = rint(value * scale)`` codes the value exactly when ``k / scale == value`` for every
    row: the code then determines the value, and it is monotone in it. About ``_GRID_PROBE``
    rows spread over the column rule out most scales before any full pass. NaN and infinities
    fail the range test before any cast to integers.
    """
    for scale in _probed_scales(values):
        steps = values * scale
        np.rint(steps, out=steps)
        low, high = float(steps.min()), float(steps.max())
        if not _fits_table(high - low + 1, len(values)):  # also NaN and infinite bounds
            return None
        origin = _origin(low, high, len(values))
        codes = (steps - origin if origin else steps).astype(np.intp)
        np.divide(steps, scale, out=steps)
        if np.array_equal(steps, values):
            levels = (np.arange(int(high - origin) + 1) + origin) / scale
            return _Coded(codes, pd.Index(levels), has_missing=False)
    return None


def _merged_codes(
    coded: list[_Coded],
) -> tuple[npt.NDArray[np.intp], list[npt.NDArray[np.intp]]]:
    """Codes of the distinct rows of several coded columns, sorted, and each pattern's codes.

    Columns join one at a time: ``key = previous * size + codes`` is ordered like the rows'
    values, and :func:`_distinct_keys` turns it into dense codes again, so keys stay small.
    """
    codes: npt.NDArray[np.integer] = coded[0].codes
    size = len(coded[0].levels)
    pattern_codes = [np.arange(size, dtype=np.intp)]
    for column in coded[1:]:
        width = len(column.levels)
        key = np.multiply(codes, width, dtype=np.int64)
        key += column.codes
        distinct, codes = _distinct_keys(key, size * width)
        previous, own = np.divmod(distinct, width)
        pattern_codes = [*(c[previous] for c in pattern_codes), own.astype(np.intp)]
        size = len(distinct)
    if len(coded) == 1:  # a single column: drop the levels no row has
        distinct, codes = _distinct_keys(codes.astype(np.int64), size)
        pattern_codes = [distinct.astype(np.intp)]
    return codes.astype(np.intp, copy=False), pattern_codes


def _distinct_keys(
    key: npt.NDArray[np.int64], n_keys: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.integer]]:
    """The sorted distinct keys in ``[0, n_keys)`` and each row's position among them.

    When the possible keys :func:`_fits_table`, a table of them marks the keys seen and maps
    them to their rank; int32 positions halve the random reads. Otherwise keys are hashed.
    """
    if not _fits_table(n_keys, len(key)):
        codes, uniques = pd.factorize(key, sort=True)
        return uniques.astype(np.int64), codes
    is_seen = np.zeros(n_keys, dtype=bool)
    is_seen[key] = True
    distinct = np.flatnonzero(is_seen)
    position = np.empty(n_keys, dtype=np.int32)
    position[distinct] = np.arange(len(distinct), dtype=np.int32)
    return distinct.astype(np.int64, copy=False), position[key]
