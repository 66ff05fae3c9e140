"""The (M)BG/CNBD-k models: Platzer & Reutterer (2016), "Ticking away the moments".

The BG/NBD (:mod:`cvalue.models.beta_geo`) has memoryless purchasing: the time between purchases
is exponential. Many customers buy more regularly than that (weekly groceries, monthly refills).
The BG/CNBD-k makes the time between purchases Erlang-``k``: a customer's purchases are every
``k``-th event of a Poisson process with rate ``lambda ~ Gamma(r, alpha)``, so the purchase rate
is ``lambda / k`` and the gaps have a coefficient of variation ``1 / sqrt(k)``. After each repeat
purchase the customer drops out with probability ``p ~ Beta(a, b)``; the MBG/CNBD-k also at
time 0, right after the first purchase. At ``k = 1`` they are the BG/NBD and the MBG/NBD.

``k`` is a whole number, chosen by maximum likelihood over 1..10 (or given). The timing
regularity is seen in the log inter-purchase times: the likelihood needs ``litt``, each
customer's sum of the logs of their ``x`` inter-purchase times (in the model's unit), besides
``frequency, recency, T``; :func:`cnbd_summary` builds it from a transaction log. Predictions
need ``frequency, recency, T`` only.

Formulas (derived here from the model's assumptions; Platzer & Reutterer 2016, section 3 and
appendix, and the BTYDplus R package give the same likelihood). With ``s = 1`` for the
MBG/CNBD-k and 0 otherwise, ``x`` repeat purchases, the last at ``t_x``, age ``T``,
``r' = r + k x``, ``beta = alpha + T`` and ``d = T - t_x``:

- likelihood: ``L = exp((k-1) litt) / ((k-1)!)^x * G(r')/G(r) alpha^r / beta^r'
  * B(a, b+x+s)/B(a, b) * [sum_{j<k} c_j + D]``, with
  ``c_j = G(r'+j) / (G(r') j!) (d / beta)^j`` (no purchase in the last ``d``: the Erlang
  survival, mixed over ``lambda``) and ``D = a/(b+x+s-1) (beta/(alpha+t_x))^r'`` (dropout after
  the last purchase, when ``x + s >= 1``). At ``k = 1`` the bracket is Fader, Hardie & Lee
  (2005) eq. (6) and Batislam et al. (2007) eq. (4).
- ``P(alive) = sum c_j / (sum c_j + D)``. Given alive, the customer is ``j`` Poisson events into
  the next gap with probability ``w_j = c_j / sum c``, and then ``lambda ~ Gamma(r'+j, beta)``
  and ``p ~ Beta(a, b+x+s)``.
- Ahead of ``T``, with ``N ~ NB(r'+j, z = t/(beta+t))`` the Poisson events in ``t`` and
  ``F = floor((N + j)/k)`` the purchase occasions: ``S_j(t) = E[(1-p)^F]`` (alive at ``T+t``)
  and ``E_j(t) = E[sum_{n<=F} (1-p)^(n-1)]`` (purchases in ``(T, T+t]``), summed exactly over
  ``N`` (:func:`_occasion_sums`; every term positive, the tail bounded, to 1e-16 relative).
  BTYDplus approximates the conditional expectation for ``k > 1``; this is exact.
- DERT: ``E[sum_purchases e^(-delta tau)] = int delta e^(-delta t) C(t) dt =
  P(alive) sum_j w_j E_lambda[u^(k-j) 2F1(1, b'; a+b'; u^k)]``, ``u = lambda/(lambda+delta)``,
  ``b' = b+x+s`` (from ``E_p[1/(1-(1-p)c)] = 2F1(1, b'; a+b'; c)``), integrated over
  ``log lambda`` by composite Gauss-Legendre quadrature (:func:`_discounted`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.special import betainc, betaln, digamma, gammaln, hyp2f1, logsumexp, xlogy

from cvalue.errors import ConvergenceError, CValueError, DataQualityError, SchemaError
from cvalue.models._base import FloatArray, Model, Patterns, frame_per_row, require_columns
from cvalue.models._checks import SUMMARY_COLUMNS, checked_summary, checked_summary_patterns
from cvalue.models._curves import BetaGeoCurves, distinct, float_column
from cvalue.models._intervals import IntervalMethod, with_intervals
from cvalue.models._mle import Objective
from cvalue.models.beta_geo import BetaGeo
from cvalue.models.modified_beta_geo import ModifiedBetaGeo
from cvalue.summary import cnbd_summary
from cvalue.units import Duration, Rate, TimeUnit, as_time_unit

if TYPE_CHECKING:
    from typing_extensions import Self


__all__ = ["BetaGeoCNBD", "CNBDCurves", "ModifiedBetaGeoCNBD", "cnbd_summary"]

Span = float | Duration | str
MAX_K = 10
"""The largest Erlang order ``k`` tried when ``k`` is chosen by likelihood."""
_TAIL = 1e-16  # relative size of the neglected tail of the sums over Poisson events
_COMPACT_EVERY = 16  # steps of the event sums between removing the finished cells
_PANEL_WIDTH = 0.25  # of the DERT's log-lambda panels, at most
_PANEL_NODES = 8  # Gauss-Legendre nodes per panel
_LOG_REACH = 40.0  # log-lambda beyond the Gamma's bulk that the DERT's quadrature covers


# --- the summary -------------------------------------------------------------------------------


# --- formula pieces ------------------------------------------------------------------------------


def _log_phases(
    k: int, r: float, alpha: float, x: FloatArray, t_x: FloatArray, T: FloatArray
) -> FloatArray:
    """``log c_j``, ``j = 0 .. k-1``, per row ``(rows, k)`` (module docstring).

    ``c_j = G(r'+j) / (G(r') j!) (d / beta)^j``: the Erlang survival of the last ``d = T - t_x``
    at ``j`` events into the gap, mixed over ``lambda``, relative to ``j = 0``.
    """
    shape = (r + k * x)[:, None]
    j = np.arange(k, dtype=np.float64)[None, :]
    ratio = ((T - t_x) / (alpha + T))[:, None]
    logs: FloatArray = gammaln(shape + j) - gammaln(shape) - gammaln(j + 1.0) + xlogy(j, ratio)
    return logs


def _log_dropout(
    k: int, s: float, params: tuple[float, float, float, float],
    x: FloatArray, t_x: FloatArray, T: FloatArray,
) -> FloatArray:  # fmt: skip
    """``log D = log(a/(b+x+s-1)) + r' log((alpha+T)/(alpha+t_x))``; ``-inf`` when ``x+s < 1``."""
    r, alpha, a, b = params
    has_dropout = x + s >= 1.0
    shifted = np.where(has_dropout, x + s - 1.0, 0.0)
    log_d = np.log(a) - np.log(b + shifted) + (r + k * x) * (
        np.log(alpha + T) - np.log(alpha + t_x))  # fmt: skip
    return np.where(has_dropout, log_d, -np.inf)


