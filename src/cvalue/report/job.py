"""The report of a scoring run: one section per question the run answers."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import pandas as pd

from cvalue.lifecycle import CohortRetention
from cvalue.models import PurchaseModel
from cvalue.report.html import Section, write_report
from cvalue.report.plots import (
    plot_calibration_holdout,
    plot_clv_distribution,
    plot_cohort_heatmap,
    plot_frequency_fit,
    plot_lifecycle_flows,
    plot_tracking,
    plot_value_risk_grid,
    plot_whale_curve,
)
from cvalue.results import JobResult
from cvalue.units import Duration

__all__ = ["SECTIONS", "build_report", "lifecycle_section", "report_sections"]

SECTIONS = (
    "data-quality", "model-fit", "lifecycle", "value", "segments", "cross-sell", "experience",
    "run",
)  # fmt: skip


def _data_quality(result: JobResult) -> Section:
    loaded = result.loaded
    kept, rejected = len(loaded.transactions), loaded.report.n_rejected
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
    loaded = result.loaded
    purchase = models.purchase
    scorer = cast("PurchaseModel", purchase)
    name = type(purchase).__name__
    tables = [(f"{name} parameters", purchase.summary()),
              ("Gamma-Gamma spend parameters", models.spend.summary())]  # fmt: skip
    if models.candidates is not None:
        ranked = f"Candidate models by holdout score (ranked by {result.config.models.rank_by})"
        tables.insert(0, (ranked, models.candidates))
    check = models.holdout
    calibration_end, split = check.calibration_end, check.split
    calibrated = cast("PurchaseModel", check.fitted[str(check.errors.index[0])])
    figures = [
        ("Repeat purchases per customer: actual and model", plot_frequency_fit(scorer,
                                                                               models.summary)),
        ("Repeat purchases over time (model fitted before the grey line)", plot_tracking(
            calibrated, loaded.transactions, calibration_end=calibration_end,
            observation_end=loaded.observation_end)),
        ("Holdout purchases by calibration frequency", plot_calibration_holdout(calibrated,
                                                                                split)),
    ]  # fmt: skip
    return Section(
        key="model-fit", title="Model fit", tables=tables, figures=figures,
        paragraphs=[f"Purchases: {name}, log-likelihood {purchase.log_likelihood_:,.1f} on "
                    f"{purchase.n_customers_:,.0f} customers; the summary was computed in the "
                    f"{models.summary_source}."],
    )  # fmt: skip


def _lifecycle(result: JobResult) -> Section:
    if result.flows is None or result.cohorts is None:
        return Section(key="lifecycle", title="Lifecycle")
    return lifecycle_section(result.flows, result.cohorts)


_RECENT = 12  # periods of flows, cohorts and ages the tables show


def _cohort_table(cohorts: CohortRetention) -> pd.DataFrame:
    """The latest cohorts: size, the small-sample flag and the share active at ages 1, 2, ...

    Small cohorts' labels end in ``*``, the mark the footnote and the heatmap explain.
    """
    shares = cohorts.shares.iloc[-_RECENT:, 1 : _RECENT + 1]
    flags = cohorts.is_small_sample.iloc[-_RECENT:]
    labels = [f"{cohort} *" if is_small else str(cohort) for cohort, is_small in flags.items()]
    shown = shares.map(lambda share: "" if pd.isna(share) else f"{share:.0%}")
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


def lifecycle_section(flows: pd.DataFrame, cohorts: CohortRetention | pd.DataFrame) -> Section:
    """The report's lifecycle section: the latest flows, and cohort retention.

    ``cohorts`` is :func:`cvalue.lifecycle.cohort_retention`'s result: its latest cohorts are
    tabled with their sizes, and cohorts flagged ``is_small_sample`` are marked ``*`` in the
    table, counted in a footnote and hatched in the heatmap. Bare ``shares`` give the heatmap
    only, unmarked.
    """
    tables = [(f"Flows in the last {_RECENT} periods", flows.tail(_RECENT))]
    paragraphs = []
    heatmap = "Cohort retention"
    if isinstance(cohorts, CohortRetention):
        tables.append((f"Cohort retention: share still active, the last {_RECENT} cohorts",
                       _cohort_table(cohorts)))  # fmt: skip
        paragraphs.append(_small_cohorts_note(cohorts))
        if cohorts.is_small_sample.any():
            heatmap += f" (hatched, *: fewer than {cohorts.min_customers:,} customers)"
    return Section(
        key="lifecycle", title="Lifecycle: acquired, retained, lost, won back",
        tables=tables, paragraphs=paragraphs,
        figures=[("Active customers and flows", plot_lifecycle_flows(flows)),
                 (heatmap, plot_cohort_heatmap(cohorts))],
    )  # fmt: skip


def _value(result: JobResult) -> Section:
    if not result.customer_values or result.equity is None:
        return Section(key="value", title="Customer value")
    label, longest = max(
        result.customer_values.items(), key=lambda item: Duration.parse(item[0]).days
    )
    figures = [(f"CLV over {label}", plot_clv_distribution(longest.customers["clv"]))]
    tables = [("Customer equity", result.equity.total)]
    tables.append(("Customer equity by segment", result.equity.by_group))
    return Section(key="value", title="Customer value and equity", tables=tables,
                   figures=figures)  # fmt: skip


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
            f"{whale.peak_customers_share_:.0%} of customers; "
            f"{whale.value_destroying_share_:.0%} of customers destroy value."
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
        paragraphs=[f"{profit.n_cross_buyers_:,} cross-buyers; {profit.unprofitable_share_:.0%} "
                    f"of them lose money and carry {profit.loss_share_:.0%} of all customer "
                    "losses."],
        tables=[("What sets unprofitable cross-buyers apart", profit.drivers_),
                ("Segments found, flagged ones first", segments.sort_values(
                    "is_flagged", ascending=False))]
        + ([("Named segments, flagged ones first", result.named_segments.segments_.sort_values(
            "is_flagged", ascending=False))] if result.named_segments is not None else []),
    )  # fmt: skip


def _experience(result: JobResult) -> Section:
    tables = [(f"{name.upper()} by value tier", table)
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


def report_sections(result: JobResult) -> list[Section]:
    """The report's sections, in :data:`SECTIONS` order."""
    builders = (_data_quality, _model_fit, _lifecycle, _value, _segments, _cross_sell,
                _experience, _run)  # fmt: skip
    return [build(result) for build in builders]


def build_report(result: JobResult, path: str | Path) -> Path:
    """Write the run's HTML report to ``path``; return the path."""
    return write_report(path, report_sections(result), title="Customer value report")
