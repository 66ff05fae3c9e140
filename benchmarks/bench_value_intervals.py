"""Benchmark: per-customer CLV intervals (``clv(..., interval=0.9, n_draws=200)``).

The base of ``bench_value.py`` (a BG/NBD base, default 1M customers, a year of whole days, with
Gamma-Gamma spend and three segments with their own discount rates), valued over 36 monthly
periods with a margin and a cost to serve, without an interval and with a 90 % interval from 200
parameter draws (and, with ``--bootstrap``, from 200 bootstrap replicates). The issue's target:
the interval in less than 10 times one scoring pass.

The first scoring pass of a session also builds pandas' hash table of the customer ids (kept on
the index and reused by every later call), so the table shows it apart from a warm pass (the
best of two more); the intervals run warm, after them, and their ratios are to both.

Run: ``python benchmarks/bench_value_intervals.py`` (``--customers 200000`` for a quick run).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
from bench_value import simulate_base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--draws", type=int, default=200)
    parser.add_argument("--bootstrap", action="store_true", help="also time the bootstrap")
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
    cold = _timed(lambda: clv(base, **options))  # type: ignore[arg-type]
    warm = min(_timed(lambda: clv(base, **options)) for _ in range(2))  # type: ignore[arg-type]
    rows = [("clv, no interval, first pass", cold), ("clv, no interval, warm pass", warm)]
    methods = ("draws", "bootstrap") if args.bootstrap else ("draws",)
    widths = {}
    for method in methods:
        found: dict[str, object] = {}

        def run(method: str = method, found: dict[str, object] = found) -> None:
            found["values"] = clv(  # type: ignore[arg-type]
                base, **options, interval=0.9, n_draws=args.draws, rng=np.random.default_rng(1),
                interval_method=method,
            )  # fmt: skip

        rows.append((f"clv, interval 0.9, {args.draws} {method}", _timed(run)))
        customers = found["values"].customers  # type: ignore[attr-defined]
        widths[method] = float((customers["clv_upper"] - customers["clv_lower"]).median())
    print(f"customers: {args.customers:,}, draws: {args.draws}")
    print(f"{'pass':<36}{'seconds':>9}{'x first':>9}{'x warm':>9}")
    for label, seconds in rows:
        print(f"{label:<36}{seconds:>9.2f}{seconds / cold:>9.1f}{seconds / warm:>9.1f}")
    for method, width in widths.items():
        print(f"median interval width ({method}): {width:.2f}")


def _timed(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
