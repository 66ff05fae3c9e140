"""The (M)BG/CNBD-k (Platzer & Reutterer 2016): k = 1 is the (M)BG/NBD, recovery, the contract."""

import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cvalue
from cvalue.datasets import load_cdnow
from cvalue.errors import SchemaError
from cvalue.models import PURCHASE_MODELS, BetaGeo, ModifiedBetaGeo
from cvalue.models.cnbd import (
    BetaGeoCNBD,
    ModifiedBetaGeoCNBD,
    _cnbd_objective,
    cnbd_summary,
)

PAIRS = [(BetaGeo, BetaGeoCNBD, 0.0), (ModifiedBetaGeo, ModifiedBetaGeoCNBD, 1.0)]
TRUTH = {"r": 0.85, "alpha": 1.45, "a": 0.79, "b": 2.42}  # BTYDplus's BG/CNBD-3 demo
HISTORIES = pd.DataFrame(
    {"frequency": [0, 1, 3, 10, 2], "recency": [0.0, 5.0, 20.0, 30.0, 2.0],
     "T": [32.0, 32.0, 30.0, 31.0, 25.0]},
    index=pd.Index(list("abcde"), name="customer_id"),
)  # fmt: skip


@pytest.fixture(scope="module")
def cdnow() -> pd.DataFrame:
    return load_cdnow().summary


@pytest.fixture(scope="module")
def simulated() -> pd.DataFrame:
    """BTYDplus's demo: 8,000 customers, T.cal = round(runif(n, 24, 32)) weeks, k = 3."""
    rng = np.random.default_rng(2016)
    ages = np.round(rng.uniform(24.0, 32.0, 8000))
    truth = BetaGeoCNBD.from_params(**TRUTH, k=3, unit="week")
    return truth.simulate(8000, ages, rng=rng)


def models(k: int) -> list[BetaGeoCNBD | ModifiedBetaGeoCNBD]:
    return [
        cls.from_params(**TRUTH, k=k, unit="week") for cls in (BetaGeoCNBD, ModifiedBetaGeoCNBD)
    ]


# --- k = 1 is the BG/NBD and the MBG/NBD ----------------------------------------------------------


@pytest.mark.parametrize(("base", "cnbd", "s"), PAIRS)
def test_k1_fits_as_the_bg_nbd_family(
    base: type, cnbd: type, s: float, cdnow: pd.DataFrame
) -> None:
    reference = base().fit(cdnow, unit="week")
    model = cnbd(k=1).fit(cdnow, unit="week")  # no litt needed at k = 1
    assert model.k_ == 1
    assert model.log_likelihood_ == pytest.approx(reference.log_likelihood_, abs=1e-8)
    np.testing.assert_allclose(model.params_, reference.params_, rtol=1e-8)
    np.testing.assert_allclose(model.p_alive(cdnow), reference.p_alive(cdnow), atol=1e-12)
    for horizon in (1.0, 39.0, 520.0):
        np.testing.assert_allclose(model.expected_purchases(cdnow, horizon=horizon),
                                   reference.expected_purchases(cdnow, horizon=horizon),
                                   rtol=1e-10, atol=1e-12)  # fmt: skip
        assert model.expected_purchases_new(horizon=horizon) == pytest.approx(
            reference.expected_purchases_new(horizon=horizon), rel=1e-10
        )
    np.testing.assert_allclose(
        model.purchase_pmf(np.arange(30), horizon=52.0),
        reference.purchase_pmf(np.arange(30), horizon=52.0),
        atol=1e-14,
    )


@pytest.mark.parametrize(("base", "cnbd", "s"), PAIRS)
def test_the_general_likelihood_at_k1_is_the_bg_nbd_s(
    base: type, cnbd: type, s: float, cdnow: pd.DataFrame
) -> None:
    reference = base().fit(cdnow, unit="week")
    patterns = cnbd(k=1)._prepare(cdnow)
    value, gradient = _cnbd_objective(1, s, patterns)(reference.params_.to_numpy())
    expected, expected_gradient = reference._objective(patterns)(reference.params_.to_numpy())
    assert value == pytest.approx(expected, abs=1e-8)
    np.testing.assert_allclose(gradient, expected_gradient, atol=1e-8)


