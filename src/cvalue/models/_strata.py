"""Predictions of a model with covariates, stratum by stratum (:mod:`cvalue.models._covariates`).

Customers with the same covariate values share one parameter vector: a model without
covariates at those parameters (``Model.stratum_model_at``) answers for them, through the
model's own methods. :func:`by_stratum` wraps each prediction method of a model class so that
a model fitted with covariates splits the customers by stratum and puts the answers back in
place, weighs a new customer's answers by the fitted base's strata, or refuses a method that
describes one parameter set.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from cvalue.errors import SchemaError
from cvalue.models._covariates import Covariates, stratum_rows
from cvalue.models._curves import Curves

if TYPE_CHECKING:
    from cvalue.models._base import Model

__all__ = ["Combine", "MixtureCurves", "StrataCurves", "StratumMethods", "by_stratum"]

FloatArray = npt.NDArray[np.float64]
IntpArray = npt.NDArray[np.intp]


# --- predictions per stratum ---------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class StrataCurves(Curves):
    """The curves of customers of several strata: each stratum's own, stacked by key."""

    parts: tuple[Curves, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "pays_at_start", self.parts[0].pays_at_start)

    @classmethod
    def stacked(
        cls, parts: Sequence[Curves], rows: Sequence[IntpArray], n_rows: int
    ) -> StrataCurves:
        """The parts' customers put back at their ``rows``, their keys stacked in order."""
        group = np.empty(n_rows, dtype=np.intp)
        purchase, alive = np.empty(n_rows), np.empty(n_rows)
        offset = 0
        for part, where in zip(parts, rows, strict=True):
            group[where] = part.group + offset
            purchase[where], alive[where] = part.purchase_scale, part.alive_scale
            offset += part.n_keys
        keys = tuple(
            np.concatenate(column) for column in zip(*(p.keys for p in parts), strict=True)
        )
        return cls(group, purchase, alive, keys, tuple(parts))

    def survival(self, times: FloatArray) -> FloatArray:
        return np.vstack([part.survival(times) for part in self.parts])

    def cumulative(self, times: FloatArray) -> FloatArray:
        return np.vstack([part.cumulative(times) for part in self.parts])

    def period_flows(self, ends: FloatArray) -> tuple[FloatArray, FloatArray]:
        flows = [part.period_flows(ends) for part in self.parts]
        return np.vstack([f[0] for f in flows]), np.vstack([f[1] for f in flows])

    def _dropout_scaled(self, factor: float) -> Curves:
        return replace(self, parts=tuple(p.with_dropout_scaled(factor) for p in self.parts))


@dataclass(frozen=True, eq=False)
class MixtureCurves(Curves):
    """A customer just acquired, from one stratum with the fitted base's shares."""

    parts: tuple[Curves, ...] = ()
    shares: FloatArray = field(default_factory=lambda: np.zeros(0))

    def __post_init__(self) -> None:
        object.__setattr__(self, "pays_at_start", self.parts[0].pays_at_start)

    @classmethod
    def mixed(cls, parts: Sequence[Curves], shares: FloatArray) -> MixtureCurves:
        return cls(np.zeros(1, dtype=np.intp), np.ones(1), np.ones(1), (np.zeros(1),),
                   tuple(parts), shares)  # fmt: skip

    def _mix(self, values: Sequence[FloatArray], scale: str) -> FloatArray:
        found = sum(
            share * getattr(part, scale)[0] * value[0]
            for share, part, value in zip(self.shares, self.parts, values, strict=True)
        )
        return np.asarray(found, dtype=np.float64)[None, :]

    def survival(self, times: FloatArray) -> FloatArray:
        return self._mix([part.survival(times) for part in self.parts], "alive_scale")

    def cumulative(self, times: FloatArray) -> FloatArray:
        return self._mix([part.cumulative(times) for part in self.parts], "purchase_scale")

    def period_flows(self, ends: FloatArray) -> tuple[FloatArray, FloatArray]:
        flows = [part.period_flows(ends) for part in self.parts]
        return (self._mix([f[0] for f in flows], "purchase_scale"),
                self._mix([f[1] for f in flows], "alive_scale"))  # fmt: skip

    def _dropout_scaled(self, factor: float) -> Curves:
        return replace(self, parts=tuple(p.with_dropout_scaled(factor) for p in self.parts))


