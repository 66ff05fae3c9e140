r"""The Pareto/NBD model of non-contractual purchasing in continuous time.

Schmittlein, Morrison & Colombo (1987), "Counting your customers: who are they and what will they
do next?", Management Science 33(1); implemented as in Fader, Hardie & Lee (2005b), "A note on
deriving the Pareto/NBD model and related expressions" (the "note" below), with the customer-base
analysis of Fader, Hardie & Lee (2005a), "RFM and CLV: using iso-value curves for customer base
analysis", Journal of Marketing Research 42(4).

While alive, a customer buys as a Poisson process of rate ``lambda ~ Gamma(r, alpha)``; the lifetime
is exponential with rate ``mu ~ Gamma(s, beta)``. The likelihood of ``(x, t_x, T)`` (note, eq. 18)
is computed without Gauss hypergeometric functions: conditioning on the lifetime gives

.. math::

    L = \frac{\Gamma(r+x)}{\Gamma(r)} \alpha^r \beta^s \left[
        (\alpha+T)^{-(r+x)} (\beta+T)^{-s}
        + s \int_{t_x}^{T} (\alpha+\tau)^{-(r+x)} (\beta+\tau)^{-(s+1)} d\tau \right],

the same quantity as the note's ``A_0`` form (``s I = s A_0 / (r + s + x)``), evaluated by
Gauss-Legendre quadrature in ``u = ln(min(alpha, beta) + tau)`` (:mod:`cvalue.models._quadrature`).
It is stable for any ``x`` and any ``alpha / beta`` (no ``alpha >= beta`` branch, no cancelling
``2F1`` difference, no special case at ``alpha = beta``), and its gradient is exact.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, overload

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.special import digamma, gammaln, logsumexp

from cvalue.errors import DataQualityError, SchemaError
from cvalue.models._base import (
    FloatArray,
    Model,
    Patterns,
    distinct_values,
    frame_per_row,
    per_pattern,
    require_columns,
)
from cvalue.models._checks import summary_patterns
from cvalue.models._contract import keyword_options
from cvalue.models._covariates import Link
from cvalue.models._curves import (
    Curves,
    ParetoCurves,
    distinct,
    float_column,
    just_acquired,
    spread_ratio,
)
from cvalue.models._intervals import IntervalMethod, with_intervals
from cvalue.models._mle import Objective
from cvalue.models._patterns import smallest_codes
from cvalue.models._quadrature import LifetimeIntegral, LifetimeIntegrator, gauss_legendre
from cvalue.models._strata import Combine, StratumMethods
from cvalue.models.beta_geo import _pmf_given_history
from cvalue.units import Duration, Rate

if TYPE_CHECKING:
    pass

__all__ = ["ParetoNBD"]

_COLUMNS = ("frequency", "recency", "T")
_MODEL = "ParetoNBD"
_PMF_PANELS, _PMF_NODES = 64, 16  # composite rule for the pmf's lifetime integral
_PMF_CHUNK = 1 << 11  # (x, T) keys x counts per block of the conditional pmf: bounds the memory
_DERT_PANELS, _DERT_NODES = 32, 16  # composite rule for E[1 / (mu + delta)]
_DERT_TAIL = 60.0  # the discounting integral is cut where exp(-z (e^v - 1)) < exp(-60)

Params = tuple[float, float, float, float]
Span = float | Duration | str


class _Rows:
    """Patterns ``(x, t_x, T)`` with what every evaluation reuses: distinct values, integrator.

    Rows with a death interval (``t_x < T``) come first, so that they are a slice; ``order`` maps
    each of these rows to its place as given. A row keeps its weight and the codes of its ``x``
    and ``T`` among their distinct values, in the smallest unsigned integers that hold them; ``x``
    and ``T`` are gathered when an evaluation needs them. A fit's block of patterns then holds
    about 14 bytes a pattern, not the 80 of float copies.
    """

    __slots__ = ("age_of", "ages", "integrator", "level_of", "level_weights", "levels",
                 "n_interval", "order", "weights")  # fmt: skip

    def __init__(
        self, x: FloatArray, t_x: FloatArray, T: FloatArray, weights: FloatArray | None = None
    ) -> None:
        # rows with t_x = T have no death interval: I = 0 and P(alive) = 1
        has_interval = t_x < T
        order = np.concatenate([np.flatnonzero(has_interval), np.flatnonzero(~has_interval)])
        self.n_interval = int(np.count_nonzero(has_interval))
        self.order = smallest_codes(order, len(order))
        x, t_x, T = x[order], t_x[order], T[order]
        self.weights = np.ones_like(x) if weights is None else weights[order]
        self.levels, level_of = distinct_values(x)
        self.ages, age_of = distinct_values(T)
        self.level_weights = np.bincount(level_of, weights=self.weights,
                                         minlength=len(self.levels))  # fmt: skip
        self.level_of = smallest_codes(level_of, len(self.levels))
        self.age_of = smallest_codes(age_of, len(self.ages))
        on = slice(0, self.n_interval)
        self.integrator = LifetimeIntegrator(x[on], t_x[on], T[on])

    @property
    def x(self) -> FloatArray:
        """Repeat purchases per row (gathered from the codes)."""
        return self.levels.take(self.level_of)

    @property
    def T(self) -> FloatArray:  # noqa: N802 (the papers name it T)
        """Age per row (gathered from the codes)."""
        return self.ages.take(self.age_of)

    @property
    def position(self) -> npt.NDArray[np.intp]:
        """Where each row, in the order given, sits in these (reordered) rows."""
        result = np.empty(len(self.order), dtype=np.intp)
        result[self.order] = np.arange(len(self.order))
        return result

    def in_given_order(self, values: FloatArray) -> FloatArray:
        """Values computed on these (reordered) rows, put back in the order the rows were given."""
        result = np.empty_like(values)
        result[self.order] = values
        return result


def _check_summary(values: dict[str, FloatArray]) -> None:
    """Raise :class:`DataQualityError` naming every inconsistency of a summary at once."""
    x, t_x, T = values["frequency"], values["recency"], values["T"]
    problems = []
    checks = (
        (~np.isfinite(x) | ~np.isfinite(t_x) | ~np.isfinite(T), "non-finite values"),
        ((x < 0) | (x != np.round(x)), "'frequency' that is not a whole number >= 0"),
        (T < 0, "'T' < 0"),
        ((t_x < 0) | (t_x > T), "'recency' outside [0, T]"),
        ((x == 0) & (t_x != 0), "'recency' > 0 with 'frequency' 0 (recency must then be 0)"),
    )
    for is_bad, what in checks:
        n_bad = int(np.count_nonzero(is_bad))
        if n_bad:
            first = int(np.argmax(is_bad))
            example = f"frequency={x[first]:g}, recency={t_x[first]:g}, T={T[first]:g}"
            problems.append(f"{what} in {n_bad:,} of {len(x):,} distinct patterns (e.g. {example})")
    if problems:
        raise DataQualityError(
            f"{_MODEL} cannot use this summary: {'; '.join(problems)}. Build the summary with "
            "cvalue.rfm_summary, where recency is the time of the last repeat purchase"
        )


def _log_posterior(
    params: Params, rows: _Rows, *, with_means: bool
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, LifetimeIntegral]:
    """The bracket of the likelihood: ``ln`` of it, the shares alive and died, and the integral.

    The note's eq. (18) in the lifetime-integral form: the bracket is ``exp(A1) + s I`` with
    ``A1 = -(r + x) ln(alpha + T) - s ln(beta + T)`` (alive at T) and ``s I`` (died in
    ``(t_x, T]``; zero when ``t_x = T``). The shares are ``pi = P(alive)`` and ``1 - pi``, each
    from the ratio of the two terms, so that neither loses digits near 0.
    """
    r, alpha, s, beta = params
    log_age_alpha = np.log(alpha + rows.ages).take(rows.age_of)
    log_age_beta = np.log(beta + rows.ages).take(rows.age_of)
    total = -(r + rows.levels).take(rows.level_of) * log_age_alpha - s * log_age_beta
    p_alive = np.ones_like(total)
    p_died = np.zeros_like(total)
    integral = rows.integrator.evaluate(params, with_means=with_means)
    on = slice(0, rows.n_interval)
    # bracket / (s exp(log_scale)) = exp(c) + scaled, c = A1 - ln(s) - log_scale; c is capped so
    # that exp cannot overflow, and the excess is added back (the alive term then dominates)
    base = np.log(s) + integral.log_scale
    excess = total[on] - base
    capped = np.minimum(excess, 700.0)
    alive = np.exp(capped)
    bracket = alive + integral.scaled
    p_alive[on] = alive / bracket
    p_died[on] = integral.scaled / bracket
    total[on] = base + np.log(bracket) + (excess - capped)
    return total, p_alive, p_died, log_age_alpha, integral


def _p_alive(params: Params, rows: _Rows) -> FloatArray:
    """P(alive at T | x, t_x, T): the note's eq. (36), the share of ``L`` from the alive term."""
    return _log_posterior(params, rows, with_means=False)[1]


