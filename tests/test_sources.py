import pandas as pd
import pytest
import sqlalchemy as sa

from cvalue import Columns, read_transactions, validate_transactions
from cvalue.errors import DatabaseError, SchemaError

MAPPED = Columns(customer_id="client_id", timestamp="paid_at", amount="net_amount")
CANONICAL = ["customer_id", "timestamp", "amount"]


@pytest.fixture
def orders():
    return pd.DataFrame({
        "client_id": [1, 1, 2, 3],
        "paid_at": pd.to_datetime(["2024-01-02", "2024-01-09", "2024-01-03", "2024-02-01"]),
        "net_amount": [10.0, 12.5, 7.0, 3.0],
        "store": ["x", "y", "x", "z"],
    })  # fmt: skip


def test_dataframe_source_selects_and_renames(orders):
    read = read_transactions(orders, columns=MAPPED, extra_columns=["store"])
    assert list(read.columns) == [*CANONICAL, "store"]
    assert read["amount"].tolist() == orders["net_amount"].tolist()


def test_csv_and_parquet_sources(orders, tmp_path):
    orders.to_csv(tmp_path / "orders.csv", index=False)
    orders.to_parquet(tmp_path / "orders.parquet")
    from_csv = read_transactions(tmp_path / "orders.csv", columns=MAPPED)
    from_parquet = read_transactions(str(tmp_path / "orders.parquet"), columns=MAPPED)
    assert list(from_csv.columns) == CANONICAL
    assert from_parquet.equals(read_transactions(orders, columns=MAPPED))
    chunked = read_transactions(tmp_path / "orders.csv", columns=MAPPED, chunksize=3)
    assert chunked.equals(from_csv)
    clean = validate_transactions(from_csv, strict=True).clean
    assert clean["timestamp"].tolist() == orders["paid_at"].tolist()


def test_whitespace_separated_file_with_a_sniffed_separator(tmp_path):
    (tmp_path / "log.txt").write_text(
        "client_id paid_at net_amount\n1 2024-01-02 3.5\n2 2024-01-03 4\n"
    )
    read = read_transactions(tmp_path / "log.txt", columns=MAPPED, sep=r"\s+")
    assert read["amount"].tolist() == [3.5, 4.0]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_file_with_unknown_columns_lists_what_exists(orders, tmp_path, suffix):
    path = tmp_path / f"orders{suffix}"
    orders.to_csv(path, index=False) if suffix == ".csv" else orders.to_parquet(path)
    with pytest.raises(SchemaError, match=r"\['customer'\] not found.*'client_id', 'paid_at'"):
        read_transactions(
            path, columns=Columns(customer_id="customer", timestamp="paid_at", amount="net_amount")
        )


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(SchemaError, match="does not exist"):
        read_transactions(tmp_path / "nope.csv")
    (tmp_path / "orders.xlsx").write_bytes(b"")
    with pytest.raises(SchemaError, match=r"cannot tell the format.*\.csv or \.parquet"):
        read_transactions(tmp_path / "orders.xlsx")


def test_unsupported_source_type():
    with pytest.raises(SchemaError, match="cannot read transactions from a list"):
        read_transactions([1, 2, 3])  # type: ignore[arg-type]


def test_database_table(engine, load_table, orders):
    table = load_table(engine, orders)
    read = read_transactions(engine, table=table, columns=MAPPED, extra_columns=["store"])
    assert list(read.columns) == [*CANONICAL, "store"]
    assert read.sort_values(["customer_id", "timestamp"])["amount"].tolist() == [10.0, 12.5, 7.0,
                                                                                3.0]  # fmt: skip
    clean = validate_transactions(read, strict=True).clean
    assert len(clean) == 4


