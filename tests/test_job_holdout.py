"""The job's holdout check: every candidate's scores in ``fit --json``, ranked by ``rank_by``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cvalue.cli import EXIT_BAD_INPUT
from cvalue.datasets import make_crm
from cvalue.models import PURCHASE_MODELS
from tests.conftest import demo_config, run_cli, write_crm

SCORES = [
    "holdout_mae", "holdout_rmse", "holdout_bias", "relative_error_total", "predicted_total",
    "actual_total", "gini", "top_decile_lift", "brier", "calibration_log_likelihood",
]  # fmt: skip
AUTO = 'purchase = "auto"'


@pytest.fixture(scope="module")
def crm() -> object:
    return make_crm(300, seed=4)


@pytest.fixture(scope="module")
def url(crm: object, tmp_path_factory: pytest.TempPathFactory) -> str:
    address = f"duckdb:///{tmp_path_factory.mktemp('holdout') / 'crm.duckdb'}"
    write_crm(address, crm)
    return address


def _fit(crm: object, url: str, folder: Path, rank_by: str | None) -> dict[str, object]:
    models = AUTO if rank_by is None else f'{AUTO}\nrank_by = "{rank_by}"'
    code, output = run_cli(["fit"], demo_config(folder, crm, AUTO, models), url, "--json")
    assert code == 0, output
    payload: dict[str, object] = json.loads(output)
    return payload


@pytest.mark.parametrize(
    ("rank_by", "key", "is_descending"),
    [
        (None, lambda row: row["holdout_mae"], False),  # the default: results as before
        ("gini", lambda row: row["gini"], True),
        ("relative_error_total", lambda row: abs(row["relative_error_total"]), False),
    ],
)
def test_fit_json_ranks_the_candidates_by_rank_by(
    crm: object, url: str, tmp_path: Path, rank_by: str | None, key: object, is_descending: bool
) -> None:
    payload = _fit(crm, url, tmp_path, rank_by)
    candidates = payload["candidates"]
    assert isinstance(candidates, dict)
    assert set(candidates) == {"beta_geo", "pareto_nbd", "modified_beta_geo"}
    for row in candidates.values():
        assert list(row) == SCORES
        assert row["holdout_rmse"] >= row["holdout_mae"] >= abs(row["holdout_bias"])
        assert -1.0 <= row["gini"] <= 1.0
        assert 0.0 <= row["brier"] <= 1.0
    ranked = [key(row) for row in candidates.values()]  # type: ignore[operator]
    assert ranked == sorted(ranked, reverse=is_descending)
    best = next(iter(candidates))
    assert payload["purchase_model"] == PURCHASE_MODELS[best].__name__


def test_an_unknown_rank_by_is_a_bad_config_naming_the_key(
    crm: object, url: str, tmp_path: Path
) -> None:
    config = demo_config(tmp_path, crm, AUTO, f'{AUTO}\nrank_by = "r_squared"')
    code, output = run_cli(["fit"], config, url)
    assert code == EXIT_BAD_INPUT, output
    assert "rank_by" in output
    assert "r_squared" in output
