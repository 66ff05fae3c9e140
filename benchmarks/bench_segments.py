"""Benchmark: cross-sell profitability and segment discovery, 1M customers / 10M transactions.

Methods, each run in a fresh worker process so that its peak memory is its own:

- ``pandas``: ``cvalue.segments.customer_profitability`` on in-memory frames (step
  ``aggregate``), then ``cross_sell_profitability`` on that table: shares, drivers and the
  segment tree (step ``analyse``);
- ``cvalue-sql-duckdb``: ``cvalue.io.sql_customer_profitability`` pushed down into a DuckDB file
  (``aggregate``), then the same ``analyse`` step on the table it returns;
- ``duckdb-groupby``: DuckDB's own GROUP BY of the same per-customer sums on the in-memory frames,
  with no checks and no cost tables joined (a lower bound for ``aggregate``).

Each customer makes 1 + Poisson(9) purchases (10 on average) in up to four categories, with
promotions, returns and service contacts; a tenth of the customers return, call and buy on
promotion much more than the others. Times are the best of ``--repeat`` runs; "peak MB" is the
rise of the worker's peak resident memory during the step (Linux: VmHWM after resetting it), "x
input" that rise over the size of the input frames.

Run: ``pip install -e ".[bench]" && python benchmarks/bench_segments.py``
(``--customers 20000`` for a quick run).
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

CATEGORIES = np.array(["books", "electronics", "home", "fashion"])
DUCKDB_GROUP_BY = """
SELECT customer_id,
       COUNT(*) FILTER (WHERE NOT is_return) AS n_purchases,
       COUNT(*) FILTER (WHERE is_return) AS n_returns,
       COUNT(*) FILTER (WHERE NOT is_return AND is_promotion) AS n_promoted,
       COUNT(DISTINCT category) FILTER (WHERE NOT is_return) AS n_categories,
       COALESCE(SUM(amount) FILTER (WHERE NOT is_return), 0) AS revenue,
       COALESCE(-SUM(amount) FILTER (WHERE is_return), 0) AS returned
FROM tx GROUP BY customer_id ORDER BY customer_id
"""


def make_tables(n_customers: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Transactions (purchases and returns) and service contacts of ``n_customers``."""
    rng = np.random.default_rng(seed)
    is_heavy = rng.random(n_customers) < 0.1  # the heavy returners, callers and promotion buyers
    counts = 1 + rng.poisson(9, n_customers)
    owner = np.repeat(np.arange(n_customers, dtype=np.int64), counts)
    main = rng.integers(0, len(CATEGORIES), n_customers)
    is_off = rng.random(len(owner)) < 0.3
    category = np.where(is_off, rng.integers(0, len(CATEGORIES), len(owner)), main[owner])
    amount = np.round(rng.gamma(2.0, 20.0, len(owner)), 2) + 0.01
    is_promotion = rng.random(len(owner)) < np.where(is_heavy, 0.8, 0.15)[owner]
    seconds = rng.integers(0, 730 * 86_400, len(owner))
    is_returned = rng.random(len(owner)) < np.where(is_heavy, 0.45, 0.08)[owner]
    source = np.concatenate([np.arange(len(owner)), np.flatnonzero(is_returned)])
    is_return = np.arange(len(source)) >= len(owner)
    transactions = pd.DataFrame(
        {
            "customer_id": owner[source],
            "timestamp": pd.Timestamp("2023-01-01")
            + pd.to_timedelta(seconds[source] + is_return * 86_400 * 5, "s"),
            "amount": np.where(is_return, -amount[source], amount[source]),
            "category": pd.array(CATEGORIES[category[source]], dtype="str"),
            "is_promotion": is_promotion[source],
            "is_return": is_return,
        }
    )
    n_contacts = rng.poisson(np.where(is_heavy, 10.0, 1.5))
    contact_owner = np.repeat(np.arange(n_customers, dtype=np.int64), n_contacts)
    contacts = pd.DataFrame(
        {"customer_id": contact_owner, "cost": np.round(rng.gamma(8.0, 1.0, len(contact_owner)), 2)}
    )
    return transactions, contacts


