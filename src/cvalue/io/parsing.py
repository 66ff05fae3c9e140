"""Reading dates and amounts written as text: one format per column, never one per value.

A text date column is read with a single format: the caller's ``date_format``, or the one format,
among :data:`DATE_LAYOUTS`, that reads the most of the column's values. Day-first and month-first
layouts are told apart by the values themselves (a day above 12 settles it) or by ``dayfirst``;
a column in which every date reads both ways is refused rather than guessed. Values the chosen
format cannot read come back as ``NaT``, for validation to reject with a count.

Amounts written as text follow the caller's ``decimal`` mark and ``thousands`` separator, with
strict grouping: ``"1,5"`` is not fifteen.

Candidate formats are tried with vectorised ``pandas.to_datetime`` calls on the column's distinct
values (and, for large columns, first on an evenly spaced sample of them), so a column costs a
few parses of its distinct values, whatever its format.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal, cast

import numpy as np
import numpy.typing as npt
import pandas as pd

from cvalue.errors import SchemaError

__all__ = [
    "DATE_LAYOUTS",
    "ISO8601",
    "UNIX_FORMATS",
    "Formats",
    "ParsedTimestamps",
    "detect_date_format",
    "parse_amounts",
    "parse_flags",
    "parse_timestamps",
    "resolve_formats",
]

ISO8601 = "ISO8601"
"""pandas' ISO 8601 reader: ``2024-07-05``, ``2024-07-05T14:05:00.5+02:00``, ``2024/07/05``."""
UNIX_FORMATS = ("unix_s", "unix_ms")
_TIME_SUFFIXES = ("", " %H:%M", " %H:%M:%S")
_SAMPLE_SIZE = 1_000
# an offset counts only after a time of day: '2024-07-05' does not end in the offset '-05'
_ZONE_PATTERN = r"[T ][^+\-Z]*?\s?(Z|[+-]\d{1,2}(?::?\d{2})?)$"
_SPACES = " \u00a0\u202f"  # space, no-break space, narrow no-break space
_DATE_LIKE = (dt.date, np.datetime64)


@dataclass(frozen=True, slots=True)
class _Layout:
    """A date layout; ``partner`` is the same layout with day and month swapped."""

    date: str
    first: Literal["day", "month"] | None = None
    partner: str | None = None


DATE_LAYOUTS: tuple[str, ...] = (
    ISO8601, "%d.%m.%Y", "%m.%d.%Y", "%d/%m/%Y", "%m/%d/%Y", "%d-%m-%Y", "%m-%d-%Y",
    "%Y/%m/%d", "%Y.%m.%d",
)  # fmt: skip
"""The layouts detection chooses from, in order of preference on a tie; each may be followed by
a time of day (`` %H:%M`` or `` %H:%M:%S``)."""
_LAYOUTS = (
    _Layout(ISO8601),
    _Layout("%d.%m.%Y", "day", "%m.%d.%Y"),
    _Layout("%m.%d.%Y", "month", "%d.%m.%Y"),
    _Layout("%d/%m/%Y", "day", "%m/%d/%Y"),
    _Layout("%m/%d/%Y", "month", "%d/%m/%Y"),
    _Layout("%d-%m-%Y", "day", "%m-%d-%Y"),
    _Layout("%m-%d-%Y", "month", "%d-%m-%Y"),
    _Layout("%Y/%m/%d"),
    _Layout("%Y.%m.%d"),
)


