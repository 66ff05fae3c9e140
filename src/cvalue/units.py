"""Exact time units, durations and rates.

A month is a twelfth of a Gregorian year (365.2425 / 12 days), never 30 days; a quarter is three
months. Durations parse from strings such as ``"52w"``, ``"18M"`` or ``"3y"`` and rates convert
exactly between units, either as effective rates, ``(1 + r) ** (u / year) - 1``, or as
continuously compounded ones.

Examples
--------
>>> Duration.parse("18M").to(TimeUnit.YEAR)
1.5
>>> round(Rate(0.10).per(TimeUnit.MONTH), 6)
0.007974
>>> round(Rate.from_per(Rate(0.10).per(TimeUnit.WEEK), TimeUnit.WEEK).annual, 12)
0.1
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass
from enum import Enum
from typing import Literal

import numpy as np
import pandas as pd

from cvalue.errors import SchemaError

__all__ = [
    "DAYS_PER_WEEK",
    "DAYS_PER_YEAR",
    "EPOCH_WEEKDAY_SHIFT",
    "DateLike",
    "Duration",
    "Grain",
    "Rate",
    "TimeUnit",
    "as_duration",
    "as_time_unit",
    "as_timestamp",
]

DateLike = str | dt.date | dt.datetime | pd.Timestamp | np.datetime64
Grain = Literal["day", "week", "month", "quarter", "year"]
"""A calendar period within which purchases merge."""
DAYS_PER_WEEK = 7.0
EPOCH_WEEKDAY_SHIFT = 3  # 1970-01-01 is a Thursday: day number + 3 counts from a Monday
DAYS_PER_YEAR = 365.2425  # the Gregorian calendar's mean year


class TimeUnit(str, Enum):
    """A unit of time with its exact length in days."""

    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"

    @property
    def days(self) -> float:
        """Length of one unit in days."""
        return _DAYS[self]

    @property
    def pandas_alias(self) -> str:
        """The pandas period alias of the calendar period of this unit."""
        return _PANDAS_ALIAS[self]

    def per(self, other: TimeUnit) -> float:
        """How many of ``other`` fit in one of this unit (``YEAR.per(MONTH) == 12``)."""
        return self.days / other.days


_DAYS: dict[TimeUnit, float] = {
    TimeUnit.DAY: 1.0,
    TimeUnit.WEEK: DAYS_PER_WEEK,
    TimeUnit.MONTH: DAYS_PER_YEAR / 12.0,
    TimeUnit.QUARTER: DAYS_PER_YEAR / 4.0,
    TimeUnit.YEAR: DAYS_PER_YEAR,
}
_PANDAS_ALIAS: dict[TimeUnit, str] = {
    TimeUnit.DAY: "D",
    TimeUnit.WEEK: "W-SUN",
    TimeUnit.MONTH: "M",
    TimeUnit.QUARTER: "Q",
    TimeUnit.YEAR: "Y",
}
# Accepted spellings. "M" is a month and "m" is not accepted, so that minutes can never be
# mistaken for months.
_ALIASES: dict[str, TimeUnit] = {
    "d": TimeUnit.DAY, "D": TimeUnit.DAY, "day": TimeUnit.DAY, "days": TimeUnit.DAY,
    "w": TimeUnit.WEEK, "W": TimeUnit.WEEK, "week": TimeUnit.WEEK, "weeks": TimeUnit.WEEK,
    "M": TimeUnit.MONTH, "mo": TimeUnit.MONTH, "month": TimeUnit.MONTH, "months": TimeUnit.MONTH,
    "q": TimeUnit.QUARTER, "Q": TimeUnit.QUARTER, "quarter": TimeUnit.QUARTER,
    "quarters": TimeUnit.QUARTER,
    "y": TimeUnit.YEAR, "Y": TimeUnit.YEAR, "year": TimeUnit.YEAR, "years": TimeUnit.YEAR,
}  # fmt: skip
_DURATION_PATTERN = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([A-Za-z]+)\s*$")


def as_time_unit(unit: TimeUnit | str) -> TimeUnit:
    """Return ``unit`` as a :class:`TimeUnit`, parsing names such as ``"week"``, ``"W"`` or ``"M"``.

    Raises
    ------
    SchemaError
        If the name is not a known unit; the message lists the accepted names.
    """
    if isinstance(unit, TimeUnit):
        return unit
    found = _ALIASES.get(unit.strip()) if isinstance(unit, str) else None
    if found is None:
        raise SchemaError(
            f"unknown time unit {unit!r}; use one of {sorted({u.value for u in TimeUnit})} "
            "or a short form (d, w, M, q, y). 'm' is not accepted: write 'M' for months."
        )
    return found


@dataclass(frozen=True, slots=True)
class Duration:
    """A length of time: ``value`` units of ``unit``."""

    value: float
    unit: TimeUnit

    def __post_init__(self) -> None:
        """Check that the value is a finite, non-negative number."""
        if not math.isfinite(self.value) or self.value < 0:
            raise SchemaError(f"a duration must be finite and >= 0, got {self.value!r}")

    @classmethod
    def parse(cls, text: str) -> Duration:
        """Parse ``"52w"``, ``"18M"``, ``"3y"``, ``"90 days"`` or ``"1.5 years"``."""
        match = _DURATION_PATTERN.match(text) if isinstance(text, str) else None
        if match is None:
            raise SchemaError(
                f"cannot read {text!r} as a duration; write a number and a unit, "
                "such as '52w', '18M', '3y' or '90 days'"
            )
        return cls(float(match.group(1)), as_time_unit(match.group(2)))

    @property
    def days(self) -> float:
        """The duration in days."""
        return self.value * self.unit.days

    def to(self, unit: TimeUnit | str) -> float:
        """The duration expressed in ``unit`` (exactly: ``"1y"`` is 12 months, 52.1775 weeks)."""
        return self.days / as_time_unit(unit).days

    def __str__(self) -> str:
        """Show as ``'52 week'``."""
        return f"{self.value:g} {self.unit.value}"


def as_duration(value: Duration | str) -> Duration:
    """Return ``value`` as a :class:`Duration`, parsing strings such as ``"3y"``."""
    if isinstance(value, Duration):
        return value
    return Duration.parse(value)


@dataclass(frozen=True, slots=True)
class Rate:
    """An effective annual rate that converts itself exactly to any unit.

    Parameters
    ----------
    annual
        The effective annual rate: ``0.10`` is 10 % a year.
    """

    annual: float

    def __post_init__(self) -> None:
        """Check that the rate is finite and above -100 %."""
        if not math.isfinite(self.annual) or self.annual <= -1.0:
            raise SchemaError(f"a rate must be finite and > -1, got {self.annual!r}")

    @classmethod
    def from_per(cls, rate: float, unit: TimeUnit | str) -> Rate:
        """Build from an effective rate per ``unit`` (``Rate.from_per(0.01, "month")``)."""
        unit = as_time_unit(unit)
        if not math.isfinite(rate) or rate <= -1.0:
            raise SchemaError(f"a rate must be finite and > -1, got {rate!r}")
        return cls(math.expm1(math.log1p(rate) * DAYS_PER_YEAR / unit.days))

    @classmethod
    def from_continuous(cls, rate: float, unit: TimeUnit | str = TimeUnit.YEAR) -> Rate:
        """Build from a continuously compounded rate per ``unit``."""
        unit = as_time_unit(unit)
        return cls(math.expm1(rate * DAYS_PER_YEAR / unit.days))

    def per(self, unit: TimeUnit | str) -> float:
        """The effective rate per ``unit``: ``(1 + annual) ** (unit / year) - 1``."""
        unit = as_time_unit(unit)
        return math.expm1(math.log1p(self.annual) * unit.days / DAYS_PER_YEAR)

    def continuous(self, unit: TimeUnit | str = TimeUnit.YEAR) -> float:
        """The continuously compounded rate per ``unit``: ``log(1 + annual) * unit / year``."""
        unit = as_time_unit(unit)
        return math.log1p(self.annual) * unit.days / DAYS_PER_YEAR

    def discount_factor(self, duration: Duration | str) -> float:
        """The factor ``(1 + annual) ** -(duration in years)`` that discounts over ``duration``."""
        return math.exp(-math.log1p(self.annual) * as_duration(duration).to(TimeUnit.YEAR))


def as_timestamp(value: DateLike, name: str = "date") -> pd.Timestamp:
    """Read a date-like value (``"2024-12-31"``, a ``date``, a ``Timestamp``) as a Timestamp.

    Raises
    ------
    SchemaError
        If the value is missing or not a date; the message names the argument.
    """
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise SchemaError(f"{name} {value!r} is not a date; write it as '2024-12-31'") from exc
    if pd.isna(stamp):
        raise SchemaError(f"{name} is missing; write it as '2024-12-31'")
    return stamp
