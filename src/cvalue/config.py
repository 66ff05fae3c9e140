"""The TOML configuration of a scoring job, validated, with errors that name the key and line.

A scoring job (``cvalue score --config cvalue.toml``) reads the CRM database, fits the models,
values and segments the customers, and writes the scores back. Its file has six tables:

- ``[source]``: the environment variable that holds the database URL (the URL, and so its
  password, never goes in the file), the transactions table or query with its column mapping
  (:class:`cvalue.Columns`), and optionally the customers table;
- ``[summary]``: the observation end, the time unit and the grain of the customer summary;
- ``[models]``: the purchase model (or ``"auto"``: fit the candidates, keep the one with the
  smallest holdout error), the spend model and the holdout length;
- ``[value]``: the gross margin, costs to serve and of marketing, discount rates (one rate, by
  segment, or risk-adjusted) and the horizons;
- ``[segments]``: value tiers, the value x risk grid and the unprofitable-segment search;
- ``[outputs]``: the scores table, the write mode and the report's path.

:func:`load_config` reads and checks a file. Unknown keys, wrong types and bad values all come
back in one :class:`~cvalue.errors.ConfigError` whose lines name the key and its line in the file;
a missing environment variable is named too. :func:`config_reference` renders every key, its
type, default and description as markdown, from the models themselves.

Examples
--------
>>> import tempfile
>>> with tempfile.TemporaryDirectory() as folder:
...     path = Path(folder) / "cvalue.toml"
...     _ = path.write_text(EXAMPLE_CONFIG)
...     config = load_config(path, environ={"CVALUE_DATABASE_URL": "duckdb:///crm.duckdb"})
>>> config.models.purchase, str(config.models.holdout), config.outputs.write_mode
('auto', '26 week', 'replace')
>>> config.source.transactions.columns().amount
'net_amount'
"""

from __future__ import annotations

import codecs
import datetime as dt
import difflib
import itertools
import os
import re
import sys
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from cvalue.errors import ConfigError
from cvalue.io.schema import Columns
from cvalue.units import Duration, TimeUnit, as_time_unit

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = [
    "EXAMPLE_CONFIG",
    "CostConfig",
    "CustomersSource",
    "DiscountConfig",
    "JobConfig",
    "LifecycleConfig",
    "ModelsConfig",
    "OutputsConfig",
    "SegmentsConfig",
    "SourceConfig",
    "SummaryConfig",
    "SurveysSource",
    "TransactionsSource",
    "ValueConfig",
    "config_reference",
    "load_config",
]

UnitName = Literal["day", "week", "month", "quarter", "year"]
PurchaseModelName = Literal["beta_geo", "pareto_nbd", "modified_beta_geo", "beta_geo_beta_binom"]
PurchaseChoice = Literal[
    "auto", "beta_geo", "pareto_nbd", "modified_beta_geo", "beta_geo_beta_binom"
]  # fmt: skip
_DEFAULT_CANDIDATES: tuple[PurchaseModelName, ...] = ("beta_geo", "pareto_nbd", "modified_beta_geo")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


# --- value types that TOML does not have ----------------------------------------------------------


def _duration(value: object) -> Duration:
    if isinstance(value, Duration):
        return value
    if not isinstance(value, str):
        raise ValueError("expected a duration written as a string, such as '52w', '18M' or '3y'")
    try:
        return Duration.parse(value)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a duration: {exc}") from None


def _date(value: object) -> dt.date:
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return (
                dt.datetime.fromisoformat(value) if "T" in value else dt.date.fromisoformat(value)
            )
        except ValueError:
            pass
    raise ValueError("expected a date, such as 2024-12-31 (a TOML date) or '2024-12-31'")


def _path(value: object) -> Path:
    if isinstance(value, Path):
        return value
    if isinstance(value, str) and value.strip():
        return Path(value)
    raise ValueError("expected a file path written as a string, such as 'reports/cvalue.html'")


def _positive(duration: Duration) -> Duration:
    if duration.value <= 0:
        raise ValueError("a duration here must be longer than zero, such as '26w' or '3y'")
    return duration


def _unique(names: list[str]) -> list[str]:
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"{repeated} appear more than once")
    return names


