"""What the contractual duration models share: fitting, survival, values, scoring, simulation.

A contractual model (:class:`~cvalue.models.ShiftedBetaGeo`,
:class:`~cvalue.models.BetaDiscreteWeibull`) describes how long customers keep a contract:
durations ``T >= 1`` in whole periods, with survival ``S(t) = P(T > t)``. A subclass gives
``log S(t)`` and ``log P(T = t)`` with their gradients and a way to draw durations;
:class:`ContractualModel` does the rest: fits on customer durations or on cohort survivor counts
(one parameter set, or one per cohort, compared by :func:`lr_test`), cohort values (``survival``,
``retention_rate``, ``del_``, ``derl``; Fader & Hardie 2007 and 2010), per-customer scores
(:meth:`ContractualModel.predict`) and the purchase-model contract's names, payments being the
purchases (``p_alive``, ``expected_purchases``, ``purchase_pmf``, ``dert``, ``curves``).
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats

from cvalue.errors import DataQualityError, NotFittedError, SchemaError
from cvalue.models._base import FloatArray, Model, Patterns, patterns_of, require_columns
from cvalue.models._contract import keyword_options
from cvalue.models._covariates import Link
from cvalue.models._curves import (
    ContractCurves,
    Curves,
    distinct,
    float_column,
    just_acquired,
)
from cvalue.models._strata import Combine, StratumMethods
from cvalue.models.beta_geo_beta_binom import (
    _whole_periods,
)
from cvalue.units import Duration, Rate, TimeUnit, as_time_unit

if TYPE_CHECKING:
    from typing_extensions import Self

    from cvalue.models._mle import MLEResult, Objective

__all__ = ["ContractualModel", "LikelihoodRatioTest", "lr_test"]

_COLUMNS = ("duration", "is_censored")
_BLOCK = 4096  # periods summed at once in the discounted sums
_MAX_PERIODS = 1 << 22  # the discounted sums stop here and add a bounded tail
_RELATIVE_TOLERANCE = 1e-17
_CELLS = 1 << 18  # tenures x periods evaluated at once in the per-customer sums
_PREDICTIONS = ("p_renew_next", "p_active_at_horizon", "expected_renewals")
SurvivorTable = pd.DataFrame | pd.Series | Sequence[float] | Sequence[Sequence[float]] | FloatArray


@dataclass(frozen=True, slots=True)
class LikelihoodRatioTest:
    """A likelihood-ratio test of a restricted model against a more general one.

    Attributes
    ----------
    statistic
        ``2 (LL_unrestricted - LL_restricted)``, asymptotically chi-square under the restriction.
    df
        Degrees of freedom: the difference in the number of free parameters.
    p_value
        ``P(chi2(df) >= statistic)``.
    """

    statistic: float
    df: int
    p_value: float


def lr_test(restricted: Model, unrestricted: Model) -> LikelihoodRatioTest:
    """Likelihood-ratio test of ``restricted`` (e.g. shared parameters) against ``unrestricted``.

    Both must be fitted on the same customers: for instance
    ``fit_survivors(table, shared=True)`` against ``fit_survivors(table, shared=False)``, or a
    :class:`ShiftedBetaGeo` against a ``BetaDiscreteWeibull`` (``c = 1``) on the same data.

    Examples
    --------
    >>> from cvalue.models import ShiftedBetaGeo
    >>> table = pd.DataFrame([[1000, 631, 468, 382, 326, 289, 262, 241],
    ...                       [1000, 869, 743, 653, 593, 551, 517, 491]],
    ...                      index=["Regular", "High End"])
    >>> test = lr_test(ShiftedBetaGeo().fit_survivors(table),
    ...                ShiftedBetaGeo().fit_survivors(table, shared=False))
    >>> test.df, test.p_value < 1e-10
    (2, True)
    """
    for model in (restricted, unrestricted):
        model._check_fitted()
    df = unrestricted.n_params_ - restricted.n_params_
    if df < 1:
        raise SchemaError(
            f"the unrestricted model has {unrestricted.n_params_} parameters and the restricted "
            f"one {restricted.n_params_}; pass the model with fewer parameters first"
        )
    if not math.isclose(restricted.n_customers_, unrestricted.n_customers_, rel_tol=1e-12):
        raise SchemaError(
            f"the models were fitted on different data ({restricted.n_customers_:,.0f} and "
            f"{unrestricted.n_customers_:,.0f} customers); a likelihood-ratio test needs the same"
        )
    statistic = max(0.0, 2.0 * (unrestricted.log_likelihood_ - restricted.log_likelihood_))
    return LikelihoodRatioTest(statistic, df, float(stats.chi2.sf(statistic, df)))


def _cohorts(survivors: SurvivorTable) -> dict[str, FloatArray]:
    """Each cohort's survivor counts (period 0 first), trailing missing periods removed."""
    if isinstance(survivors, pd.Series):
        table = survivors.to_frame().T
    elif isinstance(survivors, pd.DataFrame):
        table = survivors
    else:
        values = np.asarray(survivors, dtype=np.float64)
        if values.ndim not in (1, 2):
            raise SchemaError(
                "survivors must be one cohort (1-D) or cohorts x periods (2-D), "
                f"got {values.ndim}-D"
            )
        table = pd.DataFrame(np.atleast_2d(values))
    if table.shape[0] == 0 or table.shape[1] < 2:
        raise SchemaError(
            "survivors need at least one cohort and two periods (the cohort's size at period 0 "
            f"and the survivors after period 1); got a {table.shape[0]} x {table.shape[1]} table"
        )
    values = table.to_numpy(dtype=np.float64)
    return {
        str(label): row[: _observed_length(row)]
        for label, row in zip(table.index, values, strict=True)
    }


