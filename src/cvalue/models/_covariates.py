"""Time-invariant covariates: each customer's parameters moved by a linear predictor.

Fader & Hardie's note "Incorporating time-invariant covariates into the Pareto/NBD and BG/NBD
models" (2007), as CLVTools implements it: a customer with covariates ``z`` has the model's
parameters with the scale parameters moved, per process ``p`` with its own coefficients
``gamma_p``:

- BG/NBD and MBG/NBD: ``alpha_i = alpha exp(-gamma_purchase' z)`` (purchase), and
  ``a_i = a exp(gamma_dropout' z)``, ``b_i = b exp(gamma_dropout' z)`` (dropout);
- Pareto/NBD: ``alpha_i = alpha exp(-gamma_purchase' z)``, ``beta_i = beta exp(-gamma_dropout' z)``;
- sBG and BdW: ``alpha_i = alpha exp(gamma_churn' z)``, ``beta_i = beta exp(gamma_retention' z)``
  (a categorical covariate in both is one parameter set per level: the per-cohort fit);
- Gamma-Gamma: ``gamma_i = gamma exp(gamma_spend' z)``, so mean spend scales by ``exp(..)``.

A positive coefficient raises the purchase rate, spend, churn or retention it names. Every
model keeps its own formulas: customers with the same covariate values form a *stratum*, whose
customers share one parameter vector, and the model's own likelihood (with its gradient) and
predictions run once per stratum on its patterns. The covariate likelihood is the sum over strata
and its gradient follows by the chain rule, so compression keeps working (patterns are distinct
summary rows within a stratum), and with every coefficient at 0 every stratum has the plain
model's parameters: the same likelihood and predictions.

Categorical columns (text, categories) are expanded into one indicator per level but the
reference level; boolean columns are 0/1; numeric columns enter as they are. Coefficients of
numeric columns are searched on the column's standard deviation (and reported per unit of the
column). Strata are the distinct rows of the expanded columns: a few for categorical covariates,
as many as distinct values for a numeric one (bin a continuous covariate to keep fits fast).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.linalg

from cvalue.errors import DataQualityError, SchemaError
from cvalue.models._mle import Objective

if TYPE_CHECKING:
    from cvalue.models._base import Model

__all__ = [
    "Covariates",
    "Design",
    "covariate_information",
    "covariate_objective",
    "newton_start",
    "stratum_rows",
]

FloatArray = npt.NDArray[np.float64]
IntpArray = npt.NDArray[np.intp]
Kind = Literal["numeric", "boolean", "categorical"]
Spec = Sequence[str]
Link = tuple[tuple[str, int], ...]
"""A process's parameters and the sign of the linear predictor in each (``exp(sign eta)``)."""

SHARED = "shared"
"""The process name of a coefficient constrained to be the same in every process."""
_MAX_ETA = 700.0  # exp of a linear predictor beyond +-700 leaves the floats: outside the model


# --- the design: columns into terms ------------------------------------------------------------


def _kind(column: pd.Series) -> Kind:
    dtype = column.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_numeric_dtype(dtype) and not isinstance(dtype, pd.CategoricalDtype):
        return "numeric"
    return "categorical"


def _labelled(column: pd.Series) -> tuple[IntpArray, list[str]]:
    """A categorical column as codes (-1: missing) into its distinct values' text labels."""
    codes, uniques = pd.factorize(column, use_na_sentinel=True)
    return codes.astype(np.intp, copy=False), [str(value) for value in uniques]