@dataclass(frozen=True, slots=True)
class Formats:
    """How an extract writes its dates and amounts.

    Parameters
    ----------
    date_format
        A ``strptime`` format used as is for every value (``"%d.%m.%Y"``), ``"ISO8601"``, or
        ``"unix_s"`` / ``"unix_ms"`` for unix timestamps in seconds or milliseconds. ``None``
        detects one format for the column.
    dayfirst
        With detection, ``True`` reads ambiguous layouts day-first, ``False`` month-first.
    decimal
        The decimal mark of amounts written as text.
    thousands
        The thousands separator of amounts written as text; ``" "`` also matches the no-break
        spaces U+00A0 and U+202F.

    Raises
    ------
    SchemaError
        If an option is not one of the accepted values.
    """

    date_format: str | None = None
    dayfirst: bool | None = None
    decimal: str = "."
    thousands: str | None = None

    def __post_init__(self) -> None:
        """Refuse options that are not accepted values."""
        _check_date_options(self.date_format, self.dayfirst)
        _check_separator("decimal", self.decimal)
        if self.thousands is not None:
            _check_separator("thousands", self.thousands)
            if _separator_class(self.thousands) == _separator_class(self.decimal):
                raise SchemaError(
                    f"decimal={self.decimal!r} and thousands={self.thousands!r} are the same "
                    "mark; pass two different ones, e.g. decimal=',' and thousands=' '"
                )

    def as_dict(self) -> dict[str, str | bool | None]:
        """The options by name, as ``read_transactions`` records them in ``frame.attrs``."""
        return {field.name: getattr(self, field.name) for field in fields(self)}

    @classmethod
    def from_mapping(cls, values: Mapping[str, object]) -> Formats:
        """Formats from a mapping of option names (as :meth:`as_dict` gives)."""
        unknown = sorted(set(values) - {field.name for field in fields(cls)})
        if unknown:
            raise SchemaError(f"unknown format option(s) {unknown}; known: {list(cls().as_dict())}")
        # __post_init__ checks each value's type and range
        return cls(**cast("dict[str, Any]", values))


def _check_date_options(date_format: object, dayfirst: object) -> None:
    if dayfirst is not None and not isinstance(dayfirst, bool):
        raise SchemaError(f"dayfirst must be True, False or None, not {dayfirst!r}")
    if date_format is None:
        return
    is_known = isinstance(date_format, str) and (
        date_format in (ISO8601, *UNIX_FORMATS) or "%" in date_format
    )
    if not is_known:
        raise SchemaError(
            f"date_format={date_format!r} is not a strptime format; pass e.g. '%d.%m.%Y', "
            "'%m/%d/%Y %H:%M', 'ISO8601', 'unix_s' or 'unix_ms' (values are never read one "
            "format per value)"
        )
    if dayfirst is not None:
        raise SchemaError(
            f"pass date_format={date_format!r} or dayfirst={dayfirst!r}, not both: dayfirst only "
            "chooses between the detected day-first and month-first layouts"
        )


def _check_separator(name: str, mark: object) -> None:
    if not isinstance(mark, str) or len(mark) != 1 or mark.isdigit() or mark in "+-eE":
        raise SchemaError(
            f"{name}={mark!r} must be one character that is not a digit or a sign, "
            "such as '.', ',', ' ' or \"'\""
        )


def _separator_class(mark: str) -> str:
    """The characters a separator matches: any kind of space stands for all of them."""
    return _SPACES if mark in _SPACES else mark


def resolve_formats(given: Formats, recorded: Mapping[str, object] | None) -> Formats:
    """The options to use: the given ones, else those recorded when the extract was read.

    An option left at its default takes the recorded value.

    Raises
    ------
    SchemaError
        If an option is given both ways with different values.
    """
    if not recorded:
        return given
    stored, default = Formats.from_mapping(recorded).as_dict(), Formats().as_dict()
    chosen = given.as_dict()
    conflicts = [
        f"{name}={value!r} (read_transactions was given {name}={stored[name]!r})"
        for name, value in chosen.items()
        if value != default[name] and stored[name] not in (default[name], value)
    ]
    if conflicts:
        raise SchemaError(
            f"conflicting format options: {', '.join(conflicts)}; pass them to "
            "read_transactions only, or the same values to both"
        )
    merged = {name: stored[name] if value == default[name] else value for name, value in
              chosen.items()}  # fmt: skip
    return Formats.from_mapping(merged)


# --- timestamps -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ParsedTimestamps:
    """A timestamp column as read.

    ``timestamps`` is ``NaT`` where a value cannot be read; ``is_main_zone`` tells whether each
    row is in the column's main time zone; ``date_format`` is the format used (``None`` for a
    column that already held datetimes or numbers).
    """

    timestamps: pd.Series
    is_main_zone: pd.Series
    date_format: str | None


