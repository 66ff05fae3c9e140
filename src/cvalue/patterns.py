"""Distinct patterns of summary columns: :func:`compress` and the coding behind it.

Models fit, and valuation values, each distinct (frequency, recency, T) pattern once: a base of
millions of customers has a few thousand patterns. Columns are coded without hashing where a
direct-address table is cheaper (integers in a narrow range; floats on the grid of whole units
or whole days of a unit, as :func:`cvalue.rfm_summary` makes them).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
import pandas as pd

from cvalue.dask import compressed_partitions, is_dask_frame
from cvalue.errors import DataQualityError, SchemaError
from cvalue.units import TimeUnit

__all__ = [
    "GRID_SCALES",
    "SUMMARY_COLUMNS",
    "Compressed",
    "compress",
    "distinct_rows",
    "probed_scales",
    "weights_by_value",
]

SUMMARY_COLUMNS = ("frequency", "recency", "T")
# direct-address tables up to this many entries, or a few per row, stand in for hashing
_TABLE_ENTRIES = 1 << 23
_TABLE_ENTRIES_PER_ROW = 32
_GRID_PROBE = 64  # rows (spread over the column) tried on a grid before a full pass
_VALUE_BLOCK = 1 << 16  # rows coded at a time by weights_by_value
GRID_SCALES = (1.0, *(unit.days for unit in TimeUnit if unit.days != 1.0))
"""Floats that are whole multiples of ``1 / scale`` are coded by table: whole units, or whole
days of a week, month, quarter or year (recency and T of :func:`cvalue.rfm_summary`)."""


class Compressed(NamedTuple):
    """Distinct patterns of a summary, how many customers share each, and the map back.

    ``patterns.iloc[inverse]`` restores the summary's rows (in its order) and
    ``weights.sum()`` is the number of customers.
    """

    patterns: pd.DataFrame
    weights: npt.NDArray[np.int64]
    inverse: npt.NDArray[np.intp]

    def expand(self, index: pd.Index | None = None) -> pd.DataFrame:
        """The uncompressed rows, optionally re-indexed by ``index``."""
        rows = self.patterns.iloc[self.inverse].reset_index(drop=True)
        if index is not None:
            rows.index = index
        return rows


def compress(summary: pd.DataFrame, columns: tuple[str, ...] = SUMMARY_COLUMNS) -> Compressed:
    """Collapse customers with identical ``columns`` into weighted patterns.

    Models fit on the patterns with their weights, so a million customers cost what their
    distinct patterns cost. Patterns come sorted by ``columns``.

    Each column is coded by its distinct values (by arithmetic when they lie on a grid, such as
    whole days in weeks, by hashing otherwise), and the codes are merged one column at a time,
    by direct addressing while the combined codes are few: no multi-column sort or hash.

    Examples
    --------
    >>> cbs = pd.DataFrame({"frequency": [0, 1, 0], "recency": [0.0, 2.0, 0.0],
    ...                     "T": [5.0, 5.0, 5.0]})
    >>> patterns, weights, inverse = compress(cbs)
    >>> weights.tolist(), inverse.tolist()
    ([2, 1], [0, 1, 0])
    """
    if is_dask_frame(summary):  # cvalue.dask: per partition, then the partitions' patterns
        return Compressed(*compressed_partitions(compress, summary, columns))
    patterns, inverse = distinct_rows(summary, columns)
    weights = np.bincount(inverse, minlength=len(patterns[columns[0]])).astype(np.int64)
    return Compressed(pd.DataFrame(patterns), weights, inverse)


def distinct_rows(
    summary: pd.DataFrame, columns: tuple[str, ...]
) -> tuple[dict[str, pd.Index], npt.NDArray[np.intp]]:
    """:func:`compress` without the weights: each column of the sorted patterns, each row's."""
    missing = [c for c in columns if c not in summary]
    if missing:
        raise SchemaError(
            f"column(s) {missing} not found; the summary has {list(summary.columns)}. "
            "Build it with cvalue.rfm_summary"
        )
    if len(summary) == 0:
        raise DataQualityError("the summary has no rows: there is nothing to compress")
    coded = [_column_codes(summary[c]) for c in columns]
    is_missing = np.zeros(len(summary), dtype=bool)
    for column in coded:
        if column.has_missing:
            is_missing |= column.codes < 0
    n_missing = int(np.count_nonzero(is_missing))
    if n_missing:
        raise DataQualityError(
            f"{n_missing:,} of {len(summary):,} summary rows have missing values in {list(columns)}"
        )
    inverse, pattern_codes = _merged_codes(coded)
    per_column = zip(columns, coded, pattern_codes, strict=True)
    return {c: column.levels.take(codes) for c, column, codes in per_column}, inverse


