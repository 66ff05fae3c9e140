"""Validation of transaction extracts: every bad row is rejected with a reason, none is dropped.

The rules run as one pandera schema over the extract (after parsing timestamps and amounts), with
lazy validation so that every failing row of every rule is collected at once. Each rejected row
carries the first rule it breaks, in the order of :data:`RULES`.

With ``strict=True`` any rejected row raises one :class:`~cvalue.errors.DataQualityError` that lists
every problem; with ``strict=False`` the clean rows, the rejected rows and a report come back.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from cvalue.errors import DataQualityError, SchemaError
from cvalue.io.schema import Columns
from cvalue.units import DateLike, as_timestamp

__all__ = ["RULES", "Rule", "Validated", "ValidationReport", "validate_transactions"]

_ZONE_PATTERN = r"(Z|[+-]\d{2}:?\d{2})$"
_TRUE = frozenset({"true", "t", "yes", "y", "1", "1.0"})
_FALSE = frozenset({"false", "f", "no", "n", "0", "0.0"})


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
    Rule("missing_timestamp", "timestamp", "missing timestamp",
         "every purchase needs a date; check the extract's date column"),
    Rule("unparsable_timestamp", "timestamp", "timestamp that cannot be read as a date",
         "use ISO dates (2024-03-31 or 2024-03-31T14:05:00); with timezone=..., local times "
         "that do not exist or are ambiguous at a DST change are rejected too"),
    Rule("mixed_time_zone", "timestamp", "time zone differing from the extract's main zone",
         "pass timezone='Europe/Berlin' (or 'UTC') to convert every timestamp to one zone"),
    Rule("missing_amount", "amount", "missing amount",
         "fill the amount or leave the row out of the extract"),
    Rule("non_numeric_amount", "amount", "amount that is not a finite number",
         "store amounts as numbers, with '.' as decimal mark and no currency sign"),
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
_RULE_ORDER = {rule.reason: rank for rank, rule in enumerate(RULES)}


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


def _zone_labels(raw: pd.Series) -> pd.Series:
    """The time zone each raw timestamp states: an offset like '+02:00', a zone name, or ''."""
    text = raw.astype("string[pyarrow]")
    is_datetime = (
        raw.map(lambda value: hasattr(value, "tzinfo"))
        if raw.dtype == object
        else pd.Series(False, index=raw.index)
    )
    offsets = text.str.extract(_ZONE_PATTERN, expand=False).fillna("")
    offsets = offsets.str.replace("Z", "+00:00")
    offsets = offsets.str.replace(r"^([+-]\d{2})(\d{2})$", r"\1:\2", regex=True)
    zones = raw[is_datetime].map(lambda value: str(value.tzinfo or ""))
    return offsets.where(~is_datetime, zones).fillna("")


def _parse_group(raw: pd.Series) -> pd.Series:
    """Parse timestamps of one zone: ISO 8601 first, then an inferred format, then row by row."""
    parsed = pd.to_datetime(raw, errors="coerce", format="ISO8601")
    for fallback in (None, "mixed"):
        retry = parsed.isna() & raw.notna()
        if not retry.any():
            break
        # pandas warns that it parses element by element: that is this fallback's purpose
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            again = pd.to_datetime(raw[retry], errors="coerce", format=fallback)
        parsed = parsed.mask(retry, again.reindex(parsed.index))
    return parsed


def _parse_timestamps(raw: pd.Series, timezone: str | None) -> tuple[pd.Series, pd.Series]:
    """Parsed timestamps and whether each row is in the extract's main zone."""
    if pd.api.types.is_datetime64_any_dtype(raw.dtype):
        return _to_zone(raw, timezone), pd.Series(True, index=raw.index)
    try:
        # one format and one zone throughout: the common, fast case. pandas warns when it
        # falls back to parsing element by element, which the zone-by-zone path below handles.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            parsed = pd.to_datetime(raw, errors="raise")
        return _to_zone(parsed, timezone), pd.Series(True, index=raw.index)
    except (ValueError, TypeError, OverflowError):
        pass  # mixed formats, zones or unreadable values: parsed zone by zone below
    labels = _zone_labels(raw)
    counts = labels[raw.notna()].value_counts()
    main_zone = counts.index[0] if len(counts) else ""
    parts = []
    for label, rows in raw.groupby(labels, sort=False):
        if timezone is None and label != main_zone:
            continue
        parts.append(_to_zone(_parse_group(rows), timezone))
    parsed = pd.to_datetime(pd.concat(parts).reindex(raw.index))
    is_main_zone = (labels == main_zone) | raw.isna() | (timezone is not None)
    return parsed, is_main_zone


def _to_zone(parsed: pd.Series, timezone: str | None) -> pd.Series:
    if timezone is None:
        return parsed
    converted: pd.Series = (
        parsed.dt.tz_convert(timezone)
        if isinstance(parsed.dtype, pd.DatetimeTZDtype)
        else parsed.dt.tz_localize(timezone, ambiguous="NaT", nonexistent="NaT")
    )
    return converted


def _parse_flags(raw: pd.Series) -> pd.Series:
    """Booleans from true/false, 1/0, yes/no; anything else is missing (pd.NA)."""
    if pd.api.types.is_bool_dtype(raw.dtype):
        return raw.astype("boolean")
    text = raw.astype("string").str.strip().str.lower()
    flags = pd.Series(pd.NA, index=raw.index, dtype="boolean")
    flags[text.isin(_TRUE).fillna(False)] = True
    flags[text.isin(_FALSE).fillna(False)] = False
    return flags


