"""The conditional purchase pmf, P(X(T, T + t) = n | history), of every purchase model.

Checked as a distribution (sums to 1, its mean is the model's ``expected_purchases``), at the
edge where a history says nothing (it is then the new customer's pmf), and against a Monte
Carlo of each model's story given the history: customers drawn from the prior, weighted by the
likelihood of the history (importance sampling of the posterior, with no closed form shared with
the code), then simulated forward. Formulas: Fader & Hardie, note 028 (Pareto/NBD), the same
derivation for the BG/NBD and MBG/NBD, and Fader, Hardie & Shang (2010) for the BG/BB.
"""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cvalue import models
from cvalue.errors import SchemaError

CONTINUOUS = {
    "BetaGeo": models.BetaGeo.from_params(0.243, 4.414, 0.793, 2.426, unit="week"),
    "ModifiedBetaGeo": models.ModifiedBetaGeo.from_params(0.525, 6.183, 0.891, 1.614, unit="week"),
    "ParetoNBD": models.ParetoNBD.from_params(0.553, 10.578, 0.606, 11.668, unit="week"),
}  # CDNOW estimates (FHL 2005; Batislam et al. 2007; FHL 2005b)
BG_BB = models.BetaGeoBetaBinom.from_params(1.204, 0.750, 0.657, 2.783)  # donations, FHS (2010)
SUMMARY = pd.DataFrame(
    {
        "frequency": [0, 0, 2, 5, 40, 200, 1, 0],
        "recency": [0.0, 0.0, 30.4, 36.0, 20.0, 38.0, 1e-3, 0.0],
        "T": [1e-3, 38.9, 38.9, 37.0, 39.0, 39.0, 1e-3, 1e4],
    },
    index=pd.Index(list("abcdefgh"), name="customer_id"),
)
HISTORIES = pd.DataFrame(
    {"frequency": [0, 3, 6, 2, 0, 150], "recency": [0, 5, 6, 3, 0, 199],
     "n_periods": [6, 6, 6, 6, 1, 200]},
)  # fmt: skip
MANY = np.arange(4000)  # beyond the mass of x = 200 over 260 weeks


@pytest.mark.parametrize("name", sorted(CONTINUOUS))
@pytest.mark.parametrize("horizon", [0.0, 0.5, 39.0, 260.0])
def test_a_distribution_whose_mean_is_the_expected_purchases(name: str, horizon: float) -> None:
    model = CONTINUOUS[name]
    pmf = model.purchase_pmf(MANY, horizon=horizon, data=SUMMARY)
    assert pmf.index.equals(SUMMARY.index)
    assert pmf.columns.tolist() == MANY.tolist()
    np.testing.assert_allclose(pmf.sum(axis=1), 1.0, rtol=0, atol=1e-10)
    mean = pmf.to_numpy() @ MANY
    expected = model.expected_purchases(SUMMARY, horizon=horizon).to_numpy()
    np.testing.assert_allclose(mean, expected, rtol=1e-8, atol=1e-300)


@pytest.mark.parametrize("horizon", [0, 1, 5, 30, 300])
def test_bg_bb_is_a_distribution_whose_mean_is_the_expected_purchases(horizon: int) -> None:
    counts = np.arange(horizon + 3)
    pmf = BG_BB.purchase_pmf(counts, horizon=horizon, data=HISTORIES)
    np.testing.assert_allclose(pmf.sum(axis=1), 1.0, rtol=0, atol=1e-10)
    assert np.all(pmf.to_numpy()[:, horizon + 1 :] == 0.0)  # no more purchases than openings
    expected = BG_BB.expected_purchases(HISTORIES, horizon=horizon).to_numpy()
    np.testing.assert_allclose(pmf.to_numpy() @ counts, expected, rtol=1e-8, atol=1e-300)


@pytest.mark.parametrize("name", sorted(CONTINUOUS))
def test_a_customer_just_acquired_has_the_new_customer_pmf(name: str) -> None:
    model = CONTINUOUS[name]
    # T = 0 is outside the BG/NBD family's data; 1e-13 weeks moves the pmf by ~1e-13
    just = pd.DataFrame({"frequency": [0], "recency": [0.0], "T": [1e-13]})
    counts = np.arange(60)
    for horizon in (1.0, 39.0, 520.0):
        given_history = model.purchase_pmf(counts, horizon=horizon, data=just).to_numpy()[0]
        new = model.purchase_pmf(counts, horizon=horizon)
        np.testing.assert_allclose(given_history, new, rtol=1e-10, atol=1e-15)


