"""write_scores on real SQLite, DuckDB and PostgreSQL: round trips, atomicity, whose table it is,
hostile names.

Atomicity is tested here with exceptions in the middle of the rows and after the old table was
dropped inside the transaction; tests/test_faults.py breaks writes the hard ways (SIGKILL, the
server stopped, a full disk, concurrent runs, readers during swaps).
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import socket
import threading
import tracemalloc
import uuid

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from cvalue.errors import DatabaseError, ForeignTableError, QueryError, SchemaError
from cvalue.io import _ownership, writeback
from cvalue.io.writeback import (
    MARKS_TABLE,
    STAGING_PREFIX,
    WriteResult,
    check_scores_table,
    write_scores,
)

# the types each column of `sample_scores` is read back with
READ_TYPES: dict[str, sa.types.TypeEngine[object]] = {
    "customer_id": sa.BigInteger(),
    "clv": sa.Double(),
    "n_orders": sa.BigInteger(),
    "segment": sa.Text(),
    "last_purchase": sa.DateTime(),
    "first_contact": sa.DateTime(timezone=True),
    "is_active": sa.Boolean(),
    "run_id": sa.Text(),
    "scored_at": sa.DateTime(),
}
KINDS = {
    "customer_id": sa.Integer,
    "clv": sa.Float,
    "n_orders": sa.Integer,
    "segment": sa.String,
    "last_purchase": sa.DateTime,
    "first_contact": sa.DateTime,
    "is_active": sa.Boolean,
    "run_id": sa.String,
    "scored_at": sa.DateTime,
}


# --- helpers --------------------------------------------------------------------------------------


def unique_name(prefix: str = "scores") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def sample_scores(n_rows: int = 40, seed: int = 0) -> pd.DataFrame:
    """Scores with every kind of column, missing values included."""
    rng = np.random.default_rng(seed)
    clv = rng.gamma(2.0, 50.0, n_rows)
    clv[::7] = np.nan
    segments = pd.array(rng.choice(["retail", "corporate", 'o\'brien "quoted"'], n_rows), "str")
    segments[::5] = pd.NA
    last = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 10**9, n_rows), "s")
    first = (last - pd.Timedelta("400D")).tz_localize("Europe/Paris")
    index = pd.Index(rng.permutation(n_rows) * 3 + 1_000_000_000_000, name="customer_id")
    return pd.DataFrame(
        {
            "clv": clv,
            "n_orders": rng.integers(0, 50, n_rows),
            "segment": segments,
            "last_purchase": last.floor("us"),
            "first_contact": first.floor("us"),
            "is_active": rng.random(n_rows) < 0.5,
        },
        index=index,
    )


def as_stored(scores: pd.DataFrame) -> pd.DataFrame:
    """What the table should hold: the index as a column, aware times as naive UTC."""
    expected = scores.reset_index()
    for name in expected.columns:
        if isinstance(expected[name].dtype, pd.DatetimeTZDtype):
            expected[name] = expected[name].dt.tz_convert("UTC").dt.tz_localize(None)
    return expected


def plain(values: pd.Series) -> list[object]:
    """Python values with None for missing, naive UTC timestamps: comparable across backends."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        values = values.dt.tz_convert("UTC").dt.tz_localize(None)
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        values = values.astype("datetime64[us]")
    objects = values.astype(object)
    return [None if pd.isna(value) else value for value in objects.tolist()]


def read_table(
    engine: sa.Engine, name: str, types: dict[str, sa.types.TypeEngine[object]] | None = None,
    schema: str | None = None,
) -> pd.DataFrame:  # fmt: skip
    types = types or READ_TYPES
    table = sa.table(name, *(sa.column(column, kind) for column, kind in types.items()),
                     schema=schema)  # fmt: skip
    with engine.connect() as connection:
        return pd.read_sql(sa.select(table), connection)


def count_rows(engine: sa.Engine, name: str) -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(sa.select(sa.func.count()).select_from(sa.table(name))).scalar_one()
        )


def table_names(engine: sa.Engine) -> list[str]:
    with engine.connect() as connection:
        return sa.inspect(connection).get_table_names()


def assert_holds(engine: sa.Engine, name: str, scores: pd.DataFrame) -> pd.DataFrame:
    """The table holds exactly the scores (order aside); returns what was read."""
    actual = read_table(engine, name).sort_values("customer_id", ignore_index=True)
    expected = as_stored(scores).sort_values("customer_id", ignore_index=True)
    assert len(actual) == len(expected)
    for column in expected.columns:
        assert plain(actual[column]) == plain(expected[column]), column
    return actual


def assert_no_staging_tables(engine: sa.Engine) -> None:
    assert [name for name in table_names(engine) if name.startswith(STAGING_PREFIX)] == []


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class FailOnCall:
    """Stands in for a module function; raises on its n-th call, else calls the original."""

    def __init__(self, original, fail_on: int) -> None:  # fail_on=0: only count
        self.original = original
        self.fail_on = fail_on
        self.calls = 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.calls == self.fail_on:
            raise RuntimeError(f"injected failure on call {self.calls}")
        return self.original(*args, **kwargs)


# --- round trips ----------------------------------------------------------------------------------


