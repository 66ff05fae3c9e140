"""CRM export presets: which columns of a CRM's export play which role, and how it is written.

A preset describes one object of one CRM (Salesforce Opportunities, Bitrix24 Deals, ...) as the
CRM exports it, in each of its *header variants*: the field names of its API, and the column
titles of its interface's export in each interface language. For each variant it names the
columns of every role (the company or account as the customer, with the contact as the
documented alternative), the statuses that count as a purchase (won deals, fulfilled orders,
paid invoices), the date format, the decimal mark and the encodings the export comes in.

:meth:`Preset.resolve` finds the variant whose columns a file (or table) has and gives the
:class:`~cvalue.io.schema.Columns` and :class:`~cvalue.io.parsing.Formats` to read it with;
settings given explicitly override the preset's. :func:`detect_preset` finds the preset whose
columns best match a header, for ``cvalue init``.

Field names of the APIs come from the vendors' API references. Interface export titles are
harder to confirm: the variants whose titles could not be checked against the vendor's
documentation say so (``is_confirmed=False``) and list several plausible titles per role; name
the columns yourself when an export differs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from cvalue.errors import SchemaError
from cvalue.io.parsing import Formats
from cvalue.io.schema import Columns

__all__ = [
    "PRESETS",
    "HeaderVariant",
    "Preset",
    "PresetMatch",
    "StatusRule",
    "detect_preset",
    "get_preset",
]

_COLUMN_ROLES = ("customer_id", "order_id", "timestamp", "amount", "currency")
_REQUIRED = ("customer_id", "timestamp", "amount")
_FORMAT_OPTIONS = ("date_format", "dayfirst", "decimal", "thousands")
OVERRIDABLE = (*_COLUMN_ROLES, "status", "won", "missing_ids", *_FORMAT_OPTIONS)
_TRUE = ("true", "1", "yes")


@dataclass(frozen=True, slots=True)
class StatusRule:
    """A status column and the values of it that count as a purchase (``*``: any text)."""

    column: str
    won: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class HeaderVariant:
    """One way a CRM writes an export: its column names per role and its formats.

    Each role lists candidate column names, the preferred first; the first one a header has is
    used. ``status`` lists candidate status columns, each with its won values. ``contact_id``
    is the documented alternative customer id (the contact instead of the company).
    """

    name: str
    description: str
    customer_id: tuple[str, ...]
    timestamp: tuple[str, ...]
    amount: tuple[str, ...]
    order_id: tuple[str, ...] = ()
    currency: tuple[str, ...] = ()
    status: tuple[StatusRule, ...] = ()
    contact_id: tuple[str, ...] = ()
    missing_ids: tuple[str, ...] = ()
    date_format: str | None = None
    dayfirst: bool | None = None
    decimal: str = "."
    thousands: str | None = None
    encodings: tuple[str, ...] = ("utf-8",)
    separators: tuple[str, ...] = (",",)
    is_confirmed: bool = True

    def formats(self) -> Formats:
        """The variant's date and number formats."""
        return Formats(date_format=self.date_format, dayfirst=self.dayfirst,
                       decimal=self.decimal, thousands=self.thousands)  # fmt: skip

    def candidates(self, role: str) -> tuple[str, ...]:
        """The candidate columns of ``role`` (a column role, or ``status``)."""
        if role == "status":
            return tuple(rule.column for rule in self.status)
        found: tuple[str, ...] = getattr(self, role)
        return found


@dataclass(frozen=True, slots=True)
class PresetMatch:
    """A preset resolved against a header: the variant found, how to read it, and why.

    ``found`` maps each role to the column used (``None``: not in the header); ``notes`` are
    sentences saying what was chosen, for messages and for ``cvalue init``'s comments.
    """

    preset: Preset
    variant: HeaderVariant
    columns: Columns
    formats: Formats
    found: Mapping[str, str | None]
    notes: tuple[str, ...]

    @property
    def score(self) -> int:
        """How many roles the header has a column for (the best variant has the most)."""
        return sum(column is not None for column in self.found.values())


