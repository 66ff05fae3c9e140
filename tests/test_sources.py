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
    assert read["amount"].tolist() == ["3.5", "4"]  # as stored: validation reads the numbers
    assert validate_transactions(read).clean["amount"].tolist() == [3.5, 4.0]


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


# --- CRM exports as they are (issue 13, items 1-3) ---------------------------------------------

CYRILLIC = Columns(customer_id="Клиент", timestamp="Дата", amount="Сумма", order_id="Заказ",
                   channel="Канал")  # fmt: skip
CYRILLIC_EXPORT = (
    "Клиент;Заказ;Дата;Сумма;Канал\n"
    "007;0001;05.07.2024;1 234,50;Интернет-магазин\n"
    "7;0002;20.07.2024 18:30;99,90;Розница\n"
    "007;0003;01.08.2024;1\u00a0000;Интернет-магазин\n"
    "0042;0004;12.08.2024;12,5;Розница\n"
)


def test_a_cp1251_export_with_semicolons_decimal_commas_and_zero_padded_ids(tmp_path):
    path = tmp_path / "export.csv"
    path.write_bytes(CYRILLIC_EXPORT.encode("cp1251"))
    read = read_transactions(path, columns=CYRILLIC, sep=";", encoding="cp1251", decimal=",",
                             thousands=" ")  # fmt: skip
    assert read["customer_id"].tolist() == ["007", "7", "007", "0042"]
    assert read["order_id"].tolist() == ["0001", "0002", "0003", "0004"]
    assert read["amount"].tolist()[0] == "1 234,50"  # nothing converted while reading
    clean = validate_transactions(read, strict=True).clean
    assert clean["channel"].tolist()[:2] == ["Интернет-магазин", "Розница"]
    assert clean["amount"].tolist() == [1234.5, 99.9, 1000.0, 12.5]
    assert (
        clean["timestamp"].tolist()
        == pd.to_datetime(
            ["2024-07-05", "2024-07-20 18:30", "2024-08-01", "2024-08-12"], format="ISO8601"
        ).tolist()
    )
    assert clean.groupby("customer_id").size().to_dict() == {"0042": 1, "007": 2, "7": 1}


def test_leading_zeros_of_ids_survive_a_plain_csv(tmp_path):
    path = tmp_path / "orders.csv"
    path.write_text("client_id,paid_at,net_amount\n007,2024-01-02,5\n7,2024-01-03,6\n")
    clean = validate_transactions(read_transactions(path, columns=MAPPED), strict=True).clean
    assert clean["customer_id"].tolist() == ["007", "7"]


@pytest.mark.parametrize("sep", [",", None])
@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "UTF8"])
def test_a_utf8_byte_order_mark_never_reaches_the_column_names(tmp_path, sep, encoding):
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeffclient_id,paid_at,net_amount\n1,2024-01-02,5\n".encode())
    read = read_transactions(path, columns=MAPPED, sep=sep, encoding=encoding)
    assert list(read.columns) == CANONICAL
    assert read["customer_id"].tolist() == ["1"]


def test_a_file_in_another_encoding_names_the_encoding_option(tmp_path):
    path = tmp_path / "export.csv"
    path.write_bytes(CYRILLIC_EXPORT.encode("cp1251"))
    for chunksize in (None, 2):
        with pytest.raises(SchemaError, match=r"not utf-8 text.*encoding='cp1251'"):
            read_transactions(path, columns=CYRILLIC, sep=";", chunksize=chunksize)
    with pytest.raises(SchemaError, match="unknown encoding='klingon'"):
        read_transactions(path, columns=CYRILLIC, sep=";", encoding="klingon")


def test_a_folder_of_parquet_files(orders, tmp_path):
    folder = tmp_path / "orders"
    folder.mkdir()
    orders.iloc[:2].to_parquet(folder / "part-0.parquet")
    orders.iloc[2:].to_parquet(folder / "part-1.parquet")
    read = read_transactions(folder, columns=MAPPED, extra_columns=["store"])
    expected = read_transactions(orders, columns=MAPPED, extra_columns=["store"])
    pd.testing.assert_frame_equal(read, expected)
    with pytest.raises(SchemaError, match=r"\['customer'\] not found in folder 'orders'"):
        read_transactions(folder, columns=Columns(customer_id="customer", timestamp="paid_at",
                                                  amount="net_amount"))  # fmt: skip


def test_a_partitioned_parquet_folder_and_an_unreadable_one(orders, tmp_path):
    orders.to_parquet(tmp_path / "by_store", partition_cols=["store"])
    read = read_transactions(tmp_path / "by_store", columns=MAPPED, extra_columns=["store"])
    assert sorted(read["amount"]) == sorted(orders["net_amount"])
    (tmp_path / "broken.parquet").write_text("not parquet")
    with pytest.raises(SchemaError, match=r"cannot read .* as Parquet"):
        read_transactions(tmp_path / "broken.parquet", columns=MAPPED)


def test_format_options_are_recorded_for_validation(tmp_path):
    frame = pd.DataFrame({"client_id": ["a", "b"], "paid_at": ["05.07.2024", "06.07.2024"],
                          "net_amount": ["1.234,5", "2,5"]})  # fmt: skip
    read = read_transactions(frame, columns=MAPPED, dayfirst=True, decimal=",", thousands=".")
    assert read.attrs["cvalue_formats"] == {"date_format": None, "dayfirst": True,
                                            "decimal": ",", "thousands": "."}  # fmt: skip
    assert frame.attrs == {}
    clean = validate_transactions(read, strict=True).clean
    assert clean["timestamp"].dt.month.tolist() == [7, 7]
    assert clean["amount"].tolist() == [1234.5, 2.5]
    same = validate_transactions(read, dayfirst=True, decimal=",", strict=True).clean
    pd.testing.assert_frame_equal(same, clean)
    with pytest.raises(SchemaError, match=r"dayfirst=False \(read_transactions was given"):
        validate_transactions(read, dayfirst=False)
    with pytest.raises(SchemaError, match="one character"):
        read_transactions(frame, columns=MAPPED, decimal=",,")
