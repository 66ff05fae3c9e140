"""The scoring job on a Dask cluster: ``[run] engine = "dask"``.

The transactions are read by the workers, from Parquet files or from the source database by
ranges of customer ids (:mod:`cvalue.job._dask_read`), and never gathered in one process; each
stage runs where the rows are, and the client holds only what does not grow with the
transactions (patterns, count tables, one partition of scores at a time, and the profitability's
row per customer):

1. **validate**: each customer's rows in one partition (Parquet files shuffled by customer, a
   database read by ranges of ids), so that the duplicates of a row meet, and
   :func:`cvalue.validate_transactions` runs on each partition; the rejected rows are counted by
   reason and the counts summed. An order id that two partitions hold rejects its rows as in
   memory (the order ids are counted across the partitions). The rules judged against the
   extract's majority (a row whose time zone or id kind differs from the rest) are judged within
   the partition;
2. **summary**: :func:`cvalue.rfm_summary` of the Dask log, persisted on the workers;
3. **fit**: the purchase models on the summary's patterns (:func:`cvalue.compress` on Dask), the
   model check on the calibration/holdout patterns, weighted
   (:func:`~cvalue.job._candidates.candidates_check`), the Gamma-Gamma on sums gathered over the
   summary's partitions (:meth:`cvalue.GammaGamma.fit_chunks`);
4. **lifecycle**: the Dask paths of :func:`cvalue.lifecycle_flows` and
   :func:`cvalue.cohort_retention`; each customer's last state from the panel's partitions;
5. **profitability** (with a category column): the Dask path of
   :func:`cvalue.customer_profitability`; its per-customer table comes back to the client, where
   the shares, drivers and segments are computed as in memory;
6. **score**: each customer's summary row joined (on the workers) to their attributes, recorded
   costs, last state and profit, valued and scored by the fitted models on the worker that holds
   it; the client takes the partitions one at a time into the staging table of
   :func:`cvalue.write_scores` and merges their equity cells (:class:`EquityStream`);
7. **before the swap**: the value tiers, the value x risk grid and the whale curve are ranked
   and summed in the staging table (:mod:`cvalue.segments.in_table`), then the report is
   rendered. With ``[outputs] scores_file`` the staging table is a scratch DuckDB file and its
   rows are written to a hidden folder beside the target, renamed into place after the write.

The scores equal the in-memory job's on the same data (the same functions on each customer's
whole rows); ties at a tier's edge are ranked by customer id, as the chunked job ranks them.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import math
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd
import sqlalchemy as sa

from cvalue.config import CostConfig, JobConfig
from cvalue.dask import add_tables, customer_results
from cvalue.errors import (
    DataQualityError,
    OutputError,
)
from cvalue.io import engine_for
from cvalue.io.schema import Columns
from cvalue.io.sqlkit import day_of, fetch_chunks
from cvalue.io.validate import ValidationReport
from cvalue.io.writeback import WriteResult, write_scores
from cvalue.job._candidates import candidates_check, fit_purchases, float_counts
from cvalue.job._chunked import _COST_ITEMS, _result, _Scorer
from cvalue.job._dask_read import _computed, _module, _parquet, _parts, read_section, validated
from cvalue.job._history import record_history
from cvalue.job._in_table import finish_in_table
from cvalue.job._outputs import StagedReport, check_outputs, protected_tables
from cvalue.job._read import _read_section, observation_end_of, source_engine
from cvalue.job._run import (
    _model_span,
    _render,
    _Run,
    customer_scores,
    horizon_label,
    job_costs,
    named_segments,
    too_new_note,
)
from cvalue.lifecycle import InactivityRule, cohort_retention, lifecycle_flows, lifecycle_states
from cvalue.models import GammaGamma, PurchaseModel
from cvalue.plot.sql_tracking import TrackingCounts, tracking_table_from_counts
from cvalue.purchases import purchase_days
from cvalue.results import FittedModels, HoldoutCheck, JobResult, Loaded
from cvalue.segments import (
    CrossSellProfitability,
    UnprofitableSegments,
    cross_sell_profitability,
    customer_profitability,
)
from cvalue.summary import calibration_holdout, compress, rfm_summary
from cvalue.units import Duration, TimeUnit
from cvalue.value import CustomerValue
from cvalue.value.equity_stream import EquityStream

if TYPE_CHECKING:
    from dask.dataframe import DataFrame as DaskFrame

__all__ = ["fitted_on_dask", "run_dask", "validated_on_dask"]

_SAMPLE = 100_000  # customers kept for the report's distributions, as the chunked job keeps
_PARQUET_ROWS = 250_000  # rows per Parquet file of [outputs] scores_file
_AHEAD = 4  # partitions scored ahead of the one the client writes
_HOLDOUT_KEYS = ("frequency", "recency", "T", "frequency_holdout", "duration_holdout")


@contextlib.contextmanager
def _client(config: JobConfig) -> Iterator[Any]:
    """A client of the configured scheduler, or of a local cluster closed at the end.

    The local cluster's dashboard takes a free port: another cluster may hold Dask's default.
    """
    distributed = _module("distributed")
    if config.run.scheduler is not None:
        with distributed.Client(config.run.scheduler) as client:
            yield client
        return
    with (
        distributed.LocalCluster(n_workers=config.run.dask_workers, processes=True,
                                 threads_per_worker=1, dashboard_address=":0") as cluster,
        distributed.Client(cluster) as client,
    ):  # fmt: skip
        yield client


# --- summary, fit and lifecycle -------------------------------------------------------------------


def _partitions(frame: DaskFrame) -> Iterator[pd.DataFrame]:
    """The frame's partitions computed one at a time (a persisted frame: fetched)."""
    for part in _parts(frame):
        rows: pd.DataFrame = part.compute()
        yield rows


