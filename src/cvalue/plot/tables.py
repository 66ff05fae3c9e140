"""How well a fitted purchase model describes the data: the tables behind the fit plots.

They live beside the plots that draw them (:mod:`cvalue.plot`); ``cvalue.report`` re-exports them.

Three checks a reviewer of a CLV model asks for (Fader, Hardie & Lee 2005, figures 2-4):

- **frequency fit**: how many customers made 0, 1, 2, ... repeat purchases in the calibration
  period, against the model's expectation ``sum_i P(X(T_i) = x)``;
- **tracking**: repeat purchases of the cohort per calendar period, against
  ``sum_i E[X(c - birth_i)]`` differenced by period, through calibration and holdout;
- **calibration vs holdout**: mean holdout purchases by calibration frequency, against the
  model's conditional expectation for the same customers.

The frequency fit and the calibration-vs-holdout tables also read *pattern tables*: rows of
customers with the same values, each counted by a ``weight`` column (a summary or split grouped
in the database). With whole weights they equal the tables of the rows repeated that many times.
"""

from __future__ import annotations

from typing import Protocol, cast

import numpy as np
import numpy.typing as npt
import pandas as pd

from cvalue.errors import DataQualityError, SchemaError, plain
from cvalue.io.schema import Columns
from cvalue.models import BetaGeoCNBD, ModifiedBetaGeoCNBD, PurchaseModel
from cvalue.patterns import weights_by_value
from cvalue.purchases import (
    customer_codes,
    grain_first_day,
    grain_index,
    observation_day,
    purchase_days,
)
from cvalue.units import DateLike, TimeUnit, as_time_unit, as_timestamp

__all__ = ["calibration_holdout_table", "frequency_fit_table", "model_unit", "tracking_table"]

FloatArray = npt.NDArray[np.float64]


class _Simulator(Protocol):
    """A model that draws new customers' histories: every purchase model's ``simulate``."""

    def simulate(
        self,
        n_customers: int,
        T: float,  # noqa: N803 - the contract's name for the age
        *,
        rng: np.random.Generator,
    ) -> pd.DataFrame:
        """``n_customers`` histories of customers observed for ``T`` after their first purchase."""
        ...


