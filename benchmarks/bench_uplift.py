"""Benchmark: what more retention is worth, against the customer equity it starts from.

``retention_uplift`` solves one dropout factor per segment, evaluates the raised equity, and for
its interval does both again at every move of the delta method: its cost is counted in
``customer_equity`` calls. On a ``make_crm`` base (3 segments, the demo's costs to serve), for
each purchase model, the script times (best of ``--repeat``):

- ``equity``: ``customer_equity`` at 3 and 5 years by segment, with its delta-method interval;
- ``uplift``: ``retention_uplift`` with 5 points, the same horizons and interval;
- ``uplift, no interval``: the same with ``level=None``.

Run: ``python benchmarks/bench_uplift.py`` (``--customers 100000``, ``--models beta_geo``).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

import cvalue as cv
from cvalue.datasets import make_crm

MODELS: dict[str, Callable[[], object]] = {
    "pareto_nbd": cv.ParetoNBD,
    "beta_geo": cv.BetaGeo,
    "modified_beta_geo": cv.ModifiedBetaGeo,
}


def _best(call: Callable[[], object], repeat: int) -> float:
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--repeat", type=int, default=2)
    options = parser.parse_args()
    crm = make_crm(options.customers, seed=1)
    summary = cv.rfm_summary(crm.transactions, observation_end=crm.truth.observation_end,
                             unit="week")  # fmt: skip
    segment = crm.customers["segment"].reindex(summary.index)
    spend = cv.GammaGamma().fit(summary[summary["frequency"] > 0])
    print(f"{options.customers:,} customers, 3 segments, horizons 3y and 5y, 95 % delta intervals")
    print("| model | equity s | uplift s | uplift, no interval s | uplift / equity |")
    print("|---|---:|---:|---:|---:|")
    for name in options.models:
        model = MODELS[name]().fit(summary)  # type: ignore[attr-defined]
        values = cv.clv(summary, purchases=model, spend=spend, margin=0.3, horizon="5y",
                        rates=0.10, segment=segment, costs=cv.NO_COSTS)  # fmt: skip
        print(_row(name, values, options.repeat))


def _row(name: str, values: object, repeat: int) -> str:
    horizons = ["3y", "5y"]
    equity = _best(lambda: cv.customer_equity(values, horizons=horizons, by="segment"), repeat)
    uplift = _best(lambda: cv.retention_uplift(values, points=5, horizons=horizons,
                                               by="segment"), repeat)  # fmt: skip
    bare = _best(lambda: cv.retention_uplift(values, points=5, horizons=horizons, by="segment",
                                             level=None), repeat)  # fmt: skip
    return f"| {name} | {equity:.2f} | {uplift:.2f} | {bare:.2f} | {uplift / equity:.1f} |"


if __name__ == "__main__":
    main()
