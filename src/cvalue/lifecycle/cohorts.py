"""Cohorts: cohort x age retention tables, and the shifted-beta-geometric model per cohort.

:func:`cohort_retention` tabulates each cohort (period of acquisition) by age: its active
customers, their share and the never-lost survivors. :func:`fit_cohort_retention` fits the sBG
(Fader & Hardie 2007) per cohort and shared, projects each cohort forward and tests whether the
cohorts differ. Cohorts of fewer than ``min_customers`` customers are flagged ``is_small_sample``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from cvalue.dask import customer_results, dense_sum, is_dask_frame, last_timestamp
from cvalue.errors import SMALL_SAMPLE, DataQualityError, SchemaError
from cvalue.io.schema import Columns
from cvalue.lifecycle.periods import (
    BoolArray,
    IndexArray,
    IntArray,
    PeriodLike,
    _calendar,
    _period_index,
)
from cvalue.lifecycle.rules import InactivityRule, Rule
from cvalue.lifecycle.states import (
    ACQUIRED,
    LOST,
    REACTIVATED,
    RETAINED,
    _carried,
    _Panel,
    _panel,
    lifecycle_states,
)
from cvalue.models import LikelihoodRatioTest, ShiftedBetaGeo, SmallBaseWarning
from cvalue.samples import check_min_customers, flag_small
from cvalue.units import DateLike, TimeUnit

__all__ = ["CohortRetention", "CohortRetentionFit", "cohort_retention", "fit_cohort_retention"]


# --- cohorts --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CohortRetention:
    """Cohort x age tables: who of each cohort is still a customer after ``age`` periods.

    Cohorts are periods of acquisition (rows); ages are whole periods since acquisition
    (columns, 0 = the acquisition period). Cells a cohort has not reached yet are missing.

    Attributes
    ----------
    sizes
        Customers acquired in each cohort.
    active
        Customers of the cohort active (not lost) at each age; reactivated customers count again.
    shares
        ``active / sizes``.
    survivors
        Customers of the cohort never lost up to each age: the survivor curve the sBG reads.
    is_small_sample
        By cohort: fewer customers than ``min_customers``. Every cell of the cohort's row is a
        share of its ``sizes`` customers, so the flag holds for the whole row.
    min_customers
        The threshold of ``is_small_sample``.
    """

    sizes: pd.Series
    active: pd.DataFrame
    shares: pd.DataFrame
    survivors: pd.DataFrame
    is_small_sample: pd.Series
    min_customers: int = SMALL_SAMPLE

    @property
    def survival(self) -> pd.DataFrame:
        """``survivors / sizes``: the share of each cohort never lost up to each age."""
        return self.survivors.astype("float64").div(self.sizes.astype("float64"), axis=0)


def _ever_lost(panel: _Panel) -> BoolArray:
    """Per row: the customer has been lost at this period or before (since acquisition)."""
    first_row = _carried(panel.tenure == 0)
    return np.asarray(_carried(panel.state == LOST) >= first_row)


_POOL_COHORTS = (
    "their shares rest on few customers. Pool cohorts into longer periods (a coarser period=, "
    "or cohort_period= in fit_cohort_retention), or accept wider intervals and pass "
    "min_customers= a smaller number"
)


def _cohort_tables(
    sizes: IntArray, active: IntArray, survivors: IntArray, labels: pd.PeriodIndex, *,
    min_customers: int, stacklevel: int,
) -> CohortRetention:  # fmt: skip
    """The tables from dense cohort x age counts; unreached cells and empty cohorts dropped.

    Cohorts of fewer than ``min_customers`` are flagged, with one warning ``stacklevel`` frames
    up (counted as ``flag_small`` counts them).
    """
    n_periods = len(labels)
    ages = np.arange(n_periods)
    is_reached = ages[np.newaxis, :] <= (n_periods - 1 - np.arange(n_periods))[:, np.newaxis]
    keep = sizes > 0
    index = labels[keep].rename("cohort")
    columns = pd.RangeIndex(n_periods, name="age")

    is_unreached = ~is_reached[keep]
    by_age = np.ascontiguousarray(is_unreached.T)

    def table(counts: IntArray) -> pd.DataFrame:
        # each Int64 column made from its values and mask: casting a float table column by
        # column took most of the time of a daily table
        values = np.ascontiguousarray(counts[keep].T, dtype=np.int64)
        return pd.DataFrame(
            {age: pd.arrays.IntegerArray(values[age], by_age[age]) for age in ages},
            index=index, columns=columns,
        )  # fmt: skip

    size_series = pd.Series(sizes[keep], index=index, name="customers", dtype=np.int64)
    active_table = table(active)
    per_customer = active[keep] / sizes[keep][:, np.newaxis].astype(np.float64)
    shares = pd.DataFrame(np.where(is_unreached, np.nan, per_customer), index=index,
                          columns=columns)  # fmt: skip
    is_small = flag_small(
        sizes[keep], [str(label) for label in index], subject="cohort retention",
        unit="customers", fix=_POOL_COHORTS, threshold=min_customers, cells="cohorts",
        stacklevel=stacklevel,
    )  # fmt: skip
    return CohortRetention(
        size_series, active_table, shares.astype(np.float64), table(survivors),
        pd.Series(is_small, index=index, name="is_small_sample"), min_customers,
    )  # fmt: skip


def _dense(cell: IndexArray, rows: BoolArray, n: int) -> IntArray:
    """Counts of the ``rows`` in each (cohort, age) cell, as an ``n x n`` table."""
    counts = np.bincount(cell[rows], minlength=n * n)
    return np.asarray(counts.reshape(n, n), dtype=np.int64)


def cohort_retention(
    data: pd.DataFrame,
    *,
    period: PeriodLike | None = None,
    rule: Rule | None = None,
    observation_end: DateLike | None = None,
    columns: Columns | None = None,
    min_customers: int = SMALL_SAMPLE,
) -> CohortRetention:
    """Cohort x age tables of active customers, their shares, and never-lost survivors.

    Parameters
    ----------
    data
        A states panel from :func:`lifecycle_states`, or a transaction log (or contracts table)
        to build one from with ``period`` and ``rule``.
    period, rule, observation_end, columns
        As in :func:`lifecycle_states`, for a log only. The default rule,
        ``InactivityRule(1)``, makes a customer active in exactly the periods with a purchase.
    min_customers
        Cohorts of fewer customers than this (:data:`cvalue.metrics.SMALL_SAMPLE`, 100, by
        default) are flagged in ``is_small_sample``; 0 flags none.

    Returns
    -------
    CohortRetention
        ``sizes``, ``active``, ``shares`` and ``survivors`` by cohort (rows) and age (columns),
        and ``is_small_sample`` by cohort.

    Warns
    -----
    SmallSampleWarning
        Once, when some cohorts have fewer than ``min_customers`` customers: how many, the first
        few, and the fix (pool cohorts into longer periods, or a smaller ``min_customers``).

    Examples
    --------
    >>> log = pd.DataFrame({"customer_id": [1, 1, 2, 3, 3],
    ...                     "timestamp": pd.to_datetime(["2024-01-05", "2024-02-02", "2024-01-10",
    ...                                                  "2024-02-03", "2024-03-01"])})
    >>> table = cohort_retention(log, period="M", min_customers=1)  # a toy log: accept all
    >>> table.shares
    age        0    1    2
    cohort
    2024-01  1.0  0.5  0.0
    2024-02  1.0  1.0  NaN
    >>> table.is_small_sample.tolist()
    [False, False]
    """
    threshold = check_min_customers(min_customers)
    if is_dask_frame(data):  # cvalue.dask: the tables of whole customers, added up
        columns = columns or Columns.detect(data.columns)
        is_log = "state" not in data.columns
        if is_log and observation_end is None:
            observation_end = last_timestamp(
                data, timestamp=columns.timestamp, is_return=columns.is_return
            )
        parts = customer_results(
            cohort_retention, data, customer_id=columns.customer_id if is_log else "customer_id",
            period=period, rule=rule, observation_end=observation_end, columns=columns,
            min_customers=0,
        )  # fmt: skip
        first = min(part.sizes.index[0] for part in parts)
        ages = pd.RangeIndex(max(part.active.shape[1] for part in parts), name="age")
        labels = pd.period_range(first, periods=len(ages), freq=first.freq)
        return _cohort_tables(
            dense_sum([part.sizes for part in parts], labels),
            dense_sum([part.active for part in parts], labels, ages),
            dense_sum([part.survivors for part in parts], labels, ages),
            labels, min_customers=threshold, stacklevel=4,
        )  # fmt: skip
    if "state" in data:
        if period is not None or rule is not None:
            raise SchemaError(
                "data is a states panel: its period and rule are fixed; pass the log instead to "
                "choose period= and rule="
            )
        states = data
    else:
        if period is None:
            raise SchemaError("period= is needed to build the cohorts from a log (e.g. 'M')")
        states = lifecycle_states(
            data, period=period, rule=rule or InactivityRule(1),
            observation_end=observation_end, columns=columns,
        )  # fmt: skip
    panel = _panel(states)
    n = len(panel.labels)
    cell = np.multiply(panel.cohort, n, dtype=np.int32)  # n periods: n * n cells fit 32 bits
    cell += panel.tenure
    return _cohort_tables(
        np.bincount(panel.cohort[panel.tenure == 0], minlength=n),
        _dense(cell, panel.state != LOST, n),
        _dense(cell, ~_ever_lost(panel), n),
        panel.labels,
        min_customers=threshold,
        stacklevel=4,  # flag_small, _cohort_tables, cohort_retention, the user's call
    )


# --- sBG per cohort -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CohortRetentionFit:
    """The shifted-beta-geometric model fitted per cohort and shared, and the test between them.

    Attributes
    ----------
    shared
        One sBG for every fitted cohort.
    cohorts
        One sBG per fitted cohort, by the cohort's label (``str`` of its period).
    test
        Likelihood-ratio test of the shared model against the per-cohort ones
        (``df = 2 (cohorts - 1)``): a small p-value says the cohorts retain differently.
    params
        Per fitted cohort: ``customers``, ``lost`` (lifetimes seen to end), ``alpha``, ``beta``,
        ``retention_1`` (the share expected to survive the first period, ``S(1)``) and
        ``is_small_sample`` (fewer customers than ``min_customers``).
    projected
        Per fitted cohort (rows) and age 0 .. horizon (columns): the projected share never lost,
        ``S(age)`` of the cohort's own fit.
    excluded
        Cohorts left out of both fits (observed too briefly, or without any loss).
    """

    shared: ShiftedBetaGeo
    cohorts: dict[str, ShiftedBetaGeo]
    test: LikelihoodRatioTest
    params: pd.DataFrame
    projected: pd.DataFrame
    excluded: tuple[str, ...]


def _durations(panel: _Panel) -> tuple[IndexArray, IntArray, BoolArray]:
    """Per customer: the cohort, the sBG duration and whether it is censored.

    A lifetime lasts up to the last period with activity before the first loss: a customer last
    active at age ``a`` before the first loss churned after ``a + 1`` periods, however long the
    rule then took to declare the loss. That delay ``D`` (the longest seen, e.g. ``k - 1`` for a
    window of ``k`` periods, 0 for contracts) means a lifetime ending near the observation end is
    not declared yet, so every lifetime is censored at ``last age - D``, where whether it ended
    is known for every customer: beyond it, censoring would depend on the outcome.
    """
    first_rows = np.flatnonzero(panel.tenure == 0)
    last_rows = np.append(first_rows[1:] - 1, len(panel.tenure) - 1)
    customer = np.cumsum(panel.tenure == 0) - 1
    is_activity = np.isin(panel.state, (ACQUIRED, RETAINED, REACTIVATED))
    is_loss = panel.state == LOST
    first_loss = last_rows.copy()
    np.minimum.at(first_loss, customer[is_loss], np.flatnonzero(is_loss))
    is_lost = is_loss[first_loss]
    active_age = panel.tenure[_carried(is_activity)][first_loss]
    delays = panel.tenure[first_loss] - active_age - 1
    delay = int(delays[is_lost].max()) if is_lost.any() else 0
    known_until = np.maximum(panel.tenure[last_rows] - delay, 0)
    is_censored = ~is_lost | (active_age + 1 > known_until)
    duration = np.where(is_censored, np.minimum(active_age, known_until), active_age + 1)
    return panel.cohort[first_rows], duration.astype(np.int64), is_censored


def _cohort_groups(
    cohort: IntArray, labels: pd.PeriodIndex, cohort_period: PeriodLike | None
) -> tuple[IntArray, pd.PeriodIndex]:
    """Each customer's cohort group: the acquisition period or a coarser period holding it."""
    if cohort_period is None:
        return cohort, labels
    coarse = _calendar(cohort_period)
    grouped = labels.asfreq(coarse.freq, how="S")
    is_nested = (grouped.start_time <= labels.start_time) & (grouped.end_time >= labels.end_time)
    if not is_nested.all():
        raise SchemaError(
            f"cohort_period {cohort_period!r} must hold whole periods of the panel "
            f"({labels.freqstr}): e.g. months hold no whole weeks; choose a coarser calendar period"
        )
    unique, codes = np.unique(grouped.asi8, return_inverse=True)
    return np.asarray(codes.ravel()[cohort]), _period_index(unique, coarse.freq)


