"""What the report calls things, and how it writes numbers.

One mapping from the column and row names of cvalue's tables to readable labels
(:data:`LABELS`), with a fallback that turns any other snake_case name into words
(:func:`label`); the report's number formats (:func:`percent`, :func:`amount`, :func:`count`);
and the explanations of every lifecycle state and every column of the scores table that the
report's glossary shows.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

from cvalue.errors import CValueError
from cvalue.units import Duration

__all__ = [
    "LABELS",
    "SCORE_COLUMNS",
    "STATES",
    "amount",
    "as_percent_text",
    "count",
    "formatter",
    "glossary_tables",
    "horizon_words",
    "is_percent",
    "label",
    "labelled",
    "percent",
]

LABELS: Mapping[str, str] = {
    # the scores table and the at-risk list
    "customer_id": "Customer", "segment": "Segment", "p_alive": "P(alive)",
    "expected_spend": "Expected spend per purchase", "clv": "CLV", "value_tier": "Value tier",
    "lifecycle_state": "Lifecycle state", "net_profit": "Net profit",
    "is_cross_buyer": "Cross-buyer?", "run_id": "Run", "scored_at": "Scored at",
    "rank": "Rank", "expected_value_lost": "Expected value lost",
    # data quality and the run
    "rows": "Rows", "read": "Read", "kept": "Kept", "rejected": "Rejected",
    "seconds": "Seconds", "stage": "Stage", "reason": "Reason",
    # model fit
    "model": "Model", "beta_geo": "BG/NBD", "modified_beta_geo": "MBG/NBD",
    "pareto_nbd": "Pareto/NBD", "beta_geo_beta_binom": "BG/BB",
    "holdout_mae": "Holdout MAE", "holdout_rmse": "Holdout RMSE", "holdout_bias": "Holdout bias",
    "relative_error_total": "Relative error of the total",
    "predicted_total": "Predicted total", "actual_total": "Actual total", "gini": "Gini",
    "top_decile_lift": "Top-decile lift", "brier": "Brier score",
    "calibration_log_likelihood": "Calibration log-likelihood", "estimate": "Estimate",
    "std_err": "Standard error", "std_error": "Standard error",
    "ci_lower": "Lower bound", "ci_upper": "Upper bound", "parameter": "Parameter",
    # lifecycle
    "period": "Period", "cohort": "Cohort", "customers": "Customers",
    "is_small_sample": "Small sample?",
    # value
    "horizon": "Horizon", "group": "Group", "existing": "Existing customers",
    "future": "Future customers", "equity": "Equity",
    # segments
    "tier": "Tier", "value": "Value", "share_of_customers": "Share of customers",
    "share_of_value": "Share of value", "mean_value": "Mean value", "min_value": "Lowest value",
    "max_value": "Highest value", "value_band": "Value band", "churn_risk": "Churn risk",
    # cross-sell
    "driver": "Driver", "return_rate": "Return rate", "promotion_share": "Promotion share",
    "service_intensity": "Service intensity", "spend_per_category": "Spend per category",
    "mean_unprofitable": "Mean, unprofitable", "mean_profitable": "Mean, profitable",
    "difference": "Difference", "effect_size": "Effect size (Hedges' g)", "rule": "Rule",
    "share_of_population": "Share of cross-buyers", "total_value": "Total value",
    "total_loss": "Total loss", "loss_share": "Share of losses", "is_flagged": "Flagged?",
    # experience
    "answers": "Answers", "customers_answering": "Customers answering",
    "detractors": "Detractors", "detractor_value": "Detractors' value",
    "detractor_value_share": "Detractors' share of value",
}  # fmt: skip
"""Readable labels of the names in cvalue's tables (columns, index names, known row names)."""