@dataclass(frozen=True)
class Design:
    """How covariate columns become the terms of the linear predictor.

    Attributes
    ----------
    columns
        The covariate columns, in the order given.
    kinds
        Per column: ``"numeric"``, ``"boolean"`` or ``"categorical"``.
    levels
        Per column: a categorical column's levels, the reference level first; ``()`` else.
    scales
        Per term: the scale the coefficient is searched on (a numeric column's standard
        deviation, 1 for indicators).
    """

    columns: tuple[str, ...]
    kinds: tuple[Kind, ...]
    levels: tuple[tuple[str, ...], ...]
    scales: tuple[float, ...]

    @property
    def terms(self) -> tuple[str, ...]:
        """The terms' names: ``column`` or ``column[level]`` for a categorical one."""
        found: list[str] = []
        for column, kind, levels in zip(self.columns, self.kinds, self.levels, strict=True):
            if kind == "categorical":
                found.extend(f"{column}[{level}]" for level in levels[1:])
            else:
                found.append(column)
        return tuple(found)

    def terms_of(self, column: str) -> list[int]:
        """The positions of a column's terms."""
        position, found = 0, []
        for name, kind, levels in zip(self.columns, self.kinds, self.levels, strict=True):
            width = len(levels) - 1 if kind == "categorical" else 1
            if name == column:
                found = list(range(position, position + width))
            position += width
        return found

    @classmethod
    def of(
        cls, data: pd.DataFrame, columns: Sequence[str], reference: Mapping[str, Any] | None,
        weights: FloatArray, model: str,
    ) -> Design:  # fmt: skip
        """The design of ``columns`` in ``data``; every problem is named with its row count."""
        _check_present(data, columns, model)
        reference = dict(reference or {})
        unknown = sorted(set(reference) - set(columns))
        if unknown:
            raise SchemaError(
                f"reference= names {unknown}, which are not covariates {list(columns)}"
            )
        kinds, levels, scales, problems = [], [], [], []
        for name in columns:
            column = data[name]
            kind = _kind(column)
            kinds.append(kind)
            if kind == "categorical":
                _, labels = _labelled(column)
                if isinstance(column.dtype, pd.CategoricalDtype):
                    seen = set(labels)
                    found = [str(c) for c in column.cat.categories if str(c) in seen]
                else:
                    found = sorted(set(labels))
                if name in reference:
                    first = str(reference[name])
                    if first not in found:
                        raise SchemaError(
                            f"reference level {first!r} of covariate {name!r} is not one of its "
                            f"levels {found}"
                        )
                    found = [first, *(level for level in found if level != first)]
                levels.append(tuple(found))
                if len(found) == 1:
                    problems.append(f"{name!r} has one level ({found[0]!r}) for every customer")
                scales.extend([1.0] * (len(found) - 1))
            else:
                levels.append(())
                values = column.to_numpy(dtype=np.float64, na_value=np.nan)
                finite = values[np.isfinite(values)]
                share = weights[np.isfinite(values)]
                if finite.size:
                    mean = np.average(finite, weights=share) if share.sum() > 0 else finite.mean()
                    spread = math.sqrt(float(np.average((finite - mean) ** 2, weights=share))) if (
                        share.sum() > 0) else 0.0  # fmt: skip
                else:
                    spread = 0.0
                if not spread > 0.0:
                    problems.append(f"{name!r} has one value for every customer")
                scales.append(1.0 if kind == "boolean" else spread)
        if problems:
            raise DataQualityError(
                f"{model} cannot estimate the effect of a covariate that does not vary: "
                f"{'; '.join(problems)}. Drop it from covariates="
            )
        return cls(tuple(columns), tuple(kinds), tuple(levels), tuple(scales))

    def _codes(self, data: pd.DataFrame, model: str) -> list[tuple[IntpArray, FloatArray]]:
        """Per column, each row's code and the codes' values.

        A categorical column's code is its level's position (and so is the value); a numeric
        one's is its distinct value's.

        Raises
        ------
        SchemaError
            For a missing column, or categorical levels the model was not fitted with.
        DataQualityError
            For missing or infinite values.
        """
        _check_present(data, self.columns, model)
        found, problems = [], []
        for name, kind, levels in zip(self.columns, self.kinds, self.levels, strict=True):
            column = data[name]
            if kind == "categorical":
                codes, labels = _labelled(column)
                position = {level: index for index, level in enumerate(levels)}
                known = np.array([position.get(label, -1) for label in labels] + [-1])
                n_missing = int(np.count_nonzero(codes < 0))
                is_unseen = (known[codes] < 0) & (codes >= 0)  # missing (-1) reads the last: -1
                if is_unseen.any():
                    shown = sorted({labels[u] for u in np.unique(codes[is_unseen])})[:10]
                    raise SchemaError(
                        f"covariate {name!r} has level(s) {shown} in "
                        f"{int(is_unseen.sum()):,} of {len(data):,} rows that the {model} was "
                        f"not fitted with (it knows {list(levels)}): refit on data with those "
                        "levels, or map them to a known level"
                    )
                found.append((codes, known[:-1].astype(np.float64)))
            else:
                values = column.to_numpy(dtype=np.float64, na_value=np.nan)
                n_missing = int(np.count_nonzero(~np.isfinite(values)))
                codes, uniques = pd.factorize(values)
                found.append((codes.astype(np.intp, copy=False), np.asarray(uniques, np.float64)))
            if n_missing:
                rows = "row" if n_missing == 1 else "rows"
                problems.append(f"{name!r} is missing or infinite in {n_missing:,} {rows}")
        if problems:
            raise DataQualityError(
                f"{model} needs every covariate of every customer, and of {len(data):,} rows "
                f"{'; '.join(problems)}. Fill them (e.g. an 'unknown' level) or leave those "
                "customers out"
            )
        return found

    def _terms(self, values: Sequence[FloatArray]) -> FloatArray:
        """The terms of rows given each column's value (a categorical one's level position)."""
        blocks = []
        for column, kind, levels in zip(values, self.kinds, self.levels, strict=True):
            if kind == "categorical":
                block = np.zeros((len(column), len(levels) - 1))
                rows = np.flatnonzero(column > 0)
                block[rows, column[rows].astype(np.intp) - 1] = 1.0
            else:
                block = column[:, None]
            blocks.append(block)
        return np.hstack(blocks)

    def encode(self, data: pd.DataFrame, *, model: str) -> FloatArray:
        """The terms of every row of ``data`` (rows x terms); see :meth:`strata` for errors."""
        return self._terms([values[codes] for codes, values in self._codes(data, model)])

    def strata(self, data: pd.DataFrame, *, model: str) -> tuple[IntpArray, FloatArray]:
        """Each row's stratum (its distinct covariate values) and each stratum's terms.

        Rows are coded column by column and the codes merged, so no rows x terms matrix is
        built for a million customers.

        Raises
        ------
        SchemaError
            For a missing column, or categorical levels the model was not fitted with.
        DataQualityError
            For missing or infinite values, with their row counts.
        """
        columns = self._codes(data, model)
        key = np.zeros(len(data), dtype=np.int64)
        for codes, values in columns:
            key, _ = pd.factorize(key * max(len(values), 1) + codes)
        group, _ = pd.factorize(key)
        first = np.full(int(group.max()) + 1 if len(group) else 0, len(group), dtype=np.intp)
        np.minimum.at(first, group, np.arange(len(group)))
        terms = self._terms([values[codes[first]] for codes, values in columns])
        return group.astype(np.intp, copy=False), terms

    def to_dict(self) -> dict[str, Any]:
        return {"columns": list(self.columns), "kinds": list(self.kinds),
                "levels": [list(v) for v in self.levels], "scales": list(self.scales)}  # fmt: skip

    @classmethod
    def from_dict(cls, saved: Mapping[str, Any]) -> Design:
        return cls(tuple(saved["columns"]), tuple(saved["kinds"]),
                   tuple(tuple(v) for v in saved["levels"]), tuple(saved["scales"]))  # fmt: skip