@dataclass(frozen=True, slots=True)
class Preset:
    """The exports of one object of one CRM, in all their header variants.

    ``overrides`` holds settings given explicitly (``customer_id="CONTACT_ID"``,
    ``date_format="%d/%m/%Y"``, ...); they win over the preset's. Make one with
    :meth:`overriding`.
    """

    name: str
    system: str
    entity: str
    variants: tuple[HeaderVariant, ...]
    customer_note: str
    overrides: tuple[tuple[str, object], ...] = field(default=())

    def overriding(self, **settings: object) -> Preset:
        """The preset with ``settings`` (roles, ``status``, ``won``, formats) given explicitly.

        Raises
        ------
        SchemaError
            For a setting that is not a role, ``status``, ``won``, ``missing_ids`` or a format.
        """
        unknown = sorted(set(settings) - set(OVERRIDABLE))
        if unknown:
            raise SchemaError(f"preset {self.name!r}: unknown setting(s) {unknown}; known: "
                              f"{list(OVERRIDABLE)}")  # fmt: skip
        merged = dict(self.overrides) | settings
        return replace(self, overrides=tuple(merged.items()))

    def only(self, variant: str) -> Preset:
        """The preset with its variant called ``variant`` only.

        Raises
        ------
        SchemaError
            If the preset has no such variant, naming its variants.
        """
        kept = tuple(v for v in self.variants if v.name == variant.strip().casefold())
        if not kept:
            raise SchemaError(f"preset {self.name!r} has no variant {variant!r}; its variants: "
                              f"{[v.name for v in self.variants]}")  # fmt: skip
        return replace(self, variants=kept)

    def resolve(self, header: Sequence[object], *, where: str = "the extract") -> PresetMatch:
        """The variant whose columns ``header`` has, and the columns and formats to read it with.

        Of the variants that have a column for every required role (customer id, date, amount),
        the one with the most roles found wins (the first of equals). Header names are compared
        without regard to case or surrounding spaces.

        Raises
        ------
        SchemaError
            If no variant fits, naming what each variant lacks and the header's columns.
        """
        names = _lookup(header)
        settings = dict(self.overrides)
        matches, lacks = [], []
        for variant in self.variants:
            found = _found_columns(variant, names, settings)
            missing = [role for role in _REQUIRED if found[role] is None]
            if missing:
                lacks.append(_lack(variant, missing))
                continue
            matches.append(self._match(variant, found, settings))
        if not matches:
            raise SchemaError(
                f"{where} does not have the columns of an export of {self.system} {self.entity} "
                f"(preset {self.name!r}): {'; '.join(lacks)}. It has columns "
                f"{[str(n) for n in header]}. Name "
                "the columns yourself (customer_id=..., timestamp=..., amount=...), or choose "
                "another preset"
            )
        return max(matches, key=lambda match: match.score)  # the first of equals

    def _match(
        self, variant: HeaderVariant, found: dict[str, str | None], settings: dict[str, object]
    ) -> PresetMatch:
        status, won = _status(variant, found, settings, self.name)
        missing_ids = settings.get("missing_ids", variant.missing_ids)
        columns = Columns(
            customer_id=str(found["customer_id"]), timestamp=str(found["timestamp"]),
            amount=found["amount"], order_id=found["order_id"], currency=found["currency"],
            status=status, won=won, missing_ids=tuple(missing_ids),  # type: ignore[arg-type]
        )  # fmt: skip
        formats = _formats(variant, settings)
        notes = _notes(self, variant, found, status, won)
        return PresetMatch(self, variant, columns, formats, {**found, "status": status}, notes)


def _lookup(header: Sequence[object]) -> dict[str, str]:
    """``{normalised name: name as in the header}``; a byte order mark or spaces do not count."""
    return {_normal(name): str(name) for name in header}


def _normal(name: object) -> str:
    return str(name).replace("\ufeff", "").strip().casefold()


def _found_columns(
    variant: HeaderVariant, names: dict[str, str], settings: dict[str, object]
) -> dict[str, str | None]:
    """The header's column for each role: an explicit setting, else the first candidate found."""
    found: dict[str, str | None] = {}
    for role in _COLUMN_ROLES:
        if role in settings:
            given = settings[role]
            found[role] = None if given is None else str(given)
            continue
        found[role] = next((names[_normal(c)] for c in variant.candidates(role)
                            if _normal(c) in names), None)  # fmt: skip
    found["status"] = _status_column(variant, names, settings)
    return found


def _status_column(
    variant: HeaderVariant, names: dict[str, str], settings: dict[str, object]
) -> str | None:
    if "status" in settings:
        given = settings["status"]
        return None if given is None else str(given)
    return next((names[_normal(rule.column)] for rule in variant.status
                 if _normal(rule.column) in names), None)  # fmt: skip


