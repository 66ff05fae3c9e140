"""Patterns: the distinct rows of the columns a model reads, weighted by their customers.

A model fits on its patterns (a base's customers share few histories) and scores once per
distinct row, broadcasting back (:func:`per_pattern`, :func:`frame_per_row`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd

from cvalue.errors import SchemaError
from cvalue.patterns import distinct_rows
from cvalue.summary import compress

__all__ = [
    "OBJECTIVE_BLOCK",
    "FloatArray",
    "Patterns",
    "distinct_values",
    "frame_per_row",
    "patterns_of",
    "per_pattern",
    "require_columns",
    "smallest_codes",
]

FloatArray = npt.NDArray[np.float64]
OBJECTIVE_BLOCK = 1 << 16
"""Patterns per block of a fit's log-likelihood (:meth:`Patterns.blocks`)."""


class Patterns:
    """Distinct rows of the columns a model reads, with their weights (customers per row)."""

    __slots__ = ("columns", "weights")

    def __init__(self, columns: Mapping[str, FloatArray], weights: FloatArray) -> None:
        self.columns = dict(columns)
        self.weights = weights

    def __getitem__(self, name: str) -> FloatArray:
        """One column as a float array."""
        return self.columns[name]

    def blocks(self, size: int) -> list[Patterns]:
        """Consecutive blocks of at most ``size`` patterns, views of these arrays."""
        return [Patterns({name: values[start : start + size] for name, values in
                          self.columns.items()}, self.weights[start : start + size])
                for start in range(0, len(self.weights), size)]  # fmt: skip


def require_columns(
    data: object, columns: Sequence[str], model: str, fix: str = "cvalue.rfm_summary"
) -> None:
    """SchemaError unless ``data`` is a DataFrame with ``columns``; the message names the fix."""
    if not isinstance(data, pd.DataFrame):
        raise SchemaError(f"{model} needs a pandas DataFrame, got {type(data).__name__}")
    missing = [c for c in columns if c not in data]
    if missing:
        raise SchemaError(
            f"{model} needs column(s) {missing}; the data has {list(data.columns)} "
            f"({len(data):,} rows). Build a summary with {fix}"
        )


def patterns_of(data: pd.DataFrame, columns: Sequence[str], *, model: str) -> Patterns:
    """The weighted distinct patterns of ``columns``.

    A ``weight`` column marks data that is already compressed (a pattern table from SQL, the
    donations table); otherwise identical rows are compressed here.
    """
    require_columns(data, columns, model)
    if "weight" in data:
        weights = data["weight"].to_numpy(dtype=np.float64)
        values = {c: data[c].to_numpy(dtype=np.float64) for c in columns}
    else:
        compressed = compress(data, tuple(columns))
        weights = compressed.weights.astype(np.float64)
        values = {c: compressed.patterns[c].to_numpy(dtype=np.float64) for c in columns}
    return Patterns(values, weights)


def per_pattern(
    data: pd.DataFrame, columns: Sequence[str], *, model: str
) -> tuple[dict[str, FloatArray], npt.NDArray[np.intp]]:
    """The distinct rows of ``columns`` and the map back to ``data``'s rows.

    Scoring computes once per distinct pattern and broadcasts: ``values[inverse]``
    (:func:`frame_per_row` does it for several columns at once).
    """
    if not isinstance(data, pd.DataFrame):
        raise SchemaError(f"{model} scores a pandas DataFrame, got {type(data).__name__}")
    missing = [c for c in columns if c not in data]
    if missing:
        raise SchemaError(f"{model} needs column(s) {missing}; the data has {list(data.columns)}")
    patterns, inverse = distinct_rows(data, tuple(columns))
    values = {c: patterns[c].to_numpy(dtype=np.float64) for c in columns}
    return values, inverse


def distinct_values(values: FloatArray) -> tuple[FloatArray, npt.NDArray[np.intp]]:
    """``np.unique(values, return_inverse=True)`` for values that repeat, by hashing.

    Pattern columns repeat a few hundred values: hashing the values and sorting only the
    distinct ones costs a fraction of sorting them all.
    """
    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    order = np.argsort(uniques)
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return np.asarray(uniques[order], dtype=np.float64), rank[codes]


def smallest_codes(codes: npt.NDArray[np.intp], size: int) -> npt.NDArray[np.unsignedinteger]:
    """``codes`` (``0 .. size - 1``) as the smallest unsigned integers that hold them.

    A fit keeps its patterns as codes into their distinct values: a few hundred days or counts
    fit in one or two bytes a pattern, where a float copy takes eight.
    """
    return codes.astype(np.min_scalar_type(max(size - 1, 0)))


def frame_per_row(
    per_pattern_values: Mapping[str, FloatArray], inverse: npt.NDArray[np.intp], index: pd.Index
) -> pd.DataFrame:
    """A DataFrame of per-pattern values gathered for each row (``values[inverse]``).

    The columns are gathered straight into one block that pandas adopts as it is: on a million
    rows, building the frame from separate columns would copy them all once more.
    """
    block = np.empty((len(per_pattern_values), len(inverse)))
    for row, values in zip(block, per_pattern_values.values(), strict=True):
        # take buffers ``out`` in its default mode="raise"; the codes are valid, so "clip" is exact
        np.take(values, inverse, out=row, mode="clip")
    return pd.DataFrame(block.T, index=index, columns=list(per_pattern_values), copy=False)
