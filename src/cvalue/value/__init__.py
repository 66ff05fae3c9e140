r"""Customer value: net-margin CLV, segment and risk-adjusted discount rates, equity, CLV / CAC.

A customer is worth the margin they will bring, net of what it costs to serve and market to them,
discounted at a rate that reflects how risky that kind of customer is. This module computes it
period by period from a fitted purchase model (:mod:`cvalue.models`), with every cost item as a
separate, explicit input, and reports each component so that each number can be audited.

Periods and timing
------------------
The horizon is cut into periods (``period``; a month by default for continuous-time models, one
transaction opportunity or contract period for discrete-time ones). For period ``k`` ending at
``t_k`` (time from the valuation date):

- expected purchases ``E_k = E[X(t_k)] - E[X(t_{k-1})]``, the difference of the model's
  conditional expectation given each customer's history (for a new customer, the first purchase
  at acquisition comes on top);
- the customer is *on the books* in period ``k`` with probability ``A_k``: alive at the start of
  the period (continuous-time models), alive at that opportunity (BG/BB), active in that period
  (contractual models);
- cash flow ``s m E_k - (c + c_m) A_k f_k`` with ``s`` the expected spend per purchase, ``m``
  the gross margin rate, ``c`` and ``c_m`` the cost to serve and the marketing cost per period,
  ``f_k`` the share of a full period (the last one may be shorter);
- discounted by ``(1 + d) ** -t_k`` (years, ``d`` the effective annual rate): at the end of the
  period for purchases, as in the BG/BB's DERT (Fader, Hardie & Shang 2010, eq. 14), and at its
  start for contract payments, as in the sBG's DEL (Fader & Hardie 2010, eq. 5), where a period
  is paid for when it begins.

``A`` per model, each derived from the model's posterior given the customer is alive now:

- **BG/NBD and MBG/NBD** (Fader, Hardie & Lee 2005; Batislam et al. 2007): given alive at ``T``,
  ``lambda ~ Gamma(r + x, alpha + T)`` and ``p ~ Beta(a, b + x + s)`` (``s = 1`` for the MBG/NBD).
  Dropout happens only right after a purchase, with probability ``p``, so by thinning the
  purchases the death times form a Poisson process of rate ``lambda p`` and
  ``P(alive at T + t | lambda, p) = exp(-lambda p t)``. Integrating ``lambda`` gives
  ``(1 + p tau)^-(r + x)`` with ``tau = t / (alpha + T)``. Write
  ``W(k, b', a, z) = E_{p ~ Beta(a, b')}[(1 - (1 + p tau)^-k) / p]``, ``z = tau / (1 + tau)``,
  the expected purchases while alive (:func:`cvalue.models._special.expected_while_alive`);
  ``E_{Beta(a, b')}[p g(p)] = a / (a + b') E_{Beta(a + 1, b')}[g(p)]`` then gives
  ``P(alive at T + t | history) = P(alive at T) [1 - a / (a + b') W(r + x, b', a + 1, z)]``.
- **Pareto/NBD** (Schmittlein, Morrison & Colombo 1987): given alive at ``T``,
  ``mu ~ Gamma(s, beta + T)``, so ``P(alive at T + t | history) = P(alive at T)
  ((beta + T) / (beta + T + t))^s``; expected purchases in ``(T, T + t]`` are Fader, Hardie & Lee
  (2005b) eq. (41).
- **BG/BB** (Fader, Hardie & Shang 2010): given alive at ``n``, ``theta ~ Beta(gamma, delta + n)``,
  so ``P(alive at n + k | history) = P(alive at n + 1) B(gamma, delta + n + k) / B(gamma,
  delta + n + 1)`` and a purchase at ``n + k`` has probability ``(alpha + x) / (alpha + beta + n)``
  times that (eq. 13's terms).
- **sBG and BdW** (Fader & Hardie 2007; Fader et al. 2018): an active customer with ``n`` periods
  of tenure pays for period ``n + k`` with probability ``S(n + k - 1) / S(n)``.

Examples
--------
>>> import cvalue as cv
>>> regular = cv.ShiftedBetaGeo().fit_survivors([1000, 631, 468, 382, 326, 289, 262, 241],
...                                              unit="year")
>>> new = new_customer_value(purchases=regular, spend=1.0, margin=1.0, horizon="200y",
...                          rates=DiscountRates.single(0.10, per="year"), cost_to_serve=0.0,
...                          marketing_cost=0.0, acquisition_cost=0.0)
>>> round(float(new["clv"].iloc[0]), 4)  # Fader & Hardie (2010): DEL of a new customer
3.6949
>>> simple_ltv(5, 500, 20)
50000.0
"""

from cvalue.value.clv import (
    NO_COSTS,
    CustomerValue,
    NoCosts,
    alive_probability,
    churn_hazard,
    clv,
)
from cvalue.value.equity import CustomerEquity, FutureCohorts, customer_equity
from cvalue.value.equity_stream import EquityStream
from cvalue.value.heuristics import clv_to_cac, compare_ltv, simple_ltv, simple_ltv_table
from cvalue.value.inputs import margin_by_category
from cvalue.value.new_customers import new_customer_value
from cvalue.value.rates import DiscountRates, margin_variation
from cvalue.value.uplift import RetentionUplift, retention_uplift

__all__ = [
    "NO_COSTS",
    "CustomerEquity",
    "CustomerValue",
    "DiscountRates",
    "EquityStream",
    "FutureCohorts",
    "NoCosts",
    "RetentionUplift",
    "alive_probability",
    "churn_hazard",
    "clv",
    "clv_to_cac",
    "compare_ltv",
    "customer_equity",
    "margin_by_category",
    "margin_variation",
    "new_customer_value",
    "retention_uplift",
    "simple_ltv",
    "simple_ltv_table",
]
