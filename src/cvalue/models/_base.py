"""What every model shares: fitting state, the summary table, save and load as JSON.

A concrete model sets ``_param_names`` and implements ``_objective`` (its weighted log-likelihood
and gradient on the patterns ``fit`` prepared) and ``_starting_points``; ``fit`` does the rest.

Every fit goes through :meth:`Model._fit_patterns`, which guards against data that cannot identify
a model, whatever the model:

- it refuses (:class:`~cvalue.errors.DataQualityError`) a base without a customer, a base where
  every customer has the same history (a mixture of customers cannot be estimated from one
  history), and a base without the event the model counts (:meth:`Model._missing_event`: no
  repeat purchase for the purchase models, no churn for the contractual ones);
- it warns (:class:`SmallBaseWarning`) on a base of fewer than :data:`SMALL_SAMPLE` (100)
  customers, where estimates are too uncertain to act on;
- it warns (:class:`~cvalue.models._mle.ConvergenceWarning`) when an estimate ends at the edge of
  the parameter space (:mod:`cvalue.models._mle`).
"""

from __future__ import annotations

import json
import math
import warnings
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy
from scipy import stats

from cvalue._version import __version__
from cvalue.errors import (
    SMALL_SAMPLE,
    ConvergenceError,
    DataQualityError,
    NotFittedError,
    SchemaError,
    SmallSampleWarning,
)
from cvalue.models._covariates import (
    Covariates,
    Link,
    covariate_information,
    covariate_objective,
    newton_start,
    stratum_rows,
)
from cvalue.models._mle import (
    ConvergenceWarning,
    MLEResult,
    Objective,
    describe_edges,
    maximise,
    summed,
)
from cvalue.models._patterns import (
    OBJECTIVE_BLOCK,
    FloatArray,
    Patterns,
    distinct_values,
    frame_per_row,
    patterns_of,
    per_pattern,
    require_columns,
)
from cvalue.models._strata import Combine, by_stratum
from cvalue.units import Duration, Rate, TimeUnit, as_duration, as_time_unit

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = [
    "ConvergenceWarning",
    "FloatArray",
    "Model",
    "Patterns",
    "SmallBaseWarning",
    "distinct_values",
    "frame_per_row",
    "patterns_of",
    "per_pattern",
    "require_columns",
]


class SmallBaseWarning(SmallSampleWarning):
    """A model was fitted on fewer than :data:`~cvalue.errors.SMALL_SAMPLE` customers.

    The customers are the sum of the weights; the estimates of so small a base are unreliable.
    """


