import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cvalue import Columns, validate_transactions
from cvalue.errors import DataQualityError, SchemaError
from cvalue.io import RULES

MAPPED = Columns(customer_id="client_id", timestamp="paid_at", amount="net_amount")


def extract(**overrides):
    base = {
        "client_id": ["a", "b", "c", "d"],
        "paid_at": ["2024-01-02", "2024-01-03", "2024-02-10", "2024-03-01"],
        "net_amount": [10.0, 20.5, 7.25, 3.0],
    }
    base.update(overrides)
    return pd.DataFrame(base)


def check_rejected(raw, reason, n_rows, *, columns=MAPPED, message=(), **options):
    """Non-strict: the rows come back with the reason; strict: one message naming everything."""
    result = validate_transactions(raw, columns, **options)
    rejected = result.rejected
    assert (rejected["rejection_reason"] == reason).sum() == n_rows
    assert len(result.clean) + len(rejected) == len(raw)
    row = result.report.reasons.set_index("reason").loc[reason]
    assert row["rows"] == n_rows
    with pytest.raises(DataQualityError) as caught:
        validate_transactions(raw, columns, strict=True, **options)
    text = str(caught.value)
    assert f"column {row['column']!r}" in text
    assert f"in {n_rows:,} rows" in text
    assert "e.g. row" in text
    assert "fix:" in text
    for phrase in message:
        assert phrase in text
    return result


def test_clean_extract_passes_with_canonical_names():
    result = validate_transactions(extract(), MAPPED, strict=True)
    assert list(result.clean.columns) == ["customer_id", "timestamp", "amount"]
    assert pd.api.types.is_datetime64_any_dtype(result.clean["timestamp"])
    assert result.rejected.empty
    assert result.report.n_rejected == 0
    assert result.report.n_clean == 4


@pytest.mark.parametrize("missing", [None, np.nan, "", "  "])
def test_missing_customer_ids(missing):
    raw = extract(client_id=["a", missing, "c", missing])
    result = check_rejected(raw, "missing_customer_id", 2, message=["'client_id'", "missing"])
    assert result.rejected.index.tolist() == [1, 3]


def test_missing_and_unparsable_timestamps():
    raw = extract(paid_at=["2024-01-02", None, "not a date", "2024-13-45"])
    result = check_rejected(raw, "unparsable_timestamp", 2, message=["'paid_at'", "ISO dates"])
    assert result.report.reasons.set_index("reason").loc["missing_timestamp", "rows"] == 1
    assert result.clean.index.tolist() == [0]


def test_nat_timestamps_in_a_datetime_column():
    raw = extract(paid_at=pd.to_datetime(["2024-01-02", None, "2024-02-01", None]))
    check_rejected(raw, "missing_timestamp", 2, message=["'paid_at'", "missing timestamp"])


def test_string_and_nan_amounts():
    raw = extract(net_amount=["10.5", "ten", np.nan, "inf"])
    result = check_rejected(raw, "non_numeric_amount", 2, message=["'net_amount'", "finite"])
    assert result.report.reasons.set_index("reason").loc["missing_amount", "rows"] == 1
    assert result.clean["amount"].tolist() == [10.5]


def test_negative_amounts_are_rejected_unless_flagged_as_returns():
    raw = extract(net_amount=[10.0, -5.0, -2.0, 4.0])
    check_rejected(raw, "negative_amount", 2, message=["is_return"])
    flagged = raw.assign(returned=[False, True, "yes", "no"])
    columns = Columns(
        customer_id="client_id", timestamp="paid_at", amount="net_amount", is_return="returned"
    )
    result = validate_transactions(flagged, columns, strict=True)
    assert result.clean["amount"].tolist() == [10.0, -5.0, -2.0, 4.0]
    assert result.clean["is_return"].tolist() == [False, True, True, False]


