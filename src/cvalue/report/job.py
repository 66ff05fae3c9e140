"""The report of a scoring run: the headline first, then one section per question the run answers.

The sections, in order, are :func:`_builders`' entries: adding one is one line there (its key
joins :data:`SECTIONS` by itself).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import cast

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from cvalue.config import JobConfig
from cvalue.errors import SchemaError
from cvalue.lifecycle import CohortRetention
from cvalue.models import PurchaseModel
from cvalue.patterns import weights_by_value
from cvalue.plot import partial_last_period
from cvalue.report.at_risk import at_risk_csv_path, at_risk_section, write_at_risk_csv
from cvalue.report.headline import headline_section
from cvalue.report.history import history_section
from cvalue.report.html import Section, write_report
from cvalue.report.labels import as_percent_text, glossary_tables, horizon_words, label
from cvalue.report.plots import (
    plot_calibration_holdout_table,
    plot_clv_by_segment,
    plot_clv_distribution,
    plot_cohort_heatmap,
    plot_cohort_retention,
    plot_frequency_fit,
    plot_frequency_recency_matrix,
    plot_lifecycle_flows,
    plot_probability_alive_history,
    plot_probability_alive_matrix,
    plot_tracking,
    plot_tracking_table,
    plot_value_risk_grid,
    plot_whale_curve,
)
from cvalue.report.uplift import uplift_section
from cvalue.results import JobResult
from cvalue.units import DateLike, Duration, TimeUnit, as_timestamp

__all__ = ["SECTIONS", "build_report", "lifecycle_section", "report_sections"]

Figures = list[tuple[str, Figure]]
_SEED = 0  # the simulated customers' seed: the same run gives the same report


def _data_quality(result: JobResult) -> Section:
    loaded = result.loaded
    kept, rejected = loaded.report.n_clean, loaded.report.n_rejected
    counts = pd.DataFrame(
        {"rows": [kept + rejected, kept, rejected]}, index=["read", "kept", "rejected"]
    )
    tables = [("Rows read", counts)]
    if rejected:
        tables.append(("Rejected rows by reason", loaded.report.reasons))
    return Section(
        key="data-quality", title="Data quality", tables=tables,
        paragraphs=[f"Observation end: {loaded.observation_end.date()}."],
    )  # fmt: skip


def _model_fit(result: JobResult) -> Section:
    models = result.models
    assert models is not None  # the report is built after the fit
    purchase = models.purchase
    scorer = cast("PurchaseModel", purchase)
    name = type(purchase).__name__
    tables = [(f"{name} parameters", purchase.summary()),
              ("Gamma-Gamma spend parameters", models.spend.summary())]  # fmt: skip
    if models.candidates is not None:
        by = label(result.config.models.rank_by)
        ranked = f"Candidate models by holdout score (ranked by {by})"
        tables.insert(0, (ranked, models.candidates))
    check = models.holdout
    calibration_end = check.calibration_end
    calibrated = cast("PurchaseModel", check.fitted[str(check.errors.index[0])])
    figures = [
        ("Repeat purchases per customer: actual, model, and customers simulated from the model "
         f"(seed {_SEED})", plot_frequency_fit(scorer, models.summary,
                                               rng=np.random.default_rng(_SEED))),
        ("Holdout purchases by calibration frequency",
         plot_calibration_holdout_table(check.calibration_table)),
    ]  # fmt: skip
    notes: list[str] = []
    tracking = _tracking(result, calibrated, calibration_end)
    if tracking is not None:
        figures.insert(1, ("Repeat purchases over time (model fitted before the grey line)",
                           tracking))  # fmt: skip
    horizons = result.config.value.horizons
    horizon = horizons[0] if horizons else Duration(52, TimeUnit.WEEK)
    drawn, group = _one_group(scorer, models.summary)
    matrices, skipped = _matrices(drawn, models.summary, horizon)
    notes += skipped
    test, covariates = (
        getattr(purchase, name, None) for name in ("covariate_test_", "covariates_")
    )
    if test is not None and covariates is not None:
        notes = [f"Covariates {', '.join(covariates.columns)} (coefficients "
                 "'purchase:', 'dropout:' above): against the same model without them, "
                 f"likelihood-ratio statistic {test.statistic:,.1f} on {test.df} degrees of "
                 f"freedom, p = {test.p_value:.3g}. The matrices are those of the largest group "
                 f"of customers ({group}).", *notes]  # fmt: skip
    return Section(
        key="model-fit", title="Model fit", tables=tables, figures=figures + matrices,
        paragraphs=[f"Purchases: {name}, log-likelihood {purchase.log_likelihood_:,.1f} on "
                    f"{purchase.n_customers_:,.0f} customers; the summary was computed in the "
                    f"{models.summary_source}.", *notes],
    )  # fmt: skip


def _tracking(result: JobResult, model: PurchaseModel, calibration_end: DateLike) -> Figure | None:
    """The tracking plot: from the transactions, or from a chunked run's table (None: no report)."""
    kept, loaded = result.in_database, result.loaded
    if kept is None:
        return plot_tracking(model, loaded.transactions, calibration_end=calibration_end,
                             observation_end=loaded.observation_end)  # fmt: skip
    if kept.tracking is None:
        return None
    return plot_tracking_table(kept.tracking, calibration_end=calibration_end)