def _patterns(frame: Any, keys: tuple[str, ...], unit: TimeUnit) -> pd.DataFrame:
    """The distinct ``keys`` of a Dask summary with their customers (``weight``) and unit."""
    compressed = compress(frame, keys)
    patterns = compressed.patterns.assign(weight=compressed.weights)
    patterns.attrs = {"unit": unit.value}
    return patterns


def _holdout_check(
    config: JobConfig, clean: DaskFrame, end: pd.Timestamp, unit: TimeUnit
) -> HoldoutCheck:
    """The candidates fitted on the calibration patterns and scored on the holdout, weighted."""
    names = config.models.candidates if config.models.purchase == "auto" else [
        config.models.purchase]  # fmt: skip
    calibration_end = end - pd.Timedelta(days=config.models.holdout.days)
    split = calibration_holdout(
        clean, calibration_end=calibration_end, observation_end=end, unit=unit,  # type: ignore[arg-type]
        grain=config.summary.grain,
    )  # fmt: skip
    split = split[split["T"] > 0]  # customers first seen on the last day: see _run._scorable
    return candidates_check(config, _patterns(split, _HOLDOUT_KEYS, unit), names, calibration_end,
                            keep_split=False)  # fmt: skip


def _fit(config: JobConfig, clean: DaskFrame, summary: DaskFrame,
         end: pd.Timestamp) -> FittedModels:  # fmt: skip
    """The purchase model fitted on the patterns, the Gamma-Gamma on sums over the partitions."""
    unit = config.summary.time_unit()
    scorable = summary[summary["T"] > 0]
    patterns = float_counts(_patterns(scorable, ("frequency", "recency", "T"), unit))
    too_new = summary[summary["T"] <= 0].index.compute().sort_values()
    check = _holdout_check(config, clean, end, unit)
    name = str(check.errors.index[0])
    purchase = fit_purchases(config, name, patterns)
    spend = GammaGamma().fit_chunks(lambda: _partitions(scorable), unit=unit)
    candidates = check.errors if config.models.purchase == "auto" else None
    return FittedModels(patterns, purchase, spend, candidates, "dask", too_new, check)


