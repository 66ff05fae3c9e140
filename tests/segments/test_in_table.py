"""Tiers, the value x risk grid and the whale curve from the table equal the in-memory ones."""

from __future__ import annotations

import uuid

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from cvalue.errors import DataQualityError
from cvalue.segments import value_risk_grid, value_tiers, whale_curve
from cvalue.segments.in_table import tiers_in_table, value_risk_grid_in_table, whale_curve_in_table


def scores(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "clv": rng.permutation(n) * 3.5 - n * 0.7 + rng.random(n) * 0.1,
            "p_alive": rng.random(n),
            "value_tier": pd.array([None] * n, dtype="string"),
        },
        index=pd.Index(rng.permutation(n) + 1_000, name="customer_id"),
    )


def loaded(connection: sa.Connection, frame: pd.DataFrame) -> sa.Table:
    name = f"scores_{uuid.uuid4().hex[:10]}"
    table = sa.Table(
        name, sa.MetaData(), sa.Column("customer_id", sa.BigInteger), sa.Column("clv", sa.Double),
        sa.Column("p_alive", sa.Double), sa.Column("value_tier", sa.String),
    )  # fmt: skip
    table.create(connection)
    connection.execute(sa.insert(table), frame.reset_index().astype(object).where(
        frame.reset_index().notna(), None).to_dict("records"))  # fmt: skip
    return table


@pytest.mark.parametrize("n", [1, 7, 1_003])
def test_tiers_in_the_table_are_the_in_memory_tiers(engine: sa.Engine, n: int) -> None:
    frame = scores(n, seed=n)
    expected = value_tiers(frame["clv"], cuts=(0.01, 0.05, 0.2))
    with engine.begin() as connection:
        table = loaded(connection, frame)
        found = tiers_in_table(connection, table, value="clv", tier="value_tier")
        stored = pd.read_sql(sa.select(table.c.customer_id, table.c.value_tier), connection)
    pd.testing.assert_frame_equal(found.summary_, expected.summary_, rtol=1e-12)
    labels = stored.set_index("customer_id")["value_tier"].reindex(frame.index)
    assert labels.tolist() == expected.labels_.astype(str).tolist()


@pytest.mark.parametrize("n", [3, 1_003])
def test_grid_in_the_table_is_the_in_memory_grid(engine: sa.Engine, n: int) -> None:
    frame = scores(n, seed=n + 1)
    frame.loc[frame.index[:3], "p_alive"] = [0.75, 0.5, 1.0]  # churn exactly on an edge
    expected = value_risk_grid(frame["clv"], frame["p_alive"], value_bands=5)
    with engine.begin() as connection:
        table = loaded(connection, frame)
        found = value_risk_grid_in_table(connection, table, value="clv", p_alive="p_alive",
                                         value_bands=5)  # fmt: skip
    pd.testing.assert_frame_equal(found, expected, rtol=1e-12)


@pytest.mark.parametrize(("n", "shift"), [(2, 0.0), (1_003, 0.0), (400, 1e6), (400, -1e6)])
def test_whale_curve_in_the_table_has_the_in_memory_figures(
    engine: sa.Engine, n: int, shift: float
) -> None:
    frame = scores(n, seed=n + 2)
    frame["clv"] += shift  # all positive, all negative
    expected = whale_curve(frame["clv"])
    with engine.begin() as connection:
        table = loaded(connection, frame)
        found = whale_curve_in_table(connection, table, value="clv", points=50)
    for name in ("total_profit_", "peak_profit_", "peak_share_", "peak_customers_share_",
                 "value_destroying_share_", "total_loss_"):  # fmt: skip
        np.testing.assert_allclose(getattr(found, name), getattr(expected, name), rtol=1e-12)
    assert found.curve_.index[0] == expected.curve_.index[0]
    assert found.curve_.index[-1] == expected.curve_.index[-1]
    pd.testing.assert_frame_equal(found.curve_, expected.curve_.loc[found.curve_.index], rtol=1e-12)


def test_a_missing_value_or_a_probability_outside_0_1_is_refused(engine: sa.Engine) -> None:
    frame = scores(10, seed=3)
    with engine.begin() as connection:
        table = loaded(connection, frame.assign(p_alive=frame["p_alive"] + 1.0))
        with pytest.raises(DataQualityError, match="outside"):
            value_risk_grid_in_table(connection, table, value="clv", p_alive="p_alive")
        frame.loc[frame.index[0], "clv"] = np.nan
        table = loaded(connection, frame)
        with pytest.raises(DataQualityError, match="1 of 10 rows have no 'clv'"):
            tiers_in_table(connection, table, value="clv", tier="value_tier")


@settings(max_examples=25, deadline=None)
@given(values=st.lists(st.integers(-50, 50), min_size=1, max_size=60),
       cuts=st.sampled_from([(0.5,), (0.1, 0.3), (0.01, 0.05, 0.2)]))  # fmt: skip
def test_ties_only_move_customers_tied_at_an_edge(
    values: list[int], cuts: tuple[float, ...]
) -> None:
    n = len(values)
    frame = pd.DataFrame(
        {"clv": np.asarray(values, dtype=np.float64), "p_alive": 0.5,
         "value_tier": pd.array([None] * n, dtype="string")},
        index=pd.Index(np.arange(n), name="customer_id"),
    )  # fmt: skip
    expected = value_tiers(frame["clv"], cuts=cuts)
    engine = sa.create_engine("duckdb:///:memory:")
    with engine.begin() as connection:
        table = loaded(connection, frame)
        found = tiers_in_table(connection, table, value="clv", tier="value_tier", cuts=cuts)
    # the ids are in the input's order, so ranking ties by id is the in-memory order
    pd.testing.assert_frame_equal(found.summary_, expected.summary_, rtol=1e-12)