def _observed_length(row: FloatArray) -> int:
    observed = np.flatnonzero(~np.isnan(row))
    return int(observed[-1]) + 1 if len(observed) else 0


def _check_cohorts(cohorts: Mapping[str, FloatArray]) -> None:
    """Collect every problem of every cohort, then raise once."""
    problems = []
    for label, row in cohorts.items():
        if len(row) < 2:
            problems.append(f"cohort {label!r} has fewer than two periods")
        elif np.isnan(row).any():
            problems.append(f"cohort {label!r} has a missing period before its last one")
        elif not np.isfinite(row).all() or (row < 0).any():
            problems.append(f"cohort {label!r} has negative or infinite counts")
        elif row[0] <= 0:
            problems.append(f"cohort {label!r} starts with {row[0]:g} customers")
        elif (np.diff(row) > 0).any():
            period = int(np.flatnonzero(np.diff(row) > 0)[0]) + 1
            problems.append(
                f"cohort {label!r} increases at period {period} ({row[period - 1]:g} to "
                f"{row[period]:g})"
            )
    if problems:
        raise DataQualityError(
            f"{len(problems)} of {len(cohorts)} cohort(s) are not survivor curves: "
            f"{'; '.join(problems)}. Each row must count the customers of one cohort still active "
            "after each period: non-negative, non-increasing, period 0 (the cohort's size) first"
        )


def _survivor_patterns(row: FloatArray) -> Patterns:
    """A survivor curve as churn-duration patterns: ``s[t-1] - s[t]`` lost in t, ``s[k]`` active."""
    k = len(row) - 1
    duration = np.arange(1, k + 2, dtype=np.float64)
    duration[-1] = k
    weights = np.append(row[:-1] - row[1:], row[-1])
    is_censored = np.zeros(k + 1)
    is_censored[-1] = 1.0
    keep = weights > 0
    return Patterns({"duration": duration[keep], "is_censored": is_censored[keep]}, weights[keep])


def _concatenate(parts: Sequence[Patterns]) -> Patterns:
    return Patterns(
        {c: np.concatenate([p[c] for p in parts]) for c in _COLUMNS},
        np.concatenate([p.weights for p in parts]),
    )


def _check_durations(duration: FloatArray, is_censored: FloatArray, weights: FloatArray,
                     *, model: str) -> None:  # fmt: skip
    rules = {
        "'duration' is not a finite whole number": ~np.isfinite(duration)
        | (duration != np.round(duration)),
        "'is_censored' is not 0 or 1": ~np.isin(is_censored, (0.0, 1.0)),
        "'duration' is negative": duration < 0,
        "'duration' is 0 for a churned customer (churn ends period 1 at the earliest)": (
            duration == 0) & (is_censored == 0),
        "'weight' is negative or not finite": ~np.isfinite(weights) | (weights < 0),
    }  # fmt: skip
    problems = [f"{rule} in {int(bad.sum()):,} row(s)" for rule, bad in rules.items() if bad.any()]
    if problems:
        raise DataQualityError(
            f"{model}: {'; '.join(problems)}. Give each customer 'duration' (whole periods "
            "observed) and 'is_censored' (1 if still active, 0 if churned after 'duration')"
        )