def _last_states(panel: pd.DataFrame, kind: object) -> pd.DataFrame:
    """Each customer's state in the last period, indexed by customer id of the summary's kind."""
    last = panel.groupby("customer_id", observed=True)["state"].last()
    index = pd.Index(np.asarray(last.index), name="customer_id").astype(kind)
    return pd.DataFrame({"lifecycle_state": last.astype(str).to_numpy(dtype=object)}, index=index)


def _lifecycle(
    config: JobConfig, client: Any, clean: DaskFrame, end: pd.Timestamp, kind: object
) -> tuple[pd.DataFrame, Any, DaskFrame]:
    """The flows, the cohort retention, and each customer's last state (a Dask frame).

    The panel's partitions hold whole customers, and their periods are categories of their own
    partition's span: the flows are added up over the partitions as they are, and the cohorts
    come from the log. A panel shuffled again by customer would mix ordered categories that
    differ, and fail, whenever a partition lacks the first periods (the first months of a
    business have few customers).
    """
    period = TimeUnit(config.lifecycle.period).pandas_alias
    rule = InactivityRule(window=config.lifecycle.window)
    states = client.persist(lifecycle_states(
        clean, period=period, rule=rule, observation_end=end,  # type: ignore[arg-type]
    ))  # fmt: skip
    flows = add_tables(customer_results(lifecycle_flows, states, customer_id=None))
    cohorts = cohort_retention(clean, period=period, rule=rule,  # type: ignore[arg-type]
                               observation_end=end)  # fmt: skip
    meta = _last_states(states._meta, kind)
    last: DaskFrame = states.map_partitions(_last_states, kind, meta=meta)
    return flows, cohorts, last


def _tracking_part(rows: pd.DataFrame, calibration_day: int, end_day: int) -> pd.DataFrame:
    """A partition's cohort counted per day (each customer whole): first purchases, repeats.

    What :func:`cvalue.plot.sql_tracking.sql_tracking_counts` counts in a database, for the
    day grain of continuous-time models.
    """
    if len(rows) == 0:
        return pd.DataFrame({"is_repeat": [], "day": [], "n": []}, dtype=np.int64)
    _, buyers, days = purchase_days(rows, None)
    grains = pd.DataFrame({"customer": buyers.to_numpy(), "day": days}).drop_duplicates()
    first = grains.groupby("customer")["day"].transform("min").to_numpy()
    day = grains["day"].to_numpy()
    in_cohort = first <= calibration_day
    births = pd.Series(day[in_cohort & (day == first)]).value_counts()
    repeats = pd.Series(day[in_cohort & (day > first) & (day <= end_day)]).value_counts()
    return pd.DataFrame({
        "is_repeat": np.repeat(np.array([0, 1], dtype=np.int64), [len(births), len(repeats)]),
        "day": np.concatenate([births.index, repeats.index]).astype(np.int64),
        "n": np.concatenate([births.to_numpy(), repeats.to_numpy()]).astype(np.int64),
    })  # fmt: skip


def _tracking(
    client: Any, clean: DaskFrame, models: FittedModels, end: pd.Timestamp
) -> pd.DataFrame | None:
    """The report's tracking table, from the partitions' counts per day.

    The model is the best candidate fitted on the calibration period; a discrete-time model,
    which no Dask run fits, gets none.
    """
    check = models.holdout
    model = cast("PurchaseModel", check.fitted[str(check.errors.index[0])])
    if model.discrete_time:
        return None
    calibration_day = day_of(check.calibration_end, "calibration_end")
    end_day = day_of(end, "observation_end")
    delayed = _module("dask").delayed
    tasks = [delayed(_tracking_part)(part, calibration_day, end_day) for part in _parts(clean)]
    counted = pd.concat(client.gather(client.compute(tasks)), ignore_index=True)
    sums = counted.groupby(["is_repeat", "day"])["n"].sum()
    by_kind = {flag: sums.xs(flag).sort_index() if flag in sums.index.get_level_values(0)
               else pd.Series([], dtype=np.int64) for flag in (0, 1)}  # fmt: skip
    counts = TrackingCounts(births=by_kind[0], repeats=by_kind[1])
    return tracking_table_from_counts(model, counts, calibration_end=check.calibration_end,
                                      observation_end=end)  # fmt: skip


