"""The scoring job's stages after reading: summarise, fit, value, segment, write back, report.

``cvalue score --config cvalue.toml`` runs :func:`run`. Each stage is a plain function of the
configuration and the previous stages' results, so a notebook can run them one by one.

The heavy per-customer aggregation runs in the database when it can: the RFM summary is computed
there (:func:`cvalue.sql_rfm_summary`) when validation rejected no row, so that the database and
pandas see the same purchases; otherwise from the validated rows in pandas. Which path ran is
recorded in :attr:`JobResult.notes`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import sqlalchemy as sa

from cvalue.config import CostConfig, JobConfig
from cvalue.errors import OutputError, SchemaError
from cvalue.io.sql import sql_rfm_summary
from cvalue.io.writeback import WriteResult, write_scores
from cvalue.job._candidates import candidates_check, fit_purchases
from cvalue.job._history import record_history
from cvalue.job._outputs import StagedReport, check_outputs, protected_tables
from cvalue.job._read import load, source_engine
from cvalue.lifecycle import (
    CohortRetention,
    InactivityRule,
    cohort_retention,
    lifecycle_flows,
    lifecycle_states,
)
from cvalue.metrics import by_value
from cvalue.models import (
    PURCHASE_MODELS,
    GammaGamma,
    Model,
)
from cvalue.report.job import build_report
from cvalue.report.uplift import UPLIFT_SAMPLED
from cvalue.results import FittedModels, HoldoutCheck, JobResult, Loaded
from cvalue.segments import (
    Costs,
    CrossSellProfitability,
    UnprofitableSegments,
    ValueTiers,
    at_risk_valuable,
    cross_sell_profitability,
    unprofitable_segments,
    value_risk_grid,
    value_tiers,
    whale_curve,
)
from cvalue.summary import add_summary_columns, calibration_holdout, rfm_summary
from cvalue.units import Duration, TimeUnit
from cvalue.value import (
    NO_COSTS,
    CustomerEquity,
    CustomerValue,
    DiscountRates,
    RetentionUplift,
    churn_hazard,
    clv,
    customer_equity,
    margin_by_category,
    margin_variation,
    retention_uplift,
)

__all__ = [
    "COST_BASIS_NONE",
    "Stage",
    "fit_models",
    "holdout_check",
    "horizon_label",
    "run",
    "scores_table",
]

Stage = Literal["validate", "fit", "score"]
_VALUE_PERIOD = Duration(1, TimeUnit.MONTH)
# the [models] rank_by scores where larger is better; for every other one smaller is


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


# --- summary and models -----------------------------------------------------------------------


def _summary(
    config: JobConfig, loaded: Loaded, source: sa.Engine | None
) -> tuple[pd.DataFrame, str]:
    """The RFM summary: in the database when validation rejected nothing, else in pandas."""
    unit, grain = config.summary.time_unit(), config.summary.grain
    table = config.source.transactions.table
    if source is not None and loaded.report.n_rejected == 0 and table is not None:
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


def _fit_columns(names: Sequence[str]) -> list[str]:
    """Every summary column the ``names`` models read to fit (the CNBD-k adds ``litt``)."""
    found: dict[str, None] = {}
    for name in names:
        model = PURCHASE_MODELS[name]
        found.update(dict.fromkeys(model.fit_columns or model.summary_columns))
    return list(found)


def _with_fit_columns(
    config: JobConfig, loaded: Loaded, summary: pd.DataFrame, names: Sequence[str], end: object
) -> pd.DataFrame:
    """``summary`` with the columns the ``names`` models need beyond it, up to ``end``."""
    return add_summary_columns(
        summary, loaded.transactions, _fit_columns(names), observation_end=end,  # type: ignore[arg-type]
        unit=config.summary.time_unit(), grain=config.summary.grain,
    )  # fmt: skip


def _with_covariates(config: JobConfig, loaded: Loaded, summary: pd.DataFrame) -> pd.DataFrame:
    """``summary`` with the ``[models] covariates`` of each customer from the customers table.

    A customer the customers table does not have gets no value; the model then refuses the
    fit, counting them (every customer needs every covariate).
    """
    names = config.models.covariates
    if not names:
        return summary
    # the configuration requires [source.customers], and reading it requires the columns
    assert loaded.customers is not None
    joined = summary.join(loaded.customers[names].reindex(summary.index))
    joined.attrs = dict(summary.attrs)  # the unit and grain the models read
    return joined


def holdout_check(config: JobConfig, loaded: Loaded, names: Sequence[str]) -> HoldoutCheck:
    """Fit the ``names`` models on a calibration period and score them on the holdout.

    The candidates are ranked by ``[models] rank_by`` (see :class:`HoldoutCheck`).
    """
    holdout = config.models.holdout
    calibration_end = loaded.observation_end - pd.Timedelta(days=holdout.days)
    split = calibration_holdout(
        loaded.transactions, calibration_end=calibration_end,
        observation_end=loaded.observation_end, unit=config.summary.time_unit(),
        grain=config.summary.grain,
    )  # fmt: skip
    split = split[split["T"] > 0]  # customers first seen on the last day: see _scorable
    split = _with_fit_columns(config, loaded, split, names, calibration_end)
    split = _with_covariates(config, loaded, split)
    return candidates_check(config, split, names, calibration_end)


def fit_models(
    config: JobConfig, loaded: Loaded, *, environ: Mapping[str, str] | None = None
) -> FittedModels:
    """Summarise, choose and fit the purchase model, and fit the spend model."""
    with source_engine(config, environ) as engine:
        summary, source = _summary(config, loaded, engine)
    summary, too_new = _scorable(summary)
    summary = _with_covariates(config, loaded, summary)
    choice = config.models.purchase
    is_auto = choice == "auto"
    check = holdout_check(config, loaded, config.models.candidates if is_auto else [choice])
    name = str(check.errors.index[0])
    fitted_on = _with_fit_columns(config, loaded, summary, [name], loaded.observation_end)
    purchase = fit_purchases(config, name, fitted_on)
    spend = GammaGamma().fit(summary)
    candidates = check.errors if is_auto else None
    # the scores read what the model reads: the summary with its added columns (n_periods)
    return FittedModels(fitted_on, purchase, spend, candidates, source, too_new, check)


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


def _model_span(model: Model, horizon: Duration, unit: TimeUnit) -> Duration:
    """``horizon``, or for a discrete-time model (the BG/BB) its whole periods of ``unit``.

    Such a model counts whole opportunities: three years are the 156 whole weeks in them.
    """
    if not getattr(model, "discrete_time", False):
        return horizon
    return Duration(float(math.floor(horizon.to(unit) + 1e-9)), unit)


def value_options(
    config: JobConfig,
    loaded: Loaded,
    models: FittedModels,
    summary: pd.DataFrame,
    segment: pd.Series | None,
    acquisition: pd.Series | None,
    recorded: Mapping[str, pd.DataFrame | None],
    *,
    margin: float | pd.Series,
) -> dict[str, Any]:
    """The keyword arguments of :func:`cvalue.clv` for the customers of ``summary``.

    ``recorded`` holds the recorded cost rows of ``cost_to_serve`` and ``marketing_cost`` (or
    ``None``); a cost the margin already nets is left out, as ``[value] margin_is_net_of`` says.
    """
    unit = config.summary.time_unit()
    net_of = set(config.value.margin_is_net_of)
    common = {
        "purchases": models.purchase, "spend": models.spend, "margin": margin,
        "rates": _rates(config, loaded, models, segment), "segment": segment,
    }  # fmt: skip
    if config.value.costs == "none":  # declared: no cost beyond the margin, nor acquisition
        return {**common, "costs": NO_COSTS}
    return {
        **common, "margin_net_of": tuple(net_of),
        "acquisition_cost": None if "acquisition_cost" in net_of else acquisition,
        **{name: None if name in net_of else _cost_per_period(
            getattr(config.value, name), recorded.get(name), summary, segment, unit)
           for name in ("cost_to_serve", "marketing_cost")},
    }  # fmt: skip


UPLIFT_SAMPLE = 100_000
"""Customers the retention uplift is measured on: a random sample of a larger base."""


def _values_of(
    config: JobConfig, loaded: Loaded, models: FittedModels, summary: pd.DataFrame
) -> dict[str, CustomerValue]:
    """CLV of the customers of ``summary`` at each configured horizon."""
    unit = config.summary.time_unit()
    segment = _segments(loaded, summary.index)
    acquisition = None
    if loaded.customers is not None and "acquisition_cost" in loaded.customers:
        acquisition = loaded.customers["acquisition_cost"].reindex(summary.index).fillna(0.0)
    recorded = {"cost_to_serve": loaded.service_costs, "marketing_cost": loaded.marketing_costs}
    common = value_options(config, loaded, models, summary, segment, acquisition, recorded,
                           margin=_margin(config, loaded, summary.index))  # fmt: skip
    return {
        horizon_label(label): clv(summary, horizon=_model_span(models.purchase, label, unit),
                                  interval=config.value.interval, **common)
        for label in config.value.horizons
    }  # fmt: skip


def value_customers(
    config: JobConfig, loaded: Loaded, models: FittedModels
) -> tuple[dict[str, CustomerValue], CustomerEquity]:
    """CLV of every customer at each configured horizon, and customer equity by segment."""
    values = _values_of(config, loaded, models, models.summary)
    unit = config.summary.time_unit()
    horizons = [_model_span(models.purchase, horizon, unit) for horizon in config.value.horizons]
    longest = values[horizon_label(max(config.value.horizons, key=lambda h: h.days))]
    equity = customer_equity(longest, horizons=horizons,
                             by="segment" if "segment" in longest.customers else None)  # fmt: skip
    return values, equity


def scaled_uplift(found: RetentionUplift, scale: float) -> RetentionUplift:
    """A sample's uplift with its amounts (and customers) multiplied by ``scale``."""

    def scaled(frame: pd.DataFrame) -> pd.DataFrame:
        amounts = [c for c in frame.columns if "equity" in c or c == "customers"
                   or (c.startswith("change") and "percent" not in c)]  # fmt: skip
        return frame.assign(**{c: frame[c] * scale for c in amounts})

    return dataclasses.replace(found, total=scaled(found.total), by_group=scaled(found.by_group))


