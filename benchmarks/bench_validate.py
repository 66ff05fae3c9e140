"""Benchmark: ``cvalue.validate_transactions`` by timestamp and amount encoding.

A synthetic extract of ``--rows`` purchases (customer id, timestamp at a whole second over
2023-2024, amount with cents; fixed seed) is validated in five encodings (six cases):

1. ``datetime64`` timestamps, float amounts (what a database driver returns);
2. ISO text timestamps ``"2024-07-05 14:05:00"``, float amounts;
3. day-first text ``"05.07.2024 14:05:00"``, float amounts (the format is detected); ``3t`` is
   the same extract in time order, as ``ORDER BY timestamp`` exports it: the code before this
   round guessed the layout from the first value, so its result depends on whether that value's
   day is above 12;
4. ISO text timestamps, amounts as text ``"1 234,50"`` (``decimal=","``, ``thousands=" "``);
5. unix seconds as integers (``date_format="unix_s"``).

Columns of the table:

- ``cvalue s``: ``validate_transactions`` (every rule, not only parsing), the best of
  ``--repeats`` runs;
- ``limit s``: pandas' own vectorised conversion of the same two columns with the format known,
  ``pd.to_datetime(..., format=...)`` (``unit="s"`` for unix seconds) plus ``pd.to_numeric``
  (after ``str.replace`` of the marks for text amounts), the best of ``--repeats``; for
  ``datetime64`` and float columns there is nothing to convert, so the ratio there is the cost of
  the rules themselves;
- ``old s``: ``validate_transactions`` of the code before one-format-per-column parsing
  (``--base-commit``, checked out as a git worktree in ``--base`` if that folder does not exist),
  "n/a" where it has no option for the encoding (decimal commas, unix timestamps);
  ``old/cvalue`` above 1 means the current code is faster;
- ``d/m swapped``: rows kept with day and month exchanged, compared to the generated truth.

Each code runs in its own fresh process (``PYTHONPATH`` set to its ``src``), on the same data.

Run: ``pip install -e ".[bench]" && python benchmarks/bench_validate.py --rows 100000``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import cast

import _memory
import numpy as np
import pandas as pd

SEED = 0
START = pd.Timestamp("2023-01-01")
SECONDS = 730 * 86_400
HERE = Path(__file__).resolve()
REPOSITORY = HERE.parents[1]
ISO_FORMAT = "%Y-%m-%d %H:%M:%S"
DAY_FIRST_FORMAT = "%d.%m.%Y %H:%M:%S"
CASES = {
    "datetime64, float": "1",
    "ISO text, float": "2",
    "day-first text, float": "3",
    "day-first text, float, time order": "3t",
    "ISO text, '1 234,50' text": "4",
    "unix seconds, float": "5",
}
ALL_RIGHT = "both codes kept every row, with its amount and its date (or a day/month swap counted)"
OLD_CASES = tuple(case for case in CASES if not case.startswith(("ISO text, '", "unix")))
Results = dict[str, dict[str, float]]  # by case: seconds, limit and row counts


# --- the data ----------------------------------------------------------------------------------


def make_truth(n_rows: int) -> pd.DataFrame:
    """Customer ids, naive timestamps (whole seconds) and amounts (cents), from ``SEED``."""
    rng = np.random.default_rng(SEED)
    return pd.DataFrame({
        "customer_id": rng.integers(0, max(n_rows // 3, 1), n_rows),
        "timestamp": START + pd.to_timedelta(rng.integers(0, SECONDS, n_rows), "s"),
        "amount": rng.lognormal(3.5, 1.2, n_rows).round(2),  # a few thousands, for case 4
    })  # fmt: skip


def _comma_amounts(amounts: pd.Series) -> pd.Series:
    """``1234.5`` -> ``"1 234,50"``."""
    written = [f"{value:,.2f}".replace(",", " ").replace(".", ",") for value in amounts]
    return pd.Series(written, index=amounts.index, dtype="str")


def encode(truth: pd.DataFrame, case: str) -> tuple[pd.DataFrame, dict[str, str]]:
    """The extract in ``case``'s encoding and the options that validate it."""
    if case.endswith("time order"):
        truth = truth.sort_values("timestamp", kind="stable")  # the original labels stay
    timestamp, amount = truth["timestamp"], truth["amount"]
    options: dict[str, str] = {}
    if case.startswith("ISO"):
        timestamp = timestamp.dt.strftime(ISO_FORMAT)
    elif case.startswith("day-first"):
        timestamp = timestamp.dt.strftime(DAY_FIRST_FORMAT)
    elif case.startswith("unix"):
        timestamp = (timestamp - pd.Timestamp(0)) // pd.Timedelta(1, "s")
        options["date_format"] = "unix_s"
    if case.endswith("text"):
        amount = _comma_amounts(amount)
        options |= {"decimal": ",", "thousands": " "}
    return truth.assign(timestamp=timestamp, amount=amount), options


