"""Benchmark: customer equity of the whole base at once, and of the base chunk by chunk.

The base of ``bench_value.py`` (a BG/NBD base, default 1M customers, a year of whole days, with
Gamma-Gamma spend and three segments), valued with a discount rate and a cost to serve per
segment, then its equity by segment at 3 and 5 years with delta-method intervals:

- ``whole``: ``clv`` on every customer, then ``customer_equity(values, by="segment")``;
- ``stream``: ``clv`` on chunks of ``--chunk`` customers (250,000 by default), each given to
  ``EquityStream.add`` and dropped, then ``EquityStream.result()``, with the cells valued and
  dropped past ``--max-cells`` (100,000, the default of ``EquityStream``);
- ``stream, every cell``: the same keeping every distinct cell (``max_cells=None``), as the
  stream did before it had a limit: its memory grows with the base's distinct patterns.

Each method runs in a fresh worker process (the base simulated and the models fitted there,
untimed), twice: once timed, with "RSS MB" the rise of the worker's peak resident memory over
the pass (Linux: VmHWM after resetting it), and once under ``tracemalloc``, with "traced MB" the
peak of the bytes allocated by the step over those held when it started (numpy and pandas
report their buffers to it; resident memory hides what a step allocates in pages the process
already holds). The simulated base itself is in memory for both methods and is not counted.
The last lines compare the two results (the largest relative differences).

Run: ``python benchmarks/bench_equity_stream.py`` (``--customers 200000`` for a quick run).
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
import tracemalloc
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

import _memory
import numpy as np
import pandas as pd
from bench_value import simulate_base

HORIZONS = ("3y", "5y")
Row = tuple[str, float, float, float, str]


class _Steps:
    """Seconds (summed) and traced peak bytes (the largest) of named steps of a pass."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.traced: dict[str, float] = defaultdict(float)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        tracing = tracemalloc.is_tracing()
        if tracing:
            held = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
        started = time.perf_counter()
        yield
        self.seconds[name] += time.perf_counter() - started
        if tracing:
            peak = (tracemalloc.get_traced_memory()[1] - held) / 2**20
            self.traced[name] = max(self.traced[name], peak)


def _options(base: pd.DataFrame, segment: pd.Series) -> dict[str, object]:
    import cvalue as cv
    from cvalue.value import DiscountRates

    return {
        "purchases": cv.BetaGeo().fit(base),
        "spend": cv.GammaGamma().fit(base),
        "margin": 0.3,
        "horizon": "1y",
        "rates": DiscountRates.by_segment({"retail": 0.12, "online": 0.15, "corporate": 0.08}),
        "cost_to_serve": {"retail": 0.8, "online": 0.5, "corporate": 2.5},
        "marketing_cost": 0.1,
        "segment": segment,
    }


def _whole_pass(base: pd.DataFrame, options: dict[str, object], steps: _Steps) -> object:
    from cvalue.value import clv, customer_equity

    with steps.step("clv of every customer"):
        values = clv(base, **options)  # type: ignore[arg-type]
    with steps.step("customer_equity"):
        equity = customer_equity(values, HORIZONS, by="segment")
    return equity.by_group, ""


def _stream_pass(
    base: pd.DataFrame, options: dict[str, object], steps: _Steps, chunk: int, limit: int | None
) -> object:
    from cvalue.value import EquityStream, clv

    stream = EquityStream(HORIZONS, by="segment", max_cells=limit)
    for start in range(0, len(base), chunk):
        rows = slice(start, start + chunk)
        part = {k: v.iloc[rows] if isinstance(v, pd.Series) else v for k, v in options.items()}
        with steps.step("clv of a chunk"):
            values = clv(base.iloc[rows], **part)  # type: ignore[arg-type]
        with steps.step("add"):
            stream.add(values)
        del values  # nothing per customer is kept from one chunk to the next
    with steps.step("result"):
        equity = stream.result()
    cells = sum(len(block.frame) for block in stream._blocks.values())
    return equity.by_group, f"{cells:,} cells kept at the end"


def _worker(
    method: str,
    n_customers: int,
    chunk: int,
    limit: int,
    queue: multiprocessing.Queue,  # type: ignore[type-arg]
) -> None:
    base, segment = simulate_base(n_customers)
    options = _options(base, segment)

    def run(steps: _Steps) -> object:
        if method == "whole":
            return _whole_pass(base, options, steps)
        return _stream_pass(base, options, steps, chunk, None if "every" in method else limit)

    timed = _Steps()
    seconds, rss, found = _memory.best_of(lambda: run(timed), 1)
    traced = _Steps()
    tracemalloc.start()
    with traced.step("pass"):
        run(traced)
    tracemalloc.stop()
    table, note = found  # type: ignore[misc]
    rows: list[Row] = [
        (f"{method}: {name}", timed.seconds[name], float("nan"), traced.traced[name], "")
        for name in timed.seconds
    ]
    rows.append((f"{method}: the whole pass", seconds, rss / 2**20, traced.traced["pass"], note))
    queue.put((rows, table))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--chunk", type=int, default=250_000)
    parser.add_argument("--max-cells", type=int, default=100_000)
    args = parser.parse_args()
    context = multiprocessing.get_context("spawn")
    rows, tables = [], {}
    for method in ("whole", "stream, every cell", "stream"):
        queue = context.Queue()
        worker = context.Process(
            target=_worker, args=(method, args.customers, args.chunk, args.max_cells, queue)
        )
        worker.start()
        found, tables[method] = queue.get()
        worker.join()
        rows.extend(found)
    print(
        f"customers: {args.customers:,}, chunks of {args.chunk:,}, horizons {HORIZONS}, "
        f"max_cells {args.max_cells:,}"
    )
    print(f"{'step':<32}{'seconds':>9}{'RSS MB':>9}{'traced MB':>11}  notes")
    for label, seconds, rss, traced, note in rows:
        shown = "" if np.isnan(rss) else f"{rss:.0f}"
        print(f"{label:<32}{seconds:>9.2f}{shown:>9}{traced:>11.0f}  {note}")
    whole = tables["whole"]
    for method in ("stream, every cell", "stream"):
        stream = tables[method]
        assert whole.index.equals(stream.index)
        assert (whole["customers"] == stream["customers"]).all()
        for column in ("equity", "std_error", "ci_lower", "ci_upper"):
            difference = np.abs(stream[column] / whole[column] - 1.0).max()
            print(f"{method} against whole, largest relative difference of {column}: "
                  f"{difference:.1e}")  # fmt: skip


if __name__ == "__main__":
    main()
