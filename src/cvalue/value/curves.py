"""Each purchase model's curves, as valuation derives them today from the model's parameters.

For every model family (BG/NBD and MBG/NBD, Pareto/NBD, BG/BB, and the contractual sBG and BdW):
the state of each customer now (``_state``; ``_new_state`` for a customer just acquired), the
survival ``S`` and the cumulative purchases ``C`` per distinct key and time (``_survival``,
``_cumulative``; the formulas are in :mod:`cvalue.value`'s docstring) and the per-period flows
over a grid (``_flows``); also the Gamma-Gamma spend terms, the models given per segment or
cohort, the default period, and a copy of a model with other parameters. This is the one module
of the package that imports the concrete model classes and the private kernel
``expected_while_alive``; the others reach a model's curves and parameters through the helpers
here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.special import betaln

from cvalue.errors import DataQualityError, NotFittedError, SchemaError, UndefinedExpectationError
from cvalue.models import BetaGeo, BetaGeoBetaBinom, ModifiedBetaGeo, ParetoNBD
from cvalue.models._base import Model
from cvalue.models._special import expected_while_alive
from cvalue.models.shifted_beta_geo import ContractualModel
from cvalue.units import Duration, TimeUnit
from cvalue.value.inputs import FloatArray, IntpArray, _column, _first
from cvalue.value.periods import _WHOLE, _Grid, _is_whole

__all__: list[str] = []


PurchaseModels: TypeAlias = "Model | Mapping[str, Model]"
_Kind = Literal["beta_geo", "pareto", "bgbb", "contract"]
_CHEBYSHEV_FROM = 256  # BG/NBD tables beyond this many cells per distinct x are interpolated
_CHEBYSHEV_MIN_DEGREE, _CHEBYSHEV_MAX_DEGREE = 32, 512
_CHEBYSHEV_TOLERANCE = 1e-14  # relative size of the last coefficients of a settled curve
_MODEL_COLUMNS: dict[_Kind, tuple[str, ...]] = {
    "beta_geo": ("frequency", "recency", "T"),
    "pareto": ("frequency", "recency", "T"),
    "bgbb": ("frequency", "recency", "n_periods"),
    "contract": ("duration", "is_censored"),
}


# --- models: the state of each customer now, and what follows from it ----------------------------


def _kind(model: object) -> _Kind:
    if isinstance(model, BetaGeo | ModifiedBetaGeo):
        kind: _Kind = "beta_geo"
    elif isinstance(model, ParetoNBD):
        kind = "pareto"
    elif isinstance(model, BetaGeoBetaBinom):
        kind = "bgbb"
    elif isinstance(model, ContractualModel):
        kind = "contract"
    else:
        raise SchemaError(
            "purchases must be a fitted BetaGeo, ModifiedBetaGeo, ParetoNBD, BetaGeoBetaBinom, "
            f"ShiftedBetaGeo or BetaDiscreteWeibull, got {type(model).__name__}"
        )
    if not hasattr(model, "params_"):
        raise NotFittedError(
            f"this {type(model).__name__} is not fitted yet; call .fit(data) first"
        )
    return kind


def _unit(model: Model) -> TimeUnit:
    if model.unit_ is None:
        raise SchemaError(
            f"this {type(model).__name__} does not know its data's time unit, so horizons and "
            "rates cannot be converted; fit it with unit='week' (or on a cvalue.rfm_summary)"
        )
    return model.unit_


def _params(model: Model) -> FloatArray:
    return np.asarray(model.params_.to_numpy(), dtype=np.float64)


def _dropout_at_start(model: Model) -> float:
    """``s`` of the BG/NBD family: 1 when dropout can also happen at time 0 (MBG/NBD)."""
    return 1.0 if isinstance(model, ModifiedBetaGeo) else 0.0


def _distinct(*columns: FloatArray) -> tuple[IntpArray, tuple[FloatArray, ...]]:
    """Codes of the distinct rows of ``columns`` and each distinct row's values."""
    key = np.zeros(len(columns[0]), dtype=np.int64)
    for column in columns:
        codes, uniques = pd.factorize(column)
        key = key * len(uniques) + codes
    group, distinct = pd.factorize(key)
    values = []
    for column in columns:
        found = np.empty(len(distinct))
        found[group] = column
        values.append(found)
    return group.astype(np.intp), tuple(values)


