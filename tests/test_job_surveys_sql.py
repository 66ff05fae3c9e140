"""Surveys by value tier counted in the database equal cvalue.metrics.by_value's tables."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from cvalue.datasets import make_crm
from cvalue.errors import DataQualityError
from cvalue.job import run
from cvalue.job._read import _as_kind_of
from cvalue.job._surveys import (
    SurveyTable,
    answering_customers,
    id_kind,
    surveys_by_tier,
    surveys_in_database,
)
from cvalue.metrics import SmallSampleWarning, by_value
from cvalue.segments.in_table import tiers_in_table
from cvalue.segments.tiers import ValueTiers
from tests.test_job_chunked import N_CUSTOMERS, URL, _config, write_crm

BACKENDS = ["sqlite", "duckdb", "postgresql"]
COLUMNS = {name: name for name in ("customer_id", "timestamp", "nps", "csat", "ces")}
RUN = "run"


@pytest.fixture
def values() -> pd.Series:
    rng = np.random.default_rng(3)
    ids = pd.Index(np.arange(1, 801) * 7, name="customer_id")
    return pd.Series(rng.lognormal(3.0, 1.2, len(ids)), index=ids, name="clv")


@pytest.fixture
def answers(values: pd.Series) -> pd.DataFrame:
    return _answers(values, np.random.default_rng(4), 600)


def _answers(values: pd.Series, rng: np.random.Generator, n_answers: int) -> pd.DataFrame:
    return pd.DataFrame({
        "customer_id": rng.choice(values.index.to_numpy(), n_answers),
        "timestamp": pd.Timestamp("2024-01-01") + pd.to_timedelta(
            rng.permutation(n_answers), unit="h"),
        "nps": rng.integers(0, 11, n_answers), "csat": rng.integers(1, 6, n_answers),
        "ces": rng.integers(1, 8, n_answers),
    })  # fmt: skip


def _scores_table(id_type: sa.types.TypeEngine[object]) -> sa.Table:
    return sa.Table("scores", sa.MetaData(), sa.Column("customer_id", id_type),
                    sa.Column("clv_5y", sa.Float), sa.Column("value_tier", sa.Text),
                    sa.Column("run_id", sa.Text))  # fmt: skip


def _stored(connection: sa.Connection, values: pd.Series, answers: pd.DataFrame,
            cuts: tuple[float, ...] = (0.01, 0.05, 0.2),
            ) -> tuple[sa.Table, SurveyTable, ValueTiers]:  # fmt: skip
    """The scores and the answers stored, the scores' tiers ranked as a chunked run ranks them."""
    scores = values.rename("clv_5y").reset_index().assign(value_tier=None, run_id=RUN)
    scores.to_sql("scores", connection, index=False)
    answers.to_sql("surveys", connection, index=False)
    is_text = pd.api.types.is_string_dtype(scores["customer_id"])
    table = _scores_table(sa.Text() if is_text else sa.BigInteger())
    tiers = tiers_in_table(connection, table, value="clv_5y", tier="value_tier", cuts=cuts,
                           where=table.c.run_id == RUN)  # fmt: skip
    described = sa.inspect(connection).get_columns("surveys")
    id_type = next(column["type"] for column in described if column["name"] == "customer_id")
    columns = {ours: theirs for ours, theirs in COLUMNS.items() if ours in answers}
    return table, SurveyTable("surveys", None, columns, id_kind(id_type)), tiers


def _counted(connection: sa.Connection, survey: SurveyTable, table: sa.Table, tiers: ValueTiers,
             *, scored_is_text: bool = False) -> dict[str, pd.DataFrame] | None:  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallSampleWarning)
        return surveys_in_database(connection, survey, table, value="clv_5y",
                                   where=table.c.run_id == RUN, scored_is_text=scored_is_text,
                                   tiers=tiers)  # fmt: skip


