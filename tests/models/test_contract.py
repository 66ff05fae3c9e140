"""The model contract: one signature per method in every purchase model, old orders deprecated.

Each earlier call (``expected_purchases(t, data)``, ``purchase_pmf(n, t)``, ``dert(rate, data)``,
a positional ``horizon``, an earlier keyword name) still works for one release: it warns with a
DeprecationWarning that names the new call and returns exactly what the new call returns.
"""

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest

from cvalue import models
from cvalue.lifecycle import AliveModel
from cvalue.units import Rate

CONTINUOUS = {
    "BetaGeo": models.BetaGeo.from_params(0.243, 4.414, 0.793, 2.426, unit="week"),
    "ModifiedBetaGeo": models.ModifiedBetaGeo.from_params(0.525, 6.183, 0.891, 1.614, unit="week"),
    "ParetoNBD": models.ParetoNBD.from_params(0.553, 10.578, 0.606, 11.668, unit="week"),
}
BG_BB = models.BetaGeoBetaBinom.from_params(1.204, 0.750, 0.657, 2.783)
SUMMARY = pd.DataFrame(
    {"frequency": [0, 2, 5, 1], "recency": [0.0, 30.4, 36.0, 4.0], "T": [38.9, 38.9, 37.0, 32.1]},
    index=pd.Index(["a", "b", "c", "d"], name="customer_id"),
)
HISTORIES = pd.DataFrame({"frequency": [0, 3, 6, 2], "recency": [0, 5, 6, 3], "n_periods": 6})

Call = Callable[[Any], Any]

# (old call, new call, the old signature as the warning names it)
CONTINUOUS_CALLS: list[tuple[Call, Call, str]] = [
    (lambda m: m.expected_purchases(39, SUMMARY),
     lambda m: m.expected_purchases(SUMMARY, horizon=39), r"expected_purchases\(t, data\)"),
    (lambda m: m.expected_purchases("39w", data=SUMMARY),
     lambda m: m.expected_purchases(SUMMARY, horizon="39w"), r"expected_purchases\(t, data\)"),
    (lambda m: m.expected_purchases(t=39, data=SUMMARY),
     lambda m: m.expected_purchases(SUMMARY, horizon=39), r"call expected_purchases\(data, "),
    (lambda m: m.expected_purchases_new(52.0),
     lambda m: m.expected_purchases_new(horizon=52.0), r"expected_purchases_new\(t\)"),
    (lambda m: m.expected_purchases_new(t="1y"),
     lambda m: m.expected_purchases_new(horizon="1y"), r"horizon=t"),
    (lambda m: m.purchase_pmf(np.arange(6), 39.0),
     lambda m: m.purchase_pmf(np.arange(6), horizon=39.0), r"purchase_pmf\(n, t\)"),
    (lambda m: m.purchase_pmf(2, 39.0),
     lambda m: m.purchase_pmf(2, horizon=39.0), r"call purchase_pmf\(counts, horizon=t\)"),
    (lambda m: m.purchase_pmf(n=[0, 1], t=10.0),
     lambda m: m.purchase_pmf([0, 1], horizon=10.0), r"purchase_pmf\(n, t\)"),
    (lambda m: m.predict(SUMMARY, "52w"),
     lambda m: m.predict(SUMMARY, horizon="52w"), r"predict\(data, horizon=horizon\)"),
]  # fmt: skip

DERT_CALLS: list[tuple[Call, Call, str]] = [
    (lambda m: m.dert(0.01, SUMMARY),
     lambda m: m.dert(SUMMARY, discount=0.01), r"dert\(discount_rate, data\)"),
    (lambda m: m.dert(Rate(0.1), data=SUMMARY),
     lambda m: m.dert(SUMMARY, discount=Rate(0.1)), r"dert\(data, discount=discount_rate\)"),
    (lambda m: m.dert(discount_rate=0.01, data=SUMMARY),
     lambda m: m.dert(SUMMARY, discount=0.01), r"ParetoNBD\.dert"),
]  # fmt: skip

