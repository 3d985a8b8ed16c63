"""What a qualified invoice (適格請求書) and a receipt say about tax rates and a credit applied (充当)."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from kakin.domain.documents import Issuer, Recipient, qualified_invoice, receipt

ISSUER = Issuer("業界日報株式会社", "T8000000000001", "東京都千代田区")
RECIPIENT = Recipient("株式会社素材商事")


def _invoice(**changes: Any) -> dict[str, Any]:
    # May 1: 8% 17,600 + 3,226 = 20,826 (tax 1,666); 10% 1,000 (tax 100); 23,592 with tax, 充当 950 → 22,642 due
    row = {
        "number": "T-00000002", "issued_on": date(2025, 5, 1), "period_start": date(2025, 5, 1),
        "period_end": date(2025, 6, 1), "tax_rate": "10%", "tax_inclusive": False, "subtotal": 21826, "tax": 1766,
        "credit_applied": 950, "total": 22642, "status": "paid",
        "taxes": json.dumps([{"rate": "10%", "net": 1000, "tax": 100, "gross": 1100},
                             {"rate": "8%", "net": 20826, "tax": 1666, "gross": 22492}]),
        "lines": [
            {"description": "追加配信 500通", "quantity": 500, "amount": 1000, "formula": "500 × 2 = 1000", "tax_rate": None},
            {"description": "人数変更 3→5", "quantity": 2, "amount": 3226, "formula": "4400 × 11 ÷ 30 × 2 = 3226",
             "tax_rate": "8%"},
            {"description": "紙面宅配", "quantity": 4, "amount": 17600, "formula": "4400 × 4 = 17600", "tax_rate": "8%"},
        ],
    }
    return {**row, **changes}


def test_reduced_rate_items_are_marked_and_each_rate_has_its_total_and_tax() -> None:
    doc = qualified_invoice(_invoice(), ISSUER, RECIPIENT)
    assert [ln["description"] for ln in doc["lines"]] == ["追加配信 500通", "人数変更 3→5※", "紙面宅配※"]
    assert [ln["tax_rate"] for ln in doc["lines"]] == ["10%", "8%", "8%"]
    assert [(r["rate"], r["total"], r["tax"]) for r in doc["by_rate"]] == [("10%", 1000, 100), ("8%", 20826, 1666)]
    assert doc["by_rate"][1]["label"] == "8%対象※ ¥20,826（消費税 ¥1,666）"
    assert "※は軽減税率対象品目です" in doc["notes"]


def test_a_credit_applied_comes_after_the_tax_totals_and_is_never_an_item() -> None:
    doc = qualified_invoice(_invoice(), ISSUER, RECIPIENT)
    # 1,000 + 100 + 20,826 + 1,666 = 23,592 sold with tax; 充当 950; 23,592 − 950 = 22,642 to pay
    assert (doc["sales_total"], doc["credit_applied"], doc["total"]) == (23592, 950, 22642)
    assert all(ln["amount"] > 0 for ln in doc["lines"])


def test_an_invoice_without_a_credit_applied_shows_its_sales_as_its_total() -> None:
    doc = qualified_invoice(_invoice(credit_applied=0, total=23592), ISSUER, RECIPIENT)
    assert (doc["sales_total"], doc["credit_applied"], doc["total"]) == (23592, 0, 23592)
    assert all("reduced" not in r for r in doc["by_rate"][:1])


def test_a_receipt_gives_each_rate_with_its_tax_and_the_credit_applied_apart() -> None:
    doc = receipt(_invoice(), ISSUER, RECIPIENT, date(2025, 5, 1), "業界日報 ご利用料金")
    # tax-exclusive prices: each rate with its tax, 1,000 + 100 = 1,100 and 20,826 + 1,666 = 22,492
    assert [(r["rate"], r["total"], r["tax"]) for r in doc["by_rate"]] == [("10%", 1100, 100), ("8%", 22492, 1666)]
    assert (doc["amount"], doc["credit_applied"]) == (22642, 950)