def _pandas_path(connection: sa.Connection, answers: pd.DataFrame, table: sa.Table,
                 tiers: ValueTiers, scored: pd.Series) -> dict[str, pd.DataFrame]:  # fmt: skip
    """The tables as a run whose scores are elsewhere computes them (ids aligned first)."""
    converted = _as_kind_of(answers["customer_id"], scored)
    assert converted is not None
    answers = answers.assign(customer_id=converted.to_numpy())
    customers = answering_customers(connection, table, answers["customer_id"], value="clv_5y",
                                    where=table.c.run_id == RUN)  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallSampleWarning)
        return surveys_by_tier(answers, customers, tiers)


def _by_value(answers: pd.DataFrame, values: pd.Series, metric: str) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallSampleWarning)
        return by_value(metric, answers, values)  # type: ignore[arg-type]


@pytest.fixture
def connection(request: pytest.FixtureRequest, crm_url) -> Iterator[sa.Connection]:
    engine = sa.create_engine(crm_url(request.param))
    with engine.begin() as opened:
        yield opened
    engine.dispose()


@pytest.mark.parametrize("connection", BACKENDS, indirect=True)
def test_counted_tables_equal_by_values_tables(
    connection: sa.Connection, values: pd.Series, answers: pd.DataFrame
) -> None:
    table, survey, tiers = _stored(connection, values, answers)
    with pytest.warns(SmallSampleWarning) as caught:
        found = surveys_in_database(connection, survey, table, value="clv_5y",
                                    where=table.c.run_id == RUN, scored_is_text=False,
                                    tiers=tiers)  # fmt: skip
    assert found is not None
    assert [str(w.message).split(":")[0] for w in caught] == [
        "NPS by value tier", "CSAT by value tier", "CES by value tier"]  # fmt: skip
    for metric in ("nps", "csat", "ces"):
        pd.testing.assert_frame_equal(found[metric], _by_value(answers, values, metric),
                                      rtol=1e-12)  # fmt: skip
    assert found["nps"].loc["all", "detractors"] > 0
    assert found["nps"].loc["all", "customers_answering"] < found["nps"].loc["all", "answers"]


@pytest.mark.parametrize("connection", BACKENDS, indirect=True)
@pytest.mark.parametrize("text_side", ["answers", "scores"])
def test_ids_of_another_kind_match_as_the_pandas_path_aligns_them(
    connection: sa.Connection, values: pd.Series, answers: pd.DataFrame, text_side: str
) -> None:
    """Numbers match their digits: 7 and '7' (and ' 14', stripped) are one customer."""
    if text_side == "scores":
        values = values.set_axis(values.index.astype(str).astype(object))
    else:
        answers = answers.assign(customer_id=answers["customer_id"].astype(str))
        answers.loc[0, "customer_id"] = " 14"
    table, survey, tiers = _stored(connection, values, answers)
    assert survey.id_is_text is (text_side == "answers")
    scored = values.index.to_series()
    found = _counted(connection, survey, table, tiers, scored_is_text=text_side == "scores")
    assert found is not None
    expected = _pandas_path(connection, answers, table, tiers, scored)
    for metric, table_of in expected.items():
        pd.testing.assert_frame_equal(found[metric], table_of, rtol=1e-12)
    assert expected["nps"].loc["all", "answers"] == len(answers)


