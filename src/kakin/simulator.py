"""``kakin simulate``: run a scenario file on a fresh in-memory store and report what was billed.

The scenario format is documented in the scenarios README: a tenant (a shipped
catalog or a catalog file), customers, and time-ordered steps. Before each
step the clock moves to its time and everything due happens; then the step's
action runs. A refused action is reported with its error code; a malformed
file stops with :class:`ScenarioError`.
"""

from __future__ import annotations

import json
import random
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from kakin.adapters.catalog_files import resolve_catalog
from kakin.adapters.db.migrate import make_engine, migrate
from kakin.adapters.db.store import UnitOfWork
from kakin.adapters.payments import CardSimulator
from kakin.domain.errors import CatalogError, KakinError
from kakin.services import billing, catalogs, clocks, due_run, usage
from kakin.services.documents import set_billing_profile
from kakin.services.tenancy import create_tenant, open_tenant


class ScenarioError(Exception):
    """The scenario file itself is malformed: names the file, the place and the problem."""

    def __init__(self, file: str, where: str, problem: str) -> None:
        super().__init__(f"{file}: {where}: {problem}")
        self.file, self.where, self.problem = file, where, problem


# action → (required fields, optional fields) besides `at` and `action`; each field with its type
_INT, _STR = int, str
ACTIONS: dict[str, tuple[dict[str, type], dict[str, type]]] = {
    "subscribe": ({"customer": _STR, "plan": _STR}, {"contract": _STR, "seats": _INT, "members": _INT, "trial_days": _INT}),
    "set_seats": ({"customer": _STR, "seats": _INT}, {}),
    "set_members": ({"customer": _STR, "members": _INT}, {}),
    "change_plan": ({"customer": _STR, "plan": _STR}, {"contract": _STR, "seats": _INT}),
    "cancel": ({"customer": _STR}, {}),
    "set_payment_method": ({"customer": _STR, "payment_method": _STR}, {}),
    "send_messages": ({"customer": _STR, "count": _INT}, {}),
    "set_premium_id": ({"customer": _STR, "premium_id": _STR}, {"billing": _STR}),
    "record_usage": ({"customer": _STR, "metric": _STR, "quantity": _INT, "transaction_id": _STR}, {"timestamp": datetime}),
    "publish_catalog": ({"file": _STR, "effective": date, "existing": _STR}, {}),
    "advance": ({}, {}),
}
CUSTOMER_FIELDS = {"id": _STR, "name": _STR, "payment_method": _STR, "members": _INT,
                   "addressee": _STR, "postal_code": _STR, "address": _STR, "email": _STR}
ISSUER_FIELDS: dict[str, type] = {"name": _STR, "registration_number": _STR, "address": _STR}


@dataclass
class Scenario:
    file: str
    tenant: str
    zone: ZoneInfo
    customers: list[dict[str, Any]]
    steps: list[dict[str, Any]]
    issuer: dict[str, Any] = field(default_factory=dict)


@dataclass
class Outcome:
    tenant: str
    invoices: list[dict[str, Any]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    customers: list[dict[str, Any]] = field(default_factory=list)
    tax_inclusive: bool = False
    credit_notes: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"tenant": self.tenant, "tax_inclusive": self.tax_inclusive, "invoices": self.invoices,
                "credit_notes": self.credit_notes, "steps": self.steps, "customers": self.customers}


def _type_name(kind: type) -> str:
    return {int: "an integer", str: "a string", datetime: "a TOML date-time such as 2025-04-01T09:00:00",
            date: "a TOML date-time such as 2025-06-01T00:00:00 (or a date)"}[kind]


def _check_fields(file: str, where: str, data: Any, required: dict[str, type], optional: dict[str, type]) -> None:
    if not isinstance(data, dict):
        raise ScenarioError(file, where, "must be a table")
    for name, kind in {**required, **optional}.items():
        if name in data:
            value = data[name]
            if not isinstance(value, kind) or isinstance(value, bool):
                raise ScenarioError(file, where, f"{name} must be {_type_name(kind)}, not {value!r}")
    for name in required:
        if name not in data:
            raise ScenarioError(file, where, f"missing field {name!r}")


