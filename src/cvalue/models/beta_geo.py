"""The BG/NBD model: Fader, Hardie & Lee (2005), "Counting your customers the easy way".

While alive, a customer buys at a Poisson rate ``lambda ~ Gamma(r, alpha)``; after each repeat
purchase the customer drops out with probability ``p ~ Beta(a, b)``. The MBG/NBD
(:class:`~cvalue.models.modified_beta_geo.ModifiedBetaGeo`) also lets the customer drop out right
after the first purchase, at time 0; both share the code here, the MBG/NBD through
``_dropout_at_start = 1``, which shifts every ``b + x`` to ``b + x + 1``.

Everything is computed in log space on the distinct (frequency, recency, T) patterns: the
likelihood and its analytic gradient (so the fit costs what the patterns cost), P(alive), and the
conditional expectation through :func:`cvalue.models._special.expected_while_alive`, which stays
finite and accurate at ``a = 1``, for ``a + b < 1`` and for ``x`` in the hundreds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar, NamedTuple

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.special import betainc, betaln, digamma, expit, gammaln, xlogy

from cvalue.errors import SchemaError
from cvalue.models._base import (
    FloatArray,
    Model,
    Patterns,
    distinct_values,
    frame_per_row,
    require_columns,
)
from cvalue.models._checks import (
    RECENCY_SLACK,
    SUMMARY_COLUMNS,
    check_frame,
    checked_summary_patterns,
    summary_patterns,
)
from cvalue.models._contract import keyword_options
from cvalue.models._covariates import Link
from cvalue.models._curves import (
    BetaGeoCurves,
    Curves,
    beta_geo_new,
    distinct,
    float_column,
)
from cvalue.models._intervals import IntervalMethod, with_intervals
from cvalue.models._mle import Objective
from cvalue.models._patterns import smallest_codes
from cvalue.models._quadrature import gauss_legendre
from cvalue.models._special import beta_ratio, expected_while_alive
from cvalue.models._strata import Combine, StratumMethods
from cvalue.patterns import GRID_SCALES, probed_scales
from cvalue.units import Duration, Rate

__all__ = ["BetaGeo"]

_COLUMNS = SUMMARY_COLUMNS
_DENSE_PAIRS = 1 << 24  # (x, T) tables up to 16M cells are addressed directly
_BLOCK = 1 << 14  # rows per block of the grid path: a block's work arrays stay in the L2 cache
_GRID_CELLS = 1 << 21  # (frequency, age) tables up to 2M cells take the grid path
_EXP_SAFE = 700.0  # exp of an argument inside +-700 is a normal float: the odds factor safely
_DERT_WIDTH, _DERT_NODES = 1.0, 10  # panels of the discounting rule: width in v, nodes each
_DERT_TAIL = 36.0  # cut where exp(-delta t) < exp(-36): the rest is below 1e-14 of the DERT
Span = float | Duration | str
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


class _Grouped:
    """Distinct values of a column, the map back to rows, and weight sums per value."""

    __slots__ = ("distinct", "inverse", "weighted_x", "weights")

    def __init__(self, column: FloatArray, weights: FloatArray, x: FloatArray | None = None):
        self.distinct, self.inverse = distinct_values(column)
        size = self.distinct.size
        self.weights = np.bincount(self.inverse, weights=weights, minlength=size)
        self.weighted_x = (
            self.weights if x is None else np.bincount(self.inverse, weights=x, minlength=size)
        )


class _Rows:
    """Patterns to score: ``x`` (float and int), and codes of ``T`` and ``t_x`` into their values.

    A few hundred distinct ages repeat over the patterns: hashing them costs less than the logs
    it saves.
    """

    __slots__ = ("T_code", "T_values", "t_code", "t_values", "x", "x_int", "x_max")

    def __init__(self, x: FloatArray, t_x: FloatArray, T: FloatArray) -> None:
        self.x, self.x_int = x, x.astype(np.int64)
        self.x_max = int(self.x_int.max())
        self.T_code, self.T_values = pd.factorize(T)
        self.t_code, self.t_values = pd.factorize(t_x)


class _Grid(NamedTuple):
    """A column of whole multiples of ``1 / scale``, coded ``rint(value * scale) - origin``.

    The codes lie in ``[0, width)`` and give the values back exactly (:meth:`values`), like the
    grid codes of :mod:`cvalue.summary`.
    """

    scale: float
    origin: float
    width: int

    def values(self) -> FloatArray:
        """The value of every code."""
        return np.asarray((np.arange(self.width) + self.origin) / self.scale, dtype=np.float64)


class _Columns(NamedTuple):
    """Frequency as int64, recency and T as float64, and the three columns' minima and maxima."""

    x: IntArray
    t_x: FloatArray
    T: FloatArray
    lows: FloatArray
    highs: FloatArray


