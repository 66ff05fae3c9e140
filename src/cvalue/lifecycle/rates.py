"""Retention and churn rates with binomial confidence intervals, by period, cohort or tenure.

:func:`retention_rate` gives CRR = (customers at end - new customers) / customers at start and
:func:`churn_rate` the new losses over the customers at start, each with a Wilson or
Clopper-Pearson interval and ``is_small_sample`` for groups of few customers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, TypeAlias

import numpy as np
import pandas as pd

from cvalue.errors import SMALL_SAMPLE, SchemaError
from cvalue.lifecycle.periods import BoolArray, IndexArray, IntArray
from cvalue.lifecycle.rules import InactivityRule  # noqa: F401  (the doctests use it)
from cvalue.lifecycle.states import (
    ACQUIRED,
    REACTIVATED,
    _Panel,
    _panel,
    lifecycle_states,  # noqa: F401  (the doctests use it)
)
from cvalue.samples import Interval, binomial_interval, check_min_customers, flag_small

__all__ = ["churn_rate", "retention_rate"]

GroupBy: TypeAlias = Literal["period", "cohort", "tenure"]


def _group_keys(
    panel: _Panel, by: GroupBy | Sequence[GroupBy]
) -> tuple[IntArray, pd.Index, Sequence[str]]:
    """Dense group codes of the panel's rows, the labels of every possible group, the names."""
    names = [by] if isinstance(by, str) else list(by)
    known: dict[str, tuple[IndexArray, pd.Index]] = {
        "period": (panel.period, panel.labels),
        "cohort": (panel.cohort, panel.labels),
        "tenure": (panel.tenure, pd.RangeIndex(len(panel.labels))),
    }
    unknown = [name for name in names if name not in known]
    if not names or unknown:
        raise SchemaError(f"by must be 'period', 'cohort', 'tenure' or a list of them, got {by!r}")
    codes = [known[name][0] for name in names]
    levels = [pd.Index(known[name][1], name=name) for name in names]
    shape = tuple(len(level) for level in levels)
    key = np.ravel_multi_index(codes, shape) if codes[0].size else np.zeros(0, np.int64)
    index = levels[0] if len(levels) == 1 else pd.MultiIndex.from_product(levels)
    return np.asarray(key, dtype=np.int64), index, names


def _customers_at_risk(
    panel: _Panel, key: IntArray, is_at_risk: BoolArray, names: Sequence[str], size: int
) -> IntArray:
    """Distinct customers with a row at risk in each group.

    By period or tenure a customer has at most one row per group, so this is the count of rows
    at risk; by cohort alone the rows of every period add up, and each customer counts once.
    """
    if "period" in names or "tenure" in names:
        return np.bincount(key[is_at_risk], minlength=size).astype(np.int64)
    is_first = panel.tenure == 0
    customer = np.cumsum(is_first) - 1  # rows are in customer and period order
    has_risk = np.bincount(customer[is_at_risk], minlength=int(is_first.sum())) > 0
    return np.bincount(key[is_first][has_risk], minlength=size).astype(np.int64)


def _cell_labels(index: pd.Index) -> list[str]:
    """Group labels as a message shows them: ``2024-03``, or ``cohort 2024-01 tenure 3``."""
    if isinstance(index, pd.MultiIndex):
        return [
            " ".join(f"{name} {value}" for name, value in zip(index.names, label, strict=True))
            for label in index
        ]
    return [str(label) for label in index]


_POOL = (
    "their rates and intervals rest on few customers. Pool them into longer periods (a coarser "
    "period=), or accept wider intervals and pass min_customers= a smaller number"
)


