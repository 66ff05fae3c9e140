"""GammaGamma.fit_chunks and SpendSums: the fit on a stream of chunks equals the fit on the frame,
whatever the chunking or the start, in memory that does not grow with the rows."""

import itertools
import json
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cvalue.datasets import load_cdnow
from cvalue.errors import DataQualityError, SchemaError
from cvalue.models import (
    FrequencySpendCorrelationWarning,
    GammaGamma,
    SmallBaseWarning,
    SpendSums,
)
from cvalue.models._base import Patterns
from cvalue.models._spend_stream import HALF_WIDTH
from cvalue.models.gamma_gamma import _SpendSums

PARAMS_RTOL = 1e-8
LOG_LIKELIHOOD_RTOL = 1e-9
STD_ERR_RTOL = 1e-6


def _chunks(data, size):
    return lambda: (data.iloc[start : start + size] for start in range(0, len(data), size))


def _counted(data, size):
    """Chunks, and a list that counts the passes over them."""
    passes = []

    def chunks():
        passes.append(1)
        return (data.iloc[start : start + size] for start in range(0, len(data), size))

    return chunks, passes


def _assert_same_fit(streamed, whole):
    np.testing.assert_allclose(streamed.params_, whole.params_, rtol=PARAMS_RTOL)
    assert streamed.log_likelihood_ == pytest.approx(whole.log_likelihood_, rel=LOG_LIKELIHOOD_RTOL)
    np.testing.assert_allclose(streamed.std_errors_, whole.std_errors_, rtol=STD_ERR_RTOL)
    assert streamed.n_customers_ == whole.n_customers_
    assert streamed.n_excluded_ == whole.n_excluded_


@pytest.fixture(scope="module")
def cdnow():
    return load_cdnow().summary


@pytest.fixture(scope="module")
def simulated():
    """250,000 customers: 200,000 repeat buyers drawn from the model, 50,000 without a repeat."""
    rng = np.random.default_rng(7)
    model = GammaGamma()
    frequency = rng.geometric(0.35, 200_000).astype(np.float64)
    repeat = model.simulate(200_000, frequency, p=6.0, q=4.0, gamma=15.0, rng=rng)
    none = pd.DataFrame({"frequency": np.zeros(50_000), "monetary_value": np.zeros(50_000)})
    data = pd.concat([repeat, none], ignore_index=True)
    return data.iloc[rng.permutation(len(data))]


@pytest.fixture(scope="module")
def simulated_fit(simulated):
    return GammaGamma().fit(simulated)


# --- the same fit -------------------------------------------------------------------------------


def test_cdnow_streamed_equals_fit(cdnow):
    """Fader & Hardie (2013), section 4, on 946 repeat buyers: the same estimates, in use too."""
    whole = GammaGamma().fit(cdnow)
    streamed = GammaGamma().fit_chunks(_chunks(cdnow, 500))
    _assert_same_fit(streamed, whole)
    assert streamed.params_.round(2).tolist() == [6.25, 3.74, 15.45]
    np.testing.assert_allclose(streamed.covariance_, whole.covariance_, rtol=STD_ERR_RTOL)
    pd.testing.assert_frame_equal(streamed.summary(), whole.summary(), rtol=STD_ERR_RTOL)
    assert streamed.frequency_spend_correlation_ == pytest.approx(
        whole.frequency_spend_correlation_, rel=1e-12
    )
    pd.testing.assert_frame_equal(streamed.predict(cdnow), whole.predict(cdnow), rtol=1e-9)
    assert streamed.expected_spend_new() == pytest.approx(whole.expected_spend_new(), rel=1e-8)


def test_unit_is_read_from_the_sample_as_fit_reads_it_from_the_data(cdnow):
    weekly = cdnow.copy()
    weekly.attrs["unit"] = "week"
    whole = GammaGamma().fit(weekly)
    assert GammaGamma().fit_chunks(_chunks(weekly, 500)).unit_ == whole.unit_
    assert GammaGamma().fit_chunks(_chunks(cdnow, 500), unit="week").unit_ == whole.unit_
    assert GammaGamma().fit_chunks(_chunks(cdnow, 500)).unit_ is None


def test_cdnow_streamed_survives_save_and_load(cdnow, tmp_path):
    streamed = GammaGamma().fit_chunks(_chunks(cdnow, 700))
    path = tmp_path / "spend.json"
    streamed.save(path)
    loaded = GammaGamma.load(path)
    pd.testing.assert_series_equal(loaded.params_, streamed.params_)
    assert loaded.n_excluded_ == streamed.n_excluded_ == 1411.0
    assert json.loads(path.read_text())["n_excluded"] == 1411.0


def test_simulated_streamed_equals_fit(simulated, simulated_fit):
    streamed = GammaGamma().fit_chunks(_chunks(simulated, 60_000))
    _assert_same_fit(streamed, simulated_fit)
    assert streamed.n_customers_ == 200_000
    assert streamed.n_excluded_ == 50_000
    assert streamed.frequency_spend_correlation_ == pytest.approx(
        simulated_fit.frequency_spend_correlation_, rel=1e-10
    )


