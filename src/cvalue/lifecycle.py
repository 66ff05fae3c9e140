"""Customer lifecycle: when each customer is acquired, retained, lost and won back.

:func:`lifecycle_states` turns a transaction log (or a contracts table) into a panel with one row
per customer and calendar period, from the period in which the customer was acquired to the period
that holds the observation end. Each row has one of five states:

- ``acquired``: the customer's first period (the first purchase, the first contract's start or
  the acquisition date of a customers table);
- ``retained``: a later period with activity (a purchase, or a contract in force), the customer
  not having been lost in the previous period;
- ``inactive``: lapsed but not lost: no activity in the period, and the rule has not yet declared
  the customer lost (for the inactivity rule: the window since the last purchase has not run out);
- ``reactivated``: a period with activity right after a period in which the customer was lost;
- ``lost``: no activity, and the rule says the customer is gone. The state stays ``lost`` in every
  following period until the customer comes back (``reactivated``).

Three rules decide when a customer is lost (:class:`InactivityRule`, :class:`ContractRule`,
:class:`ModelRule`). A customer is *active* in a period unless lost in it, so acquired, retained,
inactive and reactivated customers are active. :func:`lifecycle_flows` counts the states per
period and the new losses, which reconcile exactly::

    active(t) = active(t - 1) + acquired(t) + reactivated(t) - lost(t)

:func:`cohort_retention` tabulates cohort (period of acquisition) by age, :func:`retention_rate`
and :func:`churn_rate` give binomial rates with confidence intervals by period, cohort or tenure,
and :func:`fit_cohort_retention` fits the shifted-beta-geometric model (Fader & Hardie 2007) per
cohort, projects each cohort forward and tests whether the cohorts differ.

Rates, cohort tables and per-cohort fits read from fewer than ``min_customers`` customers in a
cell (by default :data:`cvalue.metrics.SMALL_SAMPLE`, 100: retention indicators need at least
100 customers) are flagged ``is_small_sample``, and each call gives one
:class:`~cvalue.metrics.SmallSampleWarning` that counts such cells and says how to pool them.

The panel is built from integer codes: customer ids, periods, cohorts and states are categoricals
and tenure is a 32-bit integer, so a million customers over 36 monthly periods take a few hundred
megabytes.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats

from cvalue.errors import DataQualityError, NotFittedError, SchemaError
from cvalue.io.schema import Columns
from cvalue.metrics import SMALL_SAMPLE, _check_min_customers, _flag_small
from cvalue.models import SmallBaseWarning
from cvalue.models.shifted_beta_geo import LikelihoodRatioTest, ShiftedBetaGeo
from cvalue.summary import (
    _check_not_late,
    _customer_codes,
    _day_numbers,
    _end_day,
    _purchase_days,
)
from cvalue.units import DateLike, Duration, TimeUnit, as_duration, as_time_unit

__all__ = [
    "STATES",
    "AliveModel",
    "CohortRetention",
    "CohortRetentionFit",
    "ContractRule",
    "InactivityRule",
    "ModelRule",
    "PeriodLike",
    "Rule",
    "churn_rate",
    "cohort_retention",
    "fit_cohort_retention",
    "lifecycle_flows",
    "lifecycle_states",
    "merge_contracts",
    "retention_rate",
]

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
IndexArray: TypeAlias = npt.NDArray[np.signedinteger[Any]]
StateArray = npt.NDArray[np.int8]
CodeArray = npt.NDArray[np.int32]  # a states panel's codes, read back
DayArray = npt.NDArray[np.int32]  # day numbers since 1970-01-01 on a panel's rows
FloatArray = npt.NDArray[np.float64]
PeriodLike: TypeAlias = TimeUnit | str
"""A calendar period: ``"D"``, ``"W"``, ``"M"``, ``"Q"``, ``"Y"``, a unit name such as
``"month"``, a :class:`~cvalue.units.TimeUnit`, or a pandas period alias such as ``"W-WED"``."""
GroupBy: TypeAlias = Literal["period", "cohort", "tenure"]
Interval: TypeAlias = Literal["wilson", "exact"]

STATES: tuple[str, ...] = ("acquired", "retained", "inactive", "reactivated", "lost")
"""The lifecycle states, in the order of their codes."""
ACQUIRED, RETAINED, INACTIVE, REACTIVATED, LOST = range(len(STATES))
_FLOW_COLUMNS = ("acquired", "retained", "inactive", "reactivated", "lost", "active", "dormant")
_PERIOD_OFFSETS = (
    pd.offsets.Day, pd.offsets.Week, pd.offsets.MonthEnd, pd.offsets.QuarterEnd,
    pd.offsets.YearEnd,
)  # fmt: skip
_GRAINS = {
    "D": TimeUnit.DAY, "W-SUN": TimeUnit.WEEK, "M": TimeUnit.MONTH, "Q-DEC": TimeUnit.QUARTER,
    "Y-DEC": TimeUnit.YEAR,
}  # fmt: skip
_PANEL_COLUMNS = ("customer_id", "period", "cohort", "tenure", "state")


# --- calendar periods -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Calendar:
    """A pandas period frequency and the day arithmetic of its periods.

    Periods are pandas period ordinals; days are day numbers since 1970-01-01.
    """

    freq: str

    @property
    def grain(self) -> TimeUnit | None:
        """The cvalue grain of the same periods (what SQL computes), if there is one."""
        return _GRAINS.get(self.freq)

    def ordinals(self, days: IntArray) -> IntArray:
        """The period of each day, through a lookup table over the days' range."""
        if len(days) == 0:
            return np.zeros(0, dtype=np.int64)
        low, high = int(days.min()), int(days.max())
        every_day = np.arange(low, high + 1, dtype=np.int64).astype("datetime64[D]")
        table = pd.DatetimeIndex(every_day).to_period(self.freq).asi8
        return np.asarray(table[days - low], dtype=np.int64)

    def first_days(self, ordinals: IntArray) -> IntArray:
        """The first day of each period."""
        starts = _period_index(ordinals, self.freq).start_time
        return np.asarray(starts.to_numpy().astype("datetime64[D]").astype(np.int64))

    def last_days(self, ordinals: IntArray) -> IntArray:
        """The last day of each period."""
        return self.first_days(ordinals + 1) - 1

    def labels(self, first: int, last: int) -> pd.PeriodIndex:
        """The periods ``first .. last`` as a PeriodIndex."""
        return _period_index(np.arange(first, last + 1, dtype=np.int64), self.freq)


def _period_index(ordinals: IntArray, freq: str) -> pd.PeriodIndex:
    """A PeriodIndex of pandas period ordinals."""
    return pd.PeriodIndex(pd.arrays.PeriodArray(ordinals, dtype=pd.PeriodDtype(freq)))


def _alias(period: PeriodLike) -> str:
    if isinstance(period, TimeUnit):
        return period.pandas_alias
    if not isinstance(period, str):
        raise SchemaError(
            f"period must be a string such as 'M' or a TimeUnit, got {type(period).__name__}"
        )
    try:
        return as_time_unit(period).pandas_alias
    except SchemaError:
        return period.strip()


