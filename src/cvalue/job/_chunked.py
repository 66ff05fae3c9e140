"""The scoring job in bounded memory: ``[run] chunk_customers``.

The in-memory job (:mod:`cvalue.job._run`) reads every transaction into pandas; at tens of
millions of customers that does not fit. This path never holds the transactions, nor a row per
customer for the whole base:

1. **validate** in the database (:func:`cvalue.io.sql_validate_transactions`): the report counts
   every rejected row by reason; the clean rows stay a query;
2. **lifecycle**: flows and cohort retention by their SQL twins, each customer's last state as a
   query joined to the customers' rows;
3. **fit**: the purchase models on the distinct patterns the database groups (the model check on
   the calibration/holdout patterns, weighted), the Gamma-Gamma on sums gathered over the chunks;
4. **score and write**: the customers' summary rows, joined to their attributes in the database,
   are read ``chunk_customers`` at a time, valued and scored, and streamed into the staging
   table of :func:`cvalue.write_scores`; the equity merges each chunk's cells;
5. **before the swap**, in the write's transaction: the value tiers are ranked in the staging
   table, the value x risk grid and the whale curve are summed there, and the report is
   rendered. A failure anywhere rolls the write back and leaves the old scores whole.

The results equal the in-memory job's (the same statements and models), except the value tiers
and bands of customers tied at an edge (ranked by customer id, see
:mod:`cvalue.segments.in_table`) and what the report draws from a sample of customers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
import sqlalchemy as sa

from cvalue.config import CostConfig, JobConfig
from cvalue.errors import DatabaseError, DataQualityError
from cvalue.io import connection_to, engine_for
from cvalue.io.schema import Columns
from cvalue.io.sql_stream import SummaryQuery, summary_query
from cvalue.io.sql_validate import SqlValidated, sql_validate_transactions
from cvalue.io.sqlkit import copy_to_temporary, drop_table, fetch, fetch_chunks
from cvalue.io.writeback import WriteResult, write_scores
from cvalue.job._candidates import candidates_check, fit_purchases, float_counts
from cvalue.job._files import bound_duckdb, duckdb_resting, file_views
from cvalue.job._history import record_history
from cvalue.job._in_table import finish_in_table, survey_tables
from cvalue.job._outputs import StagedReport, protected_tables
from cvalue.job._read import (
    _transactions_query,
    observation_end_of,
)
from cvalue.job._run import (
    _model_span,
    _render,
    _Run,
    customer_scores,
    horizon_label,
    job_costs,
    retention_worth,
    too_new_note,
    value_options,
)
from cvalue.job._surveys import (
    survey_source,
)
from cvalue.lifecycle import (
    InactivityRule,
    last_states_select,
    sql_lifecycle_tables,
)
from cvalue.models import GammaGamma, PurchaseModel
from cvalue.plot.sql_tracking import sql_tracking_counts, tracking_table_from_counts
from cvalue.plot.tables import model_unit
from cvalue.results import FittedModels, HoldoutCheck, InDatabase, JobResult, Loaded
from cvalue.segments.streamed import (
    ProfitSelect,
    SegmentsStream,
    profit_select,
    streamed_cross_sell_profitability,
)
from cvalue.units import Duration, TimeUnit
from cvalue.value import RetentionUplift, clv
from cvalue.value.equity_stream import EquityStream

__all__ = ["fitted_in_database", "run_chunked", "validated_in_database"]

_SAMPLE = 100_000  # customers kept for the report's distributions
_LEAST_PURCHASES = 3  # the report's illustrative customer: as in cvalue.report.job


# --- validation, lifecycle and the fit, in the database -------------------------------------------


def _validated(config: JobConfig, engine: sa.Engine, end: pd.Timestamp | None) -> SqlValidated:
    """The transactions validated in the database: the report, the clean rows as a query."""
    section = config.source.transactions
    columns = section.columns()
    source: dict[str, Any] = (
        {"table": section.table, "schema": config.source.schema_name}
        if section.table is not None
        else {"query": _transactions_query(config, engine, columns)}
    )
    return sql_validate_transactions(
        engine, **source, columns=columns, observation_end=end, min_date=section.min_date,
        max_date=section.max_date,
    )  # fmt: skip


def _kept(connection: sa.Connection, clean: sa.Select[Any], run_id: str) -> sa.Select[Any]:
    """The clean rows copied once into a temporary table of the run's connection, and read.

    Every later stage reads them, some twice: the validation's window functions run once.
    The database holds the copy (DuckDB spills it to disk beyond its memory limit) and drops it
    when the connection closes.
    """
    return _kept_rows(connection, clean, f"cvalue_clean_{run_id[:16]}")


def _kept_rows(connection: sa.Connection, rows: sa.Select[Any], name: str) -> sa.Select[Any]:
    """``rows`` computed once into a temporary table of the run's connection, and read from it.

    A join read while it streams holds its hash tables to the end; computed into a table, the
    database spills what exceeds its memory limit, and the stream is a plain scan.
    """
    table = copy_to_temporary(connection, rows, name)
    # committed: SQLite would otherwise hold its read lock until the run ends, and the scores'
    # write to the same file could never commit
    connection.commit()
    return sa.select(table)


def _summary(
    config: JobConfig, connection: sa.Connection, clean: sa.Select[Any], end: pd.Timestamp | None
) -> SummaryQuery:
    """The summary of the clean rows, in the configured unit and grain."""
    return summary_query(connection, query=clean, observation_end=end,
                         unit=config.summary.time_unit(), grain=config.summary.grain)  # fmt: skip


def _kept_summary(connection: sa.Connection, summary: SummaryQuery, run_id: str) -> SummaryQuery:
    """The summary computed once into a temporary table, which its patterns and chunks read."""
    kept = _kept_rows(connection, sa.select(summary.customers), f"cvalue_summary_{run_id[:16]}")
    return dataclasses.replace(summary, customers=kept.subquery("summary"))


def _lifecycle(
    config: JobConfig, connection: sa.Connection, clean: sa.Select[Any], end: pd.Timestamp
) -> tuple[pd.DataFrame, Any]:
    return sql_lifecycle_tables(  # flows and cohorts from one pass over the activity rows
        connection, period=TimeUnit(config.lifecycle.period).pandas_alias,
        rule=InactivityRule(window=config.lifecycle.window), query=clean, observation_end=end,
    )  # fmt: skip


def _holdout_check(
    config: JobConfig, connection: sa.Connection, summary: SummaryQuery, end: pd.Timestamp
) -> HoldoutCheck:
    """The candidates fitted on the calibration patterns and scored on the holdout, weighted."""
    names = config.models.candidates if config.models.purchase == "auto" else [
        config.models.purchase]  # fmt: skip
    calibration_end = end - pd.Timedelta(days=config.models.holdout.days)
    split, n_new = summary.holdout_patterns(connection, calibration_end)
    split.attrs["n_new_in_holdout"] = n_new
    with duckdb_resting(connection, config):
        return candidates_check(config, split, names, calibration_end, keep_split=False)


def _spend_rows(
    connection: sa.Connection, summary: SummaryQuery, size: int
) -> Iterator[pd.DataFrame]:
    customers = summary.customers
    statement = sa.select(customers).where(customers.c.age > 0)
    for rows in fetch_chunks(connection, statement, size):
        yield summary.frame(rows)


def _fit(
    config: JobConfig, connection: sa.Connection, summary: SummaryQuery, end: pd.Timestamp
) -> FittedModels:
    """The purchase model fitted on the patterns, the Gamma-Gamma on sums over the chunks."""
    check = _holdout_check(config, connection, summary, end)  # before the patterns: one at a time
    patterns = float_counts(summary.patterns(connection))  # kept, and viewed by the fit
    too_new = summary.too_new(connection)
    name = str(check.errors.index[0])
    with duckdb_resting(connection, config):
        purchase = fit_purchases(config, name, patterns)
    size = int(config.run.chunk_customers or 1)
    spend = GammaGamma().fit_chunks(lambda: _spend_rows(connection, summary, size),
                                    unit=summary.unit)  # fmt: skip
    candidates = check.errors if config.models.purchase == "auto" else None
    return FittedModels(patterns, purchase, spend, candidates, "database", too_new, check)


def _parked(models: FittedModels) -> FittedModels:
    """The models without their pattern table (0.1 GiB at 10M) while the chunks are scored.

    Scoring reads the parameters only; the table waits in the database, and is read again for
    the report with DuckDB's buffers given back first (:func:`_unparked`).
    """
    models.purchase.drop_data()
    return dataclasses.replace(models, summary=models.summary.iloc[:0].copy())


def _unparked(config: JobConfig, models: FittedModels, connection: sa.Connection,
              summary: SummaryQuery) -> FittedModels:  # fmt: skip
    with duckdb_resting(connection, config):
        return dataclasses.replace(models, summary=float_counts(summary.patterns(connection)))


def _tracking(
    connection: sa.Connection, summary: SummaryQuery, models: FittedModels, end: pd.Timestamp
) -> pd.DataFrame:
    """The report's tracking table, its repeat and first purchases counted per day in the database.

    The model is the one the report draws: the best candidate fitted on the calibration period.
    """
    check = models.holdout
    model = cast("PurchaseModel", check.fitted[str(check.errors.index[0])])
    grain = model_unit(model) if model.discrete_time else TimeUnit.DAY
    calibration_end = check.calibration_end
    counts = sql_tracking_counts(connection, summary.relation, calibration_end=calibration_end,
                                 observation_end=end, grain=grain)  # fmt: skip
    return tracking_table_from_counts(model, counts, calibration_end=calibration_end,
                                      observation_end=end)  # fmt: skip


# --- the customers' rows, joined in the database --------------------------------------------------


def _attributes(
    config: JobConfig, connection: sa.Connection
) -> tuple[sa.FromClause, dict[str, str]] | None:
    """The customers table (``{ours: theirs}`` of its mapped columns), its ids checked unique."""
    section = config.source.customers
    if section is None:
        return None
    wanted = {ours: theirs for ours, theirs in {
        "segment": section.segment, "channel": section.channel,
        "acquisition_cost": section.acquisition_cost}.items() if theirs is not None}  # fmt: skip
    table = sa.table(str(section.table), sa.column(section.customer_id),
                     *(sa.column(name) for name in wanted.values()),
                     schema=config.source.schema_name).alias("customer_attributes")  # fmt: skip
    key = table.c[section.customer_id]
    counts = sa.select(sa.func.count(), sa.func.count(sa.distinct(key)))
    rows, distinct = connection.execute(counts.select_from(table)).one()
    if rows != distinct:
        raise DataQualityError(
            f"[source.customers]: {rows - distinct:,} of {rows:,} rows repeat a customer id "
            f"({section.customer_id!r}); a customer needs one row. Deduplicate the table, or "
            "read a query that does"
        )
    return table, wanted


def _customer_key(config: JobConfig) -> str:
    section = config.source.customers
    assert section is not None  # only called with a customers table
    return section.customer_id


def _customer_rows(
    config: JobConfig,
    connection: sa.Connection,
    summary: SummaryQuery,
    clean: sa.Select[Any],
    end: pd.Timestamp,
    profit: ProfitSelect | None,
) -> tuple[sa.Select[Any], list[str]]:
    """Each scorable customer's summary row with their attributes, last state and profit sums.

    Returns the statement and the names of the columns beyond the summary's.
    """
    customers = summary.customers
    pieces: list[_Piece] = []
    found = _attributes(config, connection)
    if found is not None:
        table, wanted = found
        labels = [table.c[theirs].label(ours) for ours, theirs in wanted.items()]
        pieces.append((table, table.c[_customer_key(config)], labels))
    # each per-customer aggregate computed into its own table first: joined while they are
    # computed, their hash tables are all held at once (DuckDB at 512MB ran out of memory at 3M)
    tag = uuid.uuid4().hex[:16]
    states = _kept_rows(connection, last_states_select(
        connection, period=TimeUnit(config.lifecycle.period).pandas_alias,
        rule=InactivityRule(window=config.lifecycle.window), query=clean, observation_end=end,
    ), f"cvalue_states_{tag}").subquery("last_states")  # fmt: skip
    pieces.append((states, states.c.customer_id, [states.c.state.label("lifecycle_state")]))
    if profit is not None:
        sums = profit.statement.subquery("profit")  # a temporary table's rows (_profit)
        names = [name for name in sums.c.keys() if name != profit.customer_id]  # noqa: SIM118
        labels = [sums.c[name].label(f"profit_{name}") for name in names]
        pieces.append((sums, sums.c[profit.customer_id], labels))
    for name in _COST_ITEMS:
        recorded = _recorded_costs(config, name)
        if recorded is not None:
            totals = sa.select(recorded.c.customer_id, sa.func.sum(recorded.c.cost).label("cost"))
            summed = _kept_rows(connection, totals.group_by(recorded.c.customer_id),
                                f"cvalue_{name}_{tag}").subquery(f"{name}_sums")  # fmt: skip
            pieces.append((summed, summed.c.customer_id, [summed.c.cost.label(f"recorded_{name}")]))
    extra = [label.name for _, _, labels in pieces for label in labels]
    scorable = sa.select(customers).where(customers.c.age > 0)
    return _joined_in_turn(connection, scorable, pieces, tag), extra


_Piece = tuple[sa.FromClause, sa.ColumnElement[Any], list[sa.Label[Any]]]  # rows, key, columns


def _joined_in_turn(
    connection: sa.Connection, rows: sa.Select[Any], pieces: list[_Piece], tag: str
) -> sa.Select[Any]:
    """``rows`` left-joined on ``customer`` to each piece in turn, each join but the last kept.

    Joined in one statement, every piece's hash table is held at once while the rows stream
    through them (at 10M customers, DuckDB at 1GB failed to pin a block); each join kept in a
    temporary table (the one before dropped), the database holds one at a time.
    """
    previous: str | None = None
    for number, (piece, key, labels) in enumerate(pieces):
        if number:
            name = f"cvalue_joined_{tag}_{number}"
            rows = _kept_rows(connection, rows, name)
            if previous is not None:
                drop_table(connection, previous)
                connection.commit()
            previous = name
        current = rows.subquery("scorable")
        joined = current.outerjoin(piece, current.c.customer == key)
        rows = sa.select(current, *labels).select_from(joined)
    return rows


_COST_ITEMS = ("cost_to_serve", "marketing_cost")


def _recorded_costs(config: JobConfig, name: str) -> sa.Subquery | None:
    """A recorded cost table of ``[value.<name>]`` as ``customer_id`` and ``cost`` rows."""
    costs: CostConfig | None = getattr(config.value, name)
    if costs is None or costs.table is None:
        return None
    table = sa.table(costs.table, sa.column(costs.customer_id), sa.column(costs.cost),
                     schema=config.source.schema_name)  # fmt: skip
    return sa.select(table.c[costs.customer_id].label("customer_id"),
                     table.c[costs.cost].label("cost")).subquery(f"{name}_rows")  # fmt: skip


# --- scoring chunk by chunk -----------------------------------------------------------------------


@dataclass
class _Scorer:
    """Scores chunks of customers, and keeps what the run reports of all of them."""

    config: JobConfig
    models: FittedModels
    loaded: Loaded
    profit: ProfitSelect | None
    equity: EquityStream
    horizons: dict[str, Duration]
    sample_rate: float
    rng: np.random.Generator = dataclasses.field(default_factory=lambda: np.random.default_rng(0))
    n_customers: int = 0
    n_chunks: int = 0
    samples: list[pd.DataFrame] = dataclasses.field(default_factory=list)
    best: dict[str, object] | None = None
    sampled_rows: list[pd.DataFrame] | None = None  # the sample's summary rows, for the uplift

    @property
    def longest(self) -> str:
        return max(self.horizons, key=lambda label: Duration.parse(label).days)

    def values(self, summary: pd.DataFrame) -> dict[str, Any]:
        """Each horizon's :func:`cvalue.clv` of the chunk, as the in-memory job values them."""
        config = self.config
        segment = None
        if "segment" in summary:
            segment = summary["segment"].astype("string").fillna("unassigned").astype(str)
            segment = segment.rename("segment")
        acquisition = None
        if "acquisition_cost" in summary:
            acquisition = summary["acquisition_cost"].astype(np.float64).fillna(0.0)
        recorded = {name: _recorded(summary, name) for name in _COST_ITEMS}
        common = value_options(config, self.loaded, self.models, summary, segment, acquisition,
                               recorded, margin=config.value.margin)  # fmt: skip
        data = summary[[c for c in ("frequency", "recency", "T", "monetary_value") if c in summary]]
        data.attrs = dict(summary.attrs)
        return {
            label: clv(data, horizon=horizon, interval=config.value.interval, **common)
            for label, horizon in self.horizons.items()
        }

    def score(self, summary: pd.DataFrame) -> pd.DataFrame:
        """The chunk's scores (tiers left missing), and its part of the run's figures."""
        values = self.values(summary)
        data = summary[["frequency", "recency", "T"]]
        p_alive = cast("PurchaseModel", self.models.purchase).p_alive(data)
        profits = None
        if self.profit is not None:
            names = [c for c in summary.columns if c.startswith("profit_")]
            sums = summary[names].rename(columns=lambda c: c.removeprefix("profit_"))
            sums.insert(0, self.profit.customer_id, summary.index.to_numpy())
            profits = self.profit.customers(sums.reset_index(drop=True))
        tier = pd.Series(pd.NA, index=summary.index, dtype="string")
        last = summary["lifecycle_state"]
        scores = customer_scores(summary.index, values, p_alive, tier, last, profits)
        self.equity.add(values[self.longest])
        self._keep(summary, values[self.longest].customers["clv"], p_alive)
        return scores

    def _keep(self, summary: pd.DataFrame, value: pd.Series, p_alive: pd.Series) -> None:
        self.n_customers += len(summary)
        self.n_chunks += 1
        kept = self.rng.random(len(summary)) < self.sample_rate
        sample = pd.DataFrame({"clv": value, "p_alive": p_alive,
                               "frequency": summary["frequency"]})[kept]  # fmt: skip
        if "segment" in summary:
            sample["segment"] = summary["segment"].astype("string").fillna("unassigned")[kept]
        self.samples.append(sample)
        if self.sampled_rows is not None:
            self.sampled_rows.append(summary[kept])
        purchases = summary["frequency"].to_numpy() + 1
        eligible = np.flatnonzero(purchases >= _LEAST_PURCHASES)
        if not len(eligible):
            return
        at = eligible[int(np.argmax(value.to_numpy(dtype=np.float64)[eligible]))]
        best = float(value.iloc[at])
        if self.best is None or best > float(cast("float", self.best["clv"])):
            customer = summary.index[at]
            customer = customer.item() if isinstance(customer, np.generic) else customer
            self.best = {"customer": customer, "clv": best,
                         "n_purchases": int(purchases[at])}  # fmt: skip

    def uplift(self, notes: list[str]) -> RetentionUplift | None:
        """What more retention is worth, on the report's random sample (scaled to the base)."""
        if not self.sampled_rows:
            return None
        values = self.values(pd.concat(self.sampled_rows))
        self.sampled_rows = None
        return retention_worth(self.config, self.models, values, notes,
                               sample=(self.n_customers, self.sample_rate))  # fmt: skip

    def chunks(self, connection: sa.Connection, statement: sa.Select[Any], summary: SummaryQuery,
               extra: list[str]) -> Iterator[pd.DataFrame]:  # fmt: skip
        """The scores of every customer of ``statement``, a chunk at a time."""
        size = int(self.config.run.chunk_customers or 1)
        with duckdb_resting(connection, self.config):  # back to the cap before the swap's ranks
            for rows in fetch_chunks(connection, statement, size):
                yield self.score(summary.frame(rows, extra))


