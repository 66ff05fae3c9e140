"""Scores of forecasts against a holdout: errors, ranking quality and P(alive) calibration.

A purchase model fitted on a calibration period (:func:`cvalue.calibration_holdout`) forecasts
each customer's purchases in the holdout that follows; these functions say how good the
forecast was, in three ways:

- :func:`holdout_scores`: how far the forecast purchases per customer are from the actual ones
  (MAE, RMSE, bias) and how far the forecast total is from the actual total;
- :func:`holdout_total`: the forecast total with two intervals, one for the expected total (the
  uncertainty of the estimates) and one for the total count itself (what the holdout's actual
  total should fall in);
- :func:`gini` and :func:`top_decile_lift`: how well a ranking of the customers (by CLV or
  expected purchases) concentrates what they actually bought in the holdout;
- :func:`brier_score` and :func:`calibration_table`: how well P(alive) matches whether each
  customer bought in the holdout.

Every function takes one value per customer: numpy arrays or sequences of the same length
(matched by position), or pandas Series (matched by index, which must hold the same ids). The
scores do not depend on the order of the customers.

:func:`holdout_scores`, :func:`gini`, :func:`top_decile_lift` and :func:`brier_score` also take
one row per *pattern*, customers with the same values counted once, with ``weights``: how many
customers share each row (the ``weight`` column of a split grouped in the database). With whole
weights each score equals the score of the rows repeated that many times (``np.repeat``); any
finite weights >= 0 work, a weight scaling its row's share of the customers. Weights in a Series
beside two Series are matched by index; otherwise by position, in the order of the first
argument.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Literal, NamedTuple, Protocol, TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import special

from cvalue.errors import DataQualityError, SchemaError, plain
from cvalue.models import PurchaseModel, parameter_draws
from cvalue.patterns import compress, weights_by_value

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = [
    "brier_score",
    "calibration_table",
    "gini",
    "holdout_scores",
    "holdout_total",
    "top_decile_lift",
]

FloatArray: TypeAlias = npt.NDArray[np.float64]
PerCustomer: TypeAlias = (
    pd.Series | npt.NDArray[np.float64] | npt.NDArray[np.bool_] | Sequence[float]
)

_TOP_SHARE = 0.10
_MASS = 1.0 - 1e-12  # the pmf's mass read for a customer's count variance
_MAX_COUNT = 10_000
_FIRST_COUNTS = 64


# --- checks -----------------------------------------------------------------------------------


def _aligned(
    first: PerCustomer,
    second: PerCustomer,
    names: tuple[str, str],
    weights: PerCustomer | None = None,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """``first``, ``second`` and the customers per row as float arrays, matched row by row.

    Two Series are matched by index (and ``weights``, when a Series too, by the same index);
    otherwise by position, and the lengths must agree. No weights count one customer per row.
    """
    if isinstance(first, pd.Series) and isinstance(second, pd.Series):
        second = _reindexed(second, first, names)
        if isinstance(weights, pd.Series):
            weights = _reindexed(weights, first, (names[0], "weights"))
    left, right = _floats(first, names[0]), _floats(second, names[1])
    _same_length(left, right, names)
    _check_finite(left, names[0])
    _check_finite(right, names[1])
    if weights is None:
        return left, right, np.ones(len(left))
    customers = _floats(weights, "weights")
    _same_length(left, customers, (names[0], "weights"))
    _check_weights(customers)
    return left, right, customers


def _reindexed(other: pd.Series, first: pd.Series, names: tuple[str, str]) -> pd.Series:
    """``other`` in the order of ``first``'s index, which must hold the same customer ids."""
    if not first.index.is_unique or not other.index.is_unique:
        raise SchemaError(
            f"{names[0]!r} and {names[1]!r} must each have one value per customer, but an "
            "index repeats a customer id. Aggregate to one row per customer first."
        )
    only_one = first.index.symmetric_difference(other.index)
    if len(only_one):
        raise SchemaError(
            f"{names[0]!r} and {names[1]!r} are misaligned: {len(only_one):,} customer id(s) "
            f"are in one but not the other (e.g. {plain(only_one[0])!r}). Score the same "
            "customers in both, e.g. with .reindex()."
        )
    return other.reindex(first.index)


