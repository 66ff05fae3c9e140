"""Where the job's outputs go, checked before the run reads anything, and the report's staging.

A run that fails after hours of work because its report folder is read-only, or that replaces
the scores and then fails to write the report, breaks the promise that a failed run changes
nothing. So every output location is checked first (:func:`check_outputs`), and the report and
the files that go with it (its at-risk list as CSV) are rendered into a hidden folder beside the
report's target before the scores are swapped in, then moved into place by renames
(:class:`StagedReport`): a run either publishes the scores and all of the report's files, or
leaves the scores table as it was and no new report file.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

import sqlalchemy as sa

from cvalue.config import JobConfig
from cvalue.errors import OutputError, ReportError
from cvalue.io import engine_for
from cvalue.io.writeback import check_scores_table
from cvalue.report import at_risk_csv_path

__all__ = [
    "MIN_FREE_BYTES",
    "StagedReport",
    "check_outputs",
    "check_report_path",
    "protected_tables",
]

MIN_FREE_BYTES = 64 * 2**20
"""Free space a folder that receives the report or a database file must have (64 MiB)."""


def _nearest_folder(path: Path) -> Path:
    """The deepest existing ancestor of ``path`` (the folder a new file would be made in)."""
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def _check_folder(folder: Path, what: str) -> None:
    """OutputError unless a file can be created in ``folder`` and it has free space."""
    if not folder.is_dir():
        raise OutputError(
            f"{what}: {str(folder)!r} is not a folder (a file is in the way); choose another path"
        )
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".cvalue-probe-"):
            pass
    except OSError as exc:
        raise OutputError(
            f"{what}: cannot create files in {str(folder)!r} ({exc.strerror or exc}); choose a "
            "writable folder, or change its permissions"
        ) from None
    free = shutil.disk_usage(folder).free
    if free < MIN_FREE_BYTES:
        raise OutputError(
            f"{what}: only {free / 2**20:,.1f} MiB free in {str(folder)!r}, under the "
            f"{MIN_FREE_BYTES / 2**20:,.0f} MiB a run needs there; free some space or choose "
            "another folder"
        )


def check_report_path(path: Path) -> None:
    """OutputError unless the report can be written at ``path`` (a file, in a writable folder)."""
    what = f"the report path {str(path)!r}"
    if path.is_dir():
        raise OutputError(
            f"{what} is a folder; give a file name, such as {str(path / 'report.html')!r}"
        )
    if path.exists() and not path.is_file():
        raise OutputError(f"{what} exists and is not a regular file; choose another path")
    _check_folder(_nearest_folder(path), what)


def _database_file(url: sa.URL) -> Path | None:
    """The file of an embedded database (SQLite, DuckDB), or ``None``."""
    if url.get_backend_name() not in ("sqlite", "duckdb"):
        return None
    if url.database in (None, "", ":memory:"):
        return None
    return Path(url.database)


def protected_tables(config: JobConfig) -> list[str]:
    """The tables the scores may never replace: those the job reads, when in the same database."""
    if config.outputs.url_env not in (None, config.source.url_env):
        return []
    return [table if schema is None else f"{schema}.{table}"
            for schema, table in config.tables_read()]  # fmt: skip


def check_outputs(
    config: JobConfig,
    *,
    write: bool,
    report_path: Path | None,
    environ: Mapping[str, str] | None = None,
) -> None:
    """Check the report path and, when ``write``, the scores database, before reading anything.

    Raises
    ------
    OutputError
        For a report path that is a folder, a folder where no file can be created, or too
        little free space there or beside an embedded database file.
    ForeignTableError
        For a scores table the job reads, or that exists and cvalue did not write (unless
        ``[outputs] overwrite_foreign``).
    ConfigError
        When the scores would go to a database but no URL is configured for it.
    """
    if report_path is not None:
        check_report_path(report_path)
    if not write:
        return
    url = config.scores_url(environ)
    database = _database_file(sa.make_url(url))
    if database is not None:
        _check_folder(_nearest_folder(database), f"the scores database {str(database)!r}")
        if not database.exists():
            return  # a new file holds no table to protect, and checking must not create it
    outputs = config.outputs
    # read-only where that matters (a DuckDB file a BI tool holds): the check writes nothing
    with engine_for(url, read_only=True) as engine:
        check_scores_table(
            engine, outputs.scores_table, mode=outputs.write_mode,
            schema=outputs.schema_name, overwrite_foreign=outputs.overwrite_foreign,
            protected=protected_tables(config),
        )  # fmt: skip


class StagedReport:
    """A report and its files rendered into a hidden folder beside ``target``, published by renames.

    ``path`` is where to render the report: a file of ``target``'s name in the hidden folder
    ``folder``, so that the files rendered beside it (the at-risk CSV,
    :func:`cvalue.report.at_risk_csv_path`) have their final names and the report's links to
    them hold once published. :meth:`publish` moves the CSV, then the report, into place; a CSV
    this run did not write is removed from beside the target (it would be another run's list).
    If a move fails, the files moved before it are put back as they were. :meth:`discard`
    removes the hidden folder (after a failed write of the scores).
    """

    def __init__(self, target: Path, run_id: str) -> None:
        self.target = target
        self.folder = target.with_name(f".{target.name}.{run_id[:12]}.partial")
        self.path = self.folder / target.name

    @property
    def targets(self) -> list[Path]:
        """Where the published files go: the report's files first, the report itself last."""
        return [at_risk_csv_path(self.target), self.target]

    def discard(self) -> None:
        """Remove the hidden folder and everything rendered into it, if any."""
        if self.folder.exists():
            shutil.rmtree(self.folder)

    def publish(self, *, scores_written: bool) -> Path:
        """Move the rendered files to their targets; ReportError (naming what was committed)."""
        try:
            self._move_into_place()
        except OSError as exc:
            self.discard()
            committed = "the scores were written" if scores_written else "nothing was written"
            raise ReportError(
                f"the report could not be moved to {str(self.target)!r} "
                f"({exc.strerror or exc}); {committed}",
                scores_written=scores_written,
            ) from None
        self.discard()  # the emptied folder and the previous files kept for a roll back
        return self.target

    def _move_into_place(self) -> None:
        """Each staged file renamed to its target, or the target removed when none is staged.

        The previous file at each target is kept in the folder (a hard link, so that the target
        never disappears before its replacement arrives) until every move has succeeded; on a
        failure the moves already made are undone.
        """
        done: list[tuple[Path, Path | None]] = []
        try:
            for target in self.targets:
                staged = self.folder / target.name
                if not staged.exists() and not target.is_file():
                    continue
                previous = self._keep_previous(target, move=not staged.exists())
                done.append((target, previous))
                if staged.exists():
                    staged.replace(target)
        except OSError:
            for target, previous in reversed(done):
                if previous is not None:
                    previous.replace(target)
                else:
                    target.unlink(missing_ok=True)
            raise

    def _keep_previous(self, target: Path, *, move: bool) -> Path | None:
        """The file at ``target`` kept in the folder (moved there when ``move``), or None."""
        if not target.is_file():
            return None
        kept = self.folder / f".previous-{target.name}"
        if move:
            target.replace(kept)
        else:
            try:
                os.link(target, kept)
            except OSError:  # a file system without hard links: a copy does the same here
                shutil.copy2(target, kept)
        return kept
