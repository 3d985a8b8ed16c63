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
    code: str | None = None  # why it failed: card_declined, insufficient_funds, authentication_required, …
    reference: str | None = None  # the gateway's id of the payment (a PaymentIntent id for Stripe)
    requires_action: bool = False  # the customer must authenticate (3-D Secure); the invoice stays open
    client_secret: str | None = None  # from retrieve, while requires_action: what the customer's browser confirms with


class GatewayUnavailable(Exception):
    """The gateway did not answer (a timeout, a connection lost): the charge may or may not have been made. Trying
    again with the same idempotency key is safe: the gateway then answers with what it did the first time."""


class PaymentGateway(Protocol):
    minimum_charge: int  # the smallest amount the gateway charges, in yen; smaller invoices wait for the next charge

    def charge(self, payment_method: str, amount: int, idempotency_key: str, customer: str | None = None) -> ChargeOutcome:
        """Charge off-session. The same idempotency key never charges twice. Raises :class:`GatewayUnavailable`
        when no answer came (the charge may have been made)."""
        ...

    def is_known(self, payment_method: str) -> bool: ...

    def attach(self, payment_method: str, customer_key: str, gateway_customer: str | None) -> tuple[str, str]:
        """Make the payment method the customer's default at the gateway.

        Returns the gateway's customer id and the id of the attached payment method (Stripe gives test
        aliases such as pm_card_visa a new id when they are attached)."""
        ...

    def retrieve(self, reference: str) -> ChargeOutcome:
        """The payment's state now (after 3-D Secure it may have succeeded without kakin hearing of it)."""
        ...

    def refund(self, reference: str, amount: int, idempotency_key: str) -> ChargeOutcome: ...


# Stripe's test PaymentMethods (docs.stripe.com/testing) and the decline code each answers with; kakin adds the two
# Stripe has no PaymentMethod for (incorrect_number, card_not_supported) under the same naming.
DECLINES = {
    "pm_card_chargeDeclined": "card_declined",  # a generic decline (Stripe's decline_code generic_decline)
    "pm_card_visa_chargeDeclined": "card_declined",
    "pm_card_chargeCustomerFail": "card_declined",
    "pm_card_chargeDeclinedInsufficientFunds": "insufficient_funds",
    "pm_card_visa_chargeDeclinedInsufficientFunds": "insufficient_funds",
    "pm_card_chargeDeclinedExpiredCard": "expired_card",
    "pm_card_chargeDeclinedLostCard": "lost_card",
    "pm_card_visa_chargeDeclinedLostCard": "lost_card",
    "pm_card_chargeDeclinedStolenCard": "stolen_card",
    "pm_card_visa_chargeDeclinedStolenCard": "stolen_card",
    "pm_card_chargeDeclinedIncorrectNumber": "incorrect_number",
    "pm_card_chargeDeclinedCardNotSupported": "card_not_supported",
    "pm_card_chargeDeclinedIncorrectCvc": "incorrect_cvc",
    "pm_card_chargeDeclinedProcessingError": "processing_error",
    "pm_card_chargeDeclinedFraudulent": "fraudulent",
    "pm_card_visa_chargeDeclinedVelocityLimitExceeded": "card_velocity_exceeded",
    "pm_card_authenticationRequired": "authentication_required",  # off-session 3-D Secure fails
}
SUCCEEDS = {"pm_card_visa", "pm_card_mastercard", "pm_card_amex", "pm_card_jcb"}


class CardSimulator:
    """Deterministic test cards. Repeating an idempotency key returns the first outcome.

    ``fault`` makes the next charges fail as a network gateway can (for tests and the fault harness):
    ``"timeout"`` answers nothing and charges nothing; ``"lost_answer"`` charges, then its answer is lost. Both raise
    :class:`GatewayUnavailable`; a key already answered is answered again, as Stripe does.
    """

    minimum_charge = 50  # as Stripe's for JPY
    FAULTS = ("timeout", "lost_answer")

    def __init__(self, fault: str | None = None) -> None:
        if fault is not None and fault not in self.FAULTS:
            raise ValueError(f"unknown fault {fault!r}: one of {', '.join(self.FAULTS)}")
        self.fault = fault
        self._seen: dict[str, ChargeOutcome] = {}
        self._payments: dict[str, tuple[int, str]] = {}  # reference → (amount, status)
        self.charged: list[tuple[str, int, str]] = []
        self.refunded: list[tuple[str, int]] = []

    def is_known(self, payment_method: str) -> bool:
        return payment_method in SUCCEEDS or payment_method in DECLINES

    def attach(self, payment_method: str, customer_key: str, gateway_customer: str | None) -> tuple[str, str]:
        return gateway_customer or f"cus_sim_{customer_key}", payment_method

    def charge(self, payment_method: str, amount: int, idempotency_key: str, customer: str | None = None) -> ChargeOutcome:
        if idempotency_key in self._seen:
            return self._seen[idempotency_key]
        if amount <= 0:
            raise ValueError("a charge must be positive")
        if self.fault == "timeout":
            raise GatewayUnavailable(f"the card simulator timed out (charge {idempotency_key})")
        code = DECLINES.get(payment_method)
        if code is None and payment_method not in SUCCEEDS:
            code = "payment_method_unknown"
        reference = f"pi_sim_{len(self._seen) + 1:06d}"
        outcome = ChargeOutcome(ok=code is None, code=code, reference=reference,
                                requires_action=code == "authentication_required")
        self._seen[idempotency_key] = outcome
        self._payments[reference] = (amount, "succeeded" if outcome.ok else "requires_action" if outcome.requires_action
                                     else "failed")
        if outcome.ok:
            self.charged.append((payment_method, amount, idempotency_key))
        if self.fault == "lost_answer":
            raise GatewayUnavailable(f"the card simulator charged, then lost its answer (charge {idempotency_key})")
        return outcome

    def authenticate(self, reference: str) -> None:
        """The customer completes 3-D Secure in the browser: the payment succeeds at the gateway."""
        amount, status = self._payments[reference]
        if status != "requires_action":
            raise ValueError(f"{reference} does not await authentication")
        self._payments[reference] = (amount, "succeeded")
        self.charged.append(("3ds", amount, reference))

    def retrieve(self, reference: str) -> ChargeOutcome:
        amount, status = self._payments[reference]
        waiting = status == "requires_action"
        return ChargeOutcome(ok=status == "succeeded", code=None if status == "succeeded" else status, reference=reference,
                             requires_action=waiting, client_secret=f"{reference}_secret_sim" if waiting else None)

    def refund(self, reference: str, amount: int, idempotency_key: str) -> ChargeOutcome:
        if idempotency_key in self._seen:
            return self._seen[idempotency_key]
        paid, status = self._payments[reference]
        if status != "succeeded" or amount > paid:
            outcome = ChargeOutcome(ok=False, code="refund_not_possible", reference=reference)
        else:
            self.refunded.append((reference, amount))
            outcome = ChargeOutcome(ok=True, reference=f"re_sim_{len(self.refunded):06d}")
        self._seen[idempotency_key] = outcome
        return outcome
