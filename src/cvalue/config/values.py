"""The values TOML has no type for, and what every section of the configuration shares.

Durations (``"26w"``), dates, paths, the report's path (or ``false``) and the names of environment
variables are checked here, with messages that say what was expected; ``_Section`` is the strict,
frozen base of every section, and ``_read_environment`` reads a variable the file names.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, PlainSerializer, PlainValidator

from cvalue.errors import ConfigError
from cvalue.units import Duration, TimeUnit

__all__ = ["DateValue", "DurationValue", "EnvName", "PathValue", "ReportValue"]

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


# --- value types that TOML does not have ----------------------------------------------------------


def _duration(value: object) -> Duration:
    if isinstance(value, Duration):
        return value
    if not isinstance(value, str):
        raise ValueError("expected a duration written as a string, such as '52w', '18M' or '3y'")
    try:
        return Duration.parse(value)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a duration: {exc}") from None


def _date(value: object) -> dt.date:
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return (
                dt.datetime.fromisoformat(value) if "T" in value else dt.date.fromisoformat(value)
            )
        except ValueError:
            pass
    raise ValueError("expected a date, such as 2024-12-31 (a TOML date) or '2024-12-31'")


def _path(value: object) -> Path:
    if isinstance(value, Path):
        return value
    if isinstance(value, str) and value.strip():
        return Path(value)
    raise ValueError("expected a file path written as a string, such as 'reports/cvalue.html'")


def _positive(duration: Duration) -> Duration:
    if duration.value <= 0:
        raise ValueError("a duration here must be longer than zero, such as '26w' or '3y'")
    return duration


def _unique(names: list[str]) -> list[str]:
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"{repeated} appear more than once")
    return names


def _check_shares(shares: dict[str, float] | None, low: float, high: float) -> None:
    """ValueError naming the entries of ``shares`` outside ``[low, high)``."""
    outside = sorted(name for name, share in (shares or {}).items() if not low <= share < high)
    if outside:
        raise ValueError(f"values must be in [{low:g}, {high:g}); not so for {outside}")


_SHORT_UNITS = {TimeUnit.DAY: "d", TimeUnit.WEEK: "w", TimeUnit.MONTH: "M", TimeUnit.QUARTER: "q",
                TimeUnit.YEAR: "y"}  # fmt: skip


def _duration_text(duration: Duration) -> str:
    """A duration as it is written in the file: ``"26w"``, ``"3y"``."""
    return f"{duration.value:g}{_SHORT_UNITS[duration.unit]}"


DurationValue = Annotated[
    Duration,
    PlainValidator(_duration),
    AfterValidator(_positive),
    PlainSerializer(_duration_text, return_type=str),
]
DateValue = Annotated[dt.date, PlainValidator(_date)]
PathValue = Annotated[Path, PlainValidator(_path)]


def _report_path(value: object) -> Path | None:
    if value is False:  # TOML has no null: ``report = false`` turns the report off
        return None
    if value is True:
        raise ValueError("expected a file path such as 'cvalue-report.html', or false for none")
    return _path(value)


ReportValue = Annotated[Path | None, PlainValidator(_report_path)]


def _env_name(name: str | None) -> str | None:
    # the value is never quoted: a URL put here by mistake would carry its password
    if name is not None and not _ENV_NAME.fullmatch(name):
        raise ValueError(
            "must be the NAME of an environment variable (letters, digits and _), not the URL "
            "itself; put the URL in that variable"
        )
    return name


EnvName = Annotated[str, AfterValidator(_env_name)]


def _exactly_one(section: str, given: Mapping[str, object]) -> None:
    named = [name for name, value in given.items() if value is not None]
    if len(named) != 1:
        options = " or ".join(given)
        found = f"got {' and '.join(named)}" if named else "got none"
        raise ValueError(f"{section} needs exactly one of {options} ({found})")


class _Section(BaseModel):
    # strict: TOML has types, so "0.3" for a number or 1 for true is a mistake to report
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


# --- environment variables named in the file ------------------------------------------------------


def _read_environment(name: str, key: str, environ: Mapping[str, str] | None) -> str:
    value = (os.environ if environ is None else environ).get(name, "")
    if not value.strip():
        raise ConfigError(
            f"{key} names the environment variable {name!r}, which is not set; set it to the "
            f"database URL, such as: export {name}='postgresql+psycopg://user:password@host/crm'"
        )
    return value
