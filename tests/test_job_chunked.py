"""The job in bounded memory ([run] chunk_customers) gives the in-memory job's results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from cvalue.config import load_config
from cvalue.datasets import make_crm
from cvalue.errors import ConfigError, DatabaseError, SchemaError
from cvalue.job import JobResult, run
from cvalue.job._candidates import candidates_check
from cvalue.job._chunked import _Scorer
from cvalue.plot import calibration_holdout_table, tracking_table
from cvalue.report.job import SECTIONS
from cvalue.summary import calibration_holdout
from tests.conftest import demo_config, read_all, run_cli, write_crm

N_CUSTOMERS = 1_500
URL = "CVALUE_DEMO_DATABASE_URL"
NO_SURVEYS = ('[source.surveys]\ntable = "surveys"\n', "")


def _config(
    folder: Path,
    crm: object,
    url: str,
    chunk: int | None,
    extra: str = "",
    *,
    surveys: bool = False,
) -> object:
    path = demo_config(folder, crm, *(("", "") if surveys else NO_SURVEYS))
    text = path.read_text() + extra
    if chunk is not None:
        text += f"\n[run]\nchunk_customers = {chunk}\n"
    path.write_text(text)
    return load_config(path, environ={URL: url})


def _scores(url: str) -> pd.DataFrame:
    table = read_all(url, "customer_value").drop(columns=["run_id", "scored_at"])
    return table.set_index("customer_id").sort_index()


def _same_scores(memory: pd.DataFrame, chunked: pd.DataFrame) -> None:
    assert list(chunked.columns) == list(memory.columns)
    assert chunked.index.equals(memory.index)
    for column in memory.columns:
        if pd.api.types.is_float_dtype(memory[column]):
            np.testing.assert_allclose(chunked[column], memory[column], rtol=1e-9, atol=1e-9,
                                       err_msg=column)  # fmt: skip
        else:
            assert chunked[column].astype(str).tolist() == memory[column].astype(str).tolist()


def _same_results(memory: JobResult, chunked: JobResult) -> None:
    _same_streamed_results(memory, chunked)
    _same_surveys(memory, chunked)


def _same_streamed_results(memory: JobResult, chunked: JobResult) -> None:
    """What the chunked and the Dask jobs give alike (the Dask job reads no surveys yet)."""
    assert memory.models is not None
    assert chunked.models is not None
    for name in ("purchase", "spend"):
        np.testing.assert_allclose(getattr(chunked.models, name).params_,
                                   getattr(memory.models, name).params_, rtol=1e-7)  # fmt: skip
    candidates = (memory.models.candidates, chunked.models.candidates)
    assert candidates[0] is not None
    assert candidates[1] is not None
    pd.testing.assert_frame_equal(candidates[1], candidates[0], rtol=1e-6)
    assert memory.equity is not None
    assert chunked.equity is not None
    # the delta method's forward differences on merged cells: standard errors to 1e-8
    pd.testing.assert_frame_equal(chunked.equity.total, memory.equity.total, rtol=1e-8)
    pd.testing.assert_frame_equal(chunked.equity.by_group, memory.equity.by_group, rtol=1e-8)
    pd.testing.assert_frame_equal(chunked.flows, memory.flows)
    assert memory.tiers is not None
    assert chunked.tiers is not None
    pd.testing.assert_frame_equal(chunked.tiers.summary_, memory.tiers.summary_, rtol=1e-9)
    pd.testing.assert_frame_equal(chunked.grid, memory.grid, rtol=1e-9)
    assert memory.whale is not None
    assert chunked.whale is not None
    for name in ("total_profit_", "peak_profit_", "peak_customers_share_",
                 "value_destroying_share_", "total_loss_"):  # fmt: skip
        np.testing.assert_allclose(getattr(chunked.whale, name), getattr(memory.whale, name),
                                   rtol=1e-9)  # fmt: skip
    assert memory.profitability is not None
    assert chunked.profitability is not None
    assert chunked.profitability.n_cross_buyers_ == memory.profitability.n_cross_buyers_
    np.testing.assert_allclose(chunked.profitability.unprofitable_share_,
                               memory.profitability.unprofitable_share_, rtol=1e-12)  # fmt: skip
    pd.testing.assert_frame_equal(chunked.profitability.drivers_, memory.profitability.drivers_,
                                  rtol=1e-9)  # fmt: skip
    _same_tracking(memory, chunked)
    _same_holdout_check(memory, chunked)


def _same_holdout_check(memory: JobResult, chunked: JobResult) -> None:
    """The calibration plot's table alike; the streamed check keeps nothing that grows."""
    assert memory.models is not None
    assert chunked.models is not None
    check, streamed = memory.models.holdout, chunked.models.holdout
    assert check.split is not None
    best = check.fitted[str(check.errors.index[0])]
    expected = calibration_holdout_table(best, check.split)  # type: ignore[arg-type]
    pd.testing.assert_frame_equal(check.calibration_table, expected, rtol=1e-12)
    pd.testing.assert_frame_equal(streamed.calibration_table, expected, rtol=1e-6)
    assert streamed.split is None
    patterns = chunked.models.summary
    assert patterns["weight"].sum() == len(memory.models.summary)
    fitted_on = getattr(chunked.models.purchase, "_fitted_on", None)
    if chunked.models.summary_source == "dask":
        # the pattern table kept is the one the purchase model was fitted on, not a copy
        assert fitted_on is not None
        for column in ("frequency", "recency", "T"):
            assert np.shares_memory(fitted_on[column], patterns[column].to_numpy()), column
        assert np.shares_memory(fitted_on.weights, patterns["weight"].to_numpy())
    else:  # it waited in the database while the chunks were scored, read again for the report
        assert fitted_on is None
    for model in streamed.fitted.values():
        with pytest.raises(SchemaError, match="drop_data"):
            model.resampled(np.random.default_rng(0))