class _Coded(NamedTuple):
    """A column as codes into sorted ``levels`` (``levels[codes]`` is the column; -1: missing).

    ``levels`` may hold values that no row has (a grid's gaps); merging drops them.
    """

    codes: npt.NDArray[np.intp]
    levels: pd.Index
    has_missing: bool


def weights_by_value(
    values: npt.ArrayLike, weights: npt.ArrayLike
) -> tuple[npt.NDArray[np.generic], npt.NDArray[np.float64]]:
    """The distinct ``values``, sorted (NaN last), and the ``weights`` summed for each.

    The rows are hashed a block at a time and the blocks' sums added up, so the temporaries are
    a block's and the distinct values' whatever the number of rows: a pattern table of millions
    of rows has a few hundred ages, and a sort or a hash table of all its rows would cost
    several copies of a column.
    """
    column = np.asarray(values)
    weight = np.asarray(weights, dtype=np.float64)
    if column.shape != weight.shape or column.ndim != 1:
        raise SchemaError(f"values and weights must be two columns of one length, got shapes "
                          f"{column.shape} and {weight.shape}")  # fmt: skip
    found: list[npt.NDArray[np.generic]] = [column[:0]]
    sums: list[npt.NDArray[np.float64]] = [weight[:0]]
    for start in range(0, len(column), _VALUE_BLOCK):
        codes, distinct = pd.factorize(column[start : start + _VALUE_BLOCK], use_na_sentinel=False)
        found.append(np.asarray(distinct))
        sums.append(np.bincount(codes, weights=weight[start : start + _VALUE_BLOCK],
                                minlength=len(distinct)).astype(np.float64))  # fmt: skip
    codes, distinct = pd.factorize(np.concatenate(found), sort=True, use_na_sentinel=False)
    summed = np.bincount(codes, weights=np.concatenate(sums), minlength=len(distinct))
    return np.asarray(distinct), summed.astype(np.float64)


def _column_codes(column: pd.Series) -> _Coded:
    """Codes of a column's values, in their sorted order.

    Integers in a range that :func:`_fits_table` are coded by their offset from the minimum
    (or are their own codes when they start at 0 or above); floats that are whole
    multiples of ``1 / scale`` for a scale in ``GRID_SCALES`` (whole units, or whole days in a
    week, month, quarter or year, as :func:`rfm_summary` makes them) are coded the same way
    from ``rint(value * scale)``; anything else, extension dtypes included (which keep their
    dtype), is hashed by ``pandas.factorize``.
    """
    if isinstance(column.dtype, np.dtype) and len(column):
        values = column.to_numpy()
        coded = None
        if values.dtype.kind in "iu":
            coded = _integer_codes(values)
        elif values.dtype == np.float64:
            coded = _grid_codes(values)
        if coded is not None:
            return coded
    codes, uniques = pd.factorize(column, sort=True)
    return _Coded(codes.astype(np.intp, copy=False), pd.Index(uniques), bool((codes < 0).any()))


def _fits_table(n_entries: float, n_rows: int) -> bool:
    """Whether a direct-address table of ``n_entries`` costs less than hashing ``n_rows`` rows.

    Scanning a table costs about a hundredth of hashing a row, and its memory is bounded.
    """
    return n_entries <= min(_TABLE_ENTRIES, max(_TABLE_ENTRIES_PER_ROW * n_rows, 1 << 16))