def _plain_columns(data: pd.DataFrame) -> _Columns | None:
    """The columns of ``data`` when their minima and maxima pass the rules, else None.

    Minima and maxima settle every rule of scoring's summary check
    (:mod:`cvalue.models._checks`) but ``recency <= T``, which the grid path checks per block,
    and whole frequencies, checked here when frequency is a float. On None the general path
    runs, and it names any problem.
    """
    columns = [data[c] for c in _COLUMNS]
    if not all(isinstance(c.dtype, np.dtype) and c.dtype.kind in "iuf" for c in columns):
        return None
    frequency = columns[0].to_numpy()
    t_x, T = (c.to_numpy().astype(np.float64, copy=False) for c in columns[1:])
    lows = np.array([frequency.min(), t_x.min(), T.min()], dtype=np.float64)
    highs = np.array([frequency.max(), t_x.max(), T.max()], dtype=np.float64)
    # NaN minima fail every comparison; the frequency bound keeps the cast to int64 exact
    if not (np.isfinite(highs).all() and lows[0] >= 0 and lows[1] >= 0 and lows[2] > 0
            and highs[0] < _GRID_CELLS):  # fmt: skip
        return None
    x = frequency.astype(np.int64, copy=False)
    if frequency.dtype.kind == "f" and not np.array_equal(x, frequency):
        return None
    return _Columns(x, t_x, T, lows, highs)


def _grid_of(values: FloatArray, low: float, high: float, scales: Sequence[float]) -> _Grid | None:
    """The grid of the first of ``scales`` that a probe of ``values`` lies on, or None.

    ``low`` and ``high`` are the column's minimum and maximum. The probe only picks the scale:
    every row is checked against it later (:func:`_coded`).
    """
    scale = next(probed_scales(values, scales), None)
    if scale is None:
        return None
    low_code, high_code = float(np.rint(low * scale)), float(np.rint(high * scale))
    if high_code - low_code + 1.0 > _GRID_CELLS:
        return None
    # codes count from 0 (no subtraction per row) when that at most doubles the table
    origin = 0.0 if high_code + 1.0 <= 2.0 * (high_code - low_code + 1.0) else low_code
    return _Grid(scale, origin, int(high_code - origin) + 1)


def _coded(
    values: FloatArray, grid: _Grid, codes: FloatArray, back: FloatArray, is_bad: BoolArray
) -> bool:
    """``codes`` = the codes of ``values`` on ``grid``; False unless they give every value back."""
    np.multiply(values, grid.scale, out=codes)
    np.rint(codes, out=codes)
    np.divide(codes, grid.scale, out=back)
    if np.not_equal(back, values, out=is_bad).any():
        return False
    if grid.origin:
        np.subtract(codes, grid.origin, out=codes)
    return True


def _recency_fits(
    t_x: FloatArray, T: FloatArray, difference: FloatArray, is_bad: BoolArray
) -> bool:
    """Whether ``recency <= T`` (with :data:`RECENCY_SLACK`) on every row of a block."""
    np.subtract(t_x, T, out=difference)
    if difference.max() <= 0.0:  # the sign of a difference of floats is exact
        return True
    np.greater(t_x, T * (1.0 + RECENCY_SLACK), out=is_bad)
    return not is_bad.any()


class _GridTables(NamedTuple):
    """The grids of T and recency (equally wide), and exp of the log-odds parts per cell.

    The cell of a row is ``frequency * width + code``, in each table.
    """

    T: _Grid
    t_x: _Grid
    age_odds: FloatArray
    recency_odds: FloatArray


def _alive_on_grid(
    columns: _Columns, tables: _GridTables, alive: FloatArray, keys: IntArray
) -> bool:
    """P(alive) of every row into ``alive``, and its (frequency, T) cell into ``keys``.

    Rows go by blocks of :data:`_BLOCK`, so that the dozen passes over a block read the cache,
    not memory. False (the work so far is dropped) when a value is off its grid or breaks
    ``recency <= T``: the general path then takes over.
    """
    x, t_x, T = columns.x, columns.t_x, columns.T
    codes, back = np.empty(_BLOCK), np.empty(_BLOCK)
    t_keys, whole = np.empty(_BLOCK, dtype=np.int64), np.empty(_BLOCK, dtype=np.int64)
    is_bad = np.empty(_BLOCK, dtype=bool)
    for start in range(0, len(x), _BLOCK):
        rows = slice(start, start + _BLOCK)
        size = len(x[rows])
        work, cells, odds = (codes[:size], back[:size], is_bad[:size]), t_keys[:size], back[:size]
        if not (_coded(T[rows], tables.T, *work) and _recency_fits(t_x[rows], T[rows], *work[1:])):
            return False
        np.multiply(x[rows], tables.T.width, out=cells)
        np.copyto(whole[:size], codes[:size], casting="unsafe")  # whole numbers: exact
        np.add(cells, whole[:size], out=keys[rows])
        if not _coded(t_x[rows], tables.t_x, *work):
            return False
        np.copyto(whole[:size], codes[:size], casting="unsafe")
        np.add(cells, whole[:size], out=cells)
        block = alive[rows]  # 1 / (1 + age_odds recency_odds), as _alive computes it
        np.take(tables.age_odds, keys[rows], out=block, mode="clip")
        np.take(tables.recency_odds, cells, out=odds, mode="clip")
        np.multiply(block, odds, out=block)
        np.add(block, 1.0, out=block)
        np.divide(1.0, block, out=block)
    return True


