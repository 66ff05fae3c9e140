"""Render every plot of cvalue.plot to docs/images/plots/*.png, for docs/plots.md.

Run from the repository root: ``python docs/generate_plots.py``. The data are the shipped CDNOW
sample and a small ``make_crm`` base, so the images are the page's own examples.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.axes import Axes

import cvalue as cv
from cvalue import plot
from cvalue.datasets import load_cdnow, make_crm

OUT = Path(__file__).resolve().parent / "images" / "plots"
DPI = 80


def _save(name: str, ax: Axes) -> None:
    ax.figure.set_size_inches(7.0, 4.0)
    ax.figure.savefig(OUT / f"{name}.png", dpi=DPI)


def cdnow_plots() -> None:
    """The model plots, on CDNOW with a BG/NBD fitted to the first 39 weeks."""
    transactions = load_cdnow().transactions
    split = cv.calibration_holdout(
        transactions, calibration_end="1997-09-30", observation_end="1998-06-30"
    )
    model = cv.BetaGeo().fit(split)
    _save(
        "frequency_recency_matrix",
        plot.frequency_recency_matrix(model, horizon=52.0, max_frequency=20, T=39.0),
    )
    _save(
        "probability_alive_matrix", plot.probability_alive_matrix(model, max_frequency=20, T=39.0)
    )
    _save(
        "probability_alive_history",
        plot.probability_alive_history(model, transactions, 1, observation_end="1998-06-30"),
    )
    _save("period_transactions", plot.period_transactions(model, split))
    _save("calibration_holdout_purchases", plot.calibration_holdout_purchases(model, split))
    for cumulative, name in ((True, "tracking_cumulative"), (False, "tracking_weekly")):
        _save(name, plot.tracking(model, transactions, calibration_end="1997-09-30",
                                  observation_end="1998-06-30", cumulative=cumulative))  # fmt: skip


def crm_plots() -> None:
    """The base plots, on a small synthetic CRM base."""
    crm = make_crm(2_000, seed=7)
    summary = cv.rfm_summary(crm.transactions, observation_end="2024-12-31", unit="week")
    model = cv.BetaGeo().fit(summary)
    value = (model.expected_purchases(summary, horizon="1y") * summary["monetary_value"]).rename(
        "value_next_year"
    )
    segment = crm.customers["segment"].reindex(value.index)
    _save("clv_by_segment", plot.clv_by_segment(value, segment))
    net = value - crm.customers["acquisition_cost"].reindex(value.index)
    _save("whale_curve", plot.whale_curve(cv.whale_curve(net)))
    states = cv.lifecycle_states(crm.transactions, period="Q", rule=cv.InactivityRule(2),
                                 observation_end="2024-12-31")  # fmt: skip
    cohorts = cv.cohort_retention(states, min_customers=20)
    _save("cohort_retention", plot.cohort_retention(cohorts))
    _save("cohort_heatmap", plot.cohort_heatmap(cohorts))
    _save("lifecycle_flows", plot.lifecycle_flows(cv.lifecycle_flows(states)))


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    cdnow_plots()
    crm_plots()