def test_database_url_chunks_and_progress(engine, load_table, orders):
    table = load_table(engine, orders)
    whole = read_transactions(engine, table=table, columns=MAPPED)
    chunked = read_transactions(engine, table=table, columns=MAPPED, chunksize=3, progress=True)
    pd.testing.assert_frame_equal(whole, chunked)
    if engine.dialect.name != "postgresql":  # the server URL is the fixture's
        by_url = read_transactions(engine.url.render_as_string(False), table=table, columns=MAPPED)
        pd.testing.assert_frame_equal(whole, by_url)


def test_database_select(engine, load_table, orders):
    table = load_table(engine, orders)
    source = sa.table(table, sa.column("client_id"), sa.column("paid_at"), sa.column("net_amount"))
    query = sa.select(source).where(source.c.net_amount > 5)
    read = read_transactions(engine, query=query, columns=MAPPED)
    assert sorted(read["amount"]) == [7.0, 10.0, 12.5]
    with pytest.raises(SchemaError, match=r"\['store'\] not found in the query"):
        read_transactions(engine, query=query, columns=MAPPED, extra_columns=["store"])


def test_injection_through_a_table_name_is_harmless(engine, load_table, orders):
    table = load_table(engine, orders)
    hostile = f"{table}; DROP TABLE {table}"
    with pytest.raises(SchemaError, match="not found"):
        read_transactions(engine, table=hostile, columns=MAPPED)
    assert len(read_transactions(engine, table=table, columns=MAPPED)) == 4


def test_hostile_column_names_are_quoted(engine, load_table):
    name = 'amount"; DROP TABLE x; --'
    frame = pd.DataFrame({"id": [1], "ts": pd.to_datetime(["2024-01-01"]), name: [2.0]})
    table = load_table(engine, frame)
    columns = Columns(customer_id="id", timestamp="ts", amount=name)
    read = read_transactions(engine, table=table, columns=columns)
    assert read["amount"].tolist() == [2.0]


def test_unknown_table_and_columns(engine, load_table, orders):
    table = load_table(engine, orders)
    with pytest.raises(SchemaError, match=rf"table 'nope' not found.*'{table}'"):
        read_transactions(engine, table="nope", columns=MAPPED)
    with pytest.raises(SchemaError, match=r"\['paid'\] not found in table.*'paid_at'"):
        read_transactions(engine, table=table, columns=Columns(customer_id="client_id",
                                                               timestamp="paid",
                                                               amount="net_amount"))  # fmt: skip


def test_table_or_query_exactly_once(engine):
    with pytest.raises(SchemaError, match="exactly one of table= or query="):
        read_transactions(engine, columns=MAPPED)


def test_unreachable_database_hides_the_password():
    url = "postgresql+psycopg://scott:tiger-secret@127.0.0.1:1/crm"
    with pytest.raises(DatabaseError) as caught:
        read_transactions(url, table="orders")
    assert "tiger-secret" not in str(caught.value)
    assert "***" in str(caught.value)


def test_missing_driver_is_a_clear_error():
    with pytest.raises(DatabaseError, match=r"driver installed.*cvalue\[duckdb\]"):
        read_transactions("nosuchdb://host/db", table="orders")


def test_read_only_opens_duckdb_files_for_reading_and_memory_as_usual(tmp_path):
    from cvalue.io._database import connect

    url = f"duckdb:///{tmp_path / 'crm.duckdb'}"
    writable = connect(url)
    with writable.begin() as connection:
        connection.execute(sa.text("CREATE TABLE t AS SELECT 1 AS x"))
    writable.dispose()
    reading = connect(url, read_only=True)
    try:
        with reading.connect() as connection:
            assert connection.execute(sa.text("SELECT x FROM t")).scalar() == 1
            with pytest.raises(sa.exc.DBAPIError, match="read-only"):
                connection.execute(sa.text("CREATE TABLE u AS SELECT 2 AS y"))
    finally:
        reading.dispose()
    memory = connect("duckdb:///:memory:", read_only=True)  # nothing to protect: opens as usual
    with memory.begin() as connection:
        connection.execute(sa.text("CREATE TABLE u AS SELECT 2 AS y"))
    memory.dispose()
