"""Numerically stable special-function pieces for the BG/NBD family.

The BG/NBD and MBG/NBD expectations (Fader, Hardie & Lee 2005, eqs. (7) and (10); Batislam,
Denizel & Filiztekin 2007) are written with a Gauss hypergeometric function,

    E = C / (a - 1) * [1 - (1 - z)^k 2F1(k, beta; C; z)],   C = a + beta - 1,

which is 0/0 at ``a = 1``, loses digits for ``a`` near 1, and is undefined when ``C <= 0`` (a new
BG/NBD customer when ``a + b < 1``). Euler's transformation
``2F1(k, beta; C; z) = (1 - z)^(C - k - beta) 2F1(C - k, C - beta; C; z)`` with ``C - beta = a - 1``
takes the factor ``a - 1`` out of every term but the first, which leaves

    E = C * (1 - (1 - z)^(a-1)) / (a - 1)
        - (1 - z)^(a-1) * sum_{n>=1} (C - k)_n (a)_{n-1} z^n / ((C + 1)_{n-1} n!),

with no division by ``a - 1`` (the first term is an ``expm1``) and no ``(C)_n`` in a denominator.
When that series is ill-conditioned (``r`` much larger than ``a + b``, so its terms alternate and
grow), the original form is used instead, with its positive-term 2F1 summed in log space. The
series are summed on an active set that shrinks as elements converge, so a handful of slowly
converging elements (``z`` near 1) do not cost what the whole array costs.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from scipy.special import betaln

__all__ = [
    "BetaRatio",
    "SeriesSum",
    "beta_ratio",
    "expected_while_alive",
    "hypergeometric_series",
    "log_hyp2f1",
]

FloatArray = npt.NDArray[np.float64]
IntpArray = npt.NDArray[np.intp]

_TOLERANCE = 1e-16  # relative size of the neglected tail of a series
_MAX_TERMS = 50_000  # vectorised terms; z <= 0.99 needs < 4000, typical scoring 20-80
_FEW = 8  # active elements below which the scalar loop takes over
_CHUNK_CELLS = 1 << 14  # terms x elements summed per round of the vectorised series
_MIN_CHUNK = 8  # terms per round at the least
_MAX_SCALAR_TERMS = 200_000  # a safety stop only: z > 0.99 goes to quadrature
_RESCALE = 1e150  # partial sums are rescaled beyond this, so huge terms cannot overflow
_GOOD_ENOUGH = 1e-11  # estimated relative error below which the first method is kept
_LOG_CAP = 700.0  # exp of more would overflow a float
_HOPELESS = 30.0  # log of the cancellation beyond which the Euler series is not summed
_QUADRATURE_FROM = 0.99  # z beyond which quadrature beats ~4000 series terms
_QUADRATURE_TERMS = 2000.0  # expected series length beyond which quadrature is cheaper
_NODES, _PANELS = 20, 48  # Gauss-Legendre nodes per panel, panels per half
_PEAKED = 20.0  # min(a, beta) beyond which the Beta is narrow enough to integrate in p
_MAX_SHIFTS = 3  # shifts of (a, beta) tried where both forms lose digits


class SeriesSum(NamedTuple):
    """A series sum as ``sign * exp(log_abs)``, with ``log`` of the sum of absolute terms."""

    log_abs: FloatArray
    sign: FloatArray
    log_abs_terms: FloatArray


class BetaRatio(NamedTuple):
    """``log B(a, b + n) / B(a, b)`` per count ``n``, and its derivatives in ``a`` and ``b``."""

    log: FloatArray
    d_a: FloatArray
    d_b: FloatArray


def beta_ratio(a: float, b: float, counts: IntpArray) -> BetaRatio:
    """``log B(a, b + n) / B(a, b)`` for whole ``n >= 0``, exact for any ``a`` and ``b``.

    The ratio is ``prod_{j < n} (b + j) / (a + b + j)`` (the survival of ``n`` draws in the
    BG/NBD, Fader, Hardie & Lee 2005, eq. (6)), so its log is ``-sum log1p(a / (b + j))`` and
    its derivatives are ``-sum 1 / (a + b + j)`` and ``sum a / ((b + j)(a + b + j))``: sums of
    terms of one sign, cumulated once up to the largest count. ``betaln(a, b + n) - betaln(a, b)``
    and its digamma differences cancel the digits of ``log G(a + b)`` instead (about 1e-8 at
    ``a, b ~ 1e7``, and scipy's ``betaln(a, n)`` itself is off by up to 1e-9 for ``a`` between
    ~200 and ~1e6 ``n``): noise that stops a line search where the dropout's heterogeneity
    vanishes (``a`` and ``b`` growing together).

    Examples
    --------
    >>> ratio = beta_ratio(2.0, 3.0, np.array([0, 2]))  # B(2, 5) / B(2, 3) = 3 * 4 / (5 * 6)
    >>> np.round(np.exp(ratio.log), 12).tolist()
    [1.0, 0.4]
    """
    j = np.arange(int(np.max(counts, initial=0)), dtype=np.float64)
    b_j, ab_j = b + j, a + b + j
    terms = np.stack([-np.log1p(a / b_j), -1.0 / ab_j, a / (b_j * ab_j)])
    cumulated = np.concatenate([np.zeros((3, 1)), np.cumsum(terms, axis=1)], axis=1)
    log, d_a, d_b = cumulated[:, counts]
    return BetaRatio(log, d_a, d_b)


def _scalar_series(
    A: float,
    B: float,
    C: float,
    D: float,
    z: float,
    state: tuple[float, float, float, float],
    m: int,
    past_roots: float,
) -> tuple[float, float, float, float]:
    """:func:`hypergeometric_series` for one element from term ``m`` on (same stopping rule)."""
    total, absolute, term, log_scale = state
    while m < _MAX_SCALAR_TERMS:
        ratio = (A + m) * (B + m) * z / ((C + m) * (D + m))
        term *= ratio
        total += term
        absolute += abs(term)
        if absolute > _RESCALE:
            total, term, log_scale = total / absolute, term / absolute, log_scale + math.log(
                absolute)  # fmt: skip
            absolute = 1.0
        q = max(abs(ratio), z)
        m += 1
        if term == 0.0 or (
            m > past_roots and q < 1.0 and abs(term) * q <= _TOLERANCE * (1.0 - q) * abs(total)
        ):
            break
    return total, absolute, term, log_scale


_Chunk = tuple[FloatArray, FloatArray, FloatArray, npt.NDArray[np.bool_]]


class _Summing(NamedTuple):
    """The elements of :func:`hypergeometric_series` still summing: parameters and sums."""

    position: npt.NDArray[np.intp]  # their positions in the full arrays
    params: tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]  # A, B, C, D, z
    roots: FloatArray | None  # past_roots, or None when all are 0
    term: FloatArray
    total: FloatArray
    absolute: FloatArray


def _series_chunk(summing: _Summing, m: int, width: int) -> _Chunk | None:
    """Terms ``m`` to ``m + width - 1`` of every summing element at once, or None.

    Products and sums are accumulated along each row in order, so every partial sum has the
    bits that one term at a time gives. The chunk stops before the first term at which some sum
    passes ``_RESCALE`` (or overflows); None when that is its first term, which is then summed
    alone, with rescaling.
    """
    A, B, C, D, z = summing.params  # terms run down the rows: accumulating adds whole rows
    steps = np.arange(m, m + width, dtype=np.float64)[:, None]
    with np.errstate(over="ignore", invalid="ignore"):  # such a chunk is redone term by term
        ratio = (A + steps) * (B + steps) * z / ((C + steps) * (D + steps))
        terms = ratio.copy()
        terms[0] *= summing.term
        np.multiply.accumulate(terms, axis=0, out=terms)
        size = np.abs(terms)
        totals, absolutes = terms.copy(), size.copy()
        totals[0] += summing.total
        absolutes[0] += summing.absolute
        np.add.accumulate(totals, axis=0, out=totals)
        np.add.accumulate(absolutes, axis=0, out=absolutes)
    # the columns before the first where some sum passes _RESCALE (or is not a number) stand
    is_within = (absolutes <= _RESCALE).all(axis=1)
    usable = width if is_within.all() else int(np.argmin(is_within))
    if usable == 0:
        return None
    terms, totals, absolutes, size, ratio, steps = (
        v[:usable] for v in (terms, totals, absolutes, size, ratio, steps))  # fmt: skip
    q = np.maximum(np.abs(ratio), z)
    is_done = (q < 1.0) & (size * q <= _TOLERANCE * (1.0 - q) * np.abs(totals))
    if summing.roots is not None:
        is_done &= steps + 1.0 > summing.roots
    is_done |= size == 0.0
    return terms, totals, absolutes, is_done


def _series_step(summing: _Summing, m: int, log_scale: FloatArray) -> _Chunk:
    """Term ``m`` of every summing element, rescaling sums beyond ``_RESCALE``."""
    A, B, C, D, z = summing.params
    ratio = (A + m) * (B + m) * z / ((C + m) * (D + m))
    terms = summing.term * ratio
    totals = summing.total + terms
    size = np.abs(terms)
    absolutes = summing.absolute + size
    big = absolutes > _RESCALE
    if big.any():
        scale = absolutes[big]
        terms[big] /= scale
        totals[big] /= scale
        absolutes[big] = 1.0
        log_scale[summing.position[big]] += np.log(scale)
    q = np.maximum(np.abs(ratio), z)
    # the bound uses the term before any rescaling, and the total after it
    is_done = (q < 1.0) & (size * q <= _TOLERANCE * (1.0 - q) * np.abs(totals))
    if summing.roots is not None:
        is_done &= m + 1 > summing.roots
    is_done |= size == 0.0
    return terms[None], totals[None], absolutes[None], is_done[None]


def _vector_series(
    params: tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray],
    past_roots: FloatArray,
    state: tuple[FloatArray, FloatArray, FloatArray, FloatArray],
) -> tuple[npt.NDArray[np.intp], int]:
    """The terms of :func:`hypergeometric_series` while more than ``_FEW`` elements go on.

    The summing elements are kept in compact copies and take chunks of terms at once (about
    ``_CHUNK_CELLS`` terms in all), so that a term costs neither a Python round nor an indexed
    gather; the sums have the bits of one term at a time. ``state`` (term, total, absolute,
    log scale) is updated in place; the elements left over and the next ``m`` are returned.
    """
    term, total, absolute, log_scale = state
    index = np.flatnonzero(params[4] > 0)
    roots = past_roots[index]
    summing = _Summing(
        index, tuple(v[index] for v in params),  # type: ignore[arg-type]
        roots if roots.size and float(roots.max()) > 0.0 else None,
        term[index], total[index], absolute[index],
    )  # fmt: skip
    m, longest = 0, _MAX_TERMS  # longest: chunks shrink where sums need rescaling often
    while summing.position.size > _FEW and m < _MAX_TERMS:
        width = min(max(_CHUNK_CELLS // summing.position.size, _MIN_CHUNK), _MAX_TERMS - m, longest)
        chunk = _series_chunk(summing, m, width) if width > 1 else None
        if chunk is None:
            chunk = _series_step(summing, m, log_scale)
        used = chunk[0].shape[0]
        longest = 2 * max(used, 1) if used < width else min(2 * longest, _MAX_TERMS)
        summing = _finish(summing, chunk, state)
        m += used
    term[summing.position], total[summing.position], absolute[summing.position] = (
        summing.term, summing.total, summing.absolute)  # fmt: skip
    return summing.position, m


def _finish(summing: _Summing, chunk: _Chunk, state: tuple[FloatArray, ...]) -> _Summing:
    """Store the elements that converged in ``chunk``; the others, at its end, go on."""
    terms, totals, absolutes, is_done = chunk
    has_finished = is_done.any(axis=0)
    row = np.where(has_finished, np.argmax(is_done, axis=0), len(is_done) - 1)
    columns = np.arange(len(row))
    ends = terms[row, columns], totals[row, columns], absolutes[row, columns]
    finished = summing.position[has_finished]
    for full, end in zip(state[:3], ends, strict=True):
        full[finished] = end[has_finished]
    keep = ~has_finished
    return _Summing(
        summing.position[keep], tuple(v[keep] for v in summing.params),  # type: ignore[arg-type]
        None if summing.roots is None else summing.roots[keep], *(end[keep] for end in ends),
    )  # fmt: skip


def hypergeometric_series(
    A: FloatArray, B: FloatArray, C: FloatArray, D: FloatArray, z: FloatArray
) -> SeriesSum:
    """Sum ``sum_{m>=0} u_m`` with ``u_0 = 1``, ``u_{m+1} / u_m = (A+m)(B+m) z / ((C+m)(D+m))``.

    With ``D = 1`` this is the Gauss series of ``2F1(A, B; C; z)`` (Abramowitz & Stegun 15.1.1).
    Sums are kept scaled (``log`` scale plus a bounded mantissa), so terms far beyond the float
    range are fine. The tail after term ``m`` is bounded by ``|u_m| q / (1 - q)`` with
    ``q = max(|ratio|, z)``, valid once ``m`` is past every sign change of the ratio; summing
    stops when that bound is below ``1e-16`` of the partial sum. ``C + m`` and ``D + m`` must
    not vanish; ``0 <= z < 1``.
    """
    A, B, C, D, z = (np.asarray(v, dtype=np.float64) for v in np.broadcast_arrays(A, B, C, D, z))
    shape = A.shape
    A, B, C, D, z = (v.ravel() for v in (A, B, C, D, z))
    total, absolute = np.ones(A.size), np.ones(A.size)
    term, log_scale = np.ones(A.size), np.zeros(A.size)
    past_roots = np.ceil(np.maximum.reduce([-A, -B, -C, -D, np.zeros(A.size)]))
    active, m = _vector_series((A, B, C, D, z), past_roots, (term, total, absolute, log_scale))
    # the few slow ones (z near 1) go on in scalar arithmetic, ~100 times cheaper per term
    # than numpy calls on a handful of elements
    for i in active:
        total[i], absolute[i], term[i], log_scale[i] = _scalar_series(
            float(A[i]), float(B[i]), float(C[i]), float(D[i]), float(z[i]),
            (float(total[i]), float(absolute[i]), float(term[i]), float(log_scale[i])),
            m, float(past_roots[i]),
        )  # fmt: skip
    magnitude = np.abs(total)
    tiny = np.finfo(np.float64).tiny
    log_abs = np.log(np.maximum(magnitude, tiny)) + log_scale
    return SeriesSum(
        log_abs.reshape(shape), np.sign(total).reshape(shape),
        (np.log(absolute) + log_scale).reshape(shape),
    )  # fmt: skip


def log_hyp2f1(
    a: npt.ArrayLike, b: npt.ArrayLike, c: npt.ArrayLike, z: npt.ArrayLike
) -> FloatArray:
    """``log 2F1(a, b; c; z)`` for positive ``a, b, c`` and ``0 <= z < 1``, in log space.

    Every term of the Gauss series is then positive, so nothing cancels and nothing overflows
    (``a`` in the thousands is fine). Where ``c > a`` and ``c > b`` and ``c < a + b``, Euler's
    transformation (Abramowitz & Stegun 15.3.3),
    ``2F1(a, b; c; z) = (1 - z)^(c-a-b) 2F1(c-a, c-b; c; z)``, keeps positive terms and makes
    them decay like ``n^(c-a-b-1) z^n`` instead of ``n^(a+b-c-1) z^n``: far fewer terms near
    ``z = 1``.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.special import hyp2f1
    >>> float(np.exp(log_hyp2f1(1.5, 2.0, 3.0, 0.9)) / hyp2f1(1.5, 2.0, 3.0, 0.9))
    1.0...
    """
    a, b, c, z = (np.asarray(v, dtype=np.float64) for v in np.broadcast_arrays(a, b, c, z))
    is_euler = (c > a) & (c > b) & (c < a + b)
    first = np.where(is_euler, c - a, a)
    second = np.where(is_euler, c - b, b)
    summed = hypergeometric_series(first, second, c, np.ones_like(c), z)
    # log1p(-z) is finite for z < 1; the factor applies only where Euler's form is used
    prefactor = np.where(is_euler, (c - a - b) * np.log1p(-z), 0.0)
    return np.asarray(summed.log_abs + prefactor, dtype=np.float64)


def _expm1_ratio(epsilon: FloatArray, log_base: FloatArray) -> FloatArray:
    """``(1 - exp(epsilon * log_base)) / epsilon``, and ``-log_base`` at ``epsilon = 0``."""
    is_zero = epsilon == 0.0
    safe = np.where(is_zero, 1.0, epsilon)
    return np.where(is_zero, -log_base, -np.expm1(epsilon * log_base) / safe)


def _euler_form(k: FloatArray, beta: FloatArray, a: FloatArray, z: FloatArray) -> tuple[
    FloatArray, FloatArray
]:  # fmt: skip
    """The cancellation-free form of the module docstring, and its relative-error estimate."""
    C = a + beta - 1.0
    log_base = np.log1p(-z)
    leading = C * _expm1_ratio(a - 1.0, log_base)
    # alternating terms of size ~ (1 + z)^(k - C) cancel to ~1: past e^30 the sum is not tried
    is_hopeless = (k - C) * np.log1p(z) > _HOPELESS
    # sum_{n>=1} T_n = (C - k) z * sum_{m>=0} u_m, u_{m+1}/u_m = (C-k+1+m)(a+m) z/((C+1+m)(2+m))
    summed = hypergeometric_series(C - k + 1.0, a, C + 1.0, np.full_like(C, 2.0),
                                   np.where(is_hopeless, 0.0, z))  # fmt: skip
    tiny = np.finfo(np.float64).tiny
    log_factor = (a - 1.0) * log_base + np.log(np.maximum(np.abs(C - k) * z, tiny))
    # an ill-conditioned sum can exceed the float range; it is then replaced, so cap it
    tail = np.where(
        (C - k) * z != 0.0,
        np.sign(C - k) * summed.sign * np.exp(np.minimum(log_factor + summed.log_abs, _LOG_CAP)),
        0.0,
    )
    value = leading - tail
    log_terms = log_factor + summed.log_abs_terms
    scale = np.abs(leading) + np.exp(np.minimum(log_terms, _LOG_CAP))
    error = 1e-16 * scale / np.maximum(np.abs(value), tiny)
    is_lost = is_hopeless | (log_terms >= _LOG_CAP)
    return np.where(is_lost, leading, value), np.where(is_lost, np.inf, error)


def _direct_form(k: FloatArray, beta: FloatArray, a: FloatArray, z: FloatArray) -> tuple[
    FloatArray, FloatArray
]:  # fmt: skip
    """``C/(a-1) [1 - (1-z)^k 2F1(k, beta; C; z)]`` with the 2F1 in log space; needs ``C > 0``."""
    C = a + beta - 1.0
    log_product = k * np.log1p(-z) + log_hyp2f1(k, beta, C, z)
    difference = -np.expm1(log_product)
    epsilon = a - 1.0
    safe = np.where(epsilon == 0.0, 1.0, epsilon)
    value = np.where(epsilon == 0.0, 0.0, C * difference / safe)
    tiny = np.finfo(np.float64).tiny
    error = 1e-15 * (1.0 + np.abs(log_product)) / np.maximum(np.abs(difference), tiny)
    return value, np.where(epsilon == 0.0, np.inf, error)


def _log_h(p: FloatArray, k: FloatArray, tau: FloatArray) -> FloatArray:
    """``log((1 - (1 + p tau)^(-k)) / p)``, the expected purchases given ``p`` (log)."""
    return np.log(-np.expm1(-k * np.log1p(p * tau))) - np.log(p)


def _panels(low: FloatArray, high: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Composite Gauss-Legendre nodes and weights on ``[low, high]``, one row per element."""
    nodes, weights = np.polynomial.legendre.leggauss(_NODES)
    edges = low[:, None] + (high - low)[:, None] * np.linspace(0.0, 1.0, _PANELS + 1)[None, :]
    width = (edges[:, 1:] - edges[:, :-1])[:, :, None]
    points = edges[:, :-1, None] + width * (nodes[None, None, :] + 1.0) / 2.0
    size = _PANELS * _NODES
    return points.reshape(len(low), size), ((width / 2.0) * weights[None, None, :]).reshape(
        len(low), size)  # fmt: skip


