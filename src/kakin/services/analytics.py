"""The operator console's dashboard figures (issue 12): MRR and ARR, customers per plan, new and churned customers,
revenue invoiced and messages per month, open and overdue amounts.

Each figure is a query of ``adapters/db/reports_repo`` plus the catalog's prices. The monthly series sum
append-only rows (invoices, credit notes, usage events) incrementally (``services.series``): exact on every call,
without reading a million invoices each time, nor at a process's first call once the worker has saved the sums
(:func:`save_sums`). Yen are integers, exclusive of tax; the recurring revenue is an exact
``Fraction`` until its one rounding (:func:`mrr_of`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

from kakin.adapters.catalog_files import resolve_catalog
from kakin.adapters.db.rows import TenantRow
from kakin.adapters.db.store import UnitOfWork
from kakin.domain.account import Status
from kakin.domain.calendar import add_months, month_start, start_of_day
from kakin.domain.catalog import Basis, Catalog, Plan, Price
from kakin.domain.money import Rounding, round_yen

from . import series
from .tenancy import Tenant

# Subscriptions whose price recurs: billed now. Trials are not (nor is a NipoPlus cancellation, whose paid days
# left the seed turns into a trial); suspended, incomplete (3-D Secure pending) and cancelled ones neither.
RECURRING = (Status.ACTIVE.value, Status.PAST_DUE.value)
# A customer with a paid main subscription in one of these has not churned (a trial or a 3-D Secure sign-up
# under way, a dunning in progress).
LIVE = (Status.ACTIVE.value, Status.PAST_DUE.value, Status.TRIALING.value, Status.INCOMPLETE.value,
        Status.SUSPENDED.value)
MONTHS = 12  # the charts' months, ending with this one
METRIC = "messages"  # the metered usage the dashboard charts (LINE OA messages)
MRR_ROUNDING = Rounding.FLOOR  # the one rounding of the recurring revenue


@dataclass(frozen=True)
class Dashboard:
    """The dashboard's figures for one tenant on ``today`` (a tenant-local date). Yen exclude tax.

    - ``mrr``: monthly recurring revenue now, :func:`mrr_of`; ``arr`` = 12 × ``mrr``.
    - ``active_by_plan``: plan code → customers whose main subscription is active or past due on it (free plans
      included, trials not).
    - ``new_this_month``: customers created this calendar month.
    - ``churned_this_month``: customers whose paid main subscription ended this month (cancelled, deleted (退会),
      or moved to the free plan after dunning) and who have no paid plan now; a cancellation that waits for the end
      of its period or term counts in the month it takes effect.
    - ``invoiced_by_month``: the last 12 months (``YYYY-MM``, oldest first): sales invoiced that month before tax
      (void invoices left out; a credit balance applied does not reduce a sale), less the credit notes issued that
      month, before tax.
    - ``messages_by_month``: the same months: LINE OA messages counted (recorded usage events of the metric
      ``messages``, granted sends included: the sums of the monthly counters).
    - ``open_amount``: yen still due on open invoices, tax included, less what credit notes reduced;
      ``overdue_amount``: the part of it past due (a failed charge in dunning, or a bank transfer past its due date).
    """

    today: date
    mrr: int
    arr: int
    active_by_plan: dict[str, int]
    new_this_month: int
    churned_this_month: int
    invoiced_by_month: list[tuple[str, int]]
    messages_by_month: list[tuple[str, int]]
    open_amount: int
    overdue_amount: int

    def as_dict(self) -> dict[str, Any]:
        """The figures as JSON-ready values (months as ``{"month", "amount"}`` / ``{"month", "messages"}``)."""
        return {"today": self.today.isoformat(), "mrr": self.mrr, "arr": self.arr,
                "active_by_plan": dict(self.active_by_plan), "new_this_month": self.new_this_month,
                "churned_this_month": self.churned_this_month,
                "invoiced_by_month": [{"month": m, "amount": a} for m, a in self.invoiced_by_month],
                "messages_by_month": [{"month": m, "messages": n} for m, n in self.messages_by_month],
                "open_amount": self.open_amount, "overdue_amount": self.overdue_amount}


def _catalog(tenant: TenantRow | Tenant) -> tuple[TenantRow, Catalog]:
    if isinstance(tenant, Tenant):
        return tenant.row, tenant.catalog
    return tenant, resolve_catalog(tenant.catalog)


def _before_tax(catalog: Catalog, price: Price, amount: Fraction) -> Fraction:
    """An amount in the catalog's price basis without its tax: a tax-inclusive price ÷ (1 + rate)."""
    if not catalog.tax_inclusive:
        return amount
    rate = price.tax_rate if price.tax_rate is not None else catalog.tax_rate
    return amount / (1 + rate)


