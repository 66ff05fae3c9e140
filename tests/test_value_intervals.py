"""Per-customer CLV intervals (``clv(..., interval=...)``) and the job's interval columns."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import cvalue as cv
from cvalue.datasets import load_cdnow, make_crm
from cvalue.errors import SchemaError
from cvalue.value import DiscountRates, clv
from tests.conftest import demo_config, read_all, run_cli, write_crm


@cache
def _cdnow() -> tuple[pd.DataFrame, cv.BetaGeo, cv.GammaGamma]:
    summary = load_cdnow().summary
    return summary, cv.BetaGeo().fit(summary, unit="week"), cv.GammaGamma().fit(summary)


@cache
def _crm(n_customers: int) -> tuple[pd.DataFrame, cv.BetaGeo]:
    crm = make_crm(n_customers, seed=3)
    summary = cv.rfm_summary(
        crm.transactions, observation_end=crm.truth.observation_end, unit="week"
    )
    summary = summary[summary["T"] > 0]
    return summary, cv.BetaGeo().fit(summary)


def _options(purchases: object, spend: object) -> dict[str, object]:
    return {
        "purchases": purchases,
        "spend": spend,
        "margin": 0.3,
        "horizon": "1y",
        "rates": DiscountRates.single(0.10),
        "cost_to_serve": 0.5,
        "marketing_cost": 0.2,
    }


def _width(frame: pd.DataFrame) -> pd.Series:
    return frame["clv_upper"] - frame["clv_lower"]


def test_without_an_interval_the_table_is_unchanged() -> None:
    summary, bg, gg = _cdnow()
    before = clv(summary, **_options(bg, gg)).customers  # type: ignore[arg-type]
    after = clv(summary, **_options(bg, gg), interval=None, n_draws=50).customers  # type: ignore[arg-type]
    pd.testing.assert_frame_equal(before, after, check_exact=True)
    crm, model = _crm(2_000)
    before = clv(crm, **_options(model, 40.0)).customers  # type: ignore[arg-type]
    after = clv(crm, **_options(model, 40.0), interval=None).customers  # type: ignore[arg-type]
    pd.testing.assert_frame_equal(before, after, check_exact=True)


@pytest.mark.parametrize("spend", ["gamma_gamma", "fixed"])
def test_bounds_surround_the_estimate_and_widen_with_the_level(spend: str) -> None:
    summary, bg, gg = _cdnow()
    options = _options(bg, gg if spend == "gamma_gamma" else 25.0)
    point = clv(summary, **options).customers  # type: ignore[arg-type]
    found = {
        level: clv(summary, **options, interval=level, n_draws=100).customers  # type: ignore[arg-type]
        for level in (0.5, 0.9)
    }
    wide = found[0.9]
    pd.testing.assert_frame_equal(wide[point.columns], point)
    # The CLV is a nonlinear function of the parameters, so its value at the estimates need not
    # lie inside the quantiles of its draws for every customer (and 100 draws are noisy): we ask
    # for 99 % of the customers, not all.
    inside = (wide["clv_lower"] <= point["clv"]) & (point["clv"] <= wide["clv_upper"])
    assert inside.mean() >= 0.99
    assert (wide["clv_lower"] <= wide["clv_upper"]).all()
    assert (_width(wide) >= _width(found[0.5]) - 1e-12).all()
    assert _width(wide).median() > 1.5 * _width(found[0.5]).median()


def test_the_same_generator_gives_the_same_bounds() -> None:
    summary, bg, gg = _cdnow()
    first, second = (
        clv(summary, **_options(bg, gg), interval=0.9, n_draws=20, rng=np.random.default_rng(1))  # type: ignore[arg-type]
        for _ in range(2)
    )
    pd.testing.assert_frame_equal(first.customers, second.customers, check_exact=True)
    other = clv(summary, **_options(bg, gg), interval=0.9, n_draws=20, rng=np.random.default_rng(2))  # type: ignore[arg-type]
    assert not np.array_equal(other.customers["clv_upper"], first.customers["clv_upper"])


def test_a_larger_base_gives_narrower_intervals() -> None:
    widths = {}
    for n_customers in (2_000, 20_000):
        summary, model = _crm(n_customers)
        values = clv(summary, **_options(model, 40.0), interval=0.9, n_draws=60).customers  # type: ignore[arg-type]
        widths[n_customers] = float((_width(values) / values["clv"].abs().clip(lower=1.0)).median())
    assert widths[20_000] < 0.6 * widths[2_000]


def test_models_without_a_covariance_have_no_interval() -> None:
    summary, bg, gg = _cdnow()
    given = cv.BetaGeo.from_params(**bg.params_.to_dict(), unit="week")
    with pytest.raises(SchemaError, match=r"fit the model.*interval=None"):
        clv(summary, **_options(given, gg), interval=0.9)  # type: ignore[arg-type]
    with pytest.raises(SchemaError, match="between 0 and 1"):
        clv(summary, **_options(bg, gg), interval=1.5)  # type: ignore[arg-type]


def test_the_job_writes_interval_columns_when_the_config_asks(tmp_path: Path) -> None:
    crm = make_crm(300, seed=4)
    url = f"duckdb:///{tmp_path / 'crm.duckdb'}"
    write_crm(url, crm)
    config = demo_config(tmp_path, crm, "[value]\n", "[value]\ninterval = 0.9\n")
    code, output = run_cli(["score"], config, url)
    assert code == 0, output
    scores = read_all(url, "customer_value")
    for horizon in ("3y", "5y"):
        lower, upper = scores[f"clv_{horizon}_lower"], scores[f"clv_{horizon}_upper"]
        assert lower.notna().all()
        assert (lower <= upper).all()
        inside = (lower <= scores[f"clv_{horizon}"]) & (scores[f"clv_{horizon}"] <= upper)
        assert inside.mean() >= 0.99


# --- bootstrap ---------------------------------------------------------------------------------


def test_draws_stay_the_default_method() -> None:
    summary, bg, gg = _cdnow()
    default = clv(summary, **_options(bg, gg), interval=0.9, n_draws=20).customers  # type: ignore[arg-type]
    explicit = clv(  # type: ignore[arg-type]
        summary, **_options(bg, gg), interval=0.9, n_draws=20, interval_method="draws"
    ).customers
    pd.testing.assert_frame_equal(default, explicit, check_exact=True)


def test_bootstrap_bounds_are_the_quantiles_of_the_replicates_clv() -> None:
    """Each bound is the quantile of the CLV valued with the replicates the seed makes (the
    purchase model's replicate, then the spend model's, per draw)."""
    summary, bg, gg = _cdnow()
    sample = summary.iloc[::40]
    found = clv(  # type: ignore[arg-type]
        sample, **_options(bg, gg), interval=0.8, n_draws=12, rng=np.random.default_rng(4),
        interval_method="bootstrap",
    ).customers  # fmt: skip
    point = clv(sample, **_options(bg, gg)).customers  # type: ignore[arg-type]
    pd.testing.assert_frame_equal(found[point.columns], point)
    rng = np.random.default_rng(4)
    drawn = []
    for _ in range(12):
        purchases, spend = bg.resampled(rng), gg.resampled(rng)
        drawn.append(clv(sample, **_options(purchases, spend)).customers["clv"].to_numpy())  # type: ignore[arg-type]
    lower, upper = np.quantile(np.array(drawn), [0.1, 0.9], axis=0)
    np.testing.assert_allclose(found["clv_lower"], lower, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(found["clv_upper"], upper, rtol=1e-9, atol=1e-9)
    assert (found["clv_upper"] > found["clv_lower"]).mean() > 0.9


def test_bootstrap_is_reproducible_and_close_to_the_draws() -> None:
    """On 2,000 simulated customers, 200 replicates against 200 draws: the median ratio of the
    widths over the customers is within 0.3 of 1 (a 5 %/95 % width of B values has relative
    Monte Carlo error 0.884/sqrt(B), 0.0625 for B = 200, 0.088 for the ratio: 0.3 is 3.4 of
    them)."""
    summary, model = _crm(2_000)
    options = {**_options(model, 40.0), "interval": 0.9, "interval_method": "bootstrap"}
    first, second = (
        clv(summary.iloc[::50], **options, n_draws=5, rng=np.random.default_rng(3)).customers  # type: ignore[arg-type]
        for _ in range(2)
    )
    pd.testing.assert_frame_equal(first, second, check_exact=True)
    boot = clv(summary, **options, n_draws=200).customers  # type: ignore[arg-type]
    draws = clv(summary, **_options(model, 40.0), interval=0.9, n_draws=200).customers  # type: ignore[arg-type]
    has_width = _width(draws) > 1e-9
    ratio = (_width(boot) / _width(draws))[has_width].median()
    assert abs(ratio - 1.0) < 0.3, ratio


def test_bootstrap_needs_models_fitted_on_data() -> None:
    summary, bg, gg = _cdnow()
    given = cv.BetaGeo.from_params(**bg.params_.to_dict(), unit="week")
    with pytest.raises(
        SchemaError, match=r"bootstrap.*not fitted on data.*interval_method='draws'"
    ):
        clv(summary, **_options(given, gg), interval=0.9, interval_method="bootstrap")  # type: ignore[arg-type]
    with pytest.raises(SchemaError, match=r"interval_method must be 'draws' or 'bootstrap'"):
        clv(summary, **_options(bg, gg), interval=0.9, interval_method="jackknife")  # type: ignore[arg-type]
    with pytest.raises(SchemaError, match="n_draws must be a whole number of at least 2"):
        clv(summary, **_options(bg, gg), interval=0.9, n_draws=1)  # type: ignore[arg-type]