def _quadrature_spread(
    k: FloatArray, beta: FloatArray, a: FloatArray, tau: FloatArray
) -> FloatArray:
    """The quadrature of :func:`_quadrature_form` in ``log p`` and ``log(1 - p)``."""
    half = np.full_like(k, np.log(0.5))
    low = np.minimum(-np.log(tau), half) - 40.0
    y, w = _panels(low, half)
    kk, bb, aa, tt = (v[:, None] for v in (k, beta, a, tau))
    log_norm = -betaln(a, beta)[:, None]
    near_zero = np.exp(_log_h(np.exp(y), kk, tt) + aa * y + (bb - 1.0) * np.log1p(-np.exp(y))
                       + log_norm)  # fmt: skip
    near_one = np.exp(_log_h(-np.expm1(y), kk, tt) + bb * y + (aa - 1.0) * np.log1p(-np.exp(y))
                      + log_norm)  # fmt: skip
    tails = np.exp(np.log(k * tau) + a * low - np.log(a) - betaln(a, beta)) + np.exp(
        _log_h(np.ones_like(k), k, tau) + beta * low - np.log(beta) - betaln(a, beta)
    )
    return np.asarray(np.sum(w * (near_zero + near_one), axis=1) + tails, dtype=np.float64)


def _quadrature_peaked(
    k: FloatArray, beta: FloatArray, a: FloatArray, tau: FloatArray
) -> FloatArray:
    """The quadrature of :func:`_quadrature_form` in ``p``, within 40 sd of the Beta's mean."""
    mean = a / (a + beta)
    sd = np.sqrt(a * beta / (a + beta + 1.0)) / (a + beta)
    p, w = _panels(np.maximum(mean - 40.0 * sd, 0.0), np.minimum(mean + 40.0 * sd, 1.0))
    kk, bb, aa, tt = (v[:, None] for v in (k, beta, a, tau))
    density = (aa - 1.0) * np.log(p) + (bb - 1.0) * np.log1p(-p) - betaln(a, beta)[:, None]
    return np.asarray(np.sum(w * np.exp(_log_h(p, kk, tt) + density), axis=1), dtype=np.float64)


