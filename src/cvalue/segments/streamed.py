"""Cross-sell profitability of a customer base too large for memory, chunk by chunk.

The database adds up each customer's transactions and costs (:func:`profit_select`: the
statement of :func:`cvalue.sql_customer_profitability`, checked the same way); the caller fetches
its rows in chunks (:func:`cvalue.io.sqlkit.fetch_chunks`) and :meth:`ProfitSelect.customers`
turns each chunk into those customers' rows of the per-customer table. The accumulators hold
running sums and a bounded sample, never a row per customer of the whole base:

- :class:`CrossSellStream` gives what :func:`cvalue.cross_sell_profitability` gives. Shares,
  counts and drivers come from running sums; the segment tree is grown on a uniform random sample
  of the cross-buyers, and its leaves are judged on every cross-buyer in a second pass over the
  chunks (skipped when the sample holds every cross-buyer).
- :class:`SegmentsStream` judges named segments (``by=`` of :func:`unprofitable_segments`) in
  one pass.
- :func:`streamed_cross_sell_profitability` runs both passes of a :class:`ProfitSelect`.

Group means and squared deviations are merged chunk by chunk with the pairwise update of Chan,
Golub & LeVeque (1979), "Updating formulae and a pairwise algorithm for computing sample
variances", eq. (2.1); the results equal the in-memory ones up to the order of float additions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.sql.expression import SelectBase

from cvalue.errors import NotFittedError, SchemaError
from cvalue.io.schema import Columns
from cvalue.io.sqlkit import fetch_chunks
from cvalue.segments.cross_sell import (
    _ANALYSED,
    CrossSellProfitability,
    _drivers_frame,
    _hedges_g_of,
    _Moments,
)
from cvalue.segments.discovery import (
    Population,
    UnprofitableSegments,
    _check_options,
    _combinations,
    _Condition,
    _flagged,
    _mean_intervals,
    _Tree,
    _tree_leaves,
)
from cvalue.segments.profit import (
    _COST_SUMS,
    _TRANSACTION_SUMS,
    DRIVERS,
    Costs,
    OnUnmatched,
    _check_min_categories,
    _check_present,
    _customer_table,
    _outside_frame,
    _report_unmatched,
    _unmatched_frame,
    _Window,
)
from cvalue.segments.sql import _Options, _prepare, _sums_frame
from cvalue.units import DateLike

__all__ = [
    "CrossSellStream",
    "ProfitSelect",
    "SegmentsStream",
    "profit_select",
    "streamed_cross_sell_profitability",
]

FloatArray: TypeAlias = npt.NDArray[np.float64]
IntArray: TypeAlias = npt.NDArray[np.int64]
KeyArray: TypeAlias = npt.NDArray[np.uint64]

_SUMS = (*_TRANSACTION_SUMS, *_COST_SUMS)
_CHUNK_FIX = "Build each chunk with ProfitSelect.customers from the rows of ProfitSelect.statement"


@dataclass(frozen=True, slots=True)
class ProfitSelect:
    """The per-customer sums as a select to fetch in chunks, and what the sums leave out.

    Attributes
    ----------
    statement
        One row per customer: the customer id (named as in the transactions) and the sums
        (``n_purchases`` ... ``marketing_cost``). Fetch it in chunks with
        :func:`cvalue.io.sqlkit.fetch_chunks`, or join customer attributes to it.
    unmatched_costs, outside_window
        As in :class:`cvalue.segments.ProfitTable` (totals, counted by the database).
    costs, min_categories, customer_id
        What turns a chunk of sums into profit.
    """

    statement: sa.Select[Any]
    unmatched_costs: pd.DataFrame
    outside_window: pd.DataFrame
    costs: Costs
    min_categories: int
    customer_id: str

    def customers(self, rows: pd.DataFrame) -> pd.DataFrame:
        """The per-customer table of one fetched chunk, sorted by customer id.

        The rows of :func:`cvalue.sql_customer_profitability`'s table for these customers
        (net profit, ``is_cross_buyer``, ``is_unprofitable``, the drivers ...); the chunk's other
        columns (customer attributes joined to the statement) follow them.
        """
        _check_present([self.customer_id, *_SUMS], list(rows.columns), "the chunk", _CHUNK_FIX)
        ordered = rows.sort_values(self.customer_id, kind="stable", ignore_index=True)
        index, sums = _sums_frame(ordered, self.customer_id, self.customer_id)
        table = _customer_table(index, sums, self.costs, self.min_categories)
        known = {self.customer_id, *_SUMS, *table.columns}
        extra = [column for column in ordered.columns if column not in known]
        if not extra:
            return table
        return pd.concat([table, ordered[extra].set_axis(index)], axis=1)


def profit_select(
    connection: sa.Connection,
    costs: Costs,
    *,
    table: str | None = None,
    query: SelectBase | None = None,
    columns: Columns | None = None,
    category: str = "category",
    promotion: str | None = "is_promotion",
    min_categories: int = 2,
    start: DateLike | None = None,
    end: DateLike | None = None,
    schema: str | None = None,
    on_unmatched: OnUnmatched = "warn",
    keep: Callable[[sa.Select[Any]], sa.Select[Any]] | None = None,
) -> ProfitSelect:
    """The select of :func:`cvalue.sql_customer_profitability`'s sums, for chunked fetching.

    Every check of the SQL path runs here, in the database, and raises the same errors; the
    unmatched cost rows are reported (warned about or refused) here too. Open ``connection``
    with :func:`cvalue.io.connection_to`, which turns driver errors into ``DatabaseError``.
    The parameters are those of :func:`cvalue.sql_customer_profitability`, and ``keep``: a
    function that computes the sums' select once (into a temporary table of ``connection``,
    say) and returns the select that reads them. The unmatched cost rows are then counted
    against the kept sums, and the statement reads them: the database adds up every customer's
    transactions once, not once more inside the unmatched rows' ``NOT IN``.

    Returns
    -------
    ProfitSelect
        The statement, the totals it leaves out, and :meth:`ProfitSelect.customers`.

    Examples
    --------
    >>> from cvalue.io.sqlkit import fetch_chunks
    >>> engine = sa.create_engine("sqlite://")
    >>> log = pd.DataFrame({"customer_id": [1, 1, 2, 2, 3],
    ...                     "amount": [100.0, 50.0, 80.0, -80.0, 20.0],
    ...                     "category": ["books", "home", "books", "books", "home"],
    ...                     "is_return": [False, False, False, True, False],
    ...                     "is_promotion": [False, True, False, False, False]})
    >>> _ = log.to_sql("transactions", engine, index=False)
    >>> _ = pd.DataFrame({"customer_id": [2], "cost": [9.0]}).to_sql("contacts", engine,
    ...                                                              index=False)
    >>> costs = Costs(margin_rate=0.3, promotion_discount_rate=0.2, service_contacts="contacts")
    >>> with engine.connect() as connection:
    ...     profit = profit_select(connection, costs, table="transactions")
    ...     chunks = [profit.customers(rows)
    ...               for rows in fetch_chunks(connection, profit.statement, 2)]
    >>> [chunk.index.tolist() for chunk in chunks]
    [[1, 2], [3]]
    >>> chunks[0][["is_cross_buyer", "net_profit"]]
                 is_cross_buyer  net_profit
    customer_id
    1                      True        35.0
    2                     False        -9.0
    """
    _check_min_categories(min_categories)
    options = _Options(columns, category, promotion, _Window.of(start, end), schema)
    prepared = _prepare(connection, costs, table=table, query=query, options=options, keep=keep)
    _report_unmatched(prepared.unmatched, on_unmatched)
    customer_id = prepared.inputs.roles.customer_id
    if customer_id in _SUMS:
        raise SchemaError(
            f"the customer id column {customer_id!r} has the name of a sum; rename it in "
            "query=sa.select(...)"
        )
    sums = prepared.customers
    statement = sa.select(sums.c.customer.label(customer_id), *(sums.c[name] for name in _SUMS))
    return ProfitSelect(
        statement, prepared.unmatched, prepared.outside, costs, min_categories, customer_id
    )


# --- running sums -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _GroupSums:
    """Per group: its size, and the sums and squared deviations of each column of values."""

    size: IntArray  # groups
    total: FloatArray  # groups x columns
    squares: FloatArray  # groups x columns

    @classmethod
    def empty(cls, n_groups: int, n_columns: int) -> _GroupSums:
        zeros = np.zeros((n_groups, n_columns), dtype=np.float64)
        return cls(np.zeros(n_groups, dtype=np.int64), zeros, zeros.copy())

    @classmethod
    def of(cls, codes: IntArray, values: FloatArray, n_groups: int) -> _GroupSums:
        """The sums of the rows ``values`` (rows x columns) of each group code."""
        size = np.bincount(codes, minlength=n_groups).astype(np.int64)
        total = np.column_stack(
            [_bincount(codes, weights=column, minlength=n_groups) for column in values.T]
        ).reshape(n_groups, values.shape[1])
        with np.errstate(invalid="ignore", divide="ignore"):  # empty groups: NaN, never indexed
            mean = total / size[:, np.newaxis]
        deviations = (values - mean[codes]) ** 2
        squares = np.column_stack(
            [_bincount(codes, weights=column, minlength=n_groups) for column in deviations.T]
        ).reshape(n_groups, values.shape[1])
        return cls(size, total, squares)

    def merge(self, other: _GroupSums) -> _GroupSums:
        """Both parts together: Chan, Golub & LeVeque (1979), eq. (2.1)."""
        size = self.size + other.size
        first, second = self.size[:, np.newaxis], other.size[:, np.newaxis]
        with np.errstate(invalid="ignore", divide="ignore"):  # a part without rows: no term
            delta = other.total / second - self.total / first
            between = np.where(first * second > 0, delta**2 * first * second / size[:, None], 0.0)
        return _GroupSums(size, self.total + other.total, self.squares + other.squares + between)

    def moments(self, group: int, column: int) -> _Moments:
        """Size, mean and variance (``ddof=1``) of one group's column."""
        size = int(self.size[group])
        mean = self.total[group, column] / size if size else math.nan
        variance = self.squares[group, column] / (size - 1) if size > 1 else math.nan
        return _Moments(size, mean, variance)


