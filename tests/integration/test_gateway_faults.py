"""Charges outside the database transaction (issue 10 item 3), on SQLite and PostgreSQL: a gateway that times out
or loses its answer after charging, a crash between a charge and its record, two workers settling one intent, and
the customer and the invoice counter never locked while a card is charged.

NipoPlus GOLD, 10 seats from May 3: 180 × 10 = 1,800 yen at the sign-up and on June 3.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select

from kakin.adapters.db import store as store_module
from kakin.adapters.db import tables
from kakin.adapters.db.intents_repo import PaymentIntentRepository
from kakin.adapters.db.migrate import make_engine, migrate
from kakin.adapters.db.store import UnitOfWork, in_transaction
from kakin.adapters.payments import CardSimulator, ChargeOutcome
from kakin.domain import errors, schedule
from kakin.services import billing, due_run, due_work, operations, payments
from kakin.services.charging import Charger
from kakin.services.operators import CommandLine
from kakin.services.tenancy import create_tenant, open_tenant

JST = ZoneInfo("Asia/Tokyo")
SIGNUP = datetime(2026, 5, 3, 10, tzinfo=JST)
JUNE_3 = datetime(2026, 6, 3, 1, tzinfo=JST)
RENEWAL_KEY = "nipoplus:c1:plan:2026-05-03:2026-06-03:1"  # customer 1's June 3 period, first attempt


class NoMail:
    def send(self, message: EmailMessage) -> None:
        return None


def no_post(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("no webhook endpoint exists")


def next_pass(engine: Engine, gateway: Any, now: datetime = JUNE_3) -> dict[str, int]:
    """The worker's next pass, once the charges in flight are older than the grace period."""
    return due_work.run_pass(engine, gateway, NoMail(), no_post, now, intent_grace=timedelta(0))


def customer(engine: Engine, gateway: Any, key: str = "acme") -> None:
    with UnitOfWork(engine) as uow:
        tenant = uow.tenant("nipoplus") and open_tenant(uow, "nipoplus") or create_tenant(
            uow, "nipoplus", "NipoPlus", "nipoplus", SIGNUP)
        billing.create_customer(uow, tenant, gateway, key, "株式会社アクメ", SIGNUP, payment_method="pm_card_visa")


def signed_up(engine: Engine, gateway: Any, key: str = "acme") -> None:
    customer(engine, gateway, key)
    sign_up(engine, gateway, key)


def sign_up(engine: Engine, gateway: Any, key: str = "acme") -> None:
    def work(uow: UnitOfWork) -> None:
        billing.subscribe(uow, open_tenant(uow, "nipoplus"), gateway, key, SIGNUP, "gold", seats=10)
    in_transaction(engine, work)


def renewal_due(engine: Engine, gateway: Any) -> None:
    signed_up(engine, gateway)
    due_run.run_due(lambda: UnitOfWork(engine), "nipoplus", gateway, datetime(2026, 5, 28, tzinfo=JST))  # the notice


def invoices(engine: Engine) -> list[tuple[int, str, int, str]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(  # type: ignore[misc]
            tables.invoices.c.seq, tables.invoices.c.number, tables.invoices.c.total, tables.invoices.c.status).order_by(
            tables.invoices.c.seq))]


def attempts(engine: Engine) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(  # type: ignore[misc]
            tables.payment_attempts.c.outcome, tables.payment_attempts.c.idempotency_key).order_by(
            tables.payment_attempts.c.id))]


def intents(engine: Engine) -> list[tuple[str, str, int | None]]:
    """(key, status, invoice seq) of every payment intent."""
    pi, inv = tables.payment_intents, tables.invoices
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(  # type: ignore[misc]
            select(pi.c.idempotency_key, pi.c.status, inv.c.seq).select_from(
                pi.outerjoin(inv, inv.c.id == pi.c.invoice_id)).order_by(pi.c.id))]


class Killed(BaseException):
    """The worker process is gone right after the gateway charged (nothing in kakin may catch it)."""