def _status(
    variant: HeaderVariant, found: dict[str, str | None], settings: dict[str, object], name: str
) -> tuple[str | None, tuple[str, ...]]:
    """The status column and its won values: explicit ones first, else the variant's."""
    column = found["status"]
    if column is None:
        return None, ()
    if "won" in settings:
        return column, tuple(str(value) for value in settings["won"])  # type: ignore[attr-defined]
    rule = next((r for r in variant.status if _normal(r.column) == _normal(column)), None)
    if rule is None:
        raise SchemaError(
            f"preset {name!r}: status = {column!r} is not a status column the preset knows (it "
            f"knows {[r.column for r in variant.status]}); give the statuses that count as a "
            "purchase with won=[...]"
        )
    return column, rule.won


def _formats(variant: HeaderVariant, settings: dict[str, object]) -> Formats:
    """The variant's formats, each explicit setting winning.

    An explicit date format drops the variant's ``dayfirst``, which only chooses between
    detected layouts.
    """
    chosen: dict[str, object] = dict(variant.formats().as_dict())
    if "date_format" in settings and settings["date_format"] is not None:
        chosen["dayfirst"] = None
    chosen |= {name: settings[name] for name in _FORMAT_OPTIONS if name in settings}
    return Formats.from_mapping(chosen)


def _lack(variant: HeaderVariant, missing: list[str]) -> str:
    wanted = ", ".join(f"{role} (one of {list(variant.candidates(role))})" for role in missing)
    return f"its {variant.name} variant ({variant.description}) needs {wanted}"


def _notes(
    preset: Preset,
    variant: HeaderVariant,
    found: dict[str, str | None],
    status: str | None,
    won: tuple[str, ...],
) -> tuple[str, ...]:
    """What was chosen, one sentence each."""
    confirmed = "" if variant.is_confirmed else " (column titles not confirmed by the vendor)"
    notes = [f"{preset.system} {preset.entity}, {variant.description}{confirmed}",
             f"customer id {found['customer_id']!r}: {preset.customer_note}"]  # fmt: skip
    if status is None:
        notes.append("no status column: every row counts as a purchase (export won deals only)")
    else:
        notes.append(f"status {status!r}: rows count as purchases when it is one of {list(won)}")
    if found["currency"] is not None:
        notes.append(f"currency {found['currency']!r}: rows in another currency are rejected")
    return tuple(notes)


def get_preset(name: str) -> Preset:
    """The preset called ``name`` (``"salesforce"``, ``"bitrix24:invoices"``, ...).

    Raises
    ------
    SchemaError
        For an unknown name, listing the known ones.
    """
    key = name.strip().casefold()
    preset = PRESETS.get(key) or PRESETS.get(_ALIASES.get(key, ""))
    if preset is None:
        raise SchemaError(
            f"unknown CRM preset {name!r}; known presets: {sorted(PRESETS)} (a system's name "
            "alone is its first object: 'salesforce' is 'salesforce:opportunities')"
        )
    return preset


def detect_preset(header: Sequence[object]) -> PresetMatch | None:
    """The preset and variant whose columns best match ``header``, or ``None``.

    A preset matches when the header has its customer id, date and amount columns; of those,
    the one with the most roles found wins, and a match with a status column wins over one
    without (the first preset of equals).
    """
    matches = []
    for preset in PRESETS.values():
        try:
            matches.append(preset.resolve(header))
        except SchemaError:
            continue
    if not matches:
        return None
    return max(matches, key=lambda match: (match.found["status"] is not None, match.score))


# --- the presets ------------------------------------------------------------------------------

