"""The BG/NBD model: Fader, Hardie & Lee (2005), "Counting your customers the easy way".

While alive, a customer buys at a Poisson rate ``lambda ~ Gamma(r, alpha)``; after each repeat
purchase the customer drops out with probability ``p ~ Beta(a, b)``. The MBG/NBD
(:class:`~cvalue.models.modified_beta_geo.ModifiedBetaGeo`) also lets the customer drop out right
after the first purchase, at time 0; both share the code here, the MBG/NBD through
``_dropout_at_start = 1``, which shifts every ``b + x`` to ``b + x + 1``.

Everything is computed in log space on the distinct (frequency, recency, T) patterns: the
likelihood and its analytic gradient (so the fit costs what the patterns cost), P(alive), and the
conditional expectation through :func:`cvalue.models._special.expected_while_alive`, which stays
finite and accurate at ``a = 1``, for ``a + b < 1`` and for ``x`` in the hundreds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.special import betainc, betaln, digamma, expit, gammaln, xlogy

from cvalue.errors import DataQualityError, SchemaError
from cvalue.models._base import (
    FloatArray,
    Model,
    Patterns,
    distinct_values,
    frame_per_row,
    patterns_of,
    per_pattern,
)
from cvalue.models._mle import MLEResult, Objective
from cvalue.models._special import expected_while_alive
from cvalue.units import Duration, TimeUnit, as_time_unit

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["BetaGeo"]

_COLUMNS = ("frequency", "recency", "T")
_DENSE_PAIRS = 1 << 24  # (x, T) tables up to 16M cells are addressed directly
_RECENCY_SLACK = 1e-9  # relative: recency == T up to rounding of days / 7 is not an error
Span = float | Duration | str


BoolArray = npt.NDArray[np.bool_]
Rule = tuple[BoolArray, str, str]


def _rules(values: dict[str, FloatArray], weight: FloatArray | None) -> list[Rule]:
    """Each rule of a (frequency, recency, T) summary: the values that break it, what, the fix."""
    x, t_x, T = values["frequency"], values["recency"], values["T"]
    with np.errstate(invalid="ignore"):  # NaN compares False: counted by the first rule
        rules = [
            (~np.isfinite(x) | ~np.isfinite(t_x) | ~np.isfinite(T),
             "'frequency', 'recency' or 'T' is missing or infinite", "drop or fill those rows"),
            (x < 0, "'frequency' is negative", "frequency counts repeat purchases"),
            (x != np.floor(x), "'frequency' is not a whole number", "it counts purchases"),
            (t_x < 0, "'recency' is negative", "recency is the time since the first purchase"),
            (T <= 0, "'T' is not positive", "T is the customer's age at the observation end"),
            (t_x > T * (1.0 + _RECENCY_SLACK),
             "'recency' > 'T'", "recency cannot exceed the customer's age. Is observation_end "
             "before the last purchase?"),
        ]  # fmt: skip
        if weight is not None:
            rules.append((~(weight >= 0), "'weight' is negative or missing",
                          "weights count the customers of each row"))  # fmt: skip
    return rules


def _describe(what: str, n_bad: int, n_rows: int, example: object, fix: str) -> str:
    return f"{what} in {n_bad:,} of {n_rows:,} rows (e.g. customer {example!r}); {fix}"


def _problems(data: pd.DataFrame) -> list[str]:
    """Every rule of a (frequency, recency, T) summary that some rows break, with counts."""
    values = {c: data[c].to_numpy(dtype=np.float64) for c in _COLUMNS}
    weight = data["weight"].to_numpy(dtype=np.float64) if "weight" in data else None
    found = []
    for is_bad, what, fix in _rules(values, weight):
        n_bad = int(np.count_nonzero(is_bad))
        if n_bad:
            example = data.index[int(np.argmax(is_bad))]
            found.append(_describe(what, n_bad, len(data), example, fix))
    return found


def _check_frame(data: pd.DataFrame, model: str) -> None:
    """Raise unless ``data`` is a DataFrame with rows and the summary's columns."""
    if not isinstance(data, pd.DataFrame):
        raise SchemaError(f"{model} needs a pandas DataFrame, got {type(data).__name__}")
    missing = [c for c in _COLUMNS if c not in data]
    if missing:
        raise SchemaError(
            f"{model} needs column(s) {missing}; the data has {list(data.columns)} "
            f"({len(data):,} rows). Build a summary with cvalue.rfm_summary"
        )
    if len(data) == 0:
        raise DataQualityError(f"{model} got a summary with 0 rows: there is nothing to fit")