class DiesAfterCharging(CardSimulator):
    def __init__(self) -> None:
        super().__init__()
        self.die = False

    def charge(self, payment_method: str, amount: int, idempotency_key: str, customer: str | None = None) -> ChargeOutcome:
        outcome = super().charge(payment_method, amount, idempotency_key, customer)
        if self.die:
            self.die = False
            raise Killed("kill -9 between the charge and its record")
        return outcome


def test_a_crash_between_the_charge_and_its_record_is_settled_by_the_next_worker_pass_with_exactly_one_charge(
        engine: Engine) -> None:
    gateway = DiesAfterCharging()
    renewal_due(engine, gateway)
    gateway.die = True
    with pytest.raises(Killed):
        due_run.run_due(lambda: UnitOfWork(engine), "nipoplus", gateway, JUNE_3)
    # the renewal was finalized (numbered, written) with its intent before the card was charged
    assert invoices(engine) == [(1, "NIPOPLUS-00000001", 1800, "paid"), (2, "NIPOPLUS-00000002", 1800, "open")]
    assert intents(engine)[-1] == (RENEWAL_KEY, "pending", 2)
    assert [amount for _, amount, _ in gateway.charged] == [1800, 1800]  # charged, not recorded
    assert next_pass(engine, gateway)["charges settled"] == 1
    assert [amount for _, amount, _ in gateway.charged] == [1800, 1800]  # asked again with the same key: no new charge
    assert invoices(engine) == [(1, "NIPOPLUS-00000001", 1800, "paid"), (2, "NIPOPLUS-00000002", 1800, "paid")]
    assert attempts(engine) == [("succeeded", "nipoplus:c1:n1:1800:1"), ("succeeded", RENEWAL_KEY)]
    assert intents(engine)[-1] == (RENEWAL_KEY, "succeeded", 2)
    assert next_pass(engine, gateway)["charges settled"] == 0  # nothing left in flight


def test_a_renewal_whose_answer_the_gateway_lost_is_invoiced_and_paid_by_the_next_worker_pass(engine: Engine) -> None:
    gateway = CardSimulator()
    renewal_due(engine, gateway)
    gateway.fault = "lost_answer"
    assert due_run.run_due(lambda: UnitOfWork(engine), "nipoplus", gateway, JUNE_3) == 1  # renewed; payment unknown
    assert invoices(engine)[-1] == (2, "NIPOPLUS-00000002", 1800, "open")
    assert intents(engine)[-1] == (RENEWAL_KEY, "unknown", 2)
    gateway.fault = None
    next_pass(engine, gateway)
    assert [amount for _, amount, _ in gateway.charged] == [1800, 1800]  # the sign-up and June, each once
    assert invoices(engine) == [(1, "NIPOPLUS-00000001", 1800, "paid"), (2, "NIPOPLUS-00000002", 1800, "paid")]
    assert [outcome for outcome, _ in attempts(engine)] == ["succeeded", "succeeded"]


@pytest.mark.parametrize("fault", ["timeout", "lost_answer"])
def test_a_sign_up_the_gateway_did_not_answer_is_refused_503_and_its_retry_charges_once(engine: Engine, fault: str) -> None:
    gateway = CardSimulator()
    customer(engine, gateway)
    gateway.fault = fault
    with pytest.raises(errors.PaymentGatewayUnavailable) as refused:
        sign_up(engine, gateway)
    assert refused.value.code == "payment_gateway_unavailable"
    assert invoices(engine) == [] and attempts(engine) == []  # nothing changed, no number taken
    gateway.fault = None
    sign_up(engine, gateway)  # the client sends the same request again: the same key
    assert [amount for _, amount, _ in gateway.charged] == [1800]  # 180 × 10, charged once either way
    assert invoices(engine) == [(1, "NIPOPLUS-00000001", 1800, "paid")]
    assert intents(engine) == [("nipoplus:c1:n1:1800:1", "succeeded", 1)]


