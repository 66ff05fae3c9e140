"""The report's fit diagnostics and plots: their numbers against direct computations."""

from __future__ import annotations

import dataclasses
import html
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from markupsafe import escape
from matplotlib.figure import Figure

import cvalue as cv
import cvalue.plot
from cvalue.datasets import load_cdnow
from cvalue.errors import DataQualityError, SchemaError
from cvalue.job import JobResult
from cvalue.metrics import SmallSampleWarning
from cvalue.report import calibration_holdout_table, frequency_fit_table, tracking_table
from cvalue.report.headline import CURRENCY_NOTE
from cvalue.report.html import Section, render, write_report
from cvalue.report.job import SECTIONS, build_report, lifecycle_section, report_sections
from cvalue.report.labels import SCORE_COLUMNS, STATES, amount, label, percent
from cvalue.report.plots import (
    plot_calibration_holdout,
    plot_cohort_heatmap,
    plot_frequency_fit,
    plot_tracking,
)
from tests.conftest import Browser

CALIBRATION_END, OBSERVATION_END = "1997-09-30", "1998-06-30"


@pytest.fixture(scope="module")
def cdnow() -> pd.DataFrame:
    return load_cdnow().transactions


@pytest.fixture(scope="module")
def split(cdnow: pd.DataFrame) -> pd.DataFrame:
    return cv.calibration_holdout(
        cdnow, calibration_end=CALIBRATION_END, observation_end=OBSERVATION_END
    )


@pytest.fixture(scope="module")
def model(split: pd.DataFrame) -> cv.BetaGeo:
    return cv.BetaGeo().fit(split)


def test_frequency_fit_counts_every_customer(model: cv.BetaGeo, split: pd.DataFrame) -> None:
    table = frequency_fit_table(model, split)
    assert list(table.index) == ["0", "1", "2", "3", "4", "5", "6", "7+"]
    assert table["observed"].sum() == len(split)
    assert table["expected"].sum() == pytest.approx(len(split), rel=1e-9)
    assert table.loc["0", "observed"] == (split["frequency"] == 0).sum() == 1411


def test_frequency_fit_mean_matches_the_expected_purchases(
    model: cv.BetaGeo, split: pd.DataFrame
) -> None:
    # with bins wide enough to hold (almost) all mass, sum_x x * expected_x = sum_i E[X(T_i)]
    table = frequency_fit_table(model, split, max_frequency=150)
    mean_from_pmf = float((np.arange(150) * table["expected"].to_numpy()[:150]).sum())
    direct = sum(model.expected_purchases_new(horizon=float(age)) for age in split["T"])
    assert mean_from_pmf == pytest.approx(direct, rel=1e-6)


def test_frequency_fit_of_the_discrete_model_weighs_compressed_rows() -> None:
    donations = cv.datasets.load_donations()
    model = cv.BetaGeoBetaBinom().fit(donations)
    table = frequency_fit_table(model, donations)
    n_customers = donations["weight"].sum()
    assert n_customers == 11_104
    assert table["observed"].sum() == n_customers
    assert table["expected"].sum() == pytest.approx(n_customers, rel=1e-9)
    # six opportunities: nobody can make seven or more, and the mean is n E[X(6)]
    assert table.loc["7+", "observed"] == 0.0
    assert table.loc["7+", "expected"] == pytest.approx(0.0, abs=1e-6)
    mean_from_pmf = float((np.arange(7) * table["expected"].to_numpy()[:7]).sum())
    assert mean_from_pmf == pytest.approx(
        n_customers * model.expected_purchases_new(horizon=6), rel=1e-9
    )


