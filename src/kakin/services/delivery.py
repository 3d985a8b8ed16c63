"""Working through an outbox (mail, webhook deliveries): claim, send outside any transaction, record.

The rule, the same for both outboxes (ARCHITECTURE.md, "Transactions and
workers"; issue 10 item 2):

1. claim a few due rows in one short transaction (``uow.outboxes.claim``:
   ``sending``, this worker's token, a lease);
2. send each with no database transaction open and no connection held;
3. record each outcome in its own short transaction, only if the claim is still
   this worker's.

So two workers never send the same row, and nothing is sent twice unless a
worker stops between sending and recording; that row's lease then runs out
and another worker sends it once more, with the same Message-ID or webhook
event and delivery ids, which a receiver can use to drop the copy. A worker
that has used half its lease hands the rest of its claim back unsent.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from kakin.adapters.db import Engine
from kakin.adapters.db.store import UnitOfWork

Attempt = Callable[[dict[str, Any]], dict[str, Any]]
Loader = Callable[[UnitOfWork, Sequence[int]], list[dict[str, Any]]]


def work_outbox(engine: Engine, kind: str, now: datetime, load: Loader, attempt: Attempt, *, limit: int, chunk: int,
                lease: timedelta, max_attempts: int, timer: Callable[[], float] = time.monotonic) -> list[dict[str, Any]]:
    """Claim, send and record up to ``limit`` due rows of the ``kind`` outbox (``mail`` or ``webhook``).

    ``load(uow, ids)`` reads the claimed rows; ``attempt(row)`` sends one (it is called
    with no transaction open) and returns the column values to record, among
    them ``status``. Rows are claimed ``chunk`` at a time with a lease of
    ``lease`` from ``now``; ``timer`` measures seconds spent (a monotonic
    clock). Returns the recorded values, one dict per row attempted, with the
    row's ``id`` and ``recorded`` (False when the claim had been lost).
    """
    token = secrets.token_hex(16)
    outcomes: list[dict[str, Any]] = []
    while len(outcomes) < limit:
        with UnitOfWork(engine) as uow:
            ids = uow.outboxes.claim(kind, token, now, lease, min(chunk, limit - len(outcomes)), max_attempts)
            rows = load(uow, ids) if ids else []
        if not rows:
            break
        started = timer()
        for i, row in enumerate(rows):
            if timer() - started > lease.total_seconds() / 2:  # running out of lease: leave the rest to the next claim
                with UnitOfWork(engine) as uow:
                    uow.outboxes.release(kind, [r["id"] for r in rows[i:]], token, now)
                return outcomes
            values = attempt(row)
            with UnitOfWork(engine) as uow:
                recorded = uow.outboxes.record(kind, row["id"], token, **values)
            outcomes.append({**values, "id": row["id"], "recorded": recorded})
    return outcomes
