"""Lifecycle flows: per period, the customers acquired, retained, lost and won back.

:func:`lifecycle_flows` counts a panel's states per period, with the new losses, the active and
the dormant customers, which reconcile exactly:
``active(t) = active(t - 1) + acquired(t) + reactivated(t) - lost(t)``. ``_flows_frame`` lays
the counts out, from pandas or from the SQL twin.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cvalue.dask import add_tables, customer_results, is_dask_frame
from cvalue.lifecycle.periods import IntArray
from cvalue.lifecycle.rules import InactivityRule  # noqa: F401  (the doctests use it)
from cvalue.lifecycle.states import (
    ACQUIRED,
    INACTIVE,
    LOST,
    REACTIVATED,
    RETAINED,
    STATES,
    _panel,
    lifecycle_states,  # noqa: F401  (the doctests use it)
)

__all__ = ["lifecycle_flows"]

_FLOW_COLUMNS = ("acquired", "retained", "inactive", "reactivated", "lost", "active", "dormant")


def _flows_frame(counts: IntArray, new_losses: IntArray, labels: pd.PeriodIndex) -> pd.DataFrame:
    """The flows table from per-period state counts (periods x states) and new losses."""
    active = counts.sum(axis=1) - counts[:, LOST]
    table = pd.DataFrame(
        {
            "acquired": counts[:, ACQUIRED],
            "retained": counts[:, RETAINED],
            "inactive": counts[:, INACTIVE],
            "reactivated": counts[:, REACTIVATED],
            "lost": new_losses,
            "active": active,
            "dormant": counts[:, LOST],
        },
        index=labels.rename("period"),
    )
    return table.astype(np.int64)


def lifecycle_flows(states: pd.DataFrame) -> pd.DataFrame:
    """Per period: customers acquired, retained, inactive, reactivated, lost, active, dormant.

    ``lost`` counts the customers who become lost in the period (new losses); ``dormant`` counts
    every customer in the ``lost`` state (lost now or earlier and not won back); ``active`` counts
    the customers not lost (acquired, retained, inactive and reactivated). They reconcile exactly:
    ``active(t) = active(t - 1) + acquired(t) + reactivated(t) - lost(t)``, with ``active = 0``
    before the first period.

    Parameters
    ----------
    states
        The output of :func:`lifecycle_states`, whole customers (any subset of customers).

    Returns
    -------
    pandas.DataFrame
        Indexed by period (every period of the panel), integer columns ``acquired``,
        ``retained``, ``inactive``, ``reactivated``, ``lost``, ``active`` and ``dormant``.

    Examples
    --------
    >>> log = pd.DataFrame({"customer_id": [1, 1, 2],
    ...                     "timestamp": pd.to_datetime(["2024-01-05", "2024-04-02",
    ...                                                  "2024-02-10"])})
    >>> states = lifecycle_states(log, period="M", rule=InactivityRule(2))
    >>> lifecycle_flows(states)[["acquired", "reactivated", "lost", "active"]]
             acquired  reactivated  lost  active
    period
    2024-01         1            0     0       1
    2024-02         1            0     0       2
    2024-03         0            0     1       1
    2024-04         0            1     1       1
    """
    if is_dask_frame(states):  # cvalue.dask: the flows of whole customers, added up
        return add_tables(customer_results(lifecycle_flows, states, customer_id="customer_id"))
    panel = _panel(states)
    n_periods = len(panel.labels)
    cell = np.multiply(panel.period, len(STATES), dtype=np.int32)
    cell += panel.state
    cells = np.bincount(cell, minlength=n_periods * len(STATES))
    new_losses = np.bincount(panel.period[panel.is_new_loss], minlength=n_periods)
    return _flows_frame(cells.reshape(n_periods, len(STATES)), new_losses, panel.labels)