def _same_uplift(memory: JobResult, chunked: JobResult) -> None:
    """Below the report's sample size every customer is in the sample: the same uplift."""
    assert memory.uplift is not None
    assert chunked.uplift is not None
    for name in ("total", "by_group"):
        expected, found = getattr(memory.uplift, name), getattr(chunked.uplift, name)
        pd.testing.assert_frame_equal(found, expected, rtol=1e-7)
    assert (memory.uplift.total["change"] > 0).all()


def _same_at_risk(memory: JobResult, other: JobResult) -> None:
    """The valuable customers at risk, listed in the staging table, are the in-memory list."""
    assert memory.at_risk is not None
    assert other.at_risk is not None
    assert len(memory.at_risk) > 0
    assert other.at_risk.index.tolist() == memory.at_risk.index.tolist()
    numbers = ["rank", memory.at_risk.columns[1], "p_alive", "expected_value_lost"]
    np.testing.assert_allclose(other.at_risk[numbers].to_numpy(float),
                               memory.at_risk[numbers].to_numpy(float), rtol=1e-9)  # fmt: skip


def _same_history(memory: JobResult, other: JobResult) -> None:
    """The run's own history rows (drift aside: the first run has none) are the same."""
    keys = ["grouping", "group_name", "indicator", "bin"]

    def own(result: JobResult) -> pd.DataFrame:
        history = result.run_history
        assert history is not None
        rows = history[history["scored_at"] == history["scored_at"].max()]
        rows = rows[~rows["indicator"].str.startswith("psi_")]
        return rows.assign(bin=rows["bin"].fillna(-1)).set_index(keys).sort_index()

    expected, found = own(memory), own(other)
    assert found.index.equals(expected.index)
    assert {"customers", "retention_rate", "crr", "mean_p_alive", "equity_5y"} <= set(
        expected.index.get_level_values("indicator"))  # fmt: skip
    for column in ("value", "ci_lower", "ci_upper"):
        np.testing.assert_allclose(found[column], expected[column], rtol=1e-7, err_msg=column)
    # the score distribution's bins: their edges are scores, equal to 1e-9 but not to the bit,
    # so a customer tied with an edge in one run can sit a hair above it in the other
    binned = found.index.get_level_values("bin") >= 0
    counted = found["customers"].to_numpy(float), expected["customers"].to_numpy(float)
    assert (counted[0][~binned] == counted[1][~binned]).all()
    assert np.abs(counted[0][binned] - counted[1][binned]).max() <= 2
    totals = [found[binned].groupby(level=[0, 1, 2])["customers"].sum(),
              expected[binned].groupby(level=[0, 1, 2])["customers"].sum()]  # fmt: skip
    pd.testing.assert_series_equal(totals[0], totals[1])


