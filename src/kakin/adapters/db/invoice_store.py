"""Invoices, credit notes and the payment log in the store: finalized documents written once, numbered gapless
per tenant. Part of :class:`~kakin.adapters.db.store.UnitOfWork`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime
from fractions import Fraction
from typing import Any

from sqlalchemy import and_, func, select, update

from kakin.domain.account import Account, OpenInvoice
from kakin.domain.documents import Issuer, frozen_parties, recipient_of
from kakin.domain.invoice import InvoiceDraft, Line
from kakin.domain.money import TaxedAmount, format_rate

from .bulk import in_ids, insert_many
from .rows import INVOICE_STATE, TenantRow, UnitOfWorkState, rate_text, taxes_json
from .tables import (
    credit_notes,
    customers,
    invoice_lines,
    invoices,
    payment_attempts,
    subscriptions,
    tenants,
)


class InvoiceStore(UnitOfWorkState):
    """Invoices, credit notes and payment attempts on the unit of work's connection (a part of ``UnitOfWork``)."""


    # ----------------------------------------------------------- invoices
    def add_invoices(self, tenant: TenantRow, first_seq: int, drafts: Sequence[tuple[Account, InvoiceDraft, OpenInvoice]],
                     now: datetime, *, tax_inclusive: bool, tax_rate: Fraction | None = None) -> list[int]:
        """Write finalized invoices numbered from ``first_seq`` (reserved by :meth:`reserve_invoice_numbers`).

        ``tax_rate`` is the catalog's standard rate (the invoice's ``tax_rate``; lines at another rate carry theirs).
        """
        if not drafts:
            return []
        parties = self.document_parties(tenant, {account.id for account, _, _ in drafts if account.id is not None})
        rows = []
        for i, (account, draft, inv) in enumerate(drafts):
            seq = first_seq + i
            rows.append({
                **parties[account.id or 0],
                "tenant_id": tenant.id, "customer_id": account.id, "seq": seq, "number": self.invoice_number(tenant, seq),
                "issued_on": draft.issued_on, "issued_at": now, "period_start": draft.period_start,
                "period_end": draft.period_end, "subtotal": draft.subtotal, "tax": draft.tax_amount, "total": draft.total,
                "tax_rate": format_rate(tax_rate if tax_rate is not None else draft.taxes[0].rate), "tax_inclusive": tax_inclusive, "taxes": taxes_json(draft.taxes),
                "credit_applied": draft.credit_applied, "credit_carried": 0, "status": inv.status,
                "attempts": inv.attempts, "first_failed_at": inv.first_failed_at, "next_retry_at": inv.next_retry_at,
                "paid_at": now if inv.status == "paid" else None, "billing_key": draft.billing_key, "due_on": inv.due_on,
                "deferred": inv.deferred, "expires_at": inv.expires_at,
            })
        insert_many(self.conn, invoices, rows)  # one executemany; ids are read back by the reserved numbers
        by_seq = dict(self.conn.execute(select(invoices.c.seq, invoices.c.id).where(
            invoices.c.tenant_id == tenant.id, invoices.c.seq.between(first_seq, first_seq + len(rows) - 1))).all())
        ids = [by_seq[r["seq"]] for r in rows]
        for inv_id, r in zip(ids, rows, strict=True):  # as written: saving the same state again is skipped
            self._written[inv_id] = tuple(r[c] for c in INVOICE_STATE)
        line_rows = []
        for inv_id, (_, draft, _) in zip(ids, drafts, strict=True):
            for pos, ln in enumerate(draft.lines):
                line_rows.append({"invoice_id": inv_id, "position": pos, "kind": ln.kind.value, "description": ln.description,
                                  "quantity": ln.quantity, "amount": ln.amount, "period_start": ln.period_start,
                                  "period_end": ln.period_end, "formula": ln.formula,
                                  "tax_rate": rate_text(ln.tax_rate), "catalog_version": ln.catalog_version})
        if line_rows:
            insert_many(self.conn, invoice_lines, line_rows)
        return ids

    def add_credit_note(self, tenant: TenantRow, customer_id: int, invoice_id: int, now: datetime, issued_on: date, *,
                        amount: int, tax: int, total: int, reason: str, settlement: str,
                        refund_reference: str | None = None, taxes: Sequence[TaxedAmount] = (),
                        lines: Sequence[Line] = ()) -> str:
        """Write a credit note (適格返還請求書) against an invoice, numbered per tenant without gaps; its number.

        The tenant row stays locked until commit, so numbers never gap or repeat (like invoices).
        """
        seq = int(self.conn.execute(update(tenants).where(tenants.c.id == tenant.id).values(
            next_credit_note_seq=tenants.c.next_credit_note_seq + 1).returning(tenants.c.next_credit_note_seq)).scalar_one()) - 1
        number = f"{tenant.invoice_prefix}-CN-{seq:08d}"
        self.conn.execute(credit_notes.insert().values(
            tenant_id=tenant.id, customer_id=customer_id, invoice_id=invoice_id, seq=seq, number=number,
            issued_on=issued_on, issued_at=now, amount=amount, tax=tax, total=total, reason=reason,
            settlement=settlement, refund_reference=refund_reference, taxes=taxes_json(taxes) if taxes else None,
            lines=json.dumps([{"description": ln.description, "quantity": ln.quantity, "amount": ln.amount,
                               "formula": ln.formula, "tax_rate": rate_text(ln.tax_rate),
                               **({"catalog_version": ln.catalog_version} if ln.catalog_version is not None else {})}
                              for ln in lines],
                             ensure_ascii=False) if lines else None,
            **self.document_parties(tenant, {customer_id})[customer_id]))
        if settlement != "credit":  # a credit goes on the balance; the invoice itself is still owed in full
            self.conn.execute(update(invoices).where(invoices.c.id == invoice_id).values(credited=invoices.c.credited + total))
        return number

    def invoice_reduced_by(self, customer_id: int, period_start: date | None, on: date) -> int | None:
        """The invoice a credit for a period reduces: the customer's invoice of that period, else its latest one
        with sales issued by ``on``; None when it has none."""
        base = select(invoices.c.id).where(invoices.c.customer_id == customer_id, invoices.c.issued_on <= on,
                                           invoices.c.subtotal > 0)
        if period_start is not None:
            found = self.conn.execute(base.where(invoices.c.period_start == period_start).order_by(
                invoices.c.seq.desc())).scalars().first()
            if found is not None:
                return int(found)
        found = self.conn.execute(base.order_by(invoices.c.seq.desc())).scalars().first()
        return None if found is None else int(found)

    def credit_notes_for(self, tenant: TenantRow, customer_id: int | None = None) -> list[dict[str, Any]]:
        """Every credit note of the tenant (or of its customer with row id ``customer_id``, read by that index) in
        number order, with its customer's key and its invoice's number."""
        q = select(credit_notes, customers.c.key.label("customer"), invoices.c.number.label("invoice_number")).join(
            customers, customers.c.id == credit_notes.c.customer_id).join(
            invoices, invoices.c.id == credit_notes.c.invoice_id).where(credit_notes.c.tenant_id == tenant.id)
        if customer_id is not None:
            q = q.where(credit_notes.c.customer_id == customer_id)
        return [dict(r) for r in self.conn.execute(q.order_by(credit_notes.c.seq)).mappings()]

    def document_parties(self, tenant: TenantRow, customer_ids: set[int]) -> dict[int, dict[str, str | None]]:
        """The issuer (the tenant as it is now) and each customer's recipient, as the columns that freeze them on
        the invoices and credit notes written now."""
        issuer = Issuer(tenant.name, tenant.registration_number, tenant.address or "")
        found = self.conn.execute(select(customers.c.id, customers.c.name, customers.c.addressee, customers.c.postal_code,
                                         customers.c.address).where(in_ids(self.conn, customers.c.id, customer_ids))).all()
        return {int(r.id): frozen_parties(issuer, recipient_of(r.name, r.addressee, r.postal_code, r.address))
                for r in found}

    def invoice_counts(self, customer_ids: list[int]) -> dict[int, int]:
        """How many invoices each customer has (committed ones: a rolled-back batch's do not count)."""
        if not customer_ids:
            return {}
        rows = self.conn.execute(select(invoices.c.customer_id, func.count()).where(
            in_ids(self.conn, invoices.c.customer_id, set(customer_ids))).group_by(invoices.c.customer_id)).all()
        return {int(c): int(n) for c, n in rows}

    @staticmethod
    def invoice_number(tenant: TenantRow, seq: int) -> str:
        return f"{tenant.invoice_prefix}-{seq:08d}"

    def reserve_invoice_numbers(self, tenant: TenantRow, n: int) -> int:
        """Reserve n consecutive numbers and return the first. The tenant row stays locked until
        commit, and a rollback returns the numbers, so they never gap or repeat."""
        if n == 0:
            return 0
        nxt = self.conn.execute(update(tenants).where(tenants.c.id == tenant.id).values(
            next_invoice_seq=tenants.c.next_invoice_seq + n).returning(tenants.c.next_invoice_seq)).scalar_one()
        return int(nxt) - n

    def last_payment_references(self, invoice_ids: list[int]) -> dict[int, str]:
        """The gateway reference of each invoice's latest attempt that has one."""
        return {i: r["reference"] for i, r in self.last_payment_attempts(invoice_ids).items()}

    def last_payment_attempts(self, invoice_ids: list[int]) -> dict[int, dict[str, Any]]:
        """Each invoice's latest payment attempt that has a gateway reference, as stored."""
        out: dict[int, dict[str, Any]] = {}
        if invoice_ids:
            for r in self.conn.execute(select(payment_attempts).where(
                    payment_attempts.c.invoice_id.in_(invoice_ids), payment_attempts.c.reference.is_not(None)).order_by(
                    payment_attempts.c.id)).mappings():
                out[int(r["invoice_id"])] = dict(r)
        return out

    def payment_by_reference(self, tenant: TenantRow, reference: str) -> dict[str, Any] | None:
        """The first payment attempt with this gateway reference on one of the tenant's invoices: its ``customer``
        (key), ``customer_id``, ``invoice_id``, ``number`` (the invoice's) and ``idempotency_key``; None if none."""
        row = self.conn.execute(select(
            customers.c.key.label("customer"), customers.c.id.label("customer_id"), invoices.c.id.label("invoice_id"),
            invoices.c.number, payment_attempts.c.idempotency_key).join(
            invoices, invoices.c.customer_id == customers.c.id).join(
            payment_attempts, payment_attempts.c.invoice_id == invoices.c.id).where(
            invoices.c.tenant_id == tenant.id, payment_attempts.c.reference == reference).order_by(
            payment_attempts.c.id)).mappings().first()
        return dict(row) if row else None

    def add_payment_attempts(self, rows: list[dict[str, Any]]) -> None:
        insert_many(self.conn, payment_attempts, rows)

    def refused_attempt_counts(self, customer_ids: list[int]) -> dict[int, int]:
        """How many declined purchases (payment attempts without an invoice) each customer has in the payment log."""
        if not customer_ids:
            return {}
        rows = self.conn.execute(select(payment_attempts.c.customer_id, func.count()).where(
            payment_attempts.c.customer_id.in_(customer_ids), payment_attempts.c.invoice_id.is_(None)).group_by(
            payment_attempts.c.customer_id)).all()
        return {int(c): int(n) for c, n in rows}

    def payment_attempts_of(self, tenant: TenantRow, customer_id: int | None = None) -> list[dict[str, Any]]:
        """The payment log, oldest first: every attempt at the gateway, with its invoice number when it has one."""
        q = select(payment_attempts, invoices.c.number.label("invoice"), customers.c.key.label("customer")).join(
            customers, customers.c.id == payment_attempts.c.customer_id).outerjoin(
            invoices, invoices.c.id == payment_attempts.c.invoice_id).where(customers.c.tenant_id == tenant.id)
        if customer_id is not None:
            q = q.where(payment_attempts.c.customer_id == customer_id)
        return [dict(r) for r in self.conn.execute(q.order_by(payment_attempts.c.id)).mappings()]

    def invoices_for(self, tenant: TenantRow, customer_id: int | None = None, number: str | None = None, *,
                     after: int | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Invoices with their lines and the customer's key, in number order; with ``limit``, a page of at most
        ``limit`` rows after row id ``after``, in id order (the API's cursor)."""
        q = select(invoices, customers.c.key.label("customer")).join(customers, customers.c.id == invoices.c.customer_id).where(
            invoices.c.tenant_id == tenant.id)
        if customer_id is not None:
            q = q.where(invoices.c.customer_id == customer_id)
        if number is not None:
            q = q.where(invoices.c.number == number)
        if after is not None:
            q = q.where(invoices.c.id > after)
        q = q.order_by(invoices.c.seq) if limit is None else q.order_by(invoices.c.id).limit(limit)
        rows = [dict(r) for r in self.conn.execute(q).mappings()]
        if not rows:
            return rows
        by_id = {r["id"]: r for r in rows}
        for r in rows:
            r["lines"] = []
        for ln in self.conn.execute(select(invoice_lines).where(invoice_lines.c.invoice_id.in_(list(by_id))).order_by(
                invoice_lines.c.invoice_id, invoice_lines.c.position)).mappings():
            by_id[ln["invoice_id"]]["lines"].append(dict(ln))
        return rows

    def latest_plan_subscriptions(self, tenant: TenantRow) -> dict[int, dict[str, Any]]:
        """Each customer's most recent main subscription (ended or not), for reporting."""
        latest = select(func.max(subscriptions.c.id).label("id")).where(
            subscriptions.c.tenant_id == tenant.id, subscriptions.c.product == "plan").group_by(subscriptions.c.customer_id).subquery()
        rows = self.conn.execute(select(subscriptions).join(latest, and_(subscriptions.c.id == latest.c.id))).mappings()
        return {r["customer_id"]: dict(r) for r in rows}

    def customers_of(self, tenant: TenantRow, ids: list[int] | None = None) -> list[dict[str, Any]]:
        q = select(customers).where(customers.c.tenant_id == tenant.id)
        if ids is not None:
            q = q.where(customers.c.id.in_(ids))
        return [dict(r) for r in self.conn.execute(q.order_by(customers.c.id)).mappings()]
