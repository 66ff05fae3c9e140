"""``cvalue init --from``: a starter configuration from a file or a database, every guess commented.

The files written must load with the configuration loader and pass ``cvalue validate`` on the
CRM fixtures (tests/data/crm/), on a plain European CSV export and on a database table.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from typer.testing import CliRunner

from cvalue.cli import EXIT_BAD_INPUT, app
from cvalue.config import load_config
from cvalue.config.starter import inspect_source, starter_config

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

DATA = Path(__file__).resolve().parent / "data" / "crm"
SCORES = "CVALUE_SCORES_URL"
runner = CliRunner()

PRESET_OF = {
    "salesforce_opportunities_api.csv": ("salesforce", "api", 12),
    "salesforce_opportunities_report.csv": ("salesforce", "ui_en", 11),
    "hubspot_deals.csv": ("hubspot", "ui_en", 11),
    "dynamics365_salesorders_api.csv": ("dynamics365", "api", 12),
    "bitrix24_deals_en.csv": ("bitrix24", "ui_en", 11),
    "bitrix24_deals_ru.csv": ("bitrix24", "ui_ru", 11),
    "amocrm_leads_api.csv": ("amocrm", "api", 11),
    "amocrm_leads_ru.csv": ("amocrm", "ui_ru", 11),
}


def _init(*arguments: str) -> tuple[int, str]:
    result = runner.invoke(app, ["init", *arguments])
    return result.exit_code, result.output


def _validate(config: Path, env: dict[str, str]) -> tuple[int, dict[str, object]]:
    result = runner.invoke(app, ["validate", "--config", str(config), "--json"], env=env)
    return result.exit_code, json.loads(result.output)


def _guessed_keys_are_commented(text: str, sections: tuple[str, ...]) -> list[str]:
    """The keys of ``sections`` whose line is not preceded by a comment naming them."""
    uncommented, section = [], ""
    comment_of: str | None = None
    for line in text.splitlines():
        if line.startswith("["):
            section, comment_of = line.strip("[]"), None
        elif line.startswith("# ") and ":" in line and not line.startswith("#   "):
            comment_of = line[2:].split(":", 1)[0]
        elif "=" in line and section in sections:
            key = line.split("=", 1)[0].strip()
            if comment_of != key:
                uncommented.append(f"[{section}] {key}")
            comment_of = None
    return uncommented


@pytest.mark.parametrize("name", sorted(PRESET_OF))
def test_init_detects_the_preset_and_writes_a_file_validate_accepts(
    name: str, tmp_path: Path
) -> None:
    preset, variant, rejected = PRESET_OF[name]
    config = tmp_path / "cvalue.toml"
    code, output = _init("--from", str(DATA / name), "--output", str(config), "--json")
    assert code == 0, output
    payload = json.loads(output)
    assert (payload["preset"], payload["variant"]) == (preset, variant)
    text = config.read_text(encoding="utf-8")
    assert f'preset = "{preset}"' in text
    assert f'variant = "{variant}"' in text
    assert not _guessed_keys_are_commented(text, ("source", "source.transactions"))
    tomllib.loads(text)
    url = f"duckdb:///{tmp_path / 'scores.duckdb'}"
    loaded = load_config(config, environ={SCORES: url})
    assert loaded.source.transactions.variant == variant
    code, validated = _validate(config, {SCORES: url})
    assert code == 0, validated
    assert validated["rows_rejected"] == rejected
    assert validated["transactions_kept"] == 51 - rejected


def test_every_guess_says_what_it_was_guessed_from(tmp_path: Path) -> None:
    config = tmp_path / "cvalue.toml"
    _init("--from", str(DATA / "bitrix24_deals_ru.csv"), "--output", str(config))
    text = config.read_text(encoding="utf-8")
    assert "# encoding: the file's start is not UTF-8; cp1251 decodes it" in text
    assert 'encoding = "cp1251"' in text
    assert 'delimiter = ";"' in text
    assert "# preset: the header has the columns of Bitrix24 Deals" in text
    assert "reads dates day first, decimal mark ','" in text
    assert "PLACEHOLDER: your gross margin" in text
    assert 'file = "' in text


def test_init_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    config = tmp_path / "cvalue.toml"
    config.write_text("# mine\n")
    code, output = _init("--from", str(DATA / "hubspot_deals.csv"), "--output", str(config))
    assert code == EXIT_BAD_INPUT
    assert "exists; pass --force" in re.sub(r"\s+", " ", output)
    assert config.read_text() == "# mine\n"
    code, output = _init("--from", str(DATA / "hubspot_deals.csv"), "--output", str(config),
                         "--force")  # fmt: skip
    assert code == 0, output
    assert 'preset = "hubspot"' in config.read_text(encoding="utf-8")


def test_init_writes_cvalue_toml_in_the_working_folder_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "deals.csv").write_bytes((DATA / "amocrm_leads_api.csv").read_bytes())
    code, output = _init("--from", "deals.csv")
    assert code == 0, output
    text = (tmp_path / "cvalue.toml").read_text(encoding="utf-8")
    assert 'file = "deals.csv"' in text  # relative to the file's folder


def _european_export(path: Path) -> None:
    """A plain export without a preset: ';', cp1251, day-first dates, decimal commas."""
    frame = pd.DataFrame({
        "Client_ID": ["007", "007", "012", "012", "031", "031", "031", "044"],
        "paid_at": ["03.01.2024", "15.02.2024", "20.01.2024", "28.03.2024", "05.02.2024",
                    "11.04.2024", "30.05.2024", "13.06.2024"],
        "Net amount": ["1 234,50", "99,90", "15,00", "230,10", "3 400,00", "12,50", "80,00",
                       "45,45"],
        "Категория": ["одежда", "дом", "дом", "одежда", "дом", "дом", "одежда", "дом"],
    })  # fmt: skip
    frame.to_csv(path, sep=";", index=False, encoding="cp1251")


def test_init_guesses_roles_formats_and_encoding_of_a_plain_export(tmp_path: Path) -> None:
    _european_export(tmp_path / "sales.csv")
    inspection = inspect_source(str(tmp_path / "sales.csv"), config_folder=tmp_path)
    assert inspection.preset is None
    guessed = {g.key: g.value for g in (*inspection.source, *inspection.transactions)}
    assert guessed == {
        "delimiter": ";", "encoding": "cp1251", "decimal": ",", "thousands": " ",
        "file": "sales.csv", "customer_id": "Client_ID", "timestamp": "paid_at",
        "amount": "Net amount", "date_format": "%d.%m.%Y",
    }  # fmt: skip
    config = tmp_path / "cvalue.toml"
    config.write_text(starter_config(inspection), encoding="utf-8")
    url = f"duckdb:///{tmp_path / 'scores.duckdb'}"
    code, validated = _validate(config, {SCORES: url})
    assert code == 0, validated
    assert (validated["transactions_kept"], validated["rows_rejected"]) == (8, 0)


def test_a_column_that_cannot_be_guessed_is_said_not_found(tmp_path: Path) -> None:
    (tmp_path / "odd.csv").write_text("who,when,how_much_paid\na,2024-01-02,3\n")
    text = starter_config(inspect_source(str(tmp_path / "odd.csv"), config_folder=tmp_path))
    assert "# customer_id: NOT FOUND: no column has a usual name of customer_id" in text
    assert "# note: set amount: no column of the file has a usual name for it" in text


def test_init_from_parquet_guesses_the_roles(tmp_path: Path) -> None:
    frame = pd.DataFrame({"customer_id": ["a", "b"], "order_date": pd.to_datetime(
        ["2024-01-02", "2024-02-03"]), "revenue": [10.0, 20.0]})  # fmt: skip
    frame.to_parquet(tmp_path / "sales.parquet")
    config = tmp_path / "cvalue.toml"
    code, output = _init("--from", str(tmp_path / "sales.parquet"), "-o", str(config))
    assert code == 0, output
    text = config.read_text(encoding="utf-8")
    assert 'timestamp = "order_date"' in text
    assert 'amount = "revenue"' in text
    assert "date_format" not in text  # typed dates need no format
    load_config(config, environ={SCORES: "duckdb://"})


def test_init_from_a_database_picks_the_best_table_and_never_writes_the_url(
    tmp_path: Path,
) -> None:
    database = tmp_path / "crm.duckdb"
    deals = pd.read_csv(DATA / "salesforce_opportunities_api.csv", dtype=str)
    with duckdb.connect(str(database)) as connection:
        connection.from_df(pd.DataFrame({"AccountId": ["a"], "Name": ["x"]})).create("accounts")
        connection.from_df(deals).create("opportunities")
    url = f"duckdb:///{database}"
    config = tmp_path / "cvalue.toml"
    code, output = _init("--from", url, "--output", str(config), "--json")
    assert code == 0, output
    assert json.loads(output)["preset"] == "salesforce"
    text = config.read_text(encoding="utf-8")
    assert str(database) not in text
    assert 'url_env = "CVALUE_DATABASE_URL"' in text
    assert 'table = "opportunities"' in text
    assert "of the 2 table(s) ['accounts', 'opportunities']" in text
    code, validated = _validate(config, {"CVALUE_DATABASE_URL": url})
    assert code == 0, validated
    assert validated["rows_rejected"] == 12


def test_init_from_a_missing_file_is_bad_input(tmp_path: Path) -> None:
    code, output = _init("--from", str(tmp_path / "nope.csv"), "-o", str(tmp_path / "c.toml"))
    assert code == EXIT_BAD_INPUT
    # rich wraps a long path where it likes, inside the path too
    assert "nope.csv'" in re.sub(r"\s*\n\s*", "", output)
    assert "does not exist" in re.sub(r"\s+", " ", output)
    assert not (tmp_path / "c.toml").exists()
