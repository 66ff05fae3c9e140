"""Where value sits and where money is lost: tiers, value x risk, whales, unprofitable segments.

Cross-selling raises average profit, yet in the customer data of large firms about one
cross-buyer in five loses money, and that group carries most of the customer-related losses
(Shah, Kumar, Qu & Chen 2012, "Unprofitable cross-buying: evidence from consumer and business
markets", *Journal of Marketing*, 76(3)). The mechanisms are returns, heavy use of service,
buying on promotion only, and the same spend spread over more categories.

- :func:`customer_profitability` aggregates transactions and cost tables into one row per
  customer (revenue, cost of goods, promotion, return, service and marketing costs, net profit,
  and the drivers); :func:`cvalue.sql_customer_profitability` does the same in a database.
- :func:`cross_sell_profitability` adds the shares of unprofitable cross-buyers and of the losses
  they carry, the drivers' effect sizes, and the unprofitable segments a shallow decision tree
  finds.
- :func:`unprofitable_segments` judges segments, named by the user or discovered from the drivers:
  a segment is flagged when its mean net profit (or CLV) is below zero with a confidence interval
  entirely below zero, and it has at least ``min_size`` customers.
- :func:`profit_select`, :class:`CrossSellStream` and :class:`SegmentsStream` do the same for a
  base too large for memory, from chunks of the database's per-customer sums
  (:mod:`cvalue.segments.streamed`).
- :func:`value_tiers`, :func:`value_risk_grid`, :func:`whale_curve` and :func:`most_valuable`
  take any per-customer value (CLV from :mod:`cvalue.value`, or net profit).
- :func:`at_risk_valuable` lists the most valuable customers who are more likely gone than
  active, for a retention team; :func:`at_risk_valuable_in_table` lists them from a scores table.
"""

from cvalue.segments.at_risk import (
    AT_RISK_P_ALIVE_BELOW,
    AT_RISK_TOP,
    at_risk_valuable,
    at_risk_valuable_in_table,
    expected_value_lost,
)
from cvalue.segments.cross_sell import CrossSellProfitability, cross_sell_profitability
from cvalue.segments.discovery import UnprofitableSegments, unprofitable_segments
from cvalue.segments.profit import DRIVERS, Costs, ProfitTable, UnmatchedCostsWarning
from cvalue.segments.profitability import customer_profitability
from cvalue.segments.streamed import (
    CrossSellStream,
    ProfitSelect,
    SegmentsStream,
    profit_select,
    streamed_cross_sell_profitability,
)
from cvalue.segments.tiers import (
    ValueTiers,
    WhaleCurve,
    most_valuable,
    value_risk_grid,
    value_tiers,
    whale_curve,
)

__all__ = [
    "AT_RISK_P_ALIVE_BELOW",
    "AT_RISK_TOP",
    "DRIVERS",
    "Costs",
    "CrossSellProfitability",
    "CrossSellStream",
    "ProfitSelect",
    "ProfitTable",
    "SegmentsStream",
    "UnmatchedCostsWarning",
    "UnprofitableSegments",
    "ValueTiers",
    "WhaleCurve",
    "at_risk_valuable",
    "at_risk_valuable_in_table",
    "cross_sell_profitability",
    "customer_profitability",
    "expected_value_lost",
    "most_valuable",
    "profit_select",
    "streamed_cross_sell_profitability",
    "unprofitable_segments",
    "value_risk_grid",
    "value_tiers",
    "whale_curve",
]
