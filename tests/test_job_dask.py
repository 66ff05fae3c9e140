"""The job on Dask ([run] engine = "dask") gives the in-memory job's results.

The runs use one ``distributed.LocalCluster`` of two worker processes (the session's
``dask_cluster``, shared with tests/test_dask.py), named to the job by its address
(``[run] scheduler``), so every stage crosses a process boundary. The Dask job's runs on the
Parquet base into a database and into a Parquet folder are made once (``on_dask``); the tests that
need a previous output copy it into their own folder, so that no test writes another's.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

distributed = pytest.importorskip("distributed", reason="the Dask tests need cvalue[dask]")
cloudpickle = pytest.importorskip("cloudpickle", reason="the Dask tests need cvalue[dask]")

from cvalue.config import load_config  # noqa: E402  (after the skip: dask is optional)
from cvalue.datasets import make_crm  # noqa: E402
from cvalue.errors import ConfigError, DataQualityError, OutputError, SchemaError  # noqa: E402
from cvalue.job import (  # noqa: E402
    JobResult,
    _dask_read,
    _dask_run,
    run,
    validated_on_dask,
)
from cvalue.report.job import SECTIONS  # noqa: E402
from tests.conftest import demo_config, read_all, run_cli, write_crm  # noqa: E402
from tests.test_job_chunked import (  # noqa: E402
    _same_at_risk,
    _same_history,
    _same_scores,
    _same_streamed_results,
)

N_CUSTOMERS = 2_500
N_FILES = 4
URL = "CVALUE_DEMO_DATABASE_URL"
BY_SEGMENTS = '[segments]\nby = ["segment", "channel"]\n'
NO_SURVEYS = ('[source.surveys]\ntable = "surveys"\n', "")  # the Dask job does not read them yet


@pytest.fixture(scope="module")
def cluster(dask_cluster):
    return dask_cluster


def _with_shared_orders(transactions: pd.DataFrame) -> pd.DataFrame:
    """The log with 40 purchases given the order id of another customer's purchase.

    The in-memory job rejects the 80 rows. Each comes from its own customer, one with at least
    three purchases, so that no customer is left without a purchase.
    """
    purchases = transactions[~transactions["is_return"]]
    counts = purchases["customer_id"].value_counts()
    eligible = purchases[purchases["customer_id"].isin(counts.index[counts >= 3])]
    one_each = eligible.drop_duplicates("customer_id")
    chosen = one_each.sample(80, random_state=2).index
    takers, givers = chosen[:40], chosen[40:]
    order_ids = transactions["order_id"].copy()
    order_ids[takers] = transactions.loc[givers, "order_id"].to_numpy()
    return transactions.assign(order_id=order_ids)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's tables as Parquet: the transactions in files of mixed customers."""
    crm = make_crm(N_CUSTOMERS, seed=5)
    folder = tmp_path_factory.mktemp("base")
    transactions = _with_shared_orders(crm.transactions)
    order = np.random.default_rng(0).permutation(len(transactions))
    rows = transactions.iloc[order].reset_index(drop=True)
    (folder / "transactions").mkdir()
    for number, part in enumerate(np.array_split(np.arange(len(rows)), N_FILES)):
        rows.iloc[part].to_parquet(folder / "transactions" / f"part-{number}.parquet")
    crm.customers.reset_index().to_parquet(folder / "customers.parquet")
    crm.service_contacts.to_parquet(folder / "service_contacts.parquet")
    (folder / "end").write_text(str(crm.truth.observation_end.date()))
    return folder


def _config_text(folder: Path, base: Path, engine: str, extra: str = "", outputs: str = "") -> Path:
    crm = make_crm(10, seed=5)  # the demo's text only needs an observation end
    path = demo_config(folder, crm)
    text = path.read_text()
    assert NO_SURVEYS[0] in text
    text = text.replace(*NO_SURVEYS, 1).replace("[segments]\n", BY_SEGMENTS, 1)
    text = text.replace(
        f"observation_end = {crm.truth.observation_end.date()}",
        f"observation_end = {(base / 'end').read_text()}",
    )
    for name in ("transactions", "customers", "service_contacts"):
        file = base / name if name == "transactions" else base / f"{name}.parquet"
        text = text.replace(f'table = "{name}"', f'file = "{file}"', 1)
    text = text.replace("[outputs]\n", f"[outputs]\n{outputs}", 1)
    path.write_text(text + f"\n[run]\nengine = {engine!r}\n" + extra)
    return path


