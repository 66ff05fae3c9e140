"""The chunked job reads Parquet and CSV files through DuckDB and gives the in-memory results."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from cvalue.config import load_config
from cvalue.datasets import make_crm
from cvalue.errors import ConfigError, SchemaError
from cvalue.job import run
from tests.conftest import demo_config, run_cli
from tests.test_job_chunked import URL, _same_commands, _same_results, _same_scores, _scores

TABLES = {"transactions": "transactions", "customers": "customers",
          "service_contacts": "service_contacts", "surveys": "surveys"}  # fmt: skip


def _write_files(folder: Path, crm: object, suffix: str) -> None:
    for name in TABLES:
        frame = getattr(crm, name)
        frame = frame.reset_index() if name == "customers" else frame
        if name == "transactions":  # rows to reject: a repeated row and a missing amount
            frame = pd.concat([frame, frame.iloc[[3]], frame.iloc[[5]].assign(amount=None)],
                              ignore_index=True)  # fmt: skip
        if suffix == "parquet":
            frame.to_parquet(folder / f"{name}.parquet", index=False)
        else:
            frame.to_csv(folder / f"{name}.csv", index=False)


def _file_config(folder: Path, crm: object, url: str, suffix: str, chunk: int | None) -> object:
    path = demo_config(folder, crm)
    text = path.read_text()
    for name in TABLES:
        text = text.replace(f'table = "{name}"', f'file = "{name}.{suffix}"', 1)
    if chunk is not None:
        text += f"\n[run]\nchunk_customers = {chunk}\n"
    path.write_text(text)
    return load_config(path, environ={URL: url})


@pytest.mark.parametrize("suffix", ["parquet", "csv"])
def test_files_give_the_in_memory_results(crm_url, tmp_path: Path, suffix: str) -> None:
    crm = make_crm(1_200, seed=11)
    _write_files(tmp_path, crm, suffix)
    url = crm_url("duckdb")  # where the scores go
    memory = run(_file_config(tmp_path, crm, url, suffix, None), environ={URL: url},
                 report_path=tmp_path / "memory.html")  # fmt: skip
    in_memory = _scores(url)
    chunked = run(_file_config(tmp_path, crm, url, suffix, 300), environ={URL: url},
                  report_path=tmp_path / "chunked.html")  # fmt: skip
    assert chunked.in_database is not None
    assert chunked.in_database.n_chunks >= 3
    scores = _scores(url)
    if suffix == "csv":  # ids stay text, as the in-memory job reads them ('007' is not 7)
        assert pd.api.types.is_string_dtype(scores.index)
    _same_scores(in_memory, scores)
    _same_results(memory, chunked)
    assert chunked.loaded.report.n_clean == memory.loaded.report.n_clean
    assert chunked.loaded.report.n_rejected == memory.loaded.report.n_rejected > 0
    reasons = ["reason", "column", "rows"]
    pd.testing.assert_frame_equal(chunked.loaded.report.reasons[reasons],
                                  memory.loaded.report.reasons[reasons])  # fmt: skip


def test_a_missing_csv_column_is_named(crm_url, tmp_path: Path) -> None:
    crm = make_crm(100, seed=12)
    _write_files(tmp_path, crm, "csv")
    transactions = pd.read_csv(tmp_path / "transactions.csv").drop(columns="amount")
    transactions.to_csv(tmp_path / "transactions.csv", index=False)
    url = crm_url("duckdb")
    config = _file_config(tmp_path, crm, url, "csv", 50)
    with pytest.raises(SchemaError, match=r"\[source.transactions\]: column\(s\) \['amount'\] "
                       r"not found in file 'transactions.csv'"):  # fmt: skip
        run(config, environ={URL: url}, write=False, report_path=None)


@pytest.mark.parametrize(
    ("old", "new", "named"),
    [
        (
            'file = "customers.csv"',
            'table = "customers"',
            r"\[source.customers\] table or query beside files",
        ),
        (
            "[source]\n",
            '[source]\nencoding = "cp1251"\n',
            r"\[source\] encoding = 'cp1251' for CSV files",
        ),
    ],
)
def test_what_files_cannot_do_chunked_is_named(
    tmp_path: Path, old: str, new: str, named: str
) -> None:
    crm = make_crm(50, seed=1)
    _write_files(tmp_path, crm, "csv")
    _file_config(tmp_path, crm, "duckdb:///x.duckdb", "csv", 100)
    path = tmp_path / "cvalue.toml"
    path.write_text(path.read_text().replace(old, new, 1))
    with pytest.raises(ConfigError, match=f"chunk_customers does not support {named}"):
        load_config(path, environ={URL: "duckdb:///x.duckdb"})


def test_validate_and_fit_commands_read_the_files(crm_url, tmp_path: Path) -> None:
    crm = make_crm(600, seed=13)
    _write_files(tmp_path, crm, "parquet")
    url = crm_url("duckdb")
    outputs = {}
    for name, chunk in (("memory", None), ("chunked", 200)):
        _file_config(tmp_path, crm, url, "parquet", chunk)
        for command in ("validate", "fit"):
            code, output = run_cli([command], tmp_path / "cvalue.toml", url, "--json")
            assert code == 0, output
            outputs[name, command] = json.loads(output)
    _same_commands(outputs, ("purchase_params",))