# --- cross-sell profitability ---------------------------------------------------------------------


def _recorded_table(
    config: JobConfig, environ: Mapping[str, str] | None, name: str
) -> pd.DataFrame | None:
    """A recorded cost table read with pandas (``customer_id``, ``cost``): a row per contact."""
    costs: CostConfig | None = getattr(config.value, name)
    if costs is None or (costs.file is None and costs.table is None):
        return None
    wanted = {"customer_id": costs.customer_id, "cost": costs.cost}
    if costs.file is not None:
        return _computed(_parquet(costs.file, wanted, key=f"value.{name}"))
    with source_engine(config, environ) as engine:
        return _read_section(config, engine, costs, wanted, key=f"value.{name}")


def _profitability(
    config: JobConfig, environ: Mapping[str, str] | None, clean: DaskFrame
) -> CrossSellProfitability | None:
    """The Dask path of the profitability (each customer's rows and costs in one partition)."""
    if config.source.transactions.category is None:
        return None
    service = _recorded_table(config, environ, "cost_to_serve")
    if service is None:
        service = pd.DataFrame({"customer_id": pd.Series([], dtype=clean["customer_id"].dtype),
                                "cost": pd.Series([], dtype=np.float64)})  # fmt: skip
    segments = config.segments
    costs = job_costs(config, service)
    table = customer_profitability(
        clean, costs, promotion=segments.promotion,  # type: ignore[arg-type]
        min_categories=segments.cross_sell_min_categories,
    )  # fmt: skip
    return cross_sell_profitability(table, min_size=segments.min_segment_size)


def _named(
    config: JobConfig, loaded: Loaded, profit: CrossSellProfitability | None,
    attributes: DaskFrame | None,
) -> UnprofitableSegments | None:  # fmt: skip
    """The ``[segments] by`` segments judged as in memory, on the customers' attributes."""
    if not config.segments.by or profit is None or attributes is None:
        return None
    customers = _computed(attributes)
    return named_segments(config, dataclasses.replace(loaded, customers=customers), profit)


# --- the customers' rows, joined on the workers ---------------------------------------------------


def _by_customer(frame: DaskFrame) -> DaskFrame:
    """A frame with a ``customer_id`` column indexed by it, without sorting the whole base."""
    shuffled = frame.shuffle(on="customer_id", shuffle_method="tasks")
    indexed: DaskFrame = shuffled.map_partitions(
        pd.DataFrame.set_index, "customer_id", meta=frame._meta.set_index("customer_id")
    )
    return indexed


def _attributes(
    config: JobConfig, client: Any, environ: Mapping[str, str] | None
) -> DaskFrame | None:
    """The customers' mapped attributes, their ids checked unique (persisted on the workers)."""
    section = config.source.customers
    if section is None:
        return None
    wanted = {ours: theirs for ours, theirs in {
        "customer_id": section.customer_id, "segment": section.segment,
        "channel": section.channel, "acquisition_cost": section.acquisition_cost,
    }.items() if theirs is not None}  # fmt: skip
    table = client.persist(read_section(config, client, environ, section, wanted,
                                        key="source.customers"))  # fmt: skip
    ids = table["customer_id"]
    rows, distinct = _module("dask").compute(ids.size, ids.nunique())
    if rows != distinct:
        raise DataQualityError(
            f"[source.customers]: {rows - distinct:,} of {rows:,} rows repeat a customer id "
            f"({section.customer_id!r}); a customer needs one row. Deduplicate the table"
        )
    indexed: DaskFrame = client.persist(_by_customer(table))
    return indexed


