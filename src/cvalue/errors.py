"""Exceptions and warnings raised by cvalue.

Every exception derives from :class:`CValueError` and from the built-in exception a caller would
expect (``ValueError`` for bad data, ``RuntimeError`` for a failed fit, ...), so that code written
against plain Python keeps working. Messages name the column, what is wrong, how many rows, one
example, and the fix.
"""

from __future__ import annotations

__all__ = [
    "CValueError",
    "CValueWarning",
    "ConfigError",
    "ConvergenceError",
    "DataQualityError",
    "DatabaseError",
    "MissingColumnsError",
    "NotFittedError",
    "SchemaError",
    "UndefinedExpectationError",
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


class NotFittedError(CValueError, AttributeError):
    """A fitted attribute or a prediction was asked of a model before ``fit``."""


class ConvergenceError(CValueError, RuntimeError):
    """The optimiser did not converge; the message quotes it and suggests what to try."""


class ConfigError(CValueError, ValueError):
    """A configuration file or option is invalid; the message names the key."""


class DatabaseError(CValueError, RuntimeError):
    """A database could not be reached or a statement failed; the driver error is chained."""


class UndefinedExpectationError(CValueError, ValueError):
    """A model's expectation is infinite or undefined at its fitted parameters (e.g. q <= 1)."""


class CValueWarning(UserWarning):
    """Base class of every warning cvalue emits."""
