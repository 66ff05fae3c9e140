"""The at-risk-and-valuable list: in memory, from a table on SQLite, DuckDB and PostgreSQL."""

from __future__ import annotations

import uuid

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from cvalue.errors import DataQualityError, SchemaError
from cvalue.segments import (
    AT_RISK_P_ALIVE_BELOW,
    AT_RISK_TOP,
    at_risk_valuable,
    at_risk_valuable_in_table,
    expected_value_lost,
)

LAYOUT = ["rank", "clv_5y", "p_alive", "expected_value_lost"]


def scores(n: int, seed: int) -> pd.DataFrame:
    """Scores with ties in CLV, P(alive) on the threshold and at 0, and negative values."""
    rng = np.random.default_rng(seed)
    clv = np.round(rng.normal(200.0, 300.0, n), 0)  # whole amounts: many ties
    alive = rng.random(n)
    alive[: n // 10] = AT_RISK_P_ALIVE_BELOW  # on the threshold: not below it
    alive[n // 10 : n // 10 + 2] = 0.0
    clv[n // 10 : n // 10 + 2] = 50.0  # listed when the list reaches them: no lost value
    return pd.DataFrame(
        {"clv_5y": clv, "p_alive": alive, "segment": rng.choice(["retail", "online"], n),
         "run_id": "now"},
        index=pd.Index(rng.permutation(n) + 1_000, name="customer_id"),
    )  # fmt: skip


def loaded(connection: sa.Connection, frame: pd.DataFrame) -> sa.Table:
    table = sa.Table(
        f"scores_{uuid.uuid4().hex[:10]}", sa.MetaData(),
        sa.Column("customer_id", sa.BigInteger), sa.Column("clv_5y", sa.Double),
        sa.Column("p_alive", sa.Double), sa.Column("segment", sa.String),
        sa.Column("run_id", sa.String),
    )  # fmt: skip
    table.create(connection)
    rows = frame.reset_index().astype(object)
    connection.execute(sa.insert(table), rows.where(rows.notna(), None).to_dict("records"))
    return table


def assert_same(found: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert found.index.tolist() == expected.index.tolist()
    assert found.index.name == expected.index.name
    pd.testing.assert_frame_equal(found, expected, check_exact=True, check_index_type=False)


@pytest.mark.parametrize(("n", "top"), [(1, 5), (40, 3), (1_003, 100), (1_003, 2_000)])
def test_the_table_lists_the_customers_memory_lists(engine: sa.Engine, n: int, top: int) -> None:
    frame = scores(n, seed=n + top)
    expected = at_risk_valuable(frame["clv_5y"], frame["p_alive"], top=top,
                                details=frame[["segment"]])  # fmt: skip
    with engine.begin() as connection:
        table = loaded(connection, frame)
        found = at_risk_valuable_in_table(connection, table, value="clv_5y", p_alive="p_alive",
                                          top=top, details=["segment"])  # fmt: skip
    assert list(found.columns) == [*LAYOUT, "segment"]
    assert_same(found, expected)
    assert (expected["p_alive"] < AT_RISK_P_ALIVE_BELOW).all()
    if n > 1_000:
        assert expected["clv_5y"].duplicated().any()  # ties were broken alike
        assert expected["expected_value_lost"].isna().any() == (top > 1_000)  # P(alive) 0


def test_where_restricts_the_table_to_one_run(engine: sa.Engine) -> None:
    now, before = scores(300, seed=1), scores(300, seed=2).assign(run_id="before")
    before["clv_5y"] += 10_000.0  # the other run's customers would all be listed first
    with engine.begin() as connection:
        table = loaded(connection, pd.concat([now, before]))
        found = at_risk_valuable_in_table(connection, table, value="clv_5y", p_alive="p_alive",
                                          top=20, where=table.c.run_id == "now")  # fmt: skip
    assert_same(found, at_risk_valuable(now["clv_5y"], now["p_alive"], top=20))


def test_a_p_alive_of_zero_has_no_lost_value_and_ties_go_by_customer_id() -> None:
    clv = pd.Series([500.0, 500.0, 500.0, 800.0, -5.0, 0.0], index=[30, 10, 20, 40, 50, 60])
    alive = pd.Series([0.25, 0.1, 0.45, 0.0, 0.01, 0.2], index=clv.index)
    found = at_risk_valuable(clv, alive, top=10, p_alive_below=0.3)
    # 20 is above the threshold; 50 and 60 are worth nothing; 40 first, then 10 before 30
    assert found.index.tolist() == [40, 10, 30]
    assert found["rank"].tolist() == [1, 2, 3]
    assert np.isnan(found.loc[40, "expected_value_lost"])
    assert found.loc[10, "expected_value_lost"] == pytest.approx(500.0 * 0.9 / 0.1, rel=1e-15)
    assert found.loc[30, "expected_value_lost"] == pytest.approx(1_500.0, rel=1e-15)
    assert list(found.columns) == ["rank", "clv", "p_alive", "expected_value_lost"]


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.integers(-20, 60).map(float), st.sampled_from([0.0, 0.1, 0.3, 0.5, 0.7, 1.0])),
        min_size=1, max_size=60,
    ),
    top=st.integers(1, 25),
    below=st.sampled_from([0.3, 0.5, 1.0]),
)  # fmt: skip
def test_nobody_left_out_is_worth_more_or_tied_with_a_smaller_id(
    rows: list[tuple[float, float]], top: int, below: float
) -> None:
    ids = pd.Index(np.arange(len(rows))[::-1] * 7 % 101, name="customer_id")
    clv = pd.Series([value for value, _ in rows], index=ids, name="clv_5y")
    alive = pd.Series([p for _, p in rows], index=ids)
    found = at_risk_valuable(clv, alive, top=top, p_alive_below=below)
    is_eligible = (alive < below) & (clv > 0)
    assert len(found) == min(top, int(is_eligible.sum()))
    assert is_eligible.loc[found.index].all()
    assert found["rank"].tolist() == list(range(1, len(found) + 1))
    keys = list(zip(-found["clv_5y"], found.index, strict=True))
    assert keys == sorted(keys)  # by CLV, then by customer id
    left_out = clv[is_eligible].drop(found.index)
    if len(found):
        last = (-found["clv_5y"].iloc[-1], found.index[-1])
        assert all((-value, customer) > last for customer, value in left_out.items())
    np.testing.assert_array_equal(
        found["expected_value_lost"],
        expected_value_lost(found["clv_5y"], found["p_alive"]).to_numpy(),
    )


@settings(max_examples=20, deadline=None)
@given(
    values=st.lists(st.integers(-5, 30), min_size=1, max_size=40),
    top=st.integers(1, 12),
)  # fmt: skip
def test_any_table_lists_as_memory(engine: sa.Engine, values: list[int], top: int) -> None:
    n = len(values)
    rng = np.random.default_rng(n)
    frame = pd.DataFrame(
        {"clv_5y": np.asarray(values, dtype=np.float64), "p_alive": rng.random(n),
         "segment": "retail", "run_id": "now"},
        index=pd.Index(rng.permutation(n), name="customer_id"),
    )  # fmt: skip
    with engine.begin() as connection:
        table = loaded(connection, frame)
        found = at_risk_valuable_in_table(connection, table, value="clv_5y", p_alive="p_alive",
                                          top=top)  # fmt: skip
        table.drop(connection)
    expected = at_risk_valuable(frame["clv_5y"], frame["p_alive"], top=top)
    if expected.empty:
        assert found.empty
        assert list(found.columns) == LAYOUT
    else:
        assert_same(found, expected)


def test_the_defaults_are_the_documented_ones() -> None:
    clv = pd.Series(np.arange(1.0, 301.0), name="clv_5y")
    alive = pd.Series(np.tile([0.2, 0.49, 0.5, 0.9], 75))
    found = at_risk_valuable(clv, alive)
    assert (AT_RISK_TOP, AT_RISK_P_ALIVE_BELOW) == (100, 0.5)
    assert len(found) == 100  # 150 customers qualify
    assert (found["p_alive"] < 0.5).all()
    assert found["clv_5y"].iloc[0] == 298.0  # 299 and 300 have P(alive) 0.5 and 0.9


def test_bad_options_and_values_are_refused(engine: sa.Engine) -> None:
    frame = scores(20, seed=5)
    clv, alive = frame["clv_5y"], frame["p_alive"]
    with pytest.raises(SchemaError, match=r"top must be an integer >= 1, got 0; p_alive_below"):
        at_risk_valuable(clv, alive, top=0, p_alive_below=1.5)
    with pytest.raises(SchemaError, match="top must be an integer"):
        at_risk_valuable(clv, alive, top=True)
    with pytest.raises(SchemaError, match="p_alive must be a Series"):
        at_risk_valuable(clv, alive.to_numpy())  # type: ignore[arg-type]
    with pytest.raises(DataQualityError, match="outside"):
        at_risk_valuable(clv, alive + 1.0)
    with pytest.raises(DataQualityError, match="cover different customers"):
        at_risk_valuable(clv, alive.iloc[1:])
    with pytest.raises(SchemaError, match="details has columns the list holds already"):
        at_risk_valuable(clv, alive, details=frame[["p_alive"]])
    broken = frame.copy()
    broken.iloc[0, broken.columns.get_loc("clv_5y")] = np.nan
    broken.iloc[1, broken.columns.get_loc("p_alive")] = 2.0
    with engine.begin() as connection:
        table = loaded(connection, broken)
        said = r"1 of 20 rows have no 'clv_5y'; 'p_alive' has 1 of 20 values outside \[0, 1\]"
        with pytest.raises(DataQualityError, match=said):
            at_risk_valuable_in_table(connection, table, value="clv_5y", p_alive="p_alive")
        with pytest.raises(DataQualityError, match="has no row to list"):
            at_risk_valuable_in_table(connection, table, value="clv_5y", p_alive="p_alive",
                                      where=table.c.run_id == "never")  # fmt: skip
        with pytest.raises(SchemaError, match="has no column 'clv'"):
            at_risk_valuable_in_table(connection, table, value="clv", p_alive="p_alive")
        with pytest.raises(SchemaError, match="details has columns"):
            at_risk_valuable_in_table(connection, table, value="clv_5y", p_alive="p_alive",
                                      details=["customer_id"])  # fmt: skip