def test_returns_recorded_as_positive_amounts_count_negative():
    raw = extract(net_amount=[10.0, 5.0, 2.0, 4.0]).assign(returned=[0, 1, 0, 0])
    columns = Columns(
        customer_id="client_id", timestamp="paid_at", amount="net_amount", is_return="returned"
    )
    assert validate_transactions(raw, columns).clean["amount"].tolist() == [10.0, -5.0, 2.0, 4.0]


def test_unreadable_return_flags():
    raw = extract().assign(returned=[True, "maybe", None, False])
    columns = Columns(
        customer_id="client_id", timestamp="paid_at", amount="net_amount", is_return="returned"
    )
    check_rejected(raw, "invalid_return_flag", 2, columns=columns, message=["'returned'"])


def test_exact_duplicate_rows_keep_the_first():
    raw = pd.concat([extract(), extract().iloc[[1, 1, 3]]], ignore_index=True)
    result = check_rejected(raw, "duplicate_row", 3, message=["duplicate", "join"])
    assert result.clean.index.tolist() == [0, 1, 2, 3]


def test_duplicate_order_ids_reject_every_row_of_the_order():
    raw = extract().assign(order=[1, 2, 2, 3])
    columns = Columns(
        customer_id="client_id", timestamp="paid_at", amount="net_amount", order_id="order"
    )
    result = check_rejected(raw, "duplicate_order_id", 2, columns=columns, message=["'order'"])
    assert result.rejected.index.tolist() == [1, 2]


def test_missing_order_ids():
    raw = extract().assign(order=[1, None, 3, 4])
    columns = Columns(
        customer_id="client_id", timestamp="paid_at", amount="net_amount", order_id="order"
    )
    check_rejected(raw, "missing_order_id", 1, columns=columns)


def test_timestamps_after_the_observation_end():
    raw = extract(paid_at=["2024-01-02", "2024-01-31 23:59", "2024-02-01", "2025-01-01"])
    result = check_rejected(
        raw, "after_observation_end", 2, observation_end="2024-01-31", message=["observation_end"]
    )
    assert result.clean.index.tolist() == [0, 1]


def test_mixed_time_zones_are_rejected_or_converted():
    raw = extract(
        paid_at=[
            "2024-01-02T10:00:00+01:00",
            "2024-01-03T10:00:00+01:00",
            "2024-01-04T10:00:00Z",
            "2024-01-05T10:00:00",
        ]
    )
    check_rejected(raw, "mixed_time_zone", 2, message=["timezone="])
    converted = validate_transactions(raw, MAPPED, timezone="UTC", strict=True).clean
    assert str(converted["timestamp"].dt.tz) == "UTC"
    assert converted["timestamp"].iloc[0] == pd.Timestamp("2024-01-02T09:00:00Z")
    assert converted["timestamp"].iloc[3] == pd.Timestamp("2024-01-05T10:00:00Z")


def test_timestamp_objects_from_different_zones():
    stamps = pd.Series(
        [
            pd.Timestamp("2024-01-02 10:00", tz="Europe/Berlin"),
            pd.Timestamp("2024-01-03 10:00", tz="Europe/Berlin"),
            pd.Timestamp("2024-01-04 10:00", tz="America/New_York"),
            pd.Timestamp("2024-01-05 10:00", tz="Europe/Berlin"),
        ],
        dtype=object,
    )
    result = check_rejected(extract(paid_at=stamps), "mixed_time_zone", 1)
    assert str(result.clean["timestamp"].dt.tz) == "Europe/Berlin"


def test_every_problem_is_reported_at_once():
    raw = extract(client_id=["a", None, "c", "d"], net_amount=[1.0, 2.0, "x", -1.0])
    with pytest.raises(DataQualityError) as caught:
        validate_transactions(raw, MAPPED, strict=True)
    text = str(caught.value)
    assert "3 of 4 rows rejected by 3 rule(s)" in text
    for column in ("'client_id'", "'net_amount'"):
        assert column in text