def _recorded(summary: pd.DataFrame, name: str) -> pd.DataFrame | None:
    """The chunk's recorded costs of ``name`` (summed per customer in the database)."""
    column = f"recorded_{name}"
    if column not in summary:
        return None
    cost = summary[column].astype(np.float64).fillna(0.0).to_numpy()
    return pd.DataFrame({"customer_id": summary.index.to_numpy(), "cost": cost})


# --- cross-sell profitability, in two passes over the database ------------------------------------


def _profit(
    config: JobConfig, connection: sa.Connection, clean: sa.Select[Any]
) -> ProfitSelect | None:
    """The per-customer profit sums (needs a category column), as the job's costs.

    The sums are computed once into a temporary table, which the unmatched costs' count, the
    cross-sell's two passes, the named segments and the customers' rows read.
    """
    if config.source.transactions.category is None:
        return None
    costs = job_costs(config, _service_contacts(config))
    name = f"cvalue_profit_{uuid.uuid4().hex[:16]}"
    return profit_select(
        connection, costs, query=clean, promotion=config.segments.promotion,
        min_categories=config.segments.cross_sell_min_categories,
        keep=lambda sums: _kept_rows(connection, sums, name),
    )  # fmt: skip


def _service_contacts(config: JobConfig) -> sa.Select[Any]:
    """The recorded service costs as the profitability reads them (none: no rows)."""
    recorded = _recorded_costs(config, "cost_to_serve")
    if recorded is None:
        return sa.select(sa.null().label("customer_id"), sa.literal(0.0).label("cost")).where(
            sa.false()
        )
    return sa.select(recorded)


