"""The maximum-likelihood engine every model shares.

A model supplies its weighted log-likelihood (and, where the likelihood allows, its gradient) as a
function of the natural, positive parameters. The engine

- optimises ``theta = log(params)`` with L-BFGS-B inside a box: each parameter stays within a
  factor :data:`SEARCH_FACTOR` (1e7) of its scale, which is 1 for a shape and the data's own
  scale for a parameter with a unit (the mean age ``T`` for a time scale, the mean spend for a
  spend scale). Every evaluation is then finite (``exp(theta)``, the penalty's ``params ** 2``,
  ``gammaln``, ``betaln``, the quadratures), a line search can never step to an overflow, and a
  parameter running off to 0 or infinity stops on the box instead of wandering along a flat
  ridge. No estimate a model means comes near it (CDNOW's, in weeks, lie within a factor 10 of
  their scales);
- scales the objective by the number of customers (the sum of weights), so tolerances mean the
  same thing for CDNOW and for a million customers;
- tries several starting points and keeps the best converged fit;
- takes the observed information from central differences of the gradient in ``theta`` (of the
  objective itself when there is no gradient), inverts it, and carries the covariance to the natural
  scale by the delta method: ``cov(params) = diag(params) cov(theta) diag(params)``;
- raises :class:`~cvalue.errors.ConvergenceError` quoting the optimiser when no start converges;
- flags, in :attr:`MLEResult.edges`, the estimates at the edge of the parameter space: beyond a
  factor :data:`EDGE_FACTOR` (1e5) of their scale (running off to 0 or infinity), or inside it
  but not pinned down by the data (a standard error of ``log(param)`` above 5, or none: the
  information is singular or not positive there). :meth:`cvalue.models._base.Model.fit` turns
  them into a :class:`ConvergenceWarning`.

An optional L2 penalty ``penalizer * sum(params ** 2)`` (the same as lifetimes') shrinks estimates
on small data; it is reported in the result, and standard errors then describe the penalised fit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import optimize
from threadpoolctl import threadpool_limits

from cvalue.errors import ConvergenceError, CValueWarning

__all__ = [
    "EDGE_FACTOR",
    "SEARCH_FACTOR",
    "ConvergenceWarning",
    "Edge",
    "MLEResult",
    "Objective",
    "describe_edges",
    "maximise",
    "summed",
]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
Objective = Callable[[FloatArray], tuple[float, FloatArray | None]]
"""Weighted log-likelihood at natural parameters, and its gradient (or ``None``)."""

_HESSIAN_STEP = 1e-5  # in log-parameters: central differences of an analytic gradient
_HESSIAN_STEP_NO_GRADIENT = 1e-4  # second differences of the objective need a larger step
_SAME_OPTIMUM = 1e-10  # mean log-likelihood per customer
_GRADIENT_TOLERANCE = 1e-6  # of the mean log-likelihood per customer, in log-parameters

SEARCH_FACTOR = 1e7
"""The box of the search: ``scale / 1e7 <= param <= scale * 1e7`` for each parameter.

Shapes (scale 1) stay in ``[1e-7, 1e7]``; a time scale in ``mean T * [1e-7, 1e7]``, whatever the
unit. Far beyond any estimate a model means, and far inside what floats hold.
"""
EDGE_FACTOR = 1e5
"""An estimate beyond ``scale * 1e5`` or below ``scale / 1e5`` is flagged as running off.

A Gamma or Beta shape of 1e5 describes a population with no heterogeneity to speak of (a
coefficient of variation of 0.3 %): the limit where the shape and its scale grow together.
"""
_MAX_LOG_SCALE = 100.0  # data scales are clipped to e^+-100: the penalty's params ** 2 stays finite
_MAX_LOG_SE = 5.0  # a standard error of log(param) above 5: a 95 % interval spans a factor e^20


class ConvergenceWarning(CValueWarning):
    """A fit ended at the edge of the parameter space: an estimate the data do not determine.

    A parameter ran off towards 0 or infinity (beyond a factor :data:`EDGE_FACTOR` of its
    scale), or the likelihood is flat along it. Its estimate and standard error mean nothing,
    and predictions rest on where the search stopped.
    """


@dataclass(frozen=True, slots=True)
class Edge:
    """An estimate at the edge of the parameter space.

    Attributes
    ----------
    index
        The parameter's position.
    side
        ``"upper"``: above :data:`EDGE_FACTOR` times its scale (running off to infinity);
        ``"lower"``: below its scale divided by :data:`EDGE_FACTOR` (running off to 0);
        ``"flat"``: in between, but the likelihood barely changes along it (a standard error of
        its log above 5, or none: the information is singular or not positive there).
    """

    index: int
    side: Literal["upper", "lower", "flat"]


@dataclass(frozen=True, slots=True)
class MLEResult:
    """A maximum-likelihood fit on the natural scale, and its estimates at the edge (if any)."""

    params: FloatArray
    covariance: FloatArray
    log_likelihood: float
    converged: bool
    n_evaluations: int
    message: str
    edges: tuple[Edge, ...] = ()


Penalty = float | FloatArray
"""The L2 penalty's coefficient: one for every parameter, or one per parameter."""


