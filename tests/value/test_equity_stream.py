"""Customer equity of a base valued chunk by chunk (cvalue.value.EquityStream).

Whatever the chunks, the stream must give what ``customer_equity`` gives on the whole base
valued at once: the same groups in the same order, the same counts, the estimates to 1e-10 and
the delta-method errors to 1e-8 (relative), and with the same generator the same parameter draws
and bootstrap replicates. Chunks valued otherwise are refused, naming what differs.
"""

from __future__ import annotations

from functools import cache
from itertools import pairwise

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cvalue as cv
from cvalue.datasets import load_cdnow, load_donations
from cvalue.errors import SchemaError
from cvalue.value import (
    CustomerEquity,
    DiscountRates,
    EquityStream,
    FutureCohorts,
    clv,
    customer_equity,
)

HORIZONS = ("1y", "3y")
LATE = "aaa-late"  # sorts first, though only the base's last customers have it
SEGMENT_RATES = {"one-off": 0.20, "repeat": 0.10, "loyal": 0.08, LATE: 0.30}


@cache
def _cdnow() -> pd.DataFrame:
    return load_cdnow().summary


@cache
def _segment() -> pd.Series:
    summary = _cdnow()
    frequency = summary["frequency"].to_numpy()
    labels = np.where(frequency == 0, "one-off", np.where(frequency > 5, "loyal", "repeat"))
    segment = pd.Series(labels, index=summary.index, name="segment")
    segment.iloc[-40:] = LATE
    return segment


@cache
def _fitted(name: str) -> cv.BetaGeo:
    return getattr(cv, name)().fit(_cdnow(), unit="week")  # type: ignore[no-any-return]


@cache
def _spend() -> cv.GammaGamma:
    return cv.GammaGamma().fit(_cdnow())


def _options() -> dict[str, object]:
    """BG/NBD and Gamma-Gamma, rates and a cost to serve per segment, a marketing cost each."""
    marketing = pd.Series(
        np.linspace(0.0, 0.2, len(_cdnow())), index=_cdnow().index, name="marketing"
    )
    return {
        "purchases": _fitted("BetaGeo"),
        "spend": _spend(),
        "margin": 0.3,
        "horizon": "1y",
        "rates": DiscountRates.by_segment(SEGMENT_RATES),
        "cost_to_serve": {"one-off": 0.1, "repeat": 0.3, "loyal": 0.5, LATE: 0.0},
        "marketing_cost": marketing,
        "segment": _segment(),
    }


def _sliced(options: dict[str, object], rows: slice) -> dict[str, object]:
    """The options of one chunk: every Series per customer cut to the chunk's customers."""
    return {k: v.iloc[rows] if isinstance(v, pd.Series) else v for k, v in options.items()}


def _chunks(n_rows: int, bounds: list[int]) -> list[slice]:
    edges = [0, *bounds, n_rows]
    return [slice(start, end) for start, end in pairwise(edges)]


def _streamed(
    summary: pd.DataFrame,
    options: dict[str, object],
    chunks: list[slice],
    **equity: object,
) -> CustomerEquity:
    stream = EquityStream(HORIZONS, **equity)  # type: ignore[arg-type]
    for rows in chunks:
        stream.add(clv(summary.iloc[rows], **_sliced(options, rows)))  # type: ignore[arg-type]
    return stream.result()


def _whole(summary: pd.DataFrame, options: dict[str, object], **equity: object) -> CustomerEquity:
    return customer_equity(clv(summary, **options), HORIZONS, **equity)  # type: ignore[arg-type]