def _cross_sell(
    config: JobConfig, connection: sa.Connection, profit: ProfitSelect
) -> tuple[Any, Any]:
    """Cross-sell profitability and the named segments, streamed over every customer."""
    segments = config.segments
    with duckdb_resting(connection, config):  # the database only reads the kept sums
        cross = streamed_cross_sell_profitability(
            connection, profit, chunk_customers=int(config.run.chunk_customers or 1),
            min_size=segments.min_segment_size,
        )  # fmt: skip
    if not segments.by:
        return cross, None
    found = _attributes(config, connection)
    assert found is not None  # the configuration requires [source.customers] for [segments] by
    table, wanted = found
    sums = profit.statement.subquery("profit")
    key = table.c[_customer_key(config)]
    labelled = [table.c[wanted[name]].label(f"key_{name}") for name in segments.by]
    joined = sums.outerjoin(table, sums.c[profit.customer_id] == key)
    statement = sa.select(sums, *labelled).select_from(joined)
    named = SegmentsStream(list(segments.by), population="all", min_size=segments.min_segment_size)
    for rows in fetch_chunks(connection, statement, int(config.run.chunk_customers or 1)):
        keys = rows[[f"key_{name}" for name in segments.by]]
        table_rows = profit.customers(rows.drop(columns=keys.columns))
        labels = keys.set_axis(rows[profit.customer_id].to_numpy()).reindex(table_rows.index)
        for name in segments.by:
            table_rows[name] = labels[f"key_{name}"].astype("string").fillna("unassigned")
        named.add(table_rows)
    return cross, named.result()


