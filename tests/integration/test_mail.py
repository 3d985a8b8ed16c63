"""E-mail notices through the outbox and a real SMTP server (aiosmtpd) on 127.0.0.1."""

from __future__ import annotations

import socket
from datetime import datetime, timedelta
from email import message_from_bytes
from email.header import decode_header, make_header
from zoneinfo import ZoneInfo

from aiosmtpd.controller import Controller
from sqlalchemy import Engine, select

from kakin.adapters.db import tables
from kakin.adapters.db.store import UnitOfWork
from kakin.adapters.mail import SmtpMailer
from kakin.adapters.payments import CardSimulator
from kakin.services import access, billing, due_run, mail
from kakin.services.tenancy import create_tenant, open_tenant

JST = ZoneInfo("Asia/Tokyo")
SIGN_UP = datetime(2022, 5, 3, 10, tzinfo=JST)


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]  # noqa: N802
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"

    def subjects(self) -> list[str]:
        return [str(make_header(decode_header(message_from_bytes(m)["Subject"]))) for _, _, m in self.messages]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def seed(engine: Engine, card: str = "pm_card_visa") -> None:
    gateway = CardSimulator()
    with UnitOfWork(engine) as uow:
        tenant = create_tenant(uow, "nipoplus", "NipoPlus", "nipoplus", SIGN_UP)
        account = billing.create_customer(uow, tenant, gateway, "acme", "株式会社アクメ", SIGN_UP, payment_method="pm_card_visa")
        assert account.id is not None
        access.add_super_admin(uow, tenant.row, account.id, "boss@acme.example", "社長", SIGN_UP)
        billing.subscribe(uow, tenant, gateway, "acme", SIGN_UP, "gold", seats=10)
        if card != "pm_card_visa":
            billing.set_payment_method(uow, tenant, gateway, "acme", SIGN_UP, card)


def outbox_rows(engine: Engine) -> list[dict[str, object]]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(tables.outbox).order_by(tables.outbox.c.id)).mappings()]


def test_a_notice_a_week_before_each_charge_survives_an_smtp_outage_and_arrives_once(engine: Engine) -> None:
    seed(engine)
    gateway = CardSimulator()
    due_run.run_due(lambda: UnitOfWork(engine), "nipoplus", gateway, datetime(2022, 5, 27, 1, tzinfo=JST))
    rows = outbox_rows(engine)
    receipt_and_notice = [r["kind"] for r in rows]
    assert receipt_and_notice == ["payment.succeeded", "notice.upcoming_charge"]  # 7 days before June 3
    assert "2022-06-03" in str(rows[1]["body"]) and "¥1,800" in str(rows[1]["body"])
    port = free_port()
    mailer = SmtpMailer("127.0.0.1", port, "billing@nipoplus.example", timeout=2)
    now = datetime(2022, 5, 27, 2, tzinfo=JST)
    assert mail.deliver_mail(engine, now, mailer) == {"sent": 0, "failed": 2}  # the server is down
    assert all(r["status"] == "pending" and r["attempts"] == 1 for r in outbox_rows(engine))
    inbox = Inbox()
    server = Controller(inbox, hostname="127.0.0.1", port=port)
    server.start()
    try:
        assert mail.deliver_mail(engine, now + timedelta(seconds=30), mailer) == {"sent": 0, "failed": 0}  # backoff
        assert mail.deliver_mail(engine, now + timedelta(minutes=1), mailer) == {"sent": 2, "failed": 0}
        assert mail.deliver_mail(engine, now + timedelta(hours=3), mailer) == {"sent": 0, "failed": 0}
    finally:
        server.stop()
    assert len(inbox.messages) == 2
    assert inbox.subjects() == ["【NipoPlus】お支払いを確認しました（領収証を発行しました）", "【NipoPlus】次回のお支払いのお知らせ"]
    assert all(rcpt == ["boss@acme.example"] for _, rcpt, _ in inbox.messages)
    due_run.run_due(lambda: UnitOfWork(engine), "nipoplus", gateway, datetime(2022, 6, 2, tzinfo=JST))
    assert len(outbox_rows(engine)) == 2  # one notice per charge


def test_each_failure_and_the_cancellation_are_mailed_once(engine: Engine) -> None:
    seed(engine, card="pm_card_chargeDeclined")
    gateway = CardSimulator()
    due_run.run_due(lambda: UnitOfWork(engine), "nipoplus", gateway, datetime(2022, 6, 12, tzinfo=JST))
    kinds = [r["kind"] for r in outbox_rows(engine)]
    # the June 3 charge and its 4 retries fail; then the plan is cancelled and the customer moves to the free plan
    assert kinds == ["payment.succeeded", "notice.upcoming_charge"] + ["payment.failed"] * 5 + ["subscription.ended"]
    assert "自動で解約されました" in str(outbox_rows(engine)[-1]["body"])
    due_run.run_due(lambda: UnitOfWork(engine), "nipoplus", gateway, datetime(2022, 8, 12, tzinfo=JST))
    assert len(outbox_rows(engine)) == 8  # nothing more: no further charges, no further mail


def test_a_cancellation_by_the_customer_is_mailed(engine: Engine) -> None:
    seed(engine)
    with UnitOfWork(engine) as uow:
        billing.cancel(uow, open_tenant(uow, "nipoplus"), CardSimulator(), "acme", SIGN_UP + timedelta(days=5))
    last = outbox_rows(engine)[-1]
    assert last["kind"] == "subscription.ended" and "ご依頼により解約しました" in str(last["body"])
