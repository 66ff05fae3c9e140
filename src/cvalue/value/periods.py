"""The period grid of a valuation, and discounting over it.

A horizon is cut into periods (``_grid``): their ends in years from the valuation date and each
one's share of a full period (the last one may be shorter). ``_discounted`` sums per-period
tables against discount factors ``(1 + d) ** -t`` (``_factors``) for every customer without
building a customers x periods array.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cvalue.errors import SchemaError
from cvalue.units import Duration, TimeUnit, as_duration
from cvalue.value.inputs import FloatArray, IntpArray

__all__: list[str] = []


_DENSE_CELLS = 1 << 22  # (table rows x rates) products up to this size are one matrix product
_CHUNK_CELLS = 1 << 21  # rows x periods handled at once elsewhere: bounds the memory
_WHOLE = 1e-9  # relative slack when a span must be a whole number of periods


# --- time grid -----------------------------------------------------------------------------------


def _horizon(value: Duration | str, name: str = "horizon") -> Duration:
    if isinstance(value, int | float | np.integer | np.floating):
        raise SchemaError(
            f"{name} {value!r} has no unit; write it as '3y', '36M', '156w' or Duration(3, 'year')"
        )
    return as_duration(value)


@dataclass(frozen=True, slots=True)
class _Grid:
    """The valuation periods: their ends in years and each one's share of a full period."""

    ends: FloatArray
    shares: FloatArray
    period: Duration

    @property
    def starts(self) -> FloatArray:
        """Where each period begins, in years."""
        return np.concatenate([[0.0], self.ends[:-1]])

    def in_unit(self, years: FloatArray, unit: TimeUnit) -> FloatArray:
        """Times in years as times in ``unit``."""
        return np.asarray(years * TimeUnit.YEAR.per(unit), dtype=np.float64)


def _grid(horizon: Duration, period: Duration) -> _Grid:
    total, step = horizon.to(TimeUnit.YEAR), period.to(TimeUnit.YEAR)
    if step <= 0:
        raise SchemaError(f"the period must be longer than 0, got {period}")
    n_periods = math.ceil(total / step * (1.0 - _WHOLE)) if total > 0 else 0
    ends = np.minimum(np.arange(1, n_periods + 1) * step, total)
    shares = np.diff(np.concatenate([[0.0], ends])) / step
    return _Grid(np.asarray(ends, dtype=np.float64), shares, period)


def _is_whole(value: float) -> bool:
    return abs(value - round(value)) <= _WHOLE * max(1.0, abs(value))


# --- discounting ---------------------------------------------------------------------------------


def _factors(annual: FloatArray, years: FloatArray) -> FloatArray:
    """Discount factors ``(1 + d) ** -t``, one row per rate, one column per time in years."""
    return np.asarray(np.exp(-np.log1p(annual)[:, None] * years[None, :]), dtype=np.float64)


def _discounted(
    table: FloatArray, factors: FloatArray, group: IntpArray, rate: IntpArray
) -> FloatArray:
    """``sum_k table[group_i, k] * factors[rate_i, k]`` for every row ``i``.

    One matrix product when (table rows x rates) is small, else once per distinct (group, rate)
    pair, in chunks, so that a rate per customer does not build a customers x periods array.
    """
    n_groups, n_rates = table.shape[0], factors.shape[0]
    if n_groups * n_rates <= _DENSE_CELLS:
        return np.asarray((table @ factors.T)[group, rate], dtype=np.float64)
    pairs, inverse = np.unique(group.astype(np.int64) * n_rates + rate, return_inverse=True)
    rows, columns = pairs // n_rates, pairs % n_rates
    found = np.empty(len(pairs))
    step = max(1, _CHUNK_CELLS // max(1, table.shape[1]))
    for start in range(0, len(pairs), step):
        part = slice(start, start + step)
        found[part] = np.einsum("ij,ij->i", table[rows[part]], factors[columns[part]])
    return np.asarray(found[inverse], dtype=np.float64)
