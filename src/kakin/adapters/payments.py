"""Payment gateways behind one small interface, and the card simulator.

The simulator answers like Stripe's test payment methods, so scenarios and
tests can fail a charge on purpose. Card numbers never reach kakin: a payment
method is only ever a gateway token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class ChargeOutcome:
    ok: bool
    code: str | None = None  # why it failed: card_declined, insufficient_funds, …
    reference: str | None = None


class PaymentGateway(Protocol):
    def charge(self, payment_method: str, amount: int, idempotency_key: str) -> ChargeOutcome: ...

    def is_known(self, payment_method: str) -> bool: ...


DECLINES = {
    "pm_card_chargeDeclined": "card_declined",
    "pm_card_chargeDeclinedInsufficientFunds": "insufficient_funds",
    "pm_card_chargeDeclinedExpiredCard": "expired_card",
    "pm_card_authenticationRequired": "authentication_required",  # off-session 3-D Secure fails
}
SUCCEEDS = {"pm_card_visa", "pm_card_mastercard", "pm_card_amex", "pm_card_jcb"}


class CardSimulator:
    """Deterministic test cards. Repeating an idempotency key returns the first outcome."""

    def __init__(self) -> None:
        self._seen: dict[str, ChargeOutcome] = {}
        self.charged: list[tuple[str, int, str]] = []

    def is_known(self, payment_method: str) -> bool:
        return payment_method in SUCCEEDS or payment_method in DECLINES

    def charge(self, payment_method: str, amount: int, idempotency_key: str) -> ChargeOutcome:
        if idempotency_key in self._seen:
            return self._seen[idempotency_key]
        if amount <= 0:
            raise ValueError("a charge must be positive")
        code = DECLINES.get(payment_method)
        if code is None and payment_method not in SUCCEEDS:
            code = "payment_method_unknown"
        outcome = ChargeOutcome(ok=code is None, code=code, reference=f"ch_sim_{len(self._seen) + 1:06d}")
        self._seen[idempotency_key] = outcome
        if outcome.ok:
            self.charged.append((payment_method, amount, idempotency_key))
        return outcome
