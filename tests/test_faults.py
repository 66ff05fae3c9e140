"""Fault injection for the write-back, on real SQLite, DuckDB and PostgreSQL.

Each test breaks writes the way production does: the writing process killed at random moments,
the PostgreSQL server stopped in the middle of a write, a full disk, two runs at once, readers
polling while the table is swapped again and again. Each then asserts what the database holds:
the scores table holds exactly one whole run, its row in ``cvalue_tables`` agrees with it, the
history holds whole runs, and no staging table is left.

The writers that are killed or limited run in worker processes (``WORKER``), started in
parallel so that their imports overlap; the others run in this process. The PostgreSQL server
that is stopped, and the one whose tablespace is a small disk, is a cluster of this module's
own, so the session's shared server is never disturbed.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from cvalue.errors import DatabaseError, QueryError
from cvalue.io import writeback
from cvalue.io.writeback import MARKS_TABLE, STAGING_PREFIX, write_scores
from tests.conftest import small_disk

SEED = 20261206
KILLS = 4  # SIGKILLs per database, at seeded random moments
# disk full is a database's message for it, or the operating system's, or SQLite's for a write
# the file-size limit refused
DISK_FULL = r"(?i)full|no space left|too large|disk I/O error"

ZYGOTE = textwrap.dedent(
    """
    import json, os, resource, signal, sys, traceback
    import numpy as np, pandas as pd
    from cvalue.errors import CValueError
    from cvalue.io.writeback import write_scores

    def write(url, table, run, base_rows, mode="replace", chunk_size=50_000):
        n_rows = base_rows + run  # the row count tells the runs apart
        values = np.random.default_rng(run).random((n_rows, 3))
        frame = pd.DataFrame(values, columns=["clv", "p_alive", "expected_spend"],
                             index=pd.Index(np.arange(n_rows), name="customer_id"))
        write_scores(frame, url, table, mode=mode, run_id=f"run-{run}", chunk_size=chunk_size)

    def serve(commands, answers):
        def answer(**fields):
            answers.write(json.dumps(fields) + "\\n")
            answers.flush()

        for line in commands:
            command = json.loads(line)
            if command["do"] == "limit":
                # a write past the limit fails (EFBIG) instead of killing the process (SIGXFSZ)
                signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
                _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
                resource.setrlimit(resource.RLIMIT_FSIZE, (command["bytes"], hard))
                answer(limited=command["bytes"])
            elif command["do"] == "loop":  # until killed: replace the scores, append the history
                run = command["first"]
                while True:
                    write(command["url"], command["scores"], run, command["base_rows"],
                          chunk_size=command["chunk_size"])
                    answer(replaced=run)
                    write(command["url"], command["history"], run, command["base_rows"],
                          mode="append", chunk_size=command["chunk_size"])
                    answer(appended=run)
                    run += 1
            else:
                try:
                    write(**command["args"])
                except CValueError as exc:
                    answer(error=type(exc).__name__, message=str(exc))
                else:
                    answer(error=None)

    def child(fifos):
        with open(fifos["commands"]) as commands, open(fifos["answers"], "w") as answers:
            try:
                serve(commands, answers)
            except BaseException:  # anything but a cvalue error: the test shows it
                answers.write(json.dumps({"crash": traceback.format_exc()}) + "\\n")
                answers.flush()
                return 1
        return 0
    """
)
# a zygote's loop: for each line it reads, a child forked to run ``child(json.loads(line))``
FORK_LOOP = textwrap.dedent(
    """
    # the kernel reaps the children: this process never waits for them
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    print("ready", flush=True)
    for line in sys.stdin:
        pid = os.fork()
        if pid:
            print(pid, flush=True)
            continue
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os._exit(child(json.loads(line)))
    """
)


# --- worker processes -----------------------------------------------------------------------------


class Worker:
    """A process that writes scores when told to; forked by the zygote, it talks through FIFOs."""

    def __init__(self, pid: int, commands: Path, answers: Path) -> None:
        self.pid = pid
        # the same order as the worker opens them: opening a FIFO waits for the other end
        self.commands = commands.open("w")
        self.answers = answers.open()

    def send(self, **command: object) -> None:
        self.commands.write(json.dumps(command) + "\n")
        self.commands.flush()

    def read(self) -> dict[str, object]:
        line = self.answers.readline()
        assert line, f"worker {self.pid} died without a word"
        answer: dict[str, object] = json.loads(line)
        assert "crash" not in answer, answer["crash"]
        return answer

    def kill(self) -> list[dict[str, object]]:
        """SIGKILL; what it had said. Fails if it had crashed or exited before."""
        os.kill(self.pid, signal.SIGKILL)  # ProcessLookupError if it was gone already
        said = [json.loads(line) for line in self.answers.read().splitlines()]
        self.close()
        assert not [answer for answer in said if "crash" in answer], said
        return said

    def close(self) -> None:
        """Let it finish (its commands end), and close this end of the FIFOs."""
        for end in (self.commands, self.answers):
            with suppress(BrokenPipeError):  # killed: nobody reads the commands any more
                end.close()


class Zygote:
    """One process that imports cvalue once, then forks a worker in milliseconds when asked."""

    def __init__(self, folder: Path, script: str = ZYGOTE) -> None:
        self.folder = folder
        self.process = subprocess.Popen(
            [sys.executable, "-c", script + FORK_LOOP], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.forked: list[Worker] = []
        assert self.process.stdout is not None
        assert self.process.stdout.readline() == "ready\n", self.process.communicate()[1]

    def fork(self) -> Worker:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        fifos = {end: self.folder / f"{len(self.forked)}.{end}" for end in ("commands", "answers")}
        for path in fifos.values():
            os.mkfifo(path)
        self.process.stdin.write(json.dumps({end: str(path) for end, path in fifos.items()}) + "\n")
        self.process.stdin.flush()
        worker = Worker(int(self.process.stdout.readline()), **fifos)
        self.forked.append(worker)
        return worker

    def close(self) -> None:
        for worker in self.forked:
            worker.close()  # a worker that is still there finishes: its commands have ended
        self.process.kill()
        self.process.communicate(timeout=30)


@pytest.fixture(scope="module")
def zygote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Zygote]:
    started = Zygote(tmp_path_factory.mktemp("fifos"))
    try:
        yield started
    finally:
        started.close()


# --- databases ------------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "duckdb", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database that processes other than this one can write: a new file, or the server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'faults.sqlite'}"
    if request.param == "duckdb":
        return f"duckdb:///{tmp_path / 'faults.duckdb'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@contextmanager
def opened(url: str, **options: object) -> Iterator[sa.Engine]:
    """An engine, disposed on leaving (a DuckDB file is then free for another process)."""
    engine = sa.create_engine(url, **options)  # type: ignore[arg-type]
    try:
        yield engine
    finally:
        engine.dispose()


def unique_name(prefix: str = "scores") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def frame(run: int, base_rows: int) -> pd.DataFrame:
    """Scores of run ``run``: ``base_rows + run`` rows, so that the count tells the runs apart.

    The same columns as the workers write, so that either may append to the other's history.
    """
    n_rows = base_rows + run
    values = np.random.default_rng(run).random((n_rows, 3))
    return pd.DataFrame(values, columns=["clv", "p_alive", "expected_spend"],
                        index=pd.Index(np.arange(n_rows), name="customer_id"))  # fmt: skip


def runs_in(engine: sa.Engine, name: str) -> dict[str, int]:
    """``{run_id: rows}`` of the table."""
    table = sa.table(name, sa.column("run_id"))
    query = sa.select(table.c.run_id, sa.func.count()).group_by(table.c.run_id)
    with engine.connect() as connection:
        return {str(run): int(rows) for run, rows in connection.execute(query)}


def record_of(engine: sa.Engine, name: str) -> tuple[str, int, str] | None:
    """The table's row in cvalue_tables: run id, rows written, mode."""
    marks = sa.table(MARKS_TABLE, sa.column("table_name"), sa.column("run_id"),
                     sa.column("rows_written"), sa.column("mode"))  # fmt: skip
    query = sa.select(marks.c.run_id, marks.c.rows_written, marks.c.mode).where(
        marks.c.table_name == name
    )
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    assert len(rows) <= 1
    return (str(rows[0][0]), int(rows[0][1]), str(rows[0][2])) if rows else None