def _same_surveys(memory: JobResult, chunked: JobResult) -> None:
    """NPS, CSAT and CES by value tier: the tiers ranked in the staging table, the same tables."""
    assert set(memory.surveys_by_value) == {"nps", "csat", "ces"}
    assert set(chunked.surveys_by_value) == set(memory.surveys_by_value)
    for metric, expected in memory.surveys_by_value.items():
        pd.testing.assert_frame_equal(chunked.surveys_by_value[metric], expected, rtol=1e-9)
    assert int(memory.surveys_by_value["nps"].loc["all", "detractors"]) > 0


def _same_tracking(memory: JobResult, chunked: JobResult) -> None:
    """The report's tracking table, counted in the database, is the in-memory report's."""
    assert memory.models is not None
    check = memory.models.holdout
    calibrated = check.fitted[str(check.errors.index[0])]
    expected = tracking_table(calibrated, memory.loaded.transactions,  # type: ignore[arg-type]
                              calibration_end=check.calibration_end,
                              observation_end=memory.loaded.observation_end)  # fmt: skip
    assert chunked.in_database is not None
    assert chunked.in_database.tracking is not None
    pd.testing.assert_frame_equal(chunked.in_database.tracking, expected, rtol=1e-9)
    assert expected["actual"].sum() > 0


