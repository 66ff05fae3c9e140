"""Each customer's value: :func:`clv`, with every component, and P(alive) ahead.

A valuation's inputs are checked and lined up once (``_recipe``), its customers split into
blocks by (purchase model, spend model), and each block's flows discounted at each customer's
rate (``_evaluate``); :class:`CustomerValue` keeps them for its per-period report.
:func:`alive_probability` and :func:`churn_hazard` read the same survival curves.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeVar, cast

import numpy as np
import pandas as pd

from cvalue.errors import DataQualityError, SchemaError
from cvalue.models import Model, SpendModel
from cvalue.units import Duration, Rate, TimeUnit
from cvalue.value.curves import (
    PurchaseModels,
    _curves,
    _default_period,
    _Flows,
    _flows,
    _is_contractual,
    _model_map,
    _survival_after,
)
from cvalue.value.inputs import (
    Amount,
    CostItem,
    FloatArray,
    IntpArray,
    Spend,
    _Costs,
    _costs,
    _fixed_spend,
    _is_spend_model,
    _is_spend_models,
    _labels,
    _margin,
)
from cvalue.value.periods import _discounted, _factors, _Grid, _grid, _horizon
from cvalue.value.rates import DiscountRates, _as_rates

__all__ = ["NO_COSTS", "CustomerValue", "NoCosts", "alive_probability", "churn_hazard", "clv"]


_COMPONENTS = (
    "expected_purchases",
    "expected_spend",
    "revenue",
    "margin_rate",
    "gross_margin",
    "alive_periods",
    "cost_to_serve",
    "marketing_cost",
    "net_margin",
    "discount_rate",
    "discount_rate_per_period",
    "discounted_revenue",
    "discounted_gross_margin",
    "discounted_cost_to_serve",
    "discounted_marketing_cost",
    "clv",
)


# --- the recipe of a valuation -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Block:
    """Customers valued with one purchase model and one spend model (or a fixed spend)."""

    purchases: Model
    spend: SpendModel | None
    rows: IntpArray


@dataclass(frozen=True, slots=True, eq=False)
class _Inputs:
    """The valuation's inputs as given: new customers and future cohorts reuse them."""

    purchases: PurchaseModels
    spend: Spend
    margin: Amount
    cost_to_serve: Amount | None
    marketing_cost: Amount | None


@dataclass(frozen=True, slots=True, eq=False)
class _Recipe:
    """Everything a valuation needs to be recomputed at another horizon or other parameters."""

    data: pd.DataFrame
    blocks: tuple[_Block, ...]
    margin: FloatArray
    fixed_spend: FloatArray  # NaN where a Gamma-Gamma model gives the spend
    costs: _Costs
    annual_rate: FloatArray
    period: Duration
    segment: pd.Series | None
    rates: DiscountRates
    inputs: _Inputs


_Chosen = TypeVar("_Chosen")


def _pick(mapping: Mapping[str, _Chosen], label: object, name: str) -> _Chosen:
    if label not in mapping:
        raise SchemaError(
            f"{name} has no model for segment {label!r}; it has models for "
            f"{sorted(map(str, mapping))}. Fit one for that segment or give every customer a "
            "segment that has one"
        )
    return mapping[label]  # type: ignore[index]


def _blocks(
    n_rows: int, purchases: PurchaseModels, spend: Spend | None, model_by: pd.Series | None
) -> tuple[_Block, ...]:
    """Split the customers by (purchase model, spend model)."""
    purchase_map = _model_map(purchases)
    spend_map: Mapping[str, SpendModel] | None = spend if _is_spend_models(spend) else None  # type: ignore[assignment]
    single_spend = spend if _is_spend_model(spend) else None
    if purchase_map is None and spend_map is None:
        single = cast("Model", purchases)  # not a mapping: one model for every customer
        return (_Block(single, single_spend, np.arange(n_rows, dtype=np.intp)),)
    if model_by is None:
        raise SchemaError(
            "models given per segment need segment=... (or model_by=...) to say "
            "which customer uses which model"
        )
    codes, uniques = pd.factorize(model_by)
    blocks = []
    for code, label in enumerate(uniques):
        chosen = purchases if purchase_map is None else _pick(purchase_map, label, "purchases")
        spent = single_spend if spend_map is None else _pick(spend_map, label, "spend")
        blocks.append(_Block(chosen, spent, np.flatnonzero(codes == code).astype(np.intp)))  # type: ignore[arg-type]
    return tuple(blocks)


