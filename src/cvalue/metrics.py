"""Customer experience and base metrics with confidence intervals, and tied to value.

- :func:`nps` and :func:`enps`: Net Promoter Score (Reichheld 2003, "The one number you need to
  grow", *Harvard Business Review* 81(12)) of 0-10 answers, on the -100..100 scale, with the
  interval of the difference of two multinomial shares.
- :func:`csat`: the share of answers in the top boxes of a rating scale, with the Wilson (1927)
  interval.
- :func:`ces`: the mean Customer Effort Score with a t interval.
- :func:`retention_from_counts`, :func:`churn_from_counts`: a rate from two counts, with a
  binomial interval.
- :func:`cac`: acquisition spend per new customer, by channel.
- :func:`by_value`: any of the survey metrics per value tier, and the value held by detractors.

Survey metrics computed from fewer than :data:`SMALL_SAMPLE` (100) answers, and rates computed
on fewer than ``min_customers`` (by default :data:`SMALL_SAMPLE`) customers, come with one
:class:`SmallSampleWarning` per call naming the sizes, and are flagged ``is_small_sample``: their
intervals are wide and their normal approximations rough. Retention indicators need at least 100
customers to be read with confidence. :mod:`cvalue.lifecycle` flags and warns about its rates,
cohort tables and per-cohort fits the same way.

:func:`retention_from_counts` and :func:`churn_from_counts` take plain counts (customers at the
start of a period and how many were retained or lost). :mod:`cvalue.lifecycle` computes the same
rates period by period and cohort by cohort from a state panel; use these for a count you already
have.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Literal, TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats

from cvalue.errors import SMALL_SAMPLE, DataQualityError, SchemaError, SmallSampleWarning, plain
from cvalue.samples import (
    Interval,
    binomial_interval,
    check_min_customers,
    flag_small,
    normal_quantile,
)
from cvalue.segments.tiers import ValueTiers, value_series, value_tiers

__all__ = [
    "SMALL_SAMPLE",
    "MetricEstimate",
    "SmallSampleWarning",
    "binomial_interval",
    "by_value",
    "cac",
    "ces",
    "churn_from_counts",
    "churn_rate",
    "csat",
    "enps",
    "iqs",
    "nps",
    "retention_from_counts",
    "retention_rate",
]

FloatArray: TypeAlias = npt.NDArray[np.float64]
Scores: TypeAlias = pd.Series | Sequence[float] | npt.NDArray[np.generic]
SurveyMetric = Literal["nps", "enps", "csat", "ces"]

_NPS_SCALE = (0, 10)
_DETRACTOR_HIGHEST = 6  # 0-6 detract, 7-8 are passive, 9-10 promote
_PROMOTER_LOWEST = 9
_CUTS = (0.01, 0.05, 0.20)


@dataclass(frozen=True, slots=True)
class MetricEstimate:
    """A metric, its confidence interval, and what it was computed from.

    Attributes
    ----------
    metric
        ``NPS``, ``eNPS``, ``CSAT``, ``CES``, ``retention rate`` or ``churn rate``.
    estimate, ci_lower, ci_upper
        The estimate and its ``level`` interval (NPS in points from -100 to 100, CSAT and rates
        as shares from 0 to 1, CES on its scale).
    n
        The number of answers (or of customers at the start, for rates).
    level
        The confidence level.
    parts
        The pieces of the estimate: for NPS the shares of ``promoters``, ``passives`` and
        ``detractors``; for CSAT the number ``satisfied``; for CES the ``std_dev``; for rates
        the ``count``.
    is_small_sample
        ``n`` is below the threshold (:data:`SMALL_SAMPLE`, or a rate's ``min_customers``).
    """

    metric: str
    estimate: float
    ci_lower: float
    ci_upper: float
    n: int
    level: float
    parts: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    is_small_sample: bool = False


def _check_level(level: float) -> float:
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level < 1:
        raise SchemaError(f"level must be a number in (0, 1), got {level!r}")
    return float(level)


def _answers(scores: Scores, scale: tuple[int, int], name: str) -> FloatArray:
    """The answers as floats, refusing missing, fractional and out-of-scale ones (counted)."""
    series = scores if isinstance(scores, pd.Series) else pd.Series(np.asarray(scores))
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    lowest, highest = scale
    is_missing = ~np.isfinite(values)
    is_fraction = ~is_missing & (values != np.round(values))
    is_outside = ~is_missing & ~is_fraction & ((values < lowest) | (values > highest))
    problems = [
        f"{int(mask.sum()):,} {what} (e.g. row {plain(series.index[mask][0])!r}: "
        f"{plain(series[mask].iloc[0])!r})"
        for mask, what in (
            (is_missing, "missing or non-numeric answers"),
            (is_fraction, "answers that are not whole points"),
            (is_outside, f"answers outside the {lowest}-{highest} scale"),
        )
        if mask.any()
    ]
    if problems:
        raise DataQualityError(
            f"{name} answers: " + "; ".join(problems) + f" among {len(values):,} answers. Keep "
            f"whole answers from {lowest} to {highest} (drop unanswered rows, rescale others)"
        )
    if len(values) == 0:
        raise DataQualityError(f"{name}: there are no answers")
    return values


_FEW_ANSWERS = (
    "the interval is wide and its approximation rough: collect more answers before comparing"
)


def _warn_small(metric: str, n_answers: int) -> bool:
    """Warn (at the caller's caller) about a survey metric from few answers; whether it is small."""
    flags = flag_small([n_answers], None, subject=metric, unit="answers", fix=_FEW_ANSWERS,
                        stacklevel=4)  # fmt: skip
    return bool(flags[0])


def _nps_estimate(metric: str, answers: FloatArray, level: float) -> MetricEstimate:
    """NPS = 100 (promoters - detractors); the variance of a difference of multinomial shares.

    For shares ``p`` (promoters) and ``d`` (detractors) of ``n`` answers,
    ``Var(p - d) = (p + d - (p - d)^2) / n``; the interval is the normal one, clipped to the
    scale.
    """
    n_answers = len(answers)
    promoters = float(np.mean(answers >= _PROMOTER_LOWEST))
    detractors = float(np.mean(answers <= _DETRACTOR_HIGHEST))
    difference = promoters - detractors
    std_error = math.sqrt(max(promoters + detractors - difference**2, 0.0) / n_answers)
    half_width = 100.0 * normal_quantile(level) * std_error
    parts = {
        "promoters": promoters,
        "passives": 1.0 - promoters - detractors,
        "detractors": detractors,
    }
    return MetricEstimate(
        metric, 100.0 * difference, max(100.0 * difference - half_width, -100.0),
        min(100.0 * difference + half_width, 100.0), n_answers, level, MappingProxyType(parts),
    )  # fmt: skip


def nps(scores: Scores, *, level: float = 0.95) -> MetricEstimate:
    """Net Promoter Score of 0-10 answers, with its confidence interval.

    Answers 9-10 promote, 7-8 are passive, 0-6 detract; NPS is 100 x (share of promoters -
    share of detractors), from -100 to 100.

    Parameters
    ----------
    scores
        The answers: whole numbers from 0 to 10.
    level
        The confidence level of the interval.

    Returns
    -------
    MetricEstimate
        The NPS, its interval (normal, from the multinomial variance of the difference of the
        two shares, clipped to [-100, 100]) and the three shares.

    Raises
    ------
    DataQualityError
        Missing, fractional or out-of-scale answers (counted), or no answers.

    Examples
    --------
    >>> result = nps([10] * 60 + [8] * 25 + [3] * 15)
    >>> round(result.estimate, 6), round(result.ci_lower, 2), round(result.ci_upper, 2)
    (45.0, 30.5, 59.5)
    """
    level = _check_level(level)
    answers = _answers(scores, _NPS_SCALE, "NPS")
    is_small = _warn_small("NPS", len(answers))
    return replace(_nps_estimate("NPS", answers, level), is_small_sample=is_small)


def enps(scores: Scores, *, level: float = 0.95) -> MetricEstimate:
    """Employee Net Promoter Score: :func:`nps` of employees' 0-10 answers.

    Parameters
    ----------
    scores
        The employees' answers: whole numbers from 0 to 10.
    level
        The confidence level of the interval.

    Returns
    -------
    MetricEstimate
        As :func:`nps`, named ``eNPS``.

    Examples
    --------
    >>> enps([9] * 50 + [5] * 50).estimate
    0.0
    """
    level = _check_level(level)
    answers = _answers(scores, _NPS_SCALE, "eNPS")
    is_small = _warn_small("eNPS", len(answers))
    return replace(_nps_estimate("eNPS", answers, level), is_small_sample=is_small)


def _share_estimate(
    metric: str, successes: int, trials: int, level: float, interval: Interval, part: str
) -> MetricEstimate:
    lower_bounds, upper_bounds = binomial_interval(
        [successes], [trials], level=level, interval=interval
    )
    lower, upper = float(lower_bounds[0]), float(upper_bounds[0])
    parts = MappingProxyType({part: float(successes)})
    return MetricEstimate(metric, successes / trials, lower, upper, trials, level, parts)


def _check_scale(scale: tuple[int, int]) -> tuple[int, int]:
    lowest, highest = scale
    if not all(isinstance(end, (int, np.integer)) for end in scale) or lowest >= highest:
        raise SchemaError(f"scale must be two whole numbers (lowest, highest), got {scale!r}")
    return int(lowest), int(highest)


def csat(
    scores: Scores,
    *,
    scale: tuple[int, int] = (1, 5),
    top_box: int = 2,
    level: float = 0.95,
) -> MetricEstimate:
    """Customer satisfaction: the share of answers in the top ``top_box`` points of the scale.

    Parameters
    ----------
    scores
        The answers: whole numbers on ``scale``.
    scale
        The lowest and highest answer (1-5 by default).
    top_box
        How many of the highest answers count as satisfied (2: "top-two-box", 4 and 5).
    level
        The confidence level of the Wilson interval.

    Returns
    -------
    MetricEstimate
        The share of satisfied answers (0 to 1), its Wilson interval and the number satisfied.

    Examples
    --------
    >>> result = csat([5, 4, 4, 3, 2, 5, 5, 1, 4, 4] * 10)
    >>> result.estimate, round(result.ci_lower, 4), round(result.ci_upper, 4)
    (0.7, 0.6042, 0.7811)
    """
    level = _check_level(level)
    lowest, highest = _check_scale(scale)
    if (
        isinstance(top_box, bool)
        or not isinstance(top_box, int)
        or not 1 <= top_box < highest - lowest + 1
    ):
        raise SchemaError(
            f"top_box must be a whole number from 1 to {highest - lowest}, got {top_box!r}"
        )
    answers = _answers(scores, (lowest, highest), "CSAT")
    is_small = _warn_small("CSAT", len(answers))
    satisfied = int(np.sum(answers > highest - top_box))
    found = _share_estimate("CSAT", satisfied, len(answers), level, "wilson", "satisfied")
    return replace(found, is_small_sample=is_small)


def ces(scores: Scores, *, scale: tuple[int, int] = (1, 7), level: float = 0.95) -> MetricEstimate:
    """Customer Effort Score: the mean answer, with a t interval.

    Parameters
    ----------
    scores
        The answers: whole numbers on ``scale`` (1-7 by default; whether high means easy
        depends on the question, and the mean reads the same way).
    scale
        The lowest and highest answer.
    level
        The confidence level of the interval.

    Returns
    -------
    MetricEstimate
        The mean, its t interval (NaN from a single answer) and the standard deviation.

    Examples
    --------
    >>> result = ces([5, 6, 7, 4, 6] * 20)
    >>> result.estimate, round(result.ci_lower, 3), round(result.ci_upper, 3)
    (5.6, 5.397, 5.803)
    """
    level = _check_level(level)
    answers = _answers(scores, _check_scale(scale), "CES")
    is_small = _warn_small("CES", len(answers))
    return replace(_mean_estimate("CES", answers, level), is_small_sample=is_small)


def iqs(points: Scores, max_points: float | Scores, *, level: float = 0.95) -> MetricEstimate:
    """Internal Quality Score (seed 001): points earned in reviews, as % of those possible.

    The company's own view of its conversations with customers (CSAT and NPS are the
    customers'): over reviews earning ``y_i`` of ``m_i`` points, ``IQS = 100 sum(y) / sum(m)``,
    with the ratio estimator's t interval (standard error ``sqrt(sum((y - R m)^2) / (n - 1) /
    n) / mean(m)``, ``R = sum(y) / sum(m)``) kept within 0-100. ``max_points`` is one number
    or one per review. Missing, negative or excess points raise :class:`DataQualityError`.

    >>> result = iqs([8, 10, 6, 9, 7] * 20, max_points=10)
    >>> result.estimate, round(result.ci_lower, 1), round(result.ci_upper, 1)
    (80.0, 77.2, 82.8)
    """
    level = _check_level(level)
    series = points if isinstance(points, pd.Series) else pd.Series(np.asarray(points))
    y = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    m = pd.to_numeric(pd.Series(np.atleast_1d(np.asarray(max_points))), errors="coerce").to_numpy(
        dtype=np.float64, na_value=np.nan)  # fmt: skip
    if np.ndim(max_points) == 0:
        m = np.full(y.shape, m[0])
    elif m.shape != y.shape:
        raise SchemaError(f"max_points has {len(m):,} values for {len(y):,} reviews: give one "
                          "per review, or one number for all")  # fmt: skip
    found = [
        (~np.isfinite(y), "missing or non-numeric points"),
        (y < 0, "negative points"),
        (~(m > 0), "possible points that are not > 0"),
        (y > m, "points above the possible"),
    ]
    problems = [f"{int(bad.sum()):,} {what} (e.g. review {plain(series.index[bad][0])!r})"
                for bad, what in found if bad.any()]  # fmt: skip
    if problems or not len(y):
        said = "; ".join(problems) or "there are no reviews"
        raise DataQualityError(
            f"IQS: {said} among {len(y):,} reviews; keep 0 <= points <= possible"
        )
    is_small, n, ratio = _warn_small("IQS", len(y)), len(y), float(y.sum() / m.sum())
    parts = MappingProxyType({"points": float(y.sum()), "possible": float(m.sum())})
    if n < 2:
        return MetricEstimate("IQS", 100 * ratio, math.nan, math.nan, n, level, parts, is_small)
    residual = y - ratio * m
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * math.sqrt(
        float(residual @ residual) / (n - 1) / n) / float(m.mean())  # fmt: skip
    low, high = 100 * max(ratio - half, 0.0), 100 * min(ratio + half, 1.0)
    return MetricEstimate("IQS", 100 * ratio, low, high, n, level, parts, is_small)


def _mean_estimate(metric: str, answers: FloatArray, level: float) -> MetricEstimate:
    n_answers = len(answers)
    mean = float(answers.mean())
    if n_answers < 2:
        return MetricEstimate(metric, mean, math.nan, math.nan, n_answers, level)
    std_dev = float(answers.std(ddof=1))
    half_width = float(stats.t.ppf(0.5 + level / 2, n_answers - 1)) * std_dev / math.sqrt(n_answers)
    parts = MappingProxyType({"std_dev": std_dev})
    return MetricEstimate(
        metric, mean, mean - half_width, mean + half_width, n_answers, level, parts
    )


def _check_counts(count: int, at_start: int, name: str) -> None:
    is_whole = all(
        isinstance(value, (int, np.integer)) and not isinstance(value, bool)
        for value in (count, at_start)
    )
    if not is_whole or at_start < 1 or not 0 <= count <= at_start:
        raise DataQualityError(
            f"{name}={count!r} and at_start={at_start!r} must be whole numbers with "
            f"0 <= {name} <= at_start and at_start >= 1"
        )


_FEW_AT_START = (
    "the interval is wide: measure over a longer period or a larger base, or pass min_customers= "
    "a smaller number to accept the wider interval"
)


def _count_rate(
    metric: str, count: int, at_start: int, name: str, *, level: float, interval: Interval,
    min_customers: int,
) -> MetricEstimate:  # fmt: skip
    """The rate ``count / at_start`` with its interval, flagged (and warned) when small."""
    level = _check_level(level)
    _check_counts(count, at_start, name)
    threshold = check_min_customers(min_customers)
    found = _share_estimate(metric, int(count), int(at_start), level, interval, "count")
    is_small = flag_small([at_start], None, subject=metric, unit="customers at the start",
                           fix=_FEW_AT_START, threshold=threshold, stacklevel=4)  # fmt: skip
    return replace(found, is_small_sample=bool(is_small[0]))


def retention_from_counts(
    retained: int,
    at_start: int,
    *,
    level: float = 0.95,
    interval: Interval = "wilson",
    min_customers: int = SMALL_SAMPLE,
) -> MetricEstimate:
    """The share of the customers at the start of a period still customers at its end.

    Plain counts in; :mod:`cvalue.lifecycle` computes the rate per period and cohort from a
    state panel.

    Parameters
    ----------
    retained
        Customers at the start who are still customers at the end (new ones not counted).
    at_start
        Customers at the start of the period.
    level, interval
        The confidence level, and the binomial interval: Wilson (default) or Clopper-Pearson
        (``"exact"``).
    min_customers
        Fewer customers at the start than this (:data:`SMALL_SAMPLE`, 100, by default) flag the
        estimate ``is_small_sample`` and warn; 0 flags nothing.

    Returns
    -------
    MetricEstimate
        The rate (0 to 1), its interval and ``is_small_sample``.

    Warns
    -----
    SmallSampleWarning
        Fewer than ``min_customers`` customers at the start.

    Examples
    --------
    >>> result = retention_from_counts(850, 1_000)
    >>> result.estimate, round(result.ci_lower, 4), round(result.ci_upper, 4)
    (0.85, 0.8265, 0.8708)
    >>> retention_from_counts(17, 20, min_customers=20).is_small_sample
    False
    """
    return _count_rate("retention rate", retained, at_start, "retained", level=level,
                       interval=interval, min_customers=min_customers)  # fmt: skip


def churn_from_counts(
    lost: int,
    at_start: int,
    *,
    level: float = 0.95,
    interval: Interval = "wilson",
    min_customers: int = SMALL_SAMPLE,
) -> MetricEstimate:
    """The share of the customers at the start of a period lost by its end.

    Plain counts in, as :func:`retention_from_counts` (with the same options and small-sample
    flag): ``churn_from_counts(at_start - retained, at_start)`` is one minus the retention rate,
    with the mirrored interval.

    Examples
    --------
    >>> round(churn_from_counts(150, 1_000).ci_upper, 4)
    0.1735
    """
    return _count_rate("churn rate", lost, at_start, "lost", level=level, interval=interval,
                       min_customers=min_customers)  # fmt: skip


def retention_rate(
    retained: int,
    at_start: int,
    *,
    level: float = 0.95,
    interval: Interval = "wilson",
    min_customers: int = SMALL_SAMPLE,
) -> MetricEstimate:
    """Deprecated name of :func:`retention_from_counts`.

    ``cvalue.lifecycle.retention_rate`` computes rates from a state panel: one name per concept.
    """
    _renamed("retention_rate", "retention_from_counts")
    return retention_from_counts(retained, at_start, level=level, interval=interval,
                                 min_customers=min_customers)  # fmt: skip


def churn_rate(
    lost: int,
    at_start: int,
    *,
    level: float = 0.95,
    interval: Interval = "wilson",
    min_customers: int = SMALL_SAMPLE,
) -> MetricEstimate:
    """Deprecated name of :func:`churn_from_counts` (see :func:`retention_rate`)."""
    _renamed("churn_rate", "churn_from_counts")
    return churn_from_counts(lost, at_start, level=level, interval=interval,
                             min_customers=min_customers)  # fmt: skip


def _renamed(old: str, new: str) -> None:
    warnings.warn(
        f"cvalue.metrics.{old} is deprecated and will be removed in the next release: call "
        f"cvalue.metrics.{new}, the same rate from counts (cvalue.lifecycle.{old} computes "
        "rates from a state panel)",
        DeprecationWarning,
        stacklevel=3,
    )


def cac(spend: pd.Series, new_customers: pd.Series) -> pd.DataFrame:
    """Customer acquisition cost by channel: acquisition spend / new customers.

    Parameters
    ----------
    spend
        Acquisition spend per channel, indexed by channel.
    new_customers
        New customers per channel, indexed by channel (e.g. ``customers["channel"]
        .value_counts()``). Both must list the same channels.

    Returns
    -------
    pandas.DataFrame
        Indexed by channel (in ``spend``'s order): ``spend``, ``new_customers``, ``cac``
        (``inf`` for spend without a new customer, NaN for neither) and ``share_of_spend``. The
        overall CAC is ``spend.sum() / new_customers.sum()``.

    Examples
    --------
    >>> spend = pd.Series({"search": 4_500.0, "social": 1_400.0})
    >>> cac(spend, pd.Series({"social": 40, "search": 100}))
             spend  new_customers   cac  share_of_spend
    channel
    search  4500.0            100  45.0        0.762712
    social  1400.0             40  35.0        0.237288
    """
    for name, table in (("spend", spend), ("new_customers", new_customers)):
        if not isinstance(table, pd.Series) or not table.index.is_unique:
            raise SchemaError(f"{name} must be a Series indexed by channel, one row per channel")
    only_spend = spend.index.difference(new_customers.index).tolist()
    only_new = new_customers.index.difference(spend.index).tolist()
    if only_spend or only_new:
        raise DataQualityError(
            f"spend and new_customers list different channels: {only_spend} have spend only, "
            f"{only_new} new customers only; give both for every channel (0 where there is none)"
        )
    amounts = pd.to_numeric(spend, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    counts = pd.to_numeric(new_customers.reindex(spend.index), errors="coerce").to_numpy(
        dtype=np.float64, na_value=np.nan
    )
    n_bad_spend = int((~(np.isfinite(amounts) & (amounts >= 0))).sum())
    n_bad_counts = int(
        (~(np.isfinite(counts) & (counts >= 0) & (counts == np.round(counts)))).sum()
    )
    if n_bad_spend or n_bad_counts:
        raise DataQualityError(
            f"{n_bad_spend} of {len(amounts)} channels have a missing or negative spend and "
            f"{n_bad_counts} a new-customer count that is not a whole number >= 0"
        )
    with np.errstate(invalid="ignore", divide="ignore"):  # no new customers: inf (or NaN)
        per_customer = amounts / counts
        share = amounts / amounts.sum() if amounts.sum() > 0 else np.full(len(amounts), np.nan)
    return pd.DataFrame(
        {"spend": amounts, "new_customers": counts.astype(np.int64), "cac": per_customer,
         "share_of_spend": share},
        index=pd.Index(spend.index, name="channel"),
    )  # fmt: skip


_SCALES: Mapping[str, tuple[int, int]] = MappingProxyType(
    {"nps": _NPS_SCALE, "enps": _NPS_SCALE, "csat": (1, 5), "ces": (1, 7)}
)
_LABELS: Mapping[str, str] = MappingProxyType(
    {"nps": "NPS", "enps": "eNPS", "csat": "CSAT", "ces": "CES"}
)
_TOP_BOX = 2


def _survey_estimate(
    metric: SurveyMetric, answers: FloatArray, scale: tuple[int, int], level: float
) -> tuple[float, float, float]:
    """Estimate and interval of a survey metric (NaN without answers); no warning."""
    if len(answers) == 0:
        return math.nan, math.nan, math.nan
    if metric in ("nps", "enps"):
        found = _nps_estimate(_LABELS[metric], answers, level)
    elif metric == "csat":
        satisfied = int(np.sum(answers > scale[1] - _TOP_BOX))
        found = _share_estimate("CSAT", satisfied, len(answers), level, "wilson", "satisfied")
    else:
        found = _mean_estimate("CES", answers, level)
    return found.estimate, found.ci_lower, found.ci_upper


def _latest_answers(answers: pd.DataFrame, customer_id: str, timestamp: str | None) -> pd.DataFrame:
    """Each customer's latest answer (by ``timestamp``); without it, one answer per customer."""
    if timestamp is not None and timestamp in answers:
        ordered = answers.sort_values(timestamp, kind="stable")
        return ordered.drop_duplicates(customer_id, keep="last")
    n_repeated = int(answers[customer_id].duplicated().sum())
    if n_repeated:
        raise DataQualityError(
            f"{n_repeated:,} answers repeat a customer and there is no timestamp column to pick "
            "each customer's latest answer; pass timestamp= the answers' time column"
        )
    return answers


def _detractor_value(
    answers: pd.DataFrame, score: str, options: _ByValue, tiers: pd.Series, values: pd.Series
) -> pd.DataFrame:
    """Per tier: customers whose latest answer detracts, their value and its share."""
    latest = _latest_answers(answers, options.customer_id, options.timestamp)
    scores = pd.to_numeric(latest[score]).to_numpy(dtype=np.float64)
    detractors = pd.Index(latest[options.customer_id][scores <= _DETRACTOR_HIGHEST])
    is_detractor = values.index.isin(detractors)
    frame = pd.DataFrame({"tier": tiers, "value": values, "is_detractor": is_detractor})
    held = frame[is_detractor].groupby("tier", observed=False)["value"].agg(["size", "sum"])
    return held.rename(columns={"size": "detractors", "sum": "detractor_value"})


@dataclass(frozen=True, slots=True)
class _ByValue:
    customer_id: str
    timestamp: str | None
    level: float
    scale: tuple[int, int]


def _tier_of_answers(
    answers: pd.DataFrame, customer_id: str, tiers: pd.Series
) -> npt.NDArray[np.int64]:
    """The tier code of each answer's customer; every answering customer needs a value."""
    codes = pd.Series(tiers.cat.codes.to_numpy(), index=tiers.index)
    found = codes.reindex(pd.Index(answers[customer_id]))
    n_missing = int(found.isna().sum())
    if n_missing:
        example = answers[customer_id][found.isna().to_numpy()].iloc[0]
        raise DataQualityError(
            f"{n_missing:,} of {len(answers):,} answers come from customers without a value "
            f"(e.g. customer {plain(example)!r}); value every answering customer, or drop "
            "their answers"
        )
    return found.to_numpy(dtype=np.int64)


def by_value(
    metric: SurveyMetric,
    answers: pd.DataFrame,
    values: pd.Series | pd.DataFrame,
    *,
    score: str | None = None,
    customer_id: str = "customer_id",
    timestamp: str | None = "timestamp",
    cuts: Sequence[float] = _CUTS,
    column: str | None = None,
    level: float = 0.95,
) -> pd.DataFrame:
    """A survey metric per value tier, and for NPS the value held by detractors.

    Parameters
    ----------
    metric
        ``"nps"``, ``"enps"``, ``"csat"`` (top-two-box of 1-5) or ``"ces"`` (mean of 1-7).
    answers
        Survey answers: the customer id column and the score column.
    values
        A value per customer (CLV, net profit ...), tiered with
        :func:`cvalue.segments.value_tiers`; every answering customer needs one.
    score
        The score column; by default the metric's name.
    customer_id, timestamp
        The answers' columns. For NPS a customer is a detractor when the latest answer (by
        ``timestamp``) is 0-6; without a timestamp column each customer may answer once.
    cuts, column
        The tiers' cuts and the column of a value table.
    level
        The confidence level of the intervals.

    Returns
    -------
    pandas.DataFrame
        One row per tier and a last row ``all``: ``answers``, ``customers_answering``,
        ``estimate``, ``ci_lower``, ``ci_upper`` (as :func:`nps`, :func:`csat`, :func:`ces`;
        NaN without answers) and ``value`` (the tier's total value); for NPS and eNPS also
        ``detractors`` (customers), ``detractor_value`` and ``detractor_value_share`` (of the
        row's value). The intervals treat answers as independent, which repeated answers of one
        customer are not quite. ``is_small_sample`` marks the rows with fewer than
        :data:`SMALL_SAMPLE` answers.

    Warns
    -----
    SmallSampleWarning
        Once, counting the rows with fewer than :data:`SMALL_SAMPLE` answers and naming the
        first few.
    """
    if metric not in _SCALES:
        raise SchemaError(f"metric must be one of {sorted(_SCALES)}, got {metric!r}")
    options = _ByValue(customer_id, timestamp, _check_level(level), _SCALES[metric])
    score = metric if score is None else score
    if not isinstance(answers, pd.DataFrame) or score not in answers or customer_id not in answers:
        found = (
            list(answers.columns) if isinstance(answers, pd.DataFrame) else type(answers).__name__
        )
        raise SchemaError(
            f"answers must be a DataFrame with columns {customer_id!r} and {score!r}; got {found}. "
            "Name them with customer_id= and score="
        )
    scores = _answers(answers[score], options.scale, _LABELS[metric])
    tiers = value_tiers(values, cuts=cuts, column=column)
    codes = _tier_of_answers(answers, customer_id, tiers.labels_)
    table = _per_tier(metric, scores, codes, answers[customer_id], tiers, options)
    if metric in ("nps", "enps"):
        table = _with_detractors(table, answers, score, options, tiers, values, column)
    labels = [str(label) for label in table.index]
    table["is_small_sample"] = flag_small(
        table["answers"], labels, subject=f"{_LABELS[metric]} by value tier", unit="answers",
        cells="tiers", fix="those intervals are wide: use fewer tiers or collect more answers",
    )  # fmt: skip
    return table


def _per_tier(
    metric: SurveyMetric,
    scores: FloatArray,
    codes: npt.NDArray[np.int64],
    customers: pd.Series,
    tiers: ValueTiers,
    options: _ByValue,
) -> pd.DataFrame:
    """Answers, customers answering, estimate and interval per tier, then for all answers."""
    labels = [*tiers.summary_.index, "all"]
    rows = []
    for code, _ in enumerate(labels):
        is_in = codes == code if code < len(labels) - 1 else np.ones(len(codes), dtype=np.bool_)
        estimate = _survey_estimate(metric, scores[is_in], options.scale, options.level)
        rows.append((int(is_in.sum()), int(customers[is_in].nunique()), *estimate))
    table = pd.DataFrame(
        rows,
        index=pd.Index(labels, name="tier", dtype="str"),
        columns=["answers", "customers_answering", "estimate", "ci_lower", "ci_upper"],
    )
    tier_values = tiers.summary_["value"].to_numpy(dtype=np.float64)
    table["value"] = np.append(tier_values, tier_values.sum())
    return table


def _with_detractors(
    table: pd.DataFrame,
    answers: pd.DataFrame,
    score: str,
    options: _ByValue,
    tiers: ValueTiers,
    values: pd.Series | pd.DataFrame,
    column: str | None,
) -> pd.DataFrame:
    """Add the detractors' count, value and share of value per tier and in all."""
    held = _detractor_value(answers, score, options, tiers.labels_, value_series(values, column))
    held = held.reindex(tiers.summary_.index, fill_value=0)
    detractors = np.append(held["detractors"].to_numpy(), held["detractors"].sum())
    value = np.append(held["detractor_value"].to_numpy(), held["detractor_value"].sum())
    with np.errstate(invalid="ignore", divide="ignore"):  # a tier worth 0: NaN share
        share = value / table["value"].to_numpy(dtype=np.float64)
    return table.assign(
        detractors=detractors.astype(np.int64), detractor_value=value, detractor_value_share=share
    )
