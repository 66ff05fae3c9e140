"""Reading, validating and writing CRM data."""

from cvalue.io.schema import Columns

__all__ = ["Columns"]