def test_a_purchase_whose_answer_was_lost_and_never_sent_again_is_refunded_by_the_worker_pass(engine: Engine) -> None:
    gateway = CardSimulator()
    customer(engine, gateway)
    gateway.fault = "lost_answer"
    with pytest.raises(errors.PaymentGatewayUnavailable):
        sign_up(engine, gateway)
    gateway.fault = None
    assert intents(engine) == [("nipoplus:c1:n1:1800:1", "unknown", None)]  # charged at the gateway, no invoice
    assert next_pass(engine, gateway)["charges settled"] == 1
    assert [amount for _, amount in gateway.refunded] == [1800]  # given back: no charge without an invoice
    assert intents(engine) == [("nipoplus:c1:n1:1800:1", "refunded", None)]
    assert invoices(engine) == []
    sign_up(engine, gateway)  # sent again later: a new payment (a new key), invoiced
    assert [key for *_, key in gateway.charged] == ["nipoplus:c1:n1:1800:1", "nipoplus:c1:n1:1800:r1:1"]
    assert invoices(engine) == [(1, "NIPOPLUS-00000001", 1800, "paid")]
    assert next_pass(engine, gateway)["charges settled"] == 0 and len(gateway.refunded) == 1


class SlowGateway(CardSimulator):
    """Charges only when told to, so a test can act while a charge is in flight."""

    def __init__(self) -> None:
        super().__init__()
        self.charging, self.go = threading.Event(), threading.Event()
        self.go.set()
        self.calls = 0

    def charge(self, payment_method: str, amount: int, idempotency_key: str, customer: str | None = None) -> ChargeOutcome:
        self.calls += 1
        self.charging.set()
        assert self.go.wait(timeout=30)
        return super().charge(payment_method, amount, idempotency_key, customer)

    def hold(self) -> None:
        self.go.clear()
        self.charging.clear()


class CountingGateway(CardSimulator):
    def __init__(self, inner: CardSimulator) -> None:
        super().__init__()
        self._seen, self.calls = inner._seen, 0  # the same gateway account: it knows the keys

    def charge(self, payment_method: str, amount: int, idempotency_key: str, customer: str | None = None) -> ChargeOutcome:
        self.calls += 1
        return super().charge(payment_method, amount, idempotency_key, customer)