def test_compressed_chunks_equal_fit(cdnow):
    """Chunks with a weight column (patterns from SQL) give the fit of the same weighted frame."""
    weighted = cdnow.groupby(["frequency", "monetary_value"]).size().rename("weight").reset_index()
    whole = GammaGamma().fit(weighted)
    streamed = GammaGamma().fit_chunks(_chunks(weighted, 100))
    _assert_same_fit(streamed, whole)
    assert list(streamed.excluded_.columns) == list(whole.excluded_.columns)


def test_penalised_streamed_equals_fit(cdnow):
    whole = GammaGamma(penalizer=0.01).fit(cdnow)
    streamed = GammaGamma(penalizer=0.01).fit_chunks(_chunks(cdnow, 1000))
    _assert_same_fit(streamed, whole)


@given(cuts=st.lists(st.integers(min_value=1, max_value=299), max_size=40, unique=True))
@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_result_does_not_depend_on_the_chunking(cuts, small_base, small_fit):
    """Any chunk boundaries, with chunks of one row among them, give the same fit."""
    bounds = [0, *sorted(cuts), len(small_base)]
    pieces = [small_base.iloc[low:high] for low, high in itertools.pairwise(bounds)]
    streamed = GammaGamma().fit_chunks(lambda: iter(pieces))
    _assert_same_fit(streamed, small_fit)


@pytest.fixture(scope="module")
def small_base():
    """300 customers: 240 repeat buyers drawn from the model, 60 without a repeat purchase."""
    rng = np.random.default_rng(11)
    repeat = GammaGamma().simulate(240, rng.integers(1, 8, 240), p=5.0, q=3.0, gamma=20.0, rng=rng)
    none = pd.DataFrame({"frequency": np.zeros(60), "monetary_value": np.zeros(60)})
    return pd.concat([repeat, none], ignore_index=True).iloc[rng.permutation(300)]


@pytest.fixture(scope="module")
def small_fit(small_base):
    return GammaGamma().fit(small_base)


def test_one_row_chunks(small_base, small_fit):
    _assert_same_fit(GammaGamma().fit_chunks(_chunks(small_base, 1)), small_fit)


# --- the interval ------------------------------------------------------------------------------


@pytest.mark.parametrize("factor", [1e3, 1e-3])
def test_a_start_off_by_a_factor_1000_takes_more_passes_to_the_same_fit(
    simulated, simulated_fit, factor
):
    start = simulated.iloc[:5_000].copy()
    start["monetary_value"] *= factor  # the sample's gamma is off by the factor
    chunks, passes = _counted(simulated, 100_000)
    streamed = GammaGamma().fit_chunks(chunks, start=start)
    _assert_same_fit(streamed, simulated_fit)
    assert len(passes) > 1


def test_a_good_start_takes_one_pass(simulated, simulated_fit):
    chunks, passes = _counted(simulated, 100_000)
    streamed = GammaGamma().fit_chunks(chunks, start=simulated.iloc[:20_000])
    _assert_same_fit(streamed, simulated_fit)
    assert len(passes) == 1


def test_tables_equal_the_direct_sums_across_the_interval(simulated):
    """The interpolated sums are those fit computes per pattern, to the sums' own rounding."""
    repeat = simulated[simulated["frequency"] > 0]
    columns = {name: repeat[name].to_numpy(np.float64) for name in ("frequency", "monetary_value")}
    direct = _SpendSums(Patterns(columns, np.ones(len(repeat))))
    centre = 15.0
    sums = SpendSums(centre * np.exp(-HALF_WIDTH), centre * np.exp(HALF_WIDTH))
    for start in range(0, len(simulated), 50_000):
        sums.add(simulated.iloc[start : start + 50_000])
    np.testing.assert_array_equal(sums.frequencies, direct.frequencies)
    for gamma in centre * np.exp(np.linspace(-HALF_WIDTH, HALF_WIDTH, 97)):
        for tabulated, exact in zip(sums.at(gamma), direct.at(gamma), strict=True):
            np.testing.assert_allclose(tabulated, exact, rtol=1e-13)


def test_tables_continue_linearly_beyond_the_interval():
    sums = SpendSums(10.0, 40.0)
    sums.add(pd.DataFrame({"frequency": [1.0, 2.0, 2.0], "monetary_value": [5.0, 20.0, 80.0]}))
    edge, beyond = sums.at(40.0), sums.at(40.0 * np.e)
    np.testing.assert_allclose(beyond[0], edge[0] + edge[2] * 40.0)  # slope g/(g+s) in log g
    np.testing.assert_allclose(beyond[1], edge[1] - edge[3])
    np.testing.assert_allclose(beyond[3], edge[3])


# --- errors and warnings -----------------------------------------------------------------------


def _message(error):
    return str(error.value)


