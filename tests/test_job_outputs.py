"""The job's outputs: every location checked before reading, the report published with the scores
or not at all, and the scores never written over a table the job reads or did not create."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from cvalue.cli import EXIT_BAD_INPUT, EXIT_DATABASE
from cvalue.config.loading import load_config
from cvalue.datasets import make_crm
from cvalue.errors import OutputError, ReportError
from cvalue.job import check_report_path, run
from cvalue.job._outputs import StagedReport
from cvalue.report import at_risk_csv_path, build_report
from cvalue.segments import at_risk_valuable
from tests.conftest import demo_config, read_all, run_cli, small_disk, write_crm

runner = CliRunner()
VARIABLE = "CVALUE_DEMO_DATABASE_URL"


@pytest.fixture(scope="module")
def crm() -> object:
    return make_crm(300, seed=4)


@pytest.fixture
def scored(crm: object, tmp_path: Path) -> tuple[Path, str, pd.DataFrame]:
    """A DuckDB CRM already scored once: its config, URL and scores."""
    url = f"duckdb:///{tmp_path / 'crm.duckdb'}"
    write_crm(url, crm)
    config = demo_config(tmp_path, crm)
    code, output = run_cli(["score"], config, url)
    assert code == 0, output
    return config, url, read_all(url, "customer_value")


def _no_partial_reports(folder: Path) -> None:
    assert not list(folder.rglob("*.partial")), list(folder.rglob("*.partial"))


# --- item 5: report locations checked first, report published with the scores --------------------


def test_a_report_path_that_is_a_folder_fails_before_the_scores_are_touched(
    scored: tuple[Path, str, pd.DataFrame], tmp_path: Path
) -> None:
    config, url, before = scored
    folder = tmp_path / "reports"
    folder.mkdir()
    code, output = run_cli(["score"], config, url, "--report", str(folder))
    assert code == EXIT_BAD_INPUT, output
    assert "is a folder; give a file name" in output
    pd.testing.assert_frame_equal(read_all(url, "customer_value"), before)


@pytest.mark.parametrize("where", ["under_a_file", "proc"])
def test_a_report_folder_where_nothing_can_be_written_fails_first(
    scored: tuple[Path, str, pd.DataFrame], tmp_path: Path, where: str
) -> None:
    config, url, before = scored
    if where == "under_a_file":
        blocker = tmp_path / "plain-file"
        blocker.write_text("not a folder")
        target = blocker / "report.html"
    else:  # /proc takes no new files, whoever asks (root included)
        target = Path("/proc/cvalue-report/report.html")
    text = config.read_text().replace('report = "report.html"', f"report = {str(target)!r}")
    config.write_text(text)
    for command in ("validate", "score"):
        code, output = run_cli([command], config, url)
        assert code == EXIT_BAD_INPUT, (command, output)
        assert "the report path" in output
    pd.testing.assert_frame_equal(read_all(url, "customer_value"), before)


def test_a_failed_write_publishes_no_report_and_leaves_no_partial_file(
    scored: tuple[Path, str, pd.DataFrame], tmp_path: Path
) -> None:
    config, url, before = scored
    database = url.removeprefix("duckdb:///")
    report = tmp_path / "report.html"
    report.unlink()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, duckdb; c = duckdb.connect(sys.argv[1], "
         "read_only=True); print('holding', flush=True); sys.stdin.read()", database],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "holding"
        code, output = run_cli(["score"], config, url)
    finally:
        holder.communicate("", timeout=60)
    assert code == EXIT_DATABASE, output
    assert not report.exists()
    _no_partial_reports(tmp_path)
    pd.testing.assert_frame_equal(read_all(url, "customer_value"), before)


def test_the_report_names_the_run_it_was_published_with(
    scored: tuple[Path, str, pd.DataFrame], tmp_path: Path
) -> None:
    _, _, scores = scored
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert f"run {scores['run_id'].iloc[0]}" in page
    _no_partial_reports(tmp_path)


def test_check_report_path_accepts_a_new_file_in_new_folders(tmp_path: Path) -> None:
    check_report_path(tmp_path / "a" / "b" / "report.html")
    assert not (tmp_path / "a").exists()  # nothing is made by checking


def test_a_report_that_cannot_be_moved_into_place_says_what_was_committed(tmp_path: Path) -> None:
    staged = StagedReport(tmp_path / "gone" / "report.html", "0123456789abcdef")
    staged.path.parent.mkdir(parents=True)
    staged.path.write_text("<html></html>")
    (tmp_path / "gone" / "report.html").mkdir()  # a folder took the report's place
    with pytest.raises(ReportError, match="the scores were written") as caught:
        staged.publish(scores_written=True)
    assert caught.value.scores_written
    assert isinstance(caught.value, OutputError)
    assert not staged.path.exists()


# --- item 4: the scores never replace a table the job reads or a table cvalue did not create ----


def test_scores_table_set_to_the_source_table_is_refused_on_sqlite(
    crm: object, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'crm.sqlite'}"
    write_crm(url, crm)
    before = read_all(url, "transactions")
    config = demo_config(tmp_path, crm, 'scores_table = "customer_value"',
                     'scores_table = "transactions"')  # fmt: skip
    for command in ("validate", "score"):
        code, output = run_cli([command], config, url)
        assert code == EXIT_BAD_INPUT, (command, output)
        assert "scores_table = 'transactions' is a table this file reads" in output
    pd.testing.assert_frame_equal(read_all(url, "transactions"), before)


def test_a_query_source_table_as_scores_table_is_refused_as_foreign(
    crm: object, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'crm.sqlite'}"
    write_crm(url, crm)
    before = read_all(url, "transactions")
    config = demo_config(tmp_path, crm, 'scores_table = "customer_value"',
                     'scores_table = "transactions"')  # fmt: skip
    text = config.read_text().replace('table = "transactions"',
                                      'query = "SELECT * FROM transactions"', 1)  # fmt: skip
    config.write_text(text)
    code, output = run_cli(["score"], config, url, "--json")
    assert code == EXIT_BAD_INPUT, output
    assert "overwrite_foreign" in json.loads(output)["message"]
    pd.testing.assert_frame_equal(read_all(url, "transactions"), before)


def test_overwrite_foreign_takes_over_a_table_cvalue_did_not_create(
    crm: object, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'crm.sqlite'}"
    write_crm(url, crm, old_scores=pd.DataFrame({"customer_id": [1, 2], "score": [0.1, 0.2]}))
    config = demo_config(tmp_path, crm, 'scores_table = "customer_value"',
                     'scores_table = "old_scores"')  # fmt: skip
    code, output = run_cli(["score"], config, url)
    assert code == EXIT_BAD_INPUT, output
    assert len(read_all(url, "old_scores")) == 2
    allowed = config.read_text().replace("[outputs]\n", "[outputs]\noverwrite_foreign = true\n")
    config.write_text(allowed)
    code, output = run_cli(["score"], config, url)
    assert code == 0, output
    assert len(read_all(url, "old_scores")) == 300


def test_validate_refuses_a_foreign_scores_table_as_score_would(
    crm: object, tmp_path: Path
) -> None:
    url = f"duckdb:///{tmp_path / 'crm.duckdb'}"
    write_crm(url, crm, old_scores=pd.DataFrame({"customer_id": [1], "score": [0.5]}))
    config = demo_config(tmp_path, crm, 'scores_table = "customer_value"',
                     'scores_table = "old_scores"')  # fmt: skip
    code, output = run_cli(["validate"], config, url)
    assert code == EXIT_BAD_INPUT, output
    assert "was not written by cvalue" in output
    assert len(read_all(url, "old_scores")) == 1


def test_a_report_folder_without_free_space_fails_first(
    scored: tuple[Path, str, pd.DataFrame], tmp_path: Path
) -> None:
    config, url, before = scored
    with small_disk(tmp_path / "small", "1m") as folder:
        text = config.read_text().replace('report = "report.html"',
                                          f"report = {str(folder / 'report.html')!r}")  # fmt: skip
        config.write_text(text)
        code, output = run_cli(["score"], config, url)
        assert not list(folder.iterdir())
    assert code == EXIT_BAD_INPUT, output
    assert "MiB free" in output
    pd.testing.assert_frame_equal(read_all(url, "customer_value"), before)


def test_the_report_marks_cohorts_of_fewer_than_100_customers(
    scored: tuple[Path, str, pd.DataFrame], tmp_path: Path
) -> None:
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "cohorts have fewer than 100 customers: marked * in the table" in page
    assert "lifecycle: " in page  # the warning is one of the run's notes


# --- the at-risk list's CSV: staged and published with the report, or not at all ---------------


def _stage(staged: StagedReport, *, report: str, csv: str | None) -> None:
    staged.path.parent.mkdir(parents=True, exist_ok=True)
    staged.path.write_text(report)
    if csv is not None:
        at_risk_csv_path(staged.path).write_text(csv)


def test_the_report_and_its_csv_are_published_together(tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    csv = tmp_path / "report_at_risk.csv"
    first = StagedReport(target, "a" * 32)
    _stage(first, report="first", csv="customer_id\n1\n")
    assert not target.exists()
    assert not csv.exists()
    assert first.publish(scores_written=True) == target
    assert (target.read_text(), csv.read_text()) == ("first", "customer_id\n1\n")
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted([csv.name, target.name])
    # a run without a list: the earlier run's list goes, it is not this report's
    second = StagedReport(target, "b" * 32)
    _stage(second, report="second", csv=None)
    second.publish(scores_written=True)
    assert target.read_text() == "second"
    assert not csv.exists()
    _no_partial_reports(tmp_path)


def test_a_failed_publish_puts_the_previous_report_and_csv_back(tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    csv = tmp_path / "report_at_risk.csv"
    target.write_text("old report")
    csv.write_text("old list")
    staged = StagedReport(target, "c" * 32)
    _stage(staged, report="new report", csv="new list")
    moved = Path.replace

    def refuse_the_report(self: Path, to: Path) -> Path:  # the CSV moves, then the report fails
        if to == target and self == staged.path:
            raise PermissionError(13, "Permission denied")
        return moved(self, to)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Path, "replace", refuse_the_report)
        with pytest.raises(ReportError, match="nothing was written"):
            staged.publish(scores_written=False)
    assert (target.read_text(), csv.read_text()) == ("old report", "old list")
    _no_partial_reports(tmp_path)
    # without an earlier list, the new one is taken away again
    csv.unlink()
    staged = StagedReport(target, "d" * 32)
    _stage(staged, report="new report", csv="new list")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Path, "replace", refuse_the_report)
        with pytest.raises(ReportError):
            staged.publish(scores_written=True)
    assert target.read_text() == "old report"
    assert not csv.exists()
    _no_partial_reports(tmp_path)


def test_a_failed_run_leaves_neither_the_report_nor_its_csv(crm: object, tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path / 'crm.duckdb'}"
    write_crm(url, crm)
    environ = {VARIABLE: url}
    config = load_config(demo_config(tmp_path, crm), environ=environ)
    result = run(config, environ=environ, write=False, report_path=None)
    assert result.scores is not None
    listed = at_risk_valuable(result.scores["clv_5y"], result.scores["p_alive"], top=10)
    with_list = dataclasses.replace(result, at_risk=listed)
    target = tmp_path / "out" / "report.html"
    staged = StagedReport(target, "e" * 32)
    build_report(with_list, staged.path)
    assert at_risk_csv_path(staged.path).is_file()
    staged.discard()  # the write of the scores failed
    assert not target.exists()
    assert not at_risk_csv_path(target).exists()
    _no_partial_reports(tmp_path)
    staged = StagedReport(target, "f" * 32)
    build_report(with_list, staged.path)
    staged.publish(scores_written=True)
    page = target.read_text(encoding="utf-8")
    assert 'href="report_at_risk.csv"' in page  # the link holds once published
    published = pd.read_csv(at_risk_csv_path(target), index_col="customer_id")
    pd.testing.assert_frame_equal(published, listed, check_index_type=False)
    _no_partial_reports(tmp_path)
