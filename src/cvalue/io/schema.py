"""The mapping from a user's column names to the roles cvalue reads.

A CRM extract names its columns as it likes (``client_id``, ``paid_at``, ``net_amount``). A
:class:`Columns` says which column plays which role. Validated transactions come out with the
canonical role names (the defaults below), so every later step can use ``Columns()`` as is.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace

from cvalue.errors import SchemaError

__all__ = ["CANONICAL", "CRM_ATTRS", "Columns"]


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
    status
        The deal's or order's status (a CRM export holds open and lost deals too). Needs
        ``won``: rows whose status is not one of them are rejected as ``not_won``.
    currency
        The currency of each amount. Rows in another currency than the extract's most common
        one are rejected as ``other_currency``: amounts in two currencies cannot be summed.
    won
        The values of ``status`` that count as a purchase, compared without regard to case or
        surrounding spaces; ``*`` in a value matches any text (``"C*:WON"``).
    missing_ids
        Customer ids that stand for no customer (Bitrix24 writes ``0`` for a deal without a
        company); rows with one are rejected as ``missing_customer_id``.

    Raises
    ------
    SchemaError
        If ``status`` and ``won`` are not given together.
    """

    customer_id: str = "customer_id"
    timestamp: str = "timestamp"
    amount: str | None = "amount"
    order_id: str | None = None
    is_return: str | None = None
    category: str | None = None
    channel: str | None = None
    segment: str | None = None
    status: str | None = None
    currency: str | None = None
    won: tuple[str, ...] | None = None
    missing_ids: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        """Values given as lists become tuples; ``status`` and ``won`` come together."""
        for name in _VALUES:
            values = getattr(self, name)
            object.__setattr__(self, name, tuple(str(v) for v in values) if values else None)
        if bool(self.status) != bool(self.won):
            given, needed = ("status", "won") if self.status else ("won", "status")
            raise SchemaError(
                f"Columns({given}=...) needs {needed}=...: the status column and the statuses "
                "that count as a purchase (such as status='StageName', won=('Closed Won',)) "
                "come together"
            )

    @classmethod
    def detect(cls, columns: Iterable[object]) -> Columns:
        """The canonical mapping, with each optional role whose canonical name is present.

        This is what functions use when no mapping is given: data that went through validation
        carries canonical names, so a clean frame's ``is_return`` or ``order_id`` column is
        picked up without naming it again.
        """
        present = set(columns)
        optional = {role: role for role in _OPTIONAL_ROLES if role in present}
        return cls(**optional)  # type: ignore[arg-type]

    def crm_values(self) -> dict[str, object]:
        """What a frame read with these columns records for validation (``attrs[CRM_ATTRS]``).

        A frame read by :func:`~cvalue.io.sources.read_transactions` carries canonical column
        names, from which :meth:`detect` cannot tell the won statuses: they travel with it.
        """
        return {"won": list(self.won or ()), "has_currency": self.currency is not None,
                "missing_ids": list(self.missing_ids or ())}  # fmt: skip

    def with_crm_values(self, recorded: Mapping[str, object], present: Iterable[object]) -> Columns:
        """The columns plus the CRM roles ``recorded`` (by :meth:`crm_values`) that are present."""
        names = set(present)
        won = tuple(str(value) for value in _listed(recorded.get("won")))
        extra: dict[str, object] = {"missing_ids": _listed(recorded.get("missing_ids"))}
        if won and "status" in names:
            extra |= {"status": "status", "won": won}
        if recorded.get("has_currency") and "currency" in names:
            extra["currency"] = "currency"
        return replace(self, **extra)  # type: ignore[arg-type]

    def mapping(self) -> dict[str, str]:
        """The roles in use, as ``{role: user column}``."""
        return {role: getattr(self, role) for role in _ROLES if getattr(self, role)}

    def canonical(self) -> Columns:
        """The same roles under their canonical names (what validated data carries)."""
        return Columns(
            **{role: (role if getattr(self, role) else None) for role in _ROLES},  # type: ignore[arg-type]
            won=self.won,
            missing_ids=self.missing_ids,
        )


_VALUES = ("won", "missing_ids")  # not columns: values of the status and customer id columns
_ROLES = tuple(f.name for f in fields(Columns) if f.name not in _VALUES)
_OPTIONAL_ROLES = ("order_id", "is_return", "category", "channel", "segment")
CANONICAL = Columns()
CRM_ATTRS = "cvalue_crm"
"""The key of ``DataFrame.attrs`` under which a read extract carries its CRM values."""


def _listed(values: object) -> tuple[str, ...]:
    if not isinstance(values, list | tuple):
        return ()
    return tuple(str(value) for value in values)
