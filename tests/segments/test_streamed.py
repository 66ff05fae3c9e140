"""Cross-sell profitability chunk by chunk equals the in-memory analysis of the whole base.

The per-customer sums come from SQLite, DuckDB and PostgreSQL in chunks of several sizes; the
reference is ``cross_sell_profitability(sql_customer_profitability(...))`` on the same tables.
Counts, rules and flags are identical; floats that the stream adds up chunk by chunk agree to
``rtol=1e-10`` (they differ from the in-memory sums only in the order of the additions).
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from cvalue.datasets import make_crm
from cvalue.errors import DataQualityError, NotFittedError, SchemaError
from cvalue.io.sqlkit import fetch_chunks
from cvalue.segments import (
    Costs,
    CrossSellProfitability,
    CrossSellStream,
    ProfitSelect,
    ProfitTable,
    SegmentsStream,
    UnmatchedCostsWarning,
    UnprofitableSegments,
    cross_sell_profitability,
    customer_profitability,
    profit_select,
    streamed_cross_sell_profitability,
    unprofitable_segments,
)
from cvalue.segments.sql import sql_customer_profitability
from tests.conftest import crm_rates

RTOL = 1e-10
STATISTICS = ["mean_value", "ci_lower", "ci_upper", "total_value", "total_loss", "loss_share",
              "share_of_population"]  # fmt: skip
EXACT = ["rule", "customers", "is_flagged", "reason"]
KEYS = ["segment", "channel"]


@pytest.fixture(scope="module")
def crm():
    # large enough that the largest chunks but one (2,500 customers) still cut it in pieces
    return make_crm(7_000, seed=21)


@pytest.fixture(scope="module")
def tables(engine, load_table, crm) -> dict[str, str]:
    return {
        "transactions": load_table(engine, crm.transactions),
        "contacts": load_table(engine, crm.service_contacts),
        "customers": load_table(engine, crm.customers.reset_index()),
    }


@pytest.fixture(scope="module")
def costs(crm, tables) -> Costs:
    return Costs(service_contacts=tables["contacts"], **crm_rates(crm))


@pytest.fixture(scope="module")
def in_memory(engine, crm, tables, costs) -> CrossSellProfitability:
    return cross_sell_profitability(
        sql_customer_profitability(engine, costs, table=tables["transactions"])
    )


def streamed(engine, costs, table, chunk_customers, **options) -> CrossSellProfitability:
    with engine.connect() as connection:
        source = profit_select(connection, costs, table=table)
        return streamed_cross_sell_profitability(
            connection, source, chunk_customers=chunk_customers, **options
        )


def assert_same_shares_and_drivers(
    actual: CrossSellProfitability, expected: CrossSellProfitability
) -> None:
    assert actual.n_cross_buyers_ == expected.n_cross_buyers_
    assert actual.unprofitable_share_ == expected.unprofitable_share_
    assert actual.loss_share_ == pytest.approx(expected.loss_share_, rel=RTOL)
    assert actual.drivers_.index.equals(expected.drivers_.index)
    pd.testing.assert_frame_equal(
        actual.drivers_, expected.drivers_, check_exact=False, rtol=RTOL, atol=0.0
    )


def assert_same_segments(actual: UnprofitableSegments, expected: UnprofitableSegments) -> None:
    """The same segments: rules, sizes and flags identical, statistics to ``RTOL``."""
    assert actual.segments_.index.equals(expected.segments_.index)
    pd.testing.assert_frame_equal(actual.segments_[EXACT], expected.segments_[EXACT])
    pd.testing.assert_frame_equal(
        actual.segments_[STATISTICS], expected.segments_[STATISTICS],
        check_exact=False, rtol=RTOL, atol=0.0,
    )  # fmt: skip
    assert actual.total_loss_ == pytest.approx(expected.total_loss_, rel=RTOL)
    assert actual.value_name_ == expected.value_name_


# --- the profit table of a chunk --------------------------------------------------------------


@pytest.mark.parametrize("window", [(None, None), ("2023-03-01", "2023-03-31")])
def test_each_chunk_is_the_whole_table_restricted_to_its_customers(engine, tables, costs, window):
    start, end = window
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        whole = sql_customer_profitability(
            engine, costs, table=tables["transactions"], start=start, end=end
        )
        with engine.connect() as connection:
            source = profit_select(
                connection, costs, table=tables["transactions"], start=start, end=end
            )
            chunks = [
                source.customers(rows) for rows in fetch_chunks(connection, source.statement, 211)
            ]
    n_orphans = int(whole.unmatched_costs["rows"].sum())
    assert (n_orphans > 0) == (start is not None)
    assert [warning.category for warning in caught] == [UnmatchedCostsWarning] * 2 * (n_orphans > 0)
    if start is None:
        assert len(chunks) >= 3
    for chunk in chunks:
        assert chunk.index.is_monotonic_increasing
        pd.testing.assert_frame_equal(chunk, whole.customers.loc[chunk.index], check_exact=True)
    ids = pd.Index(np.concatenate([chunk.index.to_numpy() for chunk in chunks]))
    assert ids.sort_values().equals(whole.customers.index)
    pd.testing.assert_frame_equal(source.unmatched_costs, whole.unmatched_costs)
    pd.testing.assert_frame_equal(source.outside_window, whole.outside_window)
    assert (source.outside_window["rows"].sum() > 0) == (start is not None)


def test_customer_attributes_joined_to_the_statement_follow_the_profit(engine, tables, costs):
    with engine.connect() as connection:
        source = profit_select(connection, costs, table=tables["transactions"])
        statement = joined(source, tables["customers"])
        rows = next(iter(fetch_chunks(connection, statement, 300)))
    chunk = source.customers(rows)
    assert list(chunk.columns[-2:]) == KEYS
    assert chunk.drop(columns=KEYS).equals(source.customers(rows.drop(columns=KEYS)))


def joined(source: ProfitSelect, customers: str) -> sa.Select:
    """The per-customer sums with the customers' segment and channel."""
    attributes = sa.table(customers, *(sa.column(name) for name in ["customer_id", *KEYS]))
    sums = source.statement.subquery()
    return sa.select(sums, *(attributes.c[key] for key in KEYS)).join(
        attributes, attributes.c.customer_id == sums.c.customer_id
    )


