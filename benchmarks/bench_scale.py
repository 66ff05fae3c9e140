"""Benchmark: ``cvalue score`` at 1M, 3M and 10M customers, one row per (path, size), side by side.

Issue 16's scale targets: peak resident memory at 10M customers below 2 GiB and flat within
±20 % from 1M to 10M, time linear in the customers (10M at most ten times 1M), and 1M customers
end to end within 35 s. Two tables:

1. **The job.** For each size, the base is built once: ``cvalue.datasets.make_crm`` drawn in
   chunks of ``--chunk`` customers (seeds 0, 1, 2, ... ; the customer and order ids shifted to
   stay unique), each chunk appended to the demo's tables (``customers``, ``transactions``,
   ``service_contacts``, ``surveys``) of a DuckDB file as it comes, so that building 10M
   customers holds one chunk in memory. Each path then runs ``cvalue score`` with the demo's
   configuration (``cvalue.cli.DEMO_CONFIG``: auto model choice on a 26-week holdout, CLV at 3
   and 5 years, segments, write-back, report) as a separate process:
   ``python benchmarks/_memory.py PEAK_FILE -m cvalue score --config ... --json``, so that the
   peak is the job's own (Linux VmHWM of that process). "tree GiB" is the largest summed resident
   memory of the job's process and all its children, sampled every ``--sample`` seconds (what a
   Dask cluster's workers add). Wall seconds include the interpreter's start and imports; "CPU s"
   are the job's user and system seconds (its threads and waited children added up), which
   other processes on a shared machine disturb less than the wall time.
   "one row per customer" counts the scores table against the ``customers`` table.
2. **The summary step.** On each base, ``cvalue.sql_rfm_summary`` pushed into DuckDB (and into
   PostgreSQL with ``--postgres-url``, the transactions copied there first, untimed) against
   reading the rows into pandas and ``cvalue.rfm_summary``; each in a fresh process, with its
   seconds, its CPU seconds (the worker's own user and system time: in PostgreSQL's row, the
   client's only, not the server's), its peak resident memory, and whether its result equals the
   pandas one.

The paths: ``memory`` is the job with the whole base in memory; ``chunked`` the same job with
``[run] chunk_customers`` and ``[run] duckdb_memory`` (``--chunk-customers``,
``--duckdb-memory``; the demo's whole configuration, surveys by value tier included);
``dask`` the job on a LocalCluster of 2 worker processes (``[run] engine = "dask"``), reading
the same base from Parquet, without the surveys, which it does not read yet. To add a path,
give its ``JobPath`` a ``configure`` function that turns the demo's configuration into the
path's own. ``--paths`` with no names runs no job: the summary table only (the job is
benchmarked on its own).

Run: ``pip install -e ".[bench]" && python benchmarks/bench_scale.py --customers 1000000``;
the summary table only, in DuckDB and PostgreSQL, on a kept base:
``python benchmarks/bench_scale.py --customers 3500000 --paths --keep BASES
--postgres-url postgresql+psycopg://USER@HOST:PORT/DB``
"""

from __future__ import annotations

import argparse
import io
import math
import multiprocessing
import os
import resource
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import _memory
import pandas as pd

SEED = 0
OBSERVATION_END = "2024-12-31"
URL_VARIABLE = "CVALUE_DEMO_DATABASE_URL"
DEMO_TABLES = ("customers", "transactions", "service_contacts", "surveys")
SUMMARY_COLUMNS = ("customer_id", "timestamp", "amount", "is_return")
SCORES_TABLE = "customer_value"
GIB = 2**30


@dataclass(frozen=True)
class JobPath:
    """One way of running ``cvalue score``: its input and how it changes the demo's config."""

    name: str
    source: Literal["duckdb", "parquet"]
    configure: Callable[[str, Path], str] | None  # (demo config, base folder) -> config; None: none
    description: str


CHUNK_CUSTOMERS = 100_000  # the chunked path's [run] chunk_customers (--chunk-customers)
DUCKDB_MEMORY = "512MB"  # the chunked path's [run] duckdb_memory (--duckdb-memory)
_SURVEYS = '[source.surveys]\ntable = "surveys"\n'