_SALESFORCE_OPPORTUNITIES = Preset(
    "salesforce", "Salesforce", "Opportunities",
    variants=(
        # Opportunity fields as the API (SOQL, Bulk API, Data Loader) names them
        HeaderVariant(
            "api", "API field names (SOQL, Bulk API, Data Loader)",
            customer_id=("AccountId",), contact_id=("ContactId",), order_id=("Id",),
            timestamp=("CloseDate",), amount=("Amount",), currency=("CurrencyIsoCode",),
            status=(StatusRule("IsWon", _TRUE), StatusRule("StageName", ("Closed Won",))),
            date_format="ISO8601",
        ),
        # a report exported as CSV ("Details Only") titles its columns with the field labels
        # (Account ID, Close Date, Won, Opportunity Currency); its dates follow the user's
        # locale, so the layout is detected. 'Account Name' is the fallback customer id
        # when the report has no Account ID column (names can repeat).
        HeaderVariant(
            "ui_en", "report export, English labels",
            customer_id=("Account ID", "Account Name"), contact_id=("Contact ID",),
            order_id=("Opportunity ID",), timestamp=("Close Date",), amount=("Amount",),
            currency=("Opportunity Currency", "Amount Currency"),
            status=(StatusRule("Won", _TRUE), StatusRule("Stage", ("Closed Won",))),
            thousands=",",
        ),
    ),
    customer_note="the account (AccountId); ContactId is the alternative for B2C orgs whose "
    "opportunities name no account",
)  # fmt: skip

_SALESFORCE_ORDERS = Preset(
    "salesforce:orders", "Salesforce", "Orders",
    variants=(
        HeaderVariant(
            "api", "API field names (SOQL, Bulk API, Data Loader)",
            customer_id=("AccountId",), contact_id=("BillToContactId",),
            order_id=("OrderNumber", "Id"), timestamp=("EffectiveDate",),
            amount=("TotalAmount",), currency=("CurrencyIsoCode",),
            status=(StatusRule("StatusCode", ("Activated",)),
                    StatusRule("Status", ("Activated",))),
            date_format="ISO8601",
        ),
        # the field labels of Order (Order Number, Order Start Date, Order Amount) as a report
        # titles them; not checked against an export
        HeaderVariant(
            "ui_en", "report export, English labels",
            customer_id=("Account ID", "Account Name"), contact_id=("Bill To Contact ID",),
            order_id=("Order Number", "Order ID"), timestamp=("Order Start Date",),
            amount=("Order Amount",), currency=("Order Currency",),
            status=(StatusRule("Status", ("Activated",)),), thousands=",", is_confirmed=False,
        ),
    ),
    customer_note="the account (AccountId); BillToContactId is the alternative",
)  # fmt: skip

_HUBSPOT_DEALS = Preset(
    "hubspot", "HubSpot", "Deals",
    variants=(
        # CRM v3 deal properties. A deal's company is an association, not a property: the
        # column is what an export that flattens the primary company association writes;
        # 'associatedcompanyid' is the name HubSpot gives the like property of contacts, not
        # confirmed for deals
        HeaderVariant(
            "api", "API property names (CRM v3)",
            customer_id=("associatedcompanyid", "company_id"),
            contact_id=("associatedcontactid", "contact_id"),
            order_id=("hs_object_id", "id"), timestamp=("closedate",), amount=("amount",),
            currency=("deal_currency_code",),
            status=(StatusRule("hs_is_closed_won", _TRUE),
                    StatusRule("dealstage", ("closedwon",))),
            date_format="ISO8601",
        ),
        # the CSV of the deals index page; the stage is exported by its label
        HeaderVariant(
            "ui_en", "deals export, English interface",
            customer_id=("Associated Company IDs (Primary)", "Associated Company IDs",
                         "Associated Company ID"),
            contact_id=("Associated Contact IDs (Primary)", "Associated Contact IDs"),
            order_id=("Record ID",), timestamp=("Close Date",), amount=("Amount",),
            currency=("Currency",),
            status=(StatusRule("Is Closed Won", _TRUE), StatusRule("Deal Stage", ("Closed Won",))),
            thousands=",",
        ),
    ),
    customer_note="the primary associated company; the primary contact is the alternative",
)  # fmt: skip

_DYNAMICS_STATUS_ORDERS = (StatusRule("statecode", ("3", "4")),  # Fulfilled, Invoiced
                           StatusRule("statuscode", ("100001", "100002", "100003")))  # fmt: skip