def _calendar(period: PeriodLike) -> _Calendar:
    """Check ``period`` and return its calendar; a SchemaError says what is accepted."""
    alias = _alias(period)
    accepted = (
        "use 'D', 'W', 'M', 'Q' or 'Y' (or 'day', 'week', 'month', 'quarter', 'year'), or a "
        "pandas period alias of one whole calendar period such as 'W-WED' or 'Q-MAR'"
    )
    try:
        with warnings.catch_warnings():
            # deprecated spellings ('B', lower case) are refused below or by the message
            warnings.simplefilter("ignore")
            probe = pd.Period("2000-01-01", freq=alias)
    except (TypeError, ValueError) as exc:
        raise SchemaError(
            f"period {period!r} is not a valid pandas frequency ({exc}); {accepted}"
        ) from exc
    offset = probe.freq
    if offset.n != 1 or not isinstance(offset, _PERIOD_OFFSETS):
        raise SchemaError(
            f"period {period!r} is a pandas frequency, but not one calendar period of a day or "
            f"longer (multiples, business days and times of day are not lifecycle periods); "
            f"{accepted}"
        )
    return _Calendar(probe.freqstr)


# --- rules ----------------------------------------------------------------------------------------


def _window_of(window: int | Duration | str) -> tuple[Literal["periods", "days"], int]:
    """The window as ``("periods", k)`` or ``("days", whole days)``; a SchemaError if invalid.

    A day count compares with whole days, so a window of ``w`` days is reached once at least
    ``ceil(w)`` days have passed.
    """
    if isinstance(window, bool) or not isinstance(window, int | np.integer | Duration | str):
        raise SchemaError(
            f"window must be a whole number of periods (3) or a duration ('90D', '13w'), "
            f"got {window!r}"
        )
    if isinstance(window, int | np.integer):
        if window < 1:
            raise SchemaError(f"a window of periods must be >= 1, got {window}")
        return "periods", int(window)
    days = as_duration(window).days
    if not days > 0:
        raise SchemaError(f"a window must be longer than 0 days, got {window!r}")
    return "days", math.ceil(days)


@dataclass(frozen=True, slots=True)
class InactivityRule:
    """Lost after a window without purchases (non-contractual customers).

    Parameters
    ----------
    window
        A whole number of periods (``3``) or a duration (``"90D"``, ``"13w"``, a
        :class:`~cvalue.units.Duration`). The customer is lost in the period in which the window
        after the last purchase runs out without a purchase: for ``k`` periods, the ``k``-th period
        in a row without a purchase; for ``w`` days, the period holding the day ``ceil(w)`` days
        after the last purchase day, when none of those days has a purchase. A purchase on that
        last day of the window keeps the customer. A later purchase is a reactivation. With
        ``window=1``, a customer is active exactly in the periods with a purchase.
    """

    window: int | Duration | str = 1

    def __post_init__(self) -> None:
        """Check the window."""
        _window_of(self.window)


@dataclass(frozen=True, slots=True)
class ContractRule:
    """Active while a contract is in force (contractual customers).

    The data is a contracts table: one row per contract with the customer, the start date and the
    end date (the last day covered; missing for a contract still running). A customer is active
    in every period that some contract covers for at least one day and lost in the others;
    overlapping and back-to-back contracts merge into one spell (:func:`merge_contracts`).

    Parameters
    ----------
    customer_id, start, end
        The contracts table's column names.
    """

    customer_id: str = "customer_id"
    start: str = "start"
    end: str = "end"


class AliveModel(Protocol):
    """A fitted model that scores P(alive) from ``frequency``, ``recency`` and ``T``.

    :class:`~cvalue.BetaGeo`, :class:`~cvalue.ModifiedBetaGeo` and :class:`~cvalue.ParetoNBD`
    are such models.
    """

    @property
    def unit_(self) -> TimeUnit | None:
        """The time unit of the recency and T the model was fitted on."""

    def p_alive(self, data: pd.DataFrame) -> pd.Series:
        """P(alive) of each row of a summary."""


@dataclass(frozen=True, slots=True)
class ModelRule:
    """Lost when a fitted model's P(alive) at a period's end falls below a threshold.

    At the end of each period without a purchase, the customer's history up to that day is
    summarised as :func:`cvalue.rfm_summary` would (grain day, the model's unit) and scored with
    ``model.p_alive``. The customer is lost from the first such period where P(alive) is below
    ``threshold`` until the next purchase. A period with a purchase is never lost.

    Parameters
    ----------
    model
        A fitted model with ``p_alive`` and a known unit (fitted on a :func:`cvalue.rfm_summary`).
    threshold
        The P(alive) below which a customer counts as lost, in ``(0, 1]``.
    """

    model: AliveModel
    threshold: float = 0.5

    def __post_init__(self) -> None:
        """Check the threshold and that the model scores P(alive)."""
        if not callable(getattr(self.model, "p_alive", None)):
            raise SchemaError(
                f"ModelRule needs a model with p_alive (BetaGeo, ParetoNBD, ...), got "
                f"{type(self.model).__name__}"
            )
        if not 0.0 < self.threshold <= 1.0:
            raise SchemaError(f"threshold must be in (0, 1], got {self.threshold!r}")


Rule: TypeAlias = InactivityRule | ContractRule | ModelRule
"""One of the three lifecycle rules."""


# --- what the rules read: activity days and contract spells ---------------------------------------


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
    return pd.Index(customers.index[order]), _day_numbers(dates).take(order)


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
    resolved, buyers, days = _purchase_days(transactions, columns)
    if len(days) == 0 and customers is None:
        raise DataQualityError("the transaction log has no purchases: there is no lifecycle")
    if customers is None:
        codes, ids = _customer_codes(buyers)
        acquired = np.zeros(0, dtype=np.int64)
    else:
        ids, codes, acquired = _coded_with_table(
            buyers, days, customers, acquisition_column,
            f"column {resolved.timestamp!r}",
        )  # fmt: skip
        codes = np.concatenate([codes, np.arange(len(ids), dtype=np.int64)])
        days = np.concatenate([days, acquired])
    end_day = int(days.max()) if observation_end is None else _end_day(observation_end)
    _check_not_late(days[: len(buyers)], end_day, resolved.timestamp)
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
    starts, ends = _day_numbers(contracts[rule.start]), _day_numbers(contracts[rule.end])
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
        codes, ids = _customer_codes(ids_column)
        start_days = np.full(len(ids), np.iinfo(np.int64).max)
        np.minimum.at(start_days, codes, starts)
    else:
        ids, codes, start_days = _coded_with_table(
            ids_column, starts, customers, acquisition_column, f"column {rule.start!r}"
        )
    latest = int(max(starts.max(initial=start_days.max()), start_days.max()))
    end_day = latest if observation_end is None else _end_day(observation_end)
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
    codes, ids = _customer_codes(contracts[rule.customer_id])
    merged = _merged(codes, starts, ends, is_open)
    end_dates = pd.Series(np.where(merged.is_open, 0, merged.last_days).astype("datetime64[D]"))
    return pd.DataFrame({
        rule.customer_id: ids.take(merged.codes),
        rule.start: pd.Series(merged.first_days.astype("datetime64[D]")).astype("datetime64[ns]"),
        rule.end: end_dates.astype("datetime64[ns]").where(~merged.is_open),
    })  # fmt: skip


# --- the panel ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Layout:
    """Rows of the panel: customer by customer, one row per period from the first to the end."""

    first_period: IntArray  # per customer
    end_period: int
    row_start: IntArray  # per customer: its first row
    customer: IndexArray  # per row
    tenure: IndexArray  # per row: periods since acquisition

    @property
    def n_rows(self) -> int:
        """The number of rows."""
        return len(self.customer)

    def rows(self, codes: IntArray, periods: IntArray) -> IntArray:
        """The row of each (customer, period)."""
        return np.asarray(self.row_start[codes] + (periods - self.first_period[codes]))


