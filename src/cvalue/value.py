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

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats
from scipy.special import betaln

from cvalue.errors import DataQualityError, NotFittedError, SchemaError, UndefinedExpectationError
from cvalue.io.schema import Columns
from cvalue.models import (
    BetaGeo,
    BetaGeoBetaBinom,
    GammaGamma,
    ModifiedBetaGeo,
    ParetoNBD,
)
from cvalue.models._base import Model
from cvalue.models._special import expected_while_alive
from cvalue.models.shifted_beta_geo import ContractualModel
from cvalue.summary import compress
from cvalue.units import Duration, Rate, TimeUnit, as_duration, as_time_unit, as_timestamp

__all__ = [
    "CustomerEquity",
    "CustomerValue",
    "DiscountRates",
    "FutureCohorts",
    "alive_probability",
    "churn_hazard",
    "clv",
    "clv_to_cac",
    "compare_ltv",
    "customer_equity",
    "margin_by_category",
    "margin_variation",
    "new_customer_value",
    "simple_ltv",
    "simple_ltv_table",
]

FloatArray = npt.NDArray[np.float64]
IntpArray = npt.NDArray[np.intp]
Compounding = Literal["effective", "continuous"]
CostItem = Literal["cost_to_serve", "marketing_cost", "acquisition_cost"]
Amount: TypeAlias = "float | pd.Series | Mapping[str, float]"
PurchaseModels: TypeAlias = "Model | Mapping[str, Model]"
Spend: TypeAlias = (
    "GammaGamma | Mapping[str, GammaGamma] | float | pd.Series | Mapping[str, float] | "
    "Literal['observed']"
)
_Kind = Literal["beta_geo", "pareto", "bgbb", "contract"]

_COST_ITEMS: tuple[CostItem, ...] = ("cost_to_serve", "marketing_cost", "acquisition_cost")
_DENSE_CELLS = 1 << 22  # (table rows x rates) products up to this size are one matrix product
_CHUNK_CELLS = 1 << 21  # rows x periods handled at once elsewhere: bounds the memory
_WHOLE = 1e-9  # relative slack when a span must be a whole number of periods
_STEP = 1e-6  # relative step of the delta method's forward differences
_CHEBYSHEV_FROM = 256  # BG/NBD tables beyond this many cells per distinct x are interpolated
_CHEBYSHEV_MIN_DEGREE, _CHEBYSHEV_MAX_DEGREE = 32, 512
_CHEBYSHEV_TOLERANCE = 1e-14  # relative size of the last coefficients of a settled curve
_MODEL_COLUMNS: dict[_Kind, tuple[str, ...]] = {
    "beta_geo": ("frequency", "recency", "T"),
    "pareto": ("frequency", "recency", "T"),
    "bgbb": ("frequency", "recency", "n_periods"),
    "contract": ("duration", "is_censored"),
}
_COMPONENTS = (
    "expected_purchases",
    "expected_spend",
    "revenue",
    "margin_rate",
    "gross_margin",
    "alive_periods",
    "cost_to_serve",
    "marketing_cost",
    "net_margin",
    "discount_rate",
    "discount_rate_per_period",
    "discounted_revenue",
    "discounted_gross_margin",
    "discounted_cost_to_serve",
    "discounted_marketing_cost",
    "clv",
)


# --- discount rates ------------------------------------------------------------------------------


def _annual(quoted: FloatArray, per: TimeUnit, compounding: Compounding) -> FloatArray:
    """Effective annual rates of rates quoted per ``per``: exactly :class:`Rate`'s conversions.

    ``Rate.from_per``: ``(1 + r) ** (year / per) - 1``; ``Rate.from_continuous``:
    ``exp(r year / per) - 1``.
    """
    per_year = TimeUnit.YEAR.per(per)
    if compounding == "continuous":
        return np.asarray(np.expm1(quoted * per_year), dtype=np.float64)
    return np.asarray(np.expm1(np.log1p(quoted) * per_year), dtype=np.float64)


def _check_rates(values: FloatArray, what: str) -> None:
    is_bad = ~np.isfinite(values) | (values < 0.0)
    if is_bad.any():
        raise SchemaError(
            f"{what}: {int(is_bad.sum()):,} rate(s) are missing, infinite or negative (e.g. "
            f"{_first(values, is_bad)!r}); a discount rate is a number >= 0, such as 0.10 "
            "for 10 % a year"
        )


@dataclass(frozen=True, slots=True, eq=False)
class DiscountRates:
    """Discount rates: one for all, one per segment, one per customer, or risk-adjusted.

    Build them with the class methods. Rates are quoted per ``per`` (a year by default) as
    effective rates, or continuously compounded ones with ``compounding="continuous"``; they
    are converted exactly (:class:`cvalue.units.Rate`) to the length of each valuation period.

    Attributes
    ----------
    kind
        ``"single"``, ``"by_segment"``, ``"by_customer"`` or ``"risk_adjusted"``.
    per, compounding
        How the rates are quoted.
    derived
        For risk-adjusted rates: per segment, the risk measure, base, premium, the rate
        ``base + premium * risk`` and its effective annual equivalent.

    Examples
    --------
    >>> rates = DiscountRates.by_segment({"retail": 0.12, "corporate": 0.08}, default=0.10)
    >>> rates.table()["annual_rate"].round(2).to_dict()
    {'retail': 0.12, 'corporate': 0.08, '(default)': 0.1}
    >>> monthly = DiscountRates.single(Rate(0.10).per("month"), per="month")
    >>> round(monthly.annual_rate(), 12)
    0.1
    """

    kind: Literal["single", "by_segment", "by_customer", "risk_adjusted"]
    per: TimeUnit
    compounding: Compounding
    rate: float = math.nan
    segment_rates: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    default: float | None = None
    customer_rates: pd.Series | None = None
    derived: pd.DataFrame | None = None

    @classmethod
    def single(
        cls, rate: float, *, per: TimeUnit | str = "year", compounding: Compounding = "effective"
    ) -> DiscountRates:
        """One rate for every customer (``0.10`` per year: 10 % a year)."""
        _check_rates(np.array([rate], dtype=np.float64), "DiscountRates.single")
        return cls("single", as_time_unit(per), compounding, rate=float(rate))

    @classmethod
    def by_segment(
        cls,
        rates: Mapping[str, float],
        *,
        default: float | None = None,
        per: TimeUnit | str = "year",
        compounding: Compounding = "effective",
    ) -> DiscountRates:
        """A rate per segment; customers of segments not in ``rates`` get ``default``.

        Without a default, a segment missing from ``rates`` is an error that lists them.
        """
        if not isinstance(rates, Mapping) or not rates:
            raise SchemaError("DiscountRates.by_segment needs a non-empty {segment: rate} mapping")
        values = np.array([*rates.values(), *([] if default is None else [default])], float)
        _check_rates(values, "DiscountRates.by_segment")
        frozen = MappingProxyType({str(k): float(v) for k, v in rates.items()})
        return cls(
            "by_segment",
            as_time_unit(per),
            compounding,
            segment_rates=frozen,
            default=None if default is None else float(default),
        )

    @classmethod
    def by_customer(
        cls,
        rates: pd.Series,
        *,
        per: TimeUnit | str = "year",
        compounding: Compounding = "effective",
    ) -> DiscountRates:
        """A rate per customer: a Series indexed by customer id."""
        if not isinstance(rates, pd.Series):
            raise SchemaError(f"DiscountRates.by_customer needs a Series, got {type(rates)}")
        _check_rates(rates.to_numpy(dtype=np.float64, na_value=np.nan), "DiscountRates.by_customer")
        return cls("by_customer", as_time_unit(per), compounding, customer_rates=rates.copy())

    @classmethod
    def risk_adjusted(
        cls,
        *,
        base: float,
        premium: float,
        risk: pd.Series,
        segment: pd.Series | None = None,
        per: TimeUnit | str = "year",
        compounding: Compounding = "effective",
    ) -> DiscountRates:
        """``base + premium * risk`` per segment.

        Parameters
        ----------
        base, premium
            The rate of a riskless segment and the extra rate per unit of risk, quoted per
            ``per``.
        risk
            The segment risk measure, indexed by segment: :func:`churn_hazard`,
            :func:`margin_variation`, or your own. With ``segment`` given, ``risk`` is a user
            column per customer instead, averaged within each segment.
        segment
            Each customer's segment, to average a per-customer ``risk`` column.
        """
        by_segment = _segment_risk(risk, segment)
        quoted = base + premium * by_segment.to_numpy(dtype=np.float64)
        _check_rates(quoted, "DiscountRates.risk_adjusted (base + premium * risk)")
        unit = as_time_unit(per)
        derived = pd.DataFrame(
            {
                "risk": by_segment.to_numpy(dtype=np.float64),
                "base": float(base),
                "premium": float(premium),
                "rate": quoted,
                "annual_rate": _annual(quoted, unit, compounding),
            },
            index=pd.Index([str(label) for label in by_segment.index], name="segment"),
        )
        derived.attrs["measure"] = str(risk.name) if risk.name is not None else "risk"
        rates = MappingProxyType(dict(zip(derived.index, quoted.tolist(), strict=True)))
        return cls("risk_adjusted", unit, compounding, segment_rates=rates, derived=derived)

    def annual_rates(self, index: pd.Index, segment: pd.Series | None) -> FloatArray:
        """The effective annual rate of each customer of ``index`` (``segment`` aligned to it)."""
        if self.kind == "single":
            return np.full(len(index), self.annual_rate())
        if self.kind == "by_customer":
            assert self.customer_rates is not None  # set by by_customer
            quoted = _numeric(
                _aligned(self.customer_rates, index, "DiscountRates.by_customer"), "discount rate"
            )
            return _annual(quoted, self.per, self.compounding)
        quoted = _from_mapping(
            self.segment_rates, segment, "the discount rates", default=self.default
        )
        return _annual(quoted, self.per, self.compounding)

    def annual_rate(self, segment: str | None = None) -> float:
        """The effective annual rate of a new customer (of ``segment`` for per-segment rates)."""
        if self.kind == "single":
            quoted = self.rate
        elif self.kind == "by_customer":
            raise SchemaError(
                "rates given per customer have no rate for a new customer; use "
                "DiscountRates.single or by_segment for new customers and future cohorts"
            )
        elif segment is not None and segment in self.segment_rates:
            quoted = self.segment_rates[segment]
        elif self.default is not None:
            quoted = self.default
        else:
            raise SchemaError(
                f"no discount rate for segment {segment!r}; the rates cover "
                f"{sorted(self.segment_rates)} and have no default"
            )
        return float(_annual(np.array([quoted]), self.per, self.compounding)[0])

    def as_rate(self, segment: str | None = None) -> Rate:
        """The rate of ``segment`` (or the single rate) as a :class:`~cvalue.units.Rate`.

        ``rates.as_rate("retail").per("month")`` is the exact effective monthly rate and
        ``.continuous("week")`` the continuously compounded weekly one.
        """
        return Rate(self.annual_rate(segment))

    def table(self) -> pd.DataFrame:
        """The quoted rates, their effective annual equivalents and (risk-adjusted) derivation."""
        if self.derived is not None:
            return self.derived.copy()
        if self.kind == "by_customer":
            assert self.customer_rates is not None  # set by by_customer
            quoted = self.customer_rates.to_numpy(dtype=np.float64)
            index = self.customer_rates.index
        else:
            labels = list(self.segment_rates) if self.kind == "by_segment" else ["(all)"]
            values = list(self.segment_rates.values()) if self.kind == "by_segment" else [self.rate]
            if self.default is not None:
                labels, values = [*labels, "(default)"], [*values, self.default]
            quoted, index = np.array(values, dtype=np.float64), pd.Index(labels, name="segment")
        return pd.DataFrame(
            {
                "rate": quoted,
                "per": self.per.value,
                "compounding": self.compounding,
                "annual_rate": _annual(quoted, self.per, self.compounding),
            },
            index=index,
        )


def _as_rates(rates: DiscountRates | Rate) -> DiscountRates:
    if isinstance(rates, DiscountRates):
        return rates
    if isinstance(rates, Rate):
        return DiscountRates.single(rates.annual, per="year")
    raise SchemaError(
        f"rates must be a DiscountRates or a cvalue.Rate, got {rates!r}; a bare number has no "
        "unit: write DiscountRates.single(0.10, per='year')"
    )


def _segment_risk(risk: pd.Series, segment: pd.Series | None) -> pd.Series:
    """A risk measure per segment: ``risk`` itself, or a per-customer column averaged by segment."""
    if not isinstance(risk, pd.Series) or risk.empty:
        raise SchemaError(
            "risk must be a non-empty Series (per segment, or per customer with segment=...)"
        )
    if segment is not None:
        labels = _labels(segment, risk.index, "segment")
        risk = pd.Series(_numeric(risk, "risk"), index=risk.index).groupby(labels.to_numpy()).mean()
    values = risk.to_numpy(dtype=np.float64, na_value=np.nan)
    if not np.all(np.isfinite(values)) or not risk.index.is_unique:
        raise SchemaError(
            "risk must give one finite number per segment; got missing or infinite values or "
            f"repeated segments in {risk.to_dict()}"
        )
    return risk


