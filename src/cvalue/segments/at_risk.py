"""The valuable customers at risk: the highest CLV among those more likely gone than active.

A retention team cannot call every customer whose P(alive) is low (most of them were never worth
much), nor every valuable one (most of them are still buying). The list it can work through is
the intersection: the ``top`` customers by CLV among those whose P(alive) is below
``p_alive_below``. :func:`at_risk_valuable` builds it from per-customer series;
:func:`at_risk_valuable_in_table` builds the same list from a scores table in the database (a
base scored chunk by chunk, before or after the swap: :func:`cvalue.write_scores`'s
``before_swap``), with SQLAlchemy Core on SQLite, DuckDB and PostgreSQL.

The defaults, and why:

- ``p_alive_below = 0.5``: the customer is more likely gone than active. It is also the middle
  edge of :func:`~cvalue.segments.value_risk_grid`'s default churn-risk bands, so the list is
  the most valuable part of the grid's two riskiest bands (churn risk above 0.5).
- ``top = 100``: a list a retention team works through by hand (calls, personal offers) in a
  campaign cycle; raise it for a large base or an automated win-back flow.

Each list holds, most valuable first (ties by customer id): ``rank``, the CLV (under the name
of the value given, such as ``clv_5y``), ``p_alive`` and ``expected_value_lost``.

**Expected value lost.** The CLV of the purchase models already counts each future purchase at
the chance that the customer is still there: CLV = P(alive) x V, where V is what the customer
is worth if still active (Fader, Hardie & Lee 2005, eq. (10): the conditional expectation is
P(alive) times the expectation of an active customer). What the chance of having left takes
away is therefore V - CLV = CLV x (1 - P(alive)) / P(alive): the value lost, in expectation,
against the same customer known to be active. It is the most a win-back that succeeded could
recover, and grows as P(alive) falls. (CLV x (1 - P(alive)) would count the risk twice.) It is
missing where P(alive) is 0. Counts and values are the same from the table and from memory;
the lost value is computed in Python from the values fetched, so it is the same to the bit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from cvalue.errors import DataQualityError, SchemaError
from cvalue.segments.tiers import _aligned, _numeric, value_series

__all__ = [
    "AT_RISK_P_ALIVE_BELOW",
    "AT_RISK_TOP",
    "at_risk_valuable",
    "at_risk_valuable_in_table",
    "expected_value_lost",
]

AT_RISK_TOP = 100
"""How many customers the list holds by default: a list a team works through by hand."""
AT_RISK_P_ALIVE_BELOW = 0.5
"""The P(alive) below which a customer is at risk by default: more likely gone than active."""

Condition = sa.ColumnElement[bool]


def _check_options(top: int, p_alive_below: float) -> None:
    problems = []
    if isinstance(top, bool) or not isinstance(top, (int, np.integer)) or top < 1:
        problems.append(f"top must be an integer >= 1, got {top!r}")
    is_number = isinstance(p_alive_below, (int, float)) and not isinstance(p_alive_below, bool)
    if not is_number or not 0 < p_alive_below <= 1:
        problems.append(f"p_alive_below must be a probability in (0, 1], got {p_alive_below!r}")
    if problems:
        raise SchemaError("; ".join(problems))


def expected_value_lost(clv: pd.Series, p_alive: pd.Series) -> pd.Series:
    """CLV x (1 - P(alive)) / P(alive): the value the chance of having left takes away.

    What the customer would be worth if known to be active, less what they are expected to be
    worth (see the module's notes); NaN where P(alive) is 0.

    Examples
    --------
    >>> clv = pd.Series([100.0, 100.0, 0.0])
    >>> expected_value_lost(clv, pd.Series([0.5, 0.2, 0.0])).tolist()
    [100.0, 400.0, nan]
    """
    values = clv.to_numpy(dtype=np.float64)
    alive = p_alive.to_numpy(dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):  # P(alive) = 0: NaN, set below
        lost = values * (1.0 - alive) / alive
    return pd.Series(np.where(alive > 0, lost, np.nan), index=clv.index, name="expected_value_lost")


def _listed(
    clv: pd.Series, p_alive: pd.Series, details: pd.DataFrame | None = None
) -> pd.DataFrame:
    """The list's layout from the chosen customers, already in order."""
    listed = pd.DataFrame(
        {"rank": np.arange(1, len(clv) + 1, dtype=np.int64), clv.name: clv.to_numpy(np.float64),
         "p_alive": p_alive.to_numpy(np.float64),
         "expected_value_lost": expected_value_lost(clv, p_alive).to_numpy()},
        index=clv.index,
    )  # fmt: skip
    if details is not None:
        clash = listed.columns.intersection(details.columns)
        if len(clash):
            raise SchemaError(f"details has columns the list holds already: {list(clash)}; "
                              "rename them")  # fmt: skip
        listed = listed.join(details.reindex(clv.index))
    return listed


def at_risk_valuable(
    values: pd.Series,
    p_alive: pd.Series,
    *,
    top: int = AT_RISK_TOP,
    p_alive_below: float = AT_RISK_P_ALIVE_BELOW,
    details: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The ``top`` customers by CLV among those with P(alive) below ``p_alive_below``.

    Parameters
    ----------
    values
        CLV per customer, indexed by customer id; its name (``clv_5y``) names the list's value
        column (``clv`` when it has none).
    p_alive
        P(alive) per customer, in [0, 1], for the same customers.
    top, p_alive_below
        How many customers at most, and the P(alive) a customer must be below (strictly).
    details
        Columns to carry along for each listed customer (segment, value tier ...), indexed by
        customer id; a customer it does not hold gets missing values.

    Returns
    -------
    pandas.DataFrame
        Indexed by customer id (named ``customer_id`` when the index has no name), most
        valuable first, equal values by customer id: ``rank``
        (from 1), the CLV, ``p_alive``, ``expected_value_lost`` (module notes) and the
        ``details``. Only customers with a positive CLV are listed: one worth nothing is not
        valuable. The list is shorter than ``top`` when fewer customers qualify.

    Raises
    ------
    SchemaError
        For ``top`` below 1 or ``p_alive_below`` outside (0, 1].
    DataQualityError
        For repeated ids, missing or infinite values, P(alive) outside [0, 1], or series that
        cover different customers.

    Examples
    --------
    >>> clv = pd.Series({"a": 900.0, "b": 50.0, "c": 400.0, "d": 700.0}, name="clv_5y")
    >>> alive = pd.Series({"a": 0.9, "b": 0.1, "c": 0.2, "d": 0.4})
    >>> at_risk_valuable(clv, alive, top=2)
                 rank  clv_5y  p_alive  expected_value_lost
    customer_id
    d               1   700.0      0.4               1050.0
    c               2   400.0      0.2               1600.0
    """
    _check_options(top, p_alive_below)
    for given, what in ((values, "values"), (p_alive, "p_alive")):
        if not isinstance(given, pd.Series):
            raise SchemaError(f"{what} must be a Series indexed by customer id, got "
                              f"{type(given).__name__}")  # fmt: skip
    clv = value_series(values, None).rename("clv" if values.name is None else str(values.name))
    name = str(p_alive.name) if p_alive.name is not None else "p_alive"
    alive = _aligned(clv, _numeric(p_alive, name))
    n_outside = int(((alive < 0) | (alive > 1)).sum())
    if n_outside:
        raise DataQualityError(
            f"{name!r} has {n_outside:,} of {len(alive):,} values outside [0, 1]; pass "
            "probabilities"
        )
    is_eligible = (alive < p_alive_below) & (clv > 0)
    eligible = clv[is_eligible]
    id_order = np.empty(len(eligible), dtype=np.int64)
    id_order[np.argsort(eligible.index.to_numpy(), kind="stable")] = np.arange(len(eligible))
    order = np.lexsort((id_order, -eligible.to_numpy(dtype=np.float64)))[:top]
    chosen = eligible.iloc[order]
    listed = _listed(chosen, alive.loc[chosen.index], details)
    listed.index.name = clv.index.name if clv.index.name is not None else "customer_id"
    return listed


def _column(table: sa.Table, name: str) -> sa.ColumnElement[Any]:
    if name not in table.c:
        raise SchemaError(f"the table {table.name!r} has no column {name!r}; it has "
                          f"{list(table.c.keys())}")  # fmt: skip
    return table.c[name]


def _check_table(
    connection: sa.Connection,
    table: sa.Table,
    value: sa.ColumnElement[Any],
    alive: sa.ColumnElement[Any],
    where: Condition,
) -> None:
    """DataQualityError for no rows, rows without a value or P(alive), P(alive) outside [0, 1]."""
    statement = sa.select(
        sa.func.count(), sa.func.count(value), sa.func.count(alive),
        sa.func.count().filter((alive < 0) | (alive > 1)),
    ).where(where)  # fmt: skip
    rows, values, alives, outside = connection.execute(statement).one()
    if rows == 0:  # as the in-memory list refuses empty values
        raise DataQualityError(f"the table {table.name!r} has no row to list")
    problems = [f"{rows - count:,} of {rows:,} rows have no {name!r}"
                for name, count in ((value.name, values), (alive.name, alives))
                if count != rows]  # fmt: skip
    if outside:
        problems.append(f"{alive.name!r} has {outside:,} of {rows:,} values outside [0, 1]")
    if problems:
        raise DataQualityError(
            f"the table {table.name!r}: {'; '.join(problems)}; every customer needs a value "
            "and a probability to be listed"
        )


def at_risk_valuable_in_table(
    connection: sa.Connection,
    table: sa.Table,
    *,
    value: str,
    p_alive: str,
    key: str = "customer_id",
    top: int = AT_RISK_TOP,
    p_alive_below: float = AT_RISK_P_ALIVE_BELOW,
    details: Sequence[str] = (),
    where: Condition | None = None,
) -> pd.DataFrame:
    """:func:`at_risk_valuable` of a scores table's ``value`` and ``p_alive`` columns.

    The database filters, orders (by ``value`` descending, then ``key``) and keeps the first
    ``top`` rows; only those come back. Customer ids that are text are ordered by the
    database's collation, which on PostgreSQL may differ from Python's order for ties.

    Parameters
    ----------
    connection, table
        An open connection (in the caller's transaction) and the table of scores.
    value, p_alive, key
        The CLV column (it names the list's value column), the P(alive) column and the
        customer id column.
    top, p_alive_below
        As for :func:`at_risk_valuable`.
    details
        Columns of the table to carry along (``segment``, ``value_tier`` ...).
    where
        Restricts the rows considered (one run's rows of an appended table).

    Returns
    -------
    pandas.DataFrame
        The layout of :func:`at_risk_valuable`, indexed by ``key``.
    """
    _check_options(top, p_alive_below)
    clv, alive, id_column = (_column(table, name) for name in (value, p_alive, key))
    clash = sorted(set(details) & {key, value, p_alive, "rank", "expected_value_lost"})
    if clash:
        raise SchemaError(f"details has columns the list holds already: {clash}; leave them out")
    carried = [_column(table, name) for name in details]
    condition = sa.true() if where is None else where
    _check_table(connection, table, clv, alive, condition)
    statement = (
        sa.select(id_column, clv, alive, *carried)
        .where(condition, alive < p_alive_below, clv > 0)
        .order_by(clv.desc(), id_column)
        .limit(int(top))
    )
    rows = connection.execute(statement).all()
    found = pd.DataFrame(rows, columns=[key, value, p_alive, *details])
    found = found.set_index(key)
    chosen = found[value].astype(np.float64).rename(value)
    alive_found = found[p_alive].astype(np.float64)
    extra = found[list(details)] if details else None
    return _listed(chosen, alive_found, extra)
