"""Per-customer profitability pushed down into SQLite, DuckDB or PostgreSQL.

:func:`sql_customer_profitability` is :func:`cvalue.segments.customer_profitability` computed
inside the database: the per-customer sums come from ``GROUP BY``, every check of the pandas path
is counted by the database, and the table is built by the arithmetic both paths share
(:mod:`cvalue.segments.profit`). Statements are SQLAlchemy Core expressions; names are quoted by
SQLAlchemy, values bound.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.sql.expression import SelectBase
from sqlalchemy.types import NullType, TypeEngine

from cvalue.errors import SchemaError
from cvalue.io import connection_to
from cvalue.io.schema import Columns
from cvalue.io.sqlkit import DayNumber, Expression, fetch, source_rows
from cvalue.segments.profit import (
    _BAD_AMOUNT,
    _BAD_COST,
    _BAD_FLAG,
    _BAD_TIMESTAMP,
    _CHECK_FIX,
    _COST_SUMS,
    _COUNTS,
    _MISSING_CATEGORY,
    _MISSING_ID,
    _NEGATIVE_PURCHASE,
    _POSITIVE_RETURN,
    _TRANSACTION_SUMS,
    _UNKNOWN_KIND,
    Costs,
    CostSource,
    OnUnmatched,
    ProfitTable,
    _bad_rows,
    _check_currencies,
    _check_min_categories,
    _check_present,
    _cost_columns_fix,
    _customer_table,
    _needed_cost_columns,
    _outside_frame,
    _raise_problems,
    _report_unmatched,
    _Roles,
    _roles,
    _unmatched_frame,
    _Window,
)
from cvalue.units import DateLike

__all__ = ["sql_customer_profitability"]


@dataclass(frozen=True, slots=True)
class _SqlTable:
    """One table of the SQL path: its rows, column types and how to name it in messages."""

    name: str
    rows: sa.FromClause
    types: dict[str, TypeEngine[object]]
    described: str

    def column(self, name: str) -> Expression:
        return self.rows.c[name]


def _sql_table(
    connection: sa.Connection, name: str, source: CostSource | None, schema: str | None
) -> _SqlTable:
    """Resolve a table name or select; a DataFrame belongs to the pandas path."""
    if isinstance(source, pd.DataFrame):
        raise SchemaError(
            f"the {name} table is a pandas DataFrame; the SQL path reads tables in the database: "
            "store it there and pass its name, or use cvalue.customer_profitability in pandas"
        )
    if isinstance(source, str):
        rows, types, described = source_rows(connection, source, None, schema)
    else:
        rows, types, described = source_rows(connection, None, source, None)
    return _SqlTable(name, rows, types, f"{name} ({described})")


def _is_flag_type(kind: TypeEngine[object]) -> bool:
    return isinstance(kind, sa.Boolean | NullType)


def _check_sql_types(transactions: _SqlTable, roles: _Roles) -> None:
    """Refuse flags that are not booleans and amounts that are not numbers."""
    bad_flags = [flag for flag in roles.flags if not _is_flag_type(transactions.types[flag])]
    if bad_flags:
        raise SchemaError(
            f"column(s) {bad_flags} of {transactions.described} are not BOOLEAN; store the flags "
            "as true/false (cvalue.validate_transactions reads yes/no, 1/0 and true/false)"
        )
    kind = transactions.types[roles.amount]
    if not isinstance(kind, sa.Numeric | sa.Integer | NullType):
        raise SchemaError(
            f"column {roles.amount!r} of {transactions.described} has SQL type {kind}, not a "
            "number; store amounts as numbers or cast them in query=sa.select(...)"
        )


def _within(day: Expression, window: _Window) -> Expression:
    """The window's condition on a day number (true when the window is open)."""
    conditions = []
    if window.start_day is not None:
        conditions.append(day >= window.start_day)
    if window.end_day is not None:
        conditions.append(day <= window.end_day)
    return sa.and_(sa.true(), *conditions)