def _chunked(text: str, _: Path) -> str:
    """The demo's whole configuration scored chunk by chunk."""
    return text + (
        f'\n[run]\nchunk_customers = {CHUNK_CUSTOMERS}\nduckdb_memory = "{DUCKDB_MEMORY}"\n'
    )


DASK_WORKERS = 2


def _dask(text: str, folder: Path) -> str:
    """The demo's configuration on Dask: the tables read from Parquet in ``folder``.

    Without the surveys, which the Dask job does not read yet; the scores go to the demo's
    database, as the other paths' do.
    """
    assert _SURVEYS in text
    text = text.replace(_SURVEYS, "")
    for name in ("transactions", "customers", "service_contacts"):
        text = text.replace(f'table = "{name}"', f'file = "{folder / name}.parquet"', 1)
    return text + f'\n[run]\nengine = "dask"\ndask_workers = {DASK_WORKERS}\n'


def _dask_database(text: str, _: Path) -> str:
    """The demo's configuration on Dask, its tables read from the demo's DuckDB file by ranges
    of customer ids (the workers open it read-only; the scores go back to it)."""
    assert _SURVEYS in text
    return text.replace(_SURVEYS, "") + f'\n[run]\nengine = "dask"\ndask_workers = {DASK_WORKERS}\n'


PATHS = {
    "memory": JobPath("memory", "duckdb", lambda text, _: text, "today's job, base in memory"),
    "chunked": JobPath(
        "chunked",
        "duckdb",
        _chunked,
        "[run] chunk_customers: validation, summary, patterns and tiers in the database, "
        "customers scored a chunk at a time (the demo's whole configuration)",
    ),
    "dask": JobPath(
        "dask",
        "parquet",
        _dask,
        '[run] engine = "dask": a LocalCluster of 2 worker processes reads the base from Parquet '
        "(the demo's configuration without surveys)",
    ),
    "dask_database": JobPath(
        "dask_database",
        "duckdb",
        _dask_database,
        '[run] engine = "dask": a LocalCluster of 2 worker processes reads the demo\'s DuckDB '
        "tables by ranges of customer ids (the demo's configuration without surveys)",
    ),
}


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


# --- the bases ---------------------------------------------------------------------------------


def _chunks(n_customers: int, chunk: int) -> Iterator[dict[str, pd.DataFrame]]:
    """The demo's tables, ``chunk`` customers at a time, with ids unique across chunks."""
    from cvalue.datasets import make_crm

    next_order = 0
    for number, first in enumerate(range(0, n_customers, chunk)):
        crm = make_crm(
            min(chunk, n_customers - first), seed=SEED + number, observation_end=OBSERVATION_END
        )
        customers = crm.customers.reset_index()
        transactions = crm.transactions.assign(
            customer_id=crm.transactions["customer_id"] + first,
            order_id=crm.transactions["order_id"] + next_order,
        )
        next_order += int(crm.transactions["order_id"].max())
        yield {
            "customers": customers.assign(customer_id=customers["customer_id"] + first),
            "transactions": transactions,
            "service_contacts": crm.service_contacts.assign(
                customer_id=crm.service_contacts["customer_id"] + first
            ),
            "surveys": crm.surveys.assign(customer_id=crm.surveys["customer_id"] + first),
        }


def _build(database: Path, n_customers: int, chunk: int) -> tuple[float, int]:
    """Write the base into a new DuckDB file chunk by chunk; its seconds and peak memory."""
    import duckdb

    started = time.perf_counter()
    with duckdb.connect(str(database)) as connection:
        for number, tables in enumerate(_chunks(n_customers, chunk)):
            for name, frame in tables.items():
                relation = connection.from_df(frame)
                if number == 0:
                    relation.create(name)
                else:
                    relation.insert_into(name)
    return time.perf_counter() - started, _memory.peak()


def _row_counts(database: Path, tables: tuple[str, ...] = DEMO_TABLES) -> dict[str, int]:
    import duckdb

    with duckdb.connect(str(database), read_only=True) as connection:
        names = {row[0] for row in connection.execute("SHOW TABLES").fetchall()}
        return {name: len(connection.table(name)) for name in tables if name in names}