def assert_no_staging_tables(engine: sa.Engine) -> None:
    with engine.connect() as connection:
        names = sa.inspect(connection).get_table_names()
    assert [name for name in names if name.startswith(STAGING_PREFIX)] == []


def run_number(run_id: str) -> int:
    return int(run_id.removeprefix("run-"))


def assert_one_whole_run(engine: sa.Engine, name: str, base_rows: int) -> int:
    """The table holds one run, all its rows, and its record says so; returns the run."""
    runs = runs_in(engine, name)
    assert len(runs) == 1, runs
    ((run_id, rows),) = runs.items()
    assert rows == base_rows + run_number(run_id)
    assert record_of(engine, name) == (run_id, rows, "replace")
    return run_number(run_id)


# --- killed at random moments ---------------------------------------------------------------------


def named_session(url: str, session: str) -> str:
    """PostgreSQL: the URL with an application name, by which its sessions can be found."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return url
    return parsed.update_query_dict({"application_name": session}).render_as_string(False)


def wait_for_the_end_of(url: str, session: str) -> None:
    """PostgreSQL: wait until the server has ended a killed client's sessions.

    The server finishes what the client had sent (a COMMIT, too) before it notices the client
    is gone; what the test reads after that is final. PostgreSQL keeps one snapshot of
    ``pg_stat_activity`` for a whole transaction, so every look is a transaction of its own.
    """
    if sa.make_url(url).get_backend_name() != "postgresql":
        return
    activity = sa.table("pg_stat_activity", sa.column("application_name"))
    query = sa.select(sa.func.count()).select_from(activity)
    query = query.where(activity.c.application_name == session)
    with opened(url) as engine, engine.connect() as connection:
        for _ in range(300):
            running = connection.execute(query).scalar_one()
            connection.rollback()  # the next look sees a fresh snapshot
            if running == 0:
                return
            time.sleep(0.1)
    pytest.fail(f"the server still runs the killed worker's session {session!r} after 30 s")


def test_killed_writers_leave_whole_runs(database_url: str, zygote: Zygote):
    base_rows, chunk_size = 20_000, 2_000
    scores, history = unique_name(), unique_name("history")
    with opened(database_url) as engine:
        for mode, name in (("replace", scores), ("append", history)):
            write_scores(frame(0, base_rows), engine, name, mode=mode, run_id="run-0")  # type: ignore[arg-type]
    in_scores, in_history = 0, {0}
    for kill, delay in enumerate(np.random.default_rng(SEED).uniform(0.0, 0.6, size=KILLS)):
        first = max(in_scores, *in_history) + 1
        worker, session = zygote.fork(), f"cvalue-killed-{kill}"
        url = named_session(database_url, session)
        worker.send(do="loop", url=url, scores=scores, history=history, first=first,
                    base_rows=base_rows, chunk_size=chunk_size)  # fmt: skip
        time.sleep(delay)
        said = worker.kill()
        wait_for_the_end_of(database_url, session)
        replaced = [int(answer["replaced"]) for answer in said if "replaced" in answer]  # type: ignore[call-overload]
        appended = {int(answer["appended"]) for answer in said if "appended" in answer}  # type: ignore[call-overload]
        with opened(database_url) as engine:
            # the scores: the last run reported (or the earlier scores), or the one after it,
            # committed as the worker died
            last = max(replaced, default=in_scores)
            in_scores = assert_one_whole_run(engine, scores, base_rows)
            assert in_scores in {last, max(replaced, default=first - 1) + 1}
            # the history: every run so far, perhaps one more, each whole
            runs = {run_number(run): rows for run, rows in runs_in(engine, history).items()}
            known = in_history | appended
            assert known <= set(runs) <= known | {max(appended, default=first - 1) + 1}
            assert all(rows == base_rows + run for run, rows in runs.items())
            in_history = set(runs)
            top = max(runs)  # runs are appended in order: the latest is the record's
            assert record_of(engine, history) == (f"run-{top}", base_rows + top, "append")
            assert_no_staging_tables(engine)


# --- the PostgreSQL server stopped mid-write ------------------------------------------------------


class Cluster:
    """A PostgreSQL cluster of this module's own, to stop, restart and fill up."""

    def __init__(self, pg_bin: Path) -> None:
        self.pg_bin = pg_bin
        self.folder = Path(tempfile.mkdtemp(prefix="cvalue-faults-pg-"))
        if os.geteuid() == 0:  # initdb and pg_ctl refuse to run as root
            shutil.chown(self.folder, user="postgres", group="postgres")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self.url = f"postgresql+psycopg://cvalue@127.0.0.1:{self.port}/postgres"
        self.run("initdb", "-D", self.data, "-A", "trust", "-U", "cvalue", "--no-sync")
        self.start()

    @property
    def data(self) -> str:
        return str(self.folder / "data")

    def run(self, program: str, *arguments: str, check: bool = True) -> int:
        command = [str(self.pg_bin / program), *arguments]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if check and done.returncode != 0:
            pytest.fail(f"{program} {' '.join(arguments)} failed: {done.stderr}")
        return done.returncode

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(self.folder / "server.log")
        self.run("pg_ctl", "-D", self.data, "-o", options, "-w", "-l", log, "start")

    def stop(self, mode: str = "fast") -> None:
        self.run("pg_ctl", "-D", self.data, "-m", mode, "-w", "stop")

    def is_running(self) -> bool:
        return self.run("pg_ctl", "-D", self.data, "status", check=False) == 0


