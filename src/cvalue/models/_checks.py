"""The checks of a (frequency, recency, T) summary that the continuous-time purchase models share.

BG/NBD, MBG/NBD and Pareto/NBD read the same summary. Each rule names the column, what is wrong,
how many rows break it, one customer, and the fix; every rule broken is reported at once.
Fitting adds one rule that scoring does not need: a customer without a repeat purchase has
recency 0 (lifetimes' convention); a positive recency there means the summary's recency is
something else, such as the time since the last purchase.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

from cvalue.errors import DataQualityError, SchemaError
from cvalue.models._base import FloatArray, Patterns, patterns_of, per_pattern, require_columns

__all__ = [
    "RECENCY_SLACK",
    "SUMMARY_COLUMNS",
    "check_frame",
    "checked_summary",
    "checked_summary_patterns",
    "describe_rule",
    "summary_patterns",
]

SUMMARY_COLUMNS = ("frequency", "recency", "T")
RECENCY_SLACK = 1e-9  # relative: recency == T up to rounding of days / 7 is not an error
BoolArray = npt.NDArray[np.bool_]
Rule = tuple[BoolArray, str, str]


def _rules(values: dict[str, FloatArray], weight: FloatArray | None, *, is_fit: bool) -> list[Rule]:
    """Each rule of a (frequency, recency, T) summary: the values that break it, what, the fix."""
    x, t_x, T = values["frequency"], values["recency"], values["T"]
    with np.errstate(invalid="ignore"):  # NaN compares False: counted by the first rule
        rules = [
            (~np.isfinite(x) | ~np.isfinite(t_x) | ~np.isfinite(T),
             "'frequency', 'recency' or 'T' is missing or infinite", "drop or fill those rows"),
            (x < 0, "'frequency' is negative", "frequency counts repeat purchases"),
            (x != np.floor(x), "'frequency' is not a whole number", "it counts purchases"),
            (t_x < 0, "'recency' is negative", "recency is the time since the first purchase"),
            (T <= 0, "'T' is not positive", "T is the customer's age at the observation end"),
            (t_x > T * (1.0 + RECENCY_SLACK),
             "'recency' > 'T'", "recency cannot exceed the customer's age. Is observation_end "
             "before the last purchase?"),
        ]  # fmt: skip
        if is_fit:
            rules.append((
                (x == 0) & (t_x > 0), "'recency' > 0 with 'frequency' 0",
                "without a repeat purchase recency is 0 (it is the time from the first to the last "
                "purchase, not the time since the last purchase). Build the summary with "
                "cvalue.rfm_summary",
            ))  # fmt: skip
        if weight is not None:
            rules.append((~(weight >= 0), "'weight' is negative or missing",
                          "weights count the customers of each row"))  # fmt: skip
    return rules


def describe_rule(what: str, n_bad: int, n_rows: int, example: object, fix: str) -> str:
    """One broken rule for an error message: what, how many rows, one customer, the fix."""
    if isinstance(example, np.generic):  # an id from a numpy-backed index reads as plain 1004
        example = example.item()
    return f"{what} in {n_bad:,} of {n_rows:,} rows (e.g. customer {example!r}); {fix}"


def _problems(data: pd.DataFrame, *, is_fit: bool) -> list[str]:
    """Every rule of a (frequency, recency, T) summary that some rows break, with counts."""
    values = {c: data[c].to_numpy(dtype=np.float64) for c in SUMMARY_COLUMNS}
    weight = data["weight"].to_numpy(dtype=np.float64) if "weight" in data else None
    found = []
    for is_bad, what, fix in _rules(values, weight, is_fit=is_fit):
        n_bad = int(np.count_nonzero(is_bad))
        if n_bad:
            example = data.index[int(np.argmax(is_bad))]
            found.append(describe_rule(what, n_bad, len(data), example, fix))
    return found


def check_frame(data: pd.DataFrame, model: str) -> None:
    """Raise unless ``data`` is a DataFrame with rows and the summary's columns."""
    require_columns(data, SUMMARY_COLUMNS, model)
    if len(data) == 0:
        raise DataQualityError(f"{model} got a summary with 0 rows: there is nothing to fit")


def checked_summary(data: pd.DataFrame, model: str, *, is_fit: bool = False) -> pd.DataFrame:
    """``data`` itself, after checking its columns and values; raises on the first failure kind."""
    check_frame(data, model)
    try:
        found = _problems(data, is_fit=is_fit)
    except (TypeError, ValueError) as exc:
        raise SchemaError(
            f"{model} needs numeric 'frequency', 'recency' and 'T' columns; got dtypes "
            f"{data[list(SUMMARY_COLUMNS)].dtypes.astype(str).to_dict()} ({len(data):,} rows)"
        ) from exc
    if found:
        raise DataQualityError(f"{model}: " + "; ".join(found))
    return data


def checked_summary_patterns(
    data: pd.DataFrame, model: str, *, is_fit: bool = False
) -> tuple[dict[str, FloatArray], npt.NDArray[np.intp]]:
    """The distinct (frequency, recency, T) rows of ``data`` and the map back, checked.

    The rules of :func:`checked_summary` are evaluated once per distinct row; a rule's row count
    is the number of rows of the patterns that break it, so the message is the same, at the cost
    of the patterns instead of the rows. Missing or non-numeric values stop the compression, and
    :func:`checked_summary` then names them.
    """
    check_frame(data, model)
    failure: Exception | None = None
    try:
        values, inverse = per_pattern(data, SUMMARY_COLUMNS, model=model)
    except (DataQualityError, TypeError, ValueError) as exc:
        failure = exc
    if failure is not None:
        checked_summary(data, model, is_fit=is_fit)
        raise failure
    found = []
    for is_bad, what, fix in _rules(values, None, is_fit=is_fit):
        if is_bad.any():
            is_bad_row = is_bad[inverse]
            example = data.index[int(np.argmax(is_bad_row))]
            found.append(describe_rule(what, int(np.count_nonzero(is_bad_row)), len(data), example,
                                   fix))  # fmt: skip
    if found:
        raise DataQualityError(f"{model}: " + "; ".join(found))
    return values, inverse


def summary_patterns(data: pd.DataFrame, model: str) -> Patterns:
    """The checked, weighted distinct (frequency, recency, T) rows that a fit reads.

    A ``weight`` column marks data that is already compressed (each row checked as it is);
    otherwise the rules run once per distinct row and count the rows behind each.
    """
    if isinstance(data, pd.DataFrame) and "weight" in data:
        return patterns_of(checked_summary(data, model, is_fit=True), SUMMARY_COLUMNS,
                           model=model)  # fmt: skip
    values, inverse = checked_summary_patterns(data, model, is_fit=True)
    weights = np.bincount(inverse, minlength=len(values["frequency"])).astype(np.float64)
    return Patterns(values, weights)