def margin_variation(margins: pd.Series, segment: pd.Series) -> pd.Series:
    """The coefficient of variation of customers' margins within each segment, a risk measure.

    ``std / mean`` (population standard deviation) of ``margins`` (per customer, e.g. each
    customer's net margin over the observation window) by segment; for
    :meth:`DiscountRates.risk_adjusted`.

    Raises
    ------
    SchemaError
        When a segment's mean margin is not positive (its variation is then meaningless).
    """
    labels = _labels(segment, margins.index, "segment")
    values = pd.Series(_numeric(margins, "margins"), index=margins.index)
    grouped = values.groupby(labels.to_numpy())
    mean, std = grouped.mean(), grouped.std(ddof=0)
    bad = mean[~(mean > 0)]
    if len(bad):
        raise SchemaError(
            f"the mean margin is not positive in segment(s) {bad.to_dict()}; the coefficient of "
            "variation needs a positive mean. Use churn_hazard or your own risk column instead"
        )
    return (std / mean).rename("margin_variation")


# --- aligning per-customer inputs ----------------------------------------------------------------


def _first(values: pd.Index | FloatArray, is_bad: npt.NDArray[np.bool_]) -> object:
    """The first flagged value, as a plain Python value for messages (``13``, not ``np.int64``)."""
    found = values[int(np.argmax(is_bad))]
    return found.item() if isinstance(found, np.generic) else found


def _aligned(values: pd.Series, index: pd.Index, name: str) -> pd.Series:
    """``values`` in the order of ``index``; every customer of ``index`` must have a value."""
    if not isinstance(values, pd.Series):
        raise SchemaError(
            f"{name} must be a pandas Series indexed by customer id, got {type(values).__name__}"
        )
    if values.index.equals(index):
        return values
    if not values.index.is_unique:
        repeated = values.index[values.index.duplicated()]
        raise DataQualityError(
            f"{name} has {len(repeated):,} repeated customer ids (e.g. {repeated[0]!r}); give "
            "one value per customer"
        )
    is_missing = ~index.isin(values.index)
    if is_missing.any():
        raise DataQualityError(
            f"{name} has no value for {int(is_missing.sum()):,} of {len(index):,} customers "
            f"(e.g. customer {_first(index, is_missing)!r}); give every customer of the "
            "data a value (its index is the customer id)"
        )
    return values.reindex(index)


def _numeric(values: pd.Series, name: str) -> FloatArray:
    try:
        array = values.to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError) as exc:
        raise SchemaError(f"{name} must be numeric, got dtype {values.dtype}") from exc
    is_bad = ~np.isfinite(array)
    if is_bad.any():
        raise DataQualityError(
            f"{name} is missing or infinite for {int(is_bad.sum()):,} of {len(array):,} "
            f"customers (e.g. customer {_first(values.index, is_bad)!r}); fill or drop them"
        )
    return array


def _labels(segment: pd.Series, index: pd.Index, name: str) -> pd.Series:
    labels = _aligned(segment, index, name)
    is_missing = labels.isna().to_numpy()
    if is_missing.any():
        raise DataQualityError(
            f"{name} is missing for {int(is_missing.sum()):,} of {len(labels):,} customers "
            f"(e.g. customer {_first(labels.index, is_missing)!r}); give every customer one"
        )
    return labels


def _from_mapping(
    mapping: Mapping[str, float],
    labels: pd.Series | None,
    name: str,
    *,
    default: float | None = None,
) -> FloatArray:
    """The value of each customer's segment; unknown segments are an error unless a default."""
    if labels is None:
        raise SchemaError(f"{name} are given per segment; pass segment=<each customer's segment>")
    codes, uniques = pd.factorize(labels, use_na_sentinel=True)
    unknown = [u for u in uniques if u not in mapping]
    if unknown and default is None:
        counts = np.bincount(codes, minlength=len(uniques))
        shown = {str(u): int(counts[i]) for i, u in enumerate(uniques) if u not in mapping}
        raise SchemaError(
            f"{name} have no value for {len(unknown)} segment(s): {shown} (customers per "
            f"segment); they cover {sorted(map(str, mapping))}. Add those segments or a default"
        )
    table = np.array([mapping.get(u, default) for u in uniques], dtype=np.float64)
    return np.asarray(table[codes], dtype=np.float64)


def _amount(
    value: Amount | None, name: str, index: pd.Index, labels: pd.Series | None
) -> FloatArray | None:
    """A per-customer amount from a number, a Series per customer, or a {segment: value} map."""
    if value is None:
        return None
    if isinstance(value, pd.Series):
        array = _numeric(_aligned(value, index, name), name)
    elif isinstance(value, Mapping):
        array = _from_mapping(value, labels, name)
    elif isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool):
        array = np.full(len(index), float(value))
    else:
        raise SchemaError(
            f"{name} must be a number, a Series per customer or a {{segment: value}} "
            f"mapping, got {type(value).__name__}"
        )
    return array


def _check_range(values: FloatArray, name: str, index: pd.Index, *, upper: float) -> None:
    is_bad = ~((values >= 0.0) & (values <= upper))
    if is_bad.any():
        bound = "between 0 and 1 (a share of revenue)" if upper == 1.0 else "finite and >= 0"
        raise DataQualityError(
            f"{name} must be {bound}; {int(is_bad.sum()):,} of {len(values):,} customers are not "
            f"(e.g. customer {_first(index, is_bad)!r}: {_first(values, is_bad)!r}). "
            + ("Write 30 % as 0.30" if upper == 1.0 else "Costs are positive amounts")
        )


def _margin(value: Amount, index: pd.Index, labels: pd.Series | None) -> FloatArray:
    if isinstance(value, int | float) and not 0.0 <= float(value) <= 1.0:
        raise SchemaError(
            f"margin must be between 0 and 1 (a share of revenue), got {value!r}; "
            "write 30 % as 0.30"
        )
    found = _amount(value, "margin", index, labels)
    assert found is not None  # a margin is always given
    _check_range(found, "margin", index, upper=1.0)
    return found


@dataclass(frozen=True, slots=True)
class _Costs:
    """Cost items per customer, after the double-counting checks (zeros for declared items)."""

    serve: FloatArray
    marketing: FloatArray
    acquisition: FloatArray | None
    net_of: frozenset[str]


def _check_cost_items(given: Mapping[str, object], net_of: Collection[str]) -> frozenset[str]:
    """Each cost item exactly once: passed (possibly 0) or declared as netted in the margin."""
    if isinstance(net_of, str):
        raise SchemaError(f"margin_net_of is a collection of cost items; write ('{net_of}',)")
    declared = frozenset(net_of)
    unknown = declared - set(_COST_ITEMS)
    if unknown:
        raise SchemaError(
            f"margin_net_of names unknown cost items {sorted(unknown)}; use {list(_COST_ITEMS)}"
        )
    twice = [item for item in _COST_ITEMS if item in declared and given[item] is not None]
    missing = [
        item
        for item in ("cost_to_serve", "marketing_cost")
        if item not in declared and given[item] is None
    ]
    problems = [
        f"{item} is passed, but margin_net_of says the margin already nets it: it would be "
        "subtracted twice (double counting). Drop one of the two"
        for item in twice
    ] + [
        f"{item} is missing: pass it (0.0 if there is none), or declare "
        f"margin_net_of=('{item}',) if the margin already nets it"
        for item in missing
    ]
    if problems:
        raise SchemaError("; ".join(problems))
    return declared


def _costs(
    given: Mapping[str, object],
    net_of: Collection[str],
    index: pd.Index,
    labels: pd.Series | None,
) -> _Costs:
    """The cost items per customer, checked (:func:`_check_cost_items`) and >= 0."""
    declared = _check_cost_items(given, net_of)
    found = {item: _amount(given[item], item, index, labels) for item in _COST_ITEMS}  # type: ignore[arg-type]
    for item, values in found.items():
        if values is not None:
            _check_range(values, item, index, upper=math.inf)
    zeros = np.zeros(len(index))
    serve, marketing = found["cost_to_serve"], found["marketing_cost"]
    return _Costs(
        zeros if serve is None else serve,
        zeros if marketing is None else marketing,
        found["acquisition_cost"],
        declared,
    )


# --- time grid -----------------------------------------------------------------------------------


def _horizon(value: Duration | str, name: str = "horizon") -> Duration:
    if isinstance(value, int | float | np.integer | np.floating):
        raise SchemaError(
            f"{name} {value!r} has no unit; write it as '3y', '36M', '156w' or Duration(3, 'year')"
        )
    return as_duration(value)


@dataclass(frozen=True, slots=True)
class _Grid:
    """The valuation periods: their ends in years and each one's share of a full period."""

    ends: FloatArray
    shares: FloatArray
    period: Duration

    @property
    def starts(self) -> FloatArray:
        """Where each period begins, in years."""
        return np.concatenate([[0.0], self.ends[:-1]])

    def in_unit(self, years: FloatArray, unit: TimeUnit) -> FloatArray:
        """Times in years as times in ``unit``."""
        return np.asarray(years * TimeUnit.YEAR.per(unit), dtype=np.float64)


def _grid(horizon: Duration, period: Duration) -> _Grid:
    total, step = horizon.to(TimeUnit.YEAR), period.to(TimeUnit.YEAR)
    if step <= 0:
        raise SchemaError(f"the period must be longer than 0, got {period}")
    n_periods = math.ceil(total / step * (1.0 - _WHOLE)) if total > 0 else 0
    ends = np.minimum(np.arange(1, n_periods + 1) * step, total)
    shares = np.diff(np.concatenate([[0.0], ends])) / step
    return _Grid(np.asarray(ends, dtype=np.float64), shares, period)


def _is_whole(value: float) -> bool:
    return abs(value - round(value)) <= _WHOLE * max(1.0, abs(value))


# --- models: the state of each customer now, and what follows from it --------------------------


def _kind(model: object) -> _Kind:
    if isinstance(model, BetaGeo | ModifiedBetaGeo):
        kind: _Kind = "beta_geo"
    elif isinstance(model, ParetoNBD):
        kind = "pareto"
    elif isinstance(model, BetaGeoBetaBinom):
        kind = "bgbb"
    elif isinstance(model, ContractualModel):
        kind = "contract"
    else:
        raise SchemaError(
            "purchases must be a fitted BetaGeo, ModifiedBetaGeo, ParetoNBD, BetaGeoBetaBinom, "
            f"ShiftedBetaGeo or BetaDiscreteWeibull, got {type(model).__name__}"
        )
    if not hasattr(model, "params_"):
        raise NotFittedError(
            f"this {type(model).__name__} is not fitted yet; call .fit(data) first"
        )
    return kind


def _unit(model: Model) -> TimeUnit:
    if model.unit_ is None:
        raise SchemaError(
            f"this {type(model).__name__} does not know its data's time unit, so horizons and "
            "rates cannot be converted; fit it with unit='week' (or on a cvalue.rfm_summary)"
        )
    return model.unit_


def _params(model: Model) -> FloatArray:
    return np.asarray(model.params_.to_numpy(), dtype=np.float64)


def _dropout_at_start(model: Model) -> float:
    """``s`` of the BG/NBD family: 1 when dropout can also happen at time 0 (MBG/NBD)."""
    return 1.0 if isinstance(model, ModifiedBetaGeo) else 0.0


def _column(frame: pd.DataFrame, name: str) -> FloatArray:
    return frame[name].to_numpy(dtype=np.float64, na_value=np.nan)


def _distinct(*columns: FloatArray) -> tuple[IntpArray, tuple[FloatArray, ...]]:
    """Codes of the distinct rows of ``columns`` and each distinct row's values."""
    key = np.zeros(len(columns[0]), dtype=np.int64)
    for column in columns:
        codes, uniques = pd.factorize(column)
        key = key * len(uniques) + codes
    group, distinct = pd.factorize(key)
    values = []
    for column in columns:
        found = np.empty(len(distinct))
        found[group] = column
        values.append(found)
    return group.astype(np.intp), tuple(values)


@dataclass(frozen=True, slots=True)
class _State:
    """Customers now: P(alive) and a purchase scale per row, and the distinct keys of the tables.

    Row ``i`` expects ``purchase_scale[i] * C(keys[group[i]], t)`` purchases by ``t`` from now and
    is alive at ``t`` with probability ``alive_scale[i] * S(keys[group[i]], t)``: the functions
    ``C`` and ``S`` (:func:`_cumulative`, :func:`_survival`) are computed once per distinct key
    (an ``(x, T)`` pair, an age ``T``, a length ``n``, a tenure) and broadcast.
    """

    kind: _Kind
    group: IntpArray
    purchase_scale: FloatArray
    alive_scale: FloatArray
    keys: tuple[FloatArray, ...]


def _check_contracts(frame: pd.DataFrame) -> tuple[FloatArray, FloatArray]:
    tenure, is_active = _column(frame, "duration"), _column(frame, "is_censored")
    is_bad = (
        ~np.isfinite(tenure)
        | (tenure < 0)
        | (tenure != np.round(tenure))
        | ~np.isin(is_active, (0.0, 1.0))
    )
    if is_bad.any():
        raise DataQualityError(
            f"{int(is_bad.sum()):,} of {len(tenure):,} customers have a 'duration' that is not a "
            "whole number >= 0 or an 'is_censored' that is not 0 or 1 (e.g. customer "
            f"{_first(frame.index, is_bad)!r}); 'duration' counts the periods a customer "
            "has been active, 'is_censored' is 1 for customers still active and 0 for those lost"
        )
    return tenure, is_active


