"""A seat decrease is a credit note (適格返還請求書) in the store, and its balance is applied after tax (充当)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from kakin.adapters.db.store import UnitOfWork
from kakin.adapters.payments import CardSimulator
from kakin.services import billing, due_run, operations
from kakin.services.tenancy import create_tenant, open_tenant

JST = ZoneInfo("Asia/Tokyo")
APR_10 = datetime(2023, 4, 10, 10, tzinfo=JST)


def test_a_seat_decrease_is_stored_as_a_credit_note_and_the_next_invoice_applies_it_after_tax(engine: Engine) -> None:
    gateway = CardSimulator()
    with UnitOfWork(engine) as uow:
        tenant = create_tenant(uow, "t", "株式会社カキン（デモ）", "nipoplus", APR_10, registration_number="T8000000000001")
        billing.create_customer(uow, tenant, gateway, "acme", "株式会社アクメ", APR_10, payment_method="pm_card_visa")
        billing.subscribe(uow, tenant, gateway, "acme", APR_10, "gold", seats=30)  # 180 × 30 = 5,400
    with UnitOfWork(engine) as uow:
        billing.set_seats(uow, open_tenant(uow, "t"), gateway, "acme", datetime(2023, 4, 25, 10, tzinfo=JST), 5)
    due_run.run_due(lambda: UnitOfWork(engine), "t", gateway, datetime(2023, 5, 10, 12, tzinfo=JST))
    with UnitOfWork(engine) as uow:
        tenant = open_tenant(uow, "t")
        (note,) = uow.credit_notes_for(tenant.row)
        first, second = uow.invoices_for(tenant.row)
        document = operations.credit_note_document(uow, tenant, note["number"])
        credit = billing.load(uow, tenant, "acme", lock=False).credit
    # 180 × 15 ÷ 30 × 25 = 2,250 returned on the Apr 10 invoice, tax 2,250 × 10 ÷ 110 = 204.5 → 204
    assert (note["invoice_number"], note["amount"], note["tax"], note["total"]) == (first["number"], 2250, 204, 2250)
    assert document["by_rate"] == [{"rate": "10%", "total": 2250, "tax": 204}]
    assert document["lines"][0]["formula"] == "180 × 15 ÷ 30 × 25 = 2250"
    # May 10: sale 5 × 180 = 900, tax 900 × 10 ÷ 110 = 81.8 → 81; 充当 900 → nothing to pay; 2,250 − 900 = 1,350 left
    assert [ln["kind"] for ln in second["lines"]] == ["recurring"]
    assert (second["subtotal"], second["tax"], second["credit_applied"], second["total"]) == (900, 81, 900, 0)
    assert credit == 1350
    assert [amount for _, amount, _ in gateway.charged] == [5400]  # the invoice with nothing to pay is not charged
