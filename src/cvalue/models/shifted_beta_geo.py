"""The shifted-beta-geometric (sBG) model of contract duration, and what contractual models share.

Fader & Hardie (2007), "How to project customer retention", *Journal of Interactive Marketing*
21(1), 76-90 (FH 2007 below): each customer renews at the end of every period with a constant
probability ``1 - theta``, and ``theta ~ Beta(alpha, beta)`` across customers, so the duration
``T >= 1`` (periods a customer stays) has ``P(T = t) = B(alpha + 1, beta + t - 1) / B(alpha, beta)``
and ``S(t) = P(T > t) = B(alpha, beta + t) / B(alpha, beta)``. Values of a customer base follow
Fader & Hardie (2010), "Customer-base valuation in a contractual setting: the perils of ignoring
heterogeneity", *Marketing Science* 29(1), 85-93 (FH 2010 below).

Two ways to fit:

- :meth:`ShiftedBetaGeo.fit` on one row per customer (or per pattern with a ``weight`` column):
  ``duration`` (whole periods observed) and ``is_censored`` (1 if the customer was still active
  at the end of ``duration``, 0 if the customer churned after ``duration`` periods);
- :meth:`ShiftedBetaGeo.fit_survivors` on cohort survivor counts, one row per cohort and one
  column per period (period 0 first, the cohort's size), with either one parameter set shared by
  all cohorts or one per cohort; :func:`lr_test` compares the two.

Cohort-level values are ``survival``, ``retention_rate``, ``del_`` and ``derl``; a customer
table (the columns ``fit`` reads) is scored by :meth:`ContractualModel.predict`: for each active
customer, the chance of the next renewal, of being active after a horizon, the renewals expected
in it, and DERL.

Examples
--------
>>> regular = [1000, 631, 468, 382, 326, 289, 262, 241]
>>> model = ShiftedBetaGeo().fit_survivors(regular)
>>> model.params_.round(3).tolist()
[0.704, 1.182]
>>> (1000 * model.survival([8, 9, 10, 11, 12])).round(1).tolist()
[220.1, 204.4, 191.2, 179.9, 170.0]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import numpy.typing as npt
from scipy.special import digamma

from cvalue.errors import SchemaError
from cvalue.models._base import FloatArray
from cvalue.models.beta_geo_beta_binom import _alive_sum, _hyp2f1_one, _log_rising_ratio
from cvalue.models.contractual import (
    ContractualModel,
    LikelihoodRatioTest,
    _draw_discrete_weibull,
    lr_test,
)
from cvalue.units import Duration, Rate

__all__ = ["ContractualModel", "LikelihoodRatioTest", "ShiftedBetaGeo", "lr_test"]


class ShiftedBetaGeo(ContractualModel):
    """The shifted-beta-geometric model of Fader & Hardie (2007).

    Parameters
    ----------
    n_starts
        How many starting points the optimiser tries.
    penalizer
        L2 penalty on the natural parameters; 0 for plain maximum likelihood.
    """

    _param_names: ClassVar[tuple[str, ...]] = ("alpha", "beta")

    @staticmethod
    def _log_survival(params: FloatArray, t: FloatArray) -> tuple[FloatArray, FloatArray]:
        """``log S(t) = log B(alpha, beta + t) - log B(alpha, beta)``, FH 2007 eq. (6).

        Evaluated as ``log[(beta)_t / (alpha + beta)_t]`` so that huge parameters and huge
        ``t`` keep their digits.
        """
        alpha, beta = params
        psi_ab, psi_tail = digamma(alpha + beta), digamma(alpha + beta + t)
        value = _log_rising_ratio(beta, alpha + beta, t)
        gradient = np.stack(
            [psi_ab - psi_tail, digamma(beta + t) - psi_tail - digamma(beta) + psi_ab], axis=1
        )  # fmt: skip
        return np.asarray(value, dtype=np.float64), gradient

    @staticmethod
    def _log_churn(params: FloatArray, t: FloatArray) -> tuple[FloatArray, FloatArray]:
        """``log P(T = t) = log B(alpha + 1, beta + t - 1) - log B(alpha, beta)``, FH 2007 eq. (5).

        The gradient uses ``d/da log B(a, b) = psi(a) - psi(a + b)``.
        """
        alpha, beta = params
        psi_ab, psi_tail = digamma(alpha + beta), digamma(alpha + beta + t)
        value = (np.log(alpha / (alpha + beta + t - 1.0))
                 + _log_rising_ratio(beta, alpha + beta, t - 1.0))  # fmt: skip
        gradient = np.stack(
            [digamma(alpha + 1.0) - psi_tail - digamma(alpha) + psi_ab,
             digamma(beta + t - 1.0) - psi_tail - digamma(beta) + psi_ab], axis=1,
        )  # fmt: skip
        return np.asarray(value, dtype=np.float64), gradient

    @staticmethod
    def _draw(params: FloatArray, n_customers: int, n_periods: int,
              rng: np.random.Generator) -> npt.NDArray[np.int64]:  # fmt: skip
        return _draw_discrete_weibull(params[0], params[1], 1.0, n_customers, n_periods, rng)

    def retention_rate(
        self, t: float | Sequence[float] | FloatArray | Duration | str
    ) -> float | FloatArray:
        """``r(t) = (beta + t - 1) / (alpha + beta + t - 1)``, FH 2007 eq. (8)."""
        periods = self._periods(t)
        if np.any(periods < 1):
            raise SchemaError(f"retention rates start at period 1, got t={t!r}")
        alpha, beta = self._params()
        found = (beta + periods - 1.0) / (alpha + beta + periods - 1.0)
        return float(found) if periods.ndim == 0 else np.asarray(found, dtype=np.float64)

    def _conditional(
        self, params: FloatArray, tenure: FloatArray, periods: int
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """The per-customer quantities in closed form, for a customer who renewed ``n`` times.

        ``r(n + 1) = (beta + n) / (alpha + beta + n)`` (FH 2007 eq. (8)); ``S(n + h) / S(n) =
        B(alpha, beta + n + h) / B(alpha, beta + n) = (beta + n)_h / (alpha + beta + n)_h``
        (FH 2007 eq. (6)); and ``sum_{k=1}^{h} S(n + k) / S(n)``, which telescopes to
        ``(beta + n) / (alpha - 1) * [1 - G(1 + beta + n + h) G(alpha + beta + n)
        / (G(alpha + beta + n + h) G(1 + beta + n))]``, the sum behind Fader, Hardie & Shang
        (2010) eq. (8), computed without loss of digits near ``alpha = 1``.
        """
        alpha, beta = params
        renew_next = (beta + tenure) / (alpha + beta + tenure)
        at_horizon = np.exp(_log_rising_ratio(beta + tenure, alpha + beta + tenure,
                                              np.full_like(tenure, float(periods))))  # fmt: skip
        expected = _alive_sum(alpha, beta, tenure, tenure + periods)
        return np.asarray(renew_next, dtype=np.float64), at_horizon, expected

    def del_(self, discount: Rate | float) -> float:
        """Discounted expected lifetime, FH 2010 eq. (5): ``2F1(1, beta; alpha + beta; 1/(1+d))``.

        ``inf`` for ``d = 0`` when ``alpha <= 1`` (the expected lifetime is infinite).
        """
        rate = self._discount_rate(discount, allow_zero=True)
        alpha, beta = self._params()
        if rate == 0.0:
            return self.expected_lifetime()
        return float(_hyp2f1_one(np.array([beta]), alpha, 1.0 / (1.0 + rate))[0])

    def _derl(self, params: FloatArray, renewals: FloatArray, rate: float) -> FloatArray:
        """DERL in closed form, FH 2010 eq. (6).

        ``(beta + n - 1) / (alpha + beta + n - 1) 2F1(1, beta + n; alpha + beta + n; 1 / (1 + d))``
        with ``n - 1`` the renewals made.
        """
        alpha, beta = params
        n = renewals + 1.0
        stay = (beta + n - 1.0) / (alpha + beta + n - 1.0)
        if rate == 0.0:
            # 2F1(1, b; c; 1) = (c - 1) / (c - b - 1): the expected residual lifetime
            if alpha <= 1.0:
                return np.full_like(n, math.inf)
            tail = (alpha + beta + n - 1.0) / (alpha - 1.0)
            return np.asarray(stay * tail, dtype=np.float64)
        return np.asarray(stay * _hyp2f1_one(beta + n, alpha, 1.0 / (1.0 + rate)), dtype=np.float64)

    def expected_lifetime(self) -> float:
        """``E[T] = (alpha + beta - 1) / (alpha - 1)`` periods, ``inf`` for ``alpha <= 1``."""
        alpha, beta = self._params()
        return math.inf if alpha <= 1.0 else float((alpha + beta - 1.0) / (alpha - 1.0))