@pytest.mark.parametrize("backend", ["duckdb", "sqlite", "postgresql"])
def test_chunked_scores_equal_the_in_memory_scores(
    crm_url, tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    crm = make_crm(N_CUSTOMERS, seed=5)
    held = []  # what the scorer holds of the pattern table at each chunk: it grows with the base
    score = _Scorer.score

    def scoring(self: _Scorer, summary: pd.DataFrame) -> pd.DataFrame:
        held.append((len(self.models.summary), hasattr(self.models.purchase, "_fitted_on")))
        return score(self, summary)

    monkeypatch.setattr(_Scorer, "score", scoring)
    url = crm_url(backend)
    write_crm(url, crm)
    memory = run(_config(tmp_path, crm, url, None, surveys=True), environ={URL: url},
                 report_path=tmp_path / "memory.html")  # fmt: skip
    in_memory = _scores(url)
    chunked = run(_config(tmp_path, crm, url, 400, surveys=True), environ={URL: url},
                  report_path=tmp_path / "chunked.html")  # fmt: skip
    assert chunked.written is not None
    assert chunked.written.rows_written == len(in_memory)
    _same_scores(in_memory, _scores(url))
    _same_results(memory, chunked)
    _same_history(memory, chunked)
    _same_at_risk(memory, chunked)
    _same_uplift(memory, chunked)
    history = chunked.run_history
    assert history is not None  # the second run into this database: both runs, drift measured
    assert history["run_id"].nunique() == 2
    drift = history[history["indicator"] == "psi_p_alive"]
    assert len(drift) >= 1
    assert drift["value"].max() < 1e-9  # the same scores: no drift
    assert len(held) >= 3
    assert set(held) == {(0, False)}
    # the scores went to the source database: the answers were counted there
    assert "surveys by value tier counted in the database" in chunked.notes
    assert chunked.in_database is not None
    assert chunked.in_database.n_chunks >= 3
    page = (tmp_path / "chunked.html").read_text(encoding="utf-8")
    assert "NPS by value tier" in page
    for key in SECTIONS:
        assert f'<section id="{key}">' in page
    assert "random sample of" in page
    assert 'id="plot-tracking"' in page


def test_a_large_base_measures_the_uplift_on_the_reports_sample(
    crm_url, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above the report's sample size, the uplift is the sample's, its amounts scaled by the
    sampling rate: near the in-memory figures, and said so in the report."""
    crm = make_crm(N_CUSTOMERS, seed=5)
    url = crm_url("duckdb")
    write_crm(url, crm)
    memory = run(_config(tmp_path, crm, url, None), environ={URL: url}, write=False,
                 report_path=None)  # fmt: skip
    monkeypatch.setattr("cvalue.job._chunked._SAMPLE", N_CUSTOMERS // 3)
    chunked = run(_config(tmp_path, crm, url, 400), environ={URL: url}, write=False,
                  report_path=tmp_path / "sampled.html")  # fmt: skip
    assert memory.uplift is not None
    assert chunked.uplift is not None
    kept = chunked.in_database
    assert kept is not None
    assert 0 < len(kept.sample) < N_CUSTOMERS
    found, expected = chunked.uplift.total, memory.uplift.total
    # the scaled count of customers is an unbiased estimate: within 4 binomial standard errors
    rate = (N_CUSTOMERS // 3) / N_CUSTOMERS
    spread = 4 * np.sqrt(N_CUSTOMERS * (1 - rate) / rate)
    assert (abs(found["customers"] - N_CUSTOMERS) <= spread).all()
    np.testing.assert_allclose(found["change_percent"], expected["change_percent"], rtol=0.25)
    page = (tmp_path / "sampled.html").read_text(encoding="utf-8")
    said = f"easured on a random sample of {len(kept.sample):,} of the {N_CUSTOMERS:,} customers"
    assert f"M{said}" in page  # in the section, and in the run's notes
    assert any(note.startswith(f"what more retention is worth: m{said}") for note in chunked.notes)
    # the in-memory job samples a large base the same way, and says so
    monkeypatch.setattr("cvalue.job._run.UPLIFT_SAMPLE", N_CUSTOMERS // 3)
    sampled = run(_config(tmp_path, crm, url, None), environ={URL: url}, write=False,
                  report_path=None)  # fmt: skip
    assert sampled.uplift is not None
    assert (abs(sampled.uplift.total["customers"] - N_CUSTOMERS) <= spread).all()
    np.testing.assert_allclose(sampled.uplift.total["change_percent"], expected["change_percent"],
                               rtol=0.25)  # fmt: skip
    assert any("measured on a random sample of" in note for note in sampled.notes)


def test_a_failing_chunk_leaves_the_old_scores_and_no_report(
    crm_url, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    crm = make_crm(800, seed=6)
    url = crm_url("duckdb")
    write_crm(url, crm)
    config = _config(tmp_path, crm, url, 200)
    run(config, environ={URL: url}, report_path=tmp_path / "first.html")
    before = _scores(url)
    scored = _Scorer.score
    calls = []

    def failing(self: _Scorer, summary: pd.DataFrame) -> pd.DataFrame:
        calls.append(len(summary))
        if len(calls) == 3:
            raise RuntimeError("the machine ran out of memory in chunk 3")
        return scored(self, summary)

    monkeypatch.setattr(_Scorer, "score", failing)
    with pytest.raises(RuntimeError, match="chunk 3"):
        run(config, environ={URL: url}, report_path=tmp_path / "second.html")
    pd.testing.assert_frame_equal(_scores(url), before)
    assert not (tmp_path / "second.html").exists()
    assert not list(tmp_path.glob(".second.html.*"))


def test_without_writing_nothing_is_written_and_the_report_is(crm_url, tmp_path: Path) -> None:
    crm = make_crm(600, seed=7)
    url = crm_url("duckdb")
    write_crm(url, crm)
    result = run(_config(tmp_path, crm, url, 250), environ={URL: url}, write=False,
                 report_path=tmp_path / "report.html")  # fmt: skip
    assert result.written is None
    assert result.tiers is not None
    assert int(result.tiers.summary_["customers"].sum()) == result.in_database.n_customers  # type: ignore[union-attr]
    assert (tmp_path / "report.html").exists()
    with sa.create_engine(url).connect() as connection:
        assert "customer_value" not in sa.inspect(connection).get_table_names()


@pytest.mark.parametrize(
    ("old", "new", "named"),
    [
        ("[models]\n", '[models]\ncovariates = ["channel"]\n', r"\[models\] covariates"),
        (
            "[value]\n",
            "[value]\nmargin_by_category = { a = 0.3 }\n",
            r"\[value\] margin_by_category",
        ),
    ],
)
def test_what_the_chunked_run_does_not_do_yet_is_named(
    tmp_path: Path, old: str, new: str, named: str
) -> None:
    path = demo_config(tmp_path, make_crm(50, seed=1), old, new)
    path.write_text(path.read_text() + "\n[run]\nchunk_customers = 1000\n")
    with pytest.raises(ConfigError, match=f"chunk_customers does not support {named}"):
        load_config(path, environ={URL: "duckdb:///x.duckdb"})


def test_validate_and_fit_commands_run_in_the_database(crm_url, tmp_path: Path) -> None:
    crm = make_crm(700, seed=8)
    url = crm_url("duckdb")
    write_crm(url, crm)
    _config(tmp_path, crm, url, None)
    memory_config = tmp_path / "memory.toml"
    memory_config.write_text((tmp_path / "cvalue.toml").read_text())
    _config(tmp_path, crm, url, 300)
    chunked_config = tmp_path / "cvalue.toml"
    outputs = {}
    for name, path in (("memory", memory_config), ("chunked", chunked_config)):
        for command in ("validate", "fit"):
            code, output = run_cli([command], path, url, "--json")
            assert code == 0, output
            outputs[name, command] = json.loads(output)
    _same_commands(outputs, ("purchase_params", "spend_params"))


def _same_commands(outputs: dict[tuple[str, str], Any], kinds: tuple[str, ...]) -> None:
    """``validate`` and ``fit`` (their JSON) of the chunked run equal the in-memory run's."""
    for key in ("transactions_kept", "rows_rejected", "observation_end"):
        assert outputs["chunked", "validate"][key] == outputs["memory", "validate"][key]
    chunked, memory = outputs["chunked", "fit"], outputs["memory", "fit"]
    assert chunked["purchase_model"] == memory["purchase_model"]
    for kind in kinds:
        expected = pd.DataFrame(memory[kind])
        pd.testing.assert_frame_equal(pd.DataFrame(chunked[kind]), expected, rtol=1e-6)


def test_duckdb_out_of_memory_names_the_setting(crm_url, tmp_path: Path) -> None:
    crm = make_crm(3_000, seed=9)
    url = crm_url("duckdb")
    write_crm(url, crm)
    config = _config(tmp_path, crm, url, 1_000, extra="")
    path = tmp_path / "cvalue.toml"
    path.write_text(path.read_text() + 'duckdb_memory = "2MB"\n')
    config = load_config(path, environ={URL: url})
    with pytest.raises(DatabaseError, match=r"raise it, or lower chunk_customers"):
        run(config, environ={URL: url}, write=False, report_path=None)


def test_surveys_by_tier_take_the_configured_tiers_in_both_runs(crm_url, tmp_path: Path) -> None:
    """``[segments] tiers`` cut the survey tables too (the in-memory run cut them at 1/5/20 %)."""
    crm = make_crm(N_CUSTOMERS, seed=5)
    url = crm_url("duckdb")
    write_crm(url, crm)
    results = []
    for chunk in (None, 400):
        config = _config(tmp_path, crm, url, chunk, surveys=True)
        config = config.model_copy(update={  # type: ignore[attr-defined]
            "segments": config.segments.model_copy(update={"tiers": [0.1, 0.3]})})  # type: ignore[attr-defined]  # fmt: skip
        results.append(run(config, environ={URL: url}, report_path=None, write=False))
    memory, chunked = results
    assert "surveys by value tier counted in the database" not in chunked.notes  # a scratch DuckDB
    assert memory.tiers is not None
    tiers = list(memory.tiers.summary_.index)
    for metric, table in memory.surveys_by_value.items():
        assert [tier for tier in table.index if tier != "all"] == tiers, metric
        pd.testing.assert_frame_equal(chunked.surveys_by_value[metric], table, rtol=1e-9)


def test_a_consumed_pattern_split_is_emptied_and_scores_as_a_kept_one(tmp_path: Path) -> None:
    """A chunked run's split grows with the base: the check scores its rows through their
    calibration patterns and empties the caller's frame before the candidates are fitted."""
    crm = make_crm(900, seed=4)
    config = _config(tmp_path, crm, "duckdb:///unused.duckdb", None)
    end = pd.Timestamp("2024-12-31")
    split = calibration_holdout(crm.transactions, calibration_end=end - pd.Timedelta(days=182),
                                observation_end=end, unit="week")  # fmt: skip
    keys = ["frequency", "recency", "T", "frequency_holdout", "duration_holdout"]
    patterns = split[split["T"] > 0].groupby(keys).size().rename("weight").reset_index()
    patterns.attrs = {"unit": "week"}
    kept = candidates_check(config, patterns.copy(), ["beta_geo", "pareto_nbd"], end)
    consumed = patterns.copy()
    streamed = candidates_check(config, consumed, ["beta_geo", "pareto_nbd"], end,
                                keep_split=False)  # fmt: skip
    assert consumed.columns.empty
    assert streamed.split is None
    pd.testing.assert_frame_equal(streamed.errors, kept.errors, rtol=1e-12)
    pd.testing.assert_frame_equal(streamed.calibration_table, kept.calibration_table, rtol=1e-12)