def retention_worth(
    config: JobConfig, models: FittedModels, values: Mapping[str, CustomerValue],
    notes: list[str], *, sample: tuple[int, float] | None = None,
) -> RetentionUplift | None:  # fmt: skip
    """Equity if each segment's yearly retention rose by ``[value] retention_points`` (seed 003).

    ``sample`` is ``(customers in the base, sampling rate)`` when ``values`` are a Bernoulli
    sample's: its amounts are scaled by one over the rate (unbiased for the base's sums; the
    percentages are the sample's), and the run notes it. ``None`` when the configuration skips
    it, or when the base cannot rise by that many points (a retention already near 100 %, a
    model family without the uplift): the run then notes why.
    """
    points = config.value.retention_points
    if not points:
        return None
    unit = config.summary.time_unit()
    longest = max(config.value.horizons, key=lambda horizon: horizon.days)
    valued = values[horizon_label(longest)]
    try:
        found = retention_uplift(
            valued, points=points,
            horizons=[_model_span(models.purchase, h, unit) for h in config.value.horizons],
            by="segment" if "segment" in valued.customers else None,
            retention_over=_model_span(models.purchase, Duration(1.0, TimeUnit.YEAR), unit),
        )  # fmt: skip
    except SchemaError as exc:
        notes.append(f"what {points:g} more points of retention are worth: not measured ({exc})")
        return None
    if sample is None or sample[1] >= 1.0:
        return found
    notes.append(f"{UPLIFT_SAMPLED} {len(valued.customers):,} of the {sample[0]:,} customers, "
                 "its amounts scaled to the base; its intervals cover the models' parameter "
                 "uncertainty, not the sample's")  # fmt: skip
    return scaled_uplift(found, 1.0 / sample[1])