def _alive(log_T: FloatArray, log_t: FloatArray) -> FloatArray:
    """P(alive) from the two parts of the log-odds of having dropped out.

    ``1 / (1 + exp(log_T) exp(log_t))`` where both parts are within +-700 (the grid path
    tabulates the two exps), and ``expit`` of minus their sum elsewhere.
    """
    log_T, log_t = np.broadcast_arrays(log_T, log_t)
    is_product = (log_T < _EXP_SAFE) & (log_t > -_EXP_SAFE)
    alive = np.empty(log_T.shape)
    odds = np.exp(log_T[is_product]) * np.exp(log_t[is_product])
    alive[is_product] = 1.0 / (odds + 1.0)
    is_far = ~is_product
    alive[is_far] = expit(-(log_T[is_far] + log_t[is_far]))
    return alive


def _whole_counts(counts: npt.ArrayLike) -> FloatArray:
    """``counts`` as float64, or a SchemaError unless they are whole numbers >= 0."""
    values = np.asarray(counts, dtype=np.float64)
    if np.any(values < 0) or np.any(values != np.floor(values)):
        raise SchemaError(f"purchase counts must be whole numbers >= 0, got {counts!r}")
    return values


def _beta_geo_pmf(
    n: FloatArray, t: float, r: FloatArray | float, alpha: FloatArray | float, a: float,
    b: FloatArray | float, s: float,
) -> FloatArray:  # fmt: skip
    """P(X(t) = n) of a new customer: Fader, Hardie & Lee (2005), eq. (8), elementwise.

    ``B(a, b+n+s)/B(a, b) NB(n) + B(a+1, b+n+s-1)/B(a, b) P(N(t) >= n)`` (the second term
    when ``n + s >= 1``), where ``NB`` is the negative binomial ``(r, alpha/(alpha+t))`` and
    ``P(N(t) >= n)`` its survival function as a regularised incomplete beta function. The
    parameters broadcast against ``n``: the conditional pmf passes posterior ones per history.
    """
    z = t / (alpha + t)
    log_nb = (gammaln(r + n) - gammaln(r) - gammaln(n + 1.0)
              - r * np.log1p(t / alpha) + xlogy(n, z))  # fmt: skip
    first = np.exp(betaln(a, b + n + s) - betaln(a, b) + log_nb)
    has_second = n + s >= 1.0
    shifted = np.where(has_second, n + s - 1.0, 0.0)
    tail = np.where(n > 0, betainc(np.maximum(n, 1.0), r, z), 1.0)
    second = np.exp(betaln(a + 1.0, b + shifted) - betaln(a, b)) * tail
    return np.asarray(first + np.where(has_second, second, 0.0), dtype=np.float64)


def _pmf_given_history(
    p_alive: FloatArray, table: FloatArray, group: npt.NDArray[np.intp], counts: FloatArray,
    index: pd.Index,
) -> pd.DataFrame:  # fmt: skip
    """Each row's conditional pmf, ``(1 - P(alive)) [n = 0] + P(alive) table[key, n]``.

    ``table`` holds the pmf of a customer alive now, per distinct history key (rows) and count
    (columns); ``group`` gives each row's key. The columns are named by the counts.
    """
    found = p_alive[:, None] * table[group]
    found[:, counts == 0] += (1.0 - p_alive)[:, None]
    columns = pd.Index(counts.astype(np.int64), name="purchases")
    return pd.DataFrame(found, index=index, columns=columns, copy=False)


def _discounted_purchases(curves: Curves, rate: float, scale: float) -> FloatArray:
    """Each row's ``int_0^inf exp(-delta t) dE[X(T, T + t)]``, from its model's curves.

    Integrated by parts, ``int_0^inf delta exp(-delta t) C(key, t) dt`` per distinct key, times
    the row's ``purchase_scale``. With ``t = scale (e^v - 1)`` and ``z = delta scale`` the
    integral is ``z int_0^inf exp(v - z (e^v - 1)) C dv``: the curves of the BG/NBD family
    (singular at ``t <= -(alpha + T)``) and of the Pareto/NBD (at ``t = -(beta + T)``) are
    analytic in ``v`` within ``|Im v| < pi`` when ``scale`` is at most that distance, so
    composite Gauss-Legendre in ``v`` (panels of width 1, 10 nodes each) converges
    geometrically; the integral is cut where the weight has fallen below ``exp(-_DERT_TAIL)``
    (``C`` grows at most linearly, so the rest is below ``1e-14`` of the whole). ``rate`` is
    ``delta``, continuously compounded per model unit.
    """
    z = rate * scale
    xi, omega = gauss_legendre(_DERT_NODES)
    upper = np.log1p(_DERT_TAIL / z)
    n_panels = math.ceil(upper / _DERT_WIDTH)
    panel = upper / n_panels
    v = panel * (np.arange(n_panels)[:, None] + xi).ravel()
    weights = np.tile(omega, n_panels) * panel * z * np.exp(v - z * np.expm1(v))
    per_key = curves.cumulative(scale * np.expm1(v)) @ weights
    return np.asarray(curves.purchase_scale * per_key[curves.group], dtype=np.float64)