def _instant(file: str, where: str, value: Any, zone: ZoneInfo, name: str = "at") -> datetime:
    """An instant: a TOML local date-time is in the tenant's ``zone``; a bare date is its midnight there."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=zone) if value.tzinfo is None else value
    if isinstance(value, date):
        return datetime.combine(value, time(0), tzinfo=zone)
    raise ScenarioError(file, where, f"{name} must be a TOML date-time such as 2025-04-01T09:00:00, not {value!r}")


def load_scenario(path: str | Path) -> Scenario:
    file = str(path)
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ScenarioError(file, "(file)", "no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(file, "(syntax)", f"not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ScenarioError(file, "(file)", "not UTF-8 text") from None
    for key in data:
        if key not in ("tenant", "customers", "steps", "issuer"):
            raise ScenarioError(file, key, "unknown key; a scenario has tenant, [issuer], [[customers]] and [[steps]]")
    issuer = data.get("issuer", {})
    _check_fields(file, "issuer", issuer, {}, ISSUER_FIELDS)
    for key in issuer:
        if key not in ISSUER_FIELDS:
            raise ScenarioError(file, "issuer", f"unknown field {key!r}; an issuer has {', '.join(ISSUER_FIELDS)}")
    tenant = data.get("tenant")
    if not isinstance(tenant, str) or not tenant:
        raise ScenarioError(file, "tenant", "give a shipped catalog (lineworks, nipoplus, line-oa) or a catalog file path")
    try:
        catalog = resolve_catalog(tenant, base=Path(path).resolve().parent)
    except CatalogError as exc:
        raise ScenarioError(file, "tenant", str(exc)) from None
    zone = ZoneInfo(catalog.timezone)
    customers = data.get("customers", [])
    if not isinstance(customers, list):
        raise ScenarioError(file, "customers", "must be an array of tables ([[customers]])")
    seen: set[str] = set()
    for i, c in enumerate(customers):
        where = f"customers[{i}]"
        _check_fields(file, where, c, {"id": _STR, "name": _STR},
                      {k: v for k, v in CUSTOMER_FIELDS.items() if k not in ("id", "name")})
        for key in c:
            if key not in CUSTOMER_FIELDS:
                raise ScenarioError(file, where, f"unknown field {key!r}; a customer has {', '.join(CUSTOMER_FIELDS)}")
        if c["id"] in seen:
            raise ScenarioError(file, where, f"customer id {c['id']!r} is used twice")
        seen.add(c["id"])
    steps = data.get("steps", [])
    if not isinstance(steps, list) or not steps:
        raise ScenarioError(file, "steps", "give at least one [[steps]] table")
    previous: datetime | None = None
    parsed = []
    for i, s in enumerate(steps):
        if not isinstance(s, dict):
            raise ScenarioError(file, f"steps[{i}]", "must be a table")
        action = s.get("action")
        where = f"steps[{i}] ({action})" if isinstance(action, str) else f"steps[{i}]"
        if action not in ACTIONS:
            raise ScenarioError(file, where, f"unknown action {action!r}; one of: {', '.join(ACTIONS)}")
        if "at" not in s:
            raise ScenarioError(file, where, "missing field 'at'")
        required, optional = ACTIONS[action]
        _check_fields(file, where, s, required, optional)
        for key in s:
            if key not in ("at", "action", *required, *optional):
                raise ScenarioError(file, where, f"unknown field {key!r} for {action}")
        if "customer" in s and s["customer"] not in seen:
            raise ScenarioError(file, where, f"customer {s['customer']!r} is not declared in [[customers]]")
        at = _instant(file, where, s["at"], zone)
        if previous is not None and at < previous:
            raise ScenarioError(file, where, f"at {at.isoformat()} is before the previous step; steps must be in time order")
        previous = at
        if "timestamp" in s:
            s = {**s, "timestamp": _instant(file, where, s["timestamp"], zone, "timestamp")}
        if action == "publish_catalog":
            s = {**s, "effective": _instant(file, where, s["effective"], zone, "effective"),
                 "file": _published_file(file, where, s["file"])}
        parsed.append({**s, "at": at})
    return Scenario(file, tenant, zone, customers, parsed, issuer)


def _published_file(file: str, where: str, name: str) -> str:
    """A catalog file a ``publish_catalog`` step names, relative to the scenario; it must exist."""
    path = (Path(file).resolve().parent / name).resolve()
    if not path.is_file():
        raise ScenarioError(file, where, f"file {name!r}: no such catalog file (paths are relative to the scenario)")
    return str(path)


def run_scenario(scenario: Scenario, database_url: str = "sqlite://", documents: Path | None = None) -> Outcome:
    """Run on a fresh store (in memory by default) and report; with ``documents``, write each invoice's papers there."""
    engine = make_engine(database_url)
    migrate(engine)
    try:
        steps = play(scenario, engine, "scenario", CardSimulator())
        if documents is not None:
            from kakin.services.documents import write_documents

            with UnitOfWork(engine, readonly=True) as u:
                write_documents(u, open_tenant(u, "scenario"), documents)
        return report(engine, "scenario", scenario.tenant, steps)
    finally:
        engine.dispose()