def _recorded_costs(
    config: JobConfig, client: Any, environ: Mapping[str, str] | None, name: str
) -> DaskFrame | None:
    """The recorded costs of ``[value.<name>]`` summed per customer (``recorded_<name>``)."""
    costs: CostConfig | None = getattr(config.value, name)
    if costs is None or (costs.file is None and costs.table is None):
        return None
    rows = read_section(config, client, environ, costs,
                        {"customer_id": costs.customer_id, "cost": costs.cost},
                        key=f"value.{name}")  # fmt: skip
    sums: DaskFrame = rows.groupby("customer_id")["cost"].sum().to_frame(f"recorded_{name}")
    return sums


def _customer_rows(
    config: JobConfig, client: Any, environ: Mapping[str, str] | None,
    joined: tuple[DaskFrame, DaskFrame, DaskFrame | None], profit: CrossSellProfitability | None,
) -> DaskFrame:  # fmt: skip
    """Each scorable customer's summary row with their attributes, costs, state and profit.

    ``joined``: the summary, the customers' last states and their attributes.
    """
    summary, last, attributes = joined
    rows: DaskFrame = summary[summary["T"] > 0]
    costs = [_recorded_costs(config, client, environ, name) for name in _COST_ITEMS]
    tables = [attributes, *costs, last]
    if profit is not None:
        profits = profit.customers_[["net_profit", "is_cross_buyer"]]
        tables.append(_module("dask.dataframe").from_pandas(profits, npartitions=rows.npartitions))
    for table in tables:
        if table is not None:
            rows = rows.merge(  # type: ignore[no-untyped-call]
                table, how="left", left_index=True, right_index=True
            )
    return rows


# --- scoring on the workers -----------------------------------------------------------------------


@dataclass(frozen=True)
class _PartScorer:
    """Scores one partition of customers on a worker, as the in-memory job scores the base."""

    config: JobConfig
    models: FittedModels
    loaded: Loaded
    horizons: dict[str, Duration]
    attrs: dict[str, Any]

    def __call__(
        self, rows: pd.DataFrame
    ) -> tuple[pd.DataFrame, CustomerValue, pd.Series, pd.DataFrame] | None:
        if len(rows) == 0:
            return None
        rows = rows.sort_index()  # the base's order within the partition, as in memory
        rows.attrs.update(self.attrs)  # a join keeps no attrs; the models read the unit
        scorer = _Scorer(
            self.config,
            self.models,
            self.loaded,
            None,
            EquityStream(horizons=list(self.horizons.values())),
            self.horizons,
            0.0,
        )
        values = scorer.values(rows)
        p_alive = cast("PurchaseModel", self.models.purchase).p_alive(
            rows[["frequency", "recency", "T"]]
        )
        tier = pd.Series(pd.NA, index=rows.index, dtype="string")
        profits = rows[["net_profit", "is_cross_buyer"]] if "net_profit" in rows else None
        last = rows["lifecycle_state"]
        scores = customer_scores(rows.index, values, p_alive, tier, last, profits)
        kept = rows[[name for name in ("frequency", "segment") if name in rows]]
        return scores, values[scorer.longest], p_alive, kept


def _take(
    scorer: _Scorer, found: tuple[pd.DataFrame, CustomerValue, pd.Series, pd.DataFrame]
) -> pd.DataFrame:
    """One scored partition into the run's figures (equity cells, sample); its scores."""
    scores, value, p_alive, kept = found
    scorer.equity.add(value)
    scorer._keep(kept, value.customers["clv"], p_alive)
    return scores


def _scored(client: Any, tasks: list[Any], scorer: _Scorer) -> Iterator[pd.DataFrame]:
    """Every partition's scores, in order, one at a time.

    The cluster scores a few partitions ahead of the one taken (``_AHEAD``), so that the workers
    hold a few partitions' scores, not the whole base's.
    """
    waiting = collections.deque(tasks)
    running: collections.deque[Any] = collections.deque()
    while waiting or running:
        while waiting and len(running) < _AHEAD:
            running.append(client.compute(waiting.popleft()))
        found = running.popleft().result()
        if found is not None:
            yield _take(scorer, found)


