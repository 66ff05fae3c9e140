"""Validation of transaction extracts: every bad row is rejected with a reason, none is dropped.

The rules run as one pandera schema over the extract (after parsing timestamps and amounts), with
lazy validation so that every failing row of every rule is collected at once. Each rejected row
carries the first rule it breaks, in the order of :data:`CRM_RULES` (deals not won, amounts in
another currency: for extracts that map a status or a currency) and then :data:`RULES`.

With ``strict=True`` any rejected row raises one :class:`~cvalue.errors.DataQualityError` that lists
every problem; with ``strict=False`` the clean rows, the rejected rows and a report come back.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from cvalue.errors import DataQualityError, EmptyExtractError, SchemaError
from cvalue.io.parsing import (
    Formats,
    parse_amounts,
    parse_flags,
    parse_timestamps,
    resolve_formats,
)
from cvalue.io.schema import CRM_ATTRS, Columns
from cvalue.units import DateLike, as_timestamp

__all__ = ["CRM_RULES", "RULES", "Rule", "Validated", "ValidationReport", "validate_transactions"]


@dataclass(frozen=True, slots=True)
class Rule:
    """A validation rule: its reason code, the role it checks, what it means and the fix."""

    reason: str
    role: str
    problem: str
    fix: str


RULES: tuple[Rule, ...] = (
    Rule("missing_customer_id", "customer_id", "missing customer id",
         "fill the ids in the CRM extract or filter anonymous purchases out of the query"),
    Rule("mixed_customer_id", "customer_id",
         "customer id of another kind than the column's (text among numbers or numbers among "
         "text), or a date or true/false",
         "export the ids as one kind, text or whole numbers; a spreadsheet may have turned some "
         "ids into numbers or dates"),
    Rule("missing_timestamp", "timestamp", "missing timestamp",
         "every purchase needs a date; check the extract's date column"),
    Rule("unparsable_timestamp", "timestamp", "timestamp that cannot be read as a date",
         "use ISO dates (2024-03-31 or 2024-03-31T14:05:00) or one format for the whole column "
         "(pass date_format='%d.%m.%Y' or dayfirst=True); numbers are unix timestamps only with "
         "date_format='unix_s' or 'unix_ms'; with timezone=..., local times that do not exist "
         "or are ambiguous at a DST change are rejected too"),
    Rule("mixed_time_zone", "timestamp", "time zone differing from the extract's main zone",
         "pass timezone='Europe/Berlin' (or 'UTC') to convert every timestamp to one zone"),
    Rule("before_min_date", "timestamp", "timestamp before min_date (default 1970-01-01)",
         "dates such as 1900-01-01 are usually placeholders for a missing date: correct them, "
         "or pass an earlier min_date (min_date=None turns the rule off)"),
    Rule("after_max_date", "timestamp", "timestamp after max_date (default: today)",
         "future dates are usually typos or placeholders: correct them, or pass a later "
         "max_date if they are real"),
    Rule("missing_amount", "amount", "missing amount",
         "fill the amount or leave the row out of the extract"),
    Rule("non_numeric_amount", "amount", "amount that is not a finite number",
         "store amounts as numbers without a currency sign; for text such as '1 234,50' pass "
         "decimal=',' and thousands=' ' (or the marks the extract uses)"),
    Rule("negative_amount", "amount", "negative amount on a row not flagged as a return",
         "map the returns flag with Columns(is_return=...) or remove the negative rows"),
    Rule("invalid_return_flag", "is_return", "returns flag that is not true/false",
         "store the flag as a boolean (true/false, 1/0, yes/no)"),
    Rule("after_observation_end", "timestamp", "timestamp after the observation end",
         "pass a later observation_end, or cut the extract at it"),
    Rule("missing_order_id", "order_id", "missing order id",
         "fill the order ids, or do not map order_id"),
    Rule("duplicate_row", "customer_id", "exact duplicate of an earlier row (the first is kept)",
         "deduplicate the extract (repeated rows usually come from a join), or pass "
         "duplicates='keep' if identical rows are real repeat purchases"),
    Rule("duplicate_order_id", "order_id", "order id on several different rows (all rejected)",
         "aggregate order lines to one row per order before validating"),
)  # fmt: skip
CRM_RULES: tuple[Rule, ...] = (
    Rule("not_won", "status", "deal or order that is not won (its status is not one that counts "
         "as a purchase)",
         "nothing to fix when the export holds open and lost deals too; if a status that "
         "counts as a purchase is missing, add it to won"),
    Rule("other_currency", "currency",
         "amount in another currency than the extract's most common one",
         "amounts in two currencies cannot be summed: export the amounts converted to one "
         "currency (the CRM's amount in the company currency), or one currency at a time"),
)  # fmt: skip
"""The rules of the CRM roles ``status`` and ``currency``, checked before :data:`RULES` when
those roles are mapped: a deal that was not won, or an amount in another currency, is not a
purchase of this analysis whatever else is wrong with the row."""
_CHECKED = (*CRM_RULES, *RULES)
_RULE_ORDER = {rule.reason: rank for rank, rule in enumerate(_CHECKED)}


@dataclass(frozen=True, slots=True)
class ValidationReport:
    """What validation found.

    ``reasons`` has one row per reason that rejected rows: ``reason``, ``column`` (the user's
    column name), ``rows``, ``example`` (the first rejected row's label) and ``fix``.
    """

    n_rows: int
    n_clean: int
    n_rejected: int
    reasons: pd.DataFrame

    def message(self) -> str:
        """A readable account of every problem, one line each."""
        lines = [
            f"{self.n_rejected:,} of {self.n_rows:,} rows rejected by {len(self.reasons)} rule(s):"
        ]
        lines += [
            f"- column {row.column!r}: {row.problem} in {row.rows:,} rows "
            f"(e.g. row {row.example!r}); fix: {row.fix}"
            for row in self.reasons.itertuples()
        ]
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class Validated:
    """Clean rows (canonical column names), rejected rows (original columns + ``reason``)."""

    clean: pd.DataFrame
    rejected: pd.DataFrame
    report: ValidationReport


def _require_frame(data: object, columns: Columns) -> pd.DataFrame:
    """Check the input's type, its columns and that it has rows."""
    if not isinstance(data, pd.DataFrame):
        raise SchemaError(
            f"expected a pandas DataFrame of transactions, got {type(data).__name__}; "
            "read files and databases with cvalue.read_transactions"
        )
    missing = {role: name for role, name in columns.mapping().items() if name not in data}
    if missing:
        described = ", ".join(f"{name!r} (as {role})" for role, name in missing.items())
        raise SchemaError(
            f"column(s) {described} not found; the extract has columns {list(data.columns)}. "
            "Name the right ones with cvalue.Columns(customer_id=..., timestamp=..., amount=...)"
        )
    if len(data) == 0:
        raise DataQualityError(
            "the extract has no rows; check the table name, the query's filters and the file"
        )
    return data


def _prepare(
    data: pd.DataFrame, columns: Columns, timezone: str | None, formats: Formats
) -> pd.DataFrame:
    """Canonical columns (parsed) plus the raw facts the rules need, on a positional index."""
    raw = data.reset_index(drop=True)
    parsed = parse_timestamps(
        raw[columns.timestamp], column=columns.timestamp, timezone=timezone,
        date_format=formats.date_format, dayfirst=formats.dayfirst,
    )  # fmt: skip
    prepared = pd.DataFrame({
        "customer_id": raw[columns.customer_id],
        "timestamp": parsed.timestamps,
        "_timestamp_given": raw[columns.timestamp].notna(),
        "_in_main_zone": parsed.is_main_zone.to_numpy(dtype=bool),
        "_duplicate_row": _duplicated(raw, columns.timestamp, parsed.timestamps),
    })  # fmt: skip
    if columns.amount is not None:
        prepared["amount"] = parse_amounts(
            raw[columns.amount], decimal=formats.decimal, thousands=formats.thousands
        )
        prepared["_amount_given"] = raw[columns.amount].notna()
    if columns.is_return is not None:
        prepared["is_return"] = parse_flags(raw[columns.is_return])
    if columns.order_id is not None:
        prepared["order_id"] = raw[columns.order_id]
    if columns.status is not None:
        prepared["_is_won"] = _is_won(raw[columns.status], columns.won or ()).to_numpy()
    if columns.currency is not None:
        prepared["_other_currency"] = _is_other_currency(raw[columns.currency]).to_numpy()
    return prepared


def _as_text(values: pd.Series) -> pd.Series:
    """Values as stripped, case-folded text; whole numbers stored as floats without '.0'.

    A status read from a database or a spreadsheet may be 142 or 142.0 where the export wrote
    '142'; the comparison is of what the values say, not of how they were stored.
    """
    if pd.api.types.is_float_dtype(values.dtype):
        given = values.dropna()
        if (given == np.floor(given)).all():
            values = values.astype("Int64")
    return values.astype("string").str.strip().str.casefold()


def _is_won(status: pd.Series, won: tuple[str, ...]) -> pd.Series:
    """Whether each status is one of ``won`` (``*`` matches any text)."""
    text = _as_text(status)
    literal = [value.strip().casefold() for value in won if "*" not in value]
    is_won = text.isin(literal)
    for pattern in (value.strip().casefold() for value in won if "*" in value):
        is_won |= text.str.match(fnmatch.translate(pattern))
    return is_won.fillna(False).astype(bool)


def _is_other_currency(currency: pd.Series) -> pd.Series:
    """Rows whose currency is given and differs from the most common one (blank is not other)."""
    text = _as_text(currency).replace("", pd.NA)
    counts = text.value_counts(sort=False)  # in order of appearance: the first of equals wins
    if counts.empty:
        return pd.Series(False, index=currency.index)
    main = counts.idxmax()
    return (text.notna() & (text != main)).fillna(False).astype(bool)


def _is_listed(values: pd.Series, listed: tuple[str, ...]) -> pd.Series:
    """Whether each value is one of ``listed`` (compared as text)."""
    if not listed:
        return pd.Series(False, index=values.index)
    return _as_text(values).isin([value.strip().casefold() for value in listed]).fillna(False)


def _duplicated(raw: pd.DataFrame, timestamp: str, parsed: pd.Series) -> npt.NDArray[np.bool_]:
    """Rows that repeat an earlier row exactly.

    Only rows whose hash repeats can be duplicates, so the exact (slow, column by column)
    comparison runs on those few rows alone; keeping order keeps "the first one" the same. The
    hash takes the parsed timestamps, cheaper to hash than text and equal whenever the text is.
    """
    if isinstance(parsed.dtype, pd.DatetimeTZDtype):
        # wall times of one zone: as equal as the instants, and hashed as numbers, not as a
        # million Timestamp objects
        parsed = parsed.dt.tz_localize(None)
    try:
        hashed = raw.drop(columns=[timestamp]).assign(**{timestamp: parsed.to_numpy()})
        hashes = pd.util.hash_pandas_object(hashed, index=False)
    except TypeError:  # a list or dict in a cell: compare such values by their text
        raw = raw.apply(
            lambda column: column.map(_as_hashable) if column.dtype == object else column
        )
        return _duplicated(raw, timestamp, parsed)
    candidates = hashes.duplicated(keep=False).to_numpy()
    duplicated = np.zeros(len(raw), dtype=bool)
    if candidates.any():
        duplicated[candidates] = raw[candidates].duplicated(keep="first").to_numpy()
    return duplicated


def _as_hashable(value: object) -> object:
    return value if isinstance(value, Hashable) else repr(value)


def _is_other_kind(values: pd.Series, is_blank: pd.Series) -> pd.Series:
    """Ids that are not of the column's main kind (numbers or text), dates and flags among them.

    A numeric or text column holds one kind; only a column of Python objects is read value by
    value. Its main kind is the more common of number and text among the ids given.
    """
    dtype = values.dtype
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_datetime64_any_dtype(dtype):
        return ~is_blank
    if not pd.api.types.is_object_dtype(dtype):
        return pd.Series(False, index=values.index)
    kinds = values.map(_id_kind).where(~is_blank)
    counts = kinds.value_counts()
    main = "number" if counts.get("number", 0) > counts.get("text", 0) else "text"
    return (kinds != main) & ~is_blank


def _id_kind(value: object) -> str:
    if isinstance(value, str):
        return "text"
    if isinstance(value, bool | np.bool_):
        return "other"
    if isinstance(value, int | float | Decimal | np.integer | np.floating):
        return "number"
    return "other"


def _is_blank(values: pd.Series) -> pd.Series:
    blank = values.isna()
    if values.dtype == object or pd.api.types.is_string_dtype(values.dtype):
        blank |= values.astype("string").str.strip().eq("").fillna(True)
    return blank


@dataclass(frozen=True, slots=True)
class _DateRange:
    """The calendar days a timestamp may fall on; ``max_date=None`` is today (local calendar)."""

    min_date: DateLike | None
    max_date: DateLike | None
    observation_end: DateLike | None

    def masks(self, timestamps: pd.Series) -> dict[str, pd.Series]:
        """Rows on a day before ``min_date``, after ``max_date``, after ``observation_end``."""
        zone = timestamps.dt.tz
        days = timestamps.dt.tz_localize(None) if zone is not None else timestamps
        days = days.dt.normalize()
        latest = pd.Timestamp.now().normalize() if self.max_date is None else self.max_date
        masks = {"after_max_date": days > _day_of(latest, "max_date", zone)}
        if self.min_date is not None:
            masks["before_min_date"] = days < _day_of(self.min_date, "min_date", zone)
        if self.observation_end is not None:
            end = _day_of(self.observation_end, "observation_end", zone)
            masks["after_observation_end"] = days > end
        return {reason: mask.fillna(False) for reason, mask in masks.items()}


def _day_of(date: DateLike, name: str, zone: dt.tzinfo | None) -> pd.Timestamp:
    """The calendar day of ``date``, as a naive midnight; an aware date's day in ``zone``."""
    stamp = as_timestamp(date, name)
    if stamp.tz is not None:
        stamp = (stamp.tz_convert(zone) if zone is not None else stamp).tz_localize(None)
    return stamp.normalize()


def _bad_rows(prepared: pd.DataFrame, columns: Columns, dates: _DateRange) -> dict[str, pd.Series]:
    """Each applicable rule's mask of rows that break it."""
    given = prepared["_timestamp_given"]
    ids = prepared["customer_id"]
    bad = {
        "missing_customer_id": (
            blank := _is_blank(ids) | _is_listed(ids, columns.missing_ids or ())
        ),
        "mixed_customer_id": _is_other_kind(prepared["customer_id"], blank),
        "missing_timestamp": ~given,
        "unparsable_timestamp": given & prepared["_in_main_zone"] & prepared["timestamp"].isna(),
        "mixed_time_zone": ~prepared["_in_main_zone"],
        "duplicate_row": prepared["_duplicate_row"],
        **dates.masks(prepared["timestamp"]),
    }
    if columns.amount is not None:
        amount, amount_given = prepared["amount"], prepared["_amount_given"]
        bad["missing_amount"] = ~amount_given
        bad["non_numeric_amount"] = amount_given & ~np.isfinite(amount)
        is_return = (
            prepared["is_return"].fillna(False).astype(bool)
            if columns.is_return is not None
            else False
        )
        bad["negative_amount"] = (amount < 0) & ~is_return
    if columns.is_return is not None:
        bad["invalid_return_flag"] = prepared["is_return"].isna()
    if columns.status is not None:
        bad["not_won"] = ~prepared["_is_won"]
    if columns.currency is not None:
        bad["other_currency"] = prepared["_other_currency"]
    if columns.order_id is not None:
        order_id = prepared["order_id"]
        bad["missing_order_id"] = order_id.isna()
        candidates = order_id.where(~prepared["_duplicate_row"])
        bad["duplicate_order_id"] = candidates.notna() & candidates.duplicated(keep=False)
    return {reason: mask.astype(bool) for reason, mask in bad.items()}


def _pandera_schema(bad: dict[str, pd.Series]) -> pa.DataFrameSchema:
    """One DataFrame-level check per rule; its failure cases are the rows the rule rejects."""
    checks = [
        pa.Check(lambda frame, mask=mask: ~mask.reindex(frame.index), name=reason)
        for reason, mask in bad.items()
    ]
    return pa.DataFrameSchema(checks=checks)


def _first_reasons(prepared: pd.DataFrame, bad: dict[str, pd.Series]) -> pd.Series:
    """The first rule (in :data:`CRM_RULES`, then :data:`RULES` order) each row breaks."""
    try:
        _pandera_schema(bad).validate(prepared, lazy=True)
    except SchemaErrors as errors:
        cases = errors.failure_cases[["index", "check"]].dropna()
        ranks = cases["check"].map(_RULE_ORDER)
        first = ranks.groupby(cases["index"].astype(np.int64)).min()
        reasons: pd.Series = first.map(dict(enumerate(r.reason for r in _CHECKED))).sort_index()
        return reasons
    return pd.Series(dtype=object)


def _clean_frame(
    data: pd.DataFrame, prepared: pd.DataFrame, columns: Columns, keep: np.ndarray
) -> pd.DataFrame:
    """Kept rows with canonical role names; returns count with a negative amount."""
    roles = columns.mapping()
    clean = prepared.loc[keep, [c for c in prepared.columns if not c.startswith("_")]]
    if "amount" in clean and "is_return" in clean:
        is_return = clean["is_return"].astype(bool)
        clean["amount"] = clean["amount"].where(~is_return, -clean["amount"].abs())
        clean["is_return"] = is_return
    for role in ("category", "channel", "segment"):
        if role in roles:
            clean[role] = data[roles[role]].to_numpy()[keep]
    used = set(roles.values()) | set(clean.columns)
    extras = [c for c in data.columns if c not in used]
    extra_rows = data.loc[:, extras].iloc[np.flatnonzero(keep)].set_axis(clean.index)
    clean = pd.concat([clean, extra_rows], axis=1)
    clean.index = data.index[keep]
    return clean


def _report(
    data: pd.DataFrame, reasons: pd.Series, columns: Columns, n_clean: int
) -> ValidationReport:
    roles = columns.mapping()
    rows = []
    for rule in _CHECKED:
        positions = reasons.index[reasons == rule.reason]
        if len(positions):
            rows.append({
                "reason": rule.reason, "column": roles.get(rule.role, rule.role),
                "problem": rule.problem, "rows": len(positions),
                "example": data.index[positions[0]], "fix": rule.fix,
            })  # fmt: skip
    table = pd.DataFrame(rows, columns=["reason", "column", "problem", "rows", "example", "fix"])
    return ValidationReport(len(data), n_clean, len(reasons), table)


def validate_transactions(
    data: pd.DataFrame,
    columns: Columns | None = None,
    *,
    observation_end: DateLike | None = None,
    timezone: str | None = None,
    date_format: str | None = None,
    dayfirst: bool | None = None,
    decimal: str = ".",
    thousands: str | None = None,
    min_date: DateLike | None = "1970-01-01",
    max_date: DateLike | None = None,
    duplicates: Literal["reject", "keep"] = "reject",
    strict: bool = False,
) -> Validated:
    """Check a transaction extract and separate clean rows from rejected ones.

    Parameters
    ----------
    data
        The extract, one row per purchase (or return).
    columns
        Which columns play which role. By default the canonical names, with the optional roles
        (``order_id``, ``is_return``, ...) whose canonical column is present, and the status,
        won statuses and currency an extract of :func:`~cvalue.io.sources.read_transactions`
        was read with (a CRM preset's, say). With ``status`` and ``won``, rows not won are
        rejected as ``not_won``; with ``currency``, rows in another currency than the most
        common one as ``other_currency``.
    observation_end
        When given, purchases on a later calendar day are rejected.
    timezone
        Convert every timestamp to this zone (naive ones are taken as local times in it). Without
        it, rows whose zone differs from the extract's main zone are rejected.
    date_format
        How text timestamps are written: a ``strptime`` format used for every value
        (``"%d.%m.%Y"``), or ``"unix_s"`` / ``"unix_ms"`` for unix timestamps (numbers or text,
        UTC). By default one format is detected for the whole column; numbers are not read as
        dates.
    dayfirst
        With a detected format, read dates such as ``05.07.2024`` day-first (``True``) or
        month-first (``False``). Needed only when no value has a day above 12.
    decimal, thousands
        The decimal mark and thousands separator of amounts written as text (``","`` and
        ``" "`` read ``"1 234,50"``). Numeric amounts are used as they are.
    min_date, max_date
        Purchases on a calendar day before ``min_date`` or after ``max_date`` are rejected.
        ``max_date=None`` means today; ``min_date=None`` sets no lower bound.
    duplicates
        ``"reject"`` (default) rejects rows identical to an earlier row; ``"keep"`` keeps them,
        for logs without order ids where two identical purchases on one day are real.
    strict
        Raise :class:`~cvalue.errors.DataQualityError` listing every problem instead of returning
        rejected rows.

    Returns
    -------
    Validated
        ``clean`` (canonical column names, original index), ``rejected`` (the original rows plus
        ``rejection_reason`` and ``rejection_column``) and ``report``.

    Raises
    ------
    SchemaError
        If the input is not a DataFrame with the mapped columns, if an option is invalid or
        differs from the one given to :func:`~cvalue.io.sources.read_transactions`, or if the
        timestamps read both day-first and month-first.
    EmptyExtractError
        If no row passes (with ``strict`` or not); it carries ``rejected`` and ``report``.
    DataQualityError
        If the extract has no rows, or with ``strict=True`` if any row is rejected.

    Notes
    -----
    An extract from :func:`~cvalue.io.sources.read_transactions` carries the format options it
    was read with (``attrs["cvalue_formats"]``); they apply here unless given again.

    Examples
    --------
    >>> raw = pd.DataFrame({"customer_id": [1, None, 2],
    ...                     "timestamp": ["2024-01-02", "2024-01-03", "2024-01-04"],
    ...                     "amount": [10.0, 5.0, -3.0]})
    >>> result = validate_transactions(raw)
    >>> len(result.clean), result.rejected["rejection_reason"].tolist()
    (1, ['missing_customer_id', 'negative_amount'])
    """
    if columns is None:
        columns = _detected(data)
    data = _require_frame(data, columns)
    given = Formats(date_format=date_format, dayfirst=dayfirst, decimal=decimal,
                    thousands=thousands)  # fmt: skip
    formats = resolve_formats(given, data.attrs.get("cvalue_formats"))
    prepared = _prepare(data, columns, timezone, formats)
    bad = _bad_rows(prepared, columns, _DateRange(min_date, max_date, observation_end))
    if duplicates == "keep":
        del bad["duplicate_row"]
    reasons = _first_reasons(prepared, bad)
    keep = np.ones(len(data), dtype=bool)
    keep[reasons.index.to_numpy()] = False
    report = _report(data, reasons, columns, int(keep.sum()))
    rejected = _rejected_frame(data, reasons, report)
    if report.n_clean == 0:
        raise EmptyExtractError(_nothing_left(report), rejected, report)
    if strict and report.n_rejected:
        raise DataQualityError(report.message())
    return Validated(_clean_frame(data, prepared, columns, keep), rejected, report)


def _detected(data: object) -> Columns:
    """The canonical columns present, with the CRM values the extract was read with."""
    if not isinstance(data, pd.DataFrame):
        return Columns()
    columns = Columns.detect(data.columns)
    recorded = data.attrs.get(CRM_ATTRS)
    if not isinstance(recorded, Mapping):
        return columns
    return columns.with_crm_values(recorded, data.columns)


def _rejected_frame(
    data: pd.DataFrame, reasons: pd.Series, report: ValidationReport
) -> pd.DataFrame:
    """The rejected rows as they were, with ``rejection_reason`` and ``rejection_column``."""
    rejected = data.iloc[reasons.index.to_numpy()].copy()
    rejected["rejection_reason"] = reasons.to_numpy()
    by_reason = dict(zip(report.reasons["reason"], report.reasons["column"], strict=True))
    rejected["rejection_column"] = rejected["rejection_reason"].map(by_reason)
    return rejected


def _nothing_left(report: ValidationReport) -> str:
    """The message of an extract without a clean row: the main reasons first, then all."""
    main = report.reasons.sort_values("rows", ascending=False, kind="stable").head(3)
    reasons = ", ".join(f"{row.problem} ({row.rows:,} rows)" for row in main.itertuples())
    return (
        f"validation kept none of the {report.n_rows:,} rows; main reasons: {reasons}. "
        f"Nothing is left to analyse.\n{report.message()}"
    )