def _sbg_data(duration: IntArray, is_censored: BoolArray) -> pd.DataFrame:
    """Durations as weighted patterns, the form ``ShiftedBetaGeo.fit`` reads."""
    key = duration * 2 + is_censored
    patterns, weights = np.unique(key, return_counts=True)
    return pd.DataFrame({
        "duration": (patterns // 2).astype(np.float64),
        "is_censored": (patterns % 2).astype(np.float64),
        "weight": weights.astype(np.float64),
    })  # fmt: skip


def fit_cohort_retention(
    states: pd.DataFrame,
    *,
    cohort_period: PeriodLike | None = None,
    horizon_periods: int = 12,
    min_periods: int = 3,
    min_customers: int = SMALL_SAMPLE,
) -> CohortRetentionFit:
    """Fit the sBG per cohort and shared, project each cohort, test whether cohorts differ.

    Each customer's lifetime ends at the first loss (a reactivation starts no new lifetime) and
    lasts up to the last period with activity before it: a customer last active at age ``a``
    before the first loss has ``duration = a + 1``, however many periods the rule then took to
    declare the loss. With ``D`` the longest such delay seen (``k - 1`` for a window of ``k``
    periods, 0 for contracts), lifetimes are censored ``D`` periods before each customer's last
    age, up to where every loss has had time to be declared. The sBG (Fader & Hardie 2007,
    eq. (5)-(6)) is fitted on these durations per cohort and once for all cohorts; the
    likelihood-ratio statistic
    ``2 (sum of per-cohort LL - shared LL)`` is chi-square with ``2 (cohorts - 1)`` degrees of
    freedom under shared parameters. For a rule without an inactive state (a
    :class:`ContractRule`, ``InactivityRule(1)``) and acquisition-period cohorts, this is
    ``ShiftedBetaGeo().fit_survivors(cohort_retention(states).survivors)`` with ``shared`` True
    and False, and :func:`cvalue.models.lr_test` between them.

    Parameters
    ----------
    states
        The output of :func:`lifecycle_states`.
    cohort_period
        Group cohorts by a coarser calendar period (``"Y"``: acquisition years); each customer's
        age still counts periods since the customer's own acquisition, and censoring is per
        customer. By default each acquisition period is a cohort.
    horizon_periods
        How many periods ahead ``projected`` goes.
    min_periods
        A cohort is fitted when its longest lifetime known (after the censoring above) is at
        least this many periods and it has at least one loss; other cohorts are ``excluded``.
    min_customers
        Fitted cohorts of fewer customers than this (:data:`cvalue.metrics.SMALL_SAMPLE`, 100,
        by default) are flagged in ``params["is_small_sample"]``; 0 flags none. Their
        parameters are fitted all the same, with wide standard errors.

    Raises
    ------
    DataQualityError
        Fewer than two cohorts can be fitted.

    Warns
    -----
    SmallSampleWarning
        Once, when some fitted cohorts have fewer than ``min_customers`` customers: how many, the
        first few, and the fix (a coarser ``cohort_period``, or a smaller ``min_customers``).
    """
    if horizon_periods < 1 or min_periods < 1:
        raise SchemaError("horizon_periods and min_periods must be >= 1")
    threshold = check_min_customers(min_customers)
    panel = _panel(states)
    cohort, duration, is_censored = _durations(panel)
    group, labels = _cohort_groups(cohort, panel.labels, cohort_period)
    fitted, excluded, frames = [], [], {}
    for code, label in enumerate(labels):
        members = group == code
        if not members.any():
            continue
        if duration[members].max() >= min_periods and (~is_censored[members]).any():
            frames[str(label)] = _sbg_data(duration[members], is_censored[members])
            fitted.append(code)
        else:
            excluded.append(str(label))
    if len(frames) < 2:
        raise DataQualityError(
            f"{len(frames)} cohort(s) can be fitted (observed >= {min_periods} periods, with a "
            "loss); at least two are needed to compare cohorts. Use a finer period, a coarser "
            "cohort_period or a smaller min_periods"
        )
    unit = _calendar(panel.labels.freqstr).grain
    fit = _fit(frames, labels[fitted], unit, horizon_periods, tuple(excluded))
    fit.params["is_small_sample"] = flag_small(
        fit.params["customers"], list(frames), subject="sBG per cohort", unit="customers",
        fix="their parameters rest on few customers. Pool cohorts with cohort_period= (e.g. 'Q' "
        "or 'Y'), or accept wider intervals and pass min_customers= a smaller number",
        threshold=threshold, cells="fitted cohorts", stacklevel=3,
    )  # fmt: skip
    return fit


def _fit(
    frames: dict[str, pd.DataFrame],
    labels: pd.PeriodIndex,
    unit: TimeUnit | None,
    horizon_periods: int,
    excluded: tuple[str, ...],
) -> CohortRetentionFit:
    with warnings.catch_warnings():
        # small cohorts get one SmallSampleWarning for the call, not one per cohort's fit
        warnings.simplefilter("ignore", SmallBaseWarning)
        models = {label: ShiftedBetaGeo().fit(frame, unit=unit) for label, frame in frames.items()}
        shared = ShiftedBetaGeo().fit(pd.concat(frames.values(), ignore_index=True), unit=unit)
    statistic = 2.0 * (sum(m.log_likelihood_ for m in models.values()) - shared.log_likelihood_)
    degrees = 2 * (len(models) - 1)
    statistic = max(0.0, statistic)
    test = LikelihoodRatioTest(statistic, degrees, float(stats.chi2.sf(statistic, degrees)))
    index = labels.rename("cohort")
    ages = np.arange(horizon_periods + 1, dtype=np.float64)
    projected = pd.DataFrame(
        [np.asarray(model.survival(ages)) for model in models.values()],
        index=index, columns=pd.RangeIndex(horizon_periods + 1, name="age"),
    )  # fmt: skip
    params = pd.DataFrame(
        {
            "customers": [int(frame["weight"].sum()) for frame in frames.values()],
            "lost": [
                int(frame["weight"][frame["is_censored"] == 0].sum()) for frame in frames.values()
            ],
            "alpha": [float(m.params_["alpha"]) for m in models.values()],
            "beta": [float(m.params_["beta"]) for m in models.values()],
            "retention_1": projected[1].to_numpy(),
        },
        index=index,
    )
    return CohortRetentionFit(shared, models, test, params, projected, excluded)
