"""Aligning the per-customer inputs of a valuation: margins, costs and spend.

Every input comes as a number, a Series per customer or a ``{segment: value}`` mapping, and is
lined up with the customers of the data, with one message per kind of bad row. The cost items
are checked against what the margin already nets (each item exactly once), and the spend per
purchase comes from a number, the observed ``monetary_value`` or a Gamma-Gamma model.
:func:`margin_by_category` builds each customer's margin from margins by product category. The
array aliases here are those the package's modules share.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Literal, TypeAlias, TypeGuard

import numpy as np
import numpy.typing as npt
import pandas as pd

from cvalue.errors import DataQualityError, SchemaError
from cvalue.io.schema import Columns
from cvalue.models import SpendModel

__all__ = ["margin_by_category"]


FloatArray = npt.NDArray[np.float64]
IntpArray = npt.NDArray[np.intp]
CostItem = Literal["cost_to_serve", "marketing_cost", "acquisition_cost"]
Amount: TypeAlias = "float | pd.Series | Mapping[str, float]"
Spend: TypeAlias = (
    "SpendModel | Mapping[str, SpendModel] | float | pd.Series | Mapping[str, float] | "
    "Literal['observed']"
)
_COST_ITEMS: tuple[CostItem, ...] = ("cost_to_serve", "marketing_cost", "acquisition_cost")


# --- aligning per-customer inputs ----------------------------------------------------------------


def _first(values: pd.Index | FloatArray, is_bad: npt.NDArray[np.bool_]) -> object:
    """The first flagged value, as a plain Python value for messages (``13``, not ``np.int64``)."""
    found = values[int(np.argmax(is_bad))]
    return found.item() if isinstance(found, np.generic) else found


def _aligned(values: pd.Series, index: pd.Index, name: str) -> pd.Series:
    """``values`` in the order of ``index``; every customer of ``index`` must have a value."""
    if not isinstance(values, pd.Series):
        raise SchemaError(
            f"{name} must be a pandas Series indexed by customer id, got {type(values).__name__}"
        )
    if values.index.equals(index):
        return values
    if not values.index.is_unique:
        repeated = values.index[values.index.duplicated()]
        raise DataQualityError(
            f"{name} has {len(repeated):,} repeated customer ids (e.g. {repeated[0]!r}); give "
            "one value per customer"
        )
    is_missing = ~index.isin(values.index)
    if is_missing.any():
        raise DataQualityError(
            f"{name} has no value for {int(is_missing.sum()):,} of {len(index):,} customers "
            f"(e.g. customer {_first(index, is_missing)!r}); give every customer of the "
            "data a value (its index is the customer id)"
        )
    return values.reindex(index)


def _numeric(values: pd.Series, name: str) -> FloatArray:
    try:
        array = values.to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError) as exc:
        raise SchemaError(f"{name} must be numeric, got dtype {values.dtype}") from exc
    is_bad = ~np.isfinite(array)
    if is_bad.any():
        raise DataQualityError(
            f"{name} is missing or infinite for {int(is_bad.sum()):,} of {len(array):,} "
            f"customers (e.g. customer {_first(values.index, is_bad)!r}); fill or drop them"
        )
    return array


def _labels(segment: pd.Series, index: pd.Index, name: str) -> pd.Series:
    labels = _aligned(segment, index, name)
    is_missing = labels.isna().to_numpy()
    if is_missing.any():
        raise DataQualityError(
            f"{name} is missing for {int(is_missing.sum()):,} of {len(labels):,} customers "
            f"(e.g. customer {_first(labels.index, is_missing)!r}); give every customer one"
        )
    return labels


def _column(frame: pd.DataFrame, name: str) -> FloatArray:
    return frame[name].to_numpy(dtype=np.float64, na_value=np.nan)


def _from_mapping(
    mapping: Mapping[str, float],
    labels: pd.Series | None,
    name: str,
    *,
    default: float | None = None,
) -> FloatArray:
    """The value of each customer's segment; unknown segments are an error unless a default."""
    if labels is None:
        raise SchemaError(f"{name} are given per segment; pass segment=<each customer's segment>")
    codes, uniques = pd.factorize(labels, use_na_sentinel=True)
    unknown = [u for u in uniques if u not in mapping]
    if unknown and default is None:
        counts = np.bincount(codes, minlength=len(uniques))
        shown = {str(u): int(counts[i]) for i, u in enumerate(uniques) if u not in mapping}
        raise SchemaError(
            f"{name} have no value for {len(unknown)} segment(s): {shown} (customers per "
            f"segment); they cover {sorted(map(str, mapping))}. Add those segments or a default"
        )
    table = np.array([mapping.get(u, default) for u in uniques], dtype=np.float64)
    return np.asarray(table[codes], dtype=np.float64)


