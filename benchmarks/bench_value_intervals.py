"""Benchmark: per-customer CLV intervals (``clv(..., interval=0.9, n_draws=200)``).

The base of ``bench_value.py`` (a BG/NBD base, default 1M customers, a year of whole days, with
Gamma-Gamma spend and three segments with their own discount rates), valued over 36 monthly
periods with a margin and a cost to serve, once without an interval and once with a 90 %
interval from 200 parameter draws. The issue's target: the interval in less than 10 times one
scoring pass.

Run: ``python benchmarks/bench_value_intervals.py`` (``--customers 200000`` for a quick run).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from bench_value import simulate_base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--draws", type=int, default=200)
    args = parser.parse_args()

    import cvalue as cv
    from cvalue.value import DiscountRates, clv

    base, segment = simulate_base(args.customers)
    purchases, spend = cv.BetaGeo().fit(base), cv.GammaGamma().fit(base)
    options = {
        "purchases": purchases,
        "spend": spend,
        "margin": 0.3,
        "horizon": "36M",
        "rates": DiscountRates.by_segment({"retail": 0.12, "online": 0.15, "corporate": 0.08}),
        "cost_to_serve": 0.5,
        "marketing_cost": 0.0,
        "segment": segment,
    }
    start = time.perf_counter()
    clv(base, **options)  # type: ignore[arg-type]
    plain = time.perf_counter() - start
    start = time.perf_counter()
    values = clv(  # type: ignore[arg-type]
        base, **options, interval=0.9, n_draws=args.draws, rng=np.random.default_rng(1)
    )
    with_interval = time.perf_counter() - start
    width = (values.customers["clv_upper"] - values.customers["clv_lower"]).median()
    print(f"customers: {args.customers:,}, draws: {args.draws}")
    print(f"clv without interval: {plain:8.2f} s")
    print(f"clv with interval:    {with_interval:8.2f} s  ({with_interval / plain:.1f} x)")
    print(f"median interval width: {width:.2f}")


if __name__ == "__main__":
    main()