def _same_length(left: FloatArray, right: FloatArray, names: tuple[str, str]) -> None:
    """Refuse arrays of other lengths: they cannot be matched by position."""
    if len(left) != len(right):
        raise SchemaError(
            f"{names[0]!r} has {len(left):,} values but {names[1]!r} has {len(right):,}: they "
            "are misaligned. Pass one value per customer (or pattern) in each, in the same order."
        )


def _check_weights(customers: FloatArray) -> None:
    """Refuse weights that are not finite counts >= 0, or that sum to no customer."""
    kinds = {
        "NaN": np.isnan(customers),
        "infinite": np.isinf(customers),
        "negative": customers < 0,  # NaN compares False: counted once, as NaN
    }
    bad = kinds["NaN"] | kinds["infinite"] | kinds["negative"]
    if bad.any():
        counts = {kind: int(is_kind.sum()) for kind, is_kind in kinds.items()}
        found = ", ".join(f"{count:,} {kind}" for kind, count in counts.items() if count)
        first = int(np.argmax(bad))
        raise DataQualityError(
            f"'weights' must be finite and >= 0 (how many customers share each row), but "
            f"{int(bad.sum()):,} of {len(customers):,} are not ({found}; e.g. "
            f"{plain(customers[first])!r} at position {first}). Fix or drop those rows."
        )
    if not customers.sum() > 0:
        raise SchemaError(
            f"'weights' sum to 0 over {len(customers):,} rows: there is no customer to score."
        )


def _floats(values: PerCustomer, name: str) -> FloatArray:
    """``values`` as a one-dimensional float array."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise SchemaError(f"{name!r} must be numbers, one per customer: {exc}") from exc
    if array.ndim != 1:
        raise SchemaError(f"{name!r} must be one value per customer, not shape {array.shape}.")
    if len(array) == 0:
        raise SchemaError(f"{name!r} is empty: there is no customer to score.")
    return array


def _check_finite(values: FloatArray, name: str) -> None:
    """Refuse NaN and infinite values, with their count and the first position."""
    bad = ~np.isfinite(values)
    if bad.any():
        raise DataQualityError(
            f"{name!r} has {int(bad.sum()):,} non-finite value(s) (NaN or infinite) of "
            f"{len(values):,} (e.g. position {int(np.argmax(bad))}). Drop or fill them first."
        )


def _check_range(values: FloatArray, name: str, low: float, high: float | None) -> None:
    """Refuse values below ``low`` or above ``high``, with their count."""
    bad = (values < low) | (values > high if high is not None else False)
    if bad.any():
        bound = f"in [{low:g}, {high:g}]" if high is not None else f">= {low:g}"
        raise DataQualityError(
            f"{name!r} must be {bound}, but {int(bad.sum()):,} of {len(values):,} value(s) are "
            f"not (e.g. {plain(values[np.argmax(bad)])!r} at position {int(np.argmax(bad))})."
        )


# --- errors -----------------------------------------------------------------------------------


def holdout_scores(
    actual: PerCustomer, predicted: PerCustomer, *, weights: PerCustomer | None = None
) -> pd.Series:
    """Errors of forecast purchases per customer against the holdout's actual purchases.

    With ``y_i`` the actual and ``ŷ_i`` the predicted purchases of row ``i``, ``w_i`` the
    customers it counts (1 without ``weights``) and ``n = Σ w_i``:

    - ``holdout_mae`` = (1/n) Σ w_i |ŷ_i - y_i|, the mean absolute error;
    - ``holdout_rmse`` = √((1/n) Σ w_i (ŷ_i - y_i)²), the root mean squared error;
    - ``holdout_bias`` = (1/n) Σ w_i (ŷ_i - y_i): positive when the model forecasts too many;
    - ``relative_error_total`` = (Σ w_i ŷ_i - Σ w_i y_i) / Σ w_i y_i, the error of the
      forecast total as a share of the actual total (NaN when nobody bought);
    - ``predicted_total`` = Σ w_i ŷ_i and ``actual_total`` = Σ w_i y_i.

    Always RMSE ≥ MAE ≥ |bias|.

    Parameters
    ----------
    actual
        Purchases of each customer in the holdout (``frequency_holdout`` of
        :func:`cvalue.calibration_holdout`).
    predicted
        The model's expected purchases of each customer over the holdout.
    weights
        How many customers each row stands for (None: one each); finite and >= 0.

    Returns
    -------
    pandas.Series
        The six scores, by the names above.

    Raises
    ------
    SchemaError
        If the inputs are misaligned (other lengths, or Series of other customer ids) or
        empty, or the weights sum to 0.
    DataQualityError
        If ``actual`` or ``predicted`` holds NaN or infinite values, or a weight is NaN,
        infinite or negative (the message counts them).

    Examples
    --------
    >>> holdout_scores([0, 2, 1], [0.5, 1.0, 1.5]).round(3).to_dict()
    {'holdout_mae': 0.667, 'holdout_rmse': 0.707, 'holdout_bias': 0.0,
     'relative_error_total': 0.0, 'predicted_total': 3.0, 'actual_total': 3.0}
    >>> scores = holdout_scores([0, 2], [0.5, 1.0], weights=[2, 1])  # [0, 0, 2], [.5, .5, 1]
    >>> round(float(scores["holdout_mae"]), 3)
    0.667
    """
    truth, forecast, customers = _aligned(actual, predicted, ("actual", "predicted"), weights)
    n_customers = float(customers.sum())
    error = forecast - truth
    actual_total = float(np.sum(customers * truth))
    predicted_total = float(np.sum(customers * forecast))
    relative = (predicted_total - actual_total) / actual_total if actual_total else float("nan")
    return pd.Series(
        {
            "holdout_mae": float(np.sum(customers * np.abs(error)) / n_customers),
            "holdout_rmse": float(np.sqrt(np.sum(customers * error**2) / n_customers)),
            "holdout_bias": float(np.sum(customers * error) / n_customers),
            "relative_error_total": relative,
            "predicted_total": predicted_total,
            "actual_total": actual_total,
        },
        name="holdout_scores",
    )


class _HoldoutModel(PurchaseModel, Protocol):
    """A purchase model with the covariance of its estimates and bootstrap replicates."""

    @property
    def covariance_(self) -> pd.DataFrame:
        """Their covariance (NaN for a model built from given parameters)."""

    def resampled(self, rng: np.random.Generator) -> Self:
        """A bootstrap replicate, refitted on the fit's customers drawn with replacement."""


