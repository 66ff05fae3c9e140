"""Benchmark: validation in pandas (read + validate) against validation inside DuckDB.

The data: the transactions of ``cvalue.datasets.make_crm(--customers, seed=0)`` (about 5.8
purchases and returns per customer) with a few planted problems (fixed seed): 0.1 % of the rows
repeated, and 0.02 % each with a missing customer id, a missing amount, a negative amount on a
purchase, and a 1900-01-01 placeholder date. They are stored in a DuckDB file by DuckDB's bulk
load.

Each method runs in its own fresh process, so that its peak memory is its own:

- ``pandas``: ``cvalue.read_transactions`` of the table (``read``), then
  ``cvalue.validate_transactions`` of the frame (``validate``): what the scoring job does today;
- ``sql``: ``cvalue.io.sql_validate_transactions`` (``report``: every rule in the database, the
  counts by reason with their examples), then what follows it without loading the log: counting
  the clean rows through :attr:`SqlValidated.clean` (``clean rows``: the scan a summary makes),
  ``write_rejected`` to a table (``rejected -> table``) and to a Parquet file
  (``rejected -> parquet``).

Each method runs ``--repeat`` times; a step's seconds are its best run's (the machine may be
shared), its memory that of the same run. "peak MB" is the process's peak resident memory over
the step (Linux VmHWM, reset at the step's start); "start MB" its resident memory when the step
starts. The last line says whether both methods found the same rows by reason.

Run: ``pip install -e ".[bench]" && python benchmarks/bench_validate_sql.py --customers 1000000``
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import _memory
import numpy as np
import pandas as pd

SEED = 0
MAX_DATE = "2025-12-31"
ROLES = {"order_id": "order_id", "is_return": "is_return", "category": "category",
         "channel": "channel"}  # fmt: skip
Step = tuple[str, float, float, float]  # step, seconds, start MB, peak MB
MB = 2**20


def build(n_customers: int, path: Path) -> int:
    """The CRM's transactions with planted problems, stored in a DuckDB file; the row count."""
    import sqlalchemy as sa

    from cvalue.datasets import make_crm

    transactions = make_crm(n_customers, seed=SEED).transactions
    rng = np.random.default_rng(SEED)
    n_rows = len(transactions)
    repeated = transactions.iloc[rng.choice(n_rows, n_rows // 1000, replace=False)]
    log = pd.concat([transactions, repeated], ignore_index=True)
    log["customer_id"] = log["customer_id"].astype("Int64")
    planted = rng.choice(len(log), 4 * (n_rows // 5000), replace=False).reshape(4, -1)
    log.loc[planted[0], "customer_id"] = pd.NA
    log.loc[planted[1], "amount"] = np.nan
    log.loc[planted[2], ["amount", "is_return"]] = [-5.0, False]
    log.loc[planted[3], "timestamp"] = pd.Timestamp("1900-01-01")
    engine = sa.create_engine(f"duckdb:///{path}")
    with engine.begin() as connection:
        raw = connection.connection.driver_connection
        raw.register("frame", log)
        raw.execute("CREATE TABLE transactions AS SELECT * FROM frame")
        raw.unregister("frame")
    engine.dispose()
    return len(log)


def _timed(steps: list[Step], name: str, work: Callable[[], object]) -> object:
    start = _memory.resident()
    _memory.reset_peak()
    began = time.perf_counter()
    result = work()
    steps.append((name, time.perf_counter() - began, start / MB, _memory.peak() / MB))
    return result


def _pandas(url: str, folder: Path) -> tuple[list[Step], dict[str, int]]:
    import cvalue as cv

    steps: list[Step] = []
    columns = cv.Columns(**ROLES)
    frame = _timed(steps, "read", lambda: cv.read_transactions(url, table="transactions",
                                                                columns=columns))  # fmt: skip
    validated = _timed(
        steps, "validate", lambda: cv.validate_transactions(frame, columns, max_date=MAX_DATE)
    )
    reasons = validated.report.reasons  # type: ignore[attr-defined]
    return steps, dict(zip(reasons["reason"], reasons["rows"], strict=True))


def _sql(url: str, folder: Path) -> tuple[list[Step], dict[str, int]]:
    import sqlalchemy as sa

    import cvalue as cv
    from cvalue.io import sql_validate_transactions, write_rejected

    steps: list[Step] = []
    columns = cv.Columns(**ROLES)
    engine = sa.create_engine(url)
    result = _timed(steps, "report", lambda: sql_validate_transactions(
        engine, table="transactions", columns=columns, max_date=MAX_DATE))  # fmt: skip

    def count_clean() -> int:
        with engine.connect() as connection:
            rows = sa.select(sa.func.count()).select_from(result.clean.subquery())  # type: ignore[attr-defined]
            return int(connection.execute(rows).scalar_one())

    _timed(steps, "clean rows", count_clean)
    rejected = result.rejected  # type: ignore[attr-defined]
    _timed(
        steps,
        "rejected -> table",
        lambda: write_rejected(engine, rejected, table="rejected", replace=True),
    )
    _timed(steps, "rejected -> parquet", lambda: write_rejected(
        engine, rejected, path=folder / "rejected.parquet", replace=True))  # fmt: skip
    engine.dispose()
    reasons = result.report.reasons  # type: ignore[attr-defined]
    return steps, dict(zip(reasons["reason"], reasons["rows"], strict=True))


METHODS = {"pandas": _pandas, "sql": _sql}


def _worker(method: str, url: str, folder: str, queue: multiprocessing.Queue) -> None:
    try:
        queue.put(METHODS[method](url, Path(folder)))
    except BaseException as exc:  # handed to the parent, which would otherwise wait forever
        queue.put(RuntimeError(f"{method} failed: {exc!r}"))
        raise


def run_method(method: str, url: str, folder: Path) -> tuple[list[Step], dict[str, int]]:
    """The method in a fresh process (spawned: no memory inherited from this one)."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_worker, args=(method, url, str(folder), queue))
    process.start()
    outcome = queue.get()
    process.join()
    if isinstance(outcome, Exception):
        raise outcome
    return outcome  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cvalue-bench-") as folder:
        path = Path(folder) / "crm.duckdb"
        began = time.perf_counter()
        n_rows = build(arguments.customers, path)
        print(f"{arguments.customers:,} customers, {n_rows:,} transactions "
              f"(built in {time.perf_counter() - began:.0f} s)\n")  # fmt: skip
        print(f"{'method':<8} {'step':<20} {'seconds':>8} {'start MB':>9} {'peak MB':>8}")
        found, totals = {}, {}
        for method in METHODS:
            runs = [run_method(method, f"duckdb:///{path}", Path(folder))
                    for _ in range(arguments.repeat)]  # fmt: skip
            found[method] = runs[0][1]
            steps = [min(step, key=lambda measured: measured[1]) for step in zip(
                *(run[0] for run in runs), strict=True)]  # fmt: skip
            for step, seconds, start, peak in steps:
                print(f"{method:<8} {step:<20} {seconds:8.2f} {start:9.0f} {peak:8.0f}")
            totals[method] = sum(step[1] for step in steps[: 2 if method == "pandas" else 1])
        print(f"\nread + validate (pandas) / report (sql): "
              f"{totals['pandas'] / totals['sql']:.1f}x")  # fmt: skip
        same = found["pandas"] == found["sql"]
        print(f"same rows by reason: {'yes' if same else 'NO'} {found['sql']}")


if __name__ == "__main__":
    main()