COSTS = {"margin_rate": 0.3, "promotion_discount_rate": 0.2, "return_handling_cost": 8.0}
Step = Callable[[], object]


def _pandas(transactions: pd.DataFrame, contacts: pd.DataFrame, _: str) -> dict[str, Step]:
    from cvalue.segments import Costs, cross_sell_profitability, customer_profitability

    costs = Costs(service_contacts=contacts, **COSTS)
    table = customer_profitability(transactions, costs)
    return {
        "aggregate": lambda: customer_profitability(transactions, costs),
        "analyse": lambda: cross_sell_profitability(table),
    }


def _duckdb_sql(transactions: pd.DataFrame, contacts: pd.DataFrame, folder: str) -> dict[str, Step]:
    import sqlalchemy as sa

    from cvalue.segments import Costs, cross_sell_profitability
    from cvalue.segments.sql import sql_customer_profitability

    engine = sa.create_engine(f"duckdb:///{folder}/bench.duckdb")
    with engine.begin() as connection:
        raw = connection.connection.driver_connection
        raw.register("transactions_frame", transactions)
        raw.register("contacts_frame", contacts)
        raw.execute("CREATE OR REPLACE TABLE tx AS SELECT * FROM transactions_frame")
        raw.execute("CREATE OR REPLACE TABLE contacts AS SELECT * FROM contacts_frame")
    costs = Costs(service_contacts="contacts", **COSTS)
    table = sql_customer_profitability(engine, costs, table="tx")
    return {
        "aggregate": lambda: sql_customer_profitability(engine, costs, table="tx"),
        "analyse": lambda: cross_sell_profitability(table),
    }


def _duckdb_group_by(transactions: pd.DataFrame, _: pd.DataFrame, __: str) -> dict[str, Step]:
    import duckdb

    connection = duckdb.connect()
    connection.register("tx", transactions)
    return {"aggregate": lambda: connection.execute(DUCKDB_GROUP_BY).df()}


METHODS: dict[str, Callable[[pd.DataFrame, pd.DataFrame, str], dict[str, Step]]] = {
    "pandas": _pandas,
    "cvalue-sql-duckdb": _duckdb_sql,
    "duckdb-groupby": _duckdb_group_by,
}


def _worker(method: str, n_customers: int, repeat: int, queue: multiprocessing.Queue) -> None:
    warnings.simplefilter("ignore")
    transactions, contacts = make_tables(n_customers)
    input_bytes = int(
        transactions.memory_usage(deep=True).sum() + contacts.memory_usage(deep=True).sum()
    )
    with tempfile.TemporaryDirectory() as folder:
        steps = METHODS[method](transactions, contacts, folder)
        measured = {name: _memory.best_of(step, repeat)[:2] for name, step in steps.items()}
    queue.put((len(transactions), measured, input_bytes))


def measure(
    method: str, n_customers: int, repeat: int
) -> tuple[int, dict[str, tuple[float, int]], int]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_worker, args=(method, n_customers, repeat, queue))
    process.start()
    measured = queue.get()
    process.join()
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    options = parser.parse_args()
    rows = []
    for n_customers in options.customers:
        for method in options.methods:
            n_rows, steps, input_bytes = measure(method, n_customers, options.repeat)
            for step, (seconds, peak) in steps.items():
                rows.append({
                    "customers": n_customers, "transactions": n_rows, "method": method,
                    "step": step, "seconds": seconds, "peak MB": peak / 2**20,
                    "x input": peak / input_bytes,
                })  # fmt: skip
    table = pd.DataFrame(rows)
    reference = table[(table["method"] == "pandas")].set_index(["customers", "step"])["seconds"]
    keys = pd.MultiIndex.from_frame(table[["customers", "step"]])
    table["vs pandas"] = table["seconds"].to_numpy() / reference.reindex(keys).to_numpy()
    print(table.to_string(index=False, float_format=lambda value: f"{value:,.2f}"))


if __name__ == "__main__":
    main()
