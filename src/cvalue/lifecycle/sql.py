"""SQL pushdown of the customer lifecycle: states, flows and cohort tables inside the database.

:func:`sql_lifecycle_states`, :func:`sql_lifecycle_flows` and :func:`sql_cohort_retention` give
the same results as :func:`cvalue.lifecycle.lifecycle_states`,
:func:`cvalue.lifecycle.lifecycle_flows` and :func:`cvalue.lifecycle.cohort_retention` on a pandas
frame of the same rows, for the :class:`~cvalue.lifecycle.InactivityRule` (a transaction log) and
the :class:`~cvalue.lifecycle.ContractRule` (a contracts table), with periods ``D``, ``W``
(Monday to Sunday), ``M``, ``Q`` and ``Y``. The flows and the cohort table are counted in the
database: a few rows per period, or per cohort and period, come back. :func:`sql_last_states`
gives each customer's state in the last period (the last row of each customer's panel), and
:func:`last_states_select` the same as a select with columns ``customer_id`` and ``state``, to join
to other per-customer queries and read in chunks.

The statements are SQLAlchemy Core expressions, with the day and period arithmetic of
:mod:`cvalue.io.sqlkit` (day numbers since 1970-01-01, periods as grain indexes). The states:

1. ``activity``: the customer's periods with a purchase (and the last purchase day in each), or
   the periods some contract covers for at least one day;
2. ``panel``: every customer joined to every period from the first activity to the observation
   end (a recursive CTE of period numbers), with the activity left-joined;
3. running maxima over each customer's periods (window functions) give the last activity, so
   that a period without activity is lost when the window since the last activity ran out; LAG of
   the loss flag tells reactivations and new losses apart.

The flows and the cohort tables need no panel (:mod:`cvalue.lifecycle.sql_events`): each activity
row, with the previous and the next one, is an acquisition, a retention or a reactivation, and
says in which period (if any) the customer is lost before the next one; the stocks are running
sums of these events. Nor does the last state: it reads only each customer's first period, whether
the last period ``E`` and the one before have activity, and the last activity before ``E`` and
before ``E - 1``, which one ``GROUP BY`` over the purchases (or the covered periods) gives.

The model rule needs a fitted model's P(alive), and acquisition dates from a customers table are
read in pandas: both run in :func:`cvalue.lifecycle.lifecycle_states` only.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.sql.expression import SelectBase
from sqlalchemy.types import NullType, TypeEngine

from cvalue import purchases
from cvalue.errors import SMALL_SAMPLE, DataQualityError, SchemaError
from cvalue.io import connection_to, engine_for
from cvalue.io.schema import Columns
from cvalue.io.sqlkit import (
    DayNumber,
    Expression,
    check_rows,
    fetch,
    grain_index,
    grain_start,
    optional_day,
    resolve_relation,
    source_rows,
)
from cvalue.lifecycle.cohorts import CohortRetention, _cohort_tables
from cvalue.lifecycle.flows import _flows_frame
from cvalue.lifecycle.periods import IntArray, PeriodLike, _Calendar, _calendar
from cvalue.lifecycle.rules import ContractRule, InactivityRule, Rule, _window_of
from cvalue.lifecycle.sql_events import (
    _cohort_cells,
    _cohort_events,
    _Events,
    _flow_cells,
    _flow_events,
)
from cvalue.lifecycle.states import (
    ACQUIRED,
    INACTIVE,
    LOST,
    REACTIVATED,
    RETAINED,
    STATES,
    _states_frame,
)
from cvalue.purchases import customer_codes, grain_first_day
from cvalue.samples import check_min_customers
from cvalue.units import DateLike, TimeUnit

__all__ = [
    "last_states_select",
    "sql_cohort_retention",
    "sql_last_states",
    "sql_lifecycle_flows",
    "sql_lifecycle_states",
    "sql_lifecycle_tables",
]


# --- what the rule reads: activity per customer and period ----------------------------------------


def _grain_of(calendar: _Calendar) -> TimeUnit:
    grain = calendar.grain
    if grain is None:
        raise SchemaError(
            f"SQL pushdown computes the periods 'D', 'W' (Monday to Sunday), 'M', 'Q' and 'Y', "
            f"not {calendar.freq!r}; use cvalue.lifecycle_states on the rows in pandas"
        )
    return grain


def _purchase_days(
    connection: sa.Connection,
    source: dict[str, Any],
    columns: Columns | None,
    end_day: int | None,
    grain: TimeUnit,
) -> tuple[sa.Subquery, int]:
    """Each purchase's customer, period and day (as ``last_day``); the observation end day."""
    relation = resolve_relation(connection, columns=columns, **source)
    last_day = check_rows(connection, relation, end_day)
    timestamp = relation.column(relation.timestamp)
    days = sa.select(
        relation.column(relation.customer_id).label("customer"),
        grain_index(timestamp, grain).label("period"),
        DayNumber(timestamp).label("last_day"),
    ).subquery("purchase_days")
    return days, last_day if end_day is None else end_day


