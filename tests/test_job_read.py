"""The job's reading stage: export files as sources, empty and out-of-range extracts, and errors
classified by cause on SQLite, DuckDB and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cvalue.cli import EXIT_BAD_INPUT, EXIT_DATABASE
from cvalue.datasets import make_crm
from tests.conftest import BACKENDS, _free_port, demo_config, read_all, run_cli, write_crm

runner = CliRunner()
N_CUSTOMERS = 300
VARIABLE = "CVALUE_DEMO_DATABASE_URL"


@pytest.fixture(scope="module")
def crm() -> object:
    return make_crm(N_CUSTOMERS, seed=3)


# --- item 3: CSV and Parquet exports as the job's source -------------------------------------


def _export(crm: object, folder: Path) -> None:
    """The CRM as a European export: ';', cp1251, day-first dates, decimal commas, a BOM."""
    folder.mkdir()
    transactions = crm.transactions.copy()  # type: ignore[attr-defined]
    transactions["category"] = (
        transactions["category"]
        .map({"fashion": "одежда", "home": "дом"})
        .fillna(transactions["category"])
    )
    transactions["timestamp"] = transactions["timestamp"].dt.strftime("%d.%m.%Y %H:%M:%S")
    transactions["amount"] = transactions["amount"].map(repr).str.replace(".", ",")
    transactions.to_csv(folder / "transactions.csv", sep=";", index=False, encoding="cp1251")
    customers = crm.customers.reset_index()  # type: ignore[attr-defined]
    customers.to_csv(folder / "customers.csv", sep=";", index=False, encoding="utf-8-sig")
    contacts = folder / "service_contacts"
    contacts.mkdir()
    service = crm.service_contacts  # type: ignore[attr-defined]
    half = len(service) // 2
    service.iloc[:half].to_parquet(contacts / "part-0.parquet")
    service.iloc[half:].to_parquet(contacts / "part-1.parquet")
    crm.surveys.to_parquet(folder / "surveys.parquet")  # type: ignore[attr-defined]


def _files_config(text: str) -> str:
    """The demo's configuration reading the export files instead of the database."""
    text = text.replace(
        '[source]\nurl_env = "CVALUE_DEMO_DATABASE_URL"\n',
        '[source]\ndelimiter = ";"\nencoding = "cp1251"\ndecimal = ","\n',
    )
    text = text.replace(
        '[source.transactions]\ntable = "transactions"\n',
        '[source.transactions]\nfile = "export/transactions.csv"\n'
        'date_format = "%d.%m.%Y %H:%M:%S"\n',
    )
    text = text.replace(
        '[source.customers]\ntable = "customers"\n',
        '[source.customers]\nfile = "export/customers.csv"\n',
    )
    text = text.replace(
        '[source.surveys]\ntable = "surveys"\n',
        '[source.surveys]\nfile = "export/surveys.parquet"\n',
    )
    text = text.replace('table = "service_contacts"', 'file = "export/service_contacts"')
    return text.replace("[outputs]\n", '[outputs]\nurl_env = "CVALUE_DEMO_DATABASE_URL"\n')


def test_a_european_csv_export_runs_every_command_and_scores_as_the_database_does(
    crm: object, tmp_path: Path
) -> None:
    database = tmp_path / "scores.duckdb"
    url = f"duckdb:///{database}"
    as_table = crm.transactions.assign(  # type: ignore[attr-defined]
        category=crm.transactions["category"]
        .map(  # type: ignore[attr-defined]
            {"fashion": "одежда", "home": "дом"}
        )
        .fillna(crm.transactions["category"])  # type: ignore[attr-defined]
    )
    write_crm(url, crm, transactions=as_table)
    from_database = demo_config(tmp_path, crm)
    code, output = run_cli(["score"], from_database, url)
    assert code == 0, output
    expected = read_all(url, "customer_value")

    _export(crm, tmp_path / "export")
    files = tmp_path / "files.toml"
    files.write_text(_files_config(from_database.read_text()).replace("report.html", "f.html"))
    for command in (["validate"], ["fit"], ["report"], ["score"]):
        code, output = run_cli(command, files, url, "--json")
        assert code == 0, (command, output)
        if command == ["validate"]:
            assert json.loads(output)["rows_rejected"] == 0
    scored = read_all(url, "customer_value")
    assert len(scored) == len(expected)
    scored["customer_id"] = scored["customer_id"].astype(np.int64)
    columns = [c for c in expected.columns if c not in ("run_id", "scored_at")]
    pd.testing.assert_frame_equal(
        scored[columns].sort_values("customer_id").reset_index(drop=True),
        expected[columns].sort_values("customer_id").reset_index(drop=True),
        rtol=1e-9,
    )


def test_a_missing_export_file_and_a_wrong_column_name_are_bad_input(
    crm: object, tmp_path: Path
) -> None:
    _export(crm, tmp_path / "export")
    text = _files_config(demo_config(tmp_path, crm).read_text())
    url = f"duckdb:///{tmp_path / 'scores.duckdb'}"
    missing = tmp_path / "missing.toml"
    missing.write_text(text.replace("export/surveys.parquet", "export/nope.parquet"))
    code, output = run_cli(["validate"], missing, url, "--json")
    assert code == EXIT_BAD_INPUT, output
    assert "nope.parquet' does not exist" in json.loads(output)["message"]
    wrong = tmp_path / "wrong.toml"
    wrong.write_text(text.replace('category = "category"', 'category = "kategoria"'))
    code, output = run_cli(["validate"], wrong, url)
    assert code == EXIT_BAD_INPUT, output
    assert "maps category = 'kategoria'" in output