def _quadrature_form(k: FloatArray, beta: FloatArray, a: FloatArray, z: FloatArray) -> FloatArray:
    """``E_p[h(p)]`` by composite Gauss-Legendre quadrature, for z near 1.

    There the series need ~``40 / (1 - z)`` terms. In ``y = log p`` (for ``p <= 1/2``) the
    integrand ``h(e^y) e^(a y) (1 - e^y)^(beta - 1)`` is smooth on a scale of 1 (``h`` turns at
    ``y = -log tau``), and below ``y_0 = min(-log tau, -log 2) - 40`` it is ``k tau e^(a y)`` to
    double precision, whose integral ``k tau e^(a y_0) / a`` is added exactly; the half
    ``p >= 1/2`` is the same in ``log(1 - p)`` with the tail ``h(1) e^(beta y_0) / beta``. When
    ``a`` and ``beta`` are both large the Beta is narrow and away from 0 and 1, where ``h`` is
    smooth: the quadrature is then in ``p`` itself, over 40 standard deviations each side.
    """
    tau = z / (1.0 - z)
    is_peaked = np.minimum(a, beta) > _PEAKED
    value = np.empty_like(z)
    value[~is_peaked] = _quadrature_spread(*(v[~is_peaked] for v in (k, beta, a, tau)))
    value[is_peaked] = _quadrature_peaked(*(v[is_peaked] for v in (k, beta, a, tau)))
    return value