# --- the run --------------------------------------------------------------------------------------


def _loaded(validated: SqlValidated, end: pd.Timestamp) -> Loaded:
    """What a chunked run 'loaded': the report and the end; the rows stay in the database."""
    names = list(validated.clean.selected_columns.keys())
    return Loaded(
        transactions=pd.DataFrame(columns=names), rejected=pd.DataFrame(),
        report=validated.report, observation_end=end, customers=None, service_costs=None,
        marketing_costs=None, surveys=None, columns=Columns.detect(names),
        notes=("the transactions stay in the database: validated, summarised and scored there "
               "chunk by chunk ([run] chunk_customers)",),
    )  # fmt: skip


def _history(connection: sa.Connection, clean: sa.Select[Any], customer: object) -> pd.DataFrame:
    """One customer's validated transactions, read back for the report."""
    rows = clean.subquery("clean")
    return fetch(connection, sa.select(rows).where(rows.c.customer_id == customer))


@contextlib.contextmanager
def _destination(config: JobConfig, environ: Mapping[str, str] | None, write: bool,
                 source: sa.Engine) -> Iterator[str | sa.Engine]:  # fmt: skip
    """Where the scores go: the configured database, or a scratch one without ``write``.

    The source's engine when the scores go to the same DuckDB file (a process opens it once);
    with ``write=False``, a DuckDB file thrown away afterwards (the tiers are still ranked in a
    table).
    """
    if not write:
        with tempfile.TemporaryDirectory(prefix="cvalue-") as folder:
            yield f"duckdb:///{Path(folder) / 'scores.duckdb'}"
        return
    url = config.scores_url(environ)
    same = sa.make_url(url) == source.url and source.url.get_backend_name() == "duckdb"
    yield source if same else url


