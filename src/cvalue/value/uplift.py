"""What more retention is worth: customer equity when retention rises by some points.

:func:`retention_uplift` takes a valuation (:func:`~cvalue.value.clv`) and answers, per group
and for the whole base, at each horizon: the customer equity today (exactly
:func:`~cvalue.value.customer_equity`'s), the equity if the model-implied retention rose by
``points`` percentage points, and the change, absolute and in percent, each with an interval
from the uncertainty of the models' parameters.

Retention, as the model implies it
----------------------------------
The retention of a group over ``retention_over`` (a year by default) is the expected share of its
customers alive now who are still alive then:

``R = sum_i P(alive at now + 1y | history_i) / sum_i P(alive now | history_i)``,

which is ``1 - churn_hazard``. "Now" is the end of each customer's observation: ``T``
(continuous-time models), the last opportunity observed ``n`` (BG/BB), the tenure of an active
contract (sBG, BdW: the share of active contracts still active a year later). For discrete-time
models the span is a whole number of the model's periods.

Retention up by ``k`` points: one dropout factor per group
----------------------------------------------------------
From now on, each customer's dropout hazard is multiplied by a factor ``kappa`` (the same for
every customer of a group), and ``kappa`` is solved so that ``R(kappa) = R(1) + k / 100``
(Brent's method on ``log kappa``; the secant method from the estimates' factor at nearby
parameters). Each customer's P(alive) now, purchase process and spend are the model's; only
their future dropout changes. Per model family (given alive now, with the posterior of each
model; ``t`` from now):

- **BG/NBD, MBG/NBD** (Fader, Hardie & Lee 2005; Batislam et al. 2007): ``lambda ~ Gamma(r + x,
  alpha + T)``, ``p ~ Beta(a, b + x + s)`` (``s = 1`` for the MBG/NBD), and the customer drops
  out at rate ``lambda p`` (right after a purchase, with probability ``p``), so
  ``P(alive at T + t) = E[(1 + p tau)^-(r + x)]`` with ``tau = t / (alpha + T)``. With
  ``p -> kappa p`` (rate ``kappa lambda p``) both expectations are the model's at ``kappa t``:
  ``S_kappa(t) = S(kappa t)`` and purchases ``C_kappa(t) = C(kappa t) / kappa``, where
  ``C(t) = E[(1 - (1 + p tau)^-(r + x)) / p]`` is FHL's eq. (10) bracket. For ``kappa <= 1``
  this is the BG/NBD with every customer's ``p`` replaced by ``kappa p``.
- **Pareto/NBD** (Schmittlein, Morrison & Colombo 1987): ``mu ~ Gamma(s, beta + T)``, and
  ``mu -> kappa mu`` gives ``kappa mu ~ Gamma(s, (beta + T) / kappa)``: the model's own
  formulas with ``beta + T`` replaced by ``(beta + T) / kappa``, ``P(alive at T + t) =
  P(alive at T) ((beta + T) / (beta + T + kappa t))^s`` and Fader, Hardie & Lee (2005b)
  eq. (41) for the purchases. This is how a time-invariant covariate enters the lifetime
  process (``beta_i = beta exp(-gamma' z)``, Fader & Hardie 2007), for the future only.
- **BG/BB** (Fader, Hardie & Shang 2010): ``theta ~ Beta(gamma, delta + n)`` given alive at
  ``n``, and each opportunity's survival ``1 - theta -> (1 - theta)^kappa``, so that
  ``P(alive at n + t | alive at n) = B(gamma, delta + n + kappa t) / B(gamma, delta + n)``.
- **sBG, BdW** (Fader & Hardie 2007; Fader et al. 2018): a customer survives ``t`` periods with
  ``(1 - theta)^(t^c)`` (``c = 1``: the sBG), ``theta ~ Beta(alpha, beta + n^c)`` given ``n``
  periods survived, and the hazard from now on times ``kappa`` gives
  ``B(alpha, beta + n^c + kappa ((n + t)^c - n^c)) / B(alpha, beta + n^c)``.

Why these forms. In every family the factor multiplies a dropout hazard (a proportional-hazards
shift, the way covariates act on lifetimes), so one definition covers continuous and discrete
time. In discrete time ``1 - theta -> (1 - theta)^kappa`` is a customer's latent continuous
hazard ``-log(1 - theta)`` times ``kappa``: to first order in ``theta`` it is ``theta -> kappa
theta`` (the churn probability scaled), but it stays a probability for every ``kappa > 0``
(``kappa theta`` exceeds 1 for ``kappa > 1``), keeps each customer a geometric (sBG) or discrete
Weibull (BdW) customer, and keeps the models' closed forms: the beta functions at a scaled
clock. The mixing distribution of the new churn probabilities is no longer exactly a beta; the
values above are exact for it all the same. The curves are
:meth:`cvalue.models.Curves.with_dropout_scaled`.

What is assumed
---------------
- The uplift is proportional: a group's customers all have their dropout hazard cut by the same
  factor, so riskier customers gain more points than safe ones; the group's retention rises by
  exactly ``points``. With ``scope="base"`` one factor serves the whole base (its retention
  rises by ``points``; the groups' by more or less). With ``scope="group"`` every group rises by
  ``points``, and so does the base (its retention is the groups' average weighted by their
  customers alive now, which the uplift does not change).
- It acts from now on, on the customers valued; customers still to be acquired are not in it.
- Purchase rates, spend, margins, costs and discount rates stay as they are: customers kept
  longer buy more and also cost more to serve, so where the cost of a period on the books
  exceeds its margin more retention lowers equity.
- ``points < 0`` is allowed: retention falling by that many points (what a loss would cost).
  The new retention must stay strictly between 0 and 100 %. For the BG/NBD family, a factor
  above 1 can make ``kappa p`` exceed 1: it then reads as a dropout rate ``kappa lambda p`` in
  continuous time, no longer a coin tossed at each purchase.
- The (M)BG/CNBD-k is refused: with Erlang-k gaps P(alive) is no function of a scaled clock.

Intervals
---------
The baseline and the raised equity are computed at the same parameters (the delta method's
moves, the same joint draws, or the same bootstrap replicates as
:func:`~cvalue.value.customer_equity`'s ``method``), and ``kappa`` is solved again at each, so
that every draw raises retention by ``points`` from its own baseline: the change's interval is
the paired one. The percent change's interval is the delta method's on the ratio (linearised at
the estimates) or the draws' percentiles of it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.optimize import brentq

from cvalue.errors import SchemaError
from cvalue.models import Curves, Model, SpendModel, joint_draws
from cvalue.units import Duration, TimeUnit
from cvalue.value.clv import (
    CustomerValue,
    _Block,
    _group_codes,
    _Recipe,
    _rows_of,
)
from cvalue.value.curves import _curves, _survival_after
from cvalue.value.equity import (
    EquityMethod,
    _bootstrap_draws,
    _by_group,
    _cell_flows,
    _cell_keys,
    _cell_values,
    _CellFlows,
    _Cells,
    _cells,
    _check_interval_options,
    _combinations,
    _customer_amounts,
    _EquityProblem,
    _Fitted,
    _moves,
    _normal_interval,
    _params,
    _stand_in,
    _variance,
)
from cvalue.value.inputs import FloatArray, IntpArray
from cvalue.value.periods import _Grid, _grid, _horizon

__all__ = ["RetentionUplift", "retention_uplift"]

UpliftScope: TypeAlias = Literal["group", "base"]
_NOW = Duration(0.0, TimeUnit.DAY)
_LOG_FACTOR_LIMIT = 64.0  # the dropout factor is sought within exp(-64) .. exp(64)
_LOG_FACTOR_TOLERANCE = 1e-14  # the root finders stop within this of log(kappa)
_SECANT_STEP = 1e-4  # the secant method's first step in log(kappa), from a nearby factor
_SECANT_STEPS = 30
_FIX = "pass level=None for the change without an interval"
_AT_DRAW = (
    " at the parameters of one of the interval's draws (retention that close to 100 % leaves "
    "no room there: give fewer points, or method='delta')"
)


@dataclass(frozen=True, slots=True)
class RetentionUplift:
    """Customer equity today and with retention raised by ``points`` (:func:`retention_uplift`).

    Attributes
    ----------
    by_group
        Indexed by (group, horizon): ``customers``; ``retention`` (the model-implied share of the
        customers alive now still alive after ``retention_over``) and ``raised_retention``;
        ``dropout_factor``, what the group's dropout hazards are multiplied by; ``equity`` (as
        :func:`~cvalue.value.customer_equity` gives it) and ``raised_equity`` with their
        intervals; ``change`` (raised minus today's) with its standard error and interval;
        ``change_percent``, the change in percent of today's equity (of its absolute value),
        with its interval.
    total
        Indexed by horizon: the same for the whole base (without ``dropout_factor``).
    points
        The percentage points retention rises by (falls by, when negative).
    retention_over
        The span retention is measured over.
    scope
        ``"group"``: every group's retention rises by ``points``; ``"base"``: the whole base's,
        with one dropout factor.
    level, method
        The intervals' confidence level (``None``: none) and method.
    """

    by_group: pd.DataFrame
    total: pd.DataFrame
    points: float
    retention_over: Duration
    scope: UpliftScope
    level: float | None
    method: EquityMethod


# --- the customers, by block and target ----------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class _Part:
    """The customers of one block (purchase and spend model) whose retention rises together."""

    purchases: Model
    spend: SpendModel | None
    cells: _Cells
    counts: FloatArray  # customers per cell
    target: int  # the group (or the base) whose retention this part's factor serves


def _part(
    block: _Block, rows: IntpArray, recipe: _Recipe, groups: IntpArray, rates: IntpArray,
    target: int,
) -> _Part:  # fmt: skip
    """A part's cells (as customer equity's ``_cells``) and its customers per cell."""
    sub_block = _Block(block.purchases, block.spend, rows)
    frame = _rows_of(recipe.data, rows)
    keys = _cell_keys(frame, sub_block, groups, rates)
    n_cells = len(keys.pattern)
    sums = (
        np.bincount(keys.cell_of, weights=amount, minlength=n_cells).astype(np.float64)
        for amount in _customer_amounts(frame, sub_block, recipe)
    )
    cells = _Cells(keys.patterns, keys.pattern, keys.rate, keys.group, *sums)
    counts = np.bincount(keys.cell_of, minlength=n_cells).astype(np.float64)
    return _Part(block.purchases, block.spend, cells, counts, target)


def _parts(
    values: CustomerValue, groups: IntpArray, targets: IntpArray, rates: IntpArray
) -> tuple[_Part, ...]:
    """Every (block, target) with customers, in block order then target order."""
    recipe = values._recipe
    found = []
    for block in recipe.blocks:
        block_targets = targets[block.rows]
        for target in np.unique(block_targets):
            rows = block.rows[block_targets == target].astype(np.intp)
            found.append(_part(block, rows, recipe, groups, rates, int(target)))
    return tuple(found)


# --- one parameter set: curves, retention, dropout factors ---------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class _PartState:
    """A part at one parameter set: its model, curves, customers alive now per curve key."""

    purchases: Model
    curves: Curves
    weights: FloatArray  # customers x P(alive) scale, summed per curve key
    alive_now: float  # the part's expected customers alive now

    def alive_after(self, span: Duration, factor: float) -> float:
        """The part's expected customers alive after ``span``, dropout hazards times ``factor``."""
        scaled = self.curves.with_dropout_scaled(factor)
        return float(self.weights @ _survival_after(self.purchases, scaled, span))


