"""The state panel: one lifecycle state per customer and calendar period since acquisition.

:func:`lifecycle_states` lays the panel out customer by customer, one row per period from the
acquisition period to the one that holds the observation end, and gives each row one of
:data:`STATES` from the activity the rule reads and the periods in which the rule declares the
customer lost. ``_panel`` reads a panel back as integer codes for the flows, cohorts and rates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import pandas as pd

from cvalue.dask import is_dask_frame, last_timestamp, map_customers
from cvalue.errors import NotFittedError, SchemaError
from cvalue.io.schema import Columns
from cvalue.lifecycle.activity import _contract_spans, _Events, _Spans, _transaction_events
from cvalue.lifecycle.periods import (
    BoolArray,
    FloatArray,
    IndexArray,
    IntArray,
    PeriodLike,
    _Calendar,
    _calendar,
)
from cvalue.lifecycle.rules import (
    AliveModel,
    ContractRule,
    InactivityRule,
    ModelRule,
    Rule,
    _window_of,
)
from cvalue.units import DateLike, TimeUnit

__all__ = ["STATES", "lifecycle_states"]

StateArray = npt.NDArray[np.int8]
CodeArray = npt.NDArray[np.int32]  # a states panel's codes, read back
DayArray = npt.NDArray[np.int32]  # day numbers since 1970-01-01 on a panel's rows

STATES: tuple[str, ...] = ("acquired", "retained", "inactive", "reactivated", "lost")
"""The lifecycle states, in the order of their codes."""
ACQUIRED, RETAINED, INACTIVE, REACTIVATED, LOST = range(len(STATES))
_PANEL_COLUMNS = ("customer_id", "period", "cohort", "tenure", "state")


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
    if is_dask_frame(data):  # cvalue.dask: each customer in one partition, the same end
        if customers is not None or isinstance(rule, ContractRule):
            raise SchemaError(
                "a Dask log takes an InactivityRule or a ModelRule, without customers=; build "
                "the panel of a contracts table or of a customers table with pandas"
            )
        columns = columns or Columns.detect(data.columns)
        end = observation_end if observation_end is not None else last_timestamp(
            data, timestamp=columns.timestamp, is_return=columns.is_return
        )  # fmt: skip
        panel = map_customers(
            lifecycle_states, data, customer_id=columns.customer_id, keep_attrs=(),
            period=period, rule=rule, observation_end=end, columns=columns,
        )  # fmt: skip
        return cast("pd.DataFrame", panel)  # typed for pandas: a Dask log gives a Dask frame
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
