"""The run's indicators for the run history (:mod:`cvalue.io.history`), and its score drift.

Two parts, so that every job path (in memory, chunked, Dask) records the same indicators:

- :func:`run_indicators` reads what the run already computed (:class:`~cvalue.JobResult`): the
  customers scored, the retention and churn rates of the last period and seed 003's customer
  retention rate (CRR) over the last quarter from the lifecycle flows, each acquisition cohort's
  share still active, customer equity at each horizon (in total and by segment) and NPS, CSAT
  and CES (in total and by value tier), each with its interval;
- :func:`score_indicators` reads the scores table inside the write transaction: the mean
  P(alive) by segment with its t interval, and the score distribution (the deciles of CLV at the
  longest horizon and of P(alive), by segment) whose population stability index against the
  previous run's deciles flags drift (:func:`cvalue.trends.population_stability`).

Seed 003's CRR is ``(E - N) / S``: the customers at the quarter's end ``E``, less the new (and
won-back) ones ``N``, over those at its start ``S``. By the flows' identity
``active(t) = active(t - 1) + acquired(t) + reactivated(t) - lost(t)`` it equals one less the
share lost; its interval is Wilson's, as for every rate here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import pandas as pd
import sqlalchemy as sa
from scipy import stats

from cvalue.config import JobConfig
from cvalue.io.history import append_history, read_history
from cvalue.job._outputs import protected_tables
from cvalue.metrics import churn_from_counts, retention_from_counts
from cvalue.results import JobResult
from cvalue.trends import population_stability
from cvalue.units import Duration

__all__ = ["record_history", "run_indicators", "score_indicators"]

_COLUMNS = ["grouping", "group_name", "indicator", "bin", "value", "ci_lower", "ci_upper",
            "customers"]  # fmt: skip
_BINS = 10  # deciles
_SURVEYS = ("nps", "csat", "ces")
Row = tuple[str, str, str, float, float, float, float, float]
FloatArray = npt.NDArray[np.float64]


def _row(grouping: str, group: object, indicator: str, value: float, lower: float = math.nan,
         upper: float = math.nan, customers: float = math.nan,
         bin_: float = math.nan) -> Row:  # fmt: skip
    return (grouping, str(group), indicator, bin_, float(value), float(lower), float(upper),
            float(customers))  # fmt: skip


def _frame(rows: Iterable[Row]) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=_COLUMNS)


def _label(horizon: object) -> str:
    from cvalue.job._run import horizon_label  # the scores' own suffix: "3y", "60M"

    return horizon_label(Duration.parse(str(horizon)))


def _rate_rows(flows: pd.DataFrame | None) -> list[Row]:
    """Retention and churn of the last period, and seed 003's CRR over the last quarter."""
    if flows is None or len(flows) < 2:
        return []
    rows = []
    before, last = flows.iloc[-2], flows.iloc[-1]
    at_start, lost = int(before["active"]), int(last["lost"])
    if at_start > 0:
        kept = retention_from_counts(at_start - min(lost, at_start), at_start, min_customers=0)
        gone = churn_from_counts(min(lost, at_start), at_start, min_customers=0)
        rows += [_row("all", "all", "retention_rate", kept.estimate, kept.ci_lower,
                      kept.ci_upper, at_start),
                 _row("all", "all", "churn_rate", gone.estimate, gone.ci_lower, gone.ci_upper,
                      at_start)]  # fmt: skip
    index = flows.index
    if isinstance(index, pd.PeriodIndex):
        quarter_start = index[-1].end_time - pd.DateOffset(months=3)
        earlier = np.flatnonzero(index.end_time <= quarter_start)
        if len(earlier):
            start = int(earlier[-1])
            quarter = flows.iloc[start + 1 :]
            s, e = int(flows.iloc[start]["active"]), int(last["active"])
            n = int(quarter["acquired"].sum() + quarter["reactivated"].sum())
            if s > 0 and 0 <= e - n <= s:
                crr = retention_from_counts(e - n, s, min_customers=0)
                rows.append(_row("all", "all", "crr", crr.estimate, crr.ci_lower, crr.ci_upper, s))
    return rows


def _cohort_rows(result: JobResult) -> list[Row]:
    """Each acquisition cohort's share of customers active in the last period."""
    cohorts = result.cohorts
    if cohorts is None or cohorts.active.empty:
        return []
    rows = []
    for cohort, active in cohorts.active.iterrows():
        counts = active.dropna()
        size = int(cohorts.sizes.get(cohort, 0))
        if counts.empty or size < 1:
            continue
        now = int(min(counts.iloc[-1], size))
        share = retention_from_counts(now, size, min_customers=0)
        rows.append(_row("cohort", cohort, "cohort_retention", share.estimate, share.ci_lower,
                         share.ci_upper, size))  # fmt: skip
    return rows


