"""Benchmark: lifecycle states and flows of 1M customers over 36 monthly periods.

Methods, each run in a fresh worker process so that its peak memory is its own:

- ``pandas-states``: ``cvalue.lifecycle.lifecycle_states`` in memory (numpy codes);
- ``pandas-flows``: the same states, then ``lifecycle_flows`` on them;
- ``duckdb-states``: ``sql_lifecycle_states`` on a DuckDB file: the panel is computed in DuckDB and
  every customer-period row comes back to pandas;
- ``duckdb-flows``: ``sql_lifecycle_flows``: states and flows inside DuckDB, one row per period
  comes back.

Customers are acquired on days spread over 2022-2024 (36 months, observation end 2024-12-31) and
buy at a Poisson rate of one purchase per 45 days until an exponential lifetime (mean 300 days)
ends: about 5 transactions per customer. The rule is ``InactivityRule(3)`` (``--window`` changes
it, e.g. ``--window 90D``). Times are the best of ``--repeat`` runs; "peak MB" is the rise of the
worker's peak resident memory during the call (Linux: VmHWM after resetting it), which for DuckDB
includes its own buffers since it runs in the process.

Run: ``pip install -e ".[bench]" && python benchmarks/bench_lifecycle.py``
(``--customers 100000`` for a quick run).
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
from collections.abc import Callable

import _memory
import numpy as np
import pandas as pd

START, OBSERVATION_END = "2022-01-01", "2024-12-31"
PERIOD = "M"


def make_log(n_customers: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    span_days = (pd.Timestamp(OBSERVATION_END) - pd.Timestamp(START)).days + 1
    acquired = rng.integers(0, span_days, n_customers)
    lifetime = np.minimum(rng.exponential(300.0, n_customers), span_days - acquired)
    repeats = rng.poisson(lifetime / 45.0)
    customer = np.repeat(np.arange(n_customers, dtype=np.int64), repeats + 1)
    offset = rng.uniform(0.0, 1.0, len(customer)) * np.repeat(lifetime, repeats + 1)
    offset[np.cumsum(repeats + 1) - repeats - 1] = 0.0  # the first purchase: the acquisition day
    seconds = (np.repeat(acquired, repeats + 1) + offset) * 86_400
    return pd.DataFrame({
        "customer_id": customer,
        "timestamp": pd.Timestamp(START) + pd.to_timedelta(seconds.astype(np.int64), "s"),
        "amount": rng.gamma(2.0, 20.0, len(customer)).round(2),
    })  # fmt: skip


def _rule(window: str) -> object:
    from cvalue.lifecycle import InactivityRule

    return InactivityRule(int(window) if window.isdigit() else window)


def _pandas_states(tx: pd.DataFrame, _: str, window: str) -> Callable[[], object]:
    from cvalue.lifecycle import lifecycle_states

    rule = _rule(window)
    return lambda: lifecycle_states(tx, period=PERIOD, rule=rule, observation_end=OBSERVATION_END)


def _pandas_flows(tx: pd.DataFrame, _: str, window: str) -> Callable[[], object]:
    from cvalue.lifecycle import lifecycle_flows, lifecycle_states

    rule = _rule(window)
    return lambda: lifecycle_flows(
        lifecycle_states(tx, period=PERIOD, rule=rule, observation_end=OBSERVATION_END)
    )


def _duckdb_engine(tx: pd.DataFrame, folder: str) -> object:
    import sqlalchemy as sa

    engine = sa.create_engine(f"duckdb:///{folder}/bench.duckdb")
    with engine.begin() as connection:
        raw = connection.connection.driver_connection
        raw.register("frame", tx)
        raw.execute("CREATE OR REPLACE TABLE tx AS SELECT * FROM frame")
        raw.unregister("frame")
    return engine


def _duckdb_states(tx: pd.DataFrame, folder: str, window: str) -> Callable[[], object]:
    from cvalue.lifecycle.sql import sql_lifecycle_states

    engine, rule = _duckdb_engine(tx, folder), _rule(window)
    return lambda: sql_lifecycle_states(
        engine, table="tx", period=PERIOD, rule=rule, observation_end=OBSERVATION_END
    )


def _duckdb_flows(tx: pd.DataFrame, folder: str, window: str) -> Callable[[], object]:
    from cvalue.lifecycle.sql import sql_lifecycle_flows

    engine, rule = _duckdb_engine(tx, folder), _rule(window)
    return lambda: sql_lifecycle_flows(
        engine, table="tx", period=PERIOD, rule=rule, observation_end=OBSERVATION_END
    )


METHODS: dict[str, Callable[[pd.DataFrame, str, str], Callable[[], object]]] = {
    "pandas-states": _pandas_states,
    "pandas-flows": _pandas_flows,
    "duckdb-states": _duckdb_states,
    "duckdb-flows": _duckdb_flows,
}


def _worker(method: str, n_customers: int, window: str, repeat: int,
            queue: multiprocessing.Queue) -> None:  # fmt: skip
    tx = make_log(n_customers)
    with tempfile.TemporaryDirectory() as folder:
        seconds, peak, result = _memory.best_of(METHODS[method](tx, folder, window), repeat)
    rows = len(result) if isinstance(result, pd.DataFrame) else 0
    queue.put((len(tx), rows, seconds, peak, int(tx.memory_usage(deep=True).sum())))


def measure(method: str, n_customers: int, window: str, repeat: int) -> tuple[int, ...]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_worker, args=(method, n_customers, window, repeat, queue))
    process.start()
    measured = queue.get()
    process.join()
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--window", default="3", help="periods (3) or a duration (90D)")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    options = parser.parse_args()
    rows = []
    for n_customers in options.customers:
        for method in options.methods:
            n_rows, out_rows, seconds, peak, input_bytes = measure(
                method, n_customers, options.window, options.repeat
            )
            rows.append({
                "customers": n_customers, "transactions": n_rows, "method": method,
                "rows out": out_rows, "seconds": seconds, "peak MB": peak / 2**20,
                "x input": peak / input_bytes,
            })  # fmt: skip
    table = pd.DataFrame(rows)
    base = table[table["method"] == "pandas-states"].set_index("customers")["seconds"]
    table["vs pandas-states"] = table["seconds"] / table["customers"].map(base)
    print(table.to_string(index=False, float_format=lambda value: f"{value:,.2f}"))


if __name__ == "__main__":
    main()