_MOST_FREQUENCY, _MOST_RECENCY = 50, 260  # the matrices' largest grid: its size sets their cost


def _model_horizon(model: PurchaseModel, horizon: Duration) -> tuple[float | Duration, str]:
    """The matrices' horizon as the model takes it, and in words.

    A discrete-time model (a BG/BB) counts whole opportunities, one per period of its unit: a
    horizon that is no whole number of them ("3y" is 156.5 weeks) becomes the whole periods it
    holds, and the words say so.
    """
    if not model.discrete_time or model.unit_ is None:
        return horizon, str(horizon)
    unit = model.unit_.value
    periods = float(np.floor(horizon.to(model.unit_) + 1e-9))
    if periods == horizon.to(model.unit_):
        return periods, f"{periods:g} {unit}s"
    return periods, f"{periods:g} {unit}s (the whole {unit}s in {horizon})"


def _one_group(
    model: PurchaseModel, summary: pd.DataFrame, customer: object = None
) -> tuple[PurchaseModel, str]:
    """The model, or for one with covariates the model of one group and its values.

    The group is the customer's, or the largest in ``summary``.
    """
    covariates = getattr(model, "covariates_", None)
    if covariates is None:
        return model, ""
    columns = list(covariates.columns)
    if customer is None:
        found = summary[columns].value_counts().idxmax()
        values = dict(zip(columns, found if isinstance(found, tuple) else (found,), strict=True))
    else:
        values = summary[columns].loc[[customer]].iloc[0].to_dict()
    described = ", ".join(f"{name} = {value}" for name, value in values.items())
    return cast("PurchaseModel", model.stratum_model(values)), described  # type: ignore[attr-defined]


def _matrices(
    model: PurchaseModel, summary: pd.DataFrame, horizon: Duration
) -> tuple[Figures, list[str]]:
    """The frequency x recency matrices at the base's median age, or why they are not drawn.

    The grid reaches the base's 95th percentiles of frequency and recency (at most the age and
    ``_MOST_*``), so a few outliers do not squeeze the cells most customers are in. A
    discrete-time model's age is whole opportunities (the median rounded down) and its horizon
    the whole periods of ``horizon`` (:func:`_model_horizon`).
    """
    skipped = "The frequency x recency matrices are not drawn: "
    read = ["frequency", "recency", model.age_column]
    if not set(read) <= set(summary.columns):
        return [], [f"{skipped}the summary has no {read} columns to lay histories out by."]
    age = _quantile(summary, model.age_column, 0.5)
    if model.discrete_time:
        age = max(float(np.floor(age)), 1.0)
    top = {name: _quantile(summary, name, 0.95) for name in ("frequency", "recency")}
    max_frequency = int(min(max(np.ceil(top["frequency"]), 1), _MOST_FREQUENCY))
    max_recency = float(min(max(np.ceil(top["recency"]), 1), max(np.floor(age), 1), _MOST_RECENCY))
    unit = f" {model.unit_.value}s" if model.unit_ is not None else ""
    at = f"customers of the median age ({age:,.1f}{unit}), up to the 95th percentiles"
    span, words = _model_horizon(model, horizon)
    try:
        return [
            (f"Expected purchases in the next {words} by frequency and recency: {at}",
             plot_frequency_recency_matrix(model, horizon=span, max_frequency=max_frequency,
                                           max_recency=max_recency, age=age)),
            (f"P(alive) by frequency and recency: {at}",
             plot_probability_alive_matrix(model, max_frequency=max_frequency,
                                           max_recency=max_recency, age=age)),
        ], []  # fmt: skip
    except SchemaError as error:
        return [], [f"{skipped}{error}."]


