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

Before and after a change: ``--before SRC`` runs the ``sql`` method a second time, as
``before``, with the ``cvalue`` of another checkout's ``src`` folder (``git worktree add
/tmp/before <commit>``, then ``--before /tmp/before/src``), in the same run and on the same file.
``--methods`` picks the methods (``pandas`` needs the whole log in memory).

``--memory-limit 1GB`` runs DuckDB as the bounded-memory scoring job does (``SET memory_limit``,
``preserve_insertion_order = false``). ``--copy-from crm.duckdb`` copies that file's
``transactions`` table (a ``make_crm`` log, opened read-only) instead of building one: no
planted problems then.

Each method runs ``--repeat`` times, interleaved (``before``, ``sql``, ``before``, ...); a step's
seconds are its best run's (the machine may be shared), its memory that of the same run. "peak
MB" is the process's peak resident memory over the step (Linux VmHWM, reset at the step's start);
"start MB" its resident memory when the step starts. The last lines say whether the methods found
the same rows by reason (and the SQL ones the same examples).

Run: ``pip install -e ".[bench]" && python benchmarks/bench_validate_sql.py --customers 1000000``
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
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
Found = dict[str, tuple[int, int]]  # reason: rows, example
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


def copy(source: Path, path: Path) -> int:
    """The ``transactions`` table of ``source`` (opened read-only) copied to a new DuckDB file."""
    import duckdb

    with duckdb.connect(str(path)) as connection:
        connection.execute("ATTACH ? AS source (READ_ONLY)", [str(source)])
        connection.execute("CREATE TABLE transactions AS SELECT * FROM source.transactions")
        connection.execute("DETACH source")
        return int(connection.execute("SELECT count(*) FROM transactions").fetchone()[0])


def _timed(steps: list[Step], name: str, work: Callable[[], object]) -> object:
    start = _memory.resident()
    _memory.reset_peak()
    began = time.perf_counter()
    result = work()
    steps.append((name, time.perf_counter() - began, start / MB, _memory.peak() / MB))
    return result


def _found(reasons: pd.DataFrame) -> Found:
    return {reason: (int(rows), int(example)) for reason, rows, example in zip(
        reasons["reason"], reasons["rows"], reasons["example"], strict=True)}  # fmt: skip


def _pandas(url: str, folder: Path, memory: str | None) -> tuple[list[Step], Found]:
    import cvalue as cv

    steps: list[Step] = []
    columns = cv.Columns(**ROLES)
    frame = _timed(steps, "read", lambda: cv.read_transactions(url, table="transactions",
                                                                columns=columns))  # fmt: skip
    validated = _timed(
        steps, "validate", lambda: cv.validate_transactions(frame, columns, max_date=MAX_DATE)
    )
    return steps, _found(validated.report.reasons)  # type: ignore[attr-defined]


def _sql(url: str, folder: Path, memory: str | None) -> tuple[list[Step], Found]:
    import sqlalchemy as sa

    import cvalue as cv
    from cvalue.io import sql_validate_transactions, write_rejected

    steps: list[Step] = []
    columns = cv.Columns(**ROLES)
    engine = sa.create_engine(url)
    if memory is not None:  # one setting for the database's every connection, as the job does
        with engine.connect() as connection:
            connection.exec_driver_sql("SET memory_limit = ?", (memory,))
            connection.exec_driver_sql("SET preserve_insertion_order = false")
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
    return steps, _found(result.report.reasons)  # type: ignore[attr-defined]


METHODS = {"pandas": _pandas, "before": _sql, "sql": _sql}


def _worker(
    method: str, url: str, folder: str, options: dict[str, str | None], queue: multiprocessing.Queue
) -> None:
    if method == "before":  # this process has imported no cvalue yet: the other one comes first
        sys.path.insert(0, str(options["before"]))
    try:
        queue.put(METHODS[method](url, Path(folder), options["memory"]))
    except BaseException as exc:  # handed to the parent, which would otherwise wait forever
        queue.put(RuntimeError(f"{method} failed: {exc!r}"))
        raise


