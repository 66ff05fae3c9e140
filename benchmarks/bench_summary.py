"""Benchmark: the customer summary of 100k and 1M customers, side by side.

Methods, each run in a fresh worker process so that its peak memory is its own:

- ``cvalue``: ``cvalue.rfm_summary`` in memory (pandas/numpy);
- ``cvalue-sql-duckdb``: ``cvalue.io.sql.sql_rfm_summary`` pushed down into a DuckDB file (its
  checks of the rows included), the summary fetched into pandas;
- ``duckdb-per-day``: a hand-written per-day summary in DuckDB SQL on the same file and rows
  (``frequency``, ``recency``, ``T`` and ``monetary_value`` as cvalue defines them, returns left
  out), fetched into pandas: what ``cvalue-sql-duckdb`` should not be slower than;
- ``duckdb-bare-groupby``: DuckDB's bare ``GROUP BY customer_id`` (count, first and last
  timestamp) on the same file, fetched into pandas: the floor of any summary there;
- ``duckdb-groupby``: DuckDB's own two-level GROUP BY on the in-memory frame;
- ``pandas-groupby``: a plain pandas groupby with same-day merging (a reference point);
- ``lifetimes``: ``summary_data_from_transaction_data(freq="D", freq_multiplier=7)``.

``--log uniform`` (the default): each customer has 2 to 10 transactions (2.3 on average), at
random times over two years. ``--log crm``: the transactions of ``cvalue.datasets.make_crm``, the
demo's CRM (5.76 million at 1M customers, returns flagged ``is_return``); the methods that know no
returns flag (``duckdb-groupby``, ``pandas-groupby``, ``lifetimes``) get the purchases only.
Times are the best of ``--repeat`` runs; "peak MB" is the rise of the worker's peak resident memory
during the call (Linux: VmHWM after resetting it), "x input" that rise over the input frame's size.

Run: ``pip install -e ".[bench]" && python benchmarks/bench_summary.py``; the comparison with the
hand-written SQL at 1M customers: ``python benchmarks/bench_summary.py --log crm --sizes 1000000
--methods cvalue-sql-duckdb duckdb-per-day duckdb-bare-groupby``
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

import _memory
import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import sqlalchemy as sa

OBSERVATION_END = "2024-12-31"
# the hand-written references: plain SQL strings, since they are what cvalue is measured against
PER_DAY = """
WITH per_day AS (
    SELECT customer_id, CAST("timestamp" AS DATE) AS day, SUM(amount) AS amount
    FROM {table} {purchases} GROUP BY customer_id, CAST("timestamp" AS DATE)
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
BARE_GROUP_BY = """
SELECT customer_id, COUNT(*) AS n, MIN("timestamp") AS first, MAX("timestamp") AS last
FROM tx {purchases} GROUP BY customer_id
"""
Log = Literal["uniform", "crm"]


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


def make_crm_log(n_customers: int, seed: int = 0) -> pd.DataFrame:
    """The demo CRM's transactions: purchases and returns (``is_return``)."""
    from cvalue.datasets import make_crm

    transactions = make_crm(n_customers, seed=seed).transactions
    return transactions[["customer_id", "timestamp", "amount", "is_return"]]


def _purchases_only(tx: pd.DataFrame) -> pd.DataFrame:
    """The rows that are purchases, for the methods that know no returns flag."""
    return tx[~tx["is_return"]].drop(columns="is_return") if "is_return" in tx else tx


def _where_purchases(tx: pd.DataFrame) -> str:
    return "WHERE NOT is_return" if "is_return" in tx else ""


def _duckdb_file(tx: pd.DataFrame, folder: str) -> sa.Engine:
    """A SQLAlchemy engine on a DuckDB file whose table ``tx`` holds the rows."""
    import sqlalchemy as sa

    engine = sa.create_engine(f"duckdb:///{folder}/bench.duckdb")
    with engine.begin() as connection:
        raw = connection.connection.driver_connection
        raw.register("frame", tx)
        raw.execute("CREATE OR REPLACE TABLE tx AS SELECT * FROM frame")
        raw.unregister("frame")
    return engine


def _cvalue(tx: pd.DataFrame, _: str) -> Callable[[], object]:
    import cvalue

    return lambda: cvalue.rfm_summary(tx, observation_end=OBSERVATION_END, unit="week")


def _cvalue_sql(tx: pd.DataFrame, folder: str) -> Callable[[], object]:
    from cvalue.io.sql import sql_rfm_summary

    engine = _duckdb_file(tx, folder)
    return lambda: sql_rfm_summary(engine, table="tx", observation_end=OBSERVATION_END)


def _on_file(tx: pd.DataFrame, folder: str, statement: str) -> Callable[[], object]:
    """``statement`` run on the DuckDB file of ``_cvalue_sql``, its rows fetched into pandas."""
    connection = _duckdb_file(tx, folder).connect()
    raw = connection.connection.driver_connection
    return lambda: raw.execute(statement).df()


def _duckdb_per_day(tx: pd.DataFrame, folder: str) -> Callable[[], object]:
    statement = PER_DAY.format(table="tx", purchases=_where_purchases(tx))
    return _on_file(tx, folder, statement)


def _duckdb_bare_group_by(tx: pd.DataFrame, folder: str) -> Callable[[], object]:
    return _on_file(tx, folder, BARE_GROUP_BY.format(purchases=_where_purchases(tx)))


def _duckdb_group_by(tx: pd.DataFrame, _: str) -> Callable[[], object]:
    import duckdb

    connection = duckdb.connect()
    connection.register("frame", _purchases_only(tx))
    return lambda: connection.execute(PER_DAY.format(table="frame", purchases="")).df()


def _pandas_group_by(tx: pd.DataFrame, _: str) -> Callable[[], object]:
    tx = _purchases_only(tx)

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
    tx = _purchases_only(tx)
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
    "duckdb-per-day": _duckdb_per_day,
    "duckdb-bare-groupby": _duckdb_bare_group_by,
    "duckdb-groupby": _duckdb_group_by,
    "pandas-groupby": _pandas_group_by,
    "lifetimes": _lifetimes,
}