def _rates(
    states: pd.DataFrame, by: GroupBy | Sequence[GroupBy], level: float, interval: Interval,
    of: Literal["retained", "lost"], min_customers: int,
) -> pd.DataFrame:  # fmt: skip
    if not 0.0 < level < 1.0:
        raise SchemaError(f"level must be in (0, 1), got {level!r}")
    threshold = check_min_customers(min_customers)
    panel = _panel(states)
    key, index, names = _group_keys(panel, by)
    size = len(index)
    is_later = panel.tenure > 0  # acquisition periods have nobody at their start
    is_at_risk = is_later & ~panel.was_lost

    def count(mask: BoolArray) -> IntArray:
        return np.bincount(key[mask], minlength=size).astype(np.int64)

    start = count(is_at_risk)
    lost = count(panel.is_new_loss)
    new = count((panel.state == REACTIVATED) | (panel.state == ACQUIRED))
    keep = count(is_later) > 0
    customers = _customers_at_risk(panel, key, is_at_risk, names, size)
    counts = {"customers_start": start, "new": new, "customers_end": start - lost + new,
              "retained": start - lost, "lost": lost, "customers": customers}  # fmt: skip
    table = pd.DataFrame({name: values[keep] for name, values in counts.items()}, index=index[keep])
    successes = table[of].to_numpy(np.int64)
    trials = table["customers_start"].to_numpy(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):  # no customers at the start: NaN
        table["rate"] = successes / trials
    table["ci_lower"], table["ci_upper"] = binomial_interval(
        successes, trials, level=level, interval=interval
    )
    subject = f"{'retention' if of == 'retained' else 'churn'} rate by {' and '.join(names)}"
    table["is_small_sample"] = flag_small(
        table["customers"], _cell_labels(table.index), subject=subject, unit="customers",
        fix=_POOL, threshold=threshold, cells=f"{names[0]}s" if len(names) == 1 else "cells",
        stacklevel=4,
    )  # fmt: skip
    return table


def retention_rate(
    states: pd.DataFrame,
    *,
    by: GroupBy | Sequence[GroupBy] = "period",
    level: float = 0.95,
    interval: Interval = "wilson",
    min_customers: int = SMALL_SAMPLE,
) -> pd.DataFrame:
    """Customer retention rate, CRR = (customers at end - new customers) / customers at start.

    In a period, the customers at the start are those active at the end of the previous period,
    the new ones are acquired or reactivated in the period (not customers at its start), and the
    customers at the end are the active ones; so CRR = retained / customers at start, where
    retained = customers at start - new losses. By ``"cohort"`` or ``"tenure"`` (or a list such as
    ``["cohort", "tenure"]``) the counts add up over the periods of the group: they count
    customer-periods, and the rate is the mean per-period retention of the group.

    Parameters
    ----------
    states
        The output of :func:`lifecycle_states`.
    by
        ``"period"``, ``"cohort"``, ``"tenure"`` or a list of them.
    level
        The confidence level of the interval.
    interval
        ``"wilson"`` (Wilson score interval, the default) or ``"exact"`` (Clopper-Pearson). Both
        treat each customer-period at risk as an independent Bernoulli trial.
    min_customers
        Groups with fewer ``customers`` than this (:data:`cvalue.metrics.SMALL_SAMPLE`, 100, by
        default) are flagged ``is_small_sample``; 0 flags none.

    Returns
    -------
    pandas.DataFrame
        By group (groups with no customer past its acquisition period are left out):
        ``customers_start``, ``new``, ``customers_end``, ``retained``, ``lost``, ``customers``
        (distinct customers among ``customers_start``: the same number by period or tenure, but by
        cohort each customer counts once however many periods add up), ``rate``, ``ci_lower``,
        ``ci_upper`` and ``is_small_sample`` (``customers < min_customers``).

    Warns
    -----
    SmallSampleWarning
        Once, when some groups have fewer than ``min_customers`` customers: how many, the first
        few, and the fix (longer periods, or a smaller ``min_customers`` to accept them).

    Examples
    --------
    >>> log = pd.DataFrame({"customer_id": [1, 1, 2, 2, 3],
    ...                     "timestamp": pd.to_datetime(["2024-01-05", "2024-02-02", "2024-01-10",
    ...                                                  "2024-03-01", "2024-02-03"])})
    >>> states = lifecycle_states(log, period="M", rule=InactivityRule(1))
    >>> rates = retention_rate(states, min_customers=2)  # a toy log: accept two customers
    >>> rates[["customers_start", "new", "customers_end", "rate", "ci_upper", "is_small_sample"]]
             customers_start  new  customers_end  rate  ci_upper  is_small_sample
    period
    2024-02                2    1              2   0.5  0.905469            False
    2024-03                2    1              1   0.0  0.657620            False
    """
    return _rates(states, by, level, interval, "retained", min_customers)


def churn_rate(
    states: pd.DataFrame,
    *,
    by: GroupBy | Sequence[GroupBy] = "period",
    level: float = 0.95,
    interval: Interval = "wilson",
    min_customers: int = SMALL_SAMPLE,
) -> pd.DataFrame:
    """Churn rate = new losses / customers at start, ``1 - retention_rate``, with its interval.

    Parameters, columns and the small-sample flag are those of :func:`retention_rate`; ``rate``
    is ``lost / customers_start`` and the interval is the binomial interval of the losses.
    """
    return _rates(states, by, level, interval, "lost", min_customers)
