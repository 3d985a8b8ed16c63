"""Payment intents on one connection: ``uow.intents``, the repository face of :mod:`.intents_repo`.

``intents_repo`` keeps its functions of a connection while the charging path that also calls them
(``services/charging.py``, ``services/billing.py``) is being reworked; each method here calls the function of the
same name with the unit of work's connection, looked up when called. When those services speak to
``uow.intents`` too, the functions can move in here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from . import intents_repo


class PaymentIntentRepository:
    """The charges kakin means to make (``payment_intents``), on one connection; see :mod:`.intents_repo`."""

    IN_FLIGHT = intents_repo.IN_FLIGHT  # the gateway may have charged; nobody knows the outcome yet
    REFUNDED = intents_repo.REFUNDED  # a purchase charged without its invoice, given back

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    @staticmethod
    def covers(row: dict[str, Any]) -> list[int]:
        """:func:`.intents_repo.covers`: the other invoices the intent's payment pays."""
        return intents_repo.covers(row)

    def by_keys(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """:func:`.intents_repo.by_keys`: the intents with these idempotency keys, by key."""
        return intents_repo.by_keys(self.conn, keys)

    def unlinked(self, customer_ids: Iterable[int]) -> dict[str, dict[str, Any]]:
        """:func:`.intents_repo.unlinked`: these customers' intents that name no invoice, by key."""
        return intents_repo.unlinked(self.conn, customer_ids)

    def add(self, rows: Sequence[dict[str, Any]]) -> None:
        """:func:`.intents_repo.add`: write new intents (a key recorded meanwhile is left as it is)."""
        intents_repo.add(self.conn, rows)

    def record_outcome(self, key: str, status: str, code: str | None, reference: str | None, at: datetime) -> None:
        """:func:`.intents_repo.record_outcome`: the gateway's answer for the intent with this key."""
        intents_repo.record_outcome(self.conn, key, status, code, reference, at)

    def record_outcomes(self, rows: Sequence[tuple[str, str, str | None, str | None]], at: datetime) -> None:
        """:func:`.intents_repo.record_outcomes`: many outcomes at once."""
        intents_repo.record_outcomes(self.conn, rows, at)

    def claim(self, key: str, at: datetime, seen: dict[str, Any] | None = None,
              statuses: Sequence[str] = intents_repo.IN_FLIGHT) -> bool:
        """:func:`.intents_repo.claim`: take the intent for a call to the gateway; true when this caller won it."""
        return intents_repo.claim(self.conn, key, at, seen=seen, statuses=statuses)

    def give_back(self, key: str, status: str, at: datetime, *, was: Sequence[str]) -> bool:
        """:func:`.intents_repo.give_back`: move a purchase's unlinked intent from one of ``was`` to ``status``."""
        return intents_repo.give_back(self.conn, key, status, at, was=was)

    def link(self, key: str, invoice_id: int) -> bool:
        """:func:`.intents_repo.link`: name the invoice a purchase's charge paid."""
        return intents_repo.link(self.conn, key, invoice_id)

    def in_flight(self, invoice_ids: Iterable[int]) -> set[int]:
        """:func:`.intents_repo.in_flight`: which of these invoices have a charge whose outcome is not recorded yet."""
        return intents_repo.in_flight(self.conn, invoice_ids)

    def to_settle(self, older_than: datetime, limit: int) -> list[dict[str, Any]]:
        """:func:`.intents_repo.to_settle`: the intents the worker settles, oldest first."""
        return intents_repo.to_settle(self.conn, older_than, limit)

    def given_back_counts(self, customer_ids: list[int]) -> dict[int, int]:
        """:func:`.intents_repo.given_back_counts`: purchases charged and refunded, per customer."""
        return intents_repo.given_back_counts(self.conn, customer_ids)

    def of_customer(self, customer_id: int) -> list[dict[str, Any]]:
        """:func:`.intents_repo.of_customer`: the customer's intents, oldest first."""
        return intents_repo.of_customer(self.conn, customer_id)
