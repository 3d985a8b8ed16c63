"""Qualified invoices and receipts: content, PDF text with an embedded CJK font, validation of what is printed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine

from kakin.adapters.db.store import UnitOfWork
from kakin.adapters.payments import CardSimulator
from kakin.adapters.pdf import render_pdf
from kakin.domain.documents import corporate_number_check_digit, format_postal_code, validate_registration_number
from kakin.domain.errors import KakinError
from kakin.services import billing, documents
from kakin.services.tenancy import create_tenant

JST = ZoneInfo("Asia/Tokyo")
needs_poppler = pytest.mark.skipif(shutil.which("pdftotext") is None and not os.environ.get("CI"),
                                   reason="pdftotext (poppler-utils) not installed; ./scripts/system-deps.sh installs it")


def pdf_text(pdf: bytes, tmp_path: Path) -> str:
    f = tmp_path / "doc.pdf"
    f.write_bytes(pdf)
    return subprocess.run(["pdftotext", "-layout", str(f), "-"], capture_output=True, text=True, check=True).stdout


def pdf_fonts(pdf: bytes, tmp_path: Path) -> str:
    f = tmp_path / "fonts.pdf"
    f.write_bytes(pdf)
    return subprocess.run(["pdffonts", str(f)], capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize("number", ["T7000012050002", "T8000000000001"])
def test_registration_numbers_with_a_good_check_digit_pass(number: str) -> None:
    assert validate_registration_number(number) == number


@pytest.mark.parametrize("number", ["T1000012050002", "7000012050002", "T700001205000", "T70000120500021", "TX000012050002", ""])
def test_bad_registration_numbers_are_refused_with_a_stable_code(number: str) -> None:
    with pytest.raises(KakinError) as info:
        validate_registration_number(number)
    assert info.value.code == "invalid_registration_number" and info.value.param == "registration_number"


def test_the_check_digit_follows_the_national_tax_agency_formula() -> None:
    # 000012050002: digits from the right 2,0,0,0,5,0,2,1,0,0,0,0 weighted 1,2,1,2,… → 2 + 5 + 2 + 2 = 11; 9 − 11 mod 9 = 7
    assert corporate_number_check_digit("000012050002") == 7


def test_postal_codes_print_as_three_and_four_digits() -> None:
    assert format_postal_code("1050011") == format_postal_code("105-0011") == "105-0011"
    with pytest.raises(KakinError) as info:
        format_postal_code("105-001")
    assert info.value.code == "invalid_postal_code"


def seed(engine: Engine, catalog: str) -> None:
    now = datetime(2025, 3, 1, tzinfo=JST) if catalog == "line-oa" else datetime(2022, 5, 3, 10, tzinfo=JST)
    gateway = CardSimulator()
    with UnitOfWork(engine) as uow:
        tenant = create_tenant(uow, "t", "株式会社カキン（デモ）", catalog, now, registration_number="T8000000000001",
                               address="東京都千代田区丸の内1-1-1")
        billing.create_customer(uow, tenant, gateway, "acme", "株式会社アクメ", now, payment_method="pm_card_visa")
        documents.set_billing_profile(uow, tenant.row, "acme", addressee="株式会社アクメ 経理部", postal_code="1050011",
                                      address="東京都港区芝公園4-2-8", email="billing@acme.example", now=now, actor="test")
        billing.subscribe(uow, tenant, gateway, "acme", now, "gold" if catalog == "nipoplus" else "standard",
                          **({"seats": 10} if catalog == "nipoplus" else {}))


@needs_poppler
def test_a_tax_inclusive_invoice_prints_every_qualified_invoice_item(engine: Engine, tmp_path: Path) -> None:
    seed(engine, "nipoplus")
    with UnitOfWork(engine) as uow:
        from kakin.services.tenancy import open_tenant

        tenant = open_tenant(uow, "t")
        doc = documents.invoice_document(uow, tenant, "T-00000001")
    assert doc["issuer"]["registration_number"] == "T8000000000001"
    assert doc["by_rate"] == [{"rate": "10%", "total": 1800, "tax": 163, "label": "10%対象 ¥1,800（内消費税 ¥163）"}]
    pdf = render_pdf(doc)
    text = pdf_text(pdf, tmp_path)
    for expected in ("請求書（適格請求書）", "登録番号: T8000000000001", "株式会社カキン（デモ）", "株式会社アクメ 経理部 御中",
                     "〒105-0011", "T-00000001", "2022-05-03〜2022-06-02", "10%対象（税込）", "¥1,800", "内消費税（10%）", "¥163"):
        assert expected in text, expected
    assert "Noto-Sans-CJK-JP" in pdf_fonts(pdf, tmp_path)  # the Japanese font is embedded


@needs_poppler
def test_a_tax_exclusive_invoice_shows_tax_on_top_and_a_receipt_shows_the_addressee(engine: Engine, tmp_path: Path) -> None:
    seed(engine, "line-oa")
    with UnitOfWork(engine) as uow:
        from kakin.services.tenancy import open_tenant

        tenant = open_tenant(uow, "t")
        invoice = documents.invoice_document(uow, tenant, "T-00000001")
        receipt = documents.receipt_document(uow, tenant, "T-00000001")
    assert invoice["by_rate"][0] == {"rate": "10%", "total": 15000, "tax": 1500, "label": "10%対象 ¥15,000（消費税 ¥1,500）"}
    assert invoice["total"] == 16500
    text = pdf_text(render_pdf(receipt), tmp_path)
    for expected in ("領収証", "株式会社アクメ 経理部 様", "〒105-0011", "東京都港区芝公園4-2-8", "¥16,500", "R-T-00000001",
                     "内消費税（10%）", "¥1,500", "登録番号: T8000000000001", "上記金額を正に領収いたしました"):
        assert expected in text, expected


def test_an_unpaid_invoice_has_no_receipt(engine: Engine) -> None:
    now = datetime(2022, 5, 3, 10, tzinfo=JST)
    gateway = CardSimulator()
    with UnitOfWork(engine) as uow:
        tenant = create_tenant(uow, "t", "T", "nipoplus", now)
        # the sign-up awaits 3-D Secure: its invoice is open
        billing.create_customer(uow, tenant, gateway, "acme", "acme", now, payment_method="pm_card_authenticationRequired")
        billing.subscribe(uow, tenant, gateway, "acme", now, "gold", seats=5)
        with pytest.raises(KakinError) as info:
            documents.receipt_document(uow, tenant, "T-00000001")
        assert info.value.code == "invoice_not_paid"
        doc = documents.invoice_document(uow, tenant, "T-00000001")
    assert doc["notes"] == ["登録番号が設定されていません: 適格請求書の要件を満たしません"]  # no number, said plainly


def test_simulate_writes_every_invoice_and_receipt_as_pdf_and_json(tmp_path: Path) -> None:
    scenario = tmp_path / "s.toml"
    scenario.write_text("""
