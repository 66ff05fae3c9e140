"""The scoring job: read the CRM, validate, summarise, fit, value, segment, write back, report.

``cvalue score --config cvalue.toml`` runs :func:`run`; the other commands run its first stages
(:func:`load` for ``validate``, :func:`fit_models` for ``fit``). Each stage is a plain function
of the configuration and the previous stages' results, so a notebook can run them one by one.

The heavy per-customer aggregation runs in the database when it can: the RFM summary is computed
there (:func:`cvalue.sql_rfm_summary`) when validation rejected no row, so that the database and
pandas see the same purchases; otherwise from the validated rows in pandas. Which path ran is
recorded in :attr:`JobResult.notes`.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import sqlalchemy as sa

from cvalue.config import CostConfig, JobConfig
from cvalue.errors import MissingColumnsError, SchemaError
from cvalue.io._database import connection_to, engine_for
from cvalue.io.schema import Columns
from cvalue.io.sources import read_transactions
from cvalue.io.sql import _table_columns, sql_rfm_summary
from cvalue.io.validate import ValidationReport, validate_transactions
from cvalue.io.writeback import WriteResult, write_scores
from cvalue.lifecycle import InactivityRule, cohort_retention, lifecycle_flows, lifecycle_states
from cvalue.metrics import by_value
from cvalue.models import BetaGeo, BetaGeoBetaBinom, GammaGamma, ModifiedBetaGeo, ParetoNBD
from cvalue.models._base import Model
from cvalue.segments import (
    Costs,
    CrossSellProfitability,
    UnprofitableSegments,
    ValueTiers,
    WhaleCurve,
    cross_sell_profitability,
    unprofitable_segments,
    value_risk_grid,
    value_tiers,
    whale_curve,
)
from cvalue.summary import calibration_holdout, rfm_summary
from cvalue.units import Duration, TimeUnit, as_timestamp
from cvalue.value import (
    CustomerEquity,
    CustomerValue,
    DiscountRates,
    churn_hazard,
    clv,
    customer_equity,
    margin_by_category,
    margin_variation,
)

__all__ = [
    "FittedModels",
    "HoldoutCheck",
    "JobResult",
    "Loaded",
    "Stage",
    "fit_models",
    "holdout_check",
    "load",
    "run",
]

Stage = Literal["validate", "fit", "score"]
PURCHASE_MODELS: dict[str, type[Model]] = {
    "beta_geo": BetaGeo,
    "pareto_nbd": ParetoNBD,
    "modified_beta_geo": ModifiedBetaGeo,
    "beta_geo_beta_binom": BetaGeoBetaBinom,
}
_VALUE_PERIOD = Duration(1, TimeUnit.MONTH)


@dataclass(frozen=True, slots=True)
class Loaded:
    """What the job read and what validation kept.

    Attributes
    ----------
    transactions
        The validated rows, in cvalue's column names; the label columns (``category``,
        ``channel``, ``segment``) as pandas categoricals.
    rejected
        The rows validation rejected, with their reasons.
    report
        Validation's counts by reason.
    observation_end
        The end of the observation period.
    customers, service_costs, marketing_costs, surveys
        The optional tables, indexed or keyed by customer id (``None`` when not configured).
    columns
        The role mapping of ``transactions``.
    """

    transactions: pd.DataFrame
    rejected: pd.DataFrame
    report: ValidationReport
    observation_end: pd.Timestamp
    customers: pd.DataFrame | None
    service_costs: pd.DataFrame | None
    marketing_costs: pd.DataFrame | None
    surveys: pd.DataFrame | None
    columns: Columns


@dataclass(frozen=True, slots=True)
class FittedModels:
    """The customer summary and the models fitted on it.

    Attributes
    ----------
    summary
        frequency, recency, T, monetary_value by customer.
    purchase
        The purchase model used to score.
    spend
        The Gamma-Gamma spend model.
    candidates
        With ``purchase = "auto"``: each candidate's holdout error; the chosen one first.
    summary_source
        ``"database"`` or ``"pandas"``: where the summary was computed.
    too_new
        Customers whose first purchase is on the observation end (T = 0), left out of the fit
        and the scores (see :func:`_scorable`).
    holdout
        The purchase model(s) fitted on the calibration period, for the model choice and the
        report's tracking and holdout plots.
    """

    summary: pd.DataFrame
    purchase: Model
    spend: GammaGamma
    candidates: pd.DataFrame | None
    summary_source: str
    too_new: pd.Index
    holdout: HoldoutCheck


@dataclass(frozen=True, slots=True)
class JobResult:
    """Everything a run produced; :mod:`cvalue.report` turns it into the HTML report."""

    config: JobConfig
    loaded: Loaded
    models: FittedModels | None = None
    scores: pd.DataFrame | None = None
    customer_values: Mapping[str, CustomerValue] = field(default_factory=dict)
    equity: CustomerEquity | None = None
    last_states: pd.Series | None = None  # by customer id: the state in the last period
    flows: pd.DataFrame | None = None
    cohorts: pd.DataFrame | None = None
    profitability: CrossSellProfitability | None = None
    named_segments: UnprofitableSegments | None = None
    tiers: ValueTiers | None = None
    grid: pd.DataFrame | None = None
    whale: WhaleCurve | None = None
    surveys_by_value: Mapping[str, pd.DataFrame] = field(default_factory=dict)
    written: WriteResult | None = None
    report_path: Path | None = None
    timings: Mapping[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


class _Run:
    """Timings and notes (captured warnings, choices made) of one run."""

    def __init__(self, progress: Callable[[str], None] | None) -> None:
        self.timings: dict[str, float] = {}
        self.notes: list[str] = []
        self._progress = progress

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        if self._progress is not None:
            self._progress(name)
        started = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
        self.timings[name] = time.perf_counter() - started
        self.notes.extend(f"{name}: {warning.message}" for warning in caught)


# --- reading --------------------------------------------------------------------------------


def _read_table(
    engine: sa.Engine, table: str, columns: Mapping[str, str], schema: str | None, *, key: str
) -> pd.DataFrame:
    """Columns of a table, renamed from the database's names to the job's (``{ours: theirs}``).

    A missing table or column is a configuration problem, named with its config ``key``.
    """
    with connection_to(engine) as connection:
        available = _table_columns(connection, table, schema)
        missing = sorted(set(columns.values()) - set(available))
        if missing:
            raise SchemaError(
                f"[{key}]: column(s) {missing} not found in table {table!r}; it has "
                f"{sorted(available)}. Map the right names in [{key}]"
            )
        source = sa.table(table, *(sa.column(name) for name in columns.values()), schema=schema)
        query = sa.select(*(source.c[theirs].label(ours) for ours, theirs in columns.items()))
        return pd.read_sql(query, connection)


def _present(mapping: Mapping[str, str | None]) -> dict[str, str]:
    return {ours: theirs for ours, theirs in mapping.items() if theirs is not None}


def _optional_tables(config: JobConfig, engine: sa.Engine) -> dict[str, pd.DataFrame | None]:
    source, schema = config.source, config.source.schema_name
    customers = surveys = None
    if source.customers is not None:
        wanted = _present({
            "customer_id": source.customers.customer_id, "segment": source.customers.segment,
            "channel": source.customers.channel,
            "acquisition_cost": source.customers.acquisition_cost,
        })  # fmt: skip
        customers = _read_table(
            engine, source.customers.table, wanted, schema, key="source.customers"
        )
        customers = customers.set_index("customer_id")
    if source.surveys is not None:
        wanted = _present({
            "customer_id": source.surveys.customer_id, "timestamp": source.surveys.timestamp,
            "nps": source.surveys.nps,
            "csat": source.surveys.csat, "ces": source.surveys.ces,
        })  # fmt: skip
        surveys = _read_table(engine, source.surveys.table, wanted, schema, key="source.surveys")
    recorded: dict[str, pd.DataFrame | None] = {}
    for name in ("cost_to_serve", "marketing_cost"):
        costs: CostConfig | None = getattr(config.value, name)
        recorded[name] = None
        if costs is not None and costs.table is not None:
            wanted = {"customer_id": costs.customer_id, "cost": costs.cost}
            recorded[name] = _read_table(engine, costs.table, wanted, schema, key=f"value.{name}")
    return {"customers": customers, "surveys": surveys,
            "service_costs": recorded["cost_to_serve"],
            "marketing_costs": recorded["marketing_cost"]}  # fmt: skip


def _transactions_query(config: JobConfig, columns: Columns) -> sa.Select[tuple[object, ...]]:
    """The configured query as a subquery with the mapped columns (the text is the user's own)."""
    query = config.source.transactions.query
    if query is None:
        raise SchemaError("[source.transactions] needs `table` or `query`")
    names = [name for name in columns.mapping().values() if name is not None]
    names += _extra_columns(config)
    textual = sa.text(query).columns(*(sa.column(name) for name in dict.fromkeys(names)))
    return sa.select(textual.subquery("configured_query"))


def _extra_columns(config: JobConfig) -> list[str]:
    promotion = config.segments.promotion
    return [] if promotion is None else [promotion]


_LABEL_COLUMNS = ("category", "channel", "segment")


def _with_categories(transactions: pd.DataFrame) -> pd.DataFrame:
    """The label columns (category, channel, segment) as pandas categoricals.

    A few distinct labels repeat over millions of rows: one byte of code per row instead of a
    string each, which is most of the transaction log's memory.
    """
    is_text = pd.api.types.is_string_dtype
    labels = [name for name in _LABEL_COLUMNS if name in transactions]
    labels = [name for name in labels if is_text(transactions[name])]
    if not labels:
        return transactions
    return transactions.astype(dict.fromkeys(labels, "category"))


def _in_config_terms(exc: MissingColumnsError) -> SchemaError:
    """The missing columns as the configuration file names them: keys of [source.transactions]."""
    keys = ", ".join(f"{role} = {name!r}" for name, role in exc.missing.items())
    return SchemaError(
        f"[source.transactions] maps {keys}, but {exc.where} has no such column(s); it has "
        f"{exc.available}. Correct the mapping under [source.transactions]"
    )


def load(config: JobConfig, *, environ: Mapping[str, str] | None = None) -> Loaded:
    """Read the configured tables and validate the transactions."""
    columns = config.source.transactions.columns()
    table = config.source.transactions.table
    with engine_for(config.source_url(environ), read_only=True) as engine:
        try:
            raw = read_transactions(
                engine, table=table, query=None if table else _transactions_query(config, columns),
                columns=columns, schema=config.source.schema_name,
                extra_columns=_extra_columns(config),
            )  # fmt: skip
        except MissingColumnsError as exc:
            raise _in_config_terms(exc) from None
        tables = _optional_tables(config, engine)
    end = config.summary.observation_end
    checked = validate_transactions(raw, observation_end=None if end is None else end)
    del raw  # the validated rows replace it
    clean = _with_categories(checked.clean)
    observation_end = as_timestamp(end) if end is not None else clean["timestamp"].max().normalize()
    return Loaded(
        transactions=clean, rejected=checked.rejected, report=checked.report,
        observation_end=observation_end, customers=tables["customers"],
        service_costs=tables["service_costs"], marketing_costs=tables["marketing_costs"],
        surveys=tables["surveys"],
        columns=Columns.detect(clean.columns),
    )  # fmt: skip


# --- summary and models -----------------------------------------------------------------------


def _summary(config: JobConfig, loaded: Loaded, source: sa.Engine) -> tuple[pd.DataFrame, str]:
    """The RFM summary: in the database when validation rejected nothing, else in pandas."""
    unit, grain = config.summary.time_unit(), config.summary.grain
    if loaded.report.n_rejected == 0 and config.source.transactions.table is not None:
        summary = sql_rfm_summary(
            source, table=config.source.transactions.table,
            columns=config.source.transactions.columns(), observation_end=loaded.observation_end,
            unit=unit, grain=grain, schema=config.source.schema_name,
        )  # fmt: skip
        return summary, "database"
    summary = rfm_summary(
        loaded.transactions, observation_end=loaded.observation_end, unit=unit, grain=grain
    )
    return summary, "pandas"


def _scorable(summary: pd.DataFrame) -> tuple[pd.DataFrame, pd.Index]:
    """The customers the purchase models can score, and the ids of those they cannot.

    A customer first seen on the observation end has T = 0: no time has passed in which to
    learn anything about them, and the models require T > 0. They are counted, named in the
    run's notes, and scored by the next run.
    """
    is_new = summary["T"].to_numpy() <= 0
    return summary[~is_new], summary.index[is_new]


@dataclass(frozen=True, slots=True)
class HoldoutCheck:
    """Purchase models fitted on a calibration period and scored on the holdout that follows.

    Attributes
    ----------
    calibration_end
        The end of the calibration period (``observation_end`` minus ``[models] holdout``).
    split
        :func:`cvalue.calibration_holdout`'s table of the customers that can be scored.
    fitted
        Each model fitted on the calibration period, by its config name.
    errors
        Per model, its holdout error, best first.
    """

    calibration_end: pd.Timestamp
    split: pd.DataFrame
    fitted: Mapping[str, Model]
    errors: pd.DataFrame


def holdout_check(config: JobConfig, loaded: Loaded, names: Sequence[str]) -> HoldoutCheck:
    """Fit the ``names`` models on a calibration period and score them on the holdout."""
    holdout = config.models.holdout
    calibration_end = loaded.observation_end - pd.Timedelta(days=holdout.days)
    split = calibration_holdout(
        loaded.transactions, calibration_end=calibration_end,
        observation_end=loaded.observation_end, unit=config.summary.time_unit(),
        grain=config.summary.grain,
    )  # fmt: skip
    split = split[split["T"] > 0]  # customers first seen on the last day: see _scorable
    actual = split["frequency_holdout"].to_numpy(dtype=np.float64)
    rows, fitted = {}, {}
    for name in names:
        model = fitted[name] = PURCHASE_MODELS[name]().fit(split)
        predicted = model.expected_purchases(  # type: ignore[attr-defined]
            float(split["duration_holdout"].iloc[0]), split
        ).to_numpy(dtype=np.float64)
        rows[name] = {
            "holdout_mae": float(np.mean(np.abs(predicted - actual))),
            "predicted_total": float(predicted.sum()),
            "actual_total": float(actual.sum()),
            "calibration_log_likelihood": model.log_likelihood_,
        }
    table = pd.DataFrame.from_dict(rows, orient="index").sort_values("holdout_mae")
    table.index.name = "model"
    return HoldoutCheck(calibration_end, split, fitted, table)


def fit_models(
    config: JobConfig, loaded: Loaded, *, environ: Mapping[str, str] | None = None
) -> FittedModels:
    """Summarise, choose and fit the purchase model, and fit the spend model."""
    with engine_for(config.source_url(environ), read_only=True) as engine:
        summary, source = _summary(config, loaded, engine)
    summary, too_new = _scorable(summary)
    choice = config.models.purchase
    is_auto = choice == "auto"
    check = holdout_check(config, loaded, config.models.candidates if is_auto else [choice])
    name = str(check.errors.index[0])
    purchase = PURCHASE_MODELS[name]().fit(summary)
    spend = GammaGamma().fit(summary)
    candidates = check.errors if is_auto else None
    return FittedModels(summary, purchase, spend, candidates, source, too_new, check)


# --- value ------------------------------------------------------------------------------------


def _segments(loaded: Loaded, index: pd.Index) -> pd.Series | None:
    """Each summarised customer's segment from the customers table (``"unassigned"`` if none)."""
    if loaded.customers is None or "segment" not in loaded.customers:
        return None
    segment = loaded.customers["segment"].astype("string").reindex(index)
    return segment.fillna("unassigned").astype(str).rename("segment")


def _cost_per_period(
    costs: CostConfig | None,
    recorded: pd.DataFrame | None,
    summary: pd.DataFrame,
    segment: pd.Series | None,
    unit: TimeUnit,
) -> float | pd.Series | dict[str, float]:
    """A cost per valuation period (a month): fixed, by segment, or recorded costs per tenure."""
    if costs is None:
        return 0.0
    scale = _VALUE_PERIOD.days / TimeUnit(costs.per).days
    if costs.amount is not None:
        return costs.amount * scale
    if costs.by_segment is not None:
        if segment is None:
            raise SchemaError(
                "[value] costs by_segment need a segment column: set [source.customers] segment"
            )
        return {name: amount * scale for name, amount in costs.by_segment.items()}
    if recorded is None:
        return 0.0
    total = recorded.groupby("customer_id")["cost"].sum().reindex(summary.index, fill_value=0.0)
    # a customer's recorded costs spread over their tenure so far, at least one period
    tenure_periods = np.maximum(summary["T"] * unit.days / _VALUE_PERIOD.days, 1.0)
    return (total / tenure_periods).rename("cost_per_period")


def _rates(
    config: JobConfig, loaded: Loaded, models: FittedModels, segment: pd.Series | None
) -> DiscountRates:
    discount = config.value.discount
    quoted = {"per": discount.per, "compounding": discount.compounding}
    if discount.kind == "scalar":
        return DiscountRates.single(discount.rate, **quoted)  # type: ignore[arg-type]
    if segment is None:
        raise SchemaError(
            f"[value.discount] kind = {discount.kind!r} needs segments: set "
            "[source.customers] with its segment column"
        )
    if discount.kind == "by_segment":
        return DiscountRates.by_segment(
            discount.by_segment or {},
            default=discount.rate,
            **quoted,  # type: ignore[arg-type]
        )
    if discount.measure == "churn_hazard":
        risk = churn_hazard(models.summary, purchases=models.purchase, segment=segment)
    elif discount.measure == "margin_variation":
        spend = models.summary["monetary_value"] * (models.summary["frequency"] + 1.0)
        risk = margin_variation(spend * config.value.margin, segment)
    else:
        risk = _customer_column(loaded, str(discount.column)).reindex(segment.index)
        return DiscountRates.risk_adjusted(
            base=discount.rate, premium=discount.premium or 0.0, risk=risk, segment=segment,
            **quoted,  # type: ignore[arg-type]
        )  # fmt: skip
    return DiscountRates.risk_adjusted(
        base=discount.rate, premium=discount.premium or 0.0, risk=risk,
        **quoted,  # type: ignore[arg-type]
    )  # fmt: skip


def _customer_column(loaded: Loaded, column: str) -> pd.Series:
    if loaded.customers is None or column not in loaded.customers:
        raise SchemaError(
            f"the risk column {column!r} is not among the customers table's columns; "
            "map it in [source.customers]"
        )
    return loaded.customers[column]


def _margin(config: JobConfig, loaded: Loaded, index: pd.Index) -> float | pd.Series:
    by_category = config.value.margin_by_category
    if by_category is None:
        return config.value.margin
    margins = margin_by_category(loaded.transactions, by_category)
    return margins.reindex(index).fillna(config.value.margin)


def value_customers(
    config: JobConfig, loaded: Loaded, models: FittedModels
) -> tuple[dict[str, CustomerValue], CustomerEquity]:
    """CLV of every customer at each configured horizon, and customer equity by segment."""
    summary, unit = models.summary, config.summary.time_unit()
    segment = _segments(loaded, summary.index)
    acquisition = None
    if loaded.customers is not None and "acquisition_cost" in loaded.customers:
        acquisition = loaded.customers["acquisition_cost"].reindex(summary.index).fillna(0.0)
    net_of = set(config.value.margin_is_net_of)
    common = {
        "purchases": models.purchase, "spend": models.spend,
        "margin": _margin(config, loaded, summary.index),
        "rates": _rates(config, loaded, models, segment), "segment": segment,
        "margin_net_of": tuple(net_of),
        "acquisition_cost": None if "acquisition_cost" in net_of else acquisition,
        "cost_to_serve": None if "cost_to_serve" in net_of else _cost_per_period(
            config.value.cost_to_serve, loaded.service_costs, summary, segment, unit),
        "marketing_cost": None if "marketing_cost" in net_of else _cost_per_period(
            config.value.marketing_cost, loaded.marketing_costs, summary, segment, unit),
    }  # fmt: skip
    values = {
        horizon_label(horizon): clv(summary, horizon=horizon, **common)  # type: ignore[arg-type]
        for horizon in config.value.horizons
    }
    longest = max(config.value.horizons, key=lambda horizon: horizon.days)
    equity = customer_equity(
        values[horizon_label(longest)], horizons=config.value.horizons,
        by="segment" if segment is not None else None,
    )  # fmt: skip
    return values, equity


# --- lifecycle, segments, surveys -------------------------------------------------------------


def lifecycle(config: JobConfig, loaded: Loaded) -> tuple[pd.Series, pd.DataFrame, pd.DataFrame]:
    """Each customer's last state, the flows per period and the cohort x age retention shares.

    The last state is the one in the last calendar period. The state panel itself (a row per
    customer and period: 18 million rows for a million customers over three years) is not kept;
    :func:`cvalue.lifecycle_states` builds it.
    """
    states = lifecycle_states(
        loaded.transactions, period=TimeUnit(config.lifecycle.period).pandas_alias,
        rule=InactivityRule(window=config.lifecycle.window),
        observation_end=loaded.observation_end,
    )  # fmt: skip
    flows, cohorts = lifecycle_flows(states), cohort_retention(states).shares
    last = states.groupby("customer_id", observed=True)["state"].last()
    return last.rename("lifecycle_state"), flows, cohorts


def _service_contacts(loaded: Loaded) -> pd.DataFrame:
    if loaded.service_costs is not None:
        return loaded.service_costs
    return pd.DataFrame({"customer_id": pd.Series([], dtype=object), "cost": []})


def profitability(config: JobConfig, loaded: Loaded) -> CrossSellProfitability | None:
    """Net profit per customer and the unprofitable cross-buyers (needs a category column)."""
    if "category" not in loaded.transactions:
        return None
    costs = Costs(
        margin_rate=config.value.margin, service_contacts=_service_contacts(loaded),
        promotion_discount_rate=config.segments.promotion_discount_rate,
        return_handling_cost=config.segments.return_handling_cost,
    )  # fmt: skip
    return cross_sell_profitability(
        loaded.transactions, costs, promotion=config.segments.promotion,
        min_categories=config.segments.cross_sell_min_categories,
        min_size=config.segments.min_segment_size,
    )  # fmt: skip


def named_segments(
    config: JobConfig, loaded: Loaded, profit: CrossSellProfitability | None
) -> UnprofitableSegments | None:
    """The segments named in ``[segments] by`` (customers-table columns), judged for losses."""
    names = config.segments.by
    if not names or profit is None:
        return None
    table = profit.customers_
    missing = [name for name in names if loaded.customers is None or name not in loaded.customers]
    if missing:
        raise SchemaError(
            f"[segments] by names {missing}, which the customers table does not have; map them "
            "in [source.customers] (segment, channel)"
        )
    assert loaded.customers is not None  # checked above
    keys = [loaded.customers[name].reindex(table.index).astype("string").fillna("unassigned")
            .rename(name) for name in names]  # fmt: skip
    return unprofitable_segments(
        table, by=keys, population="all", min_size=config.segments.min_segment_size
    )


def surveys_by_value(loaded: Loaded, values: pd.Series) -> dict[str, pd.DataFrame]:
    """NPS, CSAT and CES per value tier, for the configured survey columns."""
    if loaded.surveys is None:
        return {}
    tables = {}
    for metric in ("nps", "csat", "ces"):
        if metric in loaded.surveys:
            tables[metric] = by_value(metric, loaded.surveys, values)
    return tables


# --- scores and the whole run -----------------------------------------------------------------


_UNIT_LETTERS = {TimeUnit.DAY: "d", TimeUnit.WEEK: "w", TimeUnit.MONTH: "M",
                 TimeUnit.QUARTER: "q", TimeUnit.YEAR: "y"}  # fmt: skip


def horizon_label(horizon: Duration) -> str:
    """A horizon as a column suffix that parses back: ``"3y"``, ``"60M"``."""
    return f"{horizon.value:g}{_UNIT_LETTERS[horizon.unit]}"


def scores_table(
    models: FittedModels,
    values: Mapping[str, CustomerValue],
    p_alive: pd.Series,
    last_states: pd.Series | None,
    profit: CrossSellProfitability | None,
    tiers: ValueTiers,
) -> pd.DataFrame:
    """One row per customer: what the CRM reads back (``p_alive`` of the summary's customers)."""
    summary = models.summary
    first = next(iter(values.values())).customers
    scores = pd.DataFrame(index=summary.index)
    if "segment" in first:
        scores["segment"] = first["segment"]
    scores["p_alive"] = p_alive
    scores["expected_spend"] = first["expected_spend"]  # per purchase
    for label, value in values.items():
        scores[f"expected_purchases_{label}"] = value.customers["expected_purchases"]
        scores[f"clv_{label}"] = value.customers["clv"]
    scores["value_tier"] = tiers.labels_.astype(str)
    if last_states is not None:
        scores["lifecycle_state"] = last_states.astype(str).reindex(summary.index)
    if profit is not None:
        table = profit.customers_
        scores["net_profit"] = table["net_profit"].reindex(summary.index)
        scores["is_cross_buyer"] = table["is_cross_buyer"].reindex(summary.index)
    scores.index.name = "customer_id"
    return scores


def run(
    config: JobConfig,
    *,
    environ: Mapping[str, str] | None = None,
    write: bool = True,
    report_path: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> JobResult:
    """Run the whole job; write the scores (unless ``write=False``) and the report."""
    from cvalue.report.job import build_report

    steps = _Run(progress)
    with steps.stage("read and validate"):
        loaded = load(config, environ=environ)
    # the lifecycle's panel (a row per customer and period) is the run's largest temporary: it
    # is built while little else is held in memory
    with steps.stage("lifecycle"):
        last_states, flows, cohorts = lifecycle(config, loaded)
    with steps.stage("summarise and fit"):
        models = fit_models(config, loaded, environ=environ)
    steps.notes.append(f"summary computed in the {models.summary_source}")
    if len(models.too_new):
        steps.notes.append(
            f"{len(models.too_new):,} customers first bought on the observation end (T = 0, "
            f"e.g. {models.too_new[0]!r}): not scored in this run"
        )
    with steps.stage("value"):
        values, equity = value_customers(config, loaded, models)
    with steps.stage("segments"):
        profit = profitability(config, loaded)
        named = named_segments(config, loaded, profit)
        longest = values[max(values, key=lambda label: Duration.parse(label).days)]
        clv_values = longest.customers["clv"]
        tiers = value_tiers(clv_values, cuts=config.segments.tiers)
        p_alive = models.purchase.p_alive(models.summary)  # type: ignore[attr-defined]
        grid = value_risk_grid(clv_values, p_alive, value_bands=config.segments.grid_size)
        whale = whale_curve(profit.customers_["net_profit"] if profit else clv_values)
        surveys = surveys_by_value(loaded, clv_values)
    scores = scores_table(models, values, p_alive, last_states, profit, tiers)
    written = None
    if write:
        with steps.stage("write scores"):
            written = write_scores(
                scores, config.scores_url(environ), config.outputs.scores_table,
                mode=config.outputs.write_mode, schema=config.outputs.schema_name,
            )  # fmt: skip
    result = JobResult(
        config=config, loaded=loaded, models=models, scores=scores, customer_values=values,
        equity=equity, last_states=last_states, flows=flows, cohorts=cohorts, profitability=profit,
        named_segments=named,
        tiers=tiers, grid=grid, whale=whale, surveys_by_value=surveys, written=written,
        timings=steps.timings, notes=tuple(steps.notes),
    )  # fmt: skip
    target = report_path if report_path is not None else config.outputs.report
    if target is None:
        return result
    with steps.stage("report"):
        build_report(result, target)
    return _replace(result, report_path=target, timings=dict(steps.timings),
                    notes=tuple(steps.notes))  # fmt: skip


def _replace(result: JobResult, **changes: object) -> JobResult:
    import dataclasses

    return dataclasses.replace(result, **changes)  # type: ignore[arg-type]
