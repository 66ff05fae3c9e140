"""The tables behind the fit plots, kept here for the names users import from ``cvalue.report``.

They live in :mod:`cvalue.plot.tables` now, beside the plots that draw them.
"""

from cvalue.plot import calibration_holdout_table, frequency_fit_table, tracking_table

__all__ = ["calibration_holdout_table", "frequency_fit_table", "tracking_table"]
