"""lifetimes' ``utils``: customer summaries from a transaction log, by cvalue's summary functions.

``from cvalue.compat.lifetimes.utils import summary_data_from_transaction_data`` stands in for
the same import from ``lifetimes.utils``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cvalue.compat.lifetimes._shapes import Freq, unit_of
from cvalue.errors import SchemaError
from cvalue.io.schema import Columns
from cvalue.summary import calibration_holdout, rfm_summary
from cvalue.units import DateLike

__all__ = ["calibration_and_holdout_data", "summary_data_from_transaction_data"]


def _as_timestamps(
    transactions: pd.DataFrame, datetime_col: str, datetime_format: str | None
) -> pd.DataFrame:
    if datetime_format is None:
        return transactions
    parsed = pd.to_datetime(transactions[datetime_col], format=datetime_format)
    return transactions.assign(**{datetime_col: parsed})


def _in_periods(summary: pd.DataFrame, columns: tuple[str, ...], multiplier: float) -> pd.DataFrame:
    """Lifetimes' ``freq_multiplier``: time columns counted in ``multiplier`` grains."""
    if multiplier != 1:
        summary = summary.assign(**{name: summary[name] / multiplier for name in columns})
    return summary


def _check_first_transaction(include_first_transaction: bool) -> None:
    if include_first_transaction:
        raise SchemaError(
            "include_first_transaction=True is not supported: frequency counts repeat "
            "purchases, which the models need; add 1 to 'frequency' yourself if you need the count"
        )


def summary_data_from_transaction_data(
    transactions: pd.DataFrame,
    customer_id_col: str,
    datetime_col: str,
    monetary_value_col: str | None = None,
    datetime_format: str | None = None,
    observation_period_end: DateLike | None = None,
    freq: Freq = "D",
    freq_multiplier: float = 1,
    include_first_transaction: bool = False,
) -> pd.DataFrame:
    """Lifetimes' summary: :func:`cvalue.rfm_summary` with ``grain=freq`` and ``unit=freq``.

    Purchases within one ``freq`` period merge; ``recency`` and ``T`` count periods divided by
    ``freq_multiplier`` (``freq="D", freq_multiplier=7`` gives weeks as days / 7). Without
    ``monetary_value_col`` there is no ``monetary_value`` column.

    Raises
    ------
    DataQualityError
        When a purchase falls after ``observation_period_end`` (lifetimes drops it silently).
    SchemaError
        For ``include_first_transaction=True`` or ``freq="H"``.
    """
    _check_first_transaction(include_first_transaction)
    unit = unit_of(freq)
    columns = Columns(
        customer_id=customer_id_col, timestamp=datetime_col, amount=monetary_value_col
    )
    summary = rfm_summary(
        _as_timestamps(transactions, datetime_col, datetime_format),
        observation_end=observation_period_end, unit=unit, grain=unit, columns=columns,
    )  # fmt: skip
    return _in_periods(summary.astype({"frequency": np.float64}), ("recency", "T"), freq_multiplier)


def calibration_and_holdout_data(
    transactions: pd.DataFrame,
    customer_id_col: str,
    datetime_col: str,
    calibration_period_end: DateLike,
    observation_period_end: DateLike | None = None,
    freq: Freq = "D",
    freq_multiplier: float = 1,
    datetime_format: str | None = None,
    monetary_value_col: str | None = None,
    include_first_transaction: bool = False,
) -> pd.DataFrame:
    """Lifetimes' calibration/holdout split: :func:`cvalue.calibration_holdout`.

    Columns ``frequency_cal, recency_cal, T_cal[, monetary_value_cal], frequency_holdout
    [, monetary_value_holdout], duration_holdout``, as lifetimes names them.
    ``observation_period_end`` defaults to the last purchase.
    """
    _check_first_transaction(include_first_transaction)
    unit = unit_of(freq)
    transactions = _as_timestamps(transactions, datetime_col, datetime_format)
    if observation_period_end is None:
        observation_period_end = pd.to_datetime(transactions[datetime_col]).max()
    columns = Columns(
        customer_id=customer_id_col, timestamp=datetime_col, amount=monetary_value_col
    )
    split = calibration_holdout(
        transactions, calibration_end=calibration_period_end,
        observation_end=observation_period_end, unit=unit, grain=unit, columns=columns,
    )  # fmt: skip
    split = split.rename(columns={name: f"{name}_cal" for name in
                                  ("frequency", "recency", "T", "monetary_value")})  # fmt: skip
    split = split.astype({"frequency_cal": np.float64, "frequency_holdout": np.float64})
    return _in_periods(split, ("recency_cal", "T_cal", "duration_holdout"), freq_multiplier)
