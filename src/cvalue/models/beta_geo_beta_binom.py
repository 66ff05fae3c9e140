"""The beta-geometric/beta-Bernoulli (BG/BB) model of discrete-time, non-contractual purchasing.

Fader, Hardie & Shang (2010), "Customer-base analysis in a discrete-time noncontractual setting",
*Marketing Science* 29(6), 1086-1108 (FHS below). At each of ``n`` transaction opportunities an
alive customer buys with probability ``p ~ Beta(alpha, beta)``; at the start of each opportunity
an alive customer dies with probability ``theta ~ Beta(gamma, delta)``. A customer's history is
``(x, t_x, n)``: ``frequency`` (opportunities with a purchase), ``recency`` (the last such
opportunity, 0 without any) and ``n_periods``.

Examples
--------
>>> from cvalue.datasets import load_donations
>>> model = BetaGeoBetaBinom().fit(load_donations())
>>> model.params_.round(3).tolist()
[1.204, 0.75, 0.657, 2.783]
>>> round(model.expected_purchases_new(horizon=11), 4)
3.3887
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, overload

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.special import betaln, digamma, gammaln, logsumexp, polygamma

from cvalue.errors import DataQualityError, SchemaError
from cvalue.models._base import (
    FloatArray,
    Model,
    Patterns,
    patterns_of,
    per_pattern,
    require_columns,
)
from cvalue.models._contract import keyword_options
from cvalue.models._curves import (
    BetaBinomCurves,
    Curves,
    distinct,
    float_column,
    just_acquired,
)
from cvalue.models._intervals import IntervalMethod, with_intervals
from cvalue.models.beta_geo import _pmf_given_history
from cvalue.units import Duration, Rate

if TYPE_CHECKING:
    from cvalue.models._mle import Objective

__all__ = ["BetaGeoBetaBinom"]

_COLUMNS = ("frequency", "recency", "n_periods")
_CHUNK_CELLS = 1 << 18  # (x, n) rows x opportunities evaluated at once: bounds the memory
_TAYLOR_RATIO = 0.02  # |gamma - 1| / z below which lgamma(z + gamma - 1) - lgamma(z) is a series
_DIRECT_TERMS = 64  # spans up to this many opportunities sum their log1p terms one by one
_BLOCK = 2048  # terms of a hypergeometric series summed at once
_MAX_TERMS = 1 << 22
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


def _history(values: dict[str, FloatArray]) -> tuple[FloatArray, FloatArray, FloatArray]:
    return values["frequency"], values["recency"], values["n_periods"]


def _check_histories(x: FloatArray, t_x: FloatArray, n: FloatArray, *, model: str) -> None:
    """Collect every violation of ``0 <= x <= t_x <= n`` (integers, ``x = 0`` iff ``t_x = 0``)."""
    rules = {
        "values must be finite whole numbers": ~(
            np.isfinite(x) & np.isfinite(t_x) & np.isfinite(n)
            & (x == np.round(x)) & (t_x == np.round(t_x)) & (n == np.round(n))
        ),
        "'frequency' is negative": x < 0,
        "'n_periods' is below 1": n < 1,
        "'recency' > 'n_periods'": t_x > n,
        "'frequency' > 'recency' (x purchases need x opportunities)": x > t_x,
        "'recency' > 0 with 'frequency' 0": (x == 0) & (t_x > 0),
    }  # fmt: skip
    problems = [f"{rule} in {int(bad.sum()):,} pattern(s)" for rule, bad in rules.items()
                if bad.any()]  # fmt: skip
    if problems:
        raise DataQualityError(
            f"{model}: {'; '.join(problems)}. A history is (frequency x, recency t_x, n_periods n) "
            "with 0 <= x <= t_x <= n counted in whole transaction opportunities"
        )


def _whole_periods(periods: float, span: object, name: str, what: str) -> int:
    """``periods`` (``span`` in the model's unit) as a whole number >= 0, or a clear error.

    Within 1e-9 of a whole number counts as whole, so that ``"12M"`` is exactly 1 year.
    """
    if not np.isfinite(periods) or periods < 0 or abs(periods - round(periods)) > 1e-9:
        raise SchemaError(
            f"{name} must be a whole number of {what} >= 0, got {span!r} ({periods!r} {what}); "
            "pass a count, or a duration that is a whole number of the model's unit"
        )
    return round(periods)


def _log_rising(a: float, k: FloatArray) -> FloatArray:
    """``log (a)_k = log G(a + k) - log G(a)`` for real ``k >= 0``, without cancellation.

    Written ``lgamma(k) - betaln(a, k)``: scipy's ``betaln`` keeps its digits for huge ``a``
    where the difference of two ``gammaln`` loses them all (at ``a = 1e8`` already), so a
    beta ratio ``B(a + x, b + y) / B(a, b) = (a)_x (b)_y / (a + b)_(x + y)`` stays exact for
    any parameter size.
    """
    steps = np.where(k > 0, k, 1.0)
    return np.asarray(np.where(k > 0, gammaln(steps) - betaln(a, steps), 0.0), dtype=np.float64)


def _log_rising_ratio(a: float | FloatArray, b: float | FloatArray, k: FloatArray) -> FloatArray:
    """``log[(a)_k / (b)_k] = betaln(b, k) - betaln(a, k)`` for real ``k >= 0``.

    The ``lgamma(k)`` of the two rising factorials cancel exactly, so this keeps its digits for
    huge ``a``, ``b`` and huge ``k`` alike (a survival ``B(alpha, beta + k) / B(alpha, beta)``
    is ``(beta)_k / (alpha + beta)_k``).
    """
    is_small = k < 1e-8  # first order in k (error k^2), where betaln(., k) ~ -log k is all noise
    steps = np.where(is_small, 1.0, k)
    small = np.where(is_small, k, 0.0) * (digamma(a) - digamma(b))
    return np.asarray(np.where(is_small, small, betaln(b, steps) - betaln(a, steps)),
                      dtype=np.float64)  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Tables:
    """``log (a)_k`` and ``psi(a + k)``, ``k = 0, 1, ...``, for each argument of FHS eq. (5).

    Every term of the likelihood is a sum of entries indexed by ``x``, by the last opportunity
    alive ``m`` or by ``m - x``, so the special functions are evaluated once per index rather
    than once per pattern and opportunity.
    """

    log_alpha: FloatArray  # log (alpha)_k
    log_beta: FloatArray  # log (beta)_k
    log_buy: FloatArray  # log (alpha + beta)_k
    log_delta: FloatArray  # log (delta)_k
    log_life: FloatArray  # log (gamma + delta)_k
    psi_alpha: FloatArray  # psi(alpha + k)
    psi_beta: FloatArray
    psi_buy: FloatArray
    psi_delta: FloatArray
    psi_life: FloatArray
    log_gamma: float
    psi_gamma: float
    psi_gamma_one: float  # psi(gamma + 1)
    shift: FloatArray  # d/d(each parameter) of -log B(alpha, beta) - log B(gamma, delta)


def _tables(params: FloatArray, size: int) -> _Tables:
    """The tables for ``k = 0 .. size + 1`` (the death terms reach ``(gamma + delta)_(m + 1)``)."""
    alpha, beta, gamma, delta = params
    k = np.arange(size + 2, dtype=np.float64)
    psi_buy, psi_life = digamma(alpha + beta), digamma(gamma + delta)
    return _Tables(
        _log_rising(alpha, k), _log_rising(beta, k), _log_rising(alpha + beta, k),
        _log_rising(delta, k), _log_rising(gamma + delta, k), digamma(alpha + k),
        digamma(beta + k), digamma(alpha + beta + k), digamma(delta + k),
        digamma(gamma + delta + k), float(np.log(gamma)), float(digamma(gamma)),
        float(digamma(gamma + 1.0)),
        np.array([digamma(alpha) - psi_buy, digamma(beta) - psi_buy, digamma(gamma) - psi_life,
                  digamma(delta) - psi_life]),
    )  # fmt: skip


def _alive_terms(table: _Tables, x: IntArray, n: IntArray) -> tuple[FloatArray, FloatArray]:
    """Log of "alive through opportunity n", FHS eq. (5), and its gradient (``len(x) x 4``).

    ``B(alpha + x, beta + n - x) / B(alpha, beta) * B(gamma, delta + n) / B(gamma, delta)``,
    with the beta ratios written as rising factorials: ``(a)_x (b)_y / (a + b)_(x + y)``.
    """
    value = (table.log_alpha[x] + table.log_beta[n - x] - table.log_buy[n]
             + table.log_delta[n] - table.log_life[n])  # fmt: skip
    gradient = np.stack(
        [table.psi_alpha[x] - table.psi_buy[n], table.psi_beta[n - x] - table.psi_buy[n],
         table.psi_gamma - table.psi_life[n], table.psi_delta[n] - table.psi_life[n]], axis=-1,
    ) - table.shift  # fmt: skip
    return value, gradient


def _death_terms(table: _Tables, x: IntArray, m: IntArray) -> tuple[FloatArray, list[FloatArray]]:
    """Log of "x purchases, alive through m, dead at m + 1", FHS eq. (5), and its gradient.

    ``B(alpha + x, beta + m - x) / B(alpha, beta) * B(gamma + 1, delta + m) / B(gamma, delta)``.
    """
    value = (table.log_alpha[x] + table.log_beta[m - x] - table.log_buy[m] + table.log_gamma
             + table.log_delta[m] - table.log_life[m + 1])  # fmt: skip
    gradient = [
        table.psi_alpha[x] - table.psi_buy[m] - table.shift[0],
        table.psi_beta[m - x] - table.psi_buy[m] - table.shift[1],
        table.psi_gamma_one - table.psi_life[m + 1] - table.shift[2],
        table.psi_delta[m] - table.psi_life[m + 1] - table.shift[3],
    ]
    return value, gradient


def _suffix_mean(values: FloatArray, derivative: FloatArray, is_used: BoolArray,
                 suffix: FloatArray) -> FloatArray:  # fmt: skip
    """Along each row, the ``exp(values)``-weighted mean of ``derivative`` over columns ``<= j``.

    The derivatives are shifted to be >= 0 (the weights sum to 1, so a shift passes through
    the mean unchanged), which lets their weighted sums accumulate in log space like the
    values themselves.
    """
    floor = np.min(np.where(is_used, derivative, np.inf), axis=1, keepdims=True)
    excess = np.where(is_used, derivative - floor, 0.0)
    log_excess = np.log(excess, out=np.full_like(excess, -np.inf), where=excess > 0.0)
    weighted = np.logaddexp.accumulate(values + log_excess, axis=1)
    return np.asarray(floor + np.exp(weighted - suffix), dtype=np.float64)


def _death_suffixes(
    tables: _Tables, x: IntArray, n: IntArray, width: int
) -> tuple[FloatArray, FloatArray]:
    """For each ``(x, n)`` row, the death terms summed over ``m = n - 1 - j .. n - 1``.

    Column ``j`` holds ``log sum_{m = n - 1 - j}^{n - 1}`` of the terms (a cumulative
    log-sum-exp from the last opportunity backwards), so a pattern with recency ``t_x`` reads
    its sum over ``i = 0 .. n - t_x - 1`` at column ``n - 1 - t_x``. Also returns the gradient
    of each such log-sum (``4 x rows x width``).
    """
    m = n[:, None] - 1 - np.arange(width)[None, :]
    is_used = m >= x[:, None]
    values, derivatives = _death_terms(tables, x[:, None], np.where(is_used, m, x[:, None]))
    values = np.where(is_used, values, -np.inf)
    suffix = np.logaddexp.accumulate(values, axis=1)
    means = np.stack([_suffix_mean(values, d, is_used, suffix) for d in derivatives])
    return suffix, means


@dataclass(frozen=True, slots=True)
class _Block:
    """Rows of distinct ``(x, n)`` evaluated together, and the patterns that read them."""

    rows: IntArray  # indices into the layout's distinct (x, n)
    width: int  # the widest row's number of death terms, n - x
    patterns: IntArray  # patterns with at least one death term among these rows
    row: IntArray  # each such pattern's row within the block
    column: IntArray  # and its column, n - 1 - t_x


@dataclass(frozen=True, slots=True)
class _Layout:
    """Where each pattern's terms are: its distinct ``(x, n)`` and its death-sum column.

    Built once per data set, so that a fit evaluates the likelihood many times without
    regrouping the patterns.
    """

    size: int  # the largest n
    x: IntArray  # each distinct (x, n)
    n: IntArray
    group: IntArray  # each pattern's distinct (x, n)
    blocks: tuple[_Block, ...]


def _layout(x: FloatArray, t_x: FloatArray, n: FloatArray) -> _Layout:
    """Group patterns by ``(x, n)``: the death terms depend on ``x`` and ``m`` only."""
    counts, recency, periods = (np.asarray(v, dtype=np.int64) for v in (x, t_x, n))
    size = int(periods.max()) if len(periods) else 0
    keys, group = np.unique(counts * (size + 1) + periods, return_inverse=True)
    group = group.ravel()
    distinct_x, distinct_n = keys // (size + 1), keys % (size + 1)
    blocks = _blocks(distinct_n - distinct_x, group, periods - 1 - recency)
    return _Layout(size, distinct_x, distinct_n, group, blocks)


def _blocks(width: IntArray, group: IntArray, column: IntArray) -> tuple[_Block, ...]:
    """Rows sorted widest first and cut so that a block holds about ``_CHUNK_CELLS`` cells."""
    order = np.argsort(-width, kind="stable")
    order = order[width[order] > 0]
    rank = np.full(len(width), len(order))
    rank[order] = np.arange(len(order))
    with_deaths = np.flatnonzero(column >= 0)  # t_x < n, so n - x > 0 and the row is ranked
    with_deaths = with_deaths[np.argsort(rank[group[with_deaths]], kind="stable")]
    sorted_rank = rank[group[with_deaths]]
    blocks, start = [], 0
    while start < len(order):
        block_width = int(width[order[start]])
        stop = min(len(order), start + max(1, _CHUNK_CELLS // block_width))
        low, high = np.searchsorted(sorted_rank, [start, stop])
        patterns = with_deaths[low:high]
        blocks.append(_Block(order[start:stop], block_width, patterns,
                             sorted_rank[low:high] - start, column[patterns]))  # fmt: skip
        start = stop
    return tuple(blocks)


def _evaluate(params: FloatArray, layout: _Layout) -> tuple[FloatArray, FloatArray]:
    """Per-pattern log-likelihood, FHS eq. (5), and its gradient in the natural parameters.

    ``log L = log[alive + sum_{i=0}^{n - t_x - 1} death(x, t_x + i)]``: the alive term comes
    once per distinct ``(x, n)``, the death sums from :func:`_death_suffixes`, and the
    gradient is the likelihood-weighted mean of the terms' gradients.
    """
    tables = _tables(params, layout.size)
    alive, alive_gradient = _alive_terms(tables, layout.x, layout.n)
    alive, alive_gradient = alive[layout.group], alive_gradient[layout.group]
    death = np.full(len(alive), -np.inf)
    death_gradient = np.zeros_like(alive_gradient)
    for block in layout.blocks:
        suffix, means = _death_suffixes(
            tables, layout.x[block.rows], layout.n[block.rows], block.width
        )  # fmt: skip
        death[block.patterns] = suffix[block.row, block.column]
        death_gradient[block.patterns] = means[:, block.row, block.column].T
    total = np.logaddexp(alive, death)
    gradient = (np.exp(alive - total)[:, None] * alive_gradient
                + np.exp(death - total)[:, None] * death_gradient)  # fmt: skip
    return total, gradient


def _log_likelihood(
    params: FloatArray, x: FloatArray, t_x: FloatArray, n: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Per-pattern log-likelihood, FHS eq. (5), and its gradient in the natural parameters."""
    return _evaluate(params, _layout(x, t_x, n))


def _log_alive_next(
    params: FloatArray, x: FloatArray, n: FloatArray, ahead: FloatArray | float
) -> FloatArray:
    """Log of the numerator of P(alive in opportunity n + ahead), FHS eq. (11)."""
    alpha, beta, gamma, delta = params
    return np.asarray(
        _log_rising(alpha, x) + _log_rising(beta, n - x) - _log_rising(alpha + beta, n)
        + _log_rising(delta, n + ahead) - _log_rising(gamma + delta, n + ahead),
        dtype=np.float64,
    )  # fmt: skip


def _log_gamma_shift(z: FloatArray, eps: float) -> FloatArray:
    """``lgamma(z + eps) - lgamma(z)`` by its Taylor series to ``eps^6``.

    The remainder is about ``eps^7 |psi^(6)(z)| / 7! <= 0.15 |eps| (eps / z)^6``: below
    ``1e-11 |eps|`` while ``|eps| <= _TAYLOR_RATIO * z`` and ``z >= 1``, where it is used.
    """
    return np.asarray(
        eps * digamma(z)
        + sum(eps**k / math.factorial(k) * polygamma(k - 1, z) for k in range(2, 7)),
        dtype=np.float64,
    )


def _alive_sum(gamma: float, delta: float, start: FloatArray, stop: FloatArray) -> FloatArray:
    """``sum_{t = start + 1}^{stop} B(gamma, delta + t) / B(gamma, delta + start)``.

    The expected number of opportunities alive in ``(start, stop]`` given alive at ``start``,
    the telescoping sum behind FHS eqs. (8) and (13): ``(delta + s) / (gamma - 1) * (1 - R)``
    with ``R = G(1 + delta + T) G(gamma + delta + s) / [G(gamma + delta + T) G(1 + delta + s)]``.
    ``1 - R`` is small after a long history or for ``gamma`` near 1, so ``log R`` is taken
    where it keeps its digits: spans of at most ``_DIRECT_TERMS`` opportunities sum exact
    ``log1p`` terms (:func:`_alive_sum_direct`); longer ones use the Taylor series of
    ``lgamma(z + gamma - 1) - lgamma(z)`` where ``|gamma - 1|`` is small against
    ``z = delta + s + 1``, and ``betaln`` elsewhere. Checked against 40-digit arithmetic to
    about 1e-10 relative (tests/models/test_beta_geo_beta_binom.py).
    """
    eps = gamma - 1.0
    low, high = delta + start, delta + stop
    if len(low) == 0 or np.max(stop - start) <= _DIRECT_TERMS:
        return _alive_sum_direct(gamma, low, stop - start)
    if eps == 0.0:
        return np.asarray(low * (digamma(high + 1.0) - digamma(low + 1.0)), dtype=np.float64)
    is_taylor = abs(eps) <= _TAYLOR_RATIO * (low + 1.0)
    log_ratio = np.where(
        is_taylor,
        _log_gamma_shift(low + 1.0, eps) - _log_gamma_shift(high + 1.0, eps),
        betaln(high, gamma) - betaln(low, gamma) + np.log(high / low),
    )  # fmt: skip
    return np.asarray(low * -np.expm1(log_ratio) / eps, dtype=np.float64)


def _alive_sum_direct(gamma: float, low: FloatArray, steps: FloatArray) -> FloatArray:
    """:func:`_alive_sum` over ``steps`` opportunities from ``low = delta + start``.

    ``R = prod_{j < steps} (low + 1 + j) / (low + gamma + j)``, so ``log R`` is the sum of
    ``log1p(-(gamma - 1) / (low + gamma + j))`` and ``(1 - R) / (gamma - 1)`` keeps every
    digit for any ``gamma`` (at ``gamma = 1`` it is ``sum_j 1 / (low + 1 + j)``).
    """
    eps = gamma - 1.0
    j = np.arange(int(np.max(steps, initial=0.0)), dtype=np.float64)[None, :]
    is_used = j < steps[:, None]
    denominators = low[:, None] + gamma + j
    if eps == 0.0:
        return np.asarray(low * np.sum(np.where(is_used, 1.0 / denominators, 0.0), axis=1),
                          dtype=np.float64)  # fmt: skip
    log_ratio = np.sum(np.where(is_used, np.log1p(-eps / denominators), 0.0), axis=1)
    return np.asarray(low * -np.expm1(log_ratio) / eps, dtype=np.float64)


def _hyp2f1_one(b: FloatArray, gap: float, z: float) -> FloatArray:
    """``2F1(1, b; b + gap; z)`` for ``gap > 0`` and ``0 < z < 1`` by direct summation.

    The terms ``(b)_k / (b + gap)_k z^k`` fall at least as fast as ``z^k``; their logs are
    cumulative sums of ``log1p(-gap / (b + gap + j)) + log z``, so nothing over- or underflows
    where scipy's ``hyp2f1`` returns NaN (tiny ``gap``, large ``b``). Summed in blocks until
    the last term is below 1e-17 of the sum, and for at most ``_MAX_TERMS`` terms, after which
    the rest is bounded by the geometric series ``term / (1 - z)``.
    """
    total = np.zeros(len(b))
    offset = np.zeros(len(b))  # log of the first term of the block
    log_z = np.log(z)
    for start in range(0, _MAX_TERMS, _BLOCK):
        j = np.arange(start, start + _BLOCK, dtype=np.float64)[None, :]
        steps = np.log1p(-gap / (b[:, None] + gap + j)) + log_z
        log_terms = offset[:, None] + np.cumsum(steps, axis=1) - steps
        total += np.sum(np.exp(log_terms), axis=1)
        offset = log_terms[:, -1] + steps[:, -1]
        if np.all(np.exp(offset) < 1e-17 * total):
            return total
    return np.asarray(total + np.exp(offset) / -np.expm1(log_z), dtype=np.float64)


def _pmf_alive_now(
    counts: FloatArray, periods: float, alpha: FloatArray, beta: FloatArray, gamma: float,
    delta: FloatArray,
) -> FloatArray:  # fmt: skip
    """P(X(n) = x) of a customer alive now, FHS eq. (7): ``(keys, counts)``.

    ``C(n, x) B(alpha + x, beta + n - x) / B(alpha, beta) * B(gamma, delta + n) / B(gamma,
    delta) + sum_{i=x}^{n-1} C(i, x) B(alpha + x, beta + i - x) / B(alpha, beta)
    * B(gamma + 1, delta + i) / B(gamma, delta)``, summed as a log-sum-exp; ``x`` outside
    ``0 .. n`` or not whole has probability 0. The parameters are one per key: a new
    customer's, or the posterior of a customer alive now (``alpha``, ``beta``, ``delta``).
    """
    alpha, beta, delta = (values[:, None, None] for values in (alpha, beta, delta))
    is_possible = (counts >= 0) & (counts <= periods) & (counts == np.round(counts))
    c2 = np.where(is_possible, counts, 0.0)[None, :, None]
    base = betaln(alpha, beta) + betaln(gamma, delta)
    alive = (-np.log1p(periods) - betaln(periods - c2 + 1.0, c2 + 1.0)
             + betaln(gamma, delta + periods) + betaln(alpha + c2, beta + periods - c2)
             - base)  # fmt: skip
    i = np.maximum(np.arange(int(periods), dtype=np.float64)[None, None, :], c2)
    died = (-np.log1p(i) - betaln(i - c2 + 1.0, c2 + 1.0) + betaln(gamma + 1.0, delta + i)
            + betaln(alpha + c2, beta + i - c2) - base)  # fmt: skip
    is_used = np.arange(int(periods))[None, None, :] >= c2
    terms = np.concatenate(
        [alive, np.where(is_used, died, -np.inf)], axis=-1)  # fmt: skip
    return np.asarray(np.where(is_possible, np.exp(logsumexp(terms, axis=-1)), 0.0),
                      dtype=np.float64)  # fmt: skip


class BetaGeoBetaBinom(Model):
    """The BG/BB model of Fader, Hardie & Shang (2010).

    Fits on a summary with columns ``frequency``, ``recency`` and ``n_periods`` (whole
    transaction opportunities) and, for an already-compressed table such as
    :func:`cvalue.datasets.load_donations`, a ``weight`` column of customers per row. Time spans
    are counts of opportunities (or durations in the fitted ``unit``, which must come out whole).

    Parameters
    ----------
    n_starts
        How many starting points the optimiser tries.
    penalizer
        L2 penalty on the natural parameters; 0 for plain maximum likelihood.
    """

    _param_names: ClassVar[tuple[str, ...]] = ("alpha", "beta", "gamma", "delta")
    age_column: ClassVar[str] = "n_periods"
    summary_columns: ClassVar[tuple[str, ...]] = ("frequency", "recency", "n_periods")
    discrete_time: ClassVar[bool] = True
    contractual: ClassVar[bool] = False

    # --- fitting ---------------------------------------------------------------------------

    def _prepare(self, data: pd.DataFrame) -> Patterns:
        patterns = patterns_of(data, _COLUMNS, model=type(self).__name__)
        _check_histories(*_history(patterns.columns), model=type(self).__name__)
        weights = patterns.weights
        if np.any(~np.isfinite(weights) | (weights < 0)):
            raise DataQualityError(
                f"{type(self).__name__}: 'weight' must be finite and >= 0 in every row; "
                f"{int(np.sum(~(weights >= 0))):,} row(s) are not. It counts customers per row"
            )
        return patterns

    def _objective(self, patterns: Patterns) -> Objective:
        layout = _layout(*_history(patterns.columns))
        weights = patterns.weights

        def objective(params: FloatArray) -> tuple[float, FloatArray]:
            values, gradient = _evaluate(params, layout)
            return float(weights @ values), weights @ gradient

        return objective

    def _starting_points(self, patterns: Patterns) -> list[FloatArray]:
        return [np.array(start) for start in (
            [1.0, 1.0, 1.0, 1.0], [1.0, 0.5, 0.5, 3.0], [3.0, 3.0, 0.3, 0.3], [0.3, 0.3, 3.0, 3.0]
        )]  # fmt: skip

    def log_likelihood(self, data: pd.DataFrame) -> pd.Series:
        """Each customer's log-likelihood at the fitted parameters, FHS eq. (5)."""
        values, inverse = self._patterns(data)
        return pd.Series(
            _log_likelihood(self._params(), *_history(values))[0][inverse], index=data.index,
            name="log_likelihood",
        )  # fmt: skip

    # --- predictions -----------------------------------------------------------------------

    def _params(self) -> FloatArray:
        self._check_fitted()
        params: FloatArray = np.asarray(self.params_.to_numpy(), dtype=np.float64)
        return params

    def _patterns(self, data: pd.DataFrame) -> tuple[dict[str, FloatArray], npt.NDArray[np.intp]]:
        self._check_fitted()
        values, inverse = per_pattern(data, _COLUMNS, model=type(self).__name__)
        _check_histories(*_history(values), model=type(self).__name__)
        return values, inverse.astype(np.intp)

    def _periods(self, span: float | Duration | str, name: str) -> float:
        """A number of opportunities, from a count or a duration in the fitted unit."""
        return float(_whole_periods(self._in_units(span), span, name, "transaction opportunities"))

    def _p_alive_patterns(self, values: dict[str, FloatArray], ahead: float) -> FloatArray:
        x, t_x, n = _history(values)
        params = self._params()
        log_alive = _log_alive_next(params, x, n, ahead)
        return np.asarray(
            np.minimum(np.exp(log_alive - _log_likelihood(params, x, t_x, n)[0]), 1.0),
            dtype=np.float64,
        )  # fmt: skip

    def curves(self, data: pd.DataFrame | None = None) -> Curves:
        """Survival and cumulative purchases over the opportunities ahead, per distinct ``n``.

        Row scales ``P(alive) (alpha + x) / (alpha + beta + n)``; ``data=None`` is a customer
        just acquired (``n = 0``): alive at opportunity 1 with ``delta / (gamma + delta)``,
        buying with ``alpha / (alpha + beta)`` (Fader, Hardie & Shang 2010, eq. 8's terms).
        """
        alpha, beta, gamma, delta = (float(v) for v in self._params())
        if data is None:
            first, zero, one = just_acquired()
            alive = one * delta / (gamma + delta)
            return BetaBinomCurves(first, alive * alpha / (alpha + beta), alive, (zero,),
                                   gamma, delta)  # fmt: skip
        require_columns(data, self.summary_columns, type(self).__name__)
        found = self.p_alive(data).to_numpy(dtype=np.float64)
        x, n = float_column(data, "frequency"), float_column(data, "n_periods")
        group, keys = distinct(n)
        scale = found * (alpha + x) / (alpha + beta + n)
        return BetaBinomCurves(group, scale, found, keys, gamma, delta)

    def p_alive(self, data: pd.DataFrame) -> pd.Series:
        """P(alive in opportunity n + 1 | x, t_x, n), FHS eq. (11).

        The probability that the customer survives into the next opportunity, which is also the
        probability that drives every forecast.
        """
        values, inverse = self._patterns(data)
        return pd.Series(self._p_alive_patterns(values, 1.0)[inverse], index=data.index,
                         name="p_alive")  # fmt: skip

    def _expected_patterns(self, values: dict[str, FloatArray], periods: float) -> FloatArray:
        x, t_x, n = _history(values)
        alpha, beta, gamma, delta = params = self._params()
        log_buy = np.log((alpha + x) / (alpha + beta + n))
        log_alive = _log_alive_next(params, x, n, 0.0) - _log_likelihood(params, x, t_x, n)[0]
        alive_next = _alive_sum(gamma, delta, n, n + periods)
        return np.asarray(np.exp(log_buy + np.minimum(log_alive, 0.0)) * alive_next,
                          dtype=np.float64)  # fmt: skip

    @keyword_options(
        "horizon", leading="data", old="n, data", new="data, horizon=n", renamed={"n": "horizon"}
    )
    def expected_purchases(
        self, data: pd.DataFrame, *, horizon: float | Duration | str
    ) -> pd.Series:
        """Expected purchases in the next ``horizon`` opportunities given a history, FHS eq. (13).

        Computed as ``(alpha + x) / (alpha + beta + n) * P(alive at n | history) *
        sum_{s=1}^{n*} P(alive at n + s | alive at n)``, which is eq. (13) rearranged so that
        ``gamma = 1`` needs no special case.
        """
        periods = self._periods(horizon, "horizon")
        values, inverse = self._patterns(data)
        return pd.Series(self._expected_patterns(values, periods)[inverse], index=data.index,
                         name="expected_purchases")  # fmt: skip

    @keyword_options("horizon", leading=None, old="n", new="horizon=n", renamed={"n": "horizon"})
    def expected_purchases_new(self, *, horizon: float | Duration | str) -> float:
        """E[X(n)] for a customer with no history, FHS eq. (8), ``n`` the ``horizon``.

        ``alpha / (alpha + beta) * delta / (gamma - 1) * [1 - G(gamma + delta) G(1 + delta + n)
        / (G(gamma + delta + n) G(1 + delta))]``.
        """
        periods = self._periods(horizon, "horizon")
        alpha, beta, gamma, delta = self._params()
        zero = np.zeros(1)
        return float(alpha / (alpha + beta) * _alive_sum(gamma, delta, zero, zero + periods)[0])

    @overload
    def purchase_pmf(
        self, counts: int, *, horizon: float | Duration | str, data: None = None
    ) -> float: ...

    @overload
    def purchase_pmf(
        self, counts: npt.ArrayLike, *, horizon: float | Duration | str, data: pd.DataFrame
    ) -> pd.DataFrame: ...

    @overload
    def purchase_pmf(
        self, counts: npt.ArrayLike, *, horizon: float | Duration | str,
        data: pd.DataFrame | None = None,
    ) -> float | FloatArray | pd.DataFrame: ...  # fmt: skip

    @keyword_options(
        "horizon", leading="counts", old="x, n", new="counts, horizon=n",
        renamed={"x": "counts", "n": "horizon"},
    )  # fmt: skip
    def purchase_pmf(
        self, counts: npt.ArrayLike, *, horizon: float | Duration | str,
        data: pd.DataFrame | None = None,
    ) -> float | FloatArray | pd.DataFrame:  # fmt: skip
        """P(X(n) = x) for a customer with no history, or P(X(n, n + n*) = x* | x, t_x, n).

        ``x`` (``x*``) is ``counts``, ``n`` (``n*``) the ``horizon``. Without ``data``: FHS
        eq. (7) (:func:`_pmf_alive_now`); a scalar count gives a float, an array an array.

        Given each history in ``data`` (a DataFrame indexed like ``data``, one column per
        count): FHS's conditional distribution (their appendix), ``(1 - P(alive at n)) [x* = 0]
        + P(alive at n) P_new(x*)``, where ``P(alive at n) = B(alpha + x, beta + n - x) B(gamma,
        delta + n) / (B(alpha, beta) B(gamma, delta) L)`` and ``P_new`` is eq. (7) at the
        posterior given alive at ``n``: ``alpha + x``, ``beta + n - x``, ``gamma``, ``delta + n``.
        It is computed once per distinct ``(x, n)``.
        """
        periods = self._periods(horizon, "horizon")
        asked = np.asarray(counts, dtype=np.float64)
        flat = np.atleast_1d(asked).ravel()
        alpha, beta, gamma, delta = self._params()
        if data is not None:
            return self._pmf_given_history(flat, periods, data)
        one = np.ones(1)
        found = _pmf_alive_now(flat, periods, one * alpha, one * beta, gamma, one * delta)[0]
        return float(found[0]) if asked.ndim == 0 else found

    def _pmf_given_history(
        self, counts: FloatArray, periods: float, data: pd.DataFrame
    ) -> pd.DataFrame:
        """The conditional pmf of each row of ``data`` (:meth:`purchase_pmf`)."""
        values, inverse = self._patterns(data)
        x, t_x, n = _history(values)
        params = self._params()
        alpha, beta, gamma, delta = (float(v) for v in params)
        log_alive = _log_alive_next(params, x, n, 0.0) - _log_likelihood(params, x, t_x, n)[0]
        group, (x1, n1) = distinct(x, n)
        table = np.empty((len(x1), len(counts)))
        step = max(1, _CHUNK_CELLS // max(len(counts) * (int(periods) + 1), 1))
        for start in range(0, len(x1), step):
            keys = slice(start, start + step)
            x2, n2 = x1[keys], n1[keys]
            table[keys] = _pmf_alive_now(counts, periods, alpha + x2, beta + n2 - x2, gamma,
                                         delta + n2)  # fmt: skip
        alive = np.exp(np.minimum(log_alive, 0.0))[inverse]
        return _pmf_given_history(alive, table, group[inverse], counts, data.index)

    @keyword_options(
        "discount", leading="data", old="discount_rate, data", new="data, discount=discount_rate",
        renamed={"discount_rate": "discount"},
    )  # fmt: skip
    def dert(self, data: pd.DataFrame, *, discount: Rate | float) -> pd.Series:
        """Discounted expected residual transactions, FHS eq. (14).

        ``DERT = B(alpha + x + 1, beta + n - x) / B(alpha, beta) * B(gamma, delta + n + 1)
        / [B(gamma, delta) (1 + d)] * 2F1(1, delta + n + 1; gamma + delta + n + 1; 1 / (1 + d))
        / L``, with ``d`` the discount rate per opportunity: a float per opportunity, or a
        :class:`~cvalue.units.Rate` converted to the fitted unit.
        """
        rate = self._discount_rate(discount)
        values, inverse = self._patterns(data)
        x, t_x, n = _history(values)
        alpha, beta, gamma, delta = params = self._params()
        log_alive = (_log_alive_next(params, x, n, 1.0)
                     - _log_likelihood(params, x, t_x, n)[0])  # fmt: skip
        buy = (alpha + x) / (alpha + beta + n)
        lengths, where = np.unique(n, return_inverse=True)
        tail = _hyp2f1_one(delta + lengths + 1.0, gamma, 1.0 / (1.0 + rate))[where]
        found = buy * np.exp(np.minimum(log_alive, 0.0)) * tail / (1.0 + rate)
        return pd.Series(np.asarray(found, dtype=np.float64)[inverse], index=data.index,
                         name="dert")  # fmt: skip

    @keyword_options("horizon", leading="data", old="data, horizon", new="data, horizon=horizon")
    def predict(
        self, data: pd.DataFrame, *, horizon: float | Duration | str, interval: float | None = None,
        method: IntervalMethod = "draws", n_draws: int = 200,
        rng: np.random.Generator | None = None,
    ) -> pd.DataFrame:  # fmt: skip
        """P(alive) and expected purchases over ``horizon`` opportunities, by customer.

        ``interval`` (such as 0.9) adds per-customer bounds: see :func:`with_intervals`.
        """
        periods = self._periods(horizon, "horizon")
        values, inverse = self._patterns(data)
        scored = pd.DataFrame(
            {"p_alive": self._p_alive_patterns(values, 1.0)[inverse],
             "expected_purchases": self._expected_patterns(values, periods)[inverse]},
            index=data.index,
        )  # fmt: skip
        return with_intervals(self, data, scored, horizon=horizon, level=interval, method=method,
                              n_draws=n_draws, rng=rng)  # fmt: skip

    # --- simulation ------------------------------------------------------------------------

    @keyword_options("rng", leading=None, old="n_customers, n_periods=n",
                     new="n_customers, T=n", renamed={"n_periods": "T"})  # fmt: skip
    def simulate(
        self, n_customers: int, T: int | Duration | str, *, rng: np.random.Generator
    ) -> pd.DataFrame:
        """Histories of ``n_customers`` new customers over ``T`` opportunities.

        Exact and vectorised: the opportunities alive are ``min(G - 1, n)`` with
        ``G ~ Geometric(theta)``; the last purchase is ``K ~ Geometric(p) - 1`` opportunities
        before the end of the alive span, and the purchases before it are binomial.

        Parameters
        ----------
        n_customers
            How many customers.
        T
            The observation span (the ``T`` of every model's ``simulate``): a number of
            opportunities, or a duration in the fitted unit (``"6y"`` for a yearly model) that is
            a whole number of them.
        rng
            The random generator.

        Returns
        -------
        pandas.DataFrame
            ``frequency``, ``recency`` and ``n_periods``, the columns :meth:`fit` reads; its
            ``attrs["unit"]`` is the model's unit when known.
        """
        length = int(self._periods(T, "T"))
        if length < 1:
            raise SchemaError(f"T must be at least 1 opportunity, got {T!r}")
        alpha, beta, gamma, delta = self._params()
        tiny = np.finfo(np.float64).tiny
        p = np.clip(rng.beta(alpha, beta, n_customers), tiny, 1.0)
        theta = np.clip(rng.beta(gamma, delta, n_customers), tiny, 1.0)
        cap = np.int64(length) + 1
        alive = np.minimum(np.minimum(rng.geometric(theta), cap) - 1, length)
        gap = np.minimum(rng.geometric(p), cap) - 1
        has_bought = gap < alive
        recency = np.where(has_bought, alive - gap, 0)
        earlier = rng.binomial(np.maximum(recency - 1, 0), p)
        frequency = np.where(has_bought, earlier + 1, 0)
        simulated = pd.DataFrame(
            {"frequency": frequency.astype(np.int64), "recency": recency.astype(np.int64),
             "n_periods": np.full(n_customers, length, dtype=np.int64)},
        )  # fmt: skip
        if self.unit_ is not None:
            simulated.attrs["unit"] = self.unit_.value
        return simulated