def test_replace_round_trip(engine: sa.Engine):
    scores = sample_scores(40)
    name = unique_name()
    result = write_scores(scores, engine, name, run_id="run-1")
    assert isinstance(result, WriteResult)
    assert (result.table, result.schema, result.rows_written, result.run_id, result.mode) == (
        name, None, 40, "run-1", "replace",
    )  # fmt: skip
    stored = assert_holds(engine, name, scores.assign(run_id="run-1"))
    assert set(stored["scored_at"]) == {pd.Timestamp(result.scored_at).tz_localize(None)}
    assert result.scored_at.utcoffset() == pd.Timedelta(0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.rows_written = 0  # type: ignore[misc]


def test_column_types_map_to_database_types(engine: sa.Engine):
    name = unique_name()
    write_scores(sample_scores(10), engine, name)
    with engine.connect() as connection:
        columns = {c["name"]: c["type"] for c in sa.inspect(connection).get_columns(name)}
    assert list(columns) == list(KINDS)
    for column, generic in KINDS.items():
        assert isinstance(columns[column], generic), (column, columns[column])
    # no float or bool in an integer column, no integer in a float one
    assert not isinstance(columns["n_orders"], sa.Float | sa.Boolean)
    assert not isinstance(columns["clv"], sa.Integer)


def test_replace_replaces_the_rows_and_the_columns(engine: sa.Engine):
    name = unique_name()
    write_scores(sample_scores(30, seed=1), engine, name)
    newer = sample_scores(12, seed=2).drop(columns=["segment"]).assign(tier=1)
    write_scores(newer, engine, name)
    with engine.connect() as connection:
        columns = [c["name"] for c in sa.inspect(connection).get_columns(name)]
    assert "segment" not in columns
    assert "tier" in columns
    assert count_rows(engine, name) == 12
    assert_no_staging_tables(engine)


def test_chunks_give_the_same_table_as_one_batch(engine: sa.Engine):
    scores = sample_scores(23, seed=3)
    whole, chunked = unique_name(), unique_name()
    write_scores(scores, engine, whole, run_id="r")
    write_scores(scores, engine, chunked, run_id="r", chunk_size=4)
    first = read_table(engine, whole).drop(columns="scored_at").sort_values("customer_id")
    second = read_table(engine, chunked).drop(columns="scored_at").sort_values("customer_id")
    for column in first.columns:
        assert plain(first[column]) == plain(second[column]), column


def chunks_of(scores: pd.DataFrame, sizes: list[int]):
    """The frame as a generator of consecutive chunks of ``sizes`` rows (one chunk at a time)."""
    start = 0
    for size in sizes:
        yield scores.iloc[start : start + size]
        start += size


@pytest.mark.parametrize("mode", ["replace", "append"])
def test_a_generator_of_chunks_gives_the_table_of_one_frame(engine: sa.Engine, mode):
    """A job streams its customers' scores chunk by chunk: the same table, memory for a chunk."""
    scores = sample_scores(37, seed=4)
    whole, streamed = unique_name(), unique_name()
    write_scores(scores, engine, whole, run_id="r", mode=mode)
    result = write_scores(chunks_of(scores, [10, 0, 20, 7]), engine, streamed, run_id="r",
                          mode=mode, chunk_size=6)  # fmt: skip
    assert result.rows_written == 37
    first = read_table(engine, whole).drop(columns="scored_at").sort_values("customer_id")
    second = read_table(engine, streamed).drop(columns="scored_at").sort_values("customer_id")
    for column in first.columns:
        assert plain(first[column]) == plain(second[column]), column
    assert_no_staging_tables(engine)


@pytest.mark.parametrize("mode", ["replace", "append"])
def test_a_generator_failing_midway_leaves_the_old_table(engine: sa.Engine, mode):
    name = unique_name()
    old = sample_scores(30, seed=8)
    write_scores(old, engine, name, mode=mode, run_id="old")
    new = sample_scores(50, seed=9)

    def failing():
        yield new.iloc[:20]
        yield new.iloc[20:40]
        raise RuntimeError("the scoring of the third chunk failed")

    with pytest.raises(RuntimeError, match="third chunk"):
        write_scores(failing(), engine, name, mode=mode)
    assert_holds(engine, name, old.assign(run_id="old"))
    assert_no_staging_tables(engine)


@pytest.mark.parametrize("mode", ["replace", "append"])
def test_before_swap_sees_every_row_and_its_updates_land(engine: sa.Engine, mode):
    """A column that needs every row (a rank) is filled in the write's transaction."""
    name = unique_name()
    rng = np.random.default_rng(12)
    scores = pd.DataFrame(
        {"value": rng.permutation(30) * 1.5, "rank": np.nan},
        index=pd.Index(rng.permutation(30) + 100, name="customer_id"),
    )
    seen = []

    def rank(connection: sa.Connection, table: sa.Table) -> None:
        ranked = sa.select(
            table.c.customer_id,
            sa.func.row_number().over(order_by=table.c.value.desc()).label("position"),
        ).subquery("ranked")
        seen.append(connection.execute(sa.select(sa.func.count()).select_from(table)).scalar())
        connection.execute(
            sa.update(table).values(rank=ranked.c.position)
            .where(table.c.customer_id == ranked.c.customer_id)
        )  # fmt: skip

    write_scores(chunks_of(scores, [10, 20]), engine, name, mode=mode, before_swap=rank)
    assert seen == [30]
    types = {"customer_id": sa.BigInteger(), "value": sa.Float(), "rank": sa.Float()}
    stored = read_table(engine, name, types).set_index("customer_id").sort_index()
    expected = scores["value"].rank(ascending=False).sort_index()
    assert plain(stored["rank"]) == plain(expected)
    assert_no_staging_tables(engine)


def _held_by_the_write(engine: sa.Engine, n_chunks: int, rows: int) -> int:
    """Bytes (traced) that a write of fresh chunks holds when it reaches the swap."""
    held: list[int] = []

    def chunks():
        rng = np.random.default_rng(n_chunks)
        for number in range(n_chunks):
            index = pd.Index(np.arange(rows) + number * rows, name="customer_id")
            yield pd.DataFrame({"clv": rng.random(rows), "p_alive": rng.random(rows)}, index=index)

    def measure(connection: sa.Connection, table: sa.Table) -> None:
        gc.collect()
        held.append(tracemalloc.get_traced_memory()[0] - start)

    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        write_scores(chunks(), engine, unique_name(), chunk_size=rows, before_swap=measure)
    finally:
        tracemalloc.stop()
    return held[0]


def test_a_write_holds_no_more_than_a_chunk_whatever_the_number_of_chunks(engine: sa.Engine):
    """Chunks written are let go before the swap (DuckDB kept every registered chunk alive)."""
    rows = 10_000
    chunk_bytes = rows * 3 * 8  # two float columns and the index
    few, many = _held_by_the_write(engine, 3, rows), _held_by_the_write(engine, 15, rows)
    assert many - few < 3 * chunk_bytes, (few, many)


@pytest.mark.parametrize("mode", ["replace", "append"])
def test_before_swap_failing_leaves_the_old_table(engine: sa.Engine, mode):
    name = unique_name()
    old = sample_scores(30, seed=13)
    write_scores(old, engine, name, mode=mode, run_id="old")

    def failing(connection: sa.Connection, table: sa.Table) -> None:
        connection.execute(sa.update(table).values(clv=0.0))
        raise RuntimeError("the report could not be rendered")

    with pytest.raises(RuntimeError, match="report"):
        write_scores(sample_scores(50, seed=14), engine, name, mode=mode, before_swap=failing)
    assert_holds(engine, name, old.assign(run_id="old"))
    assert_no_staging_tables(engine)


def test_a_chunk_unlike_the_first_is_refused_and_nothing_is_written(engine: sa.Engine):
    name = unique_name()
    old = sample_scores(10, seed=1)
    write_scores(old, engine, name, run_id="old")
    new = sample_scores(20, seed=2)
    renamed = new.iloc[10:].rename(columns={"clv": "value"})
    with pytest.raises(SchemaError, match=r"chunk 2 of the scores has columns .*'value'"):
        write_scores(iter([new.iloc[:10], renamed]), engine, name)
    as_text = new.iloc[10:].assign(n_orders=new["n_orders"].iloc[10:].astype(str))
    with pytest.raises(SchemaError, match=r"chunk 2 .*other kinds.*n_orders \(string"):
        write_scores(iter([new.iloc[:10], as_text]), engine, name)
    assert_holds(engine, name, old.assign(run_id="old"))
    # integers where the first chunk had floats are floats, as appending takes them
    floats = new.assign(n_orders=new["n_orders"].astype(float))
    write_scores(iter([floats.iloc[:10], new.iloc[10:]]), engine, name, run_id="new")
    assert count_rows(engine, name) == 20


def test_empty_scores_give_an_empty_table(engine: sa.Engine):
    name = unique_name()
    result = write_scores(sample_scores(5).iloc[:0], engine, name)
    assert result.rows_written == 0
    assert count_rows(engine, name) == 0
    with engine.connect() as connection:
        assert len(sa.inspect(connection).get_columns(name)) == len(KINDS)


def test_index_label_and_unnamed_index(engine: sa.Engine):
    scores = pd.DataFrame({"clv": [1.5, 2.5]}, index=pd.Index(["a", "b"]))
    unnamed, labelled = unique_name(), unique_name()
    write_scores(scores, engine, unnamed)
    write_scores(scores, engine, labelled, index_label="client_id")
    types = {"customer_id": sa.Text(), "clv": sa.Double()}
    assert read_table(engine, unnamed, types)["customer_id"].tolist() == ["a", "b"]
    types = {"client_id": sa.Text(), "clv": sa.Double()}
    assert read_table(engine, labelled, types)["client_id"].tolist() == ["a", "b"]


def test_object_and_categorical_columns(engine: sa.Engine):
    scores = pd.DataFrame(
        {
            "tier": pd.Categorical(["gold", None, "bronze"]),
            "score": np.array([1, None, 3], dtype=object),
            "seen": np.array([pd.Timestamp("2024-05-01 10:00", tz="UTC"), None, None], object),
        },
        index=pd.Index([1, 2, 3], name="customer_id"),
    )
    name = unique_name()
    write_scores(scores, engine, name)
    types = {"customer_id": sa.BigInteger(), "tier": sa.Text(), "score": sa.BigInteger(),
             "seen": sa.DateTime(timezone=True)}  # fmt: skip
    stored = read_table(engine, name, types).sort_values("customer_id")
    assert plain(stored["tier"]) == ["gold", None, "bronze"]
    assert plain(stored["score"]) == [1, None, 3]
    assert plain(stored["seen"]) == [pd.Timestamp("2024-05-01 10:00"), None, None]


@settings(max_examples=12)
@given(
    rows=st.lists(
        st.tuples(
            st.floats(allow_infinity=True, allow_nan=True, width=64),
            st.integers(-(2**62), 2**62),
            st.text(
                alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"),
                max_size=12,
            ),
        ),
        max_size=15,
    ),
    chunk_size=st.integers(1, 6),
)
def test_any_frame_round_trips(engine: sa.Engine, rows, chunk_size):
    frame = pd.DataFrame(rows, columns=["amount", "count", "label"])
    frame = frame.astype({"amount": "float64", "count": "int64", "label": object})
    frame.index = pd.Index(range(len(frame)), name="customer_id")
    name = f"property_{engine.dialect.name}"
    write_scores(frame, engine, name, chunk_size=chunk_size)
    types = {"customer_id": sa.BigInteger(), "amount": sa.Double(), "count": sa.BigInteger(),
             "label": sa.Text()}  # fmt: skip
    stored = read_table(engine, name, types).sort_values("customer_id", ignore_index=True)
    expected = frame.reset_index()
    for column in expected.columns:
        assert plain(stored[column]) == plain(expected[column]), column


def test_the_generic_insert_path_round_trips(engine: sa.Engine, monkeypatch):
    # the path for databases without a faster one: SQLAlchemy's executemany
    monkeypatch.setattr(writeback, "_inserter", lambda dialect: writeback._insert_core)
    scores = sample_scores(15, seed=14)
    name = unique_name()
    write_scores(scores, engine, name, run_id="core", chunk_size=4)
    assert_holds(engine, name, scores.assign(run_id="core"))


# --- history --------------------------------------------------------------------------------------


def test_append_twice_keeps_both_runs(engine: sa.Engine):
    name = unique_name()
    first, second = sample_scores(20, seed=4), sample_scores(15, seed=5)
    written = [
        write_scores(first, engine, name, mode="append", run_id="2025-01"),
        write_scores(second, engine, name, mode="append", run_id="2025-02"),
    ]
    assert [result.rows_written for result in written] == [20, 15]
    assert written[0].scored_at <= written[1].scored_at
    stored = read_table(engine, name)
    assert stored.groupby("run_id").size().to_dict() == {"2025-01": 20, "2025-02": 15}
    for result, scores in zip(written, (first, second), strict=True):
        run = stored[stored["run_id"] == result.run_id].sort_values("customer_id")
        expected = as_stored(scores).sort_values("customer_id")
        for column in expected.columns:
            assert plain(run[column]) == plain(expected[column]), column
        assert set(run["scored_at"]) == {pd.Timestamp(result.scored_at).tz_localize(None)}


def test_append_after_replace_and_a_generated_run_id(engine: sa.Engine):
    name = unique_name()
    replaced = write_scores(sample_scores(10, seed=6), engine, name)
    appended = write_scores(sample_scores(10, seed=7), engine, name, mode="append")
    assert replaced.run_id != appended.run_id
    assert len(appended.run_id) == 32
    assert read_table(engine, name)["run_id"].value_counts().to_dict() == {
        replaced.run_id: 10, appended.run_id: 10,
    }  # fmt: skip


def test_append_integers_into_a_float_column(engine: sa.Engine):
    name = unique_name()
    index = pd.Index([1, 2], name="customer_id")
    write_scores(pd.DataFrame({"value": [1.5, 2.5]}, index=index), engine, name, mode="append")
    write_scores(pd.DataFrame({"value": [3, 4]}, index=index), engine, name, mode="append")
    types = {"customer_id": sa.BigInteger(), "value": sa.Double()}
    assert sorted(read_table(engine, name, types)["value"]) == [1.5, 2.5, 3.0, 4.0]


def test_append_to_a_table_made_elsewhere(engine: sa.Engine):
    # narrower types than write_scores would choose: 32-bit integers, bounded text
    name = unique_name()
    table = sa.Table(
        name, sa.MetaData(), sa.Column("customer_id", sa.Integer), sa.Column("clv", sa.Float),
        sa.Column("segment", sa.String(40)), sa.Column("run_id", sa.String(40)),
        sa.Column("scored_at", sa.DateTime),
    )  # fmt: skip
    table.create(engine)
    scores = pd.DataFrame(
        {"clv": [1.25, np.nan, 3.5], "segment": ["a", None, "c"]},
        index=pd.Index([3, 1, 2], name="customer_id"),
    )
    write_scores(scores, engine, name, mode="append", run_id="first")
    types = {"customer_id": sa.Integer(), "clv": sa.Double(), "segment": sa.Text(),
             "run_id": sa.Text()}  # fmt: skip
    stored = read_table(engine, name, types).sort_values("customer_id")
    assert plain(stored["clv"]) == [None, 3.5, 1.25]
    assert plain(stored["segment"]) == [None, "c", "a"]


@pytest.mark.postgres
def test_postgres_copies_in_binary_only_into_exactly_typed_tables(postgres_url: str):
    engine = sa.create_engine(postgres_url)
    scores = pd.DataFrame({"clv": [1.5]}, index=pd.Index([1], name="customer_id"))
    ours, theirs = unique_name(), unique_name()
    write_scores(scores, engine, ours)
    sa.Table(theirs, sa.MetaData(), sa.Column("customer_id", sa.Integer),
             sa.Column("clv", sa.Float), sa.Column("run_id", sa.Text),
             sa.Column("scored_at", sa.DateTime)).create(engine)  # fmt: skip
    plan = writeback._plan(scores, None, "run", engine)
    try:
        with engine.connect() as connection:
            for name, is_exact in ((ours, True), (theirs, False)):
                target = writeback._new_table(name, None, plan)
                columns = sa.inspect(connection).get_columns(name)
                existing = {column["name"]: column["type"] for column in columns}
                writeback._check_columns(existing, target, plan)
                assert writeback._same_types(existing, target, connection.dialect) is is_exact
    finally:
        engine.dispose()


def test_append_with_other_columns_is_a_schema_error(engine: sa.Engine):
    name = unique_name()
    write_scores(sample_scores(8), engine, name, mode="append")
    changed = sample_scores(8).drop(columns=["segment"]).assign(tier="gold")
    with pytest.raises(SchemaError, match="cannot append") as caught:
        write_scores(changed, engine, name, mode="append")
    message = str(caught.value)
    assert "'tier'" in message
    assert "'segment'" in message
    assert "mode='replace'" in message
    assert count_rows(engine, name) == 8


def test_append_floats_into_an_integer_column_is_a_schema_error(engine: sa.Engine):
    name = unique_name()
    index = pd.Index([1, 2], name="customer_id")
    write_scores(pd.DataFrame({"n_orders": [1, 2]}, index=index), engine, name, mode="append")
    with pytest.raises(SchemaError, match=r"n_orders \(float into integer\)"):
        write_scores(pd.DataFrame({"n_orders": [1.5, 2.0]}, index=index), engine, name,
                     mode="append")  # fmt: skip
    assert count_rows(engine, name) == 2


# --- failures leave the previous table --------------------------------------------------------


@pytest.mark.parametrize("mode", ["replace", "append"])
def test_exception_mid_write_leaves_the_old_table(engine: sa.Engine, monkeypatch, mode):
    name = unique_name()
    old = sample_scores(30, seed=8)
    write_scores(old, engine, name, mode=mode, run_id="old")
    failing = FailOnCall(writeback._insert, fail_on=3)
    monkeypatch.setattr(writeback, "_insert", failing)
    with pytest.raises(RuntimeError, match="injected failure on call 3"):
        write_scores(sample_scores(50, seed=9), engine, name, mode=mode, chunk_size=10)
    assert failing.calls == 3  # two chunks were in the table when the third failed
    assert_holds(engine, name, old.assign(run_id="old"))
    assert_no_staging_tables(engine)


def test_failure_after_the_drop_restores_the_old_table(engine: sa.Engine, monkeypatch):
    name = unique_name()
    old = sample_scores(25, seed=10)
    write_scores(old, engine, name, run_id="old")
    seen_inside = []

    def rename_fails(connection: sa.Connection, table: sa.Table, new_name: str) -> None:
        # inside the transaction the old table is gone and the staging table is full
        seen_inside.append(sa.inspect(connection).has_table(new_name))
        seen_inside.append(connection.execute(
            sa.select(sa.func.count()).select_from(table)).scalar_one())  # fmt: skip
        raise RuntimeError("injected failure in the swap")

    monkeypatch.setattr(writeback, "_rename", rename_fails)
    with pytest.raises(RuntimeError, match="injected failure in the swap"):
        write_scores(sample_scores(60, seed=11), engine, name)
    assert seen_inside == [False, 60]
    assert_holds(engine, name, old.assign(run_id="old"))
    assert_no_staging_tables(engine)


def test_mixed_time_zones_are_rejected_before_anything_is_written(engine: sa.Engine):
    name = unique_name()
    old = sample_scores(10, seed=12)
    write_scores(old, engine, name, run_id="old")
    # timestamps in two time zones: pandas cannot put the second chunk's in one column
    seen = [pd.Timestamp("2024-01-01 10:00", tz="Europe/Paris")] * 6 + [
        pd.Timestamp("2024-01-01 10:00", tz="America/New_York")
    ] * 2
    scores = pd.DataFrame({"seen": np.array(seen, dtype=object)},
                          index=pd.Index(range(8), name="customer_id"))  # fmt: skip
    with pytest.raises(SchemaError, match=r"'seen'.*one time zone"):
        write_scores(scores, engine, name)
    assert_holds(engine, name, old.assign(run_id="old"))


def test_a_later_chunk_that_fails_to_convert_leaves_the_old_table(engine: sa.Engine, monkeypatch):
    name = unique_name()
    old = sample_scores(10, seed=15)
    write_scores(old, engine, name, run_id="old")
    inserted = FailOnCall(writeback._insert, fail_on=0)  # counts, never fails
    monkeypatch.setattr(writeback, "_insert", inserted)
    # Python integers: the column is "integer", but row 25's does not fit in 64 bits
    points = np.array([*range(25), 2**70, *range(4)], dtype=object)
    scores = pd.DataFrame({"points": points}, index=pd.Index(range(30), name="customer_id"))
    with pytest.raises(SchemaError, match=r"rows 20 to 29: column 'points' .* do not fit"):
        write_scores(scores, engine, name, chunk_size=10)
    assert inserted.calls == 2  # two chunks were in the staging table when the third failed
    assert_holds(engine, name, old.assign(run_id="old"))
    assert_no_staging_tables(engine)


@pytest.mark.postgres
def test_postgres_refusing_a_value_midway_leaves_the_old_table(postgres_url: str):
    engine = sa.create_engine(postgres_url)
    name = unique_name()
    old = sample_scores(10, seed=16)
    try:
        write_scores(old, engine, name, run_id="old")
        labels = np.array(["fine"] * 25 + ["nul \x00 byte"] + ["fine"] * 4, dtype=object)
        scores = pd.DataFrame({"label": labels}, index=pd.Index(range(30), name="customer_id"))
        with pytest.raises(DatabaseError, match=r"failed|refused"):
            write_scores(scores, engine, name, chunk_size=10)
        assert_holds(engine, name, old.assign(run_id="old"))
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_postgres_view_on_the_table_stops_the_swap_cleanly(postgres_url: str):
    engine = sa.create_engine(postgres_url)
    name, view = unique_name(), unique_name("view")
    old = sample_scores(10, seed=17)
    try:
        write_scores(old, engine, name, run_id="old")
        source = sa.table(name, sa.column("clv"))
        with engine.begin() as connection:
            # SQLAlchemy has no CREATE VIEW construct; the statement names only our test tables
            select = sa.select(source.c.clv).compile(engine, compile_kwargs={"literal_binds": 1})
            connection.exec_driver_sql(f"CREATE VIEW {view} AS {select}")
        with pytest.raises(QueryError, match="depend") as caught:
            write_scores(sample_scores(5), engine, name)
        # not worth a retry, and the hint is about writing, not about reading a table or query
        assert "a view or another object that depends on it" in str(caught.value)
        assert "previous scores are unchanged" in str(caught.value)
        assert_holds(engine, name, old.assign(run_id="old"))
    finally:
        engine.dispose()


# --- whose table it is ----------------------------------------------------------------------------


def a_foreign_table(engine: sa.Engine, made_by: str) -> tuple[str, pd.DataFrame]:
    """A table another tool made (pandas, or SQL), as a CRM's transactions table is."""
    name = unique_name("transactions")
    rows = pd.DataFrame({"customer_id": [1, 1, 2], "amount": [10.5, 3.0, 7.25],
                         "order_id": ["a", "b", "c"]})  # fmt: skip
    if made_by == "pandas":
        rows.to_sql(name, engine, index=False)
    else:
        columns = (sa.Column("customer_id", sa.Integer), sa.Column("amount", sa.Float),
                   sa.Column("order_id", sa.String(10)))  # fmt: skip
        table = sa.Table(name, sa.MetaData(), *columns)
        with engine.begin() as connection:
            table.create(connection)
            connection.execute(sa.insert(table), rows.to_dict("records"))
    return name, rows


def read_rows(engine: sa.Engine, name: str, rows: pd.DataFrame) -> pd.DataFrame:
    table = sa.table(name, *(sa.column(column) for column in rows.columns))
    with engine.connect() as connection:
        stored = pd.read_sql(sa.select(table), connection)
    return stored.sort_values("order_id", ignore_index=True)


def marks_of(engine: sa.Engine, name: str, schema: str | None = None) -> list[dict[str, object]]:
    """The rows of cvalue_tables for the table (none when the record does not exist)."""
    columns = (sa.column(column, sa.DateTime() if column == "written_at" else None)
               for column in MARK_COLUMNS)  # fmt: skip
    marks = sa.table(MARKS_TABLE, *columns, schema=schema)
    with engine.connect() as connection:
        if not sa.inspect(connection).has_table(MARKS_TABLE, schema=schema):
            return []
        found = connection.execute(sa.select(marks).where(marks.c.table_name == name))
        return [dict(row._mapping) for row in found]


MARK_COLUMNS = ("schema_name", "table_name", "run_id", "written_at", "mode", "rows_written")


def default_schema(engine: sa.Engine) -> str:
    with engine.connect() as connection:
        return str(sa.inspect(connection).default_schema_name)


@pytest.mark.parametrize("mode", ["replace", "append"])
@pytest.mark.parametrize("made_by", ["pandas", "sql"])
def test_a_table_cvalue_did_not_write_is_refused_and_left_unchanged(
    engine: sa.Engine, made_by: str, mode: str
):
    # 2,193 transactions were once replaced by 399 score rows this way
    name, rows = a_foreign_table(engine, made_by)
    before = table_names(engine)
    with pytest.raises(ForeignTableError) as caught:
        write_scores(sample_scores(5), engine, name, mode=mode)  # type: ignore[arg-type]
    message = str(caught.value)
    phrases = (name, "was not written by cvalue", "customer_id, amount, order_id", "another table",
               "overwrite_foreign=True", "[outputs] overwrite_foreign = true")  # fmt: skip
    for phrase in phrases:
        assert phrase in message, phrase
    assert isinstance(caught.value, SchemaError)
    pd.testing.assert_frame_equal(read_rows(engine, name, rows), rows, check_dtype=False)
    assert marks_of(engine, name) == []
    assert table_names(engine) == before  # not even the record was created


def test_overwrite_foreign_takes_the_table_over(engine: sa.Engine):
    name, _ = a_foreign_table(engine, "pandas")
    scores = sample_scores(6, seed=30)
    written = write_scores(scores, engine, name, overwrite_foreign=True, run_id="taken")
    assert_holds(engine, name, scores.assign(run_id="taken"))
    assert [mark["run_id"] for mark in marks_of(engine, name)] == ["taken"]
    # from now on it is cvalue's table: no flag needed, for either mode
    write_scores(scores, engine, name, run_id="next")
    write_scores(scores, engine, name, mode="append", run_id="appended")
    assert count_rows(engine, name) == 12
    assert written.rows_written == 6


def test_overwrite_foreign_in_append_mode_still_checks_the_columns(engine: sa.Engine):
    name, rows = a_foreign_table(engine, "sql")
    with pytest.raises(SchemaError, match="cannot append") as caught:
        write_scores(sample_scores(4), engine, name, mode="append", overwrite_foreign=True)
    assert not isinstance(caught.value, ForeignTableError)
    pd.testing.assert_frame_equal(read_rows(engine, name, rows), rows, check_dtype=False)


@pytest.mark.parametrize("mode", ["replace", "append"])
def test_a_table_written_before_the_record_existed_is_taken_and_recorded(
    engine: sa.Engine, mode: str, caplog
):
    # what earlier versions left: a scores table with run_id and scored_at, and no record
    name = unique_name("legacy")
    old = sample_scores(8, seed=31).assign(run_id="old", scored_at=pd.Timestamp("2025-01-01"))
    as_stored(old).to_sql(name, engine, index=False)
    assert marks_of(engine, name) == []
    caplog.set_level(logging.INFO, logger="cvalue.io._ownership")
    written = write_scores(sample_scores(8, seed=32), engine, name, mode=mode)  # type: ignore[arg-type]
    assert "taken as written by an earlier cvalue" in caplog.text
    assert count_rows(engine, name) == (8 if mode == "replace" else 16)
    assert [(mark["run_id"], mark["mode"]) for mark in marks_of(engine, name)] == [
        (written.run_id, mode)
    ]


def test_a_recorded_table_that_another_tool_recreated_is_refused(engine: sa.Engine):
    name = unique_name()
    write_scores(sample_scores(5), engine, name)
    sa.Table(name, sa.MetaData()).drop(engine)
    pd.DataFrame({"customer_id": [1], "note": ["theirs now"]}).to_sql(name, engine, index=False)
    with pytest.raises(ForeignTableError, match="something else has recreated it"):
        write_scores(sample_scores(5), engine, name)
    assert count_rows(engine, name) == 1


def test_protected_tables_are_refused_whatever_overwrite_foreign_says(engine: sa.Engine):
    name = unique_name()
    write_scores(sample_scores(5, seed=33), engine, name, run_id="ours")
    schema = default_schema(engine)
    # PostgreSQL tells names apart by case, SQLite and DuckDB do not
    spelled = name if engine.dialect.name == "postgresql" else name.upper()
    for protected in ([name], [f"{schema}.{name}"], ("other", spelled)):
        for mode in ("replace", "append"):
            with pytest.raises(ForeignTableError, match="is protected") as caught:
                write_scores(sample_scores(5), engine, name, mode=mode, protected=protected,  # type: ignore[arg-type]
                             overwrite_foreign=True)  # fmt: skip
            assert "among the tables this run reads" in str(caught.value)
    assert_holds(engine, name, sample_scores(5, seed=33).assign(run_id="ours"))
    # a table that does not exist yet is refused too, before anything is created
    before = table_names(engine)
    with pytest.raises(ForeignTableError, match="is protected"):
        write_scores(sample_scores(5), engine, "new_scores", protected=["new_scores"])
    assert table_names(engine) == before
    # names of other tables, or of this one in another schema, do not stand in the way
    write_scores(sample_scores(5), engine, name, protected=["other", f"elsewhere.{name}"])


def test_check_scores_table_refuses_early_what_write_scores_would(engine: sa.Engine):
    ours, new = unique_name(), unique_name("new")
    foreign, _ = a_foreign_table(engine, "pandas")
    write_scores(sample_scores(3), engine, ours, run_id="ours")
    recorded, before = marks_of(engine, ours), table_names(engine)
    for mode in ("replace", "append"):
        check_scores_table(engine, ours, mode=mode)  # type: ignore[arg-type]
        check_scores_table(engine, new, mode=mode)  # type: ignore[arg-type]
        check_scores_table(engine, foreign, mode=mode, overwrite_foreign=True)  # type: ignore[arg-type]
        with pytest.raises(ForeignTableError, match="was not written by cvalue"):
            check_scores_table(engine, foreign, mode=mode)  # type: ignore[arg-type]
        with pytest.raises(ForeignTableError, match="is protected"):
            check_scores_table(engine, ours, mode=mode, protected=[ours])  # type: ignore[arg-type]
    with pytest.raises(SchemaError, match="is reserved"):
        check_scores_table(engine, MARKS_TABLE)
    with pytest.raises(SchemaError, match="mode must be"):
        check_scores_table(engine, ours, mode="upsert")  # type: ignore[arg-type]
    # nothing was written: no table, no record
    assert table_names(engine) == before
    assert marks_of(engine, ours) == recorded
    assert marks_of(engine, foreign) == []


def test_reserved_names_are_never_targets(engine: sa.Engine):
    for name in (MARKS_TABLE, f"{STAGING_PREFIX}0123456789abcdef", MARKS_TABLE.upper()):
        if engine.dialect.name == "postgresql" and name.isupper():
            continue  # a distinct table there
        with pytest.raises(SchemaError, match="is reserved"):
            write_scores(sample_scores(3), engine, name, overwrite_foreign=True)


def test_bad_guard_options_are_schema_errors():
    scores = sample_scores(3)
    with pytest.raises(SchemaError, match=r"protected must be a collection .*=\['transactions'\]"):
        write_scores(scores, "sqlite://", "t", protected="transactions")
    with pytest.raises(SchemaError, match="overwrite_foreign must be True or False"):
        write_scores(scores, "sqlite://", "t", overwrite_foreign="yes")  # type: ignore[arg-type]


def test_every_write_records_its_table(engine: sa.Engine):
    replaced, history = unique_name(), unique_name("history")
    results = [
        write_scores(sample_scores(7), engine, replaced, run_id="first"),
        write_scores(sample_scores(9), engine, replaced, run_id="second"),
        write_scores(sample_scores(4), engine, history, mode="append", run_id="h1"),
        write_scores(sample_scores(3), engine, history, mode="append", run_id="h2"),
    ]
    schema = default_schema(engine)
    for name, result in ((replaced, results[1]), (history, results[3])):
        (mark,) = marks_of(engine, name)  # one row per table, the latest write's
        assert mark == {
            "schema_name": schema, "table_name": name, "run_id": result.run_id,
            "written_at": pd.Timestamp(result.scored_at).tz_localize(None).to_pydatetime(),
            "mode": result.mode, "rows_written": result.rows_written,
        }  # fmt: skip


@pytest.mark.parametrize("mode", ["replace", "append"])
@pytest.mark.parametrize("failing", ["_insert", "mark"])
def test_a_failed_write_leaves_the_record_as_it_was(
    engine: sa.Engine, monkeypatch, mode: str, failing: str
):
    name, new = unique_name(), unique_name("new")
    old = sample_scores(10, seed=34)
    write_scores(old, engine, name, mode=mode, run_id="old")  # type: ignore[arg-type]
    recorded = marks_of(engine, name)
    module = _ownership if failing == "mark" else writeback
    fail = FailOnCall(getattr(module, failing), fail_on=1)
    monkeypatch.setattr(module, failing, fail)
    with pytest.raises(RuntimeError, match="injected failure"):
        write_scores(sample_scores(20, seed=35), engine, name, mode=mode, chunk_size=5)  # type: ignore[arg-type]
    assert marks_of(engine, name) == recorded
    assert_holds(engine, name, old.assign(run_id="old"))
    # a first write that fails leaves neither the table nor a record of it
    fail.calls = 0
    with pytest.raises(RuntimeError, match="injected failure"):
        write_scores(sample_scores(20, seed=35), engine, new, mode=mode, chunk_size=5)  # type: ignore[arg-type]
    assert new not in table_names(engine)
    assert marks_of(engine, new) == []
    assert_no_staging_tables(engine)


@pytest.mark.postgres
def test_postgres_records_in_the_target_schema(postgres_url: str):
    engine = sa.create_engine(postgres_url)
    schema, name = unique_name("schema"), unique_name()
    try:
        with engine.begin() as connection:
            connection.execute(sa.schema.CreateSchema(schema))
        write_scores(sample_scores(3), engine, name, schema=schema, run_id="in-schema")
        assert [(mark["schema_name"], mark["run_id"]) for mark in marks_of(engine, name, schema)
                ] == [(schema, "in-schema")]  # fmt: skip
        assert marks_of(engine, name) == []
        with pytest.raises(ForeignTableError, match="is protected"):
            write_scores(sample_scores(3), engine, name, schema=schema,
                         protected=[f"{schema}.{name}"])  # fmt: skip
    finally:
        with engine.begin() as connection:
            connection.execute(sa.schema.DropSchema(schema, cascade=True))
        engine.dispose()


class PausedWriter:
    """write_scores in a thread, held after its first chunk until the test lets it go on."""

    def __init__(self, monkeypatch, engine: sa.Engine, name: str) -> None:
        self.inside, self.go_on = threading.Event(), threading.Event()
        self.failure: BaseException | None = None
        insert = writeback._insert

        def paused_insert(connection: sa.Connection, table: sa.Table, frame: pd.DataFrame):
            insert(connection, table, frame)
            self.inside.set()
            assert self.go_on.wait(timeout=30)

        monkeypatch.setattr(writeback, "_insert", paused_insert)
        self.thread = threading.Thread(target=self._write, args=(engine, name))
        self.thread.start()
        assert self.inside.wait(timeout=30)

    def _write(self, engine: sa.Engine, name: str) -> None:
        try:
            write_scores(sample_scores(6, seed=36), engine, name, run_id="paused")
        except BaseException as exc:  # handed to the test, which asserts on it
            self.failure = exc

    def finish(self) -> BaseException | None:
        self.go_on.set()
        self.thread.join(timeout=30)
        return self.failure


@pytest.mark.postgres
def test_postgres_the_checked_table_stays_locked_until_the_swap(postgres_url: str, monkeypatch):
    engine = sa.create_engine(postgres_url)
    other = sa.create_engine(postgres_url, connect_args={"options": "-c lock_timeout=300"})
    name = unique_name()
    try:
        write_scores(sample_scores(4), engine, name, run_id="old")
        writer = PausedWriter(monkeypatch, engine, name)
        try:
            # no other session can drop or recreate it between the check and the swap ...
            with pytest.raises(sa.exc.OperationalError, match="lock timeout"), other.begin() as c:
                c.execute(sa.schema.DropTable(sa.table(name)))
            # ... while readers read on
            assert count_rows(other, name) == 4
        finally:
            assert writer.finish() is None
        assert marks_of(engine, name)[0]["run_id"] == "paused"
    finally:
        engine.dispose()
        other.dispose()


@pytest.mark.postgres
def test_postgres_a_foreign_table_made_during_a_write_is_not_dropped(
    postgres_url: str, monkeypatch
):
    engine = sa.create_engine(postgres_url)
    name = unique_name()
    try:
        writer = PausedWriter(monkeypatch, engine, name)  # checks: no such table
        try:
            pd.DataFrame({"customer_id": [1], "note": ["theirs"]}).to_sql(name, engine, index=False)
        finally:
            failure = writer.finish()
        assert isinstance(failure, DatabaseError)
        assert "already exists" in str(failure)
        assert read_table(engine, name, {"note": sa.Text()})["note"].tolist() == ["theirs"]
        assert marks_of(engine, name) == []
    finally:
        engine.dispose()


# --- names ----------------------------------------------------------------------------------------


HOSTILE_NAMES = [
    'scores"; DROP TABLE victims; --',
    "scores'; DROP TABLE victims; --",
    "scores]; DROP TABLE victims",
    "victims.scores",
    "Scores With Spaces & ünïcode",
]


@pytest.fixture
def victims(engine: sa.Engine) -> str:
    name = unique_name("victims")
    frame = pd.DataFrame({"clv": [1.0]}, index=pd.Index([1], name="customer_id"))
    write_scores(frame, engine, name)
    return name


@pytest.mark.parametrize("hostile", HOSTILE_NAMES)
def test_hostile_table_names_are_quoted(engine: sa.Engine, victims: str, hostile: str):
    hostile = hostile.replace("victims", victims)
    scores = sample_scores(5, seed=13)
    write_scores(scores, engine, hostile)
    write_scores(scores, engine, hostile)  # the swap drops and renames the quoted name too
    write_scores(scores, engine, hostile, mode="append")
    assert count_rows(engine, victims) == 1
    with engine.connect() as connection:
        assert sa.inspect(connection).has_table(hostile)
    assert len(read_table(engine, hostile)) == 10


def test_hostile_column_names_are_quoted(engine: sa.Engine, victims: str):
    column = f'clv"); DROP TABLE {victims}; --'
    scores = pd.DataFrame({column: [1.5, 2.5]}, index=pd.Index([1, 2], name="customer_id"))
    name = unique_name()
    write_scores(scores, engine, name)
    write_scores(scores, engine, name, mode="append")
    stored = read_table(engine, name, {"customer_id": sa.BigInteger(), column: sa.Double()})
    assert sorted(stored[column]) == [1.5, 1.5, 2.5, 2.5]
    assert count_rows(engine, victims) == 1


def test_hostile_schema_is_quoted_and_fails_cleanly(engine: sa.Engine, victims: str):
    schema = f'main"; DROP TABLE {victims}; --'
    with pytest.raises(DatabaseError, match=r"failed|refused"):
        write_scores(sample_scores(3), engine, unique_name(), schema=schema)
    assert count_rows(engine, victims) == 1


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("", "non-empty string"),
        ("   ", "non-empty string"),
        ("bad\x00name", "NUL character"),
        ("x" * 64, "64 bytes long"),
        ("é" * 40, "80 bytes long"),
    ],
)
def test_names_no_database_can_hold_are_rejected(engine: sa.Engine, table, message):
    before = table_names(engine)
    if engine.dialect.max_identifier_length > 100 and "bytes long" in message:
        table = "x" * (engine.dialect.max_identifier_length + 1)
        message = "bytes long"
    with pytest.raises(SchemaError, match=message):
        write_scores(sample_scores(3), engine, table)
    assert table_names(engine) == before


