"""Coverage-guided fuzzing of transaction validation with atheris.

Run as a script: ``python fuzz/validate.py -runs=3000`` (libFuzzer options). The fuzzer's
bytes become a small extract (ids, dates and amounts as text, numbers or missing values) and a
choice of options; validation must keep or reject every row, or raise a cvalue error. Anything
else (another exception, a row lost) stops the fuzzer with the input that caused it.
tests/test_fuzz.py runs it with a fixed budget.
"""

from __future__ import annotations

import sys
import warnings

import atheris
import pandas as pd

# coverage of cvalue's own code guides the fuzzer; pandas runs uninstrumented, at full speed
with atheris.instrument_imports(include=["cvalue"]):
    from cvalue.errors import CValueError
    from cvalue.io.validate import validate_transactions

_FORMATS = [None, "%d.%m.%Y", "%Y-%m-%d", "%m/%d/%Y", "unix_s", "unix_ms"]
_SEPARATORS = [None, " ", ".", ",", "\u00a0"]


def _value(data: atheris.FuzzedDataProvider) -> object:
    kind = data.ConsumeIntInRange(0, 4)
    if kind == 0:
        return None
    if kind == 1:
        return data.ConsumeInt(8)
    if kind == 2:
        return data.ConsumeFloat()
    return data.ConsumeUnicodeNoSurrogates(data.ConsumeIntInRange(0, 24))


def test_one_input(raw: bytes) -> None:
    """One extract and one choice of options, drawn from the fuzzer's bytes."""
    data = atheris.FuzzedDataProvider(raw)
    n_rows = data.ConsumeIntInRange(1, 12)
    frame = pd.DataFrame({
        "customer_id": [_value(data) for _ in range(n_rows)],
        "timestamp": [_value(data) for _ in range(n_rows)],
        "amount": [_value(data) for _ in range(n_rows)],
    })  # fmt: skip
    decimal = data.PickValueInList([".", ","])
    thousands = data.PickValueInList(_SEPARATORS)
    options = {
        "date_format": data.PickValueInList(_FORMATS),
        "dayfirst": data.PickValueInList([None, True, False]),
        "decimal": decimal,
        "thousands": None if thousands == decimal else thousands,
    }
    try:
        result = validate_transactions(frame, **options)
    except CValueError:
        return
    report = result.report
    if report.n_clean + report.n_rejected != n_rows or len(result.clean) != report.n_clean:
        raise AssertionError(f"rows lost: {report} for {frame!r} with {options}")


def main() -> None:
    """Fuzz until libFuzzer's options (``-runs``, ``-max_total_time``) say stop."""
    warnings.simplefilter("error")  # a warning is a finding, as in the test suite
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