@pytest.mark.parametrize("s", [0.0, 1.0])
def test_the_gradient_matches_finite_differences(simulated: pd.DataFrame, s: float) -> None:
    patterns = BetaGeoCNBD(k=3)._prepare(simulated)
    objective = _cnbd_objective(3, s, patterns)
    at = np.array([0.7, 1.2, 0.9, 2.0])
    _, gradient = objective(at)
    step = 1e-6
    numeric = [
        (objective(at + step * e)[0] - objective(at - step * e)[0]) / (2 * step) for e in np.eye(4)
    ]
    np.testing.assert_allclose(gradient, numeric, rtol=1e-5)


# --- recovery -------------------------------------------------------------------------------------


def test_recovers_the_btydplus_demo_and_chooses_k3(simulated: pd.DataFrame) -> None:
    model = BetaGeoCNBD().fit(simulated, unit="week")
    assert model.k_ == 3
    assert model.log_likelihoods_.idxmax() == 3
    assert list(model.log_likelihoods_.index) == list(range(1, 11))
    for name, value in TRUTH.items():
        assert abs(model.params_[name] - value) < 3.0 * model.std_errors_[name], name


def test_litt_is_needed_to_choose_k(simulated: pd.DataFrame) -> None:
    with pytest.raises(SchemaError, match="litt"):
        BetaGeoCNBD().fit(simulated.drop(columns="litt"))
    with pytest.raises(SchemaError, match="whole number"):
        BetaGeoCNBD(k=0).fit(simulated)


# --- the contract ---------------------------------------------------------------------------------


@pytest.mark.parametrize("model", models(3), ids=["bg", "mbg"])
def test_curves_are_p_alive_and_expected_purchases(model: BetaGeoCNBD) -> None:
    curves = model.curves(HISTORIES)
    alive = model.p_alive(HISTORIES).to_numpy()
    np.testing.assert_allclose(curves.alive_scale, alive, atol=1e-15)
    times = np.array([0.0, 4.0, 26.0, 156.0])
    cumulative = curves.purchase_scale[:, None] * curves.cumulative(times)[curves.group]
    for column, horizon in enumerate(times):
        expected = model.expected_purchases(HISTORIES, horizon=horizon).to_numpy()
        np.testing.assert_allclose(cumulative[:, column], expected, rtol=1e-8, atol=1e-14)
    survival = curves.survival(times)[curves.group]
    assert np.all(np.diff(survival, axis=1) <= 0)
    np.testing.assert_allclose(survival[:, 0], 1.0, rtol=1e-14)
    new = model.curves()
    assert new.purchase_scale[0] * new.cumulative(np.array([52.0]))[0, 0] == pytest.approx(
        model.expected_purchases_new(horizon=52.0), rel=1e-12
    )