def _part_state(part: _Part, purchases: Model) -> _PartState:
    curves = _curves(purchases, part.cells.patterns)
    keys = curves.group[part.cells.pattern]
    mass = part.counts * curves.alive_scale[part.cells.pattern]
    weights = np.bincount(keys, weights=mass, minlength=curves.n_keys).astype(np.float64)
    return _PartState(purchases, curves, weights, float(weights @ _survival_after(
        purchases, curves, _NOW)))  # fmt: skip


def _dropout_factor(
    states: Sequence[_PartState], span: Duration, points: float, label: str, near: float | None
) -> float:
    """The factor raising the retention of ``states``' customers by ``points`` (1 for 0 points).

    The customers alive after ``span`` fall as the factor rises: the secant method on its log
    from ``near`` (the factor at nearby parameters), else Brent's method in a bracket.
    """
    now = sum(state.alive_now for state in states)
    if points == 0.0 or now <= 0.0:
        return 1.0
    retention = sum(state.alive_after(span, 1.0) for state in states) / now
    target = retention + points / 100.0
    if not 0.0 < target < 1.0:
        raise SchemaError(
            f"points={points:g} would take the retention of {label} over {span} from "
            f"{retention:.2%} to {target:.2%}{'' if near is None else _AT_DRAW}; it must stay "
            f"above 0 % and below 100 %: give points between {-100.0 * retention:.2f} and "
            f"{100.0 * (1.0 - retention):.2f}"
        )

    def excess(log_factor: float) -> float:
        factor = math.exp(log_factor)
        return sum(s.alive_after(span, factor) for s in states) - target * now

    found = None if near is None else _secant(excess, math.log(near))
    if found is None:
        found = _bracketed(excess, points > 0.0, f"{label} over {span} to {target:.2%}")
    return math.exp(found)