def _check_contract_spend(blocks: Sequence[_Block]) -> None:
    for block in blocks:
        if block.spend is not None and _is_contractual(block.purchases):
            raise SchemaError(
                "a contractual model needs the payment per period as spend (a "
                "number or a Series), not a GammaGamma"
            )


def _recipe(
    data: pd.DataFrame,
    inputs: _Inputs,
    rates: DiscountRates,
    costs: Mapping[str, object],
    segment: pd.Series | None,
    model_by: pd.Series | None,
    period: Duration | str | None,
) -> _Recipe:
    """Check every input of :func:`clv` and line it up with ``data``'s customers."""
    if not isinstance(data, pd.DataFrame) or data.empty:
        raise SchemaError("clv needs a non-empty customer summary DataFrame indexed by customer id")
    if not data.index.is_unique:
        raise DataQualityError(
            f"the data has {int(data.index.duplicated().sum()):,} repeated "
            "customer ids; give one row per customer"
        )
    index = data.index
    given = None if segment is None else _labels(segment, index, "segment")
    # coded once: every per-segment input below looks its segments up by these codes
    labels = None if given is None else given.astype("category")
    chooser = labels if model_by is None else _labels(model_by, index, "model_by")
    blocks = _blocks(len(data), inputs.purchases, inputs.spend, chooser)
    _check_contract_spend(blocks)
    found_costs = _costs(costs, costs["margin_net_of"], index, labels)  # type: ignore[arg-type]
    return _Recipe(
        data=data,
        blocks=blocks,
        margin=_margin(inputs.margin, index, labels),
        fixed_spend=_fixed_spend(inputs.spend, data, labels),
        costs=found_costs,
        annual_rate=rates.annual_rates(index, labels),
        period=(
            _default_period([b.purchases for b in blocks])
            if period is None
            else _horizon(period, "period")
        ),
        segment=given,
        rates=rates,
        inputs=inputs,
    )


# --- evaluation ----------------------------------------------------------------------------------


def _cash_years(flows: _Flows, grid: _Grid) -> FloatArray:
    """When each period's cash is discounted: its start for contract payments, else its end."""
    return grid.starts if flows.pays_at_start else grid.ends


@dataclass(frozen=True, slots=True)
class _Totals:
    """Per row: expected purchases and periods on the books, undiscounted and discounted."""

    purchases: FloatArray
    alive: FloatArray
    discounted_purchases: FloatArray
    discounted_alive: FloatArray


def _totals(flows: _Flows, grid: _Grid, annual: FloatArray) -> _Totals:
    rates, rate = np.unique(annual, return_inverse=True)
    factors = _factors(rates, _cash_years(flows, grid))
    on_books = flows.alive * grid.shares[None, :]
    state, code = flows.curves, rate.astype(np.intp)
    return _Totals(
        state.purchase_scale * flows.purchases.sum(axis=1)[state.group],
        state.alive_scale * on_books.sum(axis=1)[state.group],
        state.purchase_scale * _discounted(flows.purchases, factors, state.group, code),
        state.alive_scale * _discounted(on_books, factors, state.group, code),
    )


@dataclass(frozen=True, slots=True)
class _BlockState:
    """A block's flows at the valuation's horizon, kept for the per-period report."""

    rows: IntpArray
    flows: _Flows
    spend: FloatArray


def _rows_of(data: pd.DataFrame, rows: IntpArray) -> pd.DataFrame:
    return data if len(rows) == len(data) else data.iloc[rows]