class Model(ABC):
    """Base class of the fitted models: estimator conventions and persistence.

    Parameters
    ----------
    n_starts
        How many starting points the optimiser tries (the best converged fit is kept).
    penalizer
        L2 penalty on the natural parameters; 0 for plain maximum likelihood.
    """

    _param_names: ClassVar[tuple[str, ...]]
    _fitted: ClassVar[tuple[str, ...]] = (
        "params_", "covariance_", "log_likelihood_", "n_customers_", "unit_",
    )  # fmt: skip

    _covariate_links: ClassVar[dict[str, Link]] = {}
    """Per process that covariates can move, its parameters and signs (none: no covariates)."""
    _by_stratum: ClassVar[dict[str, Combine]] = {}
    """The methods that run per stratum of a model with covariates, and how they combine."""
    covariates_: Covariates | None = None
    """The covariates of a model fitted with them (:mod:`cvalue.models._covariates`), or None."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name, how in cls._by_stratum.items():
            method = cls.__dict__.get(name)
            if callable(method) and not hasattr(method, "by_stratum"):
                rewrap = getattr(method, "rewrap", None)  # keyword_options: wrap within it
                setattr(cls, name, by_stratum(method, how) if rewrap is None
                        else rewrap(by_stratum(method.__wrapped__, how)))  # fmt: skip

    @classmethod
    def covariate_processes(cls) -> tuple[str, ...]:
        """The processes covariates can move (``fit(..., covariates=)``); ``()``: none."""
        return tuple(cls._covariate_links)

    def __init__(self, *, n_starts: int = 3, penalizer: float = 0.0) -> None:
        self.n_starts = n_starts
        self.penalizer = penalizer
        self._warm_start: FloatArray | None = None

    # --- what a model implements -------------------------------------------------------------

    @abstractmethod
    def _prepare(self, data: pd.DataFrame) -> Patterns:
        """The patterns ``_objective`` reads, checked."""

    @abstractmethod
    def _objective(self, patterns: Patterns) -> Objective:
        """The weighted log-likelihood (and gradient, or ``None``) at natural parameters."""

    @abstractmethod
    def _starting_points(self, patterns: Patterns) -> list[FloatArray]:
        """Starting points on the natural scale; ``n_starts`` of them are tried."""

    summary_columns: ClassVar[tuple[str, ...]] = ()
    """The data columns the model's predictions read."""
    fit_columns: ClassVar[tuple[str, ...]] = ()
    """The columns fitting reads, when more than ``summary_columns`` (the CNBD-k's ``litt``)."""

    _has_gradient: ClassVar[bool] = True
    _scale_columns: ClassVar[tuple[str | None, ...]] = ()
    """Per parameter, the pattern column whose weighted mean is its scale (None: a shape, 1)."""

    def _missing_event(self, patterns: Patterns) -> str | None:
        """Why the patterns hold none of the events the model counts, or None.

        By default: no customer has a repeat purchase (``frequency`` is 0 everywhere), for the
        models that read a ``frequency``.
        """
        if "frequency" in patterns.columns and not np.any(
            (patterns["frequency"] > 0) & (patterns.weights > 0)
        ):
            return (
                "no customer has a repeat purchase ('frequency' is 0 in every row): the purchase "
                "rate and the dropout cannot be estimated. Use a longer calibration period"
            )
        return None

    # --- fitting -------------------------------------------------------------------------------

    def _scales(self, patterns: Patterns) -> FloatArray:
        """Each parameter's scale: 1 for a shape, the weighted mean of its scale column else."""
        scales = np.ones(len(self._param_names))
        share = patterns.weights / patterns.weights.sum()
        for index, column in enumerate(self._scale_columns):
            if column is not None:
                scales[index] = float(np.sum(share * patterns[column]))
        return scales

    def _check_base(self, patterns: Patterns) -> None:
        """Refuse patterns that cannot identify the model; warn on a small base."""
        model, weights = type(self).__name__, patterns.weights
        n_customers = float(weights.sum())
        if not n_customers > 0:
            raise DataQualityError(f"{model} got no customer to fit (the weights sum to 0)")
        problem = self._missing_event(patterns)
        if problem is None and np.count_nonzero(weights > 0) == 1:
            problem = (
                f"every customer has the same history ({', '.join(patterns.columns)}): a model "
                "of how customers differ cannot be estimated from one history. Fit on a larger "
                "or more varied base"
            )
        if problem is not None:
            raise DataQualityError(f"{model} cannot be fitted on these {n_customers:,.0f} "
                                   f"customers: {problem}")  # fmt: skip
        if n_customers < SMALL_SAMPLE:
            warnings.warn(
                f"{model} is fitted on {n_customers:,.0f} customers, fewer than {SMALL_SAMPLE}: "
                "its estimates are too uncertain to act on (see summary() for their standard "
                "errors). Fit on a larger base or a longer period",
                SmallBaseWarning,
                stacklevel=4,  # the caller of the public fit method
            )

    def _fit_patterns(self, patterns: Patterns, unit: TimeUnit | None) -> Self:
        self._check_base(patterns)
        starts = self._starting_points(patterns)[: max(1, self.n_starts)]
        warm = self._warm_start
        if warm is not None:  # a bootstrap replicate starts from the estimates it resamples
            starts = [warm, *starts]
        scales = self._scales(patterns)
        model = type(self).__name__
        # evaluated a block of patterns at a time: the temporaries are a block's, not the base's
        objective = summed([self._objective(block) for block in patterns.blocks(OBJECTIVE_BLOCK)])
        result = maximise(
            objective, starts, n_obs=float(patterns.weights.sum()),
            has_gradient=self._has_gradient, penalizer=self.penalizer, model=model,
            scales=scales,
        )  # fmt: skip
        if result.edges:
            warnings.warn(
                describe_edges(result.edges, self._param_names, result.params, scales, model),
                ConvergenceWarning,
                stacklevel=3,  # the caller of the public fit method
            )
        self._store(result, float(patterns.weights.sum()), unit)
        self._fitted_on = patterns
        return self

    def resampled(self, rng: np.random.Generator) -> Self:
        """A bootstrap replicate: this model refitted on its customers resampled with replacement.

        The customers of the fit are drawn with replacement, as many as were fitted
        (multinomially over the fit's distinct patterns: no new summary), and the model is
        refitted on them from its own estimates. Quantiles of a prediction over many replicates
        are bootstrap intervals. Warnings of a replicate's fit are not raised.

        Raises
        ------
        SchemaError
            For a model that was not fitted on data in this session (built with
            ``from_params``, loaded from JSON, or fitted per cohort), or whose data was dropped
            (:meth:`drop_data`).
        """
        self._check_fitted()
        patterns = getattr(self, "_fitted_on", None)
        if patterns is None or getattr(self, "cohorts_", None):
            raise SchemaError(
                f"this {type(self).__name__} was not fitted on data in this session (built with "
                "from_params, loaded, fitted per cohort, or its data dropped with drop_data()), "
                "so it has no customers to resample; fit it with .fit(data) first"
            )
        weights = patterns.weights
        total = float(weights.sum())
        counts = rng.multinomial(max(1, round(total)), weights / total).astype(np.float64)
        counts *= total / max(1, round(total))
        replicate = self._replicate()
        estimates = np.asarray(self.params_.to_numpy(), dtype=np.float64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if self.covariates_ is None:
                kept = counts > 0
                drawn = Patterns({name: values[kept] for name, values in patterns.columns.items()},
                                 counts[kept])  # fmt: skip
                replicate._warm_start = estimates
                replicate._fit_patterns(drawn, self.unit_)
            else:  # the strata's patterns in turn: the same order as the fit's
                parts, strata = self._fitted_strata
                ends = np.cumsum([len(part.weights) for part in parts])
                parts = [Patterns(part.columns, found) for part, found in zip(
                    parts, np.split(counts, ends[:-1]), strict=True)]  # fmt: skip
                replicate._fit_strata(parts, strata, self.covariates_, self.covariate_penalizer,
                                      self.unit_, estimates)  # fmt: skip
        return replicate

    def drop_data(self) -> Self:
        """Forget the customers' patterns kept from the fit; return the model.

        The estimates, standard errors and log-likelihood stay, and so do all predictions; only
        :meth:`resampled` needs the patterns. A model kept for its predictions (a scoring job's
        candidates) then holds nothing that grows with the base.
        """
        self.__dict__.pop("_fitted_on", None)
        return self

    def _replicate(self) -> Self:
        """An unfitted model with this one's options."""
        return type(self)(**self._options())

    def _options(self) -> dict[str, Any]:
        """The options the model was built with, by the names its constructor takes."""
        return {"n_starts": self.n_starts, "penalizer": self.penalizer}

    def _names(self) -> list[str]:
        """The parameters' names: the model's, then its covariates' coefficients."""
        extra = [] if self.covariates_ is None else self.covariates_.names
        return [*self._param_names, *extra]

    def _store(self, result: MLEResult, n_customers: float, unit: TimeUnit | None) -> None:
        names = self._names()
        self._strata_models: dict[tuple[float, ...], Self] = {}
        self.params_ = pd.Series(result.params, index=names, name="estimate")
        self.covariance_ = pd.DataFrame(result.covariance, index=names, columns=names)
        self.log_likelihood_ = result.log_likelihood
        self.n_customers_ = n_customers
        self.converged_ = result.converged
        self.unit_ = unit

    def fit(
        self, data: pd.DataFrame, *, unit: TimeUnit | str | None = None,
        covariates: Sequence[str] | Mapping[str, Sequence[str]] | None = None,
        constrain: Sequence[str] = (), covariate_penalizer: float = 0.0,
        reference: Mapping[str, Any] | None = None,
    ) -> Self:  # fmt: skip
        """Fit by maximum likelihood on the distinct patterns of ``data``; return ``self``.

        ``unit`` is the time unit of the data's recency and T; it defaults to
        ``data.attrs["unit"]``, which :func:`cvalue.rfm_summary` sets.

        ``covariates`` names columns of ``data`` (numeric, boolean or categorical) that move
        each customer's parameters (:mod:`cvalue.models._covariates`): a list for every process
        of the model, or a mapping from process (``"purchase"``, ``"dropout"``; ``"churn"``,
        ``"retention"``; ``"spend"``) to its columns. ``constrain`` names covariates with one
        coefficient for every process; ``covariate_penalizer`` is an L2 penalty on the
        coefficients (per standard deviation of a numeric covariate); ``reference`` maps a
        categorical covariate to its reference level (default: the first level, sorted). The
        coefficients join ``params_`` (``"purchase:channel[shop]"``), and ``covariate_test_``
        tests them together against ``without_covariates_``, the same model fitted without them.

        Raises
        ------
        DataQualityError
            When rows break the model's rules (each rule named with its row count), or when the
            data cannot identify the model: no customer, no repeat purchase (no churn for a
            contractual model), or every customer with the same history.
        ConvergenceError
            When no starting point converges.

        Warns
        -----
        SmallBaseWarning
            On fewer than :data:`SMALL_SAMPLE` (100) customers.
        ConvergenceWarning
            When an estimate ends at the edge of the parameter space: beyond 1e5 times its
            scale or below 1/1e5 of it (running off to infinity or 0), or not determined by
            the data (:mod:`cvalue.models._mle`).
        """
        found = unit if unit is not None else data.attrs.get("unit") if isinstance(
            data, pd.DataFrame) else None  # fmt: skip
        time_unit = None if found is None else as_time_unit(found)
        if covariates is not None:
            return self._fit_covariates(
                data, time_unit, covariates, constrain, covariate_penalizer, reference)  # fmt: skip
        return self._fit_patterns(self._prepare(data), time_unit)

    # --- covariates ----------------------------------------------------------------------------

    def _fit_covariates(
        self, data: pd.DataFrame, unit: TimeUnit | None,
        covariates: Sequence[str] | Mapping[str, Sequence[str]], constrain: Sequence[str],
        covariate_penalizer: float, reference: Mapping[str, Any] | None,
    ) -> Self:  # fmt: skip
        """Fit without the covariates (checking every row), then with them from that fit."""
        from cvalue.models.contractual import lr_test  # it builds on this module

        if not (math.isfinite(covariate_penalizer) and covariate_penalizer >= 0.0):
            raise SchemaError(f"covariate_penalizer must be >= 0, got {covariate_penalizer!r}")
        plain = self._replicate()
        plain._fit_patterns(self._prepare(data), unit)
        weights = (data["weight"].to_numpy(dtype=np.float64) if "weight" in data
                   else np.ones(len(data)))  # fmt: skip
        spec, group = Covariates.of(self, data, covariates, constrain, reference, weights)
        strata = spec.strata
        parts = [self._prepare(data.iloc[rows]) for rows in stratum_rows(group, len(strata))]
        start = np.concatenate([plain.params_.to_numpy(dtype=np.float64),
                                np.zeros(len(spec.names))])  # fmt: skip
        self._fit_strata(parts, strata, spec, covariate_penalizer, unit, start)
        self.without_covariates_ = plain
        self.covariate_test_ = lr_test(plain, self)
        return self

    def _fit_strata(
        self, parts: list[Patterns], strata: FloatArray, spec: Covariates,
        covariate_penalizer: float, unit: TimeUnit | None, start: FloatArray,
    ) -> None:  # fmt: skip
        """Maximise the likelihood summed over strata, from ``start``; store the fit."""
        model = type(self).__name__
        k = len(self._param_names)
        search = spec.search_scales()
        loading = spec.loading(strata, self) / search  # coefficients searched per scale
        every = Patterns(
            {c: np.concatenate([p[c] for p in parts]) for c in parts[0].columns},
            np.concatenate([p.weights for p in parts]),
        )  # fmt: skip
        n_customers = float(every.weights.sum())
        self._check_base(every)
        positive = np.arange(k + len(search)) < k
        scales = np.concatenate([self._scales(every), np.ones(len(search))])
        penalty = np.concatenate([np.full(k, self.penalizer),
                                  np.full(len(search), covariate_penalizer)])  # fmt: skip
        searched = start.copy()
        searched[k:] *= search
        objectives = [self._objective(p) for p in parts]
        objective = covariate_objective(objectives, loading, k)
        information = covariate_information(objectives, loading, k, penalty)
        starts = [searched]
        if self._has_gradient:  # Newton steps from the start, then the engine's own search
            theta = newton_start(objective, information, np.concatenate([
                np.log(searched[:k]), searched[k:]]), k, penalty, n_customers)  # fmt: skip
            starts.insert(0, np.concatenate([np.exp(theta[:k]), theta[k:]]))
        for attempt, first in enumerate(starts):
            try:  # from Newton's point; should the search fail there, from the start itself
                result = maximise(
                    objective, [first], n_obs=n_customers, has_gradient=self._has_gradient,
                    penalizer=penalty, model=model, scales=scales, positive=positive,
                    information=information if self._has_gradient else None,
                )  # fmt: skip
                break
            except ConvergenceError:
                if attempt == len(starts) - 1:
                    raise
        per_unit = np.concatenate([np.ones(k), 1.0 / search])
        self.covariates_ = spec
        self.covariate_penalizer = covariate_penalizer
        names = self._names()
        if result.edges:
            warnings.warn(
                describe_edges(
                    result.edges, names, result.params * per_unit, scales, model, positive
                ),
                ConvergenceWarning,
                stacklevel=4,  # the caller of the public fit method
            )
        self._store(
            MLEResult(result.params * per_unit, result.covariance * np.outer(per_unit, per_unit),
                      result.log_likelihood, result.converged, result.n_evaluations,
                      result.message, result.edges),
            n_customers, unit,
        )  # fmt: skip
        self._fitted_on = every
        self._fitted_strata = (parts, strata)
        setattr(self, "summary_columns", (*type(self).summary_columns, *spec.columns))  # noqa: B010

    def stratum_model(self, values: Mapping[str, Any]) -> Self:
        """The model without covariates whose parameters are those of customers with ``values``.

        ``values`` maps every covariate column to a value (a level, a number, a flag); the
        model's predictions for such a customer are this model's.
        """
        self._check_fitted()
        if self.covariates_ is None:
            raise SchemaError(f"this {type(self).__name__} has no covariates")
        missing = [c for c in self.covariates_.columns if c not in values]
        if missing:
            raise SchemaError(f"stratum_model needs a value of every covariate; missing {missing}")
        frame = pd.DataFrame({c: [values[c]] for c in self.covariates_.columns})
        terms = self.covariates_.design.encode(frame, model=type(self).__name__)
        return self.stratum_model_at(terms[0])

    def stratum_model_at(self, terms: FloatArray) -> Self:
        """The model without covariates at the expanded covariates ``terms``."""
        assert self.covariates_ is not None
        key = tuple(float(t) for t in terms)
        found = self._strata_models.get(key)
        if found is None:
            k = len(self._param_names)
            params = self.params_.to_numpy(dtype=np.float64)
            eta = self.covariates_.loading(np.asarray(terms, dtype=np.float64)[None, :], self)[0]
            values = params[:k] * np.exp(eta @ params[k:])
            found = self._replicate()
            found._store(MLEResult(values, np.full((k, k), np.nan), np.nan, True, 0, "stratum"),
                         self.n_customers_, self.unit_)  # fmt: skip
            self._strata_models[key] = found
        return found

    def _in_units(self, span: float | Duration | str) -> float:
        """A time span in the model's unit: numbers are taken as already in it."""
        if isinstance(span, int | float | np.integer | np.floating):
            return float(span)
        self._check_fitted()
        if self.unit_ is None:
            raise SchemaError(
                f"{span!r} names a unit; this {type(self).__name__} does not know its data's unit "
                "(pandas' join and merge drop the unit rfm_summary records): fit with unit='week'"
            )
        return as_duration(span).to(self.unit_)

    def _discount_rate(
        self, discount: Rate | float, *, continuous: bool = False, allow_zero: bool = False
    ) -> float:
        """A discount rate per model unit.

        A :class:`~cvalue.units.Rate` converts exactly to the model's unit, as an effective rate
        (``(1 + annual) ** (unit / year) - 1``) or, with ``continuous``, a continuously compounded
        one; a float is taken as already per model unit.
        """
        if isinstance(discount, Rate):
            self._check_fitted()
            if self.unit_ is None:
                raise SchemaError(
                    f"a Rate needs the model's unit, and this {type(self).__name__} does not know "
                    "its data's time unit; fit it with unit='week' (or on a cvalue.rfm_summary), "
                    "or pass the rate per model unit as a float"
                )
            rate = discount.continuous(self.unit_) if continuous else discount.per(self.unit_)
        else:
            rate = float(discount)
        is_allowed = rate >= 0.0 if allow_zero else rate > 0.0
        if not math.isfinite(rate) or not is_allowed:
            bound = ">= 0" if allow_zero else "> 0"
            raise SchemaError(
                f"the discount rate must be finite and {bound} (positive) per model unit, "
                f"got {discount!r}"
            )
        return rate

    # --- fitted state --------------------------------------------------------------------------

    def _check_fitted(self) -> None:
        if not hasattr(self, "params_"):
            raise NotFittedError(
                f"this {type(self).__name__} is not fitted yet; call .fit(data) first"
            )

    def _check_plain(self) -> None:
        """Refuse to read one parameter set from a model whose parameters differ by customer."""
        if self.covariates_ is not None:
            raise SchemaError(
                f"this {type(self).__name__} has covariates, so its parameters differ by customer; "
                "this prediction needs one parameter set: call it on "
                "model.stratum_model({column: value, ...})"
            )

    @property
    def std_errors_(self) -> pd.Series:
        """Standard errors of the estimates (delta method on the natural scale)."""
        self._check_fitted()
        variances = np.diag(self.covariance_.to_numpy()).copy()
        # a negative variance means the Hessian was not positive definite: no standard error
        std_err = np.full_like(variances, np.nan)
        np.sqrt(variances, out=std_err, where=variances >= 0)
        return pd.Series(std_err, index=self.params_.index, name="std_err")

    @property
    def positive_params_(self) -> npt.NDArray[np.bool_]:
        """Per parameter, whether it is positive (estimated, and drawn, on the log scale).

        Every parameter of a model is; the coefficients of covariates are not (they are real
        numbers, estimated and drawn as they are).
        """
        self._check_fitted()
        return np.arange(len(self.params_)) < len(self._param_names)

    @property
    def n_params_(self) -> int:
        """The number of free parameters (with the covariates' coefficients)."""
        return len(self._names())

    @property
    def aic_(self) -> float:
        """Akaike's information criterion, ``2k - 2 LL``."""
        self._check_fitted()
        return 2.0 * self.n_params_ - 2.0 * self.log_likelihood_

    @property
    def bic_(self) -> float:
        """Schwarz's criterion, ``k ln(n) - 2 LL`` with n the number of customers."""
        self._check_fitted()
        return self.n_params_ * math.log(self.n_customers_) - 2.0 * self.log_likelihood_

    def summary(self, level: float = 0.95) -> pd.DataFrame:
        """Estimates, standard errors and ``level`` confidence intervals.

        Intervals are taken on the log scale and mapped back (``estimate * exp(+-z se/estimate)``),
        so they stay positive like the parameters. A model with covariates adds, for each
        coefficient, a symmetric interval and ``p_value``: the Wald test of the coefficient
        being 0 (the covariates' joint test is ``covariate_test_``).
        """
        self._check_fitted()
        z = stats.norm.ppf(0.5 + level / 2.0)
        estimate, std_err = self.params_.to_numpy(), self.std_errors_.to_numpy()
        positive = self.positive_params_
        # an estimate running off has a huge standard error: its interval reaches 0 and infinity
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            spread = np.exp(z * std_err / estimate)
        table = pd.DataFrame(
            {"estimate": estimate, "std_err": std_err,
             "ci_lower": np.where(positive, estimate / spread, estimate - z * std_err),
             "ci_upper": np.where(positive, estimate * spread, estimate + z * std_err)},
            index=self.params_.index,
        )  # fmt: skip
        if not positive.all():
            with np.errstate(divide="ignore", invalid="ignore"):
                wald = 2.0 * stats.norm.sf(np.abs(estimate / std_err))
            table["p_value"] = np.where(positive, np.nan, wald)
        return table

    # --- given parameters ----------------------------------------------------------------------

    @classmethod
    def from_params(
        cls, *values: float, unit: TimeUnit | str | None = None, **named: float
    ) -> Self:
        """A model with given parameters (no fit, no standard errors), e.g. to simulate.

        The parameters come by position, in the order of ``params_`` (``BetaGeo.from_params(
        0.243, 4.414, 0.793, 2.426)``), or by name (``r=0.243, alpha=4.414, ...``); ``unit`` is
        the time unit they are per.

        Raises
        ------
        SchemaError
            For a missing, unknown or extra parameter, or one that is not positive and finite.
        """
        names = cls._param_names
        if values and named:
            raise SchemaError(f"give {cls.__name__}'s parameters by position or by name, not both")
        if named:
            unknown = sorted(set(named) - set(names))
            missing = [name for name in names if name not in named]
            if unknown or missing:
                raise SchemaError(
                    f"{cls.__name__} has parameters {list(names)}; missing {missing}, "
                    f"unknown {unknown}"
                )
            values = tuple(named[name] for name in names)
        if len(values) != len(names):
            raise SchemaError(
                f"{cls.__name__} has {len(names)} parameters {list(names)}, got {len(values)}"
            )
        params = np.array(values, dtype=np.float64)
        if not np.all(np.isfinite(params) & (params > 0)):
            raise SchemaError(f"{cls.__name__} parameters must be positive, got {params.tolist()}")
        model = cls()
        covariance = np.full((len(names), len(names)), np.nan)
        model._store(MLEResult(params, covariance, np.nan, True, 0, "given"), 0.0,
                     None if unit is None else as_time_unit(unit))  # fmt: skip
        return model

    def with_params(self, params: Mapping[str, float] | npt.ArrayLike) -> Self:
        """A copy of this fitted model with other parameter values.

        ``params`` maps names to values, or lists values in the order of ``params_``. All else
        is kept: the time unit, the customer count, the options and the covariance of the fit
        (so ``summary()`` still describes the fit). Valuation uses it to move estimates for the
        delta method and for parameter draws.
        """
        self._check_fitted()
        if getattr(self, "cohorts_", None):
            raise SchemaError(
                f"this {type(self).__name__} has one parameter set per cohort; move one "
                "cohort's with model.cohorts_[label].with_params(...)"
            )
        names = list(self.params_.index)
        if isinstance(params, Mapping):
            if set(params) != set(names):
                raise SchemaError(
                    f"{type(self).__name__} has parameters {names}, got {sorted(params)}"
                )
            values = [float(params[name]) for name in names]
        else:
            values = np.asarray(params, dtype=np.float64).ravel().tolist()
            if len(values) != len(names):
                raise SchemaError(
                    f"{type(self).__name__} has {len(names)} parameters, got {len(values)}"
                )
        # through the model's JSON form, as save/load would: every subclass keeps its own state
        saved = self.to_dict()
        saved["params"] = dict(zip(names, values, strict=True))
        return type(self).from_dict(saved)

    # --- persistence -------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The fitted model as plain JSON-able values (no pickle)."""
        self._check_fitted()
        return {
            "model": type(self).__name__,
            "params": {k: float(v) for k, v in self.params_.items()},
            "covariance": self.covariance_.to_numpy().tolist(),
            "log_likelihood": self.log_likelihood_,
            "n_customers": self.n_customers_,
            "unit": None if self.unit_ is None else self.unit_.value,
            "options": self._options(),
            "versions": {"cvalue": __version__, "numpy": np.__version__,
                         "scipy": scipy.__version__},
        } | ({} if self.covariates_ is None else {
            "covariates": self.covariates_.to_dict(),
            "covariate_penalizer": self.covariate_penalizer,
        })  # fmt: skip

    def save(self, path: str | Path) -> None:
        """Write the fitted model to a JSON file."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, allow_nan=True))

    @classmethod
    def from_dict(cls, saved: Mapping[str, Any]) -> Self:
        """Rebuild a fitted model from :meth:`to_dict`'s output."""
        if saved.get("model") != cls.__name__:
            raise SchemaError(f"the saved model is a {saved.get('model')!r}, not a {cls.__name__}")
        model = cls(**saved.get("options", {}))
        if saved.get("covariates"):
            model.covariates_ = Covariates.from_dict(saved["covariates"])
            model.covariate_penalizer = float(saved.get("covariate_penalizer", 0.0))
            setattr(model, "summary_columns",  # noqa: B010
                    (*cls.summary_columns, *model.covariates_.columns))  # fmt: skip
        names = model._names()
        params = np.array([saved["params"][name] for name in names], dtype=np.float64)
        covariance = np.array(saved["covariance"], dtype=np.float64)
        unit = saved.get("unit")
        model._store(
            MLEResult(params, covariance, float(saved["log_likelihood"]), True, 0, "loaded"),
            float(saved["n_customers"]), None if unit is None else as_time_unit(unit),
        )  # fmt: skip
        return model

    @classmethod
    def load(cls, path: str | Path) -> Self:
        """Read a model written by :meth:`save`."""
        return cls.from_dict(json.loads(Path(path).read_text()))

    def __repr__(self) -> str:
        """Show the parameters when fitted."""
        if not hasattr(self, "params_"):
            return f"{type(self).__name__}(not fitted)"
        shown = ", ".join(f"{k}={v:.4g}" for k, v in self.params_.items())
        return f"{type(self).__name__}({shown}, log_likelihood={self.log_likelihood_:.2f})"