@dataclass(frozen=True, slots=True)
class _SqlInputs:
    """Everything the SQL statements need: tables, roles and options."""

    transactions: _SqlTable
    costs_tables: dict[str, _SqlTable]
    roles: _Roles
    costs: Costs
    window: _Window

    def rows(self, table: _SqlTable) -> sa.Subquery:
        """The rows of ``table`` inside the window."""
        statement = sa.select(table.rows)
        if not self.window.is_open:
            day = DayNumber(table.column(self.roles.timestamp))
            statement = statement.where(_within(day, self.window))
        return statement.subquery(f"{table.name}_in_window")

    def flag(self, rows: sa.Subquery, name: str | None) -> Expression:
        """A true/false column, or false for a role not mapped (no promotion column)."""
        return sa.false() if name is None else rows.c[name]


def _transaction_sums(inputs: _SqlInputs) -> sa.Subquery:
    """Per customer: counts and amounts of purchases, returns and promotions."""
    rows = inputs.rows(inputs.transactions)
    roles = inputs.roles
    amount = sa.cast(rows.c[roles.amount], sa.Double)
    is_return = inputs.flag(rows, roles.is_return)
    is_purchase = sa.not_(is_return)
    is_promoted = inputs.flag(rows, roles.promotion)

    def count(condition: Expression) -> Expression:
        return sa.func.count(sa.case((condition, 1)))

    def total(condition: Expression, value: Expression) -> Expression:
        return sa.func.coalesce(sa.func.sum(sa.case((condition, value))), 0.0)

    categories = sa.func.count(sa.distinct(sa.case((is_purchase, rows.c[roles.category]))))
    customer = rows.c[roles.customer_id]
    return (
        sa.select(
            customer.label("customer"),
            count(is_purchase).label("n_purchases"),
            count(is_return).label("n_returns"),
            count(sa.and_(is_purchase, is_promoted)).label("n_promoted"),
            categories.label("n_categories"),
            total(is_purchase, amount).label("revenue"),
            total(is_return, -amount).label("returned"),
            total(sa.and_(is_purchase, is_promoted), amount).label("promoted_revenue"),
            total(sa.and_(is_return, is_promoted), -amount).label("promoted_returned"),
        )
        .group_by(customer)
        .subquery("transaction_sums")
    )


def _unit_cost(inputs: _SqlInputs, rows: sa.Subquery) -> Expression:
    """The cost of each contact row: its cost column or the unit cost of its kind."""
    costs = inputs.costs
    if costs.contact_cost is None:
        return sa.cast(rows.c[costs.cost_column], sa.Double)
    if isinstance(costs.contact_cost, Mapping):
        whens = [
            (rows.c[costs.kind_column] == kind, sa.literal(float(cost), sa.Double))
            for kind, cost in costs.contact_cost.items()
        ]
        return sa.case(*whens) if whens else sa.null()
    return sa.literal(float(costs.contact_cost), sa.Double)


def _cost_sums(inputs: _SqlInputs, name: str) -> sa.Subquery:
    """Per customer: number and cost of contacts, or marketing cost."""
    table = inputs.costs_tables[name]
    rows = inputs.rows(table)
    customer = rows.c[inputs.roles.customer_id]
    if name == "service_contacts":
        cost = _unit_cost(inputs, rows)
        selected = [sa.func.count().label("n_contacts"), sa.func.sum(cost).label("service_cost")]
    else:
        cost = sa.cast(rows.c[inputs.costs.cost_column], sa.Double)
        selected = [sa.func.sum(cost).label("marketing_cost")]
    return (
        sa.select(customer.label("customer"), *selected).group_by(customer).subquery(f"{name}_sums")
    )


def _customer_sums(inputs: _SqlInputs) -> sa.Select[Any]:
    """The transaction sums joined with the cost sums (zero for customers without costs)."""
    sums = _transaction_sums(inputs)
    joined: sa.FromClause = sums
    selected: list[Expression] = [*sums.c]
    defaults = {"n_contacts": 0, "service_cost": 0.0, "marketing_cost": 0.0}
    for name in inputs.costs_tables:
        costs = _cost_sums(inputs, name)
        joined = joined.outerjoin(costs, sums.c.customer == costs.c.customer)
        selected += [
            sa.func.coalesce(column, defaults[column.name]).label(column.name)
            for column in costs.c
            if column.name != "customer"
        ]
    present = {column.name for column in selected}
    selected += [
        sa.literal(value).label(column)
        for column, value in defaults.items()
        if column not in present
    ]
    return sa.select(*selected).select_from(joined)


