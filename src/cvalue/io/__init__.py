"""Reading, validating and writing CRM data."""

from cvalue.io._database import connect
from cvalue.io.schema import Columns
from cvalue.io.sources import read_transactions
from cvalue.io.validate import RULES, Rule, Validated, ValidationReport, validate_transactions

__all__ = [
    "RULES",
    "Columns",
    "Rule",
    "Validated",
    "ValidationReport",
    "connect",
    "read_transactions",
    "validate_transactions",
]
