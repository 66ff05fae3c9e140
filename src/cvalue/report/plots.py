"""The report's figures, one function per plot, drawn by :mod:`cvalue.plot`.

Each function returns a :class:`matplotlib.figure.Figure` made without pyplot (no global state,
no display needed); save it with ``figure.savefig(path)``. For one plot on Axes of your own, use
:mod:`cvalue.plot` directly.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from cvalue.io.schema import Columns
from cvalue.lifecycle import CohortRetention
from cvalue.models import PurchaseModel
from cvalue.plot import (
    calibration_holdout_lines,
    calibration_holdout_purchases,
    clv_by_segment,
    clv_distribution,
    cohort_heatmap,
    cohort_retention,
    frequency_recency_matrix,
    lifecycle_flows,
    period_transactions,
    probability_alive_history,
    probability_alive_matrix,
    tracking_lines,
    tracking_table,
    value_risk_grid,
    whale_curve,
)
from cvalue.units import DateLike, Duration, TimeUnit

__all__ = [
    "plot_calibration_holdout",
    "plot_calibration_holdout_table",
    "plot_clv_by_segment",
    "plot_clv_distribution",
    "plot_cohort_heatmap",
    "plot_cohort_retention",
    "plot_frequency_fit",
    "plot_frequency_recency_matrix",
    "plot_lifecycle_flows",
    "plot_probability_alive_history",
    "plot_probability_alive_matrix",
    "plot_tracking",
    "plot_tracking_table",
    "plot_value_risk_grid",
    "plot_whale_curve",
]

_SIZE = (7.0, 4.0)


def _rows(n_rows: int) -> list[Axes]:
    figure = Figure(figsize=(_SIZE[0], _SIZE[1] * n_rows), layout="constrained")
    return [figure.add_subplot(n_rows, 1, row + 1) for row in range(n_rows)]


def _figure(ax: Axes, plot: str) -> Figure:
    """``ax``'s figure, labelled with the :mod:`cvalue.plot` function it shows.

    The label becomes the figure's ``id`` in the page (``plot-<name>``), so that readers can link
    to a plot and tests can find every one.
    """
    figure = ax.figure
    assert isinstance(figure, Figure)  # the report draws on Figures it made, not subfigures
    figure.set_label(plot)
    return figure


def plot_frequency_fit(
    model: PurchaseModel,
    summary: pd.DataFrame,
    *,
    max_frequency: int = 7,
    rng: np.random.Generator | None = None,
) -> Figure:
    """Customers by repeat purchases, actual and model: :func:`cvalue.plot.period_transactions`.

    With ``rng``, the model's simulated customers too.
    """
    (ax,) = _rows(1)
    return _figure(
        period_transactions(model, summary, max_frequency=max_frequency, rng=rng, ax=ax),
        "period_transactions",
    )


def plot_tracking(
    model: PurchaseModel,
    transactions: pd.DataFrame,
    *,
    calibration_end: DateLike,
    observation_end: DateLike,
    period: TimeUnit | str = TimeUnit.WEEK,
    columns: Columns | None = None,
) -> Figure:
    """Cumulative and per-period repeat purchases, actual and model (:func:`cvalue.plot.tracking`).

    The per-period panel shows whole periods only: see :func:`cvalue.plot.tracking`.
    """
    table = tracking_table(
        model, transactions, calibration_end=calibration_end, observation_end=observation_end,
        period=period, columns=columns,
    )  # fmt: skip
    return plot_tracking_table(table, calibration_end=calibration_end, period=period)


def plot_tracking_table(
    table: pd.DataFrame, *, calibration_end: DateLike, period: TimeUnit | str = TimeUnit.WEEK
) -> Figure:
    """:func:`plot_tracking` of a tracking table computed already.

    ``table`` is :func:`cvalue.plot.tracking_table`'s, or the same table counted in the
    database (:func:`cvalue.plot.sql_tracking.tracking_table_from_counts`), per ``period``.
    """
    cumulative, incremental = _rows(2)
    for ax, is_cumulative in ((cumulative, True), (incremental, False)):
        tracking_lines(table, calibration_end=calibration_end, period=period,
                       cumulative=is_cumulative, ax=ax)  # fmt: skip
    cumulative.set_title("Tracking repeat purchases")
    incremental.set_title("")
    return _figure(cumulative, "tracking")


def plot_calibration_holdout(
    model: PurchaseModel, calibration_holdout: pd.DataFrame, *, max_frequency: int = 7
) -> Figure:
    """Mean holdout purchases by calibration frequency, actual and predicted.

    Drawn by :func:`cvalue.plot.calibration_holdout_purchases`.
    """
    (ax,) = _rows(1)
    return _figure(calibration_holdout_purchases(
        model, calibration_holdout, max_frequency=max_frequency, ax=ax),
        "calibration_holdout_purchases")  # fmt: skip


def plot_calibration_holdout_table(table: pd.DataFrame) -> Figure:
    """:func:`plot_calibration_holdout` of a table computed already.

    ``table`` is :func:`cvalue.plot.calibration_holdout_table`'s, such as a holdout check's
    ``calibration_table`` (drawn by :func:`cvalue.plot.calibration_holdout_lines`).
    """
    (ax,) = _rows(1)
    return _figure(calibration_holdout_lines(table, ax=ax), "calibration_holdout_purchases")


def plot_lifecycle_flows(flows: pd.DataFrame, *, observation_end: DateLike | None = None) -> Figure:
    """Active customers per period, and the customers acquired, reactivated and lost in it.

    ``flows`` is :func:`cvalue.lifecycle.lifecycle_flows`'s table; a last period cut by
    ``observation_end`` is left out (:func:`cvalue.plot.lifecycle_flows`).
    """
    stock, moves = _rows(2)
    lifecycle_flows(flows, stock=True, observation_end=observation_end, ax=stock)
    lifecycle_flows(flows, observation_end=observation_end, ax=moves)
    stock.set_title("Lifecycle flows")
    moves.set_title("")
    return _figure(stock, "lifecycle_flows")


def plot_cohort_heatmap(
    cohorts: CohortRetention | pd.DataFrame, *, observation_end: DateLike | None = None
) -> Figure:
    """Cohort x age retention shares as a heatmap (:func:`cvalue.plot.cohort_heatmap`).

    Cohorts flagged ``is_small_sample`` are hatched, and their labels end in ``*``; a last
    calendar period cut by ``observation_end`` is blank.
    """
    (ax,) = _rows(1)
    return _figure(
        cohort_heatmap(cohorts, ax=ax, observation_end=observation_end), "cohort_heatmap"
    )


def plot_clv_distribution(values: pd.Series, *, bins: int = 50) -> Figure:
    """Histogram of customer value (the top 1 % beyond the last bin are counted in it)."""
    (ax,) = _rows(1)
    return _figure(clv_distribution(values, bins=bins, ax=ax), "clv_distribution")


def plot_whale_curve(curve: pd.DataFrame) -> Figure:
    """Cumulative profit against the share of customers ranked by profit.

    ``curve`` is :attr:`cvalue.segments.WhaleCurve.curve_`.
    """
    (ax,) = _rows(1)
    return _figure(whale_curve(curve, ax=ax), "whale_curve")


def plot_value_risk_grid(grid: pd.DataFrame) -> Figure:
    """Customers in each value band x churn risk cell (:func:`cvalue.plot.value_risk_grid`)."""
    (ax,) = _rows(1)
    return _figure(value_risk_grid(grid, ax=ax), "value_risk_grid")


def plot_cohort_retention(
    cohorts: CohortRetention | pd.DataFrame, *, observation_end: DateLike | None = None
) -> Figure:
    """One retention curve per cohort (:func:`cvalue.plot.cohort_retention`).

    A last calendar period cut by ``observation_end`` is left out of the curves.
    """
    (ax,) = _rows(1)
    return _figure(
        cohort_retention(cohorts, ax=ax, observation_end=observation_end), "cohort_retention"
    )


def plot_clv_by_segment(values: pd.Series, segment: pd.Series) -> Figure:
    """Customer value by segment, one box each (:func:`cvalue.plot.clv_by_segment`)."""
    (ax,) = _rows(1)
    return _figure(clv_by_segment(values, segment, ax=ax), "clv_by_segment")


def plot_frequency_recency_matrix(
    model: PurchaseModel,
    *,
    horizon: float | Duration,
    max_frequency: int,
    max_recency: float,
    age: float,
) -> Figure:
    """Expected purchases by history at age ``age``: :func:`cvalue.plot.frequency_recency_matrix`.

    Raises :class:`~cvalue.errors.SchemaError` for a model whose histories are not
    frequency, recency and age.
    """
    (ax,) = _rows(1)
    return _figure(frequency_recency_matrix(model, horizon=horizon, max_frequency=max_frequency,
                                            max_recency=max_recency, T=age, ax=ax),
                   "frequency_recency_matrix")  # fmt: skip


def plot_probability_alive_matrix(
    model: PurchaseModel, *, max_frequency: int, max_recency: float, age: float
) -> Figure:
    """P(alive) of every history of age ``age``: :func:`cvalue.plot.probability_alive_matrix`.

    Raises :class:`~cvalue.errors.SchemaError` as :func:`plot_frequency_recency_matrix`.
    """
    (ax,) = _rows(1)
    return _figure(probability_alive_matrix(model, max_frequency=max_frequency,
                                            max_recency=max_recency, T=age, ax=ax),
                   "probability_alive_matrix")  # fmt: skip


def plot_probability_alive_history(
    model: PurchaseModel,
    transactions: pd.DataFrame,
    customer_id: object,
    *,
    observation_end: DateLike,
    columns: Columns | None = None,
) -> Figure:
    """One customer's P(alive) over time (:func:`cvalue.plot.probability_alive_history`).

    Day by day, or opportunity by opportunity for a discrete-time model. Only the customer's own
    purchases are read, so the cost does not grow with the base. Raises
    :class:`~cvalue.errors.SchemaError` for a model whose histories are not frequency, recency
    and its age.
    """
    customer_column = (columns or Columns()).customer_id
    own = transactions[transactions[customer_column] == customer_id]
    (ax,) = _rows(1)
    return _figure(probability_alive_history(model, own, customer_id,
                                             observation_end=observation_end, columns=columns,
                                             ax=ax),
                   "probability_alive_history")  # fmt: skip
