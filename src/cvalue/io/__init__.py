"""Reading, validating and writing CRM data, and the SQL toolkit of the SQL twins.

:mod:`cvalue.io.presets` describes the exports of common CRMs (Salesforce, HubSpot, Dynamics
365, Bitrix24, amoCRM): ``read_transactions(path, columns="bitrix24")`` reads one.

:mod:`cvalue.io.sqlkit` holds the building blocks every SQL twin is written with (dialect
constructs, grain arithmetic, source and fetch helpers); :mod:`cvalue.io.sql` holds the summary's
twins and :mod:`cvalue.io.sql_validate` the validation's. ``cvalue.io.sql_customer_profitability``
is deprecated: the profit domain's twin lives in :mod:`cvalue.segments.sql` and is exported as
:func:`cvalue.sql_customer_profitability`. The old name still loads it on first use, with a
:class:`DeprecationWarning`, for one release; io does not import segments when it is imported.
"""

from __future__ import annotations

import warnings

from cvalue.io._database import connect, connection_to, engine_for
from cvalue.io.parsing import DATE_LAYOUTS, detect_date_format
from cvalue.io.presets import PRESETS, Preset, PresetMatch, detect_preset, get_preset
from cvalue.io.schema import Columns
from cvalue.io.sources import read_transactions, resolve_preset
from cvalue.io.sql import sql_calibration_holdout, sql_pattern_table, sql_rfm_summary
from cvalue.io.sql_stream import sql_summary_chunks
from cvalue.io.sql_validate import SqlValidated, sql_validate_transactions, write_rejected
from cvalue.io.validate import (
    CRM_RULES,
    RULES,
    Rule,
    Validated,
    ValidationReport,
    validate_transactions,
)
from cvalue.io.writeback import WriteMode, WriteResult, write_scores

__all__ = [
    "CRM_RULES",
    "DATE_LAYOUTS",
    "PRESETS",
    "RULES",
    "Columns",
    "Preset",
    "PresetMatch",
    "Rule",
    "SqlValidated",
    "Validated",
    "ValidationReport",
    "WriteMode",
    "WriteResult",
    "connect",
    "connection_to",
    "detect_date_format",
    "detect_preset",
    "engine_for",
    "get_preset",
    "read_transactions",
    "resolve_preset",
    "sql_calibration_holdout",
    "sql_pattern_table",
    "sql_rfm_summary",
    "sql_summary_chunks",
    "sql_validate_transactions",
    "validate_transactions",
    "write_rejected",
    "write_scores",
]


def __getattr__(name: str) -> object:
    """Load the deprecated ``sql_customer_profitability`` from the segments package, warning."""
    if name == "sql_customer_profitability":
        warnings.warn(
            "cvalue.io.sql_customer_profitability is deprecated and will be removed in the next "
            "release: the profit domain's SQL twin lives in cvalue.segments.sql; import it with "
            "'from cvalue import sql_customer_profitability'",
            DeprecationWarning,
            stacklevel=2,
        )
        from cvalue.segments.sql import sql_customer_profitability

        return sql_customer_profitability
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
