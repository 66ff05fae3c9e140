"""Surveys by value tier in a chunked run: the answering customers' tiers read from the scores.

The in-memory job tiers every customer's value in pandas and hands the answers to
:func:`cvalue.metrics.by_value`. A chunked run never holds the values whole: its tiers are
ranked in the staging table (:func:`cvalue.segments.in_table.tiers_in_table`). Here the answers
(a table the size of the survey, not of the base) are read, their customers' tier and value
are looked up in that table in batches of ids, and the same table as ``by_value``'s is built:
per tier the answers, the customers answering, the metric with its interval and the tier's
value, and for NPS the value held by detractors (each customer's latest answer).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd
import sqlalchemy as sa

from cvalue.errors import DataQualityError, SmallSampleWarning, plain
from cvalue.io.sqlkit import fetch
from cvalue.metrics import MetricEstimate, ces, csat, nps
from cvalue.samples import flag_small
from cvalue.segments.tiers import ValueTiers

__all__ = ["answering_customers", "surveys_by_tier"]

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
    label = _METRICS[metric][0]
    _estimate(metric, answers[metric])  # every answer checked, as by_value checks them first
    labels = [str(name) for name in tiers.summary_.index]
    rows = []
    for name in [*labels, "all"]:
        is_in = (tier_of == name).to_numpy() if name != "all" else np.ones(len(answers), bool)
        rows.append((int(is_in.sum()), int(answers["customer_id"][is_in].nunique()),
                     *_estimate(metric, answers[metric][is_in])))  # fmt: skip
    table = pd.DataFrame(rows, index=pd.Index([*labels, "all"], name="tier", dtype="str"),
                         columns=["answers", "customers_answering", "estimate", "ci_lower",
                                  "ci_upper"])  # fmt: skip
    tier_values = tiers.summary_["value"].to_numpy(dtype=np.float64)
    table["value"] = np.append(tier_values, tier_values.sum())
    if metric == "nps":
        table = _with_detractors(table, answers, customers, labels)
    table["is_small_sample"] = flag_small(
        table["answers"], list(table.index), subject=f"{label} by value tier", unit="answers",
        cells="tiers", fix="those intervals are wide: use fewer tiers or collect more answers",
    )  # fmt: skip
    return table


def _with_detractors(table: pd.DataFrame, answers: pd.DataFrame, customers: pd.DataFrame,
                     labels: list[str]) -> pd.DataFrame:  # fmt: skip
    """The customers whose latest answer detracts, their value and its share, per tier."""
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
    held = detractors.groupby("tier")["value"].agg(["size", "sum"]).reindex(labels, fill_value=0)
    count = held["size"].to_numpy(dtype=np.int64)
    value = held["sum"].to_numpy(dtype=np.float64)
    count, value = np.append(count, count.sum()), np.append(value, value.sum())
    with np.errstate(invalid="ignore", divide="ignore"):  # a tier worth 0: NaN share
        share = value / table["value"].to_numpy(dtype=np.float64)
    return table.assign(detractors=count, detractor_value=value, detractor_value_share=share)
