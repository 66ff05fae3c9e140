"""The sections of a scoring job's configuration, the checks across them, and an example file.

Each section is a strict, frozen pydantic model (the ``[source]`` ones are in
:mod:`cvalue.config.sources`); :class:`JobConfig` is the whole file, and checks what one section
requires of another. ``_flat_arguments`` and ``_is_model`` walk the sections' annotations, for
the error messages and the reference.
"""

from __future__ import annotations

import itertools
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from cvalue.config.sources import SourceConfig
from cvalue.config.values import (
    DateValue,
    DurationValue,
    EnvName,
    PathValue,
    ReportValue,
    _check_shares,
    _exactly_one,
    _read_environment,
    _Section,
    _unique,
)
from cvalue.models import PURCHASE_MODELS
from cvalue.units import Duration, TimeUnit, as_time_unit

__all__ = [
    "EXAMPLE_CONFIG",
    "CostConfig",
    "DiscountConfig",
    "JobConfig",
    "LifecycleConfig",
    "ModelsConfig",
    "OutputsConfig",
    "RunConfig",
    "SegmentsConfig",
    "SummaryConfig",
    "ValueConfig",
]

UnitName = Literal["day", "week", "month", "quarter", "year"]
if typing.TYPE_CHECKING:
    PurchaseModelName = str
    PurchaseChoice = str
else:  # the names of cvalue.models.PURCHASE_MODELS: a model added there is a choice here
    PurchaseModelName = Literal[tuple(PURCHASE_MODELS)]
    PurchaseChoice = Literal[("auto", *PURCHASE_MODELS)]