def test_the_dead_only_add_to_no_purchase() -> None:
    model = CONTINUOUS["ModifiedBetaGeo"]
    counts = np.arange(1, 8)
    pmf = model.purchase_pmf(counts, horizon=39.0, data=SUMMARY)
    alive = model.p_alive(SUMMARY).to_numpy()
    # a customer alive now with the same posterior: the rows of the pmf scale with P(alive)
    assert np.all(pmf.to_numpy() <= alive[:, None] + 1e-15)
    assert pmf.loc["h"].max() < 1e-3  # a one-time buyer silent for 10,000 weeks


@pytest.mark.parametrize("name", sorted(CONTINUOUS))
def test_scalars_and_old_orders_keep_working(name: str) -> None:
    model = CONTINUOUS[name]
    one = model.purchase_pmf(3, horizon=10.0, data=SUMMARY)
    assert one.columns.tolist() == [3]
    with pytest.warns(DeprecationWarning, match=r"purchase_pmf\(n, t\)"):
        old = model.purchase_pmf([0, 3], 10.0, data=SUMMARY)
    pd.testing.assert_frame_equal(
        old, model.purchase_pmf([0, 3], horizon=10.0, data=SUMMARY), check_exact=True
    )
    with pytest.raises(SchemaError, match="whole numbers"):
        model.purchase_pmf([1.5], horizon=10.0, data=SUMMARY)


def test_bg_bb_takes_any_array_like_counts() -> None:
    assert BG_BB.purchase_pmf([0, 1, 2], horizon=5).shape == (3,)
    assert isinstance(BG_BB.purchase_pmf(2, horizon=5), float)
    assert BG_BB.purchase_pmf((1,), horizon=5, data=HISTORIES).columns.tolist() == [1]


# --- Monte Carlo of each model's story given one history -----------------------------------

N_DRAWS = 400_000
CHECKED = np.arange(5)


def assert_matches_weighted(pmf: np.ndarray, weights: np.ndarray, future: np.ndarray) -> None:
    """The weighted frequencies of ``future`` at CHECKED agree with ``pmf`` within 4.5 sigma."""
    weights = weights / weights.sum()
    effective = 1.0 / np.sum(weights**2)
    found = np.array([weights[future == n].sum() for n in CHECKED])
    sigma = np.sqrt(pmf * (1.0 - pmf) / effective)
    assert effective > 20_000
    np.testing.assert_array_less(np.abs(found - pmf), 4.5 * sigma + 1e-12)


@pytest.mark.parametrize("name", ["BetaGeo", "ModifiedBetaGeo"])
def test_beta_geo_family_matches_its_story(name: str) -> None:
    model = CONTINUOUS[name]
    r, alpha, a, b = model.params_.to_numpy()
    s = 1 if name == "ModifiedBetaGeo" else 0
    x, t_x, T, horizon = 2, 30.4, 38.9, 39.0
    rng = np.random.default_rng(20100)
    rate, p = rng.gamma(r, 1.0 / alpha, N_DRAWS), rng.beta(a, b, N_DRAWS)
    # individual likelihood: alive at T after x + s dropout chances, or dropped at t_x
    alive = (1.0 - p) ** (x + s) * np.exp(-rate * T)
    died = p * (1.0 - p) ** (x + s - 1) * np.exp(-rate * t_x)
    weights = rate**x * (alive + died)
    is_alive = rng.random(N_DRAWS) < alive / (alive + died)
    purchases = rng.poisson(rate * horizon)
    future = np.where(is_alive, np.minimum(purchases, rng.geometric(p)), 0)
    history = pd.DataFrame({"frequency": [x], "recency": [t_x], "T": [T]})
    pmf = model.purchase_pmf(CHECKED, horizon=horizon, data=history).to_numpy()[0]
    assert_matches_weighted(pmf, weights, future)


def test_pareto_nbd_matches_its_story() -> None:
    model = CONTINUOUS["ParetoNBD"]
    r, alpha, s, beta = model.params_.to_numpy()
    x, t_x, T, horizon = 3, 20.0, 38.0, 52.0
    rng = np.random.default_rng(2006)
    rate, death = rng.gamma(r, 1.0 / alpha, N_DRAWS), rng.gamma(s, 1.0 / beta, N_DRAWS)
    both = rate + death
    alive = np.exp(-both * T)
    died = death / both * (np.exp(-both * t_x) - np.exp(-both * T))
    weights = rate**x * (alive + died)
    is_alive = rng.random(N_DRAWS) < alive / (alive + died)
    lifetime = rng.exponential(1.0, N_DRAWS) / death
    future = np.where(is_alive, rng.poisson(rate * np.minimum(lifetime, horizon)), 0)
    history = pd.DataFrame({"frequency": [x], "recency": [t_x], "T": [T]})
    pmf = model.purchase_pmf(CHECKED, horizon=horizon, data=history).to_numpy()[0]
    assert_matches_weighted(pmf, weights, future)


