"""A fit's log-likelihood evaluated a block of patterns at a time (issue 16: bounded memory).

A base of millions of customers has millions of distinct patterns; evaluating the likelihood on
all of them at once held about 150 bytes a pattern of temporaries in every evaluation. The fit
now sums the likelihood over blocks of :data:`~cvalue.models._patterns.OBJECTIVE_BLOCK`
patterns. The property: for every model of the shared engine, any data and any block size, the
blocks' summed value and gradient are the whole base's.
"""

import tracemalloc

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cvalue
import cvalue.models._base as base
from cvalue.models._mle import summed

CONTINUOUS = {
    cvalue.BetaGeo: (0.243, 4.414, 0.793, 2.426),
    cvalue.ModifiedBetaGeo: (0.525, 6.183, 0.891, 1.614),
    cvalue.ParetoNBD: (0.553, 10.578, 0.606, 11.669),
    cvalue.BetaGeoCNBD: (0.243, 4.414, 0.793, 2.426),
    cvalue.ModifiedBetaGeoCNBD: (0.525, 6.183, 0.891, 1.614),
}
OTHERS = {
    cvalue.BetaGeoBetaBinom: (1.204, 0.750, 0.657, 2.783),
    cvalue.ShiftedBetaGeo: (0.704, 1.182),
    cvalue.BetaDiscreteWeibull: (0.704, 1.182, 1.3),
    cvalue.GammaGamma: (6.25, 3.74, 15.44),
}


@st.composite
def summaries(draw):
    """(frequency, recency, T) rows, sorted by frequency as the database's patterns are."""
    n = draw(st.integers(1, 60))
    rows = []
    for _ in range(n):
        T = draw(st.integers(1, 700)) / 7.0
        x = draw(st.sampled_from([0, 0, 0, 1, 2, 5, 30]))
        recency = draw(st.integers(0, round(T * 7))) / 7.0 if x > 0 else 0.0
        rows.append((x, recency, T, draw(st.integers(1, 40)), draw(st.floats(0.5, 500.0))))
    frame = pd.DataFrame(rows, columns=["frequency", "recency", "T", "weight", "monetary_value"])
    # CNBD's sum of log inter-purchase times: any value its x purchases could give
    frame["litt"] = frame["frequency"] * np.log(
        np.maximum(frame["recency"], 1.0 / 7.0) / np.maximum(frame["frequency"], 1)
    )
    return frame.sort_values(["frequency", "recency", "T"], ignore_index=True)


@st.composite
def histories(draw):
    rows = []
    for _ in range(draw(st.integers(1, 40))):
        n = draw(st.integers(1, 12))
        t_x = draw(st.integers(0, n))
        rows.append((draw(st.integers(1, t_x)) if t_x else 0, t_x, n, draw(st.integers(1, 9))))
    return pd.DataFrame(rows, columns=["frequency", "recency", "n_periods", "weight"])


@st.composite
def durations(draw):
    rows = []
    for _ in range(draw(st.integers(1, 40))):
        is_censored = draw(st.booleans())
        rows.append((draw(st.integers(0 if is_censored else 1, 20)), float(is_censored)))
    return pd.DataFrame(rows, columns=["duration", "is_censored"])


def data_for(model_class, draw):
    if model_class is cvalue.BetaGeoBetaBinom:
        return draw(histories())
    if model_class in (cvalue.ShiftedBetaGeo, cvalue.BetaDiscreteWeibull):
        return draw(durations())
    data = draw(summaries())
    if model_class is cvalue.GammaGamma:
        return data[data["frequency"] > 0].reset_index(drop=True)
    return data


def assert_blocks_sum_to_the_whole(model_class, params, data, size):
    model = model_class(k=2) if "CNBD" in model_class.__name__ else model_class()
    patterns = model._prepare(data)
    if len(patterns.weights) == 0:
        return
    whole_value, whole_gradient = model._objective(patterns)(params)
    blocks = patterns.blocks(size)
    assert sum(len(block.weights) for block in blocks) == len(patterns.weights)
    assert max(len(block.weights) for block in blocks) <= size
    value, gradient = summed([model._objective(block) for block in blocks])(params)
    np.testing.assert_allclose(value, whole_value, rtol=1e-11, atol=1e-9)
    if whole_gradient is None:
        assert gradient is None
    else:
        assert gradient is not None
        scale = max(1.0, float(np.max(np.abs(whole_gradient))))
        np.testing.assert_allclose(gradient, whole_gradient, rtol=1e-10, atol=1e-11 * scale)


