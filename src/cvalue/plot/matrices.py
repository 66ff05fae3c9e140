"""What a purchase model says of a history: frequency x recency matrices, P(alive) over time.

Every number comes from the model's own contract (``expected_purchases``, ``p_alive``); the plots
only lay the histories out on a grid, as lifetimes' ``plot_frequency_recency_matrix``,
``plot_probability_alive_matrix`` and ``plot_history_alive`` do.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd
from matplotlib.axes import Axes

from cvalue.errors import DataQualityError, SchemaError
from cvalue.io.schema import Columns
from cvalue.models import PurchaseModel
from cvalue.plot._axes import ACTUAL, MODEL, axes_for
from cvalue.plot.tables import model_unit
from cvalue.purchases import grain_first_day, grain_index, observation_day, purchase_days
from cvalue.units import DateLike, Duration, TimeUnit

Span = float | Duration | str  # a horizon, as the model contract takes it

__all__ = [
    "customer_history",
    "frequency_recency_matrix",
    "probability_alive_history",
    "probability_alive_matrix",
]

FloatArray = npt.NDArray[np.float64]


def _check_lays_out(model: PurchaseModel, what: str) -> None:
    """Refuse a model whose histories are not frequency, recency and its age column."""
    supported = {"frequency", "recency", model.age_column}
    if set(model.summary_columns) != supported:
        raise SchemaError(
            f"the {type(model).__name__} reads {list(model.summary_columns)}; {what} histories "
            f"of {sorted(supported)} only"
        )


def _histories(
    model: PurchaseModel, max_frequency: int | None, max_recency: float | None, age: float | None
) -> tuple[pd.DataFrame, npt.NDArray[np.bool_]]:
    """Every (frequency, recency) cell at ``age``: the frame, and which cells are histories.

    ``age`` defaults to ``max_recency`` and ``max_recency`` to ``age``; ``max_frequency`` to it
    rounded (about one purchase per unit at most). Recency runs over whole units up to
    ``max_recency``. A cell is a history when ``recency <= age``, recency is 0 exactly when
    frequency is, and, in discrete time, ``frequency <= recency``; the others are blank (NaN).
    """
    _check_lays_out(model, "the matrices lay out")
    if age is None and max_recency is None:
        raise SchemaError(
            "pass T (the customers' age, in the model's unit) or max_recency: the model holds no "
            "data to take them from"
        )
    age = float(age if age is not None else max_recency)  # type: ignore[arg-type]
    n_recency = int(np.floor(max_recency if max_recency is not None else age)) + 1
    n_frequency = (max_frequency if max_frequency is not None else max(1, round(age))) + 1
    frequency, recency = np.meshgrid(np.arange(n_frequency), np.arange(n_recency), indexing="ij")
    is_history = (recency <= age) & ((frequency == 0) == (recency == 0))
    if model.discrete_time:
        is_history &= frequency <= recency
    frame = pd.DataFrame({"frequency": frequency.ravel(), "recency": recency.ravel()})
    frame[model.age_column] = age
    return frame, is_history


def _matrix_axes(
    values: pd.Series, is_history: npt.NDArray[np.bool_], ax: Axes | None, title: str, label: str
) -> Axes:
    matrix = np.full(is_history.shape, np.nan)
    matrix[is_history] = values.to_numpy(dtype=np.float64)
    ax = axes_for(ax, title)
    image = ax.imshow(matrix, origin="lower", aspect="auto", cmap="viridis")
    ax.figure.colorbar(image, ax=ax, label=label)
    ax.set_xlabel("recency (time of the last purchase)")
    ax.set_ylabel("frequency (repeat purchases)")
    return ax


def _span(model: PurchaseModel, horizon: Span) -> str:
    """``horizon`` in words: a bare number is in the model's unit (or its opportunities)."""
    if not isinstance(horizon, float | int):
        return str(horizon)
    if model.unit_ is not None:
        return f"{horizon:g} {model.unit_.value}s"
    return f"{horizon:g} " + ("opportunities" if model.discrete_time else "units")


def frequency_recency_matrix(
    model: PurchaseModel,
    *,
    horizon: Span,
    max_frequency: int | None = None,
    max_recency: float | None = None,
    T: float | None = None,  # noqa: N803 - the age, as the summary names it
    ax: Axes | None = None,
) -> Axes:
    """Expected purchases over ``horizon`` for every (frequency, recency) history of age ``T``.

    One image, rows frequency ``0..max_frequency`` (bottom up), columns recency ``0, 1, ...,
    max_recency`` in the model's unit; cell ``[x, t_x]`` is ``model.expected_purchases`` of the
    history ``(x, t_x, T)``. Cells that are no history are blank: recency beyond ``T``, recency 0
    with purchases or above 0 without, and in discrete time more purchases than opportunities.
    """
    frame, is_history = _histories(model, max_frequency, max_recency, T)
    values = model.expected_purchases(frame[is_history.ravel()], horizon=horizon)
    title = f"Expected purchases in the next {_span(model, horizon)} by frequency and recency"
    return _matrix_axes(values, is_history, ax, title, "expected purchases")