def run_method(
    method: str, url: str, folder: Path, options: dict[str, str | None]
) -> tuple[list[Step], Found]:
    """The method in a fresh process (spawned: no memory inherited from this one)."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_worker, args=(method, url, str(folder), options, queue))
    process.start()
    outcome = queue.get()
    process.join()
    if isinstance(outcome, Exception):
        raise outcome
    return outcome  # type: ignore[no-any-return]


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--before", type=Path, help="another checkout's src folder")
    parser.add_argument("--methods", default="pandas,before,sql")
    parser.add_argument("--memory-limit", help="DuckDB's memory_limit, e.g. 1GB")
    parser.add_argument("--copy-from", type=Path, help="a DuckDB file with a transactions table")
    arguments = parser.parse_args()
    arguments.methods = [name for name in arguments.methods.split(",")
                         if name != "before" or arguments.before is not None]  # fmt: skip
    return arguments


def _best(runs: list[tuple[list[Step], Found]]) -> list[Step]:
    """Each step's best run (the machine may be shared)."""
    return [min(step, key=lambda measured: measured[1])
            for step in zip(*(run[0] for run in runs), strict=True)]  # fmt: skip


def main() -> None:
    arguments = _arguments()
    options = {"before": str(arguments.before), "memory": arguments.memory_limit}
    with tempfile.TemporaryDirectory(prefix="cvalue-bench-") as folder:
        path = Path(folder) / "crm.duckdb"
        began = time.perf_counter()
        if arguments.copy_from is not None:
            n_rows = copy(arguments.copy_from, path)
            made = f"copied from {arguments.copy_from}"
        else:
            n_rows, made = build(arguments.customers, path), "built"
        print(f"{arguments.customers:,} customers, {n_rows:,} transactions ({made} in "
              f"{time.perf_counter() - began:.0f} s); DuckDB memory limit: "
              f"{arguments.memory_limit or 'default'}\n")  # fmt: skip
        runs: dict[str, list[tuple[list[Step], Found]]] = {name: [] for name in arguments.methods}
        for _ in range(arguments.repeat):
            for method in arguments.methods:
                runs[method].append(run_method(method, f"duckdb:///{path}", Path(folder), options))
        _print(arguments.methods, {method: _best(found) for method, found in runs.items()},
               {method: found[0][1] for method, found in runs.items()})  # fmt: skip


def _print(methods: list[str], steps: dict[str, list[Step]], found: dict[str, Found]) -> None:
    print(f"{'method':<8} {'step':<20} {'seconds':>8} {'start MB':>9} {'peak MB':>8}")
    for method in methods:
        for step, seconds, start, peak in steps[method]:
            print(f"{method:<8} {step:<20} {seconds:8.2f} {start:9.0f} {peak:8.0f}")
    if "before" in steps and "sql" in steps:
        print(f"\n{'step':<20} {'before s':>9} {'sql s':>8} {'speed-up':>9}")
        for old, new in zip(steps["before"], steps["sql"], strict=True):
            print(f"{new[0]:<20} {old[1]:9.2f} {new[1]:8.2f} {old[1] / new[1]:8.1f}x")
        same = found["before"] == found["sql"]
        print(f"before and sql: same rows and examples by reason: {'yes' if same else 'NO'}")
    if "pandas" in steps and "sql" in steps:
        pandas = steps["pandas"][0][1] + steps["pandas"][1][1]
        print(f"read + validate (pandas) / report (sql): {pandas / steps['sql'][0][1]:.1f}x")
        rows = [{reason: rows for reason, (rows, _) in found[method].items()}
                for method in ("pandas", "sql")]  # fmt: skip
        print(f"same rows by reason: {'yes' if rows[0] == rows[1] else 'NO'} {rows[1]}")


if __name__ == "__main__":
    main()
