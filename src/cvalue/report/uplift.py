"""The report's "what more retention is worth" section (seed 003), from ``result.uplift``.

Seed 003 quotes "5 % more retention can mean up to 95 % more profit": a claim about particular
businesses. The section measures it for this base, through its own models
(:func:`cvalue.value.retention_uplift`): customer equity today and if each segment's
model-implied yearly retention rose by ``[value] retention_points``, with the change's interval.
"""

from __future__ import annotations

import pandas as pd

from cvalue.report.html import Section
from cvalue.results import JobResult

__all__ = ["UPLIFT_SAMPLED", "uplift_section"]

UPLIFT_SAMPLED = "what more retention is worth: measured on a random sample of"
"""How a run's note begins when it measured the uplift on a sample of its customers."""

_SHOWN = {
    "customers": "customers", "retention": "retention now", "raised_retention": "raised to",
    "equity": "equity now", "raised_equity": "equity if raised", "change": "change",
    "change_ci_lower": "change, lower 95 %", "change_ci_upper": "change, upper 95 %",
    "change_percent": "change, %",
}  # fmt: skip


def _table(frame: pd.DataFrame) -> pd.DataFrame:
    shown = frame[[column for column in _SHOWN if column in frame.columns]].rename(columns=_SHOWN)
    for column in ("retention now", "raised to"):
        shown[column] = [f"{100 * value:.1f} %" for value in shown[column]]
    shown["change, %"] = [f"{value:+.1f} %" for value in shown["change, %"]]
    return shown


def uplift_section(result: JobResult) -> Section:
    """Equity today and with retention raised, per segment and for the base, at each horizon."""
    title = "What more retention is worth"
    uplift = result.uplift
    points = result.config.value.retention_points
    if uplift is None:
        why = ("[value] retention_points is unset" if not points else
               "a Dask run values its customers on the workers, and the uplift needs their "
               "valuations together; an in-memory or chunked run measures it"
               if result.config.run.engine == "dask" else
               "see the run's notes for why it was not measured")  # fmt: skip
        return Section(key="retention-uplift", title=title, paragraphs=[f"Not measured: {why}."])
    total = uplift.total
    longest = total.index[-1]
    line = total.loc[longest]
    paragraphs = [
        f"If the yearly retention of each segment rose by {uplift.points:g} points (the whole "
        f"base from {100 * line['retention']:.1f} % to {100 * line['raised_retention']:.1f} %), "
        f"customer equity over {longest} would change by {line['change_percent']:+.1f} % "
        f"({line['change']:,.0f}; 95 % interval {line['change_ci_lower']:,.0f} to "
        f"{line['change_ci_upper']:,.0f}).",
        "Retention here is the models' own: the expected share of the customers alive now who "
        "are still alive a year later. Raising it cuts every customer's future dropout by one "
        "factor per segment, solved so that the segment's retention rises by exactly those "
        "points; purchase rates, spend, margins and costs stay as they are. The interval comes "
        "from the models' parameter uncertainty, paired: today's and the raised equity are "
        "computed at the same parameters.",
        "Seed 003 quotes up to 95 % more profit for 5 points more retention: that is what some "
        "businesses found, not a law. This is what your base's models say of yours.",
    ]
    sampled = [note for note in result.notes if note.startswith(UPLIFT_SAMPLED)]
    if sampled:  # the run's note, without its subject: "Measured on a random sample of ..."
        said = sampled[0].split(": ", 1)[1]
        paragraphs.append(f"{said[0].upper()}{said[1:]}.")
    tables = [("Customer equity with retention raised, whole base", _table(total))]
    if uplift.by_group is not None and len(uplift.by_group):
        tables.append(("By segment", _table(uplift.by_group)))
    return Section(key="retention-uplift", title=title, paragraphs=paragraphs, tables=tables)
