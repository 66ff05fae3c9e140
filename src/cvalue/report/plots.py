"""Figures of a fitted model and a scored base, one function per plot.

Each function returns a :class:`matplotlib.figure.Figure` made without pyplot (no global state,
no display needed); save it with ``figure.savefig(path)``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from cvalue.io.schema import Columns
from cvalue.report.diagnostics import (
    PurchaseModel,
    calibration_holdout_table,
    frequency_fit_table,
    tracking_table,
)
from cvalue.units import DateLike, TimeUnit, as_time_unit

__all__ = ["plot_calibration_holdout", "plot_frequency_fit", "plot_tracking"]

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