def test_bg_bb_matches_its_story() -> None:
    alpha, beta, gamma, delta = BG_BB.params_.to_numpy()
    x, t_x, n, horizon = 3, 4, 6, 5
    rng = np.random.default_rng(2010)
    p, theta = rng.beta(alpha, beta, N_DRAWS), rng.beta(gamma, delta, N_DRAWS)
    # FHS eq. (4): alive through n, or dead at the start of opportunity t_x + i + 1
    alive = (1.0 - p) ** (n - x) * (1.0 - theta) ** n
    i = np.arange(n - t_x)[:, None]
    died = np.sum((1.0 - p) ** (t_x - x + i) * theta * (1.0 - theta) ** (t_x + i), axis=0)
    weights = p**x * (alive + died)
    is_alive = rng.random(N_DRAWS) < alive / (alive + died)
    opportunities = np.minimum(rng.geometric(theta) - 1, horizon)
    future = np.where(is_alive, rng.binomial(opportunities, p), 0)
    history = pd.DataFrame({"frequency": [x], "recency": [t_x], "n_periods": [n]})
    pmf = BG_BB.purchase_pmf(CHECKED, horizon=horizon, data=history).to_numpy()[0]
    assert_matches_weighted(pmf, weights, future)


# --- properties ----------------------------------------------------------------------------


@st.composite
def summaries(draw: st.DrawFn) -> pd.DataFrame:
    size = draw(st.integers(1, 6))
    x = np.array(draw(st.lists(st.integers(0, 300), min_size=size, max_size=size)))
    T = np.array(draw(st.lists(st.floats(1e-3, 1e3), min_size=size, max_size=size)))
    share = np.array(draw(st.lists(st.floats(0.0, 1.0), min_size=size, max_size=size)))
    return pd.DataFrame({"frequency": x, "recency": np.where(x > 0, share * T, 0.0), "T": T})


def assert_a_sub_distribution(pmf: pd.DataFrame) -> None:
    values = pmf.to_numpy()
    assert np.all((values >= 0.0) & (values <= 1.0))
    cumulative = np.cumsum(values, axis=1)
    assert np.all(cumulative[:, -1] <= 1.0 + 1e-12)
    tail = 1.0 - cumulative  # P(X > n) never rises with n
    assert np.all(np.diff(tail, axis=1) <= 1e-15)


@settings(deadline=None, derandomize=True, database=None, max_examples=15)
@given(
    name=st.sampled_from(sorted(CONTINUOUS)),
    data=summaries(),
    horizon=st.floats(0.0, 500.0),
    top=st.integers(0, 60),
)
def test_continuous_time_pmf_is_a_sub_distribution(
    name: str, data: pd.DataFrame, horizon: float, top: int
) -> None:
    assert_a_sub_distribution(CONTINUOUS[name].purchase_pmf(np.arange(top + 1), horizon=horizon,
                                                            data=data))  # fmt: skip


@settings(deadline=None, derandomize=True, database=None, max_examples=15)
@given(
    histories=st.lists(
        st.tuples(st.integers(0, 60), st.integers(0, 60), st.integers(1, 60)), min_size=1,
        max_size=6,
    ),
    horizon=st.integers(0, 40),
    top=st.integers(0, 50),
)  # fmt: skip
def test_bg_bb_pmf_is_a_sub_distribution(
    histories: list[tuple[int, int, int]], horizon: int, top: int
) -> None:
    n = np.array([h[2] for h in histories])
    t_x = np.array([min(h[1], k) for h, k in zip(histories, n, strict=True)])
    x = np.array([min(h[0], t) for h, t in zip(histories, t_x, strict=True)])
    x, t_x = np.where(t_x > 0, np.maximum(x, 1), 0), np.where(x > 0, t_x, 0)
    data = pd.DataFrame({"frequency": x, "recency": t_x, "n_periods": n})
    assert_a_sub_distribution(BG_BB.purchase_pmf(np.arange(top + 1), horizon=horizon, data=data))
