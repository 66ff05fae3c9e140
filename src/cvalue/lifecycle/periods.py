"""Calendar periods: what ``period=`` accepts, and the day arithmetic of its periods.

A lifecycle period is one whole calendar period of a day or longer (:data:`PeriodLike`);
``_calendar`` checks it and returns the ``_Calendar`` that maps day numbers (since 1970-01-01)
to pandas period ordinals and back. The array aliases here are those the package's modules share.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd

from cvalue.errors import SchemaError
from cvalue.units import TimeUnit, as_time_unit

__all__ = ["PeriodLike"]

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
IndexArray: TypeAlias = npt.NDArray[np.signedinteger[Any]]
FloatArray = npt.NDArray[np.float64]
PeriodLike: TypeAlias = TimeUnit | str
"""A calendar period: ``"D"``, ``"W"``, ``"M"``, ``"Q"``, ``"Y"``, a unit name such as
``"month"``, a :class:`~cvalue.units.TimeUnit`, or a pandas period alias such as ``"W-WED"``."""
_PERIOD_OFFSETS = (
    pd.offsets.Day, pd.offsets.Week, pd.offsets.MonthEnd, pd.offsets.QuarterEnd,
    pd.offsets.YearEnd,
)  # fmt: skip
_GRAINS = {
    "D": TimeUnit.DAY, "W-SUN": TimeUnit.WEEK, "M": TimeUnit.MONTH, "Q-DEC": TimeUnit.QUARTER,
    "Y-DEC": TimeUnit.YEAR,
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Calendar:
    """A pandas period frequency and the day arithmetic of its periods.

    Periods are pandas period ordinals; days are day numbers since 1970-01-01.
    """

    freq: str

    @property
    def grain(self) -> TimeUnit | None:
        """The cvalue grain of the same periods (what SQL computes), if there is one."""
        return _GRAINS.get(self.freq)

    def ordinals(self, days: IntArray) -> IntArray:
        """The period of each day, through a lookup table over the days' range."""
        if len(days) == 0:
            return np.zeros(0, dtype=np.int64)
        low, high = int(days.min()), int(days.max())
        every_day = np.arange(low, high + 1, dtype=np.int64).astype("datetime64[D]")
        table = pd.DatetimeIndex(every_day).to_period(self.freq).asi8
        return np.asarray(table[days - low], dtype=np.int64)

    def first_days(self, ordinals: IntArray) -> IntArray:
        """The first day of each period."""
        starts = _period_index(ordinals, self.freq).start_time
        return np.asarray(starts.to_numpy().astype("datetime64[D]").astype(np.int64))

    def last_days(self, ordinals: IntArray) -> IntArray:
        """The last day of each period."""
        return self.first_days(ordinals + 1) - 1

    def labels(self, first: int, last: int) -> pd.PeriodIndex:
        """The periods ``first .. last`` as a PeriodIndex."""
        return _period_index(np.arange(first, last + 1, dtype=np.int64), self.freq)


def _period_index(ordinals: IntArray, freq: str) -> pd.PeriodIndex:
    """A PeriodIndex of pandas period ordinals."""
    return pd.PeriodIndex(pd.arrays.PeriodArray(ordinals, dtype=pd.PeriodDtype(freq)))


def _alias(period: PeriodLike) -> str:
    if isinstance(period, TimeUnit):
        return period.pandas_alias
    if not isinstance(period, str):
        raise SchemaError(
            f"period must be a string such as 'M' or a TimeUnit, got {type(period).__name__}"
        )
    try:
        return as_time_unit(period).pandas_alias
    except SchemaError:
        return period.strip()


def _calendar(period: PeriodLike) -> _Calendar:
    """Check ``period`` and return its calendar; a SchemaError says what is accepted."""
    alias = _alias(period)
    accepted = (
        "use 'D', 'W', 'M', 'Q' or 'Y' (or 'day', 'week', 'month', 'quarter', 'year'), or a "
        "pandas period alias of one whole calendar period such as 'W-WED' or 'Q-MAR'"
    )
    try:
        with warnings.catch_warnings():
            # deprecated spellings ('B', lower case) are refused below or by the message
            warnings.simplefilter("ignore")
            probe = pd.Period("2000-01-01", freq=alias)
    except (TypeError, ValueError) as exc:
        raise SchemaError(
            f"period {period!r} is not a valid pandas frequency ({exc}); {accepted}"
        ) from exc
    offset = probe.freq
    if offset.n != 1 or not isinstance(offset, _PERIOD_OFFSETS):
        raise SchemaError(
            f"period {period!r} is a pandas frequency, but not one calendar period of a day or "
            f"longer (multiples, business days and times of day are not lifecycle periods); "
            f"{accepted}"
        )
    return _Calendar(probe.freqstr)
