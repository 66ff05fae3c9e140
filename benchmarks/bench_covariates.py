"""Benchmark: the cost of covariates in BetaGeo, ModifiedBetaGeo and ParetoNBD fits.

For each model, a base of 1M customers (``--customers``) is drawn by the project's own simulator
from a covariate model with known coefficients: two categorical covariates, ``channel`` (4
levels) and ``segment`` (6 levels), 24 strata, moving both processes. Ages are whole days up to
a year (``--ages months``: 12 monthly cohorts) and recency is put on the whole-day grid, both in
weeks, as ``rfm_summary`` makes them.
The same base is fitted without covariates and with both; the covariate fit includes the fit
without them (its starting point and the reference of the likelihood-ratio test), so the ratio
is the full price a user pays. A warm-up fit on a small base runs first; each fit's time is the
best of ``--repeats``.

Columns: fit seconds without and with covariates and their ratio; the distinct patterns each fit
runs on (``cvalue.patterns.compress`` of (frequency, recency, T), then with the covariates); the
log-likelihood gain and the likelihood-ratio statistic (``covariate_test_``) with its degrees of
freedom; whether every estimate is within 3 standard errors of the truth, and the largest
``|estimate - truth| / SE``.

Run: ``python benchmarks/bench_covariates.py`` (``--customers 100000`` for a quick run).
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd

from cvalue.models import BetaGeo, ModifiedBetaGeo, ParetoNBD
from cvalue.patterns import compress
from cvalue.units import TimeUnit

CHANNELS = ["web", "shop", "phone", "partner"]
SEGMENTS = ["a", "b", "c", "d", "e", "f"]
COVARIATES = ["channel", "segment"]
BASE = {
    "BetaGeo": {"r": 0.5, "alpha": 5.0, "a": 0.8, "b": 2.5},
    "ModifiedBetaGeo": {"r": 0.5, "alpha": 5.0, "a": 0.8, "b": 2.5},
    "ParetoNBD": {"r": 0.55, "alpha": 10.6, "s": 0.61, "beta": 11.7},
}
CLASSES = {"BetaGeo": BetaGeo, "ModifiedBetaGeo": ModifiedBetaGeo, "ParetoNBD": ParetoNBD}
# the reference levels are 'partner' and 'a' (the first sorted); the other levels' true effects
COEFFICIENTS = {
    "purchase:channel[phone]": -0.2, "purchase:channel[shop]": 0.4,
    "purchase:channel[web]": 0.2, "purchase:segment[b]": 0.1, "purchase:segment[c]": -0.3,
    "purchase:segment[d]": 0.3, "purchase:segment[e]": 0.0, "purchase:segment[f]": 0.5,
    "dropout:channel[phone]": 0.3, "dropout:channel[shop]": -0.4,
    "dropout:channel[web]": 0.0, "dropout:segment[b]": 0.2, "dropout:segment[c]": -0.2,
    "dropout:segment[d]": 0.4, "dropout:segment[e]": -0.3, "dropout:segment[f]": 0.1,
}  # fmt: skip
DAYS_PER_WEEK = TimeUnit.WEEK.days
DAYS_PER_MONTH = TimeUnit.MONTH.days


def covariate_frame(n_customers: int, rng: np.random.Generator) -> pd.DataFrame:
    """Each customer's channel and segment, with unequal shares."""
    return pd.DataFrame({
        "channel": rng.choice(CHANNELS, n_customers, p=[0.4, 0.3, 0.2, 0.1]),
        "segment": rng.choice(SEGMENTS, n_customers, p=[0.3, 0.2, 0.2, 0.1, 0.1, 0.1]),
    })  # fmt: skip


def on_day_grid(simulated: pd.DataFrame) -> pd.DataFrame:
    """Recency in whole days (weeks as days / 7); a repeat purchase is at least a day in."""
    found = simulated.copy()
    days = np.round(found["recency"].to_numpy() * DAYS_PER_WEEK)
    days = np.where(found["frequency"].to_numpy() > 0, np.maximum(days, 1.0), 0.0)
    found["recency"] = days / DAYS_PER_WEEK
    return found