@pytest.mark.parametrize("connection", BACKENDS, indirect=True)
@pytest.mark.parametrize(
    "problem",
    ["customer without a value", "answer outside the scale", "fractional answer",
     "missing answer", "leading zero", "tie of latest answers"],
)  # fmt: skip
def test_problems_are_left_to_the_pandas_path_to_word(
    connection: sa.Connection, values: pd.Series, answers: pd.DataFrame, problem: str
) -> None:
    """The counts show the problem; the pandas path raises it with an example (see below)."""
    answers = answers.astype({"nps": "float64"})
    if problem == "customer without a value":
        answers.loc[5, "customer_id"] = 3
    elif problem == "answer outside the scale":
        answers.loc[5, "nps"] = 11
    elif problem == "fractional answer":
        answers.loc[5, "nps"] = 7.5
    elif problem == "missing answer":
        answers.loc[5, "nps"] = np.nan
    elif problem == "leading zero":
        answers = answers.assign(customer_id=answers["customer_id"].astype(str))
        answers.loc[5, "customer_id"] = "0" + answers.loc[5, "customer_id"]
    else:  # the same customer and time, one detractor and one promoter
        answers.loc[6] = answers.loc[5]
        answers.loc[5, "nps"], answers.loc[6, "nps"] = 3, 10
    table, survey, tiers = _stored(connection, values, answers)
    assert _counted(connection, survey, table, tiers) is None


@pytest.mark.parametrize("connection", ["sqlite"], indirect=True)
def test_a_tie_of_equal_latest_answers_is_counted(
    connection: sa.Connection, values: pd.Series, answers: pd.DataFrame
) -> None:
    """Two latest answers with one NPS answer: either is the latest, the tables are by_value's."""
    answers.loc[6] = answers.loc[5]
    answers.loc[6, "csat"] = 1 + answers.loc[5, "csat"] % 5
    table, survey, tiers = _stored(connection, values, answers)
    found = _counted(connection, survey, table, tiers)
    assert found is not None
    for metric in ("nps", "csat", "ces"):
        pd.testing.assert_frame_equal(found[metric], _by_value(answers, values, metric),
                                      rtol=1e-12)  # fmt: skip


@pytest.mark.parametrize("connection", ["sqlite", "duckdb"], indirect=True)
def test_answers_repeating_a_customer_without_a_timestamp_are_left_to_the_pandas_path(
    connection: sa.Connection, values: pd.Series, answers: pd.DataFrame
) -> None:
    once = answers.drop(columns="timestamp").drop_duplicates("customer_id")
    table, survey, tiers = _stored(connection, values, once)
    found = _counted(connection, survey, table, tiers)
    assert found is not None
    pd.testing.assert_frame_equal(found["nps"], _by_value(once, values, "nps"), rtol=1e-12)
    connection.execute(sa.text("DROP TABLE surveys"))
    twice = answers.drop(columns="timestamp")
    twice.to_sql("surveys", connection, index=False)
    assert _counted(connection, survey, table, tiers) is None
    with pytest.raises(DataQualityError, match="answers repeat a customer"):
        _pandas_path(connection, twice, table, tiers, values.index.to_series())


@settings(max_examples=40, deadline=None)
@given(
    n_customers=st.integers(1, 40),
    n_answers=st.integers(0, 120),
    cuts=st.sampled_from([(0.01, 0.05, 0.2), (0.1, 0.5), (0.3,)]),
    seed=st.integers(0, 2**32 - 1),
    has_ties=st.booleans(),
    missing_times=st.integers(0, 3),
)
def test_counted_tables_equal_by_values_tables_for_any_answers(
    n_customers: int,
    n_answers: int,
    cuts: tuple[float, ...],
    seed: int,
    has_ties: bool,
    missing_times: int,
) -> None:
    """Any answers and tiers: the tables are by_value's, or a tie left to the pandas path.

    An answer without a time is the latest (pandas sorts it last).
    """
    rng = np.random.default_rng(seed)
    ids = pd.Index(rng.choice(10**6, n_customers, replace=False), name="customer_id")
    values = pd.Series(rng.lognormal(2.0, 1.5, n_customers) - 5.0, index=ids, name="clv")
    answers = _answers(values, rng, n_answers)
    if has_ties:  # a few days only: one customer's answers share a time
        answers["timestamp"] = pd.Timestamp("2024-01-01") + pd.to_timedelta(
            rng.integers(0, 3, n_answers), unit="D")  # fmt: skip
    answers.loc[answers.index[:missing_times], "timestamp"] = pd.NaT
    engine = sa.create_engine("sqlite://")
    with engine.begin() as connection:
        table, survey, tiers = _stored(connection, values, answers, cuts)
        found = _counted(connection, survey, table, tiers)
    engine.dispose()
    stamps = answers["timestamp"].fillna(pd.Timestamp("2100-01-01"))
    latest = answers[stamps == stamps.groupby(answers["customer_id"]).transform("max")]
    nps_range = latest.groupby("customer_id")["nps"].agg(["min", "max"])
    assert (found is None) == (nps_range["min"] < nps_range["max"]).any()
    if found is None:
        return
    for metric in ("nps", "csat", "ces"):
        if not n_answers:  # by_value refuses no answers; the job's tables count none
            assert (found[metric]["answers"] == 0).all()
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SmallSampleWarning)
            expected = by_value(metric, answers, values, cuts=cuts)  # type: ignore[arg-type]
        pd.testing.assert_frame_equal(found[metric], expected, rtol=1e-9, atol=1e-9)