def _state(model: Model, frame: pd.DataFrame) -> _State:
    """Each customer's state given their history (P(alive) from the model's own ``p_alive``)."""
    kind = _kind(model)
    missing = [c for c in _MODEL_COLUMNS[kind] if c not in frame]
    if missing:
        raise SchemaError(
            f"{type(model).__name__} needs column(s) {missing}; the data has {list(frame.columns)}"
        )
    if kind == "contract":
        tenure, is_active = _check_contracts(frame)
        group, keys = _distinct(tenure)
        return _State(kind, group, is_active, is_active, keys)
    alive = model.p_alive(frame).to_numpy(dtype=np.float64)  # type: ignore[attr-defined]
    x = _column(frame, "frequency")
    if kind == "beta_geo":
        group, keys = _distinct(x, _column(frame, "T"))
        return _State(kind, group, alive, alive, keys)
    if kind == "pareto":
        r, alpha, _, _ = _params(model)
        age = _column(frame, "T")
        group, keys = _distinct(age)
        return _State(kind, group, alive * (r + x) / (alpha + age), alive, keys)
    alpha, beta, _, _ = _params(model)
    n = _column(frame, "n_periods")
    group, keys = _distinct(n)
    return _State(kind, group, alive * (alpha + x) / (alpha + beta + n), alive, keys)


def _new_state(model: Model) -> _State:
    """A customer right after acquisition (and after the first purchase).

    BG/NBD family: ``x = 0, T = 0``, alive with ``B(a, b + s) / B(a, b)`` (1 for the BG/NBD,
    ``b / (a + b)`` for the MBG/NBD). Pareto/NBD: ``x = 0, T = 0``, alive. BG/BB: ``n = 0``, alive
    at opportunity 1 with ``delta / (gamma + delta)``, buying with ``alpha / (alpha + beta)``
    (Fader, Hardie & Shang 2010, eq. 8's terms). Contracts: tenure 0, active.
    """
    kind = _kind(model)
    zero, one, first = np.zeros(1), np.ones(1), np.zeros(1, dtype=np.intp)
    if kind == "beta_geo":
        _, _, a, b = _params(model)
        survives = one * np.exp(betaln(a, b + _dropout_at_start(model)) - betaln(a, b))
        return _State(kind, first, survives, survives, (zero, zero))
    if kind == "pareto":
        r, alpha, _, _ = _params(model)
        return _State(kind, first, one * r / alpha, one, (zero,))
    if kind == "bgbb":
        alpha, beta, gamma, delta = _params(model)
        alive = one * delta / (gamma + delta)
        return _State(kind, first, alive * alpha / (alpha + beta), alive, (zero,))
    return _State(kind, first, one, one, (zero,))


def _beta_geo_exact(model: Model, x: FloatArray, tau: FloatArray) -> FloatArray:
    """The BG/NBD family's expectations over ``p ~ Beta(a, b + x + s)`` at ``tau = t/(alpha+T)``.

    Row 0: the expected purchases while alive ``W(r + x, b', a, z)`` (Fader, Hardie & Lee 2005,
    eq. 10's bracket; Batislam et al. 2007, eq. 8); row 1: the survival
    ``1 - a/(a + b') W(r + x, b', a + 1, z)``, with ``b' = b + x + s`` and ``z = tau / (1 + tau)``
    (module docstring). Both in one call, so that the series are summed together.
    """
    r, _, a, b = _params(model)
    shape_b = b + x + _dropout_at_start(model)
    z = tau / (1.0 + tau)
    both = expected_while_alive(
        np.concatenate([r + x, r + x]),
        np.concatenate([shape_b, shape_b]),
        np.concatenate([np.full(len(x), a), np.full(len(x), a + 1.0)]),
        np.concatenate([z, z]),
    ).reshape(2, len(x))
    both[1] = np.clip(1.0 - a / (a + shape_b) * both[1], 0.0, 1.0)
    return both


def _chebyshev_coefficients(values: FloatArray) -> FloatArray:
    """Chebyshev coefficients of each row, sampled at ``cos(j pi / n)``, ``j = 0 .. n`` (DCT-I)."""
    n = values.shape[1] - 1
    extended = np.concatenate([values, values[:, n - 1 : 0 : -1]], axis=1)
    coefficients = np.fft.rfft(extended, axis=1).real[:, : n + 1] / n
    coefficients[:, [0, n]] /= 2.0
    return np.asarray(coefficients, dtype=np.float64)


def _clenshaw(coefficients: FloatArray, t: FloatArray) -> FloatArray:
    """``sum_j c[i, j] T_j(t[i, k])`` for every row ``i`` and column ``k``."""
    twice = 2.0 * t
    after, last, scratch = np.zeros_like(t), np.zeros_like(t), np.empty_like(t)
    for j in range(coefficients.shape[1] - 1, 0, -1):
        np.multiply(twice, after, out=scratch)
        scratch -= last
        scratch += coefficients[:, j, None]
        after, last, scratch = scratch, after, last
    return np.asarray(coefficients[:, 0, None] + t * after - last, dtype=np.float64)


def _beta_geo_tables(model: Model, state: _State, times: FloatArray) -> FloatArray:
    """:func:`_beta_geo_exact` for every ``(x, T)`` key and time: ``(2, keys, times)``.

    For a given ``x`` both expectations are functions of ``tau = t / (alpha + T)`` alone,
    analytic in ``u = log(1 + tau)`` within ``|Im u| < pi`` (their singularities are at
    ``tau = -1/p``). So each curve is computed exactly at Chebyshev points of ``u`` and
    interpolated, its degree doubling until its last coefficients fall below
    ``_CHEBYSHEV_TOLERANCE`` of its largest; the curves that have not settled by
    ``_CHEBYSHEV_MAX_DEGREE`` are computed exactly at every point. Small tables are computed
    exactly throughout.
    """
    _, alpha, _, _ = _params(model)
    x, age = state.keys
    tau = times[None, :] / (alpha + age)[:, None]
    levels, level = np.unique(x, return_inverse=True)
    if tau.size <= _CHEBYSHEV_FROM * len(levels):
        every = np.broadcast_to(x[:, None], tau.shape).ravel()
        return _beta_geo_exact(model, every, tau.ravel()).reshape(2, *tau.shape)
    widest = np.zeros(len(levels))
    np.maximum.at(widest, level, np.log1p(tau.max(axis=1, initial=0.0)))
    coefficients, is_settled = _chebyshev_fit(model, levels, widest)
    point = 2.0 * np.log1p(tau) / np.where(widest > 0, widest, 1.0)[level][:, None] - 1.0
    found = np.stack([_clenshaw(coefficients[f][level], point) for f in range(2)])
    rows = np.flatnonzero(~is_settled[level])
    if len(rows):
        every = np.broadcast_to(x[rows, None], (len(rows), tau.shape[1])).ravel()
        exact = _beta_geo_exact(model, every, tau[rows].ravel())
        found[:, rows] = exact.reshape(2, len(rows), tau.shape[1])
    return found


def _chebyshev_fit(
    model: Model, levels: FloatArray, widest: FloatArray
) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
    """Coefficients ``(2, levels, degree + 1)`` in ``u in [0, widest]``, and which settled."""
    degree = _CHEBYSHEV_MIN_DEGREE
    while True:
        nodes = widest[:, None] * (1.0 + np.cos(np.arange(degree + 1) * np.pi / degree)) / 2.0
        values = _beta_geo_exact(model, np.repeat(levels, degree + 1), np.expm1(nodes).ravel())
        coefficients = _chebyshev_coefficients(values.reshape(-1, degree + 1))
        scale = np.max(np.abs(coefficients), axis=1)
        tail = np.max(np.abs(coefficients[:, -3:]), axis=1)
        is_settled = (tail <= _CHEBYSHEV_TOLERANCE * scale).reshape(2, -1).all(axis=0)
        if is_settled.all() or degree >= _CHEBYSHEV_MAX_DEGREE:
            return coefficients.reshape(2, len(levels), degree + 1), is_settled
        degree *= 2


def _survival(model: Model, state: _State, times: FloatArray) -> FloatArray:
    """``S(key, t)``: P(alive at ``t`` from now) over ``alive_scale``, per key and time.

    - BG/NBD family: ``1 - a / (a + b') W(r + x, b', a + 1, t / (alpha + T + t))``,
      ``b' = b + x + s`` (module docstring);
    - Pareto/NBD: ``((beta + T) / (beta + T + t))^s``;
    - BG/BB (``t`` whole opportunities ahead):
      ``B(gamma, delta + n + t) / B(gamma, delta + n + 1)``;
    - contracts (``t`` whole periods ahead): ``S(n + t) / S(n)``.
    """
    if state.kind == "beta_geo":
        return np.asarray(_beta_geo_tables(model, state, times)[1], dtype=np.float64)
    if state.kind == "pareto":
        _, _, s, beta = _params(model)
        base = (beta + state.keys[0])[:, None]
        return np.asarray(np.exp(-s * np.log1p(times[None, :] / base)), dtype=np.float64)
    if state.kind == "bgbb":
        _, _, gamma, delta = _params(model)
        shifted = (delta + state.keys[0])[:, None]
        return np.asarray(
            np.exp(betaln(gamma, shifted + times[None, :]) - betaln(gamma, shifted + 1.0)),
            dtype=np.float64,
        )
    tenure = state.keys[0]
    survival = model.survival  # type: ignore[attr-defined]
    now = np.asarray(survival(tenure), dtype=np.float64)[:, None]
    ahead = tenure[:, None] + times[None, :]
    later = np.asarray(survival(ahead.ravel()), dtype=np.float64).reshape(ahead.shape)
    return np.divide(later, now, out=np.zeros_like(later), where=now > 0)


def _spread(exponent: float, log_ratio: FloatArray) -> FloatArray:
    """``(1 - exp(-e y)) / e``, and ``y`` at ``e = 0`` (the Pareto/NBD's ``s = 1`` limit)."""
    if exponent == 0.0:
        return log_ratio
    return np.asarray(-np.expm1(-exponent * log_ratio) / exponent, dtype=np.float64)


def _cumulative(model: Model, state: _State, times: FloatArray) -> FloatArray:
    """``C(key, t)``: expected purchases by ``t`` from now over ``purchase_scale``.

    - BG/NBD family: ``W(r + x, b + x + s, a, t / (alpha + T + t))``, Fader, Hardie & Lee (2005)
      eq. (10) without P(alive) (Batislam et al. 2007, eq. 8, for the MBG/NBD);
    - Pareto/NBD: ``(beta + T) [1 - ((beta + T) / (beta + T + t))^(s - 1)] / (s - 1)``, Fader,
      Hardie & Lee (2005b) eq. (41) without ``P(alive) (r + x) / (alpha + T)``;
    - BG/BB and contracts: the sum of the survival over opportunities (payments) ``1 .. t``
      (``0 .. t - 1`` for contracts, paid at each period's start).
    """
    if state.kind == "beta_geo":
        return np.asarray(_beta_geo_tables(model, state, times)[0], dtype=np.float64)
    if state.kind == "pareto":
        _, _, s, beta = _params(model)
        base = (beta + state.keys[0])[:, None]
        return np.asarray(base * _spread(s - 1.0, np.log1p(times[None, :] / base)), np.float64)
    first = 1.0 if state.kind == "bgbb" else 0.0
    n_periods = round(float(times.max())) if len(times) else 0
    steps = _survival(model, state, np.arange(first, first + n_periods))
    totals = np.concatenate([np.zeros((len(steps), 1)), np.cumsum(steps, axis=1)], axis=1)
    return np.asarray(totals[:, np.round(times).astype(np.intp)], dtype=np.float64)


@dataclass(frozen=True, slots=True)
class _Flows:
    """Per-period tables: expected purchases and P(on the books), per distinct key of a state."""

    state: _State
    purchases: FloatArray
    alive: FloatArray
    pays_at_start: bool


def _model_times(model: Model, grid: _Grid) -> FloatArray:
    """The grid's period ends in the model's unit, checked for discrete-time models."""
    unit = _unit(model)
    ends = grid.in_unit(grid.ends, unit)
    if _kind(model) in ("bgbb", "contract"):
        step = grid.period.to(unit)
        if not math.isclose(step, 1.0, rel_tol=_WHOLE) or (len(ends) and not _is_whole(ends[-1])):
            raise SchemaError(
                f"a {type(model).__name__} counts whole periods of 1 {unit.value}: the period "
                f"must be '1 {unit.value}' and the horizon a whole number of them; got period "
                f"{grid.period} and a horizon of {ends[-1] if len(ends) else 0:g} {unit.value}s"
            )
        ends = np.round(ends)
    return ends