def parse_timestamps(
    raw: pd.Series,
    *,
    column: str = "timestamp",
    timezone: str | None = None,
    date_format: str | None = None,
    dayfirst: bool | None = None,
) -> ParsedTimestamps:
    """Read a timestamp column with one format for the whole column.

    Parameters
    ----------
    raw
        Datetimes (passed through), text, numbers (unix timestamps with ``date_format="unix_s"``
        or ``"unix_ms"``; unreadable otherwise), or Python date objects.
    column
        The column's name, for error messages.
    timezone
        Convert every timestamp to this zone (naive ones are local times in it; unix timestamps
        are UTC instants). Without it, rows of a zone other than the most common one are not
        parsed and are marked as outside the main zone.
    date_format, dayfirst
        As in :class:`Formats`.

    Returns
    -------
    ParsedTimestamps

    Raises
    ------
    SchemaError
        If every date of the column reads both day-first and month-first and neither
        ``date_format`` nor ``dayfirst`` settles it, or if an option is invalid.

    Examples
    --------
    >>> dates = pd.Series(["05.07.2024", "20.07.2024"])
    >>> parsed = parse_timestamps(dates)
    >>> parsed.date_format, parsed.timestamps.dt.strftime("%Y-%m-%d").tolist()
    ('%d.%m.%Y', ['2024-07-05', '2024-07-20'])
    """
    Formats(date_format=date_format, dayfirst=dayfirst)
    if pd.api.types.is_datetime64_any_dtype(raw.dtype):
        return ParsedTimestamps(_to_zone(raw, timezone), _all(raw, True), None)
    if date_format in UNIX_FORMATS:
        unix = _read_unix(raw, cast("Literal['unix_s', 'unix_ms']", date_format))
        return ParsedTimestamps(_to_zone(unix, timezone), _all(raw, True), date_format)
    if pd.api.types.is_numeric_dtype(raw.dtype) or pd.api.types.is_bool_dtype(raw.dtype):
        # numbers are not read as nanoseconds since 1970: without a unix format, they are unread
        return ParsedTimestamps(_unread(raw.index, timezone), _all(raw, True), None)
    if raw.dtype == object and pd.api.types.infer_dtype(raw, skipna=True) == "string":
        raw = raw.astype("str")  # text in an object column: the fast path applies
    whole = _read_whole(raw, date_format, timezone)
    if whole is not None:
        return whole
    return _read_distinct(raw, column, timezone, date_format, dayfirst)


def _all(raw: pd.Series, value: bool) -> pd.Series:
    return pd.Series(value, index=raw.index, dtype=bool)


def _unread(index: pd.Index, timezone: str | None = None) -> pd.Series:
    return _to_zone(pd.Series(pd.NaT, index=index, dtype="datetime64[ns]"), timezone)


def _to_zone(parsed: pd.Series, timezone: str | None) -> pd.Series:
    """Timestamps in ``timezone``: aware ones converted, naive ones taken as its local times."""
    if timezone is None:
        return parsed
    converted: pd.Series = (
        parsed.dt.tz_convert(timezone)
        if isinstance(parsed.dtype, pd.DatetimeTZDtype)
        else parsed.dt.tz_localize(timezone, ambiguous="NaT", nonexistent="NaT")
    )
    return converted


