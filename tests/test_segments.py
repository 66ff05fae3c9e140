"""Segments: profitability recovers make_crm's planted truth; segments, tiers, grids and curves.

make_crm plants a group of unprofitable cross-buyers (20 % of the cross-buyers, carrying about
70 % of all customer losses) who return most of what they buy, contact service often and buy
almost only on promotion. Net profit here uses the same definition and costs as make_crm's net
margin, so it must equal the planted net margin to rounding.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cvalue.datasets import make_crm
from cvalue.errors import DataQualityError, SchemaError
from cvalue.io.schema import Columns
from cvalue.segments import (
    DRIVERS,
    Costs,
    ProfitTable,
    UnmatchedCostsWarning,
    cross_sell_profitability,
    customer_profitability,
    most_valuable,
    unprofitable_segments,
    value_risk_grid,
    value_tiers,
    whale_curve,
)
from cvalue.segments.discovery import _readable_threshold

PLANTED_DRIVERS = {"return_rate", "service_intensity", "promotion_share"}
PLANTED_SHARE = 0.20  # make_crm's default unprofitable_share of the cross-buyers
PLANTED_LOSS_SHARE = 0.70  # the share of all customer losses make_crm is calibrated to plant
BASES = [(2_000, 0), (5_000, 1), (10_000, 2), (20_000, 3), (3_000, 4), (8_000, 5)]


def costs_of(crm, **changes) -> Costs:
    """The cost assumptions make_crm used, with the contacts table."""
    assumed = crm.truth.costs
    options = {
        "margin_rate": assumed.margin_rate,
        "promotion_discount_rate": assumed.promotion_discount_rate,
        "return_handling_cost": assumed.return_handling_cost,
        "service_contacts": crm.service_contacts,
        **changes,
    }
    return Costs(**options)


@pytest.fixture(scope="module", params=BASES, ids=lambda base: f"n{base[0]}-seed{base[1]}")
def analysed(request):
    n_customers, seed = request.param
    crm = make_crm(n_customers, seed=seed)
    return crm, cross_sell_profitability(crm.transactions, costs_of(crm))


@pytest.fixture(scope="module")
def small_crm():
    return make_crm(1_500, seed=11)


# --- recovering the planted truth ---------------------------------------------------------------


def test_net_profit_is_the_planted_net_margin(analysed):
    crm, result = analysed
    truth = crm.truth.customers
    customers = result.customers_
    pd.testing.assert_index_equal(customers.index, truth.index)
    np.testing.assert_allclose(customers["net_profit"], truth["net_margin"], rtol=0, atol=1e-9)
    np.testing.assert_array_equal(customers["is_cross_buyer"], truth["is_cross_buyer"])


def test_shares_are_those_of_the_planted_net_margins(analysed):
    """The shares are exactly the truth's, on the issue's definitions."""
    crm, result = analysed
    truth = crm.truth.customers
    is_cross_buyer = truth["is_cross_buyer"].to_numpy()
    margin = truth["net_margin"].to_numpy()
    losses = np.clip(-margin, 0, None)
    is_loss_making_cross_buyer = is_cross_buyer & (margin < 0)
    assert result.unprofitable_share_ == pytest.approx(
        is_loss_making_cross_buyer.sum() / is_cross_buyer.sum(), abs=1e-12
    )
    assert result.loss_share_ == pytest.approx(
        losses[is_loss_making_cross_buyer].sum() / losses.sum(), abs=1e-12
    )
    assert result.n_cross_buyers_ == int(is_cross_buyer.sum())


def test_shares_recover_the_planted_ones(analysed):
    """About 20 % of cross-buyers lose money and carry about 70 % of losses, within 5 points."""
    crm, result = analysed
    is_cross_buyer = crm.truth.customers["is_cross_buyer"]
    planted_share = len(crm.truth.unprofitable_ids) / is_cross_buyer.sum()
    assert planted_share == pytest.approx(PLANTED_SHARE, abs=0.5 / is_cross_buyer.sum())
    assert crm.truth.loss_share == pytest.approx(PLANTED_LOSS_SHARE, abs=0.05)
    assert result.unprofitable_share_ == pytest.approx(PLANTED_SHARE, abs=0.05)
    assert result.loss_share_ == pytest.approx(PLANTED_LOSS_SHARE, abs=0.05)
    assert result.loss_share_ == pytest.approx(crm.truth.loss_share, abs=0.05)


def test_planted_drivers_rank_first(analysed):
    _, result = analysed
    drivers = result.drivers_
    assert set(drivers.index[:3]) == PLANTED_DRIVERS
    assert drivers.index[3] == "spend_per_category"
    assert drivers["rank"].tolist() == [1, 2, 3, 4]
    planted = drivers.loc[list(PLANTED_DRIVERS)]
    assert (planted["ci_lower"] > 0.5).all()  # large effects, surely positive
    assert (planted["mean_unprofitable"] > planted["mean_profitable"]).all()
    assert (drivers["ci_lower"] <= drivers["effect_size"]).all()
    assert (drivers["effect_size"] <= drivers["ci_upper"]).all()


def test_flagged_segments_match_the_planted_group(analysed):
    crm, result = analysed
    flagged = result.segments_.flagged_ids_
    planted = pd.Index(crm.truth.unprofitable_ids)
    found = flagged.intersection(planted)
    assert len(found) / len(flagged) >= 0.8  # precision
    assert len(found) / len(planted) >= 0.8  # recall


def test_flagged_segments_read_as_rules_on_the_planted_drivers(analysed):
    _, result = analysed
    flagged = result.segments_.flagged_
    assert len(flagged) >= 1
    for rule in flagged["rule"]:
        named = set(re.findall(r"[a-z_]+(?= [<>])|(?<=< )[a-z_]+", rule))
        assert named <= PLANTED_DRIVERS
        assert "return_rate" in named
    assert (flagged["ci_upper"] < 0).all()
    assert (flagged["customers"] >= 30).all()
    assert (flagged["reason"] == "flagged").all()


def test_flagged_shares_are_consistent(analysed):
    _, result = analysed
    segments = result.segments_
    customers = result.customers_
    cross_buyers = customers[customers["is_cross_buyer"]]
    flagged = segments.flagged_ids_
    assert segments.flagged_share_ == pytest.approx(len(flagged) / len(cross_buyers))
    losses = (-customers["net_profit"]).clip(lower=0)
    assert segments.flagged_loss_share_ == pytest.approx(losses[flagged].sum() / losses.sum())
    table = segments.segments_
    assert table["customers"].sum() == len(cross_buyers)
    assert table["loss_share"].sum() == pytest.approx(
        losses[cross_buyers.index].sum() / losses.sum()
    )


def test_named_segments_flag_the_planted_group_and_not_the_channels(small_crm):
    crm = small_crm
    table = customer_profitability(crm.transactions, costs_of(crm))
    is_planted = pd.Series(
        table.customers.index.isin(crm.truth.unprofitable_ids),
        index=table.customers.index,
        name="planted",
    )
    found = unprofitable_segments(table, by=is_planted)
    assert found.flagged_.index.tolist() == ["True"]
    assert found.flagged_["rule"].tolist() == ["planted = True"]
    assert found.flagged_ids_.equals(pd.Index(crm.truth.unprofitable_ids).sort_values())
    by_channel = unprofitable_segments(table, by=crm.customers["channel"], population="all")
    assert not by_channel.segments_["is_flagged"].any()
    assert set(by_channel.segments_.index) == set(crm.customers["channel"].unique())
    assert by_channel.segments_["customers"].sum() == len(crm.customers)


def test_crossed_named_segments(small_crm):
    crm = small_crm
    table = customer_profitability(crm.transactions, costs_of(crm)).customers
    table = table.assign(segment=crm.customers["segment"])
    found = unprofitable_segments(table, by=["segment", crm.customers["channel"]], population="all")
    expected = table.groupby([table["segment"], crm.customers["channel"]]).size()
    assert len(found.segments_) == len(expected)
    first = found.segments_.iloc[0]
    segment, channel = first.name.split(" / ")
    assert first["rule"] == f"segment = {segment} and channel = {channel}"
    assert first["customers"] == expected[(segment, channel)]


# --- bases without losses, small segments, values -----------------------------------------------


def test_a_base_without_loss_makers_flags_nothing(small_crm):
    crm = small_crm
    purchases = crm.transactions[~crm.transactions["is_return"]].assign(is_promotion=False)
    contacts = crm.service_contacts.iloc[:0]
    result = cross_sell_profitability(purchases, costs_of(crm, service_contacts=contacts))
    assert (result.customers_["net_profit"] > 0).all()
    assert result.unprofitable_share_ == 0
    assert math.isnan(result.loss_share_)
    assert not result.segments_.segments_["is_flagged"].any()
    assert result.segments_.flagged_ids_.empty
    assert math.isnan(result.segments_.flagged_loss_share_)
    named = unprofitable_segments(result.customers_, by=crm.customers["channel"])
    assert not named.segments_["is_flagged"].any()


def segment_table(groups: dict[str, list[float]]) -> tuple[pd.DataFrame, pd.Series]:
    profits = [value for values in groups.values() for value in values]
    labels = [label for label, values in groups.items() for _ in values]
    index = pd.RangeIndex(len(profits), name="customer_id")
    table = pd.DataFrame({"net_profit": profits, "is_cross_buyer": True}, index=index)
    return table, pd.Series(labels, index=index, name="group")


def test_a_segment_too_small_for_its_interval_is_not_flagged():
    table, groups = segment_table({
        "tiny": [-100.0, -120.0, -90.0, -110.0, -105.0],  # surely losing, but 5 customers
        "noisy": [-300.0, 250.0, -200.0, 240.0, -100.0] * 8,  # mean -22, interval reaches zero
        "large": list(np.linspace(-60.0, -20.0, 40)),
        "fine": list(np.linspace(10.0, 90.0, 100)),
    })  # fmt: skip
    found = unprofitable_segments(table, by=groups, min_size=30).segments_
    assert found.loc["tiny", "reason"] == "smaller than min_size"
    assert found.loc["tiny", "ci_upper"] < 0  # its interval alone would flag it
    assert found.loc["noisy", "reason"] == "interval reaches zero"
    assert found.loc["noisy", "mean_value"] < 0
    assert found.loc["large", "reason"] == "flagged"
    assert found.loc["fine", "reason"] == "mean not below zero"
    assert found["is_flagged"].tolist() == (found["reason"] == "flagged").tolist()
    assert found.loc["large", "total_loss"] == pytest.approx(40 * 40.0)
    total_loss = 525.0 + 8 * 600.0 + 1600.0
    assert found.loc["tiny", "loss_share"] == pytest.approx(525.0 / total_loss)
    smaller = unprofitable_segments(table, by=groups, min_size=5).segments_
    assert smaller.loc["tiny", "is_flagged"]


def test_segment_interval_is_the_t_interval():
    values = [-12.0, -3.0, -7.5, 2.0, -9.0, -4.0]
    table, groups = segment_table({"only": values})
    found = unprofitable_segments(table, by=groups, min_size=2, level=0.9).segments_.loc["only"]
    mean, sd = np.mean(values), np.std(values, ddof=1)
    half = 2.015048373 * sd / math.sqrt(6)  # t(0.95, 5), Student's table
    assert found["ci_lower"] == pytest.approx(mean - half, rel=1e-8)
    assert found["ci_upper"] == pytest.approx(mean + half, rel=1e-8)


def test_segments_judged_by_a_value_instead_of_profit(small_crm):
    crm = small_crm
    table = customer_profitability(crm.transactions, costs_of(crm)).customers
    is_planted = pd.Series(table.index.isin(crm.truth.unprofitable_ids), index=table.index)
    clv = (-table["net_profit"]).rename("clv")  # the opposite ranking: planted look valuable
    found = unprofitable_segments(table, by=is_planted.rename("planted"), value=clv)
    assert found.value_name_ == "clv"
    assert found.flagged_.index.tolist() == ["False"]
    with pytest.raises(DataQualityError, match=r"missing for 10 of 1,500 customers"):
        unprofitable_segments(table, value=clv.iloc[10:])
    with pytest.raises(SchemaError, match="pick the column"):
        unprofitable_segments(table, value=clv.to_frame())


# --- the tree -------------------------------------------------------------------------------------


def tree_table(seed: int, n_rows: int = 600) -> pd.DataFrame:
    """Losses where the first driver is high and the second low, plus noise."""
    rng = np.random.default_rng(seed)
    drivers = rng.random((n_rows, 4))
    drivers[:, 3] = np.round(drivers[:, 3] * 4) / 4  # ties
    is_loss = (drivers[:, 0] > 0.6) & (drivers[:, 1] < 0.5)
    profit = np.where(is_loss, -20.0, 30.0) + rng.normal(0, 5, n_rows)
    table = pd.DataFrame(drivers, columns=list(DRIVERS))
    table.index.name = "customer_id"
    return table.assign(net_profit=profit, is_cross_buyer=True, is_unprofitable=profit < 0)


def test_the_tree_finds_a_planted_rule():
    table = tree_table(seed=5)
    found = unprofitable_segments(table)
    flagged = found.flagged_
    assert len(flagged) == 1
    rule = flagged["rule"].iloc[0]
    low, high = (float(value) for value in re.findall(r"[0-9.]+", rule))
    assert rule.startswith("return_rate > ")
    assert " and service_intensity <= " in rule
    assert low == pytest.approx(0.6, abs=0.02)
    assert high == pytest.approx(0.5, abs=0.02)
    expected = (table["return_rate"] > 0.6) & (table["service_intensity"] < 0.5)
    found_ids = found.flagged_ids_
    assert len(found_ids.intersection(table.index[expected])) / len(found_ids) > 0.95


@given(seed=st.integers(0, 10_000), depth=st.integers(0, 3), min_size=st.integers(2, 80))
def test_leaves_partition_the_population_and_their_rules_select_them(seed, depth, min_size):
    table = tree_table(seed, n_rows=300)
    found = unprofitable_segments(table, max_depth=depth, min_size=min_size)
    segments = found.segments_
    assert found.members_.index.sort_values().equals(table.index)
    assert len(segments) <= 2**depth
    assert (segments["customers"] >= min_size).all() or len(segments) == 1
    for label, rule in segments["rule"].items():
        members = found.members_.index[found.members_ == label]
        selected = table.index if rule == "all cross-buyers" else table.query(rule).index
        assert selected.sort_values().equals(members.sort_values()), rule


@given(
    low=st.floats(-1e6, 1e6, allow_nan=False),
    gap=st.floats(1e-9, 1e3, allow_nan=False),
)
def test_readable_thresholds_split_where_the_data_splits(low, gap):
    high = low + gap
    if not high > low:
        return
    threshold = _readable_threshold(low, high)
    assert low <= threshold < high
    shortest = len(np.format_float_positional(low, trim="-"))
    assert len(np.format_float_positional(threshold, trim="-")) <= shortest


def test_readable_threshold_examples():
    assert _readable_threshold(0.3333, 0.36) == 0.34
    assert _readable_threshold(0.25, 0.4) == 0.3
    assert _readable_threshold(85.2, 86.5) == 86
    assert _readable_threshold(-0.05, 0.2) == 0


# --- options of the aggregation -------------------------------------------------------------------


def test_hand_computed_profit_with_every_cost():
    log = pd.DataFrame({
        "customer_id": [1, 1, 1, 2, 2],
        "amount": [100.0, 50.0, -50.0, 80.0, 20.0],
        "category": ["books", "home", "home", "books", "toys"],
        "is_return": [False, False, True, False, False],
        "is_promotion": [False, True, True, False, True],
    })  # fmt: skip
    contacts = pd.DataFrame({"customer_id": [1, 1, 2], "kind": ["call", "chat", "call"]})
    marketing = pd.DataFrame({"customer_id": [2], "cost": [4.0]})
    costs = Costs(
        margin_rate=0.4, promotion_discount_rate=0.1, return_handling_cost=6.0,
        contact_cost={"call": 9.0, "chat": 5.0}, service_contacts=contacts, marketing=marketing,
    )  # fmt: skip
    table = customer_profitability(log, costs, min_categories=2).customers
    first, second = table.loc[1], table.loc[2]
    # customer 1: net revenue 100; goods 60; promotion 0.1 * (50 - 50); return 6; service 14
    assert first["net_profit"] == pytest.approx(100 - 60 - 0 - 6 - 14)
    assert first["promotion_cost"] == 0
    assert first["return_rate"] == 0.5
    assert first["service_intensity"] == 1.0
    assert first["spend_per_category"] == 75.0
    # customer 2: net revenue 100; goods 60; promotion 2; service 9; marketing 4
    assert second["net_profit"] == pytest.approx(100 - 60 - 2 - 9 - 4)
    assert second["promotion_share"] == 0.5
    assert table["is_cross_buyer"].tolist() == [True, True]
    three = customer_profitability(log, costs, min_categories=3).customers
    assert not three["is_cross_buyer"].any()
    flat = customer_profitability(log, Costs(margin_rate=0.4, contact_cost=7.0,
                                             service_contacts=contacts)).customers  # fmt: skip
    assert flat["service_cost"].tolist() == [14.0, 7.0]


def test_without_a_promotion_column(small_crm):
    crm = small_crm
    log = crm.transactions.drop(columns="is_promotion")
    table = customer_profitability(
        log, costs_of(crm, promotion_discount_rate=0.0), promotion=None
    ).customers
    assert (table["promotion_cost"] == 0).all()
    assert (table["promotion_share"] == 0).all()


def test_a_window_counts_what_it_leaves_out(small_crm):
    crm = small_crm
    start, end = pd.Timestamp("2023-03-01"), pd.Timestamp("2023-04-01")
    inside = crm.transactions["timestamp"].between(start, end, inclusive="left")
    contacts = crm.service_contacts
    contacts_inside = contacts["timestamp"].between(start, end, inclusive="left")
    customers = set(crm.transactions.loc[inside, "customer_id"])
    is_orphan = contacts_inside & ~contacts["customer_id"].isin(customers)
    orphans = contacts[is_orphan]
    assert len(orphans) > 0  # contacts in March about February's orders
    with pytest.warns(UnmatchedCostsWarning, match=f"service_contacts: {len(orphans):,} rows"):
        table = customer_profitability(
            crm.transactions, costs_of(crm), start="2023-03-01", end="2023-03-31"
        )
    outside = table.outside_window.set_index(["table", "reason"])["rows"]
    before = crm.transactions["timestamp"] < start
    assert outside[("transactions", "before start")] == before.sum()
    assert outside[("transactions", "after end")] == (~inside & ~before).sum()
    assert outside[("service_contacts", "after end")] == (contacts["timestamp"] >= end).sum()
    unmatched = table.unmatched_costs.set_index("table").loc["service_contacts"]
    assert unmatched["rows"] == len(orphans)
    assert unmatched["customers"] == orphans["customer_id"].nunique()
    assert unmatched["cost"] == pytest.approx(orphans["cost"].sum())
    by_hand = customer_profitability(
        crm.transactions[inside],
        costs_of(crm, service_contacts=contacts[contacts_inside & ~is_orphan]),
    )
    pd.testing.assert_frame_equal(table.customers, by_hand.customers)
    with pytest.raises(DataQualityError, match="no transactions in the window"):
        customer_profitability(
            crm.transactions, costs_of(crm), start=start, end="2023-03-31", on_unmatched="raise"
        )


# --- bad input ------------------------------------------------------------------------------------


def test_missing_cost_tables(small_crm):
    crm = small_crm
    with pytest.raises(SchemaError, match="the cost tables are missing"):
        cross_sell_profitability(crm.transactions)
    with pytest.raises(SchemaError, match="service contacts cost table is missing"):
        Costs(margin_rate=0.3, service_contacts=None)
    with pytest.raises(SchemaError, match=r"margin_rate=1.3 .*contact_cost=-2"):
        Costs(margin_rate=1.3, contact_cost=-2.0, service_contacts=crm.service_contacts)
    with pytest.raises(SchemaError, match=r"table names and sa\.select"):
        customer_profitability(crm.transactions, costs_of(crm, service_contacts="contacts"))


def test_costs_in_another_column_or_currency(small_crm):
    crm = small_crm
    renamed = crm.service_contacts.rename(columns={"cost": "cost_usd"})
    with pytest.raises(SchemaError, match=r"\['cost'\] not found in the service_contacts table.*"
                       r"cost_usd.*cost_column"):  # fmt: skip
        customer_profitability(crm.transactions, costs_of(crm, service_contacts=renamed))
    in_dollars = crm.service_contacts.assign(currency="USD")
    in_euros = crm.transactions.assign(currency="EUR")
    with pytest.raises(SchemaError, match=(
        rf"different currencies: transactions: {len(in_euros):,} rows in 'EUR'; "
        rf"service_contacts: {len(in_dollars):,} rows in 'USD'"
    )):  # fmt: skip
        customer_profitability(in_euros, costs_of(crm, service_contacts=in_dollars))
    with pytest.raises(SchemaError, match=r"\(Costs\(currency='EUR'\)\)"):
        customer_profitability(crm.transactions, costs_of(crm, service_contacts=in_dollars,
                                                          currency="EUR"))  # fmt: skip
    same = customer_profitability(in_euros, costs_of(crm, currency="EUR"))
    assert len(same.customers) == len(crm.customers)


def test_a_customer_in_costs_but_not_in_transactions_is_counted(small_crm):
    crm = small_crm
    strangers = pd.DataFrame({"customer_id": [90_001, 90_001, 90_002], "cost": [5.0, 7.0, 3.0]})
    contacts = pd.concat([crm.service_contacts[["customer_id", "cost"]], strangers])
    marketing = pd.DataFrame({"customer_id": [1, 90_003], "cost": [2.0, 4.0]})
    with pytest.warns(UnmatchedCostsWarning, match=(
        r"service_contacts: 3 rows of 2 customers costing 15.00; marketing: 1 rows of 1 customers"
    )):  # fmt: skip
        result = cross_sell_profitability(
            crm.transactions, costs_of(crm, service_contacts=contacts, marketing=marketing)
        )
    unmatched = result.unmatched_costs_.set_index("table")
    assert unmatched.loc["service_contacts", ["rows", "customers"]].tolist() == [3, 2]
    assert unmatched.loc["marketing", "cost"] == 4.0
    assert 90_001 not in result.customers_.index
    assert result.customers_.loc[1, "marketing_cost"] == 2.0


def test_bad_rows_are_counted_in_one_error(small_crm):
    crm = small_crm
    log = crm.transactions.copy()
    purchases = log.index[~log["is_return"]]
    returns = log.index[log["is_return"]]
    log.loc[purchases[:3], "amount"] = -5.0
    log.loc[returns[:2], "amount"] = 5.0
    log.loc[purchases[10:14], "category"] = None
    log.loc[purchases[20:21], "customer_id"] = np.nan
    n_rows = len(log)
    with pytest.raises(DataQualityError) as caught:
        customer_profitability(log, costs_of(crm))
    message = str(caught.value)
    for expected in (
        f"column 'amount' of the transactions has negative amounts on purchases in 3 of {n_rows:,}",
        f"positive amounts on returns in 2 of {n_rows:,}",
        "column 'category' of the transactions has missing categories on purchases in 4 of",
        f"column 'customer_id' of the transactions has missing customer ids in 1 of {n_rows:,}",
        "validate_transactions",
    ):
        assert expected in message
    flags = crm.transactions.assign(is_return=crm.transactions["is_return"].astype(int))
    with pytest.raises(DataQualityError, match=r"'is_return' .* values that are not true/false"):
        customer_profitability(flags, costs_of(crm))
    contacts = crm.service_contacts.copy()
    contacts.loc[contacts.index[:4], "cost"] = -1.0
    with pytest.raises(DataQualityError, match=r"negative costs in 4 of"):
        customer_profitability(crm.transactions, costs_of(crm, service_contacts=contacts))
    unpriced = costs_of(crm, contact_cost={"call": 9.0})
    n_other = int((crm.service_contacts["kind"] != "call").sum())
    with pytest.raises(DataQualityError, match=rf"without a unit cost .* in {n_other:,} of"):
        customer_profitability(crm.transactions, unpriced)


def test_bad_options_and_shapes(small_crm):
    crm = small_crm
    costs = costs_of(crm)
    with pytest.raises(SchemaError, match="returns must be flagged"):
        customer_profitability(crm.transactions, costs, columns=Columns())
    with pytest.raises(SchemaError, match=r"\['segment'\] not found in the transactions"):
        customer_profitability(crm.transactions, costs, category="segment")
    with pytest.raises(SchemaError, match="min_categories must be >= 1"):
        customer_profitability(crm.transactions, costs, min_categories=0)
    with pytest.raises(SchemaError, match="must not be after end"):
        customer_profitability(crm.transactions, costs, start="2024-02-01", end="2024-01-01")
    with pytest.raises(SchemaError, match="transactions must be a pandas DataFrame"):
        customer_profitability(crm.transactions.to_dict(), costs)
    table = customer_profitability(crm.transactions, costs)
    with pytest.raises(SchemaError, match="already holds the costs"):
        cross_sell_profitability(table, costs)
    with pytest.raises(SchemaError, match=r"max_depth must be .*min_size must be .*level must"):
        unprofitable_segments(table, max_depth=9, min_size=1, level=1.5)
    with pytest.raises(SchemaError, match="population must be"):
        unprofitable_segments(table, population="everyone")
    with pytest.raises(DataQualityError, match=r"no value for 1,000 of 1,500 customers"):
        unprofitable_segments(table, by=crm.customers["channel"].iloc[:500], population="all")
    only_returns = table.customers.assign(return_rate=np.nan)
    with pytest.raises(DataQualityError, match="no finite value of the drivers"):
        unprofitable_segments(only_returns, population="all")


def test_a_profit_table_gives_the_same_analysis(small_crm):
    crm = small_crm
    table = customer_profitability(crm.transactions, costs_of(crm))
    assert isinstance(table, ProfitTable)
    direct = cross_sell_profitability(crm.transactions, costs_of(crm))
    again = cross_sell_profitability(table)
    assert again.unprofitable_share_ == direct.unprofitable_share_
    pd.testing.assert_frame_equal(again.drivers_, direct.drivers_)
    pd.testing.assert_frame_equal(again.segments_.segments_, direct.segments_.segments_)


# --- value segmentation ---------------------------------------------------------------------------


values_strategy = st.lists(
    st.floats(-1e4, 1e5, allow_nan=False, allow_infinity=False), min_size=1, max_size=300
)


@given(values=values_strategy)
def test_value_tiers_are_ranked_and_sized(values):
    series = pd.Series(values, index=pd.RangeIndex(len(values), name="customer_id"), name="clv")
    tiers = value_tiers(series)
    summary = tiers.summary_
    n = len(values)
    ends = np.ceil(np.array([0.01, 0.05, 0.2]) * n).astype(int)
    sizes = np.diff(np.concatenate([[0], ends, [n]]))
    assert summary["customers"].tolist() == sizes.tolist()
    assert summary.index.tolist() == ["top 1%", "top 1-5%", "top 5-20%", "bottom 80%"]
    assert summary["value"].sum() == pytest.approx(sum(values), abs=1e-6)
    filled = summary.dropna(subset=["min_value"])
    assert (filled["min_value"].to_numpy()[:-1] >= filled["max_value"].to_numpy()[1:]).all()
    assert tiers.labels_.index.equals(series.index)
    assert tiers.labels_.value_counts(sort=False).tolist() == sizes.tolist()


def test_value_tiers_from_a_value_table():
    table = pd.DataFrame({"clv": [5.0, 1.0, 3.0, 3.0], "p_alive": [0.9, 0.1, 0.5, 0.5]},
                         index=["a", "b", "c", "d"])  # fmt: skip
    tiers = value_tiers(table, cuts=(0.25, 0.5), column="clv")
    assert tiers.labels_.astype(str).tolist() == [
        "top 25%",
        "bottom 50%",
        "top 25-50%",
        "bottom 50%",
    ]
    assert tiers.summary_.loc["top 25-50%", "max_value"] == 3.0  # the first of two equal values
    with pytest.raises(SchemaError, match=r"has columns \['clv', 'p_alive'\]; pass column="):
        value_tiers(table)
    with pytest.raises(SchemaError, match="cuts must be increasing"):
        value_tiers(table["clv"], cuts=(0.5, 0.2))
    with pytest.raises(
        DataQualityError, match=r"missing, non-numeric or infinite values for 1 of 4"
    ):
        value_tiers(table["clv"].replace(1.0, np.nan))


def test_value_risk_grid_by_hand():
    values = pd.Series([100.0, 80.0, 60.0, 40.0, 20.0, 10.0, 5.0, 1.0], index=list("abcdefgh"))
    p_alive = pd.Series([0.9, 0.2, 0.95, 0.6, 0.1, 0.8, 0.5, 0.75], index=list("hgfedcba"))
    grid = value_risk_grid(values, p_alive, value_bands=2, risk_edges=(0.0, 0.5, 1.0))
    # top half a, b, c, d have P(alive) 0.75, 0.5, 0.8, 0.1 -> churn 0.25, 0.5, 0.2, 0.9
    top = grid.loc["top 0-50%"]
    assert top.loc["0-0.5", "customers"] == 3
    assert top.loc["0-0.5", "value"] == 240.0
    assert top.loc["0.5-1", "value"] == 40.0
    assert grid["customers"].sum() == 8
    assert grid["share_of_value"].sum() == pytest.approx(1.0)
    churn = value_risk_grid(values, 1 - p_alive, risk_kind="churn", value_bands=2,
                            risk_edges=(0.0, 0.5, 1.0))  # fmt: skip
    pd.testing.assert_frame_equal(churn, grid)
    with pytest.raises(DataQualityError, match="1 customers have a value but no risk"):
        value_risk_grid(values, p_alive.iloc[1:])
    with pytest.raises(DataQualityError, match="outside"):
        value_risk_grid(values, p_alive * 2)
    with pytest.raises(SchemaError, match="risk_edges must increase from 0 to 1"):
        value_risk_grid(values, p_alive, risk_edges=(0.2, 1.0))


@given(values=values_strategy)
def test_whale_curve_properties(values):
    curve = whale_curve(pd.Series(values))
    profits = np.array(values)
    assert curve.total_profit_ == pytest.approx(profits.sum(), abs=1e-6)
    assert curve.peak_profit_ >= curve.total_profit_ - 1e-6
    assert curve.peak_profit_ == pytest.approx(profits[profits > 0].sum() if (profits > 0).any()
                                               else profits.max(), abs=1e-6)  # fmt: skip
    assert curve.value_destroying_share_ == pytest.approx((profits < 0).mean())
    assert curve.total_loss_ == pytest.approx(-profits[profits < 0].sum(), abs=1e-6)
    assert curve.curve_["profit"].is_monotonic_decreasing
    if curve.total_profit_ > 0:
        assert curve.peak_share_ >= 1 - 1e-9
    else:
        assert math.isnan(curve.peak_share_)


def test_whale_curve_of_make_crm(small_crm):
    crm = small_crm
    profit = customer_profitability(crm.transactions, costs_of(crm)).customers["net_profit"]
    curve = whale_curve(profit)
    assert curve.value_destroying_share_ == pytest.approx((profit < 0).mean())
    assert 1.0 < curve.peak_share_ < 2.0
    assert curve.peak_customers_share_ == pytest.approx((profit >= 0).mean(), abs=1e-3)


def test_most_valuable():
    clv = pd.Series({"a": 10.0, "b": 40.0, "c": 30.0, "d": 20.0, "e": 40.0}, name="clv")
    top = most_valuable(clv, 3)
    assert top.index.tolist() == ["b", "e", "c"]
    assert top["cumulative_share"].iloc[-1] == pytest.approx(110 / 140)
    assert len(most_valuable(clv, 10)) == 5
    table = clv.to_frame().assign(segment=list("xyxyx"))
    assert most_valuable(table, 1, column="clv").columns.tolist() == [
        "clv",
        "segment",
        "rank",
        "share_of_value",
        "cumulative_share",
    ]
    with pytest.raises(SchemaError, match="n must be an integer >= 1"):
        most_valuable(clv, 0)


@given(
    rows=st.lists(
        st.tuples(st.integers(1, 40), st.integers(0, 150), st.booleans()), min_size=1, max_size=60
    )
)
def test_distinct_categories_with_few_or_many_categories(rows):
    """Both ways of counting: the customer x category bitmap and, when customers x categories
    outnumber eight cells per row (many customers with different categories), the sort."""
    log = pd.DataFrame(rows, columns=["customer_id", "category", "is_return"])
    log = log.assign(
        category=log["category"].map(lambda code: f"c{code}"),
        amount=np.where(log["is_return"], -1.0, 2.0),
        is_promotion=False,
    )
    table = customer_profitability(
        log, Costs(margin_rate=0.3, service_contacts=pd.DataFrame({"customer_id": [], "cost": []}))
    ).customers
    purchases = log[~log["is_return"]]
    expected = purchases.groupby("customer_id")["category"].nunique()
    counted = table["n_categories"]
    assert counted.reindex(expected.index).tolist() == expected.tolist()
    assert (counted.drop(expected.index) == 0).all()
