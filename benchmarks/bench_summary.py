"""Benchmark: the customer summary of 100k and 1M customers, side by side.

Methods, each run in a fresh worker process so that its peak memory is its own:

- ``cvalue``: ``cvalue.rfm_summary`` in memory (pandas/numpy);
- ``cvalue-sql-duckdb``: ``cvalue.io.sql.sql_rfm_summary`` pushed down into a DuckDB file;
- ``duckdb-groupby``: DuckDB's own two-level GROUP BY on the in-memory frame (the limit);
- ``pandas-groupby``: a plain pandas groupby with same-day merging (a reference point);
- ``lifetimes``: ``summary_data_from_transaction_data(freq="D", freq_multiplier=7)``.

Each customer has 2 to 10 transactions (2.3 on average), at random times over two years.
Times are the best of ``--repeat`` runs; "peak MB" is the rise of the worker's peak resident memory
during the call (Linux: VmHWM after resetting it), "x input" that rise over the input frame's size.

Run: ``pip install -e ".[bench]" && python benchmarks/bench_summary.py``
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import warnings
from collections.abc import Callable

import _memory
import numpy as np
import pandas as pd

OBSERVATION_END = "2024-12-31"
DUCKDB_GROUP_BY = """
WITH per_day AS (
    SELECT customer_id, CAST(timestamp AS DATE) AS day, SUM(amount) AS amount
    FROM tx GROUP BY customer_id, CAST(timestamp AS DATE)
), ranked AS (
    SELECT *, ROW_NUMBER() OVER (PARTITION BY customer_id ORDER BY day) AS n FROM per_day
)
SELECT customer_id,
       COUNT(*) - 1 AS frequency,
       DATE_DIFF('day', MIN(day), MAX(day)) / 7.0 AS recency,
       DATE_DIFF('day', MIN(day), DATE '2024-12-31') / 7.0 AS T,
       COALESCE(SUM(amount) FILTER (WHERE n > 1) / NULLIF(COUNT(*) - 1, 0), 0) AS monetary_value
FROM ranked GROUP BY customer_id ORDER BY customer_id
"""


def make_log(n_customers: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    counts = 2 + rng.binomial(8, 0.0375, n_customers)
    customer = np.repeat(np.arange(n_customers, dtype=np.int64), counts)
    seconds = rng.integers(0, 730 * 86_400, len(customer))
    return pd.DataFrame(
        {
            "customer_id": customer,
            "timestamp": pd.Timestamp("2023-01-01") + pd.to_timedelta(seconds, "s"),
            "amount": rng.gamma(2.0, 20.0, len(customer)).round(2),
        }
    )


def _cvalue(tx: pd.DataFrame, _: str) -> Callable[[], object]:
    import cvalue

    return lambda: cvalue.rfm_summary(tx, observation_end=OBSERVATION_END, unit="week")


def _cvalue_sql(tx: pd.DataFrame, folder: str) -> Callable[[], object]:
    import sqlalchemy as sa

    from cvalue.io.sql import sql_rfm_summary

    url = f"duckdb:///{folder}/bench.duckdb"
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        raw = connection.connection.driver_connection
        raw.register("frame", tx)
        raw.execute("CREATE OR REPLACE TABLE tx AS SELECT * FROM frame")
    return lambda: sql_rfm_summary(engine, table="tx", observation_end=OBSERVATION_END)


def _duckdb_group_by(tx: pd.DataFrame, _: str) -> Callable[[], object]:
    import duckdb

    connection = duckdb.connect()
    connection.register("tx", tx)
    return lambda: connection.execute(DUCKDB_GROUP_BY).df()


def _pandas_group_by(tx: pd.DataFrame, _: str) -> Callable[[], object]:
    def run() -> object:
        day = tx["timestamp"].dt.floor("D")
        per_day = tx.groupby([tx["customer_id"], day], sort=True)["amount"].sum().reset_index()
        grouped = per_day.groupby("customer_id")
        first, last = grouped["timestamp"].transform("min"), grouped["timestamp"].max()
        repeat = per_day[per_day["timestamp"] > first]
        return pd.DataFrame(
            {
                "frequency": grouped.size() - 1,
                "recency": (last - grouped["timestamp"].min()).dt.days / 7,
                "T": (pd.Timestamp(OBSERVATION_END) - grouped["timestamp"].min()).dt.days / 7,
                "monetary_value": repeat.groupby("customer_id")["amount"].mean(),
            }
        )

    return run


def _lifetimes(tx: pd.DataFrame, _: str) -> Callable[[], object]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from lifetimes.utils import summary_data_from_transaction_data

    def run() -> object:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return summary_data_from_transaction_data(
                tx, "customer_id", "timestamp", monetary_value_col="amount",
                observation_period_end=OBSERVATION_END, freq="D", freq_multiplier=7,
            )  # fmt: skip

    return run


METHODS: dict[str, Callable[[pd.DataFrame, str], Callable[[], object]]] = {
    "cvalue": _cvalue,
    "cvalue-sql-duckdb": _cvalue_sql,
    "duckdb-groupby": _duckdb_group_by,
    "pandas-groupby": _pandas_group_by,
    "lifetimes": _lifetimes,
}


def _worker(method: str, n_customers: int, repeat: int, queue: multiprocessing.Queue) -> None:
    tx = make_log(n_customers)
    with tempfile.TemporaryDirectory() as folder:
        seconds, peak, _ = _memory.best_of(METHODS[method](tx, folder), repeat)
    input_bytes = int(tx.memory_usage(deep=True).sum())
    queue.put((len(tx), seconds, peak, input_bytes))


def measure(method: str, n_customers: int, repeat: int) -> tuple[int, float, int, int]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_worker, args=(method, n_customers, repeat, queue))
    process.start()
    measured = queue.get()
    process.join()
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    options = parser.parse_args()
    rows = []
    for n_customers in options.sizes:
        for method in options.methods:
            n_rows, seconds, peak, input_bytes = measure(method, n_customers, options.repeat)
            rows.append({
                "customers": n_customers, "transactions": n_rows, "method": method,
                "seconds": seconds, "peak MB": peak / 2**20, "x input": peak / input_bytes,
            })  # fmt: skip
    table = pd.DataFrame(rows)
    for column, reference in (("vs cvalue", "cvalue"), ("vs duckdb", "duckdb-groupby")):
        base = table[table["method"] == reference].set_index("customers")["seconds"]
        table[column] = table["seconds"] / table["customers"].map(base)
    print(table.to_string(index=False, float_format=lambda value: f"{value:,.2f}"))


if __name__ == "__main__":
    main()
