"""Shared fixtures: real SQLite, DuckDB and PostgreSQL databases.

PostgreSQL: ``CVALUE_POSTGRES_URL`` names a running server; otherwise, when the server binaries
exist (Debian's postgresql package), a throwaway cluster is started on 127.0.0.1 for the session.
Without either, PostgreSQL tests skip with the reason, unless ``CVALUE_REQUIRE_POSTGRES=1``
(as in CI), where they fail.
"""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from hypothesis import settings

# property tests draw the same examples on every run, so that CI results are reproducible
settings.register_profile("cvalue", derandomize=True, deadline=None)
settings.load_profile("cvalue")

BACKENDS = ("sqlite", "duckdb", "postgresql")


def _find_pg_bin() -> Path | None:
    for name in ("initdb", "pg_ctl"):
        found = shutil.which(name)
        if found:
            return Path(found).parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), reverse=True)
    return candidates[0].parent if candidates else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _as_postgres_user(command: list[str]) -> list[str]:
    """initdb and pg_ctl refuse to run as root: run them as the 'postgres' system user."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return command


def _start_cluster(pg_bin: Path) -> tuple[str, Callable[[], None]]:
    folder = Path(tempfile.mkdtemp(prefix="cvalue-pg-"))
    if os.geteuid() == 0:
        shutil.chown(folder, user="postgres", group="postgres")
    data = folder / "data"
    port = _free_port()
    run = {"check": True, "capture_output": True, "text": True}
    subprocess.run(
        _as_postgres_user([str(pg_bin / "initdb"), "-D", str(data), "-A", "trust", "-U", "cvalue",
                           "-E", "UTF8", "--no-sync"]),
        **run,
    )  # fmt: skip
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(
        _as_postgres_user([str(pg_bin / "pg_ctl"), "-D", str(data), "-o", options, "-w",
                           "-l", str(folder / "server.log"), "start"]),
        **run,
    )  # fmt: skip

    def stop() -> None:
        stop_command = [str(pg_bin / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]
        subprocess.run(_as_postgres_user(stop_command), check=False, capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)

    return f"postgresql+psycopg://cvalue@127.0.0.1:{port}/postgres", stop


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """The URL of a real PostgreSQL server for this test session."""
    url = os.environ.get("CVALUE_POSTGRES_URL")
    if url:
        yield url
        return
    pg_bin = _find_pg_bin()
    if pg_bin is None:
        reason = "no PostgreSQL server binaries (install Debian's postgresql package)"
        if os.environ.get("CVALUE_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"CVALUE_REQUIRE_POSTGRES=1 but {reason}")
        pytest.skip(reason)
    url, stop = _start_cluster(pg_bin)
    try:
        yield url
    finally:
        stop()


@pytest.fixture(scope="session")
def database_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("databases")


@pytest.fixture(scope="session", params=BACKENDS)
def engine(request: pytest.FixtureRequest, database_folder: Path) -> Iterator[sa.Engine]:
    """A real engine of each backend in turn (session-scoped; use unique table names)."""
    backend = request.param
    if backend == "sqlite":
        url = f"sqlite:///{database_folder / 'test.sqlite'}"
    elif backend == "duckdb":
        url = f"duckdb:///{database_folder / 'test.duckdb'}"
    else:
        url = request.getfixturevalue("postgres_url")
    created = sa.create_engine(url)
    yield created
    created.dispose()


@pytest.fixture(scope="session")
def load_table() -> Callable[[sa.Engine, pd.DataFrame], str]:
    """Write a frame to a new uniquely named table and return the table's name."""

    def load(engine: sa.Engine, frame: pd.DataFrame) -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        frame.to_sql(name, engine, index=False)
        return name

    return load


_BROWSER_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
)  # fmt: skip


