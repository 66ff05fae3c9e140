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
>>> round(model.expected_purchases_new(11), 4)
3.3887
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.special import betaln, digamma, gammaln, logsumexp, polygamma

from cvalue.errors import DataQualityError, SchemaError
from cvalue.models._base import FloatArray, Model, Patterns, patterns_of, per_pattern
from cvalue.units import Duration, Rate

if TYPE_CHECKING:
    from cvalue.models._mle import Objective

__all__ = ["BetaGeoBetaBinom"]

_COLUMNS = ("frequency", "recency", "n_periods")
_CHUNK_CELLS = 2_000_000  # patterns x opportunities evaluated at once: bounds the memory
_NEAR_ONE = 1e-4  # |gamma - 1| below which the closed forms switch to their Taylor expansion
_BLOCK = 2048  # terms of a hypergeometric series summed at once
_MAX_TERMS = 1 << 22


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


def _log_rising(a: float, k: FloatArray) -> FloatArray:
    """``log (a)_k = log G(a + k) - log G(a)`` for real ``k >= 0``, without cancellation.

    Written ``lgamma(k) - betaln(a, k)``: scipy's ``betaln`` keeps its digits for huge ``a``
    where the difference of two ``gammaln`` loses them all (at ``a = 1e8`` already), so a
    beta ratio ``B(a + x, b + y) / B(a, b) = (a)_x (b)_y / (a + b)_(x + y)`` stays exact for
    any parameter size.
    """
    steps = np.where(k > 0, k, 1.0)
    return np.asarray(np.where(k > 0, gammaln(steps) - betaln(a, steps), 0.0), dtype=np.float64)


def _log_rising_ratio(a: float, b: float, k: FloatArray) -> FloatArray:
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


def _log_terms(
    params: FloatArray, x: FloatArray, t_x: FloatArray, n: FloatArray
) -> tuple[FloatArray, list[FloatArray]]:
    """The log terms of the likelihood, FHS eq. (5), and their derivatives in each parameter.

    Column 0 is "alive through n"; column ``1 + i`` is "died after opportunity ``t_x + i``",
    ``i = 0 .. n - t_x - 1`` (later columns are ``-inf``).
    """
    alpha, beta, gamma, delta = params
    width = int(np.max(n - t_x)) if len(n) else 0
    i = np.arange(width, dtype=np.float64)[None, :]
    x2, t2, n2 = x[:, None], t_x[:, None], n[:, None]
    last = t2 + i  # the last opportunity alive
    is_used = i < (n2 - t2)
    # B(a + x, b + y) / B(a, b) = (a)_x (b)_y / (a + b)_(x + y), and likewise for (gamma, delta)
    buys = _log_rising(alpha, x2)
    alive = (buys + _log_rising(beta, n2 - x2) - _log_rising(alpha + beta, n2)
             + _log_rising(delta, n2) - _log_rising(gamma + delta, n2))  # fmt: skip
    died = (buys + _log_rising(beta, last - x2) - _log_rising(alpha + beta, last) + np.log(gamma)
            + _log_rising(delta, last) - _log_rising(gamma + delta, last + 1.0))  # fmt: skip
    terms = np.concatenate([alive, np.where(is_used, died, -np.inf)], axis=1)
    psi_ab, psi_gd = digamma(alpha + beta), digamma(gamma + delta)
    shift = {
        "alpha": digamma(alpha) - psi_ab, "beta": digamma(beta) - psi_ab,
        "gamma": digamma(gamma) - psi_gd, "delta": digamma(delta) - psi_gd,
    }  # fmt: skip
    total_alive, total_died = digamma(alpha + beta + n2), digamma(alpha + beta + last)
    life_alive, life_died = digamma(gamma + delta + n2), digamma(gamma + delta + 1.0 + last)
    d_alpha = np.concatenate(
        [digamma(alpha + x2) - total_alive, digamma(alpha + x2) - total_died], axis=1
    ) - shift["alpha"]  # fmt: skip
    d_beta = np.concatenate(
        [digamma(beta + n2 - x2) - total_alive, digamma(beta + last - x2) - total_died], axis=1
    ) - shift["beta"]  # fmt: skip
    d_gamma = np.concatenate(
        [digamma(gamma) - life_alive, np.broadcast_to(digamma(gamma + 1.0) - life_died,
                                                      died.shape)], axis=1
    ) - shift["gamma"]  # fmt: skip
    d_delta = np.concatenate(
        [digamma(delta + n2) - life_alive, np.broadcast_to(digamma(delta + last) - life_died,
                                                           died.shape)], axis=1
    ) - shift["delta"]  # fmt: skip
    return terms, [d_alpha, d_beta, d_gamma, d_delta]


