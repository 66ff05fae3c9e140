"""Holdout scores: known values by hand, properties, and the refusals."""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cvalue
from cvalue.datasets import load_cdnow
from cvalue.errors import DataQualityError, SchemaError
from cvalue.evaluation import (
    _count_variances,
    brier_score,
    calibration_table,
    gini,
    holdout_scores,
    holdout_total,
    pattern_ranking_scores,
    top_decile_lift,
)

PROPERTY = settings(deadline=None, derandomize=True, database=None, max_examples=60)

counts = st.lists(st.integers(0, 20), min_size=2, max_size=40)


@st.composite
def paired(draw: st.DrawFn) -> tuple[list[float], list[float]]:
    actual = draw(counts)
    predicted = draw(
        st.lists(st.floats(0, 30, allow_nan=False), min_size=len(actual), max_size=len(actual))
    )
    return [float(a) for a in actual], predicted


# --- holdout_scores ---------------------------------------------------------------------------


def test_holdout_scores_by_hand() -> None:
    # errors 0.5, -1, 0.5: |e| mean 2/3, e^2 mean 0.5, mean 0; totals 3 and 3
    scores = holdout_scores([0, 2, 1], [0.5, 1.0, 1.5])
    assert list(scores.index) == [
        "holdout_mae", "holdout_rmse", "holdout_bias", "relative_error_total",
        "predicted_total", "actual_total",
    ]  # fmt: skip
    assert scores["holdout_mae"] == pytest.approx(2 / 3)
    assert scores["holdout_rmse"] == pytest.approx(math.sqrt(0.5))
    assert scores["holdout_bias"] == pytest.approx(0.0)
    assert scores["relative_error_total"] == pytest.approx(0.0)
    over = holdout_scores([1, 3], [2, 4])  # one too many each: bias 1, total 6 vs 4
    assert over["holdout_bias"] == pytest.approx(1.0)
    assert over["relative_error_total"] == pytest.approx(0.5)
    assert math.isnan(holdout_scores([0, 0], [1, 1])["relative_error_total"])


def test_series_are_matched_by_customer_id() -> None:
    actual = pd.Series([1.0, 3.0], index=["a", "b"])
    predicted = pd.Series([3.0, 1.0], index=["b", "a"])
    assert holdout_scores(actual, predicted)["holdout_mae"] == 0.0


@given(paired())
@PROPERTY
def test_error_inequalities_and_order_invariance(pair: tuple[list[float], list[float]]) -> None:
    actual, predicted = pair
    scores = holdout_scores(actual, predicted)
    assert scores["holdout_mae"] >= abs(scores["holdout_bias"]) - 1e-9
    assert scores["holdout_rmse"] >= scores["holdout_mae"] - 1e-9
    order = np.random.default_rng(0).permutation(len(actual))
    shuffled = holdout_scores(np.array(actual)[order], np.array(predicted)[order])
    pd.testing.assert_series_equal(scores, shuffled, rtol=1e-9)


# --- gini and lift ----------------------------------------------------------------------------


def test_gini_by_hand() -> None:
    # outcome 4, 2, 0, 0: the perfect gains curve 0, 2/3, 1, 1, 1 has raw Gini
    # (2/4)(2/3 + 1 + 1 + 1) - 1/4 - 1 = 7/12; ranked 2nd, 1st, 3rd, 4th: 0, 1/3, 1, 1, 1, 5/12
    assert gini([3, 2, 1, 0], [4, 2, 0, 0]) == pytest.approx(1.0)
    assert gini([2, 3, 1, 0], [4, 2, 0, 0]) == pytest.approx((5 / 12) / (7 / 12))
    assert gini([0, 1, 2, 3], [4, 2, 0, 0]) == pytest.approx(-1.0)
    assert gini([1, 1, 1, 1], [4, 2, 0, 0]) == pytest.approx(0.0)
    # ties average: the top two tie, sharing 3 each; curve 0, 1/2, 1, 1, 1 gives 1/2
    assert gini([1, 1, 0, 0], [4, 2, 0, 0]) == pytest.approx(0.5 / (7 / 12))
    assert math.isnan(gini([1, 2, 3], [2, 2, 2]))  # nothing to rank


