"""Benchmark: cross-sell profitability chunk by chunk against the in-memory SQL path, DuckDB.

The data are ``cvalue.datasets.make_crm`` (1M customers: about 5.8M transactions and 0.35M
service contacts), stored in a DuckDB file. Methods, each run in a fresh worker process so that
its memory is its own:

- ``in-memory``: ``sql_customer_profitability`` (the database adds up, every customer's row is
  fetched) then ``cross_sell_profitability`` on the whole table;
- ``streamed``: ``profit_select`` then ``streamed_cross_sell_profitability`` with
  ``--chunk`` customers per chunk and a sample of ``--sample`` cross-buyers for the tree (the
  statement runs a second time to judge the leaves on every cross-buyer);
- ``streamed, one pass``: the same with a sample as large as the base (no second pass).

"seconds" is the best of ``--repeat`` runs; "peak MB" is the rise of the worker's peak resident
memory during the run (Linux VmHWM after resetting it; it includes DuckDB's own memory);
"heap MB" is tracemalloc's peak of the Python and NumPy allocations, in a separate run.

Run: ``pip install -e ".[bench]" && python benchmarks/bench_cross_sell_stream.py``
(``--customers 50000 --chunk 20000 --sample 10000`` for a quick run; ``--customers 1000000
2000000`` shows which memory grows with the base).
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import time
import tracemalloc
import warnings
from pathlib import Path

import _memory
import duckdb
import pandas as pd
import sqlalchemy as sa


def store_crm(path: Path, n_customers: int) -> dict[str, float]:
    """Write make_crm's transactions and contacts to a DuckDB file; the assumed rates."""
    from cvalue.datasets import make_crm

    crm = make_crm(n_customers, seed=7)
    with duckdb.connect(str(path)) as connection:
        connection.register("transactions_frame", crm.transactions)
        connection.register("contacts_frame", crm.service_contacts)
        connection.execute("CREATE TABLE transactions AS SELECT * FROM transactions_frame")
        connection.execute("CREATE TABLE contacts AS SELECT * FROM contacts_frame")
    assumed = crm.truth.costs
    return {
        "margin_rate": assumed.margin_rate,
        "promotion_discount_rate": assumed.promotion_discount_rate,
        "return_handling_cost": assumed.return_handling_cost,
    }


def run(method: str, url: str, rates: dict[str, float], chunk: int, sample: int) -> object:
    """One analysis of the base by ``method``."""
    from cvalue.io import connection_to
    from cvalue.segments import (
        Costs,
        cross_sell_profitability,
        profit_select,
        streamed_cross_sell_profitability,
    )
    from cvalue.segments.sql import sql_customer_profitability

    costs = Costs(service_contacts="contacts", **rates)
    # a new engine per run, so that each run opens the database as a job would; no progress bar
    engine = sa.create_engine(url)
    sa.event.listen(engine, "connect", _without_progress_bar)
    try:
        if method == "in-memory":
            table = sql_customer_profitability(engine, costs, table="transactions")
            return cross_sell_profitability(table)
        with connection_to(engine) as connection:
            source = profit_select(connection, costs, table="transactions")
            return streamed_cross_sell_profitability(
                connection, source, chunk_customers=chunk, sample_size=sample
            )
    finally:
        engine.dispose()


def _without_progress_bar(connection: object, _: object) -> None:
    connection.execute("SET enable_progress_bar = false")  # type: ignore[attr-defined]


def _worker(
    method: str, url: str, rates: dict[str, float], options: dict[str, int], queue: object
) -> None:
    warnings.simplefilter("ignore")
    import cvalue.segments.sql  # noqa: F401  (imports are not part of the measure)

    chunk = options["chunk"]
    sample = options["customers"] if method == "streamed, one pass" else options["sample"]
    seconds, peak, result = _memory.best_of(
        lambda: run(method, url, rates, chunk, sample), options["repeat"]
    )
    result = None
    tracemalloc.start()
    started = time.perf_counter()
    result = run(method, url, rates, chunk, sample)
    traced_seconds = time.perf_counter() - started
    heap = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    queue.put(  # type: ignore[attr-defined]
        {
            "method": method,
            "seconds": seconds,
            "peak MB": peak / 2**20,
            "heap MB": heap / 2**20,
            "seconds traced": traced_seconds,
            "cross-buyers": result.n_cross_buyers_,  # type: ignore[attr-defined]
            "unprofitable share": result.unprofitable_share_,  # type: ignore[attr-defined]
            "loss share": result.loss_share_,  # type: ignore[attr-defined]
            "flagged leaves": int(result.segments_.flagged_.shape[0]),  # type: ignore[attr-defined]
        }
    )


def measure(
    method: str, url: str, rates: dict[str, float], options: dict[str, int]
) -> dict[str, object]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_worker, args=(method, url, rates, options, queue))
    process.start()
    measured: dict[str, object] = queue.get()
    process.join()
    return measured


METHODS = ("in-memory", "streamed", "streamed, one pass")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--chunk", type=int, default=250_000)
    parser.add_argument("--sample", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    options = parser.parse_args()
    rows = []
    for n_customers in options.customers:
        settings = {"customers": n_customers, "chunk": options.chunk,
                    "sample": options.sample, "repeat": options.repeat}  # fmt: skip
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "crm.duckdb"
            rates = store_crm(path, n_customers)
            for method in options.methods:
                measured = measure(method, f"duckdb:///{path}", rates, settings)
                rows.append({"customers": n_customers, **measured})
    print(f"chunks of {options.chunk:,} customers, a sample of {options.sample:,} cross-buyers")
    table = pd.DataFrame(rows)
    print(table.to_string(index=False, float_format=lambda value: f"{value:,.4g}"))


if __name__ == "__main__":
    main()