# --- the outputs ----------------------------------------------------------------------------------


def _check_scores_file(target: Path) -> None:
    if target.exists() and not target.is_dir():
        raise OutputError(
            f"[outputs] scores_file {str(target)!r} exists and is not a folder; the scores are "
            "written as a folder of Parquet files: choose another path"
        )
    target.parent.mkdir(parents=True, exist_ok=True)


def _export(connection: sa.Connection, table: sa.Table, run_id: str, folder: Path) -> None:
    """The run's rows of the staging table as Parquet files in ``folder``."""
    folder.mkdir()
    statement = sa.select(table).where(table.c.run_id == run_id).order_by(table.c.customer_id)
    for number, rows in enumerate(fetch_chunks(connection, statement, _PARQUET_ROWS)):
        rows.to_parquet(folder / f"part-{number:05d}.parquet", index=False)


def _publish(hidden: Path, target: Path, run_id: str) -> None:
    """``hidden`` renamed to ``target``; the previous folder removed once the new one is in."""
    old = target.with_name(f".{target.name}.{run_id[:12]}.old")
    if target.exists():
        target.rename(old)
    hidden.rename(target)
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def _destination(config: JobConfig, environ: Mapping[str, str] | None,
                 to_database: bool) -> Iterator[sa.Engine]:  # fmt: skip
    """The scores database, or a scratch DuckDB file (Parquet output, or nothing written).

    DuckDB, which ranks the tiers in the client's process, is held to ``[run] duckdb_memory``.
    """
    with contextlib.ExitStack() as stack:
        url = config.scores_url(environ) if to_database else None
        if url is None:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cvalue-")))
            url = f"duckdb:///{folder / 'scores.duckdb'}"
        engine = stack.enter_context(engine_for(url))
        if engine.dialect.name == "duckdb":  # one setting for the file's every connection
            with engine.connect() as connection:
                connection.exec_driver_sql("SET memory_limit = ?", (config.run.duckdb_memory,))
        yield engine


# --- the run --------------------------------------------------------------------------------------


def _loaded(clean: DaskFrame, report: ValidationReport, end: pd.Timestamp) -> Loaded:
    """What a Dask run 'loaded': the report and the end; the rows stay on the workers."""
    names = list(clean.columns)
    return Loaded(
        transactions=pd.DataFrame(columns=names), rejected=pd.DataFrame(), report=report,
        observation_end=end, customers=None, service_costs=None, marketing_costs=None,
        surveys=None, columns=Columns.detect(names),
        notes=("the transactions stay on the Dask workers: validated, summarised and scored "
               'there partition by partition ([run] engine = "dask")',),
    )  # fmt: skip


@dataclass(frozen=True)
class _Stages:
    """What the stages before the scores found, for the report."""

    loaded: Loaded
    models: FittedModels
    flows: pd.DataFrame
    cohorts: Any
    profit: CrossSellProfitability | None
    named: UnprofitableSegments | None
    history: Callable[[object], pd.DataFrame]
    tracking: pd.DataFrame | None


