"""A bounded run of benchmarks/coverage_intervals.py (the full run is 200 replications there).

Six replications of 1,000 simulated customers with 20 draws or replicates: far too few to
measure a coverage, enough to catch an interval that misses the truth (a broken method covers
close to none of it). Per quantity and method, at least 3 of the 6 intervals hold the truth
(a calibrated 90 % interval misses 4 of 6 with probability 0.001); over the 48 intervals, at
least 70 % do.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _benchmark() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "coverage_intervals", BENCHMARKS / "coverage_intervals.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(module)
    return module


def test_intervals_cover_the_truth_in_a_bounded_run() -> None:
    table = _benchmark().coverage(6, 1_000, 20)
    assert len(table) == 8
    assert set(table.index.get_level_values("method")) == {"draws", "bootstrap"}
    assert (table["coverage"] >= 3 / 6).all(), table
    assert table["coverage"].mean() >= 0.7, table
    assert (table["mean_width"] > 0).all()
    for method in ("draws", "bootstrap"):
        per_method = table.xs(method, level="method")["mean_width"]
        assert per_method["holdout total count"] > per_method["expected holdout total"]