def _purchase_activity(days: sa.Subquery) -> sa.Subquery:
    """Periods with a purchase and the last purchase day in each."""
    return (
        sa.select(days.c.customer, days.c.period, sa.func.max(days.c.last_day).label("last_day"))
        .group_by(days.c.customer, days.c.period)
        .subquery("activity")
    )


def _contract_columns(
    connection: sa.Connection, source: dict[str, Any], rule: ContractRule
) -> sa.FromClause:
    """The contracts relation, with its columns checked as the pandas path checks them."""
    rows, types, described = source_rows(connection, **source)
    names = (rule.customer_id, rule.start, rule.end)
    missing = [name for name in names if name not in types]
    if missing:
        raise SchemaError(
            f"column(s) {missing} not found in {described}; it has {list(types)}. "
            "Pass rule=ContractRule(customer_id=..., start=..., end=...)"
        )
    is_sqlite = connection.dialect.name == "sqlite"
    for name in names[1:]:
        kind: TypeEngine[object] = types[name]
        if not (
            isinstance(kind, sa.Date | sa.DateTime | NullType)
            or (is_sqlite and isinstance(kind, sa.String))
        ):
            raise SchemaError(
                f"column {name!r} has SQL type {kind}, not a date or timestamp; store it as DATE "
                "or TIMESTAMP (a missing end means the contract is still running)"
            )
    return rows


def _contract_profile(rows: sa.FromClause, rule: ContractRule, end_day: int | None) -> sa.Select[
    Any
]:  # fmt: skip
    start, end = DayNumber(rows.c[rule.start]), DayNumber(rows.c[rule.end])
    late = sa.case((start > end_day, 1)) if end_day is not None else sa.null()
    return sa.select(
        sa.func.count().label("rows"),
        sa.func.count(rows.c[rule.customer_id]).label("customer_ids"),
        sa.func.count(start).label("starts"),
        sa.func.count(sa.case((end < start, 1))).label("reversed"),
        sa.func.count(late).label("late"),
        sa.func.max(start).label("last_start"),
    )


def _check_contracts(
    connection: sa.Connection, rows: sa.FromClause, rule: ContractRule, end_day: int | None
) -> int:
    """Refuse what the pandas path refuses; return the observation end day."""
    counts = connection.execute(_contract_profile(rows, rule, end_day)).one()._mapping
    n_rows = int(counts["rows"])
    if n_rows == 0:
        raise DataQualityError("the contracts table has no rows: there is no lifecycle")
    n_missing = n_rows - min(int(counts["customer_ids"]), int(counts["starts"]))
    if n_missing:
        raise DataQualityError(
            f"columns {[rule.customer_id, rule.start]!r} have missing values in {n_missing:,} of "
            f"{n_rows:,} contracts; every contract needs a customer and a start date"
        )
    if counts["reversed"]:
        raise DataQualityError(
            f"column {rule.end!r} is before {rule.start!r} in {counts['reversed']:,} of "
            f"{n_rows:,} contracts; swap or correct those dates"
        )
    if counts["late"]:
        raise DataQualityError(
            f"column {rule.start!r} is after observation_end in {counts['late']:,} of "
            f"{n_rows:,} rows; pass a later observation_end or leave those rows out"
        )
    return int(counts["last_start"]) if end_day is None else end_day


