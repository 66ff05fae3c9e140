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

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
import numpy.typing as npt
import pandas as pd

from cvalue.dask import is_dask_frame, last_timestamp, map_customers
from cvalue.errors import DataQualityError, SchemaError
from cvalue.io.schema import Columns
from cvalue.patterns import SUMMARY_COLUMNS, Compressed, compress
from cvalue.purchases import (
    check_clean,
    check_not_late,
    customer_codes,
    grain_first_day,
    grain_index,
    observation_day,
    purchase_days,
    purchase_rows,
    resolve_columns,
)
from cvalue.units import DateLike, Grain, TimeUnit, as_time_unit

__all__ = [
    "SUMMARY_COLUMNS",
    "Compressed",
    "add_summary_columns",
    "calibration_holdout",
    "cnbd_summary",
    "compress",
    "log_interpurchase_times",
    "rfm_summary",
]


@dataclass(frozen=True, slots=True)
class _Periods:
    """Grain indices of timestamps and the first day of each grain (days since 1970-01-01)."""

    index: npt.NDArray[np.int64]
    first_day: npt.NDArray[np.int64]


def _periods(days: npt.NDArray[np.int64], grain: TimeUnit) -> _Periods:
    """Map day numbers to grain indices and each grain's first day."""
    index = grain_index(days, grain)
    return _Periods(index, grain_first_day(index, grain))


def _elapsed(
    start: _Periods, end: _Periods, grain: TimeUnit, unit: TimeUnit
) -> npt.NDArray[np.float64]:
    """Time from ``start`` to ``end`` grains in ``unit``: whole periods when grain is the unit."""
    if grain is unit:
        return (end.index - start.index).astype(np.float64)
    return (end.first_day - start.first_day) / unit.days


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
    index = grain_index(days, grain)
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
    first = _Periods(first_index, grain_first_day(first_index, grain))
    last = _Periods(last_index, grain_first_day(last_index, grain))
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
    if is_dask_frame(transactions):  # cvalue.dask: each customer in one partition, same end
        columns = columns or Columns.detect(transactions.columns)
        if observation_end is None:
            observation_end = last_timestamp(
                transactions, timestamp=columns.timestamp, is_return=columns.is_return
            )
        by_customer = map_customers(
            rfm_summary, transactions, customer_id=columns.customer_id,
            observation_end=observation_end, unit=unit, grain=grain, columns=columns,
        )  # fmt: skip
        return cast("pd.DataFrame", by_customer)  # typed for pandas: a Dask log gives a Dask frame
    columns = resolve_columns(transactions, columns)
    unit, grain_unit = as_time_unit(unit), as_time_unit(grain)
    transactions = purchase_rows(transactions, columns)
    if len(transactions) == 0:
        raise DataQualityError(
            "the transaction log has no purchases: there is nothing to summarise"
        )
    end_day = None if observation_end is None else observation_day(observation_end)
    days, amounts = check_clean(transactions, columns)
    if end_day is None:
        end_day = int(days.max())
    check_not_late(days, end_day, columns.timestamp)
    codes, customers = customer_codes(transactions[columns.customer_id])
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
    if is_dask_frame(transactions):  # cvalue.dask: each customer in one partition
        columns = columns or Columns.detect(transactions.columns)
        by_customer = map_customers(
            calibration_holdout, transactions, customer_id=columns.customer_id,
            calibration_end=calibration_end, observation_end=observation_end, unit=unit,
            grain=grain, columns=columns,
        )  # fmt: skip
        return cast("pd.DataFrame", by_customer)  # typed for pandas: a Dask log gives a Dask frame
    columns = resolve_columns(transactions, columns)
    unit, grain_unit = as_time_unit(unit), as_time_unit(grain)
    calibration_day = observation_day(calibration_end, "calibration_end")
    end_day = observation_day(observation_end)
    if calibration_day >= end_day:
        raise SchemaError(
            f"calibration_end ({calibration_end}) must be before observation_end "
            f"({observation_end})"
        )
    transactions = purchase_rows(transactions, columns)
    days, _ = check_clean(transactions, columns)
    check_not_late(days, end_day, columns.timestamp)
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


