"""Lifecycle flows and cohort tables in SQL from per-customer events, without the panel.

A customer's states follow from its periods with activity alone: between two activity periods
``a`` and ``b`` (or after the last one, up to the observation end's period ``E``) the customer is
inactive until the window runs out and lost from then on. The period ``l`` in which it runs out
depends only on ``a`` (and the last activity day in it): ``a + k`` for a window of ``k`` periods;
for a window of ``w`` days, the period holding the day ``w`` days after the last activity (at the
earliest ``a + 1``), when that day is not after the observation end (``E`` is judged on the
observation end, not on its last day). So each activity row gives:

- an acquisition (the customer's first row), a reactivation (the window after the previous row ran
  out before this one) or a retention;
- a new loss in period ``l``, when ``l`` comes before the next row (or is at most ``E``).

The statements here read the activity rows once (``LAG``/``LEAD`` over each customer's activity
rows, not over a panel of every period) and count these events per period, or per cohort and
period; the stocks are running sums over the few periods, done in numpy:
``lost(t) = sum of new losses - reactivations up to t`` and ``customers(t) = sum of acquisitions
up to t``. The results equal those of the panel (``cvalue.lifecycle.sql._states``) exactly.

Periods are grain indexes (:func:`cvalue.io.sqlkit.grain_index`), consecutive integers: the
position of period ``t`` is ``t - first``.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal

import numpy as np
import pandas as pd
import sqlalchemy as sa

from cvalue.io.sqlkit import Expression, FloorDivide, MonthStart
from cvalue.lifecycle.periods import IntArray
from cvalue.lifecycle.states import ACQUIRED, INACTIVE, LOST, REACTIVATED, RETAINED, STATES
from cvalue.units import DAYS_PER_WEEK, DAYS_PER_YEAR, EPOCH_WEEKDAY_SHIFT, TimeUnit

__all__: list[str] = []

# The month of day number x (months since January 1970) is m or m + 1, with
# m = floor((x - 1) / mean month) and the Gregorian mean month of 146097 / 4800 days: true of every
# day of the years 1 to 9999 (the calendar drifts from its mean by less than a month)
_MEAN_MONTH = Fraction(str(DAYS_PER_YEAR)) / 12
_DAYS_PER_WEEK = round(DAYS_PER_WEEK)


@dataclass(frozen=True, slots=True)
class _Events:
    """Where the events come from: activity rows and how the rule judges them.

    ``activity`` has one row per customer and period with activity (``customer``, ``period``,
    ``last_day``); ``end_day`` and ``end_period`` are the observation end and its period.
    """

    activity: sa.Subquery
    window: tuple[Literal["periods", "days"], int]
    end_day: int
    end_period: int
    grain: TimeUnit


def _month_of_day(day: Expression) -> Expression:
    """Months since January 1970 of a day number (an estimate, corrected by one month start)."""
    shifted = sa.cast(day - 1, sa.BigInteger) * _MEAN_MONTH.denominator
    estimate = FloorDivide(shifted, _MEAN_MONTH.numerator)
    return estimate + sa.case((MonthStart(estimate + 1) <= day, 1), else_=0)


def _grain_of_day(day: Expression, grain: TimeUnit) -> Expression:
    """The grain index of a day number, as :func:`cvalue.io.sqlkit.grain_index` of its date."""
    if grain is TimeUnit.DAY:
        return day
    if grain is TimeUnit.WEEK:
        return FloorDivide(day + EPOCH_WEEKDAY_SHIFT, _DAYS_PER_WEEK)
    if grain is TimeUnit.MONTH:
        return _month_of_day(day)
    return FloorDivide(_month_of_day(day), round(grain.per(TimeUnit.MONTH)))


def _runs_out(events: _Events) -> sa.Subquery:
    """The activity rows with ``runs_out``: the period a loss would start, ``E + 1`` if never.

    The window after the row runs out in ``runs_out`` unless an activity comes first; ``E + 1``
    stands for "not by the observation end".
    """
    rows, (kind, length) = events.activity, events.window
    never = events.end_period + 1
    if kind == "periods":
        period = rows.c.period + length
        runs_out = sa.case((period > events.end_period, never), else_=period)
    else:
        out_day = rows.c.last_day + length
        period = _grain_of_day(out_day, events.grain)
        runs_out = sa.case(
            (out_day > events.end_day, never),
            (period > rows.c.period, period),
            else_=rows.c.period + 1,  # the window ran out within the period: lost in the next
        )
    return sa.select(rows.c.customer, rows.c.period, runs_out.label("runs_out")).subquery(
        "runs_out"
    )


def _event_rows(events: _Events) -> sa.Subquery:
    """Per activity row: its state code (acquired, retained, reactivated) and ``loss_period``.

    ``loss_period`` is the period of the new loss after the row, ``E + 1`` when there is none.
    """
    rows = _runs_out(events)
    ordered: dict[str, Any] = {"partition_by": rows.c.customer, "order_by": rows.c.period}
    previous_out = sa.func.lag(rows.c.runs_out).over(**ordered)
    next_period = sa.func.lead(rows.c.period).over(**ordered)
    never = events.end_period + 1
    state = sa.case(
        (previous_out.is_(None), ACQUIRED),
        (previous_out < rows.c.period, REACTIVATED),
        else_=RETAINED,
    )
    is_lost = rows.c.runs_out < sa.func.coalesce(next_period, never)
    loss_period = sa.case((is_lost, rows.c.runs_out), else_=never)
    return sa.select(
        rows.c.customer, rows.c.period, state.label("state"), loss_period.label("loss_period")
    ).subquery("events")


def _counts(rows: sa.Subquery, *, with_first_losses: bool) -> list[sa.Label[Any]]:
    """Per group: rows by state, all rows (the losses, at ``loss_period``), first losses."""
    counts = [
        sa.func.sum(sa.case((rows.c.state == code, 1), else_=0)).label(STATES[code])
        for code in (ACQUIRED, RETAINED, REACTIVATED)
    ]
    counts.append(sa.func.count().label("rows"))
    if with_first_losses:
        counts.append(sa.func.sum(rows.c.is_first_loss).label("first_losses"))
    return counts


def _flow_events(events: _Events) -> sa.Select[Any]:
    """Event counts by ``period`` and ``loss_period``: a few rows per period."""
    rows = _event_rows(events)
    keys = (rows.c.period, rows.c.loss_period)
    return sa.select(*keys, *_counts(rows, with_first_losses=False)).group_by(*keys)


def _cohort_events(events: _Events) -> sa.Select[Any]:
    """Event counts by ``cohort``, ``period`` and ``loss_period``, with first losses."""
    rows = _event_rows(events)
    customer: dict[str, Any] = {"partition_by": rows.c.customer}
    first_loss = sa.func.min(rows.c.loss_period).over(**customer)
    is_first = sa.and_(rows.c.loss_period == first_loss, rows.c.loss_period <= events.end_period)
    with_cohort = sa.select(
        rows.c.state, rows.c.period, rows.c.loss_period,
        sa.func.min(rows.c.period).over(**customer).label("cohort"),
        sa.case((is_first, 1), else_=0).label("is_first_loss"),
    ).subquery("cohort_events")  # fmt: skip
    keys = (with_cohort.c.cohort, with_cohort.c.period, with_cohort.c.loss_period)
    return sa.select(*keys, *_counts(with_cohort, with_first_losses=True)).group_by(*keys)


# --- the counts laid out --------------------------------------------------------------------------


def _positions(values: pd.Series, first: int) -> IntArray:
    return np.asarray(values.to_numpy(dtype=np.int64) - first, dtype=np.int64)


def _column(rows: pd.DataFrame, name: str) -> IntArray:
    return np.asarray(rows[name].to_numpy(dtype=np.int64), dtype=np.int64)


def _flow_cells(rows: pd.DataFrame, first: int, end_period: int) -> tuple[IntArray, IntArray]:
    """Per period (``first .. end_period``): state counts (periods x states) and new losses."""
    n = end_period - first + 1
    period, loss = _positions(rows["period"], first), _positions(rows["loss_period"], first)
    cells = np.zeros((n, len(STATES)), dtype=np.int64)
    for code in (ACQUIRED, RETAINED, REACTIVATED):
        np.add.at(cells[:, code], period, _column(rows, STATES[code]))
    new_losses = np.zeros(n + 1, dtype=np.int64)  # the last cell: no loss by the end
    np.add.at(new_losses, loss, _column(rows, "rows"))
    cells[:, LOST] = np.cumsum(new_losses[:n] - cells[:, REACTIVATED])
    customers = np.cumsum(cells[:, ACQUIRED])
    cells[:, INACTIVE] = customers - cells.sum(axis=1)
    return cells, new_losses[:n]


def _cohort_cells(
    rows: pd.DataFrame, first: int, end_period: int
) -> tuple[IntArray, IntArray, IntArray]:
    """Cohort sizes, and active and never-lost customers by cohort (rows) and age (columns).

    Cells of ages a cohort has not reached are 0.
    """
    n = end_period - first + 1
    cohort = _positions(rows["cohort"], first)
    period, loss = _positions(rows["period"], first), _positions(rows["loss_period"], first)
    sizes = np.zeros(n, dtype=np.int64)
    np.add.at(sizes, cohort, _column(rows, STATES[ACQUIRED]))
    changes = np.zeros((n, n + 1), dtype=np.int64)  # lost minus won back, by cohort and period
    np.add.at(changes, (cohort, loss), _column(rows, "rows"))
    np.subtract.at(changes, (cohort, period), _column(rows, STATES[REACTIVATED]))
    first_losses = np.zeros((n, n + 1), dtype=np.int64)
    np.add.at(first_losses, (cohort, loss), _column(rows, "first_losses"))
    size_column = sizes[:, np.newaxis]
    active = size_column - np.cumsum(changes[:, :n], axis=1)
    survivors = size_column - np.cumsum(first_losses[:, :n], axis=1)
    return sizes, _by_age(active), _by_age(survivors)


def _by_age(by_period: IntArray) -> IntArray:
    """A cohort x period table as cohort x age: row ``c``, age ``j`` is period ``c + j``."""
    n = len(by_period)
    period = np.arange(n)[:, np.newaxis] + np.arange(n)[np.newaxis, :]
    cohort = np.arange(n)[:, np.newaxis]
    return np.where(period < n, by_period[cohort, np.minimum(period, n - 1)], 0)