def sampled_retention_worth(
    config: JobConfig, loaded: Loaded, models: FittedModels,
    values: Mapping[str, CustomerValue], notes: list[str],
) -> RetentionUplift | None:  # fmt: skip
    """:func:`retention_worth` of the base, or of a random sample of :data:`UPLIFT_SAMPLE`.

    The uplift solves and evaluates the models at every move of its interval: on a random
    sample of a large base it costs what it costs at 100,000 customers, as in a chunked run.
    """
    n = len(models.summary)
    if n <= UPLIFT_SAMPLE or not config.value.retention_points:
        return retention_worth(config, models, values, notes)
    rate = UPLIFT_SAMPLE / n
    kept = np.random.default_rng(0).random(n) < rate
    sampled = _values_of(config, loaded, models, models.summary[kept])
    return retention_worth(config, models, sampled, notes, sample=(n, rate))


# --- lifecycle, segments, surveys -------------------------------------------------------------


def lifecycle(config: JobConfig, loaded: Loaded) -> tuple[pd.Series, pd.DataFrame, CohortRetention]:
    """Each customer's last state, the flows per period and the cohort x age retention.

    Cohorts of fewer than 100 customers are flagged ``is_small_sample`` (and warn, which the run
    records in its notes); the report marks them.

    The last state is the one in the last calendar period. The state panel itself (a row per
    customer and period: 18 million rows for a million customers over three years) is not kept;
    :func:`cvalue.lifecycle_states` builds it.
    """
    states = lifecycle_states(
        loaded.transactions, period=TimeUnit(config.lifecycle.period).pandas_alias,
        rule=InactivityRule(window=config.lifecycle.window),
        observation_end=loaded.observation_end,
    )  # fmt: skip
    flows, cohorts = lifecycle_flows(states), cohort_retention(states)
    last = states.groupby("customer_id", observed=True)["state"].last()
    return last.rename("lifecycle_state"), flows, cohorts


