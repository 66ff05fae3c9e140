"""The report's list of valuable customers at risk, and the CSV of it beside the report.

The job fills :attr:`cvalue.results.JobResult.at_risk` with
:func:`cvalue.segments.at_risk_valuable` (or its table twin) at the defaults, by CLV at the
longest horizon. The report shows its first rows and writes all of them to a CSV file named
after the report (``report.html`` -> ``report_at_risk.csv``, :func:`at_risk_csv_path`), which the
job stages and publishes with the report.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd

from cvalue.report.html import Section
from cvalue.report.labels import label, percent
from cvalue.segments import AT_RISK_P_ALIVE_BELOW

__all__ = [
    "AT_RISK_CSV_SUFFIX",
    "AT_RISK_SHOWN",
    "at_risk_csv_path",
    "at_risk_section",
    "write_at_risk_csv",
]

AT_RISK_CSV_SUFFIX = "_at_risk.csv"
"""What the CSV's name adds to the report's stem: ``report.html`` -> ``report_at_risk.csv``."""
AT_RISK_SHOWN = 25
"""How many of the listed customers the report's table shows (the CSV holds them all)."""


def at_risk_csv_path(report: str | Path) -> Path:
    """The at-risk list's CSV beside the report ``report``: ``report_at_risk.csv``.

    Examples
    --------
    >>> at_risk_csv_path("/srv/reports/cvalue-2026-12-07.html").name
    'cvalue-2026-12-07_at_risk.csv'
    """
    path = Path(report)
    return path.with_name(f"{path.stem}{AT_RISK_CSV_SUFFIX}")


def _definition(listed: pd.DataFrame) -> list[str]:
    value = listed.columns[1]  # the list's CLV column (at_risk_valuable's layout)
    below = percent(AT_RISK_P_ALIVE_BELOW)
    return [
        f"The customers with the highest CLV ({label(value)}) among those more likely gone than "
        f"active (P(alive) below {below}), most valuable first; only customers with a positive "
        "CLV are listed. They are the ones a retention or win-back campaign should call first.",
        "Expected value lost is what the customer would be worth if known to be still active, "
        "less their CLV: CLV x (1 - P(alive)) / P(alive). The CLV already counts each future "
        "purchase at the chance that the customer is still there; this is what that chance "
        "takes away, and the most a successful win-back could recover.",
    ]


def at_risk_section(listed: pd.DataFrame | None, *, csv_name: str | None = None) -> Section:
    """The report's section of the at-risk list; ``csv_name`` is the CSV's name, to link to."""
    title = "Valuable customers at risk"
    if listed is None:
        return Section(key="at-risk", title=title, paragraphs=[
            "This run made no list of valuable customers at risk."])  # fmt: skip
    paragraphs = _definition(listed)
    if listed.empty:
        paragraphs.append(f"No customer with a positive CLV has P(alive) below "
                          f"{percent(AT_RISK_P_ALIVE_BELOW)}: the list is empty.")  # fmt: skip
    value = listed.columns[1]
    shown = listed.head(AT_RISK_SHOWN).reset_index().set_index("rank")
    for column in (value, "expected_value_lost"):  # amounts to the cent, as a CRM shows them
        shown[column] = [_cents(amount) for amount in shown[column].to_numpy(dtype=np.float64)]
    caption = f"The {len(shown):,} most valuable customers at risk"
    if len(listed) > len(shown):
        caption += f" (the CSV holds all {len(listed):,})"
    links = [] if csv_name is None else [(f"The whole list as CSV: {csv_name}", quote(csv_name))]
    return Section(key="at-risk", title=title, paragraphs=paragraphs, links=links,
                   tables=[] if listed.empty else [(caption, shown)])  # fmt: skip


def _cents(value: float) -> str:
    return "n/a" if np.isnan(value) else f"{value:,.2f}"


def write_at_risk_csv(listed: pd.DataFrame, path: Path) -> Path:
    """Write the list to ``path`` (customer id first, full precision); return the path."""
    listed.to_csv(path, index=True, encoding="utf-8")
    return path
