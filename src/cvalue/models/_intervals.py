"""Per-customer prediction intervals of the purchase models, generic over the model contract.

Three kinds, chosen by ``method`` in every purchase model's ``predict``:

- ``"draws"``: the uncertainty of the estimates. Parameter vectors are drawn from their
  asymptotic normal distribution, positive parameters on the log scale (``theta = theta_hat *
  exp(L z)`` with ``L L' = cov / (theta_hat theta_hat')``), others (coefficients of covariates,
  ``positive_params_`` False) as they are (``theta = theta_hat + L z``); the model is rebuilt
  at each draw with ``with_params``, and P(alive) and the expected purchases are read off the
  draws' quantiles. :func:`parameter_draws` is the one implementation of the draws.
- ``"bootstrap"``: the same uncertainty without the normal approximation: ``n_draws`` bootstrap
  replicates (``Model.resampled``: the model refitted on its customers drawn with replacement,
  as multinomial weights over the fit's patterns), quantiles read off as for the draws.
- ``"predictive"``: the spread of the count ``X(T, T + t)`` itself at the estimates, read off
  each customer's conditional pmf (``purchase_pmf(counts, horizon=..., data=...)``).

Both score each distinct history once (:func:`cvalue.patterns.compress`) and broadcast back.
Nothing here knows a model's formulas: it calls the contract's methods only.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Literal, Protocol, TypeVar

import numpy as np
import numpy.typing as npt
import pandas as pd

from cvalue.errors import SchemaError
from cvalue.models._contract import PurchaseModel, Span
from cvalue.patterns import compress

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = [
    "MAX_COUNT",
    "IntervalMethod",
    "bootstrap_replicates",
    "joint_draws",
    "log_normal_root",
    "parameter_draws",
    "with_intervals",
]

FloatArray = npt.NDArray[np.float64]
IntervalMethod = Literal["draws", "bootstrap", "predictive"]

MAX_COUNT = 10_000
"""The predictive interval sums each customer's pmf over counts ``0 .. MAX_COUNT - 1`` at most
(it stops earlier for a customer once both quantiles are reached, and at the latest once the mass
reaches ``1 - 1e-12``); a quantile not reached by then is reported as ``MAX_COUNT``."""
_MASS = 1.0 - 1e-12
_FIRST_COUNTS = 64  # counts scored in the first pass; each later pass doubles them
_DRAWS_FIX = "pass method='predictive', or fit the model to its data"
_BOOTSTRAP_FIX = (
    "fit the model to its data, or pass method='draws' (a loaded model keeps its covariance)"
)


class _Estimated(Protocol):
    """A fitted model with the covariance of its estimates."""

    @property
    def params_(self) -> pd.Series:
        """The estimates by name."""

    @property
    def covariance_(self) -> pd.DataFrame:
        """Their covariance (NaN for a model built from given parameters)."""

    def with_params(self, params: Mapping[str, float] | npt.ArrayLike) -> Self:
        """A fitted copy at other parameters."""


class _Resampled(Protocol):
    """A model that makes bootstrap replicates of itself."""

    def resampled(self, rng: np.random.Generator) -> Self:
        """A bootstrap replicate, refitted on the fit's customers drawn with replacement."""


class _IntervalModel(PurchaseModel, Protocol):
    """A purchase model with the covariance of its estimates and bootstrap replicates."""

    @property
    def covariance_(self) -> pd.DataFrame:
        """Their covariance (NaN for a model built from given parameters)."""

    def resampled(self, rng: np.random.Generator) -> Self:
        """A bootstrap replicate, refitted on the fit's customers drawn with replacement."""


_Drawn = TypeVar("_Drawn", bound=_Estimated)
_Replicated = TypeVar("_Replicated", bound=_Resampled)