def play(scenario: Scenario, engine: Engine, code: str, gateway: CardSimulator, name: str | None = None, *,
         test_clock: bool = False) -> list[dict[str, Any]]:
    """Create tenant ``code`` with the scenario's catalog and customers, then run its steps.

    With ``test_clock`` the customers live on a test clock of their own that the steps move (in a shared database,
    the worker on the real clock then leaves them where the scenario ends)."""

    def uow() -> UnitOfWork:
        return UnitOfWork(engine)

    start = scenario.steps[0]["at"]
    clock_id: int | None = None
    with uow() as u:
        issuer = scenario.issuer
        try:
            tenant = create_tenant(u, code, issuer.get("name") or name or scenario.tenant, _catalog_ref(scenario), start,
                                   registration_number=issuer.get("registration_number"), address=issuer.get("address"))
        except KakinError as exc:
            raise ScenarioError(scenario.file, "issuer", exc.message) from None
        if test_clock:
            made = clocks.create_clock(u, tenant.row, f"{code} scenario", start, start)
            clock_id = u.test_clocks.get(tenant.row.id, made["id"])["id"]  # type: ignore[index]
        for i, c in enumerate(scenario.customers):
            try:
                billing.create_customer(u, tenant, gateway, c["id"], c["name"], start, payment_method=c.get("payment_method"),
                                        members=c.get("members", 0), rng=random.Random(c["id"]), test_clock_id=clock_id)
                if any(k in c for k in ("addressee", "postal_code", "address", "email")):
                    set_billing_profile(u, tenant.row, c["id"], addressee=c.get("addressee"), postal_code=c.get("postal_code"),
                                        address=c.get("address"), email=c.get("email"), now=start, actor="scenario")
            except KakinError as exc:
                raise ScenarioError(scenario.file, f"customers[{i}]", exc.message) from None
    steps = []
    for step in scenario.steps:
        at: datetime = step["at"]
        due_run.run_due(uow, code, gateway, at, test_clock_id=clock_id)
        if clock_id is not None:
            with uow() as u:
                u.test_clocks.set_time(clock_id, at)
        record: dict[str, Any] = {"at": at.isoformat(), "action": step["action"]}
        try:
            with uow() as u:
                result = _perform(u, open_tenant(u, code, at), gateway, step)
            record["ok"] = True
            if step["action"] == "record_usage":
                record["duplicate"] = result["duplicate"]
            if step["action"] == "publish_catalog":
                record["catalog_version"] = result["version"]
        except KakinError as exc:  # refused: the transaction rolled back, nothing changed
            record["ok"] = False
            record["error"] = {"code": exc.code, "message": exc.message}
            if hasattr(exc, "decline_code"):  # card_declined: the gateway's reason
                record["error"]["decline_code"] = exc.decline_code
        steps.append(record)
    return steps


def report(engine: Engine, code: str, label: str, steps: list[dict[str, Any]] | None = None) -> Outcome:
    outcome = Outcome(tenant=label, steps=steps or [])
    with UnitOfWork(engine) as u:
        tenant = open_tenant(u, code, datetime.fromisoformat(steps[-1]["at"]) if steps else None)
        outcome.tax_inclusive = tenant.catalog.tax_inclusive
        tried: dict[int, int] = {}  # payment attempts made for each invoice (a refused purchase's have none)
        for attempt in u.payment_attempts_of(tenant.row):
            if attempt["invoice_id"] is not None:
                tried[attempt["invoice_id"]] = tried.get(attempt["invoice_id"], 0) + 1
        outcome.invoices = [{**_invoice_json(r), "attempts": tried.get(r["id"], 0)} for r in u.invoices_for(tenant.row)]
        outcome.credit_notes = [_credit_note_json(r) for r in u.credit_notes_for(tenant.row)]
        latest = u.latest_plan_subscriptions(tenant.row)
        for c in u.customers_of(tenant.row):
            sub = latest.get(c["id"])
            outcome.customers.append({
                "id": c["key"], "plan": sub["plan"] if sub else None, "status": sub["status"] if sub else None,
                "seats": sub["seats"] if sub else 0, "members": c["members"],
                **({"catalog_version": sub["catalog_version"]} if sub else {}),
                **({"basic_id": c["basic_id"]} if c["basic_id"] else {}),
            })
    return outcome