def _natural(theta: FloatArray, positive: BoolArray | None) -> FloatArray:
    """The parameters at ``theta``: ``exp(theta)`` for the positive ones, ``theta`` for the rest."""
    if positive is None:
        return np.exp(theta)
    return np.where(positive, np.exp(np.where(positive, theta, 0.0)), theta)


def _slope(params: FloatArray, positive: BoolArray | None) -> FloatArray:
    """``d params / d theta``: the parameter itself on the log scale, 1 for the others."""
    return params if positive is None else np.where(positive, params, 1.0)


def summed(objectives: Sequence[Objective]) -> Objective:
    """The objective of the union of disjoint blocks of patterns: their values and gradients added.

    A log-likelihood is a sum over customers, so a base's patterns can be evaluated a block at a
    time: the temporary arrays of one evaluation are then a block's, not the base's.
    """
    if len(objectives) == 1:
        return objectives[0]

    def objective(params: FloatArray) -> tuple[float, FloatArray | None]:
        value, gradient = objectives[0](params)
        for block in objectives[1:]:
            more, more_gradient = block(params)
            value += more
            gradient = None if gradient is None or more_gradient is None else (
                gradient + more_gradient)  # fmt: skip
        return value, gradient

    return objective


def _scaled(
    objective: Objective, n_obs: float, penalizer: Penalty, positive: BoolArray | None = None
) -> Callable[[FloatArray], tuple[float, FloatArray]]:
    """Mean negative penalised log-likelihood in ``theta``, with its gradient."""

    def negative(theta: FloatArray) -> tuple[float, FloatArray]:
        params = _natural(theta, positive)
        value, gradient = objective(params)
        if gradient is None:
            raise ValueError("the objective has no gradient")
        value -= float(np.sum(penalizer * params**2))
        gradient = gradient - 2.0 * penalizer * params
        if not np.isfinite(value) or not np.all(np.isfinite(gradient)):
            return np.inf, np.zeros_like(theta)
        return -value / n_obs, -(gradient * _slope(params, positive)) / n_obs

    return negative


def _scaled_value(
    objective: Objective, n_obs: float, penalizer: Penalty, positive: BoolArray | None = None
) -> Callable[[FloatArray], float]:
    def negative(theta: FloatArray) -> float:
        params = _natural(theta, positive)
        value = objective(params)[0] - float(np.sum(penalizer * params**2))
        return -value / n_obs if np.isfinite(value) else np.inf

    return negative


def _information(
    objective: Objective, theta: FloatArray, penalizer: Penalty, has_gradient: bool,
    positive: BoolArray | None = None,
) -> FloatArray:  # fmt: skip
    """Observed information (negative Hessian of the penalised log-likelihood) in theta."""
    k = len(theta)
    hessian = np.empty((k, k))
    if has_gradient:
        gradient = _scaled(objective, 1.0, penalizer, positive)
        for i in range(k):
            step = np.zeros(k)
            step[i] = _HESSIAN_STEP
            hessian[i] = (gradient(theta + step)[1] - gradient(theta - step)[1]) / (
                2 * _HESSIAN_STEP
            )
        return 0.5 * (hessian + hessian.T)
    value = _scaled_value(objective, 1.0, penalizer, positive)
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


