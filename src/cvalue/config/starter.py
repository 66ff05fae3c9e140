"""Starter configuration files: what ``cvalue init --from`` finds in a source, and the TOML.

:func:`inspect_source` looks at a CSV or Parquet file (its encoding, separator, header and a
sample of rows) or at a database's tables, and guesses the transactions' columns: a CRM export
preset where the header has a preset's columns, else the column of each role by common names,
with the date format and decimal mark read from the sample. :func:`starter_config` writes the
guesses as a configuration file in which every guessed value has a comment saying what was
guessed and from what; values that cannot be guessed (the margin, the costs) are placeholders,
said so. The database URL never goes in the file: it is read from an environment variable.
"""

from __future__ import annotations

import json
import os
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow.dataset as ds
import sqlalchemy as sa

from cvalue.errors import ConfigError, SchemaError
from cvalue.io import detect_date_format, detect_preset, engine_for
from cvalue.io.presets import PresetMatch
from cvalue.io.sources import sniff_csv

__all__ = ["Guess", "Inspection", "inspect_source", "starter_config", "write_starter"]

_SAMPLE_ROWS = 500
_PARQUET_SUFFIXES = frozenset({".parquet", ".pq"})
# common names of each role, compared as lowercase words joined by '_'
_ROLE_NAMES: dict[str, tuple[str, ...]] = {
    "customer_id": ("customer_id", "client_id", "customer", "client", "account_id",
                    "company_id", "customer_number", "customerid", "clientid", "contact_id",
                    "buyer_id", "user_id", "member_id", "email"),
    "timestamp": ("timestamp", "date", "order_date", "purchase_date", "transaction_date",
                  "invoice_date", "paid_at", "created_at", "datetime", "close_date",
                  "closedate", "sale_date", "time"),
    "amount": ("amount", "net_amount", "total", "total_amount", "order_total", "revenue",
               "value", "sales", "price", "sum", "gross_amount"),
    "order_id": ("order_id", "invoice_id", "transaction_id", "order_number", "receipt_id",
                 "invoice_number", "orderid"),
}  # fmt: skip
_URL_VARIABLE = "CVALUE_DATABASE_URL"
_SCORES_VARIABLE = "CVALUE_SCORES_URL"


@dataclass(frozen=True, slots=True)
class Guess:
    """A key of the file, its value, and what was guessed from what (the comment)."""

    key: str
    value: object
    why: str


@dataclass(frozen=True, slots=True)
class Inspection:
    """What a source showed: the guesses of ``[source]`` and ``[source.transactions]``."""

    described: str
    source: tuple[Guess, ...]
    transactions: tuple[Guess, ...]
    notes: tuple[str, ...]
    preset: PresetMatch | None
    is_database: bool


def inspect_source(source: str, *, config_folder: Path = Path()) -> Inspection:
    """Look at ``source`` (a file, a folder of Parquet files or a SQLAlchemy URL) and guess.

    Parameters
    ----------
    source
        The source, as given on the command line.
    config_folder
        The folder the configuration file will be in: a file's path is written relative to it.

    Raises
    ------
    SchemaError
        If the file does not exist or cannot be read.
    DatabaseError
        If the database cannot be reached.
    ConfigError
        If the database has no table.
    """
    if "://" in source:
        return _inspect_database(source)
    path = Path(source)
    place = Guess("file", _relative(path, config_folder), "the file given to --from")
    if path.is_dir() or path.suffix.lower() in _PARQUET_SUFFIXES:
        if not path.exists():
            raise SchemaError(f"file {source!r} does not exist")
        dataset = ds.dataset(path, format="parquet", partitioning="hive")
        sample = dataset.head(_SAMPLE_ROWS).to_pandas()
        return _inspect_table(sample, f"file {path.name!r}", place, (), is_text=False)
    layout = sniff_csv(path)
    sample = pd.read_csv(path, sep=layout.sep, encoding=layout.encoding, dtype=str,
                         nrows=_SAMPLE_ROWS, keep_default_na=False, na_values=[""])  # fmt: skip
    read_as = (
        Guess("delimiter", layout.sep, f"the separator that splits the header into "
              f"{len(layout.header)} columns, as every line after it"),
        Guess("encoding", layout.encoding, _encoding_why(layout.encoding)),
    )  # fmt: skip
    return _inspect_table(sample, f"file {path.name!r}", place, read_as, is_text=True)


def _relative(path: Path, folder: Path) -> str:
    """The path relative to the configuration's folder when it is inside it, else absolute."""
    try:
        relative = Path(os.path.relpath(path.resolve(), folder.resolve())).as_posix()
    except ValueError:  # another drive
        return path.resolve().as_posix()
    return path.resolve().as_posix() if relative.startswith("..") else relative


