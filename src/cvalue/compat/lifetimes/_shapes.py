"""lifetimes' time frequencies, as cvalue's time units."""

from __future__ import annotations

from typing import Literal

from cvalue.errors import SchemaError
from cvalue.units import TimeUnit

__all__ = ["Freq", "unit_of"]

Freq = Literal["D", "W", "M"]
"""The ``freq`` values lifetimes and cvalue share: day, week, month."""

_UNITS: dict[str, TimeUnit] = {"D": TimeUnit.DAY, "W": TimeUnit.WEEK, "M": TimeUnit.MONTH}


def unit_of(freq: str) -> TimeUnit:
    """The time unit of a lifetimes ``freq``; ``"H"`` (hours) has none in cvalue."""
    if freq not in _UNITS:
        raise SchemaError(
            f"freq={freq!r} is not supported; use 'D', 'W' or 'M' (cvalue has no hour unit: "
            "summarise by day instead)"
        )
    return _UNITS[freq]