@pytest.fixture(scope="module")
def own_cluster() -> Iterator[Cluster]:
    """This module's PostgreSQL cluster; skips (fails in CI) without the server binaries."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), reverse=True)
    pg_ctl = shutil.which("pg_ctl") or (str(found[0]) if found else None)
    if pg_ctl is None:
        reason = "no PostgreSQL server binaries (install Debian's postgresql package)"
        if os.environ.get("CVALUE_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"CVALUE_REQUIRE_POSTGRES=1 but {reason}")
        pytest.skip(reason)
    cluster = Cluster(Path(pg_ctl).parent)
    try:
        yield cluster
    finally:
        if cluster.is_running():
            cluster.stop("immediate")
        shutil.rmtree(cluster.folder, ignore_errors=True)


@pytest.fixture
def cluster(own_cluster: Cluster) -> Cluster:
    """The module's cluster, running."""
    if not own_cluster.is_running():
        own_cluster.start()
    return own_cluster


class StopServerAt(threading.Thread):
    """Stops the server (``pg_ctl -m immediate``) once the writer has sent ``chunks`` chunks."""

    def __init__(self, cluster: Cluster, chunks: int, delay: float) -> None:
        super().__init__()
        self.cluster, self.chunks, self.delay = cluster, chunks, delay
        self.sent = threading.Semaphore(0)
        self.has_stopped = False

    def run(self) -> None:
        if all(self.sent.acquire(timeout=30) for _ in range(self.chunks)):
            time.sleep(self.delay)
            self.has_stopped = self.cluster.run("pg_ctl", "-D", self.cluster.data, "-m",
                                                "immediate", "stop", check=False) == 0  # fmt: skip