def frequency_fit_table(
    model: PurchaseModel,
    summary: pd.DataFrame,
    *,
    max_frequency: int = 7,
    rng: np.random.Generator | None = None,
) -> pd.DataFrame:
    """Customers by repeat-purchase count: observed against the fitted model's expectation.

    The expected count of customers with ``x`` repeat purchases is ``sum_i P(X(T_i) = x)``, each
    customer's own observation length ``T_i``; the last row gathers ``max_frequency`` and more.
    A ``weight`` column (a pattern table, such as the donations data) counts customers per row:
    row ``j`` of weight ``w_j`` adds ``w_j`` to ``observed`` and ``w_j P(X(T_j) = x)`` to
    ``expected``, so whole weights give the table of the rows repeated.

    With ``rng``, a ``simulated`` column too: the same customers drawn from the model's own
    simulator (``model.simulate``), as many at each age as the summary has, counted by frequency
    as the observed ones are. The draws go age by age, youngest first, so a pattern table with
    whole weights draws exactly what its rows repeated draw from the same ``rng``. Fractional
    weights are rounded to whole customers by the largest remainders of the ages' totals, so
    that as many customers are drawn as the weights sum to (rounded). Each count is a sum of
    independent Bernoulli draws, so it falls within a few ``sqrt(sum_i p_ix (1 - p_ix))`` of
    ``expected``.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``frequency`` (a label, the last one ``"7+"``), with ``observed`` and
        ``expected`` (and ``simulated``) customer counts; each column sums to the number of
        customers (the weights' total; rounded, for ``simulated``).

    Raises
    ------
    SchemaError
        If a column is missing, ``max_frequency`` is below 1 or ``weight`` is not numeric.
    DataQualityError
        If a weight is negative, missing or infinite (the message counts them).
    """
    age_column = model.age_column
    missing = [c for c in ("frequency", age_column) if c not in summary]
    if missing:
        raise SchemaError(
            f"the summary lacks column(s) {missing}; the frequency fit needs each customer's "
            f"frequency and {age_column!r}, as cvalue.rfm_summary gives them"
        )
    if max_frequency < 1:
        raise SchemaError(f"max_frequency must be >= 1, got {max_frequency}")
    customers = _customers(summary)
    # by distinct frequency and age first: a pattern table has millions of rows, not of values
    frequencies, counted = weights_by_value(summary["frequency"].to_numpy(dtype=np.float64),
                                            customers)  # fmt: skip
    bins = np.minimum(frequencies, max_frequency).astype(np.int64)
    observed = np.bincount(bins, weights=counted, minlength=max_frequency + 1)
    found, weights = weights_by_value(summary[age_column].to_numpy(dtype=np.float64), customers)
    ages = found.astype(np.float64)
    counts = np.arange(max_frequency)
    expected = np.zeros(max_frequency + 1)
    for age, weight in zip(ages, weights, strict=True):
        head = np.asarray(model.purchase_pmf(counts, horizon=float(age)), dtype=np.float64)
        expected[:max_frequency] += weight * head
        expected[max_frequency] += weight * max(0.0, 1.0 - float(head.sum()))
    labels = [str(x) for x in counts] + [f"{max_frequency}+"]
    index = pd.Index(labels, name="frequency")
    table = pd.DataFrame({"observed": observed, "expected": expected}, index)
    if rng is not None:
        table["simulated"] = _simulated_counts(model, ages, weights, max_frequency, rng)
    return table


def _simulated_counts(
    model: PurchaseModel,
    ages: FloatArray,
    weights: FloatArray,
    max_frequency: int,
    rng: np.random.Generator,
) -> FloatArray:
    """Customers by repeat purchases, drawn by the model's simulator at each age."""
    simulator = cast("_Simulator", model)
    found = np.zeros(max_frequency + 1)
    for age, weight in zip(ages, _whole_customers(weights), strict=True):
        if weight > 0:
            drawn = simulator.simulate(int(weight), float(age), rng=rng)["frequency"]
            found += np.bincount(np.minimum(drawn.to_numpy(dtype=np.int64), max_frequency),
                                 minlength=max_frequency + 1)  # fmt: skip
    return found


def _whole_customers(weights: FloatArray) -> npt.NDArray[np.int64]:
    """Whole customers per age summing to the weights' total, rounded: the largest remainders.

    Whole weights come back as they are.
    """
    whole = np.floor(weights)
    short = int(np.rint(weights.sum()) - whole.sum())  # 0 <= short <= the fractional ages
    whole[np.argsort(whole - weights, kind="stable")[:short]] += 1.0
    return whole.astype(np.int64)


def _customers(table: pd.DataFrame) -> FloatArray:
    """How many customers each row of ``table`` counts: its ``weight``, else 1; checked."""
    if "weight" not in table:
        return np.ones(len(table))
    try:
        weights = table["weight"].to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError) as exc:
        raise SchemaError(
            f"the 'weight' column must be numbers (customers per row), not {table['weight'].dtype}"
        ) from exc
    is_bad = ~(weights >= 0.0) | np.isinf(weights)
    if is_bad.any():
        first = int(np.argmax(is_bad))
        raise DataQualityError(
            f"'weight' is negative, missing or infinite in {int(is_bad.sum()):,} of "
            f"{len(weights):,} rows (e.g. row {plain(table.index[first])!r}: "
            f"{plain(weights[first])!r}); a weight counts the customers who share the row: "
            "a number >= 0"
        )
    return weights


