"""The scoring job's configuration: a valid file loads; every bad one names the key and the line."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import tempfile
from pathlib import Path

import pytest
import tomllib
from hypothesis import assume, given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from cvalue.config import (
    EXAMPLE_CONFIG,
    JobConfig,
    TransactionsSource,
    config_reference,
    load_config,
)
from cvalue.errors import ConfigError
from cvalue.io.schema import Columns
from cvalue.units import Duration, TimeUnit

URL = "duckdb:///crm.duckdb"
ENVIRON = {"CVALUE_DATABASE_URL": URL}
MINIMAL = """\
[source]
url_env = "CRM_URL"

[source.transactions]
table = "transactions"

[value]
margin = 0.25
costs = "none"
"""


def write(folder: Path, text: str, name: str = "cvalue.toml") -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def line_of(text: str, fragment: str) -> int:
    """The number (from 1) of the only line of ``text`` that contains ``fragment``."""
    numbers = [n for n, line in enumerate(text.splitlines(), start=1) if fragment in line]
    assert len(numbers) == 1, (fragment, numbers)
    return numbers[0]


def config_error(folder: Path, text: str, environ=None) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(write(folder, text), environ=ENVIRON if environ is None else environ)
    return str(caught.value)


def edited(old: str, new: str, text: str = EXAMPLE_CONFIG) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


# --- valid files ----------------------------------------------------------------------------------


def test_example_loads_with_its_values(tmp_path):
    config = load_config(write(tmp_path, EXAMPLE_CONFIG), environ=ENVIRON)
    assert config.source_url(ENVIRON) == URL
    assert config.scores_url(ENVIRON) == URL
    assert config.source.transactions.columns() == Columns(
        customer_id="client_id", timestamp="paid_at", amount="net_amount", order_id="order_id",
        is_return="is_return", category="category",
    )  # fmt: skip
    assert config.source.customers is not None
    assert config.source.customers.acquisition_cost == "acquisition_cost"
    assert config.summary.observation_end == dt.date(2024, 12, 31)
    assert config.summary.time_unit() is TimeUnit.WEEK
    assert config.models.holdout == Duration(26, TimeUnit.WEEK)
    assert config.value.margin == 0.30
    assert config.value.horizons == [Duration(3, TimeUnit.YEAR), Duration(5, TimeUnit.YEAR)]
    assert config.value.cost_to_serve is not None
    assert config.value.cost_to_serve.table == "service_contacts"
    assert config.value.discount.by_segment == {"retail": 0.12, "corporate": 0.08}
    assert config.segments.by == ["segment", "channel"]
    assert config.outputs.report == tmp_path / "cvalue-report.html"


def test_example_round_trips_through_its_dump(tmp_path):
    config = load_config(write(tmp_path, EXAMPLE_CONFIG), environ=ENVIRON)
    assert JobConfig.model_validate(config.model_dump(by_alias=True)) == config
    # and every key of the file is in the dump with the value it was given
    raw = tomllib.loads(EXAMPLE_CONFIG)
    dump = config.model_dump(by_alias=True)
    for section, keys in raw.items():
        for key, value in keys.items():
            if key == "report":
                assert dump[section][key] == tmp_path / value  # resolved against the folder
            elif isinstance(value, dict) and key != "by_segment":
                for inner, inner_value in value.items():
                    assert dump[section][key][inner] == inner_value, (section, key, inner)
            else:
                assert dump[section][key] == value, (section, key)


def test_a_minimal_file_takes_the_defaults(tmp_path):
    config = load_config(write(tmp_path, MINIMAL), environ={"CRM_URL": URL})
    assert config.models.purchase == "auto"
    assert config.models.candidates == ["beta_geo", "pareto_nbd", "modified_beta_geo"]
    assert config.summary.unit == "week"
    assert config.summary.observation_end is None
    assert config.value.discount.kind == "scalar"
    assert config.value.discount.rate == 0.10
    assert config.value.costs == "none"
    assert config.value.horizons == [Duration(3, TimeUnit.YEAR), Duration(5, TimeUnit.YEAR)]
    assert config.outputs.write_mode == "replace"
    assert config.outputs.scores_table == "customer_value"
    assert config.source.transactions.columns() == Columns()


def test_the_transactions_keys_are_the_roles_of_columns():
    roles = {field.name: field.default for field in dataclasses.fields(Columns)}
    keys = {
        name: field.default
        for name, field in TransactionsSource.model_fields.items()
        if name in roles  # the other keys say where and how to read, not which column is what
    }
    assert keys == roles


def test_a_query_instead_of_a_table_and_integers_for_numbers(tmp_path):
    text = edited('table = "transactions"', 'query = """\nSELECT *\nFROM sales\n"""', MINIMAL)
    text = edited("margin = 0.25", "margin = 1", text)
    config = load_config(write(tmp_path, text), environ={"CRM_URL": URL})
    assert config.source.transactions.query == "SELECT *\nFROM sales\n"
    assert config.value.margin == 1.0


def test_the_report_path_is_relative_to_the_file(tmp_path):
    text = MINIMAL + '\n[outputs]\nreport = "out/report.html"\n'
    config = load_config(write(tmp_path / "jobs", text), environ={"CRM_URL": URL})
    assert config.outputs.report == tmp_path / "jobs" / "out" / "report.html"
    absolute = tmp_path / "elsewhere.html"
    text = MINIMAL + f'\n[outputs]\nreport = "{absolute}"\n'
    config = load_config(write(tmp_path / "jobs", text), environ={"CRM_URL": URL})
    assert config.outputs.report == absolute


def test_report_false_turns_the_report_off_and_true_is_refused(tmp_path):
    text = MINIMAL + "\n[outputs]\nreport = false\n"
    config = load_config(write(tmp_path, text), environ={"CRM_URL": URL})
    assert config.outputs.report is None
    text = MINIMAL + "\n[outputs]\nreport = true\n"
    message = config_error(tmp_path, text, environ={"CRM_URL": URL})
    assert f"line {line_of(text, 'report = true')}: outputs.report: " in message
    assert "or false for none" in message


def test_the_scores_can_go_to_another_database(tmp_path):
    text = MINIMAL + '\n[outputs]\nurl_env = "BI_URL"\n'
    config = load_config(write(tmp_path, text), environ={"CRM_URL": URL, "BI_URL": "sqlite://"})
    assert config.scores_url({"CRM_URL": URL, "BI_URL": "sqlite://"}) == "sqlite://"


def test_the_config_is_frozen(tmp_path):
    config = load_config(write(tmp_path, MINIMAL), environ={"CRM_URL": URL})
    with pytest.raises(ValidationError, match="frozen"):
        config.value.margin = 0.5  # type: ignore[misc]


# --- unknown keys ---------------------------------------------------------------------------------


def test_unknown_key_names_the_key_the_line_and_the_likely_one(tmp_path):
    text = edited('table = "transactions"', 'tabel = "transactions"')
    message = config_error(tmp_path, text)
    line = line_of(text, "tabel =")
    assert f"line {line}: source.transactions.tabel: unknown key (did you mean 'table'?)" in message


def test_unknown_table_and_dotted_and_inline_keys(tmp_path):
    text = edited(
        '[source.transactions]\ntable = "transactions"',
        'transactions.table = "transactions"\ntransactions.colour = "red"',
        MINIMAL,
    )
    text += '\n[reports]\npath = "x"\n'  # fmt: skip
    text = edited("margin = 0.25", "margin = 0.25\nmarketing_cost = { amont = 3.0 }", text)
    message = config_error(tmp_path, text, environ={"CRM_URL": URL})
    assert f"line {line_of(text, '[reports]')}: reports: unknown key" in message
    assert f"line {line_of(text, 'transactions.colour')}: source.transactions.colour" in message
    inline = f"line {line_of(text, 'amont')}: value.marketing_cost.amont: unknown key"
    assert inline + " (did you mean 'amount'?)" in message


def test_keys_inside_a_multiline_string_do_not_count(tmp_path):
    text = edited(
        'table = "transactions"',
        'query = """\nSELECT * FROM sales\nWHERE amount = 1\n"""\namount = "net"\nbogus = 1',
        MINIMAL,
    )
    message = config_error(tmp_path, text, environ={"CRM_URL": URL})
    assert f"line {line_of(text, 'bogus')}: source.transactions.bogus: unknown key" in message


def test_a_url_in_the_file_is_refused_without_quoting_it(tmp_path):
    secret = "hunter2-secret"
    text = edited('url_env = "CVALUE_DATABASE_URL"',
                  f'url = "postgresql://crm:{secret}@db/crm"', MINIMAL.replace("CRM_URL",
                  "CVALUE_DATABASE_URL"))  # fmt: skip
    message = config_error(tmp_path, text)
    assert secret not in message
    assert "source.url: unknown key" in message
    assert "never goes in this file" in message
    # url_env is optional (files need none); the message says where the URL goes instead
    assert "name that variable with url_env" in message


def test_a_url_as_the_variable_name_is_refused_without_quoting_it(tmp_path):
    secret = "hunter2-secret"
    text = edited('url_env = "CRM_URL"', f'url_env = "postgresql://crm:{secret}@db/crm"', MINIMAL)
    message = config_error(tmp_path, text)
    assert secret not in message
    line = line_of(text, "url_env")
    assert f"line {line}: source.url_env: must be the NAME of an environment variable" in message


def test_a_url_given_as_a_bad_value_is_not_quoted(tmp_path):
    text = edited('write_mode = "replace"', 'write_mode = "postgresql://crm:pw-123@db/crm"')
    message = config_error(tmp_path, text)
    assert "outputs.write_mode: Input should be 'replace' or 'append'" in message
    assert "pw-123" not in message


SECTIONS = ["source", "source.transactions", "summary", "models", "value", "value.discount",
            "segments", "outputs"]  # fmt: skip


@given(
    section=st.sampled_from(SECTIONS),
    key=st.from_regex(r"[a-z][a-z0-9_]{0,15}", fullmatch=True),
)
def test_an_unknown_key_anywhere_is_found_on_its_line(section, key):
    text = EXAMPLE_CONFIG
    header = f"[{section}]"
    keys = tomllib.loads(text)
    for part in section.split("."):
        keys = keys[part]
    assume(key not in set(_section_model(section).model_fields) | {"schema"} | set(keys))
    text = edited(header + "\n", f"{header}\n{key} = 1\n", text)
    message = _message_for(text)
    assert f"line {line_of(text, header) + 1}: {section}.{key}: unknown key" in message


def _section_model(section: str) -> type[BaseModel]:
    model: type[BaseModel] = JobConfig
    for part in section.split("."):
        annotation = model.model_fields[part].annotation
        model = next(arg for arg in (annotation, *getattr(annotation, "__args__", ()))
                     if isinstance(arg, type) and issubclass(arg, BaseModel))  # fmt: skip
    return model


def _message_for(text: str) -> str:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "cvalue.toml"
        path.write_text(text)
        with pytest.raises(ConfigError) as caught:
            load_config(path, environ=ENVIRON)
    return str(caught.value)


# --- wrong types and bad values -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "key", "phrase"),
    [
        ("margin = 0.30", 'margin = "0.3"', "value.margin", "valid number (got '0.3')"),
        ("margin = 0.30", "margin = 1.5", "value.margin", "less than or equal to 1"),
        ('unit = "week"', 'unit = "weeks"', "summary.unit", "'week', 'month'"),
        ("observation_end = 2024-12-31", 'observation_end = "yesterday"',
         "summary.observation_end", "expected a date"),
        ('by = ["segment", "channel"]', 'by = "segment"', "segments.by", "valid list"),
        ("tiers = [0.01, 0.05, 0.20]", "tiers = [0.2, 0.05]", "segments.tiers", "increasing"),
        ('write_mode = "replace"', "write_mode = true", "outputs.write_mode", "'replace' or"),
        ('purchase = "auto"', 'purchase = "bg_nbd"', "models.purchase", "'beta_geo'"),
        ("rate = 0.10", "rate = 10", "value.discount.rate", "less than 1"),
        ("by_segment = { retail = 0.12, corporate = 0.08 }",
         "by_segment = { retail = 0.12, corporate = 8 }", "value.discount.by_segment",
         "not so for ['corporate']"),
        ("[source.transactions]\n", "[source.transactions]\nchannel = 7\n",
         "source.transactions.channel", "valid string (got 7)"),
    ],
)  # fmt: skip
def test_wrong_types_and_values_name_the_key_and_line(tmp_path, old, new, key, phrase):
    text = edited(old, new)
    message = config_error(tmp_path, text)
    line = line_of(text, new.splitlines()[-1])
    assert f"line {line}: {key}: " in message
    assert phrase in message
    assert "1 problem:" in message


def test_integers_in_a_float_key_are_fine_but_floats_in_an_integer_key_are_not(tmp_path):
    text = MINIMAL + "\n[segments]\ngrid_size = 2.5\nmin_segment_size = true\n"
    message = config_error(tmp_path, text, environ={"CRM_URL": URL})
    assert f"line {line_of(text, 'grid_size')}: segments.grid_size: " in message
    assert f"line {line_of(text, 'min_segment_size')}: segments.min_segment_size: " in message
    assert "2 problems" in message


@pytest.mark.parametrize(
    ("old", "new", "key", "phrase"),
    [
        ('holdout = "26w"', 'holdout = "26 weaks"', "models.holdout", "unknown time unit 'weaks'"),
        ('holdout = "26w"', 'holdout = "soon"', "models.holdout", "'soon' is not a duration"),
        ('holdout = "26w"', 'holdout = "0w"', "models.holdout", "longer than zero"),
        ('holdout = "26w"', "holdout = 26", "models.holdout", "written as a string"),
        ('horizons = ["3y", "5y"]', 'horizons = ["3y", "5m"]', "value.horizons[1]",
         "'m' is not accepted"),
    ],
)  # fmt: skip
def test_bad_durations_name_the_key_and_line(tmp_path, old, new, key, phrase):
    text = edited(old, new)
    message = config_error(tmp_path, text)
    assert f"line {line_of(text, new)}: {key}: " in message
    assert phrase in message


def test_missing_keys_point_at_their_table(tmp_path):
    text = edited("margin = 0.30\n", "")
    message = config_error(tmp_path, text)
    assert f"line {line_of(text, '[value]')}: value.margin: required key is missing" in message
    text = MINIMAL.replace("[value]\nmargin = 0.25\n", "")
    message = config_error(tmp_path, text, environ={"CRM_URL": URL})
    assert re.search(r"^  value: required key is missing$", message, flags=re.MULTILINE)


@pytest.mark.parametrize(
    ("old", "new", "key", "phrase"),
    [
        ('kind = "by_segment"', 'kind = "risk_adjusted"', "value.discount",
         "kind = 'risk_adjusted' needs ['measure', 'premium']"),
        ('kind = "by_segment"', 'kind = "scalar"', "value.discount",
         "kind = 'scalar' does not use ['by_segment']"),
        ('table = "transactions"', 'table = "transactions"\nquery = "SELECT 1"',
         "source.transactions", "exactly one of table or query or file (got table and query)"),
        ("margin = 0.30", 'margin = 0.30\nmargin_is_net_of = ["cost_to_serve"]', "value",
         "counts it twice"),
        ('cost = "cost"', 'cost = "cost"\namount = 4.0', "value.cost_to_serve",
         "exactly one of amount or by_segment or table or file (got amount and table)"),
    ],
)  # fmt: skip
def test_keys_that_do_not_go_together(tmp_path, old, new, key, phrase):
    text = edited(old, new)
    message = config_error(tmp_path, text)
    assert f": {key}: " in message
    assert phrase in message


def test_every_problem_is_reported_at_once_in_file_order(tmp_path):
    text = edited('unit = "week"', 'unit = "fortnight"')
    text = edited("margin = 0.30", "margin = -1", text)
    text = edited('table = "transactions"', 'tables = "transactions"', text)
    message = config_error(tmp_path, text)
    assert message.startswith(f"{tmp_path / 'cvalue.toml'} has 3 problems:")
    keys = re.findall(r"^  line \d+: ([\w.]+):", message, flags=re.MULTILINE)
    assert keys == ["source.transactions.tables", "summary.unit", "value.margin"]


# --- the environment ------------------------------------------------------------------------------


def test_a_missing_url_variable_is_named(tmp_path):
    message = config_error(tmp_path, MINIMAL, environ={})
    line = line_of(MINIMAL, "url_env")
    assert f"line {line}: source.url_env names the environment variable 'CRM_URL'" in message
    assert "which is not set" in message
    empty = config_error(tmp_path, MINIMAL, environ={"CRM_URL": "  "})
    assert "'CRM_URL', which is not set" in empty


def test_a_missing_scores_url_variable_is_named(tmp_path):
    text = MINIMAL + '\n[outputs]\nurl_env = "BI_URL"\n'
    message = config_error(tmp_path, text, environ={"CRM_URL": URL})
    assert f"line {line_of(text, 'BI_URL')}: outputs.url_env names the environment variable" in (
        message
    )
    assert "CRM_URL" not in message


def test_the_environment_check_can_wait(tmp_path, monkeypatch):
    monkeypatch.delenv("CRM_URL", raising=False)
    config = load_config(write(tmp_path, MINIMAL), check_environment=False)
    with pytest.raises(ConfigError, match="'CRM_URL', which is not set"):
        config.source_url()
    monkeypatch.setenv("CRM_URL", URL)
    assert config.source_url() == URL


# --- files that cannot be read --------------------------------------------------------------------


def test_a_missing_file_and_bad_toml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")
    text = MINIMAL + "\n[summary\nunit = 'week'\n"
    with pytest.raises(ConfigError, match=r"not valid TOML: .*line 11"):
        load_config(write(tmp_path, text), environ={"CRM_URL": URL})


# --- the reference --------------------------------------------------------------------------------


def _models(model: type[BaseModel], path: str) -> list[tuple[str, type[BaseModel]]]:
    found = [(path, model)]
    for name, field in model.model_fields.items():
        annotation = field.annotation
        for arg in (annotation, *getattr(annotation, "__args__", ())):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                found += _models(arg, f"{path}.{field.alias or name}" if path else name)
    return found


def test_the_reference_has_every_key_with_type_default_and_description():
    reference = config_reference()
    sections = reference.split("### ")[1:]
    by_heading = {section.splitlines()[0]: section for section in sections}
    models = _models(JobConfig, "")[1:]
    assert list(by_heading) == [f"`[{path}]`" for path, _ in models]
    for path, model in models:
        rows = [line for line in by_heading[f"`[{path}]`"].splitlines() if line.startswith("| `")]
        assert len(rows) == len(model.model_fields), path
        for row, (name, field) in zip(rows, model.model_fields.items(), strict=True):
            cells = [cell.strip() for cell in row.strip("|").split(" | ")]
            assert len(cells) == 4, row
            assert cells[0] == f"`{field.alias or name}`"
            assert cells[1]
            assert cells[3] == field.description
            assert (cells[2] == "required") == field.is_required()


def test_the_reference_shows_defaults_as_toml():
    reference = config_reference()
    assert (
        '| `unit` | `"day"` or `"week"` or `"month"` or `"quarter"` or `"year"` | `"week"` |'
        in (reference)
    )
    assert '| `horizons` | array of duration (`"3y"`) | `["3y", "5y"]` |' in reference
    assert '| `holdout` | duration (`"3y"`) | `"26w"` |' in reference
    assert "| `margin` | number | required |" in reference
    assert "| `schema` | string | not set |" in reference


# --- requirements across sections: load_config refuses what `score` would fail on --------------


def _without_customers(text: str) -> str:
    start = text.index("[source.customers]")
    return text[:start] + text[text.index("[summary]") :]


@pytest.mark.parametrize(
    ("edit", "phrase", "key_line"),
    [
        (_without_customers, "[value.discount] kind = 'by_segment' needs segments", 'kind = "by'),
        (lambda text: text.replace('segment = "segment"\n', "", 1),
         "[value.discount] kind = 'by_segment' needs segments", 'kind = "by'),
        (lambda text: text.replace('channel = "channel"\n', "", 1),
         "[segments] by names ['channel'], which [source.customers] does not map", "by = ["),
        (lambda text: text.replace('category = "category"\n', "", 1)
         .replace("margin = 0.30\n", "margin = 0.30\nmargin_by_category = { toys = 0.4 }\n"),
         "[value] margin_by_category needs the category column", "margin_by_category"),
        (lambda text: text.replace('table = "service_contacts"', "by_segment = { retail = 2.0 }")
         .replace('kind = "by_segment"', 'kind = "scalar"')
         .replace("by_segment = { retail = 0.12, corporate = 0.08 }\n", "")
         .replace('segment = "segment"\n', "", 1),
         "[value.cost_to_serve] by_segment needs segments", "by_segment = { retail = 2.0 }"),
        (lambda text: text.replace('scores_table = "customer_value"',
                                   'scores_table = "Transactions"'),
         "scores_table = 'Transactions' is a table this file reads", "scores_table"),
        (lambda text: text.replace('scores_table = "customer_value"', 'scores_table = "customers"'),
         "scores_table = 'customers' is a table this file reads", "scores_table"),
    ],
)  # fmt: skip
def test_requirements_across_sections_are_checked_when_loading(tmp_path, edit, phrase, key_line):
    text = edit(EXAMPLE_CONFIG)
    message = config_error(tmp_path, text)
    assert phrase in message
    assert f"line {line_of(text, key_line)}: " in message


def test_scores_may_share_a_name_with_a_source_table_in_another_database(tmp_path):
    text = EXAMPLE_CONFIG.replace('scores_table = "customer_value"', 'scores_table = "customers"')
    text = text.replace("[outputs]\n", '[outputs]\nurl_env = "SCORES_URL"\n')
    config = load_config(write(tmp_path, text), environ={**ENVIRON, "SCORES_URL": URL})
    assert config.outputs.scores_table == "customers"


FILES_ONLY = """\
[source]
delimiter = ";"
encoding = "cp1251"
decimal = ","
thousands = " "

