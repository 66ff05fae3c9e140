"""The ``[source]`` tables: the database or its export files, and where the data is in them.

``[source]`` names the environment variable of the database URL and how CSV files are written;
``[source.transactions]`` says where the transactions are and which column plays which role (or
which CRM export preset gives them: :meth:`SourceConfig.with_preset` resolves it);
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
from cvalue.errors import ConfigError, SchemaError
from cvalue.io.presets import PRESETS, Preset, PresetMatch, get_preset
from cvalue.io.schema import Columns
from cvalue.io.sources import resolve_preset

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
    preset: str | None = Field(
        default=None,
        description="A CRM export preset (`salesforce`, `salesforce:orders`, `hubspot`, "
        "`dynamics365`, `dynamics365:invoices`, `bitrix24`, `bitrix24:invoices`, `amocrm`): "
        "the columns, the won statuses, the date format, decimal mark, separator and encoding "
        "of the CRM's export, found from the file's header. Keys set here and in `[source]` "
        "override the preset's. See docs/crm-exports.md.",
    )
    variant: str | None = Field(
        default=None,
        description="With `preset`: its header variant (`api`, `ui_en`, `ui_ru`; default: the "
        "one the file's header has, and `api` for a table or query).",
    )
    status: str | None = Field(
        default=None,
        description="Column of the deal's or order's status; rows whose status is not in `won` "
        "are rejected as `not_won`.",
    )
    won: list[str] | None = Field(
        default=None,
        description='With `status`: the statuses that count as a purchase (such as `["Closed '
        'Won"]`; `*` matches any text).',
    )
    currency: str | None = Field(
        default=None,
        description="Column of the amount's currency; rows in another currency than the most "
        "common one are rejected as `other_currency`.",
    )
    missing_ids: list[str] | None = Field(
        default=None,
        description='Customer ids that mean "no customer" (Bitrix24 writes `"0"`); their rows '
        "are rejected as missing.",
    )
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
        if self.status is not None and not self.won and self.preset is None:
            raise ValueError("status needs won: the statuses that count as a purchase")
        if self.won and self.status is None and self.preset is None:
            raise ValueError("won needs status: the column the statuses are in")
        if self.variant is not None and self.preset is None:
            raise ValueError("variant needs preset")
        return self

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, name: str | None) -> str | None:
        if name is not None:
            try:
                get_preset(name)
            except SchemaError:
                raise ValueError(f"unknown CRM preset {name!r}; known: {sorted(PRESETS)}") from None
        return name

    def date_options(self) -> dict[str, object]:
        """The date options as keyword arguments of :func:`cvalue.validate_transactions`."""
        return {"date_format": self.date_format, "dayfirst": self.dayfirst,
                "min_date": self.min_date, "max_date": self.max_date}  # fmt: skip

    def columns(self) -> Columns:
        """The column mapping as a :class:`cvalue.Columns`.

        Raises
        ------
        ConfigError
            If a preset is set but was not resolved (:func:`load_config` resolves it).
        """
        if self.preset is not None and self.variant is None:
            raise ConfigError(
                f"[source.transactions] preset = {self.preset!r} is not resolved yet: read the "
                "file with cvalue.config.load_config, which finds the preset's columns"
            )
        return Columns(
            customer_id=self.customer_id, timestamp=self.timestamp, amount=self.amount,
            order_id=self.order_id, is_return=self.is_return, category=self.category,
            channel=self.channel, segment=self.segment, status=self.status,
            currency=self.currency, won=tuple(self.won) if self.won else None,
            missing_ids=tuple(self.missing_ids) if self.missing_ids else None,
        )  # fmt: skip

    def filters_rows(self) -> bool:
        """Whether rows are rejected by status, currency or missing ids (pandas validation)."""
        return any((self.status, self.currency, self.missing_ids))


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

    def with_preset(self) -> SourceConfig:
        """The source with the transactions' preset resolved (itself when there is none).

        The preset's header variant is the one the file's header has (or ``variant``; for a
        table or query, ``api`` unless ``variant`` says otherwise). Its columns, won statuses,
        date format, decimal mark, separator and encoding fill every key this file does not set.

        Raises
        ------
        ConfigError
            If the file does not exist or cannot be decoded, or if it has the columns of none of
            the preset's variants (naming what each lacks).
        """
        section = self.transactions
        if section.preset is None:
            return self
        try:
            preset = _variants(get_preset(section.preset), section.variant, section.file is None)
            preset = preset.overriding(**self._explicit())
            if section.file is None:
                where = "the table" if section.table is not None else "the query"
                names = [n for v in preset.variants for r in _ROLE_KEYS for n in v.candidates(r)]
                return self._resolved(preset.resolve(names, where=where), None, self.encoding)
            found = resolve_preset(section.file, preset, sep=self.delimiter,
                                   encoding=self.encoding)  # fmt: skip
        except SchemaError as exc:
            raise ConfigError(f"[source.transactions] preset = {section.preset!r}: {exc}") from None
        return self._resolved(found.match, *found.csv)

    def _explicit(self) -> dict[str, object]:
        """The keys this file sets that a preset also sets: they win."""
        section = self.transactions
        settings = {key: getattr(section, key) for key in
                    section.model_fields_set & _PRESET_KEYS}  # fmt: skip
        return settings | {key: getattr(self, key) for key in
                           self.model_fields_set & {"decimal", "thousands"}}  # fmt: skip

    def _resolved(self, match: PresetMatch, sep: str | None, encoding: str) -> SourceConfig:
        columns, formats = match.columns, match.formats
        transactions = self.transactions.model_copy(update={
            "customer_id": columns.customer_id, "timestamp": columns.timestamp,
            "amount": columns.amount, "order_id": columns.order_id, "currency": columns.currency,
            "status": columns.status, "won": list(columns.won or ()) or None,
            "missing_ids": list(columns.missing_ids or ()) or None, "variant": match.variant.name,
            "date_format": formats.date_format, "dayfirst": formats.dayfirst,
        })  # fmt: skip
        return self.model_copy(update={
            "transactions": transactions, "delimiter": sep or self.delimiter,
            "encoding": encoding, "decimal": formats.decimal, "thousands": formats.thousands,
        })  # fmt: skip


_ROLE_KEYS = ("customer_id", "order_id", "timestamp", "amount", "currency", "status")
_PRESET_KEYS = frozenset({*_ROLE_KEYS, "won", "missing_ids", "date_format", "dayfirst"})


def _variants(preset: Preset, variant: str | None, is_database: bool) -> Preset:
    """``preset`` with only the named variant, or only its first (API) one for a database."""
    if variant is None:
        return preset.only(preset.variants[0].name) if is_database else preset
    return preset.only(variant)