def _bincount(codes: IntArray, *, weights: Any, minlength: int) -> FloatArray:
    """The sum of ``weights`` per code, as floats."""
    return np.asarray(np.bincount(codes, weights=weights, minlength=minlength), np.float64)


def _losses(values: FloatArray) -> FloatArray:
    return np.clip(-values, 0.0, None)


def _sample_keys(ids: pd.Index, seed: int) -> KeyArray:
    """A pseudo-random 64-bit key per customer id, the same in every chunk and every pass.

    The ids' hashes, offset by the seed and mixed by SplitMix64's finaliser (Steele, Lea & Flood
    2014, "Fast splittable pseudorandom number generators", OOPSLA): the customers with the
    smallest keys are a uniform random sample, whatever the chunks and the order of the rows.
    """
    keys = pd.util.hash_array(ids.to_numpy()) + np.uint64((seed * _GOLDEN_GAMMA) % 2**64)
    keys = (keys ^ (keys >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    keys = (keys ^ (keys >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return keys ^ (keys >> np.uint64(31))


_GOLDEN_GAMMA = 0x9E3779B97F4A7C15  # SplitMix64's increment: seeds land far apart


def _check_chunk(chunk: pd.DataFrame, needed: Sequence[str]) -> None:
    if not isinstance(chunk, pd.DataFrame):
        raise SchemaError(
            f"a chunk must be a per-customer DataFrame, got {type(chunk).__name__}. {_CHUNK_FIX}"
        )
    _check_present(list(needed), list(chunk.columns), "the chunk", _CHUNK_FIX)


def _leaf_codes(paths: Sequence[tuple[_Condition, ...]], features: pd.DataFrame) -> IntArray:
    """The leaf of each row: the one whose every condition the row meets."""
    codes = np.zeros(len(features), dtype=np.int64)
    for number, path in enumerate(paths):
        is_inside = np.ones(len(features), dtype=np.bool_)
        for condition in path:
            is_above = features[condition.feature].to_numpy(dtype=np.float64) > condition.threshold
            is_inside &= is_above if condition.is_above else ~is_above
        codes[is_inside] = number
    return codes


def _check_count(name: str, value: int, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise SchemaError(f"{name} must be an integer >= {minimum}, got {value!r}")


# --- cross-sell profitability ---------------------------------------------------------------------


class CrossSellStream:
    """:func:`cvalue.cross_sell_profitability` accumulated chunk by chunk, in bounded memory.

    Pass one: :meth:`add` each chunk of the per-customer table (:meth:`ProfitSelect.customers`).
    The shares, counts and drivers are running sums, exact up to the order of float additions.
    The segment tree needs rows: it is grown (:meth:`rules`) on a uniform random sample of at most
    ``sample_size`` cross-buyers, chosen by a seeded hash of their ids, so that the same base
    gives the same sample whatever its chunks and the order of its rows. With at most
    ``sample_size`` cross-buyers the sample is all of them and the segments are those of
    :func:`cvalue.unprofitable_segments`.

    Pass two, needed only when :attr:`needs_judging` (the sample is smaller than the base):
    :meth:`judge` each chunk again, so that every leaf's size, mean, interval and losses are
    those of all cross-buyers its rule selects, not of the sample. Then :meth:`result`.

    Parameters
    ----------
    level, max_depth, min_size
        As in :func:`cvalue.cross_sell_profitability`.
    sample_size
        The most cross-buyers held for growing the tree (and returned in ``customers_``).
    seed
        Chooses the sample; the same seed gives the same sample.

    Notes
    -----
    Memory holds one chunk and the sample (its rows of the per-customer table: about 32 MB for
    200,000 cross-buyers). The result's ``customers_`` and ``segments_.members_`` hold the
    sample, not every customer (``has_all_customers_``, ``segments_.has_all_members_``); the
    exact share of the cross-buyers in flagged segments is ``segments_.flagged_share_``. Pass
    two must see the same customers with the same sums: a database that adds floats in another
    order on the second run can move a customer whose driver equals a threshold to the
    neighbouring leaf (the count of cross-buyers and which ones are checked, not their values).

    Examples
    --------
    >>> from cvalue.datasets import make_crm
    >>> from cvalue.segments import customer_profitability
    >>> crm = make_crm(2_000, seed=4)
    >>> rates = crm.truth.costs
    >>> costs = Costs(margin_rate=rates.margin_rate,
    ...               return_handling_cost=rates.return_handling_cost,
    ...               promotion_discount_rate=rates.promotion_discount_rate,
    ...               service_contacts=crm.service_contacts)
    >>> table = customer_profitability(crm.transactions, costs).customers
    >>> stream = CrossSellStream(sample_size=500, seed=1)
    >>> for start in range(0, len(table), 700):
    ...     stream.add(table.iloc[start:start + 700])
    >>> rules = stream.rules()
    >>> stream.needs_judging
    True
    >>> for start in range(0, len(table), 700):
    ...     leaves = stream.judge(table.iloc[start:start + 700])
    >>> result = stream.result()
    >>> len(result.customers_), result.has_all_customers_, result.segments_.has_all_members_
    (500, False, False)
    >>> int(result.segments_.segments_["customers"].sum()) == result.n_cross_buyers_
    True
    """

    def __init__(
        self,
        *,
        level: float = 0.95,
        max_depth: int = 2,
        min_size: int = 30,
        sample_size: int = 200_000,
        seed: int = 0,
    ) -> None:
        _check_options(max_depth, min_size, level)
        _check_count("sample_size", sample_size, 1)
        _check_count("seed", seed, 0)
        self.level, self.max_depth, self.min_size = float(level), max_depth, min_size
        self.sample_size, self.seed = int(sample_size), int(seed)
        self._n_customers = 0
        self._n_losing = 0  # cross-buyers with net profit below zero
        self._total_loss = 0.0
        self._cross_loss = 0.0
        self._drivers = _GroupSums.empty(2, len(DRIVERS))  # unprofitable, profitable
        self._sample: pd.DataFrame | None = None
        self._keys: KeyArray = np.empty(0, dtype=np.uint64)
        self._fingerprints = [0, 0]  # sums of the cross-buyers' keys in pass one and two
        self._tree: _Leaves | None = None

    @property
    def n_cross_buyers(self) -> int:
        """The cross-buyers added so far."""
        return int(self._drivers.size.sum())

    @property
    def needs_judging(self) -> bool:
        """Whether the sample misses cross-buyers, so that pass two (:meth:`judge`) is needed."""
        return self.n_cross_buyers > (0 if self._sample is None else len(self._sample))

    def add(self, chunk: pd.DataFrame) -> None:
        """Pass one: add a chunk of the per-customer table (customers not added before)."""
        if self._tree is not None:
            raise SchemaError(
                "pass one is over (rules() grew the tree); start a new CrossSellStream to "
                "analyse other customers"
            )
        _check_chunk(chunk, [*_ANALYSED, *DRIVERS])
        profit = chunk["net_profit"].to_numpy(dtype=np.float64)
        is_cross_buyer = chunk["is_cross_buyer"].to_numpy(dtype=np.bool_)
        losses = _losses(profit)
        self._n_customers += len(chunk)
        self._n_losing += int((is_cross_buyer & (profit < 0)).sum())
        self._total_loss += float(losses.sum())
        self._cross_loss += float(losses[is_cross_buyer & (profit < 0)].sum())
        cross_buyers = chunk[is_cross_buyer]
        is_profitable = ~cross_buyers["is_unprofitable"].to_numpy(dtype=np.bool_)
        values = cross_buyers[list(DRIVERS)].to_numpy(dtype=np.float64)
        self._drivers = self._drivers.merge(
            _GroupSums.of(is_profitable.astype(np.int64), values, 2)
        )
        self._keep(cross_buyers)

    def _keep(self, cross_buyers: pd.DataFrame) -> None:
        """Keep the cross-buyers with the smallest keys among the sample and the new ones."""
        keys = _sample_keys(cross_buyers.index, self.seed)
        self._fingerprints[0] = _fingerprint(self._fingerprints[0], keys)
        if len(self._keys) == self.sample_size:  # full: only smaller keys can enter
            is_candidate = keys < self._keys.max()
            cross_buyers, keys = cross_buyers[is_candidate], keys[is_candidate]
        if self._sample is None or self._sample.empty:
            sample = cross_buyers
        elif cross_buyers.empty:
            return
        else:
            sample = pd.concat([self._sample, cross_buyers])
            keys = np.concatenate([self._keys, keys])
        if len(keys) > self.sample_size:
            kept = np.sort(np.argpartition(keys, self.sample_size - 1)[: self.sample_size])
            sample, keys = sample.iloc[kept], keys[kept]
        self._sample, self._keys = sample, keys

    def rules(self) -> dict[str, str]:
        """End pass one: grow the tree on the sample; its rules by segment label."""
        tree, _ = self._grown()
        return dict(tree.rules)

    def _grown(self) -> tuple[_Leaves, pd.DataFrame]:
        """The tree, grown on the first call, and the sample (sorted by customer id)."""
        if self._tree is None or self._sample is None:
            if self._sample is None:
                columns = {name: np.empty(0) for name in (*_ANALYSED, *DRIVERS)}
                self._sample = pd.DataFrame(columns)
            self._sample = self._sample.sort_index(kind="stable")
            features = self._sample[list(DRIVERS)].to_numpy(dtype=np.float64)
            profit = self._sample["net_profit"].to_numpy(dtype=np.float64)
            tree = _Tree(features, (profit < 0).astype(np.float64), DRIVERS, self.max_depth,
                         self.min_size)  # fmt: skip
            paths, leaf_of, rules = _tree_leaves(tree, "all cross-buyers")
            self._tree = _Leaves(paths, rules, leaf_of, _GroupSums.empty(len(rules), 1),
                                 np.zeros(len(rules), dtype=np.float64))  # fmt: skip
        return self._tree, self._sample

    def judge(self, chunk: pd.DataFrame) -> pd.Series:
        """Pass two: add a chunk's cross-buyers to the sums of their leaves; their segments.

        Every chunk of pass one must be judged once, in any order and chunking. When the sample
        holds every cross-buyer (``needs_judging`` is false) :meth:`result` judges the leaves on
        the sample and ignores these sums; the labels are still each customer's segment.

        Returns
        -------
        pandas.Series
            The segment label (``leaf 1`` ...) of each cross-buyer of the chunk, by customer id.
        """
        if self._tree is None:
            raise NotFittedError("judge() comes after pass one: add every chunk, then rules()")
        _check_chunk(chunk, [*_ANALYSED, *DRIVERS])
        cross_buyers = chunk[chunk["is_cross_buyer"].to_numpy(dtype=np.bool_)]
        codes = _leaf_codes(self._tree.paths, cross_buyers)
        profit = cross_buyers["net_profit"].to_numpy(dtype=np.float64)
        n_leaves = len(self._tree.rules)
        self._tree.judged = self._tree.judged.merge(
            _GroupSums.of(codes, profit[:, np.newaxis], n_leaves)
        )
        self._tree.losses += _bincount(codes, weights=_losses(profit), minlength=n_leaves)
        keys = _sample_keys(cross_buyers.index, self.seed)
        self._fingerprints[1] = _fingerprint(self._fingerprints[1], keys)
        labels = np.array(list(self._tree.rules), dtype=object)
        return pd.Series(labels[codes], index=cross_buyers.index, name="segment", dtype="str")

    def result(self, source: ProfitSelect | None = None) -> CrossSellProfitability:
        """The analysis of every customer added.

        ``customers_`` holds the sample of cross-buyers (sorted by id; every customer only when
        all of them are cross-buyers and sampled: see ``has_all_customers_``), and
        ``segments_.members_`` their segments. ``unmatched_costs_`` and ``outside_window_`` are
        those of ``source``, the :class:`ProfitSelect` the chunks came from (empty without it).

        Raises
        ------
        NotFittedError
            Pass two is needed and did not judge exactly the cross-buyers of pass one.
        """
        tree, sample = self._grown()
        n_cross_buyers = self.n_cross_buyers
        return CrossSellProfitability(
            customers_=sample,
            unprofitable_share_=self._n_losing / n_cross_buyers if n_cross_buyers else math.nan,
            loss_share_=(self._cross_loss / self._total_loss if self._total_loss > 0 else math.nan),
            drivers_=self._drivers_table(),
            segments_=self._segments(tree, sample),
            unmatched_costs_=_unmatched_frame({}) if source is None else source.unmatched_costs,
            outside_window_=_outside_frame({}) if source is None else source.outside_window,
            n_cross_buyers_=n_cross_buyers,
            has_all_customers_=len(sample) == self._n_customers,
        )

    def _drivers_table(self) -> pd.DataFrame:
        rows = []
        for column in range(len(DRIVERS)):
            loss, gain = self._drivers.moments(0, column), self._drivers.moments(1, column)
            effect, lower, upper = _hedges_g_of(loss, gain, self.level)
            rows.append((loss.mean, gain.mean, loss.mean - gain.mean, effect, lower, upper))
        return _drivers_frame(rows, DRIVERS)

    def _segments(self, tree: _Leaves, sample: pd.DataFrame) -> UnprofitableSegments:
        """The leaves judged on the sample when it is everyone, else on the sums of pass two."""
        n_leaves = len(tree.rules)
        if self.needs_judging:
            self._check_judged()
            sums = tree.judged
            table = _mean_intervals(sums.size, sums.total[:, 0], sums.squares[:, 0], self.level)
            table["total_loss"] = tree.losses
        else:
            profit = sample["net_profit"].to_numpy(dtype=np.float64)[:, np.newaxis]
            sums = _GroupSums.of(tree.leaf_of, profit, n_leaves)
            table = _mean_intervals(sums.size, sums.total[:, 0], sums.squares[:, 0], self.level)
            table["total_loss"] = np.bincount(
                tree.leaf_of, weights=_losses(profit[:, 0]), minlength=n_leaves
            )
        flagged = _flagged(table, tree.rules, self.n_cross_buyers, self._total_loss, self.min_size)
        labels = np.array(list(tree.rules), dtype=object)
        members = pd.Series(labels[tree.leaf_of], index=sample.index, name="segment", dtype="str")
        return UnprofitableSegments(
            flagged, members, "net_profit", self._total_loss, not self.needs_judging
        )

    def _check_judged(self) -> None:
        judged = self._tree.judged if self._tree is not None else None
        n_judged = 0 if judged is None else int(judged.size.sum())
        if n_judged != self.n_cross_buyers or self._fingerprints[0] != self._fingerprints[1]:
            raise NotFittedError(
                f"pass two judged {n_judged:,} cross-buyers, pass one added "
                f"{self.n_cross_buyers:,} (or other ones): the sample of {len(self._keys):,} does "
                "not hold every cross-buyer, so judge() every chunk of pass one again before "
                "result()"
            )


@dataclass(slots=True)
class _Leaves:
    """The tree grown on the sample, and the running sums of pass two per leaf."""

    paths: list[tuple[_Condition, ...]]
    rules: dict[str, str]
    leaf_of: IntArray  # the leaf of each customer of the sample
    judged: _GroupSums
    losses: FloatArray


def _fingerprint(running: int, keys: KeyArray) -> int:
    """The running sum (mod 2**64) of the customers' keys: which customers were seen."""
    return (running + int(keys.sum(dtype=np.uint64))) % 2**64


def streamed_cross_sell_profitability(
    connection: sa.Connection,
    source: ProfitSelect,
    *,
    chunk_customers: int = 500_000,
    level: float = 0.95,
    max_depth: int = 2,
    min_size: int = 30,
    sample_size: int = 200_000,
    seed: int = 0,
) -> CrossSellProfitability:
    """:func:`cvalue.cross_sell_profitability` of a :class:`ProfitSelect`, chunk by chunk.

    Fetches ``chunk_customers`` customers at a time and feeds a :class:`CrossSellStream` (the
    options are its own); runs the statement a second time when the sample of ``sample_size``
    cross-buyers does not hold them all. Memory holds one chunk and the sample.
    """
    _check_count("chunk_customers", chunk_customers, 1)
    stream = CrossSellStream(level=level, max_depth=max_depth, min_size=min_size,
                             sample_size=sample_size, seed=seed)  # fmt: skip
    for rows in fetch_chunks(connection, source.statement, int(chunk_customers)):
        stream.add(source.customers(rows))
    stream.rules()
    if stream.needs_judging:
        for rows in fetch_chunks(connection, source.statement, int(chunk_customers)):
            stream.judge(source.customers(rows))
    return stream.result(source)


# --- named segments -------------------------------------------------------------------------------


class SegmentsStream:
    """Named segments judged chunk by chunk: :func:`cvalue.unprofitable_segments` with ``by=``.

    Each chunk is a piece of the per-customer table with the key columns (customer attributes
    joined to :attr:`ProfitSelect.statement`, such as segment or channel). Per combination of
    the keys' values the stream keeps the size, sum, squared deviations and losses, so that
    :meth:`result` is the in-memory result up to the order of float additions; its
    ``members_`` is empty (``has_all_members_`` is false): write each chunk's keys instead.

    Parameters
    ----------
    by
        The key columns; several are crossed.
    population, min_size, level
        As in :func:`cvalue.unprofitable_segments` (here the whole base by default).

    Examples
    --------
    >>> table = pd.DataFrame({"net_profit": [-5.0, -7.0, -6.0, 40.0, 35.0, 50.0],
    ...                       "channel": ["app", "app", "app", "web", "web", "web"]},
    ...                      index=pd.Index([1, 2, 3, 4, 5, 6], name="customer_id"))
    >>> stream = SegmentsStream("channel", min_size=3)
    >>> stream.add(table.iloc[:4])
    >>> stream.add(table.iloc[4:])
    >>> stream.result().segments_[["customers", "mean_value", "total_loss", "is_flagged"]]
             customers  mean_value  total_loss  is_flagged
    segment
    app              3   -6.000000        18.0        True
    web              3   41.666667         0.0       False
    """

    def __init__(
        self,
        by: str | Sequence[str],
        *,
        population: Population = "all",
        min_size: int = 30,
        level: float = 0.95,
    ) -> None:
        keys = [by] if isinstance(by, str) else list(by)
        if not keys or not all(isinstance(key, str) for key in keys):
            raise SchemaError(f"by= takes one or more column names, got {by!r}")
        if population not in ("cross_buyers", "all"):
            raise SchemaError(f"population must be 'cross_buyers' or 'all', got {population!r}")
        _check_options(0, min_size, level)
        self.by, self.population = keys, population
        self.min_size, self.level = min_size, float(level)
        self._n_population = 0
        self._total_loss = 0.0
        self._groups = pd.DataFrame({key: [] for key in (*keys, *_GROUP_SUMS)})

    def add(self, chunk: pd.DataFrame) -> None:
        """Add a chunk of the per-customer table with the key columns."""
        is_cross_buyers = self.population == "cross_buyers"
        needed = [*self.by, "net_profit", *(["is_cross_buyer"] if is_cross_buyers else [])]
        _check_chunk(chunk, needed)
        profit = chunk["net_profit"].to_numpy(dtype=np.float64)
        self._total_loss += float(_losses(profit).sum())
        if is_cross_buyers:
            is_member = chunk["is_cross_buyer"].to_numpy(dtype=np.bool_)
            chunk, profit = chunk[is_member], profit[is_member]
        self._n_population += len(chunk)
        if chunk.empty:
            return
        codes, groups = _groups_of(chunk[self.by].reset_index(drop=True))
        sums = _GroupSums.of(codes, profit[:, np.newaxis], len(groups))
        groups["size"], groups["total"] = sums.size, sums.total[:, 0]
        groups["squares"] = sums.squares[:, 0]
        groups["loss"] = _bincount(codes, weights=_losses(profit), minlength=len(groups))
        self._groups = _merge_groups(self._groups, groups) if len(self._groups) else groups

    def result(self) -> UnprofitableSegments:
        """The segments of every customer added."""
        codes, _, rules = _combinations(self._groups[self.by])
        n_groups = len(rules)

        def total(column: str) -> FloatArray:
            return _bincount(codes, weights=self._groups[column], minlength=n_groups)

        size = total("size").astype(np.int64)
        table = _mean_intervals(size, total("total"), total("squares"), self.level)
        table["total_loss"] = total("loss")
        flagged = _flagged(table, rules, self._n_population, self._total_loss, self.min_size)
        members = pd.Series([], name="segment", dtype="str")
        return UnprofitableSegments(flagged, members, "net_profit", self._total_loss, False)


_GROUP_SUMS = ("size", "total", "squares", "loss")


def _groups_of(keys: pd.DataFrame) -> tuple[IntArray, pd.DataFrame]:
    """Each row's group code and the groups' key values (sorted, missing values kept)."""
    grouped = keys.groupby(list(keys.columns), sort=True, dropna=False, observed=True)
    codes = np.asarray(grouped.ngroup(), dtype=np.int64)
    return codes, grouped.size().index.to_frame(index=False)


def _merge_groups(first: pd.DataFrame, second: pd.DataFrame) -> pd.DataFrame:
    """Two tables of group sums together: Chan, Golub & LeVeque (1979), eq. (2.1), per part."""
    keys = [column for column in first.columns if column not in _GROUP_SUMS]
    parts = pd.concat([first, second], ignore_index=True)
    codes, groups = _groups_of(parts[keys])
    size = parts["size"].to_numpy(dtype=np.float64)
    part_total = parts["total"].to_numpy(dtype=np.float64)
    total = _bincount(codes, weights=part_total, minlength=len(groups))
    counts = _bincount(codes, weights=size, minlength=len(groups))
    between = size * (part_total / size - (total / counts)[codes]) ** 2
    groups["size"] = counts.astype(np.int64)
    groups["total"] = total
    squares = parts["squares"].to_numpy(dtype=np.float64) + between
    groups["squares"] = _bincount(codes, weights=squares, minlength=len(groups))
    groups["loss"] = _bincount(codes, weights=parts["loss"], minlength=len(groups))
    return groups
