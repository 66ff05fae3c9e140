"""docs/cli.md and docs/crm.md say what the code does: reference, commands, exit codes, columns.

The configuration reference in docs/cli.md is rendered from the pydantic models and pasted
between two marker comments; these tests fail as soon as the models and the page differ, and the
failure says how to regenerate the page. The commands, their options, the exit codes, the JSON
shapes and the scores table's columns are compared with what the command line and the job do.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import sqlalchemy as sa
import typer
from typer.testing import CliRunner

from cvalue.cli import (
    EXIT_BAD_INPUT,
    EXIT_CONVERGENCE,
    EXIT_DATABASE,
    EXIT_REPORT_AFTER_WRITE,
    app,
)
from cvalue.config import EXAMPLE_CONFIG, config_reference, load_config
from cvalue.datasets import make_crm
from cvalue.job import run

DOCS = Path(__file__).resolve().parents[1] / "docs"
CLI_PAGE = DOCS / "cli.md"
CRM_PAGE = DOCS / "crm.md"
START = "<!-- config-reference:start -->"
END = "<!-- config-reference:end -->"
REGENERATE = "the one-line python command under 'Configuration reference' in docs/cli.md"
FENCE = re.compile(r"^```(?P<info>\w*)\n(?P<code>.*?)^```$", re.MULTILINE | re.DOTALL)


def _text(page: Path) -> str:
    return page.read_text(encoding="utf-8")


def _fenced(text: str, language: str) -> list[str]:
    """The code of the top-level fenced blocks of ``language``."""
    return [match["code"] for match in FENCE.finditer(text) if match["info"] == language]


def _section(text: str, heading: str) -> str:
    """The text under ``heading`` (a whole line) up to the next heading of its level or above."""
    level = len(heading) - len(heading.lstrip("#"))
    start = text.index(f"\n{heading}\n") + len(heading) + 2
    following = re.compile(rf"^#{{1,{level}}} ", re.MULTILINE).search(text, start)
    return text[start : following.start() if following else len(text)]


# --- docs/cli.md --------------------------------------------------------------------------------


def test_the_config_reference_is_the_one_the_models_render() -> None:
    text = _text(CLI_PAGE)
    assert text.count(START) == 1, "one start marker"
    assert text.count(END) == 1, "one end marker"
    between = text[text.index(START) + len(START) : text.index(END)]
    assert between == "\n" + config_reference(), (
        f"docs/cli.md's configuration reference is out of date: regenerate it with {REGENERATE}"
    )


def test_the_regeneration_command_reproduces_the_page(tmp_path: Path) -> None:
    command = next(
        line for line in _fenced(_text(CLI_PAGE), "bash")[-1].splitlines() if "python -c" in line
    )
    code = command.removeprefix('python -c "').removesuffix('"')
    page = tmp_path / "docs" / "cli.md"
    page.parent.mkdir()
    stale = _text(CLI_PAGE).replace("| `margin` |", "| `old_margin` |")
    page.write_text(stale, encoding="utf-8")
    exec(compile(code.replace("'docs/cli.md'", repr(str(page))), "regenerate", "exec"), {})
    assert page.read_text(encoding="utf-8") == _text(CLI_PAGE)


def test_the_example_configuration_is_the_code_s() -> None:
    assert EXAMPLE_CONFIG in _fenced(_text(CLI_PAGE), "toml")


def _commands() -> dict[str, set[str]]:
    """Each command of the app and its long options (typer vendors its own click classes)."""
    group = typer.main.get_command(app)
    return {
        name: {
            option
            for parameter in command.params
            for option in parameter.opts
            if option.startswith("--") and option != "--help"
        }
        for name, command in group.commands.items()  # type: ignore[attr-defined]
    }


def test_every_command_and_option_is_documented() -> None:
    text = _text(CLI_PAGE)
    common = text[: text.index("\n## The commands\n")]  # the options every job command takes
    commands = _commands()
    assert set(commands) == {"demo", "validate", "fit", "score", "report", "init", "history"}
    for name, options in commands.items():
        assert f"| [`cvalue {name}`](#cvalue-{name}) |" in common, f"{name} not in the overview"
        section = _section(text, f"### `cvalue {name}`")
        assert f"cvalue {name}" in "".join(_fenced(section, "bash")), f"no example of {name}"
        missing = sorted(o for o in options if f"`{o}`" not in section + common)
        assert not missing, f"options of cvalue {name} not documented: {missing}"


def test_the_exit_codes_table_has_every_code() -> None:
    section = _section(_text(CLI_PAGE), "## Exit codes")
    codes = {0: "success", EXIT_BAD_INPUT: "bad input", EXIT_DATABASE: "database error",
             EXIT_CONVERGENCE: "did not converge",
             EXIT_REPORT_AFTER_WRITE: "the scores were written, the report was not"}  # fmt: skip
    for code, meaning in codes.items():
        row = next((line for line in section.splitlines() if line.startswith(f"| {code} |")), "")
        assert meaning in row, f"exit code {code} is not documented as {meaning!r}"


def test_a_json_failure_has_the_documented_shape(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    result = CliRunner().invoke(app, ["validate", "--config", str(missing), "--json"])
    assert result.exit_code == EXIT_BAD_INPUT
    printed = json.loads(result.stdout)
    documented = json.loads(_fenced(_section(_text(CLI_PAGE), "## JSON output"), "json")[0])
    assert set(printed) == set(documented)
    assert printed["ok"] is documented["ok"] is False
    assert printed["error"] == "bad input"
    assert f'`"{printed["error"]}"`' in _section(_text(CLI_PAGE), "## JSON output")


# --- a small CRM in DuckDB, scored once, for the JSON shapes and the scores table -----------------

JOB_CONFIG = """\
[source]
url_env = "CVALUE_DOCS_DATABASE_URL"