_REFUSALS = {
    "spend_terms": (
        "; to value customers with a spend model with covariates, pass its per-customer spend: "
        "cvalue.clv(..., spend=model.conditional_expected_spend(data))"
    ),
    "retention_rate": "; the base's survival is model.survival(t) (a mixture over its groups)",
}

Combine = Literal["rows", "mixture", "pmf", "curves", "predict", "simulate", "refuse"]


def by_stratum(method: Callable[..., Any], how: Combine) -> Callable[..., Any]:
    """``method`` as it is for a model without covariates, and per stratum for one with them.

    ``how`` says how the strata's answers combine: ``"rows"`` puts each customer's back in its
    place; ``"mixture"`` weighs a new customer's answers by the fitted base's strata;
    ``"pmf"`` is ``"rows"`` given ``data`` and ``"mixture"`` without; ``"curves"`` stacks or
    mixes :class:`Curves`; ``"predict"`` adds intervals over the whole model;
    ``"simulate"`` draws each stratum's customers; ``"refuse"`` names the way per stratum.
    """
    signature = inspect.signature(method)

    @functools.wraps(method)
    def wrapper(self: Model, *args: Any, **kwargs: Any) -> Any:
        if self.covariates_ is None:
            return method(self, *args, **kwargs)
        if how == "simulate":
            return _simulate(self, method, signature, args, kwargs)
        if how == "refuse":
            raise SchemaError(
                f"{type(self).__name__}.{method.__name__} describes one parameter set, and this "
                "model's parameters differ by the customers' covariates: call it on "
                "model.stratum_model({column: value, ...})" + _REFUSALS.get(method.__name__, "")
            )
        bound = signature.bind(self, *args, **kwargs)
        data = bound.arguments.get("data")
        if how == "mixture" or (how in ("pmf", "curves") and data is None):
            return _mixture(self, method, bound, how)
        if not isinstance(data, pd.DataFrame):
            raise SchemaError(
                f"{type(self).__name__}.{method.__name__} needs a pandas DataFrame with the "
                f"summary and the covariates {list(self.covariates_.columns)}, got "
                f"{type(data).__name__}"
            )
        interval = bound.arguments.get("interval")
        if how == "predict" and interval is not None:
            from cvalue.models._intervals import with_intervals  # it imports the models' base

            bound.apply_defaults()
            bound.arguments["interval"] = None
            point = _per_row(self, method, bound, data, how)
            options = {k: bound.arguments[k] for k in ("horizon", "method", "n_draws", "rng")
                       if k in bound.arguments}  # fmt: skip
            return with_intervals(self, data, point, level=interval, **options)  # type: ignore[arg-type]
        return _per_row(self, method, bound, data, how)

    wrapper.by_stratum = how  # type: ignore[attr-defined]
    return wrapper


def _per_row(
    model: Model, method: Callable[..., Any], bound: inspect.BoundArguments, data: pd.DataFrame,
    how: Combine,
) -> Any:  # fmt: skip
    name = type(model).__name__
    covariates = model.covariates_
    assert covariates is not None
    group, strata = covariates.design.strata(data, model=name)
    rows = stratum_rows(group, len(strata))
    results = []
    for terms, where in zip(strata, rows, strict=True):
        bound.arguments["self"] = model.stratum_model_at(terms)
        bound.arguments["data"] = data.iloc[where]
        results.append(method(*bound.args, **bound.kwargs))
    if how == "curves":
        return StrataCurves.stacked(results, rows, len(data))
    order = np.argsort(np.concatenate(rows), kind="stable")
    joined = pd.concat(results) if len(results) > 1 else results[0]
    found = joined.iloc[order]
    found.attrs = dict(results[0].attrs)
    return found