# --- items 6 and 7: empty extracts and dates out of range ------------------------------------


@pytest.mark.parametrize("command", ["validate", "score"])
def test_an_extract_whose_every_row_is_rejected_is_bad_input_naming_the_reasons(
    crm: object, tmp_path: Path, command: str
) -> None:
    url = f"sqlite:///{tmp_path / 'crm.sqlite'}"
    transactions = crm.transactions.assign(  # type: ignore[attr-defined]
        amount=lambda frame: -frame["amount"].abs() - 1.0, is_return=False
    )
    write_crm(url, crm, transactions=transactions)
    code, output = run_cli([command], demo_config(tmp_path, crm), url)
    assert code == EXIT_BAD_INPUT, output
    assert f"{len(transactions):,} of {len(transactions):,} rows rejected" in output
    assert "negative amount" in output


def test_far_future_and_far_past_rows_are_rejected_and_counted(crm: object, tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path / 'crm.duckdb'}"
    transactions = crm.transactions  # type: ignore[attr-defined]
    odd = transactions.iloc[:4].copy()
    odd["timestamp"] = pd.to_datetime(["2200-06-30", "2200-06-30", "1900-01-05", "1900-01-06"])
    odd["order_id"] = transactions["order_id"].max() + np.arange(1, 5)
    write_crm(url, crm, transactions=pd.concat([transactions, odd], ignore_index=True))
    text = demo_config(tmp_path, crm).read_text().replace("observation_end = 2024-12-31\n", "")
    config = tmp_path / "no_end.toml"
    config.write_text(text)
    code, output = run_cli(["validate"], config, url, "--json")
    assert code == 0, output
    payload = json.loads(output)
    reasons = {row["reason"]: row["rows"] for row in payload["reasons"]}
    assert reasons == {"after_max_date": 2, "before_min_date": 2}
    assert payload["observation_end"] == str(transactions["timestamp"].max().date())


def test_an_observation_end_in_the_future_is_refused(crm: object, tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path / 'crm.duckdb'}"
    write_crm(url, crm)
    config = tmp_path / "future.toml"
    text = demo_config(tmp_path, crm).read_text()
    config.write_text(text.replace("observation_end = 2024-12-31", "observation_end = 2200-06-30"))
    code, output = run_cli(["validate"], config, url)
    assert code == EXIT_BAD_INPUT, output
    assert "observation_end = 2200-06-30 is in the future" in output


# --- item 8: errors classified by cause -------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_wrong_column_or_bad_sql_under_query_is_bad_input(
    crm: object, tmp_path: Path, crm_url, backend: str
) -> None:
    url = crm_url(backend)
    write_crm(url, crm)
    text = demo_config(tmp_path, crm).read_text()
    queried = text.replace('table = "transactions"', 'query = "SELECT * FROM transactions"', 1)
    assert queried != text
    wrong_column = tmp_path / "wrong_column.toml"
    wrong_column.write_text(queried.replace('order_id = "order_id"', 'order_id = "order_no"'))
    code, output = run_cli(["validate"], wrong_column, url)
    assert code == EXIT_BAD_INPUT, output
    assert "[source.transactions] maps order_id = 'order_no', but the query has no such" in output
    for query in ("SELEC * FROM transactions", "SELECT * FROM no_such_table",
                  "SELECT no_such_column FROM transactions"):  # fmt: skip
        bad = tmp_path / "bad_query.toml"
        bad.write_text(queried.replace("SELECT * FROM transactions", query))
        code, output = run_cli(["validate"], bad, url, "--json")
        assert code == EXIT_BAD_INPUT, (query, output)
        assert json.loads(output)["error"] == "bad query"


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_query_runs_when_it_is_right(
    crm: object, tmp_path: Path, crm_url, backend: str
) -> None:
    url = crm_url(backend)
    write_crm(url, crm)
    text = demo_config(tmp_path, crm).read_text()
    config = tmp_path / "query.toml"
    query = 'query = "SELECT * FROM transactions WHERE amount > 0"'
    config.write_text(text.replace('table = "transactions"', query, 1))
    code, output = run_cli(["validate"], config, url, "--json")
    assert code == 0, output
    kept = json.loads(output)["transactions_kept"]
    assert kept == int((crm.transactions["amount"] > 0).sum())  # type: ignore[attr-defined]


def test_a_refused_connection_is_a_database_error(crm: object, tmp_path: Path) -> None:
    url = f"postgresql+psycopg://cvalue@127.0.0.1:{_free_port()}/crm?connect_timeout=5"
    code, output = run_cli(["validate"], demo_config(tmp_path, crm), url, "--json")
    assert code == EXIT_DATABASE, output
    assert json.loads(output)["error"] == "database error"
