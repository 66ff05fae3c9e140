"""Unprofitable segments: judged when they are named, found by a shallow rule tree otherwise.

A segment is flagged when it has at least ``min_size`` customers, its mean net profit (or CLV)
is below zero and the t interval of that mean lies entirely below zero. Without named segments,
a CART tree (Breiman et al. 1984) grown on the drivers to predict which customers lose money
finds them; each leaf is a segment whose rule reads as
``return_rate > 0.25 and promotion_share > 0.4``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats

from cvalue.errors import DataQualityError, SchemaError, plain
from cvalue.segments.profit import DRIVERS, ProfitTable, _check_present
from cvalue.segments.tiers import _number, _numeric

__all__ = ["UnprofitableSegments", "unprofitable_segments"]

FloatArray: TypeAlias = npt.NDArray[np.float64]
IntArray: TypeAlias = npt.NDArray[np.int64]
Population = Literal["cross_buyers", "all"]
SegmentKey: TypeAlias = str | pd.Series


@dataclass(frozen=True, slots=True)
class UnprofitableSegments:
    """Segments judged by their mean net profit (or CLV), with the flagged ones marked.

    Attributes
    ----------
    segments_
        One row per segment, worst mean first, indexed by ``segment`` (the value of a named
        segment, or ``leaf 1``, ``leaf 2``, ... of the tree): ``rule`` (the condition that
        defines it), ``customers``, ``share_of_population``, ``mean_value``, ``ci_lower``,
        ``ci_upper`` (t interval of the mean), ``total_value``, ``total_loss`` (the summed
        losses of its loss-making customers), ``loss_share`` (of all customers' losses),
        ``is_flagged`` and ``reason`` (``flagged``, ``smaller than min_size``, ``mean not below
        zero`` or ``interval reaches zero``).
    members_
        The segment of every customer of the population, indexed by customer id.
    value_name_
        What was judged: ``net_profit`` or the name of the value series.
    total_loss_
        The summed losses of all loss-making customers of the table (the population or not).
    has_all_members_
        Whether ``members_`` holds every customer of the population. Segments judged chunk by
        chunk (:mod:`cvalue.segments.streamed`) hold a random sample of it, or none; their
        ``segments_`` and ``flagged_share_`` are still those of the whole population.
    """

    segments_: pd.DataFrame
    members_: pd.Series
    value_name_: str
    total_loss_: float
    has_all_members_: bool = True

    @property
    def flagged_(self) -> pd.DataFrame:
        """The flagged segments."""
        return self.segments_[self.segments_["is_flagged"].to_numpy(dtype=np.bool_)]

    @property
    def flagged_ids_(self) -> pd.Index:
        """The customer ids in flagged segments (sorted)."""
        is_flagged = self.members_.isin(self.flagged_.index).to_numpy(dtype=np.bool_)
        return self.members_.index[is_flagged].sort_values()

    @property
    def flagged_share_(self) -> float:
        """The share of the population in flagged segments."""
        if not self.has_all_members_:
            shares = self.segments_["share_of_population"].to_numpy(dtype=np.float64)
            return float(shares[self.segments_["is_flagged"].to_numpy(dtype=np.bool_)].sum())
        return len(self.flagged_ids_) / len(self.members_) if len(self.members_) else math.nan

    @property
    def flagged_loss_share_(self) -> float:
        """The share of all customers' losses carried by the flagged segments."""
        loss = float(self.flagged_["total_loss"].sum())
        return loss / self.total_loss_ if self.total_loss_ > 0 else math.nan


@dataclass(frozen=True, slots=True)
class _Judging:
    """What segments are judged by: options and every customer's value."""

    judged: pd.Series  # the value judged, for every customer of the table
    population: pd.Index  # the customers that are segmented
    everyone: str  # how a rule names the whole population
    min_size: int
    level: float

    @property
    def total_loss(self) -> float:
        return float(np.clip(-self.judged.to_numpy(dtype=np.float64), 0.0, None).sum())


def _judge(judging: _Judging, members: pd.Series, rules: Mapping[str, str]) -> UnprofitableSegments:
    """Statistics and flags of the segments ``members`` assigns the population to."""
    labels = list(rules)
    codes = pd.Categorical(members, categories=labels).codes.astype(np.int64)
    values = judging.judged.reindex(members.index).to_numpy(dtype=np.float64)
    table = _segment_statistics(codes, values, len(labels), judging.level)
    table["total_loss"] = np.bincount(
        codes, weights=np.clip(-values, 0.0, None), minlength=len(labels)
    )
    total_loss = judging.total_loss
    flagged = _flagged(table, rules, len(members), total_loss, judging.min_size)
    return UnprofitableSegments(flagged, members, str(judging.judged.name), total_loss)


def _flagged(
    table: pd.DataFrame, rules: Mapping[str, str], n_population: int, total_loss: float,
    min_size: int,
) -> pd.DataFrame:  # fmt: skip
    """The segments' table, worst mean first, with shares and flags, from their statistics.

    ``table`` has one row per rule, in order: ``customers``, ``mean_value``, ``ci_lower``,
    ``ci_upper``, ``total_value`` and ``total_loss``.
    """
    labels = list(rules)
    with np.errstate(invalid="ignore", divide="ignore"):  # no losses at all: shares are NaN
        table["loss_share"] = table["total_loss"] / total_loss if total_loss > 0 else np.nan
    table["share_of_population"] = table["customers"] / max(n_population, 1)
    reason = np.select(
        [
            table["customers"].to_numpy() < min_size,
            ~(table["mean_value"].to_numpy() < 0),
            ~(table["ci_upper"].to_numpy() < 0),
        ],
        ["smaller than min_size", "mean not below zero", "interval reaches zero"],
        default="flagged",
    )
    table["is_flagged"] = reason == "flagged"
    table["reason"] = pd.array(reason, dtype="str")
    table.insert(0, "rule", [rules[label] for label in labels])
    table.index = pd.Index(labels, name="segment", dtype="str")
    columns = ["rule", "customers", "share_of_population", "mean_value", "ci_lower", "ci_upper",
               "total_value", "total_loss", "loss_share", "is_flagged", "reason"]  # fmt: skip
    return table.loc[:, columns].sort_values("mean_value", kind="stable")


def _segment_statistics(
    codes: IntArray, values: FloatArray, n_segments: int, level: float
) -> pd.DataFrame:
    """Size, mean, t interval and total of ``values`` per segment code."""
    size = np.bincount(codes, minlength=n_segments).astype(np.int64)
    total = np.asarray(np.bincount(codes, weights=values, minlength=n_segments), np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):  # empty segments: NaN
        mean = total / size
    deviations = (values - mean[codes]) ** 2
    squares = np.asarray(np.bincount(codes, weights=deviations, minlength=n_segments), np.float64)
    return _mean_intervals(size, total, squares, level)


def _mean_intervals(
    size: IntArray, total: FloatArray, squares: FloatArray, level: float
) -> pd.DataFrame:
    """Size, mean, t interval and total from each segment's size, sum and squared deviations."""
    with np.errstate(invalid="ignore", divide="ignore"):  # empty or one-customer segments: NaN
        mean = total / size
        std_error = np.sqrt(squares / (size - 1) / size)
        half_width = stats.t.ppf(0.5 + level / 2, np.maximum(size - 1, 1)) * std_error
    half_width = np.where(size > 1, half_width, np.nan)
    return pd.DataFrame(
        {
            "customers": size,
            "mean_value": mean,
            "ci_lower": mean - half_width,
            "ci_upper": mean + half_width,
            "total_value": total,
        }
    )


def _check_options(max_depth: int, min_size: int, level: float) -> None:
    """Refuse a tree depth, minimum size or confidence level out of range; raise once."""
    problems = []
    if (
        isinstance(max_depth, bool)
        or not isinstance(max_depth, (int, np.integer))
        or not 0 <= max_depth <= _MAX_DEPTH
    ):
        problems.append(f"max_depth must be an integer in [0, {_MAX_DEPTH}], got {max_depth!r}")
    if isinstance(min_size, bool) or not isinstance(min_size, (int, np.integer)) or min_size < 2:
        problems.append(f"min_size must be an integer >= 2, got {min_size!r}")
    if not (isinstance(level, (float, int)) and 0 < level < 1):
        problems.append(f"level must be a number in (0, 1), got {level!r}")
    if problems:
        raise SchemaError("; ".join(problems))


_MAX_DEPTH = 6  # deeper trees no longer read as rules
_MIN_GAIN = 1e-9  # error reduction per row below which a split only fits rounding noise


def _customer_frame(customers: pd.DataFrame | ProfitTable) -> pd.DataFrame:
    if isinstance(customers, ProfitTable):
        return customers.customers
    if isinstance(customers, pd.DataFrame):
        return customers
    raise SchemaError(
        f"customers must be the per-customer table (a DataFrame or a ProfitTable), got "
        f"{type(customers).__name__}; build it with cvalue.customer_profitability"
    )


def _judged_values(customers: pd.DataFrame, value: pd.Series | None) -> pd.Series:
    """Net profit, or the given value of every customer of the table."""
    if value is None:
        _check_present(["net_profit"], list(customers.columns), "the customer table", _TABLE_FIX)
        return customers["net_profit"].astype(np.float64)
    if not isinstance(value, pd.Series):
        raise SchemaError(
            f"value must be a pandas Series indexed by customer id, got {type(value).__name__}; "
            "pick the column of a value table, e.g. value=clv['clv']"
        )
    name = str(value.name) if value.name is not None else "value"
    aligned = _numeric(value, name).reindex(customers.index)
    n_missing = int(aligned.isna().sum())
    if n_missing:
        example = customers.index[aligned.isna().to_numpy()][0]
        raise DataQualityError(
            f"value {name!r} is missing for {n_missing:,} of {len(customers):,} customers of the "
            f"table (e.g. customer {plain(example)!r}); give a value to every customer, or "
            "filter the table"
        )
    return aligned.rename(name)


_TABLE_FIX = (
    "Build the table with cvalue.customer_profitability or cvalue.sql_customer_profitability"
)


def _judging(
    customers: pd.DataFrame,
    value: pd.Series | None,
    population: Population,
    min_size: int,
    level: float,
) -> _Judging:
    values = _judged_values(customers, value)
    if population == "all":
        return _Judging(values, customers.index, "all customers", min_size, float(level))
    if population != "cross_buyers":
        raise SchemaError(f"population must be 'cross_buyers' or 'all', got {population!r}")
    _check_present(["is_cross_buyer"], list(customers.columns), "the customer table", _TABLE_FIX)
    members = customers.index[customers["is_cross_buyer"].to_numpy(dtype=np.bool_)]
    return _Judging(values, members, "all cross-buyers", min_size, float(level))


@dataclass(frozen=True, slots=True)
class _Condition:
    """One test on a path of the tree: ``feature > threshold`` or ``feature <= threshold``."""

    feature: str
    is_above: bool
    threshold: float


@dataclass(frozen=True, slots=True)
class _Tree:
    """The data and settings a tree grows on."""

    features: FloatArray  # rows x drivers
    target: FloatArray  # 1.0 for a loss-making customer, else 0.0
    names: tuple[str, ...]
    max_depth: int
    min_leaf: int


def _readable_threshold(low: float, high: float) -> float:
    """The shortest decimal ``t`` with ``low <= t < high``: rules read ``> 0.25``, not ``> 0.2513``.

    Every ``t`` in ``[low, high)`` splits the rows the same way, as no value lies between.
    """
    for digits in range(-6, 18):
        candidate = round(low, digits)  # correctly rounded: round(0.25, 2) is 0.25 itself
        if candidate < low:
            candidate = round(candidate + 10.0**-digits, digits)
        if low <= candidate < high:
            return candidate
    return low


def _best_split(
    features: FloatArray, target: FloatArray, min_leaf: int
) -> tuple[int, float] | None:
    """The split that most reduces the squared error of ``target``, as CART grows a tree.

    Breiman, Friedman, Olshen & Stone (1984), *Classification and Regression Trees*, ch. 8; for a
    0/1 target this is the Gini criterion.

    All features at once: one sort per column, and cumulative sums give every candidate split's
    error reduction ``S_l^2 / n_l + S_r^2 / n_r - S^2 / n``. A split falls between two distinct
    values and leaves at least ``min_leaf`` rows on each side.
    """
    n_rows = len(target)
    if n_rows < 2 * min_leaf:
        return None
    order = np.argsort(features, axis=0, kind="stable")
    ordered = np.take_along_axis(features, order, axis=0)
    left_sum = np.cumsum(target[order], axis=0)[:-1]
    left_size = np.arange(1, n_rows, dtype=np.float64)[:, np.newaxis]
    right_size = n_rows - left_size
    total = float(target.sum())
    gain = left_sum**2 / left_size + (total - left_sum) ** 2 / right_size - total**2 / n_rows
    is_valid = (ordered[1:] > ordered[:-1]) & (left_size >= min_leaf) & (right_size >= min_leaf)
    gain = np.where(is_valid, gain, -np.inf)
    row, column = np.unravel_index(int(np.argmax(gain)), gain.shape)
    if not gain[row, column] > _MIN_GAIN * n_rows:
        return None
    threshold = _readable_threshold(float(ordered[row, column]), float(ordered[row + 1, column]))
    return int(column), threshold


def _grow(
    tree: _Tree, rows: IntArray, path: tuple[_Condition, ...]
) -> list[tuple[tuple[_Condition, ...], IntArray]]:
    """The leaves under a node, left (``<=``) before right (``>``): (path, rows) each."""
    split = None
    if len(path) < tree.max_depth:
        split = _best_split(tree.features[rows], tree.target[rows], tree.min_leaf)
    if split is None:
        return [(path, rows)]
    column, threshold = split
    is_above = tree.features[rows, column] > threshold
    name = tree.names[column]
    left = _grow(tree, rows[~is_above], (*path, _Condition(name, False, threshold)))
    right = _grow(tree, rows[is_above], (*path, _Condition(name, True, threshold)))
    return left + right


def _rule_text(path: tuple[_Condition, ...], everyone: str) -> str:
    """A path as a readable rule: ``return_rate > 0.25 and 0.1 < promotion_share <= 0.6``."""
    bounds: dict[str, tuple[float, float]] = {}
    for condition in path:
        lower, upper = bounds.get(condition.feature, (-math.inf, math.inf))
        if condition.is_above:
            lower = max(lower, condition.threshold)
        else:
            upper = min(upper, condition.threshold)
        bounds[condition.feature] = (lower, upper)
    parts = []
    for feature, (lower, upper) in bounds.items():
        if math.isfinite(lower) and math.isfinite(upper):
            parts.append(f"{_number(lower)} < {feature} <= {_number(upper)}")
        elif math.isfinite(lower):
            parts.append(f"{feature} > {_number(lower)}")
        else:
            parts.append(f"{feature} <= {_number(upper)}")
    return " and ".join(parts) if parts else everyone


def _discover(
    customers: pd.DataFrame, judging: _Judging, drivers: Sequence[str], max_depth: int
) -> UnprofitableSegments:
    """Segments as the leaves of a shallow tree on the drivers, grown to predict a loss."""
    names = tuple(drivers)
    _check_present(list(names), list(customers.columns), "the customer table", _TABLE_FIX)
    features = customers.loc[judging.population, list(names)].to_numpy(dtype=np.float64)
    is_undefined = ~np.isfinite(features).all(axis=1)
    if is_undefined.any():
        raise DataQualityError(
            f"{int(is_undefined.sum()):,} of {len(features):,} customers of the population have no "
            f"finite value of the drivers {list(names)} (e.g. customer "
            f"{plain(judging.population[is_undefined][0])!r}: no purchases in the window); "
            "segment the cross-buyers (population='cross_buyers') or name segments with by="
        )
    target = (judging.judged.reindex(judging.population).to_numpy(dtype=np.float64) < 0).astype(
        np.float64
    )
    tree = _Tree(features, target, names, max_depth, judging.min_size)
    _, leaf_of, rules = _tree_leaves(tree, judging.everyone)
    labels = np.array(list(rules), dtype=object)
    members = pd.Series(labels[leaf_of], index=judging.population, name="segment", dtype="str")
    return _judge(judging, members, rules)


def _tree_leaves(
    tree: _Tree, everyone: str
) -> tuple[list[tuple[_Condition, ...]], IntArray, dict[str, str]]:
    """The grown tree's leaves: their paths, each row's leaf number, the rules by label."""
    leaves = _grow(tree, np.arange(len(tree.target), dtype=np.int64), ())
    leaf_of = np.empty(len(tree.target), dtype=np.int64)
    for number, (_, rows) in enumerate(leaves):
        leaf_of[rows] = number
    rules = {
        f"leaf {number + 1}": _rule_text(path, everyone) for number, (path, _) in enumerate(leaves)
    }
    return [path for path, _ in leaves], leaf_of, rules


def _segment_column(
    customers: pd.DataFrame, key: SegmentKey, population: pd.Index
) -> tuple[str, pd.Series]:
    """A named segmentation's name and its value for every customer of the population."""
    if isinstance(key, str):
        _check_present(
            [key],
            list(customers.columns),
            "the customer table",
            "Pass by= a column name or a Series indexed by customer id",
        )
        return key, customers.loc[population, key]
    if not isinstance(key, pd.Series):
        raise SchemaError(
            f"by= takes column names or Series indexed by customer id, got {type(key).__name__}"
        )
    name = str(key.name) if key.name is not None else "segment"
    if not key.index.is_unique:
        raise DataQualityError(
            f"segment {name!r} has {int(key.index.duplicated().sum()):,} repeated customer ids; "
            "give one segment per customer"
        )
    is_known = population.isin(key.index)
    if not is_known.all():
        raise DataQualityError(
            f"segment {name!r} has no value for {int((~is_known).sum()):,} of {len(population):,} "
            f"customers (e.g. customer {plain(population[~is_known][0])!r}); give every "
            "customer a segment"
        )
    return name, key.reindex(population)


def _named(
    customers: pd.DataFrame, judging: _Judging, by: SegmentKey | Sequence[SegmentKey]
) -> UnprofitableSegments:
    """Segments as the combinations of the named columns' values."""
    keys = [by] if isinstance(by, (str, pd.Series)) else list(by)
    if not keys:
        raise SchemaError(
            "by= names no segmentation; pass a column name, a Series, or a list of them"
        )
    named = dict(_segment_column(customers, key, judging.population) for key in keys)
    frame = pd.DataFrame(
        {name: column.to_numpy() for name, column in named.items()}, index=judging.population
    )
    codes, labels, rules = _combinations(frame)
    members = pd.Series(labels[codes], index=judging.population, name="segment", dtype="str")
    return _judge(judging, members, rules)


def _combinations(
    frame: pd.DataFrame,
) -> tuple[IntArray, npt.NDArray[np.object_], dict[str, str]]:
    """Each row's combination of the columns' values (sorted), their labels and rules."""
    grouped = frame.groupby(list(frame.columns), sort=True, dropna=False, observed=True)
    codes = np.asarray(grouped.ngroup(), dtype=np.int64)
    combinations = [key if isinstance(key, tuple) else (key,) for key in grouped.size().index]
    labels = np.array([" / ".join(str(part) for part in key) for key in combinations], dtype=object)
    rules = {
        str(label): " and ".join(
            f"{name} = {part}" for name, part in zip(frame.columns, key, strict=True)
        )
        for label, key in zip(labels, combinations, strict=True)
    }
    return codes, labels, rules


def unprofitable_segments(
    customers: pd.DataFrame | ProfitTable,
    *,
    by: SegmentKey | Sequence[SegmentKey] | None = None,
    value: pd.Series | None = None,
    drivers: Sequence[str] = DRIVERS,
    population: Population = "cross_buyers",
    max_depth: int = 2,
    min_size: int = 30,
    level: float = 0.95,
) -> UnprofitableSegments:
    """Flag the segments whose mean net profit (or CLV) is reliably below zero.

    A segment is flagged when it has at least ``min_size`` customers, its mean is below zero
    and the ``level`` t interval of its mean lies entirely below zero. With ``by``, the segments
    are those the user names (channel, region, category pair, value tier ...: columns of the
    table or Series indexed by customer id; several are crossed). Without it they are discovered:
    a CART tree (Breiman et al. 1984) of depth ``max_depth`` is grown on the ``drivers`` to
    predict which customers lose money (Gini criterion, at least ``min_size`` customers per
    leaf), and each leaf is a segment whose rule reads as
    ``return_rate > 0.25 and promotion_share > 0.4``.

    Parameters
    ----------
    customers
        The per-customer table of :func:`customer_profitability` (or its :class:`ProfitTable`).
    by
        Named segmentations; ``None`` discovers segments with the tree.
    value
        A value per customer (such as CLV) to judge instead of ``net_profit``; every customer of
        the table needs one.
    drivers
        The table's columns the tree may split on.
    population
        Segment the cross-buyers (default) or all customers. Loss shares are always shares of
        the losses of every customer in the table.
    max_depth, min_size, level
        Depth of the tree (0 to 6), the smallest segment that can be flagged (and the smallest
        leaf), and the confidence level of the interval.

    Returns
    -------
    UnprofitableSegments
        Every segment with its statistics, and which customer is in which.

    Examples
    --------
    >>> table = pd.DataFrame({"net_profit": [-5.0, -7.0, -6.0, 40.0, 35.0, 50.0],
    ...                       "is_cross_buyer": [True] * 6,
    ...                       "channel": ["app", "app", "app", "web", "web", "web"]},
    ...                      index=pd.Index([1, 2, 3, 4, 5, 6], name="customer_id"))
    >>> found = unprofitable_segments(table, by="channel", min_size=3)
    >>> found.segments_[["customers", "mean_value", "total_loss", "loss_share", "is_flagged"]]
             customers  mean_value  total_loss  loss_share  is_flagged
    segment
    app              3   -6.000000        18.0         1.0        True
    web              3   41.666667         0.0         0.0       False
    """
    _check_options(max_depth, min_size, level)
    frame = _customer_frame(customers)
    judging = _judging(frame, value, population, min_size, level)
    if by is not None:
        return _named(frame, judging, by)
    return _discover(frame, judging, drivers, max_depth)