LOGS: dict[str, Callable[[int], pd.DataFrame]] = {"uniform": make_log, "crm": make_crm_log}


def _worker(
    method: str, log: Log, n_customers: int, repeat: int, queue: multiprocessing.Queue
) -> None:
    tx = LOGS[log](n_customers)
    with tempfile.TemporaryDirectory() as folder:
        seconds, peak, _ = _memory.best_of(METHODS[method](tx, folder), repeat)
    input_bytes = int(tx.memory_usage(deep=True).sum())
    queue.put((len(tx), seconds, peak, input_bytes))


def measure(method: str, log: Log, n_customers: int, repeat: int) -> tuple[int, float, int, int]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_worker, args=(method, log, n_customers, repeat, queue))
    process.start()
    measured = queue.get()
    process.join()
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--log", default="uniform", choices=list(LOGS), help="the transactions")
    options = parser.parse_args()
    rows = []
    for n_customers in options.sizes:
        for method in options.methods:
            measured = measure(method, options.log, n_customers, options.repeat)
            n_rows, seconds, peak, input_bytes = measured
            rows.append({
                "customers": n_customers, "transactions": n_rows, "method": method,
                "seconds": seconds, "peak MB": peak / 2**20, "x input": peak / input_bytes,
            })  # fmt: skip
    table = pd.DataFrame(rows)
    references = {"vs cvalue": "cvalue", "vs per-day SQL": "duckdb-per-day",
                  "vs bare GROUP BY": "duckdb-bare-groupby"}  # fmt: skip
    for column, reference in references.items():
        if reference in options.methods:
            base = table[table["method"] == reference].set_index("customers")["seconds"]
            table[column] = table["seconds"] / table["customers"].map(base)
    print(table.to_string(index=False, float_format=lambda value: f"{value:,.2f}"))


if __name__ == "__main__":
    main()
