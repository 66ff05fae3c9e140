"""Value tiers, the value x risk grid and the whale curve of scores held in a database table.

A base scored chunk by chunk is never whole in memory, but its scores are, in the table they were
written to (or its staging copy, before the swap: :func:`cvalue.write_scores`'s
``before_swap``). The functions here rank, band and sum in the database, with window functions
and ``GROUP BY``, and give what :func:`~cvalue.segments.value_tiers`,
:func:`~cvalue.segments.value_risk_grid` and :func:`~cvalue.segments.whale_curve` give on the same
values in memory:

- counts, sums, means, minima and maxima are the same, up to the order in which the database adds
  (about 1e-12 relative);
- customers of equal value are ranked by customer id, where the in-memory functions keep the
  input's order: only customers tied at a tier's or band's edge can land on the other side;
- the whale curve's points are every ``step``-th customer of the ranking (its figures are exact).

Names go through SQLAlchemy's quoting; values are bound. SQLite, DuckDB and PostgreSQL.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from cvalue.errors import DataQualityError, SchemaError
from cvalue.segments.tiers import (
    _RISK_EDGES,
    ValueTiers,
    WhaleCurve,
    _check_cuts,
    _check_grid_options,
    _number,
    _percent,
    _tier_labels,
)

__all__ = ["tiers_in_table", "value_risk_grid_in_table", "whale_curve_in_table"]

Condition = sa.ColumnElement[bool]


def _column(table: sa.Table, name: str) -> sa.ColumnElement[Any]:
    if name not in table.c:
        raise SchemaError(f"the table {table.name!r} has no column {name!r}; it has "
                          f"{list(table.c.keys())}")  # fmt: skip
    return table.c[name]


def _where(condition: Condition | None) -> Condition:
    return sa.true() if condition is None else condition


def _ranked(table: sa.Table, key: str, value: str, where: Condition | None) -> sa.Subquery:
    """Each row's position from 1, most valuable first (ties by ``key``), and the total."""
    order = (_column(table, value).desc(), _column(table, key))
    return (
        sa.select(
            table.c[key],
            table.c[value],
            sa.func.row_number().over(order_by=order).label("position"),
        )
        .where(_where(where))
        .subquery("ranked")
    )


def _count(connection: sa.Connection, table: sa.Table, value: str, where: Condition | None) -> int:
    statement = sa.select(
        sa.func.count(), sa.func.count(_column(table, value))
    ).where(_where(where))  # fmt: skip
    rows, values = connection.execute(statement).one()
    if rows != values:
        raise DataQualityError(
            f"{rows - values:,} of {rows:,} rows have no {value!r}: every customer needs a "
            "value to be ranked"
        )
    if rows == 0:
        raise DataQualityError(f"the table {table.name!r} has no row to rank")
    return int(rows)


