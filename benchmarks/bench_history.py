"""Benchmark: what a run's history costs inside the scores' write, against the write itself.

A run appends its indicators to the run history in the transaction that writes its scores
(``cvalue.job._history``). The part that reads the scores table is the costly one: the mean
P(alive) by segment, each score's deciles by segment (a window ``NTILE`` over the table), the
customers in each decile, and, from the second run on, the customers in the previous run's
deciles for the population stability index. This script builds a scores table of ``N``
customers in a DuckDB file (5 segments, CLV and P(alive) drawn as the models give them), then
times, best of ``--repeat``:

- ``write``: ``write_scores`` of the same scores (the write the history rides on);
- ``history, first run``: ``score_indicators`` with no previous run (no PSI);
- ``history, next run``: with the first run's bins as the previous run's (PSI computed);
- ``limit``: DuckDB's own ``GROUP BY segment`` of count, mean and ``quantile_cont`` of the two
  scores at the nine decile points, the least any exact decile summary costs.

Run: ``python benchmarks/bench_history.py`` (``--customers 100000 1000000 10000000``).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

from cvalue.io import write_scores
from cvalue.io.history import append_history, read_history
from cvalue.job._history import score_indicators

SCORES = ["clv_5y", "p_alive"]


def _scores(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    p_alive = np.where(rng.random(n) < 0.3, 1.0, rng.beta(1.2, 1.5, n))
    clv = rng.gamma(0.8, 120.0, n) * p_alive
    segments = np.array(["retail", "online", "corporate", "wholesale", "partner"])
    return pd.DataFrame(
        {"segment": segments[rng.integers(0, 5, n)], "p_alive": p_alive, "clv_5y": clv},
        index=pd.RangeIndex(n, name="customer_id"),
    )


def _best(call: Callable[[], object], repeat: int) -> tuple[float, object]:
    best, result = np.inf, None
    for _ in range(repeat):
        start = time.perf_counter()
        result = call()
        best = min(best, time.perf_counter() - start)
    return best, result


def _measure(n: int, folder: Path, repeat: int) -> dict[str, float]:
    engine = sa.create_engine(f"duckdb:///{folder / f'scores_{n}.duckdb'}")
    scores = _scores(n)
    run_id = "run-1"
    times: dict[str, float] = {}
    times["write"], _ = _best(
        lambda: write_scores(scores, engine, "customer_value", run_id=run_id), repeat
    )
    table = sa.Table("customer_value", sa.MetaData(), sa.Column("segment", sa.Text),
                     sa.Column("p_alive", sa.Double), sa.Column("clv_5y", sa.Double),
                     sa.Column("run_id", sa.Text))  # fmt: skip
    where = table.c.run_id == run_id
    empty = read_history(engine)

    def first() -> pd.DataFrame:
        with engine.connect() as connection:
            return score_indicators(connection, table, where, scores=SCORES, previous=empty)

    times["history, first run"], rows = _best(first, repeat)
    with engine.begin() as connection:
        append_history(connection, rows, run_id="run-0",  # type: ignore[arg-type]
                       observation_end=pd.Timestamp("2024-09-30"))  # fmt: skip
    previous = read_history(engine)

    def following() -> pd.DataFrame:
        with engine.connect() as connection:
            return score_indicators(connection, table, where, scores=SCORES, previous=previous)

    times["history, next run"], found = _best(following, repeat)
    drift = found[found["indicator"].str.startswith("psi_")]  # type: ignore[index]
    assert len(drift) == 2 * 6
    assert float(drift["value"].max()) < 1e-9  # the same scores: no drift
    limit = sa.text(
        "SELECT segment, count(*), avg(p_alive), "
        "quantile_cont(clv_5y, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]), "
        "quantile_cont(p_alive, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]) "
        "FROM customer_value GROUP BY segment"
    )

    def limit_query() -> object:
        with engine.connect() as connection:
            return connection.execute(limit).fetchall()

    times["limit"], _ = _best(limit_query, repeat)
    engine.dispose()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    print("| customers | write s | history, first run s | history, next run s | limit s |"
          " next run / write | next run / limit |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as folder:
        for n in options.customers:
            t = _measure(n, Path(folder), options.repeat)
            print(f"| {n:,} | {t['write']:.2f} | {t['history, first run']:.2f} | "
                  f"{t['history, next run']:.2f} | {t['limit']:.2f} | "
                  f"{t['history, next run'] / t['write']:.2f} | "
                  f"{t['history, next run'] / t['limit']:.1f} |")  # fmt: skip


if __name__ == "__main__":
    main()
