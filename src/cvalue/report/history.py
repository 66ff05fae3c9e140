"""The report's run-history section: each indicator's trend per quarter, and score drift.

The rows come from the run history (:mod:`cvalue.io.history`), this run included; the verdicts
from :func:`cvalue.trends.history_trends`, a test against the run-to-run noise rather than a
reading of the chart.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from cvalue.report.html import Section
from cvalue.results import JobResult
from cvalue.trends import PSI_MAJOR, PSI_MODERATE, history_trends

__all__ = ["history_section"]

# the indicators of the whole base the figure draws, in this order, with their titles
_DRAWN = {
    "customers": "Customers scored",
    "retention_rate": "Retention rate, last period",
    "crr": "Customer retention rate (CRR), last quarter",
    "churn_rate": "Churn rate, last period",
    "mean_p_alive": "Mean P(alive)",
    "equity_3y": "Customer equity, 3 years",
    "equity_5y": "Customer equity, 5 years",
    "nps": "NPS",
    "csat": "CSAT",
    "ces": "CES",
}
_TREND_COLUMNS = {
    "quarter": "latest quarter", "value": "value", "ci_lower": "ci_lower",
    "ci_upper": "ci_upper", "previous": "previous quarter", "customers": "customers",
    "quarters": "quarters", "direction": "trend", "p_value": "p_value",
}  # fmt: skip


def _figure(history: pd.DataFrame) -> Figure | None:
    """One small panel per indicator of the whole base: its value per quarter, with intervals.

    ``None`` until some indicator has two quarters: one point draws no trend.
    """
    rows = history[(history["grouping"] == "all") & history["bin"].isna()]
    rows = rows.sort_values("scored_at", kind="stable").drop_duplicates(
        ["indicator", "quarter"], keep="last")  # fmt: skip
    counted = rows.groupby("indicator")["quarter"].nunique()
    drawn = [name for name in _DRAWN if counted.get(name, 0) >= 2]  # a trend needs two points
    if not drawn:
        return None
    columns = 3
    lines = -(-len(drawn) // columns)
    figure = Figure(figsize=(10, 2.6 * lines), layout="constrained")
    figure.set_label("history")
    for number, name in enumerate(drawn):
        axes = figure.add_subplot(lines, columns, number + 1)
        series = rows[rows["indicator"] == name].sort_values("quarter")
        quarters = series["quarter"].astype(str).tolist()
        values = series["value"].to_numpy(float)
        lower, upper = series["ci_lower"].to_numpy(float), series["ci_upper"].to_numpy(float)
        has_interval = np.isfinite(lower) & np.isfinite(upper)
        errors = np.where(has_interval, [values - lower, upper - values], 0.0)
        axes.errorbar(range(len(values)), values, yerr=errors, marker="o", capsize=3)
        small = series["is_small_sample"].to_numpy(bool)
        if small.any():
            axes.plot(np.flatnonzero(small), values[small], "o", mfc="white", color="C3",
                      label="fewer than 100 customers")  # fmt: skip
            axes.legend(fontsize=7)
        axes.set_xticks(range(len(values)), quarters, fontsize=8, rotation=30)
        axes.set_title(_DRAWN[name], fontsize=9)
        axes.tick_params(axis="y", labelsize=8)
    return figure


def _trend_table(trends: pd.DataFrame, grouping: str) -> pd.DataFrame:
    rows = trends[(trends["grouping"] == grouping) & ~trends["indicator"].str.startswith("psi_")]
    table = rows.set_index(["group_name", "indicator"])[list(_TREND_COLUMNS)]
    table = table.rename(columns=_TREND_COLUMNS)
    marked = rows["is_small_sample"].to_numpy(bool)
    table["customers"] = [f"{n:,}{' *' if mark else ''}" if pd.notna(n) else "n/a"
                          for n, mark in zip(table["customers"], marked, strict=True)]  # fmt: skip
    table.index = table.index.set_names(["group", "indicator"])
    return table


def _drift_table(trends: pd.DataFrame) -> pd.DataFrame:
    rows = trends[trends["indicator"].str.startswith("psi_")]
    table = rows.set_index(["grouping", "group_name", "indicator"])[["quarter", "value", "drift"]]
    table.index = table.index.set_names(["grouping", "group", "score"])
    return table.rename(columns={"quarter": "latest quarter", "value": "PSI"})


def history_section(result: JobResult) -> Section:
    """The run history's trends, drawn and tested, and the drift of the scores' distribution."""
    title = "The quarter, run to run"
    history = result.run_history
    if history is None or history.empty:
        return Section(key="history", title=title, paragraphs=[
            "No run history: only a run that writes its scores appends its indicators to the "
            "history table ([outputs] history_table), and this one wrote none."])  # fmt: skip
    trends = history_trends(history)
    runs, quarters = history["run_id"].nunique(), history["quarter"].nunique()
    paragraphs = [
        f"{runs:,} run(s) over {quarters:,} quarter(s); each quarter counts once, by its latest "
        "run. An indicator is called rising or falling when its slope per quarter differs from "
        "zero at the 5 % level, tested against the run-to-run noise beyond the intervals "
        "(a random-effects meta-regression); flat otherwise. Two quarters are tested against "
        "their intervals alone; one quarter is too few.",
        "Figures marked * rest on fewer than 100 customers (seed 003's rule): read them as "
        "indications, not measurements.",
    ]
    tables = [("Trends of the whole base", _trend_table(trends, "all"))]
    if (trends["grouping"] == "segment").any():
        tables.append(("Trends by segment", _trend_table(trends, "segment")))
    drift = _drift_table(trends)
    if len(drift):
        paragraphs.append(
            "Drift of the scores' distribution since the previous run: the population stability "
            f"index over the previous run's deciles; below {PSI_MODERATE} stable, up to "
            f"{PSI_MAJOR} a moderate shift, above it a major one (check the data and the model "
            "before acting on the scores)."
        )
        tables.append(("Score drift since the previous run", drift))
    figure = _figure(history)
    caption = "Each indicator of the whole base per quarter, with its 95 % interval"
    figures = [] if figure is None else [(caption, figure)]
    return Section(key="history", title=title, paragraphs=paragraphs, tables=tables,
                   figures=figures)  # fmt: skip
