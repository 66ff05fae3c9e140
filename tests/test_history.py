"""The run history: each scoring run's indicators kept, their trends tested, score drift flagged."""

from __future__ import annotations

import json
import math
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from cvalue.config import load_config
from cvalue.datasets import make_crm
from cvalue.errors import DataQualityError, ForeignTableError, OutputError, SchemaError
from cvalue.io.history import HISTORY_COLUMNS, append_history, read_history
from cvalue.job import run
from cvalue.trends import history_trends, population_stability, psi_level, trend
from tests.conftest import demo_config, run_cli, write_crm

URL = "CVALUE_DEMO_DATABASE_URL"


def _rows(values: dict[str, float], customers: int = 500) -> pd.DataFrame:
    return pd.DataFrame({
        "grouping": "all", "group_name": "all", "indicator": list(values), "bin": None,
        "value": list(values.values()), "ci_lower": [v - 1 for v in values.values()],
        "ci_upper": [v + 1 for v in values.values()], "customers": customers,
    })  # fmt: skip


# --- the table ------------------------------------------------------------------------------------


def test_rows_go_in_and_come_back_on_every_database(engine: sa.Engine) -> None:
    name = f"history_{uuid.uuid4().hex[:10]}"
    for number, (end, customers) in enumerate([("2024-03-31", 500), ("2024-06-30", 80)]):
        with engine.begin() as connection:
            added = append_history(connection, _rows({"nps": 10.0 + number, "crr": 0.5}, customers),
                                   run_id=f"run{number}", observation_end=pd.Timestamp(end),
                                   table=name)  # fmt: skip
        assert added == 2
    history = read_history(engine, name)
    assert list(history.columns) == list(HISTORY_COLUMNS)
    assert history["run_id"].tolist() == ["run0", "run0", "run1", "run1"]
    assert history["quarter"].tolist() == ["2024Q1", "2024Q1", "2024Q2", "2024Q2"]
    # seed 003's rule: a figure from fewer than 100 customers is marked
    assert history["is_small_sample"].tolist() == [False, False, True, True]
    assert history.loc[history["indicator"] == "nps", "value"].tolist() == [10.0, 11.0]
    assert history["bin"].isna().all()


def test_a_failed_write_leaves_no_rows(engine: sa.Engine) -> None:
    name = f"history_{uuid.uuid4().hex[:10]}"
    with engine.begin() as connection:
        append_history(connection, _rows({"nps": 1.0}), run_id="kept",
                       observation_end=pd.Timestamp("2024-03-31"), table=name)  # fmt: skip

    def fail_after_the_rows(connection: sa.Connection) -> None:
        append_history(connection, _rows({"nps": 2.0}), run_id="lost",
                       observation_end=pd.Timestamp("2024-06-30"), table=name)  # fmt: skip
        raise RuntimeError("the scores' write fails after the history's rows went in")

    with pytest.raises(RuntimeError, match="fails after"), engine.begin() as connection:
        fail_after_the_rows(connection)
    assert read_history(engine, name)["run_id"].tolist() == ["kept"]


def test_a_table_cvalue_did_not_write_is_refused(engine: sa.Engine) -> None:
    name = f"foreign_{uuid.uuid4().hex[:10]}"
    pd.DataFrame({"x": [1]}).to_sql(name, engine, index=False)
    with pytest.raises(ForeignTableError, match=name), engine.begin() as connection:
        append_history(connection, _rows({"nps": 1.0}), run_id="r",
                       observation_end=pd.Timestamp("2024-03-31"), table=name)  # fmt: skip


def test_rows_without_a_column_or_a_name_are_refused() -> None:
    engine = sa.create_engine("sqlite://")
    with engine.begin() as connection:
        with pytest.raises(SchemaError, match="customers"):
            append_history(connection, _rows({"nps": 1.0}).drop(columns="customers"),
                           run_id="r", observation_end=pd.Timestamp("2024-03-31"))  # fmt: skip
        with pytest.raises(SchemaError, match="1 history row"):
            append_history(connection, _rows({"nps": 1.0}).assign(indicator=None), run_id="r",
                           observation_end=pd.Timestamp("2024-03-31"))  # fmt: skip


