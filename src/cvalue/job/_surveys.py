"""Surveys by value tier in a chunked run: the answering customers' tiers read from the scores.

The in-memory job tiers every customer's value in pandas and hands the answers to
:func:`cvalue.metrics.by_value`. A chunked run never holds the values whole: its tiers are
ranked in the staging table (:func:`cvalue.segments.in_table.tiers_in_table`).

When the survey table is in the database the scores are written to,
:func:`surveys_in_database` joins the two there and reads back only counts: the answers per
tier and answer value, the customers answering per tier, and for NPS each customer's latest
answer counted and its value summed per tier and answer value. Every survey metric depends on
its answers only through the count of each answer value, so each tier's answers are rebuilt
from those counts (``np.repeat``) and handed to :func:`cvalue.metrics.nps`, ``csat`` and
``ces``. Elsewhere (the scores written to another database, or a dry run's scratch DuckDB),
the answers are read (a table the size of the survey, not of the base), their customers' tier
and value are looked up in the staging table in batches of ids (:func:`answering_customers`),
and :func:`surveys_by_tier` builds the same table as ``by_value``'s: per tier the answers, the
customers answering, the metric with its interval and the tier's value, and for NPS the value
held by detractors (each customer's latest answer).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.types import TypeEngine

from cvalue.config import JobConfig
from cvalue.errors import DataQualityError, SmallSampleWarning, plain
from cvalue.io import connection_to
from cvalue.io.sqlkit import fetch
from cvalue.job._read import _present, _surveys, mapped_columns
from cvalue.metrics import MetricEstimate, ces, csat, nps
from cvalue.samples import flag_small
from cvalue.segments.tiers import ValueTiers

__all__ = [
    "SurveyTable",
    "answering_customers",
    "id_kind",
    "same_database",
    "survey_source",
    "surveys_by_tier",
    "surveys_in_database",
]

_BATCH = 10_000  # ids per IN list: well under SQLite's 32,766 bound parameters
_METRICS: dict[str, tuple[str, Callable[[pd.Series], MetricEstimate]]] = {
    "nps": ("NPS", nps), "csat": ("CSAT", csat), "ces": ("CES", ces),
}  # fmt: skip
_DETRACTOR_HIGHEST = 6  # NPS answers 0-6 detract


def answering_customers(
    connection: sa.Connection,
    table: sa.Table,
    ids: pd.Series,
    *,
    value: str,
    where: sa.ColumnElement[bool],
) -> pd.DataFrame:
    """The tier and value of the customers ``ids``, read from the scores ``table`` (``where``).

    Returns a table indexed by customer id with ``tier`` and ``value``; customers the table
    does not hold are missing from it.
    """
    wanted = pd.unique(ids.dropna().to_numpy())
    found = [
        fetch(connection, sa.select(table.c.customer_id, table.c.value_tier.label("tier"),
                                    table.c[value].label("value"))
              .where(where, table.c.customer_id.in_(wanted[start : start + _BATCH].tolist())))
        for start in range(0, len(wanted), _BATCH)
    ]  # fmt: skip
    rows = pd.concat(found, ignore_index=True) if found else pd.DataFrame(
        columns=["customer_id", "tier", "value"])  # fmt: skip
    return rows.set_index("customer_id")


def surveys_by_tier(
    answers: pd.DataFrame, customers: pd.DataFrame, tiers: ValueTiers
) -> dict[str, pd.DataFrame]:
    """NPS, CSAT and CES per value tier, as :func:`cvalue.metrics.by_value` tables them.

    ``answers`` has ``customer_id`` (and ``timestamp``) and the metrics' columns; ``customers``
    is :func:`answering_customers`' lookup; ``tiers`` the tiers ranked in the table.
    """
    tier_of = _tier_of_answers(answers, customers)
    return {metric: _by_tier(metric, answers, tier_of, customers, tiers)
            for metric in _METRICS if metric in answers}  # fmt: skip


def _tier_of_answers(answers: pd.DataFrame, customers: pd.DataFrame) -> pd.Series:
    """Each answer's customer's tier; every answering customer needs a value."""
    found = customers["tier"].reindex(pd.Index(answers["customer_id"]))
    is_missing = found.isna().to_numpy()
    if is_missing.any():
        example = answers["customer_id"][is_missing].iloc[0]
        raise DataQualityError(
            f"{int(is_missing.sum()):,} of {len(answers):,} answers come from customers without "
            f"a value (e.g. customer {plain(example)!r}); value every answering customer, or "
            "drop their answers"
        )
    return pd.Series(found.to_numpy(), index=answers.index)


def _estimate(metric: str, scores: pd.Series) -> tuple[float, float, float]:
    """The metric and its interval (NaN without answers); small samples are flagged per table."""
    if scores.empty:
        return np.nan, np.nan, np.nan
    with warnings.catch_warnings():
        # the table flags its small tiers once, in by_value's words, below
        warnings.simplefilter("ignore", SmallSampleWarning)
        found = _METRICS[metric][1](scores)
    return found.estimate, found.ci_lower, found.ci_upper


def _by_tier(metric: str, answers: pd.DataFrame, tier_of: pd.Series, customers: pd.DataFrame,
             tiers: ValueTiers) -> pd.DataFrame:  # fmt: skip
    _estimate(metric, answers[metric])  # every answer checked, as by_value checks them first
    rows = []
    for name in [*_labels(tiers), "all"]:
        is_in = (tier_of == name).to_numpy() if name != "all" else np.ones(len(answers), bool)
        rows.append((int(is_in.sum()), int(answers["customer_id"][is_in].nunique()),
                     *_estimate(metric, answers[metric][is_in])))  # fmt: skip
    held = _held_by_detractors(answers, customers) if metric == "nps" else None
    return _table(metric, rows, tiers, held)


def _labels(tiers: ValueTiers) -> list[str]:
    return [str(name) for name in tiers.summary_.index]


def _table(metric: str, rows: list[tuple[int, int, float, float, float]], tiers: ValueTiers,
           held: pd.DataFrame | None) -> pd.DataFrame:  # fmt: skip
    """By_value's table from its rows per tier (and ``all``) and, for NPS, the detractors held."""
    labels = _labels(tiers)
    table = pd.DataFrame(rows, index=pd.Index([*labels, "all"], name="tier", dtype="str"),
                         columns=["answers", "customers_answering", "estimate", "ci_lower",
                                  "ci_upper"])  # fmt: skip
    tier_values = tiers.summary_["value"].to_numpy(dtype=np.float64)
    table["value"] = np.append(tier_values, tier_values.sum())
    if held is not None:
        table = _with_detractors(table, held, labels)
    table["is_small_sample"] = flag_small(
        table["answers"], list(table.index), subject=f"{_METRICS[metric][0]} by value tier",
        unit="answers", cells="tiers",
        fix="those intervals are wide: use fewer tiers or collect more answers",
    )  # fmt: skip
    return table


