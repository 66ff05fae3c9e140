"""The scoring job: read the CRM, validate, summarise, fit, value, segment, write back, report.

``cvalue score --config cvalue.toml`` runs :func:`run`; the other commands run its first stages
(:func:`load` for ``validate``, :func:`fit_models` for ``fit``). Each stage is a plain function
of the configuration and the previous stages' results, so a notebook can run them one by one.

- :mod:`cvalue.job._read`: reading the tables or files and validating the transactions;
- :mod:`cvalue.job._outputs`: checking every output location before the run reads anything, and
  the report's staging beside its target;
- :mod:`cvalue.job._run`: the stages after reading and the whole run;
- :mod:`cvalue.job._candidates`: the purchase-model candidates ranked on a holdout;
- :mod:`cvalue.job._chunked`: the run in bounded memory (``[run] chunk_customers``), and its
  first stages (:func:`validated_in_database`, :func:`fitted_in_database`).
- :mod:`cvalue.job._dask_run`: the run on a Dask cluster (``[run] engine = "dask"``), and its
  first stages (:func:`validated_on_dask`, :func:`fitted_on_dask`); :mod:`cvalue.job._dask_read`
  reads Parquet files or database tables on the workers and validates the transactions there.

The results they return are :mod:`cvalue.results`' types, re-exported here.
"""

from cvalue.job._chunked import fitted_in_database, validated_in_database
from cvalue.job._dask_run import fitted_on_dask, validated_on_dask
from cvalue.job._outputs import check_outputs, check_report_path
from cvalue.job._read import load, observation_end_of
from cvalue.job._run import (
    Stage,
    fit_models,
    holdout_check,
    horizon_label,
    run,
    scores_table,
)
from cvalue.results import FittedModels, HoldoutCheck, InDatabase, JobResult, Loaded

__all__ = [
    "FittedModels",
    "HoldoutCheck",
    "InDatabase",
    "JobResult",
    "Loaded",
    "Stage",
    "check_outputs",
    "check_report_path",
    "fit_models",
    "fitted_in_database",
    "fitted_on_dask",
    "holdout_check",
    "horizon_label",
    "load",
    "observation_end_of",
    "run",
    "scores_table",
    "validated_in_database",
    "validated_on_dask",
]