def _alive_and_phases(
    k: int, s: float, params: tuple[float, float, float, float],
    x: FloatArray, t_x: FloatArray, T: FloatArray,
) -> tuple[FloatArray, FloatArray]:  # fmt: skip
    """P(alive at T) per row and the phase weights ``w_j`` given alive, ``(rows, k)``."""
    log_c = _log_phases(k, params[0], params[1], x, t_x, T)
    log_a = logsumexp(log_c, axis=1)
    log_d = _log_dropout(k, s, params, x, t_x, T)
    alive = np.exp(-np.logaddexp(0.0, log_d - log_a))
    return np.asarray(alive, dtype=np.float64), np.exp(log_c - log_a[:, None])


def _occasion_sums(
    k: int, a: float, shape: FloatArray, shape_b: FloatArray, phase: FloatArray, tau: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """``S_j`` and ``E_j`` of the module docstring per cell, summed over the Poisson events.

    Cell ``i``: ``N ~ NB(shape, z)``, ``z = tau/(1+tau)``, ``p ~ Beta(a, shape_b)``, ``phase``
    events into the gap. ``S = sum_m P(N=m) q_F`` and ``E = sum_m P(N=m) Q_F`` with
    ``F = floor((m + phase)/k)``, ``q_n = E[(1-p)^n]`` and ``Q_n = q_0 + ... + q_(n-1)``,
    updated by ``q_(n+1) = q_n (b'+n)/(a+b'+n)``. Past the mode of ``P(N=m)`` its ratio of
    successive terms stays below ``rho = max(ratio, z) < 1``, which bounds the tails:
    ``S_tail <= P(N=m+1) q_F / (1-rho)``, ``E_tail <= P(N=m+1) ((Q_F + q_F)/(1-rho) +
    q_F/(k (1-rho)^2))``; a cell stops when both are below 1e-16 of its sums.
    """
    survival, expected = np.ones(len(tau)), np.zeros(len(tau))
    cells = np.flatnonzero(tau > 0.0)
    log_z = np.log(tau[cells]) - np.log1p(tau[cells])
    r_, b_, j_ = shape[cells], shape_b[cells], phase[cells]
    log_pmf = -r_ * np.log1p(tau[cells])
    q, total, n = np.ones(len(cells)), np.zeros(len(cells)), np.zeros(len(cells))
    s_sum, e_sum = np.zeros(len(cells)), np.zeros(len(cells))
    m = 0
    while len(cells):
        if m > 0:
            is_step = (m + j_) % k == 0
            total = np.where(is_step, total + q, total)
            q = np.where(is_step, q * (b_ + n) / (a + b_ + n), q)
            n = n + is_step
        pmf = np.exp(log_pmf)
        s_sum += pmf * q
        e_sum += pmf * total
        log_pmf = log_pmf + np.log(r_ + m) - math.log(m + 1.0) + log_z
        m += 1
        if m % _COMPACT_EVERY:
            continue
        rho = np.maximum((r_ + m) * np.exp(log_z) / (m + 1.0), np.exp(log_z))
        following = np.exp(log_pmf)
        with np.errstate(divide="ignore"):  # rho = 1 only before the mode: not finished
            spread = 1.0 / (1.0 - rho)
        is_done = (rho < 1.0) & (following * q * spread <= _TAIL * s_sum) & (
            following * ((total + q) * spread + q * spread**2 / k) <= _TAIL * e_sum)  # fmt: skip
        if is_done.any():
            survival[cells[is_done]], expected[cells[is_done]] = s_sum[is_done], e_sum[is_done]
            keep = ~is_done
            cells, log_z, r_, b_, j_ = cells[keep], log_z[keep], r_[keep], b_[keep], j_[keep]
            log_pmf, q, total, n = log_pmf[keep], q[keep], total[keep], n[keep]
            s_sum, e_sum = s_sum[keep], e_sum[keep]
    return survival, expected


def _gauss_panels(low: float, high: float, width: float) -> tuple[FloatArray, FloatArray]:
    """Composite Gauss-Legendre nodes and weights on ``[low, high]``, panels at most ``width``."""
    n_panels = max(1, math.ceil((high - low) / width))
    nodes, weights = np.polynomial.legendre.leggauss(_PANEL_NODES)
    edges = np.linspace(low, high, n_panels + 1)
    half = (edges[1:] - edges[:-1])[:, None] / 2.0
    points = (edges[:-1, None] + half * (nodes[None, :] + 1.0)).ravel()
    return points, (half * weights[None, :]).ravel()


def _discounted(
    k: int, a: float, delta: float, shape: FloatArray, rate: FloatArray, shape_b: FloatArray,
    phase: FloatArray,
) -> FloatArray:  # fmt: skip
    """``E_lambda[u^(k-j) 2F1(1, b'; a+b'; u^k)]`` per cell, ``lambda ~ Gamma(shape, rate)``.

    The expected discounted purchases given alive (module docstring), by composite
    Gauss-Legendre quadrature in ``y = log lambda`` on one grid for every cell: the Gamma
    density in ``y`` is ``rate^shape e^(shape y - rate e^y) / G(shape)``, smooth on a scale of
    ``1/sqrt(shape)``, so the panels are narrower than that; below ``log(min(delta, mode))
    - 40`` the integrand has fallen by ``e^-40`` (it goes as ``e^((shape + k - j) y)``), and the
    grid ends ``40 + 10 sqrt(shape)`` above the largest mean. ``2F1`` is computed once per
    distinct ``b'`` and node.
    """
    low = min(math.log(delta), float(np.min(np.log(shape / rate)))) - _LOG_REACH
    high = float(np.max(np.log((shape + _LOG_REACH + 10.0 * np.sqrt(shape)) / rate)))
    width = min(_PANEL_WIDTH, 1.0 / math.sqrt(float(np.max(shape))))
    y, weight = _gauss_panels(low, high, width)
    log_u = y - np.logaddexp(y, math.log(delta))
    levels, level = np.unique(shape_b, return_inverse=True)
    series = hyp2f1(1.0, levels[:, None], a + levels[:, None], np.exp(k * log_u)[None, :])
    log_density = (shape[:, None] * (y[None, :] + np.log(rate)[:, None])
                   - rate[:, None] * np.exp(y)[None, :] - gammaln(shape)[:, None])  # fmt: skip
    integrand = np.exp(log_density + (k - phase)[:, None] * log_u[None, :]) * series[level]
    return np.asarray(integrand @ weight, dtype=np.float64)


def _occasion_pmf(
    counts: FloatArray, k: int, a: float, shape: FloatArray, shape_b: FloatArray,
    phase: FloatArray, tau: float | FloatArray,
) -> FloatArray:  # fmt: skip
    """P(n purchases in the window | alive at its start) per cell and count, ``(cells, n)``.

    With ``F`` the purchase occasions and dropout after each purchase:
    ``E[(1-p)^n] P(F = n) + [n >= 1] E[p (1-p)^(n-1)] P(F >= n)``; ``P(F = n)`` sums the ``k``
    NB probabilities of ``N in [nk - j, nk - j + k)``, ``P(F >= n) = I_z(nk - j, r')``.
    """
    tau_ = np.broadcast_to(np.asarray(tau, dtype=np.float64), shape.shape)[:, None]
    z = tau_ / (1.0 + tau_)
    n = counts[None, :]
    r_, b_, j_ = shape[:, None], shape_b[:, None], phase[:, None]
    first_event = n * k - j_
    exactly = np.zeros((len(shape), len(counts)))
    for offset in range(k):
        m = first_event + offset
        log_pmf = gammaln(r_ + m) - gammaln(r_) - gammaln(m + 1.0) - r_ * np.log1p(tau_) + xlogy(
            m, z)  # fmt: skip
        exactly += np.where(m >= 0, np.exp(np.where(m >= 0, log_pmf, 0.0)), 0.0)
    at_least = np.where(first_event >= 1, betainc(np.maximum(first_event, 1.0), r_, z), 1.0)
    keep = np.exp(betaln(a, b_ + n) - betaln(a, b_))
    drop = np.exp(betaln(a + 1.0, b_ + np.maximum(n - 1.0, 0.0)) - betaln(a, b_))
    pmf = keep * exactly + np.where(n >= 1, drop * at_least, 0.0)
    return np.asarray(pmf, dtype=np.float64)


# --- the curves ----------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class CNBDCurves(BetaGeoCurves):
    """The (M)BG/CNBD-k's curves; keys ``(x, t_x, T)``, whose phase weights ``w_j`` they carry.

    Only :meth:`tables` differs from the BG/NBD family's curves, which read both curves from it.

    ``S(key, t) = sum_j w_j S_j(x, T, t)`` and ``C(key, t) = sum_j w_j E_j(x, T, t)``
    (:func:`_occasion_sums`), both given alive now; ``alive_scale`` and ``purchase_scale`` are
    each customer's P(alive).
    """

    k: int
    weights: FloatArray

    # the Erlang-k gaps make P(alive) no function of a scaled clock: no dropout factor
    has_dropout_factor: ClassVar[bool] = False

    def tables(self, times: FloatArray) -> FloatArray:
        """``(2, keys, times)``: the cumulative purchases (row 0) and the survival (row 1)."""
        x, _, T = self.keys
        pair, (x1, T1) = distinct(x, T)
        n_pairs, n_times, k = len(x1), len(times), self.k
        cell_x = np.repeat(np.repeat(x1, k), n_times)
        phase = np.tile(np.repeat(np.arange(k, dtype=np.float64), n_times), n_pairs)
        tau = np.asarray(times, dtype=np.float64)[None, :] / (self.alpha + T1)[:, None]
        tau_cells = np.repeat(tau[:, None, :], k, axis=1).ravel()
        survival, expected = _occasion_sums(
            k, self.a, self.r + k * cell_x + phase, self.b + cell_x + self.s, phase, tau_cells
        )
        shape = (n_pairs, k, n_times)
        both = np.stack([expected.reshape(shape)[pair], survival.reshape(shape)[pair]])
        return np.asarray(np.einsum("fkjt,kj->fkt", both, self.weights), dtype=np.float64)


def _new_customer(
    k: int, s: float, params: tuple[float, float, float, float]
) -> tuple[FloatArray, FloatArray]:
    """P(alive after time 0) and the phase weights of a customer just acquired (phase 0)."""
    _, _, a, b = params
    weights = np.zeros((1, k))
    weights[0, 0] = 1.0
    return np.exp(np.full(1, betaln(a, b + s) - betaln(a, b))), weights


# --- the likelihood ------------------------------------------------------------------------------


def _cnbd_objective(k: int, s: float, patterns: Patterns) -> Objective:
    """Weighted log-likelihood and gradient of the (M)BG/CNBD-k (module docstring).

    With ``pi_j`` and ``pi_D`` the shares of ``c_j`` and ``D`` in the bracket, ``r' = r + kx``,
    ``beta = alpha + T``, ``b' = b + x + s``:
    ``d/dr = psi(r') - psi(r) + log alpha - log beta + sum pi_j (psi(r'+j) - psi(r'))
    + pi_D log(beta/(alpha+t_x))``,
    ``d/dalpha = r/alpha - r'/beta - sum pi_j j/beta + pi_D r' (1/beta - 1/(alpha+t_x))``,
    ``d/da = psi(a+b) - psi(a+b') + pi_D/a``,
    ``d/db = psi(b') - psi(a+b') - psi(b) + psi(a+b) - pi_D/(b'-1)``.
    ``litt`` only adds the constant ``(k-1) sum litt - x log((k-1)!)``.
    """
    x, T, w = patterns["frequency"], patterns["T"], patterns.weights
    t_x = np.where(x > 0, patterns["recency"], 0.0)
    constant = (k - 1) * float(np.sum(patterns["litt"])) - math.lgamma(k) * float(np.sum(w * x))
    j = np.arange(k, dtype=np.float64)[None, :]
    has_dropout = x + s >= 1.0
    shifted = np.where(has_dropout, x + s - 1.0, 0.0)
    total = float(np.sum(w))

    def objective(params: FloatArray) -> tuple[float, FloatArray]:
        if not np.all(np.isfinite(params) & (params > 0)):
            return -np.inf, np.zeros(4)  # exp(theta) under- or overflowed: the engine backs off
        r, alpha, a, b = (float(v) for v in params)
        shape = r + k * x
        log_c = _log_phases(k, r, alpha, x, t_x, T)
        log_d = _log_dropout(k, s, (r, alpha, a, b), x, t_x, T)
        log_bracket = np.logaddexp(logsumexp(log_c, axis=1), log_d)
        share = np.exp(log_c - log_bracket[:, None])
        share_d = np.exp(log_d - log_bracket)
        log_beta, log_start = np.log(alpha + T), np.log(alpha + t_x)
        per_row = (gammaln(shape) - gammaln(r) - shape * log_beta + betaln(a, b + x + s)
                   - betaln(a, b) + log_bracket)  # fmt: skip
        log_likelihood = total * r * math.log(alpha) + float(np.sum(w * per_row)) + constant
        psi_shape = digamma(shape)
        d_r = np.sum(w * (psi_shape - digamma(r) - log_beta + np.sum(
            share * (digamma(shape[:, None] + j) - psi_shape[:, None]), axis=1)
            + share_d * (log_beta - log_start))) + total * math.log(alpha)  # fmt: skip
        d_alpha = total * r / alpha + np.sum(w * (
            -shape / (alpha + T) - np.sum(share * j, axis=1) / (alpha + T)
            + share_d * shape * (1.0 / (alpha + T) - 1.0 / (alpha + t_x))))  # fmt: skip
        psi_all = digamma(a + b + x + s)
        d_a = np.sum(w * (digamma(a + b) - psi_all + share_d / a))
        d_b = np.sum(w * (digamma(b + x + s) - psi_all - digamma(b) + digamma(a + b)
                          - np.where(has_dropout, share_d / (b + shifted), 0.0)))  # fmt: skip
        return log_likelihood, np.array([d_r, d_alpha, d_a, d_b], dtype=np.float64)

    return objective


# --- the models ----------------------------------------------------------------------------------


class _CNBDFamily(Model):
    """The (M)BG/CNBD-k family: Erlang-``k`` purchasing, Beta-geometric dropout.

    ``_dropout_at_start`` is 0 for the BG/CNBD-k and 1 for the MBG/CNBD-k (``s`` in the module
    docstring); ``_first_order`` is the ``k = 1`` model, whose fit is the same.

    Parameters
    ----------
    k
        The Erlang order; ``None`` chooses it in 1..10 by likelihood (``k_``).
    n_starts, penalizer
        Starting points of the optimiser, and the L2 penalty on the natural parameters.
    """

    _param_names: ClassVar[tuple[str, ...]] = ("r", "alpha", "a", "b")
    _scale_columns: ClassVar[tuple[str | None, ...]] = (None, "T", None, None)
    age_column: ClassVar[str] = "T"
    summary_columns: ClassVar[tuple[str, ...]] = SUMMARY_COLUMNS
    """What predictions read; fitting reads ``fit_columns``."""
    fit_columns: ClassVar[tuple[str, ...]] = (*SUMMARY_COLUMNS, "litt")
    """What a fit reads: ``litt`` too, unless ``k = 1`` is given."""
    discrete_time: ClassVar[bool] = False
    contractual: ClassVar[bool] = False
    _dropout_at_start: ClassVar[int] = 0
    _first_order: ClassVar[type[Model]]

    def __init__(self, *, k: int | None = None, n_starts: int = 3, penalizer: float = 0.0) -> None:
        super().__init__(n_starts=n_starts, penalizer=penalizer)
        self.k = k

    # --- fitting -----------------------------------------------------------------------------

    def _fit_order(self) -> int:
        if self.k is None or isinstance(self.k, bool) or int(self.k) != self.k or self.k < 1:
            raise SchemaError(
                f"{type(self).__name__}(k=...) takes a whole number >= 1, or None to choose k "
                f"in 1..{MAX_K} by likelihood; got {self.k!r}"
            )
        return int(self.k)

    def _litt(self, data: pd.DataFrame) -> FloatArray:
        """The checked ``litt`` column, or zeros when ``k = 1`` is given and it is absent."""
        if self.k == 1 and "litt" not in data:
            return np.zeros(len(data))
        require_columns(data, self.fit_columns, type(self).__name__,
                        fix="cvalue.models.cnbd.cnbd_summary (litt: the sum of log "
                            "inter-purchase times; only k=1 fits without it)")  # fmt: skip
        litt = float_column(data, "litt")
        is_bad = ~np.isfinite(litt)
        if is_bad.any():
            raise DataQualityError(
                f"{type(self).__name__}: 'litt' is missing or infinite in "
                f"{int(np.count_nonzero(is_bad)):,} of {len(data):,} rows (e.g. customer "
                f"{data.index[int(np.argmax(is_bad))]!r}); build it with cnbd_summary"
            )
        return litt

    def _prepare(self, data: pd.DataFrame) -> Patterns:
        model = type(self).__name__
        if isinstance(data, pd.DataFrame) and "weight" in data:
            checked = checked_summary(data, model, is_fit=True)
            weights = float_column(checked, "weight")
            values = {c: float_column(checked, c) for c in SUMMARY_COLUMNS}
            values["litt"] = weights * self._litt(checked)  # litt is the row's customers' mean
            return Patterns(values, weights)
        values, inverse = checked_summary_patterns(data, model, is_fit=True)
        size = len(values["frequency"])
        weights = np.bincount(inverse, minlength=size).astype(np.float64)
        litt_sums = np.bincount(inverse, weights=self._litt(data), minlength=size)
        values["litt"] = np.asarray(litt_sums, dtype=np.float64)
        return Patterns(values, weights)

    def _starting_points(self, patterns: Patterns) -> list[FloatArray]:
        w, k = patterns.weights, self._fit_order()
        rate = max(float(np.sum(w * patterns["frequency"])), 1.0) / float(
            np.sum(w * patterns["T"]))  # fmt: skip
        # lambda counts events, k of them per purchase: alpha is k times smaller than the BG's
        return [
            np.array([1.0, 1.0 / rate / k, 1.0, 1.0]),
            np.array([0.5, 0.5 / rate / k, 0.8, 2.5]),
            np.array([2.0, 2.0 / rate / k, 2.0, 0.5]),
            np.array([0.2, 0.2 / rate / k, 0.3, 0.5]),
        ]

    def _objective(self, patterns: Patterns) -> Objective:
        k = self._fit_order()
        if k == 1:  # the BG/NBD's own likelihood, so that k = 1 fits exactly as it does
            return self._first_order()._objective(patterns)
        return _cnbd_objective(k, float(self._dropout_at_start), patterns)

    def _replicate(self) -> Self:
        """A model of the fitted order ``k_``, to refit (:meth:`resampled`)."""
        replicate = type(self)(k=self.k_, n_starts=self.n_starts, penalizer=self.penalizer)
        replicate.k_ = self.k_
        return replicate

    def fit(
        self, data: pd.DataFrame, *, unit: TimeUnit | str | None = None,
        covariates: Sequence[str] | Mapping[str, Sequence[str]] | None = None,
        constrain: Sequence[str] = (), covariate_penalizer: float = 0.0,
        reference: Mapping[str, Any] | None = None,
    ) -> Self:  # fmt: skip
        """Fit by maximum likelihood; with ``k=None``, for each ``k`` in 1..10, keeping the best.

        Sets ``params_`` (r, alpha, a, b), ``k_`` and ``log_likelihoods_`` (the maximised
        log-likelihood per ``k`` tried) besides the usual fitted state. ``data`` needs
        ``frequency, recency, T`` and ``litt`` (:func:`cnbd_summary`); ``litt`` only when
        ``k`` is not given as 1. The warnings of the chosen ``k``'s fit are raised, the
        others' are not (a poor ``k`` may run to the edge of the parameter space).

        Raises
        ------
        SchemaError
            Without a ``litt`` column (unless ``k=1``), or for a ``k`` that is not a whole
            number >= 1.
        ConvergenceError
            When no ``k`` converges.
        """
        if covariates is not None:
            raise SchemaError(
                f"{type(self).__name__} does not take covariates; BetaGeo, ModifiedBetaGeo and "
                "ParetoNBD do"
            )
        found = unit if unit is not None else data.attrs.get("unit") if isinstance(
            data, pd.DataFrame) else None  # fmt: skip
        time_unit = None if found is None else as_time_unit(found)
        if self.k is not None:
            self._fit_order()
            self._fit_patterns(self._prepare(data), time_unit)
            self.k_ = int(self.k)
            self.log_likelihoods_ = pd.Series({self.k_: self.log_likelihood_}, name="k")
            return self
        return self._choose_order(self._prepare(data), time_unit)

    def _choose_order(self, patterns: Patterns, unit: TimeUnit | None) -> Self:
        fits: dict[int, tuple[_CNBDFamily, list[warnings.WarningMessage]]] = {}
        failures: list[str] = []
        for order in range(1, MAX_K + 1):
            candidate = type(self)(k=order, n_starts=self.n_starts, penalizer=self.penalizer)
            with warnings.catch_warnings(record=True) as seen:
                warnings.simplefilter("always")
                try:
                    candidate._fit_patterns(patterns, unit)
                except CValueError as exc:
                    if isinstance(exc, DataQualityError):
                        raise
                    failures.append(f"k={order}: {exc}")
                    continue
            fits[order] = (candidate, seen)
        if not fits:
            raise ConvergenceError(
                f"{type(self).__name__} converged for no k in 1..{MAX_K}: " + "; ".join(failures)
            )
        best = max(fits, key=lambda order: fits[order][0].log_likelihood_)
        chosen, seen = fits[best]
        for name in ("params_", "covariance_", "log_likelihood_", "n_customers_", "converged_",
                     "unit_"):  # fmt: skip
            setattr(self, name, getattr(chosen, name))
        self.k_ = best
        self.log_likelihoods_ = pd.Series(
            {order: fitted.log_likelihood_ for order, (fitted, _) in fits.items()}, name="k"
        )
        for caught in seen:
            warnings.warn(caught.message, caught.category, stacklevel=3)
        return self

    # --- state -------------------------------------------------------------------------------

    def _params(self) -> tuple[float, float, float, float]:
        self._check_fitted()
        params = self.params_
        return (float(params["r"]), float(params["alpha"]), float(params["a"]),
                float(params["b"]))  # fmt: skip

    def _order(self) -> int:
        self._check_fitted()
        return int(self.k_)

    def to_dict(self) -> dict[str, Any]:
        """The fitted model as JSON-able values, with ``k`` and the log-likelihood per ``k``."""
        saved = super().to_dict()
        saved["options"]["k"] = self.k
        saved["k"] = self._order()
        saved["log_likelihoods"] = {str(order): float(value)
                                    for order, value in self.log_likelihoods_.items()}  # fmt: skip
        return saved

    @classmethod
    def from_dict(cls, saved: Mapping[str, Any]) -> Self:
        """Rebuild a fitted model from :meth:`to_dict`'s output, ``k`` included."""
        model = super().from_dict(saved)
        model.k_ = _checked_order(saved.get("k", 1), cls.__name__)
        found = saved.get("log_likelihoods") or {str(model.k_): model.log_likelihood_}
        model.log_likelihoods_ = pd.Series({int(o): float(v) for o, v in found.items()}, name="k")
        return model

    @classmethod
    def from_params(
        cls, *values: float, k: float = 1, unit: TimeUnit | str | None = None, **named: float
    ) -> Self:
        """A model with given ``r, alpha, a, b`` (by position or name) and Erlang order ``k``.

        Examples
        --------
        >>> model = BetaGeoCNBD.from_params(0.85, 1.45, 0.79, 2.42, k=3, unit="week")
        >>> model.k_, model.params_.tolist()
        (3, [0.85, 1.45, 0.79, 2.42])
        """
        order = _checked_order(k, cls.__name__)
        model = super().from_params(*values, unit=unit, **named)
        model.k_ = order
        model.log_likelihoods_ = pd.Series({order: np.nan}, name="k")
        return model

    def __repr__(self) -> str:
        """Show ``k`` and the parameters when fitted."""
        shown = super().__repr__()
        return shown.replace("(", f"(k={self.k_}, ", 1) if hasattr(self, "k_") else shown

    # --- predictions -------------------------------------------------------------------------

    def _horizon(self, horizon: Span) -> float:
        span = self._in_units(horizon)
        if not np.isfinite(span) or span < 0:
            raise SchemaError(f"the horizon must be a finite time span >= 0, got {horizon!r}")
        return span

    def _patterns(
        self, data: pd.DataFrame
    ) -> tuple[tuple[FloatArray, FloatArray, FloatArray], npt.NDArray[np.intp]]:
        """The checked distinct ``(x, t_x, T)`` of ``data`` (``t_x = 0`` when ``x = 0``)."""
        self._check_fitted()
        values, inverse = checked_summary_patterns(data, type(self).__name__)
        x = values["frequency"]
        return (x, np.where(x > 0, values["recency"], 0.0), values["T"]), inverse

    def _pattern_curves(self, data: pd.DataFrame | None) -> tuple[CNBDCurves, npt.NDArray[np.intp]]:
        """The curves of the distinct patterns of ``data`` (one key each) and the map back."""
        params, k, s = self._params(), self._order(), float(self._dropout_at_start)
        if data is None:
            zero = np.zeros(1)
            keys, inverse = (zero, zero, zero), np.zeros(1, dtype=np.intp)
            alive, weights = _new_customer(k, s, params)
        else:
            keys, inverse = self._patterns(data)
            alive, weights = _alive_and_phases(k, s, params, *keys)
        group = np.arange(len(alive), dtype=np.intp)
        curves = CNBDCurves(group, alive, alive, keys, *params, s, k, weights)
        return curves, inverse

    def curves(self, data: pd.DataFrame | None = None) -> CNBDCurves:
        """Survival and cumulative purchases from now on, per distinct ``(x, t_x, T)``.

        ``data=None`` is a customer just acquired: ``x = t_x = T = 0`` at phase 0, alive with
        ``B(a, b + s) / B(a, b)`` (1 for the BG/CNBD-k, ``b / (a + b)`` for the MBG/CNBD-k).
        """
        curves, inverse = self._pattern_curves(data)
        alive = curves.alive_scale[inverse]
        return CNBDCurves(inverse, alive, alive, curves.keys, curves.r, curves.alpha, curves.a,
                          curves.b, curves.s, curves.k, curves.weights)  # fmt: skip

    def _scored(self, data: pd.DataFrame, span: float | None) -> pd.DataFrame:
        curves, inverse = self._pattern_curves(data)
        scores = {"p_alive": curves.alive_scale}
        if span is not None:
            cumulative = curves.cumulative(np.array([span]))[:, 0]
            scores["expected_purchases"] = curves.purchase_scale * cumulative
        return frame_per_row(scores, inverse, data.index)

    def p_alive(self, data: pd.DataFrame) -> pd.Series:
        """P(alive at the end of the observation) of each customer (module docstring)."""
        return self._scored(data, None)["p_alive"]

    def expected_purchases(self, data: pd.DataFrame, *, horizon: Span) -> pd.Series:
        """Expected purchases of each customer in the next ``horizon``, given their history.

        ``P(alive) sum_j w_j E_j(horizon)``, exact (:func:`_occasion_sums`); the same numbers as
        ``curves(data).cumulative`` times ``purchase_scale``.
        """
        return self._scored(data, self._horizon(horizon))["expected_purchases"]

    def expected_purchases_new(self, *, horizon: Span) -> float:
        """Expected repeat purchases of a customer just acquired, over ``horizon``."""
        curves, _ = self._pattern_curves(None)
        span = self._horizon(horizon)
        return float(curves.purchase_scale[0] * curves.cumulative(np.array([span]))[0, 0])

    def predict(
        self, data: pd.DataFrame, *, horizon: Span = "52w", interval: float | None = None,
        method: IntervalMethod = "draws", n_draws: int = 200,
        rng: np.random.Generator | None = None,
    ) -> pd.DataFrame:  # fmt: skip
        """Each customer's P(alive) and expected purchases over ``horizon``, indexed like data.

        ``interval`` (such as 0.9) adds per-customer bounds: see :func:`with_intervals`.
        """
        scored = self._scored(data, self._horizon(horizon))
        return with_intervals(self, data, scored, horizon=horizon, level=interval, method=method,
                              n_draws=n_draws, rng=rng)  # fmt: skip

    def purchase_pmf(
        self, counts: npt.ArrayLike, *, horizon: Span, data: pd.DataFrame | None = None
    ) -> float | FloatArray | pd.DataFrame:
        """P(X(horizon) = n) for a new customer, or given each history in ``data``.

        Given alive: ``sum_j w_j [E[(1-p)^n] P(F_j = n) + [n >= 1] E[p (1-p)^(n-1)]
        P(F_j >= n)]`` (:func:`_occasion_pmf`), and ``1 - P(alive)`` more at ``n = 0``. For a new
        customer, P(alive) is the survival of time 0 and the phase 0; at ``k = 1`` this is
        Fader, Hardie & Lee (2005) eq. (8). A scalar count gives a float, an array an array;
        with ``data``, a DataFrame indexed like ``data`` with one column per count.
        """
        values = np.asarray(counts)
        if values.size and (np.any(values < 0) or np.any(values != np.round(values))):
            raise SchemaError(f"purchase counts must be whole numbers >= 0, got {counts!r}")
        flat = values.astype(np.float64).ravel()
        span = self._horizon(horizon)
        curves, inverse = self._pattern_curves(data)
        table = self._pmf_table(curves, flat, span)
        if data is not None:
            return pd.DataFrame(table[inverse], index=data.index, columns=flat.astype(np.int64))
        if values.ndim == 0:
            return float(table[0, 0])
        return np.asarray(table[0].reshape(values.shape), dtype=np.float64)

    def _pmf_table(self, curves: CNBDCurves, counts: FloatArray, span: float) -> FloatArray:
        """The pmf per key of ``curves`` and count."""
        x, _, T = curves.keys
        k, a, s = curves.k, curves.a, curves.s
        alive = curves.alive_scale[:, None]
        is_zero = (counts == 0.0)[None, :]
        if span == 0.0:
            return np.broadcast_to(is_zero, (len(x), len(counts))).astype(np.float64)
        given_alive = np.zeros((len(x), len(counts)))
        for phase in range(k):
            shape = curves.r + k * x + phase
            pmf = _occasion_pmf(counts, k, a, shape, curves.b + x + s, np.full(len(x), phase),
                                span / (curves.alpha + T))  # fmt: skip
            given_alive += curves.weights[:, phase, None] * pmf
        return np.asarray(alive * given_alive + (1.0 - alive) * is_zero, dtype=np.float64)

    def dert(self, data: pd.DataFrame, *, discount: Rate | float) -> pd.Series:
        """Discounted expected residual transactions, ``int delta e^(-delta t) C(t) dt``.

        ``C(t)`` is the expected purchases in ``(T, T + t]`` (:meth:`curves`) and ``delta``
        the continuously compounded rate per model unit: a :class:`~cvalue.units.Rate` is
        converted, a float is taken as already one. Computed as ``P(alive) sum_j w_j
        E_lambda[u^(k-j) 2F1(1, b'; a+b'; u^k)]`` (module docstring, :func:`_discounted`),
        which is that integral exactly.
        """
        delta = self._discount_rate(discount, continuous=True)
        curves, inverse = self._pattern_curves(data)
        x, _, T = curves.keys
        k = curves.k
        phase = np.tile(np.arange(k, dtype=np.float64), len(x))
        cell_x, cell_T = np.repeat(x, k), np.repeat(T, k)
        given_phase = _discounted(
            k, curves.a, delta, curves.r + k * cell_x + phase, curves.alpha + cell_T,
            curves.b + cell_x + curves.s, phase,
        ).reshape(len(x), k)  # fmt: skip
        value = curves.alive_scale * np.sum(curves.weights * given_phase, axis=1)
        return frame_per_row({"dert": value}, inverse, data.index)["dert"]

    def simulate(
        self, n_customers: int, T: float | npt.ArrayLike, *, rng: np.random.Generator
    ) -> pd.DataFrame:
        """Customers drawn from the model, observed for ``T`` after their first purchase.

        Each customer gets ``lambda ~ Gamma(r, alpha)`` and ``p ~ Beta(a, b)``; the MBG/CNBD-k
        customer first survives time 0 with probability ``1 - p``. Then gaps
        ``~ Gamma(k, lambda)`` (Erlang-k) follow one another while they end before ``T``, the
        customer dropping out after each purchase with probability ``p``. The columns are
        ``frequency, recency, T`` and ``litt``. ``T`` is one age for all or one per customer;
        the arguments are :meth:`cvalue.BetaGeo.simulate`'s.
        """
        r, alpha, a, b = self._params()
        k = self._order()
        ages = np.broadcast_to(np.asarray(T, dtype=np.float64), (n_customers,)).copy()
        rate = rng.gamma(r, 1.0 / alpha, n_customers)
        p = rng.beta(a, b, n_customers)
        x, (last, litt) = np.zeros(n_customers, dtype=np.int64), np.zeros((2, n_customers))
        active = np.flatnonzero(rng.random(n_customers) >= p * self._dropout_at_start)
        while len(active):
            gap = rng.gamma(k, 1.0, len(active)) / np.maximum(rate[active], 1e-300)
            is_in = last[active] + gap <= ages[active]
            active, gap = active[is_in], gap[is_in]
            x[active] += 1
            last[active] += gap
            litt[active] += np.log(gap)
            active = active[rng.random(len(active)) >= p[active]]
        simulated = pd.DataFrame({"frequency": x, "recency": last, "T": ages, "litt": litt})
        if self.unit_ is not None:
            simulated.attrs["unit"] = self.unit_.value
        return simulated


def _checked_order(k: object, model: str) -> int:
    """``k`` as an int, checked to be a whole number >= 1."""
    if isinstance(k, bool) or not isinstance(k, int | float | np.integer) or k != int(k) or k < 1:
        raise SchemaError(f"{model}: k is the Erlang order, a whole number >= 1; got {k!r}")
    return int(k)


class BetaGeoCNBD(_CNBDFamily):
    """The BG/CNBD-k of Platzer & Reutterer (2016): parameters ``r, alpha, a, b`` and ``k``.

    Purchases are every ``k``-th event of a Poisson process with rate ``lambda ~ Gamma(r,
    alpha)`` (Erlang-``k`` gaps: regular timing for ``k > 1``); after each repeat purchase the
    customer drops out with probability ``p ~ Beta(a, b)``. ``k = 1`` is the BG/NBD.

    Options as :class:`_CNBDFamily`'s (``k``, ``n_starts``, ``penalizer``).

    Examples
    --------
    >>> from cvalue.datasets import load_cdnow
    >>> model = BetaGeoCNBD(k=1).fit(load_cdnow().summary, unit="week")
    >>> model.params_.round(3).tolist()
    [0.243, 4.414, 0.793, 2.426]
    """

    _dropout_at_start: ClassVar[int] = 0
    _first_order: ClassVar[type[Model]] = BetaGeo


class ModifiedBetaGeoCNBD(_CNBDFamily):
    """The MBG/CNBD-k of Platzer & Reutterer (2016): the BG/CNBD-k with dropout at time 0 too.

    ``k = 1`` is the MBG/NBD of Batislam, Denizel & Filiztekin (2007).

    Options as :class:`_CNBDFamily`'s (``k``, ``n_starts``, ``penalizer``).

    Examples
    --------
    >>> from cvalue.datasets import load_cdnow
    >>> model = ModifiedBetaGeoCNBD(k=1).fit(load_cdnow().summary, unit="week")
    >>> model.params_.round(3).tolist()
    [0.525, 6.183, 0.891, 1.614]
    """

    _dropout_at_start: ClassVar[int] = 1
    _first_order: ClassVar[type[Model]] = ModifiedBetaGeo