def _read_unix(raw: pd.Series, date_format: Literal["unix_s", "unix_ms"]) -> pd.Series:
    """UTC timestamps from seconds or milliseconds since 1970 (numbers or numeric text).

    Values are rounded to whole milliseconds (seconds) or microseconds (milliseconds) before
    conversion, so that a float's last bits cannot shift an integer timestamp.
    """
    if pd.api.types.is_bool_dtype(raw.dtype):
        numbers = np.full(len(raw), np.nan)
    else:
        source = raw if pd.api.types.is_numeric_dtype(raw.dtype) else _stripped_text(raw)
        numbers = pd.to_numeric(source, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    scaled = np.round(numbers * 1000.0)
    is_usable = np.isfinite(scaled) & (np.abs(scaled) < 2.0**62)
    counts: pd.Series = pd.Series(np.where(is_usable, scaled, 0.0).astype(np.int64), raw.index)
    unit: Literal["ms", "us"] = "ms" if date_format == "unix_s" else "us"
    parsed: pd.Series = pd.to_datetime(counts, unit=unit, errors="coerce", utc=True)
    return parsed.where(is_usable)


def _stripped_text(raw: pd.Series) -> pd.Series:
    return raw.astype("string").str.strip()


def _read_whole(
    raw: pd.Series, date_format: str | None, timezone: str | None
) -> ParsedTimestamps | None:
    """The fast path: a text column read in one call with the caller's format or ISO 8601.

    ``None`` when it does not apply: not a text column, a format with a zone, several zones
    (pandas refuses to mix them), or, without ``date_format``, values that are not ISO 8601.
    """
    layout = date_format or ISO8601
    if not isinstance(raw.dtype, pd.StringDtype) or _Format(layout).has_zone_names:
        return None
    if date_format is None and not _sample_is_iso(raw):
        return None  # a value of the sample is not ISO 8601: the whole column cannot be
    try:
        parsed = pd.to_datetime(raw.str.strip(), format=layout, errors="coerce")
    except ValueError:
        return None
    if date_format is None and (parsed.isna() & raw.notna()).any():
        return None
    return ParsedTimestamps(_to_zone(parsed, timezone), _all(raw, True), layout)


def _sample_is_iso(raw: pd.Series) -> bool:
    """Whether every given value of an evenly spaced sample of ``raw`` reads as ISO 8601."""
    sample = raw.iloc[_sample(len(raw))].dropna()
    try:
        return bool(
            pd.to_datetime(sample.str.strip(), format=ISO8601, errors="coerce").notna().all()
        )
    except ValueError:  # several zones in the sample: the whole column is read zone by zone
        return False


@dataclass(frozen=True, slots=True)
class _Format:
    """One format for a column: a layout and the times of day that may follow it.

    A detected layout may carry a time of day or not (the most common suffix comes first); the
    caller's format has the one suffix ``""``.
    """

    layout: str
    suffixes: tuple[str, ...] = ("",)

    @property
    def has_zone_names(self) -> bool:
        """Whether values may name a zone that the offset labels do not catch."""
        return "%z" in self.layout or "%Z" in self.layout

    @property
    def has_zones(self) -> bool:
        return self.layout == ISO8601 or self.has_zone_names

    def read(self, text: pd.Series, parsed: pd.Series | None = None) -> pd.Series:
        """``NaT`` where a value fits the layout with none of the suffixes.

        ``parsed`` holds values read before, for the suffixes to complete.
        """
        remaining = self.suffixes
        if parsed is None:
            parsed = _to_datetime(text, self.layout + self.suffixes[0])
            remaining = self.suffixes[1:]  # the first has just been tried on every value
        for suffix in remaining:
            todo = parsed.isna()
            if not todo.any():
                break
            again = _to_datetime(text[todo], self.layout + suffix)
            parsed = parsed.mask(todo, again.reindex(parsed.index))
        return parsed


def _to_datetime(text: pd.Series, date_format: str, *, utc: bool = False) -> pd.Series:
    """``pandas.to_datetime`` with one format; ``NaT`` where a value does not fit it."""
    try:
        parsed: pd.Series = pd.to_datetime(text, format=date_format, errors="coerce", utc=utc)
    except ValueError:
        # zones that the offset labels did not separate: refuse them rather than guess
        return pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns]")
    return parsed


def _distinct(raw: pd.Series) -> tuple[npt.NDArray[np.intp], pd.Series, npt.NDArray[np.bool_]]:
    """Row codes (-1 for missing), the distinct values (text stripped), which ones are text."""
    if isinstance(raw.dtype, pd.StringDtype):
        codes, uniques = pd.factorize(raw.str.strip())
        return codes, pd.Series(uniques, dtype=object), np.ones(len(uniques), dtype=bool)
    codes, uniques = pd.factorize(raw.astype(object).map(_hashable))
    return codes, pd.Series(uniques, dtype=object), _is_instance(uniques, str)


def _hashable(item: object) -> object:
    """Text stripped; a list or dict (never a date) as its text, for factorize to count it."""
    if isinstance(item, str):
        return item.strip()
    return item if isinstance(item, Hashable) else repr(item)


def _is_instance(
    values: pd.Index | pd.Series, kind: type | tuple[type, ...]
) -> npt.NDArray[np.bool_]:
    return np.fromiter((isinstance(v, kind) for v in values), dtype=bool, count=len(values))