def _equity_rows(result: JobResult) -> list[Row]:
    equity = result.equity
    if equity is None:
        return []
    customers = _n_scored(result)
    rows = [_row("all", "all", f"equity_{_label(horizon)}", line["equity"], line["ci_lower"],
                 line["ci_upper"], customers)
            for horizon, line in equity.total.iterrows()]  # fmt: skip
    if equity.by_group is not None:
        for key, line in equity.by_group.iterrows():
            group, horizon = cast("tuple[object, object]", key)
            rows.append(_row("segment", group, f"equity_{_label(horizon)}", line["equity"],
                             line["ci_lower"], line["ci_upper"], line["customers"]))  # fmt: skip
    return rows


def _survey_rows(result: JobResult) -> list[Row]:
    rows = []
    for name in _SURVEYS:
        table = result.surveys_by_value.get(name)
        if table is None:
            continue
        for tier, line in table.iterrows():
            grouping, group = ("all", "all") if tier == "all" else ("value tier", tier)
            rows.append(_row(grouping, group, name, line["estimate"], line["ci_lower"],
                             line["ci_upper"], line["customers_answering"]))  # fmt: skip
    return rows


def _n_scored(result: JobResult) -> int:
    if result.scores is not None:
        return len(result.scores)
    return 0 if result.in_database is None else int(result.in_database.n_customers)


def run_indicators(result: JobResult) -> pd.DataFrame:
    """The indicators the run computed (see the module), as history rows."""
    n = _n_scored(result)
    rows = [_row("all", "all", "customers", n, customers=n), *_rate_rows(result.flows),
            *_cohort_rows(result), *_equity_rows(result), *_survey_rows(result)]  # fmt: skip
    return _frame(rows)


# --- read from the scores table, in the write's transaction ---------------------------------------


def _groups(table: sa.Table) -> list[tuple[str, sa.ColumnElement[Any] | None]]:
    found: list[tuple[str, sa.ColumnElement[Any] | None]] = [("all", None)]
    if "segment" in table.c:
        found.append(("segment", table.c["segment"]))
    return found


def _mean_rows(connection: sa.Connection, table: sa.Table, where: sa.ColumnElement[bool]
               ) -> list[Row]:  # fmt: skip
    """Mean P(alive) by group, with Student's t interval of a mean."""
    p = table.c["p_alive"]
    rows = []
    for grouping, column in _groups(table):
        keys = [] if column is None else [column]
        measures = [sa.func.count(p), sa.func.sum(p), sa.func.sum(p * p)]
        query = sa.select(*keys, *measures).where(where).group_by(*keys)
        for line in connection.execute(query):
            group = "all" if column is None else line[0]
            n, total, squares = (float(x or 0) for x in line[len(keys) :])
            if n < 1:
                continue
            mean = total / n
            lower = upper = math.nan
            if n > 1:
                variance = max(squares - n * mean * mean, 0.0) / (n - 1)
                half = float(stats.t.ppf(0.975, n - 1)) * math.sqrt(variance / n)
                lower, upper = max(mean - half, 0.0), min(mean + half, 1.0)
            rows.append(_row(grouping, group, "mean_p_alive", mean, lower, upper, n))
    return rows


def _edges(connection: sa.Connection, table: sa.Table, where: sa.ColumnElement[bool],
           score: str,
           column: sa.ColumnElement[Any] | None) -> dict[object, list[float]]:  # fmt: skip
    """Each group's decile edges of ``score``: the distinct upper ends of its ten tiles."""
    value = table.c[score]
    partition = None if column is None else column
    tile = sa.func.ntile(_BINS).over(partition_by=partition, order_by=value)
    group = sa.literal("all") if column is None else column
    inner = sa.select(group.label("g"), value.label("v"), tile.label("tile")).where(
        where, value.is_not(None)).subquery()  # fmt: skip
    query = sa.select(inner.c.g, sa.func.max(inner.c.v)).group_by(inner.c.g, inner.c.tile)
    found: dict[object, list[float]] = {}
    for group_name, edge in connection.execute(query):
        found.setdefault(group_name, []).append(float(edge))
    # the last tile's top is the maximum: the last bin is open above
    return {key: sorted(set(edges))[:-1] for key, edges in found.items()}