def _quantile(summary: pd.DataFrame, column: str, share: float) -> float:
    """The ``share`` quantile of a summary's column; a pattern table's rows count ``weight`` times.

    For a pattern table, the value below which ``share`` of the customers fall (the inverted
    empirical distribution: the lower of two values on a tie of the cumulative share).
    """
    if "weight" not in summary:
        return float(summary[column].quantile(share))
    # the customers of each distinct value: a few hundred values, not a sort of every pattern
    values, weights = weights_by_value(summary[column].to_numpy(), summary["weight"])
    cumulative = weights.cumsum()
    at = int(np.searchsorted(cumulative, share * cumulative[-1], side="left"))
    return float(values[min(at, len(values) - 1)])


def _lifecycle(result: JobResult) -> Section:
    if result.flows is None or result.cohorts is None:
        return Section(key="lifecycle", title="Lifecycle")
    return lifecycle_section(
        result.flows, result.cohorts, observation_end=result.loaded.observation_end
    )


_RECENT = 12  # periods of flows, cohorts and ages the tables show


def _cohort_table(cohorts: CohortRetention) -> pd.DataFrame:
    """The latest cohorts: size, the small-sample flag and the share active at ages 1, 2, ...

    Small cohorts' labels end in ``*``, the mark the footnote and the heatmap explain.
    """
    shares = cohorts.shares.iloc[-_RECENT:, 1 : _RECENT + 1]
    flags = cohorts.is_small_sample.iloc[-_RECENT:]
    labels = [f"{cohort} *" if is_small else str(cohort) for cohort, is_small in flags.items()]
    shown = shares.map(lambda share: "" if pd.isna(share) else f"{share:.1%}")
    shown.columns = [f"age {age}" for age in shares.columns]
    table = pd.concat(
        [cohorts.sizes.iloc[-_RECENT:], flags.rename("is_small_sample"), shown], axis=1
    )
    return table.set_axis(pd.Index(labels, name="cohort"), axis=0)


def _small_cohorts_note(cohorts: CohortRetention) -> str:
    n_small, n_cohorts = int(cohorts.is_small_sample.sum()), len(cohorts.sizes)
    if not n_small:
        return f"Every cohort has at least {cohorts.min_customers:,} customers."
    return (
        f"{n_small:,} of {n_cohorts:,} cohorts have fewer than {cohorts.min_customers:,} "
        "customers: marked * in the table and hatched in the heatmap (is_small_sample). Their "
        "shares rest on few customers and swing from cohort to cohort; pool them into longer "
        'cohorts (period = "quarter" in the [lifecycle] section) before comparing.'
    )


def _cut_period_note(flows: pd.DataFrame, observation_end: DateLike | None) -> list[str]:
    """Why the plots stop a period early, when the observation end cuts the last period."""
    if observation_end is None or not isinstance(flows.index, pd.PeriodIndex):
        return []
    cut = partial_last_period(flows.index, observation_end)
    if cut is None:
        return []
    end = as_timestamp(observation_end, "observation_end").date()
    return [f"The last period, {cut}, is cut at the observation end ({end}): its customers had "
            "less time to buy, so the plots leave it out; the flows table keeps it."]  # fmt: skip


