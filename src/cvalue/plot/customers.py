"""Plots of a valued and segmented base: value, whale curve, cohorts, lifecycle flows.

Each takes a table that :mod:`cvalue.segments`, :mod:`cvalue.lifecycle` or :mod:`cvalue.value`
computed, and draws it on ``ax`` (a new Figure's Axes by default).
"""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.patches import Patch, Rectangle

from cvalue.errors import SchemaError
from cvalue.lifecycle import CohortRetention
from cvalue.plot._axes import ACTUAL, axes_for
from cvalue.segments import WhaleCurve
from cvalue.units import DateLike, as_timestamp

__all__ = [
    "clv_by_segment",
    "clv_distribution",
    "cohort_heatmap",
    "cohort_retention",
    "lifecycle_flows",
    "partial_last_period",
    "value_risk_grid",
    "whale_curve",
]

_SMALL_HATCH, _SMALL_COLOR = "///", "#8a5a00"
_FLOWS = (("acquired", "#2a9d8f"), ("reactivated", "#e9c46a"), ("lost", "#c44536"))


def whale_curve(curve: WhaleCurve | pd.DataFrame, ax: Axes | None = None) -> Axes:
    """Cumulative profit against the share of customers ranked by profit, most profitable first.

    ``curve`` is :func:`cvalue.whale_curve`'s result or its ``curve_`` table. One line.
    """
    table = curve.curve_ if isinstance(curve, WhaleCurve) else curve
    ax = axes_for(ax, "Whale curve")
    ax.plot(table["share_of_customers"], table["cumulative_profit"], color=ACTUAL)
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.set_xlabel("share of customers, most profitable first")
    ax.set_ylabel("cumulative profit")
    return ax