def _periods(first: int, last: int, name: str) -> sa.CTE:
    """The period numbers ``first .. last`` as a recursive CTE."""
    start = sa.select(sa.cast(sa.literal(first), sa.Integer).label("period"))
    periods = start.cte(name, recursive=True)
    step = sa.select(sa.cast(periods.c.period + 1, sa.Integer)).where(periods.c.period < last)
    return periods.union_all(step)


def _first_period(connection: sa.Connection, column: Expression) -> int:
    return int(connection.execute(sa.select(sa.func.min(column))).scalar_one())


def _contract_activity(
    connection: sa.Connection,
    source: dict[str, Any],
    rule: ContractRule,
    end_day: int | None,
    grain: TimeUnit,
) -> tuple[sa.Subquery, int]:
    """The periods some contract covers for at least one day; the observation end day."""
    rows = _contract_columns(connection, source, rule)
    end_day = _check_contracts(connection, rows, rule, end_day)
    end_period = _end_period(end_day, grain)
    end = rows.c[rule.end]
    is_running = sa.or_(end.is_(None), DayNumber(end) > end_day)
    spans = sa.select(
        rows.c[rule.customer_id].label("customer"),
        grain_index(rows.c[rule.start], grain).label("first"),
        sa.case((is_running, end_period), else_=grain_index(end, grain)).label("last"),
    ).subquery("spans")
    periods = _periods(_first_period(connection, spans.c.first), end_period, "contract_periods")
    covered = spans.join(periods, periods.c.period.between(spans.c.first, spans.c.last))
    activity = (
        sa.select(spans.c.customer, periods.c.period, sa.null().label("last_day"))
        .select_from(covered)
        .distinct()
        .subquery("activity")
    )
    return activity, end_day


def _end_period(end_day: int, grain: TimeUnit) -> int:
    # the grain of a day number, computed in Python (sqlkit.grain_index is its SQL twin)
    return int(purchases.grain_index(np.array([end_day], dtype=np.int64), grain)[0])


# --- states ---------------------------------------------------------------------------------------


def _panel(activity: sa.Subquery, first: int, end_day: int, grain: TimeUnit) -> sa.Subquery:
    """Every customer in every period from its first activity on, with the activity joined."""
    end_period = _end_period(end_day, grain)
    customers = (
        sa.select(activity.c.customer, sa.func.min(activity.c.period).label("first_period"))
        .group_by(activity.c.customer)
        .subquery("customers")
    )
    periods = _periods(first, end_period, "periods")
    joined = customers.join(periods, periods.c.period >= customers.c.first_period).outerjoin(
        activity,
        sa.and_(activity.c.customer == customers.c.customer, activity.c.period == periods.c.period),
    )
    judged = sa.case(
        (periods.c.period >= end_period, end_day),
        else_=grain_start(periods.c.period + 1, grain) - 1,
    )
    return (
        sa.select(
            customers.c.customer,
            periods.c.period,
            customers.c.first_period,
            sa.case((activity.c.period.is_not(None), 1), else_=0).label("has_activity"),
            activity.c.last_day,
            judged.label("judged_day"),
        )
        .select_from(joined)
        .subquery("panel")
    )