def truth_model(name: str, frame: pd.DataFrame, ages: np.ndarray, seed: int) -> object:
    """A covariate model at the true parameters, its design taken from a small fit."""
    model_class = CLASSES[name]
    rng = np.random.default_rng(seed)
    n_template = min(len(frame), 20_000)
    plain = model_class.from_params(**BASE[name], unit="week")
    start = on_day_grid(plain.simulate(n_template, ages[:n_template], rng=rng))
    start = pd.concat([start, frame.iloc[:n_template].reset_index(drop=True)], axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the template's own estimates are not used
        template = model_class().fit(start, unit="week", covariates=COVARIATES)
    values = dict.fromkeys(template.params_.index, 0.0) | BASE[name] | COEFFICIENTS
    return template.with_params(values)


def draw_ages(n_customers: int, age_grid: str, rng: np.random.Generator) -> np.ndarray:
    """Ages in weeks on the day grid: any day of a year, or 12 monthly cohorts."""
    if age_grid == "days":
        days = rng.integers(1, 366, n_customers).astype(np.float64)
    else:
        days = np.round(rng.integers(1, 13, n_customers) * DAYS_PER_MONTH)
    return days / DAYS_PER_WEEK


def simulate_base(
    name: str, n_customers: int, seed: int = 0, age_grid: str = "days"
) -> tuple[pd.DataFrame, object]:
    """A base drawn from the covariate model, and that model (the truth)."""
    rng = np.random.default_rng(seed)
    frame = covariate_frame(n_customers, rng)
    ages = draw_ages(n_customers, age_grid, rng)
    truth = truth_model(name, frame, ages, seed + 1)
    drawn = truth.simulate(n_customers, ages, rng=rng, covariates=frame)
    base = on_day_grid(drawn)
    base.attrs["unit"] = "week"
    return base, truth


def best_time(step: object, repeats: int) -> tuple[float, object]:
    """The fastest seconds of ``step()`` over ``repeats`` runs, and the last result."""
    times, result = [], None
    for _ in range(max(1, repeats)):
        started = time.perf_counter()
        result = step()
        times.append(time.perf_counter() - started)
    return min(times), result


def measure(name: str, n_customers: int, repeats: int, age_grid: str) -> dict[str, object]:
    """One row of the table: the model's fits on one simulated base."""
    model_class = CLASSES[name]
    base, truth = simulate_base(name, n_customers, age_grid=age_grid)
    plain_s, _ = best_time(lambda: model_class().fit(base), repeats)
    covariate_s, fitted = best_time(lambda: model_class().fit(base, covariates=COVARIATES), repeats)
    summary_columns = ("frequency", "recency", "T")
    distance = (fitted.params_ - truth.params_).abs() / fitted.std_errors_
    test = fitted.covariate_test_
    return {
        "model": name,
        "customers": n_customers,
        "fit s plain": plain_s,
        "fit s covariates": covariate_s,
        "ratio": covariate_s / plain_s,
        "patterns plain": len(compress(base, summary_columns).patterns),
        "patterns covariates": len(compress(base, (*summary_columns, *COVARIATES)).patterns),
        "LL gain": fitted.log_likelihood_ - fitted.without_covariates_.log_likelihood_,
        "LR stat": test.statistic,
        "df": test.df,
        "within 3 SE": bool((distance < 3.0).all()),
        "max |z|": float(distance.max()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--models", nargs="+", default=list(CLASSES), choices=list(CLASSES))
    parser.add_argument("--repeats", type=int, default=3, help="runs per fit; the fastest")
    parser.add_argument(
        "--ages", choices=["days", "months"], default="days",
        help="ages: any whole day of a year, or 12 monthly cohorts",
    )  # fmt: skip
    options = parser.parse_args()
    for name in options.models:  # warm-up: imports and first calls off the clock
        measure(name, 5_000, 1, options.ages)
    rows = []
    for name in options.models:
        row = measure(name, options.customers, options.repeats, options.ages)
        rows.append(row)
        print(pd.DataFrame([row]).to_string(index=False, float_format="{:,.3g}".format),
              flush=True)  # fmt: skip
    print()
    print(pd.DataFrame(rows).to_string(index=False, float_format="{:,.3g}".format))


if __name__ == "__main__":
    main()