def _config(
    folder: Path, base: Path, engine: str, url: str, extra: str = "", outputs: str = ""
) -> object:
    return load_config(_config_text(folder, base, engine, extra, outputs), environ={URL: url})


def _on(cluster) -> str:
    return f"scheduler = {cluster.scheduler_address!r}\n"


def _same_results(memory: JobResult, other: JobResult) -> None:
    """The chunked job's comparison, and what the Dask job adds: cohorts, segments, counts."""
    _same_streamed_results(memory, other)
    assert type(other.models.purchase) is type(memory.models.purchase)  # type: ignore[union-attr]
    assert memory.cohorts is not None
    assert other.cohorts is not None
    pd.testing.assert_frame_equal(other.cohorts.shares, memory.cohorts.shares)
    assert memory.named_segments is not None
    assert other.named_segments is not None
    pd.testing.assert_frame_equal(other.named_segments.segments_, memory.named_segments.segments_,
                                  rtol=1e-9)  # fmt: skip
    pd.testing.assert_series_equal(other.named_segments.members_.sort_index(),
                                   memory.named_segments.members_.sort_index())  # fmt: skip
    assert other.loaded is not None
    assert memory.loaded is not None
    assert other.loaded.report.n_clean == memory.loaded.report.n_clean
    assert other.loaded.report.n_rejected == memory.loaded.report.n_rejected
    columns = ["reason", "column", "rows"]
    pd.testing.assert_frame_equal(other.loaded.report.reasons[columns],
                                  memory.loaded.report.reasons[columns])  # fmt: skip


def _table(url: str) -> pd.DataFrame:
    table = read_all(url, "customer_value").drop(columns=["run_id", "scored_at"])
    return table.set_index("customer_id").sort_index()


def _folder(path: Path) -> pd.DataFrame:
    table = pd.read_parquet(path).drop(columns=["run_id", "scored_at"])
    return table.set_index("customer_id").sort_index()


@pytest.fixture(scope="module")
def in_memory(base: Path, tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("memory")
    url = f"duckdb:///{folder / 'scores.duckdb'}"
    result = run(_config(folder, base, "pandas", url), environ={URL: url},
                 report_path=folder / "memory.html")  # fmt: skip
    return result, _table(url)


@pytest.fixture(scope="module")
def in_database(cluster, base: Path, tmp_path_factory: pytest.TempPathFactory):
    """The Dask job's run into a DuckDB file, with its report: (result, folder). Read only."""
    folder = tmp_path_factory.mktemp("dask-database")
    url = f"duckdb:///{folder / 'scores.duckdb'}"
    result = run(_config(folder, base, "dask", url, _on(cluster)), environ={URL: url},
                 report_path=folder / "dask.html")  # fmt: skip
    return result, folder


@pytest.fixture(scope="module")
def in_parquet(cluster, base: Path, tmp_path_factory: pytest.TempPathFactory):
    """The Dask job's run into a Parquet folder, without a report: (result, folder). Read only."""
    folder = tmp_path_factory.mktemp("dask-parquet")
    url = f"duckdb:///{folder / 'unused.duckdb'}"
    target = folder / "scores.parquet"
    config = _config(folder, base, "dask", url, _on(cluster), f"scores_file = {str(target)!r}\n")
    return run(config, environ={URL: url}, report_path=None), folder


def test_the_dask_scores_in_a_database_equal_the_in_memory_scores(in_memory, in_database) -> None:
    memory, expected = in_memory
    result, folder = in_database
    url = f"duckdb:///{folder / 'scores.duckdb'}"
    assert result.written is not None
    assert result.written.rows_written == len(expected)
    _same_scores(expected, _table(url))
    _same_results(memory, result)
    _same_history(memory, result)
    _same_at_risk(memory, result)
    assert result.in_database is not None
    assert result.in_database.n_chunks >= 2
    page = (folder / "dask.html").read_text(encoding="utf-8")
    for key in SECTIONS:
        assert f'<section id="{key}">' in page


def test_the_dask_scores_in_parquet_equal_the_in_memory_scores(in_memory, in_parquet) -> None:
    memory, expected = in_memory
    result, folder = in_parquet
    target = folder / "scores.parquet"
    assert result.written is not None
    assert result.written.table == str(target)
    _same_scores(expected, _folder(target))
    _same_results(memory, result)
    assert result.run_history is None  # a Parquet folder of scores keeps no history
    assert not (folder / "unused.duckdb").exists()
    assert [path.name for path in folder.iterdir() if path.name.startswith(".")] == []


def test_a_failing_partition_leaves_the_previous_scores_table_whole(
    cluster, base: Path, in_database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, previous = in_database
    for file in previous.glob("scores.duckdb*"):  # this test's own copy (a WAL with it, if any)
        shutil.copy(file, tmp_path / file.name)
    url = f"duckdb:///{tmp_path / 'scores.duckdb'}"
    config = _config(tmp_path, base, "dask", url, _on(cluster))
    before = _table(url)
    taken = _dask_run._take
    calls = []

    def failing(scorer, found):
        calls.append(len(found[0]))
        if len(calls) == 2:
            raise RuntimeError("the client lost partition 2")
        return taken(scorer, found)

    monkeypatch.setattr(_dask_run, "_take", failing)
    with pytest.raises(RuntimeError, match="partition 2"):
        run(config, environ={URL: url}, report_path=tmp_path / "second.html")
    pd.testing.assert_frame_equal(_table(url), before)
    assert not (tmp_path / "second.html").exists()
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".")] == []


