"""A plain CLV without ceremony (issue 17, item 6): one annual rate, and no costs said once.

``rates=0.10`` is the effective annual rate that ``DiscountRates.single(0.10)`` is; a bare number
of 1 or more is refused (10 for 10 % is the mistake it catches). ``costs=NO_COSTS`` declares that
no cost beyond the margin applies: it values as every cost passed as 0.0, refuses any cost passed
beside it, and the result records it. Without it, a cost left out is still an error (seed 000:
a cost is never silently omitted).
"""

import pickle

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cvalue as cv
from cvalue.datasets import load_cdnow, make_crm
from cvalue.errors import SchemaError
from cvalue.job._run import COST_BASIS_NONE
from cvalue.value import NO_COSTS, DiscountRates, clv
from tests.conftest import demo_config, read_all, run_cli, write_crm


@pytest.fixture(scope="module")
def valued():
    summary = load_cdnow().summary.iloc[::20]
    purchases = cv.BetaGeo().fit(load_cdnow().summary, unit="week")
    spend = cv.GammaGamma().fit(load_cdnow().summary)
    return {"data": summary, "purchases": purchases, "spend": spend, "margin": 0.3,
            "horizon": "3y"}  # fmt: skip


@settings(max_examples=25, deadline=None)
@given(st.floats(0.0, 0.99, allow_nan=False))
def test_a_bare_rate_is_the_effective_annual_rate(valued, rate):
    plain = clv(**valued, rates=rate, costs=NO_COSTS).customers
    explicit = clv(**valued, rates=DiscountRates.single(rate, per="year"), cost_to_serve=0.0,
                   marketing_cost=0.0).customers  # fmt: skip
    pd.testing.assert_frame_equal(plain, explicit, check_exact=True)


@pytest.mark.parametrize(
    ("rates", "says"),
    [(10, r"0\.10 for 10 %"), (1.0, "100 %"), (True, "a number"), ("10%", "a number"),
     (float("nan"), "missing, infinite or negative"), (-0.1, "missing, infinite or negative")],
)  # fmt: skip
def test_a_bare_rate_that_is_no_share_is_refused(valued, rates, says):
    with pytest.raises(SchemaError, match=says):
        clv(**valued, rates=rates, costs=NO_COSTS)


def test_no_costs_values_as_every_cost_at_zero_and_is_recorded(valued):
    declared = clv(**valued, rates=0.10, costs=NO_COSTS)
    zeros = clv(**valued, rates=0.10, cost_to_serve=0.0, marketing_cost=0.0)
    pd.testing.assert_frame_equal(declared.customers, zeros.customers, check_exact=True)
    assert declared.no_costs
    assert not zeros.no_costs
    assert (declared.customers["cost_to_serve"] == 0.0).all()
    np.testing.assert_array_equal(declared.customers["clv"],
                                  declared.customers["discounted_gross_margin"])  # fmt: skip


@pytest.mark.parametrize(
    "given",
    [{"cost_to_serve": 1.0}, {"marketing_cost": 0.0}, {"acquisition_cost": 20.0},
     {"margin_net_of": ["cost_to_serve"]}],
)  # fmt: skip
def test_no_costs_beside_a_cost_is_refused(valued, given):
    with pytest.raises(SchemaError, match="not both"):
        clv(**valued, rates=0.10, costs=NO_COSTS, **given)


def test_costs_takes_only_the_declaration(valued):
    with pytest.raises(SchemaError, match=r"cvalue\.NO_COSTS"):
        clv(**valued, rates=0.10, costs="none")


def test_a_cost_left_out_is_still_an_error(valued):
    with pytest.raises(SchemaError, match="marketing_cost"):
        clv(**valued, rates=0.10, cost_to_serve=0.0)


def test_the_declaration_is_one_object():
    assert cv.NO_COSTS is NO_COSTS
    assert pickle.loads(pickle.dumps(NO_COSTS)) is NO_COSTS
    assert repr(NO_COSTS) == "cvalue.NO_COSTS"


# --- the job: [value] costs = "none" ------------------------------------------------------------


def test_the_job_values_a_declared_cost_free_base_above_its_costed_one(tmp_path):
    """``costs = "none"`` runs the job with no cost beyond the margin: every customer's CLV is
    at least the costed run's (the demo's costs to serve), and above it for some."""
    crm = make_crm(300, seed=4)
    url = f"duckdb:///{tmp_path / 'crm.duckdb'}"
    write_crm(url, crm)
    costed = demo_config(tmp_path, crm)
    code, output = run_cli(["score"], costed, url)
    assert code == 0, output
    report = (tmp_path / "report.html").read_text(encoding="utf-8")
    said = "Costs subtracted from the margin: cost to serve as recorded (service_contacts); "
    assert said + "marketing cost 0.00 per year." in report
    with_costs = read_all(url, "customer_value").set_index("customer_id")
    free = demo_config(tmp_path, crm, '[value.cost_to_serve]\ntable = "service_contacts"\n\n'
                       "[value.marketing_cost]\namount = 0.0  # none recorded: said, not left "
                       "out\n", "")  # fmt: skip
    text = free.read_text().replace("[value]\n", '[value]\ncosts = "none"\n', 1)
    free.write_text(text.replace('acquisition_cost = "acquisition_cost"\n', "", 1))
    code, output = run_cli(["score"], free, url)
    assert code == 0, output
    report = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "Costs: none beyond the margin, as the configuration declares" in report
    without = read_all(url, "customer_value").set_index("customer_id").loc[with_costs.index]
    # the scores say so too: a BI tool reading them knows they subtract no cost
    assert "cost_basis" not in with_costs.columns
    assert set(without["cost_basis"]) == {COST_BASIS_NONE}
    assert (without["clv_3y"] >= with_costs["clv_3y"] - 1e-9).all()
    assert (without["clv_3y"] > with_costs["clv_3y"] + 1e-6).any()


def test_the_job_refuses_no_costs_beside_an_acquisition_cost(tmp_path):
    crm = make_crm(50, seed=4)
    config = demo_config(tmp_path, crm, '[value.cost_to_serve]\ntable = "service_contacts"\n\n'
                         "[value.marketing_cost]\namount = 0.0  # none recorded: said, not left "
                         "out\n", "")  # fmt: skip
    config.write_text(config.read_text().replace("[value]\n", '[value]\ncosts = "none"\n', 1))
    code, output = run_cli(["validate"], config, "duckdb:///nothing.duckdb")
    assert code == 2
    assert "maps acquisition_cost" in output