def _amount(
    value: Amount | None, name: str, index: pd.Index, labels: pd.Series | None
) -> FloatArray | None:
    """A per-customer amount from a number, a Series per customer, or a {segment: value} map."""
    if value is None:
        return None
    if isinstance(value, pd.Series):
        array = _numeric(_aligned(value, index, name), name)
    elif isinstance(value, Mapping):
        array = _from_mapping(value, labels, name)
    elif isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool):
        array = np.full(len(index), float(value))
    else:
        raise SchemaError(
            f"{name} must be a number, a Series per customer or a {{segment: value}} "
            f"mapping, got {type(value).__name__}"
        )
    return array


def _check_range(values: FloatArray, name: str, index: pd.Index, *, upper: float) -> None:
    is_bad = ~((values >= 0.0) & (values <= upper))
    if is_bad.any():
        bound = "between 0 and 1 (a share of revenue)" if upper == 1.0 else "finite and >= 0"
        raise DataQualityError(
            f"{name} must be {bound}; {int(is_bad.sum()):,} of {len(values):,} customers are not "
            f"(e.g. customer {_first(index, is_bad)!r}: {_first(values, is_bad)!r}). "
            + ("Write 30 % as 0.30" if upper == 1.0 else "Costs are positive amounts")
        )


def _margin(value: Amount, index: pd.Index, labels: pd.Series | None) -> FloatArray:
    if isinstance(value, int | float) and not 0.0 <= float(value) <= 1.0:
        raise SchemaError(
            f"margin must be between 0 and 1 (a share of revenue), got {value!r}; "
            "write 30 % as 0.30"
        )
    found = _amount(value, "margin", index, labels)
    assert found is not None  # a margin is always given
    _check_range(found, "margin", index, upper=1.0)
    return found


@dataclass(frozen=True, slots=True)
class _Costs:
    """Cost items per customer, after the double-counting checks (zeros for declared items)."""

    serve: FloatArray
    marketing: FloatArray
    acquisition: FloatArray | None
    net_of: frozenset[str]


def _check_cost_items(given: Mapping[str, object], net_of: Collection[str]) -> frozenset[str]:
    """Each cost item exactly once: passed (possibly 0) or declared as netted in the margin."""
    if isinstance(net_of, str):
        raise SchemaError(f"margin_net_of is a collection of cost items; write ('{net_of}',)")
    declared = frozenset(net_of)
    unknown = declared - set(_COST_ITEMS)
    if unknown:
        raise SchemaError(
            f"margin_net_of names unknown cost items {sorted(unknown)}; use {list(_COST_ITEMS)}"
        )
    twice = [item for item in _COST_ITEMS if item in declared and given[item] is not None]
    missing = [
        item
        for item in ("cost_to_serve", "marketing_cost")
        if item not in declared and given[item] is None
    ]
    problems = [
        f"{item} is passed, but margin_net_of says the margin already nets it: it would be "
        "subtracted twice (double counting). Drop one of the two"
        for item in twice
    ] + [
        f"{item} is missing: pass it (0.0 if there is none), or declare "
        f"margin_net_of=('{item}',) if the margin already nets it"
        for item in missing
    ]
    if problems:
        raise SchemaError("; ".join(problems))
    return declared


def _costs(
    given: Mapping[str, object],
    net_of: Collection[str],
    index: pd.Index,
    labels: pd.Series | None,
) -> _Costs:
    """The cost items per customer, checked (:func:`_check_cost_items`) and >= 0."""
    declared = _check_cost_items(given, net_of)
    found = {item: _amount(given[item], item, index, labels) for item in _COST_ITEMS}  # type: ignore[arg-type]
    for item, values in found.items():
        if values is not None:
            _check_range(values, item, index, upper=math.inf)
    zeros = np.zeros(len(index))
    serve, marketing = found["cost_to_serve"], found["marketing_cost"]
    return _Costs(
        zeros if serve is None else serve,
        zeros if marketing is None else marketing,
        found["acquisition_cost"],
        declared,
    )