_SCORE = _dask_run._PartScorer.__call__


def _failing_score(self, rows: pd.DataFrame):
    """The worker's scoring, failing on the partition of the largest customer id."""
    if len(rows) and rows.index.max() == N_CUSTOMERS:
        raise MemoryError("the worker ran out of memory in the last customer's partition")
    return _SCORE(self, rows)


# the workers cannot import this module (the tests folder is no package on their path): send
# the functions they run by value
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _on_workers(broken: bool) -> None:
    """Break the workers' scoring, or mend it. The mending keeps the worker's own function: a
    _SCORE sent from here is looked up by name there, where it names the broken one."""
    scorer = _dask_run._PartScorer
    if broken:
        scorer._unbroken = scorer.__call__  # type: ignore[attr-defined]
        scorer.__call__ = _failing_score  # type: ignore[method-assign]
    else:
        scorer.__call__ = scorer._unbroken  # type: ignore[attr-defined, method-assign]


def test_a_partition_failing_on_a_worker_leaves_the_previous_folder_whole(
    cluster, base: Path, in_parquet, tmp_path: Path
) -> None:
    _, previous = in_parquet
    target = tmp_path / "scores.parquet"
    shutil.copytree(previous / "scores.parquet", target)  # this test's own copy
    url = f"duckdb:///{tmp_path / 'unused.duckdb'}"
    config = _config(tmp_path, base, "dask", url, _on(cluster), f"scores_file = {str(target)!r}\n")
    before = _folder(target)
    assert before.index.max() == N_CUSTOMERS  # the ids run from 1
    with distributed.Client(cluster, set_as_default=False) as client:
        client.run(_on_workers, True)
        try:
            with pytest.raises(MemoryError, match="last customer's partition"):
                run(config, environ={URL: url}, report_path=tmp_path / "second.html")
        finally:
            client.run(_on_workers, False)
    pd.testing.assert_frame_equal(_folder(target), before)
    assert not (tmp_path / "second.html").exists()
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".")] == []


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (("[models]\n", '[models]\ncovariates = ["channel"]\n'), r"\[models\] covariates"),
        (
            ("[source.transactions]\n", '[source.transactions]\ndate_format = "%Y-%m-%d"\n'),
            r"\[source.transactions\] date_format and dayfirst",
        ),
        (
            ("[value]\n", "[value]\nmargin_by_category = { books = 0.2 }\n"),
            r"\[value\] margin_by_category",
        ),
    ],
)
def test_what_the_dask_job_does_not_do_yet_is_named(
    base: Path, tmp_path: Path, edit: tuple[str, str], named: str
) -> None:
    path = _config_text(tmp_path, base, "dask")
    path.write_text(path.read_text().replace(*edit, 1))
    with pytest.raises(ConfigError, match=f'engine = "dask" does not support {named}'):
        load_config(path, environ={URL: "duckdb:///x.duckdb"})


def test_the_dask_job_refuses_chunks(base: Path, tmp_path: Path) -> None:
    path = _config_text(tmp_path, base, "dask")
    path.write_text(path.read_text().replace("[run]\n", "[run]\nchunk_customers = 1000\n", 1))
    with pytest.raises(ConfigError, match=r"\[run\] chunk_customers"):
        load_config(path, environ={URL: "duckdb:///x.duckdb"})