def tiers_in_table(
    connection: sa.Connection,
    table: sa.Table,
    *,
    value: str,
    tier: str,
    key: str = "customer_id",
    cuts: Sequence[float] = (0.01, 0.05, 0.2),
    where: Condition | None = None,
) -> ValueTiers:
    """Fill the ``tier`` column with :func:`~cvalue.segments.value_tiers`' tiers, in the database.

    Parameters
    ----------
    connection, table
        An open connection (in the caller's transaction) and the table of scores.
    value, tier, key
        The value column to rank by, the text column to fill, and the customer id column.
    cuts
        Increasing shares of the customers that end each top tier.
    where
        Restricts the rows ranked and filled (one run's rows of an appended table).

    Returns
    -------
    ValueTiers
        ``summary_`` as the in-memory function gives it; ``labels_`` is empty (the labels are
        in the table).
    """
    shares = _check_cuts(cuts)
    tier_column, value_column = _column(table, tier), _column(table, value)
    n_customers = _count(connection, table, value, where)
    ends = [math.ceil(share * n_customers) for share in shares]
    labels = _tier_labels(shares)
    ranked = _ranked(table, key, value, where)
    label = sa.case(
        *((ranked.c.position <= end, name) for end, name in zip(ends, labels, strict=False)),
        else_=labels[-1],
    )
    connection.execute(
        sa.update(table).values({tier_column: label})
        .where(table.c[key] == ranked.c[key], _where(where))
    )  # fmt: skip
    by_tier = (
        sa.select(
            tier_column.label("tier"), sa.func.count().label("customers"),
            sa.func.sum(value_column).label("value"), sa.func.min(value_column).label("min_value"),
            sa.func.max(value_column).label("max_value"),
        )
        .where(_where(where))
        .group_by(tier_column)
    )  # fmt: skip
    found = pd.DataFrame(connection.execute(by_tier).all(), columns=[
        "tier", "customers", "value", "min_value", "max_value"]).set_index("tier")  # fmt: skip
    summary = _summary(found.reindex(labels), n_customers, pd.Index(labels, name="tier"))
    summary["min_value"] = found["min_value"].reindex(labels).to_numpy(dtype=np.float64)
    summary["max_value"] = found["max_value"].reindex(labels).to_numpy(dtype=np.float64)
    empty = pd.Series(pd.Categorical([], categories=labels, ordered=True), name="tier")
    return ValueTiers(empty, summary)


