"""Benchmark: lifecycle flows and cohort tables in DuckDB, from events against from the panel.

A ``make_crm`` log (1M customers, about 6M transactions by default) is stored in a DuckDB file
once (as ``bench_last_states.py`` stores it); each method then runs in a fresh worker process
that opens the file, so that its peak memory is its own:

- ``flows-events``: ``sql_lifecycle_flows``, counted from each customer's events over the
  activity rows (``cvalue.lifecycle.sql_events``);
- ``flows-panel``: the same table from the customer x period panel of ``sql_lifecycle_states``
  (``_statement``), counted per period by state, as ``sql_lifecycle_flows`` did before;
- ``cohorts-events`` and ``cohorts-panel``: ``sql_cohort_retention`` likewise;
- ``both-one`` and ``both-two``: the flows and the cohorts from one statement
  (``sql_lifecycle_tables``) and from the two functions one after the other (a second table).

Both ways must give equal tables; the script checks it. "peak MB" is the rise of the worker's
peak resident memory during the call (Linux VmHWM after resetting it), which includes DuckDB's
buffers since it runs in the process. Times are the best of ``--repeat`` runs.

Run: ``python benchmarks/bench_lifecycle_events.py`` (``--customers 100000`` for a quick run,
``--period M``, ``--window 90D``).
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import _memory
import numpy as np
import pandas as pd
import sqlalchemy as sa
from bench_last_states import OBSERVATION_END, _options, store_log

SOURCE = {"table": "tx", "query": None, "schema": None}


def _panel_states(connection: sa.Connection, options: dict) -> tuple[sa.Subquery, int]:
    from cvalue.lifecycle.periods import _calendar
    from cvalue.lifecycle.sql import _statement

    return _statement(
        connection, SOURCE, rule=options["rule"], calendar=_calendar(options["period"]),
        columns=None, observation_end=options["observation_end"],
    )  # fmt: skip


def _flows_panel(engine: sa.Engine, options: dict) -> pd.DataFrame:
    """The flows as ``sql_lifecycle_flows`` counted them before: states per period."""
    from cvalue.io.sqlkit import fetch
    from cvalue.lifecycle.flows import _flows_frame
    from cvalue.lifecycle.periods import _calendar
    from cvalue.lifecycle.sql import _labels
    from cvalue.lifecycle.states import STATES

    with engine.connect() as connection:
        states, first = _panel_states(connection, options)
        counts = [
            sa.func.sum(sa.case((states.c.state == code, 1), else_=0)).label(name)
            for code, name in enumerate(STATES)
        ]
        statement = sa.select(
            states.c.period, *counts, sa.func.sum(states.c.is_new_loss).label("new_losses")
        ).group_by(states.c.period)
        rows = fetch(connection, statement)
    labels = _labels(first, int(rows["period"].max()), _calendar(options["period"]))
    position = rows["period"].to_numpy(dtype=np.int64) - first
    cells = np.zeros((len(labels), len(STATES)), dtype=np.int64)
    cells[position] = rows[list(STATES)].to_numpy(dtype=np.int64)
    new_losses = np.zeros(len(labels), dtype=np.int64)
    new_losses[position] = rows["new_losses"].to_numpy(dtype=np.int64)
    return _flows_frame(cells, new_losses, labels)


def _cohorts_panel(engine: sa.Engine, options: dict) -> object:
    """The cohort tables as ``sql_cohort_retention`` counted them before: panel rows by age."""
    from cvalue.io.sqlkit import fetch
    from cvalue.lifecycle.cohorts import _cohort_tables
    from cvalue.lifecycle.periods import _calendar
    from cvalue.lifecycle.sql import _labels
    from cvalue.lifecycle.states import LOST

    with engine.connect() as connection:
        states, first = _panel_states(connection, options)
        age = (states.c.period - states.c.first_period).label("age")
        statement = sa.select(
            states.c.first_period.label("cohort"), age, sa.func.count().label("customers"),
            sa.func.sum(sa.case((states.c.state != LOST, 1), else_=0)).label("active"),
            sa.func.sum(sa.case((states.c.ever_lost == 0, 1), else_=0)).label("survivors"),
        ).group_by(states.c.first_period, age)  # fmt: skip
        rows = fetch(connection, statement)
    labels = _labels(first, int((rows["cohort"] + rows["age"]).max()), _calendar(options["period"]))
    n = len(labels)
    cohort, ages = rows["cohort"].to_numpy(dtype=np.int64) - first, rows["age"].to_numpy(np.int64)
    dense = {}
    for name in ("active", "survivors"):
        dense[name] = np.zeros((n, n), dtype=np.int64)
        dense[name][cohort, ages] = rows[name].to_numpy(dtype=np.int64)
    sizes = np.zeros(n, dtype=np.int64)
    sizes[cohort[ages == 0]] = rows["customers"].to_numpy(dtype=np.int64)[ages == 0]
    return _cohort_tables(sizes, dense["active"], dense["survivors"], labels, min_customers=0,
                          stacklevel=2)  # fmt: skip


def _flows_events(engine: sa.Engine, options: dict) -> pd.DataFrame:
    from cvalue.lifecycle import sql_lifecycle_flows

    return sql_lifecycle_flows(engine, table="tx", **options)


def _cohorts_events(engine: sa.Engine, options: dict) -> object:
    from cvalue.lifecycle import sql_cohort_retention

    return sql_cohort_retention(engine, table="tx", min_customers=0, **options)


def _both_one(engine: sa.Engine, options: dict) -> object:
    from cvalue.lifecycle import sql_lifecycle_tables

    return sql_lifecycle_tables(engine, table="tx", min_customers=0, **options)


def _both_two(engine: sa.Engine, options: dict) -> object:
    return _flows_events(engine, options), _cohorts_events(engine, options)


METHODS: dict[str, Callable[[sa.Engine, dict], object]] = {
    "flows-events": _flows_events,
    "flows-panel": _flows_panel,
    "cohorts-events": _cohorts_events,
    "cohorts-panel": _cohorts_panel,
    "both-one": _both_one,
    "both-two": _both_two,
}


def _worker(method: str, path: str, options: dict, repeat: int) -> tuple[object, float, int]:
    engine = sa.create_engine(f"duckdb:///{path}")
    seconds, peak, result = _memory.best_of(lambda: METHODS[method](engine, options), repeat)
    engine.dispose()
    return result, seconds, peak


def measure(method: str, path: Path, options: dict, repeat: int) -> tuple[object, float, int]:
    """The result, best seconds and peak bytes of ``method`` in a fresh worker process."""
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
        return pool.submit(_worker, method, str(path), options, repeat).result()


def _same(events: object, panel: object) -> bool:
    if isinstance(events, pd.DataFrame):
        return bool(events.equals(panel))
    names = ("sizes", "active", "shares", "survivors", "is_small_sample")
    return all(getattr(events, name).equals(getattr(panel, name)) for name in names)


def _compare(path: Path, period: str, window: str, repeat: int) -> list[dict[str, object]]:
    """Both ways for the flows and the cohorts of one period: a row each."""
    options, rows = _options(period, window), []
    for table in ("flows", "cohorts"):
        events, new_seconds, new_peak = measure(f"{table}-events", path, options, repeat)
        panel, old_seconds, old_peak = measure(f"{table}-panel", path, options, repeat)
        rows.append({
            "period": period, "table": table, "panel s": old_seconds, "events s": new_seconds,
            "speed-up": old_seconds / new_seconds, "panel peak MB": old_peak / 2**20,
            "events peak MB": new_peak / 2**20, "equal": _same(events, panel),
        })  # fmt: skip
    return rows


def _compare_both(path: Path, period: str, window: str, repeat: int) -> dict[str, object]:
    """The flows and the cohorts from one statement against the two functions: a row."""
    options = _options(period, window)
    one, one_seconds, one_peak = measure("both-one", path, options, repeat)
    two, two_seconds, two_peak = measure("both-two", path, options, repeat)
    equal = all(_same(a, b) for a, b in zip(one, two, strict=True))
    return {"period": period, "two statements s": two_seconds, "one statement s": one_seconds,
            "speed-up": two_seconds / one_seconds, "two peak MB": two_peak / 2**20,
            "one peak MB": one_peak / 2**20, "equal": equal}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--period", nargs="+", default=["M", "W"])
    parser.add_argument("--window", default="3", help="periods (3) or a duration (90D)")
    parser.add_argument("--repeat", type=int, default=2)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.duckdb"
        n_transactions = store_log(arguments.customers, path)
        rows = [row for period in arguments.period
                for row in _compare(path, period, arguments.window, arguments.repeat)]  # fmt: skip
        both = [_compare_both(path, period, arguments.window, arguments.repeat)
                for period in arguments.period]  # fmt: skip
    print(f"{arguments.customers:,} customers, {n_transactions:,} transactions, "
          f"InactivityRule({arguments.window}), observation end {OBSERVATION_END}")  # fmt: skip
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda value: f"{value:,.2f}"))
    print("\nflows and cohorts together (sql_lifecycle_tables) against one after the other")
    print(pd.DataFrame(both).to_string(index=False, float_format=lambda value: f"{value:,.2f}"))


if __name__ == "__main__":
    main()
