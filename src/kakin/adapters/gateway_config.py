"""Which payment gateway a process uses: Stripe when configured, else the card simulator."""

from __future__ import annotations

import os
from datetime import timedelta

from .payments import CardSimulator, PaymentGateway


def gateway_from_env() -> PaymentGateway:
    """KAKIN_STRIPE_API_KEY (and optionally KAKIN_STRIPE_API_BASE, KAKIN_STRIPE_WEBHOOK_SECRET, and
    KAKIN_STRIPE_TIMEOUT, seconds per request, 30 by default) select Stripe."""
    api_key = os.environ.get("KAKIN_STRIPE_API_KEY")
    if not api_key:
        return CardSimulator()
    from .stripe_gateway import StripeGateway

    return StripeGateway(api_key, api_base=os.environ.get("KAKIN_STRIPE_API_BASE") or None,
                         webhook_secret=os.environ.get("KAKIN_STRIPE_WEBHOOK_SECRET") or None,
                         timeout=float(os.environ.get("KAKIN_STRIPE_TIMEOUT") or 30))


def intent_grace_from_env() -> timedelta | None:
    """KAKIN_INTENT_GRACE (seconds): how long a charge may stay in flight before the worker settles it at the
    gateway; None (unset) leaves the default (``services.payments.INTENT_GRACE``)."""
    value = os.environ.get("KAKIN_INTENT_GRACE")
    return None if not value else timedelta(seconds=float(value))