def _has_converged(found: optimize.OptimizeResult, box: _Box) -> bool:
    """Success, or a line search that could not improve where the gradient vanishes or on a ridge.

    L-BFGS-B reports "ABNORMAL" when the last line search finds no decrease, which happens at an
    optimum reached to machine precision as well as on real failures; the gradient tells which.
    On the box, only the gradient along it counts (L-BFGS-B's projected gradient). A line search
    also fails on the flat ridge of a parameter running off to 0 or infinity: a point beyond
    :data:`EDGE_FACTOR` of its scale is kept, and flagged as an edge (:func:`_edges`).
    """
    if not np.isfinite(found.fun):
        return False
    if found.success:
        return True
    if "ABNORMAL" not in str(found.message):
        return False
    if np.any(np.abs(found.x - box.centre) >= math.log(EDGE_FACTOR)):
        return True
    gradient = np.asarray(getattr(found, "jac", np.inf), dtype=np.float64)
    is_held = ((found.x >= box.upper) & (gradient < 0)) | ((found.x <= box.lower) & (gradient > 0))
    return bool(np.max(np.abs(np.where(is_held, 0.0, gradient))) < _GRADIENT_TOLERANCE)


@dataclass(frozen=True, slots=True)
class _Box:
    """The search box in ``theta``: ``log(scale) +- log(SEARCH_FACTOR)`` per parameter."""

    centre: FloatArray
    lower: FloatArray
    upper: FloatArray

    @classmethod
    def around(cls, scales: FloatArray) -> _Box:
        centre = np.clip(np.log(scales), -_MAX_LOG_SCALE, _MAX_LOG_SCALE)
        half = math.log(SEARCH_FACTOR)
        return cls(centre, centre - half, centre + half)

    def bounds(self) -> list[tuple[float, float]]:
        """The box as L-BFGS-B's ``bounds``."""
        return [(float(low), float(high)) for low, high in zip(self.lower, self.upper, strict=True)]


def _inverse(information: FloatArray) -> FloatArray:
    """The covariance of theta: the inverse information (NaN where it is singular)."""
    try:
        return np.asarray(np.linalg.inv(information), dtype=np.float64)
    except np.linalg.LinAlgError:
        return np.full_like(information, np.nan)


def _edges(theta: FloatArray, box: _Box, cov_theta: FloatArray) -> tuple[Edge, ...]:
    """The estimates beyond :data:`EDGE_FACTOR` of their scale, then those the data leave flat."""
    found = []
    edge = math.log(EDGE_FACTOR)
    distances, variances = theta - box.centre, np.diag(cov_theta)
    for index, (distance, variance) in enumerate(zip(distances, variances, strict=True)):
        if distance >= edge:
            found.append(Edge(index, "upper"))
        elif distance <= -edge:
            found.append(Edge(index, "lower"))
        elif not 0.0 <= variance <= _MAX_LOG_SE**2:  # NaN or negative: no curvature to read
            found.append(Edge(index, "flat"))
    return tuple(found)


def describe_edges(
    edges: Sequence[Edge], names: Sequence[str], params: FloatArray, scales: FloatArray,
    model: str, positive: BoolArray | None = None,
) -> str:  # fmt: skip
    """A :class:`ConvergenceWarning`'s message: each parameter at the edge, and what it means."""
    parts = []
    for edge in edges:
        name, value, scale = names[edge.index], params[edge.index], scales[edge.index]
        if positive is not None and not positive[edge.index] and edge.side != "flat":
            parts.append(f"the coefficient {name} = {value:.4g} runs off (it moves its parameter "
                         f"by a factor beyond {EDGE_FACTOR:.0e}: a level or value whose "
                         "customers show no such event)")  # fmt: skip
        elif edge.side == "flat":
            parts.append(f"{name} = {value:.4g} is not determined by the data (the likelihood is "
                         "flat along it: its standard error is huge or undefined)")  # fmt: skip
        else:
            where = "infinity" if edge.side == "upper" else "0"
            beyond = f"above {EDGE_FACTOR:.0e} times" if edge.side == "upper" else (
                f"below 1/{EDGE_FACTOR:.0e} of")  # fmt: skip
            parts.append(f"{name} = {value:.4g} runs off towards {where} ({beyond} its scale "
                         f"{scale:.4g})")  # fmt: skip
    return (
        f"{model} converged to the edge of its parameter space: {'; '.join(parts)}. Such an "
        "estimate and its standard error mean nothing, and predictions depend on where the "
        "search stopped. It happens when the base is too small or has too few repeat events to "
        "estimate the model, or when the data show no heterogeneity for a mixing distribution to "
        "describe (a shape and its scale growing together). Fit on more customers or a longer "
        "period, try a simpler model, or add a small penalizer (penalizer=0.001)"
    )


