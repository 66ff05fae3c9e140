"""CLV against acquisition cost, and the back-of-envelope LTV against the model-based value.

:func:`clv_to_cac` compares CLV with CAC by channel or cohort, with the payback time;
:func:`simple_ltv` is the CRM heuristic (purchases per year x average check x years),
:func:`simple_ltv_table` computes it from the data and :func:`compare_ltv` splits its gap to the
model-based value by cause.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from cvalue.errors import DataQualityError, SchemaError
from cvalue.io.schema import Columns
from cvalue.units import TimeUnit, as_timestamp
from cvalue.value.clv import CustomerValue
from cvalue.value.inputs import _aligned, _check_range, _first, _numeric, _purchase_rows

__all__ = ["clv_to_cac", "compare_ltv", "simple_ltv", "simple_ltv_table"]


# --- acquisition cost ----------------------------------------------------------------------------


def clv_to_cac(
    values: CustomerValue,
    acquisition: pd.DataFrame,
    *,
    by: str | Sequence[str] = "channel",
    cost_column: str = "acquisition_cost",
) -> pd.DataFrame:
    """CLV against acquisition cost (CAC) by channel or cohort.

    Parameters
    ----------
    values
        The result of :func:`clv` (typically for recently acquired customers).
    acquisition
        Per customer (indexed by customer id): the acquisition cost and the grouping column(s),
        such as ``make_crm(...).customers``.
    by
        The grouping column(s) of ``acquisition``: ``"channel"``, ``"cohort"``, ...
    cost_column
        The column of ``acquisition`` with each customer's acquisition cost.

    Returns
    -------
    pandas.DataFrame
        Per group: ``customers``, the mean ``cac`` and ``clv``, ``clv_to_cac`` (total CLV over
        total CAC), ``value_net_of_cac`` (mean CLV - mean CAC) and ``payback_years``: when the
        group's cumulative discounted net cash flow per customer reaches its mean CAC (linear
        within a period; NaN when not within the horizon).
    """
    if "acquisition_cost" in values.margin_net_of:
        raise SchemaError(
            "the margin of these values already nets acquisition cost; comparing "
            "CLV with CAC would subtract it twice"
        )
    columns = [by] if isinstance(by, str) else list(by)
    index = values.customers.index
    if cost_column not in acquisition:
        raise SchemaError(
            f"acquisition lacks the column {cost_column!r}; it has {list(acquisition.columns)}"
        )
    labels = _group_keys(acquisition, columns, index, "acquisition")
    cost = _numeric(_aligned(acquisition[cost_column], index, cost_column), cost_column)
    _check_range(cost, cost_column, index, upper=math.inf)
    frame = pd.DataFrame({"clv": values.customers["clv"].to_numpy(), "cac": cost}, index=index)
    grouped = frame.groupby(labels.to_numpy(), sort=True)
    result = grouped.agg(customers=("clv", "size"), cac=("cac", "mean"), clv=("clv", "mean"))
    result["clv_to_cac"] = grouped["clv"].sum() / grouped["cac"].sum()
    result["value_net_of_cac"] = result["clv"] - result["cac"]
    periods = values.periods(by=labels)
    result["payback_years"] = [
        _payback(periods.loc[label], float(result.loc[label, "cac"])) for label in result.index
    ]
    result.index.name = " / ".join(columns)
    return result


def _group_keys(
    frame: pd.DataFrame, columns: Sequence[str], index: pd.Index, name: str
) -> pd.Series:
    """One label per customer of ``index`` from ``frame``'s columns; missing ones are an error."""
    missing = [c for c in columns if c not in frame]
    if missing:
        raise SchemaError(f"{name} lacks column(s) {missing}; it has {list(frame.columns)}")
    keys = frame[list(columns)].reindex(index)
    is_missing = keys.isna().any(axis=1).to_numpy()
    if is_missing.any():
        raise DataQualityError(
            f"{name} gives no {'/'.join(columns)} for {int(is_missing.sum()):,} of {len(index):,} "
            f"customers (e.g. customer {_first(index, is_missing)!r}); every customer needs one"
        )
    if len(columns) == 1:
        return pd.Series(keys[columns[0]].to_numpy(), index=index)
    joined = keys[columns[0]].astype(str)
    for column in columns[1:]:
        joined = joined + " / " + keys[column].astype(str)
    return pd.Series(joined.to_numpy(), index=index)


def _payback(periods: pd.DataFrame, cac: float) -> float:
    """When the cumulative discounted net cash flow per customer first reaches ``cac``."""
    per_customer = periods["discounted_net_cash_flow"].to_numpy() / periods["customers"].to_numpy()
    cumulative = np.concatenate([[0.0], np.cumsum(per_customer)])
    ends = np.concatenate([[0.0], periods["end_years"].to_numpy()])
    reached = np.flatnonzero(cumulative >= cac)
    if not len(reached):
        return math.nan
    k = int(reached[0])
    if k == 0:
        return 0.0
    share = (cac - cumulative[k - 1]) / (cumulative[k] - cumulative[k - 1])
    return float(ends[k - 1] + share * (ends[k] - ends[k - 1]))


# --- the back-of-envelope LTV --------------------------------------------------------------------