def monthly_price(catalog: Catalog, plan: Plan, contract: str, *, customers: int, seats: int, members: int,
                  members_over_seats: int) -> Fraction:
    """The exact monthly recurring price, before tax, of ``customers`` main subscriptions on ``plan`` and
    ``contract`` with these sums of seats and registered users: per seat × seats, per member × registered users,
    flat × customers; registered users beyond seats at the price ``members_over_seats`` names (LINE WORKS annual
    licenses); a price for n months ÷ n. Usage (overage) is not recurring and is left out. A contract the plan
    does not price is 0."""
    price = plan.prices.get(contract)
    if price is None:
        return Fraction(0)
    quantity = {Basis.SEAT: seats, Basis.MEMBER: members, Basis.FLAT: customers}[price.basis]
    total = _before_tax(catalog, price, Fraction(price.unit_amount * quantity, price.interval_months))
    over = plan.prices.get(price.members_over_seats) if price.members_over_seats else None
    if over is not None and members_over_seats:
        total += _before_tax(catalog, over, Fraction(over.unit_amount * members_over_seats, over.interval_months))
    return total


def mrr_of(exact_monthly: Iterable[Fraction]) -> int:
    """MRR: the exact monthly prices summed, then floored once to whole yen (the only rounding of MRR and ARR)."""
    return round_yen(sum(exact_monthly, Fraction(0)), MRR_ROUNDING)


def _priced_by_members(plan: Plan) -> bool:
    return any(p.basis is Basis.MEMBER or p.members_over_seats for p in plan.prices.values())


def _recurring(uow: UnitOfWork, row: TenantRow, catalog: Catalog) -> tuple[int, dict[str, int]]:
    exact: list[Fraction] = []
    by_plan: dict[str, int] = {}
    member_plans = sorted(code for code, plan in catalog.plans.items() if _priced_by_members(plan))
    users = {(g["plan"], g["contract"]): g
             for g in uow.reports.recurring_member_groups(row.id, RECURRING, member_plans)}
    for g in uow.reports.recurring_plan_groups(row.id, RECURRING):
        by_plan[g["plan"]] = by_plan.get(g["plan"], 0) + int(g["customers"])
        plan = catalog.plans.get(g["plan"])
        u = users.get((g["plan"], g["contract"]), {})
        if plan is not None:
            exact.append(monthly_price(catalog, plan, g["contract"], customers=int(g["customers"]),
                                       seats=int(g["seats"]), members=int(u.get("members", 0)),
                                       members_over_seats=int(u.get("members_over_seats", 0))))
    # add-ons at their own price, then those under a plan that overrides it moved to that price (LINE OA's premium
    # ID: free under the local-government plan)
    overriding = sorted({plan for addon in catalog.addons.values() for plan in addon.plan_overrides})
    for g in uow.reports.recurring_addon_groups(row.id, RECURRING, sorted(catalog.addons)):
        exact.append(_addon_price(catalog, g["product"], g["contract"], None, int(g["count"])))
    for g in uow.reports.recurring_addon_groups_under(row.id, RECURRING, overriding):
        n = int(g["count"])
        exact.append(_addon_price(catalog, g["product"], g["contract"], g["main_plan"], n)
                     - _addon_price(catalog, g["product"], g["contract"], None, n))
    return mrr_of(exact), dict(sorted(by_plan.items()))


def _addon_price(catalog: Catalog, product: str, contract: str, main_plan: str | None, count: int) -> Fraction:
    """The exact monthly price before tax of ``count`` add-ons ``product`` on ``contract``, at the price under
    ``main_plan`` (None: the add-on's own price); 0 for an add-on or contract the catalog does not price."""
    addon = catalog.addons.get(product)
    price = addon.prices.get(contract) if addon is not None else None
    if addon is None or price is None:
        return Fraction(0)
    unit = addon.unit_amount(contract, main_plan) if main_plan is not None else price.unit_amount
    return _before_tax(catalog, price, Fraction(unit * count, price.interval_months))