def _losses(panel: sa.Subquery, window: tuple[Literal["periods", "days"], int]) -> sa.Subquery:
    """The panel with ``is_lost``: no activity, and the window since the last one ran out."""
    running: dict[str, Any] = {
        "partition_by": panel.c.customer, "order_by": panel.c.period, "rows": (None, 0),
    }  # fmt: skip
    kind, length = window
    if kind == "periods":
        active_period = sa.case((panel.c.has_activity == 1, panel.c.period))
        gap = panel.c.period - sa.func.max(active_period).over(**running)
    else:
        gap = panel.c.judged_day - sa.func.max(panel.c.last_day).over(**running)
    is_lost = sa.case((sa.and_(panel.c.has_activity == 0, gap >= length), 1), else_=0)
    return sa.select(
        panel.c.customer, panel.c.period, panel.c.first_period, panel.c.has_activity,
        is_lost.label("is_lost"),
    ).subquery("losses")  # fmt: skip


def _states(losses: sa.Subquery) -> sa.Subquery:
    """State codes (as :data:`cvalue.lifecycle.STATES`), new losses and whether ever lost."""
    ordered: dict[str, Any] = {"partition_by": losses.c.customer, "order_by": losses.c.period}
    was_lost = sa.func.coalesce(sa.func.lag(losses.c.is_lost).over(**ordered), 0)
    state = sa.case(
        (losses.c.period == losses.c.first_period, ACQUIRED),
        (sa.and_(losses.c.has_activity == 1, was_lost == 1), REACTIVATED),
        (losses.c.has_activity == 1, RETAINED),
        (losses.c.is_lost == 1, LOST),
        else_=INACTIVE,
    )
    is_new_loss = sa.case((sa.and_(losses.c.is_lost == 1, was_lost == 0), 1), else_=0)
    ever_lost = sa.func.max(losses.c.is_lost).over(**ordered, rows=(None, 0))
    return sa.select(
        losses.c.customer, losses.c.period, losses.c.first_period, state.label("state"),
        is_new_loss.label("is_new_loss"), ever_lost.label("ever_lost"),
    ).subquery("states")  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Activity:
    """What the rule reads, as rows of ``customer``, ``period`` and ``last_day``.

    ``rows`` are the purchases themselves for the inactivity rule (one row per purchase; the
    panel groups them by period) and the covered periods for the contract rule (``is_grouped``).
    """

    rows: sa.Subquery
    is_grouped: bool
    end_day: int
    grain: TimeUnit
    window: tuple[Literal["periods", "days"], int]

    def by_period(self) -> sa.Subquery:
        """One row per customer and period with activity, and its last activity day."""
        return self.rows if self.is_grouped else _purchase_activity(self.rows)

    def events(self) -> _Events:
        """The activity by period and the rule's judgement, to count events without a panel."""
        end_period = _end_period(self.end_day, self.grain)
        return _Events(self.by_period(), self.window, self.end_day, end_period, self.grain)


def _activity(
    connection: sa.Connection,
    source: dict[str, Any],
    *,
    rule: Rule,
    calendar: _Calendar,
    columns: Columns | None,
    observation_end: DateLike | None,
) -> _Activity:
    """The rows the rule reads, checked as the pandas path checks them."""
    grain = _grain_of(calendar)
    end_day = optional_day(observation_end, "observation_end")
    if isinstance(rule, ContractRule):
        covered, end_day = _contract_activity(connection, source, rule, end_day, grain)
        return _Activity(covered, True, end_day, grain, ("periods", 1))
    if isinstance(rule, InactivityRule):
        days, end_day = _purchase_days(connection, source, columns, end_day, grain)
        return _Activity(days, False, end_day, grain, _window_of(rule.window))
    raise SchemaError(
        f"SQL pushdown runs the InactivityRule and the ContractRule, not "
        f"{type(rule).__name__}; the model rule needs P(alive) from a fitted model: use "
        "cvalue.lifecycle_states in pandas"
    )


def _statement(
    connection: sa.Connection,
    source: dict[str, Any],
    *,
    rule: Rule,
    calendar: _Calendar,
    columns: Columns | None,
    observation_end: DateLike | None,
) -> tuple[sa.Subquery, int]:
    """The states subquery of the rule, and the first period (a grain index)."""
    activity = _activity(
        connection, source, rule=rule, calendar=calendar, columns=columns,
        observation_end=observation_end,
    )  # fmt: skip
    by_period = activity.by_period()
    first = _first_period(connection, by_period.c.period)
    panel = _panel(by_period, first, activity.end_day, activity.grain)
    return _states(_losses(panel, activity.window)), first


