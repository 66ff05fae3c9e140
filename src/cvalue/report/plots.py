"""Figures of a fitted model and a scored base, one function per plot.

Each function returns a :class:`matplotlib.figure.Figure` made without pyplot (no global state,
no display needed); save it with ``figure.savefig(path)``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from cvalue.io.schema import Columns
from cvalue.lifecycle import CohortRetention
from cvalue.models import PurchaseModel
from cvalue.report.diagnostics import (
    calibration_holdout_table,
    frequency_fit_table,
    tracking_table,
)
from cvalue.units import DateLike, TimeUnit, as_time_unit

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

_ACTUAL, _MODEL = "#1f4e79", "#e07b39"
_SIZE = (7.0, 4.0)


def _axes(title: str, *, n_rows: int = 1) -> tuple[Figure, list[Axes]]:
    figure = Figure(figsize=(_SIZE[0], _SIZE[1] * n_rows), layout="constrained")
    axes = [figure.add_subplot(n_rows, 1, row + 1) for row in range(n_rows)]
    axes[0].set_title(title)
    return figure, axes


def plot_frequency_fit(
    model: PurchaseModel, summary: pd.DataFrame, *, max_frequency: int = 7
) -> Figure:
    """Customers by repeat purchases, observed and expected (:func:`frequency_fit_table`)."""
    table = frequency_fit_table(model, summary, max_frequency=max_frequency)
    figure, (axes,) = _axes(f"Frequency of repeat purchases: {type(model).__name__}")
    positions = np.arange(len(table))
    axes.bar(positions - 0.2, table["observed"], width=0.4, color=_ACTUAL, label="actual")
    axes.bar(positions + 0.2, table["expected"], width=0.4, color=_MODEL, label="model")
    axes.set_xticks(positions, list(table.index))
    axes.set_xlabel("repeat purchases in the calibration period")
    axes.set_ylabel("customers")
    axes.legend()
    return figure


def plot_tracking(
    model: PurchaseModel,
    transactions: pd.DataFrame,
    *,
    calibration_end: DateLike,
    observation_end: DateLike,
    period: TimeUnit | str = TimeUnit.WEEK,
    columns: Columns | None = None,
) -> Figure:
    """Cumulative and per-period repeat purchases, actual and model (:func:`tracking_table`)."""
    table = tracking_table(
        model, transactions, calibration_end=calibration_end, observation_end=observation_end,
        period=period, columns=columns,
    )  # fmt: skip
    figure, (cumulative, incremental) = _axes("Tracking repeat purchases", n_rows=2)
    for axes, suffix in ((cumulative, "_cumulative"), (incremental, "")):
        axes.plot(table.index, table["actual" + suffix], color=_ACTUAL, label="actual")
        axes.plot(table.index, table["expected" + suffix], color=_MODEL, ls="--", label="model")
        axes.axvline(pd.Timestamp(calibration_end), color="grey", lw=0.8)  # type: ignore[arg-type]
        axes.legend()
    cumulative.set_ylabel("cumulative repeat purchases")
    incremental.set_ylabel(f"repeat purchases per {as_time_unit(period).value}")
    return figure


def plot_calibration_holdout(
    model: PurchaseModel, calibration_holdout: pd.DataFrame, *, max_frequency: int = 7
) -> Figure:
    """Mean holdout purchases by calibration frequency (:func:`calibration_holdout_table`)."""
    table = calibration_holdout_table(model, calibration_holdout, max_frequency=max_frequency)
    figure, (axes,) = _axes("Calibration against holdout")
    positions = np.arange(len(table))
    axes.plot(positions, table["actual"], marker="o", color=_ACTUAL, label="actual")
    axes.plot(positions, table["predicted"], marker="s", ls="--", color=_MODEL, label="model")
    axes.set_xticks(positions, list(table.index))
    axes.set_xlabel("repeat purchases in the calibration period")
    axes.set_ylabel("mean purchases in the holdout")
    axes.legend()
    return figure


def plot_lifecycle_flows(flows: pd.DataFrame) -> Figure:
    """Active customers per period, and the customers acquired, reactivated and lost in it.

    ``flows`` is :func:`cvalue.lifecycle.lifecycle_flows`'s table.
    """
    figure, (stock, moves) = _axes("Lifecycle flows", n_rows=2)
    labels = [str(period) for period in flows.index]
    positions = np.arange(len(flows))
    stock.plot(positions, flows["active"], color=_ACTUAL, label="active")
    stock.set_ylabel("customers")
    stock.legend()
    for offset, (column, color) in enumerate(
        (("acquired", "#2a9d8f"), ("reactivated", "#e9c46a"), ("lost", "#c44536"))
    ):
        sign = -1.0 if column == "lost" else 1.0
        moves.bar(positions + (offset - 1) * 0.28, sign * flows[column], width=0.28,
                  color=color, label=column)  # fmt: skip
    moves.axhline(0.0, color="grey", lw=0.8)
    moves.set_ylabel("customers in the period (lost below 0)")
    moves.legend()
    step = max(1, len(labels) // 12)
    for axes in (stock, moves):
        axes.set_xticks(positions[::step], labels[::step], rotation=45, ha="right")
    return figure


_SMALL_HATCH, _SMALL_COLOR = "///", "#8a5a00"


def _small_cohorts(cohorts: CohortRetention | pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """The shares and, by cohort, whether it is a small sample (never, for bare shares)."""
    if isinstance(cohorts, CohortRetention):
        return cohorts.shares, cohorts.is_small_sample
    return cohorts, pd.Series(False, index=cohorts.index, name="is_small_sample")


def plot_cohort_heatmap(cohorts: CohortRetention | pd.DataFrame) -> Figure:
    """Cohort x age retention shares as a heatmap (:func:`cvalue.lifecycle.cohort_retention`).

    ``cohorts`` is the :class:`~cvalue.lifecycle.CohortRetention` (or only its ``shares``).
    Cohorts flagged ``is_small_sample`` are hatched, and their labels end in ``*``.
    """
    shares, flags = _small_cohorts(cohorts)
    is_small = flags.to_numpy(dtype=bool)
    figure, (axes,) = _axes("Cohort retention: share of each cohort still active")
    image = axes.imshow(shares.to_numpy(dtype=np.float64), aspect="auto", cmap="Blues",
                        vmin=0.0, vmax=1.0)  # fmt: skip
    reached = shares.notna().sum(axis=1).to_numpy()  # ages each cohort has reached
    for row in np.flatnonzero(is_small):
        band = Rectangle((-0.5, row - 0.5), float(reached[row]), 1.0, fill=False,
                         hatch=_SMALL_HATCH, edgecolor=_SMALL_COLOR, linewidth=0.0)  # fmt: skip
        axes.add_patch(band)
    labels = [f"{cohort} *" if small else str(cohort)
              for cohort, small in zip(shares.index, is_small, strict=True)]  # fmt: skip
    step = max(1, len(shares) // 12)
    axes.set_yticks(np.arange(len(shares))[::step], labels[::step])
    axes.set_xlabel("periods since acquisition")
    axes.set_ylabel("cohort")
    if isinstance(cohorts, CohortRetention) and is_small.any():
        marker = Patch(fill=False, hatch=_SMALL_HATCH, edgecolor=_SMALL_COLOR,
                       label=f"* fewer than {cohorts.min_customers} customers")  # fmt: skip
        axes.legend(handles=[marker], loc="lower right")  # the ages no cohort has reached yet
    figure.colorbar(image, ax=axes, label="share active")
    return figure


def plot_clv_distribution(values: pd.Series, *, bins: int = 50) -> Figure:
    """Histogram of customer value (the top 1 % beyond the last bin are counted in it)."""
    figure, (axes,) = _axes(f"Distribution of {values.name or 'customer value'}")
    numbers = values.to_numpy(dtype=np.float64)
    upper = float(np.quantile(numbers, 0.99)) if len(numbers) else 1.0
    axes.hist(np.minimum(numbers, upper), bins=bins, color=_ACTUAL)
    axes.set_xlabel("value per customer (the top 1 % in the last bin)")
    axes.set_ylabel("customers")
    return figure


def plot_whale_curve(curve: pd.DataFrame) -> Figure:
    """Cumulative profit against the share of customers ranked by profit.

    ``curve`` is :attr:`cvalue.segments.WhaleCurve.curve_`.
    """
    figure, (axes,) = _axes("Whale curve")
    axes.plot(curve["share_of_customers"], curve["cumulative_profit"], color=_ACTUAL)
    axes.axhline(0.0, color="grey", lw=0.8)
    axes.set_xlabel("share of customers, most profitable first")
    axes.set_ylabel("cumulative profit")
    return figure


def plot_value_risk_grid(grid: pd.DataFrame) -> Figure:
    """Customers in each value band x churn risk cell (:func:`cvalue.segments.value_risk_grid`)."""
    table = grid["customers"].unstack()  # noqa: PD010 - the grid's two index levels
    figure, (axes,) = _axes("Value x risk: customers per cell")
    axes.imshow(table.to_numpy(dtype=np.float64), aspect="auto", cmap="Oranges")
    axes.set_xticks(np.arange(table.shape[1]), [str(c) for c in table.columns])
    axes.set_yticks(np.arange(table.shape[0]), [str(r) for r in table.index])
    for (row, column), count in np.ndenumerate(table.to_numpy()):
        axes.text(column, row, f"{count:,.0f}", ha="center", va="center")
    axes.set_xlabel("churn risk")
    axes.set_ylabel("value band")
    return figure