# --- the trend test -------------------------------------------------------------------------------


def test_a_clear_rise_a_clear_fall_and_noise() -> None:
    quarters = np.arange(6.0)
    errors = np.full(6, 0.5)
    assert trend(quarters, 10 + 2 * quarters, errors).direction == "rising"
    assert trend(quarters, 10 - 2 * quarters, errors).direction == "falling"
    assert trend(quarters, [10.0, 10.4, 9.7, 10.1, 9.9, 10.2], errors).direction == "flat"
    assert trend([0, 1], [1.0, 2.0]).direction == "too few quarters"  # no errors: no noise to test
    assert trend([0], [1.0], [0.1]).direction == "too few quarters"
    two = trend([0, 1], [10.0, 14.0], [1.0, 1.0])
    assert (two.direction, two.method) == ("rising", "two estimates")
    assert trend(quarters, 10 + 2 * quarters).method == "least squares"


def test_the_run_to_run_noise_is_measured_beyond_the_intervals() -> None:
    """Quarters that scatter far beyond their intervals: tau takes it up, and a slope hidden in
    the scatter is not called a trend."""
    rng = np.random.default_rng(4)
    values = 50 + rng.normal(0, 5, 6) + 0.5 * np.arange(6)
    tested = trend(np.arange(6), values, np.full(6, 0.2))
    assert tested.tau > 2.0
    assert tested.method == "meta-regression"


@pytest.mark.parametrize("n", [3, 5, 8])
def test_without_a_trend_the_test_says_so_at_its_level(n: int) -> None:
    """Stationary quarters, with sampling error and run-to-run noise: "rising" or "falling"
    about 5 % of the time (2,000 series; the binomial band around 5 % is 4.0-6.0 %, widened for
    the method-of-moments tau, which the test is known to hold only approximately)."""
    rng = np.random.default_rng(n)
    wrong = 0
    for _ in range(2000):
        errors = rng.uniform(0.5, 2.0, n)
        values = 10 + rng.normal(0, 1.0, n) + rng.normal(0, errors)
        wrong += trend(np.arange(n), values, errors).direction != "flat"
    assert 0.03 <= wrong / 2000 <= 0.075


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.floats(-100, 100, allow_nan=False), min_size=3, max_size=8),
    shift=st.floats(-1e3, 1e3, allow_nan=False),
    scale=st.floats(0.01, 100, allow_nan=False),
)
def test_the_verdict_ignores_units_and_flips_with_the_sign(
    values: list[float], shift: float, scale: float
) -> None:
    quarters = np.arange(len(values), dtype=float)
    y = np.array(values)
    errors = np.linspace(0.5, 1.5, len(values))
    base = trend(quarters, y, errors)
    moved = trend(quarters, scale * y + shift, scale * errors)
    flipped = trend(quarters, -y, errors)
    if math.isfinite(base.p_value) and abs(base.p_value - 0.05) > 1e-6:
        assert moved.direction == base.direction
        mirror = {"rising": "falling", "falling": "rising", "flat": "flat"}
        assert flipped.direction == mirror[base.direction]
        assert moved.p_value == pytest.approx(base.p_value, rel=1e-6, abs=1e-9)


def test_bad_input_is_refused() -> None:
    with pytest.raises(DataQualityError, match="one entry per quarter"):
        trend([0, 1, 2], [1.0, 2.0])
    with pytest.raises(DataQualityError, match="share a quarter"):
        trend([0, 0, 1], [1.0, 2.0, 3.0])
    with pytest.raises(DataQualityError, match="negative"):
        trend([0, 1, 2], [1.0, 2.0, 3.0], [1.0, -1.0, 1.0])


