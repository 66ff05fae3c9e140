"""The ``[source]`` tables: the database or its export files, and where the data is in them.

``[source]`` names the environment variable of the database URL and how CSV files are written;
``[source.transactions]`` says where the transactions are and which column plays which role;
``[source.customers]`` and ``[source.surveys]`` are optional tables or files beside them.
"""

from __future__ import annotations

import codecs
import datetime as dt
from collections.abc import Mapping

from pydantic import Field, field_validator, model_validator

from cvalue.config.values import (
    DateValue,
    EnvName,
    PathValue,
    _exactly_one,
    _read_environment,
    _Section,
)
from cvalue.errors import ConfigError
from cvalue.io.schema import Columns

__all__ = ["CustomersSource", "SourceConfig", "SurveysSource", "TransactionsSource"]


class TransactionsSource(_Section):
    """Where the transactions are, and which column plays which role (as ``cvalue.Columns``)."""

    table: str | None = Field(
        default=None, description="The transactions table (or give `query` or `file`)."
    )
    query: str | None = Field(
        default=None,
        description="A SELECT statement to read the transactions with, instead of `table`.",
    )
    file: PathValue | None = Field(
        default=None,
        description="A CSV file, a Parquet file or a folder of Parquet files, instead of `table` "
        "(relative to the configuration file's folder).",
    )
    customer_id: str = Field(
        default="customer_id", description="Column of the customer identifier."
    )
    timestamp: str = Field(default="timestamp", description="Column of the purchase date and time.")
    amount: str = Field(default="amount", description="Column of the purchase's value.")
    order_id: str | None = Field(default=None, description="Column of the order identifier.")
    is_return: str | None = Field(
        default=None,
        description="Boolean column flagging returns (counted with a negative amount).",
    )
    category: str | None = Field(default=None, description="Column of the product category.")
    channel: str | None = Field(default=None, description="Column of the sales channel.")
    segment: str | None = Field(default=None, description="Column of the customer segment.")
    date_format: str | None = Field(
        default=None,
        description='The format of text dates, such as `"%d.%m.%Y"`, or `"unix_s"` / `"unix_ms"` '
        "for unix timestamps (default: detected, one format for the whole column).",
    )
    dayfirst: bool | None = Field(
        default=None,
        description="Whether ambiguous text dates (05.07.2024) put the day first; needed when "
        "no date in the column settles it.",
    )
    min_date: DateValue = Field(
        default=dt.date(1970, 1, 1), description="Rows dated earlier are rejected."
    )
    max_date: DateValue | None = Field(
        default=None, description="Rows dated later are rejected (default: today)."
    )

    @model_validator(mode="after")
    def _one_source(self) -> TransactionsSource:
        _exactly_one(
            "[source.transactions]", {"table": self.table, "query": self.query, "file": self.file}
        )
        return self

    def date_options(self) -> dict[str, object]:
        """The date options as keyword arguments of :func:`cvalue.validate_transactions`."""
        return {"date_format": self.date_format, "dayfirst": self.dayfirst,
                "min_date": self.min_date, "max_date": self.max_date}  # fmt: skip

    def columns(self) -> Columns:
        """The column mapping as a :class:`cvalue.Columns`."""
        return Columns(
            customer_id=self.customer_id, timestamp=self.timestamp, amount=self.amount,
            order_id=self.order_id, is_return=self.is_return, category=self.category,
            channel=self.channel, segment=self.segment,
        )  # fmt: skip


class _TableOrFile(_Section):
    """A table of the source database, or a CSV or Parquet file (exactly one)."""

    table: str | None = Field(default=None, description="The table (or give `file`).")
    file: PathValue | None = Field(
        default=None,
        description="A CSV file, a Parquet file or a folder of Parquet files, instead of `table`.",
    )

    @model_validator(mode="after")
    def _one_place(self) -> _TableOrFile:
        _exactly_one("this table", {"table": self.table, "file": self.file})
        return self


class CustomersSource(_TableOrFile):
    """The customers table: one row per customer, with the attributes that segment them."""

    customer_id: str = Field(
        default="customer_id", description="Column of the customer identifier."
    )
    segment: str | None = Field(
        default=None, description="Column of the segment (for rates and costs by segment)."
    )
    channel: str | None = Field(
        default=None,
        description="Column of the acquisition channel (for CLV against CAC by channel).",
    )
    acquisition_cost: str | None = Field(
        default=None, description="Column of what acquiring the customer cost."
    )


class SurveysSource(_TableOrFile):
    """Survey answers: one row per answer, with the customer and the scores given."""

    customer_id: str = Field(
        default="customer_id", description="Column of the customer identifier."
    )
    timestamp: str = Field(
        default="timestamp", description="Column of when the answer was given (latest counts)."
    )
    nps: str | None = Field(default="nps", description="Column of the 0-10 recommend score.")
    csat: str | None = Field(default="csat", description="Column of the 1-5 satisfaction score.")
    ces: str | None = Field(default="ces", description="Column of the 1-7 effort score.")


class SourceConfig(_Section):
    """The CRM database or its export files; a URL is read from an environment variable.

    The URL, and so its password, never goes in this file.
    """

    url_env: EnvName | None = Field(
        default=None,
        description="Name of the environment variable holding the SQLAlchemy URL of the database "
        "(needed unless every table is read from a `file`).",
    )
    delimiter: str = Field(
        default=",", min_length=1, max_length=1, description="The field separator of CSV files."
    )
    encoding: str = Field(
        default="utf-8",
        description='The text encoding of CSV files, such as `"cp1251"` or `"utf-8-sig"` (a '
        "byte-order mark is recognised either way).",
    )
    decimal: str = Field(
        default=".",
        min_length=1,
        max_length=1,
        description='The decimal mark of amounts written as text (`","` in most European exports).',
    )
    thousands: str | None = Field(
        default=None,
        min_length=1,
        max_length=1,
        description='The thousands separator of amounts written as text, such as `" "` or `"."`.',
    )
    schema_name: str | None = Field(
        default=None,
        alias="schema",
        description="Database schema of the tables (default: the database's default).",
    )
    transactions: TransactionsSource = Field(description="See `[source.transactions]`.")
    customers: CustomersSource | None = Field(default=None, description="See `[source.customers]`.")
    surveys: SurveysSource | None = Field(default=None, description="See `[source.surveys]`.")

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, encoding: str) -> str:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise ValueError(f"{encoding!r} is not a text encoding Python knows") from None
        return encoding

    @model_validator(mode="after")
    def _separators(self) -> SourceConfig:
        if self.thousands is not None and self.thousands == self.decimal:
            raise ValueError("decimal and thousands must be different characters")
        return self

    def number_options(self) -> dict[str, str | None]:
        """``decimal`` and ``thousands`` as keyword arguments."""
        return {"decimal": self.decimal, "thousands": self.thousands}

    def database_url(self, environ: Mapping[str, str] | None = None) -> str:
        """The database URL, read from the environment variable ``url_env``."""
        if self.url_env is None:
            raise ConfigError(
                "[source] has no url_env: a table (not a file) is read from a database; set "
                "url_env to the name of the environment variable holding its URL"
            )
        return _read_environment(self.url_env, "source.url_env", environ)
