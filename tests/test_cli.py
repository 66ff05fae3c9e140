import json
import subprocess
import sys

import pandas as pd
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

import cvalue
from cvalue.cli import app

runner = CliRunner()


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"cvalue {cvalue.__version__}"


def test_console_script_is_installed():
    result = subprocess.run(
        [sys.executable, "-m", "cvalue", "--version"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert cvalue.__version__ in result.stdout


def test_demo_builds_the_database_and_scores_it(tmp_path):
    result = runner.invoke(
        app, ["demo", "--customers", "300", "--dir", str(tmp_path), "--seed", "3"]
    )
    assert result.exit_code == 0, result.output
    assert "What the demo did" in result.output
    database = tmp_path / "crm.duckdb"
    assert str(database) in result.output.replace("\n", "")
    engine = sa.create_engine(f"duckdb:///{database}")
    with engine.connect() as connection:
        customers = pd.read_sql(sa.text("SELECT count(*) AS n FROM customers"), connection)
        tables = sa.inspect(connection).get_table_names()
    engine.dispose()
    assert customers["n"].item() == 300
    assert {"customers", "transactions", "service_contacts", "surveys", "customer_value"} <= set(
        tables
    )


def test_demo_runs_again_in_the_same_folder(tmp_path):
    for seed in ("1", "2"):
        result = runner.invoke(
            app, ["demo", "--customers", "50", "--dir", str(tmp_path), "--seed", seed]
        )
        assert result.exit_code == 0, result.output


def test_demo_rejects_a_bad_customer_count(tmp_path):
    result = runner.invoke(app, ["demo", "--customers", "0", "--dir", str(tmp_path)])
    assert result.exit_code == 2


def test_json_output_is_standard_json_without_nan(capsys: pytest.CaptureFixture[str]) -> None:
    # a candidate's Gini is NaN when every holdout outcome is equal: JSON has no NaN, so null
    from cvalue.cli import _print

    _print({"gini": float("nan"), "table": {"a": [1.0, float("inf"), -float("inf")]}}, [], True)

    def refuse(constant: str) -> None:
        raise AssertionError(f"not standard JSON: {constant}")

    printed = json.loads(capsys.readouterr().out, parse_constant=refuse)
    assert printed == {"ok": True, "gini": None, "table": {"a": [1.0, None, None]}}