def _checked(data: pd.DataFrame, model: str) -> pd.DataFrame:
    """``data`` itself, after checking its columns and values; raises on the first failure kind."""
    _check_frame(data, model)
    try:
        found = _problems(data)
    except (TypeError, ValueError) as exc:
        raise SchemaError(
            f"{model} needs numeric 'frequency', 'recency' and 'T' columns; got dtypes "
            f"{data[list(_COLUMNS)].dtypes.astype(str).to_dict()} ({len(data):,} rows)"
        ) from exc
    if found:
        raise DataQualityError(f"{model}: " + "; ".join(found))
    return data


def _checked_patterns(
    data: pd.DataFrame, model: str
) -> tuple[dict[str, FloatArray], npt.NDArray[np.intp]]:
    """The distinct (frequency, recency, T) rows of ``data`` and the map back, checked.

    The rules of :func:`_checked` are evaluated once per distinct row; a rule's row count is the
    number of rows of the patterns that break it, so the message is the same, at the cost of
    the patterns instead of the rows. Missing or non-numeric values stop the compression, and
    :func:`_checked` then names them.
    """
    _check_frame(data, model)
    failure: Exception | None = None
    try:
        values, inverse = per_pattern(data, _COLUMNS, model=model)
    except (DataQualityError, TypeError, ValueError) as exc:
        failure = exc
    if failure is not None:
        _checked(data, model)
        raise failure
    found = []
    for is_bad, what, fix in _rules(values, None):
        if is_bad.any():
            is_bad_row = is_bad[inverse]
            example = data.index[int(np.argmax(is_bad_row))]
            found.append(_describe(what, int(np.count_nonzero(is_bad_row)), len(data), example,
                                   fix))  # fmt: skip
    if found:
        raise DataQualityError(f"{model}: " + "; ".join(found))
    return values, inverse


class _Grouped:
    """Distinct values of a column, the map back to rows, and weight sums per value."""

    __slots__ = ("distinct", "inverse", "weighted_x", "weights")

    def __init__(self, column: FloatArray, weights: FloatArray, x: FloatArray | None = None):
        self.distinct, self.inverse = distinct_values(column)
        size = self.distinct.size
        self.weights = np.bincount(self.inverse, weights=weights, minlength=size)
        self.weighted_x = (
            self.weights if x is None else np.bincount(self.inverse, weights=x, minlength=size)
        )


class _Rows:
    """Patterns to score: ``x`` (float and int), and codes of ``T`` and ``t_x`` into their values.

    A few hundred distinct ages repeat over the patterns: hashing them costs less than the logs
    it saves.
    """

    __slots__ = ("T_code", "T_values", "t_code", "t_values", "x", "x_int", "x_max")

    def __init__(self, x: FloatArray, t_x: FloatArray, T: FloatArray) -> None:
        self.x, self.x_int = x, x.astype(np.int64)
        self.x_max = int(self.x_int.max())
        self.T_code, self.T_values = pd.factorize(T)
        self.t_code, self.t_values = pd.factorize(t_x)