def _evaluate(recipe: _Recipe, grid: _Grid) -> tuple[dict[str, FloatArray], list[_BlockState]]:
    names = ("purchases", "alive", "discounted_purchases", "discounted_alive")
    found = {name: np.zeros(len(recipe.data)) for name in (*names, "spend")}
    states = []
    for block in recipe.blocks:
        frame = _rows_of(recipe.data, block.rows)
        flows = _flows(block.purchases, _curves(block.purchases, frame), grid)
        totals = _totals(flows, grid, recipe.annual_rate[block.rows])
        spend = (
            recipe.fixed_spend[block.rows]
            if block.spend is None
            else block.spend.conditional_expected_spend(frame).to_numpy(dtype=np.float64)
        )
        for name in names:
            found[name][block.rows] = getattr(totals, name)
        found["spend"][block.rows] = spend
        states.append(_BlockState(block.rows, flows, spend))
    return found, states


def _components(recipe: _Recipe, totals: Mapping[str, FloatArray], grid: _Grid) -> pd.DataFrame:
    """The per-customer table, written column by column into one block (no copies of it)."""
    margin, spend, costs = recipe.margin, totals["spend"], recipe.costs
    with_acquisition = costs.acquisition is not None
    names = [
        *_COMPONENTS,
        *(("acquisition_cost", "clv_net_of_acquisition") if with_acquisition else ()),
    ]
    block = np.empty((len(recipe.data), len(names)), order="F")
    column = {name: block[:, i] for i, name in enumerate(names)}
    copies = {
        "expected_purchases": totals["purchases"],
        "expected_spend": spend,
        "margin_rate": margin,
        "alive_periods": totals["alive"],
        "discount_rate": recipe.annual_rate,
    }
    for name, values in copies.items():
        column[name][:] = values
    products = {
        "revenue": (spend, totals["purchases"]),
        "cost_to_serve": (costs.serve, totals["alive"]),
        "marketing_cost": (costs.marketing, totals["alive"]),
        "discounted_revenue": (spend, totals["discounted_purchases"]),
        "discounted_cost_to_serve": (costs.serve, totals["discounted_alive"]),
        "discounted_marketing_cost": (costs.marketing, totals["discounted_alive"]),
    }
    for name, (first, second) in products.items():
        np.multiply(first, second, out=column[name])
    np.multiply(margin, column["revenue"], out=column["gross_margin"])
    np.multiply(margin, column["discounted_revenue"], out=column["discounted_gross_margin"])
    np.expm1(
        np.log1p(recipe.annual_rate) * grid.period.to(TimeUnit.YEAR),
        out=column["discount_rate_per_period"],
    )
    for net, gross, serve, marketing in (
        ("net_margin", "gross_margin", "cost_to_serve", "marketing_cost"),
        ("clv", "discounted_gross_margin", "discounted_cost_to_serve", "discounted_marketing_cost"),
    ):
        np.subtract(column[gross], column[serve], out=column[net])
        column[net] -= column[marketing]
    if costs.acquisition is not None:
        column["acquisition_cost"][:] = costs.acquisition
        np.subtract(column["clv"], costs.acquisition, out=column["clv_net_of_acquisition"])
    table = pd.DataFrame(block, index=recipe.data.index, columns=names, copy=False)
    if recipe.segment is not None:
        table.insert(0, "segment", recipe.segment.array)
    return table


class NoCosts:
    """The declaration that no cost beyond the margin applies: pass :data:`NO_COSTS`.

    A valuation must say what each cost item is, so that none is left out by accident; with
    ``costs=NO_COSTS`` the costs to serve and of marketing are 0 by declaration, and the result
    records it (:attr:`CustomerValue.no_costs`).
    """

    __slots__ = ()

    def __repr__(self) -> str:
        """``cvalue.NO_COSTS``."""
        return "cvalue.NO_COSTS"

    def __reduce__(self) -> str:
        """Pickled by name: unpickled as the one declaration."""
        return "NO_COSTS"


NO_COSTS = NoCosts()
"""No cost beyond the margin: ``clv(..., costs=NO_COSTS)`` instead of each cost as 0.0."""