def _weighted_log_likelihood(params: Params, rows: _Rows) -> tuple[float, FloatArray]:
    """``sum w ln L`` and its exact gradient in ``(r, alpha, s, beta)``.

    notes/pareto-nbd.md, section 1: with ``pi`` the share of the alive term and ``<.>`` the
    integrand-weighted means over the death interval,
    ``d/dr = psi(r+x) - psi(r) + ln alpha - pi ln(alpha+T) - (1-pi) <ln(alpha+tau)>``, and so on.
    """
    r, alpha, s, beta = params
    total, p_alive, p_died, log_age_alpha, integral = _log_posterior(params, rows, with_means=True)
    x, T, weights, level_weights = rows.x, rows.T, rows.weights, rows.level_weights
    on = slice(0, rows.n_interval)
    n = float(np.sum(level_weights))
    log_gamma = float(np.sum(level_weights * (gammaln(r + rows.levels) - gammaln(r))))
    value = log_gamma + n * (r * np.log(alpha) + s * np.log(beta)) + float(np.sum(weights * total))
    w_alive = weights * p_alive
    w_died = weights[on] * p_died[on]
    log_age_beta = np.log(beta + rows.ages).take(rows.age_of)
    psi = float(np.sum(level_weights * (digamma(r + rows.levels) - digamma(r))))
    gradient = np.array([
        psi + n * np.log(alpha) - np.sum(w_alive * log_age_alpha)
        - np.sum(w_died * integral.mean_log_alpha),
        n * r / alpha - np.sum(w_alive * (r + x) / (alpha + T))
        - np.sum(w_died * (r + x[on]) * integral.mean_inv_alpha),
        n * np.log(beta) - np.sum(w_alive * log_age_beta)
        + np.sum(w_died * (1.0 / s - integral.mean_log_beta)),
        n * s / beta - s * np.sum(w_alive / (beta + T))
        - (s + 1.0) * np.sum(w_died * integral.mean_inv_beta),
    ])  # fmt: skip
    return value, gradient


