"""The model contract: what a purchase model and a spend model provide, typed.

value, lifecycle, report and job program against these protocols, not against model classes.
Every purchase model (:class:`~cvalue.BetaGeo`, :class:`~cvalue.ModifiedBetaGeo`,
:class:`~cvalue.ParetoNBD`, :class:`~cvalue.BetaGeoBetaBinom`) takes the data first and its
options by keyword, under the same names:

- ``p_alive(data)``, ``expected_purchases(data, *, horizon)``, ``predict(data, *, horizon)``,
  ``dert(data, *, discount)``;
- ``purchase_pmf(counts, *, horizon, data=None)``: for a new customer, or given each history;
- ``expected_purchases_new(*, horizon)`` for a new customer;
- ``curves(data=None)``: the survival and cumulative-purchase curves valuation reads
  (:class:`~cvalue.models.Curves`), per customer or for a customer just acquired;
- ``with_params(params)``, a copy at other parameters; and the classmethod ``from_params(...)``
  (by position or by name), which a :class:`~typing.Protocol` cannot state.

Class attributes state the data: ``summary_columns`` (what the model reads), ``age_column``
(each customer's observation length, ``T`` or ``n_periods``), ``discrete_time`` (whole
opportunities) and ``contractual`` (payments per contract period, for the sBG and BdW, which
provide ``curves`` too).

The argument orders of earlier releases (``expected_purchases(t, data)``, ``purchase_pmf(n, t)``,
``dert(discount_rate, data)``, a positional ``horizon``) still work for one release behind a
:class:`DeprecationWarning`; :func:`keyword_options` is the one place that recognises them.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, TypeVar, cast

import numpy as np
import numpy.typing as npt
import pandas as pd

from cvalue.units import Duration, Rate, TimeUnit

if TYPE_CHECKING:
    from typing_extensions import Self

    from cvalue.models._curves import Curves

__all__ = ["PurchaseModel", "Span", "SpendModel", "keyword_options"]

FloatArray = npt.NDArray[np.float64]
Span = float | Duration | str
"""A time span: a number in the model's unit, a string such as ``"52w"``, or a Duration."""

_Method = TypeVar("_Method", bound=Callable[..., Any])


class PurchaseModel(Protocol):
    """A fitted purchase model: P(alive), expected purchases and the purchase count distribution.

    ``from_params(...)`` (a classmethod building a fitted model from its parameters) is part of
    the contract too, but a protocol cannot state a classmethod's signature.
    """

    age_column: ClassVar[str]
    """The summary column holding each customer's observation length (``T`` or ``n_periods``)."""

    summary_columns: ClassVar[tuple[str, ...]]
    """The summary columns the model reads (``frequency, recency, T`` or ``.., n_periods``)."""

    discrete_time: ClassVar[bool]
    """Whether time counts whole opportunities (BG/BB) rather than running continuously."""

    contractual: ClassVar[bool]
    """Whether customers pay per period of a contract (sBG, BdW) rather than per purchase."""

    @property
    def unit_(self) -> TimeUnit | None:
        """The time unit of the data the model was fitted on, if known."""

    @property
    def params_(self) -> pd.Series:
        """The fitted parameters by name, on the natural scale."""

    @property
    def positive_params_(self) -> npt.NDArray[np.bool_]:
        """Per parameter, whether it is positive (a covariate's coefficient is not)."""

    def p_alive(self, data: pd.DataFrame) -> pd.Series:
        """P(alive) of each customer at the end of the observation."""

    def expected_purchases(self, data: pd.DataFrame, *, horizon: Span) -> pd.Series:
        """Expected purchases of each customer over ``horizon``, given their history."""

    def expected_purchases_new(self, *, horizon: Span) -> float:
        """Expected purchases of a new customer over ``horizon``."""

    def purchase_pmf(
        self, counts: npt.ArrayLike, *, horizon: Span, data: pd.DataFrame | None = None
    ) -> float | FloatArray | pd.DataFrame:
        """P(X(horizon) = counts): for a new customer, or given each history in ``data``."""

    def dert(self, data: pd.DataFrame, *, discount: Rate | float) -> pd.Series:
        """Each customer's discounted expected residual transactions at ``discount``."""

    def curves(self, data: pd.DataFrame | None = None) -> Curves:
        """Survival and cumulative purchases from now on (a new customer's without data)."""

    def predict(
        self,
        data: pd.DataFrame,
        *,
        horizon: Span,
        interval: float | None = None,
        method: Literal["draws", "bootstrap", "predictive"] = "draws",
        n_draws: int = 200,
        rng: np.random.Generator | None = None,
    ) -> pd.DataFrame:
        """``p_alive`` and ``expected_purchases`` over ``horizon``, one row per customer.

        With ``interval`` (a level such as 0.9), the bounds of per-customer intervals too:
        ``method="draws"`` for the parameters' uncertainty, ``"predictive"`` for the count's
        own spread (:mod:`cvalue.models._intervals`).
        """

    def with_params(self, params: Mapping[str, float] | npt.ArrayLike) -> Self:
        """A fitted copy of the model at other parameters."""