BG_BB_CALLS: list[tuple[Call, Call, str]] = [
    (lambda m: m.expected_purchases(5, HISTORIES),
     lambda m: m.expected_purchases(HISTORIES, horizon=5), r"expected_purchases\(n, data\)"),
    (lambda m: m.expected_purchases(n=5, data=HISTORIES),
     lambda m: m.expected_purchases(HISTORIES, horizon=5), r"horizon=n"),
    (lambda m: m.expected_purchases_new(11),
     lambda m: m.expected_purchases_new(horizon=11), r"expected_purchases_new\(n\)"),
    (lambda m: m.purchase_pmf(np.arange(12), 11),
     lambda m: m.purchase_pmf(np.arange(12), horizon=11), r"purchase_pmf\(x, n\)"),
    (lambda m: m.purchase_pmf(x=3, n=11),
     lambda m: m.purchase_pmf(3, horizon=11), r"call purchase_pmf\(counts, horizon=n\)"),
    (lambda m: m.dert(0.1, HISTORIES),
     lambda m: m.dert(HISTORIES, discount=0.1), r"BetaGeoBetaBinom\.dert\(discount_rate, data\)"),
    (lambda m: m.predict(HISTORIES, 3),
     lambda m: m.predict(HISTORIES, horizon=3), r"predict\(data, horizon\)"),
]  # fmt: skip


def assert_same(old: Any, new: Any) -> None:
    if isinstance(old, pd.DataFrame):
        pd.testing.assert_frame_equal(old, new, check_exact=True)
    elif isinstance(old, pd.Series):
        pd.testing.assert_series_equal(old, new, check_exact=True)
    else:
        assert type(old) is type(new)
        np.testing.assert_array_equal(old, new)


@pytest.mark.parametrize("name", sorted(CONTINUOUS))
@pytest.mark.parametrize(("old", "new", "match"), CONTINUOUS_CALLS)
def test_continuous_time_old_orders_warn_and_agree(
    name: str, old: Call, new: Call, match: str
) -> None:
    model = CONTINUOUS[name]
    expected = new(model)
    with pytest.warns(DeprecationWarning, match=match) as caught:
        found = old(model)
    assert_same(found, expected)
    assert all(w.filename == __file__ for w in caught)  # stacklevel=2: the caller's line


@pytest.mark.parametrize(("old", "new", "match"), DERT_CALLS)
def test_pareto_nbd_dert_old_order_warns_and_agrees(old: Call, new: Call, match: str) -> None:
    model = CONTINUOUS["ParetoNBD"]
    expected = new(model)
    with pytest.warns(DeprecationWarning, match=match):
        assert_same(old(model), expected)


@pytest.mark.parametrize(("old", "new", "match"), BG_BB_CALLS)
def test_bg_bb_old_orders_warn_and_agree(old: Call, new: Call, match: str) -> None:
    expected = new(BG_BB)
    with pytest.warns(DeprecationWarning, match=match):
        assert_same(old(BG_BB), expected)


def test_the_warning_names_the_model_and_the_new_call() -> None:
    with pytest.warns(DeprecationWarning, match="ModifiedBetaGeo") as caught:
        CONTINUOUS["ModifiedBetaGeo"].expected_purchases(10, SUMMARY)
    assert str(caught[0].message) == (
        "ModifiedBetaGeo.expected_purchases(t, data) is deprecated and will be removed in the "
        "next release; call expected_purchases(data, horizon=t) instead: the data come first and "
        "the options by keyword"
    )


def test_calls_of_neither_form_fail_as_python_fails() -> None:
    model = CONTINUOUS["BetaGeo"]
    with pytest.raises(TypeError):
        model.expected_purchases(SUMMARY, 10, 20)
    with pytest.raises(TypeError, match="horizon"):
        model.expected_purchases(SUMMARY)
    with pytest.raises(TypeError, match="both 't'"):
        model.expected_purchases(SUMMARY, t=10, horizon=10)
    with pytest.raises(TypeError):
        model.purchase_pmf(3, 10.0, horizon=10.0)


def test_the_contract_is_exported_and_every_purchase_model_names_its_age_column() -> None:
    assert {"PurchaseModel", "SpendModel"} <= set(models.__all__)
    assert AliveModel is models.PurchaseModel
    assert [m.age_column for m in CONTINUOUS.values()] == ["T", "T", "T"]
    assert BG_BB.age_column == "n_periods"
    for model in (*CONTINUOUS.values(), BG_BB):
        for method in ("p_alive", "expected_purchases", "expected_purchases_new",
                       "purchase_pmf", "predict", "with_params"):  # fmt: skip
            assert callable(getattr(model, method))
    for method in ("conditional_expected_spend", "expected_spend_new", "with_params"):
        assert callable(getattr(models.GammaGamma, method))
    assert models.SpendModel.__doc__ is not None