def _flows(model: Model, state: _State, grid: _Grid) -> _Flows:
    """Purchases in each period (differences of :func:`_cumulative`) and P(on the books)."""
    ends = _model_times(model, grid)
    starts = np.concatenate([[0.0], ends[:-1]])
    if state.kind == "beta_geo":  # both curves at once; S(0) = 1 starts the survival
        cumulative, survival = _beta_geo_tables(model, state, ends)
        purchases = np.maximum(np.diff(cumulative, axis=1, prepend=0.0), 0.0)
        alive = np.concatenate([np.ones((len(survival), 1)), survival[:, :-1]], axis=1)
        return _Flows(state, purchases, alive, pays_at_start=False)
    purchases = np.maximum(np.diff(_cumulative(model, state, ends), axis=1, prepend=0.0), 0.0)
    if state.kind == "bgbb":
        alive = _survival(model, state, ends)  # alive at opportunity n + k
    else:
        alive = _survival(model, state, starts)  # alive at the start of period k
    return _Flows(state, purchases, alive, pays_at_start=state.kind == "contract")


# --- spend ---------------------------------------------------------------------------------------


def _spend_terms(params: FloatArray, x: FloatArray) -> tuple[FloatArray, FloatArray]:
    """``u, v`` with the Gamma-Gamma expected spend ``u + v * monetary_value``.

    Fader & Hardie (2013), eq. (5): ``p (gamma + x zbar) / (p x + q - 1)``, so
    ``u = p gamma / (p x + q - 1)`` and ``v = p x / (p x + q - 1)`` (0 without repeat purchases).
    """
    p, q, gamma = params
    denominator = p * x + q - 1.0
    if np.any(denominator <= 0):
        raise UndefinedExpectationError(
            f"the Gamma-Gamma expected spend is infinite at q = {q:.4g} for "
            f"{int(np.sum(denominator <= 0)):,} pattern(s) with p*frequency + q <= 1; refit the "
            "spend model with more repeat buyers, or pass the spend per customer"
        )
    return np.asarray(p * gamma / denominator), np.asarray(p * x / denominator)


def _is_spend_models(spend: object) -> bool:
    return (
        isinstance(spend, Mapping)
        and bool(spend)
        and all(isinstance(value, GammaGamma) for value in spend.values())
    )


def _observed_spend(data: pd.DataFrame) -> FloatArray:
    if "monetary_value" not in data:
        raise SchemaError(
            "spend='observed' reads 'monetary_value', which the data lacks; build "
            "the summary from transactions with amounts"
        )
    values = _column(data, "monetary_value")
    is_bad = ~(values > 0)
    if is_bad.any():
        raise DataQualityError(
            f"spend='observed' needs a positive 'monetary_value', and {int(is_bad.sum()):,} of "
            f"{len(values):,} customers have none (e.g. customer "
            f"{_first(data.index, is_bad)!r}; customers without repeat purchases have 0). "
            "Use spend=GammaGamma().fit(summary), which shrinks towards the population mean"
        )
    return values


def _fixed_spend(spend: Spend, data: pd.DataFrame, labels: pd.Series | None) -> FloatArray:
    """The spend per purchase (or payment) where no Gamma-Gamma model gives it; NaN elsewhere."""
    if isinstance(spend, GammaGamma) or _is_spend_models(spend):
        return np.full(len(data), np.nan)
    if isinstance(spend, str):
        if spend != "observed":
            raise SchemaError(
                f"spend={spend!r}: use 'observed', a GammaGamma, a number or a Series"
            )
        return _observed_spend(data)
    found = _amount(spend, "spend", data.index, labels)  # type: ignore[arg-type]
    assert found is not None  # spend is always given
    _check_range(found, "spend", data.index, upper=math.inf)
    return found


# --- the recipe of a valuation -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Block:
    """Customers valued with one purchase model and one spend model (or a fixed spend)."""

    purchases: Model
    spend: GammaGamma | None
    rows: IntpArray


@dataclass(frozen=True, slots=True, eq=False)
class _Inputs:
    """The valuation's inputs as given: new customers and future cohorts reuse them."""

    purchases: PurchaseModels
    spend: Spend
    margin: Amount
    cost_to_serve: Amount | None
    marketing_cost: Amount | None


@dataclass(frozen=True, slots=True, eq=False)
class _Recipe:
    """Everything a valuation needs to be recomputed at another horizon or other parameters."""

    data: pd.DataFrame
    blocks: tuple[_Block, ...]
    margin: FloatArray
    fixed_spend: FloatArray  # NaN where a Gamma-Gamma model gives the spend
    costs: _Costs
    annual_rate: FloatArray
    period: Duration
    segment: pd.Series | None
    rates: DiscountRates
    inputs: _Inputs


def _model_map(value: PurchaseModels) -> Mapping[str, Model] | None:
    """The ``{label: model}`` of per-segment models (or of a per-cohort contractual fit)."""
    if isinstance(value, ContractualModel) and getattr(value, "cohorts_", None):
        return value.cohorts_
    return value if isinstance(value, Mapping) else None


def _pick(mapping: Mapping[str, Model], label: object, name: str) -> Model:
    if label not in mapping:
        raise SchemaError(
            f"{name} has no model for segment {label!r}; it has models for "
            f"{sorted(map(str, mapping))}. Fit one for that segment or give every customer a "
            "segment that has one"
        )
    return mapping[label]  # type: ignore[index]


def _blocks(
    n_rows: int, purchases: PurchaseModels, spend: Spend | None, model_by: pd.Series | None
) -> tuple[_Block, ...]:
    """Split the customers by (purchase model, spend model)."""
    purchase_map = _model_map(purchases)
    spend_map: Mapping[str, GammaGamma] | None = spend if _is_spend_models(spend) else None  # type: ignore[assignment]
    single_spend = spend if isinstance(spend, GammaGamma) else None
    if purchase_map is None and spend_map is None:
        assert isinstance(purchases, Model)  # not a mapping
        return (_Block(purchases, single_spend, np.arange(n_rows, dtype=np.intp)),)
    if model_by is None:
        raise SchemaError(
            "models given per segment need segment=... (or model_by=...) to say "
            "which customer uses which model"
        )
    codes, uniques = pd.factorize(model_by)
    blocks = []
    for code, label in enumerate(uniques):
        chosen = purchases if purchase_map is None else _pick(purchase_map, label, "purchases")
        spent = single_spend if spend_map is None else _pick(spend_map, label, "spend")
        blocks.append(_Block(chosen, spent, np.flatnonzero(codes == code).astype(np.intp)))  # type: ignore[arg-type]
    return tuple(blocks)


def _default_period(models: Sequence[Model]) -> Duration:
    """One opportunity or contract period for discrete-time models, else a month."""
    for model in models:
        if _kind(model) in ("bgbb", "contract"):
            return Duration(1.0, _unit(model))
    return Duration(1.0, TimeUnit.MONTH)


def _check_contract_spend(blocks: Sequence[_Block]) -> None:
    for block in blocks:
        if block.spend is not None and _kind(block.purchases) == "contract":
            raise SchemaError(
                "a contractual model needs the payment per period as spend (a "
                "number or a Series), not a GammaGamma"
            )


def _recipe(
    data: pd.DataFrame,
    inputs: _Inputs,
    rates: DiscountRates,
    costs: Mapping[str, object],
    segment: pd.Series | None,
    model_by: pd.Series | None,
    period: Duration | str | None,
) -> _Recipe:
    """Check every input of :func:`clv` and line it up with ``data``'s customers."""
    if not isinstance(data, pd.DataFrame) or data.empty:
        raise SchemaError("clv needs a non-empty customer summary DataFrame indexed by customer id")
    if not data.index.is_unique:
        raise DataQualityError(
            f"the data has {int(data.index.duplicated().sum()):,} repeated "
            "customer ids; give one row per customer"
        )
    index = data.index
    given = None if segment is None else _labels(segment, index, "segment")
    # coded once: every per-segment input below looks its segments up by these codes
    labels = None if given is None else given.astype("category")
    chooser = labels if model_by is None else _labels(model_by, index, "model_by")
    blocks = _blocks(len(data), inputs.purchases, inputs.spend, chooser)
    _check_contract_spend(blocks)
    found_costs = _costs(costs, costs["margin_net_of"], index, labels)  # type: ignore[arg-type]
    return _Recipe(
        data=data,
        blocks=blocks,
        margin=_margin(inputs.margin, index, labels),
        fixed_spend=_fixed_spend(inputs.spend, data, labels),
        costs=found_costs,
        annual_rate=rates.annual_rates(index, labels),
        period=(
            _default_period([b.purchases for b in blocks])
            if period is None
            else _horizon(period, "period")
        ),
        segment=given,
        rates=rates,
        inputs=inputs,
    )


# --- evaluation ----------------------------------------------------------------------------------


def _factors(annual: FloatArray, years: FloatArray) -> FloatArray:
    """Discount factors ``(1 + d) ** -t``, one row per rate, one column per time in years."""
    return np.asarray(np.exp(-np.log1p(annual)[:, None] * years[None, :]), dtype=np.float64)


