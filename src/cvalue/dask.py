"""Dask DataFrames: the pandas functions run per partition, each customer whole in one partition.

cvalue's functions accept a ``dask.dataframe.DataFrame`` (``pip install "cvalue[dask]"``) and
give the pandas results, by running the pandas code itself, not a second implementation:

- **per customer** (:func:`map_customers`): the rows are shuffled on the customer id, so that
  each customer's rows sit in one partition, the values that are global to the base (the
  observation end) are fixed once, and the pandas function runs on each partition. Its rows are
  then exactly the pandas rows; the result is a Dask DataFrame indexed by customer id.
- **aggregates over customers** (:func:`customer_results`, :func:`add_tables`): the pandas
  function runs on each partition and the per-partition counts are added.
- **patterns** (:func:`compressed_partitions`): each partition is compressed, and the
  partitions' patterns are compressed again with their weights.
- **scores** (:func:`map_scores`): a fitted model's method (or :func:`cvalue.clv`) maps over a
  summary's partitions; the models pickle, so the workers get a copy and no global state.

The domain functions (:func:`cvalue.rfm_summary`, :func:`cvalue.compress`,
:func:`cvalue.lifecycle_flows`, ...) detect a Dask frame with :func:`is_dask_frame` and call these
helpers with their own pandas function, so this module knows Dask and no domain. Dask is
imported when a Dask frame arrives, never before.
"""

from __future__ import annotations

import dataclasses
import importlib
import warnings
from collections.abc import Callable, Sequence
from functools import reduce
from typing import TYPE_CHECKING, Any, NamedTuple, TypeGuard, TypeVar

import numpy as np
import numpy.typing as npt
import pandas as pd

from cvalue.errors import DataQualityError, SchemaError

if TYPE_CHECKING:
    from dask.dataframe import DataFrame as DaskFrame

__all__ = [
    "Patterns",
    "add_tables",
    "compressed_partitions",
    "customer_results",
    "customer_results_with_tables",
    "dense_sum",
    "is_dask_frame",
    "last_timestamp",
    "map_customers",
    "map_scores",
]

Result = TypeVar("Result")
_DASK_MODULES = frozenset({"dask", "dask_expr"})


def is_dask_frame(data: object) -> TypeGuard[DaskFrame]:
    """Whether ``data`` is a Dask DataFrame, judged by its type's module: dask is not imported.

    Examples
    --------
    >>> is_dask_frame(pd.DataFrame({"frequency": [0]}))
    False
    """
    if type(data).__module__.split(".")[0] not in _DASK_MODULES:
        return False  # dask is imported only once one of its objects exists
    return isinstance(data, importlib.import_module("dask.dataframe").DataFrame)


def _dask() -> Any:  # dask's API is not typed for mypy --strict: it stays behind this door
    try:
        return importlib.import_module("dask")
    except ImportError as exc:  # pragma: no cover - a Dask frame implies dask is installed
        raise SchemaError("Dask frames need dask: pip install 'cvalue[dask]'") from exc


def _check_column(frame: DaskFrame, column: str, role: str) -> None:
    if column not in frame.columns:
        raise SchemaError(
            f"the {role} column {column!r} is not in the Dask frame (columns "
            f"{list(frame.columns)}); pass columns=cvalue.Columns({role}=...)"
        )


def last_timestamp(frame: DaskFrame, *, timestamp: str, is_return: str | None) -> pd.Timestamp:
    """The last purchase's timestamp (returns left out): the base's default observation end.

    Computed once over the whole frame, so that every partition measures ``T`` to the same day.
    """
    _check_column(frame, timestamp, "timestamp")
    rows = frame if is_return is None else frame[~frame[is_return].astype(bool)]
    last = rows[timestamp].max().compute()
    if pd.isna(last):
        raise SchemaError(
            "the Dask transaction log has no purchases: there is nothing to summarise"
        )
    return pd.Timestamp(last)


def _by_customer(frame: DaskFrame, customer_id: str) -> DaskFrame:
    """The rows shuffled so that each customer's sit in one partition.

    The task-based shuffle moves pandas partitions as they are; the peer-to-peer one goes
    through Arrow, which turns categorical columns (a lifecycle panel's periods) into others.
    """
    shuffled: DaskFrame = frame.shuffle(on=customer_id, shuffle_method="tasks")
    return shuffled