@dataclass(frozen=True, slots=True)
class _State:
    """Customers now: P(alive) and a purchase scale per row, and the distinct keys of the tables.

    Row ``i`` expects ``purchase_scale[i] * C(keys[group[i]], t)`` purchases by ``t`` from now and
    is alive at ``t`` with probability ``alive_scale[i] * S(keys[group[i]], t)``: the functions
    ``C`` and ``S`` (:func:`_cumulative`, :func:`_survival`) are computed once per distinct key
    (an ``(x, T)`` pair, an age ``T``, a length ``n``, a tenure) and broadcast.
    """

    kind: _Kind
    group: IntpArray
    purchase_scale: FloatArray
    alive_scale: FloatArray
    keys: tuple[FloatArray, ...]


def _check_contracts(frame: pd.DataFrame) -> tuple[FloatArray, FloatArray]:
    tenure, is_active = _column(frame, "duration"), _column(frame, "is_censored")
    is_bad = (
        ~np.isfinite(tenure)
        | (tenure < 0)
        | (tenure != np.round(tenure))
        | ~np.isin(is_active, (0.0, 1.0))
    )
    if is_bad.any():
        raise DataQualityError(
            f"{int(is_bad.sum()):,} of {len(tenure):,} customers have a 'duration' that is not a "
            "whole number >= 0 or an 'is_censored' that is not 0 or 1 (e.g. customer "
            f"{_first(frame.index, is_bad)!r}); 'duration' counts the periods a customer "
            "has been active, 'is_censored' is 1 for customers still active and 0 for those lost"
        )
    return tenure, is_active


def _state(model: Model, frame: pd.DataFrame) -> _State:
    """Each customer's state given their history (P(alive) from the model's own ``p_alive``)."""
    kind = _kind(model)
    missing = [c for c in _MODEL_COLUMNS[kind] if c not in frame]
    if missing:
        raise SchemaError(
            f"{type(model).__name__} needs column(s) {missing}; the data has {list(frame.columns)}"
        )
    if kind == "contract":
        tenure, is_active = _check_contracts(frame)
        group, keys = _distinct(tenure)
        return _State(kind, group, is_active, is_active, keys)
    alive = model.p_alive(frame).to_numpy(dtype=np.float64)  # type: ignore[attr-defined]
    x = _column(frame, "frequency")
    if kind == "beta_geo":
        group, keys = _distinct(x, _column(frame, "T"))
        return _State(kind, group, alive, alive, keys)
    if kind == "pareto":
        r, alpha, _, _ = _params(model)
        age = _column(frame, "T")
        group, keys = _distinct(age)
        return _State(kind, group, alive * (r + x) / (alpha + age), alive, keys)
    alpha, beta, _, _ = _params(model)
    n = _column(frame, "n_periods")
    group, keys = _distinct(n)
    return _State(kind, group, alive * (alpha + x) / (alpha + beta + n), alive, keys)


def _new_state(model: Model) -> _State:
    """A customer right after acquisition (and after the first purchase).

    BG/NBD family: ``x = 0, T = 0``, alive with ``B(a, b + s) / B(a, b)`` (1 for the BG/NBD,
    ``b / (a + b)`` for the MBG/NBD). Pareto/NBD: ``x = 0, T = 0``, alive. BG/BB: ``n = 0``, alive
    at opportunity 1 with ``delta / (gamma + delta)``, buying with ``alpha / (alpha + beta)``
    (Fader, Hardie & Shang 2010, eq. 8's terms). Contracts: tenure 0, active.
    """
    kind = _kind(model)
    zero, one, first = np.zeros(1), np.ones(1), np.zeros(1, dtype=np.intp)
    if kind == "beta_geo":
        _, _, a, b = _params(model)
        survives = one * np.exp(betaln(a, b + _dropout_at_start(model)) - betaln(a, b))
        return _State(kind, first, survives, survives, (zero, zero))
    if kind == "pareto":
        r, alpha, _, _ = _params(model)
        return _State(kind, first, one * r / alpha, one, (zero,))
    if kind == "bgbb":
        alpha, beta, gamma, delta = _params(model)
        alive = one * delta / (gamma + delta)
        return _State(kind, first, alive * alpha / (alpha + beta), alive, (zero,))
    return _State(kind, first, one, one, (zero,))


