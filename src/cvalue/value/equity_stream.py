"""Customer equity of a base valued chunk by chunk: :class:`EquityStream`.

:func:`~cvalue.value.customer_equity` revalues a base on its distinct (pattern, rate, group)
cells, whose sums of margin, margin times spend and cost per period add up over customers. A
base too large to value at once is valued chunk by chunk with :func:`~cvalue.value.clv`; each
chunk's cells are merged into running cells keyed by the pattern's values, the annual rate and
the group label, so that memory grows with the distinct cells, not with the customers, and the
equity of the merged cells is the whole base's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from numbers import Real
from typing import cast

import numpy as np
import numpy.typing as npt
import pandas as pd

from cvalue.errors import SchemaError
from cvalue.models import Model, SpendModel
from cvalue.summary import compress
from cvalue.units import Duration
from cvalue.value.clv import CustomerValue, _group_codes, _Inputs, _Recipe, _rows_of
from cvalue.value.curves import _summary_columns
from cvalue.value.equity import (
    CustomerEquity,
    EquityMethod,
    FutureCohorts,
    _cell_keys,
    _CellKeys,
    _Cells,
    _check_interval_options,
    _combinations,
    _customer_amounts,
    _equity_tables,
    _EquityProblem,
    _Fitted,
    _moves,
    _normal_interval,
    _params,
    _solved,
    _Stream,
    _streams,
    _variance,
)
from cvalue.value.inputs import FloatArray, IntpArray
from cvalue.value.periods import _Grid, _grid, _horizon
from cvalue.value.rates import DiscountRates

__all__ = ["EquityStream"]


_RATE, _GROUP = "__annual_rate__", "__group__"  # key columns next to a pattern's own
_SUMS = ("margin", "margin_spend", "cost")  # the additive sums of a cell (:class:`_Cells`)
_INPUTS = {
    "purchases": "the purchase model",
    "spend": "the spend",
    "margin": "the margin",
    "cost_to_serve": "the cost to serve",
    "marketing_cost": "the marketing cost",
}


@dataclasses.dataclass(slots=True, eq=False)
class _RunningBlock:
    """One (purchase model, spend model) pair's cells, summed over the chunks added so far."""

    purchases: Model
    spend: SpendModel | None
    columns: tuple[str, ...]  # the purchase model's summary columns: a pattern's values
    frame: pd.DataFrame  # the pattern columns, the rate, the group code and the sums


@dataclasses.dataclass(slots=True, eq=False)
class _Flushed:
    """What the cells valued and dropped so far add up to (groups in order of arrival).

    ``base`` is their equity at the estimates (groups x horizons); ``moves`` holds, for each
    model (kept, so that its ``id`` stays its own), the change of that equity when each of its
    parameters moves by the delta method's step (parameters x groups x horizons).
    """

    base: FloatArray
    moves: dict[int, tuple[_Fitted, FloatArray]]


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class _Valuation:
    """What every chunk must share: the first chunk's options, without its customers."""

    horizon: Duration
    period: Duration
    margin_net_of: frozenset[str]
    rates: DiscountRates
    inputs: _Inputs