def _index_type(n_rows: int) -> type[np.int32] | type[np.int64]:
    """32-bit row numbers while they fit: half the memory of the panel's index arrays."""
    return np.int32 if n_rows < np.iinfo(np.int32).max else np.int64


def _layout(first_period: IntArray, end_period: int) -> _Layout:
    lengths = end_period - first_period + 1
    row_start = np.cumsum(lengths) - lengths
    kind = _index_type(int(lengths.sum()))
    customer: IndexArray = np.repeat(np.arange(len(lengths), dtype=kind), lengths)
    tenure: IndexArray = np.arange(int(lengths.sum()), dtype=kind)
    np.subtract(tenure, row_start.astype(kind)[customer], out=tenure)
    return _Layout(first_period, end_period, row_start, customer, tenure)


def _carried(values_at: BoolArray) -> IndexArray:
    """For each row, the latest row at or before it where ``values_at`` holds (-1 if none)."""
    kind = _index_type(len(values_at))
    marks = np.where(values_at, np.arange(len(values_at), dtype=kind), kind(-1))
    return np.asarray(np.maximum.accumulate(marks))


def _lost(has_activity: BoolArray, is_expired: BoolArray) -> BoolArray:
    """Lost: no activity, and the rule expired at or since the last activity of the customer.

    Every customer's first row has activity, so the latest activity row never belongs to an
    earlier customer; an expiry counts only if it is later than that row.
    """
    last_activity = _carried(has_activity)
    last_expiry = _carried(is_expired & ~has_activity)
    return np.asarray(~has_activity & (last_expiry > last_activity))


def _state_codes(layout: _Layout, has_activity: BoolArray, is_lost: BoolArray) -> StateArray:
    is_first = layout.tenure == 0
    was_lost = np.zeros(layout.n_rows, dtype=bool)
    was_lost[1:] = is_lost[:-1]
    was_lost &= ~is_first
    state = np.full(layout.n_rows, INACTIVE, dtype=np.int8)
    state[is_lost] = LOST
    state[has_activity] = RETAINED
    state[has_activity & was_lost] = REACTIVATED
    state[is_first] = ACQUIRED
    return state


def _states_frame(
    customers: pd.Index,
    customer: IndexArray,
    period: IndexArray,
    cohort: IndexArray,
    state: StateArray,
    calendar: _Calendar,
) -> pd.DataFrame:
    """The panel from per-row codes: period and cohort are period ordinals.

    The columns are adopted without a copy: on a panel of tens of millions of rows every
    per-row temporary counts.
    """
    first = int(cohort.min()) if len(cohort) else 0
    last = int(period.max()) if len(period) else -1
    labels = calendar.labels(first, last)
    tenure = np.subtract(period, cohort, dtype=np.int32)
    periods = pd.CategoricalDtype(labels, ordered=True)
    return pd.DataFrame({
        "customer_id": pd.Categorical.from_codes(customer, dtype=pd.CategoricalDtype(customers)),
        "period": pd.Categorical.from_codes(period - first, dtype=periods),
        "cohort": pd.Categorical.from_codes(cohort - first, dtype=periods),
        "tenure": tenure,
        "state": pd.Categorical.from_codes(state, dtype=pd.CategoricalDtype(list(STATES))),
    }, copy=False)  # fmt: skip


def _activity_layout(events: _Events, calendar: _Calendar) -> tuple[_Layout, IntArray]:
    """The layout of an event log and the row of each event."""
    first_period = calendar.ordinals(events.start_days)
    end_period = int(calendar.ordinals(np.array([events.end_day]))[0])
    layout = _layout(first_period, end_period)
    return layout, layout.rows(events.codes, calendar.ordinals(events.days))


def _period_codes(layout: _Layout) -> tuple[int, IndexArray]:
    """The first period of the panel, and each row's period as an offset from it.

    Offsets are row-number sized (32-bit on any panel that fits 32-bit rows), not 64-bit.
    """
    first = int(layout.first_period.min())
    offsets = (layout.first_period - first).astype(layout.tenure.dtype)[layout.customer]
    offsets += layout.tenure
    return first, offsets


def _evaluation_days(layout: _Layout, calendar: _Calendar, end_day: int) -> DayArray:
    """Per row: the day its period is judged on, its last day or the observation end."""
    first, offsets = _period_codes(layout)
    last_days = calendar.last_days(np.arange(first, layout.end_period + 1))
    judged = np.minimum(last_days, end_day).astype(np.int32)  # day numbers fit 32 bits
    return np.asarray(judged[offsets])


def _last_days(layout: _Layout, rows: IntArray, days: IntArray) -> DayArray:
    """Per row: the latest activity day in its period (0 where the row has no activity)."""
    latest = np.zeros(layout.n_rows, dtype=np.int32)
    is_last = np.ones(len(rows), dtype=bool)
    is_last[:-1] = rows[1:] != rows[:-1]  # events are sorted by customer and day
    latest[rows[is_last]] = days[is_last]
    return latest


def _inactivity_expired(
    rule: InactivityRule, layout: _Layout, events: _Events, rows: IntArray, calendar: _Calendar,
    has_activity: BoolArray,
) -> BoolArray:  # fmt: skip
    """Per row: whether the window since the last activity has run out by the row's end."""
    kind, length = _window_of(rule.window)
    last_activity = _carried(has_activity)
    if kind == "periods":
        return np.asarray(np.arange(layout.n_rows) - last_activity >= length)
    latest = _last_days(layout, rows, events.days)[last_activity]
    del last_activity
    gap = _evaluation_days(layout, calendar, events.end_day)
    gap -= latest
    del latest
    return np.asarray(gap >= length)


def _model_expired(
    rule: ModelRule, layout: _Layout, events: _Events, rows: IntArray, calendar: _Calendar,
    has_activity: BoolArray,
) -> BoolArray:  # fmt: skip
    """Per row without activity: whether P(alive) at the row's end is below the threshold."""
    model = rule.model
    if not hasattr(model, "params_"):
        raise NotFittedError(f"the {type(model).__name__} of the ModelRule is not fitted yet")
    unit = model.unit_
    if unit is None:
        raise SchemaError(
            f"the {type(model).__name__} of the ModelRule does not know its time unit; fit it on "
            "a cvalue.rfm_summary or with unit='week'"
        )
    last_activity = _carried(has_activity)
    n_days = np.cumsum(np.bincount(rows, minlength=layout.n_rows))  # activity days so far
    first_row = layout.row_start[layout.customer]
    before = np.where(first_row > 0, n_days[np.maximum(first_row - 1, 0)], 0)
    judged = np.flatnonzero(~has_activity)
    start = events.start_days[layout.customer[judged]]
    history = pd.DataFrame({
        "frequency": (n_days[judged] - before[judged] - 1).astype(np.float64),
        "recency": _last_days(layout, rows, events.days)[last_activity[judged]] - start,
        "T": _evaluation_days(layout, calendar, events.end_day)[judged] - start,
    })  # fmt: skip
    is_below = np.zeros(layout.n_rows, dtype=bool)
    is_below[judged] = _p_alive(model, history, unit) < rule.threshold
    return is_below


