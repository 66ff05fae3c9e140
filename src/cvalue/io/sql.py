"""SQL pushdown: customer summaries, calibration/holdout splits and pattern tables in the database.

The functions here give the same results as :func:`cvalue.rfm_summary`,
:func:`cvalue.calibration_holdout` and :func:`cvalue.compress` on a pandas frame of the same rows,
but the aggregation runs inside the database (SQLite, DuckDB or PostgreSQL) and only one row per
customer, or per pattern, comes back.

They are SQL twins built on :mod:`cvalue.io.sqlkit`: every statement is built from SQLAlchemy Core
expressions; table and column names go through SQLAlchemy's quoting and values through bound
parameters. Time is handled as in :mod:`cvalue.summary`:

- a timestamp becomes its calendar day (wall-clock time) as a day number since 1970-01-01;
- a grain is an index: the day number, a Monday-based week, or a calendar month, quarter or year
  counted from January 1970;
- rows flagged ``is_return`` are not purchases and are left out, as in the pandas path;
- purchases merge per customer and grain (``GROUP BY customer, grain``), then per customer; the
  first grain's total is no repeat purchase (PostgreSQL counts each customer's distinct grains
  and adds the amounts outside the first grain in one ``GROUP BY customer``: the same numbers);
- the database returns whole numbers of grains (when the grain is the unit) or of days between the
  grains' first days, and numpy divides by the unit's length in days, as the pandas path does, so
  ``recency`` and ``T`` are bit-identical to it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.sql.expression import SelectBase

from cvalue.errors import DataQualityError, SchemaError
from cvalue.io._database import connection_to
from cvalue.io.schema import Columns
from cvalue.io.sqlkit import (
    _EPOCH,
    _NO_PURCHASES,
    DayNumber,
    Expression,
    Relation,
    check_rows,
    day_of,
    elapsed,
    fetch,
    grain_index,
    in_unit,
    optional_day,
    resolve_relation,
)
from cvalue.units import DateLike, Grain, TimeUnit, as_time_unit

__all__ = ["Grain", "sql_calibration_holdout", "sql_pattern_table", "sql_rfm_summary"]


_SUMMARY_NAMES = {"recency": "recency", "age": "T"}


# --- observation ends -----------------------------------------------------------------------------


def _date_of(day: int) -> dt.date:
    return _EPOCH + dt.timedelta(days=day)


# --- the statements -------------------------------------------------------------------------------


def _purchases(
    relation: Relation, grain: TimeUnit, *, after: int | None = None, until: int | None = None
) -> sa.Subquery:
    """The purchases with their grain: ``customer, grain[, amount]``.

    Only rows whose day is in ``(after, until]`` take part (all rows by default).
    """
    timestamp = relation.column(relation.timestamp)
    selected: list[Expression] = [
        relation.column(relation.customer_id).label("customer"),
        grain_index(timestamp, grain).label("grain"),
    ]
    if relation.amount is not None:
        # float64, as pandas.to_numeric makes of the amounts before it sums them
        selected.append(sa.cast(relation.column(relation.amount), sa.Double).label("amount"))
    purchases = sa.select(*selected)
    if after is not None:
        purchases = purchases.where(DayNumber(timestamp) > after)
    if until is not None:
        purchases = purchases.where(DayNumber(timestamp) <= until)
    return purchases.subquery("purchases")


def _grains(purchases: sa.Subquery) -> sa.Subquery:
    """Purchases merged per customer and grain: ``customer, grain[, total]``."""
    totals = [sa.func.sum(purchases.c.amount).label("total")] if "amount" in purchases.c else []
    return (
        sa.select(purchases.c.customer, purchases.c.grain, *totals)
        .group_by(purchases.c.customer, purchases.c.grain)
        .subquery("grains")
    )


def _with_first_grain(purchases: sa.Subquery, grains: sa.Subquery, dialect: str) -> sa.Subquery:
    """The grains with their customer's first grain, ``first_grain``.

    SQLite aggregates the grains from purchases sorted by customer and grain, and a window over
    them costs little more; the join below is slower there (at 100k customers, a fifth longer;
    PostgreSQL took 2.3 times as long, and has its own form, :func:`_customers_by_purchase`).
    DuckDB plans that window as a join of the grains to their ``GROUP BY customer`` and so
    computes the grains, its costliest step (a hash aggregate of about one group per row),
    twice; there the first grain is a ``GROUP BY customer`` of the purchases (one more scan,
    cheap), joined to the grains.
    """
    if dialect != "duckdb":
        first_grain = sa.func.min(grains.c.grain).over(partition_by=grains.c.customer)
        return sa.select(*grains.c, first_grain.label("first_grain")).subquery("ranked")
    firsts = (
        sa.select(purchases.c.customer, sa.func.min(purchases.c.grain).label("first_grain"))
        .group_by(purchases.c.customer)
        .subquery("firsts")
    )
    joined = grains.join(firsts, grains.c.customer == firsts.c.customer)
    return sa.select(*grains.c, firsts.c.first_grain).select_from(joined).subquery("ranked")


def _customers(
    purchases: sa.Subquery, grain: TimeUnit, unit: TimeUnit, end_day: int, *, dialect: str
) -> sa.Subquery:
    """Per customer: frequency, recency and age (whole grains or days) and repeat total.

    ``dialect`` names the database, which decides the statement's form: PostgreSQL's is
    :func:`_customers_by_purchase`; the others merge the purchases per customer and grain first.
    """
    if dialect == "postgresql":
        return _customers_by_purchase(purchases, grain, unit, end_day)
    grains = _grains(purchases)
    ranked = _with_first_grain(purchases, grains, dialect) if "total" in grains.c else grains
    return _per_customer(ranked, sa.func.count(), "total", grain, unit, end_day)


def _customers_by_purchase(
    purchases: sa.Subquery, grain: TimeUnit, unit: TimeUnit, end_day: int
) -> sa.Subquery:
    """PostgreSQL's form: the first grain by a window over the purchases, one ``GROUP BY``.

    The frequency counts each customer's distinct grains; the repeat total adds the amounts
    that are not in the first grain (the same sum as the repeat grains' totals, in another
    order). PostgreSQL runs this by sorting the purchases by customer, once. Merged per customer
    and grain first, the purchases were hashed into customer-days (about one per purchase)
    whenever ``work_mem`` allowed it, and then sorted by customer for the window: at 20M
    transactions, 65.8 s with ``work_mem = 1GB`` against 23.7 s for this form (25.6 s against
    21.8 s at the default 4MB; docs/scale_benchmarks.md).
    """
    ranked = purchases
    if "amount" in purchases.c:
        first_grain = sa.func.min(purchases.c.grain).over(partition_by=purchases.c.customer)
        ranked = sa.select(*purchases.c, first_grain.label("first_grain")).subquery("ranked")
    n_grains = sa.func.count(sa.distinct(ranked.c.grain))
    return _per_customer(ranked, n_grains, "amount", grain, unit, end_day)


def _per_customer(
    ranked: sa.Subquery,
    n_grains: Expression,
    value: str,
    grain: TimeUnit,
    unit: TimeUnit,
    end_day: int,
) -> sa.Subquery:
    """The ``GROUP BY customer`` of ``ranked`` (grains or purchases).

    ``n_grains`` counts the customer's grains; ``value``, when ``ranked`` has that column, goes
    to the repeat total unless its row is in the customer's ``first_grain``.
    """
    first, last = sa.func.min(ranked.c.grain), sa.func.max(ranked.c.grain)
    end = grain_index(sa.literal(_date_of(end_day), sa.Date), grain)
    selected: list[Expression] = [
        ranked.c.customer,
        (n_grains - 1).label("frequency"),
        elapsed(first, last, grain, unit).label("recency"),
        elapsed(first, end, grain, unit).label("age"),
    ]
    if value in ranked.c:
        repeat_total = sa.func.sum(
            sa.case((ranked.c.grain != ranked.c.first_grain, ranked.c[value]))
        )
        selected.append(sa.func.coalesce(repeat_total, 0.0).label("repeat_total"))
    return sa.select(*selected).group_by(ranked.c.customer).subquery("customers")


def _holdout(
    relation: Relation, calibration: sa.Subquery, grain: TimeUnit, calibration_day: int
) -> sa.Subquery:
    """Per calibration customer: holdout grains and total (0 without holdout purchases)."""
    grains = _grains(_purchases(relation, grain, after=calibration_day))
    per_customer = [sa.func.count().label("n_grains")]
    if "total" in grains.c:
        per_customer.append(sa.func.sum(grains.c.total).label("total"))
    holdout = (
        sa.select(grains.c.customer, *per_customer).group_by(grains.c.customer).subquery("holdout")
    )
    joined = calibration.outerjoin(holdout, calibration.c.customer == holdout.c.customer)
    selected = [
        *calibration.c,
        sa.func.coalesce(holdout.c.n_grains, 0).label("frequency_holdout"),
    ]
    if "total" in holdout.c:
        selected.append(sa.func.coalesce(holdout.c.total, 0.0).label("total_holdout"))
    return sa.select(*selected).select_from(joined).subquery("calibration_holdout")


def _new_in_holdout(
    relation: Relation, calibration: sa.Subquery, grain: TimeUnit, calibration_day: int
) -> sa.Select[tuple[int]]:
    """The number of customers whose first purchase is in the holdout."""
    grains = _grains(_purchases(relation, grain, after=calibration_day))
    known = sa.select(calibration.c.customer)
    return sa.select(sa.func.count(sa.distinct(grains.c.customer))).where(
        grains.c.customer.not_in(known)
    )


def _calibration_holdout(
    relation: Relation,
    grain: TimeUnit,
    unit: TimeUnit,
    calibration_day: int,
    end_day: int,
    *,
    dialect: str,
) -> tuple[sa.Select[Any], sa.Select[tuple[int]]]:
    """The calibration/holdout rows (with the holdout's duration) and the new customers' count."""
    purchases = _purchases(relation, grain, until=calibration_day)
    calibration = _customers(purchases, grain, unit, calibration_day, dialect=dialect)
    holdout = _holdout(relation, calibration, grain, calibration_day)
    statement = sa.select(holdout, _holdout_duration(grain, unit, calibration_day, end_day))
    return statement, _new_in_holdout(relation, calibration, grain, calibration_day)


def _holdout_duration(
    grain: TimeUnit, unit: TimeUnit, calibration_day: int, end_day: int
) -> sa.Label[Any]:
    """The holdout's length (whole grains or days), as ``duration``."""
    duration = elapsed(
        grain_index(sa.literal(_date_of(calibration_day), sa.Date), grain),
        grain_index(sa.literal(_date_of(end_day), sa.Date), grain),
        grain,
        unit,
    )
    return duration.label("duration")


def _customer_index(customers: pd.Series, name: str) -> pd.Index:
    """The customer ids as an index, typed as pandas types a list of their values.

    Integer ids whose values all fit int64 (any signed type, unsigned up to 32 bits) become int64
    directly: going through a list of Python ints, as every other type does, costs 0.1 s per
    million customers.
    """
    dtype = customers.dtype
    is_int64_safe = isinstance(dtype, np.dtype) and (
        dtype.kind == "i" or (dtype.kind == "u" and dtype.itemsize < 8)
    )
    values = customers.to_numpy(dtype=np.int64) if is_int64_safe else customers.to_list()
    index: pd.Index = pd.Index(values, name=name)
    return index


def _summary_frame(
    rows: pd.DataFrame, relation: Relation, grain: TimeUnit, unit: TimeUnit
) -> pd.DataFrame:
    """The (sorted) customer rows as :func:`cvalue.rfm_summary` lays them out."""
    frequency = rows["frequency"].to_numpy(dtype=np.int64)
    values: dict[str, npt.NDArray[np.generic]] = {"frequency": frequency}
    for column, name in _SUMMARY_NAMES.items():
        values[name] = in_unit(rows[column], grain, unit)
    if relation.amount is not None:
        repeat_totals = rows["repeat_total"].to_numpy(dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):  # 0 / 0 for one-time buyers
            values["monetary_value"] = np.where(frequency > 0, repeat_totals / frequency, 0.0)
    index = _customer_index(rows["customer"], relation.customer_id)
    summary = pd.DataFrame(values, index=index)
    summary.attrs["unit"] = unit.value  # as cvalue.rfm_summary: models read the unit here
    return summary


def _holdout_columns(rows: pd.DataFrame, has_amount: bool) -> dict[str, npt.NDArray[np.generic]]:
    n_grains = rows["frequency_holdout"].to_numpy(dtype=np.int64)
    columns: dict[str, npt.NDArray[np.generic]] = {"frequency_holdout": n_grains}
    if has_amount:
        totals = rows["total_holdout"].to_numpy(dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):  # 0 / 0 without holdout purchases
            columns["monetary_value_holdout"] = np.where(n_grains > 0, totals / n_grains, 0.0)
    return columns


# --- public functions -----------------------------------------------------------------------------


def _units(unit: TimeUnit | str, grain: Grain | TimeUnit) -> tuple[TimeUnit, TimeUnit]:
    return as_time_unit(unit), as_time_unit(grain)


def _summary_parts(
    connection: sa.Connection,
    *,
    table: str | None,
    query: SelectBase | None,
    columns: Columns | None,
    observation_end: DateLike | None,
    unit: TimeUnit | str,
    grain: Grain | TimeUnit,
    schema: str | None,
) -> tuple[Relation, sa.Subquery, TimeUnit, TimeUnit, int]:
    """The summary's statement, its rows checked once: relation, customers, grain, unit, end day.

    The one aggregate check also finds the default observation end (the last purchase's day).
    """
    unit_, grain_unit = _units(unit, grain)
    end_day = optional_day(observation_end, "observation_end")
    relation = resolve_relation(connection, table=table, query=query, schema=schema,
                                columns=columns)  # fmt: skip
    last_day = check_rows(connection, relation, end_day)
    end_day = last_day if end_day is None else end_day
    customers = _customers(
        _purchases(relation, grain_unit), grain_unit, unit_, end_day,
        dialect=connection.dialect.name,
    )  # fmt: skip
    return relation, customers, grain_unit, unit_, end_day


def sql_rfm_summary(
    source: str | sa.Engine,
    *,
    table: str | None = None,
    query: SelectBase | None = None,
    columns: Columns | None = None,
    observation_end: DateLike | None = None,
    unit: TimeUnit | str = TimeUnit.WEEK,
    grain: Grain | TimeUnit = "day",
    schema: str | None = None,
) -> pd.DataFrame:
    """:func:`cvalue.rfm_summary` computed inside the database.

    Parameters
    ----------
    source
        A database URL (``"duckdb:///crm.duckdb"``) or a SQLAlchemy engine.
    table, query
        Exactly one: the name of a table, or a ``sa.select(...)`` of the rows.
    columns
        Which columns hold the customer id, timestamp, amount and returns flag. By default the
        canonical names, with ``is_return`` used when the source has it (returns are left out).
    observation_end
        The end of the observation period (date-like); defaults to the last purchase's day.
    unit
        The unit of ``recency`` and ``T``.
    grain
        The calendar period within which a customer's purchases merge into one.
    schema
        The schema of ``table``.

    Returns
    -------
    pandas.DataFrame
        Indexed by customer id (sorted), with ``frequency``, ``recency``, ``T`` and, when the
        source has the amount column, ``monetary_value``: the same as :func:`cvalue.rfm_summary`.

    Raises
    ------
    SchemaError
        A table or column does not exist (the message lists what does), or an option is invalid.
    DataQualityError
        Missing ids, timestamps or amounts, or purchases after ``observation_end``.
    DatabaseError
        The database failed; the driver's error is chained.

    Examples
    --------
    >>> engine = sa.create_engine("sqlite://")
    >>> log = pd.DataFrame({"customer_id": [1, 1, 1, 2],
    ...                     "timestamp": pd.to_datetime(["2024-01-01", "2024-01-01",
    ...                                                  "2024-01-15", "2024-01-08"]),
    ...                     "amount": [10.0, 5.0, 20.0, 7.0]})
    >>> _ = log.to_sql("transactions", engine, index=False)
    >>> sql_rfm_summary(engine, table="transactions", observation_end="2024-01-29")
                 frequency  recency    T  monetary_value
    customer_id
    1                    1      2.0  4.0            20.0
    2                    0      0.0  3.0             0.0
    """
    with connection_to(source) as connection:
        relation, customers, grain_unit, unit, _ = _summary_parts(
            connection, table=table, query=query, columns=columns,
            observation_end=observation_end, unit=unit, grain=grain, schema=schema,
        )  # fmt: skip
        rows = fetch(connection, sa.select(customers))
    return _summary_frame(rows, relation, grain_unit, unit)


def sql_calibration_holdout(
    source: str | sa.Engine,
    *,
    calibration_end: DateLike,
    observation_end: DateLike,
    table: str | None = None,
    query: SelectBase | None = None,
    columns: Columns | None = None,
    unit: TimeUnit | str = TimeUnit.WEEK,
    grain: Grain | TimeUnit = "day",
    schema: str | None = None,
) -> pd.DataFrame:
    """:func:`cvalue.calibration_holdout` computed inside the database.

    Parameters are those of :func:`sql_rfm_summary`, with ``calibration_end`` (the last day of
    the calibration period) before ``observation_end`` (the last day of the holdout).

    Returns
    -------
    pandas.DataFrame
        The calibration summary of the customers whose first purchase is in the calibration
        period, plus ``frequency_holdout``, ``monetary_value_holdout`` (when the source has
        amounts) and ``duration_holdout``; ``attrs["n_new_in_holdout"]`` counts the customers
        whose first purchase is in the holdout.
    """
    unit, grain_unit = _units(unit, grain)
    calibration_day = day_of(calibration_end, "calibration_end")
    end_day = day_of(observation_end, "observation_end")
    if calibration_day >= end_day:
        raise SchemaError(
            f"calibration_end ({calibration_end}) must be before observation_end "
            f"({observation_end})"
        )
    with connection_to(source) as connection:
        relation = resolve_relation(
            connection, table=table, query=query, schema=schema, columns=columns
        )
        check_rows(connection, relation, end_day)
        statement, new_customers = _calibration_holdout(
            relation, grain_unit, unit, calibration_day, end_day, dialect=connection.dialect.name
        )
        rows = fetch(connection, statement)
        n_new = connection.execute(new_customers).scalar_one()
    if len(rows) == 0:
        raise DataQualityError(_NO_PURCHASES)
    result = _summary_frame(rows, relation, grain_unit, unit)
    result = result.assign(**_holdout_columns(rows, relation.amount is not None))
    result["duration_holdout"] = float(in_unit(rows["duration"].iloc[:1], grain_unit, unit)[0])
    result.attrs["n_new_in_holdout"] = int(n_new)
    return result


def sql_pattern_table(
    source: str | sa.Engine,
    *,
    table: str | None = None,
    query: SelectBase | None = None,
    columns: Columns | None = None,
    observation_end: DateLike | None = None,
    unit: TimeUnit | str = TimeUnit.WEEK,
    grain: Grain | TimeUnit = "day",
    schema: str | None = None,
) -> pd.DataFrame:
    """The distinct ``(frequency, recency, T)`` of the customers and how many share each.

    ``GROUP BY frequency, recency, T`` runs in the database, so only the patterns come back.
    Parameters are those of :func:`sql_rfm_summary`.

    Returns
    -------
    pandas.DataFrame
        ``frequency``, ``recency``, ``T`` and ``weight`` (the number of customers), sorted by
        frequency, recency and T: ``compress(rfm_summary(...))``'s patterns with its weights.
    """
    with connection_to(source) as connection:
        _, customers, grain_unit, unit, _ = _summary_parts(
            connection, table=table, query=query, columns=columns,
            observation_end=observation_end, unit=unit, grain=grain, schema=schema,
        )  # fmt: skip
        keys = (customers.c.frequency, customers.c.recency, customers.c.age)
        patterns = sa.select(*keys, sa.func.count().label("weight")).group_by(*keys)
        rows = fetch(connection, patterns.order_by(*keys))
    values: dict[str, npt.NDArray[np.generic]] = {
        "frequency": rows["frequency"].to_numpy(dtype=np.int64)
    }
    for column, name in _SUMMARY_NAMES.items():
        values[name] = in_unit(rows[column], grain_unit, unit)
    values["weight"] = rows["weight"].to_numpy(dtype=np.int64)
    return pd.DataFrame(values)
