"""Exceptions and warnings raised by cvalue.

Every exception derives from :class:`CValueError` and from the built-in exception a caller would
expect (``ValueError`` for bad data, ``RuntimeError`` for a failed fit, ...), so that code written
against plain Python keeps working. Messages name the column, what is wrong, how many rows, one
example, and the fix.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "SMALL_SAMPLE",
    "CValueError",
    "CValueWarning",
    "ConfigError",
    "ConvergenceError",
    "DataQualityError",
    "DatabaseError",
    "EmptyExtractError",
    "ForeignTableError",
    "MissingColumnsError",
    "NotFittedError",
    "OutputError",
    "QueryError",
    "ReportError",
    "SchemaError",
    "SmallSampleWarning",
    "UndefinedExpectationError",
    "plain",
]


class CValueError(Exception):
    """Base class of every error cvalue raises."""


class SchemaError(CValueError, ValueError):
    """The input does not have the shape cvalue needs: wrong type, missing or unknown columns."""


class MissingColumnsError(SchemaError):
    """Columns that were asked for are not in the table, query, file or DataFrame.

    Attributes
    ----------
    missing
        ``{column asked for: its role or output name}``, for each missing column.
    where
        What was read (``"table 'sales'"``, ``"the query"``, ...).
    available
        The columns it has.
    """

    def __init__(self, missing: dict[str, str], where: str, available: list[str], fix: str):
        self.missing, self.where, self.available = missing, where, available
        super().__init__(
            f"column(s) {list(missing)} not found in {where}; it has columns {available}. {fix}"
        )


class DataQualityError(CValueError, ValueError):
    """Rows of the input break a rule (missing ids, unparsable dates, negative amounts, ...)."""


class EmptyExtractError(DataQualityError):
    """Validation rejected every row: there is nothing left to analyse.

    Attributes
    ----------
    rejected
        The rejected rows, with ``rejection_reason`` and ``rejection_column``.
    report
        The :class:`~cvalue.io.validate.ValidationReport` with the counts by reason.
    """

    def __init__(self, message: str, rejected: object, report: object):
        self.rejected, self.report = rejected, report
        super().__init__(message)


class NotFittedError(CValueError, AttributeError):
    """A fitted attribute or a prediction was asked of a model before ``fit``."""


class ConvergenceError(CValueError, RuntimeError):
    """The optimiser did not converge; the message quotes it and suggests what to try."""


class ConfigError(CValueError, ValueError):
    """A configuration file or option is invalid; the message names the key."""


class DatabaseError(CValueError, RuntimeError):
    """A database could not be reached or a statement failed; the driver error is chained."""


class QueryError(DatabaseError):
    """The database refused a statement as written; running it again will not help.

    An unknown table or column, a syntax error, a missing privilege: the configuration or the
    query needs a fix. A subclass of :class:`DatabaseError`, which otherwise stands for a
    database that could not be reached or failed for a while (refused connection, lock, full disk).
    """


class ForeignTableError(SchemaError):
    """A write would replace a table that cvalue did not create, or a table the job reads."""


class OutputError(CValueError, OSError):
    """An output location cannot be written: a directory, a read-only folder, a full disk."""


class ReportError(OutputError):
    """The report could not be put in place at the end of a run.

    ``scores_written`` says whether the scores were committed before the failure (the command
    line exits with its own code then, so that a scheduler knows the scores are new).
    """

    def __init__(self, message: str, *, scores_written: bool):
        self.scores_written = scores_written
        super().__init__(message)


class UndefinedExpectationError(CValueError, ValueError):
    """A model's expectation is infinite or undefined at its fitted parameters (e.g. q <= 1)."""


class CValueWarning(UserWarning):
    """Base class of every warning cvalue emits."""


SMALL_SAMPLE = 100
"""The fewest customers (or answers) an estimate is trusted on: retention indicators need at
least 100 customers (seed 001). Models fitted on fewer, metrics and rates computed from fewer come
with a :class:`SmallSampleWarning` (or its subclass for models) and ``is_small_sample`` flags.
"""


class SmallSampleWarning(CValueWarning):
    """An estimate was computed from fewer than :data:`SMALL_SAMPLE` customers or answers.

    One warning per call: it counts the small cells, names the first few, and says what to do.
    """


def plain(value: object) -> object:
    """A numpy scalar as the Python value it holds, for messages: ``5``, not ``np.int64(5)``."""
    return value.item() if isinstance(value, np.generic) else value
