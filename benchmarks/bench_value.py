"""Benchmark: CLV of a large customer base, side by side with lifetimes.

A BG/NBD base (default 1M customers, a year of whole days, recency and T in weeks) with
Gamma-Gamma spend and three segments. Methods, each run in a fresh worker process so that its
peak memory is its own (models are fitted with cvalue in the worker, untimed, and lifetimes is
given the same parameters):

- ``cvalue 12M segments`` and ``cvalue 36M segments``: ``cvalue.clv`` over 12 and 36 monthly
  periods with a discount rate per segment, a margin and a cost to serve per segment (so the
  survival curves behind the cost are computed too);
- ``cvalue 12M as lifetimes``: ``cvalue.clv`` computing exactly what lifetimes computes
  (margin 1, no costs, lifetimes' "month" of 4.345 weeks at 1 % per such month), to check that
  the two agree ("max rel diff");
- ``lifetimes 12M``: ``GammaGammaFitter.customer_lifetime_value(..., time=12,
  discount_rate=0.01, freq="W")``, a scalar rate over 12 months.

"peak MB" is the rise of the worker's peak resident memory during the call (Linux: VmHWM after
resetting it); "x lifetimes" is lifetimes' time over the method's (higher is faster).

Run: ``pip install -e ".[bench]" && python benchmarks/bench_value.py`` (``--customers 100000``
for a quick run).
"""

from __future__ import annotations

import argparse
import multiprocessing
import queue as queue_module
import warnings
from collections.abc import Callable

import _memory
import numpy as np
import pandas as pd

TRUTH = {"r": 0.24, "alpha": 4.4, "a": 0.79, "b": 2.4}
SEGMENTS = ("retail", "online", "corporate")
LIFETIMES_MONTH_WEEKS = 4.345  # lifetimes' month for freq="W"
LIFETIMES_MONTHLY_RATE = 0.01


