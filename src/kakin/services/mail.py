"""E-mail notices through an outbox: queued in the transaction that caused them, sent by the worker.

Nothing is lost when the SMTP server is down (a notice stays queued and is
retried with backoff). A notice is claimed before it is sent (``services.delivery``),
so concurrent workers never send the same one; only a worker stopping between
sending and recording causes a second copy, with the same Message-ID.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any, Protocol

from jinja2 import Environment, FileSystemLoader

from kakin.adapters.db import Engine
from kakin.adapters.db.store import UnitOfWork
from kakin.adapters.pdf import TEMPLATES
from kakin.domain.account import Account

from .delivery import work_outbox
from .tenancy import Tenant


class Mailer(Protocol):
    """The port to a mail server (``adapters.mail.SmtpMailer``): send one message or raise."""

    def send(self, message: EmailMessage) -> None: ...


MAX_ATTEMPTS = 20
CLAIM_CHUNK = 10  # notices claimed at a time: small, so that concurrent workers share a queue
LEASE = timedelta(minutes=5)  # a claimed notice whose worker died is sent again after this (10 notices × 10 s timeout < 2.5 min)
SUBJECTS = {
    "notice.upcoming_charge": "【{vendor}】次回のお支払いのお知らせ",
    "notice.trial_ending": "【{vendor}】無料トライアル終了のお知らせ",
    "payment.failed": "【{vendor}】お支払いに失敗しました",
    "subscription.ended": "【{vendor}】有料プラン解約のお知らせ",
    "payment.succeeded": "【{vendor}】お支払いを確認しました（領収証を発行しました）",
    "eligibility.received": "【{vendor}】お申込みを受け付けました",
    "eligibility.approved": "【{vendor}】審査結果のお知らせ（ご利用いただけます）",
    "eligibility.refused": "【{vendor}】審査結果のお知らせ",
}
ENDED = {"subscription.canceled_for_nonpayment": "お支払いが確認できなかったため、自動で解約されました。",
         "subscription.canceled": "ご依頼により解約しました。"}
_env = Environment(loader=FileSystemLoader(TEMPLATES / "mail"), autoescape=False, keep_trailing_newline=True)


def enqueue(uow: UnitOfWork, tenant: Tenant, noted: Sequence[tuple[Account, dict[str, Any]]], now: datetime) -> int:
    """Queue the notices these events call for; returns how many were offered to the queue."""
    wanted = []
    for account, event in noted:
        name = str(event["event"])
        kind = "subscription.ended" if name in ENDED else name
        if kind not in SUBJECTS or account.id is None:
            continue
        wanted.append((account, kind, name, event))
    if not wanted:
        return 0
    addresses = uow.customer_records.notice_addresses([a.id for a, _, _, _ in wanted if a.id is not None])
    cat = tenant.catalog
    rows = []
    for account, kind, name, event in wanted:
        to = addresses.get(account.id or 0)
        if not to:
            continue
        plan = cat.plans.get(str(event.get("plan", "")))
        context = {"customer": account.name, "vendor": cat.name, "tax_inclusive": cat.tax_inclusive,
                   "plan_name": plan.name_ja if plan else event.get("plan", ""), "reason": ENDED.get(name, ""),
                   "fallback": cat.plans[cat.fallback_plan].name_ja if cat.fallback_plan else "",
                   "retry": event.get("retry", True), **event}
        key = f"{kind}:{account.id}:" + ":".join(str(event.get(k, "")) for k in ("number", "attempt", "charge_on", "trial_end"))
        row = {"tenant_id": tenant.row.id, "customer_id": account.id, "kind": kind, "dedupe_key": key[:200],
               "to_address": to, "subject": SUBJECTS[kind].format(vendor=cat.name),
               "body": _env.get_template(f"{kind}.txt").render(**context), "status": "pending", "attempts": 0,
               "next_attempt_at": now, "created_at": now}
        rows.append(row)
    uow.outboxes.queue_mail(rows)  # a notice already queued (a redone run) is skipped: once is enough
    return len(rows)


def queue(uow: UnitOfWork, tenant: Tenant, customer_id: int, kind: str, to: str, context: dict[str, Any], dedupe: str,
          now: datetime) -> None:
    """Queue one notice to a given address (an applicant's, say), once per ``dedupe``."""
    row = {"tenant_id": tenant.row.id, "customer_id": customer_id, "kind": kind, "dedupe_key": f"{kind}:{dedupe}"[:200],
           "to_address": to, "subject": SUBJECTS[kind].format(vendor=tenant.catalog.name),
           "body": _env.get_template(f"{kind}.txt").render(vendor=tenant.catalog.name, **context), "status": "pending",
           "attempts": 0, "next_attempt_at": now, "created_at": now}
    uow.outboxes.queue_mail([row])


def backoff(attempts: int) -> timedelta:
    delay: timedelta = timedelta(minutes=1) * 2 ** max(0, attempts - 1)
    return min(delay, timedelta(hours=2))


def message_id(tenant_id: int, outbox_id: int) -> str:
    """The Message-ID of an outbox row: derived from the row, so every attempt at one notice carries the same one."""
    return f"<kakin-outbox-{tenant_id}-{outbox_id}@kakin.local>"


def compose(row: dict[str, Any]) -> EmailMessage:
    """The message for an outbox row (To, Subject, Message-ID, body); the mailer adds From."""
    message = EmailMessage()
    message["To"] = row["to_address"]
    message["Subject"] = row["subject"]
    message["Message-ID"] = message_id(row["tenant_id"], row["id"])
    message.set_content(row["body"])
    return message


def deliver_mail(engine: Engine, now: datetime, mailer: Mailer, limit: int = 100, chunk: int = CLAIM_CHUNK,
                 lease: timedelta = LEASE) -> dict[str, int]:
    """Send up to ``limit`` due notices; returns ``{"sent": n, "failed": n}`` (failed: attempts that failed).

    Each notice is claimed, sent with no transaction open, and marked sent in
    a short transaction of its own (``services.delivery``). A failed attempt is
    retried after :func:`backoff`; after :data:`MAX_ATTEMPTS` it is ``failed``.
    """
    def attempt(row: dict[str, Any]) -> dict[str, Any]:
        try:
            mailer.send(compose(row))
        except Exception as exc:  # the server is down or refused: retried later, nothing lost
            done = row["attempts"] >= MAX_ATTEMPTS
            return {"status": "failed" if done else "pending", "last_error": f"{type(exc).__name__}: {exc}"[:500],
                    "next_attempt_at": None if done else now + backoff(row["attempts"])}
        return {"status": "sent", "sent_at": now, "last_error": None, "next_attempt_at": None}

    outcomes = work_outbox(engine, "mail", now, lambda uow, ids: uow.outboxes.claimed_mail(ids), attempt, limit=limit,
                           chunk=chunk, lease=lease, max_attempts=MAX_ATTEMPTS)
    sent = sum(1 for o in outcomes if o["status"] == "sent")
    return {"sent": sent, "failed": len(outcomes) - sent}