def _check_present(data: object, columns: Sequence[str], model: str) -> None:
    if not isinstance(data, pd.DataFrame):
        raise SchemaError(f"{model} needs a pandas DataFrame, got {type(data).__name__}")
    missing = [c for c in columns if c not in data]
    if missing:
        raise SchemaError(
            f"{model} was given covariate(s) {missing} that the data does not have; its columns "
            f"are {list(data.columns)} ({len(data):,} rows). Add them to the summary (e.g. "
            "summary.join(customers[[...]]))"
        )


# --- the layout: terms into coefficients of processes --------------------------------------------


@dataclass(frozen=True)
class Covariates:
    """A model's covariates: the design, which processes read which columns, and coefficients.

    Attributes
    ----------
    design
        The columns and their terms.
    processes
        Per process of the model (``"purchase"``, ``"dropout"``, ...): its covariate columns.
    constrained
        Columns whose coefficients are the same in every process (``"shared:<term>"``).
    strata
        The fit's strata: their expanded terms (rows) and customers (weights), for predictions
        of a new customer (a mixture over the fitted base) and for simulation.
    """

    design: Design
    processes: tuple[tuple[str, tuple[str, ...]], ...]
    constrained: tuple[str, ...]
    strata: FloatArray
    stratum_weights: FloatArray

    @classmethod
    def of(
        cls, model: Model, data: pd.DataFrame, covariates: Sequence[str] | Mapping[str, Spec],
        constrain: Sequence[str], reference: Mapping[str, Any] | None, weights: FloatArray,
    ) -> tuple[Covariates, IntpArray]:  # fmt: skip
        """The covariates of ``model`` fitted on ``data``, checked, and each row's stratum."""
        name = type(model).__name__
        links = model._covariate_links
        if not links:
            supported = "BetaGeo, ModifiedBetaGeo, ParetoNBD, ShiftedBetaGeo, " \
                        "BetaDiscreteWeibull and GammaGamma"  # fmt: skip
            raise SchemaError(f"{name} does not take covariates; {supported} do")
        if isinstance(covariates, str):
            raise SchemaError(f"covariates= takes a list of column names, got {covariates!r}")
        if isinstance(covariates, Mapping):
            unknown = sorted(set(covariates) - set(links))
            if unknown:
                raise SchemaError(
                    f"{name} has the processes {list(links)}; covariates= names {unknown}"
                )
            per_process = {p: tuple(covariates.get(p, ())) for p in links}
        else:
            per_process = {p: tuple(covariates) for p in links}
        columns = tuple(dict.fromkeys(c for cs in per_process.values() for c in cs))
        if not columns:
            raise SchemaError(f"covariates= names no column for the {name}")
        constrain = tuple(constrain)
        for column in constrain:
            if not all(column in cs for cs in per_process.values()):
                raise SchemaError(
                    f"constrain= names {column!r}, which is not a covariate of every process "
                    f"({ {p: list(cs) for p, cs in per_process.items()} }); a constrained "
                    "covariate has one coefficient for all of them"
                )
        design = Design.of(data, columns, reference, weights, name)
        group, rows = design.strata(data, model=name)
        stratum_weights = np.asarray(
            np.bincount(group, weights=weights, minlength=len(rows)), dtype=np.float64)  # fmt: skip
        spec = cls(design, tuple(per_process.items()), constrain, rows, stratum_weights)
        return spec, group

    @property
    def coefficients(self) -> list[tuple[str, str, int]]:
        """Per coefficient: its name, its process (or :data:`SHARED`) and its term."""
        found = []
        for process, columns in self.processes:
            for column in columns:
                if column not in self.constrained:
                    found += [(f"{process}:{self.design.terms[t]}", process, t)
                              for t in self.design.terms_of(column)]  # fmt: skip
        for column in self.constrained:
            found += [(f"{SHARED}:{self.design.terms[t]}", SHARED, t)
                      for t in self.design.terms_of(column)]  # fmt: skip
        return found

    @property
    def names(self) -> list[str]:
        return [name for name, _, _ in self.coefficients]

    @property
    def columns(self) -> tuple[str, ...]:
        return self.design.columns

    def loading(self, terms: FloatArray, model: Model) -> FloatArray:
        """``X`` with ``eta[s, j] = X[s, j] @ coefficients`` for strata ``s``, parameters ``j``.

        ``terms`` are the strata's expanded covariates (strata x terms).
        """
        names = list(model._param_names)
        links = model._covariate_links
        loading = np.zeros((len(terms), len(names), len(self.coefficients)))
        for c, (_, process, term) in enumerate(self.coefficients):
            for found, link in links.items():
                if process in (found, SHARED):
                    for param, sign in link:
                        loading[:, names.index(param), c] += sign * terms[:, term]
        return loading

    def search_scales(self) -> FloatArray:
        """Per coefficient, the scale it is searched on (its term's)."""
        return np.array([self.design.scales[t] for _, _, t in self.coefficients])

    def to_dict(self) -> dict[str, Any]:
        return {
            "design": self.design.to_dict(),
            "processes": {p: list(cs) for p, cs in self.processes},
            "constrained": list(self.constrained),
            "strata": self.strata.tolist(),
            "stratum_weights": self.stratum_weights.tolist(),
        }

    @classmethod
    def from_dict(cls, saved: Mapping[str, Any]) -> Covariates:
        design = Design.from_dict(saved["design"])
        strata = np.array(saved["strata"], dtype=np.float64).reshape(-1, len(design.terms))
        return cls(design, tuple((p, tuple(cs)) for p, cs in saved["processes"].items()),
                   tuple(saved["constrained"]), strata,
                   np.array(saved["stratum_weights"], dtype=np.float64))  # fmt: skip