def _discount_integral(s: float, z: FloatArray) -> FloatArray:
    """``ln J(s, z)``, ``J = int_0^inf e^{-w} (1 + w/z)^{-s} dw = z^s U(s, s; z)``.

    So that ``E[1 / (mu + delta)] = J(s, delta (beta + T)) / delta`` for ``mu ~ Gamma(s, beta +
    T)``: the Tricomi ``U`` (``Psi``) of Fader, Hardie & Lee (2005a), eq. (2). With ``w = z (e^v -
    1)``, ``J = z int_0^inf exp(-z expm1(v) + (1 - s) v) dv``, a smooth integrand cut where it has
    fallen below ``exp(-60)``, by composite Gauss-Legendre in log space.
    """
    xi, omega = gauss_legendre(_DERT_NODES)
    upper = np.log1p(_DERT_TAIL / z)
    panel = upper / _DERT_PANELS
    offsets = (np.arange(_DERT_PANELS)[:, None] + xi).ravel()
    v = panel[:, None] * offsets
    log_integrand = -z[:, None] * np.expm1(v) + (1.0 - s) * v
    weights = np.tile(omega, _DERT_PANELS)
    result: FloatArray = np.log(z * panel) + logsumexp(log_integrand, b=weights, axis=1)
    return result


def _pmf_alive_now(
    n: FloatArray, horizon: float, r: FloatArray, alpha: FloatArray, s: float, beta: FloatArray
) -> FloatArray:
    """P(n purchases in the next ``horizon``) of a customer alive now, per ``(r, alpha, beta)``.

    Fader & Hardie, note 012: ``NB(n; t) (beta / (beta + t))^s + int_0^t NB(n; tau) s beta^s
    (beta + tau)^{-(s+1)} d tau``, ``NB(n; tau)`` the NBD (Gamma-Poisson) probability of ``n``
    in ``tau``, in log space; the integral by composite Gauss-Legendre in
    ``ln(min(alpha, beta) + tau)``. ``r``, ``alpha`` and ``beta`` are one per key (a new
    customer's, or a posterior given alive); the result is ``(keys, counts)``.
    """
    r, alpha, beta = (values[:, None, None] for values in (r, alpha, beta))
    c = np.minimum(alpha, beta)
    xi, omega = gauss_legendre(_PMF_NODES)
    panel = np.log1p(horizon / c) / _PMF_PANELS
    u = panel * (np.arange(_PMF_PANELS)[:, None] + xi).ravel()  # ln((c + tau) / c)
    tau = c * np.expm1(u)
    counts = n[None, :, None]
    constant = gammaln(r + counts) - gammaln(r) - gammaln(counts + 1.0)

    def log_nbd(at: FloatArray | float) -> FloatArray:
        log_rate = np.log(alpha + at)
        result: FloatArray = constant + r * (np.log(alpha) - log_rate) + counts * (
            np.log(at) - log_rate)  # fmt: skip
        return result

    alive = (log_nbd(horizon) + s * (np.log(beta) - np.log(beta + horizon)))[..., 0]
    log_death = np.log(s) + s * np.log(beta) - (s + 1.0) * np.log(beta + tau) + np.log(c + tau)
    died = np.log(panel)[..., 0] + logsumexp(
        log_nbd(tau) + log_death, b=np.tile(omega, _PMF_PANELS), axis=-1
    )
    result: FloatArray = np.exp(np.logaddexp(alive, died))
    return result