def _below(connection: sa.Connection, table: sa.Table, where: sa.ColumnElement[bool],
           score: str, column: sa.ColumnElement[Any] | None,
           edges: Mapping[object, Sequence[float]]) -> dict[object, FloatArray]:  # fmt: skip
    """Each group's customers at or below each of its ``edges``, and its total, in one scan.

    The ``j``-th count of every group comes from one column of the statement: the group's own
    ``j``-th edge is picked by a CASE on the group (NULL where a group has fewer edges).
    """
    value = table.c[score]
    width = max((len(found) for found in edges.values()), default=0)
    sums = []
    for j in range(width):
        if column is None:
            edge: sa.ColumnElement[Any] = sa.bindparam(None, edges["all"][j], sa.Double())
        else:
            picks: list[tuple[sa.ColumnElement[bool], sa.ColumnElement[Any]]] = [
                (column == sa.bindparam(None, group, column.type),
                 sa.bindparam(None, found[j], sa.Double()))
                for group, found in edges.items() if j < len(found)]  # fmt: skip
            edge = sa.case(*picks, else_=sa.null())
        sums.append(sa.func.sum(sa.case((value <= edge, 1), else_=0)))
    keys = [] if column is None else [column]
    query = sa.select(*keys, *sums, sa.func.count(value)).where(where, value.is_not(None))
    found: dict[object, FloatArray] = {}
    for line in connection.execute(query.group_by(*keys)):
        group = "all" if column is None else line[0]
        if group in edges:
            counts = [float(x or 0) for x in line[len(keys) :]]
            found[group] = np.array([*counts[: len(edges[group])], counts[-1]], dtype=float)
    return found


def _previous_bins(previous: pd.DataFrame, grouping: str, group: str, indicator: str
                   ) -> pd.DataFrame | None:  # fmt: skip
    if previous.empty:
        return None
    rows = previous[(previous["grouping"] == grouping) & (previous["group_name"] == group)
                    & (previous["indicator"] == indicator) & previous["bin"].notna()]  # fmt: skip
    if rows.empty:
        return None
    latest: pd.DataFrame = rows[rows["scored_at"] == rows["scored_at"].max()]
    return latest.sort_values("bin")


def score_indicators(
    connection: sa.Connection, table: sa.Table, where: sa.ColumnElement[bool], *,
    scores: Sequence[str], previous: pd.DataFrame,
) -> pd.DataFrame:  # fmt: skip
    """Mean P(alive), the scores' decile bins and their drift since the previous run.

    ``previous`` is the history so far (:func:`cvalue.io.history.read_history`): each score's
    population stability index is taken against the bins of the latest run that has them.
    """
    rows = _mean_rows(connection, table, where)
    for score in scores:
        indicator = f"bins:{score}"
        for grouping, column in _groups(table):
            own = _edges(connection, table, where, score, column)
            before = {group: _previous_bins(previous, grouping, str(group), indicator)
                      for group in own}  # fmt: skip
            old = {group: [] if rows_ is None else list(rows_["value"].to_numpy(float)[:-1])
                   for group, rows_ in before.items()}  # fmt: skip
            below = _below(connection, table, where, score, column,
                           {group: [*own[group], *old[group]] for group in own})  # fmt: skip
            for group, edges in own.items():
                cumulative = below[group]
                counts = np.diff(np.append(cumulative[: len(edges)], cumulative[-1]), prepend=0.0)
                rows += [_row(grouping, group, indicator, edge, customers=count, bin_=k)
                         for k, (edge, count) in enumerate(zip([*edges, math.nan], counts,
                                                               strict=True))]  # fmt: skip
                earlier = before[group]
                # one earlier bin (every score tied) leaves no distribution to compare with
                if earlier is None or len(earlier) < 2 or earlier["customers"].sum() == 0:
                    continue
                now = np.diff(cumulative[len(edges) :], prepend=0.0)
                psi = population_stability(earlier["customers"].to_numpy(float), now)
                rows.append(_row(grouping, group, f"psi_{score}", psi, customers=now.sum()))
    return _frame(rows)


def record_history(config: JobConfig, result: JobResult, connection: sa.Connection,
                   table: sa.Table, run_id: str) -> pd.DataFrame | None:  # fmt: skip
    """Append the run's indicators to ``[outputs] history_table`` in the write's transaction.

    Called from the scores' ``before_swap`` (``connection`` and the scores ``table`` as it
    passes them) with the run's complete result. Returns the whole history, this run included,
    for the report; ``None`` when the configuration keeps no history.
    """
    outputs = config.outputs
    if outputs.history_table is False:
        return None
    name, schema = str(outputs.history_table), outputs.schema_name
    previous = read_history(connection, name, schema=schema)
    longest = max(config.value.horizons, key=lambda horizon: horizon.days)
    scores = [score for score in (f"clv_{_label(longest)}", "p_alive") if score in table.c]
    rows = pd.concat([run_indicators(result),
                      score_indicators(connection, table, table.c.run_id == run_id,
                                       scores=scores, previous=previous)],
                     ignore_index=True)  # fmt: skip
    append_history(connection, rows, run_id=run_id,
                   observation_end=result.loaded.observation_end, table=name, schema=schema,
                   protected=protected_tables(config))  # fmt: skip
    return read_history(connection, name, schema=schema)