class _BetaGeoFamily(Model):
    """BG/NBD-type models: Poisson purchasing, Beta-geometric dropout, Gamma and Beta mixing.

    ``_dropout_at_start`` is 0 for the BG/NBD (dropout only after repeat purchases) and 1 for
    the MBG/NBD (also at time 0): ``s`` in the formulas below.
    """

    _param_names: ClassVar[tuple[str, ...]] = ("r", "alpha", "a", "b")
    _dropout_at_start: ClassVar[int] = 0

    @classmethod
    def from_params(
        cls, r: float, alpha: float, a: float, b: float, *, unit: TimeUnit | str | None = None
    ) -> Self:
        """A model with given parameters (no fit, no standard errors), e.g. to simulate."""
        model = cls()
        params = np.array([r, alpha, a, b], dtype=np.float64)
        if not np.all(np.isfinite(params) & (params > 0)):
            raise SchemaError(f"{cls.__name__} parameters must be positive, got {params.tolist()}")
        result = MLEResult(params, np.full((4, 4), np.nan), np.nan, True, 0, "given")
        model._store(result, 0.0, None if unit is None else as_time_unit(unit))
        return model

    # --- fitting -----------------------------------------------------------------------------

    def _prepare(self, data: pd.DataFrame) -> Patterns:
        name = type(self).__name__
        if isinstance(data, pd.DataFrame) and "weight" in data:  # already compressed
            return patterns_of(_checked(data, name), _COLUMNS, model=name)
        values, inverse = _checked_patterns(data, name)
        weights = np.bincount(inverse, minlength=len(values["frequency"])).astype(np.float64)
        return Patterns(values, weights)

    def _starting_points(self, patterns: Patterns) -> list[FloatArray]:
        w = patterns.weights
        rate = max(float(np.sum(w * patterns["frequency"])), 1.0) / float(
            np.sum(w * patterns["T"]))  # fmt: skip
        return [
            np.array([1.0, 1.0 / rate, 1.0, 1.0]),
            np.array([0.5, 0.5 / rate, 0.8, 2.5]),
            np.array([2.0, 2.0 / rate, 2.0, 0.5]),
            np.array([0.2, 0.2 / rate, 0.3, 0.5]),
        ]

    def _objective(self, patterns: Patterns) -> Objective:
        """Weighted log-likelihood and gradient: Fader, Hardie & Lee (2005) eq. (6).

        With ``s = _dropout_at_start`` and ``k = r + x``,
        ``log L = log G(k) - log G(r) + r log alpha + log B(a, b+x+s) - log B(a, b)
        + log(exp(u1) + exp(u2))``, ``u1 = -k log(alpha + T)`` and
        ``u2 = log a - log(b+x+s-1) - k log(alpha + t_x)`` (only when ``x + s >= 1``); the
        MBG/NBD is Batislam, Denizel & Filiztekin (2007) eq. (4). Written as
        ``u1 + softplus(d)`` with ``d = u2 - u1``, the share ``p2 = expit(d)`` of the second
        term carries the gradient. Terms of ``x`` alone are summed once per distinct ``x``,
        terms of ``T`` alone once per distinct ``T``; only ``d`` is formed per pattern.
        """
        s = float(self._dropout_at_start)
        x, T, w = patterns["frequency"], patterns["T"], patterns.weights
        t_x = np.where(x > 0, patterns["recency"], 0.0)  # no repeat purchase: no recency
        by_x = _Grouped(x, w)
        by_T = _Grouped(T, w, w * x)
        x_s = by_x.distinct + s
        shifted_x = np.where(x_s >= 1.0, x_s - 1.0, 0.0)  # b + shifted > 0 for every x
        # only rows with x + s >= 1 have the second term (dropout after the last purchase)
        second = x + s >= 1.0
        x2, T2, t_x2, w2 = x[second], T[second], t_x[second], w[second]
        x2_code, elapsed = by_x.inverse[second], T2 - t_x2
        T2_code = by_T.inverse[second]
        t_x_values, t_x2_code = distinct_values(t_x2)
        total = float(np.sum(w))
        tiny = np.finfo(np.float64).tiny

        def objective(params: FloatArray) -> tuple[float, FloatArray]:
            if not np.all(np.isfinite(params) & (params > 0)):
                # exp(theta) under- or overflowed: outside the model, the engine backs off
                return -np.inf, np.zeros(4)
            r, alpha, a, b = (float(v) for v in params)
            log_aT = np.log(alpha + by_T.distinct)
            k_weight_T = r * by_T.weights + by_T.weighted_x  # sum of w k for each T
            # logs of distinct T and t_x only (days on a grid repeat a lot), gathered per row
            gap = log_aT[T2_code] - np.log(alpha + t_x_values)[t_x2_code]
            k2 = r + x2
            d = (np.log(a) - np.log(b + shifted_x))[x2_code] + k2 * gap  # u2 - u1
            p2 = expit(d)
            wp2 = w2 * p2
            # softplus(d) = d - log(expit(d)), cheaper than logaddexp; where expit(d)
            # underflows (d < -700) softplus(d) = exp(d) is below 1e-304: 0
            softplus = np.where(d < -700.0, 0.0, d - np.log(np.maximum(p2, tiny)))
            constant = gammaln(r + by_x.distinct) - gammaln(r) + betaln(a, b + x_s) - betaln(a, b)
            log_likelihood = (
                float(np.sum(by_x.weights * constant)) + r * np.log(alpha) * total
                - float(np.sum(k_weight_T * log_aT)) + float(np.sum(w2 * softplus))
            )  # fmt: skip
            psi_ab, psi_abx = digamma(a + b), digamma(a + b + x_s)
            d_r = (
                float(np.sum(by_x.weights * (digamma(r + by_x.distinct) - digamma(r))))
                + total * np.log(alpha) - float(np.sum(by_T.weights * log_aT))
                + float(np.sum(wp2 * gap))
            )  # fmt: skip
            d_alpha = (
                total * r / alpha - float(np.sum(k_weight_T / (alpha + by_T.distinct)))
                - float(np.sum(wp2 * k2 * elapsed / ((alpha + T2) * (alpha + t_x2))))
            )  # fmt: skip
            wp2_by_x = np.bincount(x2_code, weights=wp2, minlength=by_x.distinct.size)
            d_a = float(np.sum(by_x.weights * (psi_ab - psi_abx))) + float(np.sum(wp2)) / a
            d_b = float(
                np.sum(by_x.weights * (digamma(b + x_s) - psi_abx - digamma(b) + psi_ab))
            ) - float(np.sum(wp2_by_x / (b + shifted_x)))
            return log_likelihood, np.array([d_r, d_alpha, d_a, d_b])

        return objective

    # --- predictions on patterns -------------------------------------------------------------

    def _params(self) -> tuple[float, float, float, float]:
        self._check_fitted()
        r, alpha, a, b = (float(v) for v in self.params_.to_numpy())
        return r, alpha, a, b

    def _p_alive(self, rows: _Rows) -> FloatArray:
        """P(alive | x, t_x, T): Fader, Hardie & Lee (2005) eq. (13).

        Batislam et al. (2007) eq. (7) for the MBG/NBD:
        ``1 / (1 + a/(b+x+s-1) ((alpha+T)/(alpha+t_x))^(r+x))``, as an ``expit`` of the
        log-odds so that large ``x`` cannot overflow. Logs are taken once per distinct value
        of ``x``, ``T`` and ``t_x`` and gathered per row.
        """
        r, alpha, a, b = self._params()
        s = float(self._dropout_at_start)
        x_s = np.arange(rows.x_max + 1.0) + s
        has_second = x_s >= 1.0
        # no dropout opportunity yet (BG/NBD, x = 0): log-odds +inf, certainly alive
        log_b = np.log(b + np.where(has_second, x_s - 1.0, 0.0)) - np.log(a)
        log_b = np.where(has_second, log_b, np.inf)
        gap = (
            np.log(alpha + rows.T_values)[rows.T_code] - np.log(alpha + rows.t_values)[rows.t_code]
        )
        return np.asarray(expit(log_b[rows.x_int] - (r + rows.x) * gap), dtype=np.float64)

    def _while_alive(self, t: float, rows: _Rows) -> FloatArray:
        """E[Y(t) | alive at T, x, T]: Fader, Hardie & Lee (2005) eq. (10) without P(alive).

        Batislam et al. (2007) eq. (8) for the MBG/NBD. The posterior given alive is
        ``lambda ~ Gamma(r+x, alpha+T)``, ``p ~ Beta(a, b+x+s)``; eq. (10) is P(alive) times this.
        It depends on (x, T) only, so its series is summed once per distinct pair.
        """
        r, alpha, a, b = self._params()
        s = float(self._dropout_at_start)
        n_T = len(rows.T_values)
        key = rows.x_int * n_T + rows.T_code
        if (rows.x_max + 1) * n_T <= _DENSE_PAIRS:  # a direct-address table beats hashing
            is_seen = np.zeros((rows.x_max + 1) * n_T, dtype=bool)
            is_seen[key] = True
            seen = np.flatnonzero(is_seen)
            x1, T1 = (seen // n_T).astype(np.float64), rows.T_values[seen % n_T]
            table = np.empty(is_seen.size)
            table[seen] = expected_while_alive(r + x1, b + x1 + s, a, t / (alpha + T1 + t))
            return np.asarray(table[key], dtype=np.float64)
        pair, _ = pd.factorize(key)
        x1, T1 = np.empty(int(pair.max()) + 1), np.empty(int(pair.max()) + 1)
        x1[pair], T1[pair] = rows.x, rows.T_values[rows.T_code]
        while_alive = expected_while_alive(r + x1, b + x1 + s, a, t / (alpha + T1 + t))
        return np.asarray(while_alive[pair], dtype=np.float64)

    # --- public predictions ------------------------------------------------------------------

    def _score(self, data: pd.DataFrame) -> tuple[_Rows, npt.NDArray[np.intp]]:
        """The distinct checked rows of ``data``, coded by their values, and the map back.

        Everything is computed once per distinct (frequency, recency, T) and gathered per row.
        """
        self._check_fitted()
        values, inverse = _checked_patterns(data, type(self).__name__)
        x, t_x, T = (values[c] for c in _COLUMNS)
        return _Rows(x, np.where(x > 0, t_x, 0.0), T), inverse

    def _horizon(self, t: Span) -> float:
        span = self._in_units(t)
        if not np.isfinite(span) or span < 0:
            raise SchemaError(f"the horizon must be a finite time span >= 0, got {t!r}")
        return span

    def p_alive(self, data: pd.DataFrame) -> pd.Series:
        """The probability that each customer is still alive at the end of the observation.

        Parameters
        ----------
        data
            A summary with ``frequency``, ``recency`` and ``T`` in the model's unit.
        """
        rows, inverse = self._score(data)
        return pd.Series(self._p_alive(rows)[inverse], index=data.index, name="p_alive")

    def expected_purchases(self, t: Span, data: pd.DataFrame) -> pd.Series:
        """Expected purchases of each customer in the next ``t``, given their history.

        Parameters
        ----------
        t
            The horizon: a number in the model's unit, a string such as ``"52w"`` or a Duration.
        data
            A summary with ``frequency``, ``recency`` and ``T`` in the model's unit.
        """
        span = self._horizon(t)
        rows, inverse = self._score(data)
        expected = self._p_alive(rows) * self._while_alive(span, rows)
        return pd.Series(expected[inverse], index=data.index, name="expected_purchases")

    def expected_purchases_new(self, t: Span) -> float:
        """E[X(t)] for a new customer: Fader, Hardie & Lee (2005) eq. (7).

        For the MBG/NBD (Batislam et al. 2007) the customer survives time 0 with probability
        ``b / (a + b)`` and then has ``p ~ Beta(a, b + 1)``, which gives
        ``b / (a - 1) [1 - (alpha/(alpha+t))^r 2F1(r, b+1; a+b; t/(alpha+t))]``.
        """
        span = self._horizon(t)
        r, alpha, a, b = self._params()
        s = float(self._dropout_at_start)
        survives_start = np.exp(betaln(a, b + s) - betaln(a, b))
        z = np.array([span / (alpha + span)])
        return float(survives_start * expected_while_alive(r, b + s, a, z)[0])

    def purchase_pmf(self, n: int | npt.ArrayLike, t: Span) -> float | FloatArray:
        """P(X(t) = n) for a new customer: Fader, Hardie & Lee (2005) eq. (8).

        ``B(a, b+n+s)/B(a, b) NB(n) + B(a+1, b+n+s-1)/B(a, b) P(N(t) >= n)`` (the second term
        when ``n + s >= 1``), where ``NB`` is the negative binomial ``(r, alpha/(alpha+t))`` and
        ``P(N(t) >= n)`` its survival function as a regularised incomplete beta function.
        """
        span = self._horizon(t)
        r, alpha, a, b = self._params()
        s = float(self._dropout_at_start)
        counts = np.asarray(n, dtype=np.float64)
        if np.any(counts < 0) or np.any(counts != np.floor(counts)):
            raise SchemaError(f"purchase counts must be whole numbers >= 0, got {n!r}")
        z = span / (alpha + span)
        log_nb = (gammaln(r + counts) - gammaln(r) - gammaln(counts + 1.0)
                  - r * np.log1p(span / alpha) + xlogy(counts, z))  # fmt: skip
        first = np.exp(betaln(a, b + counts + s) - betaln(a, b) + log_nb)
        has_second = counts + s >= 1.0
        shifted = np.where(has_second, counts + s - 1.0, 0.0)
        tail = np.where(counts > 0, betainc(np.maximum(counts, 1.0), r, z), 1.0)
        second = np.exp(betaln(a + 1.0, b + shifted) - betaln(a, b)) * tail
        pmf = first + np.where(has_second, second, 0.0)
        return float(pmf) if pmf.ndim == 0 else np.asarray(pmf, dtype=np.float64)

    def predict(self, data: pd.DataFrame, horizon: Span = "52w") -> pd.DataFrame:
        """P(alive) and expected purchases over ``horizon`` for each customer, indexed like data."""
        span = self._horizon(horizon)
        rows, inverse = self._score(data)
        alive = self._p_alive(rows)
        expected = alive * self._while_alive(span, rows)
        return frame_per_row(
            {"p_alive": alive, "expected_purchases": expected}, inverse, data.index
        )

    def simulate(
        self, n_customers: int, T: float | npt.ArrayLike, *, rng: np.random.Generator
    ) -> pd.DataFrame:
        """Customers drawn from the model, observed for ``T`` (continuous time).

        Each customer gets ``lambda ~ Gamma(r, alpha)`` and ``p ~ Beta(a, b)``; an immortal
        customer would make ``N ~ Poisson(lambda T)`` repeat purchases, and the customer drops
        out after ``K ~ Geometric(p) - s`` of them, so ``x = min(N, K)``. The last purchase is the
        ``x``-th of ``N`` uniform times on ``(0, T]``: ``t_x = T Beta(x, N - x + 1)``.

        Parameters
        ----------
        n_customers
            How many customers.
        T
            Their ages at the observation end: one number or one per customer.
        rng
            The random generator.
        """
        r, alpha, a, b = self._params()
        ages = np.broadcast_to(np.asarray(T, dtype=np.float64), (n_customers,)).copy()
        rate = rng.gamma(r, 1.0 / alpha, n_customers)
        # p = 0 (a Beta draw that underflows) would make the geometric draw undefined
        p = np.clip(rng.beta(a, b, n_customers), 1e-12, 1.0)
        n_possible = rng.poisson(rate * ages)
        before_dropout = rng.geometric(p) - self._dropout_at_start
        x = np.minimum(n_possible, before_dropout)
        has_repeat = x > 0
        last = np.zeros(n_customers)
        last[has_repeat] = ages[has_repeat] * rng.beta(
            x[has_repeat], n_possible[has_repeat] - x[has_repeat] + 1)  # fmt: skip
        simulated = pd.DataFrame({"frequency": x, "recency": last, "T": ages})
        if self.unit_ is not None:
            simulated.attrs["unit"] = self.unit_.value
        return simulated


class BetaGeo(_BetaGeoFamily):
    """The BG/NBD model of Fader, Hardie & Lee (2005), parameters ``r, alpha, a, b``.

    Repeat purchases follow a Poisson process with rate ``lambda ~ Gamma(r, alpha)`` while the
    customer is alive; after each repeat purchase the customer drops out with probability
    ``p ~ Beta(a, b)``. A customer with no repeat purchase is certainly alive.

    Parameters
    ----------
    n_starts
        How many starting points the optimiser tries.
    penalizer
        L2 penalty on the natural parameters (0: plain maximum likelihood).

    Examples
    --------
    >>> from cvalue.datasets import load_cdnow
    >>> model = BetaGeo().fit(load_cdnow().summary, unit="week")
    >>> model.params_.round(3).tolist()
    [0.243, 4.414, 0.793, 2.426]
    >>> round(model.log_likelihood_, 1)
    -9582.4
    """

    _dropout_at_start: ClassVar[int] = 0