def run_chunked(
    config: JobConfig,
    *,
    environ: Mapping[str, str] | None,
    write: bool,
    target: Path | None,
    steps: _Run,
) -> JobResult:
    """The whole job in bounded memory (see the module's docstring); outputs checked already."""
    end = observation_end_of(config)
    with _source(config, environ) as (engine, config), connection_to(engine) as connection:
        run_id = uuid.uuid4().hex
        with steps.stage("validate in the database"):
            validated = _validated(config, engine, end)
            clean = _kept(connection, validated.clean, run_id)
            summary = _kept_summary(connection, _summary(config, connection, clean, end), run_id)
        observation_end = pd.Timestamp(summary.end_day, unit="D")
        loaded = _loaded(validated, observation_end)
        steps.notes.extend(loaded.notes)
        answers = survey_source(config, engine)
        with steps.stage("lifecycle"):
            flows, cohorts = _lifecycle(config, connection, clean, observation_end)
        with steps.stage("summarise and fit"):
            models = _fit(config, connection, summary, observation_end)
        steps.notes.append("summary computed in the database")
        tracking = None
        if target is not None:
            with steps.stage("tracking"):
                tracking = _tracking(connection, summary, models, observation_end)
        if len(models.too_new):
            steps.notes.append(too_new_note(models.too_new))
        profit = named = cross = None
        with steps.stage("cross-sell profitability"):
            profit = _profit(config, connection, clean)
            if profit is not None:
                cross, named = _cross_sell(config, connection, profit)
        unit = config.summary.time_unit()
        horizons = {horizon_label(h): _model_span(models.purchase, h, unit)
                    for h in config.value.horizons}  # fmt: skip
        n_customers = int(models.summary["weight"].sum())
        models = _parked(models)
        scorer = _Scorer(
            config, models, loaded, profit,
            EquityStream(horizons=list(horizons.values()), by="segment" if
                         config.source.customers is not None and
                         config.source.customers.segment is not None else None),
            horizons, min(1.0, _SAMPLE / max(n_customers, 1)),
            sampled_rows=[] if config.value.retention_points else None,
        )  # fmt: skip
        statement, extra = _customer_rows(config, connection, summary, clean, observation_end,
                                          profit)  # fmt: skip
        statement = _kept_rows(connection, statement, f"cvalue_customers_{run_id[:16]}")
        staged = None if target is None else StagedReport(target, run_id)
        finished: dict[str, Any] = {}

        def before_swap(writing: sa.Connection, table: sa.Table) -> None:
            finished.update(
                finish_in_table(config, writing, table, run_id, scorer, profit is not None)
            )
            if answers is not None:
                finished["surveys"] = survey_tables(writing, table, run_id, scorer, answers,
                                                     finished["tiers"], steps.notes,
                                                     (config, engine))  # fmt: skip
            history = pd.DataFrame()
            if scorer.best is not None:
                history = _history(connection, clean, scorer.best["customer"])
            unparked = _unparked(config, models, connection, summary)
            result = _result(config, loaded, unparked, scorer, flows, cohorts, cross, named,
                             finished, history, tracking)  # fmt: skip
            result = dataclasses.replace(result, uplift=scorer.uplift(steps.notes))
            if write:
                result = dataclasses.replace(result, run_history=record_history(
                    config, result, writing, table, run_id))  # fmt: skip
            finished["result"] = result
            if staged is not None:
                with steps.stage("report"):
                    planned = WriteResult(
                        config.outputs.scores_table, config.outputs.schema_name,
                        scorer.n_customers, run_id, pd.Timestamp.now("UTC").to_pydatetime(),
                        config.outputs.write_mode) if write else None  # fmt: skip
                    _render(dataclasses.replace(result, written=planned,
                                                timings=dict(steps.timings),
                                                notes=tuple(steps.notes)), staged)  # fmt: skip

        try:
            with steps.stage("score and write"), _destination(config, environ, write,
                                                              engine) as destination:  # fmt: skip
                written = write_scores(
                    scorer.chunks(connection, statement, summary, extra), destination,
                    config.outputs.scores_table if write else "customer_value",
                    mode=config.outputs.write_mode if write else "replace",
                    schema=config.outputs.schema_name if write else None, run_id=run_id,
                    overwrite_foreign=config.outputs.overwrite_foreign,
                    protected=protected_tables(config) if write else (),
                    before_swap=before_swap,
                )  # fmt: skip
        except BaseException:
            if staged is not None:
                staged.discard()
            raise
    published = None if staged is None else staged.publish(scores_written=write)
    result: JobResult = finished["result"]
    return dataclasses.replace(result, written=written if write else None,
                               report_path=published, timings=dict(steps.timings),
                               notes=tuple(steps.notes))  # fmt: skip


