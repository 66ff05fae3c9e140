"""Estimates of shares and their sample sizes: one binomial interval and one small-sample rule.

Survey metrics, count-based rates, the lifecycle's rates and cohort tables, and per-cohort fits
all compute binomial shares and flag cells of fewer than :data:`~cvalue.errors.SMALL_SAMPLE`
customers or answers; they do both through the functions here, so that the rule, its warning
and the interval are the same everywhere.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import stats

from cvalue.errors import SMALL_SAMPLE, SchemaError, SmallSampleWarning

__all__ = ["Interval", "binomial_interval", "check_min_customers", "flag_small", "normal_quantile"]

Interval = Literal["wilson", "exact"]
FloatArray = npt.NDArray[np.float64]
_LISTED = 5  # cells named in a warning; the rest are counted


def normal_quantile(level: float) -> float:
    """The standard normal quantile of a two-sided interval at ``level`` (1.96 at 0.95)."""
    return float(stats.norm.ppf(0.5 + level / 2))


def check_min_customers(min_customers: int) -> int:
    """``min_customers`` as a whole number >= 0 (0 flags nothing); a SchemaError otherwise."""
    if (
        isinstance(min_customers, bool)
        or not isinstance(min_customers, (int, np.integer))
        or min_customers < 0
    ):
        raise SchemaError(
            f"min_customers must be a whole number >= 0 (0 flags no cell), got {min_customers!r}"
        )
    return int(min_customers)


def flag_small(
    counts: npt.ArrayLike,
    labels: Sequence[str] | None,
    *,
    subject: str,
    unit: str,
    fix: str,
    threshold: int = SMALL_SAMPLE,
    cells: str = "cells",
    stacklevel: int = 3,
) -> npt.NDArray[np.bool_]:
    """Which cells have fewer than ``threshold`` answers or customers; one warning for them all.

    The one small-sample rule of cvalue: survey metrics, count-based rates, lifecycle rates,
    cohort tables and per-cohort fits all flag and warn through it. Without ``labels`` the
    counts are one estimate's size. ``stacklevel`` counts from here to the user's call.
    """
    sizes = np.asarray(counts, dtype=np.int64).reshape(-1)
    is_small = sizes < threshold
    n_small = int(is_small.sum())
    if n_small:
        if labels is None:
            found = f"{subject} from {int(sizes[0]):,} {unit}: fewer than {threshold}"
        else:
            shown = [f"{labels[i]}: {int(sizes[i]):,}" for i in np.flatnonzero(is_small)[:_LISTED]]
            more = f" and {n_small - _LISTED:,} more" if n_small > _LISTED else ""
            found = (
                f"{subject}: {n_small:,} of {len(sizes):,} {cells} have fewer than {threshold} "
                f"{unit} ({', '.join(shown)}{more})"
            )
        warnings.warn(f"{found}; {fix}", SmallSampleWarning, stacklevel=stacklevel)
    return np.asarray(is_small, dtype=np.bool_)


def binomial_interval(
    successes: npt.ArrayLike,
    trials: npt.ArrayLike,
    *,
    level: float = 0.95,
    interval: Interval = "wilson",
) -> tuple[FloatArray, FloatArray]:
    """Confidence bounds of the binomial shares ``successes / trials``, element by element.

    ``"wilson"``: the Wilson (1927) score interval, *JASA* 22(158), the equation on p. 210.
    ``"exact"``: the Clopper & Pearson (1934) interval from beta quantiles, *Biometrika* 26(4).
    Bounds are clipped to [0, 1] (rounding can push Wilson's a hair outside); no trials give NaN.

    Examples
    --------
    >>> lower, upper = binomial_interval([45], [50])
    >>> round(float(lower[0]), 4), round(float(upper[0]), 4)
    (0.7864, 0.9565)
    """
    if interval not in ("wilson", "exact"):
        raise SchemaError(f"interval must be 'wilson' or 'exact', got {interval!r}")
    k = np.asarray(successes, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):  # n = 0: no share, NaN bounds
        if interval == "wilson":
            z = normal_quantile(level)
            share = k / n
            denominator = 1.0 + z**2 / n
            centre = (share + z**2 / (2 * n)) / denominator
            half_width = z * np.sqrt(share * (1 - share) / n + z**2 / (4 * n**2)) / denominator
            lower, upper = centre - half_width, centre + half_width
        else:
            tail = (1 - level) / 2
            lower = np.where(k > 0, stats.beta.ppf(tail, k, n - k + 1), 0.0)
            upper = np.where(k < n, stats.beta.ppf(1 - tail, k + 1, n - k), 1.0)
    is_empty = n == 0
    return (np.where(is_empty, np.nan, np.clip(lower, 0.0, 1.0)),
            np.where(is_empty, np.nan, np.clip(upper, 0.0, 1.0)))  # fmt: skip
