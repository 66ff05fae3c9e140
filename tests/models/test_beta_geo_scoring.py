"""BG/NBD and MBG/NBD scoring: the grid path, the pattern path and a row-by-row reference agree.

The reference is the textbook formula applied to each row on its own: P(alive) as the ``expit``
of the log-odds of Fader, Hardie & Lee (2005) eq. (13) (Batislam et al. 2007 eq. (7)), and the
conditional expectation as P(alive) times ``expected_while_alive`` of the row (eq. (10)).
"""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import expit

from cvalue.errors import DataQualityError
from cvalue.models._checks import checked_summary
from cvalue.models._special import expected_while_alive, hypergeometric_series
from cvalue.models.beta_geo import BetaGeo
from cvalue.models.modified_beta_geo import ModifiedBetaGeo

FAMILY = [BetaGeo, ModifiedBetaGeo]


def reference(model, data, horizon):
    """P(alive) and expected purchases row by row, with no compression and no tables."""
    r, alpha, a, b = model.params_.to_numpy()
    s = model._dropout_at_start
    x = data["frequency"].to_numpy(dtype=float)
    T = data["T"].to_numpy(dtype=float)
    t_x = np.where(x > 0, data["recency"].to_numpy(dtype=float), 0.0)
    alive, log_odds = np.ones(len(x)), np.zeros(len(x))
    for i in range(len(x)):
        if x[i] + s >= 1:
            log_odds[i] = (
                np.log(b + x[i] + s - 1)
                - np.log(a)
                - (r + x[i]) * np.log((alpha + T[i]) / (alpha + t_x[i]))
            )
            alive[i] = expit(log_odds[i])
    while_alive = np.array(
        [expected_while_alive(r + xi, b + xi + s, a, horizon / (alpha + Ti + horizon))
         for xi, Ti in zip(x, T, strict=True)]
    )  # fmt: skip
    return alive, alive * while_alive, log_odds


def assert_matches_reference(model, data, horizon=52.0):
    """Agreement to 1e-12, or to the log-odds' rounding where P(alive) is astronomically small.

    exp(L) carries the rounding of L, ~1e-16 |L| relative whichever way L is written: beyond
    |L| = 90 (P(alive) < 1e-39) the bound grows with |L|, as the reference's own error does.
    """
    table = model.predict(data, horizon=horizon)
    alive, expected, log_odds = reference(model, data, horizon)
    assert table.index.equals(data.index)
    bound = np.maximum(1e-12, 1e-14 * np.abs(log_odds))
    for column, wanted in (("p_alive", alive), ("expected_purchases", expected)):
        got = table[column].to_numpy()
        assert np.all(np.abs(got - wanted) <= bound * np.abs(wanted) + 1e-300), column
    pd.testing.assert_series_equal(model.p_alive(data), table["p_alive"], check_exact=True)
    pd.testing.assert_series_equal(
        model.expected_purchases(data, horizon=horizon),
        table["expected_purchases"],
        check_exact=True,
    )


