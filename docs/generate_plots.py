"""Render every plot of cvalue.plot to docs/images/plots/*.png, for docs/plots.md.

Run from the repository root: ``python docs/generate_plots.py``. The data are the shipped CDNOW
sample, the donations data and a small ``make_crm`` base, so the images are the page's own
examples.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

import cvalue as cv
from cvalue import plot
from cvalue.datasets import load_cdnow, load_donations, make_crm

OUT = Path(__file__).resolve().parent / "images" / "plots"
DPI = 80


def _save(name: str, ax: Axes) -> None:
    figure = ax.figure
    assert isinstance(figure, Figure)  # every plot draws on a Figure of its own here
    figure.set_size_inches(7.0, 4.0)
    figure.savefig(OUT / f"{name}.png", dpi=DPI)


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
    _save("period_transactions",
          plot.period_transactions(model, split, rng=np.random.default_rng(0)))  # fmt: skip
    _save("calibration_holdout_purchases", plot.calibration_holdout_purchases(model, split))
    calibration_end, observation_end = "1997-09-30", "1998-06-30"
    _save("tracking_cumulative", plot.tracking(model, transactions,
                                               calibration_end=calibration_end,
                                               observation_end=observation_end))  # fmt: skip
    _save("tracking_weekly", plot.tracking(model, transactions, calibration_end=calibration_end,
                                           observation_end=observation_end,
                                           cumulative=False))  # fmt: skip


def bgbb_plots() -> None:
    """The discrete-time plots: a BG/BB on the donations data, and on CDNOW's whole weeks."""
    bgbb = cv.BetaGeoBetaBinom().fit(load_donations())
    _save("bgbb_frequency_recency_matrix",
          plot.frequency_recency_matrix(bgbb, horizon=5, max_frequency=6, T=6.0))  # fmt: skip
    transactions = load_cdnow().transactions
    weekly = cv.rfm_summary(transactions, observation_end="1998-06-30", unit="week", grain="week")
    weekly = weekly[weekly["T"] > 0].rename(columns={"T": "n_periods"})
    weekly_bgbb = cv.BetaGeoBetaBinom().fit(weekly)
    _save("bgbb_probability_alive_history",
          plot.probability_alive_history(weekly_bgbb, transactions, 1,
                                         observation_end="1998-06-30"))  # fmt: skip


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
    _save("clv_distribution", plot.clv_distribution(value))
    grid = cv.value_risk_grid(value, model.p_alive(summary))
    _save("value_risk_grid", plot.value_risk_grid(grid))
    net = value - crm.customers["acquisition_cost"].reindex(value.index)
    _save("whale_curve", plot.whale_curve(cv.whale_curve(net)))
    states = cv.lifecycle_states(crm.transactions, period="Q", rule=cv.InactivityRule(2),
                                 observation_end="2024-12-31")  # fmt: skip
    cohorts = cv.cohort_retention(states, min_customers=20)
    _save("cohort_retention", plot.cohort_retention(cohorts))
    _save("cohort_heatmap", plot.cohort_heatmap(cohorts))
    _save("lifecycle_flows", plot.lifecycle_flows(cv.lifecycle_flows(states)))
    seen = crm.transactions[crm.transactions["timestamp"] <= "2024-11-15"]
    cut = cv.lifecycle_states(seen, period="Q", rule=cv.InactivityRule(2),
                              observation_end="2024-11-15")  # fmt: skip
    _save("lifecycle_flows_cut", plot.lifecycle_flows(cv.lifecycle_flows(cut), stock=True,
                                                      observation_end="2024-11-15"))  # fmt: skip


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    cdnow_plots()
    bgbb_plots()
    crm_plots()
