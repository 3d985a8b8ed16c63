"""Japanese billing documents as data: qualified invoices (適格請求書) and receipts (領収証).

A qualified invoice states the issuer's name and registration number
(``T`` + 13 digits), the transaction date or period, the items, the total and
the consumption tax per tax rate with the rate, and the recipient. These
functions build the documents' content; :mod:`kakin.adapters.pdf` renders it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from . import errors

_REGISTRATION = re.compile(r"^T(\d)(\d{12})$")
_POSTAL = re.compile(r"^(\d{3})-?(\d{4})$")


def corporate_number_check_digit(base12: str) -> int:
    """The check digit of a corporate number (法人番号) from its other 12 digits.

    9 − (Σ Pn × Qn mod 9), Pn the n-th digit counted from the right, Qn = 1 for odd n and 2 for even n.
    """
    total = sum(int(d) * (1 if n % 2 else 2) for n, d in enumerate(reversed(base12), start=1))
    return 9 - total % 9


def validate_registration_number(value: str) -> str:
    """``T`` + 13 digits whose first digit is the corporate-number check digit of the other twelve."""
    match = _REGISTRATION.match(value or "")
    if not match:
        raise errors.InvalidRegistrationNumber(f"{value!r} is not a registration number: write T followed by 13 digits",
                                               param="registration_number")
    if int(match.group(1)) != corporate_number_check_digit(match.group(2)):
        raise errors.InvalidRegistrationNumber(
            f"{value} fails the check digit: check the number against the registration notice", param="registration_number")
    return value


def format_postal_code(value: str) -> str:
    """Seven digits shown as 123-4567."""
    match = _POSTAL.match((value or "").strip())
    if not match:
        raise errors.InvalidPostalCode(f"{value!r} is not a postal code: write 7 digits such as 123-4567", param="postal_code")
    return f"{match.group(1)}-{match.group(2)}"


@dataclass(frozen=True)
class Issuer:
    name: str
    registration_number: str | None
    address: str = ""


@dataclass(frozen=True)
class Recipient:
    name: str  # 宛名: the customer or the addressee it chose
    postal_code: str = ""
    address: str = ""
    email: str = ""


def recipient_of(name: str, addressee: str | None = None, postal_code: str | None = None, address: str | None = None,
                 email: str | None = None) -> Recipient:
    """The recipient a document is addressed to: the addressee (宛名) the customer chose, else its name (SPEC 3.2)."""
    return Recipient(addressee or name, postal_code or "", address or "", email or "")


PARTY_FIELDS = ("issuer_name", "issuer_registration_number", "issuer_address",
                "recipient_name", "recipient_postal_code", "recipient_address")


def frozen_parties(issuer: Issuer, recipient: Recipient) -> dict[str, str | None]:
    """Issuer and recipient as the fields a finalized document keeps: a later change of the vendor or of the
    customer's billing profile applies to later documents only (SPEC 4: a finalized invoice never changes)."""
    return {"issuer_name": issuer.name, "issuer_registration_number": issuer.registration_number,
            "issuer_address": issuer.address, "recipient_name": recipient.name,
            "recipient_postal_code": recipient.postal_code, "recipient_address": recipient.address}


def parties_of(document: dict[str, Any]) -> tuple[Issuer, Recipient]:
    """The issuer and recipient a finalized document (an invoice or credit note row) was written with."""
    return (Issuer(document["issuer_name"], document["issuer_registration_number"], document["issuer_address"] or ""),
            Recipient(document["recipient_name"], document["recipient_postal_code"] or "",
                      document["recipient_address"] or ""))


def _yen(amount: int) -> str:
    return f"¥{amount:,}"


def tax_by_rate(invoice: dict[str, Any]) -> list[dict[str, Any]]:
    """An invoice's (or credit note's) totals and tax per rate, standard rate first (SPEC 4).

    ``total`` is the items' total at that rate as priced (tax-inclusive or not); ``reduced`` marks a rate other
    than the invoice's standard one (軽減税率). Rows from before tax per rate was stored have one rate.
    """
    import json

    inclusive = bool(invoice["tax_inclusive"])
    standard = invoice["tax_rate"]
    if not invoice.get("taxes"):
        rows = [{"rate": standard, "total": invoice.get("subtotal", invoice.get("amount", 0)), "tax": invoice["tax"]}]
    else:
        rows = [{"rate": t["rate"], "total": t["gross"] if inclusive else t["net"], "tax": t["tax"]}
                for t in json.loads(invoice["taxes"])]
    out = []
    for r in rows:
        mark = "※" if r["rate"] != standard else ""
        out.append({**r, "label": f"{r['rate']}対象{mark} {_yen(r['total'])}（{'内' if inclusive else ''}消費税 {_yen(r['tax'])}）",
                    **({"reduced": True} if mark else {})})
    return out