# --- spend ---------------------------------------------------------------------------------------


_SPEND_CONTRACT = ("conditional_expected_spend", "expected_spend_new", "spend_terms", "params_")


def _is_spend_model(spend: object) -> TypeGuard[SpendModel]:
    """Whether ``spend`` is a fitted spend model (it keeps the SpendModel contract)."""
    return all(hasattr(spend, name) for name in _SPEND_CONTRACT)


def _is_spend_models(spend: object) -> bool:
    return (
        isinstance(spend, Mapping)
        and bool(spend)
        and all(_is_spend_model(value) for value in spend.values())
    )


def _observed_spend(data: pd.DataFrame) -> FloatArray:
    if "monetary_value" not in data:
        raise SchemaError(
            "spend='observed' reads 'monetary_value', which the data lacks; build "
            "the summary from transactions with amounts"
        )
    values = _column(data, "monetary_value")
    is_bad = ~(values > 0)
    if is_bad.any():
        raise DataQualityError(
            f"spend='observed' needs a positive 'monetary_value', and {int(is_bad.sum()):,} of "
            f"{len(values):,} customers have none (e.g. customer "
            f"{_first(data.index, is_bad)!r}; customers without repeat purchases have 0). "
            "Use spend=GammaGamma().fit(summary), which shrinks towards the population mean"
        )
    return values


def _fixed_spend(spend: Spend, data: pd.DataFrame, labels: pd.Series | None) -> FloatArray:
    """The spend per purchase (or payment) where no Gamma-Gamma model gives it; NaN elsewhere."""
    if _is_spend_model(spend) or _is_spend_models(spend):
        return np.full(len(data), np.nan)
    if isinstance(spend, str):
        if spend != "observed":
            raise SchemaError(
                f"spend={spend!r}: use 'observed', a GammaGamma, a number or a Series"
            )
        return _observed_spend(data)
    found = _amount(spend, "spend", data.index, labels)  # type: ignore[arg-type]
    assert found is not None  # spend is always given
    _check_range(found, "spend", data.index, upper=math.inf)
    return found


# --- margins by category -------------------------------------------------------------------------


def _purchase_rows(transactions: pd.DataFrame, columns: Columns) -> pd.DataFrame:
    """The purchases of a log: rows flagged as returns are not purchases."""
    if columns.is_return is not None and columns.is_return in transactions:
        return transactions[~transactions[columns.is_return].to_numpy(dtype=bool)]
    return transactions


def margin_by_category(
    transactions: pd.DataFrame, margins: Mapping[str, float], *, columns: Columns | None = None
) -> pd.Series:
    """Each customer's gross margin rate: their revenue-weighted mix of category margins.

    ``sum_c revenue_c * margin_c / sum_c revenue_c`` over the customer's purchases (returns
    excluded), for :func:`clv`'s ``margin``.

    Raises
    ------
    SchemaError
        When a category has no margin (all such categories are listed), or a margin is outside
        [0, 1].
    """
    columns = columns or Columns.detect(transactions.columns)
    category, amount = columns.category or "category", columns.amount or "amount"
    missing = [c for c in (columns.customer_id, amount, category) if c not in transactions]
    if missing:
        raise SchemaError(
            f"margin_by_category needs column(s) {missing}; the transactions have "
            f"{list(transactions.columns)}"
        )
    bad = {k: v for k, v in margins.items() if not 0.0 <= float(v) <= 1.0}
    if bad:
        raise SchemaError(f"margins must be between 0 and 1 (a share of revenue): {bad}")
    rows = _purchase_rows(transactions, columns)
    is_known = rows[category].isin(list(margins)).to_numpy()
    if not is_known.all():
        counts = rows.loc[~is_known, category].value_counts()
        raise SchemaError(
            f"no margin for categories {counts.to_dict()} (purchases per "
            "category); add them to margins"
        )
    paid = rows[amount].to_numpy(dtype=np.float64)
    rate = rows[category].map(dict(margins)).to_numpy(dtype=np.float64)
    sums = (
        pd.DataFrame({"margin": paid * rate, "revenue": paid})
        .groupby(rows[columns.customer_id].to_numpy())
        .sum()
    )
    share = (sums["margin"] / sums["revenue"]).rename("margin")
    return share.rename_axis(columns.customer_id)