_BY_HORIZON = {"clv": "CLV", "expected_purchases": "Expected purchases"}
_HORIZON = re.compile(
    r"^(?P<name>clv|expected_purchases)_(?P<horizon>\d+(?:\.\d+)?[a-zA-Z]+)"
    r"(?:_(?P<bound>lower|upper))?$"
)
_WORDS = {"clv": "CLV", "ci": "CI", "nps": "NPS", "csat": "CSAT", "ces": "CES", "id": "id"}
"""Words the snake_case fallback writes in capitals (or as they are)."""


def horizon_words(text: str) -> str | None:
    """``"3y"`` as ``"3 years"``, ``"18M"`` as ``"18 months"``; None if it is no duration."""
    try:
        horizon = Duration.parse(text)
    except (CValueError, ValueError):
        return None
    unit = horizon.unit.value
    return f"{horizon.value:g} {unit}{'' if horizon.value == 1 else 's'}"


def label(name: object) -> str:
    """The readable label of a column or row name.

    Known names come from :data:`LABELS`; ``clv_<horizon>`` and ``expected_purchases_<horizon>``
    name their horizon in words; any other snake_case name becomes words, capitalised.

    Examples
    --------
    >>> label("clv_3y"), label("p_alive"), label("share_of_value"), label("days_since_last")
    ('CLV, 3 years', 'P(alive)', 'Share of value', 'Days since last')
    """
    text = str(name)
    if text in LABELS:
        return LABELS[text]
    found = _HORIZON.match(text)
    if found is not None:
        words = horizon_words(found["horizon"])
        if words is not None:
            bound = f", {found['bound']} bound" if found["bound"] else ""
            return f"{_BY_HORIZON[found['name']]}, {words}{bound}"
    if not text.islower():  # a label already, or a name someone chose with capitals
        return text
    words = " ".join(_WORDS.get(word, word) for word in text.replace("_", " ").split())
    return words[:1].upper() + words[1:]


def percent(share: float | None) -> str:
    """A share as a percentage with one decimal: ``0.1234`` is ``"12.3%"``; missing is ``"n/a"``."""
    return "n/a" if share is None or math.isnan(share) else f"{100 * share:,.1f}%"


def amount(value: float | None) -> str:
    """An amount in whole units with thousands separators: ``"60,782"``; missing is ``"n/a"``."""
    return "n/a" if value is None or math.isnan(value) else f"{value:,.0f}"


def count(number: float) -> str:
    """A count with thousands separators: ``"1,000"``."""
    return f"{number:,.0f}"


def _number(value: float) -> str:
    """Four significant digits, but large amounts whole with separators (12,345 not 1.234e+04)."""
    if math.isnan(value):
        return "n/a"
    return f"{value:,.0f}" if abs(value) >= 1e4 else f"{value:,.4g}"


def is_percent(name: object) -> bool:
    """Whether a column holds shares or probabilities, shown as percentages."""
    text = str(name)
    return text == "p_alive" or "share" in text.split("_")


def formatter(name: object, values: pd.Series) -> Callable[[object], str] | None:
    """How the report writes a column's cells (None: as pandas writes them, text and dates)."""
    if pd.api.types.is_bool_dtype(values.dtype):
        return lambda cell: "yes" if cell else "no"
    if not pd.api.types.is_numeric_dtype(values.dtype):
        return None
    if is_percent(name):
        return lambda cell: percent(float(cell))  # type: ignore[arg-type]
    if pd.api.types.is_integer_dtype(values.dtype):
        return lambda cell: count(float(cell))  # type: ignore[arg-type]
    return lambda cell: _number(float(cell))  # type: ignore[arg-type]


_SPELLED_HORIZON = re.compile(r"^\d+(?:\.\d+)? (?:day|week|month|quarter|year)$")


def _index_label(value: object) -> object:
    """A row name: relabelled when it is a name cvalue knows or a horizon, as it is otherwise."""
    if not isinstance(value, str):
        return value
    if _SPELLED_HORIZON.match(value):  # an equity row: "3 year" reads "3 years"
        return horizon_words(value) or value
    return LABELS.get(value, value)