def _beta_geo_exact(model: Model, x: FloatArray, tau: FloatArray) -> FloatArray:
    """The BG/NBD family's expectations over ``p ~ Beta(a, b + x + s)`` at ``tau = t/(alpha+T)``.

    Row 0: the expected purchases while alive ``W(r + x, b', a, z)`` (Fader, Hardie & Lee 2005,
    eq. 10's bracket; Batislam et al. 2007, eq. 8); row 1: the survival
    ``1 - a/(a + b') W(r + x, b', a + 1, z)``, with ``b' = b + x + s`` and ``z = tau / (1 + tau)``
    (module docstring). Both in one call, so that the series are summed together.
    """
    r, _, a, b = _params(model)
    shape_b = b + x + _dropout_at_start(model)
    z = tau / (1.0 + tau)
    both = expected_while_alive(
        np.concatenate([r + x, r + x]),
        np.concatenate([shape_b, shape_b]),
        np.concatenate([np.full(len(x), a), np.full(len(x), a + 1.0)]),
        np.concatenate([z, z]),
    ).reshape(2, len(x))
    both[1] = np.clip(1.0 - a / (a + shape_b) * both[1], 0.0, 1.0)
    return both


def _chebyshev_coefficients(values: FloatArray) -> FloatArray:
    """Chebyshev coefficients of each row, sampled at ``cos(j pi / n)``, ``j = 0 .. n`` (DCT-I)."""
    n = values.shape[1] - 1
    extended = np.concatenate([values, values[:, n - 1 : 0 : -1]], axis=1)
    coefficients = np.fft.rfft(extended, axis=1).real[:, : n + 1] / n
    coefficients[:, [0, n]] /= 2.0
    return np.asarray(coefficients, dtype=np.float64)


def _clenshaw(coefficients: FloatArray, t: FloatArray) -> FloatArray:
    """``sum_j c[i, j] T_j(t[i, k])`` for every row ``i`` and column ``k``."""
    twice = 2.0 * t
    after, last, scratch = np.zeros_like(t), np.zeros_like(t), np.empty_like(t)
    for j in range(coefficients.shape[1] - 1, 0, -1):
        np.multiply(twice, after, out=scratch)
        scratch -= last
        scratch += coefficients[:, j, None]
        after, last, scratch = scratch, after, last
    return np.asarray(coefficients[:, 0, None] + t * after - last, dtype=np.float64)


def _beta_geo_tables(model: Model, state: _State, times: FloatArray) -> FloatArray:
    """:func:`_beta_geo_exact` for every ``(x, T)`` key and time: ``(2, keys, times)``.

    For a given ``x`` both expectations are functions of ``tau = t / (alpha + T)`` alone,
    analytic in ``u = log(1 + tau)`` within ``|Im u| < pi`` (their singularities are at
    ``tau = -1/p``). So each curve is computed exactly at Chebyshev points of ``u`` and
    interpolated, its degree doubling until its last coefficients fall below
    ``_CHEBYSHEV_TOLERANCE`` of its largest; the curves that have not settled by
    ``_CHEBYSHEV_MAX_DEGREE`` are computed exactly at every point. Small tables are computed
    exactly throughout.
    """
    _, alpha, _, _ = _params(model)
    x, age = state.keys
    tau = times[None, :] / (alpha + age)[:, None]
    levels, level = np.unique(x, return_inverse=True)
    if tau.size <= _CHEBYSHEV_FROM * len(levels):
        every = np.broadcast_to(x[:, None], tau.shape).ravel()
        return _beta_geo_exact(model, every, tau.ravel()).reshape(2, *tau.shape)
    widest = np.zeros(len(levels))
    np.maximum.at(widest, level, np.log1p(tau.max(axis=1, initial=0.0)))
    coefficients, is_settled = _chebyshev_fit(model, levels, widest)
    point = 2.0 * np.log1p(tau) / np.where(widest > 0, widest, 1.0)[level][:, None] - 1.0
    found = np.stack([_clenshaw(coefficients[f][level], point) for f in range(2)])
    rows = np.flatnonzero(~is_settled[level])
    if len(rows):
        every = np.broadcast_to(x[rows, None], (len(rows), tau.shape[1])).ravel()
        exact = _beta_geo_exact(model, every, tau[rows].ravel())
        found[:, rows] = exact.reshape(2, len(rows), tau.shape[1])
    return found