def _check_shares(shares: dict[str, float] | None, low: float, high: float) -> None:
    """ValueError naming the entries of ``shares`` outside ``[low, high)``."""
    outside = sorted(name for name, share in (shares or {}).items() if not low <= share < high)
    if outside:
        raise ValueError(f"values must be in [{low:g}, {high:g}); not so for {outside}")


_SHORT_UNITS = {TimeUnit.DAY: "d", TimeUnit.WEEK: "w", TimeUnit.MONTH: "M", TimeUnit.QUARTER: "q",
                TimeUnit.YEAR: "y"}  # fmt: skip


def _duration_text(duration: Duration) -> str:
    """A duration as it is written in the file: ``"26w"``, ``"3y"``."""
    return f"{duration.value:g}{_SHORT_UNITS[duration.unit]}"


DurationValue = Annotated[
    Duration,
    PlainValidator(_duration),
    AfterValidator(_positive),
    PlainSerializer(_duration_text, return_type=str),
]
DateValue = Annotated[dt.date, PlainValidator(_date)]
PathValue = Annotated[Path, PlainValidator(_path)]


def _report_path(value: object) -> Path | None:
    if value is False:  # TOML has no null: ``report = false`` turns the report off
        return None
    if value is True:
        raise ValueError("expected a file path such as 'cvalue-report.html', or false for none")
    return _path(value)


ReportValue = Annotated[Path | None, PlainValidator(_report_path)]


def _env_name(name: str | None) -> str | None:
    # the value is never quoted: a URL put here by mistake would carry its password
    if name is not None and not _ENV_NAME.fullmatch(name):
        raise ValueError(
            "must be the NAME of an environment variable (letters, digits and _), not the URL "
            "itself; put the URL in that variable"
        )
    return name


EnvName = Annotated[str, AfterValidator(_env_name)]


def _exactly_one(section: str, given: Mapping[str, object]) -> None:
    named = [name for name, value in given.items() if value is not None]
    if len(named) != 1:
        options = " or ".join(given)
        found = f"got {' and '.join(named)}" if named else "got none"
        raise ValueError(f"{section} needs exactly one of {options} ({found})")


class _Section(BaseModel):
    # strict: TOML has types, so "0.3" for a number or 1 for true is a mistake to report
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


# --- [source] -------------------------------------------------------------------------------------


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


# --- [summary] and [models] -----------------------------------------------------------------------


class SummaryConfig(_Section):
    """How transactions become the customer summary (frequency, recency, T)."""

    observation_end: DateValue | None = Field(
        default=None,
        description="The last day observed (default: the day of the last transaction).",
    )
    unit: UnitName = Field(
        default="week", description="The unit recency, T and horizons are counted in."
    )
    grain: UnitName = Field(
        default="day", description="Purchases in the same calendar grain count as one transaction."
    )

    def time_unit(self) -> TimeUnit:
        """``unit`` as a :class:`TimeUnit`."""
        return as_time_unit(self.unit)


class ModelsConfig(_Section):
    """Which models predict purchases and spend."""

    purchase: PurchaseChoice = Field(
        default="auto",
        description="The purchase model, or `auto`: fit the candidates and keep the one with "
        "the smallest holdout error.",
    )
    candidates: list[PurchaseModelName] = Field(
        default_factory=lambda: list(_DEFAULT_CANDIDATES),
        min_length=1,
        description="The models `auto` chooses from.",
    )
    spend: Literal["gamma_gamma"] = Field(default="gamma_gamma", description="The spend model.")
    holdout: DurationValue = Field(
        default_factory=lambda: Duration(26, TimeUnit.WEEK),
        description="The last stretch of the data held out to check (and, with `auto`, choose) "
        "the purchase model.",
    )

    _check_candidates = field_validator("candidates")(_unique)


# --- [value] --------------------------------------------------------------------------------------


