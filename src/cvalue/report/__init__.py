"""Plots and the HTML report of a scoring run.

Every plot is a function returning a :class:`matplotlib.figure.Figure`, built without pyplot so
that no global state or display backend is touched; the tables behind the fit plots are public
too, so the numbers can be checked and reused.
"""

from cvalue.report.diagnostics import (
    calibration_holdout_table,
    frequency_fit_table,
    tracking_table,
)

__all__ = ["calibration_holdout_table", "frequency_fit_table", "tracking_table"]