# --- drift ----------------------------------------------------------------------------------------


def test_population_stability_by_hand_and_its_reading() -> None:
    assert population_stability([10] * 10, [10] * 10) == 0.0
    by_hand = (0.7 - 0.5) * math.log(0.7 / 0.5) + (0.3 - 0.5) * math.log(0.3 / 0.5)
    assert population_stability([50, 50], [70, 30]) == pytest.approx(by_hand, rel=1e-12)
    assert [psi_level(x) for x in (0.05, 0.1, 0.2, 0.25, 1.0)] == [
        "stable", "moderate shift", "moderate shift", "major shift", "major shift"]  # fmt: skip
    with pytest.raises(DataQualityError, match="same bins"):
        population_stability([1, 2, 3], [1, 2])


@given(st.lists(st.tuples(st.integers(0, 1000), st.integers(0, 1000)), min_size=2, max_size=12))
def test_population_stability_is_symmetric_and_never_negative(
    counts: list[tuple[int, int]],
) -> None:
    before, after = np.array(counts, dtype=float).T
    if before.sum() == 0 or after.sum() == 0:
        return
    psi = population_stability(before, after)
    assert psi >= 0.0
    assert psi == pytest.approx(population_stability(after, before), rel=1e-12, abs=1e-15)


# --- the scores' distribution, read in the database -----------------------------------------------


def _bins_by_hand(values: np.ndarray, edges: list[float]) -> np.ndarray:
    """Customers in (-inf, e1], (e1, e2], ..., (ek, inf), counted by numpy."""
    places = np.searchsorted(np.asarray(edges), values, side="left")
    return np.bincount(places, minlength=len(edges) + 1).astype(float)


@settings(max_examples=15, deadline=None)
@given(
    values=st.lists(
        st.sampled_from([0.0, 0.25, 0.5, 1.0, 2.0, 7.5, 30.0]) | st.floats(0, 50),
        min_size=1,
        max_size=60,
    ),
    shift=st.floats(-5, 5),
)
def test_deciles_counts_and_drift_equal_numpy_on_every_database(
    engine: sa.Engine, values: list[float], shift: float
) -> None:
    """For any scores, ties included: each group's bins hold every customer once, as numpy
    counts them between the edges, and the drift is the PSI of numpy's counts."""
    from cvalue.job._history import score_indicators

    name = f"scores_{uuid.uuid4().hex[:10]}"
    segments = ["a", "b"] * len(values)
    frame = pd.DataFrame({"segment": segments[: len(values)], "p_alive": 0.5,
                          "clv_5y": values, "run_id": "r"})  # fmt: skip
    moved = frame.assign(clv_5y=frame["clv_5y"] + shift, run_id="s")
    pd.concat([frame, moved]).to_sql(name, engine, index=False)
    table = sa.Table(name, sa.MetaData(), sa.Column("segment", sa.Text),
                     sa.Column("p_alive", sa.Double), sa.Column("clv_5y", sa.Double),
                     sa.Column("run_id", sa.Text))  # fmt: skip
    with engine.connect() as connection:
        first = score_indicators(connection, table, table.c.run_id == "r", scores=["clv_5y"],
                                 previous=pd.DataFrame())  # fmt: skip
        history = first.assign(scored_at=pd.Timestamp("2024-01-01"))
        second = score_indicators(connection, table, table.c.run_id == "s", scores=["clv_5y"],
                                  previous=history)  # fmt: skip
    for group, rows in frame.groupby("segment"):
        own = first[(first["group_name"] == group) & (first["indicator"] == "bins:clv_5y")]
        edges = own["value"].to_numpy(float)[:-1].tolist()
        assert np.isnan(own["value"].iloc[-1])
        assert edges == sorted(set(edges))
        expected = _bins_by_hand(rows["clv_5y"].to_numpy(float), edges)
        np.testing.assert_array_equal(own["customers"].to_numpy(float), expected)
        now = _bins_by_hand(rows["clv_5y"].to_numpy(float) + shift, edges)
        drift = second[(second["group_name"] == group) & (second["indicator"] == "psi_clv_5y")]
        if not edges:  # every score tied: one bin, nothing to measure a drift against
            assert drift.empty
            continue
        assert drift["value"].iloc[0] == pytest.approx(population_stability(expected, now),
                                                       rel=1e-9, abs=1e-12)  # fmt: skip
    everyone = first[(first["grouping"] == "all") & (first["indicator"] == "bins:clv_5y")]
    assert everyone["customers"].sum() == len(values)
    mean = first[(first["indicator"] == "mean_p_alive") & (first["grouping"] == "all")]
    assert mean["value"].iloc[0] == pytest.approx(0.5)


