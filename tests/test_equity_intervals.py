"""Customer equity's bootstrap intervals (``customer_equity(..., method="bootstrap")``)."""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd
import pytest

import cvalue as cv
from cvalue.datasets import load_cdnow
from cvalue.errors import SchemaError
from cvalue.value import DiscountRates, clv, customer_equity


@cache
def _value(given: bool = False) -> cv.CustomerValue:
    summary = load_cdnow().summary
    bg, gg = cv.BetaGeo().fit(summary, unit="week"), cv.GammaGamma().fit(summary)
    if given:
        bg = cv.BetaGeo.from_params(**bg.params_.to_dict(), unit="week")
    return clv(
        summary,
        purchases=bg,
        spend=gg,
        margin=0.3,
        horizon="2y",
        rates=DiscountRates.single(0.10),
        cost_to_serve=0.5,
        marketing_cost=0.0,
    )


def _buyers(value: cv.CustomerValue) -> pd.Series:
    frequency = load_cdnow().summary["frequency"].reindex(value.customers.index)
    return (frequency > 0).map({True: "repeat", False: "one-off"})


def test_bootstrap_agrees_with_the_delta_method_for_the_base_and_the_groups() -> None:
    """100 replicates estimate a standard deviation to 1/sqrt(2 x 99) = 7 % (relative): the
    bound 0.28 is 4 of them."""
    value = _value()
    by = _buyers(value)
    delta = customer_equity(value, ("1y", "2y"), by=by, level=0.9)
    boot = customer_equity(
        value, ("1y", "2y"), by=by, level=0.9, method="bootstrap", n_draws=100,
        rng=np.random.default_rng(5),
    )  # fmt: skip
    assert boot.method == "bootstrap"
    for table in ("by_group", "total"):
        found, expected = getattr(boot, table), getattr(delta, table)
        assert found.index.equals(expected.index)
        np.testing.assert_allclose(found["equity"], expected["equity"], rtol=1e-12)
        ratio = found["std_error"] / expected["std_error"]
        assert (np.abs(ratio - 1.0) < 0.28).all(), (table, ratio.tolist())
        assert (found["ci_lower"] < found["equity"]).all()
        assert (found["equity"] < found["ci_upper"]).all()
    groups = boot.by_group.xs("2y", level="horizon")["equity"]
    assert groups.sum() == pytest.approx(boot.total.loc["2y", "equity"], rel=1e-12)


def test_bootstrap_is_reproducible() -> None:
    value = _value()

    def total(seed: int) -> pd.DataFrame:
        found = customer_equity(
            value, ("1y",), method="bootstrap", n_draws=5, rng=np.random.default_rng(seed)
        )
        return found.total

    pd.testing.assert_frame_equal(total(1), total(1), check_exact=True)
    assert not total(1).equals(total(2))


def test_bootstrap_needs_models_fitted_on_data_and_a_generator() -> None:
    with pytest.raises(SchemaError, match=r"bootstrap.*not fitted on data.*method='draws'"):
        customer_equity(
            _value(given=True), ("1y",), method="bootstrap", rng=np.random.default_rng(1)
        )
    with pytest.raises(SchemaError, match=r"method='bootstrap' needs rng="):
        customer_equity(_value(), ("1y",), method="bootstrap")
    with pytest.raises(SchemaError, match=r"'delta', 'draws' or 'bootstrap'"):
        customer_equity(_value(), ("1y",), method="jackknife", rng=np.random.default_rng(1))  # type: ignore[arg-type]
    with pytest.raises(SchemaError, match="n_draws must be a whole number of at least 2"):
        customer_equity(_value(), ("1y",), method="draws", n_draws=1, rng=np.random.default_rng(1))