def test_without_a_scheduler_the_job_runs_its_own_cluster_and_writes_nothing(
    base: Path, in_memory, tmp_path: Path
) -> None:
    memory, _ = in_memory
    url = f"duckdb:///{tmp_path / 'unused.duckdb'}"
    config = _config(tmp_path, base, "dask", url, "dask_workers = 1\n")
    result = run(config, environ={URL: url}, write=False, report_path=None)
    assert result.written is None
    assert result.tiers is not None
    assert memory.tiers is not None
    pd.testing.assert_frame_equal(result.tiers.summary_, memory.tiers.summary_, rtol=1e-9)
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "cvalue.toml", "report.html", "report_at_risk.csv"]  # fmt: skip


def test_a_file_in_the_way_of_the_parquet_folder_is_refused_before_reading(
    base: Path, tmp_path: Path
) -> None:
    target = tmp_path / "scores.parquet"
    target.write_text("not a folder")
    url = f"duckdb:///{tmp_path / 'unused.duckdb'}"
    config = _config(tmp_path, base, "dask", url, "", f"scores_file = {str(target)!r}\n")
    with pytest.raises(OutputError, match="exists and is not a folder"):
        run(config, environ={URL: url}, report_path=None)
    assert target.read_text() == "not a folder"


def test_a_parquet_folder_is_not_appended_to(base: Path, tmp_path: Path) -> None:
    outputs = 'scores_file = "scores.parquet"\n'
    path = _config_text(tmp_path, base, "dask", outputs=outputs)
    path.write_text(path.read_text().replace('write_mode = "replace"', 'write_mode = "append"'))
    with pytest.raises(ConfigError, match='write_mode = "append" with scores_file'):
        load_config(path, environ={URL: "duckdb:///x.duckdb"})


def test_a_parquet_folder_needs_the_dask_engine(base: Path, tmp_path: Path) -> None:
    path = _config_text(tmp_path, base, "pandas", outputs='scores_file = "scores.parquet"\n')
    with pytest.raises(ConfigError, match='scores_file needs \\[run\\] engine = "dask"'):
        load_config(path, environ={URL: "duckdb:///x.duckdb"})