class ParetoNBD(Model):
    """Pareto/NBD: Poisson purchasing while alive, exponential lifetimes, gamma heterogeneity.

    Schmittlein, Morrison & Colombo (1987); Fader, Hardie & Lee (2005b). Parameters ``r, alpha``
    (purchase rates ``~ Gamma(r, alpha)``) and ``s, beta`` (death rates ``~ Gamma(s, beta)``);
    ``alpha`` and ``beta`` are in the data's time unit.

    Parameters
    ----------
    n_starts
        How many starting points the optimiser tries.
    penalizer
        L2 penalty on the natural parameters; 0 for plain maximum likelihood.

    Examples
    --------
    >>> from cvalue.datasets import load_cdnow
    >>> model = ParetoNBD().fit(load_cdnow().summary, unit="week")
    >>> model.params_.round(3).tolist()
    [0.553, 10.578, 0.606, 11.668]
    >>> round(model.log_likelihood_, 1)
    -9595.0
    """

    _param_names: ClassVar[tuple[str, ...]] = ("r", "alpha", "s", "beta")
    _covariate_links: ClassVar[dict[str, Link]] = {
        "purchase": (("alpha", -1),), "dropout": (("beta", -1),)}  # fmt: skip
    _by_stratum: ClassVar[dict[str, Combine]] = StratumMethods.purchase
    age_column: ClassVar[str] = "T"
    summary_columns: ClassVar[tuple[str, ...]] = ("frequency", "recency", "T")
    discrete_time: ClassVar[bool] = False
    contractual: ClassVar[bool] = False
    _scale_columns: ClassVar[tuple[str | None, ...]] = (None, "T", None, "T")

    # --- fitting -------------------------------------------------------------------------------

    def _prepare(self, data: pd.DataFrame) -> Patterns:
        return summary_patterns(data, _MODEL)

    def _objective(self, patterns: Patterns) -> Objective:
        rows = _Rows(patterns["frequency"], patterns["recency"], patterns["T"], patterns.weights)

        def objective(params: FloatArray) -> tuple[float, FloatArray | None]:
            r, alpha, s, beta = (float(p) for p in params)
            return _weighted_log_likelihood((r, alpha, s, beta), rows)

        return objective

    def _starting_points(self, patterns: Patterns) -> list[FloatArray]:
        weights = patterns.weights
        mean_age = max(float(np.sum(weights * patterns["T"]) / np.sum(weights)), 1e-3)
        mean_count = max(float(np.sum(weights * patterns["frequency"]) / np.sum(weights)), 0.05)
        return [
            np.array([1.0, mean_age / 3.0, 1.0, mean_age / 3.0]),
            np.array([0.5, 0.5 * mean_age / mean_count, 0.5, mean_age]),
            np.array([2.0, 2.0 * mean_age / mean_count, 2.0, 3.0 * mean_age]),
        ]

    # --- scoring ---------------------------------------------------------------------------------

    def _params(self) -> Params:
        self._check_fitted()
        self._check_plain()
        r, alpha, s, beta = (float(self.params_[name]) for name in self._param_names)
        return r, alpha, s, beta

    def _score_rows(self, data: pd.DataFrame) -> tuple[_Rows, FloatArray, npt.NDArray[np.intp]]:
        """Distinct patterns of ``data``, their P(alive), and the map from ``data``'s rows.

        The map is to the patterns as :func:`~cvalue.models._base.per_pattern` gives them;
        :meth:`_Rows.in_given_order` puts values computed on the rows in that order.
        """
        params = self._params()
        values, inverse = per_pattern(data, _COLUMNS, model=_MODEL)
        _check_summary(values)
        rows = _Rows(values["frequency"], values["recency"], values["T"])
        return rows, _p_alive(params, rows), inverse

    def _horizon(self, t: Span) -> float:
        horizon = self._in_units(t)
        if not np.isfinite(horizon) or horizon < 0:
            raise SchemaError(f"the horizon must be a finite time span >= 0, got {t!r}")
        return horizon

    def _conditional_purchases(
        self, horizon: float, rows: _Rows, p_alive: FloatArray
    ) -> FloatArray:
        """Expected purchases in ``(T, T + t]``: the note's eq. (41), ``s = 1`` taken exactly."""
        r, alpha, s, beta = self._params()
        age_beta = beta + rows.ages  # the spread is a function of T alone: once per distinct T
        spread = spread_ratio(s - 1.0, np.log1p(horizon / age_beta))
        result: FloatArray = (p_alive * (r + rows.x) / (alpha + rows.T) * age_beta[rows.age_of]
                              * spread[rows.age_of])  # fmt: skip
        return result

    def curves(self, data: pd.DataFrame | None = None) -> Curves:
        """Survival and cumulative purchases from now on, per distinct ``T``.

        Row scales ``P(alive) (r + x) / (alpha + T)``; ``data=None`` is a customer just
        acquired (``x = 0, T = 0``, alive).
        """
        r, alpha, s, beta = self._params()
        if data is None:
            first, zero, one = just_acquired()
            return ParetoCurves(first, one * r / alpha, one, (zero,), s, beta)
        require_columns(data, self.summary_columns, type(self).__name__)
        alive = self.p_alive(data).to_numpy(dtype=np.float64)
        x, age = float_column(data, "frequency"), float_column(data, "T")
        group, keys = distinct(age)
        return ParetoCurves(group, alive * (r + x) / (alpha + age), alive, keys, s, beta)

    def p_alive(self, data: pd.DataFrame) -> pd.Series:
        """P(alive at T | x, t_x, T): the note's eq. (36), as the posterior weight of survival.

        Computed from the same quadrature as the likelihood: the share of ``L`` from lifetimes
        beyond ``T``, so it needs no hypergeometric function and stays in [0, 1] for any ``x``.
        """
        rows, p_alive, inverse = self._score_rows(data)
        return pd.Series(rows.in_given_order(p_alive)[inverse], index=data.index, name="p_alive")

    @keyword_options(
        "horizon", leading="data", old="t, data", new="data, horizon=t", renamed={"t": "horizon"}
    )
    def expected_purchases(self, data: pd.DataFrame, *, horizon: Span) -> pd.Series:
        """Expected repeat purchases in ``(T, T + t]`` given each history, ``t`` the ``horizon``.

        Schmittlein et al. (1987), eq. (22); Fader, Hardie & Lee (2005b), eq. (41):
        ``P(alive) (r + x) (beta + T) / ((alpha + T) (s - 1)) [1 - ((beta + T) / (beta + T +
        t))^(s - 1)]``, with the bracket over ``s - 1`` taken as ``-expm1(..)`` and its limit
        ``ln((beta + T + t) / (beta + T))`` at ``s = 1``.
        """
        span = self._horizon(horizon)
        rows, p_alive, inverse = self._score_rows(data)
        values = rows.in_given_order(self._conditional_purchases(span, rows, p_alive))
        return pd.Series(values[inverse], index=data.index, name="expected_purchases")

    @keyword_options("horizon", leading=None, old="t", new="horizon=t", renamed={"t": "horizon"})
    def expected_purchases_new(self, *, horizon: Span) -> float:
        """``E[X(t)]`` for a new customer: the note's eq. (27), the ``s = 1`` limit exact."""
        span = self._horizon(horizon)
        r, alpha, s, beta = self._params()
        spread = spread_ratio(s - 1.0, np.log1p(span / beta))
        return float(r * beta / alpha * spread)

    @overload
    def purchase_pmf(self, counts: int, *, horizon: Span, data: None = None) -> float: ...

    @overload
    def purchase_pmf(
        self, counts: npt.ArrayLike, *, horizon: Span, data: pd.DataFrame
    ) -> pd.DataFrame: ...

    @overload
    def purchase_pmf(
        self, counts: npt.ArrayLike, *, horizon: Span, data: pd.DataFrame | None = None
    ) -> float | FloatArray | pd.DataFrame: ...

    @keyword_options(
        "horizon", leading="counts", old="n, t", new="counts, horizon=t",
        renamed={"n": "counts", "t": "horizon"},
    )  # fmt: skip
    def purchase_pmf(
        self, counts: npt.ArrayLike, *, horizon: Span, data: pd.DataFrame | None = None
    ) -> float | FloatArray | pd.DataFrame:
        """``P(X(t) = n)`` for a new customer, or ``P(X(T, T + t) = n | x, t_x, T)`` given ``data``.

        ``n`` is ``counts``, ``t`` the ``horizon``. A new customer: Fader & Hardie, note 012
        ("Deriving an expression for P(X(t) = x) under the Pareto/NBD model"), final expression,
        computed by conditioning on the lifetime ``tau`` instead of expanding it in ``2F1``
        terms (:func:`_pmf_alive_now`). A scalar ``n`` gives a float, an array an array.

        Given each history in ``data`` (a DataFrame indexed like ``data``, one column per count):
        Fader & Hardie, note 028 ("Deriving the conditional PMF of the Pareto/NBD model"),
        ``P = (1 - P(alive)) [n = 0] + P(alive) P_new(n)`` with ``P_new`` the new customer's pmf
        at the posterior given alive at ``T``: ``r + x``, ``alpha + T``, ``s`` and ``beta + T``
        (the lifetime is memoryless). It is computed once per distinct ``(x, T)``.
        """
        span = self._horizon(horizon)
        values = np.asarray(counts)
        if values.size and (np.any(values < 0) or np.any(values != np.round(values))):
            raise SchemaError(f"counts must be whole numbers >= 0, got {counts!r}")
        flat = values.astype(np.float64).ravel()
        if data is not None:
            return self._pmf_given_history(flat, span, data)
        r, alpha, s, beta = self._params()
        one = np.ones(1)
        probabilities = (flat == 0).astype(np.float64) if span == 0.0 else _pmf_alive_now(
            flat, span, one * r, one * alpha, s, one * beta)[0]  # fmt: skip
        if values.ndim == 0:
            return float(probabilities[0])
        result: FloatArray = probabilities.reshape(values.shape)
        return result

    def _pmf_given_history(self, n: FloatArray, horizon: float, data: pd.DataFrame) -> pd.DataFrame:
        """The conditional pmf of each row of ``data`` (:meth:`purchase_pmf`)."""
        r, alpha, s, beta = self._params()
        rows, p_alive, inverse = self._score_rows(data)
        group, (x, T) = distinct(rows.x, rows.T)
        table = np.empty((len(x), len(n)))
        table[:] = n == 0  # no time ahead: no purchase
        step = max(1, _PMF_CHUNK // max(len(n), 1))
        for start in range(0, len(x) if horizon > 0.0 else 0, step):
            keys = slice(start, start + step)
            table[keys] = _pmf_alive_now(
                n, horizon, r + x[keys], alpha + T[keys], s, beta + T[keys])  # fmt: skip
        per_row = rows.position[inverse]
        return _pmf_given_history(p_alive[per_row], table, group[per_row], n, data.index)

    @keyword_options("horizon", leading="data", old="data, horizon", new="data, horizon=horizon")
    def predict(
        self, data: pd.DataFrame, *, horizon: Span = "52w", interval: float | None = None,
        method: IntervalMethod = "draws", n_draws: int = 200,
        rng: np.random.Generator | None = None,
    ) -> pd.DataFrame:  # fmt: skip
        """P(alive) and expected purchases over ``horizon`` per customer, indexed like ``data``.

        ``interval`` (such as 0.9) adds per-customer bounds: see :func:`with_intervals`.
        """
        span = self._horizon(horizon)
        rows, p_alive, inverse = self._score_rows(data)
        expected = self._conditional_purchases(span, rows, p_alive)
        per_pattern_values = {"p_alive": p_alive, "expected_purchases": expected}
        scored = frame_per_row(
            {name: rows.in_given_order(values) for name, values in per_pattern_values.items()},
            inverse, data.index,
        )  # fmt: skip
        return with_intervals(self, data, scored, horizon=horizon, level=interval, method=method,
                              n_draws=n_draws, rng=rng)  # fmt: skip

    @keyword_options(
        "discount", leading="data", old="discount_rate, data", new="data, discount=discount_rate",
        renamed={"discount_rate": "discount"},
    )  # fmt: skip
    def dert(self, data: pd.DataFrame, *, discount: Rate | float) -> pd.Series:
        """Discounted expected residual transactions: Fader, Hardie & Lee (2005a), eq. (2).

        ``DERT = P(alive) (r + x) / (alpha + T) E[1 / (mu + delta)]`` with ``mu ~ Gamma(s, beta +
        T)``, which equals the paper's ``alpha^r beta^s delta^(s-1) Gamma(r+x+1) Psi(s, s;
        delta (beta + T)) / (Gamma(r) (alpha + T)^(r+x+1) L)``; the Tricomi ``Psi`` term is
        integrated in log space by :func:`_discount_integral`.

        Parameters
        ----------
        data
            The customer summary.
        discount
            A :class:`cvalue.units.Rate` (effective annual, converted to the continuously
            compounded rate per model unit), or a float that already is one.
        """
        delta = self._discount_rate(discount, continuous=True)
        r, alpha, s, beta = self._params()
        rows, p_alive, inverse = self._score_rows(data)
        log_discount = _discount_integral(s, delta * (beta + rows.ages))[rows.age_of]
        values = p_alive * (r + rows.x) / (alpha + rows.T) * np.exp(log_discount) / delta
        return pd.Series(rows.in_given_order(values)[inverse], index=data.index, name="dert")

    # --- simulation ------------------------------------------------------------------------------

    def simulate(
        self, n_customers: int, T: Span | npt.ArrayLike, *, rng: np.random.Generator
    ) -> pd.DataFrame:
        """Customers drawn from the fitted model, observed for ``T`` (continuous time).

        Rates ``lambda ~ Gamma(r, alpha)``, ``mu ~ Gamma(s, beta)``, lifetime ``~ Exp(mu)``; repeat
        purchases are Poisson with mean ``lambda min(lifetime, T)`` and the last one falls at
        ``min(lifetime, T)`` times a ``Beta(x, 1)`` draw (the largest of ``x`` uniforms).

        Parameters
        ----------
        n_customers
            How many customers.
        T
            Each customer's observation time: one span (number in the model's unit, ``"52w"``)
            or an array of ``n_customers`` numbers.
        rng
            The random generator.
        """
        r, alpha, s, beta = self._params()
        if isinstance(T, str | Duration):
            ages = np.full(n_customers, self._in_units(T))
        else:
            ages = np.broadcast_to(np.asarray(T, dtype=np.float64), (n_customers,)).copy()
        purchase_rate = rng.gamma(r, 1.0 / alpha, n_customers)
        death_rate = rng.gamma(s, 1.0 / beta, n_customers)
        draws = rng.exponential(1.0, n_customers)
        dies_before = death_rate * ages > draws
        observed = np.divide(draws, death_rate, out=ages.copy(), where=dies_before)
        counts = rng.poisson(purchase_rate * observed)
        recency = np.zeros(n_customers)
        bought = counts > 0
        recency[bought] = observed[bought] * rng.beta(counts[bought], 1.0)
        summary = pd.DataFrame({"frequency": counts.astype(np.int64), "recency": recency,
                                "T": ages})  # fmt: skip
        unit = getattr(self, "unit_", None)
        if unit is not None:
            summary.attrs["unit"] = unit.value
        return summary