def _integer_codes(values: npt.NDArray[np.integer]) -> _Coded | None:
    """Codes of integers by their offset, or None when their range is too wide for a table."""
    low, high = int(values.min()), int(values.max())
    if not _fits_table(high - low + 1, len(values)):
        return None
    origin = _origin(low, high, len(values))
    codes = values - origin if origin else values
    levels = np.arange(origin, high + 1).astype(values.dtype)
    return _Coded(codes.astype(np.intp, copy=False), pd.Index(levels), has_missing=False)


def _origin(low: float, high: float, n_rows: int) -> float:
    """The value that gets code 0: 0 when codes can be the values themselves, else the minimum."""
    return 0 if low >= 0 and _fits_table(high + 1, n_rows) else low


def probed_scales(
    values: npt.NDArray[np.float64], scales: Sequence[float] = GRID_SCALES
) -> Iterator[float]:
    """The ``scales``, in order, on whose grid (multiples of ``1 / scale``) a probe lies.

    The probe is about ``_GRID_PROBE`` rows spread over ``values``: it rules out most scales
    before any full pass, which must still check every row.
    """
    probe = values[:: max(1, len(values) // _GRID_PROBE)]
    return (scale for scale in scales if np.array_equal(np.rint(probe * scale) / scale, probe))


def _grid_codes(values: npt.NDArray[np.float64]) -> _Coded | None:
    """Codes of floats on a grid of step ``1 / scale``, or None when they are on none.

    ``k = rint(value * scale)`` codes the value exactly when ``k / scale == value`` for every
    row: the code then determines the value, and it is monotone in it. About ``_GRID_PROBE``
    rows spread over the column rule out most scales before any full pass. NaN and infinities
    fail the range test before any cast to integers.
    """
    for scale in probed_scales(values):
        steps = values * scale
        np.rint(steps, out=steps)
        low, high = float(steps.min()), float(steps.max())
        if not _fits_table(high - low + 1, len(values)):  # also NaN and infinite bounds
            return None
        origin = _origin(low, high, len(values))
        codes = (steps - origin if origin else steps).astype(np.intp)
        np.divide(steps, scale, out=steps)
        if np.array_equal(steps, values):
            levels = (np.arange(int(high - origin) + 1) + origin) / scale
            return _Coded(codes, pd.Index(levels), has_missing=False)
    return None


def _merged_codes(
    coded: list[_Coded],
) -> tuple[npt.NDArray[np.intp], list[npt.NDArray[np.intp]]]:
    """Codes of the distinct rows of several coded columns, sorted, and each pattern's codes.

    Columns join one at a time: ``key = previous * size + codes`` is ordered like the rows'
    values, and :func:`_distinct_keys` turns it into dense codes again, so keys stay small.
    """
    codes: npt.NDArray[np.integer] = coded[0].codes
    size = len(coded[0].levels)
    pattern_codes = [np.arange(size, dtype=np.intp)]
    for column in coded[1:]:
        width = len(column.levels)
        key = np.multiply(codes, width, dtype=np.int64)
        key += column.codes
        distinct, codes = _distinct_keys(key, size * width)
        previous, own = np.divmod(distinct, width)
        pattern_codes = [*(c[previous] for c in pattern_codes), own.astype(np.intp)]
        size = len(distinct)
    if len(coded) == 1:  # a single column: drop the levels no row has
        distinct, codes = _distinct_keys(codes.astype(np.int64), size)
        pattern_codes = [distinct.astype(np.intp)]
    return codes.astype(np.intp, copy=False), pattern_codes


def _distinct_keys(
    key: npt.NDArray[np.int64], n_keys: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.integer]]:
    """The sorted distinct keys in ``[0, n_keys)`` and each row's position among them.

    When the possible keys :func:`_fits_table`, a table of them marks the keys seen and maps
    them to their rank; int32 positions halve the random reads. Otherwise keys are hashed.
    """
    if not _fits_table(n_keys, len(key)):
        codes, uniques = pd.factorize(key, sort=True)
        return uniques.astype(np.int64), codes
    is_seen = np.zeros(n_keys, dtype=bool)
    is_seen[key] = True
    distinct = np.flatnonzero(is_seen)
    position = np.empty(n_keys, dtype=np.int32)
    position[distinct] = np.arange(len(distinct), dtype=np.int32)
    return distinct.astype(np.int64, copy=False), position[key]