def lifecycle_section(
    flows: pd.DataFrame,
    cohorts: CohortRetention | pd.DataFrame,
    *,
    observation_end: DateLike | None = None,
) -> Section:
    """The report's lifecycle section: the latest flows, and cohort retention.

    ``cohorts`` is :func:`cvalue.lifecycle.cohort_retention`'s result: its latest cohorts are
    tabled with their sizes, and cohorts flagged ``is_small_sample`` are marked ``*`` in the
    table, counted in a footnote and hatched in the heatmap. Bare ``shares`` give the heatmap
    only, unmarked. A last period cut by ``observation_end`` is left out of the plots, and a
    paragraph says so (the tables keep it).
    """
    tables = [(f"Flows in the last {_RECENT} periods", flows.tail(_RECENT))]
    paragraphs = _cut_period_note(flows, observation_end)
    heatmap, curves = "Cohort retention", "Cohort retention curves"
    if isinstance(cohorts, CohortRetention):
        tables.append((f"Cohort retention: share still active, the last {_RECENT} cohorts",
                       _cohort_table(cohorts)))  # fmt: skip
        paragraphs.append(_small_cohorts_note(cohorts))
        if cohorts.is_small_sample.any():
            heatmap += f" (hatched, *: fewer than {cohorts.min_customers:,} customers)"
            curves += f" (dashed, *: fewer than {cohorts.min_customers:,} customers)"
    return Section(
        key="lifecycle", title="Lifecycle: acquired, retained, lost, won back",
        tables=tables, paragraphs=paragraphs,
        figures=[("Active customers and flows",
                  plot_lifecycle_flows(flows, observation_end=observation_end)),
                 (heatmap, plot_cohort_heatmap(cohorts, observation_end=observation_end)),
                 (curves, plot_cohort_retention(cohorts, observation_end=observation_end))],
    )  # fmt: skip


def _value(result: JobResult) -> Section:
    kept = result.in_database
    if result.equity is None or (not result.customer_values and kept is None):
        return Section(key="value", title="Customer value")
    notes: list[str] = []
    if kept is None:
        label, longest = max(
            result.customer_values.items(), key=lambda item: Duration.parse(item[0]).days
        )
        clv = longest.customers["clv"]
        segment = _segment_of(result, clv.index)
        history, notes = _alive_history(result, _best_customer(result, clv), label)
    else:
        label = str(max(result.config.value.horizons, key=lambda horizon: horizon.days))
        clv = kept.sample["clv"]
        segment = kept.sample["segment"].astype(str) if "segment" in kept.sample else None
        history, notes = _alive_history(result, kept.best, label, kept.history)
        notes.insert(0, f"The distributions are those of a random sample of {len(clv):,} of the "
                        f"{kept.n_customers:,} customers scored (in {kept.n_chunks:,} chunks of "
                        f"{kept.chunk_customers:,}).")  # fmt: skip
    notes.insert(0, _cost_basis(result.config))
    figures = [(f"CLV over {label}", plot_clv_distribution(clv))]
    if segment is not None:
        figures.append((f"CLV over {label} by segment", plot_clv_by_segment(clv, segment)))
    tables = [("Customer equity", result.equity.total)]
    tables.append(("Customer equity by segment", result.equity.by_group))
    return Section(key="value", title="Customer value and equity", tables=tables,
                   figures=figures + history, paragraphs=notes)  # fmt: skip


def _cost_basis(config: JobConfig) -> str:
    """What the values subtract from the margin, as the configuration accounts for each cost."""
    value = config.value
    if value.costs == "none":
        return ('Costs: none beyond the margin, as the configuration declares ([value] costs = '
                '"none"): each CLV is the discounted gross margin.')  # fmt: skip
    parts = []
    for item in ("cost_to_serve", "marketing_cost"):
        label = item.replace("_", " ")
        cost = getattr(value, item)
        if item in value.margin_is_net_of or cost is None:
            parts.append(f"{label} already in the margin")
        elif cost.amount is not None:
            parts.append(f"{label} {cost.amount:,.2f} per {cost.per}")
        elif cost.by_segment is not None:
            parts.append(f"{label} by segment, per {cost.per}")
        else:
            parts.append(f"{label} as recorded ({cost.table or cost.file})")
    return f"Costs subtracted from the margin: {'; '.join(parts)}."