class EquityStream:
    """Customer equity of a base valued chunk by chunk, equal to that of the whole base.

    Each chunk of customers is valued with :func:`~cvalue.value.clv` and given to :meth:`add`;
    :meth:`result` then returns what :func:`~cvalue.value.customer_equity` returns for the
    whole base valued at once: the same groups in the same order, the same customer counts, and
    the same estimates and intervals, to the last bit when the chunks come in the base's order
    (each cell's sums then accumulate customer by customer as the whole base's do) and no more
    than ``max_cells`` cells were kept, and up to rounding otherwise. Only the distinct
    (pattern, annual rate, group) cells are kept, with their sums, so memory is bounded by the
    number of cells, not of customers. Cells are keyed by every summary column the purchase
    model reads, covariates included.

    A large base has millions of distinct patterns. With the delta method (or ``level=None``),
    once more than ``max_cells`` cells are kept they are valued and dropped: their equity at
    the estimates, and its change when each parameter moves by the delta method's step, are
    added to running sums per group and horizon (the equity is a sum over cells, and so is its
    Jacobian). Memory is then bounded by ``max_cells``, whatever the base; the estimates agree
    with the whole base's to rounding (about 1e-13 relative) and the standard errors to a few
    1e-9: the delta method's forward differences magnify the rounding of cells summed in
    another order a million times.

    Parameters
    ----------
    horizons
        Horizons with units.
    by
        A column of every chunk's ``customers`` (such as ``"segment"``), or ``None`` for the
        whole base as one group ``"all"``. Groups are sorted by label, as
        :func:`~cvalue.value.customer_equity` sorts them, whichever chunk they first appear in.
    level, method, n_draws, rng, future
        As for :func:`~cvalue.value.customer_equity`, and checked at once. Parameter draws
        and bootstrap replicates are the whole base's with a generator in the same state when
        the chunks come in the base's order (models given per segment are then met, and drawn,
        in the same order).
    max_cells
        How many cells to keep before valuing and dropping them (delta method or
        ``level=None``); ``None`` keeps every cell. Parameter draws and bootstrap replicates
        keep every cell: the replicates are drawn at the end.

    Notes
    -----
    Every chunk must have been valued with the same models (the same objects, or models of the
    same class with equal parameters, covariance and unit), the same discount rates, period,
    horizon and cost items in the margin, and the same margin, spend and costs where these are
    numbers or per segment (a Series per customer is each chunk's own). A customer must be in
    one chunk only: the stream keeps no customer ids, so it cannot see one given twice.

    Examples
    --------
    >>> import cvalue as cv
    >>> from cvalue.datasets import load_cdnow
    >>> from cvalue.value import DiscountRates, clv, customer_equity
    >>> cbs = load_cdnow().summary
    >>> bg = cv.BetaGeo().fit(cbs, unit="week")
    >>> options = dict(purchases=bg, spend=10.0, margin=0.3, horizon="1y",
    ...                rates=DiscountRates.single(0.10), cost_to_serve=0.1, marketing_cost=0.0)
    >>> stream = EquityStream(("1y", "3y"))
    >>> for start in range(0, len(cbs), 1000):
    ...     stream.add(clv(cbs.iloc[start : start + 1000], **options))
    >>> chunked = stream.result().total["equity"]
    >>> whole = customer_equity(clv(cbs, **options), ("1y", "3y")).total["equity"]
    >>> bool(np.allclose(chunked, whole, rtol=1e-12))
    True
    """

    def __init__(
        self,
        horizons: Sequence[Duration | str] = ("3y", "5y"),
        by: str | None = None,
        *,
        level: float | None = 0.95,
        method: EquityMethod = "delta",
        n_draws: int = 500,
        rng: np.random.Generator | None = None,
        future: FutureCohorts | None = None,
        max_cells: int | None = 100_000,
    ) -> None:
        if max_cells is not None and (
            isinstance(max_cells, bool) or not isinstance(max_cells, int) or max_cells < 1
        ):
            raise SchemaError(f"max_cells must be a whole number of at least 1 or None, "
                              f"got {max_cells!r}")  # fmt: skip
        if not (by is None or isinstance(by, str)):
            raise SchemaError(
                f"by must name a column of every chunk's customers (such as 'segment') or be "
                f"None, got {type(by).__name__}; add the labels to each chunk as a column"
            )
        _check_interval_options(level, method, n_draws, rng)
        for horizon in horizons:
            _horizon(horizon)  # a horizon without a unit is refused before any chunk
        self.horizons = tuple(horizons)
        self.by = by
        self.level = level
        self.method: EquityMethod = method
        self.n_draws = n_draws
        self.rng = rng
        self.future = future
        self.max_cells = max_cells if level is None or method == "delta" else None
        self._flushed: _Flushed | None = None
        self._valuation: _Valuation | None = None
        self._blocks: dict[tuple[int, int], _RunningBlock] = {}
        self._labels: pd.Series | None = None  # distinct group labels, in order of arrival
        self._position: dict[object, int] = {}
        self._counts: npt.NDArray[np.int64] = np.zeros(0, dtype=np.int64)
        self._n_chunks = 0

    def add(self, values: CustomerValue) -> None:
        """Merge the cells of one chunk's customers, valued with :func:`~cvalue.value.clv`.

        Raises
        ------
        SchemaError
            When ``values`` is not a :func:`~cvalue.value.clv` result, lacks the ``by`` column,
            or was valued with other models, rates or options than the first chunk (the
            message names each difference).
        """
        if not isinstance(values, CustomerValue):
            raise SchemaError(
                f"EquityStream.add needs a chunk's clv(...) result, got {type(values).__name__}"
            )
        recipe = values._recipe
        codes, labels = _group_codes(values, self.by)
        canonical = self._first_models(values)
        groups = self._global_groups(values, codes, labels)
        self._counts[groups] += np.bincount(codes, minlength=len(labels))
        rates, rate_codes = np.unique(recipe.annual_rate, return_inverse=True)
        for block in recipe.blocks:
            frame = _rows_of(recipe.data, block.rows)
            keys = _cell_keys(frame, block, codes, rate_codes.astype(np.intp))
            purchases = cast("Model", canonical.get(id(block.purchases), block.purchases))
            spend = (
                None
                if block.spend is None
                else cast("SpendModel", canonical.get(id(block.spend), block.spend))
            )
            self._merge(
                purchases,
                spend,
                _key_frame(keys, rates, groups),
                (keys.cell_of, _customer_amounts(frame, block, recipe)),
            )
        self._n_chunks += 1
        kept = sum(len(running.frame) for running in self._blocks.values())
        if self.max_cells is not None and kept > self.max_cells:
            self._flush()

    def result(self) -> CustomerEquity:
        """Customer equity of every customer added, as :func:`~cvalue.value.customer_equity`.

        Raises
        ------
        SchemaError
            When no chunk was added, or for the options :func:`~cvalue.value.customer_equity`
            refuses (a level outside (0, 1), draws without ``rng``...).
        """
        if self._valuation is None or self._labels is None:
            raise SchemaError("EquityStream.result needs at least one chunk: call add(values)")
        grids = self._grids()
        names = [str(h) for h in self.horizons]
        order, sorted_labels = pd.factorize(self._labels, sort=True)
        counts = np.zeros(len(self._counts), dtype=np.int64)
        counts[order] = self._counts
        streams = (
            ()
            if self.future is None
            else _streams(self._valuation.inputs, self._valuation.rates, self.future, grids)
        )
        if self._flushed is not None:
            if self._blocks:
                self._flush()
            found = self._assembled(order.astype(np.intp), streams, grids)
            return _equity_tables(found, list(sorted_labels), names, counts, streams, grids,
                                  self.level, self.method)  # fmt: skip
        problem = self._problem(order.astype(np.intp), grids, streams)
        return _solved(
            problem,
            list(sorted_labels),
            counts,
            names,
            self.level,
            self.method,
            self.n_draws,
            self.rng,
        )

    def _grids(self) -> tuple[_Grid, ...]:
        assert self._valuation is not None  # set by the first chunk
        return tuple(_grid(_horizon(h), self._valuation.period) for h in self.horizons)

    def _problem(
        self, order: IntpArray, grids: tuple[_Grid, ...], streams: tuple[_Stream, ...]
    ) -> _EquityProblem:
        """The kept cells as the whole base's equity problem, groups numbered by ``order``."""
        running = tuple(self._blocks.values())
        rates = np.unique(np.concatenate([b.frame[_RATE].to_numpy() for b in running]))
        cells = tuple(_final_cells(b, rates, order) for b in running)
        pairs = tuple((b.purchases, b.spend) for b in running)
        return _EquityProblem(pairs, cells, grids, rates, len(self._counts), streams)

    # --- cells valued and dropped ----------------------------------------------------------------

    def _flush(self) -> None:
        """Value the kept cells, add them to the running sums, and drop them."""
        n_groups, grids = len(self._counts), self._grids()
        problem = self._problem(np.arange(n_groups, dtype=np.intp), grids, ())
        shape = (n_groups, len(grids))
        base = problem.evaluate({}).reshape(shape)
        flushed = self._flushed or _Flushed(np.zeros((0, len(grids))), {})
        flushed.base = _padded(flushed.base, n_groups) + base
        if self.level is not None:
            for model in problem.models:
                params = _params(model)
                moved = np.empty((len(params), *shape))
                for j, at, _ in _moves(params):
                    replaced = {id(model): model.with_params(at)}
                    moved[j] = problem.change(replaced).reshape(shape)
                earlier = flushed.moves.get(id(model))
                if earlier is not None:
                    moved += _padded(earlier[1], n_groups)
                flushed.moves[id(model)] = (model, moved)
        self._flushed = flushed
        self._blocks.clear()

    def _assembled(
        self, order: IntpArray, streams: tuple[_Stream, ...], grids: tuple[_Grid, ...]
    ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        """Estimates, bounds and errors from the running sums, as :func:`_solved` gives them."""
        assert self._flushed is not None
        n_groups, n_existing = len(self._counts), len(self._counts) * len(grids)
        future = _EquityProblem((), (), grids, np.zeros(0), n_groups, streams)
        future_base = future.evaluate({})[n_existing:]
        combine = _combinations(n_groups, len(streams), len(grids))

        def outputs(existing: FloatArray, coming: FloatArray) -> FloatArray:
            in_order = np.zeros((n_groups, len(grids)))
            in_order[order] = _padded(existing, n_groups)
            return np.asarray(combine @ np.concatenate([in_order.ravel(), coming]))

        estimate = outputs(self._flushed.base, future_base)
        if self.level is None:
            nan = np.full_like(estimate, np.nan)
            return estimate, nan, nan, nan
        moves = self._flushed.moves
        models = {key: model for key, (model, _) in moves.items()}
        models.update((id(model), model) for model in future.models)
        variance = np.zeros(len(estimate))
        for key, model in models.items():
            params = _params(model)
            jacobian = np.empty((len(estimate), len(params)))
            for j, at, step in _moves(params):
                existing = moves[key][1][j] if key in moves else np.zeros((0, len(grids)))
                coming = future.change({key: model.with_params(at)})[n_existing:]
                jacobian[:, j] = outputs(existing, coming) / step
            variance += _variance(model, jacobian)
        return _normal_interval(estimate, np.sqrt(np.maximum(variance, 0.0)), self.level)

    # --- chunk by chunk --------------------------------------------------------------------------

    def _first_models(self, values: CustomerValue) -> dict[int, object]:
        """The first chunk's model for each of this chunk's (by ``id``), once checked equal.

        The first chunk's options are kept; a chunk valued otherwise is refused with every
        difference named. The map is rebuilt per chunk: an ``id`` is unique only while its
        object lives.
        """
        recipe = values._recipe
        found = _valuation(values, recipe)
        if self._valuation is None:
            self._valuation = found
            return {id(model): model for model in _models(recipe.inputs).values()}
        problems = _differences(self._valuation, found)
        if problems:
            raise SchemaError(
                f"chunk {self._n_chunks + 1} was valued otherwise than the first chunk: "
                f"{'; '.join(problems)}. Value every chunk with the same models, rates and "
                "options"
            )
        first = _models(self._valuation.inputs)
        return {
            id(model): first.get(where, model) for where, model in _models(recipe.inputs).items()
        }

    def _global_groups(
        self, values: CustomerValue, codes: IntpArray, labels: Sequence[object]
    ) -> IntpArray:
        """The stream's code of each of the chunk's group labels, new labels added at the end."""
        if self.by is None:
            distinct = pd.Series(["all"])  # _group_codes' one group
        else:
            first_rows = np.unique(codes, return_index=True)[1]
            distinct = values.customers[self.by].iloc[first_rows].reset_index(drop=True)
        is_new = np.array([label not in self._position for label in labels], dtype=bool)
        for label in np.asarray(labels, dtype=object)[is_new]:
            self._position[label] = len(self._position)
        if is_new.any():
            added = distinct[is_new]
            self._labels = added if self._labels is None else pd.concat([self._labels, added])
            self._counts = np.concatenate(
                [self._counts, np.zeros(int(is_new.sum()), dtype=np.int64)]
            )
        return np.array([self._position[label] for label in labels], dtype=np.intp)

    def _merge(
        self,
        purchases: Model,
        spend: SpendModel | None,
        cells: pd.DataFrame,
        customers: tuple[IntpArray, tuple[FloatArray, ...]],
    ) -> None:
        """Add a chunk's customers of one block into the running cells of its pair of models.

        ``cells`` keys the chunk's cells; ``customers`` gives each customer's cell and amounts.
        A running cell's sums go first and the customers follow in their order, one addition
        at a time (``bincount``): the sums the whole base accumulates, to the last bit, when
        the chunks come in the base's order.
        """
        key = (id(purchases), id(spend))
        running = self._blocks.get(key)
        columns = _summary_columns(purchases) if running is None else running.columns
        keys = (*columns, _RATE, _GROUP)
        n_running = 0 if running is None else len(running.frame)
        both = cells if running is None else pd.concat([running.frame[list(keys)], cells])
        distinct, _, merged = compress(both.reset_index(drop=True), keys)
        cell_of, amounts = customers
        into = np.concatenate([merged[:n_running], merged[n_running:][cell_of]])
        sums = {}
        for name, amount in zip(_SUMS, amounts, strict=True):
            earlier = np.empty(0) if running is None else running.frame[name].to_numpy()
            weights = np.concatenate([earlier, amount])
            sums[name] = np.bincount(into, weights=weights, minlength=len(distinct))
        frame = distinct.assign(**sums)
        if running is None:
            self._blocks[key] = _RunningBlock(purchases, spend, columns, frame)
        else:
            running.frame = frame


def _padded(sums: FloatArray, n_groups: int) -> FloatArray:
    """Running sums per group, with zeros for the groups that arrived since.

    ``sums`` is groups x horizons, or parameters x groups x horizons.
    """
    width = [(0, 0)] * sums.ndim
    width[-2] = (0, n_groups - sums.shape[-2])
    return np.pad(sums, width)


def _key_frame(keys: _CellKeys, rates: FloatArray, groups: IntpArray) -> pd.DataFrame:
    """A chunk's cells as rows: the pattern's values, the annual rate and the group's code."""
    frame = keys.patterns.iloc[keys.pattern].reset_index(drop=True)
    frame[_RATE] = rates[keys.rate]
    frame[_GROUP] = groups[keys.group]
    return frame


def _final_cells(running: _RunningBlock, rates: FloatArray, order: IntpArray) -> _Cells:
    """The running cells of a block as :class:`_Cells` over the sorted rates and groups.

    The cells come in the order the whole base's have (by pattern, rate, then group), so that
    sums over them are taken in the same order: with the same cell sums, every output is the
    whole base's to the last bit (the delta method's forward differences, at a relative step of
    1e-6, would otherwise magnify rounding a million times).
    """
    frame = running.frame
    patterns, _, pattern = compress(frame, running.columns)
    rate = np.searchsorted(rates, frame[_RATE].to_numpy()).astype(np.intp)
    group = order[frame[_GROUP].to_numpy()]
    rows = np.lexsort((group, rate, pattern))
    sums = [frame[name].to_numpy(dtype=np.float64)[rows] for name in _SUMS]
    return _Cells(patterns, pattern[rows], rate[rows], group[rows], *sums)


# --- one valuation for every chunk ---------------------------------------------------------------


def _without_customers(given: object) -> object:
    """An input without per-customer values: a Series per customer becomes an empty Series.

    Future cohorts refuse a per-customer input all the same; the chunk's values are not kept.
    """
    return given.iloc[:0] if isinstance(given, pd.Series) else given


def _valuation(values: CustomerValue, recipe: _Recipe) -> _Valuation:
    inputs = recipe.inputs
    kept = dataclasses.replace(
        inputs,
        spend=_without_customers(inputs.spend),  # type: ignore[arg-type]
        margin=_without_customers(inputs.margin),  # type: ignore[arg-type]
        cost_to_serve=_without_customers(inputs.cost_to_serve),  # type: ignore[arg-type]
        marketing_cost=_without_customers(inputs.marketing_cost),  # type: ignore[arg-type]
    )
    rates = recipe.rates
    if rates.customer_rates is not None:  # per customer: each chunk's own, and not kept
        rates = dataclasses.replace(rates, customer_rates=rates.customer_rates.iloc[:0])
    return _Valuation(values.horizon, values.period, values.margin_net_of, rates, kept)


def _models(inputs: _Inputs) -> dict[str, object]:
    """Every model of a valuation, by where it sits: ``"purchases"``, ``"spend['retail']"``."""
    found: dict[str, object] = {}
    for name in ("purchases", "spend"):
        given = getattr(inputs, name)
        entries = given.items() if isinstance(given, Mapping) else [(None, given)]
        cohorts = getattr(given, "cohorts_", None)
        if isinstance(cohorts, Mapping):
            entries = [*entries, *cohorts.items()]
        for label, model in entries:
            if _is_model(model):
                found[name if label is None else f"{name}[{label!r}]"] = model
    return found


def _is_model(given: object) -> bool:
    """A fitted model (purchase or spend): anything that moves to other parameters."""
    return hasattr(type(given), "with_params")


def _differences(first: _Valuation, other: _Valuation) -> list[str]:
    """What ``other`` does otherwise than ``first``, one phrase per difference."""
    problems = [
        f"{what} is {getattr(other, name)} instead of {getattr(first, name)}"
        for name, what in (("horizon", "the horizon"), ("period", "the period"))
        if getattr(other, name) != getattr(first, name)
    ]
    if other.margin_net_of != first.margin_net_of:
        problems.append(
            f"the margin is net of {sorted(other.margin_net_of)} instead of "
            f"{sorted(first.margin_net_of)}"
        )
    if not _same_rates(first.rates, other.rates):
        problems.append("the discount rates differ (other kind, quotes or rates)")
    for name, what in _INPUTS.items():
        given, chunk = getattr(first.inputs, name), getattr(other.inputs, name)
        if not _same_input(given, chunk):
            problems.append(f"{what} differs ({_described(chunk)} instead of {_described(given)})")
    return problems


def _described(given: object) -> str:
    if _is_model(given):
        return f"a {type(given).__name__} with parameters {_params_text(given)}"
    if isinstance(given, pd.Series):
        return "a Series per customer"
    if isinstance(given, Mapping):
        return "{" + ", ".join(f"{k!r}: {_described(v)}" for k, v in given.items()) + "}"
    return repr(given)


def _params_text(model: object) -> str:
    params = getattr(model, "params_", None)
    if not isinstance(params, pd.Series):
        return "(none)"
    return "{" + ", ".join(f"{k}={float(v):.6g}" for k, v in params.items()) + "}"


def _same_input(first: object, other: object) -> bool:
    """Whether two chunks' inputs are the same (a Series per customer is each chunk's own)."""
    if first is other or (isinstance(first, pd.Series) and isinstance(other, pd.Series)):
        return True
    if isinstance(first, Mapping) and isinstance(other, Mapping):
        return set(first) == set(other) and all(_same_input(first[k], other[k]) for k in first)
    if _is_model(first) or _is_model(other):
        return _same_model(first, other)
    is_number = (
        isinstance(first, Real)
        and isinstance(other, Real)
        and not isinstance(first, bool)
        and not isinstance(other, bool)
    )
    if is_number:
        return float(first) == float(other)  # type: ignore[arg-type]
    return type(first) is type(other) and bool(first == other)


def _same_model(first: object, other: object) -> bool:
    """Same class, summary columns, time unit, parameters and covariance of the estimates."""
    if type(first) is not type(other):
        return False
    described = ("summary_columns", "unit_", "params_", "covariance_")
    for name in described:
        mine, theirs = getattr(first, name, None), getattr(other, name, None)
        if isinstance(mine, pd.Series | pd.DataFrame) and isinstance(theirs, type(mine)):
            same = mine.index.equals(theirs.index) and np.array_equal(
                mine.to_numpy(), theirs.to_numpy(), equal_nan=True
            )
        else:
            same = bool(mine == theirs)
        if not same:
            return False
    return True


def _same_rates(first: DiscountRates, other: DiscountRates) -> bool:
    """Same kind and quotes; rates per customer are each chunk's own (cells key the rate)."""
    if first is other:
        return True
    if (first.kind, first.per, first.compounding) != (other.kind, other.per, other.compounding):
        return False
    return first.kind == "by_customer" or first.table().equals(other.table())
