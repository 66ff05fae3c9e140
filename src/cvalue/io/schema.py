"""The mapping from a user's column names to the roles cvalue reads.

A CRM extract names its columns as it likes (``client_id``, ``paid_at``, ``net_amount``). A
:class:`Columns` says which column plays which role. Validated transactions come out with the
canonical role names (the defaults below), so every later step can use ``Columns()`` as is.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields

__all__ = ["CANONICAL", "Columns"]


@dataclass(frozen=True, slots=True)
class Columns:
    """Which column of a transactions extract plays which role.

    Parameters
    ----------
    customer_id
        The customer identifier. Required.
    timestamp
        When the purchase happened (date, datetime or a parsable string). Required.
    amount
        The purchase's value. ``None`` for extracts without values (frequency-only analyses).
    order_id
        An order identifier; when given, an order id may appear on one row only.
    is_return
        A boolean flag marking returns. Flagged rows count with a negative amount; negative
        amounts on unflagged rows are rejected.
    category, channel, segment
        Optional descriptive columns carried through to the clean data.
    """

    customer_id: str = "customer_id"
    timestamp: str = "timestamp"
    amount: str | None = "amount"
    order_id: str | None = None
    is_return: str | None = None
    category: str | None = None
    channel: str | None = None
    segment: str | None = None

    @classmethod
    def detect(cls, columns: Iterable[object]) -> Columns:
        """The canonical mapping, with each optional role whose canonical name is present.

        This is what functions use when no mapping is given: data that went through validation
        carries canonical names, so a clean frame's ``is_return`` or ``order_id`` column is
        picked up without naming it again.
        """
        present = set(columns)
        optional = {role: role for role in _OPTIONAL_ROLES if role in present}
        return cls(**optional)

    def mapping(self) -> dict[str, str]:
        """The roles in use, as ``{role: user column}``."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name)}

    def canonical(self) -> Columns:
        """The same roles under their canonical names (what validated data carries)."""
        return Columns(
            **{role: (role if getattr(self, role) else None) for role in _ROLES}  # type: ignore[arg-type]
        )


_ROLES = tuple(f.name for f in fields(Columns))
_OPTIONAL_ROLES = ("order_id", "is_return", "category", "channel", "segment")
CANONICAL = Columns()
