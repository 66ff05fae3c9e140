"""Benchmark: the Gamma-Gamma fitted on the whole summary against the fit on a stream of chunks.

A base of customers (default 1M and 3M) whose summary arrives in chunks of 500,000 rows, as
from a database: each chunk is drawn from its own seed, so that every pass over the stream
reads the same rows. About half the customers have a repeat purchase; their mean spend is drawn
from the Gamma-Gamma (p = 6, q = 3.7, gamma = 15.4, CDNOW's scale). Methods, each run in a
fresh worker process so that its peak memory is its own:

- ``fit``: the chunks read into one frame, then ``GammaGamma().fit(frame)``;
- ``fit_chunks``: ``GammaGamma().fit_chunks(chunks)``, one chunk in memory at a time.

"seconds" times the whole method (drawing the chunks included), the best of ``--repeat`` runs
(2); "peak MB" is the largest rise of the worker's peak resident memory during a run (Linux:
VmHWM after resetting it); "max rel diff" is the largest relative difference of the three
parameters between the two fits.

Run: ``python benchmarks/bench_spend_stream.py`` (``--customers 200000`` for a quick run).
"""

from __future__ import annotations

import argparse
import multiprocessing
import warnings
from collections.abc import Callable, Iterator

import _memory
import numpy as np
import pandas as pd

from cvalue.models import GammaGamma

CHUNK_ROWS = 500_000
TRUTH = {"p": 6.0, "q": 3.7, "gamma": 15.4}


def chunk(n_customers: int, number: int) -> pd.DataFrame:
    """The ``number``-th chunk of a base of ``n_customers``: its own seed, its own ids."""
    first = number * CHUNK_ROWS
    n_rows = min(CHUNK_ROWS, n_customers - first)
    rng = np.random.default_rng([20, number])
    frequency = rng.geometric(0.5, n_rows) - 1.0
    repeats = np.maximum(frequency, 1.0)
    nu = rng.gamma(TRUTH["q"], 1.0 / TRUTH["gamma"], n_rows)
    spend = rng.gamma(TRUTH["p"] * repeats, 1.0 / (nu * repeats))
    index = pd.RangeIndex(first, first + n_rows, name="customer_id")
    return pd.DataFrame(
        {"frequency": frequency, "monetary_value": np.where(frequency > 0, spend, 0.0)},
        index=index,
    )


def chunks_of(n_customers: int) -> Callable[[], Iterator[pd.DataFrame]]:
    """The stream: called once per pass, it yields the chunks in order."""
    n_chunks = -(-n_customers // CHUNK_ROWS)
    return lambda: (chunk(n_customers, number) for number in range(n_chunks))


def fit_whole(n_customers: int) -> np.ndarray:
    frame = pd.concat(list(chunks_of(n_customers)()))
    return GammaGamma().fit(frame).params_.to_numpy()


def fit_stream(n_customers: int) -> np.ndarray:
    return GammaGamma().fit_chunks(chunks_of(n_customers)).params_.to_numpy()


def _worker(method: str, n_customers: int, repeat: int, results: multiprocessing.Queue) -> None:
    step = {"fit": fit_whole, "fit_chunks": fit_stream}[method]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the base is large; nothing to warn about
        seconds, peak_bytes, params = _memory.best_of(lambda: step(n_customers), repeat)
    results.put((seconds, peak_bytes / 2**20, params))


def run(method: str, n_customers: int, repeat: int) -> tuple[float, float, np.ndarray]:
    """The method in a fresh process: seconds, peak MB, params."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    worker = context.Process(target=_worker, args=(method, n_customers, repeat, results))
    worker.start()
    found = results.get()
    worker.join()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, nargs="+", default=[1_000_000, 3_000_000])
    parser.add_argument("--repeat", type=int, default=2)
    arguments = parser.parse_args()
    header = f"{'customers':>10} {'method':>11} {'seconds':>8} {'peak MB':>8} {'max rel diff':>13}"
    print(header)
    print("-" * len(header))
    for n_customers in arguments.customers:
        whole = run("fit", n_customers, arguments.repeat)
        streamed = run("fit_chunks", n_customers, arguments.repeat)
        difference = float(np.max(np.abs(streamed[2] / whole[2] - 1.0)))
        for method, (seconds, peak_mb, _) in (("fit", whole), ("fit_chunks", streamed)):
            shown = f"{difference:13.1e}" if method == "fit_chunks" else f"{'':>13}"
            print(f"{n_customers:>10,} {method:>11} {seconds:8.2f} {peak_mb:8.0f} {shown}")


if __name__ == "__main__":
    main()
