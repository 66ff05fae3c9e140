"""lifetimes' fitters and utils, backed by cvalue's models: a migration layer.

Code written for the ``lifetimes`` package (0.11) runs with one changed import::

    from cvalue.compat.lifetimes import BetaGeoFitter, GammaGammaFitter
    from cvalue.compat.lifetimes.utils import summary_data_from_transaction_data

The classes keep lifetimes' argument names, defaults and return shapes (``params_`` as a Series
with lifetimes' parameter names, ``summary`` as a property, predictions as a Series when the
inputs are Series) and do no maths of their own: each fitter holds a cvalue model in
``model_`` and each method is one call of it, so that moving on to the native API
(``model_.predict(...)``) changes no number.

Deliberate differences (docs/from-lifetimes.md): a month is 365.2425 / 12 days in
:meth:`GammaGammaFitter.customer_lifetime_value` (lifetimes: 30 days, or 4.345 weeks);
purchases after ``observation_period_end`` are an error, not silently dropped;
``include_first_transaction=True`` and ``freq="H"`` are refused; the optimiser options of
``fit`` (``initial_params``, ``tol``, ``verbose``, ...) are accepted and not used, since cvalue's
optimiser starts from several points of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, Self, cast

import numpy as np
import numpy.typing as npt
import pandas as pd

from cvalue.compat.lifetimes import utils
from cvalue.compat.lifetimes._shapes import Freq, unit_of
from cvalue.compat.lifetimes.utils import (
    calibration_and_holdout_data,
    summary_data_from_transaction_data,
)
from cvalue.errors import NotFittedError, SchemaError
from cvalue.models import (
    BetaGeo,
    BetaGeoBetaBinom,
    GammaGamma,
    Model,
    ModifiedBetaGeo,
    ParetoNBD,
    PurchaseModel,
    SpendModel,
)
from cvalue.units import Duration, TimeUnit
from cvalue.value import DiscountRates, alive_probability, clv

__all__ = [
    "BetaGeoBetaBinomFitter",
    "BetaGeoFitter",
    "GammaGammaFitter",
    "ModifiedBetaGeoFitter",
    "ParetoNBDFitter",
    "calibration_and_holdout_data",
    "summary_data_from_transaction_data",
    "utils",
]

FloatArray = npt.NDArray[np.float64]
Values = pd.Series | FloatArray | float
"""What lifetimes returns: a Series for Series inputs, an array for arrays, a float for numbers."""

_Z_95 = 1.96  # lifetimes' intervals: estimate +- 1.96 standard errors


def _column(values: npt.ArrayLike | pd.Series, size: int) -> FloatArray:
    return np.broadcast_to(np.asarray(values, dtype=np.float64), (size,)).copy()


def _frame(columns: Mapping[str, npt.ArrayLike | pd.Series], index: object = None) -> pd.DataFrame:
    """The summary frame cvalue's models read, from lifetimes' separate columns."""
    first = next(iter(columns.values()))
    size = max(np.size(np.asarray(values)) for values in columns.values())
    if index is None and isinstance(first, pd.Series):
        index = first.index
    data = {name: _column(values, size) for name, values in columns.items()}
    return pd.DataFrame(data, index=None if index is None else pd.Index(index))  # type: ignore[call-overload]


def _shaped(values: pd.Series, like: object) -> Values:
    """A prediction in the shape lifetimes gives for inputs shaped like ``like``."""
    if isinstance(like, pd.Series):
        return pd.Series(values.to_numpy(), index=like.index)
    if np.ndim(np.asarray(like)) == 0:
        return float(values.iloc[0])
    return values.to_numpy(np.float64)


# --- fitters -------------------------------------------------------------------------------------


class _Fitter:
    """What every lifetimes fitter has: ``params_``, ``summary``, the penalty, the native model."""

    _native: ClassVar[type[Model]]
    _renamed: ClassVar[dict[str, str]] = {}  # cvalue's parameter name -> lifetimes'

    def __init__(self, penalizer_coef: float = 0.0) -> None:
        self.penalizer_coef = penalizer_coef

    @property
    def model_(self) -> Model:
        """The fitted cvalue model behind this fitter."""
        model: Model | None = getattr(self, "_model", None)
        if model is None:
            raise NotFittedError(
                f"this {type(self).__name__} is not fitted yet; call .fit(...) first"
            )
        return model

    @property
    def params_(self) -> pd.Series:
        """The estimates, named as lifetimes names them (an unnamed Series, as in lifetimes)."""
        params = self.model_.params_.rename(lambda name: self._renamed.get(name, name))
        return params.rename(None)

    @params_.setter
    def params_(self, params: pd.Series | Mapping[str, float]) -> None:
        """Set the parameters by lifetimes' names, as lifetimes users do to score with a model."""
        native_names = {their: ours for ours, their in self._renamed.items()}
        named = {native_names.get(str(name), str(name)): float(value)
                 for name, value in dict(params).items()}  # fmt: skip
        self._model = self._native.from_params(unit=None, **named)

    @property
    def standard_errors_(self) -> pd.Series:
        """Delta-method standard errors on the natural scale, as lifetimes computes them."""
        errors = self.model_.std_errors_.rename(lambda name: self._renamed.get(name, name))
        return errors.rename(None)

    @property
    def log_likelihood_(self) -> float:
        """The maximised log-likelihood (summed over customers)."""
        return float(self.model_.log_likelihood_)

    @property
    def summary(self) -> pd.DataFrame:
        """Lifetimes' table: ``coef``, ``se(coef)``, ``lower 95% bound``, ``upper 95% bound``."""
        params, errors = self.params_, self.standard_errors_
        return pd.DataFrame(
            {
                "coef": params,
                "se(coef)": errors,
                "lower 95% bound": params - _Z_95 * errors,
                "upper 95% bound": params + _Z_95 * errors,
            }
        )

    def _fit_frame(self, data: pd.DataFrame, weights: npt.ArrayLike | None) -> Self:
        if weights is not None:
            data["weight"] = _column(weights, len(data))
        self.data = data
        self._model = self._native(penalizer=self.penalizer_coef).fit(data)
        return self

    def __repr__(self) -> str:
        """``<cvalue.compat.lifetimes.BetaGeoFitter: r: 0.24, ...>`` as lifetimes prints it."""
        if getattr(self, "_model", None) is None:
            return f"<cvalue.compat.lifetimes.{type(self).__name__}>"
        shown = ", ".join(f"{name}: {value:.2f}" for name, value in sorted(self.params_.items()))
        return f"<cvalue.compat.lifetimes.{type(self).__name__}: {shown}>"