def simulate_base(n_customers: int, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    """Frequency, recency, T (weeks, whole days) and monetary value of a BG/NBD base."""
    rng = np.random.default_rng(seed)
    T_days = rng.integers(1, 366, n_customers)
    T = T_days / 7.0
    rate = rng.gamma(TRUTH["r"], 1.0 / TRUTH["alpha"], n_customers)
    drop = np.clip(rng.beta(TRUTH["a"], TRUTH["b"], n_customers), 1e-12, 1.0)
    possible = rng.poisson(rate * T)
    frequency = np.minimum(possible, rng.geometric(drop))
    last = np.where(frequency > 0, T * rng.beta(np.maximum(frequency, 1), possible - frequency
                                                + 1), 0.0)  # fmt: skip
    recency = np.minimum(np.floor(last * 7.0), T_days) / 7.0
    nu = rng.gamma(3.7, 1.0 / 15.4, n_customers)
    repeats = np.maximum(frequency, 1)
    spend = rng.gamma(6.0 * repeats, 1.0 / (nu * repeats))
    index = pd.RangeIndex(n_customers, name="customer_id")
    base = pd.DataFrame({
        "frequency": frequency, "recency": np.where(frequency > 0, recency, 0.0), "T": T,
        "monetary_value": np.where(frequency > 0, spend, 0.0),
    }, index=index)  # fmt: skip
    base.attrs["unit"] = "week"
    segment = pd.Series(np.asarray(SEGMENTS)[rng.choice(3, n_customers, p=[0.6, 0.3, 0.1])],
                        index=index)  # fmt: skip
    return base, segment


def _fitted(base: pd.DataFrame) -> tuple[object, object]:
    import cvalue as cv

    return cv.BetaGeo().fit(base), cv.GammaGamma().fit(base)


def _cvalue_segments(months: int) -> Callable[[pd.DataFrame, pd.Series], Callable[[], object]]:
    def prepare(base: pd.DataFrame, segment: pd.Series) -> Callable[[], object]:
        import cvalue as cv
        from cvalue.value import DiscountRates, clv

        purchases, spend = _fitted(base)
        rates = DiscountRates.by_segment({"retail": 0.12, "online": 0.15, "corporate": 0.08})
        costs = {"retail": 0.8, "online": 0.5, "corporate": 2.5}

        def run() -> object:
            return clv(base, purchases=purchases, spend=spend, margin=0.3, horizon=f"{months}M",
                       rates=rates, cost_to_serve=costs, marketing_cost=0.1, segment=segment,
                       period=cv.Duration(1, cv.TimeUnit.MONTH)).customers["clv"]  # fmt: skip

        return run

    return prepare


def _cvalue_as_lifetimes(base: pd.DataFrame, _: pd.Series) -> Callable[[], object]:
    import cvalue as cv
    from cvalue.value import DiscountRates, clv

    purchases, spend = _fitted(base)
    # 1 % per lifetimes month (4.345 weeks), as an effective annual rate
    months_per_year = cv.TimeUnit.YEAR.per(cv.TimeUnit.WEEK) / LIFETIMES_MONTH_WEEKS
    annual = (1.0 + LIFETIMES_MONTHLY_RATE) ** months_per_year - 1.0

    def run() -> object:
        return clv(base, purchases=purchases, spend=spend, margin=1.0, rates=DiscountRates.single(
            annual), horizon=cv.Duration(12 * LIFETIMES_MONTH_WEEKS, cv.TimeUnit.WEEK),
            period=cv.Duration(LIFETIMES_MONTH_WEEKS, cv.TimeUnit.WEEK), cost_to_serve=0.0,
            marketing_cost=0.0).customers["clv"]  # fmt: skip

    return run


def _lifetimes(base: pd.DataFrame, _: pd.Series) -> Callable[[], object]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from lifetimes import BetaGeoFitter, GammaGammaFitter

    purchases, spend = _fitted(base)
    bgf, ggf = BetaGeoFitter(), GammaGammaFitter()
    bgf.params_ = purchases.params_.rename(index=str).copy()  # type: ignore[attr-defined]
    bgf.predict = bgf.conditional_expected_number_of_purchases_up_to_time  # as fit() sets it
    p, q, gamma = spend.params_.to_numpy()  # type: ignore[attr-defined]
    ggf.params_ = pd.Series({"p": p, "q": q, "v": gamma})

    def run() -> object:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ggf.customer_lifetime_value(
                bgf, base["frequency"], base["recency"], base["T"], base["monetary_value"],
                time=12, discount_rate=LIFETIMES_MONTHLY_RATE, freq="W",
            )  # fmt: skip

    return run


METHODS: dict[str, Callable[[pd.DataFrame, pd.Series], Callable[[], object]]] = {
    "cvalue 12M segments": _cvalue_segments(12),
    "cvalue 36M segments": _cvalue_segments(36),
    "cvalue 12M as lifetimes": _cvalue_as_lifetimes,
    "lifetimes 12M": _lifetimes,
}


def _worker(method: str, n_customers: int, repeat: int, queue: multiprocessing.Queue) -> None:
    base, segment = simulate_base(n_customers)
    seconds, peak, result = _memory.best_of(METHODS[method](base, segment), repeat)
    values = np.asarray(result, dtype=np.float64)
    queue.put((seconds, peak, int(base.memory_usage(deep=True).sum()), values))


def measure(method: str, n_customers: int, repeat: int) -> tuple[float, int, int, np.ndarray]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_worker, args=(method, n_customers, repeat, queue))
    process.start()
    while True:
        try:
            measured = queue.get(timeout=1.0)
        except queue_module.Empty:
            if not process.is_alive():
                raise RuntimeError(f"{method} failed (exit code {process.exitcode})") from None
            continue
        process.join()
        return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    options = parser.parse_args()
    rows, found = [], {}
    for method in options.methods:
        seconds, peak, input_bytes, values = measure(method, options.customers, options.repeat)
        found[method] = values
        rows.append({"customers": options.customers, "method": method, "seconds": seconds,
                     "peak MB": peak / 2**20, "x input": peak / input_bytes})  # fmt: skip
    table = pd.DataFrame(rows)
    if "lifetimes 12M" in found:
        reference = table.loc[table["method"] == "lifetimes 12M", "seconds"].iloc[0]
        table["x lifetimes"] = reference / table["seconds"]
        if "cvalue 12M as lifetimes" in found:
            ours, theirs = found["cvalue 12M as lifetimes"], found["lifetimes 12M"]
            difference = np.max(np.abs(ours - theirs) / np.maximum(np.abs(theirs), 1e-12))
            table["max rel diff"] = np.where(table["method"] == "cvalue 12M as lifetimes",
                                             difference, np.nan)  # fmt: skip
    print(table.to_string(index=False, float_format=lambda value: f"{value:,.3g}"))


if __name__ == "__main__":
    main()