def log_interpurchase_times(
    transactions: pd.DataFrame,
    *,
    observation_end: DateLike | None = None,
    unit: TimeUnit | str = TimeUnit.WEEK,
    grain: Grain | TimeUnit = "day",
    columns: Columns | None = None,
) -> pd.Series:
    """``litt`` per customer: the sum of the logs of the gaps between consecutive purchases.

    Purchases merge per ``grain`` as in :func:`rfm_summary`, those after ``observation_end``
    are left out (so a calibration period's ``litt`` is read from the whole log; all count
    without one), and each gap
    is measured in ``unit`` like ``recency``. Customers without a repeat purchase get 0. The
    (M)BG/CNBD-k needs it to choose its ``k`` (Platzer & Reutterer 2016).
    """
    _, customers, days = purchase_days(transactions, columns)
    grain_unit, time_unit = as_time_unit(grain), as_time_unit(unit)
    keep = np.ones(len(days), dtype=bool)
    if observation_end is not None:
        keep = days <= observation_day(observation_end)
    grains = _periods(days[keep], grain_unit)
    frame = pd.DataFrame({"customer": customers.to_numpy()[keep], "grain": grains.index,
                          "first_day": grains.first_day})  # fmt: skip
    frame = frame.drop_duplicates(["customer", "grain"]).sort_values(["customer", "grain"])
    index, first_days = frame["grain"].to_numpy(), frame["first_day"].to_numpy()
    owner = frame["customer"].to_numpy()
    is_gap = owner[1:] == owner[:-1]
    gaps = _elapsed(
        _Periods(index[:-1], first_days[:-1]), _Periods(index[1:], first_days[1:]),
        grain_unit, time_unit,
    )  # fmt: skip
    litt = pd.Series(np.log(gaps[is_gap]), index=owner[1:][is_gap]).groupby(level=0).sum()
    customer_ids = pd.Index(frame["customer"].unique())
    return litt.reindex(customer_ids, fill_value=0.0).astype(np.float64).rename("litt")


def cnbd_summary(
    transactions: pd.DataFrame,
    *,
    observation_end: DateLike | None = None,
    unit: TimeUnit | str = TimeUnit.WEEK,
    grain: Grain | TimeUnit = "day",
    columns: Columns | None = None,
) -> pd.DataFrame:
    """:func:`rfm_summary` with ``litt`` (:func:`log_interpurchase_times`), for the CNBD-k.

    Examples
    --------
    >>> log = pd.DataFrame({"customer_id": [1, 1, 1, 2],
    ...                     "timestamp": pd.to_datetime(["2024-01-01", "2024-01-15",
    ...                                                  "2024-01-29", "2024-01-08"])})
    >>> cnbd_summary(log, observation_end="2024-02-05")["litt"].round(6).tolist()
    [1.386294, 0.0]
    """
    summary = rfm_summary(transactions, observation_end=observation_end, unit=unit,
                          grain=grain, columns=columns)  # fmt: skip
    return add_summary_columns(summary, transactions, ["litt"], observation_end=observation_end,
                               unit=unit, grain=grain, columns=columns)  # fmt: skip


_ADDED_COLUMNS = {"litt": log_interpurchase_times}


def _whole_periods(summary: pd.DataFrame) -> pd.Series:
    """``n_periods`` of a discrete-time model (the BG/BB): the periods after the first purchase.

    A summary whose purchases merge per period of its unit (``grain`` = ``unit``) counts ``T``,
    ``recency`` and ``frequency`` in whole periods: ``T`` is then the number of opportunities.
    """
    ages = summary["T"].to_numpy(dtype=np.float64)
    if not np.array_equal(ages, np.floor(ages)):
        unit = summary.attrs.get("unit", "week")
        raise SchemaError(
            "n_periods counts whole purchase opportunities, and this summary's T is not whole "
            f"periods: summarise with grain equal to the unit (grain={unit!r}, unit={unit!r}; "
            f'in the job, [summary] grain = "{unit}")'
        )
    return summary["T"].astype(np.float64)


_FROM_SUMMARY = {"n_periods": _whole_periods}


def add_summary_columns(
    summary: pd.DataFrame,
    transactions: pd.DataFrame,
    needed: Sequence[str],
    *,
    observation_end: DateLike | None = None,
    unit: TimeUnit | str = TimeUnit.WEEK,
    grain: Grain | TimeUnit = "day",
    columns: Columns | None = None,
) -> pd.DataFrame:
    """``summary`` with the columns a model needs beyond it (its ``fit_columns``), computed.

    Known columns: ``litt`` (:func:`log_interpurchase_times`) and ``n_periods`` (``T`` of a
    summary in whole periods: ``grain`` equal to ``unit``). The summary's own columns are left
    as they are; a column nobody can compute is a SchemaError naming it.
    """
    missing = [name for name in needed if name not in summary]
    known = {*_ADDED_COLUMNS, *_FROM_SUMMARY}
    unknown = [name for name in missing if name not in known]
    if unknown:
        raise SchemaError(
            f"the summary has no column(s) {unknown} and cvalue cannot compute them from "
            f"transactions (it computes {sorted(known)}); add them to the summary"
        )
    added = summary.copy() if missing else summary
    for name in (name for name in missing if name in _FROM_SUMMARY):
        added[name] = _FROM_SUMMARY[name](added).to_numpy(dtype=np.float64)
    for name in (name for name in missing if name in _ADDED_COLUMNS):
        values = _ADDED_COLUMNS[name](transactions, observation_end=observation_end, unit=unit,
                                      grain=grain, columns=columns)  # fmt: skip
        added[name] = values.reindex(added.index, fill_value=0.0).to_numpy(dtype=np.float64)
    return added