def simple_ltv(
    purchases_per_year: float, average_check: float, years: float, margin: float | None = None
) -> float:
    """The CRM heuristic: purchases per year x average check x years (x margin).

    No churn, no discounting, no costs: ``simple_ltv(5, 500, 20) == 50_000``.
    :func:`compare_ltv` shows how far it is from the model-based value and why.
    """
    given = {
        "purchases_per_year": purchases_per_year,
        "average_check": average_check,
        "years": years,
    }
    bad = {
        name: value for name, value in given.items() if not (math.isfinite(value) and value >= 0)
    }
    if bad:
        raise SchemaError(f"simple_ltv needs finite numbers >= 0, got {bad}")
    if margin is not None and not 0.0 <= margin <= 1.0:
        raise SchemaError(f"margin must be between 0 and 1 (a share of revenue), got {margin!r}")
    revenue = float(purchases_per_year) * float(average_check) * float(years)
    return revenue if margin is None else revenue * float(margin)


def _purchases_per_customer(
    transactions: pd.DataFrame, columns: Columns, observation_end: str | pd.Timestamp | None
) -> pd.DataFrame:
    """Purchases, revenue and years since the first purchase (``exposure``) per customer."""
    rows = _purchase_rows(transactions, columns)
    stamps = pd.to_datetime(rows[columns.timestamp])
    end = stamps.max() if observation_end is None else as_timestamp(observation_end)
    paid = rows[columns.amount or "amount"].to_numpy(dtype=np.float64)
    per_customer = (
        pd.DataFrame({"first": stamps.to_numpy(), "amount": paid})
        .groupby(rows[columns.customer_id].to_numpy())
        .agg(first=("first", "min"), purchases=("amount", "size"), revenue=("amount", "sum"))
    )
    elapsed = end - pd.to_datetime(per_customer["first"])
    year = pd.Timedelta(days=TimeUnit.YEAR.days).total_seconds()
    per_customer["exposure"] = elapsed.dt.total_seconds() / year
    return per_customer


def simple_ltv_table(
    transactions: pd.DataFrame,
    customers: pd.DataFrame,
    *,
    years: float,
    by: str | Sequence[str] = ("segment", "cohort"),
    margin: float | None = None,
    observation_end: str | pd.Timestamp | None = None,
    columns: Columns | None = None,
) -> pd.DataFrame:
    """The heuristic from the data, by segment and cohort.

    Per group: ``purchases_per_year`` (purchases over the customer-years from each customer's
    first purchase to ``observation_end``, the last purchase by default), ``average_check``
    (revenue per purchase; returns excluded), and :func:`simple_ltv` over ``years``.
    """
    columns = columns or Columns.detect(transactions.columns)
    groups = [by] if isinstance(by, str) else list(by)
    per_customer = _purchases_per_customer(transactions, columns, observation_end)
    _group_keys(customers, groups, per_customer.index, "customers")  # every buyer has a group
    keys = customers[groups].reindex(per_customer.index)
    table = per_customer.groupby([keys[c].to_numpy() for c in groups]).agg(
        customers=("purchases", "size"),
        purchases=("purchases", "sum"),
        revenue=("revenue", "sum"),
        customer_years=("exposure", "sum"),
    )
    table.index.names = groups
    table["purchases_per_year"] = table["purchases"] / table["customer_years"]
    table["average_check"] = table["revenue"] / table["purchases"]
    table["years"] = float(years)
    table["simple_ltv"] = [
        simple_ltv(f, c, years, margin)
        for f, c in zip(table["purchases_per_year"], table["average_check"], strict=True)
    ]
    return table


def compare_ltv(
    values: CustomerValue, heuristic: pd.DataFrame, *, by: pd.DataFrame
) -> pd.DataFrame:
    """The heuristic against the model-based value, with the gap split by cause.

    From the heuristic's revenue (``simple_revenue = purchases_per_year * average_check *
    years``: every customer keeps buying at the group's rate for ``years``): ``gap_churn`` (to
    the model's expected revenue, in which customers drop out and spend is shrunk to what the
    model expects), ``gap_margin`` (to the gross margin), ``gap_costs`` (to the net margin after
    cost to serve and marketing) and ``gap_discounting`` (to the CLV). The four gaps add up to
    ``simple_revenue - model_clv``; all are means per customer.

    Parameters
    ----------
    values
        :func:`clv` over the heuristic's ``years``.
    heuristic
        :func:`simple_ltv_table`'s output.
    by
        The customers' group columns, named like ``heuristic``'s index levels.
    """
    years = float(heuristic["years"].iloc[0])
    if not math.isclose(values.horizon.to(TimeUnit.YEAR), years, rel_tol=1e-9):
        raise SchemaError(
            f"the values cover {values.horizon} and the heuristic {years:g} years; "
            f"compute clv(..., horizon='{years:g}y')"
        )
    names = [str(n) for n in heuristic.index.names]
    _group_keys(by, names, values.customers.index, "by")  # every customer has a group
    keys = by[names].reindex(values.customers.index)
    means = (
        values.customers[["revenue", "gross_margin", "net_margin", "clv"]]
        .groupby([keys[c].to_numpy() for c in names])
        .mean()
    )
    means.index.names = names
    means.columns = pd.Index(
        ["model_revenue", "model_gross_margin", "model_net_margin", "model_clv"]
    )
    table = heuristic[["customers", "purchases_per_year", "average_check", "simple_ltv"]].join(
        means, how="outer"
    )
    table.insert(3, "simple_revenue", table["purchases_per_year"] * table["average_check"] * years)
    table["heuristic_over_model"] = table["simple_ltv"] / table["model_clv"]
    table["gap_churn"] = table["simple_revenue"] - table["model_revenue"]
    table["gap_margin"] = table["model_revenue"] - table["model_gross_margin"]
    table["gap_costs"] = table["model_gross_margin"] - table["model_net_margin"]
    table["gap_discounting"] = table["model_net_margin"] - table["model_clv"]
    return table