@pytest.mark.parametrize("model", models(3), ids=["bg", "mbg"])
def test_pmfs_sum_to_one_and_their_means_are_the_expectations(model: BetaGeoCNBD) -> None:
    counts = np.arange(300)
    given = model.purchase_pmf(counts, horizon=52.0, data=HISTORIES)
    assert isinstance(given, pd.DataFrame)
    assert list(given.index) == list(HISTORIES.index)
    np.testing.assert_allclose(given.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(
        given.to_numpy() @ counts, model.expected_purchases(HISTORIES, horizon=52.0), rtol=1e-10
    )
    new = model.purchase_pmf(counts, horizon=52.0)
    assert float(np.sum(new)) == pytest.approx(1.0, abs=1e-10)
    assert float(new @ counts) == pytest.approx(
        model.expected_purchases_new(horizon=52.0), rel=1e-9
    )
    assert isinstance(model.purchase_pmf(2, horizon=10.0), float)


@pytest.mark.parametrize("model", models(3), ids=["bg", "mbg"])
def test_dert_is_the_discounted_integral_of_the_curves(model: BetaGeoCNBD) -> None:
    delta = 0.02
    dert = model.dert(HISTORIES, discount=delta)
    nodes, weights = np.polynomial.laguerre.laggauss(150)
    curves = model.curves(HISTORIES)
    integral = (curves.purchase_scale[:, None] * curves.cumulative(nodes / delta)[curves.group]
                ) @ weights  # fmt: skip
    np.testing.assert_allclose(dert, integral, rtol=2e-6)
    assert dert.name == "dert"
    assert list(dert.index) == list(HISTORIES.index)


def test_save_load_and_with_params_keep_k(tmp_path: Path, simulated: pd.DataFrame) -> None:
    model = ModifiedBetaGeoCNBD(k=3).fit(simulated, unit="week")
    path = tmp_path / "model.json"
    model.save(path)
    assert json.loads(path.read_text())["k"] == 3
    loaded = ModifiedBetaGeoCNBD.load(path)
    assert loaded.k_ == 3
    assert loaded.unit_ == model.unit_
    pd.testing.assert_series_equal(loaded.params_, model.params_)
    pd.testing.assert_series_equal(loaded.p_alive(HISTORIES), model.p_alive(HISTORIES))
    moved = model.with_params({**TRUTH})
    assert moved.k_ == 3
    assert moved.params_["r"] == TRUTH["r"]
    assert "k=3" in repr(model)


def test_registered_and_exported() -> None:
    assert PURCHASE_MODELS["beta_geo_cnbd"] is cvalue.BetaGeoCNBD is BetaGeoCNBD
    assert PURCHASE_MODELS["modified_beta_geo_cnbd"] is cvalue.ModifiedBetaGeoCNBD
    assert BetaGeoCNBD.summary_columns == ("frequency", "recency", "T")
    assert not BetaGeoCNBD.discrete_time
    assert not BetaGeoCNBD.contractual


def test_cnbd_summary_adds_litt_in_the_summary_s_unit() -> None:
    log = pd.DataFrame({
        "customer_id": [1, 1, 1, 1, 2, 3, 3],
        "timestamp": pd.to_datetime(["2024-01-01", "2024-01-01", "2024-01-15", "2024-02-12",
                                     "2024-01-08", "2024-01-02", "2024-01-09"]),
    })  # fmt: skip
    summary = cnbd_summary(log, observation_end="2024-02-19")
    np.testing.assert_allclose(summary["litt"], [np.log(2.0) + np.log(4.0), 0.0, 0.0])
    assert summary["frequency"].tolist() == [2, 0, 1]
    days = cnbd_summary(log, observation_end="2024-02-19", unit="day")
    np.testing.assert_allclose(days["litt"], [np.log(14.0) + np.log(28.0), 0.0, np.log(7.0)])


def test_valuation_runs_through_the_contract(cdnow: pd.DataFrame) -> None:
    rates = cvalue.DiscountRates.single(0.10, per="year")
    options = {"spend": 35.0, "margin": 0.3, "rates": rates, "horizon": "3y",
               "cost_to_serve": 0.0, "marketing_cost": 0.0}  # fmt: skip
    model = BetaGeoCNBD(k=1).fit(cdnow, unit="week")
    value = cvalue.clv(cdnow, purchases=model, **options)
    reference = cvalue.clv(cdnow, purchases=BetaGeo().fit(cdnow, unit="week"), **options)
    np.testing.assert_allclose(value.customers["clv"], reference.customers["clv"], rtol=1e-8)
    equity = cvalue.customer_equity(value, horizons=["3y"])
    assert equity.total["existing"].iloc[0] > 0
    regular = cvalue.clv(cdnow, purchases=models(3)[0], **options)
    assert np.all(np.isfinite(regular.customers["clv"]))


# --- properties -----------------------------------------------------------------------------------

histories = st.tuples(
    st.integers(0, 40),
    st.floats(0.0, 1.0),
    st.floats(0.5, 80.0),
    st.integers(1, 10),
    st.sampled_from([0, 1]),
)


@settings(deadline=None, derandomize=True, database=None, max_examples=40)
@given(histories, st.floats(0.05, 3.0), st.floats(0.1, 20.0), st.floats(0.1, 5.0),
       st.floats(0.1, 10.0))  # fmt: skip
def test_p_alive_in_unit_interval_and_purchases_grow_with_horizon(
    history: tuple[int, float, float, int, int], r: float, alpha: float, a: float, b: float
) -> None:
    x, share, T, k, s = history
    cls = ModifiedBetaGeoCNBD if s else BetaGeoCNBD
    model = cls.from_params(r, alpha, a, b, k=k, unit="week")
    data = pd.DataFrame({"frequency": [x], "recency": [share * T if x else 0.0], "T": [T]})
    alive = float(model.p_alive(data).iloc[0])
    assert 0.0 <= alive <= 1.0
    expected = [float(model.expected_purchases(data, horizon=h).iloc[0]) for h in (0, 5, 50, 200)]
    assert expected[0] == 0.0
    assert all(later >= earlier for earlier, later in itertools.pairwise(expected))
