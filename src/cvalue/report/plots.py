"""The report's figures, one function per plot, drawn by :mod:`cvalue.plot`.

Each function returns a :class:`matplotlib.figure.Figure` made without pyplot (no global state,
no display needed); save it with ``figure.savefig(path)``. For one plot on Axes of your own, use
:mod:`cvalue.plot` directly.
"""

from __future__ import annotations

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from cvalue.io.schema import Columns
from cvalue.lifecycle import CohortRetention
from cvalue.models import PurchaseModel
from cvalue.plot import (
    calibration_holdout_purchases,
    clv_distribution,
    cohort_heatmap,
    lifecycle_flows,
    period_transactions,
    tracking_lines,
    tracking_table,
    value_risk_grid,
    whale_curve,
)
from cvalue.units import DateLike, TimeUnit

__all__ = [
    "plot_calibration_holdout",
    "plot_clv_distribution",
    "plot_cohort_heatmap",
    "plot_frequency_fit",
    "plot_lifecycle_flows",
    "plot_tracking",
    "plot_value_risk_grid",
    "plot_whale_curve",
]

_SIZE = (7.0, 4.0)


def _rows(n_rows: int) -> list[Axes]:
    figure = Figure(figsize=(_SIZE[0], _SIZE[1] * n_rows), layout="constrained")
    return [figure.add_subplot(n_rows, 1, row + 1) for row in range(n_rows)]


def _figure(ax: Axes) -> Figure:
    figure = ax.figure
    assert isinstance(figure, Figure)  # the report draws on Figures it made, not subfigures
    return figure


def plot_frequency_fit(
    model: PurchaseModel, summary: pd.DataFrame, *, max_frequency: int = 7
) -> Figure:
    """Customers by repeat purchases, actual and model: :func:`cvalue.plot.period_transactions`."""
    (ax,) = _rows(1)
    return _figure(period_transactions(model, summary, max_frequency=max_frequency, ax=ax))


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
    cumulative, incremental = _rows(2)
    for ax, is_cumulative in ((cumulative, True), (incremental, False)):
        tracking_lines(table, calibration_end=calibration_end, period=period,
                       cumulative=is_cumulative, ax=ax)  # fmt: skip
    cumulative.set_title("Tracking repeat purchases")
    incremental.set_title("")
    return _figure(cumulative)


def plot_calibration_holdout(
    model: PurchaseModel, calibration_holdout: pd.DataFrame, *, max_frequency: int = 7
) -> Figure:
    """Mean holdout purchases by calibration frequency, actual and predicted.

    Drawn by :func:`cvalue.plot.calibration_holdout_purchases`.
    """
    (ax,) = _rows(1)
    return _figure(calibration_holdout_purchases(
        model, calibration_holdout, max_frequency=max_frequency, ax=ax))  # fmt: skip


def plot_lifecycle_flows(flows: pd.DataFrame) -> Figure:
    """Active customers per period, and the customers acquired, reactivated and lost in it.

    ``flows`` is :func:`cvalue.lifecycle.lifecycle_flows`'s table.
    """
    stock, moves = _rows(2)
    lifecycle_flows(flows, stock=True, ax=stock)
    lifecycle_flows(flows, ax=moves)
    stock.set_title("Lifecycle flows")
    moves.set_title("")
    return _figure(stock)


def plot_cohort_heatmap(cohorts: CohortRetention | pd.DataFrame) -> Figure:
    """Cohort x age retention shares as a heatmap (:func:`cvalue.plot.cohort_heatmap`).

    Cohorts flagged ``is_small_sample`` are hatched, and their labels end in ``*``.
    """
    (ax,) = _rows(1)
    return _figure(cohort_heatmap(cohorts, ax=ax))


def plot_clv_distribution(values: pd.Series, *, bins: int = 50) -> Figure:
    """Histogram of customer value (the top 1 % beyond the last bin are counted in it)."""
    (ax,) = _rows(1)
    return _figure(clv_distribution(values, bins=bins, ax=ax))


def plot_whale_curve(curve: pd.DataFrame) -> Figure:
    """Cumulative profit against the share of customers ranked by profit.

    ``curve`` is :attr:`cvalue.segments.WhaleCurve.curve_`.
    """
    (ax,) = _rows(1)
    return _figure(whale_curve(curve, ax=ax))


def plot_value_risk_grid(grid: pd.DataFrame) -> Figure:
    """Customers in each value band x churn risk cell (:func:`cvalue.plot.value_risk_grid`)."""
    (ax,) = _rows(1)
    return _figure(value_risk_grid(grid, ax=ax))
