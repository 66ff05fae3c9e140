"""The curves a purchase model gives valuation: survival and cumulative purchases from now on.

A model's :meth:`curves` (``model.curves(data)``, or ``model.curves()`` for a customer just
acquired) returns a :class:`Curves`: the customers factored by the distinct keys of their
histories (an ``(x, T)`` pair, an age ``T``, a length ``n``, a tenure). Row ``i`` expects
``purchase_scale[i] * C(keys[group[i]], t)`` purchases by ``t`` from now and is alive at ``t``
with probability ``alive_scale[i] * S(keys[group[i]], t)``; ``C`` and ``S`` are computed once per
distinct key (:meth:`Curves.cumulative`, :meth:`Curves.survival`) and broadcast, which is what
keeps valuation of millions of customers fast.

The families, with ``W(r, b, a, z) = E[purchases while alive]`` of :mod:`cvalue.models._special`:

- BG/NBD family: ``S = 1 - a/(a + b') W(r + x, b', a + 1, z)``,
  ``C = W(r + x, b', a, z)``, ``b' = b + x + s``, ``z = t / (alpha + T + t)``; ``s`` is 1 for the
  MBG/NBD, whose customers can also drop out at time 0 (Fader, Hardie & Lee 2005, eq. 10;
  Batislam et al. 2007, eq. 8);
- Pareto/NBD: ``S = ((beta + T) / (beta + T + t))^s`` and
  ``C = (beta + T) [1 - ((beta + T) / (beta + T + t))^(s - 1)] / (s - 1)``, scaled by
  ``P(alive) (r + x) / (alpha + T)`` (Fader, Hardie & Lee 2005b, eq. 41);
- BG/BB (``t`` whole opportunities ahead): ``S = B(gamma, delta + n + t) / B(gamma, delta + n + 1)``
  and ``C`` the sum of ``S`` over opportunities ``1 .. t``, scaled by
  ``P(alive) (alpha + x) / (alpha + beta + n)``;
- contracts (``t`` whole periods ahead): ``S = S(n + t) / S(n)`` and ``C`` the sum of ``S`` over
  periods ``0 .. t - 1``, each paid at its start.

:meth:`Curves.with_dropout_scaled` gives the same customers' curves when each one's dropout
hazard from now on is multiplied by a factor ``k`` (their purchasing and P(alive) now unchanged):
``lambda p -> k lambda p`` (BG/NBD family), ``mu -> k mu`` (Pareto/NBD), and in whole periods
``1 - theta -> (1 - theta)^k`` (BG/BB), ``(1 - theta)^(t^c) -> (1 - theta)^(k t^c)`` for the time
from now (sBG, ``c = 1``, and BdW). The continuous-time curves become ``S(k t)`` and
``C(k t) / k``; the discrete ones read the posterior's beta function at ``k`` times the clock.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import ClassVar

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.special import betaln

from cvalue.errors import SchemaError
from cvalue.models._special import expected_while_alive

__all__ = ["Curves", "distinct", "float_column", "spread_ratio"]

FloatArray = npt.NDArray[np.float64]
IntpArray = npt.NDArray[np.intp]

_CHEBYSHEV_FROM = 256  # BG/NBD tables beyond this many cells per distinct x are interpolated
_CHEBYSHEV_MIN_DEGREE, _CHEBYSHEV_MAX_DEGREE = 32, 512
_CHEBYSHEV_TOLERANCE = 1e-14  # relative size of the last coefficients of a settled curve
_CLENSHAW_BLOCK = 1 << 14  # values per block of the recurrence: its arrays stay in the L2 cache


def float_column(frame: pd.DataFrame, name: str) -> FloatArray:
    """A summary column as float64, missing values as NaN."""
    return frame[name].to_numpy(dtype=np.float64, na_value=np.nan)


def distinct(*columns: FloatArray) -> tuple[IntpArray, tuple[FloatArray, ...]]:
    """Codes of the distinct rows of ``columns`` and each distinct row's values."""
    key = np.zeros(len(columns[0]), dtype=np.int64)
    for column in columns:
        codes, uniques = pd.factorize(column)
        key = key * len(uniques) + codes
    group, found = pd.factorize(key)
    values = []
    for column in columns:
        value = np.empty(len(found))
        value[group] = column
        values.append(value)
    return group.astype(np.intp), tuple(values)


