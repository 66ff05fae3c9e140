"""Plots and the HTML report of a scoring run, and the at-risk list's CSV beside it.

Every plot is a function returning a :class:`matplotlib.figure.Figure`, built without pyplot so
that no global state or display backend is touched; the tables behind the fit plots are public
too, so the numbers can be checked and reused.
"""

from cvalue.report.at_risk import at_risk_csv_path
from cvalue.report.diagnostics import (
    calibration_holdout_table,
    frequency_fit_table,
    tracking_table,
)
from cvalue.report.job import SECTIONS, build_report, report_sections

build = build_report  # cvalue.report.build(result, path): the HTML report of a scoring run

__all__ = [
    "SECTIONS",
    "at_risk_csv_path",
    "build",
    "build_report",
    "calibration_holdout_table",
    "frequency_fit_table",
    "report_sections",
    "tracking_table",
]