def _read_distinct(
    raw: pd.Series,
    column: str,
    timezone: str | None,
    date_format: str | None,
    dayfirst: bool | None,
) -> ParsedTimestamps:
    """Text and date objects, read by distinct value and zone, with one format for the column."""
    codes, values, is_text = _distinct(raw)
    weights = np.bincount(codes[codes >= 0], minlength=len(values))
    chosen, ready = (
        (_Format(date_format), None)
        if date_format is not None
        else _detect(values[is_text], weights[is_text], column, dayfirst)
    )
    labels = _zone_labels(values, is_text, chosen)
    main_zone = _main_zone(labels, weights)
    if ready is not None and is_text.all():
        parsed = _to_zone(chosen.read(values, ready.set_axis(values.index)), timezone)
    else:
        parsed = _read_zones(values, is_text, labels, chosen, timezone, main_zone)
    rows = pd.Series(parsed.array.take(codes, allow_fill=True), index=raw.index)
    row_labels = np.append(labels, main_zone)[codes]  # code -1 (missing) is in the main zone
    is_main_zone = pd.Series((row_labels == main_zone) | (timezone is not None), index=raw.index)
    return ParsedTimestamps(rows, is_main_zone, chosen.layout)


def _zone_labels(
    values: pd.Series, is_text: npt.NDArray[np.bool_], chosen: _Format
) -> npt.NDArray[np.object_]:
    """The zone each value states: a normalised offset ('+02:00'), a zone name, or ''."""
    labels = np.full(len(values), "", dtype=object)
    if chosen.has_zones and is_text.any():
        text = values[is_text].astype("string[pyarrow]")
        offsets = text.str.extract(_ZONE_PATTERN, expand=False).fillna("")
        normalised = {offset: _normalised_offset(offset) for offset in offsets.unique()}
        labels[is_text] = offsets.map(normalised).to_numpy(dtype=object)
    if not is_text.all():
        is_date = _is_instance(values, _DATE_LIKE)
        labels[is_date] = [str(getattr(v, "tzinfo", None) or "") for v in values[is_date]]
    return labels


def _normalised_offset(offset: str) -> str:
    """'+2', '+0200', '+02:00' -> '+02:00'; 'Z' -> '+00:00'."""
    if offset in ("", "Z"):
        return "+00:00" if offset else ""
    hours, _, minutes = offset[1:].partition(":")
    if not minutes and len(hours) > 2:
        hours, minutes = hours[:-2], hours[-2:]
    return f"{offset[0]}{int(hours):02d}:{minutes or '00'}"


def _main_zone(labels: npt.NDArray[np.object_], weights: npt.NDArray[np.intp]) -> str:
    """The zone most rows state (the first of equals)."""
    if not len(labels):
        return ""
    return str(pd.Series(weights).groupby(labels, sort=False).sum().idxmax())


def _read_zones(
    values: pd.Series,
    is_text: npt.NDArray[np.bool_],
    labels: npt.NDArray[np.object_],
    chosen: _Format,
    timezone: str | None,
    main_zone: str,
) -> pd.Series:
    """Each zone's values read and moved to ``timezone``.

    Without ``timezone``, the values of zones other than the main one stay ``NaT``: they cannot
    share a column.
    """
    zones = pd.unique(labels) if timezone is not None else [main_zone]
    parts = [
        _to_zone(_read_values(values[in_zone], is_text[in_zone], chosen), timezone)
        for in_zone in (labels == zone for zone in zones)
    ]
    return _combined(parts, values.index, timezone)


def _combined(parts: list[pd.Series], index: pd.Index, timezone: str | None = None) -> pd.Series:
    """Parts read separately, in one datetime column on ``index`` (``NaT`` where none is)."""
    read = [part for part in parts if len(part)]
    if not read:
        return _unread(index, timezone)
    combined: pd.Series = pd.to_datetime(pd.concat(read).reindex(index))
    return combined


def _read_values(values: pd.Series, is_text: npt.NDArray[np.bool_], chosen: _Format) -> pd.Series:
    """Text read with the format, date objects as they are, anything else ``NaT``."""
    if is_text.all():
        return chosen.read(values)
    is_date = _is_instance(values, _DATE_LIKE)
    parts = [chosen.read(values[is_text]), pd.to_datetime(values[is_date], errors="coerce")]
    return _combined(parts, values.index)