def tracking_table(
    model: PurchaseModel,
    transactions: pd.DataFrame,
    *,
    calibration_end: DateLike,
    observation_end: DateLike,
    period: TimeUnit | str = TimeUnit.WEEK,
    columns: Columns | None = None,
) -> pd.DataFrame:
    """Repeat purchases per calendar period, actual against the model, over calibration and holdout.

    The cohort is the customers whose first purchase is on or before ``calibration_end``; each is
    expected to make ``E[X(age)]`` repeat purchases by the time they are ``age`` old (the model's
    new-customer expectation), so the cohort's expected cumulative count on day ``c`` is
    ``sum_i E[X(c - birth_i)]`` (Fader, Hardie & Lee 2005, figure 3). Purchases merge by day.

    Returns
    -------
    pandas.DataFrame
        Indexed by each period's last day (the last period cut at ``observation_end``), with
        ``actual`` and ``expected`` repeat purchases in the period, their running totals
        ``actual_cumulative`` and ``expected_cumulative``, the ``days`` of the period that are
        observed, and ``is_partial``: fewer days than the calendar period has (the first period,
        which starts at the cohort's first purchase, and the last, cut at ``observation_end``).
        A partial period's counts are not comparable with a whole period's: a last "week" of two
        days holds about two sevenths of a week's purchases.
    """
    unit = model_unit(model)
    period_unit = as_time_unit(period)
    calibration_day, end_day = observation_day(calibration_end), observation_day(observation_end)
    if end_day <= calibration_day:
        raise SchemaError(
            f"observation_end ({as_timestamp(observation_end)}) must come after calibration_end "
            f"({as_timestamp(calibration_end)})"
        )
    grain = unit if model.discrete_time else TimeUnit.DAY
    cohort_births, repeats = _cohort_days(transactions, columns, calibration_day, end_day, grain)
    start_day = int(cohort_births.min())
    n_days = end_day - start_day + 1
    actual_daily = np.bincount(repeats - start_day, minlength=n_days).astype(np.float64)
    if model.discrete_time:
        expected_cumulative = _expected_by_opportunity(model, cohort_births, start_day, end_day,
                                                       unit)  # fmt: skip
    else:
        births = np.bincount(cohort_births - start_day, minlength=n_days).astype(np.float64)
        ages = np.arange(n_days) / unit.days
        curve = _new_customer_expectation(model, ages)
        expected_cumulative = np.convolve(births, curve)[:n_days]
    return _by_period(actual_daily, expected_cumulative, start_day, period_unit)


def _new_customer_expectation(model: PurchaseModel, ages: FloatArray) -> FloatArray:
    """``E[X(age)]`` of a customer just acquired, at each age (in the model's unit).

    The CNBD family sums tables over its phases in every call, which a call per day of a long
    cohort repeats thousands of times; its new customer's curves give every age in one call.
    """
    if isinstance(model, BetaGeoCNBD | ModifiedBetaGeoCNBD):
        new = model.curves()
        return np.asarray(new.purchase_scale[0] * new.cumulative(ages)[0], dtype=np.float64)
    return np.array([model.expected_purchases_new(horizon=float(age)) for age in ages])


def _expected_by_opportunity(
    model: PurchaseModel, births: npt.NDArray[np.int64], start_day: int, end_day: int,
    unit: TimeUnit,
) -> FloatArray:  # fmt: skip
    """A discrete-time cohort's expected running total of repeat purchases, day by day.

    Opportunity ``k`` of a customer first seen in period ``g`` is period ``g + k`` of the
    model's unit, so the cohort expects ``sum_i E[X(g - g_i)]`` by the end of period ``g``
    (Fader, Hardie & Shang 2010, eq. 8, summed). Within a period the expectation is spread
    evenly over its days, so a period cut at ``end_day`` expects its observed share of a whole
    opportunity, comparable with the purchases made in those days.
    """
    days = np.arange(start_day, end_day + 1, dtype=np.int64)
    absolute = grain_index(days, unit)
    period = absolute - absolute[0]
    n_periods = int(period[-1]) + 1
    born = np.bincount(grain_index(births, unit) - absolute[0], minlength=n_periods)
    curve = np.array([model.expected_purchases_new(horizon=float(k)) for k in range(n_periods)])
    by_period = np.convolve(born.astype(np.float64), curve)[:n_periods]
    before = np.concatenate(([0.0], by_period))[period]  # the total at the previous period's end
    opening = grain_first_day(absolute, unit)
    share = (days - opening + 1) / (grain_first_day(absolute + 1, unit) - opening)
    return np.asarray(before + share * (by_period[period] - before), dtype=np.float64)


