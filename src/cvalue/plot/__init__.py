"""The plots analysts expect of a CLV model and a valued base, as public matplotlib functions.

Every function takes data or a fitted model, draws on ``ax`` (or on the Axes of a new
:class:`matplotlib.figure.Figure`, made without pyplot: no global state, no display) and returns
that :class:`~matplotlib.axes.Axes`; ``ax.figure.savefig(path)`` saves it. Models are read only
through the model contract, so every purchase model works. The tables behind the fit plots are
public too, so the numbers can be checked and reused.
"""

from cvalue.plot.customers import (
    clv_by_segment,
    clv_distribution,
    cohort_heatmap,
    cohort_retention,
    lifecycle_flows,
    partial_last_period,
    value_risk_grid,
    whale_curve,
)
from cvalue.plot.fit import (
    calibration_holdout_lines,
    calibration_holdout_purchases,
    period_transactions,
    tracking,
    tracking_lines,
)
from cvalue.plot.matrices import (
    customer_history,
    frequency_recency_matrix,
    probability_alive_history,
    probability_alive_matrix,
)
from cvalue.plot.tables import calibration_holdout_table, frequency_fit_table, tracking_table

__all__ = [
    "calibration_holdout_lines",
    "calibration_holdout_purchases",
    "calibration_holdout_table",
    "clv_by_segment",
    "clv_distribution",
    "cohort_heatmap",
    "cohort_retention",
    "customer_history",
    "frequency_fit_table",
    "frequency_recency_matrix",
    "lifecycle_flows",
    "partial_last_period",
    "period_transactions",
    "probability_alive_history",
    "probability_alive_matrix",
    "tracking",
    "tracking_lines",
    "tracking_table",
    "value_risk_grid",
    "whale_curve",
]