def _encoding_why(encoding: str) -> str:
    if encoding == "utf-8-sig":
        return "the file starts with a UTF-8 byte order mark"
    if encoding == "utf-8":
        return "the file's start is valid UTF-8"
    return f"the file's start is not UTF-8; {encoding} decodes it (check its letters)"


def _inspect_table(
    sample: pd.DataFrame, described: str, place: Guess, read_as: tuple[Guess, ...],
    *, is_text: bool,
) -> Inspection:  # fmt: skip
    """The guesses for one table or file, from its sample."""
    match = detect_preset(list(sample.columns))
    if match is not None:
        return Inspection(described, read_as, (place, *_preset_guesses(match)), match.notes,
                          match, is_database=False)  # fmt: skip
    guesses, notes = _role_guesses(sample, is_text=is_text)
    source_guesses = (*read_as, *_number_guesses(sample, guesses, is_text=is_text))
    return Inspection(described, source_guesses, (place, *guesses), notes, None,
                      is_database=False)  # fmt: skip


def _preset_guesses(match: PresetMatch) -> tuple[Guess, ...]:
    variant = match.variant
    found = ", ".join(f"{role} {column!r}" for role, column in match.found.items() if column)
    return (
        Guess("preset", match.preset.name,
              f"the header has the columns of {match.preset.system} {match.preset.entity}: "
              f"{found}"),
        Guess("variant", variant.name,
              f"{variant.description}; it reads dates "
              f"{variant.date_format or ('day first' if variant.dayfirst else 'as detected')}, "
              f"decimal mark {variant.decimal!r}"),
    )  # fmt: skip


def _normal(name: object) -> str:
    return re.sub(r"[\s\-.]+", "_", str(name).strip().casefold())


def _role_guesses(sample: pd.DataFrame, *, is_text: bool) -> tuple[list[Guess], tuple[str, ...]]:
    """A column for each role by its name, and the date format of the timestamp column."""
    names = {_normal(column): str(column) for column in sample.columns}
    guesses, notes = [], []
    for role, candidates in _ROLE_NAMES.items():
        column = next((names[c] for c in candidates if c in names), None)
        if column is not None:
            guesses.append(Guess(role, column, f"a column named {column!r} ({role})"))
        elif role != "order_id":
            guesses.append(Guess(role, role, f"NOT FOUND: no column has a usual name of {role}; "
                                 f"name yours (the file has {list(sample.columns)})"))  # fmt: skip
            notes.append(f"set {role}: no column of the file has a usual name for it")
    timestamp = next((g.value for g in guesses if g.key == "timestamp"), None)
    if is_text and timestamp in sample:
        guesses += _date_guesses(sample[str(timestamp)])
    return guesses, tuple(notes)


def _date_guesses(values: pd.Series) -> list[Guess]:
    """The date format of a text column, from its sample."""
    given = values.dropna().astype(str).str.strip()
    given = given[given != ""]
    if given.empty:
        return []
    example = given.iloc[0]
    if given.str.fullmatch(r"\d{10}").all():
        return [Guess("date_format", "unix_s", f"10-digit numbers such as {example!r}: unix "
                      "seconds")]  # fmt: skip
    if given.str.fullmatch(r"\d{13}").all():
        return [Guess("date_format", "unix_ms", f"13-digit numbers such as {example!r}: unix "
                      "milliseconds")]  # fmt: skip
    try:
        layout = detect_date_format(given)
    except SchemaError:
        return [Guess("dayfirst", True, f"dates such as {example!r} read both ways in the sample; "
                      "day first is a GUESS: set false if the month comes first")]  # fmt: skip
    if layout == "ISO8601":
        return []  # the default reads ISO dates: nothing to set
    return [Guess("date_format", layout, f"the one layout that reads the sample's dates, such "
                  f"as {example!r} (a time of day after it is read too)")]  # fmt: skip


def _number_guesses(
    sample: pd.DataFrame, guesses: list[Guess], *, is_text: bool
) -> tuple[Guess, ...]:
    """The decimal mark and thousands separator of the amount column, from its sample."""
    amount = next((str(g.value) for g in guesses if g.key == "amount"), None)
    if not is_text or amount not in sample:
        return ()
    text = sample[amount].dropna().astype(str).str.strip()
    comma = text.str.fullmatch(r"[+-]?[\d \u00a0.]*\d,\d+").fillna(False)
    point = text.str.fullmatch(r"[+-]?[\d ,\u00a0]*\d\.\d+").fillna(False)
    found: list[Guess] = []
    if comma.any() and not point.any():
        example = text[comma].iloc[0]
        found.append(Guess("decimal", ",", f"amounts such as {example!r} in column {amount!r}"))
        if text.str.contains(r"\d[ \u00a0]\d{3}", regex=True).any():
            found.append(Guess("thousands", " ", "amounts group their thousands with spaces"))
        elif text.str.contains(r"\d\.\d{3}", regex=True).any():
            found.append(Guess("thousands", ".", "amounts group their thousands with points"))
    elif text.str.contains(r"\d,\d{3}", regex=True).any() and not comma.any():
        found.append(
            Guess(
                "thousands",
                ",",
                f"amounts such as "
                f"{text[text.str.contains(',')].iloc[0]!r} group thousands with commas",
            )
        )
    return tuple(found)


