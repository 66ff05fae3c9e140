"""Customer lifecycle: when each customer is acquired, retained, lost and won back.

:func:`lifecycle_states` turns a transaction log (or a contracts table) into a panel with one row
per customer and calendar period, from the period in which the customer was acquired to the period
that holds the observation end. Each row has one of five states:

- ``acquired``: the customer's first period (the first purchase, the first contract's start or
  the acquisition date of a customers table);
- ``retained``: a later period with activity (a purchase, or a contract in force), the customer
  not having been lost in the previous period;
- ``inactive``: lapsed but not lost: no activity in the period, and the rule has not yet declared
  the customer lost (for the inactivity rule: the window since the last purchase has not run out);
- ``reactivated``: a period with activity right after a period in which the customer was lost;
- ``lost``: no activity, and the rule says the customer is gone. The state stays ``lost`` in every
  following period until the customer comes back (``reactivated``).

Three rules decide when a customer is lost (:class:`InactivityRule`, :class:`ContractRule`,
:class:`ModelRule`). A customer is *active* in a period unless lost in it, so acquired, retained,
inactive and reactivated customers are active. :func:`lifecycle_flows` counts the states per
period and the new losses, which reconcile exactly::

    active(t) = active(t - 1) + acquired(t) + reactivated(t) - lost(t)

:func:`cohort_retention` tabulates cohort (period of acquisition) by age, :func:`retention_rate`
and :func:`churn_rate` give binomial rates with confidence intervals by period, cohort or tenure,
and :func:`fit_cohort_retention` fits the shifted-beta-geometric model (Fader & Hardie 2007) per
cohort, projects each cohort forward and tests whether the cohorts differ.

Rates, cohort tables and per-cohort fits read from fewer than ``min_customers`` customers in a
cell (by default :data:`cvalue.metrics.SMALL_SAMPLE`, 100: retention indicators need at least
100 customers) are flagged ``is_small_sample``, and each call gives one
:class:`~cvalue.metrics.SmallSampleWarning` that counts such cells and says how to pool them.

The SQL twins in :mod:`cvalue.lifecycle.sql` compute the same inside SQLite, DuckDB or
PostgreSQL: :func:`sql_lifecycle_states`, :func:`sql_lifecycle_flows`,
:func:`sql_cohort_retention`, and each customer's state in the last period,
:func:`sql_last_states`, or :func:`last_states_select` as a select to join to other per-customer
queries and read in chunks (one aggregate per customer; no panel is built).

The panel is built from integer codes: customer ids, periods, cohorts and states are categoricals
and tenure is a 32-bit integer, so a million customers over 36 monthly periods take a few hundred
megabytes.
"""

from cvalue.lifecycle.activity import merge_contracts
from cvalue.lifecycle.cohorts import (
    CohortRetention,
    CohortRetentionFit,
    cohort_retention,
    fit_cohort_retention,
)
from cvalue.lifecycle.flows import lifecycle_flows
from cvalue.lifecycle.periods import PeriodLike
from cvalue.lifecycle.rates import churn_rate, retention_rate
from cvalue.lifecycle.rules import AliveModel, ContractRule, InactivityRule, ModelRule, Rule
from cvalue.lifecycle.sql import (
    last_states_select,
    sql_cohort_retention,
    sql_last_states,
    sql_lifecycle_flows,
    sql_lifecycle_states,
    sql_lifecycle_tables,
)
from cvalue.lifecycle.states import STATES, lifecycle_states

__all__ = [
    "STATES",
    "AliveModel",
    "CohortRetention",
    "CohortRetentionFit",
    "ContractRule",
    "InactivityRule",
    "ModelRule",
    "PeriodLike",
    "Rule",
    "churn_rate",
    "cohort_retention",
    "fit_cohort_retention",
    "last_states_select",
    "lifecycle_flows",
    "lifecycle_states",
    "merge_contracts",
    "retention_rate",
    "sql_cohort_retention",
    "sql_last_states",
    "sql_lifecycle_flows",
    "sql_lifecycle_states",
    "sql_lifecycle_tables",
]