def _parts(frame: DaskFrame) -> list[Any]:
    """The frame's partitions as delayed pandas frames (Dask's API is untyped here)."""
    parts: list[Any] = frame.to_delayed()  # type: ignore[no-untyped-call]
    return parts


def _first_rows(frame: DaskFrame) -> pd.DataFrame:
    """The first non-empty partition, computed: real data to learn the result's columns from."""
    for number in range(frame.npartitions):
        rows: pd.DataFrame = frame.partitions[number].compute()
        if len(rows) > 0:
            return rows
    raise SchemaError("the Dask frame has no rows")


def _first_result(
    function: Callable[..., pd.DataFrame], frame: DaskFrame, options: dict[str, object]
) -> pd.DataFrame:
    """``function`` on the first partition it can summarise: the result's columns and dtypes.

    A partition may hold nothing to summarise (only returns; only customers who arrive in a
    holdout, when a log is partitioned by time): the next one is tried, and the last one's
    error is raised when none can be summarised.
    """
    problem: DataQualityError | None = None
    for number in range(frame.npartitions):
        rows: pd.DataFrame = frame.partitions[number].compute()
        if len(rows) == 0:
            continue
        try:
            return function(rows, **options)
        except DataQualityError as exc:  # nothing to summarise here: try the next partition
            problem = exc
    raise problem or SchemaError("the Dask frame has no rows")


def _empty_like(result: pd.DataFrame, keep_attrs: Sequence[str]) -> pd.DataFrame:
    empty = result.iloc[:0].copy()
    empty.attrs = {name: value for name, value in result.attrs.items() if name in keep_attrs}
    return empty


def _on_partition(
    rows: pd.DataFrame,
    function: Callable[..., pd.DataFrame],
    empty: pd.DataFrame,
    keep_attrs: Sequence[str],
    options: dict[str, object],
) -> pd.DataFrame:
    """``function`` on one partition's rows; only ``keep_attrs`` survive (they must agree)."""
    if len(rows) == 0:
        return empty
    result = function(rows, **options)
    result.attrs = {name: value for name, value in result.attrs.items() if name in keep_attrs}
    return result


def map_customers(
    function: Callable[..., pd.DataFrame],
    frame: DaskFrame,
    *,
    customer_id: str,
    keep_attrs: Sequence[str] = ("unit",),
    **options: object,
) -> DaskFrame:
    """``function(rows, **options)`` per partition, after moving each customer into one partition.

    Parameters
    ----------
    function
        A pandas function whose result has one row per customer of its input and whose rows
        depend on that customer's rows only (and on ``options``): :func:`cvalue.rfm_summary`.
    frame
        The Dask transaction log.
    customer_id
        The customer id column the rows are shuffled on.
    keep_attrs
        The ``attrs`` of the result that hold for the whole base (the time unit); the others
        describe one partition only and are dropped.
    options
        Passed to ``function``; values global to the base must be fixed here (the observation
        end), or each partition would compute its own.

    Returns
    -------
    dask.dataframe.DataFrame
        The rows of ``function`` on the whole log, partition by partition (ordered by customer
        within a partition, not across them).
    """
    _check_column(frame, customer_id, "customer_id")
    empty = _empty_like(_first_result(function, frame, options), keep_attrs)
    shuffled = _by_customer(frame, customer_id)
    # each partition's categoricals (a panel's customer ids) have their own categories
    meta = importlib.import_module("dask.dataframe.utils").clear_known_categories(empty)
    mapped: DaskFrame = shuffled.map_partitions(  # type: ignore[no-untyped-call]
        _on_partition, function, empty, tuple(keep_attrs), dict(options), meta=meta
    )
    return mapped


def _result_or_none(
    rows: pd.DataFrame, function: Callable[..., Result], options: dict[str, object]
) -> Result | None:
    return None if len(rows) == 0 else function(rows, **options)


def customer_results(
    function: Callable[..., Result],
    frame: DaskFrame,
    *,
    customer_id: str | None,
    **options: object,
) -> list[Result]:
    """``function(rows, **options)`` on each non-empty partition, computed.

    With ``customer_id``, each customer's rows are first moved into one partition, for functions
    that need whole customers (a lifecycle panel's flows); with ``None`` the partitions are
    taken as they are (patterns of summary rows).
    """
    if customer_id is not None:
        _check_column(frame, customer_id, "customer_id")
        frame = _by_customer(frame, customer_id)
    dask = _dask()
    tasks = [dask.delayed(_result_or_none)(part, function, dict(options)) for part in _parts(frame)]
    results = dask.compute(*tasks)
    return [result for result in results if result is not None]