# --- cross-sell profitability -------------------------------------------------------------------


@pytest.mark.parametrize("chunk_customers", [97, 2_500, 50_000])
def test_streamed_equals_in_memory_when_the_sample_is_the_base(
    engine, tables, costs, in_memory, chunk_customers
):
    actual = streamed(engine, costs, tables["transactions"], chunk_customers)
    assert_same_shares_and_drivers(actual, in_memory)
    # the sample holds every cross-buyer: the tree and its statistics are the in-memory ones
    segments, expected = actual.segments_, in_memory.segments_
    assert segments.has_all_members_
    pd.testing.assert_frame_equal(
        segments.segments_.drop(columns="loss_share"),
        expected.segments_.drop(columns="loss_share"),
        check_exact=True,
    )
    assert_same_segments(segments, expected)
    pd.testing.assert_series_equal(segments.members_, expected.members_)
    assert segments.flagged_share_ == expected.flagged_share_
    cross_buyers = in_memory.customers_[in_memory.customers_["is_cross_buyer"]]
    pd.testing.assert_frame_equal(actual.customers_, cross_buyers, check_exact=True)
    assert not actual.has_all_customers_
    pd.testing.assert_frame_equal(actual.unmatched_costs_, in_memory.unmatched_costs_)
    pd.testing.assert_frame_equal(actual.outside_window_, in_memory.outside_window_)


@pytest.mark.parametrize("chunk_customers", [120, 2_500])
def test_a_smaller_sample_grows_the_tree_and_the_base_judges_it(
    engine, tables, costs, in_memory, chunk_customers
):
    actual = streamed(
        engine, costs, tables["transactions"], chunk_customers, sample_size=250, min_size=20
    )
    assert_same_shares_and_drivers(actual, in_memory)
    cross_buyers = in_memory.customers_[in_memory.customers_["is_cross_buyer"]]
    assert actual.n_cross_buyers_ > 2 * 250
    assert len(actual.customers_) == 250
    assert actual.customers_.index.isin(cross_buyers.index).all()
    segments = actual.segments_
    assert not segments.has_all_members_
    assert len(segments.segments_) > 1
    # each found rule judged in memory on every cross-buyer it selects
    leaves = pd.Series("", index=cross_buyers.index, name="segment", dtype="str")
    for label, rule in segments.segments_["rule"].items():
        selected = cross_buyers.query(rule).index
        assert (leaves[selected] == "").all()  # the rules do not overlap
        leaves[selected] = label
    assert (leaves != "").all()  # and they cover every cross-buyer
    expected = unprofitable_segments(
        in_memory.customers_, by=leaves, min_size=20, level=0.95
    ).segments_
    actual_table = segments.segments_.loc[expected.index]
    pd.testing.assert_frame_equal(actual_table[["customers", "is_flagged", "reason"]],
                                  expected[["customers", "is_flagged", "reason"]])  # fmt: skip
    pd.testing.assert_frame_equal(
        actual_table[STATISTICS], expected[STATISTICS], check_exact=False, rtol=RTOL, atol=0.0
    )
    pd.testing.assert_series_equal(
        segments.members_, leaves[segments.members_.index], check_exact=True
    )
    flagged = leaves.isin(segments.flagged_.index)
    assert segments.flagged_share_ == pytest.approx(flagged.mean(), rel=RTOL)


