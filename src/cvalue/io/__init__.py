"""Reading, validating and writing CRM data.

``sql_customer_profitability`` is the profit domain's (:mod:`cvalue.segments.sql`); it stays
reachable here, loaded on first use, so that io does not import segments when it is imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cvalue.io._database import connect, connection_to, engine_for
from cvalue.io.parsing import DATE_LAYOUTS, detect_date_format
from cvalue.io.schema import Columns
from cvalue.io.sources import read_transactions
from cvalue.io.sql import sql_calibration_holdout, sql_pattern_table, sql_rfm_summary
from cvalue.io.validate import RULES, Rule, Validated, ValidationReport, validate_transactions
from cvalue.io.writeback import WriteMode, WriteResult, write_scores

__all__ = [
    "DATE_LAYOUTS",
    "RULES",
    "Columns",
    "Rule",
    "Validated",
    "ValidationReport",
    "WriteMode",
    "WriteResult",
    "connect",
    "connection_to",
    "detect_date_format",
    "engine_for",
    "read_transactions",
    "sql_calibration_holdout",
    "sql_customer_profitability",
    "sql_pattern_table",
    "sql_rfm_summary",
    "validate_transactions",
    "write_scores",
]

if TYPE_CHECKING:
    from cvalue.segments.sql import sql_customer_profitability


def __getattr__(name: str) -> object:
    """Load ``sql_customer_profitability`` from the segments package on first use."""
    if name == "sql_customer_profitability":
        from cvalue.segments.sql import sql_customer_profitability

        return sql_customer_profitability
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
