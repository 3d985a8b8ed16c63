"""Render documents to PDF: Jinja2 templates, WeasyPrint, an embedded Noto CJK font."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
TEMPLATE_OF = {"qualified_invoice": "qualified_invoice.html", "receipt": "receipt.html", "credit_note": "credit_note.html"}


@lru_cache(maxsize=1)
def _env() -> Environment:
    return Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))


def render_html(document: dict[str, Any]) -> str:
    css = (TEMPLATES / "document.css").read_text(encoding="utf-8")
    return _env().get_template(TEMPLATE_OF[document["type"]]).render(d=document, css=css)


def render_pdf(document: dict[str, Any]) -> bytes:
    from weasyprint import HTML  # imported here: loading Pango is slow and only PDFs need it

    return HTML(string=render_html(document)).write_pdf()  # type: ignore[no-any-return]