def _secant(excess: Callable[[float], float], start: float) -> float | None:
    """The root of ``excess`` by the secant method from ``start``; None if it does not settle."""
    before, now = start, start + _SECANT_STEP
    at_before, at_now = excess(before), excess(now)
    for _ in range(_SECANT_STEPS):
        if at_now == 0.0:
            return now
        if at_now == at_before:
            return None
        after = now - at_now * (now - before) / (at_now - at_before)
        if not abs(after) < _LOG_FACTOR_LIMIT:
            return None
        if abs(after - now) <= _LOG_FACTOR_TOLERANCE:
            return after
        before, at_before, now, at_now = now, at_now, after, excess(after)
    return None


def _bracketed(excess: Callable[[float], float], is_rise: bool, what: str) -> float:
    """The root of the decreasing ``excess``, bracketed from 0 (a rise needs a factor < 1)."""
    step = -1.0 if is_rise else 1.0
    while (excess(step) < 0.0) == is_rise:
        if abs(step) >= _LOG_FACTOR_LIMIT:
            raise SchemaError(
                f"the model cannot take the retention of {what}: even a dropout factor of "
                f"{math.exp(step):.3g} does not reach it"
            )
        step *= 2.0
    low, high = sorted((step, 0.0))
    return float(brentq(excess, low, high, xtol=_LOG_FACTOR_TOLERANCE))


