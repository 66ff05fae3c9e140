"""CRM export presets: every preset on its fixture export, from the file to the scores.

The fixtures in tests/data/crm/ are small exports written for these tests, one per system and
header variant: Salesforce (API and report), HubSpot (deals export), Dynamics 365 (Web API),
Bitrix24 (English, and Russian in cp1251 with dd.mm.yyyy dates and decimal commas) and amoCRM
(API with unix timestamps, and Russian in UTF-8 with a byte order mark). Each holds 51 deals:
40 won by 12 customers and 11 open or lost; the Salesforce API and Dynamics exports have one won
deal in a second currency. What the tests expect is computed here from the files with the csv
module and each fixture's known facts, not with the code under test.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

import cvalue as cv
from cvalue.cli import EXIT_BAD_INPUT, app
from cvalue.config import load_config
from cvalue.errors import ConfigError, CValueWarning, DataQualityError, SchemaError
from cvalue.io import CRM_RULES, PRESETS, Columns, detect_preset, get_preset
from cvalue.io.presets import HeaderVariant, Preset

DATA = Path(__file__).resolve().parent / "data" / "crm"
DOCS = Path(__file__).resolve().parents[1] / "docs"
SCORES = "CVALUE_SCORES_URL"
runner = CliRunner()


@dataclass(frozen=True)
class Fixture:
    """A fixture export and the facts about it that the expectations are computed from."""

    file: str
    preset: str
    variant: str
    encoding: str
    sep: str
    customer: str
    status: str
    won: tuple[str, ...]
    amount: str
    currency: str | None = None
    main_currency: str | None = None

    def rows(self) -> list[dict[str, str]]:
        with (DATA / self.file).open(encoding=self.encoding, newline="") as file:
            return list(csv.DictReader(file, delimiter=self.sep))

    def is_won(self, row: dict[str, str]) -> bool:
        return row[self.status] in self.won

    def is_other_currency(self, row: dict[str, str]) -> bool:
        return self.currency is not None and row[self.currency] != self.main_currency


FIXTURES = [
    Fixture("salesforce_opportunities_api.csv", "salesforce", "api", "utf-8", ",", "AccountId",
            "StageName", ("Closed Won",), "Amount", "CurrencyIsoCode", "USD"),
    Fixture("salesforce_opportunities_report.csv", "salesforce", "ui_en", "utf-8", ",",
            "Account ID", "Won", ("1",), "Amount"),
    Fixture("hubspot_deals.csv", "hubspot", "ui_en", "utf-8", ",",
            "Associated Company IDs (Primary)", "Deal Stage", ("Closed Won",), "Amount"),
    # sales orders count when fulfilled (statecode 3) or invoiced (4)
    Fixture("dynamics365_salesorders_api.csv", "dynamics365", "api", "utf-8", ",",
            "_customerid_value", "statecode", ("3", "4"), "totalamount",
            "_transactioncurrencyid_value", "00000000-0000-0000-0000-00000000c001"),
    Fixture("bitrix24_deals_en.csv", "bitrix24", "ui_en", "utf-8", ",", "Company", "Deal stage",
            ("Deal won",), "Amount"),
    Fixture("bitrix24_deals_ru.csv", "bitrix24", "ui_ru", "cp1251", ";", "Компания",
            "Стадия сделки", ("Сделка успешна",), "Сумма"),
    Fixture("amocrm_leads_api.csv", "amocrm", "api", "utf-8", ",", "company_id", "status_id",
            ("142",), "price"),
    Fixture("amocrm_leads_ru.csv", "amocrm", "ui_ru", "utf-8-sig", ";", "Компания",
            "Этап сделки", ("Успешно реализовано",), "Бюджет"),
]  # fmt: skip
IDS = [fixture.file.removesuffix(".csv") for fixture in FIXTURES]


def _expected(fixture: Fixture) -> tuple[set[str], dict[str, int], list[dict[str, str]]]:
    """The customers scored, the rejected rows by reason, and the kept rows."""
    rows = fixture.rows()
    kept = [r for r in rows if fixture.is_won(r) and not fixture.is_other_currency(r)]
    counts = {"not_won": sum(not fixture.is_won(r) for r in rows)}
    other = sum(fixture.is_won(r) and fixture.is_other_currency(r) for r in rows)
    if other:
        counts["other_currency"] = other
    return {r[fixture.customer] for r in kept}, counts, kept


def _plain_amount(text: str) -> float:
    """An amount as the fixtures write it: '1,234.50', '1 234,50' or '1234'."""
    if re.fullmatch(r"[\d ]+(,\d+)?", text):
        return float(text.replace(" ", "").replace(",", "."))
    return float(text.replace(",", ""))


def _config(tmp_path: Path, file: Path, preset: str, extra: str = "", source: str = "") -> Path:
    path = tmp_path / "cvalue.toml"
    path.write_text(
        f"[source]\n{source}\n"
        f'[source.transactions]\nfile = "{file.as_posix()}"\npreset = "{preset}"\n{extra}\n'
        "[summary]\nobservation_end = 2024-12-31\n\n"
        '[models]\npurchase = "beta_geo"\n\n'
        '[value]\nmargin = 0.3\ncosts = "none"\n\n'
        f'[outputs]\nurl_env = "{SCORES}"\nreport = false\n',
        encoding="utf-8",
    )
    return path


def _cli(command: list[str], config: Path, url: str) -> tuple[int, dict[str, Any]]:
    result = runner.invoke(app, [*command, "--config", str(config), "--json"], env={SCORES: url})
    return result.exit_code, json.loads(result.output)


# --- every preset on its fixture, end to end ------------------------------------------------


@pytest.mark.parametrize("fixture", FIXTURES, ids=IDS)
def test_cvalue_score_reads_each_fixture_export_with_its_preset(
    fixture: Fixture, tmp_path: Path
) -> None:
    customers, counts, kept = _expected(fixture)
    url = f"duckdb:///{tmp_path / 'scores.duckdb'}"
    config = _config(tmp_path, DATA / fixture.file, fixture.preset)
    code, validated = _cli(["validate"], config, url)
    assert code == 0, validated
    assert {r["reason"]: r["rows"] for r in validated["reasons"]} == counts
    assert validated["transactions_kept"] == len(kept)
    code, scored = _cli(["score"], config, url)
    assert code == 0, scored
    assert scored["rows_rejected"] == sum(counts.values())
    assert scored["transactions_read"] == len(fixture.rows())
    with duckdb.connect(str(tmp_path / "scores.duckdb"), read_only=True) as connection:
        written = connection.sql("SELECT customer_id FROM customer_value").fetchall()
    assert {str(row[0]) for row in written} == customers
    assert len(customers) == 12


@pytest.mark.parametrize("fixture", FIXTURES, ids=IDS)
def test_each_fixture_reads_in_python_with_its_variant_dates_and_amounts(
    fixture: Fixture,
) -> None:
    customers, counts, kept = _expected(fixture)
    raw = cv.read_transactions(DATA / fixture.file, columns=fixture.preset)
    checked = cv.validate_transactions(raw)
    assert (
        dict(zip(checked.report.reasons["reason"], checked.report.reasons["rows"], strict=True))
        == counts
    )
    assert set(checked.clean["customer_id"].astype(str)) == customers
    expected_total = sum(_plain_amount(r[fixture.amount]) for r in kept)
    assert checked.clean["amount"].sum() == pytest.approx(expected_total, abs=0.005)
    days = checked.clean["timestamp"].dt.tz_localize(None).dt.normalize()
    assert days.min() >= pd.Timestamp("2023-01-01")
    assert days.max() <= pd.Timestamp("2024-11-30")
    assert set(checked.rejected["rejection_reason"]) == set(counts)


def test_the_dates_of_each_variant_are_read_as_the_export_wrote_them() -> None:
    """The same deal (the first row of each fixture) closed on 9 March 2023 everywhere."""
    for fixture in FIXTURES:
        raw = cv.read_transactions(DATA / fixture.file, columns=fixture.preset)
        first = cv.validate_transactions(raw).clean["timestamp"].iloc[0]
        assert (first.year, first.month, first.day) == (2023, 3, 9), fixture.file


# --- header variants ------------------------------------------------------------------------


def _first_header(variant: HeaderVariant) -> list[str]:
    """A header with the first candidate of every role of ``variant`` and its first status."""
    roles = ("customer_id", "order_id", "timestamp", "amount", "currency")
    names = [variant.candidates(role)[0] for role in roles if variant.candidates(role)]
    return [*names, variant.status[0].column]


@pytest.mark.parametrize(
    ("preset", "variant"),
    [(p, v) for p in PRESETS.values() for v in p.variants],
    ids=[f"{p.name}-{v.name}" for p in PRESETS.values() for v in p.variants],
)
def test_each_variant_is_found_from_its_header_and_detected_among_all(
    preset: Preset, variant: HeaderVariant
) -> None:
    header = _first_header(variant)
    match = preset.resolve(header)
    assert match.variant.name == variant.name
    assert match.columns.customer_id == variant.customer_id[0]
    assert match.columns.status == variant.status[0].column
    assert match.columns.won == variant.status[0].won
    detected = detect_preset(["Notes", *reversed(header)])
    assert detected is not None
    assert (detected.preset.name, detected.variant.name) == (preset.name, variant.name)


def test_header_names_are_matched_without_case_spaces_or_byte_order_mark() -> None:
    match = get_preset("bitrix24").resolve(["\ufeffid", " company_id ", "opportunity",
                                            "closedate", "Stage_ID"])  # fmt: skip
    assert match.variant.name == "api"
    assert match.columns.customer_id == " company_id "  # the header's own spelling is read
    assert match.columns.status == "Stage_ID"


VARIANTS = [(p, v) for p in PRESETS.values() for v in p.variants]


@given(
    st.sampled_from(VARIANTS),
    st.data(),
)
def test_any_shuffled_subset_of_a_variants_header_is_resolved_or_refused_clearly(
    chosen: tuple[Preset, HeaderVariant], data: st.DataObject
) -> None:
    preset, variant = chosen
    full = _first_header(variant)
    subset = data.draw(st.lists(st.sampled_from(full), unique=True))
    extra = data.draw(st.lists(st.sampled_from(["Notes", "Owner", "Created"]), unique=True))
    header = data.draw(st.permutations(subset + extra))
    required = [variant.customer_id[0], variant.timestamp[0], variant.amount[0]]
    only = preset.only(variant.name)
    if all(name in subset for name in required):
        match = only.resolve(header)
        assert match.columns.customer_id == variant.customer_id[0]
        has_status = variant.status[0].column in subset
        assert (match.columns.status is not None) == has_status
        assert (match.columns.won == variant.status[0].won) == has_status
    else:
        with pytest.raises(SchemaError, match=rf"needs .*{re.escape(variant.name)}|needs"):
            only.resolve(header)


def test_a_header_of_no_variant_is_refused_naming_what_each_variant_lacks(tmp_path: Path) -> None:
    path = tmp_path / "deals.csv"
    path.write_text("ID,Deal Name,Stage\n1,A,WON\n", encoding="utf-8")
    with pytest.raises(SchemaError) as error:
        cv.read_transactions(path, columns="bitrix24")
    message = str(error.value)
    assert "Bitrix24 Deals" in message
    assert "'ID', 'Deal Name', 'Stage'" in message
    for variant in ("api", "ui_ru", "ui_en"):
        assert f"its {variant} variant" in message
    assert "customer_id (one of ['COMPANY_ID'])" in message


# --- encodings and separators ---------------------------------------------------------------


def test_cp1251_and_a_byte_order_mark_are_found_without_being_named(tmp_path: Path) -> None:
    ru = cv.validate_transactions(cv.read_transactions(DATA / "bitrix24_deals_ru.csv",
                                                       columns="bitrix24"))  # fmt: skip
    assert "ООО Фабрика" in set(ru.clean["customer_id"])  # noqa: RUF001
    # the same export saved as UTF-8 with a byte order mark, and as plain UTF-8 with commas
    text = (DATA / "bitrix24_deals_ru.csv").read_text(encoding="cp1251")
    (tmp_path / "bom.csv").write_text(text, encoding="utf-8-sig")
    rows = list(csv.reader(text.splitlines(), delimiter=";"))
    with (tmp_path / "commas.csv").open("w", encoding="utf-8", newline="") as file:
        csv.writer(file).writerows(rows)
    for name in ("bom.csv", "commas.csv"):
        again = cv.validate_transactions(cv.read_transactions(tmp_path / name,
                                                              columns="bitrix24"))  # fmt: skip
        pd.testing.assert_frame_equal(again.clean, ru.clean)
    amo = cv.read_transactions(DATA / "amocrm_leads_ru.csv", columns="amocrm")
    assert "АО Контур" in set(amo["customer_id"])  # noqa: RUF001


def test_a_file_in_no_known_encoding_is_refused_naming_the_encodings(tmp_path: Path) -> None:
    path = tmp_path / "deals.csv"
    path.write_bytes(b"ID;COMPANY_ID\n1;\x98\n")  # 0x98 is neither UTF-8 nor Windows-1251
    with pytest.raises(SchemaError, match=r"none of the encodings \['utf-8', 'cp1251'\]"):
        cv.read_transactions(path, columns="bitrix24")


# --- the status filter, missing ids, currencies ---------------------------------------------


def test_rows_not_won_are_rejected_with_their_reason_and_counted() -> None:
    raw = cv.read_transactions(DATA / "hubspot_deals.csv", columns="hubspot")
    checked = cv.validate_transactions(raw)
    rejected = checked.rejected
    assert set(rejected["rejection_reason"]) == {"not_won"}
    assert set(rejected["status"]) == {"Closed Lost", "Contract Sent"}
    assert len(rejected) + len(checked.clean) == len(raw) == 51
    assert checked.report.n_rejected == 11
    with pytest.raises(DataQualityError) as error:
        cv.validate_transactions(raw, strict=True)
    message = str(error.value)
    assert "column 'status': deal or order that is not won" in message
    assert "in 11 rows" in message
    assert "add it to won" in message


def test_bitrix24_ids_of_no_company_and_other_pipelines_won_stages() -> None:
    deals = pd.DataFrame({
        "ID": ["1", "2", "3", "4", "5"],
        "COMPANY_ID": ["10", "0", "11", "12", "13"],
        "OPPORTUNITY": ["100.5", "20", "30", "40", "50"],
        "CURRENCY_ID": ["RUB", "RUB", "RUB", "RUB", "USD"],
        "STAGE_ID": ["WON", "WON", "C3:WON", "C3:LOSE", "WON"],
        "CLOSEDATE": ["2024-03-01T00:00:00+03:00"] * 5,
    })  # fmt: skip
    checked = cv.validate_transactions(cv.read_transactions(deals, columns="bitrix24"))
    assert checked.clean["customer_id"].tolist() == ["10", "11"]
    reasons = dict(
        zip(checked.rejected["order_id"], checked.rejected["rejection_reason"], strict=True)
    )
    assert reasons == {"2": "missing_customer_id", "4": "not_won", "5": "other_currency"}
    semantic = deals.assign(STAGE_SEMANTIC_ID=["S", "S", "S", "F", "S"])
    raw = cv.read_transactions(semantic, columns="bitrix24")
    assert raw.attrs["cvalue_crm"]["won"] == ["S"]  # the semantic column is preferred


def test_a_preset_without_a_status_column_warns_that_every_row_counts(tmp_path: Path) -> None:
    path = tmp_path / "won.csv"
    path.write_text("Id,AccountId,CloseDate,Amount\n1,A,2024-01-05,10\n", encoding="utf-8")
    with pytest.warns(CValueWarning, match="no status column"):
        raw = cv.read_transactions(path, columns="salesforce")
    assert len(cv.validate_transactions(raw).clean) == 1


def test_every_crm_rule_is_documented_with_the_codes_wording() -> None:
    text = " ".join((DOCS / "crm-exports.md").read_text(encoding="utf-8").split())
    for rule in CRM_RULES:
        assert f"| `{rule.reason}` | `{rule.role}` | {rule.problem} | {rule.fix} |" in text


# --- explicit settings win ------------------------------------------------------------------


def test_explicit_columns_and_formats_override_the_preset() -> None:
    contacts = get_preset("salesforce").overriding(customer_id="ContactId")
    checked = cv.validate_transactions(
        cv.read_transactions(DATA / "salesforce_opportunities_api.csv", columns=contacts)
    )
    assert all(str(c).startswith("0035g") for c in checked.clean["customer_id"])
    wider = get_preset("salesforce").overriding(
        status="StageName", won=["Closed Won", "Negotiation/Review"]
    )
    raw = cv.read_transactions(DATA / "salesforce_opportunities_api.csv", columns=wider)
    reasons = cv.validate_transactions(raw).report.reasons
    open_deals = sum(r["StageName"] == "Negotiation/Review" for r in FIXTURES[0].rows())
    assert dict(zip(reasons["reason"], reasons["rows"], strict=True))["not_won"] == 11 - open_deals
    month_first = cv.read_transactions(DATA / "bitrix24_deals_ru.csv", columns="bitrix24",
                                       date_format="%m.%d.%Y")  # fmt: skip
    assert month_first.attrs["cvalue_formats"]["date_format"] == "%m.%d.%Y"
    assert month_first.attrs["cvalue_formats"]["dayfirst"] is None
    with pytest.raises(SchemaError, match="unknown setting"):
        get_preset("amocrm").overriding(customer="x")


def test_keys_of_the_configuration_override_the_preset(tmp_path: Path) -> None:
    config = _config(tmp_path, DATA / "amocrm_leads_api.csv", "amocrm",
                     'customer_id = "main_contact_id"\nwon = ["142", "143"]')  # fmt: skip
    transactions = load_config(config, environ={SCORES: "duckdb://"}).source.transactions
    assert transactions.customer_id == "main_contact_id"
    assert transactions.won == ["142", "143"]
    assert (transactions.status, transactions.date_format, transactions.variant) == (
        "status_id",
        "unix_s",
        "api",
    )
    code, validated = _cli(["validate"], config, f"duckdb:///{tmp_path / 's.duckdb'}")
    still_open = sum(r["status_id"] not in ("142", "143") for r in FIXTURES[6].rows())
    assert code == 0
    assert validated["rows_rejected"] == still_open == 4  # the open leads only


def test_a_table_read_with_a_preset_uses_its_api_names(tmp_path: Path) -> None:
    database = tmp_path / "crm.duckdb"
    frame = pd.read_csv(DATA / "salesforce_opportunities_api.csv", dtype=str)
    with duckdb.connect(str(database)) as connection:
        connection.from_df(frame).create("opportunities")
    url = f"duckdb:///{database}"
    tx = cv.read_transactions(url, table="opportunities", columns="salesforce")
    assert cv.validate_transactions(tx).report.n_rejected == 12
    config = tmp_path / "table.toml"
    text = _config(tmp_path, DATA / "x.csv", "salesforce").read_text()
    text = text.replace("[source]\n", '[source]\nurl_env = "CRM_URL"\n')
    config.write_text(text.replace(f'file = "{(DATA / "x.csv").as_posix()}"',
                                   'table = "opportunities"'))  # fmt: skip
    loaded = load_config(config, environ={"CRM_URL": url, SCORES: url})
    assert loaded.source.transactions.customer_id == "AccountId"
    assert loaded.source.transactions.variant == "api"


# --- errors ---------------------------------------------------------------------------------


def test_an_unknown_preset_is_refused_listing_the_known_ones(tmp_path: Path) -> None:
    known = "['amocrm', 'bitrix24', 'bitrix24:invoices', 'dynamics365', 'dynamics365:invoices', "
    with pytest.raises(SchemaError, match=re.escape(known)):
        cv.read_transactions(DATA / "hubspot_deals.csv", columns="pipedrive")
    assert get_preset("Salesforce:Opportunities") is get_preset("salesforce")
    config = _config(tmp_path, DATA / "hubspot_deals.csv", "pipedrive")
    with pytest.raises(ConfigError, match=r"unknown CRM preset 'pipedrive'; known: \['amocrm'"):
        load_config(config, environ={SCORES: "duckdb://"})
    code, failed = _cli(["validate"], config, "duckdb://")
    assert code == EXIT_BAD_INPUT
    assert "pipedrive" in str(failed["message"])


def test_a_missing_or_foreign_export_is_a_configuration_error_naming_the_key(
    tmp_path: Path,
) -> None:
    missing = _config(tmp_path, tmp_path / "nope.csv", "hubspot")
    with pytest.raises(ConfigError, match=r"\[source.transactions\] preset = 'hubspot': file"):
        load_config(missing, environ={SCORES: "duckdb://"})
    foreign = _config(tmp_path, DATA / "amocrm_leads_api.csv", "hubspot")
    with pytest.raises(ConfigError, match="its ui_en variant"):
        load_config(foreign, environ={SCORES: "duckdb://"})


def test_bad_amounts_in_a_preset_export_are_counted_and_explained(tmp_path: Path) -> None:
    text = (DATA / "bitrix24_deals_ru.csv").read_text(encoding="cp1251")
    broken = text.replace(";6 236,95;", ";6236.95;")  # the first deal, written the English way
    path = tmp_path / "deals.csv"
    path.write_text(broken, encoding="cp1251")
    checked = cv.validate_transactions(cv.read_transactions(path, columns="bitrix24"))
    reasons = checked.report.reasons.set_index("reason")
    assert reasons.loc["non_numeric_amount", "rows"] == 1
    assert "decimal=','" in str(reasons.loc["non_numeric_amount", "fix"])


def test_a_chunked_or_dask_run_refuses_a_preset(tmp_path: Path) -> None:
    config = _config(tmp_path, DATA / "hubspot_deals.csv", "hubspot")
    text = config.read_text() + "\n[run]\nchunk_customers = 1000\n"
    config.write_text(text)
    with pytest.raises(ConfigError, match="chunk_customers does not support"):
        load_config(config, environ={SCORES: "duckdb://"})


@pytest.mark.parametrize("filters", [{"status": "stage", "won": ("won",)}, {"currency": "cur"},
                                   {"missing_ids": ("0",)}])  # fmt: skip
def test_the_sql_path_refuses_a_crm_row_filter_it_would_not_apply(
    engine: sa.Engine, load_table: Callable[[sa.Engine, pd.DataFrame], str],
    filters: dict[str, object],
) -> None:  # fmt: skip
    """The SQL twins sum in the database: without the pandas validation's CRM rules they would
    count lost deals and other currencies as purchases, so Columns with those filters is refused
    there (before, sql_rfm_summary summed every row)."""
    rows = pd.DataFrame({"customer_id": [1, 1, 2], "timestamp": pd.to_datetime(
        ["2024-01-02", "2024-02-03", "2024-01-05"]), "amount": [10.0, 20.0, 5.0],
        "stage": ["won", "lost", "won"], "cur": ["EUR", "EUR", "USD"]})  # fmt: skip
    name = load_table(engine, rows)
    columns = Columns(customer_id="customer_id", timestamp="timestamp", amount="amount",
                      **filters)  # type: ignore[arg-type]  # fmt: skip
    with pytest.raises(SchemaError, match="SQL path does not do"):
        cv.sql_rfm_summary(engine, table=name, columns=columns,
                           observation_end="2024-03-01")  # fmt: skip