tenant = "nipoplus"
[issuer]
name = "株式会社ニポプラス（デモ）"
registration_number = "T8000000000001"
[[customers]]
id = "acme"
name = "株式会社アクメ"
payment_method = "pm_card_visa"
postal_code = "1050011"
[[steps]]
at = 2022-05-03T10:00:00
action = "subscribe"
customer = "acme"
plan = "gold"
seats = 10
[[steps]]
at = 2022-06-03T10:00:00
action = "advance"
""", encoding="utf-8")
    out = tmp_path / "docs"
    run = subprocess.run([sys.executable, "-m", "kakin.cli", "simulate", str(scenario), "--documents", str(out), "--json"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(f"{p}SCENARIO-0000000{n}.{ext}" for p in ("", "R-") for n in (1, 2) for ext in ("json", "pdf"))
    first = json.loads((out / "SCENARIO-00000001.json").read_text(encoding="utf-8"))
    assert first["issuer"]["registration_number"] == "T8000000000001" and first["total"] == 1800
    assert (out / "SCENARIO-00000002.pdf").read_bytes().startswith(b"%PDF")
    bad = scenario.read_text(encoding="utf-8").replace("T8000000000001", "T1000000000001")
    scenario.write_text(bad, encoding="utf-8")
    refused = subprocess.run([sys.executable, "-m", "kakin.cli", "simulate", str(scenario)], capture_output=True, text=True)
    assert refused.returncode == 2 and "issuer" in refused.stderr and "check digit" in refused.stderr


EMPTY_FONTCONFIG = '<?xml version="1.0"?>\n<!DOCTYPE fontconfig SYSTEM "fonts.dtd">\n<fontconfig></fontconfig>\n'


def test_the_font_lookup_finds_no_japanese_font_under_an_empty_fontconfig(tmp_path: Path) -> None:
    conf = tmp_path / "fonts.conf"
    conf.write_text(EMPTY_FONTCONFIG, encoding="utf-8")
    from kakin.adapters.pdf import japanese_fonts

    assert japanese_fonts(conf) == ()


def test_no_pdf_is_rendered_without_a_japanese_font_and_the_error_names_the_package(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "fonts.conf"
    conf.write_text(EMPTY_FONTCONFIG, encoding="utf-8")
    monkeypatch.setenv("FONTCONFIG_FILE", str(conf))
    doc = {"type": "receipt", "number": "R-1"}
    with pytest.raises(KakinError) as info:
        render_pdf(doc)
    assert info.value.code == "fonts_missing" and "fonts-noto-cjk" in info.value.message


def test_simulate_writes_no_documents_without_a_japanese_font(tmp_path: Path) -> None:
    conf = tmp_path / "fonts.conf"
    conf.write_text(EMPTY_FONTCONFIG, encoding="utf-8")
    scenario = tmp_path / "s.toml"
    scenario.write_text('tenant = "nipoplus"\n[[customers]]\nid = "acme"\nname = "株式会社アクメ"\n'
                        'payment_method = "pm_card_visa"\n[[steps]]\nat = 2022-05-03T10:00:00\naction = "subscribe"\n'
                        'customer = "acme"\nplan = "gold"\nseats = 10\n', encoding="utf-8")
    out = tmp_path / "docs"
    run = subprocess.run([sys.executable, "-m", "kakin.cli", "simulate", str(scenario), "--documents", str(out)],
                         capture_output=True, text=True, timeout=120, env={**os.environ, "FONTCONFIG_FILE": str(conf)})
    assert run.returncode == 2
    message = " ".join(run.stderr.split())
    assert "fonts_missing" in message and "fonts-noto-cjk" in message
    assert not out.exists() or list(out.iterdir()) == []
