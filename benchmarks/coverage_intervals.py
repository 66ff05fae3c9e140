"""Coverage of the 90 % intervals of issue 15: per customer, holdout totals and customer equity.

For a fixed true BG/NBD (CDNOW's published parameters), each replication simulates a base of
customers over a calibration period of 39 weeks and a holdout of 39 weeks, fits the model on the
calibration period and asks, by parameter draws and by bootstrap replicates, for 90 % intervals
of:

- the expected purchases over 52 weeks of a fixed history (x = 2, t_x = 30, T = 39 weeks),
  ``predict(interval=0.9)``; the truth is the true model's expectation;
- the expected holdout total of the base, ``holdout_total``; the truth is the sum of the
  customers' expected holdout purchases under the true model;
- the holdout total count itself, ``holdout_total``'s ``purchases_total`` bounds; the truth is
  the simulated holdout's total;
- the base's customer equity over 2 years (a fixed spend of 40, margin 0.3, 10 % a year),
  ``customer_equity(method=...)``; the truth is the equity at the true parameters.

It prints the share of replications whose interval holds the truth, and the mean width; a
calibrated interval covers 85 to 95 % of 200 replications or more. ``coverage`` is also run by the
test suite on a few replications (tests/test_coverage_intervals.py).

Run: ``python benchmarks/coverage_intervals.py [n_replications] [n_customers] [n_draws]``.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import numpy.typing as npt
import pandas as pd

from cvalue import BetaGeo, clv, customer_equity
from cvalue.evaluation import holdout_total
from cvalue.value import DiscountRates

TRUE_PARAMS = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}  # CDNOW, Fader et al. 2005
HISTORY = pd.DataFrame({"frequency": [2], "recency": [30.0], "T": [39.0]})
CALIBRATION, HOLDOUT = 39.0, 39.0  # weeks
METHODS = ("draws", "bootstrap")


def simulate_holdout(truth: BetaGeo, n_customers: int, rng: np.random.Generator) -> pd.DataFrame:
    """BG/NBD customers over the calibration period and the holdout that follows.

    Each customer gets ``lambda ~ Gamma(r, alpha)`` and ``p ~ Beta(a, b)``; purchase
    opportunities come as a Poisson process of rate ``lambda`` over the whole ``(0, T + t]``,
    and the customer drops out after ``K ~ Geometric(p)`` repeat purchases (Fader, Hardie & Lee
    2005): the first ``min(N, K)`` opportunities are purchases. The summary has ``frequency,
    recency, T`` of the calibration period and ``frequency_holdout``.
    """
    params = truth.params_
    rate = rng.gamma(params["r"], 1.0 / params["alpha"], n_customers)
    p = np.clip(rng.beta(params["a"], params["b"], n_customers), 1e-12, 1.0)
    n_possible = rng.poisson(rate * (CALIBRATION + HOLDOUT))
    n_made = np.minimum(n_possible, rng.geometric(p))
    times = _first_order_statistics(n_possible, int(n_made.max()) + 1, rng)
    is_made = np.arange(times.shape[1])[None, :] < n_made[:, None]
    in_calibration = is_made & (times <= CALIBRATION)
    frequency = in_calibration.sum(axis=1)
    recency = np.max(np.where(in_calibration, times, 0.0), axis=1)
    holdout = (is_made & (times > CALIBRATION)).sum(axis=1)
    return pd.DataFrame(
        {
            "frequency": frequency.astype(np.float64),
            "recency": recency,
            "T": CALIBRATION,
            "frequency_holdout": holdout.astype(np.float64),
        }
    )


def _first_order_statistics(
    n_possible: npt.NDArray[np.int64], width: int, rng: np.random.Generator
) -> npt.NDArray[np.float64]:
    """The ``width`` smallest of ``n_possible`` uniforms on ``(0, T + t]``, per customer.

    The k-th smallest of n uniforms is ``S_k / S_(n+1)``, ``S_k`` the sum of the first k of
    n + 1 standard exponentials; past ``width`` of them, their sum is a Gamma(n + 1 - width).
    Only the first ``min(n, width - 1)`` are meaningful.
    """
    partial = np.cumsum(rng.exponential(1.0, (len(n_possible), width)), axis=1)
    beyond = rng.gamma(np.maximum(n_possible + 1 - width, 1).astype(np.float64))
    within = np.take_along_axis(partial, np.minimum(n_possible, width - 1)[:, None], axis=1)[:, 0]
    total = np.where(n_possible >= width, partial[:, -1] + beyond, within)
    return np.asarray(partial / total[:, None] * (CALIBRATION + HOLDOUT), dtype=np.float64)


def _equity(values: object, method: str, n_draws: int, rng: np.random.Generator) -> pd.Series:
    found = customer_equity(
        values,  # type: ignore[arg-type]
        ("2y",),
        level=0.9,
        method=method,  # type: ignore[arg-type]
        n_draws=n_draws,
        rng=rng,
    )
    return found.total.iloc[0]


def replication(
    truth: BetaGeo, n_customers: int, n_draws: int, rng: np.random.Generator
) -> list[dict[str, object]]:
    """One simulated base: per quantity and method, whether the interval holds the truth."""
    base = simulate_holdout(truth, n_customers, rng)
    model = BetaGeo(n_starts=1).fit(base, unit="week")
    valuation = {
        "spend": 40.0,
        "margin": 0.3,
        "horizon": "2y",
        "rates": DiscountRates.single(0.10),
        "cost_to_serve": 0.0,
        "marketing_cost": 0.0,
    }
    true_equity = float(clv(base, purchases=truth, **valuation).customers["clv"].sum())  # type: ignore[arg-type]
    values = clv(base, purchases=model, **valuation)  # type: ignore[arg-type]
    target = float(truth.expected_purchases(HISTORY, horizon=52.0).iloc[0])
    true_total = float(truth.expected_purchases(base, horizon=HOLDOUT).sum())
    actual_total = float(base["frequency_holdout"].sum())
    rows: list[dict[str, object]] = []
    for method in METHODS:
        found = model.predict(
            HISTORY, horizon=52.0, interval=0.9, method=method, n_draws=n_draws, rng=rng
        ).iloc[0]
        total = holdout_total(
            model,
            base,
            horizon=HOLDOUT,
            method=method,
            n_draws=n_draws,
            rng=rng,  # type: ignore[arg-type]
        )
        equity = _equity(values, method, n_draws, rng)
        for quantity, lower, upper, truth_value in (
            ("expected purchases, 52 w, x=2 t_x=30 T=39", found["expected_purchases_lower"],
             found["expected_purchases_upper"], target),
            ("expected holdout total", total["predicted_total_lower"],
             total["predicted_total_upper"], true_total),
            ("holdout total count", total["purchases_total_lower"],
             total["purchases_total_upper"], actual_total),
            ("customer equity, 2 y", equity["ci_lower"], equity["ci_upper"], true_equity),
        ):  # fmt: skip
            rows.append(
                {
                    "quantity": quantity,
                    "method": method,
                    "covered": bool(lower <= truth_value <= upper),
                    "width": float(upper - lower),
                }
            )
    return rows


def coverage(
    n_replications: int, n_customers: int, n_draws: int, *, seed: int = 2026
) -> pd.DataFrame:
    """Coverage and mean width per quantity and method, over ``n_replications`` bases."""
    truth = BetaGeo.from_params(**TRUE_PARAMS, unit="week")
    rng = np.random.default_rng(seed)
    rows = [
        row for _ in range(n_replications) for row in replication(truth, n_customers, n_draws, rng)
    ]
    table = pd.DataFrame(rows).groupby(["quantity", "method"], sort=False)
    return table.agg(coverage=("covered", "mean"), mean_width=("width", "mean"))


def main(n_replications: int, n_customers: int, n_draws: int) -> None:
    """Print the coverage table."""
    start = time.perf_counter()
    table = coverage(n_replications, n_customers, n_draws)
    print(
        f"{n_replications} replications of {n_customers:,} customers, 90 % intervals, "
        f"{n_draws} draws or bootstrap replicates"
    )
    print(table.to_string(float_format=lambda value: f"{value:.4g}"))
    print(f"({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    arguments = [int(value) for value in sys.argv[1:]]
    main(*(arguments + [200, 3_000, 200][len(arguments) :]))
