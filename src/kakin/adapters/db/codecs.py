"""How domain values that have no column of their own are stored as text (a pending change as JSON)."""

from __future__ import annotations

import json
from datetime import date

from kakin.domain.account import PendingChange


def pending_to_json(p: PendingChange | None) -> str | None:
    """A pending change as the ``subscriptions.pending`` column holds it: JSON with keys sorted; None stays None."""
    if p is None:
        return None
    return json.dumps({"effective_on": p.effective_on.isoformat(), "plan": p.plan, "contract": p.contract,
                       "seats": p.seats, "cancel": p.cancel,
                       **({"held": [[on.isoformat(), a, b] for on, a, b in p.held]} if p.held else {}),
                       **({"catalog_version": p.catalog_version} if p.catalog_version is not None else {})},
                      sort_keys=True)


def pending_from_json(text: str | None) -> PendingChange | None:
    """The pending change of a ``subscriptions.pending`` value; None (or empty) is no pending change."""
    if not text:
        return None
    d = json.loads(text)
    return PendingChange(date.fromisoformat(d["effective_on"]), d["plan"], d["contract"], d["seats"], d["cancel"],
                         [(date.fromisoformat(on), a, b) for on, a, b in d.get("held", [])], d.get("catalog_version"))