def _declared_costs(
    costs: object, given: dict[str, object], margin_net_of: Collection[CostItem]
) -> tuple[float, float]:
    """The costs to serve and of marketing (0.0 each) that ``costs=NO_COSTS`` declares."""
    if not isinstance(costs, NoCosts):
        raise SchemaError(
            f"costs must be cvalue.NO_COSTS (no cost beyond the margin) or left out, got "
            f"{costs!r}; give each cost with cost_to_serve=, marketing_cost= and "
            "acquisition_cost="
        )
    passed = [name for name, value in given.items() if value is not None]
    if passed or margin_net_of:
        said = passed or [f"margin_net_of={list(margin_net_of)}"]
        raise SchemaError(
            f"costs=NO_COSTS says there is no cost beyond the margin, and {', '.join(said)} "
            "gives one: pass the costs, or NO_COSTS, not both"
        )
    return 0.0, 0.0


@dataclass(frozen=True, slots=True, eq=False)
class CustomerValue:
    """The value of each customer over a horizon, with every component (:func:`clv`).

    Attributes
    ----------
    customers
        One row per customer (indexed like the data): ``expected_purchases`` and
        ``expected_spend`` over the horizon, ``revenue = expected_purchases * expected_spend``,
        ``margin_rate``, ``gross_margin = revenue * margin_rate``, ``alive_periods`` (expected
        periods on the books), ``cost_to_serve`` and ``marketing_cost`` (cost per period times
        ``alive_periods``), ``net_margin``, the ``discount_rate`` used (effective annual) and
        ``discount_rate_per_period``, the discounted revenue, gross margin and costs, and
        ``clv = discounted_gross_margin - discounted_cost_to_serve - discounted_marketing_cost``;
        with an acquisition cost, ``acquisition_cost`` and ``clv_net_of_acquisition``; with
        segments, ``segment``.
    horizon, period
        The valuation horizon and the length of a period.
    margin_net_of
        The cost items the margin already nets (their columns are 0: they are in the margin).
    no_costs
        Whether the valuation was told there is no cost beyond the margin (``costs=NO_COSTS``).
    """

    customers: pd.DataFrame
    horizon: Duration
    period: Duration
    margin_net_of: frozenset[str]
    _recipe: _Recipe = field(repr=False)
    _states: tuple[_BlockState, ...] = field(repr=False)
    no_costs: bool = False

    def periods(self, by: pd.Series | str | None = None) -> pd.DataFrame:
        """Totals per period (and group): purchases, revenue, margin, costs, net cash flow.

        Parameters
        ----------
        by
            A column of :attr:`customers` (such as ``"segment"``) or a Series per customer;
            ``None`` for the whole base.

        Returns
        -------
        pandas.DataFrame
            Indexed by (group, period number): ``end_years`` (the period's end, in years from
            the valuation date), ``customers``, ``expected_purchases``, ``revenue``,
            ``gross_margin``, ``cost_to_serve``, ``marketing_cost``, ``net_cash_flow`` and
            ``discounted_net_cash_flow``.
        """
        codes, labels = _group_codes(self, by)
        grid = _grid(self.horizon, self.period)
        sums = {name: np.zeros((len(labels), len(grid.ends))) for name in _PERIOD_SUMS}
        for state in self._states:
            _add_period_sums(sums, state, self._recipe, grid, codes[state.rows])
        n_periods = len(grid.ends)
        index = pd.MultiIndex.from_product(
            [labels, np.arange(1, n_periods + 1)], names=["group", "period"]
        )
        table = pd.DataFrame(
            {
                "end_years": np.tile(grid.ends, len(labels)),
                "customers": np.repeat(np.bincount(codes, minlength=len(labels)), n_periods),
                **{name: sums[name].ravel() for name in _PERIOD_SUMS[:-1]},
            },
            index=index,
        )
        table["net_cash_flow"] = (
            table["gross_margin"] - table["cost_to_serve"] - table["marketing_cost"]
        )
        table["discounted_net_cash_flow"] = sums["discounted_net_cash_flow"].ravel()
        return table


_PERIOD_SUMS = (
    "expected_purchases",
    "revenue",
    "gross_margin",
    "cost_to_serve",
    "marketing_cost",
    "discounted_net_cash_flow",
)