def _catalog_ref(scenario: Scenario) -> str:
    from kakin.adapters.catalog_files import SHIPPED

    if scenario.tenant in SHIPPED:
        return scenario.tenant
    return str((Path(scenario.file).resolve().parent / scenario.tenant).resolve())


def _perform(u: UnitOfWork, tenant: Any, gateway: CardSimulator, step: dict[str, Any]) -> Any:
    action: str = step["action"]
    if action == "advance":
        return None
    now: datetime = step["at"]
    key = step.get("customer", "")
    handlers: dict[str, Callable[[], Any]] = {
        "subscribe": lambda: billing.subscribe(u, tenant, gateway, key, now, step["plan"], contract=step.get("contract"),
                                               seats=step.get("seats"), members=step.get("members"),
                                               trial_days=step.get("trial_days")),
        "set_seats": lambda: billing.set_seats(u, tenant, gateway, key, now, step["seats"]),
        "set_members": lambda: billing.set_members(u, tenant, gateway, key, now, step["members"]),
        "change_plan": lambda: billing.change_plan(u, tenant, gateway, key, now, step["plan"], contract=step.get("contract"),
                                                   seats=step.get("seats")),
        "cancel": lambda: billing.cancel(u, tenant, gateway, key, now),
        "set_payment_method": lambda: billing.set_payment_method(u, tenant, gateway, key, now, step["payment_method"]),
        "send_messages": lambda: usage.consume(u, tenant, key, "messages", step["count"], now),
        "set_premium_id": lambda: billing.set_premium_id(u, tenant, gateway, key, now, step["premium_id"],
                                                         billing=step.get("billing", "monthly")),
        "publish_catalog": lambda: catalogs.publish(u, tenant.row, Path(step["file"]).read_text(encoding="utf-8"),
                                                    Path(step["file"]).name, effective_at=step["effective"],
                                                    existing=step["existing"], actor="scenario", now=now),
        "record_usage": lambda: usage.record_event(u, tenant, {
            "customer": key, "metric": step["metric"], "quantity": step["quantity"],
            "timestamp": step.get("timestamp", now), "transaction_id": step["transaction_id"]}, now),
    }
    return handlers[action]()


def _taxes_json(text: str | None, rate: str, total: int, tax: int, inclusive: bool) -> list[dict[str, Any]]:
    """Per rate: the items' total as priced (tax-inclusive or not) and its tax."""
    if not text:
        return [{"rate": rate, "total": total, "tax": tax}]
    return [{"rate": t["rate"], "total": t["gross"] if inclusive else t["net"], "tax": t["tax"]} for t in json.loads(text)]


def _invoice_json(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "customer": r["customer"], "number": r["number"], "issued_on": r["issued_on"].isoformat(),
        "period_start": r["period_start"].isoformat() if r["period_start"] else None,
        "period_end": r["period_end"].isoformat() if r["period_end"] else None,
        "lines": [{"kind": ln["kind"], "description": ln["description"], "quantity": ln["quantity"], "amount": ln["amount"],
                   **({"formula": ln["formula"]} if ln["formula"] else {}),
                   **({"tax_rate": ln["tax_rate"]} if ln["tax_rate"] else {}),
                   **({"catalog_version": ln["catalog_version"]} if ln["catalog_version"] is not None else {})}
                  for ln in r["lines"]],
        "subtotal": r["subtotal"], "tax": r["tax"], "credit_applied": r["credit_applied"], "total": r["total"],
        "tax_rate": r["tax_rate"],
        "taxes": _taxes_json(r["taxes"], r["tax_rate"], r["subtotal"], r["tax"], bool(r["tax_inclusive"])),
        "status": r["status"],
    }


def _credit_note_json(r: dict[str, Any]) -> dict[str, Any]:
    return {"customer": r["customer"], "number": r["number"], "issued_on": r["issued_on"].isoformat(),
            "invoice": r["invoice_number"], "amount": r["amount"], "tax": r["tax"], "total": r["total"],
            **({"lines": json.loads(r["lines"])} if r["lines"] else {"reason": r["reason"]})}