# --- in the chunked job ---------------------------------------------------------------------------


@pytest.fixture
def statements() -> Iterator[list[str]]:
    """Every SQL statement any engine runs meanwhile."""
    seen: list[str] = []

    def record(*arguments: object) -> None:
        seen.append(str(arguments[2]))

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", record)
    yield seen
    sa.event.remove(sa.engine.Engine, "before_cursor_execute", record)


def _reading_surveys(statements: list[str]) -> list[str]:
    selects = [text for text in statements if text.lstrip().upper().startswith(("SELECT", "WITH"))]
    return [text for text in selects if "surveys" in text]


def test_the_chunked_job_reads_only_counts_of_the_answers(
    crm_url, tmp_path: Path, statements: list[str]
) -> None:
    """Scores written to the source: no statement reads the answers' rows without GROUP BY."""
    crm = make_crm(N_CUSTOMERS, seed=5)
    url = crm_url("sqlite")
    write_crm(url, crm)
    result = run(_config(tmp_path, crm, url, 400, surveys=True), environ={URL: url},
                 report_path=None)  # fmt: skip
    assert set(result.surveys_by_value) == {"nps", "csat", "ces"}
    assert "surveys by value tier counted in the database" in result.notes
    reading = _reading_surveys(statements)
    assert len(reading) == 3
    assert all("GROUP BY" in text for text in reading), reading
    statements.clear()
    dry = run(_config(tmp_path, crm, url, 400, surveys=True), environ={URL: url},
              report_path=None, write=False)  # fmt: skip
    assert "surveys by value tier counted in the database" not in dry.notes
    assert any("GROUP BY" not in text for text in _reading_surveys(statements))
    for metric, expected in result.surveys_by_value.items():
        pd.testing.assert_frame_equal(dry.surveys_by_value[metric], expected, rtol=1e-9)


@pytest.mark.parametrize(
    ("problem", "message"),
    [("customer without a value", "answers come from customers without a value"),
     ("answer outside the scale", "answers outside the 0-10 scale")],
)  # fmt: skip
def test_the_chunked_job_words_problems_as_the_in_memory_job(
    crm_url, tmp_path: Path, problem: str, message: str
) -> None:
    crm = make_crm(N_CUSTOMERS, seed=5)
    surveys = crm.surveys.copy()  # type: ignore[attr-defined]
    if problem == "customer without a value":
        surveys.loc[3, "customer_id"] = -1
    else:
        surveys.loc[3, "nps"] = 11
    url = crm_url("sqlite")
    write_crm(url, crm, surveys=surveys)
    raised = []
    for chunk in (None, 400):
        with pytest.raises(DataQualityError, match=message) as caught:
            run(_config(tmp_path, crm, url, chunk, surveys=True), environ={URL: url},
                report_path=None, write=chunk is not None)  # fmt: skip
        raised.append(str(caught.value))
    assert raised[1] == raised[0]