def holdout_total(
    model: _HoldoutModel,
    data: pd.DataFrame,
    *,
    horizon: float | str,
    interval: float = 0.9,
    method: Literal["draws", "bootstrap"] = "draws",
    n_draws: int = 200,
    rng: np.random.Generator | None = None,
) -> pd.Series:
    """The forecast total purchases of ``data``'s customers over ``horizon``, with intervals.

    Two intervals at level ``interval``:

    - ``predicted_total_lower, predicted_total_upper``: for the expected total ``Σ E[X_i]``,
      from the uncertainty of the estimates only: quantiles over ``n_draws`` parameter draws
      (``"draws"``, log-normal around the estimates) or bootstrap replicates (``"bootstrap"``,
      the model refitted on its customers drawn with replacement) of the sum of the customers'
      expected purchases;
    - ``purchases_total_lower, purchases_total_upper``: for the total count ``Σ X_i`` itself,
      the interval the holdout's actual total should fall in. Given the parameters the
      customers' counts are independent, so their total is close to normal (a sum over many
      customers), with mean ``Σ E[X_i]`` and variance ``Σ Var[X_i]``, each customer's variance
      read off the conditional pmf (``purchase_pmf(..., data=...)``) at the estimates (at a
      drawn parameter it differs by a share of order ``1/sqrt(n)``). Mixed over the draws,
      ``P(total <= k) = mean_d Φ((k + 1/2 - μ_d) / s)`` with ``s² = Σ Var[X_i]``; the bounds
      are the smallest whole ``k`` where it reaches ``(1 ∓ interval) / 2``.

    Parameters
    ----------
    model
        A purchase model fitted on the calibration period.
    data
        The calibration summary of the customers whose holdout is forecast (the model's
        ``summary_columns``); each distinct history is scored once.
    horizon
        The holdout's length (a number in the model's unit, or a duration such as ``"39w"``).
    interval
        The level of both intervals, between 0 and 1.
    method
        ``"draws"`` or ``"bootstrap"`` (needs a model fitted on data in this session).
    n_draws, rng
        How many draws or replicates, and their generator (None: ``default_rng(0)``).

    Returns
    -------
    pandas.Series
        ``predicted_total`` (at the estimates), ``predicted_total_lower``,
        ``predicted_total_upper``, ``purchases_total_lower``, ``purchases_total_upper``.

    Raises
    ------
    SchemaError
        For a level outside (0, 1), fewer than 2 draws, an unknown method, a model without a
        covariance (``"draws"``) or not fitted on data (``"bootstrap"``).
    """
    if isinstance(interval, bool) or not 0.0 < interval < 1.0:
        raise SchemaError(
            f"interval must be a level between 0 and 1 (such as 0.9), got {interval!r}"
        )
    if isinstance(n_draws, bool) or not isinstance(n_draws, int | np.integer) or n_draws < 2:
        raise SchemaError(f"n_draws must be a whole number of at least 2, got {n_draws!r}")
    if method not in ("draws", "bootstrap"):
        raise SchemaError(f"method must be 'draws' or 'bootstrap', got {method!r}")
    compressed = compress(data, model.summary_columns)
    patterns, weights = compressed.patterns, compressed.weights.astype(np.float64)
    generator = np.random.default_rng(0) if rng is None else rng
    estimate = _total(model, patterns, weights, horizon)
    drawn = np.array(
        [
            _total(copy, patterns, weights, horizon)
            for copy in _copies(model, method, n_draws, generator)
        ]
    )
    tails = np.array([(1.0 - interval) / 2.0, (1.0 + interval) / 2.0])
    expected_lower, expected_upper = np.quantile(drawn, tails)
    spread = float(np.sqrt(np.sum(weights * _count_variances(model, patterns, horizon))))
    count_lower, count_upper = (_mixture_quantile(drawn, spread, tail) for tail in tails)
    return pd.Series(
        {
            "predicted_total": estimate,
            "predicted_total_lower": float(expected_lower),
            "predicted_total_upper": float(expected_upper),
            "purchases_total_lower": count_lower,
            "purchases_total_upper": count_upper,
        },
        name="holdout_total",
    )