def parameter_draws(
    model: _Drawn, n_draws: int, rng: np.random.Generator, *, fix: str
) -> Iterator[_Drawn]:
    """Copies of ``model`` at parameters drawn around its estimates (log-normal, ``cov / θθᵀ``).

    ``theta = theta_hat * exp(L z)`` with ``z`` standard normal and ``L L' = cov / (theta_hat
    theta_hat')`` from the eigendecomposition (negative eigenvalues, from a Hessian that is not
    positive definite, count as zero). Parameters that are not positive (``positive_params_``
    False: coefficients of covariates) are drawn normally, ``theta = theta_hat + (L z)``, the
    root then scaling them by 1 instead of ``theta_hat`` (:func:`log_normal_root`).

    Parameters
    ----------
    model
        A fitted model with a finite ``covariance_``.
    n_draws
        How many copies.
    rng
        The random generator.
    fix
        What the caller's user should do when there is no covariance, for the error message.
    """
    return (drawn[id(model)] for drawn in joint_draws([model], n_draws, rng, fix=fix))


def joint_draws(
    models: Sequence[_Drawn], n_draws: int, rng: np.random.Generator, *, fix: str
) -> Iterator[dict[int, _Drawn]]:
    """Every model drawn around its estimates, ``n_draws`` times: ``{id(model): copy}``.

    Per draw the models are drawn in turn, in the order given (so a seed gives the same draws as
    long as the models come in the same order). The roots are computed, and a model without a
    covariance refused, before the first draw.
    """
    roots = [(model, *log_normal_root(model, fix=fix), _positive(model, fix)) for model in models]

    def draws() -> Iterator[dict[int, _Drawn]]:
        for _ in range(n_draws):
            yield {
                id(model): model.with_params(
                    _moved(params, root @ rng.standard_normal(len(params)), positive)
                )
                for model, params, root, positive in roots
            }

    return draws()


def _moved(params: FloatArray, step: FloatArray, positive: npt.NDArray[np.bool_]) -> FloatArray:
    """``params * exp(step)`` for the positive parameters, ``params + step`` for the others."""
    if positive.all():  # today's models: exactly the log-normal draw, bit for bit
        return np.asarray(params * np.exp(step), dtype=np.float64)
    return np.where(positive, params * np.exp(np.where(positive, step, 0.0)), params + step)


def _positive(model: _Estimated, fix: str) -> npt.NDArray[np.bool_]:
    """The model's ``positive_params_``; every parameter of a model that does not state them.

    The contract's protocols do not state ``positive_params_``: every model of cvalue derives
    from ``Model``, which does.
    """
    n_params = len(model.params_)
    found = getattr(model, "positive_params_", None)
    positive = np.ones(n_params, dtype=bool) if found is None else np.asarray(found, dtype=bool)
    if positive.shape != (n_params,):
        raise SchemaError(
            f"this {type(model).__name__} states positive_params_ of shape {positive.shape} "
            f"for {n_params} parameters, so its parameters cannot be drawn; {fix}"
        )
    return positive


def log_normal_root(model: _Drawn, *, fix: str) -> tuple[FloatArray, FloatArray]:
    """A model's estimates ``theta_hat`` and ``L`` with ``L L' = cov / (s s')``.

    ``s`` is ``theta_hat`` for a positive parameter (``positive_params_``), drawn ``theta_hat *
    exp((L z)_i)``, and 1 for another one, drawn ``theta_hat + (L z)_i``; ``z`` is standard
    normal. :func:`parameter_draws` draws one model at a time; customer equity draws all of its
    models at once, model by model per draw.
    """
    params = np.asarray(model.params_.to_numpy(), dtype=np.float64)
    covariance = np.asarray(model.covariance_.to_numpy(), dtype=np.float64)
    if not np.all(np.isfinite(covariance)):
        raise SchemaError(
            f"this {type(model).__name__} has no covariance of its estimates (built with "
            f"from_params?), so its parameters cannot be drawn; {fix}"
        )
    scale = np.where(_positive(model, fix), params, 1.0)
    values, vectors = np.linalg.eigh(covariance / np.outer(scale, scale))
    return params, np.asarray(vectors * np.sqrt(np.maximum(values, 0.0)), dtype=np.float64)