def stratum_rows(group: IntpArray, n_strata: int) -> list[IntpArray]:
    """The row positions of each stratum, in order."""
    order = np.argsort(group, kind="stable")
    return np.split(order, np.cumsum(np.bincount(group, minlength=n_strata))[:-1])


# --- the likelihood -----------------------------------------------------------------------------


def covariate_objective(parts: Sequence[Objective], loading: FloatArray, k: int) -> Objective:
    """The log-likelihood summed over strata, at ``(base parameters, coefficients)``.

    ``parts`` are the model's own objectives on each stratum's patterns; stratum ``s`` is
    evaluated at ``base * exp(loading[s] @ coefficients)``, and the gradient follows by the
    chain rule from each part's gradient (None when a part has none).
    """

    def objective(params: FloatArray) -> tuple[float, FloatArray | None]:
        base, coefficients = params[:k], params[k:]
        eta = loading @ coefficients
        if not (np.all(base > 0) and np.all(np.abs(eta) < _MAX_ETA)):
            return -np.inf, np.zeros(len(params))
        per_stratum = base * np.exp(eta)
        total, slopes, has_gradient = 0.0, np.empty_like(per_stratum), True
        for s, part in enumerate(parts):
            value, gradient = part(per_stratum[s])
            total += value
            if gradient is None:
                has_gradient = False
            else:
                slopes[s] = gradient * per_stratum[s]  # d log L / d eta
        if not has_gradient:
            return total, None
        gradient = np.concatenate(
            [slopes.sum(axis=0) / base, np.einsum("sjc,sj->c", loading, slopes)])  # fmt: skip
        return total, gradient

    return objective