def validated_in_database(config: JobConfig, *, environ: Mapping[str, str] | None = None) -> Loaded:
    """The transactions validated in the database, as a chunked run validates them.

    ``Loaded.transactions`` is empty (the rows stay in the database); ``report`` counts them.
    """
    end = observation_end_of(config)
    with _source(config, environ) as (engine, config), connection_to(engine) as connection:
        validated = _validated(config, engine, end)
        summary = _summary(config, connection, validated.clean, end)
        return _loaded(validated, pd.Timestamp(summary.end_day, unit="D"))


def fitted_in_database(
    config: JobConfig, *, environ: Mapping[str, str] | None = None
) -> FittedModels:
    """The models a chunked run fits, without scoring (``cvalue fit`` on a chunked file)."""
    end = observation_end_of(config)
    run_id = uuid.uuid4().hex
    with _source(config, environ) as (engine, config), connection_to(engine) as connection:
        clean = _kept(connection, _validated(config, engine, end).clean, run_id)
        summary = _kept_summary(connection, _summary(config, connection, clean, end), run_id)
        return _fit(config, connection, summary, pd.Timestamp(summary.end_day, unit="D"))


@contextlib.contextmanager
def _source(
    config: JobConfig, environ: Mapping[str, str] | None
) -> Iterator[tuple[sa.Engine, JobConfig]]:
    """The source database and the configuration to read it with.

    A DuckDB file the scores also go to is opened for writing too: DuckDB lets a process open
    a file once with one configuration, and the streamed rows are read while the scores are
    written, through the same engine. Files (``file``) are read through views of a scratch
    DuckDB (:mod:`._files`), which the configuration returned reads as tables.
    """
    with file_views(config) as views:
        if views is None:
            url = config.source_url(environ)
            same = config.outputs.url_env in (None, config.source.url_env)
            writes_here = same and sa.make_url(url).get_backend_name() == "duckdb"
        else:
            url, config, writes_here = views.url, views.config, True
        with _opened(config, url, writes_here) as engine:
            yield engine, config