class CostConfig(_Section):
    """A cost per customer: one amount, an amount by segment, or a table of recorded costs."""

    amount: float | None = Field(
        default=None, ge=0, description="The same cost for every customer, per `per`."
    )
    by_segment: dict[str, float] | None = Field(
        default=None,
        description="Cost per customer by segment, per `per` (needs a segment column).",
    )
    table: str | None = Field(
        default=None,
        description="A table of recorded costs (one row per cost item), summed per customer "
        "over the observation period.",
    )
    file: PathValue | None = Field(
        default=None, description="A CSV or Parquet file of recorded costs, instead of `table`."
    )
    customer_id: str = Field(
        default="customer_id", description="With `table` or `file`: the customer column."
    )
    cost: str = Field(
        default="cost", description="With `table` or `file`: the column of the cost amount."
    )
    per: UnitName = Field(
        default="year", description="The period `amount` and `by_segment` are per."
    )

    @model_validator(mode="after")
    def _one_kind(self) -> CostConfig:
        _exactly_one("a cost", {"amount": self.amount, "by_segment": self.by_segment,
                                "table": self.table, "file": self.file})  # fmt: skip
        return self

    @field_validator("by_segment")
    @classmethod
    def _non_negative(cls, costs: dict[str, float] | None) -> dict[str, float] | None:
        _check_shares(costs, 0.0, float("inf"))
        return costs


def _column_if(is_needed: bool) -> set[str]:
    return {"column"} if is_needed else set()


class DiscountConfig(_Section):
    """Discount rates: one rate, a rate per segment, or risk-adjusted (base + premium x risk)."""

    kind: Literal["scalar", "by_segment", "risk_adjusted"] = Field(
        default="scalar", description="How the rate is set."
    )
    rate: float = Field(
        default=0.10,
        ge=0,
        lt=1,
        description="The rate per `per`: the one rate (`scalar`), the rate of segments not in "
        "`by_segment`, or the base rate (`risk_adjusted`).",
    )
    per: UnitName = Field(default="year", description="The period the rates are per.")
    compounding: Literal["effective", "continuous"] = Field(
        default="effective",
        description="Whether the rates are effective or continuously compounded.",
    )
    by_segment: dict[str, float] | None = Field(
        default=None, description="With `by_segment`: the rate of each segment."
    )
    premium: float | None = Field(
        default=None, ge=0, description="With `risk_adjusted`: the rate added per unit of risk."
    )
    measure: Literal["churn_hazard", "margin_variation", "column"] | None = Field(
        default=None,
        description="With `risk_adjusted`: the segment risk measure (the segment's churn hazard, "
        "the coefficient of variation of its margins, or a customers-table column).",
    )
    column: str | None = Field(default=None, description='With `measure = "column"`: the column.')

    @model_validator(mode="after")
    def _check_kind(self) -> DiscountConfig:
        needed = {
            "scalar": set(),
            "by_segment": {"by_segment"},
            "risk_adjusted": {"premium", "measure"} | _column_if(self.measure == "column"),
        }[self.kind]  # fmt: skip
        given = {name for name in ("by_segment", "premium", "measure", "column")
                 if getattr(self, name) is not None}  # fmt: skip
        if needed - given:
            raise ValueError(f"kind = {self.kind!r} needs {sorted(needed - given)}")
        if given - needed:
            raise ValueError(f"kind = {self.kind!r} does not use {sorted(given - needed)}")
        return self

    @field_validator("by_segment")
    @classmethod
    def _rates(cls, rates: dict[str, float] | None) -> dict[str, float] | None:
        _check_shares(rates, 0.0, 1.0)
        return rates


CostItem = Literal["cost_to_serve", "marketing_cost"]


class ValueConfig(_Section):
    """What a customer is worth: margin, costs, discount rates and horizons."""

    margin: float = Field(
        gt=0, le=1, description="Gross product margin, as a share of spend (0.30 = 30 %)."
    )
    margin_by_category: dict[str, float] | None = Field(
        default=None, description="Gross margin by product category (others get `margin`)."
    )
    margin_is_net_of: list[CostItem] = Field(
        default_factory=list,
        description="Cost items the margin already deducts; giving them again is an error "
        "(no double counting).",
    )
    cost_to_serve: CostConfig | None = Field(
        default=None, description="See `[value.cost_to_serve]`."
    )
    marketing_cost: CostConfig | None = Field(
        default=None, description="See `[value.marketing_cost]`."
    )
    discount: DiscountConfig = Field(
        default=DiscountConfig(), description="See `[value.discount]`."
    )
    horizons: list[DurationValue] = Field(
        default_factory=lambda: [Duration(3, TimeUnit.YEAR), Duration(5, TimeUnit.YEAR)],
        min_length=1,
        description="Horizons of the CLV and of the customer equity.",
    )

    @model_validator(mode="after")
    def _check(self) -> ValueConfig:
        for item in self.margin_is_net_of:
            if getattr(self, item) is not None:
                raise ValueError(
                    f"margin_is_net_of says the margin already deducts {item}, and [value.{item}] "
                    "gives it again: that counts it twice. Remove one of them"
                )
        return self

    @field_validator("margin_by_category")
    @classmethod
    def _margins(cls, margins: dict[str, float] | None) -> dict[str, float] | None:
        bad = sorted(name for name, share in (margins or {}).items() if not 0 < share <= 1)
        if bad:
            raise ValueError(f"margins must be in (0, 1]; not so for {bad}")
        return margins