[source.transactions]
file = "exports/transactions.csv"
date_format = "%d.%m.%Y"
min_date = 2001-01-01

[source.customers]
file = "exports/customers"
segment = "segment"

[value]
margin = 0.25
margin_is_net_of = ["marketing_cost"]

[value.cost_to_serve]
file = "/data/costs.parquet"

[outputs]
url_env = "SCORES_URL"
"""


def test_files_need_no_source_url_and_resolve_against_the_config_folder(tmp_path):
    config = load_config(write(tmp_path, FILES_ONLY), environ={"SCORES_URL": URL})
    source = config.source
    assert source.url_env is None
    assert not config.reads_database()
    assert source.transactions.file == tmp_path / "exports" / "transactions.csv"
    assert source.customers is not None
    assert source.customers.file == tmp_path / "exports/customers"
    assert config.value.cost_to_serve is not None
    assert config.value.cost_to_serve.file == Path("/data/costs.parquet")
    assert config.files_read()[0] == source.transactions.file
    assert source.number_options() == {"decimal": ",", "thousands": " "}
    assert source.transactions.date_options()["min_date"] == dt.date(2001, 1, 1)


@pytest.mark.parametrize(
    ("old", "new", "phrase"),
    [
        ('file = "exports/transactions.csv"', 'table = "transactions"',
         "[source] has no url_env, but a table or query is read from a database"),
        ('file = "exports/customers"', 'file = "exports/customers"\ntable = "customers"',
         "exactly one of table or file (got table and file)"),
        ('encoding = "cp1251"', 'encoding = "cp-nonsense"', "'cp-nonsense' is not a text encoding"),
        ('thousands = " "', 'thousands = ","', "decimal and thousands must be different"),
        ('delimiter = ";"', 'delimiter = ";;"', "at most 1 character"),
    ],
)  # fmt: skip
def test_bad_file_options_are_named(tmp_path, old, new, phrase):
    message = config_error(tmp_path, FILES_ONLY.replace(old, new), environ={"SCORES_URL": URL})
    assert phrase in message


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("margin = 0.25", "says nothing of cost_to_serve or marketing_cost"),
        ("margin = 0.25\n[value.cost_to_serve]\namount = 1.0", "says nothing of marketing_cost"),
        ('margin = 0.25\ncosts = "none"\n[value.marketing_cost]\namount = 1.0',
         'costs = "none" says there is no cost beyond the margin'),
        ('margin = 0.25\ncosts = "none"\nmargin_is_net_of = ["marketing_cost"]',
         "margin_is_net_of gives one"),
        ('margin = 0.25\ncosts = "some"', "value.costs"),
    ],
)  # fmt: skip
def test_every_cost_item_is_accounted_for(tmp_path, value, said):
    """Seed 000: a cost is never left out silently. A [value] that says nothing of a cost item
    (before: valued at 0 without a word) is an error naming it and the three ways to say it."""
    text = MINIMAL.replace('margin = 0.25\ncosts = "none"', value)
    with pytest.raises(ConfigError, match=re.escape(said)):
        load_config(write(tmp_path, text), environ={"CRM_URL": URL})


@pytest.mark.parametrize(
    "value",
    ['margin = 0.25\ncosts = "none"', 'margin = 0.25\nmargin_is_net_of = ["cost_to_serve", '
     '"marketing_cost"]', "margin = 0.25\n[value.cost_to_serve]\namount = 0.0\n"
     "[value.marketing_cost]\namount = 2.0"],
)  # fmt: skip
def test_each_way_of_accounting_for_the_costs_loads(tmp_path, value):
    text = MINIMAL.replace('margin = 0.25\ncosts = "none"', value)
    assert load_config(write(tmp_path, text), environ={"CRM_URL": URL}).value.margin == 0.25