def _base(folder: Path, n_customers: int, chunk: int) -> tuple[Path, dict[str, int]]:
    """The base of ``n_customers``: reused from ``folder`` when it is there, else built now."""
    database = folder / f"crm_{n_customers}.duckdb"
    if database.exists() and _row_counts(database).get("customers") == n_customers:
        print(f"reusing {database}", flush=True)
        return database, _row_counts(database)
    for stale in (database, database.with_name(database.name + ".wal")):
        stale.unlink(missing_ok=True)
    seconds, peak = _in_worker(_build, database, n_customers, chunk)
    print(f"built {database} in {seconds:,.1f} s, peak {peak / GIB:.2f} GiB", flush=True)
    return database, _row_counts(database)


def _parquet(database: Path) -> Path:
    """The base's tables as Parquet files beside the DuckDB file (for the Dask path)."""
    import duckdb

    folder = database.with_suffix(".parquet")
    folder.mkdir(exist_ok=True)
    with duckdb.connect(str(database), read_only=True) as connection:
        for name in DEMO_TABLES:
            if not (folder / f"{name}.parquet").exists():
                connection.table(name).write_parquet(str(folder / f"{name}.parquet"))
    return folder


# --- 1. the job --------------------------------------------------------------------------------


def _watch(process: subprocess.Popen[bytes], every: float, limit: float) -> tuple[int, bool]:
    """The largest summed resident memory of ``process`` and its children until it ends.

    The process is killed when that sum passes ``limit`` bytes, so that a run that does not fit
    stops before the machine's other processes run out of memory; the flag says so.
    """
    largest = 0
    while process.poll() is None:
        largest = max(largest, _memory.tree_resident(process.pid))
        if largest > limit:
            process.kill()
            process.wait()
            return largest, True
        time.sleep(every)
    return largest, False


def _scores_check(database: Path, n_customers: int) -> str:
    """Rows and distinct customers of the scores table, against the customers of the base."""
    import duckdb

    with duckdb.connect(str(database), read_only=True) as connection:
        counted = connection.table(SCORES_TABLE).aggregate("count(*), count(DISTINCT customer_id)")
        ((rows, distinct),) = counted.fetchall()
    verdict = "yes" if rows == distinct == n_customers else "NO"
    return f"{verdict} ({rows:,} rows, {distinct:,} ids)"


def _config(
    configure: Callable[[str, Path], str], source: str, database: Path, folder: Path
) -> Path:
    """The path's configuration file: the demo's, turned into the path's own."""
    from cvalue.cli import DEMO_CONFIG

    config = folder / "cvalue.toml"
    demo = DEMO_CONFIG.format(database=database, config=config, observation_end=OBSERVATION_END)
    base_folder = _parquet(database) if source == "parquet" else database.parent
    config.write_text(configure(demo, base_folder))
    return config


