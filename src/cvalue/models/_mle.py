"""The maximum-likelihood engine every model shares.

A model supplies its weighted log-likelihood (and, where the likelihood allows, its gradient) as a
function of the natural, positive parameters. The engine

- optimises ``theta = log(params)`` with L-BFGS-B, so positivity needs no bounds;
- scales the objective by the number of customers (the sum of weights), so tolerances mean the
  same thing for CDNOW and for a million customers;
- tries several starting points and keeps the best converged fit;
- takes the observed information from central differences of the gradient in ``theta`` (of the
  objective itself when there is no gradient), inverts it, and carries the covariance to the natural
  scale by the delta method: ``cov(params) = diag(params) cov(theta) diag(params)``;
- raises :class:`~cvalue.errors.ConvergenceError` quoting the optimiser when no start converges.

An optional L2 penalty ``penalizer * sum(params ** 2)`` (the same as lifetimes') shrinks estimates
on small data; it is reported in the result, and standard errors then describe the penalised fit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import optimize
from threadpoolctl import threadpool_limits

from cvalue.errors import ConvergenceError

__all__ = ["MLEResult", "Objective", "maximise"]

FloatArray = npt.NDArray[np.float64]
Objective = Callable[[FloatArray], tuple[float, FloatArray | None]]
"""Weighted log-likelihood at natural parameters, and its gradient (or ``None``)."""

_HESSIAN_STEP = 1e-5  # in log-parameters: central differences of an analytic gradient
_HESSIAN_STEP_NO_GRADIENT = 1e-4  # second differences of the objective need a larger step
_SAME_OPTIMUM = 1e-10  # mean log-likelihood per customer
_GRADIENT_TOLERANCE = 1e-6  # of the mean log-likelihood per customer, in log-parameters


@dataclass(frozen=True, slots=True)
class MLEResult:
    """A maximum-likelihood fit on the natural scale."""

    params: FloatArray
    covariance: FloatArray
    log_likelihood: float
    converged: bool
    n_evaluations: int
    message: str


def _scaled(objective: Objective, n_obs: float, penalizer: float) -> Callable[
    [FloatArray], tuple[float, FloatArray]
]:  # fmt: skip
    """Mean negative penalised log-likelihood in log-parameters, with its gradient."""

    def negative(theta: FloatArray) -> tuple[float, FloatArray]:
        params = np.exp(theta)
        value, gradient = objective(params)
        if gradient is None:
            raise ValueError("the objective has no gradient")
        value -= penalizer * float(np.sum(params**2))
        gradient = gradient - 2.0 * penalizer * params
        if not np.isfinite(value) or not np.all(np.isfinite(gradient)):
            return np.inf, np.zeros_like(theta)
        return -value / n_obs, -(gradient * params) / n_obs

    return negative


def _scaled_value(objective: Objective, n_obs: float, penalizer: float) -> Callable[
    [FloatArray], float
]:  # fmt: skip
    def negative(theta: FloatArray) -> float:
        params = np.exp(theta)
        value = objective(params)[0] - penalizer * float(np.sum(params**2))
        return -value / n_obs if np.isfinite(value) else np.inf

    return negative


def _information(
    objective: Objective, theta: FloatArray, penalizer: float, has_gradient: bool
) -> FloatArray:
    """Observed information (negative Hessian of the penalised log-likelihood) in theta."""
    k = len(theta)
    hessian = np.empty((k, k))
    if has_gradient:
        gradient = _scaled(objective, 1.0, penalizer)
        for i in range(k):
            step = np.zeros(k)
            step[i] = _HESSIAN_STEP
            hessian[i] = (gradient(theta + step)[1] - gradient(theta - step)[1]) / (
                2 * _HESSIAN_STEP
            )
        return 0.5 * (hessian + hessian.T)
    value = _scaled_value(objective, 1.0, penalizer)
    h = _HESSIAN_STEP_NO_GRADIENT
    for i in range(k):
        for j in range(i, k):
            ei, ej = np.zeros(k), np.zeros(k)
            ei[i], ej[j] = h, h
            hessian[i, j] = hessian[j, i] = (
                value(theta + ei + ej) - value(theta + ei - ej)
                - value(theta - ei + ej) + value(theta - ei - ej)
            ) / (4 * h * h)  # fmt: skip
    return hessian


def _has_converged(found: optimize.OptimizeResult) -> bool:
    """Success, or a line search that could not improve at a point where the gradient vanishes.

    L-BFGS-B reports "ABNORMAL" when the last line search finds no decrease, which happens at an
    optimum reached to machine precision as well as on real failures; the gradient tells which.
    """
    if not np.isfinite(found.fun):
        return False
    if found.success:
        return True
    gradient = np.asarray(getattr(found, "jac", np.inf), dtype=np.float64)
    return "ABNORMAL" in str(found.message) and bool(np.max(np.abs(gradient)) < _GRADIENT_TOLERANCE)


def _covariance(information: FloatArray, params: FloatArray) -> FloatArray:
    """Delta method: the inverse information in theta, carried to the natural scale."""
    try:
        cov_theta = np.linalg.inv(information)
    except np.linalg.LinAlgError:
        cov_theta = np.full_like(information, np.nan)
    return cov_theta * np.outer(params, params)


def maximise(
    objective: Objective,
    starts: Sequence[FloatArray],
    *,
    n_obs: float,
    has_gradient: bool,
    penalizer: float = 0.0,
    model: str = "model",
) -> MLEResult:
    """Maximise ``objective`` from each start and return the best converged fit.

    Parameters
    ----------
    objective
        Weighted log-likelihood and gradient at natural (positive) parameters.
    starts
        Starting points on the natural scale.
    n_obs
        The number of customers (sum of weights), which scales the objective.
    has_gradient
        Whether ``objective`` returns a gradient; without one, L-BFGS-B uses finite differences.
    penalizer
        L2 penalty coefficient on the natural parameters.
    model
        The model's name, for error messages.

    Raises
    ------
    ConvergenceError
        When no start converges; the message quotes the optimiser.
    """
    # one BLAS thread: the vectors here are short, and waking OpenBLAS's threads for every
    # L-BFGS-B step costs more than the work itself
    with threadpool_limits(limits=1, user_api="blas"):
        return _maximise(objective, starts, n_obs, has_gradient, penalizer, model)


def _maximise(
    objective: Objective,
    starts: Sequence[FloatArray],
    n_obs: float,
    has_gradient: bool,
    penalizer: float,
    model: str,
) -> MLEResult:
    best: optimize.OptimizeResult | None = None
    messages = []
    evaluations = 0
    for start in starts:
        theta0 = np.log(np.asarray(start, dtype=np.float64))
        options = {"maxiter": 2000, "ftol": 1e-14, "gtol": 1e-9}
        if has_gradient:
            found = optimize.minimize(
                _scaled(objective, n_obs, penalizer), theta0, jac=True, method="L-BFGS-B",
                options=options,
            )  # fmt: skip
        else:
            found = optimize.minimize(
                _scaled_value(objective, n_obs, penalizer), theta0, method="L-BFGS-B",
                options=options,
            )  # fmt: skip
        evaluations += int(found.nfev)
        messages.append(str(found.message))
        is_usable = _has_converged(found)
        if is_usable and best is not None and abs(found.fun - best.fun) < _SAME_OPTIMUM:
            break  # two starts agree: further starts would find this optimum again
        if is_usable and (best is None or found.fun < best.fun):
            best = found
    if best is None:
        raise ConvergenceError(
            f"{model} did not converge from {len(starts)} start(s); the optimiser said: "
            f"{'; '.join(sorted(set(messages)))}. Try more starts (n_starts=), a small "
            "penalizer (penalizer=0.001), or check the data: a base with no repeat buyers, or "
            "a unit that makes T very large or very small, cannot identify the parameters"
        )
    params = np.exp(best.x)
    information = _information(objective, best.x, penalizer, has_gradient)
    log_likelihood = float(objective(params)[0])
    return MLEResult(
        params=params,
        covariance=_covariance(information, params),
        log_likelihood=log_likelihood,
        converged=True,
        n_evaluations=evaluations,
        message=str(best.message),
    )