# --- [segments] and [outputs] ---------------------------------------------------------------------


class SegmentsConfig(_Section):
    """Value tiers, the value x risk grid and the search for unprofitable segments."""

    tiers: list[float] = Field(
        default_factory=lambda: [0.01, 0.05, 0.20],
        min_length=1,
        description="Top shares of customers by value that form the tiers (top 1 %, 5 %, ...).",
    )
    grid_size: int = Field(
        default=3, ge=2, le=10, description="Value and risk classes of the value x risk grid."
    )
    cross_sell_min_categories: int = Field(
        default=2, ge=2, description="Categories bought that make a customer a cross-buyer."
    )
    min_segment_size: int = Field(
        default=30, ge=1, description="Fewest customers of a segment flagged as unprofitable."
    )
    by: list[str] = Field(
        default_factory=list, description="Columns whose values are segments to check."
    )
    promotion: str | None = Field(
        default=None, description="Transactions column flagging promoted purchases (true/false)."
    )
    promotion_discount_rate: float = Field(
        default=0.0, ge=0, le=1, description="Margin given away on a promoted purchase (share)."
    )
    return_handling_cost: float = Field(
        default=0.0, ge=0, description="Cost of handling one return, in currency units."
    )

    _check_by = field_validator("by")(_unique)

    @field_validator("tiers")
    @classmethod
    def _increasing(cls, tiers: list[float]) -> list[float]:
        increasing = all(a < b for a, b in itertools.pairwise(tiers))
        if not increasing or tiers[0] <= 0 or tiers[-1] >= 1:
            raise ValueError("tiers must be increasing shares between 0 and 1, such as [0.01, 0.2]")
        return tiers


class LifecycleConfig(_Section):
    """Lifecycle states: the calendar period and when a customer counts as lost."""

    period: Literal["week", "month", "quarter", "year"] = Field(
        default="month", description="The calendar period of the state panel and cohorts."
    )
    window: DurationValue = Field(
        default_factory=lambda: Duration(90, TimeUnit.DAY),
        description='Lost after this long without a purchase (such as "90D" or "6M").',
    )


class OutputsConfig(_Section):
    """Where the scores and the report go."""

    url_env: EnvName | None = Field(
        default=None,
        description="Environment variable of the URL of the database the scores go to "
        "(default: the source's).",
    )
    scores_table: str = Field(default="customer_value", description="The table the scores go to.")
    schema_name: str | None = Field(
        default=None, alias="schema", description="Database schema of the scores table."
    )
    write_mode: Literal["replace", "append"] = Field(
        default="replace",
        description="`replace` swaps in a new table atomically; `append` keeps every run, "
        "told apart by `run_id` and `scored_at`.",
    )
    report: ReportValue = Field(
        default_factory=lambda: Path("cvalue-report.html"),
        description="The HTML report's path, relative to the configuration file's folder; "
        "`false` writes no report.",
    )
    overwrite_foreign: bool = Field(
        default=False,
        description="Allow the scores to replace an existing table that cvalue did not create "
        "(never one this file reads).",
    )


