"""The lifecycle rules: when a customer counts as lost.

:class:`InactivityRule` (a window without purchases, for non-contractual customers),
:class:`ContractRule` (no contract in force) and :class:`ModelRule` (a fitted
:class:`AliveModel`'s P(alive) below a threshold); :data:`Rule` is any of the three.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, TypeAlias

import numpy as np

from cvalue.errors import SchemaError
from cvalue.models import PurchaseModel
from cvalue.units import Duration, as_duration

__all__ = ["AliveModel", "ContractRule", "InactivityRule", "ModelRule", "Rule"]


def _window_of(window: int | Duration | str) -> tuple[Literal["periods", "days"], int]:
    """The window as ``("periods", k)`` or ``("days", whole days)``; a SchemaError if invalid.

    A day count compares with whole days, so a window of ``w`` days is reached once at least
    ``ceil(w)`` days have passed.
    """
    if isinstance(window, bool) or not isinstance(window, int | np.integer | Duration | str):
        raise SchemaError(
            f"window must be a whole number of periods (3) or a duration ('90D', '13w'), "
            f"got {window!r}"
        )
    if isinstance(window, int | np.integer):
        if window < 1:
            raise SchemaError(f"a window of periods must be >= 1, got {window}")
        return "periods", int(window)
    days = as_duration(window).days
    if not days > 0:
        raise SchemaError(f"a window must be longer than 0 days, got {window!r}")
    return "days", math.ceil(days)


@dataclass(frozen=True, slots=True)
class InactivityRule:
    """Lost after a window without purchases (non-contractual customers).

    Parameters
    ----------
    window
        A whole number of periods (``3``) or a duration (``"90D"``, ``"13w"``, a
        :class:`~cvalue.units.Duration`). The customer is lost in the period in which the window
        after the last purchase runs out without a purchase: for ``k`` periods, the ``k``-th period
        in a row without a purchase; for ``w`` days, the period holding the day ``ceil(w)`` days
        after the last purchase day, when none of those days has a purchase. A purchase on that
        last day of the window keeps the customer. A later purchase is a reactivation. With
        ``window=1``, a customer is active exactly in the periods with a purchase.
    """

    window: int | Duration | str = 1

    def __post_init__(self) -> None:
        """Check the window."""
        _window_of(self.window)


@dataclass(frozen=True, slots=True)
class ContractRule:
    """Active while a contract is in force (contractual customers).

    The data is a contracts table: one row per contract with the customer, the start date and the
    end date (the last day covered; missing for a contract still running). A customer is active
    in every period that some contract covers for at least one day and lost in the others;
    overlapping and back-to-back contracts merge into one spell (:func:`merge_contracts`).

    Parameters
    ----------
    customer_id, start, end
        The contracts table's column names.
    """

    customer_id: str = "customer_id"
    start: str = "start"
    end: str = "end"


AliveModel: TypeAlias = PurchaseModel
"""A fitted purchase model, as :class:`cvalue.models.PurchaseModel` states it; the rule reads its
``p_alive`` and ``unit_``. :class:`~cvalue.BetaGeo`, :class:`~cvalue.ModifiedBetaGeo` and
:class:`~cvalue.ParetoNBD` are such models."""


@dataclass(frozen=True, slots=True)
class ModelRule:
    """Lost when a fitted model's P(alive) at a period's end falls below a threshold.

    At the end of each period without a purchase, the customer's history up to that day is
    summarised as :func:`cvalue.rfm_summary` would (grain day, the model's unit) and scored with
    ``model.p_alive``. The customer is lost from the first such period where P(alive) is below
    ``threshold`` until the next purchase. A period with a purchase is never lost.

    Parameters
    ----------
    model
        A fitted model with ``p_alive`` and a known unit (fitted on a :func:`cvalue.rfm_summary`).
    threshold
        The P(alive) below which a customer counts as lost, in ``(0, 1]``.
    """

    model: AliveModel
    threshold: float = 0.5

    def __post_init__(self) -> None:
        """Check the threshold and that the model scores P(alive)."""
        scores_purchases = callable(getattr(self.model, "p_alive", None)) and not getattr(
            self.model, "contractual", False
        )
        if not scores_purchases:
            raise SchemaError(
                "ModelRule needs a purchase model whose p_alive scores a purchase history "
                f"(BetaGeo, ParetoNBD, ...), got {type(self.model).__name__}"
            )
        if not 0.0 < self.threshold <= 1.0:
            raise SchemaError(f"threshold must be in (0, 1], got {self.threshold!r}")


Rule: TypeAlias = InactivityRule | ContractRule | ModelRule
"""One of the three lifecycle rules."""
