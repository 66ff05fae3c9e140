"""Reading, validating and writing CRM data."""

from cvalue.io._database import connect
from cvalue.io._segments_sql import sql_customer_profitability
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
    "detect_date_format",
    "read_transactions",
    "sql_calibration_holdout",
    "sql_customer_profitability",
    "sql_pattern_table",
    "sql_rfm_summary",
    "validate_transactions",
    "write_scores",
]
