"""How well a fitted purchase model describes the data: the three fit plots.

Fader, Hardie & Lee (2005), figures 2-4: customers by repeat purchases, repeat purchases over
calendar time, and holdout purchases by calibration frequency, each actual against the model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from cvalue.io.schema import Columns
from cvalue.models import PurchaseModel
from cvalue.plot._axes import ACTUAL, MODEL, SIMULATED, axes_for
from cvalue.plot.tables import calibration_holdout_table, frequency_fit_table, tracking_table
from cvalue.units import DateLike, TimeUnit, as_time_unit

__all__ = [
    "calibration_holdout_lines",
    "calibration_holdout_purchases",
    "period_transactions",
    "tracking",
    "tracking_lines",
]


def period_transactions(
    model: PurchaseModel,
    summary: pd.DataFrame,
    *,
    max_frequency: int = 7,
    rng: np.random.Generator | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Customers by number of repeat purchases: actual bars beside the model's.

    The expected count of customers with ``x`` repeat purchases is ``sum_i P(X(T_i) = x)`` from
    the model's ``purchase_pmf`` (:func:`~cvalue.plot.frequency_fit_table`); the last bar gathers
    ``max_frequency`` and more. Two bar containers: ``actual`` then ``model``. With ``rng``, a
    third, ``simulated``: as many customers of each age as the summary has, drawn from the
    model's own simulator (``model.simulate``), as lifetimes' ``plot_period_transactions``
    draws them; it differs from ``model`` by sampling error only.

    A ``weight`` column counts the customers of each row (a pattern table): the bars are those
    of the rows repeated, the simulated one drawing as many customers as the weights sum to.
    """
    table = frequency_fit_table(model, summary, max_frequency=max_frequency, rng=rng)
    ax = axes_for(ax, f"Frequency of repeat purchases: {type(model).__name__}")
    bars = [("observed", ACTUAL, "actual"), ("expected", MODEL, "model")]
    if rng is not None:
        bars.append(("simulated", SIMULATED, "simulated"))
    width = 0.8 / len(bars)
    positions = np.arange(len(table))
    for number, (column, color, label) in enumerate(bars):
        offset = (number - (len(bars) - 1) / 2) * width
        ax.bar(positions + offset, table[column], width=width, color=color, label=label)
    ax.set_xticks(positions, list(table.index))
    ax.set_xlabel("repeat purchases in the calibration period")
    ax.set_ylabel("customers")
    ax.legend()
    return ax


def calibration_holdout_purchases(
    model: PurchaseModel, split: pd.DataFrame, *, max_frequency: int = 7, ax: Axes | None = None
) -> Axes:
    """Mean holdout purchases by calibration frequency, actual and predicted.

    ``split`` is :func:`cvalue.calibration_holdout`'s table and ``model`` is fitted on its
    calibration columns (:func:`~cvalue.plot.calibration_holdout_table`). Two lines: ``actual``
    then ``model``. A ``weight`` column counts the customers of each row (a split grouped into
    patterns): the means are weighted by it, as those of the rows repeated.
    """
    table = calibration_holdout_table(model, split, max_frequency=max_frequency)
    return calibration_holdout_lines(table, ax=ax)


def calibration_holdout_lines(table: pd.DataFrame, *, ax: Axes | None = None) -> Axes:
    """Draw a :func:`~cvalue.plot.calibration_holdout_table` already computed.

    As :func:`calibration_holdout_purchases` draws it: two lines, ``actual`` then ``model``.
    A scoring job keeps the table of its best candidate (``HoldoutCheck.calibration_table``),
    so its plot needs neither the split nor the model.
    """
    ax = axes_for(ax, "Calibration against holdout")
    positions = np.arange(len(table))
    ax.plot(positions, table["actual"], marker="o", color=ACTUAL, label="actual")
    ax.plot(positions, table["predicted"], marker="s", ls="--", color=MODEL, label="model")
    ax.set_xticks(positions, list(table.index))
    ax.set_xlabel("repeat purchases in the calibration period")
    ax.set_ylabel("mean purchases in the holdout")
    ax.legend()
    return ax


def tracking(
    model: PurchaseModel,
    transactions: pd.DataFrame,
    *,
    calibration_end: DateLike,
    observation_end: DateLike,
    period: TimeUnit | str = TimeUnit.WEEK,
    columns: Columns | None = None,
    cumulative: bool = True,
    ax: Axes | None = None,
) -> Axes:
    """Repeat purchases over calendar time, actual and model (:func:`~cvalue.plot.tracking_table`).

    ``cumulative=True`` draws the running totals; ``cumulative=False`` the purchases per period,
    of whole periods only: a partial first or last period (a last "week" of two days before
    ``observation_end``) would show a false drop, so it is left out (the table keeps it, flagged
    ``is_partial``). A grey line marks ``calibration_end``.
    """
    table = tracking_table(
        model, transactions, calibration_end=calibration_end, observation_end=observation_end,
        period=period, columns=columns,
    )  # fmt: skip
    return tracking_lines(
        table, calibration_end=calibration_end, period=period, cumulative=cumulative, ax=ax
    )


def tracking_lines(
    table: pd.DataFrame,
    *,
    calibration_end: DateLike | None = None,
    period: TimeUnit | str = TimeUnit.WEEK,
    cumulative: bool = True,
    ax: Axes | None = None,
) -> Axes:
    """Draw a :func:`~cvalue.plot.tracking_table` already computed, as :func:`tracking` does.

    Two lines, ``actual`` then ``model``; per period (``cumulative=False``), partial periods are
    left out.
    """
    unit = as_time_unit(period)
    if cumulative:
        shown, suffix = table, "_cumulative"
        ax = axes_for(ax, "Tracking cumulative repeat purchases")
        ax.set_ylabel("cumulative repeat purchases")
    else:
        shown, suffix = table[~table["is_partial"]], ""
        ax = axes_for(ax, f"Tracking repeat purchases per {unit.value} (whole periods)")
        ax.set_ylabel(f"repeat purchases per {unit.value}")
    ax.plot(shown.index, shown["actual" + suffix], color=ACTUAL, label="actual")
    ax.plot(shown.index, shown["expected" + suffix], color=MODEL, ls="--", label="model")
    if calibration_end is not None:
        ax.axvline(pd.Timestamp(calibration_end), color="grey", lw=0.8)  # type: ignore[arg-type]
    ax.legend()
    return ax