def test_two_workers_racing_on_the_same_pending_intent_settle_it_once_on_postgresql(
        pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = make_engine(pg_url)
    migrate(engine)
    gateway = DiesAfterCharging()
    renewal_due(engine, gateway)
    gateway.die = True
    with pytest.raises(Killed):
        due_run.run_due(lambda: UnitOfWork(engine), "nipoplus", gateway, JUNE_3)
    with engine.begin() as conn:  # the crash was ten minutes ago: past the grace period
        conn.execute(tables.payment_intents.update().values(
            updated_at=datetime.now(JST) - timedelta(minutes=10)))
    both_read = threading.Barrier(2)
    real_to_settle = PaymentIntentRepository.to_settle

    def to_settle(*args: Any, **kwargs: Any) -> Any:
        rows = real_to_settle(*args, **kwargs)
        both_read.wait(timeout=30)  # each worker has found the same intent in flight; now both try to claim it
        return rows

    monkeypatch.setattr(PaymentIntentRepository, "to_settle", to_settle)
    counting = CountingGateway(gateway)
    results: list[dict[str, int]] = []
    workers = [threading.Thread(target=lambda: results.append(payments.settle_intents(engine, counting, JUNE_3)))
               for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=30)
    assert sorted(r["settled"] for r in results) == [0, 1]  # one claimed and settled it; the other left it alone
    assert counting.calls == 1
    assert [amount for _, amount, _ in gateway.charged] == [1800, 1800]  # the sign-up and June, each once
    assert invoices(engine)[-1] == (2, "NIPOPLUS-00000002", 1800, "paid")
    assert attempts(engine) == [("succeeded", "nipoplus:c1:n1:1800:1"), ("succeeded", RENEWAL_KEY)]
    engine.dispose()


def test_the_customer_is_not_locked_while_its_renewal_is_charged_on_postgresql(
        pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Before, the batch charged inside its transaction: the customer's row stayed locked until the charge answered,
    # and a command on the customer waited for it to the lock timeout. Now the command runs at once, and the
    # renewal's outcome is recorded on the account as the command left it (reloaded, not overwritten).
    engine = make_engine(pg_url)
    migrate(engine)
    gateway = SlowGateway()
    renewal_due(engine, gateway)
    gateway.hold()
    renewal = threading.Thread(target=due_run.run_due, args=(lambda: UnitOfWork(engine), "nipoplus", gateway, JUNE_3))
    renewal.start()
    assert gateway.charging.wait(timeout=30)
    monkeypatch.setattr(store_module, "LOCK_TIMEOUT_MS", 1000)
    in_transaction(engine, lambda uow: billing.set_members(uow, open_tenant(uow, "nipoplus"), gateway, "acme", JUNE_3, 7))
    gateway.go.set()
    renewal.join(timeout=30)
    assert invoices(engine) == [(1, "NIPOPLUS-00000001", 1800, "paid"), (2, "NIPOPLUS-00000002", 1800, "paid")]
    with engine.connect() as conn:
        members = conn.execute(select(tables.customers.c.members).where(tables.customers.c.key == "acme")).scalar_one()
    assert members == 7  # the command's change survived the renewal's record
    engine.dispose()


def test_the_customer_is_not_locked_while_a_sign_up_is_charged_on_postgresql(
        pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # A purchase is charged before its invoice is written, with no transaction open: another transaction can lock
    # the customer meanwhile. Then the command runs again under its lock and writes the invoice: 180 × 10 = 1,800.
    engine = make_engine(pg_url)
    migrate(engine)
    gateway = SlowGateway()
    customer(engine, gateway)
    gateway.hold()
    purchase = threading.Thread(target=sign_up, args=(engine, gateway))
    purchase.start()
    assert gateway.charging.wait(timeout=30)
    monkeypatch.setattr(store_module, "LOCK_TIMEOUT_MS", 1000)
    with UnitOfWork(engine) as uow:  # another transaction takes the customer's lock while the card is charged
        assert uow.account_id(open_tenant(uow, "nipoplus").row, "acme", lock=True) is not None
    gateway.go.set()
    purchase.join(timeout=30)
    assert invoices(engine) == [(1, "NIPOPLUS-00000001", 1800, "paid")]
    assert intents(engine) == [("nipoplus:c1:n1:1800:1", "succeeded", 1)]
    engine.dispose()


def test_another_customer_is_invoiced_while_a_renewal_is_being_charged_on_postgresql(
        pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # The renewal is numbered (2) and committed before its charge; the tenant's counter is free while the card is
    # charged, so beta's sign-up takes number 3 at once instead of waiting for the lock timeout.
    engine = make_engine(pg_url)
    migrate(engine)
    gateway = SlowGateway()
    renewal_due(engine, gateway)
    gateway.hold()
    renewal = threading.Thread(target=due_run.run_due, args=(lambda: UnitOfWork(engine), "nipoplus", gateway, JUNE_3))
    renewal.start()
    assert gateway.charging.wait(timeout=30)
    monkeypatch.setattr(store_module, "LOCK_TIMEOUT_MS", 1000)
    signed_up(engine, CardSimulator(), "beta")  # another customer, another gateway: not held by the slow charge
    gateway.go.set()
    renewal.join(timeout=30)
    # acme's sign-up, acme's June renewal, beta's sign-up (while acme's renewal was charging), beta's June renewal
    assert invoices(engine) == [(n, f"NIPOPLUS-{n:08d}", 1800, "paid") for n in (1, 2, 3, 4)]
    with engine.connect() as conn:
        beta = conn.execute(select(tables.invoices.c.seq).join(tables.customers).where(
            tables.customers.c.key == "beta").order_by(tables.invoices.c.seq)).scalars().all()
    assert beta == [3, 4]
    engine.dispose()


class PaidMeanwhile(CardSimulator):
    """While the renewal's card is being charged (no lock held), the vendor records a bank transfer for the same
    invoice: the card charge succeeds for an invoice that is paid already."""

    def __init__(self, engine: Engine) -> None:
        super().__init__()
        self.engine, self.armed = engine, False

    def charge(self, payment_method: str, amount: int, idempotency_key: str, customer: str | None = None) -> ChargeOutcome:
        if self.armed:
            self.armed = False
            with UnitOfWork(self.engine) as uow:
                tenant = open_tenant(uow, "nipoplus")
                operations.mark_paid(uow, tenant, self, CommandLine(tenant.row), "NIPOPLUS-00000002", JUNE_3,
                                     reference="振込 6/3")
        return super().charge(payment_method, amount, idempotency_key, customer)


def test_a_card_charge_that_succeeds_for_an_invoice_paid_meanwhile_by_bank_transfer_is_refunded_once(
        engine: Engine) -> None:
    gateway = PaidMeanwhile(engine)
    renewal_due(engine, gateway)
    gateway.armed = True
    due_run.run_due(lambda: UnitOfWork(engine), "nipoplus", gateway, JUNE_3)
    assert invoices(engine) == [(1, "NIPOPLUS-00000001", 1800, "paid"), (2, "NIPOPLUS-00000002", 1800, "paid")]
    # the invoice was paid once, by the transfer; the card's 1,800 yen is to be given back
    assert attempts(engine) == [("succeeded", "nipoplus:c1:n1:1800:1"), ("succeeded", "manual:NIPOPLUS-00000002")]
    assert intents(engine)[-1] == (RENEWAL_KEY, "refunding", 2)
    assert [key for *_, key in gateway.charged] == ["nipoplus:c1:n1:1800:1", RENEWAL_KEY]
    assert gateway.refunded == []
    assert next_pass(engine, gateway)["charges settled"] == 1
    assert [amount for _, amount in gateway.refunded] == [1800]
    assert intents(engine)[-1] == (RENEWAL_KEY, "refunded", 2)
    assert next_pass(engine, gateway)["charges settled"] == 0 and len(gateway.refunded) == 1  # refunded once
    assert invoices(engine)[-1] == (2, "NIPOPLUS-00000002", 1800, "paid")  # the invoice itself never changes


def test_a_charge_settled_by_a_worker_while_the_run_was_still_charging_is_not_refunded(engine: Engine) -> None:
    """The run's own answer arrives after a worker settled the same intent (same key, same answer): the invoice was
    paid by this charge, so nothing is given back."""
    gateway = CardSimulator()
    renewal_due(engine, gateway)
    with UnitOfWork(engine) as uow:
        tenant = open_tenant(uow, "nipoplus")
        charger = Charger(uow, tenant.row.id, gateway, "defer")
        ids = uow.due_account_ids(tenant.row, JUNE_3, 10)
        account = uow.load_accounts(ids)[0]
        billing.settle(uow, tenant, gateway, [(account, schedule.run_next(tenant.lifecycle, account, JUNE_3))], JUNE_3,
                       "worker", charger=charger)
    assert intents(engine)[-1] == (RENEWAL_KEY, "pending", 2)
    assert next_pass(engine, gateway)["charges settled"] == 1  # a worker settles it first: paid by this charge
    due_run.finish_charges(lambda: UnitOfWork(engine), "nipoplus", gateway, JUNE_3, charger)  # the run's late answer
    assert intents(engine)[-1] == (RENEWAL_KEY, "succeeded", 2)
    assert attempts(engine) == [("succeeded", "nipoplus:c1:n1:1800:1"), ("succeeded", RENEWAL_KEY)]
    assert next_pass(engine, gateway)["charges settled"] == 0 and gateway.refunded == []


def in_dunning_with_a_working_card(engine: Engine, gateway: Any) -> None:
    """acme's June 3 renewal (invoice 2) declined and open in dunning, then its card works again (written directly:
    no catch-up charge)."""
    with UnitOfWork(engine) as uow:
        tenant = create_tenant(uow, "nipoplus", "NipoPlus", "nipoplus", SIGNUP)
        billing.create_customer(uow, tenant, gateway, "acme", "株式会社アクメ", SIGNUP, payment_method="pm_card_visa")
        billing.subscribe(uow, tenant, gateway, "acme", SIGNUP, "gold", seats=10)
        billing.set_payment_method(uow, tenant, gateway, "acme", SIGNUP, "pm_card_chargeDeclined")
    due_run.run_due(lambda: UnitOfWork(engine), "nipoplus", gateway, JUNE_3)  # declined: dunning, retry June 4
    assert invoices(engine)[-1] == (2, "NIPOPLUS-00000002", 1800, "open")
    with engine.begin() as conn:
        conn.execute(tables.customers.update().values(payment_method="pm_card_visa"))


def retry_now_dying_before_its_rerun_commits(engine: Engine, gateway: Any) -> None:
    """Retry now on invoice 2, killed after perform() charged and recorded the intent, before the rerun commits."""
    runs = 0

    def retry(uow: UnitOfWork) -> None:
        nonlocal runs
        runs += 1
        if runs == 2:
            raise Killed("kill -9 before the command's rerun commits")
        tenant = open_tenant(uow, "nipoplus")
        payments.retry_now(uow, tenant, gateway, CommandLine(tenant.row), "NIPOPLUS-00000002", JUNE_3)

    with pytest.raises(Killed):
        in_transaction(engine, retry)


def test_a_commands_charge_recorded_before_its_rerun_died_is_applied_by_the_next_scheduled_retry(engine: Engine) -> None:
    """Retry now charges the card (its intent recorded ``succeeded``), then the process dies before the command's
    rerun commits: the invoice is still open. The next scheduled retry sends the same key, gets the same answer, and
    applies it: the invoice is paid once, with one charge; it is not left open with the money taken."""
    gateway = CardSimulator()
    in_dunning_with_a_working_card(engine, gateway)
    retry_now_dying_before_its_rerun_commits(engine, gateway)
    key = "nipoplus:NIPOPLUS-00000002:2"  # the invoice's second attempt
    assert intents(engine)[-1] == (key, "succeeded", 2) and invoices(engine)[-1][3] == "open"
    due_run.run_due(lambda: UnitOfWork(engine), "nipoplus", gateway, JUNE_3 + timedelta(days=1))  # the scheduled retry
    assert invoices(engine)[-1] == (2, "NIPOPLUS-00000002", 1800, "paid")
    assert attempts(engine)[-1] == ("succeeded", key) and [k for *_, k in gateway.charged].count(key) == 1


def test_retry_now_whose_invoice_is_paid_by_transfer_while_the_card_is_charged_is_refused_and_the_card_refunded(
        engine: Engine) -> None:
    """Retry now charges the card with no lock held; meanwhile the vendor records a bank transfer for the invoice. The
    command, run again, finds the invoice paid (409 invoice_not_open), and the card payment it made is given back by
    the worker's next pass: the customer pays once."""
    gateway = PaidMeanwhile(engine)
    in_dunning_with_a_working_card(engine, gateway)
    gateway.armed = True

    def retry(uow: UnitOfWork) -> None:
        tenant = open_tenant(uow, "nipoplus")
        payments.retry_now(uow, tenant, gateway, CommandLine(tenant.row), "NIPOPLUS-00000002", JUNE_3)

    with pytest.raises(errors.InvoiceNotOpen):
        in_transaction(engine, retry)
    key = "nipoplus:NIPOPLUS-00000002:2"
    assert invoices(engine)[-1] == (2, "NIPOPLUS-00000002", 1800, "paid")  # by the transfer
    assert attempts(engine)[-1] == ("succeeded", "manual:NIPOPLUS-00000002")
    assert intents(engine)[-1] == (key, "refunding", 2)
    assert next_pass(engine, gateway)["charges settled"] == 1
    assert [amount for _, amount in gateway.refunded] == [1800] and intents(engine)[-1] == (key, "refunded", 2)
    assert next_pass(engine, gateway)["charges settled"] == 0 and len(gateway.refunded) == 1


def test_a_commands_charge_recorded_before_its_rerun_died_is_refunded_when_the_invoice_is_paid_by_transfer(
        engine: Engine) -> None:
    """Retry now charges the card and records it, then its process dies before the command commits; before any
    scheduled retry, the vendor records a bank transfer for the invoice. The card payment, never applied, is given
    back by the worker's next pass: the customer pays once."""
    gateway = CardSimulator()
    in_dunning_with_a_working_card(engine, gateway)
    retry_now_dying_before_its_rerun_commits(engine, gateway)
    key = "nipoplus:NIPOPLUS-00000002:2"
    assert intents(engine)[-1] == (key, "succeeded", 2)
    with UnitOfWork(engine) as uow:
        tenant = open_tenant(uow, "nipoplus")
        operations.mark_paid(uow, tenant, gateway, CommandLine(tenant.row), "NIPOPLUS-00000002", JUNE_3, reference="振込")
    assert intents(engine)[-1] == (key, "refunding", 2)
    assert attempts(engine)[-1] == ("succeeded", "manual:NIPOPLUS-00000002")
    assert next_pass(engine, gateway, JUNE_3 + timedelta(days=1))["charges settled"] == 1
    assert [amount for _, amount in gateway.refunded] == [1800] and intents(engine)[-1] == (key, "refunded", 2)
    assert invoices(engine)[-1] == (2, "NIPOPLUS-00000002", 1800, "paid")
    assert [k for *_, k in gateway.charged].count(key) == 1  # the scheduled retry did not charge again


def test_a_commands_charge_for_an_invoice_paid_while_the_card_was_charged_is_refunded_though_the_command_died(
        engine: Engine) -> None:
    """Retry now charges the card while the vendor records a bank transfer for the invoice; the command records the
    answer and dies before it runs again. The answer's record itself sees the invoice closed and marks the charge
    for refund, so no later step is needed for the customer to pay once."""
    gateway = PaidMeanwhile(engine)
    in_dunning_with_a_working_card(engine, gateway)
    gateway.armed = True
    retry_now_dying_before_its_rerun_commits(engine, gateway)
    key = "nipoplus:NIPOPLUS-00000002:2"
    assert invoices(engine)[-1] == (2, "NIPOPLUS-00000002", 1800, "paid")
    assert intents(engine)[-1] == (key, "refunding", 2)
    assert next_pass(engine, gateway)["charges settled"] == 1
    assert [amount for _, amount in gateway.refunded] == [1800] and intents(engine)[-1] == (key, "refunded", 2)
    assert next_pass(engine, gateway)["charges settled"] == 0 and len(gateway.refunded) == 1


def test_writing_off_an_invoice_gives_back_a_card_charge_recorded_for_it_but_never_applied(engine: Engine) -> None:
    """The same crash as above, then the vendor writes the invoice off instead: nothing is collected for it, so the
    card payment that was never applied is refunded."""
    gateway = CardSimulator()
    in_dunning_with_a_working_card(engine, gateway)
    retry_now_dying_before_its_rerun_commits(engine, gateway)
    with UnitOfWork(engine) as uow:
        tenant = open_tenant(uow, "nipoplus")
        payments.write_off(uow, tenant, gateway, CommandLine(tenant.row), "NIPOPLUS-00000002", JUNE_3)
    assert invoices(engine)[-1] == (2, "NIPOPLUS-00000002", 1800, "uncollectible")
    assert intents(engine)[-1] == ("nipoplus:NIPOPLUS-00000002:2", "refunding", 2)
    assert next_pass(engine, gateway, JUNE_3 + timedelta(days=1))["charges settled"] == 1
    assert [amount for _, amount in gateway.refunded] == [1800]