def _children_cpu() -> float:
    """User and system seconds of this process's children that have ended (and been waited)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run(config: Path, database: Path, every: float, limit: float) -> dict[str, Any]:
    """``cvalue score`` in a separate process: wall seconds, peak bytes, and a problem if any."""
    folder = config.parent
    peak_file = folder / "peak_bytes"
    peak_file.unlink(missing_ok=True)
    runner = Path(__file__).with_name("_memory.py")
    command = [sys.executable, str(runner), str(peak_file), "-m", "cvalue", "score"]
    command += ["--config", str(config), "--json"]
    environ = {**os.environ, URL_VARIABLE: f"duckdb:///{database}"}
    with (folder / "stdout.json").open("wb") as out, (folder / "stderr.txt").open("wb") as err:
        cpu_before = _children_cpu()
        started = time.perf_counter()
        process = subprocess.Popen(command, env=environ, cwd=folder, stdout=out, stderr=err)
        tree, is_stopped = _watch(process, every, limit)
        wall = time.perf_counter() - started
        cpu = _children_cpu() - cpu_before
    if is_stopped:
        stopped = f"stopped: above --stop-above after {wall:,.0f} s"
        return {"tree GiB": tree / GIB, "problem": stopped}
    if process.returncode != 0:
        return {"wall s": wall, "problem": f"FAILED (exit {process.returncode}, see {err.name})"}
    peak = int(peak_file.read_text())
    return {"wall s": wall, "CPU s": cpu, "peak RSS GiB": peak / GIB, "tree GiB": tree / GIB}


def _score(
    path: JobPath, database: Path, rows: dict[str, int], every: float, limit: float
) -> dict[str, Any]:
    """Run ``cvalue score`` on the base through ``path``; one row of the table."""
    n_customers = rows["customers"]
    row: dict[str, Any] = {
        "path": path.name,
        "customers": n_customers,
        "transactions": rows["transactions"],
    }
    if path.configure is None:
        return {**row, "one row per customer": "not implemented yet"}
    folder = database.parent / f"{path.name}_{n_customers}"
    folder.mkdir(exist_ok=True)
    config = _config(path.configure, path.source, database, folder)
    measured = _run(config, database, every, limit)
    if "problem" in measured:
        problem = measured.pop("problem")
        return {**row, **measured, "one row per customer": problem}
    return {
        **row,
        **measured,
        "s per 1M customers": measured["wall s"] / (n_customers / 1e6),
        "one row per customer": _scores_check(database, n_customers),
    }


def _scores_fingerprint(database: Path) -> tuple[object, ...]:
    """The scores table's rows, total 5-year CLV and run ids: equal only for the same table."""
    import duckdb

    with duckdb.connect(str(database), read_only=True) as connection:
        table = connection.table(SCORES_TABLE)
        found = table.aggregate("count(*), sum(clv_5y), min(run_id), max(run_id), max(scored_at)")
        ((rows, total, first, last, when),) = found.fetchall()
    return rows, total, first, last, when


def _kill_test(path: JobPath, database: Path, wall: float, fractions: list[float]) -> list[dict]:
    """Kill ``cvalue score`` (SIGKILL) at shares of a full run's wall time.

    The scores table must then be the previous one, whole, or (when the kill came after the
    commit) the new one, whole: never a mixture, never partial.
    """
    folder = database.parent / f"{path.name}_{_row_count(database)}"
    config = folder / "cvalue.toml"
    runner = Path(__file__).with_name("_memory.py")
    command = [sys.executable, str(runner), str(folder / "peak_bytes"), "-m", "cvalue", "score",
               "--config", str(config), "--json"]  # fmt: skip
    environ = {**os.environ, URL_VARIABLE: f"duckdb:///{database}"}
    rows = []
    for fraction in fractions:
        before = _scores_fingerprint(database)
        with (folder / "killed.txt").open("wb") as out:
            process = subprocess.Popen(command, env=environ, cwd=folder, stdout=out, stderr=out)
            try:
                process.wait(timeout=wall * fraction)
                finished = True
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                finished = False
        after = _scores_fingerprint(database)
        n_customers = _row_count(database)
        is_new_whole = after[0] == n_customers and after[2] == after[3] != before[2]
        verdict = ("the old one, whole" if _same_table(before, after) else
                   "a new one, whole (the kill came after the commit)" if is_new_whole else
                   f"BROKEN: {before} -> {after}")  # fmt: skip
        rows.append({
            "path": path.name, "customers": n_customers,
            "killed after s": round(wall * fraction, 1), "share of a run": fraction,
            "finished first": finished, "scores table": verdict,
        })  # fmt: skip
        print(rows[-1], flush=True)
    return rows


def _same_table(before: tuple[object, ...], after: tuple[object, ...]) -> bool:
    """The same rows, run and time; the CLV sums equal but for DuckDB's order of adding."""
    if before[:1] + before[2:] != after[:1] + after[2:]:
        return False
    return math.isclose(float(before[1]), float(after[1]), rel_tol=1e-12)  # type: ignore[arg-type]


def _row_count(database: Path) -> int:
    import duckdb

    with duckdb.connect(str(database), read_only=True) as connection:
        ((rows,),) = connection.table("customers").aggregate("count(*)").fetchall()
    return int(rows)


# --- 2. the summary step -----------------------------------------------------------------------


