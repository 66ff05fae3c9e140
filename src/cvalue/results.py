"""What a scoring run produced: the frozen results the job's stages return, the report renders.

They sit below both :mod:`cvalue.job`, which makes them, and :mod:`cvalue.report`, which reads
them, so that neither imports the other's way up. :mod:`cvalue.job` re-exports them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from cvalue.config import JobConfig
from cvalue.io.schema import Columns
from cvalue.io.validate import ValidationReport
from cvalue.io.writeback import WriteResult
from cvalue.lifecycle import CohortRetention
from cvalue.models import GammaGamma, Model
from cvalue.segments import (
    CrossSellProfitability,
    UnprofitableSegments,
    ValueTiers,
    WhaleCurve,
)
from cvalue.value import CustomerEquity, CustomerValue, RetentionUplift

__all__ = ["FittedModels", "HoldoutCheck", "InDatabase", "JobResult", "Loaded"]


@dataclass(frozen=True, slots=True)
class Loaded:
    """What the job read and what validation kept.

    Attributes
    ----------
    transactions
        The validated rows, in cvalue's column names; the label columns (``category``,
        ``channel``, ``segment``) as pandas categoricals.
    rejected
        The rows validation rejected, with their reasons.
    report
        Validation's counts by reason.
    observation_end
        The end of the observation period.
    customers, service_costs, marketing_costs, surveys
        The optional tables, indexed or keyed by customer id (``None`` when not configured).
    columns
        The role mapping of ``transactions``.
    notes
        What reading found worth saying: rows of the optional tables that name customers
        without a transaction (they are not used), ids converted to the transactions' kind.
    """

    transactions: pd.DataFrame
    rejected: pd.DataFrame
    report: ValidationReport
    observation_end: pd.Timestamp
    customers: pd.DataFrame | None
    service_costs: pd.DataFrame | None
    marketing_costs: pd.DataFrame | None
    surveys: pd.DataFrame | None
    columns: Columns
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class HoldoutCheck:
    """Purchase models fitted on a calibration period and scored on the holdout that follows.

    Attributes
    ----------
    calibration_end
        The end of the calibration period (``observation_end`` minus ``[models] holdout``).
    split
        :func:`cvalue.calibration_holdout`'s table of the customers that can be scored; ``None``
        in a chunked or Dask run, which scores the split's patterns as they come and keeps
        only the tables below (the patterns would grow with the base).
    fitted
        Each model fitted on the calibration period, by its config name. A chunked or Dask
        run's candidates keep no data: they predict, but cannot be resampled.
    errors
        One row per model (indexed by its config name), best first by ``[models] rank_by``:
        :func:`cvalue.evaluation.holdout_scores` of its expected holdout purchases against the
        actual ones (``holdout_mae``, ``holdout_rmse``, ``holdout_bias``,
        ``relative_error_total``, ``predicted_total``, ``actual_total``); ``gini`` and
        ``top_decile_lift`` of the actual holdout purchases ranked by the expected ones;
        ``brier``, P(alive) at the calibration end against buying in the holdout; and
        ``calibration_log_likelihood``. The name is kept from when it held errors only.
    calibration_table
        :func:`cvalue.plot.calibration_holdout_table` of the best model (the first of
        ``errors``): mean holdout purchases by calibration frequency, actual and predicted.
    """

    calibration_end: pd.Timestamp
    split: pd.DataFrame | None
    fitted: Mapping[str, Model]
    errors: pd.DataFrame
    calibration_table: pd.DataFrame


@dataclass(frozen=True, slots=True)
class FittedModels:
    """The customer summary and the models fitted on it.

    Attributes
    ----------
    summary
        frequency, recency, T, monetary_value by customer. A chunked or Dask run keeps its
        pattern table instead: the distinct (frequency, recency, T) with their customers
        (``weight``), as floats, the arrays its purchase model was fitted on. A chunked
        scoring run leaves the table in the database while it scores, and reads it again for
        the report; its purchase model then keeps no data (:meth:`Model.drop_data`).
    purchase
        The purchase model used to score.
    spend
        The Gamma-Gamma spend model.
    candidates
        With ``purchase = "auto"``: each candidate's holdout error; the chosen one first.
    summary_source
        ``"database"`` or ``"pandas"``: where the summary was computed.
    too_new
        Customers whose first purchase is on the observation end (T = 0), left out of the fit
        and the scores (see :func:`_scorable`).
    holdout
        The purchase model(s) fitted on the calibration period, for the model choice and the
        report's tracking and holdout plots.
    """

    summary: pd.DataFrame
    purchase: Model
    spend: GammaGamma
    candidates: pd.DataFrame | None
    summary_source: str
    too_new: pd.Index
    holdout: HoldoutCheck


@dataclass(frozen=True, slots=True)
class InDatabase:
    """What a chunked run (``[run] chunk_customers``) keeps of a base it never holds whole.

    The transactions and the scores stay in the database; the report draws its distributions
    from a sample and its illustrative customer from the database.

    Attributes
    ----------
    n_customers
        Customers scored.
    chunk_customers, n_chunks
        The chunk size and the number of chunks read.
    sample
        A uniform random sample of the scored customers (at most 100,000; every one of a
        smaller base), indexed by customer id: ``clv`` (the longest horizon), ``p_alive``,
        ``frequency`` and, with segments, ``segment``.
    best
        The customer with the highest CLV among those with at least three purchases (``None``
        when there is none): ``customer``, ``clv``, ``n_purchases``, ``segment``.
    history
        That customer's validated transactions, read back from the database.
    tracking
        The report's tracking table (:func:`cvalue.plot.tracking_table`'s layout), counted in
        the database (:mod:`cvalue.plot.sql_tracking`); ``None`` when no report was asked for.
    """

    n_customers: int
    chunk_customers: int
    n_chunks: int
    sample: pd.DataFrame
    best: Mapping[str, object] | None
    history: pd.DataFrame
    tracking: pd.DataFrame | None = None


@dataclass(frozen=True, slots=True)
class JobResult:
    """Everything a run produced; :mod:`cvalue.report` turns it into the HTML report."""

    config: JobConfig
    loaded: Loaded
    models: FittedModels | None = None
    scores: pd.DataFrame | None = None
    customer_values: Mapping[str, CustomerValue] = field(default_factory=dict)
    equity: CustomerEquity | None = None
    last_states: pd.Series | None = None  # by customer id: the state in the last period
    flows: pd.DataFrame | None = None
    cohorts: CohortRetention | None = None
    profitability: CrossSellProfitability | None = None
    named_segments: UnprofitableSegments | None = None
    tiers: ValueTiers | None = None
    grid: pd.DataFrame | None = None
    whale: WhaleCurve | None = None
    surveys_by_value: Mapping[str, pd.DataFrame] = field(default_factory=dict)
    written: WriteResult | None = None
    report_path: Path | None = None
    timings: Mapping[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    in_database: InDatabase | None = None  # a chunked run's sample and illustrative customer
    at_risk: pd.DataFrame | None = None  # the valuable customers at risk: top CLV, low P(alive)
    run_history: pd.DataFrame | None = None  # the indicators of earlier runs and of this one
    uplift: RetentionUplift | None = None  # equity if retention rose ([value] retention_points)