def _held_by_detractors(answers: pd.DataFrame, customers: pd.DataFrame) -> pd.DataFrame:
    """Per tier, the customers whose latest answer detracts (``size``) and their value (``sum``)."""
    if "timestamp" in answers:
        latest = answers.sort_values("timestamp", kind="stable").drop_duplicates(
            "customer_id", keep="last")  # fmt: skip
    else:
        n_repeated = int(answers["customer_id"].duplicated().sum())
        if n_repeated:
            raise DataQualityError(
                f"{n_repeated:,} answers repeat a customer and there is no timestamp column to "
                "pick each customer's latest answer; map [source.surveys] timestamp"
            )
        latest = answers
    scores = pd.to_numeric(latest["nps"]).to_numpy(dtype=np.float64)
    detractors = customers.loc[pd.Index(latest["customer_id"][scores <= _DETRACTOR_HIGHEST])]
    held: pd.DataFrame = detractors.groupby("tier")["value"].agg(["size", "sum"])
    return held


def _with_detractors(table: pd.DataFrame, held: pd.DataFrame, labels: list[str]) -> pd.DataFrame:
    """The customers whose latest answer detracts, their value and its share, per tier."""
    held = held.reindex(labels, fill_value=0)
    count = held["size"].to_numpy(dtype=np.int64)
    value = held["sum"].to_numpy(dtype=np.float64)
    count, value = np.append(count, count.sum()), np.append(value, value.sum())
    with np.errstate(invalid="ignore", divide="ignore"):  # a tier worth 0: NaN share
        share = value / table["value"].to_numpy(dtype=np.float64)
    return table.assign(detractors=count, detractor_value=value, detractor_value_share=share)


# --- in the database the scores are written to ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class SurveyTable:
    """A survey table of the source database: its name, schema and columns (``{ours: theirs}``).

    ``id_is_text`` is the kind of its customer ids (text or whole numbers); ``None`` when its
    type is neither (untyped, or fractional numbers), which only the pandas path matches.
    """

    name: str
    schema: str | None
    columns: Mapping[str, str]
    id_is_text: bool | None


