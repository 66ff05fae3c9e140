"""The Gamma-Gamma model of spend per transaction.

Fader, Hardie & Lee (2005), "RFM and CLV: using iso-value curves for customer base analysis"
(Journal of Marketing Research 42(4)), and Fader & Hardie (2013), "The Gamma-Gamma model of monetary
value" (http://www.brucehardie.com/notes/025/), which this module's equation numbers follow.

A customer's transactions are Gamma(p, nu) amounts around their own mean ``p / nu``; across
customers ``nu`` is Gamma(q, gamma). With ``x`` repeat transactions of mean ``zbar``, the model
scores ``zbar`` only, so it is fitted on the repeat buyers (``frequency >= 1``); the customers
without a repeat purchase are counted and named in :attr:`GammaGamma.excluded_`. A repeat buyer
whose ``monetary_value`` is missing, zero or negative is a data error, not a customer to leave
out: :meth:`GammaGamma.fit` refuses the summary and names the rows. The model assumes spend is
independent of frequency; :meth:`GammaGamma.fit` measures the correlation and warns
(:class:`FrequencySpendCorrelationWarning`) when it is strong.

Examples
--------
>>> import numpy as np
>>> model = GammaGamma()
>>> data = model.simulate(5_000, 3, p=6.0, q=4.0, gamma=15.0, rng=np.random.default_rng(1))
>>> fitted = model.fit(data)
>>> fitted.params_.round(0).tolist()
[6.0, 4.0, 15.0]
>>> fitted.expected_spend_new() > 0
True
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.special import betaln, digamma

from cvalue.errors import (
    ConvergenceError,
    CValueWarning,
    DataQualityError,
    SchemaError,
    UndefinedExpectationError,
)
from cvalue.models._base import FloatArray, Model, Patterns, patterns_of, require_columns
from cvalue.models._checks import describe_rule
from cvalue.models._covariates import Link
from cvalue.models._mle import Objective, _information, _inverse, _scaled, maximise
from cvalue.models._strata import Combine
from cvalue.units import TimeUnit, as_time_unit

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["FrequencySpendCorrelationWarning", "GammaGamma", "UndefinedExpectationError"]

logger = logging.getLogger(__name__)

_COLUMNS = ("frequency", "monetary_value")
_WARM_START_PATTERNS = 20_000  # above this, the spread starts run on a subsample first
_BLOCK_ROWS = 1 << 15  # rows scored at a time: a block's arrays stay in cache between passes
_MODEL = "GammaGamma"
_NO_REPEAT = "no repeat purchase (frequency < 1)"
_MAX_SPEND = 1e100  # beyond any currency: x * zbar and the moments of zbar stay finite
_POLISH_STEPS = 4  # Newton steps from L-BFGS-B's estimate: two reach rounding
_POLISH_REACH = 1e-3  # in log(params): a polish, not a search
_BrokenRule = tuple[str, int, Hashable, str]  # what, rows, an example customer, the fix


class FrequencySpendCorrelationWarning(CValueWarning):
    """Frequency and spend per transaction are correlated; the Gamma-Gamma assumes they are not."""


def _log_likelihood_terms(
    x: FloatArray, zbar: FloatArray, p: float, q: float, gamma: float
) -> FloatArray:
    """Each customer's log f(zbar | p, q, gamma; x): Fader & Hardie (2013), eq. (1a).

    ``Gamma(px + q) / (Gamma(px) Gamma(q)) gamma^q zbar^(px-1) x^px / (gamma + x zbar)^(px+q)``,
    rearranged as ``-betaln(px, q) - log zbar - px log1p(gamma / (x zbar))
    - q log1p(x zbar / gamma)`` so that spend in cents or in millions cannot overflow.
    The fit uses the aggregated form in :meth:`GammaGamma._objective`; this form is its check.
    """
    px = p * x
    spend = x * zbar
    return np.asarray(
        -betaln(px, q) - np.log(zbar) - px * np.log1p(gamma / spend)
        - q * np.log1p(spend / gamma),
        dtype=np.float64,
    )  # fmt: skip


def _conditional_expected_spend(
    x: FloatArray, zbar: FloatArray, p: float, q: float, gamma: float
) -> FloatArray:
    """E(Z | p, q, gamma, zbar, x): Fader & Hardie (2013), eq. (5).

    The weighted mean ``(q - 1)/(px + q - 1) * p gamma/(q - 1) + px/(px + q - 1) * zbar`` of the
    population mean and the customer's mean, written as ``p (gamma + x zbar) / (px + q - 1)``,
    which is finite whenever ``px + q > 1`` (also for ``q <= 1`` when ``x >= 1``). ``x = 0``
    gives the population mean for any finite ``zbar``: scoring sets it to 1 there, as a
    customer without repeat purchases has no mean spend to read.
    """
    return np.asarray(p * (gamma + x * zbar) / (p * x + q - 1.0), dtype=np.float64)


class GammaGamma(Model):
    """Gamma-Gamma spend model (Fader, Hardie & Lee 2005; Fader & Hardie 2013).

    Parameters
    ----------
    n_starts
        How many starting points the optimiser tries (the best converged fit is kept).
    penalizer
        L2 penalty on the natural parameters; 0 for plain maximum likelihood.
    max_correlation
        :meth:`fit` warns when the absolute Pearson correlation between frequency and spend per
        transaction among the repeat buyers exceeds this (the model assumes independence;
        Fader & Hardie report 0.11 on CDNOW).

    Attributes
    ----------
    params_
        ``p`` (shape of a customer's transaction amounts), ``q`` and ``gamma`` (shape and rate
        of the customers' Gamma-distributed ``nu``).
    excluded_
        The customers the fit could not use, indexed like the data, with their frequency,
        monetary_value and ``reason``. Set by :meth:`fit` only (a loaded model keeps the count).
    n_excluded_
        How many customers were excluded (the sum of their weights for compressed data).
    frequency_spend_correlation_
        The Pearson correlation between frequency and monetary_value among the repeat buyers.

    Examples
    --------
    >>> from cvalue.datasets import load_cdnow
    >>> model = GammaGamma().fit(load_cdnow().summary)
    >>> model.params_.round(2).tolist()  # the note prints gamma = 15.44; the MLE is 15.4477
    [6.25, 3.74, 15.45]
    >>> model.n_customers_, model.n_excluded_
    (946.0, 1411.0)
    """

    _param_names: ClassVar[tuple[str, ...]] = ("p", "q", "gamma")
    _covariate_links: ClassVar[dict[str, Link]] = {"spend": (("gamma", 1),)}
    _by_stratum: ClassVar[dict[str, Combine]] = {
        "expected_spend_new": "mixture", "conditional_expected_spend": "rows", "predict": "rows",
        "log_likelihood": "rows", "simulate": "simulate", "spend_terms": "refuse",
    }  # fmt: skip
    _scale_columns: ClassVar[tuple[str | None, ...]] = (None, None, "monetary_value")

    def __init__(
        self, *, n_starts: int = 3, penalizer: float = 0.0, max_correlation: float = 0.3
    ) -> None:
        super().__init__(n_starts=n_starts, penalizer=penalizer)
        self.max_correlation = max_correlation

    # --- fitting -----------------------------------------------------------------------------

    def fit(
        self, data: pd.DataFrame, *, unit: TimeUnit | str | None = None,
        covariates: Sequence[str] | Mapping[str, Sequence[str]] | None = None,
        constrain: Sequence[str] = (), covariate_penalizer: float = 0.0,
        reference: Mapping[str, Any] | None = None,
    ) -> Self:  # fmt: skip
        """Fit on the repeat buyers of ``data``; return ``self``.

        Parameters
        ----------
        data
            A summary with ``frequency`` and ``monetary_value`` (the mean spend of the repeat
            transactions), indexed by customer id; an optional ``weight`` column marks data
            that is already compressed.
        unit
            Recorded for consistency with the other models; spend has no time unit.
        covariates, constrain, covariate_penalizer, reference
            Columns of ``data`` that scale each customer's spend (``gamma_i = gamma
            exp(gamma_spend' z)``), as in :meth:`cvalue.models.Model.fit`; the process is
            ``"spend"``.

        Raises
        ------
        SchemaError
            When a column is missing or not numeric.
        DataQualityError
            When a row is unusable: a missing, infinite, negative or fractional ``frequency``; a
            repeat buyer (``frequency >= 1``) whose ``monetary_value`` is missing, infinite,
            zero, negative or beyond 1e100; a negative or missing ``weight``. Every problem is
            named with its row count and an example customer. Also when there is no repeat
            buyer, or they all have the same frequency and spend.

        Warns
        -----
        FrequencySpendCorrelationWarning
            When frequency and spend are correlated beyond ``max_correlation``.
        SmallBaseWarning
            On fewer than 100 repeat buyers.
        ConvergenceWarning
            When an estimate ends at the edge of the parameter space (see
            :meth:`cvalue.models._base.Model.fit`).
        """
        usable = self._split(data)
        patterns = self._prepare(usable)
        self._check_correlation(_weighted_correlation(patterns), float(patterns.weights.sum()))
        found = unit if unit is not None else data.attrs.get("unit")
        time_unit = None if found is None else as_time_unit(found)
        if covariates is not None:
            return self._fit_covariates(
                usable, time_unit, covariates, constrain, covariate_penalizer, reference
            )
        self._fit_patterns(patterns, time_unit)
        self._polish(self._objective(patterns))
        return self

    def fit_chunks(
        self, chunks: Callable[[], Iterable[pd.DataFrame]], *,
        unit: TimeUnit | str | None = None, start: pd.DataFrame | None = None,
        covariates: Sequence[str] | Mapping[str, Sequence[str]] | None = None,
    ) -> Self:  # fmt: skip
        """Fit on a summary read in chunks, in memory that does not grow with the customers.

        The fit of :meth:`fit` on all the chunks together, with the same warnings and errors
        (a rule broken in any chunk is counted over all of them); ``excluded_`` is empty, as
        the customers without a repeat purchase are only counted (``n_excluded_``).
        :func:`cvalue.models._spend_stream.fit_chunks` has the parameters and says why the
        fit is exact. ``covariates`` is refused (:class:`SchemaError`): fit a frame for them.
        """
        from cvalue.models._spend_stream import fit_chunks  # it builds on this module

        if covariates is not None:
            raise SchemaError(
                f"{_MODEL}.fit_chunks fits without covariates (got {covariates!r}); fit the "
                "summary as one frame with GammaGamma.fit(data, covariates=...)"
            )

        return fit_chunks(self, chunks, unit=unit, start=start)

    def _check_correlation(self, correlation: float, n_repeat: float, stacklevel: int = 3) -> None:
        """Record the frequency-spend correlation; warn when it is beyond ``max_correlation``."""
        self.frequency_spend_correlation_ = correlation
        if abs(correlation) > self.max_correlation:
            warnings.warn(
                f"frequency and monetary_value are correlated (Pearson r = {correlation:.3f} "
                f"over {n_repeat:,.0f} repeat buyers, above max_correlation="
                f"{self.max_correlation}); the Gamma-Gamma assumes spend per transaction is "
                "independent of frequency, so its spend predictions may be biased. Check the "
                "data, or model spend with the frequency as a covariate",
                FrequencySpendCorrelationWarning,
                stacklevel=stacklevel,
            )

    def _polish(self, objective: Objective) -> None:
        """Newton steps in ``log(params)`` from the optimiser's estimate to the maximum.

        L-BFGS-B stops within about 1e-7 (relative) of the maximum, where its start decides;
        the maximum itself does not depend on the start or the order of the sums (the fit on
        chunks reaches the same point). A step is taken only where the information is
        positive definite, the step is small (an estimate at an edge stays) and the gradient
        shrinks; the covariance and log-likelihood are then read at the new point.
        """
        theta = np.log(self.params_.to_numpy(dtype=np.float64))
        gradient_at = _scaled(objective, 1.0, self.penalizer)
        gradient = gradient_at(theta)[1]
        information = _information(objective, theta, self.penalizer, True)
        for _ in range(_POLISH_STEPS):
            try:
                np.linalg.cholesky(information)
            except np.linalg.LinAlgError:
                return
            step = -np.linalg.solve(information, gradient)
            if not np.max(np.abs(step)) < _POLISH_REACH:
                break
            value, moved = gradient_at(theta + step)
            if not (np.isfinite(value) and np.linalg.norm(moved) < np.linalg.norm(gradient)):
                break
            theta, gradient = theta + step, moved
            information = _information(objective, theta, self.penalizer, True)
        params = np.exp(theta)
        self.params_ = pd.Series(params, index=self.params_.index, name="estimate")
        self.covariance_ = pd.DataFrame(
            _inverse(information) * np.outer(params, params),
            index=self.covariance_.index, columns=self.covariance_.columns,
        )  # fmt: skip
        self.log_likelihood_ = float(objective(params)[0])

    def _split(self, data: pd.DataFrame) -> pd.DataFrame:
        """The repeat buyers of ``data``; the others go to ``excluded_``; bad rows raise."""
        x, zbar, weights = _fit_columns(data)
        _check_fit_rows(data, x, zbar, weights)
        is_excluded: npt.NDArray[np.bool_] = np.equal(x, 0.0)
        kept_columns = [*_COLUMNS, "weight"] if "weight" in data else list(_COLUMNS)
        excluded = data.loc[is_excluded, kept_columns].copy()
        excluded["reason"] = pd.Categorical(
            np.full(int(is_excluded.sum()), _NO_REPEAT), categories=[_NO_REPEAT])  # fmt: skip
        self.excluded_ = excluded
        self.n_excluded_ = float(weights[is_excluded].sum())
        _check_repeat_buyers(float(weights[~is_excluded].sum()), float(weights.sum()))
        if self.n_excluded_:
            logger.info("%s left out %s customers without a repeat purchase", _MODEL,
                        f"{self.n_excluded_:,.0f}")  # fmt: skip
        return data.loc[~is_excluded]

    def _prepare(self, data: pd.DataFrame) -> Patterns:
        """The distinct (frequency, monetary_value) pairs of the repeat buyers, with weights."""
        return patterns_of(data, _COLUMNS, model=_MODEL)

    def _objective(self, patterns: Patterns) -> Objective:
        """The weighted log-likelihood of eq. (1a) and its gradient, summed by frequency.

        With ``s = x zbar`` (a customer's total repeat spend), eq. (1a) is
        ``-betaln(px, q) - log zbar - px log1p(gamma / s) - q log1p(s / gamma)``. Every term
        is a function of ``x`` times a sum over the customers with that ``x``: the sums in
        ``s`` are computed per pattern at each evaluation (see :class:`_SpendSums`), the
        betaln and digamma terms per distinct frequency.
        """
        return _spend_objective(_SpendSums(patterns))

    def _starting_points(self, patterns: Patterns) -> list[FloatArray]:
        """Shapes spread over typical fits; on large data, the fit of a subsample and neighbours.

        The population mean spend is ``p gamma / (q - 1)``, so ``gamma = mean (q - 1) / p``
        puts every spread start on the data's scale (cents or millions alike). Beyond
        ``_WARM_START_PATTERNS`` patterns, the spread starts are run on an evenly strided
        subsample (the patterns are sorted, so the stride stratifies by frequency and spend);
        its best estimate is then the one start of the full fit, so the spread is explored
        at a fiftieth of the cost and the full data are only used to refine.
        """
        mean_spend = float(
            np.sum(patterns.weights * patterns["monetary_value"]) / np.sum(patterns.weights)
        )
        shapes = [(4.0, 3.0), (1.0, 2.0), (15.0, 8.0), (0.5, 1.5)]
        spread = [np.array([p, q, mean_spend * (q - 1.0) / p]) for p, q in shapes]
        n_patterns = len(patterns.weights)
        if n_patterns <= _WARM_START_PATTERNS:
            return spread
        stride = -(-n_patterns // _WARM_START_PATTERNS)
        sample = Patterns(
            {name: column[::stride] for name, column in patterns.columns.items()},
            patterns.weights[::stride],
        )
        share = float(sample.weights.sum() / patterns.weights.sum())
        try:
            warm = maximise(
                self._objective(sample), spread[: max(1, self.n_starts)],
                n_obs=float(sample.weights.sum()), has_gradient=True,
                penalizer=self.penalizer * share, model=_MODEL, scales=self._scales(sample),
            ).params  # fmt: skip
        except ConvergenceError:
            return spread
        return [warm]

    # --- predictions -------------------------------------------------------------------------

    def expected_spend_new(self) -> float:
        """Mean spend per transaction of a new customer, ``p gamma / (q - 1)``.

        The population mean that eq. (5) of Fader & Hardie (2013) shrinks each customer
        towards (the mean of ``p / nu`` with ``nu ~ Gamma(q, gamma)``).

        Raises
        ------
        UndefinedExpectationError
            When ``q <= 1``: the population mean is then infinite.
        """
        p, q, gamma = self._params()
        if q <= 1.0:
            raise UndefinedExpectationError(
                f"the population mean spend p*gamma/(q-1) is infinite at q = {q:.4g} <= 1 "
                "(the spend distribution's tail is too heavy); a new customer has no finite "
                "expected spend. Refit with more repeat buyers, or cap extreme spends"
            )
        return p * gamma / (q - 1.0)

    def conditional_expected_spend(self, data: pd.DataFrame) -> pd.Series:
        """Each customer's expected spend per transaction: Fader & Hardie (2013), eq. (5).

        A weighted mean of the population mean ``p gamma/(q - 1)`` and the customer's mean
        ``monetary_value``, the customer's weight ``px/(px + q - 1)`` growing with their number
        of repeat purchases ``x``. Customers with ``frequency`` 0 get the population mean.

        Raises
        ------
        DataQualityError
            When a customer with repeat purchases has a missing or non-positive
            ``monetary_value``, or a frequency is missing or negative.
        UndefinedExpectationError
            When ``q <= 1`` and a customer has ``p x + q <= 1`` (e.g. frequency 0).
        """
        p, q, gamma = self._params()
        x, zbar = _scoring_columns(data)
        # frequencies are >= 0, so p x + q >= q: only q <= 1 can leave a row without a mean
        if q <= 1.0:
            _check_scoring_rows(data, x, zbar)
            if np.any(p * x + q <= 1.0):
                raise UndefinedExpectationError(
                    f"at q = {q:.4g} <= 1 the expected spend is infinite for customers with "
                    f"p*frequency + q <= 1 ({int(np.sum(p * x + q <= 1.0)):,} rows, e.g. "
                    "frequency 0); score repeat buyers only, or refit with more repeat buyers"
                )
        # Closed form per row (compressing first would cost more than the arithmetic), a block
        # of rows at a time: the few passes of the formula are bound by memory, and over a block
        # they stay in cache
        spend = np.empty(len(x))
        for start in range(0, len(x), _BLOCK_ROWS):
            rows = slice(start, start + _BLOCK_ROWS)
            frequency = x[rows]
            mean_spend = np.where(frequency > 0, zbar[rows], 1.0)  # read for repeat buyers only
            if not _is_clean(frequency, mean_spend):
                _check_scoring_rows(data, x, zbar)
            spend[rows] = _conditional_expected_spend(frequency, mean_spend, p, q, gamma)
        return pd.Series(spend, index=data.index, name="expected_spend")

    def spend_terms(self, frequency: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
        """``u, v`` with the expected spend ``u + v * monetary_value``, per frequency.

        Eq. (5) of Fader & Hardie (2013), ``p (gamma + x zbar) / (p x + q - 1)``, split into
        ``u = p gamma / (p x + q - 1)`` and ``v = p x / (p x + q - 1)`` (0 without repeat
        purchases): linear in the mean spend, so that valuation can sum spends over customers
        before it multiplies.

        Raises
        ------
        UndefinedExpectationError
            When some frequency has ``p x + q <= 1``.
        """
        p, q, gamma = self._params()
        x = np.asarray(frequency, dtype=np.float64)
        denominator = p * x + q - 1.0
        if np.any(denominator <= 0):
            raise UndefinedExpectationError(
                f"the Gamma-Gamma expected spend is infinite at q = {q:.4g} for "
                f"{int(np.sum(denominator <= 0)):,} pattern(s) with p*frequency + q <= 1; refit "
                "the spend model with more repeat buyers, or pass the spend per customer"
            )
        return np.asarray(p * gamma / denominator), np.asarray(p * x / denominator)

    def predict(self, data: pd.DataFrame) -> pd.DataFrame:
        """One row per customer with ``expected_spend`` (eq. 5), indexed like ``data``."""
        spend = self.conditional_expected_spend(data)
        # one column, adopted as it is (to_frame would copy a million rows once more)
        return pd.DataFrame({"expected_spend": spend.to_numpy()}, index=data.index, copy=False)

    def log_likelihood(self, data: pd.DataFrame) -> pd.Series:
        """Each repeat buyer's log-likelihood at the fitted parameters (eq. 1a)."""
        p, q, gamma = self._params()
        x, zbar = _scoring_columns(data)
        _check_scoring_rows(data, x, zbar)
        if np.any((x < 1) | ~(zbar > 0)):
            raise DataQualityError(
                "the Gamma-Gamma likelihood is defined for repeat buyers only (frequency >= 1 "
                "and positive monetary_value); select them first"
            )
        return pd.Series(
            _log_likelihood_terms(x, zbar, p, q, gamma), index=data.index, name="log_likelihood"
        )

    def simulate(
        self,
        n_customers: int,
        frequency: int | npt.ArrayLike,
        *,
        p: float | None = None,
        q: float | None = None,
        gamma: float | None = None,
        rng: np.random.Generator,
    ) -> pd.DataFrame:
        """Repeat buyers drawn from the model: Fader & Hardie (2013), section 2.

        Each customer draws ``nu ~ Gamma(q, rate gamma)``; the mean of their ``x`` transaction
        amounts, each ``Gamma(p, rate nu)``, is ``Gamma(p x, rate x nu)``.

        Parameters
        ----------
        n_customers
            How many customers.
        frequency
            Each customer's number of repeat transactions (>= 1): one number or one per customer.
        p, q, gamma
            The parameters; default to the fitted ones.
        rng
            The random generator.
        """
        fitted = self._params() if p is None or q is None or gamma is None else (p, q, gamma)
        shape, heterogeneity, rate = fitted
        x = np.broadcast_to(np.asarray(frequency, dtype=np.float64), (n_customers,))
        if np.any(x < 1) or not np.all(np.isfinite(x)):
            raise SchemaError("simulate needs frequency >= 1 for every customer (repeat buyers)")
        nu = rng.gamma(heterogeneity, 1.0 / rate, n_customers)
        zbar = rng.gamma(shape * x, 1.0 / (x * nu))
        index = pd.RangeIndex(n_customers, name="customer_id")
        return pd.DataFrame({"frequency": x, "monetary_value": zbar}, index=index)

    # --- state -------------------------------------------------------------------------------

    def _params(self) -> tuple[float, float, float]:
        self._check_fitted()
        self._check_plain()
        p, q, gamma = (float(v) for v in self.params_.to_numpy())
        return p, q, gamma

    @classmethod
    def from_params(
        cls, *values: float, unit: TimeUnit | str | None = None, **named: float
    ) -> Self:
        """A model with given ``p``, ``q`` and ``gamma`` (no fit): see :meth:`Model.from_params`.

        No customer was fitted, so none was excluded and there is no correlation to report.
        """
        model = super().from_params(*values, unit=unit, **named)
        model.n_excluded_ = 0.0
        model.frequency_spend_correlation_ = float("nan")
        return model

    def _options(self) -> dict[str, Any]:
        return super()._options() | {"max_correlation": self.max_correlation}

    def to_dict(self) -> dict[str, Any]:
        """The fitted model as JSON-able values, with the exclusion count and the correlation."""
        saved = super().to_dict()
        saved["n_excluded"] = self.n_excluded_
        saved["frequency_spend_correlation"] = self.frequency_spend_correlation_
        return saved

    @classmethod
    def from_dict(cls, saved: Mapping[str, Any]) -> Self:
        """Rebuild a fitted model from :meth:`to_dict`'s output (not the excluded ids)."""
        model = super().from_dict(saved)
        model.n_excluded_ = float(saved.get("n_excluded", 0.0))
        model.frequency_spend_correlation_ = float(saved.get("frequency_spend_correlation", np.nan))
        return model


class _SpendTables(Protocol):
    """Per-frequency sums of eq. (1a)'s terms (see :class:`_SpendSums`), as read by the fit."""

    frequencies: FloatArray
    weight_of_frequency: FloatArray
    sum_log_zbar: float

    def at(self, gamma: float) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        """By frequency: sums of w log1p(gamma/s), w log1p(s/gamma), w/(gamma+s), w s/(gamma+s)."""


class _SpendSums:
    """Per-frequency sums over the patterns of eq. (1a)'s terms in ``s = x zbar`` and ``gamma``.

    For each distinct frequency: the sums of ``w log1p(gamma / s)``, ``w log1p(s / gamma)``,
    ``w / (gamma + s)`` and ``w s / (gamma + s)``. Both log1p terms come from one ``log1p`` of
    ``min(s, gamma) / max(s, gamma)`` (the smaller term) plus ``|log s - log gamma|`` (giving
    the larger), so each is accurate to a few ulps at any ratio of gamma to spend: the
    difference form ``log(gamma + s) - log s`` loses ``(px + q) eps log(gamma + s)`` per
    customer, enough to stall L-BFGS-B's line search when px is in the thousands and to
    invent optima on the way to the limits p -> inf (p gamma fixed) or q -> inf (q / gamma
    fixed), which real data can reach. The patterns are sorted by frequency once; each
    evaluation writes into preallocated buffers and reduces with ``reduceat``, the
    likelihood's only per-customer work.
    """

    __slots__ = (
        "_buffers",
        "_is_large",
        "_log_spend",
        "_spend",
        "_starts",
        "_weights",
        "frequencies",
        "sum_log_zbar",
        "weight_of_frequency",
    )  # fmt: skip

    def __init__(self, patterns: Patterns) -> None:
        x, zbar, w = patterns["frequency"], patterns["monetary_value"], patterns.weights
        order = np.argsort(x, kind="stable")
        x, zbar, w = x[order], zbar[order], w[order]
        self.frequencies, self._starts = np.unique(x, return_index=True)
        self._spend = x * zbar
        self._log_spend = np.log(self._spend)
        # Compressed data carries weights; unit weights need no multiplication pass.
        self._weights = None if np.all(w == 1.0) else w
        self._buffers = np.empty((4, len(x)))
        self._is_large = np.empty(len(x), dtype=bool)
        self.weight_of_frequency = np.add.reduceat(w, self._starts)
        self.sum_log_zbar = float(np.sum(w * np.log(zbar)))

    def at(self, gamma: float) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        """By frequency: sums of w log1p(gamma/s), w log1p(s/gamma), w/(gamma+s), w s/(gamma+s)."""
        small, big, gamma_side, share = self._buffers
        np.minimum(self._spend, gamma, out=small)
        np.maximum(self._spend, gamma, out=big)
        np.divide(small, big, out=small)
        np.log1p(small, out=small)  # log1p(min / max)
        np.subtract(self._log_spend, np.log(gamma), out=big)
        np.abs(big, out=big)
        np.add(big, small, out=big)  # log1p(max / min)
        np.greater_equal(self._spend, gamma, out=self._is_large)
        np.copyto(gamma_side, big)
        np.copyto(gamma_side, small, where=self._is_large)  # log1p(gamma / s)
        np.copyto(small, big, where=self._is_large)  # log1p(s / gamma)
        np.add(self._spend, gamma, out=big)
        np.reciprocal(big, out=big)  # 1 / (gamma + s)
        np.multiply(self._spend, big, out=share)  # s / (gamma + s)
        if self._weights is not None:
            np.multiply(self._buffers, self._weights, out=self._buffers)
        sums = np.add.reduceat(self._buffers, self._starts, axis=1)
        return sums[2], sums[0], sums[1], sums[3]


def _spend_objective(sums: _SpendTables) -> Objective:
    """The weighted log-likelihood of eq. (1a) and its gradient from per-frequency sums.

    ``sums`` holds, per distinct frequency, the customers' weight and (by :meth:`at`) the sums
    of the terms in ``s = x zbar`` and ``gamma``: :class:`_SpendSums` over patterns, or the
    tables of :class:`cvalue.models.SpendSums` over a stream of chunks.
    """
    x, count = sums.frequencies, sums.weight_of_frequency

    def objective(params: FloatArray) -> tuple[float, FloatArray | None]:
        p, q, gamma = (float(v) for v in params)
        px = p * x
        log1p_gamma_spend, log1p_spend_gamma, inverse, spend_share = sums.at(gamma)
        spend_term = float(np.sum(x * log1p_gamma_spend))
        scale_term = float(np.sum(log1p_spend_gamma))
        value = (
            -float(np.sum(count * betaln(px, q))) - sums.sum_log_zbar - p * spend_term
            - q * scale_term
        )  # fmt: skip
        digamma_sum = digamma(px + q)
        gradient = np.array([
            float(np.sum(count * x * (digamma_sum - digamma(px)))) - spend_term,
            float(np.sum(count * (digamma_sum - digamma(q)))) - scale_term,
            q / gamma * float(np.sum(spend_share)) - p * float(np.sum(x * inverse)),
        ])  # fmt: skip
        return float(value), gradient

    return objective


def _fit_columns(data: pd.DataFrame) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Frequency, monetary_value and weight (1 without a column) as floats, or a SchemaError."""
    require_columns(data, _COLUMNS, _MODEL, "cvalue.rfm_summary and a monetary column")
    names = [*_COLUMNS, "weight"] if "weight" in data else list(_COLUMNS)
    try:
        columns = [data[name].to_numpy(dtype=np.float64, na_value=np.nan) for name in names]
    except (TypeError, ValueError) as exc:
        raise SchemaError(
            f"{_MODEL} needs numeric {names} columns; got dtypes "
            f"{data[names].dtypes.astype(str).to_dict()} ({len(data):,} rows)"
        ) from exc
    weights = columns[2] if len(columns) == 3 else np.ones(len(data))
    return columns[0], columns[1], weights


def _check_fit_rows(
    data: pd.DataFrame, x: FloatArray, zbar: FloatArray, weights: FloatArray
) -> None:
    """Raise :class:`DataQualityError` naming every rule that rows break, with counts."""
    _raise_broken(_broken_rules(data, x, zbar, weights), len(data))


def _raise_broken(broken: Sequence[_BrokenRule], n_rows: int) -> None:
    """Raise the :class:`DataQualityError` of the broken rules, if any, over ``n_rows``."""
    if broken:
        found = [describe_rule(what, n_bad, n_rows, example, fix)
                 for what, n_bad, example, fix in broken]  # fmt: skip
        raise DataQualityError(f"{_MODEL} cannot use this summary: " + "; ".join(found))


def _check_repeat_buyers(n_repeat: float, n_customers: float) -> None:
    """Refuse a summary without a repeat buyer (the Gamma-Gamma has nothing to fit)."""
    if n_repeat <= 0:
        raise DataQualityError(
            f"{_MODEL} fits repeat buyers (frequency >= 1), and none of the "
            f"{n_customers:,.0f} customers has a repeat purchase. Use a longer calibration period"
        )


def _broken_rules(
    data: pd.DataFrame, x: FloatArray, zbar: FloatArray, weights: FloatArray
) -> list[_BrokenRule]:
    """Each rule of :meth:`GammaGamma.fit` that rows break: what, how many, one customer, fix."""
    is_repeat = x > 0  # NaN compares False
    rules = [
        (~(np.isfinite(x) & (x >= 0)), "'frequency' is missing, infinite or negative",
         "frequency counts repeat purchases"),
        (np.isfinite(x) & (x != np.floor(x)), "'frequency' is not a whole number",
         "it counts repeat purchases"),
        (is_repeat & ~np.isfinite(zbar), "'monetary_value' is missing or infinite for repeat "
         "buyers (frequency >= 1)", "it is their mean spend per repeat transaction"),
        (is_repeat & ~(zbar > 0) & np.isfinite(zbar), "'monetary_value' is zero or negative for "
         "repeat buyers (frequency >= 1)", "a repeat buyer's mean spend must be positive: net "
         "returns against their purchases, or drop those customers before fitting"),
        (is_repeat & (zbar > _MAX_SPEND) & np.isfinite(zbar), f"'monetary_value' is above "
         f"{_MAX_SPEND:.0e}", "check the column and its unit"),
        (~(np.isfinite(weights) & (weights >= 0)), "'weight' is negative, missing or infinite",
         "weights count the customers of each row"),
    ]  # fmt: skip
    return [
        (what, int(np.count_nonzero(is_bad)), data.index[int(np.argmax(is_bad))], fix)
        for is_bad, what, fix in rules
        if is_bad.any()
    ]


def _weighted_correlation(patterns: Patterns) -> float:
    """Pearson correlation of frequency and monetary_value over customers (NaN if constant)."""
    w = patterns.weights / patterns.weights.sum()
    x, zbar = patterns["frequency"], patterns["monetary_value"]
    dx, dz = x - np.sum(w * x), zbar - np.sum(w * zbar)
    var_x, var_z = float(np.sum(w * dx * dx)), float(np.sum(w * dz * dz))
    if var_x <= 0.0 or var_z <= 0.0:
        return float("nan")
    return float(np.sum(w * dx * dz) / np.sqrt(var_x * var_z))


def _scoring_columns(data: pd.DataFrame) -> tuple[FloatArray, FloatArray]:
    """Frequency and monetary_value as floats; :func:`_check_scoring_rows` checks their values."""
    if not isinstance(data, pd.DataFrame):
        raise SchemaError(f"{_MODEL} scores a pandas DataFrame, got {type(data).__name__}")
    missing = [c for c in _COLUMNS if c not in data]
    if missing:
        raise SchemaError(f"{_MODEL} needs column(s) {missing}; the data has {list(data.columns)}")
    x = data["frequency"].to_numpy(dtype=np.float64, na_value=np.nan)
    zbar = data["monetary_value"].to_numpy(dtype=np.float64, na_value=np.nan)
    return x, zbar


def _is_clean(frequency: FloatArray, mean_spend: FloatArray) -> bool:
    """Whether frequencies are finite and >= 0 and the spend read is finite and positive.

    ``mean_spend`` is monetary_value for repeat buyers and 1 for the others (not read). Minimum
    and maximum catch NaN and infinities in a pass each, with no mask per rule.
    """
    return bool(
        frequency.min() >= 0 and frequency.max() < np.inf
        and mean_spend.min() > 0 and mean_spend.max() < np.inf
    )  # fmt: skip


def _check_scoring_rows(data: pd.DataFrame, x: FloatArray, zbar: FloatArray) -> None:
    """Raise :class:`DataQualityError` naming the rows whose frequency or spend cannot be used."""
    bad_frequency = ~(x >= 0) | ~np.isfinite(x)
    bad_spend = (x > 0) & ~(np.isfinite(zbar) & (zbar > 0))
    if bad_frequency.any() or bad_spend.any():
        is_bad = bad_frequency | bad_spend
        example = data.index[np.flatnonzero(is_bad)[0]]
        raise DataQualityError(
            f"{int(bad_frequency.sum()):,} rows have a missing or negative 'frequency' and "
            f"{int(bad_spend.sum()):,} repeat buyers a missing or non-positive 'monetary_value' "
            f"(of {len(data):,} rows; e.g. customer {example!r}); the expected spend needs "
            "both. Drop or fix those rows (GammaGamma.excluded_ lists them at fit time)"
        )
