"""What valuation reads from a purchase model, through the model contract alone.

A model's :meth:`curves` (:class:`cvalue.models.Curves`) gives each customer's survival and
cumulative purchases from now on, factored by the distinct keys of their histories; here they
become per-period flows over a valuation grid (:func:`_flows`). The rest is what every model
states about itself (``unit_``, ``discrete_time``, ``contractual``, ``summary_columns``,
``with_params``) and the models given per segment or cohort. Nothing here knows a model class.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

import numpy as np

from cvalue.errors import NotFittedError, SchemaError
from cvalue.units import Duration, TimeUnit
from cvalue.value.inputs import FloatArray
from cvalue.value.periods import _WHOLE, _Grid, _is_whole

if TYPE_CHECKING:
    from cvalue.models import Curves, Model

__all__: list[str] = []


PurchaseModels: TypeAlias = "Model | Mapping[str, Model]"
_CONTRACT = ("curves", "discrete_time", "contractual", "summary_columns", "with_params")


def _checked(model: Model) -> Model:
    """``model``, if it keeps the purchase-model contract and is fitted."""
    if not all(hasattr(model, name) for name in _CONTRACT):
        raise SchemaError(
            "purchases must be a fitted purchase model (BetaGeo, ModifiedBetaGeo, ParetoNBD, "
            "BetaGeoBetaBinom, any of cvalue.models.PURCHASE_MODELS) or a contractual model "
            f"(ShiftedBetaGeo, BetaDiscreteWeibull), got {type(model).__name__}"
        )
    if not hasattr(model, "params_"):
        raise NotFittedError(
            f"this {type(model).__name__} is not fitted yet; call .fit(data) first"
        )
    return model


def _curves(model: Model, data: object = None) -> Curves:
    """The model's curves for the customers of ``data``, or for a customer just acquired."""
    return _checked(model).curves(data)  # type: ignore[attr-defined, no-any-return]


def _is_discrete(model: Model) -> bool:
    return bool(_checked(model).discrete_time)  # type: ignore[attr-defined]


def _is_contractual(model: Model) -> bool:
    return bool(_checked(model).contractual)  # type: ignore[attr-defined]


def _summary_columns(model: Model) -> tuple[str, ...]:
    return tuple(_checked(model).summary_columns)


def _unit(model: Model) -> TimeUnit:
    if model.unit_ is None:
        raise SchemaError(
            f"this {type(model).__name__} does not know its data's time unit, so horizons and "
            "rates cannot convert; fit it with unit='week' (pandas' join drops rfm_summary's unit)"
        )
    return model.unit_


@dataclass(frozen=True, slots=True)
class _Flows:
    """Per-period tables: expected purchases and P(on the books), per distinct key of the curves."""

    curves: Curves
    purchases: FloatArray
    alive: FloatArray
    pays_at_start: bool


def _model_times(model: Model, grid: _Grid) -> FloatArray:
    """The grid's period ends in the model's unit, checked for discrete-time models."""
    unit = _unit(model)
    ends = grid.in_unit(grid.ends, unit)
    if _is_discrete(model):
        step = grid.period.to(unit)
        if not math.isclose(step, 1.0, rel_tol=_WHOLE) or (len(ends) and not _is_whole(ends[-1])):
            raise SchemaError(
                f"a {type(model).__name__} counts whole periods of 1 {unit.value}: the period "
                f"must be '1 {unit.value}' and the horizon a whole number of them; got period "
                f"{grid.period} and a horizon of {ends[-1] if len(ends) else 0:g} {unit.value}s"
            )
        ends = np.round(ends)
    return ends


def _flows(model: Model, curves: Curves, grid: _Grid) -> _Flows:
    """Purchases in each period and P(on the books), from the model's curves."""
    purchases, alive = curves.period_flows(_model_times(model, grid))
    return _Flows(curves, purchases, alive, pays_at_start=curves.pays_at_start)


def _survival_after(model: Model, curves: Curves, span: Duration) -> FloatArray:
    """P(alive ``span`` from now) over ``alive_scale``, per key of ``curves``."""
    ahead = span.to(_unit(model))
    if _is_discrete(model):
        if not _is_whole(ahead):
            raise SchemaError(
                f"a {type(model).__name__} counts whole periods; {span} is "
                f"{ahead:g} {_unit(model).value}s"
            )
        ahead = float(round(ahead))
    return np.asarray(curves.survival(np.array([ahead]))[:, 0], dtype=np.float64)


# --- models per segment, default period, other parameters ----------------------------------------


def _model_map(value: PurchaseModels) -> Mapping[str, Model] | None:
    """The ``{label: model}`` of per-segment models (or of a per-cohort contractual fit)."""
    cohorts = getattr(value, "cohorts_", None)
    if cohorts:
        return cohorts  # type: ignore[no-any-return]
    return value if isinstance(value, Mapping) else None


def _default_period(models: Sequence[Model]) -> Duration:
    """One opportunity or contract period for discrete-time models, else a month."""
    for model in models:
        if _is_discrete(model):
            return Duration(1.0, _unit(model))
    return Duration(1.0, TimeUnit.MONTH)
