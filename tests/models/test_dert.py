"""DERT of the BG/NBD and MBG/NBD: the discounting integral over the model's own curves.

No closed form is published for the BG/NBD family, so ``dert`` integrates
``delta exp(-delta t) E[X(T, T + t)]`` by a composite Gauss-Legendre rule over the model's curves.
It is checked against adaptive quadrature of the model's ``expected_purchases`` (an independent
route), over histories from ``x = 0`` to ``x = 200`` and ages from ``1e-6`` to ``1e4`` weeks, and
the same route is checked against the Pareto/NBD's closed form (Fader, Hardie & Lee 2005a, eq. 2).
"""

import numpy as np
import pandas as pd
import pytest
from scipy.integrate import quad_vec

from cvalue import models
from cvalue.models.beta_geo import _discounted_purchases
from cvalue.units import Rate, TimeUnit

CDNOW = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}  # FHL (2005), CDNOW estimates
MODELS = {
    "BetaGeo": models.BetaGeo.from_params(**CDNOW, unit="week"),
    "ModifiedBetaGeo": models.ModifiedBetaGeo.from_params(**CDNOW, unit="week"),
}
HISTORIES = pd.DataFrame(
    {
        "frequency": [0, 0, 0, 2, 5, 200, 1, 3, 40],
        "recency": [0.0, 0.0, 0.0, 30.4, 36.0, 38.0, 1e-3, 9000.0, 2.0],
        "T": [1e-6, 38.9, 1e4, 38.9, 37.0, 39.0, 1e-3, 1e4, 2.5],
    },
    index=pd.Index(list("abcdefghi"), name="customer_id"),
)
RATES = [1e-4, 0.002, 0.05, 1.0]  # continuously compounded, per week


def adaptive_dert(model: models.BetaGeo, data: pd.DataFrame, delta: float) -> np.ndarray:
    """``int_0^inf e^{-u} E[X(T, T + u / delta)] du`` by adaptive quadrature, all rows at once.

    Each row is scaled by its expected purchases over ``1 / delta`` so that the rows are of one
    size and the max-norm tolerance is a relative one for each.
    """
    size = model.expected_purchases(data, horizon=1.0 / delta).to_numpy()

    def integrand(u: float) -> np.ndarray:
        found = model.expected_purchases(data, horizon=u / delta).to_numpy()
        return np.exp(-u) * found / size

    value, _ = quad_vec(integrand, 0.0, np.inf, epsabs=0.0, epsrel=1e-12, norm="max")
    return np.asarray(value * size)


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("delta", RATES)
def test_dert_equals_adaptive_quadrature_of_expected_purchases(name: str, delta: float) -> None:
    model = MODELS[name]
    found = model.dert(HISTORIES, discount=delta)
    assert found.name == "dert"
    assert found.index.equals(HISTORIES.index)
    np.testing.assert_allclose(found, adaptive_dert(model, HISTORIES, delta), rtol=1e-8, atol=0)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_the_rule_has_converged(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    model = MODELS[name]
    for delta in RATES[1:]:  # 1e-4 is checked against adaptive quadrature above
        found = model.dert(HISTORIES, discount=delta)
        monkeypatch.setattr("cvalue.models.beta_geo._DERT_WIDTH", 0.25)
        monkeypatch.setattr("cvalue.models.beta_geo._DERT_NODES", 16)
        finer = model.dert(HISTORIES, discount=delta)
        monkeypatch.undo()
        np.testing.assert_allclose(found, finer, rtol=1e-10, atol=0)


def test_the_same_route_gives_the_pareto_nbd_closed_form() -> None:
    model = models.ParetoNBD.from_params(0.553, 10.578, 0.606, 11.668, unit="week")
    beta = float(model.params_["beta"])
    for delta in RATES:
        numerical = _discounted_purchases(model.curves(HISTORIES), delta, beta)
        np.testing.assert_allclose(numerical, model.dert(HISTORIES, discount=delta), rtol=1e-8)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_dert_falls_as_the_rate_rises_and_reads_a_rate(name: str) -> None:
    model = MODELS[name]
    values = np.stack([model.dert(HISTORIES, discount=delta).to_numpy() for delta in RATES])
    assert np.all(np.diff(values, axis=0) < 0)
    annual = Rate(0.1)
    np.testing.assert_allclose(
        model.dert(HISTORIES, discount=annual),
        model.dert(HISTORIES, discount=annual.continuous(TimeUnit.WEEK)),
        rtol=1e-15,
    )


@pytest.mark.parametrize("name", sorted(MODELS))
def test_the_earlier_argument_order_warns_and_agrees(name: str) -> None:
    model = MODELS[name]
    with pytest.warns(DeprecationWarning, match=rf"{name}\.dert\(discount_rate, data\)"):
        old = model.dert(0.01, HISTORIES)
    pd.testing.assert_series_equal(old, model.dert(HISTORIES, discount=0.01), check_exact=True)


def test_a_dead_certain_customer_has_none_and_a_new_one_the_most() -> None:
    model = MODELS["ModifiedBetaGeo"]
    silent = pd.DataFrame({"frequency": [0, 0], "recency": [0.0, 0.0], "T": [1e-9, 1e6]})
    found = model.dert(silent, discount=0.01).to_numpy()
    assert found[1] < 1e-3 * found[0]
