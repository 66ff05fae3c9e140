"""Benchmark: the chunked job's surveys by value tier, read into pandas or counted in the database.

Run on a DuckDB base that a chunked job has scored into ``customer_value`` (``bench_scale``'s
base and the job's config, the scores written to the same file): the survey step alone, as the
job runs it before the swap, each way in a fresh process.

- ``pandas``: the answers read whole, their customers' tiers and values looked up in the scores
  in batches of ids, the tables computed in pandas (the path of scores written elsewhere);
- ``database``: the survey joined to the scores in the database, only counts read back.

Each path runs twice: once for the wall seconds and the growth of the resident memory (Linux
VmHWM above VmRSS before the step, DuckDB's buffers included), once under ``tracemalloc`` for
the Python allocations' peak. The scores' tiers are ranked again first (untimed).

Run: ``python benchmarks/bench_surveys_chunked.py --database crm.duckdb --config cvalue.toml``
(the database is written to: use a copy).
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
import tracemalloc
from pathlib import Path
from typing import Any

import _memory
import pandas as pd
import sqlalchemy as sa

MIB = 2**20
PATHS = ("pandas", "database")


def _step(path: str, database: Path, config_path: Path, traced: bool) -> dict[str, Any]:
    from cvalue.config import load_config
    from cvalue.io import engine_for
    from cvalue.io.sqlkit import table_columns
    from cvalue.job._files import bound_duckdb
    from cvalue.job._run import horizon_label
    from cvalue.job._surveys import (
        SurveyTable,
        answering_customers,
        survey_source,
        surveys_by_tier,
        surveys_in_database,
    )
    from cvalue.segments.in_table import tiers_in_table

    url = f"duckdb:///{database}"
    config = load_config(config_path, environ={"CVALUE_DEMO_DATABASE_URL": url})
    longest = max(config.value.horizons, key=lambda horizon: horizon.days)
    value = f"clv_{horizon_label(longest)}"
    with engine_for(url, read_only=False) as engine, engine.begin() as connection:
        bound_duckdb(connection, config)
        types = table_columns(connection, "customer_value", None)
        table = sa.Table("customer_value", sa.MetaData(),
                         *(sa.Column(name, kind) for name, kind in types.items()))  # fmt: skip
        run_id = connection.execute(sa.select(table.c.run_id).limit(1)).scalar_one()
        where = table.c.run_id == run_id
        tiers = tiers_in_table(connection, table, value=value, tier="value_tier",
                               cuts=config.segments.tiers, where=where)  # fmt: skip
        _memory.reset_peak()
        before = _memory.resident()
        if traced:
            tracemalloc.start()
        started = time.perf_counter()
        source = survey_source(config, engine)
        if path == "database":
            assert isinstance(source, SurveyTable)
            found = surveys_in_database(connection, source, table, value=value, where=where,
                                        scored_is_text=False, tiers=tiers)  # fmt: skip
            assert found is not None, "the counts showed a problem"
        else:
            from cvalue.job._read import _surveys

            answers = _surveys(config, engine)
            assert answers is not None
            customers = answering_customers(connection, table, answers["customer_id"],
                                            value=value, where=where)  # fmt: skip
            found = surveys_by_tier(answers, customers, tiers)
        seconds = time.perf_counter() - started
        traced_peak = tracemalloc.get_traced_memory()[1] if traced else 0
        tracemalloc.stop()
        return {"seconds": seconds, "rss_growth": _memory.peak() - before,
                "python_peak": traced_peak, "tables": found}  # fmt: skip


def _in_process(path: str, database: Path, config: Path, traced: bool) -> dict[str, Any]:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_step, (path, database, config, traced))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", type=Path, required=True)
    parser.add_argument("--config", type=Path, required=True)
    arguments = parser.parse_args()
    rows, tables = [], {}
    for path in PATHS:
        timed = _in_process(path, arguments.database, arguments.config, traced=False)
        traced = _in_process(path, arguments.database, arguments.config, traced=True)
        tables[path] = timed["tables"]
        rows.append({"path": path, "seconds": round(timed["seconds"], 2),
                     "resident growth MiB": round(timed["rss_growth"] / MIB),
                     "Python peak MiB": round(traced["python_peak"] / MIB, 1)})  # fmt: skip
    for metric, expected in tables["pandas"].items():
        pd.testing.assert_frame_equal(tables["database"][metric], expected, rtol=1e-9)
    print(pd.DataFrame(rows).to_string(index=False))
    print("the two paths' tables are equal (rtol 1e-9)")


if __name__ == "__main__":
    main()