# --- trends of a history --------------------------------------------------------------------------


def _history(values_by_quarter: dict[str, list[float]], customers: int = 500) -> pd.DataFrame:
    engine = sa.create_engine("sqlite://")
    run = 0
    for quarter, values in values_by_quarter.items():
        for value in values:  # several runs in a quarter: the latest counts
            end = pd.Period(quarter, freq="Q").end_time.normalize()
            with engine.begin() as connection:
                when = pd.Timestamp("2025-01-01") + pd.Timedelta(hours=run)
                append_history(connection, _rows({"nps": value}, customers), run_id=f"r{run}",
                               observation_end=end, scored_at=when)  # fmt: skip
            run += 1
    return read_history(engine)


def test_the_latest_run_of_each_quarter_counts() -> None:
    history = _history({"2024Q1": [99.0, 10.0], "2024Q2": [14.0], "2024Q3": [18.0, 50.0, 22.0],
                        "2024Q4": [26.0]})  # fmt: skip
    found = history_trends(history).set_index("indicator").loc["nps"]
    assert found["quarters"] == 4
    assert (found["quarter"], found["value"], found["previous"]) == ("2024Q4", 26.0, 22.0)
    assert found["direction"] == "rising"
    assert found["slope"] == pytest.approx(5.6)  # 10, 14, 22, 26: the least-squares line


def test_a_small_group_is_marked_in_the_trends() -> None:
    found = history_trends(_history({"2024Q1": [10.0], "2024Q2": [11.0]}, customers=99))
    assert found["is_small_sample"].tolist() == [True]


# --- the job --------------------------------------------------------------------------------------


def _job(folder: Path, crm: object, end: pd.Timestamp | None = None, extra: str = "") -> Path:
    path = demo_config(folder, crm, '[source.surveys]\ntable = "surveys"\n', "")
    text = path.read_text()
    if end is not None:
        old = f"observation_end = {crm.truth.observation_end.date()}"  # type: ignore[attr-defined]
        text = text.replace(old, f"observation_end = {end.date()}")
    path.write_text(text.replace("[outputs]\n", f"[outputs]\n{extra}", 1))
    return path