def id_kind(column_type: TypeEngine[object]) -> bool | None:
    """Whether a column's ids are text (True) or whole numbers (False); None when neither."""
    if isinstance(column_type, sa.String):
        return True
    return False if isinstance(column_type, sa.Integer) else None


def surveys_in_database(
    connection: sa.Connection,
    survey: SurveyTable,
    table: sa.Table,
    *,
    value: str,
    where: sa.ColumnElement[bool],
    scored_is_text: bool,
    tiers: ValueTiers,
) -> dict[str, pd.DataFrame] | None:
    """:func:`surveys_by_tier`'s tables, from counts of the survey joined to the scores there.

    ``survey`` must be reachable from ``connection``, which holds the scores ``table``
    (``where`` picks the run's rows). ``None`` when the counts show a problem the pandas path
    words with an example (an answer without a scored customer, an invalid answer, answers
    repeating a customer without a timestamp, or two latest answers of one customer at one
    time, which pandas settles by the rows' order): take that path then.
    """
    if survey.id_is_text is None:
        return None
    joined = _Joined(survey, table, value, where, scored_is_text, connection.dialect.name)
    counts = fetch(connection, joined.counts())
    metrics = [metric for metric in _METRICS if metric in survey.columns]
    if counts["tier"].isna().any() or not all(_are_valid(metric, counts[metric])
                                              for metric in metrics):  # fmt: skip
        return None
    customers = fetch(connection, joined.customers()).set_index("tier")["customers"]
    if "timestamp" not in survey.columns and counts["answers"].sum() > customers.sum():
        return None
    held = None
    if "nps" in metrics:
        latest = fetch(connection, joined.latest())
        if (latest["kinds"] > 1).any():
            return None
        held = _held_in_database(latest)
    return {metric: _counted(metric, counts, customers, tiers, held) for metric in metrics}


def _are_valid(metric: str, values: pd.Series) -> bool:
    """Whether every answer value is one the metric takes (None, NaN or a fraction are not)."""
    if values.isna().any():
        return False
    try:
        _estimate(metric, pd.Series(pd.unique(values.to_numpy())))
    except DataQualityError:
        return False
    return True


def _counted(metric: str, counts: pd.DataFrame, customers: pd.Series, tiers: ValueTiers,
             held: pd.DataFrame | None) -> pd.DataFrame:  # fmt: skip
    """One metric's table from the counts of each answer value per tier."""
    scores = pd.to_numeric(counts[metric]).to_numpy(dtype=np.float64)
    answers = counts["answers"].to_numpy(dtype=np.int64)
    rows = []
    for name in [*_labels(tiers), "all"]:
        is_in = (counts["tier"] == name).to_numpy() if name != "all" else np.ones(len(counts), bool)
        answering = int(customers.get(name, 0)) if name != "all" else int(customers.sum())
        # the metrics depend on the answers only through each value's count
        rebuilt = pd.Series(np.repeat(scores[is_in], answers[is_in]))
        rows.append((int(answers[is_in].sum()), answering, *_estimate(metric, rebuilt)))
    return _table(metric, rows, tiers, held if metric == "nps" else None)


def _held_in_database(latest: pd.DataFrame) -> pd.DataFrame:
    """Per tier the detractors (``size``) and their value (``sum``), from the latest answers."""
    is_detractor = pd.to_numeric(latest["nps"]).to_numpy(dtype=np.float64) <= _DETRACTOR_HIGHEST
    detractors = latest[is_detractor]
    return pd.DataFrame(
        {"size": detractors.groupby("tier")["customers"].sum(),
         "sum": detractors.groupby("tier")["value"].sum()}
    )  # fmt: skip