def _columns() -> Any:
    from cvalue.io.schema import Columns

    return Columns(is_return="is_return")


def _fingerprint(summary: pd.DataFrame) -> tuple[float, ...]:
    """Rows and column sums of a summary: equal summaries give equal fingerprints."""
    ordered = summary.sort_index()
    sums = [float(ordered[name].sum()) for name in ("frequency", "recency", "T", "monetary_value")]
    return (float(len(ordered)), *sums)


def _own_cpu() -> float:
    """User and system seconds of this process (all its threads) so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


Measured = tuple[float, float, int, tuple[float, ...]]  # seconds, CPU seconds, peak, fingerprint


def _summary_in_database(url: str) -> Measured:
    """``sql_rfm_summary`` as the job calls it: seconds, CPU seconds, peak bytes, fingerprint."""
    from cvalue.io.sql import sql_rfm_summary

    cpu, started = _own_cpu(), time.perf_counter()
    summary = sql_rfm_summary(
        url,
        table="transactions",
        columns=_columns(),
        observation_end=OBSERVATION_END,
        unit="week",
        grain="day",
    )
    seconds, cpu = time.perf_counter() - started, _own_cpu() - cpu
    return seconds, cpu, _memory.peak(), _fingerprint(summary)


def _summary_in_pandas(database: Path) -> Measured:
    """The rows read from DuckDB into pandas, then ``rfm_summary``: as ``_summary_in_database``."""
    import duckdb

    from cvalue.summary import rfm_summary

    cpu, started = _own_cpu(), time.perf_counter()
    with duckdb.connect(str(database), read_only=True) as connection:
        transactions = connection.table("transactions").select(*SUMMARY_COLUMNS).df()
    summary = rfm_summary(
        transactions, observation_end=OBSERVATION_END, unit="week", grain="day", columns=_columns()
    )
    seconds, cpu = time.perf_counter() - started, _own_cpu() - cpu
    return seconds, cpu, _memory.peak(), _fingerprint(summary)


def _copy_to_postgres(database: Path, url: str, batch: int = 1_000_000) -> float:
    """Copy the transactions' summary columns into a new PostgreSQL table; the seconds."""
    import duckdb
    import psycopg
    import psycopg.sql

    started = time.perf_counter()
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    columns = psycopg.sql.SQL(", ").join(map(psycopg.sql.Identifier, SUMMARY_COLUMNS))
    copying = psycopg.sql.SQL("COPY transactions ({}) FROM STDIN (FORMAT csv)").format(columns)
    with psycopg.connect(dsn) as target, duckdb.connect(str(database), read_only=True) as source:
        target.execute("DROP TABLE IF EXISTS transactions")
        target.execute(
            'CREATE TABLE transactions (customer_id bigint, "timestamp" timestamp, '
            "amount double precision, is_return boolean)"
        )
        reader = source.table("transactions").select(*SUMMARY_COLUMNS).to_arrow_reader(batch)
        with target.cursor().copy(copying) as copy:
            for record_batch in reader:
                text = io.StringIO()
                record_batch.to_pandas().to_csv(text, header=False, index=False)
                copy.write(text.getvalue())
        target.execute("ANALYZE transactions")
    return time.perf_counter() - started


def _summary_rows(database: Path, rows: dict[str, int], postgres_url: str | None) -> list[dict]:
    """The summary step on one base: in DuckDB, in PostgreSQL (if given) and in pandas."""
    measured = {
        "pandas (read rows + rfm_summary)": _in_worker(_summary_in_pandas, database),
        "sql_rfm_summary in DuckDB": _in_worker(_summary_in_database, f"duckdb:///{database}"),
    }
    if postgres_url is not None:
        copy_seconds = _in_worker(_copy_to_postgres, database, postgres_url)
        print(
            f"copied {rows['transactions']:,} transactions into PostgreSQL in "
            f"{copy_seconds:,.1f} s (not counted)",
            flush=True,
        )
        measured["sql_rfm_summary in PostgreSQL"] = _in_worker(_summary_in_database, postgres_url)
    reference = measured["pandas (read rows + rfm_summary)"][3]
    return [
        {
            "transactions": rows["transactions"],
            "customers": rows["customers"],
            "where": name,
            "seconds": seconds,
            "CPU s": cpu,
            "peak RSS GiB": peak / GIB,
            "equals pandas": _same(fingerprint, reference),
        }
        for name, (seconds, cpu, peak, fingerprint) in measured.items()
    ]