@pytest.mark.postgres
@pytest.mark.parametrize("mode", ["replace", "append"])
def test_server_stopped_mid_write(cluster: Cluster, monkeypatch, mode: str):
    name, base_rows = unique_name(), 50_000
    with opened(cluster.url) as engine:
        write_scores(frame(0, base_rows), engine, name, mode=mode, run_id="run-0")  # type: ignore[arg-type]
    rng = np.random.default_rng(SEED + (mode == "append"))
    stopper = StopServerAt(cluster, chunks=int(rng.integers(1, 6)), delay=rng.uniform(0, 0.05))
    insert = writeback._insert

    def counted_insert(connection: sa.Connection, table: sa.Table, chunk: pd.DataFrame) -> None:
        insert(connection, table, chunk)
        stopper.sent.release()

    monkeypatch.setattr(writeback, "_insert", counted_insert)
    stopper.start()
    try:
        with pytest.raises(DatabaseError) as caught:
            write_scores(frame(1, base_rows), cluster.url, name, mode=mode, run_id="run-1",  # type: ignore[arg-type]
                         chunk_size=5_000)  # fmt: skip
    finally:
        stopper.join(timeout=60)
    assert stopper.has_stopped
    # a lost server is worth retrying: not a statement's fault
    assert not isinstance(caught.value, QueryError), caught.value
    assert f"127.0.0.1:{cluster.port}" in str(caught.value)
    assert isinstance(caught.value.__cause__, sa.exc.DBAPIError)
    cluster.start()
    with opened(cluster.url) as engine:
        assert runs_in(engine, name) == {"run-0": base_rows}
        assert record_of(engine, name) == ("run-0", base_rows, mode)
        assert_no_staging_tables(engine)
        write_scores(frame(2, base_rows), engine, name, mode=mode, run_id="run-2")  # type: ignore[arg-type]
        assert runs_in(engine, name)["run-2"] == base_rows + 2


# --- disk full ------------------------------------------------------------------------------------


def assert_full_disk_error(error: dict[str, object] | BaseException) -> None:
    """A cvalue error that says the disk is full, and not a statement's fault."""
    if isinstance(error, BaseException):
        error = {"error": type(error).__name__, "message": str(error)}
    assert error["error"] == "DatabaseError", error
    assert re.search(DISK_FULL, str(error["message"])), error


