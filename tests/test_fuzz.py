"""Fuzzing the entry points a user's data and files reach: for any input, a correct result or a
cvalue error with a message, never another exception type, and never a row lost uncounted.

Every test here has a fixed budget (``max_examples``) and draws the same examples on every run
(the ``cvalue`` hypothesis profile in conftest), so that CI stays short and reproducible. The
coverage-guided fuzzer ``atheris`` runs the validation target for a bounded number of runs in a
separate process (``fuzz/validate.py``) where it is installed.
"""

from __future__ import annotations

import csv
import datetime as dt
import importlib.util
import resource
import string
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import tomli_w
import tomllib
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cvalue.cli import DEMO_CONFIG, app
from cvalue.config import EXAMPLE_CONFIG, JobConfig, load_config
from cvalue.datasets import make_crm
from cvalue.errors import ConfigError, CValueError
from cvalue.io.sources import read_transactions
from cvalue.io.validate import Validated, validate_transactions
from cvalue.summary import rfm_summary
from tests.conftest import write_crm

FUZZ = settings(
    max_examples=120, deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)  # fmt: skip
runner = CliRunner()

# --- values of every kind an export holds ------------------------------------------------------

_TEXT = st.text(alphabet=string.printable + "äöüßйцукен ,.-:/\u00a0", max_size=12)
_DATE_TEXT = st.builds(
    lambda day, layout: day.strftime(layout),
    st.datetimes(min_value=dt.datetime(1890, 1, 1), max_value=dt.datetime(2210, 12, 31)),
    st.sampled_from(["%Y-%m-%d", "%Y-%m-%d %H:%M:%S", "%d.%m.%Y", "%m/%d/%Y", "%d/%m/%Y",
                     "%Y-%m-%dT%H:%M:%S+02:00", "%d-%m-%Y", "%Y/%m/%d", "%d.%m.%y"]),
)  # fmt: skip
_NUMBER_TEXT = st.builds(
    lambda number, decimal, group: f"{number:,.2f}".replace(",", "_")
    .replace(".", decimal).replace("_", group),
    st.floats(-1e7, 1e7, allow_nan=False), st.sampled_from([".", ","]),
    st.sampled_from(["", " ", ".", ",", "\u00a0"]),
)  # fmt: skip
_ANY = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True), _TEXT, _DATE_TEXT, _NUMBER_TEXT,
    st.datetimes(min_value=dt.datetime(1700, 1, 1), max_value=dt.datetime(2250, 1, 1)),
)  # fmt: skip


@st.composite
def _column(draw: st.DrawFn, n_rows: int, favourite: st.SearchStrategy[Any]) -> list[Any]:
    """A column that mostly holds one kind of value, with a few of any kind mixed in."""
    return [draw(st.one_of(favourite, favourite, favourite, _ANY)) for _ in range(n_rows)]


@st.composite
def extracts(draw: st.DrawFn) -> pd.DataFrame:
    """A transactions extract of 1 to 25 rows whose columns hold anything, mostly plausible."""
    n_rows = draw(st.integers(1, 25))
    frame = pd.DataFrame({
        "customer_id": draw(_column(n_rows, st.one_of(st.integers(0, 6), st.sampled_from(
            ["a", "b", "007", "7", " ", ""])))),
        "timestamp": draw(_column(n_rows, _DATE_TEXT)),
        "amount": draw(_column(n_rows, st.one_of(st.floats(-50, 500), _NUMBER_TEXT))),
    })  # fmt: skip
    if draw(st.booleans()):
        frame["order_id"] = draw(_column(n_rows, st.integers(0, 30)))
    if draw(st.booleans()):
        frame["is_return"] = draw(_column(n_rows, st.sampled_from([True, False, "yes", "0"])))
    return frame


_OPTIONS = st.fixed_dictionaries(
    {},
    optional={
        "date_format": st.sampled_from([None, "%d.%m.%Y", "%Y-%m-%d", "unix_s", "unix_ms"]),
        "dayfirst": st.sampled_from([None, True, False]),
        "decimal": st.sampled_from([".", ","]),
        "thousands": st.sampled_from([None, " ", ".", ","]),
        "duplicates": st.sampled_from(["reject", "keep"]),
        "timezone": st.sampled_from([None, "UTC", "Europe/Moscow"]),
        "observation_end": st.sampled_from([None, "2020-06-30", "2024-12-31"]),
        "min_date": st.sampled_from([None, "1970-01-01", "2000-01-01"]),
        "max_date": st.sampled_from([None, "2030-12-31"]),
    },
)