def _prepare(config: JobConfig, client: Any, environ: Mapping[str, str] | None,
             steps: _Run) -> tuple[_Stages, DaskFrame]:  # fmt: skip
    """Validation, the summary, the fit and the lifecycle; the customers' rows to score.

    Every table is read before the scores are written: a DuckDB source file that also takes
    the scores is then open for reading in no worker.
    """
    with steps.stage("read and validate"):
        clean, loaded = _validated_run(config, client, environ)
    steps.notes.extend(loaded.notes)
    end = loaded.observation_end
    with steps.stage("summarise and fit"):
        summary = _summary(config, client, clean, end)
        models = _fit(config, clean, summary, end)
    steps.notes.append("summary computed on the Dask workers")
    if len(models.too_new):
        steps.notes.append(too_new_note(models.too_new))
    with steps.stage("lifecycle"):
        flows, cohorts, last = _lifecycle(config, client, clean, end, summary.index.dtype)
    with steps.stage("tracking"):
        tracking = _tracking(client, clean, models, end)
    with steps.stage("cross-sell profitability"):
        attributes = _attributes(config, client, environ)
        profit = _profitability(config, environ, clean)
        named = _named(config, loaded, profit, attributes)
    rows = client.persist(
        _customer_rows(config, client, environ, (summary, last, attributes), profit)
    )
    _module("distributed").wait(rows)
    stages = _Stages(loaded, models, flows, cohorts, profit, named, _best_history(clean),
                     tracking)  # fmt: skip
    return stages, rows


def _validated_run(
    config: JobConfig, client: Any, environ: Mapping[str, str] | None
) -> tuple[DaskFrame, Loaded]:
    """The clean rows on the workers, and what the run 'loaded'."""
    configured = observation_end_of(config)
    clean, report = validated(config, client, environ, configured)
    end = configured if configured is not None else pd.Timestamp(
        clean["timestamp"].max().compute()).normalize()  # fmt: skip
    return clean, _loaded(clean, report, end)


def _summary(config: JobConfig, client: Any, clean: DaskFrame, end: pd.Timestamp) -> DaskFrame:
    """The RFM summary, persisted on the workers."""
    summary: DaskFrame = client.persist(rfm_summary(
        clean, observation_end=end, unit=config.summary.time_unit(),  # type: ignore[arg-type]
        grain=config.summary.grain,
    ))  # fmt: skip
    return summary


def validated_on_dask(config: JobConfig, *, environ: Mapping[str, str] | None = None) -> Loaded:
    """The transactions validated on the Dask cluster, as a Dask run validates them.

    ``cvalue validate`` on a file with ``[run] engine = "dask"``. ``Loaded.transactions`` is
    empty (the rows stay on the workers); ``report`` counts them.
    """
    with _client(config) as client:
        return _validated_run(config, client, environ)[1]


def fitted_on_dask(config: JobConfig, *, environ: Mapping[str, str] | None = None) -> FittedModels:
    """The models a Dask run fits, without scoring (``cvalue fit`` on a Dask file)."""
    with _client(config) as client:
        clean, loaded = _validated_run(config, client, environ)
        end = loaded.observation_end
        return _fit(config, clean, _summary(config, client, clean, end), end)


def run_dask(
    config: JobConfig,
    *,
    environ: Mapping[str, str] | None,
    write: bool,
    target: Path | None,
    steps: _Run,
) -> JobResult:
    """The whole job on a Dask cluster (see the module's docstring)."""
    to_file = config.outputs.scores_file if write else None
    check_outputs(config, write=write and to_file is None, report_path=target, environ=environ)
    if to_file is not None:
        _check_scores_file(to_file)
    with _client(config) as client:
        stages, rows = _prepare(config, client, environ, steps)
        loaded, models = stages.loaded, stages.models
        unit = config.summary.time_unit()
        horizons = {horizon_label(h): _model_span(models.purchase, h, unit)
                    for h in config.value.horizons}  # fmt: skip
        n_customers = int(models.summary["weight"].sum())
        has_segment = config.source.customers is not None and (
            config.source.customers.segment is not None)  # fmt: skip
        scorer = _Scorer(config, models, loaded, None, EquityStream(
            horizons=list(horizons.values()), by="segment" if has_segment else None),
            horizons, min(1.0, _SAMPLE / max(n_customers, 1)))  # fmt: skip
        delayed = _module("dask").delayed
        part_scorer = delayed(_PartScorer(config, models, loaded, horizons, {"unit": unit.value}),
                              traverse=False)  # fmt: skip
        tasks = [delayed(part_scorer)(part) for part in _parts(rows)]
        return _write(config, environ, write, target, steps, scorer, tasks, client, stages)


