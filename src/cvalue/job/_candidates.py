"""The purchase-model candidates fitted on a calibration period and ranked on its holdout.

:func:`candidates_check` serves the three paths of the job: the in-memory one (a split of
customers), the chunked one and the Dask one (a split of weighted patterns, whose calibration
patterns are fitted and predicted once each).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import cast

import numpy as np
import numpy.typing as npt
import pandas as pd

from cvalue.config import JobConfig
from cvalue.evaluation import (
    brier_score,
    gini,
    holdout_scores,
    pattern_ranking_scores,
    top_decile_lift,
)
from cvalue.models import PURCHASE_MODELS, Model, PurchaseModel
from cvalue.plot.tables import calibration_holdout_table
from cvalue.results import HoldoutCheck

__all__ = ["candidates_check", "fit_purchases", "float_counts"]

_HIGHER_IS_BETTER = frozenset({"gini", "top_decile_lift"})
_SCORE_BLOCK = 1 << 17  # holdout rows scored at a time
_HOLDOUT_ONLY = ("frequency_holdout", "duration_holdout")  # a split's columns no model fits on
_COUNTS = ("frequency", "weight", "n_periods")  # whole numbers the models read as floats


def fit_purchases(config: JobConfig, name: str, data: pd.DataFrame) -> Model:
    """The ``name`` purchase model fitted on ``data``, with the covariates when there are."""
    return PURCHASE_MODELS[name]().fit(data, covariates=config.models.covariates or None)


def _in_blocks(
    score: Callable[[pd.DataFrame], pd.Series], rows: pd.DataFrame
) -> npt.NDArray[np.float64]:
    """``score(rows)`` a block of rows at a time: its temporaries are a block's, not the base's."""
    return np.concatenate([
        score(rows.iloc[start : start + _SCORE_BLOCK]).to_numpy(dtype=np.float64)
        for start in range(0, max(len(rows), 1), _SCORE_BLOCK)
    ])  # fmt: skip


def _holdout_row(
    model: PurchaseModel,
    scored: pd.DataFrame,
    codes: npt.NDArray[np.intp] | None,
    actual: npt.NDArray[np.float64],
    weights: npt.NDArray[np.float64] | None,
    plotted: pd.DataFrame,
    held: npt.NDArray[np.float64] | None = None,
) -> tuple[dict[str, float], pd.DataFrame]:
    """One candidate's holdout scores (:mod:`cvalue.evaluation`) and calibration plot's table.

    The model predicts ``scored``: the split's rows, or its calibration patterns, which
    ``codes`` map each row to. ``actual`` and ``weights`` (customers) are per row; ``plotted``
    is the calibration plot's rows, one per row of ``scored``. The ranking scores of a pattern
    split come from its patterns, their customers and ``held``, their summed holdout purchases
    (:func:`cvalue.evaluation.pattern_ranking_scores`).
    """
    horizon = float(plotted["duration_holdout"].iloc[0])
    expected = _in_blocks(lambda rows: model.expected_purchases(rows, horizon=horizon), scored)
    alive = _in_blocks(model.p_alive, scored)
    if codes is None:
        ranking = {
            "gini": gini(expected, actual, weights=weights),
            "top_decile_lift": top_decile_lift(expected, actual, weights=weights),
        }
        scores = holdout_scores(actual, expected, weights=weights)
        brier = brier_score(alive, actual > 0, weights=weights)
    else:
        assert weights is not None  # a pattern split has weights
        assert held is not None  # and its patterns' holdout sums
        customers = plotted["weight"].to_numpy()
        ranking = dict(zip(("gini", "top_decile_lift"),
                           pattern_ranking_scores(expected, customers, held, actual, weights),
                           strict=True))  # fmt: skip
        scores = holdout_scores(actual, expected[codes], weights=weights)
        brier = brier_score(alive[codes], actual > 0, weights=weights)
    row = {**{str(name): float(score) for name, score in scores.items()}, **ranking,
           "brier": brier}  # fmt: skip
    return row, calibration_holdout_table(model, plotted, predicted=expected)


def _ranked(table: pd.DataFrame, rank_by: str) -> pd.DataFrame:
    """``table`` best first by ``rank_by``.

    The largest first for the ranking scores (``gini``, ``top_decile_lift``), else the smallest
    (by absolute value for ``relative_error_total``); NaN last; ties keep the config's order.
    """
    key = table[rank_by].abs() if rank_by == "relative_error_total" else table[rank_by]
    order = key.rank(method="first", ascending=rank_by not in _HIGHER_IS_BETTER, na_option="bottom")
    return table.loc[order.sort_values(kind="stable").index]


def candidates_check(
    config: JobConfig,
    split: pd.DataFrame,
    names: Sequence[str],
    calibration_end: pd.Timestamp,
    *,
    keep_split: bool = True,
) -> HoldoutCheck:
    """The ``names`` models fitted on ``split`` and ranked by their holdout scores.

    A ``weight`` column (a table of patterns) counts each row as that many customers; the
    candidates then fit on its distinct calibration columns, the holdout columns summed out.
    ``keep_split=False`` (a chunked or Dask run, whose split grows with the base) keeps neither
    the split nor the candidates' data: the check keeps its tables and the fitted parameters.
    """
    actual = split["frequency_holdout"].to_numpy(dtype=np.float64)
    weights = split["weight"].to_numpy(dtype=np.float64) if "weight" in split else None
    rows, tables, fitted = {}, {}, {}
    fit_on, codes = _calibration_patterns(split)
    scored, plotted, held = split, split, None
    if codes is not None:  # the rows are scored through their patterns
        assert weights is not None  # a pattern split has weights
        held = np.asarray(np.bincount(codes, weights=weights * actual, minlength=len(fit_on)),
                          dtype=np.float64)  # fmt: skip
        horizon = float(split["duration_holdout"].iloc[0])
        if not keep_split:
            for column in list(split.columns):  # the caller's frame emptied: its memory goes back
                del split[column]
        scored, plotted = fit_on, _plotted(fit_on, held, horizon)
    for name in names:
        model = fitted[name] = fit_purchases(config, name, fit_on)
        rows[name], tables[name] = _holdout_row(cast("PurchaseModel", model), scored, codes,
                                                actual, weights, plotted, held)  # fmt: skip
        rows[name]["calibration_log_likelihood"] = model.log_likelihood_
        if not keep_split:
            model.drop_data()
    table = _ranked(pd.DataFrame.from_dict(rows, orient="index"), config.models.rank_by)
    table.index.name = "model"
    best = str(table.index[0])
    return HoldoutCheck(calibration_end, split if keep_split else None, fitted, table,
                        tables[best])  # fmt: skip


def _calibration_patterns(
    split: pd.DataFrame,
) -> tuple[pd.DataFrame, npt.NDArray[np.intp] | None]:
    """What the candidates fit on, and for a pattern table the pattern of each of its rows.

    A pattern table's distinct calibration columns (its holdout columns summed out) are fitted
    and scored once each; a split of customers (no ``weight``) is fitted as it is (the models
    group it themselves) and scored row by row.
    """
    if "weight" not in split:
        return float_counts(split), None
    keys = [str(column) for column in split if column not in (*_HOLDOUT_ONLY, "weight")]
    starts = _run_starts(split, keys)
    if starts is None:
        grouped = split.groupby(keys, sort=False, observed=True, dropna=False)
        codes: npt.NDArray[np.intp] = np.asarray(grouped.ngroup().to_numpy(), dtype=np.intp)
        patterns = grouped["weight"].sum().reset_index()  # in the order of ngroup's numbers
    else:  # the same patterns and numbers: a sorted split's groups are its runs, in order
        first = np.flatnonzero(starts)
        codes = np.cumsum(starts, dtype=np.intp)
        codes -= 1
        patterns = pd.DataFrame({key: split[key].to_numpy()[first] for key in keys})
        patterns["weight"] = np.add.reduceat(split["weight"].to_numpy(), first)
    patterns.attrs = dict(split.attrs)  # the time unit
    return float_counts(patterns), codes


def _run_starts(split: pd.DataFrame, keys: Sequence[str]) -> npt.NDArray[np.bool_] | None:
    """Whether each row starts a run of equal ``keys``, if the rows are sorted by them.

    The database returns a pattern split sorted by its columns
    (:meth:`cvalue.io.sql_stream.SummaryQuery.holdout_patterns`), so each calibration pattern
    is a run of rows, found in one pass with a byte a row; hashing the rows instead took twice
    the split's size at 10M customers. None when the rows are not sorted, or a key is not a
    number free of NaN: they are grouped by hashing then.
    """
    if not len(split):
        return None
    starts = np.zeros(len(split), dtype=bool)
    starts[0] = True
    tied = np.ones(len(split) - 1, dtype=bool)  # equal to the row before on the keys so far
    for key in keys:
        values = split[key].to_numpy()
        if values.dtype.kind not in "iuf" or (values.dtype.kind == "f" and np.isnan(values).any()):
            return None
        now, before = values[1:], values[:-1]
        if np.any(tied & (now < before)):
            return None
        differs = now != before
        starts[1:] |= differs
        tied &= ~differs
    return starts


def _plotted(patterns: pd.DataFrame, held: npt.NDArray[np.float64],
             horizon: float) -> pd.DataFrame:  # fmt: skip
    """The calibration plot's rows of a pattern split, one per pattern.

    Each has the pattern's customers and their mean holdout purchases (``held``, summed): the
    plot's sums are the split's rows'.
    """
    customers = patterns["weight"].to_numpy(dtype=np.float64)
    return pd.DataFrame({
        "frequency": patterns["frequency"].to_numpy(),
        "frequency_holdout": held / np.where(customers > 0, customers, 1.0),
        "duration_holdout": horizon, "weight": customers,
    })  # fmt: skip


def float_counts(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its whole-number columns as floats; the other columns its own arrays.

    The models read floats: fitted on this frame, every model's arrays are views of its
    columns, so a pattern table kept with its fits (and with several candidates) is one copy.
    """
    converted = pd.DataFrame({column: frame[column].to_numpy(dtype=np.float64)
                              if column in _COUNTS else frame[column] for column in frame},
                             index=frame.index, copy=False)  # fmt: skip
    converted.attrs = dict(frame.attrs)  # the time unit
    return converted