def _cohort_days(
    transactions: pd.DataFrame,
    columns: Columns | None,
    calibration_day: int,
    end_day: int,
    grain: TimeUnit = TimeUnit.DAY,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """The cohort's first purchase days, and its repeat purchase days up to ``end_day``.

    The cohort is the customers first seen on or before ``calibration_day``; purchases merge by
    ``grain``, so a repeat purchase is the first purchase day of each later grain than the
    customer's first (a distinct purchase day after the first, for grain day).
    """
    _, buyers, days = purchase_days(transactions, columns)
    if len(days) == 0:
        raise DataQualityError("the transactions hold no purchases: there is nothing to track")
    codes, _ids = customer_codes(buyers)
    del buyers
    first = np.full(int(codes.max()) + 1, np.iinfo(np.int64).max)
    np.minimum.at(first, codes, days)
    low = int(days.min())
    span = int(days.max()) - low + 1
    # distinct (customer, day) keys by one sort, in place: numpy's hash-based unique is far
    # slower here, and a million customers' logs make every per-row copy count
    key = codes
    key *= span
    key += days
    key -= low
    del codes, days
    key.sort()
    key = key[np.concatenate(([True], key[1:] != key[:-1]))]
    customer, day = np.divmod(key, span)
    day += low
    is_cohort = first <= calibration_day
    if not is_cohort.any():
        raise DataQualityError(
            "no customer made a first purchase on or before calibration_end: the cohort to "
            "track is empty; pass a later calibration_end"
        )
    period = grain_index(day, grain)
    is_new = np.concatenate(([True], (customer[1:] != customer[:-1]) | (period[1:] != period[:-1])))
    keep = is_new & (period != grain_index(first, grain)[customer]) & is_cohort[customer]
    keep &= day <= end_day
    return first[is_cohort], day[keep]


def model_unit(model: object) -> TimeUnit:
    """The time unit the model was fitted in; a SchemaError when it does not know it."""
    unit = getattr(model, "unit_", None)
    if unit is None:
        raise SchemaError(
            f"tracking needs the time unit of the {type(model).__name__}'s data; fit it on a "
            "cvalue.rfm_summary (which records its unit) or with unit='week'"
        )
    return as_time_unit(unit)


def _by_period(
    actual_daily: FloatArray, expected_cumulative: FloatArray, start_day: int, period: TimeUnit
) -> pd.DataFrame:
    """Daily actual counts and expected running totals, summed into calendar periods.

    Each period also gets the number of its days observed and whether that is fewer than the
    calendar period has (``is_partial``).
    """
    days = pd.to_datetime(np.arange(start_day, start_day + len(actual_daily)), unit="D")
    periods = days.to_period(period.pandas_alias)
    # the last period is cut at the observation end
    ends = periods.end_time.normalize()
    labels = ends.where(ends <= days[-1], days[-1])
    full_days = pd.Series((ends - periods.start_time).days + 1, index=days).groupby(labels).first()
    daily = pd.DataFrame(
        {"actual_cumulative": np.cumsum(actual_daily), "expected_cumulative": expected_cumulative},
        index=days,
    )
    table = daily.groupby(labels).last()
    table.index.name = "period_end"
    table.insert(0, "expected", np.diff(table["expected_cumulative"].to_numpy(), prepend=0.0))
    table.insert(0, "actual", np.diff(table["actual_cumulative"].to_numpy(), prepend=0.0))
    table["days"] = daily.groupby(labels).size().to_numpy(dtype=np.int64)
    table["is_partial"] = table["days"].to_numpy() < full_days.to_numpy()
    return table


def _holdout_predictions(model: PurchaseModel, calibration_holdout: pd.DataFrame) -> FloatArray:
    """Each row's expected holdout purchases, over its own ``duration_holdout``."""
    durations = calibration_holdout["duration_holdout"].to_numpy(dtype=np.float64)
    predicted = np.empty(len(calibration_holdout))
    for duration in np.unique(durations):
        rows = durations == duration
        predicted[rows] = model.expected_purchases(
            calibration_holdout.loc[rows], horizon=float(duration)
        ).to_numpy(dtype=np.float64)
    return predicted


def calibration_holdout_table(
    model: PurchaseModel,
    calibration_holdout: pd.DataFrame,
    *,
    max_frequency: int = 7,
    predicted: npt.ArrayLike | None = None,
) -> pd.DataFrame:
    """Mean holdout purchases by calibration frequency: actual against the model's prediction.

    Each customer's prediction is the model's conditional expectation over their own holdout
    length (``duration_holdout``), given their calibration history (Fader, Hardie & Lee 2005,
    figure 4); frequencies of ``max_frequency`` and more share the last row.

    A ``weight`` column (a split grouped into patterns) counts customers per row: with ``w_j``,
    ``y_j`` and ``ŷ_j`` the weight, holdout purchases and prediction of row ``j``, a row of the
    table has ``customers = Σ w_j``, ``actual = Σ w_j y_j / Σ w_j`` and ``predicted =
    Σ w_j ŷ_j / Σ w_j`` over its rows, so whole weights give the table of the rows repeated.
    A frequency without customers (weights 0) has no row.

    ``predicted``, one value per row of ``calibration_holdout``, is the model's predictions
    computed already (a holdout check scores its rows in blocks): the model is then not called.

    Returns
    -------
    pandas.DataFrame
        Indexed by calibration ``frequency`` (labels, the last ``"7+"``), with ``customers``,
        ``actual`` and ``predicted`` mean holdout purchases.

    Raises
    ------
    SchemaError
        If a column is missing or ``weight`` is not numeric.
    DataQualityError
        If a weight is negative, missing or infinite (the message counts them).
    """
    needed = ("frequency", "frequency_holdout", "duration_holdout")
    missing = [c for c in needed if c not in calibration_holdout]
    if missing:
        raise SchemaError(
            f"column(s) {missing} not found; build the table with cvalue.calibration_holdout"
        )
    customers = _customers(calibration_holdout)
    if predicted is None:
        predicted = _holdout_predictions(model, calibration_holdout)
    predicted = np.asarray(predicted, dtype=np.float64)
    if predicted.shape != (len(calibration_holdout),):
        raise SchemaError(
            f"predicted has shape {predicted.shape}; it needs one value per row of the split "
            f"({len(calibration_holdout):,} rows)"
        )
    actual = calibration_holdout["frequency_holdout"].to_numpy(dtype=np.float64)
    bins = np.minimum(calibration_holdout["frequency"].to_numpy(dtype=np.int64), max_frequency)
    labels = np.array([str(x) for x in range(max_frequency)] + [f"{max_frequency}+"])

    count, actual_sum, predicted_sum = (
        np.bincount(bins, weights=summed, minlength=max_frequency + 1)
        for summed in (customers, customers * actual, customers * predicted)
    )
    held = count > 0
    return pd.DataFrame(
        {
            "customers": count[held],
            "actual": actual_sum[held] / count[held],
            "predicted": predicted_sum[held] / count[held],
        },
        index=pd.Index(labels[held].tolist(), name="frequency"),
    )
