"""Documents for finalized invoices: qualified invoices and receipts, as JSON and PDF."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from kakin.adapters.db.rows import TenantRow
from kakin.adapters.db.store import UnitOfWork
from kakin.domain import errors
from kakin.domain.calendar import local_date
from kakin.domain.documents import format_postal_code, parties_of, qualified_invoice, receipt

from .access import Operator
from .tenancy import Tenant, customer_row

Clock = Callable[[], datetime]


def set_billing_profile(uow: UnitOfWork, tenant: TenantRow, key: str, *, addressee: str | None, postal_code: str | None,
                        address: str | None, email: str | None, now: datetime, actor: str) -> dict[str, Any]:
    """The addressee (宛名), postal code, address and billing e-mail printed on the documents finalized from now on
    (those finalized before keep theirs)."""
    row = customer_row(uow, tenant, key)
    values = {"addressee": addressee, "postal_code": format_postal_code(postal_code) if postal_code else None,
              "address": address, "billing_email": email}
    uow.customer_records.set_billing_profile(row["id"], values)
    before = {k: row[k] for k in values}
    uow.audit([{"tenant_id": tenant.id, "customer_id": row["id"], "at": now, "actor": actor,
                "action": "customer.billing_profile", "before": before, "after": values}])
    return values


def change_billing_profile(uow: UnitOfWork, principal: Operator, key: str, clock: Clock, *, addressee: str | None,
                           postal_code: str | None, address: str | None, email: str | None) -> dict[str, Any]:
    """:func:`set_billing_profile` for ``principal``: the acting member must be the customer's super admin (RULES
    ``set_billing_profile``), a portal principal its own customer's. Raises what
    :func:`~kakin.services.authorization.authorize` raises; returns the profile as stored."""
    from . import authorization  # authorization imports the billing services, which print documents

    row = authorization.customer_for(uow, principal, key, clock)
    authorization.authorize(uow, principal, row, "set_billing_profile")
    return set_billing_profile(uow, principal.tenant, key, addressee=addressee, postal_code=postal_code,
                               address=address, email=email, now=row["now"], actor=principal.actor)


def _invoice(uow: UnitOfWork, tenant: Tenant, number: str) -> dict[str, Any]:
    found = uow.invoices_for(tenant.row, number=number)
    if not found:
        raise errors.NotFound(f"no invoice {number!r}", param="number")
    return found[0]


def invoice_document(uow: UnitOfWork, tenant: Tenant, number: str) -> dict[str, Any]:
    """The qualified invoice (適格請求書) of invoice ``number``, with the issuer and recipient it was finalized with."""
    invoice = _invoice(uow, tenant, number)
    return qualified_invoice(invoice, *parties_of(invoice))


def receipt_document(uow: UnitOfWork, tenant: Tenant, number: str) -> dict[str, Any]:
    """The receipt (領収証) of paid invoice ``number``: addressed as the invoice was, so it never changes either.
    Raises InvoiceNotPaid (409) for an invoice that is not paid."""
    invoice = _invoice(uow, tenant, number)
    issuer, recipient = parties_of(invoice)
    paid = invoice["paid_at"] or invoice["issued_at"]
    return receipt(invoice, issuer, recipient, local_date(paid, tenant.lifecycle.zone), f"{tenant.catalog.name} ご利用料金")


def write_documents(uow: UnitOfWork, tenant: Tenant, folder: Path) -> list[Path]:
    """Every invoice's qualified invoice, a receipt for each paid one, and every credit note, as PDF and JSON into
    ``folder``.

    Raises FontsMissing (``fonts_missing``) before writing anything when no Japanese font is installed.
    """
    import json

    from kakin.adapters.pdf import render_pdf, require_japanese_font

    from .operations import credit_note_document

    require_japanese_font()
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    papers = []
    for invoice in uow.invoices_for(tenant.row):
        docs = [invoice_document(uow, tenant, invoice["number"])]
        if invoice["status"] == "paid" and invoice["total"] > 0:
            docs.append(receipt_document(uow, tenant, invoice["number"]))
        papers.append(docs)
    papers += [[credit_note_document(uow, tenant, note["number"])] for note in uow.credit_notes_for(tenant.row)]
    for docs in papers:
        for doc in docs:
            base = folder / doc["number"]
            base.with_suffix(".json").write_text(json.dumps(doc, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
            base.with_suffix(".pdf").write_bytes(render_pdf(doc))
            written += [base.with_suffix(".json"), base.with_suffix(".pdf")]
    return written
