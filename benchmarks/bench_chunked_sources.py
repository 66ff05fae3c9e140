"""Benchmark: the chunked job's report extras and file sources, at one base size.

The chunked job (``[run] chunk_customers``) on the demo's base (``bench_scale``'s, built in
chunks into a DuckDB file), each run in a fresh process (its peak resident memory its own, Linux
VmHWM), with its stages' seconds:

- ``table``: the demo's tables, surveys by value tier included, with the report (so the tracking
  table is counted in the database: the ``tracking`` stage);
- ``table, no surveys``: the same without ``[source.surveys]``, for what the surveys add;
- ``parquet`` and ``csv``: every table read from a file (written from the base, untimed),
  through the views of a scratch DuckDB.

The scores go to the base's DuckDB file in every run. Wall seconds are the job's own (imports
excluded).

Run: ``python benchmarks/bench_chunked_sources.py --customers 1000000``
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import _memory
import bench_scale
import pandas as pd

GIB = 2**30
TABLES = ("transactions", "customers", "service_contacts", "surveys")
RUNS = (("table", "table", True), ("table, no surveys", "table", False),
        ("parquet", "parquet", True), ("csv", "csv", True))  # fmt: skip


def _config_text(database: Path, folder: Path, source: str, has_surveys: bool) -> str:
    from cvalue.cli import DEMO_CONFIG

    text = DEMO_CONFIG.format(database=database, config=folder / "cvalue.toml",
                              observation_end=bench_scale.OBSERVATION_END)  # fmt: skip
    if not has_surveys:
        text = text.replace('[source.surveys]\ntable = "surveys"\n', "", 1)
    if source != "table":
        for name in TABLES:
            text = text.replace(f'table = "{name}"', f'file = "{folder / name}.{source}"', 1)
    return text + "\n[run]\nchunk_customers = 250000\n"


def _export(database: Path, folder: Path) -> None:
    """The base's tables as Parquet and CSV files (DuckDB writes them)."""
    import duckdb

    with duckdb.connect(str(database), read_only=True) as connection:
        for name in TABLES:
            for kind in ("parquet", "csv"):
                path = folder / f"{name}.{kind}"
                if not path.exists():
                    relation = connection.table(name)
                    if kind == "parquet":
                        relation.write_parquet(str(path))
                    else:
                        relation.write_csv(str(path))


def _job(config_path: str, url: str, report: str) -> dict[str, Any]:
    from cvalue.config import load_config
    from cvalue.job import run

    environ = {bench_scale.URL_VARIABLE: url}
    config = load_config(Path(config_path), environ=environ)
    _memory.reset_peak()
    started = time.perf_counter()
    result = run(config, environ=environ, report_path=Path(report))
    seconds = time.perf_counter() - started
    return {"wall s": seconds, "peak GiB": _memory.peak() / GIB, **{
        f"{stage} s": value for stage, value in result.timings.items()},
        "surveys": ",".join(result.surveys_by_value), "customers": result.in_database.n_customers}  # type: ignore[union-attr]  # fmt: skip


def _worker(queue: Any, *args: str) -> None:
    queue.put(_job(*args))


def _in_process(*args: str) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_worker, args=(queue, *args))
    process.start()
    found: dict[str, Any] = queue.get()
    process.join()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--folder", type=Path, default=Path(tempfile.gettempdir()) / "cvalue-bench")
    parser.add_argument("--runs", default=",".join(name for name, _, _ in RUNS),
                        help="the runs to make, by name, comma-separated")  # fmt: skip
    arguments = parser.parse_args()
    folder: Path = arguments.folder
    folder.mkdir(exist_ok=True)
    database, _ = bench_scale._base(folder, arguments.customers, 250_000)
    files = folder / f"files_{arguments.customers}"
    files.mkdir(exist_ok=True)
    _export(database, files)
    rows = {}
    for name, source, has_surveys in RUNS:
        if name not in arguments.runs.split(","):
            continue
        config = files / f"{name.replace(', ', '_').replace(' ', '_')}.toml"
        config.write_text(_config_text(database, files, source, has_surveys))
        rows[name] = _in_process(str(config), f"duckdb:///{database}", str(files / "report.html"))
        print(name, rows[name], flush=True)
    table = pd.DataFrame(rows).T
    print(table.to_string(float_format=lambda value: f"{value:,.2f}"))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
