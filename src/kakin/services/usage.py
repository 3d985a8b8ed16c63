"""Usage: recording metered events and granting quota, at volume.

- :func:`record_events` takes up to 1,000 events; a repeated ``transaction_id``
  is reported as a duplicate and never counted twice; an event for a month
  already invoiced is refused (``period_closed``), not moved.
- :func:`consume` grants a send of N whole or refuses it with the quota left.

Under a hard limit both grant by one rule (:func:`_grant`, the cap of
:func:`kakin.domain.messaging.monthly_cap`): one conditional UPDATE
(``quantity + N <= cap``), so parallel calls never count more than the quota on
SQLite or PostgreSQL. ``kakin usage import`` goes through :func:`record_events`.
Both count into the same monthly counters that billing reads for overage.
"""

from __future__ import annotations

import csv
import json
import secrets
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import IO, Any

from kakin.adapters.db.store import UnitOfWork
from kakin.adapters.db.usage_repo import DuplicateEvent
from kakin.domain import errors
from kakin.domain.calendar import local_date, month_start
from kakin.domain.catalog import UsagePrice
from kakin.domain.messaging import monthly_cap, plan_in_effect, quota_of, refuse, remaining

from .tenancy import Tenant

MAX_BATCH = 1000
FUTURE_TOLERANCE = timedelta(minutes=5)


@dataclass(frozen=True)
class Plan:
    customer_id: int
    plan: str
    open_from: date  # first month not yet invoiced
    catalog_version: int = 1  # the catalog version whose quotas apply (issue 13)


# An event row as checked: (customer_id, metric, quantity, occurred_at, month, transaction_id, capped), where
# capped is (plan, usage price) when the plan caps the metric (a hard limit), else None.
_Row = tuple[int, str, int, datetime, date, str, tuple[str, UsagePrice] | None]


def _plans(uow: UnitOfWork, tenant: Tenant, keys: set[str], today: date) -> dict[str, Plan]:
    """Each customer's plan in effect today and the first month still open for usage."""
    out = {}
    for key, cid, plan, pending, period_start, status, version in uow.usage.live_plans(tenant.row.id, list(keys)):
        if status == "canceled":
            continue
        current = plan_in_effect(plan, pending.plan if pending else None, pending.effective_on if pending else None, today)
        if current != plan and pending is not None and pending.catalog_version is not None:
            version = pending.catalog_version
        out[key] = Plan(cid, current, month_start(period_start), version)
    return out


