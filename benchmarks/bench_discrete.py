"""Benchmark: the discrete-time BG/BB and the contractual sBG and BdW, side by side with lifetimes.

- BG/BB: bases of 100k and 1M customers observed for 6, 12 and 52 transaction opportunities,
  drawn with ``BetaGeoBetaBinom.simulate`` at the donations estimates of Fader, Hardie & Shang
  (2010). cvalue fits on the compressed patterns and scores every customer (P(alive) and the
  purchases expected in the next ``n`` opportunities). lifetimes' ``BetaGeoBetaBinomFitter`` runs
  two ways: ``lifetimes`` with one row per customer (as ``bench_models.py`` calls lifetimes), and
  ``lifetimes-weighted`` on the distinct patterns with weights, as lifetimes' documentation fits
  the donations data (the compression is timed with the fit). Both score every customer.
- sBG and BdW: 1M individual durations over 24 periods, drawn from the Fader & Hardie (2007)
  "Regular" estimates (the BdW's at our fit of them); fit, then ``predict`` with a 12-period
  horizon and DERL.

Every (library, base) runs in a fresh process so that peak memory is its own; "peak MB" is the
rise of the process's peak resident memory during the step; "x cvalue" is a time over cvalue's on
the same base. Each process first runs its steps once on 1,000 customers, so that the timings
leave out lazy imports. Timings on a shared machine are noisy: read the ratios, not the seconds.

Run: ``pip install -e ".[bench]" && python benchmarks/bench_discrete.py``
(``--sizes 100000 --periods 6`` for a quick run; lifetimes with one row per customer takes ~20 s at
100k customers and 6 periods and grows with both, so by default it runs at that base only:
``--lifetimes-rows 100000:12`` adds bases).
"""

from __future__ import annotations

import argparse
import multiprocessing
import warnings

import _memory
import numpy as np
import pandas as pd

DONATIONS = {"alpha": 1.204, "beta": 0.750, "gamma": 0.657, "delta": 2.783}
CONTRACTUAL = {
    "ShiftedBetaGeo": {"alpha": 0.704, "beta": 1.182},
    "BetaDiscreteWeibull": {"alpha": 0.4556, "beta": 0.7793, "c": 1.2835},
}
CONTRACT_PERIODS = 24
COLUMNS = ("frequency", "recency", "n_periods")


def _model(name: str, params: dict[str, float]) -> object:
    from cvalue import models

    cls = getattr(models, name)
    return cls.from_dict({
        "model": name, "params": params, "covariance": np.eye(len(params)).tolist(),
        "log_likelihood": 0.0, "n_customers": 1.0,
    })  # fmt: skip


def simulate_histories(n_customers: int, n_periods: int, seed: int = 0) -> pd.DataFrame:
    """BG/BB histories drawn with the model's own simulator at the donations estimates."""
    truth = _model("BetaGeoBetaBinom", DONATIONS)
    return truth.simulate(n_customers, n_periods, rng=np.random.default_rng(seed))


def _cvalue_bgbb(base: pd.DataFrame, n_periods: int) -> dict[str, object]:
    from cvalue.models import BetaGeoBetaBinom

    fit_s, fit_peak, fitted = _memory.timed(lambda: BetaGeoBetaBinom().fit(base))
    score_s, score_peak, _ = _memory.timed(lambda: fitted.predict(base, horizon=n_periods))
    return {"fit s": fit_s, "fit peak MB": fit_peak, "score s": score_s,
            "score peak MB": score_peak, "params": fitted.params_.to_numpy(),
            "patterns": len(base.drop_duplicates())}  # fmt: skip


def _lifetimes_bgbb(base: pd.DataFrame, n_periods: int, *, weighted: bool) -> dict[str, object]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from lifetimes import BetaGeoBetaBinomFitter
        from lifetimes.utils import ConvergenceError

        fitter = BetaGeoBetaBinomFitter()

        def fit() -> object:
            if not weighted:
                return fitter.fit(*(base[c] for c in COLUMNS))
            patterns = base.value_counts(list(COLUMNS)).rename("weight").reset_index()
            return fitter.fit(*(patterns[c] for c in COLUMNS), weights=patterns["weight"])

        def score() -> object:
            x, t_x, n = (base[c] for c in COLUMNS)
            alive = fitter.conditional_probability_alive(1, x, t_x, n)
            return alive, fitter.conditional_expected_number_of_purchases_up_to_time(
                n_periods, x, t_x, n)  # fmt: skip

        try:
            fit_s, fit_peak, _ = _memory.timed(fit)
        except ConvergenceError as error:  # reported in the table, not hidden
            failed: dict[str, object] = dict.fromkeys(
                ("fit s", "fit peak MB", "score s", "score peak MB"), np.nan)  # fmt: skip
            return {**failed, "params": np.full(4, np.nan), "note": " ".join(str(error).split())}
        score_s, score_peak, _ = _memory.timed(score)
    return {"fit s": fit_s, "fit peak MB": fit_peak, "score s": score_s,
            "score peak MB": score_peak, "params": fitter.params_.to_numpy()}  # fmt: skip