def _with_error(
    k: FloatArray, beta: FloatArray, a: FloatArray, z: FloatArray, depth: int
) -> tuple[FloatArray, FloatArray]:
    """:func:`expected_while_alive` on 1-d arrays, with an estimate of its relative error."""
    # near z = 1, or with k or beta so large that the series peak after thousands of terms
    with np.errstate(divide="ignore"):  # z = 1 cannot occur (t is finite), z/(1-z) at z < 1
        n_terms = (k + beta) * z / (1.0 - z)
    is_quadrature = (z > _QUADRATURE_FROM) | (n_terms > _QUADRATURE_TERMS)
    if is_quadrature.any():
        value, error = np.empty_like(z), np.full_like(z, 1e-12)
        value[is_quadrature] = _quadrature_form(
            k[is_quadrature], beta[is_quadrature], a[is_quadrature], z[is_quadrature]
        )
        rest = ~is_quadrature
        value[rest], error[rest] = _with_error(k[rest], beta[rest], a[rest], z[rest], depth)
        return value, error
    value, error = _euler_form(k, beta, a, z)
    is_direct = (error > _GOOD_ENOUGH) & (a + beta > 1.0)
    if is_direct.any():
        direct, direct_error = _direct_form(k[is_direct], beta[is_direct], a[is_direct],
                                            z[is_direct])  # fmt: skip
        is_better = direct_error < error[is_direct]
        rows = np.flatnonzero(is_direct)[is_better]
        value[rows], error[rows] = direct[is_better], direct_error[is_better]
    is_shifted = error > _GOOD_ENOUGH
    if depth < _MAX_SHIFTS and is_shifted.any():
        k_, b_, a_, z_ = k[is_shifted], beta[is_shifted], a[is_shifted], z[is_shifted]
        up_a, error_a = _with_error(k_, b_, a_ + 1.0, z_, depth + 1)
        up_b, error_b = _with_error(k_, b_ + 1.0, a_, z_, depth + 1)
        shifted_error = np.maximum(error_a, error_b)  # both parts are positive: no cancellation
        is_better = shifted_error < error[is_shifted]
        rows = np.flatnonzero(is_shifted)[is_better]
        combined = (a_ * up_a + b_ * up_b) / (a_ + b_)
        value[rows], error[rows] = combined[is_better], shifted_error[is_better]
    return value, error