class JobConfig(_Section):
    """A scoring job: the whole configuration file."""

    source: SourceConfig = Field(description="See `[source]`.")
    summary: SummaryConfig = Field(default=SummaryConfig(), description="See `[summary]`.")
    models: ModelsConfig = Field(default=ModelsConfig(), description="See `[models]`.")
    value: ValueConfig = Field(description="See `[value]`.")
    segments: SegmentsConfig = Field(default=SegmentsConfig(), description="See `[segments]`.")
    lifecycle: LifecycleConfig = Field(default=LifecycleConfig(), description="See `[lifecycle]`.")
    outputs: OutputsConfig = Field(default=OutputsConfig(), description="See `[outputs]`.")

    @model_validator(mode="after")
    def _consistent(self) -> JobConfig:
        problems = _cross_section_problems(self)
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def tables_read(self) -> list[tuple[str | None, str]]:
        """``(schema, table)`` of every database table this file reads."""
        schema = self.source.schema_name
        names = [self.source.transactions.table]
        names += [getattr(section, "table", None) for section in self._optional_sections()]
        return [(schema, name) for name in names if name is not None]

    def files_read(self) -> list[Path]:
        """Every file this file reads."""
        sections = [self.source.transactions, *self._optional_sections()]
        files = [getattr(section, "file", None) for section in sections]
        return [file for file in files if isinstance(file, Path)]

    def reads_database(self) -> bool:
        """Whether any table is read from the source database (and so needs its URL)."""
        return bool(self.tables_read()) or self.source.transactions.query is not None

    def _optional_sections(self) -> list[BaseModel]:
        sections = [self.source.customers, self.source.surveys, self.value.cost_to_serve,
                    self.value.marketing_cost]  # fmt: skip
        return [section for section in sections if section is not None]

    def source_url(self, environ: Mapping[str, str] | None = None) -> str:
        """The source database's URL, from the environment."""
        return self.source.database_url(environ)

    def scores_url(self, environ: Mapping[str, str] | None = None) -> str:
        """The URL of the database the scores go to (the source's unless ``outputs.url_env``)."""
        if self.outputs.url_env is None:
            return self.source_url(environ)
        return _read_environment(self.outputs.url_env, "outputs.url_env", environ)


def _segment_problems(config: JobConfig) -> list[str]:
    """What needs a segment column, when [source.customers] maps none."""
    customers = config.source.customers
    if customers is not None and customers.segment is not None:
        return []
    needs = []
    if config.value.discount.kind != "scalar":
        needs.append(f"[value.discount] kind = {config.value.discount.kind!r}")
    for name in ("cost_to_serve", "marketing_cost"):
        cost: CostConfig | None = getattr(config.value, name)
        if cost is not None and cost.by_segment is not None:
            needs.append(f"[value.{name}] by_segment")
    return [f"{need} needs segments: set [source.customers] with its segment column"
            for need in needs]  # fmt: skip


def _cross_section_problems(config: JobConfig) -> list[str]:
    """Requirements one section puts on another, which the sections alone cannot check."""
    problems = _segment_problems(config)
    customers = config.source.customers
    mapped = (
        set()
        if customers is None
        else {role for role in ("segment", "channel") if getattr(customers, role) is not None}
    )
    unmapped = [name for name in config.segments.by if name not in mapped]
    if unmapped:
        problems.append(
            f"[segments] by names {unmapped}, which [source.customers] does not map; map them "
            "there (segment, channel)"
        )
    if config.value.discount.measure == "column" and customers is None:
        problems.append('[value.discount] measure = "column" needs [source.customers]')
    if config.value.margin_by_category and config.source.transactions.category is None:
        problems.append(
            "[value] margin_by_category needs the category column: set [source.transactions] "
            "category"
        )
    if config.source.url_env is None and config.reads_database():
        problems.append(
            "[source] has no url_env, but a table or query is read from a database: set url_env "
            "to the name of the environment variable holding its URL, or read files (`file`)"
        )
    return problems + _self_overwrite_problems(config)


def _self_overwrite_problems(config: JobConfig) -> list[str]:
    """The scores table must not be a table the job reads (in the same database)."""
    outputs = config.outputs
    if outputs.url_env is not None and outputs.url_env != config.source.url_env:
        return []  # another database; write_scores still refuses tables cvalue did not create
    target = outputs.scores_table.casefold()
    for schema, table in config.tables_read():
        same_schema = None in (schema, outputs.schema_name) or schema == outputs.schema_name
        if table.casefold() == target and same_schema:
            return [
                f"[outputs] scores_table = {outputs.scores_table!r} is a table this file reads: "
                "writing the scores there would replace it. Choose another scores_table"
            ]
    return []