class ContractualModel(Model):
    """What the contractual duration models share: fitting, survival, values, simulation.

    A subclass gives ``log S(t)`` and ``log P(T = t)`` with their gradients and a way to draw
    durations; everything else (fits on durations or survivor tables, per-cohort fits,
    retention, discounted lifetimes, JSON) lives here.
    """

    # --- what a subclass implements ----------------------------------------------------------

    @staticmethod
    @abstractmethod
    def _log_survival(params: FloatArray, t: FloatArray) -> tuple[FloatArray, FloatArray]:
        """``log S(t)`` and its gradient in the natural parameters (``len(t) x k``)."""

    @staticmethod
    @abstractmethod
    def _log_churn(params: FloatArray, t: FloatArray) -> tuple[FloatArray, FloatArray]:
        """``log P(T = t)`` (``t >= 1``) and its gradient in the natural parameters."""

    @staticmethod
    @abstractmethod
    def _draw(params: FloatArray, n_customers: int, n_periods: int,
              rng: np.random.Generator) -> npt.NDArray[np.int64]:  # fmt: skip
        """Durations of new customers, capped at ``n_periods + 1`` (meaning still active)."""

    summary_columns: ClassVar[tuple[str, ...]] = ("duration", "is_censored")
    discrete_time: ClassVar[bool] = True
    contractual: ClassVar[bool] = True
    _covariate_links: ClassVar[dict[str, Link]] = {
        "churn": (("alpha", 1),), "retention": (("beta", 1),)}  # fmt: skip
    _by_stratum: ClassVar[dict[str, Combine]] = StratumMethods.purchase | {
        "survival": "mixture", "churn_probability": "mixture", "del_": "mixture",
        "expected_lifetime": "mixture", "retention_rate": "refuse", "derl": "refuse",
    }  # fmt: skip

    # --- fitting -----------------------------------------------------------------------------

    def _prepare(self, data: pd.DataFrame) -> Patterns:
        patterns = patterns_of(data, _COLUMNS, model=type(self).__name__)
        _check_durations(patterns["duration"], patterns["is_censored"], patterns.weights,
                         model=type(self).__name__)  # fmt: skip
        return patterns

    def _missing_event(self, patterns: Patterns) -> str | None:
        """Without a churned customer, churn runs off to 0: nothing to estimate."""
        if not np.any((patterns["is_censored"] == 0.0) & (patterns.weights > 0)):
            return (
                "no customer churned (every 'is_censored' is 1): the churn probability cannot "
                "be estimated. Observe the customers for longer"
            )
        return None

    def _objective(self, patterns: Patterns) -> Objective:
        is_censored = patterns["is_censored"] == 1.0
        duration, weights = patterns["duration"], patterns.weights
        churned_at, active_at = duration[~is_censored], duration[is_censored]
        churned_weights, active_weights = weights[~is_censored], weights[is_censored]
        log_churn, log_survival = self._log_churn, self._log_survival

        def objective(params: FloatArray) -> tuple[float, FloatArray]:
            churn, churn_gradient = log_churn(params, churned_at)
            active, active_gradient = log_survival(params, active_at)
            value = np.sum(churned_weights * churn) + np.sum(active_weights * active)
            gradient = (np.sum(churned_weights[:, None] * churn_gradient, axis=0)
                        + np.sum(active_weights[:, None] * active_gradient, axis=0))  # fmt: skip
            return float(value), gradient

        return objective

    def _starting_points(self, patterns: Patterns) -> list[FloatArray]:
        k = len(self._param_names)
        return [np.array(start[:k]) for start in (
            [1.0, 1.0, 1.0], [0.5, 2.0, 0.8], [3.0, 10.0, 1.5], [0.2, 0.2, 1.0]
        )]  # fmt: skip

    def _store(self, result: MLEResult, n_customers: float, unit: TimeUnit | None) -> None:
        super()._store(result, n_customers, unit)
        self.cohorts_: dict[str, Self] | None = None

    def fit_survivors(
        self, survivors: SurvivorTable, *, shared: bool = True, unit: TimeUnit | str | None = None
    ) -> Self:
        """Fit on cohort survivor counts; return ``self``.

        Parameters
        ----------
        survivors
            One cohort (a sequence or Series: period 0 first) or several (a DataFrame or 2-D
            array, one row per cohort, one column per period; a younger cohort's missing later
            periods are NaN). Counts may be per 1,000 rather than whole customers.
        shared
            ``True``: one parameter set for every cohort. ``False``: each cohort is fitted on its
            own; ``cohorts_`` maps each cohort's label to its fitted model, ``params_`` stacks
            their parameters (``"alpha[Regular]"``, ...) and ``log_likelihood_`` is their sum, so
            :func:`lr_test` can compare the two fits.
        unit
            The length of one period (e.g. ``"year"``), so that durations and rates with units
            convert.

        Raises
        ------
        DataQualityError
            When a cohort is not a survivor curve (negative, increasing, empty), naming each one.
        """
        cohorts = _cohorts(survivors)
        _check_cohorts(cohorts)
        found = None if unit is None else as_time_unit(unit)
        if shared:
            return self._fit_patterns(
                _concatenate([_survivor_patterns(row) for row in cohorts.values()]), found
            )
        children = {
            label: type(self)(n_starts=self.n_starts, penalizer=self.penalizer)._fit_patterns(
                _survivor_patterns(row), found
            )
            for label, row in cohorts.items()
        }
        self._combine(children, found)
        return self

    def _combine(self, children: dict[str, Self], unit: TimeUnit | None) -> None:
        """Stack per-cohort fits into this model's fitted state (a block-diagonal covariance)."""
        names = [f"{name}[{label}]" for label in children for name in self._param_names]
        k = len(self._param_names)
        covariance = np.zeros((len(names), len(names)))
        for i, child in enumerate(children.values()):
            covariance[i * k : (i + 1) * k, i * k : (i + 1) * k] = child.covariance_.to_numpy()
        self.params_ = pd.Series(
            np.concatenate([c.params_.to_numpy() for c in children.values()]), index=names,
            name="estimate",
        )  # fmt: skip
        self.covariance_ = pd.DataFrame(covariance, index=names, columns=names)
        self.log_likelihood_ = float(sum(c.log_likelihood_ for c in children.values()))
        self.n_customers_ = float(sum(c.n_customers_ for c in children.values()))
        self.converged_ = all(c.converged_ for c in children.values())
        self.unit_ = unit
        self.cohorts_ = children

    @property
    def n_params_(self) -> int:
        """The number of free parameters (all cohorts' for a per-cohort fit)."""
        if getattr(self, "cohorts_", None):
            return len(self.params_)
        return super().n_params_

    def to_dict(self) -> dict[str, Any]:
        """The fitted model as plain JSON-able values; a per-cohort fit keeps each cohort's."""
        saved = super().to_dict()
        if self.cohorts_:
            saved["cohorts"] = {label: c.to_dict() for label, c in self.cohorts_.items()}
        return saved

    @classmethod
    def from_dict(cls, saved: Mapping[str, Any]) -> Self:
        """Rebuild a fitted model (shared or per cohort) from :meth:`to_dict`'s output."""
        if not saved.get("cohorts"):
            return super().from_dict(saved)
        if saved.get("model") != cls.__name__:
            raise SchemaError(f"the saved model is a {saved.get('model')!r}, not a {cls.__name__}")
        model = cls(**saved.get("options", {}))
        unit = saved.get("unit")
        model._combine(
            {label: cls.from_dict(child) for label, child in saved["cohorts"].items()},
            None if unit is None else as_time_unit(unit),
        )  # fmt: skip
        return model

    # --- predictions -------------------------------------------------------------------------

    def _params(self) -> FloatArray:
        self._check_fitted()
        self._check_plain()
        if self.cohorts_:
            raise NotFittedError(
                f"this {type(self).__name__} has one parameter set per cohort; predict with "
                f"model.cohorts_[label] (labels: {list(self.cohorts_)})"
            )
        params: FloatArray = np.asarray(self.params_.to_numpy(), dtype=np.float64)
        return params

    def _periods(self, t: float | Sequence[float] | FloatArray | Duration | str) -> FloatArray:
        if isinstance(t, str | Duration):
            return np.asarray(self._in_units(t), dtype=np.float64)
        periods = np.asarray(t, dtype=np.float64)
        if not np.all(np.isfinite(periods)) or np.any(periods < 0):
            raise SchemaError(f"periods must be finite and >= 0, got {t!r}")
        return periods

    def curves(self, data: pd.DataFrame | None = None) -> Curves:
        """Survival and payments over the periods ahead, per distinct tenure.

        ``data`` has each customer's ``duration`` (whole periods active so far) and
        ``is_censored`` (1 while still active, 0 once lost: a lost customer pays nothing more);
        ``data=None`` is a customer just acquired (tenure 0, active).
        """
        if data is None:
            first, zero, one = just_acquired()
            return ContractCurves(first, one, one, (zero,), self.survival,  # type: ignore[arg-type]
                                  duration_power=self._duration_power())  # fmt: skip
        require_columns(
            data,
            self.summary_columns,
            type(self).__name__,
            "each customer's duration and is_censored",
        )
        tenure, is_active = float_column(data, "duration"), float_column(data, "is_censored")
        is_bad = (
            ~np.isfinite(tenure)
            | (tenure < 0)
            | (tenure != np.round(tenure))
            | ~np.isin(is_active, (0.0, 1.0))
        )
        if is_bad.any():
            example = data.index[int(np.argmax(is_bad))]
            example = example.item() if isinstance(example, np.generic) else example
            raise DataQualityError(
                f"{int(is_bad.sum()):,} of {len(tenure):,} customers have a 'duration' that is "
                "not a whole number >= 0 or an 'is_censored' that is not 0 or 1 (e.g. customer "
                f"{example!r}); 'duration' counts the periods a customer has been active, "
                "'is_censored' is 1 for customers still active and 0 for those lost"
            )
        group, keys = distinct(tenure)
        return ContractCurves(group, is_active, is_active, keys, self.survival,  # type: ignore[arg-type]
                              duration_power=self._duration_power())  # fmt: skip

    def _duration_power(self) -> float:
        """``c`` in ``S(t | theta) = (1 - theta)^(t^c)``: 1 here (the sBG), ``c`` for the BdW."""
        return 1.0

    def survival(
        self, t: float | Sequence[float] | FloatArray | Duration | str
    ) -> float | FloatArray:
        """``S(t) = P(T > t)``: the share of a new cohort still active after ``t`` periods."""
        periods = self._periods(t)
        found = np.exp(self._log_survival(self._params(), np.atleast_1d(periods))[0])
        return float(found[0]) if periods.ndim == 0 else found

    def churn_probability(
        self, t: float | Sequence[float] | FloatArray | Duration | str
    ) -> float | FloatArray:
        """``P(T = t)``: the share of a new cohort lost at the end of period ``t >= 1``."""
        periods = self._periods(t)
        if np.any(np.atleast_1d(periods) < 1):
            raise SchemaError(f"churn happens at the end of period 1 at the earliest, got t={t!r}")
        found = np.exp(self._log_churn(self._params(), np.atleast_1d(periods))[0])
        return float(found[0]) if periods.ndim == 0 else found

    def retention_rate(
        self, t: float | Sequence[float] | FloatArray | Duration | str
    ) -> float | FloatArray:
        """``r(t) = S(t) / S(t - 1)``: the share of period ``t - 1``'s survivors renewing at t."""
        periods = np.atleast_1d(self._periods(t))
        if np.any(periods < 1):
            raise SchemaError(f"retention rates start at period 1, got t={t!r}")
        params = self._params()
        found = np.exp(self._log_survival(params, periods)[0]
                       - self._log_survival(params, periods - 1.0)[0])  # fmt: skip
        return float(found[0]) if np.ndim(self._periods(t)) == 0 else found

    def _residual_sum(self, params: FloatArray, start: int, rate: float) -> float:
        """``sum_{t >= start} S(t) / S(start - 1) / (1 + d)^(t - start)`` by direct summation.

        Summed in blocks until the terms fall below 1e-17 of the total, and at most
        ``_MAX_PERIODS`` periods, after which the tail is bounded by a geometric series
        (``d > 0``) or a power law fitted to the last periods (``d = 0``, where the sum is
        infinite when ``S`` decays no faster than ``1 / t``).
        """
        before = np.array([start - 1.0])
        base = 0.0 if start == 0 else float(self._log_survival(params, before)[0][0])
        log_z = -math.log1p(rate)
        total, t0 = 0.0, start
        while t0 - start < _MAX_PERIODS:
            t = np.arange(t0, t0 + _BLOCK, dtype=np.float64)
            # S(t) <= S(start - 1): the clip only guards rounding in the exponent
            log_terms = self._log_survival(params, t)[0] - base + (t - start) * log_z
            terms = np.exp(np.minimum(log_terms, 0.0))
            total += float(np.sum(terms))
            t0 += _BLOCK
            if terms[-1] <= _RELATIVE_TOLERANCE * total:
                return total
        return total + self._tail(params, float(t0), base, rate, start)

    def _tail(self, params: FloatArray, t: float, base: float, rate: float, start: int) -> float:
        log_s = self._log_survival(params, np.array([t / 2.0, t]))[0] - base
        last = math.exp(float(log_s[1]) - (t - start) * math.log1p(rate))
        if rate > 0.0:
            return last / -math.expm1(-math.log1p(rate))
        power = float(log_s[0] - log_s[1]) / math.log(2.0)
        return math.inf if power <= 1.0 + 1e-9 else last * t / (power - 1.0)

    def del_(self, discount: Rate | float) -> float:
        """Discounted expected lifetime of a new customer, FH 2010 eq. (5).

        ``DEL(d) = sum_{t >= 0} S(t) / (1 + d)^t``: the present value of a unit paid at
        acquisition and at every renewal. ``discount`` is a :class:`~cvalue.units.Rate` or a
        float per period.
        """
        return self._residual_sum(self._params(), 0, self._discount_rate(discount, allow_zero=True))

    def derl(
        self, discount: Rate | float, renewals: int | Sequence[int] | npt.NDArray[np.integer[Any]]
    ) -> float | FloatArray:
        """Discounted expected residual lifetime, FH 2010 eq. (6).

        For a customer who has made ``renewals = n - 1`` renewals, evaluated just before the
        ``n``-th renewal decision: ``sum_{t >= n} S(t) / S(n - 1) / (1 + d)^(t - n)``.
        """
        rate, params = self._discount_rate(discount, allow_zero=True), self._params()
        asked = np.asarray(renewals)
        counts = np.atleast_1d(asked)
        if not np.all(np.isfinite(counts)) or np.any(counts < 0) or np.any(
                counts != np.round(counts)):  # fmt: skip
            raise SchemaError(f"renewals must be whole numbers >= 0, got {renewals!r}")
        found = self._derl(params, counts.astype(np.float64), rate)
        return float(found[0]) if asked.ndim == 0 else found

    def _derl(self, params: FloatArray, renewals: FloatArray, rate: float) -> FloatArray:
        unique, inverse = np.unique(renewals, return_inverse=True)
        values = np.array([self._residual_sum(params, int(n) + 1, rate) for n in unique])
        found: FloatArray = values[inverse].astype(np.float64)
        return found

    def expected_lifetime(self) -> float:
        """``E[T] = sum_{t >= 0} S(t)`` periods; ``inf`` when the tail is too heavy."""
        return self._residual_sum(self._params(), 0, 0.0)

    # --- per-customer predictions ------------------------------------------------------------

    def _conditional(
        self, params: FloatArray, tenure: FloatArray, periods: int
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """For customers active after ``n = tenure`` periods, by direct sums of ``S``.

        ``r(n + 1) = S(n + 1) / S(n)``, ``S(n + h) / S(n)`` and
        ``sum_{k=1}^{h} S(n + k) / S(n)`` with ``h = periods``: the model's survival function
        conditioned on ``n`` renewals made.
        """
        base = self._log_survival(params, tenure)[0]
        after = [self._log_survival(params, tenure + k)[0] for k in (1.0, float(periods))]
        renew_next, at_horizon = (np.exp(np.minimum(a - base, 0.0)) for a in after)
        return renew_next, at_horizon, self._renewal_sum(params, tenure, base, periods)

    def _renewal_sum(
        self, params: FloatArray, tenure: FloatArray, base: FloatArray, periods: int
    ) -> FloatArray:
        """``sum_{k=1}^{periods} S(n + k) / S(n)``, summed in blocks until the terms vanish."""
        total = np.zeros(len(tenure))
        width = max(1, min(_BLOCK, _CELLS // max(1, len(tenure))))
        for first in range(1, periods + 1, width):
            k = np.arange(first, min(first + width, periods + 1), dtype=np.float64)
            log_survival = self._log_survival(params, (tenure[:, None] + k).ravel())[0]
            # S(n + k) <= S(n): the clip only guards rounding in the exponent
            terms = np.exp(np.minimum(log_survival.reshape(len(tenure), len(k)) - base[:, None],
                                      0.0))  # fmt: skip
            total += terms.sum(axis=1)
            if np.all(terms[:, -1] <= _RELATIVE_TOLERANCE * total):
                break
        return total

    def _tenures(self, data: pd.DataFrame) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
        """Each row's ``duration`` and whether the customer is still active, checked."""
        name = type(self).__name__
        if not isinstance(data, pd.DataFrame):
            raise SchemaError(f"{name} scores a pandas DataFrame, got {type(data).__name__}")
        missing = [c for c in _COLUMNS if c not in data]
        if missing:
            raise SchemaError(
                f"{name} needs column(s) {missing}; the data has {list(data.columns)}. Give "
                "each customer 'duration' (renewals so far) and 'is_censored' (1 if active)"
            )
        duration, is_censored = (data[c].to_numpy(dtype=np.float64, na_value=np.nan)
                                 for c in _COLUMNS)  # fmt: skip
        _check_durations(duration, is_censored, np.ones(len(data)), model=name)
        return duration, is_censored == 1.0

    @keyword_options("horizon", leading="data", old="data, h", new="data, horizon=h")
    def predict(
        self, data: pd.DataFrame, *, horizon: float | Duration | str,
        discount: Rate | float | None = None,
    ) -> pd.DataFrame:  # fmt: skip
        """Each customer's retention and remaining renewals over ``horizon``, and DERL.

        For a customer still active (``is_censored`` 1) after ``n = duration`` periods, i.e.
        who has renewed ``n`` times:

        - ``p_renew_next``: ``r(n + 1) = S(n + 1) / S(n)``, the chance of the next renewal
          (FH 2007 eq. (8) for the sBG);
        - ``p_active_at_horizon``: ``S(n + h) / S(n)``, still active ``h`` periods from now;
        - ``expected_renewals``: ``sum_{k=1}^{h} S(n + k) / S(n)``, the renewals expected in
          the next ``h`` periods;
        - ``derl`` (only with ``discount``): FH 2010 eq. (6) for a customer who has made ``n``
          renewals, ``sum_{t > n} S(t) / S(n) / (1 + d)^(t - n - 1)``, the discounted
          expected number of payments still to come, the next one undiscounted (see
          :meth:`derl`).

        A churned customer (``is_censored`` 0) gets 0 in every column: churn is final.
        Everything is computed once per distinct tenure and broadcast.

        Parameters
        ----------
        data
            One row per customer with ``duration`` and ``is_censored``, as :meth:`fit` reads.
        horizon
            A whole number of periods, or a duration in the model's unit (``"2y"``).
        discount
            The discount rate for ``derl``: a :class:`~cvalue.units.Rate`, or a float per
            period (0 allowed: the undiscounted expected residual lifetime, possibly ``inf``).

        Returns
        -------
        pandas.DataFrame
            Indexed like ``data``.

        Examples
        --------
        >>> from cvalue.models import ShiftedBetaGeo
        >>> model = ShiftedBetaGeo().fit_survivors([1000, 631, 468, 382, 326, 289, 262, 241])
        >>> customers = pd.DataFrame({"duration": [0, 7, 3], "is_censored": [1, 1, 0]})
        >>> model.predict(customers, horizon=2, discount=0.1).round(3)
           p_renew_next  p_active_at_horizon  expected_renewals   derl
        0         0.627                0.474              1.101  2.964
        1         0.921                0.855              1.776  6.842
        2         0.000                0.000              0.000  0.000
        """
        periods = _whole_periods(self._in_units(horizon), horizon, "horizon", "periods")
        rate = None if discount is None else self._discount_rate(discount, allow_zero=True)
        params = self._params()
        duration, is_active = self._tenures(data)
        tenure, inverse = np.unique(duration[is_active], return_inverse=True)
        found = dict(zip(_PREDICTIONS, self._conditional(params, tenure, periods), strict=True))
        if rate is not None:
            found["derl"] = self._derl(params, tenure, rate)
        columns = {}
        for name, values in found.items():
            column = np.zeros(len(data))
            column[is_active] = values[inverse.ravel()]
            columns[name] = column
        return pd.DataFrame(columns, index=data.index)

    # --- the purchase-model contract: payments are the purchases ---------------------------

    def p_alive(self, data: pd.DataFrame) -> pd.Series:
        """1 for a customer still under contract, 0 for one lost: contract ends are observed."""
        _, is_active = self._tenures(data)
        return pd.Series(is_active.astype(np.float64), index=data.index, name="p_alive")

    @keyword_options("horizon", leading="data", old="data, h", new="data, horizon=h")
    def expected_purchases(
        self, data: pd.DataFrame, *, horizon: float | Duration | str
    ) -> pd.Series:
        """The renewals each customer is expected to make in the next ``horizon`` periods.

        ``sum_{k=1}^{h} S(n + k) / S(n)`` for a customer active after ``n = duration`` periods
        (``expected_renewals`` of :meth:`predict`); 0 for a customer lost.
        """
        found = self.predict(data, horizon=horizon)["expected_renewals"]
        return found.rename("expected_purchases")

    def expected_purchases_new(self, *, horizon: float | Duration | str) -> float:
        """The renewals a new customer is expected to make in its first ``horizon`` periods."""
        periods = _whole_periods(self._in_units(horizon), horizon, "horizon", "periods")
        return float(self._conditional(self._params(), np.zeros(1), periods)[2][0])

    def purchase_pmf(
        self,
        counts: npt.ArrayLike,
        *,
        horizon: float | Duration | str,
        data: pd.DataFrame | None = None,
    ) -> float | FloatArray | pd.DataFrame:
        """P(``counts`` renewals in the next ``horizon`` periods): new, or given each tenure.

        For a customer active after ``n`` periods, ``(S(n + k) - S(n + k + 1)) / S(n)`` for
        ``k < h`` and ``S(n + h) / S(n)`` for ``k = h`` (renewed every time); a lost customer
        makes none. Without ``data``, a new customer (``n = 0``): a float for one count, an
        array for several; with ``data``, a DataFrame indexed like ``data``, one column per count.
        """
        periods = _whole_periods(self._in_units(horizon), horizon, "horizon", "periods")
        asked = np.asarray(counts, dtype=np.float64)
        wanted = np.atleast_1d(asked)
        if data is None:
            table = self._renewal_pmf(self._params(), np.zeros(1), wanted, periods)
            return float(table[0, 0]) if asked.ndim == 0 else table[0]
        duration, is_active = self._tenures(data)
        tenure, inverse = np.unique(duration[is_active], return_inverse=True)
        table = self._renewal_pmf(self._params(), tenure, wanted, periods)
        found = np.zeros((len(data), len(wanted)))
        found[~is_active, :] = (wanted == 0.0)[None, :]
        found[is_active] = table[inverse.ravel()]
        return pd.DataFrame(found, index=data.index, columns=list(wanted.tolist()))

    def _renewal_pmf(
        self, params: FloatArray, tenure: FloatArray, counts: FloatArray, periods: int
    ) -> FloatArray:
        """P(K = k | active after n) per tenure (rows) and count (columns); 0 off the support."""
        is_count = (counts >= 0) & (counts <= periods) & (counts == np.round(counts))
        k = np.where(is_count, counts, 0.0)
        base = self._log_survival(params, tenure)[0][:, None]

        def ratio(shift: FloatArray) -> FloatArray:
            ahead = (tenure[:, None] + shift[None, :]).ravel()
            log_s = self._log_survival(params, ahead)[0].reshape(len(tenure), len(shift))
            return np.asarray(np.exp(np.minimum(log_s - base, 0.0)), dtype=np.float64)

        reach = ratio(k)
        leave = np.where(k < periods, ratio(k + 1.0), 0.0)
        return np.asarray(np.where(is_count, np.maximum(reach - leave, 0.0), 0.0), np.float64)

    @keyword_options("discount", leading="data", old="data, d", new="data, discount=d")
    def dert(self, data: pd.DataFrame, *, discount: Rate | float) -> pd.Series:
        """Each customer's discounted expected residual payments: DERL, FH 2010 eq. (6).

        The ``derl`` of :meth:`predict` under the name every purchase model uses: 0 for a
        customer lost.
        """
        found = self.predict(data, horizon=0, discount=discount)["derl"]
        return found.rename("dert")

    # --- simulation --------------------------------------------------------------------------

    @keyword_options("rng", leading=None, old="n_customers, n_periods=n",
                     new="n_customers, T=n", renamed={"n_periods": "T"})  # fmt: skip
    def simulate(
        self, n_customers: int, T: int | Duration | str, *, rng: np.random.Generator
    ) -> pd.DataFrame:
        """Durations of ``n_customers`` new customers observed for ``T`` periods.

        Parameters
        ----------
        n_customers
            How many customers, all acquired at the start.
        T
            The observation span: a number of periods, or a duration in the model's unit
            (``"7y"`` for a yearly model) that is a whole number of them.
        rng
            The random generator.

        Returns
        -------
        pandas.DataFrame
            ``duration`` and ``is_censored`` (1 for the customers still active at the end), the
            columns :meth:`fit` reads; ``attrs["unit"]`` is the model's unit when known.
        """
        length = _whole_periods(self._in_units(T), T, "T", "periods")
        if length < 1:
            raise SchemaError(f"T must be at least 1 period, got {T!r}")
        durations = self._draw(self._params(), n_customers, length, rng)
        is_censored = durations > length
        simulated = pd.DataFrame({
            "duration": np.minimum(durations, length).astype(np.int64),
            "is_censored": is_censored.astype(np.int64),
        })  # fmt: skip
        if self.unit_ is not None:
            simulated.attrs["unit"] = self.unit_.value
        return simulated


def _draw_discrete_weibull(
    alpha: float, beta: float, c: float, n_customers: int, n_periods: int,
    rng: np.random.Generator,
) -> npt.NDArray[np.int64]:  # fmt: skip
    """Durations with ``P(T > t | theta) = (1 - theta)^(t^c)``, ``theta ~ Beta(alpha, beta)``.

    Inverse transform in logs: ``T = ceil(R^(1/c))`` with ``R = log U / log(1 - theta)``,
    capped at ``n_periods + 1`` before any conversion so that a tiny ``theta`` cannot overflow.
    """
    tiny = np.finfo(np.float64).tiny
    theta = np.clip(rng.beta(alpha, beta, n_customers), tiny, 1.0 - np.finfo(np.float64).eps)
    uniform = rng.uniform(tiny, 1.0, n_customers)
    log_root = (np.log(-np.log(uniform)) - np.log(-np.log1p(-theta))) / c
    capped = np.minimum(log_root, math.log(n_periods + 1.0))
    return np.maximum(np.ceil(np.exp(capped)), 1.0).astype(np.int64)