class _PurchaseFitter(_Fitter):
    """The continuous-time purchase fitters: fit on ``frequency, recency, T``."""

    @property
    def _purchases(self) -> PurchaseModel:
        return cast("PurchaseModel", self.model_)

    def fit(
        self,
        frequency: npt.ArrayLike | pd.Series,
        recency: npt.ArrayLike | pd.Series,
        T: npt.ArrayLike | pd.Series,  # noqa: N803 (lifetimes' argument name)
        weights: npt.ArrayLike | None = None,
        initial_params: npt.ArrayLike | None = None,
        verbose: bool = False,
        tol: float = 1e-7,
        index: npt.ArrayLike | None = None,
        **optimizer_options: object,
    ) -> Self:
        """Fit by maximum likelihood; return ``self``.

        Parameters
        ----------
        frequency, recency, T
            The customer summary's columns (Series, arrays or lists).
        weights
            How many customers share each row (lifetimes' compressed input).
        initial_params, verbose, tol, **optimizer_options
            lifetimes' optimiser settings: accepted for compatibility and not used (cvalue's
            optimiser tries several starting points of its own).
        index
            The customer ids of the rows.
        """
        data = _frame({"frequency": frequency, "recency": recency, "T": T}, index)
        return self._fit_frame(data, weights)

    def conditional_probability_alive(
        self,
        frequency: npt.ArrayLike | pd.Series,
        recency: npt.ArrayLike | pd.Series,
        T: npt.ArrayLike | pd.Series,  # noqa: N803 (lifetimes' argument name)
    ) -> Values:
        """P(alive | history): ``model_.p_alive(data)``."""
        data = _frame({"frequency": frequency, "recency": recency, "T": T})
        return _shaped(self._purchases.p_alive(data), frequency)

    def conditional_expected_number_of_purchases_up_to_time(
        self,
        t: float,
        frequency: npt.ArrayLike | pd.Series,
        recency: npt.ArrayLike | pd.Series,
        T: npt.ArrayLike | pd.Series,  # noqa: N803 (lifetimes' argument name)
    ) -> Values:
        """Expected purchases in ``(T, T + t]``: ``model_.expected_purchases(data, horizon=t)``."""
        data = _frame({"frequency": frequency, "recency": recency, "T": T})
        return _shaped(self._purchases.expected_purchases(data, horizon=float(t)), frequency)

    def predict(
        self,
        t: float,
        frequency: npt.ArrayLike | pd.Series,
        recency: npt.ArrayLike | pd.Series,
        T: npt.ArrayLike | pd.Series,  # noqa: N803 (lifetimes' argument name)
    ) -> Values:
        """Lifetimes' alias of :meth:`conditional_expected_number_of_purchases_up_to_time`."""
        return self.conditional_expected_number_of_purchases_up_to_time(t, frequency, recency, T)

    def expected_number_of_purchases_up_to_time(self, t: npt.ArrayLike) -> Values:
        """Expected purchases of a new customer in ``(0, t]``: ``model_.expected_purchases_new``."""
        horizons = np.atleast_1d(np.asarray(t, dtype=np.float64))
        expected = pd.Series([self._purchases.expected_purchases_new(horizon=float(span))
                              for span in horizons])  # fmt: skip
        return _shaped(expected, t)

    def probability_of_n_purchases_up_to_time(self, t: float, n: int) -> float:
        """P(n repeat purchases in ``(0, t]``) for a new customer: ``model_.purchase_pmf``."""
        probability = self._purchases.purchase_pmf(int(n), horizon=float(t))
        return float(np.asarray(probability, dtype=np.float64))