def _group_codes(
    values: CustomerValue, by: pd.Series | str | None
) -> tuple[IntpArray, list[object]]:
    index = values.customers.index
    if by is None:
        return np.zeros(len(index), dtype=np.intp), ["all"]
    if isinstance(by, str):
        if by not in values.customers:
            raise SchemaError(
                f"by={by!r} is not a column of the values; they have "
                f"{list(values.customers.columns)}. Pass a Series per customer"
            )
        labels = values.customers[by]
    else:
        labels = _labels(by, index, "by")
    codes, uniques = pd.factorize(labels, sort=True)
    return codes.astype(np.intp), list(uniques)


def _add_period_sums(
    sums: dict[str, FloatArray],
    block: _BlockState,
    recipe: _Recipe,
    grid: _Grid,
    groups: IntpArray,
) -> None:
    """Add a block's per-period flows into ``sums`` (groups x periods), by (key, rate, group)."""
    flows, rows, state = block.flows, block.rows, block.flows.curves
    rates, rate = np.unique(recipe.annual_rate[rows], return_inverse=True)
    n_rates, n_groups = len(rates), sums["revenue"].shape[0]
    key = (state.group.astype(np.int64) * n_rates + rate) * n_groups + groups
    cells, cell_of = np.unique(key, return_inverse=True)
    bought, alive = state.purchase_scale, state.alive_scale
    weights = {
        "expected_purchases": bought,
        "revenue": bought * block.spend,
        "gross_margin": bought * block.spend * recipe.margin[rows],
        "cost_to_serve": alive * recipe.costs.serve[rows],
        "marketing_cost": alive * recipe.costs.marketing[rows],
    }
    totals = {
        name: np.bincount(cell_of, weights=w, minlength=len(cells)) for name, w in weights.items()
    }
    table_row, cell_rate, cell_group = (
        cells // (n_rates * n_groups),
        (cells // n_groups) % n_rates,
        cells % n_groups,
    )
    factors = _factors(rates, _cash_years(flows, grid))[cell_rate]
    purchases, on_books = flows.purchases[table_row], (flows.alive * grid.shares)[table_row]
    net = np.zeros_like(purchases)
    for name, total in totals.items():
        is_purchase = name in ("expected_purchases", "revenue", "gross_margin")
        cash = total[:, None] * (purchases if is_purchase else on_books)
        np.add.at(sums[name], cell_group, cash)
        net += cash if name == "gross_margin" else -cash if not is_purchase else 0.0
    np.add.at(sums["discounted_net_cash_flow"], cell_group, net * factors)


def clv(
    data: pd.DataFrame,
    *,
    purchases: PurchaseModels,
    spend: Spend,
    margin: Amount,
    horizon: Duration | str,
    rates: DiscountRates | Rate | float,
    cost_to_serve: Amount | None = None,
    marketing_cost: Amount | None = None,
    acquisition_cost: Amount | None = None,
    margin_net_of: Collection[CostItem] = (),
    costs: NoCosts | None = None,
    segment: pd.Series | None = None,
    model_by: pd.Series | None = None,
    period: Duration | str | None = None,
    interval: float | None = None,
    n_draws: int = 200,
    rng: np.random.Generator | None = None,
    interval_method: Literal["draws", "bootstrap"] = "draws",
) -> CustomerValue:
    """Each customer's discounted net margin over ``horizon``, period by period.

    Parameters
    ----------
    data
        The customer summary the purchase model reads, indexed by customer id: ``frequency``,
        ``recency``, ``T`` (BG/NBD, MBG/NBD, Pareto/NBD), ``frequency``, ``recency``,
        ``n_periods`` (BG/BB), or ``duration`` and ``is_censored`` (sBG, BdW); and
        ``monetary_value`` for spend from a Gamma-Gamma model or ``"observed"``.
    purchases
        A fitted purchase model, or ``{segment: model}`` (chosen by ``model_by``, which defaults
        to ``segment``). A contractual model fitted per cohort (``fit_survivors(...,
        shared=False)``) uses each cohort's model.
    spend
        Expected spend per purchase: a fitted :class:`~cvalue.models.GammaGamma` (or
        ``{segment: GammaGamma}``), ``"observed"`` (``monetary_value``), a number, a Series per
        customer, or ``{segment: amount}``. For a contractual model, the payment per period.
    margin
        Gross product margin as a share of revenue (0.30 is 30 %): a number, a Series per
        customer (:func:`margin_by_category` gives one from margins by product category) or
        ``{segment: margin}``.
    horizon
        How far ahead, with its unit: ``"3y"``, ``"60M"``, ``Duration(156, "week")``.
    rates
        One effective annual rate (``0.10`` is 10 % a year), a :class:`~cvalue.units.Rate`, or
        :class:`DiscountRates` (by segment, per customer, risk-adjusted).
    cost_to_serve, marketing_cost
        Cost per period for each customer on the books: a number, a Series per customer or
        ``{segment: amount}``. Each must be passed (0.0 when there is none) or declared in
        ``margin_net_of``, or ``costs=NO_COSTS`` must say there is none.
    acquisition_cost
        An optional one-off cost per customer, reported with ``clv_net_of_acquisition``.
    margin_net_of
        The cost items the margin already nets (``"cost_to_serve"``, ``"marketing_cost"``,
        ``"acquisition_cost"``): passing such an item as well is an error.
    costs
        :data:`NO_COSTS` declares that no cost beyond the margin applies: the costs to serve
        and of marketing are 0, no cost item may be passed, and the result records it
        (:attr:`CustomerValue.no_costs`).
    segment
        Each customer's segment (a Series by customer id), for per-segment rates, costs, margins
        or models.
    model_by
        Labels choosing each customer's model from ``{label: model}``, when they are not the
        segments (cohorts, for instance).
    period
        The length of a period: a month by default for continuous-time models, one opportunity
        (BG/BB) or contract period (sBG, BdW) for discrete-time ones.
    interval
        A level such as 0.9 adds ``clv_lower`` and ``clv_upper``: the ``(1 - interval) / 2`` and
        ``(1 + interval) / 2`` quantiles of each customer's CLV over ``n_draws`` joint draws of
        every model's parameters (purchase and Gamma-Gamma models; log-normal around the
        estimates, :func:`cvalue.models.log_normal_root`). None (the default): no interval, the
        table unchanged. Needs fitted models (a finite ``covariance_``).
    n_draws, rng
        How many parameter draws, and their random generator (None: ``default_rng(0)``, so that
        the same call gives the same bounds).
    interval_method
        What ``clv_lower, clv_upper`` are quantiles over: ``"draws"`` (the default), joint
        log-normal draws of the parameters; ``"bootstrap"``, ``n_draws`` bootstrap replicates of
        every model (each refitted on its customers drawn with replacement,
        ``Model.resampled``), for models fitted on data in this session.

    Returns
    -------
    CustomerValue
        ``.customers``: one row per customer with every component; ``.periods(by)``: the totals
        per period.

    Raises
    ------
    SchemaError
        For a horizon without a unit, an unknown segment, a cost item both passed and declared
        in the margin, a missing cost item, a margin outside [0, 1], or an interval of a model
        without a covariance (built with ``from_params``).
    DataQualityError
        For rows that break a rule (a missing segment, a negative cost, a margin of 1.3).

    Examples
    --------
    >>> import cvalue as cv
    >>> from cvalue.datasets import load_cdnow
    >>> cbs = load_cdnow().summary
    >>> bg = cv.BetaGeo().fit(cbs, unit="week")
    >>> value = clv(cbs, purchases=bg, spend=cv.GammaGamma().fit(cbs), margin=0.3,
    ...             horizon="1y", rates=DiscountRates.single(0.10), cost_to_serve=0.5,
    ...             marketing_cost=0.0)
    >>> columns = ["revenue", "gross_margin", "alive_periods", "cost_to_serve", "clv"]
    >>> value.customers[columns].head(2).round(2)
                 revenue  gross_margin  alive_periods  cost_to_serve   clv
    customer_id
    1              38.54         11.56           7.49           3.74  7.46
    2               4.93          1.48           2.29           1.14  0.32

    A plain CLV: one annual rate, and no cost beyond the margin, said once.

    >>> plain = clv(cbs, purchases=bg, spend=cv.GammaGamma().fit(cbs), margin=0.3,
    ...             horizon="1y", rates=0.10, costs=NO_COSTS)
    >>> plain.no_costs, round(float(plain.customers["clv"].iloc[0]), 2)
    (True, 11.02)
    """
    found = _horizon(horizon)
    if costs is not None:
        cost_to_serve, marketing_cost = _declared_costs(
            costs, {"cost_to_serve": cost_to_serve, "marketing_cost": marketing_cost,
                    "acquisition_cost": acquisition_cost}, margin_net_of,
        )  # fmt: skip
    inputs = _Inputs(purchases, spend, margin, cost_to_serve, marketing_cost)
    items = {
        "cost_to_serve": cost_to_serve,
        "marketing_cost": marketing_cost,
        "acquisition_cost": acquisition_cost,
        "margin_net_of": margin_net_of,
    }
    recipe = _recipe(data, inputs, _as_rates(rates), items, segment, model_by, period)
    grid = _grid(found, recipe.period)
    totals, states = _evaluate(recipe, grid)
    customers = _components(recipe, totals, grid)
    if interval is not None:
        from cvalue.value.intervals import _clv_bounds  # it builds on equity, which imports clv

        customers["clv_lower"], customers["clv_upper"] = _clv_bounds(
            recipe, grid, interval, n_draws, rng, interval_method
        )
    return CustomerValue(
        customers,
        found,
        recipe.period,
        recipe.costs.net_of,
        recipe,
        tuple(states),
        no_costs=costs is not None,
    )


# --- P(alive) ahead and churn hazard -------------------------------------------------------------


def alive_probability(
    data: pd.DataFrame,
    *,
    purchases: PurchaseModels,
    after: Duration | str,
    model_by: pd.Series | None = None,
) -> pd.Series:
    """P(the customer is alive ``after`` from now | their history), per customer.

    The probabilities behind the cost to serve (module docstring; one formula per model). For
    the BG/BB, ``after`` counts whole opportunities after the last one observed (``n``), and
    for contracts whole periods.

    Examples
    --------
    >>> import cvalue as cv
    >>> model = cv.ParetoNBD.from_params(0.55, 10.6, 0.61, 11.7, unit="week")
    >>> history = pd.DataFrame({"frequency": [2], "recency": [30.0], "T": [39.0]})
    >>> now = float(model.p_alive(history).iloc[0])
    >>> later = float(alive_probability(history, purchases=model, after="52w").iloc[0])
    >>> round(later / now, 6) == round(((11.7 + 39) / (11.7 + 39 + 52)) ** 0.61, 6)
    True
    """
    span = _horizon(after, "after")
    chooser = None if model_by is None else _labels(model_by, data.index, "model_by")
    found = np.zeros(len(data))
    for block in _blocks(len(data), purchases, None, chooser):
        curves = _curves(block.purchases, _rows_of(data, block.rows))
        alive = _survival_after(block.purchases, curves, span)
        found[block.rows] = curves.alive_scale * alive[curves.group]
    return pd.Series(found, index=data.index, name="p_alive")


def churn_hazard(
    data: pd.DataFrame,
    *,
    purchases: PurchaseModels,
    segment: pd.Series,
    period: Duration | str = "1y",
    model_by: pd.Series | None = None,
) -> pd.Series:
    """The share of each segment's alive customers expected to be lost within ``period``.

    ``1 - sum_i P(alive after period | history_i) / sum_i P(alive now | history_i)`` over the
    segment's customers: a risk measure for :meth:`DiscountRates.risk_adjusted`.
    """
    labels = _labels(segment, data.index, "segment")
    chooser = labels if model_by is None else model_by
    now = alive_probability(
        data, purchases=purchases, after=Duration(0.0, TimeUnit.DAY), model_by=chooser
    )
    later = alive_probability(data, purchases=purchases, after=period, model_by=chooser)
    totals = (
        pd.DataFrame({"now": now.to_numpy(), "later": later.to_numpy()})
        .groupby(labels.to_numpy())
        .sum()
    )
    return (1.0 - totals["later"] / totals["now"]).rename("churn_hazard")