def days_base(n_rows, *, max_days, max_x, seed):
    """A summary in weeks of whole days, with x = 0 rows (recency 0) and recency == T rows."""
    rng = np.random.default_rng(seed)
    T_days = rng.integers(1, max_days + 1, n_rows)
    x = rng.integers(0, max_x + 1, n_rows)
    x[: n_rows // 3] = 0
    recency_days = np.where(x > 0, rng.integers(0, T_days + 1), 0)
    recency_days[-5:] = T_days[-5:]  # recency == T
    x[-5:] = np.maximum(x[-5:], 1)
    return pd.DataFrame(
        {"frequency": x, "recency": recency_days / 7.0, "T": T_days / 7.0},
        index=pd.Index([f"cust-{i}" for i in range(n_rows)], name="customer_id"),
    )


PARAMS = [(0.24, 4.4, 0.79, 2.4), (1.13, 10.5, 0.6, 0.57), (3.0, 2.0, 1.0, 0.3)]


@pytest.mark.parametrize("model_class", FAMILY)
@pytest.mark.parametrize("params", PARAMS)
def test_grid_path_matches_row_by_row_reference(model_class, params):
    model = model_class.from_params(*params)
    data = days_base(600, max_days=365, max_x=40, seed=1)
    assert model._on_grid(data, 52.0) is not None  # the grid path is the one tested
    assert_matches_reference(model, data)


@pytest.mark.parametrize("model_class", FAMILY)
def test_large_frequencies_match_on_either_path(model_class):
    model = model_class.from_params(0.6, 3.0, 0.8, 1.5)
    short = days_base(200, max_days=60, max_x=300, seed=2)
    assert model._on_grid(short, 52.0) is not None
    assert_matches_reference(model, short)
    # ten years of days and x in the thousands: a log-odds part passes 700, no grid path
    long = days_base(200, max_days=3650, max_x=3000, seed=3)
    assert model._on_grid(long, 52.0) is None
    assert_matches_reference(model, long, horizon=30.0)


@pytest.mark.parametrize("model_class", FAMILY)
def test_floats_off_any_grid_fall_back_to_hashing(model_class):
    model = model_class.from_params(0.7, 6.0, 0.9, 1.8)
    rng = np.random.default_rng(4)
    data = days_base(300, max_days=200, max_x=12, seed=4)
    data["T"] = data["T"] + rng.uniform(0.0, 1e-3, len(data))  # off the grid, still >= recency
    assert model._on_grid(data, 52.0) is None
    assert_matches_reference(model, data)


@pytest.mark.parametrize("model_class", FAMILY)
@pytest.mark.parametrize("dtype", ["int32", "int64", "float64", "float32"])
def test_integer_and_float_columns(model_class, dtype):
    model = model_class.from_params(0.5, 20.0, 0.7, 2.0)
    data = days_base(300, max_days=365, max_x=20, seed=5)
    days = pd.DataFrame(
        {"frequency": data["frequency"].to_numpy(),
         "recency": np.rint(data["recency"].to_numpy() * 7.0),
         "T": np.rint(data["T"].to_numpy() * 7.0)},
        index=pd.RangeIndex(1000, 1300, name="id"),
    ).astype(dtype)  # fmt: skip
    assert model._on_grid(days, 52.0) is not None
    assert_matches_reference(model, days, horizon=364.0)


@pytest.mark.parametrize("model_class", FAMILY)
def test_one_row_and_many_rows_give_the_same_bits(model_class):
    model = model_class.from_params(0.9, 5.0, 1.2, 0.8)
    data = days_base(120, max_days=365, max_x=30, seed=6)
    table = model.predict(data, horizon=26.0)
    one_by_one = pd.concat([model.predict(data.iloc[[i]], horizon=26.0) for i in range(120)])
    pd.testing.assert_frame_equal(table, one_by_one, check_exact=True)
    # a batch that must take the pattern path gives the same bits for the same rows
    odd = pd.DataFrame(
        {"frequency": [1], "recency": [0.1234567], "T": [3.3333331]},
        index=pd.Index(["odd"], name="customer_id"),
    )
    off_grid = pd.concat([data, odd])
    assert model._on_grid(off_grid, 26.0) is None
    pd.testing.assert_frame_equal(
        model.predict(off_grid, horizon=26.0).iloc[:-1], table, check_exact=True
    )


@st.composite
def grid_summaries(draw):
    """Small summaries in whole days of weeks, a few of them broken in any way."""
    n_rows = draw(st.integers(1, 30))
    x = draw(st.lists(st.sampled_from([0, 1, 2, 7, 40, -1, 1.5, np.nan]), min_size=n_rows,
                      max_size=n_rows))  # fmt: skip
    T = draw(st.lists(st.integers(-1, 400), min_size=n_rows, max_size=n_rows))
    t = draw(st.lists(st.integers(-1, 400), min_size=n_rows, max_size=n_rows))
    data = pd.DataFrame({"frequency": x, "recency": np.array(t) / 7.0, "T": np.array(T) / 7.0})
    data.index = pd.Index([f"c{i}" for i in range(n_rows)])
    return data


@pytest.mark.parametrize("model_class", FAMILY)
@settings(max_examples=60, deadline=None)
@given(data=grid_summaries())
def test_grid_path_reports_what_row_checks_report(model_class, data):
    """Bad rows send the grid path to the checked general path: same message, same counts."""
    model = model_class.from_params(0.6, 8.0, 0.9, 1.7)
    expected = row_check_message(data, model_class.__name__)
    if expected is None:
        assert_matches_reference(model, data)
        return
    with pytest.raises(DataQualityError) as scoring_error:
        model.predict(data, horizon=52.0)
    assert str(scoring_error.value) == expected


def row_check_message(data, name):
    """The message of the row-by-row checks, or None when the rows pass them."""
    try:
        checked_summary(data, name)
    except DataQualityError as row_error:
        return str(row_error)
    return None


def test_recency_beyond_age_is_counted_when_scoring():
    model = BetaGeo.from_params(0.24, 4.4, 0.79, 2.4)
    data = days_base(50_000, max_days=365, max_x=10, seed=7)
    data.iloc[[20_000, 40_000], 1] = data["T"].iloc[[20_000, 40_000]] + 1.0
    with pytest.raises(DataQualityError, match=r"'recency' > 'T' in 2 of 50,000 rows \(e\.g\. "
                       r"customer 'cust-20000'\)"):  # fmt: skip
        model.predict(data, horizon=52.0)


def sequential_series(A, B, C, D, z):
    """hypergeometric_series for one element, one term at a time, with its stopping rule."""
    term = total = absolute = 1.0
    m = 0
    while z > 0:
        ratio = (A + m) * (B + m) * z / ((C + m) * (D + m))
        term *= ratio
        total += term
        absolute += abs(term)
        q = max(abs(ratio), z)
        m += 1
        past = m > np.ceil(max(-A, -B, -C, -D, 0.0))
        if term == 0.0 or (past and q < 1.0 and abs(term) * q <= 1e-16 * (1.0 - q) * abs(total)):
            break
    return total, absolute


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 400),
    has_roots=st.booleans(),
)
def test_chunked_series_has_the_bits_of_one_term_at_a_time(seed, n, has_roots):
    rng = np.random.default_rng(seed)
    A = -rng.integers(0, 6, n).astype(float) if has_roots else rng.uniform(0.1, 30.0, n)
    B, C = rng.uniform(0.05, 20.0, n), rng.uniform(0.5, 40.0, n) + 7.0
    D, z = rng.choice([1.0, 2.0], n), rng.uniform(0.0, 0.95, n)
    summed = hypergeometric_series(A, B, C, D, z)
    for i in range(n):
        total, absolute = sequential_series(A[i], B[i], C[i], D[i], z[i])
        assert summed.sign[i] * np.exp(summed.log_abs[i]) == pytest.approx(total, rel=1e-14)
        assert np.exp(summed.log_abs_terms[i]) == pytest.approx(absolute, rel=1e-14)
