"""Benchmark: lifetimes' quick-start workflow with lifetimes and with cvalue.compat.lifetimes.

The same code runs twice, once on ``import lifetimes`` and once on ``cvalue.compat.lifetimes``:
summary from transactions (days / 7, with monetary value), BG/NBD fit, expected purchases over
39 weeks, P(alive), Gamma-Gamma fit on the repeat buyers, and a 12-month CLV at 1 % a month.
The data are CDNOW's transactions (``cvalue.datasets.load_cdnow()``), and CDNOW tiled ``--tile``
times with new customer ids and shifted dates (a larger log of the same kind). Each step's time
is the fastest of ``--repeats`` runs; "speed-up" is lifetimes' seconds over cvalue's.

Run: ``pip install -e ".[bench]" && python benchmarks/bench_compat_lifetimes.py``
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable
from types import ModuleType, SimpleNamespace

import numpy as np
import pandas as pd

from cvalue.datasets import load_cdnow

STEPS = ("summary", "BG/NBD fit", "expected purchases", "P(alive)", "Gamma-Gamma fit", "CLV")


def tiled(transactions: pd.DataFrame, copies: int, seed: int = 0) -> pd.DataFrame:
    """CDNOW's log repeated ``copies`` times, each copy with its own customer ids.

    Each copied customer's purchases move 0 to 90 days earlier (one shift per customer), so that
    the copies are new histories (other ``T``), not the same patterns again.
    """
    rng = np.random.default_rng(seed)
    largest = int(transactions["customer_id"].max())
    parts = [transactions]
    for copy in range(1, copies):
        shift = rng.integers(0, 91, largest + 1)[transactions["customer_id"].to_numpy()]
        parts.append(transactions.assign(
            customer_id=transactions["customer_id"] + copy * largest,
            timestamp=transactions["timestamp"] - pd.to_timedelta(shift, unit="D"),
        ))  # fmt: skip
    return pd.concat(parts, ignore_index=True)


def libraries() -> dict[str, SimpleNamespace]:
    """lifetimes and the compat layer behind the same names."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import lifetimes
        import lifetimes.utils

    from cvalue.compat import lifetimes as compat
    from cvalue.compat.lifetimes import utils as compat_utils

    def named(module: ModuleType, utils: object) -> SimpleNamespace:
        return SimpleNamespace(BetaGeoFitter=module.BetaGeoFitter,
                               GammaGammaFitter=module.GammaGammaFitter, utils=utils)  # fmt: skip

    return {"lifetimes": named(lifetimes, lifetimes.utils),
            "cvalue.compat": named(compat, compat_utils)}  # fmt: skip


def workflow(library: SimpleNamespace, transactions: pd.DataFrame, end: object) -> dict[str, float]:
    """Seconds per step of the quick start, and the mean CLV (to check both agree)."""
    seconds: dict[str, float] = {}

    def step(name: str, call: Callable[[], object]) -> object:
        started = time.perf_counter()
        result = call()
        seconds[name] = time.perf_counter() - started
        return result

    summary = step("summary", lambda: library.utils.summary_data_from_transaction_data(
        transactions, "customer_id", "timestamp", "amount", observation_period_end=end,
        freq="D", freq_multiplier=7))  # fmt: skip
    x, t_x, T = summary["frequency"], summary["recency"], summary["T"]
    bg = step("BG/NBD fit", lambda: library.BetaGeoFitter().fit(x, t_x, T))
    step("expected purchases", lambda: bg.predict(39, x, t_x, T))
    step("P(alive)", lambda: bg.conditional_probability_alive(x, t_x, T))
    repeat = summary[x > 0]
    gg = step("Gamma-Gamma fit", lambda: library.GammaGammaFitter().fit(
        repeat["frequency"], repeat["monetary_value"]))  # fmt: skip
    spend = summary["monetary_value"]
    value = step("CLV", lambda: gg.customer_lifetime_value(
        bg, x, t_x, T, spend, time=12, discount_rate=0.01, freq="W"))  # fmt: skip
    seconds["mean CLV"] = float(np.mean(value))
    return seconds


def fastest(library: SimpleNamespace, transactions: pd.DataFrame, end: object, repeats: int
            ) -> dict[str, float]:  # fmt: skip
    runs = []
    for _ in range(max(1, repeats)):
        with warnings.catch_warnings():  # lifetimes' own pandas deprecation warnings
            warnings.simplefilter("ignore")
            runs.append(workflow(library, transactions, end))
    return {key: min(run[key] for run in runs) for key in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tile", type=int, default=20, help="copies of CDNOW in the large log")
    parser.add_argument("--repeats", type=int, default=3, help="runs per step; the fastest")
    options = parser.parse_args()
    cdnow = load_cdnow()
    rows = []
    for copies in (1, options.tile):
        transactions = tiled(cdnow.transactions, copies)
        times = {name: fastest(library, transactions, cdnow.observation_end, options.repeats)
                 for name, library in libraries().items()}  # fmt: skip
        for name in (*STEPS, "total"):
            theirs, ours = (
                sum(found[key] for key in STEPS) if name == "total" else found[name]
                for found in (times["lifetimes"], times["cvalue.compat"])
            )
            rows.append({"rows": len(transactions), "step": name, "lifetimes s": theirs,
                         "cvalue.compat s": ours, "speed-up": theirs / ours})  # fmt: skip
        gap = times["cvalue.compat"]["mean CLV"] / times["lifetimes"]["mean CLV"] - 1.0
        print(f"{len(transactions):,} rows: mean CLV differs by {gap:+.2e} (month 365.2425/12 "
              "days vs lifetimes' 4.345 weeks)", flush=True)  # fmt: skip
    print()
    print(pd.DataFrame(rows).to_string(index=False, float_format="{:,.3g}".format))


if __name__ == "__main__":
    main()