def qualified_invoice(invoice: dict[str, Any], issuer: Issuer, recipient: Recipient) -> dict[str, Any]:
    """The content of a qualified invoice for a finalized invoice (a row with its lines).

    Items at a rate other than the standard one are marked ※ (軽減税率対象), totals and tax are given per rate,
    and a credit balance applied (充当) comes after the tax totals, never as a taxable item: ``sales_total`` is
    what was sold with its tax, ``total`` what is left to pay.
    """
    rate = invoice["tax_rate"]
    inclusive = bool(invoice["tax_inclusive"])
    period = None
    if invoice.get("period_start") and invoice.get("period_end"):
        end = invoice["period_end"]
        last = date.fromordinal(end.toordinal() - 1) if isinstance(end, date) else end
        period = {"start": invoice["period_start"].isoformat(), "end": last.isoformat()}
    lines = []
    for ln in invoice["lines"]:
        line_rate = ln.get("tax_rate") or rate
        lines.append({"description": ln["description"] + ("※" if line_rate != rate else ""), "quantity": ln["quantity"],
                      "amount": ln["amount"], "tax_rate": line_rate, "formula": ln.get("formula") or "",
                      **({"reduced": True} if line_rate != rate else {})})
    by_rate = tax_by_rate(invoice)
    credit_applied = int(invoice.get("credit_applied") or 0)
    notes = [] if issuer.registration_number else ["登録番号が設定されていません: 適格請求書の要件を満たしません"]
    if any(r.get("reduced") for r in by_rate):
        notes.append("※は軽減税率対象品目です")
    return {
        "type": "qualified_invoice",
        "title": "請求書（適格請求書）",
        "number": invoice["number"],
        "issued_on": invoice["issued_on"].isoformat(),
        "transaction_period": period,
        "issuer": {"name": issuer.name, "registration_number": issuer.registration_number, "address": issuer.address},
        "recipient": {"name": recipient.name, "postal_code": recipient.postal_code, "address": recipient.address},
        "lines": lines,
        "prices_include_tax": inclusive,
        "by_rate": by_rate,
        "sales_total": invoice["total"] + credit_applied,  # the items with their tax
        "credit_applied": credit_applied,  # 充当: the credit balance, applied after tax like a payment
        "total": invoice["total"],
        "status": invoice["status"],
        "notes": notes,
    }


def receipt(invoice: dict[str, Any], issuer: Issuer, recipient: Recipient, paid_on: date, purpose: str) -> dict[str, Any]:
    """A receipt (領収証) for a paid invoice: the amount paid, and per rate the items with tax and the tax in them."""
    if invoice["status"] != "paid":
        raise errors.InvoiceNotPaid(
            f"invoice {invoice['number']} is {invoice['status']}: receipts are issued for paid invoices", param="number")
    return {
        "type": "receipt",
        "title": "領収証",
        "number": "R-" + invoice["number"],
        "invoice_number": invoice["number"],
        "issued_on": paid_on.isoformat(),
        "addressee": recipient.name,
        "postal_code": recipient.postal_code,
        "address": recipient.address,
        "amount": invoice["total"],
        "tax": {"rate": invoice["tax_rate"], "amount": invoice["tax"], "inclusive_total": invoice["total"]},
        # per rate, with tax: what the invoice sold; a credit applied (充当) was not paid and is shown apart
        "by_rate": [{**r, "total": r["total"] + (0 if invoice["tax_inclusive"] else r["tax"])} for r in tax_by_rate(invoice)],
        "credit_applied": int(invoice.get("credit_applied") or 0),
        "purpose": f"但し {purpose} として",
        "issuer": {"name": issuer.name, "registration_number": issuer.registration_number, "address": issuer.address},
    }