def detect_date_format(
    values: pd.Series, *, column: str = "timestamp", dayfirst: bool | None = None
) -> str:
    """The one layout of :data:`DATE_LAYOUTS` that reads the most of a column's text dates.

    Parameters
    ----------
    values
        The column (text; missing values are ignored).
    column
        Its name, for the error message.
    dayfirst
        Keep only day-first (``True``) or month-first (``False``) layouts.

    Returns
    -------
    str
        ``"ISO8601"`` or a ``strptime`` date layout such as ``"%d.%m.%Y"`` (values may add a time
        of day to it). ``"ISO8601"`` when no layout reads any value.

    Raises
    ------
    SchemaError
        If the best layout and its day/month swap read the same number of rows.

    Examples
    --------
    >>> detect_date_format(pd.Series(["07/04/2024", "07/30/2024 10:15"]))
    '%m/%d/%Y'
    """
    codes, uniques, is_text = _distinct(values)
    weights = np.bincount(codes[codes >= 0], minlength=len(uniques))
    return _detect(uniques[is_text], weights[is_text], column, dayfirst)[0].layout


def _detect(
    text: pd.Series, weights: npt.NDArray[np.intp], column: str, dayfirst: bool | None
) -> tuple[_Format, pd.Series | None]:
    """The layout that reads the most rows, and the values as it read them.

    ``weights`` counts the rows of each text value. The values read are ``None`` for ISO 8601,
    which is read zone by zone.
    """
    text = text.reset_index(drop=True)
    iso = _to_datetime(text, ISO8601, utc=True)
    if iso.notna().all():
        return _Format(ISO8601), None
    layouts = [
        layout
        for layout in _LAYOUTS
        if dayfirst is None or layout.first is None or (layout.first == "day") == dayfirst
    ]
    found, counts = _read_candidates(text, weights, iso, [layout.date for layout in layouts[1:]])
    best = max(layouts, key=lambda layout: counts.get(layout.date, -1))  # the first of equals
    if best.date == ISO8601 or counts[best.date] == 0:
        return _Format(ISO8601), None
    if best.partner is not None and counts.get(best.partner, -1) == counts[best.date]:
        raise _ambiguous(text, found, best, column)
    seen = _suffixes_seen(text.iloc[_sample(len(text))], best.date)
    return _Format(best.date, (*seen, *(s for s in _TIME_SUFFIXES if s not in seen))), found[
        best.date
    ]


def _read_candidates(
    text: pd.Series, weights: npt.NDArray[np.intp], iso: pd.Series, candidates: list[str]
) -> tuple[dict[str, pd.Series], dict[str, int]]:
    """The candidate layouts that can read the most rows, each read, and the rows each reads.

    A layout that cannot read a value of the sample cannot read that value's rows either (the
    full read tries the times of day the sample shows), so the rows it could read at most are
    known from the sample alone. A layout whose most falls short of the best count so far can
    neither win nor tie, and is never read in full: in a day-first column, the month-first
    layout stops at the first sampled day above 12.
    """
    positions = _sample(len(text))
    sample, sample_weights = text.iloc[positions], weights[positions]
    total = int(weights.sum())
    most = {
        layout: total - int(sample_weights[_readable(sample, layout).isna().to_numpy()].sum())
        for layout in candidates
    }
    found = {ISO8601: iso}
    counts = {ISO8601: int(weights[iso.notna().to_numpy()].sum())}
    for layout in sorted(candidates, key=lambda name: -most[name]):
        if most[layout] < max(counts.values()):
            continue
        found[layout] = _readable(text, layout)
        counts[layout] = int(weights[found[layout].notna().to_numpy()].sum())
    return found, counts


def _sample(size: int) -> npt.NDArray[np.intp]:
    """Evenly spaced positions, at most ``_SAMPLE_SIZE`` of them."""
    return np.unique(np.linspace(0, size - 1, min(size, _SAMPLE_SIZE)).astype(np.intp))


def _suffixes_seen(sample: pd.Series, layout: str) -> tuple[str, ...]:
    """The times of day that follow ``layout`` in the sample, the most common first."""
    hits = {s: int(_to_datetime(sample, layout + s).notna().sum()) for s in _TIME_SUFFIXES}
    return tuple(sorted((s for s in hits if hits[s]), key=lambda s: -hits[s]))


def _readable(text: pd.Series, layout: str) -> pd.Series:
    """``text`` read with ``layout`` and the times of day seen in a sample (``NaT``: unread)."""
    seen = _suffixes_seen(text.iloc[_sample(len(text))], layout)
    if not seen:
        return _unread(text.index)
    return _Format(layout, seen).read(text)