@pytest.fixture(scope="module")
def quarterly(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Three runs, one a quarter, into one DuckDB file: the run history of three quarters."""
    folder = tmp_path_factory.mktemp("quarterly")
    url = f"duckdb:///{folder / 'crm.duckdb'}"
    crm = make_crm(700, seed=11)
    write_crm(url, crm)
    last = crm.truth.observation_end  # type: ignore[attr-defined]
    for back in (6, 3, 0):
        end = (last - pd.DateOffset(months=back)).to_period("Q").end_time.normalize()
        config = _job(folder, crm, min(end, last))
        code, output = run_cli(["score"], config, url)
        assert code == 0, output
    return folder, url


def test_each_run_appends_its_indicators(quarterly: tuple[Path, str]) -> None:
    _, url = quarterly
    history = read_history(url)
    assert history["run_id"].nunique() == 3
    assert history["quarter"].nunique() == 3
    indicators = set(history["indicator"])
    assert {"customers", "retention_rate", "churn_rate", "crr", "cohort_retention",
            "equity_3y", "equity_5y", "mean_p_alive", "bins:clv_5y", "bins:p_alive",
            "psi_clv_5y", "psi_p_alive"} <= indicators  # fmt: skip
    assert {"all", "segment", "cohort"} <= set(history["grouping"])
    # every run but the first measures the drift from the one before, per segment too
    drift = history[history["indicator"] == "psi_clv_5y"]
    assert drift["run_id"].nunique() == 2
    assert set(drift["grouping"]) == {"all", "segment"}
    assert (drift["value"] >= 0).all()
    # retention and churn of the same period add up; every interval holds its value
    last = history[history["run_id"] == history["run_id"].iloc[-1]].set_index("indicator")
    assert last.loc["retention_rate", "value"] + last.loc["churn_rate", "value"] == pytest.approx(1)
    rows = history.dropna(subset=["ci_lower"])
    assert ((rows["ci_lower"] <= rows["value"] + 1e-12)
            & (rows["value"] <= rows["ci_upper"] + 1e-12)).all()  # fmt: skip
    assert history.loc[history["customers"] < 100, "is_small_sample"].all()
    assert not history.loc[history["customers"] >= 100, "is_small_sample"].any()


def test_the_history_command_prints_each_trend(quarterly: tuple[Path, str]) -> None:
    folder, url = quarterly
    code, output = run_cli(["history"], folder / "cvalue.toml", url, "--json")
    assert code == 0, output
    payload = json.loads(output)
    assert (payload["runs"], payload["quarters"]) == (3, 3)
    trends = {row["indicator"]: row for row in payload["trends"]}
    assert trends["customers"]["quarters"] == 3
    assert trends["customers"]["direction"] in {"rising", "falling", "flat"}
    assert trends["psi_clv_5y"]["drift"] in {"stable", "moderate shift", "major shift"}
    assert {row["grouping"] for row in payload["trends"]} == {"all"}
    code, output = run_cli(["history"], folder / "cvalue.toml", url, "--grouping", "segment")
    assert code == 0, output
    assert "Run history: 3 run(s)" in output
    assert "equity_5y" in output


def test_the_report_shows_the_history(quarterly: tuple[Path, str]) -> None:
    folder, _ = quarterly
    page = (folder / "report.html").read_text(encoding="utf-8")
    assert '<section id="history">' in page
    assert 'id="plot-history"' in page
    assert "rising" in page or "falling" in page or "flat" in page


def test_a_run_that_fails_in_its_write_adds_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"duckdb:///{tmp_path / 'crm.duckdb'}"
    crm = make_crm(600, seed=3)
    write_crm(url, crm)
    config = load_config(_job(tmp_path, crm), environ={URL: url})
    run(config, environ={URL: url})
    before = read_history(url)

    def fail(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("cvalue.job._run.build_report", fail)
    with pytest.raises(OutputError, match="disk full"):
        run(config, environ={URL: url})
    pd.testing.assert_frame_equal(read_history(url), before)
    monkeypatch.undo()
    unwritten = run(config, environ={URL: url}, write=False, report_path=None)
    assert unwritten.run_history is None
    pd.testing.assert_frame_equal(read_history(url), before)


def test_no_history_when_the_configuration_keeps_none(tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path / 'crm.duckdb'}"
    crm = make_crm(600, seed=3)
    write_crm(url, crm)
    path = _job(tmp_path, crm, extra="history_table = false\n")
    result = run(load_config(path, environ={URL: url}), environ={URL: url}, report_path=None)
    assert result.written is not None
    assert result.run_history is None
    assert read_history(url).empty
    code, output = run_cli(["history"], path, url)
    assert code == 2
    assert "keeps no run history" in output