def _discounted(
    table: FloatArray, factors: FloatArray, group: IntpArray, rate: IntpArray
) -> FloatArray:
    """``sum_k table[group_i, k] * factors[rate_i, k]`` for every row ``i``.

    One matrix product when (table rows x rates) is small, else once per distinct (group, rate)
    pair, in chunks, so that a rate per customer does not build a customers x periods array.
    """
    n_groups, n_rates = table.shape[0], factors.shape[0]
    if n_groups * n_rates <= _DENSE_CELLS:
        return np.asarray((table @ factors.T)[group, rate], dtype=np.float64)
    pairs, inverse = np.unique(group.astype(np.int64) * n_rates + rate, return_inverse=True)
    rows, columns = pairs // n_rates, pairs % n_rates
    found = np.empty(len(pairs))
    step = max(1, _CHUNK_CELLS // max(1, table.shape[1]))
    for start in range(0, len(pairs), step):
        part = slice(start, start + step)
        found[part] = np.einsum("ij,ij->i", table[rows[part]], factors[columns[part]])
    return np.asarray(found[inverse], dtype=np.float64)


def _cash_years(flows: _Flows, grid: _Grid) -> FloatArray:
    """When each period's cash is discounted: its start for contract payments, else its end."""
    return grid.starts if flows.pays_at_start else grid.ends


@dataclass(frozen=True, slots=True)
class _Totals:
    """Per row: expected purchases and periods on the books, undiscounted and discounted."""

    purchases: FloatArray
    alive: FloatArray
    discounted_purchases: FloatArray
    discounted_alive: FloatArray


def _totals(flows: _Flows, grid: _Grid, annual: FloatArray) -> _Totals:
    rates, rate = np.unique(annual, return_inverse=True)
    factors = _factors(rates, _cash_years(flows, grid))
    on_books = flows.alive * grid.shares[None, :]
    state, code = flows.state, rate.astype(np.intp)
    return _Totals(
        state.purchase_scale * flows.purchases.sum(axis=1)[state.group],
        state.alive_scale * on_books.sum(axis=1)[state.group],
        state.purchase_scale * _discounted(flows.purchases, factors, state.group, code),
        state.alive_scale * _discounted(on_books, factors, state.group, code),
    )


@dataclass(frozen=True, slots=True)
class _BlockState:
    """A block's flows at the valuation's horizon, kept for the per-period report."""

    rows: IntpArray
    flows: _Flows
    spend: FloatArray


def _rows_of(data: pd.DataFrame, rows: IntpArray) -> pd.DataFrame:
    return data if len(rows) == len(data) else data.iloc[rows]


def _evaluate(recipe: _Recipe, grid: _Grid) -> tuple[dict[str, FloatArray], list[_BlockState]]:
    names = ("purchases", "alive", "discounted_purchases", "discounted_alive")
    found = {name: np.zeros(len(recipe.data)) for name in (*names, "spend")}
    states = []
    for block in recipe.blocks:
        frame = _rows_of(recipe.data, block.rows)
        flows = _flows(block.purchases, _state(block.purchases, frame), grid)
        totals = _totals(flows, grid, recipe.annual_rate[block.rows])
        spend = (
            recipe.fixed_spend[block.rows]
            if block.spend is None
            else block.spend.conditional_expected_spend(frame).to_numpy(dtype=np.float64)
        )
        for name in names:
            found[name][block.rows] = getattr(totals, name)
        found["spend"][block.rows] = spend
        states.append(_BlockState(block.rows, flows, spend))
    return found, states


def _components(recipe: _Recipe, totals: Mapping[str, FloatArray], grid: _Grid) -> pd.DataFrame:
    """The per-customer table, written column by column into one block (no copies of it)."""
    margin, spend, costs = recipe.margin, totals["spend"], recipe.costs
    with_acquisition = costs.acquisition is not None
    names = [
        *_COMPONENTS,
        *(("acquisition_cost", "clv_net_of_acquisition") if with_acquisition else ()),
    ]
    block = np.empty((len(recipe.data), len(names)), order="F")
    column = {name: block[:, i] for i, name in enumerate(names)}
    copies = {
        "expected_purchases": totals["purchases"],
        "expected_spend": spend,
        "margin_rate": margin,
        "alive_periods": totals["alive"],
        "discount_rate": recipe.annual_rate,
    }
    for name, values in copies.items():
        column[name][:] = values
    products = {
        "revenue": (spend, totals["purchases"]),
        "cost_to_serve": (costs.serve, totals["alive"]),
        "marketing_cost": (costs.marketing, totals["alive"]),
        "discounted_revenue": (spend, totals["discounted_purchases"]),
        "discounted_cost_to_serve": (costs.serve, totals["discounted_alive"]),
        "discounted_marketing_cost": (costs.marketing, totals["discounted_alive"]),
    }
    for name, (first, second) in products.items():
        np.multiply(first, second, out=column[name])
    np.multiply(margin, column["revenue"], out=column["gross_margin"])
    np.multiply(margin, column["discounted_revenue"], out=column["discounted_gross_margin"])
    np.expm1(
        np.log1p(recipe.annual_rate) * grid.period.to(TimeUnit.YEAR),
        out=column["discount_rate_per_period"],
    )
    for net, gross, serve, marketing in (
        ("net_margin", "gross_margin", "cost_to_serve", "marketing_cost"),
        ("clv", "discounted_gross_margin", "discounted_cost_to_serve", "discounted_marketing_cost"),
    ):
        np.subtract(column[gross], column[serve], out=column[net])
        column[net] -= column[marketing]
    if costs.acquisition is not None:
        column["acquisition_cost"][:] = costs.acquisition
        np.subtract(column["clv"], costs.acquisition, out=column["clv_net_of_acquisition"])
    table = pd.DataFrame(block, index=recipe.data.index, columns=names, copy=False)
    if recipe.segment is not None:
        table.insert(0, "segment", recipe.segment.array)
    return table


@dataclass(frozen=True, slots=True, eq=False)
class CustomerValue:
    """The value of each customer over a horizon, with every component (:func:`clv`).

    Attributes
    ----------
    customers
        One row per customer (indexed like the data): ``expected_purchases`` and
        ``expected_spend`` over the horizon, ``revenue = expected_purchases * expected_spend``,
        ``margin_rate``, ``gross_margin = revenue * margin_rate``, ``alive_periods`` (expected
        periods on the books), ``cost_to_serve`` and ``marketing_cost`` (cost per period times
        ``alive_periods``), ``net_margin``, the ``discount_rate`` used (effective annual) and
        ``discount_rate_per_period``, the discounted revenue, gross margin and costs, and
        ``clv = discounted_gross_margin - discounted_cost_to_serve - discounted_marketing_cost``;
        with an acquisition cost, ``acquisition_cost`` and ``clv_net_of_acquisition``; with
        segments, ``segment``.
    horizon, period
        The valuation horizon and the length of a period.
    margin_net_of
        The cost items the margin already nets (their columns are 0: they are in the margin).
    """

    customers: pd.DataFrame
    horizon: Duration
    period: Duration
    margin_net_of: frozenset[str]
    _recipe: _Recipe = field(repr=False)
    _states: tuple[_BlockState, ...] = field(repr=False)

    def periods(self, by: pd.Series | str | None = None) -> pd.DataFrame:
        """Totals per period (and group): purchases, revenue, margin, costs, net cash flow.

        Parameters
        ----------
        by
            A column of :attr:`customers` (such as ``"segment"``) or a Series per customer;
            ``None`` for the whole base.

        Returns
        -------
        pandas.DataFrame
            Indexed by (group, period number): ``end_years`` (the period's end, in years from
            the valuation date), ``customers``, ``expected_purchases``, ``revenue``,
            ``gross_margin``, ``cost_to_serve``, ``marketing_cost``, ``net_cash_flow`` and
            ``discounted_net_cash_flow``.
        """
        codes, labels = _group_codes(self, by)
        grid = _grid(self.horizon, self.period)
        sums = {name: np.zeros((len(labels), len(grid.ends))) for name in _PERIOD_SUMS}
        for state in self._states:
            _add_period_sums(sums, state, self._recipe, grid, codes[state.rows])
        n_periods = len(grid.ends)
        index = pd.MultiIndex.from_product(
            [labels, np.arange(1, n_periods + 1)], names=["group", "period"]
        )
        table = pd.DataFrame(
            {
                "end_years": np.tile(grid.ends, len(labels)),
                "customers": np.repeat(np.bincount(codes, minlength=len(labels)), n_periods),
                **{name: sums[name].ravel() for name in _PERIOD_SUMS[:-1]},
            },
            index=index,
        )
        table["net_cash_flow"] = (
            table["gross_margin"] - table["cost_to_serve"] - table["marketing_cost"]
        )
        table["discounted_net_cash_flow"] = sums["discounted_net_cash_flow"].ravel()
        return table


_PERIOD_SUMS = (
    "expected_purchases",
    "revenue",
    "gross_margin",
    "cost_to_serve",
    "marketing_cost",
    "discounted_net_cash_flow",
)


def _group_codes(
    values: CustomerValue, by: pd.Series | str | None
) -> tuple[IntpArray, list[object]]:
    index = values.customers.index
    if by is None:
        return np.zeros(len(index), dtype=np.intp), ["all"]
    if isinstance(by, str):
        if by not in values.customers:
            raise SchemaError(
                f"by={by!r} is not a column of the values; they have "
                f"{list(values.customers.columns)}. Pass a Series per customer"
            )
        labels = values.customers[by]
    else:
        labels = _labels(by, index, "by")
    codes, uniques = pd.factorize(labels, sort=True)
    return codes.astype(np.intp), list(uniques)


def _add_period_sums(
    sums: dict[str, FloatArray],
    block: _BlockState,
    recipe: _Recipe,
    grid: _Grid,
    groups: IntpArray,
) -> None:
    """Add a block's per-period flows into ``sums`` (groups x periods), by (key, rate, group)."""
    flows, rows, state = block.flows, block.rows, block.flows.state
    rates, rate = np.unique(recipe.annual_rate[rows], return_inverse=True)
    n_rates, n_groups = len(rates), sums["revenue"].shape[0]
    key = (state.group.astype(np.int64) * n_rates + rate) * n_groups + groups
    cells, cell_of = np.unique(key, return_inverse=True)
    bought, alive = state.purchase_scale, state.alive_scale
    weights = {
        "expected_purchases": bought,
        "revenue": bought * block.spend,
        "gross_margin": bought * block.spend * recipe.margin[rows],
        "cost_to_serve": alive * recipe.costs.serve[rows],
        "marketing_cost": alive * recipe.costs.marketing[rows],
    }
    totals = {
        name: np.bincount(cell_of, weights=w, minlength=len(cells)) for name, w in weights.items()
    }
    table_row, cell_rate, cell_group = (
        cells // (n_rates * n_groups),
        (cells // n_groups) % n_rates,
        cells % n_groups,
    )
    factors = _factors(rates, _cash_years(flows, grid))[cell_rate]
    purchases, on_books = flows.purchases[table_row], (flows.alive * grid.shares)[table_row]
    net = np.zeros_like(purchases)
    for name, total in totals.items():
        is_purchase = name in ("expected_purchases", "revenue", "gross_margin")
        cash = total[:, None] * (purchases if is_purchase else on_books)
        np.add.at(sums[name], cell_group, cash)
        net += cash if name == "gross_margin" else -cash if not is_purchase else 0.0
    np.add.at(sums["discounted_net_cash_flow"], cell_group, net * factors)


def clv(
    data: pd.DataFrame,
    *,
    purchases: PurchaseModels,
    spend: Spend,
    margin: Amount,
    horizon: Duration | str,
    rates: DiscountRates | Rate,
    cost_to_serve: Amount | None = None,
    marketing_cost: Amount | None = None,
    acquisition_cost: Amount | None = None,
    margin_net_of: Collection[CostItem] = (),
    segment: pd.Series | None = None,
    model_by: pd.Series | None = None,
    period: Duration | str | None = None,
) -> CustomerValue:
    """Each customer's discounted net margin over ``horizon``, period by period.

    Parameters
    ----------
    data
        The customer summary the purchase model reads, indexed by customer id: ``frequency``,
        ``recency``, ``T`` (BG/NBD, MBG/NBD, Pareto/NBD), ``frequency``, ``recency``,
        ``n_periods`` (BG/BB), or ``duration`` and ``is_censored`` (sBG, BdW); and
        ``monetary_value`` for spend from a Gamma-Gamma model or ``"observed"``.
    purchases
        A fitted purchase model, or ``{segment: model}`` (chosen by ``model_by``, which defaults
        to ``segment``). A contractual model fitted per cohort (``fit_survivors(...,
        shared=False)``) uses each cohort's model.
    spend
        Expected spend per purchase: a fitted :class:`~cvalue.models.GammaGamma` (or
        ``{segment: GammaGamma}``), ``"observed"`` (``monetary_value``), a number, a Series per
        customer, or ``{segment: amount}``. For a contractual model, the payment per period.
    margin
        Gross product margin as a share of revenue (0.30 is 30 %): a number, a Series per
        customer (:func:`margin_by_category` gives one from margins by product category) or
        ``{segment: margin}``.
    horizon
        How far ahead, with its unit: ``"3y"``, ``"60M"``, ``Duration(156, "week")``.
    rates
        The :class:`DiscountRates` (or a :class:`~cvalue.units.Rate`: one annual rate).
    cost_to_serve, marketing_cost
        Cost per period for each customer on the books: a number, a Series per customer or
        ``{segment: amount}``. Each must be passed (0.0 when there is none) or declared in
        ``margin_net_of``.
    acquisition_cost
        An optional one-off cost per customer, reported with ``clv_net_of_acquisition``.
    margin_net_of
        The cost items the margin already nets (``"cost_to_serve"``, ``"marketing_cost"``,
        ``"acquisition_cost"``): passing such an item as well is an error.
    segment
        Each customer's segment (a Series by customer id), for per-segment rates, costs, margins
        or models.
    model_by
        Labels choosing each customer's model from ``{label: model}``, when they are not the
        segments (cohorts, for instance).
    period
        The length of a period: a month by default for continuous-time models, one opportunity
        (BG/BB) or contract period (sBG, BdW) for discrete-time ones.

    Returns
    -------
    CustomerValue
        ``.customers``: one row per customer with every component; ``.periods(by)``: the totals
        per period.

    Raises
    ------
    SchemaError
        For a horizon without a unit, an unknown segment, a cost item both passed and declared
        in the margin, a missing cost item, or a margin outside [0, 1].
    DataQualityError
        For rows that break a rule (a missing segment, a negative cost, a margin of 1.3).

    Examples
    --------
    >>> import cvalue as cv
    >>> from cvalue.datasets import load_cdnow
    >>> cbs = load_cdnow().summary
    >>> bg = cv.BetaGeo().fit(cbs, unit="week")
    >>> value = clv(cbs, purchases=bg, spend=cv.GammaGamma().fit(cbs), margin=0.3,
    ...             horizon="1y", rates=DiscountRates.single(0.10), cost_to_serve=0.5,
    ...             marketing_cost=0.0)
    >>> columns = ["revenue", "gross_margin", "alive_periods", "cost_to_serve", "clv"]
    >>> value.customers[columns].head(2).round(2)
                 revenue  gross_margin  alive_periods  cost_to_serve   clv
    customer_id
    1              38.54         11.56           7.49           3.74  7.46
    2               4.93          1.48           2.29           1.14  0.32
    """
    found = _horizon(horizon)
    inputs = _Inputs(purchases, spend, margin, cost_to_serve, marketing_cost)
    costs = {
        "cost_to_serve": cost_to_serve,
        "marketing_cost": marketing_cost,
        "acquisition_cost": acquisition_cost,
        "margin_net_of": margin_net_of,
    }
    recipe = _recipe(data, inputs, _as_rates(rates), costs, segment, model_by, period)
    grid = _grid(found, recipe.period)
    totals, states = _evaluate(recipe, grid)
    return CustomerValue(
        _components(recipe, totals, grid),
        found,
        recipe.period,
        recipe.costs.net_of,
        recipe,
        tuple(states),
    )


# --- P(alive) ahead and churn hazard -------------------------------------------------------------


def alive_probability(
    data: pd.DataFrame,
    *,
    purchases: PurchaseModels,
    after: Duration | str,
    model_by: pd.Series | None = None,
) -> pd.Series:
    """P(the customer is alive ``after`` from now | their history), per customer.

    The probabilities behind the cost to serve (module docstring; one formula per model). For
    the BG/BB, ``after`` counts whole opportunities after the last one observed (``n``), and
    for contracts whole periods.

    Examples
    --------
    >>> import cvalue as cv
    >>> model = cv.ParetoNBD.from_params(0.55, 10.6, 0.61, 11.7, unit="week")
    >>> history = pd.DataFrame({"frequency": [2], "recency": [30.0], "T": [39.0]})
    >>> now = float(model.p_alive(history).iloc[0])
    >>> later = float(alive_probability(history, purchases=model, after="52w").iloc[0])
    >>> round(later / now, 6) == round(((11.7 + 39) / (11.7 + 39 + 52)) ** 0.61, 6)
    True
    """
    span = _horizon(after, "after")
    chooser = None if model_by is None else _labels(model_by, data.index, "model_by")
    found = np.zeros(len(data))
    for block in _blocks(len(data), purchases, None, chooser):
        model = block.purchases
        ahead = span.to(_unit(model))
        if _kind(model) in ("bgbb", "contract"):
            if not _is_whole(ahead):
                raise SchemaError(
                    f"a {type(model).__name__} counts whole periods; {span} is "
                    f"{ahead:g} {_unit(model).value}s"
                )
            ahead = float(round(ahead))
        state = _state(model, _rows_of(data, block.rows))
        alive = _survival(model, state, np.array([ahead]))[:, 0]
        found[block.rows] = state.alive_scale * alive[state.group]
    return pd.Series(found, index=data.index, name="p_alive")


def churn_hazard(
    data: pd.DataFrame,
    *,
    purchases: PurchaseModels,
    segment: pd.Series,
    period: Duration | str = "1y",
    model_by: pd.Series | None = None,
) -> pd.Series:
    """The share of each segment's alive customers expected to be lost within ``period``.

    ``1 - sum_i P(alive after period | history_i) / sum_i P(alive now | history_i)`` over the
    segment's customers: a risk measure for :meth:`DiscountRates.risk_adjusted`.
    """
    labels = _labels(segment, data.index, "segment")
    chooser = labels if model_by is None else model_by
    now = alive_probability(
        data, purchases=purchases, after=Duration(0.0, TimeUnit.DAY), model_by=chooser
    )
    later = alive_probability(data, purchases=purchases, after=period, model_by=chooser)
    totals = (
        pd.DataFrame({"now": now.to_numpy(), "later": later.to_numpy()})
        .groupby(labels.to_numpy())
        .sum()
    )
    return (1.0 - totals["later"] / totals["now"]).rename("churn_hazard")


# --- new customers -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _NewInputs:
    """What one new customer of a segment brings and costs (costs per period)."""

    spend: float
    margin: float
    cost: float
    acquisition: float
    annual_rate: float


def _new_value(model: Model, grid: _Grid, inputs: _NewInputs) -> dict[str, float]:
    """Components of one new customer's value over ``grid`` (first purchase at acquisition)."""
    flows = _flows(model, _new_state(model), grid)
    totals = _totals(flows, grid, np.full(1, inputs.annual_rate))
    first = 0.0 if _kind(model) == "contract" else 1.0  # the acquisition purchase itself
    purchases = first + float(totals.purchases[0])
    discounted = first + float(totals.discounted_purchases[0])
    alive, discounted_alive = float(totals.alive[0]), float(totals.discounted_alive[0])
    value = inputs.margin * inputs.spend * discounted - inputs.cost * discounted_alive
    return {
        "expected_purchases": purchases,
        "expected_spend": inputs.spend,
        "revenue": inputs.spend * purchases,
        "margin_rate": inputs.margin,
        "gross_margin": inputs.margin * inputs.spend * purchases,
        "alive_periods": alive,
        "costs": inputs.cost * alive,
        "discount_rate": inputs.annual_rate,
        "discounted_gross_margin": inputs.margin * inputs.spend * discounted,
        "discounted_costs": inputs.cost * discounted_alive,
        "clv": value,
        "acquisition_cost": inputs.acquisition,
        "value_net_of_acquisition": value - inputs.acquisition,
    }


def _scalar_for(value: object, label: str | None, name: str) -> float:
    """A number for one segment, from a number or ``{segment: number}``."""
    if isinstance(value, Mapping):
        if label not in value:
            raise SchemaError(
                f"{name} has no value for segment {label!r}; it covers {sorted(map(str, value))}"
            )
        value = value[label]
    if isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool):
        return float(value)
    raise SchemaError(
        f"{name} for new customers must be a number or {{segment: number}}, got "
        f"{type(value).__name__}; a Series per customer says nothing about customers to come"
    )


def _new_spend(spend: object, label: str | None) -> float:
    chosen = spend.get(label) if isinstance(spend, Mapping) else spend
    if isinstance(chosen, GammaGamma):
        return chosen.expected_spend_new()
    if isinstance(spend, str):
        raise SchemaError(
            "spend='observed' has no value for new customers (they have no "
            "history); give a number or a GammaGamma"
        )
    return _scalar_for(spend, label, "spend")


def _new_inputs(
    label: str | None,
    spend: object,
    margin: object,
    costs: Sequence[tuple[object, str]],
    acquisition_cost: object,
    rates: DiscountRates,
) -> _NewInputs:
    share = _scalar_for(margin, label, "margin")
    if not 0.0 <= share <= 1.0:
        raise SchemaError(f"margin must be between 0 and 1 (a share of revenue), got {share!r}")
    cost = sum(_scalar_for(item, label, name) for item, name in costs if item is not None)
    acquisition = _scalar_for(acquisition_cost, label, "acquisition_cost")
    if cost < 0 or acquisition < 0:
        raise SchemaError(
            f"costs are amounts >= 0; got {cost:g} per period and an acquisition "
            f"cost of {acquisition:g}"
        )
    return _NewInputs(
        _new_spend(spend, label), share, float(cost), acquisition, rates.annual_rate(label)
    )


def new_customer_value(
    *,
    purchases: PurchaseModels,
    spend: Spend,
    margin: float | Mapping[str, float],
    horizon: Duration | str,
    rates: DiscountRates | Rate,
    acquisition_cost: float | Mapping[str, float],
    cost_to_serve: float | Mapping[str, float] | None = None,
    marketing_cost: float | Mapping[str, float] | None = None,
    margin_net_of: Collection[CostItem] = (),
    period: Duration | str | None = None,
) -> pd.DataFrame:
    """The value of one new customer (per segment for per-segment models), net of acquisition cost.

    The first purchase at acquisition, then the model's expected purchases of a customer with
    no history (Fader, Hardie & Lee 2005 eq. 7, per period, for the BG/NBD; Fader, Hardie & Lee
    2005b eq. 27 for the Pareto/NBD; Fader, Hardie & Shang 2010 eq. 8 for the BG/BB); for
    contracts the payments ``S(t - 1)``, so that over a long horizon at margin 1 the value is
    Fader & Hardie's (2010) DEL. ``acquisition_cost`` is required: a new customer's value is
    always net of what it costs to acquire.

    Returns
    -------
    pandas.DataFrame
        One row per segment (``"all"`` for one model): expected purchases, spend, revenue,
        margin, periods on the books, costs, the rate, discounted margin and costs, ``clv``,
        ``acquisition_cost`` and ``value_net_of_acquisition``.
    """
    found = _horizon(horizon)
    if "acquisition_cost" in margin_net_of:
        raise SchemaError(
            "a new customer's value is net of acquisition cost: pass "
            "acquisition_cost and do not declare it in margin_net_of"
        )
    _check_cost_items(
        {
            "cost_to_serve": cost_to_serve,
            "marketing_cost": marketing_cost,
            "acquisition_cost": None,
        },
        frozenset(margin_net_of),
    )
    mapping = _model_map(purchases)
    models = {"all": purchases} if mapping is None else dict(mapping)
    rows = {}
    for label, model in models.items():
        key = None if mapping is None else str(label)
        inputs = _new_inputs(
            key,
            spend,
            margin,
            ((cost_to_serve, "cost_to_serve"), (marketing_cost, "marketing_cost")),
            acquisition_cost,
            _as_rates(rates),
        )
        step = _default_period([model]) if period is None else _horizon(period, "period")  # type: ignore[list-item]
        rows[label] = _new_value(model, _grid(found, step), inputs)  # type: ignore[arg-type]
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("segment")


# --- customer equity -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FutureCohorts:
    """Customers still to be acquired, added to customer equity.

    Parameters
    ----------
    customers_per_period
        New customers acquired at the start of each period: a number, or ``{segment: number}``
        (one stream per segment, valued with that segment's model and rate).
    acquisition_cost
        The cost of acquiring one new customer (a number or per segment); always subtracted.
    margin, spend, cost_to_serve, marketing_cost
        What a new customer brings and costs per period; by default the valuation's own inputs
        when they are numbers or per segment (a Series per customer says nothing about
        customers to come).
    """

    customers_per_period: float | Mapping[str, float]
    acquisition_cost: float | Mapping[str, float]
    margin: float | Mapping[str, float] | None = None
    spend: float | Mapping[str, float] | GammaGamma | None = None
    cost_to_serve: float | Mapping[str, float] | None = None
    marketing_cost: float | Mapping[str, float] | None = None


@dataclass(frozen=True, slots=True)
class CustomerEquity:
    """Customer equity at several horizons, with intervals from parameter uncertainty.

    Attributes
    ----------
    by_group
        Indexed by (group, horizon): ``customers``, ``equity`` (the sum of their CLV),
        ``std_error``, ``ci_lower``, ``ci_upper``.
    future
        Future cohorts, indexed by (segment, horizon): ``new_customers`` acquired within the
        horizon and ``equity`` (their discounted value net of acquisition cost) with its
        interval; ``None`` without future cohorts.
    total
        Indexed by horizon: ``existing``, ``future`` and ``equity`` (their sum) with its interval.
    level
        The confidence level of the intervals (``None``: no intervals).
    method
        ``"delta"`` or ``"draws"``.
    """

    by_group: pd.DataFrame
    future: pd.DataFrame | None
    total: pd.DataFrame
    level: float | None
    method: Literal["delta", "draws"]


@dataclass(frozen=True, slots=True, eq=False)
class _Cells:
    """A block's customers compressed to distinct (pattern, rate, group) cells.

    A cell's value is ``(u Σ m + v Σ m z) · purchases - Σ cost · on_books``, with ``u, v`` the
    Gamma-Gamma spend terms (:func:`_spend_terms`), or ``u = 0, v = 1`` and
    ``Σ m z = Σ margin · spend`` for a fixed spend.
    """

    patterns: pd.DataFrame
    pattern: IntpArray
    rate: IntpArray
    group: IntpArray
    margin: FloatArray
    margin_spend: FloatArray
    cost: FloatArray


def _cells(block: _Block, recipe: _Recipe, groups: IntpArray, rate_codes: IntpArray) -> _Cells:
    frame = _rows_of(recipe.data, block.rows)
    patterns, _, inverse = compress(frame, _MODEL_COLUMNS[_kind(block.purchases)])
    n_rates, n_groups = int(rate_codes.max()) + 1, int(groups.max()) + 1
    key = (inverse.astype(np.int64) * n_rates + rate_codes[block.rows]) * n_groups
    cells, cell_of = np.unique(key + groups[block.rows], return_inverse=True)
    margin = recipe.margin[block.rows]
    if block.spend is None:
        spent = margin * recipe.fixed_spend[block.rows]
    else:
        repeat = np.where(_column(frame, "frequency") > 0, _column(frame, "monetary_value"), 0.0)
        spent = margin * repeat
    cost = recipe.costs.serve[block.rows] + recipe.costs.marketing[block.rows]

    def total(values: FloatArray) -> FloatArray:
        return np.bincount(cell_of, weights=values, minlength=len(cells)).astype(np.float64)

    return _Cells(
        patterns,
        (cells // (n_rates * n_groups)).astype(np.intp),
        ((cells // n_groups) % n_rates).astype(np.intp),
        (cells % n_groups).astype(np.intp),
        total(margin) if block.spend is not None else np.zeros(len(cells)),
        total(spent),
        total(cost),
    )


def _prefix_lengths(grids: Sequence[_Grid]) -> tuple[_Grid, list[int]] | None:
    """The longest grid and each grid's number of periods, when every grid is a prefix of it."""
    longest = max(grids, key=lambda grid: len(grid.ends))
    lengths = [len(grid.ends) for grid in grids]
    for grid, n in zip(grids, lengths, strict=True):
        if not (
            np.array_equal(grid.ends, longest.ends[:n])
            and np.array_equal(grid.shares, longest.shares[:n])
        ):
            return None
    return longest, lengths


@dataclass(frozen=True, slots=True)
class _CellFlows:
    """Discounted purchases and periods on the books of every cell, one row per horizon."""

    bought: FloatArray
    on_books: FloatArray


def _cell_flows(
    cells: _Cells, purchases: Model, grids: Sequence[_Grid], rates: FloatArray
) -> _CellFlows:
    """The cells' discounted flows at every horizon, from one table when the grids nest."""
    state = _state(purchases, cells.patterns)
    group = state.group[cells.pattern]
    nested = _prefix_lengths(grids)
    plans = (
        [(grid, [len(grid.ends)]) for grid in grids] if nested is None else [(nested[0], nested[1])]
    )
    bought, on_books = [], []
    for grid, lengths in plans:
        flows = _flows(purchases, state, grid)
        factors = _factors(rates, _cash_years(flows, grid))
        alive = flows.alive * grid.shares[None, :]
        for n in lengths:
            bought.append(
                state.purchase_scale[cells.pattern]
                * _discounted(flows.purchases[:, :n], factors[:, :n], group, cells.rate)
            )
            on_books.append(
                state.alive_scale[cells.pattern]
                * _discounted(alive[:, :n], factors[:, :n], group, cells.rate)
            )
    return _CellFlows(np.stack(bought), np.stack(on_books))


def _cells_value(
    cells: _Cells, flows: _CellFlows, spend: GammaGamma | None, n_groups: int
) -> FloatArray:
    """The discounted value of each group's customers in a block's cells (groups x horizons)."""
    if spend is None:
        spent = cells.margin_spend
    else:
        u, v = _spend_terms(_params(spend), _column(cells.patterns, "frequency")[cells.pattern])
        spent = u * cells.margin + v * cells.margin_spend
    value = spent[None, :] * flows.bought - cells.cost[None, :] * flows.on_books
    return np.stack(
        [np.bincount(cells.group, weights=row, minlength=n_groups) for row in value], axis=1
    ).astype(np.float64)


def _with_params(model: Model, params: FloatArray) -> Model:
    """A copy of ``model`` with other parameters (through its JSON form: no pickle)."""
    saved = model.to_dict()
    saved["params"] = dict(zip(model.params_.index, params.tolist(), strict=True))
    return type(model).from_dict(saved)


@dataclass(frozen=True, slots=True)
class _Stream:
    """New customers of one segment, acquired at the start of every period."""

    label: str
    purchases: Model
    spend: GammaGamma | None
    inputs: _NewInputs
    per_period: float


@dataclass(frozen=True, slots=True, eq=False)
class _EquityProblem:
    """Customer equity as a function of every model's parameters.

    Each block's flows at the estimated parameters are kept, so that moving one model's
    parameters recomputes only the blocks that use it, and moving a spend model's parameters
    recomputes no purchase flows at all.
    """

    recipe: _Recipe
    cells: tuple[_Cells, ...]
    grids: tuple[_Grid, ...]
    rates: FloatArray
    n_groups: int
    streams: tuple[_Stream, ...]
    _cache: dict[int, _CellFlows] = field(default_factory=dict)

    @property
    def models(self) -> tuple[Model, ...]:
        """Every model whose parameters the equity depends on, once each."""
        found: dict[int, Model] = {}
        pairs = [(b.purchases, b.spend) for b in self.recipe.blocks] + [
            (s.purchases, s.spend) for s in self.streams
        ]
        for pair in pairs:
            for model in pair:
                if model is not None:
                    found.setdefault(id(model), model)
        return tuple(found.values())

    def _block_flows(self, index: int, purchases: Model) -> _CellFlows:
        block = self.recipe.blocks[index]
        if purchases is not block.purchases:
            return _cell_flows(self.cells[index], purchases, self.grids, self.rates)
        if index not in self._cache:
            self._cache[index] = _cell_flows(self.cells[index], purchases, self.grids, self.rates)
        return self._cache[index]

    def evaluate(self, replaced: Mapping[int, Model]) -> FloatArray:
        """Equity per (group, horizon), then per (future segment, horizon)."""
        existing = np.zeros((self.n_groups, len(self.grids)))
        for index, block in enumerate(self.recipe.blocks):
            purchases = replaced.get(id(block.purchases), block.purchases)
            flows = self._block_flows(index, purchases)
            spend = _replaced_spend(block.spend, replaced)
            existing += _cells_value(self.cells[index], flows, spend, self.n_groups)
        future = [
            _future_value(stream, grid, replaced) for stream in self.streams for grid in self.grids
        ]
        return np.concatenate([existing.ravel(), np.asarray(future, dtype=np.float64)])


def _replaced_spend(spend: GammaGamma | None, replaced: Mapping[int, Model]) -> GammaGamma | None:
    """The spend model, or its stand-in with other parameters."""
    if spend is None:
        return None
    found = replaced.get(id(spend), spend)
    assert isinstance(found, GammaGamma)  # a stand-in is a copy of the same class
    return found


def _future_value(stream: _Stream, grid: _Grid, replaced: Mapping[int, Model]) -> float:
    """New cohorts at the start of each period, each valued over the rest of the horizon.

    ``n sum_j (1 + d)^-t_(j-1) (V(K - j + 1) - CAC)``, with ``V(m)`` the discounted value of a new
    customer over its first ``m`` periods (its first purchase included).
    """
    model = replaced.get(id(stream.purchases), stream.purchases)
    inputs = stream.inputs
    spend = _replaced_spend(stream.spend, replaced)
    if spend is not None:
        inputs = _NewInputs(
            spend.expected_spend_new(),
            inputs.margin,
            inputs.cost,
            inputs.acquisition,
            inputs.annual_rate,
        )
    state = _new_state(model)
    flows = _flows(model, state, grid)
    rate = np.array([inputs.annual_rate])
    cash = (
        inputs.margin * inputs.spend * state.purchase_scale[0] * flows.purchases[0]
        - inputs.cost * state.alive_scale[0] * flows.alive[0] * grid.shares
    )
    first = 0.0 if state.kind == "contract" else inputs.margin * inputs.spend
    value_up_to = first + np.cumsum(cash * _factors(rate, _cash_years(flows, grid))[0])
    remaining = value_up_to[::-1]  # the cohort of period j has K - j + 1 periods left
    acquired = _factors(rate, grid.starts)[0]
    return float(stream.per_period * np.sum(acquired * (remaining - inputs.acquisition)))


def _default(given: object, fallback: object, name: str) -> object:
    if given is not None:
        return given
    if isinstance(fallback, pd.Series):
        raise SchemaError(
            f"the valuation's {name} is per customer; give FutureCohorts({name}=...) "
            "for the customers to come"
        )
    return fallback


def _streams(recipe: _Recipe, future: FutureCohorts, grids: Sequence[_Grid]) -> tuple[_Stream, ...]:
    """One stream of new customers per segment (or one for the base), with their inputs."""
    if any(len(g.shares) and not math.isclose(g.shares[-1], 1.0, rel_tol=_WHOLE) for g in grids):
        raise SchemaError("future cohorts need horizons that are whole numbers of periods")
    counts, given = future.customers_per_period, recipe.inputs
    labels = [str(k) for k in counts] if isinstance(counts, Mapping) else [None]
    mapping = _model_map(given.purchases)
    spend = future.spend if future.spend is not None else given.spend
    costs = (
        (_default(future.cost_to_serve, given.cost_to_serve, "cost_to_serve"), "cost_to_serve"),
        (_default(future.marketing_cost, given.marketing_cost, "marketing_cost"), "marketing_cost"),
    )
    margin = _default(future.margin, given.margin, "margin")
    streams = []
    for label in labels:
        if mapping is None:
            assert isinstance(given.purchases, Model)  # one model for every customer
            model = given.purchases
        elif label is None:
            raise SchemaError("the models are per segment: give customers_per_period per segment")
        else:
            model = _pick(mapping, label, "purchases")
        chosen = spend.get(str(label)) if isinstance(spend, Mapping) else spend
        inputs = _new_inputs(label, spend, margin, costs, future.acquisition_cost, recipe.rates)
        count = _scalar_for(counts, label, "customers_per_period")
        is_model = isinstance(chosen, GammaGamma)
        streams.append(
            _Stream(label or "all", model, chosen if is_model else None, inputs, count)  # type: ignore[arg-type]
        )
    return tuple(streams)


def _covariance(model: Model) -> FloatArray:
    covariance = np.asarray(model.covariance_.to_numpy(), dtype=np.float64)
    if not np.all(np.isfinite(covariance)):
        raise SchemaError(
            f"this {type(model).__name__} has no covariance of its estimates (built from given "
            "parameters?), so equity has no parameter-uncertainty interval; pass level=None"
        )
    return covariance


def _delta_errors(problem: _EquityProblem, combine: FloatArray) -> FloatArray:
    """Delta-method standard errors of ``combine @ outputs``: ``sqrt(diag(G J Σ Jᵀ Gᵀ))``.

    ``J`` by forward differences in each parameter of each model (relative step ``_STEP``,
    accurate to ~1e-6 relative, far below what a standard error needs); the models are
    estimated independently, so the variances add up over them.
    """
    base = combine @ problem.evaluate({})
    variance = np.zeros(combine.shape[0])
    for model in problem.models:
        params, covariance = _params(model), _covariance(model)
        jacobian = np.empty((combine.shape[0], len(params)))
        for j, value in enumerate(params):
            moved = params.copy()
            moved[j] = value * (1.0 + _STEP)
            changed = combine @ problem.evaluate({id(model): _with_params(model, moved)})
            jacobian[:, j] = (changed - base) / (moved[j] - value)
        variance += np.einsum("ij,jk,ik->i", jacobian, covariance, jacobian)
    return np.asarray(np.sqrt(np.maximum(variance, 0.0)), dtype=np.float64)


def _draws(problem: _EquityProblem, n_draws: int, rng: np.random.Generator) -> FloatArray:
    """Outputs at parameters drawn around each model's estimate (log-normal, ``cov / θθᵀ``)."""
    roots = []
    for model in problem.models:
        params = _params(model)
        values, vectors = np.linalg.eigh(_covariance(model) / np.outer(params, params))
        roots.append((model, params, vectors * np.sqrt(np.maximum(values, 0.0))))
    found = []
    for _ in range(n_draws):
        replaced = {
            id(model): _with_params(model, params * np.exp(root @ rng.standard_normal(len(params))))
            for model, params, root in roots
        }
        found.append(problem.evaluate(replaced))
    return np.asarray(found, dtype=np.float64)


def _combinations(n_groups: int, n_streams: int, n_horizons: int) -> FloatArray:
    """Rows giving every output, then per horizon the existing, future and total equity."""
    n_outputs = (n_groups + n_streams) * n_horizons
    existing = np.zeros((n_horizons, n_outputs))
    future = np.zeros((n_horizons, n_outputs))
    for h in range(n_horizons):
        existing[h, h : n_groups * n_horizons : n_horizons] = 1.0
        future[h, n_groups * n_horizons + h :: n_horizons] = 1.0
    return np.vstack([np.eye(n_outputs), existing, future, existing + future])


def _intervals(
    problem: _EquityProblem,
    combine: FloatArray,
    level: float | None,
    method: str,
    n_draws: int,
    rng: np.random.Generator | None,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Estimates, lower and upper bounds and standard errors of ``combine @ outputs``."""
    estimate = combine @ problem.evaluate({})
    if level is None:
        nan = np.full_like(estimate, np.nan)
        return estimate, nan, nan, nan
    if not 0.0 < level < 1.0:
        raise SchemaError(f"level must be between 0 and 1, got {level!r}")
    if method == "delta":
        spread = _delta_errors(problem, combine)
        z = float(stats.norm.ppf(0.5 + level / 2.0))
        return estimate, estimate - z * spread, estimate + z * spread, spread
    if method != "draws":
        raise SchemaError(f"method must be 'delta' or 'draws', got {method!r}")
    if rng is None:
        raise SchemaError("method='draws' needs rng=np.random.default_rng(seed)")
    drawn = _draws(problem, n_draws, rng) @ combine.T
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(drawn, [tail, 1.0 - tail], axis=0)
    return estimate, low, high, drawn.std(axis=0, ddof=1)


def customer_equity(
    values: CustomerValue,
    horizons: Sequence[Duration | str] = ("3y", "5y"),
    by: pd.Series | str | None = None,
    *,
    level: float | None = 0.95,
    method: Literal["delta", "draws"] = "delta",
    n_draws: int = 500,
    rng: np.random.Generator | None = None,
    future: FutureCohorts | None = None,
) -> CustomerEquity:
    """The value of the whole base (and per group) at several horizons, with intervals.

    The customers of ``values`` are revalued at each horizon with the same inputs, on their
    distinct (pattern, rate, group) cells. Intervals come from the uncertainty of every model's
    parameters (purchase and Gamma-Gamma models, through their ``covariance_``): the delta
    method (central differences, normal interval) or ``n_draws`` parameter draws (log-normal
    around the estimates, percentile interval).

    Parameters
    ----------
    values
        The result of :func:`clv`.
    horizons
        Horizons with units.
    by
        A column of ``values.customers`` (such as ``"segment"``) or a Series per customer.
    level
        The confidence level of the intervals; ``None`` for point values only.
    method
        ``"delta"`` or ``"draws"``.
    n_draws, rng
        For ``method="draws"``.
    future
        New customers to add (:class:`FutureCohorts`): ``new customers per period x (new
        customer value - acquisition cost)``, each cohort valued over the rest of the horizon.
    """
    grids = tuple(_grid(_horizon(h), values.period) for h in horizons)
    names = [str(h) for h in horizons]
    codes, labels = _group_codes(values, by)
    recipe = values._recipe
    rates, rate_codes = np.unique(recipe.annual_rate, return_inverse=True)
    cells = tuple(
        _cells(block, recipe, codes, rate_codes.astype(np.intp)) for block in recipe.blocks
    )
    streams = () if future is None else _streams(recipe, future, grids)
    problem = _EquityProblem(recipe, cells, grids, rates, len(labels), streams)
    combine = _combinations(len(labels), len(streams), len(grids))
    found = _intervals(problem, combine, level, method, n_draws, rng)
    return _equity_tables(found, labels, names, codes, streams, grids, level, method)


def _interval_frame(
    found: tuple[FloatArray, FloatArray, FloatArray, FloatArray], part: slice, index: pd.Index
) -> pd.DataFrame:
    """Estimates, standard errors and bounds of the outputs in ``part``."""
    estimate, lower, upper, spread = found
    return pd.DataFrame(
        {
            "equity": estimate[part],
            "std_error": spread[part],
            "ci_lower": lower[part],
            "ci_upper": upper[part],
        },
        index=index,
    )


def _equity_tables(
    found: tuple[FloatArray, FloatArray, FloatArray, FloatArray],
    labels: Sequence[object],
    names: Sequence[str],
    codes: IntpArray,
    streams: Sequence[_Stream],
    grids: Sequence[_Grid],
    level: float | None,
    method: Literal["delta", "draws"],
) -> CustomerEquity:
    n_h, n_g, n_s = len(names), len(labels), len(streams)
    existing_end = n_g * n_h
    by_group = _interval_frame(
        found,
        slice(0, existing_end),
        pd.MultiIndex.from_product([labels, names], names=["group", "horizon"]),
    )
    by_group.insert(0, "customers", np.repeat(np.bincount(codes, minlength=n_g), n_h))
    outputs = (n_g + n_s) * n_h
    future = None
    if n_s:
        future = _interval_frame(
            found,
            slice(existing_end, outputs),
            pd.MultiIndex.from_product(
                [[s.label for s in streams], names], names=["segment", "horizon"]
            ),
        )
        future.insert(
            0, "new_customers", [s.per_period * len(g.ends) for s in streams for g in grids]
        )
    total = _interval_frame(
        found, slice(outputs + 2 * n_h, outputs + 3 * n_h), pd.Index(names, name="horizon")
    )
    total.insert(0, "existing", found[0][outputs : outputs + n_h])
    total.insert(1, "future", found[0][outputs + n_h : outputs + 2 * n_h])
    return CustomerEquity(by_group, future, total, level, method)


# --- acquisition cost ----------------------------------------------------------------------------


def clv_to_cac(
    values: CustomerValue,
    acquisition: pd.DataFrame,
    *,
    by: str | Sequence[str] = "channel",
    cost_column: str = "acquisition_cost",
) -> pd.DataFrame:
    """CLV against acquisition cost (CAC) by channel or cohort.

    Parameters
    ----------
    values
        The result of :func:`clv` (typically for recently acquired customers).
    acquisition
        Per customer (indexed by customer id): the acquisition cost and the grouping column(s),
        such as ``make_crm(...).customers``.
    by
        The grouping column(s) of ``acquisition``: ``"channel"``, ``"cohort"``, ...
    cost_column
        The column of ``acquisition`` with each customer's acquisition cost.

    Returns
    -------
    pandas.DataFrame
        Per group: ``customers``, the mean ``cac`` and ``clv``, ``clv_to_cac`` (total CLV over
        total CAC), ``value_net_of_cac`` (mean CLV - mean CAC) and ``payback_years``: when the
        group's cumulative discounted net cash flow per customer reaches its mean CAC (linear
        within a period; NaN when not within the horizon).
    """
    if "acquisition_cost" in values.margin_net_of:
        raise SchemaError(
            "the margin of these values already nets acquisition cost; comparing "
            "CLV with CAC would subtract it twice"
        )
    columns = [by] if isinstance(by, str) else list(by)
    index = values.customers.index
    if cost_column not in acquisition:
        raise SchemaError(
            f"acquisition lacks the column {cost_column!r}; it has {list(acquisition.columns)}"
        )
    labels = _group_keys(acquisition, columns, index, "acquisition")
    cost = _numeric(_aligned(acquisition[cost_column], index, cost_column), cost_column)
    _check_range(cost, cost_column, index, upper=math.inf)
    frame = pd.DataFrame({"clv": values.customers["clv"].to_numpy(), "cac": cost}, index=index)
    grouped = frame.groupby(labels.to_numpy(), sort=True)
    result = grouped.agg(customers=("clv", "size"), cac=("cac", "mean"), clv=("clv", "mean"))
    result["clv_to_cac"] = grouped["clv"].sum() / grouped["cac"].sum()
    result["value_net_of_cac"] = result["clv"] - result["cac"]
    periods = values.periods(by=labels)
    result["payback_years"] = [
        _payback(periods.loc[label], float(result.loc[label, "cac"])) for label in result.index
    ]
    result.index.name = " / ".join(columns)
    return result


def _group_keys(
    frame: pd.DataFrame, columns: Sequence[str], index: pd.Index, name: str
) -> pd.Series:
    """One label per customer of ``index`` from ``frame``'s columns; missing ones are an error."""
    missing = [c for c in columns if c not in frame]
    if missing:
        raise SchemaError(f"{name} lacks column(s) {missing}; it has {list(frame.columns)}")
    keys = frame[list(columns)].reindex(index)
    is_missing = keys.isna().any(axis=1).to_numpy()
    if is_missing.any():
        raise DataQualityError(
            f"{name} gives no {'/'.join(columns)} for {int(is_missing.sum()):,} of {len(index):,} "
            f"customers (e.g. customer {_first(index, is_missing)!r}); every customer needs one"
        )
    if len(columns) == 1:
        return pd.Series(keys[columns[0]].to_numpy(), index=index)
    joined = keys[columns[0]].astype(str)
    for column in columns[1:]:
        joined = joined + " / " + keys[column].astype(str)
    return pd.Series(joined.to_numpy(), index=index)


def _payback(periods: pd.DataFrame, cac: float) -> float:
    """When the cumulative discounted net cash flow per customer first reaches ``cac``."""
    per_customer = periods["discounted_net_cash_flow"].to_numpy() / periods["customers"].to_numpy()
    cumulative = np.concatenate([[0.0], np.cumsum(per_customer)])
    ends = np.concatenate([[0.0], periods["end_years"].to_numpy()])
    reached = np.flatnonzero(cumulative >= cac)
    if not len(reached):
        return math.nan
    k = int(reached[0])
    if k == 0:
        return 0.0
    share = (cac - cumulative[k - 1]) / (cumulative[k] - cumulative[k - 1])
    return float(ends[k - 1] + share * (ends[k] - ends[k - 1]))


# --- margins by category -------------------------------------------------------------------------


def _purchase_rows(transactions: pd.DataFrame, columns: Columns) -> pd.DataFrame:
    """The purchases of a log: rows flagged as returns are not purchases."""
    if columns.is_return is not None and columns.is_return in transactions:
        return transactions[~transactions[columns.is_return].to_numpy(dtype=bool)]
    return transactions


def margin_by_category(
    transactions: pd.DataFrame, margins: Mapping[str, float], *, columns: Columns | None = None
) -> pd.Series:
    """Each customer's gross margin rate: their revenue-weighted mix of category margins.

    ``sum_c revenue_c * margin_c / sum_c revenue_c`` over the customer's purchases (returns
    excluded), for :func:`clv`'s ``margin``.

    Raises
    ------
    SchemaError
        When a category has no margin (all such categories are listed), or a margin is outside
        [0, 1].
    """
    columns = columns or Columns.detect(transactions.columns)
    category, amount = columns.category or "category", columns.amount or "amount"
    missing = [c for c in (columns.customer_id, amount, category) if c not in transactions]
    if missing:
        raise SchemaError(
            f"margin_by_category needs column(s) {missing}; the transactions have "
            f"{list(transactions.columns)}"
        )
    bad = {k: v for k, v in margins.items() if not 0.0 <= float(v) <= 1.0}
    if bad:
        raise SchemaError(f"margins must be between 0 and 1 (a share of revenue): {bad}")
    rows = _purchase_rows(transactions, columns)
    is_known = rows[category].isin(list(margins)).to_numpy()
    if not is_known.all():
        counts = rows.loc[~is_known, category].value_counts()
        raise SchemaError(
            f"no margin for categories {counts.to_dict()} (purchases per "
            "category); add them to margins"
        )
    paid = rows[amount].to_numpy(dtype=np.float64)
    rate = rows[category].map(dict(margins)).to_numpy(dtype=np.float64)
    sums = (
        pd.DataFrame({"margin": paid * rate, "revenue": paid})
        .groupby(rows[columns.customer_id].to_numpy())
        .sum()
    )
    share = (sums["margin"] / sums["revenue"]).rename("margin")
    return share.rename_axis(columns.customer_id)


# --- the back-of-envelope LTV --------------------------------------------------------------------


def simple_ltv(
    purchases_per_year: float, average_check: float, years: float, margin: float | None = None
) -> float:
    """The CRM heuristic: purchases per year x average check x years (x margin).

    No churn, no discounting, no costs: ``simple_ltv(5, 500, 20) == 50_000``.
    :func:`compare_ltv` shows how far it is from the model-based value and why.
    """
    given = {
        "purchases_per_year": purchases_per_year,
        "average_check": average_check,
        "years": years,
    }
    bad = {
        name: value for name, value in given.items() if not (math.isfinite(value) and value >= 0)
    }
    if bad:
        raise SchemaError(f"simple_ltv needs finite numbers >= 0, got {bad}")
    if margin is not None and not 0.0 <= margin <= 1.0:
        raise SchemaError(f"margin must be between 0 and 1 (a share of revenue), got {margin!r}")
    revenue = float(purchases_per_year) * float(average_check) * float(years)
    return revenue if margin is None else revenue * float(margin)


def _purchases_per_customer(
    transactions: pd.DataFrame, columns: Columns, observation_end: str | pd.Timestamp | None
) -> pd.DataFrame:
    """Purchases, revenue and years since the first purchase (``exposure``) per customer."""
    rows = _purchase_rows(transactions, columns)
    stamps = pd.to_datetime(rows[columns.timestamp])
    end = stamps.max() if observation_end is None else as_timestamp(observation_end)
    paid = rows[columns.amount or "amount"].to_numpy(dtype=np.float64)
    per_customer = (
        pd.DataFrame({"first": stamps.to_numpy(), "amount": paid})
        .groupby(rows[columns.customer_id].to_numpy())
        .agg(first=("first", "min"), purchases=("amount", "size"), revenue=("amount", "sum"))
    )
    elapsed = end - pd.to_datetime(per_customer["first"])
    year = pd.Timedelta(days=TimeUnit.YEAR.days).total_seconds()
    per_customer["exposure"] = elapsed.dt.total_seconds() / year
    return per_customer


def simple_ltv_table(
    transactions: pd.DataFrame,
    customers: pd.DataFrame,
    *,
    years: float,
    by: str | Sequence[str] = ("segment", "cohort"),
    margin: float | None = None,
    observation_end: str | pd.Timestamp | None = None,
    columns: Columns | None = None,
) -> pd.DataFrame:
    """The heuristic from the data, by segment and cohort.

    Per group: ``purchases_per_year`` (purchases over the customer-years from each customer's
    first purchase to ``observation_end``, the last purchase by default), ``average_check``
    (revenue per purchase; returns excluded), and :func:`simple_ltv` over ``years``.
    """
    columns = columns or Columns.detect(transactions.columns)
    groups = [by] if isinstance(by, str) else list(by)
    per_customer = _purchases_per_customer(transactions, columns, observation_end)
    _group_keys(customers, groups, per_customer.index, "customers")  # every buyer has a group
    keys = customers[groups].reindex(per_customer.index)
    table = per_customer.groupby([keys[c].to_numpy() for c in groups]).agg(
        customers=("purchases", "size"),
        purchases=("purchases", "sum"),
        revenue=("revenue", "sum"),
        customer_years=("exposure", "sum"),
    )
    table.index.names = groups
    table["purchases_per_year"] = table["purchases"] / table["customer_years"]
    table["average_check"] = table["revenue"] / table["purchases"]
    table["years"] = float(years)
    table["simple_ltv"] = [
        simple_ltv(f, c, years, margin)
        for f, c in zip(table["purchases_per_year"], table["average_check"], strict=True)
    ]
    return table


def compare_ltv(
    values: CustomerValue, heuristic: pd.DataFrame, *, by: pd.DataFrame
) -> pd.DataFrame:
    """The heuristic against the model-based value, with the gap split by cause.

    From the heuristic's revenue (``simple_revenue = purchases_per_year * average_check *
    years``: every customer keeps buying at the group's rate for ``years``): ``gap_churn`` (to
    the model's expected revenue, in which customers drop out and spend is shrunk to what the
    model expects), ``gap_margin`` (to the gross margin), ``gap_costs`` (to the net margin after
    cost to serve and marketing) and ``gap_discounting`` (to the CLV). The four gaps add up to
    ``simple_revenue - model_clv``; all are means per customer.

    Parameters
    ----------
    values
        :func:`clv` over the heuristic's ``years``.
    heuristic
        :func:`simple_ltv_table`'s output.
    by
        The customers' group columns, named like ``heuristic``'s index levels.
    """
    years = float(heuristic["years"].iloc[0])
    if not math.isclose(values.horizon.to(TimeUnit.YEAR), years, rel_tol=1e-9):
        raise SchemaError(
            f"the values cover {values.horizon} and the heuristic {years:g} years; "
            f"compute clv(..., horizon='{years:g}y')"
        )
    names = [str(n) for n in heuristic.index.names]
    _group_keys(by, names, values.customers.index, "by")  # every customer has a group
    keys = by[names].reindex(values.customers.index)
    means = (
        values.customers[["revenue", "gross_margin", "net_margin", "clv"]]
        .groupby([keys[c].to_numpy() for c in names])
        .mean()
    )
    means.index.names = names
    means.columns = pd.Index(
        ["model_revenue", "model_gross_margin", "model_net_margin", "model_clv"]
    )
    table = heuristic[["customers", "purchases_per_year", "average_check", "simple_ltv"]].join(
        means, how="outer"
    )
    table.insert(3, "simple_revenue", table["purchases_per_year"] * table["average_check"] * years)
    table["heuristic_over_model"] = table["simple_ltv"] / table["model_clv"]
    table["gap_churn"] = table["simple_revenue"] - table["model_revenue"]
    table["gap_margin"] = table["model_revenue"] - table["model_gross_margin"]
    table["gap_costs"] = table["model_gross_margin"] - table["model_net_margin"]
    table["gap_discounting"] = table["model_net_margin"] - table["model_clv"]
    return table
