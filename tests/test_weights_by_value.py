"""``cvalue.patterns.weights_by_value``: the weights summed per distinct value, block by block."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cvalue.patterns
from cvalue.errors import SchemaError
from cvalue.patterns import weights_by_value


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.sampled_from([0.0, 1 / 7, 2.5, 3.0, 52.0, np.nan]), max_size=60),
    block=st.integers(1, 9),
    data=st.data(),
)
def test_equal_to_a_group_by_over_the_whole_column(
    values: list[float], block: int, data: st.DataObject
) -> None:
    """Blocks of any size give the sorted distinct values (NaN last) and their sums."""
    weights = data.draw(st.lists(st.integers(0, 1_000), min_size=len(values),
                                 max_size=len(values)))  # fmt: skip
    expected = pd.Series(weights, dtype=np.float64).groupby(
        pd.Series(values, dtype=np.float64), sort=True, dropna=False).sum()  # fmt: skip
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cvalue.patterns, "_VALUE_BLOCK", block)
        found, summed = weights_by_value(np.array(values, dtype=np.float64), weights)
    np.testing.assert_array_equal(found, expected.index.to_numpy())
    np.testing.assert_array_equal(summed, expected.to_numpy())


def test_columns_of_two_lengths_are_refused() -> None:
    with pytest.raises(SchemaError, match="one length"):
        weights_by_value(np.arange(3.0), np.ones(2))