# --- what is timed -----------------------------------------------------------------------------


def _limit(extract: pd.DataFrame, case: str) -> Callable[[], object]:
    """pandas' own conversion of the two columns, with the format known."""
    timestamp, amount = extract["timestamp"], extract["amount"]
    layout = DAY_FIRST_FORMAT if case.startswith("day-first") else ISO_FORMAT

    def read_timestamp() -> pd.Series:
        if case.startswith("unix"):
            return pd.to_datetime(timestamp, unit="s", utc=True)
        if case.startswith("datetime64"):
            return pd.to_datetime(timestamp)
        return pd.to_datetime(timestamp, format=layout)

    def read_amount() -> pd.Series:
        if case.endswith("text"):
            plain = amount.str.replace(" ", "", regex=False).str.replace(",", ".", regex=False)
            return pd.to_numeric(plain)
        return pd.to_numeric(amount)

    return lambda: (read_timestamp(), read_amount())


def _swapped(timestamps: pd.Series) -> pd.Series:
    """The timestamps with day and month exchanged (``NaT`` where that is no date)."""
    parts = {"year": timestamps.dt.year, "month": timestamps.dt.day, "day": timestamps.dt.month,
             "hour": timestamps.dt.hour, "minute": timestamps.dt.minute,
             "second": timestamps.dt.second}  # fmt: skip
    return pd.to_datetime(pd.DataFrame(parts), errors="coerce")


def _checked(clean: pd.DataFrame, truth: pd.DataFrame) -> dict[str, float]:
    """Rows kept, kept with day and month swapped, with another wrong date, with a wrong amount."""
    read = clean["timestamp"]
    if read.dt.tz is not None:
        read = read.dt.tz_convert("UTC").dt.tz_localize(None)
    expected = truth.loc[clean.index]
    is_wrong = (read != expected["timestamp"]).to_numpy()
    is_swapped = is_wrong & (read == _swapped(expected["timestamp"])).to_numpy()
    # amounts are written with cents: a hundredth of a cent is far from any other amount
    is_wrong_amount = ~np.isclose(clean["amount"], expected["amount"], rtol=0, atol=1e-4)
    return {"kept": len(clean), "swapped": int(is_swapped.sum()),
            "other_wrong": int((is_wrong & ~is_swapped).sum()),
            "wrong_amount": int(is_wrong_amount.sum())}  # fmt: skip


def _validate(extract: pd.DataFrame, options: dict[str, str]) -> pd.DataFrame:
    """The clean rows of ``validate_transactions``, from the ``cvalue`` on the import path."""
    import cvalue

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas' warnings in the old code: not what is measured
        return cvalue.validate_transactions(extract, **options).clean


