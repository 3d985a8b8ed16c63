"""Card entry in the portal: what ``portal/_card.html`` needs for the configured gateway, and the card on file.

With Stripe (``KAKIN_STRIPE_API_KEY``; ``KAKIN_STRIPE_PUBLISHABLE_KEY`` for the browser) the page loads Stripe.js
from ``js.stripe.com`` — Stripe requires that it is loaded from there, so it is the one script kakin does not serve
(``KAKIN_STRIPE_JS_URL`` points it elsewhere, e.g. at localstripe in tests) — and only a PaymentMethod id reaches
kakin. With the card simulator the page offers its test cards (adapters/payments.py) by brand and last four digits,
as Stripe's test card numbers have them. Card numbers are never stored or logged: kakin keeps the PaymentMethod id.
"""

from __future__ import annotations

import os
from typing import Any

from kakin.adapters.payments import DECLINES, SUCCEEDS, CardSimulator

STRIPE_JS = "https://js.stripe.com/v3/"

# the simulator's test PaymentMethods: (brand, last four digits of Stripe's test card number; "" when Stripe has none)
TEST_CARDS: dict[str, tuple[str, str]] = {
    "pm_card_visa": ("Visa", "4242"), "pm_card_mastercard": ("Mastercard", "4444"),
    "pm_card_amex": ("American Express", "0005"), "pm_card_jcb": ("JCB", "0505"),
    "pm_card_chargeDeclined": ("Visa", "0002"), "pm_card_visa_chargeDeclined": ("Visa", "0002"),
    "pm_card_chargeCustomerFail": ("Visa", "0341"), "pm_card_chargeDeclinedInsufficientFunds": ("Visa", "9995"),
    "pm_card_visa_chargeDeclinedInsufficientFunds": ("Visa", "9995"), "pm_card_chargeDeclinedExpiredCard": ("Visa", "0069"),
    "pm_card_chargeDeclinedLostCard": ("Visa", "9987"), "pm_card_visa_chargeDeclinedLostCard": ("Visa", "9987"),
    "pm_card_chargeDeclinedStolenCard": ("Visa", "9979"), "pm_card_visa_chargeDeclinedStolenCard": ("Visa", "9979"),
    "pm_card_chargeDeclinedIncorrectNumber": ("Visa", "4241"), "pm_card_chargeDeclinedCardNotSupported": ("Visa", ""),
    "pm_card_chargeDeclinedIncorrectCvc": ("Visa", "0127"), "pm_card_chargeDeclinedProcessingError": ("Visa", "0119"),
    "pm_card_chargeDeclinedFraudulent": ("Visa", "0019"),
    "pm_card_visa_chargeDeclinedVelocityLimitExceeded": ("Visa", "6975"),
    "pm_card_authenticationRequired": ("Visa", "3184"),
}


def card_entry(gateway: Any) -> dict[str, Any]:
    """What the card macro needs: ``{"kind": "simulator", "cards": [{"id", "brand", "last4", "outcome"}]}`` (outcome
    ``ok``, ``authentication_required`` or a decline code; the succeeding cards first) or ``{"kind": "stripe",
    "publishable_key", "js_url"}``."""
    if isinstance(gateway, CardSimulator) or gateway is None:
        ids = sorted(SUCCEEDS, key=lambda pm: pm != "pm_card_visa") + list(DECLINES)
        return {"kind": "simulator", "cards": [
            {"id": pm, "brand": TEST_CARDS.get(pm, ("Visa", ""))[0], "last4": TEST_CARDS.get(pm, ("Visa", ""))[1] or "----",
             "outcome": "ok" if pm in SUCCEEDS else DECLINES[pm]} for pm in ids]}
    return {"kind": "stripe", "publishable_key": os.environ.get("KAKIN_STRIPE_PUBLISHABLE_KEY", ""),
            "js_url": os.environ.get("KAKIN_STRIPE_JS_URL") or STRIPE_JS}


def card_on_file(gateway: Any, payment_method: str | None) -> dict[str, str] | None:
    """The customer's card as ``{"brand", "last4"}`` (nothing more is ever shown), or None without one. With Stripe the
    gateway is asked (``describe_card``); a card it cannot describe shows as brand "Card" without digits."""
    if not payment_method:
        return None
    if payment_method in TEST_CARDS:
        brand, last4 = TEST_CARDS[payment_method]
        return {"brand": brand, "last4": last4 or "----"}
    describe = getattr(gateway, "describe_card", None)
    found = describe(payment_method) if describe is not None else None
    return {"brand": found[0], "last4": found[1]} if found else {"brand": "Card", "last4": "----"}