@contextlib.contextmanager
def _opened(config: JobConfig, url: str, writes_here: bool) -> Iterator[sa.Engine]:
    """The engine of ``url``, DuckDB's memory bounded, its out-of-memory error explained."""
    with engine_for(url, read_only=not writes_here) as engine:
        if engine.dialect.name == "duckdb":  # one setting for the file's every connection
            with engine.connect() as connection:
                bound_duckdb(connection, config)
        try:
            yield engine
        except DatabaseError as exc:
            if engine.dialect.name != "duckdb" or "Out of Memory" not in str(exc):
                raise
            raise DatabaseError(
                f"{exc}. DuckDB ran out of the memory [run] duckdb_memory gives it "
                f"({config.run.duckdb_memory}): raise it, or lower chunk_customers"
            ) from exc


def _result(config: JobConfig, loaded: Loaded, models: FittedModels, scorer: _Scorer,
            flows: pd.DataFrame, cohorts: Any, cross: Any, named: Any,
            finished: Mapping[str, Any], history: pd.DataFrame,
            tracking: pd.DataFrame | None = None) -> JobResult:  # fmt: skip
    sample = pd.concat(scorer.samples) if scorer.samples else pd.DataFrame()
    kept = InDatabase(
        n_customers=scorer.n_customers, chunk_customers=int(config.run.chunk_customers or 0),
        n_chunks=scorer.n_chunks, sample=sample, best=scorer.best, history=history,
        tracking=tracking,
    )  # fmt: skip
    return JobResult(
        config=config, loaded=loaded, models=models, equity=scorer.equity.result(), flows=flows,
        cohorts=cohorts, profitability=cross, named_segments=named, tiers=finished["tiers"],
        grid=finished["grid"], whale=finished["whale"], in_database=kept,
        at_risk=finished.get("at_risk"),
        surveys_by_value=finished.get("surveys", {}),
    )  # fmt: skip