def _worker(cases: list[str], n_rows: int, repeats: int, with_limits: bool) -> None:
    """Time ``cases`` with the ``cvalue`` on ``PYTHONPATH``; print the results as JSON."""
    import cvalue

    truth = make_truth(n_rows)
    results: Results = {}
    for case in cases:
        extract, options = encode(truth, case)
        # imports and first-call caches are not timed; the sample spans the dates, as the
        # first rows of an extract in time order would all read both day- and month-first
        _validate(extract.iloc[:: max(n_rows // 100, 1)], options)
        seconds, _, clean = _memory.best_of(partial(_validate, extract, options), repeats)
        results[case] = {"seconds": seconds, **_checked(cast("pd.DataFrame", clean), truth)}
        if with_limits:
            results[case]["limit"] = _memory.best_of(_limit(extract, case), repeats)[0]
    print(json.dumps({"source": cvalue.__file__, "results": results}))


def _run_worker(
    source: Path, cases: tuple[str, ...], options: argparse.Namespace, *, with_limits: bool
) -> Results:
    """The worker's results, run in a fresh process with ``source`` first on the import path."""
    command = [sys.executable, str(HERE), "--worker", "--rows", str(options.rows),
               "--repeats", str(options.repeats), "--cases", *cases]  # fmt: skip
    if with_limits:
        command.append("--limits")
    environment = {**os.environ, "PYTHONPATH": str(source)}
    finished = subprocess.run(command, env=environment, capture_output=True, text=True)
    if finished.returncode:
        raise RuntimeError(f"the worker for {source} failed:\n{finished.stderr}")
    answer = json.loads(finished.stdout.splitlines()[-1])
    imported = Path(answer["source"]).resolve()
    if not imported.is_relative_to(source.resolve()):
        raise RuntimeError(f"the worker for {source} imported cvalue from {imported}")
    results: Results = answer["results"]
    return results


def _base_source(base: Path, commit: str) -> Path:
    """``src`` of the code before this round, checked out as a worktree if ``base`` is missing."""
    if not base.exists():
        subprocess.run(["git", "-C", str(REPOSITORY), "worktree", "add", "--detach", str(base),
                        commit], check=True, capture_output=True)  # fmt: skip
        print(f"checked out {commit} in {base} (remove it with: git worktree remove {base})\n")
    return base / "src"


# --- the table ---------------------------------------------------------------------------------


def _markdown(table: pd.DataFrame) -> str:
    """The table as GitHub markdown, text columns left-aligned and numbers right-aligned."""
    is_text = [table[column].map(lambda value: not value[:1].isdigit()).all()
               for column in table]  # fmt: skip
    widths = [max(3, len(str(column)), *table[column].str.len()) for column in table]

    def line(cells: list[str]) -> str:
        padded = [cell.ljust(width) if left else cell.rjust(width)
                  for cell, width, left in zip(cells, widths, is_text, strict=True)]  # fmt: skip
        return "| " + " | ".join(padded) + " |"

    rule = ["-" * (width - 1) + (":" if not left else "-") for width, left in
            zip(widths, is_text, strict=True)]  # fmt: skip
    rows = [line(list(table.columns)), line(rule)]
    return "\n".join(rows + [line(list(row)) for row in table.itertuples(index=False)])


def _table(new: Results, old: Results) -> pd.DataFrame:
    rows = []
    for case, number in CASES.items():
        measured, before = new[case], old.get(case)
        seconds, limit = measured["seconds"], measured["limit"]
        rows.append({
            "case": number, "encoding": case, "cvalue s": f"{seconds:.4f}",
            "limit s": f"{limit:.4f}", "cvalue/limit": f"{seconds / limit:,.1f}",
            "old s": f"{before['seconds']:.4f}" if before else "n/a",
            "old/cvalue": f"{before['seconds'] / seconds:,.1f}" if before else "n/a",
            "d/m swapped (cvalue)": f"{measured['swapped']:,.0f}",
            "d/m swapped (old)": f"{before['swapped']:,.0f}" if before else "n/a",
        })  # fmt: skip
    return pd.DataFrame(rows)


def _notes(results: Results, code: str, n_rows: int) -> list[str]:
    """A line for each case with rejected rows, wrong dates other than swaps or wrong amounts."""
    notes = []
    for case, measured in results.items():
        rejected = n_rows - measured["kept"]
        other, amounts = measured["other_wrong"], measured["wrong_amount"]
        if rejected or other or amounts:
            notes.append(
                f"{code}, {case}: {rejected:,.0f} rows rejected; of those kept, {other:,.0f} "
                f"with a wrong date that is not a day/month swap, {amounts:,.0f} with a wrong "
                "amount"
            )
    return notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement; the fastest")
    parser.add_argument("--base", type=Path, default=Path("/tmp/bench-base"),
                        help="a checkout of --base-commit (made if it does not exist)")  # fmt: skip
    parser.add_argument("--base-commit", default="e4cb6c3",
                        help="the code before one-format-per-column parsing")  # fmt: skip
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--limits", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cases", nargs="+", default=list(CASES), help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.worker:
        _worker(options.cases, options.rows, options.repeats, options.limits)
        return
    old_source = _base_source(options.base, options.base_commit)
    new = _run_worker(REPOSITORY / "src", tuple(CASES), options, with_limits=True)
    old = _run_worker(old_source, OLD_CASES, options, with_limits=False)
    print(f"validate_transactions on {options.rows:,} rows, best of {options.repeats} "
          f"(old: {options.base_commit})\n")  # fmt: skip
    print(_markdown(_table(new, old)))
    notes = _notes(new, "cvalue", options.rows) + _notes(old, "old", options.rows)
    print()
    for note in notes or [ALL_RIGHT]:
        print(f"note: {note}")


if __name__ == "__main__":
    main()