def _read_environment(name: str, key: str, environ: Mapping[str, str] | None) -> str:
    value = (os.environ if environ is None else environ).get(name, "")
    if not value.strip():
        raise ConfigError(
            f"{key} names the environment variable {name!r}, which is not set; set it to the "
            f"database URL, such as: export {name}='postgresql+psycopg://user:password@host/crm'"
        )
    return value


# --- finding the line of a key --------------------------------------------------------------------

_KEY_PART = re.compile(r'"[^"]*"|\'[^\']*\'|[A-Za-z0-9_-]+')
_HEADER = re.compile(r"^\s*\[\[?\s*([^\[\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(
    r"""^\s*((?:"[^"]*"|'[^']*'|[A-Za-z0-9_-]+)(?:\s*\.\s*(?:"[^"]*"|'[^']*'|[A-Za-z0-9_-]+))*)\s*="""
)


def _split_key(dotted: str) -> tuple[str, ...]:
    return tuple(part.strip("\"'") for part in _KEY_PART.findall(dotted))


def _key_lines(text: str) -> dict[tuple[str, ...], int]:
    """The line (from 1) of every table header and key, by its full dotted path."""
    lines: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    in_string = False
    for number, line in enumerate(text.splitlines(), start=1):
        quotes = line.count('"""') + line.count("'''")
        if in_string:
            in_string = quotes % 2 == 0
            continue
        header, key = _HEADER.match(line), _KEY.match(line)
        if header:
            table = _split_key(header.group(1))
            lines.setdefault(table, number)
        elif key:
            lines.setdefault(table + _split_key(key.group(1)), number)
        in_string = quotes % 2 == 1
    return lines