def test_tracking_totals_match_the_summaries(
    model: cv.BetaGeo, cdnow: pd.DataFrame, split: pd.DataFrame
) -> None:
    table = tracking_table(
        model, cdnow, calibration_end=CALIBRATION_END, observation_end=OBSERVATION_END
    )
    daily = tracking_table(
        model, cdnow, calibration_end=CALIBRATION_END, observation_end=OBSERVATION_END,
        period="day",
    )  # fmt: skip
    calibration = daily.loc[: pd.Timestamp(CALIBRATION_END), "actual"].sum()
    assert calibration == split["frequency"].sum() == 2457
    assert daily["actual"].sum() == table["actual"].sum()
    total = cv.rfm_summary(cdnow, observation_end=OBSERVATION_END, unit="week")
    assert table["actual_cumulative"].iloc[-1] == total["frequency"].sum()
    assert table["actual"].sum() == table["actual_cumulative"].iloc[-1]
    assert table.index[-1] == pd.Timestamp(OBSERVATION_END)


def test_tracking_expectation_is_the_sum_over_customers(
    model: cv.BetaGeo, cdnow: pd.DataFrame, split: pd.DataFrame
) -> None:
    table = tracking_table(
        model, cdnow, calibration_end=CALIBRATION_END, observation_end=OBSERVATION_END
    )
    ages_at_end = split["T"] + split["duration_holdout"]
    direct = sum(model.expected_purchases_new(horizon=float(age)) for age in ages_at_end)
    assert table["expected_cumulative"].iloc[-1] == pytest.approx(direct, rel=1e-9)
    assert table["expected"].sum() == pytest.approx(direct, rel=1e-9)


def test_calibration_holdout_table_against_direct_means(
    model: cv.BetaGeo, split: pd.DataFrame
) -> None:
    table = calibration_holdout_table(model, split)
    assert table["customers"].sum() == len(split)
    zero = split[split["frequency"] == 0]
    assert table.loc["0", "actual"] == pytest.approx(zero["frequency_holdout"].mean(), rel=1e-12)
    predicted = model.expected_purchases(zero, horizon=39.0).mean()
    assert table.loc["0", "predicted"] == pytest.approx(predicted, rel=1e-12)
    high = split[split["frequency"] >= 7]
    assert table.loc["7+", "customers"] == len(high)


