"""Fault injection for the whole job: ``cvalue score`` killed at random moments.

Each kill leaves the scores table with one whole run, its row in ``cvalue_tables`` agreeing with
it, no staging table, and the previous report whole (tests/test_faults.py breaks the write-back
alone the same ways).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import closing, suppress
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from cvalue.cli import DEMO_URL_VARIABLE
from cvalue.datasets import make_crm
from cvalue.io.writeback import MARKS_TABLE, STAGING_PREFIX
from tests.conftest import demo_config, read_all, write_crm
from tests.test_faults import SEED, Zygote

# The job's processes are forked from one that has imported the command line once: each run is
# the job alone (``python -m cvalue``'s seconds of imports are paid once, and every kill lands in
# the job's own work). The last run of each test is a real ``python -m cvalue`` all the same.
JOB_ZYGOTE = textwrap.dedent(
    """
    import json, os, signal, sys, traceback
    from cvalue.cli import main

    def child(job):
        os.environ.update(job["env"])
        for fd, path in ((1, job["stdout"]), (2, job["stderr"])):
            os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
        sys.argv = ["cvalue", *job["argv"]]
        code = 1
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            traceback.print_exc()
        sys.stdout.flush()
        sys.stderr.flush()
        with open(job["status"] + ".part", "w") as status:  # whole, or not there
            status.write(str(code))
        os.rename(job["status"] + ".part", job["status"])
        return code
    """
)


class Job:
    """A ``cvalue`` command in a process forked by the job zygote."""

    def __init__(self, pid: int, folder: Path) -> None:
        self.pid, self.folder = pid, folder

    def wait(self, timeout: float = 300.0) -> tuple[int, str]:
        """Its exit code and its output, once it has finished."""
        status = self.folder / "status"
        deadline = time.monotonic() + timeout
        while not status.exists():
            assert time.monotonic() < deadline, f"job {self.pid} still runs after {timeout} s"
            time.sleep(0.02)
        self._gone()
        output = (self.folder / "stdout").read_text() + (self.folder / "stderr").read_text()
        return int(status.read_text()), output

    def kill(self) -> None:
        """SIGKILL, and wait until the kernel has reaped it (its files and locks are free)."""
        with suppress(ProcessLookupError):  # it may have finished before the kill
            os.kill(self.pid, signal.SIGKILL)
        self._gone()

    def _gone(self) -> None:
        deadline = time.monotonic() + 60
        while Path(f"/proc/{self.pid}").exists():
            assert time.monotonic() < deadline, f"job {self.pid} still there 60 s after its end"
            time.sleep(0.01)


class JobZygote(Zygote):
    """One process that imports the command line once, then forks a job in milliseconds."""

    def __init__(self, folder: Path) -> None:
        super().__init__(folder, JOB_ZYGOTE)
        self.started = 0

    def start(self, argv: list[str], env: dict[str, str]) -> Job:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.started += 1
        folder = self.folder / f"job-{self.started}"
        folder.mkdir()
        job = {"argv": argv, "env": env, "status": str(folder / "status"),
               "stdout": str(folder / "stdout"), "stderr": str(folder / "stderr")}  # fmt: skip
        self.process.stdin.write(json.dumps(job) + "\n")
        self.process.stdin.flush()
        return Job(int(self.process.stdout.readline()), folder)


@pytest.fixture(scope="module")
def job_zygote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JobZygote]:
    with closing(JobZygote(tmp_path_factory.mktemp("jobs"))) as started:
        yield started


def _score(config: Path) -> list[str]:
    return ["score", "--config", str(config), "--json"]


@pytest.mark.parametrize("backend", ["sqlite", "duckdb"])
def test_a_killed_job_leaves_one_whole_run_and_a_whole_report(
    tmp_path: Path, crm_url, backend: str, job_zygote: JobZygote
) -> None:
    crm = make_crm(300, seed=8)
    url = crm_url(backend)
    write_crm(url, crm)
    config = demo_config(tmp_path, crm)
    variables = {DEMO_URL_VARIABLE: url}
    started = time.perf_counter()
    code, output = job_zygote.start(_score(config), variables).wait()
    duration = time.perf_counter() - started
    assert code == 0, output
    n_customers = len(read_all(url, "customer_value"))
    report = tmp_path / "report.html"
    rng = np.random.default_rng(SEED)
    for delay in rng.uniform(0.2, 1.0, size=3) * duration:  # spread over a whole run
        job = job_zygote.start(_score(config), variables)
        time.sleep(delay)
        job.kill()
        scores = read_all(url, "customer_value")
        assert len(scores) == n_customers
        assert (scores["run_id"] == scores["run_id"].iloc[0]).all()  # one run, whole
        marks = read_all(url, MARKS_TABLE)
        assert marks.loc[marks["table_name"] == "customer_value", "run_id"].tolist() == [
            scores["run_id"].iloc[0]
        ]
        engine = sa.create_engine(url)
        try:
            names = sa.inspect(engine).get_table_names()
        finally:
            engine.dispose()
        assert not [name for name in names if name.startswith(STAGING_PREFIX)]
        assert report.read_text(encoding="utf-8").rstrip().endswith("</html>")
    again = subprocess.run([sys.executable, "-m", "cvalue", *_score(config)],
                           env={**os.environ, **variables}, capture_output=True, text=True,
                           timeout=300, check=False)  # fmt: skip
    assert again.returncode == 0, again.stdout + again.stderr
    assert json.loads(again.stdout)["rows_written"] == n_customers