def labelled(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with readable column labels, index names and known row names.

    Only row names listed in :data:`LABELS` change (``beta_geo``, ``return_rate``): other rows
    are data (customer ids, periods, segments) and stay as they are.
    """
    shown = table.rename(columns=label)
    index = shown.index
    if isinstance(index, pd.MultiIndex):
        shown.index = pd.MultiIndex.from_arrays(
            [index.get_level_values(level).map(_index_label) for level in range(index.nlevels)],
            names=[_name(name) for name in index.names],
        )
    elif index.dtype == object or pd.api.types.is_string_dtype(index.dtype):
        shown.index = pd.Index([_index_label(value) for value in index], name=_name(index.name))
    else:
        shown.index = index.rename(_name(index.name))
    return shown


def _name(name: object) -> object:
    return None if name is None else label(name)


STATES: Mapping[str, str] = {
    "acquired": "The customer's first period: the first purchase, or the recorded acquisition.",
    "retained": "A later period with a purchase, the customer not lost in the period before.",
    "inactive": "No purchase in the period, but not yet lost: the window since the last "
    "purchase ([lifecycle] window) has not run out.",
    "reactivated": "A period with a purchase right after one in which the customer was lost: "
    "won back.",
    "lost": "No purchase and the window has run out: the customer is counted as gone, and stays "
    "lost until the next purchase.",
    "active": "In the flows: customers acquired, retained, inactive or reactivated in the "
    "period, that is, not lost.",
    "dormant": "In the flows: customers in the lost state in the period, lost then or earlier.",
}
"""Each lifecycle state (and the two totals of the flows table), in one sentence."""

SCORE_COLUMNS: Mapping[str, str] = {
    "customer_id": "The customer, as in the source.",
    "segment": "The segment from [source.customers] segment ('unassigned' when missing).",
    "p_alive": "The probability, from the purchase model, that the customer is still active at "
    "the observation end.",
    "expected_spend": "Expected spend per purchase, from the Gamma-Gamma spend model.",
    "expected_purchases_<h>": "Expected number of purchases over horizon <h>, one column per "
    "horizon in [value] horizons.",
    "clv_<h>": "Customer lifetime value over horizon <h>: the discounted gross margin less the "
    "discounted costs to serve and of marketing; acquisition cost is not deducted.",
    "value_tier": "The customer's value tier by CLV at the longest horizon (top 1%, top 1-5% ...).",
    "lifecycle_state": "The lifecycle state in the last period (see the states above).",
    "net_profit": "Profit over the observed period, after returns, service and promotion costs "
    "(with a category column).",
    "is_cross_buyer": "Whether the customer bought from several categories (with a category "
    "column).",
    "run_id": "The run's identifier, the same on every row of a run.",
    "scored_at": "When the run wrote the scores, in UTC.",
}
"""Each column of the scores table, in one sentence (``<h>``: a horizon such as ``3y``)."""


def glossary_tables() -> list[tuple[str, pd.DataFrame]]:
    """The glossary's two tables: lifecycle states, and the scores table's columns."""
    # the names are data here, as the scores table spells them: columns, not relabelled rows
    states = pd.DataFrame({"state": list(STATES), "meaning": list(STATES.values())})
    columns = pd.DataFrame(
        {"column": list(SCORE_COLUMNS), "shown_as": [_shown_as(name) for name in SCORE_COLUMNS],
         "meaning": list(SCORE_COLUMNS.values())}
    )  # fmt: skip
    return [("Lifecycle states", states), ("Columns of the scores table", columns)]


def _shown_as(name: str) -> str:
    """The label a scores column has in the report's tables (a horizon's: ``CLV, 3 years``)."""
    example = name.replace("<h>", "3y")
    return label(example).replace("3 years", "<h>") if "<h>" in name else label(name)


def as_percent_text(table: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """``table`` with ``columns`` (shares held as numbers) written as percentages."""
    shown = table.copy()
    for column in columns:
        if column in shown:
            values = shown[column].to_numpy(dtype=np.float64)
            shown[column] = [percent(value) for value in values]
    return shown