class _Joined:
    """The run's answers joined to their customers' scores, and the counts read from them."""

    def __init__(self, survey: SurveyTable, table: sa.Table, value: str,
                 where: sa.ColumnElement[bool], scored_is_text: bool,
                 dialect: str) -> None:  # fmt: skip
        columns = survey.columns
        self.answers = sa.table(survey.name, *(sa.column(name) for name in columns.values()),
                                schema=survey.schema)  # fmt: skip
        self.columns = {ours: self.answers.c[theirs] for ours, theirs in columns.items()}
        self.table = table
        self.value = table.c[value]
        self.on = sa.and_(_same_customer(self.columns["customer_id"], table.c.customer_id,
                                         bool(survey.id_is_text), scored_is_text, dialect),
                          where)  # fmt: skip

    def counts(self) -> sa.Select[Any]:
        """Answers per tier and answer values; the tier is NULL for unscored customers."""
        metrics = {ours: self.columns[ours] for ours in _METRICS if ours in self.columns}
        tier = self.table.c.value_tier
        return (sa.select(tier.label("tier"),
                          *(column.label(ours) for ours, column in metrics.items()),
                          sa.func.count().label("answers"))
                .select_from(self.answers.outerjoin(self.table, self.on))
                .group_by(tier, *metrics.values()))  # fmt: skip

    def customers(self) -> sa.Select[Any]:
        """The scored customers answering, per tier."""
        tier = self.table.c.value_tier
        return (sa.select(tier.label("tier"),
                          sa.func.count(sa.distinct(self.table.c.customer_id)).label("customers"))
                .select_from(self.answers.join(self.table, self.on)).group_by(tier))  # fmt: skip

    def latest(self) -> sa.Select[Any]:
        """Customers and their value per tier and latest NPS answer; ``kinds`` > 1: a tie.

        The latest answer is the one with the greatest timestamp, a missing one counting as
        the latest (pandas sorts it last); every answer ranks first without a timestamp.
        """
        stamp = self.columns.get("timestamp")
        rank = sa.func.rank().over(
            partition_by=self.table.c.customer_id,
            order_by=None if stamp is None else stamp.desc().nulls_first(),
        )  # fmt: skip
        ranked = (sa.select(self.table.c.customer_id.label("scored_id"),
                            self.table.c.value_tier.label("tier"), self.value.label("value"),
                            self.columns["nps"].label("nps"), rank.label("latest_rank"))
                  .select_from(self.answers.join(self.table, self.on))
                  .subquery("ranked"))  # fmt: skip
        each = (sa.select(sa.func.min(ranked.c.tier).label("tier"),
                          sa.func.min(ranked.c.value).label("value"),
                          sa.func.min(ranked.c.nps).label("nps"),
                          sa.func.count(sa.distinct(ranked.c.nps)).label("kinds"))
                .where(ranked.c.latest_rank == 1).group_by(ranked.c.scored_id)
                .subquery("latest"))  # fmt: skip
        return (sa.select(each.c.tier, each.c.nps, sa.func.count().label("customers"),
                          sa.func.sum(each.c.value).label("value"),
                          sa.func.max(each.c.kinds).label("kinds"))
                .group_by(each.c.tier, each.c.nps))  # fmt: skip


def _same_customer(answer: sa.ColumnClause[Any], scored: sa.Column[Any], answer_is_text: bool,
                   scored_is_text: bool, dialect: str) -> sa.ColumnElement[bool]:  # fmt: skip
    """An answer's customer id equals a scored one, read as the scored ids' kind.

    As :func:`cvalue.job._read._as_kind_of`: whole numbers match their digits ('7'), and text
    ids match numbers only when they are a number's digits ('007' and '+7' do not).
    """
    if answer_is_text == scored_is_text:
        return answer == scored
    if scored_is_text:
        return sa.cast(answer, sa.String) == scored
    digits = sa.func.trim(answer)
    same = sa.cast(scored, sa.String) == digits
    if dialect == "sqlite":  # an equality on the scored id's column lets SQLite index the join
        return sa.and_(scored == sa.cast(digits, sa.BigInteger), same)
    return same


def survey_source(config: JobConfig, engine: sa.Engine) -> pd.DataFrame | SurveyTable | None:
    """The run's survey answers: a file read now, a table's columns checked now (rows later).

    A table's answers are counted in the database the scores are written to when it is the
    source's (:func:`surveys_in_database`), otherwise read then.
    """
    section = config.source.surveys
    if section is None or section.file is not None:
        return _surveys(config, engine)
    columns = _present({
        "customer_id": section.customer_id, "timestamp": section.timestamp, "nps": section.nps,
        "csat": section.csat, "ces": section.ces,
    })  # fmt: skip
    schema = config.source.schema_name
    with connection_to(engine) as connection:
        available = mapped_columns(connection, str(section.table), columns.values(), schema,
                                   key="source.surveys")  # fmt: skip
    return SurveyTable(str(section.table), schema, columns,
                       id_kind(available[columns["customer_id"]]))  # fmt: skip


def same_database(connection: sa.Connection, source: sa.Engine) -> bool:
    """Whether ``connection`` reaches the tables of ``source`` (the same file or server)."""
    url = source.url
    return connection.engine.url == url and url.database not in (None, "", ":memory:")
