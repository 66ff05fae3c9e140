"""Per-customer prediction intervals of the purchase models (models/_intervals.py)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from cvalue import (
    BetaGeo,
    BetaGeoBetaBinom,
    BetaGeoCNBD,
    ModifiedBetaGeo,
    ModifiedBetaGeoCNBD,
    ParetoNBD,
)
from cvalue.datasets import load_cdnow, load_donations
from cvalue.errors import SchemaError
from cvalue.models import log_normal_root, parameter_draws
from cvalue.models._base import Model
from cvalue.models._intervals import row_quantiles

TRUE_BG = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}  # CDNOW, Fader et al. (2005)
HISTORY = pd.DataFrame({"frequency": [0, 2, 7], "recency": [0.0, 30.0, 35.0], "T": [39.0] * 3})
DRAW_COLUMNS = [
    "p_alive_lower",
    "p_alive_upper",
    "expected_purchases_lower",
    "expected_purchases_upper",
]


@pytest.fixture(scope="module")
def cdnow() -> pd.DataFrame:
    return load_cdnow().summary


@pytest.fixture(
    scope="module",
    params=["bg", "mbg", "pareto", "bg_cnbd", "mbg_cnbd", "bgbb"],
)
def fitted(
    request: pytest.FixtureRequest, cdnow: pd.DataFrame
) -> tuple[Model, pd.DataFrame, float]:
    """A model fitted on CDNOW (donations for the BG/BB), its data and a horizon."""
    if request.param == "bgbb":
        donations = load_donations()
        return BetaGeoBetaBinom().fit(donations, unit="year"), donations, 5.0
    makers = {
        "bg": BetaGeo,
        "mbg": ModifiedBetaGeo,
        "pareto": ParetoNBD,
        "bg_cnbd": lambda: BetaGeoCNBD(k=1),
        "mbg_cnbd": lambda: ModifiedBetaGeoCNBD(k=1),
    }
    return makers[request.param]().fit(cdnow), cdnow, 52.0


def test_no_interval_is_today_s_predict(fitted: tuple[Model, pd.DataFrame, float]) -> None:
    model, data, horizon = fitted
    plain = model.predict(data, horizon=horizon)  # type: ignore[attr-defined]
    explicit = model.predict(data, horizon=horizon, interval=None)  # type: ignore[attr-defined]
    pd.testing.assert_frame_equal(plain, explicit, check_exact=True)
    assert list(plain.columns) == ["p_alive", "expected_purchases"]
    with_bounds = model.predict(data, horizon=horizon, interval=0.9, n_draws=20)  # type: ignore[attr-defined]
    pd.testing.assert_frame_equal(with_bounds[list(plain.columns)], plain, check_exact=True)


def test_draws_bracket_the_estimate(fitted: tuple[Model, pd.DataFrame, float]) -> None:
    """Lower <= upper for every customer; the estimate inside the 90 % interval of 100 draws
    for at least 99 % of customers (a percentile interval need not contain it, but nearly does)."""
    model, data, horizon = fitted
    found = model.predict(data, horizon=horizon, interval=0.9, n_draws=100)  # type: ignore[attr-defined]
    assert list(found.columns[2:]) == DRAW_COLUMNS
    assert found.index.equals(data.index)
    for name in ("p_alive", "expected_purchases"):
        lower, upper = found[f"{name}_lower"], found[f"{name}_upper"]
        assert (lower <= upper).all()
        is_inside = (lower <= found[name]) & (found[name] <= upper)
        assert is_inside.mean() >= 0.99, name
    assert found["p_alive_lower"].between(0.0, 1.0).all()
    assert found["p_alive_upper"].between(0.0, 1.0).all()


def test_draws_widen_with_level_and_are_reproducible(cdnow: pd.DataFrame) -> None:
    model = BetaGeo().fit(cdnow)

    def bounds(level: float, seed: int) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        return model.predict(cdnow, horizon=52.0, interval=level, n_draws=50, rng=rng)

    narrow, wide = bounds(0.5, 7), bounds(0.95, 7)
    for name in ("p_alive", "expected_purchases"):
        assert (wide[f"{name}_lower"] <= narrow[f"{name}_lower"]).all()
        assert (wide[f"{name}_upper"] >= narrow[f"{name}_upper"]).all()
        assert (wide[f"{name}_upper"] - wide[f"{name}_lower"]).mean() > (
            narrow[f"{name}_upper"] - narrow[f"{name}_lower"]
        ).mean()
    pd.testing.assert_frame_equal(bounds(0.9, 3), bounds(0.9, 3), check_exact=True)
    default_a = model.predict(cdnow, horizon=52.0, interval=0.9, n_draws=20)
    default_b = model.predict(cdnow, horizon=52.0, interval=0.9, n_draws=20)
    pd.testing.assert_frame_equal(default_a, default_b, check_exact=True)
    assert not bounds(0.9, 3).equals(bounds(0.9, 4))


def test_draws_shrink_as_the_base_grows() -> None:
    truth = BetaGeo.from_params(**TRUE_BG, unit="week")
    widths = []
    for n_customers in (2_000, 20_000):
        base = truth.simulate(n_customers, 39.0, rng=np.random.default_rng(n_customers))
        found = BetaGeo().fit(base).predict(HISTORY, horizon=52.0, interval=0.9, n_draws=100)
        widths.append(found["expected_purchases_upper"] - found["expected_purchases_lower"])
    assert (widths[1] < widths[0]).all()


def test_draws_need_a_covariance() -> None:
    model = BetaGeo.from_params(**TRUE_BG, unit="week")
    with pytest.raises(SchemaError, match=r"no covariance.*method='predictive'.*fit the model"):
        model.predict(HISTORY, horizon=52.0, interval=0.9)
    found = model.predict(HISTORY, horizon=52.0, interval=0.9, method="predictive")
    assert list(found.columns[2:]) == ["purchases_lower", "purchases_upper"]


@pytest.mark.parametrize(
    ("options", "phrase"),
    [
        ({"interval": 1.5}, "between 0 and 1"),
        ({"interval": 0.9, "method": "jackknife"}, "'draws', 'bootstrap' or 'predictive'"),
        ({"interval": 0.9, "n_draws": 1}, "at least 2"),
        ({"interval": 0.9, "method": "bootstrap", "n_draws": 1}, "at least 2"),
    ],
)
def test_bad_options_raise(cdnow: pd.DataFrame, options: dict[str, object], phrase: str) -> None:
    model = BetaGeo().fit(cdnow)
    with pytest.raises(SchemaError, match=phrase):
        model.predict(HISTORY, horizon=52.0, **options)  # type: ignore[arg-type]


def test_predictive_bounds_are_the_pmf_s_quantiles(
    fitted: tuple[Model, pd.DataFrame, float],
) -> None:
    """P(X <= upper) >= (1 + level)/2 > P(X <= upper - 1), and the same for lower."""
    model, data, horizon = fitted
    sample = data.iloc[::25]
    level = 0.8
    found = model.predict(sample, horizon=horizon, interval=level, method="predictive")  # type: ignore[attr-defined]
    assert found["purchases_lower"].dtype == np.int64
    pmf = model.purchase_pmf(np.arange(400), horizon=horizon, data=sample)  # type: ignore[attr-defined]
    cumulative = np.cumsum(pmf.to_numpy(), axis=1)
    rows = np.arange(len(sample))
    for column, tail in (("purchases_lower", 0.1), ("purchases_upper", 0.9)):
        bound = found[column].to_numpy()
        assert (cumulative[rows, bound] >= tail).all(), column
        below = np.where(bound > 0, cumulative[rows, np.maximum(bound - 1, 0)], -1.0)
        assert (below < tail).all(), column
    assert (found["purchases_lower"] <= found["purchases_upper"]).all()


def test_draws_cover_the_truth() -> None:
    """30 replications of (simulate 3,000 customers, fit, 90 % draws interval of the expected
    purchases of a fixed history): the interval covers the true value in at least 70 % of them.
    benchmarks/coverage_intervals.py runs the full check."""
    truth = BetaGeo.from_params(**TRUE_BG, unit="week")
    history = HISTORY.iloc[[1]]
    target = float(truth.expected_purchases(history, horizon=52.0).iloc[0])
    rng = np.random.default_rng(2026)
    covered = []
    for _ in range(30):
        base = truth.simulate(3_000, 39.0, rng=rng)
        found = (
            BetaGeo(n_starts=1)
            .fit(base)
            .predict(history, horizon=52.0, interval=0.9, n_draws=100, rng=rng)
        )
        row = found.iloc[0]
        covered.append(row["expected_purchases_lower"] <= target <= row["expected_purchases_upper"])
    assert np.mean(covered) >= 0.7


# --- bootstrap ---------------------------------------------------------------------------------


def test_bootstrap_gives_the_draws_columns(fitted: tuple[Model, pd.DataFrame, float]) -> None:
    model, data, horizon = fitted
    sample = data.iloc[::10]
    found = model.predict(  # type: ignore[attr-defined]
        sample, horizon=horizon, interval=0.9, method="bootstrap", n_draws=8
    )
    assert list(found.columns) == ["p_alive", "expected_purchases", *DRAW_COLUMNS]
    assert found.index.equals(sample.index)
    for name in ("p_alive", "expected_purchases"):
        assert (found[f"{name}_lower"] <= found[f"{name}_upper"]).all()
    assert (found["expected_purchases_upper"] > found["expected_purchases_lower"]).any()


def test_bootstrap_reads_quantiles_off_the_replicates(cdnow: pd.DataFrame) -> None:
    """The bounds are the quantiles of the predictions of the replicates the seed makes."""
    model = BetaGeo().fit(cdnow)
    found = model.predict(
        HISTORY, horizon=52.0, interval=0.8, method="bootstrap", n_draws=20,
        rng=np.random.default_rng(11),
    )  # fmt: skip
    rng = np.random.default_rng(11)
    replicates = [model.resampled(rng) for _ in range(20)]
    drawn = np.array([r.expected_purchases(HISTORY, horizon=52.0) for r in replicates])
    lower, upper = np.quantile(drawn, [0.1, 0.9], axis=0)
    np.testing.assert_allclose(found["expected_purchases_lower"], lower, rtol=1e-12)
    np.testing.assert_allclose(found["expected_purchases_upper"], upper, rtol=1e-12)


def test_bootstrap_is_reproducible(cdnow: pd.DataFrame) -> None:
    model = BetaGeo().fit(cdnow)

    def bounds(seed: int | None) -> pd.DataFrame:
        rng = None if seed is None else np.random.default_rng(seed)
        return model.predict(
            HISTORY, horizon=52.0, interval=0.9, method="bootstrap", n_draws=10, rng=rng
        )

    pd.testing.assert_frame_equal(bounds(3), bounds(3), check_exact=True)
    pd.testing.assert_frame_equal(bounds(None), bounds(None), check_exact=True)
    assert not bounds(3).equals(bounds(4))


def test_bootstrap_agrees_with_the_draws_on_a_large_base() -> None:
    """On 20,000 simulated customers both estimate the same sampling distribution.

    Tolerances are Monte Carlo errors, not tuned: the SD of B normal values has relative standard
    error 1/sqrt(2(B - 1)) (0.071 for B = 100; bound: 4 of them); the width between the 5 % and
    95 % quantiles of B normal values has relative standard error 0.884/sqrt(B), so the ratio of a
    100-replicate width to a 400-draw width has 0.099 (bound: 3.5 of them, 0.35).
    """
    truth = BetaGeo.from_params(**TRUE_BG, unit="week")
    model = BetaGeo().fit(truth.simulate(20_000, 39.0, rng=np.random.default_rng(1)))
    rng = np.random.default_rng(5)
    replicates = [model.resampled(rng) for _ in range(100)]
    log_sd = np.log([r.params_.to_numpy() for r in replicates]).std(axis=0, ddof=1)
    asymptotic = (model.std_errors_ / model.params_).to_numpy()
    assert np.all(np.abs(log_sd / asymptotic - 1.0) < 4.0 / np.sqrt(2.0 * 99.0))
    boot = model.predict(
        HISTORY, horizon=52.0, interval=0.9, method="bootstrap", n_draws=100,
        rng=np.random.default_rng(5),
    )  # fmt: skip
    draws = model.predict(
        HISTORY, horizon=52.0, interval=0.9, n_draws=400, rng=np.random.default_rng(6)
    )
    for name in ("p_alive", "expected_purchases"):
        width = draws[f"{name}_upper"] - draws[f"{name}_lower"]
        ratio = (boot[f"{name}_upper"] - boot[f"{name}_lower"])[width > 0] / width[width > 0]
        assert len(ratio) >= 2
        assert (np.abs(ratio - 1.0) < 0.35).all(), (name, ratio.tolist())


def test_bootstrap_needs_a_model_fitted_on_data(cdnow: pd.DataFrame) -> None:
    given = BetaGeo.from_params(**TRUE_BG, unit="week")
    loaded = BetaGeo.from_dict(BetaGeo().fit(cdnow).to_dict())
    for model in (given, loaded):
        with pytest.raises(SchemaError, match=r"bootstrap.*not fitted on data.*method='draws'"):
            model.predict(HISTORY, horizon=52.0, interval=0.9, method="bootstrap")
    found = loaded.predict(HISTORY, horizon=52.0, interval=0.9, n_draws=5)
    assert list(found.columns[2:]) == DRAW_COLUMNS


# --- which parameters are drawn on the log scale ----------------------------------------------


class _RealValued(BetaGeo):
    """A BG/NBD whose parameter ``a`` is declared real (as a covariate's coefficient is)."""

    @property
    def positive_params_(self) -> npt.NDArray[np.bool_]:
        return np.array([True, True, False, True])


def test_positive_parameters_are_drawn_as_before(cdnow: pd.DataFrame) -> None:
    """Today's models: theta_hat * exp(L z), L L' = cov / theta theta', bit for bit."""
    model = BetaGeo().fit(cdnow)
    params = model.params_.to_numpy()
    values, vectors = np.linalg.eigh(model.covariance_.to_numpy() / np.outer(params, params))
    root = vectors * np.sqrt(np.maximum(values, 0.0))
    rng = np.random.default_rng(8)
    expected = [params * np.exp(root @ rng.standard_normal(4)) for _ in range(5)]
    drawn = parameter_draws(model, 5, np.random.default_rng(8), fix="")
    for copy, values_then in zip(drawn, expected, strict=True):
        np.testing.assert_array_equal(copy.params_.to_numpy(), values_then)
    found_params, found_root = log_normal_root(model, fix="")
    np.testing.assert_array_equal(found_root, root)
    np.testing.assert_array_equal(found_params, params)


def test_real_parameters_are_drawn_normally(cdnow: pd.DataFrame) -> None:
    """A parameter that is not positive moves by (L z) itself; the positive ones log-normally.

    4,000 draws: the real parameter's mean is within 4 standard errors (SE / sqrt(4000)) of the
    estimate, and its SD within 4 x 1/sqrt(2 x 3999) (relative) of its standard error.
    """
    fitted = BetaGeo().fit(cdnow)
    model = _RealValued.from_dict({**fitted.to_dict(), "model": "_RealValued"})
    params = model.params_.to_numpy()
    scale = np.array([params[0], params[1], 1.0, params[3]])
    values, vectors = np.linalg.eigh(model.covariance_.to_numpy() / np.outer(scale, scale))
    root = vectors * np.sqrt(np.maximum(values, 0.0))
    np.testing.assert_array_equal(log_normal_root(model, fix="")[1], root)
    z = np.random.default_rng(9).standard_normal((3, 4))
    drawn = [
        c.params_.to_numpy() for c in parameter_draws(model, 3, np.random.default_rng(9), fix="")
    ]
    for found, row in zip(drawn, z, strict=True):
        step = root @ row
        np.testing.assert_allclose(
            found[[0, 1, 3]], params[[0, 1, 3]] * np.exp(step[[0, 1, 3]]), rtol=1e-15
        )
        np.testing.assert_allclose(found[2], params[2] + step[2], rtol=1e-15)
    many = np.array(
        [
            c.params_.to_numpy()[2]
            for c in parameter_draws(model, 4_000, np.random.default_rng(1), fix="")
        ]
    )
    std_error = float(model.std_errors_["a"])
    assert abs(many.mean() - params[2]) < 4.0 * std_error / np.sqrt(4_000)
    assert abs(many.std(ddof=1) / std_error - 1.0) < 4.0 / np.sqrt(2.0 * 3_999)


@settings(max_examples=200, deadline=None)
@given(
    values=hnp.arrays(np.float64, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=40),
                      elements=st.floats(allow_nan=True, allow_infinity=False, width=64)),
    tails=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=4),
)  # fmt: skip
def test_row_quantiles_are_numpys_bit_for_bit(values, tails):
    """The draws' bounds read off by partial sorting: exactly np.quantile's, NaN rows included."""
    expected = np.quantile(values, tails, axis=1)
    found = row_quantiles(values.copy(), np.asarray(tails))
    np.testing.assert_array_equal(found, expected)