def add_tables(tables: Sequence[pd.DataFrame], keys: Sequence[str] = ()) -> pd.DataFrame:
    """The cell-by-cell sum of count tables, aligned on their index (missing rows count 0).

    Per-partition counts of whole customers (flows per period) add up to the whole base's.
    With ``keys``, the tables are aligned on those columns instead, and the rows keep the order
    of their first appearance. Integer columns stay integers.
    """
    if not tables:
        raise SchemaError("there is no partition with rows to add up")
    keyed = [table.set_index(list(keys)) if keys else table for table in tables]
    total = reduce(lambda left, right: left.add(right, fill_value=0), keyed)
    total = total.astype(keyed[0].dtypes.to_dict())
    if not keys:
        return total
    order = keyed[0].index.append([table.index for table in keyed[1:]]).drop_duplicates()
    return total.reindex(order).reset_index()


def dense_sum(
    tables: Sequence[pd.Series | pd.DataFrame], index: pd.Index, columns: pd.Index | None = None
) -> npt.NDArray[np.int64]:
    """The sum of count tables laid on one grid: ``index`` (and ``columns``), missing cells 0.

    Per-partition cohort tables cover the cohorts of their own customers; on the base's grid of
    cohorts and ages they add up to the base's counts.
    """
    total = np.zeros((len(index),) if columns is None else (len(index), len(columns)), np.int64)
    for table in tables:
        if isinstance(table, pd.DataFrame):
            total += table.reindex(index=index, columns=columns).fillna(0).to_numpy(np.int64)
        else:
            total += table.reindex(index).fillna(0).to_numpy(np.int64)
    return total


def _with_tables(
    rows: pd.DataFrame,
    tables: dict[str, pd.DataFrame],
    function: Callable[..., Result],
    holder: Any,
    quiet: type[Warning] | None,
    options: dict[str, object],
) -> Result | None:
    if len(rows) == 0 and all(len(table) == 0 for table in tables.values()):
        return None
    with warnings.catch_warnings():
        if quiet is not None:  # each partition sees part of the base: the caller warns once
            warnings.simplefilter("ignore", quiet)
        return function(rows, dataclasses.replace(holder, **tables), **options)


def customer_results_with_tables(
    function: Callable[..., Result],
    frame: DaskFrame,
    holder: Any,
    tables: dict[str, object],
    *,
    customer_id: str,
    quiet: type[Warning] | None = None,
    **options: object,
) -> list[Result]:
    """``function(rows, holder, **options)`` per partition, each customer's table rows beside.

    ``holder`` is a dataclass whose fields named in ``tables`` hold pandas tables by customer
    (:class:`cvalue.Costs`' cost tables); each partition gets a copy holding the rows of its
    own customers, so that every table row is counted in exactly one partition, with the
    customer's transactions when it has any. ``quiet`` is a warning about one partition's part
    of the base, left to the caller to give once for the whole.
    """
    _check_column(frame, customer_id, "customer_id")
    dask, dd = _dask(), importlib.import_module("dask.dataframe")
    kind = frame[customer_id].dtype
    shuffled = _parts(_by_customer(frame, customer_id))
    parts: dict[str, list[Any]] = {}
    for name, table in tables.items():
        if not isinstance(table, pd.DataFrame) or customer_id not in table:
            raise SchemaError(
                f"the cost table {name!r} must be a pandas DataFrame with the {customer_id!r} "
                "column to go with a Dask log"
            )
        by_id = dd.from_pandas(table.astype({customer_id: kind}), npartitions=1)
        spread = by_id.shuffle(on=customer_id, npartitions=len(shuffled), shuffle_method="tasks")
        parts[name] = _parts(spread)
    tasks = [
        dask.delayed(_with_tables)(
            rows, {name: parts[name][number] for name in parts}, function, holder, quiet,
            dict(options),
        )
        for number, rows in enumerate(shuffled)
    ]  # fmt: skip
    return [result for result in dask.compute(*tasks) if result is not None]