def _service_contacts(loaded: Loaded) -> pd.DataFrame:
    if loaded.service_costs is not None:
        return loaded.service_costs
    return pd.DataFrame({"customer_id": pd.Series([], dtype=object), "cost": []})


def job_costs(config: JobConfig, contacts: Any) -> Costs:
    """The profitability's costs as the configuration gives them, with the contacts' costs."""
    return Costs(
        margin_rate=config.value.margin, service_contacts=contacts,
        promotion_discount_rate=config.segments.promotion_discount_rate,
        return_handling_cost=config.segments.return_handling_cost,
    )  # fmt: skip


def profitability(config: JobConfig, loaded: Loaded) -> CrossSellProfitability | None:
    """Net profit per customer and the unprofitable cross-buyers (needs a category column)."""
    if "category" not in loaded.transactions:
        return None
    costs = job_costs(config, _service_contacts(loaded))
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


def surveys_by_value(
    loaded: Loaded, values: pd.Series, cuts: Sequence[float]
) -> dict[str, pd.DataFrame]:
    """NPS, CSAT and CES per value tier (``[segments] tiers``), for the survey columns."""
    if loaded.surveys is None:
        return {}
    tables = {}
    for metric in ("nps", "csat", "ces"):
        if metric in loaded.surveys:
            tables[metric] = by_value(metric, loaded.surveys, values, cuts=cuts)
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
    profits = None if profit is None else profit.customers_
    return customer_scores(models.summary.index, values, p_alive, tiers.labels_.astype(str),
                           last_states, profits)  # fmt: skip


AT_RISK_DETAILS = ("segment", "value_tier", "lifecycle_state")
"""The scores' columns the at-risk list shows beside each customer's CLV and P(alive)."""