def test_the_sample_depends_on_the_seed_not_on_the_chunks(engine, tables, costs):
    first = streamed(engine, costs, tables["transactions"], 150, sample_size=200, seed=3)
    second = streamed(engine, costs, tables["transactions"], 3_000, sample_size=200, seed=3)
    other = streamed(engine, costs, tables["transactions"], 150, sample_size=200, seed=4)
    assert first.customers_.index.equals(second.customers_.index)
    assert not first.customers_.index.equals(other.customers_.index)


# --- named segments -----------------------------------------------------------------------------


@pytest.mark.parametrize("population", ["all", "cross_buyers"])
@pytest.mark.parametrize("chunk_customers", [64, 2_500])
def test_named_segments_streamed_equal_in_memory(
    engine, crm, tables, costs, population, chunk_customers
):
    whole = sql_customer_profitability(engine, costs, table=tables["transactions"]).customers
    with_keys = whole.join(crm.customers[KEYS])
    expected = unprofitable_segments(with_keys, by=KEYS, population=population, min_size=25)
    stream = SegmentsStream(KEYS, population=population, min_size=25)
    with engine.connect() as connection:
        source = profit_select(connection, costs, table=tables["transactions"])
        for rows in fetch_chunks(connection, joined(source, tables["customers"]), chunk_customers):
            stream.add(source.customers(rows))
    actual = stream.result()
    assert_same_segments(actual, expected)
    assert len(actual.members_) == 0
    assert not actual.has_all_members_
    assert actual.flagged_share_ == pytest.approx(expected.flagged_share_, rel=RTOL)


# --- chunk boundaries do not matter -----------------------------------------------------------


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    crm = make_crm(800, seed=5)
    costs = Costs(service_contacts=crm.service_contacts, **crm_rates(crm))
    customers = customer_profitability(crm.transactions, costs).customers
    return customers.join(crm.customers[KEYS])


def in_chunks(table: pd.DataFrame, cuts: list[int], order_seed: int) -> list[pd.DataFrame]:
    shuffled = table.iloc[np.random.default_rng(order_seed).permutation(len(table))]
    bounds = [0, *sorted(set(cuts)), len(table)]
    return [shuffled.iloc[start:stop] for start, stop in itertools.pairwise(bounds)]


def stream_over(chunks: list[pd.DataFrame], **options) -> CrossSellProfitability:
    stream = CrossSellStream(min_size=15, **options)
    for chunk in chunks:
        stream.add(chunk)
    stream.rules()
    if stream.needs_judging:
        for chunk in reversed(chunks):  # pass two may see the chunks in another order
            stream.judge(chunk)
    return stream.result()


@settings(max_examples=25)
@given(
    cuts=st.lists(st.integers(1, 799), max_size=9),
    order_seed=st.integers(0, 2**32 - 1),
    sample_size=st.sampled_from([120, 1_000]),
)
def test_the_result_does_not_depend_on_the_chunks(table, cuts, order_seed, sample_size):
    reference = stream_over([table], sample_size=sample_size)
    actual = stream_over(in_chunks(table, cuts, order_seed), sample_size=sample_size)
    assert_same_shares_and_drivers(actual, reference)
    assert_same_segments(actual.segments_, reference.segments_)
    pd.testing.assert_frame_equal(actual.customers_, reference.customers_)
    if sample_size == 1_000:  # every cross-buyer: the in-memory analysis
        whole = ProfitTable(table, pd.DataFrame(), pd.DataFrame())
        expected = cross_sell_profitability(whole, max_depth=2, min_size=15)
        assert_same_shares_and_drivers(actual, expected)
        assert_same_segments(actual.segments_, expected.segments_)


@settings(max_examples=25)
@given(cuts=st.lists(st.integers(1, 799), max_size=9), order_seed=st.integers(0, 2**32 - 1))
def test_named_segments_do_not_depend_on_the_chunks(table, cuts, order_seed):
    stream = SegmentsStream(KEYS, min_size=10)
    for chunk in in_chunks(table, cuts, order_seed):
        stream.add(chunk)
    expected = unprofitable_segments(table, by=KEYS, population="all", min_size=10)
    assert_same_segments(stream.result(), expected)


# --- errors ---------------------------------------------------------------------------------------


def errors_of(engine, costs, **arguments) -> tuple[type[Exception], str, type[Exception], str]:
    """The error of the SQL path and of profit_select on the same input."""
    with pytest.raises((SchemaError, DataQualityError)) as sql_path:
        sql_customer_profitability(engine, costs, **arguments)
    with engine.connect() as connection, pytest.raises(type(sql_path.value)) as streamed_path:
        profit_select(connection, costs, **arguments)
    return sql_path.type, str(sql_path.value), streamed_path.type, str(streamed_path.value)


