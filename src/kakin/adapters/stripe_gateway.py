"""The PaymentGateway on Stripe, through the official ``stripe`` SDK.

Only PaymentMethod ids (``pm_…``) pass through kakin; card numbers are
collected by Stripe.js in the customer's browser and never reach this module.
Amounts are integer JPY, a zero-decimal currency at Stripe, so they are sent
as they are.

Charges are PaymentIntents confirmed off-session with kakin's idempotency key
as Stripe's Idempotency-Key. A network error or timeout is retried by the SDK
(``max_network_retries``) with that same key, so Stripe charges at most once;
if every try fails the charge's intent stays ``unknown`` and the worker asks
again later by sending the same request with the same key (Stripe keeps keys
for 24 hours and answers with what it did the first time;
``services.payments.settle_intents``). Charges are made with no database
transaction open, so a slow answer holds no lock.

The test suite runs this against localstripe, which lacks a few things Stripe
does; the adapter copes in ways that are also right for Stripe (each is marked
"localstripe:" below). What localstripe lacks on the server side is listed in
tests/integration/test_stripe.py.
"""

from __future__ import annotations

import json
from typing import Any

import stripe

from kakin.domain import errors

from .payments import ChargeOutcome, GatewayUnavailable

CURRENCY = "jpy"


class StripeGateway:
    """Stripe behind kakin's PaymentGateway Protocol (see :mod:`kakin.adapters.payments`)."""

    minimum_charge = 50  # Stripe charges at least 50 JPY; a smaller amount is refused with amount_too_small

    def __init__(self, api_key: str, api_base: str | None = None, webhook_secret: str | None = None, *,
                 max_network_retries: int = 3, timeout: float = 30.0, api_version: str | None = None) -> None:
        self.webhook_secret = webhook_secret
        self._client = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base.rstrip("/")} if api_base else None,
            max_network_retries=max_network_retries,
            http_client=stripe.RequestsClient(timeout=timeout),
            stripe_version=api_version,  # None: the version this SDK release is built for
        )

    # ------------------------------------------------------------ payment methods
    def is_known(self, payment_method: str) -> bool:
        return isinstance(payment_method, str) and payment_method.startswith("pm_")

    def describe_card(self, payment_method: str) -> tuple[str, str] | None:
        """(brand, last four digits) of a card PaymentMethod, for the portal; None when Stripe has no card for it."""
        try:
            card = self._client.v1.payment_methods.retrieve(payment_method).card
        except stripe.StripeError:
            return None
        return (str(card.brand).title(), str(card.last4)) if card is not None else None

    def attach(self, payment_method: str, customer_key: str, gateway_customer: str | None) -> tuple[str, str]:
        """Attach the PaymentMethod to the Stripe Customer (created when there is none) and make it the default.

        Stripe checks a card when it is attached: a card it refuses raises
        CardDeclined (card_declined, with Stripe's reason as decline_code:
        insufficient_funds, expired_card, …), so the command that wanted it
        writes nothing.
        """
        v1 = self._client.v1
        try:
            if gateway_customer is None:
                # No deterministic idempotency key: kakin's customer keys are per tenant, a Stripe account need not be.
                customer = v1.customers.create(params={"metadata": {"kakin_customer": customer_key}})
                gateway_customer = customer.id
            pm = v1.payment_methods.attach(payment_method, params={"customer": gateway_customer})
            # Stripe test aliases such as pm_card_visa become a new pm_… when attached: the default is the attached one.
            v1.customers.update(gateway_customer, params={"invoice_settings": {"default_payment_method": pm.id}})
        except stripe.CardError as e:
            err = _error_body(e)
            code = _code(err)
            decline = "generic_decline" if code == "card_declined" else code
            raise errors.CardDeclined(f"the card was declined ({decline}) when it was registered: "
                                      f"{err.get('message') or e.user_message}; register another payment method",
                                      decline_code=decline) from e
        except stripe.InvalidRequestError as e:  # unknown, or already another customer's: the caller's to fix
            if _unknown_payment_method(e):
                raise errors.PaymentMethodUnknown(f"payment method {payment_method!r} is not known to the payment gateway",
                                                  param="payment_method") from e
            raise errors.PaymentMethodRefused(
                f"the payment gateway refused the payment method ({e.code or 'invalid request'}): {e.user_message or e}",
                param="payment_method") from e
        return gateway_customer, pm.id

    # ------------------------------------------------------------ payments
    def charge(self, payment_method: str, amount: int, idempotency_key: str, customer: str | None = None) -> ChargeOutcome:
        if amount <= 0:
            raise ValueError("a charge must be positive")
        params: dict[str, Any] = {
            "amount": amount,
            "currency": CURRENCY,
            "payment_method": payment_method,
            # Cards only: with automatic payment methods Stripe would ask for a return_url on confirm.
            "payment_method_types": ["card"],
            "off_session": True,
            "confirm": True,
            "metadata": {"kakin_charge": idempotency_key},
        }
        if customer:
            params["customer"] = customer
        try:
            pi = self._client.v1.payment_intents.create(params=params,  # type: ignore[arg-type]
                                                        options={"idempotency_key": idempotency_key})
        except stripe.CardError as e:
            err = _error_body(e)
            code = _code(err)
            return ChargeOutcome(ok=False, code=code, reference=self._intent_of(err),
                                 requires_action=code == "authentication_required")
        except stripe.APIConnectionError as e:  # no answer after the SDK's own retries: maybe charged, maybe not
            raise GatewayUnavailable(f"Stripe did not answer: {e}") from e
        except stripe.IdempotencyError as e:  # another request with this key is in flight: its answer comes later
            raise GatewayUnavailable(f"Stripe is still answering another request with this key: {e}") from e
        except stripe.InvalidRequestError as e:
            # Stripe refused the request itself (a payment method gone, an amount below Stripe's minimum of 50 JPY, …):
            # it will refuse it again, so it is a failed payment for dunning rather than an error that rolls the whole
            # batch back. (Authentication, rate limits and 5xx are not this class: they still raise.)
            code = "payment_method_unknown" if _unknown_payment_method(e) else e.code or "invalid_request"
            return ChargeOutcome(ok=False, code=code, reference=None)
        return _charge_outcome(pi)

    def retrieve(self, reference: str) -> ChargeOutcome:
        pi = self._client.v1.payment_intents.retrieve(reference)
        status = pi.status
        waiting = status == "requires_action"
        return ChargeOutcome(ok=status == "succeeded", code=None if status == "succeeded" else status, reference=pi.id,
                             requires_action=waiting, client_secret=pi.client_secret if waiting else None)

    def refund(self, reference: str, amount: int, idempotency_key: str) -> ChargeOutcome:
        try:
            refund = self._client.v1.refunds.create(
                params={"payment_intent": reference, "amount": amount, "metadata": {"kakin_refund": idempotency_key}},
                options={"idempotency_key": idempotency_key})
        except stripe.InvalidRequestError as e:  # already refunded, more than was paid, a failed payment, …
            return ChargeOutcome(ok=False, code=e.code or "refund_not_possible", reference=reference)
        if refund.status in ("succeeded", "pending"):  # a card refund may stay pending for a while; it is accepted
            return ChargeOutcome(ok=True, reference=refund.id)
        return ChargeOutcome(ok=False, code=refund.failure_reason or refund.status or "refund_not_possible",
                             reference=refund.id)

    # ------------------------------------------------------------ webhooks
    def verify_webhook(self, payload: bytes, signature_header: str) -> dict[str, Any]:
        """The event Stripe sent, after checking its Stripe-Signature; raises stripe.SignatureVerificationError if forged."""
        if not self.webhook_secret:
            raise RuntimeError("StripeGateway needs webhook_secret to verify webhooks")
        stripe.Webhook.construct_event(payload, signature_header, self.webhook_secret)
        event: dict[str, Any] = json.loads(payload)
        return event

    # ------------------------------------------------------------ helpers
    def _intent_of(self, err: dict[str, Any]) -> str | None:
        """The PaymentIntent a card error belongs to.

        Stripe puts the PaymentIntent in the error. localstripe: its error names
        only the Charge, whose ``payment_intent`` leads to it.
        """
        intent = err.get("payment_intent")
        if isinstance(intent, dict) and intent.get("id"):
            return str(intent["id"])
        if isinstance(intent, str):
            return intent
        charge = err.get("charge")
        if isinstance(charge, str):
            found = self._client.v1.charges.retrieve(charge).payment_intent
            return found if isinstance(found, str) or found is None else found.id
        return None