def test_top_decile_lift_by_hand() -> None:
    outcome = [0] * 18 + [3, 1]
    assert top_decile_lift(range(20), outcome) == pytest.approx(10.0)  # the top 2 of 20
    assert top_decile_lift([0] * 20, outcome) == pytest.approx(1.0)  # constant: chance
    assert top_decile_lift(range(20, 0, -1), outcome) == pytest.approx(0.0)
    # the top 2 of 20 hold 3 + 1 of a total of 20: share 1/5, lift 2
    assert top_decile_lift(range(20), [1] * 16 + [0, 0, 3, 1]) == pytest.approx(2.0)
    # 10 % of 5 customers is half the first: half of its 2 of a total of 4, lift 2.5
    assert top_decile_lift(range(5), [0, 0, 1, 1, 2]) == pytest.approx(2.5)


outcomes = st.lists(st.integers(0, 50), min_size=2, max_size=60).filter(
    lambda values: len(set(values)) > 1
)


@given(outcomes)
@PROPERTY
def test_gini_perfect_reversed_and_constant(outcome: list[int]) -> None:
    values = np.array(outcome, dtype=np.float64)
    assert gini(values, values) == pytest.approx(1.0)
    assert gini(-values, values) == pytest.approx(-1.0)
    assert gini(np.zeros(len(values)), values) == pytest.approx(0.0, abs=1e-12)


@given(outcomes, st.data())
@PROPERTY
def test_ranking_scores_do_not_depend_on_customer_order(
    outcome: list[int], data: st.DataObject
) -> None:
    values = data.draw(st.lists(st.integers(0, 5), min_size=len(outcome), max_size=len(outcome)))
    order = np.random.default_rng(1).permutation(len(outcome))
    shuffled_values, shuffled_outcome = np.array(values)[order], np.array(outcome)[order]
    assert gini(shuffled_values, shuffled_outcome) == pytest.approx(gini(values, outcome))
    assert top_decile_lift(shuffled_values, shuffled_outcome) == pytest.approx(
        top_decile_lift(values, outcome)
    )
    assert -1.0 - 1e-9 <= gini(values, outcome) <= 1.0 + 1e-9
    assert 0.0 <= top_decile_lift(values, outcome) <= top_decile_lift(outcome, outcome) + 1e-9