@pytest.mark.parametrize("backend", ["sqlite", "duckdb"])
def test_full_disk_leaves_the_previous_scores(tmp_path: Path, backend: str):
    with small_disk(tmp_path / "disk", "4m") as disk:
        url = f"{backend}:///{disk / 'scores.db'}"
        name = unique_name()
        write_scores(frame(0, 2_000), url, name, run_id="run-0")
        with pytest.raises(DatabaseError) as caught:
            write_scores(frame(1, 400_000), url, name, run_id="run-1", chunk_size=20_000)
        assert_full_disk_error(caught.value)
        with opened(url) as engine:
            assert assert_one_whole_run(engine, name, 2_000) == 0
            assert_no_staging_tables(engine)


@pytest.mark.parametrize("backend", ["sqlite", "duckdb"])
def test_file_size_limit_leaves_the_previous_scores(tmp_path: Path, backend: str, zygote: Zygote):
    # where no tmpfs can be mounted, a file-size limit stands in for a full disk
    url, name = f"{backend}:///{tmp_path / 'scores.db'}", unique_name()
    write_scores(frame(0, 2_000), url, name, run_id="run-0")
    limit = (tmp_path / "scores.db").stat().st_size + 1_000_000
    writer = zygote.fork()
    writer.send(do="limit", bytes=limit)
    assert writer.read() == {"limited": limit}
    writer.send(do="write", args={"url": url, "table": name, "run": 1, "base_rows": 400_000,
                                  "chunk_size": 20_000})  # fmt: skip
    assert_full_disk_error(writer.read())
    writer.close()  # it finishes, and lets go of the DuckDB file
    with opened(url) as engine:
        assert assert_one_whole_run(engine, name, 2_000) == 0
        assert_no_staging_tables(engine)
    # the limit, not the write itself, made it fail: without it the same write succeeds
    control = zygote.fork()
    control.send(do="write", args={"url": url, "table": name, "run": 1, "base_rows": 400_000})
    assert control.read() == {"error": None}


@pytest.mark.postgres
def test_full_tablespace_leaves_the_previous_scores(cluster: Cluster):
    from psycopg import sql

    server = pwd.getpwnam("postgres") if os.geteuid() == 0 else pwd.getpwuid(os.geteuid())
    space, name = unique_name("small"), unique_name()
    # in the cluster's folder, which the server may enter
    with small_disk(cluster.folder / "disk", "4m", (server.pw_uid, server.pw_gid)) as disk:
        # the staging table goes to the small tablespace; the write-ahead log stays on the disk
        create = sql.SQL("CREATE TABLESPACE {} LOCATION {}").format(
            sql.Identifier(space), sql.Literal(str(disk))
        )
        with opened(cluster.url, isolation_level="AUTOCOMMIT") as admin, admin.connect() as c:
            c.connection.driver_connection.execute(create)  # type: ignore[union-attr]
        options = {"connect_args": {"options": f"-c default_tablespace={space}"}}
        try:
            with opened(cluster.url, **options) as engine:
                write_scores(frame(0, 2_000), engine, name, run_id="run-0")
                with pytest.raises(DatabaseError) as caught:
                    write_scores(frame(1, 400_000), engine, name, chunk_size=20_000)
                assert_full_disk_error(caught.value)
                assert assert_one_whole_run(engine, name, 2_000) == 0
                assert_no_staging_tables(engine)
        finally:
            with opened(cluster.url, isolation_level="AUTOCOMMIT") as admin, admin.connect() as c:
                c.execute(sa.schema.DropTable(sa.table(name), if_exists=True))
                c.execute(sa.schema.DropTable(sa.table(MARKS_TABLE), if_exists=True))
                drop = sql.SQL("DROP TABLESPACE {}").format(sql.Identifier(space))
                c.connection.driver_connection.execute(drop)  # type: ignore[union-attr]
            cluster.stop()  # lets go of every file on the small disk before it is unmounted