RankBy = Literal[
    "holdout_mae", "holdout_rmse", "relative_error_total", "gini", "top_decile_lift", "brier"
]
_DEFAULT_CANDIDATES: tuple[PurchaseModelName, ...] = ("beta_geo", "pareto_nbd", "modified_beta_geo")


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
        "the best holdout score (`rank_by`). `beta_geo_beta_binom` counts whole purchase "
        "opportunities: it needs `[summary] grain` equal to `unit`, and values the whole "
        "periods in each horizon (3y: 156 weeks).",
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
    rank_by: RankBy = Field(
        default="holdout_mae",
        description="The holdout score `auto` ranks the candidates by (every score is in `fit "
        "--json`'s candidates): `holdout_mae`, `holdout_rmse` (mean absolute or root mean squared "
        "error of purchases per customer), `relative_error_total` (its absolute value: the error "
        "of the total purchases as a share of the actual total) and `brier` (P(alive) against "
        "buying in the holdout) rank the smallest first; `gini` and `top_decile_lift` (how well "
        "expected purchases rank the customers who bought) the largest first. See "
        "`cvalue.evaluation`.",
    )

    covariates: list[str] = Field(
        default_factory=list,
        description="Customers-table columns (numeric, boolean or categorical: channel, region, "
        "segment, first product) that move each customer's purchase and dropout parameters in "
        "the purchase model (its `covariates`, see docs/covariates.md). A mapped name "
        "(`segment`, `channel`) reads its mapped column; any other names the column as it is. "
        "Every summarised customer needs a value.",
    )

    _check_candidates = field_validator("candidates")(_unique)
    _check_covariates = field_validator("covariates")(_unique)


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
    costs: Literal["none"] | None = Field(
        default=None,
        description='`"none"`: no cost beyond the margin, declared (the costs to serve and of '
        "marketing are 0). Without it, each cost item needs its section or a place in "
        "`margin_is_net_of`: a cost is never left out silently.",
    )
    discount: DiscountConfig = Field(
        default=DiscountConfig(), description="See `[value.discount]`."
    )
    horizons: list[DurationValue] = Field(
        default_factory=lambda: [Duration(3, TimeUnit.YEAR), Duration(5, TimeUnit.YEAR)],
        min_length=1,
        description="Horizons of the CLV and of the customer equity.",
    )
    retention_points: float | None = Field(
        default=5.0,
        description="What more retention is worth (seed 003): the report's change in equity when "
        "each segment's model-implied yearly retention rises by this many points; unset or 0 "
        "to skip it.",
    )
    interval: float | None = Field(
        default=None,
        gt=0,
        lt=1,
        description="Level of each customer's CLV interval (such as 0.9): the scores get "
        "`clv_<horizon>_lower` and `clv_<horizon>_upper`, from 200 draws of the models' "
        "parameters. Not set: no interval.",
    )

    @model_validator(mode="after")
    def _check(self) -> ValueConfig:
        for item in self.margin_is_net_of:
            if getattr(self, item) is not None:
                raise ValueError(
                    f"margin_is_net_of says the margin already deducts {item}, and [value.{item}] "
                    "gives it again: that counts it twice. Remove one of them"
                )
        items = ("cost_to_serve", "marketing_cost")
        if self.costs == "none":
            given = [f"[value.{item}]" for item in items if getattr(self, item) is not None]
            given += ["margin_is_net_of"] if self.margin_is_net_of else []
            if given:
                raise ValueError(
                    f'costs = "none" says there is no cost beyond the margin, and '
                    f"{' and '.join(given)} gives one: keep one of them"
                )
            return self
        net_of = set(self.margin_is_net_of)
        missing = [item for item in items if getattr(self, item) is None and item not in net_of]
        if missing:
            raise ValueError(
                f"[value] says nothing of {' or '.join(missing)}: give [value.{missing[0]}] "
                f"(amount = 0.0 when there is none), list it in margin_is_net_of, or set "
                'costs = "none" when no cost beyond the margin applies. A cost is never left '
                "out silently"
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
    history_table: str | Literal[False] = Field(
        default="cvalue_history",
        description="The table each run that writes its scores appends its indicators to (the "
        "run history that `cvalue history` and the report's trends read), in the scores' "
        "database and schema; `false` keeps no history.",
    )
    scores_file: PathValue | None = Field(
        default=None,
        description='With `[run] engine = "dask"`: write the scores to this folder of Parquet '
        'files instead of a database table (such as `"scores.parquet"`; relative to the '
        "configuration file's folder). The folder is written beside it under a hidden name "
        "and renamed into place, so a failed run leaves the previous folder whole.",
    )


class RunConfig(_Section):
    """How the job runs: in memory, chunk by chunk in bounded memory, or on a Dask cluster."""

    engine: Literal["pandas", "dask"] = Field(
        default="pandas",
        description='`"dask"` runs the job on a Dask cluster: the transactions are read from '
        "Parquet files and shuffled by customer, and every per-customer stage runs on the "
        'workers (`pip install "cvalue[dask]"`).',
    )
    scheduler: str | None = Field(
        default=None,
        description='With `engine = "dask"`: the address of an existing Dask scheduler (such '
        'as `"tcp://10.0.0.5:8786"`). Unset: the job starts a local cluster of `dask_workers` '
        "processes and closes it at the end.",
    )
    dask_workers: int = Field(
        default=2,
        ge=1,
        description='With `engine = "dask"` and no `scheduler`: the worker processes of the '
        "local cluster.",
    )

    chunk_customers: int | None = Field(
        default=None,
        ge=1,
        description="Score the customers in chunks of this many, read from the database one "
        "chunk at a time: validation, the summary, the patterns the models fit on, the "
        "lifecycle and the tiers run in the database, and memory depends on the chunk, not on "
        "the base (such as 250000). Unset: the whole base in memory.",
    )
    duckdb_memory: str = Field(
        default="512MB",
        pattern=r"^\s*\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*$",
        description='With `chunk_customers` on DuckDB, or `engine = "dask"` writing to '
        "DuckDB or to `scores_file`: the memory DuckDB may use for its aggregates, the run's "
        "temporary copy of the clean rows and the scores it ranks, before it spills to disk "
        '(such as "2GB"; DuckDB\'s own default is 80 % of the machine).',
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
    run: RunConfig = Field(default=RunConfig(), description="See `[run]`.")

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
    if (config.value.costs == "none" and customers is not None
            and customers.acquisition_cost is not None):  # fmt: skip
        problems.append(
            '[value] costs = "none" says there is no cost beyond the margin, and '
            "[source.customers] maps acquisition_cost: remove one of them"
        )
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
    problems += _covariate_problems(config)
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
    problems += _self_overwrite_problems(config) + _chunked_problems(config)
    return problems + _dask_problems(config)


def _covariate_problems(config: JobConfig) -> list[str]:
    """Covariates come from the customers table, and every model tried must take them."""
    models = config.models
    if not models.covariates:
        return []
    problems = []
    if config.source.customers is None:
        problems.append(
            f"[models] covariates = {models.covariates} are customers-table columns: set "
            "[source.customers]"
        )
    tried = models.candidates if models.purchase == "auto" else [models.purchase]
    refusing = [name for name in tried if not PURCHASE_MODELS[name].covariate_processes()]
    if refusing:
        problems.append(
            f"[models] covariates need models that take them, and {refusing} do not; choose "
            "from "
            + str([n for n, m in PURCHASE_MODELS.items() if m.covariate_processes()])
            + (" in [models] candidates" if models.purchase == "auto" else " as [models] purchase")
        )
    return problems


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


# --- walking the sections' annotations ------------------------------------------------------------


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

[value.marketing_cost]
amount = 0.0  # none recorded: said, not left out

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


def _chunked_problems(config: JobConfig) -> list[str]:
    """What the chunked run (``[run] chunk_customers``) does not do yet, named with the way on."""
    if config.run.chunk_customers is None:
        return []
    found = []
    transactions = config.source.transactions
    if transactions.date_format is not None or transactions.dayfirst:
        found.append("[source.transactions] date_format and dayfirst (store typed dates)")
    found += _crm_problems(config)
    found += _chunked_file_problems(config)
    found += _not_streamed(config, has_surveys_by_tier=True)
    return [f"[run] chunk_customers does not support {what} yet; remove chunk_customers to run "
            "in memory" for what in found]  # fmt: skip


def _chunked_file_problems(config: JobConfig) -> list[str]:
    """Files a chunked run reads through DuckDB: all of its tables files, CSV as DuckDB reads it.

    The files become views of a scratch DuckDB, which cannot see the source database's tables.
    """
    sections = {"source.transactions": config.source.transactions,
                "source.customers": config.source.customers,
                "source.surveys": config.source.surveys,
                "value.cost_to_serve": config.value.cost_to_serve,
                "value.marketing_cost": config.value.marketing_cost}  # fmt: skip
    named = {key: getattr(section, "file", None) for key, section in sections.items()}
    files = {key: file for key, file in named.items() if isinstance(file, Path)}
    if not files.keys() - {"source.surveys"}:
        return []
    found = [f"[{key}] table or query beside files (name it as a `file` too, or load the files "
             "into the database)" for key, section in sections.items()
             if getattr(section, "table", None) is not None
             or getattr(section, "query", None) is not None]  # fmt: skip
    is_csv = [
        file.suffix.lower() not in _PARQUET_SUFFIXES
        for key, file in files.items()
        if key != "source.surveys"
    ]  # pandas reads the answers, in any encoding
    if any(is_csv) and config.source.encoding.lower().replace("_", "-") not in _UTF8:
        found.append(f"[source] encoding = {config.source.encoding!r} for CSV files (DuckDB reads "
                     "UTF-8: re-encode the files, or write them as Parquet)")  # fmt: skip
    found += [f"[{key}] file {file.name!r} (DuckDB reads plain or .gz CSV: decompress it)"
              for key, file in files.items()
              if file.suffix.lower() in (".zip", ".bz2")]  # fmt: skip
    return found


def _crm_problems(config: JobConfig) -> list[str]:
    """A CRM export's row filters, which only the in-memory validation applies."""
    transactions = config.source.transactions
    if transactions.preset is None and not transactions.filters_rows():
        return []
    return [
        "[source.transactions] preset, status, currency and missing_ids (the rows they "
        "reject are found in memory; export won deals in one currency, without them)"
    ]


_UTF8 = frozenset({"utf-8", "utf8", "utf-8-sig", "utf8-sig"})
_NOT_CHUNKED = frozenset({"beta_geo_beta_binom", "beta_geo_cnbd", "modified_beta_geo_cnbd"})


def _not_streamed(config: JobConfig, *, has_surveys_by_tier: bool = False) -> list[str]:
    """What neither the chunked nor the Dask run does yet: it needs the whole base in pandas.

    ``has_surveys_by_tier``: the run tables the surveys by value tier (the chunked run does).
    """
    found = []
    if config.source.surveys is not None and not has_surveys_by_tier:
        found.append("[source.surveys] (surveys by value tier)")
    if config.models.covariates:
        found.append("[models] covariates")
    if config.value.margin_by_category:
        found.append("[value] margin_by_category")
    if config.value.discount.kind == "risk_adjusted":
        found.append('[value.discount] kind = "risk_adjusted" (use "by_segment")')
    names = set(config.models.candidates) | {config.models.purchase}
    return found + [f"[models] the {name} model" for name in sorted(names & _NOT_CHUNKED)]


_PARQUET_SUFFIXES = frozenset({"", ".parquet", ".pq", ".parq"})  # "": a folder or a glob


def _dask_problems(config: JobConfig) -> list[str]:
    """What the job on Dask (``[run] engine = "dask"``) does not do yet, named with the way on."""
    if config.run.engine != "dask":
        if config.outputs.scores_file is not None:
            return ['[outputs] scores_file needs [run] engine = "dask"; the other engines write '
                    "the scores to a database table"]  # fmt: skip
        return []
    found = []
    if config.run.chunk_customers is not None:
        found.append("[run] chunk_customers (the workers bound the memory: remove it)")
    if config.outputs.scores_file is not None and config.outputs.write_mode == "append":
        found.append('[outputs] write_mode = "append" with scores_file (a folder is replaced)')
    transactions = config.source.transactions
    if transactions.date_format is not None or transactions.dayfirst:
        found.append("[source.transactions] date_format and dayfirst (store typed dates)")
    found += _crm_problems(config)
    for key, section in (("source.transactions", transactions),
                         ("source.customers", config.source.customers),
                         ("value.cost_to_serve", config.value.cost_to_serve),
                         ("value.marketing_cost", config.value.marketing_cost)):  # fmt: skip
        file = getattr(section, "file", None)
        if file is not None and file.suffix.lower() not in _PARQUET_SUFFIXES:
            found.append(f"[{key}] file {file.name!r}, which is not Parquet (write it as Parquet)")
    found += _not_streamed(config)
    return [f'[run] engine = "dask" does not support {what} yet; remove engine = "dask" to run '
            "in memory" for what in found]  # fmt: skip