def _last_state(activity: _Activity) -> sa.Select[Any]:
    """Each customer's state in the last period, from one aggregate over the activity rows.

    The state in the last period ``E`` reads only the first period, whether ``E`` and ``E - 1``
    have activity, and the last activity before ``E`` and before ``E - 1``: lost in ``E`` when
    the window since the last activity before it ran out by ``E``'s judgement (the observation
    end), lost in ``E - 1`` likewise by ``E - 1``'s last day. No panel is built.
    """
    rows, (kind, length) = activity.rows, activity.window
    last = _end_period(activity.end_day, activity.grain)
    # the gap since the last activity: in periods from the period, or in days from the day the
    # period is judged on (the observation end for E, its last day for E - 1)
    if kind == "periods":
        since, judged = rows.c.period, (last, last - 1)
    else:
        first_day = grain_first_day(np.array([last], dtype=np.int64), activity.grain)
        since, judged = rows.c.last_day, (activity.end_day, int(first_day[0]) - 1)
    history = (
        sa.select(
            rows.c.customer,
            sa.func.min(rows.c.period).label("first_period"),
            *(sa.func.max(sa.case((rows.c.period == period, 1), else_=0)).label(name)
              for name, period in (("has_last", last), ("has_previous", last - 1))),
            *(sa.func.max(sa.case((rows.c.period < period, since))).label(name)
              for name, period in (("since_last", last), ("since_previous", last - 1))),
        )
        .group_by(rows.c.customer)
        .subquery("history")
    )  # fmt: skip
    is_lost_last = judged[0] - history.c.since_last >= length
    was_lost = sa.and_(history.c.has_previous == 0, judged[1] - history.c.since_previous >= length)
    state = sa.case(
        (history.c.first_period == last, STATES[ACQUIRED]),
        (sa.and_(history.c.has_last == 1, was_lost), STATES[REACTIVATED]),
        (history.c.has_last == 1, STATES[RETAINED]),
        (is_lost_last, STATES[LOST]),
        else_=STATES[INACTIVE],
    )
    return sa.select(history.c.customer.label("customer_id"), state.label("state"))


@contextmanager
def _connected(source: str | sa.Connection | sa.Engine) -> Iterator[sa.Connection]:
    """A connection to an engine, or the caller's own; driver errors as DatabaseError."""
    if isinstance(source, sa.Connection):
        with engine_for(source.engine):
            yield source
    else:
        with connection_to(source) as connection:
            yield connection


def _ordinals(grains: npt.ArrayLike, calendar: _Calendar) -> IntArray:
    """Pandas period ordinals of grain indexes."""
    grain = _grain_of(calendar)
    return calendar.ordinals(grain_first_day(np.asarray(grains, dtype=np.int64), grain))


def _labels(first: int, last: int, calendar: _Calendar) -> pd.PeriodIndex:
    """The periods from grain index ``first`` to grain index ``last``."""
    ordinals = _ordinals(np.array([first, last]), calendar)
    return calendar.labels(int(ordinals[0]), int(ordinals[1]))


def _source(table: str | None, query: SelectBase | None, schema: str | None) -> dict[str, Any]:
    return {"table": table, "query": query, "schema": schema}


# --- public functions -----------------------------------------------------------------------------