def with_intervals(
    model: _IntervalModel,
    data: pd.DataFrame,
    point: pd.DataFrame,
    *,
    horizon: Span,
    level: float | None,
    method: IntervalMethod,
    n_draws: int,
    rng: np.random.Generator | None,
) -> pd.DataFrame:
    """``point`` (the model's ``predict``) with the bounds of a ``level`` interval added.

    What every purchase model's ``predict(data, *, horizon, interval, method, n_draws, rng)``
    does with its options.

    Parameters
    ----------
    model
        The fitted purchase model.
    data
        The customer summary; each distinct history of ``model.summary_columns`` is scored once.
    point
        ``model.predict(data, horizon=horizon)``, returned unchanged when ``level`` is None.
    horizon
        As in ``predict``.
    level
        The interval's level (``interval`` in ``predict``), such as 0.9; None for no interval.
    method
        ``"draws"``: the parameters' uncertainty; adds ``p_alive_lower, p_alive_upper,
        expected_purchases_lower, expected_purchases_upper``, the ``(1 - level) / 2`` and
        ``(1 + level) / 2`` quantiles over ``n_draws`` draws (:func:`parameter_draws`); needs a
        covariance of the estimates (a fitted or loaded model). ``"bootstrap"``: the same
        columns, quantiles over ``n_draws`` bootstrap replicates (``Model.resampled``); needs a
        model fitted on data in this session. ``"predictive"``: the count ``X(T, T + horizon)``
        at the estimates; adds the integers ``purchases_lower, purchases_upper``, the smallest
        counts whose conditional cumulative probability reaches those levels (counts up to
        :data:`MAX_COUNT`).
    n_draws
        How many parameter draws or bootstrap replicates (not for ``"predictive"``).
    rng
        The random generator of the draws or replicates; None means
        ``np.random.default_rng(0)``, so that the same call gives the same bounds.

    Raises
    ------
    SchemaError
        For a level outside (0, 1), fewer than 2 draws, an unknown method, ``"draws"`` for a
        model without a covariance, or ``"bootstrap"`` for a model not fitted on data.
    """
    if level is None:
        return point
    if not 0.0 < level < 1.0:
        raise SchemaError(f"interval must be a level between 0 and 1 (such as 0.9), got {level!r}")
    compressed = compress(data, model.summary_columns)
    tails = np.array([(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    if method in ("draws", "bootstrap"):
        if isinstance(n_draws, bool) or not isinstance(n_draws, int | np.integer) or n_draws < 2:
            raise SchemaError(f"n_draws must be a whole number of at least 2, got {n_draws!r}")
        generator = np.random.default_rng(0) if rng is None else rng
        copies = (
            parameter_draws(model, n_draws, generator, fix=_DRAWS_FIX)
            if method == "draws"
            else bootstrap_replicates(model, n_draws, generator, fix=_BOOTSTRAP_FIX)
        )
        bounds = _draw_bounds(copies, compressed.patterns, horizon, tails, n_draws)
    elif method == "predictive":
        bounds = _count_bounds(model, compressed.patterns, horizon, tails)
    else:
        raise SchemaError(f"method must be 'draws', 'bootstrap' or 'predictive', got {method!r}")
    found = point.copy()
    for name, values in bounds.items():
        found[name] = values[compressed.inverse]
    return found


def bootstrap_replicates(
    model: _Replicated, n_draws: int, rng: np.random.Generator, *, fix: str
) -> Iterator[_Replicated]:
    """``n_draws`` bootstrap replicates of ``model`` (``model.resampled(rng)``, one by one).

    The first replicate is made before the iterator is returned, so that a model with no
    customers to resample is refused at once, with ``fix`` (what the caller's user should do)
    added to the message.
    """
    try:
        first = model.resampled(rng)
    except SchemaError as exc:
        raise SchemaError(
            f"a bootstrap interval refits on resampled customers, but {exc}; {fix}"
        ) from exc

    def replicates() -> Iterator[_Replicated]:
        yield first
        for _ in range(n_draws - 1):
            yield model.resampled(rng)

    return replicates()


def row_quantiles(values: FloatArray, tails: FloatArray) -> FloatArray:
    """``np.quantile(values, tails, axis=1)``, bit for bit, by partial sorting (tails x rows).

    Each tail needs two order statistics of every row (numpy's default, linear interpolation
    between them): ``np.partition`` places just those, in time linear in the row's length,
    where ``np.quantile`` moves the axis and partitions a copy. ``values`` is partitioned in
    place (rows x draws, each row contiguous).
    """
    n = values.shape[1]
    q = np.asarray(tails, dtype=np.float64)
    virtual = (n - 1) * q  # numpy's index for its default, linear interpolation
    below = np.floor(virtual)
    above = below + 1.0
    is_last, is_first = virtual >= n - 1, virtual < 0
    below[is_last], above[is_last] = n - 1, n - 1
    below[is_first], above[is_first] = 0, 0
    gamma = virtual - np.where(is_last, -1.0, below)  # as numpy computes it (-1: the last)
    low, high = below.astype(np.intp), above.astype(np.intp)
    values.partition(np.unique(np.concatenate([[0, n - 1], low, high])), axis=1)
    has_nan = np.isnan(values[:, -1])  # a NaN sorts last: its row's quantiles are NaN
    found = np.empty((len(q), values.shape[0]))
    for j in range(len(q)):
        a, b, t = values[:, low[j]], values[:, high[j]], gamma[j]
        difference = b - a  # numpy's _lerp: a + d t, or b - d (1 - t) from the upper end
        found[j] = b - difference * (1.0 - t) if t >= 0.5 else a + difference * t
    found[:, has_nan] = np.nan
    return found


def _draw_bounds(
    copies: Iterator[PurchaseModel], patterns: pd.DataFrame, horizon: Span, tails: FloatArray,
    n_draws: int,
) -> dict[str, FloatArray]:  # fmt: skip
    """Quantiles over copies of the model of P(alive) and expected purchases, per pattern.

    Each quantity is held as patterns x draws, filled draw by draw, so that each pattern's
    draws are one contiguous row for :func:`row_quantiles`.
    """
    names = ("p_alive", "expected_purchases")
    drawn = {name: np.empty((len(patterns), n_draws)) for name in names}
    for d, copy in enumerate(copies):
        scored = copy.predict(patterns, horizon=horizon)
        for name in names:
            drawn[name][:, d] = scored[name].to_numpy(dtype=np.float64)
    bounds = {}
    for name in names:
        lower, upper = row_quantiles(drawn[name], tails)
        bounds[f"{name}_lower"], bounds[f"{name}_upper"] = lower, upper
    return bounds


def _count_bounds(
    model: _IntervalModel, patterns: pd.DataFrame, horizon: Span, tails: FloatArray
) -> dict[str, FloatArray]:
    """The smallest counts whose cumulative conditional probability reaches each tail."""
    n_patterns = len(patterns)
    cumulative = np.zeros(n_patterns)
    bounds = np.full((len(tails), n_patterns), MAX_COUNT, dtype=np.int64)
    open_rows = np.arange(n_patterns)
    start, stop = 0, _FIRST_COUNTS
    while open_rows.size and start < MAX_COUNT:
        counts = np.arange(start, stop)
        pmf = model.purchase_pmf(counts, horizon=horizon, data=patterns.iloc[open_rows])
        assert isinstance(pmf, pd.DataFrame)  # given data, purchase_pmf returns a frame
        running = cumulative[open_rows, None] + np.cumsum(pmf.to_numpy(np.float64), axis=1)
        for j, tail in enumerate(tails):
            is_new = (bounds[j, open_rows] == MAX_COUNT) & (running[:, -1] >= tail)
            first = np.argmax(running >= tail, axis=1)
            bounds[j, open_rows[is_new]] = counts[first[is_new]]
        cumulative[open_rows] = running[:, -1]
        is_open = (bounds[-1, open_rows] == MAX_COUNT) & (running[:, -1] < _MASS)
        open_rows = open_rows[is_open]
        start, stop = stop, min(2 * stop, MAX_COUNT)
    return {"purchases_lower": bounds[0], "purchases_upper": bounds[1]}