def assert_same_equity(found: CustomerEquity, expected: CustomerEquity) -> None:
    """Estimates to 1e-10, spreads to 1e-8 (relative), counts and order exactly.

    A bound is the estimate plus or minus z (below 2.6 at the levels used) standard errors, so
    it is held to the estimate's tolerance plus 2.6 times the spread's: a lower bound near zero
    would otherwise be held to far less than what the spread's 1e-8 allows. The spreads are
    forward differences at a relative step of 1e-6, whose rounding (cells summed in another
    order or split across batches) reaches a few 1e-9.
    """
    assert (found.level, found.method) == (expected.level, expected.method)
    tables = [("by_group", "customers"), ("total", None), ("future", "new_customers")]
    for name, count in tables:
        mine, theirs = getattr(found, name), getattr(expected, name)
        if theirs is None:
            assert mine is None
            continue
        assert mine.index.equals(theirs.index), name
        assert list(mine.columns) == list(theirs.columns), name
        if count is not None:
            assert mine[count].tolist() == theirs[count].tolist(), name
        estimates = [c for c in ("equity", "existing", "future") if c in theirs]
        np.testing.assert_allclose(mine[estimates], theirs[estimates], rtol=1e-10, err_msg=name)
        scale = float(np.nanmax(np.abs(theirs["equity"].to_numpy())))
        spread = theirs["std_error"].to_numpy()
        np.testing.assert_allclose(
            mine["std_error"], spread, rtol=1e-8, atol=1e-12 * scale, err_msg=name
        )
        allowed = 1e-10 * np.abs(theirs["equity"].to_numpy()) + 2.6e-8 * spread + 1e-12 * scale
        for bound in ("ci_lower", "ci_upper"):
            if np.isnan(spread).all():  # level=None: no interval on either side
                assert mine[bound].isna().all(), (name, bound)
                continue
            off = np.abs(mine[bound].to_numpy() - theirs[bound].to_numpy())
            assert (off <= allowed).all(), (name, bound, off, allowed)


@cache
def _whole_by_segment() -> CustomerEquity:
    return _whole(_cdnow(), _options(), by="segment")


# --- whole base and chunks -----------------------------------------------------------------------


@settings(max_examples=24)
@given(data=st.data())
def test_any_chunks_in_any_order_give_the_whole_bases_equity(data: st.DataObject) -> None:
    """Whatever the chunks, their order and the cells kept before they are valued and dropped."""
    summary = _cdnow()
    bounds = data.draw(
        st.lists(st.integers(1, len(summary) - 1), max_size=6, unique=True).map(sorted)
    )
    chunks = _chunks(len(summary), bounds)
    order = data.draw(st.permutations(range(len(chunks))))
    limit = data.draw(st.none() | st.integers(1, 3000))
    found = _streamed(
        summary, _options(), [chunks[i] for i in order], by="segment", max_cells=limit
    )
    assert_same_equity(found, _whole_by_segment())


@pytest.mark.parametrize("method", ["delta", "draws"])
def test_chunks_in_the_bases_order_give_its_equity_to_the_last_bit(method: str) -> None:
    """Cell sums accumulate customer by customer as the whole base's do, in the same order."""
    summary = _cdnow()
    chunks = _chunks(len(summary), [333, 1200, 2000])
    equity = {"by": "segment", "method": method, "n_draws": 20}
    found = _streamed(summary, _options(), chunks, **equity, rng=np.random.default_rng(2))
    expected = _whole(summary, _options(), **equity, rng=np.random.default_rng(2))
    pd.testing.assert_frame_equal(found.by_group, expected.by_group, check_exact=True)
    pd.testing.assert_frame_equal(found.total, expected.total, check_exact=True)


def test_a_group_first_seen_in_the_last_chunk_takes_its_sorted_place() -> None:
    summary = _cdnow()
    n_rows = len(summary)
    chunks = _chunks(n_rows, [1000, 2000, n_rows - 40])
    assert LATE not in set(_segment().iloc[: n_rows - 40])
    found = _streamed(summary, _options(), chunks, by="segment")
    groups = found.by_group.index.get_level_values("group").unique().tolist()
    assert groups == [LATE, "loyal", "one-off", "repeat"]
    assert found.by_group.loc[(LATE, "1y"), "customers"] == 40
    assert_same_equity(found, _whole_by_segment())


