"""Customer equity at several horizons, with intervals from parameter uncertainty.

:func:`customer_equity` revalues a :func:`~cvalue.value.clv` result's customers on their distinct
(pattern, rate, group) cells, adds :class:`FutureCohorts`, and gets intervals by the delta method,
by parameter draws or by bootstrap replicates, moving each model's parameters through a copy with
other parameters.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple, TypeAlias, TypeVar, cast

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats

from cvalue.errors import SchemaError
from cvalue.models import Curves, Model, SpendModel, joint_draws
from cvalue.summary import compress
from cvalue.units import Duration
from cvalue.value.clv import (
    CustomerValue,
    _Block,
    _cash_years,
    _group_codes,
    _Inputs,
    _pick,
    _Recipe,
    _rows_of,
)
from cvalue.value.curves import (
    _curves,
    _flows,
    _is_contractual,
    _model_map,
    _summary_columns,
)
from cvalue.value.inputs import FloatArray, IntpArray, _column, _is_spend_model
from cvalue.value.new_customers import _new_inputs, _NewInputs, _scalar_for
from cvalue.value.periods import (
    _DENSE_CELLS,
    _WHOLE,
    _discounted,
    _factors,
    _Grid,
    _grid,
    _horizon,
)
from cvalue.value.rates import DiscountRates

__all__ = ["CustomerEquity", "FutureCohorts", "customer_equity"]


_Fitted: TypeAlias = "Model | SpendModel"  # any model whose parameters the equity moves
EquityMethod: TypeAlias = Literal["delta", "draws", "bootstrap"]
_STEP = 1e-6  # relative step of the delta method's forward differences


# --- customer equity -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FutureCohorts:
    """Customers still to be acquired, added to customer equity.

    Parameters
    ----------
    customers_per_period
        New customers acquired at the start of each period: a number, or ``{segment: number}``
        (one stream per segment, valued with that segment's model and rate).
    acquisition_cost
        The cost of acquiring one new customer (a number or per segment); always subtracted.
    margin, spend, cost_to_serve, marketing_cost
        What a new customer brings and costs per period; by default the valuation's own inputs
        when they are numbers or per segment (a Series per customer says nothing about
        customers to come).
    """

    customers_per_period: float | Mapping[str, float]
    acquisition_cost: float | Mapping[str, float]
    margin: float | Mapping[str, float] | None = None
    spend: float | Mapping[str, float] | SpendModel | None = None
    cost_to_serve: float | Mapping[str, float] | None = None
    marketing_cost: float | Mapping[str, float] | None = None


@dataclass(frozen=True, slots=True)
class CustomerEquity:
    """Customer equity at several horizons, with intervals from parameter uncertainty.

    Attributes
    ----------
    by_group
        Indexed by (group, horizon): ``customers``, ``equity`` (the sum of their CLV),
        ``std_error``, ``ci_lower``, ``ci_upper``.
    future
        Future cohorts, indexed by (segment, horizon): ``new_customers`` acquired within the
        horizon and ``equity`` (their discounted value net of acquisition cost) with its
        interval; ``None`` without future cohorts.
    total
        Indexed by horizon: ``existing``, ``future`` and ``equity`` (their sum) with its interval.
    level
        The confidence level of the intervals (``None``: no intervals).
    method
        ``"delta"``, ``"draws"`` or ``"bootstrap"``.
    """

    by_group: pd.DataFrame
    future: pd.DataFrame | None
    total: pd.DataFrame
    level: float | None
    method: EquityMethod


@dataclass(frozen=True, slots=True, eq=False)
class _Cells:
    """A block's customers compressed to distinct (pattern, rate, group) cells.

    A cell's value is ``(u Σ m + v Σ m z) · purchases - Σ cost · on_books``, with ``u, v`` the
    Gamma-Gamma spend terms (``GammaGamma.spend_terms``), or ``u = 0, v = 1`` and
    ``Σ m z = Σ margin · spend`` for a fixed spend.
    """

    patterns: pd.DataFrame
    pattern: IntpArray
    rate: IntpArray
    group: IntpArray
    margin: FloatArray
    margin_spend: FloatArray
    cost: FloatArray


class _CellKeys(NamedTuple):
    """A block's distinct (pattern, rate, group) cells and the cell of each of its customers."""

    patterns: pd.DataFrame
    pattern: IntpArray
    rate: IntpArray
    group: IntpArray
    cell_of: IntpArray


def _cell_keys(
    frame: pd.DataFrame, block: _Block, groups: IntpArray, rate_codes: IntpArray
) -> _CellKeys:
    """The cells of a block's customers (``frame``), sorted by pattern, rate and group."""
    patterns, _, inverse = compress(frame, _summary_columns(block.purchases))
    n_rates, n_groups = int(rate_codes.max()) + 1, int(groups.max()) + 1
    key = (inverse.astype(np.int64) * n_rates + rate_codes[block.rows]) * n_groups
    cells, cell_of = np.unique(key + groups[block.rows], return_inverse=True)
    return _CellKeys(
        patterns,
        (cells // (n_rates * n_groups)).astype(np.intp),
        ((cells // n_groups) % n_rates).astype(np.intp),
        (cells % n_groups).astype(np.intp),
        cell_of.astype(np.intp),
    )


def _customer_amounts(
    frame: pd.DataFrame, block: _Block, recipe: _Recipe
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """What each customer adds to their cell's ``margin``, ``margin_spend`` and ``cost``."""
    margin = recipe.margin[block.rows]
    if block.spend is None:
        spent = margin * recipe.fixed_spend[block.rows]
    else:
        repeat = np.where(_column(frame, "frequency") > 0, _column(frame, "monetary_value"), 0.0)
        spent = margin * repeat
    cost = recipe.costs.serve[block.rows] + recipe.costs.marketing[block.rows]
    return margin if block.spend is not None else np.zeros(len(margin)), spent, cost


def _cells(block: _Block, recipe: _Recipe, groups: IntpArray, rate_codes: IntpArray) -> _Cells:
    frame = _rows_of(recipe.data, block.rows)
    keys = _cell_keys(frame, block, groups, rate_codes)
    sums = (
        np.bincount(keys.cell_of, weights=amount, minlength=len(keys.pattern)).astype(np.float64)
        for amount in _customer_amounts(frame, block, recipe)
    )
    return _Cells(keys.patterns, keys.pattern, keys.rate, keys.group, *sums)


def _prefix_lengths(grids: Sequence[_Grid]) -> tuple[_Grid, list[int]] | None:
    """The longest grid and each grid's number of periods, when every grid is a prefix of it."""
    longest = max(grids, key=lambda grid: len(grid.ends))
    lengths = [len(grid.ends) for grid in grids]
    for grid, n in zip(grids, lengths, strict=True):
        if not (
            np.array_equal(grid.ends, longest.ends[:n])
            and np.array_equal(grid.shares, longest.shares[:n])
        ):
            return None
    return longest, lengths


@dataclass(frozen=True, slots=True)
class _CellFlows:
    """Discounted purchases and periods on the books of every cell, one row per horizon."""

    bought: FloatArray
    on_books: FloatArray


def _cell_flows(
    cells: _Cells, purchases: Model, grids: Sequence[_Grid], rates: FloatArray,
    curves: Curves | None = None,
) -> _CellFlows:  # fmt: skip
    """The cells' discounted flows at every horizon, from one table when the grids nest.

    ``curves`` are the cells' patterns' curves (the model's own when ``None``; a retention
    uplift passes them with the dropout scaled).
    """
    state = _curves(purchases, cells.patterns) if curves is None else curves
    group = state.group[cells.pattern]
    nested = _prefix_lengths(grids)
    plans = (
        [(grid, [len(grid.ends)]) for grid in grids] if nested is None else [(nested[0], nested[1])]
    )
    purchase_scale = state.purchase_scale[cells.pattern]
    alive_scale = state.alive_scale[cells.pattern]
    bought, on_books = [], []
    for grid, lengths in plans:
        flows = _flows(purchases, state, grid)
        factors = _factors(rates, _cash_years(flows, grid))
        alive = flows.alive * grid.shares[None, :]
        for n in lengths:
            bought.append(
                purchase_scale
                * _cell_discounted(flows.purchases[:, :n], factors[:, :n], group, cells.rate)
            )
            on_books.append(
                alive_scale * _cell_discounted(alive[:, :n], factors[:, :n], group, cells.rate)
            )
    return _CellFlows(np.stack(bought), np.stack(on_books))


def _cell_discounted(
    table: FloatArray, factors: FloatArray, group: IntpArray, rate: IntpArray
) -> FloatArray:
    """``sum_k table[group_i, k] * factors[rate_i, k]`` for every cell ``i``.

    :func:`~cvalue.value.periods._discounted`, with the small (keys x rates) product read off
    flat (one ``take``, the same values as its two-index gather at a third of the cost):
    valuation with intervals does this twice per draw for every cell.
    """
    n_rates = factors.shape[0]
    if table.shape[0] * n_rates > _DENSE_CELLS:
        return _discounted(table, factors, group, rate)
    products = np.ascontiguousarray(table @ factors.T)
    return np.asarray(np.take(products.ravel(), group * n_rates + rate), dtype=np.float64)


def _cell_values(cells: _Cells, flows: _CellFlows, spend: SpendModel | None) -> FloatArray:
    """The discounted value of each cell's customers (horizons x cells)."""
    if spend is None:
        spent = cells.margin_spend
    else:
        u, v = spend.spend_terms(_column(cells.patterns, "frequency")[cells.pattern])
        spent = u * cells.margin + v * cells.margin_spend
    return np.asarray(spent[None, :] * flows.bought - cells.cost[None, :] * flows.on_books)


def _by_group(values: FloatArray, group: IntpArray, n_groups: int) -> FloatArray:
    """Cell values (horizons x cells) summed per group (groups x horizons)."""
    return np.stack(
        [np.bincount(group, weights=row, minlength=n_groups) for row in values], axis=1
    ).astype(np.float64)


@dataclass(frozen=True, slots=True)
class _Stream:
    """New customers of one segment, acquired at the start of every period."""

    label: str
    purchases: Model
    spend: SpendModel | None
    inputs: _NewInputs
    per_period: float


@dataclass(frozen=True, slots=True, eq=False)
class _EquityProblem:
    """Customer equity as a function of every model's parameters.

    Each block's flows at the estimated parameters are kept, so that moving one model's
    parameters recomputes only the blocks that use it, and moving a spend model's parameters
    recomputes no purchase flows at all.
    """

    pairs: tuple[tuple[Model, SpendModel | None], ...]  # each block's purchase and spend model
    cells: tuple[_Cells, ...]
    grids: tuple[_Grid, ...]
    rates: FloatArray
    n_groups: int
    streams: tuple[_Stream, ...]
    _cache: dict[int, _CellFlows] = field(default_factory=dict)
    _base_values: dict[int, FloatArray] = field(default_factory=dict)
    _future_values: FloatArray | None = None

    @property
    def models(self) -> tuple[_Fitted, ...]:
        """Every model whose parameters the equity depends on, once each."""
        found: dict[int, _Fitted] = {}
        pairs = [*self.pairs, *((s.purchases, s.spend) for s in self.streams)]
        for pair in pairs:
            for model in pair:
                if model is not None:
                    found.setdefault(id(model), model)
        return tuple(found.values())

    def _block_flows(self, index: int, purchases: Model) -> _CellFlows:
        if purchases is not self.pairs[index][0]:
            return _cell_flows(self.cells[index], purchases, self.grids, self.rates)
        if index not in self._cache:
            self._cache[index] = _cell_flows(self.cells[index], purchases, self.grids, self.rates)
        return self._cache[index]

    def _values(self, index: int, replaced: Mapping[int, _Fitted]) -> FloatArray:
        """The block's cell values (horizons x cells) with the models ``replaced``."""
        block_purchases, block_spend = self.pairs[index]
        flows = self._block_flows(index, _stand_in(block_purchases, replaced))
        return _cell_values(self.cells[index], flows, _replaced_spend(block_spend, replaced))

    def _base(self, index: int) -> FloatArray:
        if index not in self._base_values:
            self._base_values[index] = self._values(index, {})
        return self._base_values[index]

    def evaluate(self, replaced: Mapping[int, _Fitted]) -> FloatArray:
        """Equity per (group, horizon), then per (future segment, horizon)."""
        existing = np.zeros((self.n_groups, len(self.grids)))
        for index, pair in enumerate(self.pairs):
            moved = any(model is not None and id(model) in replaced for model in pair)
            values = self._values(index, replaced) if moved else self._base(index)
            existing += _by_group(values, self.cells[index].group, self.n_groups)
        future = [
            _future_value(stream, grid, replaced) for stream in self.streams for grid in self.grids
        ]
        return np.concatenate([existing.ravel(), np.asarray(future, dtype=np.float64)])

    def change(self, replaced: Mapping[int, _Fitted]) -> FloatArray:
        """How :meth:`evaluate`'s outputs move from the estimates when models are ``replaced``.

        Taken cell by cell before the cells are summed, not as a difference of totals: a
        difference of totals loses the digits that the totals' rounding takes (forward
        differences magnify it by the inverse step), and cells split across batches (as
        :class:`~cvalue.value.EquityStream` splits them) add up to the same changes.
        """
        existing = np.zeros((self.n_groups, len(self.grids)))
        for index, pair in enumerate(self.pairs):
            if any(model is not None and id(model) in replaced for model in pair):
                moved = self._values(index, replaced) - self._base(index)
                existing += _by_group(moved, self.cells[index].group, self.n_groups)
        future = [
            _future_value(stream, grid, replaced) for stream in self.streams for grid in self.grids
        ]
        moved = np.asarray(future, dtype=np.float64) - self._future_base()
        return np.concatenate([existing.ravel(), moved])

    def _future_base(self) -> FloatArray:
        """The future cohorts' values at the estimates, computed once."""
        if self._future_values is None:
            found = [_future_value(s, grid, {}) for s in self.streams for grid in self.grids]
            object.__setattr__(self, "_future_values", np.asarray(found, dtype=np.float64))
        assert self._future_values is not None
        return self._future_values


_Moved = TypeVar("_Moved", Model, SpendModel)


def _stand_in(model: _Moved, replaced: Mapping[int, _Fitted]) -> _Moved:
    """The model, or its stand-in with other parameters (a copy of the same class)."""
    return cast("_Moved", replaced.get(id(model), model))


def _replaced_spend(spend: SpendModel | None, replaced: Mapping[int, _Fitted]) -> SpendModel | None:
    """The spend model, or its stand-in with other parameters."""
    return None if spend is None else _stand_in(spend, replaced)


def _future_value(stream: _Stream, grid: _Grid, replaced: Mapping[int, _Fitted]) -> float:
    """New cohorts at the start of each period, each valued over the rest of the horizon.

    ``n sum_j (1 + d)^-t_(j-1) (V(K - j + 1) - CAC)``, with ``V(m)`` the discounted value of a new
    customer over its first ``m`` periods (its first purchase included).
    """
    model = _stand_in(stream.purchases, replaced)
    inputs = stream.inputs
    spend = _replaced_spend(stream.spend, replaced)
    if spend is not None:
        inputs = dataclasses.replace(inputs, spend=spend.expected_spend_new())
    state = _curves(model)
    flows = _flows(model, state, grid)
    rate = np.array([inputs.annual_rate])
    cash = (
        inputs.margin * inputs.spend * state.purchase_scale[0] * flows.purchases[0]
        - inputs.cost * state.alive_scale[0] * flows.alive[0] * grid.shares
    )
    first = 0.0 if _is_contractual(model) else inputs.margin * inputs.spend
    value_up_to = first + np.cumsum(cash * _factors(rate, _cash_years(flows, grid))[0])
    remaining = value_up_to[::-1]  # the cohort of period j has K - j + 1 periods left
    acquired = _factors(rate, grid.starts)[0]
    return float(stream.per_period * np.sum(acquired * (remaining - inputs.acquisition)))


def _default(given: object, fallback: object, name: str) -> object:
    if given is not None:
        return given
    if isinstance(fallback, pd.Series):
        raise SchemaError(
            f"the valuation's {name} is per customer; give FutureCohorts({name}=...) "
            "for the customers to come"
        )
    return fallback


def _streams(
    given: _Inputs, rates: DiscountRates, future: FutureCohorts, grids: Sequence[_Grid]
) -> tuple[_Stream, ...]:
    """One stream of new customers per segment (or one for the base), with their inputs."""
    if any(len(g.shares) and not math.isclose(g.shares[-1], 1.0, rel_tol=_WHOLE) for g in grids):
        raise SchemaError("future cohorts need horizons that are whole numbers of periods")
    counts = future.customers_per_period
    labels = [str(k) for k in counts] if isinstance(counts, Mapping) else [None]
    mapping = _model_map(given.purchases)
    spend = future.spend if future.spend is not None else given.spend
    costs = (
        (_default(future.cost_to_serve, given.cost_to_serve, "cost_to_serve"), "cost_to_serve"),
        (_default(future.marketing_cost, given.marketing_cost, "marketing_cost"), "marketing_cost"),
    )
    margin = _default(future.margin, given.margin, "margin")
    streams = []
    for label in labels:
        if mapping is None:
            model = cast("Model", given.purchases)  # not a mapping: one model for every customer
        elif label is None:
            raise SchemaError("the models are per segment: give customers_per_period per segment")
        else:
            model = _pick(mapping, label, "purchases")
        chosen = spend.get(str(label)) if isinstance(spend, Mapping) else spend
        inputs = _new_inputs(label, spend, margin, costs, future.acquisition_cost, rates)
        count = _scalar_for(counts, label, "customers_per_period")
        is_model = _is_spend_model(chosen)
        streams.append(
            _Stream(label or "all", model, chosen if is_model else None, inputs, count)  # type: ignore[arg-type]
        )
    return tuple(streams)


def _params(model: _Fitted) -> FloatArray:
    return np.asarray(model.params_.to_numpy(), dtype=np.float64)


def _covariance(model: _Fitted) -> FloatArray:
    covariance = np.asarray(model.covariance_.to_numpy(), dtype=np.float64)
    if not np.all(np.isfinite(covariance)):
        raise SchemaError(
            f"this {type(model).__name__} has no covariance of its estimates (built from given "
            "parameters?), so equity has no parameter-uncertainty interval; pass level=None"
        )
    return covariance


def _moves(params: FloatArray) -> Iterator[tuple[int, FloatArray, float]]:
    """Each parameter moved in turn by the relative step ``_STEP``: ``(j, moved, step)``."""
    for j, value in enumerate(params):
        moved = params.copy()
        moved[j] = value * (1.0 + _STEP)
        yield j, moved, float(moved[j] - value)


def _variance(model: _Fitted, jacobian: FloatArray) -> FloatArray:
    """``diag(J Σ Jᵀ)`` for one model's Jacobian ``J`` (outputs x its parameters)."""
    return np.asarray(
        np.einsum("ij,jk,ik->i", jacobian, _covariance(model), jacobian), dtype=np.float64
    )


def _delta_errors(problem: _EquityProblem, combine: FloatArray) -> FloatArray:
    """Delta-method standard errors of ``combine @ outputs``: ``sqrt(diag(G J Σ Jᵀ Gᵀ))``.

    ``J`` by forward differences in each parameter of each model (relative step ``_STEP``,
    accurate to ~1e-6 relative, far below what a standard error needs); the models are
    estimated independently, so the variances add up over them.
    """
    variance = np.zeros(combine.shape[0])
    for model in problem.models:
        params = _params(model)
        jacobian = np.empty((combine.shape[0], len(params)))
        for j, moved, step in _moves(params):
            jacobian[:, j] = combine @ problem.change({id(model): model.with_params(moved)}) / step
        variance += _variance(model, jacobian)
    return np.asarray(np.sqrt(np.maximum(variance, 0.0)), dtype=np.float64)


def _normal_interval(
    estimate: FloatArray, spread: FloatArray, level: float
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Estimates, lower and upper bounds and standard errors of a normal interval."""
    z = float(stats.norm.ppf(0.5 + level / 2.0))
    return estimate, estimate - z * spread, estimate + z * spread, spread


def _bootstrap_draws(
    models: Sequence[_Fitted], n_draws: int, rng: np.random.Generator, *, fix: str
) -> Iterator[dict[int, _Fitted]]:
    """Every model's bootstrap replicates, ``n_draws`` times: ``{id(model): replicate}``.

    The bootstrap twin of :func:`cvalue.models.joint_draws`: per draw each model is replaced by
    ``model.resampled(rng)`` (refitted on its customers drawn with replacement), in the order
    given. The models are resampled independently, as the draws treat their estimates as
    independent. The first draw is made before the iterator is returned, so that a model with
    no customers to resample is refused at once, with ``fix`` in the message.
    """

    def replicate(model: _Fitted) -> _Fitted:
        if not isinstance(model, Model):
            raise SchemaError(
                f"a {type(model).__name__} makes no bootstrap replicates (it is not a fitted "
                f"cvalue model); {fix}"
            )
        try:
            return model.resampled(rng)
        except SchemaError as exc:
            raise SchemaError(
                f"a bootstrap interval refits every model on resampled customers, but {exc}; {fix}"
            ) from exc

    first = {id(model): replicate(model) for model in models}

    def draws() -> Iterator[dict[int, _Fitted]]:
        yield first
        for _ in range(n_draws - 1):
            yield {id(model): replicate(model) for model in models}

    return draws()


def _draws(
    problem: _EquityProblem, n_draws: int, rng: np.random.Generator, method: str
) -> FloatArray:
    """Outputs at parameters drawn around each model's estimate, or at bootstrap replicates.

    Draws are log-normal (``cov / θθᵀ``, :func:`cvalue.models.joint_draws`); replicates come
    from :func:`_bootstrap_draws`.
    """
    fix = "pass level=None for equity without an interval"
    drawn = (
        joint_draws(problem.models, n_draws, rng, fix=fix)
        if method == "draws"
        else _bootstrap_draws(problem.models, n_draws, rng, fix=fix + ", or method='draws'")
    )
    return np.asarray([problem.evaluate(replaced) for replaced in drawn], dtype=np.float64)


def _combinations(n_groups: int, n_streams: int, n_horizons: int) -> FloatArray:
    """Rows giving every output, then per horizon the existing, future and total equity."""
    n_outputs = (n_groups + n_streams) * n_horizons
    existing = np.zeros((n_horizons, n_outputs))
    future = np.zeros((n_horizons, n_outputs))
    for h in range(n_horizons):
        existing[h, h : n_groups * n_horizons : n_horizons] = 1.0
        future[h, n_groups * n_horizons + h :: n_horizons] = 1.0
    return np.vstack([np.eye(n_outputs), existing, future, existing + future])


def _check_interval_options(
    level: float | None, method: str, n_draws: int, rng: np.random.Generator | None
) -> None:
    """Refuse a level, method, number of draws or generator that the interval cannot use."""
    if level is None:
        return
    if not 0.0 < level < 1.0:
        raise SchemaError(f"level must be between 0 and 1, got {level!r}")
    if method == "delta":
        return
    if method not in ("draws", "bootstrap"):
        raise SchemaError(f"method must be 'delta', 'draws' or 'bootstrap', got {method!r}")
    if isinstance(n_draws, bool) or not isinstance(n_draws, int | np.integer) or n_draws < 2:
        raise SchemaError(f"n_draws must be a whole number of at least 2, got {n_draws!r}")
    if rng is None:
        raise SchemaError(f"method={method!r} needs rng=np.random.default_rng(seed)")


def _intervals(
    problem: _EquityProblem,
    combine: FloatArray,
    level: float | None,
    method: str,
    n_draws: int,
    rng: np.random.Generator | None,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Estimates, lower and upper bounds and standard errors of ``combine @ outputs``."""
    _check_interval_options(level, method, n_draws, rng)
    estimate = combine @ problem.evaluate({})
    if level is None:
        nan = np.full_like(estimate, np.nan)
        return estimate, nan, nan, nan
    if method == "delta":
        return _normal_interval(estimate, _delta_errors(problem, combine), level)
    assert rng is not None  # checked above: draws and replicates need one
    drawn = _draws(problem, n_draws, rng, method) @ combine.T
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(drawn, [tail, 1.0 - tail], axis=0)
    return estimate, low, high, drawn.std(axis=0, ddof=1)


def customer_equity(
    values: CustomerValue,
    horizons: Sequence[Duration | str] = ("3y", "5y"),
    by: pd.Series | str | None = None,
    *,
    level: float | None = 0.95,
    method: EquityMethod = "delta",
    n_draws: int = 500,
    rng: np.random.Generator | None = None,
    future: FutureCohorts | None = None,
) -> CustomerEquity:
    """The value of the whole base (and per group) at several horizons, with intervals.

    The customers of ``values`` are revalued at each horizon with the same inputs, on their
    distinct (pattern, rate, group) cells. Intervals come from the uncertainty of every model's
    parameters (purchase and Gamma-Gamma models): the delta method (forward differences and
    ``covariance_``, normal interval), ``n_draws`` parameter draws (log-normal around the
    estimates, percentile interval) or ``n_draws`` bootstrap replicates (every model refitted
    on its customers drawn with replacement, ``Model.resampled``; percentile interval).

    Parameters
    ----------
    values
        The result of :func:`clv`.
    horizons
        Horizons with units.
    by
        A column of ``values.customers`` (such as ``"segment"``) or a Series per customer.
    level
        The confidence level of the intervals; ``None`` for point values only.
    method
        ``"delta"``, ``"draws"`` or ``"bootstrap"`` (needs models fitted on data in this
        session).
    n_draws, rng
        For ``method="draws"`` and ``"bootstrap"``: how many draws or replicates, and their
        random generator (required).
    future
        New customers to add (:class:`FutureCohorts`): ``new customers per period x (new
        customer value - acquisition cost)``, each cohort valued over the rest of the horizon.
    """
    grids = tuple(_grid(_horizon(h), values.period) for h in horizons)
    names = [str(h) for h in horizons]
    codes, labels = _group_codes(values, by)
    recipe = values._recipe
    rates, rate_codes = np.unique(recipe.annual_rate, return_inverse=True)
    cells = tuple(
        _cells(block, recipe, codes, rate_codes.astype(np.intp)) for block in recipe.blocks
    )
    streams = () if future is None else _streams(recipe.inputs, recipe.rates, future, grids)
    pairs = tuple((block.purchases, block.spend) for block in recipe.blocks)
    problem = _EquityProblem(pairs, cells, grids, rates, len(labels), streams)
    counts = np.bincount(codes, minlength=len(labels))
    return _solved(problem, labels, counts, names, level, method, n_draws, rng)


def _solved(
    problem: _EquityProblem,
    labels: Sequence[object],
    counts: npt.NDArray[np.int64],
    names: Sequence[str],
    level: float | None,
    method: EquityMethod,
    n_draws: int,
    rng: np.random.Generator | None,
) -> CustomerEquity:
    """The equity tables of a problem whose groups are ``labels``, with ``counts`` customers."""
    combine = _combinations(len(labels), len(problem.streams), len(problem.grids))
    found = _intervals(problem, combine, level, method, n_draws, rng)
    return _equity_tables(
        found, labels, names, counts, problem.streams, problem.grids, level, method
    )


def _interval_frame(
    found: tuple[FloatArray, FloatArray, FloatArray, FloatArray], part: slice, index: pd.Index
) -> pd.DataFrame:
    """Estimates, standard errors and bounds of the outputs in ``part``."""
    estimate, lower, upper, spread = found
    return pd.DataFrame(
        {
            "equity": estimate[part],
            "std_error": spread[part],
            "ci_lower": lower[part],
            "ci_upper": upper[part],
        },
        index=index,
    )


def _equity_tables(
    found: tuple[FloatArray, FloatArray, FloatArray, FloatArray],
    labels: Sequence[object],
    names: Sequence[str],
    counts: npt.NDArray[np.int64],
    streams: Sequence[_Stream],
    grids: Sequence[_Grid],
    level: float | None,
    method: EquityMethod,
) -> CustomerEquity:
    n_h, n_g, n_s = len(names), len(labels), len(streams)
    existing_end = n_g * n_h
    by_group = _interval_frame(
        found,
        slice(0, existing_end),
        pd.MultiIndex.from_product([labels, names], names=["group", "horizon"]),
    )
    by_group.insert(0, "customers", np.repeat(counts, n_h))
    outputs = (n_g + n_s) * n_h
    future = None
    if n_s:
        future = _interval_frame(
            found,
            slice(existing_end, outputs),
            pd.MultiIndex.from_product(
                [[s.label for s in streams], names], names=["segment", "horizon"]
            ),
        )
        future.insert(
            0, "new_customers", [s.per_period * len(g.ends) for s in streams for g in grids]
        )
    total = _interval_frame(
        found, slice(outputs + 2 * n_h, outputs + 3 * n_h), pd.Index(names, name="horizon")
    )
    total.insert(0, "existing", found[0][outputs : outputs + n_h])
    total.insert(1, "future", found[0][outputs + n_h : outputs + 2 * n_h])
    return CustomerEquity(by_group, future, total, level, method)