def test_bad_rows_in_a_later_chunk_raise_what_fit_raises(cdnow):
    bad = cdnow.astype({"frequency": np.float64})
    rows = bad.index[bad["frequency"] > 0][-3:]  # in the last chunk
    bad.loc[rows, "monetary_value"] = [0.0, -4.0, np.nan]
    fractional = bad.index[bad["frequency"] == 0][-1]
    bad.loc[fractional, ["frequency", "monetary_value"]] = [1.5, 10.0]
    with pytest.raises(DataQualityError) as from_fit:
        GammaGamma().fit(bad)
    with pytest.raises(DataQualityError) as streamed:
        GammaGamma().fit_chunks(_chunks(bad, 500))
    assert _message(streamed) == _message(from_fit)
    assert "'monetary_value' is zero or negative for repeat buyers (frequency >= 1) in 2 of " in (
        _message(streamed)
    )
    assert f"of {len(bad):,} rows" in _message(streamed)


def test_no_repeat_buyer_and_one_history_are_the_errors_of_fit():
    none = pd.DataFrame({"frequency": [0.0] * 4, "monetary_value": [0.0] * 4})
    with pytest.raises(DataQualityError, match="none of the 4 customers has a repeat purchase"):
        GammaGamma().fit_chunks(_chunks(none, 2))
    same = pd.DataFrame({"frequency": [2.0] * 150, "monetary_value": [10.0] * 150})
    with pytest.raises(DataQualityError, match="every customer has the same history"):
        GammaGamma().fit_chunks(_chunks(same, 40))


def test_missing_column_is_a_schema_error():
    with pytest.raises(SchemaError, match="monetary_value"):
        GammaGamma().fit_chunks(lambda: iter([pd.DataFrame({"frequency": [1.0]})]))


def test_covariates_are_refused(cdnow):
    with pytest.raises(SchemaError, match="fits without covariates"):
        GammaGamma().fit_chunks(_chunks(cdnow, 500), covariates=["frequency"])


def test_small_base_warns_as_fit(small_base):
    few = small_base.iloc[:80]
    with pytest.warns(SmallBaseWarning, match="fewer than 100"):
        GammaGamma().fit(few)
    with pytest.warns(SmallBaseWarning, match="fewer than 100") as caught:
        GammaGamma().fit_chunks(_chunks(few, 7))
    assert caught[0].filename == __file__  # the caller of fit_chunks


def test_correlation_warns_as_fit(small_base):
    correlated = small_base.assign(
        monetary_value=small_base["monetary_value"] * (1.0 + small_base["frequency"])
    )
    with pytest.warns(FrequencySpendCorrelationWarning) as from_fit:
        GammaGamma().fit(correlated)
    with pytest.warns(FrequencySpendCorrelationWarning) as streamed:
        GammaGamma().fit_chunks(_chunks(correlated, 50))
    assert str(streamed[0].message) == str(from_fit[0].message)
    assert streamed[0].filename == __file__


def test_streamed_fit_keeps_no_rows(cdnow):
    streamed = GammaGamma().fit_chunks(_chunks(cdnow, 1000))
    whole = GammaGamma().fit(cdnow)
    assert streamed.excluded_.empty
    pd.testing.assert_series_equal(streamed.excluded_.dtypes, whole.excluded_.dtypes)
    assert streamed.excluded_.index.name == whole.excluded_.index.name
    with pytest.raises(SchemaError, match="no customers to resample"):
        streamed.resampled(np.random.default_rng(0))


# --- memory ------------------------------------------------------------------------------------


def test_accumulator_does_not_grow_with_the_rows():
    rng = np.random.default_rng(3)
    frequencies = np.arange(1.0, 21.0)

    def chunk(n_rows):
        return pd.DataFrame({
            "frequency": np.resize(frequencies, n_rows),
            "monetary_value": rng.gamma(4.0, 10.0, n_rows),
        })  # fmt: skip

    small, large = SpendSums(5.0, 100.0), SpendSums(5.0, 100.0)
    small.add(chunk(10_000))
    for _ in range(10):
        large.add(chunk(100_000))
    assert large.n_rows == 1_000_000
    assert small.nbytes == large.nbytes
    arrays = [value for value in vars(large).values() if isinstance(value, np.ndarray)]
    assert sum(array.nbytes for array in arrays) <= large.nbytes


def test_accumulator_counts_without_keeping_rows():
    sums = SpendSums(1.0, 100.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sums.add(pd.DataFrame({"frequency": [0, 3, 1], "monetary_value": [0.0, 12.0, 8.0],
                               "weight": [5.0, 2.0, 1.0]}))  # fmt: skip
    assert sums.n_excluded == 5.0
    assert sums.n_customers == 3.0
    assert sums.weight_of_frequency.tolist() == [1.0, 2.0]
    assert sums.mean_spend == pytest.approx((2 * 12.0 + 8.0) / 3)
    assert sums.sum_log_zbar == pytest.approx(2 * np.log(12.0) + np.log(8.0))