def test_risk_adjusted_rates_per_segment_are_kept_per_cell() -> None:
    """Each segment's cells are discounted at their own rate: a higher rate, a lower value."""
    summary, options = _cdnow(), _options()
    flat = {**options, "rates": DiscountRates.single(0.10)}
    chunks = _chunks(len(summary), [800, 1600])
    adjusted = _streamed(summary, options, chunks, by="segment", level=None)
    single = _streamed(summary, flat, chunks, by="segment", level=None)
    ratio = (adjusted.by_group["equity"] / single.by_group["equity"]).xs("3y", level="horizon")
    assert ratio[LATE] < ratio["one-off"] < 1.0 < ratio["loyal"]
    # "repeat" is discounted at 0.10 in both, so its ratio is exactly 1 (not below it); the
    # cells' (rows x rates) matrix product has 4 rates here and 1 there, whose rounding differs
    # by an ulp either way. Any mixing of rates across cells would move it by 1e-3 or more
    assert ratio["repeat"] == pytest.approx(1.0, rel=1e-12)
    assert_same_equity(single, _whole(summary, flat, by="segment", level=None))


@pytest.mark.parametrize("name", ["BetaGeo", "ModifiedBetaGeo", "ParetoNBD"])
@pytest.mark.parametrize("spend", ["gamma_gamma", "fixed"])
def test_each_purchase_model_with_either_spend(name: str, spend: str) -> None:
    summary = _cdnow()
    options = {
        **_options(),
        "purchases": _fitted(name),
        "spend": _spend() if spend == "gamma_gamma" else 12.5,
    }
    chunks = _chunks(len(summary), [500, 501, 1900])
    whole = _whole(summary, options)
    assert_same_equity(_streamed(summary, options, chunks), whole)
    assert whole.by_group.index.get_level_values("group").unique().tolist() == ["all"]


def test_the_bg_bb_on_the_donors() -> None:
    donations = load_donations()
    donors = donations.loc[donations.index.repeat(donations["weight"])].drop(columns="weight")
    donors = donors.reset_index(drop=True)
    model = cv.BetaGeoBetaBinom().fit(donations, unit="year")
    options = {
        "purchases": model,
        "spend": 50.0,
        "margin": 1.0,
        "horizon": "5y",
        "rates": DiscountRates.single(0.10),
        "cost_to_serve": 2.0,
        "marketing_cost": 0.0,
        "period": "1y",
    }
    chunks = _chunks(len(donors), [4000, 8000])
    found = _streamed(donors, options, chunks)
    assert_same_equity(found, _whole(donors, options))
    assert found.by_group["customers"].tolist() == [len(donors)] * 2


@pytest.mark.parametrize("per_cohort", [False, True])
def test_contracts_with_one_model_or_one_per_cohort(per_cohort: bool) -> None:
    survivors = pd.DataFrame(
        [[1000, 631, 468, 382, 326, 289, 262, 241], [1000, 869, 743, 653, 593, 551, 517, 491]],
        index=["Regular", "High End"],
    )  # Fader & Hardie (2007)
    model = (
        cv.ShiftedBetaGeo().fit_survivors(survivors, shared=False, unit="year")
        if per_cohort
        else cv.ShiftedBetaGeo().fit_survivors(survivors.iloc[0].tolist(), unit="year")
    )
    rng = np.random.default_rng(11)
    contracts = pd.DataFrame(
        {"duration": rng.integers(0, 8, 3000), "is_censored": rng.integers(0, 2, 3000)}
    )
    cohort = pd.Series(np.where(np.arange(3000) < 2000, "Regular", "High End"))
    options = {
        "purchases": model,
        "spend": 120.0,
        "margin": 0.4,
        "horizon": "5y",
        "rates": DiscountRates.single(0.10),
        "cost_to_serve": 5.0,
        "marketing_cost": 1.0,
        "model_by": cohort if per_cohort else None,
    }
    found = _streamed(contracts, options, _chunks(len(contracts), [1000, 2500]))
    assert_same_equity(found, _whole(contracts, options))
    assert found.total.loc["3y", "std_error"] > 0.0  # the first year is paid now, for sure