def _months(today: date) -> list[date]:
    """The first days of the last :data:`MONTHS` months, oldest first, ending with ``today``'s."""
    this = month_start(today)
    return [add_months(this, n - MONTHS + 1) for n in range(MONTHS)]


def _by_month(months: list[date], *signed: tuple[int, list[tuple[date, int]]]) -> list[tuple[str, int]]:
    """Sum (sign × amount) per month of day-dated rows, for each of ``months`` (rows of other months left out)."""
    totals = dict.fromkeys(months, 0)
    for sign, rows in signed:
        for day, amount in rows:
            month = month_start(day)
            if month in totals:
                totals[month] += sign * amount
    return [(m.strftime("%Y-%m"), totals[m]) for m in months]


def _series_of(uow: UnitOfWork, tid: int) -> list[tuple[str, tuple[Any, ...], series.Fetch, str]]:
    """The dashboard's monthly series of tenant ``tid``: (table, key, fetch, saved name) of the invoices' sales, the
    credit notes' amounts and the messages counted (:func:`dashboard`, :func:`save_sums`)."""
    reports = uow.reports
    return [("invoices", (tid,), lambda a, u: reports.invoice_sums(tid, a, u), "invoices"),
            ("credit_notes", (tid,), lambda a, u: reports.credit_note_sums(tid, a, u), "credit_notes"),
            ("usage_events", (tid, METRIC), lambda a, u: reports.usage_sums(tid, METRIC, a, u),
             f"usage_events:{METRIC}")]


def save_sums(unit_of_work: Callable[[bool], UnitOfWork], tenant_ids: Iterable[int]) -> int:
    """Save each tenant's dashboard series as settled so far (``services.series``), for the worker's pass: each is
    brought up to date in a read-only unit of work (``unit_of_work(True)``), then saved in a short writing one
    (``unit_of_work(False)``) where it reaches further than what is saved. The first dashboard of a process then
    reads the saved sums and the rows above their mark. Returns how many series were saved."""
    saved = 0
    for tid in tenant_ids:
        with unit_of_work(True) as uow:
            kept = _series_of(uow, tid)
            for table, key, fetch, name in kept:
                series.sums(uow, table, key, fetch, saved=(tid, name))
        with unit_of_work(False) as uow:
            saved += sum(series.save(uow, table, key, (tid, name)) for table, key, _, name in kept)
    return saved


def dashboard(uow: UnitOfWork, tenant_row: TenantRow | Tenant, today: date) -> Dashboard:
    """The dashboard of ``tenant_row`` (a ``TenantRow``, or an opened ``Tenant``) on ``today``, its local date.

    Read-only; every figure is described on :class:`Dashboard`. The figures are the issue's (issue 12, page 1);
    the prices are the catalog's, so a plan's MRR follows the seed's numbers (LINE WORKS 300 / 500 / 1,000 yen per
    license a month on annual contracts, 360 / 600 / 1,200 per user monthly; NipoPlus 180 yen a user, tax included,
    counted as 180 ÷ 1.1; LINE OA light 5,000, standard 15,000, premium ID 100 a month or 1,200 ÷ 12).
    """
    row, catalog = _catalog(tenant_row)
    mrr, by_plan = _recurring(uow, row, catalog)
    zone = ZoneInfo(row.timezone)
    this, months = month_start(today), _months(today)
    following = add_months(this, 1)
    created = uow.reports.customers_created(row.id, start_of_day(this, zone), start_of_day(following, zone))
    paid = sorted(code for code, plan in catalog.plans.items() if not plan.is_free)
    churned = uow.reports.customers_whose_plan_ended(row.id, this, following, paid, LIVE)
    reports, tid = uow.reports, row.id
    sales, credited, used = (series.sums(uow, table, key, fetch, saved=(tid, name))
                             for table, key, fetch, name in _series_of(uow, tid))
    invoiced = _by_month(months, (1, list(sales.items())), (-1, list(credited.items())),
                         (-1, reports.void_invoice_sums(tid, months[0], following)))
    messages = _by_month(months, (1, list(used.items())))
    open_amount, overdue = uow.reports.open_amounts(row.id, today)
    return Dashboard(today=today, mrr=mrr, arr=12 * mrr, active_by_plan=by_plan, new_this_month=created,
                     churned_this_month=churned, invoiced_by_month=invoiced, messages_by_month=messages,
                     open_amount=open_amount, overdue_amount=overdue)
