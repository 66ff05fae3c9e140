"""Is an indicator rising, falling or flat? Trends of the run history, and score drift.

A scheduled job measures the same indicators every run (:mod:`cvalue.io.history`). Seed 004
asks of NPS whether it is rising, falling or stalled; seed 003 measures retention quarterly.
Reading that off a chart mistakes noise for news, so :func:`trend` answers with a test.

**The trend test.** The indicator's value each quarter, ``y_i`` at quarter ``t_i``, is an
estimate with a standard error ``s_i`` (from its interval), and it also moves from quarter to
quarter for reasons no interval sees (the run-to-run noise, variance ``tau^2``). The model is a
random-effects meta-regression, ``y_i = a + b t_i + u_i + e_i`` with ``u_i ~ N(0, tau^2)`` and
``e_i ~ N(0, s_i^2)``:

- ``tau^2`` is estimated by the method of moments (DerSimonian and Laird's estimator, extended
  to a regression): from the weighted residual sum of squares ``Q`` of the fit with weights
  ``1 / s_i^2``, ``tau^2 = max(0, (Q - (n - 2)) / (sum w - tr((X'WX)^-1 X'W^2X)))``;
- the slope ``b`` is fitted with weights ``1 / (s_i^2 + tau^2)``, and its variance is scaled by
  Knapp and Hartung's factor ``q = sum w_i r_i^2 / (n - 2)`` and tested against Student's t
  with ``n - 2`` degrees of freedom, which holds the level for few quarters (the modified rule,
  ``q`` at least 1, is far too cautious with three or four quarters: it never says "rising");
- an indicator without standard errors (a count of customers) is an ordinary least-squares
  line, tested the same way (``t`` with ``n - 2`` degrees of freedom);
- with two quarters there is nothing left to measure the run-to-run noise with: the test is the
  difference of the two estimates against their standard errors alone (``z``), and says so;
  without standard errors, two quarters are too few.

The verdict is "rising" or "falling" when the slope differs from zero at the test's level
(5 % by default), otherwise "flat".

**Score drift.** :func:`population_stability` is the population stability index of a score's
distribution between two runs, ``PSI = sum (a_k - e_k) ln(a_k / e_k)`` over the bins (the
earlier run's deciles), with the usual reading: below 0.1 stable, 0.1 to 0.25 a moderate shift,
above 0.25 a major one (:func:`psi_level`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats

from cvalue.errors import DataQualityError

__all__ = [
    "PSI_MAJOR",
    "PSI_MODERATE",
    "Trend",
    "history_trends",
    "population_stability",
    "psi_level",
    "trend",
]

PSI_MODERATE = 0.1
"""A population stability index at or above this is a moderate shift."""
PSI_MAJOR = 0.25
"""At or above this, a major shift."""
_PSI_FLOOR = 1e-4  # an empty bin's share, so that the logarithm is defined

Direction = Literal["rising", "falling", "flat", "too few quarters"]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Trend:
    """The outcome of :func:`trend`.

    Attributes
    ----------
    direction
        "rising", "falling", "flat", or "too few quarters".
    slope, ci_lower, ci_upper
        The change per quarter and its interval (NaN with too few quarters).
    p_value
        The two-sided p-value of "no trend" (NaN with too few quarters).
    quarters
        The number of quarters tested.
    method
        "meta-regression" (standard errors and run-to-run noise), "two estimates" (two
        quarters, standard errors alone), "least squares" (no standard errors), or "none".
    tau
        The run-to-run noise's standard deviation beyond the standard errors (meta-regression;
        0 otherwise).
    """

    direction: Direction
    slope: float
    ci_lower: float
    ci_upper: float
    p_value: float
    quarters: int
    method: str
    tau: float = 0.0


def _as_floats(values: object, name: str) -> FloatArray:
    array = np.asarray(values, dtype=float)
    if array.ndim != 1:
        raise DataQualityError(f"{name} must be one-dimensional, got shape {array.shape}")
    return array


def _check(times: FloatArray, values: FloatArray, errors: FloatArray | None, level: float) -> None:
    if not 0.0 < level < 1.0:
        raise DataQualityError(f"level must be between 0 and 1, got {level!r}")
    if len(times) != len(values) or (errors is not None and len(errors) != len(values)):
        raise DataQualityError(
            f"times, values and std_errors must have one entry per quarter; got {len(times)}, "
            f"{len(values)} and {'none' if errors is None else len(errors)}"
        )
    bad = int((~np.isfinite(times) | ~np.isfinite(values)).sum())
    if bad:
        raise DataQualityError(f"{bad} quarter(s) have no finite time or value; drop them first")
    unusable = 0 if errors is None else int((~np.isfinite(errors) | (errors < 0)).sum())
    if unusable:
        raise DataQualityError(
            f"{unusable} standard error(s) are negative or missing; pass std_errors=None when "
            "the indicator has none"
        )
    if len(np.unique(times)) != len(times):
        raise DataQualityError("two values share a quarter: give one value per quarter")


def _verdict(slope: float, half: float, p_value: float, level: float) -> Direction:
    if not np.isfinite(p_value) or p_value >= 1.0 - level or (half == 0.0 and slope == 0.0):
        return "flat"
    return "rising" if slope > 0 else "falling"


def _weighted_line(times: FloatArray, values: FloatArray, weights: FloatArray
                   ) -> tuple[FloatArray, FloatArray, FloatArray]:  # fmt: skip
    """The weighted least-squares line: (coefficients, residuals, (X'WX)^-1)."""
    design = _design(times)
    inverse = np.linalg.inv(design.T @ (weights[:, None] * design)).astype(np.float64)
    centred = values - values.mean()  # a constant indicator has a slope of exactly 0
    coefficients = inverse @ design.T @ (weights * centred)
    return coefficients, centred - design @ coefficients, inverse


def _design(times: FloatArray) -> FloatArray:
    """The line's design matrix: a constant and the centred time."""
    design: FloatArray = np.column_stack([np.ones_like(times), times - times.mean()])
    return design


def _between_runs(times: FloatArray, values: FloatArray, errors: FloatArray) -> float:
    """tau^2 by the method of moments (DerSimonian-Laird, for a regression on time)."""
    weights = 1.0 / errors**2
    _, residuals, inverse = _weighted_line(times, values, weights)
    q_statistic = float(np.sum(weights * residuals**2))
    design = _design(times)
    trace = float(np.trace(inverse @ design.T @ ((weights**2)[:, None] * design)))
    denominator = float(weights.sum()) - trace
    return max(0.0, (q_statistic - (len(times) - 2)) / denominator) if denominator > 0 else 0.0


def trend(
    times: object, values: object, std_errors: object | None = None, *, level: float = 0.95
) -> Trend:
    """Whether an indicator rises, falls or stays flat across quarters (see the module).

    Parameters
    ----------
    times
        Each value's quarter as a number (such as a quarter's ordinal: one apart per quarter).
    values
        The indicator's estimate each quarter.
    std_errors
        The estimates' standard errors (such as an interval's half-width over 1.96), or
        ``None`` for an indicator without (a count).
    level
        The test's confidence level: "flat" unless the slope differs from zero at it.

    Returns
    -------
    Trend

    Examples
    --------
    >>> trend([0, 1, 2, 3], [20.0, 23.0, 26.5, 29.0], [1.0, 1.0, 1.0, 1.0]).direction
    'rising'
    >>> trend([0, 1, 2, 3], [20.0, 21.5, 19.0, 20.5], [1.0, 1.0, 1.0, 1.0]).direction
    'flat'
    """
    t, y = _as_floats(times, "times"), _as_floats(values, "values")
    s = None if std_errors is None else _as_floats(std_errors, "std_errors")
    _check(t, y, s, level)
    n = len(t)
    if s is not None and n >= 2 and bool(np.all(s == 0.0)):
        s = None  # exact figures: only the run-to-run noise is left to test against
    if n < 2 or (n == 2 and s is None):
        nan = math.nan
        return Trend("too few quarters", nan, nan, nan, nan, n, "none")
    if n == 2 and s is not None:
        slope = float((y[1] - y[0]) / (t[1] - t[0]))
        se = float(math.sqrt(s[0] ** 2 + s[1] ** 2) / abs(t[1] - t[0]))
        return _tested(slope, se, level, math.inf, n, "two estimates")
    if s is None:
        return _tested(*_least_squares(t, y), level, n - 2, n, "least squares")
    tau2 = _between_runs(t, y, np.maximum(s, 1e-12 * max(1.0, float(np.abs(y).max()))))
    weights = 1.0 / (s**2 + tau2)
    if not np.all(np.isfinite(weights)):  # an exact figure and no run-to-run noise
        return _tested(*_least_squares(t, y), level, n - 2, n, "meta-regression")
    coefficients, residuals, inverse = _weighted_line(t, y, weights)
    scale = float(np.sum(weights * residuals**2)) / (n - 2)  # Knapp-Hartung
    variance = scale * inverse[1, 1]
    return _tested(float(coefficients[1]), math.sqrt(max(variance, 0.0)), level, n - 2, n,
                   "meta-regression", math.sqrt(tau2))  # fmt: skip


def _least_squares(t: FloatArray, y: FloatArray) -> tuple[float, float]:
    """The ordinary least-squares slope and its standard error (n - 2 degrees of freedom)."""
    coefficients, residuals, inverse = _weighted_line(t, y, np.ones(len(t)))
    return float(coefficients[1]), math.sqrt(float(np.sum(residuals**2)) / (len(t) - 2)
                                             * inverse[1, 1])  # fmt: skip


def _tested(slope: float, se: float, level: float, df: float, n: int, method: str,
            tau: float = 0.0) -> Trend:  # fmt: skip
    quantile = float(stats.norm.ppf(0.5 + level / 2) if math.isinf(df)
                     else stats.t.ppf(0.5 + level / 2, df))  # fmt: skip
    if se == 0.0:
        p_value = 1.0 if slope == 0.0 else 0.0
    else:
        statistic = abs(slope) / se
        p_value = float(2 * (stats.norm.sf(statistic) if math.isinf(df)
                             else stats.t.sf(statistic, df)))  # fmt: skip
    half = quantile * se
    return Trend(_verdict(slope, half, p_value, level), slope, slope - half, slope + half,
                 p_value, n, method, tau)  # fmt: skip


def population_stability(expected: object, actual: object) -> float:
    """The population stability index of ``actual`` counts per bin against ``expected`` ones.

    Parameters
    ----------
    expected, actual
        Counts (or shares) of the same bins in the earlier and the later run. An empty bin
        counts as a share of 0.0001, as is usual, so that the logarithm is defined.

    Returns
    -------
    float
        ``sum (a - e) ln(a / e)`` over the bins' shares: 0 for the same distribution.

    Examples
    --------
    >>> population_stability([10] * 10, [10] * 10)
    0.0
    >>> round(population_stability([50, 50], [70, 30]), 4)
    0.1695
    """
    e, a = _as_floats(expected, "expected"), _as_floats(actual, "actual")
    if len(e) != len(a) or len(e) < 2:
        raise DataQualityError(
            f"expected and actual need the same bins, at least two; got {len(e)} and {len(a)}"
        )
    if np.any(~np.isfinite(e) | (e < 0)) or np.any(~np.isfinite(a) | (a < 0)):
        raise DataQualityError("bin counts must be finite and not negative")
    if e.sum() <= 0 or a.sum() <= 0:
        raise DataQualityError("each distribution needs at least one counted customer")
    shares_e = np.maximum(e / e.sum(), _PSI_FLOOR)
    shares_a = np.maximum(a / a.sum(), _PSI_FLOOR)
    return float(np.sum((shares_a - shares_e) * np.log(shares_a / shares_e)))


def psi_level(psi: float) -> str:
    """The reading of a population stability index: stable, moderate or major shift.

    Below 0.1 "stable", below 0.25 "moderate shift", from 0.25 on "major shift".
    """
    if not np.isfinite(psi):
        return "not measured"
    if psi >= PSI_MAJOR:
        return "major shift"
    return "moderate shift" if psi >= PSI_MODERATE else "stable"


_KEYS = ["grouping", "group_name", "indicator"]
_Z95 = float(stats.norm.ppf(0.975))


def _per_quarter(history: pd.DataFrame) -> pd.DataFrame:
    """The latest run's row in each quarter, for every grouping, group and indicator."""
    rows = history[history["bin"].isna()] if "bin" in history else history
    rows = rows.sort_values("scored_at", kind="stable")
    return rows.drop_duplicates([*_KEYS, "quarter"], keep="last")


def _std_errors(rows: pd.DataFrame) -> FloatArray | None:
    lower, upper = rows["ci_lower"].to_numpy(float), rows["ci_upper"].to_numpy(float)
    if not (np.all(np.isfinite(lower)) and np.all(np.isfinite(upper))):
        return None
    return np.asarray((upper - lower) / (2 * _Z95), dtype=float)


def history_trends(
    history: pd.DataFrame, *, quarters: int = 8, level: float = 0.95
) -> pd.DataFrame:
    """Each indicator's latest value and its trend over the last ``quarters`` quarters.

    Parameters
    ----------
    history
        The run history (:func:`cvalue.io.history.read_history`). Several runs in one quarter
        count once, by the quarter's latest run.
    quarters
        How many of the latest quarters the test looks at.
    level
        The test's level (see :func:`trend`; the intervals are taken as 95 % ones).

    Returns
    -------
    pandas.DataFrame
        One row per grouping, group and indicator: ``quarter`` (the latest), ``value``,
        ``ci_lower``, ``ci_upper``, ``previous`` (the quarter before's value), ``customers``,
        ``is_small_sample``, ``quarters``, ``slope`` (per quarter), ``p_value``, ``direction``,
        ``method``, and ``drift`` (for a population stability index, ``psi_<score>``: its
        reading by :func:`psi_level`; empty otherwise). The score distribution's own rows
        (``bins:<score>``) are not indicators and are left out.
    """
    if quarters < 2:
        raise DataQualityError(f"quarters must be at least 2, got {quarters!r}")
    columns = [*_KEYS, "quarter", "value", "ci_lower", "ci_upper", "previous", "customers",
               "is_small_sample", "quarters", "slope", "p_value", "direction", "method",
               "drift"]  # fmt: skip
    found = []
    for key, rows in _per_quarter(history).groupby(_KEYS, sort=True, dropna=False):
        ordered = rows.assign(_q=pd.PeriodIndex(rows["quarter"], freq="Q").asi8)
        ordered = ordered.sort_values("_q").tail(quarters)
        kept = ordered[np.isfinite(ordered["value"].to_numpy(float))]
        if kept.empty:
            continue
        errors = _std_errors(kept)
        tested = trend(kept["_q"].to_numpy(float), kept["value"].to_numpy(float), errors,
                       level=level)  # fmt: skip
        last = kept.iloc[-1]
        found.append((*key, last["quarter"], last["value"], last["ci_lower"], last["ci_upper"],
                      kept["value"].iloc[-2] if len(kept) > 1 else np.nan, last["customers"],
                      bool(last["is_small_sample"]), len(kept), tested.slope, tested.p_value,
                      tested.direction, tested.method,
                      psi_level(last["value"]) if str(key[2]).startswith("psi_")
                      else ""))  # fmt: skip
    return pd.DataFrame(found, columns=columns)