def _attempt(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``function``'s result, or None when it refused with a cvalue error that says why.

    Any other exception propagates and fails the test.
    """
    try:
        return function(*args, **kwargs)
    except CValueError as exc:
        refused = exc
    assert str(refused).strip(), "a cvalue error always says what is wrong"
    return None


def _validated(frame: pd.DataFrame, options: dict[str, Any]) -> Validated | None:
    result: Validated | None = _attempt(validate_transactions, frame, **options)
    return result


def _accounted(frame: pd.DataFrame, result: Validated) -> None:
    """Every row of the extract is either kept or rejected with a reason, none twice."""
    report = result.report
    assert report.n_rows == len(frame)
    assert report.n_clean + report.n_rejected == len(frame)
    assert len(result.clean) == report.n_clean
    assert len(result.rejected) == report.n_rejected
    kept, rejected = set(result.clean.index), set(result.rejected.index)
    assert not kept & rejected
    assert kept | rejected == set(frame.index)
    assert result.rejected["rejection_reason"].notna().all()
    assert int(report.reasons["rows"].sum()) == report.n_rejected


@FUZZ
@given(frame=extracts(), options=_OPTIONS)
def test_validation_keeps_or_rejects_every_row_or_raises_a_cvalue_error(
    frame: pd.DataFrame, options: dict[str, Any]
) -> None:
    result = _validated(frame, options)
    if result is None:
        return
    _accounted(frame, result)
    clean = result.clean
    assert clean["timestamp"].notna().all()
    if "amount" in clean:
        assert np.isfinite(clean["amount"].to_numpy(dtype=float)).all()


@FUZZ
@given(frame=extracts(), options=_OPTIONS, unit=st.sampled_from(["day", "week", "month"]))
def test_the_summary_of_any_clean_extract_has_every_customer_once(
    frame: pd.DataFrame, options: dict[str, Any], unit: str
) -> None:
    result = _validated(frame, options)
    if result is None or not len(result.clean):
        return
    clean = result.clean
    end = clean["timestamp"].max()
    summary = _attempt(rfm_summary, clean, observation_end=end, unit=unit)
    if summary is None:
        return
    # every customer with a purchase, once; a customer who only returned things bought nothing
    bought = clean if "is_return" not in clean else clean[~clean["is_return"].astype(bool)]
    assert sorted(map(str, summary.index)) == sorted(map(str, bought["customer_id"].unique()))
    assert (summary["frequency"] >= 0).all()
    assert (summary["recency"] <= summary["T"] + 1e-9).all()
    assert (summary.loc[summary["frequency"] == 0, "recency"] == 0).all()


@FUZZ
@given(
    frame=extracts(),
    sep=st.sampled_from([",", ";", "\t", "|"]),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "cp1251"]),
    kind=st.sampled_from(["csv", "parquet"]),
)
def test_reading_a_file_returns_every_row_or_raises_a_cvalue_error(
    tmp_path: Path, frame: pd.DataFrame, sep: str, encoding: str, kind: str
) -> None:
    frame = frame.astype(str)  # what a file holds: text
    path = tmp_path / f"export.{kind}"
    if kind == "csv":
        try:
            # every field quoted: a bare carriage return inside a field is a line break to any
            # CSV reader, so only a quoted one is the value it was
            frame.to_csv(path, sep=sep, index=False, encoding=encoding, quoting=csv.QUOTE_ALL)
        except UnicodeEncodeError:
            return  # text the encoding cannot hold is not an export of that encoding
    else:
        frame.to_parquet(path)
    read = _attempt(read_transactions, path, sep=sep, encoding=encoding)
    if read is None:
        return
    assert len(read) == len(frame)
    assert list(read.columns)[:3] == ["customer_id", "timestamp", "amount"]


# --- the configuration file and the command line -------------------------------------------------

_BASE = tomllib.loads(EXAMPLE_CONFIG)


def _key_paths(table: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = []
    for key, value in table.items():
        paths.append((*prefix, key))
        if isinstance(value, dict):
            paths += _key_paths(value, (*prefix, key))
    return paths


_PATHS = _key_paths(_BASE)
_TOML_VALUES = st.one_of(
    st.just(None),  # remove the key
    st.booleans(), st.integers(-(10**6), 10**6), st.floats(allow_nan=True),
    _TEXT, _DATE_TEXT, st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2300, 1, 1)),
    st.lists(_TEXT, max_size=3), st.lists(st.floats(-1, 2), max_size=3),
    st.dictionaries(_TEXT, st.floats(-1, 2), max_size=2),
    st.sampled_from(["3y", "26w", "0w", "-1y", "18M", "90D", "year", "unix_s", "%d.%m.%Y"]),
)  # fmt: skip


def _mutated(base: dict[str, Any], edits: list[tuple[tuple[str, ...], Any]]) -> dict[str, Any]:
    document = tomllib.loads(tomli_w.dumps(base))  # a deep copy
    for path, value in edits:
        table = document
        for key in path[:-1]:
            found = table.get(key)
            if not isinstance(found, dict):
                break
            table = found
        else:
            if value is None:
                table.pop(path[-1], None)
            else:
                table[path[-1]] = value
    return document


_EDITS = st.lists(
    st.tuples(st.one_of(st.sampled_from(_PATHS), st.tuples(st.sampled_from(
        ["source", "value", "outputs", "summary"]), _TEXT.filter(bool))), _TOML_VALUES),
    min_size=1, max_size=4,
)  # fmt: skip


@FUZZ
@given(edits=_EDITS)
def test_any_configuration_file_loads_or_is_a_config_error(
    tmp_path: Path, edits: list[tuple[tuple[str, ...], Any]]
) -> None:
    path = tmp_path / "cvalue.toml"
    path.write_text(tomli_w.dumps(_mutated(_BASE, edits)), encoding="utf-8")
    try:
        config = load_config(path, environ={"CVALUE_DATABASE_URL": "duckdb:///crm.duckdb"})
    except ConfigError as exc:
        refused = exc
    else:
        assert isinstance(config, JobConfig)
        return
    assert str(refused).strip()


@pytest.fixture(scope="module")
def crm_database(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    folder = tmp_path_factory.mktemp("fuzz-crm")
    url = f"sqlite:///{folder / 'crm.sqlite'}"
    crm = make_crm(80, seed=11)
    write_crm(url, crm)
    config = folder / "cvalue.toml"
    end = crm.truth.observation_end.date()
    config.write_text(DEMO_CONFIG.format(database="", config=config, observation_end=end))
    return config, url


_CLEAN_EXITS = frozenset({0, 2, 3, 4, 5})


@settings(FUZZ, max_examples=40)
@given(edits=_EDITS)
def test_validate_on_any_configuration_exits_with_a_documented_code(
    crm_database: tuple[Path, str], tmp_path: Path, edits: list[tuple[tuple[str, ...], Any]]
) -> None:
    base_config, url = crm_database
    document = _mutated(tomllib.loads(base_config.read_text()), edits)
    path = tmp_path / "fuzzed.toml"
    path.write_text(tomli_w.dumps(document), encoding="utf-8")
    result = runner.invoke(app, ["validate", "--config", str(path), "--json"],
                           env={"CVALUE_DEMO_DATABASE_URL": url})  # fmt: skip
    event(f"exit {result.exit_code}")
    assert result.exit_code in _CLEAN_EXITS, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception


_WORDS = ["validate", "fit", "--config", "-c", "--json", "--report", "--output", "-o", "--help",
          "--version", "missing.toml", "", "--customers", "-1", "x" * 300, "\u00e9"]  # fmt: skip


@settings(FUZZ, max_examples=40)
@given(words=st.lists(st.one_of(st.sampled_from(_WORDS), _TEXT), max_size=5))
def test_any_command_line_exits_with_a_documented_code(
    crm_database: tuple[Path, str], words: list[str]
) -> None:
    config, url = crm_database
    words = [str(config) if word == "missing.toml" and i % 2 else word
             for i, word in enumerate(words)]  # fmt: skip
    if words and words[0] in ("score", "report", "demo"):
        return  # writing commands are fuzzed through their configuration above
    result = runner.invoke(app, words, env={"CVALUE_DEMO_DATABASE_URL": url})
    assert result.exit_code in _CLEAN_EXITS, (words, result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception


@pytest.mark.skipif(importlib.util.find_spec("atheris") is None, reason="atheris not installed")
def test_atheris_finds_no_foreign_exception_in_validation() -> None:
    script = Path(__file__).parents[1] / "fuzz" / "validate.py"
    # libFuzzer reads its peak memory from getrusage, which a child inherits from the process
    # that started it: the limit is 2 GB above what this test process has used so far
    inherited = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    limit = f"-rss_limit_mb={inherited + 2048}"
    done = subprocess.run(
        [sys.executable, str(script), "-runs=1000", "-max_total_time=20", "-seed=1", limit],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
