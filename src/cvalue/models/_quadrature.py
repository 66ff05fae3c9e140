r"""The Pareto/NBD lifetime integral by Gauss-Legendre quadrature in ``u = ln(c + tau)``.

Conditioning the Pareto/NBD on the customer's lifetime turns its likelihood (Schmittlein,
Morrison & Colombo 1987, eq. 22; Fader, Hardie & Lee 2005b, eq. 18) into

.. math::

    I(a, b) = \int_a^b (\alpha + \tau)^{-(r+x)} (\beta + \tau)^{-(s+1)} \, d\tau,

which needs no Gauss hypergeometric function and has parameter derivatives under the integral
sign (``notes/pareto-nbd.md``, section 1). With ``c = min(alpha, beta)`` and ``u = ln(c + tau)``
the factor with the smaller constant becomes an exponential in ``u`` and the other one is analytic
in the strip ``|Im u| < pi``, so Gauss-Legendre converges geometrically whatever ``alpha / beta``
and ``x`` are (section 2).

Two variants share this rule:

- :func:`integrate_rows` applies it once per row on ``[a, b]``, cut where the integrand's tail is
  below ``exp(-cutoff)`` of the part kept (general data, and the fallback);
- :class:`LifetimeGrid` puts the nodes on the segments between the distinct times of the data (a
  day grid has a few hundred) once per evaluation and per distinct ``x``, and answers each row from
  suffix sums (section 2b); rows that cross a steep segment are recomputed per row.

:class:`LifetimeIntegrator` picks the cheaper variant for the data it is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np
import numpy.typing as npt

from cvalue.models._patterns import distinct_values, smallest_codes

__all__ = [
    "LifetimeGrid",
    "LifetimeIntegral",
    "LifetimeIntegrator",
    "gauss_legendre",
    "integrate_rows",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]

ROW_NODES = 24  # per-row rule: 1e-11 relative on the note's stress grid
ROW_CUTOFF = 30.0  # the neglected tail is below exp(-30) of the integral
SEGMENT_NODES = 6  # shared-node rule: nodes per segment between data times
STEEP_SEGMENT = 3.0  # 6-node GL of exp(-3 u) on [0, 1] is exact to 1e-10; steeper goes per row
_MAX_EXPONENT = 200.0  # cut-offs beyond exp(200) interval ratios never bind; avoids overflow
_ROW_CHUNK = 1 << 13  # rows per block: rows x nodes arrays of 1.5 MB stay in the cache
_ILL_CONDITIONED = 1e-6  # a row's share of the suffix sum below this is recomputed per row


@lru_cache(maxsize=8)
def gauss_legendre(n_nodes: int) -> tuple[FloatArray, FloatArray]:
    """Gauss-Legendre nodes and weights on ``[0, 1]`` (read-only, cached)."""
    nodes, weights = np.polynomial.legendre.leggauss(n_nodes)
    nodes, weights = (nodes + 1.0) / 2.0, weights / 2.0
    nodes.flags.writeable = False
    weights.flags.writeable = False
    return nodes, weights


@dataclass(frozen=True, slots=True)
class LifetimeIntegral:
    """``I = scaled * exp(log_scale)`` per row and, for gradients, the factor means.

    The split spares a logarithm per row where the caller only needs ``I`` beside another term
    (the shared-node variant's ``scaled`` is in ``(0, 1]``; the per-row one's is 1).
    ``mean_log_alpha`` is ``<ln(alpha + tau)>`` under the normalised integrand, ``mean_inv_alpha``
    is ``<1 / (alpha + tau)>``, and likewise for ``beta``; so that ``d ln I / d r =
    -mean_log_alpha`` and ``d ln I / d alpha = -(r + x) mean_inv_alpha`` (note, section 1).
    The means are empty arrays when they were not asked for.
    """

    log_scale: FloatArray
    scaled: FloatArray
    mean_log_alpha: FloatArray
    mean_inv_alpha: FloatArray
    mean_log_beta: FloatArray
    mean_inv_beta: FloatArray

    @property
    def log_value(self) -> FloatArray:
        """``ln I`` per row."""
        result: FloatArray = self.log_scale + np.log(self.scaled)
        return result


def _empty() -> FloatArray:
    return np.empty(0, dtype=np.float64)


def _log_offsets(
    spread: FloatArray, start: FloatArray | float, alpha: float, beta: float
) -> tuple[FloatArray, FloatArray]:
    """``ln(alpha + tau) - ln(alpha + a)`` and the same for ``beta``, at ``u``-offsets ``spread``.

    ``spread = Delta * xi`` is the node's ``u`` minus the interval's; ``tau - a = (c + a)
    expm1(spread)``. The factor with the smaller constant has exactly ``spread`` as its offset.
    """
    c = min(alpha, beta)
    grown = (c + start) * np.expm1(spread)
    offset_alpha = spread if alpha <= beta else np.log1p(grown / (alpha + start))
    offset_beta = spread if beta < alpha else np.log1p(grown / (beta + start))
    return offset_alpha, offset_beta


def _cut_width(
    x: FloatArray, a: FloatArray, b: FloatArray, params: tuple[float, float, float, float],
    cutoff: float,
) -> FloatArray:  # fmt: skip
    """The width of ``[a, b]`` kept: the tail beyond is below ``exp(-cutoff)`` of the rest.

    For a factor ``(k + tau)^{-p}`` with ``p > 1``, the tail past ``cut`` over the integral up to
    it is at most ``rho / (1 - rho)`` with ``rho = ((k + a) / (k + cut))^{p - 1}``; the other,
    decreasing, factor only lowers it. So ``k + cut = (k + a) exp(cutoff / (p - 1))``.
    """
    r, alpha, s, beta = params
    width = b - a
    power_alpha = r + x - 1.0
    has_alpha_cut = power_alpha > cutoff / _MAX_EXPONENT
    # masked: the alpha factor only bounds the tail when its power exceeds 1
    exponent_alpha = np.divide(cutoff, power_alpha, out=np.full_like(x, _MAX_EXPONENT),
                               where=has_alpha_cut)  # fmt: skip
    width = np.minimum(width, (alpha + a) * np.expm1(exponent_alpha))
    exponent_beta = min(cutoff / s, _MAX_EXPONENT)
    result: FloatArray = np.minimum(width, (beta + a) * np.expm1(exponent_beta))
    return result


def _rows_block(
    x: FloatArray, a: FloatArray, b: FloatArray, params: tuple[float, float, float, float],
    n_nodes: int, cutoff: float, with_means: bool,
) -> tuple[FloatArray, ...]:  # fmt: skip
    r, alpha, s, beta = params
    c = min(alpha, beta)
    xi, omega = gauss_legendre(n_nodes)
    width = _cut_width(x, a, b, params, cutoff)
    delta = np.log1p(width / (c + a))
    spread = delta[:, None] * xi
    offset_alpha, offset_beta = _log_offsets(spread, a[:, None], alpha, beta)
    # node weight W_k g_k / (Delta (c + a)): omega_k e^{spread} times the scaled integrand
    weighted = omega * np.exp(spread - (r + x)[:, None] * offset_alpha - (s + 1.0) * offset_beta)
    total = np.sum(weighted, axis=1)
    log_alpha_a, log_beta_a = np.log(alpha + a), np.log(beta + a)
    log_value = (np.log(delta) + np.log(c + a) + np.log(total)
                 - (r + x) * log_alpha_a - (s + 1.0) * log_beta_a)  # fmt: skip
    if not with_means:
        return (log_value,)
    mean_log_alpha = log_alpha_a + np.sum(weighted * offset_alpha, axis=1) / total
    mean_log_beta = log_beta_a + np.sum(weighted * offset_beta, axis=1) / total
    inv_alpha = np.sum(weighted * np.exp(-offset_alpha), axis=1) / total / (alpha + a)
    inv_beta = np.sum(weighted * np.exp(-offset_beta), axis=1) / total / (beta + a)
    return log_value, mean_log_alpha, inv_alpha, mean_log_beta, inv_beta


def integrate_rows(
    x: FloatArray, a: FloatArray, b: FloatArray, params: tuple[float, float, float, float],
    *, with_means: bool, n_nodes: int = ROW_NODES, cutoff: float = ROW_CUTOFF,
) -> LifetimeIntegral:  # fmt: skip
    """The lifetime integral ``I(a, b)`` of each row by its own Gauss-Legendre rule.

    Note ``pareto-nbd.md``, section 2a: nodes ``tau_k = (c + a) exp(Delta xi_k) - c`` with
    ``Delta = ln((c + cut) / (c + a))``, weights ``omega_k Delta (c + tau_k)``, and the integrand
    scaled by its value at ``a`` so that large ``x`` cannot underflow.

    Parameters
    ----------
    x, a, b
        Repeat purchases and the interval, ``a < b``, per row.
    params
        ``(r, alpha, s, beta)``.
    with_means
        Whether to compute the factor means the gradient needs.
    n_nodes, cutoff
        The rule's size and the tail cut-off exponent.
    """
    chunks = [slice(i, i + _ROW_CHUNK) for i in range(0, len(x), _ROW_CHUNK)]
    blocks = [
        _rows_block(x[part], a[part], b[part], params, n_nodes, cutoff, with_means)
        for part in chunks
    ]
    if not blocks:
        return LifetimeIntegral(*[_empty()] * 6)
    parts = [np.concatenate(column) for column in zip(*blocks, strict=True)]
    ones = np.ones_like(parts[0])
    if not with_means:
        return LifetimeIntegral(parts[0], ones, *[_empty()] * 4)
    return LifetimeIntegral(parts[0], ones, *parts[1:])


class LifetimeGrid:
    """The lifetime integral on rows whose limits lie on a shared set of times.

    Note ``pareto-nbd.md``, section 2b. The distinct limits ``P_0 < ... < P_J`` cut time into
    segments, each integrated with :data:`SEGMENT_NODES` nodes in ``u = ln(c + tau)`` once per
    distinct ``x``; a row ``[P_i, P_j)`` is the difference of two suffix sums over segments.
    Rows crossing a segment where the integrand falls by more than ``exp(STEEP_SEGMENT)``, or
    whose difference would lose more than six digits, are recomputed with :func:`integrate_rows`.

    Parameters
    ----------
    x, a, b
        Repeat purchases and the interval, ``a < b``, per row.
    """

    __slots__ = ("_breaks", "_ends", "_levels", "_starts", "_which")

    def __init__(self, x: FloatArray, a: FloatArray, b: FloatArray) -> None:
        # a row keeps the codes of its x and its limits among their distinct values, in the
        # smallest unsigned integers that hold them: a few bytes a row, not three float copies
        self._breaks, where = distinct_values(np.concatenate([a, b]))
        self._levels, which = distinct_values(x)
        self._which = smallest_codes(which, len(self._levels))
        self._starts = smallest_codes(where[: len(a)], len(self._breaks))
        self._ends = smallest_codes(where[len(a) :], len(self._breaks))

    def _flat(self, where: npt.NDArray[np.unsignedinteger]) -> IntArray:
        """Flat indices of the rows' (distinct x, time) cells in a ``levels x breaks`` table."""
        result: IntArray = self._which.astype(np.intp) * len(self._breaks) + where
        return result

    @property
    def size(self) -> int:
        """Node evaluations per sweep: distinct ``x`` x segments x nodes."""
        return len(self._levels) * (len(self._breaks) - 1) * SEGMENT_NODES

    def _segments(
        self, params: tuple[float, float, float, float], with_means: bool
    ) -> tuple[FloatArray, list[FloatArray], FloatArray]:
        """Segment log-integrals, the positive segment means, and the steepness per (x, segment)."""
        r, alpha, s, beta = params
        c = min(alpha, beta)
        xi, omega = gauss_legendre(SEGMENT_NODES)
        start = self._breaks[:-1]
        delta = np.log1p(np.diff(self._breaks) / (c + start))
        spread = delta[:, None] * xi
        offset_alpha, offset_beta = _log_offsets(spread, start[:, None], alpha, beta)
        power = (r + self._levels)[:, None, None]
        # floored so that no segment underflows to zero: a segment that steep is flagged, and
        # every row crossing it is recomputed per row
        exponent = np.maximum(spread - power * offset_alpha - (s + 1.0) * offset_beta, -600.0)
        weighted = omega * np.exp(exponent)
        total = np.sum(weighted, axis=2)
        log_alpha, log_beta = np.log(alpha + self._breaks), np.log(beta + self._breaks)
        log_segment = (np.log(delta * (c + start)) + np.log(total)
                       - power[:, :, 0] * log_alpha[:-1] - (s + 1.0) * log_beta[:-1])  # fmt: skip
        steepness = power[:, :, 0] * np.diff(log_alpha) + (s + 1.0) * np.diff(log_beta)
        if not with_means:
            return log_segment, [], steepness
        # ln-means shifted by the first time's logs (the shift is added back per row)
        factors = (offset_alpha, np.exp(-offset_alpha), offset_beta, np.exp(-offset_beta))
        sums = [np.einsum("mjk,jk->mj", weighted, factor) / total for factor in factors]
        means = [
            log_alpha[:-1] - log_alpha[0] + sums[0],
            sums[1] / (alpha + start),
            log_beta[:-1] - log_beta[0] + sums[2],
            sums[3] / (beta + start),
        ]
        return log_segment, means, steepness

    def evaluate(
        self, params: tuple[float, float, float, float], *, with_means: bool
    ) -> LifetimeIntegral:
        """``ln I`` per row (and the factor means), as :func:`integrate_rows` returns them.

        Suffix sums run in linear space after scaling each distinct ``x`` by its largest segment;
        a row is then ``I = exp(top) (C[a] - C[b])`` and a mean is ``(N[a] - N[b]) / (C[a] -
        C[b])``, with no transcendental function per row. An ``x`` whose segments span more than
        ``exp(650)`` (huge ``x``) would underflow there, so its rows go per row, as do steep and
        ill-conditioned ones.
        """
        log_segment, means, steepness = self._segments(params, with_means)
        top = np.max(log_segment, axis=1, keepdims=True)
        is_wide = (top[:, 0] - np.min(log_segment, axis=1)) > 650.0
        scaled = np.exp(log_segment - top)
        stacked = np.stack([scaled, *(scaled * mean for mean in means)])
        suffix = np.cumsum(stacked[:, :, ::-1], axis=2)[:, :, ::-1]
        suffix = np.concatenate([suffix, np.zeros((*suffix.shape[:2], 1))], axis=2)
        flat = suffix.reshape(len(suffix), -1)
        first, last = self._flat(self._starts), self._flat(self._ends)
        head = flat[0, first]
        tiny = np.finfo(np.float64).tiny
        # floors keep the placeholders of rows that are redone below finite
        kept = np.maximum(head - flat[0, last], tiny)
        redo = (kept < _ILL_CONDITIONED * head) | is_wide[self._which]
        is_steep = steepness > STEEP_SEGMENT
        if np.any(is_steep):
            count = np.cumsum(is_steep, axis=1)
            steep = np.concatenate([np.zeros((len(count), 1), dtype=count.dtype), count], axis=1)
            redo |= steep.ravel()[last] > steep.ravel()[first]
        shifts = (np.log(params[1] + self._breaks[0]), 0.0, np.log(params[3] + self._breaks[0]),
                  0.0)  # fmt: skip
        mean_values = [
            shift + (flat[i, first] - flat[i, last]) / kept
            for i, shift in enumerate(shifts[: len(means)], start=1)
        ]
        result = LifetimeIntegral(top[self._which, 0], kept, *(mean_values or [_empty()] * 4))
        if np.any(redo):
            result = self._redo(result, redo, params, with_means)
        return result

    def _redo(
        self, result: LifetimeIntegral, redo: npt.NDArray[np.bool_],
        params: tuple[float, float, float, float], with_means: bool,
    ) -> LifetimeIntegral:  # fmt: skip
        x = self._levels.take(self._which[redo])
        a, b = self._breaks.take(self._starts[redo]), self._breaks.take(self._ends[redo])
        exact = integrate_rows(x, a, b, params, with_means=with_means)
        fields = ("log_scale", "scaled", "mean_log_alpha", "mean_inv_alpha", "mean_log_beta",
                  "mean_inv_beta")  # fmt: skip
        merged = []
        for name in fields:
            values = getattr(result, name)
            if len(values):
                values = values.copy()
                values[redo] = getattr(exact, name)
            merged.append(values)
        return LifetimeIntegral(*merged)