def test_a_model_with_covariates_keys_its_cells_by_their_values_too() -> None:
    summary = _cdnow().assign(
        channel=np.where(np.arange(len(_cdnow())) % 3 == 0, "web", "store"),
        tenure=np.arange(len(_cdnow())) % 4 * 0.5,
    )
    model = cv.BetaGeo().fit(summary, unit="week", covariates=["channel", "tenure"])
    options = {**_options(), "purchases": model}
    chunks = _chunks(len(summary), [600, 1700])
    assert_same_equity(
        _streamed(summary, options, chunks, by="segment"),
        _whole(summary, options, by="segment"),
    )


@pytest.mark.parametrize(("method", "n_draws"), [("draws", 60), ("bootstrap", 2)])
def test_draws_and_replicates_equal_the_whole_bases_with_the_same_seed(
    method: str, n_draws: int
) -> None:
    summary = _cdnow()
    chunks = _chunks(len(summary), [700, 1400])
    equity = {"by": "segment", "method": method, "n_draws": n_draws, "level": 0.9}
    found = _streamed(summary, _options(), chunks, **equity, rng=np.random.default_rng(3))
    expected = _whole(summary, _options(), **equity, rng=np.random.default_rng(3))
    assert_same_equity(found, expected)
    assert (found.by_group["ci_lower"] < found.by_group["ci_upper"]).all()


@cache
def _regional() -> dict[str, object]:
    """Purchase and spend models per region: several blocks, one per region."""
    summary = _cdnow()
    region = pd.Series(
        np.where(np.arange(len(summary)) % 3 == 0, "east", "west"), index=summary.index
    )
    purchases = {r: cv.BetaGeo().fit(summary[region == r], unit="week") for r in ("east", "west")}
    spend = {r: cv.GammaGamma().fit(summary[region == r]) for r in ("east", "west")}
    return {
        "purchases": purchases,
        "spend": spend,
        "margin": {"east": 0.3, "west": 0.25},
        "horizon": "1y",
        "rates": DiscountRates.by_segment({"east": 0.1, "west": 0.12}),
        "cost_to_serve": 0.2,
        "marketing_cost": 0.05,
        "segment": region,
    }


@pytest.mark.parametrize("method", ["delta", "draws"])
def test_models_per_segment_and_future_cohorts(method: str) -> None:
    summary, options = _cdnow(), _regional()
    future = FutureCohorts(customers_per_period={"east": 20.0, "west": 35.0}, acquisition_cost=15.0)
    equity = {"by": "segment", "method": method, "future": future, "n_draws": 40}
    chunks = _chunks(len(summary), [1, 1200])  # the first chunk has only an eastern customer
    found = _streamed(summary, options, chunks, **equity, rng=np.random.default_rng(8))
    expected = _whole(summary, options, **equity, rng=np.random.default_rng(8))
    assert found.future is not None
    assert_same_equity(found, expected)


def test_equal_models_loaded_anew_for_each_chunk_are_the_same_models() -> None:
    summary, options = _cdnow(), _options()
    saved, saved_spend = _fitted("BetaGeo").to_dict(), _spend().to_dict()
    stream = EquityStream(HORIZONS, by="segment")
    for rows in _chunks(len(summary), [1000]):
        loaded = {
            **_sliced(options, rows),
            "purchases": cv.BetaGeo.from_dict(saved),
            "spend": cv.GammaGamma.from_dict(saved_spend),
        }
        stream.add(clv(summary.iloc[rows], **loaded))  # type: ignore[arg-type]
    assert_same_equity(stream.result(), _whole_by_segment())


def test_memory_is_the_distinct_cells_not_the_customers() -> None:
    """The base added twice: twice the customers and the value, not one more cell."""
    summary, options = _cdnow(), _options()
    values = clv(summary, **options)  # type: ignore[arg-type]
    stream = EquityStream(HORIZONS, by="segment", level=None)
    stream.add(values)
    (block,) = stream._blocks.values()
    n_cells = len(block.frame)
    stream.add(values)
    assert len(block.frame) == n_cells < len(summary)
    once = _whole(summary, options, by="segment", level=None).by_group
    twice = stream.result().by_group
    assert (twice["customers"] == 2 * once["customers"]).all()
    np.testing.assert_allclose(twice["equity"], 2.0 * once["equity"], rtol=1e-12)