@pytest.mark.parametrize("model_class", list(CONTINUOUS) + list(OTHERS), ids=lambda c: c.__name__)
@settings(max_examples=25, deadline=None)
@given(data=st.data(), size=st.integers(1, 70))
def test_the_blocks_likelihood_and_gradient_sum_to_the_whole_bases(model_class, data, size):
    params = np.array({**CONTINUOUS, **OTHERS}[model_class], dtype=np.float64)
    frame = data_for(model_class, data.draw)
    assert_blocks_sum_to_the_whole(model_class, params, frame, size)


def test_a_fit_evaluates_no_more_than_a_block_of_patterns_at_once(monkeypatch):
    """Regression: the whole base's patterns went into one evaluation, whatever their number."""
    rng = np.random.default_rng(7)
    truth = cvalue.BetaGeo.from_params(*CONTINUOUS[cvalue.BetaGeo])
    data = truth.simulate(3000, np.round(rng.uniform(4, 60, 3000) * 7) / 7, rng=rng)
    data["recency"] = np.round(data["recency"] * 7) / 7  # whole days, as a summary's
    one_block = cvalue.BetaGeo().fit(data)
    seen = []
    objective = cvalue.BetaGeo._objective

    def recording(self, patterns):
        seen.append(len(patterns.weights))
        return objective(self, patterns)

    monkeypatch.setattr(base, "OBJECTIVE_BLOCK", 256)
    monkeypatch.setattr(cvalue.BetaGeo, "_objective", recording)
    blocked = cvalue.BetaGeo().fit(data)
    n_patterns = len(cvalue.compress(data, ("frequency", "recency", "T")).weights)
    assert n_patterns > 256
    assert max(seen) <= 256
    assert sum(seen) == n_patterns
    np.testing.assert_allclose(blocked.params_, one_block.params_, rtol=1e-9)
    np.testing.assert_allclose(blocked.std_errors_, one_block.std_errors_, rtol=1e-6)
    assert blocked.log_likelihood_ == pytest.approx(one_block.log_likelihood_, rel=1e-12)


def day_grid_patterns(n_patterns: int) -> pd.DataFrame:
    """Weighted patterns in weeks on a day grid, as a CRM base's pattern table has them."""
    rng = np.random.default_rng(3)
    frequency = rng.integers(0, 40, n_patterns).astype(np.float64)
    T = rng.integers(7, 1100, n_patterns) / 7.0
    return pd.DataFrame({
        "frequency": frequency,
        "recency": np.where(frequency > 0, np.floor(rng.uniform(0, T) * 7) / 7, 0.0),
        "T": T,
        "weight": rng.integers(1, 9, n_patterns).astype(np.float64),
    })  # fmt: skip


def kept_and_evaluation_peak(model, data, params):
    """Bytes the blocks' objectives keep, and the peak above them of one evaluation of each."""
    patterns = model._prepare(data)
    tracemalloc.start()
    try:
        objectives = [model._objective(block) for block in patterns.blocks(base.OBJECTIVE_BLOCK)]
        kept = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        for objective in objectives:
            objective(params)
        peak = tracemalloc.get_traced_memory()[1] - kept
    finally:
        tracemalloc.stop()
    return kept, peak


# bytes a pattern a fit's objective may keep: a float weight and codes of at most 2 bytes each:
# three for the BG family; the row's place, x and T, and the lifetime grid's x and limits for the
# Pareto/NBD
KEPT_PER_PATTERN = {cvalue.BetaGeo: 16, cvalue.ModifiedBetaGeo: 16, cvalue.ParetoNBD: 20}


@pytest.mark.parametrize("model_class", list(KEPT_PER_PATTERN))
def test_a_fits_objective_keeps_a_weight_and_small_codes_a_pattern(model_class):
    """Regression: the BG family's blocks kept nine copies of their columns, the Pareto/NBD's
    its rows reordered as floats, their codes as intp and the lifetime grid's flat indices:
    about 80 bytes a pattern each (247 MiB over the 2.6M calibration patterns of a 10M base) for
    as long as the fit ran. The Pareto/NBD's per-row rule also worked on 65,536 rows x 24 nodes
    at once in an evaluation."""
    n_patterns = 200_000
    data = day_grid_patterns(n_patterns)
    model = model_class()
    params = np.array(CONTINUOUS[model_class])
    kept, peak = kept_and_evaluation_peak(model, data, params)
    assert kept < KEPT_PER_PATTERN[model_class] * n_patterns
    assert peak < 400 * base.OBJECTIVE_BLOCK  # one block's temporaries, whatever the base
    patterns = model._prepare(data)
    value, gradient = summed([model._objective(b) for b in patterns.blocks(base.OBJECTIVE_BLOCK)])(
        params
    )
    whole_value, whole_gradient = model._objective(patterns)(params)
    np.testing.assert_allclose(value, whole_value, rtol=1e-11)
    np.testing.assert_allclose(gradient, whole_gradient, rtol=1e-10)