def probability_alive_matrix(
    model: PurchaseModel,
    *,
    max_frequency: int | None = None,
    max_recency: float | None = None,
    T: float | None = None,  # noqa: N803 - the age, as the summary names it
    ax: Axes | None = None,
) -> Axes:
    """P(alive) for every (frequency, recency) history of age ``T``: ``model.p_alive`` per cell.

    Laid out as :func:`frequency_recency_matrix`.
    """
    frame, is_history = _histories(model, max_frequency, max_recency, T)
    values = model.p_alive(frame[is_history.ravel()])
    return _matrix_axes(values, is_history, ax, "Probability alive by frequency and recency",
                        "P(alive)")  # fmt: skip


def customer_history(
    model: PurchaseModel,
    transactions: pd.DataFrame,
    customer_id: object,
    *,
    observation_end: DateLike | None = None,
    columns: Columns | None = None,
) -> pd.DataFrame:
    """One customer's summary as it grew: the history the model reads, at each step.

    In continuous time, one row at the end of each day after the first purchase (``T > 0``),
    indexed by ``day``: ``frequency`` (distinct later purchase days so far), ``recency`` and
    ``T`` in the model's unit, as :func:`cvalue.rfm_summary` (grain day) computes them on that
    day. In discrete time (a BG/BB), one row per transaction opportunity after the first
    purchase's, an opportunity being one period of the model's unit (``model.unit_``), indexed by
    ``period_end`` (its last day): ``frequency`` (periods with a purchase so far), ``recency``
    (the last of them, 0 for none) and the model's age column (``n_periods``), as
    :func:`cvalue.rfm_summary` with grain and unit the model's unit computes them. A last period
    cut by ``observation_end`` counts as an opportunity, as it does in that summary, and its row
    is dated ``observation_end``.
    """
    _check_lays_out(model, "a history over time is computed for")
    unit = model_unit(model)
    _, buyers, days = purchase_days(transactions, columns)
    own = np.unique(days[(buyers == customer_id).to_numpy()])
    if len(own) == 0:
        raise DataQualityError(f"customer {customer_id!r} has no purchase in the transactions")
    end = observation_day(observation_end) if observation_end is not None else int(own[-1])
    if model.discrete_time:
        return _opportunity_history(own, end, unit, model.age_column)
    first = int(own[0])
    grid = np.arange(first + 1, max(end, first + 1) + 1)
    count = np.searchsorted(own, grid, side="right")
    index = pd.to_datetime(grid, unit="D")
    return pd.DataFrame(
        {"frequency": count - 1, "recency": (own[count - 1] - first) / unit.days,
         "T": (grid - first) / unit.days},
        index=pd.DatetimeIndex(index, name="day"),
    )  # fmt: skip


def _opportunity_history(
    own_days: npt.NDArray[np.int64], end_day: int, unit: TimeUnit, age_column: str
) -> pd.DataFrame:
    """A customer's discrete-time summary after each opportunity (:func:`customer_history`).

    ``own_days`` are the customer's distinct purchase days, sorted; the first purchase's period
    is opportunity 0, and there is at least one opportunity after it.
    """
    periods = np.unique(grain_index(own_days, unit))
    first = int(periods[0])
    last = max(int(grain_index(np.array([end_day], dtype=np.int64), unit)[0]), first + 1)
    opportunities = np.arange(first + 1, last + 1, dtype=np.int64)
    count = np.searchsorted(periods, opportunities, side="right")
    ends = grain_first_day(opportunities + 1, unit) - 1
    # the last period ends at observation_end when it falls inside it
    ends = np.minimum(ends, max(end_day, int(grain_first_day(opportunities[-1:], unit)[0])))
    return pd.DataFrame(
        {"frequency": count - 1, "recency": (periods[count - 1] - first).astype(np.float64),
         age_column: (opportunities - first).astype(np.float64)},
        index=pd.DatetimeIndex(pd.to_datetime(ends, unit="D"), name="period_end"),
    )  # fmt: skip


def probability_alive_history(
    model: PurchaseModel,
    transactions: pd.DataFrame,
    customer_id: object,
    *,
    observation_end: DateLike | None = None,
    columns: Columns | None = None,
    ax: Axes | None = None,
) -> Axes:
    """One customer's P(alive) over time: day by day, or opportunity by opportunity.

    Each step's summary is :func:`customer_history`'s, in the model's unit (``model.unit_``),
    and each P(alive) is ``model.p_alive`` of it: day by day from the day after the first
    purchase in continuous time; in discrete time (a BG/BB), one step per opportunity (period of
    the model's unit) after the first purchase's, each drawn from the end of its period (when it
    is known) to the next. Two lines: ``P(alive)``, then the steps that hold a purchase as
    markers. ``observation_end`` defaults to the customer's last purchase (or one step after the
    first, for a customer who bought once).
    """
    history = customer_history(
        model, transactions, customer_id, observation_end=observation_end, columns=columns
    )
    alive = model.p_alive(history).to_numpy(dtype=np.float64)
    is_purchase = np.diff(history["frequency"].to_numpy(), prepend=0) > 0
    ax = axes_for(ax, f"Probability alive of customer {customer_id}")
    ax.plot(history.index, alive, color=ACTUAL, label="P(alive)",
            drawstyle="steps-post" if model.discrete_time else "default")  # fmt: skip
    ax.plot(history.index[is_purchase], alive[is_purchase], ls="", marker="o", color=MODEL,
            label="purchase")  # fmt: skip
    ax.set_ylim(0.0, 1.05)
    ax.set_ylabel("P(alive)")
    ax.legend()
    return ax