# --- cells valued and dropped past max_cells ------------------------------------------------------


@pytest.mark.parametrize("level", [0.95, None])
def test_models_per_segment_and_future_cohorts_past_the_limit(level: float | None) -> None:
    """Blocks that appear in later chunks, groups that arrive late, and new customers."""
    summary, options = _cdnow(), _regional()
    future = FutureCohorts(customers_per_period={"east": 20.0, "west": 35.0}, acquisition_cost=15.0)
    equity = {"by": "segment", "future": future, "level": level}
    chunks = _chunks(len(summary), [1, 300, 1200, 2000])
    found = _streamed(summary, options, chunks, **equity, max_cells=200)
    assert_same_equity(found, _whole(summary, options, **equity))


@pytest.mark.parametrize("name", ["BetaGeo", "ParetoNBD"])
def test_kept_cells_never_pass_the_limit(name: str) -> None:
    summary = _cdnow()
    options = {**_options(), "purchases": _fitted(name)}
    stream = EquityStream(HORIZONS, by="segment", max_cells=150)
    for rows in _chunks(len(summary), list(range(100, len(summary), 100))):
        stream.add(clv(summary.iloc[rows], **_sliced(options, rows)))  # type: ignore[arg-type]
        assert sum(len(block.frame) for block in stream._blocks.values()) <= 150
    assert_same_equity(stream.result(), _whole(summary, options, by="segment"))


def test_draws_keep_every_cell_whatever_the_limit() -> None:
    """Replicates are drawn at the end, over every cell: the limit does not apply."""
    summary = _cdnow()
    equity = {"by": "segment", "method": "draws", "n_draws": 20}
    chunks = _chunks(len(summary), [333, 1200, 2000])
    found = _streamed(
        summary, _options(), chunks, **equity, rng=np.random.default_rng(2), max_cells=10
    )
    expected = _whole(summary, _options(), **equity, rng=np.random.default_rng(2))
    pd.testing.assert_frame_equal(found.by_group, expected.by_group, check_exact=True)


@pytest.mark.parametrize("limit", [0, -5, 2.5, True])
def test_a_limit_that_is_not_a_positive_whole_number_is_refused(limit: object) -> None:
    with pytest.raises(SchemaError, match=r"max_cells must be a whole number of at least 1"):
        EquityStream(HORIZONS, max_cells=limit)  # type: ignore[arg-type]


# --- refusals ------------------------------------------------------------------------------------


def _stream_of_first_chunk() -> EquityStream:
    stream = EquityStream(HORIZONS, by="segment")
    stream.add(clv(_cdnow().iloc[:1000], **_sliced(_options(), slice(0, 1000))))  # type: ignore[arg-type]
    return stream


@pytest.mark.parametrize(
    ("changed", "message"),
    [
        ({"purchases": "ParetoNBD"}, r"the purchase model differs \(a ParetoNBD"),
        ({"purchases": "other BetaGeo"}, r"the purchase model differs \(a BetaGeo with .*r="),
        ({"spend": 10.0}, r"the spend differs \(10.0 instead of a GammaGamma"),
        ({"margin": 0.35}, r"the margin differs \(0.35 instead of 0.3\)"),
        ({"rates": DiscountRates.single(0.1)}, r"the discount rates differ"),
        ({"period": "1w"}, r"the period is 1 week instead of 1 month"),
        ({"horizon": "2y"}, r"the horizon is 2 year"),
        ({"cost_to_serve": {"one-off": 0.1}}, r"the cost to serve differs"),
    ],
)
def test_a_chunk_valued_otherwise_is_refused(changed: dict[str, object], message: str) -> None:
    summary, options = _cdnow(), _options()
    stream = _stream_of_first_chunk()
    other = {**_sliced(options, slice(1000, 2000)), **changed}
    if other["purchases"] == "ParetoNBD":
        other["purchases"] = _fitted("ParetoNBD")
    elif other["purchases"] == "other BetaGeo":
        other["purchases"] = cv.BetaGeo().fit(summary.iloc[::2], unit="week")
    if isinstance(other["cost_to_serve"], dict) and len(other["cost_to_serve"]) == 1:
        other["cost_to_serve"] = {**options["cost_to_serve"], "one-off": 0.9}  # type: ignore[dict-item]
    chunk = clv(summary.iloc[1000:2000], **other)  # type: ignore[arg-type]
    with pytest.raises(SchemaError, match=r"chunk 2 was valued otherwise than the first") as info:
        stream.add(chunk)
    assert info.match(message)
    assert info.match("Value every chunk with the same models, rates and options")