# --- two runs at once -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "is_new"), [("replace", False), ("replace", True), ("append", False)]
)
def test_two_runs_at_once_leave_one_whole_run(
    database_url: str, zygote: Zygote, mode: str, is_new: bool
):
    name, base_rows = unique_name(), 80_000
    if not is_new:
        with opened(database_url) as engine:
            write_scores(frame(0, base_rows), engine, name, mode=mode, run_id="run-0")  # type: ignore[arg-type]
    workers = [zygote.fork(), zygote.fork()]
    for run, worker in enumerate(workers, start=1):
        worker.send(do="write", args={"url": database_url, "table": name, "run": run,
                                      "base_rows": base_rows, "mode": mode})  # fmt: skip
    outcomes = [worker.read() for worker in workers]
    # each finished, or failed with a cvalue error (the worker answers only for those)
    finished = {f"run-{run}" for run, outcome in enumerate(outcomes, 1) if outcome["error"] is None}
    assert finished, outcomes
    for outcome in outcomes:
        # a concurrent run is worth retrying: a DatabaseError, not a QueryError
        assert outcome["error"] in (None, "DatabaseError"), outcome
    with opened(database_url) as engine:
        runs = runs_in(engine, name)
        assert_no_staging_tables(engine)
        if mode == "replace":
            assert set(runs) <= finished
            assert assert_one_whole_run(engine, name, base_rows) in {1, 2}
        else:
            assert set(runs) == finished | {"run-0"}
            assert all(rows == base_rows + run_number(run) for run, rows in runs.items())
            recorded = record_of(engine, name)
            assert recorded is not None
            assert recorded[0] in finished


# --- readers during swaps -------------------------------------------------------------------------


def reader_options(url: str) -> tuple[str, dict[str, object]]:
    """A read-only way in, where the database offers one in a process that also writes."""
    backend = sa.make_url(url).get_backend_name()
    if backend == "sqlite":
        return f"sqlite:///file:{sa.make_url(url).database}?mode=ro&uri=true", {}
    if backend == "postgresql":
        return url, {"connect_args": {"options": "-c default_transaction_read_only=on"}}
    # DuckDB: one read-write instance per file and process; the reader has its own connection
    return url, {}


def test_readers_see_one_whole_run_during_swaps(database_url: str):
    name, sizes = unique_name(), {"run-0": 1_500, "run-1": 2_500}
    scores = sa.table(name, sa.column("run_id"))
    marks = sa.table(MARKS_TABLE, sa.column("table_name"), sa.column("run_id"),
                     sa.column("rows_written"))  # fmt: skip
    # one statement, so one snapshot: the table and its record, as a reader finds them together
    together = (
        sa.select(scores.c.run_id, sa.func.count(), marks.c.run_id, marks.c.rows_written)
        .select_from(scores.join(marks, sa.true()))
        .where(marks.c.table_name == name)
        .group_by(scores.c.run_id, marks.c.run_id, marks.c.rows_written)
    )
    frames = {run: frame(0, rows) for run, rows in sizes.items()}
    seen: list[list[tuple[object, ...]]] = []
    failures: list[BaseException] = []
    stop = threading.Event()
    with opened(database_url) as writer:
        write_scores(frames["run-0"], writer, name, run_id="run-0")
        url, options = reader_options(database_url)
        with opened(url, **options) as reader:

            def poll() -> None:
                while not stop.is_set():
                    try:
                        with reader.connect() as connection:
                            seen.append([tuple(row) for row in connection.execute(together)])
                    except sa.exc.DBAPIError as exc:
                        failures.append(exc)
                        return

            thread = threading.Thread(target=poll)
            thread.start()
            try:
                for swap in range(8):
                    run = f"run-{(swap + 1) % 2}"
                    write_scores(frames[run], writer, name, run_id=run, chunk_size=500)
            finally:
                stop.set()
                thread.join(timeout=60)
    assert failures == []
    assert len(seen) > 8
    for rows in seen:
        # never a missing or empty table, never two runs, never a record of another run
        assert len(rows) == 1, rows
        ((run, count, recorded_run, recorded_rows),) = rows
        assert run == recorded_run
        assert count == recorded_rows == sizes[str(run)]
    assert {rows[0][0] for rows in seen} == set(sizes)


@pytest.mark.postgres
def test_postgres_a_repeatable_read_snapshot_from_before_a_swap_sees_no_rows(postgres_url: str):
    # PostgreSQL's DDL is not MVCC-safe: a snapshot older than the new table sees none of its
    # rows (docs/crm.md says so; readers in READ COMMITTED, the default, are not affected)
    name = unique_name()
    with (
        opened(postgres_url) as writer,
        opened(postgres_url, isolation_level="REPEATABLE READ") as reader,
    ):
        write_scores(frame(0, 100), writer, name, run_id="run-0")
        with reader.connect() as connection:
            connection.execute(sa.select(1))  # the snapshot is taken here
            write_scores(frame(1, 100), writer, name, run_id="run-1")
            query = sa.select(sa.func.count()).select_from(sa.table(name))
            assert connection.execute(query).scalar_one() == 0
        assert runs_in(writer, name) == {"run-1": 101}