def _chebyshev_fit(
    model: Model, levels: FloatArray, widest: FloatArray
) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
    """Coefficients ``(2, levels, degree + 1)`` in ``u in [0, widest]``, and which settled."""
    degree = _CHEBYSHEV_MIN_DEGREE
    while True:
        nodes = widest[:, None] * (1.0 + np.cos(np.arange(degree + 1) * np.pi / degree)) / 2.0
        values = _beta_geo_exact(model, np.repeat(levels, degree + 1), np.expm1(nodes).ravel())
        coefficients = _chebyshev_coefficients(values.reshape(-1, degree + 1))
        scale = np.max(np.abs(coefficients), axis=1)
        tail = np.max(np.abs(coefficients[:, -3:]), axis=1)
        is_settled = (tail <= _CHEBYSHEV_TOLERANCE * scale).reshape(2, -1).all(axis=0)
        if is_settled.all() or degree >= _CHEBYSHEV_MAX_DEGREE:
            return coefficients.reshape(2, len(levels), degree + 1), is_settled
        degree *= 2


def _survival(model: Model, state: _State, times: FloatArray) -> FloatArray:
    """``S(key, t)``: P(alive at ``t`` from now) over ``alive_scale``, per key and time.

    - BG/NBD family: ``1 - a / (a + b') W(r + x, b', a + 1, t / (alpha + T + t))``,
      ``b' = b + x + s`` (module docstring);
    - Pareto/NBD: ``((beta + T) / (beta + T + t))^s``;
    - BG/BB (``t`` whole opportunities ahead):
      ``B(gamma, delta + n + t) / B(gamma, delta + n + 1)``;
    - contracts (``t`` whole periods ahead): ``S(n + t) / S(n)``.
    """
    if state.kind == "beta_geo":
        return np.asarray(_beta_geo_tables(model, state, times)[1], dtype=np.float64)
    if state.kind == "pareto":
        _, _, s, beta = _params(model)
        base = (beta + state.keys[0])[:, None]
        return np.asarray(np.exp(-s * np.log1p(times[None, :] / base)), dtype=np.float64)
    if state.kind == "bgbb":
        _, _, gamma, delta = _params(model)
        shifted = (delta + state.keys[0])[:, None]
        return np.asarray(
            np.exp(betaln(gamma, shifted + times[None, :]) - betaln(gamma, shifted + 1.0)),
            dtype=np.float64,
        )
    tenure = state.keys[0]
    survival = model.survival  # type: ignore[attr-defined]
    now = np.asarray(survival(tenure), dtype=np.float64)[:, None]
    ahead = tenure[:, None] + times[None, :]
    later = np.asarray(survival(ahead.ravel()), dtype=np.float64).reshape(ahead.shape)
    return np.divide(later, now, out=np.zeros_like(later), where=now > 0)


def _spread(exponent: float, log_ratio: FloatArray) -> FloatArray:
    """``(1 - exp(-e y)) / e``, and ``y`` at ``e = 0`` (the Pareto/NBD's ``s = 1`` limit)."""
    if exponent == 0.0:
        return log_ratio
    return np.asarray(-np.expm1(-exponent * log_ratio) / exponent, dtype=np.float64)


def _cumulative(model: Model, state: _State, times: FloatArray) -> FloatArray:
    """``C(key, t)``: expected purchases by ``t`` from now over ``purchase_scale``.

    - BG/NBD family: ``W(r + x, b + x + s, a, t / (alpha + T + t))``, Fader, Hardie & Lee (2005)
      eq. (10) without P(alive) (Batislam et al. 2007, eq. 8, for the MBG/NBD);
    - Pareto/NBD: ``(beta + T) [1 - ((beta + T) / (beta + T + t))^(s - 1)] / (s - 1)``, Fader,
      Hardie & Lee (2005b) eq. (41) without ``P(alive) (r + x) / (alpha + T)``;
    - BG/BB and contracts: the sum of the survival over opportunities (payments) ``1 .. t``
      (``0 .. t - 1`` for contracts, paid at each period's start).
    """
    if state.kind == "beta_geo":
        return np.asarray(_beta_geo_tables(model, state, times)[0], dtype=np.float64)
    if state.kind == "pareto":
        _, _, s, beta = _params(model)
        base = (beta + state.keys[0])[:, None]
        return np.asarray(base * _spread(s - 1.0, np.log1p(times[None, :] / base)), np.float64)
    first = 1.0 if state.kind == "bgbb" else 0.0
    n_periods = round(float(times.max())) if len(times) else 0
    steps = _survival(model, state, np.arange(first, first + n_periods))
    totals = np.concatenate([np.zeros((len(steps), 1)), np.cumsum(steps, axis=1)], axis=1)
    return np.asarray(totals[:, np.round(times).astype(np.intp)], dtype=np.float64)