def _unmatched_sql(
    connection: sa.Connection, inputs: _SqlInputs, customers: sa.Subquery
) -> dict[str, tuple[int, int, float]]:
    """Rows, distinct customers and cost of cost rows without transactions in the window."""
    counts: dict[str, tuple[int, int, float]] = {}
    for name, table in inputs.costs_tables.items():
        rows = inputs.rows(table)
        customer = rows.c[inputs.roles.customer_id]
        cost = (
            _unit_cost(inputs, rows)
            if name == "service_contacts"
            else sa.cast(rows.c[inputs.costs.cost_column], sa.Double)
        )
        statement = sa.select(
            sa.func.count(), sa.func.count(sa.distinct(customer)), sa.func.sum(cost)
        ).where(customer.not_in(sa.select(customers.c.customer)))
        n_rows, n_customers, total = connection.execute(statement).one()
        counts[name] = (int(n_rows), int(n_customers), float(total or 0.0))
    return counts


def _outside_sql(connection: sa.Connection, inputs: _SqlInputs) -> dict[str, tuple[int, int]]:
    """Rows of each table before the start and after the end of the window."""
    counts: dict[str, tuple[int, int]] = {}
    tables = {"transactions": inputs.transactions, **inputs.costs_tables}
    for name, table in tables.items():
        if inputs.window.is_open:
            counts[name] = (0, 0)
            continue
        day = DayNumber(table.column(inputs.roles.timestamp))
        start, end = inputs.window.start_day, inputs.window.end_day
        before = sa.case((day < start, 1)) if start is not None else sa.null()
        after = sa.case((day > end, 1)) if end is not None else sa.null()
        statement = sa.select(sa.func.count(before), sa.func.count(after)).select_from(table.rows)
        n_before, n_after = connection.execute(statement).one()
        counts[name] = (int(n_before), int(n_after))
    return counts


# --- checks on the SQL path -------------------------------------------------------------------


def _transaction_problems(connection: sa.Connection, inputs: _SqlInputs) -> list[str]:
    """Missing ids, amounts, flags and categories, and amounts of the wrong sign."""
    rows = inputs.rows(inputs.transactions)
    roles = inputs.roles
    amount = rows.c[roles.amount]
    is_return = rows.c[roles.is_return]
    is_purchase = sa.and_(is_return.is_not(None), sa.not_(is_return))
    missing_category = sa.and_(is_purchase, rows.c[roles.category].is_(None))
    checks: list[tuple[str, str, Expression]] = [
        (roles.customer_id, _MISSING_ID, rows.c[roles.customer_id].is_(None)),
        (roles.amount, _BAD_AMOUNT, amount.is_(None)),
        *((flag, _BAD_FLAG, rows.c[flag].is_(None)) for flag in roles.flags),
        (roles.amount, _NEGATIVE_PURCHASE, sa.and_(is_purchase, amount < 0)),
        (roles.amount, _POSITIVE_RETURN, sa.and_(is_return, amount > 0)),
        (roles.category, _MISSING_CATEGORY, missing_category),
    ]
    statement = sa.select(
        sa.func.count(), *(sa.func.count(sa.case((condition, 1))) for _, _, condition in checks)
    )
    n_rows, *counts = connection.execute(statement).one()
    where = inputs.transactions.described
    return [
        line
        for (column, what, _), n_bad in zip(checks, counts, strict=True)
        for line in _bad_rows(column, what, int(n_bad), int(n_rows), where)
    ]


def _cost_problems(connection: sa.Connection, inputs: _SqlInputs, name: str) -> list[str]:
    """Missing ids, missing or negative costs, and contact kinds without a unit cost."""
    table = inputs.costs_tables[name]
    rows = inputs.rows(table)
    costs = inputs.costs
    customer = rows.c[inputs.roles.customer_id]
    checks: list[tuple[str, str, Expression]] = [
        (inputs.roles.customer_id, _MISSING_ID, customer.is_(None))
    ]
    if name == "marketing" or costs.contact_cost is None:
        cost = rows.c[costs.cost_column]
        checks.append((costs.cost_column, _BAD_COST, sa.or_(cost.is_(None), cost < 0)))
    elif isinstance(costs.contact_cost, Mapping):
        kind = rows.c[costs.kind_column]
        known = list(costs.contact_cost)
        unknown = sa.or_(kind.is_(None), kind.not_in(known)) if known else sa.true()
        checks.append((costs.kind_column, _UNKNOWN_KIND, unknown))
    statement = sa.select(
        sa.func.count(), *(sa.func.count(sa.case((condition, 1))) for _, _, condition in checks)
    )
    n_rows, *counts = connection.execute(statement).one()
    return [
        line
        for (column, what, _), n_bad in zip(checks, counts, strict=True)
        for line in _bad_rows(column, what, int(n_bad), int(n_rows), table.described)
    ]


