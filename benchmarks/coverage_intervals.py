"""Coverage of the BG/NBD's 90 % parameter-draw intervals (``predict(interval=0.9)``).

For a fixed true BG/NBD (CDNOW's published parameters), each replication simulates a base,
fits the model and asks for the 90 % draws interval of the expected purchases over 52 weeks of
a fixed history (x = 2, t_x = 30, T = 39 weeks). It prints the share of replications whose
interval holds the true value; a calibrated interval covers 85 to 95 % of 200 replications or
more.

Run: ``python benchmarks/coverage_intervals.py [n_replications] [n_customers]``.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import pandas as pd

from cvalue import BetaGeo

TRUE_PARAMS = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}  # CDNOW, Fader et al. 2005
HISTORY = pd.DataFrame({"frequency": [2], "recency": [30.0], "T": [39.0]})


def _replication(truth: BetaGeo, n_customers: int, rng: np.random.Generator) -> tuple[bool, float]:
    """Whether the interval covers the truth, and its width."""
    base = truth.simulate(n_customers, 39.0, rng=rng)
    model = BetaGeo(n_starts=1).fit(base)
    found = model.predict(HISTORY, horizon=52.0, interval=0.9, n_draws=200, rng=rng).iloc[0]
    target = float(truth.expected_purchases(HISTORY, horizon=52.0).iloc[0])
    lower, upper = found["expected_purchases_lower"], found["expected_purchases_upper"]
    return bool(lower <= target <= upper), float(upper - lower)


def main(n_replications: int, n_customers: int) -> None:
    """Print the coverage table."""
    truth = BetaGeo.from_params(**TRUE_PARAMS, unit="week")
    rng = np.random.default_rng(2026)
    start = time.perf_counter()
    found = [_replication(truth, n_customers, rng) for _ in range(n_replications)]
    covered, widths = (np.array(column) for column in zip(*found, strict=True))
    print(f"{n_replications} replications of {n_customers:,} customers, 90 % draws intervals")
    print(f"{'quantity':<44}{'coverage':>10}{'mean width':>12}")
    label = "expected purchases, 52 w, x=2 t_x=30 T=39"
    print(f"{label:<44}{covered.mean():>10.3f}{widths.mean():>12.4f}")
    print(f"({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    arguments = [int(value) for value in sys.argv[1:]]
    main(*(arguments + [200, 3_000][len(arguments) :]))