def maximise(
    objective: Objective,
    starts: Sequence[FloatArray],
    *,
    n_obs: float,
    has_gradient: bool,
    penalizer: Penalty = 0.0,
    model: str = "model",
    scales: FloatArray | None = None,
    positive: BoolArray | None = None,
    information: Callable[[FloatArray], FloatArray] | None = None,
) -> MLEResult:
    """Maximise ``objective`` from each start and return the best converged fit.

    Parameters
    ----------
    objective
        Weighted log-likelihood and gradient at natural (positive) parameters.
    starts
        Starting points on the natural scale (moved into the search box if outside).
    n_obs
        The number of customers (sum of weights), which scales the objective.
    has_gradient
        Whether ``objective`` returns a gradient; without one, L-BFGS-B uses finite differences.
    penalizer
        L2 penalty coefficient on the natural parameters: one for all, or one per parameter.
    model
        The model's name, for error messages.
    scales
        Each parameter's scale, the centre of its search box (:data:`SEARCH_FACTOR`) and of the
        edge test (:data:`EDGE_FACTOR`); 1 for every parameter by default.
    positive
        Per parameter, whether it is positive (searched on the log scale, as every parameter is
        by default) or any real number (a covariate's coefficient: searched as it is, in
        ``+-log(SEARCH_FACTOR)``, its scale ignored, and flagged beyond ``+-log(EDGE_FACTOR)``,
        where it moves its parameter by that factor). The covariance of a real parameter is
        that of ``theta`` itself.
    information
        The observed information (the negative Hessian of the penalised log-likelihood) at
        ``theta``, when the caller has a cheaper way to it than central differences of the
        whole objective's gradient (which cost two evaluations per parameter).

    Raises
    ------
    ConvergenceError
        When no start converges; the message quotes the optimiser.
    """
    k = len(starts[0])
    centres = np.ones(k) if scales is None else np.asarray(scales, dtype=np.float64)
    if positive is not None:
        centres = np.where(positive, centres, 1.0)  # a real parameter's box is centred on 0
    box = _Box.around(centres)
    # one BLAS thread: the vectors here are short, and waking OpenBLAS's threads for every
    # L-BFGS-B step costs more than the work itself
    with threadpool_limits(limits=1, user_api="blas"):
        return _maximise(
            objective, starts, n_obs, has_gradient, penalizer, model, box, positive, information
        )


def _maximise(
    objective: Objective,
    starts: Sequence[FloatArray],
    n_obs: float,
    has_gradient: bool,
    penalizer: Penalty,
    model: str,
    box: _Box,
    positive: BoolArray | None,
    information: Callable[[FloatArray], FloatArray] | None,
) -> MLEResult:
    best: optimize.OptimizeResult | None = None
    messages = []
    evaluations = 0
    options = {"maxiter": 2000, "ftol": 1e-14, "gtol": 1e-9}
    for start in starts:
        start = np.asarray(start, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):  # log 0 = -inf, moved onto the box
            logs = np.log(start)
        theta0 = np.clip(logs if positive is None else np.where(positive, logs, start),
                         box.lower, box.upper)  # fmt: skip
        if has_gradient:
            found = optimize.minimize(
                _scaled(objective, n_obs, penalizer, positive), theta0, jac=True,
                method="L-BFGS-B", bounds=box.bounds(), options=options,
            )  # fmt: skip
        else:
            found = optimize.minimize(
                _scaled_value(objective, n_obs, penalizer, positive), theta0, method="L-BFGS-B",
                bounds=box.bounds(), options=options,
            )  # fmt: skip
        evaluations += int(found.nfev)
        messages.append(str(found.message))
        is_usable = _has_converged(found, box)
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
    params = _natural(best.x, positive)
    if information is None:
        observed = _information(objective, best.x, penalizer, has_gradient, positive)
    else:
        observed = information(best.x)
    cov_theta = _inverse(observed)
    log_likelihood = float(objective(params)[0])
    slope = _slope(params, positive)
    return MLEResult(
        params=params,
        # delta method: the covariance of theta carried to the natural scale
        covariance=cov_theta * np.outer(slope, slope),
        log_likelihood=log_likelihood,
        converged=True,
        n_evaluations=evaluations,
        message=str(best.message),
        edges=_edges(best.x, box, cov_theta),
    )
