"""Benchmark: each customer's last lifecycle state in DuckDB, streamed, against the full panel.

A ``make_crm`` log (1M customers, about 6M transactions by default) is stored in a DuckDB file
once; each method then runs in a fresh worker process that opens the file, so that its peak
memory is its own:

- ``last-stream``: ``last_states_select`` (one aggregate per customer, no panel), its rows read in
  chunks of ``--chunk`` rows (``stream_results``/``yield_per``) and dropped;
- ``last-fetch``: ``sql_last_states``: the same rows fetched into a pandas Series;
- ``panel-stream``: the full panel query of ``sql_lifecycle_states`` (a row per customer and
  period) read in chunks of ``--chunk`` rows and dropped: the database's cost of the panel
  without pandas' (it reads the module's private statement builder);
- ``panel-fetch``: ``sql_lifecycle_states``, the panel fetched into pandas, then
  ``groupby("customer_id")["state"].last()``: the SQL twin's way to the last states;
- ``pandas``: ``lifecycle_states`` on the log in memory (read from the file first, untimed),
  then the same ``groupby``: the job's in-memory path.

"first chunk s" is the time until the first chunk arrives; "peak MB" is the rise of the worker's
peak resident memory during the call (Linux VmHWM after resetting it), which includes DuckDB's
buffers since it runs in the process. Times are the best of ``--repeat`` runs.

Run: ``python benchmarks/bench_last_states.py`` (``--customers 100000`` for a quick run,
``--period W``, ``--window 90D``).
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import _memory
import pandas as pd
import sqlalchemy as sa

OBSERVATION_END = "2024-12-31"
COLUMNS = ["customer_id", "timestamp", "amount", "is_return"]


def store_log(n_customers: int, path: Path) -> int:
    """Write a make_crm log of ``n_customers`` to a DuckDB file; the number of transactions."""
    from cvalue.datasets import make_crm

    log = make_crm(n_customers, seed=0).transactions[COLUMNS]
    engine = sa.create_engine(f"duckdb:///{path}")
    with engine.begin() as connection:
        raw = connection.connection.driver_connection
        raw.register("frame", log)
        raw.execute("CREATE OR REPLACE TABLE tx AS SELECT * FROM frame")
        raw.unregister("frame")
    engine.dispose()
    return len(log)


def _options(period: str, window: str) -> dict[str, object]:
    from cvalue.lifecycle import InactivityRule

    rule = InactivityRule(int(window) if window.isdigit() else window)
    return {"period": period, "rule": rule, "observation_end": OBSERVATION_END}


class Streamed:
    """Reads a statement in chunks and keeps only the row count and the first chunk's time."""

    def __init__(self, engine: sa.Engine, chunk: int) -> None:
        self.engine, self.chunk, self.first_chunk = engine, chunk, float("nan")

    def __call__(self, build: Callable[[sa.Connection], sa.Select]) -> int:
        started, rows = time.perf_counter(), 0
        with self.engine.connect() as connection:
            streamed = connection.execution_options(stream_results=True, yield_per=self.chunk)
            for number, partition in enumerate(streamed.execute(build(connection)).partitions()):
                if number == 0:
                    self.first_chunk = time.perf_counter() - started
                rows += len(partition)
        return rows


def _last_stream(engine: sa.Engine, options: dict, chunk: int) -> tuple[Callable, Streamed]:
    from cvalue.lifecycle import last_states_select

    stream = Streamed(engine, chunk)
    return lambda: stream(lambda c: last_states_select(c, table="tx", **options)), stream


def _panel_stream(engine: sa.Engine, options: dict, chunk: int) -> tuple[Callable, Streamed]:
    from cvalue.lifecycle.periods import _calendar
    from cvalue.lifecycle.sql import _statement

    def panel(connection: sa.Connection) -> sa.Select:
        source = {"table": "tx", "query": None, "schema": None}
        states, _ = _statement(
            connection, source, rule=options["rule"], calendar=_calendar(options["period"]),
            columns=None, observation_end=options["observation_end"],
        )  # fmt: skip
        return sa.select(states.c.customer, states.c.period, states.c.state)

    stream = Streamed(engine, chunk)
    return lambda: stream(panel), stream


def _last_fetch(engine: sa.Engine, options: dict, _: int) -> tuple[Callable, None]:
    from cvalue.lifecycle import sql_last_states

    return lambda: len(sql_last_states(engine, table="tx", **options)), None


def _panel_fetch(engine: sa.Engine, options: dict, _: int) -> tuple[Callable, None]:
    from cvalue.lifecycle import sql_lifecycle_states

    def last() -> int:
        states = sql_lifecycle_states(engine, table="tx", **options)
        return len(states.groupby("customer_id", observed=True)["state"].last())

    return last, None


def _pandas(engine: sa.Engine, options: dict, _: int) -> tuple[Callable, None]:
    from cvalue.lifecycle import lifecycle_states

    with engine.connect() as connection:
        log = pd.read_sql(sa.text("SELECT * FROM tx"), connection)

    def last() -> int:
        states = lifecycle_states(log, **options)
        return len(states.groupby("customer_id", observed=True)["state"].last())

    return last, None


METHODS = {
    "last-stream": _last_stream,
    "last-fetch": _last_fetch,
    "panel-stream": _panel_stream,
    "panel-fetch": _panel_fetch,
    "pandas": _pandas,
}


def _worker(method: str, path: str, options: dict, chunk: int, repeat: int,
            queue: multiprocessing.Queue) -> None:  # fmt: skip
    engine = sa.create_engine(f"duckdb:///{path}")
    step, stream = METHODS[method](engine, options, chunk)
    seconds, peak, rows = _memory.best_of(step, repeat)
    first = stream.first_chunk if stream is not None else float("nan")
    engine.dispose()
    queue.put((rows, seconds, first, peak))


def measure(method: str, path: Path, options: dict, chunk: int, repeat: int) -> tuple:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(
        target=_worker, args=(method, str(path), options, chunk, repeat, queue)
    )
    process.start()
    measured = queue.get()
    process.join()
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--period", nargs="+", default=["M", "W"])
    parser.add_argument("--window", default="3", help="periods (3) or a duration (90D)")
    parser.add_argument("--chunk", type=int, default=500_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    arguments = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.duckdb"
        n_transactions = store_log(arguments.customers, path)
        for period in arguments.period:
            options = _options(period, arguments.window)
            for method in arguments.methods:
                out, seconds, first, peak = measure(
                    method, path, options, arguments.chunk, arguments.repeat
                )
                rows.append({
                    "period": period, "method": method, "rows out": out, "seconds": seconds,
                    "first chunk s": first, "peak MB": peak / 2**20,
                })  # fmt: skip
    table = pd.DataFrame(rows)
    print(f"{arguments.customers:,} customers, {n_transactions:,} transactions, "
          f"InactivityRule({arguments.window}), observation end {OBSERVATION_END}, "
          f"chunks of {arguments.chunk:,} rows")  # fmt: skip
    print(table.to_string(index=False, float_format=lambda value: f"{value:,.2f}"))


if __name__ == "__main__":
    main()