def covariate_information(
    parts: Sequence[Objective], loading: FloatArray, k: int, penalty: FloatArray,
    step: float = 1e-5,
) -> Callable[[FloatArray], FloatArray]:  # fmt: skip
    """The observed information at ``theta = (log base, coefficients)``, stratum by stratum.

    Stratum ``s`` reads ``phi_s = log base + loading[s] @ coefficients``, linear in ``theta``,
    so the Hessian is ``sum_s A_s' H_s A_s`` with ``A_s = [I, loading[s]]`` and ``H_s`` the
    stratum's ``k x k`` Hessian in ``phi_s`` (central differences of its gradient): ``2k``
    evaluations of each stratum, the cost of ``2k`` evaluations of the whole likelihood, where
    differencing the whole gradient in every coefficient would cost ``2 (k + m)``. The L2
    penalty's Hessian is added (``4 lambda p^2`` for a positive parameter, ``2 lambda`` for a
    coefficient).
    """

    def slope(part: Objective, phi: FloatArray) -> FloatArray:
        params = np.exp(phi)
        gradient = part(params)[1]
        assert gradient is not None  # only models with a gradient come here
        return np.asarray(gradient * params, dtype=np.float64)

    def information(theta: FloatArray) -> FloatArray:
        n = len(theta)
        hessian = np.zeros((n, n))
        for s, part in enumerate(parts):
            phi = theta[:k] + loading[s] @ theta[k:]
            local = np.empty((k, k))
            for i in range(k):
                shift = np.zeros(k)
                shift[i] = step
                local[i] = (slope(part, phi + shift) - slope(part, phi - shift)) / (2.0 * step)
            local = 0.5 * (local + local.T)
            across = np.hstack([np.eye(k), loading[s]])
            hessian += across.T @ local @ across
        params = np.concatenate([np.exp(theta[:k]), theta[k:]])
        curvature = np.where(np.arange(n) < k, 4.0 * penalty * params**2, 2.0 * penalty)
        return np.asarray(-hessian + np.diag(curvature), dtype=np.float64)

    return information