def _line_of(path: tuple[str, ...], lines: Mapping[tuple[str, ...], int]) -> int | None:
    """The line of ``path``, or of the nearest table or key above it in the file."""
    for end in range(len(path), 0, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return None


# --- turning validation errors into messages ------------------------------------------------------


def _key_path(error: ErrorDetails, data: object) -> tuple[tuple[str, ...], str]:
    """The keys the error is at (union tags dropped) and how to show them (with list items)."""
    keys: list[str] = []
    shown = ""
    node = data
    location = error["loc"]
    for position, part in enumerate(location):
        if isinstance(part, int) and isinstance(node, list) and part < len(node):
            node, shown = node[part], f"{shown}[{part}]"
        elif isinstance(node, dict) and part in node:
            node = node[part]
            keys.append(str(part))
            shown = f"{shown}.{part}" if shown else str(part)
        elif error["type"] == "missing" and position == len(location) - 1:
            keys.append(str(part))
            shown = f"{shown}.{part}" if shown else str(part)
    return tuple(keys), shown or "(top level)"


def _model_at(keys: tuple[str, ...]) -> type[BaseModel] | None:
    """The section model that the keys lead to (for the keys allowed there)."""
    model: type[BaseModel] = JobConfig
    for key in keys:
        fields = {field.alias or name: field for name, field in model.model_fields.items()}
        if key not in fields:
            return None
        found = [arg for arg in _flat_arguments(fields[key].annotation) if _is_model(arg)]
        if not found:
            return None
        model = found[0]
    return model


def _unknown_key(keys: tuple[str, ...]) -> str:
    model = _model_at(keys[:-1])
    allowed = [field.alias or name for name, field in model.model_fields.items()] if model else []
    close = difflib.get_close_matches(keys[-1], allowed, n=1)
    text = "unknown key" + (f" (did you mean {close[0]!r}?)" if close else "")
    if "url" in keys[-1].lower():
        text += (
            "; the database URL never goes in this file: put it in an environment variable and "
            "name that variable with url_env"
        )
    return text + (f" (keys here: {', '.join(allowed)})" if allowed else "")


def _problem(error: ErrorDetails, keys: tuple[str, ...]) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return _unknown_key(keys)
    if kind == "missing":
        return "required key is missing"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return "expected a table (a [section] or an inline table { key = value })"
    text = error["msg"].removeprefix("Value error, ")
    hidden = bool(keys) and keys[-1].endswith("url_env")
    if kind != "value_error" and not hidden:
        shown = repr(error.get("input"))
        # long values are left out, and anything like a URL, which may carry a password
        text += f" (got {shown})" if len(shown) <= 60 and "://" not in shown else ""
    return text


def _describe(errors: list[ErrorDetails], data: object, text: str, name: str) -> str:
    lines = _key_lines(text)
    found: dict[str, int] = {}
    for error in errors:
        keys, shown = _key_path(error, data)
        if not keys and error["type"] == "value_error":
            found.update(_cross_section_lines(str(error["msg"]), lines))
            continue
        line = _line_of(keys, lines)
        where = f"line {line}: {shown}" if line else shown
        found.setdefault(f"{where}: {_problem(error, keys)}", line or 0)
    problems = sorted(found, key=found.__getitem__)
    count = f"{len(problems)} problem{'s' if len(problems) > 1 else ''}"
    return f"{name} has {count}:\n" + "\n".join(f"  {problem}" for problem in problems)


_NAMED_KEY = re.compile(r"\[([A-Za-z0-9_.]+)\]( [A-Za-z_]+)?")


def _cross_section_lines(message: str, lines: Mapping[tuple[str, ...], int]) -> dict[str, int]:
    """Each cross-section problem with the line of the first key it names."""
    found = {}
    for problem in message.removeprefix("Value error, ").split("\n"):
        named = _NAMED_KEY.search(problem)
        path = () if named is None else (*named[1].split("."), *(named[2] or "").split())
        line = _line_of(path, lines) if path else None
        found[f"line {line}: {problem}" if line else problem] = line or 0
    return found


# --- loading --------------------------------------------------------------------------------------


def _read(path: Path) -> tuple[str, dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"configuration file {str(path)!r} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read configuration file {str(path)!r}: {exc}") from exc
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None


def _check_environment(
    config: JobConfig, lines: Mapping[tuple[str, ...], int], environ: Mapping[str, str] | None
) -> None:
    keys = [("source", "url_env")] if config.source.url_env is not None else []
    if config.outputs.url_env is not None:
        keys.append(("outputs", "url_env"))
    problems = []
    for key in keys:
        name = config.source.url_env if key[0] == "source" else config.outputs.url_env
        try:
            _read_environment(str(name), ".".join(key), environ)
        except ConfigError as exc:
            line = _line_of(key, lines)
            problems.append(f"line {line}: {exc}" if line else str(exc))
    if problems:
        raise ConfigError("\n".join(problems))


def load_config(
    path: str | Path,
    *,
    environ: Mapping[str, str] | None = None,
    check_environment: bool = True,
) -> JobConfig:
    """Read and check a scoring job's TOML configuration file.

    Parameters
    ----------
    path
        The ``cvalue.toml`` file.
    environ
        Where the URL variables are looked up (``os.environ`` when ``None``).
    check_environment
        Check that ``source.url_env`` (and ``outputs.url_env``) name variables that are set.

    Returns
    -------
    JobConfig
        The configuration; ``outputs.report`` is resolved against the file's folder.

    Raises
    ------
    ConfigError
        If the file is missing or not TOML; for every unknown key, wrong type or bad value (all
        of them at once, each with its key and line); if a URL variable is not set (naming it).
    """
    path = Path(path)
    text, data = _read(path)
    try:
        config = JobConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc.errors(), data, text, str(path))) from None
    if check_environment:
        _check_environment(config, _key_lines(text), environ)
    return _relative_to(config, path.parent)


def _relative_to(config: JobConfig, folder: Path) -> JobConfig:
    """``config`` with its relative paths (report, files) resolved against ``folder``."""

    def resolved(section: BaseModel, key: str) -> BaseModel:
        value = getattr(section, key, None)
        if not isinstance(value, Path) or value.is_absolute():
            return section
        return section.model_copy(update={key: folder / value})

    source, value = config.source, config.value
    source = source.model_copy(update={
        "transactions": resolved(source.transactions, "file"),
        "customers": source.customers and resolved(source.customers, "file"),
        "surveys": source.surveys and resolved(source.surveys, "file"),
    })  # fmt: skip
    value = value.model_copy(update={
        "cost_to_serve": value.cost_to_serve and resolved(value.cost_to_serve, "file"),
        "marketing_cost": value.marketing_cost and resolved(value.marketing_cost, "file"),
    })  # fmt: skip
    outputs = resolved(config.outputs, "report")
    return config.model_copy(update={"source": source, "value": value, "outputs": outputs})