def _p_alive(model: AliveModel, history: pd.DataFrame, unit: TimeUnit) -> FloatArray:
    """P(alive) of day-count histories, scored once per distinct history."""
    if len(history) == 0:
        return np.zeros(0)
    patterns, inverse = np.unique(history.to_numpy(np.int64), axis=0, return_inverse=True)
    summary = pd.DataFrame({
        "frequency": patterns[:, 0].astype(np.float64),
        "recency": patterns[:, 1] / unit.days,
        "T": patterns[:, 2] / unit.days,
    })  # fmt: skip
    scored = model.p_alive(summary).to_numpy(dtype=np.float64)
    return np.asarray(scored[inverse.ravel()])


def _contract_panel(
    spans: _Spans, start_days: IntArray, calendar: _Calendar
) -> tuple[_Layout, BoolArray]:
    """The layout of the contracts and which rows some spell covers."""
    first_period = calendar.ordinals(start_days)
    end_period = int(calendar.ordinals(np.array([spans.end_day]))[0])
    layout = _layout(first_period, end_period)
    # +1 at each spell's first row and -1 after its last: covered where the running sum is > 0
    change = np.zeros(layout.n_rows + 1, dtype=np.int32)
    np.add.at(change, layout.rows(spans.codes, calendar.ordinals(spans.first_days)), 1)
    np.add.at(change, layout.rows(spans.codes, calendar.ordinals(spans.last_days)) + 1, -1)
    has_activity = np.cumsum(change[:-1]) > 0
    has_activity[layout.row_start] = True  # the acquisition period is active by definition
    return layout, has_activity


def lifecycle_states(
    data: pd.DataFrame,
    *,
    period: PeriodLike,
    rule: Rule,
    observation_end: DateLike | None = None,
    columns: Columns | None = None,
    customers: pd.DataFrame | None = None,
    acquisition_column: str = "acquisition_date",
) -> pd.DataFrame:
    """The lifecycle state of every customer in every period since acquisition.

    Parameters
    ----------
    data
        A transaction log (:class:`InactivityRule`, :class:`ModelRule`; rows flagged
        ``is_return`` are not purchases), or a contracts table (:class:`ContractRule`).
    period
        The calendar period of the panel: ``"D"``, ``"W"`` (Monday to Sunday), ``"M"``, ``"Q"``,
        ``"Y"``, a unit name, or a pandas period alias such as ``"W-WED"`` or ``"Q-MAR"``.
    rule
        When a customer is lost: :class:`InactivityRule`, :class:`ContractRule` or
        :class:`ModelRule`.
    observation_end
        The last day observed; its period is the panel's last, judged on this day. Defaults to
        the last purchase (contract start, acquisition) day. Choose a period's last day for a
        complete last period.
    columns
        Which columns of a transaction log hold the customer id, timestamp and returns flag.
    customers
        Optionally, a customers table indexed by customer id with acquisition dates: each
        lifecycle then starts at the acquisition date (customers without activity included), and
        activity before it is an error.
    acquisition_column
        The acquisition date column of ``customers``.

    Returns
    -------
    pandas.DataFrame
        One row per customer and period, sorted by customer and period: ``customer_id``,
        ``period``, ``cohort`` (the period of acquisition), ``tenure`` (periods since
        acquisition, 0 in the cohort's period) and ``state`` (one of :data:`STATES`).

    Raises
    ------
    SchemaError
        A column is missing or of the wrong type, or ``period`` is not a valid pandas frequency.
    DataQualityError
        Missing ids or dates, activity after ``observation_end`` or before a recorded acquisition
        date, or contracts ending before they start; the message gives the row count.

    Examples
    --------
    >>> log = pd.DataFrame({"customer_id": [1, 1, 2],
    ...                     "timestamp": pd.to_datetime(["2024-01-05", "2024-04-02",
    ...                                                  "2024-02-10"])})
    >>> states = lifecycle_states(log, period="M", rule=InactivityRule(2),
    ...                           observation_end="2024-04-30")
    >>> states.pivot(index="customer_id", columns="period", values="state")
    period        2024-01   2024-02      2024-03      2024-04
    customer_id
    1            acquired  inactive         lost  reactivated
    2                 NaN  acquired     inactive         lost
    """
    calendar = _calendar(period)
    if isinstance(rule, ContractRule):
        spans, start_days = _contract_spans(
            data, rule, customers, acquisition_column, observation_end
        )
        layout, has_activity = _contract_panel(spans, start_days, calendar)
        ids, state = spans.customers, _state_codes(layout, has_activity, ~has_activity)
    elif isinstance(rule, InactivityRule | ModelRule):
        events = _transaction_events(data, columns, customers, acquisition_column, observation_end)
        ids, (layout, state) = events.customers, _activity_states(rule, events, calendar)
        del events  # its per-event arrays are not needed for the frame
    else:
        raise SchemaError(
            f"rule must be an InactivityRule, ContractRule or ModelRule, got {type(rule).__name__}"
        )
    cohort = layout.first_period.astype(np.int32)[layout.customer]  # period ordinals fit 32 bits
    return _states_frame(ids, layout.customer, cohort + layout.tenure, cohort, state, calendar)


def _activity_states(
    rule: InactivityRule | ModelRule, events: _Events, calendar: _Calendar
) -> tuple[_Layout, StateArray]:
    """The layout and state codes of an event log; the per-row temporaries end here."""
    layout, rows = _activity_layout(events, calendar)
    has_activity = np.zeros(layout.n_rows, dtype=bool)
    has_activity[rows] = True
    expired = _inactivity_expired if isinstance(rule, InactivityRule) else _model_expired
    is_expired = expired(rule, layout, events, rows, calendar, has_activity)  # type: ignore[arg-type]
    return layout, _state_codes(layout, has_activity, _lost(has_activity, is_expired))


# --- reading a panel back -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Panel:
    """The codes of a states panel, ordered by customer and period."""

    labels: pd.PeriodIndex
    period: CodeArray
    cohort: CodeArray
    tenure: CodeArray
    state: StateArray
    was_lost: BoolArray  # the same customer's previous row is lost

    @property
    def is_new_loss(self) -> BoolArray:
        """Rows where the customer becomes lost."""
        return np.asarray((self.state == LOST) & ~self.was_lost)


def _codes(states: pd.DataFrame, name: str) -> CodeArray:
    """A categorical column's codes as 32-bit integers.

    Wide enough for any arithmetic on them here (``period * len(STATES) + state``,
    ``cohort * n_periods + tenure``), and half of 64 bits.
    """
    return np.asarray(states[name].cat.codes.to_numpy(), dtype=np.int32)


def _check_panel_columns(states: pd.DataFrame) -> None:
    if not isinstance(states, pd.DataFrame):
        raise SchemaError(f"states must be a pandas DataFrame, got {type(states).__name__}")
    missing = [name for name in _PANEL_COLUMNS if name not in states]
    wrong = [
        name
        for name in ("customer_id", "period", "cohort", "state")
        if name in states and not isinstance(states[name].dtype, pd.CategoricalDtype)
    ]
    if missing or wrong or list(states["state"].cat.categories) != list(STATES):
        raise SchemaError(
            f"states need the columns {list(_PANEL_COLUMNS)} as lifecycle_states makes them "
            f"(missing: {missing}, not categorical: {wrong}); pass lifecycle_states' output"
        )