class Browser:
    """Debian's chromium, driven by its chromedriver: open a page, read its console and DOM."""

    def __init__(self, driver: object) -> None:
        self._driver = driver

    def open(self, path: Path) -> None:
        self._driver.get(path.resolve().as_uri())  # type: ignore[attr-defined]

    def console_errors(self) -> list[str]:
        entries = self._driver.get_log("browser")  # type: ignore[attr-defined]
        return [entry["message"] for entry in entries if entry["level"] == "SEVERE"]

    def ids_of(self, selector: str) -> list[str]:
        found = self._driver.find_elements("css selector", selector)  # type: ignore[attr-defined]
        return [element.get_attribute("id") for element in found]

    def broken_images(self) -> int:
        script = "return [...document.images].filter(i => !i.complete || !i.naturalWidth).length"
        return int(self._driver.execute_script(script))  # type: ignore[attr-defined]

    def script(self, code: str, *args: object) -> object:
        """Run ``code`` (a function body: ``return ...``) in the page; return its value."""
        return self._driver.execute_script(code, *args)  # type: ignore[attr-defined]

    @contextmanager
    def at_width(self, width: int, height: int = 900) -> Iterator[None]:
        """A viewport ``width`` x ``height`` CSS pixels (scale 1) inside the block, then back."""
        command = self._driver.execute_cdp_cmd  # type: ignore[attr-defined]
        metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}
        command("Emulation.setDeviceMetricsOverride", metrics)
        try:
            yield
        finally:
            command("Emulation.clearDeviceMetricsOverride", {})

    def screenshot(self, *, tile: int = 4_000) -> bytes:
        """The whole page (not only the viewport) as one PNG, captured in tiles of ``tile`` px.

        Tiles keep each capture below the size a GPU texture takes (about 16,000 px).
        """
        from PIL import Image

        width, height = self.script(
            "const e = document.documentElement; return [e.scrollWidth, e.scrollHeight]"
        )  # type: ignore[misc]
        page = Image.new("RGB", (int(width), int(height)), "white")
        for top in range(0, int(height), tile):
            clip = {"x": 0, "y": top, "width": int(width),
                    "height": min(tile, int(height) - top), "scale": 1}  # fmt: skip
            shot = self._driver.execute_cdp_cmd(  # type: ignore[attr-defined]
                "Page.captureScreenshot",
                {"format": "png", "captureBeyondViewport": True, "clip": clip},
            )
            with Image.open(io.BytesIO(base64.b64decode(shot["data"]))) as part:
                page.paste(part.convert("RGB"), (0, top))
        buffer = io.BytesIO()
        page.save(buffer, format="PNG")
        return buffer.getvalue()


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    """Headless chromium; skips with the reason where none is installed, unless required."""
    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or chromedriver is None:
        reason = "no chromium/chromedriver (install Debian's chromium and chromium-driver)"
        if os.environ.get("CVALUE_REQUIRE_BROWSER") == "1":
            pytest.fail(f"CVALUE_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for flag in _BROWSER_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium')}")
    options.binary_location = chromium
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(chromedriver))
    try:
        yield Browser(driver)
    finally:
        driver.quit()


@pytest.fixture(scope="session")
def dask_cluster() -> Iterator[object]:
    """One ``distributed.LocalCluster`` of two worker processes for the session's Dask tests.

    Starting a cluster and importing cvalue in its workers costs seconds: tests/test_dask.py
    and tests/test_job_dask.py share this one. Its dashboard takes a free port (without an
    address it would take Dask's default, 8787, which another run may hold). A test that changes
    the workers (``client.run``) puts them back before it ends.
    """
    distributed = pytest.importorskip("distributed", reason="the Dask tests need cvalue[dask]")
    with distributed.LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0"
    ) as started:
        yield started


CRM_TABLES = ("customers", "transactions", "service_contacts", "surveys")


def write_crm(url: str, crm: object, **replaced: pd.DataFrame) -> None:
    """Store a synthetic CRM's tables (``replaced`` taking the place of some) at ``url``."""
    tables = {
        "customers": crm.customers.reset_index(),  # type: ignore[attr-defined]
        "transactions": crm.transactions,  # type: ignore[attr-defined]
        "service_contacts": crm.service_contacts,  # type: ignore[attr-defined]
        "surveys": crm.surveys,  # type: ignore[attr-defined]
        **replaced,
    }
    engine = sa.create_engine(url)
    try:
        for name, frame in tables.items():
            frame.to_sql(name, engine, index=False, if_exists="replace")
    finally:
        engine.dispose()


