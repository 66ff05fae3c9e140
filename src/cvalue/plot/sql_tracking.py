"""The tracking table of a log too large for memory: counted in the database, per day.

:func:`cvalue.plot.tracking_table` reads every transaction. What it draws needs far less: the
cohort's repeat purchases per day and, for the model's expected curve, how many of its customers
made their first purchase on each day. The database counts both (:func:`sql_tracking_counts`);
:func:`tracking_table_from_counts` turns the two small tables into the same table as
:func:`~cvalue.plot.tracking_table` gives on the same transactions.

Statements are SQLAlchemy Core on :mod:`cvalue.io.sqlkit`'s day and grain arithmetic: SQLite,
DuckDB and PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from cvalue.errors import DataQualityError, SchemaError
from cvalue.io.sqlkit import DayNumber, Relation, day_of, fetch, grain_index
from cvalue.models import PurchaseModel
from cvalue.plot.tables import _by_period, _expected_by_opportunity, model_unit
from cvalue.units import DateLike, TimeUnit, as_time_unit, as_timestamp

__all__ = ["TrackingCounts", "sql_tracking_counts", "tracking_table_from_counts"]


@dataclass(frozen=True, slots=True)
class TrackingCounts:
    """A cohort's first purchases and repeat purchases, counted per day.

    Attributes
    ----------
    births
        Customers of the cohort by the day of their first purchase (days since 1970-01-01).
    repeats
        The cohort's repeat purchases by day, up to the observation end.
    """

    births: pd.Series
    repeats: pd.Series


def sql_tracking_counts(
    connection: sa.Connection,
    relation: Relation,
    *,
    calibration_end: DateLike,
    observation_end: DateLike,
    grain: TimeUnit | str = TimeUnit.DAY,
) -> TrackingCounts:
    """Count, in the database, what :func:`cvalue.plot.tracking_table` counts in pandas.

    The cohort is the customers whose first purchase is on or before ``calibration_end``. A
    customer's purchases merge by ``grain`` (the day for a continuous-time model, the model's
    unit for a discrete-time one): a repeat purchase is the first day of each later grain than
    the customer's first. Two aggregates come back, whatever the number of customers: one row
    per day with first purchases, one per day with repeat purchases.

    Parameters
    ----------
    connection, relation
        An open connection, and the purchases (:class:`cvalue.io.sqlkit.Relation`; returns are
        left out of its ``rows``).
    calibration_end, observation_end
        The cohort's last first-purchase day, and the last day counted.
    grain
        The calendar period within which a customer's purchases merge.
    """
    calibration_day = day_of(calibration_end, "calibration_end")
    end_day = day_of(observation_end, "observation_end")
    timestamp = relation.column(relation.timestamp)
    grains = (
        sa.select(
            relation.column(relation.customer_id).label("customer"),
            sa.func.min(DayNumber(timestamp)).label("day"),
        )
        .group_by(
            relation.column(relation.customer_id), grain_index(timestamp, as_time_unit(grain))
        )
        .cte("tracking_grains")
    )
    firsts = (
        sa.select(grains.c.customer, sa.func.min(grains.c.day).label("day"))
        .group_by(grains.c.customer)
        .cte("tracking_firsts")
    )
    births = (
        sa.select(sa.literal(0).label("is_repeat"), firsts.c.day, sa.func.count().label("n"))
        .where(firsts.c.day <= calibration_day)
        .group_by(firsts.c.day)
    )
    joined = grains.join(firsts, grains.c.customer == firsts.c.customer)
    repeats = (
        sa.select(sa.literal(1).label("is_repeat"), grains.c.day, sa.func.count().label("n"))
        .select_from(joined)
        .where(
            firsts.c.day <= calibration_day, grains.c.day > firsts.c.day, grains.c.day <= end_day
        )
        .group_by(grains.c.day)
    )
    statement: sa.Select[Any] = sa.select(sa.union_all(births, repeats).subquery("tracking"))
    rows = fetch(connection, statement)
    counted = {
        is_repeat: pd.Series(
            part["n"].to_numpy(dtype=np.int64), index=part["day"].to_numpy(dtype=np.int64)
        ).sort_index()
        for is_repeat, part in ((flag, rows[rows["is_repeat"] == flag]) for flag in (0, 1))
    }
    return TrackingCounts(births=counted[0], repeats=counted[1])


def tracking_table_from_counts(
    model: PurchaseModel,
    counts: TrackingCounts,
    *,
    calibration_end: DateLike,
    observation_end: DateLike,
    period: TimeUnit | str = TimeUnit.WEEK,
) -> pd.DataFrame:
    """:func:`cvalue.plot.tracking_table` from the cohort's counts per day.

    ``counts`` come from :func:`sql_tracking_counts` (with the grain the model needs: the day,
    or a discrete-time model's unit). The table is the one :func:`~cvalue.plot.tracking_table`
    gives on the same transactions: the cohort expects ``sum_d n_d E[X(c - d)]`` by day ``c``,
    ``n_d`` customers first seen on day ``d`` (Fader, Hardie & Lee 2005, figure 3).

    Raises
    ------
    SchemaError
        If ``observation_end`` is not after ``calibration_end``.
    DataQualityError
        If the cohort is empty.
    """
    unit = model_unit(model)
    calibration_day = day_of(calibration_end, "calibration_end")
    end_day = day_of(observation_end, "observation_end")
    if end_day <= calibration_day:
        raise SchemaError(
            f"observation_end ({as_timestamp(observation_end)}) must come after calibration_end "
            f"({as_timestamp(calibration_end)})"
        )
    births = counts.births[counts.births > 0]
    if births.empty:
        raise DataQualityError(
            "no customer made a first purchase on or before calibration_end: the cohort to "
            "track is empty; pass a later calibration_end"
        )
    birth_days = births.index.to_numpy(dtype=np.int64)
    start_day = int(birth_days.min())
    n_days = end_day - start_day + 1
    repeats = counts.repeats
    actual_daily = np.zeros(n_days)
    actual_daily[repeats.index.to_numpy(dtype=np.int64) - start_day] = repeats.to_numpy(
        dtype=np.float64
    )
    if model.discrete_time:
        # one day per customer: the opportunity path counts births per period itself. No
        # discrete-time model is scored chunk by chunk, so this holds a cohort of a small base
        cohort = np.repeat(birth_days, births.to_numpy(dtype=np.int64))
        expected = _expected_by_opportunity(model, cohort, start_day, end_day, unit)
    else:
        born = np.zeros(n_days)
        born[birth_days - start_day] = births.to_numpy(dtype=np.float64)
        ages = np.arange(n_days) / unit.days
        curve = np.array([model.expected_purchases_new(horizon=float(age)) for age in ages])
        expected = np.convolve(born, curve)[:n_days]
    return _by_period(actual_daily, expected, start_day, as_time_unit(period))