def _chunks(n_rows: int, width: int) -> list[slice]:
    step = max(1, _CHUNK_CELLS // max(1, width + 1))
    return [slice(start, start + step) for start in range(0, n_rows, step)]


def _log_likelihood(
    params: FloatArray, x: FloatArray, t_x: FloatArray, n: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Per-pattern log-likelihood, FHS eq. (5), and its gradient in the natural parameters.

    The sum over the opportunities after ``t_x`` is a log-sum-exp of the terms, so no term
    underflows; the gradient is the softmax-weighted mean of the terms' gradients.
    """
    values = np.empty(len(x))
    gradient = np.empty((len(x), 4))
    width = int(np.max(n - t_x)) if len(n) else 0
    for rows in _chunks(len(x), width):
        terms, derivatives = _log_terms(params, x[rows], t_x[rows], n[rows])
        total = logsumexp(terms, axis=1)
        shares = np.exp(terms - total[:, None])
        values[rows] = total
        gradient[rows] = np.stack([np.sum(shares * d, axis=1) for d in derivatives], axis=1)
    return values, gradient


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


def _log_gamma_shift(z: FloatArray | float, eps: float) -> FloatArray:
    """``lgamma(z + eps) - lgamma(z)`` for small ``eps`` by a Taylor series (error eps^5)."""
    return np.asarray(
        eps * digamma(z) + eps**2 / 2 * polygamma(1, z) + eps**3 / 6 * polygamma(2, z)
        + eps**4 / 24 * polygamma(3, z),
        dtype=np.float64,
    )  # fmt: skip


def _alive_sum(gamma: float, delta: float, start: FloatArray, stop: FloatArray) -> FloatArray:
    """``sum_{t = start + 1}^{stop} B(gamma, delta + t) / B(gamma, delta + start)``.

    The expected number of opportunities alive in ``(start, stop]`` given alive at ``start``,
    the telescoping sum behind FHS eqs. (8) and (13): ``(delta + s) / (gamma - 1) * (1 - R)``
    with ``R = G(1 + delta + T) G(gamma + delta + s) / [G(gamma + delta + T) G(1 + delta + s)]``.
    ``log R`` comes from ``betaln`` (accurate for large arguments), and for ``gamma`` within
    ``_NEAR_ONE`` of 1 from a Taylor series, so that ``gamma = 1`` loses no digits.
    """
    eps = gamma - 1.0
    low, high = delta + start, delta + stop
    if abs(eps) >= _NEAR_ONE:
        log_ratio = betaln(high, gamma) - betaln(low, gamma) + np.log(high / low)
        return np.asarray(low * -np.expm1(log_ratio) / eps, dtype=np.float64)
    if eps == 0.0:
        return np.asarray(low * (digamma(high + 1.0) - digamma(low + 1.0)), dtype=np.float64)
    log_ratio = _log_gamma_shift(low + 1.0, eps) - _log_gamma_shift(high + 1.0, eps)
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
        x, t_x, n = _history(patterns.columns)
        weights = patterns.weights

        def objective(params: FloatArray) -> tuple[float, FloatArray]:
            values, gradient = _log_likelihood(params, x, t_x, n)
            return float(np.sum(weights * values)), np.sum(weights[:, None] * gradient, axis=0)

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
        periods = self._in_units(span)
        if not np.isfinite(periods) or periods < 0 or abs(periods - round(periods)) > 1e-9:
            raise SchemaError(
                f"{name} must be a whole number of transaction opportunities >= 0, got {span!r}"
                f" ({periods!r} opportunities)"
            )
        return float(round(periods))

    def _p_alive_patterns(self, values: dict[str, FloatArray], ahead: float) -> FloatArray:
        x, t_x, n = _history(values)
        params = self._params()
        log_alive = _log_alive_next(params, x, n, ahead)
        return np.asarray(
            np.minimum(np.exp(log_alive - _log_likelihood(params, x, t_x, n)[0]), 1.0),
            dtype=np.float64,
        )  # fmt: skip

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

    def expected_purchases(self, n: float | Duration | str, data: pd.DataFrame) -> pd.Series:
        """Expected purchases in the next ``n`` opportunities given each history, FHS eq. (13).

        Computed as ``(alpha + x) / (alpha + beta + n) * P(alive at n | history) *
        sum_{s=1}^{n*} P(alive at n + s | alive at n)``, which is eq. (13) rearranged so that
        ``gamma = 1`` needs no special case.
        """
        periods = self._periods(n, "n")
        values, inverse = self._patterns(data)
        return pd.Series(self._expected_patterns(values, periods)[inverse], index=data.index,
                         name="expected_purchases")  # fmt: skip

    def expected_purchases_new(self, n: float | Duration | str) -> float:
        """E[X(n)] for a customer with no history, FHS eq. (8).

        ``alpha / (alpha + beta) * delta / (gamma - 1) * [1 - G(gamma + delta) G(1 + delta + n)
        / (G(gamma + delta + n) G(1 + delta))]``.
        """
        periods = self._periods(n, "n")
        alpha, beta, gamma, delta = self._params()
        zero = np.zeros(1)
        return float(alpha / (alpha + beta) * _alive_sum(gamma, delta, zero, zero + periods)[0])

    def purchase_pmf(self, x: int | FloatArray, n: float | Duration | str) -> float | FloatArray:
        """P(X(n) = x) for a customer with no history, FHS eq. (7).

        ``C(n, x) B(alpha + x, beta + n - x) / B(alpha, beta) * B(gamma, delta + n) / B(gamma,
        delta) + sum_{i=x}^{n-1} C(i, x) B(alpha + x, beta + i - x) / B(alpha, beta)
        * B(gamma + 1, delta + i) / B(gamma, delta)``, summed as a log-sum-exp.
        """
        periods = self._periods(n, "n")
        asked = np.asarray(x, dtype=np.float64)
        counts = np.atleast_1d(asked)
        is_possible = (counts >= 0) & (counts <= periods) & (counts == np.round(counts))
        c2 = np.where(is_possible, counts, 0.0)[:, None]
        alpha, beta, gamma, delta = self._params()
        base = betaln(alpha, beta) + betaln(gamma, delta)
        alive = (-np.log1p(periods) - betaln(periods - c2 + 1.0, c2 + 1.0)
                 + betaln(gamma, delta + periods) + betaln(alpha + c2, beta + periods - c2)
                 - base)  # fmt: skip
        i = np.maximum(np.arange(int(periods), dtype=np.float64)[None, :], c2)
        died = (-np.log1p(i) - betaln(i - c2 + 1.0, c2 + 1.0) + betaln(gamma + 1.0, delta + i)
                + betaln(alpha + c2, beta + i - c2) - base)  # fmt: skip
        is_used = np.arange(int(periods))[None, :] >= c2
        terms = np.concatenate([alive, np.where(is_used, died, -np.inf)], axis=1)
        found = np.where(is_possible, np.exp(logsumexp(terms, axis=1)), 0.0)
        return float(found[0]) if asked.ndim == 0 else found

    def dert(self, discount_rate: Rate | float, data: pd.DataFrame) -> pd.Series:
        """Discounted expected residual transactions, FHS eq. (14).

        ``DERT = B(alpha + x + 1, beta + n - x) / B(alpha, beta) * B(gamma, delta + n + 1)
        / [B(gamma, delta) (1 + d)] * 2F1(1, delta + n + 1; gamma + delta + n + 1; 1 / (1 + d))
        / L``, with ``d`` the discount rate per opportunity: a float per opportunity, or a
        :class:`~cvalue.units.Rate` converted to the fitted unit.
        """
        rate = self._discount_rate(discount_rate)
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

    def predict(self, data: pd.DataFrame, horizon: float | Duration | str) -> pd.DataFrame:
        """P(alive) and expected purchases over ``horizon`` opportunities, by customer."""
        periods = self._periods(horizon, "horizon")
        values, inverse = self._patterns(data)
        return pd.DataFrame(
            {"p_alive": self._p_alive_patterns(values, 1.0)[inverse],
             "expected_purchases": self._expected_patterns(values, periods)[inverse]},
            index=data.index,
        )  # fmt: skip

    # --- simulation ------------------------------------------------------------------------

    def simulate(
        self, n_customers: int, n_periods: int, *, rng: np.random.Generator
    ) -> pd.DataFrame:
        """Histories of ``n_customers`` new customers over ``n_periods`` opportunities.

        Exact and vectorised: the opportunities alive are ``min(G - 1, n)`` with
        ``G ~ Geometric(theta)``; the last purchase is ``K ~ Geometric(p) - 1`` opportunities
        before the end of the alive span, and the purchases before it are binomial.
        """
        alpha, beta, gamma, delta = self._params()
        tiny = np.finfo(np.float64).tiny
        p = np.clip(rng.beta(alpha, beta, n_customers), tiny, 1.0)
        theta = np.clip(rng.beta(gamma, delta, n_customers), tiny, 1.0)
        cap = np.int64(n_periods) + 1
        alive = np.minimum(np.minimum(rng.geometric(theta), cap) - 1, n_periods)
        gap = np.minimum(rng.geometric(p), cap) - 1
        has_bought = gap < alive
        recency = np.where(has_bought, alive - gap, 0)
        earlier = rng.binomial(np.maximum(recency - 1, 0), p)
        frequency = np.where(has_bought, earlier + 1, 0)
        return pd.DataFrame(
            {"frequency": frequency.astype(np.int64), "recency": recency.astype(np.int64),
             "n_periods": np.full(n_customers, n_periods, dtype=np.int64)},
        )  # fmt: skip
