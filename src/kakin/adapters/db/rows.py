"""Rows and encodings the store's parts share: the tenant row, audit states and per-rate taxes as stored."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from functools import lru_cache
from typing import Any

import orjson
from sqlalchemy import Connection

from kakin.domain.money import TaxedAmount, format_rate


@dataclass(frozen=True)
class TenantRow:
    id: int
    code: str
    name: str
    catalog: str
    timezone: str
    invoice_prefix: str
    registration_number: str | None
    address: str | None = None
    created_at: datetime | None = None

    @classmethod
    def of(cls, r: Any) -> TenantRow:
        return cls(r["id"], r["code"], r["name"], r["catalog"], r["timezone"], r["invoice_prefix"], r["registration_number"],
                   r["address"], r["created_at"])


def audit_json(state: dict[str, Any]) -> str:
    """An audit state as JSON: keys sorted, dates and instants in ISO 8601, Japanese text as is, other values as text."""
    return orjson.dumps(state, default=str, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS).decode()


def rate_text(rate: Fraction | None) -> str | None:
    return None if rate is None else format_rate(rate)


def parse_rate(text: str | None) -> Fraction | None:
    """"8%" → Fraction(2, 25); None stays None (the standard rate)."""
    return None if text is None else Fraction(text.rstrip("%")) / 100


def taxes_json(taxes: Sequence[TaxedAmount]) -> str:
    """Totals and tax per rate as stored: [{"rate": "10%", "net": 819, "tax": 81, "gross": 900}]."""
    return _taxes_json(tuple(taxes))


@lru_cache(maxsize=4096)  # a billing run writes the same few amounts again and again
def _taxes_json(taxes: tuple[TaxedAmount, ...]) -> str:
    return json.dumps([{"rate": format_rate(t.rate), "net": t.net, "tax": t.tax, "gross": t.gross} for t in taxes])


# an invoice's payment state, as a payment or dunning changes it (written by the run, compared before saving)
INVOICE_STATE = ("status", "attempts", "first_failed_at", "next_retry_at", "paid_at", "deferred", "expires_at")


class UnitOfWorkState:
    """What the unit of work's parts (``AccountStore``, ``InvoiceStore``) read of it: its connection and what it
    knows of the rows it loaded and wrote in this transaction (set by ``UnitOfWork.__init__`` and ``__enter__``)."""

    conn: Connection
    _loaded: dict[tuple[str, int], dict[str, Any]]
    _versions: dict[int, int]  # customer id → the version loaded or saved (customers.version)
    _pending_ids: dict[int, set[int]]
    _written: dict[int, tuple[Any, ...]]  # invoice id → its payment state as this transaction wrote it