class BetaGeoFitter(_PurchaseFitter):
    """lifetimes' ``BetaGeoFitter`` (BG/NBD) on :class:`cvalue.BetaGeo`; ``r, alpha, a, b``.

    Examples
    --------
    >>> from cvalue.datasets import load_cdnow
    >>> cbs = load_cdnow().summary
    >>> bgf = BetaGeoFitter().fit(cbs["frequency"], cbs["recency"], cbs["T"])
    >>> bgf.params_.round(3).tolist()  # Fader, Hardie & Lee (2005)
    [0.243, 4.414, 0.793, 2.426]
    >>> alive = bgf.conditional_probability_alive(cbs["frequency"], cbs["recency"], cbs["T"])
    >>> alive.round(3).head(2).tolist()
    [0.727, 0.212]
    """

    _native = BetaGeo


class ModifiedBetaGeoFitter(_PurchaseFitter):
    """lifetimes' ``ModifiedBetaGeoFitter`` (MBG/NBD) on :class:`cvalue.ModifiedBetaGeo`."""

    _native = ModifiedBetaGeo


class ParetoNBDFitter(_PurchaseFitter):
    """lifetimes' ``ParetoNBDFitter`` on :class:`cvalue.ParetoNBD`; ``r, alpha, s, beta``."""

    _native = ParetoNBD


class BetaGeoBetaBinomFitter(_Fitter):
    """lifetimes' ``BetaGeoBetaBinomFitter`` (BG/BB) on :class:`cvalue.BetaGeoBetaBinom`."""

    _native = BetaGeoBetaBinom

    @property
    def _purchases(self) -> PurchaseModel:
        return cast("PurchaseModel", self.model_)

    def fit(
        self,
        frequency: npt.ArrayLike | pd.Series,
        recency: npt.ArrayLike | pd.Series,
        n_periods: npt.ArrayLike | pd.Series,
        weights: npt.ArrayLike | None = None,
        initial_params: npt.ArrayLike | None = None,
        verbose: bool = False,
        tol: float = 1e-7,
        index: npt.ArrayLike | None = None,
        **optimizer_options: object,
    ) -> Self:
        """Fit on ``frequency, recency, n_periods`` (whole opportunities); return ``self``.

        The optimiser settings are accepted for compatibility and not used.
        """
        data = _frame({"frequency": frequency, "recency": recency, "n_periods": n_periods}, index)
        return self._fit_frame(data, weights)

    def conditional_probability_alive(
        self,
        m_periods_in_future: int,
        frequency: npt.ArrayLike | pd.Series,
        recency: npt.ArrayLike | pd.Series,
        n_periods: npt.ArrayLike | pd.Series,
    ) -> Values:
        """P(alive at opportunity ``n_periods + m_periods_in_future`` | history).

        :func:`cvalue.value.alive_probability` with ``after`` m opportunities; cvalue's
        ``model_.p_alive(data)`` (alive at the next opportunity) is lifetimes' ``m=1``.
        """
        data = _frame({"frequency": frequency, "recency": recency, "n_periods": n_periods})
        # alive_probability converts a Duration to opportunities through the model's unit:
        # a copy whose opportunity is one day reads m days as m opportunities
        per_day = BetaGeoBetaBinom.from_params(*self.model_.params_.tolist(), unit=TimeUnit.DAY)
        after = Duration(int(m_periods_in_future), TimeUnit.DAY)
        return _shaped(alive_probability(data, purchases=per_day, after=after), frequency)

    def conditional_expected_number_of_purchases_up_to_time(
        self,
        m_periods_in_future: int,
        frequency: npt.ArrayLike | pd.Series,
        recency: npt.ArrayLike | pd.Series,
        n_periods: npt.ArrayLike | pd.Series,
    ) -> Values:
        """Expected purchases in the next ``m_periods_in_future`` opportunities."""
        data = _frame({"frequency": frequency, "recency": recency, "n_periods": n_periods})
        expected = self._purchases.expected_purchases(data, horizon=int(m_periods_in_future))
        return _shaped(expected, frequency)