def sql_lifecycle_states(
    source: str | sa.Engine,
    *,
    period: PeriodLike,
    rule: InactivityRule | ContractRule,
    table: str | None = None,
    query: SelectBase | None = None,
    columns: Columns | None = None,
    observation_end: DateLike | None = None,
    schema: str | None = None,
) -> pd.DataFrame:
    """:func:`cvalue.lifecycle.lifecycle_states` computed inside the database.

    Parameters
    ----------
    source
        A database URL (``"duckdb:///crm.duckdb"``) or a SQLAlchemy engine.
    period
        ``"D"``, ``"W"`` (Monday to Sunday), ``"M"``, ``"Q"`` or ``"Y"`` (or their unit names).
    rule
        An :class:`~cvalue.lifecycle.InactivityRule` (``table``/``query`` hold transactions) or
        a :class:`~cvalue.lifecycle.ContractRule` (they hold contracts).
    table, query
        Exactly one: the name of a table, or a ``sa.select(...)`` of the rows.
    columns
        For transactions: which columns hold the customer id, timestamp and returns flag.
    observation_end
        The last day observed; defaults to the last purchase (contract start) day.
    schema
        The schema of ``table``.

    Returns
    -------
    pandas.DataFrame
        The panel, equal to :func:`cvalue.lifecycle.lifecycle_states` on the same rows. Every
        customer-period row comes back; for counts only, use :func:`sql_lifecycle_flows` or
        :func:`sql_cohort_retention`.

    Examples
    --------
    >>> from cvalue.lifecycle import InactivityRule
    >>> engine = sa.create_engine("sqlite://")
    >>> log = pd.DataFrame({"customer_id": [1, 1, 2],
    ...                     "timestamp": pd.to_datetime(["2024-01-05", "2024-04-02",
    ...                                                  "2024-02-10"])})
    >>> _ = log.to_sql("transactions", engine, index=False)
    >>> states = sql_lifecycle_states(engine, table="transactions", period="M",
    ...                               rule=InactivityRule(2))
    >>> states["state"].tolist()
    ['acquired', 'inactive', 'lost', 'reactivated', 'acquired', 'inactive', 'lost']
    """
    calendar = _calendar(period)
    with connection_to(source) as connection:
        states, _ = _statement(
            connection, _source(table, query, schema), rule=rule, calendar=calendar,
            columns=columns, observation_end=observation_end,
        )  # fmt: skip
        columns_out = (states.c.customer, states.c.period, states.c.first_period, states.c.state)
        rows = fetch(connection, sa.select(*columns_out))
    codes, customers = customer_codes(rows["customer"])
    periods = _ordinals(rows["period"].to_numpy(), calendar)
    cohorts = _ordinals(rows["first_period"].to_numpy(), calendar)
    order = np.lexsort((periods, codes))
    state = rows["state"].to_numpy(dtype=np.int8)[order]
    return _states_frame(customers, codes[order], periods[order], cohorts[order], state, calendar)


def last_states_select(
    source: sa.Connection | sa.Engine,
    *,
    period: PeriodLike,
    rule: InactivityRule | ContractRule,
    table: str | None = None,
    query: SelectBase | None = None,
    columns: Columns | None = None,
    observation_end: DateLike | None = None,
    schema: str | None = None,
) -> sa.Select[Any]:
    """Each customer's lifecycle state in the last period, as a select to join or stream.

    The rows are checked in the database now, as :func:`sql_lifecycle_states` checks them; the
    states are computed when the select runs, by one aggregate per customer over the rows (no
    panel of customers and periods).

    Parameters
    ----------
    source
        A SQLAlchemy connection or engine, to check the rows (and, for the contract rule, to read
        the first period).
    period, rule, table, query, columns, observation_end, schema
        As in :func:`sql_lifecycle_states`.

    Returns
    -------
    sqlalchemy.Select
        Columns ``customer_id`` and ``state`` (one of :data:`cvalue.lifecycle.STATES`, as text),
        one row per customer, in no particular order: the state in the period that holds the
        observation end, the last row of each customer in :func:`lifecycle_states`. Join it
        (``.subquery()``) to other per-customer selects on ``customer_id``.

    Examples
    --------
    >>> from cvalue.lifecycle import InactivityRule
    >>> engine = sa.create_engine("sqlite://")
    >>> log = pd.DataFrame({"customer_id": [1, 1, 2],
    ...                     "timestamp": pd.to_datetime(["2024-01-05", "2024-04-02",
    ...                                                  "2024-02-10"])})
    >>> _ = log.to_sql("transactions", engine, index=False)
    >>> last = last_states_select(engine, table="transactions", period="M",
    ...                           rule=InactivityRule(2)).subquery()
    >>> with engine.connect() as connection:
    ...     connection.execute(sa.select(last).order_by(last.c.customer_id)).all()
    [(1, 'reactivated'), (2, 'lost')]
    """
    calendar = _calendar(period)
    with _connected(source) as connection:
        activity = _activity(
            connection, _source(table, query, schema), rule=rule, calendar=calendar,
            columns=columns, observation_end=observation_end,
        )  # fmt: skip
    return _last_state(activity)