def _same(left: tuple[float, ...], right: tuple[float, ...]) -> str:
    pairs = zip(left, right, strict=True)
    is_same = all(math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6) for a, b in pairs)
    return "yes" if is_same else f"NO {left} vs {right}"


# --- the run -----------------------------------------------------------------------------------


def _show(title: str, rows: list[dict[str, Any]]) -> None:
    table = pd.DataFrame(rows)
    for name in ("customers", "transactions"):
        if name in table:
            table[name] = table[name].map("{:,}".format)
    print(f"\n{title}\n" + table.to_string(index=False, na_rep="", float_format="{:,.2f}".format))


def _options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--customers", type=int, nargs="+", default=[1_000_000, 3_000_000, 10_000_000]
    )
    parser.add_argument(
        "--paths",
        nargs="*",
        choices=sorted(PATHS),
        default=list(PATHS),
        help="the job's paths to run (default: all); none (a bare --paths): the summary table only",
    )
    parser.add_argument(
        "--keep",
        type=Path,
        default=None,
        help="a folder to keep the bases in (and reuse them from)",
    )
    parser.add_argument("--chunk", type=int, default=250_000, help="customers drawn at a time")
    parser.add_argument(
        "--chunk-customers",
        type=int,
        default=CHUNK_CUSTOMERS,
        help="the chunked path's [run] chunk_customers",
    )
    parser.add_argument(
        "--duckdb-memory",
        default=DUCKDB_MEMORY,
        help="the chunked path's [run] duckdb_memory",
    )
    parser.add_argument(
        "--postgres-url",
        default=None,
        help="a PostgreSQL URL for the summary table (its 'transactions' table is replaced)",
    )
    parser.add_argument("--sample", type=float, default=0.2, help="seconds between samples")
    parser.add_argument("--no-summary", action="store_true", help="the job's table only")
    parser.add_argument(
        "--kill",
        type=float,
        nargs="*",
        default=[],
        help="after each path's run, run it again and kill it (SIGKILL) at these shares of its "
        "wall time; then check that the previous scores table is whole",
    )
    parser.add_argument(
        "--stop-above",
        type=float,
        default=math.inf,
        help="GiB: kill a job whose processes hold more (shared machines)",
    )
    return parser.parse_args()


def main() -> None:
    global CHUNK_CUSTOMERS, DUCKDB_MEMORY  # the chunked path's configuration reads them
    options = _options()
    CHUNK_CUSTOMERS, DUCKDB_MEMORY = options.chunk_customers, options.duckdb_memory
    job_rows: list[dict[str, Any]] = []
    summary_rows: list[dict[str, Any]] = []
    kill_rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as name:
        folder = options.keep or Path(name)
        folder.mkdir(parents=True, exist_ok=True)
        for n_customers in options.customers:
            database, rows = _base(folder, n_customers, options.chunk)
            for path in options.paths:
                job_rows.append(
                    _score(PATHS[path], database, rows, options.sample, options.stop_above * GIB)
                )
                print(job_rows[-1], flush=True)
                if options.kill and "wall s" in job_rows[-1]:
                    wall = float(job_rows[-1]["wall s"])
                    kill_rows += _kill_test(PATHS[path], database, wall, options.kill)
            if not options.no_summary:
                summary_rows += _summary_rows(database, rows, options.postgres_url)
                print(*summary_rows[-3:], sep="\n", flush=True)
    if job_rows:
        _show("cvalue score (demo configuration), one process per run", job_rows)
    for path in options.paths:
        print(f"  {path}: {PATHS[path].description}")
    if kill_rows:
        _show("cvalue score killed mid-run (SIGKILL): which scores table is left",
              kill_rows)  # fmt: skip
    if summary_rows:
        _show("the summary step, each in a fresh process", summary_rows)


if __name__ == "__main__":
    main()