class GammaGammaFitter(_Fitter):
    """lifetimes' ``GammaGammaFitter`` on :class:`cvalue.GammaGamma`; ``p, q, v``.

    lifetimes' ``v`` is cvalue's ``gamma`` (the rate of the customers' Gamma-distributed nu).
    """

    _native = GammaGamma
    _renamed: ClassVar[dict[str, str]] = {"gamma": "v"}

    def fit(
        self,
        frequency: npt.ArrayLike | pd.Series,
        monetary_value: npt.ArrayLike | pd.Series,
        weights: npt.ArrayLike | None = None,
        initial_params: npt.ArrayLike | None = None,
        verbose: bool = False,
        tol: float = 1e-7,
        index: npt.ArrayLike | None = None,
        q_constraint: bool = False,
        **optimizer_options: object,
    ) -> Self:
        """Fit on the repeat buyers among ``frequency, monetary_value``; return ``self``.

        Unlike lifetimes, rows with ``frequency`` 0 may be passed: cvalue leaves them out of the
        fit and lists them in ``model_.excluded_``. ``q_constraint=True`` (q > 1) is refused.
        """
        if q_constraint:
            raise SchemaError(
                "q_constraint=True is not supported; cvalue fits q freely and raises "
                "UndefinedExpectationError where q <= 1 leaves an expectation infinite"
            )
        data = _frame({"frequency": frequency, "monetary_value": monetary_value}, index)
        return self._fit_frame(data, weights)

    def conditional_expected_average_profit(
        self,
        frequency: npt.ArrayLike | pd.Series | None = None,
        monetary_value: npt.ArrayLike | pd.Series | None = None,
    ) -> Values:
        """Expected spend per purchase: ``model_.conditional_expected_spend(data)``.

        Without arguments, for the data the model was fitted on, as in lifetimes.
        """
        if frequency is None or monetary_value is None:
            frequency, monetary_value = self.data["frequency"], self.data["monetary_value"]
        data = _frame({"frequency": frequency, "monetary_value": monetary_value})
        spend = cast("SpendModel", self.model_).conditional_expected_spend(data)
        return _shaped(spend, frequency)

    def customer_lifetime_value(
        self,
        transaction_prediction_model: _PurchaseFitter,
        frequency: npt.ArrayLike | pd.Series,
        recency: npt.ArrayLike | pd.Series,
        T: npt.ArrayLike | pd.Series,  # noqa: N803 (lifetimes' argument name)
        monetary_value: npt.ArrayLike | pd.Series,
        time: int = 12,
        discount_rate: float = 0.01,
        freq: Freq = "D",
    ) -> pd.Series:
        """Discounted expected revenue over ``time`` months, per customer: :func:`cvalue.clv`.

        Each month's expected purchases times the expected spend, discounted by
        ``(1 + discount_rate) ** month`` at the month's end, as lifetimes does, with a month of
        365.2425 / 12 days (lifetimes: 30 days for ``freq="D"``, 4.345 weeks for ``"W"``).
        ``freq`` is the unit of ``recency`` and ``T``. The native call is ``cvalue.clv(data,
        purchases=..., spend=..., margin=1.0, horizon=Duration(time, "month"), rates=...,
        cost_to_serve=0.0, marketing_cost=0.0, period="1M")``.

        Raises
        ------
        SchemaError
            For a ``transaction_prediction_model`` that is not a compat purchase fitter (a
            lifetimes fitter, for instance), or ``freq="H"``.
        """
        if not isinstance(transaction_prediction_model, _PurchaseFitter):
            raise SchemaError(
                "transaction_prediction_model must be a fitted BetaGeoFitter, "
                "ModifiedBetaGeoFitter or ParetoNBDFitter of cvalue.compat.lifetimes, got "
                f"{type(transaction_prediction_model).__module__}."
                f"{type(transaction_prediction_model).__name__}: refit it with the compat class"
            )
        unit = unit_of(freq)
        data = _frame({"frequency": frequency, "recency": recency, "T": T,
                       "monetary_value": monetary_value})  # fmt: skip
        purchases = transaction_prediction_model.model_
        in_unit = type(purchases).from_params(*purchases.params_.tolist(), unit=unit)
        spend = GammaGamma.from_params(*self.model_.params_.tolist(), unit=unit)
        rates = DiscountRates.single(discount_rate, per="month")
        value = clv(
            data, purchases=in_unit, spend=spend, margin=1.0,
            horizon=Duration(time, TimeUnit.MONTH), rates=rates, cost_to_serve=0.0,
            marketing_cost=0.0, period=Duration(1, TimeUnit.MONTH),
        )  # fmt: skip
        values = value.customers["clv"].to_numpy(np.float64)
        return pd.Series(values, index=data.index, name="clv")
