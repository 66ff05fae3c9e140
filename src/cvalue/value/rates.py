"""Discount rates: one for all, per segment, per customer, or risk-adjusted.

:class:`DiscountRates` holds the rates as quoted and converts them exactly to effective annual
rates; :func:`margin_variation` is a segment risk measure for its risk-adjusted rates.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

import numpy as np
import pandas as pd

from cvalue.errors import SchemaError
from cvalue.units import Rate, TimeUnit, as_time_unit
from cvalue.value.inputs import FloatArray, _aligned, _first, _from_mapping, _labels, _numeric

__all__ = ["DiscountRates", "margin_variation"]


Compounding = Literal["effective", "continuous"]


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


def _as_rates(rates: DiscountRates | Rate | float) -> DiscountRates:
    """The rates of a valuation: ``DiscountRates``, a ``Rate`` or a bare number.

    A bare number is the effective annual rate (``0.10`` is 10 % a year, as
    ``DiscountRates.single(0.10)``).
    """
    if isinstance(rates, DiscountRates):
        return rates
    if isinstance(rates, Rate):
        return DiscountRates.single(rates.annual, per="year")
    if isinstance(rates, int | float | np.floating | np.integer) and not isinstance(
        rates, bool | np.bool_
    ):
        if rates >= 1.0:  # 10 for 10 %: a bare number is a share, and 100 % a year is no rate
            raise SchemaError(
                f"rates={rates!r} reads as {rates:.0%} a year: a bare number is a share, 0.10 "
                "for 10 %. For a rate of 100 % a year or more, write "
                f"DiscountRates.single({rates!r})"
            )
        return DiscountRates.single(float(rates), per="year")
    raise SchemaError(
        f"rates must be a number (an effective annual rate such as 0.10), a cvalue.Rate or "
        f"DiscountRates (by segment, per customer, risk-adjusted), got {rates!r}"
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