def _mixture(
    model: Model, method: Callable[..., Any], bound: inspect.BoundArguments, how: Combine
) -> Any:
    covariates = model.covariates_
    assert covariates is not None
    shares = covariates.stratum_weights / covariates.stratum_weights.sum()
    results = []
    for terms in covariates.strata:
        bound.arguments["self"] = model.stratum_model_at(terms)
        results.append(method(*bound.args, **bound.kwargs))
    if how == "curves":
        return MixtureCurves.mixed(results, shares)
    mixed = sum(share * np.asarray(result, dtype=np.float64)
                for share, result in zip(shares, results, strict=True))  # fmt: skip
    mixed = np.asarray(mixed, dtype=np.float64)
    return float(mixed) if mixed.ndim == 0 else mixed


def _simulate(
    model: Model, method: Callable[..., Any], signature: inspect.Signature, args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> pd.DataFrame:  # fmt: skip
    """Customers drawn per stratum: of the given covariates, or of the fitted base's strata."""
    covariates = model.covariates_
    assert covariates is not None
    given = kwargs.pop("covariates", None)
    bound = signature.bind(model, *args, **kwargs)
    n_customers = int(bound.arguments["n_customers"])
    rng: np.random.Generator = bound.arguments["rng"]
    # the per-customer argument after n_customers: the ages T, or the Gamma-Gamma's frequency
    spread = list(signature.parameters)[2]
    asked = bound.arguments[spread]
    per_customer = None if np.ndim(asked) == 0 else np.broadcast_to(asked, (n_customers,))
    if given is None:
        shares = covariates.stratum_weights / covariates.stratum_weights.sum()
        group = rng.choice(len(shares), size=n_customers, p=shares).astype(np.intp)
        strata = covariates.strata
    else:
        if len(given) != n_customers:
            raise SchemaError(
                f"covariates= has {len(given):,} rows for {n_customers:,} customers; give one "
                "row per customer"
            )
        group, strata = covariates.design.strata(given, model=type(model).__name__)
    rows = stratum_rows(group, len(strata))
    parts = []
    for terms, where in zip(strata, rows, strict=True):
        bound.arguments["self"] = model.stratum_model_at(terms)
        bound.arguments["n_customers"] = len(where)
        if per_customer is not None:
            bound.arguments[spread] = per_customer[where]
        parts.append(method(*bound.args, **bound.kwargs))
    order = np.argsort(np.concatenate(rows), kind="stable")
    simulated: pd.DataFrame = pd.concat(parts, ignore_index=True).iloc[order]
    simulated = simulated.reset_index(drop=True)
    simulated.attrs = dict(parts[0].attrs)
    if given is not None:
        for column in covariates.columns:
            simulated[column] = given[column].to_numpy()
    else:
        decoded = _decoded(covariates, strata)
        for column in covariates.columns:
            simulated[column] = decoded[column].to_numpy()[group]
    return simulated


def _decoded(covariates: Covariates, strata: FloatArray) -> pd.DataFrame:
    """The covariate values of each stratum's row of terms."""
    design = covariates.design
    found: dict[str, Any] = {}
    for column, kind, levels in zip(design.columns, design.kinds, design.levels, strict=True):
        terms = strata[:, design.terms_of(column)]
        if kind == "categorical":
            picked = np.where(terms.max(axis=1) > 0, terms.argmax(axis=1) + 1, 0)
            found[column] = pd.Categorical.from_codes(
                picked.astype(np.int64), categories=pd.Index(list(levels))
            )
        elif kind == "boolean":
            found[column] = terms[:, 0] > 0
        else:
            found[column] = terms[:, 0]
    return pd.DataFrame(found)


class StratumMethods:
    """The prediction methods of purchase models and how their strata combine."""

    purchase: ClassVar[dict[str, Combine]] = {
        "curves": "curves", "p_alive": "rows", "expected_purchases": "rows",
        "expected_purchases_new": "mixture", "purchase_pmf": "pmf", "predict": "predict",
        "dert": "rows", "simulate": "simulate",
    }  # fmt: skip