@pytest.mark.parametrize("plot", ["frequency", "tracking", "holdout"])
def test_plots_render(
    plot: str, model: cv.BetaGeo, cdnow: pd.DataFrame, split: pd.DataFrame
) -> None:
    if plot == "frequency":
        figure = plot_frequency_fit(model, split)
    elif plot == "tracking":
        figure = plot_tracking(
            model, cdnow, calibration_end=CALIBRATION_END, observation_end=OBSERVATION_END
        )
    else:
        figure = plot_calibration_holdout(model, split)
    assert isinstance(figure, Figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    assert buffer.getvalue()[:8] == b"\x89PNG\r\n\x1a\n"


def test_errors_name_the_problem(
    model: cv.BetaGeo, cdnow: pd.DataFrame, split: pd.DataFrame
) -> None:
    with pytest.raises(SchemaError, match="frequency"):
        frequency_fit_table(model, split.drop(columns="frequency"))
    with pytest.raises(SchemaError, match="must come after calibration_end"):
        tracking_table(
            model, cdnow, calibration_end=OBSERVATION_END, observation_end=CALIBRATION_END
        )
    with pytest.raises(DataQualityError, match="cohort to track is empty"):
        tracking_table(model, cdnow, calibration_end="1990-01-01", observation_end=OBSERVATION_END)
    unitless = cv.BetaGeo().fit(load_cdnow().summary)
    with pytest.raises(SchemaError, match="time unit"):
        tracking_table(
            unitless, cdnow, calibration_end=CALIBRATION_END, observation_end=OBSERVATION_END
        )
    with pytest.raises(SchemaError, match="calibration_holdout"):
        calibration_holdout_table(model, split.drop(columns="duration_holdout"))


def _section_with_everything() -> Section:
    figure = Figure()
    figure.add_subplot().plot([0, 1], [1, 0])
    table = pd.DataFrame({"name": ["<script>alert(1)</script>"], "value": [1234.5678]})
    return Section(
        key="all", title="Everything & more", paragraphs=["a < b"],
        tables=[("a <table>", table)], figures=[("a figure", figure)],
    )  # fmt: skip


def test_the_page_escapes_text_and_inlines_images() -> None:
    page = render([_section_with_everything(), Section(key="none", title="Nothing")])
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "Everything &amp; more" in page
    assert "a &lt; b" in page
    assert "<caption>a &lt;table&gt;</caption>" in page
    assert 'src="data:image/png;base64,' in page
    assert "1,235" in page
    assert 'href="#none"' in page
    assert "Nothing to show for this run." in page
    # self-contained: no address outside the page
    assert re.search(r"""(src|href)=["'](?!data:|#)""", page) is None


def test_write_report_makes_the_folders(tmp_path: Path) -> None:
    written = write_report(tmp_path / "deep" / "report.html", [_section_with_everything()])
    assert written.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_the_page_opens_in_a_browser(tmp_path: Path, browser: Browser) -> None:
    sections = [_section_with_everything(), Section(key="none", title="Nothing")]
    browser.open(write_report(tmp_path / "report.html", sections))
    assert browser.console_errors() == []
    assert browser.ids_of("section") == ["all", "none"]
    assert browser.broken_images() == 0


# --- small cohorts in the lifecycle section -------------------------------------------------------


def two_cohorts(january: int, february: int, end: str = "2024-04-30") -> pd.DataFrame:
    """A states panel: customers acquired in January and February 2024, each buying twice."""
    sizes = {"2024-01": january, "2024-02": february}
    ids = np.arange(january + february)
    first = np.repeat([pd.Timestamp(f"{month}-05") for month in sizes], list(sizes.values()))
    second = first + pd.DateOffset(months=1)
    log = pd.DataFrame({"customer_id": np.concatenate([ids, ids]),
                        "timestamp": np.concatenate([first, second])})  # fmt: skip
    return cv.lifecycle_states(log, period="M", rule=cv.InactivityRule(1),
                               observation_end=end)  # fmt: skip


def hatched_rows(figure: Figure) -> int:
    return sum(1 for patch in figure.axes[0].patches if patch.get_hatch())


def test_the_report_marks_small_cohorts() -> None:
    states = two_cohorts(january=120, february=30)
    with pytest.warns(SmallSampleWarning, match="1 of 2 cohorts have fewer than 100 customers"):
        cohorts = cv.cohort_retention(states)
    section = lifecycle_section(cv.lifecycle_flows(states), cohorts)
    page = render([section])
    table = page[page.index("<caption>Cohort retention") :]
    table = table[: table.index("</table>")]
    assert "<th>Small sample?</th>" in table  # readable labels, booleans as yes / no
    assert "<td>yes</td>" in table
    assert "<td>100.0%</td>" in table  # shares as percentages with one decimal
    assert "<th>2024-01</th>" in table  # 120 customers: not marked
    assert "<th>2024-02 *</th>" in table  # 30 customers: marked
    assert "<td>30</td>" in table
    assert ("1 of 2 cohorts have fewer than 100 customers: marked * in the table and hatched "
            "in the heatmap (is_small_sample)") in page  # fmt: skip
    assert 'alt="Cohort retention (hatched, *: fewer than 100 customers)"' in page
    heatmap = dict(section.figures)["Cohort retention (hatched, *: fewer than 100 customers)"]
    assert hatched_rows(heatmap) == 1
    labels = [label.get_text() for label in heatmap.axes[0].get_yticklabels()]
    assert labels == ["2024-01", "2024-02 *"]


def test_the_report_leaves_large_cohorts_unmarked() -> None:
    states = two_cohorts(january=120, february=100)
    cohorts = cv.cohort_retention(states)  # warnings are errors here: none may come
    section = lifecycle_section(cv.lifecycle_flows(states), cohorts)
    page = render([section])
    assert " *</th>" not in page
    assert "Every cohort has at least 100 customers." in page
    assert 'alt="Cohort retention"' in page
    assert hatched_rows(dict(section.figures)["Cohort retention"]) == 0
    # bare shares (no sizes): the heatmap alone, unmarked
    assert hatched_rows(plot_cohort_heatmap(cohorts.shares)) == 0


def test_the_report_leaves_a_cut_last_period_out_of_the_lifecycle_plots() -> None:
    states = two_cohorts(january=120, february=100, end="2024-04-15")
    flows, cohorts = cv.lifecycle_flows(states), cv.cohort_retention(states)
    section = lifecycle_section(flows, cohorts, observation_end="2024-04-15")
    page = render([section])
    assert ("The last period, 2024-04, is cut at the observation end (2024-04-15): its "
            "customers had less time to buy, so the plots leave it out") in page  # fmt: skip
    assert flows.index[-1] == pd.Period("2024-04", "M")
    figures = dict(section.figures)
    active = figures["Active customers and flows"].axes[0].get_lines()[0]
    assert list(active.get_ydata()) == list(flows["active"].iloc[:-1])
    curves = figures["Cohort retention curves"].axes[0].get_lines()
    assert [int(np.isfinite(line.get_ydata()).sum()) for line in curves] == [3, 2]  # to March
    # observed to the end of April: nothing is left out, and nothing is said
    whole = lifecycle_section(flows, cohorts, observation_end="2024-04-30")
    assert "is cut at the observation end" not in render([whole])


# --- every public plot in the job's report -------------------------------------------------------

# cvalue.plot's public names that are not plots of their own: the tables behind the fit plots,
# the daily summaries behind probability_alive_history, the line-drawing helper that
# tracking (and the report's tracking figure) is made of, and the test of a cut last period
NOT_PLOTS = {"calibration_holdout_table", "frequency_fit_table", "tracking_table",
             "customer_history", "tracking_lines", "calibration_holdout_lines",
             "partial_last_period"}  # fmt: skip
PLOTS = sorted(set(cv.plot.__all__) - NOT_PLOTS)


@pytest.fixture(scope="module")
def demo_job(demo_run: tuple[Path, JobResult]) -> tuple[Path, JobResult]:
    return demo_run


def test_the_demo_report_shows_every_plot(
    demo_job: tuple[Path, JobResult], browser: Browser
) -> None:
    folder, _ = demo_job
    page = (folder / "report.html").read_text(encoding="utf-8")
    shown = set(re.findall(r'<figure id="plot-(\w+)"', page))
    assert shown == set(PLOTS)
    assert "P(alive) of customer " in page
    assert "with at least 3 purchases" in page
    assert "not drawn" not in page
    browser.open(folder / "report.html")
    assert browser.console_errors() == []
    assert sorted(browser.ids_of("figure")) == sorted(f"plot-{name}" for name in PLOTS)
    assert browser.broken_images() == 0


def test_a_bg_bb_report_shows_the_matrices_and_the_alive_history(
    demo_job: tuple[Path, JobResult],
) -> None:
    _, result = demo_job
    assert result.models is not None
    loaded = result.loaded
    # the demo's histories in whole weeks (grain and unit a week): a base the BG/BB can fit
    summary = cv.rfm_summary(
        loaded.transactions, observation_end=loaded.observation_end, unit="week", grain="week"
    ).rename(columns={"T": "n_periods"})
    summary = summary[summary["n_periods"] > 0]
    bgbb = cv.BetaGeoBetaBinom().fit(summary)
    models = dataclasses.replace(result.models, purchase=bgbb, summary=summary)
    sections = report_sections(dataclasses.replace(result, models=models))
    page = render(sections)
    assert "not drawn" not in page
    figures = {caption: figure for section in sections for caption, figure in section.figures}
    # the job's first horizon, 3 years, is no whole number of weeks: its whole weeks, said so
    (caption,) = [c for c in figures if c.startswith("Expected purchases in the next")]
    whole_weeks = int(cv.Duration.parse("3y").to("week"))
    assert caption.startswith(f"Expected purchases in the next {whole_weeks} weeks (the whole "
                              "weeks in 3 year)")  # fmt: skip
    matrix = figures[caption].axes[0]
    assert f"next {whole_weeks} weeks" in matrix.get_title()
    cells = np.ma.filled(matrix.images[0].get_array(), np.nan)
    age = float(np.floor(summary["n_periods"].median()))
    one = pd.DataFrame({"frequency": [1], "recency": [2.0], "n_periods": [age]})
    assert cells[1, 2] == pytest.approx(
        bgbb.expected_purchases(one, horizon=float(whole_weeks)).iloc[0], rel=1e-12
    )
    assert 'id="plot-probability_alive_matrix"' in page
    # the P(alive) history, week by week, ends at the customer's P(alive) in the summary
    (caption,) = [c for c in figures if c.startswith("P(alive) of customer ")]
    assert " week by week: " in caption
    customer = int(caption.split()[3])
    alive = figures[caption].axes[0].get_lines()[0].get_ydata()
    last = bgbb.p_alive(summary.loc[[customer]]).iloc[0]
    assert alive[-1] == pytest.approx(last, rel=1e-12)
    assert len(alive) == summary.loc[customer, "n_periods"]
    # the frequency fit: actual, the pmf's expectation and the model's simulated customers
    (caption,) = [c for c in figures if c.startswith("Repeat purchases per customer")]
    _actual, expected, simulated = figures[caption].axes[0].containers
    assert sum(bar.get_height() for bar in simulated) == len(summary)
    assert sum(bar.get_height() for bar in expected) == pytest.approx(len(summary), rel=1e-9)


# --- the headline, the at-risk list and its CSV, labels and the glossary -----------------------


@pytest.fixture(scope="module")
def with_list(demo_job: tuple[Path, JobResult]) -> JobResult:
    """The demo's result with its at-risk list, as the job fills it."""
    _, result = demo_job
    scores = result.scores
    assert scores is not None
    listed = cv.segments.at_risk_valuable(scores["clv_5y"], scores["p_alive"],
                                          details=scores[["segment", "value_tier"]])  # fmt: skip
    return dataclasses.replace(result, at_risk=listed)


def test_the_report_leads_with_the_answer(with_list: JobResult) -> None:
    sections = report_sections(with_list)
    assert [section.key for section in sections] == list(SECTIONS)
    assert SECTIONS[0] == "headline"
    figures = {item.key: item for item in sections[0].highlights}
    assert list(figures) == ["equity-3-years", "equity-5-years", "customers", "value-at-risk",
                             "unprofitable", "at-risk"]  # fmt: skip
    assert with_list.equity is not None
    total = with_list.equity.total
    five = figures["equity-5-years"]
    assert five.title == "Customer equity, 5 years"
    assert five.value == f"{total.loc['5 year', 'equity']:,.0f}"
    assert five.detail.startswith(f"95% interval {total.loc['5 year', 'ci_lower']:,.0f} to "
                                  f"{total.loc['5 year', 'ci_upper']:,.0f}")  # fmt: skip
    scores = with_list.scores
    assert scores is not None
    assert figures["customers"].value == f"{len(scores):,}" == "1,000"
    # share of value at risk: the CLV of the customers with P(alive) below 0.5, over all CLV
    is_at_risk = scores["p_alive"] < 0.5
    share = scores.loc[is_at_risk, "clv_5y"].sum() / scores["clv_5y"].sum()
    assert figures["value-at-risk"].value == f"{share:.1%}"
    assert f"held by the {int(is_at_risk.sum()):,} customers" in figures["value-at-risk"].detail
    # the unprofitable cross-buyers and the losses they carry, from the per-customer table
    profit = with_list.profitability
    assert profit is not None
    customers = profit.customers_
    losing = customers[customers["is_cross_buyer"] & (customers["net_profit"] < 0)]
    assert figures["unprofitable"].value == f"{len(losing) / profit.n_cross_buyers_:.1%}"
    assert f"({-losing['net_profit'].sum():,.0f})." in figures["unprofitable"].detail
    assert figures["at-risk"].value == "100"
    page = render(sections)
    assert page.index('<section id="headline">') < page.index("<nav>") < page.index(
        '<section id="data-quality">')  # fmt: skip
    assert 'href="#headline"' not in page  # the contents list what follows the headline
    assert str(escape(CURRENCY_NOTE)) in page


def test_the_at_risk_list_is_shown_and_written_beside_the_report(
    with_list: JobResult, tmp_path: Path
) -> None:
    listed = with_list.at_risk
    assert listed is not None
    report = build_report(with_list, tmp_path / "weekly.html")
    csv = tmp_path / "weekly_at_risk.csv"
    written = pd.read_csv(csv, index_col="customer_id")
    pd.testing.assert_frame_equal(written, listed, check_index_type=False, check_dtype=False)
    page = report.read_text(encoding="utf-8")
    assert 'href="weekly_at_risk.csv"' in page
    section = page[page.index('<section id="at-risk">') : page.index('<section id="segments">')]
    assert "The 25 most valuable customers at risk (the CSV holds all 100)" in section
    headers = re.findall(r"<th>([^<]*)</th>", section)
    assert headers[:8] == ["", "Customer", "CLV, 5 years", "P(alive)", "Expected value lost",
                           "Segment", "Value tier", "Rank"]  # fmt: skip
    first = listed.iloc[0]
    assert f"<td>{first['clv_5y']:,.2f}</td>" in section
    assert f"<td>{first['p_alive']:.1%}</td>" in section
    odd = build_report(with_list, tmp_path / "week 49 #1.html")  # the link is a quoted address
    assert 'href="week%2049%20%231_at_risk.csv"' in odd.read_text(encoding="utf-8")
    assert (tmp_path / "week 49 #1_at_risk.csv").is_file()
    # a report without a list takes the earlier list away with it
    build_report(dataclasses.replace(with_list, at_risk=None), report)
    assert not csv.exists()
    page = report.read_text(encoding="utf-8")
    assert "This run made no list of valuable customers at risk." in page
    assert "_at_risk.csv" not in page
    empty = listed.iloc[:0]
    page = render(report_sections(dataclasses.replace(with_list, at_risk=empty)))
    assert "the list is empty" in page


def test_every_table_header_is_a_readable_label(with_list: JobResult) -> None:
    page = render(report_sections(with_list))
    headers = set(re.findall(r"<th[^>]*>([^<]*)</th>", page))
    assert not [header for header in headers if "_" in header]
    assert {"CLV, 5 years", "P(alive)", "Share of value", "Holdout MAE", "3 years",
            "Return rate", "BG/NBD"} <= headers  # fmt: skip
    assert "Candidate models by holdout score (ranked by Holdout MAE)" in page
    assert "<td>5,555</td>" in page  # counts with thousands separators
    assert re.search(r"<td>\d+\.\d%</td>", page)  # shares as percentages, one decimal
    assert label("expected_purchases_18M") == "Expected purchases, 18 months"
    assert label("clv_3y_upper") == "CLV, 3 years, upper bound"
    assert label("nps_by_tier") == "NPS by tier"  # the fallback: words, known capitals
    assert (percent(0.12345), amount(1234567.8), percent(float("nan"))) == (
        "12.3%", "1,234,568", "n/a")  # fmt: skip


def test_the_glossary_explains_every_state_and_scores_column(with_list: JobResult) -> None:
    assert with_list.last_states is not None
    assert with_list.flows is not None
    states = set(with_list.last_states.astype(str)) | set(with_list.flows.columns)
    assert states <= set(STATES)
    scores = with_list.scores
    assert scores is not None
    generic = {re.sub(r"_\d+[a-zA-Z]$", "_<h>", column) for column in scores.columns}
    assert generic | {"customer_id", "run_id", "scored_at"} == set(SCORE_COLUMNS)
    (section,) = [part for part in report_sections(with_list) if part.key == "glossary"]
    glossary = render([section])
    for name in [*STATES, *SCORE_COLUMNS]:
        assert f"<td>{html.escape(name)}</td>" in glossary
    assert "<td>CLV, &lt;h&gt;</td>" in glossary  # what a horizon's column is called above