[source.transactions]
table = "transactions"
order_id = "order_id"
is_return = "is_return"
category = "category"

[source.customers]
table = "customers"
segment = "segment"

[models]
purchase = "beta_geo"

[value]
margin = 0.30
horizons = ["3y", "18M"]
costs = "none"

[outputs]
scores_table = "customer_value"
"""


@pytest.fixture(scope="module")
def crm_job(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A DuckDB file with a synthetic CRM and the job's configuration next to it."""
    folder = tmp_path_factory.mktemp("crm")
    crm = make_crm(200, seed=5)
    engine = sa.create_engine(f"duckdb:///{folder / 'crm.duckdb'}")
    try:
        crm.customers.reset_index().to_sql("customers", engine, index=False)
        crm.transactions.to_sql("transactions", engine, index=False)
    finally:
        engine.dispose()
    config = folder / "cvalue.toml"
    config.write_text(JOB_CONFIG, encoding="utf-8")
    return config, {"CVALUE_DOCS_DATABASE_URL": f"duckdb:///{folder / 'crm.duckdb'}"}


def test_validate_json_has_the_documented_keys(crm_job: tuple[Path, dict[str, str]]) -> None:
    config, environ = crm_job
    result = CliRunner().invoke(app, ["validate", "--config", str(config), "--json"], env=environ)
    assert result.exit_code == 0, result.output
    documented = [
        json.loads(block)
        for block in _fenced(_section(_text(CLI_PAGE), "## JSON output"), "json")
        if '"transactions_kept"' in block
    ]
    assert len(documented) == 1
    assert list(json.loads(result.stdout)) == list(documented[0])


def _documented_columns(horizons: list[str]) -> list[str]:
    """The scores table's columns as docs/crm.md lists them, ``<h>`` expanded per horizon."""
    section = _section(_text(CRM_PAGE), "## The scores table")
    names = re.findall(r"^\| `([^`]+)` \|", section, flags=re.MULTILINE)
    per_horizon = ["expected_purchases_<h>", "clv_<h>"]
    at = names.index(per_horizon[0])
    assert names[at : at + 2] == per_horizon, "the two per-horizon rows must follow each other"
    expanded = [name.replace("<h>", horizon) for horizon in horizons for name in per_horizon]
    return names[:at] + expanded + names[at + 2 :]


def test_the_scores_table_has_the_documented_columns(
    crm_job: tuple[Path, dict[str, str]],
) -> None:
    config_path, environ = crm_job
    config = load_config(config_path, environ=environ)
    no_report = config.outputs.model_copy(update={"report": None})
    result = run(config.model_copy(update={"outputs": no_report}), environ=environ)
    assert result.written is not None
    assert result.report_path is None
    engine = sa.create_engine(environ["CVALUE_DOCS_DATABASE_URL"])
    try:
        stored = [column["name"] for column in sa.inspect(engine).get_columns("customer_value")]
    finally:
        engine.dispose()
    assert stored == _documented_columns(["3y", "18M"])


def test_the_column_parser_expands_horizons() -> None:
    columns = _documented_columns(["3y", "5y"])
    assert columns[:2] == ["customer_id", "segment"]
    assert columns[4:8] == ["expected_purchases_3y", "clv_3y", "expected_purchases_5y", "clv_5y"]
    assert columns[-2:] == ["run_id", "scored_at"]