def sql_last_states(
    source: str | sa.Engine,
    *,
    period: PeriodLike,
    rule: InactivityRule | ContractRule,
    table: str | None = None,
    query: SelectBase | None = None,
    columns: Columns | None = None,
    observation_end: DateLike | None = None,
    schema: str | None = None,
) -> pd.Series:
    """Each customer's lifecycle state in the last period, computed inside the database.

    Parameters are those of :func:`sql_lifecycle_states`; one row per customer comes back, from
    :func:`last_states_select` (use it to join the states to other per-customer queries or to
    read them in chunks).

    Returns
    -------
    pandas.Series
        Named ``state``, equal to
        ``lifecycle_states(...).groupby("customer_id", observed=True)["state"].last()`` on the
        same rows: indexed by customer id (a categorical index, sorted as pandas sorts), the
        states a categorical of :data:`cvalue.lifecycle.STATES`.
    """
    with connection_to(source) as connection:
        statement = last_states_select(
            connection, table=table, query=query, schema=schema, columns=columns, period=period,
            rule=rule, observation_end=observation_end,
        )  # fmt: skip
        rows = fetch(connection, statement)
    codes, customers = customer_codes(rows["customer_id"])
    states = np.empty(len(customers), dtype=np.int8)
    states[codes] = pd.Categorical(rows["state"], categories=STATES).codes
    index = pd.CategoricalIndex(customers, categories=customers, name="customer_id")
    state_type = pd.CategoricalDtype(list(STATES))
    return pd.Series(pd.Categorical.from_codes(states, dtype=state_type), index=index, name="state")


def sql_lifecycle_flows(
    source: str | sa.Engine | sa.Connection,
    *,
    period: PeriodLike,
    rule: InactivityRule | ContractRule,
    table: str | None = None,
    query: SelectBase | None = None,
    columns: Columns | None = None,
    observation_end: DateLike | None = None,
    schema: str | None = None,
) -> pd.DataFrame:
    """:func:`cvalue.lifecycle.lifecycle_flows` aggregated inside the database.

    Parameters are those of :func:`sql_lifecycle_states`. The database counts each customer's
    acquisitions, retentions, reactivations and new losses over its activity rows, with no panel
    of customers and periods; a few rows per period come back.

    Returns
    -------
    pandas.DataFrame
        Equal to ``lifecycle_flows(lifecycle_states(...))`` on the same rows.
    """
    calendar = _calendar(period)
    with _connected(source) as connection:
        events = _activity(
            connection, _source(table, query, schema), rule=rule, calendar=calendar,
            columns=columns, observation_end=observation_end,
        ).events()  # fmt: skip
        rows = fetch(connection, _flow_events(events))
    first = int(rows["period"].min())
    cells, new_losses = _flow_cells(rows, first, events.end_period)
    return _flows_frame(cells, new_losses, _labels(first, events.end_period, calendar))


