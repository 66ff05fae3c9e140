"""The Gamma-Gamma fitted from a stream of summary chunks, in memory bounded by the frequencies.

:meth:`GammaGamma.fit <cvalue.models.GammaGamma.fit>` holds every distinct (frequency,
monetary_value) pair of the repeat buyers, about one per customer. Its log-likelihood (Fader &
Hardie 2013, eq. 1a), summed over the customers with ``x`` repeat purchases, is

``-n_x betaln(px, q) - sum log zbar - p x sum log1p(gamma / s) - q sum log1p(s / gamma)``

with ``s = x zbar``; its gradient in ``gamma`` needs ``sum 1 / (gamma + s)`` and
``sum s / (gamma + s)``. The customers enter only through the weights ``n_x``, the sum of
``log zbar``, and four sums that are functions of ``gamma`` alone. :class:`SpendSums` tabulates
those four per frequency at the Chebyshev points of an interval ``[u0, u1]`` of
``u = log(gamma)`` in one pass over the chunks; the fit then runs on the tables, whose size is
(frequencies x 4 x nodes), whatever the number of customers.

Why it is exact. As functions of ``u``, ``log1p(e^u / s)``, ``log1p(s e^-u)``,
``e^u / (e^u + s)`` and ``s / (e^u + s)`` are analytic in the strip ``|Im u| < pi`` (their
singularities are at ``u = log s + i pi (2k + 1)``), whatever ``s``; so are their sums over
any customers. The interpolant in :data:`N_NODES` Chebyshev-Lobatto points of an interval of
half-width ``h`` then converges as ``rho^-N`` with ``rho = (pi + sqrt(pi^2 + h^2)) / h``
(Trefethen, *Approximation Theory and Approximation Practice*, thm. 8.2): ``h = 3``
(:data:`HALF_WIDTH`, ``gamma`` within a factor e^3 = 20 of the start) gives ``rho = 2.5`` and
``2.5^-48 = 1e-19``, below rounding. Measured against the direct per-pattern sums of
:meth:`GammaGamma.fit` at 300 points across the interval: a relative error of at most 6e-15
(CDNOW) and 4e-15 (200,000 simulated customers) with 48 nodes, the level of the sums' own
rounding; 40 nodes give the same, 32 nodes 2e-12 and 24 nodes 5e-9. The sums at a node use
``_SpendSums.at``'s careful form (one ``log1p`` of ``min/max`` gives the smaller term, plus
``|log s - log gamma|`` the larger), so that no customer loses digits at any ratio of spend to
``gamma``. The log-likelihood then agrees with :meth:`GammaGamma.fit`'s to 1e-15, and the
estimates, after the Newton steps to the maximum that both fits end with
(:meth:`GammaGamma._polish`), to 1e-12 (CDNOW and simulated bases, in the tests).

The interval. Its centre is the ``gamma`` of :meth:`GammaGamma.fit` on a sample (``start``, or
the first chunk; a sample too small to fit, or whose estimates run off, gives ``gamma`` of the
first spread start on its mean spend instead). On the tables, L-BFGS-B first finds the maximum
with ``log(gamma)`` held inside the interval; from there the engine (:func:`maximise`) fits as
:meth:`GammaGamma.fit` does. Outside the interval the tables are continued linearly in ``u``
from the nearer edge (the log terms with their slope there, the others constant: the gradient
is still the likelihood's derivative), so that a line search of the engine never meets a wall.
When an estimate of ``log(gamma)`` lands within :data:`MARGIN` of an edge, :func:`fit_chunks`
tabulates again around it in another pass over the chunks (``chunks()`` is called again): a
start off by a factor 1000 takes three passes.

Besides the tables, a pass keeps the weighted moments of frequency and spend (merged chunk by
chunk, Chan, Golub & LeVeque 1979) for the correlation check, the rows without a repeat
purchase (counted), the rows that break :meth:`GammaGamma.fit`'s rules (counted per rule, with
the first example), and whether the repeat buyers hold more than one history.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import optimize

from cvalue.errors import ConvergenceError, DataQualityError, SchemaError
from cvalue.models._base import FloatArray, Patterns
from cvalue.models._mle import (
    SEARCH_FACTOR,
    ConvergenceWarning,
    MLEResult,
    _scaled,
    describe_edges,
    maximise,
)
from cvalue.models.gamma_gamma import (
    _MAX_SPEND,
    _MODEL,
    _NO_REPEAT,
    GammaGamma,
    _broken_rules,
    _check_repeat_buyers,
    _fit_columns,
    _raise_broken,
    _spend_objective,
)
from cvalue.units import TimeUnit, as_time_unit

__all__ = ["HALF_WIDTH", "MARGIN", "N_NODES", "SpendSums", "fit_chunks"]

_Fitted = TypeVar("_Fitted", bound=GammaGamma)
N_NODES = 48
"""Chebyshev-Lobatto points per interval: ``2.5^-48 = 1e-19`` (see the module's docstring)."""
HALF_WIDTH = 3.0
"""The interval of ``log(gamma)``: the start's ``log(gamma) +- 3`` (a factor 20 each way)."""
MARGIN = 0.5
"""An estimate of ``log(gamma)`` within this of an edge is tabulated again around it."""
_MAX_PASSES = 8
_LOCATE_OPTIONS = {"maxiter": 2000, "ftol": 1e-14, "gtol": 1e-9}  # as the engine's
_SHAPE_STARTS = ((4.0, 3.0), (1.0, 2.0), (15.0, 8.0), (0.5, 1.5))  # as GammaGamma's spread


class SpendSums:
    """Per-frequency tables of eq. (1a)'s sums at the Chebyshev points of ``log(gamma)``.

    Parameters
    ----------
    gamma_low, gamma_high
        The interval of ``gamma`` tabulated (``0 < gamma_low < gamma_high``).
    n_nodes
        Chebyshev-Lobatto points in ``log(gamma)``.

    Attributes
    ----------
    bounds, nodes
        The interval of ``log(gamma)`` and its Chebyshev-Lobatto points (the upper edge first).
    frequencies
        The distinct frequencies of the repeat buyers, sorted.
    weight_of_frequency
        The repeat buyers (sum of weights) per frequency.
    sum_log_zbar
        The weighted sum of ``log monetary_value`` over the repeat buyers.
    n_rows, n_excluded
        Rows read; customers without a repeat purchase (sum of their weights).
    has_two_histories
        Whether the repeat buyers hold more than one (frequency, monetary_value) history.

    Examples
    --------
    >>> import pandas as pd
    >>> sums = SpendSums(5.0, 50.0)
    >>> sums.add(pd.DataFrame({"frequency": [0, 2, 2, 5], "monetary_value": [0, 9, 12, 30]}))
    >>> sums.frequencies.tolist(), sums.weight_of_frequency.tolist(), sums.n_excluded
    ([2.0, 5.0], [2.0, 1.0], 1.0)
    """

    def __init__(self, gamma_low: float, gamma_high: float, *, n_nodes: int = N_NODES) -> None:
        if not (0.0 < gamma_low < gamma_high < math.inf) or n_nodes < 2:
            raise SchemaError(
                f"SpendSums needs 0 < gamma_low < gamma_high (finite) and n_nodes >= 2; got "
                f"{gamma_low!r}, {gamma_high!r}, {n_nodes!r}"
            )
        self.bounds = (math.log(gamma_low), math.log(gamma_high))
        order = np.arange(n_nodes)
        self._points = np.cos(np.pi * order / (n_nodes - 1))  # on [-1, 1], 1 first
        low, high = self.bounds
        self.nodes = 0.5 * (high + low) + 0.5 * (high - low) * self._points
        self._barycentric = np.where(order % 2 == 0, 1.0, -1.0)
        self._barycentric[[0, -1]] *= 0.5
        self.frequencies = np.empty(0)
        self.weight_of_frequency = np.empty(0)
        self._tables = np.empty((4, 0, n_nodes))  # log1p(g/s), log1p(s/g), g/(g+s), s/(g+s)
        self.sum_log_zbar = 0.0
        self._moments = np.zeros(6)  # weight, means of x and zbar, their centred co-moments
        self._first: tuple[float, float] | None = None
        self.has_two_histories = False
        self.n_rows = 0
        self.n_excluded = 0.0
        self._broken: dict[str, list[Any]] = {}  # what: [rows, example, fix]

    # --- reading a chunk -----------------------------------------------------------------------

    def add(self, chunk: pd.DataFrame) -> None:
        """Add a summary chunk (``frequency``, ``monetary_value``, optional ``weight``).

        Rows that break :meth:`GammaGamma.fit`'s rules are counted (:meth:`check` raises), and
        a chunk with such rows adds nothing else; rows without a repeat purchase are counted.

        Raises
        ------
        SchemaError
            When a column is missing or not numeric.
        """
        x, zbar, weights = _fit_columns(chunk)
        self.n_rows += len(chunk)
        broken = _broken_rules(chunk, x, zbar, weights)
        for what, n_bad, example, fix in broken:
            self._broken.setdefault(what, [0, example, fix])[0] += n_bad
        if broken or self._broken:
            return
        is_repeat = x > 0
        self.n_excluded += float(weights[~is_repeat].sum())
        x, zbar, weights = x[is_repeat], zbar[is_repeat], weights[is_repeat]
        if len(x) == 0:
            return
        self._note_histories(x, zbar, weights, is_weighted="weight" in chunk)
        self._add_moments(x, zbar, weights)
        codes = self._codes(x)
        n_frequencies = len(self.frequencies)
        self.weight_of_frequency += np.bincount(codes, weights, n_frequencies)
        self.sum_log_zbar += float(np.sum(weights * np.log(zbar)))
        # by frequency, so that each node's sums are one reduceat over contiguous rows
        order = np.argsort(codes, kind="stable")
        present, starts = np.unique(codes[order], return_index=True)
        spend = (x * zbar)[order]
        log_spend = np.log(spend)
        is_weighted = not np.all(weights == 1.0)
        weights = weights[order]
        block = np.empty((4, len(spend)))
        for node, u in enumerate(self.nodes):
            _terms(spend, log_spend, u, out=block)
            if is_weighted:
                np.multiply(block, weights, out=block)
            self._tables[:, present, node] += np.add.reduceat(block, starts, axis=1)

    def _codes(self, x: FloatArray) -> npt.NDArray[np.intp]:
        """Each row's position in :attr:`frequencies`, adding the frequencies not seen yet."""
        found = np.unique(x)
        if not np.isin(found, self.frequencies).all():
            merged = np.union1d(self.frequencies, found)
            kept = np.searchsorted(merged, self.frequencies)
            weight, tables = np.zeros(len(merged)), np.zeros((4, len(merged), len(self.nodes)))
            weight[kept], tables[:, kept] = self.weight_of_frequency, self._tables
            self.frequencies, self.weight_of_frequency, self._tables = merged, weight, tables
        return np.searchsorted(self.frequencies, x)

    def _note_histories(
        self, x: FloatArray, zbar: FloatArray, weights: FloatArray, *, is_weighted: bool
    ) -> None:
        """Whether the repeat buyers hold two histories, as :meth:`Model._check_base` asks.

        As in :meth:`GammaGamma.fit`, rows of a ``weight`` column are patterns already (two
        rows with a positive weight are two), and other rows are compared by their values.
        """
        positive = weights > 0
        if self.has_two_histories or not positive.any():
            return
        first = self._first or (float(x[positive][0]), float(zbar[positive][0]))
        self._first = first
        self.has_two_histories = bool(
            (is_weighted and np.count_nonzero(positive) > 1)
            or np.any(positive & ((x != first[0]) | (zbar != first[1])))
        )

    def _add_moments(self, x: FloatArray, zbar: FloatArray, weights: FloatArray) -> None:
        """Merge the chunk's weighted means and centred co-moments (Chan et al. 1979)."""
        total = float(weights.sum())
        if total <= 0:
            return
        mean_x, mean_z = float(weights @ x) / total, float(weights @ zbar) / total
        dx, dz = x - mean_x, zbar - mean_z
        chunk = np.array([total, mean_x, mean_z, weights @ (dx * dx), weights @ (dz * dz),
                          weights @ (dx * dz)])  # fmt: skip
        before = self._moments
        merged = before[0] + total
        delta_x, delta_z = mean_x - before[1], mean_z - before[2]
        share = before[0] * total / merged
        self._moments = np.array([
            merged, before[1] + delta_x * total / merged, before[2] + delta_z * total / merged,
            before[3] + chunk[3] + delta_x * delta_x * share,
            before[4] + chunk[4] + delta_z * delta_z * share,
            before[5] + chunk[5] + delta_x * delta_z * share,
        ])  # fmt: skip

    # --- what the fit reads --------------------------------------------------------------------

    @property
    def n_customers(self) -> float:
        """The repeat buyers (sum of weights)."""
        return float(self._moments[0])

    @property
    def mean_spend(self) -> float:
        """The weighted mean ``monetary_value`` of the repeat buyers."""
        return float(self._moments[2])

    @property
    def correlation(self) -> float:
        """Pearson correlation of frequency and monetary_value (NaN when one is constant)."""
        var_x, var_z, covariance = self._moments[3:]
        if var_x <= 0.0 or var_z <= 0.0:
            return float("nan")
        return float(covariance / np.sqrt(var_x * var_z))

    @property
    def nbytes(self) -> int:
        """Bytes held in arrays (a function of the frequencies and nodes, not of the rows)."""
        arrays = (self.frequencies, self.weight_of_frequency, self._tables, self._moments,
                  self.nodes, self._points, self._barycentric)  # fmt: skip
        return sum(array.nbytes for array in arrays)

    def check(self) -> None:
        """Raise :class:`DataQualityError` as :meth:`GammaGamma.fit` would on all the rows."""
        broken = [(what, n_bad, example, fix)
                  for what, (n_bad, example, fix) in self._broken.items()]  # fmt: skip
        _raise_broken(broken, self.n_rows)
        _check_repeat_buyers(self.n_customers, self.n_customers + self.n_excluded)

    def at(self, gamma: float) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        """By frequency: sums of w log1p(gamma/s), w log1p(s/gamma), w/(gamma+s), w s/(gamma+s).

        Interpolated inside the interval; continued linearly in ``log(gamma)`` outside it.
        """
        u = math.log(gamma)
        low, high = self.bounds
        edge = min(max(u, low), high)
        t = (2.0 * edge - low - high) / (high - low)
        gaps = t - self._points
        exact = np.flatnonzero(gaps == 0.0)
        if len(exact):
            values = self._tables[:, :, exact[0]]
        else:
            factors = self._barycentric / gaps
            values = self._tables @ factors / factors.sum()
        gamma_side, spend_side, gamma_share, spend_share = values
        beyond = u - edge
        if beyond:  # d/du log1p(g/s) = g/(g+s) and d/du log1p(s/g) = -s/(g+s)
            gamma_side = gamma_side + beyond * gamma_share
            spend_side = spend_side - beyond * spend_share
        return gamma_side, spend_side, gamma_share / gamma, spend_share


def _terms(spend: FloatArray, log_spend: FloatArray, u: float, *, out: FloatArray) -> None:
    """Per customer at ``gamma = e^u``, into ``out``: log1p(g/s), log1p(s/g), g/(g+s), s/(g+s).

    The log terms as ``_SpendSums.at`` takes them: ``log1p(min/max)`` is the smaller, and
    ``|log s - u|`` more is the larger, each accurate to a few ulps at any ratio.
    """
    gamma = math.exp(u)
    gamma_side, spend_side, gamma_share, spend_share = out
    is_large = spend >= gamma
    np.minimum(spend, gamma, out=gamma_share)
    np.maximum(spend, gamma, out=spend_share)
    np.divide(gamma_share, spend_share, out=gamma_share)
    np.log1p(gamma_share, out=gamma_share)  # the smaller log term
    np.subtract(log_spend, u, out=spend_share)
    np.abs(spend_share, out=spend_share)
    np.add(spend_share, gamma_share, out=spend_share)  # the larger
    np.copyto(gamma_side, spend_share)
    np.copyto(gamma_side, gamma_share, where=is_large)
    np.copyto(spend_side, gamma_share)
    np.copyto(spend_side, spend_share, where=is_large)
    np.add(spend, gamma, out=spend_share)
    np.divide(gamma, spend_share, out=gamma_share)
    np.divide(spend, spend_share, out=spend_share)


def fit_chunks(
    model: _Fitted, chunks: Callable[[], Iterable[pd.DataFrame]], *,
    unit: TimeUnit | str | None = None, start: pd.DataFrame | None = None,
) -> _Fitted:  # fmt: skip
    """Fit ``model`` on the summary ``chunks()`` yields (:meth:`GammaGamma.fit_chunks`).

    Parameters
    ----------
    model
        The model to fit (its options: ``n_starts``, ``penalizer``, ``max_correlation``).
    chunks
        Called with no argument, returns an iterable of summary chunks (``frequency``,
        ``monetary_value``, optional ``weight``), such as 500,000 rows of a database query at a
        time. It is called once per pass over the data (usually one), and once more for
        the first chunk alone when there is no ``start``.
    unit
        Recorded as :meth:`GammaGamma.fit` does; defaults to the unit in the sample's ``attrs``.
    start
        A sample of the summary for the starting estimate of ``gamma`` and the interval
        tabulated (default: the first chunk). It moves no estimate, only the work.

    Raises
    ------
    SchemaError, DataQualityError
        As :meth:`GammaGamma.fit`, the rows counted over all the chunks.
    ConvergenceError
        When no start converges, or no interval holds the estimate of ``gamma``.
    """
    sample = start if start is not None else next(iter(chunks()), None)
    found = unit if unit is not None else None if sample is None else sample.attrs.get("unit")
    warm = _sample_estimate(model, sample)
    sums = _read(chunks, float(warm[2]))
    sums.check()
    model._check_correlation(sums.correlation, sums.n_customers, stacklevel=4)
    model._check_base(_histories(sums))
    # the sample's estimate first, as GammaGamma's warm start on a large base
    starts = [warm, *_spread(sums.mean_spend)][: max(1, model.n_starts)]
    for _ in range(_MAX_PASSES):
        located = _locate(model, sums, starts)
        if _is_inside(located, sums):  # the engine's fit from there, on the exact tables
            result = _maximise(model, sums, [located])
            if _is_inside(result.params, sums):
                break
            located = result.params
        sums = _read(chunks, float(located[2]))
        starts = [located]
    else:
        raise ConvergenceError(
            f"{_MODEL}.fit_chunks found the maximum beyond every interval of gamma it tabulated "
            f"in {_MAX_PASSES} passes (the last at gamma = {located[2]:.4g}): gamma runs off. "
            "Fit on a frame (GammaGamma.fit) to see the estimates at the edge"
        )
    return _store(model, sums, result, None if found is None else as_time_unit(found), sample)


def _is_inside(params: FloatArray, sums: SpendSums) -> bool:
    """Whether ``gamma`` is in the tabulated interval, :data:`MARGIN` from its edges."""
    low, high = sums.bounds
    return low + MARGIN <= math.log(params[2]) <= high - MARGIN


def _locate(model: GammaGamma, sums: SpendSums, starts: Sequence[FloatArray]) -> FloatArray:
    """The maximum with ``gamma`` held in the tabulated interval: the best of ``starts``.

    Within the interval it is the maximum itself; on its edge, the true maximum lies beyond
    (the likelihood is unimodal in ``log(gamma)`` in practice), and the next pass is
    tabulated around it. L-BFGS-B in ``log(params)`` in :func:`maximise`'s box, with
    ``gamma``'s side narrowed to the interval.
    """
    negative = _scaled(_spend_objective(sums), sums.n_customers, model.penalizer)
    reach = math.log(SEARCH_FACTOR)
    bounds = [(-reach, reach), (-reach, reach), sums.bounds]
    lower, upper = np.array(bounds).T
    best: Any = None
    for start in starts:
        theta = np.clip(np.log(start), lower, upper)
        found = optimize.minimize(negative, theta, jac=True, method="L-BFGS-B", bounds=bounds,
                                  options=_LOCATE_OPTIONS)  # fmt: skip
        if np.isfinite(found.fun) and (best is None or found.fun < best.fun):
            best = found
    if best is None:
        raise ConvergenceError(f"{_MODEL}.fit_chunks found no finite likelihood from its starts")
    return np.asarray(np.exp(best.x), dtype=np.float64)


def _read(chunks: Callable[[], Iterable[pd.DataFrame]], gamma: float) -> SpendSums:
    """One pass over the chunks, tabulated around ``gamma``."""
    sums = SpendSums(gamma * math.exp(-HALF_WIDTH), gamma * math.exp(HALF_WIDTH))
    for chunk in chunks():
        sums.add(chunk)
    return sums


def _spread(mean_spend: float) -> list[FloatArray]:
    """:meth:`GammaGamma._starting_points`' spread: shapes, ``gamma`` on the data's scale."""
    return [np.array([p, q, mean_spend * (q - 1.0) / p]) for p, q in _SHAPE_STARTS]


def _sample_estimate(model: GammaGamma, sample: pd.DataFrame | None) -> FloatArray:
    """:meth:`GammaGamma.fit` on the sample's usable repeat buyers (its warnings unsaid).

    A sample that cannot be fitted, or whose estimates run off (a few rows can show no
    heterogeneity), gives the first spread start on its mean spend instead: an estimate at
    the edge would centre the interval on a flat ridge of the likelihood.
    """
    if sample is None:
        return _spread(1.0)[0]
    x, zbar, weights = _fit_columns(sample)
    with np.errstate(invalid="ignore"):  # NaN compares False: such rows are not used
        is_usable = (x >= 1) & (x == np.floor(x)) & (zbar > 0) & (zbar <= _MAX_SPEND) & (
            weights >= 0) & np.isfinite(x) & np.isfinite(weights)  # fmt: skip
    has_weight = weights[is_usable].sum() > 0
    mean_spend = float(np.average(zbar[is_usable], weights=weights[is_usable])) if (
        has_weight) else 1.0  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            estimate = model._replicate().fit(sample.loc[is_usable]).params_
        except (ConvergenceError, DataQualityError):
            return _spread(mean_spend)[0]
    if any(issubclass(found.category, ConvergenceWarning) for found in caught):
        return _spread(mean_spend)[0]
    return np.asarray(estimate.to_numpy(), dtype=np.float64)


def _histories(sums: SpendSums) -> Patterns:
    """Patterns :meth:`Model._check_base` reads as the stream's: its customers, 1 or 2 histories."""
    n = sums.n_customers
    weights = np.array([n / 2, n / 2]) if sums.has_two_histories else np.array([n])
    columns = {"frequency": np.ones(len(weights)), "monetary_value": np.ones(len(weights))}
    return Patterns(columns, weights)


def _maximise(model: GammaGamma, sums: SpendSums, starts: Sequence[FloatArray]) -> MLEResult:
    """The engine's maximum of the likelihood of the tables, scaled as :meth:`Model.fit`."""
    return maximise(
        _spend_objective(sums), starts, n_obs=sums.n_customers, has_gradient=True,
        penalizer=model.penalizer, model=_MODEL, scales=_scales(sums),
    )  # fmt: skip


def _scales(sums: SpendSums) -> FloatArray:
    """:meth:`Model._scales` of the stream: 1 for the shapes, the mean spend for ``gamma``."""
    return np.array([1.0, 1.0, sums.mean_spend])


def _store(
    model: _Fitted, sums: SpendSums, result: MLEResult, unit: TimeUnit | None,
    sample: pd.DataFrame | None,
) -> _Fitted:  # fmt: skip
    """Set the fitted state as :meth:`GammaGamma.fit` does; warn on an edge as it does."""
    if result.edges:
        warnings.warn(
            describe_edges(result.edges, model._param_names, result.params, _scales(sums), _MODEL),
            ConvergenceWarning,
            stacklevel=4,  # the caller of GammaGamma.fit_chunks
        )
    model._store(result, sums.n_customers, unit)
    model._polish(_spend_objective(sums))
    model.drop_data()  # no patterns to resample
    model.n_excluded_ = sums.n_excluded
    model.excluded_ = _no_rows(sample)
    return model


def _no_rows(sample: pd.DataFrame | None) -> pd.DataFrame:
    """:attr:`GammaGamma.excluded_` without rows (the stream counts): the sample's columns."""
    if sample is None:
        sample = pd.DataFrame({"frequency": np.empty(0), "monetary_value": np.empty(0)})
    kept = [name for name in ("frequency", "monetary_value", "weight") if name in sample]
    excluded = sample.iloc[:0][kept].copy()
    excluded["reason"] = pd.Categorical([], categories=[_NO_REPEAT])
    return excluded