# --- the problem: today's and the raised equity at any parameters --------------------------------


def _part_flows(
    part: _Part, purchases: Model, curves: Curves, grids: Sequence[_Grid], rates: FloatArray
) -> _CellFlows:
    """The part's cells' discounted flows from ``curves`` (customer equity's, curves given)."""
    return _cell_flows(part.cells, purchases, grids, rates, curves=curves)


@dataclass(frozen=True, slots=True, eq=False)
class _Raised:
    """The parts at one parameter set: their states, dropout factors and raised flows."""

    states: tuple[_PartState, ...]
    factors: FloatArray  # per target
    flows: tuple[_CellFlows, ...]  # per part


@dataclass(frozen=True, slots=True, eq=False)
class _UpliftProblem:
    """Customer equity today and raised, as functions of every model's parameters.

    ``base`` is customer equity's own problem (today's equity); the raised equity is valued on
    parts (a block's customers whose retention rises together). What the estimates give is
    kept: moving a spend model recomputes no flows, and moving a purchase model only the parts
    of the targets it serves, each factor solved again from the estimate's.
    """

    base: _EquityProblem
    parts: tuple[_Part, ...]
    target_labels: tuple[str, ...]
    span: Duration
    points: float
    group_target: IntpArray  # the target of each group
    _estimate: list[_Raised] = field(default_factory=list)  # computed once, when first asked
    _estimate_values: list[list[FloatArray]] = field(default_factory=list)

    @property
    def estimate(self) -> _Raised:
        """The raised flows at the estimates."""
        if not self._estimate:
            self._estimate.append(self._raised({}, None))
        return self._estimate[0]

    def _raised(self, replaced: Mapping[int, _Fitted], known: _Raised | None) -> _Raised:
        """The parts at the ``replaced`` models; what is not moved is taken from ``known``."""
        states = tuple(
            known.states[i]
            if known is not None and id(part.purchases) not in replaced
            else _part_state(part, _stand_in(part.purchases, replaced))
            for i, part in enumerate(self.parts)
        )
        factors = np.ones(len(self.target_labels))
        is_kept = [known is not None and known.states[i] is state for i, state in enumerate(states)]
        for target, label in enumerate(self.target_labels):
            members = [i for i, part in enumerate(self.parts) if part.target == target]
            near = None if known is None else float(known.factors[target])
            if near is not None and all(is_kept[i] for i in members):
                factors[target] = near
            else:
                chosen = [states[i] for i in members]
                factors[target] = _dropout_factor(chosen, self.span, self.points, label, near)
        flows = []
        for i, (part, state) in enumerate(zip(self.parts, states, strict=True)):
            if (
                known is not None
                and is_kept[i]
                and factors[part.target] == known.factors[part.target]
            ):
                flows.append(known.flows[i])
            else:
                raised = state.curves.with_dropout_scaled(float(factors[part.target]))
                flows.append(self._flows(part, state.purchases, raised))
        return _Raised(states, factors, tuple(flows))

    def _flows(self, part: _Part, purchases: Model, curves: Curves) -> _CellFlows:
        return _part_flows(part, purchases, curves, self.base.grids, self.base.rates)

    def _values(self, raised: _Raised, replaced: Mapping[int, _Fitted]) -> list[FloatArray]:
        """Each part's raised cell values (horizons x cells)."""
        return [
            _cell_values(
                part.cells, flows, None if part.spend is None else _stand_in(part.spend, replaced)
            )
            for part, flows in zip(self.parts, raised.flows, strict=True)
        ]

    def _summed(self, values: Sequence[FloatArray]) -> FloatArray:
        """Part cell values summed per (group, horizon)."""
        n_groups = self.base.n_groups
        total = np.zeros((n_groups, len(self.base.grids)))
        for part, value in zip(self.parts, values, strict=True):
            total += _by_group(value, part.cells.group, n_groups)
        return np.asarray(total.ravel(), dtype=np.float64)

    def raised(self, replaced: Mapping[int, _Fitted]) -> FloatArray:
        """The raised equity per (group, horizon) at the ``replaced`` models."""
        return self._summed(self._values(self._raised(replaced, self.estimate), replaced))

    def raised_change(self, replaced: Mapping[int, _Fitted]) -> FloatArray:
        """How the raised equity moves from the estimates' when models are ``replaced``.

        Cell by cell, as customer equity's changes (its forward differences need the digits).
        """
        if not self._estimate_values:
            self._estimate_values.append(self._values(self.estimate, {}))
        moved = self._values(self._raised(replaced, self.estimate), replaced)
        kept = self._estimate_values[0]
        return self._summed([m - k for m, k in zip(moved, kept, strict=True)])

    def change(self) -> FloatArray:
        """The raised equity minus today's at the estimates, per (group, horizon), cell by cell.

        Today's flows are taken on the parts' own curves, so a factor of 1 changes nothing.
        """
        today = [
            _cell_values(part.cells, self._flows(part, state.purchases, state.curves), part.spend)
            for part, state in zip(self.parts, self.estimate.states, strict=True)
        ]
        raised = self._values(self.estimate, {})
        return self._summed([r - t for r, t in zip(raised, today, strict=True)])