def _shares_and_flags(cohorts: CohortRetention | pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """The shares and, by cohort, whether it is a small sample (never, for bare shares)."""
    if isinstance(cohorts, CohortRetention):
        return cohorts.shares, cohorts.is_small_sample
    return cohorts, pd.Series(False, index=cohorts.index, name="is_small_sample")


def _calendar(periods: pd.Index) -> pd.PeriodIndex:
    """``periods`` as calendar periods, or a SchemaError: only they can be cut by a date."""
    if not isinstance(periods, pd.PeriodIndex):
        raise SchemaError(
            "observation_end marks a partial last period of a table indexed by calendar periods "
            "(as cvalue.lifecycle_flows and cvalue.cohort_retention index theirs); this table "
            f"is indexed by {type(periods).__name__}"
        )
    return periods


def partial_last_period(periods: pd.Index, observation_end: DateLike) -> pd.Period | None:
    """The last of ``periods`` when ``observation_end`` falls before its last day, else None.

    ``periods`` are calendar periods (a :class:`pandas.PeriodIndex`, as
    :func:`cvalue.lifecycle_flows` indexes its table). A cut period holds fewer days than the
    others: fewer customers bought in it, so its flows and active shares drop for no reason but
    the calendar; the lifecycle plots leave it out.
    """
    if len(periods) == 0:
        return None
    last = _calendar(periods).max()
    end = as_timestamp(observation_end, "observation_end").normalize()
    return last if end < last.end_time.normalize() else None


def _left_out(period: pd.Period, observation_end: DateLike) -> str:
    end = as_timestamp(observation_end, "observation_end").date()
    return f"; {period}, cut at {end}, left out"


def _without_cut_period(
    shares: pd.DataFrame, observation_end: DateLike | None
) -> tuple[pd.DataFrame, str]:
    """``shares`` without the cells of a cut last calendar period, and words saying so.

    Cell ``(cohort, age)`` is calendar period ``cohort + age``: the cut one holds each reached
    cohort's last age.
    """
    is_observed = shares.notna().to_numpy()
    if observation_end is None or not is_observed.any():
        return shares, ""
    cohorts = _calendar(shares.index)
    start = cohorts.min()
    offsets = cohorts.asi8 - start.ordinal  # consecutive periods have consecutive ordinals
    calendar = offsets[:, None] + np.asarray(shares.columns, dtype=np.int64)[None, :]
    last = int(calendar[is_observed].max())
    if partial_last_period(pd.PeriodIndex([start + last]), observation_end) is None:
        return shares, ""
    return shares.mask(calendar == last), _left_out(start + last, observation_end)


def _cohort_labels(shares: pd.DataFrame, is_small: np.ndarray) -> list[str]:
    return [f"{cohort} *" if small else str(cohort)
            for cohort, small in zip(shares.index, is_small, strict=True)]  # fmt: skip


def cohort_retention(
    cohorts: CohortRetention | pd.DataFrame,
    ax: Axes | None = None,
    *,
    observation_end: DateLike | None = None,
) -> Axes:
    """Retention curves: the share of each cohort still active, by periods since acquisition.

    ``cohorts`` is :func:`cvalue.cohort_retention`'s result (or its ``shares``); one line per
    cohort, labelled by cohort; small cohorts (``is_small_sample``) are dashed and end in ``*``.
    Given the ``observation_end`` of the states, a last calendar period it cuts (a quarter
    observed for six weeks) is left out of every curve, and the axis label says so: each
    cohort's share active in it would drop for want of days, not of customers.
    """
    shares, flags = _shares_and_flags(cohorts)
    shares, left_out = _without_cut_period(shares, observation_end)
    is_small = flags.to_numpy(dtype=bool)
    ax = axes_for(ax, "Cohort retention curves")
    colors = matplotlib.colormaps["viridis"](np.linspace(0.0, 0.9, max(len(shares), 1)))
    ages = np.asarray(shares.columns, dtype=np.float64)
    labels = _cohort_labels(shares, is_small)
    for row, label in enumerate(labels):
        ax.plot(ages, shares.iloc[row].to_numpy(dtype=np.float64), color=colors[row],
                ls="--" if is_small[row] else "-", label=label)  # fmt: skip
    ax.set_ylim(0.0, 1.05)
    ax.set_xlabel(f"periods since acquisition{left_out}")
    ax.set_ylabel("share active")
    if len(labels) <= 12:
        ax.legend(fontsize="small")
    return ax


def cohort_heatmap(
    cohorts: CohortRetention | pd.DataFrame,
    ax: Axes | None = None,
    *,
    observation_end: DateLike | None = None,
) -> Axes:
    """Cohort x age retention shares as a heatmap.

    Cohorts flagged ``is_small_sample`` are hatched, and their labels end in ``*``. A last
    calendar period cut by ``observation_end`` is left blank, as in :func:`cohort_retention`.
    """
    shares, flags = _shares_and_flags(cohorts)
    shares, left_out = _without_cut_period(shares, observation_end)
    is_small = flags.to_numpy(dtype=bool)
    ax = axes_for(ax, "Cohort retention: share of each cohort still active")
    image = ax.imshow(shares.to_numpy(dtype=np.float64), aspect="auto", cmap="Blues",
                      vmin=0.0, vmax=1.0)  # fmt: skip
    reached = shares.notna().sum(axis=1).to_numpy()  # ages each cohort has reached
    for row in np.flatnonzero(is_small):
        band = Rectangle((-0.5, row - 0.5), float(reached[row]), 1.0, fill=False,
                         hatch=_SMALL_HATCH, edgecolor=_SMALL_COLOR, linewidth=0.0)  # fmt: skip
        ax.add_patch(band)
    labels = _cohort_labels(shares, is_small)
    step = max(1, len(shares) // 12)
    ax.set_yticks(np.arange(len(shares))[::step], labels[::step])
    ax.set_xlabel(f"periods since acquisition{left_out}")
    ax.set_ylabel("cohort")
    if isinstance(cohorts, CohortRetention) and is_small.any():
        marker = Patch(fill=False, hatch=_SMALL_HATCH, edgecolor=_SMALL_COLOR,
                       label=f"* fewer than {cohorts.min_customers} customers")  # fmt: skip
        ax.legend(handles=[marker], loc="lower right")  # the ages no cohort has reached yet
    ax.figure.colorbar(image, ax=ax, label="share active")
    return ax


def clv_distribution(values: pd.Series, *, bins: int = 50, ax: Axes | None = None) -> Axes:
    """Histogram of customer value (the top 1 % beyond the last bin are counted in it).

    Customers without a finite value (NaN, such as a customer no model could score) are left
    out, and the axis label counts them.
    """
    ax = axes_for(ax, f"Distribution of {values.name or 'customer value'}")
    numbers = values.to_numpy(dtype=np.float64)
    is_valued = np.isfinite(numbers)
    numbers = numbers[is_valued]
    upper = float(np.quantile(numbers, 0.99)) if len(numbers) else 1.0
    ax.hist(np.minimum(numbers, upper), bins=bins, color=ACTUAL)
    n_left_out = int((~is_valued).sum())
    left_out = f"; {n_left_out:,} customers without a value left out" if n_left_out else ""
    ax.set_xlabel(f"value per customer (the top 1 % in the last bin){left_out}")
    ax.set_ylabel("customers")
    return ax


def clv_by_segment(values: pd.Series, segment: pd.Series, ax: Axes | None = None) -> Axes:
    """Customer value by segment: one box per segment (quartiles, whiskers at 1.5 IQR).

    ``values`` and ``segment`` are aligned on their index (customers); segments are in sorted
    order, with their customer counts in the tick labels; outliers are not drawn.
    """
    frame = pd.DataFrame({"value": values, "segment": segment}).dropna()
    groups = frame.groupby("segment", sort=True, observed=True)["value"]
    names = [str(name) for name in groups.groups]
    samples = [group.to_numpy(dtype=np.float64) for _, group in groups]
    ax = axes_for(ax, f"{values.name or 'Customer value'} by {segment.name or 'segment'}")
    ax.boxplot(samples, tick_labels=[f"{name}\n({len(sample):,})"
                                     for name, sample in zip(names, samples, strict=True)],
               showfliers=False, patch_artist=True,
               boxprops={"facecolor": "#c6dbef", "edgecolor": ACTUAL})  # fmt: skip
    ax.set_xlabel(str(segment.name or "segment"))
    ax.set_ylabel("value per customer")
    return ax


def lifecycle_flows(
    flows: pd.DataFrame,
    *,
    stock: bool = False,
    observation_end: DateLike | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Lifecycle flows per period (:func:`cvalue.lifecycle_flows`'s table).

    ``stock=False``: bars of the customers acquired, reactivated and lost (below 0) in each
    period; ``stock=True``: the line of active customers. Given the ``observation_end`` of the
    states, a last period it cuts is left out, and the axis label says so: a quarter observed
    for six weeks has fewer buyers, so fewer active and more inactive customers, for want of
    days.
    """
    left_out = ""
    if observation_end is not None:
        cut = partial_last_period(flows.index, observation_end)
        if cut is not None:
            flows, left_out = flows.iloc[:-1], _left_out(cut, observation_end)
    labels = [str(period) for period in flows.index]
    positions = np.arange(len(flows))
    ax = axes_for(ax, "Active customers" if stock else "Lifecycle flows")
    if stock:
        ax.plot(positions, flows["active"], color=ACTUAL, label="active")
        ax.set_ylabel("customers")
    else:
        for offset, (column, color) in enumerate(_FLOWS):
            sign = -1.0 if column == "lost" else 1.0
            ax.bar(positions + (offset - 1) * 0.28, sign * flows[column], width=0.28,
                   color=color, label=column)  # fmt: skip
        ax.axhline(0.0, color="grey", lw=0.8)
        ax.set_ylabel("customers in the period (lost below 0)")
    ax.legend()
    step = max(1, len(labels) // 12)
    ax.set_xticks(positions[::step], labels[::step], rotation=45, ha="right")
    if left_out:
        ax.set_xlabel(f"period{left_out}")
    return ax


def value_risk_grid(grid: pd.DataFrame, ax: Axes | None = None) -> Axes:
    """Customers in each value band x churn risk cell (:func:`cvalue.value_risk_grid`)."""
    table = grid["customers"].unstack()  # noqa: PD010 - the grid's two index levels
    ax = axes_for(ax, "Value x risk: customers per cell")
    ax.imshow(table.to_numpy(dtype=np.float64), aspect="auto", cmap="Oranges")
    ax.set_xticks(np.arange(table.shape[1]), [str(c) for c in table.columns])
    ax.set_yticks(np.arange(table.shape[0]), [str(r) for r in table.index])
    for (row, column), count in np.ndenumerate(table.to_numpy()):
        ax.text(column, row, f"{count:,.0f}", ha="center", va="center")
    ax.set_xlabel("churn risk")
    ax.set_ylabel("value band")
    return ax