def _panel(states: pd.DataFrame) -> _Panel:
    """The panel's codes in customer and period order; a SchemaError if rows are missing."""
    _check_panel_columns(states)
    columns: list[npt.NDArray[np.signedinteger[Any]]] = [
        _codes(states, name) for name in ("customer_id", "period", "cohort")
    ]
    columns.append(np.asarray(states["state"].cat.codes.to_numpy(), dtype=np.int8))
    columns.append(states["tenure"].to_numpy(dtype=np.int32))
    customer, period = columns[0], columns[1]
    is_ordered = np.all(customer[1:] >= customer[:-1]) and np.all(
        (period[1:] > period[:-1]) | (customer[1:] != customer[:-1])
    )
    if not is_ordered:  # lifecycle_states' own order needs no sort
        order = np.lexsort((period, customer))
        columns = [values[order] for values in columns]
    customer, period, cohort, state, tenure = columns
    same = customer[1:] == customer[:-1]
    is_whole = (
        np.all(tenure == period - cohort)
        and np.all(tenure[np.flatnonzero(~same) + 1] == 0)
        and (len(tenure) == 0 or tenure[0] == 0)
        and np.all((np.diff(period) == 1) | ~same)
    )
    if not is_whole:
        raise SchemaError(
            "states must hold, for each customer, every period from acquisition on (tenure 0, "
            "1, 2, ...); filter whole customers, not periods, and keep lifecycle_states' columns"
        )
    was_lost = np.zeros(len(state), dtype=bool)
    was_lost[1:] = (state[:-1] == LOST) & same
    labels = pd.PeriodIndex(states["period"].cat.categories)
    return _Panel(labels, period, cohort, tenure, state, was_lost)


def _flows_frame(counts: IntArray, new_losses: IntArray, labels: pd.PeriodIndex) -> pd.DataFrame:
    """The flows table from per-period state counts (periods x states) and new losses."""
    active = counts.sum(axis=1) - counts[:, LOST]
    table = pd.DataFrame(
        {
            "acquired": counts[:, ACQUIRED],
            "retained": counts[:, RETAINED],
            "inactive": counts[:, INACTIVE],
            "reactivated": counts[:, REACTIVATED],
            "lost": new_losses,
            "active": active,
            "dormant": counts[:, LOST],
        },
        index=labels.rename("period"),
    )
    return table.astype(np.int64)


def lifecycle_flows(states: pd.DataFrame) -> pd.DataFrame:
    """Per period: customers acquired, retained, inactive, reactivated, lost, active, dormant.

    ``lost`` counts the customers who become lost in the period (new losses); ``dormant`` counts
    every customer in the ``lost`` state (lost now or earlier and not won back); ``active`` counts
    the customers not lost (acquired, retained, inactive and reactivated). They reconcile exactly:
    ``active(t) = active(t - 1) + acquired(t) + reactivated(t) - lost(t)``, with ``active = 0``
    before the first period.

    Parameters
    ----------
    states
        The output of :func:`lifecycle_states`, whole customers (any subset of customers).

    Returns
    -------
    pandas.DataFrame
        Indexed by period (every period of the panel), integer columns ``acquired``,
        ``retained``, ``inactive``, ``reactivated``, ``lost``, ``active`` and ``dormant``.

    Examples
    --------
    >>> log = pd.DataFrame({"customer_id": [1, 1, 2],
    ...                     "timestamp": pd.to_datetime(["2024-01-05", "2024-04-02",
    ...                                                  "2024-02-10"])})
    >>> states = lifecycle_states(log, period="M", rule=InactivityRule(2))
    >>> lifecycle_flows(states)[["acquired", "reactivated", "lost", "active"]]
             acquired  reactivated  lost  active
    period
    2024-01         1            0     0       1
    2024-02         1            0     0       2
    2024-03         0            0     1       1
    2024-04         0            1     1       1
    """
    panel = _panel(states)
    n_periods = len(panel.labels)
    cell = np.multiply(panel.period, len(STATES), dtype=np.int32)
    cell += panel.state
    cells = np.bincount(cell, minlength=n_periods * len(STATES))
    new_losses = np.bincount(panel.period[panel.is_new_loss], minlength=n_periods)
    return _flows_frame(cells.reshape(n_periods, len(STATES)), new_losses, panel.labels)


# --- cohorts --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CohortRetention:
    """Cohort x age tables: who of each cohort is still a customer after ``age`` periods.

    Cohorts are periods of acquisition (rows); ages are whole periods since acquisition
    (columns, 0 = the acquisition period). Cells a cohort has not reached yet are missing.

    Attributes
    ----------
    sizes
        Customers acquired in each cohort.
    active
        Customers of the cohort active (not lost) at each age; reactivated customers count again.
    shares
        ``active / sizes``.
    survivors
        Customers of the cohort never lost up to each age: the survivor curve the sBG reads.
    is_small_sample
        By cohort: fewer customers than ``min_customers``. Every cell of the cohort's row is a
        share of its ``sizes`` customers, so the flag holds for the whole row.
    min_customers
        The threshold of ``is_small_sample``.
    """

    sizes: pd.Series
    active: pd.DataFrame
    shares: pd.DataFrame
    survivors: pd.DataFrame
    is_small_sample: pd.Series
    min_customers: int = SMALL_SAMPLE

    @property
    def survival(self) -> pd.DataFrame:
        """``survivors / sizes``: the share of each cohort never lost up to each age."""
        return self.survivors.astype("float64").div(self.sizes.astype("float64"), axis=0)


def _ever_lost(panel: _Panel) -> BoolArray:
    """Per row: the customer has been lost at this period or before (since acquisition)."""
    first_row = _carried(panel.tenure == 0)
    return np.asarray(_carried(panel.state == LOST) >= first_row)


_POOL_COHORTS = (
    "their shares rest on few customers. Pool cohorts into longer periods (a coarser period=, "
    "or cohort_period= in fit_cohort_retention), or accept wider intervals and pass "
    "min_customers= a smaller number"
)


def _cohort_tables(
    sizes: IntArray, active: IntArray, survivors: IntArray, labels: pd.PeriodIndex, *,
    min_customers: int, stacklevel: int,
) -> CohortRetention:  # fmt: skip
    """The tables from dense cohort x age counts; unreached cells and empty cohorts dropped.

    Cohorts of fewer than ``min_customers`` are flagged, with one warning ``stacklevel`` frames
    up (counted as ``_flag_small`` counts them).
    """
    n_periods = len(labels)
    ages = np.arange(n_periods)
    is_reached = ages[np.newaxis, :] <= (n_periods - 1 - np.arange(n_periods))[:, np.newaxis]
    keep = sizes > 0
    index = labels[keep].rename("cohort")
    columns = pd.RangeIndex(n_periods, name="age")

    def table(counts: IntArray) -> pd.DataFrame:
        values = np.where(is_reached[keep], counts[keep], np.nan)
        return pd.DataFrame(values, index=index, columns=columns).astype("Int64")

    size_series = pd.Series(sizes[keep], index=index, name="customers", dtype=np.int64)
    active_table = table(active)
    shares = active_table.astype("float64").div(size_series.astype("float64"), axis=0)
    is_small = _flag_small(
        sizes[keep], [str(label) for label in index], subject="cohort retention",
        unit="customers", fix=_POOL_COHORTS, threshold=min_customers, cells="cohorts",
        stacklevel=stacklevel,
    )  # fmt: skip
    return CohortRetention(
        size_series, active_table, shares.astype(np.float64), table(survivors),
        pd.Series(is_small, index=index, name="is_small_sample"), min_customers,
    )  # fmt: skip


def _dense(cell: IndexArray, rows: BoolArray, n: int) -> IntArray:
    """Counts of the ``rows`` in each (cohort, age) cell, as an ``n x n`` table."""
    counts = np.bincount(cell[rows], minlength=n * n)
    return np.asarray(counts.reshape(n, n), dtype=np.int64)