def _prepare(data: pd.DataFrame, columns: Columns, timezone: str | None) -> pd.DataFrame:
    """Canonical columns (parsed) plus the raw facts the rules need, on a positional index."""
    raw = data.reset_index(drop=True)
    timestamps, is_main_zone = _parse_timestamps(raw[columns.timestamp], timezone)
    prepared = pd.DataFrame({
        "customer_id": raw[columns.customer_id],
        "timestamp": timestamps,
        "_timestamp_given": raw[columns.timestamp].notna(),
        "_in_main_zone": is_main_zone.to_numpy(dtype=bool),
        "_duplicate_row": _duplicated(raw, columns.timestamp, timestamps),
    })  # fmt: skip
    if columns.amount is not None:
        prepared["amount"] = pd.to_numeric(raw[columns.amount], errors="coerce").astype(float)
        prepared["_amount_given"] = raw[columns.amount].notna()
    if columns.is_return is not None:
        prepared["is_return"] = _parse_flags(raw[columns.is_return])
    if columns.order_id is not None:
        prepared["order_id"] = raw[columns.order_id]
    return prepared


def _duplicated(raw: pd.DataFrame, timestamp: str, parsed: pd.Series) -> npt.NDArray[np.bool_]:
    """Rows that repeat an earlier row exactly.

    Only rows whose hash repeats can be duplicates, so the exact (slow, column by column)
    comparison runs on those few rows alone; keeping order keeps "the first one" the same. The
    hash takes the parsed timestamps, cheaper to hash than text and equal whenever the text is.
    """
    hashed = raw.drop(columns=[timestamp]).assign(**{timestamp: parsed.to_numpy()})
    hashes = pd.util.hash_pandas_object(hashed, index=False)
    candidates = hashes.duplicated(keep=False).to_numpy()
    duplicated = np.zeros(len(raw), dtype=bool)
    if candidates.any():
        duplicated[candidates] = raw[candidates].duplicated(keep="first").to_numpy()
    return duplicated


def _is_blank(values: pd.Series) -> pd.Series:
    blank = values.isna()
    if values.dtype == object or pd.api.types.is_string_dtype(values.dtype):
        blank |= values.astype("string").str.strip().eq("").fillna(True)
    return blank


def _after_end(timestamps: pd.Series, observation_end: DateLike) -> pd.Series:
    """Rows whose calendar day is after the observation end's day (wall-clock time)."""
    end = as_timestamp(observation_end, "observation_end")
    is_aware = isinstance(timestamps.dtype, pd.DatetimeTZDtype)
    if is_aware and end.tz is None:
        end = end.tz_localize(timestamps.dt.tz)
    elif is_aware:
        end = end.tz_convert(timestamps.dt.tz)
    elif end.tz is not None:
        end = end.tz_localize(None)
    is_after: pd.Series = (timestamps.dt.normalize() > end.normalize()).fillna(False)
    return is_after


def _bad_rows(
    prepared: pd.DataFrame, columns: Columns, observation_end: DateLike | None
) -> dict[str, pd.Series]:
    """Each applicable rule's mask of rows that break it."""
    given = prepared["_timestamp_given"]
    bad = {
        "missing_customer_id": _is_blank(prepared["customer_id"]),
        "missing_timestamp": ~given,
        "unparsable_timestamp": given & prepared["_in_main_zone"] & prepared["timestamp"].isna(),
        "mixed_time_zone": ~prepared["_in_main_zone"],
        "duplicate_row": prepared["_duplicate_row"],
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
    if observation_end is not None:
        bad["after_observation_end"] = _after_end(prepared["timestamp"], observation_end)
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
    """The first rule (in :data:`RULES` order) each failing row breaks, by position."""
    try:
        _pandera_schema(bad).validate(prepared, lazy=True)
    except SchemaErrors as errors:
        cases = errors.failure_cases[["index", "check"]].dropna()
        ranks = cases["check"].map(_RULE_ORDER)
        first = ranks.groupby(cases["index"].astype(np.int64)).min()
        reasons: pd.Series = first.map(dict(enumerate(r.reason for r in RULES))).sort_index()
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
    for rule in RULES:
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
        (``order_id``, ``is_return``, ...) whose canonical column is present.
    observation_end
        When given, purchases on a later calendar day are rejected.
    timezone
        Convert every timestamp to this zone (naive ones are taken as local times in it). Without
        it, rows whose zone differs from the extract's main zone are rejected.
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
        columns = Columns.detect(data.columns if isinstance(data, pd.DataFrame) else ())
    data = _require_frame(data, columns)
    prepared = _prepare(data, columns, timezone)
    bad = _bad_rows(prepared, columns, observation_end)
    if duplicates == "keep":
        del bad["duplicate_row"]
    reasons = _first_reasons(prepared, bad)
    keep = np.ones(len(data), dtype=bool)
    keep[reasons.index.to_numpy()] = False
    report = _report(data, reasons, columns, int(keep.sum()))
    if strict and report.n_rejected:
        raise DataQualityError(report.message())
    rejected = data.iloc[reasons.index.to_numpy()].copy()
    rejected["rejection_reason"] = reasons.to_numpy()
    by_reason = dict(zip(report.reasons["reason"], report.reasons["column"], strict=True))
    rejected["rejection_column"] = rejected["rejection_reason"].map(by_reason)
    return Validated(_clean_frame(data, prepared, columns, keep), rejected, report)