def _summary(found: pd.DataFrame, n_customers: int, index: pd.Index) -> pd.DataFrame:
    """The in-memory ``_summary_by`` layout from counts and sums (empty cells: 0 customers)."""
    customers = found["customers"].fillna(0).to_numpy(dtype=np.int64)
    value = found["value"].fillna(0.0).to_numpy(dtype=np.float64)
    total = float(value.sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(customers > 0, value / np.maximum(customers, 1), np.nan)
    return pd.DataFrame(
        {
            "customers": customers,
            "share_of_customers": customers / n_customers,
            "value": value,
            "share_of_value": value / total if total != 0 else np.full(len(value), np.nan),
            "mean_value": mean,
        },
        index=index,
    )


def value_risk_grid_in_table(
    connection: sa.Connection,
    table: sa.Table,
    *,
    value: str,
    p_alive: str,
    key: str = "customer_id",
    value_bands: int = 4,
    risk_edges: Sequence[float] = _RISK_EDGES,
    where: Condition | None = None,
) -> pd.DataFrame:
    """:func:`~cvalue.segments.value_risk_grid` of the ``value`` and ``p_alive`` columns.

    Returns the same frame: indexed by (``value_band``, ``churn_risk``), every cell even when
    empty, with ``customers``, ``share_of_customers``, ``value``, ``share_of_value`` and
    ``mean_value``.
    """
    edges = _check_grid_options(value_bands, risk_edges, "p_alive")
    n_customers = _count(connection, table, value, where)
    alive = _column(table, p_alive)
    outside = sa.select(sa.func.count()).where(_where(where), (alive < 0) | (alive > 1))
    n_outside = int(connection.execute(outside).scalar_one())
    if n_outside:
        raise DataQualityError(
            f"{p_alive!r} has {n_outside:,} of {n_customers:,} values outside [0, 1]; pass "
            "probabilities"
        )
    order = (_column(table, value).desc(), _column(table, key))
    churn = 1.0 - alive
    risk_band = sa.case(
        *((churn <= edge, band) for band, edge in enumerate(edges[1:-1])), else_=len(edges) - 2
    )
    banded = sa.select(
        table.c[value].label("value"),
        ((sa.func.row_number().over(order_by=order) - 1) * value_bands).label("scaled"),
        risk_band.label("risk_band"),
    ).where(_where(where)).subquery("banded")  # fmt: skip
    band = sa.func.floor(banded.c.scaled / float(n_customers))
    grouped = sa.select(
        band.label("value_band"), banded.c.risk_band, sa.func.count().label("customers"),
        sa.func.sum(banded.c.value).label("value"),
    ).group_by(band, banded.c.risk_band)  # fmt: skip
    found = pd.DataFrame(connection.execute(grouped).all(),
                         columns=["value_band", "risk_band", "customers", "value"])  # fmt: skip
    n_risk = len(edges) - 1
    cells = found["value_band"].astype(np.int64) * n_risk + found["risk_band"].astype(np.int64)
    value_labels = [f"top {_percent(b / value_bands)}-{_percent((b + 1) / value_bands)}%"
                    for b in range(value_bands)]  # fmt: skip
    risk_labels = [f"{_number(low)}-{_number(high)}" for low, high in itertools.pairwise(edges)]
    index = pd.MultiIndex.from_product(
        [value_labels, risk_labels], names=["value_band", "churn_risk"]
    )
    sums = found.set_index(cells.to_numpy())[["customers", "value"]].reindex(range(len(index)))
    return _summary(sums, n_customers, index)


def whale_curve_in_table(
    connection: sa.Connection,
    table: sa.Table,
    *,
    value: str,
    key: str = "customer_id",
    points: int = 1_000,
    where: Condition | None = None,
) -> WhaleCurve:
    """:func:`~cvalue.segments.whale_curve` of the ``value`` column.

    The figures (total, peak, shares, losses) are exact; ``curve_`` holds about ``points`` of
    the ranked customers (every ``step``-th, the first and the last), which is all a plot needs.
    """
    if isinstance(points, bool) or not isinstance(points, int) or points < 2:
        raise SchemaError(f"points must be an integer >= 2, got {points!r}")
    n_customers = _count(connection, table, value, where)
    column = _column(table, value)
    figures = sa.select(
        sa.func.sum(column), sa.func.sum(sa.case((column > 0, column), else_=0.0)),
        sa.func.count().filter(column > 0), sa.func.count().filter(column < 0),
        sa.func.sum(sa.case((column < 0, column), else_=0.0)), sa.func.max(column),
    ).where(_where(where))  # fmt: skip
    total, gains, n_positive, n_negative, losses, best = connection.execute(figures).one()
    total, gains, losses = float(total), float(gains), float(losses)
    step = max(1, n_customers // points)
    ranked = _ranked(table, key, value, where)
    cumulative = sa.func.sum(ranked.c[value]).over(
        order_by=ranked.c.position, rows=(None, 0)
    )  # fmt: skip
    running = sa.select(ranked.c[key], ranked.c[value], ranked.c.position,
                        cumulative.label("cumulative")).subquery("running")  # fmt: skip
    kept = (running.c.position % step == 0) | (running.c.position == 1) | (
        running.c.position == n_customers)  # fmt: skip
    rows = connection.execute(sa.select(running).where(kept).order_by(running.c.position)).all()
    found = pd.DataFrame(rows, columns=[key, "profit", "position", "cumulative_profit"])
    curve = pd.DataFrame(
        {
            "profit": found["profit"].to_numpy(dtype=np.float64),
            "cumulative_profit": found["cumulative_profit"].to_numpy(dtype=np.float64),
            "share_of_customers": found["position"].to_numpy(dtype=np.float64) / n_customers,
            "cumulative_share": (found["cumulative_profit"].to_numpy(dtype=np.float64) / total
                                 if total > 0 else np.nan),
        },
        index=pd.Index(found[key].to_list(), name=key),
    )  # fmt: skip
    # the cumulative profit peaks after the last positive value (the first of its maxima)
    peak, peak_at = (gains, int(n_positive)) if n_positive else (float(best), 1)
    return WhaleCurve(
        curve_=curve,
        total_profit_=total,
        peak_profit_=peak,
        peak_share_=peak / total if total > 0 else math.nan,
        peak_customers_share_=peak_at / n_customers,
        value_destroying_share_=int(n_negative) / n_customers,
        total_loss_=-losses,
    )
