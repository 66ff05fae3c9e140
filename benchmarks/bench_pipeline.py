"""Benchmark: ``cvalue score`` end to end on a synthetic DuckDB CRM, with time and memory per stage.

Three steps, each in a fresh worker process so that its peak memory is its own:

1. **Build** the CRM: ``cvalue.datasets.make_crm`` (the demo's data) stored in a DuckDB file with
   the demo's tables (``customers``, ``transactions``, ``service_contacts``, ``surveys``), by
   ``cvalue demo``'s own writer (DuckDB's bulk load). ``--database FILE`` keeps the file and
   reuses it on the next run.
2. **Score**: the demo's configuration (``cvalue.cli.DEMO_CONFIG``: auto model choice on a 26-week
   holdout, CLV at 3 and 5 years, segments, write-back, report) run through ``cvalue.job.run``,
   the code path of ``cvalue score``. Each stage's seconds come from ``JobResult.timings``;
   "start MB" is the worker's resident memory when the stage starts, "peak MB" its peak resident
   memory until the next stage starts (Linux VmHWM, reset at each stage's start; the untimed
   scores table built after "segments" counts there), "rise MB" the difference. "not in a stage"
   is the run's wall time that no stage timed.
3. **The limit** of the summary step: DuckDB's raw ``SELECT customer_id, count(*), min(ts),
   max(ts) ... GROUP BY customer_id`` on the same file, a hand-written per-day RFM summary in
   DuckDB SQL (returns left out, as the job does), and ``cvalue.sql_rfm_summary`` (what the job
   runs in the database), each best of ``--repeat``, results fetched into pandas.

Run: ``pip install -e ".[bench]" && python benchmarks/bench_pipeline.py --customers 100000``
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _memory
import pandas as pd

OBSERVATION_END = "2024-12-31"
SEED = 0
URL_VARIABLE = "CVALUE_DEMO_DATABASE_URL"
MEMORY_TARGET = 2 * 2**30
DUCKDB_GROUP_BY = """
SELECT customer_id, count(*) AS n, min("timestamp") AS first, max("timestamp") AS last
FROM transactions GROUP BY customer_id
"""
DUCKDB_PER_DAY = """
WITH per_day AS (
    SELECT customer_id, CAST("timestamp" AS DATE) AS day, SUM(amount) AS amount
    FROM transactions WHERE NOT is_return GROUP BY customer_id, CAST("timestamp" AS DATE)
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
DEMO_TABLES = ("customers", "transactions", "service_contacts", "surveys")


def _guarded(target: Callable[..., object], args: tuple[object, ...], queue: Any) -> None:
    """The worker's entry: put ``target(*args)`` on the queue, or its traceback as an error."""
    try:
        queue.put(target(*args))
    except BaseException:
        queue.put(RuntimeError(f"the worker failed:\n{traceback.format_exc()}"))


def _in_worker(target: Callable[..., object], *args: object) -> Any:
    """``target(*args)`` run in a fresh process, so that its peak memory is its own."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_guarded, args=(target, args, queue))
    process.start()
    result = queue.get()
    process.join()
    if isinstance(result, RuntimeError):
        raise result
    return result


# --- 1. the database ---------------------------------------------------------------------------


def _build(path: Path, n_customers: int) -> tuple[dict[str, float], int]:
    """Build the CRM with ``cvalue demo``'s own writer; its seconds and peak resident memory."""
    from cvalue.cli import _write_demo_database

    started = time.perf_counter()
    _write_demo_database(path, n_customers, SEED)
    return {"make_crm + DuckDB bulk load": time.perf_counter() - started}, _memory.peak()


def _row_counts(path: Path) -> dict[str, int]:
    """Rows of the demo's tables in the file."""
    import duckdb

    with duckdb.connect(str(path), read_only=True) as connection:
        return {name: len(connection.table(name)) for name in DEMO_TABLES}


# --- 2. the scoring job ------------------------------------------------------------------------


def _environ(database: Path) -> dict[str, str]:
    return {**os.environ, URL_VARIABLE: f"duckdb:///{database}"}


def _score(config_path: Path, database: Path) -> tuple[object, ...]:
    """The job's timings, memory by stage, wall time, memory after imports, customers, notes."""
    from cvalue.config import load_config
    from cvalue.job import run

    job = load_config(config_path, environ=_environ(database))
    peaks: list[int] = []
    starts: list[int] = []

    def progress(stage: str) -> None:
        peaks.append(_memory.peak())  # the peak of what ran since the last reset
        starts.append(_memory.resident())
        _memory.reset_peak()

    baseline = _memory.resident()
    _memory.reset_peak()
    started = time.perf_counter()
    result = run(job, environ=_environ(database), write=True, progress=progress)
    wall = time.perf_counter() - started
    peaks.append(_memory.peak())
    memory = pd.DataFrame({"start MB": starts, "peak MB": peaks[1:]}, index=list(result.timings))
    scored = len(result.scores) if result.scores is not None else 0
    return dict(result.timings), memory / 2**20, wall, baseline, scored, result.notes


# --- 3. the summary step's limit ---------------------------------------------------------------


def _best(call: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return min(times)


def _limits(config_path: Path, database: Path, repeat: int) -> dict[str, float]:
    """Best seconds of DuckDB's own GROUP BYs and of the job's summary call, on the same file."""
    import duckdb

    from cvalue.config import load_config
    from cvalue.io.sql import sql_rfm_summary

    with duckdb.connect(str(database), read_only=True) as connection:
        raw = _best(lambda: connection.execute(DUCKDB_GROUP_BY).df(), repeat)
        per_day = _best(lambda: connection.execute(DUCKDB_PER_DAY).df(), repeat)
    job = load_config(config_path, environ=_environ(database))
    summary = _best(lambda: sql_rfm_summary(  # the call the job makes (cvalue.job._summary)
        f"duckdb:///{database}", table=job.source.transactions.table,
        columns=job.source.transactions.columns(), observation_end=OBSERVATION_END,
        unit=job.summary.time_unit(), grain=job.summary.grain,
    ), repeat)  # fmt: skip
    return {"duckdb GROUP BY customer_id (count, min, max)": raw,
            "duckdb per-day RFM summary (hand-written SQL)": per_day,
            "cvalue.sql_rfm_summary (the job's summary)": summary}  # fmt: skip


# --- the tables --------------------------------------------------------------------------------


def _stage_table(timings: dict[str, float], memory: pd.DataFrame, wall: float) -> pd.DataFrame:
    """Seconds, share of the run and memory (MB) by stage, the untimed rest, and the total."""
    table = memory.assign(seconds=pd.Series(timings), rise=memory["peak MB"] - memory["start MB"])
    table = table.rename(columns={"rise": "rise MB"})
    table.loc["not in a stage", "seconds"] = max(wall - sum(timings.values()), 0.0)
    table["share"] = table["seconds"] / wall
    table.loc["total", ["seconds", "share", "peak MB"]] = [wall, 1.0, memory["peak MB"].max()]
    table.index.name = "stage"
    return table[["seconds", "share", "start MB", "peak MB", "rise MB"]]


def _show(table: pd.DataFrame) -> None:
    formats = {"share": lambda value: f"{value:.1%}"}
    print(table.to_string(formatters=formats, float_format=lambda value: f"{value:,.2f}",
                          na_rep=""))  # fmt: skip
    print()


def _prepare(options: argparse.Namespace, folder: Path) -> Path:
    """The database to score: the reused ``--database`` file, or one built now."""
    database = options.database or folder / "crm.duckdb"
    if database.exists():
        print(f"reusing {database} (delete it to rebuild)\n")
        return database
    database.parent.mkdir(parents=True, exist_ok=True)
    seconds, peak = _in_worker(_build, database, options.customers)
    build = pd.DataFrame({"seconds": pd.Series(seconds)})
    build.index.name = f"build ({options.customers:,} customers)"
    _show(build)
    print(f"build peak memory: {peak / 2**20:,.0f} MB\n")
    return database


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument(
        "--database",
        type=Path,
        default=None,
        help="a DuckDB file to reuse, or to build and keep if it does not exist",
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs of each GROUP BY (best)")
    options = parser.parse_args()
    from cvalue.cli import DEMO_CONFIG

    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        database = _prepare(options, folder)
        rows = _row_counts(database)
        print(pd.Series(rows, name="rows").to_string(), "\n")
        if rows["customers"] != options.customers:
            print(f"note: the file holds {rows['customers']:,} customers; --customers is ignored\n")
        config_path = folder / "cvalue.toml"
        config_path.write_text(DEMO_CONFIG.format(
            database=database, config=config_path, observation_end=OBSERVATION_END))  # fmt: skip
        timings, memory, wall, baseline, scored, notes = _in_worker(_score, config_path, database)
        _show(_stage_table(timings, memory, wall))
        peak = memory["peak MB"].max() * 2**20
        verdict = "below" if peak < MEMORY_TARGET else "ABOVE"
        print(f"customers scored: {scored:,}; {scored / wall:,.0f} customers/second")
        print(f"peak memory: {peak / 2**30:.2f} GiB ({verdict} the 2 GiB target; "
              f"{baseline / 2**20:,.0f} MB after imports)")  # fmt: skip
        for note in notes:
            print(f"note: {note}")
        print()
        limits = pd.DataFrame({"seconds": pd.Series(_in_worker(
            _limits, config_path, database, options.repeat))})  # fmt: skip
        limits.index.name = f"summary step, best of {options.repeat}"
        _show(limits)


if __name__ == "__main__":
    main()