def cohort_retention(
    data: pd.DataFrame,
    *,
    period: PeriodLike | None = None,
    rule: Rule | None = None,
    observation_end: DateLike | None = None,
    columns: Columns | None = None,
    min_customers: int = SMALL_SAMPLE,
) -> CohortRetention:
    """Cohort x age tables of active customers, their shares, and never-lost survivors.

    Parameters
    ----------
    data
        A states panel from :func:`lifecycle_states`, or a transaction log (or contracts table)
        to build one from with ``period`` and ``rule``.
    period, rule, observation_end, columns
        As in :func:`lifecycle_states`, for a log only. The default rule,
        ``InactivityRule(1)``, makes a customer active in exactly the periods with a purchase.
    min_customers
        Cohorts of fewer customers than this (:data:`cvalue.metrics.SMALL_SAMPLE`, 100, by
        default) are flagged in ``is_small_sample``; 0 flags none.

    Returns
    -------
    CohortRetention
        ``sizes``, ``active``, ``shares`` and ``survivors`` by cohort (rows) and age (columns),
        and ``is_small_sample`` by cohort.

    Warns
    -----
    SmallSampleWarning
        Once, when some cohorts have fewer than ``min_customers`` customers: how many, the first
        few, and the fix (pool cohorts into longer periods, or a smaller ``min_customers``).

    Examples
    --------
    >>> log = pd.DataFrame({"customer_id": [1, 1, 2, 3, 3],
    ...                     "timestamp": pd.to_datetime(["2024-01-05", "2024-02-02", "2024-01-10",
    ...                                                  "2024-02-03", "2024-03-01"])})
    >>> table = cohort_retention(log, period="M", min_customers=1)  # a toy log: accept all
    >>> table.shares
    age        0    1    2
    cohort
    2024-01  1.0  0.5  0.0
    2024-02  1.0  1.0  NaN
    >>> table.is_small_sample.tolist()
    [False, False]
    """
    threshold = _check_min_customers(min_customers)
    if "state" in data:
        if period is not None or rule is not None:
            raise SchemaError(
                "data is a states panel: its period and rule are fixed; pass the log instead to "
                "choose period= and rule="
            )
        states = data
    else:
        if period is None:
            raise SchemaError("period= is needed to build the cohorts from a log (e.g. 'M')")
        states = lifecycle_states(
            data, period=period, rule=rule or InactivityRule(1),
            observation_end=observation_end, columns=columns,
        )  # fmt: skip
    panel = _panel(states)
    n = len(panel.labels)
    cell = np.multiply(panel.cohort, n, dtype=np.int32)  # n periods: n * n cells fit 32 bits
    cell += panel.tenure
    return _cohort_tables(
        np.bincount(panel.cohort[panel.tenure == 0], minlength=n),
        _dense(cell, panel.state != LOST, n),
        _dense(cell, ~_ever_lost(panel), n),
        panel.labels,
        min_customers=threshold,
        stacklevel=4,  # _flag_small, _cohort_tables, cohort_retention, the user's call
    )


# --- rates ----------------------------------------------------------------------------------------


def _interval(
    successes: IntArray, trials: IntArray, level: float, interval: Interval
) -> tuple[FloatArray, FloatArray]:
    """Binomial confidence interval of ``successes / trials``: Wilson score or Clopper-Pearson.

    Wilson (1927), "Probable inference, the law of succession, and statistical inference",
    JASA 22, 209-212; Clopper & Pearson (1934), Biometrika 26, 404-413 (the "exact" interval,
    from beta quantiles). Empty groups give NaN.
    """
    k, n = successes.astype(np.float64), trials.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):  # n = 0: no rate, NaN bounds
        if interval == "wilson":
            z = float(stats.norm.ppf(0.5 + level / 2.0))
            p = k / n
            centre = (p + z * z / (2 * n)) / (1 + z * z / n)
            half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
            lower, upper = centre - half, centre + half
        elif interval == "exact":
            alpha = 1.0 - level
            lower = np.where(k > 0, stats.beta.ppf(alpha / 2, k, n - k + 1), 0.0)
            upper = np.where(k < n, stats.beta.ppf(1 - alpha / 2, k + 1, n - k), 1.0)
        else:
            raise SchemaError(f"interval must be 'wilson' or 'exact', got {interval!r}")
    is_empty = n == 0
    return np.where(is_empty, np.nan, lower), np.where(is_empty, np.nan, upper)


def _group_keys(
    panel: _Panel, by: GroupBy | Sequence[GroupBy]
) -> tuple[IntArray, pd.Index, Sequence[str]]:
    """Dense group codes of the panel's rows, the labels of every possible group, the names."""
    names = [by] if isinstance(by, str) else list(by)
    known: dict[str, tuple[IndexArray, pd.Index]] = {
        "period": (panel.period, panel.labels),
        "cohort": (panel.cohort, panel.labels),
        "tenure": (panel.tenure, pd.RangeIndex(len(panel.labels))),
    }
    unknown = [name for name in names if name not in known]
    if not names or unknown:
        raise SchemaError(f"by must be 'period', 'cohort', 'tenure' or a list of them, got {by!r}")
    codes = [known[name][0] for name in names]
    levels = [pd.Index(known[name][1], name=name) for name in names]
    shape = tuple(len(level) for level in levels)
    key = np.ravel_multi_index(codes, shape) if codes[0].size else np.zeros(0, np.int64)
    index = levels[0] if len(levels) == 1 else pd.MultiIndex.from_product(levels)
    return np.asarray(key, dtype=np.int64), index, names


def _customers_at_risk(
    panel: _Panel, key: IntArray, is_at_risk: BoolArray, names: Sequence[str], size: int
) -> IntArray:
    """Distinct customers with a row at risk in each group.

    By period or tenure a customer has at most one row per group, so this is the count of rows
    at risk; by cohort alone the rows of every period add up, and each customer counts once.
    """
    if "period" in names or "tenure" in names:
        return np.bincount(key[is_at_risk], minlength=size).astype(np.int64)
    is_first = panel.tenure == 0
    customer = np.cumsum(is_first) - 1  # rows are in customer and period order
    has_risk = np.bincount(customer[is_at_risk], minlength=int(is_first.sum())) > 0
    return np.bincount(key[is_first][has_risk], minlength=size).astype(np.int64)


def _cell_labels(index: pd.Index) -> list[str]:
    """Group labels as a message shows them: ``2024-03``, or ``cohort 2024-01 tenure 3``."""
    if isinstance(index, pd.MultiIndex):
        return [
            " ".join(f"{name} {value}" for name, value in zip(index.names, label, strict=True))
            for label in index
        ]
    return [str(label) for label in index]


_POOL = (
    "their rates and intervals rest on few customers. Pool them into longer periods (a coarser "
    "period=), or accept wider intervals and pass min_customers= a smaller number"
)


