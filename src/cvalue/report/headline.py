"""The report's headline: the answer first, each figure with a line that says what it is.

Customer equity at each horizon with its interval, the customers scored, the share of value at
risk, the unprofitable cross-buyers and their losses, and the at-risk list. Every figure comes
from the run's result, the same in memory, chunk by chunk and on Dask: the counts and the value
at risk from the value x risk grid (which every run sums over the whole base), the losses from
the cross-sell analysis and the whale curve of net profit.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pandas as pd

from cvalue.report.html import Highlight, Section
from cvalue.report.labels import amount, count, horizon_words, percent
from cvalue.results import JobResult
from cvalue.segments import AT_RISK_P_ALIVE_BELOW

__all__ = ["CURRENCY_NOTE", "headline_section", "value_at_risk"]

CURRENCY_NOTE = (
    "Amounts are in the currency of the transactions' amounts: the configuration names no "
    "currency, so none is shown."
)
_AT_RISK_CHURN = 1.0 - AT_RISK_P_ALIVE_BELOW  # churn risk above this: P(alive) below the cut


def _horizon_words(label: object) -> str:
    """An equity row's horizon (``"3 year"``) in words: ``"3 years"``."""
    return horizon_words(str(label)) or str(label)


def _equity(result: JobResult) -> Iterator[Highlight]:
    equity = result.equity
    if equity is None:
        return
    for label, row in equity.total.iterrows():
        words = _horizon_words(label)
        has_future = bool(row.get("future", 0.0))
        whose = "every current customer's CLV" + (" and future cohorts'" if has_future else "")
        interval = (f"{equity.level:.0%} interval {amount(row['ci_lower'])} to "
                    f"{amount(row['ci_upper'])}" if equity.level is not None
                    else "no interval computed")  # fmt: skip
        yield Highlight(
            key=f"equity-{words.replace(' ', '-')}", title=f"Customer equity, {words}",
            value=amount(row["equity"]),
            detail=f"{interval} (from the models' parameter uncertainty): the sum of {whose} "
                   f"over {words}, discounted.",
        )  # fmt: skip


def _n_customers(result: JobResult) -> int | None:
    """The customers scored: from the grid (every run sums it over the whole base)."""
    if result.grid is not None:
        return int(result.grid["customers"].sum())
    if result.in_database is not None:
        return result.in_database.n_customers
    return None if result.scores is None else len(result.scores)


def value_at_risk(grid: pd.DataFrame) -> tuple[float, int]:
    """The share of value and the customers in the grid's churn-risk bands above 0.5.

    A band ``0.5-0.75`` holds churn risks in (0.5, 0.75], so the bands from 0.5 up hold exactly
    the customers with P(alive) below 0.5 (:data:`cvalue.segments.AT_RISK_P_ALIVE_BELOW`). The
    share is of the total value of the base (NaN when that is not positive).
    """
    risk = grid.index.get_level_values("churn_risk")
    lower = np.array([float(str(band).split("-")[0]) for band in risk])
    at_risk = grid[lower >= _AT_RISK_CHURN]
    total = float(grid["value"].sum())
    share = float(at_risk["value"].sum()) / total if total > 0 else math.nan
    return share, int(at_risk["customers"].sum())


def _horizon_of(result: JobResult) -> str:
    """The longest horizon in words: the one the tiers, the grid and the at-risk list rank by."""
    horizons = result.config.value.horizons
    if not horizons:
        return "the longest horizon"
    return _horizon_words(max(horizons, key=lambda horizon: horizon.days))


def _base(result: JobResult) -> Iterator[Highlight]:
    n_customers = _n_customers(result)
    end = result.loaded.observation_end.date()
    if n_customers is not None:
        yield Highlight(
            key="customers", title="Customers", value=count(n_customers),
            detail=f"Customers scored: everyone with a purchase history up to {end}.",
        )  # fmt: skip
    if result.grid is not None:
        share, n_at_risk = value_at_risk(result.grid)
        yield Highlight(
            key="value-at-risk", title="Share of value at risk", value=percent(share),
            detail=f"of the CLV over {_horizon_of(result)} is held by the {count(n_at_risk)} "
                   f"customers more likely gone than active (P(alive) below "
                   f"{percent(AT_RISK_P_ALIVE_BELOW)}).",
        )  # fmt: skip


def _losses(result: JobResult) -> Iterator[Highlight]:
    profit = result.profitability
    if profit is None:
        return
    lost = ""
    if result.whale is not None and not math.isnan(profit.loss_share_):
        lost = f" ({amount(profit.loss_share_ * result.whale.total_loss_)})"
    yield Highlight(
        key="unprofitable", title="Unprofitable cross-buyers",
        value=percent(profit.unprofitable_share_),
        detail=f"of the {count(profit.n_cross_buyers_)} cross-buyers lost money over the observed "
               f"period; they carry {percent(profit.loss_share_)} of all customer losses{lost}.",
    )  # fmt: skip


def _at_risk(result: JobResult) -> Iterator[Highlight]:
    listed = result.at_risk
    if listed is None:
        return
    value = listed.columns[1]  # the list's CLV column (at_risk_valuable's layout)
    yield Highlight(
        key="at-risk", title="Valuable customers at risk", value=count(len(listed)),
        detail=f"the highest CLV among those with P(alive) below "
               f"{percent(AT_RISK_P_ALIVE_BELOW)}: {amount(listed[value].sum())} of CLV, "
               f"{amount(listed['expected_value_lost'].sum(min_count=1))} expected value lost "
               "(listed below, and as CSV).",
    )  # fmt: skip


def headline_section(result: JobResult) -> Section:
    """The report's first section: the figures that answer the report's question."""
    highlights = [*_equity(result), *_base(result), *_losses(result), *_at_risk(result)]
    notes = [CURRENCY_NOTE]
    if result.profitability is None:
        notes.append("No category column: the unprofitable cross-buyers cannot be measured.")
    if result.in_database is not None:
        notes.append("Every figure here is of the whole base (the plots below draw a sample).")
    return Section(key="headline", title="At a glance", highlights=highlights, paragraphs=notes)