COST_BASIS_NONE = "margin only: no costs beyond it ([value] costs = none)"
"""The scores' ``cost_basis`` where the configuration declares no cost beyond the margin."""


def customer_scores(
    index: pd.Index,
    values: Mapping[str, CustomerValue],
    p_alive: pd.Series,
    tier: pd.Series,
    last_states: pd.Series | None,
    profits: pd.DataFrame | None,
) -> pd.DataFrame:
    """The scores of the customers of ``index`` (the whole base, or a chunk of it).

    ``tier`` is each customer's value tier (missing in a chunk: the tiers are ranked in the
    table once every chunk is in); ``profits`` the per-customer profitability table.
    """
    valued = next(iter(values.values()))
    first = valued.customers
    scores = pd.DataFrame(index=index)
    if "segment" in first:
        scores["segment"] = first["segment"]
    scores["p_alive"] = p_alive
    scores["expected_spend"] = first["expected_spend"]  # per purchase
    for label, value in values.items():
        scores[f"expected_purchases_{label}"] = value.customers["expected_purchases"]
        scores[f"clv_{label}"] = value.customers["clv"]
        for bound in ("lower", "upper"):
            if f"clv_{bound}" in value.customers:  # with [value] interval
                scores[f"clv_{label}_{bound}"] = value.customers[f"clv_{bound}"]
    scores["value_tier"] = tier
    if last_states is not None:
        scores["lifecycle_state"] = last_states.astype(str).reindex(index)
    if profits is not None:
        scores["net_profit"] = profits["net_profit"].reindex(index)
        scores["is_cross_buyer"] = profits["is_cross_buyer"].reindex(index)
    if valued.no_costs:  # declared: each row says its values subtract nothing from the margin
        scores["cost_basis"] = COST_BASIS_NONE
    scores.index.name = "customer_id"
    return scores


def too_new_note(too_new: pd.Index) -> str:
    """The run's note on the customers first seen on the observation end."""
    return (f"{len(too_new):,} customers first bought on the observation end (T = 0, e.g. "
            f"{too_new[0]!r}): not scored in this run")  # fmt: skip


def _compute(config: JobConfig, environ: Mapping[str, str] | None, steps: _Run) -> JobResult:
    """Every stage up to the scores table, with nothing written."""
    with steps.stage("read and validate"):
        loaded = load(config, environ=environ)
    steps.notes.extend(loaded.notes)
    # the lifecycle's panel (a row per customer and period) is the run's largest temporary: it
    # is built while little else is held in memory
    with steps.stage("lifecycle"):
        last_states, flows, cohorts = lifecycle(config, loaded)
    with steps.stage("summarise and fit"):
        models = fit_models(config, loaded, environ=environ)
    steps.notes.append(f"summary computed in the {models.summary_source}")
    if len(models.too_new):
        steps.notes.append(too_new_note(models.too_new))
    with steps.stage("value"):
        values, equity = value_customers(config, loaded, models)
    with steps.stage("retention uplift"):
        uplift = sampled_retention_worth(config, loaded, models, values, steps.notes)
    with steps.stage("segments"):
        profit = profitability(config, loaded)
        named = named_segments(config, loaded, profit)
        label = max(values, key=lambda label: Duration.parse(label).days)
        clv_values = values[label].customers["clv"]
        tiers = value_tiers(clv_values, cuts=config.segments.tiers)
        p_alive = models.purchase.p_alive(models.summary)  # type: ignore[attr-defined]
        grid = value_risk_grid(clv_values, p_alive, value_bands=config.segments.grid_size)
        whale = whale_curve(profit.customers_["net_profit"] if profit else clv_values)
        surveys = surveys_by_value(loaded, clv_values, config.segments.tiers)
        scores = scores_table(models, values, p_alive, last_states, profit, tiers)
        details = scores[[column for column in AT_RISK_DETAILS if column in scores]]
        at_risk = at_risk_valuable(clv_values.rename(f"clv_{label}"), p_alive, details=details)
    return JobResult(
        config=config, loaded=loaded, models=models, scores=scores, at_risk=at_risk,
        customer_values=values, equity=equity, last_states=last_states, flows=flows,
        cohorts=cohorts, profitability=profit, named_segments=named, tiers=tiers, grid=grid,
        whale=whale, surveys_by_value=surveys, uplift=uplift,
    )  # fmt: skip


