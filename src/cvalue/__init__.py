"""cvalue: customer value analytics on top of CRM data.

Lifecycle states, probabilistic CLV models, value, segments and CX metrics from CRM extracts, in
pandas or pushed down into the database.
"""

from cvalue import lifecycle
from cvalue._lifecycle_sql import (
    sql_cohort_retention,
    sql_lifecycle_flows,
    sql_lifecycle_states,
)
from cvalue._version import __version__
from cvalue.io.schema import Columns
from cvalue.io.sources import read_transactions
from cvalue.io.sql import sql_calibration_holdout, sql_pattern_table, sql_rfm_summary
from cvalue.io.validate import Validated, ValidationReport, validate_transactions
from cvalue.io.writeback import WriteResult, write_scores
from cvalue.lifecycle import (
    CohortRetention,
    CohortRetentionFit,
    ContractRule,
    InactivityRule,
    ModelRule,
    cohort_retention,
    fit_cohort_retention,
    lifecycle_flows,
    lifecycle_states,
    merge_contracts,
)
from cvalue.models import (
    BetaDiscreteWeibull,
    BetaGeo,
    BetaGeoBetaBinom,
    GammaGamma,
    ModifiedBetaGeo,
    ParetoNBD,
    ShiftedBetaGeo,
)
from cvalue.summary import Compressed, calibration_holdout, compress, rfm_summary
from cvalue.units import Duration, Rate, TimeUnit

__all__ = [
    "BetaDiscreteWeibull",
    "BetaGeo",
    "BetaGeoBetaBinom",
    "CohortRetention",
    "CohortRetentionFit",
    "Columns",
    "Compressed",
    "ContractRule",
    "Duration",
    "GammaGamma",
    "InactivityRule",
    "ModelRule",
    "ModifiedBetaGeo",
    "ParetoNBD",
    "Rate",
    "ShiftedBetaGeo",
    "TimeUnit",
    "Validated",
    "ValidationReport",
    "WriteResult",
    "__version__",
    "calibration_holdout",
    "cohort_retention",
    "compress",
    "fit_cohort_retention",
    "lifecycle",
    "lifecycle_flows",
    "lifecycle_states",
    "merge_contracts",
    "read_transactions",
    "rfm_summary",
    "sql_calibration_holdout",
    "sql_cohort_retention",
    "sql_lifecycle_flows",
    "sql_lifecycle_states",
    "sql_pattern_table",
    "sql_rfm_summary",
    "validate_transactions",
    "write_scores",
]