# --- intervals -----------------------------------------------------------------------------------

_QUANTITIES = ("equity", "raised_equity", "change", "change_percent")


def _percent(change: FloatArray, equity: FloatArray) -> FloatArray:
    """``100 change / |equity|``; NaN where today's equity is 0."""
    with np.errstate(divide="ignore", invalid="ignore"):  # an equity of 0 has no percent change
        found = np.where(equity != 0.0, 100.0 * change / np.abs(equity), np.nan)
    return np.asarray(found, dtype=np.float64)


def _delta_errors(
    problem: _UpliftProblem, combine: FloatArray, estimates: dict[str, FloatArray]
) -> dict[str, FloatArray]:
    """Delta-method standard errors of every quantity (customer equity's, for ``equity``).

    Each parameter of each model is moved by customer equity's relative step; today's and the
    raised equity move with it (the dropout factors solved again), so the change's error is the
    paired one; the percent change's Jacobian is the ratio's at the estimates.
    """
    equity = estimates["equity"]
    with np.errstate(divide="ignore", invalid="ignore"):  # an equity of 0 has no percent change
        ratio, scale = estimates["change"] / equity, 100.0 / np.abs(equity)
    variance = {name: np.zeros(combine.shape[0]) for name in _QUANTITIES}
    for model in problem.base.models:
        params = _params(model)
        on_equity = np.empty((combine.shape[0], len(params)))
        on_raised = np.empty_like(on_equity)
        for j, moved, step in _moves(params):
            replaced = {id(model): model.with_params(moved)}
            on_equity[:, j] = combine @ problem.base.change(replaced) / step
            on_raised[:, j] = combine @ problem.raised_change(replaced) / step
        on_change = on_raised - on_equity
        on_percent = scale[:, None] * (on_change - ratio[:, None] * on_equity)
        for name, jacobian in zip(
            _QUANTITIES, (on_equity, on_raised, on_change, on_percent), strict=True
        ):
            variance[name] += _variance(model, jacobian)
    return {name: np.sqrt(np.maximum(v, 0.0)) for name, v in variance.items()}


