"""The calibration patterns of a pattern split (issue 16: the fit stage's memory at 10M).

A split of weighted patterns is fitted on its distinct calibration columns, each row mapped to
its pattern. The database returns the split sorted, so its patterns are runs of rows, found in
one pass; any other split is grouped by hashing. The property: whatever the rows, sorted or not,
with NaN or not, the patterns, their weights and the rows' codes are those of a pandas group-by
in the order the patterns first appear.
"""

import tracemalloc

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cvalue.job._candidates import _calibration_patterns, _run_starts


def reference(split: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    keys = [c for c in split if c not in ("frequency_holdout", "duration_holdout", "weight")]
    grouped = split.groupby(keys, sort=False, dropna=False)
    patterns = grouped["weight"].sum().reset_index()
    return patterns.astype({"frequency": np.float64, "weight": np.float64}), grouped.ngroup()


@st.composite
def splits(draw):
    n = draw(st.integers(1, 80))
    small = st.integers(0, 3)
    frequency = draw(st.lists(small, min_size=n, max_size=n))
    recency = draw(st.lists(st.sampled_from([0.0, 0.5, 1.0, np.nan]), min_size=n, max_size=n))
    T = draw(st.lists(st.sampled_from([1.0, 1.5, 2.0]), min_size=n, max_size=n))
    split = pd.DataFrame({
        "frequency": np.array(frequency, dtype=np.int64),
        "recency": recency, "T": T,
        "frequency_holdout": np.array(draw(st.lists(small, min_size=n, max_size=n))),
        "weight": np.array(draw(st.lists(st.integers(1, 5), min_size=n, max_size=n))),
        "duration_holdout": 26.0,
    })  # fmt: skip
    if draw(st.booleans()):
        split = split.sort_values(["frequency", "recency", "T", "frequency_holdout"],
                                  ignore_index=True)  # fmt: skip
    return split


@settings(max_examples=300, deadline=None)
@given(splits())
def test_the_patterns_and_codes_are_a_group_bys_in_order_of_appearance(split):
    patterns, codes = _calibration_patterns(split)
    expected, expected_codes = reference(split)
    pd.testing.assert_frame_equal(patterns, expected, check_exact=True)
    np.testing.assert_array_equal(codes, expected_codes.to_numpy())


def test_a_sorted_split_is_read_as_runs_and_an_unsorted_one_is_not():
    sorted_split = pd.DataFrame({"frequency": [0, 1, 1, 1, 2], "recency": [0.0, 1, 1, 2, 0],
                                 "weight": [1, 2, 3, 4, 5]})  # fmt: skip
    starts = _run_starts(sorted_split, ["frequency", "recency"])
    np.testing.assert_array_equal(starts, [True, True, False, True, True])
    # the second key falls back where the first ties: not sorted
    unsorted = sorted_split.assign(recency=[0.0, 2, 1, 1, 0])
    assert _run_starts(unsorted, ["frequency", "recency"]) is None
    assert _run_starts(sorted_split.assign(recency=np.nan), ["frequency", "recency"]) is None


@pytest.mark.parametrize("n_rows", [400_000])
def test_a_sorted_split_is_grouped_without_hashing_its_rows(n_rows):
    """Regression: hashing a sorted split's rows held 70 bytes a row beyond what is kept (331
    MiB for the 3.6M rows of a 10M base, twice the split); the runs need a byte a row, and the
    patterns are built as whole numbers before their float copy."""
    rng = np.random.default_rng(5)
    split = pd.DataFrame(
        {
            "frequency": np.sort(rng.integers(0, 30, n_rows)),
            "recency": rng.integers(0, 200, n_rows) / 7.0,
            "T": rng.integers(0, 200, n_rows) / 7.0,
            "frequency_holdout": rng.integers(0, 5, n_rows),
            "weight": rng.integers(1, 9, n_rows),
            "duration_holdout": 26.0,
        }
    ).sort_values(["frequency", "recency", "T", "frequency_holdout"], ignore_index=True)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        patterns, codes = _calibration_patterns(split)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    kept = codes.nbytes + patterns.memory_usage(index=False).sum()
    assert peak < kept + 32 * n_rows  # the patterns and codes kept, and their whole-number copy
    expected, expected_codes = reference(split)
    pd.testing.assert_frame_equal(patterns, expected, check_exact=True)
    np.testing.assert_array_equal(codes, expected_codes.to_numpy())