class _BetaGeoFamily(Model):
    """BG/NBD-type models: Poisson purchasing, Beta-geometric dropout, Gamma and Beta mixing.

    ``_dropout_at_start`` is 0 for the BG/NBD (dropout only after repeat purchases) and 1 for
    the MBG/NBD (also at time 0): ``s`` in the formulas below.
    """

    _param_names: ClassVar[tuple[str, ...]] = ("r", "alpha", "a", "b")
    _scale_columns: ClassVar[tuple[str | None, ...]] = (None, "T", None, None)
    age_column: ClassVar[str] = "T"
    summary_columns: ClassVar[tuple[str, ...]] = ("frequency", "recency", "T")
    discrete_time: ClassVar[bool] = False
    contractual: ClassVar[bool] = False
    _dropout_at_start: ClassVar[int] = 0
    _covariate_links: ClassVar[dict[str, Link]] = {
        "purchase": (("alpha", -1),), "dropout": (("a", 1), ("b", 1))}  # fmt: skip
    _by_stratum: ClassVar[dict[str, Combine]] = StratumMethods.purchase

    # --- fitting -----------------------------------------------------------------------------

    def _prepare(self, data: pd.DataFrame) -> Patterns:
        return summary_patterns(data, type(self).__name__)

    def _starting_points(self, patterns: Patterns) -> list[FloatArray]:
        w = patterns.weights
        rate = max(float(np.sum(w * patterns["frequency"])), 1.0) / float(
            np.sum(w * patterns["T"]))  # fmt: skip
        return [
            np.array([1.0, 1.0 / rate, 1.0, 1.0]),
            np.array([0.5, 0.5 / rate, 0.8, 2.5]),
            np.array([2.0, 2.0 / rate, 2.0, 0.5]),
            np.array([0.2, 0.2 / rate, 0.3, 0.5]),
        ]

    def _objective(self, patterns: Patterns) -> Objective:
        """Weighted log-likelihood and gradient: Fader, Hardie & Lee (2005) eq. (6).

        With ``s = _dropout_at_start`` and ``k = r + x``,
        ``log L = log G(k) - log G(r) + r log alpha + log B(a, b+x+s) - log B(a, b)
        + log(exp(u1) + exp(u2))``, ``u1 = -k log(alpha + T)`` and
        ``u2 = log a - log(b+x+s-1) - k log(alpha + t_x)`` (only when ``x + s >= 1``); the
        MBG/NBD is Batislam, Denizel & Filiztekin (2007) eq. (4). Written as
        ``u1 + softplus(d)`` with ``d = u2 - u1``, the share ``p2 = expit(d)`` of the second
        term carries the gradient. Terms of ``x`` alone are summed once per distinct ``x``,
        terms of ``T`` alone once per distinct ``T``; only ``d`` is formed per pattern. The beta
        ratio and its derivatives are sums over the counts (:func:`beta_ratio`), which keep their
        digits where ``a`` and ``b`` grow together and ``betaln`` differences would not.
        """
        s = float(self._dropout_at_start)
        x, T, w = patterns["frequency"], patterns["T"], patterns.weights
        by_x = _Grouped(x, w)
        by_T = _Grouped(T, w, w * x)
        x_values, x_weights = by_x.distinct, by_x.weights
        T_values, T_weights, T_weighted_x = by_T.distinct, by_T.weights, by_T.weighted_x
        x_s = x_values + s
        x_s_counts = x_s.astype(np.intp)  # whole counts (checked by summary_patterns)
        shifted_x = np.where(x_s >= 1.0, x_s - 1.0, 0.0)  # b + shifted > 0 for every x
        # only rows with x + s >= 1 have the second term (dropout after the last purchase); they
        # are kept as their weights and three codes into distinct values, the smallest integers
        # that hold them: a block's arrays per pattern are 8 bytes and three codes, not copies
        second = x + s >= 1.0
        w2 = w[second]
        x2_code = smallest_codes(by_x.inverse[second], x_values.size)
        T2_code = smallest_codes(by_T.inverse[second], T_values.size)
        x2 = x[second]  # no repeat purchase: no recency
        t_x_values, t_x2_codes = distinct_values(np.where(x2 > 0, patterns["recency"][second], 0.0))
        t_x2_code = smallest_codes(t_x2_codes, t_x_values.size)
        del x2
        del by_x, by_T, second, t_x2_codes
        total = float(np.sum(w))
        tiny = np.finfo(np.float64).tiny

        def objective(params: FloatArray) -> tuple[float, FloatArray]:
            if not np.all(np.isfinite(params) & (params > 0)):
                # exp(theta) under- or overflowed: outside the model, the engine backs off
                return -np.inf, np.zeros(4)
            r, alpha, a, b = (float(v) for v in params)
            aT, at = alpha + T_values, alpha + t_x_values
            log_aT = np.log(aT)
            k_weight_T = r * T_weights + T_weighted_x  # sum of w k for each T
            # logs of distinct T and t_x only (days on a grid repeat a lot), gathered per row
            gap = log_aT.take(T2_code) - np.log(at).take(t_x2_code)
            k2 = (r + x_values).take(x2_code)
            d = (np.log(a) - np.log(b + shifted_x)).take(x2_code) + k2 * gap  # u2 - u1
            p2 = expit(d)
            wp2 = w2 * p2
            # softplus(d) = d - log(expit(d)), cheaper than logaddexp; where expit(d)
            # underflows (d < -700) softplus(d) = exp(d) is below 1e-304: 0
            softplus = np.where(d < -700.0, 0.0, d - np.log(np.maximum(p2, tiny)))
            survival = beta_ratio(a, b, x_s_counts)  # B(a, b + x + s) / B(a, b)
            constant = gammaln(r + x_values) - gammaln(r) + survival.log
            log_likelihood = (
                float(np.sum(x_weights * constant)) + r * np.log(alpha) * total
                - float(np.sum(k_weight_T * log_aT)) + float(np.sum(w2 * softplus))
            )  # fmt: skip
            d_r = (
                float(np.sum(x_weights * (digamma(r + x_values) - digamma(r))))
                + total * np.log(alpha) - float(np.sum(T_weights * log_aT))
                + float(np.sum(wp2 * gap))
            )  # fmt: skip
            elapsed = T_values.take(T2_code) - t_x_values.take(t_x2_code)
            d_alpha = (
                total * r / alpha - float(np.sum(k_weight_T / aT))
                - float(np.sum(wp2 * k2 * elapsed / (aT.take(T2_code) * at.take(t_x2_code))))
            )  # fmt: skip
            wp2_by_x = np.bincount(x2_code, weights=wp2, minlength=x_values.size)
            d_a = float(np.sum(x_weights * survival.d_a)) + float(np.sum(wp2)) / a
            d_b = float(np.sum(x_weights * survival.d_b)) - float(
                np.sum(wp2_by_x / (b + shifted_x)))  # fmt: skip
            return log_likelihood, np.array([d_r, d_alpha, d_a, d_b])

        return objective

    # --- predictions, elementwise ------------------------------------------------------------

    def _params(self) -> tuple[float, float, float, float]:
        self._check_fitted()
        self._check_plain()
        r, alpha, a, b = (float(v) for v in self.params_.to_numpy())
        return r, alpha, a, b

    def _alive_logs(
        self, x: FloatArray, gap_T: FloatArray, gap_t: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        """The log-odds of having dropped out against being alive, as a part in T and one in t_x.

        Fader, Hardie & Lee (2005) eq. (13) and Batislam et al. (2007) eq. (7): the odds are
        ``a/(b+x+s-1) ((alpha+T)/(alpha+t_x))^(r+x)``, and 0 without a dropout opportunity
        (BG/NBD, ``x = 0``). Split at ``alpha``, with ``gap_T = log((alpha+T)/alpha)`` and
        ``gap_t = log((alpha+t_x)/alpha)``, they are ``log(a/(b+x+s-1)) + (r+x) gap_T`` and
        ``-(r+x) gap_t``: each part depends on two columns, so the grid path tabulates it.
        Everything is elementwise, so a row gets the same bits on either path and in any batch.
        """
        r, _, a, b = self._params()
        x_s = x + float(self._dropout_at_start)
        has_second = x_s >= 1.0
        log_ratio = np.where(
            has_second, np.log(a) - np.log(b + np.where(has_second, x_s - 1.0, 0.0)), -np.inf
        )
        k = r + x
        return log_ratio + k * gap_T, -(k * gap_t)

    def _gaps(self, values: FloatArray) -> FloatArray:
        """``log((alpha + values) / alpha)``, as a difference of logs."""
        _, alpha, _, _ = self._params()
        return np.asarray(np.log(alpha + values) - np.log(alpha), dtype=np.float64)

    def _while_alive_at(self, t: float, x: FloatArray, T: FloatArray) -> FloatArray:
        """E[Y(t) | alive at T, x, T]: Fader, Hardie & Lee (2005) eq. (10) without P(alive).

        Batislam et al. (2007) eq. (8) for the MBG/NBD. The posterior given alive is
        ``lambda ~ Gamma(r+x, alpha+T)``, ``p ~ Beta(a, b+x+s)``; eq. (10) is P(alive) times this.
        It depends on (x, T) only, so both paths sum its series once per distinct pair.
        """
        r, alpha, a, b = self._params()
        s = float(self._dropout_at_start)
        return expected_while_alive(r + x, b + x + s, a, t / (alpha + T + t))

    # --- the general path: distinct patterns ---------------------------------------------------

    def _p_alive(self, rows: _Rows) -> FloatArray:
        """P(alive | x, t_x, T) of each pattern (:meth:`_alive_logs`).

        Logs are taken once per distinct value of ``T`` and ``t_x`` and gathered per pattern.
        """
        gap_T = self._gaps(rows.T_values)[rows.T_code]
        gap_t = self._gaps(rows.t_values)[rows.t_code]
        return _alive(*self._alive_logs(rows.x, gap_T, gap_t))

    def _while_alive(self, t: float, rows: _Rows) -> FloatArray:
        """:meth:`_while_alive_at` of each pattern, computed once per distinct (x, T)."""
        n_T = len(rows.T_values)
        key = rows.x_int * n_T + rows.T_code
        if (rows.x_max + 1) * n_T <= _DENSE_PAIRS:  # a direct-address table beats hashing
            is_seen = np.zeros((rows.x_max + 1) * n_T, dtype=bool)
            is_seen[key] = True
            seen = np.flatnonzero(is_seen)
            x1, T1 = (seen // n_T).astype(np.float64), rows.T_values[seen % n_T]
            table = np.empty(is_seen.size)
            table[seen] = self._while_alive_at(t, x1, T1)
            return np.asarray(table[key], dtype=np.float64)
        pair, _ = pd.factorize(key)
        x1, T1 = np.empty(int(pair.max()) + 1), np.empty(int(pair.max()) + 1)
        x1[pair], T1[pair] = rows.x, rows.T_values[rows.T_code]
        return np.asarray(self._while_alive_at(t, x1, T1)[pair], dtype=np.float64)

    def _on_patterns(self, data: pd.DataFrame, span: float | None) -> pd.DataFrame:
        """:meth:`_scored` computed once per distinct (frequency, recency, T), then gathered."""
        values, inverse = checked_summary_patterns(data, type(self).__name__)
        x, t_x, T = (values[c] for c in _COLUMNS)
        rows = _Rows(x, np.where(x > 0, t_x, 0.0), T)
        scores = {"p_alive": self._p_alive(rows)}
        if span is not None:
            scores["expected_purchases"] = scores["p_alive"] * self._while_alive(span, rows)
        return frame_per_row(scores, inverse, data.index)

    # --- the grid path: per row, by table look-ups ---------------------------------------------

    def _grid_tables(self, columns: _Columns) -> _GridTables | None:
        """The grids of T and recency and the odds tables, or None when the grid path cannot run.

        It cannot when a column is on no grid, a table would be too big, or a log-odds part is
        beyond +-700 somewhere (its exp would leave the normal floats; :func:`_alive` then
        uses ``expit``, which has no table).
        """
        (_, t_low, T_low), (x_max, t_high, T_high) = columns.lows, columns.highs
        T_grid = _grid_of(columns.T, T_low, T_high, GRID_SCALES)
        t_grid = None if T_grid is None else _grid_of(
            columns.t_x, t_low, t_high, (T_grid.scale, *GRID_SCALES))  # fmt: skip
        if T_grid is None or t_grid is None:
            return None
        width = max(T_grid.width, t_grid.width)  # one width: one product x * width per row
        if (x_max + 1.0) * width > _GRID_CELLS:
            return None
        T_grid, t_grid = T_grid._replace(width=width), t_grid._replace(width=width)
        x = np.arange(x_max + 1.0)[:, None]
        log_T, log_t = self._alive_logs(x, self._gaps(T_grid.values()), self._gaps(t_grid.values()))
        log_t[0] = 0.0  # no repeat purchase: recency counts as 0, and exp(0) = exp(-(r * 0))
        if log_T.max() >= _EXP_SAFE or log_t.min() <= -_EXP_SAFE:
            return None
        return _GridTables(T_grid, t_grid, np.exp(log_T).ravel(), np.exp(log_t).ravel())

    def _on_grid(self, data: pd.DataFrame, span: float | None) -> pd.DataFrame | None:
        """:meth:`_scored` per row, without compression, or None when the general path must run.

        When T and recency lie on a grid (whole days in any unit, as :func:`cvalue.rfm_summary`
        makes them), every row is a few look-ups in tables per (frequency, T) and
        (frequency, recency) cell: no hashing, no sorting, no transcendental function per row.
        """
        columns = _plain_columns(data)
        tables = None if columns is None else self._grid_tables(columns)
        if columns is None or tables is None:
            return None
        scores = np.empty((1 if span is None else 2, len(columns.x)))
        keys = np.empty(len(columns.x), dtype=np.int64)
        if not _alive_on_grid(columns, tables, scores[0], keys):
            return None
        if span is not None:
            n_cells = tables.age_odds.size
            cells = np.flatnonzero(np.bincount(keys, minlength=n_cells))
            x1 = (cells // tables.T.width).astype(np.float64)
            table = np.zeros(n_cells)
            table[cells] = self._while_alive_at(span, x1, tables.T.values()[cells % tables.T.width])
            for start in range(0, len(keys), _BLOCK):
                rows = slice(start, start + _BLOCK)
                np.take(table, keys[rows], out=scores[1, rows], mode="clip")
                np.multiply(scores[0, rows], scores[1, rows], out=scores[1, rows])
        names = ["p_alive", "expected_purchases"][: len(scores)]
        return pd.DataFrame(scores.T, index=data.index, columns=names, copy=False)

    # --- public predictions ------------------------------------------------------------------

    def _scored(self, data: pd.DataFrame, span: float | None) -> pd.DataFrame:
        """P(alive) and, given ``span``, expected purchases over it, for every row of ``data``.

        The grid path serves summaries on a grid; anything else, bad input included, goes the
        general path, which checks the rules and names every problem. Both compute the same
        elementwise formulas, so they agree to the last bit.
        """
        self._check_fitted()
        check_frame(data, type(self).__name__)
        scored = self._on_grid(data, span)
        return self._on_patterns(data, span) if scored is None else scored

    def _horizon(self, t: Span) -> float:
        span = self._in_units(t)
        if not np.isfinite(span) or span < 0:
            raise SchemaError(f"the horizon must be a finite time span >= 0, got {t!r}")
        return span

    def curves(self, data: pd.DataFrame | None = None) -> Curves:
        """Survival and cumulative purchases from now on, per distinct ``(x, T)``.

        ``data=None`` is a customer just acquired: ``x = 0, T = 0``, alive with
        ``B(a, b + s) / B(a, b)`` (1 for the BG/NBD, ``b / (a + b)`` for the MBG/NBD).
        """
        r, alpha, a, b = self._params()
        s = float(self._dropout_at_start)
        if data is None:
            return beta_geo_new(r, alpha, a, b, s)
        require_columns(data, self.summary_columns, type(self).__name__)
        alive = self.p_alive(data).to_numpy(dtype=np.float64)
        group, keys = distinct(float_column(data, "frequency"), float_column(data, "T"))
        return BetaGeoCurves(group, alive, alive, keys, r, alpha, a, b, s)

    def p_alive(self, data: pd.DataFrame) -> pd.Series:
        """The probability that each customer is still alive at the end of the observation.

        Parameters
        ----------
        data
            A summary with ``frequency``, ``recency`` and ``T`` in the model's unit.
        """
        return self._scored(data, None)["p_alive"]

    @keyword_options(
        "horizon", leading="data", old="t, data", new="data, horizon=t", renamed={"t": "horizon"}
    )
    def expected_purchases(self, data: pd.DataFrame, *, horizon: Span) -> pd.Series:
        """Expected purchases of each customer in the next ``horizon``, given their history.

        Parameters
        ----------
        data
            A summary with ``frequency``, ``recency`` and ``T`` in the model's unit.
        horizon
            A number in the model's unit, a string such as ``"52w"`` or a Duration.
        """
        return self._scored(data, self._horizon(horizon))["expected_purchases"]

    @keyword_options("horizon", leading=None, old="t", new="horizon=t", renamed={"t": "horizon"})
    def expected_purchases_new(self, *, horizon: Span) -> float:
        """E[X(t)] for a new customer: Fader, Hardie & Lee (2005) eq. (7).

        For the MBG/NBD (Batislam et al. 2007) the customer survives time 0 with probability
        ``b / (a + b)`` and then has ``p ~ Beta(a, b + 1)``, which gives
        ``b / (a - 1) [1 - (alpha/(alpha+t))^r 2F1(r, b+1; a+b; t/(alpha+t))]``.
        """
        span = self._horizon(horizon)
        r, alpha, a, b = self._params()
        s = float(self._dropout_at_start)
        survives_start = np.exp(betaln(a, b + s) - betaln(a, b))
        z = np.array([span / (alpha + span)])
        return float(survives_start * expected_while_alive(r, b + s, a, z)[0])

    @keyword_options(
        "horizon", leading="counts", old="n, t", new="counts, horizon=t",
        renamed={"n": "counts", "t": "horizon"},
    )  # fmt: skip
    def purchase_pmf(
        self, counts: npt.ArrayLike, *, horizon: Span, data: pd.DataFrame | None = None
    ) -> float | FloatArray | pd.DataFrame:
        """P(X(t) = n) for a new customer, or P(X(T, T + t) = n | x, t_x, T) given ``data``.

        ``n`` is ``counts``, ``t`` the ``horizon``. A new customer: Fader, Hardie & Lee (2005),
        eq. (8); a scalar ``n`` gives a float, an array an array. Given each history in
        ``data``: a DataFrame indexed like ``data``, one column per count.

        The conditional pmf follows the derivation of Fader & Hardie's note 028 ("Deriving the
        conditional PMF of the Pareto/NBD model") for the BG/NBD: a customer alive at ``T`` has
        the posterior ``lambda ~ Gamma(r + x, alpha + T)``, ``p ~ Beta(a, b + x + s)`` (Fader,
        Hardie & Lee 2005, eq. 10; Batislam et al. 2007, eq. 8) and from then on purchases as a
        new BG/NBD customer (no dropout at ``T`` itself, also for the MBG/NBD), so
        ``P = (1 - P(alive)) [n = 0] + P(alive) P_new(n)``, ``P_new`` eq. (8) with ``s = 0`` at
        ``r + x``, ``alpha + T`` and ``b + x + s``. At ``x = t_x = T = 0`` it is eq. (8) itself.
        """
        span = self._horizon(horizon)
        r, alpha, a, b = self._params()
        s = float(self._dropout_at_start)
        values = _whole_counts(counts)
        if data is None:
            pmf = _beta_geo_pmf(values, span, r, alpha, a, b, s)
            return float(pmf) if pmf.ndim == 0 else np.asarray(pmf, dtype=np.float64)
        curves = self.curves(data)
        x, T = (key[:, None] for key in curves.keys)
        flat = values.ravel()
        table = _beta_geo_pmf(flat[None, :], span, r + x, alpha + T, a, b + x + s, 0.0)
        return _pmf_given_history(curves.alive_scale, table, curves.group, flat, data.index)

    @keyword_options("horizon", leading="data", old="data, horizon", new="data, horizon=horizon")
    def predict(
        self, data: pd.DataFrame, *, horizon: Span = "52w", interval: float | None = None,
        method: IntervalMethod = "draws", n_draws: int = 200,
        rng: np.random.Generator | None = None,
    ) -> pd.DataFrame:  # fmt: skip
        """P(alive) and expected purchases over ``horizon`` for each customer, indexed like data.

        ``interval`` (such as 0.9) adds per-customer bounds: see :func:`with_intervals`.
        """
        scored = self._scored(data, self._horizon(horizon))
        return with_intervals(self, data, scored, horizon=horizon, level=interval, method=method,
                              n_draws=n_draws, rng=rng)  # fmt: skip

    @keyword_options(
        "discount", leading="data", old="discount_rate, data", new="data, discount=discount_rate",
        renamed={"discount_rate": "discount"},
    )  # fmt: skip
    def dert(self, data: pd.DataFrame, *, discount: Rate | float) -> pd.Series:
        """Discounted expected residual transactions: ``int_0^inf e^{-delta t} dE[X(T, T + t)]``.

        No closed form is published for the BG/NBD family; the integral is
        ``P(alive) int_0^inf delta e^{-delta t} C(t) dt`` over the model's own cumulative
        purchases while alive ``C`` (:meth:`curves`; Fader, Hardie & Lee 2005, eq. 10, and
        Batislam et al. 2007, eq. 8), by the quadrature of :func:`_discounted_purchases`
        (within 1e-13 relative of adaptive quadrature in the tests).

        Parameters
        ----------
        data
            A summary with ``frequency``, ``recency`` and ``T`` in the model's unit.
        discount
            A :class:`cvalue.units.Rate` (effective annual, converted to the continuously
            compounded rate per model unit), or a float that already is one.
        """
        delta = self._discount_rate(discount, continuous=True)
        _, alpha, _, _ = self._params()
        values = _discounted_purchases(self.curves(data), delta, alpha)
        return pd.Series(values, index=data.index, name="dert")

    def simulate(
        self, n_customers: int, T: float | npt.ArrayLike, *, rng: np.random.Generator
    ) -> pd.DataFrame:
        """Customers drawn from the model, observed for ``T`` (continuous time).

        Each customer gets ``lambda ~ Gamma(r, alpha)`` and ``p ~ Beta(a, b)``; an immortal
        customer would make ``N ~ Poisson(lambda T)`` repeat purchases, and the customer drops
        out after ``K ~ Geometric(p) - s`` of them, so ``x = min(N, K)``. The last purchase is the
        ``x``-th of ``N`` uniform times on ``(0, T]``: ``t_x = T Beta(x, N - x + 1)``.

        Parameters
        ----------
        n_customers
            How many customers.
        T
            Their ages at the observation end: one number or one per customer.
        rng
            The random generator.
        """
        r, alpha, a, b = self._params()
        ages = np.broadcast_to(np.asarray(T, dtype=np.float64), (n_customers,)).copy()
        rate = rng.gamma(r, 1.0 / alpha, n_customers)
        # p = 0 (a Beta draw that underflows) would make the geometric draw undefined
        p = np.clip(rng.beta(a, b, n_customers), 1e-12, 1.0)
        n_possible = rng.poisson(rate * ages)
        before_dropout = rng.geometric(p) - self._dropout_at_start
        x = np.minimum(n_possible, before_dropout)
        has_repeat = x > 0
        last = np.zeros(n_customers)
        last[has_repeat] = ages[has_repeat] * rng.beta(
            x[has_repeat], n_possible[has_repeat] - x[has_repeat] + 1)  # fmt: skip
        simulated = pd.DataFrame({"frequency": x, "recency": last, "T": ages})
        if self.unit_ is not None:
            simulated.attrs["unit"] = self.unit_.value
        return simulated


class BetaGeo(_BetaGeoFamily):
    """The BG/NBD model of Fader, Hardie & Lee (2005), parameters ``r, alpha, a, b``.

    Repeat purchases follow a Poisson process with rate ``lambda ~ Gamma(r, alpha)`` while the
    customer is alive; after each repeat purchase the customer drops out with probability
    ``p ~ Beta(a, b)``. A customer with no repeat purchase is certainly alive.

    Parameters
    ----------
    n_starts
        How many starting points the optimiser tries.
    penalizer
        L2 penalty on the natural parameters (0: plain maximum likelihood).

    Examples
    --------
    >>> from cvalue.datasets import load_cdnow
    >>> model = BetaGeo().fit(load_cdnow().summary, unit="week")
    >>> model.params_.round(3).tolist()
    [0.243, 4.414, 0.793, 2.426]
    >>> round(model.log_likelihood_, 1)
    -9582.4
    """

    _dropout_at_start: ClassVar[int] = 0