def consume(uow: UnitOfWork, tenant: Tenant, key: str, metric: str, count: int, now: datetime,
            transaction_id: str | None = None) -> dict[str, Any]:
    """Grant ``count`` units of ``metric`` this month whole, or raise QuotaExceeded counting nothing.

    Returns ``granted``, ``duplicate``, ``count``, ``used``, ``included`` and ``remaining`` (``None`` when
    unlimited). The monthly cap is :func:`~kakin.domain.messaging.monthly_cap`, the same as for usage events.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise errors.InvalidValue("count must be a whole number of at least 1", param="count")
    today = local_date(now, tenant.lifecycle.zone)
    plans = _plans(uow, tenant, {key}, today)
    if key not in plans:
        if uow.account_id(tenant.row, key) is None:
            raise errors.NotFound(f"no customer {key!r}", param="customer")
        raise errors.NotSubscribed("the customer has no plan to send under", param="customer")
    p = plans[key]
    usage = quota_of(tenant.lifecycle.history.catalog(p.catalog_version), p.plan, metric)
    month = month_start(today)
    txn = transaction_id or "consume_" + secrets.token_hex(12)
    if transaction_id is not None and _known(uow, tenant, [txn]):
        used = _used(uow, p.customer_id, metric, month)
        return {"granted": False, "duplicate": True, "count": count, "used": used, **_left(usage.included, used)}
    uow.usage.count({(p.customer_id, metric, month): 0})
    try:
        with uow.usage.atomically():  # the grant and its event stand or fall together
            if not _grant(uow, p.customer_id, metric, month, count, monthly_cap(usage)):
                raise refuse(p.plan, usage, metric, _used(uow, p.customer_id, metric, month), count)
            uow.usage.add_events(tenant.row.id, [(p.customer_id, metric, count, now, month, txn)], now)
    except DuplicateEvent:  # the same transaction_id was granted concurrently: count it once
        used = _used(uow, p.customer_id, metric, month)
        return {"granted": False, "duplicate": True, "count": count, "used": used, **_left(usage.included, used)}
    used = _used(uow, p.customer_id, metric, month)
    return {"granted": True, "duplicate": False, "count": count, "used": used, **_left(usage.included, used)}


def _grant(uow: UnitOfWork, customer_id: int, metric: str, month: date, count: int, cap: int | None) -> bool:
    """Add ``count`` to an existing monthly counter in one conditional UPDATE; False (nothing added) past ``cap``.

    One statement decides and counts (``uow.usage.add_to_counter``), so parallel grants never pass the cap.
    """
    return uow.usage.add_to_counter(customer_id, metric, month, count, cap)


def _grant_capped(uow: UnitOfWork, rows: list[_Row]) -> dict[str, errors.KakinError]:
    """Count the batch's events under a hard limit, in order, each whole or refused; returns the refusals by id.

    Events of one customer, metric and month count against each other: first the group's total is tried in one
    conditional UPDATE (the usual case: it fits); when it does not, each event is tried in turn.
    """
    groups: dict[tuple[int, str, date], list[_Row]] = defaultdict(list)
    for r in rows:
        if r[6] is not None:
            groups[(r[0], r[1], r[4])].append(r)
    if not groups:
        return {}
    keys = sorted(groups)  # one lock order for every writer (PostgreSQL)
    uow.usage.count(dict.fromkeys(keys, 0))
    refused: dict[str, errors.KakinError] = {}
    for key in keys:
        group = groups[key]
        customer_id, metric, month = key
        capped = group[0][6]
        assert capped is not None
        plan, usage = capped
        cap = monthly_cap(usage)
        if _grant(uow, customer_id, metric, month, sum(r[2] for r in group), cap):
            continue
        for r in group:
            if not _grant(uow, customer_id, metric, month, r[2], cap):
                refused[r[5]] = refuse(plan, usage, metric, _used(uow, customer_id, metric, month), r[2])
    return refused


def _left(included: int | None, used: int) -> dict[str, int | None]:
    return {"included": included, "remaining": remaining(included, used)}


def _used(uow: UnitOfWork, customer_id: int, metric: str, month: date) -> int:
    return uow.usage.used(customer_id, metric, month)


def _known(uow: UnitOfWork, tenant: Tenant, transaction_ids: list[str]) -> set[str]:
    """The ids among ``transaction_ids`` the tenant has already recorded."""
    return uow.usage.known_transactions(tenant.row.id, transaction_ids)


def record_events(uow: UnitOfWork, tenant: Tenant, events: list[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
    """Record a batch of metered events; returns one result per event, in order.

    Each event: ``customer``, ``metric``, ``quantity`` (≥ 1), ``timestamp`` (aware datetime), ``transaction_id``.
    Status is ``recorded``, ``duplicate`` (already counted) or ``refused`` with an error (``code``, ``message``,
    ``param``; ``remaining`` too for ``quota_exceeded``). Under a hard limit each event is granted whole or
    refused whole (``quota_exceeded``, nothing counted) by the rule of :func:`consume`; events of one batch
    count against each other in order, and parallel batches never count past the cap.
    """
    return _record(uow, tenant, events, now)[0]


def _record(uow: UnitOfWork, tenant: Tenant, events: list[dict[str, Any]],
            now: datetime) -> tuple[list[dict[str, Any]], dict[int, errors.KakinError]]:
    """:func:`record_events`, and the refusals themselves by the position of their event."""
    if len(events) > MAX_BATCH:
        raise errors.InvalidValue(f"a batch holds at most {MAX_BATCH} events; split it", param="events")
    zone = tenant.lifecycle.zone
    plans = _plans(uow, tenant, {str(e.get("customer")) for e in events}, local_date(now, zone))
    known = _known(uow, tenant, [str(e.get("transaction_id")) for e in events])
    results: list[dict[str, Any]] = []
    failures: dict[int, errors.KakinError] = {}
    rows: list[_Row] = []
    seen: set[str] = set()
    metered: dict[tuple[int, str, str], tuple[str, UsagePrice] | None] = {}  # (version, plan, metric) → its cap
    latest = now + FUTURE_TOLERANCE
    for e in events:
        txn = e.get("transaction_id")
        try:
            row = _check(tenant, e, plans, latest, metered)
        except errors.KakinError as exc:
            failures[len(results)] = exc
            results.append({"transaction_id": txn, "status": "refused", "error": exc.as_dict()})
            continue
        if txn in known or txn in seen:
            results.append({"transaction_id": txn, "status": "duplicate"})
            continue
        seen.add(row[5])
        rows.append(row)
        results.append({"transaction_id": txn, "status": "recorded"})
    refused: dict[str, errors.KakinError] = {}
    for _ in range(5):
        try:
            with uow.usage.atomically():  # grants under a hard limit and the events stand or fall together
                refused = _grant_capped(uow, rows)
                kept = [r for r in rows if r[5] not in refused] if refused else rows
                if kept:
                    uow.usage.add_events(tenant.row.id, kept, now)
            break
        except DuplicateEvent:  # another request recorded some of these ids meanwhile: they are duplicates now
            raced = _known(uow, tenant, [r[5] for r in rows])
            rows = [r for r in rows if r[5] not in raced]
            for result in results:
                if result["transaction_id"] in raced and result["status"] == "recorded":
                    result["status"] = "duplicate"
    else:
        raise RuntimeError("usage events kept colliding with concurrent writers")
    if refused:
        for i, result in enumerate(results):
            refusal = refused.get(result["transaction_id"]) if result["status"] == "recorded" else None
            if refusal is not None:
                failures[i] = refusal
                result.update(status="refused", error=refusal.as_dict())
    totals: dict[tuple[int, str, date], int] = defaultdict(int)
    for customer_id, metric, quantity, _at, month, _txn, capped in rows:
        if capped is None:  # events under a hard limit were counted by their grant
            totals[(customer_id, metric, month)] += quantity
    uow.usage.count(totals)
    return results, failures


def record_event(uow: UnitOfWork, tenant: Tenant, event: dict[str, Any], now: datetime) -> dict[str, Any]:
    """Record one metered event (the fields of :func:`record_events`); returns ``{"duplicate": bool}``.

    A repeated ``transaction_id`` is a duplicate: nothing counted, the first event wins. A refused event raises
    a :class:`~kakin.domain.errors.KakinError` with the event's code (``quota_exceeded``, ``period_closed``,
    ``unknown_metric``, …), message and field.
    """
    results, failures = _record(uow, tenant, [event], now)
    if 0 in failures:
        raise failures[0]
    return {"duplicate": results[0]["status"] == "duplicate"}


def _check(tenant: Tenant, e: dict[str, Any], plans: dict[str, Plan], latest: datetime,
           metered: dict[tuple[int, str, str], tuple[str, UsagePrice] | None]) -> _Row:
    """One event checked; ``latest`` is the latest timestamp accepted (now and a little clock skew).

    Exact type checks (``type(x) is int``) also refuse bools.
    """
    txn = e.get("transaction_id")
    if type(txn) is not str or not 1 <= len(txn) <= 200:
        raise errors.InvalidValue("transaction_id must be a string of 1–200 characters", param="transaction_id")
    quantity = e.get("quantity")
    if type(quantity) is not int or not 1 <= quantity <= 10**12:
        raise errors.InvalidValue("quantity must be a whole number of at least 1", param="quantity")
    at = e.get("timestamp")
    if not isinstance(at, datetime) or at.tzinfo is None:
        raise errors.InvalidValue("timestamp must be a date-time with a UTC offset", param="timestamp")
    if at > latest:
        raise errors.TimestampInFuture("timestamp is in the future", param="timestamp")
    key = e.get("customer")
    plan = plans.get(key if type(key) is str else str(key))
    if plan is None:
        raise errors.NotFound(f"no customer {key!r} with a plan", param="customer")
    metric = e.get("metric")
    if type(metric) is not str:
        raise errors.InvalidValue("metric must be a string", param="metric")
    pair = (plan.catalog_version, plan.plan, metric)
    if pair in metered:
        capped = metered[pair]
    else:
        usage = quota_of(tenant.lifecycle.history.catalog(plan.catalog_version), plan.plan, metric)
        capped = metered[pair] = (plan.plan, usage) if monthly_cap(usage) is not None else None
    zone = tenant.lifecycle.zone
    local = at if at.tzinfo is zone else at.astimezone(zone)
    month = date(local.year, local.month, 1)  # month_start(local_date(at, zone)), inlined
    if month < plan.open_from:
        raise errors.PeriodClosed(
            f"{month:%Y-%m} is already invoiced for {key}; usage for it can no longer be recorded",
            param="timestamp")
    return plan.customer_id, metric, quantity, at, month, txn, capped


def read_events(handle: IO[str], batch_size: int) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """Parse CSV (header: customer,metric,quantity,timestamp,transaction_id) or JSON lines into batches.

    Yields (first line number, events). A line that cannot be parsed raises ValueError naming it.
    """
    first = handle.readline()
    handle.seek(0)
    is_json = first.lstrip().startswith("{")
    rows: Iterator[tuple[int, dict[str, Any]]]
    if is_json:
        rows = ((n, _json_line(n, text)) for n, text in enumerate(handle, start=1) if text.strip())
    else:
        reader = csv.DictReader(handle)
        missing = {"customer", "metric", "quantity", "timestamp", "transaction_id"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"the CSV header lacks {', '.join(sorted(missing))}")
        rows = ((n, dict(r)) for n, r in enumerate(reader, start=2))
    batch: list[dict[str, Any]] = []
    start = 0
    for n, raw in rows:
        if not batch:
            start = n
        batch.append(_event(n, raw))
        if len(batch) == batch_size:
            yield start, batch
            batch = []
    if batch:
        yield start, batch


def _json_line(n: int, text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"line {n}: not JSON ({exc.msg})") from None
    if not isinstance(value, dict):
        raise ValueError(f"line {n}: expected an object")
    return value


def _event(n: int, raw: dict[str, Any]) -> dict[str, Any]:
    try:
        quantity = int(raw["quantity"])
        timestamp = datetime.fromisoformat(str(raw["timestamp"]))
    except (KeyError, ValueError, TypeError) as exc:
        raise ValueError(f"line {n}: quantity must be a whole number and timestamp an ISO date-time ({exc})") from None
    return {"customer": raw.get("customer"), "metric": raw.get("metric"), "quantity": quantity, "timestamp": timestamp,
            "transaction_id": None if raw.get("transaction_id") is None else str(raw["transaction_id"])}
