"""The real clock: the one place a service may learn the time when its caller gave none."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    """Now, as an aware UTC instant."""
    return datetime.now(UTC)