def _currencies_sql(connection: sa.Connection, inputs: _SqlInputs) -> dict[str, dict[str, int]]:
    """Rows per currency of each table that has the currency column."""
    found: dict[str, dict[str, int]] = {}
    column = inputs.costs.currency_column
    for name, table in {"transactions": inputs.transactions, **inputs.costs_tables}.items():
        if column not in table.types:
            continue
        currency = table.column(column)
        statement = sa.select(currency, sa.func.count()).group_by(currency)
        found[name] = {str(value): int(rows) for value, rows in connection.execute(statement)}
    return found


def _timestamp_problems(connection: sa.Connection, inputs: _SqlInputs) -> list[str]:
    """Rows whose day cannot be told, so that the window cannot place them."""
    if inputs.window.is_open:
        return []
    problems = []
    for table in (inputs.transactions, *inputs.costs_tables.values()):
        day = DayNumber(table.column(inputs.roles.timestamp))
        statement = sa.select(sa.func.count(), sa.func.count(day)).select_from(table.rows)
        n_rows, n_days = connection.execute(statement).one()
        n_bad = n_rows - n_days
        problems += _bad_rows(
            inputs.roles.timestamp, _BAD_TIMESTAMP, n_bad, n_rows, table.described
        )
    return problems


def _check_sql(connection: sa.Connection, inputs: _SqlInputs) -> None:
    """Every check of the pandas path, counted in the database; raise once."""
    _check_sql_types(inputs.transactions, inputs.roles)
    for name, table in inputs.costs_tables.items():
        needed = _needed_cost_columns(inputs.roles, inputs.window, inputs.costs, name)
        _check_present(needed, list(table.types), table.described, _cost_columns_fix(name))
    _check_currencies(_currencies_sql(connection, inputs), inputs.costs.currency)
    problems = _timestamp_problems(connection, inputs) + _transaction_problems(connection, inputs)
    for name in inputs.costs_tables:
        problems += _cost_problems(connection, inputs, name)
    _raise_problems(problems, _CHECK_FIX)


def _sql_inputs(
    connection: sa.Connection,
    costs: Costs,
    *,
    table: str | None,
    query: SelectBase | None,
    options: _Options,
) -> _SqlInputs:
    """Resolve every table and role, and check that the needed columns exist."""
    rows, types, described = source_rows(connection, table, query, options.schema)
    transactions = _SqlTable("transactions", rows, types, described)
    roles = _roles(list(types), options.columns, options.category, options.promotion)
    fix = "Pass columns=cvalue.Columns(...), category= and promotion= with the right names"
    _check_present(roles.needed(options.window), list(types), described, fix)
    costs_tables = {
        name: _sql_table(connection, name, source, options.schema)
        for name, source in costs.tables().items()
    }
    return _SqlInputs(transactions, costs_tables, roles, costs, options.window)


@dataclass(frozen=True, slots=True)
class _Options:
    columns: Columns | None
    category: str
    promotion: str | None
    window: _Window
    schema: str | None


def _sums_frame(
    rows: pd.DataFrame, index_name: str, id_column: str = "customer"
) -> tuple[pd.Index, dict[str, Any]]:
    """The fetched sums as arrays (counts as int64, amounts as float64), indexed by customer."""
    sums: dict[str, Any] = {
        name: rows[name].to_numpy(dtype=np.int64 if name in _COUNTS else np.float64)
        for name in (*_TRANSACTION_SUMS, *_COST_SUMS)
    }
    return pd.Index(rows[id_column].to_list(), name=index_name), sums


@dataclass(frozen=True, slots=True)
class _Prepared:
    """The checked inputs, the per-customer sums' subquery and what it leaves out."""

    inputs: _SqlInputs
    customers: sa.Subquery
    unmatched: pd.DataFrame
    outside: pd.DataFrame