def _copies(
    model: _HoldoutModel, method: str, n_draws: int, rng: np.random.Generator
) -> Iterator[PurchaseModel]:
    """The model at ``n_draws`` parameter draws or bootstrap replicates."""
    if method == "draws":
        fix = "fit the model to its data"
        yield from parameter_draws(model, n_draws, rng, fix=fix)
        return
    for _ in range(n_draws):
        try:
            yield model.resampled(rng)
        except SchemaError as exc:
            raise SchemaError(
                f"a bootstrap interval refits on resampled customers, but {exc}; "
                "or pass method='draws' (a loaded model keeps its covariance)"
            ) from exc


def _total(
    model: PurchaseModel, patterns: pd.DataFrame, weights: FloatArray, horizon: float | str
) -> float:
    """``Σ E[X_i]`` over the customers (patterns weighted by their customers)."""
    expected = model.expected_purchases(patterns, horizon=horizon).to_numpy(dtype=np.float64)
    return float(np.sum(weights * expected))


def _count_variances(
    model: PurchaseModel, patterns: pd.DataFrame, horizon: float | str
) -> FloatArray:
    """Each pattern's ``Var[X]`` from its conditional pmf, read until its mass reaches 1 - 1e-12."""
    n_patterns = len(patterns)
    moments = np.zeros((3, n_patterns))  # mass, E[X], E[X^2] of the counts read so far
    open_rows = np.arange(n_patterns)
    start, stop = 0, _FIRST_COUNTS
    while open_rows.size and start < _MAX_COUNT:
        counts = np.arange(start, stop, dtype=np.float64)
        pmf = model.purchase_pmf(
            np.arange(start, stop), horizon=horizon, data=patterns.iloc[open_rows]
        )
        assert isinstance(pmf, pd.DataFrame)  # given data, purchase_pmf returns a frame
        table = pmf.to_numpy(np.float64)
        moments[:, open_rows] += np.stack([table.sum(axis=1), table @ counts, table @ counts**2])
        open_rows = open_rows[moments[0, open_rows] < _MASS]
        start, stop = stop, min(2 * stop, _MAX_COUNT)
    return np.asarray(np.maximum(moments[2] - moments[1] ** 2, 0.0), dtype=np.float64)


