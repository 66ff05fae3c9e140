"""Benchmark: fitting and scoring the models on simulated bases, side by side with lifetimes.

Bases of 100k and 1M customers observed for up to a year, in whole days (recency and T in weeks,
as days / 7), drawn from a Pareto/NBD process. For each model, cvalue fits on the compressed
patterns and scores every customer (P(alive) and expected purchases over 52 weeks); lifetimes is
called as its users call it (one row per customer, no weights). Gamma-Gamma fits the repeat
buyers' mean spend and scores every customer's expected spend per transaction. Each (model,
library, size) runs in a fresh process so that peak memory is its own; "peak MB" is the rise of
the process's peak resident memory during the step. On a shared machine, ``--repeats 3`` runs
each measurement three times (fresh processes, cvalue and lifetimes in turn) and keeps the
fastest time of each.

Run: ``pip install -e ".[bench]" && python benchmarks/bench_models.py``
(``--sizes 100000`` for a quick run; lifetimes' Pareto/NBD takes minutes at 1M and is run at 100k
only unless ``--slow``).
"""

from __future__ import annotations

import argparse
import multiprocessing
import warnings

import _memory
import numpy as np
import pandas as pd

TRUTH = {"r": 0.55, "alpha": 10.6, "s": 0.61, "beta": 11.7}


def simulate_base(n_customers: int, seed: int = 0) -> pd.DataFrame:
    """Frequency, recency and T in weeks (whole days) for a Pareto/NBD base."""
    rng = np.random.default_rng(seed)
    T_days = rng.integers(1, 366, n_customers)
    T = T_days / 7.0
    rate = rng.gamma(TRUTH["r"], 1.0 / TRUTH["alpha"], n_customers)
    lifetime = rng.exponential(1.0 / rng.gamma(TRUTH["s"], 1.0 / TRUTH["beta"], n_customers))
    active = np.minimum(lifetime, T)
    frequency = rng.poisson(rate * active)
    last = np.where(frequency > 0, active * rng.random(n_customers) ** (1.0 / np.maximum(
        frequency, 1)), 0.0)  # fmt: skip
    recency = np.minimum(np.floor(last * 7.0), T_days) / 7.0
    # Gamma-Gamma spend: the mean of x purchases ~ Gamma(p x, rate nu x), nu ~ Gamma(q, rate gamma)
    nu = rng.gamma(3.7, 1.0 / 15.4, n_customers)
    repeats = np.maximum(frequency, 1)
    spend = rng.gamma(6.0 * repeats, 1.0 / (nu * repeats))
    return pd.DataFrame({
        "frequency": frequency, "recency": np.where(frequency > 0, recency, 0.0), "T": T,
        "monetary_value": np.where(frequency > 0, spend, 0.0),
    })  # fmt: skip


def _cvalue(model: str, base: pd.DataFrame) -> dict[str, object]:
    from cvalue import models

    cls = getattr(models, model)
    base.attrs["unit"] = "week"
    seconds, peak, fitted = _memory.timed(lambda: cls().fit(base))
    if model == "GammaGamma":
        score_s, score_peak, _ = _memory.timed(lambda: fitted.predict(base))
    else:
        score_s, score_peak, _ = _memory.timed(lambda: fitted.predict(base, horizon=52.0))
    return {"fit s": seconds, "fit peak MB": peak, "score s": score_s,
            "score peak MB": score_peak, "params": fitted.params_.to_numpy()}  # fmt: skip


def _lifetimes(model: str, base: pd.DataFrame) -> dict[str, object]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import lifetimes

        names = {
            "BetaGeo": "BetaGeoFitter",
            "ParetoNBD": "ParetoNBDFitter",
            "ModifiedBetaGeo": "ModifiedBetaGeoFitter",
            "GammaGamma": "GammaGammaFitter",
        }
        fitter = getattr(lifetimes, names[model])()
        x, t_x, T = base["frequency"], base["recency"], base["T"]
        if model == "GammaGamma":
            buyers = base[x > 0]
            seconds, peak, _ = _memory.timed(
                lambda: fitter.fit(buyers["frequency"], buyers["monetary_value"])
            )

            def score() -> object:
                return fitter.conditional_expected_average_profit(x, base["monetary_value"])

        else:
            seconds, peak, _ = _memory.timed(lambda: fitter.fit(x, t_x, T))

            def score() -> object:
                alive = fitter.conditional_probability_alive(x, t_x, T)
                return alive, fitter.conditional_expected_number_of_purchases_up_to_time(
                    52, x, t_x, T
                )

        score_s, score_peak, _ = _memory.timed(score)
    return {"fit s": seconds, "fit peak MB": peak, "score s": score_s,
            "score peak MB": score_peak, "params": fitter.params_.to_numpy()}  # fmt: skip


def _worker(library: str, model: str, n_customers: int, queue: multiprocessing.Queue) -> None:
    base = simulate_base(n_customers)
    run = _cvalue if library == "cvalue" else _lifetimes
    queue.put(run(model, base))


def measure(library: str, model: str, n_customers: int) -> dict[str, object]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_worker, args=(library, model, n_customers, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def _fastest(runs: list[dict[str, object]]) -> dict[str, object]:
    """The first run's results, with the fastest time of every timed step over the runs."""
    fastest = dict(runs[0])
    for key in ("fit s", "score s"):
        if key in fastest:
            fastest[key] = min(float(run[key]) for run in runs)
    return fastest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    models = ["BetaGeo", "ModifiedBetaGeo", "ParetoNBD", "GammaGamma"]
    parser.add_argument("--models", nargs="+", default=models)
    parser.add_argument("--slow", action="store_true", help="lifetimes' Pareto/NBD at 1M too")
    parser.add_argument("--repeats", type=int, default=1, help="runs per measurement; the fastest")
    options = parser.parse_args()
    rows = []
    for n_customers in options.sizes:
        for model in options.models:
            skip = model == "ParetoNBD" and n_customers > 100_000 and not options.slow
            ours_runs, theirs_runs = [], []
            for _ in range(max(1, options.repeats)):
                ours_runs.append(measure("cvalue", model, n_customers))
                if not skip:
                    theirs_runs.append(measure("lifetimes", model, n_customers))
            ours = _fastest(ours_runs)
            theirs = _fastest(theirs_runs) if theirs_runs else None
            row = {"customers": n_customers, "model": model}
            for key in ("fit s", "score s", "fit peak MB", "score peak MB"):
                row[f"cvalue {key}"] = ours.get(key, np.nan)
                row[f"lifetimes {key}"] = np.nan if theirs is None else theirs.get(key, np.nan)
            for key in ("fit s", "score s"):
                row[f"{key.split()[0]} speed-up"] = row[f"lifetimes {key}"] / row[f"cvalue {key}"]
            row["max rel diff params"] = (
                np.nan if theirs is None else float(np.max(np.abs(
                    np.asarray(ours["params"]) / np.asarray(theirs["params"]) - 1)))
            )  # fmt: skip
            rows.append(row)
            print(pd.DataFrame([row]).to_string(index=False, float_format="{:,.3g}".format),
                  flush=True)  # fmt: skip
    table = pd.DataFrame(rows)
    print()
    print(table.to_string(index=False, float_format="{:,.3g}".format))


if __name__ == "__main__":
    main()