def _prepare(
    connection: sa.Connection,
    costs: Costs,
    *,
    table: str | None,
    query: SelectBase | None,
    options: _Options,
    keep: Callable[[sa.Select[Any]], sa.Select[Any]] | None = None,
) -> _Prepared:
    """Resolve and check the inputs; count the unmatched cost rows and the rows outside.

    ``keep`` computes the per-customer sums once (into a temporary table, say) and returns the
    select that reads them; the unmatched cost rows are then counted against the kept rows.
    """
    inputs = _sql_inputs(connection, costs, table=table, query=query, options=options)
    _check_sql(connection, inputs)
    sums = _customer_sums(inputs)
    customers = (sums if keep is None else keep(sums)).subquery("customers")
    unmatched = _unmatched_frame(_unmatched_sql(connection, inputs, customers))
    outside = _outside_frame(_outside_sql(connection, inputs))
    return _Prepared(inputs, customers, unmatched, outside)


def sql_customer_profitability(
    source: str | sa.Engine,
    costs: Costs,
    *,
    table: str | None = None,
    query: SelectBase | None = None,
    columns: Columns | None = None,
    category: str = "category",
    promotion: str | None = "is_promotion",
    min_categories: int = 2,
    start: DateLike | None = None,
    end: DateLike | None = None,
    schema: str | None = None,
    on_unmatched: OnUnmatched = "warn",
) -> ProfitTable:
    """:func:`cvalue.segments.customer_profitability` computed inside the database.

    Parameters
    ----------
    source
        A database URL (``"duckdb:///crm.duckdb"``) or a SQLAlchemy engine.
    costs
        Rates and cost tables; here the tables are table names (in ``schema``) or
        ``sa.select(...)`` statements.
    table, query
        Exactly one: the transactions table's name or a ``sa.select(...)`` of its rows.
    columns, category, promotion
        The transaction columns: roles as in :class:`cvalue.Columns` (``is_return`` is
        required), the product category, and the promotion flag (``None``: no promotions).
    min_categories
        A cross-buyer bought in at least this many categories.
    start, end
        Inclusive calendar days of the window (either may be open); rows outside are counted
        in ``outside_window``.
    schema
        The schema of the table names.
    on_unmatched
        What to do with cost rows whose customer has no transactions in the window: ``"warn"``
        (an :class:`UnmatchedCostsWarning`; they are counted in ``unmatched_costs``) or
        ``"raise"``.

    Returns
    -------
    ProfitTable
        The same table as the pandas path: counts exact, sums as the database adds them.

    Raises
    ------
    SchemaError
        A table or column is missing, a flag is not boolean, or the tables mix currencies.
    DataQualityError
        Missing ids, amounts, flags, categories or costs, or amounts of the wrong sign.
    DatabaseError
        The database failed; the driver's error is chained.

    Examples
    --------
    >>> engine = sa.create_engine("sqlite://")
    >>> log = pd.DataFrame({"customer_id": [1, 1, 2, 2],
    ...                     "amount": [100.0, 50.0, 80.0, -80.0],
    ...                     "category": ["books", "home", "books", "books"],
    ...                     "is_return": [False, False, False, True],
    ...                     "is_promotion": [False, True, False, False]})
    >>> _ = log.to_sql("transactions", engine, index=False)
    >>> _ = pd.DataFrame({"customer_id": [2, 2], "cost": [9.0, 5.0]}).to_sql(
    ...     "contacts", engine, index=False)
    >>> costs = Costs(margin_rate=0.3, promotion_discount_rate=0.2, return_handling_cost=8.0,
    ...               service_contacts="contacts")
    >>> table = sql_customer_profitability(engine, costs, table="transactions").customers
    >>> table[["is_cross_buyer", "net_revenue", "net_profit", "return_rate"]]
                 is_cross_buyer  net_revenue  net_profit  return_rate
    customer_id
    1                      True        150.0        35.0          0.0
    2                     False          0.0       -22.0          1.0
    """
    _check_min_categories(min_categories)
    options = _Options(columns, category, promotion, _Window.of(start, end), schema)
    with connection_to(source) as connection:
        prepared = _prepare(connection, costs, table=table, query=query, options=options)
        rows = fetch(connection, sa.select(prepared.customers))
    _report_unmatched(prepared.unmatched, on_unmatched)
    index, sums = _sums_frame(rows, prepared.inputs.roles.customer_id)
    customers = _customer_table(index, sums, costs, min_categories)
    return ProfitTable(customers, prepared.unmatched, prepared.outside)