def _write(config: JobConfig, scores: pd.DataFrame, run_id: str,
           environ: Mapping[str, str] | None,
           before_swap: Callable[[sa.Connection, sa.Table], None]) -> WriteResult:  # fmt: skip
    """Write the scores, refusing the tables the configuration reads and foreign tables."""
    return write_scores(
        scores, config.scores_url(environ), config.outputs.scores_table,
        mode=config.outputs.write_mode, schema=config.outputs.schema_name, run_id=run_id,
        overwrite_foreign=config.outputs.overwrite_foreign, protected=protected_tables(config),
        before_swap=before_swap,
    )  # fmt: skip


def _planned(config: JobConfig, scores: pd.DataFrame, run_id: str) -> WriteResult:
    """What the write will be, for the report rendered before it (published only after it)."""
    return WriteResult(
        config.outputs.scores_table, config.outputs.schema_name, len(scores), run_id,
        dt.datetime.now(dt.timezone.utc), config.outputs.write_mode,
    )  # fmt: skip


def _render(result: JobResult, staged: StagedReport) -> None:
    try:
        build_report(result, staged.path)
    except OSError as exc:
        staged.discard()
        raise OutputError(
            f"the report could not be written to {str(staged.target)!r} "
            f"({exc.strerror or exc}); nothing was written"
        ) from None


def run(
    config: JobConfig,
    *,
    environ: Mapping[str, str] | None = None,
    write: bool = True,
    report_path: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> JobResult:
    """Run the whole job; write the scores (unless ``write=False``) and the report.

    Every output location is checked before anything is read (:func:`check_outputs`). The
    report is rendered before the scores are written and moved into place right after them, so
    that a run that fails at any point leaves the scores table as it was and no new report.
    """
    target = report_path if report_path is not None else config.outputs.report
    if config.run.engine == "dask":  # it checks its own outputs (a Parquet folder, or a table)
        from cvalue.job._dask_run import run_dask

        return run_dask(config, environ=environ, write=write, target=target, steps=_Run(progress))
    check_outputs(config, write=write, report_path=target, environ=environ)
    steps = _Run(progress)
    if config.run.chunk_customers is not None:
        from cvalue.job._chunked import run_chunked  # it builds on this module's stages

        return run_chunked(config, environ=environ, write=write, target=target, steps=steps)
    result = _compute(config, environ, steps)
    scores = result.scores
    assert scores is not None  # _compute always scores
    run_id = uuid.uuid4().hex
    staged = None if target is None else StagedReport(target, run_id)

    def report(done: JobResult) -> None:
        if staged is not None:
            with steps.stage("report"):
                planned = _planned(config, scores, run_id) if write else None
                _render(dataclasses.replace(done, written=planned, timings=dict(steps.timings),
                                            notes=tuple(steps.notes)), staged)  # fmt: skip

    def before_swap(connection: sa.Connection, table: sa.Table) -> None:
        # the history is appended, and the report that shows it rendered, in the write
        nonlocal result
        with steps.stage("history"):
            history = record_history(config, result, connection, table, run_id)
        result = dataclasses.replace(result, run_history=history)
        report(result)

    written = None
    try:
        if write:
            with steps.stage("write scores"):
                written = _write(config, scores, run_id, environ, before_swap)
        else:
            report(result)
    except BaseException:
        if staged is not None:
            staged.discard()
        raise
    published = None if staged is None else staged.publish(scores_written=write)
    return dataclasses.replace(result, written=written, report_path=published,
                               timings=dict(steps.timings), notes=tuple(steps.notes))  # fmt: skip