def expected_while_alive(
    k: npt.ArrayLike, beta: npt.ArrayLike, a: npt.ArrayLike, z: npt.ArrayLike
) -> FloatArray:
    """``E_p[(1 - (1 + p tau)^(-k)) / p]`` for ``p ~ Beta(a, beta)`` and ``z = tau / (1 + tau)``.

    This is the expected number of purchases in a window of length ``t`` of a BG/NBD-type
    customer known to be alive at its start, with ``lambda ~ Gamma(k, alpha + T)`` and
    ``tau = t / (alpha + T)``: the bracket of Fader, Hardie & Lee (2005) eq. (10) (``k = r + x``,
    ``beta = b + x``) and of eq. (7) (``k = r``, ``beta = b``, ``T = 0``). It is finite and
    positive for every ``a, beta, k > 0``, including ``a = 1`` and ``a + beta < 1``.

    The cancellation-free Euler form (module docstring) is used first; where its terms cancel
    (``k`` much larger than ``a + beta``), the direct form with a log-space 2F1; where that is
    undefined or cancels too (``a + beta <= 1``, ``a`` near 1), the identity
    ``E_{a,beta} = a/(a+beta) E_{a+1,beta} + beta/(a+beta) E_{a,beta+1}`` (from
    ``1 = p + (1 - p)``, two positive parts) moves to parameters where one of them works.

    Examples
    --------
    >>> round(float(expected_while_alive(2.0, 3.0, 1.0, 0.5)), 12)  # a = 1: no 0/0
    1.5
    """
    k, beta, a, z = (np.asarray(v, dtype=np.float64) for v in np.broadcast_arrays(k, beta, a, z))
    shape = k.shape
    value, _ = _with_error(k.ravel(), beta.ravel(), a.ravel(), z.ravel(), 0)
    # the expectation is >= 0; rounding at subnormal z must not make it -1e-309
    return np.maximum(value, 0.0).reshape(shape)
