"""cvalue: customer value analytics on top of CRM data.

Lifecycle states, probabilistic CLV models, value, segments and CX metrics from CRM extracts, in
pandas or pushed down into the database.

Importing ``cvalue`` loads nothing but its version: each public name is imported from its module
on first use (:func:`__getattr__`), so that ``cvalue --help`` answers without pandas, SciPy,
SQLAlchemy or matplotlib.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from cvalue._version import __version__

if TYPE_CHECKING:  # the names as type checkers and editors see them; loaded on first use
    from cvalue import evaluation, lifecycle, metrics, plot, segments, value
    from cvalue.io.history import read_history
    from cvalue.io.schema import Columns
    from cvalue.io.sources import read_table, read_transactions
    from cvalue.io.sql import sql_calibration_holdout, sql_pattern_table, sql_rfm_summary
    from cvalue.io.sql_stream import sql_summary_chunks
    from cvalue.io.validate import Validated, ValidationReport, validate_transactions
    from cvalue.io.writeback import WriteResult, check_scores_table, write_scores
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
    from cvalue.lifecycle.sql import (
        sql_cohort_retention,
        sql_lifecycle_flows,
        sql_lifecycle_states,
        sql_lifecycle_tables,
    )
    from cvalue.metrics import (
        MetricEstimate,
        SmallSampleWarning,
        by_value,
        cac,
        ces,
        csat,
        enps,
        iqs,
        nps,
    )
    from cvalue.models import (
        BetaDiscreteWeibull,
        BetaGeo,
        BetaGeoBetaBinom,
        BetaGeoCNBD,
        ConvergenceWarning,
        GammaGamma,
        ModifiedBetaGeo,
        ModifiedBetaGeoCNBD,
        ParetoNBD,
        ShiftedBetaGeo,
        SmallBaseWarning,
    )
    from cvalue.segments import (
        Costs,
        CrossSellProfitability,
        ProfitTable,
        UnmatchedCostsWarning,
        UnprofitableSegments,
        ValueTiers,
        WhaleCurve,
        at_risk_valuable,
        at_risk_valuable_in_table,
        cross_sell_profitability,
        customer_profitability,
        most_valuable,
        unprofitable_segments,
        value_risk_grid,
        value_tiers,
        whale_curve,
    )
    from cvalue.segments.sql import sql_customer_profitability
    from cvalue.summary import Compressed, calibration_holdout, cnbd_summary, compress, rfm_summary
    from cvalue.trends import Trend, history_trends, population_stability, psi_level, trend
    from cvalue.units import Duration, Rate, TimeUnit
    from cvalue.value import (
        NO_COSTS,
        CustomerEquity,
        CustomerValue,
        DiscountRates,
        FutureCohorts,
        RetentionUplift,
        alive_probability,
        churn_hazard,
        clv,
        clv_to_cac,
        compare_ltv,
        customer_equity,
        margin_by_category,
        margin_variation,
        new_customer_value,
        retention_uplift,
        simple_ltv,
        simple_ltv_table,
    )

__all__ = [
    "NO_COSTS",
    "BetaDiscreteWeibull",
    "BetaGeo",
    "BetaGeoBetaBinom",
    "BetaGeoCNBD",
    "CohortRetention",
    "CohortRetentionFit",
    "Columns",
    "Compressed",
    "ContractRule",
    "ConvergenceWarning",
    "Costs",
    "CrossSellProfitability",
    "CustomerEquity",
    "CustomerValue",
    "DiscountRates",
    "Duration",
    "FutureCohorts",
    "GammaGamma",
    "InactivityRule",
    "MetricEstimate",
    "ModelRule",
    "ModifiedBetaGeo",
    "ModifiedBetaGeoCNBD",
    "ParetoNBD",
    "ProfitTable",
    "Rate",
    "RetentionUplift",
    "ShiftedBetaGeo",
    "SmallBaseWarning",
    "SmallSampleWarning",
    "TimeUnit",
    "Trend",
    "UnmatchedCostsWarning",
    "UnprofitableSegments",
    "Validated",
    "ValidationReport",
    "ValueTiers",
    "WhaleCurve",
    "WriteResult",
    "__version__",
    "alive_probability",
    "at_risk_valuable",
    "at_risk_valuable_in_table",
    "by_value",
    "cac",
    "calibration_holdout",
    "ces",
    "check_scores_table",
    "churn_hazard",
    "clv",
    "clv_to_cac",
    "cnbd_summary",
    "cohort_retention",
    "compare_ltv",
    "compress",
    "cross_sell_profitability",
    "csat",
    "customer_equity",
    "customer_profitability",
    "enps",
    "evaluation",
    "fit_cohort_retention",
    "history_trends",
    "iqs",
    "lifecycle",
    "lifecycle_flows",
    "lifecycle_states",
    "margin_by_category",
    "margin_variation",
    "merge_contracts",
    "metrics",
    "most_valuable",
    "new_customer_value",
    "nps",
    "plot",
    "population_stability",
    "psi_level",
    "read_history",
    "read_table",
    "read_transactions",
    "retention_uplift",
    "rfm_summary",
    "segments",
    "simple_ltv",
    "simple_ltv_table",
    "sql_calibration_holdout",
    "sql_cohort_retention",
    "sql_customer_profitability",
    "sql_lifecycle_flows",
    "sql_lifecycle_states",
    "sql_lifecycle_tables",
    "sql_pattern_table",
    "sql_rfm_summary",
    "sql_summary_chunks",
    "trend",
    "unprofitable_segments",
    "validate_transactions",
    "value",
    "value_risk_grid",
    "value_tiers",
    "whale_curve",
    "write_scores",
]

# the module of each public name, by module
_MODULE_NAMES: dict[str, tuple[str, ...]] = {
    "cvalue.io.history": ("read_history",),
    "cvalue.io.schema": ("Columns",),
    "cvalue.io.sources": ("read_table", "read_transactions"),
    "cvalue.io.sql": ("sql_calibration_holdout", "sql_pattern_table", "sql_rfm_summary"),
    "cvalue.io.sql_stream": ("sql_summary_chunks",),
    "cvalue.io.validate": ("Validated", "ValidationReport", "validate_transactions"),
    "cvalue.io.writeback": ("WriteResult", "check_scores_table", "write_scores"),
    "cvalue.lifecycle": (
        "CohortRetention",
        "CohortRetentionFit",
        "ContractRule",
        "InactivityRule",
        "ModelRule",
        "cohort_retention",
        "fit_cohort_retention",
        "lifecycle_flows",
        "lifecycle_states",
        "merge_contracts",
    ),
    "cvalue.lifecycle.sql": (
        "sql_cohort_retention",
        "sql_lifecycle_flows",
        "sql_lifecycle_states",
        "sql_lifecycle_tables",
    ),
    "cvalue.trends": ("Trend", "history_trends", "population_stability", "psi_level", "trend"),
    "cvalue.metrics": (
        "MetricEstimate",
        "SmallSampleWarning",
        "by_value",
        "cac",
        "ces",
        "csat",
        "enps",
        "iqs",
        "nps",
    ),
    "cvalue.models": (
        "BetaDiscreteWeibull",
        "BetaGeo",
        "BetaGeoBetaBinom",
        "BetaGeoCNBD",
        "ConvergenceWarning",
        "GammaGamma",
        "ModifiedBetaGeo",
        "ModifiedBetaGeoCNBD",
        "ParetoNBD",
        "ShiftedBetaGeo",
        "SmallBaseWarning",
    ),
    "cvalue.segments": (
        "Costs",
        "CrossSellProfitability",
        "ProfitTable",
        "UnmatchedCostsWarning",
        "UnprofitableSegments",
        "ValueTiers",
        "WhaleCurve",
        "at_risk_valuable",
        "at_risk_valuable_in_table",
        "cross_sell_profitability",
        "customer_profitability",
        "most_valuable",
        "unprofitable_segments",
        "value_risk_grid",
        "value_tiers",
        "whale_curve",
    ),
    "cvalue.segments.sql": ("sql_customer_profitability",),
    "cvalue.summary": (
        "Compressed",
        "calibration_holdout",
        "cnbd_summary",
        "compress",
        "rfm_summary",
    ),
    "cvalue.units": ("Duration", "Rate", "TimeUnit"),
    "cvalue.value": (
        "NO_COSTS",
        "CustomerEquity",
        "CustomerValue",
        "DiscountRates",
        "FutureCohorts",
        "RetentionUplift",
        "alive_probability",
        "churn_hazard",
        "clv",
        "clv_to_cac",
        "compare_ltv",
        "customer_equity",
        "margin_by_category",
        "margin_variation",
        "new_customer_value",
        "retention_uplift",
        "simple_ltv",
        "simple_ltv_table",
    ),
}
_WHERE = {name: module for module, names in _MODULE_NAMES.items() for name in names}
_SUBMODULES = frozenset({"evaluation", "lifecycle", "metrics", "plot", "segments", "value"})


def __getattr__(name: str) -> Any:
    """A public name, or a subpackage, imported from its module on first use."""
    if name in _SUBMODULES:
        return importlib.import_module(f"cvalue.{name}")
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'cvalue' has no attribute {name!r}")
    found = getattr(importlib.import_module(module), name)
    globals()[name] = found  # the next use reads it directly
    return found


def __dir__() -> list[str]:
    """The module's names and every public one, loaded or not."""
    return sorted({*globals(), *__all__})