def test_bad_rows_raise_the_errors_of_the_sql_path(engine, load_table, crm, tables, costs):
    bad = crm.transactions.copy()
    purchases = bad.index[~bad["is_return"].to_numpy()]
    bad.loc[purchases[:3], "amount"] = -5.0
    bad.loc[purchases[3:5], "category"] = None
    sql_type, sql_message, streamed_type, streamed_message = errors_of(
        engine, costs, table=load_table(engine, bad)
    )
    assert streamed_type is sql_type is DataQualityError
    assert streamed_message == sql_message
    assert "negative amounts on purchases in 3 of" in streamed_message
    assert "missing categories on purchases in 2 of" in streamed_message


def test_schema_problems_raise_the_errors_of_the_sql_path(engine, load_table, crm, tables):
    in_memory_costs = Costs(service_contacts=crm.service_contacts, **crm_rates(crm))
    for costs, arguments in [
        (in_memory_costs, {"table": tables["transactions"]}),
        (Costs(service_contacts=tables["contacts"], **crm_rates(crm)),
         {"table": load_table(engine, crm.transactions.drop(columns="category"))}),
    ]:  # fmt: skip
        sql_type, sql_message, streamed_type, streamed_message = errors_of(
            engine, costs, **arguments
        )
        assert streamed_type is sql_type is SchemaError
        assert streamed_message == sql_message
    assert "not found in" in streamed_message


def test_unmatched_costs_can_be_refused(engine, tables, costs):
    with engine.connect() as connection, pytest.raises(DataQualityError, match="unmatched_costs"):
        profit_select(connection, costs, table=tables["transactions"], start="2023-03-01",
                      end="2023-03-31", on_unmatched="raise")  # fmt: skip


def test_the_passes_come_in_order(table):
    stream = CrossSellStream(sample_size=100, min_size=15)
    with pytest.raises(NotFittedError, match=r"judge\(\) comes after pass one"):
        stream.judge(table)
    stream.add(table.iloc[:500])
    stream.add(table.iloc[500:])
    assert stream.needs_judging
    rules = stream.rules()
    with pytest.raises(SchemaError, match="pass one is over"):
        stream.add(table)
    with pytest.raises(NotFittedError, match="pass two judged 0 cross-buyers"):
        stream.result()
    stream.judge(table.iloc[:500])
    with pytest.raises(NotFittedError, match="judge\\(\\) every chunk of pass one again"):
        stream.result()
    labels = stream.judge(table.iloc[500:])
    assert set(labels) <= set(rules)
    assert stream.result().segments_.segments_["customers"].sum() == stream.n_cross_buyers


def test_pass_two_must_see_the_customers_of_pass_one(table):
    stream = CrossSellStream(sample_size=100, min_size=15)
    stream.add(table.iloc[:500])
    stream.rules()
    cross_buyers = int(table.iloc[:500]["is_cross_buyer"].sum())
    others = table.iloc[500:]
    stream.judge(others[others["is_cross_buyer"]].iloc[:cross_buyers])
    with pytest.raises(NotFittedError, match="or other ones"):
        stream.result()


def test_bad_options_and_chunks_are_refused(table):
    for options, phrase in [
        ({"sample_size": 0}, "sample_size must be an integer >= 1"),
        ({"seed": -1}, "seed must be an integer >= 0"),
        ({"min_size": 1}, "min_size must be an integer >= 2"),
        ({"level": 1.5}, "level must be a number in"),
    ]:
        with pytest.raises(SchemaError, match=phrase):
            CrossSellStream(**options)
    with pytest.raises(SchemaError, match=r"\['net_profit'\] not found in the chunk"):
        CrossSellStream().add(table.drop(columns="net_profit"))
    with pytest.raises(SchemaError, match="a chunk must be a per-customer DataFrame"):
        CrossSellStream().add(table.to_numpy())
    with pytest.raises(SchemaError, match="by= takes one or more column names"):
        SegmentsStream([])
    with pytest.raises(SchemaError, match="population must be"):
        SegmentsStream("segment", population="everyone")
    with pytest.raises(SchemaError, match=r"\['channel'\] not found in the chunk"):
        SegmentsStream(KEYS).add(table.drop(columns="channel"))


def test_an_empty_base(table):
    result = CrossSellStream().result()
    assert result.n_cross_buyers_ == 0
    assert np.isnan(result.unprofitable_share_)
    assert np.isnan(result.loss_share_)
    assert result.drivers_["effect_size"].isna().all()
    assert result.segments_.segments_["customers"].tolist() == [0]
    assert len(SegmentsStream("segment").result().segments_) == 0