# --- the reference --------------------------------------------------------------------------------


def _flat_arguments(annotation: object) -> list[object]:
    """The members of a union (``None`` left out), each stripped of ``Annotated``."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _flat_arguments(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        members = [_flat_arguments(arg) for arg in typing.get_args(annotation)]
        return [member for group in members for member in group]
    return [] if annotation is type(None) else [annotation]


def _is_model(annotation: object) -> typing.TypeGuard[type[BaseModel]]:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


_TYPE_NAMES: dict[object, str] = {
    str: "string", int: "integer", float: "number", bool: "boolean", dt.date: "date",
    Duration: 'duration (`"3y"`)', Path: "path",
}  # fmt: skip


def _type_name(annotation: object) -> str:
    names = []
    for member in _flat_arguments(annotation):
        origin, arguments = typing.get_origin(member), typing.get_args(member)
        if origin is Literal:
            names.append(" or ".join(f'`"{value}"`' for value in arguments))
        elif origin is list:
            names.append(f"array of {_type_name(arguments[0])}")
        elif origin is dict:
            names.append(f"table of {_type_name(arguments[1])}")
        elif _is_model(member):
            names.append("table")
        else:
            names.append(_TYPE_NAMES.get(member, getattr(member, "__name__", str(member))))
    return " or ".join(names)


def _toml(value: object) -> str:
    """A default value as it is written in TOML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Duration):
        return f'"{_duration_text(value)}"'
    if isinstance(value, str | Path):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    return str(value)


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "not set"
    if isinstance(value, BaseModel):
        return "see its table"
    return f"`{_toml(value)}`"


def _sections(model: type[BaseModel], path: str) -> list[str]:
    doc = (model.__doc__ or "").strip().split("\n\n")[0].replace("``", "`")
    rows = [f"### `[{path}]`", "", doc, "", "| key | type | default | description |",
            "|---|---|---|---|"]  # fmt: skip
    nested = []
    for name, field in model.model_fields.items():
        key = field.alias or name
        rows.append(
            f"| `{key}` | {_type_name(field.annotation)} | {_default(field)} "
            f"| {field.description or ''} |"
        )
        nested += [(key, arg) for arg in _flat_arguments(field.annotation) if _is_model(arg)]
    rows.append("")
    for key, child in nested:
        rows += _sections(child, f"{path}.{key}")
    return rows


def config_reference() -> str:
    """Every key of the configuration file, with its type, default and description, as markdown.

    Examples
    --------
    >>> print(config_reference().splitlines()[0])
    ### `[source]`
    """
    rows: list[str] = []
    for name, field in JobConfig.model_fields.items():
        section = next(arg for arg in _flat_arguments(field.annotation) if _is_model(arg))
        rows += _sections(section, field.alias or name)
    return "\n".join(rows).rstrip() + "\n"


EXAMPLE_CONFIG = """\
# cvalue.toml: a scoring job. The database URL is read from $CVALUE_DATABASE_URL.

[source]
url_env = "CVALUE_DATABASE_URL"

[source.transactions]
table = "transactions"
customer_id = "client_id"
timestamp = "paid_at"
amount = "net_amount"
order_id = "order_id"
is_return = "is_return"
category = "category"

[source.customers]
table = "customers"
customer_id = "client_id"
segment = "segment"
channel = "channel"
acquisition_cost = "acquisition_cost"

[summary]
observation_end = 2024-12-31
unit = "week"
grain = "day"

[models]
purchase = "auto"
holdout = "26w"

[value]
margin = 0.30
horizons = ["3y", "5y"]

[value.cost_to_serve]
table = "service_contacts"
customer_id = "client_id"
cost = "cost"

[value.discount]
kind = "by_segment"
rate = 0.10
by_segment = { retail = 0.12, corporate = 0.08 }

[segments]
tiers = [0.01, 0.05, 0.20]
by = ["segment", "channel"]

[outputs]
scores_table = "customer_value"
write_mode = "replace"
report = "cvalue-report.html"
"""
"""A complete configuration file, as a starting point for a job's own."""