def _drawn(
    problem: _UpliftProblem, combine: FloatArray, n_draws: int, rng: np.random.Generator,
    method: EquityMethod,
) -> dict[str, FloatArray]:  # fmt: skip
    """Every quantity at each parameter draw or bootstrap replicate (draws x rows)."""
    models = problem.base.models
    draws = (
        joint_draws(models, n_draws, rng, fix=_FIX)
        if method == "draws"
        else _bootstrap_draws(models, n_draws, rng, fix=_FIX + ", or method='draws'")
    )
    found = [(problem.base.evaluate(d), problem.raised(d)) for d in draws]
    equity = np.asarray([today for today, _ in found], dtype=np.float64) @ combine.T
    raised = np.asarray([raised for _, raised in found], dtype=np.float64) @ combine.T
    return {
        "equity": equity,
        "raised_equity": raised,
        "change": raised - equity,
        "change_percent": _percent(raised - equity, equity),
    }


@dataclass(frozen=True, slots=True)
class _Found:
    """Per quantity, the estimates and the interval's bounds; the change's standard error."""

    estimate: dict[str, FloatArray]
    lower: dict[str, FloatArray]
    upper: dict[str, FloatArray]
    change_std_error: FloatArray


def _intervals(
    problem: _UpliftProblem,
    level: float | None,
    method: EquityMethod,
    n_draws: int,
    rng: np.random.Generator | None,
) -> _Found:
    """Every quantity's estimate and interval, per row of customer equity's combinations."""
    combine = _combinations(problem.base.n_groups, 0, len(problem.base.grids))
    equity, change = combine @ problem.base.evaluate({}), combine @ problem.change()
    estimate = {
        "equity": equity,
        "raised_equity": equity + change,
        "change": change,
        "change_percent": _percent(change, equity),
    }
    if level is None:
        nan = {name: np.full_like(equity, np.nan) for name in _QUANTITIES}
        return _Found(estimate, nan, nan, nan["change"])
    if method == "delta":
        errors = _delta_errors(problem, combine, estimate)
        bounds = {name: _normal_interval(estimate[name], errors[name], level) for name in errors}
        return _Found(
            estimate,
            {name: found[1] for name, found in bounds.items()},
            {name: found[2] for name, found in bounds.items()},
            errors["change"],
        )
    assert rng is not None  # checked: draws and replicates need one
    drawn = _drawn(problem, combine, n_draws, rng, method)
    tail = (1.0 - level) / 2.0
    quantiles = {name: np.quantile(d, [tail, 1.0 - tail], axis=0) for name, d in drawn.items()}
    return _Found(
        estimate,
        {name: q[0] for name, q in quantiles.items()},
        {name: q[1] for name, q in quantiles.items()},
        drawn["change"].std(axis=0, ddof=1),
    )