def test_a_row_gets_the_first_rule_it_breaks():
    raw = extract(client_id=[None, "b", "c", "d"], paid_at=[None, "2024-01-03", "x", "2024-03-01"])
    reasons = validate_transactions(raw, MAPPED).rejected["rejection_reason"]
    assert reasons.tolist() == ["missing_customer_id", "unparsable_timestamp"]


def test_an_empty_extract_is_an_error():
    with pytest.raises(DataQualityError, match=r"no rows.*query's filters"):
        validate_transactions(extract().iloc[0:0], MAPPED)


def test_unknown_columns_list_the_columns_that_exist():
    with pytest.raises(SchemaError) as caught:
        validate_transactions(extract(), Columns(customer_id="customer", timestamp="paid_at",
                                                 amount="net_amount"))  # fmt: skip
    text = str(caught.value)
    assert "'customer' (as customer_id)" in text
    assert "['client_id', 'paid_at', 'net_amount']" in text
    assert "cvalue.Columns(" in text


@pytest.mark.parametrize("data", [[{"customer_id": 1}], {"customer_id": [1]}, None, "tx.csv"])
def test_non_dataframe_input(data):
    with pytest.raises(SchemaError, match=r"expected a pandas DataFrame.*read_transactions"):
        validate_transactions(data)


def test_extra_columns_and_the_original_index_are_kept():
    raw = extract().assign(store=["x", "y", "z", "w"]).set_axis([10, 11, 12, 13])
    clean = validate_transactions(raw, MAPPED).clean
    assert clean.index.tolist() == [10, 11, 12, 13]
    assert clean["store"].tolist() == ["x", "y", "z", "w"]


def test_rejected_rows_keep_their_original_values():
    raw = extract(net_amount=[1.0, "oops", 3.0, 4.0])
    rejected = validate_transactions(raw, MAPPED).rejected
    assert rejected.loc[1, "net_amount"] == "oops"
    assert rejected.loc[1, "rejection_column"] == "net_amount"


def test_rules_have_unique_reasons():
    reasons = [rule.reason for rule in RULES]
    assert len(reasons) == len(set(reasons))


@settings(deadline=None)
@given(
    ids=st.lists(st.one_of(st.none(), st.sampled_from(["a", "b", "c"])), min_size=1, max_size=30),
    data=st.data(),
)
def test_no_row_is_lost(ids, data):
    n_rows = len(ids)
    amounts = data.draw(
        st.lists(
            st.one_of(st.none(), st.floats(-10, 100), st.just("x")),
            min_size=n_rows,
            max_size=n_rows,
        )
    )
    days = data.draw(st.lists(st.integers(0, 40), min_size=n_rows, max_size=n_rows))
    raw = pd.DataFrame({
        "customer_id": ids,
        "timestamp": (pd.Timestamp("2024-01-01") + pd.to_timedelta(days, "D")).astype(str),
        "amount": pd.Series(amounts, dtype=object),
    })  # fmt: skip
    result = validate_transactions(raw, observation_end="2024-02-01")
    assert len(result.clean) + len(result.rejected) == n_rows
    assert sorted([*result.clean.index, *result.rejected.index]) == list(range(n_rows))
    assert result.report.reasons["rows"].sum() == len(result.rejected)
    assert (result.clean["amount"] >= 0).all()
    assert result.clean["customer_id"].notna().all()


def test_identical_rows_can_be_kept_as_real_repeat_purchases():
    raw = pd.concat([extract(), extract().iloc[[1]]], ignore_index=True)
    result = validate_transactions(raw, MAPPED, duplicates="keep", strict=True)
    assert len(result.clean) == 5


def test_default_mapping_picks_up_canonical_optional_columns():
    raw = pd.DataFrame({
        "customer_id": [1, 1], "timestamp": ["2024-01-01", "2024-01-05"], "amount": [5.0, -5.0],
        "is_return": [False, True], "order_id": [10, 11],
    })  # fmt: skip
    result = validate_transactions(raw, strict=True)
    assert result.clean["is_return"].tolist() == [False, True]
    assert result.clean["order_id"].tolist() == [10, 11]