def test_every_difference_is_named_at_once() -> None:
    stream = _stream_of_first_chunk()
    other = {
        **_sliced(_options(), slice(1000, 2000)),
        "margin": 0.4,
        "rates": DiscountRates.single(0.1),
    }
    with pytest.raises(SchemaError, match=r"discount rates differ.*; the margin differs"):
        stream.add(clv(_cdnow().iloc[1000:2000], **other))  # type: ignore[arg-type]


def test_a_refused_chunk_leaves_the_stream_as_it_was() -> None:
    summary, options = _cdnow(), _options()
    stream = _stream_of_first_chunk()
    wrong = {**_sliced(options, slice(1000, n := len(summary))), "margin": 0.5}
    with pytest.raises(SchemaError):
        stream.add(clv(summary.iloc[1000:], **wrong))  # type: ignore[arg-type]
    stream.add(clv(summary.iloc[1000:], **_sliced(options, slice(1000, n))))  # type: ignore[arg-type]
    assert_same_equity(stream.result(), _whole_by_segment())


def test_what_is_not_a_chunks_valuation_is_refused() -> None:
    stream = EquityStream(HORIZONS, by="segment")
    with pytest.raises(SchemaError, match=r"at least one chunk: call add\(values\)"):
        stream.result()
    with pytest.raises(SchemaError, match=r"needs a chunk's clv\(\.\.\.\) result, got DataFrame"):
        stream.add(_cdnow())  # type: ignore[arg-type]
    options = {**_options(), "segment": None, "rates": DiscountRates.single(0.1)}
    options["cost_to_serve"] = 0.1
    with pytest.raises(SchemaError, match=r"by='segment' is not a column of the values"):
        stream.add(clv(_cdnow(), **options))  # type: ignore[arg-type]


def test_options_the_whole_base_would_refuse_are_refused_before_any_chunk() -> None:
    with pytest.raises(SchemaError, match=r"method='draws' needs rng="):
        EquityStream(HORIZONS, method="draws")
    with pytest.raises(SchemaError, match=r"level must be between 0 and 1, got 95"):
        EquityStream(HORIZONS, level=95)
    with pytest.raises(SchemaError, match=r"by must name a column .* got Series"):
        EquityStream(HORIZONS, by=_segment())  # type: ignore[arg-type]
    with pytest.raises(SchemaError, match=r"unit"):
        EquityStream((3,))  # type: ignore[arg-type]


def test_rates_per_customer_are_each_chunks_own() -> None:
    summary = _cdnow()
    quoted = pd.Series(np.linspace(0.05, 0.25, len(summary)), index=summary.index)
    options = {**_options(), "rates": DiscountRates.by_customer(quoted)}
    stream = EquityStream(HORIZONS, by="segment")
    for rows in _chunks(len(summary), [900, 1800]):
        chunk = {**_sliced(options, rows), "rates": DiscountRates.by_customer(quoted.iloc[rows])}
        stream.add(clv(summary.iloc[rows], **chunk))  # type: ignore[arg-type]
    assert_same_equity(stream.result(), _whole(summary, options, by="segment"))