def _rates(
    states: pd.DataFrame, by: GroupBy | Sequence[GroupBy], level: float, interval: Interval,
    of: Literal["retained", "lost"], min_customers: int,
) -> pd.DataFrame:  # fmt: skip
    if not 0.0 < level < 1.0:
        raise SchemaError(f"level must be in (0, 1), got {level!r}")
    threshold = _check_min_customers(min_customers)
    panel = _panel(states)
    key, index, names = _group_keys(panel, by)
    size = len(index)
    is_later = panel.tenure > 0  # acquisition periods have nobody at their start
    is_at_risk = is_later & ~panel.was_lost

    def count(mask: BoolArray) -> IntArray:
        return np.bincount(key[mask], minlength=size).astype(np.int64)

    start = count(is_at_risk)
    lost = count(panel.is_new_loss)
    new = count((panel.state == REACTIVATED) | (panel.state == ACQUIRED))
    keep = count(is_later) > 0
    customers = _customers_at_risk(panel, key, is_at_risk, names, size)
    counts = {"customers_start": start, "new": new, "customers_end": start - lost + new,
              "retained": start - lost, "lost": lost, "customers": customers}  # fmt: skip
    table = pd.DataFrame({name: values[keep] for name, values in counts.items()}, index=index[keep])
    successes = table[of].to_numpy(np.int64)
    trials = table["customers_start"].to_numpy(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):  # no customers at the start: NaN
        table["rate"] = successes / trials
    table["ci_lower"], table["ci_upper"] = _interval(successes, trials, level, interval)
    subject = f"{'retention' if of == 'retained' else 'churn'} rate by {' and '.join(names)}"
    table["is_small_sample"] = _flag_small(
        table["customers"], _cell_labels(table.index), subject=subject, unit="customers",
        fix=_POOL, threshold=threshold, cells=f"{names[0]}s" if len(names) == 1 else "cells",
        stacklevel=4,
    )  # fmt: skip
    return table


def retention_rate(
    states: pd.DataFrame,
    *,
    by: GroupBy | Sequence[GroupBy] = "period",
    level: float = 0.95,
    interval: Interval = "wilson",
    min_customers: int = SMALL_SAMPLE,
) -> pd.DataFrame:
    """Customer retention rate, CRR = (customers at end - new customers) / customers at start.

    In a period, the customers at the start are those active at the end of the previous period,
    the new ones are acquired or reactivated in the period (not customers at its start), and the
    customers at the end are the active ones; so CRR = retained / customers at start, where
    retained = customers at start - new losses. By ``"cohort"`` or ``"tenure"`` (or a list such as
    ``["cohort", "tenure"]``) the counts add up over the periods of the group: they count
    customer-periods, and the rate is the mean per-period retention of the group.

    Parameters
    ----------
    states
        The output of :func:`lifecycle_states`.
    by
        ``"period"``, ``"cohort"``, ``"tenure"`` or a list of them.
    level
        The confidence level of the interval.
    interval
        ``"wilson"`` (Wilson score interval, the default) or ``"exact"`` (Clopper-Pearson). Both
        treat each customer-period at risk as an independent Bernoulli trial.
    min_customers
        Groups with fewer ``customers`` than this (:data:`cvalue.metrics.SMALL_SAMPLE`, 100, by
        default) are flagged ``is_small_sample``; 0 flags none.

    Returns
    -------
    pandas.DataFrame
        By group (groups with no customer past its acquisition period are left out):
        ``customers_start``, ``new``, ``customers_end``, ``retained``, ``lost``, ``customers``
        (distinct customers among ``customers_start``: the same number by period or tenure, but by
        cohort each customer counts once however many periods add up), ``rate``, ``ci_lower``,
        ``ci_upper`` and ``is_small_sample`` (``customers < min_customers``).

    Warns
    -----
    SmallSampleWarning
        Once, when some groups have fewer than ``min_customers`` customers: how many, the first
        few, and the fix (longer periods, or a smaller ``min_customers`` to accept them).

    Examples
    --------
    >>> log = pd.DataFrame({"customer_id": [1, 1, 2, 2, 3],
    ...                     "timestamp": pd.to_datetime(["2024-01-05", "2024-02-02", "2024-01-10",
    ...                                                  "2024-03-01", "2024-02-03"])})
    >>> states = lifecycle_states(log, period="M", rule=InactivityRule(1))
    >>> rates = retention_rate(states, min_customers=2)  # a toy log: accept two customers
    >>> rates[["customers_start", "new", "customers_end", "rate", "ci_upper", "is_small_sample"]]
             customers_start  new  customers_end  rate  ci_upper  is_small_sample
    period
    2024-02                2    1              2   0.5  0.905469            False
    2024-03                2    1              1   0.0  0.657620            False
    """
    return _rates(states, by, level, interval, "retained", min_customers)


def churn_rate(
    states: pd.DataFrame,
    *,
    by: GroupBy | Sequence[GroupBy] = "period",
    level: float = 0.95,
    interval: Interval = "wilson",
    min_customers: int = SMALL_SAMPLE,
) -> pd.DataFrame:
    """Churn rate = new losses / customers at start, ``1 - retention_rate``, with its interval.

    Parameters, columns and the small-sample flag are those of :func:`retention_rate`; ``rate``
    is ``lost / customers_start`` and the interval is the binomial interval of the losses.
    """
    return _rates(states, by, level, interval, "lost", min_customers)


# --- sBG per cohort -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CohortRetentionFit:
    """The shifted-beta-geometric model fitted per cohort and shared, and the test between them.

    Attributes
    ----------
    shared
        One sBG for every fitted cohort.
    cohorts
        One sBG per fitted cohort, by the cohort's label (``str`` of its period).
    test
        Likelihood-ratio test of the shared model against the per-cohort ones
        (``df = 2 (cohorts - 1)``): a small p-value says the cohorts retain differently.
    params
        Per fitted cohort: ``customers``, ``lost`` (lifetimes seen to end), ``alpha``, ``beta``,
        ``retention_1`` (the share expected to survive the first period, ``S(1)``) and
        ``is_small_sample`` (fewer customers than ``min_customers``).
    projected
        Per fitted cohort (rows) and age 0 .. horizon (columns): the projected share never lost,
        ``S(age)`` of the cohort's own fit.
    excluded
        Cohorts left out of both fits (observed too briefly, or without any loss).
    """

    shared: ShiftedBetaGeo
    cohorts: dict[str, ShiftedBetaGeo]
    test: LikelihoodRatioTest
    params: pd.DataFrame
    projected: pd.DataFrame
    excluded: tuple[str, ...]


def _durations(panel: _Panel) -> tuple[IndexArray, IntArray, BoolArray]:
    """Per customer: the cohort, the sBG duration and whether it is censored.

    A lifetime lasts up to the last period with activity before the first loss: a customer last
    active at age ``a`` before the first loss churned after ``a + 1`` periods, however long the
    rule then took to declare the loss. That delay ``D`` (the longest seen, e.g. ``k - 1`` for a
    window of ``k`` periods, 0 for contracts) means a lifetime ending near the observation end is
    not declared yet, so every lifetime is censored at ``last age - D``, where whether it ended
    is known for every customer: beyond it, censoring would depend on the outcome.
    """
    first_rows = np.flatnonzero(panel.tenure == 0)
    last_rows = np.append(first_rows[1:] - 1, len(panel.tenure) - 1)
    customer = np.cumsum(panel.tenure == 0) - 1
    is_activity = np.isin(panel.state, (ACQUIRED, RETAINED, REACTIVATED))
    is_loss = panel.state == LOST
    first_loss = last_rows.copy()
    np.minimum.at(first_loss, customer[is_loss], np.flatnonzero(is_loss))
    is_lost = is_loss[first_loss]
    active_age = panel.tenure[_carried(is_activity)][first_loss]
    delays = panel.tenure[first_loss] - active_age - 1
    delay = int(delays[is_lost].max()) if is_lost.any() else 0
    known_until = np.maximum(panel.tenure[last_rows] - delay, 0)
    is_censored = ~is_lost | (active_age + 1 > known_until)
    duration = np.where(is_censored, np.minimum(active_age, known_until), active_age + 1)
    return panel.cohort[first_rows], duration.astype(np.int64), is_censored


