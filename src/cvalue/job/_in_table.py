"""What a chunked or Dask run sums in the staging table before the swap, once every row is in.

The value tiers ranked there, the value x risk grid and the whale curve summed there, the
valuable customers at risk listed there, and NPS, CSAT and CES by the tiers ranked there
(:mod:`cvalue.job._surveys`). Both bounded-memory paths (:mod:`cvalue.job._chunked`,
:mod:`cvalue.job._dask_run`) call them from ``before_swap``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import pandas as pd
import sqlalchemy as sa

from cvalue.config import JobConfig
from cvalue.job._read import _as_kind_of, _is_text, _surveys
from cvalue.job._run import AT_RISK_DETAILS
from cvalue.job._surveys import (
    SurveyTable,
    answering_customers,
    same_database,
    surveys_by_tier,
    surveys_in_database,
)
from cvalue.segments import ValueTiers, at_risk_valuable_in_table
from cvalue.segments.in_table import tiers_in_table, value_risk_grid_in_table, whale_curve_in_table

if TYPE_CHECKING:
    from cvalue.job._chunked import _Scorer

__all__ = ["finish_in_table", "survey_tables"]


def finish_in_table(config: JobConfig, connection: sa.Connection, table: sa.Table, run_id: str,
            scorer: _Scorer, has_profit: bool) -> dict[str, Any]:  # fmt: skip
    """Tiers ranked in the staging table, the grid and the whale curve summed there."""
    where = table.c.run_id == run_id
    value = f"clv_{scorer.longest}"
    segments = config.segments
    return {
        "tiers": tiers_in_table(connection, table, value=value, tier="value_tier",
                                cuts=segments.tiers, where=where),
        "grid": value_risk_grid_in_table(connection, table, value=value, p_alive="p_alive",
                                         value_bands=segments.grid_size, where=where),
        "whale": whale_curve_in_table(connection, table,
                                      value="net_profit" if has_profit else value, where=where),
        # after the tiers: the list shows each customer's
        "at_risk": at_risk_valuable_in_table(
            connection, table, value=value, p_alive="p_alive", where=where,
            details=[column for column in AT_RISK_DETAILS if column in table.c]),
    }  # fmt: skip


def survey_tables(connection: sa.Connection, table: sa.Table, run_id: str, scorer: _Scorer,
                   answers: pd.DataFrame | SurveyTable, tiers: ValueTiers, notes: list[str],
                   source: tuple[JobConfig, sa.Engine]) -> dict[str, pd.DataFrame]:  # fmt: skip
    """NPS, CSAT and CES by the tiers ranked in the staging table (see :mod:`._surveys`).

    A survey table of the database the scores go to is counted there; otherwise (or to word a
    problem the counts show) the answers are read from ``source``. Their ids are read as the
    scored customers' kind (text or numbers) when nothing is lost, as the in-memory job aligns
    them.
    """
    scored = pd.Series(scorer.samples[0].index[:0]) if scorer.samples else None
    value, where = f"clv_{scorer.longest}", table.c.run_id == run_id
    if isinstance(answers, SurveyTable):
        is_text = answers.id_is_text if scored is None else _is_text(scored)
        found = surveys_in_database(connection, answers, table, value=value, where=where,
                                    scored_is_text=bool(is_text), tiers=tiers,
                                    ) if same_database(connection, source[1]) else None  # fmt: skip
        if found is not None:
            notes.extend([*([_read_as(scored)] if is_text != answers.id_is_text else []),
                          "surveys by value tier counted in the database"])  # fmt: skip
            return found
        answers = cast(pd.DataFrame, _surveys(*source))
    ids = answers["customer_id"]
    converted = _as_kind_of(ids, ids if scored is None else scored)
    if converted is not None and converted is not ids:
        answers = answers.assign(customer_id=converted.to_numpy())
        notes.append(_read_as(scored))
    customers = answering_customers(connection, table, answers["customer_id"], value=value,
                                    where=where)  # fmt: skip
    return surveys_by_tier(answers, customers, tiers)


def _read_as(scored: pd.Series | None) -> str:
    kind = None if scored is None else scored.dtype
    return f"[source.surveys]: customer ids read as the transactions' ({kind}) to match them"