def _inspect_database(url: str) -> Inspection:
    """The table of the database whose columns best match, and its guesses.

    Neither the URL nor a part of it is written: it may hold a password or a private path.
    """
    backend = sa.engine.make_url(url).get_backend_name()
    with engine_for(url, read_only=True) as engine:
        inspector = sa.inspect(engine)
        tables = {name: [c["name"] for c in inspector.get_columns(name)]
                  for name in inspector.get_table_names()}  # fmt: skip
    if not tables:
        raise ConfigError(f"the {backend} database given to --from has no table")
    best = max(tables, key=lambda name: _table_score(tables[name]))  # the first of equals
    place = Guess("table", best, f"of the {len(tables)} table(s) {sorted(tables)}, the one whose "
                  "columns best match a CRM preset or the usual names of the roles")  # fmt: skip
    url_env = Guess("url_env", _URL_VARIABLE, "the database URL is read from this variable: set "
                    "it to the URL given to --from; the URL never goes in this file")  # fmt: skip
    inspected = _inspect_table(pd.DataFrame(columns=tables[best]), f"table {best!r}", place, (),
                               is_text=False)  # fmt: skip
    return Inspection(f"table {best!r} of the {backend} database", (url_env,),
                      inspected.transactions, inspected.notes, inspected.preset,
                      is_database=True)  # fmt: skip


def _table_score(columns: list[str]) -> int:
    """How well a table's columns fit: a preset with a status first, then the roles found."""
    match = detect_preset(columns)
    if match is not None:
        return 100 + match.score
    names = {_normal(column) for column in columns}
    return sum(any(c in names for c in candidates) for candidates in _ROLE_NAMES.values())


# --- the file ---------------------------------------------------------------------------------


def starter_config(inspection: Inspection) -> str:
    """The configuration file's text: the guesses, each with its comment, and placeholders."""
    lines = [f"# cvalue.toml: a starter written by `cvalue init` from {inspection.described}.",
             "# Every value below was guessed or is a placeholder: read each comment, then run",
             "#   cvalue validate --config <this file>"]  # fmt: skip
    for note in inspection.notes:
        lines += textwrap.wrap(f"# note: {note}", width=99, subsequent_indent="#   ",
                               break_on_hyphens=False)  # fmt: skip
    lines += ["", "[source]", *_rendered(inspection.source), "", "[source.transactions]"]
    lines += _rendered(inspection.transactions)
    lines += _PLACEHOLDERS.splitlines()
    if not inspection.is_database:
        lines += [
            f'url_env = "{_SCORES_VARIABLE}"  # the scores go to a database table: set '
            f"${_SCORES_VARIABLE} to its URL (such as duckdb:///scores.duckdb)"
        ]
    return "\n".join(lines) + "\n"


def _rendered(guesses: tuple[Guess, ...] | list[Guess]) -> list[str]:
    lines = []
    for guess in guesses:
        lines += textwrap.wrap(f"# {guess.key}: {guess.why}", width=99,
                               subsequent_indent="#   ", break_on_hyphens=False)  # fmt: skip
        lines.append(f"{guess.key} = {_toml_value(guess.value)}")
    return lines


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)  # a TOML basic string


_PLACEHOLDERS = """
[summary]
# observation_end: not set, so the day of the last transaction (set a date to fix it)
unit = "week"  # recency, T and horizons in weeks (the convention of the models' papers)

[models]
purchase = "auto"  # fit the candidate models, keep the one with the best holdout score

[value]
margin = 0.30  # PLACEHOLDER: your gross margin as a share of spend; not in the data
costs = "none"  # PLACEHOLDER: no cost beyond the margin; give [value.cost_to_serve] if there is

[outputs]
scores_table = "customer_value"  # the table the scores go to (replaced atomically)
report = "cvalue-report.html"  # the HTML report, beside this file"""


@dataclass(frozen=True, slots=True)
class Written:
    """A starter file written: where, and what it found."""

    path: Path
    inspection: Inspection


def write_starter(source: str, output: Path, *, force: bool = False) -> Written:
    """Inspect ``source`` and write the starter configuration to ``output``.

    Raises
    ------
    ConfigError
        If ``output`` exists and ``force`` is false.
    """
    if output.exists() and not force:
        raise ConfigError(
            f"{str(output)!r} exists; pass --force to overwrite it, or --output to write another "
            "file"
        )
    inspection = inspect_source(source, config_folder=output.parent)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(starter_config(inspection), encoding="utf-8")
    return Written(output, inspection)
