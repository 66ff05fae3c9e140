"""Per-customer CLV intervals from the uncertainty of every model's parameters.

``clv(..., interval=0.9)`` draws every model's parameters jointly ``n_draws`` times (log-normal
around the estimates, :func:`cvalue.models.joint_draws`, model by model per draw, as customer
equity's draws do; or, with ``interval_method="bootstrap"``, replaces every model by a bootstrap
replicate, ``Model.resampled``), recomputes the discounted flows of each distinct (pattern, rate)
cell at each draw, and reads each customer's bounds off the quantiles of

``clv = margin · (u + v · m) · purchases - (cost to serve + marketing cost) · on_books``

(``u, v`` the Gamma-Gamma spend terms of the draw, or ``u = 0, v = 1, m = spend`` for a fixed
spend), a linear combination per customer of per-cell values, so that the per-customer work is
vectorised and done in blocks of customers.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal, TypeAlias

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from cvalue.errors import SchemaError
from cvalue.models import Model, SpendModel, joint_draws
from cvalue.patterns import compress
from cvalue.value.clv import _Block, _Recipe, _rows_of
from cvalue.value.curves import _summary_columns
from cvalue.value.equity import _bootstrap_draws, _cell_flows, _Cells
from cvalue.value.inputs import FloatArray, IntpArray, _column
from cvalue.value.periods import _Grid

__all__: list[str] = []

_CHUNK_VALUES = 1_000_000  # draws x customers held at once when reading off the quantiles
_WORKERS = min(8, os.cpu_count() or 1)  # threads computing the draws' flows
_FIX = "fit the model to its data, or pass interval=None for CLV without an interval"
ClvIntervalMethod: TypeAlias = Literal["draws", "bootstrap"]


@dataclass(frozen=True, slots=True, eq=False)
class _CustomerCells:
    """A block's customers on their distinct (pattern, rate) cells, with their coefficients.

    A customer's CLV is ``(scaled · u + spent · v) · B[cell] - cost · O[cell]`` with ``B, O`` the
    cell's discounted purchases and periods on the books and ``u, v`` the spend terms at the
    customer's frequency.
    """

    cells: _Cells
    cell_of: IntpArray
    frequencies: FloatArray  # the distinct frequencies, for the spend terms
    frequency_of: IntpArray  # each customer's among them
    scaled: FloatArray  # margin (Gamma-Gamma) or 0 (fixed spend), per customer
    spent: FloatArray  # margin x mean spend (Gamma-Gamma) or margin x spend, per customer
    cost: FloatArray  # cost to serve + marketing cost per period, per customer


def _customer_cells(block: _Block, recipe: _Recipe, rate_codes: IntpArray) -> _CustomerCells:
    frame = _rows_of(recipe.data, block.rows)
    patterns, _, inverse = compress(frame, _summary_columns(block.purchases))
    n_rates = int(rate_codes.max()) + 1
    key = inverse.astype(np.int64) * n_rates + rate_codes[block.rows]
    found, cell_of = np.unique(key, return_inverse=True)
    pattern = (found // n_rates).astype(np.intp)
    empty = np.zeros(len(found))
    cells = _Cells(
        patterns,
        pattern,
        (found % n_rates).astype(np.intp),
        np.zeros(len(found), dtype=np.intp),
        empty,
        empty,
        empty,
    )
    margin = recipe.margin[block.rows]
    if block.spend is None:
        scaled, spent = np.zeros(len(block.rows)), margin * recipe.fixed_spend[block.rows]
        frequencies, frequency_of = np.zeros(1), np.zeros(len(block.rows), dtype=np.intp)
    else:
        repeat = np.where(_column(frame, "frequency") > 0, _column(frame, "monetary_value"), 0.0)
        scaled, spent = margin, margin * repeat
        frequencies, frequency_of = np.unique(_column(frame, "frequency"), return_inverse=True)
    cost = recipe.costs.serve[block.rows] + recipe.costs.marketing[block.rows]
    return _CustomerCells(
        cells,
        cell_of.astype(np.intp),
        np.asarray(frequencies, np.float64),
        frequency_of.astype(np.intp),
        scaled,
        spent,
        np.asarray(cost, np.float64),
    )


def _models(blocks: tuple[_Block, ...]) -> list[Model | SpendModel]:
    """Every model of the valuation, once each."""
    found: dict[int, Model | SpendModel] = {}
    for block in blocks:
        for model in (block.purchases, block.spend):
            if model is not None:
                found.setdefault(id(model), model)
    return list(found.values())


def _clv_bounds(
    recipe: _Recipe,
    grid: _Grid,
    level: float,
    n_draws: int,
    rng: np.random.Generator | None,
    method: ClvIntervalMethod = "draws",
) -> tuple[FloatArray, FloatArray]:
    """The ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of each customer's CLV.

    Parameters
    ----------
    recipe, grid
        The valuation (``clv``'s inputs lined up with the customers) and its periods.
    level
        The interval's level, between 0 and 1.
    n_draws
        How many joint parameter draws (at least 2).
    rng
        The random generator; None means ``np.random.default_rng(0)``.
    method
        ``"draws"`` (joint log-normal parameter draws) or ``"bootstrap"`` (every model replaced
        by a bootstrap replicate per draw).
    """
    if isinstance(level, bool) or not 0.0 < level < 1.0:
        raise SchemaError(f"interval must be a level between 0 and 1 (such as 0.9), got {level!r}")
    if isinstance(n_draws, bool) or not isinstance(n_draws, int | np.integer) or n_draws < 2:
        raise SchemaError(f"n_draws must be a whole number of at least 2, got {n_draws!r}")
    generator = np.random.default_rng(0) if rng is None else rng
    models = _models(recipe.blocks)
    if method == "draws":
        drawn_models = joint_draws(models, n_draws, generator, fix=_FIX)
    elif method == "bootstrap":
        fix = _FIX + ", or interval_method='draws'"
        drawn_models = _bootstrap_draws(models, n_draws, generator, fix=fix)
    else:
        raise SchemaError(f"interval_method must be 'draws' or 'bootstrap', got {method!r}")
    rates, rate_codes = np.unique(recipe.annual_rate, return_inverse=True)
    blocks = [_customer_cells(b, recipe, rate_codes.astype(np.intp)) for b in recipe.blocks]
    drawn = _drawn_flows(recipe, grid, rates, blocks, drawn_models, n_draws)
    tails = np.array([(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    lower, upper = np.empty(len(recipe.data)), np.empty(len(recipe.data))
    for block, cells, flows in zip(recipe.blocks, blocks, drawn, strict=True):
        # customers alike in every coefficient (most of those without repeat purchases) share
        # their quantiles: each distinct customer is read off once
        alike, first = _distinct(cells)
        low, high = _quantiles(cells, flows, first, tails, has_spend=block.spend is not None)
        lower[block.rows], upper[block.rows] = low[alike], high[alike]
    return lower, upper


@dataclass(frozen=True, slots=True, eq=False)
class _DrawnFlows:
    """A block's per-draw values, one row per cell or frequency, one column per draw.

    The draws of a cell are contiguous, so that a customer's draws are gathered as one row.
    """

    bought: FloatArray  # discounted purchases, cells x draws
    booked: FloatArray  # discounted periods on the books, cells x draws
    scaled_term: FloatArray  # the spend term u, frequencies x draws
    spent_term: FloatArray  # the spend term v, frequencies x draws


def _drawn_flows(
    recipe: _Recipe,
    grid: _Grid,
    rates: FloatArray,
    blocks: list[_CustomerCells],
    drawn_models: Iterator[dict[int, Model | SpendModel]],
    n_draws: int,
) -> list[_DrawnFlows]:
    """Per block, every cell's discounted flows and every frequency's spend terms, per draw."""
    found = [
        _DrawnFlows(
            np.empty((len(b.cells.pattern), n_draws)),
            np.empty((len(b.cells.pattern), n_draws)),
            np.ones((len(b.frequencies), n_draws)),
            np.ones((len(b.frequencies), n_draws)),
        )
        for b in blocks
    ]

    def fill(d: int, drawn: dict[int, Model | SpendModel]) -> None:
        for block, cells, flows in zip(recipe.blocks, blocks, found, strict=True):
            purchases: Model = drawn[id(block.purchases)]  # type: ignore[assignment]
            cell_flows = _cell_flows(cells.cells, purchases, [grid], rates)
            flows.bought[:, d], flows.booked[:, d] = cell_flows.bought[0], cell_flows.on_books[0]
            if block.spend is not None:
                spend: SpendModel = drawn[id(block.spend)]  # type: ignore[assignment]
                flows.scaled_term[:, d], flows.spent_term[:, d] = spend.spend_terms(
                    cells.frequencies
                )

    # the draws are made here, in order (a seed gives the same draws); each draw's flows are
    # its own columns, computed in threads (numpy releases the GIL in the heavy loops). The
    # matrix products per draw are small: BLAS's own threads would only wait on each other
    with (
        threadpool_limits(limits=1, user_api="blas"),
        ThreadPoolExecutor(max_workers=_WORKERS) as pool,
    ):
        list(pool.map(fill, range(n_draws), drawn_models))
    return found


def _quantiles(
    cells: _CustomerCells,
    flows: _DrawnFlows,
    first: IntpArray,
    tails: FloatArray,
    *,
    has_spend: bool,
) -> tuple[FloatArray, FloatArray]:
    """The ``tails`` quantiles over the draws of the CLV of the customers ``first``.

    Customers go by chunks of :data:`_CHUNK_VALUES` values (draws x customers), each customer's
    draws one contiguous row.
    """
    n_draws = flows.bought.shape[1]
    low, high = np.empty(len(first)), np.empty(len(first))
    step = max(1, _CHUNK_VALUES // n_draws)
    for start in range(0, len(first), step):
        part = first[start : start + step]
        cell = cells.cell_of[part]
        values = flows.booked[cell]
        values *= -cells.cost[part, None]
        purchases = flows.bought[cell]
        if has_spend:
            frequency = cells.frequency_of[part]
            factor = flows.scaled_term[frequency]
            factor *= cells.scaled[part, None]
            factor += cells.spent[part, None] * flows.spent_term[frequency]
            purchases *= factor
        else:
            purchases *= cells.spent[part, None]
        values += purchases
        low[start : start + step], high[start : start + step] = np.quantile(values, tails, axis=1)
    return low, high


def _distinct(cells: _CustomerCells) -> tuple[IntpArray, IntpArray]:
    """Each customer's code among the distinct (cell, coefficients), and one customer of each.

    Codes number the distinct rows in the order of their first customer. Each column is
    factorised alone and merged into the codes so far, which stay below the number of
    customers (no multi-column hashing).
    """
    codes = np.zeros(len(cells.cell_of), dtype=np.int64)
    for column in (cells.cell_of, cells.scaled, cells.spent, cells.cost):
        column_codes, uniques = pd.factorize(column)
        codes, _ = pd.factorize(codes * len(uniques) + column_codes)
    _, first = np.unique(codes, return_index=True)
    return codes.astype(np.intp), first.astype(np.intp)
