"""DuckDB in the chunked run: capped at [run] duckdb_memory, its buffers given back to Python."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from cvalue.config import load_config
from cvalue.datasets import make_crm
from cvalue.job._files import bound_duckdb, duckdb_resting
from tests.conftest import demo_config

URL = "CVALUE_DEMO_DATABASE_URL"


def _config(folder: Path, memory: str) -> object:
    path = demo_config(folder, make_crm(50, seed=1))
    path.write_text(
        path.read_text() + f'\n[run]\nchunk_customers = 20\nduckdb_memory = "{memory}"\n'
    )
    return load_config(path, environ={URL: "duckdb:///:memory:"})


def _cap(connection: sa.Connection) -> str:
    return str(connection.exec_driver_sql("SELECT current_setting('memory_limit')").scalar_one())


@pytest.mark.parametrize(
    ("memory", "capped", "resting"),
    [("1GB", "953.6 MiB", "256.0 MiB"), ("100MB", "95.3 MiB", "95.3 MiB")],
)
def test_the_cap_is_lowered_inside_and_given_back_after(
    tmp_path: Path, memory: str, capped: str, resting: str
) -> None:
    config = _config(tmp_path, memory)
    engine = sa.create_engine(f"duckdb:///{tmp_path / 'run.duckdb'}")
    with engine.connect() as connection:
        bound_duckdb(connection, config)  # type: ignore[arg-type]
        assert _cap(connection) == capped
        with duckdb_resting(connection, config):  # type: ignore[arg-type]
            assert _cap(connection) == resting
        assert _cap(connection) == capped
    engine.dispose()


def test_a_lowered_cap_evicts_the_buffers_and_the_rows_stay_readable(tmp_path: Path) -> None:
    """A temporary table filling the buffers goes to DuckDB's spill files, whole."""
    config = _config(tmp_path, "1GB")
    engine = sa.create_engine(f"duckdb:///{tmp_path / 'run.duckdb'}")
    used = "SELECT sum(memory_usage_bytes) FROM duckdb_memory()"
    with engine.connect() as connection:
        bound_duckdb(connection, config)  # type: ignore[arg-type]
        connection.exec_driver_sql(
            "CREATE TEMPORARY TABLE filled AS SELECT range AS i, random() AS x FROM range(20000000)"
        )
        total = connection.exec_driver_sql("SELECT sum(i) FROM filled").scalar_one()
        before = connection.exec_driver_sql(used).scalar_one()
        with duckdb_resting(connection, config):  # type: ignore[arg-type]
            during = connection.exec_driver_sql(used).scalar_one()
            assert connection.exec_driver_sql("SELECT sum(i) FROM filled").scalar_one() == total
        assert before > 300 * 2**20 > 256 * 2**20 >= during
    engine.dispose()
    assert total == np.arange(20_000_000, dtype=np.int64).sum()


def test_other_databases_are_left_as_they_are(tmp_path: Path) -> None:
    config = _config(tmp_path, "1GB")
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'run.sqlite'}")
    with engine.connect() as connection, duckdb_resting(connection, config):  # type: ignore[arg-type]
        assert connection.exec_driver_sql("SELECT 1").scalar_one() == 1
    engine.dispose()