def _ambiguous(
    text: pd.Series, found: dict[str, pd.Series], best: _Layout, column: str
) -> SchemaError:
    partner = cast("str", best.partner)
    is_read = found[best.date].notna()
    both = is_read & found[partner].notna()
    example = str(text[both].iloc[0] if both.any() else text[is_read].iloc[0])
    day_first, month_first = (best.date, partner) if best.first == "day" else (partner, best.date)
    suffix = next(
        (s for s in _TIME_SUFFIXES if _to_datetime(pd.Series([example]), day_first + s).notna()[0]),
        "",
    )
    return SchemaError(
        f"column {column!r}: dates such as {example!r} read both day-first and month-first "
        f"({int(both.sum()):,} distinct values, none settles the order); pass "
        f"date_format={day_first + suffix!r} or dayfirst=True (date_format="
        f"{month_first + suffix!r} or dayfirst=False if the month comes first)"
    )


# --- amounts --------------------------------------------------------------------------------


def parse_amounts(raw: pd.Series, *, decimal: str = ".", thousands: str | None = None) -> pd.Series:
    """Amounts as floats: numbers as they are, text written with ``decimal`` and ``thousands``.

    With ``thousands``, every group after the first has exactly three digits. Text that does not
    fit (or is not a number) comes back as ``NaN``.

    Examples
    --------
    >>> parse_amounts(pd.Series(["1 234,50", "1.234,50", "1,5"]), decimal=",", thousands=" ")
    0    1234.5
    1       NaN
    2       1.5
    dtype: float64
    """
    Formats(decimal=decimal, thousands=thousands)
    if pd.api.types.is_numeric_dtype(raw.dtype) or (decimal == "." and thousands is None):
        numbers = pd.to_numeric(raw, errors="coerce")
        return pd.Series(numbers.to_numpy(dtype=float, na_value=np.nan), index=raw.index)
    is_text = (
        raw.notna().to_numpy() if isinstance(raw.dtype, pd.StringDtype) else _is_instance(raw, str)
    )
    text = raw[is_text].astype("string").str.strip()
    is_written_right = text.str.fullmatch(_amount_pattern(decimal, thousands)).fillna(False)
    if thousands is not None:
        text = text.str.replace(f"[{re.escape(_separator_class(thousands))}]", "", regex=True)
    plain = text.str.replace(decimal, ".", regex=False).where(is_written_right)
    amounts = pd.Series(np.nan, index=raw.index)
    amounts[is_text] = pd.to_numeric(plain, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    others = pd.to_numeric(raw[~is_text], errors="coerce")
    amounts[~is_text] = others.to_numpy(dtype=float, na_value=np.nan)
    return amounts


def _amount_pattern(decimal: str, thousands: str | None) -> str:
    """``[+-]digits[<decimal>digits]``, digits grouped by three when ``thousands`` is given."""
    whole = r"\d+"
    if thousands is not None:
        separator = f"[{re.escape(_separator_class(thousands))}]"
        whole = rf"(?:\d{{1,3}}(?:{separator}\d{{3}})+|\d+)"
    mark = re.escape(decimal)
    return rf"[+-]?(?:{whole}(?:{mark}\d+)?|{mark}\d+)"


_TRUE = frozenset({"true", "t", "yes", "y", "1", "1.0"})
_FALSE = frozenset({"false", "f", "no", "n", "0", "0.0"})


def parse_flags(raw: pd.Series) -> pd.Series:
    """Booleans from true/false, 1/0, yes/no; anything else is missing (``pd.NA``).

    SQLite, which has no boolean type, stores flags as 0/1. Missing values are for the caller
    to count.

    Examples
    --------
    >>> parse_flags(pd.Series([1, "yes", "False", 0, "maybe"])).tolist()
    [True, True, False, False, <NA>]
    """
    if pd.api.types.is_bool_dtype(raw.dtype):
        return raw.astype("boolean")
    text = raw.astype("string").str.strip().str.lower()
    flags = pd.Series(pd.NA, index=raw.index, dtype="boolean")
    flags[text.isin(_TRUE).fillna(False)] = True
    flags[text.isin(_FALSE).fillna(False)] = False
    return flags