class Patterns(NamedTuple):
    """Distinct patterns of a Dask summary, their weights and the map back to its rows."""

    patterns: pd.DataFrame
    weights: npt.NDArray[np.int64]
    inverse: npt.NDArray[np.intp]


def compressed_partitions(
    compress: Callable[[pd.DataFrame, tuple[str, ...]], tuple[Any, ...]],
    frame: DaskFrame,
    columns: tuple[str, ...],
) -> Patterns:
    """Patterns of a Dask summary: each partition compressed, then the patterns compressed again.

    ``compress`` is :func:`cvalue.compress`; its patterns come sorted by ``columns``, so the
    result is the pandas result of the computed frame: same patterns in the same order, same
    weights, and the inverse in the frame's row order (partition by partition).
    """
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise SchemaError(f"compress needs column(s) {missing}; the data has {list(frame.columns)}")
    parts = customer_results(compress, frame, customer_id=None, columns=columns)
    if not parts:
        raise SchemaError("the Dask summary has no rows: there is nothing to compress")
    stacked = pd.concat([part[0] for part in parts], ignore_index=True)
    patterns, _, inverse = compress(stacked, columns)
    part_weights = np.concatenate([part[1] for part in parts]).astype(np.float64)
    weights = np.bincount(inverse, weights=part_weights, minlength=len(patterns))
    offsets = np.cumsum([0] + [len(part[0]) for part in parts[:-1]])
    rows = [inverse[offset + part[2]] for offset, part in zip(offsets, parts, strict=True)]
    return Patterns(patterns, weights.astype(np.int64), np.concatenate(rows).astype(np.intp))


def _score(
    rows: pd.DataFrame,
    function: Callable[..., object],
    table: str | None,
    options: dict[str, object],
) -> pd.DataFrame:
    result = function(rows, **options)
    scores = getattr(result, table) if table is not None else result
    if not isinstance(scores, pd.DataFrame):
        raise SchemaError(
            f"map_scores needs a function that returns a DataFrame, got {type(scores).__name__}; "
            "name the result's table with table= (clv: table='customers')"
        )
    return scores


def map_scores(
    function: Callable[..., object],
    summary: DaskFrame,
    *,
    table: str | None = None,
    **options: object,
) -> DaskFrame:
    """Score a Dask summary partition by partition with a fitted model's method, or with clv.

    Every score of a customer depends only on that customer's row and the fitted parameters, so
    each partition is scored on its own, on the worker that holds it: the function (a bound
    method carries its model) is pickled to the workers, with no global state.

    Parameters
    ----------
    function
        ``model.predict``, ``model.p_alive``, ``spend_model.conditional_expected_spend``,
        :func:`cvalue.clv`, ...: data first, options by keyword.
    summary
        A Dask customer summary, e.g. from :func:`cvalue.rfm_summary` of a Dask log.
    table
        The attribute of the function's result that holds the per-customer table, when the
        result is not a DataFrame itself (:func:`cvalue.clv`: ``"customers"``).
    options
        Passed to ``function`` (``horizon=``, ``purchases=``, ...).

    Returns
    -------
    dask.dataframe.DataFrame
        One row per customer of ``summary``, in its partitions. A score given as a Series (such
        as ``p_alive``) comes as a one-column frame named after it.
    """
    empty = _score(_first_rows(summary).iloc[:1], _framed(function), table, dict(options))
    # one task holds the model and the options, which every partition's task refers to: a model
    # with its fitted patterns is pickled once, not once per partition
    delayed = _dask().delayed
    shared = delayed(_framed(function), traverse=False), delayed(dict(options), traverse=False)
    scores: DaskFrame = summary.map_partitions(  # type: ignore[no-untyped-call]
        _score, shared[0], table, shared[1], meta=empty.iloc[:0]
    )
    return scores


class _Framed:
    """A function whose Series result becomes a one-column frame (picklable: no closure)."""

    def __init__(self, function: Callable[..., object]) -> None:
        self.function = function

    def __call__(self, rows: pd.DataFrame, **options: object) -> object:
        result = self.function(rows, **options)
        if isinstance(result, pd.Series):
            return result.to_frame(result.name if result.name is not None else "score")
        if isinstance(result, np.ndarray):
            return pd.DataFrame({"score": result}, index=rows.index)
        return result


def _framed(function: Callable[..., object]) -> _Framed:
    return _Framed(function)