def sql_cohort_retention(
    source: str | sa.Engine | sa.Connection,
    *,
    period: PeriodLike,
    rule: InactivityRule | ContractRule | None = None,
    table: str | None = None,
    query: SelectBase | None = None,
    columns: Columns | None = None,
    observation_end: DateLike | None = None,
    schema: str | None = None,
    min_customers: int = SMALL_SAMPLE,
) -> CohortRetention:
    """:func:`cvalue.lifecycle.cohort_retention` aggregated inside the database.

    Parameters are those of :func:`sql_lifecycle_states`; the rule defaults to
    ``InactivityRule(1)`` (active in the periods with a purchase), as in pandas. The events are
    counted as in :func:`sql_lifecycle_flows`, by cohort: a few rows per cohort and period come
    back. ``min_customers`` flags small cohorts as in pandas.

    Returns
    -------
    CohortRetention
        Equal to ``cohort_retention(lifecycle_states(...))`` on the same rows, with
        ``is_small_sample`` by cohort.

    Warns
    -----
    SmallSampleWarning
        Once, when some cohorts have fewer than ``min_customers`` customers.
    """
    threshold = check_min_customers(min_customers)
    calendar = _calendar(period)
    rows, end_period = _cohort_rows(
        source, _source(table, query, schema), rule=rule or InactivityRule(1), calendar=calendar,
        columns=columns, observation_end=observation_end,
    )  # fmt: skip
    return _cohorts(
        rows, end_period, calendar, threshold, stacklevel=5
    )  # flag_small, _cohort_tables, _cohorts, this, the user's call


def sql_lifecycle_tables(
    source: str | sa.Engine | sa.Connection,
    *,
    period: PeriodLike,
    rule: InactivityRule | ContractRule,
    table: str | None = None,
    query: SelectBase | None = None,
    columns: Columns | None = None,
    observation_end: DateLike | None = None,
    schema: str | None = None,
    min_customers: int = SMALL_SAMPLE,
) -> tuple[pd.DataFrame, CohortRetention]:
    """:func:`sql_lifecycle_flows` and :func:`sql_cohort_retention` from one pass of the database.

    The flows are the cohorts' event counts summed over the cohorts, so one statement counts
    both: at 10M customers each statement spent its time ordering the 37M activity rows by
    customer, and this orders them once. Parameters are those of :func:`sql_cohort_retention`,
    the rule required.

    Returns
    -------
    tuple
        The flows and the cohort tables, equal to those of the two functions.

    Warns
    -----
    SmallSampleWarning
        Once, when some cohorts have fewer than ``min_customers`` customers.
    """
    threshold = check_min_customers(min_customers)
    calendar = _calendar(period)
    rows, end_period = _cohort_rows(
        source, _source(table, query, schema), rule=rule, calendar=calendar, columns=columns,
        observation_end=observation_end,
    )  # fmt: skip
    first = int(rows["cohort"].min())  # the first cohort is the first period with activity
    cells, new_losses = _flow_cells(rows, first, end_period)
    flows = _flows_frame(cells, new_losses, _labels(first, end_period, calendar))
    return flows, _cohorts(rows, end_period, calendar, threshold, stacklevel=5)


def _cohort_rows(
    source: str | sa.Engine | sa.Connection,
    relation: dict[str, Any],
    *,
    rule: InactivityRule | ContractRule,
    calendar: _Calendar,
    columns: Columns | None,
    observation_end: DateLike | None,
) -> tuple[pd.DataFrame, int]:
    """The event counts by cohort, period and loss period, and the observation end's period."""
    with _connected(source) as connection:
        events = _activity(
            connection, relation, rule=rule, calendar=calendar, columns=columns,
            observation_end=observation_end,
        ).events()  # fmt: skip
        return fetch(connection, _cohort_events(events)), events.end_period


def _cohorts(
    rows: pd.DataFrame, end_period: int, calendar: _Calendar, threshold: int, *, stacklevel: int
) -> CohortRetention:
    first = int(rows["cohort"].min())
    sizes, active, survivors = _cohort_cells(rows, first, end_period)
    return _cohort_tables(sizes, active, survivors, _labels(first, end_period, calendar),
                          min_customers=threshold, stacklevel=stacklevel)  # fmt: skip