def test_schema_and_column_names_are_checked_too(engine: sa.Engine):
    with pytest.raises(SchemaError, match="schema name"):
        write_scores(sample_scores(3), engine, unique_name(), schema="a\x00b")
    with pytest.raises(SchemaError, match=r"column name .* NUL"):
        write_scores(pd.DataFrame({"a\x00b": [1]}), engine, unique_name())
    with pytest.raises(SchemaError, match="column name must be a non-empty string, got 0"):
        write_scores(pd.DataFrame({0: [1]}), engine, unique_name())


# --- passwords ------------------------------------------------------------------------------------


def test_password_of_an_unreachable_server_is_hidden(caplog):
    secret = "Sup3r-S3cret-pw"
    url = f"postgresql+psycopg://scorer:{secret}@127.0.0.1:{free_port()}/crm?connect_timeout=5"
    caplog.set_level(logging.DEBUG)
    with pytest.raises(DatabaseError) as caught:
        write_scores(sample_scores(3), url, "scores")
    assert secret not in str(caught.value)
    assert "scorer:***@127.0.0.1" in str(caught.value)
    assert secret not in caplog.text


@pytest.mark.postgres
def test_password_is_hidden_in_errors_and_logs(postgres_url: str, caplog):
    url = sa.make_url(postgres_url)
    secret = url.password or "Sup3r-S3cret-pw"  # the test cluster trusts any password
    with_password = url.set(password=secret).render_as_string(hide_password=False)
    caplog.set_level(logging.DEBUG)
    written = write_scores(sample_scores(3), with_password, unique_name())
    assert written.rows_written == 3
    assert "***" in caplog.text
    with pytest.raises(DatabaseError) as caught:
        write_scores(sample_scores(3), with_password, unique_name(), schema="no_such_schema")
    assert "no_such_schema" in str(caught.value)
    assert "***" in str(caught.value)
    assert secret not in str(caught.value)
    assert secret not in caplog.text