def _segment_of(result: JobResult, index: pd.Index) -> pd.Series | None:
    """Each valued customer's segment (``"unassigned"`` if none), or None without segments."""
    customers = result.loaded.customers
    if customers is None or "segment" not in customers:
        return None
    segment = customers["segment"].astype("string").reindex(index).fillna("unassigned")
    return segment.astype(str).rename("segment")


_LEAST_PURCHASES = 3  # the illustrative customer's: enough purchases for P(alive) to move


def _best_customer(result: JobResult, clv: pd.Series) -> dict[str, object] | None:
    """The most valuable customer with a few purchases: id, CLV and purchases (or None)."""
    assert result.models is not None  # values come from the fitted models
    purchases = result.models.summary["frequency"].reindex(clv.index) + 1
    is_eligible = purchases >= _LEAST_PURCHASES
    eligible = clv[is_eligible]
    if eligible.empty:
        return None
    position = int(np.argmax(eligible.to_numpy(dtype=np.float64)))
    return {"customer": eligible.index[position], "clv": float(eligible.iloc[position]),
            "n_purchases": int(purchases[is_eligible].iloc[position])}  # fmt: skip


def _alive_history(
    result: JobResult,
    best: Mapping[str, object] | None,
    label: str,
    transactions: pd.DataFrame | None = None,
) -> tuple[Figures, list[str]]:
    """P(alive) over time of the most valuable customer with a few purchases, or why not."""
    models, loaded = result.models, result.loaded
    assert models is not None  # values come from the fitted models
    skipped = "No customer's P(alive) over time is drawn: "
    if best is None:
        return [], [f"{skipped}no customer made {_LEAST_PURCHASES} purchases or more."]
    customer = best["customer"]
    history = loaded.transactions if transactions is None else transactions
    model, group = _one_group(cast("PurchaseModel", models.purchase), models.summary, customer)
    try:
        figure = plot_probability_alive_history(
            model, history, customer, observation_end=loaded.observation_end,
            columns=loaded.columns,
        )  # fmt: skip
    except SchemaError as error:
        return [], [f"{skipped}{error}."]
    step = f"{model.unit_.value} by {model.unit_.value}" if (
        model.discrete_time and model.unit_ is not None) else "day by day"  # fmt: skip
    caption = (f"P(alive) of customer {customer} {step}: the highest CLV over {label} "
               f"({float(cast('float', best['clv'])):,.0f}) of the customers with at least "
               f"{_LEAST_PURCHASES} purchases (this one made {best['n_purchases']:,})"
               + (f"; {group}" if group else ""))  # fmt: skip
    return [(caption, figure)], []


def _segments(result: JobResult) -> Section:
    tables, figures, paragraphs = [], [], []
    if result.tiers is not None:
        tables.append(("Value tiers", result.tiers.summary_))
    if result.grid is not None:
        figures.append(("Value x risk", plot_value_risk_grid(result.grid)))
    if result.whale is not None:
        whale = result.whale
        figures.append(("Whale curve", plot_whale_curve(whale.curve_)))
        paragraphs.append(
            f"The profitable customers earn {whale.peak_profit_:,.0f}, "
            f"{whale.peak_customers_share_:.1%} of customers; "
            f"{whale.value_destroying_share_:.1%} of customers destroy value."
        )
    return Section(key="segments", title="Segments: who is worth most", tables=tables,
                   figures=figures, paragraphs=paragraphs)  # fmt: skip