def _best_history(clean: DaskFrame) -> Callable[[object], pd.DataFrame]:
    def history(customer: object) -> pd.DataFrame:
        rows: pd.DataFrame = clean[clean["customer_id"] == customer].compute()
        return rows.sort_values("timestamp", kind="stable")

    return history


def _write(config: JobConfig, environ: Mapping[str, str] | None, write: bool,
           target: Path | None, steps: _Run, scorer: _Scorer, tasks: list[Any], client: Any,
           stages: _Stages) -> JobResult:  # fmt: skip
    """The scores written (the database, or Parquet through a scratch table), and the report."""
    run_id = uuid.uuid4().hex
    to_file = config.outputs.scores_file if write else None
    to_database = write and to_file is None
    hidden = None if to_file is None else to_file.with_name(f".{to_file.name}.{run_id[:12]}")
    staged = None if target is None else StagedReport(target, run_id)
    finished: dict[str, Any] = {}

    def before_swap(writing: sa.Connection, table: sa.Table) -> None:
        finished.update(
            finish_in_table(config, writing, table, run_id, scorer, stages.profit is not None)
        )
        if hidden is not None:
            _export(writing, table, run_id, hidden)
        best = pd.DataFrame()
        if scorer.best is not None:
            best = stages.history(scorer.best["customer"])
        result = _result(config, stages.loaded, stages.models, scorer, stages.flows,
                         stages.cohorts, stages.profit, stages.named, finished, best,
                         stages.tracking)  # fmt: skip
        assert result.in_database is not None  # _result always sets it
        size = math.ceil(scorer.n_customers / max(scorer.n_chunks, 1))
        result = dataclasses.replace(result, in_database=dataclasses.replace(
            result.in_database, chunk_customers=size))  # fmt: skip
        if to_database:  # a Parquet folder of scores has no database to keep a history in
            result = dataclasses.replace(result, run_history=record_history(
                config, result, writing, table, run_id))  # fmt: skip
        finished["result"] = result
        if staged is not None:
            with steps.stage("report"):
                planned = _planned(config, scorer.n_customers, run_id, to_file) if write else None
                _render(dataclasses.replace(result, written=planned, timings=dict(steps.timings),
                                            notes=tuple(steps.notes)), staged)  # fmt: skip

    try:
        with steps.stage("score and write"), _destination(config, environ,
                                                          to_database) as destination:  # fmt: skip
            written = write_scores(
                _scored(client, tasks, scorer), destination,
                config.outputs.scores_table if to_database else "customer_value",
                mode=config.outputs.write_mode if to_database else "replace",
                schema=config.outputs.schema_name if to_database else None, run_id=run_id,
                overwrite_foreign=config.outputs.overwrite_foreign,
                protected=protected_tables(config) if to_database else (),
                before_swap=before_swap,
            )  # fmt: skip
        if hidden is not None and to_file is not None:
            _publish(hidden, to_file, run_id)
            written = _planned(config, written.rows_written, run_id, to_file)
    except BaseException:
        if staged is not None:
            staged.discard()
        if hidden is not None:
            shutil.rmtree(hidden, ignore_errors=True)
        raise
    published = None if staged is None else staged.publish(scores_written=write)
    result: JobResult = finished["result"]
    return dataclasses.replace(result, written=written if write else None,
                               report_path=published, timings=dict(steps.timings),
                               notes=tuple(steps.notes))  # fmt: skip


def _planned(config: JobConfig, n_rows: int, run_id: str, to_file: Path | None) -> WriteResult:
    """The write as the report and the result name it: the table, or the Parquet folder."""
    table = config.outputs.scores_table if to_file is None else str(to_file)
    schema = config.outputs.schema_name if to_file is None else None
    mode = config.outputs.write_mode if to_file is None else "replace"
    return WriteResult(table, schema, n_rows, run_id, pd.Timestamp.now("UTC").to_pydatetime(), mode)