_DYNAMICS_ORDERS = Preset(
    "dynamics365", "Microsoft Dynamics 365", "Sales orders",
    variants=(
        # the salesorder table's Web API names: a lookup is '_<name>_value' (its id)
        HeaderVariant(
            "api", "Web API (Dataverse) column names",
            customer_id=("_customerid_value", "customerid"),
            contact_id=("_contactid_value", "contactid"),
            order_id=("ordernumber", "salesorderid"), timestamp=("datefulfilled",),
            amount=("totalamount",),
            currency=("_transactioncurrencyid_value", "transactioncurrencyid"),
            status=_DYNAMICS_STATUS_ORDERS, date_format="ISO8601",
        ),
        # 'Export to Excel' titles columns with the display names; saved as CSV. The
        # customer is written by name there (the id is not exported)
        HeaderVariant(
            "ui_en", "Export to Excel saved as CSV, English display names",
            customer_id=("Customer", "Potential Customer"), order_id=("Order ID",),
            timestamp=("Date Fulfilled",), amount=("Total Amount",), currency=("Currency",),
            status=(StatusRule("Status", ("Fulfilled", "Invoiced")),
                    StatusRule("Status Reason", ("Complete", "Partial", "Invoiced"))),
            thousands=",", encodings=("utf-8", "cp1252"),
        ),
    ),
    customer_note="the order's customer (customerid: the account, or the contact for an order "
    "placed by a person); _accountid_value keeps accounts only",
)  # fmt: skip

_DYNAMICS_INVOICES = Preset(
    "dynamics365:invoices", "Microsoft Dynamics 365", "Invoices",
    variants=(
        HeaderVariant(
            "api", "Web API (Dataverse) column names",
            customer_id=("_customerid_value", "customerid"),
            contact_id=("_contactid_value", "contactid"),
            order_id=("invoicenumber", "invoiceid"), timestamp=("datedelivered",),
            amount=("totalamount",),
            currency=("_transactioncurrencyid_value", "transactioncurrencyid"),
            status=(StatusRule("statecode", ("2",)),  # Paid
                    StatusRule("statuscode", ("100001", "100002"))),  # Complete, Partial
            date_format="ISO8601",
        ),
        HeaderVariant(
            "ui_en", "Export to Excel saved as CSV, English display names",
            customer_id=("Customer",), order_id=("Invoice ID",), timestamp=("Date Delivered",),
            amount=("Total Amount",), currency=("Currency",),
            status=(StatusRule("Status", ("Paid",)),
                    StatusRule("Status Reason", ("Complete", "Partial"))),
            thousands=",", encodings=("utf-8", "cp1252"),
        ),
    ),
    customer_note="the invoice's customer (customerid: the account or the contact)",
)  # fmt: skip

_BITRIX_DEALS = Preset(
    "bitrix24", "Bitrix24", "Deals",
    variants=(
        # crm.deal.list fields; STAGE_SEMANTIC_ID 'S' is the success stage of every pipeline,
        # STAGE_ID is 'WON' in the main pipeline and 'C<n>:WON' in pipeline n
        HeaderVariant(
            "api", "REST API field names (crm.deal.list)",
            customer_id=("COMPANY_ID",), contact_id=("CONTACT_ID",), missing_ids=("0",),
            order_id=("ID",), timestamp=("CLOSEDATE",), amount=("OPPORTUNITY",),
            currency=("CURRENCY_ID",),
            status=(StatusRule("STAGE_SEMANTIC_ID", ("S",)),
                    StatusRule("STAGE_ID", ("WON", "C*:WON"))),
            date_format="ISO8601",
        ),
        # the deal list's CSV/Excel export titles columns in the interface language and names
        # the company and the stage (not their ids); titles not confirmed by the vendor
        HeaderVariant(
            "ui_ru", "deal list export, Russian interface",
            customer_id=("Компания", "Компания: название"), contact_id=("Контакт",),
            order_id=("ID",),
            timestamp=("Дата завершения", "Предполагаемая дата закрытия", "Дата закрытия"),
            amount=("Сумма", "Сумма сделки"), currency=("Валюта",),
            status=(StatusRule("Стадия сделки", ("Сделка успешна",)),
                    StatusRule("Стадия", ("Сделка успешна",))),
            dayfirst=True, decimal=",", thousands=" ", encodings=("utf-8", "cp1251"),
            separators=(";", ","), is_confirmed=False,
        ),
        HeaderVariant(
            "ui_en", "deal list export, English interface",
            customer_id=("Company", "Company: name"), contact_id=("Contact",), order_id=("ID",),
            timestamp=("Closing date", "Estimated close date", "Close date"),
            amount=("Amount", "Income", "Opportunity"), currency=("Currency",),
            status=(StatusRule("Deal stage", ("Deal won", "Deal successful")),
                    StatusRule("Stage", ("Deal won", "Deal successful"))),
            thousands=",", is_confirmed=False,
        ),
    ),
    customer_note="the company (the API's COMPANY_ID, 0 for a deal without one: such rows are "
    "rejected as missing; the export's company name); the contact is the alternative for "
    "portals selling to persons",
)  # fmt: skip