def _contractual(name: str, n_customers: int) -> dict[str, object]:
    from cvalue import models

    truth = _model(name, CONTRACTUAL[name])
    base = truth.simulate(n_customers, CONTRACT_PERIODS, rng=np.random.default_rng(0))
    cls = getattr(models, name)
    fit_s, fit_peak, fitted = _memory.timed(lambda: cls().fit(base))
    score_s, score_peak, _ = _memory.timed(lambda: fitted.predict(base, horizon=12, discount=0.01))
    return {"fit s": fit_s, "fit peak MB": fit_peak, "score s": score_s,
            "score peak MB": score_peak, "params": fitted.params_.to_numpy(),
            "patterns": len(base.drop_duplicates())}  # fmt: skip


def _worker(task: tuple[str, str, int, int], queue: multiprocessing.Queue) -> None:
    library, model, n_customers, n_periods = task
    if model != "BetaGeoBetaBinom":
        _contractual(model, 1_000)  # warm-up: first calls import and compile lazily
        queue.put(_contractual(model, n_customers))
        return

    def run(base: pd.DataFrame) -> dict[str, object]:
        if library == "cvalue":
            return _cvalue_bgbb(base, n_periods)
        return _lifetimes_bgbb(base, n_periods, weighted=library == "lifetimes-weighted")

    run(simulate_histories(1_000, 6))  # warm-up, as above
    queue.put(run(simulate_histories(n_customers, n_periods)))


def measure(library: str, model: str, n_customers: int, n_periods: int) -> dict[str, object]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    task = (library, model, n_customers, n_periods)
    process = context.Process(target=_worker, args=(task, queue))
    process.start()
    result: dict[str, object] = queue.get()
    process.join()
    return result


def _row(library: str, model: str, n_customers: int, n_periods: int,
         found: dict[str, object], ours: dict[str, object]) -> dict[str, object]:  # fmt: skip
    row: dict[str, object] = {"model": model, "customers": n_customers, "periods": n_periods,
                              "library": library}  # fmt: skip
    for key in ("fit s", "score s", "fit peak MB", "score peak MB"):
        row[key] = found[key]
    row["fit x cvalue"] = float(found["fit s"]) / float(ours["fit s"])
    row["score x cvalue"] = float(found["score s"]) / float(ours["score s"])
    row["patterns"] = ours.get("patterns", np.nan)
    row["max rel diff params"] = float(np.max(np.abs(
        np.asarray(found["params"]) / np.asarray(ours["params"]) - 1)))  # fmt: skip
    row["params"] = " ".join(f"{v:.4g}" for v in np.asarray(found["params"]))
    row["note"] = found.get("note", "")
    return row


def _bases(text: list[str]) -> set[tuple[int, int]]:
    return {(int(size), int(periods)) for size, periods in (item.split(":") for item in text)}


def _print(row: dict[str, object]) -> None:
    print(pd.DataFrame([row]).to_string(index=False, float_format="{:,.3g}".format), flush=True)


def _bgbb_rows(options: argparse.Namespace) -> list[dict[str, object]]:
    row_bases = _bases(options.lifetimes_rows)
    rows = []
    for n_customers in options.sizes:
        for n_periods in options.periods:
            ours = measure("cvalue", "BetaGeoBetaBinom", n_customers, n_periods)
            libraries = ["cvalue"]
            if n_customers <= options.lifetimes_weighted_max:
                libraries.append("lifetimes-weighted")
            if (n_customers, n_periods) in row_bases:
                libraries.append("lifetimes")
            for library in libraries:
                found = ours if library == "cvalue" else measure(
                    library, "BetaGeoBetaBinom", n_customers, n_periods)  # fmt: skip
                rows.append(_row(library, "BetaGeoBetaBinom", n_customers, n_periods, found,
                                 ours))  # fmt: skip
                _print(rows[-1])
    return rows


def _contractual_rows(options: argparse.Namespace) -> list[dict[str, object]]:
    rows = []
    for n_customers in options.contractual_sizes:
        for model in CONTRACTUAL:
            ours = measure("cvalue", model, n_customers, CONTRACT_PERIODS)
            rows.append(_row("cvalue", model, n_customers, CONTRACT_PERIODS, ours, ours))
            _print(rows[-1])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--periods", type=int, nargs="+", default=[6, 12, 52])
    parser.add_argument(
        "--lifetimes-rows",
        nargs="*",
        default=["100000:6"],
        help="customers:periods bases where lifetimes gets one row per customer",
    )
    parser.add_argument(
        "--lifetimes-weighted-max",
        type=int,
        default=1_000_000,
        help="the largest base lifetimes fits on weighted patterns",
    )
    parser.add_argument("--contractual-sizes", type=int, nargs="*", default=[1_000_000])
    options = parser.parse_args()
    rows = _bgbb_rows(options) + _contractual_rows(options)
    print()
    print(pd.DataFrame(rows).to_string(index=False, float_format="{:,.3g}".format))


if __name__ == "__main__":
    main()