@given(st.integers(10, 200), st.data())
@PROPERTY
def test_lift_of_a_perfect_ranking_reaches_the_bound(n: int, data: st.DataObject) -> None:
    # every purchase in at most the top 10 % of customers: the lift is 1 / 0.10
    holders = data.draw(st.integers(1, n // 10))
    outcome = np.zeros(n)
    outcome[:holders] = data.draw(st.lists(st.integers(1, 9), min_size=holders, max_size=holders))
    assert top_decile_lift(outcome, outcome) == pytest.approx(10.0)


@given(outcomes, st.data())
@PROPERTY
def test_ranking_scores_tie_negative_and_positive_zero(outcome: list[int], data: st.DataObject):
    # -0.0 == 0.0: one tie group, whichever sign each zero has
    n = len(outcome)
    signs = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    values = np.where(np.arange(n) % 3 == 0, 0.0, np.arange(n, dtype=np.float64))
    signed = np.where(signs & (values == 0.0), -0.0, values)
    assert gini(signed, outcome) == gini(values, outcome)
    assert top_decile_lift(signed, outcome) == top_decile_lift(values, outcome)


@given(st.data())
@PROPERTY
def test_ranking_scores_of_patterns_are_the_rows(data: st.DataObject) -> None:
    # rows that share a pattern share its prediction: the scores from the patterns are the rows'
    n_patterns = data.draw(st.integers(1, 12))
    n = data.draw(st.integers(2, 60))
    codes = np.array(data.draw(st.lists(st.integers(0, n_patterns - 1), min_size=n, max_size=n)))
    predicted = np.array(data.draw(st.lists(st.sampled_from([0.0, 0.5, 1.0, 2.5]),
                                            min_size=n_patterns, max_size=n_patterns)))  # fmt: skip
    actual = np.array(data.draw(st.lists(st.integers(0, 6), min_size=n, max_size=n)), dtype=float)
    weights = np.array(data.draw(st.lists(st.integers(0, 4), min_size=n, max_size=n)), dtype=float)
    if weights.sum() == 0:
        weights[0] = 1.0
    used = np.flatnonzero(np.bincount(codes, weights=weights, minlength=n_patterns) > 0)
    customers = np.bincount(codes, weights=weights, minlength=n_patterns)[used]
    held = np.bincount(codes, weights=weights * actual, minlength=n_patterns)[used]
    ours = pattern_ranking_scores(predicted[used], customers, held, actual, weights)
    rows = predicted[codes]
    expected = (gini(rows, actual, weights=weights), top_decile_lift(rows, actual, weights=weights))
    np.testing.assert_allclose(ours, expected, rtol=1e-12, atol=1e-12)


def test_ranking_scores_group_the_rows_without_sorting_them() -> None:
    """Regression: the gains curve's groups came from np.unique, about 50 bytes a row at once
    (172 MiB for the 3.6M holdout rows of a 10M base); one stable sort and its runs hold 27."""
    rng = np.random.default_rng(1)
    n = 400_000
    predicted = np.round(rng.gamma(1.0, 1.0, n), 3)
    actual = rng.poisson(predicted).astype(np.float64)
    weights = rng.integers(1, 9, n).astype(np.float64)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        gini(predicted, actual, weights=weights)
        top_decile_lift(predicted, actual, weights=weights)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert peak < 32 * n


# --- P(alive) ---------------------------------------------------------------------------------


def test_brier_and_calibration_by_hand() -> None:
    # (0.9-1)^2 + 0.2^2 + (0.5-1)^2 = 0.01 + 0.04 + 0.25 = 0.30, over 3
    assert brier_score([0.9, 0.2, 0.5], [True, False, True]) == pytest.approx(0.1)
    assert brier_score([1.0, 0.0], [1, 0]) == 0.0
    table = calibration_table([0.05, 0.15, 0.95, 0.9, 1.0], [0, 0, 1, 0, 1])
    assert list(table.columns) == ["p_alive_to", "customers", "mean_p_alive", "share_active"]
    assert table.index.tolist() == pytest.approx([0.0, 0.1, 0.9])
    assert table["customers"].tolist() == [1, 1, 3]
    assert table.loc[0.9, "mean_p_alive"] == pytest.approx(0.95)
    assert table.loc[0.9, "share_active"] == pytest.approx(2 / 3)


@given(st.lists(st.tuples(st.floats(0, 1), st.booleans()), min_size=1, max_size=40))
@PROPERTY
def test_brier_is_a_bounded_order_free_score(pairs: list[tuple[float, bool]]) -> None:
    p_alive, active = (list(column) for column in zip(*pairs, strict=True))
    score = brier_score(p_alive, active)
    assert 0.0 <= score <= 1.0
    assert brier_score(p_alive[::-1], active[::-1]) == pytest.approx(score)
    table = calibration_table(p_alive, active)
    assert table["customers"].sum() == len(pairs)
    assert table["share_active"].between(0, 1).all()


# --- patterns: rows weighted by their customers ----------------------------------------------


@st.composite
def patterns(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows of (value, outcome, P(alive), whole weight): few distinct values, so ties abound."""
    n_rows = draw(st.integers(1, 30))
    rows = st.lists(st.integers(0, 6), min_size=n_rows, max_size=n_rows)
    values = np.array(draw(rows), dtype=np.float64) / draw(st.sampled_from([1.0, 3.0]))
    outcome = np.array(draw(rows), dtype=np.float64)
    p_alive = np.array(draw(rows), dtype=np.float64) / 6.0
    weights = np.array(draw(st.lists(st.integers(0, 9), min_size=n_rows, max_size=n_rows)))
    weights[draw(st.integers(0, n_rows - 1))] += 1  # at least one customer
    return values, outcome, p_alive, weights


def all_scores(
    values: np.ndarray, outcome: np.ndarray, p_alive: np.ndarray, weights: np.ndarray | None
) -> dict[str, float]:
    """Every weighted score of the rows: the holdout errors, the ranking scores and Brier."""
    return {
        **holdout_scores(outcome, values, weights=weights).to_dict(),
        "gini": gini(values, outcome, weights=weights),
        "top_decile_lift": top_decile_lift(values, outcome, weights=weights),
        "brier": brier_score(p_alive, outcome > 0, weights=weights),
    }


def assert_same_scores(found: dict[str, float], expected: dict[str, float]) -> None:
    assert found.keys() == expected.keys()
    for name, value in expected.items():
        if math.isnan(value):
            assert math.isnan(found[name]), name
        else:
            assert found[name] == pytest.approx(value, rel=1e-12, abs=1e-12), name


@given(patterns())
@PROPERTY
def test_weighted_rows_score_as_the_rows_repeated(
    rows: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> None:
    values, outcome, p_alive, weights = rows
    expanded = [np.repeat(column, weights) for column in (values, outcome, p_alive)]
    assert_same_scores(all_scores(values, outcome, p_alive, weights), all_scores(*expanded, None))


@given(patterns(), st.sampled_from([0.25, 1 / 3, 7.5]))
@PROPERTY
def test_scaled_weights_give_the_same_scores(
    rows: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], scale: float
) -> None:
    # every score but the totals is a mean or a share over the customers: fractional weights
    # w / 3 score as the whole weights w, which score as the rows repeated; totals scale
    values, outcome, p_alive, weights = rows
    expected = all_scores(values, outcome, p_alive, weights)
    for total in ("predicted_total", "actual_total"):
        expected[total] *= scale
    assert_same_scores(all_scores(values, outcome, p_alive, weights * scale), expected)


def test_fractional_weights_by_hand() -> None:
    # half a customer ranked first holds the whole outcome: 10 % of 5 customers is that half
    assert top_decile_lift([1, 0], [1, 0], weights=[0.5, 4.5]) == pytest.approx(10.0)
    # the gains curve (0, 0), (0.5, 1), (5, 1): area (0.25 + 4.5) / 5, raw Gini 0.9 of 0.9
    assert gini([1, 0], [1, 0], weights=[0.5, 4.5]) == pytest.approx(1.0)
    # ranked the wrong way: (0, 0), (4.5, 0), (5, 1): area 0.25 / 5, raw Gini -0.9
    assert gini([0, 1], [1, 0], weights=[0.5, 4.5]) == pytest.approx(-1.0)
    scores = holdout_scores([0, 2], [1, 1], weights=[0.5, 1.5])  # errors 1, -1; n = 2
    assert scores["holdout_bias"] == pytest.approx((0.5 - 1.5) / 2)
    assert scores["holdout_mae"] == pytest.approx(1.0)
    assert scores["actual_total"] == pytest.approx(3.0)
    assert scores["predicted_total"] == pytest.approx(2.0)
    assert brier_score([0.5, 1.0], [0, 1], weights=[0.2, 0.6]) == pytest.approx(0.05 / 0.8)


def test_ties_within_and_across_patterns_are_shared() -> None:
    # value 1 over two rows is one tie group of 3 customers sharing 2 purchases: the gains
    # curve is that of one row of 3 customers buying 2/3 each, and the rows' order is no matter
    values, outcome, weights = [2, 1, 1, 0], [3, 2, 0, 0], [1, 1, 2, 3]
    merged = top_decile_lift([2, 1, 0], [3, 2 / 3, 0], weights=[1, 3, 3])
    assert top_decile_lift(values, outcome, weights=weights) == pytest.approx(merged, rel=1e-12)
    assert top_decile_lift(values[::-1], outcome[::-1], weights=weights[::-1]) == pytest.approx(
        merged, rel=1e-12
    )
    # raw Gini 2 (1 (0 + 3/5) + 3 (3/5 + 1) + 3 (1 + 1)) / (2 · 7) - 1 = 22/35 over the
    # perfect ranking's 2 (1 (0 + 3/5) + 1 (3/5 + 1) + 5 (1 + 1)) / (2 · 7) - 1 = 26/35
    found = gini(values, outcome, weights=weights)
    assert found == pytest.approx(22 / 26, rel=1e-12)
    assert found == pytest.approx(gini([2, 1, 1, 1, 0, 0, 0], [3, 2, 0, 0, 0, 0, 0]), rel=1e-12)


def test_zero_weights_leave_their_rows_out() -> None:
    values, outcome = np.array([5.0, 3.0, 2.0, 1.0]), np.array([0.0, 4.0, 1.0, 0.0])
    weights = np.array([0.0, 2.0, 1.0, 0.0])
    kept = weights > 0
    assert gini(values, outcome, weights=weights) == pytest.approx(
        gini(values[kept], outcome[kept], weights=weights[kept]), rel=1e-12
    )
    assert top_decile_lift(values, outcome, weights=weights) == pytest.approx(
        top_decile_lift(values[kept], outcome[kept], weights=weights[kept]), rel=1e-12
    )


def test_weights_as_a_series_are_matched_by_customer_id() -> None:
    actual = pd.Series([1.0, 3.0, 0.0], index=["a", "b", "c"])
    predicted = pd.Series([0.0, 1.0, 3.0], index=["c", "a", "b"])
    weights = pd.Series([1.0, 4.0, 2.0], index=["c", "b", "a"])  # a: 2, b: 4, c: 1
    scores = holdout_scores(actual, predicted, weights=weights)
    assert scores["holdout_mae"] == 0.0
    assert scores["actual_total"] == pytest.approx(2 * 1 + 4 * 3)
    assert gini(predicted, actual, weights=weights) == pytest.approx(1.0)
    with pytest.raises(SchemaError, match=r"'actual' and 'weights' are misaligned: 2 customer"):
        holdout_scores(actual, predicted, weights=weights.rename({"a": "z"}))


# --- refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "error", "phrases"),
    [
        (lambda: holdout_scores([1, 2, 3], [1, 2]), SchemaError, ["misaligned", "3 values", "2"]),
        (
            lambda: holdout_scores(
                pd.Series([1.0, 2.0], index=["a", "b"]), pd.Series([1.0, 2.0], index=["a", "c"])
            ),
            SchemaError,
            ["misaligned", "2 customer id(s)"],
        ),
        (lambda: holdout_scores([1, np.nan, np.inf], [1, 2, 3]), DataQualityError,
         ["'actual'", "2 non-finite"]),
        (lambda: holdout_scores([], []), SchemaError, ["empty"]),
        (lambda: gini([1, 2], [1, -1]), DataQualityError, ["'outcome'", "1 of 2"]),
        (lambda: top_decile_lift([1, np.nan], [1, 2]), DataQualityError, ["'values'", "1 non"]),
        (lambda: brier_score([0.5, 1.2], [1, 0]), DataQualityError, ["'p_alive'", "[0, 1]"]),
        (lambda: brier_score([0.5, 0.2], [2, 0]), DataQualityError, ["'is_active'", "1 value"]),
        (lambda: calibration_table([0.5], [1], n_bins=0), SchemaError, ["n_bins"]),
        (lambda: holdout_scores([1, 2, 3], [1, 2, 3], weights=[1, -2, -1]), DataQualityError,
         ["'weights'", "finite and >= 0", "2 of 3", "2 negative", "-2.0 at position 1"]),
        (lambda: gini([1, 2, 3], [1, 2, 3], weights=[np.nan, 1, np.inf]), DataQualityError,
         ["'weights'", "2 of 3", "1 NaN", "1 infinite", "position 0"]),
        (lambda: top_decile_lift([1, 2], [1, 2], weights=[1, np.nan]), DataQualityError,
         ["'weights'", "1 of 2", "1 NaN"]),
        (lambda: brier_score([0.5, 0.2], [1, 0], weights=[-1, 1]), DataQualityError,
         ["'weights'", "1 of 2", "1 negative"]),
        (lambda: brier_score([0.5, 0.2], [1, 0], weights=[0, 0]), SchemaError,
         ["'weights' sum to 0", "no customer"]),
        (lambda: gini([1, 2], [1, 2], weights=[1, 2, 3]), SchemaError,
         ["misaligned", "'weights' has 3"]),
        (lambda: holdout_scores([1, 2], [1, 2], weights=[[1, 2]]), SchemaError,
         ["'weights'", "shape (1, 2)"]),
    ],
)  # fmt: skip
def test_refusals_name_the_problem_and_count(
    call: object, error: type[Exception], phrases: list[str]
) -> None:
    with pytest.raises(error) as caught:
        call()  # type: ignore[operator]
    for phrase in phrases:
        assert phrase in str(caught.value)


def test_the_module_is_an_attribute_of_cvalue() -> None:
    assert cvalue.evaluation.gini is gini


# --- holdout totals with intervals ------------------------------------------------------------


@pytest.fixture(scope="module")
def cdnow_holdout() -> tuple[pd.DataFrame, cvalue.BetaGeo]:
    data = load_cdnow()
    split = cvalue.calibration_holdout(
        data.transactions,
        calibration_end=data.calibration_end,
        observation_end=data.observation_end,
    )
    return split, cvalue.BetaGeo().fit(split)


def test_holdout_total_brackets_the_forecast(
    cdnow_holdout: tuple[pd.DataFrame, cvalue.BetaGeo],
) -> None:
    split, model = cdnow_holdout
    found = holdout_total(model, split, horizon=39.0, n_draws=100)
    expected = model.expected_purchases(split, horizon=39.0).sum()
    assert found["predicted_total"] == pytest.approx(expected, rel=1e-12)
    assert (
        found["predicted_total_lower"] < found["predicted_total"] < found["predicted_total_upper"]
    )
    # the count varies around its expectation: its interval holds the expectation's
    assert found["purchases_total_lower"] < found["predicted_total_lower"]
    assert found["purchases_total_upper"] > found["predicted_total_upper"]
    for name in ("purchases_total_lower", "purchases_total_upper"):
        assert float(found[name]).is_integer()
    narrow = holdout_total(model, split, horizon=39.0, interval=0.5, n_draws=100)
    assert narrow["purchases_total_upper"] - narrow["purchases_total_lower"] < (
        found["purchases_total_upper"] - found["purchases_total_lower"]
    )
    by_scores = holdout_scores(
        split["frequency_holdout"], model.expected_purchases(split, horizon=39.0)
    )
    assert by_scores["predicted_total"] == pytest.approx(found["predicted_total"], rel=1e-12)


def test_count_variances_are_those_of_the_whole_pmf(
    cdnow_holdout: tuple[pd.DataFrame, cvalue.BetaGeo],
) -> None:
    split, model = cdnow_holdout
    patterns = split[["frequency", "recency", "T"]].drop_duplicates().iloc[::20]
    counts = np.arange(3_000)
    pmf = model.purchase_pmf(counts, horizon=39.0, data=patterns).to_numpy()
    mean = pmf @ counts
    np.testing.assert_allclose(
        _count_variances(model, patterns, 39.0), pmf @ counts**2 - mean**2, rtol=1e-9
    )
    expected = model.expected_purchases(patterns, horizon=39.0).to_numpy()
    np.testing.assert_allclose(mean, expected, rtol=1e-9)


def test_holdout_total_by_bootstrap_is_reproducible_and_close_to_the_draws(
    cdnow_holdout: tuple[pd.DataFrame, cvalue.BetaGeo],
) -> None:
    """100 replicates against 400 draws: the widths of the expected total's 90 % interval agree
    within 0.35 (relative Monte Carlo error of such a width: 0.884/sqrt(B); 0.099 for the ratio,
    0.35 is 3.5 of them)."""
    split, model = cdnow_holdout

    def boot(seed: int, n_draws: int) -> pd.Series:
        return holdout_total(
            model, split, horizon=39.0, method="bootstrap", n_draws=n_draws,
            rng=np.random.default_rng(seed),
        )  # fmt: skip

    pd.testing.assert_series_equal(boot(1, 5), boot(1, 5), check_exact=True)
    found = boot(2, 100)
    draws = holdout_total(model, split, horizon=39.0, n_draws=400, rng=np.random.default_rng(2))
    width = found["predicted_total_upper"] - found["predicted_total_lower"]
    expected = draws["predicted_total_upper"] - draws["predicted_total_lower"]
    assert width / expected == pytest.approx(1.0, abs=0.35)


@pytest.mark.parametrize(
    ("options", "phrase"),
    [
        ({"interval": 1.0}, "between 0 and 1"),
        ({"n_draws": 1}, "at least 2"),
        ({"method": "jackknife"}, "'draws' or 'bootstrap'"),
    ],
)
def test_holdout_total_refuses_bad_options(
    cdnow_holdout: tuple[pd.DataFrame, cvalue.BetaGeo], options: dict[str, object], phrase: str
) -> None:
    split, model = cdnow_holdout
    with pytest.raises(SchemaError, match=phrase):
        holdout_total(model, split, horizon=39.0, **options)  # type: ignore[arg-type]


def test_holdout_total_needs_a_fitted_model(
    cdnow_holdout: tuple[pd.DataFrame, cvalue.BetaGeo],
) -> None:
    split, model = cdnow_holdout
    given = cvalue.BetaGeo.from_params(**model.params_.to_dict(), unit="week")
    with pytest.raises(SchemaError, match="no covariance"):
        holdout_total(given, split, horizon=39.0)
    with pytest.raises(SchemaError, match=r"bootstrap.*not fitted on data.*method='draws'"):
        holdout_total(given, split, horizon=39.0, method="bootstrap")