_BITRIX_INVOICES = Preset(
    "bitrix24:invoices", "Bitrix24", "Invoices",
    variants=(
        # the invoices of crm.invoice.list (the old invoices): PAYED 'Y' or status 'P' is paid
        HeaderVariant(
            "api", "REST API field names (crm.invoice.list)",
            customer_id=("UF_COMPANY_ID",), contact_id=("UF_CONTACT_ID",), missing_ids=("0",),
            order_id=("ACCOUNT_NUMBER", "ID"), timestamp=("DATE_PAYED", "DATE_BILL"),
            amount=("PRICE",), currency=("CURRENCY",),
            status=(StatusRule("PAYED", ("Y",)), StatusRule("STATUS_ID", ("P",))),
            date_format="ISO8601",
        ),
        # the new invoices are the smart process 31 (crm.item.list); their success stage ids
        # are 'DT31_<pipeline>:P': the stage id pattern is not confirmed by the vendor
        HeaderVariant(
            "api_items", "REST API field names (crm.item.list, entityTypeId 31)",
            customer_id=("companyId",), contact_id=("contactId",), missing_ids=("0",),
            order_id=("accountNumber", "id"), timestamp=("closedate", "begindate"),
            amount=("opportunity",), currency=("currencyId",),
            status=(StatusRule("stageId", ("DT31_*:P",)),), date_format="ISO8601",
            is_confirmed=False,
        ),
    ),
    customer_note="the company (UF_COMPANY_ID / companyId); the contact is the alternative",
)  # fmt: skip

_AMOCRM_LEADS = Preset(
    "amocrm", "amoCRM", "Leads",
    variants=(
        # API v4 leads: closed_at is a unix timestamp, status 142 is won and 143 lost in every
        # pipeline; the company is embedded (_embedded.companies), so an export writes it
        # flattened: 'company.id' as pandas.json_normalize writes API v2's company object
        HeaderVariant(
            "api", "API field names (leads), unix timestamps",
            customer_id=("company_id", "company.id"),
            contact_id=("main_contact_id", "main_contact.id"), order_id=("id",),
            timestamp=("closed_at",), amount=("price", "sale"),
            status=(StatusRule("status_id", ("142",)),), date_format="unix_s",
        ),
        # the lead list's export ('Экспорт'): ';' separated UTF-8 with a byte order mark;
        # names of the company and contact, not ids
        HeaderVariant(
            "ui_ru", "lead list export, Russian interface",
            customer_id=("Компания",), contact_id=("Основной контакт",), order_id=("ID",),
            timestamp=("Дата закрытия",), amount=("Бюджет", "Бюджет сделки"),
            status=(StatusRule("Этап сделки", ("Успешно реализовано",)),
                    StatusRule("Статус", ("Успешно реализовано",))),
            dayfirst=True, decimal=",", thousands=" ", encodings=("utf-8", "cp1251"),
            separators=(";", ","), is_confirmed=False,
        ),
        HeaderVariant(
            "ui_en", "lead list export, English interface",
            customer_id=("Company",), contact_id=("Main contact",), order_id=("ID",),
            timestamp=("Closed", "Date closed", "Closing date"), amount=("Budget", "Sale"),
            status=(StatusRule("Lead stage", ("Closed - won", "Successfully realized")),
                    StatusRule("Stage", ("Closed - won", "Successfully realized"))),
            thousands=",", separators=(";", ","), is_confirmed=False,
        ),
    ),
    customer_note="the company; the main contact is the alternative for sales to persons",
)  # fmt: skip

PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (_SALESFORCE_OPPORTUNITIES, _SALESFORCE_ORDERS, _HUBSPOT_DEALS,
                   _DYNAMICS_ORDERS, _DYNAMICS_INVOICES, _BITRIX_DEALS, _BITRIX_INVOICES,
                   _AMOCRM_LEADS)
}  # fmt: skip
"""The presets by name: a system's name alone is its first object."""
_ALIASES = {
    "salesforce:opportunities": "salesforce",
    "hubspot:deals": "hubspot",
    "dynamics365:orders": "dynamics365",
    "dynamics365:salesorders": "dynamics365",
    "bitrix24:deals": "bitrix24",
    "amocrm:leads": "amocrm",
}