# --- the tables ----------------------------------------------------------------------------------


def _retention(problem: _UpliftProblem) -> FloatArray:
    """Per group (columns): customers expected alive now, after the span today, and raised."""
    n_groups = problem.base.n_groups
    sums = np.zeros((3, n_groups))
    found = problem.estimate
    for part, state in zip(problem.parts, found.states, strict=True):
        factor = float(found.factors[part.target])
        key = state.curves.group[part.cells.pattern]
        mass = part.counts * state.curves.alive_scale[part.cells.pattern]
        for row, (span, scale) in enumerate(
            ((_NOW, 1.0), (problem.span, 1.0), (problem.span, factor))
        ):
            survival = _survival_after(
                state.purchases, state.curves.with_dropout_scaled(scale), span
            )
            sums[row] += np.bincount(
                part.cells.group, weights=mass * survival[key], minlength=n_groups
            )
    return sums


def _shares(alive: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Retention today and raised from the customers alive now, later and later raised."""
    with np.errstate(divide="ignore", invalid="ignore"):  # a group with nobody alive has none
        today = np.where(alive[0] > 0.0, alive[1] / alive[0], np.nan)
        raised = np.where(alive[0] > 0.0, alive[2] / alive[0], np.nan)
    return np.asarray(today, dtype=np.float64), np.asarray(raised, dtype=np.float64)


def _table(
    found: _Found, part: slice, index: pd.Index, extra: Mapping[str, npt.ArrayLike]
) -> pd.DataFrame:
    """The rows ``part`` of every quantity, after the columns of ``extra``."""
    columns = dict(extra)
    for name in _QUANTITIES:
        columns[name] = found.estimate[name][part]
        if name == "change":
            columns["change_std_error"] = found.change_std_error[part]
        columns[f"{name}_ci_lower"] = found.lower[name][part]
        columns[f"{name}_ci_upper"] = found.upper[name][part]
    return pd.DataFrame(columns, index=index)


# --- the function --------------------------------------------------------------------------------


def _checked_points(points: float) -> float:
    if (
        isinstance(points, bool | np.bool_)
        or not isinstance(points, int | float | np.integer | np.floating)
        or not math.isfinite(points)
        or abs(points) >= 100.0
    ):
        raise SchemaError(
            f"points must be a number of percentage points between -100 and 100 (5 for five "
            f"points more retention, -5 for five fewer), got {points!r}"
        )
    return float(points)


def _problem(
    values: CustomerValue,
    points: float,
    horizons: Sequence[Duration | str],
    by: pd.Series | str | None,
    scope: UpliftScope,
    span: Duration,
) -> tuple[_UpliftProblem, list[object], npt.NDArray[np.int64]]:
    """The uplift problem of ``values``, its groups' labels and each group's customers."""
    grids = tuple(_grid(_horizon(h), values.period) for h in horizons)
    codes, labels = _group_codes(values, by)
    recipe = values._recipe
    rates, found = np.unique(recipe.annual_rate, return_inverse=True)
    rate_codes = found.astype(np.intp)
    # customer equity's own problem, built as customer_equity builds it: the same numbers
    cells = tuple(_cells(block, recipe, codes, rate_codes) for block in recipe.blocks)
    pairs = tuple((block.purchases, block.spend) for block in recipe.blocks)
    base = _EquityProblem(pairs, cells, grids, rates, len(labels), ())
    if scope == "group" and by is not None:
        group_target, names = np.arange(len(labels)), tuple(f"group {g!r}" for g in labels)
    else:
        group_target, names = np.zeros(len(labels), dtype=np.intp), ("the base",)
    parts = _parts(values, codes, group_target[codes].astype(np.intp), rate_codes)
    counts = np.bincount(codes, minlength=len(labels)).astype(np.int64)
    problem = _UpliftProblem(base, parts, names, span, points, group_target.astype(np.intp))
    return problem, labels, counts


def retention_uplift(
    values: CustomerValue,
    points: float = 5.0,
    horizons: Sequence[Duration | str] = ("3y", "5y"),
    by: pd.Series | str | None = None,
    *,
    scope: UpliftScope = "group",
    retention_over: Duration | str = "1y",
    level: float | None = 0.95,
    method: EquityMethod = "delta",
    n_draws: int = 500,
    rng: np.random.Generator | None = None,
) -> RetentionUplift:
    """Customer equity today and with the model-implied retention raised by ``points`` points.

    The customers of ``values`` are valued as :func:`~cvalue.value.customer_equity` values them
    (the ``equity`` columns are its numbers), and again with each group's dropout hazards from
    now on multiplied by the factor that raises the group's retention over ``retention_over`` by
    ``points`` percentage points, through each model's own formulas (module docstring: the
    definitions per model family and what is assumed).

    Parameters
    ----------
    values
        The result of :func:`~cvalue.value.clv`.
    points
        Percentage points of retention (5: from 62 % to 67 %); negative for a fall.
    horizons
        Horizons with units.
    by
        A column of ``values.customers`` (such as ``"segment"``) or a Series per customer.
    scope
        ``"group"``: every group's retention rises by ``points`` (one factor per group);
        ``"base"``: the whole base's does (one factor for all).
    retention_over
        The span retention is measured over (a whole number of periods for the BG/BB, sBG and
        BdW).
    level, method, n_draws, rng
        The intervals, as :func:`~cvalue.value.customer_equity`'s: the change's interval comes
        from the same parameters applied to today's and the raised equity.

    Returns
    -------
    RetentionUplift
        ``by_group`` and ``total`` tables (:class:`RetentionUplift`).

    Raises
    ------
    SchemaError
        For points that would take a group's retention to 0 % or 100 % or beyond, a model
        without a dropout to scale (the (M)BG/CNBD-k), a span that is not whole periods of a
        discrete-time model, or interval options customer equity refuses.

    Examples
    --------
    >>> import cvalue as cv
    >>> from cvalue.datasets import load_cdnow
    >>> cbs = load_cdnow().summary
    >>> bg = cv.BetaGeo().fit(cbs, unit="week")
    >>> values = cv.clv(cbs, purchases=bg, spend=cv.GammaGamma().fit(cbs), margin=0.3,
    ...                 horizon="5y", rates=0.10, costs=cv.NO_COSTS)
    >>> uplift = retention_uplift(values, points=5, horizons=["3y", "5y"], level=None)
    >>> row = uplift.total.loc["5y"]
    >>> round(float(row["raised_retention"] - row["retention"]), 10)
    0.05
    >>> bool(row["change"] > 0)
    True
    """
    if not isinstance(values, CustomerValue):
        raise SchemaError(
            f"retention_uplift needs the result of cvalue.clv(...), got {type(values).__name__}"
        )
    checked = _checked_points(points)
    if scope not in ("group", "base"):
        raise SchemaError(f"scope must be 'group' or 'base', got {scope!r}")
    span = _horizon(retention_over, "retention_over")
    _check_interval_options(level, method, n_draws, rng)
    problem, labels, counts = _problem(values, checked, horizons, by, scope, span)
    found = _intervals(problem, level, method, n_draws, rng)
    alive = _retention(problem)
    today, raised = _shares(alive)
    names = [str(h) for h in horizons]
    n_h, n_rows = len(names), len(labels) * len(names)
    by_group = _table(
        found,
        slice(0, n_rows),
        pd.MultiIndex.from_product([labels, names], names=["group", "horizon"]),
        {
            "customers": np.repeat(counts, n_h),
            "retention": np.repeat(today, n_h),
            "raised_retention": np.repeat(raised, n_h),
            "dropout_factor": np.repeat(problem.estimate.factors[problem.group_target], n_h),
        },
    )
    base_today, base_raised = _shares(alive.sum(axis=1, keepdims=True))
    total = _table(
        found,
        slice(n_rows + 2 * n_h, n_rows + 3 * n_h),
        pd.Index(names, name="horizon"),
        {
            "customers": np.full(n_h, counts.sum()),
            "retention": np.repeat(base_today, n_h),
            "raised_retention": np.repeat(base_raised, n_h),
        },
    )
    return RetentionUplift(by_group, total, checked, span, scope, level, method)