@dataclass(frozen=True, slots=True)
class _Flows:
    """Per-period tables: expected purchases and P(on the books), per distinct key of a state."""

    state: _State
    purchases: FloatArray
    alive: FloatArray
    pays_at_start: bool


def _model_times(model: Model, grid: _Grid) -> FloatArray:
    """The grid's period ends in the model's unit, checked for discrete-time models."""
    unit = _unit(model)
    ends = grid.in_unit(grid.ends, unit)
    if _kind(model) in ("bgbb", "contract"):
        step = grid.period.to(unit)
        if not math.isclose(step, 1.0, rel_tol=_WHOLE) or (len(ends) and not _is_whole(ends[-1])):
            raise SchemaError(
                f"a {type(model).__name__} counts whole periods of 1 {unit.value}: the period "
                f"must be '1 {unit.value}' and the horizon a whole number of them; got period "
                f"{grid.period} and a horizon of {ends[-1] if len(ends) else 0:g} {unit.value}s"
            )
        ends = np.round(ends)
    return ends


def _flows(model: Model, state: _State, grid: _Grid) -> _Flows:
    """Purchases in each period (differences of :func:`_cumulative`) and P(on the books)."""
    ends = _model_times(model, grid)
    starts = np.concatenate([[0.0], ends[:-1]])
    if state.kind == "beta_geo":  # both curves at once; S(0) = 1 starts the survival
        cumulative, survival = _beta_geo_tables(model, state, ends)
        purchases = np.maximum(np.diff(cumulative, axis=1, prepend=0.0), 0.0)
        alive = np.concatenate([np.ones((len(survival), 1)), survival[:, :-1]], axis=1)
        return _Flows(state, purchases, alive, pays_at_start=False)
    purchases = np.maximum(np.diff(_cumulative(model, state, ends), axis=1, prepend=0.0), 0.0)
    if state.kind == "bgbb":
        alive = _survival(model, state, ends)  # alive at opportunity n + k
    else:
        alive = _survival(model, state, starts)  # alive at the start of period k
    return _Flows(state, purchases, alive, pays_at_start=state.kind == "contract")


# --- models per segment, default period, other parameters ----------------------------------------


def _model_map(value: PurchaseModels) -> Mapping[str, Model] | None:
    """The ``{label: model}`` of per-segment models (or of a per-cohort contractual fit)."""
    if isinstance(value, ContractualModel) and getattr(value, "cohorts_", None):
        return value.cohorts_
    return value if isinstance(value, Mapping) else None


def _default_period(models: Sequence[Model]) -> Duration:
    """One opportunity or contract period for discrete-time models, else a month."""
    for model in models:
        if _kind(model) in ("bgbb", "contract"):
            return Duration(1.0, _unit(model))
    return Duration(1.0, TimeUnit.MONTH)


def _with_params(model: Model, params: FloatArray) -> Model:
    """A copy of ``model`` with other parameters: the model contract's ``with_params``."""
    return model.with_params(params)


# --- spend ---------------------------------------------------------------------------------------


def _spend_terms(params: FloatArray, x: FloatArray) -> tuple[FloatArray, FloatArray]:
    """``u, v`` with the Gamma-Gamma expected spend ``u + v * monetary_value``.

    Fader & Hardie (2013), eq. (5): ``p (gamma + x zbar) / (p x + q - 1)``, so
    ``u = p gamma / (p x + q - 1)`` and ``v = p x / (p x + q - 1)`` (0 without repeat purchases).
    """
    p, q, gamma = params
    denominator = p * x + q - 1.0
    if np.any(denominator <= 0):
        raise UndefinedExpectationError(
            f"the Gamma-Gamma expected spend is infinite at q = {q:.4g} for "
            f"{int(np.sum(denominator <= 0)):,} pattern(s) with p*frequency + q <= 1; refit the "
            "spend model with more repeat buyers, or pass the spend per customer"
        )
    return np.asarray(p * gamma / denominator), np.asarray(p * x / denominator)