def test_a_relative_parquet_folder_is_taken_from_the_configuration_folder(
    base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "job"
    folder.mkdir()
    path = _config_text(folder, base, "dask", outputs='scores_file = "out/scores.parquet"\n')
    monkeypatch.chdir(tmp_path)
    config = load_config(path, environ={URL: "duckdb:///x.duckdb"})
    assert config.outputs.scores_file == folder / "out" / "scores.parquet"  # type: ignore[attr-defined]


def _database_config(folder: Path, engine: str, extra: str = "", edit: tuple[str, str] = ("", "")):
    """The demo's configuration reading every table from the database (without surveys)."""
    crm = make_crm(N_CUSTOMERS, seed=5)
    path = demo_config(folder, crm, *edit)
    text = path.read_text().replace(*NO_SURVEYS, 1).replace("[segments]\n", BY_SEGMENTS, 1)
    path.write_text(text + f"\n[run]\nengine = {engine!r}\n" + extra)
    return path


def _with_a_lone_first_customer(transactions: pd.DataFrame) -> pd.DataFrame:
    """The first customer's purchases moved a year earlier: the only customer of the first
    lifecycle periods, as the first months of a business have few, in one partition alone."""
    first = transactions.loc[transactions["timestamp"].idxmin(), "customer_id"]
    is_first = transactions["customer_id"] == first
    moved = transactions["timestamp"].where(~is_first, transactions["timestamp"] - pd.Timedelta(
        days=365))  # fmt: skip
    return transactions.assign(timestamp=moved)


def _with_text_ids(crm: object, transactions: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The tables with text customer ids ('c1', 'c10', 'c2': not the numbers' order)."""
    tables = {"transactions": transactions,
              "customers": crm.customers.reset_index(),  # type: ignore[attr-defined]
              "service_contacts": crm.service_contacts}  # type: ignore[attr-defined]  # fmt: skip
    return {name: table.assign(customer_id="c" + table["customer_id"].astype(str))
            for name, table in tables.items()}  # fmt: skip


@pytest.mark.parametrize(
    ("backend", "edit", "variant"),
    [
        ("duckdb", ("", ""), ""),
        ("sqlite", ("", ""), "lone first customer"),
        ("sqlite", ('table = "transactions"', 'query = "SELECT * FROM transactions"'), ""),
        ("postgresql", ("", ""), "text ids"),
    ],
    ids=["duckdb", "sqlite-lone-first-customer", "sqlite-query", "postgresql-text-ids"],
)
def test_the_dask_scores_from_a_database_equal_the_in_memory_scores(
    cluster, crm_url, tmp_path: Path, backend: str, edit: tuple[str, str], variant: str
) -> None:
    crm = make_crm(N_CUSTOMERS, seed=5)
    url = crm_url(backend)
    transactions = _with_shared_orders(crm.transactions)
    if variant == "lone first customer":
        transactions = _with_a_lone_first_customer(transactions)
    tables = {"transactions": transactions}
    if variant == "text ids":
        tables = _with_text_ids(crm, transactions)
    write_crm(url, crm, **tables)
    (tmp_path / "memory").mkdir()
    memory_path = _database_config(tmp_path / "memory", "pandas", edit=edit)
    memory = run(load_config(memory_path, environ={URL: url}), environ={URL: url},
                 report_path=tmp_path / "memory.html")  # fmt: skip
    expected = _table(url)
    dask_path = _database_config(tmp_path, "dask", _on(cluster), edit=edit)
    result = run(load_config(dask_path, environ={URL: url}), environ={URL: url},
                 report_path=tmp_path / "dask.html")  # fmt: skip
    assert result.written is not None
    assert result.written.rows_written == len(expected)
    _same_scores(expected, _table(url))
    _same_results(memory, result)
    assert memory.loaded.report.n_rejected == 80
    assert result.in_database is not None
    assert result.in_database.n_chunks >= 2


def test_validate_and_fit_on_a_dask_file_run_on_the_workers(
    cluster, base: Path, tmp_path: Path
) -> None:
    url = f"duckdb:///{tmp_path / 'unused.duckdb'}"
    (tmp_path / "memory").mkdir()
    memory_path = _config_text(tmp_path / "memory", base, "pandas")
    dask_path = _config_text(tmp_path, base, "dask", _on(cluster))
    found = {}
    for name, path in (("memory", memory_path), ("dask", dask_path)):
        for command in ("validate", "fit"):
            code, output = run_cli([command, "--json"], path, url)
            assert code == 0, output
            found[name, command] = json.loads(output)
    memory, dask = found["memory", "validate"], found["dask", "validate"]
    assert dask["transactions_kept"] == memory["transactions_kept"]
    assert dask["rows_rejected"] == memory["rows_rejected"] == 80
    assert dask["observation_end"] == memory["observation_end"]
    assert [(r["reason"], r["rows"]) for r in dask["reasons"]] == [
        (r["reason"], r["rows"]) for r in memory["reasons"]
    ]
    assert any("Dask workers" in note for note in dask["notes"])
    memory, dask = found["memory", "fit"], found["dask", "fit"]
    assert dask["summary_source"] == "dask"
    assert dask["purchase_model"] == memory["purchase_model"]
    assert dask["customers"] == memory["customers"]
    np.testing.assert_allclose(dask["log_likelihood"], memory["log_likelihood"], rtol=1e-9)
    for key in ("purchase_params", "spend_params"):
        assert dask[key].keys() == memory[key].keys()
        for name, row in memory[key].items():
            np.testing.assert_allclose(dask[key][name]["estimate"], row["estimate"], rtol=1e-7)


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (('order_id = "order_id"', 'order_id = "order_no"'),
         r"\[source.transactions\] maps order_id = 'order_no', but table 'transactions' has no"),
        (('table = "transactions"\norder_id = "order_id"',
          'query = "SELECT * FROM transactions"\norder_id = "order_no"'),
         r"\[source.transactions\] maps order_id = 'order_no', but the query has no"),
        (('segment = "segment"', 'segment = "tier"'),
         r"\[source.customers\]: column\(s\) \['tier'\] not found in table 'customers'"),
    ],
)  # fmt: skip
def test_a_column_missing_from_a_database_table_is_named(
    cluster, tmp_path: Path, edit: tuple[str, str], named: str
) -> None:
    url = f"sqlite:///{tmp_path / 'crm.sqlite'}"
    write_crm(url, make_crm(50, seed=5))
    path = _database_config(tmp_path, "dask", _on(cluster), edit=edit)
    with pytest.raises(SchemaError, match=named):
        run(load_config(path, environ={URL: url}), environ={URL: url}, report_path=None)


def test_ranges_that_read_rows_twice_stop_the_run(
    cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'crm.sqlite'}"
    write_crm(url, make_crm(300, seed=5))
    path = _database_config(tmp_path, "dask", _on(cluster))
    # edges out of order: (-inf, 200] and (100, inf) both hold customers 101 to 200
    monkeypatch.setattr(_dask_read._Ranges, "edges", lambda self, connection, n_ranges: [200, 100])
    with pytest.raises(DataQualityError, match=r"the ranges of customer ids read [\d,]+ rows of"):
        validated_on_dask(load_config(path, environ={URL: url}), environ={URL: url})