# --- bad arguments --------------------------------------------------------------------------------


def test_bad_arguments_are_schema_errors():
    scores = sample_scores(3)
    with pytest.raises(SchemaError, match="mode must be 'replace' or 'append', got 'upsert'"):
        write_scores(scores, "sqlite://", "t", mode="upsert")  # type: ignore[arg-type]
    with pytest.raises(SchemaError, match="chunk_size must be a positive integer"):
        write_scores(scores, "sqlite://", "t", chunk_size=0)
    with pytest.raises(SchemaError, match="chunk 1 of the scores is a int, not a DataFrame"):
        write_scores([1, 2], "sqlite://", "t")  # type: ignore[list-item]
    with pytest.raises(SchemaError, match="a pandas DataFrame or an iterable of DataFrames"):
        write_scores(scores["clv"], "sqlite://", "t")  # type: ignore[arg-type]
    with pytest.raises(SchemaError, match="gave no chunk: there is nothing to write"):
        write_scores(iter([]), "sqlite://", "t")
    with pytest.raises(SchemaError, match="run_id must be a non-empty string"):
        write_scores(scores, "sqlite://", "t", run_id="")
    with pytest.raises(DatabaseError, match="not a database URL"):
        write_scores(scores, "not a url", "t")


def test_frames_write_scores_cannot_store_are_schema_errors():
    index = pd.Index([1, 2], name="customer_id")
    with pytest.raises(SchemaError, match="2-level index"):
        write_scores(pd.DataFrame({"v": [1, 2]}, index=pd.MultiIndex.from_tuples(
            [(1, "a"), (2, "b")])), "sqlite://", "t")  # fmt: skip
    with pytest.raises(SchemaError, match=r"\['run_id'\] appear twice"):
        write_scores(pd.DataFrame({"run_id": [1, 2]}, index=index), "sqlite://", "t")
    with pytest.raises(SchemaError, match=r"\['customer_id'\] appear twice.*index_label="):
        write_scores(pd.DataFrame({"customer_id": [1, 2]}, index=index), "sqlite://", "t")
    waits = pd.DataFrame({"wait": pd.to_timedelta([1, 2], "D")}, index=index)
    with pytest.raises(SchemaError, match="column 'wait' holds timedelta"):
        write_scores(waits, "sqlite://", "t")
    mixed = pd.DataFrame({"mixed": np.array([1, "a"], dtype=object)}, index=index)
    with pytest.raises(SchemaError, match="column 'mixed' holds mixed-integer values"):
        write_scores(mixed, "sqlite://", "t")