@pytest.fixture
def crm_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """A URL of an empty database of a backend: a file for SQLite and DuckDB, a new database on
    the test PostgreSQL server (named after the test, dropped afterwards)."""
    created: list[str] = []

    def url_for(backend: str) -> str:
        if backend == "sqlite":
            return f"sqlite:///{tmp_path / 'crm.sqlite'}"
        if backend == "duckdb":
            return f"duckdb:///{tmp_path / 'crm.duckdb'}"
        server = request.getfixturevalue("postgres_url")
        name = f"crm_{uuid.uuid4().hex[:12]}"
        admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as connection:
                quoted = admin.dialect.identifier_preparer.quote(name)
                connection.exec_driver_sql(f"CREATE DATABASE {quoted}")  # SQLAlchemy has none
        finally:
            admin.dispose()
        created.append(name)
        return str(sa.make_url(server).set(database=name).render_as_string(hide_password=False))

    yield url_for
    if created:
        admin = sa.create_engine(
            request.getfixturevalue("postgres_url"), isolation_level="AUTOCOMMIT"
        )
        try:
            with admin.connect() as connection:
                for name in created:
                    quoted = admin.dialect.identifier_preparer.quote(name)
                    connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)")
        finally:
            admin.dispose()


def crm_rates(crm: object) -> dict[str, float]:
    """The margin, promotion discount and return cost make_crm assumed, as Costs arguments."""
    assumed = crm.truth.costs  # type: ignore[attr-defined]
    return {
        "margin_rate": assumed.margin_rate,
        "promotion_discount_rate": assumed.promotion_discount_rate,
        "return_handling_cost": assumed.return_handling_cost,
    }


def read_all(url: str, table: str) -> pd.DataFrame:
    """Every row of ``table`` at ``url``."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return pd.read_sql(sa.select(sa.text("*")).select_from(sa.table(table)), connection)
    finally:
        engine.dispose()


def demo_config(folder: Path, crm: object, old: str = "", new: str = "") -> Path:
    """The demo's job configuration for ``crm``, in ``folder``, with ``old`` replaced once."""
    from cvalue.cli import DEMO_CONFIG

    path = folder / "cvalue.toml"
    end = crm.truth.observation_end.date()  # type: ignore[attr-defined]
    text = DEMO_CONFIG.format(database="", config=path, observation_end=end)
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return path


def run_cli(command: list[str], config: Path, url: str, *extra: str) -> tuple[int, str]:
    """Run a job command on ``config`` with the demo's URL variable set to ``url``.

    Returns the exit code and the output with its line wrapping undone.
    """
    from typer.testing import CliRunner

    from cvalue.cli import DEMO_URL_VARIABLE, app

    result = CliRunner().invoke(
        app, [*command, "--config", str(config), *extra], env={DEMO_URL_VARIABLE: url}
    )
    return result.exit_code, re.sub(r"\s+", " ", result.output)


@contextmanager
def small_disk(folder: Path, size: str, owner: tuple[int, int] | None = None) -> Iterator[Path]:
    """A tmpfs of ``size`` at ``folder`` (owned by ``(uid, gid)``); skips where none mounts."""
    folder.mkdir(exist_ok=True)
    options = f"size={size}"
    if owner is not None:
        options += f",mode=0700,uid={owner[0]},gid={owner[1]}"
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                             capture_output=True, text=True, check=False)  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip()})")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True, capture_output=True)


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    """``cvalue demo --customers 1000`` and the job run again on it without writing.

    ``(folder, JobResult)``, shared by the report's tests and its browser tests (one run per
    worker, not one per module). Read it only: build what a test needs with
    ``dataclasses.replace`` and write into the test's own folder.
    """
    from typer.testing import CliRunner

    from cvalue.cli import app
    from cvalue.config import load_config
    from cvalue.job import run

    folder = tmp_path_factory.mktemp("demo")
    invoked = CliRunner().invoke(app, ["demo", "--customers", "1000", "--dir", str(folder)])
    assert invoked.exit_code == 0, invoked.output
    environ = {"CVALUE_DEMO_DATABASE_URL": f"duckdb:///{folder / 'crm.duckdb'}"}
    config = load_config(folder / "cvalue.toml", environ=environ)
    return folder, run(config, environ=environ, write=False, report_path=None)
