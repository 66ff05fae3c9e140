"""cvalue: customer value analytics on top of CRM data.

Lifecycle states, probabilistic CLV models, value, segments and CX metrics from CRM extracts, in
pandas or pushed down into the database.
"""

from cvalue import lifecycle, metrics, segments
from cvalue._lifecycle_sql import (
    sql_cohort_retention,
    sql_lifecycle_flows,
    sql_lifecycle_states,
)
from cvalue._version import __version__
from cvalue.io._segments_sql import sql_customer_profitability
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
from cvalue.metrics import MetricEstimate, SmallSampleWarning, by_value, cac, ces, csat, enps, nps
from cvalue.models import (
    BetaDiscreteWeibull,
    BetaGeo,
    BetaGeoBetaBinom,
    GammaGamma,
    ModifiedBetaGeo,
    ParetoNBD,
    ShiftedBetaGeo,
)
from cvalue.segments import (
    Costs,
    CrossSellProfitability,
    ProfitTable,
    UnmatchedCostsWarning,
    UnprofitableSegments,
    ValueTiers,
    WhaleCurve,
    cross_sell_profitability,
    customer_profitability,
    most_valuable,
    unprofitable_segments,
    value_risk_grid,
    value_tiers,
    whale_curve,
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
    "Costs",
    "CrossSellProfitability",
    "Duration",
    "GammaGamma",
    "InactivityRule",
    "MetricEstimate",
    "ModelRule",
    "ModifiedBetaGeo",
    "ParetoNBD",
    "ProfitTable",
    "Rate",
    "ShiftedBetaGeo",
    "SmallSampleWarning",
    "TimeUnit",
    "UnmatchedCostsWarning",
    "UnprofitableSegments",
    "Validated",
    "ValidationReport",
    "ValueTiers",
    "WhaleCurve",
    "WriteResult",
    "__version__",
    "by_value",
    "cac",
    "calibration_holdout",
    "ces",
    "cohort_retention",
    "compress",
    "cross_sell_profitability",
    "csat",
    "customer_profitability",
    "enps",
    "fit_cohort_retention",
    "lifecycle",
    "lifecycle_flows",
    "lifecycle_states",
    "merge_contracts",
    "metrics",
    "most_valuable",
    "nps",
    "read_transactions",
    "rfm_summary",
    "segments",
    "sql_calibration_holdout",
    "sql_cohort_retention",
    "sql_customer_profitability",
    "sql_lifecycle_flows",
    "sql_lifecycle_states",
    "sql_pattern_table",
    "sql_rfm_summary",
    "unprofitable_segments",
    "validate_transactions",
    "value_risk_grid",
    "value_tiers",
    "whale_curve",
    "write_scores",
]
