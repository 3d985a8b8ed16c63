"""Queries of finalized invoices and credit notes that operators' commands read (``services.operations``).

``uow.invoice_records``. Writing invoices and credit notes stays with the account store
(``store.UnitOfWork.add_invoices``, ``add_credit_note``), which numbers them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, func, select

from .tables import credit_notes, customers, invoices, payment_attempts


class InvoiceRecordRepository:
    """Finalized invoices and credit notes as stored, read by operators' commands (services/operations.py), on one
    connection."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def invoice_by_number(self, tenant_id: int, number: str) -> dict[str, Any] | None:
        """The tenant's invoice ``number`` as stored, with its customer's ``key``; None when it has none."""
        row = self.conn.execute(select(invoices, customers.c.key).join(customers, customers.c.id == invoices.c.customer_id).where(
            invoices.c.tenant_id == tenant_id, invoices.c.number == number)).mappings().first()
        return None if row is None else dict(row)

    def status(self, invoice_id: int) -> str | None:
        """The invoice's status (open, paid, uncollectible, void); None when there is no such invoice."""
        status: str | None = self.conn.execute(select(invoices.c.status).where(invoices.c.id == invoice_id)).scalar()
        return status

    def paid_reference(self, invoice_id: int) -> str | None:
        """The gateway reference of the invoice's latest succeeded payment that has one (what a refund returns)."""
        reference: str | None = self.conn.execute(select(payment_attempts.c.reference).where(
            payment_attempts.c.invoice_id == invoice_id, payment_attempts.c.outcome == "succeeded",
            payment_attempts.c.reference.is_not(None)).order_by(payment_attempts.c.id.desc())).scalar()
        return reference

    def credited(self, invoice_id: int) -> int:
        """The sum of the ``amount`` (the invoice's price basis, before tax) of the credit notes against the invoice."""
        return int(self.conn.execute(select(func.coalesce(func.sum(credit_notes.c.amount), 0)).where(
            credit_notes.c.invoice_id == invoice_id)).scalar_one())

    def credit_note(self, tenant_id: int, number: str) -> dict[str, Any] | None:
        """The tenant's credit note ``number`` as stored, with its invoice's ``invoice_number``, ``invoice_issued_on``
        and ``tax_rate``; None when it has none."""
        row = self.conn.execute(select(credit_notes, invoices.c.number.label("invoice_number"), invoices.c.issued_on.label(
            "invoice_issued_on"), invoices.c.tax_rate).join(invoices, invoices.c.id == credit_notes.c.invoice_id).where(
            credit_notes.c.tenant_id == tenant_id, credit_notes.c.number == number)).mappings().first()
        return None if row is None else dict(row)