def _mixture_quantile(means: FloatArray, spread: float, tail: float) -> int:
    """The smallest whole ``k`` with ``mean_d Φ((k + 1/2 - means_d) / spread) >= tail``."""

    def cumulative(k: float) -> float:
        if spread == 0.0:
            return float(np.mean(means <= k + 0.5))
        return float(np.mean(special.ndtr((k + 0.5 - means) / spread)))

    low = int(np.floor(means.min() - 10.0 * spread)) - 1  # cumulative(low) < tail
    high = int(np.ceil(means.max() + 10.0 * spread)) + 1  # cumulative(high) >= tail
    while high - low > 1:
        middle = (low + high) // 2
        if cumulative(middle) >= tail:
            high = middle
        else:
            low = middle
    return max(high, 0)


# --- ranking ----------------------------------------------------------------------------------


class _Gains(NamedTuple):
    """The cumulative gains (Lorenz) curve at the ends of the tie groups, highest value first.

    ``customers[g]`` is how many customers the first ``g`` groups hold (0 to n) and ``shares[g]``
    the share of the total outcome they hold (0 to 1; NaN when the total outcome is 0).
    """

    customers: FloatArray
    shares: FloatArray


def _gains(ranking: FloatArray, result: FloatArray, customers: FloatArray) -> _Gains:
    """The gains curve of ``result`` ordered by ``ranking``, rows counting ``customers`` each.

    Customers with equal values share their outcome evenly (each gets the tie group's mean), so
    the curve is the average over every order of the ties, and between two customers of one tie
    group it is a straight line: knots at the groups' ends describe it whole. A row of weight
    ``w`` is ``w`` customers of one value, so rows of whole weights give the curve of the rows
    repeated; rows of weight 0 are left out.
    """
    is_counted = customers > 0
    if not is_counted.all():
        ranking, result, customers = ranking[is_counted], result[is_counted], customers[is_counted]
    return _gains_of_sums(ranking, customers, customers * result)


def _gains_of_sums(ranking: FloatArray, customers: FloatArray, outcome: FloatArray) -> _Gains:
    """The gains curve of rows holding ``customers`` (> 0) and their summed ``outcome``.

    The rows are sorted once (stably, so that each group sums its rows in their order) and the
    groups are the runs of equal values, highest first: ``np.unique`` held about 50 bytes a row
    at once, this about 30.
    """
    order = np.argsort(ranking, kind="stable")
    ordered = ranking[order]
    starts = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]]))
    del ordered
    by_group = np.add.reduceat(customers[order], starts)[::-1]
    sums = np.add.reduceat(outcome[order], starts)[::-1]
    del order
    return _curve(by_group, sums)


def _curve(by_group: FloatArray, sums: FloatArray) -> _Gains:
    """The gains curve of tie groups, highest value first: their customers and summed outcome."""
    cumulative = np.concatenate([[0.0], np.cumsum(sums)])
    total = cumulative[-1]
    shares = cumulative / total if total > 0 else np.full(len(cumulative), np.nan)
    return _Gains(np.concatenate([[0.0], np.cumsum(by_group)]), shares)


def _raw_gini(curve: _Gains) -> float:
    """2 · (area under the gains curve, the groups' trapezoids) - 1: 0 for a random ranking."""
    width = np.diff(curve.customers)
    area = np.sum(width * (curve.shares[1:] + curve.shares[:-1])) / (2.0 * curve.customers[-1])
    return float(2.0 * area - 1.0)