class SpendModel(Protocol):
    """A fitted spend model (Gamma-Gamma): the expected spend per purchase."""

    @property
    def params_(self) -> pd.Series:
        """The fitted parameters by name."""

    @property
    def covariance_(self) -> pd.DataFrame:
        """The estimates' covariance (NaN for a model built from given parameters)."""

    @property
    def positive_params_(self) -> npt.NDArray[np.bool_]:
        """Per parameter, whether it is positive (a covariate's coefficient is not)."""

    def conditional_expected_spend(self, data: pd.DataFrame) -> pd.Series:
        """Each customer's expected spend per purchase, given their purchases so far."""

    def expected_spend_new(self) -> float:
        """The expected spend per purchase of a new customer."""

    def spend_terms(self, frequency: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
        """``u, v`` with the expected spend ``u + v * monetary_value``, per frequency."""

    def with_params(self, params: Mapping[str, float] | npt.ArrayLike) -> Self:
        """A fitted copy of the model at other parameters."""


def keyword_options(
    option: str,
    *,
    leading: Literal["data", "counts"] | None,
    old: str,
    new: str,
    renamed: Mapping[str, str] | None = None,
) -> Callable[[_Method], _Method]:
    """Accept a method's earlier argument order for one release, with a DeprecationWarning.

    The earlier forms are recognised by shape: the ``option`` given by position (after the
    ``leading`` argument, if any), a DataFrame in second place behind the option
    (``expected_purchases(t, data)``), or an old keyword name (``renamed``, old to new).

    Parameters
    ----------
    option
        The keyword-only option, such as ``"horizon"`` or ``"discount"``.
    leading
        The positional argument before it (``"data"`` or ``"counts"``), or None.
    old, new
        The earlier and the new call, for the warning: ``"t, data"``, ``"data, horizon=t"``.
    renamed
        Earlier keyword names and their new names, such as ``{"t": "horizon"}``.
    """
    renames = dict(renamed or {})

    def decorate(method: _Method) -> _Method:
        @functools.wraps(method)
        def wrapper(self: object, *args: Any, **kwargs: Any) -> Any:
            is_old = _rename(kwargs, renames)
            args, is_moved = _moved(args, kwargs, option, leading)
            if is_old or is_moved:
                name = f"{type(self).__name__}.{method.__name__}"
                warnings.warn(
                    f"{name}({old}) is deprecated and will be removed in the next release; "
                    f"call {method.__name__}({new}) instead: the data come first and the "
                    "options by keyword",
                    DeprecationWarning,
                    stacklevel=2,
                )
            return method(self, *args, **kwargs)

        # a model wraps the method within (per stratum, for covariates): the old forms are read
        # first, and a warning still points at the caller's line
        wrapper.rewrap = decorate  # type: ignore[attr-defined]
        return cast("_Method", wrapper)

    return decorate


def _rename(kwargs: dict[str, Any], renames: Mapping[str, str]) -> bool:
    """Move earlier keyword names to their new names in place; whether there were any."""
    found = [name for name in renames if name in kwargs]
    for name in found:
        if renames[name] in kwargs:
            raise TypeError(f"got both {name!r} (its earlier name) and {renames[name]!r}")
        kwargs[renames[name]] = kwargs.pop(name)
    return bool(found)


def _moved(
    args: tuple[Any, ...], kwargs: dict[str, Any], option: str, leading: str | None
) -> tuple[tuple[Any, ...], bool]:
    """The positional arguments with a positional ``option`` moved into ``kwargs``, and whether.

    Calls that fit neither the new nor an earlier form are left alone, to fail as Python fails.
    """
    if option in kwargs:
        return args, False
    n_leading = 0 if leading is None else 1
    if leading is not None and leading in kwargs and len(args) == 1:  # f(t, data=...)
        kwargs[option] = args[0]
        return (), True
    if len(args) != n_leading + 1:
        return args, False
    if (
        leading == "data"
        and isinstance(args[1], pd.DataFrame)
        and not isinstance(args[0], pd.DataFrame)
    ):  # f(t, data)
        kwargs[option] = args[0]
        return (args[1],), True
    kwargs[option] = args[-1]  # f(data, horizon), f(counts, horizon), f(horizon)
    return args[:-1], True