def _cohort_groups(
    cohort: IntArray, labels: pd.PeriodIndex, cohort_period: PeriodLike | None
) -> tuple[IntArray, pd.PeriodIndex]:
    """Each customer's cohort group: the acquisition period or a coarser period holding it."""
    if cohort_period is None:
        return cohort, labels
    coarse = _calendar(cohort_period)
    grouped = labels.asfreq(coarse.freq, how="S")
    is_nested = (grouped.start_time <= labels.start_time) & (grouped.end_time >= labels.end_time)
    if not is_nested.all():
        raise SchemaError(
            f"cohort_period {cohort_period!r} must hold whole periods of the panel "
            f"({labels.freqstr}): e.g. months hold no whole weeks; choose a coarser calendar period"
        )
    unique, codes = np.unique(grouped.asi8, return_inverse=True)
    return np.asarray(codes.ravel()[cohort]), _period_index(unique, coarse.freq)


def _sbg_data(duration: IntArray, is_censored: BoolArray) -> pd.DataFrame:
    """Durations as weighted patterns, the form ``ShiftedBetaGeo.fit`` reads."""
    key = duration * 2 + is_censored
    patterns, weights = np.unique(key, return_counts=True)
    return pd.DataFrame({
        "duration": (patterns // 2).astype(np.float64),
        "is_censored": (patterns % 2).astype(np.float64),
        "weight": weights.astype(np.float64),
    })  # fmt: skip


def fit_cohort_retention(
    states: pd.DataFrame,
    *,
    cohort_period: PeriodLike | None = None,
    horizon_periods: int = 12,
    min_periods: int = 3,
    min_customers: int = SMALL_SAMPLE,
) -> CohortRetentionFit:
    """Fit the sBG per cohort and shared, project each cohort, test whether cohorts differ.

    Each customer's lifetime ends at the first loss (a reactivation starts no new lifetime) and
    lasts up to the last period with activity before it: a customer last active at age ``a``
    before the first loss has ``duration = a + 1``, however many periods the rule then took to
    declare the loss. With ``D`` the longest such delay seen (``k - 1`` for a window of ``k``
    periods, 0 for contracts), lifetimes are censored ``D`` periods before each customer's last
    age, up to where every loss has had time to be declared. The sBG (Fader & Hardie 2007,
    eq. (5)-(6)) is fitted on these durations per cohort and once for all cohorts; the
    likelihood-ratio statistic
    ``2 (sum of per-cohort LL - shared LL)`` is chi-square with ``2 (cohorts - 1)`` degrees of
    freedom under shared parameters. For a rule without an inactive state (a
    :class:`ContractRule`, ``InactivityRule(1)``) and acquisition-period cohorts, this is
    ``ShiftedBetaGeo().fit_survivors(cohort_retention(states).survivors)`` with ``shared`` True
    and False, and :func:`cvalue.models.lr_test` between them.

    Parameters
    ----------
    states
        The output of :func:`lifecycle_states`.
    cohort_period
        Group cohorts by a coarser calendar period (``"Y"``: acquisition years); each customer's
        age still counts periods since the customer's own acquisition, and censoring is per
        customer. By default each acquisition period is a cohort.
    horizon_periods
        How many periods ahead ``projected`` goes.
    min_periods
        A cohort is fitted when its longest lifetime known (after the censoring above) is at
        least this many periods and it has at least one loss; other cohorts are ``excluded``.
    min_customers
        Fitted cohorts of fewer customers than this (:data:`cvalue.metrics.SMALL_SAMPLE`, 100,
        by default) are flagged in ``params["is_small_sample"]``; 0 flags none. Their
        parameters are fitted all the same, with wide standard errors.

    Raises
    ------
    DataQualityError
        Fewer than two cohorts can be fitted.

    Warns
    -----
    SmallSampleWarning
        Once, when some fitted cohorts have fewer than ``min_customers`` customers: how many, the
        first few, and the fix (a coarser ``cohort_period``, or a smaller ``min_customers``).
    """
    if horizon_periods < 1 or min_periods < 1:
        raise SchemaError("horizon_periods and min_periods must be >= 1")
    threshold = _check_min_customers(min_customers)
    panel = _panel(states)
    cohort, duration, is_censored = _durations(panel)
    group, labels = _cohort_groups(cohort, panel.labels, cohort_period)
    fitted, excluded, frames = [], [], {}
    for code, label in enumerate(labels):
        members = group == code
        if not members.any():
            continue
        if duration[members].max() >= min_periods and (~is_censored[members]).any():
            frames[str(label)] = _sbg_data(duration[members], is_censored[members])
            fitted.append(code)
        else:
            excluded.append(str(label))
    if len(frames) < 2:
        raise DataQualityError(
            f"{len(frames)} cohort(s) can be fitted (observed >= {min_periods} periods, with a "
            "loss); at least two are needed to compare cohorts. Use a finer period, a coarser "
            "cohort_period or a smaller min_periods"
        )
    unit = _calendar(panel.labels.freqstr).grain
    fit = _fit(frames, labels[fitted], unit, horizon_periods, tuple(excluded))
    fit.params["is_small_sample"] = _flag_small(
        fit.params["customers"], list(frames), subject="sBG per cohort", unit="customers",
        fix="their parameters rest on few customers. Pool cohorts with cohort_period= (e.g. 'Q' "
        "or 'Y'), or accept wider intervals and pass min_customers= a smaller number",
        threshold=threshold, cells="fitted cohorts", stacklevel=3,
    )  # fmt: skip
    return fit


def _fit(
    frames: dict[str, pd.DataFrame],
    labels: pd.PeriodIndex,
    unit: TimeUnit | None,
    horizon_periods: int,
    excluded: tuple[str, ...],
) -> CohortRetentionFit:
    with warnings.catch_warnings():
        # small cohorts get one SmallSampleWarning for the call, not one per cohort's fit
        warnings.simplefilter("ignore", SmallBaseWarning)
        models = {label: ShiftedBetaGeo().fit(frame, unit=unit) for label, frame in frames.items()}
        shared = ShiftedBetaGeo().fit(pd.concat(frames.values(), ignore_index=True), unit=unit)
    statistic = 2.0 * (sum(m.log_likelihood_ for m in models.values()) - shared.log_likelihood_)
    degrees = 2 * (len(models) - 1)
    statistic = max(0.0, statistic)
    test = LikelihoodRatioTest(statistic, degrees, float(stats.chi2.sf(statistic, degrees)))
    index = labels.rename("cohort")
    ages = np.arange(horizon_periods + 1, dtype=np.float64)
    projected = pd.DataFrame(
        [np.asarray(model.survival(ages)) for model in models.values()],
        index=index, columns=pd.RangeIndex(horizon_periods + 1, name="age"),
    )  # fmt: skip
    params = pd.DataFrame(
        {
            "customers": [int(frame["weight"].sum()) for frame in frames.values()],
            "lost": [
                int(frame["weight"][frame["is_censored"] == 0].sum()) for frame in frames.values()
            ],
            "alpha": [float(m.params_["alpha"]) for m in models.values()],
            "beta": [float(m.params_["beta"]) for m in models.values()],
            "retention_1": projected[1].to_numpy(),
        },
        index=index,
    )
    return CohortRetentionFit(shared, models, test, params, projected, excluded)