def _positive_definite(
    information: FloatArray,
) -> tuple[FloatArray, bool] | None:
    """The Cholesky factor of ``information``, damped (Levenberg-Marquardt) until it has one.

    Away from the optimum the likelihood need not be concave: its information is then not
    positive definite, and ``mu I`` (from ``1e-8`` of its largest diagonal entry, ten times
    larger each try) is added until it is, which turns the Newton step towards the gradient.
    """
    if not np.all(np.isfinite(information)):
        return None
    scale = max(float(np.max(np.abs(np.diag(information)))), 1e-300)
    for power in range(-8, 9):
        damped = information + (0.0 if power == -8 else scale * 10.0**power) * np.eye(
            len(information))  # fmt: skip
        try:
            return scipy.linalg.cho_factor(damped)  # type: ignore[no-any-return]
        except np.linalg.LinAlgError:
            continue
    return None


def newton_start(
    objective: Objective, information: Callable[[FloatArray], FloatArray], theta: FloatArray,
    k: int, penalty: FloatArray, n_obs: float, *, max_steps: int = 30,
) -> FloatArray:  # fmt: skip
    """``theta`` after Newton steps on the penalised log-likelihood: a start at the optimum.

    From the fit without covariates (coefficients 0) the likelihood is close to quadratic, and
    the stratum-by-stratum information (:func:`covariate_information`) is cheap, so a handful of
    Newton steps (each halved until the likelihood rises) reach the optimum where a
    quasi-Newton search needs three times the evaluations. The information is computed again
    only when a step shrank the gradient less than fourfold. It stops at a step that does not
    rise, a Hessian that is not negative definite, or a gradient below ``1e-7`` per customer,
    and leaves the last word (and the edges) to the quasi-Newton search it starts.
    """

    def ascent(at: FloatArray) -> tuple[float, FloatArray] | None:
        params = np.concatenate([np.exp(at[:k]), at[k:]])
        value, gradient = objective(params)
        if gradient is None or not np.isfinite(value):
            return None
        value -= float(np.sum(penalty * params**2))
        gradient = (gradient - 2.0 * penalty * params) * np.where(np.arange(len(at)) < k, params,
                                                                 1.0)  # fmt: skip
        return (value, gradient) if np.all(np.isfinite(gradient)) else None

    current, curvature, last = ascent(theta), None, np.inf
    for _ in range(max_steps):
        if current is None or np.max(np.abs(current[1])) < 1e-7 * n_obs:
            break
        value, gradient = current
        size = float(np.max(np.abs(gradient)))
        if curvature is None or size > 0.25 * last:  # the information is kept while steps work
            curvature = _positive_definite(information(theta))
        last = size
        if curvature is None:
            break
        step = scipy.linalg.cho_solve(curvature, gradient)
        rise = float(gradient @ step)
        if not (np.all(np.isfinite(step)) and rise > 0.0):
            break
        step *= min(1.0, 2.0 / float(np.max(np.abs(step))))  # at most e^2 on a parameter
        length, found = 1.0, None
        while length > 1e-3:
            trial = ascent(theta + length * step)
            if trial is not None and trial[0] >= value + 1e-4 * length * rise:
                found = trial
                break
            length /= 2.0
        if found is None:
            break
        theta, current = theta + length * step, found
    return theta
