"""The beta-discrete-Weibull (BdW) model of contract duration.

Fader, Hardie, Liu, Davin & Steenburgh (2018), "'How to project customer retention' revisited:
the role of duration dependence", *Journal of Interactive Marketing* 43, 1-16 (FHLDS below).
A customer's churn probability may change with tenure: ``P(T > t | theta) = (1 - theta)^(t^c)``
(``c < 1``: churn falls with tenure, ``c > 1``: it rises, ``c = 1``: the sBG), with
``theta ~ Beta(alpha, beta)``, so ``S(t) = B(alpha, beta + t^c) / B(alpha, beta)`` and
``P(T = t) = S(t - 1) - S(t)``. The interface is :class:`~cvalue.models.shifted_beta_geo
.ShiftedBetaGeo`'s: fits on durations or survivor tables, survival, retention, DEL and DERL,
and per-customer ``predict``, where the sums of ``S`` are taken term by term.

Examples
--------
>>> regular = [1000, 631, 468, 382, 326, 289, 262, 241]
>>> model = BetaDiscreteWeibull().fit_survivors(regular)
>>> bool(model.log_likelihood_ >= -1680.27)
True
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import numpy.typing as npt
from scipy.special import digamma

from cvalue.models._base import FloatArray
from cvalue.models.beta_geo_beta_binom import _log_rising_ratio
from cvalue.models.contractual import ContractualModel, _draw_discrete_weibull

__all__ = ["BetaDiscreteWeibull"]


class BetaDiscreteWeibull(ContractualModel):
    """The beta-discrete-Weibull model of Fader, Hardie, Liu, Davin & Steenburgh (2018).

    Parameters
    ----------
    n_starts
        How many starting points the optimiser tries.
    penalizer
        L2 penalty on the natural parameters; 0 for plain maximum likelihood.
    """

    _param_names: ClassVar[tuple[str, ...]] = ("alpha", "beta", "c")

    @staticmethod
    def _log_survival(params: FloatArray, t: FloatArray) -> tuple[FloatArray, FloatArray]:
        """``log S(t) = log B(alpha, beta + t^c) - log B(alpha, beta)``, FHLDS eq. (4).

        Evaluated as ``log[(beta)_u / (alpha + beta)_u]`` with ``u = t^c``, which keeps its
        digits for huge parameters and huge ``u``. The derivative in ``c`` is
        ``(psi(beta + t^c) - psi(alpha + beta + t^c)) t^c log t``, 0 at ``t = 0``.
        """
        alpha, beta, c = params
        log_t = np.log(np.where(t > 0, t, 1.0))
        # t^c past 1e304 leaves S at 0 in any case; the cap keeps the power finite
        u = np.power(np.minimum(t, np.exp(min(700.0 / c, 700.0))), c)
        psi_ab, psi_tail, psi_beta_u = (
            digamma(alpha + beta), digamma(alpha + beta + u), digamma(beta + u))  # fmt: skip
        value = _log_rising_ratio(beta, alpha + beta, u)
        gradient = np.stack(
            [psi_ab - psi_tail, psi_beta_u - psi_tail - digamma(beta) + psi_ab,
             (psi_beta_u - psi_tail) * u * log_t], axis=1,
        )  # fmt: skip
        return np.asarray(value, dtype=np.float64), gradient

    @staticmethod
    def _log_churn(params: FloatArray, t: FloatArray) -> tuple[FloatArray, FloatArray]:
        """``log P(T = t) = log(S(t - 1) - S(t))``, FHLDS eq. (5), without cancellation.

        With ``q = S(t) / S(t - 1)``: ``log S(t - 1) + log(-expm1(log q))``; its gradient is
        ``(g(t - 1) - q g(t)) / (1 - q)`` with ``g`` the gradient of ``log S``.
        """
        before, before_gradient = BetaDiscreteWeibull._log_survival(params, t - 1.0)
        after, after_gradient = BetaDiscreteWeibull._log_survival(params, t)
        log_q = np.minimum(after - before, 0.0)
        # 1 - q is floored at the smallest normal double: a hazard that underflows is ~0, not 0
        hazard = np.maximum(-np.expm1(log_q), np.finfo(np.float64).tiny)
        q = np.exp(log_q)[:, None]
        value = before + np.log(hazard)
        gradient = (before_gradient - q * after_gradient) / hazard[:, None]
        return np.asarray(value, dtype=np.float64), gradient

    @staticmethod
    def _draw(params: FloatArray, n_customers: int, n_periods: int,
              rng: np.random.Generator) -> npt.NDArray[np.int64]:  # fmt: skip
        return _draw_discrete_weibull(params[0], params[1], params[2], n_customers, n_periods, rng)

    def _duration_power(self) -> float:
        """The Weibull shape ``c``: a customer's survival is ``(1 - theta)^(t^c)``."""
        return float(dict(zip(self._param_names, self._params(), strict=True))["c"])
