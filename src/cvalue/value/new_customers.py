"""The value of a new customer, from the first purchase at acquisition, net of its cost.

:func:`new_customer_value` values one customer with no history per segment (or for the base);
future cohorts in customer equity reuse its inputs (``_new_inputs``).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cvalue.errors import SchemaError
from cvalue.models import Model
from cvalue.units import Duration, Rate, TimeUnit
from cvalue.value.clv import _totals
from cvalue.value.curves import (
    PurchaseModels,
    _curves,
    _default_period,
    _flows,
    _is_contractual,
    _model_map,
)
from cvalue.value.inputs import CostItem, Spend, _check_cost_items, _is_spend_model
from cvalue.value.periods import _Grid, _grid, _horizon
from cvalue.value.rates import DiscountRates, _as_rates

__all__ = ["new_customer_value"]


# --- new customers -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _NewInputs:
    """What one new customer of a segment brings and costs (costs per period)."""

    spend: float
    margin: float
    cost: float  # cost_to_serve + marketing_cost
    acquisition: float
    annual_rate: float
    cost_to_serve: float = 0.0
    marketing_cost: float = 0.0


def _new_value(model: Model, grid: _Grid, inputs: _NewInputs) -> dict[str, float]:
    """Components of one new customer's value over ``grid`` (first purchase at acquisition)."""
    flows = _flows(model, _curves(model), grid)
    totals = _totals(flows, grid, np.full(1, inputs.annual_rate))
    first = 0.0 if _is_contractual(model) else 1.0  # the acquisition purchase itself
    purchases = first + float(totals.purchases[0])
    discounted = first + float(totals.discounted_purchases[0])
    alive, discounted_alive = float(totals.alive[0]), float(totals.discounted_alive[0])
    value = inputs.margin * inputs.spend * discounted - inputs.cost * discounted_alive
    gross_margin = inputs.margin * inputs.spend * purchases
    serve, marketing = inputs.cost_to_serve * alive, inputs.marketing_cost * alive
    per_period = math.expm1(math.log1p(inputs.annual_rate) * grid.period.to(TimeUnit.YEAR))
    return {  # clv's columns, then the acquisition
        "expected_purchases": purchases,
        "expected_spend": inputs.spend,
        "revenue": inputs.spend * purchases,
        "margin_rate": inputs.margin,
        "gross_margin": gross_margin,
        "alive_periods": alive,
        "cost_to_serve": serve,
        "marketing_cost": marketing,
        "net_margin": gross_margin - serve - marketing,
        "discount_rate": inputs.annual_rate,
        "discount_rate_per_period": per_period,
        "discounted_revenue": inputs.spend * discounted,
        "discounted_gross_margin": inputs.margin * inputs.spend * discounted,
        "discounted_cost_to_serve": inputs.cost_to_serve * discounted_alive,
        "discounted_marketing_cost": inputs.marketing_cost * discounted_alive,
        "clv": value,
        "acquisition_cost": inputs.acquisition,
        "value_net_of_acquisition": value - inputs.acquisition,
        # deprecated, removed in the next release: the two costs together
        "costs": inputs.cost * alive,
        "discounted_costs": inputs.cost * discounted_alive,
    }


def _scalar_for(value: object, label: str | None, name: str) -> float:
    """A number for one segment, from a number or ``{segment: number}``."""
    if isinstance(value, Mapping):
        if label not in value:
            raise SchemaError(
                f"{name} has no value for segment {label!r}; it covers {sorted(map(str, value))}"
            )
        value = value[label]
    if isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool):
        return float(value)
    raise SchemaError(
        f"{name} for new customers must be a number or {{segment: number}}, got "
        f"{type(value).__name__}; a Series per customer says nothing about customers to come"
    )


def _new_spend(spend: object, label: str | None) -> float:
    chosen = spend.get(label) if isinstance(spend, Mapping) else spend
    if _is_spend_model(chosen):
        return chosen.expected_spend_new()
    if isinstance(spend, str):
        raise SchemaError(
            "spend='observed' has no value for new customers (they have no "
            "history); give a number or a GammaGamma"
        )
    return _scalar_for(spend, label, "spend")


def _new_inputs(
    label: str | None,
    spend: object,
    margin: object,
    costs: Sequence[tuple[object, str]],
    acquisition_cost: object,
    rates: DiscountRates,
) -> _NewInputs:
    share = _scalar_for(margin, label, "margin")
    if not 0.0 <= share <= 1.0:
        raise SchemaError(f"margin must be between 0 and 1 (a share of revenue), got {share!r}")
    each = {name: _scalar_for(item, label, name) for item, name in costs if item is not None}
    cost = sum(each.values())
    acquisition = _scalar_for(acquisition_cost, label, "acquisition_cost")
    if cost < 0 or acquisition < 0:
        raise SchemaError(
            f"costs are amounts >= 0; got {cost:g} per period and an acquisition "
            f"cost of {acquisition:g}"
        )
    return _NewInputs(
        _new_spend(spend, label), share, float(cost), acquisition, rates.annual_rate(label),
        each.get("cost_to_serve", 0.0), each.get("marketing_cost", 0.0),
    )  # fmt: skip


def new_customer_value(
    *,
    purchases: PurchaseModels,
    spend: Spend,
    margin: float | Mapping[str, float],
    horizon: Duration | str,
    rates: DiscountRates | Rate,
    acquisition_cost: float | Mapping[str, float],
    cost_to_serve: float | Mapping[str, float] | None = None,
    marketing_cost: float | Mapping[str, float] | None = None,
    margin_net_of: Collection[CostItem] = (),
    period: Duration | str | None = None,
) -> pd.DataFrame:
    """The value of one new customer (per segment for per-segment models), net of acquisition cost.

    The first purchase at acquisition, then the model's expected purchases of a customer with
    no history (Fader, Hardie & Lee 2005 eq. 7, per period, for the BG/NBD; Fader, Hardie & Lee
    2005b eq. 27 for the Pareto/NBD; Fader, Hardie & Shang 2010 eq. 8 for the BG/BB); for
    contracts the payments ``S(t - 1)``, so that over a long horizon at margin 1 the value is
    Fader & Hardie's (2010) DEL. ``acquisition_cost`` is required: a new customer's value is
    always net of what it costs to acquire.

    Returns
    -------
    pandas.DataFrame
        One row per segment (``"all"`` for one model): expected purchases, spend, revenue,
        margin, periods on the books, costs, the rate, discounted margin and costs, ``clv``,
        ``acquisition_cost`` and ``value_net_of_acquisition``.
    """
    found = _horizon(horizon)
    if "acquisition_cost" in margin_net_of:
        raise SchemaError(
            "a new customer's value is net of acquisition cost: pass "
            "acquisition_cost and do not declare it in margin_net_of"
        )
    _check_cost_items(
        {
            "cost_to_serve": cost_to_serve,
            "marketing_cost": marketing_cost,
            "acquisition_cost": None,
        },
        frozenset(margin_net_of),
    )
    mapping = _model_map(purchases)
    models = {"all": purchases} if mapping is None else dict(mapping)
    rows = {}
    for label, model in models.items():
        key = None if mapping is None else str(label)
        inputs = _new_inputs(
            key,
            spend,
            margin,
            ((cost_to_serve, "cost_to_serve"), (marketing_cost, "marketing_cost")),
            acquisition_cost,
            _as_rates(rates),
        )
        step = _default_period([model]) if period is None else _horizon(period, "period")  # type: ignore[list-item]
        rows[label] = _new_value(model, _grid(found, step), inputs)  # type: ignore[arg-type]
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("segment")
