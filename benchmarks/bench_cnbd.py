"""Benchmark: (M)BG/CNBD-k recovery and speed on BTYDplus's demo setting.

BTYDplus's BG/CNBD-k demo: 8,000 customers with calibration lengths ``round(runif(n, 24, 32))``
weeks, ``k = 3, r = 0.85, alpha = 1.45, a = 0.79, b = 2.42``. The customers are drawn with
``BetaGeoCNBD.simulate`` (fixed seed), ``k`` is chosen by likelihood over 1..10, and the table
shows the truth, the estimate and its standard error, and how many standard errors apart they
are; then the time of the fit (all ten ``k``), of one fit at ``k = 3``, of scoring P(alive) and
the 32-week expected purchases, and of CDNOW's fit at ``k = 1`` against the BG/NBD's.

Run: ``python benchmarks/bench_cnbd.py`` (``--customers 100000`` for a larger base).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import TypeVar

import numpy as np

from cvalue.datasets import load_cdnow
from cvalue.models import BetaGeo, BetaGeoCNBD, ModifiedBetaGeoCNBD

Result = TypeVar("Result")
TRUTH = {"r": 0.85, "alpha": 1.45, "a": 0.79, "b": 2.42}


def _timed(step: Callable[[], Result]) -> tuple[Result, float]:
    start = time.perf_counter()
    result = step()
    return result, time.perf_counter() - start


def main() -> None:
    """Print the recovery table and the timings."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=8000)
    parser.add_argument("--seed", type=int, default=2016)
    options = parser.parse_args()
    rng = np.random.default_rng(options.seed)
    ages = np.round(rng.uniform(24.0, 32.0, options.customers))
    for cls in (BetaGeoCNBD, ModifiedBetaGeoCNBD):
        truth = cls.from_params(**TRUTH, k=3, unit="week")
        data = truth.simulate(options.customers, ages, rng=rng)
        chosen, seconds = _timed(lambda cls=cls, data=data: cls().fit(data))
        _, one_k = _timed(lambda cls=cls, data=data: cls(k=3).fit(data))
        _, scoring = _timed(lambda m=chosen, data=data: m.predict(data, horizon=32.0))
        print(f"\n{cls.__name__}: {options.customers:,} customers, k chosen = {chosen.k_}")
        print(f"{'param':>6} {'true':>7} {'estimate':>9} {'std_err':>8} {'z':>6}")
        for name, value in TRUTH.items():
            estimate, error = chosen.params_[name], chosen.std_errors_[name]
            z = (estimate - value) / error
            print(f"{name:>6} {value:7.3f} {estimate:9.4f} {error:8.4f} {z:6.2f}")
        print(f"fit over k = 1..10: {seconds:.2f} s; one fit at k = 3: {one_k:.3f} s; "
              f"predict (32 weeks): {scoring:.3f} s")  # fmt: skip
    cdnow = load_cdnow().summary
    _, bg_seconds = _timed(lambda: BetaGeo().fit(cdnow, unit="week"))
    _, cnbd_seconds = _timed(lambda: BetaGeoCNBD(k=1).fit(cdnow, unit="week"))
    print(f"\nCDNOW at k = 1: BG/CNBD-k {cnbd_seconds:.3f} s, BG/NBD {bg_seconds:.3f} s")


if __name__ == "__main__":
    main()
