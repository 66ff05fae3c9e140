"""Where the job's outputs go, checked before the run reads anything, and the report's staging.

A run that fails after hours of work because its report folder is read-only, or that replaces
the scores and then fails to write the report, breaks the promise that a failed run changes
nothing. So every output location is checked first (:func:`check_outputs`), and the report is
rendered to a hidden file beside its target before the scores are swapped in, then moved into
place with one rename (:class:`StagedReport`): a run either publishes both, or leaves the scores
table as it was and no new report.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

import sqlalchemy as sa

from cvalue.config import JobConfig
from cvalue.errors import OutputError, ReportError
from cvalue.io import engine_for
from cvalue.io.writeback import check_scores_table

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
    """A report rendered to a hidden file beside ``target``, published by one rename.

    ``path`` is where to render; :meth:`publish` renames it to ``target``; :meth:`discard`
    removes it (after a failed write of the scores).
    """

    def __init__(self, target: Path, run_id: str) -> None:
        self.target = target
        self.path = target.with_name(f".{target.name}.{run_id[:12]}.partial")

    def discard(self) -> None:
        """Remove the rendered file, if any."""
        self.path.unlink(missing_ok=True)

    def publish(self, *, scores_written: bool) -> Path:
        """Move the rendered report to its target; ReportError (naming what was committed)."""
        try:
            self.path.replace(self.target)
        except OSError as exc:
            self.discard()
            committed = "the scores were written" if scores_written else "nothing was written"
            raise ReportError(
                f"the report could not be moved to {str(self.target)!r} "
                f"({exc.strerror or exc}); {committed}",
                scores_written=scores_written,
            ) from None
        return self.target