class LifetimeIntegrator:
    """The lifetime integral of fixed rows, by whichever variant costs less.

    The shared-node grid wins when its sweep (distinct ``x`` x segments x nodes) is well below
    the per-row cost (rows x nodes), as on day-grid data; continuous times go per row.

    Parameters
    ----------
    x, a, b
        Repeat purchases and the interval, ``a < b``, per row.
    method
        ``"auto"`` (default), or force ``"rows"`` or ``"grid"``.
    """

    __slots__ = ("_grid", "_rows")

    def __init__(
        self, x: FloatArray, a: FloatArray, b: FloatArray,
        method: Literal["auto", "rows", "grid"] = "auto",
    ) -> None:  # fmt: skip
        self._grid: LifetimeGrid | None = None
        self._rows: tuple[FloatArray, FloatArray, FloatArray] | None = None
        if method == "grid" or (method == "auto" and len(x) > 0):
            grid = LifetimeGrid(x, a, b)
            if method == "grid" or grid.size * 4 < len(x) * ROW_NODES:
                self._grid = grid
        if self._grid is None:  # the rows themselves are kept only by the per-row variant
            self._rows = (x, a, b)

    @property
    def method(self) -> Literal["rows", "grid"]:
        """``"grid"`` or ``"rows"``: the variant in use."""
        return "rows" if self._grid is None else "grid"

    def evaluate(
        self, params: tuple[float, float, float, float], *, with_means: bool
    ) -> LifetimeIntegral:
        """``ln I`` per row and, if asked, the factor means for the gradient."""
        if self._grid is not None:
            return self._grid.evaluate(params, with_means=with_means)
        assert self._rows is not None  # one of the two variants is always set
        return integrate_rows(*self._rows, params, with_means=with_means)
