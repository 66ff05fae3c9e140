"""The curves valuation reads are each model's own predictions, and the contractual models keep
the purchase-model contract under its names.

``model.curves(data)`` factors each customer's future into a per-row scale and a per-key curve;
scaled back, the curves must give the model's ``p_alive``, ``expected_purchases`` and (for a
customer just acquired, ``curves()``) ``expected_purchases_new`` at every horizon.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import betaln

from cvalue import models
from cvalue.errors import SchemaError

CONTINUOUS = {
    "BetaGeo": models.BetaGeo.from_params(0.243, 4.414, 0.793, 2.426, unit="week"),
    "ModifiedBetaGeo": models.ModifiedBetaGeo.from_params(0.525, 6.183, 0.891, 1.614, unit="week"),
    "ParetoNBD": models.ParetoNBD.from_params(0.553, 10.578, 0.606, 11.668, unit="week"),
}
BG_BB = models.BetaGeoBetaBinom.from_params(1.204, 0.750, 0.657, 2.783)
SBG = models.ShiftedBetaGeo.from_params(0.704, 1.182)
BDW = models.BetaDiscreteWeibull.from_params(0.8, 1.5, 0.7)
SUMMARY = pd.DataFrame(
    {"frequency": [0, 2, 5, 1, 40], "recency": [0.0, 30.4, 36.0, 4.0, 38.0],
     "T": [38.9, 38.9, 37.0, 32.1, 39.0]},
    index=pd.Index(["a", "b", "c", "d", "e"], name="customer_id"),
)  # fmt: skip
HISTORIES = pd.DataFrame({"frequency": [0, 3, 6, 2], "recency": [0, 5, 6, 3], "n_periods": 6})
TENURES = pd.DataFrame({"duration": [0, 3, 7, 2, 12], "is_censored": [1, 1, 1, 0, 1]})


def scaled(scale: np.ndarray, table: np.ndarray, group: np.ndarray) -> np.ndarray:
    return np.asarray(scale[:, None] * table[group])


@pytest.mark.parametrize("name", sorted(CONTINUOUS))
def test_continuous_curves_are_the_models_predictions(name: str) -> None:
    model = CONTINUOUS[name]
    curves = model.curves(SUMMARY)
    times = np.array([0.0, 1.0, 13.0, 52.0, 260.0])
    alive_now = scaled(curves.alive_scale, curves.survival(np.zeros(1)), curves.group)[:, 0]
    np.testing.assert_allclose(alive_now, model.p_alive(SUMMARY), rtol=1e-12)
    bought = scaled(curves.purchase_scale, curves.cumulative(times), curves.group)
    for j, t in enumerate(times):
        expected = model.expected_purchases(SUMMARY, horizon=t).to_numpy()
        np.testing.assert_allclose(bought[:, j], expected, rtol=1e-10, atol=1e-14)
    new = model.curves()
    for t in times[1:]:
        found = float(new.purchase_scale[0] * new.cumulative(np.array([t]))[0, 0])
        assert found == pytest.approx(model.expected_purchases_new(horizon=t), rel=1e-10)


def test_bg_bb_curves_are_the_models_predictions() -> None:
    curves = BG_BB.curves(HISTORIES)
    opportunities = np.arange(0.0, 12.0)
    alive = scaled(curves.alive_scale, curves.survival(np.ones(1)), curves.group)[:, 0]
    np.testing.assert_allclose(alive, BG_BB.p_alive(HISTORIES), rtol=1e-12)
    bought = scaled(curves.purchase_scale, curves.cumulative(opportunities), curves.group)
    for n in range(12):
        expected = BG_BB.expected_purchases(HISTORIES, horizon=n).to_numpy()
        np.testing.assert_allclose(bought[:, n], expected, rtol=1e-10, atol=1e-14)
        new = BG_BB.curves()
        found = float(new.purchase_scale[0] * new.cumulative(np.array([float(n)]))[0, 0])
        assert found == pytest.approx(BG_BB.expected_purchases_new(horizon=n), rel=1e-10, abs=0)


@pytest.mark.parametrize("model", [SBG, BDW], ids=["sBG", "BdW"])
def test_contract_curves_are_the_models_predictions(model: models.ShiftedBetaGeo) -> None:
    curves = model.curves(TENURES)
    for h in range(1, 8):
        predicted = model.predict(TENURES, horizon=h)
        at = scaled(curves.alive_scale, curves.survival(np.array([float(h)])), curves.group)
        np.testing.assert_allclose(at[:, 0], predicted["p_active_at_horizon"], rtol=1e-12)
        # payments in the next h + 1 periods: the one now starting, then h renewals
        paid = scaled(curves.purchase_scale, curves.cumulative(np.array([h + 1.0])), curves.group)
        is_active = TENURES["is_censored"].to_numpy() == 1
        expected = np.where(is_active, 1.0 + predicted["expected_renewals"], 0.0)
        np.testing.assert_allclose(paid[:, 0], expected, rtol=1e-12)
    with pytest.raises(SchemaError, match=r"needs column\(s\) \['is_censored'\]"):
        model.curves(TENURES[["duration"]])


# --- the contractual models under the purchase-model contract's names ---------------------------


def sbg_survival(alpha: float, beta: float, t: np.ndarray) -> np.ndarray:
    """``S(t) = B(alpha, beta + t) / B(alpha, beta)`` (Fader & Hardie 2007, eq. 3)."""
    return np.asarray(np.exp(betaln(alpha, beta + t) - betaln(alpha, beta)))


def test_sbg_renewal_pmf_against_its_closed_form() -> None:
    alpha, beta = SBG.params_.to_numpy()
    h = 6
    k = np.arange(h + 1, dtype=np.float64)
    survival = sbg_survival(alpha, beta, np.arange(h + 2, dtype=np.float64))
    expected = np.append(survival[:h] - survival[1 : h + 1], survival[h])
    np.testing.assert_allclose(SBG.purchase_pmf(k, horizon=h), expected, rtol=1e-12)
    # given 3 periods survived: the same, from S(3 + k) / S(3)
    given_three = SBG.purchase_pmf(k, horizon=h, data=TENURES.iloc[[1]]).to_numpy()[0]
    tail = sbg_survival(alpha, beta, 3.0 + np.arange(h + 2, dtype=np.float64)) / survival[3]
    np.testing.assert_allclose(given_three, np.append(tail[:h] - tail[1 : h + 1], tail[h]),
                               rtol=1e-12)  # fmt: skip


@pytest.mark.parametrize("model", [SBG, BDW], ids=["sBG", "BdW"])
def test_contract_names_agree_with_predict(model: models.ShiftedBetaGeo) -> None:
    is_active = TENURES["is_censored"].to_numpy() == 1
    np.testing.assert_array_equal(model.p_alive(TENURES), is_active.astype(float))
    for h in (0, 1, 5, 24):
        predicted = model.predict(TENURES, horizon=h, discount=0.1)
        expected = model.expected_purchases(TENURES, horizon=h)
        np.testing.assert_array_equal(expected, predicted["expected_renewals"])
        new = model.expected_purchases_new(horizon=h)
        assert new == pytest.approx(
            model.expected_purchases(pd.DataFrame({"duration": [0], "is_censored": [1]}),
                                     horizon=h).iloc[0], rel=1e-12)  # fmt: skip
        counts = np.arange(h + 3)
        pmf = model.purchase_pmf(counts, horizon=h, data=TENURES)
        np.testing.assert_allclose(pmf.sum(axis=1), 1.0, rtol=1e-12)
        np.testing.assert_allclose(pmf.to_numpy() @ counts, expected, rtol=1e-10, atol=1e-14)
        assert (pmf.iloc[~is_active, 0] == 1.0).all()  # a lost customer renews no more
        assert (pmf[[h + 1, h + 2]] == 0.0).all(axis=None)
    np.testing.assert_array_equal(
        model.dert(TENURES, discount=0.1), model.predict(TENURES, horizon=0, discount=0.1)["derl"]
    )
    tenures = TENURES["duration"].to_numpy()[is_active]
    np.testing.assert_allclose(
        model.dert(TENURES, discount=0.1).to_numpy()[is_active],
        model.derl(0.1, tenures), rtol=1e-12,
    )  # fmt: skip


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(
    alpha=st.floats(0.2, 5.0), beta=st.floats(0.2, 5.0), tenure=st.integers(0, 60),
    horizon=st.integers(0, 40),
)  # fmt: skip
def test_the_renewal_pmf_is_a_distribution_with_the_expected_mean(
    alpha: float, beta: float, tenure: int, horizon: int
) -> None:
    model = models.ShiftedBetaGeo.from_params(alpha, beta)
    data = pd.DataFrame({"duration": [tenure], "is_censored": [1]})
    counts = np.arange(horizon + 1)
    pmf = model.purchase_pmf(counts, horizon=horizon, data=data).to_numpy()[0]
    assert np.all((pmf >= 0) & (pmf <= 1))
    assert pmf.sum() == pytest.approx(1.0, rel=1e-12)
    mean = model.expected_purchases(data, horizon=horizon).iloc[0]
    assert pmf @ counts == pytest.approx(mean, rel=1e-10, abs=1e-14)


def test_old_contract_calls_warn_and_agree() -> None:
    with pytest.warns(DeprecationWarning, match=r"predict\(data, h\)"):
        old = SBG.predict(TENURES, 4, discount=0.1)
    pd.testing.assert_frame_equal(old, SBG.predict(TENURES, horizon=4, discount=0.1))
    with pytest.warns(DeprecationWarning, match=r"simulate\(n_customers, T=n\)"):
        drawn = SBG.simulate(50, n_periods=5, rng=np.random.default_rng(1))
    pd.testing.assert_frame_equal(drawn, SBG.simulate(50, T=5, rng=np.random.default_rng(1)))
    with pytest.warns(DeprecationWarning, match=r"BetaGeoBetaBinom\.simulate"):
        drawn = BG_BB.simulate(50, n_periods=6, rng=np.random.default_rng(2))
    pd.testing.assert_frame_equal(drawn, BG_BB.simulate(50, T=6, rng=np.random.default_rng(2)))


def test_one_simulate_signature() -> None:
    import inspect

    for model_class in (*models.PURCHASE_MODELS.values(), models.ShiftedBetaGeo,
                        models.BetaDiscreteWeibull):  # fmt: skip
        names = list(inspect.signature(model_class.simulate).parameters)
        assert names[:3] == ["self", "n_customers", "T"], model_class.__name__
        assert "rng" in names


def test_every_registered_model_states_its_data() -> None:
    for model_class in models.PURCHASE_MODELS.values():
        assert set(model_class.summary_columns) >= {"frequency", model_class.age_column}
        assert model_class.contractual is False
    for model_class in (models.ShiftedBetaGeo, models.BetaDiscreteWeibull):
        assert model_class.summary_columns == ("duration", "is_censored")
        assert model_class.discrete_time
        assert model_class.contractual