def _unknown_payment_method(e: stripe.InvalidRequestError) -> bool:
    return (e.http_status == 404 or e.code == "resource_missing") and e.param in (None, "payment_method")


def _error_body(e: stripe.StripeError) -> dict[str, Any]:
    body = e.json_body if isinstance(e.json_body, dict) else {}
    err = body.get("error")
    return err if isinstance(err, dict) else {}


def _code(err: dict[str, Any]) -> str:
    """kakin's failure code: Stripe's ``code``, made precise by ``decline_code`` when a decline names its reason.

    Stripe answers a card without funds with code card_declined and decline_code
    insufficient_funds; an expired card with code expired_card. A generic
    decline stays card_declined.
    """
    code = err.get("code") or "card_declined"
    decline = err.get("decline_code")
    if code == "card_declined" and decline and decline != "generic_decline":
        return str(decline)
    return str(code)


def _charge_outcome(pi: Any) -> ChargeOutcome:
    """A PaymentIntent that came back without an error.

    Off-session, Stripe answers a card that needs 3-D Secure with a card error
    (code authentication_required). localstripe: it answers 200 with status
    requires_action instead; both mean the customer must authenticate.
    """
    status = pi.status
    if status == "succeeded":
        return ChargeOutcome(ok=True, reference=pi.id)
    if status == "requires_action":
        return ChargeOutcome(ok=False, code="authentication_required", reference=pi.id, requires_action=True)
    error = getattr(pi, "last_payment_error", None)
    code = _code(error.to_dict()) if error is not None else status
    return ChargeOutcome(ok=False, code=code, reference=pi.id)  # processing, requires_payment_method, canceled