def just_acquired() -> tuple[IntpArray, FloatArray, FloatArray]:
    """One row in group 0: its group, a zero key and a unit scale, for ``curves()``."""
    return np.zeros(1, dtype=np.intp), np.zeros(1), np.ones(1)


@dataclass(frozen=True, eq=False)
class Curves(ABC):
    """Customers' survival and cumulative purchases from now on, per distinct history key.

    Attributes
    ----------
    group
        Each customer's key (an index into the arrays of ``keys``).
    purchase_scale, alive_scale
        Per customer, the factors of :meth:`cumulative` and :meth:`survival`.
    keys
        The distinct keys, one array per key column.
    dropout_factor
        What each customer's dropout hazard from now on is multiplied by (1: the model's own).
    """

    group: IntpArray
    purchase_scale: FloatArray
    alive_scale: FloatArray
    keys: tuple[FloatArray, ...]
    dropout_factor: float = field(default=1.0, kw_only=True)

    pays_at_start: ClassVar[bool] = False
    """Whether each period's cash comes at its start (contract payments), not its end."""

    has_dropout_factor: ClassVar[bool] = False
    """Whether the curves read :attr:`dropout_factor` (:meth:`with_dropout_scaled`)."""

    @property
    def n_keys(self) -> int:
        return len(self.keys[0])

    @abstractmethod
    def survival(self, times: FloatArray) -> FloatArray:
        """``S(key, t)``: P(alive ``t`` from now) over ``alive_scale``, ``(keys, times)``."""

    @abstractmethod
    def cumulative(self, times: FloatArray) -> FloatArray:
        """``C(key, t)``: expected purchases by ``t`` from now over ``purchase_scale``."""

    def period_flows(self, ends: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Per key and period ending at ``ends``: purchases in it and P(alive at its start)."""
        starts = np.concatenate([[0.0], ends[:-1]])
        purchases = np.maximum(np.diff(self.cumulative(ends), axis=1, prepend=0.0), 0.0)
        return purchases, self.survival(starts)

    def with_dropout_scaled(self, factor: float) -> Curves:
        """These customers' curves when each one's dropout hazard from now on is ``factor`` times.

        P(alive now) and the purchase process are the model's; only the future dropout changes
        (module docstring), so ``factor < 1`` keeps customers longer. ``factor = 1`` returns the
        curves themselves.

        Raises
        ------
        SchemaError
            For a factor that is not a finite number > 0, or curves without a dropout to scale
            (the (M)BG/CNBD-k's).
        """
        if isinstance(factor, bool) or not (np.isfinite(factor) and factor > 0.0):
            raise SchemaError(f"the dropout factor must be a finite number > 0, got {factor!r}")
        if factor == 1.0:
            return self
        return self._dropout_scaled(float(factor))

    def _dropout_scaled(self, factor: float) -> Curves:
        if not self.has_dropout_factor:
            raise SchemaError(
                f"{type(self).__name__} has no scaled dropout: it is defined for the BG/NBD, "
                "MBG/NBD, Pareto/NBD, BG/BB, sBG and BdW models (not for the (M)BG/CNBD-k, whose "
                "regular purchase timing makes P(alive) no function of a scaled clock)"
            )
        return replace(self, dropout_factor=self.dropout_factor * factor)


# --- BG/NBD family --------------------------------------------------------------------------------


def _chebyshev_coefficients(values: FloatArray) -> FloatArray:
    """Chebyshev coefficients of each row, sampled at ``cos(j pi / n)``, ``j = 0 .. n`` (DCT-I)."""
    n = values.shape[1] - 1
    extended = np.concatenate([values, values[:, n - 1 : 0 : -1]], axis=1)
    coefficients = np.fft.rfft(extended, axis=1).real[:, : n + 1] / n
    coefficients[:, [0, n]] /= 2.0
    return np.asarray(coefficients, dtype=np.float64)


def _clenshaw(coefficients: FloatArray, t: FloatArray) -> FloatArray:
    """``sum_j c[i, j] T_j(t[i, k])`` for every row ``i`` and column ``k``.

    Rows go by blocks of about :data:`_CLENSHAW_BLOCK` values, so that the recurrence's passes
    (three per coefficient) read the cache, not memory; each value's arithmetic is the same as
    over the whole table at once.
    """
    found = np.empty_like(t)
    rows = max(1, _CLENSHAW_BLOCK // max(1, t.shape[1]))
    for start in range(0, len(t), rows):
        block = slice(start, start + rows)
        found[block] = _clenshaw_block(coefficients[block], t[block])
    return found


def _clenshaw_block(coefficients: FloatArray, t: FloatArray) -> FloatArray:
    """:func:`_clenshaw` on one block of rows."""
    twice = 2.0 * t
    after, last, scratch = np.zeros_like(t), np.zeros_like(t), np.empty_like(t)
    for j in range(coefficients.shape[1] - 1, 0, -1):
        np.multiply(twice, after, out=scratch)
        scratch -= last
        scratch += coefficients[:, j, None]
        after, last, scratch = scratch, after, last
    return np.asarray(coefficients[:, 0, None] + t * after - last, dtype=np.float64)


@dataclass(frozen=True, eq=False)
class BetaGeoCurves(Curves):
    """The BG/NBD family's curves; keys ``(x, T)``; ``s = 1`` for the MBG/NBD."""

    r: float
    alpha: float
    a: float
    b: float
    s: float

    has_dropout_factor: ClassVar[bool] = True

    def exact(self, x: FloatArray, tau: FloatArray) -> FloatArray:
        """Both expectations over ``p ~ Beta(a, b + x + s)`` at ``tau = t / (alpha + T)``.

        Row 0: the expected purchases while alive ``W(r + x, b', a, z)``; row 1: the survival
        ``1 - a/(a + b') W(r + x, b', a + 1, z)``, with ``b' = b + x + s`` and
        ``z = tau / (1 + tau)``. Both in one call, so that the series are summed together.
        """
        r, a = self.r, self.a
        shape_b = self.b + x + self.s
        z = tau / (1.0 + tau)
        both = expected_while_alive(
            np.concatenate([r + x, r + x]),
            np.concatenate([shape_b, shape_b]),
            np.concatenate([np.full(len(x), a), np.full(len(x), a + 1.0)]),
            np.concatenate([z, z]),
        ).reshape(2, len(x))
        both[1] = np.clip(1.0 - a / (a + shape_b) * both[1], 0.0, 1.0)
        return both

    def tables(self, times: FloatArray) -> FloatArray:
        """:meth:`exact` for every ``(x, T)`` key and time: ``(2, keys, times)``.

        For a given ``x`` both expectations are functions of ``tau = t / (alpha + T)`` alone,
        analytic in ``u = log(1 + tau)`` within ``|Im u| < pi`` (their singularities are at
        ``tau = -1/p``). So each curve is computed exactly at Chebyshev points of ``u`` and
        interpolated, its degree doubling until its last coefficients fall below
        ``_CHEBYSHEV_TOLERANCE`` of its largest; the curves that have not settled by
        ``_CHEBYSHEV_MAX_DEGREE`` are computed exactly at every point. Small tables are computed
        exactly throughout. With a :attr:`dropout_factor` ``k`` the hazard ``lambda p`` becomes
        ``k lambda p``: the tables are the model's at ``k t``, the purchases divided by ``k``.
        """
        if self.dropout_factor != 1.0:
            found = replace(self, dropout_factor=1.0).tables(self.dropout_factor * times)
            found[0] /= self.dropout_factor
            return found
        x, age = self.keys
        tau = times[None, :] / (self.alpha + age)[:, None]
        levels, level = np.unique(x, return_inverse=True)
        if tau.size <= _CHEBYSHEV_FROM * len(levels):
            every = np.broadcast_to(x[:, None], tau.shape).ravel()
            return self.exact(every, tau.ravel()).reshape(2, *tau.shape)
        widest = np.zeros(len(levels))
        np.maximum.at(widest, level, np.log1p(tau.max(axis=1, initial=0.0)))
        coefficients, is_settled = self._chebyshev_fit(levels, widest)
        point = 2.0 * np.log1p(tau) / np.where(widest > 0, widest, 1.0)[level][:, None] - 1.0
        found = np.stack([_clenshaw(coefficients[f][level], point) for f in range(2)])
        rows = np.flatnonzero(~is_settled[level])
        if len(rows):
            every = np.broadcast_to(x[rows, None], (len(rows), tau.shape[1])).ravel()
            exact = self.exact(every, tau[rows].ravel())
            found[:, rows] = exact.reshape(2, len(rows), tau.shape[1])
        return found

    def _chebyshev_fit(
        self, levels: FloatArray, widest: FloatArray
    ) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
        """Coefficients ``(2, levels, degree + 1)`` in ``u in [0, widest]``, and which settled."""
        degree = _CHEBYSHEV_MIN_DEGREE
        while True:
            nodes = widest[:, None] * (1.0 + np.cos(np.arange(degree + 1) * np.pi / degree)) / 2.0
            values = self.exact(np.repeat(levels, degree + 1), np.expm1(nodes).ravel())
            coefficients = _chebyshev_coefficients(values.reshape(-1, degree + 1))
            scale = np.max(np.abs(coefficients), axis=1)
            tail = np.max(np.abs(coefficients[:, -3:]), axis=1)
            is_settled = (tail <= _CHEBYSHEV_TOLERANCE * scale).reshape(2, -1).all(axis=0)
            if is_settled.all() or degree >= _CHEBYSHEV_MAX_DEGREE:
                return coefficients.reshape(2, len(levels), degree + 1), is_settled
            degree *= 2

    def survival(self, times: FloatArray) -> FloatArray:
        return np.asarray(self.tables(times)[1], dtype=np.float64)

    def cumulative(self, times: FloatArray) -> FloatArray:
        return np.asarray(self.tables(times)[0], dtype=np.float64)

    def period_flows(self, ends: FloatArray) -> tuple[FloatArray, FloatArray]:
        # both curves from one table; S(0) = 1 starts the survival
        cumulative, survival = self.tables(ends)
        purchases = np.maximum(np.diff(cumulative, axis=1, prepend=0.0), 0.0)
        alive = np.concatenate([np.ones((len(survival), 1)), survival[:, :-1]], axis=1)
        return purchases, alive


def beta_geo_new(r: float, alpha: float, a: float, b: float, s: float) -> BetaGeoCurves:
    """A BG/NBD-family customer just acquired: ``x = T = 0``, alive w.p. ``B(a, b + s)/B(a, b)``."""
    first, zero, one = just_acquired()
    survives = one * np.exp(betaln(a, b + s) - betaln(a, b))
    return BetaGeoCurves(first, survives, survives, (zero, zero), r, alpha, a, b, s)


# --- Pareto/NBD ----------------------------------------------------------------------------------


def spread_ratio(exponent: FloatArray | float, log_ratio: FloatArray | float) -> FloatArray:
    """``(1 - exp(-e y)) / e``, and ``y`` at ``e = 0``: the Pareto/NBD's ``s = 1`` limit exactly."""
    e = np.asarray(exponent, dtype=np.float64)
    y = np.asarray(log_ratio, dtype=np.float64)
    e, y = np.broadcast_arrays(e, y)
    is_zero = e == 0.0
    safe = np.where(is_zero, 1.0, e)
    result: FloatArray = np.where(is_zero, y, -np.expm1(-safe * y) / safe)
    return result


@dataclass(frozen=True, eq=False)
class ParetoCurves(Curves):
    """The Pareto/NBD's curves; keys ``T``.

    Given alive now ``mu ~ Gamma(s, beta + T)``; with a :attr:`dropout_factor` ``k``,
    ``k mu ~ Gamma(s, (beta + T) / k)``.
    """

    s: float
    beta: float

    has_dropout_factor: ClassVar[bool] = True

    def _log_ratio(self, times: FloatArray) -> tuple[FloatArray, FloatArray]:
        base = (self.beta + self.keys[0])[:, None] / self.dropout_factor
        return base, np.log1p(times[None, :] / base)

    def survival(self, times: FloatArray) -> FloatArray:
        _, log_ratio = self._log_ratio(times)
        return np.asarray(np.exp(-self.s * log_ratio), dtype=np.float64)

    def cumulative(self, times: FloatArray) -> FloatArray:
        base, log_ratio = self._log_ratio(times)
        return np.asarray(base * spread_ratio(self.s - 1.0, log_ratio), dtype=np.float64)


# --- discrete time: BG/BB and contracts ----------------------------------------------------------


@dataclass(frozen=True, eq=False)
class DiscreteCurves(Curves):
    """Curves in whole periods: the cumulative purchases sum the survival over the periods.

    ``first_step`` is the first period that counts (1: opportunities after the last observed;
    0: the contract period now starting), and ``alive_at_end`` whether a period's P(alive) is
    read at its end (the BG/BB's opportunity) or its start.
    """

    first_step: ClassVar[float] = 0.0
    alive_at_end: ClassVar[bool] = False

    def cumulative(self, times: FloatArray) -> FloatArray:
        first = self.first_step
        n_periods = round(float(times.max())) if len(times) else 0
        steps = self.survival(np.arange(first, first + n_periods))
        totals = np.concatenate([np.zeros((len(steps), 1)), np.cumsum(steps, axis=1)], axis=1)
        return np.asarray(totals[:, np.round(times).astype(np.intp)], dtype=np.float64)

    def period_flows(self, ends: FloatArray) -> tuple[FloatArray, FloatArray]:
        purchases = np.maximum(np.diff(self.cumulative(ends), axis=1, prepend=0.0), 0.0)
        if self.alive_at_end:
            return purchases, self.survival(ends)
        return purchases, self.survival(np.concatenate([[0.0], ends[:-1]]))


@dataclass(frozen=True, eq=False)
class BetaBinomCurves(DiscreteCurves):
    """The BG/BB's curves; keys ``n`` (opportunities observed).

    Given alive at ``n``, ``theta ~ Beta(gamma, delta + n)`` and ``E[(1 - theta)^(k t)]`` is
    ``B(gamma, delta + n + k t) / B(gamma, delta + n)``, ``k`` the :attr:`dropout_factor`.
    """

    gamma: float
    delta: float
    first_step: ClassVar[float] = 1.0
    alive_at_end: ClassVar[bool] = True
    has_dropout_factor: ClassVar[bool] = True

    def survival(self, times: FloatArray) -> FloatArray:
        shifted = (self.delta + self.keys[0])[:, None]
        ahead = self.dropout_factor * times[None, :]
        return np.asarray(
            np.exp(betaln(self.gamma, shifted + ahead) - betaln(self.gamma, shifted + 1.0)),
            dtype=np.float64,
        )


@dataclass(frozen=True, eq=False)
class ContractCurves(DiscreteCurves):
    """A contractual model's curves; keys the tenure; ``survival_of`` is the model's ``S(t)``.

    ``S(t) = B(alpha, beta + t^c) / B(alpha, beta)`` with ``c`` the :attr:`duration_power` (1 for
    the sBG): with a :attr:`dropout_factor` ``k`` a customer of tenure ``n`` is still active ``t``
    later with ``E[(1 - theta)^(k ((n + t)^c - n^c))]`` given ``theta ~ Beta(alpha, beta + n^c)``,
    which is ``S(u) / S(n)`` at the tenure ``u`` with ``u^c = n^c + k ((n + t)^c - n^c)``.
    """

    survival_of: Callable[[FloatArray], FloatArray]
    duration_power: float = field(default=1.0, kw_only=True)
    pays_at_start: ClassVar[bool] = True
    has_dropout_factor: ClassVar[bool] = True

    def survival(self, times: FloatArray) -> FloatArray:
        tenure = self.keys[0]
        now = np.asarray(self.survival_of(tenure), dtype=np.float64)[:, None]
        ahead = tenure[:, None] + times[None, :]
        if self.dropout_factor != 1.0:
            power, clock = self.duration_power, tenure[:, None] ** self.duration_power
            ahead = (clock + self.dropout_factor * (ahead**power - clock)) ** (1.0 / power)
        later = np.asarray(self.survival_of(ahead.ravel()), dtype=np.float64).reshape(ahead.shape)
        return np.divide(later, now, out=np.zeros_like(later), where=now > 0)