def _ranking_pair(
    values: PerCustomer, outcome: PerCustomer, weights: PerCustomer | None
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """``values``, ``outcome`` (>= 0) and the customers per row, aligned and checked."""
    ranking, result, customers = _aligned(values, outcome, ("values", "outcome"), weights)
    _check_range(result, "outcome", 0.0, None)
    return ranking, result, customers


def gini(values: PerCustomer, outcome: PerCustomer, *, weights: PerCustomer | None = None) -> float:
    """How well ranking customers by ``values`` concentrates their ``outcome``: normalised Gini.

    Order the ``n`` customers by ``values``, highest first, and let ``G_k`` be the share of the
    total outcome held by the first ``k`` (the cumulative gains, or Lorenz, curve; ``G_0 = 0``,
    ``G_n = 1``). The Gini of the ranking is twice the area between that curve and the diagonal:

        Gini_raw = (2/n) Σ_{k=1..n} (G_k + G_{k-1}) / 2 - 1

    and the score is its ratio to the Gini of the perfect ranking (by ``outcome`` itself), as
    in the normalised Gini of CLV model evaluation:

        gini = Gini_raw(values) / Gini_raw(outcome)

    so 1 is the perfect ranking, 0 a ranking no better than chance (a constant one), and -1 the
    reversed perfect ranking. Customers with equal ``values`` share their outcome evenly: the
    score is the mean over every order of the ties, so it does not depend on the input order.

    Sharing makes ``G`` a straight line across each tie group, so the sum reduces to the groups:
    with the distinct ``values`` highest first, ``W_g`` the customers of group ``g`` and ``G_g``
    the share held by the first ``g`` groups,

        Gini_raw = (2/n) Σ_g W_g (G_g + G_{g-1}) / 2 - 1,   n = Σ_g W_g

    which is how it is computed. With ``weights``, row ``i`` is ``w_i`` customers of its value
    and outcome: ``W_g = Σ_{i in g} w_i`` and ``G_g = Σ_{i in groups <= g} w_i y_i / Σ_i w_i
    y_i``; with whole weights that is the Gini of the rows repeated ``w_i`` times, and for any
    weights the area under the piecewise-linear curve through those points.

    Parameters
    ----------
    values
        What customers are ranked by: CLV, expected purchases, P(alive).
    outcome
        What they actually did in the holdout: purchases or value; non-negative.
    weights
        How many customers each row stands for (None: one each); finite and >= 0.

    Returns
    -------
    float
        The normalised Gini in [-1, 1]; NaN when the outcome is the same for every customer (or
        zero in total), where no ranking can beat another.

    Raises
    ------
    SchemaError
        If the inputs are misaligned or empty, or the weights sum to 0.
    DataQualityError
        If ``values`` or ``outcome`` holds NaN or infinite values, ``outcome`` is negative, or
        a weight is NaN, infinite or negative.

    Examples
    --------
    >>> gini([3, 2, 1, 0], [4, 2, 0, 0])  # the perfect ranking
    1.0
    >>> round(gini([0, 1, 2, 3], [4, 2, 0, 0]), 12)  # reversed
    -1.0
    >>> gini([1, 1, 1, 1], [4, 2, 0, 0])  # constant: no information
    0.0
    >>> gini([3, 2, 0], [4, 2, 0], weights=[1, 1, 2])  # the first example, as patterns
    1.0
    """
    ranking, result, customers = _ranking_pair(values, outcome, weights)
    perfect = _raw_gini(_gains(result, result, customers))
    if not np.isfinite(perfect) or perfect <= 0:
        return float("nan")
    return _raw_gini(_gains(ranking, result, customers)) / perfect


def top_decile_lift(
    values: PerCustomer, outcome: PerCustomer, *, weights: PerCustomer | None = None
) -> float:
    """The share of the total ``outcome`` in the top 10 % of customers by ``values``, over 0.10.

    With ``G`` the cumulative gains curve of :func:`gini` (ties sharing their outcome evenly),
    read at 10 % of the customers by linear interpolation between whole customers:

        top_decile_lift = G(0.10 · n) / 0.10

    1 is no better than chance; the most it can be is 10, when the top tenth of the customers
    holds the whole outcome. With fewer than 10 customers the top 10 % is a fraction of one.
    ``G`` is straight across a tie group, so it is interpolated between the groups' ends
    ``(Σ_{h<=g} W_h, G_g)`` of :func:`gini`; with ``weights``, ``n = Σ w_i`` and the groups
    count their rows' weights, which for whole weights is the lift of the rows repeated.

    Parameters
    ----------
    values
        What customers are ranked by: CLV, expected purchases, P(alive).
    outcome
        What they actually did in the holdout: purchases or value; non-negative.
    weights
        How many customers each row stands for (None: one each); finite and >= 0.

    Returns
    -------
    float
        The lift; NaN when the total outcome is zero.

    Raises
    ------
    SchemaError
        If the inputs are misaligned or empty, or the weights sum to 0.
    DataQualityError
        If ``values`` or ``outcome`` holds NaN or infinite values, ``outcome`` is negative, or
        a weight is NaN, infinite or negative.

    Examples
    --------
    >>> top_decile_lift(range(20), [0] * 18 + [3, 1])  # the top 2 of 20 bought everything
    10.0
    >>> top_decile_lift([2, 1, 0], [3, 1, 0], weights=[1, 1, 18])  # the same, as patterns
    10.0
    """
    curve = _gains(*_ranking_pair(values, outcome, weights))
    position = _TOP_SHARE * curve.customers[-1]
    share = np.interp(position, curve.customers, curve.shares)
    return float(share / _TOP_SHARE)


def pattern_ranking_scores(
    predicted: FloatArray, customers: FloatArray, outcome_sums: FloatArray,
    actual: FloatArray, weights: FloatArray,
) -> tuple[float, float]:  # fmt: skip
    """:func:`gini` and :func:`top_decile_lift` of rows that share patterns, from the patterns.

    ``predicted``, ``customers`` (> 0) and ``outcome_sums`` are per pattern: its prediction, its
    customers and their summed outcome; ``actual`` and ``weights`` are per row (each row one
    pattern's customers with one outcome). Rows of one pattern share its prediction, so the
    ranking's tie groups hold the same customers and outcomes as the rows' own: the ranking
    curve comes from the patterns. The perfect ranking (by the outcome itself) comes from the
    rows, whose few distinct outcomes are summed a block at a time. The scores equal the rows' to
    rounding, without a prediction per row.
    """
    curve = _gains_of_sums(predicted, customers, outcome_sums)
    # the rows' customers per distinct outcome, summed a block at a time (weight 0 adds nothing);
    # a group's outcome is its value times its customers
    outcomes, customers_by_outcome = weights_by_value(actual, weights)
    levels = np.asarray(outcomes, dtype=np.float64)[::-1]
    by_outcome = customers_by_outcome[::-1]
    is_counted = by_outcome > 0
    perfect = _raw_gini(_curve(by_outcome[is_counted], (levels * by_outcome)[is_counted]))
    ratio = _raw_gini(curve) / perfect if np.isfinite(perfect) and perfect > 0 else float("nan")
    share = np.interp(_TOP_SHARE * curve.customers[-1], curve.customers, curve.shares)
    return float(ratio), float(share / _TOP_SHARE)


# --- P(alive) ---------------------------------------------------------------------------------


def _alive_pairs(
    p_alive: PerCustomer, is_active: PerCustomer, weights: PerCustomer | None = None
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """P(alive), the 0/1 activity and the customers per row, aligned and checked."""
    probability, active, customers = _aligned(p_alive, is_active, ("p_alive", "is_active"), weights)
    _check_range(probability, "p_alive", 0.0, 1.0)
    not_binary = (active != 0.0) & (active != 1.0)
    if not_binary.any():
        raise DataQualityError(
            f"'is_active' must be True/False (or 1/0), but {int(not_binary.sum()):,} value(s) "
            f"are not (e.g. {plain(active[np.argmax(not_binary)])!r}). Pass e.g. "
            "frequency_holdout > 0."
        )
    return probability, active, customers


def brier_score(
    p_alive: PerCustomer, is_active: PerCustomer, *, weights: PerCustomer | None = None
) -> float:
    """The Brier score of P(alive) against whether each customer bought in the holdout.

    Whether a customer is alive cannot be observed; whether they bought in the holdout can, and
    is the proxy used here (``is_active = frequency_holdout > 0``). A live customer may buy
    nothing in a short holdout, so even a true P(alive) scores above 0; the score compares
    models on the same holdout rather than measuring P(alive) absolutely:

        brier = (1/n) Σ w_i (p_i - a_i)²,   n = Σ w_i

    with ``a_i = 1`` if the customers of row ``i`` bought in the holdout, else 0, and ``w_i``
    the customers the row counts (1 without ``weights``, one row per customer). 0 is perfect,
    0.25 what P(alive) = 0.5 for everyone scores; lower is better.

    Parameters
    ----------
    p_alive
        Each customer's P(alive) at the end of the calibration period, in [0, 1].
    is_active
        Whether each customer bought in the holdout: booleans or 0/1.
    weights
        How many customers each row stands for (None: one each); finite and >= 0.

    Returns
    -------
    float
        The Brier score, in [0, 1].

    Raises
    ------
    SchemaError
        If the inputs are misaligned or empty, or the weights sum to 0.
    DataQualityError
        If ``p_alive`` or ``is_active`` holds NaN or infinite values, ``p_alive`` is outside
        [0, 1], ``is_active`` is not 0/1, or a weight is NaN, infinite or negative.

    Examples
    --------
    >>> round(brier_score([0.9, 0.2, 0.5], [True, False, True]), 6)
    0.1
    >>> round(brier_score([0.9, 0.2], [True, False], weights=[3, 1]), 6)  # 3 alike, 1 other
    0.0175
    """
    probability, active, customers = _alive_pairs(p_alive, is_active, weights)
    return float(np.sum(customers * (probability - active) ** 2) / customers.sum())


def calibration_table(
    p_alive: PerCustomer, is_active: PerCustomer, *, n_bins: int = 10
) -> pd.DataFrame:
    """P(alive) against the share that bought in the holdout, by bin of P(alive).

    The bins are of equal width on the probability scale: with ``n_bins = 10``, [0, 0.1),
    [0.1, 0.2), ..., [0.9, 1.0]. Equal widths (not equal counts) keep tied values in one bin,
    so the table does not depend on the order of the customers. A calibrated P(alive) has
    ``mean_p_alive`` close to ``share_active`` in each bin (see :func:`brier_score` for why
    buying in the holdout stands in for being alive).

    Parameters
    ----------
    p_alive
        Each customer's P(alive) at the end of the calibration period, in [0, 1].
    is_active
        Whether each customer bought in the holdout: booleans or 0/1.
    n_bins
        How many bins of P(alive).

    Returns
    -------
    pandas.DataFrame
        One row per bin that holds customers, indexed by the bin's lower edge (``p_alive_from``):
        ``p_alive_to``, ``customers``, ``mean_p_alive`` and ``share_active``.

    Raises
    ------
    SchemaError
        As :func:`brier_score`, or if ``n_bins`` is below 1.
    DataQualityError
        As :func:`brier_score`.

    Examples
    --------
    >>> calibration_table([0.05, 0.15, 0.95, 0.9], [0, 0, 1, 0], n_bins=2)
                  p_alive_to  customers  mean_p_alive  share_active
    p_alive_from
    0.0                  0.5          2         0.100           0.0
    0.5                  1.0          2         0.925           0.5
    """
    if n_bins < 1:
        raise SchemaError(f"n_bins must be at least 1, not {n_bins}.")
    probability, active, _ = _alive_pairs(p_alive, is_active)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.minimum((probability * n_bins).astype(np.int64), n_bins - 1)
    counts = np.bincount(which, minlength=n_bins)
    held = counts > 0
    table = pd.DataFrame(
        {
            "p_alive_from": edges[:-1][held],
            "p_alive_to": edges[1:][held],
            "customers": counts[held],
            "mean_p_alive": np.bincount(which, probability, n_bins)[held] / counts[held],
            "share_active": np.bincount(which, active, n_bins)[held] / counts[held],
        }
    )
    return table.set_index("p_alive_from")