def _cross_sell(result: JobResult) -> Section:
    profit = result.profitability
    if profit is None:
        return Section(key="cross-sell", title="Unprofitable cross-sell segments", paragraphs=[
            "No category column: cross-buying cannot be measured."])  # fmt: skip
    segments = profit.segments_.segments_
    return Section(
        key="cross-sell", title="Unprofitable cross-sell segments",
        paragraphs=[f"{profit.n_cross_buyers_:,} cross-buyers; {profit.unprofitable_share_:.1%} "
                    f"of them lose money and carry {profit.loss_share_:.1%} of all customer "
                    "losses."],
        tables=[("What sets unprofitable cross-buyers apart", profit.drivers_),
                ("Segments found, flagged ones first", segments.sort_values(
                    "is_flagged", ascending=False))]
        + ([("Named segments, flagged ones first", result.named_segments.segments_.sort_values(
            "is_flagged", ascending=False))] if result.named_segments is not None else []),
    )  # fmt: skip


_SHARE_METRICS = {"csat"}  # scores that are shares of the answers: shown as percentages


def _experience(result: JobResult) -> Section:
    tables = [(f"{name.upper()} by value tier",
               as_percent_text(table, ["estimate", "ci_lower", "ci_upper"])
               if name in _SHARE_METRICS else table)
              for name, table in result.surveys_by_value.items()]  # fmt: skip
    return Section(key="experience", title="Customer experience by value tier", tables=tables)


def _run(result: JobResult) -> Section:
    timings = pd.DataFrame({"seconds": pd.Series(result.timings, dtype=float)})
    paragraphs = list(result.notes)
    if result.written is not None:
        written = result.written
        paragraphs.insert(0, f"Scores written to {written.table!r} "
                             f"({written.rows_written:,} rows, run {written.run_id}).")  # fmt: skip
    return Section(key="run", title="This run", tables=[("Time per stage", timings)],
                   paragraphs=paragraphs)  # fmt: skip


def _glossary(result: JobResult) -> Section:
    horizons = ", ".join(horizon_words(str(horizon)) or str(horizon)
                         for horizon in result.config.value.horizons)  # fmt: skip
    return Section(
        key="glossary", title="Glossary: states and columns", tables=glossary_tables(),
        paragraphs=[f"In the column names, <h> is a horizon of [value] horizons ({horizons} in "
                    "this run), written as 3y or 18M; the tables of this report show each column "
                    "under the label in the second column."],
    )  # fmt: skip


Builder = Callable[[JobResult], Section]


def _builders(at_risk_csv: str | None) -> dict[str, Builder]:
    """Each section's key and builder, in the report's order; the at-risk one links its CSV."""
    return {
        "headline": headline_section,
        "data-quality": _data_quality,
        "model-fit": _model_fit,
        "lifecycle": _lifecycle,
        "value": _value,
        "retention-uplift": uplift_section,
        "at-risk": lambda result: at_risk_section(result.at_risk, csv_name=at_risk_csv),
        "segments": _segments,
        "cross-sell": _cross_sell,
        "experience": _experience,
        "history": history_section,
        "run": _run,
        "glossary": _glossary,
    }


SECTIONS = tuple(_builders(None))
"""The sections' keys (each one's ``id`` in the page), in the report's order."""


def report_sections(result: JobResult, *, at_risk_csv: str | None = None) -> list[Section]:
    """The report's sections, in :data:`SECTIONS` order.

    ``at_risk_csv`` is the address of the at-risk list's CSV (its name, beside the report), for
    the at-risk section to link to; :func:`build_report` passes it.
    """
    return [build(result) for build in _builders(at_risk_csv).values()]


def build_report(result: JobResult, path: str | Path) -> Path:
    """Write the run's HTML report to ``path`` and its at-risk list beside it; return the path.

    With ``result.at_risk``, the list goes to :func:`~cvalue.report.at_risk.at_risk_csv_path`
    (``report.html`` -> ``report_at_risk.csv``) and the report links to it. Without one, a CSV
    of that name from an earlier report is removed, so that no report sits beside another run's
    list.
    """
    target = Path(path)
    csv = at_risk_csv_path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if result.at_risk is None:
        csv.unlink(missing_ok=True)
        sections = report_sections(result)
    else:
        write_at_risk_csv(result.at_risk, csv)
        sections = report_sections(result, at_risk_csv=csv.name)
    return write_report(target, sections, title="Customer value report")
