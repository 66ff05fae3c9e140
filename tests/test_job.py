"""The scoring job end to end: the demo on DuckDB, the same job on PostgreSQL, the CLI."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from cvalue.cli import DEMO_CONFIG, EXIT_BAD_INPUT, EXIT_CONVERGENCE, EXIT_DATABASE, app
from cvalue.datasets import make_crm
from cvalue.errors import ConvergenceError
from cvalue.report.job import SECTIONS
from tests.conftest import Browser

runner = CliRunner()
N_CUSTOMERS = 400
SCORE_COLUMNS = {
    "customer_id", "segment", "p_alive", "expected_spend", "expected_purchases_3y", "clv_3y",
    "expected_purchases_5y", "clv_5y", "value_tier", "lifecycle_state", "net_profit",
    "is_cross_buyer", "run_id", "scored_at",
}  # fmt: skip


def _read(url: str, table: str) -> pd.DataFrame:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            query = sa.select(sa.literal_column("*")).select_from(sa.table(table))
            return pd.read_sql(query, connection)
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    folder = tmp_path_factory.mktemp("demo")
    result = runner.invoke(app, ["demo", "--customers", str(N_CUSTOMERS), "--dir", str(folder)])
    assert result.exit_code == 0, result.output
    return folder, result.output


def _check_scores(scores: pd.DataFrame, n_customers: int) -> None:
    assert set(scores.columns) >= SCORE_COLUMNS
    assert len(scores) == n_customers
    assert scores["customer_id"].is_unique
    assert scores["p_alive"].between(0.0, 1.0).all()
    assert (scores["expected_purchases_5y"] >= scores["expected_purchases_3y"]).all()
    assert scores[["clv_3y", "clv_5y", "p_alive"]].notna().all().all()
    assert (scores["run_id"] == scores["run_id"].iloc[0]).all()


def test_the_demo_writes_scores_and_a_complete_report(demo: tuple[Path, str]) -> None:
    folder, output = demo
    flat = output.replace("\n", "")
    assert "customer_value" in flat
    assert str(folder / "report.html") in flat
    _check_scores(_read(f"duckdb:///{folder / 'crm.duckdb'}", "customer_value"), N_CUSTOMERS)
    page = (folder / "report.html").read_text(encoding="utf-8")
    for key in SECTIONS:
        assert f'<section id="{key}">' in page
    # every plot of the report, each in its figure (test_report.py checks which plots they are)
    figures = page.count('<figure id="plot-')
    # 13 plots; the run history's figure waits for a second quarter (test_history.py draws it)
    assert page.count("data:image/png;base64,") == figures == 13
    assert '<section id="history">' in page
    assert "Nothing to show for this run." not in page


def test_the_report_opens_in_a_browser(demo: tuple[Path, str], browser: Browser) -> None:
    folder, _ = demo
    browser.open(folder / "report.html")
    assert browser.console_errors() == []
    assert browser.ids_of("section") == list(SECTIONS)  # the headline first
    assert {"headline-equity-3-years", "headline-equity-5-years", "headline-customers",
            "headline-value-at-risk", "headline-unprofitable"} <= set(
        browser.ids_of("#headline .highlight"))  # fmt: skip
    assert browser.broken_images() == 0


def test_the_demo_config_reruns_with_score_and_json(demo: tuple[Path, str]) -> None:
    folder, _ = demo
    environ = {"CVALUE_DEMO_DATABASE_URL": f"duckdb:///{folder / 'crm.duckdb'}"}
    result = runner.invoke(
        app, ["score", "--config", str(folder / "cvalue.toml"), "--json"], env=environ
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["ok"] is True
    assert payload["customers_scored"] == payload["rows_written"] == N_CUSTOMERS
    assert payload["customer_equity_5y"] > payload["customer_equity_3y"] > 0
    for command in ("validate", "fit"):
        result = runner.invoke(
            app, [command, "--config", str(folder / "cvalue.toml"), "--json"], env=environ
        )
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["ok"] is True
    fitted = json.loads(result.output)
    assert fitted["purchase_model"] in {"BetaGeo", "ParetoNBD", "ModifiedBetaGeo"}
    assert set(fitted["candidates"]) == {"beta_geo", "pareto_nbd", "modified_beta_geo"}


def test_report_command_writes_no_scores(demo: tuple[Path, str], tmp_path: Path) -> None:
    folder, _ = demo
    database = folder / "crm.duckdb"
    environ = {"CVALUE_DEMO_DATABASE_URL": f"duckdb:///{database}"}
    before = _read(f"duckdb:///{database}", "customer_value")["run_id"].unique().tolist()
    target = tmp_path / "again.html"
    result = runner.invoke(
        app, ["report", "--config", str(folder / "cvalue.toml"), "--output", str(target)],
        env=environ,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert target.exists()
    after = _read(f"duckdb:///{database}", "customer_value")["run_id"].unique().tolist()
    assert after == before


@pytest.mark.postgres
def test_the_same_job_runs_on_postgresql(postgres_url: str, tmp_path: Path) -> None:
    crm = make_crm(300, seed=5)
    engine = sa.create_engine(postgres_url)
    try:
        for name, frame in {
            "customers": crm.customers.reset_index(), "transactions": crm.transactions,
            "service_contacts": crm.service_contacts, "surveys": crm.surveys,
        }.items():  # fmt: skip
            frame.to_sql(name, engine, index=False, if_exists="replace")
    finally:
        engine.dispose()
    config = tmp_path / "cvalue.toml"
    end = crm.truth.observation_end.date()
    config.write_text(
        DEMO_CONFIG.format(database="(postgresql)", config=config, observation_end=end)
    )
    result = runner.invoke(
        app, ["score", "--config", str(config)], env={"CVALUE_DEMO_DATABASE_URL": postgres_url}
    )
    assert result.exit_code == 0, result.output
    _check_scores(_read(postgres_url, "customer_value"), 300)
    assert (tmp_path / "report.html").exists()
    assert postgres_url.split("@")[0] not in result.output  # no credentials in the output


# --- bad configurations and exit codes ------------------------------------------------------


def _config_with(demo_folder: Path, tmp_path: Path, old: str, new: str) -> Path:
    text = (demo_folder / "cvalue.toml").read_text()
    assert old in text
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "cvalue.toml"
    path.write_text(text.replace(old, new, 1))
    return path


@pytest.mark.parametrize(
    ("old", "new", "code", "phrase"),
    [
        ('scores_table = "customer_value"', 'scores_tabel = "x"', EXIT_BAD_INPUT, "scores_tabel"),
        ("margin = 0.30", 'margin = "high"', EXIT_BAD_INPUT, "value.margin"),
        ('table = "transactions"', 'table = "no_such_table"', EXIT_BAD_INPUT, "no_such_table"),
        ('order_id = "order_id"', 'order_id = "no_such_column"', EXIT_BAD_INPUT,
         "[source.transactions] maps order_id = 'no_such_column', but table 'transactions' has no"),
        ('table = "transactions"', 'table = "transactions; DROP TABLE customers"', EXIT_BAD_INPUT,
         "DROP TABLE customers"),
    ],
)  # fmt: skip
def test_bad_configs_exit_with_their_code(
    demo: tuple[Path, str], tmp_path: Path, old: str, new: str, code: int, phrase: str
) -> None:
    folder, _ = demo
    database = folder / "crm.duckdb"
    config = _config_with(folder, tmp_path, old, new)
    environ = {"CVALUE_DEMO_DATABASE_URL": f"duckdb:///{database}"}
    result = runner.invoke(app, ["validate", "--config", str(config)], env=environ)
    assert result.exit_code == code, result.output
    assert phrase in re.sub(r"\s+", " ", result.output)
    # a hostile name was quoted, never executed: the customers table is still there
    assert len(_read(f"duckdb:///{database}", "customers")) == N_CUSTOMERS


_BI_READER = """
import sys, duckdb
connection = duckdb.connect(sys.argv[1], read_only=True)
connection.execute("SELECT count(*) FROM customer_value").fetchall()
print("reading", flush=True)
sys.stdin.read()  # holds the file until the test closes stdin
"""


def test_a_bi_reader_holding_the_file_does_not_block_reading_commands(
    demo: tuple[Path, str], tmp_path: Path
) -> None:
    folder, _ = demo
    url = f"duckdb:///{folder / 'crm.duckdb'}"
    before = _read(url, "customer_value")
    reader = subprocess.Popen(
        [sys.executable, "-c", _BI_READER, str(folder / "crm.duckdb")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    config = str(folder / "cvalue.toml")
    try:
        assert reader.stdout is not None
        assert reader.stdout.readline().strip() == "reading"
        for command in (["validate"], ["fit"], ["report", "--output", str(tmp_path / "r.html")]):
            result = runner.invoke(
                app, [*command, "--config", config], env={"CVALUE_DEMO_DATABASE_URL": url}
            )
            assert result.exit_code == 0, (command, result.output)
        # writing needs the file to itself: a database error naming the lock
        result = runner.invoke(app, ["score", "--config", config],
                               env={"CVALUE_DEMO_DATABASE_URL": url})  # fmt: skip
        assert result.exit_code == EXIT_DATABASE, result.output
        assert "lock" in result.output.lower()
    finally:
        reader.communicate("", timeout=60)
    pd.testing.assert_frame_equal(_read(url, "customer_value"), before)


def test_an_unreachable_database_exits_3(demo: tuple[Path, str], tmp_path: Path) -> None:
    folder, _ = demo
    unreachable = f"sqlite:///{tmp_path / 'no' / 'such' / 'folder' / 'crm.sqlite'}"
    result = runner.invoke(
        app, ["validate", "--config", str(folder / "cvalue.toml")],
        env={"CVALUE_DEMO_DATABASE_URL": unreachable},
    )  # fmt: skip
    assert result.exit_code == EXIT_DATABASE, result.output
    assert "database error" in result.output


def test_a_missing_url_variable_is_named(demo: tuple[Path, str]) -> None:
    folder, _ = demo
    result = runner.invoke(
        app, ["fit", "--config", str(folder / "cvalue.toml")], env={"CVALUE_DEMO_DATABASE_URL": ""}
    )
    assert result.exit_code == EXIT_BAD_INPUT
    assert "CVALUE_DEMO_DATABASE_URL" in result.output


def test_a_missing_config_file_is_bad_input(tmp_path: Path) -> None:
    result = runner.invoke(app, ["score", "--config", str(tmp_path / "absent.toml"), "--json"])
    assert result.exit_code == EXIT_BAD_INPUT
    assert json.loads(result.output)["ok"] is False


def test_a_fit_that_does_not_converge_exits_4(
    demo: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, _ = demo

    def no_convergence(*args: object, **kwargs: object) -> None:
        raise ConvergenceError("BetaGeo did not converge: ABNORMAL_TERMINATION_IN_LNSRCH")

    monkeypatch.setattr("cvalue.job.fit_models", no_convergence)  # the command imports it when run
    result = runner.invoke(
        app, ["fit", "--config", str(folder / "cvalue.toml")],
        env={"CVALUE_DEMO_DATABASE_URL": f"duckdb:///{folder / 'crm.duckdb'}"},
    )  # fmt: skip
    assert result.exit_code == EXIT_CONVERGENCE
    assert "did not converge" in result.output


def test_customers_first_seen_on_the_last_day_are_counted_not_lost(
    demo: tuple[Path, str], tmp_path: Path
) -> None:
    folder, _ = demo
    database = folder / "crm.duckdb"
    transactions = _read(f"duckdb:///{database}", "transactions")
    last_day = transactions["timestamp"].max().normalize()
    firsts = transactions.groupby("customer_id")["timestamp"].min().dt.normalize()
    first_seen_last_day = int((firsts == last_day).sum())
    assert first_seen_last_day > 0  # the demo base has some: the check below is not vacuous
    end = f"observation_end = {last_day.date()}"
    config = _config_with(folder, tmp_path, "observation_end = 2024-12-31", end)
    environ = {"CVALUE_DEMO_DATABASE_URL": f"duckdb:///{database}"}
    result = runner.invoke(
        app, ["report", "--config", str(config), "--output", str(tmp_path / "r.html"), "--json"],
        env=environ,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["customers_too_new"] == first_seen_last_day
    assert payload["customers_scored"] + first_seen_last_day == firsts.size
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "first bought on the observation end" in page


def test_the_eighth_model_is_a_choice_of_the_job_and_of_auto(
    demo: tuple[Path, str], tmp_path: Path
) -> None:
    # the (M)BG/CNBD-k reads litt to fit, which the job adds to its summaries because the model
    # says so (fit_columns): no model name appears in the job
    folder, _ = demo
    database = folder / "crm.duckdb"
    environ = {"CVALUE_DEMO_DATABASE_URL": f"duckdb:///{database}"}
    auto = 'purchase = "auto"\ncandidates = ["beta_geo", "beta_geo_cnbd", "modified_beta_geo_cnbd"]'
    for models in ('purchase = "beta_geo_cnbd"', auto):
        config = _config_with(folder, tmp_path, 'purchase = "auto"', models)
        fitted = runner.invoke(app, ["fit", "--config", str(config), "--json"], env=environ)
        assert fitted.exit_code == 0, fitted.output
        payload = json.loads(fitted.output)
        if models == auto:
            assert set(payload["candidates"]) == {
                "beta_geo", "beta_geo_cnbd", "modified_beta_geo_cnbd"
            }  # fmt: skip
        else:
            assert payload["purchase_model"] == "BetaGeoCNBD"
        scored = runner.invoke(app, ["score", "--config", str(config), "--json"], env=environ)
        assert scored.exit_code == 0, scored.output
        _check_scores(_read(f"duckdb:///{database}", "customer_value"), N_CUSTOMERS)


def test_covariates_from_the_customers_table_move_the_purchase_model(
    demo: tuple[Path, str], tmp_path: Path
) -> None:
    # [models] covariates name customers-table columns; value, scores and report take the
    # covariate model through the model contract, unchanged
    folder, _ = demo
    database = folder / "crm.duckdb"
    environ = {"CVALUE_DEMO_DATABASE_URL": f"duckdb:///{database}"}
    models = 'purchase = "beta_geo"\ncovariates = ["segment"]'
    config = _config_with(folder, tmp_path, 'purchase = "auto"', models)
    fitted = runner.invoke(app, ["fit", "--config", str(config), "--json"], env=environ)
    assert fitted.exit_code == 0, fitted.output
    payload = json.loads(fitted.output)
    customers = _read(f"duckdb:///{database}", "customers")
    levels = customers["segment"].nunique() - 1
    names = [name for name in payload["purchase_params"] if ":" in name]
    assert len(names) == 2 * levels  # purchase and dropout, one per non-reference level
    assert {name.split(":")[0] for name in names} == {"purchase", "dropout"}
    assert payload["covariate_test"]["df"] == 2 * levels
    scored = runner.invoke(app, ["score", "--config", str(config), "--json"], env=environ)
    assert scored.exit_code == 0, scored.output
    report = (config.parent / json.loads(scored.output)["report"]).read_text()
    assert "likelihood-ratio statistic" in report
    assert "The matrices are those of the largest group of customers (segment = " in report
    for figure in ("frequency_recency_matrix", "probability_alive_matrix",
                   "probability_alive_history"):  # fmt: skip
        assert f'id="plot-{figure}"' in report
    with_covariates = _read(f"duckdb:///{database}", "customer_value").set_index("customer_id")
    _check_scores(with_covariates.reset_index(), N_CUSTOMERS)
    plain = _config_with(folder, tmp_path / "plain", 'purchase = "auto"', 'purchase = "beta_geo"')
    assert runner.invoke(app, ["score", "--config", str(plain)], env=environ).exit_code == 0
    without = _read(f"duckdb:///{database}", "customer_value").set_index("customer_id")
    moved = (with_covariates["p_alive"] - without["p_alive"].reindex(with_covariates.index)).abs()
    assert (moved > 1e-6).mean() > 0.5  # the covariates change most customers' scores


@pytest.mark.parametrize(
    ("old", "new", "phrase"),
    [
        ('holdout = "26w"', 'holdout = "26w"\ncovariates = ["channel"]\ncandidates = '
         '["beta_geo", "beta_geo_beta_binom"]', "['beta_geo_beta_binom'] do not"),
        ('holdout = "26w"', 'holdout = "26w"\ncovariates = ["tier"]',
         "column(s) ['tier'] not found in table 'customers'"),
    ],
)  # fmt: skip
def test_covariates_the_job_cannot_use_are_bad_input(
    demo: tuple[Path, str], tmp_path: Path, old: str, new: str, phrase: str
) -> None:
    folder, _ = demo
    environ = {"CVALUE_DEMO_DATABASE_URL": f"duckdb:///{folder / 'crm.duckdb'}"}
    config = _config_with(folder, tmp_path, old, new)
    result = runner.invoke(app, ["fit", "--config", str(config)], env=environ)
    assert result.exit_code == EXIT_BAD_INPUT, result.output
    assert phrase in re.sub(r"\s+", " ", result.output)


def test_the_discrete_time_model_scores_whole_periods(
    demo: tuple[Path, str], tmp_path: Path
) -> None:
    # the BG/BB counts purchase opportunities: with purchases merged per week its n_periods is
    # the summary's T in whole weeks, and the horizons are the whole weeks in them
    folder, _ = demo
    database = folder / "crm.duckdb"
    environ = {"CVALUE_DEMO_DATABASE_URL": f"duckdb:///{database}"}
    daily = _config_with(folder, tmp_path / "day", 'purchase = "auto"',
                         'purchase = "beta_geo_beta_binom"')  # fmt: skip
    refused = runner.invoke(app, ["fit", "--config", str(daily)], env=environ)
    assert refused.exit_code == EXIT_BAD_INPUT, refused.output
    assert '[summary] grain = "week"' in re.sub(r"\s+", " ", refused.output)
    weekly = _config_with(folder, tmp_path / "week", 'purchase = "auto"',
                          'purchase = "beta_geo_beta_binom"')  # fmt: skip
    weekly.write_text(weekly.read_text().replace('unit = "week"', 'unit = "week"\ngrain = "week"'))
    scored = runner.invoke(app, ["score", "--config", str(weekly), "--json"], env=environ)
    assert scored.exit_code == 0, scored.output
    payload = json.loads(scored.output)
    assert payload["purchase_model"] == "BetaGeoBetaBinom"
    assert {"customer_equity_156w", "customer_equity_260w"} <= set(payload)  # 3y, 5y in weeks
    scores = _read(f"duckdb:///{database}", "customer_value")
    assert len(scores) == payload["customers_scored"]
    assert scores["p_alive"].between(0.0, 1.0).all()
    assert (scores["expected_purchases_5y"] >= scores["expected_purchases_3y"]).all()
